//! GroupBy backfill tables (chronon-semantics §2.8): `(keys…, values…, ds=D)` per key, as of
//! the end of day `D`, computed by the join dataflow. Each test compares weft's table with a
//! naive reference written here from the spec: events count when `E − W ≤ ts < E` with
//! `E = (D+1) 00:00` (all `ts < E` for unbounded windows) and a row whose values are all NULL
//! is dropped; entity GroupBys aggregate snapshot `D` (every key of the snapshot is kept);
//! GroupBys without aggregations return the snapshot's rows; derivations apply (Chronon's
//! DerivationTest `testGroupByDerivations`). Also: steps and workers do not change the
//! output, existing partitions and the first hole are skipped, a missing
//! `backfillStartDate` is a config error, and every GroupBy in `dataflows/` runs on the demo
//! warehouse.

use crate::reference;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{json, Value as J};
use weft::config::{load_conf, parse_conf, Conf, GroupBy};
use weft::engine::Context;
use weft::engine::{backfill_group_by, GroupByOptions, GroupByReport};
use weft::warehouse::Warehouse;

use reference::conf::{self, W};
use reference::data::{self, Actual};
use reference::{aggregate, ds_shift, ds_start, Db, Input, Lcg, Op, Table, Ty, DAY, E, HOUR, V};

// ------------------------------------------------------------------------------------------
// Running
// ------------------------------------------------------------------------------------------

/// A compiled GroupBy writing to namespace `test`, backfilled from `start` when given.
fn gb_json(
    name: &str,
    sources: Vec<J>,
    aggs: Option<Vec<J>>,
    accuracy: Option<i64>,
    start: Option<&str>,
) -> J {
    let mut g = conf::group_by(name, sources, &["user_id"], aggs, accuracy);
    g["metaData"]["outputNamespace"] = json!("test");
    g["metaData"]["tableProperties"] = json!({"source": "chronon"});
    if let Some(s) = start {
        g["backfillStartDate"] = json!(s);
    }
    g
}

/// Parses the JSON as weft does for a file under `group_bys/`.
fn parse(g: &J) -> GroupBy {
    let text = serde_json::to_string_pretty(g).unwrap();
    let name = g["metaData"]["name"].as_str().unwrap();
    match parse_conf(Path::new(&format!("production/group_bys/{name}")), &text)
        .unwrap_or_else(|e| panic!("weft rejects the test config: {e}\n{text}"))
    {
        Conf::GroupBy(g) => *g,
        _ => panic!("not a GroupBy"),
    }
}

fn output_table(g: &J) -> String {
    format!(
        "test.{}",
        reference::sanitize(g["metaData"]["name"].as_str().unwrap())
    )
}

fn run(
    wh: &Warehouse,
    g: &J,
    start: Option<&str>,
    end: &str,
    step_days: usize,
    workers: usize,
) -> weft::Result<GroupByReport> {
    let engine = Context::with_workers(wh, workers)?;
    backfill_group_by(
        &engine,
        &parse(g),
        &GroupByOptions {
            start: start.map(data::ds),
            end: data::ds(end),
            step_days,
            verify_existing: false,
        },
        &|_, _, _| {},
    )
}

fn warehouse(db: &Db) -> (tempfile::TempDir, Warehouse) {
    reference::harness::warehouse(db)
}

// ------------------------------------------------------------------------------------------
// The reference
// ------------------------------------------------------------------------------------------

/// One output column: `input`, `op`, window (`None` = unbounded).
#[derive(Clone)]
struct Col {
    name: String,
    input: &'static str,
    op: Op,
    window: Option<i64>,
}

fn col(name: &str, input: &'static str, op: Op, window: Option<i64>) -> Col {
    Col {
        name: name.to_string(),
        input,
        op,
        window,
    }
}

/// Expected rows of one day: key → one expectation per column (several rows per key for
/// GroupBys without aggregations).
type Day = BTreeMap<String, Vec<Vec<E>>>;

/// Every row of a table with its partition.
fn rows(t: &Table) -> Vec<(String, &Vec<V>)> {
    t.parts
        .iter()
        .flat_map(|(ds, rs)| rs.iter().map(move |r| (ds.clone(), r)))
        .collect()
}

fn get<'a>(t: &Table, row: &'a [V], c: &str) -> &'a V {
    &row[t.col(c).unwrap_or_else(|| panic!("no column {c}"))]
}

fn key_of(t: &Table, row: &[V]) -> Option<String> {
    match get(t, row, "user_id") {
        V::Str(s) => Some(s.clone()),
        V::Null => None,
        other => panic!("key {other}"),
    }
}

/// An event GroupBy on day `d`: keys with an event that a window ending at `E` reaches, each
/// column over `E − W ≤ ts < E`; rows whose values are all NULL are dropped (and counted).
fn events_day(t: &Table, cols: &[Col], d: &str) -> (Day, usize) {
    let end = ds_start(d) + DAY;
    let reach = cols.iter().try_fold(0, |m, c| c.window.map(|w| w.max(m)));
    let mut by_key: BTreeMap<String, Vec<&Vec<V>>> = BTreeMap::new();
    for (_, r) in rows(t) {
        if let Some(k) = key_of(t, r) {
            by_key.entry(k).or_default().push(r);
        }
    }
    let mut out = Day::new();
    let mut dropped = 0;
    for (k, rs) in by_key {
        let ts = |r: &Vec<V>| get(t, r, "ts").as_i64().unwrap();
        if !rs
            .iter()
            .any(|r| ts(r) < end && reach.is_none_or(|w| ts(r) >= end - w))
        {
            continue;
        }
        let values: Vec<E> = cols
            .iter()
            .map(|c| {
                let inputs: Vec<Input> = rs
                    .iter()
                    .filter(|r| ts(r) < end && c.window.is_none_or(|w| ts(r) >= end - w))
                    .map(|r| Input {
                        ts: ts(r),
                        v: get(t, r, c.input).clone(),
                        delete: false,
                    })
                    .collect();
                aggregate(c.op, &BTreeMap::new(), &inputs)
            })
            .collect();
        if values.iter().all(|e| matches!(e, E::Is(V::Null))) {
            dropped += 1;
        } else {
            out.insert(k, vec![values]);
        }
    }
    (out, dropped)
}

/// An entity GroupBy on day `d`: the keys of snapshot `d`, windowed columns over
/// `E − W ≤ ts < E`, unbounded ones over the whole snapshot. No row is dropped.
fn snapshot_day(t: &Table, cols: &[Col], d: &str) -> Day {
    let end = ds_start(d) + DAY;
    let mut by_key: BTreeMap<String, Vec<&Vec<V>>> = BTreeMap::new();
    for r in t.parts.get(d).into_iter().flatten() {
        if let Some(k) = key_of(t, r) {
            by_key.entry(k).or_default().push(r);
        }
    }
    by_key
        .into_iter()
        .map(|(k, rs)| {
            let values = cols
                .iter()
                .map(|c| {
                    let inputs: Vec<Input> = rs
                        .iter()
                        .filter(|r| {
                            c.window.is_none_or(|w| {
                                let ts = get(t, r, "ts").as_i64().unwrap();
                                ts >= end - w && ts < end
                            })
                        })
                        .map(|r| Input {
                            ts: get(t, r, "ts").as_i64().unwrap_or(end - 1),
                            v: get(t, r, c.input).clone(),
                            delete: false,
                        })
                        .collect();
                    aggregate(c.op, &BTreeMap::new(), &inputs)
                })
                .collect();
            (k, vec![values])
        })
        .collect()
}

/// Checks one output partition: columns `user_id` then `values`, rows ordered by key, each
/// value as expected.
fn check_day(act: &Actual, d: &str, values: &[String], exp: &Day) {
    let Some((cols, rows)) = act.parts.get(d) else {
        panic!("no output partition {d}; have {:?}", act.parts.keys())
    };
    let mut want_cols = vec!["user_id".to_string()];
    want_cols.extend(values.iter().cloned());
    assert_eq!(cols, &want_cols, "columns of {d}");
    let keys: Vec<String> = rows.iter().map(|r| r[0].to_string()).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "{d}: rows are ordered by key");
    let mut got: BTreeMap<String, Vec<&[V]>> = BTreeMap::new();
    for r in rows {
        let V::Str(k) = &r[0] else {
            panic!("{d}: key {}", r[0])
        };
        got.entry(k.clone()).or_default().push(&r[1..]);
    }
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        exp.keys().collect::<Vec<_>>(),
        "{d}: keys"
    );
    for (k, want) in exp {
        let have = &got[k];
        assert_eq!(have.len(), want.len(), "{d} {k}: rows");
        for (h, w) in have.iter().zip(want) {
            for ((name, e), a) in values.iter().zip(w).zip(h.iter()) {
                assert!(
                    e.matches(a),
                    "{d} key {k} column {name}: expected {e}, got {a}"
                );
            }
        }
    }
}

// ------------------------------------------------------------------------------------------
// Test data
// ------------------------------------------------------------------------------------------

/// `days` days of purchases from 2026-01-01: users u0..u5 buy at random times, some amounts
/// NULL; `nulls` only has NULL amounts; `early` buys on day 2 only; events at exact
/// midnights and window edges; one row with a NULL key.
fn purchases(days: i64) -> Db {
    let mut t = Table::new(&[("user_id", Ty::Str), ("amount", Ty::I64), ("ts", Ty::I64)]);
    let mut rng = Lcg(7);
    for i in 0..days {
        let ds = ds_shift(START, i);
        let day = ds_start(&ds);
        t.touch(&ds);
        for u in 0..6 {
            for _ in 0..rng.next(4) {
                let ts = day + rng.next(DAY as u64) as i64;
                let amount = if rng.next(8) == 0 {
                    V::Null
                } else {
                    V::Int(1 + rng.next(100) as i64)
                };
                t.push(&ds, vec![V::s(&format!("u{u}")), amount, V::Int(ts)]);
            }
        }
        // exactly at midnight: in day `ds`'s windows ending after it, never before
        t.push(&ds, vec![V::s("u0"), V::Int(1000 + i), V::Int(day)]);
        // one millisecond before the next midnight
        t.push(
            &ds,
            vec![V::s("u1"), V::Int(2000 + i), V::Int(day + DAY - 1)],
        );
        if i % 3 == 0 {
            t.push(&ds, vec![V::s("nulls"), V::Null, V::Int(day + 5 * HOUR)]);
        }
        if i == 1 {
            t.push(&ds, vec![V::s("early"), V::Int(77), V::Int(day + HOUR)]);
        }
        t.push(&ds, vec![V::Null, V::Int(5), V::Int(day + 2 * HOUR)]);
    }
    let mut db = Db::default();
    db.add("data.purchases", t);
    db
}

const START: &str = "2026-01-01";

fn purchase_source() -> J {
    conf::events_source("data.purchases", &["user_id", "amount", "ts"], Some("ts"))
}

/// SUM over 1d, 7d and unbounded, COUNT over 1d and 7d, MAX unbounded, AVERAGE and LAST
/// over 7d.
fn windowed_aggs(unbounded: bool) -> (Vec<J>, Vec<Col>) {
    let d = |n| Some(n * DAY);
    let mut windows = vec![W::Days(1), W::Days(7)];
    if unbounded {
        windows.push(W::Unbounded);
    }
    let mut aggs = conf::aggs_for("amount", Op::Sum, &windows, &[]);
    aggs.extend(conf::aggs_for(
        "amount",
        Op::Count,
        &[W::Days(1), W::Days(7)],
        &[],
    ));
    let mut cols = vec![
        col("amount_sum_1d", "amount", Op::Sum, d(1)),
        col("amount_sum_7d", "amount", Op::Sum, d(7)),
    ];
    if unbounded {
        cols.push(col("amount_sum", "amount", Op::Sum, None));
    }
    cols.extend([
        col("amount_count_1d", "amount", Op::Count, d(1)),
        col("amount_count_7d", "amount", Op::Count, d(7)),
    ]);
    if unbounded {
        aggs.extend(conf::aggs_for("amount", Op::Max, &[W::Unbounded], &[]));
        cols.push(col("amount_max", "amount", Op::Max, None));
    }
    aggs.extend(conf::aggs_for("amount", Op::Average, &[W::Days(7)], &[]));
    aggs.extend(conf::aggs_for("amount", Op::Last, &[W::Days(7)], &[]));
    cols.extend([
        col("amount_average_7d", "amount", Op::Average, d(7)),
        col("amount_last_7d", "amount", Op::Last, d(7)),
    ]);
    (aggs, cols)
}

fn names(cols: &[Col]) -> Vec<String> {
    cols.iter().map(|c| c.name.clone()).collect()
}

// ------------------------------------------------------------------------------------------
// Tests
// ------------------------------------------------------------------------------------------

#[test]
fn event_group_by_windows_match_the_reference_for_any_steps_and_workers() {
    let db = purchases(16);
    let t = db.table("data.purchases");
    let end = ds_shift(START, 13); // partitions after the end hold events the end must not see
    for (accuracy, unbounded) in [(Some(1), true), (Some(0), true), (Some(1), false)] {
        let (aggs, cols) = windowed_aggs(unbounded);
        let g = gb_json(
            "test.purchases.v1",
            vec![purchase_source()],
            Some(aggs),
            accuracy,
            Some(START),
        );
        let mut outputs: Vec<Actual> = Vec::new();
        for (step, workers) in [(30, 1), (1, 2), (4, 3)] {
            let (_dir, wh) = warehouse(&db);
            let r = run(&wh, &g, None, &end, step, workers).unwrap();
            let act = data::read_table(&wh, &output_table(&g));
            let mut dropped = 0;
            let mut rows = 0;
            for i in 0..14 {
                let d = ds_shift(START, i);
                let (exp, n) = events_day(t, &cols, &d);
                dropped += n;
                rows += exp.values().map(Vec::len).sum::<usize>();
                check_day(&act, &d, &names(&cols), &exp);
            }
            assert_eq!(r.written.len(), 14);
            assert_eq!(act.parts.len(), 14, "no partition after the end");
            assert_eq!(r.rows as usize, rows);
            assert_eq!(r.dropped_all_null as usize, dropped, "all-NULL rows");
            assert!(dropped > 0, "the data has keys whose values are all NULL");
            assert_eq!(
                r.source.null_keys, 15,
                "rows with a NULL key (partitions through end + 1) are counted"
            );
            // a key that bought once is kept by an unbounded window, dropped after 7 days
            // otherwise
            let late = &act.parts[&ds_shift(START, 12)].1;
            let early = late.iter().any(|r| r[0] == V::s("early"));
            assert_eq!(early, unbounded);
            let props = wh.properties(&data::tn(&output_table(&g))).unwrap();
            assert_eq!(props["chronon_table_type"], "group_by");
            assert_eq!(props["source"], "chronon");
            outputs.push(act);
        }
        assert_eq!(outputs[0], outputs[1], "1-day steps, 2 workers");
        assert_eq!(outputs[0], outputs[2], "4-day steps, 3 workers");
    }
}

#[test]
fn existing_partitions_and_the_first_hole_are_skipped() {
    let db = purchases(10);
    let (aggs, _) = windowed_aggs(true);
    let g = gb_json(
        "test.purchases.v1",
        vec![purchase_source()],
        Some(aggs),
        Some(1),
        Some(START),
    );
    let (_dir, wh) = warehouse(&db);
    let end = ds_shift(START, 9);
    // first run from day 3: days 0–2 are then a first hole
    let r = run(&wh, &g, Some(&ds_shift(START, 3)), &end, 30, 1).unwrap();
    assert_eq!(r.written.len(), 7);
    let before = data::read_table(&wh, &output_table(&g));
    let r = run(&wh, &g, None, &end, 30, 1).unwrap();
    assert!(r.written.is_empty(), "{:?}", r.written);
    assert_eq!(r.skipped_existing, 10);
    // a missing middle partition is recomputed, identically
    data::drop_partition(&wh, &output_table(&g), &ds_shift(START, 6));
    let r = run(&wh, &g, None, &end, 30, 1).unwrap();
    assert_eq!(r.written, vec![data::ds(&ds_shift(START, 6))]);
    assert_eq!(data::read_table(&wh, &output_table(&g)), before);
}

#[test]
fn entity_group_by_aggregates_snapshot_d() {
    let mut t = Table::new(&[("user_id", Ty::Str), ("score", Ty::I64), ("ts", Ty::I64)]);
    let mut rng = Lcg(11);
    for i in 0..6 {
        let ds = ds_shift(START, i);
        let day = ds_start(&ds);
        for u in 0..4 {
            if (u + i) % 5 == 4 {
                continue; // not in this snapshot
            }
            for _ in 0..1 + rng.next(3) {
                // updated up to 3 days before the snapshot, or on its day
                let ts = day - rng.next(3) as i64 * DAY + rng.next(DAY as u64) as i64;
                t.push(
                    &ds,
                    vec![
                        V::s(&format!("u{u}")),
                        V::Int(rng.next(50) as i64),
                        V::Int(ts),
                    ],
                );
            }
        }
        // in every snapshot with a NULL score only: kept, with NULL values
        t.push(&ds, vec![V::s("blank"), V::Null, V::Int(day)]);
    }
    let mut db = Db::default();
    db.add("data.users", t);
    let src = conf::entities_source("data.users", None, &["user_id", "score", "ts"], Some("ts"));
    let mut aggs = conf::aggs_for("score", Op::Sum, &[W::Unbounded], &[]);
    aggs.extend(conf::aggs_for("score", Op::Count, &[W::Days(2)], &[]));
    aggs.extend(conf::aggs_for("score", Op::Last, &[W::Unbounded], &[]));
    let cols = vec![
        col("score_sum", "score", Op::Sum, None),
        col("score_count_2d", "score", Op::Count, Some(2 * DAY)),
        col("score_last", "score", Op::Last, None),
    ];
    let g = gb_json("test.users.v1", vec![src], Some(aggs), None, Some(START));
    let (_dir, wh) = warehouse(&db);
    let end = ds_shift(START, 5);
    let r = run(&wh, &g, None, &end, 2, 2).unwrap();
    assert_eq!(r.written.len(), 6);
    assert_eq!(r.dropped_all_null, 0);
    let act = data::read_table(&wh, &output_table(&g));
    let t = db.table("data.users");
    for i in 0..6 {
        let d = ds_shift(START, i);
        let exp = snapshot_day(t, &cols, &d);
        assert!(exp.contains_key("blank"));
        check_day(&act, &d, &names(&cols), &exp);
    }
}

#[test]
fn group_by_without_aggregations_returns_the_snapshot_rows() {
    let mut t = Table::new(&[
        ("user_id", Ty::Str),
        ("country", Ty::Str),
        ("age", Ty::I32),
        ("ignored", Ty::I64),
    ]);
    for i in 0..3 {
        let ds = ds_shift(START, i);
        t.push(&ds, vec![V::s("b"), V::s("FR"), V::Int(30 + i), V::Int(1)]);
        t.push(&ds, vec![V::s("a"), V::Null, V::Int(20), V::Int(2)]);
        if i == 1 {
            // two rows for one key: both are output, as-is
            t.push(&ds, vec![V::s("a"), V::s("DE"), V::Null, V::Int(3)]);
        }
    }
    let mut db = Db::default();
    db.add("data.users", t);
    let src = conf::entities_source("data.users", None, &["user_id", "country", "age"], None);
    let g = gb_json("test.users.raw", vec![src], None, None, Some(START));
    let (_dir, wh) = warehouse(&db);
    let r = run(&wh, &g, None, &ds_shift(START, 2), 30, 1).unwrap();
    assert_eq!(r.written.len(), 3);
    let act = data::read_table(&wh, &output_table(&g));
    let t = db.table("data.users");
    for i in 0..3 {
        let d = ds_shift(START, i);
        let mut exp = Day::new();
        for r in &t.parts[&d] {
            exp.entry(key_of(t, r).unwrap()).or_default().push(
                ["country", "age"]
                    .iter()
                    .map(|c| E::Is(get(t, r, c).clone()))
                    .collect(),
            );
        }
        // rows of one key come in value order
        for rows in exp.values_mut() {
            rows.sort_by_key(|r| format!("{r:?}"));
        }
        let mut act_sorted = act.clone();
        for (_, rows) in act_sorted.parts.values_mut() {
            rows.sort_by_key(|r| format!("{r:?}"));
        }
        check_day(&act_sorted, &d, &["country".into(), "age".into()], &exp);
    }
    assert_eq!(act.parts[&ds_shift(START, 1)].1.len(), 3);
}

/// Chronon's DerivationTest `testGroupByDerivations`: the derivations are applied to the
/// GroupBy's backfill table (keys kept, `*` expanded in place, a renamed column gone).
#[test]
fn derivations_are_applied_to_the_backfill_table() {
    let db = purchases(12);
    let today = ds_shift(START, 11);
    let mut aggs = conf::aggs_for("amount", Op::Sum, &[W::Days(10)], &[]);
    aggs.extend(conf::aggs_for("amount", Op::Count, &[W::Days(10)], &[]));
    let mut g = gb_json(
        "unit_test.user_transactions",
        vec![purchase_source()],
        Some(aggs),
        None,
        Some(&today),
    );
    g["derivations"] = json!([
        {"name": "*", "expression": "*"},
        {"name": "amount_dollars_sum_10d", "expression": "CAST(amount_sum_10d AS DOUBLE) / 100"},
        {"name": "txn_count_10d", "expression": "amount_count_10d"},
    ]);
    let (_dir, wh) = warehouse(&db);
    let r = run(&wh, &g, None, &today, 30, 1).unwrap();
    assert_eq!(
        r.written,
        vec![data::ds(&today)],
        "backfillStartDate = today"
    );
    let act = data::read_table(&wh, &output_table(&g));
    let cols = vec![
        col("amount_sum_10d", "amount", Op::Sum, Some(10 * DAY)),
        col("amount_count_10d", "amount", Op::Count, Some(10 * DAY)),
    ];
    let (base, _) = events_day(db.table("data.purchases"), &cols, &today);
    let exp: Day = base
        .into_iter()
        .map(|(k, rows)| {
            let v = &rows[0];
            let E::Is(sum) = &v[0] else { panic!() };
            let dollars = match sum {
                V::Int(s) => E::Is(V::Float(*s as f64 / 100.0)),
                _ => E::Is(V::Null),
            };
            (k, vec![vec![v[0].clone(), dollars, v[1].clone()]])
        })
        .collect();
    check_day(
        &act,
        &today,
        &[
            "amount_sum_10d".into(),
            "amount_dollars_sum_10d".into(),
            "txn_count_10d".into(),
        ],
        &exp,
    );
}

#[test]
fn rows_whose_values_are_all_null_are_dropped() {
    let mut t = Table::new(&[("user_id", Ty::Str), ("amount", Ty::I64), ("ts", Ty::I64)]);
    for i in 0..4 {
        let ds = ds_shift(START, i);
        let day = ds_start(&ds);
        t.push(&ds, vec![V::s("a"), V::Null, V::Int(day + HOUR)]);
        t.push(&ds, vec![V::s("b"), V::Int(i), V::Int(day + HOUR)]);
        if i == 0 {
            t.push(&ds, vec![V::s("c"), V::Int(9), V::Int(day + HOUR)]);
        }
    }
    let mut db = Db::default();
    db.add("data.purchases", t);
    let g = gb_json(
        "test.nulls.v1",
        vec![purchase_source()],
        Some(conf::aggs_for("amount", Op::Sum, &[W::Days(2)], &[])),
        Some(1),
        Some(START),
    );
    let (_dir, wh) = warehouse(&db);
    let r = run(&wh, &g, None, &ds_shift(START, 3), 30, 1).unwrap();
    let act = data::read_table(&wh, &output_table(&g));
    let keys = |i: i64| -> Vec<String> {
        act.parts[&ds_shift(START, i)]
            .1
            .iter()
            .map(|r| r[0].to_string())
            .collect()
    };
    // `a` only has NULL amounts: never a row; `c` leaves once its event is out of the window
    assert_eq!(keys(0), ["\"b\"", "\"c\""]);
    assert_eq!(keys(1), ["\"b\"", "\"c\""]);
    assert_eq!(keys(2), ["\"b\""]);
    assert_eq!(keys(3), ["\"b\""]);
    assert_eq!(r.dropped_all_null, 4, "`a` on each of the 4 days");
    assert_eq!(r.rows, 6);
}

#[test]
fn a_missing_backfill_start_date_is_a_config_error() {
    let db = purchases(3);
    let aggs = conf::aggs_for("amount", Op::Sum, &[W::Days(1)], &[]);
    let g = gb_json(
        "test.nostart.v1",
        vec![purchase_source()],
        Some(aggs),
        Some(1),
        None,
    );
    let (_dir, wh) = warehouse(&db);
    let end = ds_shift(START, 2);
    let e = run(&wh, &g, None, &end, 30, 1).unwrap_err().to_string();
    assert!(
        e.contains("test.nostart.v1")
            && e.contains("backfillStartDate")
            && e.contains("--start-ds"),
        "{e}"
    );
    // --start-ds is enough
    let r = run(&wh, &g, Some(START), &end, 30, 1).unwrap();
    assert_eq!(r.written.len(), 3);
    // historicalBackfill: false computes only the end date, without a start
    let mut g2 = g.clone();
    g2["metaData"]["name"] = json!("test.nostart.v2");
    g2["metaData"]["historicalBackfill"] = json!(0);
    let r = run(&wh, &g2, None, &end, 30, 1).unwrap();
    assert_eq!(r.written, vec![data::ds(&end)]);
}

#[test]
fn config_errors_name_the_group_by_fields() {
    let db = purchases(2);
    // SNAPSHOT accuracy with an hour window
    let g = gb_json(
        "test.hours.v1",
        vec![purchase_source()],
        Some(conf::aggs_for("amount", Op::Sum, &[W::Hours(6)], &[])),
        Some(1),
        Some(START),
    );
    let (_dir, wh) = warehouse(&db);
    let e = run(&wh, &g, None, START, 30, 1).unwrap_err().to_string();
    assert!(
        e.contains("config test.hours.v1: at `aggregations[0].windows`")
            && e.contains("multiples of 1d"),
        "{e}"
    );
}

// ------------------------------------------------------------------------------------------
// The dataflows/ GroupBys on the demo warehouse
// ------------------------------------------------------------------------------------------

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn every_dataflows_group_by_backfills_on_the_demo_warehouse() {
    use weft::demo::{generate, DemoSpec};
    let spec = DemoSpec {
        end: data::ds("2026-01-12"),
        users: 120,
        merchants: 20,
        checkouts_per_day: 80,
        ..DemoSpec::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let wh = Warehouse::open(dir.path()).unwrap();
    generate(&wh, &spec, &|_| {}).unwrap();
    let engine = Context::with_workers(&wh, 2).unwrap();
    let files = weft::config::conf_files(&repo().join("dataflows/production/group_bys")).unwrap();
    assert!(files.len() >= 10, "{files:?}");
    let opts = GroupByOptions {
        start: Some(spec.start),
        end: spec.end,
        step_days: 5,
        verify_existing: false,
    };
    for f in &files {
        let Conf::GroupBy(gb) = load_conf(f).unwrap() else {
            panic!("{} is not a GroupBy", f.display())
        };
        let r = backfill_group_by(&engine, &gb, &opts, &|_, _, _| {})
            .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        assert_eq!(r.written.len(), 12, "{}: {r:?}", f.display());
        assert!(r.rows > 0, "{}: {r:?}", f.display());
        let again = backfill_group_by(&engine, &gb, &opts, &|_, _, _| {}).unwrap();
        assert!(again.written.is_empty(), "{}: {again:?}", f.display());
    }
    // no aggregations: one output row per snapshot row
    let users = data::read_table(&wh, "risk.risk_users_v1");
    for (ds, (cols, rows)) in &users.parts {
        assert_eq!(
            cols,
            &["user_id", "country", "account_age_days", "is_verified"]
        );
        let snapshot = wh
            .read_partition(&data::tn("data.users"), data::ds(ds))
            .unwrap();
        let n: usize = snapshot.iter().map(|b| b.num_rows()).sum();
        assert_eq!(rows.len(), n, "{ds}");
    }
    // derivations of risk.purchases.derived_v1 are in its table
    let derived = data::read_table(&wh, "risk.risk_purchases_derived_v1");
    let (cols, _) = &derived.parts["2026-01-12"];
    assert_eq!(
        cols,
        &[
            "user_id",
            "amount_cents_sum_30d",
            "amount_cents_count_30d",
            "amount_cents_avg_30d"
        ]
    );
}

/// The reference of every day of `[START, end]` with source data: event GroupBy `cols`.
fn check_events_table(act: &Actual, t: &Table, cols: &[Col], days: i64, when: &str) {
    let have: Vec<String> = (0..days)
        .map(|i| ds_shift(START, i))
        .filter(|d| t.parts.contains_key(d))
        .collect();
    assert_eq!(
        act.parts.keys().cloned().collect::<Vec<_>>(),
        have,
        "{when}: the partitions are the days with source data"
    );
    for d in &have {
        let (exp, _) = events_day(t, cols, d);
        check_day(act, d, &names(cols), &exp);
    }
}

#[test]
fn a_maintained_group_by_table_follows_relanded_late_and_removed_source_partitions() {
    use weft::engine::GroupByRunner;
    let mut db = purchases(10);
    let (aggs, cols) = windowed_aggs(true);
    let g = gb_json(
        "test.purchases.v1",
        vec![purchase_source()],
        Some(aggs),
        Some(1),
        Some(START),
    );
    let (_dir, wh) = warehouse(&db);
    let cx = Context::with_workers(&wh, 2).unwrap();
    let mut runner = GroupByRunner::new(&parse(&g)).unwrap();
    let out = output_table(&g);
    let opts = |last: i64| GroupByOptions {
        start: None,
        end: data::ds(&ds_shift(START, last)),
        step_days: 4,
        verify_existing: false,
    };
    let r = runner.run(&cx, &opts(9), &|_, _, _| {}).unwrap();
    assert_eq!(r.written.len(), 10);
    check_events_table(
        &data::read_table(&wh, &out),
        db.table("data.purchases"),
        &cols,
        10,
        "first run",
    );

    let mut step = |db: &Db, when: &str, expect_rewritten: Option<Vec<i64>>| {
        cx.refresh().unwrap();
        let r = runner.run(&cx, &opts(9), &|_, _, _| {}).unwrap();
        let act = data::read_table(&wh, &out);
        check_events_table(&act, db.table("data.purchases"), &cols, 10, when);
        // a fresh backfill of the same inputs writes the same table
        let copy = tempfile::tempdir().unwrap();
        reference::harness::copy_warehouse_without(wh.root(), copy.path(), &out);
        let fresh_wh = Warehouse::open(copy.path()).unwrap();
        run(&fresh_wh, &g, None, &ds_shift(START, 9), 30, 1).unwrap();
        assert_eq!(
            act,
            data::read_table(&fresh_wh, &out),
            "{when}: incremental == fresh"
        );
        if let Some(days) = expect_rewritten {
            let want: Vec<_> = days
                .iter()
                .map(|&i| data::ds(&ds_shift(START, i)))
                .collect();
            assert_eq!(
                r.rewritten, want,
                "{when}: exactly the days the windows reach"
            );
        }
        r
    };

    // day 4 re-landed with other rows: an unbounded window reaches every later day
    let d4 = ds_shift(START, 4);
    db.table_mut("data.purchases").parts.insert(
        d4.clone(),
        vec![vec![V::s("u2"), V::Int(500), V::Int(ds_start(&d4) + HOUR)]],
    );
    data::write_partition(&wh, &db, "data.purchases", &d4);
    step(&db, "re-landed day 4", Some((4..10).collect()));

    // late events appended to day 7
    let d7 = ds_shift(START, 7);
    db.table_mut("data.purchases").push(
        &d7,
        vec![V::s("late"), V::Int(9), V::Int(ds_start(&d7) + 3 * HOUR)],
    );
    data::write_partition(&wh, &db, "data.purchases", &d7);
    let r = step(&db, "late events on day 7", Some((7..10).collect()));
    assert!(r.written.is_empty());

    // the last partition removed: its day leaves the table
    let d9 = ds_shift(START, 9);
    db.table_mut("data.purchases").parts.remove(&d9);
    data::drop_partition(&wh, "data.purchases", &d9);
    step(&db, "day 9 removed", None);

    // nothing changed: nothing rewritten
    let r = step(&db, "idle", Some(vec![]));
    assert!(r.written.is_empty());
}

#[test]
fn a_maintained_entity_group_by_rewrites_only_a_relanded_snapshot_day() {
    use weft::engine::GroupByRunner;
    let mut t = Table::new(&[("user_id", Ty::Str), ("score", Ty::I64), ("ts", Ty::I64)]);
    for i in 0..5 {
        let ds = ds_shift(START, i);
        for u in 0..3 {
            t.push(
                &ds,
                vec![
                    V::s(&format!("u{u}")),
                    V::Int(i * 10 + u),
                    V::Int(ds_start(&ds) + u * HOUR),
                ],
            );
        }
    }
    let mut db = Db::default();
    db.add("data.users", t);
    let src = conf::entities_source("data.users", None, &["user_id", "score", "ts"], Some("ts"));
    let aggs = conf::aggs_for("score", Op::Sum, &[W::Unbounded], &[]);
    let cols = vec![col("score_sum", "score", Op::Sum, None)];
    let g = gb_json("test.users.v1", vec![src], Some(aggs), None, Some(START));
    let (_dir, wh) = warehouse(&db);
    let cx = Context::new(&wh).unwrap();
    let mut runner = GroupByRunner::new(&parse(&g)).unwrap();
    let opts = GroupByOptions {
        start: None,
        end: data::ds(&ds_shift(START, 4)),
        step_days: 30,
        verify_existing: false,
    };
    assert_eq!(
        runner.run(&cx, &opts, &|_, _, _| {}).unwrap().written.len(),
        5
    );
    let d2 = ds_shift(START, 2);
    db.table_mut("data.users").parts.insert(
        d2.clone(),
        vec![vec![V::s("u9"), V::Int(1), V::Int(ds_start(&d2))]],
    );
    data::write_partition(&wh, &db, "data.users", &d2);
    cx.refresh().unwrap();
    let r = runner.run(&cx, &opts, &|_, _, _| {}).unwrap();
    assert_eq!(r.rewritten, vec![data::ds(&d2)]);
    assert!(r.written.is_empty());
    let act = data::read_table(&wh, &output_table(&g));
    for i in 0..5 {
        let d = ds_shift(START, i);
        check_day(
            &act,
            &d,
            &names(&cols),
            &snapshot_day(db.table("data.users"), &cols, &d),
        );
    }
}
