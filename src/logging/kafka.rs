//! Kafka as the log stream (chronon-semantics §5): [`KafkaLogSink`] produces served responses
//! to a topic, [`ingest`] (`weft log-ingest`) consumes the topic into the raw log table, and
//! [`consume`] is the at-least-once consumer loop both `weft log-ingest` and `weft stream
//! --kafka` run.
//!
//! # Message format
//!
//! One Kafka message per [`LoggableResponse`] (data events and `SCHEMA_PUBLISH_EVENT` control
//! events alike), on topic [`DEFAULT_LOG_TOPIC`] unless configured:
//!
//! - **key**: the request name as UTF-8 (`team/join.v1`, or `SCHEMA_PUBLISH_EVENT`), so all
//!   records of one join land in one partition, in order;
//! - **value**: Chronon's `LoggableResponseBase64` as compact JSON (see [`encode_payload`]):
//!   `{"keyBase64":"…","valueBase64":"…","name":"team/join.v1","tsMillis":1767225600000,"schemaHash":"AbC123xyz0"}`
//!   — bytes in standard base64 with padding, `schemaHash` `null` for control events;
//! - the Kafka timestamp is the produce time, not `tsMillis` (a log replayed with old
//!   `tsMillis` must not be deleted at once by time-based retention).
//!
//! # Delivery guarantees
//!
//! The producer runs with `acks=all` and `enable.idempotence=true` (no duplicates or
//! reordering from its own retries). [`LogSink::flush`] returns `Ok` only once the broker has
//! acknowledged every record sent before it; a record the broker did not acknowledge within
//! the delivery timeout is counted ([`KafkaSinkStats::failed`]), reported by the `flush` (an
//! error naming the broker and topic, and the fix) and kept for [`KafkaLogSink::take_failed`]
//! — never silently dropped. What the broker acknowledged is its responsibility from then
//! on (with a replicated topic, `acks=all` means every in-sync replica has it).
//!
//! [`consume`] commits a batch's offsets only after the batch was handled (for
//! [`ingest`]: written to the raw log table and flushed), so a crash between the write and
//! the commit re-delivers the batch: **at least once**. Re-delivered records are written
//! again, and the raw log table then holds duplicate rows. The log flattener
//! ([`super::flatten`]) does not deduplicate: duplicates reach `<join>_logged` as duplicate
//! rows (same key, `ts` and values). Log bootstrap keeps one row per matched key
//! ([`crate::dataflow::bootstrap`]), so bootstrapped joins are unaffected; only row counts of
//! the raw and logged tables include the duplicates.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message as _;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use super::sink::FileLogSink;
use super::{LogSink, LoggableResponse, SCHEMA_PUBLISH_EVENT};
use crate::error::{Error, Result};
use crate::warehouse::Warehouse;

/// The default log topic.
pub const DEFAULT_LOG_TOPIC: &str = "chronon_log";
/// The default consumer group of `weft log-ingest`.
pub const DEFAULT_INGEST_GROUP: &str = "weft-log-ingest";
/// Failed records kept for [`KafkaLogSink::take_failed`]; failures beyond it are only counted.
const MAX_KEPT_FAILED: usize = 100_000;
/// Undecodable messages described in an [`IngestReport`].
const BAD_EXAMPLES: usize = 5;

/// A Kafka-side failure: what was being done (naming broker and topic), the cause, the fix.
fn kafka_error(what: impl Into<String>, cause: impl std::fmt::Display, fix: &str) -> Error {
    Error::external(what.into(), format!("{cause}; fix: {fix}"))
}

// ---------------------------------------------------------------------------------------------
// Payload

/// The JSON value of a log message: Chronon's `LoggableResponseBase64`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LoggableResponseBase64 {
    key_base64: String,
    value_base64: String,
    name: String,
    ts_millis: i64,
    schema_hash: Option<String>,
}

/// Encodes a record as a message value: compact JSON
/// `{"keyBase64","valueBase64","name","tsMillis","schemaHash"}` (Chronon's
/// `LoggableResponseBase64`; standard base64 with padding; `schemaHash` may be `null`).
pub fn encode_payload(r: &LoggableResponse) -> Vec<u8> {
    let b64 = base64::engine::general_purpose::STANDARD;
    serde_json::to_vec(&LoggableResponseBase64 {
        key_base64: b64.encode(&r.key_bytes),
        value_base64: b64.encode(&r.value_bytes),
        name: r.name.clone(),
        ts_millis: r.ts_millis,
        schema_hash: r.schema_hash.clone(),
    })
    .expect("a LoggableResponseBase64 always serializes")
}

/// Decodes a message value written by [`encode_payload`]; the error says what is wrong.
pub fn decode_payload(bytes: &[u8]) -> std::result::Result<LoggableResponse, String> {
    let j: LoggableResponseBase64 = serde_json::from_slice(bytes)
        .map_err(|e| format!("not a LoggableResponseBase64 JSON object ({e})"))?;
    let b64 = base64::engine::general_purpose::STANDARD;
    let key_bytes = b64
        .decode(&j.key_base64)
        .map_err(|e| format!("keyBase64 is not base64 ({e})"))?;
    let value_bytes = b64
        .decode(&j.value_base64)
        .map_err(|e| format!("valueBase64 is not base64 ({e})"))?;
    Ok(LoggableResponse {
        key_bytes,
        value_bytes,
        name: j.name,
        ts_millis: j.ts_millis,
        schema_hash: j.schema_hash,
    })
}

// ---------------------------------------------------------------------------------------------
// Producer

/// Settings of a [`KafkaLogSink`].
#[derive(Debug, Clone)]
pub struct KafkaSinkConfig {
    /// `bootstrap.servers`: `host:port[,host:port…]`.
    pub brokers: String,
    /// The log topic (default [`DEFAULT_LOG_TOPIC`]).
    pub topic: String,
    /// How long the producer keeps retrying a record before it counts as failed
    /// (`message.timeout.ms`; default 60 s). A broker restart shorter than this loses nothing.
    pub delivery_timeout: Duration,
    /// More librdkafka settings (e.g. `("linger.ms", "20")`, security settings); they cannot
    /// weaken `acks` or idempotence.
    pub extra: Vec<(String, String)>,
}

impl KafkaSinkConfig {
    pub fn new(brokers: &str) -> KafkaSinkConfig {
        KafkaSinkConfig {
            brokers: brokers.to_string(),
            topic: DEFAULT_LOG_TOPIC.to_string(),
            delivery_timeout: Duration::from_secs(60),
            extra: Vec::new(),
        }
    }
    pub fn topic(mut self, topic: &str) -> KafkaSinkConfig {
        self.topic = topic.to_string();
        self
    }
    pub fn delivery_timeout(mut self, t: Duration) -> KafkaSinkConfig {
        self.delivery_timeout = t;
        self
    }
}

/// Counters of a [`KafkaLogSink`]: `sent == acked + failed + in flight`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KafkaSinkStats {
    /// Records handed to the producer (including ones it refused at once).
    pub sent: u64,
    /// Records the broker acknowledged (`acks=all`).
    pub acked: u64,
    /// Records that were refused or not acknowledged within the delivery timeout.
    pub failed: u64,
}

#[derive(Default)]
struct Counts {
    sent: u64,
    acked: u64,
    failed: u64,
    /// Failures already reported by a `send` or `flush` error.
    reported: u64,
    last_error: Option<String>,
}

#[derive(Default)]
struct Shared {
    counts: Mutex<Counts>,
    done: Condvar,
    failed_records: Mutex<Vec<LoggableResponse>>,
}

impl Shared {
    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }
    fn keep_failed(&self, r: LoggableResponse) {
        let mut kept = self
            .failed_records
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if kept.len() < MAX_KEPT_FAILED {
            kept.push(r);
        }
    }
}

/// Delivery reports and client errors of the sink's producer.
struct SinkContext {
    shared: Arc<Shared>,
}

/// librdkafka's log lines, through `tracing` (target `librdkafka`; `debug` settings such as
/// `("debug", "cgrp")` in the extra settings show more).
fn librdkafka_log(level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
    use rdkafka::config::RDKafkaLogLevel as L;
    match level {
        L::Emerg | L::Alert | L::Critical | L::Error => {
            tracing::error!(target: "librdkafka", fac, "{message}")
        }
        L::Warning => tracing::warn!(target: "librdkafka", fac, "{message}"),
        L::Notice | L::Info => tracing::info!(target: "librdkafka", fac, "{message}"),
        L::Debug => tracing::debug!(target: "librdkafka", fac, "{message}"),
    }
}

impl ClientContext for SinkContext {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        librdkafka_log(level, fac, message);
    }
    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(%error, reason, "Kafka log sink");
        self.shared.counts().last_error = Some(format!("{error}: {reason}"));
    }
}

impl ProducerContext for SinkContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => self.shared.counts().acked += 1,
            Err((e, m)) => {
                // the payload is the record: keep it for take_failed
                if let Some(r) = m.payload().and_then(|p| decode_payload(p).ok()) {
                    self.shared.keep_failed(r);
                }
                let mut c = self.shared.counts();
                c.failed += 1;
                c.last_error = Some(e.to_string());
            }
        }
        self.shared.done.notify_all();
    }
}

/// A [`LogSink`] producing every record to a Kafka topic (see the module doc for the message
/// format and guarantees).
pub struct KafkaLogSink {
    producer: ThreadedProducer<SinkContext>,
    shared: Arc<Shared>,
    config: KafkaSinkConfig,
}

impl KafkaLogSink {
    /// Creates the producer; it connects in the background (see [`KafkaLogSink::check`]).
    pub fn new(config: KafkaSinkConfig) -> Result<KafkaLogSink> {
        if config.brokers.trim().is_empty() || config.topic.trim().is_empty() {
            return Err(Error::Usage(
                "the Kafka log sink needs brokers (host:port) and a topic".into(),
            ));
        }
        let mut cc = ClientConfig::new();
        for (k, v) in &config.extra {
            cc.set(k, v);
        }
        cc.set("bootstrap.servers", &config.brokers)
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set(
                "message.timeout.ms",
                config.delivery_timeout.as_millis().max(1).to_string(),
            );
        let shared = Arc::new(Shared::default());
        let producer = cc
            .create_with_context(SinkContext {
                shared: shared.clone(),
            })
            .map_err(|e| {
                kafka_error(
                    format!("creating the Kafka log producer for {}", config.brokers),
                    e,
                    "check the --kafka broker list and the extra producer settings",
                )
            })?;
        Ok(KafkaLogSink {
            producer,
            shared,
            config,
        })
    }

    /// Fails with a clear error when the broker cannot be reached or the topic does not exist.
    pub fn check(&self, timeout: Duration) -> Result<usize> {
        topic_partitions(
            self.producer.client(),
            &self.config.brokers,
            &self.config.topic,
            timeout,
        )
        .map(|p| p.len())
    }

    pub fn config(&self) -> &KafkaSinkConfig {
        &self.config
    }

    pub fn stats(&self) -> KafkaSinkStats {
        let c = self.shared.counts();
        KafkaSinkStats {
            sent: c.sent,
            acked: c.acked,
            failed: c.failed,
        }
    }

    /// The records that failed so far (up to 100,000 are kept), removed from the sink: to
    /// send again, or to write elsewhere.
    pub fn take_failed(&self) -> Vec<LoggableResponse> {
        std::mem::take(
            &mut *self
                .shared
                .failed_records
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        )
    }

    fn where_(&self) -> String {
        format!(
            "Kafka log topic `{}` at {}",
            self.config.topic, self.config.brokers
        )
    }

    fn fix(&self) -> String {
        format!(
            "check that the broker at {} is running and reachable and that topic `{}` exists \
             (create it, e.g. `kafka-topics.sh --create --topic {}` or `tansu topic create {}`); \
             the records are kept (KafkaLogSink::take_failed); a longer delivery timeout rides \
             out longer broker outages",
            self.config.brokers, self.config.topic, self.config.topic, self.config.topic
        )
    }
}

impl LogSink for KafkaLogSink {
    /// Hands each record to the producer (which batches and retries in the background).
    /// Blocks while the producer's queue is full, up to the delivery timeout.
    fn send(&self, records: Vec<LoggableResponse>) -> Result<()> {
        let deadline = Instant::now() + self.config.delivery_timeout;
        let mut refused: Vec<String> = Vec::new();
        for r in records {
            let payload = encode_payload(&r);
            let mut record = BaseRecord::to(&self.config.topic)
                .key(r.name.as_bytes())
                .payload(&payload);
            loop {
                match self.producer.send(record) {
                    Ok(()) => {
                        self.shared.counts().sent += 1;
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back))
                        if Instant::now() < deadline =>
                    {
                        record = back;
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err((e, _)) => {
                        let mut c = self.shared.counts();
                        c.sent += 1;
                        c.failed += 1;
                        c.reported += 1;
                        drop(c);
                        refused.push(e.to_string());
                        self.shared.keep_failed(r);
                        break;
                    }
                }
            }
        }
        if refused.is_empty() {
            return Ok(());
        }
        Err(kafka_error(
            self.where_(),
            format!(
                "the producer refused {} log records (first: {})",
                refused.len(),
                refused[0]
            ),
            &self.fix(),
        ))
    }

    /// Returns when the broker acknowledged every record sent so far, or with an error when
    /// some were not acknowledged within the delivery timeout (each failure is reported by
    /// exactly one `send` or `flush`).
    fn flush(&self) -> Result<()> {
        let target = self.shared.counts().sent;
        // every record gets a delivery report within message.timeout.ms
        let deadline = Instant::now() + self.config.delivery_timeout + Duration::from_secs(10);
        let _ = self
            .producer
            .flush(deadline.saturating_duration_since(Instant::now()));
        let mut c = self.shared.counts();
        while c.acked + c.failed < target {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            c = self
                .shared
                .done
                .wait_timeout(c, left.min(Duration::from_millis(200)))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        if let Some((code, reason)) = self.producer.client().fatal_error() {
            return Err(kafka_error(
                self.where_(),
                format!("the idempotent producer stopped with a fatal error ({code:?}: {reason}); records sent from now on fail"),
                "re-create the log sink (restart the server); records not acknowledged before are counted as failed",
            ));
        }
        let pending = target.saturating_sub(c.acked + c.failed);
        if pending > 0 {
            let last = c.last_error.clone().unwrap_or_else(|| "no reply".into());
            return Err(kafka_error(
                self.where_(),
                format!("{pending} log records were not acknowledged within {:?} (last error: {last}); they are still queued and a later flush reports them", self.config.delivery_timeout),
                &self.fix(),
            ));
        }
        let unreported = c.failed - c.reported;
        if unreported > 0 {
            c.reported = c.failed;
            let last = c.last_error.clone().unwrap_or_default();
            return Err(kafka_error(
                self.where_(),
                format!("{unreported} log records were not acknowledged by the broker (last error: {last})"),
                &self.fix(),
            ));
        }
        Ok(())
    }
}

impl Drop for KafkaLogSink {
    /// Waits for the records still unacknowledged (dropping the producer would discard them)
    /// and reports any that failed.
    fn drop(&mut self) {
        let unsettled = {
            let c = self.shared.counts();
            c.sent > c.acked + c.failed || c.failed > c.reported
        };
        if unsettled {
            if let Err(e) = self.flush() {
                tracing::error!(error = %e, "closing the Kafka log sink");
            }
        }
    }
}

/// The partitions of `topic`, or an error naming the broker and topic.
fn topic_partitions<C: ClientContext>(
    client: &rdkafka::client::Client<C>,
    brokers: &str,
    topic: &str,
    timeout: Duration,
) -> Result<Vec<i32>> {
    let md = client.fetch_metadata(Some(topic), timeout).map_err(|e| {
        kafka_error(
            format!("reading the metadata of Kafka topic `{topic}` at {brokers}"),
            e,
            "check that the broker is running and that --kafka names it (host:port)",
        )
    })?;
    let t = md.topics().iter().find(|t| t.name() == topic);
    match t {
        Some(t) if t.error().is_none() && !t.partitions().is_empty() => {
            Ok(t.partitions().iter().map(|p| p.id()).collect())
        }
        _ => Err(kafka_error(
            format!("Kafka topic `{topic}` at {brokers}"),
            "the topic does not exist",
            &format!("create it (e.g. `kafka-topics.sh --create --topic {topic}` or `tansu topic create {topic}`), or pass the right --topic"),
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// Consumer

/// What [`consume`] reads and how it batches.
#[derive(Debug, Clone)]
pub struct ConsumeOptions {
    /// `bootstrap.servers`: `host:port[,host:port…]`.
    pub brokers: String,
    pub topic: String,
    /// Consumer group: its committed offsets are where a restarted run resumes.
    pub group: String,
    /// Stop once every partition of the topic has been read to its end.
    pub once: bool,
    /// Records per batch (handled, then committed).
    pub batch_records: usize,
    /// The longest the first record of a batch waits before the batch is handled.
    pub batch_wait: Duration,
    /// With `once`: fail when nothing at all (no record, no end of partition) arrives for this
    /// long (e.g. the broker is unreachable).
    pub idle_timeout: Duration,
    /// More librdkafka consumer settings.
    pub extra: Vec<(String, String)>,
}

impl ConsumeOptions {
    pub fn new(brokers: &str, topic: &str, group: &str) -> ConsumeOptions {
        ConsumeOptions {
            brokers: brokers.to_string(),
            topic: topic.to_string(),
            group: group.to_string(),
            once: false,
            batch_records: 10_000,
            batch_wait: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(60),
            extra: Vec::new(),
        }
    }
}

/// One consumed message.
#[derive(Debug, Clone)]
pub struct Message {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
}

/// What a [`consume`] run did.
#[derive(Debug, Clone, Default)]
pub struct ConsumeReport {
    pub messages: u64,
    pub batches: u64,
    /// Offset commits that failed (the next commit covers them; a restart may re-read).
    pub commit_failures: u64,
    /// Partition offsets committed last (the next offset to read).
    pub committed: BTreeMap<i32, i64>,
}

struct ConsumerCtx {
    last_error: Mutex<Option<String>>,
}

impl ClientContext for ConsumerCtx {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        librdkafka_log(level, fac, message);
    }
    fn error(&self, error: KafkaError, reason: &str) {
        if matches!(error, KafkaError::PartitionEOF(_)) {
            return; // not an error: handled by the poll loop
        }
        tracing::warn!(%error, reason, "Kafka consumer");
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(format!("{error}: {reason}"));
    }
}
impl ConsumerContext for ConsumerCtx {}

/// Consumes `opts.topic` in group `opts.group` from its committed offsets (the earliest
/// offset when none), calling `handle` per batch and committing the batch's offsets only after
/// `handle` returned `Ok` (at least once). An error from `handle` stops the run without
/// committing that batch. Runs until the topic is read to its end with `once`, else forever.
pub fn consume(
    opts: &ConsumeOptions,
    mut handle: impl FnMut(&[Message]) -> Result<()>,
) -> Result<ConsumeReport> {
    let mut cc = ClientConfig::new();
    for (k, v) in &opts.extra {
        cc.set(k, v);
    }
    cc.set("bootstrap.servers", &opts.brokers)
        .set("group.id", &opts.group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "true");
    let what = format!(
        "consuming Kafka topic `{}` at {} (group `{}`)",
        opts.topic, opts.brokers, opts.group
    );
    let consumer: BaseConsumer<ConsumerCtx> = cc
        .create_with_context(ConsumerCtx {
            last_error: Mutex::new(None),
        })
        .map_err(|e| kafka_error(what.clone(), e, "check --kafka (host:port)"))?;
    let timeout = opts.idle_timeout.min(Duration::from_secs(30));
    let partitions = topic_partitions(consumer.client(), &opts.brokers, &opts.topic, timeout)?;
    let mut report = ConsumeReport::default();
    // Per partition, the next offset to read (what a commit records).
    let mut next: BTreeMap<i32, i64> = BTreeMap::new();
    // With `once`: every partition from the group's committed offset (the earliest offset
    // when none) to its end, as the broker's fetch replies report it (end of partition).
    // (The broker's ListOffsets answer is not used: Tansu's can be stale after a restart.)
    if opts.once {
        let mut tpl = TopicPartitionList::new();
        for p in &partitions {
            tpl.add_partition(&opts.topic, *p);
        }
        let committed = consumer.committed_offsets(tpl, timeout).map_err(|e| {
            kafka_error(
                what.clone(),
                format!("reading the group's committed offsets: {e}"),
                "check that the broker is running",
            )
        })?;
        let mut tpl = TopicPartitionList::new();
        for p in &partitions {
            let start = match committed
                .find_partition(&opts.topic, *p)
                .map(|e| e.offset())
            {
                Some(Offset::Offset(o)) => {
                    next.insert(*p, o);
                    Offset::Offset(o)
                }
                _ => Offset::Beginning,
            };
            tpl.add_partition_offset(&opts.topic, *p, start)
                .map_err(|e| kafka_error(what.clone(), e, "report this as a bug"))?;
        }
        tracing::debug!(topic = %opts.topic, start = ?next, "reading every partition to its end");
        // A one-off run reads its partitions without joining the group (no rebalance wait)
        // and commits for the group all the same.
        consumer
            .assign(&tpl)
            .map_err(|e| kafka_error(what.clone(), e, "check the topic name"))?;
    } else {
        consumer
            .subscribe(&[&opts.topic])
            .map_err(|e| kafka_error(what.clone(), e, "check the topic name"))?;
    }

    let mut batch: Vec<Message> = Vec::new();
    let mut batch_started = Instant::now();
    let mut at_end: BTreeSet<i32> = BTreeSet::new();
    let mut committed_upto: BTreeMap<i32, i64> = BTreeMap::new();
    let mut last_progress = Instant::now();
    loop {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                if batch.is_empty() {
                    batch_started = Instant::now();
                }
                at_end.remove(&m.partition());
                next.insert(m.partition(), m.offset() + 1);
                batch.push(Message {
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key().map(<[u8]>::to_vec),
                    payload: m.payload().map(<[u8]>::to_vec),
                });
                last_progress = Instant::now();
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                at_end.insert(p);
                last_progress = Instant::now();
            }
            Some(Err(e)) => {
                tracing::warn!(error = %e, topic = %opts.topic, "Kafka consumer error");
            }
            None => {}
        }
        let caught_up = opts.once && partitions.iter().all(|p| at_end.contains(p));
        if !batch.is_empty()
            && (batch.len() >= opts.batch_records.max(1)
                || batch_started.elapsed() >= opts.batch_wait
                || caught_up)
        {
            handle(&batch)?;
            report.messages += batch.len() as u64;
            report.batches += 1;
            batch.clear();
            let mut tpl = TopicPartitionList::new();
            for (p, o) in &next {
                if committed_upto.get(p) != Some(o) {
                    tpl.add_partition_offset(&opts.topic, *p, Offset::Offset(*o))
                        .map_err(|e| kafka_error(what.clone(), e, "report this as a bug"))?;
                }
            }
            let committed = if tpl.count() == 0 {
                Ok(())
            } else {
                consumer.commit(&tpl, CommitMode::Sync)
            };
            match committed {
                Ok(()) => {
                    committed_upto.extend(next.iter().map(|(p, o)| (*p, *o)));
                    report.committed = committed_upto.clone();
                }
                Err(e) => {
                    report.commit_failures += 1;
                    tracing::warn!(error = %e, topic = %opts.topic, "committing consumer offsets failed; the next commit covers them (a restart before it re-reads the batch)");
                    if !opts.once {
                        // partitions taken away by a rebalance are now another member's
                        if let Ok(assigned) = consumer.assignment() {
                            next.retain(|p, _| assigned.find_partition(&opts.topic, *p).is_some());
                        }
                    }
                    if opts.once && caught_up {
                        return Err(kafka_error(
                            what,
                            format!("committing offsets after the last batch failed ({e}); the batch was written and will be read again by the next run"),
                            "check the broker; duplicates from the re-read are harmless for log bootstrap",
                        ));
                    }
                }
            }
        }
        if caught_up && batch.is_empty() {
            tracing::debug!(topic = %opts.topic, ?next, ?at_end, "read to the end");
            return Ok(report);
        }
        if opts.once && last_progress.elapsed() > opts.idle_timeout {
            let last = consumer
                .context()
                .last_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone()
                .unwrap_or_else(|| "none".into());
            return Err(kafka_error(
                what,
                format!(
                    "nothing arrived for {:?} and partitions {:?} were not read to their end (last error: {last})",
                    opts.idle_timeout,
                    partitions.iter().filter(|p| !at_end.contains(p)).collect::<Vec<_>>(),
                ),
                "check that the broker is running, and that no other consumer of the group holds the partitions",
            ));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// log-ingest

/// What a `weft log-ingest` run wrote.
#[derive(Debug, Clone, Default)]
pub struct IngestReport {
    pub consume: ConsumeReport,
    /// Records written to the raw log table, control events included.
    pub records: u64,
    pub control_events: u64,
    /// Messages that are not log records (skipped, offsets committed past them).
    pub bad: u64,
    /// The first bad messages: partition, offset and what is wrong.
    pub bad_examples: Vec<String>,
}

/// Consumes the log topic into raw log table `log_table` of `wh` through a [`FileLogSink`]:
/// each batch is written and flushed before its offsets are committed (at least once; see the
/// module doc for duplicates). Messages that do not decode are skipped and counted.
pub fn ingest(wh: &Warehouse, opts: &ConsumeOptions, log_table: &str) -> Result<IngestReport> {
    let sink = FileLogSink::new(wh.clone(), log_table)?;
    let mut report = IngestReport::default();
    let consumed = consume(opts, |batch| {
        let mut records = Vec::with_capacity(batch.len());
        for m in batch {
            match m.payload.as_deref().map(decode_payload) {
                Some(Ok(r)) => records.push(r),
                other => {
                    report.bad += 1;
                    if report.bad_examples.len() < BAD_EXAMPLES {
                        let why = match other {
                            Some(Err(e)) => e,
                            _ => "empty message".into(),
                        };
                        report.bad_examples.push(format!(
                            "partition {} offset {}: {why}",
                            m.partition, m.offset
                        ));
                    }
                }
            }
        }
        let n = records.len() as u64;
        let control = records
            .iter()
            .filter(|r| r.name == SCHEMA_PUBLISH_EVENT)
            .count() as u64;
        sink.send(records)?;
        sink.flush()?;
        report.records += n;
        report.control_events += control;
        tracing::info!(records = n, table = log_table, "log records ingested");
        Ok(())
    })?;
    report.consume = consumed;
    if report.bad > 0 {
        tracing::warn!(bad = report.bad, examples = ?report.bad_examples, "messages that are not log records were skipped");
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_round_trips_and_is_chronon_base64_json() {
        let r = LoggableResponse {
            key_bytes: vec![0, 1, 2, 255],
            value_bytes: b"v".to_vec(),
            name: "team/join.v1".into(),
            ts_millis: 1_767_225_600_000,
            schema_hash: Some("AbC123xyz0".into()),
        };
        let p = encode_payload(&r);
        assert_eq!(
            std::str::from_utf8(&p).unwrap(),
            r#"{"keyBase64":"AAEC/w==","valueBase64":"dg==","name":"team/join.v1","tsMillis":1767225600000,"schemaHash":"AbC123xyz0"}"#
        );
        assert_eq!(decode_payload(&p).unwrap(), r);
        let control = LoggableResponse {
            schema_hash: None,
            name: SCHEMA_PUBLISH_EVENT.into(),
            ..r
        };
        let p = encode_payload(&control);
        assert!(std::str::from_utf8(&p)
            .unwrap()
            .ends_with(r#""schemaHash":null}"#));
        assert_eq!(decode_payload(&p).unwrap(), control);
    }

    #[test]
    fn bad_payloads_say_what_is_wrong() {
        assert!(decode_payload(b"{}")
            .unwrap_err()
            .contains("LoggableResponseBase64"));
        let e = decode_payload(
            br#"{"keyBase64":"!!","valueBase64":"","name":"a","tsMillis":1,"schemaHash":null}"#,
        )
        .unwrap_err();
        assert!(e.contains("keyBase64"), "{e}");
    }
}
