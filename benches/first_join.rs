//! Side-by-side timing of the scenario-A join (risk.checkout.v1: TEMPORAL SUM/COUNT over
//! 1d/7d/30d plus a SNAPSHOT part) in weft and in DuckDB SQL, on the same generated Parquet.
//! DuckDB runs the point-in-time join of tests/oracle/pit_join.py (a range join).
//!
//! `cargo bench --bench first_join` (release; the first build takes ~15 minutes on 2 cores).
//! Scale with WEFT_BENCH_CHECKOUTS_PER_DAY (default 2000, 59 days) and WEFT_BENCH_WORKERS.
//! Prints wall time, left rows/s, peak memory and the weft/DuckDB ratio. The full benchmark
//! of the join-engine issue (1M/10M rows, more operations, one appended day) builds on this.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use weft::config::{load_conf, Conf};
use weft::demo::{generate, DemoSpec};
use weft::engine::Context;
use weft::engine::{backfill_join, JoinOptions};
use weft::staging::{self, StagingOptions};
use weft::warehouse::Warehouse;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Peak resident memory of this process (VmHWM), in MiB.
fn peak_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn main() -> weft::Result<()> {
    let per_day = env("WEFT_BENCH_CHECKOUTS_PER_DAY", 2000);
    let workers = env("WEFT_BENCH_WORKERS", 1);
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().expect("temp dir");
    let wh = Warehouse::open(dir.path())?;
    let spec = DemoSpec {
        checkouts_per_day: per_day,
        users: (per_day * 4).max(2000),
        ..DemoSpec::default()
    };
    generate(&wh, &spec, &|_| {})?;
    let engine = Context::with_workers(&wh, workers)?;
    let confs = repo.join("dataflows/production");
    let Conf::StagingQuery(sq) = load_conf(&confs.join("staging_queries/risk/driver_table.v1"))?
    else {
        unreachable!()
    };
    staging::run(
        engine.session(),
        &sq,
        &StagingOptions::through(spec.end),
        &|_, _, _| {},
    )?;
    engine.refresh()?;
    let conf = confs.join("joins/risk/checkout.v1");
    let Conf::Join(join) = load_conf(&conf)? else {
        unreachable!()
    };
    let before = peak_mib();

    let t = Instant::now();
    let r = backfill_join(
        &engine,
        &join,
        &JoinOptions::through(spec.end),
        &|_, _, _| {},
    )?;
    let weft_s = t.elapsed().as_secs_f64();
    let weft_peak = peak_mib();

    let script = format!(
        "import sys, json, time, duckdb, resource\nsys.path.insert(0, {oracle:?})\nimport pit_join\n\
         plan = pit_join.load_plan(json.load(open({conf:?})))\ncon = duckdb.connect()\ncon.execute('SET enable_progress_bar = false')\nt = time.time()\n\
         pit_join.compute_expected(con, {root:?}, plan, {start:?}, {end:?})\n\
         n = con.execute('SELECT COUNT(*) FROM expected').fetchone()[0]\n\
         print(time.time() - t, n, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)\n",
        oracle = repo.join("tests/oracle").display().to_string(),
        conf = conf.display().to_string(),
        root = wh.root().display().to_string(),
        start = spec.start.to_string(),
        end = spec.end.to_string(),
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .output()
        .expect("python3 with duckdb (pip install duckdb)");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut f = text.lines().last().unwrap_or_default().split_whitespace();
    let (duck_s, duck_rows, duck_peak): (f64, u64, f64) = match (f.next(), f.next(), f.next()) {
        (Some(a), Some(b), Some(c)) => (
            a.parse().unwrap_or(f64::NAN),
            b.parse().unwrap_or(0),
            c.parse().unwrap_or(f64::NAN),
        ),
        _ => panic!(
            "DuckDB side failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
    };
    assert_eq!(
        duck_rows, r.left_rows,
        "both sides computed the same number of rows"
    );

    println!(
        "first join: {} left rows over {} days ({} .. {}), {workers} worker(s)",
        r.left_rows,
        spec.end.0 - spec.start.0 + 1,
        spec.start,
        spec.end
    );
    println!(
        "{:<8} {:>9} {:>14} {:>16}",
        "engine", "wall s", "left rows/s", "peak MiB"
    );
    println!(
        "{:<8} {:>9.3} {:>14.0} {:>16.0}",
        "weft",
        weft_s,
        r.left_rows as f64 / weft_s,
        weft_peak.max(before)
    );
    // ru_maxrss of a forked child includes the parent's high-water mark, so it is not shown.
    let _ = duck_peak;
    println!(
        "{:<8} {:>9.3} {:>14.0} {:>16}",
        "duckdb",
        duck_s,
        duck_rows as f64 / duck_s,
        "n/a"
    );
    println!(
        "weft/duckdb wall-time ratio: {:.2} (below 1 means weft is faster)",
        weft_s / duck_s
    );
    Ok(())
}
