//! weft's integration tests, in one test binary (`cargo test --test integration`): each suite
//! below is a module, so the crate and the shared fixtures are compiled and linked once instead
//! of once per suite (Cargo.toml sets `autotests = false`). Run one suite with
//! `cargo test --test integration <suite>::`. Tests of all suites run concurrently in this one
//! process: a test must not change process-wide state (environment, current directory, global
//! subscribers or hooks) and must use its own temporary directories and free ports.
//!
//! Proptest suites set `failure_persistence` to `WithSource("proptest-regressions")`: with this
//! main.rs beside them, proptest's default (`SourceParallel`) would look for
//! `tests/proptest-regressions/<suite>.txt` instead of `<suite>.proptest-regressions`.

/// Proptest's failure persistence for every proptest suite here: `<suite>.proptest-regressions`
/// beside the suite's source file, read before new cases and appended to on a failure.
fn regressions_beside_suite() -> Option<Box<dyn proptest::test_runner::FailurePersistence>> {
    Some(Box::new(
        proptest::test_runner::FileFailurePersistence::WithSource("proptest-regressions"),
    ))
}

/// A property suite's case count: the suite's own variable (e.g. `DELTA_CASES`), else
/// `PROPTEST_CASES`, else `default`. CI runs the defaults; set the variables to search longer.
fn cases(own: Option<&str>, default: u32) -> u32 {
    own.into_iter()
        .chain(["PROPTEST_CASES"])
        .find_map(|v| std::env::var(v).ok()?.parse().ok())
        .unwrap_or(default)
}

/// A router served on a free loopback port from a tokio runtime of its own, for as long as
/// this lives (or until [`Served::stop`]).
struct Served {
    addr: std::net::SocketAddr,
    rt: tokio::runtime::Runtime,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Served {
    /// Shuts the server down gracefully and checks that it ended without an error.
    fn stop(self) {
        let _ = self.stop.send(());
        self.rt
            .block_on(self.server)
            .expect("the server task")
            .expect("the server ends cleanly");
    }
}

/// Serves `router` on a free loopback port (one runtime thread).
fn serve_on_loopback(router: axum::Router) -> Served {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = rt.spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });
    Served {
        addr,
        rt,
        stop,
        server,
    }
}

// Shared fixtures (suites bring them in with `use crate::<fixture>;`).

// Bootstrap fixtures (after Chronon's BootstrapUtils): transactions, queries, user_transactions.
mod bootfix;
// Label fixtures: listing views, entity label snapshots and label events; label-join helpers.
mod labelfix;
// Online fixtures: a compiled-config folder beside the warehouse, uploads, a `redis-server`.
mod onlinefix;
// A naive reference for Chronon join outputs, written from the spec; data, conf and harness helpers.
mod reference;

// Suites.
// IR encode/decode round-trips for all 20 operations; corrupt encodings never panic.
mod aggregate_ir_codec;
// Bad configs, tables and expressions give errors that say what and where.
mod bad_input;
// Generated bad input (mutated configs, damaged partitions, arbitrary HTTP bodies): no panic, clear errors, nothing lost.
mod bad_input_fuzz;
// Cluster mode: 2-process loopback clusters, serializing workers, backfill/label-join/materialize under (1,1), (1,2), (2,1), lost peers.
mod cluster;
// Bootstrap with derivations, external and contextual fields, and bootstrap validation.
mod bootstrap_derivations;
// Log bootstrap: per-schema coverage of logged rows, priorities, failures and fallbacks.
mod bootstrap_log;
// Regressions of the running join's bootstrap side against a fresh backfill.
mod bootstrap_runner_regressions;
// Table bootstraps: priority, column-level filling, coverage, no work for covered parts.
mod bootstrap_tables;
// Every compiled config in dataflows/production loads into the typed model.
mod configs;
// `weft demo` end to end through the binary.
mod demo;
// One engine hosting three joins and a GroupBy table that share a GroupBy: after every delta == fresh runs == reference.
mod engine_pipelines;
// `weft materialize`: after every action of a seeded script, every maintained table == a fresh backfill; readiness, lock, HTTP.
mod materialize;
// The materializer's crash matrix: aborted at each failpoint, restarted, equal to the oracle.
mod materialize_crash;
// `weft explain`: the plan and provenance agree with the run; CLI and JSON output.
mod explain;
// The first join end to end against the DuckDB oracle (tests/oracle/pit_join.py).
mod first_join;
// GroupBy backfill tables against a naive reference of the spec.
mod group_by_backfill;
// The windows operator fed in epochs equals a reference and a fresh dataflow (proptest).
mod incremental;
// Incremental == recompute for bootstrap deltas through one JoinRunner (proptest).
mod incremental_bootstrap;
// Incremental == recompute for partition deltas through one JoinRunner (proptest).
mod incremental_deltas;
// Incremental == recompute for label joins through one JoinRunner (proptest).
mod incremental_labels;
// Chronon's JoinTest / JoinBasicTest behaviours against the reference.
mod join_behaviours;
// Kafka log sink, `weft log-ingest` and `weft stream --kafka` (mock cluster and Tansu).
mod kafka_logging;
// Label joins: entity and aggregated labels, offsets, label-table evolution, validation.
mod label_join;
// `<join>_labeled` and `<join>_labeled_latest`, also against DuckDB.
mod labeled_tables;
// The log flattener end to end: raw log table to `<join>_logged`, schema evolution, CLI.
mod log_flattener;
// ODM bootstrap scenarios C, D, E, G, H on a generated demo warehouse.
mod odm_bootstrap;
// ODM label scenarios I and J on a generated demo warehouse.
mod odm_labels;
// Online/offline consistency: fetched values equal the offline backfill's.
mod online_consistency;
// Fetching joins online: schema evolution, external sources, HTTP handler and service.
mod online_fetch;
// Conformance of the embedded and Redis online stores; open and failure behaviour.
mod online_store;
// `weft stream` sources: JSON-lines file (with resume) and table replay.
mod online_stream;
// Each of the 20 aggregation operations against the reference and DuckDB SQL.
mod operations;
// The point-in-time matrix of chronon-semantics §3.4, one property test per cell.
mod pit_matrix;
// The README's example outputs, checked against the default demo through the binary.
mod readme_examples;
// Scenario B: serve, log, flatten, then a v2 join bootstrapping from the log.
mod scenario_b;
// Read tasks: done by the worker they name, retracted exactly, failures keep their kind.
mod shard_reads;
// Spark's `/` (DOUBLE division, NULL on zero) wherever a config holds SQL.
mod spark_division;
// Chronon's StagingQueryTest behaviours and the Spark SQL functions configs rely on.
mod staging_query;
// Reuse across config versions: semantic hashes, partial recompute, archiving.
mod versioning;
// The embedded warehouse: Hive layout, crash recovery, atomic replacement, properties.
mod warehouse;
