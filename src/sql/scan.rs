//! Renders how Chronon reads a source (chronon-semantics §1.2): user selects merged over
//! fill-ins (`col → null` projects the raw column, `col → expr` projects `expr AS col`),
//! partition bounds on the source's own partition column, sub-partition filters, and the
//! user's wheres. [`Session::scan`] runs it and, when it fails, names the expression at fault.

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use indexmap::IndexMap;

use super::Session;
use crate::config::Query;
use crate::error::{Error, Result};
use crate::partition::{Ds, PartitionRange};
use crate::warehouse::{TableName, Warehouse};

/// One source read: a table, its Chronon query, fill-ins and the partitions wanted.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Scan {
    /// The table as written in the config (may carry `/k=v` sub-partition filters).
    pub table: String,
    pub query: Query,
    /// Columns projected when the query has selects: name → `None` (raw column) or an expression.
    pub fill_ins: Vec<(String, Option<String>)>,
    pub range: Option<PartitionRange>,
    /// What this scan is for, for error messages (e.g. "left of join risk.checkout.v1").
    pub purpose: String,
}

/// Quotes an identifier for DataFusion.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quotes a string literal.
pub fn literal(v: &str) -> String {
    format!("'{}'", v.replace('\'', "''"))
}

impl Scan {
    pub fn table_name(&self) -> Result<TableName> {
        TableName::parse(&self.table)
    }

    /// The table's partitions (on the scan's partition column) with their fingerprints; a
    /// table with none is missing: an error naming what reads it.
    pub fn fingerprints(&self, wh: &Warehouse) -> Result<Vec<(Ds, u64)>> {
        let t = self.table_name()?;
        let fps = wh.partition_fingerprints(&t, &self.partition_column())?;
        if fps.is_empty() {
            return Err(wh.missing_table(&t, &self.purpose));
        }
        Ok(fps)
    }

    pub fn partition_column(&self) -> String {
        self.query
            .partition_column
            .clone()
            .unwrap_or_else(|| "ds".into())
    }

    /// The projection: `(output name, SQL expression)`, or `None` for `SELECT *`.
    pub fn projections(&self) -> Option<Vec<(String, String)>> {
        let selects = self.query.selects.as_ref()?;
        let mut merged: IndexMap<String, String> = IndexMap::new();
        for (name, expr) in selects {
            merged.insert(name.clone(), expr.clone());
        }
        for (name, fill) in &self.fill_ins {
            if !merged.contains_key(name) {
                // `ds` is read from the source's own partition column (`partitionColumn`).
                let raw = if name == "ds" {
                    ident(&self.partition_column())
                } else {
                    ident(name)
                };
                merged.insert(name.clone(), fill.clone().unwrap_or(raw));
            }
        }
        Some(merged.into_iter().collect())
    }

    /// The WHERE conjuncts: partition bounds, sub-partition filters, then user wheres.
    pub fn conjuncts(&self) -> Result<Vec<String>> {
        let pc = ident(&self.partition_column());
        let mut out = Vec::new();
        if let Some(r) = &self.range {
            out.push(format!("{pc} >= {}", literal(&r.start.to_string())));
            out.push(format!("{pc} <= {}", literal(&r.end.to_string())));
        }
        for (k, v) in &self.table_name()?.sub_partition_filters {
            out.push(format!("{} = {}", ident(k), literal(v)));
        }
        out.extend(self.query.wheres.iter().map(|w| format!("({w})")));
        Ok(out)
    }

    pub fn sql(&self) -> Result<String> {
        let t = self.table_name()?;
        self.sql_from(&format!("{}.{}", ident(&t.namespace), ident(&t.name)))
    }

    /// The scan's SQL reading `from` (a quoted table name) instead of its table: the same
    /// selects and wheres applied to other rows (e.g. streamed events).
    pub fn sql_from(&self, from: &str) -> Result<String> {
        let proj = match self.projections() {
            None => "*".to_string(),
            Some(p) => p
                .iter()
                .map(|(name, expr)| {
                    if *expr == ident(name) {
                        expr.clone()
                    } else {
                        format!("{expr} AS {}", ident(name))
                    }
                })
                .collect::<Vec<_>>()
                .join(", "),
        };
        let mut sql = format!("SELECT {proj} FROM {from}");
        let c = self.conjuncts()?;
        if !c.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&c.join(" AND "));
        }
        Ok(sql)
    }
}

impl Session {
    /// Runs a scan. A missing table or a bad select/where is reported with the table, the
    /// expression and the table's columns.
    pub fn scan(&self, scan: &Scan) -> Result<(SchemaRef, Vec<RecordBatch>)> {
        self.run_scan(scan, "")
    }

    /// The schema a scan produces, without reading data (errors as for [`Session::scan`]).
    pub fn scan_schema(&self, scan: &Scan) -> Result<SchemaRef> {
        self.run_scan(scan, " LIMIT 0").map(|(schema, _)| schema)
    }

    fn run_scan(&self, scan: &Scan, suffix: &str) -> Result<(SchemaRef, Vec<RecordBatch>)> {
        let t = scan.table_name()?;
        if let Some(e) = self.broken_table(&t) {
            // re-try: the table may have been fixed since the last refresh
            self.register_table(&t).map_err(|_| e)?;
            self.broken
                .lock()
                .expect("broken tables lock")
                .remove(&t.to_string());
        }
        if !self.warehouse().exists(&t)
            || self
                .warehouse()
                .partitions_by(&t, &scan.partition_column())?
                .is_empty()
        {
            return Err(self.warehouse().missing_table(&t, &scan.purpose));
        }
        self.run_setups(&scan.query.setups)?;
        let sql = format!("{}{suffix}", scan.sql()?);
        self.query_with_schema(&sql, &format!("reading {t} for {}", scan.purpose))
            .map_err(|e| self.diagnose(scan, &t).unwrap_or(e))
    }

    /// Finds the first select or where of a failing scan that does not plan on its own.
    fn diagnose(&self, scan: &Scan, t: &TableName) -> Option<Error> {
        let from = format!("FROM {}.{}", ident(&t.namespace), ident(&t.name));
        let columns = self
            .warehouse()
            .table_schema(t)
            .map(|s| {
                s.fields()
                    .iter()
                    .map(|f| f.name().clone())
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        let mut checks: Vec<(String, String)> = Vec::new();
        for (name, expr) in scan.projections().unwrap_or_default() {
            checks.push((
                format!("select `{name}` = `{expr}`"),
                format!("SELECT {expr} {from} LIMIT 0"),
            ));
        }
        for w in &scan.query.wheres {
            checks.push((
                format!("where `{w}`"),
                format!("SELECT 1 {from} WHERE ({w}) LIMIT 0"),
            ));
        }
        for (what, sql) in checks {
            if let Err(Error::Sql { message, .. }) = self.query(&sql, "") {
                return Some(Error::Sql {
                    context: format!("table `{t}` ({}), {what}", scan.purpose),
                    message,
                    fix: Some(format!("the table's columns are: {columns}")),
                });
            }
        }
        None
    }
}
