//! The Kafka log sink: served responses produced with `acks=all` and idempotence, every
//! delivery accounted for (see the module doc of [`super`]).

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message as _;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;

use super::*;

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
