//! The windows operator is incremental: feeding inputs as a sequence of epochs (appends, late
//! events, retractions, new and removed queries) leaves the maintained output equal, after
//! every epoch, to (a) a naive reference loop written independently of the tile code and (b)
//! bit for bit, a fresh dataflow fed everything at once — the fixed merge tree makes
//! floating-point results independent of history.

use std::collections::BTreeMap;

use proptest::prelude::*;
use weft::aggregate::{AggSpec, Aggregator, InputShape, Value};
use weft::config::Operation;
use weft::dataflow::records::Item;
use weft::dataflow::spec::{tail_hop, ColumnSpec, PartKind, PartSpec};
use weft::dataflow::{Runtime, Update};
use weft::join::output::OutputState;

const DAY: i64 = 86_400_000;
const HOUR: i64 = 3_600_000;

fn agg(op: Operation, k: Option<usize>) -> Aggregator {
    Aggregator::new(
        AggSpec {
            op,
            k,
            percentiles: vec![],
        },
        InputShape::Scalar,
        false,
    )
}

/// SUM 1d, COUNT 2d, MAX 14d, LAST_K(3) 3h, AVERAGE unbounded, SUM unbounded.
fn columns(snapshot: bool) -> Vec<(Operation, Option<i64>)> {
    let mut c = vec![
        (Operation::Sum, Some(DAY)),
        (Operation::Count, Some(2 * DAY)),
        (Operation::Max, Some(14 * DAY)),
        (Operation::Average, None),
        (Operation::Sum, None),
    ];
    if !snapshot {
        c.push((Operation::LastK, Some(3 * HOUR)));
    }
    c
}

fn spec(snapshot: bool) -> PartSpec {
    PartSpec {
        kind: PartKind::Events,
        columns: columns(snapshot)
            .into_iter()
            .map(|(op, window)| ColumnSpec {
                agg: agg(op, (op == Operation::LastK).then_some(3)),
                input: 0,
                bucket: None,
                window,
                hop: if snapshot { DAY } else { tail_hop(window) },
            })
            .collect(),
    }
}

type Events = BTreeMap<(u8, i64, Option<i64>), isize>;

/// Naive reference: loop over every event for every query.
fn reference(
    snapshot: bool,
    events: &Events,
    queries: &BTreeMap<u64, (u8, i64)>,
) -> BTreeMap<u64, Vec<Value>> {
    let mut out = BTreeMap::new();
    for (&row, &(key, q)) in queries {
        let q = if snapshot { q - q.rem_euclid(DAY) } else { q };
        let vals = columns(snapshot)
            .into_iter()
            .map(|(op, window)| {
                let hop = if snapshot { DAY } else { tail_hop(window) };
                let mut seen: Vec<(i64, i64)> = Vec::new();
                for (&(k, ts, v), &m) in events {
                    let Some(v) = v else { continue };
                    let lo = window.map_or(i64::MIN, |w| (q - w).div_euclid(hop) * hop);
                    if k == key && ts < q && ts >= lo {
                        seen.extend(std::iter::repeat_n((ts, v), m as usize));
                    }
                }
                if seen.is_empty() {
                    return Value::Null;
                }
                let n = seen.len() as i64;
                let sum: i64 = seen.iter().map(|(_, v)| v).sum();
                match op {
                    Operation::Sum => Value::Long(sum),
                    Operation::Count => Value::Long(n),
                    Operation::Max => Value::Long(seen.iter().map(|(_, v)| *v).max().unwrap()),
                    Operation::Average => Value::double(sum as f64 / n as f64),
                    Operation::LastK => {
                        // newest first; among equal times the earlier arrival (events
                        // arrive in value order) comes first, as LAST does
                        let mut s = seen.clone();
                        s.sort_by_key(|(t, _)| std::cmp::Reverse(*t));
                        Value::List(s.iter().take(3).map(|(_, v)| Value::Long(*v)).collect())
                    }
                    _ => unreachable!(),
                }
            })
            .collect();
        out.insert(row, vals);
    }
    out
}

fn close(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Double(_), Value::Double(_)) => {
            let (x, y) = (a.as_f64().unwrap(), b.as_f64().unwrap());
            (x - y).abs() <= 1e-9 * x.abs().max(1.0)
        }
        _ => a == b,
    }
}

#[derive(Debug, Clone)]
enum Op {
    Event { key: u8, ts: i64, v: Option<i64> },
    Query { key: u8, q: i64 },
    RetractEvent(usize),
    RetractQuery(usize),
}

fn op() -> impl Strategy<Value = Op> {
    let ts = 0i64..(20 * DAY);
    // times cluster on day, hour and 5-minute boundaries to hit window edges
    let edge = (
        0i64..20,
        0i64..24,
        prop_oneof![Just(0i64), Just(-1), Just(1), Just(5 * 60_000)],
    )
        .prop_map(|(d, h, o)| (d * DAY + h * HOUR + o).max(0));
    // key 0 is hot (most events), so its tiles stay cached between epochs
    let key = prop_oneof![6 => Just(0u8), 1 => Just(1u8), 1 => Just(2u8)];
    prop_oneof![
        6 => (key.clone(), prop_oneof![ts.clone(), edge.clone()], prop_oneof![Just(None), (1i64..100).prop_map(Some), (1i64..100).prop_map(Some)]).prop_map(|(key, ts, v)| Op::Event { key, ts, v }),
        2 => (key, prop_oneof![ts, edge]).prop_map(|(key, q)| Op::Query { key, q }),
        1 => (0usize..1000).prop_map(Op::RetractEvent),
        1 => (0usize..1000).prop_map(Op::RetractQuery),
    ]
}

fn event(key: u8, ts: i64, v: Option<i64>, r: isize) -> Update {
    (
        (
            (0, vec![key]),
            Item::Row {
                ds: (ts / DAY) as i32,
                ts,
                mutation: None,
                inputs: vec![v.map_or(Value::Null, Value::Long)],
            },
        ),
        r,
    )
}

fn query(key: u8, row: u64, q: i64, r: isize) -> Update {
    (
        (
            (0, vec![key]),
            Item::Query {
                row,
                q,
                ds: (q / DAY) as i32,
            },
        ),
        r,
    )
}

fn check(snapshot: bool, epochs: Vec<Vec<Op>>, workers: usize) -> Result<(), TestCaseError> {
    // keep the hot key's tile cache between epochs, so cached and rebuilt tiles are compared
    weft::dataflow::group::keep_tile_caches_from(8);
    let mut df = Runtime::start(workers)
        .unwrap()
        .install(vec![spec(snapshot)], None)
        .unwrap();
    let mut state = OutputState::default();
    let mut events: Events = BTreeMap::new();
    let mut live: Vec<(u8, i64, Option<i64>)> = Vec::new();
    let mut queries: BTreeMap<u64, (u8, i64)> = BTreeMap::new();
    let mut next_row = 0u64;
    let q_time = |q: i64| if snapshot { q - q.rem_euclid(DAY) } else { q };
    for ops in epochs {
        let mut updates: Vec<Update> = Vec::new();
        for op in ops {
            match op {
                Op::Event { key, ts, v } => {
                    *events.entry((key, ts, v)).or_default() += 1;
                    live.push((key, ts, v));
                    updates.push(event(key, ts, v, 1));
                }
                Op::Query { key, q } => {
                    queries.insert(next_row, (key, q));
                    updates.push(query(key, next_row, q_time(q), 1));
                    next_row += 1;
                }
                Op::RetractEvent(i) if !live.is_empty() => {
                    let (key, ts, v) = live.remove(i % live.len());
                    let m = events.get_mut(&(key, ts, v)).unwrap();
                    *m -= 1;
                    if *m == 0 {
                        events.remove(&(key, ts, v));
                    }
                    updates.push(event(key, ts, v, -1));
                }
                Op::RetractQuery(i) if !queries.is_empty() => {
                    let row = *queries.keys().nth(i % queries.len()).unwrap();
                    let (key, q) = queries.remove(&row).unwrap();
                    updates.push(query(key, row, q_time(q), -1));
                }
                Op::RetractEvent(_) | Op::RetractQuery(_) => {}
            }
        }
        df.update(updates);
        state.apply(df.seal().unwrap());
        let expected = reference(snapshot, &events, &queries);
        // (a) the naive reference
        for (row, vals) in &expected {
            let got = state.get(*row, 0);
            prop_assert_eq!(got.len(), 1, "row {} has one output", row);
            for (c, (g, e)) in got[0].iter().zip(vals).enumerate() {
                prop_assert!(
                    close(g, e),
                    "row {} column {}: got {:?}, expected {:?}",
                    row,
                    c,
                    g,
                    e
                );
            }
        }
        // (b) bit-identical to a fresh dataflow over the same inputs
        let mut fresh = Runtime::start(1)
            .unwrap()
            .install(vec![spec(snapshot)], None)
            .unwrap();
        let mut all: Vec<Update> = events
            .iter()
            .map(|(&(k, ts, v), &m)| event(k, ts, v, m))
            .collect();
        all.extend(
            queries
                .iter()
                .map(|(&row, &(k, q))| query(k, row, q_time(q), 1)),
        );
        fresh.update(all);
        let mut fresh_state = OutputState::default();
        fresh_state.apply(fresh.seal().unwrap());
        for row in queries.keys() {
            prop_assert_eq!(
                state.get(*row, 0),
                fresh_state.get(*row, 0),
                "row {} incremental vs fresh",
                row
            );
        }
        // retracted queries leave nothing behind
        for row in 0..next_row {
            if !queries.contains_key(&row) {
                prop_assert!(
                    state.get(row, 0).is_empty(),
                    "retracted row {} has no output",
                    row
                );
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: crate::cases(None, 32),
        failure_persistence: crate::regressions_beside_suite(),
        ..ProptestConfig::default()
    })]

    #[test]
    fn temporal_incremental_equals_recompute(epochs in prop::collection::vec(prop::collection::vec(op(), 0..60), 1..6)) {
        check(false, epochs, 1)?;
    }

    #[test]
    fn snapshot_incremental_equals_recompute(epochs in prop::collection::vec(prop::collection::vec(op(), 0..60), 1..6)) {
        check(true, epochs, 2)?;
    }
}

#[test]
fn a_late_event_changes_only_the_rows_whose_windows_contain_it() {
    let mut df = Runtime::start(1)
        .unwrap()
        .install(vec![spec(false)], None)
        .unwrap();
    df.update(vec![
        query(1, 0, 5 * DAY, 1),
        query(1, 1, 10 * DAY, 1),
        query(1, 2, 30 * DAY, 1),
    ]);
    let initial = df.seal().unwrap();
    assert_eq!(initial.len(), 3, "every query gets an (all NULL) output");
    // A late event on day 9 reaches row 1 (1d, 2d, 14d, unbounded) and row 2 (unbounded only).
    df.update(vec![event(1, 9 * DAY + 5, Some(7), 1)]);
    let changes = df.seal().unwrap();
    let rows: std::collections::BTreeSet<u64> = changes.iter().map(|(row, _, _)| *row).collect();
    assert_eq!(
        rows,
        [1, 2].into_iter().collect(),
        "row 0 (before the event) is untouched"
    );
    let mut state = OutputState::default();
    state.apply(initial);
    state.apply(changes);
    let l = Value::Long;
    assert_eq!(
        state.get(1, 0),
        vec![vec![
            l(7),
            l(1),
            l(7),
            Value::double(7.0),
            l(7),
            Value::Null
        ]]
    );
    assert_eq!(
        state.get(2, 0),
        vec![vec![
            Value::Null,
            Value::Null,
            Value::Null,
            Value::double(7.0),
            l(7),
            Value::Null
        ]]
    );
}
