//! Scenario B end to end (odm-scenarios.md B; chronon-semantics §5, §10.1 LogBootstrapTest):
//! serve a join whose contextual field is the row id, fetch every left row of a day at its own
//! time, log the responses to the local log stream, flatten them into `<join>_logged`, then
//! land late source data and backfill a v2 join that bootstraps from the log: logged rows keep
//! the values that were served (not recomputed ones); v2's new part is computed; the log
//! holds one control event plus one record per response.

use crate::bootfix;
use crate::onlinefix;
use crate::reference;

use std::sync::Arc;

use bootfix::*;
use onlinefix::*;
use reference::conf;
use reference::harness::warehouse;
use reference::{output_table, Table, V};
use serde_json::{json, Value as J};
use weft::logging::flatten::{flatten_log, FlattenOptions};
use weft::logging::logger::{Logger, LoggerConfig};
use weft::logging::sink::FileLogSink;
use weft::online::fetch_join::FetchRequest;
use weft::online::fetcher::Fetcher;
use weft::online::log_responses::ResponseLogger;
use weft::partition::Ds;
use weft::sql::Session;

const V2_SUM: &str = "unit_test_user_transactions_v2_amount_dollars_sum";

fn contextual() -> J {
    let s = |n: &str| json!({"kind": 13, "name": n, "params": [{"name": "request_id", "dataType": {"kind": 7}}]});
    json!([{"source": {"metadata": {"name": "contextual", "team": "unit_test"},
        "keySchema": s("contextual_keys"), "valueSchema": s("contextual_values")}}])
}

fn v1() -> J {
    let mut j = join(
        "unit_test.model_online.v1",
        vec![conf::part(user_transactions(), &[], None)],
    );
    j["onlineExternalParts"] = contextual();
    j["metaData"]["samplePercent"] = json!(100.0);
    j["metaData"]["online"] = json!(1);
    j
}

#[test]
fn logged_values_bootstrap_the_next_version() {
    let mut db = db(41, 25);
    let (dir, wh) = warehouse(&db);
    let root = dir.path().join("conf");
    let v1 = v1();
    write_conf(&root, "joins", "unit_test.model_online.v1", &v1);
    let mut gb = user_transactions();
    gb["metaData"]["outputNamespace"] = json!("test");
    gb["backfillStartDate"] = json!(day(0));
    let gb_path = write_conf(&root, "group_bys", "unit_test.user_transactions", &gb);
    let store = embedded(&wh);
    let e = Ds::parse(&end_day()).unwrap();
    upload_conf(&wh, store.as_ref(), &gb_path, e.shift(-1));

    // serve and log every left row of day e
    let fetcher = Fetcher::new(Session::new(&wh).unwrap(), Arc::clone(&store), &root);
    let logger = Arc::new(Logger::new(
        Box::new(FileLogSink::new(wh.clone(), "default.chronon_log_table").unwrap()),
        LoggerConfig::default(),
    ));
    let responses = ResponseLogger::new(logger.clone());
    let left = db.table("data.queries").parts[&end_day()].clone();
    let requests: Vec<FetchRequest> = left
        .iter()
        .map(|r| FetchRequest {
            keys: json!({"user": r[0].as_i64(), "request_id": r[1].key_string()})
                .as_object()
                .unwrap()
                .clone(),
            at_millis: r[2].as_i64(),
        })
        .collect();
    let (f, fetched) = fetcher
        .fetch_join_detailed("unit_test/model_online.v1", &requests, 0)
        .unwrap();
    responses.log(&f, &requests, &fetched, e.start_millis());
    let stats = logger.shutdown();
    assert_eq!(
        stats.written as usize,
        requests.len() + 1,
        "one record per response plus the schema's control event"
    );
    assert_eq!(stats.dropped, 0);
    let served: std::collections::BTreeMap<String, J> = requests
        .iter()
        .zip(&fetched)
        .map(|(r, out)| {
            (
                r.keys["request_id"].as_str().unwrap().to_string(),
                out.response()[SUM_30D].clone(),
            )
        })
        .collect();
    assert!(served.values().filter(|v| !v.is_null()).count() > 10);

    // flatten the log
    let v1c = reference::conf::parse(&v1);
    let report = flatten_log(
        &wh,
        &v1c,
        &FlattenOptions {
            end: e,
            log_table: "default.chronon_log_table".into(),
            step_days: 30,
            run_first_hole: false,
        },
        &|_, _, _| {},
    )
    .unwrap();
    assert_eq!(report.rows_out as usize, requests.len());

    // late data: big purchases land for every user two days before e
    let late = day(DAYS - 3);
    let t: &mut Table = db.tables.get_mut("data.transactions").unwrap();
    for u in 0..30 {
        t.push(
            &late,
            vec![
                V::Int(u),
                V::Int(1_000_000),
                V::Int(reference::ds_start(&late) + 1000),
            ],
        );
    }
    reference::data::write_partition(&wh, &db, "data.transactions", &late);

    // v2 = v1 + a new part, bootstrapped from v1's log
    let mut v2 = join(
        "unit_test.model_online.v2",
        vec![
            conf::part(user_transactions(), &[], None),
            conf::part(user_transactions_v2(), &[], None),
        ],
    );
    v2["onlineExternalParts"] = contextual();
    v2["bootstrapParts"] = json!([{"table": "test.unit_test_model_online_v1_logged"}]);
    let r = run_join(&wh, &v2);
    let prov = r.provenance.unwrap();
    assert_eq!(
        prov.parts[0].covered as usize,
        requests.len(),
        "logged rows are covered"
    );
    let out = rows_by_id(&wh, &output_table(&v2));
    let mut checked = 0;
    for ((id, ds), row) in &out {
        if *ds != end_day() {
            // not logged: computed, so the late purchases show
            continue;
        }
        let want = &served[id];
        let got = &row[SUM_30D];
        match (got, want) {
            (V::Null, J::Null) => {}
            (V::Int(a), J::Number(b)) => assert_eq!(Some(*a), b.as_i64(), "{id}"),
            other => panic!("{id}: {other:?}"),
        }
        // the recomputed value would include the late purchase
        assert!(
            got.as_i64().unwrap_or(0) < 1_000_000,
            "{id} took a recomputed value"
        );
        // the new part is computed on the new data
        assert!(
            row[V2_SUM].as_i64().unwrap() >= 1_000_000,
            "{id}: {:?}",
            row[V2_SUM]
        );
        assert_eq!(row["ext_contextual_request_id"], V::s(id));
        checked += 1;
    }
    assert_eq!(checked, requests.len());
    // rows of other days are recomputed with the late data
    let other = out
        .iter()
        .filter(|((_, d), _)| *d != end_day())
        .filter(|(_, r)| r[SUM_30D].as_i64().is_some_and(|v| v >= 1_000_000))
        .count();
    assert!(other > 0);
}

/// Scenario B continuously: the materializer maintains v1, its flattened log and a v2 that
/// bootstraps from that log. Before anything is logged v2 is computed in full (the `_logged`
/// table it bootstraps from does not exist yet: an empty input, not an error); once responses
/// are logged and late source data lands, one more epoch flattens the log, adds it to the
/// running v2 as a delta, and the logged rows show the values that were served while every
/// other row is recomputed with the late data — no batch step in between.
#[test]
fn the_materializer_shows_logged_values_without_a_batch_step() {
    let mut db = db(43, 25);
    let (dir, wh) = warehouse(&db);
    let root = dir.path().join("conf");
    let v1 = v1();
    write_conf(&root, "joins", "unit_test.model_online.v1", &v1);
    let mut gb = user_transactions();
    gb["metaData"]["outputNamespace"] = json!("test");
    gb["backfillStartDate"] = json!(day(0));
    let gb_path = write_conf(&root, "group_bys", "unit_test.user_transactions", &gb);
    let mut v2 = join(
        "unit_test.model_online.v2",
        vec![
            conf::part(user_transactions(), &[], None),
            conf::part(user_transactions_v2(), &[], None),
        ],
    );
    v2["onlineExternalParts"] = contextual();
    v2["bootstrapParts"] = json!([{"table": "test.unit_test_model_online_v1_logged"}]);
    write_conf(&root, "joins", "unit_test.model_online.v2", &v2);
    let store = embedded(&wh);
    let e = Ds::parse(&end_day()).unwrap();
    upload_conf(&wh, store.as_ref(), &gb_path, e.shift(-1));

    let mut m = weft::materialize::Materializer::open(
        &wh,
        weft::materialize::Options {
            confs: vec![root.clone()],
            state_dir: dir.path().join("state"),
            end_ds: None,
            topology: weft::dataflow::Topology::local(1),
            log_table: "default.chronon_log_table".into(),
        },
    )
    .unwrap();
    let first = m.run_until_idle().unwrap();
    let logged = first[0]
        .pipelines
        .iter()
        .find(|p| p.name == "logged/unit_test.model_online.v1")
        .unwrap();
    assert!(
        logged
            .waiting
            .as_deref()
            .is_some_and(|w| w.contains("no responses")),
        "{logged:?}"
    );
    assert!(
        first
            .last()
            .unwrap()
            .pipelines
            .iter()
            .all(|p| p.error.is_none()),
        "{first:?}"
    );
    assert!(rows_by_id(&wh, &output_table(&v2))
        .keys()
        .any(|(_, d)| *d == end_day()));

    // serve and log every left row of day e
    let fetcher = Fetcher::new(Session::new(&wh).unwrap(), Arc::clone(&store), &root);
    let logger = Arc::new(Logger::new(
        Box::new(FileLogSink::new(wh.clone(), "default.chronon_log_table").unwrap()),
        LoggerConfig::default(),
    ));
    let responses = ResponseLogger::new(logger.clone());
    let left = db.table("data.queries").parts[&end_day()].clone();
    let requests: Vec<FetchRequest> = left
        .iter()
        .map(|r| FetchRequest {
            keys: json!({"user": r[0].as_i64(), "request_id": r[1].key_string()})
                .as_object()
                .unwrap()
                .clone(),
            at_millis: r[2].as_i64(),
        })
        .collect();
    let (f, fetched) = fetcher
        .fetch_join_detailed("unit_test/model_online.v1", &requests, 0)
        .unwrap();
    responses.log(&f, &requests, &fetched, e.start_millis());
    logger.shutdown();
    let served: std::collections::BTreeMap<String, J> = requests
        .iter()
        .zip(&fetched)
        .map(|(r, out)| {
            (
                r.keys["request_id"].as_str().unwrap().to_string(),
                out.response()[SUM_30D].clone(),
            )
        })
        .collect();

    // late data lands for every user two days before e
    let late = day(DAYS - 3);
    let t: &mut Table = db.tables.get_mut("data.transactions").unwrap();
    for u in 0..30 {
        t.push(
            &late,
            vec![
                V::Int(u),
                V::Int(1_000_000),
                V::Int(reference::ds_start(&late) + 1000),
            ],
        );
    }
    reference::data::write_partition(&wh, &db, "data.transactions", &late);

    let next = m.run_until_idle().unwrap();
    assert!(
        next.last()
            .unwrap()
            .pipelines
            .iter()
            .all(|p| p.error.is_none()),
        "{next:?}"
    );
    let flat = next[0]
        .pipelines
        .iter()
        .find(|p| p.name == "logged/unit_test.model_online.v1")
        .unwrap();
    assert_eq!(
        flat.written,
        vec![end_day()],
        "the log is flattened in the same epoch"
    );
    let out = rows_by_id(&wh, &output_table(&v2));
    let mut checked = 0;
    for ((id, ds), row) in &out {
        if *ds != end_day() {
            continue;
        }
        match (&row[SUM_30D], &served[id]) {
            (V::Null, J::Null) => {}
            (V::Int(a), J::Number(b)) => assert_eq!(Some(*a), b.as_i64(), "{id}: the served value"),
            other => panic!("{id}: {other:?}"),
        }
        assert!(
            row[V2_SUM].as_i64().unwrap() >= 1_000_000,
            "{id}: the new part sees the late data"
        );
        checked += 1;
    }
    assert_eq!(checked, requests.len());
    let recomputed = out
        .iter()
        .filter(|((_, d), _)| *d != end_day())
        .filter(|(_, r)| r[SUM_30D].as_i64().is_some_and(|v| v >= 1_000_000))
        .count();
    assert!(
        recomputed > 0,
        "rows not logged are recomputed with the late data"
    );
}
