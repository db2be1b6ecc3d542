//! Stored aggregates: one key's partial aggregates over every event before a day boundary,
//! kept between processes so that a new day's run reads the days its bounded windows reach
//! instead of all history. A base holds what the unbounded columns read: the running IR of
//! each unbounded tile group through the day before the boundary (the same left fold of day
//! tiles `tiles::Tiles::prefix` computes, so values read through a base are bit for bit
//! those of a run over all history) and the running sums of each input an unbounded SUM,
//! COUNT or AVERAGE reads (`running::RunSums`).
//!
//! Encoding (version 1, little-endian): version byte, boundary `i64`; `u32` count of tile
//! groups, each `u32` group index, `u32` column count and per column a `u32` length (0 for an
//! empty IR) and the IR's bytes (`Ir::encode`); `u32` count of inputs, each `u32` input index,
//! `u32` non-null inputs, `i64` multiplicity sum, `i128` long sum and a byte for "all longs".

use super::running::RunSums;
use super::spec::PartSpec;
use super::tiles::{Irs, Layout};

const VERSION: u8 = 1;

/// One key's aggregates over its events before `at` (a day start).
#[derive(Debug, Clone)]
pub struct Base {
    pub at: i64,
    /// `(tile group, IRs of its columns)` for the unbounded tile groups.
    pub prefix: Vec<(usize, Irs)>,
    /// `(input, sums)` for the inputs unbounded running-sum columns read.
    pub sums: Vec<(usize, RunSums)>,
}

impl Base {
    /// The IRs a tile group starts from, when the base has them.
    pub fn prefix_of(&self, group: usize) -> Option<&Irs> {
        self.prefix
            .iter()
            .find(|(g, _)| *g == group)
            .map(|(_, irs)| irs)
    }

    /// The sums an input's running sums start from, when the base has them.
    pub fn sums_of(&self, input: usize) -> Option<&RunSums> {
        self.sums.iter().find(|(i, _)| *i == input).map(|(_, s)| s)
    }

    pub fn encode(&self) -> Vec<u8> {
        let prefix: Vec<(usize, &Irs)> = self.prefix.iter().map(|(g, irs)| (*g, irs)).collect();
        encode(self.at, &prefix, &self.sums)
    }

    /// Decodes a base for a part, checking every index against the part's layout and, with
    /// `check`, every IR against its column's aggregator (bytes checked once need not be
    /// checked again).
    pub fn decode(
        bytes: &[u8],
        spec: &PartSpec,
        layout: &Layout,
        check: bool,
    ) -> Result<Base, String> {
        let mut r = Cursor { bytes, pos: 0 };
        let v = r.take(1)?[0];
        if v != VERSION {
            return Err(format!(
                "stored aggregates of format version {v}; this build reads version {VERSION}"
            ));
        }
        let at = i64::from_le_bytes(r.array()?);
        let mut prefix = Vec::new();
        for _ in 0..r.u32()? {
            let g = r.u32()? as usize;
            let group =
                layout.groups.get(g).filter(|g| g.prefix).ok_or_else(|| {
                    format!("tile group {g} is not an unbounded group of the part")
                })?;
            let n = r.u32()? as usize;
            if n != group.cols.len() {
                return Err(format!(
                    "tile group {g} has {} columns, the stored aggregates {n}",
                    group.cols.len()
                ));
            }
            let mut irs = Vec::with_capacity(n);
            for &ci in &group.cols {
                let len = r.u32()? as usize;
                let b = r.take(len)?;
                irs.push(match (len, check) {
                    (0, _) => None,
                    (_, true) => Some(spec.columns[ci].agg.decode_ir(b)?),
                    (_, false) => Some(crate::aggregate::Ir::decode(b)?),
                });
            }
            prefix.push((g, irs));
        }
        let mut sums = Vec::new();
        for _ in 0..r.u32()? {
            let input = r.u32()? as usize;
            let s = RunSums {
                seen: r.u32()?,
                count: i64::from_le_bytes(r.array()?),
                wide: i128::from_le_bytes(r.array()?),
                longs: r.take(1)?[0] != 0,
            };
            sums.push((input, s));
        }
        if r.pos != bytes.len() {
            return Err(format!("{} bytes left over", bytes.len() - r.pos));
        }
        Ok(Base { at, prefix, sums })
    }
}

/// A base as it was fed: its bytes, decoded on first use (most keys of a new day's run are
/// never queried; their base is only carried on to the next store).
#[derive(Debug)]
pub struct Fed {
    bytes: Vec<u8>,
    decoded: Option<Base>,
}

impl Fed {
    pub fn new(bytes: Vec<u8>) -> Fed {
        Fed {
            bytes,
            decoded: None,
        }
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The boundary, read from the bytes.
    pub fn at(&self) -> i64 {
        self.bytes.get(1..9).map_or(i64::MIN, |b| {
            i64::from_le_bytes(b.try_into().expect("8 bytes"))
        })
    }

    /// The decoded base. The reader checked the bytes before feeding them, so they decode;
    /// if they did not, the error is logged and the key reads as if it had no base.
    pub fn get(&mut self, spec: &PartSpec, layout: &Layout) -> Option<&Base> {
        if self.decoded.is_none() {
            match Base::decode(&self.bytes, spec, layout, false) {
                Ok(b) => self.decoded = Some(b),
                Err(e) => {
                    tracing::error!(error = %e, "stored aggregates did not decode; ignored");
                    return None;
                }
            }
        }
        self.decoded.as_ref()
    }

    /// The same base at a later boundary with no events in between: the bytes with the
    /// boundary replaced.
    pub fn moved_to(&self, at: i64) -> Vec<u8> {
        let mut b = self.bytes.clone();
        if b.len() >= 9 {
            b[1..9].copy_from_slice(&at.to_le_bytes());
        }
        b
    }
}

/// Encodes a base from its parts (see the module doc for the layout).
pub fn encode(at: i64, prefix: &[(usize, &Irs)], sums: &[(usize, RunSums)]) -> Vec<u8> {
    let mut out = vec![VERSION];
    out.extend(at.to_le_bytes());
    out.extend((prefix.len() as u32).to_le_bytes());
    for (g, irs) in prefix {
        out.extend((*g as u32).to_le_bytes());
        out.extend((irs.len() as u32).to_le_bytes());
        for ir in irs.iter() {
            let at = out.len();
            out.extend(0u32.to_le_bytes());
            if let Some(ir) = ir {
                ir.encode(&mut out);
            }
            let len = (out.len() - at - 4) as u32;
            out[at..at + 4].copy_from_slice(&len.to_le_bytes());
        }
    }
    out.extend((sums.len() as u32).to_le_bytes());
    for (i, s) in sums {
        out.extend((*i as u32).to_le_bytes());
        out.extend(s.seen.to_le_bytes());
        out.extend(s.count.to_le_bytes());
        out.extend(s.wide.to_le_bytes());
        out.push(s.longs as u8);
    }
    out
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(|| format!("truncated at byte {}", self.pos))?;
        let b = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(b)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        Ok(self.take(N)?.try_into().expect("length checked"))
    }

    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.array()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::Value;
    use crate::config::Operation;
    use crate::dataflow::spec::{ColumnSpec, PartKind};
    use crate::dataflow::tiles::{Ev, TileCache, Tiles};
    use crate::partition::DAY_MS;

    fn spec() -> PartSpec {
        let col = |op, window| ColumnSpec {
            agg: crate::dataflow::running::tests::agg(op),
            input: 0,
            bucket: None,
            window,
            hop: crate::dataflow::spec::tail_hop(window),
        };
        PartSpec {
            kind: PartKind::Events,
            columns: vec![
                col(Operation::Max, None),
                col(Operation::Sum, None),
                col(Operation::Sum, Some(2 * DAY_MS)),
            ],
        }
    }

    /// A base's bytes decode to the same base; the boundary moves without decoding; truncated
    /// or foreign bytes are errors, not panics.
    #[test]
    fn bases_round_trip_and_bad_bytes_are_errors() {
        let spec = spec();
        let layout = Layout::new(&spec);
        let events: Vec<Ev> = (0..5)
            .map(|i| Ev {
                ts: i * DAY_MS / 2,
                inputs: vec![Value::double(i as f64 * 0.1)],
                mult: 1,
            })
            .collect();
        let mut cache = TileCache::default();
        let mut tiles = Tiles {
            spec: &spec,
            layout: &layout,
            events: &events,
            cache: &mut cache,
            base: None,
        };
        let prefix: Vec<(usize, Irs)> = layout
            .groups
            .iter()
            .enumerate()
            .filter(|(_, g)| g.prefix)
            .map(|(gi, _)| (gi, (*tiles.prefix(gi, 2)).clone()))
            .collect();
        assert!(
            !prefix.is_empty()
                && prefix
                    .iter()
                    .all(|(_, irs)| irs.iter().all(Option::is_some))
        );
        let mut sums = RunSums::default();
        sums.add(0, &events[..4]);
        let base = Base {
            at: 2 * DAY_MS,
            prefix,
            sums: vec![(0, sums)],
        };
        let bytes = base.encode();
        let back = Base::decode(&bytes, &spec, &layout, true).unwrap();
        assert_eq!(back.encode(), bytes);
        assert_eq!(back.sums_of(0), Some(&sums));
        let fed = Fed::new(bytes.clone());
        assert_eq!(fed.at(), 2 * DAY_MS);
        let moved = Fed::new(fed.moved_to(3 * DAY_MS));
        assert_eq!(moved.at(), 3 * DAY_MS);
        assert_eq!(moved.bytes()[9..], bytes[9..]);
        for n in 0..bytes.len() {
            assert!(
                Base::decode(&bytes[..n], &spec, &layout, true).is_err(),
                "{n} bytes"
            );
        }
        let mut other = bytes.clone();
        other[0] = 9;
        assert!(Base::decode(&other, &spec, &layout, true)
            .unwrap_err()
            .contains("version 9"));
        let mut longer = bytes;
        longer.push(0);
        assert!(Base::decode(&longer, &spec, &layout, true).is_err());
    }
}
