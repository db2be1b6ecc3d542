//! Byte encodings of the approximate aggregations' states (`sketch.rs`) for `ir_codec`, each
//! exact: the decoded state finalizes, updates and merges as the original.
//!
//! - KLL (ours): `k`, `n`, min, max (as `f32` bits), the SplitMix64 state and every level.
//! - APPROX_UNIQUE_COUNT's exact items, as they are; its CPC sketch as the `datasketches` image.
//!   A CPC sketch's behaviour depends on its coupons, flavour, `first_interesting_column`,
//!   merge flag and HIP registers, all of which the image holds (the HIP ones only while they
//!   are used: a merged sketch estimates with ICON). Its pair-table layout only orders the
//!   iteration that feeds a union, whose HIP registers go unused for the same reason.
//! - APPROX_HISTOGRAM_K's sketch as a `datasketches` frequent-items image (items in `codec`'s
//!   encoding). That sketch is a linear-probing hash map whose slot layout decides which counts
//!   a purge samples and in which order a merge feeds items, and deserialization rebuilds the map
//!   by inserting the items in image order, which misplaces a cluster that wraps around the end
//!   of the table. So the image is written with its items rotated to start after an empty slot,
//!   which rebuilds the layout exactly ([`layout_preserving_image`]).

use datasketches::codec::{SketchBytes, SketchSlice};
use datasketches::cpc::CpcSketch;
use datasketches::error::{Error, ErrorKind};
use datasketches::frequencies::{FrequentItemValue, FrequentItemsSketch};

use super::codec;
use super::sketch::{CpcItem, Kll, EXACT_UNIQUE_MAX};
use super::value::Value;
use super::wire::{put_uvar, Reader, MAX_COUNT};

// ---------------------------------------------------------------------------------------------
// APPROX_PERCENTILE

/// Levels a KLL sketch can have: level `h` weighs `2^h` and the weights sum to `n < 2^64`.
const KLL_MAX_LEVELS: usize = 64;

pub(super) fn put_kll(s: &Kll, out: &mut Vec<u8>) {
    put_uvar(out, u64::from(s.k));
    put_uvar(out, s.n);
    out.extend_from_slice(&s.min.to_bits().to_le_bytes());
    out.extend_from_slice(&s.max.to_bits().to_le_bytes());
    out.extend_from_slice(&s.rng.to_le_bytes());
    put_uvar(out, s.levels.len() as u64);
    for level in &s.levels {
        put_uvar(out, level.len() as u64);
        for x in level {
            out.extend_from_slice(&x.to_bits().to_le_bytes());
        }
    }
}

pub(super) fn get_kll(r: &mut Reader) -> Result<Kll, String> {
    let k = r.uvar("the KLL k")?;
    if !(8..=65535).contains(&k) {
        return Err(r.corrupt(format!("KLL k {k} outside [8, 65535]")));
    }
    let n = r.uvar("the KLL count")?;
    if n > MAX_COUNT {
        return Err(r.corrupt(format!("KLL count {n} is beyond 2^62 items")));
    }
    let min = f32::from_bits(r.u32("the KLL minimum")?);
    let max = f32::from_bits(r.u32("the KLL maximum")?);
    let rng = r.u64("the KLL random state")?;
    let num_levels = r.len("the KLL levels", 1)?;
    if !(1..=KLL_MAX_LEVELS).contains(&num_levels) {
        return Err(r.corrupt(format!("{num_levels} KLL levels (1 to {KLL_MAX_LEVELS})")));
    }
    let mut levels = Vec::with_capacity(num_levels);
    let mut weight = 0u64;
    for h in 0..num_levels {
        let len = r.len("a KLL level", 4)?;
        let mut level = Vec::with_capacity(len);
        for _ in 0..len {
            let x = f32::from_bits(r.u32("a KLL item")?);
            if x.is_nan() || (h > 0 && level.last().is_some_and(|p: &f32| p.total_cmp(&x).is_gt()))
            {
                return Err(r.corrupt(format!("KLL level {h}: NaN or unsorted item")));
            }
            if x < min || x > max {
                return Err(r.corrupt(format!("KLL item {x} outside [{min}, {max}]")));
            }
            level.push(x);
        }
        weight = (len as u64)
            .checked_mul(1u64 << h)
            .and_then(|w| w.checked_add(weight))
            .ok_or_else(|| r.corrupt("KLL level weights overflow"))?;
        levels.push(level);
    }
    if weight != n {
        return Err(r.corrupt(format!("KLL items weigh {weight}, its count is {n}")));
    }
    if num_levels > 1 && levels[num_levels - 1].is_empty() {
        return Err(r.corrupt("KLL top level is empty"));
    }
    if n > 0 && (min.is_nan() || max.is_nan()) {
        return Err(r.corrupt("KLL extremes are NaN"));
    }
    Ok(Kll {
        k: k as u16,
        n,
        levels,
        min,
        max,
        rng,
    })
}

// ---------------------------------------------------------------------------------------------
// APPROX_UNIQUE_COUNT

const WORD: u8 = 0;
const BYTES: u8 = 1;
const OTHER: u8 = 2;

pub(super) fn put_cpc_items(items: &[CpcItem], out: &mut Vec<u8>) {
    put_uvar(out, items.len() as u64);
    for item in items {
        match item {
            CpcItem::Word(w) => {
                out.push(WORD);
                out.extend_from_slice(&w.to_le_bytes());
            }
            CpcItem::Bytes(b) => {
                out.push(BYTES);
                put_uvar(out, b.len() as u64);
                out.extend_from_slice(b);
            }
            CpcItem::Other(v) => {
                out.push(OTHER);
                codec::encode_value(v, out);
            }
        }
    }
}

pub(super) fn get_cpc_items(r: &mut Reader) -> Result<Vec<CpcItem>, String> {
    let n = r.len("APPROX_UNIQUE_COUNT items", 2)?;
    if n > EXACT_UNIQUE_MAX {
        return Err(r.corrupt(format!(
            "{n} exact APPROX_UNIQUE_COUNT items (at most {EXACT_UNIQUE_MAX})"
        )));
    }
    let mut items: Vec<CpcItem> = Vec::with_capacity(n);
    for _ in 0..n {
        let item = match r.u8("an APPROX_UNIQUE_COUNT item tag")? {
            WORD => CpcItem::Word(r.u64("an APPROX_UNIQUE_COUNT word")?),
            BYTES => {
                let len = r.len("APPROX_UNIQUE_COUNT bytes", 1)?;
                if len == 0 {
                    return Err(r.corrupt("empty APPROX_UNIQUE_COUNT bytes (never counted)"));
                }
                CpcItem::Bytes(r.take(len, "APPROX_UNIQUE_COUNT bytes")?.into())
            }
            OTHER => {
                let v = r.value("an APPROX_UNIQUE_COUNT value")?;
                if !matches!(v, Value::List(_) | Value::Map(_)) {
                    return Err(r.corrupt(format!(
                        "APPROX_UNIQUE_COUNT keeps {v:?} as a word or bytes, not a value"
                    )));
                }
                CpcItem::Other(Box::new(v))
            }
            t => return Err(r.corrupt(format!("unknown APPROX_UNIQUE_COUNT item tag {t}"))),
        };
        if items.contains(&item) {
            return Err(r.corrupt("repeated APPROX_UNIQUE_COUNT item"));
        }
        items.push(item);
    }
    Ok(items)
}

pub(super) fn put_cpc(s: &CpcSketch, out: &mut Vec<u8>) {
    let image = s.serialize();
    put_uvar(out, image.len() as u64);
    out.extend_from_slice(&image);
}

/// Byte 3 of a CPC image is its lgK (as of the DataSketches format, serial version 1).
const CPC_LG_K_BYTE: usize = 3;

pub(super) fn get_cpc(r: &mut Reader) -> Result<CpcSketch, String> {
    let n = r.len("the CPC sketch", 1)?;
    let image = r.take(n, "the CPC sketch")?;
    if let (Some(want), Some(&got)) = (r.expect.cpc_lg_k, image.get(CPC_LG_K_BYTE)) {
        if got != want {
            return Err(r.corrupt(format!(
                "CPC sketch with lgK {got}, the aggregator's is {want}"
            )));
        }
    }
    let s = CpcSketch::deserialize(image).map_err(|e| r.corrupt(format!("CPC sketch: {e}")))?;
    if s.is_empty() {
        return Err(r.corrupt("empty CPC sketch (an IR switches to one at its 65th value)"));
    }
    Ok(s)
}

// ---------------------------------------------------------------------------------------------
// APPROX_HISTOGRAM_K

impl FrequentItemValue for Value {
    fn serialize_size(item: &Self) -> usize {
        encoded_len(item)
    }

    fn serialize_value(&self, bytes: &mut SketchBytes) {
        let mut buf = Vec::with_capacity(encoded_len(self));
        codec::encode_value(self, &mut buf);
        bytes.write(&buf);
    }

    fn deserialize_value(cursor: &mut SketchSlice<'_>) -> Result<Self, Error> {
        let all = cursor.remaining();
        let mut rest = all;
        let v = codec::try_decode_value(&mut rest)
            .map_err(|e| Error::new(ErrorKind::InvalidData, e))?;
        cursor.advance((all.len() - rest.len()) as u64);
        Ok(v)
    }
}

/// The length of `codec`'s encoding of `v`.
fn encoded_len(v: &Value) -> usize {
    match v {
        Value::Null | Value::Bool(_) => 1,
        Value::Long(_) | Value::Double(_) => 9,
        Value::Str(s) => 5 + s.len(),
        Value::Bytes(b) => 5 + b.len(),
        Value::List(items) => 5 + items.iter().map(encoded_len).sum::<usize>(),
        Value::Map(entries) => {
            5 + entries
                .iter()
                .map(|(k, v)| encoded_len(k) + encoded_len(v))
                .sum::<usize>()
        }
    }
}

/// A non-empty frequent-items image: 32 header bytes (byte 3: lg of the maximum map size, bytes
/// 8..12: the number of items), the items' counts (8 bytes each), then the items.
const FREQ_HEADER: usize = 32;
const FREQ_LG_MAX_BYTE: usize = 3;

pub(super) fn put_frequent_items(s: &FrequentItemsSketch<Value>, out: &mut Vec<u8>) {
    let image = layout_preserving_image(s);
    put_uvar(out, image.len() as u64);
    out.extend_from_slice(&image);
}

pub(super) fn get_frequent_items(r: &mut Reader) -> Result<FrequentItemsSketch<Value>, String> {
    let n = r.len("the frequent-items sketch", 1)?;
    let image = r.take(n, "the frequent-items sketch")?;
    if let (Some(want), Some(&got)) = (r.expect.freq_lg_max, image.get(FREQ_LG_MAX_BYTE)) {
        if got != want {
            return Err(r.corrupt(format!(
                "frequent-items sketch of map size 2^{got}, the aggregator's is 2^{want}"
            )));
        }
    }
    let s = FrequentItemsSketch::<Value>::deserialize(image)
        .map_err(|e| r.corrupt(format!("frequent-items sketch: {e}")))?;
    if s.is_empty() {
        return Err(r.corrupt("empty frequent-items sketch (an IR switches to one past k values)"));
    }
    let (weight, error) = (s.total_weight(), s.maximum_error());
    if weight > MAX_COUNT || error > weight {
        return Err(r.corrupt(format!(
            "frequent-items sketch of weight {weight} (at most 2^62) and error {error}"
        )));
    }
    Ok(s)
}

/// The sketch's image with its items (and their counts) rotated so that deserializing it
/// rebuilds the same hash-map layout.
///
/// The image lists the items in slot order; deserialization inserts them in image order into an
/// empty map of the same size. Inserting in the cyclic slot order that starts right after an
/// empty slot puts every item back in its slot (each item's probe run from its hash slot is
/// then already filled, as in the original). And a layout is determined by its slot order: two
/// valid linear-probing layouts that list the same items in the same slot order are the same
/// layout. So the first rotation whose rebuilt sketch re-serializes to the original image is
/// exact. Rotation 0 does unless a cluster wraps around the end of the table, and rotating by
/// the number of items before the first empty slot always does: encoding costs one rebuild of
/// the sketch, a few more when a cluster wraps.
pub(super) fn layout_preserving_image(s: &FrequentItemsSketch<Value>) -> Vec<u8> {
    let image = s.serialize();
    let Some((m, bounds)) = item_bounds(&image) else {
        return image; // an empty sketch has no items
    };
    let rebuilds = |candidate: &[u8]| {
        FrequentItemsSketch::<Value>::deserialize(candidate).is_ok_and(|d| d.serialize() == image)
    };
    let counts = &image[FREQ_HEADER..FREQ_HEADER + 8 * m];
    for r in 0..m {
        let mut candidate = Vec::with_capacity(image.len());
        candidate.extend_from_slice(&image[..FREQ_HEADER]);
        candidate.extend_from_slice(&counts[8 * r..]);
        candidate.extend_from_slice(&counts[..8 * r]);
        candidate.extend_from_slice(&image[bounds[r]..]);
        candidate.extend_from_slice(&image[bounds[0]..bounds[r]]);
        if rebuilds(&candidate) {
            return candidate;
        }
    }
    debug_assert!(
        false,
        "no rotation of the frequent-items image rebuilds its layout"
    );
    image
}

/// The item count of a non-empty image and the start offset of each item (plus the end).
fn item_bounds(image: &[u8]) -> Option<(usize, Vec<usize>)> {
    let m = u32::from_le_bytes(image.get(8..12)?.try_into().ok()?) as usize;
    if image.len() <= FREQ_HEADER || m == 0 {
        return None;
    }
    let start = FREQ_HEADER + 8 * m;
    let mut rest = image.get(start..)?;
    let mut bounds = vec![start];
    for _ in 0..m {
        codec::try_decode_value(&mut rest).ok()?;
        bounds.push(image.len() - rest.len());
    }
    Some((m, bounds))
}
