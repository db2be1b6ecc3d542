//! `weft backfill`: runs a join, GroupBy or staging query config for its missing partitions.
//! A GroupBy conf writes its backfill table (per key and day, the values as of the end of the
//! day), computed by the join dataflow.

use std::path::{Path, PathBuf};

use clap::Args;

use super::progress;
use crate::config::{conf_files, load_conf, Conf};
use crate::dataflow::Topology;
use crate::engine::{Context, Engine, Report, RunOptions};
use crate::error::{Error, Result};
use crate::partition::Ds;
use crate::warehouse::Warehouse;

#[derive(Debug, Args)]
pub struct BackfillArgs {
    /// Compiled config file (under production/joins, production/group_bys or
    /// production/staging_queries), or a folder of them: every config in it is backfilled in
    /// dependency order (staging queries before the joins that read them), in one process.
    #[arg(long)]
    pub conf: PathBuf,
    /// Last partition to compute (yyyy-MM-dd). Default: yesterday (UTC).
    #[arg(long = "end-ds")]
    pub end_ds: Option<String>,
    /// First partition to compute, overriding the config's startPartition (a GroupBy's
    /// backfillStartDate).
    #[arg(long = "start-ds")]
    pub start_ds: Option<String>,
    /// Partitions computed per step; each step's output is written before the next starts.
    #[arg(long = "step-days", default_value_t = 30)]
    pub step_days: usize,
    /// Also compute missing partitions earlier than the first existing output partition
    /// (by default they are skipped, as Chronon does, assuming retention removed them).
    /// Joins and staging queries only.
    #[arg(long = "run-first-hole")]
    pub run_first_hole: bool,
    /// Also recompute the partitions of the range that already exist, and rewrite those whose
    /// rows differ (e.g. after a source partition was re-landed). Joins and GroupBy tables.
    #[arg(long)]
    pub force: bool,
    /// Timely worker threads for the dataflow, per process in a cluster (output is identical for
    /// any number).
    #[arg(long, default_value_t = 1)]
    pub workers: usize,
    #[command(flatten)]
    pub cluster: super::cluster::ClusterArgs,
}

pub fn run(warehouse: &Path, a: BackfillArgs) -> Result<()> {
    let topology = a.cluster.topology(a.workers, || {
        super::cluster::identity(
            "backfill",
            &[
                ("--end-ds", super::cluster::flag(&a.end_ds)),
                ("--start-ds", super::cluster::flag(&a.start_ds)),
                ("--step-days", a.step_days.to_string()),
                ("--run-first-hole", a.run_first_hole.to_string()),
                ("--force", a.force.to_string()),
            ],
            std::slice::from_ref(&a.conf),
        )
    })?;
    if !topology.leads() {
        return super::cluster::follow(topology, warehouse);
    }
    let conf = if a.conf.is_dir() {
        None
    } else {
        Some(load_conf(&a.conf)?)
    };
    let end = match &a.end_ds {
        Some(s) => Ds::parse(s)?,
        None => {
            let y = Ds::today().shift(-1);
            eprintln!("no --end-ds given: computing up to yesterday, {y}");
            y
        }
    };
    let start = a.start_ds.as_deref().map(Ds::parse).transpose()?;
    if let Some(s) = start.filter(|s| *s > end) {
        return Err(Error::Usage(format!(
            "--start-ds {s} is after --end-ds {end}: nothing would be computed; swap them"
        )));
    }
    if a.step_days == 0 {
        return Err(Error::Usage("--step-days must be at least 1".into()));
    }
    let opts = RunOptions {
        start,
        end,
        step_days: a.step_days,
        run_first_hole: a.run_first_hole,
        verify_existing: a.force,
    };
    if a.conf.is_dir() {
        return run_folder(warehouse, &a, topology, &opts);
    }
    let conf = conf.expect("a file, loaded above");
    if a.run_first_hole && matches!(conf, Conf::GroupBy(_)) {
        return Err(Error::Usage(
            "--run-first-hole applies to joins and staging queries; a GroupBy backfill skips missing partitions before its first existing one (drop the table's later partitions to recompute them)".into(),
        ));
    }
    let wh = Warehouse::open_existing(warehouse)?;
    let mut engine = Engine::new(Context::with_topology(&wh, topology)?);
    super::cluster::share_fate(engine.context())?;
    let kind = match &conf {
        Conf::Join(_) => "join",
        Conf::GroupBy(_) => "group_by",
        Conf::StagingQuery(_) => "staging query",
    };
    let id = engine.install(conf)?;
    let pb = progress::bar(1, kind);
    let report = engine.step(&id, &opts, &progress::follow(&pb))?;
    pb.finish_and_clear();
    super::finish(engine);
    match report {
        Report::StagingQuery(r) => {
            println!(
                "{}: wrote {} partition(s), {} rows; {} already present",
                r.output,
                r.written.len(),
                r.rows,
                r.skipped_existing
            );
        }
        Report::Join(r) => {
            if let Some(v) = &r.versioning {
                println!("{v}");
            }
            match r.range {
                Some(range) => println!(
                    "{}: range {range}: wrote {} partition(s) from {} left rows; {} already present",
                    r.output,
                    r.written.len(),
                    r.left_rows,
                    r.skipped_existing
                ),
                None => println!("{}: nothing to do", r.output),
            }
            print_stale(&r.stale);
            print_rewritten(&r.rewritten);
            if let (Some(first), Some(last)) = (r.dropped.first(), r.dropped.last()) {
                println!(
                    "  dropped {} output partition(s) whose left partition is gone ({first} .. {last})",
                    r.dropped.len()
                );
            }
            for ((part, nulls), (_, ev)) in r.null_key_rows.iter().zip(&r.events) {
                println!(
                    "  part {part}: {} source rows read, {} skipped (all keys NULL: {}, NULL ts: {}{}); {} left rows with a NULL key got NULL features",
                    ev.rows,
                    ev.skipped(),
                    ev.null_keys,
                    ev.null_ts,
                    bad_ts(ev),
                    nulls
                );
                if let Some((_, g)) = r.from_stored.iter().find(|(p, _)| p == part) {
                    println!(
                        "    started from stored aggregates of the events before {g}: source partitions read from {} on ({} rows read were already in them)",
                        g.shift(-1),
                        ev.stored
                    );
                }
            }
            if let Some(p) = r.reused.first() {
                let list = |v: &[String]| {
                    if v.is_empty() {
                        "none".to_string()
                    } else {
                        v.join(", ")
                    }
                };
                println!(
                    "  rewrote {} existing partition(s) for the new version: recomputed {}; reused {}",
                    r.reused.len(),
                    list(&p.recomputed),
                    list(&p.reused)
                );
            }
            let rows: Vec<String> = r
                .part_rows
                .iter()
                .map(|(p, n)| format!("{p} {n}"))
                .collect();
            println!("  left rows computed per part: {}", rows.join(", "));
            for (i, (table, log, st)) in r.bootstrap.iter().enumerate() {
                println!(
                    "  bootstrap part {} ({table}{}): {} rows read, {} unusable (NULL key: {}, no schema_hash: {})",
                    i + 1,
                    if *log { ", log" } else { "" },
                    st.rows,
                    st.null_keys + st.null_hash,
                    st.null_keys,
                    st.null_hash
                );
            }
            if let Some(p) = r.provenance.as_ref().filter(|_| !r.bootstrap.is_empty()) {
                for c in &p.parts {
                    println!(
                        "  part {}: {} rows covered by bootstrap, {} computed",
                        c.part, c.covered, c.computed
                    );
                }
                println!(
                    "  `weft explain --conf {}` shows where each column's values came from",
                    a.conf.display()
                );
            }
        }
        Report::GroupBy(r) => {
            match r.range {
                Some(range) => println!(
                    "{}: range {range}: wrote {} partition(s), {} rows; {} rows dropped as all-NULL; {} already present",
                    r.output,
                    r.written.len(),
                    r.rows,
                    r.dropped_all_null,
                    r.skipped_existing
                ),
                None => println!("{}: nothing to do", r.output),
            }
            print_rewritten(&r.rewritten);
            let ev = r.source;
            println!(
                "  {} source rows read, {} skipped (NULL key: {}, NULL ts: {}{})",
                ev.rows,
                ev.skipped(),
                ev.null_keys,
                ev.null_ts,
                bad_ts(&ev)
            );
        }
        Report::LogFlattener(_) => {}
    }
    Ok(())
}

/// `weft backfill --conf <folder>`: every config of the folder in one engine, producers first;
/// a config that fails does not stop the others (the run fails at the end, naming them).
fn run_folder(
    warehouse: &Path,
    a: &BackfillArgs,
    topology: Topology,
    opts: &RunOptions,
) -> Result<()> {
    let wh = Warehouse::open_existing(warehouse)?;
    let mut engine = Engine::new(Context::with_topology(&wh, topology)?);
    super::cluster::share_fate(engine.context())?;
    let mut errors = Vec::new();
    for f in conf_files(&a.conf)? {
        let conf = match load_conf(&f) {
            Ok(c) => c,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        if let Conf::GroupBy(g) = &conf {
            if g.backfill_start_date.is_none() && opts.start.is_none() {
                println!(
                    "{}: skipped (a GroupBy without backfillStartDate has no backfill table)",
                    g.meta_data.name
                );
                continue;
            }
        }
        if let Err(e) = engine.install(conf) {
            errors.push(e);
        }
    }
    let pb = progress::bar(1, "backfill");
    let results = engine.step_all(opts, &progress::follow(&pb));
    pb.finish_and_clear();
    super::finish(engine);
    for (id, r) in results {
        match r {
            Ok(r) => println!(
                "{id}: {} written, {} rewritten -> {}",
                r.written().len(),
                r.rewritten().len(),
                r.output()
            ),
            Err(e) => {
                println!("{id}: failed ({} error)", e.kind());
                errors.push(e);
            }
        }
    }
    Error::collect(errors)
}

/// The existing partitions recomputed because their inputs changed since they were written.
fn print_stale(days: &[Ds]) {
    if let (Some(first), Some(last)) = (days.first(), days.last()) {
        println!(
            "  recomputed {} existing partition(s) whose inputs changed since they were written, or that have no input record ({first} .. {last})",
            days.len()
        );
    }
}

/// The existing partitions a run found changed and rewrote.
fn print_rewritten(days: &[Ds]) {
    if let (Some(first), Some(last)) = (days.first(), days.last()) {
        println!(
            "  rewrote {} existing partition(s) whose rows changed ({first} .. {last})",
            days.len()
        );
    }
}

/// `, ts outside years 0001–9999: N` when there are such rows.
fn bad_ts(ev: &crate::join::inputs::EventStats) -> String {
    if ev.bad_ts == 0 {
        String::new()
    } else {
        format!(", ts outside years 0001–9999 (wrong unit?): {}", ev.bad_ts)
    }
}
