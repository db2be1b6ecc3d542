//! [`Value`]: one cell of an aggregation input or output, independent of Arrow, plus the two
//! conversions between Arrow arrays and values ([`column_values`], [`to_array`]).
//!
//! Values are canonical: every integer width is a `Long`, every float a `Double` (stored as its
//! bits, so `Value` is `Eq + Ord + Hash`; NaN is normalised to one bit pattern by
//! [`Value::double`]), dates are days and timestamps are epoch milliseconds. Maps hold their
//! entries sorted by key, so two equal maps are equal values.

use std::cmp::Ordering;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BooleanArray, Float32Array, Float64Array, Int32Array,
    Int64Array, ListArray, MapArray, StringArray, StructArray,
};
use arrow::buffer::{NullBuffer, OffsetBuffer};
use arrow::datatypes::{
    DataType, Date32Type, Field, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type,
    Int8Type, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType, UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use arrow::error::ArrowError;

use crate::error::{Error, Result};

/// One value. `Double` holds `f64` bits: build it with [`Value::double`].
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum Value {
    Null,
    Bool(bool),
    Long(i64),
    /// `f64::to_bits`; use [`Value::double`] and [`Value::as_f64`].
    Double(u64),
    Str(Box<str>),
    Bytes(Box<[u8]>),
    List(Vec<Value>),
    /// Entries sorted by key.
    Map(Vec<(Value, Value)>),
}

const CANONICAL_NAN: u64 = 0x7ff8_0000_0000_0000;

impl Value {
    /// A double; every NaN becomes the one canonical NaN (as Java's `doubleToLongBits`).
    pub fn double(v: f64) -> Value {
        Value::Double(if v.is_nan() {
            CANONICAL_NAN
        } else {
            v.to_bits()
        })
    }

    /// A string value.
    pub fn str(s: &str) -> Value {
        Value::Str(s.into())
    }

    /// The number in a `Long`, `Double` or `Bool` (true = 1).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Long(v) => Some(*v as f64),
            Value::Double(b) => Some(f64::from_bits(*b)),
            Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The value as Chronon turns it into a string key (`String.valueOf`): strings as is,
    /// numbers in Java's notation (`1.0`, `1.0E7`), booleans `true`/`false`.
    pub fn key_string(&self) -> Box<str> {
        match self {
            Value::Str(s) => s.clone(),
            Value::Long(v) => v.to_string().into(),
            Value::Double(b) => java_double_string(f64::from_bits(*b)).into(),
            Value::Bool(b) => b.to_string().into(),
            Value::Null => "null".into(),
            Value::Bytes(b) => String::from_utf8_lossy(b).into(),
            Value::List(items) => {
                let parts: Vec<Box<str>> = items.iter().map(Value::key_string).collect();
                format!("[{}]", parts.join(", ")).into()
            }
            Value::Map(entries) => {
                let parts: Vec<String> = entries
                    .iter()
                    .map(|(k, v)| format!("{}={}", k.key_string(), v.key_string()))
                    .collect();
                format!("{{{}}}", parts.join(", ")).into()
            }
        }
    }
}

/// Java's `Double.toString`: plain decimal with at least one fraction digit for
/// 1e-3 ≤ |v| < 1e7, otherwise `d.dddE±n`.
pub(crate) fn java_double_string(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0.0" } else { "0.0" }.into();
    }
    let a = v.abs();
    if (1e-3..1e7).contains(&a) {
        let s = format!("{v}");
        if s.contains('.') {
            s
        } else {
            format!("{s}.0")
        }
    } else {
        let s = format!("{v:e}");
        let (mantissa, exp) = s.split_once('e').expect("`{:e}` has an exponent");
        let mantissa = if mantissa.contains('.') {
            mantissa.to_string()
        } else {
            format!("{mantissa}.0")
        };
        format!("{mantissa}E{exp}")
    }
}

/// Order used by MIN/MAX/TOP_K/BOTTOM_K: numbers numerically (doubles by `total_cmp`, which is
/// Java's `Double.compare`), strings and bytes lexicographically, anything else structurally.
pub(crate) fn cmp_values(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Long(x), Value::Long(y)) => x.cmp(y),
        (Value::Double(x), Value::Double(y)) => f64::from_bits(*x).total_cmp(&f64::from_bits(*y)),
        (Value::Long(_), Value::Double(_)) | (Value::Double(_), Value::Long(_)) => {
            let (x, y) = (a.as_f64().unwrap_or(0.0), b.as_f64().unwrap_or(0.0));
            x.total_cmp(&y).then_with(|| a.cmp(b))
        }
        _ => a.cmp(b),
    }
}

fn unsupported(dt: &DataType, detail: &str) -> Error {
    Error::Unsupported {
        what: format!("an aggregation input column of Arrow type {dt}"),
        detail: detail.to_string(),
    }
}

fn arrow_err(context: String, message: String) -> Error {
    Error::arrow(context, ArrowError::InvalidArgumentError(message))
}

/// Every row of an Arrow array as [`Value`]s: all int widths and unsigned → `Long`,
/// Float16/32/64 and decimals → `Double`, Boolean → `Bool`, Utf8/LargeUtf8/Utf8View → `Str`,
/// Binary variants → `Bytes`, List/LargeList → `List`, Map → `Map` (sorted by key),
/// Date32/Date64 → `Long(days)`, Timestamp → `Long(ms)`, dictionaries as their values.
/// Other types: an error naming the type.
pub fn column_values(array: &ArrayRef) -> Result<Vec<Value>> {
    let a = array.as_ref();
    let n = a.len();
    let mut out = Vec::with_capacity(n);
    macro_rules! prim {
        ($t:ty, $f:expr) => {{
            let p = a.as_primitive::<$t>();
            for i in 0..n {
                out.push(if p.is_null(i) {
                    Value::Null
                } else {
                    $f(p.value(i))
                });
            }
        }};
    }
    macro_rules! each {
        ($arr:expr, $f:expr) => {{
            let arr = $arr;
            for i in 0..n {
                out.push(if arr.is_null(i) {
                    Value::Null
                } else {
                    $f(arr.value(i))
                });
            }
        }};
    }
    match a.data_type() {
        DataType::Null => out.resize(n, Value::Null),
        DataType::Boolean => each!(a.as_boolean(), Value::Bool),
        DataType::Int8 => prim!(Int8Type, |v| Value::Long(v as i64)),
        DataType::Int16 => prim!(Int16Type, |v| Value::Long(v as i64)),
        DataType::Int32 => prim!(Int32Type, |v| Value::Long(v as i64)),
        DataType::Int64 => prim!(Int64Type, Value::Long),
        DataType::UInt8 => prim!(UInt8Type, |v| Value::Long(v as i64)),
        DataType::UInt16 => prim!(UInt16Type, |v| Value::Long(v as i64)),
        DataType::UInt32 => prim!(UInt32Type, |v| Value::Long(v as i64)),
        DataType::UInt64 => prim!(UInt64Type, |v: u64| Value::Long(v as i64)),
        DataType::Float32 => prim!(Float32Type, |v: f32| Value::double(v as f64)),
        DataType::Float64 => prim!(Float64Type, Value::double),
        DataType::Date32 => prim!(Date32Type, |v| Value::Long(v as i64)),
        DataType::Timestamp(unit, _) => match unit {
            TimeUnit::Second => prim!(TimestampSecondType, |v: i64| Value::Long(v.wrapping_mul(1000))),
            TimeUnit::Millisecond => prim!(TimestampMillisecondType, Value::Long),
            TimeUnit::Microsecond => prim!(TimestampMicrosecondType, |v: i64| Value::Long(v.div_euclid(1000))),
            TimeUnit::Nanosecond => prim!(TimestampNanosecondType, |v: i64| Value::Long(v.div_euclid(1_000_000))),
        },
        DataType::Float16 | DataType::Decimal128(..) | DataType::Decimal256(..) => {
            return column_values(&cast(array, &DataType::Float64)?);
        }
        DataType::Date64 => return column_values(&cast(array, &DataType::Date32)?),
        DataType::Dictionary(_, value_type) => return column_values(&cast(array, value_type)?),
        DataType::Utf8 => each!(a.as_string::<i32>(), Value::str),
        DataType::LargeUtf8 => each!(a.as_string::<i64>(), Value::str),
        DataType::Utf8View => each!(a.as_string_view(), Value::str),
        DataType::Binary => each!(a.as_binary::<i32>(), |b: &[u8]| Value::Bytes(b.into())),
        DataType::LargeBinary => each!(a.as_binary::<i64>(), |b: &[u8]| Value::Bytes(b.into())),
        DataType::BinaryView => each!(a.as_binary_view(), |b: &[u8]| Value::Bytes(b.into())),
        DataType::FixedSizeBinary(_) => each!(a.as_fixed_size_binary(), |b: &[u8]| Value::Bytes(b.into())),
        DataType::List(_) => {
            let l = a.as_list::<i32>();
            let items = column_values(l.values())?;
            let offsets = l.value_offsets();
            for i in 0..n {
                out.push(if l.is_null(i) {
                    Value::Null
                } else {
                    Value::List(items[offsets[i] as usize..offsets[i + 1] as usize].to_vec())
                });
            }
        }
        DataType::LargeList(_) => {
            let l = a.as_list::<i64>();
            let items = column_values(l.values())?;
            let offsets = l.value_offsets();
            for i in 0..n {
                out.push(if l.is_null(i) {
                    Value::Null
                } else {
                    Value::List(items[offsets[i] as usize..offsets[i + 1] as usize].to_vec())
                });
            }
        }
        DataType::Map(..) => {
            let m = a.as_map();
            let keys = column_values(m.keys())?;
            let values = column_values(m.values())?;
            let offsets = m.value_offsets();
            for i in 0..n {
                if m.is_null(i) {
                    out.push(Value::Null);
                    continue;
                }
                let range = offsets[i] as usize..offsets[i + 1] as usize;
                let mut entries: Vec<(Value, Value)> =
                    range.map(|j| (keys[j].clone(), values[j].clone())).collect();
                entries.sort_by(|x, y| x.0.cmp(&y.0));
                out.push(Value::Map(entries));
            }
        }
        other => return Err(unsupported(other, "weft aggregates numbers, booleans, strings, binary, lists and maps of those; select a supported expression instead")),
    }
    Ok(out)
}

fn cast(array: &ArrayRef, to: &DataType) -> Result<ArrayRef> {
    arrow::compute::cast(array, to).map_err(|e| {
        Error::arrow(
            format!(
                "converting a {} aggregation input to {to}",
                array.data_type()
            ),
            e,
        )
    })
}

/// The list type weft produces: `List(Field("item", element, nullable))`.
pub(crate) fn list_type(element: DataType) -> DataType {
    DataType::List(Arc::new(Field::new_list_field(element, true)))
}

/// The map type weft produces: `Map(entries: Struct(keys: Utf8 not null, values: nullable))`.
pub(crate) fn map_type(values: DataType) -> DataType {
    let field = Field::new_map(
        "map",
        "entries",
        Field::new("keys", DataType::Utf8, false),
        Field::new("values", values, true),
        false,
        true,
    );
    field.data_type().clone()
}

/// The error for a value that does not fit a column of type `dt`.
pub(crate) fn misfit(dt: &DataType, v: &Value) -> Error {
    arrow_err(
        format!("building a {dt} column from aggregate values"),
        format!("value {v:?} does not fit the type"),
    )
}

/// Builds an Arrow array of type `dt` from values (`Null` → null). Supports Int64, Int32,
/// Float64, Float32, Boolean, Utf8, Binary, List (of any supported) and Map (Utf8 keys → any
/// supported; the field names of `dt` are kept). Errors if a value does not fit the type.
pub fn to_array(dt: &DataType, values: &[Value]) -> Result<ArrayRef> {
    let misfit = |v: &Value| misfit(dt, v);
    macro_rules! build {
        ($arr:ty, $conv:expr) => {{
            let mut items = Vec::with_capacity(values.len());
            for v in values {
                items.push(if v.is_null() {
                    None
                } else {
                    Some($conv(v).ok_or_else(|| misfit(v))?)
                });
            }
            Arc::new(<$arr>::from(items)) as ArrayRef
        }};
    }
    let array: ArrayRef = match dt {
        DataType::Int64 => build!(Int64Array, |v: &Value| match v {
            Value::Long(x) => Some(*x),
            _ => None,
        }),
        DataType::Int32 => build!(Int32Array, |v: &Value| match v {
            Value::Long(x) => i32::try_from(*x).ok(),
            _ => None,
        }),
        DataType::Float64 => build!(Float64Array, |v: &Value| match v {
            Value::Double(_) | Value::Long(_) => v.as_f64(),
            _ => None,
        }),
        DataType::Float32 => build!(Float32Array, |v: &Value| match v {
            Value::Double(_) | Value::Long(_) => v.as_f64().map(|x| x as f32),
            _ => None,
        }),
        DataType::Boolean => build!(BooleanArray, |v: &Value| match v {
            Value::Bool(b) => Some(*b),
            _ => None,
        }),
        DataType::Utf8 => build!(StringArray, str_of),
        DataType::Binary => build!(BinaryArray, bytes_of),
        DataType::List(field) => {
            let flat = flatten(values, |v| match v {
                Value::List(items) => Some(items.as_slice()),
                _ => None,
            })
            .map_err(misfit)?;
            let child = to_array(field.data_type(), &flat.items)?;
            let list = ListArray::try_new(field.clone(), flat.offsets, child, flat.nulls)
                .map_err(|e| Error::arrow(format!("building a {dt} column"), e))?;
            Arc::new(list)
        }
        DataType::Map(field, sorted) => {
            let DataType::Struct(fields) = field.data_type() else {
                return Err(arrow_err(
                    format!("building a {dt} column"),
                    "map entries are not a struct".into(),
                ));
            };
            if fields.len() != 2 {
                return Err(arrow_err(
                    format!("building a {dt} column"),
                    "map entries need two fields".into(),
                ));
            }
            let flat = flatten(values, |v| match v {
                Value::Map(entries) => Some(entries.as_slice()),
                _ => None,
            })
            .map_err(misfit)?;
            let (keys, vals): (Vec<Value>, Vec<Value>) = flat.items.into_iter().unzip();
            if let Some(null_key) = keys.iter().find(|k| k.is_null()) {
                return Err(misfit(null_key));
            }
            let key_array = to_array(fields[0].data_type(), &keys)?;
            let value_array = to_array(fields[1].data_type(), &vals)?;
            let entries = StructArray::try_new(fields.clone(), vec![key_array, value_array], None)
                .map_err(|e| Error::arrow(format!("building a {dt} column"), e))?;
            let map = MapArray::try_new(field.clone(), flat.offsets, entries, flat.nulls, *sorted)
                .map_err(|e| Error::arrow(format!("building a {dt} column"), e))?;
            Arc::new(map)
        }
        other => {
            return Err(arrow_err(
                format!("building a {other} column from aggregate values"),
                "weft builds Int64, Int32, Float64, Float32, Boolean, Utf8, Binary, List and Map columns only".into(),
            ));
        }
    };
    Ok(array)
}

fn str_of(v: &Value) -> Option<&str> {
    match v {
        Value::Str(s) => Some(s),
        _ => None,
    }
}

fn bytes_of(v: &Value) -> Option<&[u8]> {
    match v {
        Value::Bytes(b) => Some(b),
        _ => None,
    }
}

/// List-like values laid out for Arrow: offsets, validity, concatenated children.
struct Flat<T> {
    offsets: OffsetBuffer<i32>,
    nulls: Option<NullBuffer>,
    items: Vec<T>,
}

/// Lays out list-like values; `Err(value)` for a value that is neither null nor of the
/// expected kind.
fn flatten<'a, T: Clone + 'a>(
    values: &'a [Value],
    children: impl Fn(&'a Value) -> Option<&'a [T]>,
) -> std::result::Result<Flat<T>, &'a Value> {
    let mut lengths = Vec::with_capacity(values.len());
    let mut valid = Vec::with_capacity(values.len());
    let mut items = Vec::new();
    for v in values {
        if v.is_null() {
            lengths.push(0);
            valid.push(false);
            continue;
        }
        let children = children(v).ok_or(v)?;
        lengths.push(children.len());
        valid.push(true);
        items.extend_from_slice(children);
    }
    let nulls = if valid.iter().all(|v| *v) {
        None
    } else {
        Some(NullBuffer::from(valid))
    };
    Ok(Flat {
        offsets: OffsetBuffer::from_lengths(lengths),
        nulls,
        items,
    })
}
