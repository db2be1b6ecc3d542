//! The demo data generator: a realistic, deterministic sample warehouse for the configs in
//! `dataflows/` (the raw `data.*` tables of its README's TABLES section), so every scenario
//! can be run end to end without real data.
//!
//! This module owns the simulated population and its events ([`world`]: Zipf-skewed users
//! and merchants, checkouts, purchases with point-in-time edge cases, page views, refunds),
//! the tables' schemas and Arrow batches ([`tables`]), and writing them through the
//! [`crate::warehouse`] ([`generate`]). It reads nothing from the warehouse except the
//! properties of the tables it writes.

pub mod generate;
mod tables;
mod world;

pub use generate::{generate, DemoSpec, TableSummary, EXTERNAL_RANGE, LEGACY_END, SOURCE_PROPERTY};
