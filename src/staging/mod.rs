//! Staging queries (chronon-semantics §8): templated SQL run over the warehouse for the output
//! partitions that are missing, in steps of `--step-days`, written to `<ns>.<cleanName>`.

pub(crate) mod macros;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch, StringArray};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{DataType, Field, Schema};

use crate::config::{naming, StagingQuery};
use crate::error::{Error, Result};
use crate::partition::{Ds, PartitionRange};
use crate::schedule::{Progress, Schedule};
use crate::sql::{Session, VIEW_FILE};
use crate::warehouse::TableName;
use macros::MacroValues;

/// Options of one staging-query backfill.
#[derive(Debug, Clone)]
pub struct StagingOptions {
    pub end_ds: Ds,
    pub start_override: Option<Ds>,
    pub step_days: usize,
    /// Also compute missing partitions before the first existing output partition (Chronon
    /// skips that "first hole", assuming retention removed it).
    pub run_first_hole: bool,
}

impl StagingOptions {
    /// Missing partitions from the config's start up to `end_ds`, in 30-day steps.
    pub fn through(end_ds: Ds) -> Self {
        StagingOptions {
            end_ds,
            start_override: None,
            step_days: 30,
            run_first_hole: false,
        }
    }
}

/// What a run did.
#[derive(Debug, Default)]
pub struct StagingReport {
    pub output: String,
    pub written: Vec<Ds>,
    pub skipped_existing: usize,
    pub rows: u64,
}

/// Runs a staging query for its missing partitions up to `opts.end_ds`.
pub fn run(
    engine: &Session,
    sq: &StagingQuery,
    opts: &StagingOptions,
    progress: Progress,
) -> Result<StagingReport> {
    let out_name = naming::output_table(&sq.meta_data)?;
    let out = TableName::parse(&out_name)?;
    let wh = engine.warehouse().clone();
    let mut report = StagingReport {
        output: out_name.clone(),
        ..Default::default()
    };
    engine.run_setups(&sq.setups)?;
    let conf_name = sq.meta_data.name.clone();
    let values = |range: Option<PartitionRange>| MacroValues {
        start_date: range.map(|r| r.start),
        end_date: range.map(|r| r.end),
        latest_date: opts.end_ds,
        warehouse: &wh,
        conf_name: &conf_name,
    };

    if sq.create_view == Some(true) {
        let sql = macros::render(&sq.query, &values(None))?;
        // Plan it once so a broken view fails now, not at first read.
        engine.query(
            &format!("EXPLAIN {sql}"),
            &format!("staging query {conf_name} (view)"),
        )?;
        let dir = wh.table_dir(&out);
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        std::fs::write(dir.join(VIEW_FILE), &sql)
            .map_err(|e| Error::io("writing the view definition", e))?;
        wh.set_properties(
            &out,
            &sq.meta_data.chronon_table_properties("staging_query"),
        )?;
        write_signal(engine, &out, opts.end_ds)?;
        engine.refresh()?;
        progress(1, 1, &format!("view {out_name} created"));
        return Ok(report);
    }

    let Some(start) = sq.start_partition.as_deref() else {
        // Unpartitioned path: one run over everything, dynamic partition overwrite on ds.
        let sql = macros::render(&sq.query, &values(None))?;
        write_result(engine, sq, &out, &sql, None, &mut report)?;
        engine.refresh()?;
        return Ok(report);
    };

    let start = match (opts.start_override, sq.meta_data.historical_backfill) {
        (Some(s), _) => s,
        (None, Some(false)) => opts.end_ds,
        (None, _) => Ds::parse(start).map_err(|e| Error::Config {
            file: conf_name.clone(),
            path: "startPartition".into(),
            message: e.to_string(),
        })?,
    };
    let range = PartitionRange::new(start, opts.end_ds);
    let existing = wh.partitions(&out)?;
    let schedule = Schedule::plan(
        range.days(),
        &existing,
        &BTreeSet::new(),
        opts.run_first_hole,
        opts.step_days,
        &out_name,
    )?;
    report.skipped_existing = schedule.skipped_existing;
    let mut errors = Vec::new();
    let holes = PartitionRange::contiguous(&schedule.todo);
    let mut failed: Option<PartitionRange> = None;
    let total = schedule.steps.len();
    let mut done = 0;
    // the messages name only the steps attempted (after a failure, its range stops)
    schedule.run(&out_name, &|_, _, _| {}, |step, _| {
        done += 1;
        if failed.is_some_and(|h| h.contains(step.start)) {
            return Ok(());
        }
        progress(done - 1, total, &format!("{out_name}: computing {step}"));
        let r = macros::render(&sq.query, &values(Some(step)))
            .and_then(|sql| write_result(engine, sq, &out, &sql, Some(step), &mut report))
            .map_err(|e| Error::Sql {
                context: format!("{out_name}, range {step}"),
                message: e.to_string(),
                fix: None,
            });
        engine.refresh()?;
        if let Err(e) = r {
            // As Chronon: a failed step ends its unfilled range (later steps would leave a
            // gap behind them); the other ranges still run and the errors are reported together.
            errors.push(e);
            failed = holes.iter().copied().find(|h| h.contains(step.start));
        }
        Ok(())
    })?;
    Error::collect(errors)?;
    Ok(report)
}

/// Runs the rendered SQL and writes one partition per `ds` value in the result.
fn write_result(
    engine: &Session,
    sq: &StagingQuery,
    out: &TableName,
    sql: &str,
    step: Option<PartitionRange>,
    report: &mut StagingReport,
) -> Result<()> {
    let ctx = format!("staging query {}", sq.meta_data.name);
    let (schema, batches) = engine.query_with_schema(sql, &ctx)?;
    let ds_idx = schema.index_of("ds").map_err(|_| Error::Sql {
        context: ctx.clone(),
        message: "the query's result has no `ds` column".into(),
        fix: Some(
            "select the partition column as `ds` (staging query outputs are partitioned by ds)"
                .into(),
        ),
    })?;
    let data_fields: Vec<Field> = schema
        .fields()
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != ds_idx)
        .map(|(_, f)| f.as_ref().clone().with_nullable(true))
        .collect();
    let data_schema = Arc::new(Schema::new(data_fields));
    // ds values of every row, as strings
    let mut by_ds: BTreeMap<Ds, Vec<RecordBatch>> = BTreeMap::new();
    for b in &batches {
        let ds_col = arrow::compute::cast(b.column(ds_idx), &DataType::Utf8)
            .map_err(|e| Error::arrow(&ctx, e))?;
        let ds_col: &StringArray = ds_col.as_string::<i32>();
        let mut distinct: Vec<&str> = (0..ds_col.len())
            .filter(|&i| !ds_col.is_null(i))
            .map(|i| ds_col.value(i))
            .collect();
        let nulls = ds_col.null_count();
        if nulls > 0 {
            return Err(Error::Sql {
                context: ctx.clone(),
                message: format!("{nulls} result rows have a NULL ds"),
                fix: Some("filter them out or give them a partition".into()),
            });
        }
        distinct.sort();
        distinct.dedup();
        for d in distinct {
            let ds = Ds::parse(d).map_err(|_| Error::Sql {
                context: ctx.clone(),
                message: format!("result ds value `{d}` is not yyyy-MM-dd"),
                fix: None,
            })?;
            let mask = arrow::compute::kernels::cmp::eq(ds_col, &StringArray::new_scalar(d))
                .map_err(|e| Error::arrow(&ctx, e))?;
            let part = filter_record_batch(b, &mask).map_err(|e| Error::arrow(&ctx, e))?;
            let cols = part
                .columns()
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != ds_idx)
                .map(|(_, c)| c.clone())
                .collect();
            let rb = RecordBatch::try_new(data_schema.clone(), cols)
                .map_err(|e| Error::arrow(&ctx, e))?;
            by_ds.entry(ds).or_default().push(rb);
        }
    }
    let wh = engine.warehouse();
    for (ds, parts) in &by_ds {
        if let Some(s) = step {
            if !s.contains(*ds) {
                tracing::warn!(table = %out, %ds, step = %s, "staging query returned rows outside the step range; writing them (dynamic partition overwrite)");
            }
        }
        report.rows += parts.iter().map(|b| b.num_rows() as u64).sum::<u64>();
        wh.write_partition(
            out,
            &[("ds".into(), ds.to_string())],
            data_schema.clone(),
            parts,
        )?;
        report.written.push(*ds);
    }
    wh.set_properties(out, &sq.meta_data.chronon_table_properties("staging_query"))?;
    Ok(())
}

/// Chronon's signal row for views: `(created_at, table_name)` in `<ns>.chronon_signal_partitions`.
fn write_signal(engine: &Session, out: &TableName, end: Ds) -> Result<()> {
    let t = TableName {
        namespace: out.namespace.clone(),
        name: "chronon_signal_partitions".into(),
        sub_partition_filters: vec![],
    };
    let schema = Arc::new(Schema::new(vec![
        Field::new("created_at", DataType::Utf8, true),
        Field::new("table_name", DataType::Utf8, true),
    ]));
    let now = chrono::Utc::now().format("%Y-%m-%d %H:%M:%S").to_string();
    let rb = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from(vec![now])),
            Arc::new(StringArray::from(vec![out.to_string()])),
        ],
    )
    .map_err(|e| Error::arrow("signal row", e))?;
    engine
        .warehouse()
        .write_partition(&t, &[("ds".into(), end.to_string())], schema, &[rb])
}
