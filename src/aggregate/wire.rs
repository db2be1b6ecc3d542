//! The IR encoding's primitives (`ir_codec`, `sketch_codec`): LEB128 varints (`uvar`, and
//! zigzag-mapped `ivar` for signed integers), little-endian words and doubles as their bits,
//! length-prefixed strings, `codec` values, and [`Reader`], a cursor whose every read checks the
//! bytes left and whose errors say where (byte offset) and what was being read.

use std::collections::BTreeSet;

use super::codec;
use super::value::Value;

/// The largest magnitude of a decoded row count (AVERAGE, VARIANCE, HISTOGRAM and
/// APPROX_HISTOGRAM_K counts, a KLL's or frequent-items sketch's stream weight): no stream
/// reaches 4.6e18 rows, and so any two decoded IRs merge without overflowing. (COUNT and long
/// SUM wrap around, as Chronon's longs do, so any value is theirs.)
pub(super) const MAX_COUNT: u64 = 1 << 62;

/// Sketch sizes known from the aggregator, checked before a sketch image is deserialized.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Expect {
    pub(super) cpc_lg_k: Option<u8>,
    pub(super) freq_lg_max: Option<u8>,
}

pub(super) fn put_uvar(out: &mut Vec<u8>, mut x: u64) {
    while x >= 0x80 {
        out.push(x as u8 | 0x80);
        x >>= 7;
    }
    out.push(x as u8);
}

pub(super) fn put_ivar(out: &mut Vec<u8>, x: i64) {
    put_uvar(out, ((x << 1) ^ (x >> 63)) as u64);
}

pub(super) fn put_f64(out: &mut Vec<u8>, x: f64) {
    out.extend_from_slice(&x.to_bits().to_le_bytes());
}

pub(super) fn put_str(out: &mut Vec<u8>, s: &str) {
    put_uvar(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

pub(super) fn put_values<'a>(
    out: &mut Vec<u8>,
    len: usize,
    values: impl Iterator<Item = &'a Value>,
) {
    put_uvar(out, len as u64);
    values.for_each(|v| codec::encode_value(v, out));
}

/// A cursor over the encoding; every read checks the bytes left and errors name the offset.
pub(super) struct Reader<'a> {
    bytes: &'a [u8],
    pub(super) pos: usize,
    pub(super) expect: Expect,
}

impl<'a> Reader<'a> {
    pub(super) fn new(bytes: &'a [u8], expect: Expect) -> Reader<'a> {
        Reader {
            bytes,
            pos: 0,
            expect,
        }
    }

    pub(super) fn corrupt(&self, what: impl std::fmt::Display) -> String {
        format!("corrupt IR at byte {}: {what}", self.pos)
    }

    pub(super) fn left(&self) -> usize {
        self.bytes.len() - self.pos
    }

    pub(super) fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], String> {
        if n > self.left() {
            return Err(format!(
                "truncated IR at byte {}: {what} needs {n} bytes, {} left",
                self.pos,
                self.left()
            ));
        }
        let head = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], String> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N, what)?);
        Ok(a)
    }

    pub(super) fn u8(&mut self, what: &str) -> Result<u8, String> {
        Ok(self.take(1, what)?[0])
    }

    pub(super) fn u32(&mut self, what: &str) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    pub(super) fn u64(&mut self, what: &str) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    pub(super) fn f64(&mut self, what: &str) -> Result<f64, String> {
        Ok(f64::from_bits(self.u64(what)?))
    }

    pub(super) fn uvar(&mut self, what: &str) -> Result<u64, String> {
        let start = self.pos;
        let mut x = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8(what)?;
            if shift == 63 && b > 1 {
                self.pos = start;
                return Err(self.corrupt(format!("{what}: varint overflows 64 bits")));
            }
            x |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(x);
            }
        }
        self.pos = start;
        Err(self.corrupt(format!("{what}: varint longer than 10 bytes")))
    }

    pub(super) fn ivar(&mut self, what: &str) -> Result<i64, String> {
        let z = self.uvar(what)?;
        Ok((z >> 1) as i64 ^ -((z & 1) as i64))
    }

    /// A row count, at most [`MAX_COUNT`] in magnitude.
    pub(super) fn count(&mut self, what: &str) -> Result<i64, String> {
        let at = self.pos;
        let c = self.ivar(what)?;
        if c.unsigned_abs() > MAX_COUNT {
            self.pos = at;
            return Err(self.corrupt(format!("{what} {c} is beyond 2^62 rows")));
        }
        Ok(c)
    }

    /// A count of items that take at least `min_size` bytes each (checked against the bytes
    /// left, so a corrupt count cannot make a huge allocation).
    pub(super) fn len(&mut self, what: &str, min_size: usize) -> Result<usize, String> {
        let n = self.uvar(what)?;
        if n > (self.left() / min_size.max(1)) as u64 {
            return Err(format!(
                "truncated or corrupt IR at byte {}: {what}: {n} entries cannot fit in the {} \
                 bytes left",
                self.pos,
                self.left()
            ));
        }
        Ok(n as usize)
    }

    pub(super) fn value(&mut self, what: &str) -> Result<Value, String> {
        let mut rest = &self.bytes[self.pos..];
        let v = codec::try_decode_value(&mut rest).map_err(|e| {
            let kind = if e.starts_with("value truncated") {
                "truncated"
            } else {
                "corrupt"
            };
            format!("{kind} IR at byte {}: {what}: {e}", self.pos)
        })?;
        self.pos = self.bytes.len() - rest.len();
        Ok(v)
    }

    /// A value that is never NULL in an IR (inputs are non-null).
    pub(super) fn non_null(&mut self, what: &str) -> Result<Value, String> {
        let at = self.pos;
        let v = self.value(what)?;
        if v.is_null() {
            self.pos = at;
            return Err(self.corrupt(format!("{what} is NULL")));
        }
        Ok(v)
    }

    pub(super) fn string(&mut self, what: &str) -> Result<Box<str>, String> {
        let n = self.len(what, 1)?;
        let at = self.pos;
        let raw = self.take(n, what)?;
        std::str::from_utf8(raw).map(Box::from).map_err(|e| {
            self.pos = at;
            self.corrupt(format!("{what}: {e}"))
        })
    }

    /// A count, then that many non-null values in strictly ascending order: a set.
    pub(super) fn value_set(&mut self, what: &str) -> Result<BTreeSet<Value>, String> {
        let n = self.len(what, 1)?;
        let mut set = BTreeSet::new();
        for _ in 0..n {
            let v = self.non_null(what)?;
            if set.last().is_some_and(|last| *last >= v) {
                return Err(self.corrupt(format!("{what}: values out of order or repeated")));
            }
            set.insert(v);
        }
        Ok(set)
    }
}
