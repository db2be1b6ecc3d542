//! Reuse across config versions (chronon-semantics §3.7), after Chronon's
//! `JoinTest.testVersioning`, on small data of our own: the first run stores the semantic
//! hash; an unchanged rerun computes nothing; an added part, a part with a new window and a
//! removed part rewrite the existing output computing only the changed part (the unchanged
//! parts' values stay bit for bit, and no row of theirs is fed to the dataflow); a changed
//! left archives the output to `<table>_<timestamp>` and recomputes everything. Every output
//! is checked against the reference and against a fresh backfill of the same version. Also:
//! derivations (re-derived over reused columns, or a full recompute when they dropped the
//! columns to reuse), partitions outside the run's range, parts without aggregations whose
//! matches repeat left rows, an interrupted rewrite, and a hash not written by weft.

use crate::reference;

use reference::conf::{self, W};
use reference::data::{read_table, Actual};
use reference::harness::{
    assert_ok, backfill, compare, copy_warehouse_without, options, outputs_equal, warehouse,
};
use reference::{ds_shift, ds_start, expected, Db, Op, Run, Table, Ty, DAY, HOUR, MINUTE, V};
use serde_json::{json, Value as J};
use weft::engine::JoinReport;
use weft::warehouse::{TableName, Warehouse};

const BASE: &str = "2026-03-01";
const LAST: i64 = 5;
const OUT: &str = "test.test_versioned_v1";
const PURCHASES: &str = "test_purchases_v1";
const VIEWS: &str = "test_views_v1";
const MAX: &str = "test_purchase_max_v1";
/// Left rows: 6 per day, days 0..=LAST.
const LEFT_ROWS: u64 = 36;

fn day(i: i64) -> String {
    ds_shift(BASE, i)
}
fn t0(i: i64) -> i64 {
    ds_start(BASE) + i * DAY
}

fn db() -> Db {
    let mut left = Table::new(&[("row_id", Ty::I64), ("user", Ty::Str), ("ts", Ty::I64)]);
    let mut purchases = Table::new(&[("user", Ty::Str), ("amount", Ty::I64), ("ts", Ty::I64)]);
    let mut views = Table::new(&[("user", Ty::Str), ("page", Ty::I64), ("ts", Ty::I64)]);
    let mut profiles = Table::new(&[("user", Ty::Str), ("tier", Ty::Str)]);
    let mut id = 0;
    for d in 0..=LAST {
        for k in 0..6 {
            let ts = t0(d) + (k * 3 + 1) * HOUR + 7 * MINUTE * d;
            left.push(
                &day(d),
                vec![V::Int(id), V::Str(format!("u{}", (k + d) % 4)), V::Int(ts)],
            );
            id += 1;
        }
    }
    for d in -3..=LAST {
        for k in 0..8 {
            purchases.push(
                &day(d),
                vec![
                    V::Str(format!("u{}", (k * 3 + d).rem_euclid(5))),
                    V::Int(10 + (k * 7 + d * 3).rem_euclid(50)),
                    V::Int(t0(d) + k * 2 * HOUR + 13 * MINUTE),
                ],
            );
            views.push(
                &day(d),
                vec![
                    V::Str(format!("u{}", (k + 2 * d).rem_euclid(4))),
                    V::Int(k + d),
                    V::Int(t0(d) + k * 3 * HOUR + 5 * MINUTE),
                ],
            );
        }
        for u in 0..4 {
            profiles.push(&day(d), vec![V::Str(format!("u{u}")), V::s("basic")]);
        }
        if d == 2 || d == 3 {
            // u1 has two profiles: its left rows of days 3 and 4 appear twice in the output
            profiles.push(&day(d), vec![V::s("u1"), V::s("gold")]);
        }
    }
    let mut db = Db::default();
    db.add("data.left", left);
    db.add("data.purchases", purchases);
    db.add("data.views", views);
    db.add("data.profiles", profiles);
    db
}

fn purchases_part() -> J {
    let gb = conf::group_by(
        "test.purchases.v1",
        vec![conf::events_source(
            "data.purchases",
            &["user", "amount"],
            Some("ts"),
        )],
        &["user"],
        Some(vec![
            conf::agg("amount", Op::Sum, &[W::Days(1), W::Days(3)], &[], &[]),
            conf::agg("amount", Op::Average, &[W::Days(3)], &[], &[]),
            conf::agg("amount", Op::Count, &[W::Unbounded], &[], &[]),
        ]),
        Some(0),
    );
    conf::part(gb, &[], None)
}

fn views_part(window: W) -> J {
    let gb = conf::group_by(
        "test.views.v1",
        vec![conf::events_source(
            "data.views",
            &["user", "page"],
            Some("ts"),
        )],
        &["user"],
        Some(vec![
            conf::agg("page", Op::Count, &[window], &[], &[]),
            conf::agg("page", Op::Max, &[window], &[], &[]),
        ]),
        Some(0),
    );
    conf::part(gb, &[], None)
}

/// The part added later: SNAPSHOT accuracy, another GroupBy on the purchases.
fn max_part() -> J {
    let gb = conf::group_by(
        "test.purchase_max.v1",
        vec![conf::events_source(
            "data.purchases",
            &["user", "amount"],
            Some("ts"),
        )],
        &["user"],
        Some(vec![conf::agg("amount", Op::Max, &[W::Days(2)], &[], &[])]),
        Some(1),
    );
    conf::part(gb, &[], None)
}

/// A part without aggregations: the profile rows of the snapshot of the day before.
fn profiles_part() -> J {
    let gb = conf::group_by(
        "test.profiles.v1",
        vec![conf::entities_source(
            "data.profiles",
            None,
            &["user", "tier"],
            None,
        )],
        &["user"],
        None,
        None,
    );
    conf::part(gb, &[], None)
}

fn join(parts: Vec<J>) -> J {
    conf::join(
        "test.versioned.v1",
        conf::events_left("data.left", &["row_id", "user"]),
        parts,
    )
}

fn with_derivations(mut j: J, derivations: &[(&str, &str)]) -> J {
    j["derivations"] = J::Array(
        derivations
            .iter()
            .map(|(n, e)| json!({"name": n, "expression": e}))
            .collect(),
    );
    j
}

fn run_to(end: i64) -> Run {
    Run::through(&day(end))
}

fn run(wh: &Warehouse, j: &J) -> JoinReport {
    run_range(wh, j, LAST)
}

fn run_range(wh: &Warehouse, j: &J, end: i64) -> JoinReport {
    let r = backfill(wh, j, &options(&run_to(end))).unwrap_or_else(|e| panic!("{e}"));
    println!("{}", r.versioning.as_deref().unwrap_or("(no decision)"));
    r
}

/// The output equals the reference's.
fn check_reference(wh: &Warehouse, j: &J, db: &Db, end: i64) {
    assert_ok(compare(
        &expected(j, db, &run_to(end)),
        &read_table(wh, OUT),
    ));
}

/// The output equals a fresh backfill of the same version on a copy of the warehouse
/// without the output table.
fn check_fresh(wh: &Warehouse, j: &J, end: i64) {
    let dir = tempfile::tempdir().unwrap();
    copy_warehouse_without(wh.root(), dir.path(), OUT);
    let fresh = Warehouse::open(dir.path()).unwrap();
    backfill(&fresh, j, &options(&run_to(end))).unwrap();
    assert_ok(outputs_equal(
        &read_table(&fresh, OUT),
        &read_table(wh, OUT),
        "a fresh backfill",
        "the reused output",
    ));
}

fn part_rows(r: &JoinReport) -> Vec<(&str, u64)> {
    r.part_rows.iter().map(|(p, n)| (p.as_str(), *n)).collect()
}

/// The values of the columns of `prefix` (`<prefix>_…`), per partition and row, exactly
/// (floats by their bits).
fn part_values(a: &Actual, prefix: &str) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    for (ds, (cols, rows)) in &a.parts {
        for (i, c) in cols.iter().enumerate() {
            if c.starts_with(&format!("{prefix}_")) {
                out.push((
                    format!("{ds} {c}"),
                    rows.iter().map(|r| r[i].identity()).collect(),
                ));
            }
        }
    }
    assert!(!out.is_empty(), "no columns of {prefix}");
    out
}

fn columns(a: &Actual) -> Vec<String> {
    a.parts.values().next().unwrap().0.clone()
}

fn props(wh: &Warehouse, t: &str) -> std::collections::BTreeMap<String, String> {
    wh.properties(&TableName::parse(t).unwrap()).unwrap()
}

/// The archived copies of the output: `test.test_versioned_v1_<yyyyMMddTHHmmss>`.
fn archives(wh: &Warehouse) -> Vec<String> {
    wh.tables()
        .unwrap()
        .into_iter()
        .map(|t| t.to_string())
        .filter(|t| {
            t.strip_prefix(&format!("{OUT}_"))
                .is_some_and(|s| s.len() == 15 && s.as_bytes()[8] == b'T')
        })
        .collect()
}

fn fingerprints(wh: &Warehouse) -> Vec<(weft::partition::Ds, u64)> {
    wh.partition_fingerprints(&TableName::parse(OUT).unwrap(), "ds")
        .unwrap()
}

fn assert_reused(r: &JoinReport, partitions: usize, recomputed: &[&str], reused: &[&str]) {
    assert_eq!(r.reused.len(), partitions, "{:?}", r.reused);
    for p in &r.reused {
        assert_eq!(p.recomputed, recomputed, "{p:?}");
        assert_eq!(p.reused, reused, "{p:?}");
        assert_eq!(p.rows, 6);
    }
    assert!(r.written.is_empty(), "nothing is missing: {:?}", r.written);
}

#[test]
fn versions_of_a_join_reuse_what_did_not_change() {
    let db = db();
    let (_dir, wh) = warehouse(&db);

    // 1. First run: everything computed, the hash stored.
    let v1 = join(vec![purchases_part(), views_part(W::Days(2))]);
    let r = run(&wh, &v1);
    assert_eq!(
        r.versioning.as_deref(),
        Some("no semantic hash stored on test.test_versioned_v1: nothing to archive; computing missing partitions")
    );
    assert_eq!(r.written.len(), 6);
    assert_eq!(part_rows(&r), [(PURCHASES, LEFT_ROWS), (VIEWS, LEFT_ROWS)]);
    let p = props(&wh, OUT);
    assert!(p["semantic_hash"].contains("\"left_source\""), "{p:?}");
    assert_eq!(p["weft_semantic_hash_version"], "1");
    assert_eq!(p["semantic_hash_options"], r#"{"exclude_topic":"true"}"#);
    check_reference(&wh, &v1, &db, LAST);
    let out1 = read_table(&wh, OUT);

    // 2. Unchanged: nothing computed, nothing written.
    let before = fingerprints(&wh);
    let r = run(&wh, &v1);
    assert_eq!(
        r.versioning.as_deref(),
        Some("join unchanged since the last run: reusing parts `test_purchases_v1`, `test_views_v1` and test.test_versioned_v1; computing missing partitions")
    );
    assert!(r.written.is_empty() && r.reused.is_empty());
    assert_eq!(part_rows(&r), [(PURCHASES, 0), (VIEWS, 0)]);
    assert_eq!(fingerprints(&wh), before, "no partition rewritten");

    // 3. A part added: only it is computed; the others' values stay bit for bit.
    let v2 = join(vec![purchases_part(), views_part(W::Days(2)), max_part()]);
    let r = run(&wh, &v2);
    let text = r.versioning.clone().unwrap();
    assert!(
        text.starts_with("part `test_purchase_max_v1` added: recomputing 1 of 3 parts; reusing `test_purchases_v1`, `test_views_v1`; rewriting test.test_versioned_v1 (6 existing partition(s) in [2026-03-01, 2026-03-06] rewritten in place)"),
        "{text}"
    );
    assert_reused(&r, 6, &[MAX], &[PURCHASES, VIEWS]);
    assert_eq!(
        part_rows(&r),
        [(PURCHASES, 0), (VIEWS, 0), (MAX, LEFT_ROWS)]
    );
    check_reference(&wh, &v2, &db, LAST);
    check_fresh(&wh, &v2, LAST);
    let out2 = read_table(&wh, OUT);
    for prefix in [PURCHASES, VIEWS] {
        assert_eq!(part_values(&out1, prefix), part_values(&out2, prefix));
    }
    assert!(
        archives(&wh).is_empty(),
        "the output is rewritten, not archived"
    );
    // ... and the new version is now the stored one.
    let r = run(&wh, &v2);
    assert!(r.versioning.unwrap().starts_with("join unchanged"));

    // 4. One part's window changed: only that part is recomputed.
    let v3 = join(vec![purchases_part(), views_part(W::Days(1)), max_part()]);
    let r = run(&wh, &v3);
    assert!(
        r.versioning
            .as_deref()
            .unwrap()
            .starts_with("part `test_views_v1` changed: recomputing 1 of 3 parts; reusing `test_purchases_v1`, `test_purchase_max_v1`; rewriting"),
        "{:?}",
        r.versioning
    );
    assert_reused(&r, 6, &[VIEWS], &[PURCHASES, MAX]);
    assert_eq!(
        part_rows(&r),
        [(PURCHASES, 0), (VIEWS, LEFT_ROWS), (MAX, 0)]
    );
    check_reference(&wh, &v3, &db, LAST);
    let out3 = read_table(&wh, OUT);
    for prefix in [PURCHASES, MAX] {
        assert_eq!(part_values(&out2, prefix), part_values(&out3, prefix));
    }
    let cols = columns(&out3);
    assert!(cols.contains(&"test_views_v1_page_count_1d".to_string()));
    assert!(!cols.contains(&"test_views_v1_page_count_2d".to_string()));

    // 5. A part removed: its columns disappear, nothing is computed.
    let v4 = join(vec![views_part(W::Days(1)), max_part()]);
    let r = run(&wh, &v4);
    assert!(
        r.versioning.as_deref().unwrap().starts_with(
            "part `test_purchases_v1` removed: recomputing no parts; reusing `test_views_v1`, `test_purchase_max_v1`; rewriting"
        ),
        "{:?}",
        r.versioning
    );
    assert_reused(&r, 6, &[], &[VIEWS, MAX]);
    assert_eq!(part_rows(&r), [(VIEWS, 0), (MAX, 0)]);
    check_reference(&wh, &v4, &db, LAST);
    let out4 = read_table(&wh, OUT);
    assert!(!columns(&out4).iter().any(|c| c.starts_with(PURCHASES)));
    for prefix in [VIEWS, MAX] {
        assert_eq!(part_values(&out3, prefix), part_values(&out4, prefix));
    }

    // 6. The left changed: archived and recomputed as Chronon does.
    let mut v5 = v4.clone();
    v5["left"]["events"]["query"]["wheres"] = json!(["row_id % 2 = 0"]);
    let r = run(&wh, &v5);
    let text = r.versioning.clone().unwrap();
    let archived = archives(&wh);
    assert_eq!(archived.len(), 1, "{archived:?}");
    assert_eq!(
        text,
        format!(
            "left source changed: archiving {OUT} to {} and recomputing everything",
            archived[0]
        )
    );
    assert_eq!(props(&wh, &archived[0])["chronon_archived"], "true");
    assert_eq!(
        read_table(&wh, &archived[0]),
        out4,
        "the archive holds the old output"
    );
    assert_eq!(r.written.len(), 6);
    assert_eq!(
        part_rows(&r),
        [(VIEWS, LEFT_ROWS / 2), (MAX, LEFT_ROWS / 2)]
    );
    check_fresh(&wh, &v5, LAST);
    let out5 = read_table(&wh, OUT);
    assert!(out5.parts.values().all(|(_, rows)| rows.len() == 3));
    let r = run(&wh, &v5);
    assert!(r.versioning.unwrap().starts_with("join unchanged"));
}

#[test]
fn derivations_are_applied_again_over_reused_columns() {
    let db = db();
    let (_dir, wh) = warehouse(&db);
    let derivations = [
        ("*", "*"),
        ("amount_x2", "test_purchases_v1_amount_sum_1d * 2"),
    ];
    let v1 = with_derivations(
        join(vec![purchases_part(), views_part(W::Days(2))]),
        &derivations,
    );
    run(&wh, &v1);
    let out1 = read_table(&wh, OUT);
    // a part added under derivations: derived again, the part computed alone
    let v2 = with_derivations(
        join(vec![purchases_part(), views_part(W::Days(2)), max_part()]),
        &derivations,
    );
    let r = run(&wh, &v2);
    assert_reused(&r, 6, &[MAX], &[PURCHASES, VIEWS]);
    assert_eq!(
        part_rows(&r),
        [(PURCHASES, 0), (VIEWS, 0), (MAX, LEFT_ROWS)]
    );
    check_fresh(&wh, &v2, LAST);
    let out2 = read_table(&wh, OUT);
    for prefix in [PURCHASES, VIEWS, "amount"] {
        assert_eq!(part_values(&out1, prefix), part_values(&out2, prefix));
    }
    // only the derivations changed: nothing computed, every partition derived again
    let v3 = with_derivations(
        join(vec![purchases_part(), views_part(W::Days(2)), max_part()]),
        &[
            ("*", "*"),
            ("amount_x3", "test_purchases_v1_amount_sum_1d * 3"),
        ],
    );
    let r = run(&wh, &v3);
    assert!(
        r.versioning
            .as_deref()
            .unwrap()
            .starts_with("derivations changed: recomputing no parts; reusing `test_purchases_v1`, `test_views_v1`, `test_purchase_max_v1`; rewriting"),
        "{:?}",
        r.versioning
    );
    assert_reused(&r, 6, &[], &[PURCHASES, VIEWS, MAX]);
    assert_eq!(part_rows(&r), [(PURCHASES, 0), (VIEWS, 0), (MAX, 0)]);
    check_fresh(&wh, &v3, LAST);
    let cols = columns(&read_table(&wh, OUT));
    assert!(cols.contains(&"amount_x3".to_string()) && !cols.contains(&"amount_x2".to_string()));
}

#[test]
fn derivations_that_dropped_the_columns_to_reuse_recompute_everything() {
    let db = db();
    let (_dir, wh) = warehouse(&db);
    let derivations = [("amount_x2", "test_purchases_v1_amount_sum_1d * 2")];
    let v1 = with_derivations(join(vec![purchases_part()]), &derivations);
    run(&wh, &v1);
    assert_eq!(
        columns(&read_table(&wh, OUT)),
        ["row_id", "user", "ts", "amount_x2"]
    );
    let v2 = with_derivations(join(vec![purchases_part(), max_part()]), &derivations);
    let r = run(&wh, &v2);
    let archived = archives(&wh);
    assert_eq!(archived.len(), 1);
    assert_eq!(
        r.versioning.clone().unwrap(),
        format!(
            "part `test_purchase_max_v1` added, but the existing output has no column `test_purchases_v1_amount_sum_1d`, `test_purchases_v1_amount_sum_3d`, `test_purchases_v1_amount_average_3d`, `test_purchases_v1_amount_count` (left out by the join derivations) to reuse: archiving {OUT} to {} and recomputing everything",
            archived[0]
        )
    );
    assert_eq!(r.written.len(), 6);
    assert_eq!(part_rows(&r), [(PURCHASES, LEFT_ROWS), (MAX, LEFT_ROWS)]);
    check_fresh(&wh, &v2, LAST);
}

#[test]
fn partitions_outside_the_range_are_archived() {
    let db = db();
    let (_dir, wh) = warehouse(&db);
    run(&wh, &join(vec![purchases_part()]));
    let v2 = join(vec![purchases_part(), max_part()]);
    let r = run_range(&wh, &v2, 3);
    assert_reused(&r, 4, &[MAX], &[PURCHASES]);
    let archived = archives(&wh);
    assert_eq!(archived.len(), 1);
    assert!(
        r.versioning.as_deref().unwrap().ends_with(&format!(
            "(4 existing partition(s) in [2026-03-01, 2026-03-04] rewritten in place, 2 outside the range or without a left partition moved to {})",
            archived[0]
        )),
        "{:?}",
        r.versioning
    );
    assert_eq!(
        wh.partitions(&TableName::parse(&archived[0]).unwrap())
            .unwrap()
            .len(),
        2
    );
    check_reference(&wh, &v2, &db, 3);
    // a later run computes the two partitions as missing
    let r = run(&wh, &v2);
    assert_eq!(r.written.len(), 2);
    check_reference(&wh, &v2, &db, LAST);
}

#[test]
fn partitions_whose_rows_repeat_left_rows_are_recomputed_in_full() {
    let db = db();
    let (_dir, wh) = warehouse(&db);
    run(&wh, &join(vec![purchases_part(), profiles_part()]));
    let out1 = read_table(&wh, OUT);
    // u1 has two profiles in the snapshots of days 2 and 3: one left row on day 3, two on 4
    assert_eq!(out1.parts[&day(3)].1.len(), 7);
    assert_eq!(out1.parts[&day(4)].1.len(), 8);
    let v2 = join(vec![purchases_part(), profiles_part(), max_part()]);
    let r = run(&wh, &v2);
    let text = r.versioning.clone().unwrap();
    assert!(
        text.ends_with("(4 existing partition(s) in [2026-03-01, 2026-03-06] rewritten in place, 2 recomputed in full (a needed column is missing, or rows may repeat a left row))"),
        "{text}"
    );
    assert_eq!(
        r.written,
        [day(3), day(4)]
            .iter()
            .map(|d| reference::data::ds(d))
            .collect::<Vec<_>>()
    );
    check_reference(&wh, &v2, &db, LAST);
    check_fresh(&wh, &v2, LAST);
    // the new version is stored once the partitions to redo are written
    assert_eq!(props(&wh, OUT)["weft_reuse_pending"], "");
    let r = run(&wh, &v2);
    assert!(r.versioning.unwrap().starts_with("join unchanged"));
}

#[test]
fn an_unfinished_rewrite_for_another_version_recomputes_everything() {
    let db = db();
    let (_dir, wh) = warehouse(&db);
    let v1 = join(vec![purchases_part()]);
    run(&wh, &v1);
    wh.set_properties(
        &TableName::parse(OUT).unwrap(),
        &[(
            "weft_reuse_pending".to_string(),
            "{\"x\":\"y\"}".to_string(),
        )]
        .into_iter()
        .collect(),
    )
    .unwrap();
    let r = run(&wh, &v1);
    let archived = archives(&wh);
    assert_eq!(
        r.versioning.unwrap(),
        format!(
            "an earlier rewrite of {OUT} for another version of the join did not finish: archiving {OUT} to {} and recomputing everything",
            archived[0]
        )
    );
    assert_eq!(r.written.len(), 6);
    check_reference(&wh, &v1, &db, LAST);
    assert_eq!(props(&wh, OUT)["weft_reuse_pending"], "");
}

#[test]
fn an_unfinished_rewrite_is_finished_by_the_same_version() {
    let db = db();
    let (_dir, wh) = warehouse(&db);
    let out = TableName::parse(OUT).unwrap();
    run(&wh, &join(vec![purchases_part()]));
    let v1_props = props(&wh, OUT);
    let v2 = join(vec![purchases_part(), max_part()]);
    run(&wh, &v2);
    // as if the rewrite stopped after its partitions were written, before the hash was stored
    let mut interrupted = v1_props.clone();
    interrupted.insert(
        "weft_reuse_pending".into(),
        props(&wh, OUT)["semantic_hash"].clone(),
    );
    wh.set_properties(&out, &interrupted).unwrap();
    let r = run(&wh, &v2);
    assert!(
        r.versioning
            .as_deref()
            .unwrap()
            .starts_with("part `test_purchase_max_v1` added"),
        "{:?}",
        r.versioning
    );
    assert_reused(&r, 6, &[MAX], &[PURCHASES]);
    assert!(archives(&wh).is_empty());
    check_reference(&wh, &v2, &db, LAST);
    check_fresh(&wh, &v2, LAST);
}

#[test]
fn a_hash_not_written_by_weft_is_refused_with_the_fix() {
    let db = db();
    let (_dir, wh) = warehouse(&db);
    let v1 = join(vec![purchases_part()]);
    run(&wh, &v1);
    // what Chronon leaves: the hash and its options, without weft's version mark
    let file = wh
        .table_dir(&TableName::parse(OUT).unwrap())
        .join("_weft_table.json");
    std::fs::write(
        &file,
        r#"{"properties": {"semantic_hash": "{\"left_source\":\"abc\"}", "semantic_hash_options": "{\"exclude_topic\":\"true\"}"}}"#,
    )
    .unwrap();
    let err = backfill(&wh, &v1, &options(&run_to(LAST))).unwrap_err();
    assert!(err.contains(OUT), "{err}");
    assert!(err.contains("was not computed by weft"), "{err}");
    assert!(
        err.contains("archive the table by hand") && err.contains("semantic_hash"),
        "{err}"
    );
    assert!(archives(&wh).is_empty());
}
