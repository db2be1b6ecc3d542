//! The join's output state and partition writer: applies the dataflow's output changes to
//! `(row, part) → values`, and assembles an output partition as the left rows (in their
//! original order) followed by every part's feature columns.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Builder, Int64Builder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;

use super::plan::JoinPlan;
use crate::dataflow::records::{row_id, Num, PartValues, RowId};
use crate::dataflow::windows::AggOp;
use crate::error::{Error, Result};
use crate::partition::Ds;

/// The maintained output values.
#[derive(Default)]
pub struct OutputState {
    values: HashMap<(RowId, u16), Vec<Num>>,
}

impl OutputState {
    /// Applies output changes from the dataflow.
    pub fn apply(&mut self, changes: Vec<(PartValues, isize)>) {
        // retractions first, so a value replaced within one epoch ends as the insertion
        let (adds, removes): (Vec<_>, Vec<_>) = changes.into_iter().partition(|(_, r)| *r > 0);
        for ((row, part, vals), _) in removes {
            if self.values.get(&(row, part)) == Some(&vals) {
                self.values.remove(&(row, part));
            }
        }
        for ((row, part, vals), _) in adds {
            self.values.insert((row, part), vals);
        }
    }

    pub fn get(&self, row: RowId, part: u16) -> Option<&Vec<Num>> {
        self.values.get(&(row, part))
    }
}

/// The output schema: left data columns, then feature columns part by part.
pub fn output_schema(plan: &JoinPlan, left: &SchemaRef, double_sums: &[Vec<bool>]) -> SchemaRef {
    let mut fields: Vec<Field> = left.fields().iter().map(|f| f.as_ref().clone()).collect();
    for p in &plan.parts {
        for c in &p.columns {
            let dt = match (c.op, double_sums[p.index as usize][c.agg_index]) {
                (AggOp::Sum, true) => DataType::Float64,
                _ => DataType::Int64,
            };
            fields.push(Field::new(&c.name, dt, true));
        }
    }
    Arc::new(Schema::new(fields))
}

/// Builds one output partition from the left rows of `ds` and the maintained values.
pub fn assemble(
    plan: &JoinPlan,
    schema: &SchemaRef,
    ds: Ds,
    left: &RecordBatch,
    state: &OutputState,
) -> Result<RecordBatch> {
    let n = left.num_rows();
    let mut columns: Vec<ArrayRef> = left.columns().to_vec();
    for p in &plan.parts {
        for (ci, c) in p.columns.iter().enumerate() {
            let field = schema
                .field_with_name(&c.name)
                .expect("output schema has every column");
            let value = |i: usize| {
                state
                    .get(row_id(ds, i as u32), p.index)
                    .map(|v| v[ci])
                    .unwrap_or(Num::Null)
            };
            let arr: ArrayRef = match field.data_type() {
                DataType::Float64 => {
                    let mut b = Float64Builder::with_capacity(n);
                    (0..n).for_each(|i| b.append_option(value(i).as_f64()));
                    Arc::new(b.finish())
                }
                _ => {
                    let mut b = Int64Builder::with_capacity(n);
                    (0..n).for_each(|i| match value(i) {
                        Num::Long(v) => b.append_value(v),
                        _ => b.append_null(),
                    });
                    Arc::new(b.finish())
                }
            };
            columns.push(arr);
        }
    }
    RecordBatch::try_new(schema.clone(), columns)
        .map_err(|e| Error::arrow(format!("assembling {} partition ds={ds}", plan.output), e))
}
