//! Drives a GroupBy backfill through the join dataflow: for each step of `--step-days`, feeds
//! the source partitions the step's days reach (each partition once) and one query per key
//! and day — `Item::Query { row: row_id(D, i), q: (D+1) 00:00, ds: D }`, exactly an
//! entity-left join row for day `D` — seals the epoch, and writes the step's partitions.
//! A step's queries (and, for entity GroupBys, its snapshot rows) are retracted with the next
//! step's inputs, so the dataflow holds one step of them at a time.

use std::collections::{BTreeMap, BTreeSet};

use super::keys::{KeyId, KeyIndex};
use super::output::{self, Schemas};
use super::plan::{backfill_range, GroupByPlan};
use super::{GroupByOptions, GroupByReport};
use crate::config::GroupBy;
use crate::dataflow::records::{row_id, Item};
use crate::dataflow::spec::PartKind;
use crate::dataflow::Update;
use crate::engine::{Context, Schedule};
use crate::error::{Error, Result};
use crate::join::backfill::{needed_days, part_input_types, part_spec, source_range, Progress};
use crate::join::inputs::{self, check_key_types};
use crate::join::output::OutputState;
use crate::partition::{Ds, PartitionRange};

pub(super) fn run(
    cx: &Context,
    gb: &GroupBy,
    opts: &GroupByOptions,
    progress: Progress,
) -> Result<GroupByReport> {
    let engine = cx.session();
    let plan = GroupByPlan::new(gb)?;
    let part = &plan.part;
    let wh = engine.warehouse().clone();
    let mut report = GroupByReport {
        output: plan.output.to_string(),
        ..Default::default()
    };
    // partitions of every source
    let mut source_fps: Vec<Vec<(Ds, u64)>> = Vec::new();
    for s in &part.sources {
        let t = s.scan.table_name()?;
        let fps = wh.partition_fingerprints(&t, &s.scan.partition_column())?;
        if fps.is_empty() {
            return Err(wh.missing_table(&t, &s.scan.purpose));
        }
        source_fps.push(fps);
    }
    let range = backfill_range(gb, opts.start, opts.end)?;
    report.range = Some(range);
    // days with source data in range, missing from the output
    let candidates: BTreeSet<Ds> = source_fps
        .iter()
        .flatten()
        .map(|(d, _)| *d)
        .filter(|d| range.contains(*d))
        .collect();
    let existing = wh.partitions(&plan.output)?;
    let schedule = Schedule::plan(
        candidates,
        &existing,
        &BTreeSet::new(),
        false,
        opts.step_days,
        &report.output,
    )?;
    report.skipped_existing = schedule.skipped_existing;
    tracing::info!(group_by = %plan.name, output = %plan.output, %range, missing = schedule.todo.len(), existing = report.skipped_existing, "group_by plan");
    if schedule.is_empty() {
        return Ok(report);
    }

    // Schemas: keys as in the first source, every source's keys of the same kind.
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
    let schemas = Schemas::new(engine, &plan, &key_fields, &types)?;
    let mut index = KeyIndex::new(part, key_fields);
    let mut dataflow = cx.runtime()?.install(vec![part_spec(part, &types)], None)?;
    let mut state = OutputState::default();
    let mut fed: Vec<BTreeSet<Ds>> = vec![BTreeSet::new(); part.sources.len()];
    // what the next step retracts: this step's queries (and entity snapshot rows)
    let mut retract: Vec<Update> = Vec::new();

    let total = schedule.steps.len();
    for (si, step) in schedule.steps.iter().enumerate() {
        progress(si, total, &format!("{}: step {step}", plan.output));
        let days: Vec<Ds> = schedule.days_of(*step).into_iter().collect();
        let (Some(&lo), Some(&hi)) = (days.first(), days.last()) else {
            continue;
        };
        // 1. source partitions the step's days reach, each fed once
        let mut step_rows: Vec<Update> = Vec::new();
        let (from, to) = match part.kind {
            PartKind::Events => {
                needed_days(part, lo.shift(1).start_millis(), hi.shift(1).start_millis())
            }
            _ => (lo, hi),
        };
        let step_days: BTreeSet<Ds> = days.iter().copied().collect();
        for (i, s) in part.sources.iter().enumerate() {
            let Some(r) = source_range(&s.scan, &source_fps[i], from, to)? else {
                continue;
            };
            let new: Vec<Ds> = r.days().filter(|d| !fed[i].contains(d)).collect();
            for sub in PartitionRange::contiguous(&new) {
                let mut scan = s.scan.clone();
                scan.range = Some(sub);
                let (_, batches) = engine.scan(&scan)?;
                for b in &batches {
                    let updates =
                        inputs::source_rows(b, part, false, &s.scan.table, &mut report.source)?;
                    index.add(part, b, &updates, &step_days, &s.scan.purpose)?;
                    if part.kind != PartKind::Events {
                        // a snapshot serves only its own day: retracted after it is written
                        step_rows.extend(updates.iter().cloned());
                    }
                    dataflow.update(updates);
                }
            }
            fed[i].extend(new);
        }
        // 2. one query per key and day
        let mut queries: Vec<Update> = Vec::new();
        let mut day_keys: BTreeMap<Ds, Vec<KeyId>> = BTreeMap::new();
        for &d in &days {
            let keys = index.keys_on(d);
            let q = d.shift(1).start_millis();
            for (i, &id) in keys.iter().enumerate() {
                queries.push((
                    (
                        (part.index, index.key(id).clone()),
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
        let next: Vec<Update> = step_rows
            .into_iter()
            .chain(queries.iter().cloned())
            .map(|(d, r)| (d, -r))
            .collect();
        dataflow.update(std::mem::replace(&mut retract, next));
        dataflow.update(queries);
        state.apply(dataflow.seal()?);
        // 3. the step's partitions
        for (d, keys) in &day_keys {
            let (batch, dropped) =
                output::assemble(engine, &plan, &schemas, &index, *d, keys, &state)?;
            report.rows += batch.num_rows() as u64;
            report.dropped_all_null += dropped;
            wh.write_partition(
                &plan.output,
                &[("ds".into(), d.to_string())],
                schemas.written.clone(),
                &[batch],
            )?;
            report.written.push(*d);
            state.forget(*d);
            index.forget(*d);
        }
        wh.set_properties(
            &plan.output,
            &gb.meta_data.chronon_table_properties("group_by"),
        )?;
    }
    progress(total, total, &format!("{}: done", plan.output));
    let st = &report.source;
    if st.null_keys > 0 || st.null_ts > 0 {
        tracing::warn!(group_by = %plan.name, rows = st.rows, null_keys = st.null_keys, null_ts = st.null_ts, "source rows skipped: a key NULL or NULL ts");
    }
    Ok(report)
}
