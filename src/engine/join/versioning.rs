//! Reuse across versions of a join's config (chronon-semantics §3.7), decided once, before
//! the first run of a [`JoinRunner`](super::JoinRunner), from the semantic hash stored on the
//! output table ([`plan_versioning`]); the decision is logged and put in the report.
//!
//! - **Nothing stored, or nothing changed**: only missing partitions are computed.
//! - **Left source (or bootstrap parts) changed**: the output table is archived to
//!   `<table>_<timestamp>` and everything is recomputed, as in Chronon.
//! - **Parts changed, added or removed, or derivations changed** (left unchanged): every
//!   existing output partition in the run's range is rewritten in place (each atomically).
//!   Weft keeps no part tables; the existing output is the cache: its rows are the left rows
//!   the old output was computed on, so they — with the columns of the unchanged parts — are
//!   the left of a join restricted to the changed and added parts, run through the same
//!   dataflow. Removed parts' columns are dropped, columns are ordered as the new plan orders
//!   them and join derivations are applied again. Existing partitions outside the run's range
//!   are moved to the archive table `<table>_<timestamp>` (Chronon archives the whole output).
//!
//! Where the existing output cannot stand in for the old left rows and parts, weft does not
//! guess. The whole table is archived and recomputed (and the decision says why) when the
//! existing output lacks a reused part's or a left column (left out by join derivations), when
//! a previous join derivation wrote such a column, when the previous derivations are not
//! recorded, or when an earlier rewrite to another version did not finish. A single partition
//! is recomputed from the current left by the normal run when its files lack a needed column,
//! or when its rows may repeat a left row (a part without aggregations matched several rows)
//! and differ from the current left partition.
//!
//! A rewrite in progress is marked by the table property `weft_reuse_pending` (the new hash):
//! an interrupted rewrite is finished by the same version of the join, and any other version
//! archives and recomputes, so partitions of two versions are never mixed.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::sync::Arc;

use arrow::array::ArrayRef;
use arrow::compute::concat_batches;
use arrow::datatypes::{Field, Schema};
use arrow::record_batch::RecordBatch;
use arrow::row::{RowConverter, Rows, SortField};
use indexmap::IndexMap;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::{
    data_columns, source_fingerprints, start_live, sync_left, sync_sources, JoinOptions,
    JoinReport, Live, Progress,
};
use crate::config::naming::part_table;
use crate::config::{Derivation, Join, Query};
use crate::error::{Error, Result};
use crate::join::derive::{derive_join_with_left, group_by_derived_names};
use crate::join::feed::InputId;
use crate::join::inputs::EventStats;
use crate::join::output;
use crate::join::plan::{JoinPlan, LeftPlan, PartPlan};
use crate::join::semantic_hash::{
    load_semantic_hash, plan_versioning, semantic_hash, store_semantic_hash, Decision,
    SemanticHash, DERIVED_KEY,
};
use crate::partition::{Ds, PartitionRange};
use crate::sql::scan::{ident, Scan};
use crate::sql::Session;
use crate::warehouse::archive::ARCHIVED_PROPERTY;
use crate::warehouse::{TableName, Warehouse};

/// Table property set while existing partitions are rewritten for a new version: the new
/// semantic hash (empty when no rewrite is pending).
pub const PENDING_PROPERTY: &str = "weft_reuse_pending";
/// Table property recording the join derivations the output was written with (JSON), so a
/// later version knows which columns of the existing output are plain part columns.
pub const DERIVATIONS_PROPERTY: &str = "weft_join_derivations";

/// How one existing output partition was rewritten for a new version of the join.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionReuse {
    pub ds: Ds,
    /// Rows written.
    pub rows: usize,
    /// Parts (full prefixes) computed for the partition's rows.
    pub recomputed: Vec<String>,
    /// Parts whose columns were kept from the existing partition.
    pub reused: Vec<String>,
}

/// Decides and applies what a new version of the join reuses. Returns existing output
/// partitions the run must recompute as if they were missing.
pub(super) fn prepare(
    cx: &crate::engine::Context,
    join: &Join,
    plan: &JoinPlan,
    range: PartitionRange,
    opts: &JoinOptions,
    progress: Progress,
    report: &mut JoinReport,
) -> Result<BTreeSet<Ds>> {
    let engine = cx.session();
    let wh = engine.warehouse();
    let (hash, decision) = plan_versioning(wh, join)?;
    let out = &plan.output;
    report.part_rows = plan
        .parts
        .iter()
        .map(|p| (p.full_prefix.clone(), 0))
        .collect();
    let pending = wh
        .properties(out)?
        .get(PENDING_PROPERTY)
        .filter(|p| !p.is_empty())
        .cloned();
    let mut redo = BTreeSet::new();
    let text = if decision.full_recompute.is_some() {
        archive_all(engine, join, &decision, &hash, None)?
    } else if pending.is_some_and(|p| p != hash_text(&hash)) {
        let why =
            format!("an earlier rewrite of {out} for another version of the join did not finish");
        archive_all(engine, join, &decision, &hash, Some(why))?
    } else if decision.rewrite_output && (plan.has_bootstrap() || !plan.externals.is_empty()) {
        let why = "the join has bootstrap parts or external parts, so its existing output mixes bootstrapped and computed values and cannot stand in for the unchanged parts".to_string();
        archive_all(engine, join, &decision, &hash, Some(why))?
    } else if decision.rewrite_output {
        match Reuse::plan(engine, join, plan, &decision)? {
            Err(why) => archive_all(engine, join, &decision, &hash, Some(why))?,
            Ok(r) => r.rewrite(
                cx, join, plan, range, opts, progress, &decision, report, &mut redo,
            )?,
        }
    } else {
        decision.to_string()
    };
    tracing::info!(join = %plan.name, output = %out, "{text}");
    report.versioning = Some(text);
    Ok(redo)
}

/// Before a table's first partition is published: stores the semantic hash, so a run that
/// crashes part-way, followed by a config change, is versioned like any other.
pub(super) fn store_before_first_partition(
    wh: &Warehouse,
    join: &Join,
    out: &TableName,
) -> Result<()> {
    if load_semantic_hash(wh, out)?.is_none() && wh.partitions(out)?.is_empty() {
        store(wh, out, &semantic_hash(join)?, join)?;
    }
    Ok(())
}

/// After a successful run: counts the rows the run fed for every part and stores the
/// semantic hash (and derivations) on the output table.
pub(super) fn finish(
    engine: &Session,
    join: &Join,
    plan: &JoinPlan,
    report: &mut JoinReport,
) -> Result<()> {
    if report.part_rows.is_empty() {
        report.part_rows = plan
            .parts
            .iter()
            .map(|p| (p.full_prefix.clone(), 0))
            .collect();
    }
    for (name, n) in &mut report.part_rows {
        // with bootstrap, only the rows nothing covers were computed
        let computed = report
            .provenance
            .as_ref()
            .and_then(|p| p.parts.iter().find(|c| &c.part == name))
            .map(|c| c.computed);
        *n += computed.unwrap_or(report.left_rows);
    }
    let wh = engine.warehouse();
    if !wh.partitions(&plan.output)?.is_empty() {
        store(wh, &plan.output, &semantic_hash(join)?, join)?;
    }
    Ok(())
}

fn hash_text(hash: &SemanticHash) -> String {
    serde_json::to_string(hash).expect("string map serializes")
}

/// Stores the hash, the derivations, and clears the pending mark.
fn store(wh: &Warehouse, out: &TableName, hash: &SemanticHash, join: &Join) -> Result<()> {
    store_semantic_hash(wh, out, hash)?;
    wh.set_properties(
        out,
        &BTreeMap::from([
            (
                DERIVATIONS_PROPERTY.to_string(),
                serde_json::to_string(&join.derivations).expect("derivations serialize"),
            ),
            (PENDING_PROPERTY.to_string(), String::new()),
        ]),
    )
}

/// What changed, for the decision text: "part `x` changed, part `y` added, …".
fn changes(d: &Decision) -> String {
    let mut what: Vec<String> = Vec::new();
    for (list, verb) in [
        (&d.changed_parts, "changed"),
        (&d.added_parts, "added"),
        (&d.removed_parts, "removed"),
    ] {
        what.extend(
            list.iter()
                .map(|t| format!("part `{}` {verb}", d.part_label(t))),
        );
    }
    if d.derived_changed {
        what.push("derivations changed".into());
    }
    what.join(", ")
}

/// Archives the output (and any other table of the decision that exists) and lets the run
/// recompute everything. `why`: the reason reuse is not possible (a fallback).
fn archive_all(
    engine: &Session,
    join: &Join,
    decision: &Decision,
    hash: &SemanticHash,
    why: Option<String>,
) -> Result<String> {
    let wh = engine.warehouse();
    let mut d = decision.clone();
    if !d.archive.contains(&d.output_table) {
        d.archive.push(d.output_table.clone());
    }
    // weft has no part or bootstrap tables: name only what is archived
    d.archive
        .retain(|t| TableName::parse(t).is_ok_and(|n| wh.exists(&n)));
    let text = match why {
        None => d.to_string(),
        Some(why) => {
            let what = changes(&d);
            let archiving: Vec<String> = d
                .archive
                .iter()
                .map(|t| format!("{t} to {}", d.archived_name(t)))
                .collect();
            format!(
                "{}{why}: {}recomputing everything",
                if what.is_empty() {
                    String::new()
                } else {
                    format!("{what}, but ")
                },
                if archiving.is_empty() {
                    String::new()
                } else {
                    format!("archiving {} and ", archiving.join(", "))
                }
            )
        }
    };
    tracing::info!("{text}");
    d.apply_archive(wh)?;
    engine.refresh()?;
    // from here on every partition of the output is of this version
    let out = TableName::parse(&d.output_table)?;
    store(wh, &out, hash, join)?;
    Ok(text)
}

/// The output columns of a part after its GroupBy derivations (as `output::derive` names
/// them): `<fullPrefix>_<column>`.
fn part_columns(p: &PartPlan) -> Vec<String> {
    let names: Vec<String> = if p.columns.is_empty() {
        p.raw_names.clone()
    } else {
        p.columns.iter().map(|c| c.name.clone()).collect()
    };
    if p.derivations.is_empty() {
        return names;
    }
    let prefix = format!("{}_", p.full_prefix);
    let values: Vec<String> = names
        .iter()
        .map(|n| n.strip_prefix(&prefix).unwrap_or(n).to_string())
        .collect();
    let mut columns = p.right_keys.clone();
    columns.extend(values.iter().cloned());
    group_by_derived_names(&columns, &p.right_keys, &values, &p.derivations)
        .into_iter()
        .filter(|n| !p.right_keys.contains(n) && n != "ds" && n != "ts")
        .map(|n| format!("{prefix}{n}"))
        .collect()
}

/// A planned rewrite of the existing output for a new version of the join.
struct Reuse {
    /// The join restricted to the changed and added parts (renumbered), whose left scan reads
    /// the existing output's left columns and reused parts' columns; no join derivations.
    rplan: JoinPlan,
    /// Index in the full plan of each part of `rplan`.
    orig: Vec<usize>,
    /// Left data columns (of the current left scan, in its order).
    left_names: Vec<String>,
    /// Per part of the full plan: its output columns, and whether they are reused.
    part_names: Vec<Vec<String>>,
    reused: Vec<bool>,
}

impl Reuse {
    /// Plans the rewrite, or says why the existing output cannot be reused.
    fn plan(
        engine: &Session,
        join: &Join,
        plan: &JoinPlan,
        decision: &Decision,
    ) -> Result<std::result::Result<Reuse, String>> {
        let wh = engine.warehouse();
        let out = &plan.output;
        let mut reused = Vec::new();
        for p in &plan.parts {
            let t = part_table(
                &join.meta_data,
                &crate::join::semantic_hash::hashed_parts(join)[p.index as usize],
            )?;
            reused.push(decision.reused_parts.contains(&t));
        }
        let left_schema = engine.scan_schema(&plan.left.scan)?;
        let left_names: Vec<String> = data_columns(&left_schema)
            .into_iter()
            .map(|i| left_schema.field(i).name().clone())
            .collect();
        let part_names: Vec<Vec<String>> = plan.parts.iter().map(part_columns).collect();
        let needed: Vec<String> = left_names
            .iter()
            .chain(
                part_names
                    .iter()
                    .zip(&reused)
                    .filter(|(_, r)| **r)
                    .flat_map(|(n, _)| n),
            )
            .cloned()
            .collect();

        if !wh.partitions(out)?.is_empty() {
            // The previous derivations: the current ones if unchanged, else as recorded.
            let props = wh.properties(out)?;
            let had_derived =
                load_semantic_hash(wh, out)?.is_some_and(|s| s.hash.contains_key(DERIVED_KEY));
            let old: Vec<Derivation> = if !decision.derived_changed {
                join.derivations.clone()
            } else if !had_derived {
                Vec::new()
            } else {
                match props
                    .get(DERIVATIONS_PROPERTY)
                    .and_then(|t| serde_json::from_str(t).ok())
                {
                    Some(d) => d,
                    None => {
                        return Ok(Err(format!(
                            "the previous derivations are not recorded on {out}, so its columns cannot be reused"
                        )))
                    }
                }
            };
            if let Some(d) = old
                .iter()
                .find(|d| d.name != "*" && d.name != d.expression && needed.contains(&d.name))
            {
                return Ok(Err(format!(
                    "the previous derivation `{}` wrote column `{}` of the existing output",
                    d.expression, d.name
                )));
            }
            let schema = wh.table_schema(out)?;
            let missing: Vec<String> = needed
                .iter()
                .filter(|c| schema.field_with_name(c).is_err())
                .map(|c| format!("`{c}`"))
                .collect();
            if !missing.is_empty() {
                return Ok(Err(format!(
                    "the existing output has no column {} (left out by the join derivations) to reuse",
                    missing.join(", ")
                )));
            }
        }

        let mut selects = IndexMap::new();
        for c in &needed {
            selects.insert(c.clone(), ident(c));
        }
        let events = plan.left.events;
        let mut fill_ins = vec![("ds".to_string(), None)];
        if events {
            fill_ins.push(("ts".to_string(), Some(ident("ts"))));
        }
        let scan = Scan {
            table: out.to_string(),
            query: Query {
                selects: Some(selects),
                time_column: events.then(|| "ts".to_string()),
                ..Default::default()
            },
            fill_ins,
            range: None,
            purpose: format!("rows of the existing output {out}, reused as the left"),
        };
        let mut orig = Vec::new();
        let mut parts = Vec::new();
        for (i, p) in plan.parts.iter().enumerate() {
            if !reused[i] {
                let mut p = p.clone();
                p.index = parts.len() as u16;
                parts.push(p);
                orig.push(i);
            }
        }
        Ok(Ok(Reuse {
            rplan: JoinPlan {
                name: plan.name.clone(),
                output: out.clone(),
                left: LeftPlan { scan, events },
                parts,
                derivations: Vec::new(),
                bootstrap: Vec::new(),
                externals: Vec::new(),
            },
            orig,
            left_names,
            part_names,
            reused,
        }))
    }

    /// Rewrites the existing partitions in `range`, moves the others to the archive table,
    /// stores the new hash. Partitions to recompute in full are added to `redo`.
    #[allow(clippy::too_many_arguments)]
    fn rewrite(
        self,
        cx: &crate::engine::Context,
        join: &Join,
        plan: &JoinPlan,
        range: PartitionRange,
        opts: &JoinOptions,
        progress: Progress,
        decision: &Decision,
        report: &mut JoinReport,
        redo: &mut BTreeSet<Ds>,
    ) -> Result<String> {
        let engine = cx.session();
        let wh = engine.warehouse();
        let out = &plan.output;
        let hash = semantic_hash(join)?;
        // weft has no part tables; the output is rewritten, not archived
        let mut d = decision.clone();
        d.archive
            .retain(|t| *t != d.output_table && TableName::parse(t).is_ok_and(|n| wh.exists(&n)));
        tracing::info!(join = %plan.name, "{d}");
        d.apply_archive(wh)?;
        engine.refresh()?;
        let fps = wh.partition_fingerprints(out, "ds")?;
        let left_t = plan.left.scan.table_name()?;
        let left_parts = wh.partitions_by(&left_t, &plan.left.scan.partition_column())?;
        let needed: Vec<String> = self
            .rplan
            .left
            .scan
            .query
            .selects
            .as_ref()
            .map_or_else(Vec::new, |s| s.keys().cloned().collect());
        let mut inside = Vec::new();
        let mut move_out = Vec::new();
        for &(ds, _) in &fps {
            if !range.contains(ds) {
                move_out.push(ds);
            } else if partition_has(wh, out, ds, &needed)? {
                inside.push(ds);
            } else if left_parts.contains(&ds) {
                redo.insert(ds);
            } else {
                move_out.push(ds);
            }
        }
        if !fps.is_empty() {
            wh.set_properties(
                out,
                &BTreeMap::from([(PENDING_PROPERTY.to_string(), hash_text(&hash))]),
            )?;
        }

        let label = |i: usize| plan.parts[i].full_prefix.clone();
        let recomputed: Vec<String> = self.orig.iter().map(|&i| label(i)).collect();
        let reused: Vec<String> = (0..plan.parts.len())
            .filter(|&i| self.reused[i])
            .map(label)
            .collect();
        let mut scratch = JoinReport {
            null_key_rows: recomputed.iter().map(|l| (l.clone(), 0)).collect(),
            events: recomputed
                .iter()
                .map(|l| (l.clone(), EventStats::default()))
                .collect(),
            ..Default::default()
        };
        let mut live: Option<Live> = None;
        let mut source_fps = None;
        let what = format!("{out}: rewriting for the new version");
        let schedule = crate::engine::Schedule::of(inside, opts.step_days);
        schedule.run(&what, progress, |_, days| {
            let days: Vec<Ds> = days.iter().copied().collect();
            // (ds, the partition's rows as the left, those rows with the recomputed parts)
            let mut computed: Vec<(Ds, RecordBatch, RecordBatch)> = Vec::new();
            if self.rplan.parts.is_empty() {
                for &ds in &days {
                    let left = scan_partition(engine, &self.rplan.left.scan, ds)?;
                    computed.push((ds, left.clone(), left));
                }
            } else {
                let live = match &mut live {
                    Some(l) => l,
                    None => live.insert(start_live(engine, cx.runtime()?, &self.rplan, None)?),
                };
                let sfps = match &source_fps {
                    Some(s) => s,
                    None => source_fps.insert(source_fingerprints(engine, &self.rplan)?),
                };
                // `fps` is the listing before any rewrite: rewritten partitions are not re-read
                let reach = sync_left(
                    engine,
                    &self.rplan,
                    live,
                    &fps,
                    &|d| days.contains(&d),
                    &mut scratch,
                )?;
                if let Some(reach) = reach {
                    sync_sources(&self.rplan, live, sfps, Some(&reach))?;
                }
                live.state.apply(live.dataflow.seal()?);
                for &ds in &days {
                    let Some(left) = live.feeds.batches(InputId::Left, ds).first() else {
                        continue;
                    };
                    let b =
                        output::assemble(&self.rplan, &live.base_schema, ds, left, &live.state)?;
                    let b = output::derive(engine, &self.rplan, &live.left_columns, b)?;
                    live.state.forget(ds);
                    computed.push((ds, left.clone(), b));
                }
            }
            for (ds, left, b) in computed {
                if may_repeat_left_rows(engine, plan, &self.left_names, ds, &left)? {
                    if left_parts.contains(&ds) {
                        redo.insert(ds);
                    } else {
                        move_out.push(ds);
                    }
                    continue;
                }
                let batch = self.output_batch(engine, plan, &b, ds)?;
                let rows = batch.num_rows();
                wh.write_partition(
                    out,
                    &[("ds".into(), ds.to_string())],
                    batch.schema(),
                    &[batch],
                )?;
                report.reused.push(PartitionReuse {
                    ds,
                    rows,
                    recomputed: recomputed.clone(),
                    reused: reused.clone(),
                });
            }
            Ok(())
        })?;
        drop(live);
        move_out.sort();
        let moved = move_partitions(wh, out, &move_out, &d.archived_name(&out.name))?;
        if redo.is_empty() {
            store(wh, out, &hash, join)?;
        } // else the partitions to redo still hold the old version: stored after the run
        engine.refresh()?;

        // what the rewrite computed, per part of the full plan
        for (ri, &i) in self.orig.iter().enumerate() {
            report.part_rows[i].1 += scratch.left_rows;
            report.null_key_rows[i].1 += scratch.null_key_rows[ri].1;
            let (st, s) = (&mut report.events[i].1, &scratch.events[ri].1);
            st.add(s);
        }
        let mut text = format!(
            "{d} ({} existing partition(s) in {range} rewritten in place",
            report.reused.len()
        );
        if !redo.is_empty() {
            text.push_str(&format!(
                ", {} recomputed in full (a needed column is missing, or rows may repeat a left row)",
                redo.len()
            ));
        }
        if let Some(t) = moved {
            text.push_str(&format!(
                ", {} outside the range or without a left partition moved to {t}",
                move_out.len()
            ));
        }
        text.push(')');
        Ok(text)
    }

    /// The new version's partition from the rewritten rows: left columns, then every part's
    /// columns in plan order, then join derivations.
    fn output_batch(
        &self,
        engine: &Session,
        plan: &JoinPlan,
        b: &RecordBatch,
        ds: Ds,
    ) -> Result<RecordBatch> {
        let ctx = format!("rewriting {} partition ds={ds}", plan.output);
        let mut fields: Vec<Field> = Vec::new();
        let mut arrays: Vec<ArrayRef> = Vec::new();
        let mut base_values: Vec<String> = Vec::new();
        let names = self
            .left_names
            .iter()
            .chain(self.part_names.iter().flatten());
        for (k, name) in names.enumerate() {
            let i = b
                .schema()
                .index_of(name)
                .map_err(|e| Error::arrow(&ctx, e))?;
            fields.push(b.schema().field(i).clone());
            arrays.push(b.column(i).clone());
            if k >= self.left_names.len() {
                base_values.push(name.clone());
            }
        }
        let base = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
            .map_err(|e| Error::arrow(&ctx, e))?;
        if plan.derivations.is_empty() {
            return Ok(base);
        }
        derive_join_with_left(
            engine,
            &base,
            &self.left_names,
            &base_values,
            &plan.derivations,
            &format!("derivations of join {}", plan.name),
        )
    }
}

/// One partition of a scan, without `ds`.
fn scan_partition(engine: &Session, scan: &Scan, ds: Ds) -> Result<RecordBatch> {
    let mut s = scan.clone();
    s.range = Some(PartitionRange::new(ds, ds));
    let (schema, batches) = engine.scan(&s)?;
    let b = concat_batches(&schema, &batches)
        .map_err(|e| Error::arrow(format!("reading {} ds={ds}", s.table), e))?;
    b.project(&data_columns(&schema))
        .map_err(|e| Error::arrow(format!("reading {} ds={ds}", s.table), e))
}

/// Whether every file of an output partition has the columns `cols` (a column missing from
/// a partition would read as NULL).
fn partition_has(wh: &Warehouse, t: &TableName, ds: Ds, cols: &[String]) -> Result<bool> {
    for f in wh.partition_files(t, ds)? {
        let ctx = || format!("reading {}", f.display());
        let file = File::open(&f).map_err(|e| Error::io(ctx(), e))?;
        let b =
            ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| Error::parquet(ctx(), e))?;
        if cols.iter().any(|c| b.schema().field_with_name(c).is_err()) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The columns `names` of each batch in one comparable row encoding (`None` if a column is
/// missing, the types differ or cannot be encoded).
fn encode(batches: &[&RecordBatch], names: &[String]) -> Option<Vec<Rows>> {
    let cols = |b: &RecordBatch| -> Option<Vec<ArrayRef>> {
        names.iter().map(|n| b.column_by_name(n).cloned()).collect()
    };
    let first = cols(batches[0])?;
    let conv = RowConverter::new(
        first
            .iter()
            .map(|c| SortField::new(c.data_type().clone()))
            .collect(),
    )
    .ok()?;
    batches
        .iter()
        .map(|b| conv.convert_columns(&cols(b)?).ok())
        .collect()
}

/// Whether the rows of an existing partition may not be its left rows one for one: a part
/// without aggregations repeats a left row once per match, and those copies are adjacent.
/// Adjacent equal left values are also genuine duplicate left rows, so then the partition is
/// compared with the current left partition; only equal rows are safe.
fn may_repeat_left_rows(
    engine: &Session,
    plan: &JoinPlan,
    left_names: &[String],
    ds: Ds,
    rows: &RecordBatch,
) -> Result<bool> {
    let adjacent = match encode(&[rows], left_names) {
        Some(r) => {
            let r = &r[0];
            (1..r.num_rows()).any(|i| r.row(i) == r.row(i - 1))
        }
        None => true,
    };
    if !adjacent {
        return Ok(false);
    }
    let current = scan_partition(engine, &plan.left.scan, ds)?;
    Ok(match encode(&[rows, &current], left_names) {
        Some(r) => {
            r[0].num_rows() != r[1].num_rows()
                || (0..r[0].num_rows()).any(|i| r[0].row(i) != r[1].row(i))
        }
        None => true,
    })
}

/// Moves output partitions to the archive table `<ns>.<name>` (marked `chronon_archived`),
/// each in one rename. Returns the archive table if anything moved.
fn move_partitions(
    wh: &Warehouse,
    out: &TableName,
    days: &[Ds],
    archive_name: &str,
) -> Result<Option<TableName>> {
    if days.is_empty() {
        return Ok(None);
    }
    let target = TableName::parse(&format!("{}.{archive_name}", out.namespace))?;
    for ds in days {
        let spec = [("ds".to_string(), ds.to_string())];
        let (from, to) = (
            wh.partition_dir(out, &spec),
            wh.partition_dir(&target, &spec),
        );
        let parent = to.parent().expect("partition has a table folder");
        std::fs::create_dir_all(parent)
            .map_err(|e| Error::io(format!("creating {}", parent.display()), e))?;
        std::fs::rename(&from, &to)
            .map_err(|e| Error::io(format!("moving {} to {}", from.display(), to.display()), e))?;
    }
    wh.set_properties(
        &target,
        &BTreeMap::from([(ARCHIVED_PROPERTY.to_string(), "true".to_string())]),
    )?;
    Ok(Some(target))
}
