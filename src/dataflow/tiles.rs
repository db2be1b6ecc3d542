//! Partial aggregates over time tiles for one key's events: the heart of the windowed join.
//!
//! A column with window `W` and hop `h` sees, for a query at `q`, the whole hop slots
//! `[floor(q − W, h), floor(q, h))` (the *tail*) plus the events of the query's own slot
//! before `q` (the *head*). The tail is read from aligned dyadic blocks: block `(l, i)` holds
//! the merged partial aggregate (IR) of slots `[i·2^l, (i+1)·2^l)`, so any slot range is at
//! most `2·log2(W/h)` block merges. Unbounded columns read a running prefix over day tiles.
//! SUM, COUNT and AVERAGE columns usually need no tiles at all: they read running sums
//! (`dataflow::running`).
//!
//! Every value is computed through the same fixed merge tree, whatever was cached or when:
//! a slot's IR is the fold of its events in time order, a block merges its two halves, a
//! query merges its blocks left to right and then its head. So an incrementally maintained
//! value is bit-identical to one computed from scratch (floating-point sums included).

use std::collections::BTreeMap;

use super::FastMap;
use std::rc::Rc;

use super::spec::PartSpec;
use crate::aggregate::{Ir, Value};

/// One stored source row: time, input values, multiplicity.
#[derive(Debug, Clone, PartialEq)]
pub struct Ev {
    pub ts: i64,
    pub inputs: Vec<Value>,
    pub mult: i64,
}

/// Columns that share a tile size (and whether they read the unbounded prefix). Columns that
/// can read running sums (`dataflow::running`) are grouped apart, so a group of them needs no
/// tiles when their inputs allow running sums.
#[derive(Debug, Clone)]
pub struct Group {
    pub hop: i64,
    pub prefix: bool,
    pub running: bool,
    pub cols: Vec<usize>,
    pub max_level: u32,
}

/// The tile groups of a part and where each column sits in them.
#[derive(Debug, Clone)]
pub struct Layout {
    pub groups: Vec<Group>,
    /// `(group, position within the group)` per column.
    pub col_group: Vec<(usize, usize)>,
}

impl Layout {
    pub fn new(spec: &PartSpec) -> Layout {
        let mut groups: Vec<Group> = Vec::new();
        let mut col_group = Vec::new();
        for (ci, c) in spec.columns.iter().enumerate() {
            let prefix = c.window.is_none();
            let running = super::running::supported(&c.agg);
            let gi = match groups
                .iter()
                .position(|g| g.hop == c.hop && g.prefix == prefix && g.running == running)
            {
                Some(gi) => gi,
                None => {
                    groups.push(Group {
                        hop: c.hop,
                        prefix,
                        running,
                        cols: Vec::new(),
                        max_level: 0,
                    });
                    groups.len() - 1
                }
            };
            let g = &mut groups[gi];
            col_group.push((gi, g.cols.len()));
            g.cols.push(ci);
            if let Some(w) = c.window {
                let slots = (w / c.hop + 2) as u64;
                g.max_level = g.max_level.max(64 - slots.leading_zeros());
            }
        }
        Layout { groups, col_group }
    }
}

/// IRs of a group's columns.
pub type Irs = Vec<Option<Ir>>;

/// The aligned dyadic blocks covering slots `[a, b)`, left to right.
pub fn decompose(mut a: i64, b: i64, max_level: u32) -> Vec<(u32, i64)> {
    let mut out = Vec::new();
    while a < b {
        let mut l = 0;
        while l < max_level {
            let size = 1i64 << (l + 1);
            if a & (size - 1) != 0 || a + size > b {
                break;
            }
            l += 1;
        }
        out.push((l, a >> l));
        a += 1i64 << l;
    }
    out
}

/// Computed blocks and prefixes of one key. Kept between epochs only for keys with many
/// events; dropping it never changes a value, only the work to recompute it.
#[derive(Debug, Default)]
pub struct TileCache {
    blocks: FastMap<(usize, u32, i64), Option<Rc<Irs>>>,
    /// Per prefix group: running IR through each non-empty day.
    prefixes: FastMap<usize, BTreeMap<i64, Rc<Irs>>>,
}

impl TileCache {
    /// Forgets everything that depends on an event at any of `times` (sorted).
    pub fn invalidate(&mut self, layout: &Layout, times: impl Iterator<Item = i64> + Clone) {
        if self.blocks.is_empty() && self.prefixes.is_empty() {
            return;
        }
        for (gi, g) in layout.groups.iter().enumerate() {
            if g.prefix {
                // running IRs from the earliest changed day on; most changes land after
                // every cached day, and a split there would still allocate a new tree
                let Some(first) = times.clone().next() else {
                    continue;
                };
                let slot = first.div_euclid(g.hop);
                if let Some(p) = self.prefixes.get_mut(&gi) {
                    if p.last_key_value().is_some_and(|(&d, _)| d >= slot) {
                        p.split_off(&slot);
                    }
                }
            } else {
                let mut last = None;
                for ts in times.clone() {
                    let slot = ts.div_euclid(g.hop);
                    if last == Some(slot) {
                        continue;
                    }
                    last = Some(slot);
                    for l in 0..=g.max_level {
                        self.blocks.remove(&(gi, l, slot >> l));
                    }
                }
            }
        }
    }

    pub fn clear(&mut self) {
        self.blocks.clear();
        self.prefixes.clear();
    }
}

/// Read access to one key's events through its tiles.
pub struct Tiles<'a> {
    pub spec: &'a PartSpec,
    pub layout: &'a Layout,
    pub events: &'a [Ev],
    pub cache: &'a mut TileCache,
    /// The key's stored aggregates before its first event, if any: unbounded prefixes
    /// start from them.
    pub base: Option<&'a super::base::Base>,
}

impl Tiles<'_> {
    fn range(&self, lo: i64, hi: i64) -> &[Ev] {
        let a = self.events.partition_point(|e| e.ts < lo);
        let b = self.events.partition_point(|e| e.ts < hi);
        &self.events[a..b.max(a)]
    }

    /// Folds events into a group's IRs, in order.
    pub fn fold(&self, gi: usize, irs: &mut Irs, events: &[Ev]) {
        let g = &self.layout.groups[gi];
        for e in events {
            for (pos, &ci) in g.cols.iter().enumerate() {
                let c = &self.spec.columns[ci];
                let bucket = c.bucket.map(|b| &e.inputs[b]);
                c.agg
                    .update(&mut irs[pos], e.ts, &e.inputs[c.input], bucket, e.mult);
            }
        }
    }

    fn merge(&self, gi: usize, into: &mut Irs, other: &Irs) {
        let g = &self.layout.groups[gi];
        for (pos, &ci) in g.cols.iter().enumerate() {
            self.spec.columns[ci].agg.merge(&mut into[pos], &other[pos]);
        }
    }

    fn empty(&self, gi: usize) -> Irs {
        vec![None; self.layout.groups[gi].cols.len()]
    }

    /// Block `(l, i)` of a group: `None` when it holds no events.
    pub fn block(&mut self, gi: usize, l: u32, i: i64) -> Option<Rc<Irs>> {
        let hop = self.layout.groups[gi].hop;
        let span = hop << l;
        if self.range(i * span, (i + 1) * span).is_empty() {
            return None;
        }
        if let Some(b) = self.cache.blocks.get(&(gi, l, i)) {
            return b.clone();
        }
        let irs = if l == 0 {
            let mut irs = self.empty(gi);
            let events = self.range(i * span, (i + 1) * span);
            self.fold(gi, &mut irs, events);
            Some(Rc::new(irs))
        } else {
            match (
                self.block(gi, l - 1, 2 * i),
                self.block(gi, l - 1, 2 * i + 1),
            ) {
                (Some(a), Some(b)) => {
                    let mut a = (*a).clone();
                    self.merge(gi, &mut a, &b);
                    Some(Rc::new(a))
                }
                (a, b) => a.or(b),
            }
        };
        self.cache.blocks.insert((gi, l, i), irs.clone());
        irs
    }

    /// The running IR over every day tile before `day` (prefix groups).
    pub fn prefix(&mut self, gi: usize, day: i64) -> Rc<Irs> {
        self.prefix_with(gi, day, true)
    }

    /// [`Tiles::prefix`], keeping the running IR of each day in the cache (`keep`) or not (a
    /// value read once: no copy per day).
    pub fn prefix_with(&mut self, gi: usize, day: i64, keep: bool) -> Rc<Irs> {
        let hop = self.layout.groups[gi].hop;
        // Start from the latest cached running IR before `day`, if any.
        let (mut acc, from) = match self
            .cache
            .prefixes
            .get(&gi)
            .and_then(|p| p.range(..day).next_back())
        {
            Some((d, irs)) => (irs.clone(), d + 1),
            // a stored base holds the running IR through the day before its boundary
            None => match self.base.and_then(|b| Some((b.at, b.prefix_of(gi)?))) {
                Some((at, irs)) if at.div_euclid(hop) <= day => {
                    (Rc::new(irs.clone()), at.div_euclid(hop))
                }
                _ => (Rc::new(self.empty(gi)), i64::MIN),
            },
        };
        let lo = if from == i64::MIN {
            i64::MIN
        } else {
            from * hop
        };
        let mut start = self.events.partition_point(|e| e.ts < lo);
        let end = self.events.partition_point(|e| e.ts < day * hop);
        while start < end {
            let d = self.events[start].ts.div_euclid(hop);
            let stop = start + self.events[start..end].partition_point(|e| e.ts < (d + 1) * hop);
            let mut tile = self.empty(gi);
            self.fold(gi, &mut tile, &self.events[start..stop]);
            self.merge(gi, Rc::make_mut(&mut acc), &tile);
            if keep {
                self.cache
                    .prefixes
                    .entry(gi)
                    .or_default()
                    .insert(d, acc.clone());
            }
            start = stop;
        }
        acc
    }
}

#[cfg(test)]
mod tests {
    use super::decompose;

    #[test]
    fn decomposition_covers_the_range_with_aligned_blocks() {
        for a in -20i64..20 {
            for b in a..a + 40 {
                let blocks = decompose(a, b, 4);
                let mut at = a;
                for (l, i) in &blocks {
                    assert_eq!(i << l, at, "blocks are contiguous and aligned");
                    at += 1 << l;
                }
                assert_eq!(at, b);
                assert!(blocks.len() <= 2 * 5 + (b - a) as usize / 16 + 1);
            }
        }
        assert_eq!(decompose(0, 8, 3), vec![(3, 0)]);
        assert_eq!(decompose(1, 7, 3), vec![(0, 1), (1, 1), (1, 2), (0, 6)]);
    }
}
