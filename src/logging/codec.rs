//! The join codec (chronon-semantics §5.2): a join's key and value records as Avro binary
//! datums (no container header), every field a `["null", T]` union.
//!
//! Types: Int64 → long, Int32 → int, Int16 / Int8 → int with logicalType short / byte,
//! Float64 → double, Float32 → float, Utf8 → string, Boolean → boolean, Binary → bytes,
//! List → array, Map (string keys) → map, Struct → record. Values are weft's
//! [`Value`]s: numbers as `Long` / `Double` (a `Long` also fits a double or float field),
//! lists as `List`, maps as `Map` with `Str` keys, and a struct as a `List` of its field values
//! in field order (a `Map` from field name to value is accepted when encoding). NULL is the
//! null branch; any other value that does not fit its field is an error.
//!
//! A codec is built from a join's fields ([`JoinCodec::new`]) or from a logging-schema JSON
//! alone ([`JoinCodec::from_json`]): decoding uses the writer's Avro schemas exactly as the
//! JSON embeds them, so old logs decode with the schema their control event published.

use std::collections::HashMap;
use std::io::Read;

use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::types::Value as Avro;
use apache_avro::writer::datum::GenericDatumWriter;
use apache_avro::Schema;
use arrow::datatypes::DataType;
use arrow::error::ArrowError;

use super::schema::{embedded_schema, hash_json, record_fields_json, LoggingSchema};
use super::{LoggableResponse, SCHEMA_PUBLISH_EVENT};
use crate::aggregate::Value;
use crate::error::{Error, Result};

fn codec_err(context: impl Into<String>, message: String) -> Error {
    Error::arrow(context, ArrowError::InvalidArgumentError(message))
}

/// One Avro record (a join's key or value record): its schema and fields.
#[derive(Debug, Clone)]
pub struct RecordCodec {
    schema: Schema,
    fields: Vec<(String, DataType)>,
    /// e.g. "the value record of join `risk.checkout.v1`", for errors.
    what: String,
}

impl RecordCodec {
    /// A record codec from an Avro record schema JSON text.
    pub fn from_json(schema_text: &str, what: &str) -> Result<RecordCodec> {
        let fields = record_fields_json(schema_text)
            .map_err(|e| codec_err(format!("reading the Avro schema of {what}"), e))?;
        let schema = Schema::parse_str(schema_text).map_err(|e| {
            codec_err(
                format!("reading the Avro schema of {what}"),
                format!("{e} (field names must match [A-Za-z_][A-Za-z0-9_]*)"),
            )
        })?;
        Ok(RecordCodec {
            schema,
            fields,
            what: what.to_string(),
        })
    }

    /// The record's fields, in order.
    pub fn fields(&self) -> &[(String, DataType)] {
        &self.fields
    }

    /// Encodes one record; `values` are in field order.
    pub fn encode(&self, values: &[Value]) -> Result<Vec<u8>> {
        let context = || format!("encoding {}", self.what);
        if values.len() != self.fields.len() {
            return Err(codec_err(
                context(),
                format!(
                    "{} values for {} fields ({})",
                    values.len(),
                    self.fields.len(),
                    self.field_names()
                ),
            ));
        }
        let mut record = Vec::with_capacity(values.len());
        for ((name, dt), v) in self.fields.iter().zip(values) {
            let a = nullable(dt, v)
                .map_err(|e| codec_err(context(), format!("field `{name}`: {e}")))?;
            record.push((name.clone(), a));
        }
        let writer = GenericDatumWriter::builder(&self.schema)
            .build()
            .map_err(|e| codec_err(context(), e.to_string()))?;
        writer
            .write_value_to_vec(Avro::Record(record))
            .map_err(|e| codec_err(context(), e.to_string()))
    }

    /// Decodes one record into its field values (in field order). Bytes left over after the
    /// record are an error.
    pub fn decode(&self, bytes: &[u8]) -> Result<Vec<Value>> {
        self.decoder()?.decode(bytes)
    }

    /// A decoder for many records (the schema is resolved once).
    pub fn decoder(&self) -> Result<RecordDecoder<'_>> {
        let reader = GenericDatumReader::builder(&self.schema)
            .build()
            .map_err(|e| codec_err(format!("decoding {}", self.what), e.to_string()))?;
        Ok(RecordDecoder {
            reader,
            codec: self,
        })
    }

    fn field_names(&self) -> String {
        self.fields
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Decodes records of one [`RecordCodec`].
pub struct RecordDecoder<'a> {
    reader: GenericDatumReader<'a>,
    codec: &'a RecordCodec,
}

impl RecordDecoder<'_> {
    /// Decodes one record (see [`RecordCodec::decode`]).
    pub fn decode(&self, bytes: &[u8]) -> Result<Vec<Value>> {
        let context = || format!("decoding {}", self.codec.what);
        let mut input = Strict {
            bytes,
            pos: 0,
            past_end: false,
        };
        let v = self
            .reader
            .read_value(&mut input)
            .map_err(|e| codec_err(context(), e.to_string()))?;
        // apache-avro reads a datum cut short as NULLs: any read past the end is corruption
        if input.past_end {
            return Err(codec_err(
                context(),
                format!(
                    "truncated: the record is longer than its {} bytes",
                    bytes.len()
                ),
            ));
        }
        if input.pos < bytes.len() {
            return Err(codec_err(
                context(),
                format!(
                    "{} bytes left over after the record ({} bytes)",
                    bytes.len() - input.pos,
                    bytes.len()
                ),
            ));
        }
        match v {
            Avro::Record(fields) => fields
                .into_iter()
                .map(|(name, f)| {
                    from_avro(f).map_err(|e| codec_err(context(), format!("field `{name}`: {e}")))
                })
                .collect(),
            other => Err(codec_err(context(), format!("not a record: {other:?}"))),
        }
    }
}

/// A byte reader that remembers whether anything tried to read past the end.
struct Strict<'a> {
    bytes: &'a [u8],
    pos: usize,
    past_end: bool,
}

impl Read for Strict<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.bytes.len() - self.pos);
        if n < buf.len() {
            self.past_end = true;
        }
        buf[..n].copy_from_slice(&self.bytes[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// A join's key and value codecs with their logging schema and its hash.
#[derive(Debug, Clone)]
pub struct JoinCodec {
    schema: LoggingSchema,
    json: String,
    hash: String,
    key: RecordCodec,
    value: RecordCodec,
}

impl JoinCodec {
    /// The codec of join `join_name` (`metaData.name`) logging `keys` and `values`. A type a
    /// log cannot carry (e.g. DATE, TIMESTAMP, a map with non-string keys) is an error naming
    /// the field.
    pub fn new(
        join_name: &str,
        keys: Vec<(String, DataType)>,
        values: Vec<(String, DataType)>,
    ) -> Result<JoinCodec> {
        let schema = LoggingSchema {
            join_name: join_name.to_string(),
            keys,
            values,
        };
        if let Some((field, why)) = schema.unsupported_field() {
            return Err(Error::Unsupported {
                what: format!("logging field `{field}` of join `{join_name}`"),
                detail: format!("{why}; cast it to a LONG, DOUBLE or STRING in a derivation"),
            });
        }
        JoinCodec::from_json(&schema.to_json())
    }

    /// The codec of a logging-schema JSON text (a control event's value, a `schema_hash_<h>`
    /// property), using the Avro schemas it embeds verbatim. Its hash is the hash of `json`.
    pub fn from_json(json: &str) -> Result<JoinCodec> {
        let schema =
            LoggingSchema::parse(json).map_err(|e| codec_err("reading a logging schema", e))?;
        let embedded = |k: &str| {
            embedded_schema(json, k).map_err(|e| codec_err("reading a logging schema", e))
        };
        let name = &schema.join_name;
        let key = RecordCodec::from_json(
            &embedded("key_schema")?,
            &format!("the key record of join `{name}`"),
        )?;
        let value = RecordCodec::from_json(
            &embedded("value_schema")?,
            &format!("the value record of join `{name}`"),
        )?;
        Ok(JoinCodec {
            hash: hash_json(json),
            json: json.to_string(),
            schema,
            key,
            value,
        })
    }

    pub fn encode_key(&self, values: &[Value]) -> Result<Vec<u8>> {
        self.key.encode(values)
    }

    pub fn encode_value(&self, values: &[Value]) -> Result<Vec<u8>> {
        self.value.encode(values)
    }

    pub fn decode_key(&self, bytes: &[u8]) -> Result<Vec<Value>> {
        self.key.decode(bytes)
    }

    pub fn decode_value(&self, bytes: &[u8]) -> Result<Vec<Value>> {
        self.value.decode(bytes)
    }

    pub fn key_codec(&self) -> &RecordCodec {
        &self.key
    }

    pub fn value_codec(&self) -> &RecordCodec {
        &self.value
    }

    /// The logging schema (join name, key and value fields).
    pub fn logging_schema(&self) -> LoggingSchema {
        self.schema.clone()
    }

    /// The logging-schema JSON text (what control events and `schema_hash_<h>` carry).
    pub fn logging_schema_json(&self) -> &str {
        &self.json
    }

    /// The schema hash data events carry.
    pub fn schema_hash(&self) -> &str {
        &self.hash
    }

    /// The control event publishing this schema (§5.3): key = the hash, value = the JSON.
    pub fn control_event(&self, ts_millis: i64) -> LoggableResponse {
        LoggableResponse {
            key_bytes: self.hash.as_bytes().to_vec(),
            value_bytes: self.json.as_bytes().to_vec(),
            name: SCHEMA_PUBLISH_EVENT.to_string(),
            ts_millis,
            schema_hash: None,
        }
    }

    /// A data event for request name `name` (the join's file path name, `team/join.v1`).
    pub fn data_event(
        &self,
        name: &str,
        ts_millis: i64,
        keys: &[Value],
        values: &[Value],
    ) -> Result<LoggableResponse> {
        Ok(LoggableResponse {
            key_bytes: self.encode_key(keys)?,
            value_bytes: self.encode_value(values)?,
            name: name.to_string(),
            ts_millis,
            schema_hash: Some(self.hash.clone()),
        })
    }
}

/// A value as the `["null", T]` union of a field of type `dt`.
fn nullable(dt: &DataType, v: &Value) -> std::result::Result<Avro, String> {
    Ok(match v {
        Value::Null => Avro::Union(0, Box::new(Avro::Null)),
        v => Avro::Union(1, Box::new(to_avro(dt, v)?)),
    })
}

fn to_avro(dt: &DataType, v: &Value) -> std::result::Result<Avro, String> {
    let misfit = || format!("value {v:?} does not fit type {dt}");
    let int = |lo: i64, hi: i64| match v {
        Value::Long(x) if (lo..=hi).contains(x) => Ok(Avro::Int(*x as i32)),
        _ => Err(misfit()),
    };
    match dt {
        DataType::Int64 => match v {
            Value::Long(x) => Ok(Avro::Long(*x)),
            _ => Err(misfit()),
        },
        DataType::Int32 => int(i32::MIN as i64, i32::MAX as i64),
        DataType::Int16 => int(i16::MIN as i64, i16::MAX as i64),
        DataType::Int8 => int(i8::MIN as i64, i8::MAX as i64),
        DataType::Float64 => match v {
            Value::Double(_) | Value::Long(_) => Ok(Avro::Double(v.as_f64().unwrap_or_default())),
            _ => Err(misfit()),
        },
        DataType::Float32 => match v {
            Value::Double(_) | Value::Long(_) => {
                Ok(Avro::Float(v.as_f64().unwrap_or_default() as f32))
            }
            _ => Err(misfit()),
        },
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => match v {
            Value::Str(s) => Ok(Avro::String(s.to_string())),
            _ => Err(misfit()),
        },
        DataType::Boolean => match v {
            Value::Bool(b) => Ok(Avro::Boolean(*b)),
            _ => Err(misfit()),
        },
        DataType::Binary | DataType::LargeBinary => match v {
            Value::Bytes(b) => Ok(Avro::Bytes(b.to_vec())),
            _ => Err(misfit()),
        },
        DataType::List(f) | DataType::LargeList(f) => match v {
            Value::List(items) => Ok(Avro::Array(
                items
                    .iter()
                    .map(|i| nullable(f.data_type(), i))
                    .collect::<std::result::Result<_, _>>()?,
            )),
            _ => Err(misfit()),
        },
        DataType::Map(f, _) => {
            let DataType::Struct(kv) = f.data_type() else {
                return Err(misfit());
            };
            let Value::Map(entries) = v else {
                return Err(misfit());
            };
            let mut m = HashMap::with_capacity(entries.len());
            for (k, x) in entries {
                let Value::Str(k) = k else {
                    return Err(format!(
                        "map key {k:?} is not a string (Avro map keys are strings)"
                    ));
                };
                m.insert(k.to_string(), nullable(kv[1].data_type(), x)?);
            }
            Ok(Avro::Map(m))
        }
        DataType::Struct(fs) => {
            let items: Vec<Value> = match v {
                Value::List(items) if items.len() == fs.len() => items.clone(),
                Value::Map(entries) => {
                    let mut items = vec![Value::Null; fs.len()];
                    for (k, x) in entries {
                        let i = match k {
                            Value::Str(k) => fs.iter().position(|f| f.name().as_str() == &**k),
                            _ => None,
                        }
                        .ok_or_else(|| format!("struct {dt} has no field {k:?}"))?;
                        items[i] = x.clone();
                    }
                    items
                }
                _ => return Err(misfit()),
            };
            Ok(Avro::Record(
                fs.iter()
                    .zip(&items)
                    .map(|(f, x)| {
                        nullable(f.data_type(), x)
                            .map(|a| (f.name().clone(), a))
                            .map_err(|e| format!("struct field `{}`: {e}", f.name()))
                    })
                    .collect::<std::result::Result<_, _>>()?,
            ))
        }
        _ => Err(misfit()),
    }
}

/// A decoded Avro value as a weft value (records become lists of their field values).
fn from_avro(a: Avro) -> std::result::Result<Value, String> {
    Ok(match a {
        Avro::Null => Value::Null,
        Avro::Union(_, inner) => from_avro(*inner)?,
        Avro::Boolean(b) => Value::Bool(b),
        Avro::Int(i) => Value::Long(i as i64),
        Avro::Long(i) => Value::Long(i),
        Avro::Float(f) => Value::double(f as f64),
        Avro::Double(f) => Value::double(f),
        Avro::Bytes(b) | Avro::Fixed(_, b) => Value::Bytes(b.into()),
        Avro::String(s) | Avro::Enum(_, s) => Value::Str(s.into()),
        Avro::Array(items) => Value::List(
            items
                .into_iter()
                .map(from_avro)
                .collect::<std::result::Result<_, _>>()?,
        ),
        Avro::Map(m) => {
            let mut entries = m
                .into_iter()
                .map(|(k, v)| Ok((Value::Str(k.into()), from_avro(v)?)))
                .collect::<std::result::Result<Vec<_>, String>>()?;
            entries.sort_by(|x, y| x.0.cmp(&y.0));
            Value::Map(entries)
        }
        Avro::Record(fields) => Value::List(
            fields
                .into_iter()
                .map(|(_, v)| from_avro(v))
                .collect::<std::result::Result<_, _>>()?,
        ),
        other => return Err(format!("unexpected Avro value {other:?}")),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::datatypes::Field;

    use super::*;
    use crate::aggregate::value::map_type;

    fn list(t: DataType) -> DataType {
        DataType::List(Arc::new(Field::new("item", t, true)))
    }

    fn strukt(fields: &[(&str, DataType)]) -> DataType {
        DataType::Struct(
            fields
                .iter()
                .map(|(n, t)| Field::new(*n, t.clone(), true))
                .collect::<Vec<_>>()
                .into(),
        )
    }

    fn all_types() -> Vec<(String, DataType)> {
        let point = strukt(&[("x", DataType::Int64), ("tags", list(DataType::Utf8))]);
        [
            ("l", DataType::Int64),
            ("i", DataType::Int32),
            ("s", DataType::Int16),
            ("b", DataType::Int8),
            ("d", DataType::Float64),
            ("f", DataType::Float32),
            ("str", DataType::Utf8),
            ("flag", DataType::Boolean),
            ("bin", DataType::Binary),
            ("longs", list(DataType::Int64)),
            ("m", map_type(DataType::Float64)),
            ("point", point.clone()),
            ("points", list(point.clone())),
            ("by_name", map_type(point)),
            ("nested", list(list(DataType::Int32))),
        ]
        .into_iter()
        .map(|(n, t)| (n.to_string(), t))
        .collect()
    }

    fn rich_values() -> Vec<Value> {
        let point = |x: i64, tags: &[&str]| {
            Value::List(vec![
                Value::Long(x),
                Value::List(tags.iter().map(|t| Value::str(t)).collect()),
            ])
        };
        vec![
            Value::Long(-9_007_199_254_740_993),
            Value::Long(i32::MIN as i64),
            Value::Long(i16::MAX as i64),
            Value::Long(-128),
            Value::double(2.5e-300),
            Value::double(1.5),
            Value::str("héllo"),
            Value::Bool(true),
            Value::Bytes(vec![0, 255, 7].into()),
            Value::List(vec![Value::Long(1), Value::Null, Value::Long(3)]),
            Value::Map(vec![
                (Value::str("a"), Value::double(1.0)),
                (Value::str("b"), Value::Null),
            ]),
            point(1, &["p", "q"]),
            Value::List(vec![
                point(2, &[]),
                Value::Null,
                Value::List(vec![Value::Null, Value::Null]),
            ]),
            Value::Map(vec![(Value::str("home"), point(3, &["h"]))]),
            Value::List(vec![
                Value::List(vec![Value::Long(1)]),
                Value::List(vec![]),
                Value::Null,
            ]),
        ]
    }

    fn codec() -> JoinCodec {
        JoinCodec::new(
            "risk.checkout_online.v1",
            vec![
                ("user_id".into(), DataType::Utf8),
                ("n".into(), DataType::Int64),
            ],
            all_types(),
        )
        .unwrap()
    }

    #[test]
    fn every_type_round_trips_including_nested_and_nulls() {
        let c = codec();
        let values = rich_values();
        let bytes = c.encode_value(&values).unwrap();
        assert_eq!(c.decode_value(&bytes).unwrap(), values);
        let nulls = vec![Value::Null; values.len()];
        assert_eq!(
            c.decode_value(&c.encode_value(&nulls).unwrap()).unwrap(),
            nulls
        );
        let keys = vec![Value::str("u1"), Value::Long(7)];
        assert_eq!(c.decode_key(&c.encode_key(&keys).unwrap()).unwrap(), keys);
    }

    #[test]
    fn decodes_from_the_writers_json_alone() {
        let c = codec();
        let bytes = c.encode_value(&rich_values()).unwrap();
        let reader = JoinCodec::from_json(c.logging_schema_json()).unwrap();
        assert_eq!(reader.schema_hash(), c.schema_hash());
        assert_eq!(reader.logging_schema(), c.logging_schema());
        assert_eq!(reader.decode_value(&bytes).unwrap(), rich_values());
        assert_eq!(c.schema_hash(), c.logging_schema().hash());
    }

    #[test]
    fn struct_values_by_field_name() {
        let c = JoinCodec::new(
            "t.j",
            vec![],
            vec![(
                "p".into(),
                strukt(&[("x", DataType::Int64), ("y", DataType::Utf8)]),
            )],
        )
        .unwrap();
        let by_name = Value::Map(vec![(Value::str("y"), Value::str("v"))]);
        let bytes = c.encode_value(&[by_name]).unwrap();
        assert_eq!(
            c.decode_value(&bytes).unwrap(),
            vec![Value::List(vec![Value::Null, Value::str("v")])]
        );
        let bad = Value::Map(vec![(Value::str("z"), Value::Long(1))]);
        assert!(c
            .encode_value(&[bad])
            .unwrap_err()
            .to_string()
            .contains("no field"));
    }

    #[test]
    fn misfits_are_errors_naming_the_field() {
        let c = codec();
        let mut values = rich_values();
        values[1] = Value::Long(i64::MAX);
        let e = c.encode_value(&values).unwrap_err().to_string();
        assert!(
            e.contains("field `i`") && e.contains("risk.checkout_online.v1"),
            "{e}"
        );
        let mut values = rich_values();
        values[0] = Value::str("1");
        assert!(c
            .encode_value(&values)
            .unwrap_err()
            .to_string()
            .contains("field `l`"));
        let mut values = rich_values();
        values[10] = Value::Map(vec![(Value::Long(1), Value::double(1.0))]);
        assert!(c
            .encode_value(&values)
            .unwrap_err()
            .to_string()
            .contains("not a string"));
        assert!(c.encode_key(&[Value::str("u")]).is_err(), "too few values");
        let e = JoinCodec::new("t.j", vec![], vec![("d".into(), DataType::Date32)]).unwrap_err();
        assert!(e.to_string().contains("`d`"), "{e}");
    }

    #[test]
    fn corrupt_bytes_are_errors() {
        let c = codec();
        let bytes = c.encode_value(&rich_values()).unwrap();
        assert!(
            c.decode_value(&bytes[..bytes.len() - 3]).is_err(),
            "truncated"
        );
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(c
            .decode_value(&extra)
            .unwrap_err()
            .to_string()
            .contains("left over"));
        assert!(
            c.decode_value(&[0x0e]).is_err(),
            "union branch 7 does not exist"
        );
        // cut inside a string and at a field boundary (apache-avro alone reads both as NULLs)
        let two = JoinCodec::new(
            "t.j",
            vec![],
            vec![("a".into(), DataType::Int64), ("b".into(), DataType::Utf8)],
        )
        .unwrap();
        let bytes = two
            .encode_value(&[Value::Long(7), Value::str("seven")])
            .unwrap();
        for cut in [2, bytes.len() - 2] {
            let e = two.decode_value(&bytes[..cut]).unwrap_err().to_string();
            assert!(e.contains("truncated"), "{cut}: {e}");
        }
        assert_eq!(two.decode_value(&bytes).unwrap()[1], Value::str("seven"));
    }

    #[test]
    fn events_carry_the_hash() {
        let c = codec();
        let ctl = c.control_event(5);
        assert_eq!(ctl.name, SCHEMA_PUBLISH_EVENT);
        assert_eq!(ctl.key_bytes, c.schema_hash().as_bytes());
        assert_eq!(ctl.schema_hash, None);
        assert_eq!(
            JoinCodec::from_json(std::str::from_utf8(&ctl.value_bytes).unwrap())
                .unwrap()
                .schema_hash(),
            c.schema_hash()
        );
        let ev = c
            .data_event(
                "risk/checkout_online.v1",
                9,
                &[Value::str("u"), Value::Null],
                &rich_values(),
            )
            .unwrap();
        assert_eq!(ev.schema_hash.as_deref(), Some(c.schema_hash()));
        assert_eq!(c.decode_value(&ev.value_bytes).unwrap(), rich_values());
    }
}
