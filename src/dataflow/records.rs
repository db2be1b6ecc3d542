//! The narrow records that flow through the dataflow: encoded join keys, numeric values,
//! left-row queries and GroupBy events. Wide left rows never enter the dataflow; they stay in
//! Arrow and are re-joined by row id when output partitions are written.

use serde::{Deserialize, Serialize};

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

/// A value inside the dataflow: NULL, a 64-bit integer, or a double kept as its bits (so
/// that values are totally ordered and hashable).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Num {
    Null,
    Long(i64),
    Double(u64),
}

impl Num {
    pub fn double(v: f64) -> Num {
        Num::Double(v.to_bits())
    }
    pub fn as_f64(self) -> Option<f64> {
        match self {
            Num::Null => None,
            Num::Long(v) => Some(v as f64),
            Num::Double(b) => Some(f64::from_bits(b)),
        }
    }
}

/// What a (part, key) group holds: GroupBy source events and the left rows asking for values.
/// Events sort before queries, and events by time.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Item {
    /// An event at `ts` with one input value per aggregation of the part.
    Event { ts: i64, inputs: Vec<Num> },
    /// A left row `row` asking for the part's values as of query time `q`.
    Query { row: RowId, q: i64 },
}

/// The group an item belongs to: join part index and encoded key.
pub type GroupKey = (u16, Key);

/// One computed output: a left row's values for one join part, in output-column order.
pub type PartValues = (RowId, u16, Vec<Num>);
