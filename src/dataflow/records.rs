//! The narrow records that flow through the dataflow: encoded join keys, GroupBy source rows
//! and left-row queries. Wide left rows never enter the dataflow; they stay in Arrow and are
//! re-joined by row id when output partitions are written.

use serde::{Deserialize, Serialize};

pub use crate::aggregate::Value;

/// A join key: the canonical byte encoding of the key column values (type-tagged, so values
/// of different types never match).
pub type Key = Vec<u8>;

/// A left row's identity: `(ds days since epoch) << 32 | row index within the partition`.
pub type RowId = u64;

/// Packs a row id.
pub fn row_id(ds: crate::partition::Ds, index: u32) -> RowId {
    ((ds.0 as u32 as u64) << 32) | index as u64
}

/// The partition a row id belongs to.
pub fn row_ds(row: RowId) -> crate::partition::Ds {
    crate::partition::Ds((row >> 32) as u32 as i32)
}

/// The row's index within its partition.
pub fn row_index(row: RowId) -> u32 {
    row as u32
}

/// A mutation row's extra fields (TEMPORAL entity GroupBys).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Mutation {
    /// When the mutation happened (`mutation_ts`).
    pub mts: i64,
    /// `is_before`: the row is the value before an update or delete, so it is removed.
    pub before: bool,
}

/// What a (part, key) group holds: GroupBy source rows and the left rows asking for values.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Item {
    /// A GroupBy source row of partition `ds` at time `ts`, with one value per input column
    /// of the part (aggregation inputs, then bucket columns). Event rows ignore `ds`; entity
    /// snapshot rows are only seen by queries reading their partition.
    Row {
        ds: i32,
        ts: i64,
        mutation: Option<Mutation>,
        inputs: Vec<Value>,
    },
    /// A left row `row` asking for the part's values as of time `q` (exclusive); entity parts
    /// read snapshot partition `ds` (and, for TEMPORAL ones, the mutations of `ds + 1`).
    Query { row: RowId, q: i64, ds: i32 },
}

/// The group an item belongs to: join part index and encoded key.
pub type GroupKey = (u16, Key);

/// One computed output: a left row's values for one join part, in output-column order. A
/// no-aggregation part can give a row several (one per matching entity row), and none means
/// the row no longer exists. Outputs are upserts keyed by `(row, part)`.
pub type PartValues = (RowId, u16, Vec<Vec<Value>>);
