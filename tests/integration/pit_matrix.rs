//! The point-in-time matrix of chronon-semantics §3.4, one property test per cell: random
//! small tables (few hot keys, NULL keys and values, duplicate and same-millisecond rows, times
//! on hop/window/day boundaries), a join built as compiled JSON, weft's backfill, and the naive
//! reference of tests/reference. Cells: Events left × Events TEMPORAL / SNAPSHOT, Events ×
//! Entities SNAPSHOT / TEMPORAL (mutations), Entities × Entities, Entities × Events.

use crate::reference;

use proptest::prelude::*;
use reference::conf::{self, W};
use reference::harness::check;
use reference::{ds_of, ds_shift, ds_start, hop, Db, Op, Run, Table, Ty, DAY, HOUR, MINUTE, V};
use serde_json::Value as J;

const BASE: &str = "2026-03-01";
/// Days 0..=6 have source partitions; left partitions are days 2..=5.
const LAST_DAY: i64 = 6;

fn day(i: i64) -> String {
    ds_shift(BASE, i)
}
fn t0(i: i64) -> i64 {
    ds_start(BASE) + i * DAY
}

/// 16 cases per cell (`PIT_CASES=n` for a deeper run).
fn config() -> ProptestConfig {
    ProptestConfig {
        cases: crate::cases(Some("PIT_CASES"), 48),
        max_shrink_iters: 40,
        failure_persistence: crate::regressions_beside_suite(),
        ..ProptestConfig::default()
    }
}

// ------------------------------------------------------------------------------------------
// Keys and values
// ------------------------------------------------------------------------------------------

/// Zipf-ish keys: key 0 is hot, key 3 rare, and some NULLs.
fn key() -> impl Strategy<Value = Option<u8>> {
    prop_oneof![
        8 => Just(Some(0u8)),
        4 => Just(Some(1)),
        2 => Just(Some(2)),
        1 => Just(Some(3)),
        1 => Just(None),
    ]
}

fn value() -> impl Strategy<Value = Option<i64>> {
    prop_oneof![6 => (1i64..20).prop_map(Some), 1 => Just(None)]
}

#[derive(Clone, Copy, Debug)]
struct Keys {
    /// String keys (`"u0"`) or integer keys (`100`).
    strings: bool,
    /// The left column is `user`; with `mapped` the GroupBy key is `uid` (keyMapping).
    mapped: bool,
    prefix: bool,
}

fn keys() -> impl Strategy<Value = Keys> {
    (any::<bool>(), any::<bool>(), any::<bool>()).prop_map(|(strings, mapped, prefix)| Keys {
        strings,
        mapped,
        prefix,
    })
}

impl Keys {
    fn v(&self, k: Option<u8>) -> V {
        match k {
            None => V::Null,
            Some(k) if self.strings => V::Str(format!("u{k}")),
            Some(k) => V::Int(100 + k as i64),
        }
    }
    fn ty(&self) -> Ty {
        if self.strings {
            Ty::Str
        } else {
            Ty::I64
        }
    }
    fn right(&self) -> &'static str {
        if self.mapped {
            "uid"
        } else {
            "user"
        }
    }
    fn part(&self, gb: J) -> J {
        let mapping: &[(&str, &str)] = if self.mapped { &[("user", "uid")] } else { &[] };
        conf::part(gb, mapping, self.prefix.then_some("p"))
    }
}

fn v(x: Option<i64>) -> V {
    x.map_or(V::Null, V::Int)
}

// ------------------------------------------------------------------------------------------
// Left rows
// ------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum LeftTime {
    Random(i64),
    Midnight,
    LastMs,
    /// On a 5-minute boundary.
    Aligned(i64),
    /// The same millisecond as the previous left row.
    SameAsPrevious,
    /// Same ms as / 1 ms after / 1 ms before source row `i` (entity mutations).
    AtSource(usize, i64),
}

#[derive(Clone, Debug)]
struct LeftSpec {
    day: i64,
    /// The row's ts may lie on the day before or after its partition.
    shift: i64,
    time: LeftTime,
    key: Option<u8>,
    duplicate: bool,
}

fn left_spec() -> impl Strategy<Value = LeftSpec> {
    let time = prop_oneof![
        4 => (0..DAY).prop_map(LeftTime::Random),
        1 => Just(LeftTime::Midnight),
        1 => Just(LeftTime::LastMs),
        2 => (0i64..288).prop_map(|s| LeftTime::Aligned(s * 5 * MINUTE)),
        1 => Just(LeftTime::SameAsPrevious),
        2 => (0usize..1000, -1i64..=1).prop_map(|(i, d)| LeftTime::AtSource(i, d)),
    ];
    (
        2i64..=5,
        prop_oneof![10 => Just(0i64), 1 => Just(-1), 1 => Just(1)],
        time,
        key(),
        prop::bool::weighted(0.12),
    )
        .prop_map(|(day, shift, time, key, duplicate)| LeftSpec {
            day,
            shift,
            time,
            key,
            duplicate,
        })
}

/// A materialised left row.
#[derive(Clone, Debug)]
struct LeftRow {
    ds: String,
    id: i64,
    key: Option<u8>,
    ts: i64,
}

/// Left rows from specs; `anchors` are source times rows may be pinned to.
fn left_rows(specs: &[LeftSpec], anchors: &[i64]) -> Vec<LeftRow> {
    let mut out: Vec<LeftRow> = Vec::new();
    for (i, s) in specs.iter().enumerate() {
        let base = t0(s.day + s.shift);
        let ts = match &s.time {
            LeftTime::Random(ms) => base + ms,
            LeftTime::Midnight => base,
            LeftTime::LastMs => base + DAY - 1,
            LeftTime::Aligned(ms) => base + ms,
            LeftTime::SameAsPrevious => out.last().map_or(base, |r| r.ts),
            LeftTime::AtSource(j, d) if !anchors.is_empty() => {
                let a = anchors[j % anchors.len()] + d;
                // keep the row in its partition's neighbourhood
                a.clamp(t0(s.day - 1), t0(s.day + 2) - 1)
            }
            LeftTime::AtSource(..) => base + DAY / 2,
        };
        let row = LeftRow {
            ds: day(s.day),
            id: i as i64,
            key: s.key,
            ts,
        };
        if s.duplicate {
            out.push(row.clone());
        }
        out.push(row);
    }
    out
}

fn left_table(keys: &Keys, rows: &[LeftRow]) -> Table {
    let mut t = Table::new(&[("row_id", Ty::I64), ("user", keys.ty()), ("ts", Ty::I64)]);
    for r in rows {
        t.push(&r.ds, vec![V::Int(r.id), keys.v(r.key), V::Int(r.ts)]);
    }
    t
}

fn entity_left_table(keys: &Keys, rows: &[LeftRow]) -> Table {
    let mut t = Table::new(&[("row_id", Ty::I64), ("user", keys.ty())]);
    for r in rows {
        t.push(&r.ds, vec![V::Int(r.id), keys.v(r.key)]);
    }
    t
}

// ------------------------------------------------------------------------------------------
// Events
// ------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum Edge {
    AtQ,
    QMinus1,
    QPlus1,
    /// `floor(q − W, hop(W))` and 1 ms before it.
    TailStart,
    TailStartMinus1,
    /// The start of the query's day, 1 ms before, and `day start − W` (SNAPSHOT bounds).
    DayStart,
    DayStartMinus1,
    DayStartMinusW,
    DayStartMinusWMinus1,
}

#[derive(Clone, Debug)]
enum EvTime {
    Random {
        day: i64,
        ms: i64,
    },
    Aligned {
        day: i64,
        slot: i64,
    },
    Anchor {
        left: usize,
        edge: Edge,
        window: usize,
    },
}

#[derive(Clone, Debug)]
struct EvSpec {
    key: Option<u8>,
    val: Option<i64>,
    time: EvTime,
    /// The same event twice.
    duplicate: bool,
}

fn ev_spec() -> impl Strategy<Value = EvSpec> {
    let edge = prop_oneof![
        Just(Edge::AtQ),
        Just(Edge::QMinus1),
        Just(Edge::QPlus1),
        Just(Edge::TailStart),
        Just(Edge::TailStartMinus1),
        Just(Edge::DayStart),
        Just(Edge::DayStartMinus1),
        Just(Edge::DayStartMinusW),
        Just(Edge::DayStartMinusWMinus1),
    ];
    let time = prop_oneof![
        3 => (0i64..=LAST_DAY, 0..DAY).prop_map(|(day, ms)| EvTime::Random { day, ms }),
        1 => (0i64..=LAST_DAY, 0i64..24).prop_map(|(day, slot)| EvTime::Aligned { day, slot }),
        4 => (0usize..100, edge, 0usize..4).prop_map(|(left, edge, window)| EvTime::Anchor { left, edge, window }),
    ];
    (key(), value(), time, prop::bool::weighted(0.1)).prop_map(|(key, val, time, duplicate)| {
        EvSpec {
            key,
            val,
            time,
            duplicate,
        }
    })
}

/// Events as `(ds, key, value, ts)`, each in the partition of its own ts.
fn events(
    specs: &[EvSpec],
    left: &[LeftRow],
    windows: &[W],
) -> Vec<(String, Option<u8>, Option<i64>, i64)> {
    let mut out = Vec::new();
    for s in specs {
        let ts = match &s.time {
            EvTime::Random { day, ms } => t0(*day) + ms,
            EvTime::Aligned { day, slot } => t0(*day) + slot * HOUR,
            EvTime::Anchor {
                left: i,
                edge,
                window,
            } => {
                let q = left[i % left.len()].ts;
                let w = windows[window % windows.len()].millis().unwrap_or(DAY);
                let start = q.div_euclid(DAY) * DAY;
                match edge {
                    Edge::AtQ => q,
                    Edge::QMinus1 => q - 1,
                    Edge::QPlus1 => q + 1,
                    Edge::TailStart => reference::floor(q - w, hop(w)),
                    Edge::TailStartMinus1 => reference::floor(q - w, hop(w)) - 1,
                    Edge::DayStart => start,
                    Edge::DayStartMinus1 => start - 1,
                    Edge::DayStartMinusW => start - w,
                    Edge::DayStartMinusWMinus1 => start - w - 1,
                }
            }
        };
        let ts = ts.clamp(t0(0), t0(LAST_DAY + 1) - 1);
        if s.duplicate {
            out.push((ds_of(ts), s.key, s.val, ts));
        }
        out.push((ds_of(ts), s.key, s.val, ts));
    }
    out
}

fn event_table(keys: &Keys, evs: &[(String, Option<u8>, Option<i64>, i64)]) -> Table {
    let mut t = Table::new(&[(keys.right(), keys.ty()), ("val", Ty::I64), ("ts", Ty::I64)]);
    for d in 0..=LAST_DAY {
        t.touch(&day(d));
    }
    for (ds, k, val, ts) in evs {
        t.push(ds, vec![keys.v(*k), v(*val), V::Int(*ts)]);
    }
    t
}

fn aggs(ops: &[(Op, &[(&str, &str)])], windows: &[W]) -> Vec<J> {
    ops.iter()
        .flat_map(|(op, args)| conf::aggs_for("val", *op, windows, args))
        .collect()
}

const SUM_COUNT: &[(Op, &[(&str, &str)])] = &[(Op::Sum, &[]), (Op::Count, &[])];
const EVENT_OPS: &[(Op, &[(&str, &str)])] = &[
    (Op::Sum, &[]),
    (Op::Average, &[]),
    (Op::Max, &[]),
    (Op::Last, &[]),
    (Op::LastK, &[("k", "3")]),
    (Op::UniqueCount, &[]),
];

fn temporal_windows() -> impl Strategy<Value = Vec<W>> {
    prop::sample::subsequence(
        vec![
            W::Hours(1),
            W::Hours(12),
            W::Days(1),
            W::Days(2),
            W::Days(12),
            W::Unbounded,
        ],
        1..=3,
    )
}

fn snapshot_windows() -> impl Strategy<Value = Vec<W>> {
    prop::sample::subsequence(
        vec![W::Days(1), W::Days(2), W::Days(3), W::Unbounded],
        1..=3,
    )
}

/// Events left × Events GroupBy with `accuracy` (0 TEMPORAL, 1 SNAPSHOT).
fn events_events(
    keys: Keys,
    windows: Vec<W>,
    left: Vec<LeftSpec>,
    evs: Vec<EvSpec>,
    ops: &[(Op, &[(&str, &str)])],
    accuracy: i64,
) -> Result<(), TestCaseError> {
    let lrows = left_rows(&left, &[]);
    let evs = events(&evs, &lrows, &windows);
    let mut db = Db::default();
    db.add("data.left", left_table(&keys, &lrows));
    db.add("data.events", event_table(&keys, &evs));
    let gb = conf::group_by(
        "test.events.v1",
        vec![conf::events_source(
            "data.events",
            &[keys.right(), "val"],
            Some("ts"),
        )],
        &[keys.right()],
        Some(aggs(ops, &windows)),
        Some(accuracy),
    );
    let join = conf::join(
        "test.matrix.v1",
        conf::events_left("data.left", &["row_id", "user"]),
        vec![keys.part(gb)],
    );
    check(&join, &db, &Run::through(&day(5))).map_err(TestCaseError::fail)
}

// ------------------------------------------------------------------------------------------
// Entities: a state evolving by mutations; snapshots are its end-of-day states
// ------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum MutKind {
    Insert,
    Update(usize),
    Delete(usize),
}

#[derive(Clone, Debug)]
struct MutSpec {
    key: Option<u8>,
    val: Option<i64>,
    kind: MutKind,
    /// Offset in the day; on a 5-minute boundary when `aligned`.
    ms: i64,
    aligned: bool,
}

fn mut_spec() -> impl Strategy<Value = MutSpec> {
    (
        key(),
        value(),
        prop_oneof![
            2 => Just(MutKind::Insert),
            2 => (0usize..100).prop_map(MutKind::Update),
            1 => (0usize..100).prop_map(MutKind::Delete),
        ],
        0..DAY,
        prop::bool::weighted(0.3),
    )
        .prop_map(|(key, val, kind, ms, aligned)| MutSpec {
            key,
            val,
            kind,
            ms,
            aligned,
        })
}

/// An entity row `(key, val, ts)`.
type EntityRow = (Option<u8>, Option<i64>, i64);
/// A mutation row `(ds, key, val, ts, mutation_ts, is_before)`.
type MutationRow = (String, Option<u8>, Option<i64>, i64, i64, bool);

/// Entity history: initial rows (day 0) and mutations per day 1..=LAST_DAY.
#[derive(Clone, Debug)]
struct History {
    /// `ds → rows (key, val, ts)` end-of-day snapshots for days 0..=LAST_DAY.
    snapshots: Vec<(String, Vec<EntityRow>)>,
    /// Mutation rows `(ds, key, val, ts, mutation_ts, is_before)`.
    mutations: Vec<MutationRow>,
}

fn history(initial: &[(Option<u8>, Option<i64>, i64)], muts: &[Vec<MutSpec>]) -> History {
    let mut state: Vec<(Option<u8>, Option<i64>, i64)> = initial
        .iter()
        .map(|(k, v, ms)| (*k, *v, t0(0) + ms))
        .collect();
    let mut h = History {
        snapshots: vec![(day(0), state.clone())],
        mutations: Vec::new(),
    };
    for d in 1..=LAST_DAY {
        let ops = muts.get(d as usize - 1).cloned().unwrap_or_default();
        let mut times: Vec<i64> = ops
            .iter()
            .map(|m| {
                if m.aligned {
                    m.ms - m.ms % (5 * MINUTE)
                } else {
                    m.ms
                }
            })
            .collect();
        times.sort_unstable();
        for (i, m) in ops.iter().enumerate() {
            // strictly increasing mutation times within the day
            let mts = t0(d) + (times[i] + i as i64).min(DAY - 1);
            let ds = day(d);
            match m.kind {
                MutKind::Insert => {
                    state.push((m.key, m.val, mts));
                    h.mutations.push((ds, m.key, m.val, mts, mts, false));
                }
                MutKind::Update(j) if !state.is_empty() => {
                    let j = j % state.len();
                    let (k, old, ots) = state[j];
                    h.mutations.push((ds.clone(), k, old, ots, mts, true));
                    state[j] = (k, m.val, mts);
                    h.mutations.push((ds, k, m.val, mts, mts, false));
                }
                MutKind::Delete(j) if !state.is_empty() => {
                    let (k, old, ots) = state.remove(j % state.len());
                    h.mutations.push((ds, k, old, ots, mts, true));
                }
                _ => {}
            }
        }
        h.snapshots.push((day(d), state.clone()));
    }
    h
}

fn entity_tables(keys: &Keys, h: &History) -> (Table, Table) {
    let mut snap = Table::new(&[(keys.right(), keys.ty()), ("val", Ty::I64), ("ts", Ty::I64)]);
    for (ds, rows) in &h.snapshots {
        snap.touch(ds);
        for (k, val, ts) in rows {
            snap.push(ds, vec![keys.v(*k), v(*val), V::Int(*ts)]);
        }
    }
    let mut muts = Table::new(&[
        (keys.right(), keys.ty()),
        ("val", Ty::I64),
        ("ts", Ty::I64),
        ("mutation_ts", Ty::I64),
        ("is_before", Ty::Bool),
    ]);
    for d in 0..=LAST_DAY {
        muts.touch(&day(d));
    }
    for (ds, k, val, ts, mts, before) in &h.mutations {
        muts.push(
            ds,
            vec![
                keys.v(*k),
                v(*val),
                V::Int(*ts),
                V::Int(*mts),
                V::Bool(*before),
            ],
        );
    }
    (snap, muts)
}

fn initial_rows() -> impl Strategy<Value = Vec<(Option<u8>, Option<i64>, i64)>> {
    prop::collection::vec((key(), value(), 0..DAY), 0..10)
}

fn mutations() -> impl Strategy<Value = Vec<Vec<MutSpec>>> {
    prop::collection::vec(prop::collection::vec(mut_spec(), 0..6), LAST_DAY as usize)
}

const ENTITY_OPS: &[(Op, &[(&str, &str)])] = &[
    (Op::Sum, &[]),
    (Op::Count, &[]),
    (Op::Average, &[]),
    (Op::Max, &[]),
    (Op::UniqueCount, &[]),
];

fn entity_join(keys: &Keys, left: J, windows: &[W], mutations: bool, accuracy: i64) -> J {
    let gb = conf::group_by(
        "test.entity.v1",
        vec![conf::entities_source(
            "data.entity",
            mutations.then_some("data.entity_mutations"),
            &[keys.right(), "val"],
            Some("ts"),
        )],
        &[keys.right()],
        Some(aggs(ENTITY_OPS, windows)),
        Some(accuracy),
    );
    conf::join("test.matrix.v1", left, vec![keys.part(gb)])
}

// ------------------------------------------------------------------------------------------
// The cells
// ------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    /// Events × Events TEMPORAL, SUM and COUNT: `floor(q − W, hop(W)) ≤ ts < q`.
    #[test]
    fn events_events_temporal_sum_count(
        keys in keys(),
        windows in temporal_windows(),
        left in prop::collection::vec(left_spec(), 1..12),
        evs in prop::collection::vec(ev_spec(), 0..40),
    ) {
        events_events(keys, windows, left, evs, SUM_COUNT, 0)?;
    }

    /// Events × Events SNAPSHOT, SUM and COUNT: `T − W ≤ ts < T`, T = the left ts's day start.
    #[test]
    fn events_events_snapshot_sum_count(
        keys in keys(),
        windows in snapshot_windows(),
        left in prop::collection::vec(left_spec(), 1..12),
        evs in prop::collection::vec(ev_spec(), 0..40),
    ) {
        events_events(keys, windows, left, evs, SUM_COUNT, 1)?;
    }

    /// Events × Events TEMPORAL with AVERAGE, MAX, LAST, LAST_K, UNIQUE_COUNT.
    #[test]
    fn events_events_temporal_ops(
        keys in keys(),
        windows in temporal_windows(),
        left in prop::collection::vec(left_spec(), 1..12),
        evs in prop::collection::vec(ev_spec(), 0..40),
    ) {
        events_events(keys, windows, left, evs, EVENT_OPS, 0)?;
    }

    /// Events × Events SNAPSHOT with AVERAGE, MAX, LAST, LAST_K, UNIQUE_COUNT.
    #[test]
    fn events_events_snapshot_ops(
        keys in keys(),
        windows in snapshot_windows(),
        left in prop::collection::vec(left_spec(), 1..12),
        evs in prop::collection::vec(ev_spec(), 0..40),
    ) {
        events_events(keys, windows, left, evs, EVENT_OPS, 1)?;
    }

    /// Events × Entities SNAPSHOT: snapshot partition `ts_ds − 1`, windows ending at `ts_ds`.
    #[test]
    fn events_entities_snapshot(
        keys in keys(),
        windows in snapshot_windows(),
        left in prop::collection::vec(left_spec(), 1..12),
        initial in initial_rows(),
        muts in mutations(),
    ) {
        let h = history(&initial, &muts);
        let anchors: Vec<i64> = h.mutations.iter().map(|m| m.4).collect();
        let lrows = left_rows(&left, &anchors);
        let (snap, _) = entity_tables(&keys, &h);
        let mut db = Db::default();
        db.add("data.left", left_table(&keys, &lrows));
        db.add("data.entity", snap);
        let join = entity_join(&keys, conf::events_left("data.left", &["row_id", "user"]), &windows, false, 1);
        check(&join, &db, &Run::through(&day(5))).map_err(TestCaseError::fail)?;
    }

    /// Events × Entities TEMPORAL: snapshot `ts_ds − 1` plus that day's mutations with
    /// `mutation_ts < q`; `is_before` rows delete for COUNT/SUM/AVERAGE only.
    #[test]
    fn events_entities_temporal(
        keys in keys(),
        windows in prop::sample::subsequence(vec![W::Hours(1), W::Hours(12), W::Days(1), W::Days(2), W::Unbounded], 1..=3),
        left in prop::collection::vec(left_spec(), 1..12),
        initial in initial_rows(),
        muts in mutations(),
    ) {
        let h = history(&initial, &muts);
        let anchors: Vec<i64> = h.mutations.iter().map(|m| m.4).collect();
        let lrows = left_rows(&left, &anchors);
        let (snap, mutations) = entity_tables(&keys, &h);
        let mut db = Db::default();
        db.add("data.left", left_table(&keys, &lrows));
        db.add("data.entity", snap);
        db.add("data.entity_mutations", mutations);
        let join = entity_join(&keys, conf::events_left("data.left", &["row_id", "user"]), &windows, true, 0);
        check(&join, &db, &Run::through(&day(5))).map_err(TestCaseError::fail)?;
    }

    /// Entities left × Entities: the right snapshot of the same ds.
    #[test]
    fn entities_entities(
        keys in keys(),
        windows in snapshot_windows(),
        left in prop::collection::vec(left_spec(), 1..12),
        initial in initial_rows(),
        muts in mutations(),
        accuracy in 0i64..=1,
    ) {
        let h = history(&initial, &muts);
        let lrows = left_rows(&left, &[]);
        let (snap, mutations) = entity_tables(&keys, &h);
        let mut db = Db::default();
        db.add("data.left", entity_left_table(&keys, &lrows));
        db.add("data.entity", snap);
        db.add("data.entity_mutations", mutations);
        let join = entity_join(&keys, conf::entities_left("data.left", &["row_id", "user"]), &windows, accuracy == 0, accuracy);
        check(&join, &db, &Run::through(&day(5))).map_err(TestCaseError::fail)?;
    }

    /// Entities left × Events: events up to the end of the left's day.
    #[test]
    fn entities_events(
        keys in keys(),
        windows in snapshot_windows(),
        left in prop::collection::vec(left_spec(), 1..12),
        evs in prop::collection::vec(ev_spec(), 0..40),
        accuracy in 0i64..=1,
    ) {
        let lrows = left_rows(&left, &[]);
        // anchors use the left rows' day ends (the query time of an entity left)
        let anchored: Vec<LeftRow> = lrows
            .iter()
            .map(|r| LeftRow { ts: ds_start(&r.ds) + DAY, ..r.clone() })
            .collect();
        let evs = events(&evs, &anchored, &windows);
        let mut db = Db::default();
        db.add("data.left", entity_left_table(&keys, &lrows));
        db.add("data.events", event_table(&keys, &evs));
        let gb = conf::group_by(
            "test.events.v1",
            vec![conf::events_source("data.events", &[keys.right(), "val"], Some("ts"))],
            &[keys.right()],
            Some(aggs(&[(Op::Sum, &[]), (Op::Count, &[]), (Op::Average, &[]), (Op::Last, &[])], &windows)),
            Some(accuracy),
        );
        let join = conf::join(
            "test.matrix.v1",
            conf::entities_left("data.left", &["row_id", "user"]),
            vec![keys.part(gb)],
        );
        check(&join, &db, &Run::through(&day(5))).map_err(TestCaseError::fail)?;
    }
}

/// The edges the generators aim at, checked once by hand so the reference's rules are pinned:
/// an event at exactly q is excluded, one at the tail start included, one 1 ms before excluded.
#[test]
fn reference_edges_by_hand() {
    let keys = Keys {
        strings: true,
        mapped: false,
        prefix: false,
    };
    let q = t0(3) + 10 * HOUR + 7 * MINUTE + 123;
    let w = W::Hours(1).millis().unwrap();
    let tail = reference::floor(q - w, hop(w));
    assert_eq!(tail, t0(3) + 9 * HOUR + 5 * MINUTE);
    let lrows = vec![LeftRow {
        ds: day(3),
        id: 0,
        key: Some(0),
        ts: q,
    }];
    let evs = vec![
        (ds_of(q), Some(0), Some(1), q),
        (ds_of(q), Some(0), Some(2), q - 1),
        (ds_of(q), Some(0), Some(4), tail),
        (ds_of(q), Some(0), Some(8), tail - 1),
        (ds_of(q), None, Some(16), q - 5),
        (ds_of(q), Some(0), None, q - 5),
    ];
    let mut db = Db::default();
    db.add("data.left", left_table(&keys, &lrows));
    db.add("data.events", event_table(&keys, &evs));
    let gb = conf::group_by(
        "test.events.v1",
        vec![conf::events_source(
            "data.events",
            &["user", "val"],
            Some("ts"),
        )],
        &["user"],
        Some(aggs(SUM_COUNT, &[W::Hours(1), W::Unbounded])),
        Some(0),
    );
    let join = conf::join(
        "test.matrix.v1",
        conf::events_left("data.left", &["row_id", "user"]),
        vec![keys.part(gb)],
    );
    let exp = reference::expected(&join, &db, &Run::through(&day(5)));
    let row = &exp.parts[&day(3)][0];
    let got: Vec<String> = row.feats.iter().map(|e| e.to_string()).collect();
    assert_eq!(
        exp.feat_cols,
        vec![
            "test_events_v1_val_sum_1h",
            "test_events_v1_val_sum",
            "test_events_v1_val_count_1h",
            "test_events_v1_val_count"
        ]
    );
    assert_eq!(got, vec!["6", "14", "2", "3"]);
    reference::harness::assert_ok(check(&join, &db, &Run::through(&day(5))));
}

/// Found by `events_events_temporal_sum_count`: a left row with a NULL key in partition day 2,
/// no left partition on day 3, and a keyed left row on day 4 — the day-4 row must still see
/// the events of days 2 and 3.
#[test]
fn null_key_left_row_before_a_missing_left_day() {
    let keys = Keys {
        strings: false,
        mapped: false,
        prefix: false,
    };
    let lrows = vec![
        LeftRow {
            ds: day(2),
            id: 0,
            key: None,
            ts: t0(2) + 5,
        },
        LeftRow {
            ds: day(4),
            id: 1,
            key: Some(0),
            ts: t0(4) + 7,
        },
    ];
    let evs = vec![
        (day(2), Some(0), Some(5), t0(2) + 1000),
        (day(3), Some(0), Some(7), t0(3) + 5000),
        (day(3), Some(0), Some(11), t0(4) - 1),
    ];
    let mut db = Db::default();
    db.add("data.left", left_table(&keys, &lrows));
    db.add("data.events", event_table(&keys, &evs));
    let gb = conf::group_by(
        "test.events.v1",
        vec![conf::events_source(
            "data.events",
            &["user", "val"],
            Some("ts"),
        )],
        &["user"],
        Some(aggs(SUM_COUNT, &[W::Days(2)])),
        Some(0),
    );
    let join = conf::join(
        "test.matrix.v1",
        conf::events_left("data.left", &["row_id", "user"]),
        vec![keys.part(gb)],
    );
    let exp = reference::expected(&join, &db, &Run::through(&day(5)));
    let got: Vec<String> = exp.parts[&day(4)][0]
        .feats
        .iter()
        .map(|e| e.to_string())
        .collect();
    assert_eq!(got, ["23", "3"]);
    reference::harness::assert_ok(check(&join, &db, &Run::through(&day(5))));
}
