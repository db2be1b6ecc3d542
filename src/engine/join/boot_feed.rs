//! The join runner's bootstrap side: builds the field universe and resolves the bootstrap
//! tables when the dataflow starts, feeds left rows (their bootstrap keys and queries) and
//! bootstrap partitions into the dataflow's bootstrap stage, keeps each left row's bootstrap
//! outcome, finds the source partitions the uncovered rows need, and assembles output
//! partitions with bootstrap values, external fields and provenance.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use arrow::array::Array;
use arrow::datatypes::{Field, SchemaRef};
use arrow::record_batch::RecordBatch;

use super::{InputId, JoinReport, Live, Reach};
use crate::dataflow::records::{
    row_ds, row_id, row_index, BootInput, BootValues, GroupKey, Item, RowAsk, RowId,
};
use crate::dataflow::{BootUpdate, Update};
use crate::error::{Error, Result};
use crate::join::bootstrap::assemble::{Bootstrap, PartCoverage, Provenance};
use crate::join::bootstrap::fields::{derived_fields, Fields};
use crate::join::bootstrap::tables::{self, BootStats};
use crate::join::inputs;
use crate::join::output;
use crate::join::plan::JoinPlan;
use crate::partition::Ds;
use crate::sql::Session;

/// What a running join keeps for bootstrap and external fields.
pub(super) struct BootLive {
    pub bs: Bootstrap,
    /// Left rows go through the bootstrap stage (the join has bootstrap parts); otherwise
    /// their queries go straight to the windows operator.
    pub active: bool,
    /// Output partitions go through the bootstrap pipeline (bootstrap or external parts).
    pub enabled: bool,
    /// Bootstrap outcome per left partition and row index (rows that matched something).
    pub state: HashMap<Ds, HashMap<u32, BootValues>>,
    pub stats: Vec<BootStats>,
    /// Part values after GroupBy derivations, per part (the base columns of derivations).
    pub part_values: Vec<Vec<String>>,
}

/// Builds the bootstrap side of a join: its field universe and coverage dependencies, and its
/// bootstrap tables resolved and validated.
pub(super) fn start(
    engine: &Session,
    plan: &JoinPlan,
    left_schema: &SchemaRef,
    base_schema: &SchemaRef,
    left_columns: &[String],
) -> Result<BootLive> {
    let (frame, part_values) =
        output::derive_group_bys(engine, plan, RecordBatch::new_empty(base_schema.clone()))?;
    let values: Vec<Vec<Field>> = part_values
        .iter()
        .map(|names| {
            names
                .iter()
                .map(|n| {
                    frame
                        .schema()
                        .field_with_name(n)
                        .map(|f| f.clone().with_nullable(true))
                        .map_err(|e| Error::arrow("typing join part columns", e))
                })
                .collect()
        })
        .collect::<Result<_>>()?;
    let keys: Vec<Vec<Field>> = plan
        .parts
        .iter()
        .map(|p| {
            p.left_keys
                .iter()
                .filter_map(|k| left_schema.field_with_name(k).ok().cloned())
                .collect()
        })
        .collect();
    // derived fields are typed by deriving the padded empty frame
    let base = Fields::build(&keys, &values, &plan.externals, &[]);
    let padding = Bootstrap::new(
        base.clone(),
        Vec::new(),
        plan.externals.clone(),
        left_columns,
    );
    let (padded, _) = padding.apply(&frame, left_columns, &[], &HashMap::new(), &[])?;
    let derived = if plan.derivations.is_empty() {
        Vec::new()
    } else {
        let out = output::derive_join(
            engine,
            plan,
            left_columns,
            std::slice::from_ref(&base.base_values),
            padded,
        )?;
        let schema = out.schema();
        derived_fields(&base.base_values, left_columns, &plan.derivations, &|n| {
            schema
                .field_with_name(n)
                .ok()
                .map(|f| f.data_type().clone())
        })
    };
    let fields = Fields::build(&keys, &values, &plan.externals, &derived);
    let tables = tables::resolve(
        engine,
        &plan.name,
        &plan.bootstrap,
        &fields,
        left_schema,
        &plan.left.scan.table,
    )?;
    let stats = vec![BootStats::default(); tables.len()];
    Ok(BootLive {
        bs: Bootstrap::new(fields, tables, plan.externals.clone(), left_columns),
        active: plan.has_bootstrap(),
        enabled: plan.has_bootstrap() || !plan.externals.is_empty(),
        state: HashMap::new(),
        stats,
        part_values,
    })
}

/// Feeds one left batch (partition `ds`, signed) through the bootstrap stage: its rows'
/// bootstrap keys and queries. `queries` are the per-part query updates of the batch.
pub(super) fn feed_left(
    live: &mut Live,
    table: &str,
    batch: &RecordBatch,
    ds: Ds,
    sign: isize,
    queries: Vec<Update>,
) -> Result<()> {
    let mut updates: Vec<BootUpdate> =
        tables::left_keys(batch, ds, &live.boot.bs.tables, table, sign)?;
    updates.extend(asks(batch, ds, sign, queries));
    live.dataflow.update_boot(updates);
    Ok(())
}

/// Every row of a left batch with its queries (a row without queries still asks: it may get
/// bootstrap values).
fn asks(batch: &RecordBatch, ds: Ds, sign: isize, queries: Vec<Update>) -> Vec<BootUpdate> {
    let mut asks: BTreeMap<RowId, Vec<(GroupKey, i64, i32)>> = (0..batch.num_rows())
        .map(|i| (row_id(ds, i as u32), Vec::new()))
        .collect();
    for ((gk, item), _) in queries {
        if let Item::Query { row, q, ds } = item {
            asks.entry(row).or_default().push((gk, q, ds));
        }
    }
    asks.into_iter()
        .map(|(row, queries)| {
            (
                BootInput::Ask {
                    row,
                    ask: RowAsk { queries },
                },
                sign,
            )
        })
        .collect()
}

/// Feeds bootstrap partitions: re-landed or removed ones already fed, and the new ones `want`
/// accepts within each part's start/end partitions. Returns whether anything was fed.
pub(super) fn sync_boot(
    engine: &Session,
    plan: &JoinPlan,
    live: &mut Live,
    want: &dyn Fn(Ds) -> bool,
) -> Result<bool> {
    if !live.boot.active {
        return Ok(false);
    }
    let fields = live.boot.bs.fields.clone();
    for t in live.boot.bs.tables.iter_mut() {
        t.refresh_hashes(engine, &fields)?;
    }
    let left_columns = live.left_columns.clone();
    if live.boot.bs.refresh(&left_columns) {
        // a log table now supplies a derived field that was not a column before
        live.out_schema = out_schema(engine, plan, &live.boot, &live.base_schema, &left_columns)?;
        live.stale.extend(live.owned.iter().copied());
    }
    let mut any = false;
    for ti in 0..live.boot.bs.tables.len() {
        let t = &live.boot.bs.tables[ti];
        let t = t.clone();
        let name = crate::warehouse::TableName::parse(&t.plan.table)?;
        let fps = engine
            .warehouse()
            .partition_fingerprints(&name, &t.plan.scan.partition_column())?;
        let q = &t.plan.scan.query;
        let lo = q.start_partition.as_deref().map(Ds::parse).transpose()?;
        let hi = q.end_partition.as_deref().map(Ds::parse).transpose()?;
        let within = |d: Ds| lo.is_none_or(|l| d >= l) && hi.is_none_or(|h| d <= h);
        // one batch per partition: matched rows are positions in it
        let keep = |b: Vec<RecordBatch>| -> Result<Vec<RecordBatch>> {
            match b.first() {
                None => Ok(b),
                Some(first) => Ok(vec![arrow::compute::concat_batches(&first.schema(), &b)
                    .map_err(|e| Error::arrow("combining bootstrap batches", e))?]),
            }
        };
        let changes = live.feeds.sync(
            engine,
            &t.plan.scan,
            InputId::Bootstrap { part: t.plan.index },
            &fps,
            &|d| within(d) && want(d),
            &keep,
        )?;
        let id = InputId::Bootstrap { part: t.plan.index };
        let t = t.clone();
        let mut failed = None;
        for c in changes {
            any = true;
            // the rows fed before are retracted whatever happens next
            let mut updates = Vec::new();
            for b in &c.old {
                updates.extend(t.rows(b, c.ds, -1, &mut BootStats::default())?);
            }
            live.dataflow.update_boot(updates);
            if failed.is_some() {
                live.feeds.forget_partition(id, c.ds);
                continue;
            }
            let mut st = BootStats::default();
            let new: Result<Vec<BootUpdate>> = c
                .new
                .iter()
                .map(|b| t.rows(b, c.ds, 1, &mut st))
                .collect::<Result<Vec<_>>>()
                .map(|v| v.concat());
            match new {
                Ok(updates) => {
                    let s = &mut live.boot.stats[ti];
                    s.rows += st.rows;
                    s.null_keys += st.null_keys;
                    s.null_hash += st.null_hash;
                    live.dataflow.update_boot(updates);
                }
                Err(e) => {
                    // not fed after all: a later run reads the partition again
                    live.feeds.forget_partition(id, c.ds);
                    failed = Some(e);
                }
            }
        }
        if let Some(e) = failed {
            return Err(e);
        }
    }
    Ok(any)
}

/// Applies the bootstrap outcomes of an epoch; returns the rows whose outcome changed.
pub(super) fn apply(live: &mut Live, changes: Vec<(RowId, Option<BootValues>)>) -> BTreeSet<RowId> {
    let mut rows = BTreeSet::new();
    let boot = &mut live.boot;
    for (row, v) in changes {
        rows.insert(row);
        let m = boot.state.entry(row_ds(row)).or_default();
        match v {
            Some(v) => m.insert(row_index(row), v),
            None => m.remove(&row_index(row)),
        };
    }
    rows
}

/// The query-time span, per part, of the queries of `rows` that bootstrap does not cover:
/// what the source partitions fed must reach.
pub(super) fn uncovered_reach(
    plan: &JoinPlan,
    live: &Live,
    rows: &BTreeSet<RowId>,
) -> Result<Option<Reach>> {
    let boot = &live.boot;
    let mut by_ds: BTreeMap<Ds, Vec<u32>> = BTreeMap::new();
    for &r in rows {
        by_ds.entry(row_ds(r)).or_default().push(row_index(r));
    }
    let mut reach: Reach = vec![None; plan.parts.len()];
    let mut any = false;
    for (ds, idx) in by_ds {
        let Some(batch) = live.feeds.batches(InputId::Left, ds).first() else {
            continue;
        };
        let state = boot.state.get(&ds);
        let wanted: std::collections::HashSet<u32> = idx.into_iter().collect();
        for p in &plan.parts {
            let (updates, _) =
                inputs::left_queries(batch, ds, p, plan.left.events, &plan.left.scan.table)?;
            for ((_, item), _) in updates {
                let Item::Query { row, q, .. } = item else {
                    continue;
                };
                let i = row_index(row);
                if !wanted.contains(&i) {
                    continue;
                }
                let covered = state
                    .and_then(|s| s.get(&i))
                    .is_some_and(|b| b.covered.contains(&p.index));
                if covered {
                    continue;
                }
                let span = reach[p.index as usize].get_or_insert((q, q));
                span.0 = span.0.min(q);
                span.1 = span.1.max(q);
                any = true;
            }
        }
    }
    Ok(any.then_some(reach))
}

/// Builds an output partition with bootstrap values: left and computed columns, GroupBy
/// derivations, bootstrap values by priority, external fields, join derivations, contextual
/// keys dropped. Returns the batch and where its values came from.
pub(super) fn finish_partition(
    engine: &Session,
    plan: &JoinPlan,
    live: &Live,
    ds: Ds,
    left: &RecordBatch,
) -> Result<(RecordBatch, Provenance)> {
    let boot = &live.boot;
    let (batch, rows) = output::assemble_rows(plan, &live.base_schema, ds, left, &live.state)?;
    let empty = HashMap::new();
    let state = boot.state.get(&ds).unwrap_or(&empty);
    let parts: Vec<Option<&RecordBatch>> = boot
        .bs
        .tables
        .iter()
        .map(|t| {
            live.feeds
                .batches(InputId::Bootstrap { part: t.plan.index }, ds)
                .first()
        })
        .collect();
    let (out, sources) = finish_batch(
        engine,
        plan,
        boot,
        &live.left_columns,
        batch,
        &rows,
        state,
        &parts,
    )?;
    let mut prov = Provenance {
        rows: out.num_rows() as u64,
        bootstrap_parts: boot.bs.labels(),
        columns: boot.bs.count(&out, &sources)?,
        parts: Vec::new(),
    };
    for p in &plan.parts {
        let mut c = PartCoverage {
            part: p.full_prefix.clone(),
            ..Default::default()
        };
        let keys = inputs::key_arrays(left, &p.left_keys, "left keys")?;
        for i in 0..left.num_rows() as u32 {
            if state.get(&i).is_some_and(|b| b.covered.contains(&p.index)) {
                c.covered += 1;
            } else if keys.iter().all(|k| !k.is_null(i as usize)) {
                c.computed += 1;
            }
        }
        prov.parts.push(c);
    }
    Ok((out, prov))
}

/// The output pipeline after assembly (also used on an empty batch to plan the schema).
#[allow(clippy::too_many_arguments)]
fn finish_batch(
    engine: &Session,
    plan: &JoinPlan,
    boot: &BootLive,
    left_columns: &[String],
    batch: RecordBatch,
    rows: &[u32],
    state: &HashMap<u32, BootValues>,
    parts: &[Option<&RecordBatch>],
) -> Result<(
    RecordBatch,
    HashMap<String, Vec<crate::join::bootstrap::assemble::Source>>,
)> {
    let (batch, _) = output::derive_group_bys(engine, plan, batch)?;
    let (merged, sources) = boot.bs.apply(&batch, left_columns, rows, state, parts)?;
    let mut base = boot.part_values.clone();
    base.push(
        boot.bs
            .externals
            .iter()
            .flat_map(|e| e.values.iter().map(|(n, _)| n.clone()))
            .collect(),
    );
    let derived = output::derive_join(engine, plan, left_columns, &base, merged)?;
    let projected: Vec<String> = if plan.derivations.is_empty() {
        Vec::new()
    } else {
        crate::join::derive::derivation_projection(&base.concat(), &plan.derivations)
            .into_iter()
            .map(|(n, _)| n)
            .collect()
    };
    let out = boot
        .bs
        .drop_contextual_keys(derived, left_columns, &projected)?;
    Ok((out, sources))
}

/// The written schema of a join with a bootstrap side.
pub(super) fn out_schema(
    engine: &Session,
    plan: &JoinPlan,
    boot: &BootLive,
    base_schema: &SchemaRef,
    left_columns: &[String],
) -> Result<SchemaRef> {
    let (b, _) = finish_batch(
        engine,
        plan,
        boot,
        left_columns,
        RecordBatch::new_empty(base_schema.clone()),
        &[],
        &HashMap::new(),
        &[],
    )?;
    Ok(b.schema())
}

/// Adds the run's bootstrap counts to the report.
pub(super) fn report(live: &Live, report: &mut JoinReport) {
    let b = &live.boot;
    report.bootstrap =
        b.bs.tables
            .iter()
            .zip(&b.stats)
            .map(|(t, s)| (t.plan.table.clone(), t.log, *s))
            .collect();
}

/// Changes the bootstrap parts of a running join (everything else unchanged): parts that are
/// gone or changed are retracted, left rows move onto or off the bootstrap stage when the join
/// gains its first or loses its last part, and partitions written without bootstrap get their
/// computed values back in memory. New parts are fed by the next run. Returns whether the
/// written schema changed (every maintained partition must then be rewritten).
pub(super) fn reconfigure(
    engine: &Session,
    old: &JoinPlan,
    new: &JoinPlan,
    live: &mut Live,
) -> Result<bool> {
    let tables = tables::resolve(
        engine,
        &new.name,
        &new.bootstrap,
        &live.boot.bs.fields,
        &live.left_schema,
        &new.left.scan.table,
    )?;
    let same = |a: &tables::BootTable, b: &tables::BootTable| {
        a.plan.index == b.plan.index
            && a.plan.table == b.plan.table
            && a.plan.keys == b.plan.keys
            && a.plan.hash == b.plan.hash
    };
    let mut stats = vec![BootStats::default(); tables.len()];
    for (i, t) in live.boot.bs.tables.clone().iter().enumerate() {
        if let Some(n) = tables.iter().find(|n| same(t, n)) {
            stats[n.plan.index as usize] = live.boot.stats[i];
            continue;
        }
        let id = InputId::Bootstrap { part: t.plan.index };
        for ds in live.feeds.days(id) {
            let mut updates = Vec::new();
            for b in live.feeds.batches(id, ds) {
                updates.extend(t.rows(b, ds, -1, &mut BootStats::default())?);
            }
            live.dataflow.update_boot(updates);
        }
        live.feeds.forget(id);
    }
    // left rows' keys move to the new parts; their queries move onto (or off) the stage when
    // the join gains its first (or loses its last) bootstrap part
    let active = new.has_bootstrap();
    let table = old.left.scan.table.clone();
    for ds in live.feeds.days(InputId::Left) {
        let Some(batch) = live.feeds.batches(InputId::Left, ds).first().cloned() else {
            continue;
        };
        let mut updates = tables::left_keys(&batch, ds, &live.boot.bs.tables, &table, -1)?;
        updates.extend(tables::left_keys(&batch, ds, &tables, &table, 1)?);
        if active != live.boot.active {
            let mut all = Vec::new();
            for p in &old.parts {
                let (q, _) = inputs::left_queries(&batch, ds, p, old.left.events, &table)?;
                all.extend(q);
            }
            let (direct, staged) = if active { (-1, 1) } else { (1, -1) };
            let flipped: Vec<Update> = all.iter().map(|(u, _)| (u.clone(), direct)).collect();
            live.dataflow.update(flipped);
            updates.extend(asks(&batch, ds, staged, all));
        }
        live.dataflow.update_boot(updates);
    }
    let enabled = active || !new.externals.is_empty();
    if enabled && !live.boot.enabled {
        // partitions written from disk-patched values: bring their computed values back
        for ds in std::mem::take(&mut live.on_disk) {
            let existing = engine.warehouse().read_partition(&old.output, ds)?;
            let existing = arrow::compute::concat_batches(&live.out_schema, &existing)
                .map_err(|e| Error::arrow("reading the output partition back", e))?;
            let mut changes = Vec::new();
            let cols: Vec<Vec<Vec<crate::aggregate::Value>>> = old
                .parts
                .iter()
                .map(|p| {
                    p.columns
                        .iter()
                        .map(|c| match existing.column_by_name(&c.name) {
                            Some(a) => crate::aggregate::value::column_values(a),
                            None => Ok(vec![crate::aggregate::Value::Null; existing.num_rows()]),
                        })
                        .collect::<Result<Vec<_>>>()
                })
                .collect::<Result<_>>()?;
            for (pi, p) in old.parts.iter().enumerate() {
                for i in 0..existing.num_rows() {
                    let v: Vec<crate::aggregate::Value> =
                        cols[pi].iter().map(|c| c[i].clone()).collect();
                    changes.push((
                        row_id(ds, i as u32),
                        p.index,
                        vec![crate::dataflow::records::encode_row(&v)],
                    ));
                }
            }
            live.state.apply(changes);
        }
    }
    let left_columns = live.left_columns.clone();
    live.boot.bs = Bootstrap::new(
        live.boot.bs.fields.clone(),
        tables,
        new.externals.clone(),
        &left_columns,
    );
    live.boot.active = active;
    live.boot.enabled = enabled;
    live.boot.stats = stats;
    let schema = if enabled {
        out_schema(engine, new, &live.boot, &live.base_schema, &left_columns)?
    } else {
        live.base_schema.clone()
    };
    let changed = schema != live.out_schema;
    live.out_schema = schema;
    Ok(changed)
}
