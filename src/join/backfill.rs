//! Drives a join backfill: decides which output partitions are missing, then for each step of
//! `--step-days` feeds the step's left partitions and the source partitions their windows
//! need into the join dataflow as one epoch, and writes the step's output partitions. The
//! dataflow outlives the steps: a later step (or, in the materializer, a later partition) is
//! a delta to the same computation.

use std::collections::BTreeMap;

use arrow::compute::concat_batches;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

use super::inputs::{self, EventStats};
use super::output::{self, OutputState};
use super::plan::JoinPlan;
use crate::config::Join;
use crate::dataflow::JoinDataflow;
use crate::error::{Error, Result};
use crate::partition::{Ds, PartitionRange, DAY_MS};
use crate::sql::Engine;

/// Options of a join backfill.
#[derive(Debug, Clone)]
pub struct JoinOptions {
    pub start: Option<Ds>,
    pub end: Ds,
    pub step_days: usize,
    pub workers: usize,
    /// Also compute missing partitions before the first existing output partition.
    pub run_first_hole: bool,
}

impl JoinOptions {
    /// Missing partitions from the left's start up to `end`, in 30-day steps, one worker.
    pub fn through(end: Ds) -> Self {
        JoinOptions {
            start: None,
            end,
            step_days: 30,
            workers: 1,
            run_first_hole: false,
        }
    }
}

/// What a backfill did.
#[derive(Debug, Default)]
pub struct JoinReport {
    pub output: String,
    pub range: Option<PartitionRange>,
    pub written: Vec<Ds>,
    pub skipped_existing: usize,
    pub left_rows: u64,
    /// Left rows with a NULL join key (their features are NULL), per part.
    pub null_key_rows: Vec<(String, u64)>,
    /// Source rows read and unusable rows, per part.
    pub events: Vec<(String, EventStats)>,
}

/// Progress callback: `(steps done, steps total, message)`.
pub type Progress<'a> = &'a dyn Fn(usize, usize, &str);

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
    engine: &Engine,
    join: &Join,
    opts: &JoinOptions,
    progress: Progress,
) -> Result<JoinReport> {
    JoinRunner::new(join)?.run(engine, opts, progress)
}

/// A join whose dataflow stays alive between runs: the first [`JoinRunner::run`] backfills,
/// and each later run (after new partitions landed) feeds only the new partitions into the
/// same dataflow as a delta and writes the output partitions that are missing.
pub struct JoinRunner {
    join: Join,
    plan: JoinPlan,
    live: Option<Live>,
}

/// The running dataflow and what has been fed into it.
struct Live {
    dataflow: JoinDataflow,
    state: OutputState,
    fed_until: Vec<Option<Ds>>,
    left_schema: SchemaRef,
    out_schema: SchemaRef,
}

impl JoinRunner {
    /// Plans the join; the dataflow starts on the first run.
    pub fn new(join: &Join) -> Result<JoinRunner> {
        Ok(JoinRunner {
            join: join.clone(),
            plan: JoinPlan::new(join)?,
            live: None,
        })
    }

    /// Computes the missing output partitions up to `opts.end`.
    pub fn run(
        &mut self,
        engine: &Engine,
        opts: &JoinOptions,
        progress: Progress,
    ) -> Result<JoinReport> {
        run(self, engine, opts, progress)
    }
}

fn run(
    runner: &mut JoinRunner,
    engine: &Engine,
    opts: &JoinOptions,
    progress: Progress,
) -> Result<JoinReport> {
    let join = &runner.join;
    let plan = &runner.plan;
    let wh = engine.warehouse().clone();
    let left_t = plan.left.table_name()?;
    let left_parts = wh.partitions_by(&left_t, &plan.left.partition_column())?;
    if left_parts.is_empty() {
        return Err(wh.missing_table(&left_t, &plan.left.purpose));
    }
    let mut report = JoinReport {
        output: plan.output.to_string(),
        ..Default::default()
    };
    let q = &plan.left.query;
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
    let range = PartitionRange::new(start, end);
    report.range = Some(range);
    let existing = wh.partitions(&plan.output)?;
    let candidates: Vec<Ds> = left_parts
        .iter()
        .copied()
        .filter(|d| range.contains(*d))
        .collect();
    let todo: Vec<Ds> = candidates
        .iter()
        .copied()
        .filter(|d| !existing.contains(d))
        .collect();
    report.skipped_existing = candidates.len() - todo.len();
    tracing::info!(join = %plan.name, output = %plan.output, %range, missing = todo.len(), existing = report.skipped_existing, "join backfill plan");
    if todo.is_empty() {
        return Ok(report);
    }

    if runner.live.is_none() {
        runner.live = Some(start_live(engine, plan, opts.workers)?);
    }
    let Live {
        dataflow,
        state,
        fed_until,
        left_schema,
        out_schema,
    } = runner.live.as_mut().expect("started above");
    let left_schema = &*left_schema;
    report.null_key_rows = plan
        .parts
        .iter()
        .map(|p| (p.full_prefix.clone(), 0))
        .collect();
    report.events = plan
        .parts
        .iter()
        .map(|p| (p.full_prefix.clone(), EventStats::default()))
        .collect();

    let steps: Vec<PartitionRange> = PartitionRange::contiguous(&todo)
        .iter()
        .flat_map(|r| r.steps(opts.step_days))
        .collect();
    let total = steps.len();
    for (si, step) in steps.iter().enumerate() {
        progress(si, total, &format!("{}: step {step}", plan.output));
        // Left rows of the step.
        let mut lefts: BTreeMap<Ds, RecordBatch> = BTreeMap::new();
        let (mut min_ts, mut max_ts) = (i64::MAX, i64::MIN);
        for ds in step.days().filter(|d| todo.contains(d)) {
            let mut scan = plan.left.clone();
            scan.range = Some(PartitionRange::new(ds, ds));
            let (_, batches) = engine.scan(&scan)?;
            let batch = concat_batches(&left_schema, &batches)
                .map_err(|e| Error::arrow("combining left batches", e))?;
            let batch = batch
                .project(&data_columns(&left_schema))
                .map_err(|e| Error::arrow("projecting left", e))?;
            for p in &plan.parts {
                let (updates, nulls) =
                    inputs::left_queries(&batch, ds, 0, p.index, &p.left_keys, &plan.left.table)?;
                report.null_key_rows[p.index as usize].1 += nulls as u64;
                for ((_, item), _) in &updates {
                    if let crate::dataflow::records::Item::Query { q, .. } = item {
                        min_ts = min_ts.min(*q);
                        max_ts = max_ts.max(*q);
                    }
                }
                dataflow.update(updates);
            }
            report.left_rows += batch.num_rows() as u64;
            lefts.insert(ds, batch);
        }
        // Source partitions the step's windows reach that were not fed yet.
        if min_ts <= max_ts {
            for p in &plan.parts {
                let first_needed = p
                    .max_window_ms
                    .map(|w| Ds::of_millis(min_ts).shift(-((w + DAY_MS - 1) / DAY_MS) as i32 - 1));
                let last_needed = Ds::of_millis(max_ts);
                for s in &p.sources {
                    let from = first_needed.map_or(Ds(i32::MIN), |d| d);
                    let from = fed_until[p.index as usize].map_or(from, |f| from.max(f.shift(1)));
                    let range = source_range(engine, s, from, last_needed)?;
                    let Some(range) = range else { continue };
                    let mut scan = s.clone();
                    scan.range = Some(range);
                    let (_, batches) = engine.scan(&scan)?;
                    for b in &batches {
                        let updates = inputs::events(
                            b,
                            p.index,
                            &p.right_keys,
                            &p.inputs,
                            &s.table,
                            &mut report.events[p.index as usize].1,
                        )?;
                        dataflow.update(updates);
                    }
                }
                fed_until[p.index as usize] =
                    Some(last_needed.max(fed_until[p.index as usize].unwrap_or(last_needed)));
            }
        }
        state.apply(dataflow.seal());
        for (ds, left) in &lefts {
            let batch = output::assemble(&plan, &out_schema, *ds, left, &state)?;
            wh.write_partition(
                &plan.output,
                &[("ds".into(), ds.to_string())],
                out_schema.clone(),
                &[batch],
            )?;
            report.written.push(*ds);
        }
        wh.set_properties(
            &plan.output,
            &join.meta_data.chronon_table_properties("join"),
        )?;
    }
    progress(total, total, &format!("{}: done", plan.output));
    for (part, st) in &report.events {
        if st.null_keys > 0 || st.null_ts > 0 {
            tracing::warn!(part = %part, rows = st.rows, null_keys = st.null_keys, null_ts = st.null_ts, "source rows skipped: all keys NULL or NULL ts");
        }
    }
    Ok(report)
}

/// Checks schemas (so type problems surface before any work) and starts the dataflow.
fn start_live(engine: &Engine, plan: &JoinPlan, workers: usize) -> Result<Live> {
    // Schemas first, so type problems surface before any work.
    let left_schema = engine.scan_schema(&plan.left)?;
    let mut double_sums = Vec::new();
    for p in &plan.parts {
        let mut doubles = vec![false; p.inputs.len()];
        for s in &p.sources {
            let schema = engine.scan_schema(s)?;
            inputs::check_key_types(
                &left_schema,
                &p.left_keys,
                &schema,
                &p.right_keys,
                &plan.left.table,
                &s.table,
            )?;
            for (d, x) in doubles
                .iter_mut()
                .zip(inputs::double_inputs(&schema, &p.inputs))
            {
                *d |= x;
            }
        }
        double_sums.push(doubles);
    }
    let data_schema = without_ds(&left_schema);
    let out_schema = output::output_schema(&plan, &data_schema, &double_sums);

    Ok(Live {
        dataflow: JoinDataflow::start(plan.part_specs(&double_sums), workers)?,
        state: OutputState::default(),
        fed_until: vec![None; plan.parts.len()],
        left_schema,
        out_schema,
    })
}

/// The partitions of a source to read for `[from, to]`, clipped to the query's bounds and to
/// the data that exists. A hole inside the needed range is an error.
fn source_range(
    engine: &Engine,
    scan: &crate::sql::scan::Scan,
    from: Ds,
    to: Ds,
) -> Result<Option<PartitionRange>> {
    let t = scan.table_name()?;
    let avail = engine
        .warehouse()
        .partitions_by(&t, &scan.partition_column())?;
    let Some(&first) = avail.first() else {
        return Err(engine.warehouse().missing_table(&t, &scan.purpose));
    };
    let mut from = from.max(first);
    let mut to = to;
    if let Some(s) = scan.query.start_partition.as_deref() {
        from = from.max(Ds::parse(s)?);
    }
    if let Some(e) = scan.query.end_partition.as_deref() {
        to = to.min(Ds::parse(e)?);
    }
    if from > to {
        return Ok(None);
    }
    let missing: Vec<String> = PartitionRange::new(from, to)
        .days()
        .filter(|d| avail.binary_search(d).is_err())
        .map(|d| d.to_string())
        .collect();
    if !missing.is_empty() {
        let shown: Vec<_> = missing.iter().take(5).cloned().collect();
        return Err(Error::data(
            &t.to_string(),
            Some(&format!("ds={}", shown.join(", ds="))),
            format!(
                "{} partition(s) needed by {} are missing{}",
                missing.len(),
                scan.purpose,
                if missing.len() > 5 {
                    " (first 5 shown)"
                } else {
                    ""
                }
            ),
        )
        .with_fix("land the missing partitions, or end the backfill earlier with --end-ds"));
    }
    Ok(Some(PartitionRange::new(from, to)))
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
