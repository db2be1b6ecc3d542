//! The demo data generator: a realistic, deterministic sample warehouse for the configs in
//! `dataflows/` (the raw `data.*` tables of its README's TABLES section), so every scenario
//! can be run end to end without real data.
//!
//! This module owns the simulated population and its events (`world`: Zipf-skewed users
//! and merchants, checkouts, purchases with point-in-time edge cases, page views, refunds),
//! the tables' schemas and Arrow batches (`tables`), and writing them through the
//! [`crate::warehouse`] ([`mod@generate`]). It reads nothing from the warehouse except the
//! properties of the tables it writes.

pub mod generate;
mod tables;
mod world;

use crate::error::{Error, Result};
use crate::partition::Ds;

pub use generate::{
    append_days, generate, TableSummary, EXTERNAL_RANGE, LEGACY_END, SOURCE_PROPERTY,
};

/// What to generate. The same spec (including the seed) always gives the same data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoSpec {
    /// First partition (inclusive).
    pub start: Ds,
    /// Last partition (inclusive).
    pub end: Ds,
    pub users: usize,
    pub merchants: usize,
    pub checkouts_per_day: usize,
    pub seed: u64,
}

impl Default for DemoSpec {
    /// 2026-01-01..2026-02-28 (59 days), 2,000 users, 200 merchants, 500 checkouts a day.
    fn default() -> Self {
        DemoSpec {
            start: Ds::parse("2026-01-01").expect("valid date"),
            end: Ds::parse("2026-02-28").expect("valid date"),
            users: 2_000,
            merchants: 200,
            checkouts_per_day: 500,
            seed: 42,
        }
    }
}

impl DemoSpec {
    pub(crate) fn validate(&self) -> Result<()> {
        if self.start > self.end {
            return Err(Error::Usage(format!(
                "demo data: start {} is after end {}",
                self.start, self.end
            )));
        }
        if self.users == 0 || self.merchants == 0 {
            return Err(Error::Usage(
                "demo data needs at least one user and one merchant".into(),
            ));
        }
        Ok(())
    }
}
