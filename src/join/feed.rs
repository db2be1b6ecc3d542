//! What a running join has fed into its dataflow, per input and partition: the partition's
//! fingerprint and the rows read (Arrow batches, after the query). Syncing an input against
//! the warehouse finds new, re-landed and removed partitions; a re-landed or removed
//! partition is retracted with exactly the rows that were fed, so the dataflow sees a true
//! delta.

use std::collections::{BTreeMap, HashMap};

use arrow::record_batch::RecordBatch;

use crate::error::Result;
use crate::partition::{Ds, PartitionRange};
use crate::sql::scan::Scan;
use crate::sql::Engine;

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

struct Fed {
    fingerprint: u64,
    batches: Vec<RecordBatch>,
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

    /// The rows fed for a partition.
    pub fn batches(&self, input: InputId, ds: Ds) -> &[RecordBatch] {
        self.fed
            .get(&input)
            .and_then(|m| m.get(&ds))
            .map_or(&[], |f| &f.batches)
    }

    /// Brings the fed partitions of `input` in line with the warehouse for the days
    /// `want` accepts: reads new and re-landed partitions, and retracts fed partitions that
    /// changed or disappeared. `current` lists the input's partitions and fingerprints.
    pub fn sync(
        &mut self,
        engine: &Engine,
        scan: &Scan,
        input: InputId,
        current: &[(Ds, u64)],
        want: &dyn Fn(Ds) -> bool,
        read: &dyn Fn(Vec<RecordBatch>) -> Result<Vec<RecordBatch>>,
    ) -> Result<Vec<Change>> {
        let fed = self.fed.entry(input).or_default();
        let mut changes = Vec::new();
        let now: BTreeMap<Ds, u64> = current.iter().copied().collect();
        // fed partitions that changed or vanished
        let gone: Vec<Ds> = fed
            .iter()
            .filter(|(ds, f)| now.get(ds) != Some(&f.fingerprint))
            .map(|(ds, _)| *ds)
            .collect();
        for ds in gone {
            let old = fed.remove(&ds).map(|f| f.batches).unwrap_or_default();
            changes.push(Change {
                ds,
                old,
                new: Vec::new(),
            });
        }
        let mut registered = false;
        for (&ds, &fingerprint) in &now {
            if fed.contains_key(&ds) || !(want(ds) || changes.iter().any(|c| c.ds == ds)) {
                continue;
            }
            if !registered {
                // the engine's file list may predate this partition: a stale list would read
                // it as empty and the fingerprint would hide that for good
                engine.register_table(&scan.table_name()?)?;
                registered = true;
            }
            let mut s = scan.clone();
            s.range = Some(PartitionRange::new(ds, ds));
            let (_, batches) = engine.scan(&s)?;
            let batches = read(batches)?;
            fed.insert(
                ds,
                Fed {
                    fingerprint,
                    batches: batches.clone(),
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
