//! Unit tests of `sketch_codec`: each sketch's encoding round-trips to a state that updates,
//! merges (both ways) and estimates as the original, including the frequent-items hash-map
//! layout that a plain `datasketches` round trip loses; broken KLL invariants and sketch sizes
//! other than the aggregator's are refused.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use datasketches::frequencies::FrequentItemsSketch;

use super::sketch::{sketch_size, ApproxHist, ApproxUnique, Kll};
use super::sketch_codec::*;
use super::value::Value;
use super::wire::{Expect, Reader};

fn reader(bytes: &[u8]) -> Reader<'_> {
    Reader::new(bytes, Expect::default())
}

fn freq_round_trip(s: &FrequentItemsSketch<Value>) -> FrequentItemsSketch<Value> {
    let mut buf = Vec::new();
    put_frequent_items(s, &mut buf);
    let mut r = reader(&buf);
    let d = get_frequent_items(&mut r).unwrap();
    assert_eq!(r.left(), 0);
    d
}

/// A skewed stream of `n` values over `distinct` values.
fn stream(rng: &mut StdRng, n: usize, distinct: i64) -> Vec<(Value, u64)> {
    (0..n)
        .map(|_| {
            let x = rng.random_range(0..distinct);
            let v = if x % 3 == 0 {
                Value::str(&format!("s{}", x % 97))
            } else {
                Value::Long(x * x % distinct)
            };
            (v, rng.random_range(1..4))
        })
        .collect()
}

/// Frequent-items sketches round trip with their layout: re-serializing, further updates
/// (with purges) and merges in both directions give identical images. Without the rotation,
/// some of these sketches (those with a cluster wrapping around the table's end) rebuild
/// with another layout, which this test also checks, so that the rotation is exercised.
#[test]
fn frequent_items_round_trip_keeps_the_hash_map_layout() {
    let mut rng = StdRng::seed_from_u64(11);
    let (mut naive_differs, mut rotated) = (0, 0);
    for trial in 0..60 {
        let k = [2, 3, 8, 16][trial % 4];
        let mut s = FrequentItemsSketch::<Value>::new(sketch_size(k)).unwrap();
        for (v, c) in stream(&mut rng, 20 + trial * 13, 40 + trial as i64 * 7) {
            s.update_with_count(v, c);
        }
        let image = s.serialize();
        let naive = FrequentItemsSketch::<Value>::deserialize(&image).unwrap();
        naive_differs += usize::from(naive.serialize() != image);
        rotated += usize::from(layout_preserving_image(&s) != image);

        let d = freq_round_trip(&s);
        assert_eq!(d.serialize(), image, "trial {trial}");
        let mut other = FrequentItemsSketch::<Value>::new(sketch_size(k)).unwrap();
        for (v, c) in stream(&mut rng, 50, 90) {
            other.update_with_count(v, c);
        }
        let more = stream(&mut rng, 80, 120);
        let (mut a, mut b) = (s.clone(), d.clone());
        for (v, c) in &more {
            a.update_with_count(v.clone(), *c);
            b.update_with_count(v.clone(), *c);
        }
        assert_eq!(a.serialize(), b.serialize(), "trial {trial}: updates");
        let (mut a, mut b) = (s.clone(), d.clone());
        a.merge(&other);
        b.merge(&other);
        assert_eq!(a.serialize(), b.serialize(), "trial {trial}: merge into");
        let (mut a, mut b) = (other.clone(), other.clone());
        a.merge(&s);
        b.merge(&d);
        assert_eq!(a.serialize(), b.serialize(), "trial {trial}: merge from");
    }
    assert!(
        naive_differs > 0 && rotated > 0,
        "{naive_differs} {rotated}"
    );
}

/// Merged, windowed and sliding CPC sketches: the image round trip updates, unions and
/// estimates as the original.
#[test]
fn cpc_round_trip_updates_and_unions_as_the_original() {
    let mut rng = StdRng::seed_from_u64(3);
    for (lg_k, n) in [
        (4, 100),
        (8, 70),
        (8, 150),
        (8, 900),
        (8, 4000),
        (10, 300),
        (11, 9000),
    ] {
        let mut u = ApproxUnique::new();
        for _ in 0..n {
            u.update(lg_k, &Value::Long(rng.random_range(0..1 << 40)));
        }
        let mut merged = u.clone();
        let mut part = ApproxUnique::new();
        for _ in 0..n / 2 + 70 {
            part.update(lg_k, &Value::str(&format!("x{}", rng.random::<u32>())));
        }
        merged.merge(lg_k, &part);
        for original in [u, merged] {
            let ApproxUnique::Sketch(s) = &original else {
                panic!("{n} values stay exact")
            };
            let mut buf = Vec::new();
            put_cpc(s, &mut buf);
            let mut r = reader(&buf);
            let decoded = ApproxUnique::Sketch(get_cpc(&mut r).unwrap());
            let image = |u: &ApproxUnique| match u {
                ApproxUnique::Sketch(s) => (s.serialize(), s.estimate().to_bits()),
                ApproxUnique::Exact(_) => unreachable!(),
            };
            assert_eq!(image(&original), image(&decoded));
            let more: Vec<Value> = (0..n).map(|i| Value::Long(i as i64 * 7919)).collect();
            let (mut a, mut b) = (original.clone(), decoded.clone());
            more.iter().for_each(|v| a.update(lg_k, v));
            more.iter().for_each(|v| b.update(lg_k, v));
            assert_eq!(image(&a), image(&b), "lgK {lg_k} n {n}: updates");
            let (mut a, mut b) = (original.clone(), decoded.clone());
            a.merge(lg_k, &part);
            b.merge(lg_k, &part);
            assert_eq!(image(&a), image(&b), "lgK {lg_k} n {n}: merge into");
            let (mut a, mut b) = (part.clone(), part.clone());
            a.merge(lg_k, &original);
            b.merge(lg_k, &decoded);
            assert_eq!(image(&a), image(&b), "lgK {lg_k} n {n}: merge from");
        }
    }
}

#[test]
fn kll_round_trips_exactly_and_rejects_broken_invariants() {
    let mut rng = StdRng::seed_from_u64(9);
    let mut s = Kll::new(16);
    for _ in 0..5000 {
        s.update(rng.random::<f32>() * 100.0 - 20.0);
    }
    let mut buf = Vec::new();
    put_kll(&s, &mut buf);
    let d = get_kll(&mut reader(&buf)).unwrap();
    assert_eq!(s, d);
    assert!(s.levels.len() > 3);
    let (mut a, mut b) = (s.clone(), d.clone());
    for x in 0..1000 {
        a.update(x as f32);
        b.update(x as f32);
    }
    a.merge(&s);
    b.merge(&d);
    assert_eq!(a, b);

    let encode = |s: &Kll| {
        let mut buf = Vec::new();
        put_kll(s, &mut buf);
        buf
    };
    let err = |s: &Kll| get_kll(&mut reader(&encode(s))).unwrap_err();
    let mut bad = s.clone();
    bad.n += 1;
    assert!(err(&bad).contains("its count is"), "{}", err(&bad));
    let mut bad = s.clone();
    bad.levels[1].reverse();
    assert!(err(&bad).contains("unsorted"), "{}", err(&bad));
    let mut bad = s.clone();
    bad.max = bad.min;
    assert!(err(&bad).contains("outside"), "{}", err(&bad));
    let mut bad = s.clone();
    bad.k = 4;
    assert!(err(&bad).contains("KLL k 4"), "{}", err(&bad));
    let mut bad = Kll::new(8);
    bad.levels.clear();
    assert!(err(&bad).contains("0 KLL levels"), "{}", err(&bad));
}

#[test]
fn sketch_sizes_must_match_the_aggregator_before_deserializing() {
    let mut h = ApproxHist::new();
    for i in 0..40 {
        h.add(4, &Value::Long(i), 1);
    }
    let ApproxHist::Sketch(s) = &h else {
        panic!("40 values > k = 4")
    };
    let mut buf = Vec::new();
    put_frequent_items(s, &mut buf);
    let lg = sketch_size(4).trailing_zeros() as u8;
    let mut r = Reader::new(
        &buf,
        Expect {
            freq_lg_max: Some(lg),
            cpc_lg_k: None,
        },
    );
    assert!(get_frequent_items(&mut r).is_ok());
    let mut r = Reader::new(
        &buf,
        Expect {
            freq_lg_max: Some(lg + 1),
            cpc_lg_k: None,
        },
    );
    let e = get_frequent_items(&mut r).unwrap_err();
    assert!(e.contains("the aggregator's is 2^"), "{e}");
}
