//! Label joins (chronon-semantics §7, §10.3 LabelJoinTest): entity labels from the snapshot of
//! `label_ds`, aggregated labels over the window starting at the left day, offsets as
//! inclusive day counts, label-table evolution and validation.

use crate::labelfix;
use crate::reference;

use labelfix::*;
use reference::conf::{self, W};
use reference::harness::warehouse;
use reference::{data, Op, V};
use serde_json::Value as J;
use weft::engine::Context;
use weft::engine::JoinRunner;
use weft::warehouse::Warehouse;

fn d(s: &str) -> weft::partition::Ds {
    data::ds(s)
}

/// testLabelJoin: label_ds 2022-10-30, offsets 30/20 → left days 10-01..10-11; each row gets
/// the room type of snapshot 10-30, joined on the listing only.
#[test]
fn entity_labels_come_from_the_label_ds_snapshot() {
    let (_dir, wh) = warehouse(&db());
    let engine = Context::new(&wh).unwrap();
    let j = join("unit_test.label_join.room", vec![room_label()], 30, 20);
    let mut r = runner(&engine, &j);
    let rep = label(&engine, &mut r, "2022-10-30");
    assert_eq!(rep.written.len(), 3, "{rep:?}");
    let got = rows(
        &wh,
        &format!(
            "SELECT listing_id, ds, label_ds, {ROOM_COL} AS room FROM {} ORDER BY ds, listing_id",
            table(&j, "_labels")
        ),
    );
    let want: Vec<(i64, &str, &str)> = vec![
        (1, "2022-10-01", "ENTIRE_HOME"),
        (2, "2022-10-01", "PRIVATE_ROOM"),
        (3, "2022-10-02", "SHARED_ROOM"),
        (4, "2022-10-02", "ENTIRE_HOME"),
        (5, "2022-10-03", "HOTEL_ROOM"),
    ];
    assert_eq!(got.len(), want.len(), "{got:?}");
    for (g, (id, ds, room)) in got.iter().zip(want) {
        assert_eq!(g["listing_id"], V::Int(id));
        assert_eq!(g["ds"], V::s(ds));
        assert_eq!(g["label_ds"], V::s("2022-10-30"));
        assert_eq!(g["room"], V::s(room));
    }
    let labeled = rows(
        &wh,
        &format!(
            "SELECT * FROM {} ORDER BY ds, listing_id, m_views",
            table(&j, "_labeled")
        ),
    );
    // one row per feature row: listing 1's two views on 10-01 share its label
    assert_eq!(labeled.len(), 6, "{labeled:?}");
    assert!(
        labeled
            .iter()
            .all(|r| r["label_ds"] == V::s("2022-10-30")
                && !r[&format!("label_{ROOM_COL}")].is_null())
    );
}

/// testLabelJoinMultiLabels: two entity labels, both from snapshot 10-30, in one label table.
#[test]
fn several_entity_labels_share_one_label_table() {
    let db = db();
    let (_dir, wh) = warehouse(&db);
    let engine = Context::new(&wh).unwrap();
    let j = join(
        "unit_test.label_join.multi",
        vec![room_label(), reservation_label()],
        30,
        20,
    );
    let mut r = runner(&engine, &j);
    let rep = label(&engine, &mut r, "2022-10-30");
    let want_parts: Vec<_> = ["2022-10-01", "2022-10-02", "2022-10-03"]
        .iter()
        .map(|ds| (d("2022-10-30"), d(ds)))
        .collect();
    assert_eq!(rep.written, want_parts);
    assert_eq!(rep.left_days.len(), 3);
    assert_eq!(
        rep.missing_left.len(),
        8,
        "10-04..10-11 have no left partition"
    );
    assert!(rep.missing_sources.is_empty(), "{rep:?}");
    assert_eq!(
        columns(&wh, &table(&j, "_labels")),
        vec![
            "listing_id".to_string(),
            RESERVATION_COL.to_string(),
            ROOM_COL.to_string()
        ],
        "row identifier and the two label columns (label_ds and ds are partitions)"
    );
    let want = expected_entity_labels(
        &db,
        &[(ROOM, "dim_room_type"), (RESERVATION, "dim_reservations")],
        &["2022-10-30"],
        30,
        20,
    );
    assert_eq!(want.len(), 5);
    assert_eq!(rendered_labels(&wh, &j, &[ROOM_COL, RESERVATION_COL]), want);
    // spelled out for one row: listing 4 on 10-02, snapshot 10-30
    let r4 = label_rows(&wh, &j, "*")
        .into_iter()
        .find(|r| r["listing_id"] == V::Int(4))
        .unwrap();
    assert_eq!(r4[ROOM_COL], V::s("ENTIRE_HOME"));
    assert_eq!(r4[RESERVATION_COL], V::Int(12));
    assert_eq!(r4["ds"], V::s("2022-10-02"));
}

/// testLabelJoinWithDifferentPartitionColumns: every table is partitioned by `date_key` and
/// every query says so; the label table is still partitioned by label_ds/ds and holds what
/// the `ds`-partitioned run holds.
#[test]
fn non_ds_partition_columns_on_every_table() {
    let db = db();
    let mut j = join(
        "unit_test.label_join.date_key",
        vec![room_label(), reservation_label()],
        30,
        20,
    );
    // the same join over ds-partitioned tables, for comparison
    let (_d1, plain_wh) = warehouse(&db);
    {
        let engine = Context::new(&plain_wh).unwrap();
        let mut r = runner(&engine, &j);
        label(&engine, &mut r, "2022-10-30");
    }
    partitioned_by(&mut j, "date_key");
    assert_eq!(
        j["labelPart"]["labels"][1]["groupBy"]["sources"][0]["entities"]["query"]
            ["partitionColumn"],
        "date_key"
    );
    let (dir, wh) = warehouse_by(&db, "date_key");
    assert!(dir
        .path()
        .join("data/listing_views/date_key=2022-10-01")
        .is_dir());
    assert!(!dir.path().join("data/listing_views/ds=2022-10-01").exists());
    let engine = Context::new(&wh).unwrap();
    let mut r = runner(&engine, &j);
    let rep = label(&engine, &mut r, "2022-10-30");
    assert_eq!(rep.written.len(), 3, "{rep:?}");
    assert!(rep.missing_sources.is_empty(), "{rep:?}");
    let labels = data::tn(&table(&j, "_labels"));
    assert_eq!(
        wh.partitions_by(&labels, "label_ds").unwrap(),
        vec![d("2022-10-30")]
    );
    let sub: Vec<_> = wh
        .sub_partition_fingerprints(&labels, &[("label_ds", d("2022-10-30"))], "ds")
        .unwrap()
        .into_iter()
        .map(|(ds, _)| ds)
        .collect();
    assert_eq!(sub, vec![d("2022-10-01"), d("2022-10-02"), d("2022-10-03")]);
    assert!(
        !columns(&wh, &table(&j, "_labels")).contains(&"date_key".to_string()),
        "the source partition column is not a label table column"
    );
    let want = expected_entity_labels(
        &db,
        &[(ROOM, "dim_room_type"), (RESERVATION, "dim_reservations")],
        &["2022-10-30"],
        30,
        20,
    );
    assert_eq!(rendered_labels(&wh, &j, &[ROOM_COL, RESERVATION_COL]), want);
    assert_eq!(
        table_rows(&wh, &table(&j, "_labels")),
        table_rows(&plain_wh, &table(&j, "_labels"))
    );
    // the labeled tables too, partitioned by ds
    for t in ["_labeled", "_labeled_latest"] {
        let t = table(&j, t);
        assert_eq!(
            wh.partitions(&data::tn(&t)).unwrap().len(),
            3,
            "{t} partitioned by ds"
        );
        assert_eq!(table_rows(&wh, &t), table_rows(&plain_wh, &t), "{t}");
        assert_eq!(table_rows(&wh, &t).len(), 6, "{t}");
    }
}

/// testLabelDsDoesNotExist: the room source has no partition 2022-11-01; the run still writes
/// every left row with label_ds 2022-11-01 and NULL labels, and reports the missing snapshot.
#[test]
fn label_ds_without_a_source_partition_writes_null_labels() {
    let (_dir, wh) = warehouse(&db());
    let engine = Context::new(&wh).unwrap();
    let j = join("unit_test.label_join.missing", vec![room_label()], 35, 20);
    let mut r = runner(&engine, &j);
    let rep = label(&engine, &mut r, "2022-11-01");
    assert_eq!(rep.written.len(), 3, "{rep:?}");
    assert_eq!(
        rep.missing_sources,
        vec![(ROOM.to_string(), vec![d("2022-11-01")])]
    );
    let got = label_rows(&wh, &j, "*");
    let ids: Vec<(V, V)> = got
        .iter()
        .map(|r| (r["ds"].clone(), r["listing_id"].clone()))
        .collect();
    assert_eq!(
        ids,
        vec![
            (V::s("2022-10-01"), V::Int(1)),
            (V::s("2022-10-01"), V::Int(2)),
            (V::s("2022-10-02"), V::Int(3)),
            (V::s("2022-10-02"), V::Int(4)),
            (V::s("2022-10-03"), V::Int(5)),
        ]
    );
    for g in &got {
        assert_eq!(g["label_ds"], V::s("2022-11-01"));
        assert!(g[ROOM_COL].is_null(), "{g:?}");
    }
    // in the labeled table: label_ds set, the label NULL
    let labeled = rows(&wh, &format!("SELECT * FROM {}", table(&j, "_labeled")));
    assert_eq!(labeled.len(), 6);
    assert!(labeled
        .iter()
        .all(|r| r["label_ds"] == V::s("2022-11-01") && r[&format!("label_{ROOM_COL}")].is_null()));
}

/// testLabelRefresh: offsets 60/20, the same label_ds run twice — in the same runner and in a
/// fresh one — gives identical rows; a fresh run overwrites a label partition changed behind
/// its back.
#[test]
fn rerunning_a_label_ds_rewrites_identical_rows() {
    let (_dir, wh) = warehouse(&db());
    let engine = Context::new(&wh).unwrap();
    let j = join("unit_test.label_join.refresh", vec![room_label()], 60, 20);
    let labels = table(&j, "_labels");
    let mut r = runner(&engine, &j);
    let first = label(&engine, &mut r, "2022-10-30");
    assert_eq!(first.written.len(), 3);
    assert_eq!(first.left_days.len(), 3);
    assert_eq!(
        first.missing_left.len(),
        38,
        "09-01..10-11 minus the 3 left days"
    );
    let before = table_rows(&wh, &labels);
    assert_eq!(before.len(), 5);
    let before_labeled = table_rows(&wh, &table(&j, "_labeled"));

    // same runner: nothing changed, nothing rewritten, same rows
    let again = label(&engine, &mut r, "2022-10-30");
    assert!(again.written.is_empty(), "{again:?}");
    assert_eq!(table_rows(&wh, &labels), before);

    // a label partition tampered with, then a fresh runner: recomputed and overwritten
    let t = data::tn(&labels);
    let spec = vec![
        ("label_ds".to_string(), "2022-10-30".to_string()),
        ("ds".to_string(), "2022-10-02".to_string()),
    ];
    let (schema, batches) = Context::new(&wh)
        .unwrap()
        .session()
        .query_with_schema(
            &format!(
                "SELECT listing_id, 'TAMPERED' AS {ROOM_COL} FROM {labels} WHERE ds = '2022-10-02'"
            ),
            "tamper",
        )
        .unwrap();
    wh.write_partition(&t, &spec, schema, &batches).unwrap();
    assert_ne!(table_rows(&wh, &labels), before);
    let mut fresh = JoinRunner::new(&conf::parse(&j)).unwrap();
    let rep = label(&engine, &mut fresh, "2022-10-30");
    assert_eq!(
        rep.written.len(),
        3,
        "a fresh run recomputes its whole range: {rep:?}"
    );
    assert_eq!(table_rows(&wh, &labels), before);
    assert_eq!(table_rows(&wh, &table(&j, "_labeled")), before_labeled);
    // and once more in the fresh runner
    label(&engine, &mut fresh, "2022-10-30");
    assert_eq!(table_rows(&wh, &labels), before);
}

/// testLabelEvolution: label_ds 10-30 with V1 (room type, offsets 30/20), then V2 (the same
/// join and label GroupBy with host type added, offsets 35/20) at label_ds 11-01: both
/// versions stay, the new column is NULL for the old version.
#[test]
fn label_columns_evolve_across_label_versions() {
    let mut db = db();
    db.add(HOST, room_host_table());
    let (_dir, wh) = warehouse(&db);
    let engine = Context::new(&wh).unwrap();
    let name = "unit_test.label_join.evolution";
    let v1 = join(name, vec![room_host_label(false)], 30, 20);
    let mut r1 = runner(&engine, &v1);
    label(&engine, &mut r1, "2022-10-30");
    assert_eq!(
        columns(&wh, &table(&v1, "_labels")),
        vec!["listing_id".to_string(), ROOM_COL.to_string()]
    );
    drop(r1);
    let v2 = join(name, vec![room_host_label(true)], 35, 20);
    assert_eq!(table(&v1, "_labels"), table(&v2, "_labels"));
    let mut r2 = runner(&engine, &v2);
    let rep = label(&engine, &mut r2, "2022-11-01");
    assert_eq!(rep.written.len(), 3, "{rep:?}");
    let got = label_rows(&wh, &v2, "*");
    assert_eq!(got.len(), 10, "5 rows per label version: {got:?}");
    let host = |id: i64, l: &str| {
        got.iter()
            .find(|r| r["listing_id"] == V::Int(id) && r["label_ds"] == V::s(l))
            .unwrap_or_else(|| panic!("no row for listing {id} at {l}"))
    };
    let t = room_host_table();
    for id in 1..=5 {
        let old = host(id, "2022-10-30");
        assert!(
            old[HOST_COL].is_null(),
            "V1 rows have no host type: {old:?}"
        );
        assert_eq!(
            old[ROOM_COL],
            snapshot_value(&t, "2022-10-30", id, "dim_room_type")
        );
        let new = host(id, "2022-11-01");
        assert_eq!(
            new[HOST_COL],
            snapshot_value(&t, "2022-11-01", id, "dim_host_type")
        );
        assert_eq!(
            new[ROOM_COL],
            snapshot_value(&t, "2022-11-01", id, "dim_room_type")
        );
    }
    assert_eq!(host(3, "2022-11-01")[HOST_COL], V::s("NEW_HOST"));
    assert_eq!(host(5, "2022-11-01")[ROOM_COL], V::s("ENTIRE_HOME"));
    assert_eq!(host(5, "2022-10-30")[ROOM_COL], V::s("HOTEL_ROOM"));
    // the labeled table has both versions and the new column
    let labeled = rows(
        &wh,
        &format!(
            "SELECT * FROM {} ORDER BY ds, listing_id, label_ds",
            table(&v2, "_labeled")
        ),
    );
    assert_eq!(labeled.len(), 12, "6 feature rows × 2 label versions");
    let lh = format!("label_{HOST_COL}");
    for r in &labeled {
        if r["label_ds"] == V::s("2022-10-30") {
            assert!(r[&lh].is_null(), "{r:?}");
        } else {
            let id = r["listing_id"].as_i64().unwrap();
            assert_eq!(
                r[&lh],
                snapshot_value(&t, "2022-11-01", id, "dim_host_type")
            );
        }
    }
    let latest = rows(
        &wh,
        &format!("SELECT * FROM {}", table(&v2, "_labeled_latest")),
    );
    assert_eq!(latest.len(), 6);
    assert!(latest.iter().all(|r| r["label_ds"] == V::s("2022-11-01")));
}

/// The error of a label run of `j` (panics when the run succeeds).
fn label_error(wh: &Warehouse, j: &J) -> String {
    let engine = Context::new(wh).unwrap();
    let mut r = JoinRunner::new(&conf::parse(j)).unwrap_or_else(|e| panic!("plan: {e}"));
    match r.label(&engine, d("2022-10-30")) {
        Ok(rep) => panic!("label run accepted an invalid label part: {rep:?}"),
        Err(e) => e.to_string(),
    }
}

fn assert_names(err: &str, path: &str, fragment: &str) {
    assert!(
        err.contains(&format!("at `{path}`")),
        "error should name `{path}`: {err}"
    );
    assert!(
        err.contains(fragment),
        "error should say `{fragment}`: {err}"
    );
}

fn events_gb(aggs: Option<Vec<J>>) -> J {
    conf::part(
        conf::group_by(
            "unit_test.listing_events",
            vec![conf::events_source(
                EVENTS,
                &["listing_id", "is_active"],
                Some("ts"),
            )],
            &["listing_id"],
            aggs,
            None,
        ),
        &[],
        None,
    )
}

/// testLabelJoinInvalidSource / InvalidLabelGroupByDataModal / InvalidAggregations, and the
/// other §7.2 rules: each invalid label part fails the label run with the config field named;
/// the feature backfill of such a join still runs.
#[test]
fn invalid_label_parts_name_their_config_field() {
    let (_dir, wh) = warehouse(&db());
    let max = |windows: &[W]| conf::agg("is_active", Op::Max, windows, &[], &[]);

    // an entities left
    let mut j = join("unit_test.label_join.bad_left", vec![room_label()], 30, 20);
    j["left"] = conf::entities_left(ROOM, &["listing_id", "dim_room_type"]);
    assert_names(&label_error(&wh, &j), "left", "events left");

    // an entity GroupBy with aggregations as a label
    let entity_agg = conf::part(
        conf::group_by(
            "unit_test.listing_attributes_reservation",
            vec![conf::entities_source(
                RESERVATION,
                None,
                &["listing_id", "dim_reservations"],
                None,
            )],
            &["listing_id"],
            Some(vec![conf::agg(
                "dim_reservations",
                Op::Max,
                &[W::Days(5)],
                &[],
                &[],
            )]),
            None,
        ),
        &[],
        None,
    );
    let j = join("unit_test.label_join.bad_entity", vec![entity_agg], 5, 5);
    assert_names(
        &label_error(&wh, &j),
        "labelPart.labels[0].groupBy.sources",
        "has aggregations, so it must read event sources",
    );

    // an events GroupBy without aggregations
    let j = join(
        "unit_test.label_join.bad_events",
        vec![events_gb(None)],
        30,
        20,
    );
    assert_names(
        &label_error(&wh, &j),
        "labelPart.labels[0].groupBy.sources",
        "has no aggregations, so it must read entity sources",
    );

    // two windows
    let j = join(
        "unit_test.label_join.two_windows",
        vec![events_gb(Some(vec![max(&[W::Days(5), W::Days(7)])]))],
        5,
        5,
    );
    assert_names(
        &label_error(&wh, &j),
        "labelPart.labels[0].groupBy.aggregations",
        "1 aggregation(s) and 2 window(s)",
    );

    // two aggregations
    let j = join(
        "unit_test.label_join.two_aggs",
        vec![events_gb(Some(vec![
            max(&[W::Days(5)]),
            conf::agg("is_active", Op::Min, &[W::Days(5)], &[], &[]),
        ]))],
        5,
        5,
    );
    assert_names(
        &label_error(&wh, &j),
        "labelPart.labels[0].groupBy.aggregations",
        "2 aggregation(s) and 2 window(s)",
    );

    // a window in hours
    let j = join(
        "unit_test.label_join.hours",
        vec![events_gb(Some(vec![max(&[W::Hours(120)])]))],
        5,
        5,
    );
    assert_names(
        &label_error(&wh, &j),
        "labelPart.labels[0].groupBy.aggregations[0].windows[0]",
        "DAYS",
    );

    // offsets other than the window of an aggregated label
    let j = join(
        "unit_test.label_join.offsets",
        vec![events_gb(Some(vec![max(&[W::Days(5)])]))],
        6,
        5,
    );
    assert_names(
        &label_error(&wh, &j),
        "labelPart.leftStartOffset",
        "both offsets must equal the window (5 days)",
    );

    // start offset before the end offset
    let j = join("unit_test.label_join.reversed", vec![room_label()], 20, 30);
    assert_names(
        &label_error(&wh, &j),
        "labelPart.leftStartOffset",
        "leftStartOffset 20 must be ≥ leftEndOffset 30",
    );

    // an aggregated label next to another label
    let j = join(
        "unit_test.label_join.mixed",
        vec![events_gb(Some(vec![max(&[W::Days(5)])])), room_label()],
        5,
        5,
    );
    assert_names(
        &label_error(&wh, &j),
        "labelPart.labels",
        "exactly one label JoinPart",
    );

    // a label GroupBy without a team
    let mut room = room_label();
    room["groupBy"]["metaData"]["team"] = J::Null;
    let j = join("unit_test.label_join.no_team", vec![room], 30, 20);
    assert_names(
        &label_error(&wh, &j),
        "labelPart.labels[0].groupBy.metaData.team",
        "team",
    );

    // several problems are reported together
    let j = join(
        "unit_test.label_join.several",
        vec![
            events_gb(Some(vec![max(&[W::Hours(120)])])),
            events_gb(None),
        ],
        2,
        3,
    );
    let e = label_error(&wh, &j);
    for path in [
        "labelPart.leftStartOffset",
        "labelPart.labels",
        "labelPart.labels[0].groupBy.aggregations[0].windows[0]",
        "labelPart.labels[1].groupBy.sources",
    ] {
        assert!(
            e.contains(&format!("at `{path}`")),
            "{path} missing from {e}"
        );
    }

    // an invalid label part does not stop the feature backfill, and writes no label table
    let engine = Context::new(&wh).unwrap();
    let j = join("unit_test.label_join.reversed", vec![room_label()], 20, 30);
    let mut r = runner(&engine, &j);
    assert!(r.label_plan().is_none());
    assert_eq!(wh.partitions(&data::tn(&table(&j, ""))).unwrap().len(), 3);
    assert!(r.label(&engine, d("2022-10-30")).is_err());
    assert!(!wh.exists(&data::tn(&table(&j, "_labels"))));
}

/// testLabelAggregations: MAX(is_active) over 5 days, offsets 5/5, label_ds 2022-10-06 → only
/// left day 10-02 is labelled, with the MAX over label events of 10-02..10-06.
#[test]
fn aggregated_labels_cover_the_window_from_the_left_day() {
    let db = db();
    let (_dir, wh) = warehouse(&db);
    let engine = Context::new(&wh).unwrap();
    let j = join("unit_test.label_join.agg", vec![max_active_label()], 5, 5);
    let mut r = runner(&engine, &j);
    let rep = label(&engine, &mut r, "2022-10-06");
    assert_eq!(rep.written, vec![(d("2022-10-06"), d("2022-10-02"))]);
    assert_eq!(rep.left_days, vec![d("2022-10-02")]);
    // 10-03..10-05 have no label events partition
    let missing: Vec<_> = rep
        .missing_sources
        .iter()
        .flat_map(|(_, v)| v.clone())
        .collect();
    assert_eq!(
        missing,
        vec![d("2022-10-03"), d("2022-10-04"), d("2022-10-05")]
    );
    assert_eq!(
        columns(&wh, &table(&j, "_labels")),
        vec!["listing_id".to_string(), MAX_5D.to_string()]
    );
    let got = label_rows(&wh, &j, "*");
    assert_eq!(got.len(), 2, "{got:?}");
    for g in &got {
        assert_eq!(g["ds"], V::s("2022-10-02"));
        // label_ds = ds + 4
        assert_eq!(g["label_ds"], V::s(&reference::ds_shift("2022-10-02", 4)));
    }
    // listing 3: 0 on 10-02 and 2 on 10-06; listing 4: 1 on 10-06 (10-01 and 10-07 are outside)
    assert_eq!(got[0]["listing_id"], V::Int(3));
    assert_eq!(got[0][MAX_5D], V::Int(2));
    assert_eq!(got[1]["listing_id"], V::Int(4));
    assert_eq!(got[1][MAX_5D], V::Int(1));
    assert_eq!(
        rendered_labels(&wh, &j, &[MAX_5D]),
        expected_max_labels(&db, 5, &["2022-10-06"])
    );
    // the next day labels 10-03 (listing 5, no events: NULL) and leaves 10-02 alone
    let rep = label(&engine, &mut r, "2022-10-07");
    assert_eq!(rep.written, vec![(d("2022-10-07"), d("2022-10-03"))]);
    assert_eq!(
        rendered_labels(&wh, &j, &[MAX_5D]),
        expected_max_labels(&db, 5, &["2022-10-06", "2022-10-07"])
    );
}

/// testLabelAggregationsWithLargerDataset, and entity labels likewise: random data, several
/// label_ds runs in one runner (each later run a delta of the earlier ones) and in fresh
/// runners, checked against the plain reference of labelfix.
#[test]
fn random_label_runs_match_the_reference() {
    for seed in [7] {
        let db = random_db(seed, "2022-09-01", 20, 10);
        let (_dir, wh) = warehouse(&db);
        let engine = Context::new(&wh).unwrap();

        // entity labels, offsets 9/3; 09-23 is after the last snapshot (all NULL)
        let je = join(
            &format!("unit_test.label_join.random_entity_{seed}"),
            vec![room_label(), reservation_label()],
            9,
            3,
        );
        let mut r = JoinRunner::new(&conf::parse(&je)).unwrap();
        backfill(&engine, &mut r, "2022-09-20");
        let mut runs = Vec::new();
        for l in ["2022-09-12", "2022-09-13", "2022-09-20", "2022-09-23"] {
            r.label(&engine, d(l)).unwrap();
            runs.push(l);
            if runs.len() % 2 == 1 {
                continue;
            }
            let want = expected_entity_labels(
                &db,
                &[(ROOM, "dim_room_type"), (RESERVATION, "dim_reservations")],
                &runs,
                9,
                3,
            );
            assert!(want.len() > 20 * runs.len(), "seed {seed}: data too thin");
            assert_eq!(
                rendered_labels(&wh, &je, &[ROOM_COL, RESERVATION_COL]),
                want,
                "seed {seed}, runs {runs:?}"
            );
        }

        // aggregated labels, window 4 days; the last runs' windows reach past the data
        let mut label = max_active_label();
        label["groupBy"]["aggregations"][0]["windows"][0]["length"] = J::from(4);
        let ja = join(
            &format!("unit_test.label_join.random_agg_{seed}"),
            vec![label],
            4,
            4,
        );
        let col = MAX_5D.replace("_5d", "_4d");
        let mut r = JoinRunner::new(&conf::parse(&ja)).unwrap();
        backfill(&engine, &mut r, "2022-09-20");
        let runs = [
            "2022-09-04",
            "2022-09-05",
            "2022-09-06",
            "2022-09-07",
            "2022-09-08",
            "2022-09-09",
            "2022-09-13",
            "2022-09-17",
            "2022-09-20",
            "2022-09-22",
        ];
        for l in &runs {
            r.label(&engine, d(l)).unwrap();
        }
        let want = expected_max_labels(&db, 4, &runs);
        let non_null = want.iter().filter(|s| !s.ends_with("|NULL")).count();
        assert!(non_null > 20, "seed {seed}: too few non-NULL labels");
        assert!(
            want.len() - non_null > 5,
            "seed {seed}: too few NULL labels"
        );
        assert_eq!(rendered_labels(&wh, &ja, &[&col]), want, "seed {seed}");
        // a fresh runner for a few of the days agrees
        let before = table_rows(&wh, &table(&ja, "_labels"));
        let mut fresh = JoinRunner::new(&conf::parse(&ja)).unwrap();
        for l in ["2022-09-06", "2022-09-22"] {
            fresh.label(&engine, d(l)).unwrap();
        }
        assert_eq!(
            table_rows(&wh, &table(&ja, "_labels")),
            before,
            "seed {seed}"
        );
    }
}

/// A label part with a key mapping and a prefix: the row identifier is the left's column, the
/// label column carries the prefix, and the values are those of the unmapped join.
#[test]
fn key_mapping_and_prefix_on_a_label_part() {
    let (_dir, wh) = warehouse(&db());
    let engine = Context::new(&wh).unwrap();
    let mut j = join("unit_test.label_join.mapped", vec![], 30, 20);
    j["left"] = conf::events_left(LEFT, &["lid=listing_id", "m_views"]);
    let mut views = views_part();
    views["keyMapping"] = serde_json::json!({"lid": "listing_id"});
    j["joinParts"] = serde_json::json!([views]);
    let mut room = room_label();
    room["keyMapping"] = serde_json::json!({"lid": "listing_id"});
    room["prefix"] = J::from("lbl");
    j["labelPart"]["labels"] = serde_json::json!([room]);
    let mut r = runner(&engine, &j);
    label(&engine, &mut r, "2022-10-30");
    let col = format!("lbl_{ROOM_COL}");
    assert_eq!(
        columns(&wh, &table(&j, "_labels")),
        vec![col.clone(), "lid".to_string()]
    );
    let got: Vec<String> = rows(
        &wh,
        &format!(
            "SELECT lid, ds, {col} AS v FROM {} ORDER BY ds, lid",
            table(&j, "_labels")
        ),
    )
    .iter()
    .map(|r| format!("{}|{}|{}", plain(&r["ds"]), r["lid"], plain(&r["v"])))
    .collect();
    let want: Vec<String> = left_ids(&left_table(), "2022-10-01", "2022-10-11")
        .into_iter()
        .map(|(ds, id)| {
            let v = snapshot_value(
                &room_table(),
                "2022-10-30",
                id.as_i64().unwrap(),
                "dim_room_type",
            );
            format!("{ds}|{id}|{}", plain(&v))
        })
        .collect();
    assert_eq!(got, want);
    let labeled = rows(&wh, &format!("SELECT * FROM {}", table(&j, "_labeled")));
    assert_eq!(labeled.len(), 6);
    assert!(labeled
        .iter()
        .all(|r| !r[&format!("label_{col}")].is_null() && r["label_ds"] == V::s("2022-10-30")));
}
