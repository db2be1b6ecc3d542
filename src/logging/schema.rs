//! Logging schemas (chronon-semantics §5.2, §5.3, §5.6): the join name and the key and value
//! fields a join logs, their Avro record schemas, the logging-schema JSON
//! `{"join_name": …, "key_schema": "<Avro schema JSON>", "value_schema": "<Avro schema JSON>"}`
//! and its hash (first 10 characters of base64(md5(JSON))).
//!
//! This module is the one place that writes that JSON: the join codec encodes log records with
//! the Avro schemas it embeds, the fetcher publishes it in control events, the log flattener
//! copies it into the `schema_hash_<h>` properties of `<join>_logged`, and log bootstrap reads
//! it back from there (§4.2): a log row with hash `h` truly logged exactly the value fields of
//! that schema.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arrow::datatypes::{DataType, Field};
use base64::Engine as _;
use md5::{Digest, Md5};
use serde_json::{json, Value};

/// Table property prefix of the logging schemas.
pub const SCHEMA_HASH_PREFIX: &str = "schema_hash_";
/// Table property that marks a flattened log table.
pub const LOG_TABLE_PROPERTY: &str = "chronon_log_table";
/// Namespace of the key and value records.
pub const AVRO_NAMESPACE: &str = "ai.chronon.data";
/// Suffix Chronon gives a record name already used in the same schema.
const REPEATED_NAME: &str = "_REPEATED_NAME_";

/// A logging schema: the join it belongs to and its key and value fields.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggingSchema {
    pub join_name: String,
    pub keys: Vec<(String, DataType)>,
    pub values: Vec<(String, DataType)>,
}

impl LoggingSchema {
    /// Parses the JSON of a `schema_hash_<h>` property or a control event.
    pub fn parse(json_text: &str) -> Result<LoggingSchema, String> {
        let v: Value = serde_json::from_str(json_text).map_err(|e| format!("not JSON: {e}"))?;
        let join_name = v
            .get("join_name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        Ok(LoggingSchema {
            join_name,
            keys: record_fields_of(&v, "key_schema")?,
            values: record_fields_of(&v, "value_schema")?,
        })
    }

    /// The key record's name: `<sanitized join name>_key`.
    pub fn key_record_name(&self) -> String {
        format!("{}_key", crate::config::naming::sanitize(&self.join_name))
    }

    /// The value record's name: `join_combined_<sanitized join name>`.
    pub fn value_record_name(&self) -> String {
        format!(
            "join_combined_{}",
            crate::config::naming::sanitize(&self.join_name)
        )
    }

    /// The Avro schema JSON of the key record (every field a `["null", T]` union with doc `""`
    /// and default null, as Chronon's join codec writes them).
    pub fn key_schema_json(&self) -> String {
        record_json(&self.key_record_name(), &self.keys)
    }

    /// The Avro schema JSON of the value record.
    pub fn value_schema_json(&self) -> String {
        record_json(&self.value_record_name(), &self.values)
    }

    /// The logging-schema JSON stored in control events and `schema_hash_<h>` properties.
    pub fn to_json(&self) -> String {
        let mut m = serde_json::Map::new();
        m.insert("join_name".into(), json!(self.join_name));
        m.insert("key_schema".into(), json!(self.key_schema_json()));
        m.insert("value_schema".into(), json!(self.value_schema_json()));
        Value::Object(m).to_string()
    }

    /// The schema hash of [`LoggingSchema::to_json`].
    pub fn hash(&self) -> String {
        hash_json(&self.to_json())
    }

    /// The first field (key fields first) whose type a log cannot carry, with the reason.
    pub fn unsupported_field(&self) -> Option<(String, String)> {
        self.keys
            .iter()
            .chain(&self.values)
            .find_map(|(n, t)| unsupported(t).map(|why| (n.clone(), why)))
    }
}

/// The schema hash of a logging-schema JSON text: the first 10 characters of
/// base64(md5(text)).
pub fn hash_json(json_text: &str) -> String {
    let digest = Md5::digest(json_text.as_bytes());
    let mut h = base64::engine::general_purpose::STANDARD.encode(digest);
    h.truncate(10);
    h
}

/// The Avro schema JSON text embedded under `key` (`key_schema` or `value_schema`) in a
/// logging-schema JSON text.
pub fn embedded_schema(json_text: &str, key: &str) -> Result<String, String> {
    let v: Value = serde_json::from_str(json_text).map_err(|e| format!("not JSON: {e}"))?;
    v.get(key)
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| format!("no `{key}` string"))
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

/// The `(name, Arrow type)` fields of an Avro record schema JSON text.
pub fn record_fields_json(schema_text: &str) -> Result<Vec<(String, DataType)>, String> {
    let schema: Value = serde_json::from_str(schema_text).map_err(|e| format!("not JSON: {e}"))?;
    record_fields(&schema)
}

fn record_fields_of(v: &Value, key: &str) -> Result<Vec<(String, DataType)>, String> {
    let text = v
        .get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("no `{key}` string"))?;
    record_fields_json(text).map_err(|e| format!("`{key}`: {e}"))
}

fn record_json(name: &str, fields: &[(String, DataType)]) -> String {
    let mut names = BTreeSet::from([name.to_string()]);
    json!({
        "type": "record",
        "name": name,
        "namespace": AVRO_NAMESPACE,
        "doc": "",
        "fields": fields.iter().map(|(n, t)| json!({
            "name": n,
            "type": ["null", avro_type(t, n, &mut names)],
            "doc": "",
            "default": null,
        })).collect::<Vec<_>>(),
    })
    .to_string()
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

/// Why a log cannot carry type `t` (`None`: it can).
fn unsupported(t: &DataType) -> Option<String> {
    match t {
        DataType::Int64
        | DataType::Int32
        | DataType::Int16
        | DataType::Int8
        | DataType::Float64
        | DataType::Float32
        | DataType::Utf8
        | DataType::LargeUtf8
        | DataType::Utf8View
        | DataType::Boolean
        | DataType::Binary
        | DataType::LargeBinary => None,
        DataType::List(f) | DataType::LargeList(f) => unsupported(f.data_type()),
        DataType::Map(f, _) => match f.data_type() {
            DataType::Struct(kv) if kv.len() == 2 => match kv[0].data_type() {
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
                    unsupported(kv[1].data_type())
                }
                k => Some(format!("Avro maps have string keys, this map has {k} keys")),
            },
            _ => Some("a map whose entries are not key-value structs".into()),
        },
        DataType::Struct(fs) => fs.iter().find_map(|f| {
            unsupported(f.data_type()).map(|why| format!("struct field `{}`: {why}", f.name()))
        }),
        other => Some(format!(
            "{other} has no Avro type in Chronon logs (DATE and TIMESTAMP are not supported either)"
        )),
    }
}

/// The Avro type of an Arrow type. Nested records are named `<field>_struct`, made unique
/// within the schema with Chronon's `_REPEATED_NAME_<i>` suffix.
fn avro_type(t: &DataType, name: &str, names: &mut BTreeSet<String>) -> Value {
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
            json!({"type": "array", "items": ["null", avro_type(f.data_type(), name, names)]})
        }
        DataType::Map(f, _) => match f.data_type() {
            DataType::Struct(kv) if kv.len() == 2 => {
                json!({"type": "map", "values": ["null", avro_type(kv[1].data_type(), name, names)]})
            }
            _ => json!("string"),
        },
        DataType::Struct(fs) => {
            let base = format!("{name}_struct");
            let mut record_name = base.clone();
            let mut i = 0;
            while names.contains(&record_name) {
                record_name = format!("{base}{REPEATED_NAME}{i}");
                i += 1;
            }
            names.insert(record_name.clone());
            json!({
                "type": "record",
                "name": record_name,
                "fields": fs.iter().map(|f| json!({
                    "name": f.name(),
                    "type": ["null", avro_type(f.data_type(), f.name(), names)],
                    "default": null,
                })).collect::<Vec<_>>(),
            })
        }
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
                (
                    "m".into(),
                    crate::aggregate::value::map_type(DataType::Float64),
                ),
            ],
        };
        let parsed = LoggingSchema::parse(&s.to_json()).unwrap();
        assert_eq!(parsed, s);
        assert_eq!(s.hash(), parsed.hash());
        assert_eq!(s.hash().len(), 10);
        assert_eq!(s.hash(), hash_json(&s.to_json()));
        let mut other = s.clone();
        other.values.pop();
        assert_ne!(s.hash(), other.hash());
        assert_eq!(
            embedded_schema(&s.to_json(), "value_schema").unwrap(),
            s.value_schema_json()
        );
        assert!(s
            .key_schema_json()
            .contains("\"risk_checkout_online_v1_key\""));
        assert!(s
            .value_schema_json()
            .contains("\"join_combined_risk_checkout_online_v1\""));
    }

    #[test]
    fn nested_record_names_are_unique() {
        let inner = DataType::Struct(vec![Field::new("a", DataType::Int64, true)].into());
        let outer = DataType::Struct(vec![Field::new("a", inner.clone(), true)].into());
        let s = LoggingSchema {
            join_name: "t.j".into(),
            keys: vec![],
            values: vec![("a".into(), outer.clone()), ("b".into(), inner)],
        };
        let text = s.value_schema_json();
        assert!(text.contains("\"a_struct\"") && text.contains("\"a_struct_REPEATED_NAME_0\""));
        apache_avro::Schema::parse_str(&text).expect("a valid Avro schema");
        assert_eq!(LoggingSchema::parse(&s.to_json()).unwrap(), s);
    }

    #[test]
    fn unsupported_types_are_named() {
        let s = LoggingSchema {
            join_name: "t.j".into(),
            keys: vec![("k".into(), DataType::Utf8)],
            values: vec![("d".into(), DataType::Date32)],
        };
        let (f, why) = s.unsupported_field().unwrap();
        assert_eq!(f, "d");
        assert!(why.contains("Date32"), "{why}");
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
