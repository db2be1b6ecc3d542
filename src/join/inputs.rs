//! Turns Arrow batches read through the SQL engine into dataflow updates: left rows become
//! queries keyed by each part's join key, GroupBy source rows become events. Join keys are
//! canonicalised (integers → Int64, strings → Utf8, floats → Float64) and type-checked
//! between left and right; unusable rows are counted, never dropped silently.

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type, Int64Type, SchemaRef};
use arrow::record_batch::RecordBatch;

use crate::dataflow::records::{row_id, Item, Key, Num};
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
fn key_arrays(batch: &RecordBatch, names: &[String], what: &str) -> Result<Vec<ArrayRef>> {
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
fn encode_key(arrays: &[ArrayRef], i: usize) -> Option<Key> {
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

/// Left rows of one partition as queries for one part. Returns the updates and the number of
/// rows skipped because a key is NULL (they get NULL features, as in Chronon).
pub fn left_queries(
    batch: &RecordBatch,
    ds: Ds,
    first_index: u32,
    part: u16,
    left_keys: &[String],
    table: &str,
) -> Result<(Vec<Update>, usize)> {
    let what = format!("left {table} partition ds={ds}");
    let keys = key_arrays(batch, left_keys, &what)?;
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
    let mut out = Vec::with_capacity(batch.num_rows());
    let mut null_keys = 0;
    for i in 0..batch.num_rows() {
        match encode_key(&keys, i) {
            Some(k) => out.push((
                (
                    (part, k),
                    Item::Query {
                        row: row_id(ds, first_index + i as u32),
                        q: ts.value(i),
                    },
                ),
                1,
            )),
            None => null_keys += 1,
        }
    }
    Ok((out, null_keys))
}

/// Counts of source rows that could not be used.
#[derive(Debug, Default, Clone, Copy)]
pub struct EventStats {
    pub rows: u64,
    pub null_keys: u64,
    pub null_ts: u64,
}

/// Numeric form of an aggregation input column (NULL stays NULL).
fn input_values(col: &ArrayRef, what: &str) -> Result<Vec<Num>> {
    use DataType::*;
    let nums = |c: &ArrayRef, f: &dyn Fn(usize) -> Num| -> Vec<Num> {
        (0..c.len())
            .map(|i| if c.is_null(i) { Num::Null } else { f(i) })
            .collect()
    };
    match col.data_type() {
        Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32 | UInt64 | Boolean => {
            let c = cast(col, &Int64).map_err(|e| Error::arrow(what, e))?;
            let v = c.as_primitive::<Int64Type>();
            Ok(nums(&c, &|i| Num::Long(v.value(i))))
        }
        Float16 | Float32 | Float64 => {
            let c = cast(col, &Float64).map_err(|e| Error::arrow(what, e))?;
            let v = c.as_primitive::<Float64Type>();
            Ok(nums(&c, &|i| Num::double(v.value(i))))
        }
        // COUNT accepts any type: only NULL-ness matters.
        _ => Ok(nums(col, &|_| Num::Long(1))),
    }
}

/// Whether each input column sums as double, from a source schema.
pub fn double_inputs(schema: &SchemaRef, inputs: &[String]) -> Vec<bool> {
    inputs
        .iter()
        .map(|n| {
            schema
                .field_with_name(n)
                .map(|f| {
                    matches!(
                        f.data_type(),
                        DataType::Float16 | DataType::Float32 | DataType::Float64
                    )
                })
                .unwrap_or(false)
        })
        .collect()
}

/// GroupBy source rows as events. Rows whose keys are all NULL are dropped (as Chronon does)
/// and counted; rows with a NULL `ts` are counted and skipped.
pub fn events(
    batch: &RecordBatch,
    part: u16,
    right_keys: &[String],
    inputs: &[String],
    table: &str,
    stats: &mut EventStats,
) -> Result<Vec<Update>> {
    let what = format!("GroupBy source {table}");
    let keys = key_arrays(batch, right_keys, &what)?;
    let ts = batch.column_by_name("ts").ok_or_else(|| {
        Error::data(table, None, "no `ts` column").with_fix("set timeColumn on the source query")
    })?;
    let ts = cast(ts, &DataType::Int64).map_err(|e| Error::arrow(&what, e))?;
    let ts = ts.as_primitive::<Int64Type>();
    let values: Vec<Vec<Num>> = inputs
        .iter()
        .map(|n| {
            let c = batch.column_by_name(n).ok_or_else(|| {
                Error::data(
                    table,
                    None,
                    format!("aggregation input `{n}` is not selected"),
                )
            })?;
            input_values(c, &what)
        })
        .collect::<Result<_>>()?;
    let mut out = Vec::with_capacity(batch.num_rows());
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
        // Some keys NULL: kept (a NULL key never matches a left row, whose NULL keys are skipped).
        let Some(k) = encode_key(&keys, i) else {
            stats.null_keys += 1;
            continue;
        };
        out.push((
            (
                (part, k),
                Item::Event {
                    ts: ts.value(i),
                    inputs: values.iter().map(|v| v[i]).collect(),
                },
            ),
            1,
        ));
    }
    Ok(out)
}
