//! The bootstrap stage (chronon-semantics §4.5–§4.7) as differential operators: matches left
//! rows to bootstrap rows on `(key columns…, ds)` per bootstrap part, keeps one row per key,
//! gathers each left row's matches in priority order, and decides per join part whether the
//! row is covered. Queries of uncovered parts go on to the windows operator; the row's matches
//! go to the output (the values themselves never enter the dataflow: they are read from the
//! matched rows when output partitions are written).
//!
//! Everything here is incremental: a new bootstrap partition, a new bootstrap part or a
//! re-landed left partition changes only the rows it reaches, retracting queries of rows that
//! became covered and issuing queries for rows that lost coverage.

use std::sync::Arc;

use differential_dataflow::VecCollection;

use super::records::{BootInput, BootKey, BootRow, BootValues, GroupKey, Item, RowAsk, RowId};
use super::spec::BootstrapSpec;

/// One side of a left row's bootstrap group: its queries, or a match of bootstrap part `p`.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
enum Side {
    Ask(RowAsk),
    Match(u16, BootRow),
}

/// What the stage emits per left row.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
enum RowOut {
    Query(GroupKey, i64, i32),
    Values(BootValues),
}

/// Queries on to the windows operator.
type Queries<'scope> = VecCollection<'scope, u64, (GroupKey, Item), isize>;
/// Each left row's bootstrap outcome.
type Outcomes<'scope> = VecCollection<'scope, u64, (RowId, BootValues), isize>;

/// The stage: returns the queries to compute and the per-row bootstrap values.
pub fn stage<'scope>(
    inputs: VecCollection<'scope, u64, BootInput, isize>,
    spec: Arc<BootstrapSpec>,
) -> (Queries<'scope>, Outcomes<'scope>) {
    let keys = inputs.clone().flat_map(|b| match b {
        BootInput::Key { key, row } => Some((key, row)),
        _ => None,
    });
    let rows = inputs.clone().flat_map(|b| match b {
        BootInput::Row { key, row } => Some((key, row)),
        _ => None,
    });
    let asks = inputs.flat_map(|b| match b {
        BootInput::Ask { row, ask } => Some((row, Side::Ask(ask))),
        _ => None,
    });
    // Duplicate rows for one key: keep the one with the smallest digest of its values (Chronon
    // keeps an arbitrary one; a fixed choice keeps incremental and fresh runs identical).
    let chosen = rows.reduce_named("BootstrapDedup", |_k: &BootKey, input, output| {
        output.push((input[0].0.clone(), 1isize))
    });
    let matches = keys.join_map(chosen, |k: &BootKey, row: &RowId, b: &BootRow| {
        (*row, Side::Match(k.0, b.clone()))
    });
    let per_row = asks.concat(matches).reduce_named(
        "BootstrapCoverage",
        move |_row: &RowId, input: &[(&Side, isize)], output: &mut Vec<(RowOut, isize)>| {
            let mut ask = None;
            let mut matched: Vec<(u16, &BootRow)> = Vec::new();
            for (side, r) in input {
                if *r <= 0 {
                    continue;
                }
                match side {
                    Side::Ask(a) => ask = Some(a),
                    Side::Match(p, b) => matched.push((*p, b)),
                }
            }
            let Some(ask) = ask else { return };
            if matched.is_empty() {
                for (k, q, ds) in &ask.queries {
                    output.push((RowOut::Query(k.clone(), *q, *ds), 1));
                }
                return;
            }
            // sides are sorted: matches in bootstrap part order, i.e. by priority
            let mut provided: Vec<u16> = matched
                .iter()
                .flat_map(|(_, b)| b.provided.iter().copied())
                .collect();
            provided.sort_unstable();
            provided.dedup();
            let covered: Vec<u16> = (0..spec.deps.len() as u16)
                .filter(|&p| spec.covers(p as usize, &provided))
                .collect();
            let provided = provided.clone();
            for (k, q, ds) in &ask.queries {
                if covered.binary_search(&k.0).is_err() {
                    output.push((RowOut::Query(k.clone(), *q, *ds), 1));
                }
            }
            output.push((
                RowOut::Values(BootValues {
                    covered,
                    matched: matched.iter().map(|(p, b)| (*p, b.row, b.digest)).collect(),
                    provided,
                }),
                1,
            ));
        },
    );
    let queries = per_row.clone().flat_map(|(row, out)| match out {
        RowOut::Query(k, q, ds) => Some((k, Item::Query { row, q, ds })),
        RowOut::Values(_) => None,
    });
    let values = per_row.flat_map(|(row, out)| match out {
        RowOut::Values(v) => Some((row, v)),
        RowOut::Query(..) => None,
    });
    (queries, values)
}
