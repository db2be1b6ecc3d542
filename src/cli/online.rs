//! `weft upload`, `weft stream` and `weft serve`: writing serving data into the online store
//! and answering fetches over HTTP.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;

use super::progress;
use crate::config::{load_conf, Conf, GroupBy};
use crate::engine::Context;
use crate::error::{Error, Result};
use crate::logging::logger::{Logger, LoggerConfig};
use crate::logging::sink::FileLogSink;
use crate::online::fetcher::Fetcher;
use crate::online::log_responses::ResponseLogger;
use crate::online::metrics::Metrics;
use crate::online::server::{router, AppState};
use crate::online::store;
use crate::online::stream::Streamer;
use crate::online::upload::upload;
use crate::partition::{Ds, PartitionRange};
use crate::sql::Session;
use crate::warehouse::Warehouse;

/// Where serving data lives.
#[derive(Debug, Args, Clone)]
pub struct StoreArgs {
    /// Online store: `embedded` (a key-value store under <warehouse>/.weft-online, the
    /// default) or `redis://host:port[/db]`.
    #[arg(long = "online-store", env = "WEFT_ONLINE_STORE")]
    pub online_store: Option<String>,
}

#[derive(Debug, Args)]
pub struct UploadArgs {
    /// Compiled GroupBy config (under production/group_bys).
    #[arg(long)]
    pub conf: PathBuf,
    /// The day whose end the uploaded values are as of (yyyy-MM-dd). Default: yesterday.
    #[arg(long)]
    pub ds: Option<String>,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, Args)]
pub struct StreamArgs {
    /// Compiled GroupBy config of a TEMPORAL event GroupBy.
    #[arg(long)]
    pub conf: PathBuf,
    /// A JSON-lines file of source events (objects with the source table's columns),
    /// followed as it grows; the read offset is kept under the warehouse, so a restarted
    /// stream resumes where it stopped.
    #[arg(long, conflicts_with_all = ["replay_start", "replay_end"])]
    pub file: Option<PathBuf>,
    /// Instead of a file: replay the source table's partitions from this day…
    #[arg(long = "replay-start")]
    pub replay_start: Option<String>,
    /// …to this day (e.g. the day after the last upload, to today).
    #[arg(long = "replay-end")]
    pub replay_end: Option<String>,
    /// With --file: read what is there and exit instead of following the file.
    #[arg(long)]
    pub once: bool,
    /// Instead of a file: consume JSON events, one per message, from this Kafka broker
    /// (host:port[,host:port…]); offsets are committed after each store write, and with
    /// --once the stream stops at the topic's end.
    #[arg(long, value_name = "HOST:PORT", requires = "topic", conflicts_with_all = ["file", "replay_start", "replay_end"])]
    pub kafka: Option<String>,
    /// With --kafka: the topic of source events.
    #[arg(long, requires = "kafka")]
    pub topic: Option<String>,
    /// With --kafka: the consumer group (default `weft-stream-<GroupBy name>`).
    #[arg(long, requires = "kafka")]
    pub group: Option<String>,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Folder of compiled configs (with joins/ and group_bys/), e.g. dataflows/production.
    #[arg(long = "conf-root", default_value = "dataflows/production")]
    pub conf_root: PathBuf,
    /// Address to listen on (a non-loopback address needs --auth-token or --insecure).
    #[arg(long, default_value = "127.0.0.1:9000")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub access: super::access::AccessArgs,
    /// Raw log table the served responses of joins with samplePercent are logged to (the
    /// local log stream; `weft log-flattener` reads it).
    #[arg(
        long = "log-table",
        env = "CHRONON_LOG_TABLE",
        default_value = "default.chronon_log_table"
    )]
    pub log_table: String,
    /// Log to this Kafka broker (host:port[,host:port…]) instead of the raw log table:
    /// `weft log-ingest` moves the records into the table (acks=all, idempotent producer).
    #[arg(long = "log-kafka", value_name = "HOST:PORT", env = "WEFT_LOG_KAFKA")]
    pub log_kafka: Option<String>,
    /// With --log-kafka: the log topic.
    #[arg(long = "log-topic", default_value = crate::logging::kafka::DEFAULT_LOG_TOPIC)]
    pub log_topic: String,
    /// Log records buffered in memory; beyond it records are dropped and counted
    /// (weft_log_dropped_total) rather than slowing fetches.
    #[arg(long = "log-buffer", default_value_t = 100_000)]
    pub log_buffer: usize,
    /// Deadline for external-source handlers, in milliseconds.
    #[arg(long = "external-deadline-ms", default_value_t = 200)]
    pub external_deadline_ms: u64,
    #[command(flatten)]
    pub store: StoreArgs,
}

fn group_by(conf: &Path) -> Result<GroupBy> {
    match load_conf(conf)? {
        Conf::GroupBy(g) => Ok(*g),
        _ => Err(Error::Usage(format!(
            "{} is not a GroupBy config (upload and stream take production/group_bys/…)",
            conf.display()
        ))),
    }
}

pub fn upload_cmd(warehouse: &Path, a: UploadArgs) -> Result<()> {
    let gb = group_by(&a.conf)?;
    let ds = match &a.ds {
        Some(s) => Ds::parse(s)?,
        None => Ds::today().shift(-1),
    };
    let wh = Warehouse::open_existing(warehouse)?;
    let cx = Context::new(&wh)?;
    let store = store::open(a.store.online_store.as_deref(), wh.root())?;
    let pb = progress::bar(1, "upload");
    let r = upload(&cx, store.as_ref(), &gb, ds, &progress::follow(&pb))?;
    pb.finish_and_clear();
    println!(
        "{}: uploaded {} keys as of the end of {} ({:?}) to {} dataset {}; {} rows read, {} skipped (NULL key or ts)",
        r.group_by,
        r.keys,
        r.ds,
        r.kind,
        store.describe(),
        r.dataset,
        r.rows,
        r.skipped
    );
    Ok(())
}

pub fn stream_cmd(warehouse: &Path, a: StreamArgs) -> Result<()> {
    let gb = group_by(&a.conf)?;
    let wh = Warehouse::open_existing(warehouse)?;
    let engine = Session::new(&wh)?;
    let store = store::open(a.store.online_store.as_deref(), wh.root())?;
    let mut s = Streamer::new(&engine, store.as_ref(), &gb)?;
    match (&a.file, &a.replay_start) {
        _ if a.kafka.is_some() => {
            let brokers = a.kafka.as_deref().unwrap_or_default();
            let topic = a.topic.as_deref().unwrap_or_default();
            let group = a
                .group
                .clone()
                .unwrap_or_else(|| format!("weft-stream-{}", gb.meta_data.name));
            let mut opts = crate::logging::kafka::ConsumeOptions::new(brokers, topic, &group);
            opts.once = a.once;
            if !a.once {
                eprintln!("weft stream: consuming topic `{topic}` at {brokers} (group `{group}`); Ctrl-C stops (uncommitted events are read again next time)");
            }
            s.follow_kafka(&opts)?;
        }
        (Some(f), _) => loop {
            s.follow_file(f, 10_000)?;
            if a.once {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(500));
        },
        (None, Some(start)) => {
            let start = Ds::parse(start)?;
            let end = a.replay_end.as_deref().map(Ds::parse).transpose()?.unwrap_or(Ds::today());
            s.replay(PartitionRange::new(start, end))?;
        }
        (None, None) => {
            return Err(Error::Usage(
                "give --file <events.jsonl> to follow a stream, or --replay-start D [--replay-end E] to replay source partitions".into(),
            ))
        }
    }
    let r = &s.report;
    println!(
        "{}: {} events read, {} written to {}, {} skipped (NULL key or ts), {} bad lines",
        gb.meta_data.name,
        r.events_read,
        r.events_written,
        store.describe(),
        r.skipped,
        r.bad_lines
    );
    Ok(())
}

pub fn serve_cmd(warehouse: &Path, a: ServeArgs) -> Result<()> {
    super::access::check(&a.listen, &a.access)?;
    if !a.conf_root.join("joins").is_dir() && !a.conf_root.join("group_bys").is_dir() {
        return Err(Error::NotFound {
            what: format!("compiled configs under {}", a.conf_root.display()),
            fix: "pass --conf-root <folder with joins/ and group_bys/> (e.g. dataflows/production)"
                .into(),
        });
    }
    let wh = Warehouse::open_existing(warehouse)?;
    let engine = Session::new(&wh)?;
    let store = store::open(a.store.online_store.as_deref(), wh.root())?;
    let described = store.describe();
    let mut fetcher = Fetcher::new(engine, store, &a.conf_root);
    fetcher.registry.deadline = std::time::Duration::from_millis(a.external_deadline_ms);
    let fetcher = Arc::new(fetcher);
    let (sink, log_dest): (Box<dyn crate::logging::LogSink>, String) = match &a.log_kafka {
        Some(brokers) => {
            use crate::logging::kafka::{KafkaLogSink, KafkaSinkConfig};
            let k = KafkaLogSink::new(KafkaSinkConfig::new(brokers).topic(&a.log_topic))?;
            if let Err(e) = k.check(std::time::Duration::from_secs(10)) {
                eprintln!("weft serve: warning: {e}; log records are retried and counted as lost to sink errors until this is fixed");
            }
            (
                Box::new(k),
                format!("Kafka topic `{}` at {brokers}", a.log_topic),
            )
        }
        None => (
            Box::new(FileLogSink::new(wh.clone(), &a.log_table)?),
            a.log_table.clone(),
        ),
    };
    let logger = Arc::new(Logger::new(
        sink,
        LoggerConfig {
            capacity: a.log_buffer,
            ..LoggerConfig::default()
        },
    ));
    let responses = Arc::new(ResponseLogger::new(logger.clone()));
    let log_hook = responses.clone();
    let stats_logger = logger.clone();
    let stats_responses = responses.clone();
    let state = AppState {
        fetcher: fetcher.clone(),
        metrics: Arc::new(Metrics::default()),
        on_join: Some(Arc::new(move |f, reqs, fetched, now| {
            log_hook.log(f, reqs, fetched, now)
        })),
        extra_metrics: Some(Arc::new(move || {
            let st = stats_logger.stats();
            vec![
                (
                    "weft_log_records_written_total",
                    "Log records written to the log stream.",
                    st.written,
                ),
                (
                    "weft_log_records_dropped_total",
                    "Log records dropped: the log buffer was full.",
                    st.dropped,
                ),
                (
                    "weft_log_records_failed_total",
                    "Log records lost to sink errors.",
                    st.failed,
                ),
                (
                    "weft_log_encode_errors_total",
                    "Responses that could not be encoded for logging.",
                    stats_responses
                        .encode_errors
                        .load(std::sync::atomic::Ordering::Relaxed),
                ),
            ]
        })),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("starting the server runtime", e))?;
    let served = rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(a.listen)
            .await
            .map_err(|e| Error::io(format!("listening on {}", a.listen), e))?;
        eprintln!(
            "weft serve: listening on http://{} (configs {}, store {described}); POST /v1/fetch/join/<team>/<join>, GET /health, GET /metrics",
            a.listen,
            a.conf_root.display()
        );
        axum::serve(listener, super::access::guard(router(state), &a.access))
            .with_graceful_shutdown(async {
                // Ctrl-C or SIGTERM (a service manager's stop)
                let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("installing the SIGTERM handler");
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
                eprintln!("weft serve: shutting down (flushing logs)");
            })
            .await
            .map_err(|e| Error::io("serving", e))
    });
    drop(rt);
    // the fetcher's SQL engine owns a runtime: drop it outside the server's
    drop(fetcher);
    let st = logger.shutdown();
    eprintln!(
        "weft serve: logs flushed to {}: {} records written, {} dropped, {} lost to sink errors",
        log_dest, st.written, st.dropped, st.failed
    );
    served
}
