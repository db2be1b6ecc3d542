//! The raw log table (chronon-semantics §5.4) and [`FileLogSink`], the default local log
//! stream that writes it into the warehouse.
//!
//! Layout of the raw log table (default [`DEFAULT_LOG_TABLE`], `default.chronon_log_table` as in
//! Chronon's sample schema GroupBy; any table name can be configured):
//!
//! ```text
//! <warehouse>/default/chronon_log_table/ds=2026-03-01/name=risk%2Fcheckout_online.v1/part-….parquet
//!                                      ds=2026-03-01/name=SCHEMA_PUBLISH_EVENT/part-….parquet
//! ```
//!
//! Table columns `key_base64 STRING, value_base64 STRING, name STRING, ts_millis LONG,
//! schema_hash STRING`, partitioned by `ds` (UTC date of `ts_millis`) and `name` (the request
//! name, URL-encoded as Hive does: `/` → `%2F`). As in Hive, the partition columns live in the
//! folder names, so the Parquet files hold `key_base64, value_base64, ts_millis, schema_hash`.
//! Bytes are standard base64 with padding. Each flush appends new files; existing files are
//! never rewritten.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use arrow::array::{Array, ArrayRef, AsArray, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use base64::Engine as _;

use super::{LogSink, LoggableResponse};
use crate::error::{Error, Result};
use crate::partition::Ds;
use crate::warehouse::{TableName, Warehouse, DS};

/// The default raw log table.
pub const DEFAULT_LOG_TABLE: &str = "default.chronon_log_table";
/// The partition column holding the request name.
pub const NAME: &str = "name";
pub const KEY_BASE64: &str = "key_base64";
pub const VALUE_BASE64: &str = "value_base64";
pub const TS_MILLIS: &str = "ts_millis";
pub const SCHEMA_HASH: &str = "schema_hash";

/// The columns of the raw log table's Parquet files (`ds` and `name` are folders).
pub fn raw_file_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(KEY_BASE64, DataType::Utf8, true),
        Field::new(VALUE_BASE64, DataType::Utf8, true),
        Field::new(TS_MILLIS, DataType::Int64, true),
        Field::new(SCHEMA_HASH, DataType::Utf8, true),
    ]))
}

/// A partition value escaped as Hive escapes path names (`/` → `%2F`, `%` → `%25`, `=` →
/// `%3D`, …); DataFusion, Spark and Hive decode it back.
pub fn escape_partition_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        if c.is_control()
            || matches!(
                c,
                '"' | '#'
                    | '%'
                    | '\''
                    | '*'
                    | '/'
                    | ':'
                    | '='
                    | '?'
                    | '\\'
                    | '{'
                    | '}'
                    | '['
                    | ']'
                    | '^'
            )
        {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The partition spec `ds=<ds>/name=<escaped name>` of the raw log table.
pub fn raw_spec(ds: Ds, name: &str) -> Vec<(String, String)> {
    vec![
        (DS.to_string(), ds.to_string()),
        (NAME.to_string(), escape_partition_value(name)),
    ]
}

/// One row of the raw log table (§5.2 `LoggableResponseBase64`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRow {
    pub key_base64: Option<String>,
    pub value_base64: Option<String>,
    pub ts_millis: Option<i64>,
    pub schema_hash: Option<String>,
}

/// The `ds` partitions of the raw log table that hold rows for request name `name`.
pub fn raw_partitions(wh: &Warehouse, t: &TableName, name: &str) -> Result<Vec<Ds>> {
    let mut out = Vec::new();
    for ds in wh.partitions(t)? {
        if !wh.files_in(t, &raw_spec(ds, name))?.is_empty() {
            out.push(ds);
        }
    }
    Ok(out)
}

/// The rows of request name `name` in partition `ds` of the raw log table.
pub fn read_raw(wh: &Warehouse, t: &TableName, ds: Ds, name: &str) -> Result<Vec<RawRow>> {
    let spec = raw_spec(ds, name);
    let partition = crate::warehouse::write::spec_label(&spec);
    let mut out = Vec::new();
    for batch in wh.read_files(&wh.files_in(t, &spec)?)? {
        let col = |c: &str, want: DataType| -> Result<ArrayRef> {
            let a = batch.column_by_name(c).ok_or_else(|| Error::Data {
                location: crate::error::Location {
                    table: t.to_string(),
                    partition: Some(partition.clone()),
                    column: Some(c.to_string()),
                },
                message: "column missing: this is not a raw log table".into(),
                fix: Some(format!("pass the raw log table with --log-table (columns {KEY_BASE64}, {VALUE_BASE64}, {TS_MILLIS}, {SCHEMA_HASH})")),
            })?;
            arrow::compute::cast(a, &want).map_err(|e| {
                Error::arrow(
                    format!("reading column `{c}` of {t} partition {partition}"),
                    e,
                )
            })
        };
        let key = col(KEY_BASE64, DataType::Utf8)?;
        let value = col(VALUE_BASE64, DataType::Utf8)?;
        let ts = col(TS_MILLIS, DataType::Int64)?;
        let hash = col(SCHEMA_HASH, DataType::Utf8)?;
        let (key, value, hash) = (
            key.as_string::<i32>(),
            value.as_string::<i32>(),
            hash.as_string::<i32>(),
        );
        let ts = ts.as_primitive::<arrow::datatypes::Int64Type>();
        let s = |a: &StringArray, i: usize| (!a.is_null(i)).then(|| a.value(i).to_string());
        for i in 0..batch.num_rows() {
            out.push(RawRow {
                key_base64: s(key, i),
                value_base64: s(value, i),
                ts_millis: (!ts.is_null(i)).then(|| ts.value(i)),
                schema_hash: s(hash, i),
            });
        }
    }
    Ok(out)
}

/// The default log stream: buffers records and, on flush, appends one Parquet file per
/// `(ds, name)` partition of the raw log table.
pub struct FileLogSink {
    wh: Warehouse,
    table: TableName,
    buffer: Mutex<Vec<LoggableResponse>>,
    max_buffered: usize,
}

impl FileLogSink {
    /// A sink writing raw log table `table` (e.g. [`DEFAULT_LOG_TABLE`]) in `wh`.
    pub fn new(wh: Warehouse, table: &str) -> Result<FileLogSink> {
        let table = TableName::parse(table)?;
        if !table.sub_partition_filters.is_empty() {
            return Err(Error::Usage(format!(
                "the raw log table `{table}` cannot have sub-partition filters; give namespace.table"
            )));
        }
        Ok(FileLogSink {
            wh,
            table,
            buffer: Mutex::new(Vec::new()),
            max_buffered: 1_000_000,
        })
    }

    /// The most records held in memory when writes keep failing (default 1,000,000); beyond
    /// it `send` refuses records with an error.
    pub fn with_max_buffered(mut self, n: usize) -> FileLogSink {
        self.max_buffered = n.max(1);
        self
    }

    pub fn table(&self) -> &TableName {
        &self.table
    }

    /// Records sent but not yet written.
    pub fn buffered(&self) -> usize {
        self.buffer.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    fn write_group(&self, ds: Ds, name: &str, records: &[LoggableResponse]) -> Result<()> {
        let batch = raw_batch(records, &self.table)?;
        self.wh.append_file(
            &self.table,
            &raw_spec(ds, name),
            raw_file_schema(),
            &[batch],
        )?;
        Ok(())
    }
}

/// Records as one batch of the raw log table's files (`ds` and `name` are folders).
pub fn raw_batch(records: &[LoggableResponse], table: &TableName) -> Result<RecordBatch> {
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let schema = raw_file_schema();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            records.iter().map(|r| b64(&r.key_bytes)),
        )),
        Arc::new(StringArray::from_iter_values(
            records.iter().map(|r| b64(&r.value_bytes)),
        )),
        Arc::new(Int64Array::from_iter_values(
            records.iter().map(|r| r.ts_millis),
        )),
        Arc::new(StringArray::from_iter(
            records.iter().map(|r| r.schema_hash.as_deref()),
        )),
    ];
    RecordBatch::try_new(schema, columns)
        .map_err(|e| Error::arrow(format!("building a log file for {table}"), e))
}

impl LogSink for FileLogSink {
    fn send(&self, records: Vec<LoggableResponse>) -> Result<()> {
        let mut buf = self.buffer.lock().unwrap_or_else(|p| p.into_inner());
        if buf.len() + records.len() > self.max_buffered {
            return Err(Error::data(
                &self.table.to_string(),
                None,
                format!(
                    "{} log records are waiting to be written (earlier flushes failed); refusing {} more",
                    buf.len(),
                    records.len()
                ),
            )
            .with_fix("check that the warehouse folder is writable and has free space"));
        }
        buf.extend(records);
        Ok(())
    }

    fn flush(&self) -> Result<()> {
        let pending = std::mem::take(&mut *self.buffer.lock().unwrap_or_else(|p| p.into_inner()));
        let mut groups: BTreeMap<(Ds, String), Vec<LoggableResponse>> = BTreeMap::new();
        for r in pending {
            groups
                .entry((Ds::of_millis(r.ts_millis), r.name.clone()))
                .or_default()
                .push(r);
        }
        let mut groups = groups.into_iter();
        while let Some(((ds, name), records)) = groups.next() {
            if let Err(e) = self.write_group(ds, &name, &records) {
                // keep what was not written for the next flush
                let mut unwritten = records;
                unwritten.extend(groups.flat_map(|(_, v)| v));
                let mut buf = self.buffer.lock().unwrap_or_else(|p| p.into_inner());
                unwritten.append(&mut buf);
                *buf = unwritten;
                return Err(e);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logging::SCHEMA_PUBLISH_EVENT;

    fn rec(name: &str, ts: i64, hash: Option<&str>) -> LoggableResponse {
        LoggableResponse {
            key_bytes: vec![1, 2, 3],
            value_bytes: name.as_bytes().to_vec(),
            name: name.to_string(),
            ts_millis: ts,
            schema_hash: hash.map(str::to_string),
        }
    }

    #[test]
    fn escapes_like_hive() {
        assert_eq!(
            escape_partition_value("risk/checkout.v1"),
            "risk%2Fcheckout.v1"
        );
        assert_eq!(escape_partition_value("a=b%c d"), "a%3Db%25c d");
        assert_eq!(
            escape_partition_value(SCHEMA_PUBLISH_EVENT),
            SCHEMA_PUBLISH_EVENT
        );
    }

    #[test]
    fn flush_appends_files_per_day_and_name() {
        let dir = tempfile::tempdir().unwrap();
        let wh = Warehouse::open(dir.path()).unwrap();
        let sink = FileLogSink::new(wh.clone(), DEFAULT_LOG_TABLE).unwrap();
        let day = crate::partition::DAY_MS;
        let d0 = Ds::parse("2026-03-01").unwrap();
        let t0 = d0.start_millis();
        sink.send(vec![
            rec("risk/j.v1", t0 + 5, Some("h1")),
            rec("risk/j.v1", t0 + day + 1, Some("h1")),
            rec(SCHEMA_PUBLISH_EVENT, t0, None),
        ])
        .unwrap();
        assert_eq!(sink.buffered(), 3);
        sink.flush().unwrap();
        assert_eq!(sink.buffered(), 0);
        sink.send(vec![rec("risk/j.v1", t0 + 7, None)]).unwrap();
        sink.flush().unwrap();
        sink.flush().unwrap(); // nothing pending: no file
        let t = sink.table().clone();
        assert!(wh
            .partition_dir(&t, &raw_spec(d0, "risk/j.v1"))
            .ends_with("ds=2026-03-01/name=risk%2Fj.v1"));
        assert_eq!(
            wh.files_in(&t, &raw_spec(d0, "risk/j.v1")).unwrap().len(),
            2
        );
        assert_eq!(
            raw_partitions(&wh, &t, "risk/j.v1").unwrap(),
            vec![d0, d0.shift(1)]
        );
        assert_eq!(
            raw_partitions(&wh, &t, SCHEMA_PUBLISH_EVENT).unwrap(),
            vec![d0]
        );
        let rows = read_raw(&wh, &t, d0, "risk/j.v1").unwrap();
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        assert_eq!(
            rows,
            vec![
                RawRow {
                    key_base64: Some(b64(&[1, 2, 3])),
                    value_base64: Some(b64(b"risk/j.v1")),
                    ts_millis: Some(t0 + 5),
                    schema_hash: Some("h1".into())
                },
                RawRow {
                    key_base64: Some(b64(&[1, 2, 3])),
                    value_base64: Some(b64(b"risk/j.v1")),
                    ts_millis: Some(t0 + 7),
                    schema_hash: None
                },
            ]
        );
    }

    #[test]
    fn failed_writes_keep_records_and_the_buffer_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let wh = Warehouse::open(dir.path()).unwrap();
        let sink = FileLogSink::new(wh.clone(), "logs.raw")
            .unwrap()
            .with_max_buffered(3);
        // a file where the table folder should be: every write fails
        std::fs::create_dir_all(dir.path().join("logs")).unwrap();
        std::fs::write(dir.path().join("logs").join("raw"), b"not a folder").unwrap();
        sink.send(vec![rec("a/b", 0, None), rec("a/c", 0, None)])
            .unwrap();
        let e = sink.flush().unwrap_err().to_string();
        assert!(e.contains("logs.raw"), "{e}");
        assert_eq!(sink.buffered(), 2, "kept for the next flush");
        let e = sink
            .send(vec![rec("a/b", 0, None); 2])
            .unwrap_err()
            .to_string();
        assert!(e.contains("refusing 2 more"), "{e}");
        std::fs::remove_file(dir.path().join("logs").join("raw")).unwrap();
        sink.flush().unwrap();
        assert_eq!(sink.buffered(), 0);
        let t = TableName::parse("logs.raw").unwrap();
        assert_eq!(read_raw(&wh, &t, Ds(0), "a/c").unwrap().len(), 1);
    }
}
