//! Test tables in and out of a warehouse: [`Table`]s become Parquet partitions through
//! `Warehouse::write_partition`, and output partitions are read back as [`V`] rows.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int32Array, Int64Array, ListArray,
    MapArray, StringArray, StructArray,
};
use arrow::buffer::{NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow::datatypes::{
    DataType, Field, Fields, Float16Type, Float32Type, Float64Type, Int16Type, Int32Type,
    Int64Type, Int8Type, Schema, SchemaRef, UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use arrow::record_batch::RecordBatch;
use weft::partition::Ds;
use weft::warehouse::{TableName, Warehouse};

use super::{Db, Table, Ty, V};

pub fn data_type(t: &Ty) -> DataType {
    match t {
        Ty::Bool => DataType::Boolean,
        Ty::I32 => DataType::Int32,
        Ty::I64 => DataType::Int64,
        Ty::F64 => DataType::Float64,
        Ty::Str => DataType::Utf8,
        Ty::List(inner) => DataType::List(Arc::new(Field::new("item", data_type(inner), true))),
        Ty::Map(inner) => DataType::Map(Arc::new(entries_field(inner)), false),
    }
}

fn entries_field(inner: &Ty) -> Field {
    Field::new(
        "entries",
        DataType::Struct(Fields::from(vec![
            Field::new("key", DataType::Utf8, false),
            Field::new("value", data_type(inner), true),
        ])),
        false,
    )
}

fn bad(t: &Ty, v: &V) -> ! {
    panic!("test data: value {v} in a {t:?} column")
}

/// An Arrow array of values of type `t`.
pub fn to_array(t: &Ty, vals: &[V]) -> ArrayRef {
    match t {
        Ty::Bool => Arc::new(BooleanArray::from(
            vals.iter()
                .map(|v| match v {
                    V::Null => None,
                    V::Bool(b) => Some(*b),
                    v => bad(t, v),
                })
                .collect::<Vec<_>>(),
        )),
        Ty::I32 => Arc::new(Int32Array::from(
            vals.iter()
                .map(|v| match v {
                    V::Null => None,
                    V::Int(i) => Some(*i as i32),
                    v => bad(t, v),
                })
                .collect::<Vec<_>>(),
        )),
        Ty::I64 => Arc::new(Int64Array::from(
            vals.iter()
                .map(|v| match v {
                    V::Null => None,
                    V::Int(i) => Some(*i),
                    v => bad(t, v),
                })
                .collect::<Vec<_>>(),
        )),
        Ty::F64 => Arc::new(Float64Array::from(
            vals.iter()
                .map(|v| match v {
                    V::Null => None,
                    V::Float(f) => Some(*f),
                    V::Int(i) => Some(*i as f64),
                    v => bad(t, v),
                })
                .collect::<Vec<_>>(),
        )),
        Ty::Str => Arc::new(StringArray::from(
            vals.iter()
                .map(|v| match v {
                    V::Null => None,
                    V::Str(s) => Some(s.clone()),
                    v => bad(t, v),
                })
                .collect::<Vec<_>>(),
        )),
        Ty::List(inner) => {
            let mut offsets = vec![0i32];
            let mut items = Vec::new();
            let mut valid = Vec::new();
            for v in vals {
                match v {
                    V::Null => valid.push(false),
                    V::List(l) => {
                        items.extend(l.iter().cloned());
                        valid.push(true);
                    }
                    v => bad(t, v),
                }
                offsets.push(items.len() as i32);
            }
            Arc::new(ListArray::new(
                Arc::new(Field::new("item", data_type(inner), true)),
                OffsetBuffer::new(ScalarBuffer::from(offsets)),
                to_array(inner, &items),
                Some(NullBuffer::from(valid)),
            ))
        }
        Ty::Map(inner) => {
            let mut offsets = vec![0i32];
            let mut keys = Vec::new();
            let mut items = Vec::new();
            let mut valid = Vec::new();
            for v in vals {
                match v {
                    V::Null => valid.push(false),
                    V::Map(m) => {
                        for (k, x) in m {
                            keys.push(V::Str(k.clone()));
                            items.push(x.clone());
                        }
                        valid.push(true);
                    }
                    v => bad(t, v),
                }
                offsets.push(keys.len() as i32);
            }
            let DataType::Struct(fields) = entries_field(inner).data_type().clone() else {
                unreachable!()
            };
            let entries = StructArray::new(
                fields,
                vec![to_array(&Ty::Str, &keys), to_array(inner, &items)],
                None,
            );
            Arc::new(MapArray::new(
                Arc::new(entries_field(inner)),
                OffsetBuffer::new(ScalarBuffer::from(offsets)),
                entries,
                Some(NullBuffer::from(valid)),
                false,
            ))
        }
    }
}

pub fn schema(t: &Table) -> SchemaRef {
    Arc::new(Schema::new(
        t.cols
            .iter()
            .map(|(n, ty)| Field::new(n, data_type(ty), true))
            .collect::<Vec<_>>(),
    ))
}

/// The rows of one partition as a record batch.
pub fn batch(t: &Table, rows: &[Vec<V>]) -> RecordBatch {
    let cols: Vec<ArrayRef> = t
        .cols
        .iter()
        .enumerate()
        .map(|(i, (_, ty))| {
            let vals: Vec<V> = rows.iter().map(|r| r[i].clone()).collect();
            to_array(ty, &vals)
        })
        .collect();
    RecordBatch::try_new(schema(t), cols).expect("test batch")
}

pub fn tn(name: &str) -> TableName {
    TableName::parse(name).expect("table name")
}

fn spec(ds: &str) -> Vec<(String, String)> {
    vec![("ds".to_string(), ds.to_string())]
}

/// Writes (or re-lands) one partition of a table as it is in `db`.
pub fn write_partition(wh: &Warehouse, db: &Db, table: &str, ds: &str) {
    let t = db.table(table);
    let rows = t.parts.get(ds).cloned().unwrap_or_default();
    let b = batch(t, &rows);
    let batches = if rows.is_empty() { vec![] } else { vec![b] };
    wh.write_partition(&tn(table), &spec(ds), schema(t), &batches)
        .expect("writing test partition");
}

/// Writes every partition of every table.
pub fn write_db(wh: &Warehouse, db: &Db) {
    for (name, t) in &db.tables {
        for ds in t.parts.keys() {
            write_partition(wh, db, name, ds);
        }
    }
}

/// Removes a partition from the warehouse.
pub fn drop_partition(wh: &Warehouse, table: &str, ds: &str) {
    wh.drop_partition(&tn(table), &spec(ds))
        .expect("dropping partition");
}

/// One cell of an Arrow array as a [`V`] (integers of any width → Int, floats → Float).
pub fn cell(a: &dyn Array, i: usize) -> V {
    if a.is_null(i) {
        return V::Null;
    }
    match a.data_type() {
        DataType::Null => V::Null,
        DataType::Boolean => V::Bool(a.as_boolean().value(i)),
        DataType::Int8 => V::Int(a.as_primitive::<Int8Type>().value(i) as i64),
        DataType::Int16 => V::Int(a.as_primitive::<Int16Type>().value(i) as i64),
        DataType::Int32 => V::Int(a.as_primitive::<Int32Type>().value(i) as i64),
        DataType::Int64 => V::Int(a.as_primitive::<Int64Type>().value(i)),
        DataType::UInt8 => V::Int(a.as_primitive::<UInt8Type>().value(i) as i64),
        DataType::UInt16 => V::Int(a.as_primitive::<UInt16Type>().value(i) as i64),
        DataType::UInt32 => V::Int(a.as_primitive::<UInt32Type>().value(i) as i64),
        DataType::UInt64 => V::Int(a.as_primitive::<UInt64Type>().value(i) as i64),
        DataType::Float16 => V::Float(a.as_primitive::<Float16Type>().value(i).to_f64()),
        DataType::Float32 => V::Float(a.as_primitive::<Float32Type>().value(i) as f64),
        DataType::Float64 => V::Float(a.as_primitive::<Float64Type>().value(i)),
        DataType::Utf8 => V::Str(a.as_string::<i32>().value(i).to_string()),
        DataType::LargeUtf8 => V::Str(a.as_string::<i64>().value(i).to_string()),
        DataType::Utf8View => V::Str(a.as_string_view().value(i).to_string()),
        DataType::List(_) => {
            let l = a.as_list::<i32>().value(i);
            V::List((0..l.len()).map(|j| cell(l.as_ref(), j)).collect())
        }
        DataType::LargeList(_) => {
            let l = a.as_list::<i64>().value(i);
            V::List((0..l.len()).map(|j| cell(l.as_ref(), j)).collect())
        }
        DataType::Map(_, _) => {
            let m = a.as_map().value(i);
            let (k, v) = (m.column(0), m.column(1));
            V::Map(
                (0..m.len())
                    .map(|j| {
                        let key = match cell(k.as_ref(), j) {
                            V::Str(s) => s,
                            other => other.key_string(),
                        };
                        (key, cell(v.as_ref(), j))
                    })
                    .collect(),
            )
        }
        DataType::Dictionary(_, _) => {
            let d = a.as_any_dictionary();
            let key = d.normalized_keys()[i];
            cell(d.values().as_ref(), key)
        }
        other => panic!("reading output: column type {other} is not handled by the tests"),
    }
}

/// The rows of one table read back: per partition, column names and rows.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Actual {
    pub parts: BTreeMap<String, (Vec<String>, Vec<Vec<V>>)>,
}

/// Reads every partition of a table.
pub fn read_table(wh: &Warehouse, table: &str) -> Actual {
    let t = tn(table);
    let mut out = Actual::default();
    for ds in wh.partitions(&t).expect("listing output partitions") {
        let batches = wh.read_partition(&t, ds).expect("reading output partition");
        let mut cols: Vec<String> = Vec::new();
        let mut rows = Vec::new();
        for b in &batches {
            cols = b
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect();
            for i in 0..b.num_rows() {
                rows.push(b.columns().iter().map(|c| cell(c.as_ref(), i)).collect());
            }
        }
        if batches.is_empty() {
            // an empty partition still has a schema in its footer
            if let Some(f) = wh.partition_files(&t, ds).unwrap().first() {
                let file = std::fs::File::open(f).unwrap();
                let b =
                    parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
                        .unwrap();
                cols = b
                    .schema()
                    .fields()
                    .iter()
                    .map(|f| f.name().clone())
                    .collect();
            }
        }
        out.parts.insert(ds.to_string(), (cols, rows));
    }
    out
}

/// Rows of a partition as comparable strings, sorted (for equality of two outputs).
pub fn canonical(cols: &[String], rows: &[Vec<V>]) -> Vec<String> {
    let mut order: Vec<usize> = (0..cols.len()).collect();
    order.sort_by_key(|&i| cols[i].clone());
    let mut out: Vec<String> = rows
        .iter()
        .map(|r| {
            order
                .iter()
                .map(|&i| format!("{}={}", cols[i], r[i]))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .collect();
    out.sort();
    out
}

pub fn ds_of_index(base: &str, i: i64) -> String {
    super::ds_shift(base, i)
}

/// `Ds` of a `yyyy-MM-dd` string.
pub fn ds(s: &str) -> Ds {
    Ds::parse(s).expect("ds")
}

/// Rows of a SQL query over the warehouse (a fresh engine sees every table), each as
/// column → value.
pub fn sql_rows(wh: &Warehouse, sql: &str) -> Vec<BTreeMap<String, V>> {
    let engine = weft::sql::Session::new(wh).expect("engine");
    let (schema, batches) = engine
        .query_with_schema(sql, "test query")
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let mut out = Vec::new();
    for b in &batches {
        for i in 0..b.num_rows() {
            out.push(
                schema
                    .fields()
                    .iter()
                    .zip(b.columns())
                    .map(|(f, c)| (f.name().clone(), cell(c.as_ref(), i)))
                    .collect(),
            );
        }
    }
    out
}
