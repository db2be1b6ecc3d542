//! Cluster mode: the same pipelines computed by timely clusters of several processes give
//! the tables one process gives, which equal the oracles.
//!
//! In-process (cheap, every `cargo test`): a materializer as process 0 and a second timely
//! process on another thread, joined over loopback TCP, so every record that crosses workers
//! is serialized; and one process whose workers still serialize (`ProcessBinary`).
//! Through the binary: `backfill`, `label-join` and `materialize --once` with (processes,
//! workers) ∈ {(1,1), (1,2), (2,1)}; a peer killed mid-run stops the other within seconds,
//! and a restart under another topology resumes to the oracle's tables; processes that run
//! different commands or configs refuse to start, naming the difference.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use std::sync::Arc;
use weft::dataflow::{Cluster, Identity, Runtime, Topology};

use weft::engine::Context;
use weft::join::shard::SourceReader;
use weft::warehouse::Warehouse;

use crate::materialize::{check, day, Harness, World};
use crate::reference::data;

/// `n` loopback addresses on ports free a moment ago.
fn addresses(n: usize) -> Vec<String> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("a free port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().unwrap().to_string())
        .collect()
}

fn cluster(addresses: &[String], process: usize, workers: usize) -> Topology {
    Topology {
        workers,
        cluster: Some(Cluster {
            addresses: addresses.to_vec(),
            process,
            connect_timeout: Duration::from_secs(30),
            identity: Identity::new().with("test", "cluster"),
        }),
        serialize: false,
    }
}

/// Process `process` of the cluster, on its own thread, until process 0 shuts down (its
/// workers read their share of the sources from `wh`).
fn follower(
    topology: Topology,
    wh: &Warehouse,
) -> std::thread::JoinHandle<weft::error::Result<()>> {
    let wh = wh.clone();
    std::thread::spawn(move || Context::follower(&wh, topology)?.wait())
}

/// A materializer on a two-process loopback cluster keeps the tables a one-process run
/// keeps, after the first epochs and after new, late and re-landed days: every join's
/// table equals a fresh backfill and the reference, and the GroupBy table equals its
/// backfill. When the materializer is dropped, process 1 ends cleanly.
#[test]
fn a_two_process_cluster_materializes_what_one_process_does() {
    let addrs = addresses(2);
    let mut w = World::new(91);
    let mut h = Harness::prepare(&w, cluster(&addrs, 0, 1));
    let p1 = follower(cluster(&addrs, 1, 1), &h.wh);
    h.open();
    h.materialize("first epochs");
    check(&h, &w, "cluster: first epochs");
    h.land_boot(&w, 3);
    h.materialize("bootstrap landed");
    check(&h, &w, "cluster: first epochs");
    // a new day, late events inside the maintained days, a re-landed left day
    w.land_day(&h.wh);
    reland_events(&mut w, &h, 1, |rows| rows.push(rows[0].clone()));
    h.materialize("deltas");
    check(&h, &w, "cluster: after deltas");
    let topology =
        h.m.as_ref()
            .unwrap()
            .shared
            .status
            .lock()
            .unwrap()
            .topology
            .clone();
    assert!(topology.starts_with("process 0 of 2"), "{topology}");
    stop(h, p1);
}

/// Each process of a cluster decodes its own share of the source partitions: process 1's
/// reader reads some, and the tables still equal the oracle's, after new and re-landed days
/// too (whose earlier rows the worker that read them retracts).
#[test]
fn each_process_reads_its_share_of_the_sources() {
    let addrs = addresses(2);
    let mut w = World::new(93);
    let mut h = Harness::prepare(&w, cluster(&addrs, 0, 1));
    let reader = Arc::new(SourceReader::new(&h.wh));
    let (r, t) = (reader.clone(), cluster(&addrs, 1, 1));
    let p1 = std::thread::spawn(move || Runtime::start_reading(t, Some(r))?.wait());
    h.open();
    h.materialize("first epochs");
    check(&h, &w, "sharded reads: first epochs");
    let first = reader.partitions_read();
    assert!(first > 0, "process 1 read no source partition");
    w.land_day(&h.wh);
    reland_events(&mut w, &h, 2, |rows| rows.truncate(rows.len() / 2));
    h.materialize("deltas");
    check(
        &h,
        &w,
        "sharded reads: after a new day and a shrunk late day",
    );
    assert!(
        reader.partitions_read() > first,
        "process 1 read nothing of the new and re-landed days"
    );
    stop(h, p1);
}

/// Re-lands events day `d` with its rows changed by `edit`.
fn reland_events(
    w: &mut World,
    h: &Harness,
    d: i64,
    edit: impl FnOnce(&mut Vec<Vec<crate::reference::V>>),
) {
    let late = day(d);
    let mut rows = w.db.table("data.events").parts[&late].clone();
    edit(&mut rows);
    w.db.table_mut("data.events")
        .parts
        .insert(late.clone(), rows);
    data::write_partition(&h.wh, &w.db, "data.events", &late);
}

/// Stops the materializer (process 0): process 1 then ends cleanly.
fn stop(mut h: Harness, p1: std::thread::JoinHandle<weft::error::Result<()>>) {
    h.m = None;
    drop(h);
    p1.join()
        .expect("process 1's thread")
        .expect("process 1 ends cleanly when process 0 finishes");
}

/// A source partition that cannot be read fails the epoch of the pipelines that read it,
/// naming the partition, wherever the worker that read it runs; once the partition is landed
/// again, the next epoch starts those pipelines afresh and the tables equal the oracle's.
#[test]
fn a_source_partition_that_cannot_be_read_fails_the_epoch_and_a_good_one_repairs_it() {
    let addrs = addresses(2);
    let mut w = World::new(94);
    let mut h = Harness::prepare(&w, cluster(&addrs, 0, 1));
    let p1 = follower(cluster(&addrs, 1, 1), &h.wh);
    h.open();
    h.materialize("first epochs");
    let d = w.land_day(&h.wh);
    let dir =
        h.wh.root()
            .join("data/events")
            .join(format!("ds={}", day(d)));
    for f in std::fs::read_dir(&dir).unwrap() {
        let f = f.unwrap().path();
        let bytes = std::fs::read(&f).unwrap();
        std::fs::write(&f, &bytes[..bytes.len() / 3]).unwrap();
    }
    let ms = h.m.as_mut().unwrap().run_until_idle().unwrap();
    let errors: Vec<String> = ms
        .last()
        .unwrap()
        .pipelines
        .iter()
        .filter_map(|p| p.error.as_ref().map(|(_, m)| format!("{}: {m}", p.name)))
        .collect();
    assert!(
        errors
            .iter()
            .any(|e| e.contains("joins/") && e.contains(&format!("data/events/ds={}", day(d)))),
        "{errors:?}"
    );
    data::write_partition(&h.wh, &w.db, "data.events", &day(d));
    h.materialize("repaired");
    check(&h, &w, "after the damaged day was landed again");
    stop(h, p1);
}

/// One process whose two workers serialize every exchanged record (timely's
/// `ProcessBinary`): the bincode path of a cluster, without the network.
#[test]
fn workers_that_serialize_every_record_compute_the_same_tables() {
    let mut w = World::new(92);
    let topology = Topology {
        workers: 2,
        cluster: None,
        serialize: true,
    };
    let mut h = Harness::with_topology(&w, topology);
    h.materialize("first epochs");
    check(&h, &w, "serialized: first epochs");
    w.land_day(&h.wh);
    h.materialize("new day");
    check(&h, &w, "serialized: new day");
}

/// Processes that would build different dataflows never start computing: both exit with
/// the first difference named.
#[test]
fn processes_that_disagree_refuse_to_start_naming_the_difference() {
    let addrs = addresses(2);
    let mut a = cluster(&addrs, 1, 1);
    a.cluster.as_mut().unwrap().identity = Identity::new().with("config `joins/a.v1`", "1111");
    let dir = tempfile::tempdir().unwrap();
    let p1 = follower(a, &Warehouse::open(dir.path()).unwrap());
    let mut b = cluster(&addrs, 0, 1);
    b.cluster.as_mut().unwrap().identity = Identity::new().with("config `joins/a.v1`", "2222");
    let err = Runtime::start_with(b).unwrap_err().to_string();
    assert!(
        err.contains("process 1 does not run what process 0 runs")
            && err.contains("config `joins/a.v1`: `1111` here, `2222` in process 0"),
        "{err}"
    );
    let err1 = p1.join().unwrap().unwrap_err().to_string();
    assert!(err1.contains("`1111` here"), "{err1}");
}

/// A process alone, its peer never started: a clear error after the connect timeout, not a
/// hang.
#[test]
fn a_cluster_that_does_not_form_fails_after_the_connect_timeout() {
    let addrs = addresses(2);
    let mut t = cluster(&addrs, 0, 1);
    t.cluster.as_mut().unwrap().connect_timeout = Duration::from_secs(2);
    let start = Instant::now();
    let err = Runtime::start_with(t).unwrap_err().to_string();
    assert!(err.contains("did not form within 2 s"), "{err}");
    assert!(start.elapsed() < Duration::from_secs(10));
}

// ------------------------------------------------------------------------------------------
// Through the binary
// ------------------------------------------------------------------------------------------

fn weft(wh: &Path, args: &[String]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_weft"));
    c.arg("--warehouse").arg(wh).args(args);
    c.env_remove("WEFT_FAILPOINT")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// Waits for a child at most `limit`; kills it and fails the test past that.
fn wait(mut child: Child, limit: Duration, what: &str) -> Output {
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{what}: still running after {limit:?}:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({:?}):\n{}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `args` as a (processes, workers) topology: every process the same command with its
/// own --process; returns process 0's output after checking the others ended cleanly.
fn run_as(wh: &Path, args: &[String], processes: usize, workers: usize) -> Output {
    let mut args = args.to_vec();
    args.extend(["--workers".into(), workers.to_string()]);
    if processes == 1 {
        let out = wait(
            weft(wh, &args).spawn().unwrap(),
            Duration::from_secs(300),
            "weft",
        );
        ok(&out, "one process");
        return out;
    }
    // a port taken between `addresses` and the process binding it fails that process at start
    // (it exits with timely's "failed to initialize networking"); run again on other ports
    for attempt in 0..3 {
        let addrs = addresses(processes).join(",");
        let with = |p: usize| {
            let mut a = args.clone();
            a.extend([
                "--processes".into(),
                processes.to_string(),
                "--process".into(),
                p.to_string(),
                "--addresses".into(),
                addrs.clone(),
                "--connect-timeout".into(),
                "30".into(),
            ]);
            a
        };
        let others: Vec<Child> = (1..processes)
            .map(|p| weft(wh, &with(p)).spawn().unwrap())
            .collect();
        let lead = wait(
            weft(wh, &with(0)).spawn().unwrap(),
            Duration::from_secs(300),
            "process 0",
        );
        let outs: Vec<Output> = others
            .into_iter()
            .map(|c| wait(c, Duration::from_secs(40), "a follower"))
            .collect();
        let port_taken = |o: &Output| {
            String::from_utf8_lossy(&o.stderr).contains("failed to initialize networking")
        };
        if attempt < 2
            && !lead.status.success()
            && (port_taken(&lead) || outs.iter().any(port_taken))
        {
            continue;
        }
        ok(&lead, "process 0");
        for (i, out) in outs.iter().enumerate() {
            ok(out, &format!("process {}", i + 1));
            assert!(
                String::from_utf8_lossy(&out.stderr).contains("process 0 finished"),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        return lead;
    }
    unreachable!("the last attempt returns or fails")
}

const TOPOLOGIES: [(usize, usize); 3] = [(1, 1), (1, 2), (2, 1)];

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

/// `weft backfill` of a config folder (two joins, one with bootstrap, and a GroupBy table)
/// gives the oracle's tables under every topology.
#[test]
fn backfill_gives_the_same_tables_under_every_topology() {
    let w = World::new(93);
    for (p, wk) in TOPOLOGIES {
        let mut h = Harness::new(&w);
        h.m = None;
        h.land_boot(&w, 2);
        let end = day(w.last_day);
        let mut args = s(&["backfill", "--end-ds", &end, "--conf"]);
        args.push(h.confs.display().to_string());
        run_as(h.wh.root(), &args, p, wk);
        check(&h, &w, &format!("backfill as ({p}, {wk})"));
    }
}

/// `weft materialize --once` under one topology, then a new day under another (a restart
/// may change the topology): the oracle's tables each time.
#[test]
fn materialize_resumes_under_another_topology() {
    let mut w = World::new(94);
    let mut h = Harness::new(&w);
    h.m = None;
    let args = |h: &Harness| {
        let mut a = s(&["materialize", "--once", "--conf-root"]);
        a.push(h.confs.display().to_string());
        a.push("--state-dir".into());
        a.push(h.state.display().to_string());
        a
    };
    for (i, (p, wk)) in [(2, 1), (1, 2), (2, 1), (1, 1)].into_iter().enumerate() {
        if i > 0 {
            w.land_day(&h.wh);
        }
        run_as(h.wh.root(), &args(&h), p, wk);
        check(
            &h,
            &w,
            &format!("materialize --once as ({p}, {wk}), round {i}"),
        );
    }
}

/// `weft label-join` (a windowed label: MAX over the label events) writes the same label tables
/// under every topology, and they hold labels.
#[test]
fn label_join_gives_the_same_labels_under_every_topology() {
    use crate::labelfix;
    let mut db = labelfix::random_db(17, "2022-10-01", 12, 6);
    db.add(labelfix::EVENTS, labelfix::events_table());
    let j = labelfix::join(
        "test.cl_labels.v1",
        vec![labelfix::max_active_label()],
        5,
        5,
    );
    let mut results = Vec::new();
    for (p, wk) in TOPOLOGIES {
        let dir = tempfile::tempdir().unwrap();
        let wh = weft::warehouse::Warehouse::open(dir.path().join("warehouse")).unwrap();
        data::write_db(&wh, &db);
        let conf: PathBuf = dir.path().join("production/joins/test/cl_labels.v1");
        std::fs::create_dir_all(conf.parent().unwrap()).unwrap();
        std::fs::write(&conf, j.to_string()).unwrap();
        let c = conf.display().to_string();
        run_as(
            wh.root(),
            &s(&["backfill", "--end-ds", "2022-10-12", "--conf", &c]),
            p,
            wk,
        );
        run_as(
            wh.root(),
            &s(&[
                "label-join",
                "--from-label-ds",
                "2022-10-06",
                "--label-ds",
                "2022-10-12",
                "--conf",
                &c,
            ]),
            p,
            wk,
        );
        let labels = labelfix::table_rows(&wh, &labelfix::table(&j, "_labels"));
        assert!(!labels.is_empty(), "({p}, {wk}): no label rows");
        let features = labelfix::table_rows(&wh, &labelfix::table(&j, ""));
        results.push(((p, wk), labels, features, dir));
    }
    let (first, labels, features, _) = &results[0];
    for (t, l, f, _) in &results[1..] {
        assert_eq!(l, labels, "labels as {t:?} vs {first:?}");
        assert_eq!(f, features, "features as {t:?} vs {first:?}");
    }
}

/// A two-process materializer: once its first epoch is committed, process 1 is killed;
/// process 0 exits non-zero within seconds, naming the lost peer. Then the reverse (process 0
/// killed: process 1 exits non-zero). A restart as one process with two workers resumes to
/// the oracle's tables.
#[test]
fn a_lost_process_stops_the_cluster_and_a_restart_under_another_topology_resumes() {
    let mut w = World::new(95);
    let mut h = Harness::new(&w);
    h.m = None;
    let base = |h: &Harness| {
        let mut a = s(&["materialize", "--poll-secs", "1", "--conf-root"]);
        a.push(h.confs.display().to_string());
        a.push("--state-dir".into());
        a.push(h.state.display().to_string());
        a
    };
    let mut last_epoch = -1;
    for victim in [1usize, 0] {
        let addrs = addresses(3);
        let listen = addrs[2].clone();
        let cl = addrs[..2].join(",");
        let spawn = |p: usize| {
            let mut a = base(&h);
            a.extend(s(&[
                "--processes",
                "2",
                "--process",
                &p.to_string(),
                "--addresses",
                &cl,
                "--listen",
                &listen,
            ]));
            weft(h.wh.root(), &a).spawn().unwrap()
        };
        let mut procs = vec![spawn(1), spawn(0)];
        procs.swap(0, 1); // procs[i] is process i
                          // wait for an epoch committed by this cluster (the status in the state folder)
        let start = Instant::now();
        loop {
            let st = weft(
                h.wh.root(),
                &s(&["materialize", "status", "--json", "--state-dir"]),
            )
            .arg(&h.state)
            .output()
            .unwrap();
            let epoch = serde_json::from_slice::<serde_json::Value>(&st.stdout)
                .ok()
                .and_then(|v| v["epoch"].as_i64());
            if let Some(e) = epoch.filter(|e| *e > last_epoch) {
                last_epoch = e;
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "no epoch committed: {}",
                String::from_utf8_lossy(&st.stderr)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        // a new day lands while the cluster runs
        w.land_day(&h.wh);
        let mut killed = procs.remove(victim);
        killed.kill().unwrap();
        let _ = killed.wait();
        let t = Instant::now();
        let other = wait(
            procs.remove(0),
            Duration::from_secs(20),
            "the surviving process",
        );
        let err = String::from_utf8_lossy(&other.stderr);
        assert!(
            !other.status.success(),
            "process {} exited 0: {err}",
            1 - victim
        );
        assert!(
            err.contains("a process of the cluster was lost"),
            "process {}: {err}",
            1 - victim
        );
        assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    }
    // restart as one process with two workers
    let mut a = base(&h);
    a[1] = "--once".into();
    a.remove(2);
    run_as(h.wh.root(), &a, 1, 2);
    check(&h, &w, "restart as (1, 2) after a lost process");
}
