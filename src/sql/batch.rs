//! SQL over an in-memory batch: the batch is registered as a temporary table under a unique
//! name, one statement runs against it, and the table is dropped again. Used to evaluate
//! Chronon derivations (Spark SQL expressions) over rows computed by the dataflow.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::prelude::SessionContext;

use super::{scan::ident, sql_err, Session};
use crate::error::Result;

static NEXT_BATCH_TABLE: AtomicU64 = AtomicU64::new(0);

/// A temporary table registered for the duration of [`Session::with_batch`].
pub struct BatchTable<'a> {
    ctx: &'a SessionContext,
    rt: &'a tokio::runtime::Runtime,
    name: String,
}

impl BatchTable<'_> {
    /// The table's name, quoted for use in a `FROM` clause.
    pub fn name(&self) -> String {
        ident(&self.name)
    }

    /// Runs one statement (that reads the table) and returns its schema and rows. Rows keep
    /// the batch's order: the statement runs on a single partition.
    pub fn query(&self, sql: &str, context: &str) -> Result<(SchemaRef, Vec<RecordBatch>)> {
        tracing::debug!(%sql, context, "sql over batch");
        self.rt.block_on(async {
            let df = self.ctx.sql(sql).await.map_err(|e| sql_err(context, e))?;
            let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
            let batches = df.collect().await.map_err(|e| sql_err(context, e))?;
            Ok((schema, batches))
        })
    }
}

impl Session {
    /// Runs `f` with `batch` registered as a temporary table (dropped afterwards, also on
    /// error). Statements run through the table execute on one partition, so results keep the
    /// batch's row order.
    pub fn with_batch<T>(
        &self,
        batch: &RecordBatch,
        f: impl FnOnce(&BatchTable<'_>) -> Result<T>,
    ) -> Result<T> {
        let state = self.ctx.state();
        let mut config = state.config().clone();
        config.options_mut().execution.target_partitions = 1;
        // The catalog list is shared with the engine's session: building a state that creates
        // the default catalog would replace it, unregistering every warehouse table.
        config
            .options_mut()
            .catalog
            .create_default_catalog_and_schema = false;
        let ctx = SessionContext::new_with_state(
            SessionStateBuilder::new_from_existing(state)
                .with_config(config)
                .build(),
        );
        let name = format!(
            "__weft_batch_{}_{}",
            std::process::id(),
            NEXT_BATCH_TABLE.fetch_add(1, Ordering::Relaxed)
        );
        ctx.register_batch(name.as_str(), batch.clone())
            .map_err(|e| sql_err("registering an in-memory batch", e))?;
        let table = BatchTable {
            ctx: &ctx,
            rt: &self.rt,
            name: name.clone(),
        };
        let out = f(&table);
        let _ = ctx.deregister_table(name.as_str());
        out
    }

    /// `SELECT {select_list} FROM <batch>` as one batch with the result's schema (also when
    /// there are no rows), in the input's row order.
    pub fn query_batch(
        &self,
        batch: &RecordBatch,
        select_list: &str,
        context: &str,
    ) -> Result<RecordBatch> {
        self.with_batch(batch, |t| {
            let (schema, batches) =
                t.query(&format!("SELECT {select_list} FROM {}", t.name()), context)?;
            arrow::compute::concat_batches(&schema, &batches).map_err(|e| sql_err(context, e))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{ArrayRef, Int64Array};
    use arrow::datatypes::{DataType, Field, Schema};

    #[test]
    fn query_batch_keeps_row_order_and_types() {
        let dir = tempfile::tempdir().unwrap();
        let wh = crate::warehouse::Warehouse::open(dir.path()).unwrap();
        let engine = Session::new(&wh).unwrap();
        let n = 20_000i64;
        let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, false)]));
        let a: ArrayRef = Arc::new(Int64Array::from_iter_values((0..n).rev()));
        let batch = RecordBatch::try_new(schema, vec![a]).unwrap();
        let out = engine
            .query_batch(&batch, "a * 2 AS \"b\"", "test")
            .unwrap();
        assert_eq!(out.num_rows(), n as usize);
        let b = out.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
        assert!(b.iter().zip((0..n).rev()).all(|(x, y)| x == Some(y * 2)));
        // The temporary table is gone.
        assert!(engine.query_batch(&batch, "a", "again").is_ok());
        let empty = RecordBatch::new_empty(batch.schema());
        let out = engine
            .query_batch(&empty, "CAST(a AS DOUBLE) AS \"d\"", "test")
            .unwrap();
        assert_eq!(out.num_rows(), 0);
        assert_eq!(out.schema().field(0).data_type(), &DataType::Float64);
    }

    #[test]
    fn warehouse_tables_stay_registered_after_a_batch_query() {
        let dir = tempfile::tempdir().unwrap();
        let wh = crate::warehouse::Warehouse::open(dir.path()).unwrap();
        let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, true)]));
        let a: ArrayRef = Arc::new(Int64Array::from(vec![1, 2]));
        let batch = RecordBatch::try_new(schema.clone(), vec![a]).unwrap();
        let t = crate::warehouse::TableName::parse("ns.t").unwrap();
        wh.write_partition(
            &t,
            &[("ds".into(), "2026-01-01".into())],
            schema,
            std::slice::from_ref(&batch),
        )
        .unwrap();
        let engine = Session::new(&wh).unwrap();
        let count = || {
            engine
                .query("SELECT count(*) FROM ns.t", "count")
                .map(|b| b.len())
        };
        assert!(count().is_ok());
        engine.query_batch(&batch, "a", "batch").unwrap();
        assert!(
            count().is_ok(),
            "ns.t is gone after a batch query: {:?}",
            count()
        );
    }
}
