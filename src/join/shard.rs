//! GroupBy source partitions read by the dataflow's own workers, so Parquet decoding scales
//! with the workers of every process: the driver splits the partitions an epoch needs into
//! one [`SourceRead`] per worker, and each process's [`SourceReader`] (its own SQL session
//! over the shared warehouse) reads its share and turns it into dataflow rows.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, RwLock};

use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};

use super::feed::read_partitions;
use super::inputs::{shaped_rows_into, EventStats, RowShape};
use super::plan::PartPlan;
use crate::dataflow::records::Item;
use crate::dataflow::shard::{ReadError, ShardReader, Share};
use crate::dataflow::Update;
use crate::error::{Error, Result};
use crate::partition::Ds;
use crate::sql::scan::Scan;
use crate::sql::Session;
use crate::warehouse::Warehouse;

/// One worker's share of a source's partitions, as it travels to the worker.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SourceRead {
    pub scan: Scan,
    /// The partitions to read, each with the key its rows are kept under.
    pub days: Vec<(Ds, u64)>,
    /// Identifies the source's partition listing: a reader whose SQL session listed the
    /// table under another one lists it again first.
    pub listing: u64,
    pub part: u16,
    pub keys: Vec<String>,
    pub inputs: Vec<String>,
    pub mutations: bool,
    /// Rows with a `ts` before this are held by the part's stored aggregates: read and
    /// counted, not fed (only set on shares of partitions the stored aggregates cover).
    #[serde(default)]
    pub floor: Option<i64>,
}

/// What a read task's payload asks a worker to read.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ReadPayload {
    Source(Box<SourceRead>),
    Aggregates(AggregatesRead),
}

impl ReadPayload {
    /// The payload of a read task.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a read payload serializes")
    }

    fn decode(payload: &[u8]) -> Result<ReadPayload, ReadError> {
        serde_json::from_slice(payload).map_err(|e| ReadError {
            kind: "internal".into(),
            message: format!("a read task did not decode: {e}"),
        })
    }
}

/// One stored-aggregate file of a part ([`crate::dataflow::store`]), fed as `Item::Base`
/// updates of part `part` (written as part `stored_part`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AggregatesRead {
    pub file: std::path::PathBuf,
    pub part: u16,
    pub stored_part: u32,
    pub spec: crate::dataflow::spec::PartSpec,
    /// The key its rows are kept under.
    pub key: u64,
}

impl AggregatesRead {
    /// The error for a file that does not read. Its manifest is removed first (the files
    /// are only ever read through it), so the next run reads all history instead.
    fn corrupt(&self, e: impl std::fmt::Display) -> Error {
        let manifest = self
            .file
            .parent()
            .and_then(|folder| folder.parent())
            .map(|dir| dir.join("manifest.json"));
        let removed = manifest.is_some_and(|m| std::fs::remove_file(m).is_ok());
        let fix = if removed {
            "they were set aside (their manifest removed): run again, and the run reads the whole history and stores them anew"
        } else {
            "delete the .weft-aggregates folder of this output table: the next run reads the whole history and stores them anew"
        };
        Error::data(
            &self.file.display().to_string(),
            None,
            format!("stored aggregates did not read: {e}"),
        )
        .with_fix(fix)
    }

    fn updates(&self, rows: &[RecordBatch], sign: isize) -> Result<Vec<Update>> {
        crate::dataflow::store::updates(rows, self.part, self.stored_part, &self.spec, sign)
            .map_err(|e| self.corrupt(e))
    }
}

impl SourceRead {
    /// A share of `scan`'s partitions `days`, for part `p`.
    pub fn new(
        scan: &Scan,
        p: &PartPlan,
        mutations: bool,
        listing: u64,
        days: Vec<(Ds, u64)>,
    ) -> SourceRead {
        SourceRead {
            scan: scan.clone(),
            days,
            listing,
            part: p.index,
            keys: p.right_keys.clone(),
            inputs: p.inputs.clone(),
            mutations,
            floor: None,
        }
    }

    /// The dataflow rows of rows this share read, counting what could not be used.
    fn updates(&self, rows: &[RecordBatch], stats: &mut EventStats) -> Result<Vec<Update>> {
        let shape = RowShape {
            part: self.part,
            keys: &self.keys,
            inputs: &self.inputs,
            mutations: self.mutations,
        };
        let mut out = Vec::with_capacity(rows.iter().map(RecordBatch::num_rows).sum());
        for b in rows {
            shaped_rows_into(b, &shape, &self.scan.table, stats, &mut out)?;
        }
        if let Some(floor) = self.floor {
            let before = out.len();
            out.retain(|((_, item), _)| !matches!(item, Item::Row { ts, .. } if *ts < floor));
            stats.stored += (before - out.len()) as u64;
        }
        Ok(out)
    }
}

/// The reader of one process: reads source shares through a SQL session of its own (the
/// driver's session is busy with its own reads and writes).
pub struct SourceReader {
    wh: Warehouse,
    session: OnceLock<Session>,
    starting: Mutex<()>,
    /// The listing each table was registered under; scans hold the read lock, a table
    /// listed again the write lock.
    listed: RwLock<HashMap<String, u64>>,
    /// Partitions read so far.
    read: AtomicU64,
}

impl SourceReader {
    /// A reader over `wh` (its session starts on the first read).
    pub fn new(wh: &Warehouse) -> SourceReader {
        SourceReader {
            wh: wh.clone(),
            session: OnceLock::new(),
            starting: Mutex::new(()),
            listed: RwLock::new(HashMap::new()),
            read: AtomicU64::new(0),
        }
    }

    /// How many partitions this reader has read (its process's share).
    pub fn partitions_read(&self) -> u64 {
        self.read.load(Ordering::Relaxed)
    }

    fn session(&self) -> Result<&Session> {
        if let Some(s) = self.session.get() {
            return Ok(s);
        }
        let _g = self.starting.lock().expect("reader start lock");
        if let Some(s) = self.session.get() {
            return Ok(s);
        }
        let s = Session::new(&self.wh)?;
        Ok(self.session.get_or_init(|| s))
    }

    fn read_share(&self, t: &SourceRead) -> Result<Vec<(u64, Vec<RecordBatch>)>> {
        let session = self.session()?;
        let table = t.scan.table_name()?;
        let name = table.to_string();
        loop {
            {
                let listed = self.listed.read().expect("reader listing lock");
                if listed.get(&name) == Some(&t.listing) {
                    let days: Vec<Ds> = t.days.iter().map(|(d, _)| *d).collect();
                    let mut rows = read_partitions(session, &t.scan, &days)?;
                    self.read.fetch_add(days.len() as u64, Ordering::Relaxed);
                    return Ok(t
                        .days
                        .iter()
                        .map(|(d, k)| (*k, rows.remove(d).unwrap_or_default()))
                        .collect());
                }
            }
            let mut listed = self.listed.write().expect("reader listing lock");
            if listed.get(&name) != Some(&t.listing) {
                session.register_table(&table)?;
                listed.insert(name.clone(), t.listing);
            }
        }
    }
}

fn read_error(e: Error) -> ReadError {
    ReadError {
        kind: e.kind().as_str().into(),
        message: e.to_string(),
    }
}

impl ShardReader for SourceReader {
    fn read(&self, payload: &[u8], counts: &mut Vec<u64>) -> Result<Vec<Share>, ReadError> {
        let t = match ReadPayload::decode(payload)? {
            ReadPayload::Source(t) => t,
            ReadPayload::Aggregates(a) => {
                let rows = (self.wh.read_files(std::slice::from_ref(&a.file)))
                    .map_err(|e| read_error(a.corrupt(e)))?;
                let updates = a.updates(&rows, 1).map_err(read_error)?;
                *counts = vec![updates.len() as u64];
                return Ok(vec![Share {
                    key: a.key,
                    rows,
                    updates,
                }]);
            }
        };
        let mut stats = EventStats::from_counts(counts);
        let mut out = Vec::new();
        for (key, rows) in self.read_share(&t).map_err(read_error)? {
            let updates = t.updates(&rows, &mut stats).map_err(read_error)?;
            out.push(Share { key, rows, updates });
        }
        *counts = stats.to_counts();
        Ok(out)
    }

    fn updates(&self, payload: &[u8], rows: &[RecordBatch]) -> Result<Vec<Update>, ReadError> {
        match ReadPayload::decode(payload)? {
            ReadPayload::Source(t) => t
                .updates(rows, &mut EventStats::default())
                .map_err(read_error),
            ReadPayload::Aggregates(a) => a.updates(rows, 1).map_err(read_error),
        }
    }
}
