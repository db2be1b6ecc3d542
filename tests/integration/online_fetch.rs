//! Fetching joins online (chronon-semantics §6.4–§6.6, §10.2): Chronon's SchemaEvolutionTest
//! stages (before and after an upload), ExternalSourcesTest (handlers registered in code,
//! prefixes, key mapping, a failing handler, contextual fields, the empty request), the
//! built-in HTTP handler configured through `factoryConfig` and its deadline, and the HTTP
//! service (fetch, health, metrics, errors).

use crate::bootfix;
use crate::onlinefix;
use crate::reference;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use bootfix::*;
use onlinefix::*;
use reference::conf;
use reference::harness::warehouse;
use serde_json::{json, Map, Value as J};
use weft::online::external::{ExternalHandler, ExternalResult};
use weft::online::fetch_join::FetchRequest;
use weft::online::fetcher::Fetcher;
use weft::partition::Ds;
use weft::sql::Session;

const SUM_30: &str = "unit_test_user_transactions_amount_dollars_sum_30d";

fn schema(name: &str, fields: &[(&str, i64)]) -> J {
    json!({"kind": 13, "name": name, "params": fields.iter().map(|(n, k)| json!({"name": n, "dataType": {"kind": k}})).collect::<Vec<_>>()})
}

fn external(
    name: &str,
    prefix: Option<&str>,
    keys: &[(&str, i64)],
    values: &[(&str, i64)],
    mapping: &[(&str, &str)],
) -> J {
    let mut p = json!({"source": {
        "metadata": {"name": name, "team": "unit_test"},
        "keySchema": schema(&format!("ext_{name}_keys"), keys),
        "valueSchema": schema(&format!("ext_{name}_values"), values),
    }});
    if let Some(x) = prefix {
        p["prefix"] = json!(x);
    }
    if !mapping.is_empty() {
        p["keyMapping"] = J::Object(
            mapping
                .iter()
                .map(|(l, r)| (l.to_string(), json!(r)))
                .collect(),
        );
    }
    p
}

/// The join of ExternalSourcesTest, on our data: a GroupBy part plus external parts.
fn join_with_externals() -> J {
    let mut j = join(
        "unit_test.fetch_externals",
        vec![conf::part(user_transactions(), &[], None)],
    );
    j["onlineExternalParts"] = json!([
        external("plus_one", Some("p1"), &[("user", 4)], &[("user", 4), ("str", 7)], &[]),
        external("plus_one", Some("p2"), &[("user", 4)], &[("user", 4), ("str", 7)], &[]),
        external("always_fails", None, &[("user", 4)], &[("user", 4), ("str", 7)], &[]),
        external("java_plus_one", Some("p3"), &[("user_mapped", 4)], &[("user", 4), ("user_mapped", 4)], &[("user", "user_mapped")]),
        {"source": {"metadata": {"name": "contextual", "team": "unit_test"},
            "keySchema": schema("contextual_keys", &[("context_1", 4), ("context_2", 4)]),
            "valueSchema": schema("contextual_values", &[("context_1", 4), ("context_2", 4)])}},
    ]);
    j
}

struct PlusOne;
impl ExternalHandler for PlusOne {
    fn fetch(&self, requests: &[Map<String, J>]) -> Vec<ExternalResult> {
        requests
            .iter()
            .map(|r| {
                let mut m = Map::new();
                for (k, v) in r {
                    m.insert(k.clone(), json!(v.as_i64().unwrap() + 1));
                    m.insert("user".into(), json!(v.as_i64().unwrap() + 1));
                }
                m.insert("str".into(), json!("plus one"));
                Ok(m)
            })
            .collect()
    }
}

struct AlwaysFails;
impl ExternalHandler for AlwaysFails {
    fn fetch(&self, requests: &[Map<String, J>]) -> Vec<ExternalResult> {
        requests
            .iter()
            .map(|_| Err("the service is down".into()))
            .collect()
    }
}

struct Setup {
    _dir: tempfile::TempDir,
    fetcher: Fetcher,
    users: Vec<i64>,
    day: Ds,
    wh: weft::warehouse::Warehouse,
}

fn setup(j: &J) -> Setup {
    let db = db(31, 10);
    let (dir, wh) = warehouse(&db);
    let root = dir.path().join("conf");
    write_conf(&root, "joins", j["metaData"]["name"].as_str().unwrap(), j);
    let mut gb = user_transactions();
    gb["metaData"]["outputNamespace"] = json!("test");
    gb["backfillStartDate"] = json!(day(0));
    write_conf(&root, "group_bys", "unit_test.user_transactions", &gb);
    let store = embedded(&wh);
    let fetcher = Fetcher::new(Session::new(&wh).unwrap(), store, &root);
    Setup {
        _dir: dir,
        fetcher,
        users: (0..30).collect(),
        day: Ds::parse(&end_day()).unwrap(),
        wh,
    }
}

fn upload_gb(s: &Setup) -> u64 {
    let path = onlinefix::write_conf(
        &s._dir.path().join("conf"),
        "group_bys",
        "unit_test.user_transactions",
        &{
            let mut gb = user_transactions();
            gb["metaData"]["outputNamespace"] = json!("test");
            gb["backfillStartDate"] = json!(day(0));
            gb
        },
    );
    upload_conf(&s.wh, s.fetcher.store.as_ref(), &path, s.day.shift(-1))
}

fn req(keys: J, at: Option<i64>) -> FetchRequest {
    FetchRequest {
        keys: keys.as_object().unwrap().clone(),
        at_millis: at,
    }
}

#[test]
fn before_an_upload_each_part_is_an_exception_then_values_come() {
    let j = join_with_externals();
    let s = setup(&j);
    s.fetcher.registry.register("plus_one", Arc::new(PlusOne));
    s.fetcher
        .registry
        .register("java_plus_one", Arc::new(PlusOne));
    s.fetcher
        .registry
        .register("always_fails", Arc::new(AlwaysFails));
    let at = Some(s.day.start_millis() + 3_600_000);
    let name = "unit_test/fetch_externals";
    let before = s
        .fetcher
        .fetch_join(name, &[req(json!({"user": 3}), at)], 0)
        .unwrap();
    let e = before[0]["unit_test_user_transactions_exception"]
        .as_str()
        .unwrap();
    assert!(e.contains("weft upload"), "{e}");
    assert!(!before[0].contains_key(SUM_30), "{:?}", before[0]);
    assert!(upload_gb(&s) > 10);
    // the offline GroupBy backfill row of the day before is what is served
    let gb_rows = rows_by_key(&s.wh, s.day.shift(-1));
    let mut seen = 0;
    for &u in &s.users {
        let r = &s
            .fetcher
            .fetch_join(
                name,
                &[req(json!({"user": u, "context_1": 7, "context_2": 8}), at)],
                0,
            )
            .unwrap()[0];
        assert!(
            !r.contains_key("unit_test_user_transactions_exception"),
            "{r:?}"
        );
        let (want, want15) = gb_rows.get(&u).cloned().unwrap_or((J::Null, J::Null));
        assert_eq!(r[SUM_30], want, "user {u}");
        assert_eq!(
            r["unit_test_user_transactions_amount_dollars_sum_15d"], want15,
            "user {u}"
        );
        if !want.is_null() {
            seen += 1;
        }
        // ExternalSourcesTest: prefixes, key mapping, a failing handler, contextual values
        let mut keys: Vec<&str> = r.keys().map(String::as_str).collect();
        keys.sort();
        assert_eq!(
            keys,
            vec![
                "ext_always_fails_exception",
                "ext_contextual_context_1",
                "ext_contextual_context_2",
                "ext_p1_plus_one_str",
                "ext_p1_plus_one_user",
                "ext_p2_plus_one_str",
                "ext_p2_plus_one_user",
                "ext_p3_java_plus_one_user",
                "ext_p3_java_plus_one_user_mapped",
                "unit_test_user_transactions_amount_dollars_sum_15d",
                SUM_30,
            ]
        );
        assert_eq!(r["ext_p1_plus_one_user"], json!(u + 1));
        assert_eq!(r["ext_p2_plus_one_user"], json!(u + 1));
        assert_eq!(r["ext_p3_java_plus_one_user_mapped"], json!(u + 1));
        assert_eq!(r["ext_contextual_context_1"], json!(7));
        assert_eq!(
            r["ext_always_fails_exception"],
            json!("the service is down")
        );
    }
    assert!(seen > 5);
    // the empty request: every part fails with missing keys, contextual values are NULL
    let empty = &s
        .fetcher
        .fetch_join(name, &[req(json!({}), at)], 0)
        .unwrap()[0];
    for k in [
        "unit_test_user_transactions_exception",
        "ext_p1_plus_one_exception",
        "ext_p2_plus_one_exception",
        "ext_always_fails_exception",
        "ext_p3_java_plus_one_exception",
    ] {
        assert!(empty.contains_key(k), "{k} missing in {empty:?}");
    }
    assert_eq!(empty["ext_contextual_context_1"], J::Null);
    assert!(
        empty
            .keys()
            .all(|k| k.ends_with("_exception") || k.starts_with("ext_contextual")),
        "{empty:?}"
    );
}

/// The GroupBy backfill table's 30-day and 15-day sums of day `d`, by user.
fn rows_by_key(wh: &weft::warehouse::Warehouse, d: Ds) -> std::collections::BTreeMap<i64, (J, J)> {
    let t = weft::warehouse::TableName::parse("test.unit_test_user_transactions").unwrap();
    let mut out = std::collections::BTreeMap::new();
    let int = |a: &dyn arrow::array::Array, i: usize| {
        reference::data::cell(a, i)
            .as_i64()
            .map_or(J::Null, |x| json!(x))
    };
    for b in wh.read_partition(&t, d).unwrap() {
        let users = b.column_by_name("user").unwrap();
        let s30 = b.column_by_name("amount_dollars_sum_30d").unwrap();
        let s15 = b.column_by_name("amount_dollars_sum_15d").unwrap();
        for i in 0..b.num_rows() {
            let u = reference::data::cell(users.as_ref(), i).as_i64().unwrap();
            out.insert(u, (int(s30.as_ref(), i), int(s15.as_ref(), i)));
        }
    }
    out
}

/// A one-thread HTTP service answering POSTs with `f(body)` after `delay`.
fn http_service(delay: Duration, f: fn(J) -> J) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in l.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let body = loop {
                let n = s.read(&mut chunk).unwrap_or(0);
                if n == 0 {
                    break None;
                }
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).to_string();
                if let Some(h) = text.find("\r\n\r\n") {
                    let len: usize = text[..h]
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap())
                        })
                        .unwrap_or(0);
                    if buf.len() >= h + 4 + len {
                        break Some(buf[h + 4..h + 4 + len].to_vec());
                    }
                }
            };
            let Some(body) = body else { continue };
            std::thread::sleep(delay);
            let out = f(serde_json::from_slice(&body).unwrap()).to_string();
            let _ = write!(s, "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{out}", out.len());
        }
    });
    format!("http://{addr}/fetch")
}

fn plus_two(body: J) -> J {
    J::Array(
        body.as_array()
            .unwrap()
            .iter()
            .map(|r| json!({"user": r["user"].as_i64().unwrap() + 2}))
            .collect(),
    )
}

#[test]
fn factory_configured_http_handlers_answer_within_the_deadline() {
    let fast = http_service(Duration::ZERO, plus_two);
    // far slower than the deadline, so the bound below holds on a loaded machine too
    let slow = http_service(Duration::from_millis(5000), plus_two);
    let mut j = join("unit_test.fetch_factory", vec![]);
    let mut f = external(
        "factory",
        Some("factory"),
        &[("user", 4)],
        &[("user", 4)],
        &[],
    );
    f["source"]["factoryConfig"] = json!({"factoryName": "http", "factoryParams": {"url": fast}});
    let mut s2 = external("slow_service", None, &[("user", 4)], &[("user", 4)], &[]);
    s2["source"]["factoryConfig"] =
        json!({"factoryName": "http", "factoryParams": {"url": slow, "timeout_ms": "5000"}});
    j["onlineExternalParts"] = json!([f, s2]);
    let mut s = setup(&j);
    s.fetcher.registry.deadline = Duration::from_millis(300);
    let started = std::time::Instant::now();
    let r = s
        .fetcher
        .fetch_join(
            "unit_test/fetch_factory",
            &[
                req(json!({"user": 40}), None),
                req(json!({"user": 1}), None),
            ],
            0,
        )
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_millis(3000),
        "the 300 ms deadline held against a 5 s service: {:?}",
        started.elapsed()
    );
    assert_eq!(r[0]["ext_factory_factory_user"], json!(42));
    assert_eq!(r[1]["ext_factory_factory_user"], json!(3));
    let e = r[0]["ext_slow_service_exception"].as_str().unwrap();
    assert!(e.contains("did not answer within 300 ms"), "{e}");
    let _ = &mut s;
}

#[test]
fn the_http_service_fetches_reports_health_metrics_and_errors() {
    let j = join_with_externals();
    let s = setup(&j);
    upload_gb(&s);
    s.fetcher.registry.register("plus_one", Arc::new(PlusOne));
    let fetcher = Arc::new(s.fetcher);
    let state = weft::online::server::AppState {
        fetcher: fetcher.clone(),
        metrics: Arc::new(weft::online::metrics::Metrics::default()),
        on_join: None,
        extra_metrics: None,
    };
    let served = crate::serve_on_loopback(weft::online::server::router(state));
    let addr = served.addr;
    let base = format!("http://{addr}");
    let health: J = ureq::get(&format!("{base}/health"))
        .call()
        .unwrap()
        .into_body()
        .read_json()
        .unwrap();
    assert_eq!(health, json!({"status": "ok"}));
    let body = json!({"requests": [{"keys": {"user": 3, "context_1": 1}, "atMillis": s.day.start_millis() + 1000}, {"keys": {}}]});
    let out: J = ureq::post(&format!("{base}/v1/fetch/join/unit_test/fetch_externals"))
        .send_json(&body)
        .unwrap()
        .into_body()
        .read_json()
        .unwrap();
    let results = out["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!(results[0]["ext_p1_plus_one_user"], json!(4));
    assert!(results[1]["unit_test_user_transactions_exception"].is_string());
    // a GroupBy by its own keys
    let gb: J = ureq::post(&format!(
        "{base}/v1/fetch/groupby/unit_test/user_transactions"
    ))
    .send_json(json!([{"keys": {"user": 3}}]))
    .unwrap()
    .into_body()
    .read_json()
    .unwrap();
    assert!(
        gb["results"][0].get("amount_dollars_sum_30d").is_some(),
        "{gb}"
    );
    // an unknown join is a 404 naming it; a bad body a 400
    let missing = ureq::post(&format!("{base}/v1/fetch/join/unit_test/nope")).send_json(json!([]));
    assert!(
        matches!(missing, Err(ureq::Error::StatusCode(404))),
        "{missing:?}"
    );
    let bad =
        ureq::post(&format!("{base}/v1/fetch/join/unit_test/fetch_externals")).send_json(json!(7));
    assert!(matches!(bad, Err(ureq::Error::StatusCode(400))), "{bad:?}");
    let metrics = ureq::get(&format!("{base}/metrics"))
        .call()
        .unwrap()
        .into_body()
        .read_to_string()
        .unwrap();
    assert!(metrics.contains("weft_join_requests_total 2"), "{metrics}");
    assert!(
        metrics.contains("weft_group_by_requests_total 1"),
        "{metrics}"
    );
    assert!(metrics.contains("weft_failed_calls_total 2"), "{metrics}");
    assert!(
        metrics.contains("weft_responses_with_exceptions_total 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("weft_fetch_seconds_count{kind=\"join\"} 2"),
        "{metrics}"
    );
    // a time in nanoseconds is the caller's mistake: a 400 naming the request, nothing fetched
    let nanos = s.day.start_millis() * 1_000_000;
    let wrong_unit = ureq::post(&format!("{base}/v1/fetch/join/unit_test/fetch_externals"))
        .config()
        .http_status_as_error(false)
        .build()
        .send_json(
            json!({"requests": [{"keys": {"user": 3}}, {"keys": {"user": 3}, "atMillis": nanos}]}),
        )
        .unwrap();
    assert_eq!(wrong_unit.status().as_u16(), 400);
    let err = wrong_unit.into_body().read_to_string().unwrap();
    assert!(
        err.contains("requests[1].atMillis") && err.contains("epoch milliseconds"),
        "{err}"
    );
    // names stay inside the conf root, and errors show names, never server paths
    for name in [
        "..%2F..%2F..%2Fetc%2Fpasswd",
        "%2Fetc%2Fpasswd",
        "unit_test/./fetch_externals",
        "unit_test/..%2Funit_test%2Ffetch_externals",
    ] {
        let r = ureq::post(&format!("{base}/v1/fetch/join/{name}"))
            .config()
            .http_status_as_error(false)
            .build()
            .send_json(json!([]))
            .unwrap();
        assert_eq!(r.status().as_u16(), 404, "{name}");
        let body = r.into_body().read_to_string().unwrap();
        assert!(
            !body.contains("conf-root/") && !body.contains("/tmp"),
            "no server path: {body}"
        );
    }
    served.stop();
    // the fetcher (and its SQL engine's runtime) is dropped outside the server's runtime
    drop(fetcher);
}

/// A key missing from the latest upload has no value (not the previous day's); a GroupBy
/// whose config changed since its upload is an exception asking for a re-upload.
#[test]
fn only_the_latest_upload_is_served_and_config_drift_is_reported() {
    let mut db = db(33, 10);
    // user 99 buys only on day e-2, so a 1-day window is empty at the end of e-1
    let e = Ds::parse(&end_day()).unwrap();
    let d2 = e.shift(-2);
    db.tables.get_mut("data.transactions").unwrap().push(
        &d2.to_string(),
        vec![
            reference::V::Int(99),
            reference::V::Int(5),
            reference::V::Int(d2.start_millis() + 10),
        ],
    );
    let (dir, wh) = warehouse(&db);
    let root = dir.path().join("conf");
    let gb = |windows: &[conf::W]| {
        let mut g = conf::group_by(
            "unit_test.daily",
            vec![conf::events_source(
                "data.transactions",
                &["user", "amount_dollars"],
                Some("ts"),
            )],
            &["user"],
            Some(conf::aggs_for(
                "amount_dollars",
                reference::Op::Sum,
                windows,
                &[],
            )),
            Some(1),
        );
        g["metaData"]["outputNamespace"] = json!("test");
        g["backfillStartDate"] = json!(day(0));
        g
    };
    let path = write_conf(
        &root,
        "group_bys",
        "unit_test.daily",
        &gb(&[conf::W::Days(1)]),
    );
    let store = embedded(&wh);
    let fetcher = Fetcher::new(Session::new(&wh).unwrap(), store.clone(), &root);
    let at = Some(e.start_millis());
    let fetch = |f: &Fetcher| {
        f.fetch_group_by("unit_test/daily", &[req(json!({"user": 99}), at)], 0)
            .unwrap()
            .remove(0)
    };
    upload_conf(&wh, store.as_ref(), &path, d2);
    assert_eq!(fetch(&fetcher)["amount_dollars_sum_1d"], json!(5));
    upload_conf(&wh, store.as_ref(), &path, e.shift(-1));
    assert_eq!(
        fetch(&fetcher)["amount_dollars_sum_1d"],
        J::Null,
        "stale value served"
    );
    // the config gains a window: its served columns no longer match the upload
    write_conf(
        &root,
        "group_bys",
        "unit_test.daily",
        &gb(&[conf::W::Days(1), conf::W::Days(7)]),
    );
    let fresh = Fetcher::new(Session::new(&wh).unwrap(), store.clone(), &root);
    let r = fetch(&fresh);
    let msg = r["unit_test.daily_exception"]
        .as_str()
        .unwrap_or_else(|| panic!("{r:?}"));
    assert!(msg.contains("run `weft upload`"), "{msg}");
}

/// `weft serve` as a process: fetches over HTTP, logs the sampled responses, and on SIGTERM
/// flushes every log record before it exits.
#[test]
fn the_served_process_flushes_its_logs_on_sigterm() {
    let db = db(35, 5);
    let (dir, wh) = warehouse(&db);
    let root = dir.path().join("conf");
    let mut j = join(
        "unit_test.served",
        vec![conf::part(user_transactions(), &[], None)],
    );
    j["metaData"]["samplePercent"] = json!(100.0);
    write_conf(&root, "joins", "unit_test.served", &j);
    let mut gb = user_transactions();
    gb["metaData"]["outputNamespace"] = json!("test");
    gb["backfillStartDate"] = json!(day(0));
    let path = write_conf(&root, "group_bys", "unit_test.user_transactions", &gb);
    let e = Ds::parse(&end_day()).unwrap();
    {
        let store = embedded(&wh);
        upload_conf(&wh, store.as_ref(), &path, e.shift(-1));
    } // the store is closed: the server process opens it
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_weft"))
        .args([
            "--warehouse",
            wh.root().to_str().unwrap(),
            "serve",
            "--conf-root",
        ])
        .arg(&root)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let mut up = false;
    for _ in 0..100 {
        if ureq::get(&format!("{base}/health")).call().is_ok() {
            up = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(up, "the server did not start");
    let n = 25;
    for u in 0..n {
        let body =
            json!({"requests": [{"keys": {"user": u}, "atMillis": e.start_millis() + 1000}]});
        let r: J = ureq::post(&format!("{base}/v1/fetch/join/unit_test/served"))
            .send_json(&body)
            .unwrap()
            .into_body()
            .read_json()
            .unwrap();
        assert!(r["results"][0].get(SUM_30).is_some(), "{r}");
    }
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let status = child.wait().unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(status.success(), "{status}: {err}");
    assert!(
        err.contains(&format!("{} records written, 0 dropped", n + 1)),
        "{err}"
    );
    // every record is in the raw log table: the responses and one control event
    let raw = weft::warehouse::TableName::parse("default.chronon_log_table").unwrap();
    let rows: usize = wh
        .data_files(&raw)
        .unwrap()
        .iter()
        .map(|f| {
            let file = std::fs::File::open(f).unwrap();
            parquet::file::reader::SerializedFileReader::new(file)
                .map(|r| {
                    use parquet::file::reader::FileReader;
                    r.metadata().file_metadata().num_rows() as usize
                })
                .unwrap()
        })
        .sum();
    assert_eq!(rows, n as usize + 1);
}
