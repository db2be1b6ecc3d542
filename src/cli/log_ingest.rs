//! `weft log-ingest`: consumes the Kafka log topic (records produced by
//! [`crate::logging::kafka::KafkaLogSink`]) into the raw log table that `weft log-flattener`
//! reads, exactly once: the offsets are stored with the data (see
//! [`crate::logging::kafka`]'s ingest module), so a restart resumes from the warehouse.

use std::path::Path;
use std::time::Duration;

use clap::Args;

use crate::error::Result;
use crate::logging::kafka::{ingest, ConsumeOptions, DEFAULT_INGEST_GROUP, DEFAULT_LOG_TOPIC};
use crate::logging::DEFAULT_LOG_TABLE;
use crate::warehouse::Warehouse;

#[derive(Debug, Args)]
pub struct LogIngestArgs {
    /// Kafka bootstrap servers: host:port[,host:port…].
    #[arg(long, value_name = "HOST:PORT", env = "WEFT_KAFKA")]
    pub kafka: String,
    /// The log topic.
    #[arg(long, default_value = DEFAULT_LOG_TOPIC)]
    pub topic: String,
    /// Consumer group, committed for monitoring (a run resumes from the offsets stored in the
    /// raw log table, not from the group).
    #[arg(long, default_value = DEFAULT_INGEST_GROUP)]
    pub group: String,
    /// The raw log table written (namespace.table).
    #[arg(long = "log-table", env = "CHRONON_LOG_TABLE", default_value = DEFAULT_LOG_TABLE)]
    pub log_table: String,
    /// Read the topic to its current end, then exit (instead of running until stopped).
    #[arg(long)]
    pub once: bool,
    /// Records per written batch (one commit each).
    #[arg(long = "batch-records", default_value_t = 10_000)]
    pub batch_records: usize,
    /// The longest a record waits before its batch is written, in milliseconds.
    #[arg(long = "batch-ms", default_value_t = 1_000)]
    pub batch_ms: u64,
    /// With --once: give up when nothing arrives for this many seconds.
    #[arg(long = "idle-timeout-secs", default_value_t = 60)]
    pub idle_timeout_secs: u64,
}

pub fn run(warehouse: &Path, a: LogIngestArgs) -> Result<()> {
    let wh = Warehouse::open(warehouse)?;
    let mut opts = ConsumeOptions::new(&a.kafka, &a.topic, &a.group);
    opts.once = a.once;
    opts.batch_records = a.batch_records.max(1);
    opts.batch_wait = Duration::from_millis(a.batch_ms);
    opts.idle_timeout = Duration::from_secs(a.idle_timeout_secs.max(1));
    if !a.once {
        eprintln!(
            "weft log-ingest: consuming topic `{}` at {} (group `{}`) into {}; Ctrl-C stops (a batch cut short is read again, never twice)",
            a.topic, a.kafka, a.group, a.log_table
        );
    }
    let r = ingest(&wh, &opts, &a.log_table)?;
    println!(
        "weft log-ingest: {} records ({} control events) from topic `{}` at {} written to {}; {} messages skipped (not log records){}",
        r.records,
        r.control_events,
        a.topic,
        a.kafka,
        a.log_table,
        r.bad,
        if r.bad_examples.is_empty() {
            String::new()
        } else {
            format!(", e.g. {}", r.bad_examples.join("; "))
        }
    );
    if r.orphans_removed > 0 {
        println!(
            "weft log-ingest: removed {} file(s) of a batch an earlier run did not finish; their records were read again",
            r.orphans_removed
        );
    }
    Ok(())
}
