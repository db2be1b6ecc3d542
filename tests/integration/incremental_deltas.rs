//! Incremental == recompute, through the engine's `JoinRunner`: one runner backfills a join,
//! then partition-sized deltas land — a new day (left and sources), a source partition
//! re-landed with different rows, a source partition re-landed with fewer rows or none, late
//! events appended to an old day, a left partition re-landed, an entity snapshot re-landed
//! with the mutation partitions derived from it (a TEMPORAL entity part reads them) —
//! and after every delta `engine.refresh()` and `runner.run(…)` must leave the output table
//! (a) equal to a fresh `backfill_join` over a copy of the warehouse without the output table,
//! (b) equal to the reference of tests/reference, and (c) untouched in every partition whose
//! rows did not change (only changed and missing partitions are rewritten).

use crate::reference;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use proptest::prelude::*;
use reference::conf::{self, W};
use reference::data::{self, read_table, Actual};
use reference::harness::{
    backfill, compare, copy_warehouse_without, options, outputs_equal, outputs_identical,
};
use reference::{ds_shift, ds_start, expected, output_table, Db, Op, Run, Table, Ty, DAY, V};
use serde_json::Value as J;
use weft::engine::Context;
use weft::engine::{JoinReport, JoinRunner};
use weft::warehouse::Warehouse;

const BASE: &str = "2026-05-01";

fn day(i: i64) -> String {
    ds_shift(BASE, i)
}
fn t0(i: i64) -> i64 {
    ds_start(BASE) + i * DAY
}

/// Source days at the start (left days are 2..=FIRST_END).
const FIRST_END: i64 = 4;

type Ev = (Option<u8>, Option<i64>, i64);

fn kv(k: Option<u8>) -> V {
    k.map_or(V::Null, |k| V::Str(format!("u{k}")))
}
fn iv(x: Option<i64>) -> V {
    x.map_or(V::Null, V::Int)
}
/// The event's double: mixed magnitudes, NaN, ±∞ and −0.0, derived from its integer value
/// (so deltas need no second strategy).
fn xv(x: Option<i64>) -> V {
    let Some(v) = x else { return V::Null };
    V::Float(match v.rem_euclid(9) {
        0 => -0.0,
        1 => v as f64 * 1e12,
        2 => v as f64 * 1e-9,
        3 => f64::NAN,
        4 => f64::INFINITY,
        5 => f64::NEG_INFINITY,
        6 => (v as f64).sqrt() + 0.1,
        7 => -(v as f64) / 3.0,
        _ => v as f64 + 0.5,
    })
}

// ------------------------------------------------------------------------------------------
// The world: tables in memory, mirrored to a warehouse partition by partition
// ------------------------------------------------------------------------------------------

struct World {
    db: Db,
    next_row_id: i64,
    last_day: i64,
    /// The rows each entity snapshot was made from: the updates of that day (its mutations).
    entity_updates: BTreeMap<i64, Vec<Ev>>,
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
            Table::new(&[
                ("user", Ty::Str),
                ("val", Ty::I64),
                ("ts", Ty::I64),
                ("x", Ty::F64),
            ]),
        );
        db.add(
            "data.entity",
            Table::new(&[("user", Ty::Str), ("score", Ty::I64), ("ts", Ty::I64)]),
        );
        db.add(
            "data.entity_mutations",
            Table::new(&[
                ("user", Ty::Str),
                ("score", Ty::I64),
                ("ts", Ty::I64),
                ("mutation_ts", Ty::I64),
                ("is_before", Ty::Bool),
            ]),
        );
        World {
            db,
            next_row_id: 0,
            last_day: 0,
            entity_updates: BTreeMap::new(),
        }
    }

    /// Replaces left partition `d` with rows `(key, ms in the day)`.
    fn set_left(&mut self, d: i64, rows: &[(Option<u8>, i64)]) {
        let mut out = Vec::new();
        for (k, ms) in rows {
            out.push(vec![V::Int(self.next_row_id), kv(*k), V::Int(t0(d) + ms)]);
            self.next_row_id += 1;
        }
        self.db.table_mut("data.left").parts.insert(day(d), out);
    }

    /// Replaces event partition `d` (each event's ms is within day `d`).
    fn set_events(&mut self, d: i64, evs: &[Ev]) {
        let rows = evs
            .iter()
            .map(|(k, v, ms)| vec![kv(*k), iv(*v), V::Int(t0(d) + ms), xv(*v)])
            .collect();
        self.db.table_mut("data.events").parts.insert(day(d), rows);
    }

    fn add_events(&mut self, d: i64, evs: &[Ev]) {
        let t = self.db.table_mut("data.events");
        let part = t.parts.entry(day(d)).or_default();
        part.extend(
            evs.iter()
                .map(|(k, v, ms)| vec![kv(*k), iv(*v), V::Int(t0(d) + ms), xv(*v)]),
        );
    }

    /// Replaces entity snapshot `d`: rows updated during the three days up to `d`. The
    /// mutations of days `d` and `d + 1` are derived again (they depend on it); returns the
    /// days whose mutation partition changed.
    fn set_entity(&mut self, d: i64, rows: &[Ev]) -> Vec<i64> {
        self.entity_updates.insert(d, rows.to_vec());
        let rows = rows
            .iter()
            .map(|(k, v, ms)| vec![kv(*k), iv(*v), V::Int(t0(d + 1) - 1 - (ms * 3) % (3 * DAY))])
            .collect();
        self.db.table_mut("data.entity").parts.insert(day(d), rows);
        let days: Vec<i64> = [d, d + 1]
            .into_iter()
            .filter(|x| *x <= self.last_day)
            .collect();
        for x in &days {
            self.derive_mutations(*x);
        }
        days
    }

    /// The mutations of day `d`: each of the day's updates inserts its row at its time; every
    /// other one first retracts (an `is_before` row) a row of snapshot `d − 1` with the same
    /// key, each snapshot row at most once — a consistent history for SUM/COUNT/AVERAGE.
    fn derive_mutations(&mut self, d: i64) {
        let before: Vec<Vec<V>> = self
            .db
            .table("data.entity")
            .parts
            .get(&day(d - 1))
            .cloned()
            .unwrap_or_default();
        let mut used = vec![false; before.len()];
        let mut rows = Vec::new();
        for (i, (k, v, ms)) in self
            .entity_updates
            .get(&d)
            .cloned()
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            let mts = t0(d) + ms % DAY;
            if i % 2 == 1 {
                let hit = before
                    .iter()
                    .enumerate()
                    .find(|(j, r)| !used[*j] && r[0] == kv(*k) && r[0] != V::Null);
                if let Some((j, r)) = hit {
                    used[j] = true;
                    rows.push(vec![
                        r[0].clone(),
                        r[1].clone(),
                        r[2].clone(),
                        V::Int(mts),
                        V::Bool(true),
                    ]);
                }
            }
            rows.push(vec![
                kv(*k),
                iv(*v),
                V::Int(mts),
                V::Int(mts),
                V::Bool(false),
            ]);
        }
        self.db
            .table_mut("data.entity_mutations")
            .parts
            .insert(day(d), rows);
    }

    fn write(&self, wh: &Warehouse, table: &str, d: i64) {
        data::write_partition(wh, &self.db, table, &day(d));
    }
}

fn join() -> J {
    let events = |name: &str, accuracy: i64, aggs: Vec<J>| {
        conf::group_by(
            name,
            vec![conf::events_source(
                "data.events",
                &["user", "val"],
                Some("ts"),
            )],
            &["user"],
            Some(aggs),
            Some(accuracy),
        )
    };
    let temporal = events(
        "test.events_temporal.v1",
        0,
        vec![
            conf::agg(
                "val",
                Op::Sum,
                &[W::Hours(6), W::Days(1), W::Days(3)],
                &[],
                &[],
            ),
            conf::agg("val", Op::Count, &[W::Unbounded], &[], &[]),
        ],
    );
    let snapshot = events(
        "test.events_snapshot.v1",
        1,
        vec![
            conf::agg("val", Op::Sum, &[W::Days(2)], &[], &[]),
            conf::agg("val", Op::Count, &[W::Unbounded], &[], &[]),
        ],
    );
    conf::join(
        "test.incremental.v1",
        conf::events_left("data.left", &["row_id", "user"]),
        vec![
            conf::part(temporal, &[], None),
            conf::part(snapshot, &[], None),
        ],
    )
}

/// The same join plus parts with other operations, an entity GroupBy, and a TEMPORAL entity
/// GroupBy with a mutation table.
fn join_all_kinds() -> J {
    let mut j = join();
    let ops = conf::group_by(
        "test.events_ops.v1",
        vec![conf::events_source(
            "data.events",
            &["user", "val", "x"],
            Some("ts"),
        )],
        &["user"],
        Some(vec![
            conf::agg("val", Op::Average, &[W::Days(2)], &[], &[]),
            conf::agg("val", Op::Average, &[W::Unbounded], &[], &[]),
            conf::agg("val", Op::LastK, &[W::Days(3)], &[("k", "2")], &[]),
            conf::agg("val", Op::LastK, &[W::Unbounded], &[("k", "2")], &[]),
            conf::agg("val", Op::Max, &[W::Unbounded], &[], &[]),
            conf::agg("val", Op::Sum, &[W::Unbounded], &[], &[]),
            conf::agg("val", Op::ApproxUniqueCount, &[W::Unbounded], &[], &[]),
            conf::agg("x", Op::Variance, &[W::Unbounded], &[], &[]),
            // doubles: mixed magnitudes, NaN, ±∞, −0.0 (compared bit for bit below)
            conf::agg("x", Op::Sum, &[W::Days(2)], &[], &[]),
            conf::agg("x", Op::Sum, &[W::Unbounded], &[], &[]),
            conf::agg("x", Op::Average, &[W::Days(3)], &[], &[]),
        ]),
        Some(0),
    );
    let entity = conf::group_by(
        "test.entity.v1",
        vec![conf::entities_source(
            "data.entity",
            None,
            &["user", "score"],
            Some("ts"),
        )],
        &["user"],
        Some(vec![
            conf::agg("score", Op::Sum, &[W::Days(1)], &[], &[]),
            conf::agg("score", Op::Average, &[W::Unbounded], &[], &[]),
            conf::agg("score", Op::UniqueCount, &[W::Unbounded], &[], &[]),
        ]),
        Some(1),
    );
    // TEMPORAL entities: snapshot `ds − 1` plus the mutations of `ds` before the query
    let mutated = conf::group_by(
        "test.entity_mut.v1",
        vec![conf::entities_source(
            "data.entity",
            Some("data.entity_mutations"),
            &["user", "score"],
            Some("ts"),
        )],
        &["user"],
        Some(vec![
            conf::agg("score", Op::Sum, &[W::Unbounded], &[], &[]),
            conf::agg("score", Op::Count, &[W::Unbounded], &[], &[]),
            conf::agg("score", Op::Average, &[W::Unbounded], &[], &[]),
        ]),
        Some(0),
    );
    let parts = j["joinParts"].as_array_mut().unwrap();
    parts.push(conf::part(ops, &[], Some("ops")));
    parts.push(conf::part(entity, &[], None));
    parts.push(conf::part(mutated, &[], None));
    j["metaData"]["name"] = J::String("test.incremental_all.v1".into());
    j
}

// ------------------------------------------------------------------------------------------
// Deltas
// ------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum Delta {
    /// A new day: left rows, events and an entity snapshot.
    AppendDay {
        left: Vec<(Option<u8>, i64)>,
        events: Vec<Ev>,
        entity: Vec<Ev>,
    },
    /// Event partition `day` re-landed with other rows.
    ReLandEvents { day: usize, events: Vec<Ev> },
    /// Event partition `day` re-landed with only the rows whose mask bit is set (maybe none).
    ShrinkEvents { day: usize, keep: Vec<bool> },
    /// Late events appended to an existing event partition.
    LateEvents { day: usize, events: Vec<Ev> },
    /// Left partition `day` re-landed with other rows.
    ReLandLeft {
        day: usize,
        left: Vec<(Option<u8>, i64)>,
    },
    /// Entity snapshot `day` re-landed (and with it the mutations of `day` and `day + 1`,
    /// derived from it).
    ReLandEntity { day: usize, entity: Vec<Ev> },
    /// A left partition removed (its output partition goes too); the last one stays.
    DropLeft { day: usize },
    /// The oldest event partition removed (a hole inside the range is an error on both sides,
    /// and removing the newest makes the next day's a hole: neither is a delta).
    DropOldestEvents,
    /// The process ends and a new one takes over: the runner stores its aggregates and a new
    /// runner on a new runtime continues (starting from them where they apply).
    Restart,
}

fn key() -> impl Strategy<Value = Option<u8>> {
    prop_oneof![6 => Just(Some(0u8)), 3 => Just(Some(1)), 2 => Just(Some(2)), 1 => Just(None)]
}

fn ev() -> impl Strategy<Value = Ev> {
    (
        key(),
        prop_oneof![5 => (1i64..50).prop_map(Some), 1 => Just(None)],
        0..DAY,
    )
}

fn evs(max: usize) -> impl Strategy<Value = Vec<Ev>> {
    prop::collection::vec(ev(), 0..max)
}

fn lefts() -> impl Strategy<Value = Vec<(Option<u8>, i64)>> {
    prop::collection::vec((key(), prop_oneof![Just(0i64), 0..DAY]), 1..6)
}

fn delta() -> impl Strategy<Value = Delta> {
    prop_oneof![
        3 => (lefts(), evs(10), evs(5)).prop_map(|(left, events, entity)| Delta::AppendDay { left, events, entity }),
        2 => (0usize..100, evs(8)).prop_map(|(day, events)| Delta::ReLandEvents { day, events }),
        2 => (0usize..100, prop::collection::vec(any::<bool>(), 0..12)).prop_map(|(day, keep)| Delta::ShrinkEvents { day, keep }),
        2 => (0usize..100, evs(6)).prop_map(|(day, events)| Delta::LateEvents { day, events }),
        1 => (0usize..100, lefts()).prop_map(|(day, left)| Delta::ReLandLeft { day, left }),
        1 => (0usize..100, evs(5)).prop_map(|(day, entity)| Delta::ReLandEntity { day, entity }),
        1 => (0usize..100).prop_map(|day| Delta::DropLeft { day }),
        1 => Just(Delta::DropOldestEvents),
        2 => Just(Delta::Restart),
    ]
}

/// Applies a delta to the world and the warehouse.
fn apply(w: &mut World, wh: &Warehouse, d: &Delta) {
    let source_days = w.last_day + 1; // days 0..=last_day
    let left_days: Vec<i64> = (2..=w.last_day).collect();
    match d {
        Delta::AppendDay {
            left,
            events,
            entity,
        } => {
            w.last_day += 1;
            let n = w.last_day;
            // sources first, as upstream jobs land them before the left
            w.set_events(n, events);
            w.write(wh, "data.events", n);
            for m in w.set_entity(n, entity) {
                w.write(wh, "data.entity_mutations", m);
            }
            w.write(wh, "data.entity", n);
            w.set_left(n, left);
            w.write(wh, "data.left", n);
        }
        Delta::ReLandEvents { day, events } => {
            let d = (*day as i64) % source_days;
            w.set_events(d, events);
            w.write(wh, "data.events", d);
        }
        Delta::ShrinkEvents { day, keep } => {
            let d = (*day as i64) % source_days;
            let part =
                w.db.table_mut("data.events")
                    .parts
                    .entry(ds_shift(BASE, d))
                    .or_default();
            let mut i = 0;
            part.retain(|_| {
                i += 1;
                keep.get(i - 1).copied().unwrap_or(false)
            });
            w.write(wh, "data.events", d);
        }
        Delta::LateEvents { day, events } => {
            let d = (*day as i64) % source_days;
            w.add_events(d, events);
            w.write(wh, "data.events", d);
        }
        Delta::ReLandLeft { day, left } => {
            let d = left_days[*day % left_days.len()];
            w.set_left(d, left);
            w.write(wh, "data.left", d);
        }
        Delta::ReLandEntity { day, entity } => {
            let d = (*day as i64) % source_days;
            for m in w.set_entity(d, entity) {
                w.write(wh, "data.entity_mutations", m);
            }
            w.write(wh, "data.entity", d);
        }
        Delta::DropOldestEvents => {
            let present: Vec<String> = w.db.table("data.events").parts.keys().cloned().collect();
            if present.len() > 1 {
                let d = present[0].clone();
                w.db.table_mut("data.events").parts.remove(&d);
                data::drop_partition(wh, "data.events", &d);
            }
        }
        Delta::Restart => {}
        Delta::DropLeft { day: i } => {
            // never the first left day: a day re-landed before the first output partition
            // is Chronon's "first hole", computed only with --run-first-hole
            let present: Vec<i64> = left_days
                .iter()
                .copied()
                .filter(|d| w.db.table("data.left").parts.contains_key(&day(*d)))
                .skip(1)
                .collect();
            if !present.is_empty() {
                let d = present[*i % present.len()];
                w.db.table_mut("data.left").parts.remove(&day(d));
                data::drop_partition(wh, "data.left", &day(d));
            }
        }
    }
}

fn initial_world(
    seed_events: &[Vec<Ev>],
    seed_left: &[Vec<(Option<u8>, i64)>],
    seed_entity: &[Vec<Ev>],
) -> World {
    let mut w = World::new();
    w.last_day = FIRST_END;
    for d in 0..=FIRST_END {
        w.set_events(
            d,
            seed_events
                .get(d as usize)
                .map(Vec::as_slice)
                .unwrap_or(&[]),
        );
        w.set_entity(
            d,
            seed_entity
                .get(d as usize)
                .map(Vec::as_slice)
                .unwrap_or(&[]),
        );
    }
    for d in 2..=FIRST_END {
        let rows = seed_left.get(d as usize).cloned().unwrap_or_default();
        let rows = if rows.is_empty() {
            vec![(Some(0), DAY / 2)]
        } else {
            rows
        };
        w.set_left(d, &rows);
    }
    w
}

// ------------------------------------------------------------------------------------------
// Checking one state
// ------------------------------------------------------------------------------------------

/// Inode and modification time of a file.
type FileId = (u64, i64, i64);

/// An output as read after a run, with the identity of its files.
type Seen = (Actual, BTreeMap<String, Vec<(PathBuf, FileId)>>);

/// The data files of each output partition, with their inode numbers and mtimes.
fn file_ids(wh: &Warehouse, table: &str) -> BTreeMap<String, Vec<(PathBuf, FileId)>> {
    let t = data::tn(table);
    let mut out = BTreeMap::new();
    for ds in wh.partitions(&t).unwrap() {
        let files = wh.partition_files(&t, ds).unwrap();
        out.insert(
            ds.to_string(),
            files
                .into_iter()
                .map(|f| {
                    let m = std::fs::metadata(&f).unwrap();
                    (f, (m.ino(), m.mtime(), m.mtime_nsec()))
                })
                .collect(),
        );
    }
    out
}

fn partition_of(a: &Actual, ds: &str) -> Actual {
    let mut x = Actual::default();
    if let Some(p) = a.parts.get(ds) {
        x.parts.insert(ds.to_string(), p.clone());
    }
    x
}

/// Checks the incremental output after a step against a fresh backfill and the reference,
/// and that partitions whose rows did not change were not rewritten.
fn check_state(
    wh: &Warehouse,
    w: &World,
    join: &J,
    before: &Seen,
    step: &str,
) -> Result<Seen, String> {
    let out = output_table(join);
    let run = Run::through(&day(w.last_day));
    let incremental = read_table(wh, &out);
    // (a) a fresh backfill on a copy of the inputs
    let copy = tempfile::tempdir().unwrap();
    copy_warehouse_without(wh.root(), copy.path(), &out);
    let fresh_wh = Warehouse::open(copy.path()).unwrap();
    backfill(&fresh_wh, join, &options(&run))
        .map_err(|e| format!("{step}: fresh backfill: {e}"))?;
    let fresh = read_table(&fresh_wh, &out);
    outputs_identical(&incremental, &fresh, "incremental", "fresh backfill")
        .map_err(|e| format!("{step}: incremental output differs from a fresh backfill: {e}"))?;
    // (b) the reference
    compare(&expected(join, &w.db, &run), &incremental).map_err(|e| format!("{step}: {e}"))?;
    // (c) unchanged partitions keep their files
    let ids = file_ids(wh, &out);
    for (ds, files) in &ids {
        let unchanged = before.0.parts.contains_key(ds)
            && outputs_equal(
                &partition_of(&before.0, ds),
                &partition_of(&incremental, ds),
                "",
                "",
            )
            .is_ok();
        if unchanged && before.1.get(ds) != Some(files) {
            return Err(format!(
                "{step}: output partition ds={ds} was rewritten although its rows did not change"
            ));
        }
    }
    Ok((incremental, ids))
}

/// How a run is set up: dataflow workers and days per step (the output never depends on them).
#[derive(Debug, Clone, Copy)]
struct Setup {
    workers: usize,
    step_days: usize,
}

const DEFAULT_SETUP: Setup = Setup {
    workers: 1,
    step_days: 30,
};

fn setup() -> impl Strategy<Value = Setup> {
    (1usize..=3, prop::sample::select(vec![1usize, 2, 30]))
        .prop_map(|(workers, step_days)| Setup { workers, step_days })
}

/// Runs the first backfill and then each delta through one `JoinRunner` (a new one after
/// each restart), checking after each; returns each run's report.
fn run_deltas(join: &J, w: World, deltas: &[Delta]) -> Result<Vec<JoinReport>, String> {
    run_deltas_with(join, w, deltas, DEFAULT_SETUP)
}

fn run_deltas_with(
    join: &J,
    mut w: World,
    deltas: &[Delta],
    setup: Setup,
) -> Result<Vec<JoinReport>, String> {
    let dir = tempfile::tempdir().unwrap();
    let wh = Warehouse::open(dir.path()).unwrap();
    data::write_db(&wh, &w.db);
    let mut engine = Context::with_workers(&wh, setup.workers).unwrap();
    let mut runner = JoinRunner::new(&conf::parse(join)).map_err(|e| e.to_string())?;
    let mut reports = Vec::new();
    let opts = |w: &World| {
        let mut o = options(&Run::through(&day(w.last_day)));
        o.step_days = setup.step_days;
        o
    };
    reports.push(
        runner
            .run(&engine, &opts(&w), &|_, _, _| {})
            .map_err(|e| format!("first run: {e}"))?,
    );
    let mut state = check_state(
        &wh,
        &w,
        join,
        &(Actual::default(), BTreeMap::new()),
        "first run",
    )?;
    for (i, d) in deltas.iter().enumerate() {
        let step = format!("after delta {} ({d:?})", i + 1);
        if matches!(d, Delta::Restart) {
            runner
                .store_aggregates()
                .map_err(|e| format!("{step}: storing aggregates: {e}"))?;
            runner = JoinRunner::new(&conf::parse(join)).map_err(|e| e.to_string())?;
            engine = Context::with_workers(&wh, setup.workers).unwrap();
        }
        apply(&mut w, &wh, d);
        engine.refresh().map_err(|e| e.to_string())?;
        reports.push(
            runner
                .run(&engine, &opts(&w), &|_, _, _| {})
                .map_err(|e| format!("{step}: run: {e}"))?,
        );
        state = check_state(&wh, &w, join, &state, &step)?;
    }
    Ok(reports)
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

    /// Event GroupBys (TEMPORAL and SNAPSHOT, SUM and COUNT).
    #[test]
    fn sum_count_incremental_equals_recompute(
        seed_events in prop::collection::vec(evs(8), 5),
        seed_left in prop::collection::vec(lefts(), 5),
        deltas in prop::collection::vec(delta(), 1..5),
    ) {
        let w = initial_world(&seed_events, &seed_left, &[]);
        run_deltas(&join(), w, &deltas).map_err(TestCaseError::fail)?;
    }

    /// Plus AVERAGE, LAST_K, MAX and an entity GroupBy.
    #[test]
    fn all_kinds_incremental_equals_recompute(
        seed_events in prop::collection::vec(evs(8), 5),
        seed_left in prop::collection::vec(lefts(), 5),
        seed_entity in prop::collection::vec(evs(5), 5),
        deltas in prop::collection::vec(delta(), 1..5),
        setup in setup(),
    ) {
        let w = initial_world(&seed_events, &seed_left, &seed_entity);
        run_deltas_with(&join_all_kinds(), w, &deltas, setup)
            .map_err(|e| TestCaseError::fail(format!("{setup:?}: {e}")))?;
    }
}

/// An event of key `k` with value `v` at hour `h` of its day.
fn fixed_event(k: u8, v: i64, h: i64) -> Ev {
    (Some(k), Some(v), h * 3_600_000)
}

/// The fixed tests' events of days 0..=4.
fn fixed_seed_events() -> Vec<Vec<Ev>> {
    let e = fixed_event;
    vec![
        vec![e(0, 1, 1), e(1, 2, 5)],
        vec![e(0, 3, 2), e(0, 4, 20)],
        vec![e(0, 5, 3), e(1, 6, 12), e(2, 7, 23)],
        vec![e(0, 8, 0), e(1, 9, 6)],
        vec![e(0, 10, 11)],
    ]
}

/// The fixed tests' left rows of days 2..=4.
fn fixed_seed_left() -> Vec<Vec<(Option<u8>, i64)>> {
    vec![
        vec![],
        vec![],
        vec![(Some(0), 10 * 3_600_000), (Some(1), 13 * 3_600_000)],
        vec![(Some(0), 0), (None, 3_600_000)],
        vec![(Some(0), 12 * 3_600_000), (Some(2), 23 * 3_600_000)],
    ]
}

/// Every kind of delta once, in a fixed order, on fixed data.
#[test]
fn each_kind_of_delta_in_turn() {
    let e = fixed_event;
    let (seed_events, seed_left) = (fixed_seed_events(), fixed_seed_left());
    // the second update of days 2 and 3 retracts a row of the day before's snapshot (an
    // `is_before` mutation) before inserting its own
    let seed_entity = vec![
        vec![e(0, 1, 1)],
        vec![e(0, 2, 1), e(1, 3, 2)],
        vec![e(1, 4, 3), e(0, 9, 5)],
        vec![e(0, 5, 4), e(1, 8, 6)],
        vec![e(2, 6, 5)],
    ];
    let deltas = vec![
        Delta::AppendDay {
            left: vec![(Some(0), 9 * 3_600_000), (Some(1), 0)],
            events: vec![e(0, 11, 1), e(1, 12, 8)],
            entity: vec![e(0, 7, 1)],
        },
        Delta::ReLandEvents {
            day: 3,
            events: vec![e(0, 100, 1), e(1, 200, 2)],
        },
        Delta::ShrinkEvents {
            day: 2,
            keep: vec![true, false, false],
        },
        Delta::ShrinkEvents {
            day: 4,
            keep: vec![],
        },
        Delta::LateEvents {
            day: 1,
            events: vec![e(0, 1000, 23), e(2, 2000, 0)],
        },
        Delta::ReLandLeft {
            day: 1,
            left: vec![(Some(1), 4 * 3_600_000)],
        },
        Delta::ReLandEntity {
            day: 4,
            entity: vec![e(0, 50, 2), e(0, 60, 30)],
        },
        Delta::DropLeft { day: 1 },
        Delta::DropOldestEvents,
        // the removed partition lands again: maintained days whose windows reach it see it
        Delta::ReLandEvents {
            day: 0,
            events: vec![e(0, 77, 3), e(1, 5, 20)],
        },
        Delta::AppendDay {
            left: vec![(Some(2), 5)],
            events: vec![],
            entity: vec![],
        },
    ];
    let retractions = initial_world(&seed_events, &seed_left, &seed_entity)
        .db
        .table("data.entity_mutations")
        .parts
        .values()
        .flatten()
        .filter(|r| r[4] == V::Bool(true))
        .count();
    assert!(retractions >= 2, "{retractions} is_before mutations");
    for j in [join(), join_all_kinds()] {
        let w = initial_world(&seed_events, &seed_left, &seed_entity);
        if let Err(e) = run_deltas(&j, w, &deltas) {
            panic!("{}: {e}", j["metaData"]["name"]);
        }
    }
}

/// A new process starts from the aggregates the last one stored (`Delta::Restart`): it reads
/// only the source days the bounded windows reach and computes what a run over all history
/// computes (`check_state` after every run). Aggregates whose covered partitions changed are
/// not used, and aggregates in use are dropped as soon as a covered partition changes.
#[test]
fn restarts_start_from_stored_aggregates() {
    let e = fixed_event;
    let (seed_events, seed_left) = (fixed_seed_events(), fixed_seed_left());
    let day_n = |n: i64| Delta::AppendDay {
        left: vec![
            (Some((n % 3) as u8), n * 3_600_000),
            (Some(0), 20 * 3_600_000),
        ],
        events: vec![e(0, n, 0), e(1, 2 * n, 7), e((n % 3) as u8, n + 1, 23)],
        entity: vec![e(0, n, 1)],
    };
    let mut deltas: Vec<Delta> = (5..10).map(day_n).collect();
    // 5: the next process starts from the stored aggregates
    deltas.extend([Delta::Restart, day_n(10)]);
    // 7: a covered partition changed before the next process: they are not used
    deltas.extend([
        Delta::Restart,
        Delta::ReLandEvents {
            day: 0,
            events: vec![e(0, 70, 3)],
        },
        day_n(11),
    ]);
    // 10: stored again after that, used again; then a covered partition changes while
    // they are in use: retracted, and all history read
    deltas.extend([
        Delta::Restart,
        day_n(12),
        Delta::LateEvents {
            day: 1,
            events: vec![e(1, 500, 4)],
        },
        day_n(13),
    ]);
    for (j, parts) in [(join(), 2usize), (join_all_kinds(), 3)] {
        let name = j["metaData"]["name"].as_str().unwrap().to_string();
        let w = initial_world(&seed_events, &seed_left, &[]);
        let reports = match run_deltas(&j, w, &deltas) {
            Ok(r) => r,
            Err(e) => panic!("{name}: {e}"),
        };
        // reports[0] is the first run, reports[i + 1] the run after delta i
        let after = |i: usize| &reports[i + 1];
        let used = |i: usize| after(i).from_stored.len();
        for (i, d) in deltas.iter().enumerate() {
            let want = match i {
                6 | 11 => parts,
                _ => 0,
            };
            assert_eq!(
                used(i),
                want,
                "{name}: run after delta {} ({d:?}): parts fed from stored aggregates {:?}",
                i + 1,
                after(i).from_stored
            );
        }
        // fed from stored aggregates, the run reads fewer source rows than there are (the
        // seed days and six appended days of three events), and the rows of the covered
        // partitions it reads are counted as stored
        let total: usize = seed_events.iter().map(Vec::len).sum::<usize>() + 6 * 3;
        for (part, st) in &after(6).events {
            if after(6).from_stored.iter().any(|(p, _)| p == part) {
                assert!(st.stored > 0, "{name}: {part}: {st:?}");
                assert!(
                    st.rows > 0 && (st.rows as usize) < total,
                    "{name}: {part}: {st:?} of {total} rows"
                );
            }
        }
    }
}

/// A stored-aggregate file that does not read fails the run that feeds it with an error naming
/// the file and what to do, and is set aside: the run after it reads all history and gives the
/// fresh backfill's output.
#[test]
fn a_damaged_stored_aggregate_file_is_an_error_then_set_aside() {
    let (seed_events, seed_left) = (fixed_seed_events(), fixed_seed_left());
    let w = initial_world(&seed_events, &seed_left, &[]);
    let j = join();
    let dir = tempfile::tempdir().unwrap();
    let wh = Warehouse::open(dir.path()).unwrap();
    data::write_db(&wh, &w.db);
    let mut w = w;
    let opts = |w: &World| options(&Run::through(&day(w.last_day)));
    let engine = Context::with_workers(&wh, 1).unwrap();
    let mut runner = JoinRunner::new(&conf::parse(&j)).unwrap();
    runner.run(&engine, &opts(&w), &|_, _, _| {}).unwrap();
    let stored = runner.store_aggregates().unwrap();
    assert_eq!(stored.len(), 2, "{stored:?}");
    drop(runner);
    // damage every stored file
    let mut damaged = 0;
    let mut stack = vec![dir.path().join(".weft-aggregates")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                std::fs::write(&p, b"not parquet").unwrap();
                damaged += 1;
            }
        }
    }
    assert!(damaged >= 1, "{damaged} files");
    let e = fixed_event;
    apply(
        &mut w,
        &wh,
        &Delta::AppendDay {
            left: vec![(Some(0), 3_600_000)],
            events: vec![e(0, 5, 2)],
            entity: vec![],
        },
    );
    let engine = Context::with_workers(&wh, 1).unwrap();
    let mut runner = JoinRunner::new(&conf::parse(&j)).unwrap();
    let err = runner
        .run(&engine, &opts(&w), &|_, _, _| {})
        .expect_err("a damaged file fails the run that feeds it")
        .to_string();
    assert!(
        err.contains("stored aggregates did not read")
            && err.contains(".parquet")
            && err.contains("run again"),
        "{err}"
    );
    // set aside: a new run reads all history
    let mut runner = JoinRunner::new(&conf::parse(&j)).unwrap();
    let r = runner.run(&engine, &opts(&w), &|_, _, _| {}).unwrap();
    assert!(r.from_stored.is_empty(), "{:?}", r.from_stored);
    assert_eq!(r.written.len(), 1, "{:?}", r.written);
    check_state(
        &wh,
        &w,
        &j,
        &(Actual::default(), BTreeMap::new()),
        "after the damaged file",
    )
    .unwrap();
}
