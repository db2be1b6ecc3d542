//! What a running join has fed into its dataflow, per input and partition: the partition's
//! fingerprint and the rows read (Arrow batches, after the query). Syncing an input against
//! the warehouse finds new, re-landed and removed partitions; a re-landed or removed
//! partition is retracted with exactly the rows that were fed, so the dataflow sees a true
//! delta. Partitions the dataflow's workers read themselves ([`crate::join::shard`]) are
//! recorded with the worker that keeps their rows instead.

use std::collections::{BTreeMap, HashMap};

use arrow::array::AsArray;
use arrow::compute::cast;
use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;

use crate::error::Result;
use crate::partition::{Ds, PartitionRange};
use crate::sql::scan::Scan;
use crate::sql::Session;

/// An input of the join dataflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum InputId {
    Left,
    Source {
        part: u16,
        source: u16,
        mutations: bool,
    },
    /// A bootstrap part's table (by priority).
    Bootstrap {
        part: u16,
    },
    /// The left, as the label side reads it (row identifier and label keys).
    LabelLeft,
}

/// One fed partition.
pub struct Fed {
    fingerprint: u64,
    batches: Vec<RecordBatch>,
    /// Read by a dataflow worker, which keeps the rows: `(global worker, key)`.
    owner: Option<(usize, u64)>,
}

impl Fed {
    /// The rows, when the driver read them.
    pub fn batches(&self) -> &[RecordBatch] {
        &self.batches
    }

    /// The worker that read them and the key it keeps them under, when one did.
    pub fn owner(&self) -> Option<(usize, u64)> {
        self.owner
    }
}

/// What syncing an input must do: fed partitions to retract (removed from the fed set)
/// and partitions to read, with their fingerprints.
pub struct SyncPlan {
    pub gone: Vec<(Ds, Fed)>,
    pub read: Vec<(Ds, u64)>,
}

/// One partition whose fed rows change: the rows to retract and the rows to insert.
pub struct Change {
    pub ds: Ds,
    pub old: Vec<RecordBatch>,
    pub new: Vec<RecordBatch>,
}

/// The fed partitions of every input.
#[derive(Default)]
pub struct Feeds {
    fed: HashMap<InputId, BTreeMap<Ds, Fed>>,
    /// The next key a worker keeps a partition's rows under.
    next_key: u64,
    /// The next worker to hand a share to (turns round, so shares spread evenly).
    next_worker: usize,
}

impl Feeds {
    /// Whether a partition of an input was fed.
    pub fn contains(&self, input: InputId, ds: Ds) -> bool {
        self.fed.get(&input).is_some_and(|m| m.contains_key(&ds))
    }

    /// The fed partitions of an input.
    pub fn days(&self, input: InputId) -> Vec<Ds> {
        self.fed
            .get(&input)
            .map(|m| m.keys().copied().collect())
            .unwrap_or_default()
    }

    /// Forgets everything fed for an input (after its rows were retracted).
    pub fn forget(&mut self, input: InputId) {
        self.fed.remove(&input);
    }

    /// Forgets one fed partition (its rows were retracted, or never reached the dataflow).
    pub fn forget_partition(&mut self, input: InputId, ds: Ds) {
        if let Some(m) = self.fed.get_mut(&input) {
            m.remove(&ds);
        }
    }

    /// The fed partitions of an input with the fingerprints they were read at.
    pub fn fingerprints(&self, input: InputId) -> Vec<(Ds, u64)> {
        self.fed
            .get(&input)
            .map(|m| m.iter().map(|(d, f)| (*d, f.fingerprint)).collect())
            .unwrap_or_default()
    }

    /// The rows fed for a partition.
    pub fn batches(&self, input: InputId, ds: Ds) -> &[RecordBatch] {
        self.fed
            .get(&input)
            .and_then(|m| m.get(&ds))
            .map_or(&[], |f| &f.batches)
    }

    /// Finds what syncing `input` with the warehouse takes, for the days `want` accepts:
    /// fed partitions that changed or disappeared (forgotten now, returned to be retracted)
    /// and the new and re-landed partitions to read. `current` lists the input's partitions
    /// and fingerprints.
    pub fn plan_sync(
        &mut self,
        input: InputId,
        current: &[(Ds, u64)],
        want: &dyn Fn(Ds) -> bool,
    ) -> SyncPlan {
        let fed = self.fed.entry(input).or_default();
        let now: BTreeMap<Ds, u64> = current.iter().copied().collect();
        let gone: Vec<Ds> = fed
            .iter()
            .filter(|(ds, f)| now.get(ds) != Some(&f.fingerprint))
            .map(|(ds, _)| *ds)
            .collect();
        let gone: Vec<(Ds, Fed)> = gone
            .into_iter()
            .filter_map(|ds| fed.remove(&ds).map(|f| (ds, f)))
            .collect();
        let read = now
            .iter()
            .filter(|(ds, _)| {
                !fed.contains_key(ds) && (want(**ds) || gone.iter().any(|(d, _)| d == *ds))
            })
            .map(|(d, f)| (*d, *f))
            .collect();
        SyncPlan { gone, read }
    }

    /// A new key for rows a worker keeps that belong to no partition (stored aggregates).
    pub fn take_key(&mut self) -> u64 {
        let key = self.next_key;
        self.next_key += 1;
        key
    }

    /// The worker (of `peers`) to hand the next share to.
    pub fn next_worker(&mut self, peers: usize) -> usize {
        let w = self.next_worker % peers.max(1);
        self.next_worker = w + 1;
        w
    }

    /// Records a partition that dataflow worker `worker` reads; returns the key the worker
    /// keeps its rows under.
    pub fn record_owned(&mut self, input: InputId, ds: Ds, fingerprint: u64, worker: usize) -> u64 {
        let key = self.next_key;
        self.next_key += 1;
        self.fed.entry(input).or_default().insert(
            ds,
            Fed {
                fingerprint,
                batches: Vec::new(),
                owner: Some((worker, key)),
            },
        );
        key
    }

    /// Brings the fed partitions of `input` in line with the warehouse for the days
    /// `want` accepts: reads new and re-landed partitions, and retracts fed partitions that
    /// changed or disappeared. `current` lists the input's partitions and fingerprints.
    pub fn sync(
        &mut self,
        engine: &Session,
        scan: &Scan,
        input: InputId,
        current: &[(Ds, u64)],
        want: &dyn Fn(Ds) -> bool,
        read: &dyn Fn(Vec<RecordBatch>) -> Result<Vec<RecordBatch>>,
    ) -> Result<Vec<Change>> {
        let SyncPlan {
            gone,
            read: to_read,
        } = self.plan_sync(input, current, want);
        let fed = self.fed.entry(input).or_default();
        let mut changes: Vec<Change> = gone
            .into_iter()
            .map(|(ds, f)| Change {
                ds,
                old: f.batches,
                new: Vec::new(),
            })
            .collect();
        if !to_read.is_empty() {
            // the engine's file list may predate these partitions: a stale list would read
            // them as empty and the fingerprint would hide that for good
            engine.register_table(&scan.table_name()?)?;
        }
        let days: Vec<Ds> = to_read.iter().map(|(d, _)| *d).collect();
        let mut rows = read_partitions(engine, scan, &days)?;
        for (ds, fingerprint) in to_read {
            let batches = read(rows.remove(&ds).unwrap_or_default())?;
            fed.insert(
                ds,
                Fed {
                    fingerprint,
                    batches: batches.clone(),
                    owner: None,
                },
            );
            match changes.iter_mut().find(|c| c.ds == ds) {
                Some(c) => c.new = batches,
                None => changes.push(Change {
                    ds,
                    old: Vec::new(),
                    new: batches,
                }),
            }
        }
        changes.sort_by_key(|c| c.ds);
        Ok(changes)
    }
}

/// The rows of partitions `days` of a scan, by partition: one scan per run of consecutive days
/// (a scan per day would plan a query and list the table's files each time), split by the
/// scan's `ds` column; a scan without one is read a day at a time.
pub(crate) fn read_partitions(
    engine: &Session,
    scan: &Scan,
    days: &[Ds],
) -> Result<BTreeMap<Ds, Vec<RecordBatch>>> {
    let mut out: BTreeMap<Ds, Vec<RecordBatch>> = BTreeMap::new();
    for run in PartitionRange::contiguous(days) {
        let mut s = scan.clone();
        s.range = Some(run);
        let (schema, batches) = engine.scan(&s)?;
        // `ds` must be the partition's own value: not a select of the user's, never NULL
        let own_ds = !scan
            .query
            .selects
            .as_ref()
            .is_some_and(|m| m.contains_key("ds"));
        let day_col = schema.index_of("ds").ok().filter(|&i| {
            own_ds
                && matches!(
                    schema.field(i).data_type(),
                    DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Date32
                )
                && batches.iter().all(|b| b.column(i).null_count() == 0)
        });
        match day_col {
            Some(i) if run.len() > 1 => {
                for b in batches {
                    split_by_day(&b, i, &mut out)?;
                }
            }
            _ if run.len() == 1 => {
                out.insert(run.start, batches);
            }
            _ => {
                for ds in run.days() {
                    s.range = Some(PartitionRange::new(ds, ds));
                    out.insert(ds, engine.scan(&s)?.1);
                }
            }
        }
    }
    Ok(out)
}

/// Appends the rows of `b` to their day's batches, keeping their order (column `col` holds
/// the day).
fn split_by_day(
    b: &RecordBatch,
    col: usize,
    out: &mut BTreeMap<Ds, Vec<RecordBatch>>,
) -> Result<()> {
    let days = cast(b.column(col), &DataType::Utf8)
        .map_err(|e| crate::error::Error::arrow("reading partition days", e))?;
    let days = days.as_string::<i32>();
    let mut start = 0;
    for i in 1..=b.num_rows() {
        if i == b.num_rows() || days.value(i) != days.value(start) {
            let ds = Ds::parse(days.value(start))?;
            out.entry(ds).or_default().push(b.slice(start, i - start));
            start = i;
        }
    }
    Ok(())
}
