//! Using weft as a library: generate a small warehouse, run the driver staging query and the
//! scenario-A join from `dataflows/`, and print a few computed features.
//!
//! Run with `cargo run --example backfill_join`.

use std::path::Path;

use weft::config::{load_conf, Conf};
use weft::demo::generate::{generate, DemoSpec};
use weft::join::{backfill_join, JoinOptions};
use weft::partition::Ds;
use weft::sql::Engine;
use weft::staging::{self, StagingOptions};
use weft::warehouse::{TableName, Warehouse};

fn main() -> weft::Result<()> {
    let dir = std::env::temp_dir().join(format!("weft-example-{}", std::process::id()));
    let wh = Warehouse::open(&dir)?;
    let spec = DemoSpec {
        end: Ds::parse("2026-01-07")?,
        users: 50,
        checkouts_per_day: 20,
        ..DemoSpec::default()
    };
    generate(&wh, &spec, &|_| {})?;

    let confs = Path::new(env!("CARGO_MANIFEST_DIR")).join("dataflows/production");
    let engine = Engine::new(&wh)?;
    if let Conf::StagingQuery(sq) = load_conf(&confs.join("staging_queries/risk/driver_table.v1"))?
    {
        staging::run(&engine, &sq, &StagingOptions::through(spec.end), &|_| {})?;
        engine.refresh()?;
    }
    if let Conf::Join(join) = load_conf(&confs.join("joins/risk/checkout.v1"))? {
        let report = backfill_join(
            &engine,
            &join,
            &JoinOptions::through(spec.end),
            &|_, _, _| {},
        )?;
        println!(
            "{}: {} partitions from {} left rows",
            report.output,
            report.written.len(),
            report.left_rows
        );
    }
    let out = TableName::parse("risk.risk_checkout_v1")?;
    let batches = wh.read_partition(&out, spec.end)?;
    let first = batches[0].slice(0, 3.min(batches[0].num_rows()));
    println!(
        "{}",
        arrow::util::pretty::pretty_format_batches(&[first]).expect("printable")
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
