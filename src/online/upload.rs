//! `weft upload` (chronon-semantics §6.2): writes a GroupBy's serving data as of the end of a
//! day into the online store, version = the end of that day.
//!
//! Snapshot and no-aggregation GroupBys upload the GroupBy backfill partition of the day —
//! computed by the same dataflow as every offline table if it is missing — so served values
//! are the offline values. TEMPORAL event GroupBys upload partial aggregates per key: the hop
//! slots of each window's tail and, for unbounded windows, one aggregate of all history
//! (`super::serving`); streamed events complete them at fetch time.

use std::collections::{BTreeMap, HashMap};

use super::serving::{
    batch_dataset, BatchValue, ColumnTiles, GroupByServing, ServingKind, SERVING_INFO_KEY,
};
use super::store::{OnlineStore, PutRequest};
use crate::aggregate::Value;
use crate::config::GroupBy;
use crate::dataflow::records::{Item, Key};
use crate::dataflow::tiles::{Ev, Layout, TileCache, Tiles};
use crate::engine::Context;
use crate::engine::{backfill_group_by, GroupByOptions, Progress};
use crate::error::{Error, Result};
use crate::groupby::GroupByPlan;
use crate::join::inputs::{self, encode_key, key_arrays, EventStats};
use crate::join::part::{part_input_types, part_spec};
use crate::partition::{Ds, PartitionRange};
use crate::sql::Session;

/// The values an upload writes, by store key.
type KeyValues = Vec<(Key, BatchValue)>;

/// What an upload wrote.
#[derive(Debug, Clone)]
pub struct UploadReport {
    pub group_by: String,
    pub ds: Ds,
    pub dataset: String,
    pub kind: ServingKind,
    /// Keys written.
    pub keys: u64,
    /// Source rows read (TEMPORAL) or backfill rows read.
    pub rows: u64,
    /// Source rows skipped (NULL keys or `ts`).
    pub skipped: u64,
}

/// Uploads `gb`'s serving data as of the end of `ds`.
pub fn upload(
    cx: &Context,
    store: &dyn OnlineStore,
    gb: &GroupBy,
    ds: Ds,
    progress: Progress,
) -> Result<UploadReport> {
    let serving = GroupByServing::new(gb)?;
    let dataset = batch_dataset(gb);
    let batch_end = ds.shift(1).start_millis();
    let mut report = UploadReport {
        group_by: gb.meta_data.name.clone(),
        ds,
        dataset: dataset.clone(),
        kind: serving.kind,
        keys: 0,
        rows: 0,
        skipped: 0,
    };
    let (values, columns): (Vec<(Key, BatchValue)>, Vec<String>) = match serving.kind {
        ServingKind::Temporal => (
            tiles(cx.session(), &serving, ds, progress, &mut report)?,
            serving
                .part
                .columns
                .iter()
                .map(|c| c.gb_column.clone())
                .collect(),
        ),
        _ => snapshot(cx, gb, &serving, ds, progress, &mut report)?,
    };
    report.keys = values.len() as u64;
    let mut puts = Vec::with_capacity(values.len().min(65_536));
    for (key, v) in values {
        puts.push(PutRequest {
            dataset: dataset.clone(),
            key,
            value: v.encode(),
            ts: batch_end,
        });
        if puts.len() == 65_536 {
            store.multi_put(std::mem::take(&mut puts))?;
        }
    }
    puts.push(PutRequest {
        dataset: dataset.clone(),
        key: SERVING_INFO_KEY.to_vec(),
        value: serde_json::json!({
            "group_by": gb.meta_data.name,
            "ds": ds.to_string(),
            "batch_end": batch_end,
            "kind": format!("{:?}", serving.kind),
            "keys": report.keys,
            "columns": columns,
        })
        .to_string()
        .into_bytes(),
        ts: batch_end,
    });
    store.multi_put(puts)?;
    tracing::info!(group_by = %report.group_by, %ds, keys = report.keys, dataset = %dataset, "uploaded");
    Ok(report)
}

/// Snapshot and raw GroupBys: the GroupBy backfill row(s) of `ds` per key.
fn snapshot(
    cx: &Context,
    gb: &GroupBy,
    serving: &GroupByServing,
    ds: Ds,
    progress: Progress,
    report: &mut UploadReport,
) -> Result<(KeyValues, Vec<String>)> {
    let engine = cx.session();
    let plan = GroupByPlan::new(gb)?;
    let wh = engine.warehouse();
    if !wh.partitions(&plan.output)?.contains(&ds) {
        backfill_group_by(
            cx,
            gb,
            &GroupByOptions {
                start: Some(ds),
                end: ds,
                step_days: 1,
                verify_existing: false,
            },
            progress,
        )?;
    }
    if !wh.partitions(&plan.output)?.contains(&ds) {
        return Err(Error::data(
            &plan.output.to_string(),
            Some(&format!("ds={ds}")),
            "the GroupBy backfill has no partition for this day (its sources have no data for it)",
        )
        .with_fix("land the source partitions of the day, or upload another --ds"));
    }
    let keys = &serving.part.right_keys;
    let mut out: BTreeMap<Key, BatchValue> = BTreeMap::new();
    let mut columns: Vec<String> = Vec::new();
    for batch in wh.read_partition(&plan.output, ds)? {
        columns = batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .filter(|n| !keys.contains(n))
            .collect();
        report.rows += batch.num_rows() as u64;
        let k = key_arrays(&batch, keys, &format!("{} partition ds={ds}", plan.output))?;
        let value_idx: Vec<usize> = (0..batch.num_columns())
            .filter(|&i| !keys.contains(batch.schema().field(i).name()))
            .collect();
        let cols: Vec<Vec<Value>> = value_idx
            .iter()
            .map(|&i| crate::aggregate::value::column_values(batch.column(i)))
            .collect::<Result<_>>()?;
        for i in 0..batch.num_rows() {
            let Some(key) = encode_key(&k, i) else {
                report.skipped += 1;
                continue;
            };
            let row: Vec<Value> = cols.iter().map(|c| c[i].clone()).collect();
            match serving.kind {
                ServingKind::Raw => match out.entry(key).or_insert(BatchValue::Rows(Vec::new())) {
                    BatchValue::Rows(r) => r.push(row),
                    _ => unreachable!("raw GroupBys store rows"),
                },
                _ => {
                    out.insert(key, BatchValue::Finalized(row));
                }
            }
        }
    }
    Ok((out.into_iter().collect(), columns))
}

/// TEMPORAL event GroupBys: per key and column, the tail's hop-slot aggregates (or all history
/// for unbounded windows) of the events before the end of `ds`, read from the same tiles the
/// dataflow's windows operator folds (one aggregation path).
/// A key's events in the order the windows operator keeps them: by time then values, equal
/// rows merged into one event with a multiplicity.
fn consolidated(mut evs: Vec<(i64, Vec<Value>)>) -> Vec<Ev> {
    evs.sort();
    let mut out: Vec<Ev> = Vec::with_capacity(evs.len());
    for (ts, inputs) in evs {
        match out.last_mut() {
            Some(last) if last.ts == ts && last.inputs == inputs => last.mult += 1,
            _ => out.push(Ev {
                ts,
                inputs,
                mult: 1,
            }),
        }
    }
    out
}

fn tiles(
    engine: &Session,
    serving: &GroupByServing,
    ds: Ds,
    progress: Progress,
    report: &mut UploadReport,
) -> Result<Vec<(Key, BatchValue)>> {
    let part = &serving.part;
    let batch_end = ds.shift(1).start_millis();
    let types = part_input_types(engine, part, &|_, _| Ok(()))?;
    let spec = part_spec(part, &types);
    let wh = engine.warehouse();
    let mut events: HashMap<Key, Vec<(i64, Vec<Value>)>> = HashMap::new();
    let total = part.sources.len();
    for (si, s) in part.sources.iter().enumerate() {
        progress(si, total, &format!("reading {}", s.scan.table));
        let t = s.scan.table_name()?;
        let parts = wh.partitions_by(&t, &s.scan.partition_column())?;
        let Some(&first) = parts.first() else {
            return Err(wh.missing_table(&t, &s.scan.purpose));
        };
        let from = match part.reach_ms {
            Some(r) => Ds::of_millis(batch_end - r).shift(-1).max(first),
            None => first,
        };
        if from > ds {
            continue;
        }
        let mut scan = s.scan.clone();
        scan.range = Some(PartitionRange::new(from, ds));
        let (_, batches) = engine.scan(&scan)?;
        for b in &batches {
            let mut st = EventStats::default();
            for ((g, item), _) in inputs::source_rows(b, part, false, &s.scan.table, &mut st)? {
                if let Item::Row { ts, inputs, .. } = item {
                    if ts < batch_end {
                        events.entry(g.1).or_default().push((ts, inputs));
                    }
                }
            }
            report.rows += st.rows;
            report.skipped += st.skipped();
        }
    }
    progress(total, total, "aggregating");
    // the dataflow's own tiles (the windows operator reads the same slot folds and day
    // prefixes), so an uploaded value is computed exactly as the backfill computes it
    let layout = Layout::new(&spec);
    let mut out: Vec<(Key, BatchValue)> = Vec::with_capacity(events.len());
    for (key, evs) in events {
        let evs = consolidated(evs);
        let mut cache = TileCache::default();
        let mut tiles = Tiles {
            spec: &spec,
            layout: &layout,
            events: &evs,
            cache: &mut cache,
            base: None,
        };
        let columns = spec
            .columns
            .iter()
            .enumerate()
            .map(|(ci, c)| {
                let (gi, pos) = layout.col_group[ci];
                match c.window {
                    None => {
                        let prefix = tiles.prefix(gi, batch_end.div_euclid(c.hop));
                        ColumnTiles::Collapsed(prefix[pos].clone())
                    }
                    Some(w) => {
                        let first = (batch_end - w).div_euclid(c.hop);
                        let slots = (first..batch_end.div_euclid(c.hop))
                            .filter_map(|slot| {
                                let irs = tiles.block(gi, 0, slot)?;
                                irs[pos].clone().map(|ir| (slot * c.hop, ir))
                            })
                            .collect();
                        ColumnTiles::Slots(slots)
                    }
                }
            })
            .collect();
        out.push((key, BatchValue::Tiles { batch_end, columns }));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}
