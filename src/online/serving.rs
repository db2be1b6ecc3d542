//! How a GroupBy is served (chronon-semantics §6.2–§6.4): its plan as a join part of an event
//! left (the point-in-time rules a served value must agree with), the store datasets and key
//! encoding, and the batch value format an upload writes.
//!
//! - **Snapshot** GroupBys (SNAPSHOT accuracy, entity GroupBys without mutations) serve the
//!   values as of the end of the last uploaded day, exactly the GroupBy backfill row of that day
//!   (GroupBy derivations already applied).
//! - **Raw** GroupBys (no aggregations) serve the key's rows of the last uploaded snapshot.
//! - **Temporal** event GroupBys serve partial aggregates: per windowed column the hop-slot
//!   IRs of the tail before the batch end, per unbounded column one IR of all history; streamed
//!   events after the batch end complete the window at fetch time. A query at `q` sees
//!   `floor(q − W, hop) ≤ ts < q`, as offline.

use crate::aggregate::codec;
use crate::aggregate::{Ir, Value};
use crate::config::{Accuracy, GroupBy, Source};
use crate::dataflow::spec::PartKind;
use crate::error::{Error, Result};
use crate::groupby::plan::{as_join, own_paths};
use crate::join::plan::{plan_part, PartPlan};

/// The key under which an upload records what it wrote (its day, batch end and kind) in
/// the batch dataset: a GroupBy without it was never uploaded, which a fetch reports as an
/// exception rather than as missing values (chronon-semantics §6.6, §10.2 SchemaEvolutionTest).
pub const SERVING_INFO_KEY: &[u8] = b"\0weft_serving_info";

/// How a GroupBy's values are served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServingKind {
    Snapshot,
    Raw,
    Temporal,
}

/// A GroupBy planned for serving.
#[derive(Debug, Clone)]
pub struct GroupByServing {
    pub group_by: GroupBy,
    /// The GroupBy as the part of an event left (TEMPORAL/SNAPSHOT rules of §3.4).
    pub part: PartPlan,
    pub kind: ServingKind,
}

/// Store dataset of a GroupBy's uploaded values.
pub fn batch_dataset(gb: &GroupBy) -> String {
    format!(
        "{}_BATCH",
        crate::config::naming::clean_name(&gb.meta_data).to_uppercase()
    )
}

/// Store dataset of a GroupBy's streamed events.
pub fn streaming_dataset(gb: &GroupBy) -> String {
    format!(
        "{}_STREAMING",
        crate::config::naming::clean_name(&gb.meta_data).to_uppercase()
    )
}

impl GroupByServing {
    pub fn new(gb: &GroupBy) -> Result<GroupByServing> {
        if gb.sources.is_empty() {
            return Err(Error::Config {
                file: gb.meta_data.name.clone(),
                path: "sources".into(),
                message: "a GroupBy needs at least one source".into(),
            });
        }
        // served values follow the rules of an event left: a query at any time
        let join = as_join(gb);
        let part = plan_part(&join, 0, true).map_err(|e| own_paths(e, &gb.meta_data.name))?;
        let has_mutations = gb
            .sources
            .iter()
            .any(|s| matches!(s, Source::Entities(e) if e.mutation_table.is_some()));
        let kind = match part.kind {
            PartKind::Raw => ServingKind::Raw,
            PartKind::Events if gb.inferred_accuracy() == Accuracy::Temporal => ServingKind::Temporal,
            PartKind::Mutations | PartKind::Snapshot if has_mutations
                && gb.inferred_accuracy() == Accuracy::Temporal =>
            {
                return Err(Error::Unsupported {
                    what: format!("serving TEMPORAL entity GroupBy {} with a mutation table", gb.meta_data.name),
                    detail: "mutations are not streamed yet; set accuracy SNAPSHOT to serve the daily snapshot".into(),
                })
            }
            _ => ServingKind::Snapshot,
        };
        Ok(GroupByServing {
            group_by: gb.clone(),
            part,
            kind,
        })
    }
}

/// One column's uploaded partial aggregates.
#[derive(Debug, Clone)]
pub enum ColumnTiles {
    /// Unbounded window: everything before the batch end.
    Collapsed(Option<Ir>),
    /// Windowed: `(slot start, IR)` of the hop slots in `[floor(end − W, hop), end)`.
    Slots(Vec<(i64, Ir)>),
}

/// What an upload stores per key.
#[derive(Debug, Clone)]
pub enum BatchValue {
    /// Output values (GroupBy derivations applied).
    Finalized(Vec<Value>),
    /// The key's rows (GroupBys without aggregations).
    Rows(Vec<Vec<Value>>),
    /// Per output column, the partial aggregates before `batch_end`.
    Tiles {
        batch_end: i64,
        columns: Vec<ColumnTiles>,
    },
}

const FINALIZED: u8 = 1;
const ROWS: u8 = 2;
const TILES: u8 = 3;

fn put_u32(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&(n as u32).to_le_bytes());
}

fn take<'a>(bytes: &mut &'a [u8], n: usize) -> std::result::Result<&'a [u8], String> {
    if bytes.len() < n {
        return Err("truncated serving value".into());
    }
    let (a, b) = bytes.split_at(n);
    *bytes = b;
    Ok(a)
}

fn get_u32(bytes: &mut &[u8]) -> std::result::Result<usize, String> {
    Ok(u32::from_le_bytes(take(bytes, 4)?.try_into().expect("4 bytes")) as usize)
}

fn get_i64(bytes: &mut &[u8]) -> std::result::Result<i64, String> {
    Ok(i64::from_le_bytes(
        take(bytes, 8)?.try_into().expect("8 bytes"),
    ))
}

fn put_values(out: &mut Vec<u8>, values: &[Value]) {
    let mut buf = Vec::new();
    codec::encode(values, &mut buf);
    put_u32(out, buf.len());
    out.extend_from_slice(&buf);
}

fn get_values(bytes: &mut &[u8]) -> std::result::Result<Vec<Value>, String> {
    let n = get_u32(bytes)?;
    let mut b = take(bytes, n)?;
    let mut out = Vec::new();
    while !b.is_empty() {
        out.push(codec::try_decode_value(&mut b)?);
    }
    Ok(out)
}

fn put_ir(out: &mut Vec<u8>, ir: &Ir) {
    let mut buf = Vec::new();
    ir.encode(&mut buf);
    put_u32(out, buf.len());
    out.extend_from_slice(&buf);
}

fn get_ir(bytes: &mut &[u8]) -> std::result::Result<Ir, String> {
    let n = get_u32(bytes)?;
    Ir::decode(take(bytes, n)?)
}

impl BatchValue {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            BatchValue::Finalized(v) => {
                out.push(FINALIZED);
                put_values(&mut out, v);
            }
            BatchValue::Rows(rows) => {
                out.push(ROWS);
                put_u32(&mut out, rows.len());
                for r in rows {
                    put_values(&mut out, r);
                }
            }
            BatchValue::Tiles { batch_end, columns } => {
                out.push(TILES);
                out.extend_from_slice(&batch_end.to_le_bytes());
                put_u32(&mut out, columns.len());
                for c in columns {
                    match c {
                        ColumnTiles::Collapsed(ir) => {
                            out.push(0);
                            match ir {
                                Some(ir) => {
                                    out.push(1);
                                    put_ir(&mut out, ir);
                                }
                                None => out.push(0),
                            }
                        }
                        ColumnTiles::Slots(slots) => {
                            out.push(1);
                            put_u32(&mut out, slots.len());
                            for (s, ir) in slots {
                                out.extend_from_slice(&s.to_le_bytes());
                                put_ir(&mut out, ir);
                            }
                        }
                    }
                }
            }
        }
        out
    }

    pub fn decode(mut bytes: &[u8]) -> std::result::Result<BatchValue, String> {
        let b = &mut bytes;
        let tag = take(b, 1)?[0];
        Ok(match tag {
            FINALIZED => BatchValue::Finalized(get_values(b)?),
            ROWS => {
                let n = get_u32(b)?;
                let mut rows = Vec::with_capacity(n.min(1 << 16));
                for _ in 0..n {
                    rows.push(get_values(b)?);
                }
                BatchValue::Rows(rows)
            }
            TILES => {
                let batch_end = get_i64(b)?;
                let n = get_u32(b)?;
                let mut columns = Vec::with_capacity(n.min(1 << 12));
                for _ in 0..n {
                    columns.push(match take(b, 1)?[0] {
                        0 => ColumnTiles::Collapsed(match take(b, 1)?[0] {
                            1 => Some(get_ir(b)?),
                            _ => None,
                        }),
                        _ => {
                            let k = get_u32(b)?;
                            let mut slots = Vec::with_capacity(k.min(1 << 16));
                            for _ in 0..k {
                                let s = get_i64(b)?;
                                slots.push((s, get_ir(b)?));
                            }
                            ColumnTiles::Slots(slots)
                        }
                    });
                }
                BatchValue::Tiles { batch_end, columns }
            }
            other => return Err(format!("unknown serving value tag {other}")),
        })
    }
}

/// A streamed event: its time and the part's input values.
pub fn encode_events(events: &[(i64, Vec<Value>)]) -> Vec<u8> {
    let mut out = Vec::new();
    put_u32(&mut out, events.len());
    for (ts, v) in events {
        out.extend_from_slice(&ts.to_le_bytes());
        put_values(&mut out, v);
    }
    out
}

/// Decodes [`encode_events`].
pub fn decode_events(mut bytes: &[u8]) -> std::result::Result<Vec<(i64, Vec<Value>)>, String> {
    let b = &mut bytes;
    let n = get_u32(b)?;
    let mut out = Vec::with_capacity(n.min(1 << 16));
    for _ in 0..n {
        let ts = get_i64(b)?;
        out.push((ts, get_values(b)?));
    }
    Ok(out)
}
