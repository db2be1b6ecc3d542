//! `weft stream` (chronon-semantics §6.3): keeps a TEMPORAL GroupBy fresh between uploads by
//! writing its source events into the streaming dataset, version = event time. Each event is a
//! JSON object of the source table's columns; the GroupBy's source query (selects, wheres,
//! time column) is applied to it exactly as offline, then the part's inputs are stored per key.
//!
//! Sources: a local JSON-lines file (the default "log stream" for events; followed as it
//! grows, with the offset kept under the warehouse so a restart resumes), or a replay of the
//! source table's partitions (to fill the streaming dataset for days after an upload).
//! Or a Kafka topic of JSON events ([`Streamer::follow_kafka`]; the consumer group's committed
//! offsets are where a restart resumes).

use std::collections::BTreeMap;
use std::io::{BufRead, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

use super::serving::{
    decode_events, encode_events, streaming_dataset, GroupByServing, ServingKind,
};
use super::store::{GetRequest, OnlineStore, PutRequest};
use crate::aggregate::Value;
use crate::config::GroupBy;
use crate::dataflow::records::{Item, Key};
use crate::error::{Error, Result};
use crate::join::inputs::{self, EventStats};
use crate::partition::{Ds, PartitionRange};
use crate::sql::Session;

/// Streamed events by `(key, ms)`: each with its time and the part's inputs.
type Events = BTreeMap<(Key, i64), Vec<(i64, Vec<Value>)>>;

/// What a stream run wrote.
#[derive(Debug, Default, Clone)]
pub struct StreamReport {
    pub events_read: u64,
    /// Events written (after the source query's wheres).
    pub events_written: u64,
    /// Events skipped: NULL key or `ts`, or lines that are not JSON objects of the table.
    pub skipped: u64,
    pub bad_lines: u64,
}

/// A GroupBy's stream writer.
pub struct Streamer<'a> {
    engine: &'a Session,
    store: &'a dyn OnlineStore,
    serving: GroupByServing,
    /// Schema of the source table's raw rows (what a JSON event is read as).
    raw: SchemaRef,
    pub report: StreamReport,
}

impl<'a> Streamer<'a> {
    pub fn new(
        engine: &'a Session,
        store: &'a dyn OnlineStore,
        gb: &GroupBy,
    ) -> Result<Streamer<'a>> {
        let serving = GroupByServing::new(gb)?;
        if serving.kind != ServingKind::Temporal {
            return Err(Error::Usage(format!(
                "GroupBy {} is served from its daily upload ({:?}); streaming applies to TEMPORAL event GroupBys",
                gb.meta_data.name, serving.kind
            )));
        }
        let t = serving.part.sources[0].scan.table_name()?;
        let raw = engine.warehouse().table_schema(&t)?;
        Ok(Streamer {
            engine,
            store,
            serving,
            raw,
            report: StreamReport::default(),
        })
    }

    /// Applies the source query to raw rows and writes the resulting events, added to the
    /// events already stored (a stream delivers each event once).
    pub fn write_raw(&mut self, batch: &RecordBatch) -> Result<()> {
        self.write_events(batch, false)
    }

    /// As [`Streamer::write_raw`]; with `replace`, the events of each `(key, ms)` replace the
    /// stored ones (a replayed partition holds all of them), so replaying twice is harmless.
    fn write_events(&mut self, batch: &RecordBatch, replace: bool) -> Result<()> {
        self.report.events_read += batch.num_rows() as u64;
        let scan = self.serving.part.sources[0].scan.clone();
        let selected = self.engine.with_batch(batch, |t| {
            let sql = scan.sql_from(&t.name())?;
            Ok(t.query(
                &sql,
                &format!("applying the query of {} to streamed events", scan.purpose),
            )?
            .1)
        })?;
        let mut by_key: Events = BTreeMap::new();
        for b in &selected {
            let mut st = EventStats::default();
            for ((g, item), _) in
                inputs::source_rows(b, &self.serving.part, false, &scan.table, &mut st)?
            {
                if let Item::Row { ts, inputs, .. } = item {
                    by_key.entry((g.1, ts)).or_default().push((ts, inputs));
                }
            }
            self.report.skipped += st.skipped();
        }
        self.put(by_key, replace)
    }

    /// Writes events grouped by `(key, ts)`, added to the events already stored at the same
    /// key and millisecond (identical events stay distinct: two purchases of the same amount
    /// in one millisecond are two purchases), or replacing them.
    fn put(&mut self, events: Events, replace: bool) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        if replace {
            let dataset = streaming_dataset(&self.serving.group_by);
            let puts: Vec<PutRequest> = events
                .into_iter()
                .map(|((key, ts), mut evs)| {
                    evs.sort();
                    self.report.events_written += evs.len() as u64;
                    PutRequest {
                        dataset: dataset.clone(),
                        key,
                        value: encode_events(&evs),
                        ts,
                    }
                })
                .collect();
            return self.store.multi_put(puts);
        }
        let dataset = streaming_dataset(&self.serving.group_by);
        let gets: Vec<GetRequest> = events
            .keys()
            .map(|(k, ts)| GetRequest {
                dataset: dataset.clone(),
                key: k.clone(),
                after_ts: Some(*ts),
            })
            .collect();
        let existing = self.store.multi_get(&gets);
        let mut puts = Vec::with_capacity(events.len());
        for (((key, ts), mut evs), found) in events.into_iter().zip(existing) {
            self.report.events_written += evs.len() as u64;
            if let Some(v) = found?.into_iter().find(|v| v.ts == ts) {
                let mut old = decode_events(&v.value).map_err(|e| {
                    Error::external(
                        format!("online store, dataset {dataset}"),
                        format!("a stored event does not decode: {e}"),
                    )
                })?;
                old.extend(evs);
                old.sort();
                evs = old;
            }
            puts.push(PutRequest {
                dataset: dataset.clone(),
                key,
                value: encode_events(&evs),
                ts,
            });
        }
        self.store.multi_put(puts)
    }

    /// Replays the source table's partitions in `range` as events. Each partition's events
    /// replace what is stored for their keys and milliseconds, so a replay can be repeated.
    pub fn replay(&mut self, range: PartitionRange) -> Result<()> {
        let t = self.serving.part.sources[0].scan.table_name()?;
        let pc = self.serving.part.sources[0].scan.partition_column();
        for ds in self.engine.warehouse().partitions_by(&t, &pc)? {
            if range.contains(ds) {
                let batches = self.engine.warehouse().read_partition(&t, ds)?;
                let Some(first) = batches.first() else {
                    continue;
                };
                let all = arrow::compute::concat_batches(&first.schema(), &batches)
                    .map_err(|e| Error::arrow(format!("reading {t} partition ds={ds}"), e))?;
                let b = with_partition(&all, &pc, ds)?;
                self.write_events(&b, true)?;
            }
        }
        Ok(())
    }

    /// Reads JSON lines from `path` starting at the saved offset, writing every `batch_rows`
    /// events; returns the new offset (saved under the warehouse after each batch).
    pub fn follow_file(&mut self, path: &Path, batch_rows: usize) -> Result<u64> {
        let offsets = offset_file(self.engine.warehouse().root(), &self.serving.group_by, path);
        let mut offset: u64 = std::fs::read_to_string(&offsets)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        let mut f = std::fs::File::open(path)
            .map_err(|e| Error::io(format!("opening the event stream {}", path.display()), e))?;
        f.seek(SeekFrom::Start(offset))
            .map_err(|e| Error::io(format!("seeking {}", path.display()), e))?;
        let mut reader = std::io::BufReader::new(f);
        let mut lines: Vec<String> = Vec::new();
        let mut line = String::new();
        loop {
            line.clear();
            let n = reader
                .read_line(&mut line)
                .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
            if n == 0 || !line.ends_with('\n') {
                break; // the end, or a line still being written
            }
            offset += n as u64;
            lines.push(line.trim_end().to_string());
            if lines.len() >= batch_rows {
                self.write_lines(std::mem::take(&mut lines))?;
                save_offset(&offsets, offset)?;
            }
        }
        self.write_lines(lines)?;
        save_offset(&offsets, offset)?;
        Ok(offset)
    }

    /// Consumes JSON events (one per message) from a Kafka topic, writing each batch to the
    /// store and committing its offsets only after the write: at least once, so a crash
    /// between a batch's store write and its commit (a few milliseconds) reads the batch again
    /// and its events are stored twice (identical events in one millisecond count as distinct
    /// events). Runs until the topic's end with `opts.once`, else forever.
    pub fn follow_kafka(
        &mut self,
        opts: &crate::logging::kafka::ConsumeOptions,
    ) -> Result<crate::logging::kafka::ConsumeReport> {
        crate::logging::kafka::consume(opts, |batch| {
            let mut lines = Vec::with_capacity(batch.len());
            for m in batch {
                match m.payload.as_deref().map(std::str::from_utf8) {
                    Some(Ok(s)) => lines.push(s.to_string()),
                    // counted as a bad line by write_lines
                    Some(Err(_)) => lines.push("<not UTF-8>".to_string()),
                    None => {}
                }
            }
            self.write_lines(lines)
        })
    }

    pub(crate) fn write_lines(&mut self, lines: Vec<String>) -> Result<()> {
        let good: Vec<&String> = lines.iter().filter(|l| !l.trim().is_empty()).collect();
        if good.is_empty() {
            return Ok(());
        }
        let objects: Vec<&String> = good
            .into_iter()
            .filter(|l| {
                serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(l).is_ok()
            })
            .collect();
        let bad = (lines.iter().filter(|l| !l.trim().is_empty()).count() - objects.len()) as u64;
        self.report.bad_lines += bad;
        if bad > 0 {
            tracing::warn!(bad, "streamed lines that are not JSON objects were skipped");
        }
        // Events carry the source table's columns; the partition column (which the source
        // query may read) is taken from the event when present, else today's date.
        let pc = self.serving.part.sources[0].scan.partition_column();
        let schema = if self.raw.field_with_name(&pc).is_ok() {
            self.raw.clone()
        } else {
            let mut fields: Vec<arrow::datatypes::Field> = self
                .raw
                .fields()
                .iter()
                .map(|f| f.as_ref().clone())
                .collect();
            fields.push(arrow::datatypes::Field::new(
                &pc,
                arrow::datatypes::DataType::Utf8,
                true,
            ));
            Arc::new(arrow::datatypes::Schema::new(fields))
        };
        let table = self.serving.part.sources[0].scan.table.clone();
        let text = objects
            .iter()
            .map(|l| l.as_str())
            .collect::<Vec<_>>()
            .join("\n");
        // all lines at once; if some line does not fit the table's types, line by line, so
        // one bad event is counted and skipped instead of stopping the stream
        let batches = match decode_json(&schema, &text, objects.len()) {
            Ok(b) => b,
            Err(_) => {
                let mut out = Vec::new();
                for l in &objects {
                    match decode_json(&schema, l, 1) {
                        Ok(b) => out.extend(b),
                        Err(e) => {
                            self.report.bad_lines += 1;
                            tracing::warn!(table = %table, error = %e, "a streamed event does not fit the source table's columns; skipped");
                        }
                    }
                }
                out
            }
        };
        for b in batches {
            self.write_raw(&with_default_partition(&b, &pc, Ds::today())?)?;
        }
        Ok(())
    }
}

/// Decodes JSON lines as rows of `schema`.
fn decode_json(
    schema: &arrow::datatypes::SchemaRef,
    text: &str,
    rows: usize,
) -> std::result::Result<Vec<RecordBatch>, arrow::error::ArrowError> {
    let mut decoder = arrow::json::ReaderBuilder::new(schema.clone())
        .with_batch_size(rows.max(1))
        .build_decoder()?;
    let mut out = Vec::new();
    let mut rest = text.as_bytes();
    // `decode` stops after a batch's worth of rows: decode and flush until all is read
    loop {
        let read = decoder.decode(rest)?;
        rest = &rest[read..];
        match decoder.flush()? {
            Some(b) => out.push(b),
            None if read == 0 => break,
            None => {}
        }
        if rest.is_empty() && read == 0 {
            break;
        }
    }
    Ok(out)
}

/// Fills the NULLs of partition column `pc` (events that do not carry it) with `ds`.
fn with_default_partition(b: &RecordBatch, pc: &str, ds: Ds) -> Result<RecordBatch> {
    let Ok(i) = b.schema().index_of(pc) else {
        return Ok(b.clone());
    };
    if b.column(i).null_count() == 0 {
        return Ok(b.clone());
    }
    let col = arrow::compute::cast(b.column(i), &arrow::datatypes::DataType::Utf8)
        .map_err(|e| Error::arrow("reading the partition column of streamed events", e))?;
    let col = col
        .as_any()
        .downcast_ref::<arrow::array::StringArray>()
        .expect("cast to Utf8");
    let today = ds.to_string();
    let filled: arrow::array::StringArray = col.iter().map(|v| Some(v.unwrap_or(&today))).collect();
    let mut cols = b.columns().to_vec();
    cols[i] = Arc::new(filled);
    let fields: Vec<arrow::datatypes::Field> = b
        .schema()
        .fields()
        .iter()
        .enumerate()
        .map(|(j, f)| {
            if j == i {
                f.as_ref()
                    .clone()
                    .with_data_type(arrow::datatypes::DataType::Utf8)
            } else {
                f.as_ref().clone()
            }
        })
        .collect();
    RecordBatch::try_new(Arc::new(arrow::datatypes::Schema::new(fields)), cols)
        .map_err(|e| Error::arrow("adding the partition column", e))
}

/// Adds the partition column (the warehouse keeps it in the folder name).
fn with_partition(b: &RecordBatch, pc: &str, ds: Ds) -> Result<RecordBatch> {
    if b.schema().field_with_name(pc).is_ok() {
        return Ok(b.clone());
    }
    let mut fields: Vec<arrow::datatypes::Field> = b
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(arrow::datatypes::Field::new(
        pc,
        arrow::datatypes::DataType::Utf8,
        true,
    ));
    let mut cols = b.columns().to_vec();
    cols.push(Arc::new(arrow::array::StringArray::from(vec![
        ds.to_string(
        );
        b.num_rows()
    ])));
    RecordBatch::try_new(Arc::new(arrow::datatypes::Schema::new(fields)), cols)
        .map_err(|e| Error::arrow("adding the partition column", e))
}

fn offset_file(root: &Path, gb: &GroupBy, source: &Path) -> PathBuf {
    let name =
        crate::config::naming::sanitize(&format!("{}__{}", gb.meta_data.name, source.display()));
    root.join(".weft-online").join("stream-offsets").join(name)
}

fn save_offset(path: &Path, offset: u64) -> Result<()> {
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p)
            .map_err(|e| Error::io(format!("creating {}", p.display()), e))?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, offset.to_string())
        .map_err(|e| Error::io("saving the stream offset", e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io("saving the stream offset", e))
}
