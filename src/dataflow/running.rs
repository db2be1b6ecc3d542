//! Running sums for the invertible operations (COUNT of scalar inputs, SUM and AVERAGE of
//! longs, unbucketed): over one key's events in time order, the sums up to each event, so any
//! window is the difference of two of them — two binary searches per query instead of merging
//! tiles.
//!
//! One [`Running`] per input column serves every SUM, COUNT and AVERAGE of it, whatever the
//! window. Counts and long sums are kept exact, so a window's value depends only on the events
//! in it, as it does through the tiles' fixed merge tree: a long SUM wraps on read as the fold
//! wraps, and an AVERAGE's exact sum is rounded once. Sums of doubles stay on the tiles: a
//! difference of rounded running sums would depend on the events before the window, and a
//! value computed incrementally (over more history) would differ in its last bits from one
//! computed from scratch.

use super::records::Value;
use super::tiles::Ev;
use crate::aggregate::Aggregator;
use crate::config::Operation;

/// The running sums of one input column, kept from event index `from` on: the sums up to
/// any index before it are never read but for the start, index 0 (unbounded windows).
#[derive(Debug)]
pub struct Running {
    /// The first index whose sums are kept (`seen[0]` holds the sums before event `from`).
    from: usize,
    /// The sums before the first event: a stored base's (`dataflow::base`), else zero.
    start: RunSums,
    /// Non-null inputs before each event (unweighted: a window holds an aggregate iff > 0).
    seen: Vec<u32>,
    /// Their multiplicities summed.
    count: Vec<i64>,
    sums: Sums,
}

#[derive(Debug)]
enum Sums {
    /// Only counts (the inputs are not longs: COUNT alone can use them).
    None,
    /// Longs, exact.
    Wide(Vec<i128>),
}

/// The sums of one input column over some events: non-null inputs, their multiplicities,
/// the exact long sum, and whether every non-null input was a long. What a stored base keeps
/// for an input, and where [`Running::build`] starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunSums {
    pub seen: u32,
    pub count: i64,
    pub wide: i128,
    pub longs: bool,
}

impl Default for RunSums {
    fn default() -> Self {
        RunSums {
            seen: 0,
            count: 0,
            wide: 0,
            longs: true,
        }
    }
}

impl RunSums {
    /// Adds the events' inputs `input` in.
    pub fn add(&mut self, input: usize, events: &[Ev]) {
        for e in events {
            match &e.inputs[input] {
                Value::Null => continue,
                Value::Long(x) => self.wide += *x as i128 * e.mult as i128,
                _ => self.longs = false,
            }
            self.seen += 1;
            self.count = self.count.wrapping_add(e.mult);
        }
    }
}

/// Whether an aggregator's columns can be read from running sums.
pub fn supported(agg: &Aggregator) -> bool {
    agg.is_scalar_unbucketed()
        && matches!(
            agg.spec().op,
            Operation::Sum | Operation::Count | Operation::Average
        )
}

impl Running {
    /// The running sums of input `input` over `events` (sorted by time), readable at index 0
    /// and at every index from `from` on: the events before `from` are only summed, so a
    /// recompute whose windows all start late (a new day) does not lay out the whole history.
    /// `base` holds the sums of the events before the first one (a stored base). Sums are
    /// kept when every non-null input is a long; otherwise only the counts.
    pub fn build(input: usize, events: &[Ev], from: usize, base: Option<&RunSums>) -> Running {
        let from = from.min(events.len());
        let n = events.len() - from + 1;
        let start = base.copied().unwrap_or_default();
        let mut before = start;
        before.add(input, &events[..from]);
        let RunSums {
            seen: mut s,
            count: mut c,
            wide,
            longs,
        } = before;
        let mut seen = Vec::with_capacity(n);
        let mut count = Vec::with_capacity(n);
        seen.push(s);
        count.push(c);
        let mut sums = match events[from..]
            .iter()
            .map(|e| &e.inputs[input])
            .find(|v| !v.is_null())
        {
            Some(Value::Long(_)) | None if longs => Sums::Wide(vec![wide]),
            _ => Sums::None,
        };
        for e in &events[from..] {
            let v = &e.inputs[input];
            if !v.is_null() {
                s += 1;
                c = c.wrapping_add(e.mult);
            }
            let ok = match (&mut sums, v) {
                (Sums::None, _) => true,
                (Sums::Wide(p), Value::Long(x)) => {
                    let last = *p.last().expect("starts at zero");
                    p.push(last + *x as i128 * e.mult as i128);
                    true
                }
                (Sums::Wide(p), Value::Null) => {
                    p.push(*p.last().expect("starts at zero"));
                    true
                }
                _ => false,
            };
            if !ok {
                sums = Sums::None;
            }
            seen.push(s);
            count.push(c);
        }
        Running {
            from,
            start,
            seen,
            count,
            sums,
        }
    }

    /// The sums before event `i` (kept for index 0 and indices from `from` on): non-null
    /// inputs, their multiplicities, and the long sum (0 when only counts are kept).
    fn before(&self, i: usize) -> (u32, i64, i128) {
        if i >= self.from {
            let k = i - self.from;
            let sum = match &self.sums {
                Sums::Wide(p) => p[k],
                Sums::None => 0,
            };
            (self.seen[k], self.count[k], sum)
        } else if i == 0 {
            let sum = match &self.sums {
                Sums::Wide(_) => self.start.wide,
                Sums::None => 0,
            };
            (self.start.seen, self.start.count, sum)
        } else {
            unreachable!(
                "running sums read at {i}, before the first kept index {}",
                self.from
            )
        }
    }

    /// Whether `agg` (a [`supported`] operation) can read its values here.
    pub fn serves(&self, agg: &Aggregator) -> bool {
        agg.spec().op == Operation::Count || !matches!(self.sums, Sums::None)
    }

    /// The value of `agg` (which this serves) over events `a..b` (indices into the events
    /// the sums were built from); `a = None` reads from the very start, a stored base's
    /// events included (unbounded windows).
    pub fn value(&self, agg: &Aggregator, a: Option<usize>, b: usize) -> Value {
        let (s0, c0, p0) = match a {
            None => (0, 0, 0),
            Some(a) if b <= a => return Value::Null,
            Some(a) => self.before(a),
        };
        let (s1, c1, p1) = self.before(b);
        if s1 == s0 {
            return Value::Null;
        }
        let count = c1.wrapping_sub(c0);
        let v = match (&self.sums, agg.spec().op) {
            (_, Operation::Count) => Value::Long(count),
            // the fold wraps a long SUM: the exact sum's low 64 bits
            (Sums::Wide(_), Operation::Sum) => Value::Long((p1 - p0) as i64),
            (Sums::Wide(_), _) => Value::double((p1 - p0) as f64 / count as f64),
            (Sums::None, _) => unreachable!("`serves` is checked first"),
        };
        agg.sanitized(v)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::aggregate::{AggSpec, InputShape};

    /// An aggregator of `op` over a scalar, unbucketed input.
    pub(in crate::dataflow) fn agg(op: Operation) -> Aggregator {
        Aggregator::new(
            AggSpec {
                op,
                k: None,
                percentiles: vec![],
            },
            InputShape::Scalar,
            false,
        )
    }

    fn events(vals: &[(Value, i64)]) -> Vec<Ev> {
        vals.iter()
            .enumerate()
            .map(|(i, (v, m))| Ev {
                ts: i as i64,
                inputs: vec![v.clone()],
                mult: *m,
            })
            .collect()
    }

    /// Every window of every column equals the fold of its events through the aggregator.
    #[test]
    fn every_window_equals_the_fold() {
        let longs = events(&[
            (Value::Long(5), 1),
            (Value::Null, 1),
            (Value::Long(i64::MAX), 2),
            (Value::Long(-7), 1),
            (Value::Null, 3),
        ]);
        let evs = &longs;
        {
            // laid out from every index: windows start at 0 or at `from` and later
            for (op, from) in [Operation::Sum, Operation::Count, Operation::Average]
                .into_iter()
                .flat_map(|op| (0..=evs.len()).map(move |f| (op, f)))
            {
                let a = agg(op);
                let r = Running::build(0, evs, from, None);
                assert!(r.serves(&a));
                for i in (0..=evs.len()).filter(|&i| i == 0 || i >= from) {
                    for j in i.max(from)..=evs.len() {
                        let mut ir = None;
                        for e in &evs[i..j] {
                            a.update(&mut ir, e.ts, &e.inputs[0], None, e.mult);
                        }
                        let want = a.finalize(&ir);
                        let got = r.value(&a, Some(i), j);
                        let same = match (&want, &got) {
                            (Value::Double(x), Value::Double(y)) => {
                                let (x, y) = (f64::from_bits(*x), f64::from_bits(*y));
                                // an AVERAGE's fold rounds its sum at every step, the running
                                // sums once (the same bits below 2^53)
                                (x - y).abs()
                                    <= 1e-12 * x.abs().max(y.abs()) + 4.0 * f64::EPSILON * 1e16
                            }
                            _ => want == got,
                        };
                        assert!(same, "{op:?} over {i}..{j}: fold {want:?}, running {got:?}");
                    }
                }
            }
        }
    }

    /// Running sums that start from the sums of the events before a split (a stored base)
    /// read every window over the events after it as the sums over all events do: unbounded
    /// windows from the very start, bounded ones as differences.
    #[test]
    fn a_base_stands_for_the_events_before_it() {
        let all = events(&[
            (Value::Long(5), 1),
            (Value::Null, 1),
            (Value::Long(i64::MAX), 2),
            (Value::Long(-7), 1),
            (Value::Null, 3),
            (Value::Long(11), 1),
        ]);
        for op in [Operation::Sum, Operation::Count, Operation::Average] {
            let a = agg(op);
            let whole = Running::build(0, &all, 0, None);
            for split in 0..=all.len() {
                let mut base = RunSums::default();
                base.add(0, &all[..split]);
                let tail = &all[split..];
                for from in 0..=tail.len() {
                    let r = Running::build(0, tail, from, Some(&base));
                    for j in from..=tail.len() {
                        assert_eq!(
                            r.value(&a, None, j),
                            whole.value(&a, None, split + j),
                            "{op:?} unbounded to {j} after split {split}, from {from}"
                        );
                        for i in (0..=j).filter(|&i| i == 0 || i >= from) {
                            assert_eq!(
                                r.value(&a, Some(i), j),
                                whole.value(&a, Some(split + i), split + j),
                                "{op:?} over {i}..{j} after split {split}, from {from}"
                            );
                        }
                    }
                }
            }
        }
        // a double before the split keeps SUM and AVERAGE off the running sums
        let mut base = RunSums::default();
        base.add(0, &events(&[(Value::double(0.5), 1)]));
        let r = Running::build(0, &all, 0, Some(&base));
        assert!(!r.serves(&agg(Operation::Sum)) && r.serves(&agg(Operation::Count)));
        assert_eq!(r.value(&agg(Operation::Count), None, 1), Value::Long(2));
    }

    #[test]
    fn doubles_and_other_inputs_are_left_to_the_tiles_except_for_counts() {
        let (sum, count, avg) = (
            agg(Operation::Sum),
            agg(Operation::Count),
            agg(Operation::Average),
        );
        let mixed = [
            (Value::Long(1), 1),
            (Value::double(2.0), 1),
            (Value::Long(3), 1),
        ];
        for from in 0..=3 {
            // a double before the laid-out events counts as much as one after them
            let mixed = Running::build(0, &events(&mixed), from, None);
            assert!(!mixed.serves(&sum) && !mixed.serves(&avg) && mixed.serves(&count));
            assert_eq!(mixed.value(&count, Some(0), 3), Value::Long(3));
        }
        let doubles = Running::build(
            0,
            &events(&[(Value::double(0.1), 1), (Value::Null, 1)]),
            0,
            None,
        );
        assert!(!doubles.serves(&sum) && !doubles.serves(&avg) && doubles.serves(&count));
        assert_eq!(doubles.value(&count, Some(0), 2), Value::Long(1));
        let strings = Running::build(0, &events(&[(Value::Str("a".into()), 1)]), 0, None);
        assert!(!strings.serves(&sum) && strings.serves(&count));
    }
}
