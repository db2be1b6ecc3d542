//! Chronon's semantic hash of a join and the reuse decision it drives (chronon-semantics §3.7).
//!
//! The output table carries the property `semantic_hash`, a JSON map with
//! - one entry per join part (and per external part with an `offlineGroupBy`), keyed by the
//!   part table name `<ns>.<join cleanName>_<fullPrefix>`, valued by the hash of the GroupBy
//!   without its `metaData`;
//! - `left_source`: the hash of `join.left` (its whole query, start/end partitions included);
//! - `<ns>.<join cleanName>_bootstrap`: the hash of `bootstrapParts` (always present);
//! - `derived` (only when the join has derivations): Java's `String.hashCode` in hex of
//!   `"<expr> as <name>, …"`, exactly as Chronon computes it.
//!
//! and `semantic_hash_options = {"exclude_topic":"true"}`: streaming topics
//! (`events.topic`, `entities.mutationTopic`, at any depth) do not count.
//!
//! A hash is the first 10 characters of base64(MD5(canonical JSON)). Chronon hashes Thrift's
//! simple-JSON bytes, which weft cannot reproduce byte for byte; weft hashes its own canonical
//! JSON of the typed config model instead (object keys sorted, `null`s and empty lists/maps
//! dropped, so the order of keys in the compiled file and absent-versus-empty fields do not
//! matter). So the values differ from Chronon's, but they change under exactly the same edits.
//! Because the values are not comparable, weft marks the hashes it writes with
//! `weft_semantic_hash_version`; a stored hash without that mark (one written by Chronon) is
//! treated like Chronon treats a hash computed without `exclude_topic`: the user is asked to
//! archive the table by hand.
//!
//! As in Chronon, a part's hash covers only its GroupBy: changing a part's `keyMapping` does not
//! change the hash, while changing its `prefix` (or the GroupBy's name) changes the part table
//! name, which reads as "part removed + part added".

use std::collections::BTreeMap;

use base64::Engine as _;
use indexmap::IndexMap;
use md5::{Digest, Md5};
use serde_json::Value;

use crate::config::naming::{clean_name, output_table, part_table};
use crate::config::{Derivation, Join, JoinPart};
use crate::error::{Error, Result};
use crate::warehouse::archive::archive_suffix_now;
use crate::warehouse::{TableName, Warehouse};

/// The semantic hash of a join: key → hash, in Chronon's order (parts, `left_source`,
/// bootstrap, `derived`). Equality ignores order.
pub type SemanticHash = IndexMap<String, String>;

/// Table property holding the JSON map.
pub const SEMANTIC_HASH_PROPERTY: &str = "semantic_hash";
/// Table property recording how the hash was computed.
pub const SEMANTIC_HASH_OPTIONS_PROPERTY: &str = "semantic_hash_options";
/// Value of [`SEMANTIC_HASH_OPTIONS_PROPERTY`] (topics excluded).
pub const SEMANTIC_HASH_OPTIONS: &str = r#"{"exclude_topic":"true"}"#;
/// Table property marking hashes computed by weft (see the module doc).
pub const WEFT_HASH_VERSION_PROPERTY: &str = "weft_semantic_hash_version";
/// Current value of [`WEFT_HASH_VERSION_PROPERTY`].
pub const WEFT_HASH_VERSION: &str = "1";
/// Key of the left source's hash.
pub const LEFT_SOURCE_KEY: &str = "left_source";
/// Key of the derivations' hash.
pub const DERIVED_KEY: &str = "derived";

/// First 10 characters of base64(MD5(canonical JSON of `value`)), topics removed.
pub fn hash_value<T: serde::Serialize>(value: &T) -> String {
    let v = serde_json::to_value(value).expect("config model serializes to JSON");
    hash_json(&v)
}

/// As [`hash_value`], for a JSON document.
pub fn hash_json(value: &Value) -> String {
    let canonical = canonical_json(&strip_topics(value));
    let digest = Md5::digest(canonical.as_bytes());
    let mut b64 = base64::engine::general_purpose::STANDARD.encode(digest);
    b64.truncate(10);
    b64
}

/// Removes `topic` from every events source and `mutationTopic` from every entities source,
/// at any depth (Chronon's `exclude_topic`). Both the thrift field names (`events`,
/// `entities`) and the model's variant names (`Events`, `Entities`) are recognised.
fn strip_topics(v: &Value) -> Value {
    match v {
        Value::Object(map) => {
            let mut out = serde_json::Map::new();
            for (k, child) in map {
                let mut child = strip_topics(child);
                if let Value::Object(inner) = &mut child {
                    match k.as_str() {
                        "events" | "Events" => {
                            inner.remove("topic");
                        }
                        "entities" | "Entities" => {
                            inner.remove("mutationTopic");
                        }
                        _ => {}
                    }
                }
                out.insert(k.clone(), child);
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(strip_topics).collect()),
        other => other.clone(),
    }
}

/// Whether a value carries no information (`null`, `[]`, `{}`): such fields are dropped so
/// that absent, `null` and empty encode the same.
fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

/// Compact JSON with object keys sorted and empty fields dropped (list items are kept in
/// order, including empty ones, since their position matters).
fn canonical_json(v: &Value) -> String {
    fn write(v: &Value, out: &mut String) {
        match v {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map
                    .iter()
                    .filter(|(_, c)| !is_empty(c))
                    .map(|(k, _)| k)
                    .collect();
                keys.sort();
                out.push('{');
                for (i, k) in keys.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String((*k).clone()).to_string());
                    out.push(':');
                    write(&map[*k], out);
                }
                out.push('}');
            }
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(item, out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut out = String::new();
    write(v, &mut out);
    out
}

/// Java's `String.hashCode` (over UTF-16 code units), as Chronon uses for `derived`.
fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(c as i32))
}

/// The `derived` entry: hex of the Java hash code of `"<expr> as <name>, …"` (Chronon's value).
pub fn derived_hash(derivations: &[Derivation]) -> String {
    let text = derivations
        .iter()
        .map(|d| format!("{} as {}", d.expression, d.name))
        .collect::<Vec<_>>()
        .join(", ");
    format!("{:x}", java_string_hash(&text) as u32)
}

/// `<ns>.<join cleanName>_bootstrap`: the join's bootstrap table.
pub fn bootstrap_table(join: &Join) -> Result<String> {
    Ok(format!("{}_bootstrap", output_table(&join.meta_data)?))
}

/// The join parts that have part tables: regular parts, then external parts with an
/// `offlineGroupBy` (as synthetic parts with the external part's prefix and key mapping).
pub fn hashed_parts(join: &Join) -> Vec<JoinPart> {
    let mut parts = join.join_parts.clone();
    for ep in &join.online_external_parts {
        if let Some(gb) = &ep.source.offline_group_by {
            parts.push(JoinPart {
                group_by: gb.clone(),
                key_mapping: ep.key_mapping.clone(),
                prefix: ep.prefix.clone(),
            });
        }
    }
    parts
}

/// The semantic hash of a join (see the module doc).
pub fn semantic_hash(join: &Join) -> Result<SemanticHash> {
    let mut out = SemanticHash::new();
    for part in hashed_parts(join) {
        let mut gb = serde_json::to_value(&part.group_by).expect("config model serializes");
        if let Value::Object(map) = &mut gb {
            map.remove("metaData");
        }
        out.insert(part_table(&join.meta_data, &part)?, hash_json(&gb));
    }
    out.insert(LEFT_SOURCE_KEY.into(), hash_value(&join.left));
    out.insert(bootstrap_table(join)?, hash_value(&join.bootstrap_parts));
    if !join.derivations.is_empty() {
        out.insert(DERIVED_KEY.into(), derived_hash(&join.derivations));
    }
    Ok(out)
}

/// The properties to put on the join's output table for `hash`.
pub fn hash_properties(hash: &SemanticHash) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            SEMANTIC_HASH_PROPERTY.to_string(),
            serde_json::to_string(hash).expect("string map serializes"),
        ),
        (
            SEMANTIC_HASH_OPTIONS_PROPERTY.to_string(),
            SEMANTIC_HASH_OPTIONS.to_string(),
        ),
        (
            WEFT_HASH_VERSION_PROPERTY.to_string(),
            WEFT_HASH_VERSION.to_string(),
        ),
    ])
}

/// Writes `hash` (with its options) to the properties of `table`.
pub fn store_semantic_hash(wh: &Warehouse, table: &TableName, hash: &SemanticHash) -> Result<()> {
    wh.set_properties(table, &hash_properties(hash))
}

/// A semantic hash read back from a table.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredSemanticHash {
    pub hash: SemanticHash,
    /// `semantic_hash_options` says `exclude_topic=true`.
    pub exclude_topic: bool,
    /// Written by weft (comparable with [`semantic_hash`]); otherwise by Chronon.
    pub weft: bool,
}

/// Reads the semantic hash of `table`; `None` if the table or the property does not exist.
pub fn load_semantic_hash(wh: &Warehouse, table: &TableName) -> Result<Option<StoredSemanticHash>> {
    if !wh.exists(table) {
        return Ok(None);
    }
    let props = wh.properties(table)?;
    let Some(text) = props.get(SEMANTIC_HASH_PROPERTY) else {
        return Ok(None);
    };
    let hash: SemanticHash = serde_json::from_str(text).map_err(|e| {
        Error::data(
            &table.to_string(),
            None,
            format!("table property `{SEMANTIC_HASH_PROPERTY}` is not a JSON map of strings: {e}"),
        )
        .with_fix(format!(
            "remove the `{SEMANTIC_HASH_PROPERTY}` property from the table's _weft_table.json (the next run then archives nothing and recomputes only missing partitions), or archive the table"
        ))
    })?;
    let exclude_topic = props
        .get(SEMANTIC_HASH_OPTIONS_PROPERTY)
        .and_then(|o| serde_json::from_str::<BTreeMap<String, String>>(o).ok())
        .and_then(|o| o.get("exclude_topic").cloned())
        .is_some_and(|v| v == "true");
    let weft = props.get(WEFT_HASH_VERSION_PROPERTY).map(String::as_str) == Some(WEFT_HASH_VERSION);
    Ok(Some(StoredSemanticHash {
        hash,
        exclude_topic,
        weft,
    }))
}

mod decision;

pub use decision::{decide, plan_versioning, Decision, FullRecompute};

#[cfg(test)]
mod tests;
