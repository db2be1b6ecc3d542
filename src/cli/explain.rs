//! `weft explain`: before a run, what bootstrap covers and what will be computed for each join
//! part; after a run, where each output column's values came from (left, each bootstrap
//! part, the log, computation, or NULL). Optionally the same as JSON for tools.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clap::Args;

use super::progress;
use crate::config::{load_conf, Conf};
use crate::engine::Context;
use crate::engine::{explain, Explain, JoinOptions};
use crate::error::{Error, Result};
use crate::partition::Ds;
use crate::warehouse::Warehouse;

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// Compiled join config (under production/joins).
    #[arg(long)]
    pub conf: PathBuf,
    /// First left partition to explain (default: the left's first, as a backfill).
    #[arg(long = "start-ds")]
    pub start_ds: Option<String>,
    /// Last left partition to explain. Default: yesterday (UTC).
    #[arg(long = "end-ds")]
    pub end_ds: Option<String>,
    /// Also write the explanation as JSON to this file (`-` for standard output only).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Timely worker threads.
    #[arg(long, default_value_t = 1)]
    pub workers: usize,
}

pub fn run(warehouse: &Path, a: ExplainArgs) -> Result<()> {
    let join = match load_conf(&a.conf)? {
        Conf::Join(j) => j,
        _ => {
            return Err(Error::Usage(format!(
                "{} is not a join; explain shows a join's bootstrap coverage and provenance",
                a.conf.display()
            )))
        }
    };
    let end = match &a.end_ds {
        Some(s) => Ds::parse(s)?,
        None => Ds::today().shift(-1),
    };
    let wh = Warehouse::open_existing(warehouse)?;
    let cx = Context::with_workers(&wh, a.workers)?;
    let pb = progress::spinner("matching bootstrap tables");
    let e = explain(
        &cx,
        &join,
        &JoinOptions {
            start: a.start_ds.as_deref().map(Ds::parse).transpose()?,
            ..JoinOptions::through(end)
        },
    )?;
    pb.finish_and_clear();
    let json = serde_json::to_string_pretty(&e).expect("explain serializes");
    match a.json.as_deref() {
        Some(p) if p == Path::new("-") => {
            println!("{json}");
            return Ok(());
        }
        Some(p) => std::fs::write(p, &json)
            .map_err(|err| Error::io(format!("writing {}", p.display()), err))?,
        None => {}
    }
    print!("{}", render(&e));
    Ok(())
}

/// The explanation as text.
pub fn render(e: &Explain) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "join {} -> {}, left partitions {} ({} partitions, {} rows)",
        e.join, e.output, e.range, e.left_partitions, e.left_rows
    );
    if e.bootstrap.is_empty() {
        let _ = writeln!(
            s,
            "no bootstrap parts: every part is computed for every row"
        );
    } else {
        let _ = writeln!(
            s,
            "\nbootstrap parts, highest priority first (matched on keys + ds):"
        );
        for b in &e.bootstrap {
            let _ = writeln!(
                s,
                "  #{} {}{} keys [{}], {} partition(s) in range, supplies {}",
                b.priority,
                b.table,
                if b.log {
                    " (log: coverage per row from schema_hash)"
                } else {
                    ""
                },
                b.keys.join(", "),
                b.partitions,
                if b.fields.is_empty() {
                    "no join field".to_string()
                } else {
                    b.fields.join(", ")
                }
            );
        }
    }
    let _ = writeln!(s, "\nplan, per join part:");
    for p in &e.parts {
        let by: Vec<String> = p
            .covered_by
            .iter()
            .map(|(parts, n)| {
                let names: Vec<String> = parts.iter().map(|x| format!("#{x}")).collect();
                format!("{} {n}", names.join("+"))
            })
            .collect();
        let _ = writeln!(
            s,
            "  {} ({}): {} rows covered{}, {} rows to compute{}{}",
            p.part,
            p.group_by,
            p.covered,
            if by.is_empty() {
                String::new()
            } else {
                format!(" (by {})", by.join(", "))
            },
            p.computed,
            if p.null_keys > 0 {
                format!(
                    ", {} uncovered rows with a NULL key (NULL features)",
                    p.null_keys
                )
            } else {
                String::new()
            },
            if p.computed == 0 && p.covered > 0 {
                " — not computed at all"
            } else {
                ""
            }
        );
        for (c, n) in &p.partial_columns {
            let _ = writeln!(
                s,
                "      {c}: bootstrapped for {n} of {} rows; the part is computed for the rest",
                e.left_rows
            );
        }
    }
    match &e.written {
        Some(w) => {
            let _ = writeln!(
                s,
                "\nwritten output: {} partition(s), {} rows; values by source:",
                e.written_partitions, w.rows
            );
            let width = w.columns.keys().map(|c| c.len()).max().unwrap_or(6).max(6);
            let mut head = format!("  {:<width$} {:>9}", "column", "left");
            for (i, _) in w.bootstrap_parts.iter().enumerate() {
                let _ = write!(head, " {:>9}", format!("#{}", i + 1));
            }
            let _ = write!(head, " {:>9} {:>9}", "computed", "NULL");
            let _ = writeln!(s, "{head}");
            for (c, v) in &w.columns {
                let mut line = format!("  {c:<width$} {:>9}", v.left);
                for i in 0..w.bootstrap_parts.len() {
                    let _ = write!(line, " {:>9}", v.bootstrap.get(i).copied().unwrap_or(0));
                }
                let _ = write!(line, " {:>9} {:>9}", v.computed, v.null);
                let _ = writeln!(s, "{line}");
            }
            for (i, b) in w.bootstrap_parts.iter().enumerate() {
                let _ = writeln!(s, "  #{} = {b}", i + 1);
            }
            if e.written_without_provenance > 0 {
                let _ = writeln!(
                    s,
                    "  ({} more partition(s) were written without provenance)",
                    e.written_without_provenance
                );
            }
        }
        None if e.written_partitions > 0 => {
            let _ = writeln!(
                s,
                "\nwritten output: {} partition(s), written without provenance (a join without bootstrap or external parts)",
                e.written_partitions
            );
        }
        None => {
            let _ = writeln!(s, "\nno output partition of the range is written yet");
        }
    }
    s
}
