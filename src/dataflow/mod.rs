//! The differential dataflow that computes joins; the only module that touches timely and
//! differential-dataflow (pinned exactly in Cargo.toml; their APIs change often).
//!
//! Inputs are one collection of `((part, key), Item)` updates: GroupBy source events and left
//! rows asking for values; joins with bootstrap parts also feed left rows' bootstrap keys and
//! queries and the bootstrap rows into [`bootstrap::stage`], which passes on only the queries
//! that bootstrap does not cover. Time is a `u64` ingestion epoch, not event time: `ds` and `ts` are
//! data. A backfill feeds everything at epoch 0 and seals; the continuous materializer feeds
//! each new or re-landed partition as a later epoch of the same dataflow, and gets back only
//! the outputs that changed. Every dataflow of a process lives in one [`Runtime`] (one
//! `timely::execute`), installed and removed by id while it runs; a [`Topology`] makes that
//! runtime one process of a timely cluster, the same code path with more workers.

pub mod base;
pub mod bootstrap;
mod control;
pub mod group;
mod operator;
pub mod records;
mod running;
mod runtime;
pub mod shard;
pub mod spec;
pub mod store;
pub mod tiles;
mod topology;
mod worker;

use records::{BootInput, BootValues, GroupKey, Item, PartValues, RowId};
pub use runtime::{Dataflow, DataflowId, Runtime};
pub use topology::{Cluster, Identity, Topology};

/// A hash map with a fast, fixed-seed hasher (the same in every process and run) for the hot
/// paths; SipHash with a random seed costs ~4% of a backfill.
pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::FixedState>;

/// One input update: a record and its multiplicity change (+1 insert, −1 retract).
pub type Update = ((GroupKey, Item), isize);

/// One bootstrap-stage input update.
pub type BootUpdate = (BootInput, isize);

/// The output changes of one epoch.
#[derive(Debug, Default)]
pub struct EpochOutput {
    /// Computed values per `(row, part)` (upserts; no values = removed).
    pub parts: Vec<PartValues>,
    /// Bootstrap outcome per left row that changed: `None` = the row no longer matches any
    /// bootstrap row (or is gone).
    pub boot: Vec<(RowId, Option<BootValues>)>,
    /// What the epoch's [`shard::ReadTask`]s read (their counts; failed reads make the
    /// seal an error instead).
    pub reads: Vec<shard::ReadReport>,
}
