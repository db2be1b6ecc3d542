//! `explain`: what bootstrap will do for a join, and where the values of its written output
//! came from. The plan half feeds the left partitions of the range and the bootstrap tables
//! through the join's own dataflow (no GroupBy source is read) and counts, per join part,
//! the rows bootstrap covers (by which combination of bootstrap parts), the rows that will be
//! computed, and the columns bootstrap fills for only some rows. The written half sums the
//! provenance stored in the footers of the output partitions of the range.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::{boot_feed, run_range, start_live, sync_left, InputId, JoinOptions, JoinReport};
use crate::config::Join;
use crate::dataflow::records::Item;
use crate::error::Result;
use crate::join::bootstrap::assemble::{Provenance, PROVENANCE_KEY};
use crate::join::inputs;
use crate::join::plan::JoinPlan;
use crate::partition::Ds;

/// A bootstrap part as explained.
#[derive(Debug, Clone, Serialize)]
pub struct ExplainBootstrap {
    /// 1-based priority.
    pub priority: usize,
    pub table: String,
    pub log: bool,
    pub keys: Vec<String>,
    /// Partitions of the table matched against the range.
    pub partitions: usize,
    /// Join fields the part can supply.
    pub fields: Vec<String>,
}

/// What bootstrap does for one join part.
#[derive(Debug, Clone, Serialize)]
pub struct ExplainPart {
    pub part: String,
    pub group_by: String,
    /// Rows bootstrap covers: the GroupBy is not computed for them.
    pub covered: u64,
    /// Covered rows by the bootstrap parts (1-based priorities) they matched.
    pub covered_by: Vec<(Vec<usize>, u64)>,
    /// Rows the GroupBy will be computed for.
    pub computed: u64,
    /// Rows with a NULL join key (NULL features unless bootstrapped).
    pub null_keys: u64,
    /// Value columns bootstrap supplies for some but not all rows: `(column, rows)`.
    pub partial_columns: Vec<(String, u64)>,
}

/// The whole explanation.
#[derive(Debug, Clone, Serialize)]
pub struct Explain {
    pub join: String,
    pub output: String,
    pub range: String,
    pub left_partitions: usize,
    pub left_rows: u64,
    pub bootstrap: Vec<ExplainBootstrap>,
    pub parts: Vec<ExplainPart>,
    /// Output partitions of the range already written, and their summed provenance.
    pub written_partitions: usize,
    /// Written partitions without provenance (written before bootstrap was configured).
    pub written_without_provenance: usize,
    pub written: Option<Provenance>,
}

/// Explains a join over the left partitions of `opts`' range.
pub fn explain(cx: &crate::engine::Context, join: &Join, opts: &JoinOptions) -> Result<Explain> {
    let engine = cx.session();
    let plan = JoinPlan::new(join)?;
    let wh = engine.warehouse();
    let left_t = plan.left.scan.table_name()?;
    let left_fps = wh.partition_fingerprints(&left_t, &plan.left.scan.partition_column())?;
    let left_parts: Vec<Ds> = left_fps.iter().map(|(d, _)| *d).collect();
    if left_parts.is_empty() {
        return Err(wh.missing_table(&left_t, &plan.left.scan.purpose));
    }
    let range = run_range(join, &plan, &left_parts, opts)?;
    let days: BTreeSet<Ds> = left_parts
        .iter()
        .copied()
        .filter(|d| range.contains(*d))
        .collect();
    let mut live = start_live(engine, cx.runtime()?, &plan, None)?;
    let mut report = JoinReport {
        null_key_rows: plan
            .parts
            .iter()
            .map(|p| (p.full_prefix.clone(), 0))
            .collect(),
        ..Default::default()
    };
    sync_left(
        engine,
        &plan,
        &mut live,
        &left_fps,
        &|d| days.contains(&d),
        &mut report,
    )?;
    boot_feed::sync_boot(engine, &plan, &mut live, &|d| days.contains(&d))?;
    let out = live.dataflow.seal_all()?;
    boot_feed::apply(&mut live, out.boot);

    let boot = &live.boot;
    let fields = &boot.bs.fields;
    let bootstrap = boot
        .bs
        .tables
        .iter()
        .map(|t| ExplainBootstrap {
            priority: t.plan.index as usize + 1,
            table: t.plan.table.clone(),
            log: t.log,
            keys: t.plan.keys.clone(),
            partitions: live
                .feeds
                .days(InputId::Bootstrap { part: t.plan.index })
                .len(),
            fields: t
                .columns
                .iter()
                .map(|(_, f)| fields.list[*f as usize].name.clone())
                .collect(),
        })
        .collect();
    let mut parts: Vec<ExplainPart> = plan
        .parts
        .iter()
        .map(|p| ExplainPart {
            part: p.full_prefix.clone(),
            group_by: p.group_by.meta_data.name.clone(),
            covered: 0,
            covered_by: Vec::new(),
            computed: 0,
            null_keys: 0,
            partial_columns: Vec::new(),
        })
        .collect();
    let mut combos: Vec<BTreeMap<Vec<usize>, u64>> = vec![BTreeMap::new(); plan.parts.len()];
    let mut provided: Vec<BTreeMap<u16, u64>> = vec![BTreeMap::new(); plan.parts.len()];
    for &ds in &days {
        let Some(batch) = live.feeds.batches(InputId::Left, ds).first() else {
            continue;
        };
        let state = boot.state.get(&ds);
        for p in &plan.parts {
            let pi = p.index as usize;
            let (queries, _) =
                inputs::left_queries(batch, ds, p, plan.left.events, &plan.left.scan.table)?;
            let mut queried = vec![false; batch.num_rows()];
            for ((_, item), _) in &queries {
                if let Item::Query { row, .. } = item {
                    queried[crate::dataflow::records::row_index(*row) as usize] = true;
                }
            }
            for (i, q) in queried.iter().enumerate() {
                let b = state.and_then(|s| s.get(&(i as u32)));
                if let Some(b) = b {
                    for f in &fields.part_values[pi] {
                        if b.provided.binary_search(f).is_ok() {
                            *provided[pi].entry(*f).or_default() += 1;
                        }
                    }
                }
                match b.filter(|b| b.covered.contains(&p.index)) {
                    Some(b) => {
                        parts[pi].covered += 1;
                        let by = b.matched.iter().map(|m| m.0 as usize + 1).collect();
                        *combos[pi].entry(by).or_default() += 1;
                    }
                    None if *q => parts[pi].computed += 1,
                    None => parts[pi].null_keys += 1,
                }
            }
        }
    }
    let rows = report.left_rows;
    for (pi, p) in parts.iter_mut().enumerate() {
        p.covered_by = std::mem::take(&mut combos[pi]).into_iter().collect();
        p.partial_columns = provided[pi]
            .iter()
            .filter(|(_, n)| **n > 0 && **n < rows)
            .map(|(f, n)| (fields.list[*f as usize].name.clone(), *n))
            .collect();
    }

    // what the written partitions hold
    let mut written = None::<Provenance>;
    let mut written_partitions = 0;
    let mut without = 0;
    for ds in wh.partitions(&plan.output)? {
        if !days.contains(&ds) {
            continue;
        }
        written_partitions += 1;
        match wh.partition_metadata(&plan.output, ds)?.get(PROVENANCE_KEY) {
            Some(text) => {
                let p: Provenance = serde_json::from_str(text).map_err(|e| {
                    crate::error::Error::data(
                        &plan.output.to_string(),
                        Some(&format!("ds={ds}")),
                        format!("unreadable provenance in the partition footer: {e}"),
                    )
                })?;
                written.get_or_insert_with(Default::default).add(&p);
            }
            None => without += 1,
        }
    }
    Ok(Explain {
        join: plan.name.clone(),
        output: plan.output.to_string(),
        range: range.to_string(),
        left_partitions: days.len(),
        left_rows: rows,
        bootstrap,
        parts,
        written_partitions,
        written_without_provenance: without,
        written,
    })
}
