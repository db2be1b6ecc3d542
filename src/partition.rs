//! Daily partitions: the `ds` string (`yyyy-MM-dd`, UTC), day arithmetic, and inclusive
//! partition ranges split into steps (chronon-semantics §1.1).

use std::fmt;

use chrono::{Datelike, NaiveDate};

use crate::error::{Error, Result};

/// Milliseconds in one partition (one UTC day).
pub const DAY_MS: i64 = 86_400_000;

/// The earliest and latest event times weft accepts: 0001-01-01 and 9999-12-31 (UTC), in epoch
/// milliseconds. A `ts` outside is almost always in the wrong unit (seconds, nanoseconds).
pub const MIN_TS: i64 = -62_135_596_800_000;
pub const MAX_TS: i64 = 253_402_300_799_999;

/// Whether an epoch-millisecond time is one weft can place on its calendar.
pub fn ts_in_range(ms: i64) -> bool {
    (MIN_TS..=MAX_TS).contains(&ms)
}

/// A daily partition, stored as days since 1970-01-01.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct Ds(pub i32);

impl Ds {
    /// Parses `yyyy-MM-dd`.
    pub fn parse(s: &str) -> Result<Ds> {
        let d = NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").map_err(|_| {
            Error::Usage(format!(
                "`{s}` is not a partition date; expected yyyy-MM-dd, e.g. 2026-01-31"
            ))
        })?;
        Ok(Ds(d.num_days_from_ce() - EPOCH_CE))
    }
    /// The partition that contains epoch millisecond `ms` (UTC). Times outside
    /// [`MIN_TS`, `MAX_TS`] are refused where data is read; here they saturate instead of
    /// wrapping around.
    pub fn of_millis(ms: i64) -> Ds {
        Ds(ms
            .div_euclid(DAY_MS)
            .clamp(i32::MIN as i64 / 2, i32::MAX as i64 / 2) as i32)
    }
    /// Midnight (UTC) at the start of this partition, in epoch milliseconds.
    pub fn start_millis(self) -> i64 {
        self.0 as i64 * DAY_MS
    }
    pub fn shift(self, days: i32) -> Ds {
        Ds(self.0 + days)
    }
    pub fn date(self) -> NaiveDate {
        // days outside chrono's calendar (only from times refused where data enters) show
        // as its first or last day rather than panicking
        NaiveDate::from_num_days_from_ce_opt(self.0.saturating_add(EPOCH_CE)).unwrap_or(
            if self.0 < 0 {
                NaiveDate::MIN
            } else {
                NaiveDate::MAX
            },
        )
    }
    /// Today's partition (UTC).
    pub fn today() -> Ds {
        Ds::of_millis(chrono::Utc::now().timestamp_millis())
    }
}

const EPOCH_CE: i32 = 719_163; // NaiveDate 1970-01-01 .num_days_from_ce()

impl fmt::Display for Ds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.date();
        write!(f, "{:04}-{:02}-{:02}", d.year(), d.month(), d.day())
    }
}

/// An inclusive range of partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PartitionRange {
    pub start: Ds,
    pub end: Ds,
}

impl PartitionRange {
    pub fn new(start: Ds, end: Ds) -> Self {
        PartitionRange { start, end }
    }
    pub fn is_empty(&self) -> bool {
        self.start > self.end
    }
    pub fn days(&self) -> impl Iterator<Item = Ds> {
        (self.start.0..=self.end.0).map(Ds)
    }
    pub fn len(&self) -> usize {
        if self.is_empty() {
            0
        } else {
            (self.end.0 - self.start.0 + 1) as usize
        }
    }
    pub fn contains(&self, ds: Ds) -> bool {
        self.start <= ds && ds <= self.end
    }
    /// Consecutive chunks of at most `n` partitions.
    pub fn steps(&self, n: usize) -> Vec<PartitionRange> {
        let n = n.max(1) as i32;
        let mut out = Vec::new();
        let mut s = self.start.0;
        while s <= self.end.0 {
            let e = (s + n - 1).min(self.end.0);
            out.push(PartitionRange::new(Ds(s), Ds(e)));
            s = e + 1;
        }
        out
    }
    /// Splits a sorted set of partitions into maximal contiguous ranges.
    pub fn contiguous(days: &[Ds]) -> Vec<PartitionRange> {
        let mut out: Vec<PartitionRange> = Vec::new();
        for &d in days {
            match out.last_mut() {
                Some(r) if r.end.0 + 1 == d.0 => r.end = d,
                _ => out.push(PartitionRange::new(d, d)),
            }
        }
        out
    }
}

impl fmt::Display for PartitionRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}, {}]", self.start, self.end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ds_round_trips_and_aligns_with_millis() {
        let d = Ds::parse("2026-01-31").unwrap();
        assert_eq!(d.to_string(), "2026-01-31");
        assert_eq!(Ds::of_millis(d.start_millis()), d);
        assert_eq!(Ds::of_millis(d.start_millis() - 1), d.shift(-1));
        assert_eq!(Ds::parse("1970-01-01").unwrap(), Ds(0));
        assert!(Ds::parse("2026-13-01").is_err());
    }

    #[test]
    fn steps_and_contiguous() {
        let r = PartitionRange::new(Ds(0), Ds(6));
        let s = r.steps(3);
        assert_eq!(s.len(), 3);
        assert_eq!(s[2], PartitionRange::new(Ds(6), Ds(6)));
        let c = PartitionRange::contiguous(&[Ds(1), Ds(2), Ds(4)]);
        assert_eq!(
            c,
            vec![
                PartitionRange::new(Ds(1), Ds(2)),
                PartitionRange::new(Ds(4), Ds(4))
            ]
        );
    }
}
