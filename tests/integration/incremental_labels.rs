//! Incremental == recompute for label joins (chronon-semantics §7), through one `JoinRunner`:
//! after a feature backfill, label runs and deltas land in random order — a new `label_ds`
//! run, an entity snapshot landed, re-landed or dropped, label events of a day landed late
//! (a window maturing) or re-landed, a left day re-landed with other rows — and after every
//! delta (a) the label table equals a plain-Rust reference of §7.3–§7.5 and (b) the label
//! table and both labeled tables equal a fresh computation (feature backfill and every run
//! from scratch) over a copy of the inputs.

use crate::labelfix;
use crate::reference;

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use reference::conf::{self, W};
use reference::data;
use reference::{ds_shift, ds_start, Db, Op, Table, Ty, DAY, V};
use serde_json::{json, Value as J};
use weft::engine::Context;
use weft::engine::{JoinOptions, JoinRunner};
use weft::warehouse::Warehouse;

const BASE: &str = "2026-05-01";
/// Days with left rows: 0..LEFT_DAYS.
const LEFT_DAYS: i64 = 6;
const LEFT: &str = "data.views";
const FEATS: &str = "data.feats";
const SNAP: &str = "data.snap";
const EVENTS: &str = "data.label_events";
/// The aggregated label's window (days) = both offsets.
const WINDOW: i64 = 3;
/// The entity label's offsets.
const START: i64 = 4;
const END: i64 = 2;

fn day(i: i64) -> String {
    ds_shift(BASE, i)
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    /// Two entity labels (value and a second column) from `data.snap`.
    Entity,
    /// SUM(x) over WINDOW days from `data.label_events`.
    Aggregated,
}

/// One delta.
#[derive(Debug, Clone)]
enum Delta {
    /// A label run for day `i`.
    Run(i64),
    /// Snapshot of day `i` (re)landed with rows `(user, v)` (`seed` varies the values).
    Snapshot(i64, u64),
    DropSnapshot(i64),
    /// Label events of day `i` (re)landed.
    Events(i64, u64),
    /// Left day `i` re-landed with other rows.
    Left(i64, u64),
}

fn delta() -> impl Strategy<Value = Delta> {
    prop_oneof![
        3 => (2..10i64).prop_map(Delta::Run),
        2 => ((0..10i64), any::<u64>()).prop_map(|(i, s)| Delta::Snapshot(i, s)),
        1 => (0..10i64).prop_map(Delta::DropSnapshot),
        2 => ((0..10i64), any::<u64>()).prop_map(|(i, s)| Delta::Events(i, s)),
        1 => ((0..LEFT_DAYS), any::<u64>()).prop_map(|(i, s)| Delta::Left(i, s)),
    ]
}

/// A small deterministic generator (so the reference and weft see the same rows).
fn lcg(seed: u64) -> impl FnMut(u64) -> u64 {
    let mut s = seed ^ 0x9e37_79b9_7f4a_7c15;
    move |n| {
        s = s
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (s >> 33) % n
    }
}

fn left_rows(t: &mut Table, i: i64, seed: u64) {
    let ds = day(i);
    t.parts.remove(&ds);
    let mut r = lcg(seed);
    for _ in 0..(1 + r(4)) {
        let user = if r(8) == 0 {
            V::Null
        } else {
            V::Int(r(5) as i64)
        };
        t.push(
            &ds,
            vec![user, V::Int(ds_start(&ds) + r(DAY as u64) as i64)],
        );
    }
}

fn snapshot_rows(t: &mut Table, i: i64, seed: u64) {
    let ds = day(i);
    t.parts.remove(&ds);
    t.touch(&ds);
    let mut r = lcg(seed);
    for user in 0..5 {
        // some users are missing; a few have two rows (the reference accepts either)
        for _ in 0..[0, 1, 1, 1, 2][r(5) as usize] {
            t.push(
                &ds,
                vec![
                    V::Int(user),
                    V::Int(r(100) as i64),
                    V::s(["a", "b", "c"][r(3) as usize]),
                ],
            );
        }
    }
}

fn event_rows(t: &mut Table, i: i64, seed: u64) {
    let ds = day(i);
    t.parts.remove(&ds);
    t.touch(&ds);
    let mut r = lcg(seed);
    for _ in 0..r(5) {
        t.push(
            &ds,
            vec![
                V::Int(r(5) as i64),
                V::Int(1 + r(20) as i64),
                V::Int(ds_start(&ds) + r(DAY as u64) as i64),
            ],
        );
    }
}

fn world(kind: Kind) -> Db {
    let mut db = Db::default();
    let mut left = Table::new(&[("user", Ty::I64), ("ts", Ty::I64)]);
    for i in 0..LEFT_DAYS {
        left_rows(&mut left, i, i as u64 + 1);
    }
    db.add(LEFT, left);
    let mut feats = Table::new(&[("user", Ty::I64), ("amount", Ty::I64), ("ts", Ty::I64)]);
    for i in -1..LEFT_DAYS {
        for u in 0..5 {
            feats.push(
                &day(i),
                vec![
                    V::Int(u),
                    V::Int(u * 10 + i),
                    V::Int(ds_start(&day(i)) + 1000),
                ],
            );
        }
    }
    db.add(FEATS, feats);
    match kind {
        Kind::Entity => {
            let mut s = Table::new(&[("user", Ty::I64), ("v", Ty::I64), ("tier", Ty::Str)]);
            for i in [2, 4] {
                snapshot_rows(&mut s, i, i as u64 * 7);
            }
            db.add(SNAP, s);
        }
        Kind::Aggregated => {
            let mut e = Table::new(&[("user", Ty::I64), ("x", Ty::I64), ("ts", Ty::I64)]);
            for i in 0..4 {
                event_rows(&mut e, i, i as u64 * 11);
            }
            db.add(EVENTS, e);
        }
    }
    db
}

fn join(kind: Kind) -> J {
    let feature = conf::part(
        conf::group_by(
            "t.amounts",
            vec![conf::events_source(FEATS, &["user", "amount"], Some("ts"))],
            &["user"],
            Some(conf::aggs_for("amount", Op::Sum, &[W::Unbounded], &[])),
            None,
        ),
        &[],
        None,
    );
    let mut j = conf::join(
        "t.labels",
        conf::events_left(LEFT, &["user"]),
        vec![feature],
    );
    let (labels, start, end) = match kind {
        Kind::Entity => (
            vec![conf::part(
                conf::group_by(
                    "t.snap",
                    vec![conf::entities_source(
                        SNAP,
                        None,
                        &["user", "v", "tier"],
                        None,
                    )],
                    &["user"],
                    None,
                    None,
                ),
                &[],
                None,
            )],
            START,
            END,
        ),
        Kind::Aggregated => (
            vec![conf::part(
                conf::group_by(
                    "t.ev",
                    vec![conf::events_source(EVENTS, &["user", "x"], Some("ts"))],
                    &["user"],
                    Some(vec![conf::agg(
                        "x",
                        Op::Sum,
                        &[W::Days(WINDOW as _)],
                        &[],
                        &[],
                    )]),
                    None,
                ),
                &[],
                None,
            )],
            WINDOW,
            WINDOW,
        ),
    };
    j["labelPart"] = json!({"labels": labels, "leftStartOffset": start, "leftEndOffset": end});
    j
}

/// The label table by the reference: per run, per existing left day of its range, one row per
/// distinct user (NULL users included) with its label values, rendered like `table_rows`. A
/// user with several rows in the label snapshot may get any one of them (which one Chronon
/// keeps is left open): each expected row lists its acceptable renderings.
fn reference(kind: Kind, db: &Db, runs: &BTreeSet<i64>) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let left = db.table(LEFT);
    for &d in runs {
        let label_ds = day(d);
        let (s, e) = match kind {
            Kind::Entity => (START, END),
            Kind::Aggregated => (WINDOW, WINDOW),
        };
        for i in (d - (s - 1))..=(d - (e - 1)) {
            let ds = day(i);
            let Some(rows) = left.parts.get(&ds) else {
                continue;
            };
            let users: BTreeSet<Option<i64>> = rows.iter().map(|r| r[0].as_i64()).collect();
            for u in users {
                let mut cols: BTreeMap<String, V> = BTreeMap::new();
                cols.insert("ds".into(), V::s(&ds));
                cols.insert("label_ds".into(), V::s(&label_ds));
                cols.insert("user".into(), u.map_or(V::Null, V::Int));
                let mut alternatives: Vec<BTreeMap<String, V>> = Vec::new();
                match kind {
                    Kind::Entity => {
                        let snap = db.table(SNAP).parts.get(&label_ds);
                        let candidates: BTreeSet<(i64, String)> = u
                            .map(|u| {
                                snap.into_iter()
                                    .flatten()
                                    .filter(|r| r[0] == V::Int(u))
                                    .map(|r| (r[1].as_i64().unwrap(), r[2].key_string()))
                                    .collect()
                            })
                            .unwrap_or_default();
                        if candidates.is_empty() {
                            cols.insert("t_snap_v".into(), V::Null);
                            cols.insert("t_snap_tier".into(), V::Null);
                        }
                        for (v, tier) in candidates {
                            let mut c = cols.clone();
                            c.insert("t_snap_v".into(), V::Int(v));
                            c.insert("t_snap_tier".into(), V::Str(tier));
                            alternatives.push(c);
                        }
                    }
                    Kind::Aggregated => {
                        let lo = ds_start(&label_ds) + DAY - WINDOW * DAY;
                        let hi = ds_start(&label_ds) + DAY;
                        let xs: Vec<i64> = db
                            .table(EVENTS)
                            .parts
                            .values()
                            .flatten()
                            .filter(|r| u.is_some_and(|u| r[0] == V::Int(u)))
                            .filter(|r| (lo..hi).contains(&r[2].as_i64().unwrap()))
                            .map(|r| r[1].as_i64().unwrap())
                            .collect();
                        let sum = if xs.is_empty() {
                            V::Null
                        } else {
                            V::Int(xs.iter().sum())
                        };
                        cols.insert(format!("t_ev_x_sum_{WINDOW}d"), sum);
                    }
                }
                if alternatives.is_empty() {
                    alternatives.push(cols);
                }
                let render = |c: &BTreeMap<String, V>| {
                    c.iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                out.push(alternatives.iter().map(render).collect::<Vec<_>>());
            }
        }
    }
    out.sort();
    out
}

/// Whether `got` holds one row per expected row, each among its acceptable renderings.
fn matches_reference(got: &[String], want: &[Vec<String>]) -> Result<(), String> {
    if got.len() != want.len() {
        return Err(format!(
            "{} rows, the reference expects {}:\n got {got:#?}\n want {want:#?}",
            got.len(),
            want.len()
        ));
    }
    let mut unused: Vec<&String> = got.iter().collect();
    for alts in want {
        match unused.iter().position(|g| alts.contains(g)) {
            Some(i) => {
                unused.remove(i);
            }
            None => return Err(format!("no row is one of {alts:#?}\n got {got:#?}")),
        }
    }
    Ok(())
}

fn tables(j: &J) -> [String; 4] {
    [
        labelfix::table(j, "_labels"),
        labelfix::table(j, "_labeled"),
        labelfix::table(j, "_labeled_latest"),
        labelfix::table(j, ""),
    ]
}

fn contents(wh: &Warehouse, t: &str) -> Vec<String> {
    if !wh.exists(&data::tn(t)) {
        return vec![];
    }
    labelfix::table_rows(wh, t)
}

fn backfill(engine: &Context, r: &mut JoinRunner) {
    r.run(
        engine,
        &JoinOptions::through(data::ds(&day(LEFT_DAYS - 1))),
        &|_, _, _| {},
    )
    .unwrap_or_else(|e| panic!("feature backfill: {e}"));
}

/// From scratch over a copy of the inputs: feature backfill, then every run.
fn fresh(kind: Kind, db: &Db, runs: &BTreeSet<i64>) -> Vec<Vec<String>> {
    let dir = tempfile::tempdir().unwrap();
    let wh = Warehouse::open(dir.path()).unwrap();
    data::write_db(&wh, db);
    let engine = Context::new(&wh).unwrap();
    let j = join(kind);
    let mut r = JoinRunner::new(&conf::parse(&j)).unwrap();
    backfill(&engine, &mut r);
    for &d in runs {
        r.label(&engine, data::ds(&day(d)))
            .unwrap_or_else(|e| panic!("fresh label run: {e}"));
    }
    tables(&j).iter().map(|t| contents(&wh, t)).collect()
}

/// Whether the entity label table has no partition left.
fn no_label_table(kind: Kind, db: &Db) -> bool {
    matches!(kind, Kind::Entity) && db.table(SNAP).parts.is_empty()
}

/// A label run over a label table with no partitions fails, naming the table.
fn expect_missing_label_table(result: weft::error::Result<()>) {
    match result {
        Err(e) => assert!(
            e.to_string().contains(SNAP),
            "the error names the label table {SNAP}: {e}"
        ),
        Ok(()) => panic!("a label run over {SNAP} without partitions succeeded"),
    }
}

fn check(kind: Kind, deltas: Vec<Delta>) -> Result<(), TestCaseError> {
    let mut db = world(kind);
    let dir = tempfile::tempdir().unwrap();
    let wh = Warehouse::open(dir.path()).unwrap();
    data::write_db(&wh, &db);
    let engine = Context::new(&wh).unwrap();
    let j = join(kind);
    let mut runner = JoinRunner::new(&conf::parse(&j)).unwrap();
    backfill(&engine, &mut runner);
    let mut runs: BTreeSet<i64> = BTreeSet::new();
    // a first run, so later deltas reach something
    runs.insert(4);
    runner.label(&engine, data::ds(&day(4))).unwrap();
    for (step, d) in deltas.iter().enumerate() {
        match d {
            Delta::Run(i) => {
                let result = runner.label(&engine, data::ds(&day(*i)));
                if no_label_table(kind, &db) {
                    expect_missing_label_table(result.map(|_| ()));
                    continue;
                }
                result.unwrap_or_else(|e| panic!("label run: {e}"));
                runs.insert(*i);
            }
            other => {
                let (table, ds) = match (other.clone(), kind) {
                    (Delta::Snapshot(i, s), Kind::Entity) => {
                        snapshot_rows(db.table_mut(SNAP), i, s);
                        (SNAP, day(i))
                    }
                    (Delta::DropSnapshot(i), Kind::Entity) => {
                        db.table_mut(SNAP).parts.remove(&day(i));
                        (SNAP, day(i))
                    }
                    (Delta::Events(i, s), Kind::Aggregated) => {
                        event_rows(db.table_mut(EVENTS), i, s);
                        (EVENTS, day(i))
                    }
                    (Delta::Left(i, s), _) => {
                        left_rows(db.table_mut(LEFT), i, s);
                        (LEFT, day(i))
                    }
                    _ => continue,
                };
                if db.table(table).parts.contains_key(&ds) {
                    data::write_partition(&wh, &db, table, &ds);
                } else {
                    data::drop_partition(&wh, table, &ds);
                }
                engine.refresh().unwrap();
                if table == LEFT {
                    // the feature side first, as a materializer would
                    backfill(&engine, &mut runner);
                }
                let result = runner.refresh_labels(&engine);
                if no_label_table(kind, &db) {
                    // every snapshot removed: as if the table did not exist, which a fresh
                    // run cannot start without either; the runner must come back unharmed
                    expect_missing_label_table(result.map(|_| ()));
                    continue;
                }
                result.unwrap_or_else(|e| panic!("label refresh: {e}"));
            }
        }
        let got: Vec<Vec<String>> = tables(&j).iter().map(|t| contents(&wh, t)).collect();
        let want = reference(kind, &db, &runs);
        if let Err(e) = matches_reference(&got[0], &want) {
            return Err(TestCaseError::fail(format!(
                "label table vs reference after step {step} ({d:?}) of {deltas:?}: {e}"
            )));
        }
        let scratch = fresh(kind, &db, &runs);
        // the feature table first: the labeled tables are built from it
        for (k, name) in [
            (3, "feature table"),
            (0, "label table"),
            (1, "_labeled"),
            (2, "_labeled_latest"),
        ] {
            prop_assert_eq!(
                &got[k],
                &scratch[k],
                "{} incremental vs fresh after step {} ({:?}) of {:?}",
                name,
                step,
                d,
                deltas
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: crate::cases(None, 16),
        failure_persistence: crate::regressions_beside_suite(),
        ..ProptestConfig::default()
    })]

    #[test]
    fn entity_labels_incremental_equals_recompute(deltas in prop::collection::vec(delta(), 1..6)) {
        check(Kind::Entity, deltas)?;
    }

    #[test]
    fn aggregated_labels_incremental_equals_recompute(deltas in prop::collection::vec(delta(), 1..6)) {
        check(Kind::Aggregated, deltas)?;
    }
}

/// A window maturing, deterministically: the run for day 4 first sees no events of days 3
/// and 4; when they land, exactly the label partition of that run's left day is rewritten.
#[test]
fn a_maturing_window_rewrites_only_the_partition_it_reaches() {
    let mut db = world(Kind::Aggregated);
    let dir = tempfile::tempdir().unwrap();
    let wh = Warehouse::open(dir.path()).unwrap();
    data::write_db(&wh, &db);
    let engine = Context::new(&wh).unwrap();
    let j = join(Kind::Aggregated);
    let mut runner = JoinRunner::new(&conf::parse(&j)).unwrap();
    backfill(&engine, &mut runner);
    let first = runner.label(&engine, data::ds(&day(3))).unwrap();
    let second = runner.label(&engine, data::ds(&day(4))).unwrap();
    assert_eq!(first.written, vec![(data::ds(&day(3)), data::ds(&day(1)))]);
    assert_eq!(second.written, vec![(data::ds(&day(4)), data::ds(&day(2)))]);
    assert!(
        second
            .missing_sources
            .iter()
            .any(|(t, days)| t == EVENTS && days == &vec![data::ds(&day(4))]),
        "{:?}",
        second.missing_sources
    );
    // day 4's events land: they reach run 4 only (run 3's window ends with day 3)
    event_rows(db.table_mut(EVENTS), 4, 99);
    for u in 0..5 {
        db.table_mut(EVENTS).push(
            &day(4),
            vec![V::Int(u), V::Int(7), V::Int(ds_start(&day(4)) + 5)],
        );
    }
    // no engine.refresh(): a runner must see partitions landed after its engine was made
    data::write_partition(&wh, &db, EVENTS, &day(4));
    let third = runner.refresh_labels(&engine).unwrap();
    assert_eq!(third.written, vec![(data::ds(&day(4)), data::ds(&day(2)))]);
    let runs: BTreeSet<i64> = [3, 4].into();
    matches_reference(
        &contents(&wh, &tables(&j)[0]),
        &reference(Kind::Aggregated, &db, &runs),
    )
    .unwrap();
    // nothing changed: nothing is rewritten
    let fourth = runner.refresh_labels(&engine).unwrap();
    assert!(
        fourth.written.is_empty() && fourth.labeled_written.is_empty(),
        "{fourth:?}"
    );
}

/// Labels do not depend on the number of dataflow workers.
#[test]
fn three_workers_write_the_same_labels_as_one() {
    let mut out = Vec::new();
    for (kind, workers) in [
        (Kind::Entity, 1),
        (Kind::Entity, 3),
        (Kind::Aggregated, 1),
        (Kind::Aggregated, 3),
    ] {
        let db = world(kind);
        let dir = tempfile::tempdir().unwrap();
        let wh = Warehouse::open(dir.path()).unwrap();
        data::write_db(&wh, &db);
        let engine = Context::with_workers(&wh, workers).unwrap();
        let j = join(kind);
        let mut runner = JoinRunner::new(&conf::parse(&j)).unwrap();
        let opts = JoinOptions::through(data::ds(&day(LEFT_DAYS - 1)));
        runner.run(&engine, &opts, &|_, _, _| {}).unwrap();
        for d in 2..8 {
            runner.label(&engine, data::ds(&day(d))).unwrap();
        }
        let got: Vec<Vec<String>> = tables(&j).iter().map(|t| contents(&wh, t)).collect();
        assert!(!got[0].is_empty());
        out.push(got);
    }
    assert_eq!(out[0], out[1], "entity labels, 1 vs 3 workers");
    assert_eq!(out[2], out[3], "aggregated labels, 1 vs 3 workers");
}
