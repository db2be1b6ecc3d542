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
//! [`ingest`] (`weft log-ingest`, `weft materialize --kafka`) is **exactly once** into the
//! raw log table: the offsets are stored with the data (file names and a commit record in
//! the table folder) and a run resumes from the warehouse, not from the consumer group; see
//! its module. [`consume`] on its own (used by `weft stream --kafka`) commits a batch's
//! offsets to the group only after the batch was handled: at least once.

use std::time::Duration;

use base64::Engine as _;
use rdkafka::ClientContext;
use serde::{Deserialize, Serialize};

use super::{LogSink, LoggableResponse};
use crate::error::{Error, Result};

mod consumer;
mod ingest;
mod producer;

pub use consumer::{consume, ConsumeOptions, ConsumeReport, Message};
pub use ingest::{committed_offsets, ingest, IngestReport};
pub use producer::{KafkaLogSink, KafkaSinkConfig, KafkaSinkStats};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logging::SCHEMA_PUBLISH_EVENT;

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
