//! A join part's inputs as the dataflow sees them: the types of its source columns (which
//! every source must agree on), its dataflow spec (operations, windows, hops), and which
//! source partitions its queries read. Shared by joins, GroupBy tables and uploads.

use arrow::datatypes::{DataType, SchemaRef};

use super::inputs;
use super::plan::{PartPlan, SourcePlan};
use crate::aggregate::{Aggregator, InputShape};
use crate::dataflow::spec::{ColumnSpec, PartKind, PartSpec};
use crate::error::{Error, Result};
use crate::partition::{Ds, PartitionRange};
use crate::sql::Session;

/// The source partitions a part's queries with times in `[lo, hi]` read.
pub fn needed_days(p: &PartPlan, lo: i64, hi: i64) -> (Ds, Ds) {
    let last = Ds::of_millis(hi - 1).shift(1);
    let first = match p.kind {
        PartKind::Events => match p.reach_ms {
            Some(r) => Ds::of_millis(lo - r).shift(-1),
            None => Ds(i32::MIN / 2),
        },
        _ => Ds::of_millis(lo).shift(-2),
    };
    (first, last)
}

/// The types of a part's inputs in its sources' schemas, which must agree between sources.
/// `check` validates each source's schema first (a join checks its keys against the left).
pub fn part_input_types(
    engine: &Session,
    p: &PartPlan,
    check: &dyn Fn(&SourcePlan, &SchemaRef) -> Result<()>,
) -> Result<Vec<DataType>> {
    let mut types: Option<Vec<DataType>> = None;
    for s in &p.sources {
        let schema = engine.scan_schema(&s.scan)?;
        check(s, &schema)?;
        let t = inputs::input_types(&schema, &p.inputs, &s.scan.table)?;
        if let Some(prev) = &types {
            if let Some((i, (a, b))) = prev.iter().zip(&t).enumerate().find(|(_, (a, b))| a != b) {
                return Err(Error::data(
                    &s.scan.table,
                    None,
                    format!(
                        "column `{}` has type {b} here but {a} in the part's first source",
                        p.inputs[i]
                    ),
                )
                .with_fix("cast it in the source query's selects so every source agrees"));
            }
        }
        types.get_or_insert(t);
    }
    Ok(types.unwrap_or_default())
}

/// The dataflow's description of a part, given its input types.
pub fn part_spec(p: &PartPlan, types: &[DataType]) -> PartSpec {
    let shape = |t: &DataType| match t {
        DataType::List(_) | DataType::LargeList(_) => InputShape::List,
        DataType::Map(..) => InputShape::Map,
        _ => InputShape::Scalar,
    };
    PartSpec {
        kind: p.kind,
        columns: p
            .columns
            .iter()
            .map(|c| ColumnSpec {
                agg: Aggregator::new(c.spec.clone(), shape(&types[c.input]), c.bucket.is_some()),
                input: c.input,
                bucket: c.bucket,
                window: c.window_ms,
                hop: c.hop,
            })
            .collect(),
    }
}

/// The partitions of a source to read for `[from, to]`, clipped to the query's bounds and to
/// the data that exists. A hole inside the needed range is an error.
pub fn source_range(
    scan: &crate::sql::scan::Scan,
    current: &[(Ds, u64)],
    from: Ds,
    to: Ds,
) -> Result<Option<PartitionRange>> {
    let avail: Vec<Ds> = current.iter().map(|(d, _)| *d).collect();
    let (Some(&first), Some(&last)) = (avail.first(), avail.last()) else {
        return Ok(None);
    };
    let mut from = from.max(first);
    let mut to = to.min(last);
    if let Some(s) = scan.query.start_partition.as_deref() {
        from = from.max(Ds::parse(s)?);
    }
    if let Some(e) = scan.query.end_partition.as_deref() {
        to = to.min(Ds::parse(e)?);
    }
    if from > to {
        return Ok(None);
    }
    let missing: Vec<String> = PartitionRange::new(from, to)
        .days()
        .filter(|d| avail.binary_search(d).is_err())
        .map(|d| d.to_string())
        .collect();
    if !missing.is_empty() {
        let shown: Vec<_> = missing.iter().take(5).cloned().collect();
        return Err(Error::data(
            &scan.table,
            Some(&format!("ds={}", shown.join(", ds="))),
            format!(
                "{} partition(s) needed by {} are missing{}",
                missing.len(),
                scan.purpose,
                if missing.len() > 5 {
                    " (first 5 shown)"
                } else {
                    ""
                }
            ),
        )
        .with_fix("land the missing partitions, or end the backfill earlier with --end-ds"));
    }
    Ok(Some(PartitionRange::new(from, to)))
}
