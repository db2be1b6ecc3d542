//! `weft explain`: the plan (rows covered per join part and by which bootstrap parts, rows to
//! compute, partially covered columns) agrees with what the run then does, and the written
//! provenance (values per source and column) agrees with the output's values; the CLI prints
//! it and writes the same as JSON.

use crate::bootfix;
use crate::reference;

use bootfix::*;
use rand::Rng;
use reference::harness::{options, warehouse};
use reference::{conf, output_table, Ty, V};
use weft::engine::Context;
use weft::engine::{explain, JoinRunner};

/// A join whose first part is covered for the rows of two bootstrap tables (30d from one,
/// 15d from the other) and computed for the rest; the second part is never covered.
fn setup() -> (
    tempfile::TempDir,
    weft::warehouse::Warehouse,
    serde_json::Value,
    usize,
    usize,
) {
    let db = db(11, 30);
    let (dir, wh) = warehouse(&db);
    let base = join(
        "unit_test.explain.base",
        vec![conf::part(user_transactions(), &[], None)],
    );
    run_base(&wh, &db, &base);
    let rows = rows_by_id(&wh, &output_table(&base));
    let b30 = sample(&rows, 0.7, 5, |r| V::Int(r.random_range(0..10)));
    let b15 = sample(&rows, 0.5, 6, |r| {
        if r.random_bool(0.2) {
            V::Null
        } else {
            V::Int(7)
        }
    });
    for (name, col, sample) in [("data.e30", SUM_30D, &b30), ("data.e15", SUM_15D, &b15)] {
        let rows: Vec<(String, Vec<V>)> = sample
            .iter()
            .map(|(id, ds, v)| (ds.clone(), vec![V::s(id), v.clone()]))
            .collect();
        write_table(&wh, name, &[("request_id", Ty::Str), (col, Ty::I64)], &rows);
    }
    let both = b30
        .iter()
        .filter(|(i, d, _)| b15.iter().any(|(j, e, _)| (i, d) == (j, e)))
        .count();
    let mut j = join(
        "unit_test.explain.boot",
        vec![
            conf::part(user_transactions(), &[], None),
            conf::part(user_transactions_v2(), &[], None),
        ],
    );
    j["bootstrapParts"] = serde_json::json!([
        boot_part("data.e30", Some(&["request_id", SUM_30D]), None, None),
        boot_part("data.e15", Some(&["request_id", SUM_15D]), None, None),
    ]);
    (dir, wh, j, rows.len(), both)
}

#[test]
fn plan_matches_the_run_and_provenance_matches_the_output() {
    let (_dir, wh, j, total, both) = setup();
    let engine = Context::new(&wh).unwrap();
    let parsed = conf::parse(&j);
    let opts = options(&run());
    let e = explain(&engine, &parsed, &opts).unwrap();
    assert_eq!(e.left_rows as usize, total);
    assert_eq!(e.bootstrap.len(), 2);
    assert_eq!(e.bootstrap[0].fields, vec![SUM_30D.to_string()]);
    let p = &e.parts[0];
    assert_eq!(
        p.covered as usize, both,
        "covered only where both tables match"
    );
    assert_eq!(p.covered_by, vec![(vec![1, 2], both as u64)]);
    assert_eq!((p.covered + p.computed + p.null_keys) as usize, total);
    // each column is bootstrapped for some rows only
    let partial: Vec<&str> = p.partial_columns.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(partial, vec![SUM_30D, SUM_15D]);
    assert_eq!(e.parts[1].covered, 0);
    assert!(e.written.is_none() && e.written_partitions == 0);

    // the run does what the plan said
    let mut runner = JoinRunner::new(&parsed).unwrap();
    let report = runner.run(&engine, &opts, &|_, _, _| {}).unwrap();
    let prov = report.provenance.clone().unwrap();
    assert_eq!(prov.parts[0].covered, p.covered);
    assert_eq!(prov.parts[0].computed, p.computed);

    // after the run: provenance per column matches the output values
    let e = explain(&engine, &parsed, &opts).unwrap();
    let w = e.written.expect("provenance of the written partitions");
    assert_eq!(e.written_partitions, 5);
    assert_eq!(w.rows as usize, total);
    let out = rows_by_id(&wh, &output_table(&j));
    let b30 = rows_by_id(&wh, "data.e30");
    let from_b30 = out
        .iter()
        .filter(|(k, r)| {
            b30.get(k)
                .is_some_and(|b| !b[SUM_30D].is_null() && b[SUM_30D] == r[SUM_30D])
        })
        .count();
    let c30 = &w.columns[SUM_30D];
    assert_eq!(c30.bootstrap[0] as usize, from_b30);
    assert_eq!(c30.bootstrap[1], 0);
    let nulls = out.values().filter(|r| r[SUM_30D].is_null()).count();
    assert_eq!(c30.null as usize, nulls);
    assert_eq!((c30.bootstrap[0] + c30.computed + c30.null) as usize, total);
    let left = &w.columns["request_id"];
    assert_eq!(left.left as usize, total);
}

#[test]
fn cli_prints_the_plan_and_writes_json() {
    let (dir, wh, j, total, both) = setup();
    let conf_dir = dir.path().join("production/joins/unit_test");
    std::fs::create_dir_all(&conf_dir).unwrap();
    let conf = conf_dir.join("explain.boot");
    std::fs::write(&conf, serde_json::to_string_pretty(&j).unwrap()).unwrap();
    let json = dir.path().join("explain.json");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_weft"))
        .args([
            "--warehouse",
            wh.root().to_str().unwrap(),
            "explain",
            "--conf",
        ])
        .arg(&conf)
        .args(["--end-ds", &end_day(), "--json"])
        .arg(&json)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(&format!("{both} rows covered (by #1+#2 {both})")),
        "{text}"
    );
    assert!(text.contains("#1 data.e30"), "{text}");
    assert!(
        text.contains("no output partition of the range is written yet"),
        "{text}"
    );
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(v["left_rows"].as_u64().unwrap() as usize, total);
    assert_eq!(v["parts"][0]["covered"].as_u64().unwrap() as usize, both);
}
