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
//! have a row on which day, [`output`] writes the table; the engine's GroupBy pipeline
//! (`crate::engine::GroupByRunner`) drives the steps and keeps the table up to date.

pub mod keys;
pub mod output;
pub mod plan;

pub use plan::GroupByPlan;
