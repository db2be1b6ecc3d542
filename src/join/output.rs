//! The join's partition writer: assembles an output partition from the maintained output
//! values ([`OutputState`], in `join::values`) as the left rows (in their original order)
//! followed by every part's feature columns. A left row matching several
//! raw entity rows (no-aggregation parts) appears once per match, as in Chronon.

use std::sync::Arc;

use arrow::array::{ArrayRef, UInt32Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;

use super::plan::{JoinPlan, PartPlan};
use crate::aggregate::sink::ColumnSink;
use crate::aggregate::value::to_array;
use crate::dataflow::records::{row_id, Value};
use crate::error::{Error, Result};
use crate::partition::Ds;

pub use super::values::OutputState;

/// The output fields of one part, given the types of its inputs.
pub fn part_fields(part: &PartPlan, input_types: &[DataType]) -> Result<Vec<Field>> {
    if part.columns.is_empty() {
        return Ok(part
            .raw_names
            .iter()
            .zip(input_types)
            .map(|(n, t)| Field::new(n, t.clone(), true))
            .collect());
    }
    part.columns
        .iter()
        .map(|c| {
            let input = &input_types[c.input];
            let dt = c.spec.output_type(input).map_err(|m| Error::Config {
                file: part.group_by.meta_data.name.clone(),
                path: format!("aggregations (column {})", c.gb_column),
                message: format!("input `{}` has type {input}: {m}", part.inputs[c.input]),
            })?;
            let dt = if c.bucket.is_some() {
                crate::aggregate::value::map_type(dt)
            } else {
                dt
            };
            Ok(Field::new(&c.name, dt, true))
        })
        .collect()
}

/// The output schema: left data columns, then feature columns part by part.
pub fn output_schema(left: &SchemaRef, parts: &[Vec<Field>]) -> SchemaRef {
    let mut fields: Vec<Field> = left.fields().iter().map(|f| f.as_ref().clone()).collect();
    for p in parts {
        fields.extend(p.iter().cloned());
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
    Ok(assemble_rows(plan, schema, ds, left, state)?.0)
}

/// As [`assemble`], also returning the left row of each output row (a row repeats when a
/// no-aggregation part matched several entity rows).
pub fn assemble_rows(
    plan: &JoinPlan,
    schema: &SchemaRef,
    ds: Ds,
    left: &RecordBatch,
    state: &OutputState,
) -> Result<(RecordBatch, Vec<u32>)> {
    let ctx = || format!("assembling {} partition ds={ds}", plan.output);
    let widths: Vec<usize> = plan
        .parts
        .iter()
        .map(|p| p.columns.len().max(p.raw_names.len()))
        .collect();
    let n_left = left.num_columns();
    let mut sinks: Vec<ColumnSink> = schema.fields()[n_left..]
        .iter()
        .map(|f| ColumnSink::new(f.data_type(), left.num_rows()))
        .collect();
    let sink_err = |k: usize, e: Error| {
        Error::internal(format!(
            "{}: column {}: {e}",
            ctx(),
            schema.field(n_left + k).name()
        ))
    };
    let pending = state.partition(ds);
    let mut take: Vec<u32> = Vec::with_capacity(left.num_rows());
    let mut entries = Vec::with_capacity(plan.parts.len());
    for i in 0..left.num_rows() {
        let row = row_id(ds, i as u32);
        entries.clear();
        entries.extend(
            plan.parts
                .iter()
                .map(|p| pending.and_then(|m| m.rows(row, p.index))),
        );
        if entries.iter().all(|e| e.map_or(0, |r| r.len()) <= 1) {
            // one output row: each part's values straight from their encoding (or NULLs)
            take.push(i as u32);
            let mut col = 0;
            for (pi, e) in entries.iter_mut().enumerate() {
                match e.as_mut().and_then(Iterator::next) {
                    Some(mut bytes) => {
                        for (c, sink) in sinks[col..col + widths[pi]].iter_mut().enumerate() {
                            sink.push_encoded(&mut bytes)
                                .map_err(|e| sink_err(col + c, e))?;
                        }
                    }
                    None => sinks[col..col + widths[pi]]
                        .iter_mut()
                        .for_each(ColumnSink::push_null),
                }
                col += widths[pi];
            }
            continue;
        }
        // one output row per combination of matches (a part without matches gives NULLs)
        let matches: Vec<Vec<Vec<Value>>> =
            plan.parts.iter().map(|p| state.get(row, p.index)).collect();
        let counts: Vec<usize> = matches.iter().map(|m| m.len().max(1)).collect();
        let total: usize = counts.iter().product();
        for combo in 0..total {
            take.push(i as u32);
            let mut rest = combo;
            let mut col = 0;
            for (pi, m) in matches.iter().enumerate() {
                let pick = rest % counts[pi];
                rest /= counts[pi];
                for c in 0..widths[pi] {
                    let v = m.get(pick).map_or(Value::Null, |v| v[c].clone());
                    sinks[col + c]
                        .push_value(v)
                        .map_err(|e| sink_err(col + c, e))?;
                }
                col += widths[pi];
            }
        }
    }
    let indices = UInt32Array::from(take.clone());
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for c in left.columns() {
        if indices.len() == left.num_rows() {
            columns.push(c.clone());
        } else {
            columns
                .push(arrow::compute::take(c, &indices, None).map_err(|e| Error::arrow(ctx(), e))?);
        }
    }
    for (k, sink) in sinks.into_iter().enumerate() {
        columns.push(sink.finish().map_err(|e| sink_err(k, e))?);
    }
    let batch =
        RecordBatch::try_new(schema.clone(), columns).map_err(|e| Error::arrow(ctx(), e))?;
    Ok((batch, take))
}

/// Applies GroupBy derivations (per part, on the part's unprefixed columns and its keys) and
/// then the join's derivations (§2.7, §9) to an assembled batch.
pub fn derive(
    engine: &crate::sql::Session,
    plan: &JoinPlan,
    left_columns: &[String],
    batch: RecordBatch,
) -> Result<RecordBatch> {
    let (batch, base_values) = derive_group_bys(engine, plan, batch)?;
    derive_join(engine, plan, left_columns, &base_values, batch)
}

/// Applies each part's GroupBy derivations in place; returns the batch and the join's base
/// value columns (every part's columns after its derivations), per part.
pub fn derive_group_bys(
    engine: &crate::sql::Session,
    plan: &JoinPlan,
    batch: RecordBatch,
) -> Result<(RecordBatch, Vec<Vec<String>>)> {
    use super::derive::derive_group_by;
    let mut batch = batch;
    let mut per_part: Vec<Vec<String>> = Vec::new();
    for p in &plan.parts {
        let names: Vec<String> = if p.columns.is_empty() {
            p.raw_names.clone()
        } else {
            p.columns.iter().map(|c| c.name.clone()).collect()
        };
        if p.derivations.is_empty() {
            per_part.push(names);
            continue;
        }
        let mut base_values = Vec::new();
        let ctx = format!("derivations of GroupBy {}", p.group_by.meta_data.name);
        // the part as the GroupBy sees it: its keys and unprefixed value columns
        let prefix = format!("{}_", p.full_prefix);
        let mut fields = Vec::new();
        let mut arrays = Vec::new();
        for (l, r) in p.left_keys.iter().zip(&p.right_keys) {
            let i = batch
                .schema()
                .index_of(l)
                .map_err(|e| Error::arrow(&ctx, e))?;
            fields.push(Field::new(
                r,
                batch.schema().field(i).data_type().clone(),
                true,
            ));
            arrays.push(batch.column(i).clone());
        }
        let mut values = Vec::new();
        for n in &names {
            let i = batch
                .schema()
                .index_of(n)
                .map_err(|e| Error::arrow(&ctx, e))?;
            let short = n.strip_prefix(&prefix).unwrap_or(n).to_string();
            fields.push(Field::new(
                &short,
                batch.schema().field(i).data_type().clone(),
                true,
            ));
            arrays.push(batch.column(i).clone());
            values.push(short);
        }
        let part_batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
            .map_err(|e| Error::arrow(&ctx, e))?;
        let derived = derive_group_by(
            engine,
            &part_batch,
            &p.right_keys,
            &values,
            &p.derivations,
            &ctx,
        )?;
        // replace the part's columns by the derived ones, prefixed, in place
        let schema = batch.schema();
        let first = schema
            .index_of(&names[0])
            .map_err(|e| Error::arrow(&ctx, e))?;
        let mut out_fields: Vec<Field> = Vec::new();
        let mut out_arrays: Vec<ArrayRef> = Vec::new();
        for (i, f) in schema.fields().iter().enumerate() {
            if i == first {
                for (df, da) in derived.schema().fields().iter().zip(derived.columns()) {
                    if p.right_keys.contains(df.name()) || df.name() == "ds" || df.name() == "ts" {
                        continue;
                    }
                    let name = format!("{prefix}{}", df.name());
                    base_values.push(name.clone());
                    out_fields.push(Field::new(&name, df.data_type().clone(), true));
                    out_arrays.push(da.clone());
                }
            }
            if names.contains(f.name()) {
                continue;
            }
            out_fields.push(f.as_ref().clone());
            out_arrays.push(batch.column(i).clone());
        }
        batch = RecordBatch::try_new(Arc::new(Schema::new(out_fields)), out_arrays)
            .map_err(|e| Error::arrow(&ctx, e))?;
        per_part.push(base_values);
    }
    Ok((batch, per_part))
}

/// Applies the join's derivations over `base_values` (join-part and external value columns).
pub fn derive_join(
    engine: &crate::sql::Session,
    plan: &JoinPlan,
    left_columns: &[String],
    base_values: &[Vec<String>],
    batch: RecordBatch,
) -> Result<RecordBatch> {
    if plan.derivations.is_empty() {
        return Ok(batch);
    }
    let base: Vec<String> = base_values.iter().flatten().cloned().collect();
    super::derive::derive_join_with_left(
        engine,
        &batch,
        left_columns,
        &base,
        &plan.derivations,
        &format!("derivations of join {}", plan.name),
    )
}

/// Builds a partition from its (possibly re-landed) left rows, the values written before
/// (`existing`, by row position) and the pending changes in `state`, which win. Used when
/// the output's values are not kept in memory (joins without derivations or raw parts): a
/// row whose query did not change keeps what was written.
pub fn patch(
    plan: &JoinPlan,
    schema: &SchemaRef,
    ds: Ds,
    left: &RecordBatch,
    existing: Option<&RecordBatch>,
    state: &OutputState,
) -> Result<RecordBatch> {
    let ctx = || format!("updating {} partition ds={ds}", plan.output);
    let n = left.num_rows();
    let mut columns: Vec<ArrayRef> = left.columns().to_vec();
    for p in &plan.parts {
        let pending: Vec<Option<Option<Vec<Value>>>> = (0..n)
            .map(|i| {
                state
                    .raw(row_id(ds, i as u32), p.index)
                    .map(|v| v.into_iter().next())
            })
            .collect();
        for (c, col) in p.columns.iter().enumerate() {
            let field = schema
                .field_with_name(&col.name)
                .map_err(|e| Error::arrow(ctx(), e))?;
            let mut values = match existing.and_then(|e| e.column_by_name(&col.name)) {
                Some(old) => crate::aggregate::value::column_values(old)?,
                None => Vec::new(),
            };
            values.resize(n, Value::Null);
            for (i, v) in pending.iter().enumerate() {
                if let Some(v) = v {
                    values[i] = v.as_ref().map_or(Value::Null, |v| v[c].clone());
                }
            }
            columns
                .push(to_array(field.data_type(), &values).map_err(|e| {
                    Error::internal(format!("{}: column {}: {e}", ctx(), col.name))
                })?);
        }
    }
    RecordBatch::try_new(schema.clone(), columns).map_err(|e| Error::arrow(ctx(), e))
}

/// Whether written partitions can be patched from disk (so their values need not stay in
/// memory): no derivations, no raw (no-aggregation) parts, no bootstrap or external parts.
pub fn patchable(plan: &JoinPlan) -> bool {
    !plan.has_bootstrap()
        && plan.externals.is_empty()
        && plan.derivations.is_empty()
        && plan
            .parts
            .iter()
            .all(|p| p.derivations.is_empty() && !p.columns.is_empty())
}
