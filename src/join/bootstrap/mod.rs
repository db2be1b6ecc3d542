//! Bootstrap (chronon-semantics §4): filling join output columns from tables that already hold
//! the values — the join's log, older joins, legacy and custom tables — matched to left rows on
//! `(row ids…, ds)`, so GroupBys are computed only for rows nothing covers.
//!
//! - this file plans bootstrap parts and online-only external parts from the config;
//! - [`fields`] builds the join's field universe, types and coverage dependencies (§4.3);
//! - [`tables`] resolves each part against its table (log or regular, provided fields per
//!   hash), validates it (§4.4) and turns its rows into dataflow updates;
//! - [`log_schema`] reads the logging schemas a log table carries in its properties;
//! - [`assemble`] coalesces bootstrap values into an output partition by priority (§4.7),
//!   pads external and contextual fields (§4.9) and counts where each value came from.
//!
//! The matching and coverage run inside the join's dataflow ([`crate::dataflow::bootstrap`]).

pub mod assemble;
pub mod fields;
pub mod log_schema;
pub mod tables;

use crate::config::{naming, ExternalPart, Join, Query};
use crate::error::{Error, Result};
use crate::sql::scan::Scan;

/// A bootstrap part as planned from the config.
#[derive(Debug, Clone)]
pub struct BootPartPlan {
    /// Position in `bootstrapParts`: its priority (0 wins).
    pub index: u16,
    pub table: String,
    /// Left columns matched on (without `ds`, which is always matched too).
    pub keys: Vec<String>,
    /// The part's scan: its query (or `SELECT *`), partition column renamed to `ds`.
    pub scan: Scan,
    /// Whether the query has explicit selects (a log table with selects is a regular table).
    pub has_selects: bool,
    /// The part's hash: which fields a row of a regular table provides is keyed by it.
    pub hash: String,
}

/// An online-only external part (no `offlineGroupBy`): its fields can only be bootstrapped.
#[derive(Debug, Clone)]
pub struct ExternalPlan {
    /// `ext_[<prefix>_]<source name>`.
    pub full_name: String,
    pub contextual: bool,
    /// Key fields under their left names (key mapping applied), with their types.
    pub keys: Vec<(String, arrow::datatypes::DataType)>,
    /// Value fields, named `<full_name>_<field>`, with their types.
    pub values: Vec<(String, arrow::datatypes::DataType)>,
}

/// `ext_[<prefix>_]<sanitized source name>` (Chronon's `ExternalPart.fullName`).
pub fn external_full_name(e: &ExternalPart) -> String {
    let prefix = e
        .prefix
        .as_deref()
        .map(|p| format!("{p}_"))
        .unwrap_or_default();
    format!("ext_{prefix}{}", naming::sanitize(&e.source.metadata.name))
}

/// Plans the bootstrap parts and the online-only external parts of a join.
pub fn plan(join: &Join) -> Result<(Vec<BootPartPlan>, Vec<ExternalPlan>)> {
    let name = &join.meta_data.name;
    let mut errors = Vec::new();
    let mut boots = Vec::new();
    for (i, b) in join.bootstrap_parts.iter().enumerate() {
        let keys = if !b.key_columns.is_empty() {
            b.key_columns.clone()
        } else {
            join.row_ids.clone()
        };
        let keys: Vec<String> = keys.into_iter().filter(|k| k != "ds").collect();
        if keys.is_empty() {
            errors.push(Error::Config {
                file: name.clone(),
                path: format!("bootstrapParts[{i}].keyColumns"),
                message: "the bootstrap part has no join key: set rowIds on the join (the columns that identify a training row, e.g. an event id) or keyColumns on the part".into(),
            });
            continue;
        }
        let query = b.query.clone().unwrap_or_default();
        let has_selects = query.selects.as_ref().is_some_and(|s| !s.is_empty());
        let query = Query {
            selects: if has_selects {
                query.selects.clone()
            } else {
                None
            },
            ..query
        };
        let mut hashed = b.clone();
        hashed.meta_data = None;
        boots.push(BootPartPlan {
            index: i as u16,
            table: b.table.clone(),
            keys,
            scan: Scan {
                table: b.table.clone(),
                query,
                fill_ins: vec![("ds".into(), None)],
                range: None,
                purpose: format!("bootstrapParts[{i}] of join {name}"),
            },
            has_selects,
            hash: crate::join::semantic_hash::hash_value(&hashed),
        });
    }
    let mut externals = Vec::new();
    for (i, e) in join.online_external_parts.iter().enumerate() {
        if e.source.offline_group_by.is_some() {
            continue;
        }
        let full_name = external_full_name(e);
        let contextual = e.source.metadata.name == "contextual";
        let mut fields = |schema: &Option<crate::config::TDataType>, what: &str| {
            let mut out = Vec::new();
            for f in schema.iter().flat_map(|s| &s.params) {
                match fields::arrow_type(&f.data_type) {
                    Some(t) => out.push((f.name.clone(), t)),
                    None => errors.push(Error::Config {
                        file: name.clone(),
                        path: format!("onlineExternalParts[{i}].source.{what}.{}", f.name),
                        message: "this field type cannot be represented in a table".into(),
                    }),
                }
            }
            out
        };
        let keys = fields(&e.source.key_schema, "keySchema")
            .into_iter()
            .map(|(k, t)| {
                let left = e
                    .key_mapping
                    .iter()
                    .find(|(_, r)| **r == k)
                    .map(|(l, _)| l.clone())
                    .unwrap_or(k);
                (left, t)
            })
            .collect();
        let values = fields(&e.source.value_schema, "valueSchema")
            .into_iter()
            .map(|(v, t)| (format!("{full_name}_{v}"), t))
            .collect();
        externals.push(ExternalPlan {
            full_name,
            contextual,
            keys,
            values,
        });
    }
    Error::collect(errors)?;
    Ok((boots, externals))
}
