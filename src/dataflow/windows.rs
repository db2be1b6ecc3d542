//! Point-in-time window aggregation for one (join part, key) group: given the group's events
//! (sorted by time) and its queries, computes every output column of the part for each query
//! with Chronon's inclusion rules (chronon-semantics §2.6, §3.4):
//! TEMPORAL `floor(q − W, h(W)) ≤ ts < q`; SNAPSHOT `T − W ≤ ts < T` with `T` the midnight that
//! starts the query's day. NULL inputs are ignored and an empty window gives NULL.

use serde::{Deserialize, Serialize};

use super::records::{Item, Num, RowId};
use crate::partition::DAY_MS;

/// The aggregations this operator implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AggOp {
    Sum,
    Count,
}

/// One output column: which input, which operation, which window.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ColumnSpec {
    pub input: usize,
    pub op: AggOp,
    /// Window length in ms; `None` = unbounded.
    pub window: Option<i64>,
    /// Whether SUM produces a double (double/float input) or a long.
    pub double: bool,
}

/// How one join part is aggregated.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PartSpec {
    pub snapshot: bool,
    pub columns: Vec<ColumnSpec>,
}

/// Chronon's tail hop for a window (FiveMinuteResolution): 1 day if `W ≥ 12 days`,
/// 1 hour if `W ≥ 12 hours`, else 5 minutes.
pub fn tail_hop(window_ms: i64) -> i64 {
    const HOUR: i64 = 3_600_000;
    if window_ms >= 12 * DAY_MS {
        DAY_MS
    } else if window_ms >= 12 * HOUR {
        HOUR
    } else {
        5 * 60_000
    }
}

/// The half-open event-time range `[lo, hi)` a query at `q` sees for a window.
pub fn window_range(snapshot: bool, window: Option<i64>, q: i64) -> (i64, i64) {
    if snapshot {
        let t = q.div_euclid(DAY_MS) * DAY_MS;
        (window.map_or(i64::MIN, |w| t - w), t)
    } else {
        let lo = window.map_or(i64::MIN, |w| {
            let h = tail_hop(w);
            (q - w).div_euclid(h) * h
        });
        (lo, q)
    }
}

/// Computes the values of every query in a group. `input` is the reduce input: items with
/// their multiplicities, sorted (events first, by time).
pub fn evaluate(
    spec: &PartSpec,
    input: &[(&Item, isize)],
    out: &mut Vec<((RowId, Vec<Num>), isize)>,
) {
    let split = input.partition_point(|(i, _)| matches!(i, Item::Event { .. }));
    let (events, queries) = input.split_at(split);
    let ts: Vec<i64> = events
        .iter()
        .map(|(i, _)| match i {
            Item::Event { ts, .. } => *ts,
            Item::Query { .. } => unreachable!("events sort first"),
        })
        .collect();
    for (item, mult) in queries {
        let Item::Query { row, q } = item else {
            continue;
        };
        if *mult <= 0 {
            continue;
        }
        let values = spec
            .columns
            .iter()
            .map(|c| {
                let (lo, hi) = window_range(spec.snapshot, c.window, *q);
                let start = ts.partition_point(|&t| t < lo);
                let end = ts.partition_point(|&t| t < hi);
                aggregate(c, &events[start..end.max(start)])
            })
            .collect();
        out.push(((*row, values), 1));
    }
}

fn aggregate(c: &ColumnSpec, events: &[(&Item, isize)]) -> Num {
    let mut count: i64 = 0;
    let mut long_sum: i64 = 0;
    let mut double_sum: f64 = 0.0;
    for (item, mult) in events {
        let Item::Event { inputs, .. } = item else {
            continue;
        };
        let v = inputs[c.input];
        if v == Num::Null {
            continue;
        }
        count += *mult as i64;
        if c.op == AggOp::Sum {
            match v {
                Num::Long(x) => {
                    long_sum = long_sum.wrapping_add(x.wrapping_mul(*mult as i64));
                    double_sum += x as f64 * *mult as f64;
                }
                Num::Double(_) => double_sum += v.as_f64().unwrap_or(0.0) * *mult as f64,
                Num::Null => {}
            }
        }
    }
    if count <= 0 {
        return Num::Null;
    }
    match (c.op, c.double) {
        (AggOp::Count, _) => Num::Long(count),
        (AggOp::Sum, false) => Num::Long(long_sum),
        (AggOp::Sum, true) if double_sum.is_finite() => Num::double(double_sum),
        (AggOp::Sum, true) => Num::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporal_tail_is_hop_aligned_and_head_exclusive() {
        let day = DAY_MS;
        // 1-day window: hop 5 minutes; q at 10:02 → lo = floor(q - 1d, 5min)
        let q = 10 * day + 10 * 3_600_000 + 2 * 60_000;
        let (lo, hi) = window_range(false, Some(day), q);
        assert_eq!(hi, q);
        assert_eq!(lo, 9 * day + 10 * 3_600_000);
        // 30-day window: hop 1 day
        let (lo, _) = window_range(false, Some(30 * day), q);
        assert_eq!(lo, (10 - 30) * day);
        // snapshot: window ends at the query's midnight
        assert_eq!(window_range(true, Some(7 * day), q), (3 * day, 10 * day));
    }

    #[test]
    fn sums_counts_and_nulls() {
        let spec = PartSpec {
            snapshot: false,
            columns: vec![
                ColumnSpec {
                    input: 0,
                    op: AggOp::Sum,
                    window: None,
                    double: false,
                },
                ColumnSpec {
                    input: 0,
                    op: AggOp::Count,
                    window: None,
                    double: false,
                },
            ],
        };
        let e1 = Item::Event {
            ts: 10,
            inputs: vec![Num::Long(5)],
        };
        let e2 = Item::Event {
            ts: 20,
            inputs: vec![Num::Null],
        };
        let e3 = Item::Event {
            ts: 30,
            inputs: vec![Num::Long(7)],
        };
        let q0 = Item::Query { row: 1, q: 10 };
        let q1 = Item::Query { row: 2, q: 31 };
        let input = vec![(&e1, 2), (&e2, 1), (&e3, 1), (&q0, 1), (&q1, 1)];
        let mut out = Vec::new();
        evaluate(&spec, &input, &mut out);
        assert_eq!(
            out[0].0,
            (1, vec![Num::Null, Num::Null]),
            "same-millisecond event excluded"
        );
        assert_eq!(
            out[1].0,
            (2, vec![Num::Long(17), Num::Long(3)]),
            "duplicates count, NULL ignored"
        );
    }
}
