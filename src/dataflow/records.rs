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
    /// The group's stored aggregates of its events before a day boundary
    /// ([`crate::dataflow::base`], encoded): event parts with unbounded windows fed only
    /// the events from that boundary on.
    Base { state: Vec<u8> },
}

/// The group an item belongs to: join part index and encoded key.
pub type GroupKey = (u16, Key);

/// One row of output values, in output-column order, encoded by [`crate::aggregate::codec`]
/// (a quarter of the size of a `Vec<Value>`, and one allocation).
pub type Encoded = Box<[u8]>;

/// Encodes one row of output values.
pub fn encode_row(values: &[Value]) -> Encoded {
    let mut buf = Vec::with_capacity(values.len() * 9);
    crate::aggregate::codec::encode(values, &mut buf);
    buf.into_boxed_slice()
}

/// One computed output: a left row's values for one join part, encoded rows in output-column
/// order. A no-aggregation part can give a row several (one per matching entity row), and
/// none means the row no longer exists. Outputs are upserts keyed by `(row, part)`.
pub type PartValues = (RowId, u16, Vec<Encoded>);

/// The key a left row and a bootstrap row match on: bootstrap part index and the encoded
/// `(key columns…, ds)` of that part.
pub type BootKey = (u16, Key);

/// A bootstrap table row, reduced to what coverage needs: its position in the partition the
/// runner read (its values stay there, in Arrow, and are gathered when output is written) and
/// the fields it provides (indices into the join's field universe, sorted; a provided field
/// may be NULL, which still counts as provided). Ordered by a digest of the row's values
/// first, so of several rows with one key the same one is kept whatever order they are read in.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct BootRow {
    pub digest: u64,
    pub row: u32,
    pub provided: Vec<u16>,
}

/// What a left row asks for: one query per join part with a non-NULL key (the part's group
/// key, the query time and the partition read), sent on only for parts bootstrap does not
/// cover.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RowAsk {
    pub queries: Vec<(GroupKey, i64, i32)>,
}

/// The bootstrap outcome for a left row that matched at least one bootstrap row: the join
/// parts it covers, the bootstrap rows it matched (part, row in the part's partition, digest
/// of the row's values — so a re-landed row with other values is a change) in priority order,
/// and the fields they provide.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct BootValues {
    pub covered: Vec<u16>,
    pub matched: Vec<(u16, u32, u64)>,
    pub provided: Vec<u16>,
}

/// An input of the bootstrap stage.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum BootInput {
    /// Left row `row` has key `key` for a bootstrap part.
    Key { key: BootKey, row: RowId },
    /// A bootstrap table row.
    Row { key: BootKey, row: BootRow },
    /// Left row `row` and its queries.
    Ask { row: RowId, ask: RowAsk },
}
