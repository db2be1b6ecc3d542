//! Puts bootstrap values into an output partition (chronon-semantics §4.7, §4.9): per column
//! and row, NULL falling through, the left's own column wins, then bootstrap parts in list
//! order (the log last), then the computed value. External fields nothing supplied are NULL
//! columns; a contextual field `<f>` and its value column `ext_contextual_<f>` both take
//! `coalesce(<f>, ext_contextual_<f>)`. Every cell's source is counted ([`Provenance`]).
//!
//! weft's column order does not depend on which bootstrap parts exist: left columns, join-part
//! columns, external fields (keys, then values, per external part), then bootstrapped derived
//! fields (which join derivations then coalesce with their expressions).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::ArrayRef;
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};

use super::fields::{FieldKind, Fields};
use super::tables::BootTable;
use super::ExternalPlan;
use crate::aggregate::value::{column_values, to_array};
use crate::aggregate::Value;
use crate::dataflow::records::BootValues;
use crate::error::{Error, Result};

/// Where a cell's value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Null,
    Left,
    Computed,
    Bootstrap(u16),
}

/// Value counts by source for one output column.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnProvenance {
    pub left: u64,
    /// Per bootstrap part, in priority order.
    pub bootstrap: Vec<u64>,
    pub computed: u64,
    pub null: u64,
}

impl ColumnProvenance {
    fn count(&mut self, s: Source, parts: usize) {
        self.bootstrap.resize(parts, 0);
        match s {
            Source::Null => self.null += 1,
            Source::Left => self.left += 1,
            Source::Computed => self.computed += 1,
            Source::Bootstrap(p) => self.bootstrap[p as usize] += 1,
        }
    }

    /// Adds another count (of another partition).
    pub fn add(&mut self, o: &ColumnProvenance) {
        self.left += o.left;
        self.computed += o.computed;
        self.null += o.null;
        if self.bootstrap.len() < o.bootstrap.len() {
            self.bootstrap.resize(o.bootstrap.len(), 0);
        }
        for (a, b) in self.bootstrap.iter_mut().zip(&o.bootstrap) {
            *a += b;
        }
    }
}

/// Rows computed and covered for one join part.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartCoverage {
    pub part: String,
    /// Left rows bootstrap covers (the GroupBy is not computed for them).
    pub covered: u64,
    /// Left rows the GroupBy was computed for.
    pub computed: u64,
}

/// Where the values of an output partition came from: stored in the partition's Parquet
/// footer under [`PROVENANCE_KEY`] and read back by `weft explain`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    pub rows: u64,
    /// Bootstrap part labels, in priority order (`table` or `table (log)`).
    pub bootstrap_parts: Vec<String>,
    pub parts: Vec<PartCoverage>,
    pub columns: BTreeMap<String, ColumnProvenance>,
}

/// Parquet footer key of a partition's [`Provenance`].
pub const PROVENANCE_KEY: &str = "weft.provenance";

impl Provenance {
    /// Adds another partition's counts.
    pub fn add(&mut self, o: &Provenance) {
        self.rows += o.rows;
        if self.bootstrap_parts.is_empty() {
            self.bootstrap_parts = o.bootstrap_parts.clone();
        }
        for p in &o.parts {
            match self.parts.iter_mut().find(|q| q.part == p.part) {
                Some(q) => {
                    q.covered += p.covered;
                    q.computed += p.computed;
                }
                None => self.parts.push(p.clone()),
            }
        }
        for (c, v) in &o.columns {
            self.columns.entry(c.clone()).or_default().add(v);
        }
    }
}

/// What the assembler needs to know about a join's bootstrap, fixed for a run.
#[derive(Debug, Clone)]
pub struct Bootstrap {
    pub fields: Fields,
    pub tables: Vec<BootTable>,
    pub externals: Vec<ExternalPlan>,
    /// Fields some bootstrap part supplies.
    pub supplied: Vec<bool>,
    /// Bootstrapped fields that are neither left, join-part nor external columns: added
    /// after the external fields (derived values).
    pub extra: Vec<u16>,
}

impl Bootstrap {
    pub fn new(
        fields: Fields,
        tables: Vec<BootTable>,
        externals: Vec<ExternalPlan>,
        left_columns: &[String],
    ) -> Bootstrap {
        let mut supplied = vec![false; fields.list.len()];
        for t in &tables {
            for (_, f) in &t.columns {
                supplied[*f as usize] = true;
            }
        }
        let mut extra = Vec::new();
        for (i, f) in fields.list.iter().enumerate() {
            let placed = left_columns.contains(&f.name)
                || matches!(
                    f.kind,
                    FieldKind::PartValue(_)
                        | FieldKind::ExternalKey { .. }
                        | FieldKind::ExternalValue { .. }
                );
            if supplied[i] && !placed {
                extra.push(i as u16);
            }
        }
        Bootstrap {
            fields,
            tables,
            externals,
            supplied,
            extra,
        }
    }

    /// Recomputes what the parts supply after their tables' columns changed (a log table
    /// gained columns); returns whether the bootstrapped derived columns changed (the output
    /// schema then changes too).
    pub fn refresh(&mut self, left_columns: &[String]) -> bool {
        let fresh = Bootstrap::new(
            self.fields.clone(),
            std::mem::take(&mut self.tables),
            self.externals.clone(),
            left_columns,
        );
        let changed = fresh.extra != self.extra;
        *self = fresh;
        changed
    }

    /// Labels of the bootstrap parts for reports.
    pub fn labels(&self) -> Vec<String> {
        self.tables
            .iter()
            .map(|t| {
                if t.log {
                    format!("{} (log)", t.plan.table)
                } else {
                    t.plan.table.clone()
                }
            })
            .collect()
    }

    /// Merges bootstrap values into `batch` (left columns, then join-part columns after
    /// GroupBy derivations). `rows[i]` is the left row of output row `i`, `boot` the bootstrap
    /// outcome per left row, `parts[p]` the partition of bootstrap part `p` its matches point
    /// into. Returns the merged batch and each cell's source per column.
    pub fn apply(
        &self,
        batch: &RecordBatch,
        left_columns: &[String],
        rows: &[u32],
        boot: &HashMap<u32, BootValues>,
        parts: &[Option<&RecordBatch>],
    ) -> Result<(RecordBatch, HashMap<String, Vec<Source>>)> {
        let ctx = "merging bootstrap values";
        let n = batch.num_rows();
        // each bootstrap column a row matched into, converted once
        let mut columns: HashMap<(u16, u16), Vec<Value>> = HashMap::new();
        for t in &self.tables {
            let Some(Some(b)) = parts.get(t.plan.index as usize) else {
                continue;
            };
            for (c, f) in &t.columns {
                if let Some(a) = b.column_by_name(c) {
                    columns.insert((t.plan.index, *f), column_values(a)?);
                }
            }
        }
        // the first non-NULL value of field `f` among the matches of output row `i`
        let by_field = |i: usize, f: u16| -> Option<(u16, &Value)> {
            let b = boot.get(&rows[i])?;
            b.matched.iter().find_map(|(p, r, _)| {
                let v = columns.get(&(*p, f))?.get(*r as usize)?;
                (!v.is_null()).then_some((*p, v))
            })
        };
        struct Out {
            fields: Vec<Field>,
            arrays: Vec<ArrayRef>,
            sources: HashMap<String, Vec<Source>>,
        }
        impl Out {
            fn push(
                &mut self,
                name: &str,
                dt: &DataType,
                values: Vec<Value>,
                src: Vec<Source>,
            ) -> Result<()> {
                self.arrays.push(to_array(dt, &values).map_err(|e| {
                    Error::internal(format!("merging bootstrap values: column {name}: {e}"))
                })?);
                self.fields.push(Field::new(name, dt.clone(), true));
                self.sources.insert(name.to_string(), src);
                Ok(())
            }
            fn has(&self, name: &str) -> bool {
                self.fields.iter().any(|f| f.name() == name)
            }
        }
        let mut out = Out {
            fields: Vec::new(),
            arrays: Vec::new(),
            sources: HashMap::new(),
        };
        // left and join-part columns, coalesced with what bootstrap supplies
        for (c, col) in batch.schema().fields().iter().zip(batch.columns()) {
            let is_left = left_columns.contains(c.name());
            let base = if is_left {
                Source::Left
            } else {
                Source::Computed
            };
            let field = self
                .fields
                .get(c.name())
                .filter(|&f| self.supplied[f as usize]);
            let values = column_values(col)?;
            let mut src: Vec<Source> = values
                .iter()
                .map(|v| if v.is_null() { Source::Null } else { base })
                .collect();
            match field {
                None => {
                    out.fields.push(c.as_ref().clone());
                    out.arrays.push(col.clone());
                    out.sources.insert(c.name().clone(), src);
                }
                Some(f) => {
                    let mut values = values;
                    for i in 0..n {
                        // the left's own value wins; a bootstrap value wins over a computed one
                        if is_left && !values[i].is_null() {
                            continue;
                        }
                        if let Some((p, v)) = by_field(i, f) {
                            values[i] = v.clone();
                            src[i] = Source::Bootstrap(p);
                        }
                    }
                    out.push(c.name(), c.data_type(), values, src)?;
                }
            }
        }
        let bootstrapped = |f: Option<u16>| -> (Vec<Value>, Vec<Source>) {
            let mut values = vec![Value::Null; n];
            let mut src = vec![Source::Null; n];
            if let Some(f) = f {
                for i in 0..n {
                    if let Some((p, v)) = by_field(i, f) {
                        values[i] = v.clone();
                        src[i] = Source::Bootstrap(p);
                    }
                }
            }
            (values, src)
        };
        // external fields: keys (unless left columns), then values
        for e in &self.externals {
            for (name, dt) in e.keys.iter().chain(&e.values) {
                if out.has(name) {
                    continue;
                }
                let (values, src) = bootstrapped(self.fields.get(name));
                out.push(name, dt, values, src)?;
            }
        }
        // contextual fields: `<f>` and `ext_contextual_<f>` agree
        for e in self.externals.iter().filter(|e| e.contextual) {
            for (key, _) in &e.keys {
                let value = format!("{}_{key}", e.full_name);
                let (Some(ki), Some(vi)) = (
                    out.fields.iter().position(|f| f.name() == key),
                    out.fields.iter().position(|f| f.name() == &value),
                ) else {
                    continue;
                };
                let kv = column_values(&out.arrays[ki])?;
                let vv = column_values(&out.arrays[vi])?;
                let ks = out.sources[key].clone();
                let vs = out.sources[&value].clone();
                let mut merged = Vec::with_capacity(n);
                let mut msrc = Vec::with_capacity(n);
                for i in 0..n {
                    if !kv[i].is_null() {
                        merged.push(kv[i].clone());
                        msrc.push(ks[i]);
                    } else {
                        merged.push(vv[i].clone());
                        msrc.push(vs[i]);
                    }
                }
                for (idx, name) in [(ki, key.clone()), (vi, value.clone())] {
                    let dt = out.fields[idx].data_type().clone();
                    out.arrays[idx] = to_array(&dt, &merged)
                        .map_err(|e| Error::internal(format!("{ctx}: column {name}: {e}")))?;
                    out.sources.insert(name, msrc.clone());
                }
            }
        }
        // bootstrapped derived fields
        for &f in &self.extra {
            let jf = &self.fields.list[f as usize];
            if out.has(&jf.name) {
                continue;
            }
            let (values, src) = bootstrapped(Some(f));
            out.push(&jf.name, &jf.data_type, values, src)?;
        }
        let batch = RecordBatch::try_new(Arc::new(Schema::new(out.fields)), out.arrays)
            .map_err(|e| Error::arrow(ctx, e))?;
        Ok((batch, out.sources))
    }

    /// Drops contextual key columns that are neither left columns nor derivation outputs
    /// (Chronon's `cleanUpContextualFields`).
    pub fn drop_contextual_keys(
        &self,
        batch: RecordBatch,
        left_columns: &[String],
        derived: &[String],
    ) -> Result<RecordBatch> {
        let drop: Vec<&str> = self
            .externals
            .iter()
            .filter(|e| e.contextual)
            .flat_map(|e| e.keys.iter().map(|(k, _)| k.as_str()))
            .filter(|k| !left_columns.iter().any(|l| l == k) && !derived.iter().any(|d| d == k))
            .collect();
        let keep: Vec<usize> = (0..batch.num_columns())
            .filter(|&i| !drop.contains(&batch.schema().field(i).name().as_str()))
            .collect();
        batch
            .project(&keep)
            .map_err(|e| Error::arrow("dropping contextual keys", e))
    }

    /// Counts the sources of the final output's cells: a column that existed before join
    /// derivations keeps its sources where the value is unchanged; anything else that is not
    /// NULL was computed.
    pub fn count(
        &self,
        out: &RecordBatch,
        before: &HashMap<String, Vec<Source>>,
    ) -> Result<BTreeMap<String, ColumnProvenance>> {
        let parts = self.tables.len();
        let mut cols = BTreeMap::new();
        for (f, a) in out.schema().fields().iter().zip(out.columns()) {
            let mut c = ColumnProvenance {
                bootstrap: vec![0; parts],
                ..Default::default()
            };
            let src = before.get(f.name());
            for i in 0..a.len() {
                let s = if a.is_null(i) {
                    Source::Null
                } else {
                    match src.map(|s| s[i]) {
                        Some(Source::Null) | None => Source::Computed,
                        Some(s) => s,
                    }
                };
                c.count(s, parts);
            }
            cols.insert(f.name().clone(), c);
        }
        Ok(cols)
    }
}

use arrow::array::Array;
