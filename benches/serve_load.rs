//! Load generator against `weft serve` on loopback: requests/s and latency percentiles of join
//! fetches, with response logging off and on.
//!
//! ```sh
//! cargo bench --bench serve_load                       # release, the README's figures
//! WEFT_BENCH_RPS=200 WEFT_BENCH_SECS=3 cargo bench --bench serve_load --profile dev
//! ```
//!
//! The scenario: a warehouse with `WEFT_BENCH_USERS` users' purchases over 10 days; a join of a
//! SNAPSHOT GroupBy (SUM/COUNT over 7 and 30 days) and a TEMPORAL one (SUM/COUNT over 1 hour
//! and 1 day, fed by streamed events) with a contextual request id. Both GroupBys are uploaded
//! as of day 9 and day 10's events are streamed. The service runs in this process on
//! 127.0.0.1 (its own runtime); the load is open-loop: requests are scheduled at a fixed rate
//! (`WEFT_BENCH_RPS`, 1000) for `WEFT_BENCH_SECS` (10) over `WEFT_BENCH_CLIENTS` (32)
//! keep-alive connections, and latency is measured from the scheduled time, so a stall is not
//! hidden (no coordinated omission). Run twice: the join without `samplePercent` (no logging),
//! and with `samplePercent = 100` (every response logged to the local log stream).

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{ArrayRef, Int64Array, StringArray};
use arrow::datatypes::{Field, Schema};
use arrow::record_batch::RecordBatch;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value as J};
use weft::config::{load_conf, Conf};
use weft::logging::logger::{Logger, LoggerConfig};
use weft::logging::sink::FileLogSink;
use weft::online::fetcher::Fetcher;
use weft::online::log_responses::ResponseLogger;
use weft::online::metrics::Metrics;
use weft::online::server::{router, AppState};
use weft::online::stream::Streamer;
use weft::online::upload::upload;
use weft::partition::{Ds, PartitionRange};
use weft::sql::Session;
use weft::warehouse::{TableName, Warehouse};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

const DAYS: i32 = 10;

fn base() -> Ds {
    Ds::parse("2026-03-01").expect("date")
}

fn write(wh: &Warehouse, table: &str, ds: Ds, cols: Vec<(&str, ArrayRef)>) {
    let schema = Arc::new(Schema::new(
        cols.iter()
            .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
            .collect::<Vec<_>>(),
    ));
    let batch = RecordBatch::try_new(schema.clone(), cols.into_iter().map(|(_, a)| a).collect())
        .expect("batch");
    wh.write_partition(
        &TableName::parse(table).expect("name"),
        &[("ds".into(), ds.to_string())],
        schema,
        &[batch],
    )
    .expect("write");
}

fn users(n: u64) -> Vec<String> {
    (0..n).map(|u| format!("u{u:06}")).collect()
}

/// Purchases and a small left table.
fn generate(wh: &Warehouse, n_users: u64) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let names = users(n_users);
    for d in 0..=DAYS {
        let ds = base().shift(d);
        let n = (n_users as usize) * 2;
        let mut user = Vec::with_capacity(n);
        let mut amount = Vec::with_capacity(n);
        let mut ts = Vec::with_capacity(n);
        for _ in 0..n {
            user.push(names[rng.random_range(0..names.len())].clone());
            amount.push(rng.random_range(1..10_000i64));
            ts.push(ds.start_millis() + rng.random_range(0..86_400_000i64));
        }
        write(
            wh,
            "data.purchases",
            ds,
            vec![
                ("user_id", Arc::new(StringArray::from(user)) as ArrayRef),
                ("amount", Arc::new(Int64Array::from(amount))),
                ("ts", Arc::new(Int64Array::from(ts))),
            ],
        );
        write(
            wh,
            "data.requests",
            ds,
            vec![
                (
                    "user_id",
                    Arc::new(StringArray::from(vec![names[0].clone()])) as ArrayRef,
                ),
                (
                    "request_id",
                    Arc::new(StringArray::from(vec!["r0".to_string()])),
                ),
                ("ts", Arc::new(Int64Array::from(vec![ds.start_millis()]))),
            ],
        );
    }
}

fn group_by(name: &str, accuracy: i64, windows: &[(i64, i64)]) -> J {
    let w: Vec<J> = windows
        .iter()
        .map(|(l, u)| json!({"length": l, "timeUnit": u}))
        .collect();
    json!({
        "metaData": {"name": name, "team": "bench", "outputNamespace": "bench"},
        "sources": [{"events": {"table": "data.purchases", "query": {
            "selects": {"user_id": "user_id", "amount": "amount"}, "timeColumn": "ts"}}}],
        "keyColumns": ["user_id"],
        "aggregations": [
            {"inputColumn": "amount", "operation": 7, "windows": w},
            {"inputColumn": "amount", "operation": 6, "windows": w}
        ],
        "accuracy": accuracy,
        "backfillStartDate": base().to_string()
    })
}

fn join(logged: bool) -> J {
    let ctx = |n: &str| json!({"kind": 13, "name": n, "params": [{"name": "request_id", "dataType": {"kind": 7}}]});
    let mut meta =
        json!({"name": "bench.serve.v1", "team": "bench", "outputNamespace": "bench", "online": 1});
    if logged {
        meta["samplePercent"] = json!(100.0);
    }
    json!({
        "metaData": meta,
        "left": {"events": {"table": "data.requests", "query": {
            "selects": {"user_id": "user_id", "request_id": "request_id", "ts": "ts"}, "timeColumn": "ts"}}},
        "joinParts": [
            {"groupBy": group_by("bench.snapshot.v1", 1, &[(7, 1), (30, 1)])},
            {"groupBy": group_by("bench.temporal.v1", 0, &[(1, 0), (1, 1)])}
        ],
        "onlineExternalParts": [{"source": {"metadata": {"name": "contextual", "team": "bench"},
            "keySchema": ctx("contextual_keys"), "valueSchema": ctx("contextual_values")}}]
    })
}

fn write_conf(root: &Path, kind: &str, rel: &str, j: &J) -> std::path::PathBuf {
    let p = root.join(kind).join(rel);
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(&p, serde_json::to_string_pretty(j).expect("json")).expect("write");
    p
}

struct Run {
    sent: usize,
    ok: usize,
    errors: usize,
    elapsed: Duration,
    lat_us: Vec<u64>,
    logged: u64,
    dropped: u64,
}

fn pct(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

fn run(dir: &Path, logged: bool, rps: u64, secs: u64, clients: u64, n_users: u64) -> Run {
    let wh = Warehouse::open(dir.join("warehouse")).expect("warehouse");
    let root = dir.join(if logged { "conf-logged" } else { "conf" });
    write_conf(&root, "joins", "bench/serve.v1", &join(logged));
    let engine = Session::new(&wh).expect("engine");
    let store = weft::online::store::open(None, wh.root()).expect("store");
    let fetcher = Arc::new(Fetcher::new(engine, store, &root));
    let sink = FileLogSink::new(wh.clone(), "default.chronon_log_table").expect("sink");
    let logger = Arc::new(Logger::new(Box::new(sink), LoggerConfig::default()));
    let responses = Arc::new(ResponseLogger::new(logger.clone()));
    let hook = responses.clone();
    let state = AppState {
        fetcher: fetcher.clone(),
        metrics: Arc::new(Metrics::default()),
        on_join: Some(Arc::new(move |f, r, out, now| hook.log(f, r, out, now))),
        extra_metrics: None,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = rt.spawn(async move {
        axum::serve(listener, router(state))
            .with_graceful_shutdown(async {
                let _ = stop_rx.await;
            })
            .await
    });
    let url = format!("http://{addr}/v1/fetch/join/bench/serve.v1");
    let names = Arc::new(users(n_users));
    let at = base().shift(DAYS).start_millis() + 12 * 3_600_000;
    // warm up (plans the join, opens connections)
    let warm: ureq::Agent = ureq::Agent::config_builder().build().into();
    for i in 0..50 {
        let _ = warm
            .post(&url)
            .send_json(json!({"requests": [{"keys": {"user_id": names[i], "request_id": format!("w{i}")}, "atMillis": at}]}));
    }
    let total = (rps * secs) as usize;
    let interval = Duration::from_nanos(1_000_000_000 / rps.max(1));
    let start = Instant::now() + Duration::from_millis(50);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let failed = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let (url, names, next, failed) = (url.clone(), names.clone(), next.clone(), failed.clone());
            std::thread::spawn(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .timeout_global(Some(Duration::from_secs(5)))
                    .build()
                    .into();
                let mut rng = rand::rngs::StdRng::seed_from_u64(next.load(Ordering::Relaxed) as u64);
                let mut lat = Vec::new();
                let (mut ok, mut err) = (0, 0);
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        break;
                    }
                    let due = start + interval * i as u32;
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    let user = &names[rng.random_range(0..names.len())];
                    let body = json!({"requests": [{"keys": {"user_id": user, "request_id": format!("r{i}")}, "atMillis": at}]});
                    match agent.post(&url).send_json(&body) {
                        Ok(r) if r.status() == 200 => {
                            let _ = r.into_body().read_to_string();
                            ok += 1;
                        }
                        _ => {
                            err += 1;
                            failed.store(true, Ordering::Relaxed);
                        }
                    }
                    lat.push(due.elapsed().as_micros() as u64);
                }
                (lat, ok, err)
            })
        })
        .collect();
    let mut lat_us = Vec::with_capacity(total);
    let (mut ok, mut errors) = (0, 0);
    for t in threads {
        let (l, o, e) = t.join().expect("client thread");
        lat_us.extend(l);
        ok += o;
        errors += e;
    }
    let elapsed = start.elapsed();
    let _ = stop_tx.send(());
    let _ = rt.block_on(server);
    drop(rt);
    drop(fetcher);
    let st = logger.shutdown();
    lat_us.sort_unstable();
    Run {
        sent: total,
        ok,
        errors,
        elapsed,
        lat_us,
        logged: st.written,
        dropped: st.dropped,
    }
}

fn main() {
    // the binary's process setup (src/main.rs)
    weft::memory::setup_process();
    let rps = env("WEFT_BENCH_RPS", 1000);
    let secs = env("WEFT_BENCH_SECS", 10);
    let clients = env("WEFT_BENCH_CLIENTS", 32);
    let n_users = env("WEFT_BENCH_USERS", 10_000);
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let wh = Warehouse::open(dir.join("warehouse")).expect("warehouse");
    eprintln!(
        "generating {n_users} users' purchases over {} days…",
        DAYS + 1
    );
    generate(&wh, n_users);
    let root = dir.join("conf");
    let snap = write_conf(
        &root,
        "group_bys",
        "bench/snapshot.v1",
        &group_by("bench.snapshot.v1", 1, &[(7, 1), (30, 1)]),
    );
    let temp = write_conf(
        &root,
        "group_bys",
        "bench/temporal.v1",
        &group_by("bench.temporal.v1", 0, &[(1, 0), (1, 1)]),
    );
    {
        let engine = weft::engine::Context::new(&wh).expect("engine");
        let store = weft::online::store::open(None, wh.root()).expect("store");
        for p in [&snap, &temp] {
            let Conf::GroupBy(gb) = load_conf(p).expect("conf") else {
                unreachable!()
            };
            let r = upload(
                &engine,
                store.as_ref(),
                &gb,
                base().shift(DAYS - 1),
                &|_, _, _| {},
            )
            .expect("upload");
            eprintln!("uploaded {}: {} keys", r.group_by, r.keys);
        }
        let Conf::GroupBy(gb) = load_conf(&temp).expect("conf") else {
            unreachable!()
        };
        let mut s = Streamer::new(engine.session(), store.as_ref(), &gb).expect("streamer");
        s.replay(PartitionRange::new(base().shift(DAYS), base().shift(DAYS)))
            .expect("stream");
        eprintln!("streamed {} events", s.report.events_written);
    }
    println!("| logging | requests | ok | errors | achieved req/s | p50 ms | p90 ms | p99 ms | max ms | logged | dropped |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for logged in [false, true] {
        let r = run(dir, logged, rps, secs, clients, n_users);
        println!(
            "| {} | {} | {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {} |",
            if logged { "on (100%)" } else { "off" },
            r.sent,
            r.ok,
            r.errors,
            r.ok as f64 / r.elapsed.as_secs_f64(),
            pct(&r.lat_us, 0.5),
            pct(&r.lat_us, 0.9),
            pct(&r.lat_us, 0.99),
            pct(&r.lat_us, 1.0),
            r.logged,
            r.dropped
        );
    }
}
