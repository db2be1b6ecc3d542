//! `weft materialize` against from-scratch backfills: a config folder with two joins (one
//! with a bootstrap part whose table lands late) and a GroupBy table, all reading one event
//! source, is materialized with `--once` semantics after every action of a seeded script —
//! land a day (sources, then the left), re-land an event partition, append late events,
//! re-land a left partition, land the bootstrap table, restart the materializer — and after
//! each, every maintained table equals a fresh backfill of the same inputs (and the joins the
//! reference of tests/reference). Also: a day is not computed before every partition its
//! dependencies name exists, a second materializer on the same state folder is refused, and
//! the HTTP side answers status, queries (read-only) and refreshes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use serde_json::{json, Value as J};
use weft::config::{parse_conf, Conf};
use weft::engine::{backfill_group_by, Context, GroupByOptions};
use weft::materialize::{Materializer, Options};
use weft::warehouse::Warehouse;

use crate::reference::conf::{self, W};
use crate::reference::data::{self, read_table};
use crate::reference::harness::{
    backfill, compare, copy_warehouse_without, options, outputs_equal,
};
use crate::reference::{
    ds_shift, ds_start, expected, output_table, Db, Lcg, Op, Run, Table, Ty, DAY, V,
};

const BASE: &str = "2026-04-01";

pub(crate) fn day(i: i64) -> String {
    ds_shift(BASE, i)
}

fn dep(table: &str) -> J {
    J::String(json!({"name": format!("wait_for_{table}"), "spec": format!("{table}/ds={{{{ ds }}}}"), "start": null, "end": null}).to_string())
}

pub(crate) fn events_group_by(name: &str) -> J {
    conf::group_by(
        name,
        vec![conf::events_source(
            "data.events",
            &["user", "val"],
            Some("ts"),
        )],
        &["user"],
        Some(vec![
            conf::agg("val", Op::Sum, &[W::Days(2)], &[], &[]),
            conf::agg("val", Op::Count, &[W::Unbounded], &[], &[]),
        ]),
        Some(0),
    )
}

/// The joins, each waiting for its left and the events of the day.
pub(crate) fn joins() -> Vec<J> {
    let mut a = conf::join(
        "test.mat_a.v1",
        conf::events_left("data.left", &["row_id", "user"]),
        vec![conf::part(events_group_by("test.mat_events.v1"), &[], None)],
    );
    a["metaData"]["dependencies"] = json!([dep("data.left"), dep("data.events")]);
    let mut b = conf::join(
        "test.mat_b.v1",
        conf::events_left("data.left", &["row_id", "user"]),
        vec![conf::part(
            events_group_by("test.mat_events.v1"),
            &[],
            Some("b"),
        )],
    );
    b["metaData"]["dependencies"] = json!([dep("data.left"), dep("data.events")]);
    // bootstrapped by row id from a table that lands late
    b["rowIds"] = json!(["row_id"]);
    b["bootstrapParts"] = json!([{"table": "data.boot", "keyColumns": ["row_id"]}]);
    vec![a, b]
}

/// The GroupBy table, from day 0.
fn group_by() -> J {
    let mut g = events_group_by("test.mat_events.v1");
    g["metaData"]["outputNamespace"] = json!("test");
    g["metaData"]["dependencies"] = json!([dep("data.events")]);
    g["backfillStartDate"] = json!(day(0));
    g
}

fn write_confs(root: &Path) {
    for j in joins() {
        let name = j["metaData"]["name"].as_str().unwrap().to_string();
        let (team, rest) = name.split_once('.').unwrap();
        let dir = root.join("joins").join(team);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(rest), serde_json::to_string_pretty(&j).unwrap()).unwrap();
    }
    let dir = root.join("group_bys/test");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("mat_events.v1"),
        serde_json::to_string_pretty(&group_by()).unwrap(),
    )
    .unwrap();
}

pub(crate) struct World {
    pub(crate) db: Db,
    gen: Lcg,
    next_row: i64,
    /// Days with events (the left starts a day later).
    pub(crate) last_day: i64,
}

impl World {
    pub(crate) fn new(seed: u64) -> World {
        let mut db = Db::default();
        db.add(
            "data.left",
            Table::new(&[("row_id", Ty::I64), ("user", Ty::Str), ("ts", Ty::I64)]),
        );
        db.add(
            "data.events",
            Table::new(&[("user", Ty::Str), ("val", Ty::I64), ("ts", Ty::I64)]),
        );
        let mut w = World {
            db,
            gen: Lcg(seed),
            next_row: 0,
            last_day: -1,
        };
        for _ in 0..3 {
            w.add_events_day();
            w.add_left_day();
        }
        w
    }
    fn user(&mut self) -> V {
        V::Str(format!("u{}", self.gen.next(3)))
    }
    fn events(&mut self, d: i64, n: usize) -> Vec<Vec<V>> {
        (0..n)
            .map(|_| {
                let ms = self.gen.next(DAY as u64) as i64;
                vec![
                    self.user(),
                    V::Int(1 + self.gen.next(9) as i64),
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
                    self.user(),
                    V::Int(ds_start(&day(d)) + ms),
                ]
            })
            .collect()
    }
    pub(crate) fn add_events_day(&mut self) {
        self.last_day += 1;
        let d = self.last_day;
        let e = self.events(d, 5);
        self.db.table_mut("data.events").parts.insert(day(d), e);
    }
    pub(crate) fn add_left_day(&mut self) {
        let d = self.last_day;
        if d >= 1 {
            let l = self.lefts(d, 3);
            self.db.table_mut("data.left").parts.insert(day(d), l);
        }
    }
    /// A new day lands in the warehouse: its events, then its left rows. Returns the day.
    pub(crate) fn land_day(&mut self, wh: &Warehouse) -> i64 {
        self.add_events_day();
        self.add_left_day();
        let d = self.last_day;
        data::write_partition(wh, &self.db, "data.events", &day(d));
        data::write_partition(wh, &self.db, "data.left", &day(d));
        d
    }

    /// The last day with both events and left rows.
    pub(crate) fn complete_through(&self) -> i64 {
        let left = &self.db.table("data.left").parts;
        (0..=self.last_day)
            .rev()
            .find(|d| left.contains_key(&day(*d)))
            .unwrap_or(0)
    }
}

#[derive(Debug, Clone)]
enum Action {
    /// A new day's events land, and (unless `left_late`) its left rows.
    LandDay {
        left_late: bool,
    },
    /// The left rows of the last day land (after its events).
    LandLeft,
    ReLandEvents {
        day: usize,
    },
    LateEvents {
        day: usize,
    },
    ReLandLeft {
        day: usize,
    },
    /// The bootstrap table lands (or grows): bootstrapped values for some left rows.
    LandBootstrap {
        every: u8,
    },
    /// A crash: the materializer is dropped and opened again.
    Restart,
    /// A stop: the materializer stores its joins' aggregates (as `weft materialize` does when
    /// it stops), then is opened again.
    Stop,
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        3 => any::<bool>().prop_map(|left_late| Action::LandDay { left_late }),
        1 => Just(Action::LandLeft),
        2 => (0usize..50).prop_map(|day| Action::ReLandEvents { day }),
        2 => (0usize..50).prop_map(|day| Action::LateEvents { day }),
        1 => (0usize..50).prop_map(|day| Action::ReLandLeft { day }),
        1 => (2u8..4).prop_map(|every| Action::LandBootstrap { every }),
        1 => Just(Action::Restart),
        1 => Just(Action::Stop),
    ]
}

pub(crate) struct Harness {
    _dir: tempfile::TempDir,
    pub(crate) wh: Warehouse,
    pub(crate) confs: PathBuf,
    pub(crate) state: PathBuf,
    pub(crate) m: Option<Materializer>,
    boot: Option<Vec<(i64, i64)>>,
    topology: weft::dataflow::Topology,
}

impl Harness {
    pub(crate) fn new(w: &World) -> Harness {
        Self::with_topology(w, weft::dataflow::Topology::local(2))
    }

    /// A harness whose materializer runs on `topology` (e.g. as process 0 of a cluster).
    pub(crate) fn with_topology(w: &World, topology: weft::dataflow::Topology) -> Harness {
        let mut h = Self::prepare(w, topology);
        h.open();
        h
    }

    /// The warehouse and configs, before the materializer opens.
    pub(crate) fn prepare(w: &World, topology: weft::dataflow::Topology) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let wh = Warehouse::open(dir.path().join("warehouse")).unwrap();
        data::write_db(&wh, &w.db);
        let confs = dir.path().join("production");
        write_confs(&confs);
        let state = dir.path().join("state");
        Harness {
            _dir: dir,
            wh,
            confs,
            state,
            m: None,
            boot: None,
            topology,
        }
    }

    pub(crate) fn open(&mut self) {
        self.m = None;
        self.m = Some(
            Materializer::open(
                &self.wh,
                Options {
                    confs: vec![self.confs.clone()],
                    state_dir: self.state.clone(),
                    end_ds: None,
                    topology: self.topology.clone(),
                    log_table: "default.chronon_log_table".into(),
                },
            )
            .unwrap(),
        );
    }
    /// The bootstrap table lands: every `every`-th left row gets a bootstrapped value.
    pub(crate) fn land_boot(&mut self, w: &World, every: u8) {
        self.boot = Some(write_boot(&self.wh, w, every));
    }

    pub(crate) fn materialize(&mut self, when: &str) -> Vec<weft::materialize::state::Manifest> {
        let ms = self.m.as_mut().unwrap().run_until_idle().unwrap();
        for p in &ms.last().unwrap().pipelines {
            assert!(
                p.error.is_none(),
                "{when}: {} failed: {:?}",
                p.name,
                p.error
            );
        }
        ms
    }
}

fn write_boot(wh: &Warehouse, w: &World, every: u8) -> Vec<(i64, i64)> {
    // every `every`-th left row gets a bootstrapped value, in one partition per left day
    let mut t = Table::new(&[
        ("row_id", Ty::I64),
        ("b_test_mat_events_v1_val_sum_2d", Ty::I64),
    ]);
    let mut rows = Vec::new();
    for (ds, part) in &w.db.table("data.left").parts {
        for r in part {
            let V::Int(id) = r[0] else { panic!() };
            if id % every as i64 == 0 {
                t.push(ds, vec![V::Int(id), V::Int(1000 + id)]);
                rows.push((id, 1000 + id));
            }
        }
    }
    let mut db = Db::default();
    db.add("data.boot", t);
    data::write_db(wh, &db);
    rows
}

/// Every maintained table equals a fresh backfill of the same inputs.
pub(crate) fn check(h: &Harness, w: &World, when: &str) {
    let through = w.complete_through();
    let run = Run::through(&day(through));
    for j in joins() {
        let out = output_table(&j);
        let got = read_table(&h.wh, &out);
        let copy = tempfile::tempdir().unwrap();
        copy_warehouse_without(h.wh.root(), copy.path(), &out);
        let fresh_wh = Warehouse::open(copy.path()).unwrap();
        let mut jj = j.clone();
        if h.boot.is_none() {
            jj["bootstrapParts"] = json!([]);
        }
        backfill(&fresh_wh, &jj, &options(&run)).unwrap_or_else(|e| panic!("{when}: {out}: {e}"));
        outputs_equal(
            &got,
            &read_table(&fresh_wh, &out),
            "materialized",
            "fresh backfill",
        )
        .unwrap_or_else(|e| panic!("{when}: {out}: {e}"));
        if j["bootstrapParts"].as_array().is_none_or(|b| b.is_empty()) {
            compare(&expected(&j, &w.db, &run), &got)
                .unwrap_or_else(|e| panic!("{when}: {out}: {e}"));
        }
    }
    // the GroupBy table
    let g = group_by();
    let out = "test.test_mat_events_v1";
    let copy = tempfile::tempdir().unwrap();
    copy_warehouse_without(h.wh.root(), copy.path(), out);
    let fresh_wh = Warehouse::open(copy.path()).unwrap();
    let Conf::GroupBy(gb) = parse_conf(
        Path::new("production/group_bys/test/mat_events.v1"),
        &g.to_string(),
    )
    .unwrap() else {
        panic!()
    };
    let cx = Context::new(&fresh_wh).unwrap();
    let opts = GroupByOptions {
        start: None,
        end: data::ds(&day(w.last_day)),
        step_days: 30,
        verify_existing: false,
    };
    backfill_group_by(&cx, &gb, &opts, &|_, _, _| {}).unwrap();
    assert_eq!(
        read_table(&h.wh, out),
        read_table(&fresh_wh, out),
        "{when}: GroupBy table"
    );
}

fn apply(h: &mut Harness, w: &mut World, a: &Action) {
    let days = (w.last_day + 1) as usize;
    match a {
        Action::LandDay { left_late } => {
            w.add_events_day();
            data::write_partition(&h.wh, &w.db, "data.events", &day(w.last_day));
            if !left_late {
                w.add_left_day();
                data::write_partition(&h.wh, &w.db, "data.left", &day(w.last_day));
            }
        }
        Action::LandLeft => {
            let d = day(w.last_day);
            if !w.db.table("data.left").parts.contains_key(&d) {
                w.add_left_day();
                data::write_partition(&h.wh, &w.db, "data.left", &d);
            }
        }
        Action::ReLandEvents { day: i } => {
            let d = (*i % days) as i64;
            let e = w.events(d, 4);
            w.db.table_mut("data.events").parts.insert(day(d), e);
            data::write_partition(&h.wh, &w.db, "data.events", &day(d));
        }
        Action::LateEvents { day: i } => {
            let d = (*i % days) as i64;
            let e = w.events(d, 2);
            w.db.table_mut("data.events")
                .parts
                .get_mut(&day(d))
                .unwrap()
                .extend(e);
            data::write_partition(&h.wh, &w.db, "data.events", &day(d));
        }
        Action::ReLandLeft { day: i } => {
            let left: Vec<String> = w.db.table("data.left").parts.keys().cloned().collect();
            let d = &left[*i % left.len()];
            let idx = (ds_start(d) - ds_start(BASE)) / DAY;
            let l = w.lefts(idx, 2);
            w.db.table_mut("data.left").parts.insert(d.clone(), l);
            data::write_partition(&h.wh, &w.db, "data.left", d);
        }
        Action::LandBootstrap { every } => {
            h.boot = Some(write_boot(&h.wh, w, *every));
        }
        Action::Restart => h.open(),
        Action::Stop => {
            for (id, r) in h.m.as_mut().unwrap().engine_mut().store_aggregates() {
                r.unwrap_or_else(|e| panic!("{id}: storing aggregates: {e}"));
            }
            h.open();
        }
    }
}

fn script(seed: u64, actions: &[Action]) {
    let mut w = World::new(seed);
    let mut h = Harness::new(&w);
    h.materialize("first epoch");
    check(&h, &w, "first epoch");
    for (i, a) in actions.iter().enumerate() {
        apply(&mut h, &mut w, a);
        let when = format!("after action {} ({a:?})", i + 1);
        h.materialize(&when);
        check(&h, &w, &when);
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: crate::cases(None, 12),
        failure_persistence: crate::regressions_beside_suite(),
        ..ProptestConfig::default()
    })]

    #[test]
    fn materialized_tables_equal_fresh_backfills_after_every_action(
        seed in 0u64..1000,
        actions in prop::collection::vec(action(), 1..7),
    ) {
        script(seed, &actions);
    }
}

#[test]
fn a_fixed_script_covers_every_action() {
    use Action::*;
    script(
        7,
        &[
            LandDay { left_late: true },
            LandLeft,
            ReLandEvents { day: 1 },
            LateEvents { day: 2 },
            LandBootstrap { every: 2 },
            Restart,
            ReLandLeft { day: 0 },
            LandDay { left_late: false },
            Stop,
            LandDay { left_late: false },
        ],
    );
}

#[test]
fn a_day_waits_for_every_dependency_and_a_late_bootstrap_table_rewrites_it() {
    let mut w = World::new(3);
    let mut h = Harness::new(&w);
    h.materialize("first");
    let a = output_table(&joins()[0]);
    let last = day(w.last_day);
    assert!(read_table(&h.wh, &a).parts.contains_key(&last));
    // events of a new day without its left: nothing for that day
    apply(&mut h, &mut w, &Action::LandDay { left_late: true });
    let ms = h.materialize("events only");
    assert!(!read_table(&h.wh, &a).parts.contains_key(&day(w.last_day)));
    let p = ms[0]
        .pipelines
        .iter()
        .find(|p| p.name == "joins/test.mat_a.v1")
        .unwrap();
    assert_eq!(
        p.ready_through.as_deref(),
        Some(last.as_str()),
        "ready through the last complete day"
    );
    let st = h.m.as_ref().unwrap().shared.status.lock().unwrap().clone();
    let a_status = st
        .pipelines
        .iter()
        .find(|p| p.name == "joins/test.mat_a.v1")
        .unwrap();
    assert_eq!(
        a_status.pending,
        vec![format!("data.left/ds={}", day(w.last_day))],
        "it waits for the left of the new day"
    );
    // the lag counts from when the day's first input landed: its events, two minutes ago
    let events_dir =
        h.wh.root()
            .join("data/events")
            .join(format!("ds={}", day(w.last_day)));
    std::fs::File::open(&events_dir)
        .unwrap()
        .set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(120))
        .unwrap();
    h.materialize("events two minutes old");
    let st = h.m.as_ref().unwrap().shared.status.lock().unwrap().clone();
    let lag = st
        .pipelines
        .iter()
        .find(|p| p.name == "joins/test.mat_a.v1")
        .unwrap()
        .lag_seconds;
    assert!((120..200).contains(&lag), "lag {lag}");
    // the left lands: the day is computed
    apply(&mut h, &mut w, &Action::LandLeft);
    h.materialize("left landed");
    assert!(read_table(&h.wh, &a).parts.contains_key(&day(w.last_day)));
    // the bootstrap table lands after its days were computed: they are rewritten with it
    let b = output_table(&joins()[1]);
    let before = read_table(&h.wh, &b);
    apply(&mut h, &mut w, &Action::LandBootstrap { every: 2 });
    let ms = h.materialize("bootstrap landed");
    let p = ms[0]
        .pipelines
        .iter()
        .find(|p| p.name == "joins/test.mat_b.v1")
        .unwrap();
    assert!(
        !p.rewritten.is_empty(),
        "the bootstrapped days are rewritten: {p:?}"
    );
    assert_ne!(read_table(&h.wh, &b), before);
    check(&h, &w, "bootstrap landed");
    // an idle epoch writes nothing
    let ms = h.materialize("idle");
    assert_eq!(ms.len(), 1);
    assert!(ms[0]
        .pipelines
        .iter()
        .all(|p| p.written.is_empty() && p.rewritten.is_empty()));
}

#[test]
fn a_second_materializer_on_the_same_state_folder_is_refused() {
    let w = World::new(5);
    let h = Harness::new(&w);
    let e = Materializer::open(
        &h.wh,
        Options {
            confs: vec![h.confs.clone()],
            state_dir: h.state.clone(),
            end_ds: None,
            topology: weft::dataflow::Topology::local(1),
            log_table: "default.chronon_log_table".into(),
        },
    )
    .err()
    .expect("refused");
    let m = e.to_string();
    assert!(
        m.contains("another weft materialize holds the state folder")
            && m.contains(&format!("pid {}", std::process::id())),
        "{m}"
    );
}

#[test]
fn the_http_side_answers_status_queries_and_refreshes() {
    use std::io::{Read, Write};
    let w = World::new(9);
    let mut h = Harness::new(&w);
    h.materialize("first");
    let m = h.m.as_ref().unwrap();
    let session = std::sync::Arc::new(weft::sql::Session::new(&h.wh).unwrap());
    let (tx, rx) = crossbeam_channel::unbounded();
    // the test keeps a handle: the session (and its runtime) is dropped outside the server's
    let state = weft::materialize::http::HttpState {
        shared: m.shared.clone(),
        session: session.clone(),
        refresh: tx,
    };
    let served = crate::serve_on_loopback(weft::materialize::http::router(state));
    let addr = served.addr;
    let call = move |method: &str, path: &str, body: &str| -> (u16, String) {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(20)))
            .unwrap();
        write!(s, "{method} {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len()).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        let code = out[9..12].parse().unwrap();
        let body = out
            .split_once("\r\n\r\n")
            .map(|x| x.1.to_string())
            .unwrap_or_default();
        (code, body)
    };
    let (code, body) = call("GET", "/v1/status", "");
    assert_eq!(code, 200);
    let st: J = serde_json::from_str(&body).unwrap();
    let epoch = st["epoch"].as_u64().expect("an epoch was committed");
    assert!(
        st["pipelines"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "joins/test.mat_a.v1" && p["latest_ds"] == day(w.last_day)),
        "{st}"
    );
    let out = output_table(&joins()[0]);
    let (code, body) = call(
        "POST",
        "/v1/query",
        &json!({"sql": format!("SELECT count(*) AS n FROM {out}")}).to_string(),
    );
    assert_eq!(code, 200, "{body}");
    let q: J = serde_json::from_str(&body).unwrap();
    let rows: usize = w.db.table("data.left").parts.values().map(Vec::len).sum();
    assert_eq!(q["epoch"], epoch);
    assert_eq!(q["columns"], json!(["n"]));
    assert_eq!(q["rows"][0]["n"], rows as i64);
    let (code, body) = call(
        "POST",
        "/v1/query",
        &json!({"sql": format!("DELETE FROM {out}")}).to_string(),
    );
    assert_eq!(code, 400);
    assert!(body.contains("read-only"), "{body}");
    let (code, body) = call("POST", "/v1/refresh", "");
    assert_eq!(code, 200);
    assert_eq!(
        serde_json::from_str::<J>(&body).unwrap()["epoch"],
        epoch + 1
    );
    assert!(
        rx.try_recv().is_ok(),
        "a refresh asks the epoch loop to scan"
    );
    // wait_for_epoch answers once the epoch is committed
    let shared = m.shared.clone();
    let path = format!("/v1/status?wait_for_epoch={}&timeout_secs=20", epoch + 1);
    let waiter = std::thread::spawn(move || call("GET", &path, ""));
    std::thread::sleep(std::time::Duration::from_millis(200));
    h.materialize("second");
    let (code, body) = waiter.join().unwrap();
    assert_eq!(code, 200);
    assert_eq!(
        serde_json::from_str::<J>(&body).unwrap()["epoch"],
        epoch + 1,
        "{body}"
    );
    assert_eq!(shared.status.lock().unwrap().epoch, Some(epoch + 1));
    let (code, page) = call("GET", "/", "");
    assert_eq!(code, 200);
    assert!(
        page.contains("joins/test.mat_a.v1") && page.contains("up to date"),
        "{page}"
    );
    let (_, metrics) = call("GET", "/metrics", "");
    assert!(
        metrics.contains(&format!("weft_materialize_epoch {}", epoch + 1)),
        "{metrics}"
    );
    // every metric is exported; the queries above were counted
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .filter(|l| l.starts_with(name) && !l.starts_with('#'))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
            .sum()
    };
    for name in [
        "weft_materialize_partitions_unchanged_total",
        "weft_materialize_rows_changed_total",
        "weft_materialize_skipped_rows_total",
        "weft_materialize_epoch_duration_seconds",
        "weft_materialize_query_duration_seconds_sum",
        "weft_materialize_queries_total",
    ] {
        assert!(
            metrics.contains(&format!("# TYPE {name} ")),
            "{name} missing: {metrics}"
        );
    }
    assert!(value("weft_materialize_queries_total") >= 1.0, "{metrics}");
}

#[test]
fn the_cli_materializes_once_queries_and_reports_status() {
    let w = World::new(11);
    let h = Harness::new(&w);
    drop(h.m); // the CLI takes the state folder's lock
    let weft = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_weft"))
            .arg("--warehouse")
            .arg(h.wh.root())
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let state = h.state.to_str().unwrap().to_string();
    let confs = h.confs.to_str().unwrap().to_string();
    let (code, out, err) = weft(&[
        "materialize",
        "--conf-root",
        &confs,
        "--state-dir",
        &state,
        "--once",
    ]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.contains("joins/test.mat_a.v1") && out.contains("committed epoch"),
        "{out}"
    );
    let a = output_table(&joins()[0]);
    let (code, out, err) = weft(&[
        "query",
        "--format",
        "csv",
        &format!("SELECT ds, count(*) AS n FROM {a} GROUP BY ds ORDER BY ds"),
    ]);
    assert_eq!(code, Some(0), "{err}");
    let left = &w.db.table("data.left").parts;
    let want: Vec<String> = std::iter::once("ds,n".to_string())
        .chain(left.iter().map(|(d, r)| format!("{d},{}", r.len())))
        .collect();
    assert_eq!(out.lines().collect::<Vec<_>>(), want);
    // --format parquet: the same rows, as a Parquet file on stdout
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_weft"))
        .arg("--warehouse")
        .arg(h.wh.root())
        .args([
            "query",
            "--format",
            "parquet",
            &format!("SELECT ds, count(*) AS n FROM {a} GROUP BY ds ORDER BY ds"),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let file = h.wh.root().join("result.parquet");
    std::fs::write(&file, &out.stdout).unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        std::fs::File::open(&file).unwrap(),
    )
    .unwrap()
    .build()
    .unwrap();
    let rows: usize = reader.map(|b| b.unwrap().num_rows()).sum();
    assert_eq!(rows, left.len());
    let (code, _, err) = weft(&["query", &format!("INSERT INTO {a} SELECT * FROM {a}")]);
    assert_eq!(code, Some(1));
    assert!(err.contains("read-only"), "{err}");
    let (code, out, err) = weft(&["materialize", "status", "--state-dir", &state]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("joins/test.mat_a.v1") && out.contains(&a),
        "{out}"
    );
    // a config that no longer parses stops only itself: exit 2, the others committed
    std::fs::write(h.confs.join("joins/test/broken.v1"), "{ not json").unwrap();
    let (code, out, err) = weft(&[
        "materialize",
        "--conf-root",
        &confs,
        "--state-dir",
        &state,
        "--once",
    ]);
    assert_eq!(code, Some(2), "{out}{err}");
    assert!(err.contains("broken.v1"), "{err}");
    assert!(out.contains("committed epoch"), "{out}");
}

#[test]
fn backfill_of_a_config_folder_runs_every_config_in_order_and_reports_the_failures() {
    let w = World::new(13);
    let mut h = Harness::new(&w);
    h.m = None; // its pipelines hold their tables' writer locks
    let confs = h.confs.to_str().unwrap().to_string();
    let end = day(w.complete_through());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_weft"))
        .arg("--warehouse")
        .arg(h.wh.root())
        .args(["backfill", "--conf", &confs, "--end-ds", &end])
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    // join B's bootstrap table does not exist: Chronon's error for it, the others done
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stderr.contains("data.boot"), "{stderr}");
    assert!(
        stdout.contains("joins/test.mat_a.v1:") && stdout.contains("group_bys/test.mat_events.v1:"),
        "{stdout}"
    );
    let j = &joins()[0];
    compare(
        &expected(j, &w.db, &Run::through(&end)),
        &read_table(&h.wh, &output_table(j)),
    )
    .unwrap();
    assert!(!read_table(&h.wh, "test.test_mat_events_v1")
        .parts
        .is_empty());
}

#[test]
fn a_table_another_writer_holds_is_refused_naming_the_holder() {
    let w = World::new(17);
    let h = Harness::new(&w);
    // the materializer holds its outputs: a backfill of one of them is refused, not interleaved
    let conf = h.confs.join("joins/test/mat_a.v1");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_weft"))
        .arg("--warehouse")
        .arg(h.wh.root())
        .args(["backfill", "--end-ds", &day(w.complete_through()), "--conf"])
        .arg(&conf)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("table `test.test_mat_a_v1`")
            && err.contains(&format!("pid {}", std::process::id()))
            && err.contains("weft pipeline joins/test.mat_a.v1"),
        "{err}"
    );
    drop(h);
}

#[test]
fn queries_during_commits_see_whole_epochs_in_order() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let mut w = World::new(21);
    let mut h = Harness::new(&w);
    let session = Arc::new(weft::sql::Session::new(&h.wh).unwrap());
    let shared = h.m.as_ref().unwrap().shared.clone();
    let a = output_table(&joins()[0]);
    let sql = format!(
        "SELECT count(*) AS n, sum(test_mat_events_v1_val_count) AS c, max(ds) AS d FROM {a}"
    );
    let stop = Arc::new(AtomicBool::new(false));
    let observer = {
        let (shared, session, sql, stop) =
            (shared.clone(), session.clone(), sql.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                if let Ok(v) = weft::materialize::http::run_query(&shared, &session, &sql) {
                    seen.push((v["epoch"].as_u64(), v["rows"].to_string()));
                }
            }
            seen
        })
    };
    let mut truth = std::collections::BTreeMap::new();
    let step = |h: &mut Harness, truth: &mut std::collections::BTreeMap<u64, String>| {
        let s = session.clone();
        let m =
            h.m.as_mut()
                .unwrap()
                .epoch_then(move || s.refresh())
                .unwrap();
        let v = weft::materialize::http::run_query(&shared, &session, &sql).unwrap();
        assert_eq!(v["epoch"].as_u64(), Some(m.epoch));
        truth.insert(m.epoch, v["rows"].to_string());
    };
    step(&mut h, &mut truth);
    for a in [
        Action::LandDay { left_late: false },
        Action::ReLandEvents { day: 1 },
        Action::LandDay { left_late: false },
        Action::LateEvents { day: 3 },
        Action::ReLandLeft { day: 2 },
    ] {
        apply(&mut h, &mut w, &a);
        step(&mut h, &mut truth);
    }
    stop.store(true, Ordering::SeqCst);
    let seen = observer.join().unwrap();
    assert!(
        seen.len() > 5,
        "the observer ran during the epochs ({} answers)",
        seen.len()
    );
    let mut last = None;
    for (epoch, rows) in &seen {
        let Some(e) = epoch else { continue }; // before the first commit
        assert!(
            last.is_none_or(|l| l <= *e),
            "epochs never go back: {last:?} then {e}"
        );
        last = Some(*e);
        assert_eq!(
            Some(rows),
            truth.get(e),
            "epoch {e}: a query saw what the epoch committed"
        );
    }
    // the answers changed over the run (the test would prove nothing otherwise)
    assert!(
        truth
            .values()
            .collect::<std::collections::BTreeSet<_>>()
            .len()
            > 2
    );
}

#[test]
fn backfill_recomputes_the_partitions_whose_inputs_changed_and_force_rewrites_nothing_more() {
    let mut w = World::new(23);
    let mut h = Harness::new(&w);
    h.m = None;
    let conf = h.confs.join("joins/test/mat_a.v1");
    let end = day(w.complete_through());
    let backfill = |force: bool| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_weft"));
        cmd.arg("--warehouse")
            .arg(h.wh.root())
            .args(["backfill", "--end-ds", &end, "--conf"])
            .arg(&conf);
        if force {
            cmd.arg("--force");
        }
        let out = cmd.output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    backfill(false);
    let j = &joins()[0];
    let out = output_table(j);
    // the events of day 2 are corrected after the backfill
    let e = w.events(2, 4);
    w.db.table_mut("data.events").parts.insert(day(2), e);
    data::write_partition(&h.wh, &w.db, "data.events", &day(2));
    let run = Run::through(&end);
    let before = partition_dirs(&h.wh, &out);
    // a plain backfill finds the partitions whose inputs changed, recomputes them and says so
    let plain = backfill(false);
    assert!(plain.contains("wrote 0 partition(s)"), "{plain}");
    assert!(
        plain.contains("recomputed") && plain.contains("whose inputs changed"),
        "{plain}"
    );
    assert!(plain.contains("rewrote"), "{plain}");
    compare(&expected(j, &w.db, &run), &read_table(&h.wh, &out)).unwrap();
    // only days the corrected events reach were rewritten (day 2 onwards)
    let after = partition_dirs(&h.wh, &out);
    for (ds, ino) in &before {
        let reached = ds.as_str() >= day(2).as_str();
        if !reached {
            assert_eq!(
                after.get(ds),
                Some(ino),
                "{ds} was rewritten but its inputs did not change"
            );
        }
    }
    assert!(before.iter().any(|(d, i)| after.get(d) != Some(i)));
    // nothing changed since: a plain backfill recomputes nothing, --force rewrites nothing
    let quiet = backfill(false);
    assert!(
        !quiet.contains("recomputed") && !quiet.contains("rewrote"),
        "{quiet}"
    );
    let again = backfill(true);
    assert!(!again.contains("rewrote"), "{again}");
    assert_eq!(partition_dirs(&h.wh, &out), after);
}

/// A restart trusts what is on disk: with no input changed nothing is recomputed or rewritten;
/// after an event partition is corrected while the materializer is stopped, only the days
/// its events reach are recomputed, and every table equals a fresh backfill.
#[test]
fn a_restart_recomputes_only_the_partitions_whose_inputs_changed() {
    let mut w = World::new(29);
    let mut h = Harness::new(&w);
    let first = h.materialize("first run");
    let changed: u64 = first
        .iter()
        .flat_map(|m| &m.pipelines)
        .filter(|p| p.name.starts_with("joins/"))
        .map(|p| p.rows_changed)
        .sum();
    assert!(
        changed > 0,
        "the first run's new rows are counted as changed"
    );
    let outs: Vec<String> = joins().iter().map(output_table).collect();
    let before: Vec<_> = outs.iter().map(|o| partition_dirs(&h.wh, o)).collect();
    assert!(before.iter().all(|b| !b.is_empty()));
    h.open();
    for m in h.materialize("restart") {
        for p in m.pipelines.iter().filter(|p| p.name.starts_with("joins/")) {
            assert!(
                p.recomputed.is_empty()
                    && p.rewritten.is_empty()
                    && p.written.is_empty()
                    && p.rows_changed == 0,
                "a restart with no input change recomputed {}: {p:?}",
                p.name
            );
        }
    }
    let after: Vec<_> = outs.iter().map(|o| partition_dirs(&h.wh, o)).collect();
    assert_eq!(after, before, "no partition rewritten by a restart");
    // corrected events of day 2 land while it is stopped
    h.m = None;
    let e = w.events(2, 4);
    w.db.table_mut("data.events").parts.insert(day(2), e);
    data::write_partition(&h.wh, &w.db, "data.events", &day(2));
    h.open();
    let ms = h.materialize("restart after a correction");
    for name in ["joins/test.mat_a.v1", "joins/test.mat_b.v1"] {
        let recomputed: Vec<String> = ms
            .iter()
            .flat_map(|m| m.pipelines.iter().filter(|p| p.name == name))
            .flat_map(|p| p.recomputed.clone())
            .collect();
        assert!(!recomputed.is_empty(), "{name}: nothing recomputed");
        // a day's queries may read the next day's event partition (events land late), so
        // day 1 is recomputed too; its rows do not change, so it is not rewritten (below)
        assert!(
            recomputed.iter().all(|d| d.as_str() >= day(1).as_str()),
            "{name}: days the correction cannot reach recomputed: {recomputed:?}"
        );
    }
    for (o, b) in outs.iter().zip(&before) {
        let now = partition_dirs(&h.wh, o);
        for (ds, ino) in b.iter().filter(|(d, _)| d.as_str() < day(2).as_str()) {
            assert_eq!(now.get(ds), Some(ino), "{o} {ds} rewritten");
        }
    }
    check(&h, &w, "after the restart");
}

/// Configs change under a running materializer (no restart): a removed config stops being
/// maintained (its table stays as it was), a config added back is installed and catches up,
/// and a bootstrap part added to a running join (scenarios C–E) is applied in place: after
/// each epoch the join equals a fresh backfill of its current config.
#[test]
fn config_changes_apply_without_a_restart() {
    let mut w = World::new(31);
    let mut h = Harness::new(&w);
    h.materialize("first run");
    let [a, b]: [J; 2] = joins().try_into().unwrap();
    let b_file = h.confs.join("joins/test/mat_b.v1");
    let saved = std::fs::read(&b_file).unwrap();
    std::fs::remove_file(&b_file).unwrap();
    let b_before = partition_dirs(&h.wh, &output_table(&b));
    w.land_day(&h.wh);
    let ms = h.materialize("config removed");
    assert!(ms
        .iter()
        .all(|m| m.pipelines.iter().all(|p| p.name != "joins/test.mat_b.v1")));
    assert_eq!(
        partition_dirs(&h.wh, &output_table(&b)),
        b_before,
        "a removed config's table stays"
    );
    assert!(partition_dirs(&h.wh, &output_table(&a)).contains_key(&day(w.last_day)));
    // added back: installed and caught up
    std::fs::write(&b_file, saved).unwrap();
    h.materialize("config added back");
    assert!(partition_dirs(&h.wh, &output_table(&b)).contains_key(&day(w.last_day)));
    check(&h, &w, "after the config came back");
    // a bootstrap part added to join a while it runs
    let mut t = Table::new(&[
        ("row_id", Ty::I64),
        ("test_mat_events_v1_val_sum_2d", Ty::I64),
    ]);
    for (ds, part) in &w.db.table("data.left").parts {
        for r in part
            .iter()
            .filter(|r| matches!(r[0], V::Int(id) if id % 2 == 0))
        {
            let V::Int(id) = r[0] else { unreachable!() };
            t.push(ds, vec![V::Int(id), V::Int(1000 + id)]);
        }
    }
    let mut boot = Db::default();
    boot.add("data.boot_a", t);
    data::write_db(&h.wh, &boot);
    let mut a2 = a.clone();
    a2["rowIds"] = json!(["row_id"]);
    a2["bootstrapParts"] = json!([{"table": "data.boot_a", "keyColumns": ["row_id"]}]);
    std::fs::write(
        h.confs.join("joins/test/mat_a.v1"),
        serde_json::to_string_pretty(&a2).unwrap(),
    )
    .unwrap();
    h.materialize("bootstrap part added");
    let out = output_table(&a2);
    let copy = tempfile::tempdir().unwrap();
    copy_warehouse_without(h.wh.root(), copy.path(), &out);
    let fresh = Warehouse::open(copy.path()).unwrap();
    backfill(
        &fresh,
        &a2,
        &options(&Run::through(&day(w.complete_through()))),
    )
    .unwrap();
    outputs_equal(
        &read_table(&h.wh, &out),
        &read_table(&fresh, &out),
        "materialized after the config change",
        "fresh backfill of the new config",
    )
    .unwrap();
    // the bootstrapped values are there
    let got = read_table(&h.wh, &out);
    assert!(
        got.parts
            .values()
            .flat_map(|p| &p.1)
            .any(|r| r.iter().any(|v| matches!(v, V::Int(x) if *x >= 1000))),
        "no bootstrapped value in {out}"
    );
}

/// A partition folder without a data file yet (a copy in progress) is not a landed day: the
/// day waits until a file is in it.
#[test]
fn an_empty_partition_folder_is_not_a_landed_day() {
    let mut w = World::new(37);
    let mut h = Harness::new(&w);
    h.materialize("first run");
    w.add_events_day();
    w.add_left_day();
    let d = day(w.last_day);
    data::write_partition(&h.wh, &w.db, "data.events", &d);
    let left = weft::warehouse::TableName::parse("data.left").unwrap();
    let dir = h.wh.partition_dir(&left, &[("ds".to_string(), d.clone())]);
    std::fs::create_dir_all(&dir).unwrap();
    h.materialize("the left's folder exists, empty");
    let out = output_table(&joins()[0]);
    assert!(
        !partition_dirs(&h.wh, &out).contains_key(&d),
        "computed from an empty folder"
    );
    data::write_partition(&h.wh, &w.db, "data.left", &d);
    h.materialize("the left landed");
    assert!(partition_dirs(&h.wh, &out).contains_key(&d));
    check(&h, &w, "after the left landed");
}

/// Each partition folder of `table` with its inode: a rewritten partition gets a new folder.
pub(crate) fn partition_dirs(wh: &Warehouse, table: &str) -> BTreeMap<String, u64> {
    use std::os::unix::fs::MetadataExt;
    let t = weft::warehouse::TableName::parse(table).unwrap();
    wh.partitions(&t)
        .unwrap()
        .into_iter()
        .map(|d| {
            let dir = wh.partition_dir(&t, &[("ds".to_string(), d.to_string())]);
            (d.to_string(), std::fs::metadata(dir).unwrap().ino())
        })
        .collect()
}

/// Scenario I continuously: label snapshots land day by day while the materializer runs; each
/// epoch runs the label dates whose label sources are complete, and the label table always
/// holds exactly the labels of every date run so far (the plain reference of §7.4).
#[test]
fn labels_mature_by_themselves_as_their_sources_land() {
    use crate::labelfix::{self, RESERVATION, ROOM};
    let full = labelfix::random_db(31, "2022-10-01", 12, 6);
    let (start, end) = (5i64, 2i64);
    let mut j = labelfix::join(
        "test.mat_labels.v1",
        vec![labelfix::room_label(), labelfix::reservation_label()],
        start,
        end,
    );
    j["labelPart"]["metaData"]["dependencies"] = json!([dep(ROOM), dep(RESERVATION)]);
    // the left and the first 4 days of label snapshots have landed
    let mut db = full.clone();
    let first = "2022-10-01";
    for t in [ROOM, RESERVATION] {
        db.table_mut(t)
            .parts
            .retain(|d, _| d.as_str() < ds_shift(first, 4).as_str());
    }
    let dir = tempfile::tempdir().unwrap();
    let wh = Warehouse::open(dir.path().join("warehouse")).unwrap();
    data::write_db(&wh, &db);
    let confs = dir.path().join("production");
    let (team, rest) = ("test", "mat_labels.v1");
    std::fs::create_dir_all(confs.join("joins").join(team)).unwrap();
    std::fs::write(confs.join("joins").join(team).join(rest), j.to_string()).unwrap();
    let mut m = Materializer::open(
        &wh,
        Options {
            confs: vec![confs],
            state_dir: dir.path().join("state"),
            end_ds: None,
            topology: weft::dataflow::Topology::local(1),
            log_table: "default.chronon_log_table".into(),
        },
    )
    .unwrap();
    let labels = [(ROOM, "dim_room_type"), (RESERVATION, "dim_reservations")];
    let cols = [labelfix::ROOM_COL, labelfix::RESERVATION_COL];
    let mut total_runs = 0;
    for landed in 4..=12 {
        if landed > 4 {
            let d = ds_shift(first, landed - 1);
            for t in [ROOM, RESERVATION] {
                if let Some(rows) = full.table(t).parts.get(&d) {
                    db.table_mut(t).parts.insert(d.clone(), rows.clone());
                    data::write_partition(&wh, &db, t, &d);
                }
            }
        }
        let ms = m.run_until_idle().unwrap();
        for mf in &ms {
            for p in &mf.pipelines {
                assert!(p.error.is_none(), "{p:?}");
                total_runs += p.label_runs.len();
            }
        }
        // the label dates run: from the first whose window reaches the first left day, to
        // the last day both snapshots exist for
        let last_ready = (0..landed).rev().map(|i| ds_shift(first, i)).find(|d| {
            db.table(ROOM).parts.contains_key(d) && db.table(RESERVATION).parts.contains_key(d)
        });
        let Some(last_ready) = last_ready else {
            continue;
        };
        let mut runs = Vec::new();
        let mut l = ds_shift(first, end - 1);
        while l <= last_ready {
            runs.push(l.clone());
            l = ds_shift(&l, 1);
        }
        let runs: Vec<&str> = runs.iter().map(String::as_str).collect();
        assert_eq!(
            labelfix::rendered_labels(&wh, &j, &cols),
            labelfix::expected_entity_labels(&db, &labels, &runs, start, end),
            "after day {landed} landed"
        );
    }
    assert!(
        total_runs >= 8,
        "label dates ran as their sources landed ({total_runs})"
    );
}
