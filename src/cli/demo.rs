//! `weft demo`: generates a realistic sample warehouse in a fresh folder, runs the
//! `dataflows/` configs that this version computes, and prints what it computed.

use std::path::{Path, PathBuf};

use clap::Args;

use super::progress;
use crate::config::{conf_files, load_conf, Conf};
use crate::demo::generate::{generate, DemoSpec};
use crate::error::{Error, Result};
use crate::join::{backfill_join, plan::JoinPlan, JoinOptions};
use crate::partition::Ds;
use crate::sql::Engine;
use crate::staging::{self, StagingOptions};
use crate::warehouse::{TableName, Warehouse};

const MARKER: &str = ".weft-demo";

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Folder to create the demo in (its warehouse is <DIR>/warehouse). An earlier demo
    /// folder is replaced; any other non-empty folder is refused.
    #[arg(long, default_value = "weft-demo")]
    pub dir: PathBuf,
    /// The compiled Chronon configs to run.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/dataflows/production"))]
    pub dataflows: PathBuf,
    /// Days of data to generate, starting 2026-01-01.
    #[arg(long, default_value_t = 59)]
    pub days: i32,
    /// Checkout events (left rows) per day.
    #[arg(long, default_value_t = 500)]
    pub checkouts_per_day: usize,
    /// Timely worker threads.
    #[arg(long, default_value_t = 1)]
    pub workers: usize,
}

/// Configs the demo runs, in order (relative to the dataflows folder).
const RUN: &[&str] = &[
    "staging_queries/risk/driver_table.v1",
    "joins/risk/checkout.v1",
    "joins/risk/checkout.snapshot_v1",
];

fn prepare_dir(dir: &Path) -> Result<()> {
    if dir.exists() {
        let empty = std::fs::read_dir(dir)
            .map(|mut d| d.next().is_none())
            .unwrap_or(false);
        if dir.join(MARKER).exists() {
            std::fs::remove_dir_all(dir).map_err(|e| {
                Error::io(
                    format!("removing the previous demo in {}", dir.display()),
                    e,
                )
            })?;
        } else if !empty {
            return Err(Error::Usage(format!(
                "{} exists and is not a weft demo folder; pass --dir with a new folder name",
                dir.display()
            )));
        }
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    std::fs::write(dir.join(MARKER), "created by `weft demo`\n")
        .map_err(|e| Error::io("writing demo marker", e))
}

pub fn run(a: DemoArgs) -> Result<()> {
    if !a.dataflows.is_dir() {
        return Err(Error::NotFound {
            what: format!("compiled configs folder {}", a.dataflows.display()),
            fix: "run from the weft repository, or pass --dataflows <repo>/dataflows/production"
                .into(),
        });
    }
    prepare_dir(&a.dir)?;
    let wh = Warehouse::open(a.dir.join("warehouse"))?;
    let spec = DemoSpec {
        end: Ds::parse("2026-01-01")?.shift(a.days.max(1) - 1),
        checkouts_per_day: a.checkouts_per_day,
        ..DemoSpec::default()
    };
    let started = std::time::Instant::now();

    let pb = progress::spinner("generating data");
    let summary = generate(&wh, &spec, &|m| pb.set_message(m.to_string()))?;
    pb.finish_and_clear();
    println!(
        "1. Generated raw tables {} .. {} in {}:",
        spec.start,
        spec.end,
        wh.root().display()
    );
    for t in &summary {
        println!(
            "   {:<34} {:>3} partitions {:>9} rows",
            t.table, t.partitions, t.rows
        );
    }

    let engine = Engine::new(&wh)?;
    println!("2. Ran the configs in {}:", a.dataflows.display());
    for rel in RUN {
        let path = a.dataflows.join(rel);
        match load_conf(&path)? {
            Conf::StagingQuery(sq) => {
                let pb = progress::spinner("staging query");
                let r = staging::run(&engine, &sq, &StagingOptions::through(spec.end), &|m| {
                    pb.set_message(m.to_string())
                })?;
                pb.finish_and_clear();
                println!(
                    "   staging query {:<36} -> {} ({} partitions, {} rows)",
                    sq.meta_data.name,
                    r.output,
                    r.written.len(),
                    r.rows
                );
            }
            Conf::Join(join) => {
                let pb = progress::bar(1, "join");
                let r = backfill_join(
                    &engine,
                    &join,
                    &JoinOptions {
                        workers: a.workers,
                        ..JoinOptions::through(spec.end)
                    },
                    &|d, t, m| {
                        pb.set_length(t as u64);
                        pb.set_position(d as u64);
                        pb.set_message(m.to_string());
                    },
                )?;
                pb.finish_and_clear();
                println!(
                    "   join {:<45} -> {} ({} partitions, {} rows)",
                    join.meta_data.name,
                    r.output,
                    r.written.len(),
                    r.left_rows
                );
            }
            Conf::GroupBy(_) => {}
        }
        engine.refresh()?;
    }
    let pending: Vec<String> = conf_files(&a.dataflows.join("joins"))?
        .into_iter()
        .filter_map(|f| match load_conf(&f) {
            Ok(Conf::Join(j)) => JoinPlan::new(&j).err().map(|e| {
                let (first, more) = match e {
                    Error::Many(v) => (v[0].to_string(), v.len() - 1),
                    other => (other.to_string(), 0),
                };
                let first = first
                    .split_once(": at ")
                    .map(|(_, r)| r.to_string())
                    .unwrap_or(first);
                let more = if more > 0 {
                    format!(" (+{more} more)")
                } else {
                    String::new()
                };
                format!("     {:<36} {first}{more}", j.meta_data.name)
            }),
            _ => None,
        })
        .collect();
    if !pending.is_empty() {
        println!("   Not run yet (they need engine features still being built):");
        for p in pending {
            println!("{p}");
        }
    }

    let out = TableName::parse("risk.risk_checkout_v1")?;
    let last = wh.partitions(&out)?.last().copied();
    if let Some(ds) = last {
        let batches = wh.read_partition(&out, ds)?;
        let cols = [
            "event_id",
            "user_id",
            "ts",
            "risk_purchases_v1_amount_cents_sum_7d",
            "risk_purchases_v1_amount_cents_count_7d",
            "risk_page_views_v1_page_count_1d",
        ];
        let sample: Vec<_> = batches
            .iter()
            .take(1)
            .filter_map(|b| {
                let idx: Vec<usize> = cols
                    .iter()
                    .filter_map(|c| b.schema().index_of(c).ok())
                    .collect();
                b.project(&idx)
                    .ok()
                    .map(|p| p.slice(0, p.num_rows().min(5)))
            })
            .collect();
        println!("3. Point-in-time features in {out}, ds={ds} (first rows, some columns):");
        println!(
            "{}",
            arrow::util::pretty::pretty_format_batches(&sample)
                .map_err(|e| Error::arrow("formatting", e))?
        );
    }
    println!("Done in {:.1}s. Explore:", started.elapsed().as_secs_f64());
    let w = wh.root().display();
    println!("   weft --warehouse {w} tables");
    println!("   weft --warehouse {w} show risk.risk_checkout_v1");
    println!("   duckdb -c \"SELECT * FROM read_parquet('{w}/risk/risk_checkout_v1/*/*.parquet', hive_partitioning=true) LIMIT 5\"");
    Ok(())
}
