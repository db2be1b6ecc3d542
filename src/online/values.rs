//! JSON at the edge of the online API: request keys (JSON) to typed values, and served values
//! back to JSON. Keys are cast to the type the GroupBy's key column has offline, as Chronon
//! casts request keys to its codec types, so `"42"` and `42` find the same long key.

use arrow::datatypes::DataType;
use base64::Engine as _;
use serde_json::Value as Json;

use crate::aggregate::Value;

/// A JSON request value as a value of type `t`; `None` when it cannot be one.
pub fn from_json(v: &Json, t: &DataType) -> Option<Value> {
    use DataType::*;
    Some(match (v, t) {
        (Json::Null, _) => Value::Null,
        (Json::Bool(b), Boolean) => Value::Bool(*b),
        (Json::String(s), Boolean) => Value::Bool(s.parse().ok()?),
        (Json::Number(n), Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32 | UInt64) => {
            Value::Long(
                n.as_i64()
                    .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))?,
            )
        }
        (Json::String(s), Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32 | UInt64) => {
            Value::Long(s.trim().parse().ok()?)
        }
        (Json::Number(n), Float16 | Float32 | Float64) => Value::double(n.as_f64()?),
        (Json::String(s), Float16 | Float32 | Float64) => Value::double(s.trim().parse().ok()?),
        (Json::String(s), Utf8 | LargeUtf8 | Utf8View) => Value::str(s),
        (Json::Number(n), Utf8 | LargeUtf8 | Utf8View) => Value::str(&n.to_string()),
        (Json::Bool(b), Utf8 | LargeUtf8 | Utf8View) => Value::str(&b.to_string()),
        (Json::Array(items), List(f) | LargeList(f)) => Value::List(
            items
                .iter()
                .map(|x| from_json(x, f.data_type()))
                .collect::<Option<_>>()?,
        ),
        _ => return None,
    })
}

/// A served value as JSON (NaN and infinities become null; bytes become base64).
pub fn to_json(v: &Value) -> Json {
    match v {
        Value::Null => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Long(n) => Json::from(*n),
        Value::Double(_) => v
            .as_f64()
            .and_then(serde_json::Number::from_f64)
            .map_or(Json::Null, Json::Number),
        Value::Str(s) => Json::String(s.to_string()),
        Value::Bytes(b) => Json::String(base64::engine::general_purpose::STANDARD.encode(b)),
        Value::List(items) => Json::Array(items.iter().map(to_json).collect()),
        Value::Map(entries) => Json::Object(
            entries
                .iter()
                .map(|(k, v)| (k.key_string().to_string(), to_json(v)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_are_cast_to_the_key_type() {
        assert_eq!(
            from_json(&json!("42"), &DataType::Int64),
            Some(Value::Long(42))
        );
        assert_eq!(
            from_json(&json!(42), &DataType::Utf8),
            Some(Value::str("42"))
        );
        assert_eq!(from_json(&json!(1.5), &DataType::Int64), None);
        assert_eq!(from_json(&json!(null), &DataType::Int64), Some(Value::Null));
        assert_eq!(to_json(&Value::double(f64::NAN)), Json::Null);
        assert_eq!(to_json(&Value::Long(7)), json!(7));
    }
}
