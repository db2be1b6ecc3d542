//! Regressions of the running join's bootstrap side (found by the log bootstrap tests): a
//! run that fails on a log partition must not leave that partition marked as fed, and a column
//! a log table gains after the join started must be read. Each compares a long-lived
//! `JoinRunner` with a fresh backfill over the same inputs.

use crate::bootfix;
use crate::reference;
use arrow::datatypes::DataType;
use bootfix::*;
use reference::data::read_table;
use reference::harness::{options, outputs_equal, warehouse};
use reference::{output_table, Ty, V};
use std::collections::BTreeMap;
use weft::join::bootstrap::log_schema::LoggingSchema;

const V2: &str = "unit_test_user_transactions_v2_amount_dollars_sum";

/// The first run fails (a schema hash without its property); once the property is written the
/// same runner must use the log partition.
#[test]
fn a_failed_run_does_not_mark_the_log_partition_fed() {
    let db = db(1, 10);
    let (_dir, wh) = warehouse(&db);
    let base = join(
        "t.base",
        vec![reference::conf::part(user_transactions(), &[], None)],
    );
    run_base(&wh, &db, &base);
    let rows = rows_by_id(&wh, &output_table(&base));
    let s = LoggingSchema {
        join_name: "t.j".into(),
        keys: vec![("request_id".into(), DataType::Utf8)],
        values: vec![
            (SUM_30D.into(), DataType::Int64),
            (SUM_15D.into(), DataType::Int64),
        ],
    };
    let log: Vec<(String, Vec<V>)> = rows
        .iter()
        .filter(|((_, d), _)| *d == end_day())
        .map(|((id, d), _)| {
            (
                d.clone(),
                vec![V::s(&s.hash()), V::s(id), V::Int(1), V::Int(2)],
            )
        })
        .collect();
    write_table(
        &wh,
        "test.t_j_logged",
        &[
            ("schema_hash", Ty::Str),
            ("request_id", Ty::Str),
            (SUM_30D, Ty::I64),
            (SUM_15D, Ty::I64),
        ],
        &log,
    );
    let tn = weft::warehouse::TableName::parse("test.t_j_logged").unwrap();
    wh.set_properties(
        &tn,
        &BTreeMap::from([("chronon_log_table".to_string(), "true".to_string())]),
    )
    .unwrap();
    let mut j = join(
        "t.j",
        vec![reference::conf::part(user_transactions(), &[], None)],
    );
    j["bootstrapParts"] = serde_json::json!([{"table": "test.t_j_logged"}]);
    let engine = weft::engine::Context::new(&wh).unwrap();
    let mut runner = weft::engine::JoinRunner::new(&reference::conf::parse(&j)).unwrap();
    let opts = options(&run());
    runner.run(&engine, &opts, &|_, _, _| {}).unwrap_err(); // unknown schema hash: correct
    wh.set_properties(
        &tn,
        &BTreeMap::from([(format!("schema_hash_{}", s.hash()), s.to_json())]),
    )
    .unwrap();
    engine.refresh().unwrap();
    runner.run(&engine, &opts, &|_, _, _| {}).unwrap(); // succeeds, but covered 0 / computed 50
    let mut fresh = j.clone();
    fresh["metaData"]["name"] = serde_json::json!("t.fresh");
    run_join(&wh, &fresh); // covered 10 / computed 40
    outputs_equal(
        &read_table(&wh, &output_table(&j)),
        &read_table(&wh, &output_table(&fresh)),
        "runner",
        "fresh",
    )
    .unwrap();
}

/// A later log partition adds a column (a new logged feature): the runner reads it.
#[test]
fn a_log_column_added_later_is_read() {
    let db = db(1, 10);
    let (_dir, wh) = warehouse(&db);
    let parts = || {
        vec![
            reference::conf::part(user_transactions(), &[], None),
            reference::conf::part(user_transactions_v2(), &[], None),
        ]
    };
    let base = join("t.base", parts());
    run_base(&wh, &db, &base);
    let rows = rows_by_id(&wh, &output_table(&base));
    let s1 = LoggingSchema {
        join_name: "t.j".into(),
        keys: vec![("request_id".into(), DataType::Utf8)],
        values: vec![
            (SUM_30D.into(), DataType::Int64),
            (SUM_15D.into(), DataType::Int64),
        ],
    };
    let mut s2 = s1.clone();
    s2.values.push((V2.into(), DataType::Int64));
    let tn = weft::warehouse::TableName::parse("test.t_j_logged").unwrap();
    let log1: Vec<(String, Vec<V>)> = rows
        .iter()
        .filter(|((_, d), _)| *d == end_day())
        .map(|((id, d), _)| {
            (
                d.clone(),
                vec![V::s(&s1.hash()), V::s(id), V::Int(1), V::Int(2)],
            )
        })
        .collect();
    write_table(
        &wh,
        "test.t_j_logged",
        &[
            ("schema_hash", Ty::Str),
            ("request_id", Ty::Str),
            (SUM_30D, Ty::I64),
            (SUM_15D, Ty::I64),
        ],
        &log1,
    );
    wh.set_properties(
        &tn,
        &BTreeMap::from([
            ("chronon_log_table".to_string(), "true".to_string()),
            (format!("schema_hash_{}", s1.hash()), s1.to_json()),
        ]),
    )
    .unwrap();
    let mut j = join("t.j", parts());
    j["bootstrapParts"] = serde_json::json!([{"table": "test.t_j_logged"}]);
    let engine = weft::engine::Context::new(&wh).unwrap();
    let mut runner = weft::engine::JoinRunner::new(&reference::conf::parse(&j)).unwrap();
    let opts = options(&run());
    runner.run(&engine, &opts, &|_, _, _| {}).unwrap();
    // the join's logging gained v2: a new column from a later flatten, for an earlier day
    let log2: Vec<(String, Vec<V>)> = rows
        .iter()
        .filter(|((_, d), _)| *d == day(DAYS - 2))
        .map(|((id, d), _)| {
            (
                d.clone(),
                vec![V::s(&s2.hash()), V::s(id), V::Int(1), V::Int(2), V::Int(3)],
            )
        })
        .collect();
    write_table(
        &wh,
        "test.t_j_logged",
        &[
            ("schema_hash", Ty::Str),
            ("request_id", Ty::Str),
            (SUM_30D, Ty::I64),
            (SUM_15D, Ty::I64),
            (V2, Ty::I64),
        ],
        &log2,
    );
    wh.set_properties(
        &tn,
        &BTreeMap::from([(format!("schema_hash_{}", s2.hash()), s2.to_json())]),
    )
    .unwrap();
    engine.refresh().unwrap();
    let r = runner.run(&engine, &opts, &|_, _, _| {}).unwrap();
    // the logged v2 values came from the log, for exactly the logged rows
    let prov = r.provenance.expect("a bootstrapped run records provenance");
    assert_eq!(
        prov.columns[V2].bootstrap,
        vec![log2.len() as u64],
        "{prov:?}"
    );
    let mut fresh = j.clone();
    fresh["metaData"]["name"] = serde_json::json!("t.fresh");
    let rf = run_join(&wh, &fresh);
    let fresh_prov = rf
        .provenance
        .expect("a bootstrapped run records provenance");
    assert_eq!(
        fresh_prov.columns[V2].bootstrap,
        vec![log2.len() as u64],
        "{fresh_prov:?}"
    );
    outputs_equal(
        &read_table(&wh, &output_table(&j)),
        &read_table(&wh, &output_table(&fresh)),
        "runner",
        "fresh",
    )
    .unwrap();
}
