//! # weft
//!
//! weft builds and maintains ML training data from Chronon's compiled configs, incrementally.
//!
//! Architecture, from the ground up:
//! - [`error`] is the one error type: what to look at, the fix, its [`ErrorKind`] and whether
//!   retrying helps. [`partition`] is the `ds` calendar; [`schedule`] plans which partitions
//!   a run computes and walks its steps.
//! - [`config`] reads compiled Join / GroupBy / StagingQuery JSON into a typed model.
//! - [`warehouse`] is the embedded storage: Hive-layout Parquet tables under a folder, with
//!   table properties and crash-safe partition writes.
//! - [`sql`] is the SQL session (DataFusion with Spark functions) that applies Chronon queries
//!   (selects, wheres, partition bounds); [`staging`] runs staging queries on it.
//! - [`aggregate`] implements Chronon's aggregation operations as mergeable partial aggregates
//!   (pure Rust, no dataflow).
//! - [`dataflow`] is the only module that touches timely and differential-dataflow: the one
//!   [`dataflow::Runtime`] of a process (or of each process of a timely cluster, see
//!   [`dataflow::Topology`]), into which every pipeline's dataflow is installed, and the
//!   operators (windows, tiles, bootstrap stage).
//! - [`join`] is a join as data: its plan (parts, windows, output columns, bootstrap,
//!   derivations, semantic hash), its inputs as dataflow updates and its output rows;
//!   [`label`] plans label parts and maintains the labeled tables; [`groupby`] plans GroupBy
//!   backfill tables (a GroupBy is the one part of an entity-left join, never a second
//!   aggregation) and shapes their rows.
//! - [`engine`] is the one incremental path every command drives: a [`engine::Context`] (SQL
//!   session + runtime) and an [`engine::Engine`] that hosts pipelines — joins with their
//!   bootstrap and label sides and versioning ([`engine::JoinRunner`]), GroupBy tables
//!   ([`engine::GroupByRunner`]), staging queries, flattened logs — and steps them.
//! - [`materialize`] is `weft materialize`: every pipeline of a config folder in one engine,
//!   stepped epoch by epoch as inputs land, with a state folder, status and snapshot queries.
//! - [`online`] serves joins and GroupBys (stores, upload, stream, fetcher, HTTP);
//!   [`logging`] logs served responses (codec, sinks, Kafka) and flattens them into
//!   `_logged` tables.
//! - [`cli`] is the `weft` command line; [`demo`] generates a realistic sample warehouse;
//!   [`failpoint`] holds the named crash points the crash-matrix tests arm; [`panics`] counts
//!   and logs every panic of the process; [`memory`] holds the process's memory settings.

// The public API: what a program embedding weft drives.
pub mod config;
pub mod demo;
pub mod engine;
pub mod error;
pub mod logging;
pub mod materialize;
pub mod memory;
pub mod online;
pub mod panics;
pub mod partition;
pub mod schedule;
pub mod sql;
pub mod staging;
pub mod warehouse;

// Building blocks behind the engine: public only so weft's own integration tests, benches and
// binary can reach them; not a stable API, and hidden from the docs.
#[doc(hidden)]
pub mod aggregate;
// clap turns these doc comments into `--help` text, where `<DIR>` is meant literally.
#[doc(hidden)]
#[allow(rustdoc::invalid_html_tags)]
pub mod cli;
#[doc(hidden)]
pub mod dataflow;
#[doc(hidden)]
pub mod failpoint;
#[doc(hidden)]
pub mod groupby;
#[doc(hidden)]
pub mod join;
#[doc(hidden)]
pub mod label;

pub use error::{Error, ErrorKind, Result, Retry};
