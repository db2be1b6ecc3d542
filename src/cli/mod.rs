//! The `weft` command line: one subcommand per job, mirroring Chronon's run.py modes.
//! Argument parsing and dispatch live here; each subcommand's work is in its own module.

mod access;
mod backfill;
mod cluster;
mod demo;
mod explain;
mod inspect;
mod label_join;
mod log_flattener;
mod log_ingest;
mod materialize;
mod online;
mod progress;
mod render;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::error::{Error, Result};

/// weft — build and maintain Chronon training data incrementally.
///
/// weft reads the JSON that Chronon's compile.py writes (joins, group_bys, staging_queries)
/// and computes the same tables over a local Parquet warehouse, with one differential
/// dataflow per join.
///
/// Start with `weft demo`, then explore its warehouse with `weft tables` and `weft show
/// <table>` (without --warehouse, commands use ./warehouse, or the demo's
/// ./weft-demo/warehouse when only that exists).
#[derive(Debug, Parser)]
#[command(name = "weft", version, about, long_about, max_term_width = 100)]
pub struct Cli {
    /// Warehouse folder: table `ns.name` is stored at <DIR>/ns/name/ds=YYYY-MM-DD/*.parquet.
    /// Default: ./warehouse, or ./weft-demo/warehouse (the demo's) when only that exists.
    #[arg(long, global = true, env = "WEFT_WAREHOUSE")]
    pub warehouse: Option<PathBuf>,

    /// More logging (-v info, -vv debug); WEFT_LOG=<filter> overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Compute the missing output partitions of a join, GroupBy or staging query.
    ///
    /// A GroupBy conf writes its backfill table: per day D from backfillStartDate (or
    /// --start-ds), one row per key with the values as of the end of D (events before
    /// (D+1) 00:00 in each window; entity GroupBys: snapshot D). Event rows whose values are
    /// all NULL are dropped.
    ///
    /// Partitions that already exist are skipped, so re-running is cheap. A join with unbounded
    /// windows leaves its aggregates in `<warehouse>/.weft-aggregates` when the run ends, so the
    /// next day's run reads only the days its bounded windows reach. Examples:
    ///
    ///   weft backfill --conf dataflows/production/joins/risk/checkout.v1 --end-ds 2026-02-28
    ///
    ///   weft backfill --conf dataflows/production/group_bys/risk/purchases.v1 --start-ds 2026-02-01
    ///
    /// Across two machines (the same command on each, its own --process; process 0 writes):
    ///
    ///   weft backfill --conf dataflows/production/joins --processes 2 --process 0 --addresses 10.0.0.5:2101,10.0.0.6:2101
    Backfill(backfill::BackfillArgs),
    /// Show what bootstrap covers in a join and where its output values came from.
    ///
    /// Before a run: per join part, the rows bootstrap tables cover (and by which parts), the
    /// rows that will be computed, and the columns bootstrapped for only some rows. After a
    /// run: per output column, how many values came from the left, each bootstrap part (the
    /// log last), computation, or are NULL. No GroupBy source is read. Example:
    ///
    ///   weft explain --conf dataflows/production/joins/risk/checkout.v2 --end-ds 2026-02-28
    ///
    /// --json FILE writes the same as JSON (--json - prints only the JSON).
    Explain(explain::ExplainArgs),
    /// Attach labels to a join's rows as of a label date (a label run of the join's labelPart).
    ///
    /// For --label-ds D, the left days [D − (leftStartOffset − 1), D − (leftEndOffset − 1)]
    /// get labels as of the end of D: entity labels from snapshot partition D, joined on the
    /// label keys only; an aggregated label (one window of W days, offsets = W) over the label
    /// events of the W days from the left row's day to D. Offsets count days inclusively, as
    /// Chronon's code does (its docs say D − offset). Output:
    ///
    /// - <join>_labels: partitions label_ds=D/ds=…, the row identifier and label columns;
    ///
    /// - <join>_labeled: the feature table ⟕ every label version (label_ columns, label_ds);
    ///
    /// - <join>_labeled_latest: per day only its latest label version (a feature row on a day
    ///   with labels but without a label of that version is left out, as in Chronon).
    ///
    /// Re-running a label_ds rewrites the same partitions with the same rows. Run the join's
    /// backfill first; labeled tables follow later feature changes. Example:
    ///
    ///   weft label-join --conf dataflows/production/joins/risk/checkout_labels.v1 --label-ds 2026-03-31
    LabelJoin(label_join::LabelJoinArgs),
    /// Decode a join's raw response logs into `<join output table>_logged` for log bootstrap.
    ///
    /// Reads the raw log table's partitions `ds=…/name=<team>/<join>` (the join's name with its
    /// first `.` replaced by `/`, the name clients fetch it by) that the logged table lacks, up
    /// to --end-ds, and decodes each row with the schema its schema_hash names (published in
    /// the name=SCHEMA_PUBLISH_EVENT partitions). Output columns: schema_hash, ts, the key
    /// fields, then the value fields; later schemas append columns, none is ever removed.
    /// Rows without a schema hash or with undecodable bytes are dropped and counted. Joins
    /// without metaData.samplePercent are not logged: nothing is done. Example:
    ///
    ///   weft log-flattener --conf dataflows/production/joins/risk/checkout_online.v1 --end-ds 2026-02-28
    ///
    /// Then bootstrap a join from the log with `bootstrapParts: [{"table": "<ns>.<join>_logged"}]`.
    LogFlattener(log_flattener::LogFlattenerArgs),
    /// Consume the Kafka log topic into the raw log table (what `weft log-flattener` reads).
    ///
    /// Reads the records a Kafka log sink produced (one JSON LoggableResponseBase64 per
    /// message) into the raw log table, exactly once: each file is named after the offsets
    /// of its records and the table folder records the next offset per Kafka partition after
    /// each batch, so a restart resumes from the warehouse (a batch a crash cut short is
    /// deleted and read again). Example:
    ///
    ///   weft log-ingest --kafka 127.0.0.1:9092 --topic chronon_log --once
    LogIngest(log_ingest::LogIngestArgs),
    /// Upload a GroupBy's serving data as of the end of a day to the online store.
    ///
    /// SNAPSHOT (and entity, and no-aggregation) GroupBys upload the GroupBy backfill row of
    /// the day per key (computed if missing): what a fetch returns until the next upload.
    /// TEMPORAL event GroupBys upload partial aggregates (hop slots of each window's tail);
    /// `weft stream` adds the events after the day, so fetches are exact at any time.
    ///
    ///   weft upload --conf dataflows/production/group_bys/risk/purchases.v1 --ds 2026-02-27
    Upload(online::UploadArgs),
    /// Keep a TEMPORAL GroupBy fresh: write its source events into the online store.
    ///
    /// Events are JSON objects with the source table's columns, from a JSON-lines file
    /// (followed as it grows; `--once` to stop at its end), or replayed from the source
    /// table's partitions (`--replay-start D`).
    ///
    /// Or one event per message of a Kafka topic (`--kafka host:port --topic T`; offsets are
    /// committed after each store write; `--once` stops at the topic's end).
    Stream(online::StreamArgs),
    /// Serve joins and GroupBys over HTTP JSON from the online store.
    ///
    ///   weft serve --conf-root dataflows/production --listen 127.0.0.1:9000
    ///
    ///   curl -s localhost:9000/v1/fetch/join/risk/checkout.v1 -H 'content-type: application/json' -d '{"requests":[{"keys":{"user_id":"u00001","merchant_id":"m0001"}}]}'
    ///
    /// Failures are `<part>_exception` entries in a result, never a failed call. GET /health
    /// and GET /metrics (Prometheus) too; Ctrl-C or SIGTERM stops it after flushing the logs.
    Serve(online::ServeArgs),
    /// Keep every pipeline of a config folder up to date as inputs land (the materializer).
    ///
    /// Installs every staging query, join (with its bootstrap and label sides), GroupBy with
    /// backfillStartDate and flattened log table under --conf-root into one engine, then
    /// works in epochs: scan the warehouse, feed what changed (new, re-landed and removed
    /// partitions, landed bootstrap tables, logs) to the running dataflows, write exactly the
    /// partitions that change, run the label dates that matured, commit. A day is computed
    /// once the partitions its config's dependencies name exist. Examples:
    ///
    ///   weft materialize --conf-root dataflows/production --once
    ///
    ///   weft materialize --conf-root dataflows/production --listen 127.0.0.1:9100
    ///
    ///   weft materialize status
    Materialize(materialize::MaterializeArgs),
    /// Run read-only SQL over the warehouse, as of one committed epoch.
    ///
    /// DataFusion SQL with Spark functions, as everywhere in weft; tables are `ns.table`
    /// with `ds` as a column. With --url, a running materializer answers (never half of an
    /// epoch). Example:
    ///
    ///   weft query "SELECT ds, count(*) FROM risk.risk_checkout_v1 GROUP BY ds ORDER BY ds"
    Query(materialize::QueryArgs),
    /// Parse compiled configs and print each one's output table and columns.
    ///
    /// Takes files or folders (e.g. dataflows/production); every problem is reported.
    Validate(inspect::ValidateArgs),
    /// List the warehouse's tables with partition ranges and row counts.
    Tables(inspect::TablesArgs),
    /// Show one table: schema, properties, partitions with row counts, and sample rows.
    Show(inspect::ShowArgs),
    /// Generate a realistic sample warehouse, run the dataflows/ configs on it, and print
    /// what was computed.
    Demo(demo::DemoArgs),
}

/// Set by the `weft` binary, whose process ends when its command returns.
static PROCESS_ENDS_AFTER: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// Tells the commands that the process ends when they return (the `weft` binary says so; a
/// library caller, such as a test, does not), so a finished command may leave its engine's
/// memory to the operating system (a one-process engine is not dropped).
pub fn process_ends_after_command() {
    PROCESS_ENDS_AFTER.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Ends a command's use of its engine, after everything it wrote is in place. In the `weft`
/// binary, a one-process engine is not dropped: freeing a dataflow's state value by value
/// (millions of small allocations) took about 0.2 s of a one-day backfill's 1.5 s, and the
/// operating system takes the whole process's memory back at once. A cluster's processes
/// still shut down together, and a library caller frees everything.
pub(crate) fn finish(mut engine: crate::engine::Engine) {
    leave_aggregates(&mut engine);
    if PROCESS_ENDS_AFTER.load(std::sync::atomic::Ordering::Relaxed)
        && engine.context().topology().processes() == 1
    {
        std::mem::forget(engine);
    }
}

/// Stores every join's aggregates for the next process (`Engine::store_aggregates`). A
/// failure is a warning: what the command wrote stands, and the next run reads all history.
pub(crate) fn leave_aggregates(engine: &mut crate::engine::Engine) {
    for (id, r) in engine.store_aggregates() {
        match r {
            Ok(stored) => {
                for s in stored {
                    tracing::info!(pipeline = %id, part = %s.part, boundary = %s.boundary, keys = s.keys, "stored aggregates for the next run");
                }
            }
            Err(e) => eprintln!(
                "warning: {id}: could not store aggregates for the next run ({e}); the next run reads the whole history instead"
            ),
        }
    }
}

/// Runs the command line.
pub fn run(cli: Cli) -> Result<()> {
    let warehouse = match (&cli.warehouse, &cli.command) {
        (Some(w), Command::Demo(d)) if *w != d.dir.join("warehouse") => {
            return Err(Error::Usage(format!(
                "weft demo writes its warehouse at <--dir>/warehouse ({}), not at --warehouse {} (given on the command line or by WEFT_WAREHOUSE); for a demo elsewhere use `weft demo --dir <folder>`",
                d.dir.join("warehouse").display(),
                w.display(),
            )))
        }
        (Some(w), _) => w.clone(),
        // commands that take no warehouse: nothing to resolve (or say)
        (None, Command::Demo(_) | Command::Validate(_)) => PathBuf::from("warehouse"),
        (None, _) => default_warehouse(),
    };
    dispatch(&warehouse, cli.command)
}

/// `./warehouse`, or the demo's `./weft-demo/warehouse` when only that exists (said on stderr).
fn default_warehouse() -> PathBuf {
    let plain = PathBuf::from("warehouse");
    let demo = PathBuf::from("weft-demo/warehouse");
    if !plain.exists() && demo.is_dir() {
        eprintln!(
            "using the demo's warehouse {} (pass --warehouse to choose another)",
            demo.display()
        );
        return demo;
    }
    plain
}

fn dispatch(warehouse: &std::path::Path, command: Command) -> Result<()> {
    match command {
        Command::Backfill(a) => backfill::run(warehouse, a),
        Command::Explain(a) => explain::run(warehouse, a),
        Command::LabelJoin(a) => label_join::run(warehouse, a),
        Command::LogFlattener(a) => log_flattener::run(warehouse, a),
        Command::LogIngest(a) => log_ingest::run(warehouse, a),
        Command::Upload(a) => online::upload_cmd(warehouse, a),
        Command::Stream(a) => online::stream_cmd(warehouse, a),
        Command::Serve(a) => online::serve_cmd(warehouse, a),
        Command::Materialize(a) => materialize::run(warehouse, a),
        Command::Query(a) => materialize::query(warehouse, a),
        Command::Validate(a) => inspect::validate(a),
        Command::Tables(a) => inspect::tables(warehouse, a),
        Command::Show(a) => inspect::show(warehouse, a),
        Command::Demo(a) => demo::run(a),
    }
}
