//! Helpers the benchmarks share: settings from the environment, generated Parquet partitions,
//! child processes (each side of a comparison runs in its own, reaped with `wait4` for its peak
//! RSS) and their JSON results, and the DuckDB side run through the `python3` duckdb module.

#![allow(dead_code)]

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use arrow::array::ArrayRef;
use arrow::datatypes::{Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use rand::rngs::SmallRng;
use rand::Rng;
use serde_json::{json, Value};

use weft::partition::{Ds, DAY_MS};
use weft::warehouse::{TableName, Warehouse};

pub struct ChildRun {
    pub seconds: f64,
    pub peak_mib: f64,
}

pub fn parse_count(s: &str) -> Option<usize> {
    let s = s.trim().replace('_', "").to_ascii_lowercase();
    let (num, mult) = match s.chars().last()? {
        'k' => (&s[..s.len() - 1], 1e3),
        'm' => (&s[..s.len() - 1], 1e6),
        'g' | 'b' => (&s[..s.len() - 1], 1e9),
        _ => (s.as_str(), 1.0),
    };
    let v: f64 = num.parse().ok()?;
    (v > 0.0).then(|| (v * mult).round() as usize)
}

pub fn env_str(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

pub fn env_count(name: &str, default: usize) -> Result<usize> {
    match env_str(name) {
        None => Ok(default),
        Some(v) => parse_count(&v).ok_or_else(|| anyhow!("{name}=`{v}` is not a count")),
    }
}

pub fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

pub fn dependency(table: &str) -> String {
    json!({"name": format!("wait_for_{table}_ds"), "spec": format!("{table}/ds={{{{ ds }}}}"),
           "start": null, "end": null})
    .to_string()
}

/// `total` spread over `days`: the share of day `i`.
pub fn share(total: usize, days: usize, i: usize) -> usize {
    total / days + usize::from(i < total % days)
}

/// `n` increasing, distinct timestamps spread over `day` (one random millisecond per slot).
pub fn day_times(rng: &mut SmallRng, day: Ds, n: usize) -> Vec<i64> {
    let start = day.start_millis();
    let edge = |i: usize| (i as i128 * DAY_MS as i128 / n.max(1) as i128) as i64;
    (0..n)
        .map(|i| {
            let (a, b) = (edge(i), edge(i + 1));
            start + a + rng.random_range(0..(b - a).max(1))
        })
        .collect()
}

pub fn write(wh: &Warehouse, table: &str, day: Ds, cols: Vec<(&str, ArrayRef)>) -> Result<usize> {
    let schema: SchemaRef = Arc::new(Schema::new(
        cols.iter()
            .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
            .collect::<Vec<_>>(),
    ));
    let batch = RecordBatch::try_new(schema.clone(), cols.into_iter().map(|(_, a)| a).collect())?;
    let rows = batch.num_rows();
    wh.write_partition(
        &TableName::parse(table)?,
        &[("ds".into(), day.to_string())],
        schema,
        &[batch],
    )?;
    Ok(rows)
}

pub fn write_result(dir: &Path, mode: &str, v: Value) -> Result<()> {
    std::fs::write(
        dir.join(format!("{mode}.result.json")),
        serde_json::to_vec_pretty(&v)?,
    )?;
    Ok(())
}

/// WEFT_LOG=weft=info shows where the time goes (phases with their durations).
pub fn init_tracing() {
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_env("WEFT_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
    }
}

/// Runs a child to completion, reaping it with `wait4` for its own peak RSS.
pub fn run_child(what: &str, cmd: &mut Command) -> Result<ChildRun> {
    let t = Instant::now();
    let child = cmd
        .spawn()
        .with_context(|| format!("starting the {what} process"))?;
    let pid = child.id() as libc::pid_t;
    let mut status: libc::c_int = 0;
    // SAFETY: plain syscall on our own child; `ru` is a valid, zeroed rusage.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let r = loop {
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
        if r == -1 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        break r;
    };
    drop(child);
    if r != pid {
        bail!(
            "waiting for the {what} process: {}",
            std::io::Error::last_os_error()
        );
    }
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        bail!(
            "the {what} process failed ({}); its error is printed above",
            if libc::WIFEXITED(status) {
                format!("exit code {}", libc::WEXITSTATUS(status))
            } else {
                format!("signal {}", libc::WTERMSIG(status))
            }
        );
    }
    Ok(ChildRun {
        seconds: t.elapsed().as_secs_f64(),
        peak_mib: ru.ru_maxrss as f64 / 1024.0, // KiB on Linux
    })
}

pub fn read_result(dir: &Path, mode: &str) -> Result<Value> {
    let p = dir.join(format!("{mode}.result.json"));
    let text = std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
    Ok(serde_json::from_str(&text)?)
}

pub fn self_child(mode: &str, dir: &Path) -> Command {
    let mut c = Command::new(std::env::current_exe().expect("the bench binary"));
    c.arg("__child").arg(mode).arg(dir);
    c
}

/// The DuckDB side: `script` (a bench's Python) run with a mode and the run's spec file.
pub fn python(script: &str, mode: &str, dir: &Path) -> Command {
    let mut c = Command::new("python3");
    c.arg("-c").arg(script).arg(mode).arg(dir.join("spec.json"));
    c
}

pub fn f64_at(v: &Value, path: &[&str]) -> f64 {
    path.iter()
        .fold(v, |v, k| &v[*k])
        .as_f64()
        .unwrap_or(f64::NAN)
}

/// Prints the check's verdict (`agree` when weft and DuckDB agree); on a disagreement keeps the data and exits with status 2.
pub fn report_check(
    check: &Result<Value>,
    ok: bool,
    tmp: Option<tempfile::TempDir>,
    dir: &Path,
    agree: &str,
) {
    match check {
        Ok(c) => println!("sanity check: {}", c["summary"].as_str().unwrap_or("?")),
        Err(e) => println!("sanity check did not run: {e:#}"),
    }
    if !ok {
        let bar = "!".repeat(90);
        println!("{bar}");
        println!("!!! WARNING: weft and DuckDB DISAGREE (or the check failed): the timings above compare");
        println!(
            "!!! different results and must NOT be quoted. Data kept in {}",
            dir.display()
        );
        println!("{bar}");
        if let Some(t) = tmp {
            let _ = t.keep();
        }
        std::process::exit(2);
    }
    println!("{agree}");
}

/// The bench's directory: `WEFT_BENCH_DIR` (emptied of a previous warehouse and results) or a
/// temp directory named `<prefix>…` (deleted when the guard drops).
pub fn bench_dir(prefix: &str) -> Result<(Option<tempfile::TempDir>, std::path::PathBuf)> {
    let (tmp, dir) = match env_str("WEFT_BENCH_DIR") {
        Some(d) => {
            let d = std::path::PathBuf::from(d);
            if d.join("warehouse").exists() {
                std::fs::remove_dir_all(d.join("warehouse"))?;
            }
            let _ = std::fs::remove_dir_all(d.join("duckdb"));
            std::fs::create_dir_all(&d)?;
            (None, d)
        }
        None => {
            let t = tempfile::Builder::new().prefix(prefix).tempdir()?;
            let d = t.path().to_path_buf();
            (Some(t), d)
        }
    };
    // results of an earlier run
    for entry in std::fs::read_dir(&dir)?.flatten() {
        if entry
            .file_name()
            .to_string_lossy()
            .ends_with(".result.json")
        {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    Ok((tmp, dir))
}
