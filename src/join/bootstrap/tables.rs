//! Bootstrap parts resolved against their tables (chronon-semantics §4.2–§4.5): whether a part
//! is a log bootstrap, which fields its rows provide (per part for regular tables, per
//! `schema_hash` for log tables), every validation problem reported together, and the
//! conversion of bootstrap and left rows into the bootstrap stage's inputs.

use std::collections::BTreeMap;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

use super::fields::{same_type, Fields};
use super::log_schema::{read_schemas, LOG_TABLE_PROPERTY};
use super::BootPartPlan;
use crate::aggregate::value::column_values;
use crate::dataflow::records::{row_id, BootInput, BootRow, Key, RowId};
use crate::dataflow::BootUpdate;
use crate::error::{Error, Result};
use crate::join::inputs::{canonical_type, encode_key, key_arrays};
use crate::partition::Ds;
use crate::sql::Session;
use crate::warehouse::TableName;

/// Columns Chronon reserves for its bootstrap bookkeeping.
pub const RESERVED: [&str; 2] = ["bootstrap_hash", "matched_hashes"];

/// A bootstrap part resolved against its table.
#[derive(Debug, Clone)]
pub struct BootTable {
    pub plan: BootPartPlan,
    /// A log bootstrap: coverage per row from its `schema_hash`.
    pub log: bool,
    /// Columns of the part's scan that are join fields, with the field index.
    pub columns: Vec<(String, u16)>,
    /// Regular tables: the fields every row provides (sorted).
    pub provided: Vec<u16>,
    /// Log tables: the fields each schema hash provides (sorted).
    pub hashes: BTreeMap<String, Vec<u16>>,
}

/// Rows of a bootstrap partition that could not be used.
#[derive(Debug, Default, Clone, Copy)]
pub struct BootStats {
    pub rows: u64,
    /// A key column (or `ds`) is NULL: the row matches no left row.
    pub null_keys: u64,
    /// Log rows without a `schema_hash` (legacy logs).
    pub null_hash: u64,
}

/// Resolves and validates every bootstrap part; all problems are reported together.
pub fn resolve(
    engine: &Session,
    join_name: &str,
    parts: &[BootPartPlan],
    fields: &Fields,
    left: &SchemaRef,
    left_table: &str,
) -> Result<Vec<BootTable>> {
    let wh = engine.warehouse();
    let mut errors = Vec::new();
    let mut out = Vec::new();
    for r in RESERVED {
        if left.field_with_name(r).is_ok() {
            errors.push(Error::data(left_table, None, format!("contains column `{r}`, which is reserved by Chronon for bootstrap bookkeeping"))
                .with_fix("rename the column in the left query's selects"));
        }
    }
    for bp in parts {
        let t = bp.table.as_str();
        let name = match TableName::parse(t) {
            Ok(n) => n,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        if !wh.exists(&name) {
            errors.push(wh.missing_table(&name, &bp.scan.purpose));
            continue;
        }
        let props = wh.properties(&name)?;
        let log = props.contains_key(LOG_TABLE_PROPERTY) && !bp.has_selects;
        let schema = match engine.scan_schema(&bp.scan) {
            Ok(s) => s,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        for k in &bp.keys {
            match (schema.field_with_name(k), left.field_with_name(k)) {
                (Err(_), _) => errors.push(Error::data(t, None, format!(
                    "{} does not contain the bootstrap key `{k}` (keys: {}, ds)",
                    if log { "the log table" } else { "the bootstrap query's output" },
                    bp.keys.join(", ")
                )).with_fix(if bp.has_selects { "select the key column in the bootstrap part's query" } else { "set keyColumns on the bootstrap part (or the join's rowIds) to columns the table has" })),
                (_, Err(_)) => errors.push(Error::data(left_table, None, format!(
                    "the left has no column `{k}`, a key of bootstrapParts[{}] ({t})", bp.index
                )).with_fix("select the row id column in the left query, or set keyColumns on the bootstrap part")),
                (Ok(b), Ok(l)) if canonical_type(b.data_type()) != canonical_type(l.data_type()) || canonical_type(b.data_type()).is_none() => {
                    errors.push(Error::data(t, None, format!(
                        "bootstrap key `{k}` has type {} but {} on the left ({left_table})", b.data_type(), l.data_type()
                    )).with_fix("cast it in the bootstrap part's query selects"))
                }
                _ => {}
            }
        }
        for r in RESERVED {
            if schema.field_with_name(r).is_ok() {
                errors.push(Error::data(t, None, format!("contains column `{r}`, which is reserved by Chronon for bootstrap bookkeeping"))
                    .with_fix("leave it out of the bootstrap part's query selects"));
            }
        }
        let is_key = |c: &str| c == "ds" || bp.keys.iter().any(|k| k == c);
        let mut columns = Vec::new();
        let mut provided = Vec::new();
        let mut hashes = BTreeMap::new();
        if log {
            for f in schema.fields() {
                if is_key(f.name()) {
                    continue;
                }
                if let Some(i) = fields.get(f.name()) {
                    if same_type(&fields.list[i as usize].data_type, f.data_type()) {
                        columns.push((f.name().clone(), i));
                    }
                }
            }
            hashes = schema_fields(t, &props, fields)?;
            if schema.field_with_name("schema_hash").is_err() {
                errors.push(Error::data(t, None, "is marked as a log table (chronon_log_table) but has no `schema_hash` column")
                    .with_fix("re-create it with the log flattener, or select the bootstrap columns explicitly to use it as a regular table"));
            }
        } else {
            if schema.field_with_name("schema_hash").is_ok() {
                errors.push(Error::data(t, None, "schema_hash is a reserved column that should only be used for chronon log tables")
                    .with_fix("leave schema_hash out of the bootstrap part's query selects"));
            }
            for f in schema.fields() {
                let c = f.name().as_str();
                if is_key(c) || c == "ts" || c == "schema_hash" || RESERVED.contains(&c) {
                    continue;
                }
                match fields.get(c) {
                    None => errors.push(Error::data(t, None, format!(
                        "column `{c}` ({}) is selected for bootstrapParts[{}], but join {join_name} has no field `{c}`",
                        f.data_type(), bp.index
                    )).with_fix(if bp.has_selects {
                        "select only the join's output columns (feature, external or derived columns under their output names) and the keys".to_string()
                    } else {
                        format!("select the feature columns explicitly in the bootstrap part's query (a table such as another join's output also carries its left columns, e.g. `{c}`)")
                    })),
                    Some(i) => {
                        let jf = &fields.list[i as usize];
                        if !same_type(&jf.data_type, f.data_type()) {
                            errors.push(Error::data(t, None, format!(
                                "column `{c}` has type {}, but join {join_name} has the same field with type {}",
                                f.data_type(), jf.data_type
                            )).with_fix(format!("cast it in the bootstrap part's query selects, e.g. CAST({c} AS <the join's type>)")));
                        } else {
                            columns.push((c.to_string(), i));
                            provided.push(i);
                        }
                    }
                }
            }
            provided.sort_unstable();
            provided.dedup();
        }
        out.push(BootTable {
            plan: bp.clone(),
            log,
            columns,
            provided,
            hashes,
        });
    }
    if !errors.is_empty() {
        return Err(Error::Many(
            std::iter::once(Error::Usage(format!(
                "validation failed for the bootstrap parts of join {join_name}"
            )))
            .chain(errors)
            .collect(),
        ));
    }
    Ok(out)
}

impl BootTable {
    /// Reloads a log table's columns and schema hashes: the flattener appends columns and
    /// hashes as the logged schema evolves.
    pub fn refresh_hashes(&mut self, engine: &Session, fields: &Fields) -> Result<()> {
        if !self.log {
            return Ok(());
        }
        let schema = engine.scan_schema(&self.plan.scan)?;
        let is_key = |c: &str| c == "ds" || self.plan.keys.iter().any(|k| k == c);
        self.columns = schema
            .fields()
            .iter()
            .filter(|f| !is_key(f.name()))
            .filter_map(|f| {
                let i = fields.get(f.name())?;
                same_type(&fields.list[i as usize].data_type, f.data_type())
                    .then(|| (f.name().clone(), i))
            })
            .collect();
        let name = TableName::parse(&self.plan.table)?;
        let props = engine.warehouse().properties(&name)?;
        self.hashes
            .extend(schema_fields(&self.plan.table, &props, fields)?);
        Ok(())
    }

    /// The bootstrap stage's inputs for a partition of this part's scan (signed by `sign`).
    pub fn rows(
        &self,
        batch: &RecordBatch,
        ds: Ds,
        sign: isize,
        stats: &mut BootStats,
    ) -> Result<Vec<BootUpdate>> {
        let t = &self.plan.table;
        let what = format!("bootstrap table {t} partition ds={ds}");
        let keys = key_arrays(batch, &self.plan.keys, &what)?;
        let cols: Vec<(u16, Vec<crate::aggregate::Value>)> = self
            .columns
            .iter()
            .map(|(c, f)| match batch.column_by_name(c) {
                Some(a) => Ok((*f, column_values(a)?)),
                // a column added to the table after this partition was read: NULL here
                None => Ok((*f, vec![crate::aggregate::Value::Null; batch.num_rows()])),
            })
            .collect::<Result<_>>()?;
        let hashes = if self.log {
            let a = batch.column_by_name("schema_hash").ok_or_else(|| {
                Error::data(t, Some(&format!("ds={ds}")), "no `schema_hash` column")
            })?;
            Some(
                arrow::compute::cast(a, &arrow::datatypes::DataType::Utf8)
                    .map_err(|e| Error::arrow(&what, e))?,
            )
        } else {
            None
        };
        let hashes = hashes.as_ref().map(|a| a.as_string::<i32>());
        let mut out = Vec::with_capacity(batch.num_rows());
        for i in 0..batch.num_rows() {
            stats.rows += 1;
            let Some(key) = part_key(&keys, i, ds) else {
                stats.null_keys += 1;
                continue;
            };
            let provided = match hashes {
                None => self.provided.clone(),
                Some(h) if h.is_null(i) => {
                    stats.null_hash += 1;
                    continue;
                }
                Some(h) => match self.hashes.get(h.value(i)) {
                    Some(p) => p.clone(),
                    None => {
                        return Err(Error::data(t, Some(&format!("ds={ds}")), format!(
                            "row {i} has schema_hash `{}`, which has no `schema_hash_{}` table property: the log table's metadata is out of date",
                            h.value(i), h.value(i)
                        )).with_fix("re-run the log flattener for these partitions (it writes the property), or drop the stale partitions"));
                    }
                },
            };
            let mut buf = Vec::new();
            for (f, v) in &cols {
                buf.extend_from_slice(&f.to_le_bytes());
                crate::aggregate::codec::encode_value(&v[i], &mut buf);
            }
            let digest = {
                use std::hash::{Hash, Hasher};
                let mut h = std::hash::DefaultHasher::new();
                buf.hash(&mut h);
                h.finish()
            };
            out.push((
                BootInput::Row {
                    key: (self.plan.index, key),
                    row: BootRow {
                        digest,
                        row: i as u32,
                        provided,
                    },
                },
                sign,
            ));
        }
        Ok(out)
    }
}

/// The join fields each logging schema of a log table provides (sorted): its value fields
/// whose name and type match a join field.
fn schema_fields(
    table: &str,
    props: &BTreeMap<String, String>,
    fields: &Fields,
) -> Result<BTreeMap<String, Vec<u16>>> {
    Ok(read_schemas(table, props)?
        .into_iter()
        .map(|(h, s)| {
            let mut p: Vec<u16> = s
                .values
                .iter()
                .filter_map(|(n, ty)| {
                    let i = fields.get(n)?;
                    same_type(&fields.list[i as usize].data_type, ty).then_some(i)
                })
                .collect();
            p.sort_unstable();
            p.dedup();
            (h, p)
        })
        .collect())
}

/// A row's encoded `(keys…, ds)`; `None` when a key is NULL.
fn part_key(keys: &[ArrayRef], i: usize, ds: Ds) -> Option<Key> {
    let mut k = encode_key(keys, i)?;
    k.extend_from_slice(&ds.0.to_be_bytes());
    Some(k)
}

/// The bootstrap stage's inputs for a left partition: each row's key for every bootstrap part,
/// and its queries (from the per-part query updates the caller built).
pub fn left_keys(
    batch: &RecordBatch,
    ds: Ds,
    parts: &[BootTable],
    table: &str,
    sign: isize,
) -> Result<Vec<BootUpdate>> {
    let what = format!("left {table} partition ds={ds}");
    let mut out = Vec::new();
    for p in parts {
        let keys = key_arrays(batch, &p.plan.keys, &what)?;
        for i in 0..batch.num_rows() {
            if let Some(k) = part_key(&keys, i, ds) {
                let row: RowId = row_id(ds, i as u32);
                out.push((
                    BootInput::Key {
                        key: (p.plan.index, k),
                        row,
                    },
                    sign,
                ));
            }
        }
    }
    Ok(out)
}
