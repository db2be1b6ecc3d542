//! Logging schemas as a flattened log table carries them (chronon-semantics §5.3, §5.6): the
//! table property `schema_hash_<h>` holds, for every schema hash `h` seen in the log, the JSON
//! `{"join_name": …, "key_schema": "<Avro schema JSON>", "value_schema": "<Avro schema JSON>"}`.
//! A log row with hash `h` truly logged exactly the value fields of that schema, so log
//! bootstrap coverage is decided per row from them (§4.2).
//!
//! The same module builds such schemas, so the log flattener and tests write what log
//! bootstrap reads.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field};
use base64::Engine as _;
use md5::{Digest, Md5};
use serde_json::{json, Value};

/// Table property prefix of the logging schemas.
pub const SCHEMA_HASH_PREFIX: &str = "schema_hash_";
/// Table property that marks a flattened log table.
pub const LOG_TABLE_PROPERTY: &str = "chronon_log_table";

/// A logging schema: the join it belongs to and its key and value fields.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggingSchema {
    pub join_name: String,
    pub keys: Vec<(String, DataType)>,
    pub values: Vec<(String, DataType)>,
}

impl LoggingSchema {
    /// Parses the JSON of a `schema_hash_<h>` property.
    pub fn parse(json_text: &str) -> Result<LoggingSchema, String> {
        let v: Value = serde_json::from_str(json_text).map_err(|e| format!("not JSON: {e}"))?;
        let join_name = v
            .get("join_name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let record = |k: &str| -> Result<Vec<(String, DataType)>, String> {
            let text = v
                .get(k)
                .and_then(Value::as_str)
                .ok_or_else(|| format!("no `{k}` string"))?;
            let schema: Value =
                serde_json::from_str(text).map_err(|e| format!("`{k}` is not JSON: {e}"))?;
            record_fields(&schema).map_err(|e| format!("`{k}`: {e}"))
        };
        Ok(LoggingSchema {
            join_name,
            keys: record("key_schema")?,
            values: record("value_schema")?,
        })
    }

    /// The JSON stored in the `schema_hash_<h>` property (Avro records, every field a
    /// nullable union, as Chronon's join codec writes them).
    pub fn to_json(&self) -> String {
        let record = |name: &str, fields: &[(String, DataType)]| {
            json!({
                "type": "record",
                "name": name,
                "namespace": "ai.chronon.data",
                "doc": "",
                "fields": fields.iter().map(|(n, t)| json!({
                    "name": n,
                    "type": ["null", avro_type(t, n)],
                    "doc": "",
                    "default": null,
                })).collect::<Vec<_>>(),
            })
            .to_string()
        };
        let base = crate::config::naming::sanitize(&self.join_name);
        let mut m = serde_json::Map::new();
        m.insert("join_name".into(), json!(self.join_name));
        m.insert(
            "key_schema".into(),
            json!(record(&format!("{base}_key"), &self.keys)),
        );
        m.insert(
            "value_schema".into(),
            json!(record(&format!("join_combined_{base}"), &self.values)),
        );
        Value::Object(m).to_string()
    }

    /// The schema hash: the first 10 characters of base64(md5(JSON)).
    pub fn hash(&self) -> String {
        let digest = Md5::digest(self.to_json().as_bytes());
        let mut h = base64::engine::general_purpose::STANDARD.encode(digest);
        h.truncate(10);
        h
    }
}

/// The logging schemas in a table's properties, by hash. A property that does not parse is an
/// error naming the table and the hash.
pub fn read_schemas(
    table: &str,
    props: &BTreeMap<String, String>,
) -> crate::error::Result<BTreeMap<String, LoggingSchema>> {
    let mut out = BTreeMap::new();
    for (k, v) in props {
        let Some(h) = k.strip_prefix(SCHEMA_HASH_PREFIX) else {
            continue;
        };
        let s = LoggingSchema::parse(v).map_err(|e| {
            crate::error::Error::data(
                table,
                None,
                format!("table property `{k}` is not a logging schema: {e}"),
            )
            .with_fix("re-run the log flattener for this join, or remove the property")
        })?;
        out.insert(h.to_string(), s);
    }
    Ok(out)
}

fn record_fields(schema: &Value) -> Result<Vec<(String, DataType)>, String> {
    let fields = schema
        .get("fields")
        .and_then(Value::as_array)
        .ok_or("not an Avro record (no `fields`)")?;
    fields
        .iter()
        .map(|f| {
            let name = f
                .get("name")
                .and_then(Value::as_str)
                .ok_or("a field without a name")?;
            let t = f.get("type").ok_or(format!("field `{name}` has no type"))?;
            Ok((
                name.to_string(),
                arrow_of(t).map_err(|e| format!("field `{name}`: {e}"))?,
            ))
        })
        .collect()
}

/// The Arrow type of an Avro type (unions with null are unwrapped).
fn arrow_of(t: &Value) -> Result<DataType, String> {
    match t {
        Value::Array(branches) => {
            let non_null: Vec<&Value> = branches.iter().filter(|b| *b != "null").collect();
            match non_null.as_slice() {
                [one] => arrow_of(one),
                _ => Err(format!("unsupported union {t}")),
            }
        }
        Value::String(s) => primitive(s, None),
        Value::Object(o) => {
            let ty = o.get("type").and_then(Value::as_str).unwrap_or_default();
            match ty {
                "array" => Ok(DataType::List(Arc::new(Field::new(
                    "item",
                    arrow_of(o.get("items").ok_or("array without items")?)?,
                    true,
                )))),
                "map" => Ok(crate::aggregate::value::map_type(arrow_of(
                    o.get("values").ok_or("map without values")?,
                )?)),
                "record" => Ok(DataType::Struct(
                    record_fields(t)?
                        .into_iter()
                        .map(|(n, t)| Field::new(n, t, true))
                        .collect::<Vec<_>>()
                        .into(),
                )),
                other => primitive(other, o.get("logicalType").and_then(Value::as_str)),
            }
        }
        _ => Err(format!("unsupported Avro type {t}")),
    }
}

fn primitive(s: &str, logical: Option<&str>) -> Result<DataType, String> {
    Ok(match (s, logical) {
        ("int", Some("short")) => DataType::Int16,
        ("int", Some("byte")) => DataType::Int8,
        ("long", _) => DataType::Int64,
        ("int", _) => DataType::Int32,
        ("double", _) => DataType::Float64,
        ("float", _) => DataType::Float32,
        ("string", _) => DataType::Utf8,
        ("boolean", _) => DataType::Boolean,
        ("bytes", _) => DataType::Binary,
        _ => return Err(format!("unsupported Avro type {s}")),
    })
}

fn avro_type(t: &DataType, name: &str) -> Value {
    match t {
        DataType::Int64 => json!("long"),
        DataType::Int32 => json!("int"),
        DataType::Int16 => json!({"type": "int", "logicalType": "short"}),
        DataType::Int8 => json!({"type": "int", "logicalType": "byte"}),
        DataType::Float64 => json!("double"),
        DataType::Float32 => json!("float"),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => json!("string"),
        DataType::Boolean => json!("boolean"),
        DataType::Binary | DataType::LargeBinary => json!("bytes"),
        DataType::List(f) | DataType::LargeList(f) => {
            json!({"type": "array", "items": ["null", avro_type(f.data_type(), name)]})
        }
        DataType::Map(f, _) => match f.data_type() {
            DataType::Struct(kv) if kv.len() == 2 => {
                json!({"type": "map", "values": ["null", avro_type(kv[1].data_type(), name)]})
            }
            _ => json!("string"),
        },
        DataType::Struct(fs) => json!({
            "type": "record",
            "name": format!("{name}_struct"),
            "fields": fs.iter().map(|f| json!({
                "name": f.name(),
                "type": ["null", avro_type(f.data_type(), f.name())],
                "default": null,
            })).collect::<Vec<_>>(),
        }),
        _ => json!("string"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_hashes_stably() {
        let s = LoggingSchema {
            join_name: "risk.checkout_online.v1".into(),
            keys: vec![
                ("event_id".into(), DataType::Utf8),
                ("user_id".into(), DataType::Utf8),
            ],
            values: vec![
                (
                    "risk_purchases_v1_amount_cents_sum_7d".into(),
                    DataType::Int64,
                ),
                ("avg".into(), DataType::Float64),
                (
                    "hist".into(),
                    DataType::List(Arc::new(Field::new("item", DataType::Int64, true))),
                ),
                ("m".into(), crate::aggregate::value::map_type(DataType::Float64)),
            ],
        };
        let parsed = LoggingSchema::parse(&s.to_json()).unwrap();
        assert_eq!(parsed, s);
        assert_eq!(s.hash(), parsed.hash());
        assert_eq!(s.hash().len(), 10);
        let mut other = s.clone();
        other.values.pop();
        assert_ne!(s.hash(), other.hash());
    }

    #[test]
    fn bad_properties_are_errors_naming_the_table() {
        let props = BTreeMap::from([("schema_hash_abc".to_string(), "{".to_string())]);
        let e = read_schemas("risk.x_logged", &props)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("risk.x_logged") && e.contains("schema_hash_abc"),
            "{e}"
        );
    }
}
