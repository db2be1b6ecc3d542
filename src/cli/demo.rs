//! `weft demo`: generates a realistic sample warehouse in a fresh folder, runs the
//! `dataflows/` configs that this version computes, and prints what it computed.

use std::path::{Path, PathBuf};

use clap::Args;

use super::progress;
use crate::config::{conf_files, load_conf, Conf, Join, StagingQuery};
use crate::demo::{generate, DemoSpec};
use crate::engine::{Context, Engine, PipelineConf, Report, RunOptions};
use crate::error::{Error, Result};
use crate::join::bootstrap::assemble::Provenance;
use crate::join::plan::JoinPlan;
use crate::label::LABEL_DS;
use crate::partition::Ds;
use crate::sql::Session;
use crate::warehouse::{TableName, Warehouse};

const MARKER: &str = ".weft-demo";

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Folder to create the demo in (its warehouse is <DIR>/warehouse). An earlier demo
    /// folder is replaced; any other non-empty folder is refused.
    #[arg(long, default_value = "weft-demo")]
    pub dir: PathBuf,
    /// The compiled Chronon configs to run (default: ./dataflows/production, or the
    /// checkout weft was built from when that is missing).
    #[arg(long)]
    pub dataflows: Option<PathBuf>,
    /// Days of data to generate, starting 2026-01-01.
    #[arg(long, default_value_t = 59)]
    pub days: i32,
    /// Checkout events (left rows) per day.
    #[arg(long, default_value_t = 500)]
    pub checkouts_per_day: usize,
    /// Timely worker threads.
    #[arg(long, default_value_t = 1)]
    pub workers: usize,
    /// Land one more day in an existing demo warehouse (every raw table gets its next
    /// partition; nothing is computed): what `weft materialize` then picks up.
    #[arg(long = "append-day")]
    pub append_day: bool,
}

/// Configs the demo runs, in order (relative to the dataflows folder). Joins not listed are
/// printed with the reason they are not run ([`why_not_run`]).
const RUN: &[&str] = &[
    // A: a brand-new feature set
    "staging_queries/risk/driver_table.v1",
    "joins/risk/checkout.v1",
    "joins/risk/checkout.snapshot_v1",
    // C: next model version, v1's production features carried over by bootstrap
    "joins/risk/checkout.v2",
    // D: new driver segment, v1's rows bootstrapped
    "staging_queries/risk/driver_table.v2",
    "joins/risk/checkout.expanded_v1",
    // E: another team reuses v1's purchase features
    "joins/growth/user_engagement.v1",
    // G: legacy pipeline features up to its cutoff
    "staging_queries/risk/driver_table.legacy_union_v1",
    "joins/risk/checkout_legacy.v1",
    // join derivations
    "joins/risk/checkout_derived.v1",
];

/// Label joins the demo runs after the feature joins: their feature backfill, then the label
/// runs a `@weekly` schedule makes over the demo's last two weeks (`label_ds` = the last day
/// − 7 and the last day, so every label window has matured by the end of the data).
const LABELS: &[&str] = &[
    // I: entity labels (checkout outcomes snapshot of label_ds), offsets 30/10
    "joins/risk/checkout_labels.v1",
    // J: aggregated labels (refunds summed over the 7 days from the left day), offsets 7/7
    "joins/risk/checkout_labels.v2",
];

/// What the label runs of one join wrote, for the summary.
struct LabelSummary {
    join: String,
    labels: String,
    labeled: String,
    labeled_latest: String,
    offsets: (i32, i32),
    row_identifier: Vec<String>,
    /// Per run: `label_ds`, its left range, label partitions written.
    runs: Vec<(Ds, crate::partition::PartitionRange, usize)>,
    /// Label source partitions not there yet, over every run.
    missing: Vec<String>,
}

/// Where a bootstrap join's values came from, for the summary.
struct BootSummary {
    join: String,
    conf: &'static str,
    parts: Vec<String>,
    provenance: Provenance,
}

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

/// `--append-day`: the demo's next day of raw data, generated as a longer demo would have it.
fn append_day(a: &DemoArgs, dataflows: &Path) -> Result<()> {
    let root = a.dir.join("warehouse");
    if !a.dir.join(MARKER).exists() || !root.is_dir() {
        return Err(Error::NotFound {
            what: format!("a demo warehouse in {}", a.dir.display()),
            fix: "run `weft demo` first (or pass its --dir)".into(),
        });
    }
    let wh = Warehouse::open(&root)?;
    let checkouts = TableName::parse("data.checkouts")?;
    let last = *wh
        .partitions(&checkouts)?
        .last()
        .ok_or_else(|| Error::NotFound {
            what: format!("partitions of {checkouts} in {}", root.display()),
            fix: "run `weft demo` first".into(),
        })?;
    let next = last.shift(1);
    let spec = DemoSpec {
        end: next,
        checkouts_per_day: a.checkouts_per_day,
        ..DemoSpec::default()
    };
    crate::demo::append_days(
        &wh,
        &spec,
        crate::partition::PartitionRange::new(next, next),
        &|_| {},
    )?;
    println!("landed {next} in every raw table of {}", root.display());
    println!(
        "   weft --warehouse {} materialize --conf-root {} --once",
        root.display(),
        dataflows.display()
    );
    Ok(())
}

pub fn run(a: DemoArgs) -> Result<()> {
    let dataflows = a.dataflows.clone().unwrap_or_else(|| {
        let here = PathBuf::from("dataflows/production");
        if here.is_dir() {
            here
        } else {
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/dataflows/production"))
        }
    });
    run_with(&a, &dataflows)
}

fn run_with(a: &DemoArgs, dataflows: &Path) -> Result<()> {
    if !dataflows.is_dir() {
        return Err(Error::NotFound {
            what: format!("compiled configs folder {}", dataflows.display()),
            fix: "run from the weft repository, or pass --dataflows <repo>/dataflows/production"
                .into(),
        });
    }
    if a.append_day {
        return append_day(a, dataflows);
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

    let mut eng = Engine::new(Context::with_workers(&wh, a.workers)?);
    println!("2. Ran the configs in {}:", dataflows.display());
    let mut ran = Vec::new();
    let mut boots = Vec::new();
    for rel in RUN {
        let path = dataflows.join(rel);
        let conf = load_conf(&path)?;
        let join = match &conf {
            Conf::Join(j) => Some(j.clone()),
            _ => None,
        };
        let id = eng.install(conf)?;
        let pb = progress::bar(1, "pipeline");
        let report = eng.step(&id, &RunOptions::through(spec.end), &progress::follow(&pb))?;
        pb.finish_and_clear();
        match report {
            Report::StagingQuery(r) => {
                let Some((_, PipelineConf::StagingQuery(sq))) =
                    eng.pipelines().find(|(i, _)| **i == id)
                else {
                    unreachable!("installed above")
                };
                println!(
                    "   staging query {:<36} -> {} ({} partitions, {} rows)",
                    sq.meta_data.name,
                    r.output,
                    r.written.len(),
                    r.rows
                );
            }
            Report::Join(r) => {
                let join = join.expect("a join pipeline");
                print_join(&join, &r);
                ran.push(join.meta_data.name.clone());
                if let (false, Some(p)) = (join.bootstrap_parts.is_empty(), r.provenance) {
                    boots.push(BootSummary {
                        join: join.meta_data.name.clone(),
                        conf: rel,
                        parts: join
                            .bootstrap_parts
                            .iter()
                            .map(|b| b.table.clone())
                            .collect(),
                        provenance: p,
                    });
                }
            }
            Report::GroupBy(_) | Report::LogFlattener(_) => {}
        }
    }
    let mut label_runs = Vec::new();
    for rel in LABELS {
        let path = dataflows.join(rel);
        let Conf::Join(join) = load_conf(&path)? else {
            continue;
        };
        label_runs.push(run_labels(&mut eng, &join, spec.end)?);
        ran.push(join.meta_data.name.clone());
    }
    let staging: Vec<StagingQuery> = conf_files(&dataflows.join("staging_queries"))?
        .into_iter()
        .filter_map(|f| match load_conf(&f) {
            Ok(Conf::StagingQuery(sq)) => Some(*sq),
            _ => None,
        })
        .collect();
    let mut pending = Vec::new();
    let mut needs_logs = false;
    for f in conf_files(&dataflows.join("joins"))? {
        if let Ok(Conf::Join(j)) = load_conf(&f) {
            if !ran.contains(&j.meta_data.name) {
                let (why, log) = why_not_run(&j, &wh, &staging);
                needs_logs |= log;
                pending.push(format!("     {:<40} {why}", j.meta_data.name));
            }
        }
    }
    if !pending.is_empty() {
        pending.sort();
        println!("   Not run:");
        for p in pending {
            println!("{p}");
        }
        if needs_logs {
            println!("     (a log table is produced by serving the join and flattening its logs: weft serve, then weft log-flattener; see the README's Online serving section)");
        }
    }

    if let Some(first) = boots.first() {
        println!("3. Bootstrap: left rows per join part taken from bootstrap tables vs computed:");
        for b in &boots {
            println!("   {} (bootstrap: {})", b.join, b.parts.join(", "));
            for p in &b.provenance.parts {
                // rows neither covered nor computed: a NULL key, so NULL features
                let null_keys = b.provenance.rows.saturating_sub(p.covered + p.computed);
                println!(
                    "     {:<38} {:>8} bootstrapped {:>8} computed {:>6} NULL key (NULL features)",
                    p.part, p.covered, p.computed, null_keys
                );
            }
        }
        println!(
            "   Values per column and source: weft --warehouse {} explain --conf {} --end-ds {}",
            wh.root().display(),
            dataflows.join(first.conf).display(),
            spec.end
        );
    }

    if !label_runs.is_empty() {
        println!("4. Labels: the outcomes known at label_ds, attached to the feature rows of earlier days:");
        for l in &label_runs {
            println!(
                "   {} (offsets {}/{}: left days label_ds − {} … label_ds − {})",
                l.join,
                l.offsets.0,
                l.offsets.1,
                l.offsets.0 - 1,
                l.offsets.1 - 1
            );
            for (d, range, written) in &l.runs {
                println!(
                    "     label_ds={d}: left days {range}, {written} label partition(s) written"
                );
            }
            let (label_rows, _) = label_counts(eng.context().session(), &l.labels)?;
            let non_null = label_values(eng.context().session(), &l.labels, &l.row_identifier)?;
            let (labeled, labeled_with) = label_counts(eng.context().session(), &l.labeled)?;
            let (latest, latest_with) = label_counts(eng.context().session(), &l.labeled_latest)?;
            println!("     {:<48} {label_rows:>8} rows", l.labels);
            for (c, n) in non_null {
                println!("       {c:<46} {n:>8} non-NULL");
            }
            println!(
                "     {:<48} {labeled:>8} rows, {labeled_with} with a label version",
                l.labeled
            );
            println!(
                "     {:<48} {latest:>8} rows, {latest_with} with the latest label",
                l.labeled_latest
            );
            for m in &l.missing {
                println!("     note: {m}");
            }
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
        println!("5. Point-in-time features in {out}, ds={ds} (first rows, some columns):");
        println!("{}", super::render::rows(&sample)?);
    }
    // as every command that runs joins: the next process starts from them (`--append-day`)
    super::leave_aggregates(&mut eng);
    println!("Done in {:.1}s. Explore:", started.elapsed().as_secs_f64());
    let w = wh.root().display();
    println!("   weft --warehouse {w} tables");
    println!("   weft --warehouse {w} show risk.risk_checkout_v1");
    println!("   duckdb -c \"SELECT * FROM read_parquet('{w}/risk/risk_checkout_v1/*/*.parquet', hive_partitioning=true) LIMIT 5\"");
    Ok(())
}

/// Runs a label join: its feature backfill through `end`, then label runs `end − 7` and `end`
/// on the same runner (the second one a delta of the first).
fn run_labels(eng: &mut Engine, join: &Join, end: Ds) -> Result<LabelSummary> {
    let pb = progress::bar(1, "join");
    let id = eng.install(PipelineConf::Join(Box::new(join.clone())))?;
    let r = match eng.step(&id, &RunOptions::through(end), &progress::follow(&pb))? {
        Report::Join(r) => r,
        _ => unreachable!("a join pipeline reports a join run"),
    };
    pb.finish_and_clear();
    print_join(join, &r);
    let lp = eng
        .label_plan(&id)
        .ok_or_else(|| Error::Usage(format!("{} has no valid label part", join.meta_data.name)))?
        .clone();
    let mut runs = Vec::new();
    let mut missing = Vec::new();
    for d in [end.shift(-7), end] {
        let pb = progress::spinner("label run");
        pb.set_message(format!("{} label_ds={d}", join.meta_data.name));
        let rep = eng.label(&id, d)?;
        pb.finish_and_clear();
        runs.push((d, lp.left_range(d), rep.written.len()));
        for (t, days) in &rep.missing_sources {
            missing.push(format!(
                "label_ds={d}: label source {t} lacks {} partition(s); those labels are NULL or partial",
                days.len()
            ));
        }
    }
    println!(
        "   label join {:<39} -> {} (label_ds {} and {})",
        join.meta_data.name,
        lp.labels,
        end.shift(-7),
        end
    );
    Ok(LabelSummary {
        join: join.meta_data.name.clone(),
        labels: lp.labels.to_string(),
        labeled: lp.labeled.to_string(),
        labeled_latest: lp.labeled_latest.to_string(),
        offsets: (lp.start_offset, lp.end_offset),
        row_identifier: lp.row_identifier.clone(),
        runs,
        missing,
    })
}

/// Rows of a label or labeled table, and those with a label version (`label_ds` not NULL);
/// zeros when the table does not exist (no left day had labels).
fn label_counts(engine: &Session, t: &str) -> Result<(i64, i64)> {
    let name = TableName::parse(t)?;
    if !engine.warehouse().exists(&name) {
        return Ok((0, 0));
    }
    let sql = format!("SELECT COUNT(*) AS n, COUNT(label_ds) AS l FROM {name}");
    let batches = engine.query(&sql, &format!("counting the rows of {name}"))?;
    let get = |i: usize| {
        batches
            .iter()
            .find(|b| b.num_rows() > 0)
            .and_then(|b| {
                b.column(i)
                    .as_any()
                    .downcast_ref::<arrow::array::Int64Array>()
                    .map(|a| a.value(0))
            })
            .unwrap_or(0)
    };
    Ok((get(0), get(1)))
}

/// Non-NULL values per label column of a label table.
fn label_values(
    engine: &Session,
    t: &str,
    row_identifier: &[String],
) -> Result<Vec<(String, i64)>> {
    let name = TableName::parse(t)?;
    let wh = engine.warehouse();
    if !wh.exists(&name) {
        return Ok(vec![]);
    }
    let schema = wh.table_schema_under(&name, &[LABEL_DS.to_string(), "ds".to_string()])?;
    let cols: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .filter(|c| !row_identifier.contains(c) && c != LABEL_DS)
        .collect();
    if cols.is_empty() {
        return Ok(vec![]);
    }
    let select: Vec<String> = cols
        .iter()
        .map(|c| format!("COUNT({})", crate::sql::scan::ident(c)))
        .collect();
    let sql = format!("SELECT {} FROM {name}", select.join(", "));
    let batches = engine.query(&sql, &format!("counting the labels of {name}"))?;
    let Some(b) = batches.iter().find(|b| b.num_rows() > 0) else {
        return Ok(vec![]);
    };
    Ok(cols
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let n = b
                .column(i)
                .as_any()
                .downcast_ref::<arrow::array::Int64Array>()
                .map(|a| a.value(0))
                .unwrap_or(0);
            (c, n)
        })
        .collect())
}

/// Why the demo does not run a join: its plan fails, or a table it reads is
/// not in the demo warehouse (with where that table would come from). The flag tells whether
/// the missing table is a join's log table.
fn why_not_run(j: &Join, wh: &Warehouse, staging: &[StagingQuery]) -> (String, bool) {
    let plan = match JoinPlan::new(j) {
        Ok(p) => p,
        Err(e) => {
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
            return (format!("{first}{more}"), false);
        }
    };
    let left = plan
        .left
        .scan
        .table_name()
        .map(|t| t.to_string())
        .unwrap_or_default();
    let log_ref =
        regex::Regex::new(r"\b[A-Za-z0-9_]+\.[A-Za-z0-9_]+_logged\b").expect("valid regex");
    let tables =
        std::iter::once(left.clone()).chain(j.bootstrap_parts.iter().map(|b| b.table.clone()));
    for t in tables {
        if TableName::parse(&t).is_ok_and(|n| wh.exists(&n)) {
            continue;
        }
        let role = if t == left {
            "its left"
        } else {
            "a bootstrap part"
        };
        if t.ends_with("_logged") {
            return (format!("needs the log table {t} ({role})"), true);
        }
        let by = staging
            .iter()
            .find(|sq| crate::config::naming::output_table(&sq.meta_data).is_ok_and(|o| o == t));
        let Some(sq) = by else {
            return (
                format!("needs {t} ({role}), which the demo does not generate"),
                false,
            );
        };
        let logged = log_ref
            .find(&sq.query)
            .map(|m| m.as_str().to_string())
            .filter(|l| TableName::parse(l).is_ok_and(|n| !wh.exists(&n)));
        return match logged {
            Some(l) => (
                format!(
                    "needs the log table {l} (read by its left, {})",
                    sq.meta_data.name
                ),
                true,
            ),
            None => (
                format!(
                    "needs {t} ({role}; staging query {} is not in the demo)",
                    sq.meta_data.name
                ),
                false,
            ),
        };
    }
    ("not part of the demo run".into(), false)
}

/// One line per join run.
fn print_join(join: &crate::config::Join, r: &crate::engine::JoinReport) {
    println!(
        "   join {:<45} -> {} ({} partitions, {} rows)",
        join.meta_data.name,
        r.output,
        r.written.len(),
        r.left_rows
    );
}
