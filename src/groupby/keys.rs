//! The keys of a GroupBy backfill: every distinct key read from the sources (with its values
//! in the source's types, for the output's key columns), and which keys have a row on which
//! day. Events: a key appears on day `D` when it has an event that some window ending at
//! `E = (D+1) 00:00` reaches (`window start ≤ ts < E`; all history if a window is
//! unbounded). Entities: the keys of snapshot `D`.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use arrow::array::{new_empty_array, Array, ArrayRef, UInt32Array};
use arrow::compute::{cast, interleave, take};
use arrow::datatypes::Field;
use arrow::record_batch::RecordBatch;

use crate::aggregate::value::column_values;
use crate::dataflow::records::{Item, Key, Value};
use crate::dataflow::spec::{window_start, PartKind};
use crate::dataflow::Update;
use crate::error::{Error, Result};
use crate::join::inputs::{encode_key, key_arrays};
use crate::join::plan::PartPlan;
use crate::partition::{Ds, DAY_MS};

/// Index of a distinct key.
pub type KeyId = u32;

/// Every distinct key seen, and the days each one has a row on.
pub struct KeyIndex {
    /// The output key columns (GroupBy key names, types of the first source).
    fields: Vec<Field>,
    ids: HashMap<Key, KeyId>,
    keys: Vec<Key>,
    /// Where each key's values are: `(chunk, row)`.
    at: Vec<(usize, usize)>,
    /// Each key's values, to order a day's keys.
    order: Vec<Vec<Value>>,
    /// Key columns of the rows that introduced new keys, one chunk per source batch.
    chunks: Vec<Vec<ArrayRef>>,
    presence: Presence,
}

enum Presence {
    /// Per key: per day of event time, the latest event time of each source partition
    /// holding events of that day (so a re-landed partition can be taken out); per column:
    /// its window (`None` = unbounded) and tail hop, which give the earliest event a query
    /// at `E` sees.
    Events {
        latest: Vec<BTreeMap<i32, BTreeMap<i32, i64>>>,
        columns: Vec<(Option<i64>, i64)>,
    },
    /// Keys per snapshot partition.
    Snapshots(BTreeMap<i32, BTreeSet<KeyId>>),
}

impl KeyIndex {
    pub fn new(part: &PartPlan, fields: Vec<Field>) -> KeyIndex {
        let presence = match part.kind {
            PartKind::Events => Presence::Events {
                latest: Vec::new(),
                columns: part.columns.iter().map(|c| (c.window_ms, c.hop)).collect(),
            },
            _ => Presence::Snapshots(BTreeMap::new()),
        };
        KeyIndex {
            fields,
            ids: HashMap::new(),
            keys: Vec::new(),
            at: Vec::new(),
            order: Vec::new(),
            chunks: Vec::new(),
            presence,
        }
    }

    /// The output key fields.
    pub fn fields(&self) -> &[Field] {
        &self.fields
    }

    /// Registers the keys of a source batch and the rows `updates` made of it (from
    /// [`crate::join::inputs::source_rows`]). Snapshot rows are remembered only for `days`.
    pub fn add(
        &mut self,
        part: &PartPlan,
        batch: &RecordBatch,
        updates: &[Update],
        days: &BTreeSet<Ds>,
        what: &str,
    ) -> Result<()> {
        let canonical = key_arrays(batch, &part.right_keys, what)?;
        let mut new_rows: Vec<u32> = Vec::new();
        let mut new_keys: Vec<Key> = Vec::new();
        let mut pending: HashSet<Key> = HashSet::new();
        for i in 0..batch.num_rows() {
            if let Some(k) = encode_key(&canonical, i) {
                if !self.ids.contains_key(&k) && pending.insert(k.clone()) {
                    new_rows.push(i as u32);
                    new_keys.push(k);
                }
            }
        }
        if !new_rows.is_empty() {
            self.add_keys(batch, new_rows, new_keys, what)?;
        }
        for ((group, item), r) in updates {
            if *r <= 0 {
                continue;
            }
            let Item::Row { ds, ts, .. } = item else {
                continue;
            };
            let id = self.ids[&group.1];
            match &mut self.presence {
                Presence::Events { latest, .. } => {
                    let day = ts.div_euclid(DAY_MS) as i32;
                    let t = latest[id as usize]
                        .entry(day)
                        .or_default()
                        .entry(*ds)
                        .or_insert(*ts);
                    *t = (*t).max(*ts);
                }
                Presence::Snapshots(by_day) => {
                    if days.contains(&Ds(*ds)) {
                        by_day.entry(*ds).or_default().insert(id);
                    }
                }
            }
        }
        Ok(())
    }

    /// Takes out the event rows `updates` (all the rows of the source partitions they come
    /// from: a re-landed or removed partition).
    pub fn remove(&mut self, updates: &[Update]) {
        let Presence::Events { latest, .. } = &mut self.presence else {
            return;
        };
        for ((group, item), _) in updates {
            let (Item::Row { ds, ts, .. }, Some(&id)) = (item, self.ids.get(&group.1)) else {
                continue;
            };
            let day = ts.div_euclid(DAY_MS) as i32;
            let by_day = &mut latest[id as usize];
            if let Some(parts) = by_day.get_mut(&day) {
                parts.remove(ds);
                if parts.is_empty() {
                    by_day.remove(&day);
                }
            }
        }
    }

    fn add_keys(
        &mut self,
        batch: &RecordBatch,
        rows: Vec<u32>,
        keys: Vec<Key>,
        what: &str,
    ) -> Result<()> {
        let rows = UInt32Array::from(rows);
        let mut columns = Vec::with_capacity(self.fields.len());
        for f in &self.fields {
            let c = batch.column_by_name(f.name()).ok_or_else(|| {
                Error::Usage(format!("{what}: key column `{}` is not selected", f.name()))
            })?;
            let c = take(c, &rows, None).map_err(|e| Error::arrow(what, e))?;
            columns.push(cast(&c, f.data_type()).map_err(|e| Error::arrow(what, e))?);
        }
        let values: Vec<Vec<Value>> = columns.iter().map(column_values).collect::<Result<_>>()?;
        let chunk = self.chunks.len();
        for (r, k) in keys.into_iter().enumerate() {
            let id = self.keys.len() as KeyId;
            self.ids.insert(k.clone(), id);
            self.keys.push(k);
            self.at.push((chunk, r));
            self.order
                .push(values.iter().map(|v| v[r].clone()).collect());
            if let Presence::Events { latest, .. } = &mut self.presence {
                latest.push(BTreeMap::new());
            }
        }
        self.chunks.push(columns);
        Ok(())
    }

    /// The keys that have a row on day `d`, ordered by their values.
    pub fn keys_on(&self, d: Ds) -> Vec<KeyId> {
        let mut ids: Vec<KeyId> = match &self.presence {
            Presence::Events { latest, columns } => {
                let end = d.shift(1).start_millis();
                let start = columns
                    .iter()
                    .map(|&(w, hop)| window_start(w, hop, end))
                    .min()
                    .unwrap_or(end);
                latest
                    .iter()
                    .enumerate()
                    .filter(|(_, days)| {
                        days.range(..=d.0).next_back().is_some_and(|(_, parts)| {
                            parts.values().max().is_some_and(|&t| t >= start && t < end)
                        })
                    })
                    .map(|(id, _)| id as KeyId)
                    .collect()
            }
            Presence::Snapshots(by_day) => by_day
                .get(&d.0)
                .map(|s| s.iter().copied().collect())
                .unwrap_or_default(),
        };
        ids.sort_by(|a, b| self.order[*a as usize].cmp(&self.order[*b as usize]));
        ids
    }

    /// Forgets the snapshot keys of a written day.
    pub fn forget(&mut self, d: Ds) {
        if let Presence::Snapshots(by_day) = &mut self.presence {
            by_day.remove(&d.0);
        }
    }

    /// The encoded key of an id (as the dataflow groups it).
    pub fn key(&self, id: KeyId) -> &Key {
        &self.keys[id as usize]
    }

    /// The key columns for a list of keys (repeats allowed).
    pub fn columns(&self, ids: &[KeyId]) -> Result<Vec<ArrayRef>> {
        let at: Vec<(usize, usize)> = ids.iter().map(|&id| self.at[id as usize]).collect();
        self.fields
            .iter()
            .enumerate()
            .map(|(c, f)| {
                if self.chunks.is_empty() {
                    return Ok(new_empty_array(f.data_type()));
                }
                let arrays: Vec<&dyn Array> = self.chunks.iter().map(|ch| ch[c].as_ref()).collect();
                interleave(&arrays, &at).map_err(|e| Error::arrow("building key columns", e))
            })
            .collect()
    }
}
