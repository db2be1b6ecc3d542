//! Conformance tests of the online key-value stores (chronon-semantics §6.1): one suite of cases
//! run against the embedded store and against Redis (a `redis-server` each test starts on a free
//! loopback port and kills at the end), plus the stores' own open and failure behaviour.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use weft::online::store::{self, GetRequest, OnlineStore, PutRequest, TimedValue};

use crate::onlinefix;
use onlinefix::RedisServer;

fn put(dataset: &str, key: &[u8], value: &[u8], ts: i64) -> PutRequest {
    PutRequest {
        dataset: dataset.to_string(),
        key: key.to_vec(),
        value: value.to_vec(),
        ts,
    }
}

fn get(dataset: &str, key: &[u8], after_ts: Option<i64>) -> GetRequest {
    GetRequest {
        dataset: dataset.to_string(),
        key: key.to_vec(),
        after_ts,
    }
}

fn tv(value: &[u8], ts: i64) -> TimedValue {
    TimedValue {
        value: value.to_vec(),
        ts,
    }
}

/// One key's versions, failing the test on a store error.
fn read(store: &dyn OnlineStore, dataset: &str, key: &[u8], after: Option<i64>) -> Vec<TimedValue> {
    let mut results = store.multi_get(&[get(dataset, key, after)]);
    assert_eq!(results.len(), 1);
    results
        .pop()
        .unwrap()
        .unwrap_or_else(|e| panic!("{}: {e}", store.describe()))
}

/// The cases every store must pass.
mod cases {
    use super::*;

    pub fn put_get(s: &dyn OnlineStore) {
        assert!(!s.describe().is_empty());
        s.multi_put(vec![]).unwrap();
        assert!(s.multi_get(&[]).is_empty());
        s.multi_put(vec![put("ds", b"user1", b"v1", 1_700_000_000_000)])
            .unwrap();
        assert_eq!(
            read(s, "ds", b"user1", None),
            vec![tv(b"v1", 1_700_000_000_000)]
        );
        // A second value in another call and a second key in the same dataset.
        s.multi_put(vec![put("ds", b"user2", b"w", 5)]).unwrap();
        assert_eq!(read(s, "ds", b"user2", None), vec![tv(b"w", 5)]);
        assert_eq!(
            read(s, "ds", b"user1", None),
            vec![tv(b"v1", 1_700_000_000_000)]
        );
    }

    pub fn versions_oldest_first(s: &dyn OnlineStore) {
        s.multi_put(vec![put("ds", b"k", b"thirty", 30)]).unwrap();
        s.multi_put(vec![
            put("ds", b"k", b"ten", 10),
            put("ds", b"k", b"minus", -7),
        ])
        .unwrap();
        s.multi_put(vec![put("ds", b"k", b"twenty", 20)]).unwrap();
        assert_eq!(
            read(s, "ds", b"k", None),
            vec![
                tv(b"minus", -7),
                tv(b"ten", 10),
                tv(b"twenty", 20),
                tv(b"thirty", 30)
            ]
        );
    }

    pub fn after_ts_filter(s: &dyn OnlineStore) {
        let puts = [(-5, "a"), (10, "b"), (20, "c"), (30, "d")]
            .iter()
            .map(|(ts, v)| put("ds", b"k", v.as_bytes(), *ts))
            .collect();
        s.multi_put(puts).unwrap();
        let tss = |after| -> Vec<i64> { read(s, "ds", b"k", after).iter().map(|v| v.ts).collect() };
        assert_eq!(tss(None), vec![-5, 10, 20, 30]);
        assert_eq!(tss(Some(i64::MIN)), vec![-5, 10, 20, 30]);
        assert_eq!(tss(Some(-5)), vec![-5, 10, 20, 30], "after_ts is inclusive");
        assert_eq!(tss(Some(-4)), vec![10, 20, 30]);
        assert_eq!(tss(Some(20)), vec![20, 30]);
        assert_eq!(tss(Some(21)), vec![30]);
        assert_eq!(tss(Some(31)), Vec::<i64>::new());
        assert_eq!(read(s, "ds", b"k", Some(30)), vec![tv(b"d", 30)]);
    }

    pub fn replace_same_version(s: &dyn OnlineStore) {
        s.multi_put(vec![put("ds", b"k", b"first", 10)]).unwrap();
        s.multi_put(vec![put("ds", b"k", b"second", 10)]).unwrap();
        assert_eq!(read(s, "ds", b"k", None), vec![tv(b"second", 10)]);
        // The same value at another version is a distinct version.
        s.multi_put(vec![put("ds", b"k", b"second", 11)]).unwrap();
        assert_eq!(
            read(s, "ds", b"k", None),
            vec![tv(b"second", 10), tv(b"second", 11)]
        );
        // A version repeated in one call keeps the last value.
        s.multi_put(vec![
            put("ds", b"k", b"x", 12),
            put("ds", b"k", b"y", 12),
            put("ds", b"k", b"z", 12),
        ])
        .unwrap();
        assert_eq!(read(s, "ds", b"k", Some(12)), vec![tv(b"z", 12)]);
        // Replacing with a shorter value leaves nothing of the longer one.
        s.multi_put(vec![put("ds", b"k", b"", 11)]).unwrap();
        assert_eq!(
            read(s, "ds", b"k", None),
            vec![tv(b"second", 10), tv(b"", 11), tv(b"z", 12)]
        );
    }

    pub fn missing_keys(s: &dyn OnlineStore) {
        assert_eq!(read(s, "never_written", b"k", None), vec![]);
        s.multi_put(vec![put("ds", b"present", b"v", 1)]).unwrap();
        let results = s.multi_get(&[
            get("ds", b"absent", None),
            get("ds", b"present", None),
            get("other_ds", b"present", None),
            get("ds", b"present", Some(2)),
            get("ds", b"present", Some(1)),
        ]);
        let results: Vec<Vec<TimedValue>> = results.into_iter().map(|r| r.unwrap()).collect();
        assert_eq!(
            results,
            vec![vec![], vec![tv(b"v", 1)], vec![], vec![], vec![tv(b"v", 1)]]
        );
        // An empty dataset name fails that request alone, with a message naming the fix.
        let results = s.multi_get(&[get("", b"present", None), get("ds", b"present", None)]);
        let err = results[0].as_ref().unwrap_err().to_string();
        assert!(err.contains("empty dataset"), "{err}");
        assert_eq!(results[1].as_ref().unwrap(), &vec![tv(b"v", 1)]);
        let err = s
            .multi_put(vec![put("", b"k", b"v", 1)])
            .unwrap_err()
            .to_string();
        assert!(err.contains("empty dataset"), "{err}");
        let err = s.drop_before("", 1).unwrap_err().to_string();
        assert!(err.contains("empty dataset"), "{err}");
    }

    pub fn binary_keys_and_values(s: &dyn OnlineStore) {
        let keys: Vec<&[u8]> = vec![
            b"",
            b"\0",
            b"\0\0",
            b"\0\x01",
            b"\x01",
            b"\xff",
            b"\xff\xff\0",
            b"\0:",
            b":",
            b"a\0b",
        ];
        let value = |i: usize| -> Vec<u8> { vec![0, i as u8, 0, 0xff, b':', 0] };
        let puts = keys
            .iter()
            .enumerate()
            .map(|(i, k)| put("bin", k, &value(i), i as i64))
            .collect();
        s.multi_put(puts).unwrap();
        let gets: Vec<GetRequest> = keys.iter().map(|k| get("bin", k, None)).collect();
        for (i, result) in s.multi_get(&gets).into_iter().enumerate() {
            assert_eq!(
                result.unwrap(),
                vec![tv(&value(i), i as i64)],
                "key {:?}",
                keys[i]
            );
        }
        // Datasets whose names are prefixes of each other, with keys that would alias them if
        // names were joined naively.
        s.multi_put(vec![
            put("a", b":b:x", b"in a", 1),
            put("a:b", b"x", b"in a:b", 1),
            put("a:b", b":x", b"in a:b (colon)", 1),
        ])
        .unwrap();
        assert_eq!(read(s, "a", b":b:x", None), vec![tv(b"in a", 1)]);
        assert_eq!(read(s, "a:b", b"x", None), vec![tv(b"in a:b", 1)]);
        assert_eq!(read(s, "a:b", b":x", None), vec![tv(b"in a:b (colon)", 1)]);
        assert_eq!(read(s, "a", b"b:x", None), vec![]);
        // Non-ASCII dataset names.
        s.multi_put(vec![put("données_ü", b"k\0", b"\0\0\0", 3)])
            .unwrap();
        assert_eq!(read(s, "données_ü", b"k\0", None), vec![tv(b"\0\0\0", 3)]);
        // A large value.
        let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        s.multi_put(vec![put("bin", b"big", &big, 9)]).unwrap();
        assert_eq!(read(s, "bin", b"big", None), vec![tv(&big, 9)]);
    }

    pub fn many_keys_in_one_call(s: &dyn OnlineStore) {
        const N: usize = 5_000;
        let started = Instant::now();
        let key = |i: usize| format!("user_{i}").into_bytes();
        let value = |i: usize, ts: i64| format!("{i}@{ts}").into_bytes();
        for ts in [100, 200] {
            s.multi_put(
                (0..N)
                    .map(|i| put("many", &key(i), &value(i, ts), ts))
                    .collect(),
            )
            .unwrap();
        }
        let mut gets: Vec<GetRequest> = (0..N).map(|i| get("many", &key(i), None)).collect();
        gets.extend((0..100).map(|i| get("many", format!("absent_{i}").as_bytes(), None)));
        gets.extend((0..N).map(|i| get("many", &key(i), Some(150))));
        let results = s.multi_get(&gets);
        assert_eq!(results.len(), gets.len());
        for (i, result) in results.into_iter().enumerate() {
            let got = result.unwrap();
            let expected = if i < N {
                vec![tv(&value(i, 100), 100), tv(&value(i, 200), 200)]
            } else if i < N + 100 {
                vec![]
            } else {
                let k = i - N - 100;
                vec![tv(&value(k, 200), 200)]
            };
            assert_eq!(got, expected, "request {i}");
        }
        // A sanity bound, far above the expected time, that catches a round trip or a commit per
        // value: debug builds do this in well under a second.
        let elapsed = started.elapsed();
        assert!(
            elapsed < Duration::from_secs(20),
            "{}: {N} keys × 2 versions took {elapsed:?}",
            s.describe()
        );
    }

    pub fn drop_before(s: &dyn OnlineStore) {
        let mut puts = Vec::new();
        for k in 0..50u8 {
            for ts in [10, 20, 30] {
                puts.push(put("up", &[k, 0], &[ts as u8], ts));
            }
        }
        puts.push(put("up", b"old_only", b"o", 5));
        puts.push(put("other", &[1, 0], b"kept", 1));
        s.multi_put(puts).unwrap();
        s.drop_before("up", 20).unwrap();
        for k in 0..50u8 {
            assert_eq!(
                read(s, "up", &[k, 0], None),
                vec![tv(&[20], 20), tv(&[30], 30)]
            );
        }
        assert_eq!(read(s, "up", b"old_only", None), vec![]);
        // Other datasets are untouched; an unknown dataset is a no-op.
        assert_eq!(read(s, "other", &[1, 0], None), vec![tv(b"kept", 1)]);
        s.drop_before("no_such_dataset", 100).unwrap();
        // Keys emptied by a drop can be written again, and dropped again.
        s.multi_put(vec![put("up", b"old_only", b"new", 40)])
            .unwrap();
        assert_eq!(read(s, "up", b"old_only", None), vec![tv(b"new", 40)]);
        s.drop_before("up", 31).unwrap();
        assert_eq!(read(s, "up", &[7, 0], None), vec![]);
        assert_eq!(read(s, "up", b"old_only", None), vec![tv(b"new", 40)]);
        s.drop_before("up", i64::MAX).unwrap();
        assert_eq!(read(s, "up", b"old_only", None), vec![]);
    }

    /// A writer adds one version of every key per call while readers check that what they see
    /// is always well-formed: versions ordered, values matching, each key's versions a prefix of
    /// 1..=n that never shrinks.
    pub fn concurrent_readers_and_writer(s: Arc<dyn OnlineStore>) {
        const KEYS: usize = 40;
        const VERSIONS: i64 = 40;
        const READERS: usize = 4;
        let key = |i: usize| vec![0, i as u8, 0];
        let value = |i: usize, ts: i64| format!("{i}:{ts}").into_bytes();
        let done = Arc::new(AtomicBool::new(false));
        let readers: Vec<_> = (0..READERS)
            .map(|_| {
                let s = s.clone();
                let done = done.clone();
                std::thread::spawn(move || {
                    let gets: Vec<GetRequest> =
                        (0..KEYS).map(|i| get("conc", &key(i), None)).collect();
                    let mut seen = vec![0usize; KEYS];
                    let mut rounds = 0;
                    loop {
                        let finished = done.load(Ordering::Acquire);
                        for (i, result) in s.multi_get(&gets).into_iter().enumerate() {
                            let versions = result.unwrap();
                            let expected: Vec<TimedValue> = (1..=versions.len() as i64)
                                .map(|ts| tv(&value(i, ts), ts))
                                .collect();
                            assert_eq!(versions, expected, "key {i}");
                            assert!(versions.len() >= seen[i], "key {i} lost versions");
                            seen[i] = versions.len();
                        }
                        rounds += 1;
                        if finished {
                            return (rounds, seen);
                        }
                    }
                })
            })
            .collect();
        let writer = {
            let s = s.clone();
            std::thread::spawn(move || {
                for ts in 1..=VERSIONS {
                    s.multi_put(
                        (0..KEYS)
                            .map(|i| put("conc", &key(i), &value(i, ts), ts))
                            .collect(),
                    )
                    .unwrap();
                }
            })
        };
        writer.join().unwrap();
        done.store(true, Ordering::Release);
        for reader in readers {
            let (rounds, seen) = reader.join().unwrap();
            assert!(rounds >= 1);
            // The last round started after the writer finished, so it saw everything.
            assert_eq!(seen, vec![VERSIONS as usize; KEYS]);
        }
    }
}

// ---- the embedded store ----

fn embedded() -> (tempfile::TempDir, Arc<dyn OnlineStore>) {
    let dir = tempfile::tempdir().unwrap();
    let s = store::open(None, dir.path()).unwrap();
    (dir, s)
}

// ---- Redis: a server per test ----

fn redis_store() -> (RedisServer, Arc<dyn OnlineStore>) {
    let server = RedisServer::start();
    let s = store::open(Some(&server.url()), Path::new("/nonexistent-warehouse")).unwrap();
    (server, s)
}

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod embedded_store {
            $(#[test]
            fn $case() {
                let (_dir, s) = super::embedded();
                super::cases::$case(&*s);
            })*
            #[test]
            fn concurrent_readers_and_writer() {
                let (_dir, s) = super::embedded();
                super::cases::concurrent_readers_and_writer(s);
            }
        }
        mod redis_store {
            $(#[test]
            fn $case() {
                let (_server, s) = super::redis_store();
                super::cases::$case(&*s);
            })*
            #[test]
            fn concurrent_readers_and_writer() {
                let (_server, s) = super::redis_store();
                super::cases::concurrent_readers_and_writer(s);
            }
        }
    };
}

conformance!(
    put_get,
    versions_oldest_first,
    after_ts_filter,
    replace_same_version,
    missing_keys,
    binary_keys_and_values,
    many_keys_in_one_call,
    drop_before,
);

// ---- opening ----

#[test]
fn open_rejects_unknown_specs() {
    let dir = tempfile::tempdir().unwrap();
    for spec in [
        "memcached://localhost:11211",
        "Embedded",
        "redis:/nohost",
        "",
    ] {
        let err = store::open(Some(spec), dir.path())
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains(spec) || spec.is_empty(), "{err}");
        assert!(
            err.contains("embedded") && err.contains("redis://host:port"),
            "{err}"
        );
    }
}

#[test]
fn redis_open_without_a_server_names_the_url_and_fix() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("redis://127.0.0.1:{port}/2");
    let err = store::open(Some(&url), Path::new("/w"))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains(&url), "{err}");
    assert!(
        err.contains("start redis-server or pass another --online-store"),
        "{err}"
    );
}

#[test]
fn embedded_store_lives_under_the_warehouse_and_handles_share_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("warehouse");
    let a = store::open(Some("embedded"), &root).unwrap();
    let file = root
        .join(".weft-online")
        .join("online.redb")
        .canonicalize()
        .unwrap();
    assert!(file.is_file());
    assert!(a.describe().starts_with("embedded: "), "{}", a.describe());
    assert!(
        a.describe().ends_with(".weft-online/online.redb"),
        "{}",
        a.describe()
    );
    // A second open in the process shares the database rather than failing on redb's lock.
    let b = store::open(None, &root).unwrap();
    a.multi_put(vec![put("ds", b"k", b"from a", 1)]).unwrap();
    assert_eq!(read(&*b, "ds", b"k", None), vec![tv(b"from a", 1)]);
    drop((a, b));
    // Closed with the last handle; reopening finds the data on disk.
    let c = store::open(None, &root).unwrap();
    assert_eq!(read(&*c, "ds", b"k", None), vec![tv(b"from a", 1)]);
    drop(c);
    // Open and close from many threads at once: never trips over the file lock.
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let root = root.clone();
            std::thread::spawn(move || {
                for j in 0..20 {
                    let s = store::open(None, &root).unwrap();
                    s.multi_put(vec![put("ds", &[i, j], b"v", 1)]).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let s = store::open(None, &root).unwrap();
    assert_eq!(read(&*s, "ds", &[7, 19], None), vec![tv(b"v", 1)]);
}

/// Set in the child process that holds the store for
/// `embedded_store_open_in_another_process_fails_clearly`.
const HOLD_ENV: &str = "WEFT_TEST_HOLD_ONLINE_STORE";

#[test]
fn embedded_store_open_in_another_process_fails_clearly() {
    if let Ok(root) = std::env::var(HOLD_ENV) {
        // The child: hold the store open until the parent closes stdin.
        let s = store::open(None, Path::new(&root)).unwrap();
        s.multi_put(vec![put("ds", b"k", b"from the child", 7)])
            .unwrap();
        // Tell the parent (a file: the harness's own output shares stdout).
        std::fs::write(Path::new(&root).join("holding"), b"").unwrap();
        let mut line = String::new();
        while std::io::stdin().read_line(&mut line).unwrap() > 0 {}
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // This test's name in the harness: its module path without the crate's name.
    let test = "embedded_store_open_in_another_process_fails_clearly";
    let test = match module_path!().split_once("::") {
        Some((_, module)) => format!("{module}::{test}"),
        None => test.to_string(),
    };
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", &test, "--nocapture", "--test-threads=1"])
        .env(HOLD_ENV, dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !dir.path().join("holding").exists() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the child exited before holding the store: {status}");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the child did not open the store within 60s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let err = store::open(None, dir.path()).err().unwrap().to_string();
    let file = dir
        .path()
        .canonicalize()
        .unwrap()
        .join(".weft-online/online.redb");
    assert!(err.contains(&file.display().to_string()), "{err}");
    assert!(err.contains("is open in another process"), "{err}");
    assert!(err.contains("weft serve"), "{err}");
    assert!(err.contains("--online-store redis://"), "{err}");
    drop(child.stdin.take());
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
    // Once the other process is gone, the store opens and has its data.
    let s = store::open(None, dir.path()).unwrap();
    assert_eq!(read(&*s, "ds", b"k", None), vec![tv(b"from the child", 7)]);
}

// ---- Redis specifics ----

#[test]
fn redis_reconnects_after_the_connection_is_killed() {
    let (server, s) = redis_store();
    s.multi_put(vec![put("ds", b"k", b"v", 1)]).unwrap();
    assert_eq!(read(&*s, "ds", b"k", None), vec![tv(b"v", 1)]);
    // Kill every other client connection (the store's pooled one among them).
    let mut admin = server.raw();
    let killed: i64 = redis::cmd("CLIENT")
        .arg(&["KILL", "TYPE", "normal", "SKIPME", "yes"])
        .query(&mut admin)
        .unwrap();
    assert!(killed >= 1);
    assert_eq!(read(&*s, "ds", b"k", None), vec![tv(b"v", 1)]);
    redis::cmd("CLIENT")
        .arg(&["KILL", "TYPE", "normal", "SKIPME", "yes"])
        .exec(&mut admin)
        .unwrap();
    s.multi_put(vec![put("ds", b"k", b"w", 2)]).unwrap();
    s.drop_before("ds", 2).unwrap();
    assert_eq!(read(&*s, "ds", b"k", None), vec![tv(b"w", 2)]);
}

#[test]
fn redis_foreign_data_fails_only_its_request() {
    let (server, s) = redis_store();
    s.multi_put(vec![put("ds", b"good", b"v", 1)]).unwrap();
    // A string where weft expects a sorted set (the layout is `weft:<len>:<dataset>:<key>`).
    redis::cmd("SET")
        .arg(b"weft:2:ds:bad".as_slice())
        .arg("not a sorted set")
        .exec(&mut server.raw())
        .unwrap();
    let results = s.multi_get(&[get("ds", b"bad", None), get("ds", b"good", None)]);
    let err = results[0].as_ref().unwrap_err().to_string();
    assert!(
        err.contains("dataset `ds`") && err.contains(&server.url()),
        "{err}"
    );
    assert!(err.contains("WRONGTYPE"), "{err}");
    assert_eq!(results[1].as_ref().unwrap(), &vec![tv(b"v", 1)]);
}

#[test]
fn redis_rejects_versions_a_score_cannot_hold() {
    let (_server, s) = redis_store();
    let err = s
        .multi_put(vec![put("ds", b"k", b"v", i64::MAX)])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("dataset `ds`") && err.contains("2^53"),
        "{err}"
    );
    s.multi_put(vec![put("ds", b"k", b"v", 1 << 53)]).unwrap();
    assert_eq!(
        read(&*s, "ds", b"k", Some(1 << 53)),
        vec![tv(b"v", 1 << 53)]
    );
}

#[test]
fn redis_selects_the_database_in_the_url() {
    let server = RedisServer::start();
    let db3 = store::open(Some(&format!("{}/3", server.url())), Path::new("/w")).unwrap();
    let db0 = store::open(Some(&server.url()), Path::new("/w")).unwrap();
    db3.multi_put(vec![put("ds", b"k", b"in 3", 1)]).unwrap();
    assert_eq!(read(&*db3, "ds", b"k", None), vec![tv(b"in 3", 1)]);
    assert_eq!(read(&*db0, "ds", b"k", None), vec![]);
    assert!(db3.describe().ends_with("/3"), "{}", db3.describe());
}
