//! Join backfill: plans a join ([`plan`]), reads its left and GroupBy sources through the SQL
//! engine into dataflow updates ([`inputs`]), runs them through the join dataflow, and writes
//! the output partitions ([`output`]). [`backfill`] drives it step by step.

pub mod backfill;
mod boot_feed;
pub mod bootstrap;
pub mod derive;
mod explain;
pub mod feed;
pub mod inputs;
mod label_feed;
pub mod output;
pub mod plan;
mod reuse;
pub mod semantic_hash;

pub use backfill::{backfill_join, JoinOptions, JoinReport, JoinRunner};
pub use explain::{explain, Explain, ExplainBootstrap, ExplainPart};
