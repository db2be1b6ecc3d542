//! The GroupBy backfill table: one row per key and day, `(keys…, values…)` with `ds` in the
//! partition path, values read from the join dataflow's output state; GroupBy derivations
//! applied (chronon-semantics §2.7). Event GroupBys drop a row whose values are all NULL, as
//! Chronon's `snapshotEvents` does (§2.6); entity snapshots keep every key of the snapshot,
//! and GroupBys without aggregations give one row per source row.

use std::sync::Arc;

use arrow::array::{ArrayRef, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;

use super::keys::{KeyId, KeyIndex};
use super::plan::GroupByPlan;
use crate::aggregate::value::to_array;
use crate::dataflow::records::{row_id, Value};
use crate::dataflow::spec::PartKind;
use crate::error::{Error, Result};
use crate::join::derive::derive_group_by;
use crate::join::output::{part_fields, OutputState};
use crate::partition::Ds;
use crate::sql::Session;

/// The schemas of the table: before derivations (keys, values, `ds`) and as written.
pub struct Schemas {
    pub base: SchemaRef,
    pub written: SchemaRef,
}

impl Schemas {
    /// Plans both schemas from the key fields and the types of the part's inputs.
    pub fn new(
        engine: &Session,
        plan: &GroupByPlan,
        keys: &[Field],
        input_types: &[DataType],
    ) -> Result<Schemas> {
        let values = part_fields(&plan.part, input_types)?;
        let mut fields: Vec<Field> = keys.to_vec();
        for (f, name) in values.iter().zip(&plan.values) {
            fields.push(Field::new(name, f.data_type().clone(), true));
        }
        fields.push(Field::new("ds", DataType::Utf8, true));
        let base: SchemaRef = Arc::new(Schema::new(fields));
        let written = derive(engine, plan, RecordBatch::new_empty(base.clone()))?.schema();
        Ok(Schemas { base, written })
    }
}

/// One day's rows: the batch to write and the number of rows dropped as all-NULL.
pub fn assemble(
    engine: &Session,
    plan: &GroupByPlan,
    schemas: &Schemas,
    index: &KeyIndex,
    day: Ds,
    keys: &[KeyId],
    state: &OutputState,
) -> Result<(RecordBatch, u64)> {
    let ctx = || format!("assembling {} partition ds={day}", plan.output);
    let width = plan.values.len();
    let drop_null = plan.part.kind == PartKind::Events;
    let mut ids: Vec<KeyId> = Vec::with_capacity(keys.len());
    let mut cols: Vec<Vec<Value>> = vec![Vec::with_capacity(keys.len()); width];
    let mut dropped = 0;
    for (i, &id) in keys.iter().enumerate() {
        for values in state.get(row_id(day, i as u32), plan.part.index) {
            if drop_null && values.iter().all(Value::is_null) {
                dropped += 1;
                continue;
            }
            ids.push(id);
            for (c, v) in values.iter().enumerate().take(width) {
                cols[c].push(v.clone());
            }
        }
    }
    let mut columns: Vec<ArrayRef> = index.columns(&ids)?;
    let n_keys = columns.len();
    for (c, values) in cols.iter().enumerate() {
        let field = schemas.base.field(n_keys + c);
        columns
            .push(to_array(field.data_type(), values).map_err(|e| {
                Error::internal(format!("{}: column {}: {e}", ctx(), field.name()))
            })?);
    }
    let day_text = day.to_string();
    columns.push(Arc::new(StringArray::from(vec![
        day_text.as_str();
        ids.len()
    ])));
    let batch =
        RecordBatch::try_new(schemas.base.clone(), columns).map_err(|e| Error::arrow(ctx(), e))?;
    Ok((derive(engine, plan, batch)?, dropped))
}

/// Applies the GroupBy's derivations and removes `ds` (it is the partition path).
fn derive(engine: &Session, plan: &GroupByPlan, batch: RecordBatch) -> Result<RecordBatch> {
    let derived = derive_group_by(
        engine,
        &batch,
        &plan.part.right_keys,
        &plan.values,
        &plan.part.derivations,
        &format!("derivations of GroupBy {}", plan.name),
    )?;
    let keep: Vec<usize> = (0..derived.num_columns())
        .filter(|&i| derived.schema().field(i).name() != "ds")
        .collect();
    derived
        .project(&keep)
        .map_err(|e| Error::arrow(format!("GroupBy {} output", plan.name), e))
}
