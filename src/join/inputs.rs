//! Turns Arrow batches read through the SQL engine into dataflow updates: left rows become
//! queries keyed by each part's join key, GroupBy source rows become events. Join keys are
//! canonicalised (integers → Int64, strings → Utf8, floats → Float64) and type-checked
//! between left and right; unusable rows are counted, never dropped silently.

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type, Int64Type, SchemaRef};
use arrow::record_batch::RecordBatch;

use super::plan::PartPlan;
use crate::aggregate::value::column_values;
use crate::dataflow::records::{row_id, Item, Key, Mutation, Value};
use crate::dataflow::spec::PartKind;
use crate::dataflow::Update;
use crate::error::{Error, Result};
use crate::partition::Ds;

/// The canonical type a key or input column is compared in.
pub fn canonical_type(dt: &DataType) -> Option<DataType> {
    use DataType::*;
    match dt {
        Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32 | UInt64 => Some(Int64),
        Utf8 | LargeUtf8 | Utf8View => Some(Utf8),
        Float16 | Float32 | Float64 => Some(Float64),
        Boolean => Some(Boolean),
        Date32 | Date64 => Some(Date32),
        _ => None,
    }
}

/// Columns of `batch` named `names`, cast to their canonical types.
pub(crate) fn key_arrays(
    batch: &RecordBatch,
    names: &[String],
    what: &str,
) -> Result<Vec<ArrayRef>> {
    names
        .iter()
        .map(|n| {
            let col = batch
                .column_by_name(n)
                .ok_or_else(|| Error::Usage(format!("{what}: key column `{n}` is not selected")))?;
            let t = canonical_type(col.data_type()).ok_or_else(|| {
                Error::Usage(format!(
                    "{what}: key column `{n}` has type {} which cannot be a join key",
                    col.data_type()
                ))
            })?;
            cast(col, &t).map_err(|e| Error::arrow(what, e))
        })
        .collect()
}

/// Encodes row `i` of the key arrays; `None` if any key is NULL.
pub(crate) fn encode_key(arrays: &[ArrayRef], i: usize) -> Option<Key> {
    let mut k = Vec::with_capacity(16);
    for a in arrays {
        if a.is_null(i) {
            return None;
        }
        match a.data_type() {
            DataType::Int64 => {
                k.push(1);
                k.extend_from_slice(&a.as_primitive::<Int64Type>().value(i).to_be_bytes());
            }
            DataType::Utf8 => {
                let s = a.as_string::<i32>().value(i);
                k.push(2);
                k.extend_from_slice(&(s.len() as u32).to_be_bytes());
                k.extend_from_slice(s.as_bytes());
            }
            DataType::Float64 => {
                k.push(3);
                k.extend_from_slice(
                    &a.as_primitive::<Float64Type>()
                        .value(i)
                        .to_bits()
                        .to_be_bytes(),
                );
            }
            DataType::Boolean => {
                k.push(4);
                k.push(a.as_boolean().value(i) as u8);
            }
            DataType::Date32 => {
                k.push(5);
                k.extend_from_slice(
                    &a.as_primitive::<arrow::datatypes::Date32Type>()
                        .value(i)
                        .to_be_bytes(),
                );
            }
            _ => unreachable!("keys are canonicalised"),
        }
    }
    Some(k)
}

/// Checks that each left key column has the same canonical type as the GroupBy key it maps to.
pub fn check_key_types(
    left: &SchemaRef,
    left_keys: &[String],
    right: &SchemaRef,
    right_keys: &[String],
    left_table: &str,
    right_table: &str,
) -> Result<()> {
    let mut errors = Vec::new();
    for (l, r) in left_keys.iter().zip(right_keys) {
        let lt = left.field_with_name(l).map(|f| f.data_type().clone());
        let rt = right.field_with_name(r).map(|f| f.data_type().clone());
        match (lt, rt) {
            (Err(_), _) => errors.push(Error::Usage(format!(
                "join key `{l}` is not a column of the left ({left_table}); select it in the left query or map it with keyMapping"
            ))),
            (_, Err(_)) => errors.push(Error::Usage(format!("GroupBy key `{r}` is not selected from {right_table}"))),
            (Ok(lt), Ok(rt)) if canonical_type(&lt) != canonical_type(&rt) => errors.push(Error::Usage(format!(
                "Join key `{l}` has mismatched data types: {lt} on the left ({left_table}) vs {rt} for `{r}` in {right_table}; cast one side in its query selects"
            ))),
            _ => {}
        }
    }
    Error::collect(errors)
}

/// The `ts` column of a left partition, checked: a Long in milliseconds with no NULLs.
pub fn left_ts<'a>(
    batch: &'a RecordBatch,
    ds: Ds,
    table: &str,
) -> Result<&'a arrow::array::Int64Array> {
    let ts = batch.column_by_name("ts").ok_or_else(|| {
        Error::data(
            table,
            Some(&format!("ds={ds}")),
            "the left has no `ts` column",
        )
        .with_fix("set timeColumn on the left query")
    })?;
    if !matches!(ts.data_type(), DataType::Int64) {
        return Err(Error::data(
            table,
            Some(&format!("ds={ds}")),
            format!(
                "left `ts` has type {}; Timestamp must be a Long type in milliseconds",
                ts.data_type()
            ),
        )
        .with_fix("convert it in timeColumn, e.g. unix_timestamp(col) * 1000"));
    }
    if ts.null_count() > 0 {
        return Err(Error::data(
            table,
            Some(&format!("ds={ds}")),
            format!(
                "ts column cannot be null in left source: {} rows have a NULL ts",
                ts.null_count()
            ),
        )
        .with_fix("filter them out with a where on the left query"));
    }
    let ts = ts.as_primitive::<Int64Type>();
    let bad: Vec<(usize, i64)> = ts
        .values()
        .iter()
        .enumerate()
        .filter(|(_, t)| !crate::partition::ts_in_range(**t))
        .map(|(i, t)| (i, *t))
        .collect();
    if let Some(&(row, value)) = bad.first() {
        // one such row would put every row of the run outside the windows: fail, naming it
        return Err(Error::data(
            table,
            Some(&format!("ds={ds}")),
            format!(
                "{} left row(s) have a ts outside years 0001–9999 (first: row {row}, ts {value}); ts must be epoch milliseconds",
                bad.len()
            ),
        )
        .with_fix("convert the time column in the left query's timeColumn (seconds × 1000, nanoseconds / 1000000), or filter those rows out with a where"));
    }
    Ok(ts)
}

/// Left rows of one partition as queries for one part: the time each row asks about and
/// the snapshot partition it reads (§3.4). Returns the updates and the number of rows
/// skipped because a key is NULL (they get NULL features, as in Chronon).
pub fn left_queries(
    batch: &RecordBatch,
    ds: Ds,
    part: &PartPlan,
    event_left: bool,
    table: &str,
) -> Result<(Vec<Update>, usize)> {
    let what = format!("left {table} partition ds={ds}");
    let keys = key_arrays(batch, &part.left_keys, &what)?;
    let ts = if event_left {
        Some(left_ts(batch, ds, table)?)
    } else {
        None
    };
    let mut out = Vec::with_capacity(batch.num_rows());
    let mut null_keys = 0;
    let end_of_left_day = ds.shift(1).start_millis();
    for i in 0..batch.num_rows() {
        let Some(k) = encode_key(&keys, i) else {
            null_keys += 1;
            continue;
        };
        let (q, read) = match ts {
            Some(ts) => {
                let t = ts.value(i);
                let td = Ds::of_millis(t);
                match part.kind {
                    PartKind::Events if part.snapshot => (td.start_millis(), td.0),
                    PartKind::Events => (t, td.0),
                    _ => (t, td.0 - 1),
                }
            }
            None => (end_of_left_day, ds.0),
        };
        out.push((
            (
                (part.index, k),
                Item::Query {
                    row: row_id(ds, i as u32),
                    q,
                    ds: read,
                },
            ),
            1,
        ));
    }
    Ok((out, null_keys))
}

/// Counts of source rows that could not be used.
#[derive(Debug, Default, Clone, Copy)]
pub struct EventStats {
    pub rows: u64,
    pub null_keys: u64,
    pub null_ts: u64,
    /// Rows whose `ts` is outside years 0001–9999 (a time in the wrong unit).
    pub bad_ts: u64,
    /// Rows read whose events stored aggregates already hold (before their day boundary):
    /// used through the stored aggregates, not fed again.
    pub stored: u64,
}

impl EventStats {
    /// The counts as a worker reports them: rows, NULL keys, NULL ts, bad ts, stored.
    pub fn to_counts(&self) -> Vec<u64> {
        vec![
            self.rows,
            self.null_keys,
            self.null_ts,
            self.bad_ts,
            self.stored,
        ]
    }

    /// The counts [`EventStats::to_counts`] gave (missing ones are zero).
    pub fn from_counts(c: &[u64]) -> EventStats {
        let at = |i: usize| c.get(i).copied().unwrap_or(0);
        EventStats {
            rows: at(0),
            null_keys: at(1),
            null_ts: at(2),
            bad_ts: at(3),
            stored: at(4),
        }
    }

    /// Adds another count in.
    pub fn add(&mut self, o: &EventStats) {
        self.rows += o.rows;
        self.null_keys += o.null_keys;
        self.null_ts += o.null_ts;
        self.bad_ts += o.bad_ts;
        self.stored += o.stored;
    }

    /// Rows skipped for any reason.
    pub fn skipped(&self) -> u64 {
        self.null_keys + self.null_ts + self.bad_ts
    }
}

/// The partition of each row, from the `ds` column (string or date).
fn row_partitions(batch: &RecordBatch, table: &str) -> Result<Vec<i32>> {
    let col = batch
        .column_by_name("ds")
        .ok_or_else(|| Error::data(table, None, "no `ds` column in the scan"))?;
    match col.data_type() {
        DataType::Date32 => Ok(col
            .as_primitive::<arrow::datatypes::Date32Type>()
            .values()
            .to_vec()),
        _ => {
            let c = cast(col, &DataType::Utf8).map_err(|e| Error::arrow(table, e))?;
            let c = c.as_string::<i32>();
            let mut last: Option<(&str, i32)> = None;
            (0..c.len())
                .map(|i| {
                    let s = c.value(i);
                    match last {
                        Some((l, d)) if l == s => Ok(d),
                        _ => {
                            let d = Ds::parse(s)?.0;
                            last = Some((s, d));
                            Ok(d)
                        }
                    }
                })
                .collect()
        }
    }
}

/// The type of each of a part's inputs in a source schema.
pub fn input_types(schema: &SchemaRef, inputs: &[String], table: &str) -> Result<Vec<DataType>> {
    inputs
        .iter()
        .map(|n| {
            schema
                .field_with_name(n)
                .map(|f| f.data_type().clone())
                .map_err(|_| {
                    Error::data(table, None, format!("input column `{n}` is not selected"))
                        .with_fix("add it to the source query's selects")
                })
        })
        .collect()
}

/// GroupBy source rows as dataflow rows. Rows whose keys are all NULL are dropped (as
/// Chronon does) and counted; rows with a NULL `ts` are counted and skipped. `mutations`
/// reads `mutation_ts` and `is_before` too.
pub fn source_rows(
    batch: &RecordBatch,
    part: &PartPlan,
    mutations: bool,
    table: &str,
    stats: &mut EventStats,
) -> Result<Vec<Update>> {
    let shape = RowShape {
        part: part.index,
        keys: &part.right_keys,
        inputs: &part.inputs,
        mutations,
    };
    shaped_rows(batch, &shape, table, stats)
}

/// What turning a part's source rows into dataflow rows needs of the part.
#[derive(Debug, Clone, Copy)]
pub struct RowShape<'a> {
    pub part: u16,
    /// The source's key columns, in GroupBy key order.
    pub keys: &'a [String],
    /// The columns fed to the dataflow, in order.
    pub inputs: &'a [String],
    /// Whether the rows are mutations (`mutation_ts`, `is_before`).
    pub mutations: bool,
}

/// [`source_rows`] for a part described by its [`RowShape`].
pub fn shaped_rows(
    batch: &RecordBatch,
    part: &RowShape<'_>,
    table: &str,
    stats: &mut EventStats,
) -> Result<Vec<Update>> {
    let mut out = Vec::with_capacity(batch.num_rows());
    shaped_rows_into(batch, part, table, stats, &mut out)?;
    Ok(out)
}

/// As [`shaped_rows`], appending to `out` (no copy of a batch's rows when a read gathers
/// several batches).
pub fn shaped_rows_into(
    batch: &RecordBatch,
    part: &RowShape<'_>,
    table: &str,
    stats: &mut EventStats,
    out: &mut Vec<Update>,
) -> Result<()> {
    let mutations = part.mutations;
    let what = format!("GroupBy source {table}");
    let keys = key_arrays(batch, part.keys, &what)?;
    let ts = batch.column_by_name("ts").ok_or_else(|| {
        Error::data(table, None, "no `ts` column").with_fix("set timeColumn on the source query")
    })?;
    let ts = cast(ts, &DataType::Int64).map_err(|e| Error::arrow(&what, e))?;
    let ts = ts.as_primitive::<Int64Type>();
    let ds = row_partitions(batch, table)?;
    let mut values: Vec<Vec<Value>> = part
        .inputs
        .iter()
        .map(|n| {
            let c = batch.column_by_name(n).ok_or_else(|| {
                Error::data(table, None, format!("input column `{n}` is not selected"))
            })?;
            column_values(c)
        })
        .collect::<Result<_>>()?;
    let muts = if mutations {
        let m = batch
            .column_by_name("mutation_ts")
            .ok_or_else(|| Error::data(table, None, "no `mutation_ts` column"))?;
        let m = cast(m, &DataType::Int64).map_err(|e| Error::arrow(&what, e))?;
        let b = batch
            .column_by_name("is_before")
            .ok_or_else(|| Error::data(table, None, "no `is_before` column"))?;
        let b = cast(b, &DataType::Boolean).map_err(|e| Error::arrow(&what, e))?;
        Some((m, b))
    } else {
        None
    };
    for i in 0..batch.num_rows() {
        stats.rows += 1;
        if keys.iter().all(|k| k.is_null(i)) {
            stats.null_keys += 1;
            continue;
        }
        if ts.is_null(i) {
            stats.null_ts += 1;
            continue;
        }
        if !crate::partition::ts_in_range(ts.value(i)) {
            stats.bad_ts += 1;
            continue;
        }
        // Some keys NULL: such a row can never match a left row (whose NULL keys are skipped).
        let Some(k) = encode_key(&keys, i) else {
            stats.null_keys += 1;
            continue;
        };
        let mutation = match &muts {
            Some((m, b)) => {
                if m.is_null(i) {
                    stats.null_ts += 1;
                    continue;
                }
                Some(Mutation {
                    mts: m.as_primitive::<Int64Type>().value(i),
                    before: !b.is_null(i) && b.as_boolean().value(i),
                })
            }
            None => None,
        };
        out.push((
            (
                (part.part, k),
                Item::Row {
                    ds: ds[i],
                    ts: ts.value(i),
                    mutation,
                    // each row's values are taken once, not cloned
                    inputs: values
                        .iter_mut()
                        .map(|v| std::mem::replace(&mut v[i], Value::Null))
                        .collect(),
                },
            ),
            1,
        ));
    }
    Ok(())
}
