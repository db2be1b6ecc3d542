//! The state of one (join part, key) group inside the windows operator, and how an epoch's
//! updates to it turn into output changes. Only the queries a change can reach are
//! recomputed: for events, those whose windows may contain a changed event time; for entity
//! parts, those reading a changed partition. A query's value is emitted only if it changed.

use std::collections::{BTreeMap, BTreeSet};

use differential_dataflow::consolidation::consolidate;

use super::FastMap;

use super::base::Fed as BaseFed;
use super::records::{encode_row, Encoded, Item, Mutation, RowId, Value};
use super::running::{self, RunSums, Running};
use super::spec::{window_start, PartKind, PartSpec};
use super::tiles::{decompose, Ev, Irs, Layout, TileCache, Tiles};
use crate::aggregate::Ir;
use crate::partition::DAY_MS;

/// Keys with at least this many events keep their tiles cached between epochs.
static CACHE_FROM_EVENTS: std::sync::atomic::AtomicUsize =
    std::sync::atomic::AtomicUsize::new(16384);

/// Sets how many events a key needs before its tile cache is kept between epochs (default
/// 16384; caches of colder keys cost more memory than they save time). Values never depend
/// on it; tests lower it to exercise the cached path.
pub fn keep_tile_caches_from(events: usize) {
    CACHE_FROM_EVENTS.store(events, std::sync::atomic::Ordering::Relaxed);
}

fn cache_from_events() -> usize {
    CACHE_FROM_EVENTS.load(std::sync::atomic::Ordering::Relaxed)
}

/// One output change: a row's new values for the part (several for raw parts; none when
/// the row is gone). The output is an upsert stream keyed by `(row, part)`.
pub type OutChange = (RowId, Vec<Encoded>);

/// A fingerprint of what was emitted for a row, to tell whether a recomputed value changed
/// without keeping the values (the output partitions hold them).
fn fingerprint(values: &[Encoded]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    values.hash(&mut h);
    h.finish()
}

/// Everything the operator keeps for one group.
#[derive(Debug, Default)]
pub struct KeyState {
    /// Event rows (kind Events), sorted by time then values.
    events: Vec<Ev>,
    /// Entity snapshot rows by partition, sorted.
    rows: BTreeMap<i32, Vec<Ev>>,
    /// Mutation rows by partition, sorted by mutation time.
    muts: BTreeMap<i32, Vec<(Mutation, Ev)>>,
    /// Live queries: `(q, row) → partition read`.
    queries: BTreeMap<(i64, RowId), i32>,
    /// Fingerprint of what was emitted per row.
    out: FastMap<RowId, u64>,
    cache: TileCache,
    /// Stored aggregates of the events before the first one here (`dataflow::base`); boxed,
    /// so a group without them (every group of a run that did not start from them) pays
    /// one word.
    base: Option<Box<BaseFed>>,
}

impl KeyState {
    /// Whether the group holds nothing (and can be dropped).
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
            && self.rows.is_empty()
            && self.muts.is_empty()
            && self.queries.is_empty()
            && self.base.is_none()
    }

    /// Applies one epoch's updates (not necessarily consolidated) and appends the resulting
    /// output changes. Source rows need no consolidation here: they are sorted and merged
    /// into the group's rows, equal rows summing their multiplicities. Queries are
    /// consolidated first, so a query added and removed in one epoch is neither.
    pub fn apply(
        &mut self,
        spec: &PartSpec,
        layout: &Layout,
        updates: Vec<(Item, isize)>,
        out: &mut Vec<OutChange>,
    ) {
        let mut events: Vec<(Ev, Option<Mutation>, i32)> = Vec::with_capacity(updates.len());
        let mut queries: Vec<((RowId, i64, i32), isize)> = Vec::new();
        let mut bases: Vec<(Vec<u8>, isize)> = Vec::new();
        let mut affected: BTreeSet<(i64, RowId)> = BTreeSet::new();
        for (item, diff) in updates {
            match item {
                Item::Row {
                    ds,
                    ts,
                    mutation,
                    inputs,
                } => events.push((
                    Ev {
                        ts,
                        inputs,
                        mult: diff as i64,
                    },
                    mutation,
                    ds,
                )),
                Item::Query { row, q, ds } => queries.push(((row, q, ds), diff)),
                Item::Base { state } => bases.push((state, diff)),
            }
        }
        if !bases.is_empty() {
            self.apply_bases(bases, &mut affected);
        }
        consolidate(&mut queries);
        for ((row, q, ds), diff) in queries {
            if diff > 0 {
                self.queries.insert((q, row), ds);
                affected.insert((q, row));
            } else if self.queries.remove(&(q, row)).is_some() {
                affected.remove(&(q, row));
                if self.out.remove(&row).is_some() {
                    out.push((row, Vec::new()));
                }
            }
        }
        if !events.is_empty() {
            match spec.kind {
                PartKind::Events => self.apply_events(spec, layout, events, &mut affected),
                _ => self.apply_rows(spec, events, &mut affected),
            }
        }
        self.recompute(spec, layout, affected, out);
        if self.events.len() < cache_from_events() {
            self.cache.clear();
        }
    }

    /// Sets or removes the key's stored aggregates: every query may read them.
    fn apply_bases(
        &mut self,
        mut bases: Vec<(Vec<u8>, isize)>,
        affected: &mut BTreeSet<(i64, RowId)>,
    ) {
        consolidate(&mut bases);
        // removals first: a base replaced in one epoch is a retraction and an insertion
        bases.sort_by_key(|(_, d)| *d);
        for (state, diff) in bases {
            if diff < 0 {
                if self
                    .base
                    .as_ref()
                    .is_some_and(|b| b.bytes() == state.as_slice())
                {
                    self.base = None;
                }
            } else {
                self.base = Some(Box::new(BaseFed::new(state)));
            }
        }
        self.cache.clear();
        affected.extend(self.queries.keys().copied());
    }

    fn apply_events(
        &mut self,
        spec: &PartSpec,
        layout: &Layout,
        mut changes: Vec<(Ev, Option<Mutation>, i32)>,
        affected: &mut BTreeSet<(i64, RowId)>,
    ) {
        changes.sort_by(|a, b| (a.0.ts, &a.0.inputs).cmp(&(b.0.ts, &b.0.inputs)));
        let (lo, hi) = (changes[0].0.ts, changes[changes.len() - 1].0.ts);
        self.cache
            .invalidate(layout, changes.iter().map(|(e, _, _)| e.ts));
        merge_into(&mut self.events, changes.into_iter().map(|c| c.0).collect());
        // A query at q sees [window_start(q), q): it can see a change in [lo, hi] only if
        // q > lo and window_start(q) ≤ hi.
        let reach = spec.max_window();
        let upper = reach.map_or(i64::MAX, |r| hi.saturating_add(r).saturating_add(1));
        for (&(q, row), _) in self.queries.range((lo.saturating_add(1), 0)..) {
            if q > upper {
                break;
            }
            affected.insert((q, row));
        }
    }

    fn apply_rows(
        &mut self,
        spec: &PartSpec,
        changes: Vec<(Ev, Option<Mutation>, i32)>,
        affected: &mut BTreeSet<(i64, RowId)>,
    ) {
        let mut snap_days = BTreeSet::new();
        let mut read_days = BTreeSet::new();
        let mut by_ds: BTreeMap<i32, Vec<Ev>> = BTreeMap::new();
        let mut muts_by_ds: BTreeMap<i32, Vec<(Mutation, Ev)>> = BTreeMap::new();
        for (e, m, ds) in changes {
            match m {
                Some(m) => {
                    muts_by_ds.entry(ds).or_default().push((m, e));
                    read_days.insert(ds - 1);
                }
                None => {
                    by_ds.entry(ds).or_default().push(e);
                    snap_days.insert(ds);
                }
            }
        }
        for (ds, mut new) in by_ds {
            new.sort_by(|a, b| (a.ts, &a.inputs).cmp(&(b.ts, &b.inputs)));
            let mut rows = self.rows.remove(&ds).unwrap_or_default();
            merge_into(&mut rows, new);
            if !rows.is_empty() {
                self.rows.insert(ds, rows);
            }
        }
        for (ds, mut new) in muts_by_ds {
            let mut all = self.muts.remove(&ds).unwrap_or_default();
            all.append(&mut new);
            all.sort_by(|a, b| (a.0, a.1.ts, &a.1.inputs).cmp(&(b.0, b.1.ts, &b.1.inputs)));
            let mut merged: Vec<(Mutation, Ev)> = Vec::with_capacity(all.len());
            for (m, e) in all {
                match merged.last_mut() {
                    Some((lm, le)) if *lm == m && le.ts == e.ts && le.inputs == e.inputs => {
                        le.mult += e.mult
                    }
                    _ => merged.push((m, e)),
                }
            }
            merged.retain(|(_, e)| e.mult != 0);
            if !merged.is_empty() {
                self.muts.insert(ds, merged);
            }
        }
        read_days.extend(snap_days);
        let _ = spec;
        for (&(q, row), ds) in &self.queries {
            if read_days.contains(ds) {
                affected.insert((q, row));
            }
        }
    }

    fn recompute(
        &mut self,
        spec: &PartSpec,
        layout: &Layout,
        affected: BTreeSet<(i64, RowId)>,
        out: &mut Vec<OutChange>,
    ) {
        if affected.is_empty() {
            return;
        }
        let mut results: Vec<(RowId, Vec<Encoded>)> = Vec::with_capacity(affected.len());
        match spec.kind {
            PartKind::Events => {
                // invertible columns read running sums (one per input column); a group of
                // columns that all do needs no tiles at all
                // laid out from the earliest event a bounded window of the earliest query
                // starts at (or that query's time): unbounded windows read only the total
                // before it
                let q_min = affected.first().map_or(i64::MIN, |&(q, _)| q);
                let lo = spec
                    .columns
                    .iter()
                    .filter(|c| running::supported(&c.agg) && c.window.is_some())
                    .map(|c| window_start(c.window, c.hop, q_min))
                    .fold(q_min, i64::min);
                let from = self.events.partition_point(|e| e.ts < lo);
                let base = self.base.as_mut().and_then(|b| b.get(spec, layout));
                let mut by_input: FastMap<usize, Running> = FastMap::default();
                for c in spec.columns.iter().filter(|c| running::supported(&c.agg)) {
                    by_input.entry(c.input).or_insert_with(|| {
                        let sums = base.and_then(|b| b.sums_of(c.input));
                        Running::build(c.input, &self.events, from, sums)
                    });
                }
                let running: Vec<Option<&Running>> = spec
                    .columns
                    .iter()
                    .map(|c| {
                        by_input
                            .get(&c.input)
                            .filter(|r| running::supported(&c.agg) && r.serves(&c.agg))
                    })
                    .collect();
                let skip: Vec<bool> = layout
                    .groups
                    .iter()
                    .map(|g| g.cols.iter().all(|&ci| running[ci].is_some()))
                    .collect();
                let read = Read {
                    running: &running,
                    skip: &skip,
                };
                let mut tiles = Tiles {
                    spec,
                    layout,
                    events: &self.events,
                    cache: &mut self.cache,
                    base,
                };
                let mut heads: Vec<Head> = layout.groups.iter().map(|_| Head::default()).collect();
                let mut buf = Vec::new();
                let mut last: Option<(i64, Encoded)> = None;
                for &(q, row) in &affected {
                    let values = match &last {
                        Some((lq, v)) if *lq == q => v.clone(),
                        _ => {
                            buf.clear();
                            event_values(&mut tiles, &mut heads, &read, q, &mut buf);
                            buf.as_slice().into()
                        }
                    };
                    last = Some((q, values.clone()));
                    results.push((row, vec![values]));
                }
            }
            PartKind::Snapshot | PartKind::Mutations | PartKind::Raw => {
                let mut memo: FastMap<i32, Vec<Encoded>> = FastMap::default();
                for &(q, row) in &affected {
                    let ds = self.queries[&(q, row)];
                    let values = match spec.kind {
                        PartKind::Snapshot => memo
                            .entry(ds)
                            .or_insert_with(|| vec![encode_row(&self.snapshot_values(spec, ds))])
                            .clone(),
                        PartKind::Mutations => {
                            vec![encode_row(&self.mutation_values(spec, ds, q))]
                        }
                        _ => memo
                            .entry(ds)
                            .or_insert_with(|| {
                                self.raw_values(ds).iter().map(|v| encode_row(v)).collect()
                            })
                            .clone(),
                    };
                    results.push((row, values));
                }
            }
        }
        for (row, new) in results {
            let f = fingerprint(&new);
            if self.out.insert(row, f) != Some(f) {
                out.push((row, new));
            }
        }
    }

    /// The key's stored aggregates at `at` (a day start, not before the key's own base),
    /// encoded: what its unbounded columns read of the events before `at`. `None` when the
    /// part has no unbounded column or the key no event before `at`.
    pub fn base_at(&mut self, spec: &PartSpec, layout: &Layout, at: i64) -> Option<Vec<u8>> {
        if spec.kind != PartKind::Events || spec.max_window().is_some() {
            return None;
        }
        if self.base.as_ref().is_some_and(|b| b.at() > at) {
            return None;
        }
        let end = self.events.partition_point(|e| e.ts < at);
        match &self.base {
            None if end == 0 => return None,
            // no event since the base: the same aggregates at the new boundary
            Some(b) if end == 0 => return Some(b.moved_to(at)),
            _ => {}
        }
        let own = self.base.as_mut().and_then(|b| b.get(spec, layout));
        let mut sums: Vec<(usize, RunSums)> = Vec::new();
        for c in spec.columns.iter() {
            if c.window.is_none()
                && running::supported(&c.agg)
                && !sums.iter().any(|(i, _)| *i == c.input)
            {
                let mut s = own
                    .and_then(|b| b.sums_of(c.input))
                    .copied()
                    .unwrap_or_default();
                s.add(c.input, &self.events[..end]);
                sums.push((c.input, s));
            }
        }
        let mut tiles = Tiles {
            spec,
            layout,
            events: &self.events,
            cache: &mut self.cache,
            base: own,
        };
        // read once: the running IR of each day is not kept
        let prefix: Vec<(usize, std::rc::Rc<super::tiles::Irs>)> = layout
            .groups
            .iter()
            .enumerate()
            .filter(|(_, g)| g.prefix)
            .map(|(gi, g)| (gi, tiles.prefix_with(gi, at.div_euclid(g.hop), false)))
            .collect();
        let prefix: Vec<(usize, &super::tiles::Irs)> =
            prefix.iter().map(|(g, irs)| (*g, &**irs)).collect();
        Some(super::base::encode(at, &prefix, &sums))
    }

    /// Entity snapshot `ds` aggregated as of the end of that day.
    fn snapshot_values(&self, spec: &PartSpec, ds: i32) -> Vec<Value> {
        let end = (ds as i64 + 1) * DAY_MS;
        let rows = self.rows.get(&ds).map_or(&[][..], |r| &r[..]);
        spec.columns
            .iter()
            .map(|c| {
                let mut ir: Option<Ir> = None;
                for e in rows {
                    if c.window.is_none_or(|w| e.ts >= end - w && e.ts < end) {
                        let bucket = c.bucket.map(|b| &e.inputs[b]);
                        c.agg
                            .update(&mut ir, e.ts, &e.inputs[c.input], bucket, e.mult);
                    }
                }
                c.agg.finalize(&ir)
            })
            .collect()
    }

    /// Snapshot `ds` as of the end of its day, then the mutations of the next day before `q`.
    fn mutation_values(&self, spec: &PartSpec, ds: i32, q: i64) -> Vec<Value> {
        let batch_end = (ds as i64 + 1) * DAY_MS;
        let rows = self.rows.get(&ds).map_or(&[][..], |r| &r[..]);
        let muts = self.muts.get(&(ds + 1)).map_or(&[][..], |r| &r[..]);
        spec.columns
            .iter()
            .map(|c| {
                let lo = window_start(c.window, c.hop, q);
                let mut ir: Option<Ir> = None;
                for e in rows {
                    if c.window.is_none() || (e.ts >= lo && e.ts < batch_end) {
                        let bucket = c.bucket.map(|b| &e.inputs[b]);
                        c.agg
                            .update(&mut ir, e.ts, &e.inputs[c.input], bucket, e.mult);
                    }
                }
                for (m, e) in muts {
                    if m.mts < batch_end || m.mts >= q {
                        continue;
                    }
                    if c.window.is_some() && (e.ts < lo || e.ts >= q) {
                        continue;
                    }
                    let w = if m.before { -e.mult } else { e.mult };
                    let bucket = c.bucket.map(|b| &e.inputs[b]);
                    c.agg.update(&mut ir, e.ts, &e.inputs[c.input], bucket, w);
                }
                c.agg.finalize(&ir)
            })
            .collect()
    }

    /// Raw rows of snapshot `ds` (no-aggregation parts), each repeated by its multiplicity.
    fn raw_values(&self, ds: i32) -> Vec<Vec<Value>> {
        let rows = self.rows.get(&ds).map_or(&[][..], |r| &r[..]);
        rows.iter()
            .flat_map(|e| std::iter::repeat_n(e.inputs.clone(), e.mult.max(0) as usize))
            .collect()
    }
}

/// A running head: the IRs of one group's current slot up to the last query time.
#[derive(Default)]
struct Head {
    slot: Option<i64>,
    next: usize,
    irs: Irs,
}

/// How a recompute reads each column: from running sums (`running[column]`), or from tiles;
/// `skip[group]` when none of a tile group's columns needs tiles.
struct Read<'a> {
    running: &'a [Option<&'a Running>],
    skip: &'a [bool],
}

/// Appends the encoded values of every column for a query at `q` to `out` (queries arrive
/// in increasing `q`).
fn event_values(tiles: &mut Tiles, heads: &mut [Head], read: &Read, q: i64, out: &mut Vec<u8>) {
    let layout = tiles.layout;
    let spec = tiles.spec;
    // Advance each group's head to q.
    for (gi, g) in layout.groups.iter().enumerate() {
        if read.skip[gi] {
            continue;
        }
        let slot = q.div_euclid(g.hop);
        let h = &mut heads[gi];
        if h.slot != Some(slot) {
            h.slot = Some(slot);
            h.next = tiles.events.partition_point(|e| e.ts < slot * g.hop);
            h.irs = vec![None; g.cols.len()];
        }
        let stop = h.next + tiles.events[h.next..].partition_point(|e| e.ts < q);
        let events = tiles.events;
        tiles.fold(gi, &mut h.irs, &events[h.next..stop]);
        h.next = stop;
    }
    let mut prefixes: Vec<Option<std::rc::Rc<Irs>>> = vec![None; layout.groups.len()];
    let events = tiles.events;
    // where the query's events end, for the columns that read running sums
    let end = if read.running.iter().any(Option::is_some) {
        events.partition_point(|e| e.ts < q)
    } else {
        0
    };
    for (ci, c) in spec.columns.iter().enumerate() {
        let value = if let Some(r) = &read.running[ci] {
            let lo = window_start(c.window, c.hop, q);
            let start = if lo == i64::MIN {
                None
            } else {
                Some(events[..end].partition_point(|e| e.ts < lo))
            };
            r.value(&c.agg, start, end)
        } else {
            let (gi, pos) = layout.col_group[ci];
            let g = &layout.groups[gi];
            let slot = q.div_euclid(g.hop);
            let mut acc: Option<Ir> = None;
            if g.prefix {
                let p = prefixes[gi].get_or_insert_with(|| tiles.prefix(gi, slot));
                acc = p[pos].clone();
            } else {
                let first = window_start(c.window, g.hop, q).div_euclid(g.hop);
                for (l, i) in decompose(first, slot, g.max_level) {
                    if let Some(b) = tiles.block(gi, l, i) {
                        c.agg.merge(&mut acc, &b[pos]);
                    }
                }
            }
            c.agg.merge(&mut acc, &heads[gi].irs[pos]);
            c.agg.finalize(&acc)
        };
        crate::aggregate::codec::encode_value(&value, out);
    }
}

/// Merges sorted changes into a sorted, consolidated list, summing multiplicities and
/// dropping rows that reach zero. Only the rows from the first change on are moved, so
/// appending a day to a key's history costs that day, not the history.
fn merge_into(rows: &mut Vec<Ev>, new: Vec<Ev>) {
    let Some(first) = new.first() else {
        return;
    };
    let at = rows.partition_point(|e| (e.ts, &e.inputs) < (first.ts, &first.inputs));
    let tail = rows.split_off(at);
    let merged = merge_sorted(tail, new);
    rows.extend(merged);
}

/// Merges a sorted, consolidated list with sorted changes, summing multiplicities and
/// dropping rows that reach zero.
fn merge_sorted(old: Vec<Ev>, new: Vec<Ev>) -> Vec<Ev> {
    let mut out: Vec<Ev> = Vec::with_capacity(old.len() + new.len());
    let mut a = old.into_iter().peekable();
    let mut b = new.into_iter().peekable();
    loop {
        let next = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) => {
                if (x.ts, &x.inputs) <= (y.ts, &y.inputs) {
                    a.next()
                } else {
                    b.next()
                }
            }
            (Some(_), None) => a.next(),
            (None, Some(_)) => b.next(),
            (None, None) => break,
        };
        let Some(e) = next else { break };
        match out.last_mut() {
            Some(l) if l.ts == e.ts && l.inputs == e.inputs => l.mult += e.mult,
            _ => out.push(e),
        }
    }
    out.retain(|e| e.mult != 0);
    out
}

#[cfg(test)]
mod tests {
    use super::{merge_into, Ev, Value};

    fn ev(ts: i64, v: i64, mult: i64) -> Ev {
        Ev {
            ts,
            inputs: vec![Value::Long(v)],
            mult,
        }
    }

    /// Merging into the middle or after the end of a history equals sorting and consolidating
    /// everything, rows that cancel out included.
    #[test]
    fn merging_changes_equals_consolidating_everything() {
        let history: Vec<Ev> = (0..20).map(|i| ev(i * 10, i, 1)).collect();
        let cases: Vec<Vec<Ev>> = vec![
            vec![ev(500, 1, 1), ev(510, 2, 2)],
            vec![ev(95, 7, 1), ev(100, 10, -1), ev(100, 10, 0), ev(300, 3, 1)],
            vec![ev(-5, 0, 1), ev(0, 0, 2)],
            vec![ev(190, 19, -1)],
            vec![],
        ];
        for new in cases {
            let mut want: Vec<Ev> = history.iter().chain(&new).cloned().collect();
            want.sort_by(|a, b| (a.ts, &a.inputs).cmp(&(b.ts, &b.inputs)));
            let mut consolidated: Vec<Ev> = Vec::new();
            for e in want {
                match consolidated.last_mut() {
                    Some(l) if l.ts == e.ts && l.inputs == e.inputs => l.mult += e.mult,
                    _ => consolidated.push(e),
                }
            }
            consolidated.retain(|e| e.mult != 0);
            let mut got = history.clone();
            merge_into(&mut got, new.clone());
            let key = |v: &[Ev]| v.iter().map(|e| (e.ts, e.mult)).collect::<Vec<_>>();
            assert_eq!(key(&got), key(&consolidated), "changes {:?}", key(&new));
        }
    }
}
