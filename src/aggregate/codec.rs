//! A compact byte encoding of [`Value`] rows, for values held in memory between being
//! computed and being written (about a quarter of the size of `Vec<Value>`): a tag byte per
//! value, then little-endian payloads; lists and maps carry their length.
//!
//! [`decode`] trusts its input (it panics on bytes [`encode`] never writes);
//! [`try_decode_value`] checks every tag, length and string, for bytes read back from storage.

use super::Value;

const NULL: u8 = 0;
const FALSE: u8 = 1;
const TRUE: u8 = 2;
const LONG: u8 = 3;
const DOUBLE: u8 = 4;
const STR: u8 = 5;
const BYTES: u8 = 6;
const LIST: u8 = 7;
const MAP: u8 = 8;

/// Appends the encoding of `values` to `out`.
pub fn encode(values: &[Value], out: &mut Vec<u8>) {
    for v in values {
        encode_one(v, out);
    }
}

fn len(n: usize, out: &mut Vec<u8>) {
    out.extend_from_slice(&(n as u32).to_le_bytes());
}

/// Appends the encoding of one value to `out` (as [`encode`] writes each value).
pub fn encode_value(v: &Value, out: &mut Vec<u8>) {
    encode_one(v, out);
}

fn encode_one(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Null => out.push(NULL),
        Value::Bool(false) => out.push(FALSE),
        Value::Bool(true) => out.push(TRUE),
        Value::Long(x) => {
            out.push(LONG);
            out.extend_from_slice(&x.to_le_bytes());
        }
        Value::Double(b) => {
            out.push(DOUBLE);
            out.extend_from_slice(&b.to_le_bytes());
        }
        Value::Str(s) => {
            out.push(STR);
            len(s.len(), out);
            out.extend_from_slice(s.as_bytes());
        }
        Value::Bytes(b) => {
            out.push(BYTES);
            len(b.len(), out);
            out.extend_from_slice(b);
        }
        Value::List(items) => {
            out.push(LIST);
            len(items.len(), out);
            encode(items, out);
        }
        Value::Map(entries) => {
            out.push(MAP);
            len(entries.len(), out);
            for (k, v) in entries {
                encode_one(k, out);
                encode_one(v, out);
            }
        }
    }
}

/// Decodes every value of an encoding made by [`encode`].
pub fn decode(mut bytes: &[u8]) -> Vec<Value> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        out.push(try_decode_value(&mut bytes).expect("bytes written by `encode`"));
    }
    out
}

/// One value at the front of an encoding, read without building a [`Value`] when it is a
/// scalar (see [`read_scalar`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scalar<'a> {
    Null,
    Bool(bool),
    Long(i64),
    /// `f64` bits, as in [`Value::Double`].
    Double(u64),
    Str(&'a str),
    /// A binary value, list or map: decode it with [`try_decode_value`].
    Nested,
    /// No bytes left.
    End,
}

/// Reads the value at the front of `bytes` (an encoding made by [`encode`]) and advances
/// past it when it is a scalar; a [`Scalar::Nested`] value is left in place.
pub fn read_scalar<'a>(bytes: &mut &'a [u8]) -> Scalar<'a> {
    let Some(&tag) = bytes.first() else {
        return Scalar::End;
    };
    let fixed = |b: &[u8]| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&b[1..9]);
        w
    };
    let (value, used) = match tag {
        NULL => (Scalar::Null, 1),
        FALSE => (Scalar::Bool(false), 1),
        TRUE => (Scalar::Bool(true), 1),
        LONG => (Scalar::Long(i64::from_le_bytes(fixed(bytes))), 9),
        DOUBLE => (Scalar::Double(u64::from_le_bytes(fixed(bytes))), 9),
        STR => {
            let n = u32::from_le_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]) as usize;
            let s = std::str::from_utf8(&bytes[5..5 + n]).expect("bytes written by `encode`");
            (Scalar::Str(s), 5 + n)
        }
        _ => return Scalar::Nested,
    };
    *bytes = &bytes[used..];
    value
}

/// Nesting depth of lists and maps that [`try_decode_value`] accepts.
pub const MAX_DEPTH: usize = 128;

/// Decodes one value from the front of `bytes` and advances past it. Never panics: truncated
/// input, an unknown tag, a length beyond the input, invalid UTF-8 or nesting deeper than
/// [`MAX_DEPTH`] give an error naming the problem.
pub fn try_decode_value(bytes: &mut &[u8]) -> Result<Value, String> {
    decode_at(bytes, 0)
}

fn take<'a>(bytes: &mut &'a [u8], n: usize, what: &str) -> Result<&'a [u8], String> {
    if bytes.len() < n {
        return Err(format!(
            "value truncated: {what} needs {n} bytes, {} left",
            bytes.len()
        ));
    }
    let (head, rest) = bytes.split_at(n);
    *bytes = rest;
    Ok(head)
}

/// A length prefix; every counted item takes at least one byte, so a length above the bytes left
/// is corrupt (and is rejected before anything is allocated for it).
fn read_len(bytes: &mut &[u8], what: &str) -> Result<usize, String> {
    let head = take(bytes, 4, what)?;
    let n = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
    if n > bytes.len() {
        return Err(format!(
            "value truncated or corrupt: {what} of {n} items or bytes but {} bytes left",
            bytes.len()
        ));
    }
    Ok(n)
}

fn word(bytes: &mut &[u8], what: &str) -> Result<[u8; 8], String> {
    let head = take(bytes, 8, what)?;
    let mut w = [0u8; 8];
    w.copy_from_slice(head);
    Ok(w)
}

fn decode_at(bytes: &mut &[u8], depth: usize) -> Result<Value, String> {
    if depth > MAX_DEPTH {
        return Err(format!(
            "value corrupt: nested deeper than {MAX_DEPTH} lists or maps"
        ));
    }
    let tag = take(bytes, 1, "a value tag")?[0];
    Ok(match tag {
        NULL => Value::Null,
        FALSE => Value::Bool(false),
        TRUE => Value::Bool(true),
        LONG => Value::Long(i64::from_le_bytes(word(bytes, "a long")?)),
        DOUBLE => Value::Double(u64::from_le_bytes(word(bytes, "a double")?)),
        STR => {
            let n = read_len(bytes, "a string")?;
            let raw = take(bytes, n, "a string")?;
            let s = std::str::from_utf8(raw).map_err(|e| format!("value corrupt: {e}"))?;
            Value::Str(s.into())
        }
        BYTES => {
            let n = read_len(bytes, "a binary value")?;
            Value::Bytes(take(bytes, n, "a binary value")?.into())
        }
        LIST => {
            let n = read_len(bytes, "a list")?;
            let mut items = Vec::with_capacity(n);
            for _ in 0..n {
                items.push(decode_at(bytes, depth + 1)?);
            }
            Value::List(items)
        }
        MAP => {
            let n = read_len(bytes, "a map")?;
            let mut entries = Vec::with_capacity(n);
            for _ in 0..n {
                let k = decode_at(bytes, depth + 1)?;
                entries.push((k, decode_at(bytes, depth + 1)?));
            }
            Value::Map(entries)
        }
        other => return Err(format!("value corrupt: unknown value tag {other}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_kind_of_value() {
        let values = vec![
            Value::Null,
            Value::Bool(true),
            Value::Bool(false),
            Value::Long(-7),
            Value::double(2.5),
            Value::Str("héllo".into()),
            Value::Bytes(vec![0u8, 255].into()),
            Value::List(vec![Value::Long(1), Value::Null, Value::List(vec![])]),
            Value::Map(vec![(Value::Str("a".into()), Value::Long(3))]),
        ];
        let mut buf = Vec::new();
        encode(&values, &mut buf);
        assert_eq!(decode(&buf), values);
        assert!(decode(&[]).is_empty());
    }

    #[test]
    fn scalars_read_in_place_and_nested_values_are_left_for_decoding() {
        let values = vec![
            Value::Null,
            Value::Bool(true),
            Value::Long(-7),
            Value::double(2.5),
            Value::str("héllo"),
            Value::List(vec![Value::Long(1)]),
            Value::Bool(false),
        ];
        let mut buf = Vec::new();
        encode(&values, &mut buf);
        let mut b = buf.as_slice();
        assert_eq!(read_scalar(&mut b), Scalar::Null);
        assert_eq!(read_scalar(&mut b), Scalar::Bool(true));
        assert_eq!(read_scalar(&mut b), Scalar::Long(-7));
        assert_eq!(read_scalar(&mut b), Scalar::Double(2.5f64.to_bits()));
        assert_eq!(read_scalar(&mut b), Scalar::Str("héllo"));
        assert_eq!(read_scalar(&mut b), Scalar::Nested);
        assert_eq!(try_decode_value(&mut b), Ok(values[5].clone()));
        assert_eq!(read_scalar(&mut b), Scalar::Bool(false));
        assert_eq!(read_scalar(&mut b), Scalar::End);
    }

    #[test]
    fn checked_decoding_rejects_bad_bytes_without_panicking() {
        let mut buf = Vec::new();
        encode_value(
            &Value::Map(vec![(Value::str("k"), Value::List(vec![Value::Long(1)]))]),
            &mut buf,
        );
        for cut in 0..buf.len() {
            assert!(try_decode_value(&mut &buf[..cut]).is_err(), "cut at {cut}");
        }
        let err = |bytes: &[u8]| try_decode_value(&mut &bytes[..]).unwrap_err();
        assert!(err(&[42]).contains("unknown value tag 42"));
        assert!(err(&[STR, 2, 0, 0, 0, 0xff, 0xfe]).contains("utf-8"));
        assert!(err(&[LIST, 255, 255, 255, 255, 0]).contains("4294967295 items"));
        let deep: Vec<u8> = (0..=MAX_DEPTH + 1)
            .flat_map(|_| [LIST, 1, 0, 0, 0])
            .collect();
        assert!(err(&deep).contains("nested deeper"));
        // One value at a time, leaving the rest.
        let mut two = Vec::new();
        encode(&[Value::Long(5), Value::Null], &mut two);
        let mut rest = &two[..];
        assert_eq!(try_decode_value(&mut rest), Ok(Value::Long(5)));
        assert_eq!(rest, &[NULL]);
    }
}
