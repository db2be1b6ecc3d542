//! Join backfill: plans a join ([`plan`]), reads its left and GroupBy sources through the SQL
//! engine into dataflow updates ([`inputs`]), runs them through the join dataflow, and writes
//! the output partitions ([`output`]). [`backfill`] drives it step by step.

pub mod backfill;
pub mod bootstrap;
pub mod derive;
pub mod feed;
pub mod inputs;
pub mod output;
pub mod plan;
pub mod semantic_hash;

pub use backfill::{backfill_join, explain, Explain, JoinOptions, JoinReport, JoinRunner};
