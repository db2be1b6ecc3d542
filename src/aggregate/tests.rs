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

// ------------------------------------------------------------------------------------------
// One test per operation (small, exact)

#[test]
fn count_nulls_lists_maps_buckets_weights_deletes() {
    use Operation::Count;
    assert_eq!(scalar(Count, &[], &[]), Value::Null);
    assert_eq!(scalar(Count, &[], &[Value::Null, Value::Null]), Value::Null);
    assert_eq!(scalar(Count, &[], &[l(1), Value::Null, l(1), s("a")]), l(3));
    let lists = aggr(Count, &[], InputShape::List, false);
    assert_eq!(
        result(
            &lists,
            &rows(&[list(&[l(1), Value::Null, l(2)]), list(&[]), Value::Null])
        ),
        l(2)
    );
    assert_eq!(
        result(&lists, &rows(&[list(&[]), list(&[Value::Null])])),
        Value::Null
    );
    let maps = aggr(Count, &[], InputShape::Map, false);
    let got = result(
        &maps,
        &rows(&[
            map(&[("a", l(1)), ("b", Value::Null)]),
            map(&[("a", l(5)), ("c", l(0))]),
        ]),
    );
    assert_eq!(got, map(&[("a", l(2)), ("c", l(1))]));
    assert_eq!(
        result(&maps, &rows(&[map(&[])])),
        Value::Map(vec![]),
        "a non-null empty map creates the IR"
    );
    let bucketed = aggr(Count, &[], InputShape::Scalar, true);
    let r = vec![
        (0, l(1), Some(s("x")), 1),
        (1, l(1), Some(s("y")), 2),
        (2, l(1), None, 1),
        (3, l(1), Some(Value::Null), 1),
        (4, Value::Null, Some(s("x")), 1),
        (5, l(1), Some(l(7)), 1),
    ];
    assert_eq!(
        result(&bucketed, &r),
        map(&[("7", l(1)), ("x", l(1)), ("y", l(2))])
    );
    assert_eq!(result(&bucketed, &r[2..5]), Value::Null);
    let plain = aggr(Count, &[], InputShape::Scalar, false);
    assert_eq!(
        result(&plain, &[(0, l(1), None, 3), (1, l(2), None, -1)]),
        l(2)
    );
    assert_eq!(
        result(&plain, &[(0, l(1), None, 1), (1, l(1), None, -1)]),
        l(0),
        "Chronon keeps the zero IR"
    );
    assert_eq!(
        result(&plain, &[(0, l(1), None, -1)]),
        l(-1),
        "deletion first: inversePrepare"
    );
    assert_eq!(result(&plain, &[(0, l(1), None, 0)]), Value::Null);
}

#[test]
fn sum_ints_floats_bools_wrapping_and_deletes() {
    use Operation::Sum;
    assert_eq!(scalar(Sum, &[], &[l(1), Value::Null, l(2), l(2)]), l(5));
    assert_eq!(
        scalar(Sum, &[], &[l(i64::MAX), l(2)]),
        l(i64::MIN + 1),
        "wrapping"
    );
    assert_eq!(scalar(Sum, &[], &[d(0.5), d(0.25)]), d(0.75));
    assert_eq!(
        scalar(
            Sum,
            &[],
            &[Value::Bool(true), Value::Bool(false), Value::Bool(true)]
        ),
        l(2)
    );
    assert_eq!(
        scalar(Sum, &[], &[d(f64::INFINITY), d(1.0)]),
        Value::Null,
        "Inf → NULL"
    );
    let a = aggr(Sum, &[], InputShape::Scalar, false);
    assert_eq!(
        result(
            &a,
            &[(0, l(5), None, 3), (1, l(4), None, -1), (2, l(6), None, -2)]
        ),
        l(-1)
    );
    let lists = aggr(Sum, &[], InputShape::List, false);
    assert_eq!(
        result(
            &lists,
            &rows(&[list(&[l(1), l(2)]), list(&[l(3), Value::Null])])
        ),
        l(6)
    );
    let maps = aggr(Sum, &[], InputShape::Map, false);
    assert_eq!(
        result(
            &maps,
            &rows(&[map(&[("a", d(1.5))]), map(&[("a", d(2.0)), ("b", d(1.0))])])
        ),
        map(&[("a", d(3.5)), ("b", d(1.0))])
    );
}

#[test]
fn average_explodes_lists_and_deletes() {
    use Operation::Average;
    let lists = aggr(Average, &[], InputShape::List, false);
    let r = rows(&[
        list(&[l(1), l(2), l(3)]),
        list(&[l(3), l(4)]),
        list(&[l(5)]),
    ]);
    assert_eq!(result(&lists, &r), d(3.0), "the §2.3 example");
    assert_eq!(scalar(Average, &[], &[l(1), l(2), Value::Null]), d(1.5));
    let a = aggr(Average, &[], InputShape::Scalar, false);
    assert_eq!(
        result(
            &a,
            &[(0, l(2), None, 2), (1, l(8), None, 1), (2, l(8), None, -1)]
        ),
        d(2.0)
    );
    assert_eq!(
        result(&a, &[(0, l(2), None, 1), (1, l(2), None, -1)]),
        Value::Null,
        "0/0 → NULL"
    );
    let b = aggr(Average, &[], InputShape::Scalar, true);
    let got = result(
        &b,
        &[
            (0, l(1), Some(s("u")), 1),
            (1, l(3), Some(s("u")), 1),
            (2, l(1), Some(s("v")), -1),
        ],
    );
    assert_eq!(
        got,
        map(&[("u", d(2.0)), ("v", d(1.0))]),
        "v: sum -1 over count -1"
    );
}

fn naive_moments(xs: &[f64]) -> (f64, f64, f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let m = |p: i32| xs.iter().map(|x| (x - mean).powi(p)).sum::<f64>();
    (n, m(2), m(3), m(4))
}

#[test]
fn variance_skew_kurtosis_match_the_formulas() {
    use Operation::*;
    let xs = [1.0, 2.0, 2.0, 3.5, 7.0, -1.0, 4.25];
    let vals: Vec<Value> = xs.iter().map(|x| d(*x)).collect();
    let (n, m2, m3, m4) = naive_moments(&xs);
    assert!(close(&scalar(Variance, &[], &vals), &d(m2 / n), 1e-12));
    assert!(close(
        &scalar(Skew, &[], &vals),
        &d(n.sqrt() * m3 / m2.powf(1.5)),
        1e-12
    ));
    assert!(close(
        &scalar(Kurtosis, &[], &vals),
        &d(n * m4 / (m2 * m2) - 3.0),
        1e-12
    ));
    // Population variance of ints; a single value has variance 0.
    assert_eq!(scalar(Variance, &[], &[l(1), l(3)]), d(1.0));
    assert_eq!(scalar(Variance, &[], &[l(4)]), d(0.0));
    // NULL when n < 3 (skew) / n < 4 (kurtosis) or m2 = 0.
    assert_eq!(scalar(Skew, &[], &[l(1), l(2)]), Value::Null);
    assert_eq!(scalar(Skew, &[], &[l(5), l(5), l(5), l(5)]), Value::Null);
    assert_ne!(scalar(Skew, &[], &[l(1), l(2), l(9)]), Value::Null);
    assert_eq!(scalar(Kurtosis, &[], &[l(1), l(2), l(9)]), Value::Null);
    assert_ne!(
        scalar(Kurtosis, &[], &[l(1), l(2), l(9), l(3)]),
        Value::Null
    );
    // Weights are copies: a large weight (block merge) equals repeated values.
    for op in [Variance, Skew, Kurtosis] {
        let a = aggr(op, &[], InputShape::Scalar, false);
        let weighted = result(
            &a,
            &[
                (0, d(1.0), None, 100),
                (1, d(3.0), None, 1),
                (2, d(-2.0), None, 2),
            ],
        );
        let mut flat = vec![d(1.0); 100];
        flat.extend([d(3.0), d(-2.0), d(-2.0)]);
        assert!(close(&weighted, &result(&a, &rows(&flat)), 1e-9), "{op:?}");
        // Deletion is ignored (not deletable).
        let with_delete = result(
            &a,
            &[
                (0, d(1.0), None, 100),
                (1, d(3.0), None, 1),
                (2, d(-2.0), None, 2),
                (3, d(3.0), None, -1),
            ],
        );
        assert_eq!(with_delete, weighted);
    }
}

#[test]
fn min_max_numbers_strings_lists() {
    use Operation::*;
    assert_eq!(scalar(Min, &[], &[l(3), Value::Null, l(-2), l(5)]), l(-2));
    assert_eq!(scalar(Max, &[], &[l(3), Value::Null, l(-2), l(5)]), l(5));
    assert_eq!(scalar(Max, &[], &[d(-0.0), d(0.0)]), d(0.0));
    assert_eq!(scalar(Min, &[], &[s("b"), s("a"), s("c")]), s("a"));
    assert_eq!(scalar(Max, &[], &[s("b"), s("ab"), s("c")]), s("c"));
    assert_eq!(
        scalar(Max, &[], &[d(1.0), d(f64::NAN), d(2.0)]),
        Value::Null,
        "NaN is sticky, then NULL"
    );
    let lists = aggr(Min, &[], InputShape::List, false);
    assert_eq!(
        result(
            &lists,
            &rows(&[list(&[l(4), Value::Null]), list(&[l(2), l(9)])])
        ),
        l(2)
    );
    // Not deletable: deletions are ignored.
    let a = aggr(Max, &[], InputShape::Scalar, false);
    assert_eq!(result(&a, &[(0, l(1), None, 1), (1, l(9), None, -1)]), l(1));
    assert_eq!(result(&a, &[(0, l(9), None, -1)]), Value::Null);
}

#[test]
fn first_last_by_ts_with_ties_keeping_the_first_seen() {
    use Operation::*;
    let r = vec![
        (5, s("a"), None, 1),
        (3, s("b"), None, 1),
        (3, s("c"), None, 1),
        (9, s("d"), None, 1),
        (9, s("e"), None, 1),
        (1, Value::Null, None, 1),
    ];
    assert_eq!(
        result(&aggr(First, &[], InputShape::Scalar, false), &r),
        s("b")
    );
    assert_eq!(
        result(&aggr(Last, &[], InputShape::Scalar, false), &r),
        s("d")
    );
    // Lists are values, not exploded.
    let a = aggr(Last, &[], InputShape::List, false);
    assert_eq!(
        result(
            &a,
            &[
                (1, list(&[l(1), l(2)]), None, 1),
                (2, list(&[l(3)]), None, 1)
            ]
        ),
        list(&[l(3)])
    );
    // Merge: ties keep `into`.
    let a = aggr(Last, &[], InputShape::Scalar, false);
    let mut x = run(&a, &[(9, s("x"), None, 1)]);
    a.merge(&mut x, &run(&a, &[(9, s("y"), None, 1)]));
    assert_eq!(a.finalize(&x), s("x"));
    // Deletions ignored.
    assert_eq!(result(&a, &[(9, s("x"), None, -1)]), Value::Null);
}

#[test]
fn first_k_last_k_order_ties_duplicates() {
    use Operation::*;
    let r = vec![
        (5, s("a"), None, 1),
        (3, s("b"), None, 1),
        (3, s("c"), None, 1),
        (9, s("d"), None, 2),
        (7, Value::Null, None, 1),
        (1, s("e"), None, 1),
    ];
    let last3 = aggr(LastK, &[("k", "3")], InputShape::Scalar, false);
    assert_eq!(result(&last3, &r), list(&[s("d"), s("d"), s("a")]));
    let last5 = aggr(LastK, &[("k", "5")], InputShape::Scalar, false);
    assert_eq!(
        result(&last5, &r),
        list(&[s("d"), s("d"), s("a"), s("b"), s("c")]),
        "ties: earlier arrival first"
    );
    let first3 = aggr(FirstK, &[("k", "3")], InputShape::Scalar, false);
    assert_eq!(result(&first3, &r), list(&[s("e"), s("b"), s("c")]));
    let first9 = aggr(FirstK, &[("k", "9")], InputShape::Scalar, false);
    assert_eq!(
        result(&first9, &r),
        list(&[s("e"), s("b"), s("c"), s("a"), s("d"), s("d")])
    );
    // Lists are kept whole.
    let lists = aggr(LastK, &[("k", "2")], InputShape::List, false);
    assert_eq!(
        result(
            &lists,
            &[
                (1, list(&[l(1)]), None, 1),
                (2, list(&[l(2), l(3)]), None, 1)
            ]
        ),
        list(&[list(&[l(2), l(3)]), list(&[l(1)])])
    );
    // k = 1 agrees with FIRST / LAST on ties.
    let ties = vec![(3, s("p"), None, 1), (3, s("q"), None, 1)];
    assert_eq!(
        result(
            &aggr(LastK, &[("k", "1")], InputShape::Scalar, false),
            &ties
        ),
        list(&[s("p")])
    );
    assert_eq!(
        result(
            &aggr(FirstK, &[("k", "1")], InputShape::Scalar, false),
            &ties
        ),
        list(&[s("p")])
    );
    assert_eq!(
        result(&last3, &[(1, s("x"), None, -1)]),
        Value::Null,
        "not deletable"
    );
}

#[test]
fn top_k_bottom_k_sorted_with_duplicates() {
    use Operation::*;
    let vals = [l(5), l(1), Value::Null, l(5), l(3), l(9), l(-2)];
    assert_eq!(
        scalar(TopK, &[("k", "3")], &vals),
        list(&[l(9), l(5), l(5)])
    );
    assert_eq!(
        scalar(BottomK, &[("k", "3")], &vals),
        list(&[l(-2), l(1), l(3)])
    );
    assert_eq!(
        scalar(TopK, &[("k", "10")], &[d(1.5), d(-0.5)]),
        list(&[d(1.5), d(-0.5)])
    );
    assert_eq!(
        scalar(BottomK, &[("k", "2")], &[s("b"), s("a"), s("c")]),
        list(&[s("a"), s("b")])
    );
    let lists = aggr(TopK, &[("k", "2")], InputShape::List, false);
    assert_eq!(
        result(&lists, &rows(&[list(&[l(1), l(7)]), list(&[l(4)])])),
        list(&[l(7), l(4)])
    );
    let a = aggr(TopK, &[("k", "2")], InputShape::Scalar, false);
    assert_eq!(
        result(&a, &[(0, l(3), None, 5)]),
        list(&[l(3), l(3)]),
        "weight = copies"
    );
}

#[test]
fn unique_counts_exact_and_bounded() {
    use Operation::*;
    let vals = [s("a"), s("b"), Value::Null, s("a"), s("c")];
    assert_eq!(scalar(UniqueCount, &[], &vals), l(3));
    assert_eq!(scalar(BoundedUniqueCount, &[("k", "2")], &vals), l(2));
    assert_eq!(
        scalar(BoundedUniqueCount, &[], &vals),
        l(3),
        "default k = 8"
    );
    assert_eq!(
        scalar(
            UniqueCount,
            &[],
            &[d(0.0), d(-0.0), d(f64::NAN), d(f64::NAN)]
        ),
        l(3),
        "Java Double.equals"
    );
    let bytes = [
        Value::Bytes(vec![1u8].into()),
        Value::Bytes(vec![1u8].into()),
        Value::Bytes(vec![].into()),
    ];
    assert_eq!(scalar(UniqueCount, &[], &bytes), l(2));
    let maps = aggr(UniqueCount, &[], InputShape::Map, false);
    assert_eq!(
        result(
            &maps,
            &rows(&[
                map(&[("a", l(1))]),
                map(&[("a", l(1)), ("b", l(2))]),
                map(&[("a", l(3))])
            ])
        ),
        map(&[("a", l(2)), ("b", l(1))])
    );
    let a = aggr(UniqueCount, &[], InputShape::Scalar, false);
    assert_eq!(
        result(&a, &[(0, l(1), None, 1), (1, l(1), None, -1)]),
        l(1),
        "not deletable"
    );
}

#[test]
fn histogram_counts_truncation_ties_and_deletes() {
    use Operation::Histogram;
    let vals: Vec<Value> = ["a", "b", "a", "c", "b", "a", "d"]
        .iter()
        .map(|x| s(x))
        .collect();
    assert_eq!(
        scalar(Histogram, &[], &vals),
        map(&[("a", l(3)), ("b", l(2)), ("c", l(1)), ("d", l(1))])
    );
    assert_eq!(
        scalar(Histogram, &[("k", "2")], &vals),
        map(&[("a", l(3)), ("b", l(2))])
    );
    // Ties at the cut-off: the smaller values win.
    assert_eq!(
        scalar(Histogram, &[("k", "3")], &vals),
        map(&[("a", l(3)), ("b", l(2)), ("c", l(1))])
    );
    assert_eq!(
        scalar(Histogram, &[("k", "9")], &vals[..2]),
        map(&[("a", l(1)), ("b", l(1))])
    );
    let a = aggr(Histogram, &[], InputShape::Scalar, false);
    let got = result(
        &a,
        &[
            (0, s("a"), None, 2),
            (1, s("b"), None, 1),
            (2, s("a"), None, -1),
            (3, s("b"), None, -1),
            (4, s("z"), None, -1),
        ],
    );
    assert_eq!(
        got,
        map(&[("a", l(1)), ("z", l(-1))]),
        "zero counts disappear, deleting an absent value goes negative"
    );
    let lists = aggr(Histogram, &[], InputShape::List, false);
    assert_eq!(
        result(
            &lists,
            &rows(&[list(&[s("x"), s("y"), Value::Null]), list(&[s("x")])])
        ),
        map(&[("x", l(2)), ("y", l(1))])
    );
    let b = aggr(Histogram, &[], InputShape::Scalar, true);
    let got = result(
        &b,
        &[
            (0, s("a"), Some(s("u")), 1),
            (1, s("a"), Some(s("v")), 1),
            (2, s("a"), Some(s("u")), 1),
        ],
    );
    assert_eq!(
        got,
        Value::Map(vec![
            (s("u"), map(&[("a", l(2))])),
            (s("v"), map(&[("a", l(1))]))
        ])
    );
}

#[test]
fn approx_histogram_exact_below_k_and_top_k_on_a_skewed_stream() {
    use Operation::ApproxHistogramK;
    let small: Vec<Value> = [1, 2, 2, 3, 3, 3].iter().map(|x| l(*x)).collect();
    assert_eq!(
        scalar(ApproxHistogramK, &[("k", "3")], &small),
        map(&[("1", l(1)), ("2", l(2)), ("3", l(3))])
    );
    assert_eq!(
        scalar(ApproxHistogramK, &[], &[d(1.0), d(1e7), d(1.0)]),
        map(&[("1.0", l(2)), ("1.0E7", l(1))])
    );
    assert_eq!(
        scalar(ApproxHistogramK, &[], &[s("x"), Value::Null]),
        map(&[("x", l(1))])
    );
    // Skewed: value i appears 2^(12-i) times for i < 10, plus 300 singletons, shuffled.
    let mut vals = Vec::new();
    for i in 0..10i64 {
        vals.extend(std::iter::repeat_n(
            s(&format!("heavy{i}")),
            1usize << (12 - i),
        ));
    }
    vals.extend((0..300).map(|i| s(&format!("tail{i}"))));
    let weight = vals.len() as f64;
    let mut rng = StdRng::seed_from_u64(7);
    for i in (1..vals.len()).rev() {
        vals.swap(i, rng.random_range(0..=i));
    }
    let r = rows(&vals);
    for k in [4usize, 8] {
        let a = aggr(
            ApproxHistogramK,
            &[("k", &k.to_string())],
            InputShape::Scalar,
            false,
        );
        let max_error = weight * 3.5 / (4 * k).next_power_of_two() as f64;
        for got in [result(&a, &r), pieces(&a, &r, &mut rng)] {
            let Value::Map(entries) = &got else {
                panic!("{got:?}")
            };
            assert!(entries.len() <= k);
            let mut ranks: Vec<u32> = entries
                .iter()
                .map(|(key, _)| key.key_string()["heavy".len()..].parse().unwrap())
                .collect();
            ranks.sort();
            // The heaviest values, without gaps; at least every value heavier than twice the error.
            assert_eq!(
                ranks,
                (0..ranks.len() as u32).collect::<Vec<_>>(),
                "k = {k}: {got:?}"
            );
            let sure = (0..k as u32)
                .filter(|i| (1u64 << (12 - i)) as f64 > 2.0 * max_error)
                .count();
            assert!(ranks.len() >= sure, "k = {k}: {got:?}");
            for (key, count) in entries {
                let i: u32 = key.key_string()["heavy".len()..].parse().unwrap();
                let truth = 1i64 << (12 - i);
                let Value::Long(c) = count else {
                    unreachable!()
                };
                assert!(
                    *c >= truth && (*c - truth) as f64 <= max_error,
                    "{key:?}: {c} vs {truth}"
                );
            }
        }
    }
    let a = aggr(ApproxHistogramK, &[], InputShape::Scalar, false);
    assert_eq!(
        result(&a, &[(0, s("x"), None, 3), (1, s("x"), None, -1)]),
        map(&[("x", l(3))]),
        "not deletable"
    );
}

#[test]
fn approx_unique_count_within_cpc_bounds() {
    use datasketches::common::NumStdDev;
    use datasketches::cpc::CpcSketch;
    use Operation::ApproxUniqueCount;
    assert_eq!(
        scalar(ApproxUniqueCount, &[], &[l(1), l(2), l(2), Value::Null]),
        l(2)
    );
    assert_eq!(
        scalar(ApproxUniqueCount, &[], &[s("")]),
        l(0),
        "empty strings are skipped, as DataSketches does"
    );
    for (lg_k, args) in [
        (8u8, vec![]),
        (10, vec![("k", "10")]),
        (6, vec![("lgK", "6")]),
    ] {
        let a = aggr(ApproxUniqueCount, &args, InputShape::Scalar, false);
        let vals: Vec<Value> = (0..10_000).map(|i| l(i * 7919)).collect();
        let r = rows(&vals);
        let one_pass = f(&result(&a, &r));
        let mut rng = StdRng::seed_from_u64(lg_k as u64);
        let merged = f(&pieces(&a, &r[..2000], &mut rng));
        // The datasketches bounds at 3 standard deviations, for a sketch of the same lgK.
        let mut reference = CpcSketch::new(lg_k).unwrap();
        (0..10_000i64).for_each(|i| reference.update(i * 7919));
        let rse = 1.04 / ((1u64 << lg_k) as f64).sqrt();
        let (lo, hi) = (
            reference.lower_bound(NumStdDev::Three),
            reference.upper_bound(NumStdDev::Three),
        );
        assert!(
            lo <= one_pass && one_pass <= hi && (one_pass / 10_000.0 - 1.0).abs() < 4.0 * rse,
            "lgK {lg_k}: {one_pass}"
        );
        assert!(
            (merged / 2000.0 - 1.0).abs() < 4.0 * rse,
            "lgK {lg_k}: merged {merged}"
        );
    }
    // Strings and doubles too.
    let strs: Vec<Value> = (0..3000).map(|i| s(&format!("user-{i}"))).collect();
    assert!((f(&scalar(ApproxUniqueCount, &[], &strs)) / 3000.0 - 1.0).abs() < 0.26);
    let dbls: Vec<Value> = (0..3000).map(|i| d(i as f64 * 0.5)).collect();
    assert!((f(&scalar(ApproxUniqueCount, &[], &dbls)) / 3000.0 - 1.0).abs() < 0.26);
}

#[test]
fn approx_unique_count_exact_below_threshold_then_cpc() {
    use super::sketch::{ApproxUnique, EXACT_UNIQUE_MAX};
    use datasketches::common::NumStdDev;
    use datasketches::cpc::CpcSketch;
    use datasketches::hash::value::{canonical_float, raw_bytes};
    use Operation::ApproxUniqueCount;
    let max = EXACT_UNIQUE_MAX as i64;
    // Exact up to the threshold, whatever lgK (a CPC estimate could be off at lgK 4).
    for args in [vec![], vec![("lgK", "4")]] {
        let vals: Vec<Value> = (0..max).flat_map(|i| [l(i * 7919), l(i * 7919)]).collect();
        assert_eq!(scalar(ApproxUniqueCount, &args, &vals), l(max));
    }
    let strs: Vec<Value> = (0..40).map(|i| s(&format!("u{}", i % 20))).collect();
    assert_eq!(scalar(ApproxUniqueCount, &[], &strs), l(20));
    let dbls = [
        d(0.0),
        d(-0.0),
        d(f64::NAN),
        Value::Double(0x7ff0_0000_0000_0001),
        d(1.5),
    ];
    assert_eq!(
        scalar(ApproxUniqueCount, &[], &dbls),
        l(3),
        "-0 = 0, one NaN"
    );
    assert_eq!(scalar(ApproxUniqueCount, &[], &[s(""), s("a")]), l(1));

    // Above: the CPC sketch, bit-identical to one fed every input directly (and so within its
    // error bounds).
    for (lg_k, args) in [
        (8u8, vec![]),
        (4, vec![("lgK", "4")]),
        (11, vec![("lgK", "11")]),
    ] {
        let a = aggr(ApproxUniqueCount, &args, InputShape::Scalar, false);
        for n in [max + 1, max + 2, 100, 300, 5000] {
            let vals: Vec<Value> = (0..n).flat_map(|i| [l(i), l(i / 2)]).collect();
            let mut reference = CpcSketch::new(lg_k).unwrap();
            (0..n).for_each(|i| reference.update(i));
            let got = f(&scalar(ApproxUniqueCount, &args, &vals));
            assert_eq!(got, reference.estimate().trunc(), "lgK {lg_k}, n {n}");
            assert!(reference.lower_bound(NumStdDev::Three).floor() <= got);
            assert!(got <= reference.upper_bound(NumStdDev::Three).ceil());

            // Merging a later exact part (set + set overflowing, sketch + set) equals the
            // sequential update, bit for bit, across the switch; a later sketch part (set +
            // sketch, sketch + sketch) stays within the CPC error.
            let r = rows(&vals);
            let one_pass = run(&a, &r);
            let (lo, hi) = (
                reference.lower_bound(NumStdDev::Three).floor(),
                reference.upper_bound(NumStdDev::Three).ceil(),
            );
            let cuts = [
                1,
                30,
                max as usize - 3,
                max as usize,
                n as usize,
                r.len() - 40,
                r.len() - 1,
            ];
            for cut in cuts {
                let cut = cut.min(r.len());
                let later: std::collections::BTreeSet<&Value> = vals[cut..].iter().collect();
                let mut merged = run(&a, &r[..cut]);
                a.merge(&mut merged, &run(&a, &r[cut..]));
                if later.len() <= EXACT_UNIQUE_MAX {
                    assert_eq!(a.finalize(&merged), a.finalize(&one_pass), "cut {cut}");
                } else {
                    let m = f(&a.finalize(&merged));
                    assert!(lo <= m && m <= hi, "lgK {lg_k}, n {n}, cut {cut}: {m}");
                }
            }
            let mut rng = StdRng::seed_from_u64(n as u64);
            assert_eq!(pieces(&a, &r, &mut rng), a.finalize(&one_pass));
        }
    }

    // The switch itself, on the state: strings and doubles feed the sketch as DataSketches does.
    let mut st = ApproxUnique::new();
    let mut reference = CpcSketch::new(8).unwrap();
    for i in 0..max {
        st.update(8, &s(&format!("user-{i}")));
        reference.update(raw_bytes::from_str(&format!("user-{i}")));
    }
    assert!(st.is_exact());
    assert_eq!(st.estimate(), max);
    st.update(8, &s("user-0"));
    assert!(st.is_exact(), "a repeat does not switch");
    st.update(8, &d(-0.0));
    reference.update(canonical_float::from_f64(0.0));
    assert!(!st.is_exact());
    assert_eq!(st.estimate(), reference.estimate() as i64);

    // A sketch merged into a set: the sketch updated with the set's items; deterministic and
    // within the CPC error.
    let a = aggr(ApproxUniqueCount, &[], InputShape::Scalar, false);
    let small: Vec<Value> = (0..30).map(l).collect();
    let big: Vec<Value> = (20..2020).map(l).collect();
    let merge = || {
        let mut ir = run(&a, &rows(&small));
        a.merge(&mut ir, &run(&a, &rows(&big)));
        a.finalize(&ir)
    };
    let got = f(&merge());
    assert_eq!(merge(), l(got as i64));
    assert!((got / 2020.0 - 1.0).abs() < 4.0 * 1.04 / 16.0, "{got}");
    // Sketch + sketch (union) and merging into an empty IR.
    let mut ir = run(&a, &rows(&big));
    a.merge(
        &mut ir,
        &run(&a, &rows(&(1000..4000).map(l).collect::<Vec<_>>())),
    );
    assert!((f(&a.finalize(&ir)) / 4000.0 - 1.0).abs() < 4.0 * 1.04 / 16.0);
    let mut empty = None;
    a.merge(&mut empty, &run(&a, &rows(&small)));
    assert_eq!(a.finalize(&empty), l(30));
}

#[test]
fn approx_percentile_within_kll_rank_error() {
    use datasketches::kll::KllSketch;
    use Operation::ApproxPercentile;
    // Exact while small: the item at position floor(rank * n).
    let small = [l(4), l(1), l(3), l(2), Value::Null];
    let got = scalar(
        ApproxPercentile,
        &[("percentiles", "[0, 0.5, 0.25, 1.0]")],
        &small,
    );
    assert_eq!(got, list(&[d(1.0), d(3.0), d(2.0), d(4.0)]));
    assert_eq!(scalar(ApproxPercentile, &[], &[d(2.5)]), list(&[d(2.5)]));
    assert_eq!(
        scalar(ApproxPercentile, &[], &[d(f64::NAN)]),
        Value::Null,
        "NaN ignored, empty sketch → NULL"
    );
    let ranks = [0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99];
    let pct = "[0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99]";
    let n = 50_000usize;
    let mut rng = StdRng::seed_from_u64(42);
    let data: Vec<f64> = (0..n).map(|_| rng.random::<f64>() * 1000.0).collect();
    let mut sorted = data.clone();
    sorted.sort_by(f64::total_cmp);
    let vals: Vec<Value> = data.iter().map(|x| d(*x)).collect();
    for k in [128usize, 200] {
        let eps = KllSketch::<i64>::new(k as u16)
            .unwrap()
            .normalized_rank_error();
        let a = aggr(
            ApproxPercentile,
            &[("k", &k.to_string()), ("percentiles", pct)],
            InputShape::Scalar,
            false,
        );
        let r = rows(&vals);
        let mut rng = StdRng::seed_from_u64(k as u64);
        let mut merged = None;
        for chunk in r.chunks(n / 10) {
            let mut part = None;
            for (ts, v, _, w) in chunk {
                a.update(&mut part, *ts, v, None, *w);
            }
            a.merge(&mut merged, &part);
        }
        // One pass, ten merged chunks, and many small merged pieces (over the first 5000).
        let mut head = data[..5000].to_vec();
        head.sort_by(f64::total_cmp);
        let cases = [
            (result(&a, &r), &sorted),
            (a.finalize(&merged), &sorted),
            (pieces(&a, &r[..5000], &mut rng), &head),
        ];
        for (got, truth) in cases {
            let Value::List(qs) = got else { panic!() };
            assert_eq!(qs.len(), ranks.len());
            let m = truth.len() as f64;
            for (q, rank) in qs.iter().zip(ranks) {
                let q = f(q);
                let below = truth.partition_point(|x| ((*x as f32) as f64) < q) as f64 / m;
                let upto = truth.partition_point(|x| ((*x as f32) as f64) <= q) as f64 / m;
                assert!(
                    below - eps <= rank && rank <= upto + eps,
                    "k {k} rank {rank}: [{below}, {upto}] ± {eps}"
                );
            }
        }
    }
    // Integers are cast to float; lists explode.
    let lists = aggr(
        ApproxPercentile,
        &[("percentiles", "[0.5]")],
        InputShape::List,
        false,
    );
    assert_eq!(
        result(&lists, &rows(&[list(&[l(1), l(2)]), list(&[l(3)])])),
        list(&[d(2.0)])
    );
}

// ------------------------------------------------------------------------------------------
// Merge == sequential update, determinism

fn random_value(rng: &mut StdRng, kind: u8) -> Value {
    if rng.random_ratio(1, 10) {
        return Value::Null;
    }
    match kind {
        0 => l(rng.random_range(-20..20)),
        1 => d((rng.random::<f64>() - 0.3) * 100.0),
        _ => s(&format!("v{}", rng.random_range(0..12))),
    }
}

fn random_rows(
    rng: &mut StdRng,
    kind: u8,
    shape: InputShape,
    bucketed: bool,
    n: usize,
) -> Vec<Row> {
    (0..n)
        .map(|_| {
            let ts = rng.random_range(0..30);
            let v = match shape {
                InputShape::Scalar => random_value(rng, kind),
                InputShape::List => {
                    let len = rng.random_range(0..4);
                    Value::List((0..len).map(|_| random_value(rng, kind)).collect())
                }
                InputShape::Map => {
                    let mut m: Vec<(Value, Value)> = (0..rng.random_range(0..3))
                        .map(|_| {
                            (
                                s(["a", "b", "c"][rng.random_range(0..3)]),
                                random_value(rng, kind),
                            )
                        })
                        .collect();
                    m.sort_by(|a, b| a.0.cmp(&b.0));
                    m.dedup_by(|a, b| a.0 == b.0);
                    Value::Map(m)
                }
            };
            let bucket = bucketed.then(|| {
                if rng.random_ratio(1, 8) {
                    Value::Null
                } else {
                    s(["p", "q"][rng.random_range(0..2)])
                }
            });
            let w = if rng.random_ratio(1, 6) {
                -1
            } else {
                rng.random_range(1..3)
            };
            (ts, v, bucket, w)
        })
        .collect()
}

#[test]
fn merge_equals_sequential_update_for_every_operation() {
    use Operation::*;
    // (operation, argMap, value kinds, relative tolerance; 0 = exact)
    type Case<'a> = (Operation, &'a [(&'a str, &'a str)], &'a [u8], f64);
    let cases: &[Case] = &[
        (Count, &[], &[0, 1, 2], 0.0),
        (Sum, &[], &[0], 0.0),
        (Sum, &[], &[1], 1e-9),
        (Average, &[], &[0, 1], 1e-9),
        (Variance, &[], &[0, 1], 1e-9),
        (Skew, &[], &[0, 1], 1e-9),
        (Kurtosis, &[], &[0, 1], 1e-9),
        (Min, &[], &[0, 1, 2], 0.0),
        (Max, &[], &[0, 1, 2], 0.0),
        (First, &[], &[0, 2], 0.0),
        (Last, &[], &[0, 2], 0.0),
        (FirstK, &[("k", "4")], &[0, 2], 0.0),
        (LastK, &[("k", "4")], &[0, 2], 0.0),
        (TopK, &[("k", "3")], &[0, 1, 2], 0.0),
        (BottomK, &[("k", "5")], &[0, 1, 2], 0.0),
        (UniqueCount, &[], &[0, 1, 2], 0.0),
        (BoundedUniqueCount, &[("k", "5")], &[0, 2], 0.0),
        (Histogram, &[], &[2], 0.0),
        (Histogram, &[("k", "3")], &[2], 0.0),
        (ApproxHistogramK, &[("k", "16")], &[0, 2], 0.0),
        (
            ApproxPercentile,
            &[("percentiles", "[0.1, 0.5, 0.9]")],
            &[0, 1],
            0.0,
        ),
        (ApproxUniqueCount, &[], &[0, 2], 0.0),
    ];
    let mut rng = StdRng::seed_from_u64(2024);
    for (op, args, kinds, tol) in cases {
        for &kind in *kinds {
            for shape in [InputShape::Scalar, InputShape::List, InputShape::Map] {
                for bucketed in [false, true] {
                    if bucketed && shape == InputShape::Map {
                        continue;
                    }
                    let a = aggr(*op, args, shape, bucketed);
                    for trial in 0..6 {
                        let r = random_rows(&mut rng, kind, shape, bucketed, 20 + trial * 7);
                        let seq = result(&a, &r);
                        let merged = pieces(&a, &r, &mut rng);
                        let ok = if *tol == 0.0 {
                            seq == merged
                        } else {
                            close(&seq, &merged, *tol)
                        };
                        assert!(ok, "{op:?} kind {kind} {shape:?} bucketed {bucketed}:\n seq    {seq:?}\n merged {merged:?}\n rows {r:?}");
                        // Same inputs, same order → bit-identical.
                        assert_eq!(seq, result(&a, &r));
                    }
                }
            }
        }
    }
}

#[test]
fn sketches_are_deterministic() {
    use Operation::*;
    let mut rng = StdRng::seed_from_u64(5);
    let vals: Vec<Value> = (0..20_000).map(|_| d(rng.random::<f64>())).collect();
    let r = rows(&vals);
    for (op, args) in [
        (ApproxPercentile, vec![("percentiles", "[0.2, 0.5, 0.8]")]),
        (ApproxUniqueCount, vec![]),
        (ApproxHistogramK, vec![]),
    ] {
        let a = aggr(op, &args, InputShape::Scalar, false);
        let first = result(&a, &r);
        let second = std::thread::spawn({
            let (a, r) = (a.clone(), r.clone());
            move || result(&a, &r)
        })
        .join()
        .unwrap();
        assert_eq!(first, second, "{op:?}");
        let mut x = run(&a, &r[..7000]);
        a.merge(&mut x, &run(&a, &r[7000..]));
        let mut y = run(&a, &r[..7000]);
        a.merge(&mut y, &run(&a, &r[7000..]));
        assert_eq!(a.finalize(&x), a.finalize(&y), "{op:?}");
    }
}

// ------------------------------------------------------------------------------------------
// argMap, output types, Arrow conversions

#[test]
fn arg_map_defaults_and_errors() {
    use Operation::*;
    assert_eq!(spec(ApproxUniqueCount, &[]).k, Some(8));
    assert_eq!(spec(ApproxPercentile, &[]).k, Some(128));
    assert_eq!(spec(ApproxPercentile, &[]).percentiles, vec![0.5]);
    assert_eq!(
        spec(ApproxPercentile, &[("percentiles", "[0.1, \"0.9\"]")]).percentiles,
        vec![0.1, 0.9]
    );
    assert_eq!(spec(ApproxHistogramK, &[]).k, Some(8));
    assert_eq!(spec(Histogram, &[]).k, Some(0));
    assert_eq!(spec(BoundedUniqueCount, &[]).k, Some(8));
    assert_eq!(spec(LastK, &[("k", " 5 ")]).k, Some(5));
    assert_eq!(
        spec(Sum, &[("k", "junk")]).k,
        None,
        "unrelated keys are ignored"
    );
    let err = |op, args: &[(&str, &str)]| AggSpec::new(&agg_of(op, args)).unwrap_err();
    assert!(
        err(LastK, &[]).contains("argMap `k`"),
        "{}",
        err(LastK, &[])
    );
    assert!(err(TopK, &[("k", "abc")]).contains("not an integer"));
    assert!(err(FirstK, &[("k", "0")]).contains("must be in"));
    for bad in ["0.5", "[1.5]", "[\"x\"]", "nope"] {
        let e = err(ApproxPercentile, &[("percentiles", bad)]);
        assert!(
            e.contains("`percentiles`") && e.contains("JSON list"),
            "{e}"
        );
    }
    assert!(err(ApproxUniqueCount, &[("k", "40")]).contains("lgK"));
    assert!(spec(Count, &[]).deletable() && spec(Histogram, &[]).deletable());
    assert!(!spec(Variance, &[]).deletable() && !spec(ApproxPercentile, &[]).deletable());
}

#[test]
fn output_types_per_operation() {
    use DataType::*;
    use Operation::*;
    let out = |op, args: &[(&str, &str)], t: &DataType| spec(op, args).output_type(t);
    let k3: &[(&str, &str)] = &[("k", "3")];
    assert_eq!(out(Sum, &[], &Int32), Ok(Int64));
    assert_eq!(out(Sum, &[], &Boolean), Ok(Int64));
    assert_eq!(out(Sum, &[], &Float32), Ok(Float64));
    assert_eq!(out(Average, &[], &Int16), Ok(Float64));
    assert_eq!(out(Min, &[], &Int32), Ok(Int64));
    assert_eq!(out(Max, &[], &Float32), Ok(Float64));
    assert_eq!(out(Max, &[], &LargeUtf8), Ok(Utf8));
    assert_eq!(out(Count, &[], &Binary), Ok(Int64));
    assert_eq!(out(Last, &[], &list_type(Int32)), Ok(list_type(Int64)));
    assert_eq!(out(LastK, k3, &Utf8), Ok(list_type(Utf8)));
    assert_eq!(
        out(FirstK, k3, &list_type(Int64)),
        Ok(list_type(list_type(Int64))),
        "lists not exploded"
    );
    assert_eq!(out(TopK, k3, &Float64), Ok(list_type(Float64)));
    assert_eq!(out(ApproxPercentile, &[], &Int64), Ok(list_type(Float32)));
    assert_eq!(out(Histogram, &[], &Utf8), Ok(map_type(Int32)));
    assert_eq!(out(ApproxHistogramK, &[], &Int64), Ok(map_type(Int64)));
    for op in [UniqueCount, ApproxUniqueCount, BoundedUniqueCount] {
        assert_eq!(out(op, &[], &Binary), Ok(Int64));
    }
    // List explode and map inputs.
    assert_eq!(out(Average, &[], &list_type(Int32)), Ok(Float64));
    assert_eq!(out(TopK, k3, &list_type(Int32)), Ok(list_type(Int64)));
    assert_eq!(
        out(Count, &[], &list_type(list_type(Int32))),
        Ok(Int64),
        "list of lists: counted as values"
    );
    assert_eq!(out(Sum, &[], &map_type(Float32)), Ok(map_type(Float64)));
    assert_eq!(
        out(Histogram, &[], &map_type(Utf8)),
        Ok(map_type(map_type(Int32)))
    );
    // Rejections.
    for t in [Date32, Timestamp(TimeUnit::Millisecond, None)] {
        for op in [Sum, Count, Last, Max] {
            let e = out(op, &[], &t).unwrap_err();
            assert!(e.contains("should not be aggregated over"), "{e}");
        }
    }
    assert!(out(Sum, &[], &Utf8)
        .unwrap_err()
        .contains("SUM does not accept"));
    assert!(out(Average, &[], &Boolean).is_err());
    assert!(out(Histogram, &[], &Int64).is_err());
    assert!(out(Min, &[], &Binary).is_err());
    assert!(out(ApproxPercentile, &[], &Utf8).is_err());
    assert!(out(Sum, &[], &list_type(Utf8)).is_err());
    let shape = InputShape::of;
    assert_eq!(shape(&list_type(Int32)), InputShape::List);
    assert_eq!(shape(&list_type(list_type(Int32))), InputShape::Scalar);
    assert_eq!(shape(&map_type(Int64)), InputShape::Map);
    assert_eq!(shape(&Utf8), InputShape::Scalar);
}

fn roundtrip(array: ArrayRef) {
    let values = column_values(&array).unwrap();
    assert_eq!(values.len(), array.len());
    let back = to_array(array.data_type(), &values).unwrap();
    assert_eq!(&back, &array, "{}", array.data_type());
}

#[test]
fn arrow_round_trips_and_conversions() {
    roundtrip(Arc::new(Int64Array::from(vec![Some(1), None, Some(-7)])));
    roundtrip(Arc::new(Int32Array::from(vec![
        Some(1),
        None,
        Some(i32::MIN),
    ])));
    roundtrip(Arc::new(Float64Array::from(vec![
        Some(1.5),
        None,
        Some(-0.0),
    ])));
    roundtrip(Arc::new(Float32Array::from(vec![
        Some(0.1f32),
        None,
        Some(3.0),
    ])));
    roundtrip(Arc::new(BooleanArray::from(vec![
        Some(true),
        None,
        Some(false),
    ])));
    roundtrip(Arc::new(StringArray::from(vec![Some("a"), None, Some("")])));
    roundtrip(Arc::new(BinaryArray::from(vec![
        Some(&b"ab"[..]),
        None,
        Some(&b""[..]),
    ])));
    let lists = ListArray::from_iter_primitive::<Int64Type, _, _>(vec![
        Some(vec![Some(1), None, Some(3)]),
        None,
        Some(vec![]),
    ]);
    roundtrip(Arc::new(lists));
    let mut mb = MapBuilder::new(None, StringBuilder::new(), Int64Builder::new());
    mb.keys().append_value("a");
    mb.values().append_value(1);
    mb.keys().append_value("b");
    mb.values().append_null();
    mb.append(true).unwrap();
    mb.append(false).unwrap();
    mb.append(true).unwrap();
    let map_array: ArrayRef = Arc::new(mb.finish());
    roundtrip(map_array.clone());
    assert_eq!(
        column_values(&map_array).unwrap(),
        vec![
            Value::Map(vec![(s("a"), l(1)), (s("b"), Value::Null)]),
            Value::Null,
            Value::Map(vec![])
        ]
    );
    // Our own list / map types round trip, nested.
    let nested = list_type(map_type(list_type(Utf8Type())));
    let v = vec![
        list(&[map(&[("k", list(&[s("x"), Value::Null]))]), Value::Null]),
        Value::Null,
    ];
    assert_eq!(column_values(&to_array(&nested, &v).unwrap()).unwrap(), v);
    // Conversions to canonical values.
    let small: ArrayRef = Arc::new(Int16Array::from(vec![Some(3i16), None]));
    assert_eq!(column_values(&small).unwrap(), vec![l(3), Value::Null]);
    let days: ArrayRef = Arc::new(Date32Array::from(vec![19000]));
    assert_eq!(column_values(&days).unwrap(), vec![l(19000)]);
    let ts: ArrayRef =
        Arc::new(TimestampMillisecondArray::from(vec![1_700_000_000_123i64]).with_timezone("UTC"));
    assert_eq!(column_values(&ts).unwrap(), vec![l(1_700_000_000_123)]);
    let large: ArrayRef = Arc::new(LargeStringArray::from(vec!["z"]));
    assert_eq!(column_values(&large).unwrap(), vec![s("z")]);
    let f32s: ArrayRef = Arc::new(Float32Array::from(vec![0.1f32]));
    assert_eq!(column_values(&f32s).unwrap(), vec![d(0.1f32 as f64)]);
    // Errors.
    let structs: ArrayRef = Arc::new(arrow::array::StructArray::from(vec![(
        Arc::new(Field::new("a", DataType::Int64, true)),
        Arc::new(Int64Array::from(vec![1])) as ArrayRef,
    )]));
    assert!(column_values(&structs)
        .unwrap_err()
        .to_string()
        .contains("Struct"));
    assert!(to_array(&DataType::Int64, &[s("x")]).is_err());
    assert!(to_array(&DataType::Int32, &[l(1 << 40)]).is_err());
    assert!(to_array(&DataType::Date32, &[l(1)]).is_err());
    assert_eq!(to_array(&DataType::Float64, &[l(2)]).unwrap().len(), 1);
    // Finalized outputs fit their declared output types.
    let a = aggr(Operation::Histogram, &[], InputShape::Scalar, true);
    let v = result(&a, &[(0, s("a"), Some(s("u")), 1)]);
    let t = map_type(
        spec(Operation::Histogram, &[])
            .output_type(&DataType::Utf8)
            .unwrap(),
    );
    assert_eq!(to_array(&t, &[v, Value::Null]).unwrap().null_count(), 1);
}

#[allow(non_snake_case)]
fn Utf8Type() -> DataType {
    DataType::Utf8
}

#[test]
fn java_key_strings() {
    assert_eq!(d(1.0).key_string().as_ref(), "1.0");
    assert_eq!(d(0.001).key_string().as_ref(), "0.001");
    assert_eq!(d(1e-4).key_string().as_ref(), "1.0E-4");
    assert_eq!(d(12345678.9).key_string().as_ref(), "1.23456789E7");
    assert_eq!(d(-2.5).key_string().as_ref(), "-2.5");
    assert_eq!(l(-3).key_string().as_ref(), "-3");
    assert_eq!(Value::Bool(true).key_string().as_ref(), "true");
}
