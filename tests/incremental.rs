//! The join dataflow is incremental: feeding inputs as a sequence of epochs (appends, late
//! events, retractions, new left rows) leaves the maintained output equal to a from-scratch
//! computation over the same inputs, after every epoch. The reference is a naive loop written
//! independently of the engine's window code.

use std::collections::BTreeMap;

use proptest::prelude::*;
use weft::dataflow::records::{Item, Num};
use weft::dataflow::windows::{AggOp, ColumnSpec, PartSpec};
use weft::dataflow::{JoinDataflow, Update};
use weft::join::output::OutputState;

const DAY: i64 = 86_400_000;
const HOUR: i64 = 3_600_000;

fn spec(snapshot: bool) -> PartSpec {
    let col = |op, window| ColumnSpec {
        input: 0,
        op,
        window,
        double: false,
    };
    PartSpec {
        snapshot,
        columns: vec![
            col(AggOp::Sum, Some(DAY)),
            col(AggOp::Count, Some(2 * DAY)),
            col(AggOp::Sum, Some(14 * DAY)),
            col(AggOp::Count, None),
        ],
    }
}

/// Naive reference: loop over every event for every query.
fn reference(
    part: &PartSpec,
    events: &BTreeMap<(u8, i64, Option<i64>), isize>,
    queries: &BTreeMap<u64, (u8, i64)>,
) -> BTreeMap<u64, Vec<Num>> {
    let mut out = BTreeMap::new();
    for (&row, &(key, q)) in queries {
        let vals = part
            .columns
            .iter()
            .map(|c| {
                let (mut sum, mut n) = (0i64, 0i64);
                for (&(k, ts, v), &m) in events {
                    let Some(v) = v else { continue };
                    let inside = if part.snapshot {
                        let t = q - q.rem_euclid(DAY);
                        ts < t && c.window.is_none_or(|w| ts >= t - w)
                    } else {
                        let hop = match c.window {
                            Some(w) if w >= 12 * DAY => DAY,
                            Some(w) if w >= 12 * HOUR => HOUR,
                            _ => 300_000,
                        };
                        ts < q
                            && c.window
                                .is_none_or(|w| ts >= (q - w) - (q - w).rem_euclid(hop))
                    };
                    if k == key && inside {
                        sum += v * m as i64;
                        n += m as i64;
                    }
                }
                match (n, c.op) {
                    (0, _) => Num::Null,
                    (_, AggOp::Sum) => Num::Long(sum),
                    (_, AggOp::Count) => Num::Long(n),
                }
            })
            .collect();
        out.insert(row, vals);
    }
    out
}

#[derive(Debug, Clone)]
enum Op {
    Event { key: u8, ts: i64, v: Option<i64> },
    Query { key: u8, q: i64 },
    RetractEvent(usize),
}

fn op() -> impl Strategy<Value = Op> {
    let ts = 0i64..(20 * DAY);
    // times cluster on day and hour boundaries to hit window edges
    let edge = (
        0i64..20,
        prop_oneof![Just(0i64), Just(-1), Just(1), Just(HOUR), Just(5 * 60_000)],
    )
        .prop_map(|(d, o)| (d * DAY + o).max(0));
    prop_oneof![
        4 => (0u8..3, prop_oneof![ts.clone(), edge.clone()], prop_oneof![Just(None), (1i64..100).prop_map(Some), (1i64..100).prop_map(Some)]).prop_map(|(key, ts, v)| Op::Event { key, ts, v }),
        2 => (0u8..3, prop_oneof![ts, edge]).prop_map(|(key, q)| Op::Query { key, q }),
        1 => (0usize..1000).prop_map(Op::RetractEvent),
    ]
}

fn check(snapshot: bool, epochs: Vec<Vec<Op>>, workers: usize) -> Result<(), TestCaseError> {
    let part = spec(snapshot);
    let mut df = JoinDataflow::start(vec![part.clone()], workers).unwrap();
    let mut state = OutputState::default();
    let mut events: BTreeMap<(u8, i64, Option<i64>), isize> = BTreeMap::new();
    let mut live: Vec<(u8, i64, Option<i64>)> = Vec::new();
    let mut queries: BTreeMap<u64, (u8, i64)> = BTreeMap::new();
    for ops in epochs {
        let mut updates: Vec<Update> = Vec::new();
        for op in ops {
            match op {
                Op::Event { key, ts, v } => {
                    *events.entry((key, ts, v)).or_default() += 1;
                    live.push((key, ts, v));
                    updates.push((
                        (
                            (0, vec![key]),
                            Item::Event {
                                ts,
                                inputs: vec![v.map_or(Num::Null, Num::Long)],
                            },
                        ),
                        1,
                    ));
                }
                Op::Query { key, q } => {
                    let row = queries.len() as u64;
                    queries.insert(row, (key, q));
                    updates.push((((0, vec![key]), Item::Query { row, q }), 1));
                }
                Op::RetractEvent(i) if !live.is_empty() => {
                    let (key, ts, v) = live.remove(i % live.len());
                    let m = events.get_mut(&(key, ts, v)).unwrap();
                    *m -= 1;
                    if *m == 0 {
                        events.remove(&(key, ts, v));
                    }
                    updates.push((
                        (
                            (0, vec![key]),
                            Item::Event {
                                ts,
                                inputs: vec![v.map_or(Num::Null, Num::Long)],
                            },
                        ),
                        -1,
                    ));
                }
                Op::RetractEvent(_) => {}
            }
        }
        df.update(updates);
        state.apply(df.seal());
        let expected = reference(&part, &events, &queries);
        for (row, vals) in &expected {
            prop_assert_eq!(
                state.get(*row, 0),
                Some(vals),
                "row {} after epoch {}",
                row,
                df.epoch()
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn temporal_incremental_equals_recompute(epochs in prop::collection::vec(prop::collection::vec(op(), 0..25), 1..6)) {
        check(false, epochs, 1)?;
    }

    #[test]
    fn snapshot_incremental_equals_recompute(epochs in prop::collection::vec(prop::collection::vec(op(), 0..25), 1..6)) {
        check(true, epochs, 2)?;
    }
}

#[test]
fn a_late_event_changes_only_the_rows_whose_windows_contain_it() {
    let part = spec(false);
    let mut df = JoinDataflow::start(vec![part], 1).unwrap();
    let q = |row, q| (((0u16, vec![1u8]), Item::Query { row, q }), 1isize);
    df.update(vec![q(0, 5 * DAY), q(1, 10 * DAY), q(2, 30 * DAY)]);
    let initial = df.seal();
    assert_eq!(initial.len(), 3, "every query gets an (all NULL) output");
    // A late event on day 9 reaches row 1 (1d, 2d, 14d, unbounded) and row 2 (unbounded only).
    df.update(vec![(
        (
            (0, vec![1]),
            Item::Event {
                ts: 9 * DAY + 5,
                inputs: vec![Num::Long(7)],
            },
        ),
        1,
    )]);
    let changes = df.seal();
    let rows: std::collections::BTreeSet<u64> =
        changes.iter().map(|((row, _, _), _)| *row).collect();
    assert_eq!(
        rows,
        [1, 2].into_iter().collect(),
        "row 0 (before the event) is untouched"
    );
    let mut state = OutputState::default();
    state.apply(initial);
    state.apply(changes);
    assert_eq!(
        state.get(1, 0),
        Some(&vec![
            Num::Long(7),
            Num::Long(1),
            Num::Long(7),
            Num::Long(1)
        ])
    );
    assert_eq!(
        state.get(2, 0),
        Some(&vec![Num::Null, Num::Null, Num::Null, Num::Long(1)])
    );
}
