//! The first join end to end: demo data → staging query → join backfill through the
//! differential dataflow, checked against the same point-in-time join written in DuckDB SQL
//! (tests/oracle/pit_join.py), for TEMPORAL and SNAPSHOT parts; and byte-identical output
//! for any number of workers and step sizes.

use std::path::{Path, PathBuf};
use std::process::Command;

use weft::config::{load_conf, Conf};
use weft::demo::{generate, DemoSpec};
use weft::engine::Context;
use weft::engine::{backfill_join, JoinOptions};
use weft::partition::Ds;
use weft::staging::{self, StagingOptions};
use weft::warehouse::{TableName, Warehouse};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn spec() -> DemoSpec {
    DemoSpec {
        end: Ds::parse("2026-01-12").unwrap(),
        users: 120,
        merchants: 20,
        checkouts_per_day: 80,
        ..DemoSpec::default()
    }
}

/// Generates data and runs the driver staging query into `dir`.
fn prepare(dir: &Path) -> (Warehouse, Context) {
    let wh = Warehouse::open(dir).unwrap();
    generate(&wh, &spec(), &|_| {}).unwrap();
    let engine = Context::new(&wh).unwrap();
    let Conf::StagingQuery(sq) =
        load_conf(&repo().join("dataflows/production/staging_queries/risk/driver_table.v1"))
            .unwrap()
    else {
        panic!()
    };
    staging::run(
        engine.session(),
        &sq,
        &StagingOptions::through(spec().end),
        &|_, _, _| {},
    )
    .unwrap();
    engine.refresh().unwrap();
    (wh, engine)
}

fn join(rel: &str) -> weft::config::Join {
    match load_conf(&repo().join("dataflows/production/joins").join(rel)).unwrap() {
        Conf::Join(j) => *j,
        _ => panic!("{rel} is not a join"),
    }
}

fn oracle(wh: &Path, conf: &str) {
    let probe = Command::new("python3")
        .args(["-c", "import duckdb"])
        .status()
        .expect("python3 is needed for the DuckDB oracle");
    assert!(
        probe.success(),
        "the DuckDB oracle needs `pip install duckdb` (bash .ci/run installs it)"
    );
    let out = Command::new("python3")
        .arg(repo().join("tests/oracle/pit_join.py"))
        .args(["--warehouse", wh.to_str().unwrap(), "--conf"])
        .arg(repo().join("dataflows/production/joins").join(conf))
        .args([
            "--start-ds",
            "2026-01-01",
            "--end-ds",
            &spec().end.to_string(),
        ])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "oracle disagrees for {conf}:\n{text}");
    assert!(text.contains("rows match"), "{text}");
}

#[test]
fn temporal_and_snapshot_join_match_duckdb() {
    let dir = tempfile::tempdir().unwrap();
    let (wh, engine) = prepare(dir.path());
    for conf in ["risk/checkout.v1", "risk/checkout.snapshot_v1"] {
        let r = backfill_join(
            &engine,
            &join(conf),
            &JoinOptions::through(spec().end),
            &|_, _, _| {},
        )
        .unwrap();
        assert_eq!(
            r.written.len(),
            12,
            "{conf}: one output partition per left partition"
        );
        assert!(r.left_rows > 0);
        oracle(wh.root(), conf);
        // Re-running computes nothing: every partition exists.
        let again = backfill_join(
            &engine,
            &join(conf),
            &JoinOptions::through(spec().end),
            &|_, _, _| {},
        )
        .unwrap();
        assert!(again.written.is_empty());
        assert_eq!(again.skipped_existing, 12);
    }
}

fn partition_bytes(wh: &Warehouse, t: &TableName) -> Vec<(Ds, Vec<u8>)> {
    wh.partitions(t)
        .unwrap()
        .into_iter()
        .map(|ds| {
            let files = wh.partition_files(t, ds).unwrap();
            (
                ds,
                files
                    .iter()
                    .flat_map(|f| std::fs::read(f).unwrap())
                    .collect(),
            )
        })
        .collect()
}

#[test]
fn output_is_byte_identical_for_any_workers_and_steps() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let (wa, ea) = prepare(a.path());
    let (wb, _) = prepare(b.path());
    let j = join("risk/checkout.v1");
    backfill_join(&ea, &j, &JoinOptions::through(spec().end), &|_, _, _| {}).unwrap();
    let eb = Context::with_workers(&wb, 3).unwrap();
    let r = backfill_join(
        &eb,
        &j,
        &JoinOptions {
            start: None,
            end: spec().end,
            step_days: 4,
            run_first_hole: false,
            verify_existing: false,
        },
        &|_, _, _| {},
    )
    .unwrap();
    assert_eq!(r.written.len(), 12);
    let t = TableName::parse("risk.risk_checkout_v1").unwrap();
    let (pa, pb) = (partition_bytes(&wa, &t), partition_bytes(&wb, &t));
    assert_eq!(pa.len(), 12);
    for ((da, ba), (db, bb)) in pa.iter().zip(&pb) {
        assert_eq!(da, db);
        assert!(
            ba == bb,
            "partition {da} differs between 1 worker/30-day steps and 3 workers/4-day steps"
        );
    }
}
