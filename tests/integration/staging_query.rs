//! Chronon's StagingQueryTest behaviours (chronon-semantics §8) re-created on a small
//! tempdir warehouse: chunked backfills, skipping existing partitions, auto-expanding schemas,
//! the `latest_date` / `max_date` macros, views with their signal partition, and
//! `historicalBackfill`. Also checks the Spark SQL functions configs rely on.

use std::cell::RefCell;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::util::display::array_value_to_string;
use serde_json::json;

use weft::config::{parse_conf, Conf, StagingQuery};
use weft::partition::Ds;
use weft::sql::Session;
use weft::staging::{run, StagingOptions, StagingReport};
use weft::warehouse::{TableName, Warehouse};

// ---------------------------------------------------------------- helpers

fn ds(s: &str) -> Ds {
    Ds::parse(s).unwrap()
}

fn table(s: &str) -> TableName {
    TableName::parse(s).unwrap()
}

const DAYS: [&str; 6] = [
    "2026-01-01",
    "2026-01-02",
    "2026-01-03",
    "2026-01-04",
    "2026-01-05",
    "2026-01-06",
];

/// `data.events(user, amount, ts)` over 2026-01-01..06: 4 rows on odd dates (alice, bob, alice,
/// carol), 3 on even dates (alice, bob, alice); amount = 10 * (day index + 1) + row index.
fn warehouse_with_events() -> (tempfile::TempDir, Warehouse) {
    let dir = tempfile::tempdir().unwrap();
    let wh = Warehouse::open(dir.path()).unwrap();
    let schema = Arc::new(Schema::new(vec![
        Field::new("user", DataType::Utf8, true),
        Field::new("amount", DataType::Int64, true),
        Field::new("ts", DataType::Int64, true),
    ]));
    for (i, d) in DAYS.iter().enumerate() {
        let mut users = vec!["alice", "bob", "alice"];
        if i % 2 == 0 {
            users.push("carol");
        }
        let amounts: Vec<i64> = (0..users.len())
            .map(|j| (i as i64 + 1) * 10 + j as i64)
            .collect();
        let ts: Vec<i64> = (0..users.len())
            .map(|j| ds(d).start_millis() + j as i64 * 3_600_000)
            .collect();
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(users)) as ArrayRef,
                Arc::new(Int64Array::from(amounts)),
                Arc::new(Int64Array::from(ts)),
            ],
        )
        .unwrap();
        wh.write_partition(
            &table("data.events"),
            &[("ds".into(), d.to_string())],
            schema.clone(),
            &[batch],
        )
        .unwrap();
    }
    (dir, wh)
}

/// Parses a staging query through the config reader, as `weft` does for files.
fn staging_query(doc: serde_json::Value) -> StagingQuery {
    match parse_conf(Path::new("staging_queries/t/x.v1"), &doc.to_string()).unwrap() {
        Conf::StagingQuery(sq) => *sq,
        other => panic!("expected a staging query, got {:?}", other.kind()),
    }
}

fn opts(end: &str, step_days: usize) -> StagingOptions {
    StagingOptions {
        end_ds: ds(end),
        start_override: None,
        step_days,
        run_first_hole: false,
    }
}

/// Runs a staging query, returning the report and the progress messages.
fn run_sq(engine: &Session, sq: &StagingQuery, o: &StagingOptions) -> (StagingReport, Vec<String>) {
    let log = RefCell::new(Vec::new());
    let report = run(engine, sq, o, &|_, _, m: &str| {
        log.borrow_mut().push(m.to_string())
    })
    .unwrap();
    (report, log.into_inner())
}

fn cell(col: &dyn Array, i: usize) -> String {
    if col.is_null(i) {
        "NULL".into()
    } else {
        array_value_to_string(col, i).unwrap()
    }
}

/// Rows as vectors of display strings (NULL for nulls), sorted.
fn rows(batches: &[RecordBatch]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for b in batches {
        for i in 0..b.num_rows() {
            out.push(b.columns().iter().map(|c| cell(c.as_ref(), i)).collect());
        }
    }
    out.sort();
    out
}

fn sql_rows(engine: &Session, sql: &str) -> Vec<Vec<String>> {
    rows(&engine.query(sql, "test").unwrap())
}

fn dss(v: &[&str]) -> Vec<Ds> {
    v.iter().map(|d| ds(d)).collect()
}

// ---------------------------------------------------------------- testStagingQuery

const SUM_QUERY: &str = "SELECT user, SUM(amount) AS total, COUNT(*) AS n, ds FROM data.events \
     WHERE ds BETWEEN '{{ start_date }}' AND '{{end_date}}' GROUP BY user, ds";

#[test]
fn staging_query_backfills_in_steps_and_skips_existing() {
    let (_dir, wh) = warehouse_with_events();
    let engine = Session::new(&wh).unwrap();
    let sq = staging_query(json!({
        "metaData": {
            "name": "sample_team.sample_staging_query.v1",
            "outputNamespace": "sample_ns",
            "team": "sample_team",
            "tableProperties": {"sample_config_json": "{\"sample_key\": \"sample_value\"}", "owner": "ml"}
        },
        "query": SUM_QUERY,
        "startPartition": "2026-01-01",
        "setups": ["CREATE TEMPORARY FUNCTION s2 AS 'com.example.S2'"]
    }));

    let (report, log) = run_sq(&engine, &sq, &opts("2026-01-05", 2));
    let out_name = "sample_ns.sample_team_sample_staging_query_v1";
    assert_eq!(report.output, out_name);
    assert_eq!(report.skipped_existing, 0);
    assert_eq!(report.written, dss(&DAYS[..5]));
    // 2026-01-01, 03, 05 have 3 users, 02 and 04 have 2
    assert_eq!(report.rows, 3 + 2 + 3 + 2 + 3);
    // step_days = 2 chunks the range into [01,02], [03,04], [05,05]
    let steps: Vec<&String> = log.iter().filter(|m| m.contains("computing")).collect();
    assert_eq!(steps.len(), 3, "{log:?}");
    assert!(steps[0].contains("[2026-01-01, 2026-01-02]"), "{log:?}");
    assert!(steps[1].contains("[2026-01-03, 2026-01-04]"), "{log:?}");
    assert!(steps[2].contains("[2026-01-05, 2026-01-05]"), "{log:?}");

    let out = table(out_name);
    assert_eq!(wh.partitions(&out).unwrap(), dss(&DAYS[..5]));

    // Every output partition equals the query run directly for that day.
    engine.refresh().unwrap();
    for d in &DAYS[..5] {
        let direct = SUM_QUERY
            .replace("{{ start_date }}", d)
            .replace("{{end_date}}", d);
        let expected = sql_rows(&engine, &direct);
        assert!(!expected.is_empty());
        let got = sql_rows(
            &engine,
            &format!("SELECT user, total, n, ds FROM {out_name} WHERE ds = '{d}'"),
        );
        assert_eq!(got, expected, "partition {d}");
    }
    // and spot-check real values: alice on 2026-01-01 has amounts 10 and 12
    assert_eq!(
        sql_rows(
            &engine,
            &format!("SELECT total, n FROM {out_name} WHERE ds = '2026-01-01' AND user = 'alice'")
        ),
        vec![vec!["22".to_string(), "2".to_string()]]
    );

    // Properties: Chronon's markers plus the conf's tableProperties.
    let props = wh.properties(&out).unwrap();
    assert_eq!(
        props.get("chronon_generated").map(String::as_str),
        Some("true")
    );
    assert_eq!(
        props.get("chronon_table_type").map(String::as_str),
        Some("staging_query")
    );
    assert_eq!(
        props.get("sample_config_json").map(String::as_str),
        Some("{\"sample_key\": \"sample_value\"}")
    );
    assert_eq!(props.get("owner").map(String::as_str), Some("ml"));

    // Extending the end date computes only the new partition.
    let (report, log) = run_sq(&engine, &sq, &opts("2026-01-06", 2));
    assert_eq!(report.skipped_existing, 5);
    assert_eq!(report.written, dss(&["2026-01-06"]));
    assert_eq!(
        log.iter().filter(|m| m.contains("computing")).count(),
        1,
        "{log:?}"
    );
    assert_eq!(wh.partitions(&out).unwrap(), dss(&DAYS));

    // Re-running with everything present writes nothing and leaves the data alone.
    let before = sql_rows(
        &engine,
        &format!("SELECT user, total, n, ds FROM {out_name}"),
    );
    let (report, log) = run_sq(&engine, &sq, &opts("2026-01-06", 1));
    assert_eq!(report.skipped_existing, 6);
    assert!(report.written.is_empty());
    assert_eq!(report.rows, 0);
    assert!(log.iter().all(|m| !m.contains("computing")), "{log:?}");
    engine.refresh().unwrap();
    assert_eq!(
        sql_rows(
            &engine,
            &format!("SELECT user, total, n, ds FROM {out_name}")
        ),
        before
    );

    // The whole table equals the query over the whole range.
    let direct = SUM_QUERY
        .replace("{{ start_date }}", DAYS[0])
        .replace("{{end_date}}", DAYS[5]);
    assert_eq!(before, sql_rows(&engine, &direct));
    assert_eq!(before.len(), 3 + 2 + 3 + 2 + 3 + 2);
}

#[test]
fn start_override_and_hole_filling() {
    let (_dir, wh) = warehouse_with_events();
    let engine = Session::new(&wh).unwrap();
    let sq = staging_query(json!({
        "metaData": {"name": "t.holes", "outputNamespace": "out"},
        "query": SUM_QUERY,
        "startPartition": "2026-01-01"
    }));
    let out = table("out.t_holes");
    let (r, _) = run_sq(&engine, &sq, &opts("2026-01-02", 30));
    assert_eq!(r.written, dss(&["2026-01-01", "2026-01-02"]));
    // a start override limits a run to [override, end]
    let o = StagingOptions {
        end_ds: ds("2026-01-04"),
        start_override: Some(ds("2026-01-04")),
        step_days: 30,
        run_first_hole: false,
    };
    let (r, _) = run_sq(&engine, &sq, &o);
    assert_eq!(r.written, dss(&["2026-01-04"]));
    assert_eq!(r.skipped_existing, 0);
    assert_eq!(
        wh.partitions(&out).unwrap(),
        dss(&["2026-01-01", "2026-01-02", "2026-01-04"])
    );
    // a full run fills the missing partitions, as separate contiguous ranges
    let (r, log) = run_sq(&engine, &sq, &opts("2026-01-06", 30));
    assert_eq!(r.skipped_existing, 3);
    assert_eq!(r.written, dss(&["2026-01-03", "2026-01-05", "2026-01-06"]));
    let steps: Vec<&String> = log.iter().filter(|m| m.contains("computing")).collect();
    assert_eq!(steps.len(), 2, "{log:?}");
    assert!(
        steps[0].contains("[2026-01-03, 2026-01-03]")
            && steps[1].contains("[2026-01-05, 2026-01-06]"),
        "{log:?}"
    );
    assert_eq!(wh.partitions(&out).unwrap(), dss(&DAYS));
    engine.refresh().unwrap();
    let direct = SUM_QUERY
        .replace("{{ start_date }}", DAYS[0])
        .replace("{{end_date}}", DAYS[5]);
    assert_eq!(
        sql_rows(&engine, "SELECT user, total, n, ds FROM out.t_holes"),
        sql_rows(&engine, &direct)
    );
}

/// A failing step ends its unfilled range (no gap is left behind later partitions); the other
/// ranges still run, and every failure is reported together (chronon-semantics §8, Errors).
#[test]
fn failed_steps_end_their_range_and_are_reported_together() {
    let (_dir, wh) = warehouse_with_events();
    let engine = Session::new(&wh).unwrap();
    // CAST('boom' AS BIGINT) fails for the chunks starting on the given dates
    let failing = |dates: &str| {
        staging_query(json!({
            "metaData": {"name": "t.flaky", "outputNamespace": "out"},
            "query": format!(
                "SELECT user, amount + CAST(CASE WHEN '{{{{ start_date }}}}' IN ({dates}) THEN 'boom' ELSE '0' END AS BIGINT) AS amount, ds \
                 FROM data.events WHERE ds BETWEEN '{{{{ start_date }}}}' AND '{{{{ end_date }}}}'"
            ),
            "startPartition": "2026-01-01"
        }))
    };
    let out = table("out.t_flaky");
    // The gaps before the first existing partition (01-05) are filled too: run the first hole.
    let hole_opts = |end: &str| StagingOptions {
        run_first_hole: true,
        ..opts(end, 1)
    };
    // leave 2026-01-05 in place so that there are two unfilled ranges: [01, 04] and [06, 06]
    let o = StagingOptions {
        end_ds: ds("2026-01-05"),
        start_override: Some(ds("2026-01-05")),
        step_days: 1,
        run_first_hole: false,
    };
    run_sq(&engine, &failing("'none'"), &o);

    let log = RefCell::new(Vec::new());
    let e = run(
        &engine,
        &failing("'2026-01-03'"),
        &hole_opts("2026-01-06"),
        &|_, _, m: &str| log.borrow_mut().push(m.to_string()),
    )
    .unwrap_err();
    let m = e.to_string();
    assert!(m.contains("t.flaky") && m.contains("boom"), "{m}");
    assert!(
        !matches!(e, weft::Error::Many(_)),
        "one failing range, one error: {m}"
    );
    // 01, 02 written; 03 failed so 04 was not attempted; 06 (the other range) was written
    assert_eq!(
        wh.partitions(&out).unwrap(),
        dss(&["2026-01-01", "2026-01-02", "2026-01-05", "2026-01-06"])
    );
    let computed: Vec<String> = log
        .into_inner()
        .into_iter()
        .filter(|m| m.contains("computing"))
        .collect();
    assert_eq!(computed.len(), 4, "{computed:?}");
    assert!(
        computed[2].contains("[2026-01-03, 2026-01-03]")
            && computed[3].contains("[2026-01-06, 2026-01-06]"),
        "{computed:?}"
    );

    // failures in two ranges are reported together
    std::fs::remove_dir_all(wh.root().join("out/t_flaky/ds=2026-01-06")).unwrap();
    let e = run(
        &engine,
        &failing("'2026-01-03', '2026-01-06'"),
        &hole_opts("2026-01-06"),
        &|_, _, _| {},
    )
    .unwrap_err();
    match &e {
        weft::Error::Many(errs) => assert_eq!(errs.len(), 2, "{e}"),
        other => panic!("expected both failures, got {other}"),
    }
    assert!(e.to_string().starts_with("2 problems"), "{e}");
    assert_eq!(
        wh.partitions(&out).unwrap(),
        dss(&["2026-01-01", "2026-01-02", "2026-01-05"])
    );

    // once fixed, the next run fills exactly the gaps
    let (r, _) = run_sq(&engine, &failing("'none'"), &hole_opts("2026-01-06"));
    assert_eq!(r.written, dss(&["2026-01-03", "2026-01-04", "2026-01-06"]));
    assert_eq!(r.skipped_existing, 3);
}

// ---------------------------------------------------------------- AutoExpand

#[test]
fn staging_query_auto_expands_schema() {
    let (_dir, wh) = warehouse_with_events();
    let engine = Session::new(&wh).unwrap();
    let meta = json!({"name": "sample_team.sample_staging_query_auto_expand.v1", "outputNamespace": "sample_ns"});
    let v1 = staging_query(json!({
        "metaData": meta,
        "query": "SELECT user, amount, ds FROM data.events WHERE ds BETWEEN '{{ start_date }}' AND '{{ end_date }}'",
        "startPartition": "2026-01-01"
    }));
    let (r, _) = run_sq(&engine, &v1, &opts("2026-01-03", 1));
    assert_eq!(r.written, dss(&DAYS[..3]));
    let out = table("sample_ns.sample_team_sample_staging_query_auto_expand_v1");
    let names = |wh: &Warehouse| -> Vec<String> {
        wh.table_schema(&out)
            .unwrap()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect()
    };
    assert_eq!(names(&wh), vec!["user", "amount"]);

    // The query changes: a new column for the new partitions.
    let v2 = staging_query(json!({
        "metaData": meta,
        "query": "SELECT user, amount, amount * 2 AS amount_doubled, ds FROM data.events \
                  WHERE ds BETWEEN '{{ start_date }}' AND '{{ end_date }}'",
        "startPartition": "2026-01-01"
    }));
    let (r, _) = run_sq(&engine, &v2, &opts("2026-01-05", 1));
    assert_eq!(r.skipped_existing, 3);
    assert_eq!(r.written, dss(&["2026-01-04", "2026-01-05"]));
    assert_eq!(names(&wh), vec!["user", "amount", "amount_doubled"]);

    engine.refresh().unwrap();
    let t = out.to_string();
    // old partitions read back with NULL for the new column
    let old = sql_rows(
        &engine,
        &format!("SELECT ds, amount_doubled FROM {t} WHERE ds <= '2026-01-03'"),
    );
    assert_eq!(old.len(), 4 + 3 + 4);
    assert!(old.iter().all(|r| r[1] == "NULL"), "{old:?}");
    // new partitions have the computed value
    let new = sql_rows(
        &engine,
        &format!("SELECT amount, amount_doubled FROM {t} WHERE ds >= '2026-01-04'"),
    );
    assert_eq!(new.len(), 3 + 4);
    for r in &new {
        assert_eq!(r[1], (r[0].parse::<i64>().unwrap() * 2).to_string());
    }
    // old values are intact
    assert_eq!(
        sql_rows(
            &engine,
            &format!("SELECT amount FROM {t} WHERE ds = '2026-01-02' AND user = 'bob'")
        ),
        vec![vec!["21".to_string()]]
    );
    // a fresh engine (new process) sees the expanded schema too
    let engine2 = Session::new(&Warehouse::open(wh.root()).unwrap()).unwrap();
    let (schema, _) = engine2
        .query_with_schema(&format!("SELECT * FROM {t}"), "test")
        .unwrap();
    let cols: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(cols, vec!["user", "amount", "amount_doubled", "ds"]);
}

// ---------------------------------------------------------------- LatestDate

#[test]
fn latest_date_is_the_run_end_date_in_every_chunk() {
    let (_dir, wh) = warehouse_with_events();
    let engine = Session::new(&wh).unwrap();
    let sq = staging_query(json!({
        "metaData": {"name": "sample_team.sample_staging_query_latest_date.v1", "outputNamespace": "sample_ns"},
        "query": "SELECT user, '{{ latest_date }}' AS latest_ds, '{{ start_date }}' AS chunk_start, \
                  '{{ end_date }}' AS chunk_end, ds FROM data.events \
                  WHERE ds BETWEEN '{{ start_date }}' AND '{{ end_date }}'",
        "startPartition": "2026-01-01"
    }));
    let (r, _) = run_sq(&engine, &sq, &opts("2026-01-06", 4));
    assert_eq!(r.written, dss(&DAYS));
    engine.refresh().unwrap();
    let got = sql_rows(
        &engine,
        "SELECT DISTINCT ds, latest_ds, chunk_start, chunk_end FROM sample_ns.sample_team_sample_staging_query_latest_date_v1",
    );
    let s = |v: [&str; 4]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert_eq!(
        got,
        vec![
            s(["2026-01-01", "2026-01-06", "2026-01-01", "2026-01-04"]),
            s(["2026-01-02", "2026-01-06", "2026-01-01", "2026-01-04"]),
            s(["2026-01-03", "2026-01-06", "2026-01-01", "2026-01-04"]),
            s(["2026-01-04", "2026-01-06", "2026-01-01", "2026-01-04"]),
            s(["2026-01-05", "2026-01-06", "2026-01-05", "2026-01-06"]),
            s(["2026-01-06", "2026-01-06", "2026-01-05", "2026-01-06"]),
        ]
    );
}

// ---------------------------------------------------------------- MaxDate

#[test]
fn max_date_is_the_max_partition_of_the_table() {
    let (_dir, wh) = warehouse_with_events();
    let engine = Session::new(&wh).unwrap();

    // Partitioned path.
    let sq = staging_query(json!({
        "metaData": {"name": "sample_team.sample_staging_query_max_date.v1", "outputNamespace": "sample_ns"},
        "query": "SELECT user, '{{ max_date(table=data.events) }}' AS max_ds, ds FROM data.events \
                  WHERE ds BETWEEN '{{ start_date }}' AND '{{ end_date }}'",
        "startPartition": "2026-01-01"
    }));
    let (r, _) = run_sq(&engine, &sq, &opts("2026-01-03", 1));
    assert_eq!(r.written, dss(&DAYS[..3]));
    engine.refresh().unwrap();
    let got = sql_rows(
        &engine,
        "SELECT DISTINCT max_ds FROM sample_ns.sample_team_sample_staging_query_max_date_v1",
    );
    assert_eq!(got, vec![vec!["2026-01-06".to_string()]]);

    // Unpartitioned path (no startPartition): one run over everything, written by ds.
    let sq = staging_query(json!({
        "metaData": {"name": "sample_team.sample_staging_query_max_date_unpartitioned.v1", "outputNamespace": "sample_ns"},
        "query": "SELECT user, amount, '{{ max_date( table = data.events ) }}' AS max_ds, \
                  '{{ latest_date }}' AS latest_ds, ds FROM data.events"
    }));
    let (r, log) = run_sq(&engine, &sq, &opts("2026-01-02", 1));
    assert!(log.iter().all(|m| !m.contains("computing")), "{log:?}");
    assert_eq!(
        r.written,
        dss(&DAYS),
        "dynamic partition overwrite writes every ds the query returns"
    );
    assert_eq!(r.rows, 4 + 3 + 4 + 3 + 4 + 3);
    let out = table("sample_ns.sample_team_sample_staging_query_max_date_unpartitioned_v1");
    assert_eq!(wh.partitions(&out).unwrap(), dss(&DAYS));
    engine.refresh().unwrap();
    let got = sql_rows(
        &engine,
        &format!("SELECT DISTINCT max_ds, latest_ds FROM {out}"),
    );
    assert_eq!(
        got,
        vec![vec!["2026-01-06".to_string(), "2026-01-02".to_string()]]
    );
    assert_eq!(
        sql_rows(&engine, &format!("SELECT user, amount, ds FROM {out}")),
        sql_rows(&engine, "SELECT user, amount, ds FROM data.events")
    );

    // Unknown macros fail, on both paths, and nothing is written.
    for start in [Some("2026-01-01"), None] {
        let mut doc = json!({
            "metaData": {"name": "sample_team.sample_staging_query_bad_macro.v1", "outputNamespace": "sample_ns"},
            "query": "SELECT user, '{{ foo }}' AS x, ds FROM data.events WHERE ds BETWEEN '{{ start_date }}' AND '{{ end_date }}'",
        });
        if let Some(s) = start {
            doc["startPartition"] = json!(s);
        } else {
            doc["query"] = json!("SELECT user, '{{ foo }}' AS x, ds FROM data.events");
        }
        let sq = staging_query(doc);
        let e = run(&engine, &sq, &opts("2026-01-02", 1), &|_, _, _| {})
            .unwrap_err()
            .to_string();
        assert!(e.contains("Unresolved template macro"), "{e}");
        assert!(e.contains("foo"), "{e}");
        assert!(!wh.exists(&table(
            "sample_ns.sample_team_sample_staging_query_bad_macro_v1"
        )));
    }

    // max_date of a table without partitions is an error naming the table.
    let sq = staging_query(json!({
        "metaData": {"name": "t.max_missing", "outputNamespace": "sample_ns"},
        "query": "SELECT '{{ max_date(table=data.nothing) }}' AS m, ds FROM data.events"
    }));
    let e = run(&engine, &sq, &opts("2026-01-02", 1), &|_, _, _| {})
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("data.nothing") && e.contains("no partitions"),
        "{e}"
    );
}

// ---------------------------------------------------------------- CreateView

#[test]
fn create_view_registers_a_view_and_a_signal_partition() {
    let (_dir, wh) = warehouse_with_events();
    let engine = Session::new(&wh).unwrap();
    let sq = staging_query(json!({
        "metaData": {"name": "sample_team.sample_staging_query_view.v1", "outputNamespace": "sample_ns",
                     "tableProperties": {"k": "v"}},
        "query": "SELECT user, amount, ds FROM data.events WHERE ds <= '{{ latest_date }}' AND amount > 20",
        "startPartition": "2026-01-01",
        "createView": 1
    }));
    assert_eq!(sq.create_view, Some(true));
    let (r, _) = run_sq(&engine, &sq, &opts("2026-01-03", 1));
    assert!(r.written.is_empty(), "a view writes no partitions");
    let view = "sample_ns.sample_team_sample_staging_query_view_v1";
    assert!(wh.partitions(&table(view)).unwrap().is_empty());

    engine.refresh().unwrap();
    let got = sql_rows(&engine, &format!("SELECT user, amount, ds FROM {view}"));
    let expected = sql_rows(
        &engine,
        "SELECT user, amount, ds FROM data.events WHERE ds <= '2026-01-03' AND amount > 20",
    );
    assert_eq!(got, expected);
    assert_eq!(
        got.len(),
        2 + 4,
        "amounts 21, 22 on 2026-01-02 and 30..33 on 2026-01-03"
    );

    // Signal row in <ns>.chronon_signal_partitions, partition ds = end date.
    let signal = table("sample_ns.chronon_signal_partitions");
    assert_eq!(wh.partitions(&signal).unwrap(), dss(&["2026-01-03"]));
    let sig = sql_rows(
        &engine,
        "SELECT table_name, ds, created_at IS NOT NULL FROM sample_ns.chronon_signal_partitions",
    );
    assert_eq!(
        sig,
        vec![vec![
            view.to_string(),
            "2026-01-03".to_string(),
            "true".to_string()
        ]]
    );

    let props = wh.properties(&table(view)).unwrap();
    assert_eq!(
        props.get("chronon_table_type").map(String::as_str),
        Some("staging_query")
    );
    assert_eq!(props.get("k").map(String::as_str), Some("v"));

    // A fresh engine (another process) registers the view from the warehouse.
    let engine2 = Session::new(&Warehouse::open(wh.root()).unwrap()).unwrap();
    assert_eq!(
        sql_rows(&engine2, &format!("SELECT user, amount, ds FROM {view}")),
        expected
    );

    // start_date / end_date are forbidden in views.
    let bad = staging_query(json!({
        "metaData": {"name": "t.bad_view", "outputNamespace": "sample_ns"},
        "query": "SELECT * FROM data.events WHERE ds >= '{{ start_date }}'",
        "createView": true
    }));
    let e = run(&engine, &bad, &opts("2026-01-03", 1), &|_, _, _| {})
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("start_date") && e.contains("Unresolved template macro"),
        "{e}"
    );
    assert!(!wh.exists(&table("sample_ns.t_bad_view")));
}

// ---------------------------------------------------------------- Spark's `/`

/// `/` in a staging query, written out or as a view, is Spark's: a DOUBLE, NULL for a zero
/// divisor (2026-01-01: alice 10 + 12, bob 11, carol 13).
#[test]
fn staging_query_division_is_spark_division() {
    let s = |v: &[&str]| -> Vec<String> { v.iter().map(|x| x.to_string()).collect() };
    let (_dir, wh) = warehouse_with_events();
    let engine = Session::new(&wh).unwrap();
    let sq = staging_query(json!({
        "metaData": {"name": "t.division", "outputNamespace": "out"},
        "query": "SELECT user, SUM(amount) / 4 AS quarter, SUM(amount) / (COUNT(*) - COUNT(*)) AS by_zero, ds \
                  FROM data.events WHERE ds BETWEEN '{{ start_date }}' AND '{{ end_date }}' GROUP BY user, ds",
        "startPartition": "2026-01-01"
    }));
    let (r, _) = run_sq(&engine, &sq, &opts("2026-01-01", 1));
    assert_eq!(r.written, dss(&["2026-01-01"]));
    engine.refresh().unwrap();
    let (schema, batches) = engine
        .query_with_schema("SELECT user, quarter, by_zero FROM out.t_division", "test")
        .unwrap();
    assert_eq!(schema.field(1).data_type(), &DataType::Float64);
    assert_eq!(schema.field(2).data_type(), &DataType::Float64);
    assert_eq!(
        rows(&batches),
        vec![
            s(&["alice", "5.5", "NULL"]),
            s(&["bob", "2.75", "NULL"]),
            s(&["carol", "3.25", "NULL"]),
        ]
    );

    let view = staging_query(json!({
        "metaData": {"name": "t.division_view", "outputNamespace": "out"},
        "query": "SELECT user, amount / 4 AS quarter, ds FROM data.events WHERE ds <= '{{ latest_date }}'",
        "createView": true
    }));
    run_sq(&engine, &view, &opts("2026-01-01", 1));
    engine.refresh().unwrap();
    let expected = vec![
        s(&["alice", "2.5"]),
        s(&["alice", "3.0"]),
        s(&["bob", "2.75"]),
        s(&["carol", "3.25"]),
    ];
    let sql = "SELECT user, quarter FROM out.t_division_view WHERE ds = '2026-01-01'";
    let (schema, batches) = engine.query_with_schema(sql, "test").unwrap();
    assert_eq!(schema.field(1).data_type(), &DataType::Float64);
    assert_eq!(rows(&batches), expected);
    // A fresh engine registers the view from its SQL with the same type.
    let engine2 = Session::new(&Warehouse::open(wh.root()).unwrap()).unwrap();
    let (schema, batches) = engine2.query_with_schema(sql, "test").unwrap();
    assert_eq!(schema.field(1).data_type(), &DataType::Float64);
    assert_eq!(rows(&batches), expected);
}

// ---------------------------------------------------------------- historicalBackfill

#[test]
fn no_historical_backfill_computes_only_the_end_date() {
    let (_dir, wh) = warehouse_with_events();
    let engine = Session::new(&wh).unwrap();
    let sq = staging_query(json!({
        "metaData": {"name": "sample_team.sample_staging_query_no_hist.v1", "outputNamespace": "sample_ns",
                     "historicalBackfill": 0},
        "query": SUM_QUERY,
        "startPartition": "2026-01-01"
    }));
    assert_eq!(sq.meta_data.historical_backfill, Some(false));
    let (r, _) = run_sq(&engine, &sq, &opts("2026-01-05", 1));
    assert_eq!(r.written, dss(&["2026-01-05"]));
    assert_eq!(r.skipped_existing, 0);
    let out = table("sample_ns.sample_team_sample_staging_query_no_hist_v1");
    assert_eq!(wh.partitions(&out).unwrap(), dss(&["2026-01-05"]));
    engine.refresh().unwrap();
    assert_eq!(
        sql_rows(&engine, &format!("SELECT user, total, n FROM {out}")),
        vec![
            vec!["alice".to_string(), (50 + 52).to_string(), "2".to_string()],
            vec!["bob".to_string(), "51".to_string(), "1".to_string()],
            vec!["carol".to_string(), "53".to_string(), "1".to_string()],
        ]
    );
}

#[test]
fn historical_backfill_unset_computes_the_whole_range() {
    let (_dir, wh) = warehouse_with_events();
    let engine = Session::new(&wh).unwrap();
    let sq = staging_query(json!({
        "metaData": {"name": "sample_team.sample_staging_query_hist_unset.v1", "outputNamespace": "sample_ns"},
        "query": SUM_QUERY,
        "startPartition": "2026-01-01"
    }));
    assert_eq!(sq.meta_data.historical_backfill, None);
    let (r, _) = run_sq(&engine, &sq, &opts("2026-01-05", 1));
    assert_eq!(r.written, dss(&DAYS[..5]));
    let out = table("sample_ns.sample_team_sample_staging_query_hist_unset_v1");
    assert_eq!(wh.partitions(&out).unwrap(), dss(&DAYS[..5]));
    // historicalBackfill = true behaves like unset
    let sq = staging_query(json!({
        "metaData": {"name": "t.hist_true", "outputNamespace": "sample_ns", "historicalBackfill": true},
        "query": SUM_QUERY,
        "startPartition": "2026-01-02"
    }));
    let (r, _) = run_sq(&engine, &sq, &opts("2026-01-05", 1));
    assert_eq!(r.written, dss(&DAYS[1..5]));
}

// ---------------------------------------------------------------- Spark functions

#[test]
fn spark_functions_work_through_the_engine() {
    let dir = tempfile::tempdir().unwrap();
    let wh = Warehouse::open(dir.path()).unwrap();
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("ts", DataType::Int64, true),
        Field::new("payload", DataType::Utf8, true),
        Field::new("name", DataType::Utf8, true),
        Field::new("x", DataType::Int64, true),
    ]));
    // 2026-01-02 03:04:05.678 UTC and 2025-12-31 23:59:59 UTC
    let t1 = ds("2026-01-02").start_millis() + ((3 * 60 + 4) * 60 + 5) * 1000 + 678;
    let t2 = ds("2026-01-01").start_millis() - 1000;
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(vec![1, 2])) as ArrayRef,
            Arc::new(Int64Array::from(vec![t1, t2])),
            Arc::new(StringArray::from(vec![
                Some(r#"{"a": {"b": [7, {"c": "deep"}]}, "s": "str"}"#),
                Some("not json"),
            ])),
            Arc::new(StringArray::from(vec![Some("ann"), None])),
            Arc::new(Int64Array::from(vec![Some(10), Some(3)])),
        ],
    )
    .unwrap();
    wh.write_partition(
        &table("data.fns"),
        &[("ds".into(), "2026-01-02".into())],
        schema,
        &[batch],
    )
    .unwrap();
    let engine = Session::new(&wh).unwrap();

    let got = sql_rows(
        &engine,
        "SELECT id, \
           from_unixtime(ts/1000, 'yyyy-MM-dd') AS d, \
           from_unixtime(ts/1000) AS dt, \
           unix_timestamp('2026-01-02', 'yyyy-MM-dd') AS u, \
           unix_timestamp('2026-01-02 00:00:10') AS u2, \
           date_format(from_unixtime(ts/1000), 'yyyy/MM/dd HH:mm') AS f, \
           get_json_object(payload, '$.a.b[1].c') AS j, \
           get_json_object(payload, '$.s') AS j2, \
           coalesce(name, 'unknown') AS c, \
           concat(name, '-', cast(x as string)) AS cc, \
           cast(x as string) AS s, \
           if(x > 5, 'big', 'small') AS i \
         FROM data.fns",
    );
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let u = (ds("2026-01-02").start_millis() / 1000).to_string();
    let u2 = (ds("2026-01-02").start_millis() / 1000 + 10).to_string();
    assert_eq!(u, "1767312000");
    assert_eq!(
        got,
        vec![
            s(&[
                "1",
                "2026-01-02",
                "2026-01-02 03:04:05",
                &u,
                &u2,
                "2026/01/02 03:04",
                "deep",
                "str",
                "ann",
                "ann-10",
                "10",
                "big"
            ]),
            // concat with a NULL argument is NULL (Spark semantics); invalid JSON gives NULL
            s(&[
                "2",
                "2025-12-31",
                "2025-12-31 23:59:59",
                &u,
                &u2,
                "2025/12/31 23:59",
                "NULL",
                "NULL",
                "unknown",
                "NULL",
                "3",
                "small"
            ]),
        ]
    );

    // The same functions work inside a staging query rendered by the engine.
    let sq = staging_query(json!({
        "metaData": {"name": "t.fns", "outputNamespace": "out"},
        "query": "SELECT id, if(x > 5, 'big', 'small') AS size, from_unixtime(ts/1000, 'yyyy-MM-dd') AS ds FROM data.fns"
    }));
    let (r, _) = run_sq(&engine, &sq, &opts("2026-01-02", 1));
    // rows are partitioned by the computed ds (the event day), not the source partition
    assert_eq!(r.written, dss(&["2025-12-31", "2026-01-02"]));
    assert_eq!(
        sql_rows(&engine, "SELECT id, size, ds FROM out.t_fns"),
        vec![
            s(&["1", "big", "2026-01-02"]),
            s(&["2", "small", "2025-12-31"])
        ]
    );
}

#[test]
fn first_hole_is_skipped_unless_asked_for() {
    let (_dir, wh) = warehouse_with_events();
    let engine = Session::new(&wh).unwrap();
    let sq = staging_query(json!({
        "metaData": {"name": "t.first_hole", "outputNamespace": "out"},
        "query": SUM_QUERY,
        "startPartition": "2026-01-01"
    }));
    let out = table("out.t_first_hole");
    let mut o = opts("2026-01-03", 30);
    o.start_override = Some(ds("2026-01-03"));
    run_sq(&engine, &sq, &o);
    // Output starts at 01-03: the partitions before it are the "first hole", skipped as Chronon does.
    let (r, _) = run_sq(&engine, &sq, &opts("2026-01-04", 30));
    assert_eq!(r.written, dss(&["2026-01-04"]));
    assert_eq!(
        wh.partitions(&out).unwrap(),
        dss(&["2026-01-03", "2026-01-04"])
    );
    let mut o = opts("2026-01-04", 30);
    o.run_first_hole = true;
    let (r, _) = run_sq(&engine, &sq, &o);
    assert_eq!(r.written, dss(&["2026-01-01", "2026-01-02"]));
}

#[test]
fn a_failed_step_names_its_range() {
    let (_dir, wh) = warehouse_with_events();
    let engine = Session::new(&wh).unwrap();
    let sq = staging_query(json!({
        "metaData": {"name": "t.broken", "outputNamespace": "out"},
        "query": "SELECT no_such_column, ds FROM data.events WHERE ds BETWEEN '{{ start_date }}' AND '{{ end_date }}'",
        "startPartition": "2026-01-01"
    }));
    let e = run(&engine, &sq, &opts("2026-01-02", 30), &|_, _, _| {})
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("out.t_broken, range [2026-01-01, 2026-01-02]"),
        "{e}"
    );
}
