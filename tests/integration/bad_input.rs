//! Bad input gives errors that say what is wrong and where: missing tables, bad select and
//! where expressions (with the table's columns), malformed config files (with the file and the
//! JSON path), invalid JSON (with line and column) and invalid Source unions.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use indexmap::IndexMap;
use serde_json::json;

use weft::config::{load_conf, parse_conf, Conf, Query};
use weft::partition::{Ds, PartitionRange};
use weft::sql::scan::Scan;
use weft::sql::Session;
use weft::staging::{run, StagingOptions};
use weft::warehouse::{TableName, Warehouse};
use weft::Error;

fn ds(s: &str) -> Ds {
    Ds::parse(s).unwrap()
}

/// `data.purchases(user, amount, ts)` over two days.
fn warehouse() -> (tempfile::TempDir, Warehouse) {
    let dir = tempfile::tempdir().unwrap();
    let wh = Warehouse::open(dir.path()).unwrap();
    let schema = Arc::new(Schema::new(vec![
        Field::new("user", DataType::Utf8, true),
        Field::new("amount", DataType::Int64, true),
        Field::new("ts", DataType::Int64, true),
    ]));
    for (i, d) in ["2026-01-01", "2026-01-02"].iter().enumerate() {
        let b = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(vec!["a", "b"])) as ArrayRef,
                Arc::new(Int64Array::from(vec![10 + i as i64, 20 + i as i64])),
                Arc::new(Int64Array::from(vec![
                    ds(d).start_millis(),
                    ds(d).start_millis() + 1,
                ])),
            ],
        )
        .unwrap();
        wh.write_partition(
            &TableName::parse("data.purchases").unwrap(),
            &[("ds".into(), d.to_string())],
            schema.clone(),
            &[b],
        )
        .unwrap();
    }
    (dir, wh)
}

fn scan(table: &str, selects: Option<&[(&str, &str)]>, wheres: &[&str]) -> Scan {
    Scan {
        table: table.to_string(),
        query: Query {
            selects: selects.map(|s| {
                s.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<IndexMap<_, _>>()
            }),
            wheres: wheres.iter().map(|w| w.to_string()).collect(),
            ..Default::default()
        },
        fill_ins: vec![],
        range: Some(PartitionRange::new(ds("2026-01-01"), ds("2026-01-02"))),
        purpose: "left of join risk.checkout.v1".to_string(),
    }
}

const PURPOSE: &str = "left of join risk.checkout.v1";

// ---------------------------------------------------------------- scans

#[test]
fn good_scan_applies_selects_wheres_and_range() {
    let (_dir, wh) = warehouse();
    let engine = Session::new(&wh).unwrap();
    let mut s = scan(
        "data.purchases",
        Some(&[("user", "user"), ("cents", "amount * 100")]),
        &["amount > 10"],
    );
    s.fill_ins = vec![("ts".into(), None)];
    s.range = Some(PartitionRange::new(ds("2026-01-02"), ds("2026-01-02")));
    let (schema, batches) = engine.scan(&s).unwrap();
    let cols: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(cols, vec!["user", "cents", "ts"]);
    let n: usize = batches.iter().map(|b| b.num_rows()).sum();
    assert_eq!(
        n, 2,
        "both rows of 2026-01-02 (amounts 11, 21), none of 2026-01-01"
    );
    let cents: Vec<i64> = batches
        .iter()
        .flat_map(|b| {
            let c = b
                .column(1)
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap()
                .clone();
            c.values().to_vec()
        })
        .collect();
    let mut cents = cents;
    cents.sort();
    assert_eq!(cents, vec![1100, 2100]);
}

/// A source query's `setups` run (once) before it is read, read-only: a setup that would
/// write is refused naming the setup, and nothing is written.
#[test]
fn source_setups_run_read_only_before_the_scan() {
    let (_dir, wh) = warehouse();
    let engine = Session::new(&wh).unwrap();
    let mut s = scan("data.purchases", None, &[]);
    s.query.setups = vec!["INSERT INTO data.purchases VALUES ('x', 1, 0, '2026-01-01')".into()];
    let e = engine.scan(&s).unwrap_err().to_string();
    assert!(
        e.contains("setup `INSERT INTO data.purchases") && e.contains("read-only"),
        "{e}"
    );
    s.query.setups = vec!["SELECT no_such_function(1)".into()];
    let e = engine.scan(&s).unwrap_err().to_string();
    assert!(e.contains("setup `SELECT no_such_function(1)`"), "{e}");
    s.query.setups = vec![
        "SET spark.sql.shuffle.partitions=4".into(),
        "SELECT 1".into(),
    ];
    let (_, batches) = engine.scan(&s).unwrap();
    let n: usize = batches.iter().map(|b| b.num_rows()).sum();
    assert!(n > 0);
    // nothing was appended by the refused INSERT
    s.query.setups.clear();
    let (_, again) = engine.scan(&s).unwrap();
    assert_eq!(again.iter().map(|b| b.num_rows()).sum::<usize>(), n);
}

#[test]
fn scan_of_a_missing_table_names_the_table_and_the_purpose() {
    let (_dir, wh) = warehouse();
    let engine = Session::new(&wh).unwrap();
    let e = engine.scan(&scan("data.purchase", None, &[])).unwrap_err();
    assert!(matches!(e, Error::NotFound { .. }), "{e:?}");
    let m = e.to_string();
    assert!(m.contains("data.purchase`"), "{m}");
    assert!(m.contains(PURPOSE), "{m}");
    // suggests the closest table names to catch typos
    assert!(m.contains("data.purchases"), "{m}");

    // an unknown namespace too
    let m = engine
        .scan(&scan("nowhere.purchases", None, &[]))
        .unwrap_err()
        .to_string();
    assert!(
        m.contains("nowhere.purchases") && m.contains(PURPOSE),
        "{m}"
    );
}

#[test]
fn select_with_an_unknown_column_names_table_select_and_columns() {
    let (_dir, wh) = warehouse();
    let engine = Session::new(&wh).unwrap();
    let s = scan(
        "data.purchases",
        Some(&[("user", "user"), ("amount_cents", "amout * 100")]),
        &[],
    );
    let e = engine.scan(&s).unwrap_err();
    assert!(matches!(e, Error::Sql { .. }), "{e:?}");
    let m = e.to_string();
    assert!(m.contains("data.purchases"), "{m}");
    assert!(m.contains(PURPOSE), "{m}");
    assert!(m.contains("amount_cents"), "names the select output: {m}");
    assert!(m.contains("amout * 100"), "names the expression: {m}");
    assert!(m.contains("amout"), "{m}");
    assert!(
        m.contains("user, amount, ts"),
        "lists the table's columns: {m}"
    );
    // the good select is not blamed
    assert!(!m.contains("select `user`"), "{m}");
}

#[test]
fn bad_where_names_table_where_and_columns() {
    let (_dir, wh) = warehouse();
    let engine = Session::new(&wh).unwrap();
    let s = scan(
        "data.purchases",
        Some(&[("user", "user")]),
        &["amount > 0", "country = 'US'"],
    );
    let m = engine.scan(&s).unwrap_err().to_string();
    assert!(m.contains("data.purchases") && m.contains(PURPOSE), "{m}");
    assert!(m.contains("where `country = 'US'`"), "names the where: {m}");
    assert!(!m.contains("where `amount > 0`"), "{m}");
    assert!(m.contains("country"), "{m}");
    assert!(
        m.contains("user, amount, ts"),
        "lists the table's columns: {m}"
    );

    // a where that does not parse at all
    let s = scan("data.purchases", None, &["amount >"]);
    let m = engine.scan(&s).unwrap_err().to_string();
    assert!(
        m.contains("where `amount >`") && m.contains("data.purchases"),
        "{m}"
    );
}

#[test]
fn staging_query_without_ds_is_rejected() {
    let (_dir, wh) = warehouse();
    let engine = Session::new(&wh).unwrap();
    let sq = match parse_conf(
        Path::new("staging_queries/t/x.v1"),
        &json!({"metaData": {"name": "t.no_ds", "outputNamespace": "out"}, "query": "SELECT user FROM data.purchases"}).to_string(),
    )
    .unwrap()
    {
        Conf::StagingQuery(s) => *s,
        _ => unreachable!(),
    };
    let opts = StagingOptions {
        end_ds: ds("2026-01-02"),
        start_override: None,
        step_days: 1,
        run_first_hole: false,
    };
    let m = run(&engine, &sq, &opts, &|_, _, _| {})
        .unwrap_err()
        .to_string();
    assert!(m.contains("t.no_ds") && m.contains("no `ds` column"), "{m}");

    // no outputNamespace: the error names the field to set
    let sq = match parse_conf(
        Path::new("staging_queries/t/x.v1"),
        &json!({"metaData": {"name": "t.no_ns"}, "query": "SELECT user, ds FROM data.purchases"})
            .to_string(),
    )
    .unwrap()
    {
        Conf::StagingQuery(s) => *s,
        _ => unreachable!(),
    };
    let m = run(&engine, &sq, &opts, &|_, _, _| {})
        .unwrap_err()
        .to_string();
    assert!(m.contains("metaData.outputNamespace"), "{m}");

    // a staging query over a missing table names it
    let sq = match parse_conf(
        Path::new("staging_queries/t/x.v1"),
        &json!({"metaData": {"name": "t.missing", "outputNamespace": "out"}, "query": "SELECT user, ds FROM data.nothing"}).to_string(),
    )
    .unwrap()
    {
        Conf::StagingQuery(s) => *s,
        _ => unreachable!(),
    };
    let m = run(&engine, &sq, &opts, &|_, _, _| {})
        .unwrap_err()
        .to_string();
    assert!(m.contains("t.missing") && m.contains("data.nothing"), "{m}");
}

// ---------------------------------------------------------------- config files

fn join_doc(operation: serde_json::Value) -> serde_json::Value {
    json!({
        "metaData": {"name": "risk.checkout.v1", "outputNamespace": "risk"},
        "left": {"events": {"table": "data.checkouts", "query": {"selects": {"user": "user"}, "timeColumn": "ts"}}},
        "joinParts": [{
            "groupBy": {
                "metaData": {"name": "risk.purchases.v1"},
                "sources": [{"events": {"table": "data.purchases", "query": {"selects": {"user": "user", "amount": "amount"}}}}],
                "keyColumns": ["user"],
                "aggregations": [{"inputColumn": "amount", "operation": operation, "windows": [{"length": 7, "timeUnit": 1}]}]
            }
        }]
    })
}

#[test]
fn good_join_config_parses() {
    match parse_conf(
        Path::new("joins/risk/checkout.v1"),
        &join_doc(json!(7)).to_string(),
    )
    .unwrap()
    {
        Conf::Join(j) => {
            let agg = &j.join_parts[0].group_by.aggregations.as_ref().unwrap()[0];
            assert_eq!(agg.operation, weft::config::Operation::Sum);
            assert_eq!(j.left.table(), "data.checkouts");
        }
        other => panic!("expected a join, got {:?}", other.kind()),
    }
}

#[test]
fn bad_field_names_the_file_and_json_path() {
    let e = parse_conf(
        Path::new("joins/risk/checkout.v1"),
        &join_doc(json!(42)).to_string(),
    )
    .unwrap_err();
    match &e {
        Error::Config {
            file,
            path,
            message,
        } => {
            assert_eq!(file, "joins/risk/checkout.v1");
            assert_eq!(path, "joinParts[0].groupBy.aggregations[0].operation");
            assert!(message.contains("42"), "{message}");
            assert!(message.contains("7=Sum"), "lists valid codes: {message}");
        }
        other => panic!("expected a config error, got {other:?}"),
    }
    let m = e.to_string();
    assert!(
        m.contains("joins/risk/checkout.v1")
            && m.contains("joinParts[0].groupBy.aggregations[0].operation"),
        "{m}"
    );

    // The same through load_conf: the error names the real file path.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("joins/risk/checkout.v1");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(
        &file,
        serde_json::to_string_pretty(&join_doc(json!("SUMM"))).unwrap(),
    )
    .unwrap();
    let m = load_conf(&file).unwrap_err().to_string();
    assert!(m.contains(&file.display().to_string()), "{m}");
    assert!(
        m.contains("joinParts[0].groupBy.aggregations[0].operation") && m.contains("SUMM"),
        "{m}"
    );

    // A missing file is an I/O error naming it.
    let m = load_conf(&dir.path().join("joins/nope.v1"))
        .unwrap_err()
        .to_string();
    assert!(m.contains("joins/nope.v1"), "{m}");

    // Wrong types elsewhere: a boolean that is neither true/false nor 0/1, a window length string.
    let mut doc = join_doc(json!(7));
    doc["metaData"]["online"] = json!(2);
    let m = parse_conf(Path::new("joins/risk/checkout.v1"), &doc.to_string())
        .unwrap_err()
        .to_string();
    assert!(
        m.contains("metaData.online") && m.contains("boolean"),
        "{m}"
    );
    let mut doc = join_doc(json!(7));
    doc["joinParts"][0]["groupBy"]["aggregations"][0]["windows"][0]["length"] = json!("7d");
    let m = parse_conf(Path::new("joins/risk/checkout.v1"), &doc.to_string())
        .unwrap_err()
        .to_string();
    assert!(
        m.contains("joinParts[0].groupBy.aggregations[0].windows[0].length"),
        "{m}"
    );
}

#[test]
fn invalid_json_names_line_and_column() {
    let text = "{\n  \"metaData\": {\"name\": \"t.x\"},\n  \"query\": \"SELECT 1\",,\n}";
    let e = parse_conf(Path::new("staging_queries/t/x.v1"), text).unwrap_err();
    match &e {
        Error::Config {
            file,
            path,
            message,
        } => {
            assert_eq!(file, "staging_queries/t/x.v1");
            assert_eq!(path, "line 3 column 23");
            assert!(message.contains("not valid JSON"), "{message}");
        }
        other => panic!("expected a config error, got {other:?}"),
    }
    // truncated file
    let m = parse_conf(Path::new("joins/a/b.v1"), "{\"metaData\": {")
        .unwrap_err()
        .to_string();
    assert!(
        m.contains("joins/a/b.v1") && m.contains("line 1 column 14"),
        "{m}"
    );

    // valid JSON that is no known kind of config, outside a kind folder
    let m = parse_conf(Path::new("misc/x.v1"), "{\"foo\": 1}")
        .unwrap_err()
        .to_string();
    assert!(m.contains("misc/x.v1") && m.contains("joins/"), "{m}");
}

#[test]
fn source_with_both_events_and_entities_is_rejected() {
    let mut doc = join_doc(json!(7));
    doc["left"] = json!({
        "events": {"table": "data.checkouts", "query": {}},
        "entities": {"snapshotTable": "data.users", "query": {}}
    });
    let e = parse_conf(Path::new("joins/risk/checkout.v1"), &doc.to_string()).unwrap_err();
    let m = e.to_string();
    assert!(m.contains("joins/risk/checkout.v1"), "{m}");
    assert!(
        m.contains("exactly one of `events`, `entities` or `joinSource`"),
        "{m}"
    );
    match &e {
        Error::Config { path, .. } => assert_eq!(path, "left"),
        other => panic!("expected a config error, got {other:?}"),
    }

    // neither set, inside a GroupBy source: the path points at the source
    let mut doc = join_doc(json!(7));
    doc["joinParts"][0]["groupBy"]["sources"][0] = json!({});
    let e = parse_conf(Path::new("joins/risk/checkout.v1"), &doc.to_string()).unwrap_err();
    match &e {
        Error::Config { path, message, .. } => {
            assert_eq!(path, "joinParts[0].groupBy.sources[0]");
            assert!(message.contains("exactly one of"), "{message}");
        }
        other => panic!("expected a config error, got {other:?}"),
    }
}

// ------------------------------------------------------------------------------------------
// Times in the wrong unit (issue: one nanosecond `ts` used to NULL every row's features)
// ------------------------------------------------------------------------------------------

mod wrong_unit_ts {
    use crate::reference::conf::{self, W};
    use crate::reference::harness::{backfill, check, options, warehouse};
    use crate::reference::{ds_start, Db, Op, Run, Table, Ty, HOUR, V};

    const D: &str = "2026-02-02";

    fn db(left_ts: i64, source_ts: i64) -> Db {
        let mut left = Table::new(&[("row_id", Ty::I64), ("user", Ty::Str), ("ts", Ty::I64)]);
        left.push(
            D,
            vec![V::Int(1), V::s("a"), V::Int(ds_start(D) + 5 * HOUR)],
        );
        left.push(D, vec![V::Int(2), V::s("a"), V::Int(left_ts)]);
        let mut ev = Table::new(&[("user", Ty::Str), ("val", Ty::I64), ("ts", Ty::I64)]);
        ev.push(
            "2026-02-01",
            vec![V::s("a"), V::Int(7), V::Int(ds_start("2026-02-01") + HOUR)],
        );
        ev.push(D, vec![V::s("a"), V::Int(3), V::Int(ds_start(D) + HOUR)]);
        ev.push(D, vec![V::s("a"), V::Int(100), V::Int(source_ts)]);
        let mut db = Db::default();
        db.add("data.left", left);
        db.add("data.events", ev);
        db
    }

    fn join() -> serde_json::Value {
        let gb = conf::group_by(
            "test.ev.v1",
            vec![conf::events_source(
                "data.events",
                &["user", "val"],
                Some("ts"),
            )],
            &["user"],
            Some(vec![conf::agg("val", Op::Sum, &[W::Days(3)], &[], &[])]),
            Some(0),
        );
        conf::join(
            "test.units.v1",
            conf::events_left("data.left", &["row_id", "user"]),
            vec![conf::part(gb, &[], None)],
        )
    }

    #[test]
    fn a_left_ts_in_nanoseconds_fails_the_run_naming_table_partition_and_value() {
        let nanos = (ds_start(D) + 6 * HOUR) * 1_000_000;
        let (_dir, wh) = warehouse(&db(nanos, ds_start(D) + 2 * HOUR));
        let e = backfill(&wh, &join(), &options(&Run::through(D))).unwrap_err();
        assert!(
            e.contains("data.left")
                && e.contains(&format!("ds={D}"))
                && e.contains(&nanos.to_string())
                && e.contains("epoch milliseconds"),
            "{e}"
        );
        assert!(
            !wh.exists(&crate::reference::data::tn("test.test_units_v1")),
            "nothing written"
        );
    }

    #[test]
    fn a_source_ts_in_nanoseconds_is_counted_and_skipped_and_the_other_rows_are_right() {
        for bad in [i64::MAX, i64::MIN, (ds_start(D) + 2 * HOUR) * 1_000_000] {
            let db = db(ds_start(D) + 6 * HOUR, bad);
            let (_dir, wh) = warehouse(&db);
            let r = backfill(&wh, &join(), &options(&Run::through(D))).unwrap();
            assert_eq!(r.events[0].1.bad_ts, 1, "the row is counted");
            // the reference without that row
            let mut good = db.clone();
            good.table_mut("data.events")
                .parts
                .get_mut(D)
                .unwrap()
                .pop();
            crate::reference::harness::assert_ok(check(&join(), &good, &Run::through(D)));
            let act = crate::reference::data::read_table(&wh, "test.test_units_v1");
            let (_, rows) = &act.parts[D];
            assert!(rows.iter().all(|r| r[3] == V::Int(10)), "{rows:?}");
        }
    }
}

#[test]
fn an_unclosed_macro_is_an_error_naming_the_config_and_the_text() {
    let (_dir, wh) = warehouse();
    let engine = Session::new(&wh).unwrap();
    let sq = match parse_conf(
        Path::new("staging_queries/t/unclosed.v1"),
        &json!({
            "metaData": {"name": "t.unclosed.v1", "outputNamespace": "out"},
            "query": "SELECT user, ds FROM data.purchases WHERE ds BETWEEN '{{ start_date' AND '{{ end_date }}'",
            "startPartition": "2026-01-01"
        })
        .to_string(),
    )
    .unwrap()
    {
        Conf::StagingQuery(sq) => sq,
        _ => panic!(),
    };
    let opts = StagingOptions::through(ds("2026-01-02"));
    let m = run(&engine, &sq, &opts, &|_, _, _| {})
        .unwrap_err()
        .to_string();
    assert!(
        m.contains("t.unclosed.v1")
            && m.contains("{{ start_date")
            && m.contains("malformed template macro"),
        "{m}"
    );
    assert!(
        !wh.exists(&TableName::parse("out.t_unclosed_v1").unwrap()),
        "nothing written"
    );
}

#[test]
fn start_after_end_is_an_error_not_an_empty_run() {
    let conf =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("dataflows/production/joins/risk/checkout.v1");
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_weft"))
        .arg("--warehouse")
        .arg(dir.path())
        .args([
            "backfill",
            "--start-ds",
            "2026-02-02",
            "--end-ds",
            "2026-02-01",
            "--conf",
        ])
        .arg(&conf)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--start-ds 2026-02-02 is after --end-ds 2026-02-01"),
        "{err}"
    );
}

#[test]
fn reading_a_warehouse_that_does_not_exist_is_an_error_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let weft = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_weft"))
            .current_dir(dir.path())
            .env_remove("WEFT_WAREHOUSE")
            .args(args)
            .output()
            .unwrap()
    };
    for args in [
        &["tables"][..],
        &["--warehouse", "typo", "show", "data.x"][..],
        &["--warehouse", "typo", "query", "SELECT 1"][..],
    ] {
        let out = weft(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("warehouse folder") && err.contains("not found"),
            "{args:?}: {err}"
        );
    }
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "no folder was created"
    );
    let out = weft(&["--warehouse", "s3://bucket/wh", "tables"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("s3://bucket/wh") && err.contains("object stores are not supported"),
        "{err}"
    );
    // without --warehouse, the demo's warehouse is found when it is the only one
    std::fs::create_dir_all(dir.path().join("weft-demo/warehouse")).unwrap();
    let out = weft(&["tables"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("using the demo's warehouse weft-demo/warehouse"));
}

/// `weft tables` lists a table it cannot read with its error and carries on with the others
/// (and exits non-zero so scripts notice).
#[test]
fn tables_lists_a_broken_table_with_its_error_and_carries_on() {
    let (dir, wh) = warehouse();
    let broken = wh
        .table_dir(&TableName::parse("data.broken").unwrap())
        .join("ds=2026-01-01");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::write(broken.join("part-0.parquet"), b"not parquet at all").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_weft"))
        .arg("--warehouse")
        .arg(dir.path())
        .arg("tables")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let broken_line = stdout
        .lines()
        .find(|l| l.contains("data.broken"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(broken_line.contains("unreadable"), "{stdout}");
    let good = stdout
        .lines()
        .find(|l| l.contains("data.purchases"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(good.contains("2026-01-01 .. 2026-01-02"), "{stdout}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("part-0.parquet"));
}

/// A join listing the same part twice (so its output columns repeat).
fn join_part_listed_twice() -> serde_json::Value {
    use crate::reference::conf::{self, W};
    use crate::reference::Op;
    let gb = conf::group_by(
        "test.twice.v1",
        vec![conf::events_source(
            "data.purchases",
            &["user", "amount"],
            Some("ts"),
        )],
        &["user"],
        Some(vec![conf::agg("amount", Op::Sum, &[W::Days(1)], &[], &[])]),
        Some(0),
    );
    conf::join(
        "test.twice_join.v1",
        conf::events_left("data.purchases", &["user"]),
        vec![conf::part(gb.clone(), &[], None), conf::part(gb, &[], None)],
    )
}

#[test]
fn a_join_part_listed_twice_is_refused_at_plan_time_naming_the_parts_and_the_column() {
    let j = join_part_listed_twice();
    let (_dir, wh) = warehouse();
    let e = crate::reference::harness::backfill(
        &wh,
        &j,
        &crate::reference::harness::options(&crate::reference::Run::through("2026-01-02")),
    )
    .unwrap_err();
    assert!(
        e.contains("joinParts[1]")
            && e.contains("test_twice_v1_amount_sum_1d")
            && e.contains("joinParts[0]"),
        "{e}"
    );
    assert!(
        !wh.exists(&TableName::parse("test.test_twice_join_v1").unwrap()),
        "nothing written"
    );
}

#[test]
fn validate_makes_the_planning_checks_a_backfill_makes() {
    let j = join_part_listed_twice();
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("joins/test/twice_join.v1");
    std::fs::create_dir_all(f.parent().unwrap()).unwrap();
    std::fs::write(&f, j.to_string()).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_weft"))
        .arg("validate")
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("joinParts[1]") && err.contains("also produced by"),
        "{err}"
    );
}

#[test]
fn a_missing_table_suggests_the_closest_names_not_the_first_alphabetically() {
    let (_dir, wh) = warehouse();
    let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, true)]));
    for t in [
        "data.aaa",
        "data.abc",
        "data.activity",
        "data.alerts",
        "data.audit",
        "data.billing",
        "data.carts",
        "data.clicks",
        "data.purchases_v2",
    ] {
        let b = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(Int64Array::from(vec![1])) as ArrayRef],
        )
        .unwrap();
        wh.write_partition(
            &TableName::parse(t).unwrap(),
            &[("ds".into(), "2026-01-01".into())],
            schema.clone(),
            &[b],
        )
        .unwrap();
    }
    let m = wh
        .missing_table(&TableName::parse("data.purchse").unwrap(), PURPOSE)
        .to_string();
    let hint = m
        .split("closest tables: ")
        .nth(1)
        .unwrap_or_else(|| panic!("{m}"));
    assert!(hint.starts_with("data.purchases"), "{m}");
    assert!(
        !hint.contains("data.aaa"),
        "unrelated names are not suggested: {m}"
    );
}

/// An empty `metaData.name` and an `outputNamespace` that is not a plain namespace (a path
/// such as `../evil`) are refused naming the field, by validate and backfill alike.
#[test]
fn an_empty_name_or_a_path_as_namespace_is_refused_naming_the_field() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("dataflows/production/joins/risk/checkout.v1");
    let base: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    for (field, value, expect) in [
        ("name", "", "metaData.name"),
        ("outputNamespace", "../evil", "metaData.outputNamespace"),
        ("outputNamespace", "a/b", "metaData.outputNamespace"),
    ] {
        let mut doc = base.clone();
        doc["metaData"][field] = json!(value);
        let conf = parse_conf(&path, &doc.to_string()).unwrap();
        let e = weft::config::naming::output_table(conf.meta())
            .unwrap_err()
            .to_string();
        assert!(e.contains(expect), "{field}={value}: {e}");
        let Conf::Join(j) = conf else { panic!() };
        assert!(
            weft::engine::JoinRunner::new(&j).is_err(),
            "{field}={value}: the join plans"
        );
    }
}
