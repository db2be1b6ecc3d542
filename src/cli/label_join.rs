//! `weft label-join`: one label run of a join's label part for a `label_ds` (or several), then
//! what it wrote: the label partitions, the labeled tables' days, and what is still missing
//! (immature label sources, feature days not backfilled yet).

use std::path::{Path, PathBuf};

use clap::Args;

use super::progress;
use crate::config::{load_conf, Conf};
use crate::engine::{Context, Engine, PipelineConf};
use crate::error::{Error, Result};
use crate::label::{LabelPlan, LabelReport};
use crate::partition::{Ds, PartitionRange};
use crate::warehouse::Warehouse;

#[derive(Debug, Args)]
pub struct LabelJoinArgs {
    /// Compiled join config with a labelPart (under production/joins).
    #[arg(long)]
    pub conf: PathBuf,
    /// The label date: labels as of the end of this day. Default: yesterday (UTC).
    #[arg(long = "label-ds")]
    pub label_ds: Option<String>,
    /// Also run every label_ds from this day up to --label-ds (one run per day, in order, in
    /// one dataflow: each run after the first is a delta).
    #[arg(long = "from-label-ds")]
    pub from_label_ds: Option<String>,
    /// Timely worker threads, per process in a cluster.
    #[arg(long, default_value_t = 1)]
    pub workers: usize,
    #[command(flatten)]
    pub cluster: super::cluster::ClusterArgs,
}

pub fn run(warehouse: &Path, a: LabelJoinArgs) -> Result<()> {
    let topology = a.cluster.topology(a.workers, || {
        super::cluster::identity(
            "label-join",
            &[
                ("--label-ds", super::cluster::flag(&a.label_ds)),
                ("--from-label-ds", super::cluster::flag(&a.from_label_ds)),
            ],
            std::slice::from_ref(&a.conf),
        )
    })?;
    if !topology.leads() {
        return super::cluster::follow(topology, warehouse);
    }
    let join = match load_conf(&a.conf)? {
        Conf::Join(j) => j,
        _ => {
            return Err(Error::Usage(format!(
                "{} is not a join; label-join runs the labelPart of a join",
                a.conf.display()
            )))
        }
    };
    let last = match &a.label_ds {
        Some(s) => Ds::parse(s)?,
        None => Ds::today().shift(-1),
    };
    let first = a
        .from_label_ds
        .as_deref()
        .map(Ds::parse)
        .transpose()?
        .unwrap_or(last);
    if first > last {
        return Err(Error::Usage(format!(
            "--from-label-ds {first} is after --label-ds {last}"
        )));
    }
    let wh = Warehouse::open_existing(warehouse)?;
    let name = join.meta_data.name.clone();
    let mut engine = Engine::new(Context::with_topology(&wh, topology)?);
    super::cluster::share_fate(engine.context())?;
    let id = engine.install(PipelineConf::Join(join))?;
    let days: Vec<Ds> = PartitionRange::new(first, last).days().collect();
    let bar = progress::bar(days.len() as u64, "label runs");
    for d in days {
        bar.set_message(format!("label_ds={d}"));
        let report = engine.label(&id, d)?;
        bar.suspend(|| print!("{}", render(&name, engine.label_plan(&id), &report)));
        bar.inc(1);
    }
    bar.finish_and_clear();
    super::finish(engine);
    Ok(())
}

/// What one label run did, for people.
pub fn render(join: &str, plan: Option<&LabelPlan>, r: &LabelReport) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let Some(lp) = plan else {
        return s;
    };
    let d = r.label_ds.map(|d| d.to_string()).unwrap_or_default();
    let range = r.label_ds.map(|d| lp.left_range(d));
    let _ = writeln!(
        s,
        "{join}: label_ds={d}, left days {} (offsets {}/{}: label_ds − {} … label_ds − {} days)",
        range.map(|r| r.to_string()).unwrap_or_default(),
        lp.start_offset,
        lp.end_offset,
        lp.start_offset - 1,
        lp.end_offset - 1,
    );
    let _ = writeln!(
        s,
        "  {}: {} partition(s) written{}",
        lp.labels,
        r.written.len(),
        if r.dropped.is_empty() {
            String::new()
        } else {
            format!(", {} dropped (left day gone)", r.dropped.len())
        }
    );
    let _ = writeln!(
        s,
        "  {} and {}: {} day(s) rewritten",
        lp.labeled,
        lp.labeled_latest,
        r.labeled_written.len()
    );
    if !r.missing_left.is_empty() {
        let _ = writeln!(
            s,
            "  note: {} left day(s) of the range do not exist and have no labels: {}",
            r.missing_left.len(),
            list(&r.missing_left)
        );
    }
    for (t, days) in &r.missing_sources {
        let _ = writeln!(
            s,
            "  note: label source {t} lacks {} partition(s) this run reads ({}): those labels are NULL or partial until they land; run label-join again then",
            days.len(),
            list(days)
        );
    }
    if !r.missing_features.is_empty() {
        let _ = writeln!(
            s,
            "  note: {} labelled day(s) have no feature partition yet ({}): run `weft backfill` on the join; the labeled tables pick them up",
            r.missing_features.len(),
            list(&r.missing_features)
        );
    }
    if r.null_key_rows > 0 {
        let _ = writeln!(
            s,
            "  note: {} left row label key(s) are NULL (their labels are NULL)",
            r.null_key_rows
        );
    }
    s
}

fn list(days: &[Ds]) -> String {
    let shown: Vec<String> = days.iter().take(5).map(|d| d.to_string()).collect();
    let more = if days.len() > 5 {
        format!(" and {} more", days.len() - 5)
    } else {
        String::new()
    };
    format!("{}{more}", shown.join(", "))
}
