//! Logging of served responses (chronon-semantics §5): what a fetch logs, the sinks that carry
//! log records (a local file log stream by default, Kafka as an option), and turning raw logs
//! into the flattened `<join>_logged` table that log bootstrap reads.
//!
//! - `schema`: logging schemas, their JSON and hash (the one place that writes them);
//! - `codec`: the join codec, Avro key and value records (§5.2);
//! - [`sink`]: the raw log table layout and [`sink::FileLogSink`], the default log stream;
//! - [`logger`]: [`logger::Logger`], the non-blocking queue a server logs through;
//! - [`kafka`]: Kafka as the log stream: [`kafka::KafkaLogSink`] and `weft log-ingest`;
//! - [`columns`]: decoded values as Arrow columns;
//! - [`flatten`]: the log flattener job (§5.6), `weft log-flattener`.

pub(crate) mod codec;
pub mod columns;
pub mod flatten;
pub mod kafka;
pub mod logger;
pub(crate) mod schema;
pub mod sink;

pub use codec::JoinCodec;
pub use logger::{Logger, LoggerConfig, LoggerStats};
pub use schema::LoggingSchema;
pub use sink::{FileLogSink, DEFAULT_LOG_TABLE};

use crate::error::Result;

/// One logged response or control event, as Chronon's `LoggableResponse` (§5.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggableResponse {
    /// Avro-encoded key record (control events: the UTF-8 schema hash).
    pub key_bytes: Vec<u8>,
    /// Avro-encoded value record (control events: the UTF-8 logging schema JSON).
    pub value_bytes: Vec<u8>,
    /// The request name: the join's file path name (`team/join.v1`), or
    /// `SCHEMA_PUBLISH_EVENT` for control events.
    pub name: String,
    pub ts_millis: i64,
    /// `None` for control events.
    pub schema_hash: Option<String>,
}

/// The `name` of schema-publish control events.
pub const SCHEMA_PUBLISH_EVENT: &str = "SCHEMA_PUBLISH_EVENT";

/// Where log records go. `send` may buffer; `flush` makes everything sent so far durable
/// (written to files, or acknowledged by the broker).
pub trait LogSink: Send + Sync + 'static {
    fn send(&self, records: Vec<LoggableResponse>) -> Result<()>;
    fn flush(&self) -> Result<()>;
}

/// The request name a join is fetched and logged under: `metaData.name` with its first `.`
/// replaced by `/` (Chronon's `nameToFilePath`: `risk.checkout_online.v1` →
/// `risk/checkout_online.v1`).
pub fn request_name(join_name: &str) -> String {
    join_name.replacen('.', "/", 1)
}

#[cfg(test)]
mod tests {
    #[test]
    fn request_names_replace_the_first_dot() {
        assert_eq!(
            super::request_name("risk.checkout_online.v1"),
            "risk/checkout_online.v1"
        );
        assert_eq!(super::request_name("plain"), "plain");
    }
}
