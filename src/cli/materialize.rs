//! `weft materialize` (the continuous materializer and its `status`) and `weft query` (SQL
//! over the warehouse as of one committed epoch).

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::logging::DEFAULT_LOG_TABLE;
use crate::materialize::http::{router, rows_json, HttpState};
use crate::materialize::state::last_manifest;
use crate::materialize::{default_state_dir, Materializer, Options};
use crate::partition::Ds;
use crate::sql::Session;
use crate::warehouse::Warehouse;

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct MaterializeArgs {
    #[command(subcommand)]
    pub command: Option<MaterializeCommand>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Subcommand)]
pub enum MaterializeCommand {
    /// Print each pipeline's state: from a running materializer (--url) or the last epoch
    /// committed in a state folder.
    Status(StatusArgs),
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Compiled config folder: every staging query, join and GroupBy with backfillStartDate
    /// under it is maintained (offlineSchedule "@never" excluded).
    #[arg(long = "conf-root", default_value = "dataflows/production")]
    pub conf_root: PathBuf,
    /// Maintain only these config files (or folders) instead of the whole --conf-root.
    #[arg(long = "conf")]
    pub conf: Vec<PathBuf>,
    /// State folder: the lock (one materializer per folder) and the epoch manifests.
    /// Default: <warehouse>/.weft-materialize.
    #[arg(long = "state-dir")]
    pub state_dir: Option<PathBuf>,
    /// HTTP address for status, metrics and queries (loopback by default; another address
    /// needs --auth-token or --insecure).
    #[arg(long, default_value = "127.0.0.1:9100")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub access: super::access::AccessArgs,
    /// Seconds between scans of the warehouse (POST /v1/refresh scans at once).
    #[arg(long = "poll-secs", default_value_t = 10)]
    pub poll_secs: u64,
    /// Never compute past this day (default: as far as the inputs allow).
    #[arg(long = "end-ds")]
    pub end_ds: Option<String>,
    /// Timely worker threads shared by every pipeline, per process in a cluster (the output is
    /// the same for any number).
    #[arg(long, default_value_t = 1)]
    pub workers: usize,
    #[command(flatten)]
    pub cluster: super::cluster::ClusterArgs,
    /// Run epochs until nothing is pending, commit, and exit: 0 when every pipeline is caught
    /// up or waiting for inputs, 2 when one is in error.
    #[arg(long)]
    pub once: bool,
    /// The raw log table served responses are logged to (flattened into <join>_logged).
    #[arg(long = "log-table", default_value = DEFAULT_LOG_TABLE)]
    pub log_table: String,
    /// Also consume the Kafka log topic into the raw log table, exactly once (as `weft
    /// log-ingest` does), in this process: logged values reach `<join>_logged` and log
    /// bootstrap without a batch step. A broker that is down is retried with back-off.
    #[arg(long, value_name = "HOST:PORT", env = "WEFT_KAFKA")]
    pub kafka: Option<String>,
    /// The log topic read with --kafka.
    #[arg(long, default_value = crate::logging::kafka::DEFAULT_LOG_TOPIC, requires = "kafka")]
    pub topic: String,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// A running materializer, e.g. http://127.0.0.1:9100.
    #[arg(long)]
    pub url: Option<String>,
    /// A state folder (default: <warehouse>/.weft-materialize).
    #[arg(long = "state-dir")]
    pub state_dir: Option<PathBuf>,
    /// Print the JSON.
    #[arg(long)]
    pub json: bool,
}

/// Kafka log ingestion beside the epochs. With `once`, the topic is read to its end before
/// the first epoch; otherwise a thread consumes it for as long as the process runs, retrying
/// with back-off (1 s doubling to 60 s) while the broker is unreachable.
fn start_ingest(
    wh: &Warehouse,
    brokers: &str,
    topic: &str,
    log_table: &str,
    once: bool,
) -> Result<()> {
    use crate::logging::kafka::{ingest, ConsumeOptions, DEFAULT_INGEST_GROUP};
    let mut opts = ConsumeOptions::new(brokers, topic, DEFAULT_INGEST_GROUP);
    opts.once = once;
    if once {
        let r = ingest(wh, &opts, log_table)?;
        println!(
            "ingested {} log records from topic `{topic}` at {brokers}",
            r.records
        );
        return Ok(());
    }
    let wh = wh.clone();
    let log_table = log_table.to_string();
    std::thread::Builder::new()
        .name("weft-log-ingest".into())
        .spawn(move || {
            let mut wait = Duration::from_secs(1);
            loop {
                match ingest(&wh, &opts, &log_table) {
                    Ok(_) => wait = Duration::from_secs(1),
                    Err(e) => {
                        tracing::warn!(error = %e, retry_in_secs = wait.as_secs(), "Kafka log ingestion failed; retrying");
                        std::thread::sleep(wait);
                        wait = (wait * 2).min(Duration::from_secs(60));
                    }
                }
            }
        })
        .map_err(|e| Error::io("starting the Kafka log ingestion thread", e))?;
    Ok(())
}

/// `weft materialize`.
pub fn run(warehouse: &Path, a: MaterializeArgs) -> Result<()> {
    match a.command {
        Some(MaterializeCommand::Status(s)) => status(warehouse, s),
        None => materialize(warehouse, a.run),
    }
}

fn existing_warehouse(warehouse: &Path) -> Result<Warehouse> {
    Warehouse::open_existing(warehouse)
}

fn materialize(warehouse: &Path, a: RunArgs) -> Result<()> {
    let confs = if a.conf.is_empty() {
        vec![a.conf_root.clone()]
    } else {
        a.conf.clone()
    };
    let topology = a.cluster.topology(a.workers, || {
        super::cluster::identity(
            "materialize",
            &[
                ("--end-ds", super::cluster::flag(&a.end_ds)),
                ("--once", a.once.to_string()),
                ("--log-table", a.log_table.clone()),
            ],
            &confs,
        )
    })?;
    if !topology.leads() {
        return super::cluster::follow(topology, warehouse);
    }
    if !a.once {
        super::access::check(&a.listen, &a.access)?;
    }
    let access = a.access.clone();
    let wh = existing_warehouse(warehouse)?;
    let end_ds = a.end_ds.as_deref().map(Ds::parse).transpose()?;
    let state_dir = a
        .state_dir
        .clone()
        .unwrap_or_else(|| default_state_dir(wh.root()));
    let mut m = Materializer::open(
        &wh,
        Options {
            confs,
            state_dir: state_dir.clone(),
            end_ds,
            topology,
            log_table: a.log_table.clone(),
        },
    )?;
    super::cluster::share_fate(m.engine().context())?;
    if let Some(brokers) = &a.kafka {
        start_ingest(&wh, brokers, &a.topic, &a.log_table, a.once)?;
    }
    if a.once {
        let manifests = m.run_until_idle()?;
        let last = manifests.last().expect("one epoch at least");
        let mut failed = false;
        for mf in &manifests {
            for p in &mf.pipelines {
                if !p.written.is_empty() || !p.rewritten.is_empty() || !p.label_runs.is_empty() {
                    println!(
                        "epoch {}: {}: {} written, {} rewritten{}",
                        mf.epoch,
                        p.name,
                        p.written.len(),
                        p.rewritten.len(),
                        if p.label_runs.is_empty() {
                            String::new()
                        } else {
                            format!(", {} label run(s)", p.label_runs.len())
                        }
                    );
                }
            }
        }
        for mf in &manifests {
            for p in &mf.pipelines {
                if let Some(v) = &p.versioning {
                    println!("epoch {}: {}: {v}", mf.epoch, p.name);
                }
            }
        }
        for p in &last.pipelines {
            if let Some((kind, e)) = &p.error {
                failed = true;
                eprintln!("{}: {kind} error: {e}", p.name);
            } else if let Some(w) = &p.waiting {
                println!("{}: waiting: {w}", p.name);
            }
        }
        println!("committed epoch {} in {}", last.epoch, state_dir.display());
        super::leave_aggregates(m.engine_mut());
        if failed {
            std::process::exit(2);
        }
        return Ok(());
    }

    // continuous: epochs on a timer or on request, HTTP beside them
    let session = Arc::new(Session::new(&wh)?);
    let (tx, rx) = crossbeam_channel::unbounded::<()>();
    let stop = Arc::new(AtomicBool::new(false));
    let state = HttpState {
        shared: m.shared.clone(),
        session: session.clone(),
        refresh: tx.clone(),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::io("starting the HTTP runtime", e))?;
    let listener = rt
        .block_on(tokio::net::TcpListener::bind(a.listen))
        .map_err(|e| Error::io(format!("listening on {}", a.listen), e))?;
    eprintln!(
        "weft materialize: {} pipelines; state in {}; http://{} (GET /, /v1/status, /metrics; POST /v1/query, /v1/refresh)",
        m.engine().pipelines().count(),
        state_dir.display(),
        a.listen
    );
    let stop_http = stop.clone();
    let tx_stop = tx.clone();
    let server = rt.spawn(async move {
        let shutdown = async move {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("signal handler");
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            stop_http.store(true, Ordering::SeqCst);
            let _ = tx_stop.send(());
        };
        axum::serve(listener, super::access::guard(router(state), &access))
            .with_graceful_shutdown(shutdown)
            .await
    });
    while !stop.load(Ordering::SeqCst) {
        let s = session.clone();
        match m.epoch_then(move || s.refresh()) {
            Ok(mf) => {
                for p in &mf.pipelines {
                    if !p.written.is_empty() || !p.rewritten.is_empty() || !p.label_runs.is_empty()
                    {
                        eprintln!(
                            "epoch {}: {}: {} written, {} rewritten, {} label run(s)",
                            mf.epoch,
                            p.name,
                            p.written.len(),
                            p.rewritten.len(),
                            p.label_runs.len()
                        );
                    }
                }
            }
            Err(e) => eprintln!("weft materialize: epoch failed ({} error): {e}", e.kind()),
        }
        // wait for the next scan: the timer or a refresh request
        let _ = rx.recv_timeout(Duration::from_secs(a.poll_secs.max(1)));
        while rx.try_recv().is_ok() {}
    }
    eprintln!("weft materialize: stopping");
    super::leave_aggregates(m.engine_mut());
    let _ = rt.block_on(server);
    Ok(())
}

fn status(warehouse: &Path, a: StatusArgs) -> Result<()> {
    let json: Value = match &a.url {
        Some(url) => {
            let u = format!("{}/v1/status", url.trim_end_matches('/'));
            let resp = ureq::get(&u)
                .call()
                .map_err(|e| Error::external(format!("GET {u}"), e))?;
            resp.into_body()
                .read_json()
                .map_err(|e| Error::external(format!("GET {u}"), e))?
        }
        None => {
            let dir = a
                .state_dir
                .clone()
                .unwrap_or_else(|| default_state_dir(warehouse));
            let m = last_manifest(&dir)?.ok_or_else(|| Error::NotFound {
                what: format!("a committed epoch in {}", dir.display()),
                fix: "run `weft materialize` (or --once) first, or pass --state-dir / --url".into(),
            })?;
            serde_json::to_value(m).expect("manifest serializes")
        }
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&json).expect("json"));
        return Ok(());
    }
    match json["topology"].as_str() {
        Some(t) => println!("epoch {} ({t})", json["epoch"]),
        None => println!("epoch {}", json["epoch"]),
    }
    for p in json["pipelines"].as_array().into_iter().flatten() {
        let state = if !p["error"].is_null() {
            format!("ERROR {}", p["error"])
        } else if p["pending"].as_array().is_some_and(|v| !v.is_empty()) {
            format!("waiting for {}", p["pending"])
        } else if let Some(w) = p["waiting"].as_str() {
            format!("waiting: {w}")
        } else {
            "up to date".into()
        };
        let latest = p["latest_ds"]
            .as_str()
            .or(p["ready_through"].as_str())
            .unwrap_or("—");
        println!(
            "  {:<48} {:<40} latest {latest:<10} {state}",
            p["name"].as_str().unwrap_or(""),
            p["output"].as_str().unwrap_or("")
        );
    }
    Ok(())
}

/// Output formats of `weft query`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    Table,
    Json,
    Jsonl,
    Csv,
    /// Parquet on standard output (a query of the warehouse folder, not --url).
    Parquet,
}

#[derive(Debug, Args)]
pub struct QueryArgs {
    /// The SQL (DataFusion with Spark functions, as everywhere in weft); read-only.
    pub sql: String,
    /// Ask a running materializer (e.g. http://127.0.0.1:9100) instead of reading the
    /// warehouse folder.
    #[arg(long)]
    pub url: Option<String>,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// `weft query`.
pub fn query(warehouse: &Path, a: QueryArgs) -> Result<()> {
    let answer: Value = match &a.url {
        Some(_) if matches!(a.format, Format::Parquet) => {
            return Err(Error::Usage(
                "--format parquet reads the warehouse folder: drop --url (or use --format jsonl with --url)".into(),
            ))
        }
        Some(url) => {
            let u = format!("{}/v1/query", url.trim_end_matches('/'));
            let resp = ureq::post(&u)
                .config()
                .http_status_as_error(false)
                .build()
                .send_json(serde_json::json!({ "sql": a.sql }))
                .map_err(|e| Error::external(format!("POST {u}"), e))?;
            let ok = resp.status().is_success();
            let v: Value = resp
                .into_body()
                .read_json()
                .map_err(|e| Error::external(format!("POST {u}"), e))?;
            if !ok {
                return Err(Error::Usage(
                    v["error"].as_str().unwrap_or("query failed").to_string(),
                ));
            }
            v
        }
        None => {
            let wh = existing_warehouse(warehouse)?;
            let session = Session::new(&wh)?;
            let epoch = last_manifest(&default_state_dir(wh.root()))
                .ok()
                .flatten()
                .map(|m| m.epoch);
            let (schema, batches) = session.query_with_schema(&a.sql, "query")?;
            if let Format::Parquet = a.format {
                let mut w = parquet::arrow::ArrowWriter::try_new(Vec::new(), schema, None)
                    .map_err(|e| Error::parquet("writing the result", e))?;
                for b in &batches {
                    w.write(b).map_err(|e| Error::parquet("writing the result", e))?;
                }
                let bytes = w
                    .into_inner()
                    .map_err(|e| Error::parquet("writing the result", e))?;
                std::io::stdout()
                    .write_all(&bytes)
                    .map_err(|e| Error::io("writing the result", e))?;
                return Ok(());
            }
            if let Format::Table = a.format {
                let shown = if batches.is_empty() {
                    vec![arrow::record_batch::RecordBatch::new_empty(schema.clone())]
                } else {
                    batches.clone()
                };
                println!("{}", super::render::rows(&shown)?);
                println!(
                    "({} rows)",
                    batches.iter().map(|b| b.num_rows()).sum::<usize>()
                );
                return Ok(());
            }
            serde_json::json!({
                "epoch": epoch,
                "columns": schema.fields().iter().map(|f| f.name().clone()).collect::<Vec<_>>(),
                "rows": rows_json(&schema, &batches)?,
            })
        }
    };
    print_answer(&answer, a.format)
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => "NULL".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn print_answer(v: &Value, format: Format) -> Result<()> {
    let cols: Vec<String> = v["columns"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| c.as_str().unwrap_or("").to_string())
        .collect();
    let rows = v["rows"].as_array().cloned().unwrap_or_default();
    let mut out = std::io::stdout().lock();
    let io = |e| Error::io("writing the result", e);
    match format {
        Format::Parquet => unreachable!("written in `query`"),
        Format::Json => {
            writeln!(out, "{}", serde_json::to_string_pretty(v).expect("json")).map_err(io)?
        }
        Format::Jsonl => {
            for r in &rows {
                writeln!(out, "{r}").map_err(io)?;
            }
        }
        Format::Csv => {
            let quote = |s: String| {
                if s.contains([',', '"', '\n']) {
                    format!("\"{}\"", s.replace('"', "\"\""))
                } else {
                    s
                }
            };
            writeln!(
                out,
                "{}",
                cols.iter()
                    .cloned()
                    .map(quote)
                    .collect::<Vec<_>>()
                    .join(",")
            )
            .map_err(io)?;
            for r in &rows {
                let line: Vec<String> = cols.iter().map(|c| quote(cell(&r[c]))).collect();
                writeln!(out, "{}", line.join(",")).map_err(io)?;
            }
        }
        Format::Table => {
            let cells: Vec<Vec<String>> = rows
                .iter()
                .map(|r| cols.iter().map(|c| cell(&r[c])).collect())
                .collect();
            let widths: Vec<usize> = cols
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    cells
                        .iter()
                        .map(|r| r[i].chars().count())
                        .chain([c.len()])
                        .max()
                        .unwrap_or(0)
                })
                .collect();
            let line = |vals: &[String]| {
                vals.iter()
                    .zip(&widths)
                    .map(|(v, w)| format!("{v:<w$}"))
                    .collect::<Vec<_>>()
                    .join(" | ")
            };
            writeln!(out, "{}", line(&cols)).map_err(io)?;
            for r in &cells {
                writeln!(out, "{}", line(r)).map_err(io)?;
            }
            writeln!(out, "({} rows, epoch {})", rows.len(), v["epoch"]).map_err(io)?;
        }
    }
    Ok(())
}
