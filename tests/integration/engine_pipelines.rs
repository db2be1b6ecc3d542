//! One engine, several pipelines: three joins that share a GroupBy, and that GroupBy's own
//! backfill table, are installed into ONE [`Engine`] (one timely runtime, two workers),
//! stepped together, then fed deltas — a new
//! day, a re-landed event partition, late events, a re-landed left partition — with
//! `step_all` after each. After every delta each join's output must equal a
//! fresh backfill of the same inputs (a new engine on a copy of the warehouse) and the
//! reference of tests/reference, and the GroupBy table a fresh GroupBy backfill; the runtime
//! must host exactly the four dataflows; removing
//! a pipeline takes its dataflow out of the runtime and leaves the others running.

use std::path::Path;

use serde_json::Value as J;
use weft::config::{parse_conf, Conf};
use weft::engine::{Context, Engine, PipelineConf, RunOptions};
use weft::warehouse::Warehouse;

use crate::reference::conf::{self, W};
use crate::reference::data::{self, read_table};
use crate::reference::harness::{
    backfill, compare, copy_warehouse_without, options, outputs_equal,
};
use crate::reference::{
    ds_shift, ds_start, expected, output_table, Db, Lcg, Op, Run, Table, Ty, DAY, V,
};

const BASE: &str = "2026-03-01";

fn day(i: i64) -> String {
    ds_shift(BASE, i)
}

/// The GroupBy every join reads (same name, same config: shared).
fn shared_group_by() -> J {
    conf::group_by(
        "test.shared_events.v1",
        vec![conf::events_source(
            "data.events",
            &["user", "val"],
            Some("ts"),
        )],
        &["user"],
        Some(vec![
            conf::agg("val", Op::Sum, &[W::Hours(6), W::Days(2)], &[], &[]),
            conf::agg("val", Op::Count, &[W::Unbounded], &[], &[]),
        ]),
        Some(0),
    )
}

fn joins() -> Vec<J> {
    let snapshot = conf::group_by(
        "test.snapshot_events.v1",
        vec![conf::events_source(
            "data.events",
            &["user", "val"],
            Some("ts"),
        )],
        &["user"],
        Some(vec![conf::agg("val", Op::Max, &[W::Days(3)], &[], &[])]),
        Some(1),
    );
    vec![
        conf::join(
            "test.engine_a.v1",
            conf::events_left("data.left", &["row_id", "user"]),
            vec![conf::part(shared_group_by(), &[], None)],
        ),
        conf::join(
            "test.engine_b.v1",
            conf::events_left("data.left", &["row_id", "user"]),
            vec![
                conf::part(shared_group_by(), &[], Some("b")),
                conf::part(snapshot, &[], None),
            ],
        ),
        conf::join(
            "test.engine_c.v1",
            conf::events_left("data.buyers", &["row_id", "buyer"]),
            vec![conf::part(shared_group_by(), &[("buyer", "user")], None)],
        ),
    ]
}

struct World {
    db: Db,
    gen: Lcg,
    next_row: i64,
    last_day: i64,
}

impl World {
    fn new() -> World {
        let mut db = Db::default();
        db.add(
            "data.left",
            Table::new(&[("row_id", Ty::I64), ("user", Ty::Str), ("ts", Ty::I64)]),
        );
        db.add(
            "data.buyers",
            Table::new(&[("row_id", Ty::I64), ("buyer", Ty::Str), ("ts", Ty::I64)]),
        );
        db.add(
            "data.events",
            Table::new(&[("user", Ty::Str), ("val", Ty::I64), ("ts", Ty::I64)]),
        );
        let mut w = World {
            db,
            gen: Lcg(7),
            next_row: 0,
            last_day: -1,
        };
        for _ in 0..4 {
            w.append_day();
        }
        w
    }

    fn events(&mut self, d: i64, n: usize) -> Vec<Vec<V>> {
        (0..n)
            .map(|_| {
                let ms = self.gen.next(DAY as u64) as i64;
                vec![
                    V::Str(format!("u{}", self.gen.next(4))),
                    V::Int(1 + self.gen.next(20) as i64),
                    V::Int(ds_start(&day(d)) + ms),
                ]
            })
            .collect()
    }

    fn lefts(&mut self, d: i64, n: usize) -> Vec<Vec<V>> {
        (0..n)
            .map(|_| {
                self.next_row += 1;
                let ms = self.gen.next(DAY as u64) as i64;
                vec![
                    V::Int(self.next_row),
                    V::Str(format!("u{}", self.gen.next(4))),
                    V::Int(ds_start(&day(d)) + ms),
                ]
            })
            .collect()
    }

    fn append_day(&mut self) {
        self.last_day += 1;
        let d = self.last_day;
        let ev = self.events(d, 8);
        self.db.table_mut("data.events").parts.insert(day(d), ev);
        if d >= 1 {
            let l = self.lefts(d, 4);
            self.db.table_mut("data.left").parts.insert(day(d), l);
            let b = self.lefts(d, 3);
            self.db.table_mut("data.buyers").parts.insert(day(d), b);
        }
    }
}

/// The shared GroupBy as a pipeline of its own: its backfill table from day 0.
fn group_by_table() -> weft::config::GroupBy {
    let mut g = shared_group_by();
    g["metaData"]["outputNamespace"] = J::String("test".into());
    g["backfillStartDate"] = J::String(day(0));
    let Conf::GroupBy(g) = parse_conf(
        Path::new("production/group_bys/test/shared_events.v1"),
        &g.to_string(),
    )
    .unwrap() else {
        panic!("a GroupBy")
    };
    *g
}

fn check(wh: &Warehouse, w: &World, when: &str) {
    let run = Run::through(&day(w.last_day));
    // the GroupBy table == a fresh GroupBy backfill of the same inputs
    let gb = group_by_table();
    let out = gb.meta_data.output_table().unwrap();
    let copy = tempfile::tempdir().unwrap();
    copy_warehouse_without(wh.root(), copy.path(), &out);
    let fresh_wh = Warehouse::open(copy.path()).unwrap();
    let opts = weft::engine::GroupByOptions {
        start: None,
        end: data::ds(&day(w.last_day)),
        step_days: 30,
        verify_existing: false,
    };
    let cx = Context::new(&fresh_wh).unwrap();
    weft::engine::backfill_group_by(&cx, &gb, &opts, &|_, _, _| {}).unwrap();
    let table = read_table(wh, &out);
    assert!(
        !table.parts.is_empty(),
        "{when}: the GroupBy table has rows"
    );
    assert_eq!(
        table,
        read_table(&fresh_wh, &out),
        "{when}: GroupBy table == fresh backfill"
    );
    for j in joins() {
        let out = output_table(&j);
        let incremental = read_table(wh, &out);
        let copy = tempfile::tempdir().unwrap();
        copy_warehouse_without(wh.root(), copy.path(), &out);
        let fresh_wh = Warehouse::open(copy.path()).unwrap();
        backfill(&fresh_wh, &j, &options(&run)).unwrap_or_else(|e| panic!("{when}: {out}: {e}"));
        let fresh = read_table(&fresh_wh, &out);
        outputs_equal(&incremental, &fresh, "engine", "fresh backfill")
            .unwrap_or_else(|e| panic!("{when}: {out}: {e}"));
        compare(&expected(&j, &w.db, &run), &incremental)
            .unwrap_or_else(|e| panic!("{when}: {out}: {e}"));
    }
}

fn step(engine: &mut Engine, w: &World, when: &str) -> usize {
    let opts = RunOptions::through(data::ds(&day(w.last_day)));
    let mut written = 0;
    for (id, r) in engine.step_all(&opts, &|_, _, _| {}) {
        let r = r.unwrap_or_else(|e| panic!("{when}: {id}: {e}"));
        written += r.written().len() + r.rewritten().len();
    }
    written
}

#[test]
fn joins_and_a_group_by_table_sharing_a_group_by_stay_equal_to_fresh_runs_in_one_engine() {
    let dir = tempfile::tempdir().unwrap();
    let wh = Warehouse::open(dir.path()).unwrap();
    let mut w = World::new();
    data::write_db(&wh, &w.db);
    let mut engine = Engine::new(Context::with_workers(&wh, 2).unwrap());
    let mut ids = Vec::new();
    for j in joins() {
        ids.push(
            engine
                .install(PipelineConf::Join(Box::new(conf::parse(&j))))
                .unwrap(),
        );
    }
    ids.push(
        engine
            .install(PipelineConf::GroupBy(Box::new(group_by_table())))
            .unwrap(),
    );
    assert!(step(&mut engine, &w, "first step") > 0);
    let rt = engine.context().runtime().unwrap();
    assert_eq!(rt.workers(), 2);
    assert_eq!(
        rt.dataflows(),
        4,
        "one runtime hosts the joins' and the GroupBy table's dataflows"
    );
    check(&wh, &w, "first step");

    // a new day
    w.append_day();
    for t in ["data.events", "data.left", "data.buyers"] {
        data::write_partition(&wh, &w.db, t, &day(w.last_day));
    }
    step(&mut engine, &w, "new day");
    check(&wh, &w, "new day");

    // an event partition re-landed with other rows: every join that reads it is updated
    let ev = w.events(2, 6);
    w.db.table_mut("data.events").parts.insert(day(2), ev);
    data::write_partition(&wh, &w.db, "data.events", &day(2));
    assert!(
        step(&mut engine, &w, "re-landed events") > 0,
        "a re-landed source rewrites outputs"
    );
    check(&wh, &w, "re-landed events");

    // late events appended to an old day
    let late = w.events(3, 3);
    w.db.table_mut("data.events")
        .parts
        .get_mut(&day(3))
        .unwrap()
        .extend(late);
    data::write_partition(&wh, &w.db, "data.events", &day(3));
    step(&mut engine, &w, "late events");
    check(&wh, &w, "late events");

    // a left partition re-landed (only joins A and B read it)
    let l = w.lefts(2, 5);
    w.db.table_mut("data.left").parts.insert(day(2), l);
    data::write_partition(&wh, &w.db, "data.left", &day(2));
    step(&mut engine, &w, "re-landed left");
    check(&wh, &w, "re-landed left");

    // nothing changed: nothing is written
    assert_eq!(
        step(&mut engine, &w, "no change"),
        0,
        "an idle step writes nothing"
    );

    // removing a pipeline takes its dataflow out of the runtime; the others keep going
    assert!(engine.remove(&ids[1]));
    assert_eq!(engine.context().runtime().unwrap().dataflows(), 3);
    w.append_day();
    for t in ["data.events", "data.left", "data.buyers"] {
        data::write_partition(&wh, &w.db, t, &day(w.last_day));
    }
    step(&mut engine, &w, "after removal");
    let a = read_table(&wh, &output_table(&joins()[0]));
    assert!(
        a.parts.contains_key(&day(w.last_day)),
        "join A still maintained"
    );
    let b = read_table(&wh, &output_table(&joins()[1]));
    assert!(
        !b.parts.contains_key(&day(w.last_day)),
        "a removed join is no longer maintained"
    );
    assert!(
        b.parts.contains_key(&day(w.last_day - 1)),
        "its tables stay as they are"
    );
}

#[test]
fn step_all_runs_producers_before_consumers() {
    // a staging query whose table the join's left reads is stepped first, whatever the ids
    let dir = tempfile::tempdir().unwrap();
    let wh = Warehouse::open(dir.path()).unwrap();
    let w = World::new();
    data::write_db(&wh, &w.db);
    let doc = serde_json::json!({
        "metaData": {"name": "zz.stage.v1", "outputNamespace": "data"},
        "query": "SELECT row_id, user, ts, ds FROM data.left WHERE ds BETWEEN '{{ start_date }}' AND '{{ end_date }}'",
        "startPartition": day(1),
    });
    let Conf::StagingQuery(sq) =
        parse_conf(Path::new("staging_queries/zz/stage.v1"), &doc.to_string()).unwrap()
    else {
        panic!("a staging query")
    };
    let staged = "data.zz_stage_v1";
    let mut j = joins().remove(0);
    j["left"]["events"]["table"] = J::String(staged.into());
    j["metaData"]["name"] = J::String("aa.reads_stage.v1".into());
    let mut engine = Engine::new(Context::new(&wh).unwrap());
    let join_id = engine
        .install(PipelineConf::Join(Box::new(conf::parse(&j))))
        .unwrap();
    let sq_id = engine.install(PipelineConf::StagingQuery(sq)).unwrap();
    assert_eq!(engine.order(), vec![sq_id, join_id]);
    step(&mut engine, &w, "staged");
    let out = read_table(&wh, &output_table(&j));
    assert_eq!(
        out.parts.len(),
        3,
        "the join read the staged left for days 1..=3"
    );
}
