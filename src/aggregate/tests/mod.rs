//! Tests of the aggregation operations: small exact cases for each of the 20 operations, merge ==
//! sequential update on random inputs, accuracy of the sketches, Arrow round trips, output types.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BinaryArray, BooleanArray, Date32Array, Float32Array, Float64Array,
    Int16Array, Int32Array, Int64Array, Int64Builder, LargeStringArray, ListArray, MapBuilder,
    StringArray, StringBuilder, TimestampMillisecondArray,
};
use arrow::datatypes::{DataType, Field, Int64Type, TimeUnit};
use indexmap::IndexMap;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::value::{column_values, list_type, map_type, to_array};
use super::*;
use crate::config::{Aggregation, Operation};

fn agg_of(op: Operation, args: &[(&str, &str)]) -> Aggregation {
    Aggregation {
        input_column: "x".into(),
        operation: op,
        arg_map: args
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<IndexMap<_, _>>(),
        windows: None,
        buckets: vec![],
        element_wise: None,
    }
}

fn spec(op: Operation, args: &[(&str, &str)]) -> AggSpec {
    AggSpec::new(&agg_of(op, args)).unwrap()
}

fn aggr(op: Operation, args: &[(&str, &str)], shape: InputShape, bucketed: bool) -> Aggregator {
    Aggregator::new(spec(op, args), shape, bucketed)
}

/// One input row: (ts, value, bucket, weight).
type Row = (i64, Value, Option<Value>, i64);

fn rows(values: &[Value]) -> Vec<Row> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| (i as i64, v.clone(), None, 1))
        .collect()
}

fn run(a: &Aggregator, rows: &[Row]) -> Option<Ir> {
    let mut ir = None;
    for (ts, v, b, w) in rows {
        a.update(&mut ir, *ts, v, b.as_ref(), *w);
    }
    ir
}

fn result(a: &Aggregator, rows: &[Row]) -> Value {
    a.finalize(&run(a, rows))
}

fn scalar(op: Operation, args: &[(&str, &str)], values: &[Value]) -> Value {
    result(&aggr(op, args, InputShape::Scalar, false), &rows(values))
}

fn l(v: i64) -> Value {
    Value::Long(v)
}
fn d(v: f64) -> Value {
    Value::double(v)
}
fn s(v: &str) -> Value {
    Value::str(v)
}
fn list(items: &[Value]) -> Value {
    Value::List(items.to_vec())
}
fn map(entries: &[(&str, Value)]) -> Value {
    let mut e: Vec<(Value, Value)> = entries.iter().map(|(k, v)| (s(k), v.clone())).collect();
    e.sort_by(|a, b| a.0.cmp(&b.0));
    Value::Map(e)
}
fn f(v: &Value) -> f64 {
    v.as_f64().unwrap()
}

/// Aggregates `rows` in random consecutive pieces, merges them left to right, and returns the
/// finalized value.
fn pieces(a: &Aggregator, rows: &[Row], rng: &mut StdRng) -> Value {
    let mut total = None;
    let mut i = 0;
    while i < rows.len() {
        let len = rng.random_range(1..=(rows.len() - i).min(7));
        let part = run(a, &rows[i..i + len]);
        a.merge(&mut total, &part);
        i += len;
    }
    a.finalize(&total)
}

fn close(a: &Value, b: &Value, tol: f64) -> bool {
    match (a, b) {
        (Value::Double(_), Value::Double(_)) => {
            let (x, y) = (f(a), f(b));
            (x - y).abs() <= tol * x.abs().max(y.abs()).max(1.0)
        }
        (Value::List(x), Value::List(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| close(p, q, tol))
        }
        (Value::Map(x), Value::Map(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|(p, q)| p.0 == q.0 && close(&p.1, &q.1, tol))
        }
        _ => a == b,
    }
}

mod conversions;
mod merge;
mod operations;
mod sketches;
