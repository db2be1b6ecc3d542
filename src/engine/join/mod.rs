//! Drives a join backfill: decides which output partitions are missing, then for each step of
//! `--step-days` feeds the step's left partitions and the source partitions their windows
//! need into the join dataflow as one epoch, and writes the step's output partitions. The
//! dataflow outlives the steps: a later step (or, in the materializer, a later partition) is
//! a delta to the same computation.

use std::collections::{BTreeSet, HashMap};

use arrow::compute::concat_batches;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

use crate::config::Join;
use crate::dataflow::{Dataflow, Runtime};
use crate::engine::{Context, Schedule};
use crate::error::{Error, Result};
use crate::join::feed::{Feeds, InputId};
use crate::join::inputs::{self, EventStats};
use crate::join::output::{self, OutputState};
use crate::join::part::{part_input_types, part_spec};
use crate::join::plan::JoinPlan;
use crate::partition::{Ds, PartitionRange};
use crate::sql::Session;

// The bootstrap side, the label side, version rewrites and `explain` drive this module's
// runner state (`Live`) on the same dataflow.
mod aggregates;
mod boot_feed;
mod digest;
mod explain;
mod label_feed;
mod sync;
mod versioning;

use sync::{absorb_reads, source_fingerprints, sync_left, sync_sources};

pub use aggregates::StoredReport;
pub use explain::{explain, Explain, ExplainBootstrap, ExplainPart};
pub use versioning::PartitionReuse;

/// Options of a join backfill: the engine's run options.
pub type JoinOptions = crate::engine::RunOptions;

/// What a backfill did.
#[derive(Debug, Default)]
pub struct JoinReport {
    pub output: String,
    pub range: Option<PartitionRange>,
    pub written: Vec<Ds>,
    pub skipped_existing: usize,
    /// Output partitions this runner maintains that were rewritten because inputs changed.
    pub rewritten: Vec<Ds>,
    /// Existing partitions recomputed because their inputs changed since they were written
    /// (or they had no input record); those whose rows differed are also in `rewritten`.
    pub stale: Vec<Ds>,
    /// Output rows whose values the dataflow changed (new rows included).
    pub rows_changed: u64,
    pub left_rows: u64,
    /// Left rows with a NULL join key (their features are NULL), per part.
    pub null_key_rows: Vec<(String, u64)>,
    /// Source rows read and unusable rows, per part.
    pub events: Vec<(String, EventStats)>,
    /// First run only: what changed since the config version the output was written with,
    /// and what is reused, archived or recomputed (chronon-semantics §3.7), as printed.
    pub versioning: Option<String>,
    /// Existing output partitions rewritten for a new config version, per partition.
    pub reused: Vec<PartitionReuse>,
    /// Left rows fed to the dataflow per part, i.e. computed (0 for a reused part).
    pub part_rows: Vec<(String, u64)>,
    /// Per bootstrap part: its table, whether it is a log table, and its rows read and
    /// unusable.
    pub bootstrap: Vec<(String, bool, crate::join::bootstrap::tables::BootStats)>,
    /// Where the values of the partitions written by this run came from (joins with
    /// bootstrap or external parts): rows covered and computed per part, sources per column.
    pub provenance: Option<crate::join::bootstrap::assemble::Provenance>,
    /// Output partitions dropped because their left partition is gone (a runner that
    /// maintains them drops them as the left partition goes; a new runner on its first run).
    pub dropped: Vec<Ds>,
    /// Parts fed from stored aggregates, with their boundary day (the events before its
    /// start came from the stored aggregates instead of the source partitions).
    pub from_stored: Vec<(String, Ds)>,
}

pub use crate::engine::Progress;

fn parse_bound(join: &Join, field: &str, v: &Option<String>) -> Result<Option<Ds>> {
    v.as_deref()
        .map(|s| {
            Ds::parse(s).map_err(|e| Error::Config {
                file: join.meta_data.name.clone(),
                path: field.into(),
                message: e.to_string(),
            })
        })
        .transpose()
}

/// Backfills the missing output partitions of a join up to `opts.end` (a [`JoinRunner`] used once).
pub fn backfill_join(
    cx: &Context,
    join: &Join,
    opts: &JoinOptions,
    progress: Progress,
) -> Result<JoinReport> {
    JoinRunner::new(join)?.run(cx, opts, progress)
}

/// A join whose dataflow stays alive between runs: the first [`JoinRunner::run`] backfills,
/// and each later run feeds what changed since into the same dataflow as a delta — new
/// partitions, re-landed partitions (retracting the rows fed before), removed partitions —
/// rewrites the output partitions this runner maintains whose rows changed, and computes
/// missing ones. Unlike Chronon, late or corrected inputs do update outputs.
pub struct JoinRunner {
    join: Join,
    plan: JoinPlan,
    /// The label part, when the join has a valid one.
    labels: Option<crate::label::LabelPlan>,
    live: Option<Live>,
}

/// The running dataflow and what has been fed into it.
struct Live {
    dataflow: Dataflow,
    state: OutputState,
    feeds: Feeds,
    left_schema: SchemaRef,
    /// Left data columns then every part's base feature columns.
    base_schema: SchemaRef,
    /// After GroupBy and join derivations: what is written.
    out_schema: SchemaRef,
    left_columns: Vec<String>,
    /// Output partitions computed by this runner (their rows are maintained).
    owned: BTreeSet<Ds>,
    /// Owned partitions whose values live only on disk (patched when they change).
    on_disk: BTreeSet<Ds>,
    /// Bootstrap parts and external fields (the bootstrap stage is always there, so parts
    /// can be added to a running join).
    boot: boot_feed::BootLive,
    /// Provenance of the partitions written by the current run.
    provenance: Option<crate::join::bootstrap::assemble::Provenance>,
    /// Owned partitions to rewrite on the next run whatever changes (the schema changed, or
    /// the left partition was re-landed).
    stale: BTreeSet<Ds>,
    /// The bootstrap parts changed: the next run seals the retractions already sent.
    reconfigured: bool,
    /// The semantic hash is known to be on the output table (checked before the first write).
    hash_stored: bool,
    /// The source partitions listed by the last run (a later one not among them is late).
    seen_sources: HashMap<InputId, BTreeSet<Ds>>,
    /// The label side (label parts follow the feature parts in the dataflow), or why it
    /// could not start.
    labels: Option<label_feed::LabelLive>,
    label_error: Option<String>,
    /// Existing partitions being recomputed by a verifying first step: written only if
    /// their rows differ.
    verify: BTreeSet<Ds>,
    /// Stored aggregates of the parts with unbounded windows.
    aggregates: aggregates::Aggregates,
}

impl Live {
    fn boot_active(&self) -> bool {
        self.boot.active
    }
}

impl JoinRunner {
    /// Plans the join; the dataflow starts on the first run.
    pub fn new(join: &Join) -> Result<JoinRunner> {
        let plan = JoinPlan::new(join)?;
        // an invalid label part fails label runs (with its errors), not feature backfills
        let labels = crate::label::LabelPlan::new(join, &plan).ok().flatten();
        Ok(JoinRunner {
            join: join.clone(),
            plan,
            labels,
            live: None,
        })
    }

    /// Stores the aggregates of the parts with unbounded windows for the next run (the day
    /// after the last maintained one, and that one again), so that the next process's run
    /// starts from them instead of reading all history (a process calls this on its way out;
    /// see `aggregates`). Does nothing before the first run or when they are up to date.
    pub fn store_aggregates(&mut self) -> Result<Vec<StoredReport>> {
        match self.live.as_mut() {
            Some(live) => aggregates::store(&self.plan, live),
            None => Ok(Vec::new()),
        }
    }

    /// The plan being run.
    pub fn plan(&self) -> &JoinPlan {
        &self.plan
    }

    /// The label part's plan, when the join has a valid one.
    pub fn label_plan(&self) -> Option<&crate::label::LabelPlan> {
        self.labels.as_ref()
    }

    /// Changes the join's bootstrap parts — add, remove, reorder or edit them — without
    /// restarting: the next [`JoinRunner::run`] feeds what changed as a delta, so only the
    /// rows whose bootstrap matches or coverage change are updated (rows that become covered
    /// stop being computed, rows that lose coverage get computed values). Anything else in
    /// the config must stay the same.
    pub fn reconfigure(&mut self, cx: &Context, join: &Join) -> Result<()> {
        let engine = cx.session();
        if !self.only_bootstrap_differs(join) {
            return Err(Error::Usage(format!(
                "only bootstrapParts of join {} can change while it runs; start a new run (a new JoinRunner) for other config changes",
                self.plan.name
            )));
        }
        let plan = JoinPlan::new(join)?;
        if let Some(live) = self.live.as_mut() {
            if boot_feed::reconfigure(engine, &self.plan, &plan, live)? {
                live.stale.extend(live.owned.iter().copied());
            }
            live.reconfigured = true;
        }
        self.join = join.clone();
        self.plan = plan;
        Ok(())
    }

    /// Whether `join` differs from the running config in its bootstrap parts only (what
    /// [`JoinRunner::reconfigure`] can apply to the running dataflow).
    pub fn only_bootstrap_differs(&self, join: &Join) -> bool {
        let strip = |j: &Join| {
            let mut v = serde_json::to_value(j).expect("config serializes");
            v["bootstrapParts"] = serde_json::Value::Null;
            v
        };
        strip(&self.join) == strip(join)
    }

    /// Feeds what changed and computes the missing output partitions up to `opts.end`.
    pub fn run(
        &mut self,
        cx: &Context,
        opts: &JoinOptions,
        progress: Progress,
    ) -> Result<JoinReport> {
        let engine = cx.session();
        let mut report = run(self, cx, opts, progress)?;
        versioning::finish(engine, &self.join, &self.plan, &mut report)?;
        if let Some(lp) = &self.labels {
            // feature rows that changed show in the labeled tables too
            crate::label::labeled::refresh(engine, lp)?;
        }
        Ok(report)
    }

    /// Runs label run `label_ds` (chronon-semantics §7.3): computes the labels of the left
    /// days `[label_ds − (leftStartOffset − 1), label_ds − (leftEndOffset − 1)]` as of
    /// `label_ds`, writes the label partitions `(label_ds, ds)` that changed, and brings the
    /// labeled tables up to date. The run stays maintained: a later call (any `label_ds`) also
    /// feeds what changed since — new snapshots, label events of maturing windows, re-landed
    /// left or label days — and rewrites only the label partitions they reach.
    pub fn label(&mut self, cx: &Context, label_ds: Ds) -> Result<crate::label::LabelReport> {
        self.label_run(cx, Some(label_ds))
    }

    /// Feeds what changed since the last label run into the maintained label runs, without
    /// adding a run.
    pub fn refresh_labels(&mut self, cx: &Context) -> Result<crate::label::LabelReport> {
        self.label_run(cx, None)
    }

    fn label_run(
        &mut self,
        cx: &Context,
        label_ds: Option<Ds>,
    ) -> Result<crate::label::LabelReport> {
        let engine = cx.session();
        let lp = crate::label::LabelPlan::new(&self.join, &self.plan)?.ok_or_else(|| {
            Error::Config {
                file: self.join.meta_data.name.clone(),
                path: "labelPart".into(),
                message: "the join has no label part; add label_part=LabelPart(...) to the Join and recompile".into(),
            }
        })?;
        if self.live.is_none() {
            self.live = Some(start_live(engine, cx.runtime()?, &self.plan, Some(&lp))?);
        }
        let live = self.live.as_mut().expect("started above");
        if live.labels.is_none() {
            return Err(Error::Usage(format!(
                "the label side of join {} did not start with this runner ({}); start a new run once that is fixed",
                self.plan.name,
                live.label_error.as_deref().unwrap_or("no label part then")
            )));
        }
        let mut report = crate::label::LabelReport {
            label_ds,
            ..Default::default()
        };
        let span = tracing::info_span!("label_run", join = %self.plan.name, label_ds = ?label_ds.map(|d| d.to_string()));
        let _g = span.enter();
        label_feed::run(
            engine,
            &lp,
            live,
            &self.plan.left.scan,
            label_ds,
            &mut report,
        )?;
        report.labeled_written = crate::label::labeled::refresh(engine, &lp)?;
        let features: BTreeSet<Ds> = engine
            .warehouse()
            .partitions(&self.plan.output)?
            .into_iter()
            .collect();
        report.missing_features = report
            .left_days
            .iter()
            .copied()
            .filter(|d| !features.contains(d))
            .collect();
        tracing::info!(
            written = report.written.len(),
            labeled = report.labeled_written.len(),
            missing_features = report.missing_features.len(),
            "label run done"
        );
        Ok(report)
    }
}

fn run(
    runner: &mut JoinRunner,
    cx: &Context,
    opts: &JoinOptions,
    progress: Progress,
) -> Result<JoinReport> {
    let engine = cx.session();
    let join = &runner.join;
    let plan = &runner.plan;
    let wh = engine.warehouse().clone();
    let left_t = plan.left.scan.table_name()?;
    let left_fps = wh.partition_fingerprints(&left_t, &plan.left.scan.partition_column())?;
    let left_parts: Vec<Ds> = left_fps.iter().map(|(d, _)| *d).collect();
    if left_parts.is_empty() {
        return Err(wh.missing_table(&left_t, &plan.left.scan.purpose));
    }
    let mut report = JoinReport {
        output: plan.output.to_string(),
        null_key_rows: plan
            .parts
            .iter()
            .map(|p| (p.full_prefix.clone(), 0))
            .collect(),
        events: plan
            .parts
            .iter()
            .map(|p| (p.full_prefix.clone(), EventStats::default()))
            .collect(),
        ..Default::default()
    };
    let range = run_range(join, plan, &left_parts, opts)?;
    report.range = Some(range);
    let source_fps = source_fingerprints(engine, plan)?;
    let now = digest::Fingerprints::current(engine, plan, &left_fps, &source_fps)?;
    let mut redo = match runner.live {
        None => {
            let redo = versioning::prepare(cx, join, plan, range, opts, progress, &mut report)?;
            // A partition rewritten for a new version keeps the reused parts' values, which
            // were as current as its record said: its record moves to the new version's inputs.
            let had = wh.input_records(&plan.output)?;
            let moved: std::collections::BTreeMap<Ds, String> = report
                .reused
                .iter()
                .filter(|r| had.contains_key(&r.ds))
                .map(|r| (r.ds, now.digest(plan, r.ds)))
                .collect();
            wh.update_input_records(&plan.output, &moved, &|_| false)?;
            redo
        }
        Some(_) => BTreeSet::new(),
    };
    let mut existing = wh.partitions(&plan.output)?;
    // a runner drops the partitions it maintains as their left partitions go (`sync_left`)
    report.dropped = drop_orphans(
        engine,
        plan,
        &left_parts,
        range,
        runner.live.as_ref().map(|l| &l.owned),
        &existing,
    )?;
    existing.retain(|d| !report.dropped.contains(d));
    // Existing partitions this runner does not maintain yet whose inputs changed since they
    // were written (or that have no record): recomputed, and written only if their rows
    // differ. With `verify_existing` (`--force`), every existing partition in range.
    let owned = runner.live.as_ref().map(|l| &l.owned);
    let verify: BTreeSet<Ds> = if opts.verify_existing && runner.live.is_none() {
        existing
            .iter()
            .copied()
            .filter(|d| range.contains(*d))
            .collect()
    } else {
        let records = wh.input_records(&plan.output)?;
        let stale: BTreeSet<Ds> = existing
            .iter()
            .copied()
            .filter(|d| range.contains(*d) && left_parts.binary_search(d).is_ok())
            .filter(|d| !owned.is_some_and(|o| o.contains(d)) && !redo.contains(d))
            .filter(|d| records.get(d) != Some(&now.digest(plan, *d)))
            .collect();
        report.stale = stale.iter().copied().collect();
        if !stale.is_empty() {
            tracing::info!(join = %plan.name, output = %plan.output, partitions = stale.len(), first = %stale.first().expect("non-empty"), "existing partitions whose inputs changed since they were written (or that have no input record): recomputing them");
        }
        stale
    };
    redo.extend(verify.iter().copied());
    let schedule = Schedule::plan(
        left_parts.iter().copied().filter(|d| range.contains(*d)),
        &existing,
        &redo,
        opts.run_first_hole,
        opts.step_days,
        &plan.output.to_string(),
    )?;
    report.skipped_existing = schedule.skipped_existing;
    tracing::info!(join = %plan.name, output = %plan.output, %range, missing = schedule.todo.len(), existing = report.skipped_existing, "join plan");
    if schedule.is_empty() && runner.live.is_none() {
        return Ok(report);
    }
    if runner.live.is_none() {
        runner.live = Some(start_live(
            engine,
            cx.runtime()?,
            plan,
            runner.labels.as_ref(),
        )?);
    }
    let live = runner.live.as_mut().expect("started above");

    // 1. Deltas to what was already fed: re-landed or removed partitions.
    let mut carried: BTreeSet<Ds> = BTreeSet::new();
    if !live.owned.is_empty() {
        let mut any = sync_left(engine, plan, live, &left_fps, &|_| false, &mut report)?.is_some();
        // Source partitions that landed since inside the reach of the maintained days (a
        // partition re-landed after it was removed, a late day) are fed too, so the
        // maintained output equals a fresh run over the same inputs. With bootstrap, only
        // what the uncovered rows reach, and only when such a partition appeared.
        let reach = if !live.boot_active() {
            owned_reach(plan, &live.owned)
        } else if late_source_partition(live, &source_fps) {
            let rows: BTreeSet<crate::dataflow::records::RowId> = live
                .owned
                .iter()
                .flat_map(|&d| {
                    let n = live
                        .feeds
                        .batches(InputId::Left, d)
                        .first()
                        .map_or(0, |b| b.num_rows());
                    (0..n as u32).map(move |i| crate::dataflow::records::row_id(d, i))
                })
                .collect();
            boot_feed::uncovered_reach(plan, live, &rows)?
        } else {
            None
        };
        any |= sync_sources(plan, live, &source_fps, reach.as_ref())?;
        let owned = live.owned.clone();
        any |= boot_feed::sync_boot(engine, plan, live, &|d| owned.contains(&d))?;
        any |= !live.stale.is_empty() || std::mem::take(&mut live.reconfigured);
        if any && !schedule.is_empty() && !live.boot_active() {
            // the first step's epoch computes these changes with its new days: one pass
            // over the keys both touch (a new day's sources reach the last maintained day)
            carried = std::mem::take(&mut live.stale);
        } else if any {
            let mut touched = seal(plan, live, &source_fps, BTreeSet::new(), &mut report)?;
            touched.extend(std::mem::take(&mut live.stale));
            let dirty: Vec<Ds> = touched.intersection(&live.owned).copied().collect();
            let writers = cx.workers();
            write_partitions(
                engine,
                join,
                plan,
                live,
                &dirty,
                writers,
                &mut report.rewritten,
            )?;
        }
    }

    // 2. Missing partitions, step by step.
    schedule.run(&plan.output.to_string(), progress, |step, days| {
        let clock = std::time::Instant::now();
        let reach = sync_left(
            engine,
            plan,
            live,
            &left_fps,
            &|d| days.contains(&d),
            &mut report,
        )?;
        let mut fresh = BTreeSet::new();
        if live.boot_active() {
            // sources are fed after coverage is known (see `seal`)
            boot_feed::sync_boot(engine, plan, live, &|d| days.contains(&d))?;
            for &d in days {
                let n = live
                    .feeds
                    .batches(InputId::Left, d)
                    .first()
                    .map_or(0, |b| b.num_rows());
                fresh.extend((0..n as u32).map(|i| crate::dataflow::records::row_id(d, i)));
            }
        } else if let Some(reach) = reach {
            sync_sources(plan, live, &source_fps, Some(&reach))?;
        }
        let fed = clock.elapsed();
        crate::failpoint::hit("join-fed");
        let touched = seal(plan, live, &source_fps, fresh, &mut report)?;
        let computed = clock.elapsed();
        live.owned.extend(days.iter().copied());
        let mut dirty: BTreeSet<Ds> = touched.intersection(&live.owned).copied().collect();
        dirty.extend(days.iter().copied());
        dirty.extend(
            std::mem::take(&mut carried)
                .into_iter()
                .filter(|d| live.owned.contains(d)),
        );
        let dirty: Vec<Ds> = dirty.into_iter().collect();
        let mut written = Vec::new();
        live.verify.extend(days.intersection(&verify).copied());
        write_partitions(engine, join, plan, live, &dirty, cx.workers(), &mut written)?;
        tracing::info!(join = %plan.name, %step, partitions = written.len(), read_ms = fed.as_millis() as u64, compute_ms = (computed - fed).as_millis() as u64, write_ms = (clock.elapsed() - computed).as_millis() as u64, "step done");
        for d in written {
            if days.contains(&d) && !verify.contains(&d) {
                report.written.push(d);
            } else {
                report.rewritten.push(d);
            }
        }
        Ok(())
    })?;
    live.seen_sources = source_fps
        .iter()
        .map(|(id, fps)| (*id, fps.iter().map(|(d, _)| *d).collect()))
        .collect();
    // what each maintained partition was computed from, for the next process: the listing
    // this run synced against, for the days whose fed inputs all agree with it
    let fed = digest::Fingerprints::fed(plan, &live.feeds, &live.aggregates);
    let on_disk: BTreeSet<Ds> = wh.partitions(&plan.output)?.into_iter().collect();
    let mut records = std::collections::BTreeMap::new();
    let mut unknown = BTreeSet::new();
    for &d in &live.owned {
        if fed.agrees(&now, plan, d) {
            records.insert(d, now.digest(plan, d));
        } else {
            unknown.insert(d);
        }
    }
    wh.update_input_records(&plan.output, &records, &|d| {
        unknown.contains(&d) || !on_disk.contains(&d)
    })?;
    boot_feed::report(live, &mut report);
    report.provenance = live.provenance.take();
    report.from_stored = plan
        .parts
        .iter()
        .filter_map(|p| Some((p.full_prefix.clone(), live.aggregates.boundary(p.index)?)))
        .collect();
    for (part, st) in &report.events {
        if st.skipped() > 0 {
            tracing::warn!(part = %part, rows = st.rows, null_keys = st.null_keys, null_ts = st.null_ts, bad_ts = st.bad_ts, "source rows skipped: all keys NULL, a NULL ts or a ts outside years 0001-9999");
        }
    }
    Ok(report)
}

/// The left partitions a run covers: `--start-ds` (or the left query's start, or the first
/// left partition) to `--end-ds` (capped by the left query's end); only the end with
/// `historicalBackfill = false`.
fn run_range(
    join: &Join,
    plan: &JoinPlan,
    left_parts: &[Ds],
    opts: &JoinOptions,
) -> Result<PartitionRange> {
    let q = &plan.left.scan.query;
    let mut start = opts
        .start
        .or(parse_bound(
            join,
            "left.query.startPartition",
            &q.start_partition,
        )?)
        .unwrap_or(left_parts[0]);
    let mut end = opts.end;
    if let Some(e) = parse_bound(join, "left.query.endPartition", &q.end_partition)? {
        end = end.min(e);
    }
    if join.meta_data.historical_backfill == Some(false) {
        start = end;
    }
    Ok(PartitionRange::new(start, end))
}

/// The query times each part's queries span, per part: `(min q, max q)`.
type Reach = Vec<Option<(i64, i64)>>;

/// How many distinct rows an epoch changed: those with new part values and those whose
/// bootstrap values changed.
fn distinct_rows(
    mut rows: Vec<crate::dataflow::records::RowId>,
    boot: &BTreeSet<crate::dataflow::records::RowId>,
) -> u64 {
    rows.extend(boot.iter().copied());
    rows.sort_unstable();
    rows.dedup();
    rows.len() as u64
}

/// Whether a source partition no earlier run listed appeared at or before the last maintained
/// day (late data, or a partition re-landed after it was removed).
fn late_source_partition(live: &Live, source_fps: &HashMap<InputId, Vec<(Ds, u64)>>) -> bool {
    let Some(&last) = live.owned.last() else {
        return false;
    };
    source_fps.iter().any(|(id, fps)| {
        fps.iter()
            .any(|(d, _)| *d <= last && !live.seen_sources.get(id).is_some_and(|s| s.contains(d)))
    })
}

/// The query-time span of the maintained days, for every part (`None` when none).
/// Drops the output partitions inside the run's range that weft computed (they have an input
/// record), that this runner does not maintain (`owned`), and whose left partition is gone,
/// as a runner maintaining them would have when it went: a new process sees the same output
/// as one that ran all along. Partitions before the range (left partitions purged for
/// retention) are kept.
fn drop_orphans(
    engine: &Session,
    plan: &JoinPlan,
    left: &[Ds],
    range: PartitionRange,
    owned: Option<&BTreeSet<Ds>>,
    existing: &[Ds],
) -> Result<Vec<Ds>> {
    let orphans: Vec<Ds> = existing
        .iter()
        .copied()
        .filter(|d| range.contains(*d) && !owned.is_some_and(|o| o.contains(d)))
        .filter(|d| left.binary_search(d).is_err())
        .collect();
    if orphans.is_empty() {
        return Ok(orphans);
    }
    let wh = engine.warehouse();
    let records = wh.input_records(&plan.output)?;
    let mut dropped = Vec::new();
    for d in orphans.into_iter().filter(|d| records.contains_key(d)) {
        wh.drop_partition(&plan.output, &[("ds".into(), d.to_string())])?;
        dropped.push(d);
    }
    if !dropped.is_empty() {
        tracing::info!(join = %plan.name, output = %plan.output, partitions = dropped.len(), "dropped output partitions whose left partition is gone");
        wh.update_input_records(&plan.output, &Default::default(), &|d| dropped.contains(&d))?;
    }
    Ok(dropped)
}

fn owned_reach(plan: &JoinPlan, owned: &BTreeSet<Ds>) -> Option<Reach> {
    let (first, last) = (owned.first()?, owned.last()?);
    let span = (first.start_millis(), last.shift(1).start_millis() - 1);
    Some(vec![Some(span); plan.parts.len()])
}

/// Completes an epoch and applies its output; returns the left partitions whose output
/// changed. With bootstrap, rows whose coverage changed (and the new rows `fresh`) may need
/// source partitions not fed yet: they are fed and a second epoch computes them, so a part
/// that bootstrap covers entirely reads no source at all.
fn seal(
    plan: &JoinPlan,
    live: &mut Live,
    source_fps: &HashMap<InputId, Vec<(Ds, u64)>>,
    fresh: BTreeSet<crate::dataflow::records::RowId>,
    report: &mut JoinReport,
) -> Result<BTreeSet<Ds>> {
    let mut out = live.dataflow.seal_all()?;
    absorb_reads(&out.reads, report);
    let first_label = plan.parts.len() as u16;
    label_feed::keep_pending(live, first_label, &mut out.parts);
    let changed_rows: Vec<_> = out.parts.iter().map(|(r, _, _)| *r).collect();
    let mut touched = live.state.apply(out.parts);
    let mut rows = boot_feed::apply(live, out.boot);
    report.rows_changed += distinct_rows(changed_rows, &rows);
    touched.extend(rows.iter().map(|&r| crate::dataflow::records::row_ds(r)));
    if !live.boot_active() {
        return Ok(touched);
    }
    rows.extend(fresh);
    if let Some(reach) = boot_feed::uncovered_reach(plan, live, &rows)? {
        if sync_sources(plan, live, source_fps, Some(&reach))? {
            let mut out = live.dataflow.seal_all()?;
            absorb_reads(&out.reads, report);
            label_feed::keep_pending(live, first_label, &mut out.parts);
            let changed_rows: Vec<_> = out.parts.iter().map(|(r, _, _)| *r).collect();
            touched.extend(live.state.apply(out.parts));
            let rows = boot_feed::apply(live, out.boot);
            report.rows_changed += distinct_rows(changed_rows, &rows);
            touched.extend(rows.iter().map(|&r| crate::dataflow::records::row_ds(r)));
        }
    }
    Ok(touched)
}

/// Writes output partitions from the maintained state. Partitions built from the state
/// alone (no bootstrap, not patched from disk, not verified against disk) are assembled and
/// written on `writers` threads (the dataflow's workers are idle meanwhile); the others one
/// by one.
fn write_partitions(
    engine: &Session,
    join: &Join,
    plan: &JoinPlan,
    live: &mut Live,
    days: &[Ds],
    writers: usize,
    written: &mut Vec<Ds>,
) -> Result<()> {
    let wh = engine.warehouse();
    let patchable = output::patchable(plan);
    let plain: Vec<Ds> = if live.boot.enabled {
        Vec::new()
    } else {
        days.iter()
            .copied()
            .filter(|d| {
                !live.on_disk.contains(d)
                    && !live.verify.contains(d)
                    && !live.feeds.batches(InputId::Left, *d).is_empty()
            })
            .collect()
    };
    if !plain.is_empty() {
        store_hash_once(wh, join, plan, live)?;
        write_plain(engine, plan, live, &plain, writers)?;
        for &ds in &plain {
            kept_on_disk(live, patchable, ds);
            written.push(ds);
        }
    }
    for &ds in days.iter().filter(|d| !plain.contains(d)) {
        let Some(left) = live.feeds.batches(InputId::Left, ds).first() else {
            continue;
        };
        let mut metadata = Vec::new();
        let verifying = live.verify.remove(&ds);
        let batch = if live.boot.enabled {
            let (batch, prov) = boot_feed::finish_partition(engine, plan, live, ds, left)?;
            metadata.push((
                crate::join::bootstrap::assemble::PROVENANCE_KEY.to_string(),
                serde_json::to_string(&prov).expect("provenance serializes"),
            ));
            live.provenance
                .get_or_insert_with(Default::default)
                .add(&prov);
            batch
        } else if live.on_disk.contains(&ds) {
            let existing = wh.read_partition(&plan.output, ds)?;
            let existing = concat_batches(&live.out_schema, &existing)
                .map_err(|e| Error::arrow("reading the output partition back", e))?;
            output::patch(
                plan,
                &live.out_schema,
                ds,
                left,
                Some(&existing),
                &live.state,
            )?
        } else {
            from_state(engine, plan, live, ds, left)?
        };
        store_hash_once(wh, join, plan, live)?;
        if verifying && same_rows(wh, &plan.output, ds, &batch)? {
            // the partition on disk already holds these rows: keep it, maintain it from now
            kept_on_disk(live, patchable, ds);
            continue;
        }
        wh.write_partition_with(
            &plan.output,
            &[("ds".into(), ds.to_string())],
            live.out_schema.clone(),
            &[batch],
            &metadata,
        )?;
        kept_on_disk(live, patchable, ds);
        written.push(ds);
    }
    if !days.is_empty() {
        wh.set_properties(
            &plan.output,
            &join.meta_data.chronon_table_properties("join"),
        )?;
    }
    written.sort_unstable();
    Ok(())
}

/// Stores the join's semantic hash on its output table before the first partition is
/// written (once per runner).
fn store_hash_once(
    wh: &crate::warehouse::Warehouse,
    join: &Join,
    plan: &JoinPlan,
    live: &mut Live,
) -> Result<()> {
    if !live.hash_stored {
        versioning::store_before_first_partition(wh, join, &plan.output)?;
        live.hash_stored = true;
    }
    Ok(())
}

/// Partition `ds` on disk now holds its values: for patchable joins keep only later changes
/// in memory.
fn kept_on_disk(live: &mut Live, patchable: bool, ds: Ds) {
    if patchable {
        live.state.forget(ds);
        live.on_disk.insert(ds);
    }
}

/// Partition `ds` built from the maintained state: the left rows with every part's values,
/// then the derivations.
fn from_state(
    engine: &Session,
    plan: &JoinPlan,
    live: &Live,
    ds: Ds,
    left: &RecordBatch,
) -> Result<RecordBatch> {
    let batch = output::assemble(plan, &live.base_schema, ds, left, &live.state)?;
    output::derive(engine, plan, &live.left_columns, batch)
}

/// Builds and writes partitions `days` from the maintained state on up to `writers`
/// threads, each taking the next day (inline with one). The first error is returned;
/// partitions written meanwhile are complete (each write is atomic).
fn write_plain(
    engine: &Session,
    plan: &JoinPlan,
    live: &Live,
    days: &[Ds],
    writers: usize,
) -> Result<()> {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let write_one = |ds: Ds| -> Result<()> {
        let left = live
            .feeds
            .batches(InputId::Left, ds)
            .first()
            .ok_or_else(|| Error::internal(format!("left partition {ds} was not fed")))?;
        let batch = from_state(engine, plan, live, ds, left)?;
        engine.warehouse().write_partition_with(
            &plan.output,
            &[("ds".into(), ds.to_string())],
            live.out_schema.clone(),
            &[batch],
            &[],
        )
    };
    let threads = writers.min(days.len()).max(1);
    if threads == 1 {
        return days.iter().try_for_each(|&ds| write_one(ds));
    }
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let worker = || -> Result<()> {
        while !failed.load(Ordering::Relaxed) {
            let Some(&ds) = days.get(next.fetch_add(1, Ordering::Relaxed)) else {
                break;
            };
            if let Err(e) = write_one(ds) {
                failed.store(true, Ordering::Relaxed);
                return Err(e);
            }
        }
        Ok(())
    };
    let results: Vec<Result<()>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads).map(|_| s.spawn(worker)).collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(Error::internal("a partition writer panicked")))
            })
            .collect()
    });
    results.into_iter().collect()
}

/// Whether partition `ds` of `table` holds exactly the rows of `batch` (columns by name and
/// type, values, order).
pub(crate) fn same_rows(
    wh: &crate::warehouse::Warehouse,
    table: &crate::warehouse::TableName,
    ds: Ds,
    batch: &RecordBatch,
) -> Result<bool> {
    let existing = wh.read_partition(table, ds)?;
    let Some(first) = existing.first() else {
        return Ok(batch.num_rows() == 0);
    };
    let same_fields = first.schema().fields().len() == batch.schema().fields().len()
        && first
            .schema()
            .fields()
            .iter()
            .zip(batch.schema().fields())
            .all(|(a, b)| a.name() == b.name() && a.data_type() == b.data_type());
    if !same_fields {
        return Ok(false);
    }
    let existing = concat_batches(&first.schema(), &existing)
        .map_err(|e| Error::arrow("reading the output partition back", e))?;
    Ok(existing.num_rows() == batch.num_rows()
        && existing
            .columns()
            .iter()
            .zip(batch.columns())
            .all(|(a, b)| a.as_ref() == b.as_ref()))
}

/// Checks schemas (so type problems surface before any work) and starts the dataflow.
fn start_live(
    engine: &Session,
    runtime: &Runtime,
    plan: &JoinPlan,
    labels: Option<&crate::label::LabelPlan>,
) -> Result<Live> {
    let left_schema = engine.scan_schema(&plan.left.scan)?;
    let mut specs = Vec::new();
    let mut fields = Vec::new();
    for p in &plan.parts {
        let types = part_input_types(engine, p, &|s, schema| {
            inputs::check_key_types(
                &left_schema,
                &p.left_keys,
                schema,
                &p.right_keys,
                &plan.left.scan.table,
                &s.scan.table,
            )
        })?;
        fields.push(output::part_fields(p, &types)?);
        specs.push(part_spec(p, &types));
    }
    let aggregates = aggregates::Aggregates::new(engine.warehouse(), plan, &specs);
    let data_schema = without_ds(&left_schema);
    let base_schema = output::output_schema(&data_schema, &fields);
    let left_columns: Vec<String> = data_schema
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let boot = boot_feed::start(engine, plan, &left_schema, &base_schema, &left_columns)?;
    // the written schema: the output pipeline applied to an empty batch
    let out_schema = if boot.enabled {
        boot_feed::out_schema(engine, plan, &boot, &base_schema, &left_columns)?
    } else {
        output::derive(
            engine,
            plan,
            &left_columns,
            RecordBatch::new_empty(base_schema.clone()),
        )?
        .schema()
    };
    let stage = Some(boot.bs.fields.spec());
    let (label_live, label_error) = match labels {
        None => (None, None),
        Some(lp) => match label_feed::start(engine, lp, &left_schema, &plan.left.scan.table) {
            Ok((label_specs, ll)) => {
                specs.extend(label_specs);
                (Some(ll), None)
            }
            Err(e) => {
                tracing::warn!(join = %plan.name, error = %e, "label side not started");
                (None, Some(e.to_string()))
            }
        },
    };
    Ok(Live {
        labels: label_live,
        label_error,
        dataflow: runtime.install(specs, stage)?,
        boot,
        provenance: None,
        stale: BTreeSet::new(),
        hash_stored: false,
        seen_sources: HashMap::new(),
        reconfigured: false,
        state: OutputState::default(),
        feeds: Feeds::default(),
        left_schema,
        base_schema,
        out_schema,
        left_columns,
        owned: BTreeSet::new(),
        on_disk: BTreeSet::new(),
        verify: BTreeSet::new(),
        aggregates,
    })
}

fn data_columns(schema: &SchemaRef) -> Vec<usize> {
    (0..schema.fields().len())
        .filter(|&i| schema.field(i).name() != "ds")
        .collect()
}

fn without_ds(schema: &SchemaRef) -> SchemaRef {
    std::sync::Arc::new(
        schema
            .project(&data_columns(schema))
            .expect("valid projection"),
    )
}
