//! What the dataflow computes for one join part: the kind of GroupBy (events, entity
//! snapshots, entity snapshots plus mutations, raw entity rows) and its output columns, each
//! an aggregation of one input over one window (chronon-semantics §2.3, §2.6, §3.4).

use serde::{Deserialize, Serialize};

use crate::aggregate::Aggregator;
use crate::partition::DAY_MS;

/// How a part's rows are turned into values for a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PartKind {
    /// Event rows; a query at `q` sees `floor(q − W, hop) ≤ ts < q` per column (SNAPSHOT
    /// parts pass `q` = a midnight and use day hops).
    Events,
    /// Entity snapshot rows of the query's partition `ds` (windowed columns: `E − W ≤ ts < E`
    /// with `E` the end of that day).
    Snapshot,
    /// Entity snapshot `ds` as of its end, plus the mutations of day `ds + 1` before `q`.
    Mutations,
    /// No aggregation: every row of snapshot `ds` is one output (values as-is).
    Raw,
}

/// One output column.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ColumnSpec {
    pub agg: Aggregator,
    /// Index of the aggregation input in the row's inputs.
    pub input: usize,
    /// Index of the bucket column in the row's inputs, for `_by_<bucket>` columns.
    pub bucket: Option<usize>,
    /// Window length in ms; `None` = unbounded.
    pub window: Option<i64>,
    /// Tail hop in ms (the tile size the window's start is rounded down to).
    pub hop: i64,
}

/// How one join part is computed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PartSpec {
    pub kind: PartKind,
    pub columns: Vec<ColumnSpec>,
}

/// Chronon's tail hop for a TEMPORAL window (FiveMinuteResolution): 1 day if `W ≥ 12 days`,
/// 1 hour if `W ≥ 12 hours`, else 5 minutes. Unbounded windows use day tiles.
pub fn tail_hop(window_ms: Option<i64>) -> i64 {
    const HOUR: i64 = 3_600_000;
    match window_ms {
        None => DAY_MS,
        Some(w) if w >= 12 * DAY_MS => DAY_MS,
        Some(w) if w >= 12 * HOUR => HOUR,
        Some(_) => 5 * 60_000,
    }
}

/// The first event time a query at `q` sees for a column (`i64::MIN` when unbounded).
pub fn window_start(window: Option<i64>, hop: i64, q: i64) -> i64 {
    window.map_or(i64::MIN, |w| (q - w).div_euclid(hop) * hop)
}

impl PartSpec {
    /// The longest window (`None` if any column is unbounded).
    pub fn max_window(&self) -> Option<i64> {
        let unbounded = self.columns.iter().any(|c| c.window.is_none());
        (!unbounded).then(|| self.bounded_reach())
    }

    /// How far back (ms) the bounded windows reach from a query, tail hop included (0 when
    /// no column is bounded).
    pub fn bounded_reach(&self) -> i64 {
        self.columns
            .iter()
            .filter_map(|c| c.window.map(|w| w + c.hop))
            .fold(0, i64::max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hops_and_window_starts_follow_chronon() {
        let day = DAY_MS;
        assert_eq!(tail_hop(Some(30 * day)), day);
        assert_eq!(tail_hop(Some(12 * day)), day);
        assert_eq!(tail_hop(Some(day)), 3_600_000);
        assert_eq!(tail_hop(Some(12 * 3_600_000)), 3_600_000);
        assert_eq!(tail_hop(Some(3_600_000)), 300_000);
        // q at 10:02 on day 10 with a 1-day window: hop 1 hour → start 09:00 of day 9
        let q = 10 * day + 10 * 3_600_000 + 2 * 60_000;
        let h = tail_hop(Some(day));
        assert_eq!(window_start(Some(day), h, q), 9 * day + 10 * 3_600_000);
        assert_eq!(window_start(None, day, q), i64::MIN);
    }
}

/// What the bootstrap stage needs to decide coverage (chronon-semantics §4.6): per join part,
/// its dependencies `(field, base fields)`. A row covers a part when it matched some bootstrap
/// row and, for every dependency, the field itself or all of its base fields were provided.
/// Without join derivations each value field depends on itself; an empty list is covered by
/// any match.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BootstrapSpec {
    pub deps: Vec<Vec<(u16, Vec<u16>)>>,
}

impl BootstrapSpec {
    /// Whether a row that provided the sorted fields `provided` covers `part`.
    pub fn covers(&self, part: usize, provided: &[u16]) -> bool {
        let has = |f: &u16| provided.binary_search(f).is_ok();
        self.deps
            .get(part)
            .is_some_and(|d| d.iter().all(|(f, bases)| has(f) || bases.iter().all(has)))
    }
}
