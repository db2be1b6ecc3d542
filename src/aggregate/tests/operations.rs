//! One small, exact test per operation.

use super::*;

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
