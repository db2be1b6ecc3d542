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
use std::fmt;

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

/// Why everything is recomputed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FullRecompute {
    LeftChanged,
    BootstrapChanged,
    LeftAndBootstrapChanged,
}

/// What a run must do with existing tables, given the stored and the current semantic hash.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The join's output table.
    pub output_table: String,
    /// A hash was stored (otherwise nothing is archived and only missing partitions run).
    pub had_previous: bool,
    /// Set when the left source or the bootstrap parts changed: everything is archived and
    /// recomputed.
    pub full_recompute: Option<FullRecompute>,
    /// Part tables (current names) whose GroupBy changed.
    pub changed_parts: Vec<String>,
    /// Part tables that are new in this version of the join.
    pub added_parts: Vec<String>,
    /// Part tables of the previous version that are gone (a removed part, or a renamed one).
    pub removed_parts: Vec<String>,
    /// Part tables whose previous results stay valid.
    pub reused_parts: Vec<String>,
    /// The derivations changed (or were added or removed).
    pub derived_changed: bool,
    /// Bootstrap parts were added to a join whose stored hash had no bootstrap entry.
    pub bootstrap_added: bool,
    /// The output table must be rewritten (archived and recomputed from the parts).
    pub rewrite_output: bool,
    /// Tables to archive, in order: part tables, then the bootstrap table, then the output.
    pub archive: Vec<String>,
    /// Archived tables are renamed to `<table>_<archive_suffix>`.
    pub archive_suffix: String,
    /// Every current part table, in join order.
    pub all_parts: Vec<String>,
}

impl Decision {
    /// Part tables to compute from scratch (every part on a full recompute).
    pub fn recompute_parts(&self) -> Vec<String> {
        if self.full_recompute.is_some() {
            return self.all_parts.clone();
        }
        self.all_parts
            .iter()
            .filter(|p| self.changed_parts.contains(p) || self.added_parts.contains(p))
            .cloned()
            .collect()
    }

    /// Nothing to archive or recompute beyond missing partitions.
    pub fn is_unchanged(&self) -> bool {
        self.archive.is_empty()
            && !self.rewrite_output
            && self.full_recompute.is_none()
            && self.added_parts.is_empty()
    }

    /// The same decision with another archive suffix (e.g. a fixed one in tests).
    pub fn with_archive_suffix(mut self, suffix: impl Into<String>) -> Self {
        self.archive_suffix = suffix.into();
        self
    }

    /// The name a table gets when archived.
    pub fn archived_name(&self, table: &str) -> String {
        format!("{table}_{}", self.archive_suffix)
    }

    /// A part table's name for users: its full prefix (the table name without the output
    /// table's name), e.g. `risk_purchases_v1`.
    pub fn part_label(&self, table: &str) -> String {
        table
            .strip_prefix(&format!("{}_", self.output_table))
            .unwrap_or(table)
            .to_string()
    }

    /// Archives every table of [`Decision::archive`] that exists, returning `(old, archived)`
    /// pairs. Refresh the SQL engine afterwards.
    pub fn apply_archive(&self, wh: &Warehouse) -> Result<Vec<(TableName, TableName)>> {
        let mut out = Vec::new();
        for t in &self.archive {
            let name = TableName::parse(t)?;
            if wh.exists(&name) {
                let archived = wh.archive_table(&name, &self.archive_suffix)?;
                tracing::info!(table = %name, archived = %archived, "archived");
                out.push((name, archived));
            }
        }
        Ok(out)
    }
}

fn quoted_list(items: &[String]) -> String {
    items
        .iter()
        .map(|s| format!("`{s}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let archiving = || {
            self.archive
                .iter()
                .map(|t| format!("{t} to {}", self.archived_name(t)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        if !self.had_previous {
            return write!(
                f,
                "no semantic hash stored on {}: nothing to archive; computing missing partitions",
                self.output_table
            );
        }
        if let Some(why) = self.full_recompute {
            let why = match why {
                FullRecompute::LeftChanged => "left source changed",
                FullRecompute::BootstrapChanged => "bootstrap parts changed",
                FullRecompute::LeftAndBootstrapChanged => "left source and bootstrap parts changed",
            };
            return write!(
                f,
                "{why}: archiving {} and recomputing everything",
                archiving()
            );
        }
        let mut what: Vec<String> = Vec::new();
        for (list, verb) in [
            (&self.changed_parts, "changed"),
            (&self.added_parts, "added"),
            (&self.removed_parts, "removed"),
        ] {
            for t in list {
                what.push(format!("part `{}` {verb}", self.part_label(t)));
            }
        }
        if self.derived_changed {
            what.push("derivations changed".into());
        }
        if self.bootstrap_added {
            what.push("bootstrap parts added".into());
        }
        let reused: Vec<String> = self
            .reused_parts
            .iter()
            .map(|t| self.part_label(t))
            .collect();
        if what.is_empty() {
            return write!(
                f,
                "join unchanged since the last run: reusing {} and {}; computing missing partitions",
                if reused.is_empty() {
                    "no parts".to_string()
                } else {
                    format!("parts {}", quoted_list(&reused))
                },
                self.output_table
            );
        }
        write!(f, "{}: ", what.join(", "))?;
        let recompute = self.recompute_parts();
        if recompute.is_empty() {
            write!(f, "recomputing no parts")?;
        } else {
            write!(
                f,
                "recomputing {} of {} parts",
                recompute.len(),
                self.all_parts.len()
            )?;
        }
        if !reused.is_empty() {
            write!(f, "; reusing {}", quoted_list(&reused))?;
        }
        if self.archive.is_empty() {
            if self.rewrite_output {
                write!(f, "; rewriting {}", self.output_table)?;
            }
        } else {
            write!(f, "; archiving {}", archiving())?;
            if self.rewrite_output {
                write!(f, " and rewriting {}", self.output_table)?;
            }
        }
        Ok(())
    }
}

/// Chronon's reuse decision (§3.7) between the stored hash `old` and the current hash `new`
/// of `join`. The archive suffix is the current UTC time (see [`Decision::with_archive_suffix`]).
pub fn decide(old: Option<&SemanticHash>, new: &SemanticHash, join: &Join) -> Decision {
    let output = output_table(&join.meta_data).unwrap_or_else(|_| clean_name(&join.meta_data));
    let bootstrap_key = format!("{output}_bootstrap");
    let is_part = |k: &str| k != LEFT_SOURCE_KEY && k != DERIVED_KEY && k != bootstrap_key;
    let all_parts: Vec<String> = new.keys().filter(|k| is_part(k)).cloned().collect();
    let mut d = Decision {
        output_table: output.clone(),
        had_previous: old.is_some(),
        full_recompute: None,
        changed_parts: vec![],
        added_parts: vec![],
        removed_parts: vec![],
        reused_parts: vec![],
        derived_changed: false,
        bootstrap_added: false,
        rewrite_output: false,
        archive: vec![],
        archive_suffix: archive_suffix_now(),
        all_parts,
    };
    let Some(old) = old else {
        return d;
    };

    let left_changed = old.get(LEFT_SOURCE_KEY) != new.get(LEFT_SOURCE_KEY);
    let bootstrap_changed = match (old.get(&bootstrap_key), new.get(&bootstrap_key)) {
        (Some(a), Some(b)) => a != b,
        _ => false,
    };
    d.full_recompute = match (left_changed, bootstrap_changed) {
        (true, true) => Some(FullRecompute::LeftAndBootstrapChanged),
        (true, false) => Some(FullRecompute::LeftChanged),
        (false, true) => Some(FullRecompute::BootstrapChanged),
        (false, false) => None,
    };
    if d.full_recompute.is_some() {
        d.archive = old
            .keys()
            .filter(|k| k.as_str() != LEFT_SOURCE_KEY && k.as_str() != DERIVED_KEY)
            .cloned()
            .collect();
        // Part tables first, then the bootstrap table (Chronon's listing order differs; the
        // set is the same).
        d.archive.sort_by_key(|k| *k == bootstrap_key);
        d.archive.push(output);
        d.rewrite_output = true;
        return d;
    }

    for part in &d.all_parts {
        match old.get(part) {
            None => d.added_parts.push(part.clone()),
            Some(h) if Some(h) != new.get(part) => d.changed_parts.push(part.clone()),
            Some(_) => d.reused_parts.push(part.clone()),
        }
    }
    d.removed_parts = old
        .keys()
        .filter(|k| is_part(k) && !new.contains_key(*k))
        .cloned()
        .collect();
    d.derived_changed = old.get(DERIVED_KEY) != new.get(DERIVED_KEY);
    d.bootstrap_added = !old.contains_key(&bootstrap_key)
        && new.contains_key(&bootstrap_key)
        && !join.bootstrap_parts.is_empty();
    d.rewrite_output = !d.changed_parts.is_empty()
        || !d.added_parts.is_empty()
        || !d.removed_parts.is_empty()
        || d.derived_changed
        || d.bootstrap_added;
    d.archive = d
        .changed_parts
        .iter()
        .chain(&d.removed_parts)
        .cloned()
        .collect();
    if d.rewrite_output {
        d.archive.push(output);
    }
    d
}

/// Reads the stored hash of the join's output table and decides what to archive and recompute.
/// A stored hash that weft cannot compare (computed with topics, or by Chronon) is an error
/// asking the user to archive the output table by hand or drop the property.
pub fn plan_versioning(wh: &Warehouse, join: &Join) -> Result<(SemanticHash, Decision)> {
    let new = semantic_hash(join)?;
    let output = TableName::parse(&output_table(&join.meta_data)?)?;
    let stored = load_semantic_hash(wh, &output)?;
    if let Some(s) = &stored {
        if !s.exclude_topic || !s.weft {
            let why = if !s.exclude_topic {
                "was computed with streaming topics included (an older Chronon)"
            } else {
                "was not computed by weft (Chronon's hashes are not comparable with weft's)"
            };
            return Err(Error::data(
                &output.to_string(),
                None,
                format!("the stored `{SEMANTIC_HASH_PROPERTY}` {why}, so weft cannot tell which parts changed"),
            )
            .with_fix(format!(
                "archive the table by hand (rename its folder to {output}_<timestamp>) to recompute everything, or remove the `{SEMANTIC_HASH_PROPERTY}` property from its _weft_table.json to keep the existing partitions"
            )));
        }
    }
    let decision = decide(stored.as_ref().map(|s| &s.hash), &new, join);
    Ok((new, decision))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{load_conf, Conf, Derivation, Source};
    use std::path::Path;

    fn production_join(name: &str) -> Join {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("dataflows/production/joins")
            .join(name);
        match load_conf(&path).unwrap() {
            Conf::Join(j) => *j,
            other => panic!("not a join: {:?}", other.kind()),
        }
    }

    fn checkout() -> Join {
        production_join("risk/checkout.v1")
    }

    const OUT: &str = "risk.risk_checkout_v1";

    fn decide_fixed(old: &Join, new: &Join) -> Decision {
        let o = semantic_hash(old).unwrap();
        let n = semantic_hash(new).unwrap();
        decide(Some(&o), &n, new).with_archive_suffix("20261124T071500")
    }

    fn derivation(name: &str, expression: &str) -> Derivation {
        Derivation {
            name: name.into(),
            expression: expression.into(),
            meta_data: None,
        }
    }

    #[test]
    fn hash_function_is_stable() {
        // Pinned: canonical JSON `{"a":1,"b":[2,{"c":"x"}]}` → base64(MD5) prefix.
        let v: Value =
            serde_json::from_str(r#"{"b":[2,{"c":"x","d":null}],"a":1,"e":[]}"#).unwrap();
        assert_eq!(canonical_json(&v), r#"{"a":1,"b":[2,{"c":"x"}]}"#);
        assert_eq!(hash_json(&v), "cq8BFKtOAS");
        assert_eq!(hash_json(&v).len(), 10);
    }

    #[test]
    fn java_hash_code_matches_java() {
        // "hello".hashCode() == 99162322 == 0x5e918d2; "" → 0; negative values print unsigned.
        assert_eq!(java_string_hash("hello"), 99162322);
        assert_eq!(derived_hash(&[]), "0");
        assert_eq!(derived_hash(&[derivation("*", "*")]), "499c45f2");
        // Negative hash codes print as unsigned hex, as Integer.toHexString does.
        assert_eq!(java_string_hash("polygenelubricants"), i32::MIN);
        assert_eq!(
            derived_hash(&[
                derivation("double_amount", "amount * 2"),
                derivation("*", "*")
            ]),
            "d74c4a2a"
        );
    }

    #[test]
    fn hash_keys_follow_chronon() {
        let j = checkout();
        let h = semantic_hash(&j).unwrap();
        let keys: Vec<&str> = h.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            vec![
                "risk.risk_checkout_v1_risk_purchases_v1",
                "risk.risk_checkout_v1_risk_page_views_v1",
                "left_source",
                "risk.risk_checkout_v1_bootstrap",
            ]
        );
        assert!(h.values().all(|v| v.len() == 10));
        // Same value twice, and from a fresh load.
        assert_eq!(h, semantic_hash(&checkout()).unwrap());
        let d = production_join("risk/checkout_derived.v1");
        assert!(semantic_hash(&d).unwrap().contains_key(DERIVED_KEY));
    }

    fn reverse_keys(v: Value) -> Value {
        match v {
            Value::Object(m) => {
                let mut pairs: Vec<(String, Value)> = m.into_iter().collect();
                pairs.reverse();
                Value::Object(
                    pairs
                        .into_iter()
                        .map(|(k, v)| (k, reverse_keys(v)))
                        .collect(),
                )
            }
            Value::Array(a) => Value::Array(a.into_iter().map(reverse_keys).collect()),
            o => o,
        }
    }

    #[test]
    fn hash_ignores_json_key_order() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("dataflows/production/joins/risk/checkout_derived.v1");
        let text = std::fs::read_to_string(&path).unwrap();
        let doc: Value = serde_json::from_str(&text).unwrap();
        let reversed = serde_json::to_string(&reverse_keys(doc)).unwrap();
        assert_ne!(text.trim(), reversed);
        let a = match crate::config::parse_conf(&path, &text).unwrap() {
            Conf::Join(j) => semantic_hash(&j).unwrap(),
            _ => unreachable!(),
        };
        let b = match crate::config::parse_conf(&path, &reversed).unwrap() {
            Conf::Join(j) => semantic_hash(&j).unwrap(),
            _ => unreachable!(),
        };
        assert_eq!(a, b);
    }

    #[test]
    fn topics_do_not_count() {
        let j = checkout();
        let before = semantic_hash(&j).unwrap();
        let mut t = j.clone();
        if let Source::Events(e) = &mut t.left {
            e.topic = Some("kafka://checkouts".into());
        }
        for p in &mut t.join_parts {
            for s in &mut p.group_by.sources {
                match s {
                    Source::Events(e) => e.topic = Some("kafka://x/y".into()),
                    Source::Entities(e) => e.mutation_topic = Some("kafka://m".into()),
                    Source::JoinSource(_) => {}
                }
            }
        }
        assert_eq!(before, semantic_hash(&t).unwrap());
        // Other edits of a source do count.
        if let Source::Events(e) = &mut t.left {
            e.table = "risk.other".into();
        }
        assert_ne!(
            before[LEFT_SOURCE_KEY],
            semantic_hash(&t).unwrap()[LEFT_SOURCE_KEY]
        );
        // GroupBy metadata does not.
        let mut m = j.clone();
        m.join_parts[0].group_by.meta_data.description = Some("new docs".into());
        m.join_parts[0].group_by.meta_data.online = Some(false);
        assert_eq!(before, semantic_hash(&m).unwrap());
    }

    #[test]
    fn no_stored_hash_archives_nothing() {
        let j = checkout();
        let d = decide(None, &semantic_hash(&j).unwrap(), &j);
        assert!(!d.had_previous && d.archive.is_empty() && d.full_recompute.is_none());
        assert!(d
            .to_string()
            .starts_with("no semantic hash stored on risk.risk_checkout_v1"));
    }

    #[test]
    fn unchanged_reuses_everything() {
        let j = checkout();
        let d = decide_fixed(&j, &j);
        assert!(d.is_unchanged());
        assert!(d.recompute_parts().is_empty());
        assert_eq!(d.reused_parts.len(), 2);
        assert_eq!(
            d.to_string(),
            "join unchanged since the last run: reusing parts `risk_purchases_v1`, `risk_page_views_v1` and risk.risk_checkout_v1; computing missing partitions"
        );
    }

    // JoinTest.testVersioning, step 1: a left change archives every part table, the
    // bootstrap table and the output.
    #[test]
    fn left_change_archives_everything() {
        let j = checkout();
        let mut n = j.clone();
        if let Source::Events(e) = &mut n.left {
            e.query.start_partition = Some("2026-01-15".into());
        }
        let d = decide_fixed(&j, &n);
        assert_eq!(d.full_recompute, Some(FullRecompute::LeftChanged));
        assert_eq!(
            d.archive,
            vec![
                format!("{OUT}_risk_purchases_v1"),
                format!("{OUT}_risk_page_views_v1"),
                format!("{OUT}_bootstrap"),
                OUT.to_string(),
            ]
        );
        assert_eq!(d.recompute_parts(), d.all_parts);
        assert!(d.to_string().starts_with(
            "left source changed: archiving risk.risk_checkout_v1_risk_purchases_v1 to risk.risk_checkout_v1_risk_purchases_v1_20261124T071500, "
        ));
        assert!(d.to_string().ends_with(
            "risk.risk_checkout_v1 to risk.risk_checkout_v1_20261124T071500 and recomputing everything"
        ));
    }

    #[test]
    fn bootstrap_change_is_a_full_recompute_but_adding_bootstrap_is_not() {
        let with_bootstrap = production_join("risk/checkout_external.v1");
        assert!(!with_bootstrap.bootstrap_parts.is_empty());
        let mut changed = with_bootstrap.clone();
        changed.bootstrap_parts[0].table = "risk.other_bootstrap".into();
        let d = decide_fixed(&with_bootstrap, &changed);
        assert_eq!(d.full_recompute, Some(FullRecompute::BootstrapChanged));
        // An old hash without a bootstrap entry: adding bootstrap parts only rewrites the output.
        let mut old = semantic_hash(&with_bootstrap).unwrap();
        old.shift_remove(&bootstrap_table(&with_bootstrap).unwrap());
        let d = decide(
            Some(&old),
            &semantic_hash(&with_bootstrap).unwrap(),
            &with_bootstrap,
        );
        assert!(d.full_recompute.is_none() && d.bootstrap_added && d.rewrite_output);
        // ... and a missing entry with no bootstrap parts is no change at all.
        let j = checkout();
        let mut old = semantic_hash(&j).unwrap();
        old.shift_remove(&bootstrap_table(&j).unwrap());
        let d = decide(Some(&old), &semantic_hash(&j).unwrap(), &j);
        assert!(d.is_unchanged());
    }

    #[test]
    fn changed_part_is_recomputed_and_others_reused() {
        let j = checkout();
        let mut n = j.clone();
        n.join_parts[0]
            .group_by
            .key_columns
            .push("merchant_id".into());
        let d = decide_fixed(&j, &n);
        assert!(d.full_recompute.is_none());
        assert_eq!(d.changed_parts, vec![format!("{OUT}_risk_purchases_v1")]);
        assert_eq!(d.reused_parts, vec![format!("{OUT}_risk_page_views_v1")]);
        assert_eq!(
            d.archive,
            vec![format!("{OUT}_risk_purchases_v1"), OUT.to_string()]
        );
        assert_eq!(
            d.to_string(),
            "part `risk_purchases_v1` changed: recomputing 1 of 2 parts; reusing `risk_page_views_v1`; archiving risk.risk_checkout_v1_risk_purchases_v1 to risk.risk_checkout_v1_risk_purchases_v1_20261124T071500, risk.risk_checkout_v1 to risk.risk_checkout_v1_20261124T071500 and rewriting risk.risk_checkout_v1"
        );
    }

    // JoinTest.testVersioning, step 2: adding a part archives only the output.
    #[test]
    fn added_part_archives_only_the_output() {
        let j = checkout();
        let mut n = j.clone();
        let mut extra = n.join_parts[0].clone();
        extra.group_by.meta_data.name = "risk.merchant.v1".into();
        n.join_parts.push(extra);
        let d = decide_fixed(&j, &n);
        assert_eq!(d.added_parts, vec![format!("{OUT}_risk_merchant_v1")]);
        assert_eq!(d.archive, vec![OUT.to_string()]);
        assert_eq!(d.recompute_parts(), vec![format!("{OUT}_risk_merchant_v1")]);
        assert_eq!(
            d.to_string(),
            "part `risk_merchant_v1` added: recomputing 1 of 3 parts; reusing `risk_purchases_v1`, `risk_page_views_v1`; archiving risk.risk_checkout_v1 to risk.risk_checkout_v1_20261124T071500 and rewriting risk.risk_checkout_v1"
        );
    }

    #[test]
    fn removed_part_archives_its_table_and_the_output() {
        let j = checkout();
        let mut n = j.clone();
        n.join_parts.remove(1);
        let d = decide_fixed(&j, &n);
        assert_eq!(d.removed_parts, vec![format!("{OUT}_risk_page_views_v1")]);
        assert!(d.recompute_parts().is_empty());
        assert_eq!(
            d.archive,
            vec![format!("{OUT}_risk_page_views_v1"), OUT.to_string()]
        );
        assert!(d.to_string().starts_with(
            "part `risk_page_views_v1` removed: recomputing no parts; reusing `risk_purchases_v1`; archiving"
        ));
    }

    // JoinTest.testVersioning, step 3: a new prefix is a removed part plus an added one.
    #[test]
    fn prefix_change_is_remove_plus_add() {
        let j = checkout();
        let mut n = j.clone();
        n.join_parts[1].prefix = Some("user".into());
        let d = decide_fixed(&j, &n);
        assert_eq!(
            d.added_parts,
            vec![format!("{OUT}_user_risk_page_views_v1")]
        );
        assert_eq!(d.removed_parts, vec![format!("{OUT}_risk_page_views_v1")]);
        assert_eq!(
            d.archive,
            vec![format!("{OUT}_risk_page_views_v1"), OUT.to_string()]
        );
        assert_eq!(
            d.recompute_parts(),
            vec![format!("{OUT}_user_risk_page_views_v1")]
        );
        assert!(d.to_string().starts_with(
            "part `user_risk_page_views_v1` added, part `risk_page_views_v1` removed: recomputing 1 of 2 parts; reusing `risk_purchases_v1`"
        ));
    }

    #[test]
    fn derivation_change_rewrites_only_the_output() {
        let j = production_join("risk/checkout_derived.v1");
        let mut n = j.clone();
        n.derivations
            .push(derivation("double_amount", "amount * 2"));
        let d = decide_fixed(&j, &n);
        assert!(d.derived_changed && d.rewrite_output);
        assert!(d.recompute_parts().is_empty());
        assert_eq!(d.archive, vec!["risk.risk_checkout_derived_v1".to_string()]);
        assert!(d
            .to_string()
            .starts_with("derivations changed: recomputing no parts; reusing "));
        // Removing every derivation removes the key: also a change.
        let mut none = j.clone();
        none.derivations.clear();
        assert!(decide_fixed(&j, &none).derived_changed);
        // Adding derivations to a join without them.
        let c = checkout();
        let mut with = c.clone();
        with.derivations = vec![derivation("*", "*")];
        assert!(decide_fixed(&c, &with).derived_changed);
    }

    #[test]
    fn external_parts_with_offline_group_by_are_hashed() {
        let j = production_join("risk/checkout_external.v1");
        let before = semantic_hash(&j).unwrap();
        // Online-only external parts have no part table.
        assert_eq!(before.len(), j.join_parts.len() + 2);
        let mut n = j.clone();
        let ep = n
            .online_external_parts
            .iter_mut()
            .find(|p| p.source.metadata.name != "contextual")
            .unwrap();
        let mut gb = j.join_parts[0].group_by.clone();
        gb.meta_data.name = "risk.service_user_backfill.v1".into();
        ep.source.offline_group_by = Some(gb);
        ep.prefix = Some("svc".into());
        let after = semantic_hash(&n).unwrap();
        let key = "risk.risk_checkout_external_v1_svc_risk_service_user_backfill_v1";
        assert_eq!(after.len(), before.len() + 1);
        assert_eq!(after[key], after.values().next().unwrap().clone());
        let d = decide_fixed(&j, &n);
        assert_eq!(d.added_parts, vec![key.to_string()]);
    }

    #[test]
    fn store_and_load_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let wh = Warehouse::open(dir.path()).unwrap();
        let j = checkout();
        let out = TableName::parse(OUT).unwrap();
        let (h, d) = plan_versioning(&wh, &j).unwrap();
        assert!(!d.had_previous);
        store_semantic_hash(&wh, &out, &h).unwrap();
        let props = wh.properties(&out).unwrap();
        assert_eq!(
            props[SEMANTIC_HASH_OPTIONS_PROPERTY],
            r#"{"exclude_topic":"true"}"#
        );
        let loaded = load_semantic_hash(&wh, &out).unwrap().unwrap();
        assert_eq!(loaded.hash, h);
        assert_eq!(
            loaded.hash.keys().collect::<Vec<_>>(),
            h.keys().collect::<Vec<_>>()
        );
        assert!(loaded.exclude_topic && loaded.weft);
        let (_, d) = plan_versioning(&wh, &j).unwrap();
        assert!(d.had_previous && d.is_unchanged());

        // A left change archives the output (the only table that exists here).
        let mut n = j.clone();
        if let Source::Events(e) = &mut n.left {
            e.query.wheres.push("amount > 0".into());
        }
        let (_, d) = plan_versioning(&wh, &n).unwrap();
        let d = d.with_archive_suffix("20261124T071500");
        let archived = d.apply_archive(&wh).unwrap();
        assert_eq!(archived.len(), 1);
        assert_eq!(
            archived[0].1.to_string(),
            "risk.risk_checkout_v1_20261124T071500"
        );
        assert!(!wh.exists(&out));

        // A hash written without the options (an older Chronon) is refused.
        let t2 = TableName::parse(OUT).unwrap();
        wh.set_properties(
            &t2,
            &BTreeMap::from([(SEMANTIC_HASH_PROPERTY.to_string(), "{}".to_string())]),
        )
        .unwrap();
        let err = plan_versioning(&wh, &j).unwrap_err().to_string();
        assert!(
            err.contains("topics") && err.contains("archive the table by hand"),
            "{err}"
        );
    }
}
