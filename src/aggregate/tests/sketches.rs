//! The sketch-based operations: exact below their thresholds, within their error bounds above.

use super::*;

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
