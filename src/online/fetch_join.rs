//! Fetching a join for a batch of requests (chronon-semantics §6.5–§6.6): each join part's
//! GroupBy fetched with the request's keys mapped to the GroupBy's, values prefixed
//! `<fullPrefix>_<column>`; external parts through their handlers and contextual fields from
//! the request (`ext_[<prefix>_]<source>_<field>`, `ext_contextual_<field>`); then join
//! derivations over the request keys, the base values, `ts` and `ds`. Failures are entries
//! `<name>_exception` in the response, never a failed request.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use indexmap::IndexMap;
use serde_json::{Map, Value as Json};

use super::external::ExternalRegistry;
use super::fetch_group_by::{GroupByFetcher, KeyQuery};
use super::store::OnlineStore;
use super::values::{from_json, to_json};
use crate::aggregate::value::{column_values, to_array};
use crate::aggregate::Value;
use crate::config::{ExternalPart, Join};
use crate::error::{Error, Result};
use crate::join::bootstrap::ExternalPlan;
use crate::join::derive::derivation_projection;
use crate::join::plan::JoinPlan;
use crate::partition::Ds;
use crate::sql::Session;

/// A request: keys by name, and the time to fetch as of (epoch ms; default: now).
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
pub struct FetchRequest {
    #[serde(default)]
    pub keys: Map<String, Json>,
    #[serde(default, rename = "atMillis")]
    pub at_millis: Option<i64>,
}

/// Derivation outputs: `(name, value per request)`.
type DerivedColumns = Vec<(String, Vec<Value>)>;

/// A response: values by name, failures as `<name>_exception` entries.
pub type FetchValues = IndexMap<String, Json>;

/// A join ready to be fetched.
pub struct JoinFetcher {
    pub join: Join,
    pub plan: JoinPlan,
    /// One per join part, in part order.
    pub parts: Vec<Arc<GroupByFetcher>>,
    /// Types of the left's columns (request keys are read as these).
    pub left_types: HashMap<String, DataType>,
    externals: Vec<(ExternalPart, ExternalPlan)>,
    /// The join derivations' outputs, typed (empty without derivations).
    pub derived_fields: Vec<Field>,
}

/// What one request produced: base values, derived values (with join derivations) and
/// failures. [`Fetched::response`] is what the caller gets; loggers log base and derived
/// values (Chronon logs full values, §4.10).
#[derive(Debug, Clone, Default)]
pub struct Fetched {
    pub values: IndexMap<String, Value>,
    pub derived: Option<IndexMap<String, Value>>,
    pub exceptions: IndexMap<String, String>,
}

impl Fetched {
    /// The response: derived values (or base values without derivations), then failures.
    pub fn response(&self) -> FetchValues {
        let mut out: FetchValues = IndexMap::new();
        for (k, v) in self.derived.as_ref().unwrap_or(&self.values) {
            out.insert(k.clone(), to_json(v));
        }
        for (k, v) in &self.exceptions {
            out.insert(k.clone(), Json::String(v.clone()));
        }
        out
    }
}

type Row = Fetched;

impl JoinFetcher {
    pub fn new(
        engine: &Session,
        join: &Join,
        group_by: &dyn Fn(&crate::config::GroupBy) -> Result<Arc<GroupByFetcher>>,
    ) -> Result<JoinFetcher> {
        let plan = JoinPlan::new(join)?;
        let parts = plan
            .parts
            .iter()
            .map(|p| group_by(&p.group_by))
            .collect::<Result<Vec<_>>>()?;
        let left = engine.scan_schema(&plan.left.scan)?;
        let left_types = left
            .fields()
            .iter()
            .map(|f| (f.name().clone(), f.data_type().clone()))
            .collect();
        let externals = join
            .online_external_parts
            .iter()
            .filter(|e| e.source.offline_group_by.is_none())
            .cloned()
            .zip(plan.externals.iter().cloned())
            .collect();
        let mut f = JoinFetcher {
            join: join.clone(),
            plan,
            parts,
            left_types,
            externals,
            derived_fields: Vec::new(),
        };
        if !f.plan.derivations.is_empty() {
            let (_, schema) = f.derive_batch(engine, &[], &[], 0)?;
            f.derived_fields = schema;
        }
        Ok(f)
    }

    /// The join's base value fields (part columns, then external values), typed.
    pub fn base_fields(&self) -> Vec<Field> {
        let mut out = Vec::new();
        for (p, f) in self.plan.parts.iter().zip(&self.parts) {
            for field in &f.fields {
                out.push(Field::new(
                    format!("{}_{}", p.full_prefix, field.name()),
                    field.data_type().clone(),
                    true,
                ));
            }
        }
        for (_, e) in &self.externals {
            for (n, t) in &e.values {
                out.push(Field::new(n, t.clone(), true));
            }
        }
        out
    }

    /// The key fields a request can carry: every part's left keys, then external keys (left
    /// names), de-duplicated.
    pub fn key_fields(&self) -> Vec<Field> {
        let mut out: Vec<Field> = Vec::new();
        let mut add = |n: &str, t: DataType| {
            if !out.iter().any(|f| f.name() == n) {
                out.push(Field::new(n, t, true));
            }
        };
        for p in &self.plan.parts {
            for k in &p.left_keys {
                add(k, self.left_types.get(k).cloned().unwrap_or(DataType::Utf8));
            }
        }
        for (_, e) in &self.externals {
            for (k, t) in &e.keys {
                add(k, t.clone());
            }
        }
        out
    }

    /// Fetches a batch of requests; `now` is the default query time.
    pub fn fetch(
        &self,
        engine: &Session,
        store: &dyn OnlineStore,
        registry: &ExternalRegistry,
        requests: &[FetchRequest],
        now: i64,
    ) -> Vec<Fetched> {
        let mut rows: Vec<Row> = requests.iter().map(|_| Row::default()).collect();
        let at = |r: &FetchRequest| r.at_millis.unwrap_or(now);
        // 1. join parts
        for (p, f) in self.plan.parts.iter().zip(&self.parts) {
            let mut sent: Vec<usize> = Vec::new();
            let mut queries: Vec<KeyQuery> = Vec::new();
            for (i, r) in requests.iter().enumerate() {
                let missing: Vec<&String> = p
                    .left_keys
                    .iter()
                    .filter(|k| !r.keys.contains_key(*k))
                    .collect();
                if !missing.is_empty() {
                    rows[i].exceptions.insert(
                        format!("{}_exception", p.full_prefix),
                        format!(
                            "Failed to fetch {}: Missing keys {:?} required by GroupBy {} (keys {:?})",
                            p.full_prefix, missing, p.group_by.meta_data.name, p.right_keys
                        ),
                    );
                    continue;
                }
                let keys: Option<Vec<Value>> = p
                    .left_keys
                    .iter()
                    .map(|k| {
                        from_json(
                            &r.keys[k],
                            self.left_types.get(k).unwrap_or(&DataType::Utf8),
                        )
                    })
                    .collect();
                match keys {
                    Some(k) => {
                        sent.push(i);
                        queries.push((k, at(r)));
                    }
                    None => {
                        rows[i].exceptions.insert(
                            format!("{}_exception", p.full_prefix),
                            format!("Failed to fetch {}: a key value does not have the key column's type", p.full_prefix),
                        );
                    }
                }
            }
            let results = f.fetch(engine, store, &queries);
            for (i, res) in sent.into_iter().zip(results) {
                match res {
                    Ok(vals) => {
                        for (j, field) in f.fields.iter().enumerate() {
                            let v = vals
                                .as_ref()
                                .map_or(Value::Null, |v| v.get(j).cloned().unwrap_or(Value::Null));
                            rows[i]
                                .values
                                .insert(format!("{}_{}", p.full_prefix, field.name()), v);
                        }
                    }
                    Err(e) => {
                        rows[i]
                            .exceptions
                            .insert(format!("{}_exception", p.full_prefix), e);
                    }
                }
            }
        }
        // 2. external parts
        for (ep, e) in &self.externals {
            let inverse: HashMap<&str, &str> = ep
                .key_mapping
                .iter()
                .map(|(l, r)| (r.as_str(), l.as_str()))
                .collect();
            let key_names: Vec<String> = ep
                .source
                .key_schema
                .iter()
                .flat_map(|s| &s.params)
                .map(|f| f.name.clone())
                .collect();
            let value_names: Vec<String> = ep
                .source
                .value_schema
                .iter()
                .flat_map(|s| &s.params)
                .map(|f| f.name.clone())
                .collect();
            if e.contextual {
                for (i, r) in requests.iter().enumerate() {
                    for ((n, t), v) in e.keys.iter().zip(&e.values) {
                        let val = r
                            .keys
                            .get(n)
                            .and_then(|j| from_json(j, t))
                            .unwrap_or(Value::Null);
                        rows[i].values.insert(v.0.clone(), val);
                    }
                }
                continue;
            }
            let mut sent = Vec::new();
            let mut batch = Vec::new();
            for (i, r) in requests.iter().enumerate() {
                let mut m = Map::new();
                let mut missing = Vec::new();
                for k in &key_names {
                    let left = inverse.get(k.as_str()).copied().unwrap_or(k.as_str());
                    match r.keys.get(left) {
                        Some(v) => {
                            m.insert(k.clone(), v.clone());
                        }
                        None => missing.push(left.to_string()),
                    }
                }
                if missing.is_empty() {
                    sent.push(i);
                    batch.push(m);
                } else {
                    rows[i].exceptions.insert(
                        format!("{}_exception", e.full_name),
                        format!(
                            "Missing keys {missing:?} for external source {}",
                            ep.source.metadata.name
                        ),
                    );
                }
            }
            if batch.is_empty() {
                continue;
            }
            let results = registry.fetch(&ep.source, batch);
            for (i, res) in sent.into_iter().zip(results) {
                match res {
                    Ok(m) => {
                        for (vn, (full, t)) in value_names.iter().zip(&e.values) {
                            let v = m
                                .get(vn)
                                .and_then(|j| from_json(j, t))
                                .unwrap_or(Value::Null);
                            rows[i].values.insert(full.clone(), v);
                        }
                    }
                    Err(msg) => {
                        rows[i]
                            .exceptions
                            .insert(format!("{}_exception", e.full_name), msg);
                    }
                }
            }
        }
        // 3. derivations
        if !self.plan.derivations.is_empty() {
            match self.derive(engine, requests, &rows, now) {
                Ok(cols) => {
                    for (i, r) in rows.iter_mut().enumerate() {
                        r.derived = Some(
                            cols.iter()
                                .map(|(n, c)| (n.clone(), c[i].clone()))
                                .collect(),
                        );
                    }
                }
                Err(e) => {
                    for r in rows.iter_mut() {
                        r.derived = Some(IndexMap::new());
                        r.exceptions
                            .insert("derivation_fetch_exception".into(), e.clone());
                    }
                }
            }
        }
        rows
    }

    /// Join derivations over request keys, base values, `ts` and `ds` (§6.5 step 4): the
    /// derivation outputs, as columns.
    fn derive(
        &self,
        engine: &Session,
        requests: &[FetchRequest],
        rows: &[Row],
        now: i64,
    ) -> std::result::Result<Vec<(String, Vec<Value>)>, String> {
        self.derive_batch(engine, requests, rows, now)
            .map(|(cols, _)| cols)
            .map_err(|e| e.to_string())
    }

    /// The derivation outputs (columns) and their fields.
    fn derive_batch(
        &self,
        engine: &Session,
        requests: &[FetchRequest],
        rows: &[Row],
        now: i64,
    ) -> Result<(DerivedColumns, Vec<Field>)> {
        let mut fields = Vec::new();
        let mut arrays = Vec::new();
        let mut left = Vec::new();
        for f in self.key_fields() {
            let col: Vec<Value> = requests
                .iter()
                .map(|r| {
                    r.keys
                        .get(f.name())
                        .and_then(|j| from_json(j, f.data_type()))
                        .unwrap_or(Value::Null)
                })
                .collect();
            arrays.push(to_array(f.data_type(), &col)?);
            left.push(f.name().clone());
            fields.push(f);
        }
        let ts: Vec<Value> = requests
            .iter()
            .map(|r| Value::Long(r.at_millis.unwrap_or(now)))
            .collect();
        let ds: Vec<Value> = requests
            .iter()
            .map(|r| Value::str(&Ds::of_millis(r.at_millis.unwrap_or(now)).to_string()))
            .collect();
        for (n, t, col) in [("ts", DataType::Int64, ts), ("ds", DataType::Utf8, ds)] {
            if !left.iter().any(|l| l == n) {
                arrays.push(to_array(&t, &col)?);
                fields.push(Field::new(n, t, true));
                left.push(n.to_string());
            }
        }
        let base = self.base_fields();
        for f in &base {
            let col: Vec<Value> = rows
                .iter()
                .map(|r| r.values.get(f.name()).cloned().unwrap_or(Value::Null))
                .collect();
            arrays.push(to_array(f.data_type(), &col)?);
            fields.push(f.clone());
        }
        let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
            .map_err(|e| Error::arrow("building the derivation input", e))?;
        let base_names: Vec<String> = base.iter().map(|f| f.name().clone()).collect();
        let out = crate::join::output::derive_join(
            engine,
            &self.plan,
            &left,
            std::slice::from_ref(&base_names),
            batch,
        )?;
        let mut cols = Vec::new();
        let mut out_fields = Vec::new();
        for (n, _) in derivation_projection(&base_names, &self.plan.derivations) {
            let (col, field) = match out.column_by_name(&n) {
                Some(a) => (
                    column_values(a)?,
                    Field::new(&n, a.data_type().clone(), true),
                ),
                None => (
                    vec![Value::Null; out.num_rows()],
                    Field::new(&n, DataType::Utf8, true),
                ),
            };
            cols.push((n, col));
            out_fields.push(field);
        }
        Ok((cols, out_fields))
    }
}
