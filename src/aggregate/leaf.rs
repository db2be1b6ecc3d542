//! [`Leaf`]: the partial aggregate of one operation over plain values (no buckets, no map keys),
//! with Chronon's update / delete / merge / finalize rules for each operation (§2.3).
//!
//! Tie rules, chosen so that merging `into` (earlier) with `other` (later) equals updating with
//! `into`'s inputs and then `other`'s:
//! - FIRST / LAST replace only on a strictly smaller / larger ts: ties keep the first seen.
//! - FIRST_K keeps the k oldest, LAST_K the k newest, by ts; among equal ts the earlier arrival
//!   ranks first (so FIRST_K/LAST_K with k = 1 agree with FIRST/LAST). Both are stored in output
//!   order (FIRST_K oldest→newest, LAST_K newest→oldest) and bounded to k.
//! - TOP_K / BOTTOM_K are stored sorted (descending / ascending) and bounded to k.
//! - HISTOGRAM with k > 0 keeps the entries with the k largest counts, ties broken by the
//!   smaller value (Chronon keeps "count ≥ k-th largest count, at most k" in hash-map order).

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use super::op::AggSpec;
use super::sketch::{ApproxHist, ApproxUnique, Kll};
use super::value::{cmp_values, Value};
use crate::config::Operation;

/// Welford state for VARIANCE (Chronon's `WelfordState`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Welford {
    pub(super) count: i64,
    pub(super) mean: f64,
    pub(super) m2: f64,
}

impl Welford {
    fn update(&mut self, x: f64) {
        self.count += 1;
        let delta = x - self.mean;
        self.mean += delta / self.count as f64;
        self.m2 += delta * (x - self.mean);
    }

    fn merge(&mut self, o: &Welford) {
        if o.count == 0 {
            return;
        }
        let total = self.count + o.count;
        let delta = o.mean - self.mean;
        let delta_n = delta / total as f64;
        let mean = combined_mean(self.count as f64, self.mean, o.count as f64, o.mean);
        self.m2 = self.m2 + o.m2 + delta * delta_n * self.count as f64 * o.count as f64;
        self.count = total;
        self.mean = mean;
    }
}

/// Weighted mean of two means, as Chronon computes it (stable when one side dominates).
fn combined_mean(wn: f64, an: f64, wk: f64, ak: f64) -> f64 {
    if wn < wk {
        return combined_mean(wk, ak, wn, an);
    }
    let total = wn + wk;
    if total == 0.0 {
        0.0
    } else if total == wn {
        an
    } else {
        let scaling = wk / total;
        if scaling < 0.1 {
            an + (ak - an) * scaling
        } else {
            (wn * an + wk * ak) / total
        }
    }
}

/// Central moments for SKEW and KURTOSIS (count, mean, M2, M3, M4).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Moments {
    pub(super) n: f64,
    pub(super) m1: f64,
    pub(super) m2: f64,
    pub(super) m3: f64,
    pub(super) m4: f64,
}

impl Moments {
    fn update(&mut self, x: f64) {
        let n1 = self.n;
        let n = n1 + 1.0;
        let delta = x - self.m1;
        let dn = delta / n;
        let dn2 = dn * dn;
        let term1 = delta * dn * n1;
        self.m1 += dn;
        self.m4 += term1 * dn2 * (n * n - 3.0 * n + 3.0) + 6.0 * dn2 * self.m2 - 4.0 * dn * self.m3;
        self.m3 += term1 * dn * (n - 2.0) - 3.0 * dn * self.m2;
        self.m2 += term1;
        self.n = n;
    }

    fn merge(&mut self, b: &Moments) {
        if b.n == 0.0 {
            return;
        }
        let a = *self;
        let n = a.n + b.n;
        let d = b.m1 - a.m1;
        let (d2, nab) = (d * d, a.n * b.n);
        self.m1 = (a.n * a.m1 + b.n * b.m1) / n;
        self.m2 = a.m2 + b.m2 + d2 * nab / n;
        self.m3 = a.m3
            + b.m3
            + d2 * d * nab * (a.n - b.n) / (n * n)
            + 3.0 * d * (a.n * b.m2 - b.n * a.m2) / n;
        self.m4 = a.m4
            + b.m4
            + d2 * d2 * nab * (a.n * a.n - nab + b.n * b.n) / (n * n * n)
            + 6.0 * d2 * (a.n * a.n * b.m2 + b.n * b.n * a.m2) / (n * n)
            + 4.0 * d * (a.n * b.m3 - b.n * a.m3) / n;
        self.n = n;
    }
}

/// The partial aggregate of one operation.
#[derive(Debug, Clone)]
pub(crate) enum Leaf {
    Count(i64),
    SumLong(i64),
    SumDouble(f64),
    Average {
        sum: f64,
        count: i64,
    },
    Variance(Welford),
    Moments(Moments),
    Min(Value),
    Max(Value),
    First {
        ts: i64,
        value: Value,
    },
    Last {
        ts: i64,
        value: Value,
    },
    /// FIRST_K / LAST_K: `(ts, value)` in output order, at most k.
    Timed(Vec<(i64, Value)>),
    /// TOP_K / BOTTOM_K: values in output order, at most k.
    Sorted(Vec<Value>),
    Unique(BTreeSet<Value>),
    /// BOUNDED_UNIQUE_COUNT: at most k distinct values.
    Bounded(BTreeSet<Value>),
    Histogram(BTreeMap<Box<str>, i64>),
    ApproxHist(ApproxHist),
    Cpc(ApproxUnique),
    Kll(Kll),
}

/// Weights above this are merged as a block of equal values instead of looping.
const LOOP_WEIGHT: i64 = 64;

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

fn long(v: &Value) -> i64 {
    match v {
        Value::Long(x) => *x,
        Value::Bool(b) => *b as i64,
        other => num(other) as i64,
    }
}

fn is_nan(v: &Value) -> bool {
    matches!(v, Value::Double(b) if f64::from_bits(*b).is_nan())
}

/// MIN/MAX step: NaN is sticky (Java's `Math.min`/`Math.max`), otherwise by [`cmp_values`].
fn pick(cur: &mut Value, v: &Value, want: Ordering) {
    if is_nan(cur) {
        return;
    }
    if is_nan(v) || cmp_values(v, cur) == want {
        *cur = v.clone();
    }
}

/// Position where an item with key `ts` goes in a list ordered by `before` on ts, after every
/// item it does not strictly precede (so equal ts keep arrival order).
fn timed_position(list: &[(i64, Value)], ts: i64, newest_first: bool) -> usize {
    list.partition_point(|(t, _)| if newest_first { *t >= ts } else { *t <= ts })
}

fn sorted_position(list: &[Value], v: &Value, descending: bool) -> usize {
    list.partition_point(|x| {
        let c = cmp_values(x, v);
        if descending {
            c != Ordering::Less
        } else {
            c != Ordering::Greater
        }
    })
}

impl Leaf {
    /// The state before the first input `v` (which is then added with [`Leaf::add`]): zero for
    /// counting operations, `v` itself for MIN/MAX/FIRST/LAST.
    pub(crate) fn zero(spec: &AggSpec, ts: i64, v: &Value) -> Leaf {
        use Operation::*;
        let k = spec.k.unwrap_or(1);
        match spec.op {
            Count => Leaf::Count(0),
            Sum => match v {
                Value::Double(_) => Leaf::SumDouble(0.0),
                _ => Leaf::SumLong(0),
            },
            Average => Leaf::Average { sum: 0.0, count: 0 },
            Variance => Leaf::Variance(Welford {
                count: 0,
                mean: 0.0,
                m2: 0.0,
            }),
            Skew | Kurtosis => Leaf::Moments(Moments {
                n: 0.0,
                m1: 0.0,
                m2: 0.0,
                m3: 0.0,
                m4: 0.0,
            }),
            Min => Leaf::Min(v.clone()),
            Max => Leaf::Max(v.clone()),
            First => Leaf::First {
                ts,
                value: v.clone(),
            },
            Last => Leaf::Last {
                ts,
                value: v.clone(),
            },
            FirstK | LastK => Leaf::Timed(Vec::with_capacity(k.min(16))),
            TopK | BottomK => Leaf::Sorted(Vec::with_capacity(k.min(16))),
            UniqueCount => Leaf::Unique(BTreeSet::new()),
            BoundedUniqueCount => Leaf::Bounded(BTreeSet::new()),
            Histogram => Leaf::Histogram(BTreeMap::new()),
            ApproxHistogramK => Leaf::ApproxHist(ApproxHist::new()),
            ApproxUniqueCount => Leaf::Cpc(ApproxUnique::new()),
            ApproxPercentile => Leaf::Kll(Kll::new(spec.k.unwrap_or(128))),
        }
    }

    /// Adds `w` copies of `v` at `ts`. `w < 0` (deletion) is only passed for deletable
    /// operations, whose formulas take the negative weight as is.
    pub(crate) fn add(&mut self, spec: &AggSpec, ts: i64, v: &Value, w: i64) {
        let k = spec.k.unwrap_or(1);
        let copies = w.clamp(0, k as i64) as usize;
        match self {
            Leaf::Count(c) => *c = c.wrapping_add(w),
            Leaf::SumLong(s) => match v {
                Value::Double(_) => *self = Leaf::SumDouble(*s as f64 + num(v) * w as f64),
                _ => *s = s.wrapping_add(long(v).wrapping_mul(w)),
            },
            Leaf::SumDouble(s) => *s += num(v) * w as f64,
            Leaf::Average { sum, count } => {
                *sum += num(v) * w as f64;
                *count += w;
            }
            Leaf::Variance(s) => {
                if w > LOOP_WEIGHT {
                    s.merge(&Welford {
                        count: w,
                        mean: num(v),
                        m2: 0.0,
                    });
                } else {
                    (0..w).for_each(|_| s.update(num(v)));
                }
            }
            Leaf::Moments(s) => {
                if w > LOOP_WEIGHT {
                    s.merge(&Moments {
                        n: w as f64,
                        m1: num(v),
                        m2: 0.0,
                        m3: 0.0,
                        m4: 0.0,
                    });
                } else {
                    (0..w).for_each(|_| s.update(num(v)));
                }
            }
            Leaf::Min(cur) => pick(cur, v, Ordering::Less),
            Leaf::Max(cur) => pick(cur, v, Ordering::Greater),
            Leaf::First { ts: t, value } => {
                if ts < *t {
                    (*t, *value) = (ts, v.clone());
                }
            }
            Leaf::Last { ts: t, value } => {
                if ts > *t {
                    (*t, *value) = (ts, v.clone());
                }
            }
            Leaf::Timed(list) => {
                let newest_first = spec.op == Operation::LastK;
                for _ in 0..copies {
                    let at = timed_position(list, ts, newest_first);
                    if at < k {
                        list.insert(at, (ts, v.clone()));
                        list.truncate(k);
                    }
                }
            }
            Leaf::Sorted(list) => {
                let descending = spec.op == Operation::TopK;
                for _ in 0..copies {
                    let at = sorted_position(list, v, descending);
                    if at < k {
                        list.insert(at, v.clone());
                        list.truncate(k);
                    }
                }
            }
            Leaf::Unique(set) => {
                set.insert(v.clone());
            }
            Leaf::Bounded(set) => {
                if set.len() < k {
                    set.insert(v.clone());
                }
            }
            Leaf::Histogram(map) => {
                let key = v.key_string();
                let count = map.entry(key.clone()).or_insert(0);
                *count += w;
                if *count == 0 {
                    map.remove(&key);
                }
            }
            Leaf::ApproxHist(h) => h.add(spec.k.unwrap_or(8), v, w),
            Leaf::Cpc(s) => s.update(spec.k.unwrap_or(8), v),
            Leaf::Kll(s) => {
                let x = num(v) as f32;
                (0..w.max(0)).for_each(|_| s.update(x));
            }
        }
    }

    /// Merges `other` (later inputs) into `self`.
    pub(crate) fn merge(&mut self, spec: &AggSpec, other: &Leaf) {
        let k = spec.k.unwrap_or(1);
        match (&mut *self, other) {
            (Leaf::Count(a), Leaf::Count(b)) => *a = a.wrapping_add(*b),
            (Leaf::SumLong(a), Leaf::SumLong(b)) => *a = a.wrapping_add(*b),
            (Leaf::SumDouble(a), Leaf::SumDouble(b)) => *a += b,
            (Leaf::SumLong(a), Leaf::SumDouble(b)) => *self = Leaf::SumDouble(*a as f64 + b),
            (Leaf::SumDouble(a), Leaf::SumLong(b)) => *a += *b as f64,
            (Leaf::Average { sum, count }, Leaf::Average { sum: s2, count: c2 }) => {
                *sum += s2;
                *count += c2;
            }
            (Leaf::Variance(a), Leaf::Variance(b)) => a.merge(b),
            (Leaf::Moments(a), Leaf::Moments(b)) => a.merge(b),
            (Leaf::Min(a), Leaf::Min(b)) => pick(a, b, Ordering::Less),
            (Leaf::Max(a), Leaf::Max(b)) => pick(a, b, Ordering::Greater),
            (Leaf::First { ts, value }, Leaf::First { ts: t2, value: v2 }) => {
                if t2 < ts {
                    (*ts, *value) = (*t2, v2.clone());
                }
            }
            (Leaf::Last { ts, value }, Leaf::Last { ts: t2, value: v2 }) => {
                if t2 > ts {
                    (*ts, *value) = (*t2, v2.clone());
                }
            }
            (Leaf::Timed(a), Leaf::Timed(b)) => {
                let newest_first = spec.op == Operation::LastK;
                // `a` wins ties: b's item goes first only if it strictly precedes.
                let b_first = |x: &(i64, Value), y: &(i64, Value)| {
                    if newest_first {
                        y.0 > x.0
                    } else {
                        y.0 < x.0
                    }
                };
                *a = merge_bounded(a, b, k, b_first);
            }
            (Leaf::Sorted(a), Leaf::Sorted(b)) => {
                let descending = spec.op == Operation::TopK;
                let want = if descending {
                    Ordering::Greater
                } else {
                    Ordering::Less
                };
                *a = merge_bounded(a, b, k, |x, y| cmp_values(y, x) == want);
            }
            (Leaf::Unique(a), Leaf::Unique(b)) => a.extend(b.iter().cloned()),
            (Leaf::Bounded(a), Leaf::Bounded(b)) => {
                for v in b {
                    if a.len() >= k {
                        break;
                    }
                    a.insert(v.clone());
                }
            }
            (Leaf::Histogram(a), Leaf::Histogram(b)) => {
                for (key, c) in b {
                    let count = a.entry(key.clone()).or_insert(0);
                    *count += c;
                    if *count == 0 {
                        a.remove(key);
                    }
                }
            }
            (Leaf::ApproxHist(a), Leaf::ApproxHist(b)) => a.merge(spec.k.unwrap_or(8), b),
            (Leaf::Cpc(a), Leaf::Cpc(b)) => a.merge(spec.k.unwrap_or(8), b),
            (Leaf::Kll(a), Leaf::Kll(b)) => a.merge(b),
            (a, b) => debug_assert!(
                false,
                "merging different partial aggregates {a:?} and {b:?}"
            ),
        }
    }

    /// The finalized value (before the NaN/±Inf → NULL check).
    pub(crate) fn finalize(&self, spec: &AggSpec) -> Value {
        let k = spec.k.unwrap_or(0);
        match self {
            Leaf::Count(c) | Leaf::SumLong(c) => Value::Long(*c),
            Leaf::SumDouble(s) => Value::double(*s),
            Leaf::Average { sum, count } => Value::double(sum / *count as f64),
            Leaf::Variance(s) => Value::double(s.m2 / s.count as f64),
            Leaf::Moments(m) => Value::double(match spec.op {
                Operation::Skew if m.n >= 3.0 && m.m2 != 0.0 => m.n.sqrt() * m.m3 / m.m2.powf(1.5),
                Operation::Kurtosis if m.n >= 4.0 && m.m2 != 0.0 => {
                    m.n * m.m4 / (m.m2 * m.m2) - 3.0
                }
                _ => f64::NAN,
            }),
            Leaf::Min(v)
            | Leaf::Max(v)
            | Leaf::First { value: v, .. }
            | Leaf::Last { value: v, .. } => v.clone(),
            Leaf::Timed(list) => Value::List(list.iter().map(|(_, v)| v.clone()).collect()),
            Leaf::Sorted(list) => Value::List(list.clone()),
            Leaf::Unique(set) => Value::Long(set.len() as i64),
            Leaf::Bounded(set) => Value::Long(set.len() as i64),
            Leaf::Histogram(map) => {
                let mut entries: Vec<(&Box<str>, i64)> =
                    map.iter().map(|(key, c)| (key, *c)).collect();
                if k > 0 && entries.len() > k {
                    entries.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
                    entries.truncate(k);
                    entries.sort_by(|a, b| a.0.cmp(b.0));
                }
                Value::Map(
                    entries
                        .into_iter()
                        .map(|(key, c)| (Value::Str(key.clone()), Value::Long(c)))
                        .collect(),
                )
            }
            Leaf::ApproxHist(h) => string_keyed(h.top(spec.k.unwrap_or(8))),
            Leaf::Cpc(s) => Value::Long(s.estimate()),
            Leaf::Kll(s) => match s.quantiles(&spec.percentiles) {
                None => Value::Null,
                Some(qs) => Value::List(qs.into_iter().map(|q| Value::double(q as f64)).collect()),
            },
        }
    }
}

/// A map value keyed by each value's Chronon string form, sorted by key.
fn string_keyed(rows: Vec<(Value, i64)>) -> Value {
    let mut entries: Vec<(Value, Value)> = rows
        .into_iter()
        .map(|(v, c)| (Value::Str(v.key_string()), Value::Long(c)))
        .collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    entries.dedup_by(|a, b| a.0 == b.0);
    Value::Map(entries)
}

/// Merges two lists already in output order, keeping at most `k`; `b_first(a_item, b_item)`
/// says whether b's item strictly precedes a's (ties take a's first).
fn merge_bounded<T: Clone>(a: &[T], b: &[T], k: usize, b_first: impl Fn(&T, &T) -> bool) -> Vec<T> {
    let mut out = Vec::with_capacity((a.len() + b.len()).min(k));
    let (mut i, mut j) = (0, 0);
    while out.len() < k && (i < a.len() || j < b.len()) {
        let take_b = i == a.len() || (j < b.len() && b_first(&a[i], &b[j]));
        if take_b {
            out.push(b[j].clone());
            j += 1;
        } else {
            out.push(a[i].clone());
            i += 1;
        }
    }
    out
}
