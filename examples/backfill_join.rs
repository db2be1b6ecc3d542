//! Using weft as a library: generate a small warehouse, run the driver staging query and the
//! scenario-A join from `dataflows/`, and print a few computed features.
//!
//! Run with `cargo run --example backfill_join`.

use std::path::Path;

use weft::config::load_conf;
use weft::demo::{generate, DemoSpec};
use weft::engine::{Context, Engine, RunOptions};
use weft::partition::Ds;
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
    // One engine hosts both pipelines on one dataflow runtime; stepping them brings each up
    // to date (the staging query first: the join reads its table).
    let mut engine = Engine::new(Context::new(&wh)?);
    for conf in [
        "staging_queries/risk/driver_table.v1",
        "joins/risk/checkout.v1",
    ] {
        engine.install(load_conf(&confs.join(conf))?)?;
    }
    for (id, report) in engine.step_all(&RunOptions::through(spec.end), &|_, _, _| {}) {
        let report = report?;
        println!(
            "{id}: wrote {} partition(s) of {}",
            report.written().len(),
            report.output()
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
