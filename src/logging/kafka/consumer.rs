//! The at-least-once consumer loop ([`consume`]) and `weft log-ingest` ([`ingest`]): the
//! topic into the raw log table, offsets committed after each written batch.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::Message as _;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::*;

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
    /// Where to start per partition, overriding the group's committed offsets (partitions
    /// not listed start at the beginning); the partitions are then assigned, not subscribed.
    pub start: Option<BTreeMap<i32, i64>>,
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
            start: None,
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
    if let Some(start) = &opts.start {
        let mut tpl = TopicPartitionList::new();
        for p in &partitions {
            let at = match start.get(p) {
                Some(o) => {
                    next.insert(*p, *o);
                    Offset::Offset(*o)
                }
                None => Offset::Beginning,
            };
            tpl.add_partition_offset(&opts.topic, *p, at)
                .map_err(|e| kafka_error(what.clone(), e, "report this as a bug"))?;
        }
        tracing::debug!(topic = %opts.topic, start = ?next, "reading from the given offsets");
        consumer
            .assign(&tpl)
            .map_err(|e| kafka_error(what.clone(), e, "check the topic name"))?;
    } else if opts.once {
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
                    if !opts.once && opts.start.is_none() {
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
