//! Input reading spread over every worker of every process: the driver (process 0) decides
//! which partitions an epoch reads and hands each share to one worker as a [`ReadTask`]; that
//! worker decodes it with this process's [`ShardReader`], feeds the rows into its own input,
//! keeps them for a later retraction, and sends a [`ReadReport`] (counts, or the error)
//! through the dataflow to worker 0, which hands it to the driver with the epoch's outputs.
//! Decoding therefore scales with the workers, in one process and across a cluster.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};

use super::Update;

/// Reads what a task names (its payload is the engine's, opaque here) and turns rows into
/// dataflow updates. One per process, shared by its workers.
pub trait ShardReader: Send + Sync {
    /// Reads a task's partitions: the rows of each, by the key the task gives it, with
    /// their updates; what could not be used is counted into `counts` (the engine's own
    /// counters).
    fn read(&self, payload: &[u8], counts: &mut Vec<u64>) -> Result<Vec<Share>, ReadError>;

    /// The updates of rows read earlier for `payload` (to retract them).
    fn updates(&self, payload: &[u8], rows: &[RecordBatch]) -> Result<Vec<Update>, ReadError>;
}

/// One partition a task read: the key its rows are kept under, the rows and their updates.
pub struct Share {
    pub key: u64,
    pub rows: Vec<RecordBatch>,
    pub updates: Vec<Update>,
}

/// Why a read failed, as it crosses processes: whose problem it is (the engine's error
/// kind name) and the full message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadError {
    pub kind: String,
    pub message: String,
}

/// One share of an epoch's reading, for one worker (by global index).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ReadTask {
    /// Read `payload` and feed its rows.
    Read {
        worker: usize,
        /// Reported back with the counts, so the driver knows what they are for.
        tag: u64,
        payload: Vec<u8>,
    },
    /// Retract the rows kept under `keys` (partitions re-landed or removed).
    Retract { worker: usize, keys: Vec<u64> },
}

impl ReadTask {
    /// The worker that does it.
    pub fn worker(&self) -> usize {
        match self {
            ReadTask::Read { worker, .. } | ReadTask::Retract { worker, .. } => *worker,
        }
    }
}

/// The tag of the reports of a store command (one per worker; its count is the keys written).
pub const STORE_TAG: u64 = u64::MAX;

/// What a worker reports for one [`ReadTask::Read`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReadReport {
    pub tag: u64,
    pub counts: Vec<u64>,
    pub error: Option<ReadError>,
}

/// Rows a worker fed, by key, to retract them later exactly.
#[derive(Default)]
pub struct Kept {
    rows: HashMap<u64, (Arc<Vec<u8>>, Vec<RecordBatch>)>,
}

impl Kept {
    /// Does a task: the updates to feed, in chunks (one per partition, never copied into one
    /// list), and, for a read, its report.
    pub fn run(
        &mut self,
        reader: Option<&dyn ShardReader>,
        task: ReadTask,
    ) -> (Vec<Vec<Update>>, Option<ReadReport>) {
        match task {
            ReadTask::Read { tag, payload, .. } => {
                let mut report = ReadReport {
                    tag,
                    counts: Vec::new(),
                    error: None,
                };
                match self.read(reader, payload, &mut report.counts) {
                    Ok(updates) => (updates, Some(report)),
                    Err(e) => {
                        report.error = Some(e);
                        (Vec::new(), Some(report))
                    }
                }
            }
            ReadTask::Retract { keys, .. } => (self.retract(reader, &keys), None),
        }
    }

    fn read(
        &mut self,
        reader: Option<&dyn ShardReader>,
        payload: Vec<u8>,
        counts: &mut Vec<u64>,
    ) -> Result<Vec<Vec<Update>>, ReadError> {
        let reader = reader.ok_or_else(|| ReadError {
            kind: "internal".into(),
            message: "this process's dataflow runtime was started without a reader of read tasks; start every process of a cluster with `Context::follower` or `Runtime::start_reading`".into(),
        })?;
        let payload = Arc::new(payload);
        let mut out = Vec::new();
        // kept only once all of it converted (`read` failed otherwise): rows never fed are
        // never retracted
        for share in reader.read(&payload, counts)? {
            out.push(share.updates);
            self.rows.insert(share.key, (payload.clone(), share.rows));
        }
        Ok(out)
    }

    /// The negated updates of the rows kept under `keys`, forgotten now. Converting rows
    /// that converted once cannot fail; if it did, the error is logged (the rows stay fed).
    fn retract(&mut self, reader: Option<&dyn ShardReader>, keys: &[u64]) -> Vec<Vec<Update>> {
        let Some(reader) = reader else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for key in keys {
            let Some((payload, rows)) = self.rows.remove(key) else {
                continue;
            };
            match reader.updates(&payload, &rows) {
                Ok(mut u) => {
                    u.iter_mut().for_each(|(_, r)| *r = -*r);
                    out.push(u);
                }
                Err(e) => tracing::error!(key, error = %e.message, "could not retract rows"),
            }
        }
        out
    }
}
