//! The approximate aggregations' states.
//!
//! - APPROX_UNIQUE_COUNT: [`ApproxUnique`], the exact set of distinct items while there are at
//!   most [`EXACT_UNIQUE_MAX`] (finalised as their exact count), then a CPC sketch from
//!   `datasketches`, fed the way DataSketches Java is by Chronon (longs as 8 little-endian bytes,
//!   doubles canonicalised, strings and bytes raw and skipped when empty), merged through a
//!   `CpcUnion` and finalised as the truncated estimate.
//! - APPROX_HISTOGRAM_K: [`ApproxHist`], exact counts while there are at most `k` distinct values,
//!   then `datasketches`' frequent-items sketch (map size = the smallest power of two ≥ 4k, at
//!   least 8; Chronon uses ≥ k, see [`sketch_size`]) whose no-false-positive items are returned,
//!   top k by estimate (ties by value).
//! - APPROX_PERCENTILE: [`Kll`], a KLL quantiles sketch over `f32` written here rather than taken
//!   from `datasketches`, because that crate's compactions draw from an unseeded thread-local
//!   random source and weft's outputs must be bit-identical from run to run. This one draws its
//!   coin flips from a SplitMix64 stream kept in the sketch, so the same inputs merged in the same
//!   order always give the same sketch. Its accuracy is KLL's (levels of capacity
//!   `max(8, ⌈k·(2/3)^depth⌉)`, random-offset halving); quantiles are answered as Chronon's
//!   DataSketches version does: rank 0 → min, 1 → max, otherwise the item at weighted position
//!   `⌊rank·n⌋` of the sorted stream.

use std::collections::BTreeMap;

use datasketches::cpc::{CpcSketch, CpcUnion};
use datasketches::frequencies::{ErrorType, FrequentItemsSketch};
use datasketches::hash::value::raw_bytes;

use super::value::Value;

// ---------------------------------------------------------------------------------------------
// CPC

/// Distinct items APPROX_UNIQUE_COUNT keeps exactly before switching to a CPC sketch.
pub(crate) const EXACT_UNIQUE_MAX: usize = 64;

/// A new CPC sketch; `lg_k` is validated by `AggSpec::new` (4..=26), anything else is clamped.
fn cpc_new(lg_k: usize) -> CpcSketch {
    CpcSketch::new(lg_k.clamp(4, 26) as u8).expect("lgK in range")
}

/// What one input feeds the CPC sketch, as Chronon feeds DataSketches: longs and booleans as the
/// 8 bytes of an `i64`, doubles as the 8 bytes of their canonical bits (one NaN, -0.0 = 0.0),
/// non-empty strings and bytes as their raw bytes, anything else through `Value`'s `Hash`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CpcItem {
    Word(u64),
    Bytes(Box<[u8]>),
    Other(Box<Value>),
}

/// A borrowed [`CpcItem`], so that duplicates cost no allocation.
#[derive(Clone, Copy)]
enum ItemRef<'a> {
    Word(u64),
    Bytes(&'a [u8]),
    Other(&'a Value),
}

impl<'a> ItemRef<'a> {
    /// `None` for inputs the sketch skips (NULL, empty strings and bytes).
    fn of(v: &'a Value) -> Option<ItemRef<'a>> {
        Some(match v {
            Value::Null => return None,
            Value::Long(x) => ItemRef::Word(*x as u64),
            Value::Bool(b) => ItemRef::Word(*b as u64),
            Value::Double(bits) => {
                let x = f64::from_bits(*bits);
                // DataSketches' canonical_float: Java's doubleToLongBits NaN, +0.0 for -0.0.
                ItemRef::Word(if x.is_nan() {
                    0x7ff8_0000_0000_0000
                } else {
                    (x + 0.0).to_bits()
                })
            }
            Value::Str(s) if s.is_empty() => return None,
            Value::Bytes(b) if b.is_empty() => return None,
            Value::Str(s) => ItemRef::Bytes(s.as_bytes()),
            Value::Bytes(b) => ItemRef::Bytes(b),
            other => ItemRef::Other(other),
        })
    }

    fn of_item(item: &'a CpcItem) -> ItemRef<'a> {
        match item {
            CpcItem::Word(w) => ItemRef::Word(*w),
            CpcItem::Bytes(b) => ItemRef::Bytes(b),
            CpcItem::Other(v) => ItemRef::Other(v),
        }
    }

    fn is(self, item: &CpcItem) -> bool {
        match (self, item) {
            (ItemRef::Word(a), CpcItem::Word(b)) => a == *b,
            (ItemRef::Bytes(a), CpcItem::Bytes(b)) => a == &b[..],
            (ItemRef::Other(a), CpcItem::Other(b)) => a == &**b,
            _ => false,
        }
    }

    fn to_owned(self) -> CpcItem {
        match self {
            ItemRef::Word(w) => CpcItem::Word(w),
            ItemRef::Bytes(b) => CpcItem::Bytes(b.into()),
            ItemRef::Other(v) => CpcItem::Other(Box::new(v.clone())),
        }
    }

    /// Exactly what `CpcSketch::update` of the original value hashes: `u64` and `i64` both
    /// write their 8 native-endian bytes, `raw_bytes` writes the bytes alone.
    fn feed(self, sketch: &mut CpcSketch) {
        match self {
            ItemRef::Word(w) => sketch.update(w),
            ItemRef::Bytes(b) => sketch.update(raw_bytes::from_slice(b)),
            ItemRef::Other(v) => sketch.update(v),
        }
    }
}

/// APPROX_UNIQUE_COUNT's state: the distinct items themselves, in first-arrival order, while
/// there are at most [`EXACT_UNIQUE_MAX`], then a CPC sketch fed those items in that order and
/// every later input. A CPC sketch ignores repeated items, so the sketch equals one fed the
/// whole input stream (bit for bit: same coupons, same HIP estimate).
#[derive(Debug, Clone)]
pub(crate) enum ApproxUnique {
    Exact(Vec<CpcItem>),
    Sketch(CpcSketch),
}

impl ApproxUnique {
    pub(crate) fn new() -> ApproxUnique {
        ApproxUnique::Exact(Vec::new())
    }

    pub(crate) fn update(&mut self, lg_k: usize, v: &Value) {
        if let Some(item) = ItemRef::of(v) {
            self.add(lg_k, item);
        }
    }

    fn add(&mut self, lg_k: usize, item: ItemRef) {
        match self {
            ApproxUnique::Sketch(s) => item.feed(s),
            ApproxUnique::Exact(items) => {
                if items.iter().any(|x| item.is(x)) {
                    return;
                }
                if items.len() < EXACT_UNIQUE_MAX {
                    items.push(item.to_owned());
                    return;
                }
                let mut sketch = cpc_new(lg_k);
                for x in items.iter() {
                    ItemRef::of_item(x).feed(&mut sketch);
                }
                item.feed(&mut sketch);
                *self = ApproxUnique::Sketch(sketch);
            }
        }
    }

    /// Merges `other` (later inputs) into `self`. A set merged into a set or a sketch equals
    /// updating with its items in order; a sketch merged into a set is that sketch updated with
    /// the set's items; two sketches go through a `CpcUnion` (its ICON estimate).
    pub(crate) fn merge(&mut self, lg_k: usize, other: &ApproxUnique) {
        match (&mut *self, other) {
            (_, ApproxUnique::Exact(b)) => {
                for x in b {
                    self.add(lg_k, ItemRef::of_item(x));
                }
            }
            (ApproxUnique::Exact(a), ApproxUnique::Sketch(b)) => {
                let mut sketch = b.clone();
                for x in a.iter() {
                    ItemRef::of_item(x).feed(&mut sketch);
                }
                *self = ApproxUnique::Sketch(sketch);
            }
            (ApproxUnique::Sketch(a), ApproxUnique::Sketch(b)) => {
                let mut union = CpcUnion::new(a.lg_k()).expect("lgK in range");
                union.update(a).expect("same seed");
                union.update(b).expect("same seed");
                *a = union.to_sketch();
            }
        }
    }

    /// The exact distinct count while exact, else the truncated CPC estimate.
    pub(crate) fn estimate(&self) -> i64 {
        match self {
            ApproxUnique::Exact(items) => items.len() as i64,
            ApproxUnique::Sketch(s) => s.estimate() as i64,
        }
    }

    #[cfg(test)]
    pub(crate) fn is_exact(&self) -> bool {
        matches!(self, ApproxUnique::Exact(_))
    }
}

// ---------------------------------------------------------------------------------------------
// APPROX_HISTOGRAM_K

/// Exact value counts while there are at most `k` distinct values, a frequent-items sketch after.
#[derive(Debug, Clone)]
pub(crate) enum ApproxHist {
    Exact(BTreeMap<Value, i64>),
    Sketch(FrequentItemsSketch<Value>),
}

/// The frequent-items map size: the smallest power of two ≥ 4k (at least 8). Chronon sizes the
/// map to k itself, but a map of size M only tracks 0.75·M items, so it could never return k
/// items; 4k keeps 3k counters and an error bound of 3.5/(4k) of the stream weight.
pub(super) fn sketch_size(k: usize) -> usize {
    k.max(1)
        .saturating_mul(4)
        .next_power_of_two()
        .clamp(8, 1 << 30)
}

impl ApproxHist {
    pub(crate) fn new() -> ApproxHist {
        ApproxHist::Exact(BTreeMap::new())
    }

    pub(crate) fn add(&mut self, k: usize, v: &Value, count: i64) {
        if count <= 0 {
            return;
        }
        match self {
            ApproxHist::Exact(m) => {
                *m.entry(v.clone()).or_insert(0) += count;
                self.maybe_promote(k);
            }
            ApproxHist::Sketch(s) => s.update_with_count(v.clone(), count as u64),
        }
    }

    fn maybe_promote(&mut self, k: usize) {
        if let ApproxHist::Exact(m) = self {
            if m.len() <= k {
                return;
            }
            let mut s = FrequentItemsSketch::new(sketch_size(k)).expect("power of two map size");
            for (v, c) in std::mem::take(m) {
                s.update_with_count(v, c as u64);
            }
            *self = ApproxHist::Sketch(s);
        }
    }

    pub(crate) fn merge(&mut self, k: usize, other: &ApproxHist) {
        match (&mut *self, other) {
            (ApproxHist::Exact(a), ApproxHist::Exact(b)) => {
                for (v, c) in b {
                    *a.entry(v.clone()).or_insert(0) += c;
                }
                self.maybe_promote(k);
            }
            (ApproxHist::Sketch(a), ApproxHist::Sketch(b)) => a.merge(b),
            (ApproxHist::Sketch(a), ApproxHist::Exact(b)) => {
                for (v, c) in b {
                    a.update_with_count(v.clone(), *c as u64);
                }
            }
            (ApproxHist::Exact(a), ApproxHist::Sketch(b)) => {
                let mut s = b.clone();
                for (v, c) in std::mem::take(a) {
                    s.update_with_count(v, c as u64);
                }
                *self = ApproxHist::Sketch(s);
            }
        }
    }

    /// `(value, count)` of at most `k` values: all of them while exact, else the sketch's
    /// no-false-positive items with the largest estimates (ties by value).
    pub(crate) fn top(&self, k: usize) -> Vec<(Value, i64)> {
        match self {
            ApproxHist::Exact(m) => m.iter().map(|(v, c)| (v.clone(), *c)).collect(),
            ApproxHist::Sketch(s) => {
                let mut rows: Vec<(Value, i64)> = s
                    .frequent_items(ErrorType::NoFalsePositives)
                    .into_iter()
                    .map(|r| (r.item().clone(), r.estimate() as i64))
                    .collect();
                rows.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                rows.truncate(k);
                rows
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// APPROX_PERCENTILE

/// Minimum capacity of a level.
const MIN_LEVEL_CAPACITY: usize = 8;
const SEED: u64 = 0x243f_6a88_85a3_08d3;

/// A deterministic KLL sketch over `f32` (see the module doc).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Kll {
    pub(super) k: u16,
    pub(super) n: u64,
    /// Level `h` holds items of weight `2^h`; level 0 in arrival order, the others sorted.
    pub(super) levels: Vec<Vec<f32>>,
    pub(super) min: f32,
    pub(super) max: f32,
    pub(super) rng: u64,
}

fn splitmix(state: u64) -> (u64, u64) {
    let s = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = s;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (s, z ^ (z >> 31))
}

/// `max(8, ⌈k·(2/3)^depth⌉)` in exact integer arithmetic.
fn level_capacity(k: u16, num_levels: usize, level: usize) -> usize {
    let depth = (num_levels - 1 - level) as u32;
    if depth > 40 {
        return MIN_LEVEL_CAPACITY;
    }
    let cap = ((k as u128) << depth).div_ceil(3u128.pow(depth));
    (cap as usize).max(MIN_LEVEL_CAPACITY)
}

fn merge_sorted(a: &[f32], b: &[f32]) -> Vec<f32> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        if b[j].total_cmp(&a[i]).is_lt() {
            out.push(b[j]);
            j += 1;
        } else {
            out.push(a[i]);
            i += 1;
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

impl Kll {
    /// `k` is validated by `AggSpec::new` (8..=65535); anything else is clamped.
    pub(crate) fn new(k: usize) -> Kll {
        Kll {
            k: k.clamp(8, 65535) as u16,
            n: 0,
            levels: vec![Vec::new()],
            min: f32::NAN,
            max: f32::NAN,
            rng: SEED,
        }
    }

    fn retained(&self) -> usize {
        self.levels.iter().map(Vec::len).sum()
    }

    fn capacity(&self) -> usize {
        let nl = self.levels.len();
        (0..nl).map(|h| level_capacity(self.k, nl, h)).sum()
    }

    fn next_bit(&mut self) -> usize {
        let (state, out) = splitmix(self.rng);
        self.rng = state;
        (out >> 63) as usize
    }

    fn note_extremes(&mut self, lo: f32, hi: f32) {
        if self.n == 0 || lo < self.min {
            self.min = lo;
        }
        if self.n == 0 || hi > self.max {
            self.max = hi;
        }
    }

    /// Adds one item; NaN is ignored (as DataSketches does).
    pub(crate) fn update(&mut self, x: f32) {
        if x.is_nan() {
            return;
        }
        self.note_extremes(x, x);
        self.n += 1;
        self.levels[0].push(x);
        self.compress();
    }

    pub(crate) fn merge(&mut self, other: &Kll) {
        if other.n == 0 {
            return;
        }
        self.note_extremes(other.min, other.max);
        self.n += other.n;
        while self.levels.len() < other.levels.len() {
            self.levels.push(Vec::new());
        }
        self.levels[0].extend_from_slice(&other.levels[0]);
        for h in 1..other.levels.len() {
            self.levels[h] = merge_sorted(&self.levels[h], &other.levels[h]);
        }
        self.rng = splitmix(self.rng ^ other.rng.rotate_left(29)).1;
        self.compress();
    }

    /// Compacts the lowest full level until the sketch is within its capacity.
    fn compress(&mut self) {
        while self.retained() >= self.capacity() {
            let nl = self.levels.len();
            let Some(h) = (0..nl).find(|&h| self.levels[h].len() >= level_capacity(self.k, nl, h))
            else {
                break;
            };
            self.compact(h);
        }
    }

    /// Halves level `h` into level `h + 1`: sorted items at even or odd positions (a coin flip)
    /// move up with double weight; with an odd count the first stored item stays.
    fn compact(&mut self, h: usize) {
        if h + 1 == self.levels.len() {
            self.levels.push(Vec::new());
        }
        let mut items = std::mem::take(&mut self.levels[h]);
        let kept = if items.len() % 2 == 1 {
            Some(items.remove(0))
        } else {
            None
        };
        if h == 0 {
            items.sort_by(f32::total_cmp);
        }
        let offset = self.next_bit();
        let promoted: Vec<f32> = items.iter().skip(offset).step_by(2).copied().collect();
        self.levels[h + 1] = merge_sorted(&self.levels[h + 1], &promoted);
        self.levels[h] = kept.into_iter().collect();
    }

    /// The quantile at each rank; `None` when the sketch has no item.
    pub(crate) fn quantiles(&self, ranks: &[f64]) -> Option<Vec<f32>> {
        if self.n == 0 {
            return None;
        }
        let mut weighted: Vec<(f32, u64)> = Vec::with_capacity(self.retained());
        for (h, level) in self.levels.iter().enumerate() {
            weighted.extend(level.iter().map(|x| (*x, 1u64 << h)));
        }
        weighted.sort_by(|a, b| a.0.total_cmp(&b.0));
        let quantile = |r: f64| -> f32 {
            if r <= 0.0 {
                return self.min;
            }
            if r >= 1.0 {
                return self.max;
            }
            let pos = (r * self.n as f64).floor() as u64;
            let mut cumulative = 0u64;
            for (x, w) in &weighted {
                cumulative += w;
                if cumulative > pos {
                    return *x;
                }
            }
            self.max
        };
        Some(ranks.iter().map(|r| quantile(*r)).collect())
    }
}
