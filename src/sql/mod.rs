//! The SQL engine (DataFusion) over the warehouse: every table is registered as
//! `<ns>.<name>` with its Hive partition columns, Spark functions are added
//! (`datafusion-spark` plus `spark_fns`), `/` divides as in Spark (`spark_division`),
//! identifiers keep their case as in Spark, and Chronon source scans are rendered by [`scan`].

pub(crate) mod batch;
pub mod scan;
pub(crate) mod spark_division;
pub(crate) mod spark_fns;

use std::path::Path;
use std::sync::Arc;

use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use datafusion::catalog::MemorySchemaProvider;
use datafusion::common::TableReference;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::execution::FunctionRegistry;
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::error::{Error, Result};
use crate::warehouse::{file_name, read_dir_sorted, TableName, Warehouse};

/// File in a table folder that turns the table into a view (staging queries with `createView`).
pub const VIEW_FILE: &str = "_weft_view.sql";

/// A DataFusion session bound to one warehouse.
pub struct Session {
    ctx: SessionContext,
    rt: tokio::runtime::Runtime,
    wh: Warehouse,
    /// Setups already run in this session (each runs once).
    setups_done: std::sync::Mutex<std::collections::HashSet<String>>,
    /// Tables that could not be registered (a corrupt file, a type that changes between
    /// partitions), with their error: only a job that reads one fails, with that error.
    broken: std::sync::Mutex<std::collections::BTreeMap<String, Error>>,
}

impl Session {
    /// A session with every table and view of the warehouse registered.
    pub fn new(wh: &Warehouse) -> Result<Session> {
        let mut config = SessionConfig::new()
            .with_information_schema(true)
            .with_target_partitions(2);
        config.options_mut().sql_parser.enable_ident_normalization = false;
        // Deterministic row order: whole files per partition, partitions concatenated in order.
        config.options_mut().optimizer.repartition_file_scans = false;
        // No file statistics: DataFusion reads a column whose Exact min equals its max as that
        // constant, but Parquet min/max leave NaN out, so [1.0, NaN] would read as [1.0, 1.0].
        config.options_mut().execution.collect_statistics = false;
        let mut ctx = SessionContext::new_with_config(config);
        // Spark's `/` (DOUBLE, NULL for a zero divisor); sessions built from this one's state
        // (`with_batch`) inherit it.
        ctx.register_expr_planner(Arc::new(spark_division::SparkDivisionPlanner))
            .map_err(|e| sql_err("registering Spark division", e))?;
        for f in datafusion_spark::all_default_scalar_functions() {
            // Spark's own semantics for the functions DataFusion also has (concat, if, …).
            ctx.register_udf(f.as_ref().clone());
        }
        for f in spark_fns::udfs() {
            ctx.register_udf(f);
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| Error::io("starting the SQL runtime", e))?;
        let engine = Session {
            ctx,
            rt,
            wh: wh.clone(),
            setups_done: Default::default(),
            broken: Default::default(),
        };
        engine.refresh()?;
        Ok(engine)
    }

    pub fn warehouse(&self) -> &Warehouse {
        &self.wh
    }

    /// Re-registers every table (after writes that add partitions, columns or tables). A
    /// table that cannot be registered is left out and remembered: a job that reads it
    /// fails with its error ([`Session::broken_table`]); the others run.
    pub fn refresh(&self) -> Result<()> {
        let mut views = Vec::new();
        let mut broken = std::collections::BTreeMap::new();
        for t in self.wh.tables()? {
            let view = self.wh.table_dir(&t).join(VIEW_FILE);
            if view.exists() {
                views.push((t, view));
            } else if let Err(e) = self.register_table(&t) {
                tracing::warn!(table = %t, error = %e, "table left out of the SQL session: only jobs that read it fail");
                let _ = self.ctx.deregister_table(TableReference::partial(
                    t.namespace.as_str(),
                    t.name.as_str(),
                ));
                broken.insert(t.to_string(), e);
            }
        }
        *self.broken.lock().expect("broken tables lock") = broken;
        for (t, path) in views {
            let sql = std::fs::read_to_string(&path)
                .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
            self.ensure_schema(&t.namespace);
            let _ = self.ctx.deregister_table(TableReference::partial(
                t.namespace.as_str(),
                t.name.as_str(),
            ));
            self.create_view(&t, &sql)?;
        }
        Ok(())
    }

    fn ensure_schema(&self, ns: &str) {
        let catalog = self.ctx.catalog("datafusion").expect("default catalog");
        if catalog.schema(ns).is_none() {
            let _ = catalog.register_schema(ns, Arc::new(MemorySchemaProvider::new()));
        }
    }

    /// Registers one table with its partition columns (found from its folder names).
    pub fn register_table(&self, t: &TableName) -> Result<()> {
        let dir = self.wh.table_dir(t);
        let part_cols = partition_columns(&dir)?;
        if part_cols.is_empty() {
            return Ok(()); // no data yet
        }
        let schema = self.wh.table_schema_under(t, &part_cols)?;
        self.ensure_schema(&t.namespace);
        let r = TableReference::partial(t.namespace.as_str(), t.name.as_str());
        // Scoping the listing to the table makes `deregister_table` drop DataFusion's cached file
        // list (kept forever by default), so partitions written since are seen after a refresh.
        let url = ListingTableUrl::parse(format!("{}/", dir.display()))
            .map_err(|e| sql_err(&format!("registering table {t}"), e))?
            .with_table_ref(r.clone());
        let opts = ListingOptions::new(Arc::new(ParquetFormat::default()))
            .with_file_extension(".parquet")
            .with_table_partition_cols(
                part_cols
                    .iter()
                    .map(|c| (c.clone(), DataType::Utf8))
                    .collect(),
            );
        let cfg = ListingTableConfig::new(url)
            .with_listing_options(opts)
            .with_schema(schema);
        let table = ListingTable::try_new(cfg)
            .map_err(|e| sql_err(&format!("registering table {t}"), e))?;
        let _ = self.ctx.deregister_table(r.clone());
        self.ctx
            .register_table(r, Arc::new(table))
            .map_err(|e| sql_err(&format!("registering table {t}"), e))?;
        Ok(())
    }

    /// The error of a table the last refresh could not register, if `t` is one.
    pub fn broken_table(&self, t: &TableName) -> Option<Error> {
        self.broken
            .lock()
            .expect("broken tables lock")
            .get(&t.to_string())
            .map(|e| Error::data(&t.to_string(), None, e.to_string()))
    }

    /// The stored error of a broken table a failed statement names, instead of DataFusion's
    /// "table not found".
    fn explain_missing(&self, sql: &str, err: Error) -> Error {
        let broken = self.broken.lock().expect("broken tables lock");
        let lower = sql.to_ascii_lowercase();
        match broken
            .iter()
            .find(|(name, _)| lower.contains(&name.to_ascii_lowercase()))
        {
            Some((name, e)) if err.to_string().contains("not found") => {
                Error::data(name, None, format!("the table cannot be read: {e}"))
            }
            _ => err,
        }
    }

    /// Runs a read-only query and collects its result (see [`Session::query_with_schema`]).
    pub fn query(&self, sql: &str, context: &str) -> Result<Vec<RecordBatch>> {
        self.query_with_schema(sql, context).map(|(_, b)| b)
    }

    /// Runs a read-only query (a SELECT, WITH … SELECT, or EXPLAIN) and returns its result
    /// with its schema (also for empty results). DDL (`CREATE [EXTERNAL] TABLE`, views), DML
    /// (`INSERT`, `DELETE`), `COPY … TO` and other statements are refused before anything
    /// runs: staging queries, setups, selects, wheres, derivations and `weft query` cannot
    /// write files or read paths outside the warehouse's tables.
    pub fn query_with_schema(
        &self,
        sql: &str,
        context: &str,
    ) -> Result<(SchemaRef, Vec<RecordBatch>)> {
        tracing::debug!(%sql, context, "sql");
        let options = datafusion::execution::context::SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false);
        self.rt.block_on(async {
            let df = self
                .ctx
                .sql_with_options(sql, options)
                .await
                .map_err(|e| {
                    let mut err = sql_err(context, e);
                    if let Error::Sql { message, fix, .. } = &mut err {
                        if message.contains("not supported")
                            || message.contains("DDL")
                            || message.contains("DML")
                        {
                            *fix = Some("SQL in weft is read-only: write a SELECT (tables are written by weft's pipelines, never by SQL statements)".into());
                        }
                    }
                    self.explain_missing(sql, err)
                })?;
            let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
            let parts = df
                .collect_partitioned()
                .await
                .map_err(|e| sql_err(context, e))?;
            let batches = parts
                .into_iter()
                .flatten()
                .filter(|b| b.num_rows() > 0)
                .collect();
            Ok((schema, batches))
        })
    }

    /// Runs a config's `setups` (of a staging query, or of a source's query before it is
    /// read), each once per session, read-only like every query (a setup that would write
    /// is refused). Hive UDF registrations and Spark `SET`s cannot apply here: they are
    /// reported, not hidden.
    pub fn run_setups(&self, setups: &[String]) -> Result<()> {
        for s in setups {
            if self.setups_done.lock().expect("setups lock").contains(s) {
                continue;
            }
            let lower = s.trim().to_ascii_lowercase();
            if lower.starts_with("create temporary function") || lower.starts_with("add jar") {
                tracing::warn!(setup = %s, "skipping setup: Hive UDF jars cannot be loaded by weft; use built-in Spark SQL functions");
            } else if lower.starts_with("set ") {
                tracing::warn!(setup = %s, "skipping setup: Spark session settings do not apply to weft");
            } else {
                self.query(s, &format!("setup `{s}`"))?;
            }
            self.setups_done
                .lock()
                .expect("setups lock")
                .insert(s.clone());
        }
        Ok(())
    }

    /// Registers `sql` (a stored staging-query view) as view `t`: the one DDL weft runs.
    pub(crate) fn create_view(&self, t: &TableName, sql: &str) -> Result<()> {
        let context = format!("registering view {t}");
        // the body must itself be a read-only query
        self.query_with_schema(&format!("EXPLAIN {sql}"), &context)?;
        self.rt.block_on(async {
            self.ctx
                .sql(&format!("CREATE VIEW {t} AS {sql}"))
                .await
                .map_err(|e| sql_err(&context, e))?
                .collect()
                .await
                .map_err(|e| sql_err(&context, e))
        })?;
        Ok(())
    }
}

fn sql_err(context: &str, e: impl std::fmt::Display) -> Error {
    Error::Sql {
        context: context.to_string(),
        message: e.to_string(),
        fix: None,
    }
}

/// The Hive partition columns of a table, read from the first path of `k=v` folders.
fn partition_columns(dir: &Path) -> Result<Vec<String>> {
    let mut cols = Vec::new();
    let mut cur = dir.to_path_buf();
    loop {
        if !cur.is_dir() {
            break;
        }
        let next = read_dir_sorted(&cur)?
            .into_iter()
            .find(|p| p.is_dir() && file_name(p).contains('=') && !file_name(p).starts_with('.'));
        match next {
            Some(p) => {
                cols.push(
                    file_name(&p)
                        .split('=')
                        .next()
                        .unwrap_or_default()
                        .to_string(),
                );
                cur = p;
            }
            None => break,
        }
    }
    Ok(cols)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{ArrayRef, AsArray, Float64Array};
    use arrow::datatypes::{Field, Float64Type, Schema};

    #[test]
    fn nan_survives_a_scan_when_the_other_values_are_equal() {
        let dir = tempfile::tempdir().unwrap();
        let wh = Warehouse::open(dir.path()).unwrap();
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Float64, true)]));
        let x: ArrayRef = Arc::new(Float64Array::from(vec![1.0, f64::NAN]));
        let batch = RecordBatch::try_new(schema.clone(), vec![x]).unwrap();
        let t = TableName::parse("ns.t").unwrap();
        wh.write_partition(&t, &[("ds".into(), "2026-01-01".into())], schema, &[batch])
            .unwrap();
        let engine = Session::new(&wh).unwrap();
        let out = engine.query("SELECT x FROM ns.t", "scan").unwrap();
        let xs: Vec<f64> = out
            .iter()
            .flat_map(|b| b.column(0).as_primitive::<Float64Type>().values().to_vec())
            .collect();
        assert_eq!(xs.len(), 2);
        assert_eq!(xs[0], 1.0);
        assert!(xs[1].is_nan(), "NaN read back as {}", xs[1]);
    }

    #[test]
    fn statements_that_write_or_read_outside_the_warehouse_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let wh = Warehouse::open(dir.path()).unwrap();
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Float64, true)]));
        let x: ArrayRef = Arc::new(Float64Array::from(vec![1.0]));
        let batch = RecordBatch::try_new(schema.clone(), vec![x]).unwrap();
        let t = TableName::parse("ns.t").unwrap();
        wh.write_partition(&t, &[("ds".into(), "2026-01-01".into())], schema, &[batch])
            .unwrap();
        let engine = Session::new(&wh).unwrap();
        let out = dir.path().join("copied");
        for sql in [
            format!(
                "COPY (SELECT x FROM ns.t) TO '{}' STORED AS PARQUET",
                out.display()
            ),
            "INSERT INTO ns.t VALUES (2.0, '2026-01-02')".to_string(),
            "CREATE EXTERNAL TABLE p (line STRING) STORED AS CSV LOCATION '/etc/passwd'"
                .to_string(),
            "CREATE TABLE u AS SELECT 1".to_string(),
            "DROP TABLE ns.t".to_string(),
        ] {
            let e = engine
                .query(&sql, "a staging query")
                .unwrap_err()
                .to_string();
            assert!(e.contains("read-only"), "{sql}: {e}");
        }
        assert!(!out.exists(), "COPY wrote a file");
        assert_eq!(
            engine.query("SELECT count(*) FROM ns.t", "count").unwrap()[0].num_rows(),
            1
        );
        assert!(engine
            .run_setups(&["INSERT INTO ns.t VALUES (3.0, '2026-01-03')".into()])
            .is_err());
        engine
            .run_setups(&[
                "SET spark.sql.shuffle.partitions=10".into(),
                "CREATE TEMPORARY FUNCTION f AS 'x.Y'".into(),
            ])
            .unwrap();
    }
}
