//! GroupBy backfill (chronon-semantics §2.8): `weft backfill --conf production/group_bys/…`
//! writes `<outputNamespace>.<cleanName>` with, per day `D`, one row `(keys…, values…)` per
//! key holding the GroupBy's values as of the end of `D`.
//!
//! There is no second aggregation here: the GroupBy is planned as the one part of an
//! entity-left join ([`plan`]) and computed by the same differential dataflow and windows
//! operator as joins, with one query per key and day — the query an entity-left row of day
//! `D` makes (`q = (D+1) 00:00`, snapshot `D`). So events count when
//! `window start ≤ ts < (D+1) 00:00`, entity GroupBys aggregate snapshot `D`, and
//! GroupBys without aggregations return the snapshot's rows. [`keys`] decides which keys
//! have a row on which day, `run` drives the steps, [`output`] writes the table.

pub mod keys;
pub mod output;
pub mod plan;
mod run;

pub use run::GroupByRunner;

use crate::config::GroupBy;
use crate::engine::Context;
use crate::error::Result;
use crate::join::backfill::Progress;
use crate::join::inputs::EventStats;
use crate::partition::{Ds, PartitionRange};

pub use plan::GroupByPlan;

/// Options of a GroupBy backfill.
#[derive(Debug, Clone)]
pub struct GroupByOptions {
    /// First partition, overriding `backfillStartDate`.
    pub start: Option<Ds>,
    /// Last partition.
    pub end: Ds,
    /// Partitions computed (and written) per step.
    pub step_days: usize,
}

/// What a GroupBy backfill did.
#[derive(Debug, Default)]
pub struct GroupByReport {
    pub output: String,
    pub range: Option<PartitionRange>,
    pub written: Vec<Ds>,
    /// Days written before whose inputs changed, rewritten (or dropped: no source has the
    /// day any more).
    pub rewritten: Vec<Ds>,
    /// Days with source data in the range that were not computed: already present, or
    /// before the first existing partition (Chronon's first-hole rule).
    pub skipped_existing: usize,
    /// Rows written.
    pub rows: u64,
    /// Event GroupBy rows dropped because every value was NULL.
    pub dropped_all_null: u64,
    /// Source rows read, and those skipped (a NULL key, a NULL `ts`).
    pub source: EventStats,
}

/// Backfills the missing partitions of a GroupBy's backfill table in
/// `[backfillStartDate (or opts.start), opts.end]` (only `opts.end` when
/// `metaData.historicalBackfill` is false).
pub fn backfill_group_by(
    cx: &Context,
    gb: &GroupBy,
    opts: &GroupByOptions,
    progress: Progress,
) -> Result<GroupByReport> {
    GroupByRunner::new(gb)?.run(cx, opts, progress)
}
