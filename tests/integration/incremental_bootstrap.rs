//! Incremental == recompute for bootstrap (chronon-semantics §4), through one `JoinRunner`:
//! after a first backfill, deltas land — a bootstrap table partition written or re-landed
//! with other rows (NULLs included), a bootstrap partition dropped, a log partition with two
//! schema hashes, a bootstrap part added to or removed from the running join
//! (`JoinRunner::reconfigure`), a new left day with its events — and after every delta the
//! output must equal (a) a fresh backfill over a copy of the warehouse and (b) a small
//! reference: the join computed without bootstrap, with the bootstrap rules applied row by
//! row in plain Rust (match on `(row_id, ds)`, coverage per part, priority with NULL falling
//! through, trusted NULLs for covered parts).

use crate::reference;

use std::collections::{BTreeMap, BTreeSet};

use arrow::datatypes::DataType;
use proptest::prelude::*;
use reference::conf::{self, W};
use reference::data::{self, read_table, Actual};
use reference::harness::{backfill, copy_warehouse_without, options, outputs_equal};
use reference::{ds_shift, ds_start, output_table, Db, Op, Run, Table, Ty, DAY, V};
use serde_json::{json, Value as J};
use weft::engine::Context;
use weft::engine::JoinRunner;
use weft::join::bootstrap::log_schema::LoggingSchema;
use weft::warehouse::{TableName, Warehouse};

const BASE: &str = "2026-06-01";
const A_SUM: &str = "t_a_val_sum_2d";
const A_COUNT: &str = "t_a_val_count_1d";
const B_SUM: &str = "t_b_val_sum";
const FIELDS: [&str; 3] = [A_SUM, A_COUNT, B_SUM];
/// Bootstrap tables in priority order, each with the fields it selects; the last is the log.
const TABLES: [(&str, &[&str]); 3] = [
    ("data.boot_a", &[A_SUM, A_COUNT]),
    ("data.boot_mixed", &[A_SUM, B_SUM]),
    ("data.join_logged", &[]),
];

fn day(i: i64) -> String {
    ds_shift(BASE, i)
}

/// The log's two schemas: all three fields, and an older one with only the 2-day sum.
fn log_schemas() -> [(String, LoggingSchema); 2] {
    let s = |values: &[&str]| LoggingSchema {
        join_name: "t.boot".into(),
        keys: vec![("row_id".into(), DataType::Int64)],
        values: values
            .iter()
            .map(|v| (v.to_string(), DataType::Int64))
            .collect(),
    };
    let full = s(&FIELDS);
    let old = s(&[A_SUM]);
    [(full.hash(), full), (old.hash(), old)]
}

struct World {
    db: Db,
    last_day: i64,
    next_id: i64,
    /// Which bootstrap tables the join lists.
    active: [bool; 3],
    /// Partitions changed since they were last written.
    dirty: Vec<(&'static str, String)>,
}

fn gb(name: &str, aggs: Vec<J>) -> J {
    conf::group_by(
        name,
        vec![conf::events_source(
            "data.events",
            &["user", "val"],
            Some("ts"),
        )],
        &["user"],
        Some(aggs),
        Some(0),
    )
}

/// The join; `boot` false gives the same join without bootstrap (the reference's base).
fn join(w: &World, boot: bool) -> J {
    let mut aggs = conf::aggs_for("val", Op::Sum, &[W::Days(2)], &[]);
    aggs.extend(conf::aggs_for("val", Op::Count, &[W::Days(1)], &[]));
    let parts = vec![
        conf::part(gb("t.a", aggs), &[], None),
        conf::part(
            gb("t.b", conf::aggs_for("val", Op::Sum, &[W::Unbounded], &[])),
            &[],
            None,
        ),
    ];
    let name = if boot { "t.boot" } else { "t.boot_base" };
    let mut j = conf::join(
        name,
        conf::events_left("data.left", &["row_id", "user"]),
        parts,
    );
    j["rowIds"] = json!(["row_id"]);
    if boot {
        let parts: Vec<J> = TABLES
            .iter()
            .zip(w.active)
            .filter(|(_, on)| *on)
            .map(|((t, sel), _)| {
                if sel.is_empty() {
                    json!({ "table": t })
                } else {
                    let mut m = serde_json::Map::new();
                    m.insert("row_id".into(), json!("row_id"));
                    for c in *sel {
                        m.insert(c.to_string(), json!(c));
                    }
                    json!({ "table": t, "query": { "selects": m, "setups": [] } })
                }
            })
            .collect();
        j["bootstrapParts"] = J::Array(parts);
    }
    j
}

fn opt(x: Option<i64>) -> V {
    x.map_or(V::Null, V::Int)
}

impl World {
    fn new() -> World {
        let mut db = Db::default();
        db.add(
            "data.left",
            Table::new(&[("row_id", Ty::I64), ("user", Ty::Str), ("ts", Ty::I64)]),
        );
        db.add(
            "data.events",
            Table::new(&[("user", Ty::Str), ("val", Ty::I64), ("ts", Ty::I64)]),
        );
        db.add(
            "data.boot_a",
            Table::new(&[("row_id", Ty::I64), (A_SUM, Ty::I64), (A_COUNT, Ty::I64)]),
        );
        db.add(
            "data.boot_mixed",
            Table::new(&[("row_id", Ty::I64), (A_SUM, Ty::I64), (B_SUM, Ty::I64)]),
        );
        db.add(
            "data.join_logged",
            Table::new(&[
                ("schema_hash", Ty::Str),
                ("ts", Ty::I64),
                ("row_id", Ty::I64),
                (A_SUM, Ty::I64),
                (A_COUNT, Ty::I64),
                (B_SUM, Ty::I64),
            ]),
        );
        World {
            db,
            last_day: 0,
            next_id: 0,
            active: [false; 3],
            dirty: Vec::new(),
        }
    }

    /// Replaces event partition `d` (creating it if it was removed).
    fn set_events(&mut self, d: i64, events: &[(Option<u8>, i64, i64)]) {
        let start = ds_start(BASE) + d * DAY;
        let t = self.db.table_mut("data.events");
        t.parts.remove(&day(d));
        for (k, v, ms) in events {
            t.push(
                &day(d),
                vec![
                    k.map_or(V::Null, |k| V::Str(format!("u{k}"))),
                    V::Int(*v),
                    V::Int(start + ms),
                ],
            );
        }
        t.touch(&day(d));
        self.dirty.push(("data.events", day(d)));
    }

    fn add_day(&mut self, d: i64, left: &[(Option<u8>, i64)], events: &[(Option<u8>, i64, i64)]) {
        let start = ds_start(BASE) + d * DAY;
        for (k, ms) in left {
            let row = vec![
                V::Int(self.next_id),
                k.map_or(V::Null, |k| V::Str(format!("u{k}"))),
                V::Int(start + ms),
            ];
            self.next_id += 1;
            self.db.table_mut("data.left").push(&day(d), row);
        }
        self.db.table_mut("data.left").touch(&day(d));
        self.dirty.push(("data.left", day(d)));
        self.dirty.push(("data.events", day(d)));
        for (k, v, ms) in events {
            let row = vec![
                k.map_or(V::Null, |k| V::Str(format!("u{k}"))),
                V::Int(*v),
                V::Int(start + ms),
            ];
            self.db.table_mut("data.events").push(&day(d), row);
        }
        self.db.table_mut("data.events").touch(&day(d));
        self.last_day = self.last_day.max(d);
    }

    /// Row ids of a left day.
    fn ids(&self, d: i64) -> Vec<i64> {
        self.db
            .table("data.left")
            .parts
            .get(&day(d))
            .map(|rows| rows.iter().filter_map(|r| r[0].as_i64()).collect())
            .unwrap_or_default()
    }

    /// Replaces bootstrap table `t`'s partition `d` with rows for the picked left rows.
    fn set_boot(&mut self, t: usize, d: i64, picks: &[(u8, [Option<i64>; 3], bool)]) {
        let ids = self.ids(d);
        let mut seen = BTreeSet::new();
        let hashes = log_schemas();
        let mut rows = Vec::new();
        for (pick, vals, old_schema) in picks {
            if ids.is_empty() {
                break;
            }
            let id = ids[*pick as usize % ids.len()];
            if !seen.insert(id) {
                continue; // one row per key: duplicates are resolved arbitrarily by Chronon
            }
            let row = match t {
                0 => vec![V::Int(id), opt(vals[0]), opt(vals[1])],
                1 => vec![V::Int(id), opt(vals[0]), opt(vals[2])],
                _ => {
                    let (h, schema) = &hashes[*old_schema as usize];
                    let logged = |f: &str, v: Option<i64>| {
                        if schema.values.iter().any(|(n, _)| n == f) {
                            opt(v)
                        } else {
                            V::Null
                        }
                    };
                    vec![
                        V::s(h),
                        V::Int(ds_start(BASE) + d * DAY),
                        V::Int(id),
                        logged(A_SUM, vals[0]),
                        logged(A_COUNT, vals[1]),
                        logged(B_SUM, vals[2]),
                    ]
                }
            };
            rows.push(row);
        }
        let table = self.db.table_mut(TABLES[t].0);
        table.parts.insert(day(d), rows);
        self.dirty.push((TABLES[t].0, day(d)));
    }

    fn drop_boot(&mut self, t: usize, d: i64) {
        self.db.table_mut(TABLES[t].0).parts.remove(&day(d));
        self.dirty.push((TABLES[t].0, day(d)));
    }
}

fn write_all(wh: &Warehouse, w: &mut World) {
    // only the partitions that changed, so unchanged ones keep their fingerprints
    for (name, ds) in std::mem::take(&mut w.dirty) {
        if w.db.table(name).parts.contains_key(&ds) {
            data::write_partition(wh, &w.db, name, &ds);
        } else if wh
            .partition_dir(
                &TableName::parse(name).unwrap(),
                &[("ds".into(), ds.clone())],
            )
            .is_dir()
        {
            data::drop_partition(wh, name, &ds);
        }
    }
    let mut props = BTreeMap::from([("chronon_log_table".to_string(), "true".to_string())]);
    for (h, s) in log_schemas() {
        props.insert(format!("schema_hash_{h}"), s.to_json());
    }
    wh.set_properties(&TableName::parse("data.join_logged").unwrap(), &props)
        .unwrap();
}

/// The reference: the join without bootstrap, then the bootstrap rules row by row.
fn reference(w: &World, base: &Actual) -> BTreeMap<(String, i64), BTreeMap<String, V>> {
    let hashes = log_schemas();
    let mut out = BTreeMap::new();
    for (ds, (cols, rows)) in &base.parts {
        for r in rows {
            let row: BTreeMap<String, V> = cols.iter().cloned().zip(r.iter().cloned()).collect();
            let id = row["row_id"].as_i64().unwrap();
            // matched bootstrap rows in priority order: (fields provided, values)
            let mut matched: Vec<(Vec<&str>, BTreeMap<&str, V>)> = Vec::new();
            for (t, (name, sel)) in TABLES.iter().enumerate() {
                if !w.active[t] {
                    continue;
                }
                let table = w.db.table(name);
                let Some(brows) = table.parts.get(ds) else {
                    continue;
                };
                let id_col = table.col("row_id").unwrap();
                let Some(b) = brows.iter().find(|b| b[id_col].as_i64() == Some(id)) else {
                    continue;
                };
                let provided: Vec<&str> = if sel.is_empty() {
                    let h = b[table.col("schema_hash").unwrap()].key_string();
                    let s = &hashes.iter().find(|(x, _)| *x == h).unwrap().1;
                    FIELDS
                        .iter()
                        .copied()
                        .filter(|f| s.values.iter().any(|(n, _)| n == f))
                        .collect()
                } else {
                    sel.to_vec()
                };
                let values = FIELDS
                    .iter()
                    .filter_map(|f| table.col(f).map(|c| (*f, b[c].clone())))
                    .collect();
                matched.push((provided, values));
            }
            let provided: BTreeSet<&str> = matched.iter().flat_map(|m| m.0.clone()).collect();
            let covered =
                |fs: &[&str]| !matched.is_empty() && fs.iter().all(|f| provided.contains(f));
            let a_cov = covered(&[A_SUM, A_COUNT]);
            let b_cov = covered(&[B_SUM]);
            let mut o = row.clone();
            for f in FIELDS {
                let part_covered = if f == B_SUM { b_cov } else { a_cov };
                let boot = matched
                    .iter()
                    .filter_map(|(_, vals)| vals.get(f))
                    .find(|v| !v.is_null())
                    .cloned();
                let v = match boot {
                    Some(v) => v,
                    None if part_covered => V::Null,
                    None => row[f].clone(),
                };
                o.insert(f.to_string(), v);
            }
            out.insert((ds.clone(), id), o);
        }
    }
    out
}

fn keyed(a: &Actual) -> BTreeMap<(String, i64), BTreeMap<String, V>> {
    let mut out = BTreeMap::new();
    for (ds, (cols, rows)) in &a.parts {
        for r in rows {
            let row: BTreeMap<String, V> = cols.iter().cloned().zip(r.iter().cloned()).collect();
            out.insert((ds.clone(), row["row_id"].as_i64().unwrap()), row);
        }
    }
    out
}

fn check(wh: &Warehouse, w: &World, step: &str) -> Result<(), String> {
    let j = join(w, true);
    let out = output_table(&j);
    let run = Run::through(&day(w.last_day));
    let incremental = read_table(wh, &out);
    let copy = tempfile::tempdir().unwrap();
    copy_warehouse_without(wh.root(), copy.path(), &out);
    let fresh_wh = Warehouse::open(copy.path()).unwrap();
    backfill(&fresh_wh, &j, &options(&run)).map_err(|e| format!("{step}: fresh: {e}"))?;
    let fresh = read_table(&fresh_wh, &out);
    outputs_equal(&incremental, &fresh, "incremental", "fresh backfill")
        .map_err(|e| format!("{step}: incremental differs from a fresh backfill: {e}"))?;
    let base_j = join(w, false);
    backfill(&fresh_wh, &base_j, &options(&run)).map_err(|e| format!("{step}: base: {e}"))?;
    let expected = reference(w, &read_table(&fresh_wh, &output_table(&base_j)));
    let actual = keyed(&incremental);
    if expected.len() != actual.len() {
        return Err(format!(
            "{step}: {} rows, the reference has {}",
            actual.len(),
            expected.len()
        ));
    }
    for (k, e) in &expected {
        let a = &actual[k];
        for f in FIELDS {
            if a[f] != e[f] {
                return Err(format!(
                    "{step}: row {k:?} column {f}: weft {:?}, reference {:?} (row {a:?})",
                    a[f], e[f]
                ));
            }
        }
    }
    Ok(())
}

/// A left day: rows `(key, ms in the day)` and events `(key, value, ms in the day)`.
type Day = (Vec<(Option<u8>, i64)>, Vec<(Option<u8>, i64, i64)>);
/// Bootstrap rows: `(which left row, values, logged with the older schema)`.
type Picks = Vec<(u8, [Option<i64>; 3], bool)>;

#[derive(Debug, Clone)]
enum Delta {
    /// Rewrite bootstrap table `t`'s partition of left day `d` with rows for picked left rows.
    SetBoot(usize, i64, Vec<(u8, [Option<i64>; 3], bool)>),
    DropBoot(usize, i64),
    /// Add or remove bootstrap table `t` from the running join.
    Toggle(usize),
    NewDay(Vec<(Option<u8>, i64)>, Vec<(Option<u8>, i64, i64)>),
    /// The oldest event partition removed (while another remains).
    DropOldestEvents,
    /// Event partition `d` (of the existing days) landed again with these events: a removed
    /// partition comes back inside the reach of days already computed.
    ReLandEvents(i64, Vec<(Option<u8>, i64, i64)>),
    /// The process ends and a new one takes over: the runner stores its aggregates and a new
    /// runner on a new runtime continues (starting from them where they apply).
    Restart,
}

fn key() -> impl Strategy<Value = Option<u8>> {
    prop_oneof![4 => (0u8..3).prop_map(Some), 1 => Just(None)]
}
fn val() -> impl Strategy<Value = Option<i64>> {
    prop_oneof![4 => (0i64..100).prop_map(Some), 1 => Just(None)]
}
fn picks() -> impl Strategy<Value = Vec<(u8, [Option<i64>; 3], bool)>> {
    prop::collection::vec((any::<u8>(), [val(), val(), val()], any::<bool>()), 0..6)
}
fn lefts() -> impl Strategy<Value = Vec<(Option<u8>, i64)>> {
    prop::collection::vec((key(), 0..DAY), 1..5)
}
fn events() -> impl Strategy<Value = Vec<(Option<u8>, i64, i64)>> {
    prop::collection::vec((key(), 1i64..50, 0..DAY), 0..6)
}
fn delta() -> impl Strategy<Value = Delta> {
    prop_oneof![
        3 => (0usize..3, 1i64..4, picks()).prop_map(|(t, d, p)| Delta::SetBoot(t, d, p)),
        1 => (0usize..3, 1i64..4).prop_map(|(t, d)| Delta::DropBoot(t, d)),
        2 => (0usize..3).prop_map(Delta::Toggle),
        1 => (lefts(), events()).prop_map(|(l, e)| Delta::NewDay(l, e)),
        1 => Just(Delta::DropOldestEvents),
        1 => (0i64..4, events()).prop_map(|(d, e)| Delta::ReLandEvents(d, e)),
        1 => Just(Delta::Restart),
    ]
}

fn run_case(
    days: Vec<Day>,
    boots: Vec<(usize, i64, Picks)>,
    active: [bool; 3],
    deltas: &[Delta],
) -> Result<(), String> {
    let mut w = World::new();
    w.active = active;
    for (d, (l, e)) in days.iter().enumerate() {
        w.add_day(d as i64, l, e);
    }
    for (t, _) in TABLES {
        // every bootstrap table exists (an empty first partition)
        w.db.table_mut(t).touch(&day(0));
        w.dirty.push((t, day(0)));
    }
    for (t, d, p) in &boots {
        w.set_boot(*t, *d, p);
    }
    let dir = tempfile::tempdir().unwrap();
    let wh = Warehouse::open(dir.path()).unwrap();
    write_all(&wh, &mut w);
    let mut engine = Context::new(&wh).unwrap();
    let mut runner = JoinRunner::new(&conf::parse(&join(&w, true))).map_err(|e| e.to_string())?;
    let opts = |w: &World| options(&Run::through(&day(w.last_day)));
    runner
        .run(&engine, &opts(&w), &|_, _, _| {})
        .map_err(|e| format!("first run: {e}"))?;
    check(&wh, &w, "first run")?;
    for (i, d) in deltas.iter().enumerate() {
        match d {
            Delta::SetBoot(t, day, p) => w.set_boot(*t, *day, p),
            Delta::DropBoot(t, day) => w.drop_boot(*t, *day),
            Delta::Toggle(t) => w.active[*t] = !w.active[*t],
            Delta::NewDay(l, e) => {
                let d = w.last_day + 1;
                w.add_day(d, l, e)
            }
            Delta::DropOldestEvents => {
                let parts: Vec<String> = w.db.table("data.events").parts.keys().cloned().collect();
                if parts.len() > 1 {
                    w.db.table_mut("data.events").parts.remove(&parts[0]);
                    w.dirty.push(("data.events", parts[0].clone()));
                }
            }
            Delta::ReLandEvents(d, e) => {
                let d = d % (w.last_day + 1);
                w.set_events(d, e);
            }
            Delta::Restart => {
                runner
                    .store_aggregates()
                    .map_err(|e| format!("restart: storing aggregates: {e}"))?;
                runner =
                    JoinRunner::new(&conf::parse(&join(&w, true))).map_err(|e| e.to_string())?;
                engine = Context::new(&wh).unwrap();
            }
        }
        write_all(&wh, &mut w);
        engine.refresh().map_err(|e| e.to_string())?;
        let step = format!("after delta {} ({d:?})", i + 1);
        if let Delta::Toggle(_) = d {
            runner
                .reconfigure(&engine, &conf::parse(&join(&w, true)))
                .map_err(|e| format!("{step}: reconfigure: {e}"))?;
        }
        runner
            .run(&engine, &opts(&w), &|_, _, _| {})
            .map_err(|e| format!("{step}: run: {e}"))?;
        check(&wh, &w, &step)?;
    }
    Ok(())
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: crate::cases(Some("DELTA_CASES"), 16),
        max_shrink_iters: 30,
        failure_persistence: crate::regressions_beside_suite(),
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn bootstrap_incremental_equals_recompute(
        days in prop::collection::vec((lefts(), events()), 4),
        boots in prop::collection::vec((0usize..3, 1i64..4, picks()), 0..4),
        active in [any::<bool>(), any::<bool>(), any::<bool>()],
        deltas in prop::collection::vec(delta(), 1..5),
    ) {
        run_case(days, boots, active, &deltas).map_err(TestCaseError::fail)?;
    }
}

/// Every kind of delta in turn on fixed data, starting from a join without bootstrap parts
/// (the first part added moves the left rows onto the bootstrap stage).
#[test]
fn each_kind_of_delta_in_turn() {
    let day_rows = |k: u8| {
        (
            vec![(Some(k), 1000), (Some(k + 1), 50_000), (None, 9)],
            vec![(Some(k), 5, 10), (Some(k + 1), 7, 20_000)],
        )
    };
    let days = vec![day_rows(0), day_rows(1), day_rows(0), day_rows(1)];
    let full = |x: i64| [Some(x), Some(x + 1), Some(x + 2)];
    let deltas = vec![
        Delta::Toggle(0),
        Delta::SetBoot(
            0,
            2,
            vec![(0, full(100), false), (1, [Some(7), None, None], false)],
        ),
        Delta::Toggle(2),
        Delta::SetBoot(
            2,
            2,
            vec![
                (0, full(200), true),
                (1, full(300), false),
                (2, full(400), false),
            ],
        ),
        Delta::Toggle(1),
        Delta::SetBoot(1, 3, vec![(2, [None, None, None], false)]),
        Delta::DropBoot(0, 2),
        Delta::NewDay(vec![(Some(1), 10)], vec![(Some(1), 3, 5)]),
        Delta::DropOldestEvents,
        Delta::ReLandEvents(
            0,
            vec![(Some(0), 40, 7), (Some(1), 41, 8), (Some(2), 42, 9)],
        ),
        Delta::Restart,
        Delta::NewDay(
            vec![(Some(0), 20), (Some(2), 30_000)],
            vec![(Some(0), 8, 50)],
        ),
        Delta::NewDay(
            vec![(Some(1), 40)],
            vec![(Some(1), 9, 60), (Some(2), 1, 70)],
        ),
        Delta::Restart,
        Delta::NewDay(vec![(Some(0), 80), (Some(1), 90)], vec![(Some(0), 2, 99)]),
        Delta::Toggle(0),
        Delta::Toggle(1),
        Delta::Toggle(2),
        Delta::Restart,
        Delta::NewDay(vec![(Some(2), 100)], vec![(Some(2), 3, 101)]),
    ];
    run_case(days, Vec::new(), [false; 3], &deltas).unwrap_or_else(|e| panic!("{e}"));
}
