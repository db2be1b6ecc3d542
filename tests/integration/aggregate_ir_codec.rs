//! IR serialization (`Ir::encode` / `Ir::decode`, `Aggregator::decode_ir`): for every one of the
//! 20 operations, with argMap variants, list and map inputs and buckets, random IRs built by
//! updates round-trip exactly: the decoded IR finalizes bit for bit as the original, and merging
//! it (either side) or updating it further gives the same IR (same encoding) and output as doing
//! so with the original. Truncated and corrupted encodings give errors or valid IRs, never a
//! panic; IRs of another aggregator are refused.

use std::collections::BTreeSet;
use std::panic::{catch_unwind, AssertUnwindSafe};

use indexmap::IndexMap;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use weft::aggregate::{AggSpec, Aggregator, InputShape, Ir, Value};
use weft::config::{Aggregation, Operation};

fn aggregator(
    op: Operation,
    args: &[(&str, &str)],
    shape: InputShape,
    bucketed: bool,
) -> Aggregator {
    let agg = Aggregation {
        input_column: "x".into(),
        operation: op,
        arg_map: args
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<IndexMap<_, _>>(),
        windows: None,
        buckets: vec![],
        element_wise: None,
    };
    Aggregator::new(AggSpec::new(&agg).unwrap(), shape, bucketed)
}

/// One input row: (ts, value, bucket, weight).
type Row = (i64, Value, Option<Value>, i64);

/// What the random values are: numbers (long/double with NaN, ±0, ±Inf), strings, booleans,
/// bytes, or nested lists and maps (for the operations that take any value).
#[derive(Clone, Copy, Debug)]
enum Kind {
    Long,
    Double,
    Str,
    Bool,
    Bytes,
    Nested,
}

/// A value of `kind` among about `distinct` values (NULL one time in twelve).
fn value(rng: &mut StdRng, kind: Kind, distinct: i64) -> Value {
    if rng.random_ratio(1, 12) {
        return Value::Null;
    }
    let i = rng.random_range(0..distinct.max(1));
    match kind {
        Kind::Long => Value::Long(if rng.random_ratio(1, 20) {
            i64::MAX - i
        } else {
            i - distinct / 3
        }),
        Kind::Double => match rng.random_range(0..40) {
            0 => Value::double(f64::NAN),
            1 => Value::double(-0.0),
            2 => Value::double(f64::INFINITY),
            3 => Value::double(f64::NEG_INFINITY),
            _ => Value::double(
                (i as f64 - distinct as f64 / 3.0) * 1.37 + rng.random::<f64>() * 1e-3,
            ),
        },
        Kind::Str => Value::str(&format!("s{i}")),
        Kind::Bool => Value::Bool(i % 2 == 0),
        Kind::Bytes => Value::Bytes(if i == 0 {
            vec![].into()
        } else {
            i.to_le_bytes()[..(i % 5 + 1) as usize].into()
        }),
        Kind::Nested => {
            if i % 2 == 0 {
                Value::List(vec![Value::Long(i), Value::Null, Value::str("x")])
            } else {
                Value::Map(vec![
                    (Value::str("k"), Value::Long(i)),
                    (Value::str("z"), Value::List(vec![])),
                ])
            }
        }
    }
}

fn rows(
    rng: &mut StdRng,
    kind: Kind,
    distinct: i64,
    shape: InputShape,
    bucketed: bool,
    n: usize,
) -> Vec<Row> {
    (0..n)
        .map(|_| {
            let ts = rng.random_range(0..40);
            let v = match shape {
                InputShape::Scalar => value(rng, kind, distinct),
                InputShape::List => {
                    let len = rng.random_range(0..4);
                    Value::List((0..len).map(|_| value(rng, kind, distinct)).collect())
                }
                InputShape::Map => {
                    let mut m: Vec<(Value, Value)> = (0..rng.random_range(0..4))
                        .map(|_| {
                            (
                                Value::str(["a", "b", "c", "d"][rng.random_range(0..4)]),
                                value(rng, kind, distinct),
                            )
                        })
                        .collect();
                    m.sort_by(|a, b| a.0.cmp(&b.0));
                    m.dedup_by(|a, b| a.0 == b.0);
                    Value::Map(m)
                }
            };
            let bucket = bucketed.then(|| match rng.random_range(0..10) {
                0 => Value::Null,
                1..=5 => Value::str("p"),
                6..=8 => Value::Long(7),
                _ => Value::double(2.5),
            });
            let w = match rng.random_range(0..20) {
                0..=2 => -1,
                3 => 100,
                4..=6 => rng.random_range(2..4),
                _ => 1,
            };
            (ts, v, bucket, w)
        })
        .collect()
}

fn run(a: &Aggregator, ir: &mut Option<Ir>, rows: &[Row]) {
    for (ts, v, b, w) in rows {
        a.update(ir, *ts, v, b.as_ref(), *w);
    }
}

fn built(a: &Aggregator, rows: &[Row]) -> Option<Ir> {
    let mut ir = None;
    run(a, &mut ir, rows);
    ir
}

fn encoding(ir: &Option<Ir>) -> Option<Vec<u8>> {
    ir.as_ref().map(|ir| {
        let mut buf = Vec::new();
        ir.encode(&mut buf);
        buf
    })
}

/// (operation, argMap, value kinds, distinct values, rows per IR).
type Case = (
    Operation,
    &'static [(&'static str, &'static str)],
    &'static [Kind],
    i64,
    usize,
);

fn cases() -> Vec<Case> {
    use Kind::*;
    use Operation::*;
    vec![
        (Count, &[], &[Long, Str, Nested], 30, 30),
        (Sum, &[], &[Long, Bool], 30, 30),
        (Sum, &[], &[Double], 30, 30),
        (Average, &[], &[Long, Double], 30, 30),
        (Variance, &[], &[Long, Double], 30, 30),
        (Skew, &[], &[Double], 30, 30),
        (Kurtosis, &[], &[Long, Double], 30, 30),
        (Min, &[], &[Long, Double, Str], 30, 30),
        (Max, &[], &[Long, Double, Str], 30, 30),
        (First, &[], &[Long, Nested], 30, 30),
        (Last, &[], &[Str, Nested], 30, 30),
        (FirstK, &[("k", "4")], &[Long, Nested], 30, 30),
        (LastK, &[("k", "3")], &[Str, Nested], 30, 30),
        (TopK, &[("k", "3")], &[Long, Double, Str], 30, 30),
        (BottomK, &[("k", "5")], &[Long, Str], 30, 30),
        (
            UniqueCount,
            &[],
            &[Long, Double, Str, Bytes, Nested],
            30,
            30,
        ),
        (BoundedUniqueCount, &[("k", "5")], &[Long, Str], 30, 30),
        (Histogram, &[], &[Str], 12, 30),
        (Histogram, &[("k", "3")], &[Str], 12, 30),
        // Exact below k, the frequent-items sketch past it (with purges at k = 2).
        (ApproxHistogramK, &[("k", "2")], &[Long, Str], 40, 60),
        (
            ApproxHistogramK,
            &[("k", "5")],
            &[Long, Double, Str],
            200,
            90,
        ),
        // Exact up to 64 distinct values, CPC past them (sparse, hybrid, pinned, sliding).
        (
            ApproxUniqueCount,
            &[("k", "4")],
            &[Long, Str, Bytes, Nested],
            400,
            70,
        ),
        (ApproxUniqueCount, &[], &[Long, Double, Str], 2000, 150),
        (
            ApproxPercentile,
            &[("k", "8"), ("percentiles", "[0, 0.25, 0.5, 0.99, 1]")],
            &[Long, Double],
            500,
            120,
        ),
        (ApproxPercentile, &[], &[Double], 500, 60),
    ]
}

const SHAPES: [(InputShape, bool); 6] = [
    (InputShape::Scalar, false),
    (InputShape::Scalar, true),
    (InputShape::List, false),
    (InputShape::List, true),
    (InputShape::Map, false),
    (InputShape::Map, true),
];

/// The richest encoding of one (case, value kind, shape), with what builds more rows for it.
struct Sample {
    a: Aggregator,
    kind: Kind,
    distinct: i64,
    shape: InputShape,
    bucketed: bool,
    bytes: Vec<u8>,
}

/// Builds `trials` random IRs per (case, value kind, shape), checks their round trips (see the
/// module doc) and returns how many were checked, the node tags seen in their encodings and
/// the richest encoding of each.
fn round_trip_all(trials: usize) -> (usize, BTreeSet<u8>, Vec<Sample>) {
    let mut rng = StdRng::seed_from_u64(20260301);
    let (mut checked, mut tags, mut samples) = (0, BTreeSet::new(), Vec::new());
    for (op, args, kinds, distinct, n) in cases() {
        for &kind in kinds {
            for (shape, bucketed) in SHAPES {
                let a = aggregator(op, args, shape, bucketed);
                let mut richest: Option<Vec<u8>> = None;
                for trial in 0..trials {
                    let len = |rng: &mut StdRng| rng.random_range(0..=n * (1 + trial % 3));
                    let (la, lb, lc) = (len(&mut rng), len(&mut rng), len(&mut rng));
                    let ra = rows(&mut rng, kind, distinct, shape, bucketed, la);
                    let rb = rows(&mut rng, kind, distinct, shape, bucketed, lb);
                    let rc = rows(&mut rng, kind, distinct, shape, bucketed, lc);
                    let what = format!(
                        "{op:?} {args:?} {kind:?} {shape:?} bucketed={bucketed} trial {trial}"
                    );
                    let original = built(&a, &ra);
                    let Some(bytes) = encoding(&original) else {
                        continue;
                    };
                    let decoded = Some(
                        a.decode_ir(&bytes)
                            .unwrap_or_else(|e| panic!("{what}: {e}")),
                    );
                    let plain = Some(Ir::decode(&bytes).unwrap_or_else(|e| panic!("{what}: {e}")));
                    // The encoding is canonical.
                    assert_eq!(
                        encoding(&decoded).as_ref(),
                        Some(&bytes),
                        "{what}: re-encoding"
                    );
                    assert_eq!(
                        encoding(&plain).as_ref(),
                        Some(&bytes),
                        "{what}: re-encoding"
                    );
                    // (1) Same output, bit for bit (doubles compare by their bits).
                    assert_eq!(
                        a.finalize(&decoded),
                        a.finalize(&original),
                        "{what}: finalize"
                    );
                    // (2) Merging another partial into it, or it into another partial.
                    let other = built(&a, &rb);
                    let (mut x, mut y) = (original.clone(), decoded.clone());
                    a.merge(&mut x, &other);
                    a.merge(&mut y, &other);
                    assert_eq!(encoding(&x), encoding(&y), "{what}: merge into");
                    assert_eq!(a.finalize(&x), a.finalize(&y), "{what}: merge into");
                    let (mut x, mut y) = (other.clone(), other.clone());
                    a.merge(&mut x, &original);
                    a.merge(&mut y, &decoded);
                    assert_eq!(encoding(&x), encoding(&y), "{what}: merge from");
                    assert_eq!(a.finalize(&x), a.finalize(&y), "{what}: merge from");
                    // (3) Further updates, then a merge of the result with itself.
                    let (mut x, mut y) = (original.clone(), decoded.clone());
                    run(&a, &mut x, &rc);
                    run(&a, &mut y, &rc);
                    assert_eq!(encoding(&x), encoding(&y), "{what}: updates");
                    assert_eq!(a.finalize(&x), a.finalize(&y), "{what}: updates");
                    let (x2, y2) = (x.clone(), y.clone());
                    a.merge(&mut x, &x2);
                    a.merge(&mut y, &y2);
                    assert_eq!(encoding(&x), encoding(&y), "{what}: self merge");
                    assert_eq!(a.finalize(&x), a.finalize(&y), "{what}: self merge");
                    checked += 1;
                    tags.extend(node_tags(&bytes));
                    if richest.as_ref().is_none_or(|r| r.len() < bytes.len()) {
                        richest = Some(bytes);
                    }
                }
                if let Some(bytes) = richest {
                    samples.push(Sample {
                        a,
                        kind,
                        distinct,
                        shape,
                        bucketed,
                        bytes,
                    });
                }
            }
        }
    }
    (checked, tags, samples)
}

/// The node tags of an encoding along its first entries (test-only: keyed nodes here have fewer
/// than 128 entries and keys shorter than 128 bytes, so counts and lengths are one byte).
fn node_tags(bytes: &[u8]) -> Vec<u8> {
    let mut tags = Vec::new();
    let mut at = 1;
    while let Some(&tag) = bytes.get(at) {
        tags.push(tag);
        if tag != 0 || bytes.get(at + 1) == Some(&0) {
            break;
        }
        at += 3 + bytes.get(at + 2).copied().unwrap_or(0) as usize;
    }
    tags
}

#[test]
fn random_irs_of_every_operation_round_trip_exactly() {
    let ops: BTreeSet<String> = cases().iter().map(|c| format!("{:?}", c.0)).collect();
    assert_eq!(ops.len(), 20, "all 20 operations");
    let (checked, tags, _) = round_trip_all(10);
    assert!(checked > 2000, "{checked} IRs checked");
    // Keyed nodes (0) and every per-operation state (1..=20), the sketches' exact and sketch
    // forms included, were reached.
    assert_eq!(tags, (0..=20).collect::<BTreeSet<u8>>());
}

/// Corruption: truncations are errors that say so; random byte replacements, bit flips
/// and multi-byte damage give an error or an IR that then finalizes, re-encodes, updates and
/// merges without panicking.
#[test]
fn truncated_and_corrupted_encodings_never_panic() {
    let (_, _, samples) = round_trip_all(3);
    let mut rng = StdRng::seed_from_u64(99);
    let (mut rejected, mut accepted) = (0, 0);
    for Sample {
        a,
        kind,
        distinct,
        shape,
        bucketed,
        bytes,
    } in &samples
    {
        // Every cut of small encodings; of large ones (sketches under map keys), the first and
        // last 64 and 200 more (each cut decodes what precedes it: all cuts would be quadratic).
        let n = bytes.len();
        let mut cuts: Vec<usize> = if n <= 400 {
            (0..n).collect()
        } else {
            (0..64).chain(n - 64..n).collect()
        };
        if n > 400 {
            cuts.extend((0..200).map(|_| rng.random_range(64..n - 64)));
        }
        for cut in cuts {
            let e = a.decode_ir(&bytes[..cut]).unwrap_err();
            assert!(e.starts_with("truncated"), "{e}");
            assert!(Ir::decode(&bytes[..cut]).is_err());
        }
        let mut extended = bytes.clone();
        extended.push(0);
        let e = a.decode_ir(&extended).unwrap_err();
        assert!(e.ends_with(": 1 bytes after the IR"), "{e}");

        let more = rows(&mut rng, *kind, *distinct, *shape, *bucketed, 20);
        for _ in 0..60 {
            let mut bad = bytes.clone();
            match rng.random_range(0..3) {
                0 => {
                    let i = rng.random_range(0..bad.len());
                    bad[i] = rng.random();
                }
                1 => {
                    let i = rng.random_range(0..bad.len());
                    bad[i] ^= 1 << rng.random_range(0..8);
                }
                _ => {
                    for _ in 0..rng.random_range(2..5) {
                        let i = rng.random_range(0..bad.len());
                        bad[i] = rng.random();
                    }
                }
            }
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                let plain = Ir::decode(&bad);
                match a.decode_ir(&bad) {
                    Err(e) => {
                        assert!(e.contains("IR"), "{e}");
                        false
                    }
                    Ok(ir) => {
                        assert!(plain.is_ok());
                        let ir = Some(ir);
                        a.finalize(&ir);
                        let again = encoding(&ir).unwrap();
                        assert_eq!(encoding(&Some(a.decode_ir(&again).unwrap())), Some(again));
                        let mut x = ir.clone();
                        run(a, &mut x, &more);
                        a.merge(&mut x, &ir);
                        let mut y = built(a, &more);
                        a.merge(&mut y, &ir);
                        a.finalize(&x);
                        a.finalize(&y);
                        true
                    }
                }
            }));
            match outcome {
                Ok(true) => accepted += 1,
                Ok(false) => rejected += 1,
                Err(_) => panic!(
                    "{:?} {shape:?}: panicked on corrupted bytes {bad:?} (from {bytes:?})",
                    a.spec()
                ),
            }
        }
    }
    assert!(
        rejected > 1000 && accepted > 1000,
        "{rejected} rejected, {accepted} accepted"
    );
}

#[test]
fn irs_of_another_aggregator_are_refused_with_the_reason() {
    use Operation::*;
    let ir_of = |a: &Aggregator, rows: &[Row]| encoding(&built(a, rows)).unwrap();
    let longs: Vec<Row> = (0..100)
        .map(|i| (i, Value::Long(i * 31 % 1000), Some(Value::str("b")), 1))
        .collect();
    let scalar = |op, args: &[(&str, &str)]| aggregator(op, args, InputShape::Scalar, false);

    let count = ir_of(&scalar(Count, &[]), &longs);
    let e = scalar(Sum, &[]).decode_ir(&count).unwrap_err();
    assert_eq!(e, "SUM IR does not fit the aggregator: holds a COUNT state");
    assert!(Ir::decode(&count).is_ok());

    let bucketed = ir_of(&aggregator(Count, &[], InputShape::Scalar, true), &longs);
    let e = scalar(Count, &[]).decode_ir(&bucketed).unwrap_err();
    assert!(e.contains("found keyed IRs"), "{e}");
    let e = aggregator(Count, &[], InputShape::Scalar, true)
        .decode_ir(&count)
        .unwrap_err();
    assert!(e.contains("bucketed aggregator"), "{e}");

    let last4 = ir_of(&scalar(LastK, &[("k", "4")]), &longs);
    let e = scalar(LastK, &[("k", "3")]).decode_ir(&last4).unwrap_err();
    assert!(e.contains("4 values, more than k = 3"), "{e}");
    let e = scalar(FirstK, &[("k", "4")]).decode_ir(&last4).unwrap_err();
    assert!(e.contains("out of time order"), "{e}");

    let cpc = ir_of(&scalar(ApproxUniqueCount, &[("k", "10")]), &longs);
    let e = scalar(ApproxUniqueCount, &[("k", "11")])
        .decode_ir(&cpc)
        .unwrap_err();
    assert!(
        e.contains("CPC sketch with lgK 10, the aggregator's is 11"),
        "{e}"
    );

    let freq = ir_of(&scalar(ApproxHistogramK, &[("k", "4")]), &longs);
    let e = scalar(ApproxHistogramK, &[("k", "64")])
        .decode_ir(&freq)
        .unwrap_err();
    assert!(e.contains("map size 2^4, the aggregator's is 2^8"), "{e}");

    let kll = ir_of(&scalar(ApproxPercentile, &[("k", "8")]), &longs);
    let e = scalar(ApproxPercentile, &[]).decode_ir(&kll).unwrap_err();
    assert!(e.contains("KLL k 8, the aggregator's is 128"), "{e}");
}

#[test]
fn format_is_compact_versioned_and_errors_are_clear() {
    use Operation::*;
    let a = aggregator(Count, &[], InputShape::Scalar, false);
    let mut ir = None;
    a.update(&mut ir, 0, &Value::Long(1), None, 5);
    // Version 1, COUNT tag 1, zigzag varint 10 (= 5).
    assert_eq!(encoding(&ir).unwrap(), vec![1, 1, 10]);

    let b = aggregator(Sum, &[], InputShape::Scalar, true);
    let mut ir = None;
    b.update(&mut ir, 0, &Value::Long(-2), Some(&Value::str("p")), 1);
    // Keyed tag 0, 1 entry, key "p", then a long SUM (tag 2) of -2 (zigzag 3).
    assert_eq!(encoding(&ir).unwrap(), vec![1, 0, 1, 1, b'p', 2, 3]);

    let e = Ir::decode(&[]).unwrap_err();
    assert!(
        e.contains("truncated IR at byte 0: the format version"),
        "{e}"
    );
    let e = Ir::decode(&[2, 1, 10]).unwrap_err();
    assert!(
        e.contains("version 2 is not supported (this build reads version 1)"),
        "{e}"
    );
    let e = Ir::decode(&[1, 99]).unwrap_err();
    assert_eq!(e, "corrupt IR at byte 1: unknown node tag 99");
    let e = Ir::decode(&[1, 0, 2, 1, b'q', 1, 2, 1, b'p', 1, 2]).unwrap_err();
    assert!(e.contains("key \"p\" out of order or repeated"), "{e}");
    let e = Ir::decode(&[1, 0, 1, 1, b'p', 0, 1, 1, b'q', 0, 0]).unwrap_err();
    assert!(e.contains("nested deeper than 2 levels"), "{e}");
    let e = Ir::decode(&[1, 5, 1]).unwrap_err();
    assert!(e.contains("negative VARIANCE count -1"), "{e}");
    let e = Ir::decode(&[1, 0, 0xff, 0xff, 0xff, 0xff, 0x0f]).unwrap_err();
    assert!(e.contains("cannot fit in the 0 bytes left"), "{e}");
    let e = Ir::decode(&[1, 7, 0]).unwrap_err();
    assert!(e.contains("a MIN is NULL"), "{e}");
}
