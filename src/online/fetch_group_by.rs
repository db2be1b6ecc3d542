//! Fetching one GroupBy's values for a batch of keys (chronon-semantics §6.4): the latest
//! uploaded batch value per key, completed for TEMPORAL GroupBys by the streamed events
//! between the batch end and the query time, then GroupBy derivations. A key with a NULL value
//! gets no values (NULLs), as Chronon does not send such requests.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;

use super::serving::{
    batch_dataset, decode_events, streaming_dataset, BatchValue, ColumnTiles, GroupByServing,
    ServingKind, SERVING_INFO_KEY,
};
use super::store::{GetRequest, OnlineStore};
use crate::aggregate::value::{column_values, to_array};
use crate::aggregate::{Ir, Value};
use crate::config::GroupBy;
use crate::dataflow::spec::ColumnSpec;
use crate::error::{Error, Result};
use crate::join::derive::derive_group_by;
use crate::join::inputs::{canonical_type, encode_key};
use crate::join::part::{part_input_types, part_spec};
use crate::sql::Session;

/// A GroupBy ready to be fetched.
pub struct GroupByFetcher {
    pub serving: GroupByServing,
    /// Types of the GroupBy's key columns (in key order).
    pub key_types: Vec<DataType>,
    /// Output columns (after GroupBy derivations), unprefixed.
    pub fields: Vec<Field>,
    /// TEMPORAL: the aggregations, and the columns before derivations.
    columns: Vec<ColumnSpec>,
    base_fields: Vec<Field>,
}

/// One key to fetch: the GroupBy key values (in key order) and the query time.
pub type KeyQuery = (Vec<Value>, i64);

impl GroupByFetcher {
    pub fn new(engine: &Session, gb: &GroupBy) -> Result<GroupByFetcher> {
        let serving = GroupByServing::new(gb)?;
        let part = &serving.part;
        let types = part_input_types(engine, part, &|_, _| Ok(()))?;
        let schema = engine.scan_schema(&part.sources[0].scan)?;
        let key_types = part
            .right_keys
            .iter()
            .map(|k| {
                schema
                    .field_with_name(k)
                    .map(|f| f.data_type().clone())
                    .map_err(|_| {
                        Error::data(
                            &part.sources[0].scan.table,
                            None,
                            format!("key column `{k}` is not selected"),
                        )
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        let base_fields: Vec<Field> = if part.columns.is_empty() {
            part.inputs
                .iter()
                .zip(&types)
                .map(|(n, t)| Field::new(n, t.clone(), true))
                .collect()
        } else {
            crate::join::output::part_fields(part, &types)?
                .into_iter()
                .zip(&part.columns)
                .map(|(f, c)| Field::new(&c.gb_column, f.data_type().clone(), true))
                .collect()
        };
        // the derived columns, typed by deriving an empty batch
        let empty = key_batch(&part.right_keys, &key_types, &base_fields, &[], &[])?;
        let derived = derive(engine, &serving, &empty, &base_fields, true)?;
        let fields = derived
            .schema()
            .fields()
            .iter()
            .filter(|f| !part.right_keys.contains(f.name()))
            .map(|f| f.as_ref().clone())
            .collect();
        let columns = part_spec(part, &types).columns;
        Ok(GroupByFetcher {
            serving,
            key_types,
            fields,
            columns,
            base_fields,
        })
    }

    /// The values of each query (`None`: no data for the key), or why it failed.
    pub fn fetch(
        &self,
        engine: &Session,
        store: &dyn OnlineStore,
        queries: &[KeyQuery],
    ) -> Vec<std::result::Result<Option<Vec<Value>>, String>> {
        let gb = &self.serving.group_by;
        let keys: Vec<Option<Vec<u8>>> = queries.iter().map(|(k, _)| self.store_key(k)).collect();
        let sent: Vec<usize> = (0..queries.len()).filter(|&i| keys[i].is_some()).collect();
        let fail_all = |msg: String| queries.iter().map(|_| Err(msg.clone())).collect();
        // the latest upload's record: its batch end, and the columns it wrote
        let info = store
            .multi_get(&[GetRequest {
                dataset: batch_dataset(gb),
                key: SERVING_INFO_KEY.to_vec(),
                after_ts: None,
            }])
            .pop()
            .expect("one result per request");
        let batch_end = match info {
            Ok(v) => match v.last() {
                Some(latest) => match self.check_info(&latest.value) {
                    Ok(()) => latest.ts,
                    Err(e) => return fail_all(e),
                },
                None => {
                    return fail_all(format!(
                        "GroupBy {} has no serving data in {}: run `weft upload --conf <its config> --ds <day>` first",
                        gb.meta_data.name,
                        store.describe()
                    ))
                }
            },
            Err(e) => return fail_all(format!("reading {}: {e}", batch_dataset(gb))),
        };
        // only that upload's values: a key it did not write has no value
        let gets: Vec<GetRequest> = sent
            .iter()
            .map(|&i| GetRequest {
                dataset: batch_dataset(gb),
                key: keys[i].clone().expect("sent keys exist"),
                after_ts: Some(batch_end),
            })
            .collect();
        let batches = store.multi_get(&gets);
        let mut out: Vec<std::result::Result<Option<Vec<Value>>, String>> =
            vec![Ok(None); queries.len()];
        let mut latest: Vec<Option<BatchValue>> = vec![None; queries.len()];
        for (&i, r) in sent.iter().zip(batches) {
            match r {
                Err(e) => out[i] = Err(format!("reading {}: {e}", batch_dataset(gb))),
                Ok(vs) => {
                    if let Some(v) = vs.iter().find(|v| v.ts == batch_end) {
                        match BatchValue::decode(&v.value) {
                            Ok(b) => latest[i] = Some(b),
                            Err(e) => out[i] = Err(format!("decoding {}: {e}", batch_dataset(gb))),
                        }
                    }
                }
            }
        }
        match self.serving.kind {
            ServingKind::Snapshot => {
                for i in 0..queries.len() {
                    if let Some(BatchValue::Finalized(v)) = latest[i].take() {
                        out[i] = Ok(Some(v));
                    }
                }
                out
            }
            ServingKind::Raw => {
                for i in 0..queries.len() {
                    if let Some(BatchValue::Rows(rows)) = latest[i].take() {
                        out[i] = Ok(rows.into_iter().next());
                    }
                }
                out
            }
            ServingKind::Temporal => {
                self.temporal(engine, store, queries, &keys, batch_end, latest, out)
            }
        }
    }

    /// The columns a GroupBy's values are stored as: what its upload must have written.
    pub fn stored_columns(&self) -> Vec<String> {
        match self.serving.kind {
            ServingKind::Temporal => self.base_fields.iter().map(|f| f.name().clone()).collect(),
            _ => self.fields.iter().map(|f| f.name().clone()).collect(),
        }
    }

    /// Checks an upload record against the config: values written with other columns (the
    /// GroupBy changed since) are not served.
    fn check_info(&self, info: &[u8]) -> std::result::Result<(), String> {
        let gb = &self.serving.group_by;
        let v: serde_json::Value = serde_json::from_slice(info).map_err(|e| {
            format!(
                "the upload record of GroupBy {} is unreadable: {e}",
                gb.meta_data.name
            )
        })?;
        let Some(cols) = v.get("columns").and_then(|c| c.as_array()) else {
            return Ok(()); // an upload from before columns were recorded
        };
        let uploaded: Vec<&str> = cols.iter().filter_map(|c| c.as_str()).collect();
        let expected = self.stored_columns();
        if uploaded != expected.iter().map(String::as_str).collect::<Vec<_>>() {
            return Err(format!(
                "GroupBy {} was uploaded with columns [{}] but its config now has [{}]: run `weft upload` for it again",
                gb.meta_data.name,
                uploaded.join(", "),
                expected.join(", ")
            ));
        }
        Ok(())
    }

    fn store_key(&self, key: &[Value]) -> Option<Vec<u8>> {
        if key.iter().any(Value::is_null) {
            return None;
        }
        let arrays: Vec<_> = key
            .iter()
            .zip(&self.key_types)
            .map(|(v, t)| {
                let c = canonical_type(t)?;
                let a = to_array(t, std::slice::from_ref(v)).ok()?;
                arrow::compute::cast(&a, &c).ok()
            })
            .collect::<Option<_>>()?;
        encode_key(&arrays, 0)
    }

    #[allow(clippy::too_many_arguments)]
    fn temporal(
        &self,
        engine: &Session,
        store: &dyn OnlineStore,
        queries: &[KeyQuery],
        keys: &[Option<Vec<u8>>],
        batch_end: i64,
        latest: Vec<Option<BatchValue>>,
        mut out: Vec<std::result::Result<Option<Vec<Value>>, String>>,
    ) -> Vec<std::result::Result<Option<Vec<Value>>, String>> {
        let gb = &self.serving.group_by;
        let part = &self.serving.part;
        // streamed events after each key's batch end (all streamed events without a batch)
        let idx: Vec<usize> = (0..queries.len())
            .filter(|&i| keys[i].is_some() && out[i].is_ok())
            .collect();
        let gets: Vec<GetRequest> = idx
            .iter()
            .map(|&i| GetRequest {
                dataset: streaming_dataset(gb),
                key: keys[i].clone().expect("sent"),
                after_ts: Some(batch_end),
            })
            .collect();
        let streamed = store.multi_get(&gets);
        let mut rows: Vec<(usize, Vec<Value>)> = Vec::new();
        for (&i, r) in idx.iter().zip(streamed) {
            let q = queries[i].1;
            let events = match r {
                Err(e) => {
                    out[i] = Err(format!("reading {}: {e}", streaming_dataset(gb)));
                    continue;
                }
                Ok(vs) => {
                    let mut evs = Vec::new();
                    for v in vs.iter().filter(|v| v.ts < q) {
                        match decode_events(&v.value) {
                            Ok(e) => evs.extend(e),
                            Err(e) => {
                                out[i] = Err(format!("decoding {}: {e}", streaming_dataset(gb)));
                            }
                        }
                    }
                    evs.sort();
                    evs
                }
            };
            if out[i].is_err() {
                continue;
            }
            if q < batch_end {
                out[i] = Err(format!(
                    "query time {q} is before the end of the uploaded batch ({batch_end}): upload an earlier day to serve it"
                ));
                continue;
            }
            let tiles = match latest[i].as_ref() {
                Some(BatchValue::Tiles { columns, .. }) if columns.len() == self.columns.len() => {
                    Some(columns)
                }
                Some(_) => {
                    out[i] = Err(format!(
                        "the serving data of GroupBy {} does not match its config: re-upload it",
                        gb.meta_data.name
                    ));
                    continue;
                }
                None => None,
            };
            if tiles.is_none() && events.is_empty() {
                continue; // no data for the key
            }
            let values = self
                .columns
                .iter()
                .zip(&part.columns)
                .enumerate()
                .map(|(j, (c, oc))| {
                    let lo = oc.window_ms.map(|w| (q - w).div_euclid(c.hop) * c.hop);
                    let mut ir: Option<Ir> = None;
                    match tiles.map(|t| &t[j]) {
                        Some(ColumnTiles::Collapsed(x)) => c.agg.merge(&mut ir, x),
                        Some(ColumnTiles::Slots(slots)) => {
                            for (s, x) in slots {
                                if lo.is_none_or(|lo| *s >= lo) {
                                    c.agg.merge(&mut ir, &Some(x.clone()));
                                }
                            }
                        }
                        None => {}
                    }
                    for (ts, inputs) in &events {
                        if lo.is_some_and(|lo| *ts < lo) {
                            continue;
                        }
                        let bucket = c.bucket.map(|b| &inputs[b]);
                        c.agg.update(&mut ir, *ts, &inputs[c.input], bucket, 1);
                    }
                    c.agg.finalize(&ir)
                })
                .collect();
            rows.push((i, values));
        }
        if rows.is_empty() {
            return out;
        }
        let key_rows: Vec<&[Value]> = rows.iter().map(|(i, _)| queries[*i].0.as_slice()).collect();
        let value_rows: Vec<&[Value]> = rows.iter().map(|(_, v)| v.as_slice()).collect();
        let derived = key_batch(
            &part.right_keys,
            &self.key_types,
            &self.base_fields,
            &key_rows,
            &value_rows,
        )
        .and_then(|b| derive(engine, &self.serving, &b, &self.base_fields, false));
        match derived {
            Err(e) => {
                for (i, _) in &rows {
                    out[*i] = Err(format!("derivations: {e}"));
                }
            }
            Ok(b) => {
                let cols: Result<Vec<Vec<Value>>> = self
                    .fields
                    .iter()
                    .map(|f| {
                        b.column_by_name(f.name())
                            .map(column_values)
                            .unwrap_or_else(|| Ok(vec![Value::Null; b.num_rows()]))
                    })
                    .collect::<Result<_>>();
                match cols {
                    Ok(cols) => {
                        for (r, (i, _)) in rows.iter().enumerate() {
                            out[*i] = Ok(Some(cols.iter().map(|c| c[r].clone()).collect()));
                        }
                    }
                    Err(e) => {
                        for (i, _) in &rows {
                            out[*i] = Err(format!("derivations: {e}"));
                        }
                    }
                }
            }
        }
        out
    }
}

/// A batch of key columns and value columns, one row per `(keys, values)`.
fn key_batch(
    keys: &[String],
    key_types: &[DataType],
    values: &[Field],
    key_rows: &[&[Value]],
    value_rows: &[&[Value]],
) -> Result<RecordBatch> {
    let mut fields = Vec::new();
    let mut arrays = Vec::new();
    for (i, (k, t)) in keys.iter().zip(key_types).enumerate() {
        let col: Vec<Value> = key_rows.iter().map(|r| r[i].clone()).collect();
        fields.push(Field::new(k, t.clone(), true));
        arrays.push(to_array(t, &col)?);
    }
    for (i, f) in values.iter().enumerate() {
        let col: Vec<Value> = value_rows.iter().map(|r| r[i].clone()).collect();
        fields.push(f.clone());
        arrays.push(to_array(f.data_type(), &col)?);
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
        .map_err(|e| Error::arrow("building fetched values", e))
}

/// GroupBy derivations of a batch of keys and base values (no-op without derivations).
/// Snapshot GroupBys are uploaded with their derivations applied: only `typing` (planning the
/// output columns) derives them.
fn derive(
    engine: &Session,
    serving: &GroupByServing,
    batch: &RecordBatch,
    base: &[Field],
    typing: bool,
) -> Result<RecordBatch> {
    let gb = &serving.group_by;
    if gb.derivations.is_empty() || (serving.kind != ServingKind::Temporal && !typing) {
        return Ok(batch.clone());
    }
    let values: Vec<String> = base.iter().map(|f| f.name().clone()).collect();
    derive_group_by(
        engine,
        batch,
        &serving.part.right_keys,
        &values,
        &gb.derivations,
        &format!("derivations of GroupBy {}", gb.meta_data.name),
    )
}
