//! The log flattener (chronon-semantics §5.6): decodes a join's raw log rows into
//! `<join output table>_logged`, the table log bootstrap reads (§4.2).
//!
//! For every `ds` the raw log table has for the join's request name (`team/join.v1`) and the
//! logged table lacks (up to `end`, first-hole skipping as for joins), each row is decoded with
//! the logging schema its `schema_hash` names — the schema published in the control events
//! (`name=SCHEMA_PUBLISH_EVENT`), so old rows decode with the schema they were written with.
//! Output columns are `schema_hash, ts, <key fields…>, <value fields…>` (all schemas' key
//! fields, then their value fields, deduplicated by name, `ext_contextual*` dropped),
//! partitioned by `ds`. Columns of later schemas are appended; columns are never removed or
//! retyped. The table properties carry the join's `tableProperties`, `schema_hash_<h>` for every
//! hash seen so far, and `chronon_log_table=true`.
//!
//! Rows without a schema hash (legacy logs) are dropped and counted, as are rows whose bytes do
//! not decode (with examples); a hash no control event published fails the job.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use base64::Engine as _;

use super::codec::{JoinCodec, RecordDecoder};
use super::columns::values_to_array;
use super::schema::{LOG_TABLE_PROPERTY, SCHEMA_HASH_PREFIX};
use super::sink::{escape_partition_value, raw_partitions, read_raw, RawRow};
use super::{request_name, SCHEMA_PUBLISH_EVENT};
use crate::aggregate::Value;
use crate::config::{naming, Join};
use crate::error::{Error, Location, Result};
use crate::partition::{Ds, PartitionRange};
use crate::schedule::Schedule;
use crate::warehouse::types::{same_type, type_key};
use crate::warehouse::{TableName, Warehouse, DS};

/// Fields whose name starts with this are not flattened (contextual values are logged as keys).
const CONTEXTUAL_PREFIX: &str = "ext_contextual";
/// Examples of undecodable rows kept for the report.
const EXAMPLES: usize = 5;

/// What to flatten.
#[derive(Debug, Clone)]
pub struct FlattenOptions {
    /// Last partition to flatten.
    pub end: Ds,
    /// The raw log table (see [`super::sink`]).
    pub log_table: String,
    /// Partitions decoded and written per step.
    pub step_days: usize,
    /// Also fill missing partitions before the first existing output partition.
    pub run_first_hole: bool,
}

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct FlattenReport {
    /// `<join output table>_logged`.
    pub output: String,
    /// The request name whose rows were read (`team/join.v1`).
    pub request_name: String,
    /// Why nothing was done, when the job was skipped.
    pub skipped: Option<String>,
    pub written: Vec<Ds>,
    /// Partitions up to `end` with logs that the output already has.
    pub already_present: usize,
    pub rows_in: u64,
    pub rows_out: u64,
    /// Rows without a schema hash (legacy logs), dropped.
    pub null_hash: u64,
    /// Rows whose bytes (or `ts_millis`) did not decode, dropped.
    pub undecodable: u64,
    /// The first undecodable rows: partition, hash and error.
    pub undecodable_examples: Vec<String>,
    /// Control events that were not a hash and a logging schema (ignored).
    pub bad_control_events: u64,
    /// Schema hashes of the rows flattened in this run.
    pub hashes: Vec<String>,
    /// Output columns (without `ds`) before and after the run.
    pub columns_before: usize,
    pub columns_after: usize,
    pub new_columns: Vec<String>,
}

/// Flattens the join's logs into `<join output table>_logged`.
pub fn flatten_log(
    wh: &Warehouse,
    join: &Join,
    opts: &FlattenOptions,
    progress: &dyn Fn(usize, usize, &str),
) -> Result<FlattenReport> {
    let meta = &join.meta_data;
    let out_name = format!("{}_logged", naming::output_table(meta)?);
    let out = TableName::parse(&out_name)?;
    let name = request_name(&meta.name);
    let mut report = FlattenReport {
        output: out_name.clone(),
        request_name: name.clone(),
        ..Default::default()
    };
    if meta.sample_percent.is_none() {
        report.skipped = Some(format!(
            "join `{}` has no metaData.samplePercent, so its responses are not logged; set sample_percent on the join and recompile to log and flatten it",
            meta.name
        ));
        return Ok(report);
    }
    let log_t = TableName::parse(&opts.log_table)?;
    let inputs = raw_partitions(wh, &log_t, &name)?;
    if inputs.is_empty() {
        return Err(Error::Data {
            location: Location {
                table: log_t.to_string(),
                partition: Some(format!("name={}", escape_partition_value(&name))),
                column: None,
            },
            message: format!("The join name {name} does not have available logged data yet"),
            fix: Some(format!("serve the join with metaData.samplePercent > 0 and fetch it by the name `{name}` (rows logged under other names are not read), or pass --log-table if its raw logs are in another table")),
        });
    }
    let existing = wh.partitions(&out)?;
    let fillable: Vec<Ds> = inputs.into_iter().filter(|d| *d <= opts.end).collect();
    report.already_present = fillable.iter().filter(|d| existing.contains(d)).count();
    let schedule = Schedule::plan(
        fillable,
        &existing,
        &BTreeSet::new(),
        opts.run_first_hole,
        opts.step_days,
        &out_name,
    )?;
    let missing = &schedule.todo;
    let mut columns = existing_columns(wh, &out)?;
    report.columns_before = columns.len();
    report.columns_after = columns.len();
    if missing.is_empty() {
        return Ok(report);
    }
    let published = published_schemas(wh, &log_t, &mut report)?;
    let mut codecs: BTreeMap<String, JoinCodec> = BTreeMap::new();
    let mut seen_hashes = BTreeSet::new();
    let total = missing.len();
    let mut done = 0;
    // progress counts partitions (written one by one), so the step loop reports none itself
    schedule.run(&out_name, &|_, _, _| {}, |range, _| {
        progress(done, total, &format!("reading {range}"));
        let rows = read_range(wh, &log_t, &name, range)?;
        // the schemas of this range, in publication order
        let mut hashes: Vec<String> = Vec::new();
        for (ds, r) in &rows {
            let Some(h) = r.schema_hash.as_deref() else {
                continue;
            };
            if hashes.iter().any(|x| x == h) {
                continue;
            }
            let Some((_, json)) = published.get(h) else {
                return Err(unknown_hash(&log_t, *ds, &name, h));
            };
            if !codecs.contains_key(h) {
                let c = JoinCodec::from_json(json).map_err(|e| {
                    Error::data(
                        &log_t.to_string(),
                        Some(&format!("name={SCHEMA_PUBLISH_EVENT}")),
                        format!("the logging schema published for hash `{h}` does not parse: {e}"),
                    )
                    .with_fix("re-publish the join's schema (restart the server that logs it)")
                })?;
                codecs.insert(h.to_string(), c);
            }
            hashes.push(h.to_string());
        }
        hashes.sort_by_key(|h| (published[h].0, h.clone()));
        let fields = range_fields(&hashes, &codecs)?;
        let added = merge_columns(&mut columns, &fields, &out_name)?;
        report.new_columns.extend(added);
        report.columns_after = columns.len();
        // properties first: a partition is never readable without the schemas of its rows
        let mut props = meta.chronon_table_properties("logged");
        props.insert(LOG_TABLE_PROPERTY.into(), "true".into());
        for h in &hashes {
            props.insert(format!("{SCHEMA_HASH_PREFIX}{h}"), published[h].1.clone());
            seen_hashes.insert(h.clone());
        }
        wh.set_properties(&out, &props)?;
        let plans: BTreeMap<&str, HashPlan> = hashes
            .iter()
            .map(|h| Ok((h.as_str(), HashPlan::new(&codecs[h], &columns)?)))
            .collect::<Result<_>>()?;
        let mut by_day: BTreeMap<Ds, Vec<Vec<Value>>> = range
            .days()
            .filter(|d| missing.contains(d))
            .map(|d| (d, Vec::new()))
            .collect();
        for (ds, r) in rows {
            report.rows_in += 1;
            let Some(h) = r.schema_hash.clone() else {
                report.null_hash += 1;
                continue;
            };
            match plans[h.as_str()].decode(&r) {
                Ok(row) => {
                    report.rows_out += 1;
                    by_day.entry(ds).or_default().push(row);
                }
                Err(e) => {
                    report.undecodable += 1;
                    if report.undecodable_examples.len() < EXAMPLES {
                        report
                            .undecodable_examples
                            .push(format!("ds={ds}, schema hash {h}: {e}"));
                    }
                }
            }
        }
        let schema = output_schema(&columns);
        for (ds, day_rows) in by_day {
            progress(done, total, &format!("writing ds={ds}"));
            let batch = to_batch(&schema, &columns, &day_rows, &out_name, ds)?;
            wh.write_partition(
                &out,
                &[(DS.to_string(), ds.to_string())],
                schema.clone(),
                &[batch],
            )?;
            report.written.push(ds);
            done += 1;
        }
        progress(done, total, "");
        Ok(())
    })?;
    report.hashes = seen_hashes.into_iter().collect();
    Ok(report)
}

/// `(column, type)` of the output after `schema_hash, ts`.
type Columns = Vec<(String, DataType)>;

/// The data columns the logged table already has (without `schema_hash`, `ts` and `ds`).
fn existing_columns(wh: &Warehouse, out: &TableName) -> Result<Columns> {
    if wh.data_files(out)?.is_empty() {
        return Ok(vec![]);
    }
    let schema = wh.table_schema(out)?;
    Ok(schema
        .fields()
        .iter()
        .filter(|f| !matches!(f.name().as_str(), "schema_hash" | "ts"))
        .map(|f| (f.name().clone(), f.data_type().clone()))
        .collect())
}

/// hash → (publication time, logging-schema JSON): the latest control event per hash.
fn published_schemas(
    wh: &Warehouse,
    log_t: &TableName,
    report: &mut FlattenReport,
) -> Result<BTreeMap<String, (i64, String)>> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut out: BTreeMap<String, (i64, String)> = BTreeMap::new();
    for ds in raw_partitions(wh, log_t, SCHEMA_PUBLISH_EVENT)? {
        for r in read_raw(wh, log_t, ds, SCHEMA_PUBLISH_EVENT)? {
            let text = |s: &Option<String>| {
                s.as_deref()
                    .and_then(|s| b64.decode(s).ok())
                    .and_then(|b| String::from_utf8(b).ok())
            };
            let (Some(h), Some(json), Some(ts)) =
                (text(&r.key_base64), text(&r.value_base64), r.ts_millis)
            else {
                report.bad_control_events += 1;
                tracing::warn!(table = %log_t, %ds, "ignoring a control event that is not a base64 UTF-8 hash and schema");
                continue;
            };
            match out.get(&h) {
                Some((t, _)) if *t > ts => {}
                _ => {
                    out.insert(h, (ts, json));
                }
            }
        }
    }
    Ok(out)
}

fn unknown_hash(log_t: &TableName, ds: Ds, name: &str, h: &str) -> Error {
    Error::data(
        &log_t.to_string(),
        Some(&format!("ds={ds}/name={}", escape_partition_value(name))),
        format!("rows carry schema hash `{h}`, but no control event (name={SCHEMA_PUBLISH_EVENT}) published a schema with that hash"),
    )
    .with_fix(format!("restore the control events of this join in partitions name={SCHEMA_PUBLISH_EVENT} (a server publishes its join's schema whenever it builds the codec, e.g. on start), or remove the rows with hash `{h}` from the partition"))
}

/// The raw rows of the days of `range`, with their `ds`.
fn read_range(
    wh: &Warehouse,
    log_t: &TableName,
    name: &str,
    range: PartitionRange,
) -> Result<Vec<(Ds, RawRow)>> {
    let mut rows = Vec::new();
    for ds in range.days() {
        rows.extend(read_raw(wh, log_t, ds, name)?.into_iter().map(|r| (ds, r)));
    }
    Ok(rows)
}

/// All key fields, then all value fields, of the schemas (deduplicated by name, contextual
/// fields dropped). A name with two types is an error.
fn range_fields(hashes: &[String], codecs: &BTreeMap<String, JoinCodec>) -> Result<Columns> {
    let mut fields: Vec<(String, DataType, String)> = Vec::new();
    let keys = hashes
        .iter()
        .flat_map(|h| codecs[h].key_codec().fields().iter().map(move |f| (f, h)));
    let values = hashes
        .iter()
        .flat_map(|h| codecs[h].value_codec().fields().iter().map(move |f| (f, h)));
    for ((n, t), h) in keys.chain(values) {
        if n.starts_with(CONTEXTUAL_PREFIX) {
            continue;
        }
        if matches!(n.as_str(), "schema_hash" | "ts" | DS) {
            return Err(Error::Unsupported {
                what: format!("logged field `{n}` (schema hash {h})"),
                detail: "`schema_hash`, `ts` and `ds` are columns of the logged table; rename the key or feature".into(),
            });
        }
        match fields.iter().find(|(m, _, _)| m == n) {
            Some((_, t0, h0)) if !same_type(t0, t) => {
                return Err(Error::Unsupported {
                    what: "logging schemas with one field of two types".into(),
                    detail: format!("Found field with same name `{n}` but different dataTypes: {} (schema hash {h0}) and {} (schema hash {h}); rename the feature in the newer join version", type_key(t0), type_key(t)),
                });
            }
            Some(_) => {}
            None => fields.push((n.clone(), t.clone(), h.to_string())),
        }
    }
    Ok(fields.into_iter().map(|(n, t, _)| (n, t)).collect())
}

/// Appends the fields the table does not have yet; returns their names. A field whose type
/// differs from the existing column's is an error.
fn merge_columns(columns: &mut Columns, fields: &Columns, table: &str) -> Result<Vec<String>> {
    let mut added = Vec::new();
    for (n, t) in fields {
        match columns.iter().find(|(c, _)| c == n) {
            Some((_, t0)) if !same_type(t0, t) => {
                return Err(Error::Data {
                    location: Location { table: table.to_string(), partition: None, column: Some(n.clone()) },
                    message: format!("Existing columns cannot be modified: the column has type {} but the logs now carry it as {}", type_key(t0), type_key(t)),
                    fix: Some("give the changed feature a new name (e.g. a new GroupBy version), or archive the logged table and flatten again".into()),
                });
            }
            Some(_) => {}
            None => {
                columns.push((n.clone(), t.clone()));
                added.push(n.clone());
            }
        }
    }
    Ok(added)
}

/// Where each output column of a schema hash's rows comes from.
#[derive(Debug, Clone, Copy)]
enum Source {
    Key(usize),
    Value(usize),
    Null,
}

/// How the rows of one schema hash are decoded.
struct HashPlan<'a> {
    codec: &'a JoinCodec,
    key: RecordDecoder<'a>,
    value: RecordDecoder<'a>,
    sources: Vec<Source>,
}

impl<'a> HashPlan<'a> {
    /// Each column from the key record if the schema has it as a key field (same type), else
    /// from the value record, else NULL.
    fn new(codec: &'a JoinCodec, columns: &Columns) -> Result<HashPlan<'a>> {
        let find = |fields: &[(String, DataType)], n: &str, t: &DataType| {
            fields.iter().position(|(m, u)| m == n && same_type(u, t))
        };
        let sources = columns
            .iter()
            .map(|(n, t)| {
                if let Some(i) = find(codec.key_codec().fields(), n, t) {
                    Source::Key(i)
                } else if let Some(i) = find(codec.value_codec().fields(), n, t) {
                    Source::Value(i)
                } else {
                    Source::Null
                }
            })
            .collect();
        Ok(HashPlan {
            codec,
            key: codec.key_codec().decoder()?,
            value: codec.value_codec().decoder()?,
            sources,
        })
    }

    /// One output row: `schema_hash`, `ts`, then the columns.
    fn decode(&self, r: &RawRow) -> std::result::Result<Vec<Value>, String> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let bytes = |s: &Option<String>, what: &str| -> std::result::Result<Vec<u8>, String> {
            let s = s.as_deref().ok_or(format!("{what} is NULL"))?;
            b64.decode(s)
                .map_err(|e| format!("{what} is not base64: {e}"))
        };
        let ts = r.ts_millis.ok_or("ts_millis is NULL")?;
        let keys = self
            .key
            .decode(&bytes(&r.key_base64, "key_base64")?)
            .map_err(|e| e.to_string())?;
        let values = self
            .value
            .decode(&bytes(&r.value_base64, "value_base64")?)
            .map_err(|e| e.to_string())?;
        let mut row = Vec::with_capacity(self.sources.len() + 2);
        row.push(Value::Str(self.codec.schema_hash().into()));
        row.push(Value::Long(ts));
        row.extend(self.sources.iter().map(|s| match s {
            Source::Key(i) => keys[*i].clone(),
            Source::Value(i) => values[*i].clone(),
            Source::Null => Value::Null,
        }));
        Ok(row)
    }
}

fn output_schema(columns: &Columns) -> Arc<Schema> {
    let mut fields = vec![
        Field::new("schema_hash", DataType::Utf8, true),
        Field::new("ts", DataType::Int64, true),
    ];
    fields.extend(columns.iter().map(|(n, t)| Field::new(n, t.clone(), true)));
    Arc::new(Schema::new(fields))
}

fn to_batch(
    schema: &Arc<Schema>,
    columns: &Columns,
    rows: &[Vec<Value>],
    table: &str,
    ds: Ds,
) -> Result<RecordBatch> {
    let cell = |i: usize| rows.iter().map(move |r| &r[i]);
    let mut arrays: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter(cell(0).map(|v| match v {
            Value::Str(s) => Some(s.to_string()),
            _ => None,
        }))),
        Arc::new(Int64Array::from_iter(cell(1).map(|v| match v {
            Value::Long(x) => Some(*x),
            _ => None,
        }))),
    ];
    for (i, (n, t)) in columns.iter().enumerate() {
        let values: Vec<Value> = cell(i + 2).cloned().collect();
        arrays.push(values_to_array(t, &values).map_err(|e| Error::Data {
            location: Location {
                table: table.to_string(),
                partition: Some(format!("ds={ds}")),
                column: Some(n.clone()),
            },
            message: format!("logged values do not fit the column: {e}"),
            fix: None,
        })?);
    }
    RecordBatch::try_new(schema.clone(), arrays)
        .map_err(|e| Error::arrow(format!("building {table} partition ds={ds}"), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codec(keys: &[(&str, DataType)], values: &[(&str, DataType)]) -> JoinCodec {
        let f =
            |v: &[(&str, DataType)]| v.iter().map(|(n, t)| (n.to_string(), t.clone())).collect();
        JoinCodec::new("t.j", f(keys), f(values)).unwrap()
    }

    #[test]
    fn fields_are_keys_then_values_deduplicated_without_contextual() {
        let a = codec(
            &[("id", DataType::Int64), ("ctx", DataType::Utf8)],
            &[
                ("f1", DataType::Int64),
                ("ext_contextual_ctx", DataType::Utf8),
            ],
        );
        let b = codec(
            &[("id", DataType::Int64), ("k2", DataType::Utf8)],
            &[("f1", DataType::Int64), ("f2", DataType::Float64)],
        );
        let codecs = BTreeMap::from([("a".to_string(), a), ("b".to_string(), b)]);
        let names: Vec<String> = range_fields(&["a".to_string(), "b".to_string()], &codecs)
            .unwrap()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(names, vec!["id", "ctx", "k2", "f1", "f2"]);
    }

    #[test]
    fn one_name_two_types_is_an_error() {
        let a = codec(&[], &[("f", DataType::Int64)]);
        let b = codec(&[], &[("f", DataType::Utf8)]);
        let codecs = BTreeMap::from([("a".to_string(), a), ("b".to_string(), b)]);
        let e = range_fields(&["a".to_string(), "b".to_string()], &codecs)
            .unwrap_err()
            .to_string();
        assert!(e.contains("Found field with same name `f`"), "{e}");
        let mut cols = vec![("f".to_string(), DataType::Int64)];
        let e = merge_columns(
            &mut cols,
            &vec![("f".to_string(), DataType::Utf8)],
            "n.t_logged",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("Existing columns cannot be modified")
                && e.contains("`f`")
                && e.contains("n.t_logged"),
            "{e}"
        );
        let added = merge_columns(
            &mut cols,
            &vec![
                ("g".to_string(), DataType::Utf8),
                ("f".to_string(), DataType::Int64),
            ],
            "n.t",
        )
        .unwrap();
        assert_eq!(added, vec!["g"]);
        assert_eq!(cols.len(), 2);
    }
}
