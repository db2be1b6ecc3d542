//! Maintains a GroupBy backfill table through the join dataflow. A [`GroupByRunner`] keeps its
//! dataflow between runs: the first run computes the missing days step by step; each later
//! run first feeds what changed since — a re-landed or removed source partition (its old rows
//! retracted, its new rows fed) — and rewrites exactly the written days it reaches, then
//! computes the days still missing.
//!
//! A day `D` is computed with one query per key that has a row on `D` —
//! `Item::Query { row: row_id(D, i), q: (D+1) 00:00, ds: D }`, exactly an entity-left join
//! row for day `D` — sealed as one epoch, then written; its queries (and, for entity
//! GroupBys, its snapshot rows) are retracted with the next epoch, so the dataflow holds one
//! epoch of them at a time. Event rows stay fed (a later day and a re-landed partition need
//! them); a snapshot serves only its own day and is read again when that day is recomputed.

use std::collections::{BTreeMap, BTreeSet};

use arrow::record_batch::RecordBatch;

use super::join::same_rows;
use crate::config::GroupBy;
use crate::dataflow::records::{row_id, Item};
use crate::dataflow::spec::PartKind;
use crate::dataflow::{Dataflow, Update};
use crate::engine::{Context, Progress, Schedule};
use crate::error::{Error, Result};
use crate::groupby::keys::{KeyId, KeyIndex};
use crate::groupby::output::{self, Schemas};
use crate::groupby::plan::{backfill_range, GroupByPlan};
use crate::join::feed::{Feeds, InputId};
use crate::join::inputs::{self, check_key_types, EventStats};
use crate::join::output::OutputState;
use crate::join::part::{needed_days, part_input_types, part_spec, source_range};
use crate::partition::{Ds, PartitionRange, DAY_MS};
use crate::sql::Session;

/// Options of a GroupBy backfill.
#[derive(Debug, Clone)]
pub struct GroupByOptions {
    /// First partition, overriding `backfillStartDate`.
    pub start: Option<Ds>,
    /// Last partition.
    pub end: Ds,
    /// Partitions computed (and written) per step.
    pub step_days: usize,
    /// On the first run, recompute existing days too and rewrite only those that differ.
    pub verify_existing: bool,
}

/// What a GroupBy backfill did.
#[derive(Debug, Default)]
pub struct GroupByReport {
    pub output: String,
    pub range: Option<PartitionRange>,
    pub written: Vec<Ds>,
    /// Days written before whose inputs changed, rewritten (or dropped: no source has the
    /// day any more).
    pub rewritten: Vec<Ds>,
    /// Days with source data in the range that were not computed: already present, or
    /// before the first existing partition (Chronon's first-hole rule).
    pub skipped_existing: usize,
    /// Rows written.
    pub rows: u64,
    /// Event GroupBy rows dropped because every value was NULL.
    pub dropped_all_null: u64,
    /// Source rows read, and those skipped (a NULL key, a NULL `ts`).
    pub source: EventStats,
}

/// Backfills the missing partitions of a GroupBy's backfill table in
/// `[backfillStartDate (or opts.start), opts.end]` (only `opts.end` when
/// `metaData.historicalBackfill` is false).
pub fn backfill_group_by(
    cx: &Context,
    gb: &GroupBy,
    opts: &GroupByOptions,
    progress: Progress,
) -> Result<GroupByReport> {
    GroupByRunner::new(gb)?.run(cx, opts, progress)
}

/// A GroupBy backfill table kept up to date by one dataflow.
pub struct GroupByRunner {
    gb: GroupBy,
    plan: GroupByPlan,
    live: Option<Live>,
}

/// The running dataflow and what it was fed.
struct Live {
    dataflow: Dataflow,
    index: KeyIndex,
    schemas: Schemas,
    state: OutputState,
    /// Event GroupBys: every source partition fed, with its rows (to retract it exactly).
    feeds: Feeds,
    /// Entity GroupBys: the source fingerprints each written day was computed from.
    snapshots: BTreeMap<Ds, Vec<Option<u64>>>,
    /// Days this runner wrote (their values are maintained).
    owned: BTreeSet<Ds>,
    /// What the next epoch retracts: the last epoch's queries (and snapshot rows), and the
    /// days they were for.
    retract: Vec<Update>,
    retract_days: BTreeSet<Ds>,
    /// Existing days a verifying first run recomputes: written only if their rows differ.
    verify: BTreeSet<Ds>,
}

/// Partitions and fingerprints of each source.
type SourceFps = Vec<Vec<(Ds, u64)>>;

impl GroupByRunner {
    /// Plans the GroupBy; the dataflow starts on the first run.
    pub fn new(gb: &GroupBy) -> Result<GroupByRunner> {
        Ok(GroupByRunner {
            gb: gb.clone(),
            plan: GroupByPlan::new(gb)?,
            live: None,
        })
    }

    /// Feeds what changed since the last run, rewrites the written days it reaches, and
    /// computes the missing days of `[backfillStartDate (or opts.start), opts.end]`.
    pub fn run(
        &mut self,
        cx: &Context,
        opts: &GroupByOptions,
        progress: Progress,
    ) -> Result<GroupByReport> {
        let engine = cx.session();
        let plan = &self.plan;
        let part = &plan.part;
        let wh = engine.warehouse().clone();
        let mut report = GroupByReport {
            output: plan.output.to_string(),
            ..Default::default()
        };
        let fps: SourceFps = part
            .sources
            .iter()
            .map(|s| s.scan.fingerprints(&wh))
            .collect::<Result<_>>()?;
        let range = backfill_range(&self.gb, opts.start, opts.end)?;
        report.range = Some(range);
        // days with source data in range, missing from the output
        let candidates: BTreeSet<Ds> = fps
            .iter()
            .flatten()
            .map(|(d, _)| *d)
            .filter(|d| range.contains(*d))
            .collect();
        let existing = wh.partitions(&plan.output)?;
        // a first run that verifies recomputes the existing days too (see `compute`)
        let verify: BTreeSet<Ds> = if opts.verify_existing && self.live.is_none() {
            existing
                .iter()
                .copied()
                .filter(|d| candidates.contains(d))
                .collect()
        } else {
            BTreeSet::new()
        };
        let schedule = Schedule::plan(
            candidates,
            &existing,
            &verify,
            false,
            opts.step_days,
            &report.output,
        )?;
        report.skipped_existing = schedule.skipped_existing;
        tracing::info!(group_by = %plan.name, output = %plan.output, %range, missing = schedule.todo.len(), existing = report.skipped_existing, "group_by plan");
        if schedule.is_empty() && self.live.is_none() {
            return Ok(report);
        }
        if self.live.is_none() {
            self.live = Some(start(cx, plan)?);
        }
        let live = self.live.as_mut().expect("started above");
        live.verify.extend(verify.iter().copied());

        // 1. Deltas: re-landed or removed source partitions reach written days.
        if !live.owned.is_empty() {
            let dirty = sync_written(engine, plan, live, &fps, &mut report)?;
            if !dirty.is_empty() {
                let days: Vec<Ds> = dirty.into_iter().collect();
                let written = compute(engine, plan, live, &fps, &days, &mut report)?;
                report.rewritten.extend(written);
            }
        }

        // 2. Missing days, step by step.
        schedule.run(&plan.output.to_string(), progress, |_, days| {
            let days: Vec<Ds> = days.iter().copied().collect();
            if part.kind == PartKind::Events {
                feed_events(engine, plan, live, &fps, &days, &mut report)?;
            }
            let written = compute(engine, plan, live, &fps, &days, &mut report)?;
            for d in written {
                if verify.contains(&d) {
                    report.rewritten.push(d);
                } else {
                    report.written.push(d);
                }
            }
            Ok(())
        })?;
        if !report.written.is_empty() || !report.rewritten.is_empty() {
            wh.set_properties(
                &plan.output,
                &self.gb.meta_data.chronon_table_properties("group_by"),
            )?;
        }
        let st = &report.source;
        if st.skipped() > 0 {
            tracing::warn!(group_by = %plan.name, rows = st.rows, null_keys = st.null_keys, null_ts = st.null_ts, bad_ts = st.bad_ts, "source rows skipped: a key NULL, a NULL ts or a ts outside years 0001-9999");
        }
        Ok(report)
    }
}

/// Checks the sources' schemas and installs the dataflow.
fn start(cx: &Context, plan: &GroupByPlan) -> Result<Live> {
    let engine = cx.session();
    let part = &plan.part;
    // keys as in the first source, every source's keys of the same kind
    let first = engine.scan_schema(&part.sources[0].scan)?;
    let first_table = part.sources[0].scan.table.clone();
    let types = part_input_types(engine, part, &|s, schema| {
        check_key_types(
            &first,
            &part.right_keys,
            schema,
            &part.right_keys,
            &first_table,
            &s.scan.table,
        )
    })?;
    let key_fields = part
        .right_keys
        .iter()
        .map(|k| {
            first
                .field_with_name(k)
                .map(|f| f.as_ref().clone().with_nullable(true))
                .map_err(|_| {
                    Error::data(
                        &first_table,
                        None,
                        format!("key column `{k}` is not selected"),
                    )
                })
        })
        .collect::<Result<Vec<_>>>()?;
    let schemas = Schemas::new(engine, plan, &key_fields, &types)?;
    Ok(Live {
        dataflow: cx.runtime()?.install(vec![part_spec(part, &types)], None)?,
        index: KeyIndex::new(part, key_fields),
        schemas,
        state: OutputState::default(),
        feeds: Feeds::default(),
        snapshots: BTreeMap::new(),
        owned: BTreeSet::new(),
        retract: Vec::new(),
        retract_days: BTreeSet::new(),
        verify: BTreeSet::new(),
    })
}

fn source_id(i: usize) -> InputId {
    InputId::Source {
        part: 0,
        source: i as u16,
        mutations: false,
    }
}

/// Turns source batches into dataflow rows (counting what was read when `count`).
fn rows_of(
    plan: &GroupByPlan,
    table: &str,
    batches: &[RecordBatch],
    report: &mut GroupByReport,
    count: bool,
) -> Result<Vec<(RecordBatch, Vec<Update>)>> {
    let mut out = Vec::new();
    for b in batches {
        let mut stats = EventStats::default();
        let updates = inputs::source_rows(b, &plan.part, false, table, &mut stats)?;
        if count {
            let st = &mut report.source;
            st.add(&stats);
        }
        out.push((b.clone(), updates));
    }
    Ok(out)
}

/// Event GroupBys: feeds the source partitions the windows of `days` reach (each once).
fn feed_events(
    engine: &Session,
    plan: &GroupByPlan,
    live: &mut Live,
    fps: &SourceFps,
    days: &[Ds],
    report: &mut GroupByReport,
) -> Result<()> {
    let (Some(&lo), Some(&hi)) = (days.first(), days.last()) else {
        return Ok(());
    };
    let part = &plan.part;
    let (from, to) = needed_days(part, lo.shift(1).start_millis(), hi.shift(1).start_millis());
    let step_days: BTreeSet<Ds> = days.iter().copied().collect();
    for (i, s) in part.sources.iter().enumerate() {
        let Some(r) = source_range(&s.scan, &fps[i], from, to)? else {
            continue;
        };
        let want = |d: Ds| r.contains(d);
        let keep = |b: Vec<RecordBatch>| Ok(b);
        let changes = live
            .feeds
            .sync(engine, &s.scan, source_id(i), &fps[i], &want, &keep)?;
        for c in changes {
            apply_event_change(
                plan,
                live,
                &s.scan.table,
                &c.old,
                &c.new,
                &step_days,
                &s.scan.purpose,
                report,
            )?;
        }
    }
    Ok(())
}

/// Retracts the rows of `old` and feeds those of `new` (one source partition's change),
/// keeping the key index in step. Returns the event-time days the rows span.
#[allow(clippy::too_many_arguments)]
fn apply_event_change(
    plan: &GroupByPlan,
    live: &mut Live,
    table: &str,
    old: &[RecordBatch],
    new: &[RecordBatch],
    days: &BTreeSet<Ds>,
    what: &str,
    report: &mut GroupByReport,
) -> Result<Option<(i32, i32)>> {
    let mut span: Option<(i32, i32)> = None;
    let mut widen = |updates: &[Update]| {
        for ((_, item), _) in updates {
            if let Item::Row { ts, .. } = item {
                let d = ts.div_euclid(DAY_MS) as i32;
                let s = span.get_or_insert((d, d));
                s.0 = s.0.min(d);
                s.1 = s.1.max(d);
            }
        }
    };
    for (_, updates) in rows_of(plan, table, old, report, false)? {
        widen(&updates);
        live.index.remove(&updates);
        live.dataflow
            .update(updates.into_iter().map(|(d, r)| (d, -r)).collect());
    }
    for (b, updates) in rows_of(plan, table, new, report, true)? {
        widen(&updates);
        live.index.add(&plan.part, &b, &updates, days, what)?;
        live.dataflow.update(updates);
    }
    Ok(span)
}

/// Finds the written days whose inputs changed since they were computed: for event
/// GroupBys, the days whose windows reach a re-landed or removed source partition (whose
/// rows are retracted and re-fed here); for entity GroupBys, the days whose snapshot
/// changed. A day whose inputs are all gone is dropped from the output.
fn sync_written(
    engine: &Session,
    plan: &GroupByPlan,
    live: &mut Live,
    fps: &SourceFps,
    report: &mut GroupByReport,
) -> Result<BTreeSet<Ds>> {
    let part = &plan.part;
    let mut dirty = BTreeSet::new();
    if part.kind == PartKind::Events {
        for (i, s) in part.sources.iter().enumerate() {
            let keep = |b: Vec<RecordBatch>| Ok(b);
            let changes =
                live.feeds
                    .sync(engine, &s.scan, source_id(i), &fps[i], &|_| false, &keep)?;
            for c in changes {
                let span = apply_event_change(
                    plan,
                    live,
                    &s.scan.table,
                    &c.old,
                    &c.new,
                    &BTreeSet::new(),
                    &s.scan.purpose,
                    report,
                )?;
                if let Some((lo, hi)) = span {
                    // a day D sees events in [D+1 − reach, D+1)
                    let last = part.reach_ms.map(|r| Ds(hi).shift((r / DAY_MS + 1) as i32));
                    dirty.extend(
                        live.owned
                            .iter()
                            .copied()
                            .filter(|d| d.0 >= lo && last.is_none_or(|l| *d <= l)),
                    );
                }
            }
        }
    } else {
        for (&d, was) in &live.snapshots {
            if snapshot_fps(fps, d) != *was {
                dirty.insert(d);
            }
        }
    }
    // a day none of whose sources has a partition any more is not in the table (as a fresh
    // backfill would not write it)
    let gone: Vec<Ds> = live
        .owned
        .iter()
        .copied()
        .filter(|&d| snapshot_fps(fps, d).iter().all(Option::is_none))
        .collect();
    for d in gone {
        dirty.remove(&d);
        live.owned.remove(&d);
        live.snapshots.remove(&d);
        engine
            .warehouse()
            .drop_partition(&plan.output, &[("ds".into(), d.to_string())])?;
        report.rewritten.push(d);
    }
    Ok(dirty)
}

/// The fingerprint of partition `d` of each source (`None` where it has none).
fn snapshot_fps(fps: &SourceFps, d: Ds) -> Vec<Option<u64>> {
    fps.iter()
        .map(|f| f.binary_search_by_key(&d, |(x, _)| *x).ok().map(|i| f[i].1))
        .collect()
}

/// Computes and writes `days` in one epoch: reads their snapshots (entity GroupBys), asks
/// one query per key and day, seals, writes each day. Returns the days written.
fn compute(
    engine: &Session,
    plan: &GroupByPlan,
    live: &mut Live,
    fps: &SourceFps,
    days: &[Ds],
    report: &mut GroupByReport,
) -> Result<Vec<Ds>> {
    let part = &plan.part;
    let wh = engine.warehouse();
    let day_set: BTreeSet<Ds> = days.iter().copied().collect();
    if live.retract_days.intersection(&day_set).next().is_some() {
        // a day asked again while its last queries are live: retract them in an epoch of
        // their own (in one epoch the same query retracted and asked again cancels out, and
        // the day would get no values)
        live.dataflow.update(std::mem::take(&mut live.retract));
        live.retract_days.clear();
        let touched = live.state.apply(live.dataflow.seal()?);
        for d in touched {
            live.state.forget(d);
        }
    }
    let mut next: Vec<Update> = Vec::new();
    if part.kind != PartKind::Events {
        // a snapshot serves only its own day: fed now, retracted with the next epoch
        for &d in days {
            live.index.forget(d);
        }
        for (i, s) in part.sources.iter().enumerate() {
            let have: Vec<Ds> = days
                .iter()
                .copied()
                .filter(|d| fps[i].binary_search_by_key(d, |(x, _)| *x).is_ok())
                .collect();
            for sub in PartitionRange::contiguous(&have) {
                let mut scan = s.scan.clone();
                scan.range = Some(sub);
                let (_, batches) = engine.scan(&scan)?;
                for (b, updates) in rows_of(plan, &s.scan.table, &batches, report, true)? {
                    live.index
                        .add(part, &b, &updates, &day_set, &s.scan.purpose)?;
                    next.extend(updates.iter().map(|(d, r)| (d.clone(), -r)));
                    live.dataflow.update(updates);
                }
            }
        }
        for &d in days {
            live.snapshots.insert(d, snapshot_fps(fps, d));
        }
    }
    // one query per key and day
    let mut queries: Vec<Update> = Vec::new();
    let mut day_keys: BTreeMap<Ds, Vec<KeyId>> = BTreeMap::new();
    for &d in days {
        let keys = live.index.keys_on(d);
        let q = d.shift(1).start_millis();
        for (i, &id) in keys.iter().enumerate() {
            queries.push((
                (
                    (part.index, live.index.key(id).clone()),
                    Item::Query {
                        row: row_id(d, i as u32),
                        q,
                        ds: d.0,
                    },
                ),
                1,
            ));
        }
        day_keys.insert(d, keys);
    }
    next.extend(queries.iter().map(|(d, r)| (d.clone(), -r)));
    let retract = std::mem::replace(&mut live.retract, next);
    live.retract_days = day_set.clone();
    live.dataflow.update(retract);
    live.dataflow.update(queries);
    let touched = live.state.apply(live.dataflow.seal()?);
    // the retracted queries' removals belong to days written before
    for d in touched.difference(&day_set) {
        live.state.forget(*d);
    }
    let mut written = Vec::new();
    for (d, keys) in &day_keys {
        let (batch, dropped) = output::assemble(
            engine,
            plan,
            &live.schemas,
            &live.index,
            *d,
            keys,
            &live.state,
        )?;
        report.rows += batch.num_rows() as u64;
        report.dropped_all_null += dropped;
        live.owned.insert(*d);
        if live.verify.remove(d) && same_rows(wh, &plan.output, *d, &batch)? {
            live.state.forget(*d);
            live.index.forget(*d);
            continue;
        }
        wh.write_partition(
            &plan.output,
            &[("ds".into(), d.to_string())],
            live.schemas.written.clone(),
            &[batch],
        )?;
        written.push(*d);
        live.owned.insert(*d);
        live.state.forget(*d);
        live.index.forget(*d);
    }
    Ok(written)
}
