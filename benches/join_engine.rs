//! The join-engine benchmark: weft against the same point-in-time join in DuckDB SQL, on the
//! same generated Parquet warehouse, for a full 90-day backfill and for one appended day.
//!
//! ```sh
//! cargo bench --bench join_engine                              # release, N = 1M left rows
//! WEFT_BENCH_ROWS=20000 WEFT_BENCH_OPS=sum,count cargo bench --bench join_engine --profile dev
//! WEFT_BENCH_BOOTSTRAP=0.5 cargo bench --bench join_engine     # half the rows bootstrapped
//! ```
//!
//! The scenario (a temp warehouse, deleted afterwards unless `WEFT_BENCH_DIR` is set):
//! - left `data.checkouts`: N rows over 90 days (`event_id`, `user_id`, `amount_cents`,
//!   `country`, `ts` epoch ms, `ds`), users uniform over U users;
//! - three event sources, each with N events over the same 90 days plus 30 days of history,
//!   users Zipf-distributed (exponent `WEFT_BENCH_ZIPF`, 1.1) over the same U users:
//!   `data.purchases` (`amount_cents` long, `merchant_id`), `data.page_views` (`dwell_ms`
//!   long, `page_id`), `data.payments` (`amount` double, `card_id`);
//! - join `bench.join_engine.v1` (compiled-Chronon JSON, parsed with `parse_conf`): one
//!   TEMPORAL GroupBy per source keyed by `user_id`, each with the operations of
//!   `WEFT_BENCH_OPS` over the windows of `WEFT_BENCH_WINDOWS` (SUM, COUNT, AVERAGE, LAST_K
//!   with k=10 on the value column; APPROX_UNIQUE_COUNT on the id column).
//!
//! The left keys are uniform on purpose: DuckDB's range join costs Σ_user left rows × events,
//! so with the left Zipf-distributed like the sources (same heavy users) it is quadratic in
//! the heaviest user and does not finish at 1M rows. Event timestamps are unique per table,
//! so LAST_K has no ties and both sides must agree exactly.
//!
//! Each side runs in its own child process (this binary re-executed with a mode argument, or
//! `python3 -c` for DuckDB), one after the other, and its peak memory is the child's
//! `ru_maxrss` from `wait4`. The parent only orchestrates, so it adds a few MiB at most to a
//! child's high-water mark (Linux carries the parent's RSS over a fork into the child's).
//! - weft: `JoinRunner::run` over days 1..90 in one step (one epoch); then day 91 lands (the
//!   left partition and one day of each source), then `Session::refresh` and `run` again on the
//!   same runner are timed together: the "append" time.
//! - DuckDB, the prefix-sum SQL: when every operation is a prefix sum (`WEFT_BENCH_OPS` within
//!   sum,count,average) the same join also runs as an expert writes it — running sums and
//!   counts per key in time order, one probe per left row at its time and at each window's
//!   start, an ASOF join to read the running values, a window as a difference — and is
//!   checked value for value against weft on the sample.
//! - weft in fresh processes (not in bootstrap mode): a restart with nothing changed (input
//!   records match: nothing is recomputed), then day 91's output removed and computed by a
//!   new process, each timed from the engine's start: what a restart and a new day from
//!   `weft backfill` cost.
//! - DuckDB: Chronon's rule as a range join, `floor(q − W, h(W)) ≤ ts < q` (h = 1 day for
//!   W ≥ 12 days, 1 hour for W ≥ 12 hours, else 5 minutes; unbounded: `ts < q`), NULL for empty
//!   windows, LAST_K as `max_by(x, ts, k)` (the k newest, newest first),
//!   `approx_count_distinct`; the result is written to Parquet (`COPY ... TO`, with
//!   `preserve_insertion_order = false`; `WEFT_BENCH_DUCKDB_THREADS` threads). Timed for days
//!   1..90 and, for the append, the same SQL restricted to day 91 (a fresh query: DuckDB keeps no
//!   state between runs). A source scan is bounded by the partitions the windows reach.
//! - Bootstrap mode (`WEFT_BENCH_BOOTSTRAP=<fraction>`, e.g. 0.5): the generator also writes
//!   `bench.bootstrap` (partitioned by `ds` like the left, day 91 landing with the append day):
//!   for that fraction of the left rows (chosen per row from the seed) the row id `event_id` and
//!   every feature column of every join part, random values with ~1% NULLs. The join gets
//!   `rowIds: [event_id]` and one bootstrap part selecting those columns, so a row with a
//!   bootstrap row is covered for every part (Chronon: a part is covered when bootstrap provides
//!   all its value columns, NULLs included) and is not computed. weft also runs the same join
//!   without bootstrap (`bench.join_engine_no_bootstrap.v1`, full run only) first, to show what
//!   the skipping saves. DuckDB computes the features only for the left rows without a bootstrap
//!   row (`NOT EXISTS` on `(event_id, ds)`) and appends the bootstrapped rows (`UNION ALL`): the
//!   faster of the two obvious queries, as computing every row then taking
//!   `coalesce(bootstrap, computed)` pays the full range join (and would fill bootstrapped NULLs).
//! - Topologies (`WEFT_BENCH_TOPOLOGIES=1`, instead of the comparison with DuckDB): the full
//!   run as 1 process × 2 workers, then as 2 processes × 1 worker joined over loopback
//!   (timely's cluster mode): wall times, peak RSS of each process, and the bytes received on
//!   the loopback interface during the 2-process run (the exchange, TCP included) per left row.
//! - Sanity: 1,000 sampled left rows (10% of them from day 91, `WEFT_BENCH_SAMPLE`) are compared:
//!   SUM/COUNT/AVERAGE/LAST_K exactly (doubles to 1e-9 relative), APPROX_UNIQUE_COUNT within 10%
//!   (at least ±1) of the exact distinct count computed for the sampled rows: NULL must match
//!   NULL, and as CPC (lgK 8) has ~3.7% relative standard error, up to 3% of the counts ≥ 10 may
//!   be outside 10% if the mean error on counts ≥ 20 is within ±3% (DuckDB's own estimate is
//!   reported against the exact count too); in bootstrap mode the sampled rows with a bootstrap
//!   row must carry exactly the bootstrap table's values (NULLs included) on both sides. Plus the
//!   row count of every partition. On any mismatch the timings are printed under a loud warning
//!   and the bench exits with status 2.
//!
//! Settings (environment): `WEFT_BENCH_ROWS` (1_000_000; `20k`, `1M`, `10M` accepted),
//! `WEFT_BENCH_WORKERS` (1), `WEFT_BENCH_DUCKDB_THREADS` (= workers), `WEFT_BENCH_OPS`
//! (`sum,count,average,last_k,approx_unique_count`), `WEFT_BENCH_WINDOWS` (`1d,7d,30d,unbounded`),
//! `WEFT_BENCH_USERS` (N/10), `WEFT_BENCH_ZIPF` (1.1), `WEFT_BENCH_SEED`, `WEFT_BENCH_SAMPLE`
//! (1000), `WEFT_BENCH_STEP_DAYS` (weft's step, 30), `WEFT_BENCH_BOOTSTRAP` (unset: no
//! bootstrap), `WEFT_BENCH_DIR` (keep the warehouse and results there).

// The same allocator as the `weft` binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use arrow::array::{ArrayRef, Float64Array, Int64Array, ListArray, StringArray};
use arrow::datatypes::{Float64Type, Int64Type};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Zipf};
use serde_json::{json, Value};

use weft::config::{parse_conf, Conf, Join};
use weft::engine::Context as WeftContext;
use weft::engine::{JoinOptions, JoinReport, JoinRunner};
use weft::partition::{Ds, DAY_MS};
use weft::warehouse::{TableName, Warehouse};

const LEFT_DAYS: i32 = 90;
const HISTORY_DAYS: i32 = 30;
const FIRST_DAY: &str = "2025-01-01";
const LEFT_TABLE: &str = "data.checkouts";
const JOIN_NAME: &str = "bench.join_engine.v1";
const BASELINE_JOIN_NAME: &str = "bench.join_engine_no_bootstrap.v1";
const BOOTSTRAP_TABLE: &str = "bench.bootstrap";
/// The left's unique row id (the join's `rowIds`).
const ROW_ID: &str = "event_id";
/// Share of NULLs among the bootstrapped values (a covered part keeps them).
const BOOTSTRAP_NULLS: f64 = 0.01;
const OUTPUT_NAMESPACE: &str = "bench";
const LAST_K: usize = 10;
const HOUR_MS: i64 = 3_600_000;

// ------------------------------------------------------------------------------------------
// Settings
// ------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Sum,
    Count,
    Average,
    LastK,
    ApproxUniqueCount,
}

impl Op {
    fn parse(s: &str) -> Result<Op> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "sum" => Op::Sum,
            "count" => Op::Count,
            "average" | "avg" => Op::Average,
            "last_k" | "lastk" => Op::LastK,
            "approx_unique_count" | "approx" => Op::ApproxUniqueCount,
            other => bail!(
                "WEFT_BENCH_OPS: unknown operation `{other}`; use sum, count, average, last_k, approx_unique_count"
            ),
        })
    }
    /// Thrift `Operation` code.
    fn code(self) -> i64 {
        match self {
            Op::Sum => 7,
            Op::Count => 6,
            Op::Average => 8,
            Op::LastK => 13,
            Op::ApproxUniqueCount => 5,
        }
    }
    /// Chronon's column-name suffix.
    fn suffix(self) -> String {
        match self {
            Op::Sum => "sum".into(),
            Op::Count => "count".into(),
            Op::Average => "average".into(),
            Op::LastK => format!("last{LAST_K}"),
            Op::ApproxUniqueCount => "approx_unique_count".into(),
        }
    }
    /// Name used in the DuckDB spec.
    fn key(self) -> &'static str {
        match self {
            Op::Sum => "sum",
            Op::Count => "count",
            Op::Average => "average",
            Op::LastK => "last_k",
            Op::ApproxUniqueCount => "approx_unique_count",
        }
    }
}

/// A window: `length` in `unit` (thrift TimeUnit: 0 = hours, 1 = days); `None` = unbounded.
#[derive(Debug, Clone, Copy)]
struct Win(Option<(i32, i32)>);

impl Win {
    fn parse(s: &str) -> Result<Win> {
        let s = s.trim().to_ascii_lowercase();
        if s == "unbounded" || s == "inf" || s == "all" {
            return Ok(Win(None));
        }
        let (num, unit) = s.split_at(s.len().saturating_sub(1));
        let unit = match unit {
            "d" => 1,
            "h" => 0,
            _ => bail!("WEFT_BENCH_WINDOWS: `{s}` is not a window (e.g. 1d, 12h, unbounded)"),
        };
        let n: i32 = num
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| anyhow!("WEFT_BENCH_WINDOWS: `{s}` is not a window"))?;
        Ok(Win(Some((n, unit))))
    }
    fn json(self) -> Value {
        match self.0 {
            // Chronon's unbounded window (`WindowUtils.Unbounded`): length Int.MaxValue.
            None => json!({"length": i32::MAX, "timeUnit": 1}),
            Some((n, u)) => json!({"length": n, "timeUnit": u}),
        }
    }
    fn millis(self) -> Option<i64> {
        self.0
            .map(|(n, u)| n as i64 * if u == 0 { HOUR_MS } else { DAY_MS })
    }
    fn suffix(self) -> String {
        match self.0 {
            None => String::new(),
            Some((n, u)) => format!("_{n}{}", if u == 0 { "h" } else { "d" }),
        }
    }
}

/// The tail hop h(W) of Chronon's FiveMinuteResolution.
fn hop(w: i64) -> i64 {
    if w >= 12 * DAY_MS {
        DAY_MS
    } else if w >= 12 * HOUR_MS {
        HOUR_MS
    } else {
        5 * 60_000
    }
}

#[derive(Debug, Clone)]
struct Settings {
    rows: usize,
    users: usize,
    zipf: f64,
    workers: usize,
    duck_threads: usize,
    ops: Vec<Op>,
    windows: Vec<Win>,
    seed: u64,
    sample: usize,
    /// Fraction of the left rows with a bootstrap row; `None`: no bootstrap part.
    bootstrap: Option<f64>,
}

fn env_fraction(name: &str) -> Result<Option<f64>> {
    env_str(name)
        .map(|v| {
            v.trim()
                .parse::<f64>()
                .ok()
                .filter(|f| (0.0..=1.0).contains(f))
                .ok_or_else(|| anyhow!("{name}=`{v}` is not a fraction between 0 and 1"))
        })
        .transpose()
}

impl Settings {
    fn from_env() -> Result<Settings> {
        let rows = env_count("WEFT_BENCH_ROWS", 1_000_000)?.max(LEFT_DAYS as usize);
        let workers = env_count("WEFT_BENCH_WORKERS", 1)?.max(1);
        let ops = env_str("WEFT_BENCH_OPS")
            .unwrap_or_else(|| "sum,count,average,last_k,approx_unique_count".into())
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(Op::parse)
            .collect::<Result<Vec<_>>>()?;
        let windows = env_str("WEFT_BENCH_WINDOWS")
            .unwrap_or_else(|| "1d,7d,30d,unbounded".into())
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(Win::parse)
            .collect::<Result<Vec<_>>>()?;
        if ops.is_empty() || windows.is_empty() {
            bail!("WEFT_BENCH_OPS and WEFT_BENCH_WINDOWS must not be empty");
        }
        Ok(Settings {
            rows,
            users: env_count("WEFT_BENCH_USERS", (rows / 10).max(100))?,
            zipf: env_str("WEFT_BENCH_ZIPF")
                .map(|v| v.parse().context("WEFT_BENCH_ZIPF"))
                .transpose()?
                .unwrap_or(1.1),
            workers,
            duck_threads: env_count("WEFT_BENCH_DUCKDB_THREADS", workers)?,
            ops,
            windows,
            seed: env_str("WEFT_BENCH_SEED")
                .map(|v| v.parse().context("WEFT_BENCH_SEED"))
                .transpose()?
                .unwrap_or(20_250_101),
            sample: env_count("WEFT_BENCH_SAMPLE", 1000)?,
            bootstrap: env_fraction("WEFT_BENCH_BOOTSTRAP")?,
        })
    }

    fn first_day(&self) -> Ds {
        Ds::parse(FIRST_DAY).expect("valid date")
    }
    fn last_full_day(&self) -> Ds {
        self.first_day().shift(LEFT_DAYS - 1)
    }
    fn append_day(&self) -> Ds {
        self.first_day().shift(LEFT_DAYS)
    }
}

// ------------------------------------------------------------------------------------------
// The sources and the join config
// ------------------------------------------------------------------------------------------

/// An event source and its GroupBy.
struct SourceDef {
    table: &'static str,
    group_by: &'static str,
    /// Input of SUM, COUNT, AVERAGE and LAST_K.
    value: &'static str,
    value_is_double: bool,
    /// Input of APPROX_UNIQUE_COUNT.
    id: &'static str,
}

const SOURCES: [SourceDef; 3] = [
    SourceDef {
        table: "data.purchases",
        group_by: "bench.purchases.v1",
        value: "amount_cents",
        value_is_double: false,
        id: "merchant_id",
    },
    SourceDef {
        table: "data.page_views",
        group_by: "bench.page_views.v1",
        value: "dwell_ms",
        value_is_double: false,
        id: "page_id",
    },
    SourceDef {
        table: "data.payments",
        group_by: "bench.payments.v1",
        value: "amount",
        value_is_double: true,
        id: "card_id",
    },
];

impl SourceDef {
    fn input(&self, op: Op) -> &'static str {
        if op == Op::ApproxUniqueCount {
            self.id
        } else {
            self.value
        }
    }
    fn inputs(&self, ops: &[Op]) -> Vec<&'static str> {
        let mut v: Vec<&str> = Vec::new();
        for op in ops {
            if !v.contains(&self.input(*op)) {
                v.push(self.input(*op));
            }
        }
        v
    }
}

/// One feature column of a join part, named as Chronon names it.
struct Feature {
    name: String,
    op: Op,
    input: &'static str,
    /// The input is a double (SUM and LAST_K output doubles; AVERAGE always does).
    double: bool,
    win: Win,
}

/// The feature columns of a source's join part, in output order.
fn features(s: &Settings, src: &SourceDef) -> Vec<Feature> {
    let prefix = sanitize(src.group_by);
    let mut v = Vec::new();
    for op in &s.ops {
        for w in &s.windows {
            let input = src.input(*op);
            v.push(Feature {
                name: format!("{prefix}_{input}_{}{}", op.suffix(), w.suffix()),
                op: *op,
                input,
                double: input == src.value && src.value_is_double,
                win: *w,
            });
        }
    }
    v
}

fn all_features(s: &Settings) -> Vec<Feature> {
    SOURCES.iter().flat_map(|src| features(s, src)).collect()
}

/// Which join a weft run computes: the bench's join, or (in bootstrap mode) the same join
/// without its bootstrap part, under another name, as the baseline.
#[derive(Clone, Copy)]
struct JoinVariant {
    name: &'static str,
    bootstrap: bool,
}

fn main_join(s: &Settings) -> JoinVariant {
    JoinVariant {
        name: JOIN_NAME,
        bootstrap: s.bootstrap.is_some(),
    }
}

const BASELINE_JOIN: JoinVariant = JoinVariant {
    name: BASELINE_JOIN_NAME,
    bootstrap: false,
};

fn output_table(name: &str) -> String {
    format!("{OUTPUT_NAMESPACE}.{}", sanitize(name))
}

/// The bootstrap part: the row id and every feature column, under their own names.
fn bootstrap_part(s: &Settings) -> Value {
    let mut selects = serde_json::Map::new();
    selects.insert(ROW_ID.into(), json!(ROW_ID));
    for f in all_features(s) {
        selects.insert(f.name.clone(), json!(f.name));
    }
    json!({"table": BOOTSTRAP_TABLE, "query": {"selects": selects, "setups": []}})
}

/// The join as `compile.py` would write it.
fn join_json(s: &Settings, variant: JoinVariant) -> Value {
    let windows: Vec<Value> = s.windows.iter().map(|w| w.json()).collect();
    let parts: Vec<Value> = SOURCES
        .iter()
        .map(|src| {
            let mut selects = serde_json::Map::new();
            selects.insert("user_id".into(), json!("user_id"));
            for c in src.inputs(&s.ops) {
                selects.insert(c.into(), json!(c));
            }
            let aggregations: Vec<Value> = s
                .ops
                .iter()
                .map(|op| {
                    let arg_map = if *op == Op::LastK {
                        json!({"k": LAST_K.to_string()})
                    } else {
                        json!({})
                    };
                    json!({"inputColumn": src.input(*op), "operation": op.code(),
                           "argMap": arg_map, "windows": windows})
                })
                .collect();
            json!({"groupBy": {
                "metaData": {
                    "name": src.group_by,
                    "online": 1,
                    "customJson": "{\"lag\": 0, \"groupby_tags\": null, \"column_tags\": {}}",
                    "dependencies": [dependency(src.table)],
                    "team": "bench",
                    "offlineSchedule": "@daily"
                },
                "sources": [{"events": {"table": src.table, "query": {
                    "selects": selects, "timeColumn": "ts", "setups": []}}}],
                "keyColumns": ["user_id"],
                "aggregations": aggregations,
                "accuracy": 0
            }})
        })
        .collect();
    let mut deps = vec![dependency(LEFT_TABLE)];
    deps.extend(SOURCES.iter().map(|s| dependency(s.table)));
    if variant.bootstrap {
        deps.push(dependency(BOOTSTRAP_TABLE));
    }
    let mut join = json!({
        "metaData": {
            "name": variant.name,
            "online": 0,
            "production": 0,
            "customJson": "{\"check_consistency\": false, \"lag\": 0, \"join_tags\": null, \"join_part_tags\": {}}",
            "dependencies": deps,
            "tableProperties": {"source": "chronon"},
            "outputNamespace": OUTPUT_NAMESPACE,
            "team": "bench",
            "samplePercent": 100.0,
            "offlineSchedule": "@daily"
        },
        "left": {"events": {"table": LEFT_TABLE, "query": {
            "selects": {"event_id": "event_id", "user_id": "user_id", "amount_cents": "amount_cents",
                        "country": "country", "ts": "ts"},
            "timeColumn": "ts", "setups": []}}},
        "joinParts": parts
    });
    if variant.bootstrap {
        join["rowIds"] = json!([ROW_ID]);
        join["bootstrapParts"] = json!([bootstrap_part(s)]);
    }
    join
}

fn load_join(s: &Settings, variant: JoinVariant) -> Result<Join> {
    let text = serde_json::to_string_pretty(&join_json(s, variant))?;
    match parse_conf(Path::new("production/joins/bench/join_engine.v1"), &text)? {
        Conf::Join(j) => Ok(*j),
        _ => bail!("the bench config did not parse as a join"),
    }
}

/// What the DuckDB script needs: tables, the output columns (names as Chronon builds them) and
/// their windows.
fn duck_spec(s: &Settings, dir: &Path) -> Value {
    let parts: Vec<Value> = SOURCES
        .iter()
        .map(|src| {
            let columns: Vec<Value> = features(s, src)
                .iter()
                .map(|f| {
                    json!({
                        "name": f.name,
                        "op": f.op.key(),
                        "input": f.input,
                        "double": f.double,
                        "k": LAST_K,
                        "window_ms": f.win.millis(),
                        "hop_ms": f.win.millis().map(hop),
                    })
                })
                .collect();
            json!({"table": src.table, "key": "user_id", "columns": columns})
        })
        .collect();
    let bootstrap = s
        .bootstrap
        .map(|_| json!({"table": BOOTSTRAP_TABLE, "key": ROW_ID}));
    json!({
        "dir": dir,
        "root": dir.join("warehouse"),
        "duck_dir": dir.join("duckdb"),
        "threads": s.duck_threads,
        "left": {"table": LEFT_TABLE, "key": "user_id",
                 "columns": ["event_id", "user_id", "amount_cents", "country", "ts"]},
        "output_table": output_table(JOIN_NAME),
        "bootstrap": bootstrap,
        "first_day": s.first_day().to_string(),
        "last_full_day": s.last_full_day().to_string(),
        "append_day": s.append_day().to_string(),
        "sample": s.sample,
        "seed": s.seed % 1_000_000,
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

const COUNTRIES: [&str; 8] = ["US", "DE", "FR", "GB", "BR", "IN", "JP", "CA"];

fn gen_left(wh: &Warehouse, s: &Settings, day: Ds, n: usize) -> Result<usize> {
    let mut rng = rng_for(s, 0, day);
    let ts = day_times(&mut rng, day, n);
    let event_id: Vec<i64> = (0..n as i64)
        .map(|i| day.0 as i64 * 1_000_000_000 + i)
        .collect();
    let users = s.users as i64;
    let user_id: Vec<i64> = (0..n).map(|_| rng.random_range(1..=users)).collect();
    let amount: Vec<i64> = (0..n).map(|_| rng.random_range(100..100_000)).collect();
    let country: Vec<&str> = (0..n)
        .map(|_| COUNTRIES[rng.random_range(0..COUNTRIES.len())])
        .collect();
    write(
        wh,
        LEFT_TABLE,
        day,
        vec![
            ("event_id", Arc::new(Int64Array::from(event_id))),
            ("user_id", Arc::new(Int64Array::from(user_id))),
            ("amount_cents", Arc::new(Int64Array::from(amount))),
            ("country", Arc::new(StringArray::from(country))),
            ("ts", Arc::new(Int64Array::from(ts))),
        ],
    )
}

fn gen_source(wh: &Warehouse, s: &Settings, src: usize, day: Ds, n: usize) -> Result<usize> {
    let mut rng = rng_for(s, 1 + src as u64, day);
    let zipf = Zipf::new(s.users as f64, s.zipf).map_err(|e| anyhow!("zipf: {e}"))?;
    let user_id: Vec<i64> = (0..n).map(|_| zipf.sample(&mut rng) as i64).collect();
    let def = &SOURCES[src];
    let value: ArrayRef = match src {
        0 => Arc::new(Int64Array::from_iter_values(
            (0..n).map(|_| rng.random_range(100..200_000i64)),
        )),
        1 => Arc::new(Int64Array::from_iter_values(
            (0..n).map(|_| rng.random_range(50..600_000i64)),
        )),
        _ => Arc::new(Float64Array::from_iter_values(
            (0..n).map(|_| rng.random_range(100..1_000_000i64) as f64 / 100.0),
        )),
    };
    let id: Vec<i64> = match src {
        0 => (0..n).map(|_| rng.random_range(1..=20_000)).collect(),
        1 => (0..n).map(|_| rng.random_range(1..=5_000)).collect(),
        // a few cards per user
        _ => user_id
            .iter()
            .map(|u| u * 4 + rng.random_range(0..4))
            .collect(),
    };
    let ts = day_times(&mut rng, day, n);
    write(
        wh,
        def.table,
        day,
        vec![
            ("user_id", Arc::new(Int64Array::from(user_id))),
            (def.value, value),
            (def.id, Arc::new(Int64Array::from(id))),
            ("ts", Arc::new(Int64Array::from(ts))),
        ],
    )
}

/// A bootstrapped value of a feature column: NULL for [`BOOTSTRAP_NULLS`] of them.
fn boot_value<T>(rng: &mut SmallRng, value: impl FnOnce(&mut SmallRng) -> T) -> Option<T> {
    (!rng.random_bool(BOOTSTRAP_NULLS)).then(|| value(rng))
}

fn boot_double(rng: &mut SmallRng) -> f64 {
    rng.random_range(0..100_000_000i64) as f64 / 100.0
}

/// `n` random values of a feature column, of the type the join outputs for it.
fn boot_column(rng: &mut SmallRng, f: &Feature, n: usize) -> ArrayRef {
    match f.op {
        Op::LastK if f.double => Arc::new(ListArray::from_iter_primitive::<Float64Type, _, _>(
            (0..n)
                .map(|_| {
                    boot_value(rng, |r| {
                        let k = r.random_range(1..=LAST_K);
                        (0..k).map(|_| Some(boot_double(r))).collect::<Vec<_>>()
                    })
                })
                .collect::<Vec<_>>(),
        )),
        Op::LastK => Arc::new(ListArray::from_iter_primitive::<Int64Type, _, _>(
            (0..n)
                .map(|_| {
                    boot_value(rng, |r| {
                        let k = r.random_range(1..=LAST_K);
                        (0..k)
                            .map(|_| Some(r.random_range(0..1_000_000i64)))
                            .collect::<Vec<_>>()
                    })
                })
                .collect::<Vec<_>>(),
        )),
        Op::Average => Arc::new(Float64Array::from_iter(
            (0..n).map(|_| boot_value(rng, boot_double)),
        )),
        Op::Sum if f.double => Arc::new(Float64Array::from_iter(
            (0..n).map(|_| boot_value(rng, boot_double)),
        )),
        Op::Sum | Op::Count | Op::ApproxUniqueCount => Arc::new(Int64Array::from_iter(
            (0..n).map(|_| boot_value(rng, |r| r.random_range(1..1_000_000i64))),
        )),
    }
}

/// The bootstrap partition of `day`: the row id and random feature values for `fraction` of the
/// day's `n` left rows (each row drawn from the seed; event ids as [`gen_left`] numbers them).
fn gen_bootstrap(wh: &Warehouse, s: &Settings, fraction: f64, day: Ds, n: usize) -> Result<usize> {
    let mut rng = rng_for(s, 100, day);
    let ids: Vec<i64> = (0..n as i64)
        .filter(|_| rng.random_bool(fraction))
        .map(|i| day.0 as i64 * 1_000_000_000 + i)
        .collect();
    let features = all_features(s);
    let mut cols: Vec<(&str, ArrayRef)> = vec![(ROW_ID, Arc::new(Int64Array::from(ids.clone())))];
    for f in &features {
        cols.push((f.name.as_str(), boot_column(&mut rng, f, ids.len())));
    }
    write(wh, BOOTSTRAP_TABLE, day, cols)
}

/// The left partition of `day` and, in bootstrap mode, its bootstrap partition; returns the
/// left rows and the bootstrapped rows.
fn gen_left_day(wh: &Warehouse, s: &Settings, day: Ds, n: usize) -> Result<(usize, usize)> {
    let left = gen_left(wh, s, day, n)?;
    let boot = match s.bootstrap {
        Some(fraction) => gen_bootstrap(wh, s, fraction, day, n)?,
        None => 0,
    };
    Ok((left, boot))
}

/// Days 1..90 of the left (and of the bootstrap table), and days -29..90 of every source;
/// returns the left rows, the bootstrapped rows and the source events.
fn generate(wh: &Warehouse, s: &Settings) -> Result<(usize, usize, usize)> {
    let first = s.first_day();
    let (mut left, mut boot) = (0, 0);
    for i in 0..LEFT_DAYS {
        let n = share(s.rows, LEFT_DAYS as usize, i as usize);
        let (l, b) = gen_left_day(wh, s, first.shift(i), n)?;
        left += l;
        boot += b;
    }
    let mut events = 0;
    let source_days = (HISTORY_DAYS + LEFT_DAYS) as usize;
    for src in 0..SOURCES.len() {
        for j in 0..source_days {
            let day = first.shift(j as i32 - HISTORY_DAYS);
            events += gen_source(wh, s, src, day, share(s.rows, source_days, j))?;
        }
    }
    Ok((left, boot, events))
}

/// Day 91: the left partition (and its bootstrap partition) and one day of every source.
fn land_append_day(wh: &Warehouse, s: &Settings) -> Result<usize> {
    let day = s.append_day();
    let (n, _) = gen_left_day(wh, s, day, (s.rows / LEFT_DAYS as usize).max(1))?;
    let per_source = (s.rows / (HISTORY_DAYS + LEFT_DAYS) as usize).max(1);
    for src in 0..SOURCES.len() {
        gen_source(wh, s, src, day, per_source)?;
    }
    Ok(n)
}

// ------------------------------------------------------------------------------------------
// Child processes
// ------------------------------------------------------------------------------------------

fn child_gen(s: &Settings, dir: &Path) -> Result<()> {
    let wh = Warehouse::open(dir.join("warehouse"))?;
    let t = Instant::now();
    let (left, bootstrapped, events) = generate(&wh, s)?;
    write_result(
        dir,
        "gen",
        json!({"seconds": t.elapsed().as_secs_f64(), "left": left,
               "bootstrapped": bootstrapped, "events": events}),
    )
}

fn weft_options(end: Ds) -> JoinOptions {
    JoinOptions {
        // weft's default step (30 days, one epoch each); WEFT_BENCH_STEP_DAYS to change
        step_days: std::env::var("WEFT_BENCH_STEP_DAYS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(30),
        ..JoinOptions::through(end)
    }
}

/// A run's time, left rows, left rows computed per part and, with bootstrap, rows covered.
fn run_json(seconds: f64, report: &JoinReport) -> Value {
    let computed: serde_json::Map<String, Value> = report
        .part_rows
        .iter()
        .map(|(part, n)| (part.clone(), json!(n)))
        .collect();
    let covered: Option<serde_json::Map<String, Value>> = report.provenance.as_ref().map(|p| {
        p.parts
            .iter()
            .map(|c| (c.part.clone(), json!(c.covered)))
            .collect()
    });
    json!({"seconds": seconds, "rows": report.left_rows, "computed": computed,
           "covered": covered})
}

/// The full run: days 1..90 in one `run`.
fn weft_full(s: &Settings, engine: &WeftContext, runner: &mut JoinRunner) -> Result<Value> {
    let t = Instant::now();
    let full = runner.run(engine, &weft_options(s.last_full_day()), &|_, _, _| {})?;
    let seconds = t.elapsed().as_secs_f64();
    if full.written.len() != LEFT_DAYS as usize {
        bail!(
            "weft wrote {} partitions in the full run, expected {LEFT_DAYS}",
            full.written.len()
        );
    }
    Ok(run_json(seconds, &full))
}

/// Day 91 lands; `refresh` and `run` on the same runner are timed together.
fn weft_append(
    s: &Settings,
    wh: &Warehouse,
    engine: &WeftContext,
    runner: &mut JoinRunner,
) -> Result<Value> {
    let appended = land_append_day(wh, s)?;
    let t = Instant::now();
    engine.refresh()?;
    let append = runner.run(engine, &weft_options(s.append_day()), &|_, _, _| {})?;
    let seconds = t.elapsed().as_secs_f64();
    if append.written != vec![s.append_day()] {
        bail!(
            "weft's append run wrote {:?}, expected only {}",
            append
                .written
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>(),
            s.append_day()
        );
    }
    let mut v = run_json(seconds, &append);
    v["landed"] = json!(appended);
    Ok(v)
}

/// weft's run of `variant`: the full run and, unless it is the baseline, the appended day.
fn child_weft(s: &Settings, dir: &Path, mode: &str, variant: JoinVariant) -> Result<()> {
    init_tracing();
    let wh = Warehouse::open(dir.join("warehouse"))?;
    let engine = WeftContext::with_workers(&wh, s.workers)?;
    let mut runner = JoinRunner::new(&load_join(s, variant)?)?;
    let mut result = json!({"full": weft_full(s, &engine, &mut runner)?});
    if variant.name == JOIN_NAME {
        result["append"] = weft_append(s, &wh, &engine, &mut runner)?;
        // what `weft backfill` and the materializer do on their way out, for the next process
        let t = Instant::now();
        let stored = runner.store_aggregates()?;
        result["store"] = json!({"seconds": t.elapsed().as_secs_f64(),
                                 "keys": stored.iter().map(|r| r.keys).sum::<u64>()});
    }
    write_result(dir, mode, result)
}

/// After weft's run, two fresh processes' worth of work, each timed from the engine's start:
/// a restart with nothing changed (every partition's input record matches: nothing is
/// recomputed), and the last day's output removed, so a fresh process computes that one day
/// from the aggregates the first process stored and stores them again (what a new day costs
/// from `weft backfill` in a new process).
fn child_weft_restart(s: &Settings, dir: &Path, mode: &str) -> Result<()> {
    init_tracing();
    let wh = Warehouse::open(dir.join("warehouse"))?;
    let join = load_join(s, main_join(s))?;
    let t = Instant::now();
    let engine = WeftContext::with_workers(&wh, s.workers)?;
    let mut runner = JoinRunner::new(&join)?;
    let idle = runner.run(&engine, &weft_options(s.append_day()), &|_, _, _| {})?;
    let restart = t.elapsed().as_secs_f64();
    if !idle.written.is_empty() || !idle.stale.is_empty() {
        bail!(
            "a restart with nothing changed wrote {} and recomputed {} partitions",
            idle.written.len(),
            idle.stale.len()
        );
    }
    drop(runner);
    drop(engine);
    let out = TableName::parse(&output_table(JOIN_NAME))?;
    wh.drop_partition(&out, &[("ds".to_string(), s.append_day().to_string())])?;
    // as `weft backfill` does: from the aggregates the last process stored, storing them
    // again for the next one
    let t = Instant::now();
    let engine = WeftContext::with_workers(&wh, s.workers)?;
    let mut runner = JoinRunner::new(&join)?;
    let day = runner.run(&engine, &weft_options(s.append_day()), &|_, _, _| {})?;
    runner.store_aggregates()?;
    let seconds = t.elapsed().as_secs_f64();
    if day.written != vec![s.append_day()] {
        bail!(
            "the fresh process wrote {} partitions, expected only {}",
            day.written.len(),
            s.append_day()
        );
    }
    write_result(
        dir,
        mode,
        json!({"restart": {"seconds": restart, "rows": 0}, "fresh_day": run_json(seconds, &day),
               "from_stored": day.from_stored.len()}),
    )
}

// ------------------------------------------------------------------------------------------
// Topologies (WEFT_BENCH_TOPOLOGIES=1)
// ------------------------------------------------------------------------------------------

/// Bytes received on the loopback interface so far (`/proc/net/dev`): during a 2-process
/// run on one machine, the exchange between the processes (plus TCP/IP headers).
fn loopback_bytes() -> u64 {
    std::fs::read_to_string("/proc/net/dev")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.trim_start().starts_with("lo:"))
                .and_then(|l| l.split_once(':')?.1.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// One process of a topology run: `topology-<processes>x<workers>-p<index>`, the cluster's
/// addresses in `WEFT_BENCH_ADDRESSES`. Process 0 removes the join's output and runs the full
/// backfill; the others lend their workers. Each reports its peak RSS.
fn child_topology(s: &Settings, dir: &Path, mode: &str) -> Result<()> {
    use weft::dataflow::{Cluster, Identity, Topology};
    init_tracing();
    let spec = mode.trim_start_matches("topology-");
    let (shape, index) = spec.split_once("-p").context("topology mode")?;
    let (processes, workers) = shape.split_once('x').context("topology shape")?;
    let (processes, workers, index): (usize, usize, usize) =
        (processes.parse()?, workers.parse()?, index.parse()?);
    let mut topology = Topology::local(workers);
    if processes > 1 {
        let addresses: Vec<String> = std::env::var("WEFT_BENCH_ADDRESSES")
            .context("WEFT_BENCH_ADDRESSES")?
            .split(',')
            .map(String::from)
            .collect();
        topology.cluster = Some(Cluster {
            addresses,
            process: index,
            connect_timeout: std::time::Duration::from_secs(60),
            identity: Identity::new().with("bench", "join_engine"),
        });
    }
    if index > 0 {
        let wh = Warehouse::open(dir.join("warehouse"))?;
        let rt = WeftContext::follower(&wh, topology)?;
        let t = Instant::now();
        rt.wait()?;
        return write_result(
            dir,
            mode,
            json!({"seconds": t.elapsed().as_secs_f64(), "peak_mib": own_peak_mib()}),
        );
    }
    let wh = Warehouse::open(dir.join("warehouse"))?;
    let out = TableName::parse(&output_table(JOIN_NAME))?;
    let _ = std::fs::remove_dir_all(wh.table_dir(&out));
    let engine = WeftContext::with_topology(&wh, topology)?;
    let mut runner = JoinRunner::new(&load_join(s, main_join(s))?)?;
    let full = weft_full(s, &engine, &mut runner)?;
    write_result(dir, mode, json!({"full": full, "peak_mib": own_peak_mib()}))
}

/// Loopback addresses on ports free a moment ago.
fn free_addresses(n: usize) -> Result<String> {
    let ls: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<_>>()?;
    Ok(ls
        .iter()
        .map(|l| l.local_addr().map(|a| a.to_string()))
        .collect::<std::io::Result<Vec<_>>>()?
        .join(","))
}

/// The same full backfill as one process with two workers and as two processes with one
/// worker each on loopback: the multi-process overhead and the bytes exchanged per left row.
fn topologies(dir: &Path) -> Result<()> {
    println!("running weft as 1 process x 2 workers ...");
    let one = run_side(
        "weft 1x2",
        dir,
        "topology-1x2-p0",
        &mut self_child("topology-1x2-p0", dir),
    )?;
    let rows1 = u64_at(&one.result, &["full", "rows"]);
    println!("running weft as 2 processes x 1 worker (loopback) ...");
    let addrs = free_addresses(2)?;
    let lo_before = loopback_bytes();
    let mut follower = self_child("topology-2x1-p1", dir);
    follower.env("WEFT_BENCH_ADDRESSES", &addrs);
    let mut follower = follower.spawn().context("starting process 1")?;
    let mut lead = self_child("topology-2x1-p0", dir);
    lead.env("WEFT_BENCH_ADDRESSES", &addrs);
    let two = run_side("weft 2x1 process 0", dir, "topology-2x1-p0", &mut lead)?;
    if !follower.wait()?.success() {
        bail!("process 1 of the 2x1 run failed (its error is printed above)");
    }
    let exchanged = loopback_bytes().saturating_sub(lo_before);
    let p1 = read_result(dir, "topology-2x1-p1")?;
    let rows2 = u64_at(&two.result, &["full", "rows"]);
    if rows1 != rows2 {
        bail!("the 1x2 run computed {rows1} left rows, the 2x1 run {rows2}");
    }
    let (t1, t2) = (
        f64_at(&one.result, &["full", "seconds"]),
        f64_at(&two.result, &["full", "seconds"]),
    );
    println!();
    println!("topologies (same join, same data, full {LEFT_DAYS}-day run)");
    println!(
        "{:<26} {:>10} {:>13} {:>16}",
        "topology", "wall s", "left rows/s", "peak RSS MiB"
    );
    println!(
        "{:<26} {:>10.3} {:>13.0} {:>16.0}",
        "1 process x 2 workers",
        t1,
        rows1 as f64 / t1,
        one.peak_mib
    );
    println!(
        "{:<26} {:>10.3} {:>13.0} {:>9.0} + {:.0}",
        "2 processes x 1 worker",
        t2,
        rows2 as f64 / t2,
        two.peak_mib,
        f64_at(&p1, &["peak_mib"])
    );
    println!(
        "2x1 / 1x2 wall time: {:.2}; {:.1} MiB crossed loopback between the processes (TCP included): {:.0} bytes per left row",
        t2 / t1,
        exchanged as f64 / (1024.0 * 1024.0),
        exchanged as f64 / rows2.max(1) as f64
    );
    Ok(())
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
            "weft" => child_weft(&settings, &dir, mode, main_join(&settings)),
            "weft-baseline" => child_weft(&settings, &dir, mode, BASELINE_JOIN),
            "weft-restart" => child_weft_restart(&settings, &dir, mode),
            m if m.starts_with("topology-") => child_topology(&settings, &dir, m),
            other => bail!("unknown child mode {other}"),
        };
    }
    parent(&settings)
}

/// This process's own peak RSS (VmHWM), in MiB.
fn own_peak_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn u64_at(v: &Value, path: &[&str]) -> u64 {
    path.iter().fold(v, |v, k| &v[*k]).as_u64().unwrap_or(0)
}

/// Writes the join (for reference) and the DuckDB spec, and fails before generating anything
/// if weft cannot parse or plan the join.
fn write_configs(s: &Settings, dir: &Path) -> Result<()> {
    std::fs::write(
        dir.join("join_engine.v1.json"),
        serde_json::to_string_pretty(&join_json(s, main_join(s)))?,
    )?;
    std::fs::write(
        dir.join("spec.json"),
        serde_json::to_string_pretty(&duck_spec(s, dir))?,
    )?;
    JoinRunner::new(&load_join(s, main_join(s))?).map_err(|e| {
        anyhow!(
            "{e}\n(weft refuses the join; limit the operations with e.g. WEFT_BENCH_OPS=sum,count)"
        )
    })?;
    Ok(())
}

fn print_header(s: &Settings, dir: &Path) {
    let ops: Vec<&str> = s.ops.iter().map(|o| o.key()).collect();
    let wins: Vec<String> = s
        .windows
        .iter()
        .map(|w| match w.0 {
            None => "unbounded".into(),
            Some(_) => w.suffix()[1..].to_string(),
        })
        .collect();
    println!(
        "join_engine: N={} left rows over {LEFT_DAYS} days + 1 appended day; 3 TEMPORAL GroupBys × [{}] × [{}]; \
         {} users (Zipf {}), ~{} events per source; weft {} worker(s), DuckDB {} thread(s)",
        s.rows,
        ops.join(","),
        wins.join(","),
        s.users,
        s.zipf,
        s.rows,
        s.workers,
        s.duck_threads
    );
    if let Some(f) = s.bootstrap {
        println!(
            "bootstrap: {BOOTSTRAP_TABLE} holds every feature column for a fraction {f} of the left rows \
             (rowIds [{ROW_ID}]); weft also runs the join without bootstrap as a baseline"
        );
    }
    println!("data in {}", dir.display());
}

/// A finished child: its result file and peak RSS.
struct Side {
    result: Value,
    peak_mib: f64,
}

fn run_side(what: &str, dir: &Path, mode: &str, cmd: &mut Command) -> Result<Side> {
    let run = run_child(what, cmd)?;
    Ok(Side {
        result: read_result(dir, mode)?,
        peak_mib: run.peak_mib,
    })
}

/// The timed runs: the weft baseline (bootstrap mode only), weft, DuckDB.
struct Runs {
    baseline: Option<Side>,
    weft: Side,
    /// Fresh processes after weft's run: a restart, and one new day (not in bootstrap mode).
    restart: Option<Side>,
    duck: Side,
}

fn run_sides(s: &Settings, dir: &Path) -> Result<Runs> {
    let baseline = match s.bootstrap {
        Some(_) => {
            println!("running weft without bootstrap (baseline, full run only) ...");
            let mode = "weft-baseline";
            Some(run_side("weft", dir, mode, &mut self_child(mode, dir))?)
        }
        None => None,
    };
    println!("running weft ...");
    let weft = run_side("weft", dir, "weft", &mut self_child("weft", dir))?;
    let restart = match s.bootstrap {
        None => {
            println!("running weft in fresh processes: a restart, then one day ...");
            let mode = "weft-restart";
            Some(run_side("weft", dir, mode, &mut self_child(mode, dir))?)
        }
        Some(_) => None,
    };
    println!("running DuckDB ...");
    let duck = run_side(
        "DuckDB (python3 with the duckdb module)",
        dir,
        "duckdb",
        &mut common::python(DUCKDB_PY, "run", dir),
    )?;
    Ok(Runs {
        baseline,
        weft,
        restart,
        duck,
    })
}

fn print_row(side: &str, phase: &str, v: &Value, peak: f64) {
    let secs = f64_at(v, &[phase, "seconds"]);
    let rows = u64_at(v, &[phase, "rows"]);
    println!(
        "{:<13} {:<14} {:>11} {:>10.3} {:>13.0} {:>13.0}",
        side,
        if phase.ends_with("full") {
            "full (90 days)"
        } else {
            "append (1 day)"
        },
        rows,
        secs,
        rows as f64 / secs,
        peak
    );
}

/// `part: computed rows (covered rows)` for every part of a weft run's phase.
fn coverage_line(v: &Value, phase: &str) -> String {
    let Some(computed) = v[phase]["computed"].as_object() else {
        return "?".into();
    };
    computed
        .iter()
        .map(|(part, n)| match v[phase]["covered"][part].as_u64() {
            Some(c) => format!("{part} {n} ({c} covered)"),
            None => format!("{part} {n}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn print_timings(runs: &Runs, ok: bool) {
    let (w, d) = (&runs.weft.result, &runs.duck.result);
    println!();
    println!(
        "timings ({})",
        if ok {
            "results agree with DuckDB on the sample"
        } else {
            "NOT VERIFIED: the results disagree, see the warning below"
        }
    );
    println!(
        "{:<13} {:<14} {:>11} {:>10} {:>13} {:>13}",
        "side", "run", "left rows", "wall s", "left rows/s", "peak RSS MiB"
    );
    if let Some(b) = &runs.baseline {
        print_row("weft no-boot", "full", &b.result, b.peak_mib);
    }
    print_row("weft", "full", w, runs.weft.peak_mib);
    print_row("weft", "append", w, runs.weft.peak_mib);
    print_row("duckdb", "full", d, runs.duck.peak_mib);
    print_row("duckdb", "append", d, runs.duck.peak_mib);
    let fast = d.get("fast_full").is_some();
    if fast {
        print_row("duckdb prefix", "fast_full", d, runs.duck.peak_mib);
        print_row("duckdb prefix", "fast_append", d, runs.duck.peak_mib);
    }
    let ratio = |phase: &str| f64_at(w, &[phase, "seconds"]) / f64_at(d, &[phase, "seconds"]);
    println!(
        "weft/DuckDB wall time: full {:.2}, appended day {:.2} (below 1: weft is faster); peak RSS {:.2}",
        ratio("full"),
        ratio("append"),
        runs.weft.peak_mib / runs.duck.peak_mib
    );
    if fast {
        let r = |phase: &str, fast: &str| {
            f64_at(w, &[phase, "seconds"]) / f64_at(d, &[fast, "seconds"])
        };
        println!(
            "weft/DuckDB prefix-sum SQL (running sums + ASOF) wall time: full {:.2}, appended day {:.2}; \
             the range join / prefix-sum SQL: {:.2}x; weft / the faster DuckDB query, full run: {:.2} \
             (peak RSS is the DuckDB process's over both queries)",
            r("full", "fast_full"),
            r("append", "fast_append"),
            f64_at(d, &["full", "seconds"]) / f64_at(d, &["fast_full", "seconds"]),
            f64_at(w, &["full", "seconds"])
                / f64_at(d, &["full", "seconds"]).min(f64_at(d, &["fast_full", "seconds"]))
        );
    }
    println!(
        "weft's appended day took {:.1}% of its full run; storing the aggregates for the next process {:.2} s ({:.1}%)",
        100.0 * f64_at(w, &["append", "seconds"]) / f64_at(w, &["full", "seconds"]),
        f64_at(w, &["store", "seconds"]),
        100.0 * f64_at(w, &["store", "seconds"]) / f64_at(w, &["full", "seconds"])
    );
    if let Some(r) = &runs.restart {
        let full = f64_at(w, &["full", "seconds"]);
        let restart = f64_at(&r.result, &["restart", "seconds"]);
        let day = f64_at(&r.result, &["fresh_day", "seconds"]);
        println!(
            "weft in a fresh process: restart with nothing changed {restart:.2} s ({:.1}% of the full run); \
             one new day {day:.2} s ({:.1}% of the full run; {} parts started from stored aggregates); peak RSS {:.0} MiB",
            100.0 * restart / full,
            100.0 * day / full,
            r.result["from_stored"],
            r.peak_mib
        );
    }
    if let Some(b) = &runs.baseline {
        println!(
            "weft with/without bootstrap: full run {:.2} ({:.1} s vs {:.1} s), peak RSS {:.2}",
            f64_at(w, &["full", "seconds"]) / f64_at(&b.result, &["full", "seconds"]),
            f64_at(w, &["full", "seconds"]),
            f64_at(&b.result, &["full", "seconds"]),
            runs.weft.peak_mib / b.peak_mib
        );
        println!(
            "weft's left rows computed per part, full run: {}",
            coverage_line(w, "full")
        );
        println!("  appended day: {}", coverage_line(w, "append"));
    }
    println!(
        "(peak RSS: per process over both runs, including at most the bench's own {:.0} MiB; \
         wall times exclude process start and data generation)",
        own_peak_mib()
    );
    println!();
}

fn parent(s: &Settings) -> Result<()> {
    let (tmp, dir) = common::bench_dir("weft-join-engine-")?;
    write_configs(s, &dir)?;
    print_header(s, &dir);

    let gen = run_child("generator", &mut self_child("gen", &dir))?;
    let g = read_result(&dir, "gen")?;
    println!(
        "generated {} left rows{} and {} source events in {:.1} s",
        u64_at(&g, &["left"]),
        match s.bootstrap {
            Some(_) => format!(" ({} bootstrapped)", u64_at(&g, &["bootstrapped"])),
            None => String::new(),
        },
        u64_at(&g, &["events"]),
        gen.seconds
    );

    if std::env::var("WEFT_BENCH_TOPOLOGIES").is_ok_and(|v| v == "1") {
        return topologies(&dir);
    }
    let runs = run_sides(s, &dir)?;
    println!("checking a sample of rows ...");
    let check = run_child(
        "sanity check",
        &mut common::python(DUCKDB_PY, "check", &dir),
    )
    .and_then(|_| read_result(&dir, "check"));
    let ok = matches!(&check, Ok(c) if c["ok"].as_bool().unwrap_or(false));
    print_timings(&runs, ok);
    common::report_check(
        &check,
        ok,
        tmp,
        &dir,
        "results agree on the sample: the timings above compare equal work",
    );
    Ok(())
}

// ------------------------------------------------------------------------------------------
// DuckDB side (run with `python3 -c`; argv: mode, spec.json)
// ------------------------------------------------------------------------------------------

const DUCKDB_PY: &str = r#"
import json, math, os, sys, time
from datetime import date, timedelta
import duckdb

DAY_MS = 86_400_000
mode, spec = sys.argv[1], json.load(open(sys.argv[2]))

def ql(s):
    return "'" + str(s).replace("'", "''") + "'"

def qi(s):
    return '"' + s.replace('"', '""') + '"'

def scan(table):
    ns, name = table.split('.', 1)
    path = os.path.join(spec['root'], ns, name, '*', '*.parquet')
    return f"read_parquet({ql(path)}, hive_partitioning = true, hive_types = {{'ds': 'VARCHAR'}})"

def start(c):
    # Chronon's window tail floor(q - W, h(W)); ts > W here, so // (truncating) is floor
    w, h = c['window_ms'], c['hop_ms']
    return f"((l.ts - {w}) // {h}) * {h}"

def cond(c):
    return 'TRUE' if c['window_ms'] is None else f"e.ts >= {start(c)}"

def agg(c, exact=False):
    v = f"e.{qi(c['input'])}"
    f = f"FILTER (WHERE {cond(c)})"
    op = c['op']
    if op == 'sum':
        return f"sum({v}) {f}" if c['double'] else f"CAST(sum({v}) {f} AS BIGINT)"
    if op == 'count':
        return f"NULLIF(count({v}) {f}, 0)"
    if op == 'average':
        return f"avg({v}) {f}"
    if op == 'last_k':   # the k newest non-NULL values, newest first
        return f"max_by({v}, e.ts, {c['k']}) FILTER (WHERE {cond(c)} AND {v} IS NOT NULL)"
    if op == 'approx_unique_count':
        return f"NULLIF(count(DISTINCT {v}) {f}, 0)" if exact else f"NULLIF(approx_count_distinct({v}) {f}, 0)"
    raise ValueError(op)

def feature_names():
    return [c['name'] for p in spec['parts'] for c in p['columns']]

def features_sql(d1, d2, exact=False, only_ids=None, only_ops=None, boot=None):
    # boot: the bootstrap spec; then only the left rows without a bootstrap row are computed
    # (anti-join on row id + ds) and the bootstrapped rows are appended
    left = spec['left']
    where = f"ds BETWEEN {ql(d1)} AND {ql(d2)}"
    if only_ids:
        where += f" AND event_id IN (SELECT event_id FROM {only_ids})"
    lcols = ', '.join(qi(c) for c in left['columns'])
    ctes = [f"l AS (SELECT {lcols}, ds FROM {scan(left['table'])} WHERE {where})"]
    if boot:
        k = qi(boot['key'])
        bcols = ', '.join(qi(c) for c in [boot['key']] + feature_names())
        ctes = [ctes[0].replace('l AS', 'l_all AS', 1),
                f"b AS (SELECT {bcols}, ds FROM {scan(boot['table'])} WHERE ds BETWEEN {ql(d1)} AND {ql(d2)})",
                f"l AS (SELECT * FROM l_all WHERE NOT EXISTS "
                f"(SELECT 1 FROM b WHERE b.{k} = l_all.{k} AND b.ds = l_all.ds))"]
    sel = [f"l.{qi(c)}" for c in left['columns']]
    joins = []
    for i, p in enumerate(spec['parts']):
        cols = [c for c in p['columns'] if only_ops is None or c['op'] in only_ops]
        if not cols:
            continue
        windows = [c['window_ms'] for c in cols]
        src_where = [f"ds <= {ql(d2)}"]
        on = [f"e.{qi(p['key'])} = l.{qi(left['key'])}", "e.ts < l.ts"]
        if None not in windows:
            starts = sorted({start(c) for c in cols})
            on.append(f"e.ts >= {starts[0] if len(starts) == 1 else 'LEAST(' + ', '.join(starts) + ')'}")
            back = -(-max(windows) // DAY_MS) + 1
            src_where.append(f"ds >= {ql(date.fromisoformat(d1) - timedelta(days=back))}")
        inputs = sorted({c['input'] for c in cols})
        src = (f"SELECT {qi(p['key'])}, ts, {', '.join(qi(x) for x in inputs)} "
               f"FROM {scan(p['table'])} WHERE {' AND '.join(src_where)}")
        aggs = ', '.join(f"{agg(c, exact)} AS {qi(c['name'])}" for c in cols)
        ctes.append(f"f{i} AS (SELECT l.event_id, {aggs} FROM l LEFT JOIN ({src}) e "
                    f"ON {' AND '.join(on)} GROUP BY l.event_id)")
        joins.append(f"JOIN f{i} USING (event_id)")
        sel += [f"f{i}.{qi(c['name'])}" for c in cols]
    sql = f"WITH {', '.join(ctes)} SELECT {', '.join(sel)}, l.ds FROM l {' '.join(joins)}"
    if boot:
        bsel = [f"l_all.{qi(c)}" for c in left['columns']] + [f"b.{qi(c)}" for c in feature_names()]
        sql += (f" UNION ALL SELECT {', '.join(bsel)}, l_all.ds FROM l_all "
                f"JOIN b ON b.{k} = l_all.{k} AND b.ds = l_all.ds")
    return sql

PREFIX_OPS = ('sum', 'count', 'average')

def fast_sql(d1, d2):
    # The SQL a DuckDB expert writes when every operation is a difference of prefix sums
    # (SUM, COUNT, AVERAGE): per source, running sums and non-NULL counts per key in time
    # order; per left row, one probe at its time and one at each window's start (Chronon's
    # floor(q - W, h)); an ASOF join reads the running values just before each probe, and a
    # window's value is the difference. None when an operation is not prefix-summable or in
    # bootstrap mode (the range join then stands alone).
    if spec['bootstrap'] or any(c['op'] not in PREFIX_OPS for p in spec['parts'] for c in p['columns']):
        return None
    left = spec['left']
    lk = qi(left['key'])
    lcols = ', '.join(qi(c) for c in left['columns'])
    ctes = [f"l AS (SELECT {lcols}, ds FROM {scan(left['table'])} WHERE ds BETWEEN {ql(d1)} AND {ql(d2)})"]
    sel = [f"l.{qi(c)}" for c in left['columns']]
    joins = []
    for i, p in enumerate(spec['parts']):
        cols = p['columns']
        inputs = sorted({c['input'] for c in cols})
        wins = sorted({(c['window_ms'], c['hop_ms']) for c in cols if c['window_ms'] is not None})
        src_where = [f"ds <= {ql(d2)}"]
        if all(c['window_ms'] is not None for c in cols):
            back = -(-max(w for w, _ in wins) // DAY_MS) + 1
            src_where.append(f"ds >= {ql(date.fromisoformat(d1) - timedelta(days=back))}")
        running = ', '.join(f"sum({qi(x)}) OVER w AS s{j}, count({qi(x)}) OVER w AS c{j}"
                            for j, x in enumerate(inputs))
        ctes.append(f"e{i} AS (SELECT {qi(p['key'])} AS k, ts AS t, {running} "
                    f"FROM {scan(p['table'])} WHERE {' AND '.join(src_where)} "
                    f"WINDOW w AS (PARTITION BY {qi(p['key'])} ORDER BY ts "
                    f"RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW))")
        probes = [f"SELECT event_id, {lk} AS k, ts AS t, 0 AS w FROM l"]
        probes += [f"SELECT event_id, {lk} AS k, ((ts - {w}) // {h}) * {h} AS t, {n + 1} AS w FROM l"
                   for n, (w, h) in enumerate(wins)]
        ctes.append(f"p{i} AS ({' UNION ALL '.join(probes)})")
        vals = ', '.join(f"coalesce(e.s{j}, 0) AS s{j}, coalesce(e.c{j}, 0) AS c{j}" for j in range(len(inputs)))
        ctes.append(f"a{i} AS (SELECT p.event_id, p.w, {vals} FROM p{i} p "
                    f"ASOF LEFT JOIN e{i} e ON p.k = e.k AND p.t > e.t)")
        aggs = []
        for c in cols:
            j = inputs.index(c['input'])
            at = lambda col, w: f"max({col}) FILTER (WHERE w = {w})"
            if c['window_ms'] is None:
                S, C = at(f"s{j}", 0), at(f"c{j}", 0)
            else:
                n = wins.index((c['window_ms'], c['hop_ms'])) + 1
                S = f"({at(f's{j}', 0)} - {at(f's{j}', n)})"
                C = f"({at(f'c{j}', 0)} - {at(f'c{j}', n)})"
            if c['op'] == 'sum':
                v = f"CASE WHEN {C} > 0 THEN {S} END"
                aggs.append(v if c['double'] else f"CAST({v} AS BIGINT)")
            elif c['op'] == 'count':
                aggs.append(f"NULLIF({C}, 0)")
            else:
                aggs.append(f"CASE WHEN {C} > 0 THEN CAST({S} AS DOUBLE) / {C} END")
        names = ', '.join(f"{a} AS {qi(c['name'])}" for a, c in zip(aggs, cols))
        ctes.append(f"f{i} AS (SELECT event_id, {names} FROM a{i} GROUP BY event_id)")
        joins.append(f"JOIN f{i} USING (event_id)")
        sel += [f"f{i}.{qi(c['name'])}" for c in cols]
    return f"WITH {', '.join(ctes)} SELECT {', '.join(sel)}, l.ds FROM l {' '.join(joins)}"

def connect():
    con = duckdb.connect()
    con.execute(f"SET threads = {int(spec['threads'])}")
    con.execute("SET preserve_insertion_order = false")
    con.execute("SET enable_progress_bar = false")
    return con

def out_path(phase):
    return os.path.join(spec['duck_dir'], f'{phase}.parquet')

def run():
    os.makedirs(spec['duck_dir'], exist_ok=True)
    con = connect()
    res = {}
    for phase, d1, d2 in (('full', spec['first_day'], spec['last_full_day']),
                          ('append', spec['append_day'], spec['append_day'])):
        t = time.perf_counter()
        sql = features_sql(d1, d2, boot=spec['bootstrap'])
        con.execute(f"COPY ({sql}) TO {ql(out_path(phase))} (FORMAT parquet)")
        secs = time.perf_counter() - t
        n = con.execute(f"SELECT count(*) FROM read_parquet({ql(out_path(phase))})").fetchone()[0]
        res[phase] = {'seconds': secs, 'rows': n}
        fast = fast_sql(d1, d2)
        if fast is not None:
            t = time.perf_counter()
            con.execute(f"COPY ({fast}) TO {ql(out_path(phase + '_fast'))} (FORMAT parquet)")
            secs = time.perf_counter() - t
            n = con.execute(f"SELECT count(*) FROM read_parquet({ql(out_path(phase + '_fast'))})").fetchone()[0]
            res['fast_' + phase] = {'seconds': secs, 'rows': n}
    with open(os.path.join(spec['dir'], 'duckdb.result.json'), 'w') as f:
        json.dump(res, f)

def close(a, b):
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(close(x, y) for x, y in zip(a, b))
    return a == b

def within(a, b, rel=0.10):   # a approximates b (NULL only for NULL); at least +-1 for small counts
    if a is None or b is None:
        return a is None and b is None
    return abs(a - b) <= max(rel * b, 1)

def check():
    con = connect()
    ns, name = spec['output_table'].split('.', 1)
    weft = scan(f"{ns}.{name}")
    duck = f"read_parquet([{ql(out_path('full'))}, {ql(out_path('append'))}])"
    per_ds = lambda rel: dict(con.execute(f"SELECT ds, count(*) FROM {rel} GROUP BY ds").fetchall())
    wds, dds = per_ds(weft), per_ds(duck)
    ds_diff = sorted(d for d in set(wds) | set(dds) if wds.get(d) != dds.get(d))
    app, seed = spec['append_day'], int(spec['seed'])
    n_app = max(1, spec['sample'] // 10)
    n_main = max(1, spec['sample'] - n_app)
    left = scan(spec['left']['table'])
    con.execute(f"""CREATE TEMP TABLE sample AS
        (SELECT event_id FROM {left} WHERE ds BETWEEN {ql(spec['first_day'])} AND {ql(spec['last_full_day'])}
         ORDER BY hash(event_id + {seed}) LIMIT {n_main})
        UNION ALL
        (SELECT event_id FROM {left} WHERE ds = {ql(app)} ORDER BY hash(event_id + {seed}) LIMIT {n_app})""")
    ids = [r[0] for r in con.execute("SELECT event_id FROM sample").fetchall()]

    def rows(sql):
        cur = con.execute(sql)
        names = [d[0] for d in cur.description]
        return {r[names.index('event_id')]: dict(zip(names, r)) for r in cur.fetchall()}
    sampled = "SELECT event_id FROM sample"
    wr = rows(f"SELECT * FROM {weft} WHERE event_id IN ({sampled})")
    dr = rows(f"SELECT * FROM {duck} WHERE event_id IN ({sampled})")
    exact = rows(features_sql(spec['first_day'], app, exact=True, only_ids='sample',
                              only_ops={'approx_unique_count'}))
    boot = spec['bootstrap']
    br = {}   # sampled rows with a bootstrap row: both sides must carry its values
    if boot:
        k = qi(boot['key'])
        br = rows(f"SELECT b.* EXCLUDE (ds) FROM {scan(boot['table'])} b JOIN {left} l "
                  f"ON b.{k} = l.{k} AND b.ds = l.ds WHERE l.event_id IN ({sampled})")

    cols = [c for p in spec['parts'] for c in p['columns']]
    missing = 0
    compared = {}
    bad = {}
    # APPROX_UNIQUE_COUNT against the exact distinct count: NULL must match NULL; values may be
    # off by sketch noise (CPC lgK=8: ~3.7% relative standard error), so up to 3% of the counts
    # >= 10 may fall outside 10% (~2.7 sigma), and the mean error on counts >= 20 must stay
    # within 3% (a systematic error, e.g. a wrong window, shows up as a bias; Chronon truncates
    # the estimate, which alone gives about -0.5/count).
    ax = {'outside': 0, 'large': 0, 'big': 0, 'err_sum': 0.0, 'worst': 0.0, 'duck_outside': 0,
          'apart': 0}
    examples = []   # hard mismatches
    notes = []      # approximate counts outside 10% (sketch noise, within a budget)
    for i in ids:
        w, d = wr.get(i), dr.get(i)
        if w is None or d is None:
            missing += 1
            if len(examples) < 10:
                examples.append(f"event_id {i}: row missing in {'weft' if w is None else 'duckdb'}")
            continue
        for c in spec['left']['columns'] + ['ds']:
            compared['left'] = compared.get('left', 0) + 1
            if w.get(c) != d.get(c):
                bad['left'] = bad.get('left', 0) + 1
                if len(examples) < 10:
                    examples.append(f"event_id {i} {c}: weft {w.get(c)!r} duckdb {d.get(c)!r}")
        b = br.get(i)
        for c in cols:
            n = c['name']
            op = c['op'] if b is None else 'bootstrapped'
            compared[op] = compared.get(op, 0) + 1
            if n not in w:
                bad[op] = bad.get(op, 0) + 1
                if len(examples) < 10:
                    examples.append(f"column {n} missing in weft's output")
                continue
            if b is not None:
                good = close(w[n], b[n]) and close(d[n], b[n])
                shown = f"weft {w[n]!r} duckdb {d[n]!r} bootstrap table {b[n]!r}"
            elif op == 'approx_unique_count':
                truth, got = exact[i][n], w[n]
                shown = f"weft {got!r} exact {truth!r} duckdb {d[n]!r}"
                good = (got is None) == (truth is None)
                if good and truth is not None:
                    ax['duck_outside'] += not within(d[n], truth)
                    ax['apart'] += not within(got, d[n])
                    if truth >= 10:
                        ax['large'] += 1
                        ax['worst'] = max(ax['worst'], abs(got - truth) / truth)
                    if truth >= 20:
                        ax['big'] += 1
                        ax['err_sum'] += (got - truth) / truth
                    if not within(got, truth):
                        ax['outside'] += 1
                        if len(notes) < 10:
                            notes.append(f"event_id {i} ds {w.get('ds')} {n}: {shown}")
            else:
                good = close(w[n], d[n])
                shown = f"weft {w[n]!r} duckdb {d[n]!r}"
            if not good:
                bad[op] = bad.get(op, 0) + 1
                if len(examples) < 10:
                    examples.append(f"event_id {i} ds {w.get('ds')} {n}: {shown}")
    # the expert SQL (prefix sums) against weft, value for value
    fast_path = out_path('full_fast')
    fast_bad = None
    if os.path.exists(fast_path):
        fast_bad = 0
        fr = rows(f"SELECT * FROM read_parquet([{ql(fast_path)}, {ql(out_path('append_fast'))}]) "
                  f"WHERE event_id IN ({sampled})")
        for i in ids:
            w, f_ = wr.get(i), fr.get(i)
            if w is None or f_ is None:
                fast_bad += 1
                continue
            for c in cols:
                n = c['name']
                if not close(w.get(n), f_.get(n)):
                    fast_bad += 1
                    if len(examples) < 10:
                        examples.append(f"event_id {i} {n}: weft {w.get(n)!r} duckdb prefix-sum SQL {f_.get(n)!r}")
        if fast_bad:
            bad['prefix-sum SQL'] = fast_bad
    mism = sum(bad.values())
    ax_budget = max(2, int(0.03 * ax['large']))
    ax_bias = ax['err_sum'] / ax['big'] if ax['big'] else 0.0
    ax_ok = ax['outside'] <= ax_budget and (ax['big'] < 20 or abs(ax_bias) <= 0.03)
    ok = mism == 0 and missing == 0 and not ds_diff and len(ids) > 0 and ax_ok
    parts = [f"{len(ids)} sampled rows ({n_app} from {app}"
             + (f"; {len(br)} bootstrapped, their values compared with the bootstrap table" if boot else "")
             + f"), {sum(compared.values())} values compared",
             f"{mism} mismatches" + (f" {bad}" if bad else ""),
             f"{missing} rows missing",
             f"{len(ds_diff)} partitions with different row counts (total weft {sum(wds.values())}, duckdb {sum(dds.values())})"]
    if fast_bad is not None:
        parts.append(f"DuckDB's prefix-sum SQL vs weft on the same rows: {fast_bad} mismatches")
    if compared.get('approx_unique_count'):
        parts.append(f"approx_unique_count vs the exact distinct count: {ax['outside']} of "
                     f"{compared['approx_unique_count']} outside 10% (allowed for sketch noise: {ax_budget}, "
                     f"3% of the {ax['large']} counts >= 10), mean error on the {ax['big']} counts >= 20 "
                     f"{100 * ax_bias:+.2f}% (allowed: within 3%), worst {100 * ax['worst']:.1f}%"
                     f"{'' if ax_ok else ' -> FAILED'}; DuckDB's own estimate outside 10% in {ax['duck_outside']}, "
                     f"weft and DuckDB more than 10% apart in {ax['apart']}")
    summary = '; '.join(parts)
    for e in examples:
        print('  mismatch:', e)
    for e in notes:
        print('  approx_unique_count outside 10% of the exact count:', e)
    if ds_diff:
        print('  partitions with different row counts:', ', '.join(f"{x} (weft {wds.get(x)}, duckdb {dds.get(x)})" for x in ds_diff[:10]))
    with open(os.path.join(spec['dir'], 'check.result.json'), 'w') as f:
        json.dump({'ok': ok, 'summary': summary, 'mismatches': bad, 'missing': missing,
                   'examples': examples}, f)

{'run': run, 'check': check}[mode]()
"#;
