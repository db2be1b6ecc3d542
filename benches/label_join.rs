//! The label-join benchmark: weft's label runs (`JoinRunner::label`) against the same label
//! table computed by DuckDB SQL, on the same generated Parquet warehouse.
//!
//! ```sh
//! cargo bench --bench label_join                               # release, N = 200k left rows
//! WEFT_BENCH_ROWS=20k cargo bench --bench label_join           # a quick check
//! ```
//!
//! The scenario (a temp warehouse, deleted afterwards unless `WEFT_BENCH_DIR` is set), days
//! D1..D30 (2025-01-01..2025-01-30), D = D30:
//! - left `data.checkouts`: N rows over the 30 days (`event_id` unique, `user_id` Zipf over U
//!   users, `amount_cents`, `ts` epoch ms, `ds`);
//! - entity label snapshots `data.user_status`: one row per user per day (`user_id`, `status`
//!   string, `ltv_cents` long), U rows in each of the 30 partitions;
//! - label events `data.refunds`: R events over the 30 days (`user_id` Zipf over the same
//!   users, `refund_cents` long, `ts`).
//!
//! Two label joins (compiled-Chronon JSON, parsed with `parse_conf`), both with
//! `rowIds: [event_id]` (so the label tables hold one row per left row) and one cheap feature
//! part (SUM(amount_cents) over 1 day of the left itself). weft runs each join's feature
//! backfill first, untimed, then the label runs, timed (chronon-semantics §7):
//! 1. entity labels (`bench.label_status.v1`): the snapshot GroupBy (no aggregations) keyed by
//!    `user_id`, offsets 30/1, ONE run at `label_ds` = D: labels the 30 left days
//!    [D−29, D] with snapshot partition D, joined on the key only.
//!    DuckDB: the left rows of the 30 days LEFT JOIN the snapshot partition D on `user_id`.
//! 2. an aggregated label (`bench.label_refunds.v1`): SUM(refund_cents) over 7 days, offsets
//!    7/7, one run per `label_ds` for `WEFT_BENCH_LABEL_RUNS` (23) consecutive days ending at D,
//!    all in ONE `JoinRunner`: each run after the first is a delta on the maintained dataflow
//!    (a new `label_ds`, one new left day, its 7-day window). Run L labels left day L−6 with
//!    the user's refunds with `ts` in [(L−6) 00:00, (L+1) 00:00) (NULL when none).
//!    DuckDB: one SQL statement per `label_ds` (it keeps no state between runs), the left day's
//!    rows LEFT JOIN the per-user SUM over the window, restricted to the day's users.
//!
//! weft's label runs also materialise `<join>_labeled` and `<join>_labeled_latest` for the days
//! whose labels changed (its first run: every feature day), as the `label-join` command does;
//! DuckDB writes only the label table, so weft's times include that extra work. After the timed
//! runs, weft's child drops both tables and rebuilds them for all days (untimed, printed) to
//! show that share.
//!
//! Each side runs in its own child process per part (this binary re-executed with a mode
//! argument, or `python3 -c` for DuckDB), one after the other. DuckDB's peak memory is the
//! child's `ru_maxrss` (from `wait4`); weft's child resets its peak RSS (`/proc/self/clear_refs`)
//! after the untimed backfill and reports its `VmHWM` after the label runs: the peak while
//! labelling, which includes what the backfill left resident (the label parts live in the same
//! dataflow as the feature part); the resident size after the backfill is printed too.
//! DuckDB writes Parquet with `preserve_insertion_order = false` and `WEFT_BENCH_DUCKDB_THREADS`
//! threads.
//!
//! Sanity: every row of weft's `<join>_labels` table (label_ds, ds, event_id and each label
//! column) is compared with DuckDB's by a full outer join on (label_ds, ds, event_id), plus
//! the row counts of every (label_ds, ds) partition. On any mismatch the timings are printed
//! under a loud warning and the bench exits with status 2.
//!
//! Settings (environment): `WEFT_BENCH_ROWS` (200_000; `20k`, `1M` accepted),
//! `WEFT_BENCH_USERS` (N/10), `WEFT_BENCH_REFUNDS` (N/2), `WEFT_BENCH_ZIPF` (1.1),
//! `WEFT_BENCH_LABEL_RUNS` (23, at most 24), `WEFT_BENCH_WORKERS` (1),
//! `WEFT_BENCH_DUCKDB_THREADS` (= workers), `WEFT_BENCH_SEED`, `WEFT_BENCH_DIR` (keep the
//! warehouse and results there), `WEFT_LOG` (e.g. `weft=info`: weft's phases on stderr).

// The same allocator as the `weft` binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use arrow::array::{Int64Array, StringArray};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Zipf};
use serde_json::{json, Value};

use weft::config::{parse_conf, Conf, Join};
use weft::engine::Context as WeftContext;
use weft::engine::{JoinOptions, JoinRunner};
use weft::partition::Ds;
use weft::warehouse::Warehouse;

const DAYS: i32 = 30;
const FIRST_DAY: &str = "2025-01-01";
const LEFT_TABLE: &str = "data.checkouts";
const SNAPSHOT_TABLE: &str = "data.user_status";
const REFUNDS_TABLE: &str = "data.refunds";
const OUTPUT_NAMESPACE: &str = "bench";
/// The aggregated label's window, in days (both offsets equal it).
const WINDOW_DAYS: i32 = 7;
const STATUSES: [&str; 4] = ["active", "dormant", "churned", "fraud_review"];

// ------------------------------------------------------------------------------------------
// Settings
// ------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Settings {
    rows: usize,
    users: usize,
    refunds: usize,
    zipf: f64,
    label_runs: i32,
    workers: usize,
    duck_threads: usize,
    seed: u64,
}

impl Settings {
    fn from_env() -> Result<Settings> {
        let rows = env_count("WEFT_BENCH_ROWS", 200_000)?.max(DAYS as usize);
        let workers = env_count("WEFT_BENCH_WORKERS", 1)?.max(1);
        let label_runs = env_count("WEFT_BENCH_LABEL_RUNS", 23)?;
        let max_runs = (DAYS - WINDOW_DAYS + 1) as usize;
        if label_runs > max_runs {
            bail!("WEFT_BENCH_LABEL_RUNS={label_runs}: at most {max_runs} runs have a left day in the {DAYS} days");
        }
        Ok(Settings {
            rows,
            users: env_count("WEFT_BENCH_USERS", (rows / 10).max(100))?,
            refunds: env_count("WEFT_BENCH_REFUNDS", (rows / 2).max(DAYS as usize))?,
            zipf: env_str("WEFT_BENCH_ZIPF")
                .map(|v| v.parse().context("WEFT_BENCH_ZIPF"))
                .transpose()?
                .unwrap_or(1.1),
            label_runs: label_runs as i32,
            workers,
            duck_threads: env_count("WEFT_BENCH_DUCKDB_THREADS", workers)?,
            seed: env_str("WEFT_BENCH_SEED")
                .map(|v| v.parse().context("WEFT_BENCH_SEED"))
                .transpose()?
                .unwrap_or(20_250_101),
        })
    }

    fn first_day(&self) -> Ds {
        Ds::parse(FIRST_DAY).expect("valid date")
    }
    /// D: the entity run's `label_ds` and the aggregated runs' last `label_ds`.
    fn last_day(&self) -> Ds {
        self.first_day().shift(DAYS - 1)
    }
    /// The `label_ds` of the aggregated runs, in order.
    fn sum_label_days(&self) -> Vec<Ds> {
        (0..self.label_runs)
            .map(|i| self.last_day().shift(i - self.label_runs + 1))
            .collect()
    }
}

// ------------------------------------------------------------------------------------------
// The joins
// ------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    /// Entity labels from the snapshot table, offsets 30/1, one run.
    Entity,
    /// SUM(refund_cents) over 7 days, offsets 7/7, one run per label_ds.
    Sum,
}

impl Part {
    fn join_name(self) -> &'static str {
        match self {
            Part::Entity => "bench.label_status.v1",
            Part::Sum => "bench.label_refunds.v1",
        }
    }
    fn mode(self) -> &'static str {
        match self {
            Part::Entity => "entity",
            Part::Sum => "sum",
        }
    }
    fn label_group_by(self) -> &'static str {
        match self {
            Part::Entity => "bench.user_status.v1",
            Part::Sum => "bench.refunds.v1",
        }
    }
    /// The label columns as Chronon names them (`<GroupBy name sanitized>_<column>`).
    fn label_columns(self) -> Vec<String> {
        let prefix = sanitize(self.label_group_by());
        match self {
            Part::Entity => vec![format!("{prefix}_status"), format!("{prefix}_ltv_cents")],
            Part::Sum => vec![format!("{prefix}_refund_cents_sum_{WINDOW_DAYS}d")],
        }
    }
    /// The label runs, in order.
    fn label_days(self, s: &Settings) -> Vec<Ds> {
        match self {
            Part::Entity => vec![s.last_day()],
            Part::Sum => s.sum_label_days(),
        }
    }
    /// The left days labelled by run `label_ds` (§7.3).
    fn left_days(self, label_ds: Ds) -> Vec<Ds> {
        let (start, end) = self.offsets();
        (label_ds.shift(-(start - 1)).0..=label_ds.shift(-(end - 1)).0)
            .map(Ds)
            .collect()
    }
    fn offsets(self) -> (i32, i32) {
        match self {
            Part::Entity => (DAYS, 1),
            Part::Sum => (WINDOW_DAYS, WINDOW_DAYS),
        }
    }
    fn title(self, s: &Settings) -> String {
        match self {
            Part::Entity => format!("entity, 1 run ({DAYS} days)"),
            Part::Sum => format!("sum {WINDOW_DAYS}d, {} runs", s.label_runs),
        }
    }
}

fn group_by_meta(name: &str, table: &str) -> Value {
    json!({
        "name": name,
        "online": 0,
        "customJson": "{\"lag\": 0, \"groupby_tags\": null, \"column_tags\": {}}",
        "dependencies": [dependency(table)],
        "team": "bench",
        "offlineSchedule": "@daily"
    })
}

/// The cheap feature part: SUM(amount_cents) over 1 day of the left itself.
fn feature_part() -> Value {
    json!({"groupBy": {
        "metaData": group_by_meta("bench.checkout_amounts.v1", LEFT_TABLE),
        "sources": [{"events": {"table": LEFT_TABLE, "query": {
            "selects": {"user_id": "user_id", "amount_cents": "amount_cents"},
            "timeColumn": "ts", "setups": []}}}],
        "keyColumns": ["user_id"],
        "aggregations": [{"inputColumn": "amount_cents", "operation": 7, "argMap": {},
                          "windows": [{"length": 1, "timeUnit": 1}]}],
        "accuracy": 0
    }})
}

fn label_part(part: Part) -> Value {
    let gb = match part {
        Part::Entity => json!({
            "metaData": group_by_meta(part.label_group_by(), SNAPSHOT_TABLE),
            "sources": [{"entities": {"snapshotTable": SNAPSHOT_TABLE, "query": {
                "selects": {"user_id": "user_id", "status": "status", "ltv_cents": "ltv_cents"},
                "setups": []}}}],
            "keyColumns": ["user_id"]
        }),
        Part::Sum => json!({
            "metaData": group_by_meta(part.label_group_by(), REFUNDS_TABLE),
            "sources": [{"events": {"table": REFUNDS_TABLE, "query": {
                "selects": {"user_id": "user_id", "refund_cents": "refund_cents"},
                "timeColumn": "ts", "setups": []}}}],
            "keyColumns": ["user_id"],
            "aggregations": [{"inputColumn": "refund_cents", "operation": 7, "argMap": {},
                              "windows": [{"length": WINDOW_DAYS, "timeUnit": 1}]}]
        }),
    };
    json!({"groupBy": gb})
}

/// The join as `compile.py` would write it.
fn join_json(part: Part) -> Value {
    let (start, end) = part.offsets();
    let label_source = match part {
        Part::Entity => SNAPSHOT_TABLE,
        Part::Sum => REFUNDS_TABLE,
    };
    json!({
        "metaData": {
            "name": part.join_name(),
            "online": 0,
            "production": 0,
            "customJson": "{\"check_consistency\": false, \"lag\": 0, \"join_tags\": null, \"join_part_tags\": {}}",
            "dependencies": [dependency(LEFT_TABLE)],
            "tableProperties": {"source": "chronon"},
            "outputNamespace": OUTPUT_NAMESPACE,
            "team": "bench",
            "samplePercent": 100.0,
            "offlineSchedule": "@daily"
        },
        "left": {"events": {"table": LEFT_TABLE, "query": {
            "selects": {"event_id": "event_id", "user_id": "user_id",
                        "amount_cents": "amount_cents", "ts": "ts"},
            "timeColumn": "ts", "setups": []}}},
        "joinParts": [feature_part()],
        "rowIds": ["event_id"],
        "labelPart": {
            "labels": [label_part(part)],
            "leftStartOffset": start,
            "leftEndOffset": end,
            "metaData": {
                "name": part.join_name(),
                "team": "bench",
                "dependencies": [dependency(LEFT_TABLE), dependency(label_source)],
                "offlineSchedule": "@daily"
            }
        }
    })
}

fn load_join(part: Part) -> Result<Join> {
    let text = serde_json::to_string_pretty(&join_json(part))?;
    let file = format!("production/joins/bench/{}", part.join_name());
    match parse_conf(Path::new(&file), &text)? {
        Conf::Join(j) => Ok(*j),
        _ => bail!("the bench config did not parse as a join"),
    }
}

/// What the DuckDB script needs.
fn duck_spec(s: &Settings, dir: &Path) -> Value {
    let parts: serde_json::Map<String, Value> = [Part::Entity, Part::Sum]
        .into_iter()
        .map(|p| {
            let runs: Vec<Value> = p
                .label_days(s)
                .into_iter()
                .map(|l| {
                    let days = p.left_days(l);
                    json!({
                        "label_ds": l.to_string(),
                        "left_from": days[0].to_string(),
                        "left_to": days[days.len() - 1].to_string(),
                        // the aggregated window [(L+1−W) 00:00, (L+1) 00:00)
                        "window_from_ds": l.shift(1 - WINDOW_DAYS).to_string(),
                        "window_from_ms": l.shift(1 - WINDOW_DAYS).start_millis(),
                        "window_to_ms": l.shift(1).start_millis(),
                    })
                })
                .collect();
            (
                p.mode().to_string(),
                json!({"columns": p.label_columns(), "runs": runs}),
            )
        })
        .collect();
    json!({
        "dir": dir,
        "root": dir.join("warehouse"),
        "duck_dir": dir.join("duckdb"),
        "threads": s.duck_threads,
        "left": LEFT_TABLE,
        "snapshot": SNAPSHOT_TABLE,
        "refunds": REFUNDS_TABLE,
        "parts": parts,
    })
}

// ------------------------------------------------------------------------------------------
// Data generator: one partition at a time, columnar
// ------------------------------------------------------------------------------------------

fn rng_for(s: &Settings, table: u64, day: Ds) -> SmallRng {
    let x = s
        .seed
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(table.wrapping_mul(0xBF58_476D_1CE4_E5B9))
        .wrapping_add(day.0 as u64);
    SmallRng::seed_from_u64(x)
}

fn zipf_users(s: &Settings) -> Result<Zipf<f64>> {
    Zipf::new(s.users as f64, s.zipf).map_err(|e| anyhow!("zipf: {e}"))
}

fn gen_left(wh: &Warehouse, s: &Settings, day: Ds, n: usize) -> Result<usize> {
    let mut rng = rng_for(s, 0, day);
    let zipf = zipf_users(s)?;
    let ts = day_times(&mut rng, day, n);
    let event_id: Vec<i64> = (0..n as i64)
        .map(|i| day.0 as i64 * 1_000_000_000 + i)
        .collect();
    let user_id: Vec<i64> = (0..n).map(|_| zipf.sample(&mut rng) as i64).collect();
    let amount: Vec<i64> = (0..n).map(|_| rng.random_range(100..100_000)).collect();
    write(
        wh,
        LEFT_TABLE,
        day,
        vec![
            ("event_id", Arc::new(Int64Array::from(event_id))),
            ("user_id", Arc::new(Int64Array::from(user_id))),
            ("amount_cents", Arc::new(Int64Array::from(amount))),
            ("ts", Arc::new(Int64Array::from(ts))),
        ],
    )
}

/// The day's snapshot: every user once.
fn gen_snapshot(wh: &Warehouse, s: &Settings, day: Ds) -> Result<usize> {
    let mut rng = rng_for(s, 1, day);
    let n = s.users;
    let user_id: Vec<i64> = (1..=n as i64).collect();
    let status: Vec<&str> = (0..n)
        .map(|_| STATUSES[rng.random_range(0..STATUSES.len())])
        .collect();
    let ltv: Vec<i64> = (0..n).map(|_| rng.random_range(0..10_000_000)).collect();
    write(
        wh,
        SNAPSHOT_TABLE,
        day,
        vec![
            ("user_id", Arc::new(Int64Array::from(user_id))),
            ("status", Arc::new(StringArray::from(status))),
            ("ltv_cents", Arc::new(Int64Array::from(ltv))),
        ],
    )
}

fn gen_refunds(wh: &Warehouse, s: &Settings, day: Ds, n: usize) -> Result<usize> {
    let mut rng = rng_for(s, 2, day);
    let zipf = zipf_users(s)?;
    let user_id: Vec<i64> = (0..n).map(|_| zipf.sample(&mut rng) as i64).collect();
    let cents: Vec<i64> = (0..n).map(|_| rng.random_range(100..50_000)).collect();
    let ts = day_times(&mut rng, day, n);
    write(
        wh,
        REFUNDS_TABLE,
        day,
        vec![
            ("user_id", Arc::new(Int64Array::from(user_id))),
            ("refund_cents", Arc::new(Int64Array::from(cents))),
            ("ts", Arc::new(Int64Array::from(ts))),
        ],
    )
}

/// What the generator wrote: left rows per day, snapshot rows, refunds.
type Generated = (Vec<(String, usize)>, usize, usize);

/// Every table over the 30 days.
fn generate(wh: &Warehouse, s: &Settings) -> Result<Generated> {
    let first = s.first_day();
    let (mut left, mut snap, mut refunds) = (Vec::new(), 0, 0);
    for i in 0..DAYS {
        let day = first.shift(i);
        let n = gen_left(wh, s, day, share(s.rows, DAYS as usize, i as usize))?;
        left.push((day.to_string(), n));
        snap += gen_snapshot(wh, s, day)?;
        refunds += gen_refunds(wh, s, day, share(s.refunds, DAYS as usize, i as usize))?;
    }
    Ok((left, snap, refunds))
}

// ------------------------------------------------------------------------------------------
// Child processes
// ------------------------------------------------------------------------------------------

fn child_gen(s: &Settings, dir: &Path) -> Result<()> {
    let wh = Warehouse::open(dir.join("warehouse"))?;
    let t = Instant::now();
    let (left, snapshot, refunds) = generate(&wh, s)?;
    let per_day: serde_json::Map<String, Value> =
        left.into_iter().map(|(d, n)| (d, json!(n))).collect();
    write_result(
        dir,
        "gen",
        json!({"seconds": t.elapsed().as_secs_f64(), "left_per_day": per_day,
               "snapshot": snapshot, "refunds": refunds}),
    )
}

/// A `/proc/self/status` field in kB, as MiB.
fn status_mib(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Resets this process's peak RSS (VmHWM) to its current RSS (Linux ≥ 4.0).
fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// weft's side of a part: the feature backfill (untimed), then the label runs, timed one by one.
fn child_weft(s: &Settings, dir: &Path, part: Part) -> Result<()> {
    init_tracing();
    let wh = Warehouse::open(dir.join("warehouse"))?;
    let engine = WeftContext::with_workers(&wh, s.workers)?;
    let mut runner = JoinRunner::new(&load_join(part)?)?;
    let t = Instant::now();
    let backfill = runner.run(&engine, &JoinOptions::through(s.last_day()), &|_, _, _| {})?;
    let backfill_seconds = t.elapsed().as_secs_f64();
    if backfill.written.len() != DAYS as usize {
        bail!(
            "the feature backfill wrote {} partitions, expected {DAYS}",
            backfill.written.len()
        );
    }
    let labels_dir = wh.table_dir(
        &runner
            .label_plan()
            .context("the join has no label plan")?
            .labels,
    );
    let backfill_peak = status_mib("VmHWM:");
    let rss_before = status_mib("VmRSS:");
    let reset = reset_peak();

    let mut runs = Vec::new();
    let t_all = Instant::now();
    for label_ds in part.label_days(s) {
        let t = Instant::now();
        let report = runner.label(&engine, label_ds)?;
        let seconds = t.elapsed().as_secs_f64();
        let mut written: Vec<(Ds, Ds)> = report.written.clone();
        written.sort();
        let expected: Vec<(Ds, Ds)> = part
            .left_days(label_ds)
            .into_iter()
            .map(|d| (label_ds, d))
            .collect();
        if written != expected {
            bail!(
                "label run {label_ds} wrote {} label partitions {:?}, expected {:?}",
                written.len(),
                written
                    .iter()
                    .map(|(l, d)| format!("{l}/{d}"))
                    .collect::<Vec<_>>(),
                expected
                    .iter()
                    .map(|(l, d)| format!("{l}/{d}"))
                    .collect::<Vec<_>>()
            );
        }
        if !report.missing_features.is_empty() || !report.missing_left.is_empty() {
            bail!(
                "label run {label_ds}: missing feature days {:?}, missing left days {:?}",
                report.missing_features,
                report.missing_left
            );
        }
        runs.push(json!({
            "label_ds": label_ds.to_string(),
            "seconds": seconds,
            "written": written.len(),
            "labeled_written": report.labeled_written.len(),
            "source_rows": report.source_rows,
        }));
    }
    let seconds = t_all.elapsed().as_secs_f64();
    let peak = if reset {
        status_mib("VmHWM:")
    } else {
        f64::NAN
    };
    // Untimed breakdown: how long materialising `_labeled`/`_labeled_latest` for every day
    // takes (what the first label run did besides the labels), measured by dropping both
    // tables and rebuilding them.
    let lp = runner.label_plan().context("the join has no label plan")?;
    for t in [&lp.labeled, &lp.labeled_latest] {
        std::fs::remove_dir_all(wh.table_dir(t))?;
    }
    let t = Instant::now();
    let rebuilt = weft::label::labeled::refresh(engine.session(), lp)?.len();
    let labeled_seconds = t.elapsed().as_secs_f64();
    write_result(
        dir,
        &format!("weft-{}", part.mode()),
        json!({
            "seconds": seconds,
            "runs": runs,
            "backfill_seconds": backfill_seconds,
            "backfill_peak_mib": backfill_peak,
            "rss_before_mib": rss_before,
            "peak_mib": peak,
            "labels_dir": labels_dir,
            "labeled_rebuild_seconds": labeled_seconds,
            "labeled_rebuild_days": rebuilt,
        }),
    )
}

// ------------------------------------------------------------------------------------------
// Main
// ------------------------------------------------------------------------------------------

fn main() -> Result<()> {
    // the binary's process setup (src/main.rs)
    weft::memory::setup_process();
    let args: Vec<String> = std::env::args().collect();
    let settings = Settings::from_env()?;
    if let Some(i) = args.iter().position(|a| a == "__child") {
        let mode = args.get(i + 1).context("child mode")?;
        let dir = PathBuf::from(args.get(i + 2).context("child dir")?);
        return match mode.as_str() {
            "gen" => child_gen(&settings, &dir),
            "weft-entity" => child_weft(&settings, &dir, Part::Entity),
            "weft-sum" => child_weft(&settings, &dir, Part::Sum),
            other => bail!("unknown child mode {other}"),
        };
    }
    parent(&settings)
}

/// Writes the joins (for reference) and the DuckDB spec, and fails before generating
/// anything if weft cannot plan a join.
fn write_configs(s: &Settings, dir: &Path) -> Result<()> {
    for part in [Part::Entity, Part::Sum] {
        std::fs::write(
            dir.join(format!("{}.json", part.join_name())),
            serde_json::to_string_pretty(&join_json(part))?,
        )?;
        let runner = JoinRunner::new(&load_join(part)?)
            .map_err(|e| anyhow!("weft refuses join {}: {e}", part.join_name()))?;
        if runner.label_plan().is_none() {
            bail!("weft found no label part in {}", part.join_name());
        }
    }
    std::fs::write(
        dir.join("spec.json"),
        serde_json::to_string_pretty(&duck_spec(s, dir))?,
    )?;
    Ok(())
}

/// A part's result on one side: wall time of the label runs, per-run times, peak RSS.
struct Side {
    result: Value,
    peak_mib: f64,
}

impl Side {
    fn seconds(&self) -> f64 {
        f64_at(&self.result, &["seconds"])
    }
    fn run_seconds(&self) -> Vec<f64> {
        self.result["runs"]
            .as_array()
            .map(|a| a.iter().map(|r| f64_at(r, &["seconds"])).collect())
            .unwrap_or_default()
    }
}

struct PartRuns {
    part: Part,
    /// Label rows written over the part's runs (left rows of the labelled days).
    rows: u64,
    weft: Side,
    duck: Side,
}

fn run_part(s: &Settings, dir: &Path, part: Part, left_per_day: &Value) -> Result<PartRuns> {
    let rows: u64 = part
        .label_days(s)
        .into_iter()
        .flat_map(|l| part.left_days(l))
        .map(|d| left_per_day[d.to_string()].as_u64().unwrap_or(0))
        .sum();
    println!("{}: running weft ...", part.title(s));
    let mode = format!("weft-{}", part.mode());
    run_child("weft", &mut self_child(&mode, dir))?;
    let result = read_result(dir, &mode)?;
    let weft = Side {
        peak_mib: f64_at(&result, &["peak_mib"]),
        result,
    };
    println!("{}: running DuckDB ...", part.title(s));
    let mode = format!("duckdb-{}", part.mode());
    let run = run_child(
        "DuckDB (python3 with the duckdb module)",
        &mut common::python(DUCKDB_PY, &mode, dir),
    )?;
    let duck = Side {
        result: read_result(dir, &mode)?,
        peak_mib: run.peak_mib,
    };
    Ok(PartRuns {
        part,
        rows,
        weft,
        duck,
    })
}

fn print_row(s: &Settings, part: &PartRuns, side: &str, r: &Side) {
    let secs = r.seconds();
    println!(
        "{:<24} {:<7} {:>11} {:>9.3} {:>12.0} {:>13.0}",
        part.part.title(s),
        side,
        part.rows,
        secs,
        part.rows as f64 / secs,
        r.peak_mib
    );
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

fn print_timings(s: &Settings, parts: &[PartRuns], ok: bool) {
    println!();
    println!(
        "label runs ({})",
        if ok {
            "weft's label tables equal DuckDB's"
        } else {
            "NOT VERIFIED: the results disagree, see the warning below"
        }
    );
    println!(
        "{:<24} {:<7} {:>11} {:>9} {:>12} {:>13}",
        "part", "side", "label rows", "wall s", "rows/s", "peak RSS MiB"
    );
    for p in parts {
        print_row(s, p, "weft", &p.weft);
        print_row(s, p, "duckdb", &p.duck);
    }
    println!();
    for p in parts {
        println!(
            "{:<24} weft/DuckDB wall time {:.2}, peak RSS {:.2} (below 1: weft is faster / smaller)",
            p.part.title(s),
            p.weft.seconds() / p.duck.seconds(),
            p.weft.peak_mib / p.duck.peak_mib
        );
    }
    for p in parts.iter().filter(|p| p.part == Part::Sum) {
        let (w, d) = (p.weft.run_seconds(), p.duck.run_seconds());
        if w.len() > 1 && d.len() > 1 {
            println!(
                "sum {WINDOW_DAYS}d per run: weft first run {:.3} s, later runs (deltas) mean {:.3} s (max {:.3}); \
                 DuckDB mean {:.3} s per label_ds; weft/DuckDB on the later runs {:.2}",
                w[0],
                mean(&w[1..]),
                w[1..].iter().copied().fold(0.0, f64::max),
                mean(&d),
                mean(&w[1..]) / mean(&d[1..])
            );
        }
    }
    for p in parts {
        let r = &p.weft.result;
        println!(
            "weft {}: untimed feature backfill {:.2} s (peak {:.0} MiB), resident {:.0} MiB when the label runs start; \
             rebuilding _labeled/_labeled_latest for all {} days afterwards (untimed) took {:.3} s",
            p.part.mode(),
            f64_at(r, &["backfill_seconds"]),
            f64_at(r, &["backfill_peak_mib"]),
            f64_at(r, &["rss_before_mib"]),
            r["labeled_rebuild_days"],
            f64_at(r, &["labeled_rebuild_seconds"]),
        );
    }
    println!(
        "(wall s: the label runs only, excluding process start, data generation and weft's feature backfill; \
         weft's includes rewriting _labeled/_labeled_latest. peak RSS: weft's peak while labelling \
         (reset after the backfill), DuckDB's process peak)"
    );
    println!();
}

fn parent(s: &Settings) -> Result<()> {
    let (tmp, dir) = common::bench_dir("weft-label-join-")?;
    write_configs(s, &dir)?;
    println!(
        "label_join: N={} left rows over {DAYS} days, {} users (Zipf {}), {} snapshot rows per day, \
         {} refund events; weft {} worker(s), DuckDB {} thread(s)",
        s.rows, s.users, s.zipf, s.users, s.refunds, s.workers, s.duck_threads
    );
    println!("data in {}", dir.display());

    let gen = run_child("generator", &mut self_child("gen", &dir))?;
    let g = read_result(&dir, "gen")?;
    println!(
        "generated {} left rows, {} snapshot rows and {} refunds in {:.1} s",
        g["left_per_day"]
            .as_object()
            .map(|m| m.values().filter_map(Value::as_u64).sum::<u64>())
            .unwrap_or(0),
        g["snapshot"],
        g["refunds"],
        gen.seconds
    );

    let mut parts = Vec::new();
    for part in [Part::Entity, Part::Sum] {
        parts.push(run_part(s, &dir, part, &g["left_per_day"])?);
    }
    // where weft wrote its label tables
    let mut spec: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("spec.json"))?)?;
    for p in &parts {
        spec["parts"][p.part.mode()]["weft_dir"] = p.weft.result["labels_dir"].clone();
    }
    std::fs::write(dir.join("spec.json"), serde_json::to_string_pretty(&spec)?)?;

    println!("comparing the label tables ...");
    let check = run_child("check", &mut common::python(DUCKDB_PY, "check", &dir))
        .and_then(|_| read_result(&dir, "check"));
    let ok = matches!(&check, Ok(c) if c["ok"].as_bool().unwrap_or(false));
    print_timings(s, &parts, ok);
    common::report_check(
        &check,
        ok,
        tmp,
        &dir,
        "label tables agree: the timings above compare equal work",
    );
    Ok(())
}

// ------------------------------------------------------------------------------------------
// DuckDB side (run with `python3 -c`; argv: mode, spec.json)
// ------------------------------------------------------------------------------------------

const DUCKDB_PY: &str = r#"
import json, os, sys, time
import duckdb

mode, spec = sys.argv[1], json.load(open(sys.argv[2]))

def ql(s):
    return "'" + str(s).replace("'", "''") + "'"

def qi(s):
    return '"' + s.replace('"', '""') + '"'

def scan(table):
    ns, name = table.split('.', 1)
    path = os.path.join(spec['root'], ns, name, '*', '*.parquet')
    return f"read_parquet({ql(path)}, hive_partitioning = true, hive_types = {{'ds': 'VARCHAR'}})"

def connect():
    con = duckdb.connect()
    con.execute(f"SET threads = {int(spec['threads'])}")
    con.execute("SET preserve_insertion_order = false")
    con.execute("SET enable_progress_bar = false")
    return con

def out_dir(part):
    return os.path.join(spec['duck_dir'], part)

def entity_sql(run, cols):
    # §7.4: the left rows of the range LEFT JOIN snapshot partition label_ds on the key only
    status, ltv = cols
    return (f"SELECT l.event_id, s.status AS {qi(status)}, s.ltv_cents AS {qi(ltv)}, "
            f"{ql(run['label_ds'])} AS label_ds, l.ds "
            f"FROM (SELECT event_id, user_id, ds FROM {scan(spec['left'])} "
            f"      WHERE ds BETWEEN {ql(run['left_from'])} AND {ql(run['left_to'])}) l "
            f"LEFT JOIN (SELECT user_id, status, ltv_cents FROM {scan(spec['snapshot'])} "
            f"           WHERE ds = {ql(run['label_ds'])}) s USING (user_id)")

def sum_sql(run, cols):
    # §7.5: per user, SUM over the events of [(L+1-W) 00:00, (L+1) 00:00), NULL when none
    (col,) = cols
    return (f"WITH l AS (SELECT event_id, user_id, ds FROM {scan(spec['left'])} "
            f"           WHERE ds BETWEEN {ql(run['left_from'])} AND {ql(run['left_to'])}), "
            f"e AS (SELECT user_id, CAST(sum(refund_cents) AS BIGINT) AS v FROM {scan(spec['refunds'])} "
            f"      WHERE ds BETWEEN {ql(run['window_from_ds'])} AND {ql(run['label_ds'])} "
            f"        AND ts >= {run['window_from_ms']} AND ts < {run['window_to_ms']} "
            f"        AND user_id IN (SELECT user_id FROM l) GROUP BY user_id) "
            f"SELECT l.event_id, e.v AS {qi(col)}, {ql(run['label_ds'])} AS label_ds, l.ds "
            f"FROM l LEFT JOIN e USING (user_id)")

def run(part):
    os.makedirs(out_dir(part), exist_ok=True)
    p = spec['parts'][part]
    sql = entity_sql if part == 'entity' else sum_sql
    con = connect()
    runs = []
    t0 = time.perf_counter()
    for r in p['runs']:
        t = time.perf_counter()
        out = os.path.join(out_dir(part), f"label_ds={r['label_ds']}.parquet")
        con.execute(f"COPY ({sql(r, p['columns'])}) TO {ql(out)} (FORMAT parquet)")
        runs.append({'label_ds': r['label_ds'], 'seconds': time.perf_counter() - t})
    res = {'seconds': time.perf_counter() - t0, 'runs': runs}
    with open(os.path.join(spec['dir'], f'duckdb-{part}.result.json'), 'w') as f:
        json.dump(res, f)

def check():
    con = connect()
    summary, ok = [], True
    for part, p in spec['parts'].items():
        cols = p['columns']
        weft = (f"read_parquet({ql(os.path.join(p['weft_dir'], '*', '*', '*.parquet'))}, "
                f"hive_partitioning = true, hive_types = {{'label_ds': 'VARCHAR', 'ds': 'VARCHAR'}})")
        duck = f"read_parquet({ql(os.path.join(out_dir(part), '*.parquet'))})"
        sel = ', '.join(['label_ds', 'ds', 'event_id'] + [qi(c) for c in cols])
        con.execute(f"CREATE OR REPLACE TEMP TABLE w AS SELECT {sel} FROM {weft}")
        con.execute(f"CREATE OR REPLACE TEMP TABLE d AS SELECT {sel} FROM {duck}")
        nw = con.execute("SELECT count(*) FROM w").fetchone()[0]
        nd = con.execute("SELECT count(*) FROM d").fetchone()[0]
        dup = con.execute("SELECT count(*) FROM (SELECT label_ds, ds, event_id FROM w "
                          "GROUP BY ALL HAVING count(*) > 1)").fetchone()[0]
        differs = ' OR '.join(f"w.{qi(c)} IS DISTINCT FROM d.{qi(c)}" for c in cols)
        bad_sql = (f"SELECT coalesce(w.label_ds, d.label_ds) AS label_ds, coalesce(w.ds, d.ds) AS ds, "
                   f"coalesce(w.event_id, d.event_id) AS event_id, w.event_id IS NULL AS weft_missing, "
                   f"d.event_id IS NULL AS duck_missing, "
                   + ', '.join(f"w.{qi(c)} AS {qi('weft ' + c)}, d.{qi(c)} AS {qi('duckdb ' + c)}" for c in cols)
                   + " FROM w FULL OUTER JOIN d ON w.label_ds = d.label_ds AND w.ds = d.ds "
                   f"AND w.event_id = d.event_id WHERE w.event_id IS NULL OR d.event_id IS NULL OR {differs}")
        bad = con.execute(f"SELECT count(*) FROM ({bad_sql})").fetchone()[0]
        for row in con.execute(f"{bad_sql} ORDER BY ALL LIMIT 10").fetchall():
            print(f'  {part} mismatch:', row)
        parts_w = dict(con.execute("SELECT label_ds || '/' || ds, count(*) FROM w GROUP BY ALL").fetchall())
        parts_d = dict(con.execute("SELECT label_ds || '/' || ds, count(*) FROM d GROUP BY ALL").fetchall())
        part_diff = sorted(k for k in set(parts_w) | set(parts_d) if parts_w.get(k) != parts_d.get(k))
        for k in part_diff[:10]:
            print(f'  {part} partition {k}: weft {parts_w.get(k)} rows, duckdb {parts_d.get(k)} rows')
        non_null = con.execute(f"SELECT count({qi(cols[0])}) FROM w").fetchone()[0]
        good = bad == 0 and dup == 0 and not part_diff and nw == nd and nw > 0
        ok = ok and good
        summary.append(f"{part}: {nw} weft rows vs {nd} DuckDB rows in {len(parts_w)} vs {len(parts_d)} "
                       f"(label_ds, ds) partitions, {bad} rows differ or are missing, {dup} duplicate row ids, "
                       f"{non_null} rows with a non-NULL {cols[0]}" + ('' if good else ' -> FAILED'))
    with open(os.path.join(spec['dir'], 'check.result.json'), 'w') as f:
        json.dump({'ok': ok, 'summary': '; '.join(summary)}, f)

if mode == 'check':
    check()
elif mode.startswith('duckdb-'):
    run(mode[len('duckdb-'):])
else:
    raise SystemExit(f'unknown mode {mode}')
"#;
