//! [`OutputState`]: the join's output values not yet written (or kept to rebuild written
//! partitions), per left partition and `(row, part)`. Each partition keeps its encoded rows
//! back to back in chunks of memory, not one allocation per row: applying an epoch copies
//! them in, writing a partition reads them in order, and forgetting it frees a few chunks.

use std::collections::BTreeSet;

use crate::aggregate::codec;
use crate::dataflow::records::{row_ds, PartValues, RowId, Value};
use crate::dataflow::FastMap;
use crate::partition::Ds;

/// Bytes per chunk; an entry larger than this gets a chunk of its own.
const CHUNK: usize = 1 << 20;

/// The output values not yet written, per `(row, part)`, compactly encoded
/// ([`crate::aggregate::codec`]); an entry with no rows is a pending removal.
#[derive(Default)]
pub struct OutputState {
    /// By left partition, so a written partition is forgotten in one step.
    partitions: FastMap<Ds, Partition>,
}

impl OutputState {
    /// Applies one epoch's output upserts from the dataflow; returns the left partitions
    /// that changed. Removals go first: a re-landed left row can leave one key and arrive
    /// at another within an epoch, and its new values must win.
    pub fn apply(&mut self, mut changes: Vec<PartValues>) -> BTreeSet<Ds> {
        changes.sort_by_key(|(_, _, v)| !v.is_empty());
        let mut touched = BTreeSet::new();
        for (row, part, rows) in changes {
            touched.insert(row_ds(row));
            // a removal is kept (as no rows) until written: it overrides what is on disk
            self.partitions
                .entry(row_ds(row))
                .or_default()
                .put((row, part), &rows);
        }
        touched
    }

    /// The pending values of one partition.
    pub(super) fn partition(&self, ds: Ds) -> Option<&Partition> {
        self.partitions.get(&ds)
    }

    /// The pending entry of a row for a part, decoded: `Some(empty)` is a removal.
    pub(super) fn raw(&self, row: RowId, part: u16) -> Option<Vec<Vec<Value>>> {
        let rows = self.partitions.get(&row_ds(row))?.rows(row, part)?;
        Some(rows.map(codec::decode).collect())
    }

    /// The values of a row for a part (empty when none), in a stable order.
    pub fn get(&self, row: RowId, part: u16) -> Vec<Vec<Value>> {
        let mut out = self.raw(row, part).unwrap_or_default();
        out.sort();
        out
    }

    /// Forgets the rows of a partition (after it was written and is not maintained).
    pub fn forget(&mut self, ds: Ds) {
        self.partitions.remove(&ds);
    }
}

/// One left partition's entries.
#[derive(Default)]
pub(super) struct Partition {
    /// `(row, part)` → where its entry is: chunk, offset, length.
    slots: FastMap<(RowId, u16), (u32, u32, u32)>,
    /// Entries back to back: each a row count (u32), then every row's length (u32) and bytes.
    chunks: Vec<Vec<u8>>,
    /// Bytes of entries replaced since.
    stale: usize,
    /// Bytes of every entry, replaced or not.
    total: usize,
}

impl Partition {
    fn put(&mut self, key: (RowId, u16), rows: &[Box<[u8]>]) {
        let size = 4 + rows.iter().map(|r| 4 + r.len()).sum::<usize>();
        let (chunk, bytes) = self.room(size);
        let offset = bytes.len();
        bytes.extend_from_slice(&(rows.len() as u32).to_le_bytes());
        for r in rows {
            bytes.extend_from_slice(&(r.len() as u32).to_le_bytes());
            bytes.extend_from_slice(r);
        }
        self.place(key, chunk, offset, size);
    }

    /// Puts an entry already laid out (when compacting).
    fn put_raw(&mut self, key: (RowId, u16), entry: &[u8]) {
        let (chunk, bytes) = self.room(entry.len());
        let offset = bytes.len();
        bytes.extend_from_slice(entry);
        self.place(key, chunk, offset, entry.len());
    }

    /// The chunk an entry of `size` bytes goes to (a new one when the last is too full).
    fn room(&mut self, size: usize) -> (usize, &mut Vec<u8>) {
        let fits = self
            .chunks
            .last()
            .is_some_and(|c| c.capacity() - c.len() >= size);
        if !fits {
            self.chunks.push(Vec::with_capacity(size.max(CHUNK)));
        }
        let chunk = self.chunks.len() - 1;
        (chunk, &mut self.chunks[chunk])
    }

    /// Records where an entry was put; compacts once replaced entries outweigh live ones.
    fn place(&mut self, key: (RowId, u16), chunk: usize, offset: usize, size: usize) {
        self.total += size;
        let slot = (chunk as u32, offset as u32, size as u32);
        if let Some((_, _, old)) = self.slots.insert(key, slot) {
            self.stale += old as usize;
            if self.stale > CHUNK && self.stale * 2 > self.total {
                self.compact();
            }
        }
    }

    /// Copies the live entries into fresh chunks, dropping replaced ones.
    fn compact(&mut self) {
        let mut fresh = Partition::default();
        for (&key, &(c, o, n)) in &self.slots {
            let entry = &self.chunks[c as usize][o as usize..(o + n) as usize];
            fresh.put_raw(key, entry);
        }
        *self = fresh;
    }

    /// The encoded rows of a row's entry for a part, if it has one.
    pub(super) fn rows(&self, row: RowId, part: u16) -> Option<Rows<'_>> {
        let &(c, o, n) = self.slots.get(&(row, part))?;
        let entry = &self.chunks[c as usize][o as usize..(o + n) as usize];
        Some(Rows {
            left: read_u32(entry),
            bytes: &entry[4..],
        })
    }
}

fn read_u32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// The encoded rows of one entry, in the order they were given.
#[derive(Clone, Copy)]
pub(super) struct Rows<'a> {
    left: u32,
    bytes: &'a [u8],
}

impl<'a> Iterator for Rows<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let n = read_u32(self.bytes) as usize;
        let row = &self.bytes[4..4 + n];
        self.bytes = &self.bytes[4 + n..];
        Some(row)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left as usize, Some(self.left as usize))
    }
}

impl ExactSizeIterator for Rows<'_> {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataflow::records::{encode_row, row_id};

    fn l(x: i64) -> Value {
        Value::Long(x)
    }

    /// Upserts, removals, several rows per entry and enough replaced bytes to compact: every
    /// entry reads back as last put.
    #[test]
    fn entries_read_back_as_last_put_across_chunks_and_compaction() {
        let mut state = OutputState::default();
        let ds = Ds(20_000);
        let mut want: std::collections::BTreeMap<(RowId, u16), Vec<Vec<Value>>> =
            Default::default();
        for round in 0..10i64 {
            let mut changes = Vec::new();
            for i in 0..20_000u32 {
                let row = row_id(ds, i);
                let rows: Vec<Vec<Value>> = match (i as i64 + round) % 5 {
                    0 => vec![],
                    1 => vec![vec![l(round), l(i as i64)], vec![Value::str("x"), l(0)]],
                    _ => vec![vec![l(round * 1000 + i as i64), Value::Null]],
                };
                changes.push((row, 1, rows.iter().map(|r| encode_row(r)).collect()));
                want.insert((row, 1), rows);
            }
            assert_eq!(state.apply(changes), [ds].into_iter().collect());
        }
        let p = state.partition(ds).expect("partition kept");
        let live: usize = p.slots.values().map(|s| s.2 as usize).sum();
        let held: usize = p.chunks.iter().map(Vec::len).sum();
        // ten rounds without compaction would hold ten times the live bytes
        assert!(
            held <= live + CHUNK + 64,
            "replaced entries were compacted away: {held} bytes held for {live} live"
        );
        for ((row, part), rows) in &want {
            let mut rows = rows.clone();
            rows.sort();
            assert_eq!(state.get(*row, *part), rows);
            assert_eq!(state.raw(*row, *part).map(|r| r.len()), Some(rows.len()));
        }
        assert_eq!(
            state.raw(row_id(ds, 0), 2),
            None,
            "no entry for another part"
        );
        state.forget(ds);
        assert!(state.partition(ds).is_none());
    }
}
