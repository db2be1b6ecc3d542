//! Exactly-once ingestion of the log topic into the raw log table (`weft log-ingest`, and
//! `weft materialize --kafka`). The offsets live with the data:
//!
//! - each batch is written as one file per (Kafka partition, `ds`, request name), named
//!   `part-kafka-<topic>-<partition>-<first offset>-<last offset>.parquet` after the batch's
//!   offsets in that Kafka partition;
//! - after every file of a batch is in place, the table's `_weft_kafka_offsets.json` records
//!   the next offset per Kafka partition (replaced atomically): the commit point;
//! - a run starts from that record, not from the consumer group (which is still committed,
//!   for monitoring), after deleting the files of a batch that never reached its commit
//!   point (their first offset is at or past the recorded one). Re-reading such a batch
//!   writes the same records under the same names, so nothing is lost or duplicated.

use std::collections::BTreeMap;

use super::consumer::{consume, ConsumeOptions, ConsumeReport, Message};
use super::{decode_payload, BAD_EXAMPLES};
use crate::error::{Error, Result};
use crate::logging::sink::{raw_batch, raw_file_schema, raw_spec};
use crate::logging::{LoggableResponse, SCHEMA_PUBLISH_EVENT};
use crate::partition::Ds;
use crate::warehouse::{TableName, Warehouse};

const OFFSETS_FILE: &str = "_weft_kafka_offsets.json";

/// What an ingest run wrote.
#[derive(Debug, Clone, Default)]
pub struct IngestReport {
    pub consume: ConsumeReport,
    /// Records written to the raw log table, control events included.
    pub records: u64,
    pub control_events: u64,
    /// Messages that are not log records (skipped and counted; their offsets are passed).
    pub bad: u64,
    /// The first bad messages: partition, offset and what is wrong.
    pub bad_examples: Vec<String>,
    /// Files of a batch that never reached its commit point, deleted before resuming.
    pub orphans_removed: usize,
}

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct OffsetsRecord {
    /// topic → Kafka partition → next offset to read.
    topics: BTreeMap<String, BTreeMap<i32, i64>>,
}

/// The topic as it appears in file names (`[A-Za-z0-9._]`, anything else `_`).
fn topic_tag(topic: &str) -> String {
    topic
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn file_name(topic: &str, partition: i32, first: i64, last: i64) -> String {
    format!(
        "part-kafka-{}-{partition}-{first:020}-{last:020}.parquet",
        topic_tag(topic)
    )
}

/// `(partition, first offset)` of a file this module wrote for `topic`.
fn parse_file_name(topic: &str, name: &str) -> Option<(i32, i64)> {
    let rest = name
        .strip_prefix(&format!("part-kafka-{}-", topic_tag(topic)))?
        .strip_suffix(".parquet")?;
    let mut it = rest.split('-');
    let partition = it.next()?.parse().ok()?;
    let first = it.next()?.parse().ok()?;
    let _last: i64 = it.next()?.parse().ok()?;
    it.next().is_none().then_some((partition, first))
}

/// The next offset to read per Kafka partition of `topic`, as committed in the table.
pub fn committed_offsets(
    wh: &Warehouse,
    table: &TableName,
    topic: &str,
) -> Result<BTreeMap<i32, i64>> {
    Ok(read_record(wh, table)?
        .topics
        .remove(topic)
        .unwrap_or_default())
}

fn read_record(wh: &Warehouse, table: &TableName) -> Result<OffsetsRecord> {
    let path = wh.table_dir(table).join(OFFSETS_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| {
            Error::data(
                &table.to_string(),
                Some(&path.display().to_string()),
                format!("the Kafka offsets record is unreadable: {e}"),
            )
            .with_fix("restore it from a backup; deleting it makes the next ingest re-read the topic from the beginning and delete the files it wrote")
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(OffsetsRecord::default()),
        Err(e) => Err(Error::io(format!("reading {}", path.display()), e)),
    }
}

fn write_record(wh: &Warehouse, table: &TableName, rec: &OffsetsRecord) -> Result<()> {
    let dir = wh.table_dir(table);
    std::fs::create_dir_all(&dir)
        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    let tmp = dir.join(format!(".{OFFSETS_FILE}.tmp-{}", std::process::id()));
    let text = serde_json::to_string_pretty(rec).expect("serializable");
    std::fs::write(&tmp, text)
        .and_then(|_| std::fs::File::open(&tmp)?.sync_all())
        .map_err(|e| Error::io(format!("writing {}", tmp.display()), e))?;
    std::fs::rename(&tmp, dir.join(OFFSETS_FILE))
        .map_err(|e| Error::io(format!("committing {OFFSETS_FILE} in {}", dir.display()), e))
}

/// Deletes the files of `topic` at or past the committed offsets (a batch cut short by a
/// crash). Returns how many.
fn remove_orphans(
    wh: &Warehouse,
    table: &TableName,
    topic: &str,
    committed: &BTreeMap<i32, i64>,
) -> Result<usize> {
    let root = wh.table_dir(table);
    if !root.is_dir() {
        return Ok(0);
    }
    let mut removed = 0;
    let mut stack = vec![root];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir)
            .map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
        for e in entries.flatten() {
            let path = e.path();
            let name = e.file_name().to_string_lossy().to_string();
            if path.is_dir() && !name.starts_with('.') {
                stack.push(path);
            } else if let Some((p, first)) = parse_file_name(topic, &name) {
                if first >= committed.get(&p).copied().unwrap_or(0) {
                    std::fs::remove_file(&path)
                        .map_err(|e| Error::io(format!("removing {}", path.display()), e))?;
                    tracing::warn!(file = %path.display(), "removed the file of a log batch that was not committed (it is read again)");
                    removed += 1;
                }
            }
        }
    }
    Ok(removed)
}

/// Consumes the log topic into raw log table `log_table` of `wh`, exactly once (see the
/// module doc). Messages that do not decode are skipped and counted.
pub fn ingest(wh: &Warehouse, opts: &ConsumeOptions, log_table: &str) -> Result<IngestReport> {
    let table = TableName::parse(log_table)?;
    let mut record = read_record(wh, &table)?;
    let committed = record.topics.get(&opts.topic).cloned().unwrap_or_default();
    let mut report = IngestReport {
        orphans_removed: remove_orphans(wh, &table, &opts.topic, &committed)?,
        ..Default::default()
    };
    let mut opts = opts.clone();
    opts.start = Some(committed);
    let consumed = consume(&opts, |batch| {
        write_batch(wh, &table, &opts.topic, batch, &mut report)?;
        crate::failpoint::hit("log-file-written");
        let next = record.topics.entry(opts.topic.clone()).or_default();
        for m in batch {
            let e = next.entry(m.partition).or_insert(0);
            *e = (*e).max(m.offset + 1);
        }
        write_record(wh, &table, &record)
    })?;
    report.consume = consumed;
    if report.bad > 0 {
        tracing::warn!(bad = report.bad, examples = ?report.bad_examples, "messages that are not log records were skipped");
    }
    Ok(report)
}

/// Writes one batch: a file per (Kafka partition, ds, name), named after its offsets.
fn write_batch(
    wh: &Warehouse,
    table: &TableName,
    topic: &str,
    batch: &[Message],
    report: &mut IngestReport,
) -> Result<()> {
    // (partition, ds, name) → records; per partition the batch's offset span
    let mut groups: BTreeMap<(i32, Ds, String), Vec<LoggableResponse>> = BTreeMap::new();
    let mut span: BTreeMap<i32, (i64, i64)> = BTreeMap::new();
    for m in batch {
        let s = span.entry(m.partition).or_insert((m.offset, m.offset));
        s.0 = s.0.min(m.offset);
        s.1 = s.1.max(m.offset);
        match m.payload.as_deref().map(decode_payload) {
            Some(Ok(r)) => {
                report.records += 1;
                if r.name == SCHEMA_PUBLISH_EVENT {
                    report.control_events += 1;
                }
                groups
                    .entry((m.partition, Ds::of_millis(r.ts_millis), r.name.clone()))
                    .or_default()
                    .push(r);
            }
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
    for ((p, ds, name), records) in groups {
        let (first, last) = span[&p];
        let b = raw_batch(&records, table)?;
        wh.put_named_file(
            table,
            &raw_spec(ds, &name),
            &file_name(topic, p, first, last),
            raw_file_schema(),
            &[b],
        )?;
    }
    tracing::info!(records = batch.len(), table = %table, "log records ingested");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_round_trip_and_ignore_other_topics() {
        let n = file_name("chronon.logs/v1", 3, 10, 42);
        assert_eq!(parse_file_name("chronon.logs/v1", &n), Some((3, 10)));
        assert_eq!(parse_file_name("other", &n), None);
        assert_eq!(
            parse_file_name("chronon.logs/v1", "part-0001-abc.parquet"),
            None
        );
    }

    #[test]
    fn orphans_are_the_files_past_the_committed_offsets() {
        let dir = tempfile::tempdir().unwrap();
        let wh = Warehouse::open(dir.path()).unwrap();
        let t = TableName::parse("default.logs").unwrap();
        let r = LoggableResponse {
            key_bytes: vec![1],
            value_bytes: vec![2],
            name: "j.v1".into(),
            ts_millis: 1_767_225_600_000,
            schema_hash: Some("h".into()),
        };
        let b = raw_batch(&[r], &t).unwrap();
        let spec = raw_spec(Ds::of_millis(1_767_225_600_000), "j.v1");
        for (first, last) in [(0, 4), (5, 9)] {
            wh.put_named_file(
                &t,
                &spec,
                &file_name("logs", 0, first, last),
                raw_file_schema(),
                std::slice::from_ref(&b),
            )
            .unwrap();
        }
        let committed = BTreeMap::from([(0, 5)]);
        assert_eq!(remove_orphans(&wh, &t, "logs", &committed).unwrap(), 1);
        let left: Vec<String> = wh
            .files_in(&t, &spec)
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().to_string())
            .collect();
        assert_eq!(left, vec![file_name("logs", 0, 0, 4)]);
    }
}
