//! `weft log-flattener`: decodes a join's raw logs into `<join output table>_logged` (see
//! [`crate::logging::flatten`]) and prints what was read, written and dropped.

use std::path::{Path, PathBuf};

use clap::Args;

use super::progress;
use crate::config::{load_conf, Conf};
use crate::engine::{Context, Engine, PipelineConf, Report, RunOptions};
use crate::error::{Error, Result};
use crate::logging::DEFAULT_LOG_TABLE;
use crate::partition::Ds;
use crate::warehouse::Warehouse;

#[derive(Debug, Args)]
pub struct LogFlattenerArgs {
    /// Compiled join config (under production/joins). Its metaData.samplePercent must be set:
    /// joins without it are not logged, and the flattener says so and does nothing.
    #[arg(long)]
    pub conf: PathBuf,
    /// Last partition to flatten (yyyy-MM-dd). Default: yesterday (UTC), the last complete day.
    #[arg(long = "end-ds")]
    pub end_ds: Option<String>,
    /// The raw log table the servers write (columns key_base64, value_base64, name, ts_millis,
    /// schema_hash; partitions ds=…/name=…).
    #[arg(long = "log-table", env = "CHRONON_LOG_TABLE", default_value = DEFAULT_LOG_TABLE)]
    pub log_table: String,
    /// Partitions decoded and written per step.
    #[arg(long = "step-days", default_value_t = 30)]
    pub step_days: usize,
    /// Also flatten missing partitions earlier than the first existing output partition (by
    /// default they are skipped, assuming retention removed them).
    #[arg(long = "run-first-hole")]
    pub run_first_hole: bool,
}

pub fn run(warehouse: &Path, a: LogFlattenerArgs) -> Result<()> {
    let join = match load_conf(&a.conf)? {
        Conf::Join(j) => j,
        _ => {
            return Err(Error::Usage(format!(
            "{} is not a join config; the log flattener reads a join's logs (production/joins/…)",
            a.conf.display()
        )))
        }
    };
    let end = match &a.end_ds {
        Some(s) => Ds::parse(s)?,
        None => {
            let y = Ds::today().shift(-1);
            eprintln!("no --end-ds given: flattening up to yesterday, {y}");
            y
        }
    };
    let wh = Warehouse::open_existing(warehouse)?;
    let mut engine = Engine::new(Context::new(&wh)?);
    let id = engine.install(PipelineConf::LogFlattener {
        join,
        log_table: a.log_table.clone(),
    })?;
    let pb = progress::bar(1, "log-flattener");
    let r = engine.step(
        &id,
        &RunOptions {
            start: None,
            end,
            step_days: a.step_days,
            run_first_hole: a.run_first_hole,
            verify_existing: false,
        },
        &progress::follow(&pb),
    );
    pb.finish_and_clear();
    let Report::LogFlattener(r) = r? else {
        unreachable!("a log-flattener pipeline reports a flatten run")
    };
    if let Some(why) = &r.skipped {
        println!("{}: skipped: {why}", r.output);
        return Ok(());
    }
    if r.written.is_empty() {
        println!(
            "{}: nothing to do: every partition of {} logs up to {end} is flattened ({} present)",
            r.output, r.request_name, r.already_present
        );
        return Ok(());
    }
    let (first, last) = (r.written[0], r.written[r.written.len() - 1]);
    println!(
        "{}: wrote {} partition(s) from {first} to {last} from the logs of {} in {}; {} already present",
        r.output,
        r.written.len(),
        r.request_name,
        a.log_table,
        r.already_present
    );
    println!(
        "  rows: {} read, {} written, {} dropped (no schema_hash: {}, undecodable: {})",
        r.rows_in,
        r.rows_out,
        r.rows_in - r.rows_out,
        r.null_hash,
        r.undecodable
    );
    for e in &r.undecodable_examples {
        println!("    undecodable: {e}");
    }
    if r.bad_control_events > 0 {
        println!(
            "  {} control event(s) ignored: not a base64 UTF-8 hash and schema",
            r.bad_control_events
        );
    }
    println!("  schema hashes: {}", r.hashes.join(", "));
    let new = if r.new_columns.is_empty() {
        String::new()
    } else {
        format!(" (new: {})", r.new_columns.join(", "))
    };
    println!(
        "  columns: {} -> {}{new}, plus schema_hash and ts",
        r.columns_before, r.columns_after
    );
    Ok(())
}
