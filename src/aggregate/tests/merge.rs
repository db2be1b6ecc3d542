//! Merge == sequential update for every operation; sketches are deterministic.

use super::*;

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
