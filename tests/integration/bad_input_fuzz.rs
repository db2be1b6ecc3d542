//! Bad input, generated: mutated compiled configs, damaged Parquet partitions and arbitrary
//! HTTP bodies. Whatever the mutation: no panic; an error is a clear message naming what is
//! wrong; a failed run writes nothing and loses nothing written before. Case counts follow
//! `PROPTEST_CASES` (default 32).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use proptest::prelude::*;
use serde_json::{json, Value as J};
use weft::config::{parse_conf, Conf};
use weft::engine::{GroupByRunner, JoinRunner};
use weft::warehouse::{TableName, Warehouse};

use crate::reference::conf::{self, W};
use crate::reference::data::read_table;
use crate::reference::harness::{backfill, options, warehouse};
use crate::reference::{ds_shift, ds_start, Db, Op, Run, Table, Ty, DAY, V};

// ------------------------------------------------------------------------- configs

fn compiled_configs() -> Vec<(PathBuf, J)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("dataflows/production");
    let mut out = Vec::new();
    for kind in ["joins", "group_bys", "staging_queries"] {
        for team in std::fs::read_dir(root.join(kind)).unwrap().flatten() {
            for f in std::fs::read_dir(team.path()).unwrap().flatten() {
                let text = std::fs::read_to_string(f.path()).unwrap();
                out.push((f.path(), serde_json::from_str(&text).unwrap()));
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Every JSON pointer in `v`.
fn pointers(v: &J, at: String, out: &mut Vec<String>) {
    out.push(at.clone());
    match v {
        J::Object(m) => {
            for (k, x) in m {
                pointers(
                    x,
                    format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")),
                    out,
                );
            }
        }
        J::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                pointers(x, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// The replacement values a mutation picks from.
fn replacement(k: usize) -> Option<J> {
    Some(match k % 12 {
        0 => return None, // delete the field
        1 => J::Null,
        2 => json!(0),
        3 => json!(-1),
        4 => json!(i64::MAX),
        5 => json!(1e300),
        6 => json!(""),
        7 => json!("../../etc/passwd"),
        8 => json!("ds=2024-2-5"),
        9 => json!([]),
        10 => json!({}),
        _ => json!(true),
    })
}

fn mutate(doc: &mut J, pointer: &str, k: usize) -> String {
    let (parent, key) = pointer.rsplit_once('/').unwrap_or(("", pointer));
    match (replacement(k), doc.pointer_mut(parent)) {
        (None, Some(J::Object(m))) => {
            let key = key.replace("~1", "/").replace("~0", "~");
            m.remove(&key);
            format!("removed {pointer}")
        }
        (None, Some(J::Array(a))) => {
            if let Ok(i) = key.parse::<usize>() {
                if i < a.len() {
                    a.remove(i);
                }
            }
            format!("removed {pointer}")
        }
        (Some(v), _) => {
            let shown = v.to_string();
            if let Some(slot) = doc.pointer_mut(pointer) {
                *slot = v;
            }
            format!("{pointer} = {shown}")
        }
        _ => "unchanged".into(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: crate::cases(None, 32),
        failure_persistence: crate::regressions_beside_suite(),
        ..ProptestConfig::default()
    })]

    /// A compiled config with one field removed or replaced parses and plans, or fails with
    /// a message; it never panics.
    #[test]
    fn a_mutated_config_never_panics(pick in any::<usize>(), at in any::<usize>(), k in any::<usize>()) {
        let configs = compiled_configs();
        let (path, mut doc) = configs[pick % configs.len()].clone();
        let mut ps = Vec::new();
        pointers(&doc, String::new(), &mut ps);
        let pointer = ps[at % ps.len()].clone();
        let what = mutate(&mut doc, &pointer, k);
        let text = doc.to_string();
        let r = std::panic::catch_unwind(|| -> Result<(), String> {
            match parse_conf(&path, &text).map_err(|e| e.to_string())? {
                Conf::Join(j) => JoinRunner::new(&j).map(|_| ()).map_err(|e| e.to_string()),
                Conf::GroupBy(g) => GroupByRunner::new(&g).map(|_| ()).map_err(|e| e.to_string()),
                Conf::StagingQuery(_) => Ok(()),
            }
        });
        prop_assert!(r.is_ok(), "{}: {} panicked", path.display(), what);
        if let Ok(Err(e)) = r {
            prop_assert!(e.trim().len() > 10, "{}: {}: unhelpful error `{}`", path.display(), what, e);
        }
    }
}

// ------------------------------------------------------------------------- partitions

const BASE: &str = "2026-05-01";

fn day(i: i64) -> String {
    ds_shift(BASE, i)
}

fn db() -> Db {
    let mut left = Table::new(&[("user", Ty::Str), ("ts", Ty::I64)]);
    let mut events = Table::new(&[("user", Ty::Str), ("amount", Ty::I64), ("ts", Ty::I64)]);
    for d in 0..4 {
        for i in 0..6i64 {
            let ts = ds_start(&day(d)) + (i + 1) * DAY / 8;
            left.push(&day(d), vec![V::Str(format!("u{}", i % 3)), V::Int(ts)]);
            events.push(
                &day(d),
                vec![V::Str(format!("u{}", i % 3)), V::Int(i), V::Int(ts - 1000)],
            );
        }
    }
    let mut db = Db::default();
    db.add("data.left", left);
    db.add("data.events", events);
    db
}

fn join() -> J {
    conf::join(
        "test.fuzz.v1",
        conf::events_left("data.left", &["user"]),
        vec![conf::part(
            conf::group_by(
                "test.fuzz_events.v1",
                vec![conf::events_source(
                    "data.events",
                    &["user", "amount"],
                    Some("ts"),
                )],
                &["user"],
                Some(conf::aggs_for(
                    "amount",
                    Op::Sum,
                    &[W::Days(2), W::Unbounded],
                    &[],
                )),
                None,
            ),
            &[],
            None,
        )],
    )
}

fn dirs(wh: &Warehouse, t: &str) -> Vec<(String, u64)> {
    let t = TableName::parse(t).unwrap();
    wh.partitions(&t)
        .unwrap()
        .into_iter()
        .map(|d| {
            let p = wh.partition_dir(&t, &[("ds".to_string(), d.to_string())]);
            (d.to_string(), std::fs::metadata(p).unwrap().ino())
        })
        .collect()
}

/// Damages the only file of a partition: truncated, replaced by one with `ts` as a string,
/// or with `ts` values out of range.
fn damage(wh: &Warehouse, table: &str, ds: &str, how: usize, cut: usize) -> String {
    let t = TableName::parse(table).unwrap();
    let spec = [("ds".to_string(), ds.to_string())];
    let file = wh.files_in(&t, &spec).unwrap().remove(0);
    match how % 4 {
        0 => {
            let bytes = std::fs::read(&file).unwrap();
            std::fs::write(&file, &bytes[..cut % bytes.len()]).unwrap();
            format!("{table} ds={ds} truncated to {} bytes", cut % bytes.len())
        }
        1 => {
            std::fs::write(&file, b"").unwrap();
            format!("{table} ds={ds} emptied")
        }
        k => {
            let mut cols: Vec<(Field, ArrayRef)> = Vec::new();
            let b = &wh.read_files(std::slice::from_ref(&file)).unwrap()[0];
            for (f, c) in b.schema().fields().iter().zip(b.columns()) {
                if f.name() == "ts" {
                    if k == 2 {
                        let s: ArrayRef = Arc::new(StringArray::from(vec!["soon"; c.len()]));
                        cols.push((Field::new("ts", DataType::Utf8, true), s));
                    } else {
                        let s: ArrayRef = Arc::new(Int64Array::from(vec![i64::MAX; c.len()]));
                        cols.push((Field::new("ts", DataType::Int64, true), s));
                    }
                } else {
                    cols.push((f.as_ref().clone(), c.clone()));
                }
            }
            let schema = Arc::new(Schema::new(
                cols.iter().map(|(f, _)| f.clone()).collect::<Vec<_>>(),
            ));
            let batch =
                RecordBatch::try_new(schema.clone(), cols.into_iter().map(|(_, c)| c).collect())
                    .unwrap();
            wh.write_partition(&t, &spec, schema, &[batch]).unwrap();
            format!(
                "{table} ds={ds} ts {}",
                if k == 2 { "as strings" } else { "= i64::MAX" }
            )
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: crate::cases(None, 16),
        failure_persistence: crate::regressions_beside_suite(),
        ..ProptestConfig::default()
    })]

    /// After a good backfill, one input partition is damaged and the backfill runs again: it
    /// never panics; a failure names the table and writes nothing (every output partition
    /// keeps its folder and stays readable); a success leaves a readable output.
    #[test]
    fn a_damaged_partition_never_panics_or_loses_output(which in 0usize..2, d in 0i64..4, how in any::<usize>(), cut in any::<usize>()) {
        let db = db();
        let (_dir, wh) = warehouse(&db);
        let j = join();
        let run = Run::through(&day(3));
        backfill(&wh, &j, &options(&run)).unwrap();
        let out = "test.test_fuzz_v1";
        let before = dirs(&wh, out);
        let table = ["data.left", "data.events"][which];
        let what = damage(&wh, table, &day(d), how, cut);
        let r = std::panic::catch_unwind(|| backfill(&wh, &j, &options(&run)));
        prop_assert!(r.is_ok(), "{} panicked", what);
        if let Err(e) = r.unwrap() {
            prop_assert!(e.contains(table) || e.contains(&day(d)), "{}: the error names neither the table nor the partition: {}", what, e);
            prop_assert_eq!(dirs(&wh, out), before.clone(), "{}: a failed run rewrote output", what);
        }
        // whatever happened, the output is whole and readable
        let t = read_table(&wh, out);
        prop_assert_eq!(t.parts.len(), before.len(), "{}", what);
    }
}

// ------------------------------------------------------------------------- HTTP bodies

proptest! {
    #![proptest_config(ProptestConfig {
        cases: crate::cases(None, 32),
        failure_persistence: crate::regressions_beside_suite(),
        ..ProptestConfig::default()
    })]

    /// Arbitrary bodies and content types to the materializer's query endpoint: a JSON
    /// answer every time, 2xx or 4xx, never a server error.
    #[test]
    fn arbitrary_query_bodies_get_json_answers(body in proptest::collection::vec(any::<u8>(), 0..200), json_body in any::<bool>(), sql in "[ -~]{0,40}", ctype in 0usize..3) {
        let ctype = ["application/json", "text/plain", "application/x-www-form-urlencoded"][ctype];
        let payload: Vec<u8> = if json_body { json!({"sql": sql}).to_string().into_bytes() } else { body };
        let (code, ct, text) = crate::bad_input_fuzz::http::post("/v1/query", ctype, &payload);
        prop_assert!((200..500).contains(&code), "{code}: {text}");
        prop_assert!(ct.starts_with("application/json"), "{code} {ct}: {text}");
        prop_assert!(serde_json::from_str::<J>(&text).is_ok(), "{code}: {text}");
    }
}

mod http {
    use std::sync::{Arc, OnceLock};

    use weft::materialize::http::{router, HttpState};
    use weft::materialize::Shared;
    use weft::sql::Session;
    use weft::warehouse::Warehouse;

    struct Server {
        addr: std::net::SocketAddr,
        _served: crate::Served,
        _dir: tempfile::TempDir,
    }

    fn server() -> &'static Server {
        static S: OnceLock<Server> = OnceLock::new();
        S.get_or_init(|| {
            let (dir, wh): (tempfile::TempDir, Warehouse) =
                crate::reference::harness::warehouse(&super::db());
            let session = Arc::new(Session::new(&wh).unwrap());
            let (tx, _rx) = crossbeam_channel::unbounded();
            std::mem::forget(_rx);
            let state = HttpState {
                shared: Arc::new(Shared::default()),
                session,
                refresh: tx,
            };
            let served = crate::serve_on_loopback(router(state));
            Server {
                addr: served.addr,
                _served: served,
                _dir: dir,
            }
        })
    }

    pub fn post(path: &str, ctype: &str, body: &[u8]) -> (u16, String, String) {
        let s = server();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut r = agent
            .post(&format!("http://{}{path}", s.addr))
            .header("content-type", ctype)
            .send(body)
            .unwrap();
        let ct = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        (
            r.status().as_u16(),
            ct,
            r.body_mut().read_to_string().unwrap_or_default(),
        )
    }
}

/// A corrupt file, or a column whose type changes between partitions, in a table a job does
/// not read does not stop the job: only the tables a job reads can fail it.
#[test]
fn a_broken_table_a_job_does_not_read_does_not_stop_it() {
    let db = db();
    let (_dir, wh) = warehouse(&db);
    // a corrupt file in one unrelated table, a type change between partitions in another
    let corrupt = wh
        .table_dir(&TableName::parse("data.corrupt").unwrap())
        .join("ds=2026-05-01");
    std::fs::create_dir_all(&corrupt).unwrap();
    std::fs::write(corrupt.join("part-0.parquet"), b"PAR1 not really").unwrap();
    let t = TableName::parse("data.drifting").unwrap();
    for (ds, col) in [
        (
            "2026-05-01",
            Arc::new(Int64Array::from(vec![1])) as ArrayRef,
        ),
        (
            "2026-05-02",
            Arc::new(StringArray::from(vec!["x"])) as ArrayRef,
        ),
    ] {
        let schema = Arc::new(Schema::new(vec![Field::new(
            "v",
            col.data_type().clone(),
            true,
        )]));
        let b = RecordBatch::try_new(schema.clone(), vec![col]).unwrap();
        wh.write_partition(&t, &[("ds".to_string(), ds.to_string())], schema, &[b])
            .unwrap();
    }
    backfill(&wh, &join(), &options(&Run::through(&day(3))))
        .unwrap_or_else(|e| panic!("a table the join does not read failed it: {e}"));
    assert_eq!(read_table(&wh, "test.test_fuzz_v1").parts.len(), 4);
}
