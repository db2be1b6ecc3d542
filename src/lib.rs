//! # weft
//!
//! weft builds and maintains ML training data from Chronon's compiled configs, incrementally.
//!
//! Architecture, from the outside in:
//! - [`config`] reads compiled Join / GroupBy / StagingQuery JSON into a typed model.
//! - [`warehouse`] is the embedded storage: Hive-layout Parquet tables under a folder, with
//!   table properties and crash-safe partition writes.
//! - [`aggregate`] implements Chronon's aggregation operations as mergeable partial aggregates
//!   (pure Rust, no dataflow): argMap parsing, output types, update / merge / finalize.
//! - [`sql`] is the SQL engine (DataFusion with Spark functions) that applies Chronon queries
//!   (selects, wheres, partition bounds) and runs staging queries ([`staging`]).
//! - [`dataflow`] is the only module that touches timely and differential-dataflow: the join
//!   computation is one differential dataflow whose inputs (left rows, GroupBy source rows)
//!   are collections; a batch backfill feeds every partition at one epoch and runs to
//!   completion, and the continuous materializer will feed later partitions as deltas to the
//!   same dataflow.
//! - [`join`] plans a join (parts, windows, output columns), loads inputs through [`sql`],
//!   drives the dataflow and writes output partitions.
//! - [`groupby`] writes GroupBy backfill tables (per key and day, the values as of the end of
//!   the day) with the join planner, dataflow and windows operator: a GroupBy is computed as
//!   the one part of an entity-left join, never by a second aggregation.
//! - [`cli`] is the `weft` command line; [`demo`] generates a realistic sample warehouse.

pub mod aggregate;
// clap turns these doc comments into `--help` text, where `<DIR>` is meant literally.
#[allow(rustdoc::invalid_html_tags)]
pub mod cli;
pub mod config;
pub mod dataflow;
pub mod demo;
pub mod engine;
pub mod error;
pub mod groupby;
pub mod join;
pub mod label;
pub mod logging;
pub mod online;
pub mod partition;
pub mod sql;
pub mod staging;
pub mod warehouse;

pub use error::{Error, Result};
