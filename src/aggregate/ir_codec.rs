//! The byte encoding of an [`Ir`], so that partial aggregates can be stored (the online key-value
//! store) and checkpointed: [`Ir::encode`] / [`Ir::decode`], and
//! [`Aggregator::decode_ir`](super::Aggregator::decode_ir) (`ir_check`), which also checks that
//! the IR fits the aggregator.
//!
//! Exact: a decoded IR finalizes bit for bit as the original and gives the same results when
//! updated and merged further in the same order (doubles and `f32`s as their bits; the KLL
//! sketch with its levels, extremes and random state; the CPC and frequent-items sketches as
//! `datasketches` images, see `sketch_codec`).
//!
//! Format (version 1): the version byte, then one node.
//! - Integers are LEB128 varints (`uvar`; signed ones zigzag-mapped: `ivar`); doubles are the 8
//!   little-endian bytes of their bits; [`Value`]s use [`codec`](super::codec)'s encoding; strings
//!   are `uvar` length + UTF-8.
//! - A node is a tag byte and its payload. Tag 0 is a keyed node (buckets or map keys): `uvar`
//!   count, then `(string, node)` pairs in strictly ascending key order, nested at most twice
//!   (bucket → map key → aggregate). Tags 1..=20 are the per-operation states of `leaf`, in the
//!   order of the constants below; sets and maps list their entries in ascending order.
//!
//! Decoding never panics: truncated or corrupt input gives an error naming the byte offset and
//! what was being read (see `wire`). Every length is checked against the bytes left before
//! anything is allocated for it; sketch images go to `datasketches`' deserializers, which check
//! them and size a frequent-items hash map by its header (at most 2^30 slots; through
//! `decode_ir`, the aggregator's map size, checked first) and a CPC window by its lgK. Invariants
//! the operations rely on are checked (ordered and duplicate-free sets, non-zero or positive
//! counts of at most 2^62 rows, non-null values, KLL weights summing to its count, ...), so an
//! IR that decodes is one the operations accept. The encoding has no checksum: a flipped bit in
//! a number can still decode, to another valid IR.

use std::collections::BTreeMap;

use super::codec;
use super::ir::{Ir, Node};
use super::leaf::{Leaf, Moments, Welford};
use super::sketch::{ApproxHist, ApproxUnique};
use super::sketch_codec;
use super::wire::{put_f64, put_ivar, put_str, put_uvar, put_values, Expect, Reader};

/// The format version this build writes and reads.
pub const VERSION: u8 = 1;

const KEYED: u8 = 0;
const COUNT: u8 = 1;
const SUM_LONG: u8 = 2;
const SUM_DOUBLE: u8 = 3;
const AVERAGE: u8 = 4;
const VARIANCE: u8 = 5;
const MOMENTS: u8 = 6;
const MIN: u8 = 7;
const MAX: u8 = 8;
const FIRST: u8 = 9;
const LAST: u8 = 10;
const TIMED: u8 = 11;
const SORTED: u8 = 12;
const UNIQUE: u8 = 13;
const BOUNDED: u8 = 14;
const HISTOGRAM: u8 = 15;
const APPROX_HIST_EXACT: u8 = 16;
const APPROX_HIST_SKETCH: u8 = 17;
const CPC_EXACT: u8 = 18;
const CPC_SKETCH: u8 = 19;
const KLL: u8 = 20;

/// Keyed nodes nest at most this deep (bucket → map key).
const MAX_KEYED_DEPTH: usize = 2;

impl Ir {
    /// Appends the encoding of this IR (format version byte first) to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(VERSION);
        put_node(&self.0, out);
    }

    /// Decodes an IR written by [`Ir::encode`]; the whole of `bytes` must be one IR. This checks
    /// the IR's own consistency, not that it fits a given aggregator: prefer
    /// [`Aggregator::decode_ir`](super::Aggregator::decode_ir) when the aggregator is known.
    pub fn decode(bytes: &[u8]) -> Result<Ir, String> {
        decode_with(bytes, Expect::default())
    }
}

pub(super) fn decode_with(bytes: &[u8], expect: Expect) -> Result<Ir, String> {
    let mut r = Reader::new(bytes, expect);
    let version = r.u8("the format version")?;
    if version != VERSION {
        return Err(format!(
            "IR format version {version} is not supported (this build reads version {VERSION})"
        ));
    }
    let node = get_node(&mut r, 0)?;
    if r.pos != bytes.len() {
        return Err(r.corrupt(format!("{} bytes after the IR", bytes.len() - r.pos)));
    }
    Ok(Ir(node))
}

// ---------------------------------------------------------------------------------------------
// Writing

fn put_node(node: &Node, out: &mut Vec<u8>) {
    match node {
        Node::Keyed(m) => {
            out.push(KEYED);
            put_uvar(out, m.len() as u64);
            for (key, child) in m {
                put_str(out, key);
                put_node(child, out);
            }
        }
        Node::Leaf(leaf) => put_leaf(leaf, out),
    }
}

fn put_leaf(leaf: &Leaf, out: &mut Vec<u8>) {
    match leaf {
        Leaf::Count(c) => {
            out.push(COUNT);
            put_ivar(out, *c);
        }
        Leaf::SumLong(s) => {
            out.push(SUM_LONG);
            put_ivar(out, *s);
        }
        Leaf::SumDouble(s) => {
            out.push(SUM_DOUBLE);
            put_f64(out, *s);
        }
        Leaf::Average { sum, count } => {
            out.push(AVERAGE);
            put_f64(out, *sum);
            put_ivar(out, *count);
        }
        Leaf::Variance(w) => {
            out.push(VARIANCE);
            put_ivar(out, w.count);
            put_f64(out, w.mean);
            put_f64(out, w.m2);
        }
        Leaf::Moments(m) => {
            out.push(MOMENTS);
            [m.n, m.m1, m.m2, m.m3, m.m4]
                .into_iter()
                .for_each(|x| put_f64(out, x));
        }
        Leaf::Min(v) | Leaf::Max(v) => {
            out.push(if matches!(leaf, Leaf::Min(_)) {
                MIN
            } else {
                MAX
            });
            codec::encode_value(v, out);
        }
        Leaf::First { ts, value } | Leaf::Last { ts, value } => {
            out.push(if matches!(leaf, Leaf::First { .. }) {
                FIRST
            } else {
                LAST
            });
            put_ivar(out, *ts);
            codec::encode_value(value, out);
        }
        Leaf::Timed(list) => {
            out.push(TIMED);
            put_uvar(out, list.len() as u64);
            for (ts, v) in list {
                put_ivar(out, *ts);
                codec::encode_value(v, out);
            }
        }
        Leaf::Sorted(list) => {
            out.push(SORTED);
            put_values(out, list.len(), list.iter());
        }
        Leaf::Unique(set) | Leaf::Bounded(set) => {
            out.push(if matches!(leaf, Leaf::Unique(_)) {
                UNIQUE
            } else {
                BOUNDED
            });
            put_values(out, set.len(), set.iter());
        }
        Leaf::Histogram(map) => {
            out.push(HISTOGRAM);
            put_uvar(out, map.len() as u64);
            for (key, c) in map {
                put_str(out, key);
                put_ivar(out, *c);
            }
        }
        Leaf::ApproxHist(ApproxHist::Exact(m)) => {
            out.push(APPROX_HIST_EXACT);
            put_uvar(out, m.len() as u64);
            for (v, c) in m {
                codec::encode_value(v, out);
                put_ivar(out, *c);
            }
        }
        Leaf::ApproxHist(ApproxHist::Sketch(s)) => {
            out.push(APPROX_HIST_SKETCH);
            sketch_codec::put_frequent_items(s, out);
        }
        Leaf::Cpc(ApproxUnique::Exact(items)) => {
            out.push(CPC_EXACT);
            sketch_codec::put_cpc_items(items, out);
        }
        Leaf::Cpc(ApproxUnique::Sketch(s)) => {
            out.push(CPC_SKETCH);
            sketch_codec::put_cpc(s, out);
        }
        Leaf::Kll(s) => {
            out.push(KLL);
            sketch_codec::put_kll(s, out);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Reading

fn get_node(r: &mut Reader, depth: usize) -> Result<Node, String> {
    let tag = r.u8("a node tag")?;
    if tag != KEYED {
        return get_leaf(r, tag).map(Node::Leaf);
    }
    if depth >= MAX_KEYED_DEPTH {
        return Err(r.corrupt(format!(
            "keyed IRs nested deeper than {MAX_KEYED_DEPTH} levels (bucket → map key)"
        )));
    }
    let n = r.len("the keyed IR's entries", 2)?;
    let mut m = BTreeMap::new();
    for _ in 0..n {
        let key = r.string("a bucket or map key")?;
        if m.last_key_value().is_some_and(|(last, _)| *last >= key) {
            return Err(r.corrupt(format!("key {key:?} out of order or repeated")));
        }
        let child = get_node(r, depth + 1)?;
        m.insert(key, child);
    }
    Ok(Node::Keyed(m))
}

fn get_leaf(r: &mut Reader, tag: u8) -> Result<Leaf, String> {
    Ok(match tag {
        COUNT => Leaf::Count(r.ivar("a COUNT")?),
        SUM_LONG => Leaf::SumLong(r.ivar("a long SUM")?),
        SUM_DOUBLE => Leaf::SumDouble(r.f64("a double SUM")?),
        AVERAGE => Leaf::Average {
            sum: r.f64("an AVERAGE's sum")?,
            count: r.count("an AVERAGE's count")?,
        },
        VARIANCE => {
            let count = r.count("a VARIANCE's count")?;
            if count < 0 {
                return Err(r.corrupt(format!("negative VARIANCE count {count}")));
            }
            Leaf::Variance(Welford {
                count,
                mean: r.f64("a VARIANCE's mean")?,
                m2: r.f64("a VARIANCE's M2")?,
            })
        }
        MOMENTS => {
            let mut m = [0.0; 5];
            for x in &mut m {
                *x = r.f64("a SKEW/KURTOSIS moment")?;
            }
            Leaf::Moments(Moments {
                n: m[0],
                m1: m[1],
                m2: m[2],
                m3: m[3],
                m4: m[4],
            })
        }
        MIN => Leaf::Min(r.non_null("a MIN")?),
        MAX => Leaf::Max(r.non_null("a MAX")?),
        FIRST => Leaf::First {
            ts: r.ivar("a FIRST's ts")?,
            value: r.non_null("a FIRST")?,
        },
        LAST => Leaf::Last {
            ts: r.ivar("a LAST's ts")?,
            value: r.non_null("a LAST")?,
        },
        TIMED => {
            let n = r.len("FIRST_K/LAST_K values", 2)?;
            let mut list = Vec::with_capacity(n);
            for _ in 0..n {
                let ts = r.ivar("a FIRST_K/LAST_K ts")?;
                list.push((ts, r.non_null("a FIRST_K/LAST_K value")?));
            }
            Leaf::Timed(list)
        }
        SORTED => {
            let n = r.len("TOP_K/BOTTOM_K values", 1)?;
            let mut list = Vec::with_capacity(n);
            for _ in 0..n {
                list.push(r.non_null("a TOP_K/BOTTOM_K value")?);
            }
            Leaf::Sorted(list)
        }
        UNIQUE => Leaf::Unique(r.value_set("UNIQUE_COUNT values")?),
        BOUNDED => Leaf::Bounded(r.value_set("BOUNDED_UNIQUE_COUNT values")?),
        HISTOGRAM => {
            let n = r.len("HISTOGRAM entries", 2)?;
            let mut map = BTreeMap::new();
            for _ in 0..n {
                let key = r.string("a HISTOGRAM key")?;
                if map.last_key_value().is_some_and(|(last, _)| *last >= key) {
                    return Err(
                        r.corrupt(format!("HISTOGRAM key {key:?} out of order or repeated"))
                    );
                }
                let c = r.count("a HISTOGRAM count")?;
                if c == 0 {
                    return Err(r.corrupt(format!("HISTOGRAM key {key:?} has count 0")));
                }
                map.insert(key, c);
            }
            Leaf::Histogram(map)
        }
        APPROX_HIST_EXACT => {
            let n = r.len("APPROX_HISTOGRAM_K entries", 2)?;
            let mut map = BTreeMap::new();
            for _ in 0..n {
                let v = r.non_null("an APPROX_HISTOGRAM_K value")?;
                if map.last_key_value().is_some_and(|(last, _)| *last >= v) {
                    return Err(r.corrupt("APPROX_HISTOGRAM_K values out of order or repeated"));
                }
                let c = r.count("an APPROX_HISTOGRAM_K count")?;
                if c <= 0 {
                    return Err(r.corrupt(format!("APPROX_HISTOGRAM_K count {c} is not positive")));
                }
                map.insert(v, c);
            }
            Leaf::ApproxHist(ApproxHist::Exact(map))
        }
        APPROX_HIST_SKETCH => {
            Leaf::ApproxHist(ApproxHist::Sketch(sketch_codec::get_frequent_items(r)?))
        }
        CPC_EXACT => Leaf::Cpc(ApproxUnique::Exact(sketch_codec::get_cpc_items(r)?)),
        CPC_SKETCH => Leaf::Cpc(ApproxUnique::Sketch(sketch_codec::get_cpc(r)?)),
        KLL => Leaf::Kll(sketch_codec::get_kll(r)?),
        other => {
            r.pos -= 1;
            return Err(r.corrupt(format!("unknown node tag {other}")));
        }
    })
}
