//! The labeled tables (chronon-semantics §7.7, §10.3 FeatureWithLabelJoinTest and the view
//! cases of JoinUtilsTest): `<join>_labeled` is the feature table left-outer-joined with every
//! label version, `<join>_labeled_latest` keeps the latest label version of each day; both
//! follow the feature table when its partitions are rewritten. Also checked against DuckDB
//! (tests/oracle/labeled_tables.py) on random data.

use crate::labelfix;
use crate::reference;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use labelfix::*;
use reference::conf;
use reference::harness::warehouse;
use reference::{data, Db, Table, Ty, V};
use serde_json::{json, Value as J};
use weft::engine::Context;
use weft::engine::JoinRunner;
use weft::warehouse::Warehouse;

fn d(s: &str) -> weft::partition::Ds {
    data::ds(s)
}

/// The fixture plus a left row with a NULL listing on 10-02 and a left day 10-25 that no run
/// of offsets 50/20 at 10-30 or 11-11 covers (10-04..10-24 are empty).
fn db_with_unlabelled_rows() -> Db {
    let mut db = db();
    let left = db.table_mut(LEFT);
    left.push(
        "2022-10-02",
        vec![V::Null, V::Int(17), V::Int(at("2022-10-02", 15))],
    );
    // the days between are empty (the feature part reads every left day)
    for i in 4..25 {
        left.touch(&format!("2022-10-{i:02}"));
    }
    left.push(
        "2022-10-25",
        vec![V::Int(2), V::Int(40), V::Int(at("2022-10-25", 8))],
    );
    left.push(
        "2022-10-25",
        vec![V::Int(6), V::Int(41), V::Int(at("2022-10-25", 9))],
    );
    db
}

fn count(rows: &[BTreeMap<String, V>], f: impl Fn(&BTreeMap<String, V>) -> bool) -> usize {
    rows.iter().filter(|r| f(r)).count()
}

fn all_rows(wh: &Warehouse, t: &str) -> Vec<BTreeMap<String, V>> {
    rows(wh, &format!("SELECT * FROM {t}"))
}

/// testFinalViews: label runs at 10-30 then 11-11 (offsets 50/20). `_labeled` is the feature
/// table ⟕ the label table with one row per label version; feature rows without a label row
/// (a NULL key, a day no run covers) have NULL labels and label_ds; `_labeled_latest` keeps the
/// 11-11 version of the labelled days, drops the NULL-key row of labelled day 10-02 (Chronon's
/// edge) and keeps the rows of 10-25, which has no labels.
#[test]
fn labeled_tables_join_every_label_version_to_the_features() {
    let (_dir, wh) = warehouse(&db_with_unlabelled_rows());
    let engine = Context::new(&wh).unwrap();
    let j = join("unit_test.labeled.views", vec![room_label()], 50, 20);
    let mut r = runner(&engine, &j);
    backfill(&engine, &mut r, "2022-10-25");
    let (features, labels, labeled, latest) = (
        table(&j, ""),
        table(&j, "_labels"),
        table(&j, "_labeled"),
        table(&j, "_labeled_latest"),
    );
    assert!(
        !wh.exists(&data::tn(&labeled)),
        "no labeled table before the first label run"
    );
    let rep = label(&engine, &mut r, "2022-10-30");
    assert_eq!(
        rep.labeled_written.len(),
        25,
        "every feature day 10-01..10-25, the empty ones too: {rep:?}"
    );
    let first = all_rows(&wh, &labeled);
    assert_eq!(first.len(), 9, "{first:?}");
    let rep = label(&engine, &mut r, "2022-11-11");
    assert_eq!(
        rep.labeled_written,
        vec![d("2022-10-01"), d("2022-10-02"), d("2022-10-03")],
        "10-25 has no labels and did not change"
    );

    let (want_all, want_latest) = expected_labeled(&wh, &features, &labels, &["listing_id"]);
    assert_eq!(table_rows(&wh, &labeled), want_all);
    assert_eq!(table_rows(&wh, &latest), want_latest);

    let all = all_rows(&wh, &labeled);
    let room = format!("label_{ROOM_COL}");
    assert_eq!(all.len(), 6 + 6 + 3, "{all:?}");
    // equal row counts per label version
    let v1 = count(&all, |r| r["label_ds"] == V::s("2022-10-30"));
    let v2 = count(&all, |r| r["label_ds"] == V::s("2022-11-11"));
    assert_eq!((v1, v2), (6, 6));
    // listing 4 is not in the 11-11 snapshot: NULL label for that version, a value for 10-30
    let l4: Vec<_> = all
        .iter()
        .filter(|r| r["listing_id"] == V::Int(4))
        .collect();
    assert_eq!(l4.len(), 2);
    for r in l4 {
        if r["label_ds"] == V::s("2022-11-11") {
            assert!(r[&room].is_null(), "{r:?}");
        } else {
            assert_eq!(r[&room], V::s("ENTIRE_HOME"));
        }
    }
    // listing 1 changed room type between the snapshots, both of its views carry both
    let l1: Vec<String> = all
        .iter()
        .filter(|r| r["listing_id"] == V::Int(1))
        .map(|r| {
            format!(
                "{}/{}/{}",
                r["m_views"],
                plain(&r["label_ds"]),
                plain(&r[&room])
            )
        })
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(
        l1,
        vec![
            "20/2022-10-30/ENTIRE_HOME",
            "20/2022-11-11/PRIVATE_ROOM",
            "21/2022-10-30/ENTIRE_HOME",
            "21/2022-11-11/PRIVATE_ROOM"
        ]
    );
    // rows without a label row: the NULL key on 10-02 and both rows of 10-25
    let unlabelled: Vec<String> = all
        .iter()
        .filter(|r| r["label_ds"].is_null())
        .map(|r| format!("{}/{}", plain(&r["ds"]), r["listing_id"]))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(
        unlabelled,
        vec!["2022-10-02/NULL", "2022-10-25/2", "2022-10-25/6"]
    );
    assert!(all
        .iter()
        .filter(|r| r["label_ds"].is_null())
        .all(|r| r[&room].is_null()));

    // latest: 11-11 on labelled days, NULL-key row of 10-02 gone, 10-25 kept
    let lat = all_rows(&wh, &latest);
    assert_eq!(lat.len(), 6 + 2, "{lat:?}");
    for r in &lat {
        if r["ds"] == V::s("2022-10-25") {
            assert!(r["label_ds"].is_null());
        } else {
            assert_eq!(r["label_ds"], V::s("2022-11-11"), "{r:?}");
            assert!(!r["listing_id"].is_null());
        }
    }

    // columns: row identifier, the other feature columns, the label columns, label_ds, ds
    let (schema, _) = Context::new(&wh)
        .unwrap()
        .session()
        .query_with_schema(&format!("SELECT * FROM {labeled} LIMIT 0"), "schema")
        .unwrap();
    let cols: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(
        cols,
        vec![
            "listing_id",
            "m_views",
            "ts",
            "unit_test_listing_views_total_m_views_sum",
            room.as_str(),
            "label_ds",
            "ds"
        ]
    );
    for t in [&labeled, &latest] {
        let props = wh.properties(&data::tn(t)).unwrap();
        assert_eq!(props.get("label_table"), Some(&labels));
        assert_eq!(props.get("feature_table"), Some(&features));
    }
}

/// testCreateLatestLabelView: a label table edited by hand (a row missing from the newest
/// version of one day, the newest version of another day gone) and the labeled tables
/// refreshed from it: the latest version is chosen per day, and a row of a labelled day
/// without a label row of that version drops out of `_labeled_latest`.
#[test]
fn latest_version_is_chosen_per_day() {
    let (_dir, wh) = warehouse(&db());
    let engine = Context::new(&wh).unwrap();
    let j = join("unit_test.labeled.latest", vec![room_label()], 50, 20);
    let mut r = runner(&engine, &j);
    label(&engine, &mut r, "2022-10-30");
    label(&engine, &mut r, "2022-11-11");
    let (features, labels, labeled, latest) = (
        table(&j, ""),
        table(&j, "_labels"),
        table(&j, "_labeled"),
        table(&j, "_labeled_latest"),
    );
    let lt = data::tn(&labels);
    // 11-11 / 10-02 keeps listing 3 only; 11-11 / 10-03 is gone
    let spec = |l: &str, ds: &str| {
        vec![
            ("label_ds".to_string(), l.to_string()),
            ("ds".to_string(), ds.to_string()),
        ]
    };
    let (schema, batches) = engine
        .session()
        .query_with_schema(
            &format!(
                "SELECT listing_id, {ROOM_COL} FROM {labels} WHERE label_ds = '2022-11-11' AND ds = '2022-10-02' AND listing_id = 3"
            ),
            "hand-made label partition",
        )
        .unwrap();
    wh.write_partition(&lt, &spec("2022-11-11", "2022-10-02"), schema, &batches)
        .unwrap();
    wh.drop_partition(&lt, &spec("2022-11-11", "2022-10-03"))
        .unwrap();
    let lp = r.label_plan().unwrap();
    let engine = Context::new(&wh).unwrap();
    let rewritten = weft::label::labeled::refresh(engine.session(), lp).unwrap();
    assert_eq!(rewritten, vec![d("2022-10-02"), d("2022-10-03")]);

    let (want_all, want_latest) = expected_labeled(&wh, &features, &labels, &["listing_id"]);
    assert_eq!(table_rows(&wh, &labeled), want_all);
    assert_eq!(table_rows(&wh, &latest), want_latest);

    let all = all_rows(&wh, &labeled);
    // 10-01: 3 rows × 2 versions; 10-02: listing 3 × 2, listing 4 × 1; 10-03: listing 5 × 1
    assert_eq!(all.len(), 6 + 3 + 1, "{all:?}");
    let lat = all_rows(&wh, &latest);
    let got: Vec<String> = render(
        &lat.iter()
            .map(|r| {
                let mut m = BTreeMap::new();
                for c in ["ds", "listing_id", "label_ds"] {
                    m.insert(c.to_string(), r[c].clone());
                }
                m
            })
            .collect::<Vec<_>>(),
    );
    // 10-01 at 11-11 (three views), 10-02 listing 3 at 11-11 (listing 4 dropped), 10-03 at
    // its own latest, 10-30
    let want: Vec<String> = render(
        &[
            ("2022-10-01", 1, "2022-11-11"),
            ("2022-10-01", 1, "2022-11-11"),
            ("2022-10-01", 2, "2022-11-11"),
            ("2022-10-02", 3, "2022-11-11"),
            ("2022-10-03", 5, "2022-10-30"),
        ]
        .iter()
        .map(|(ds, id, l)| {
            BTreeMap::from([
                ("ds".to_string(), V::s(ds)),
                ("listing_id".to_string(), V::Int(*id)),
                ("label_ds".to_string(), V::s(l)),
            ])
        })
        .collect::<Vec<_>>(),
    );
    assert_eq!(got, want);
    // nothing changed since: a second refresh rewrites nothing
    assert!(weft::label::labeled::refresh(engine.session(), lp)
        .unwrap()
        .is_empty());
}

/// testFinalViewsWithAggLabel: MAX(is_active) over 5 days; runs at 10-06, then — after the
/// label events of 10-07 land — at 10-07. `_labeled_latest` has 10-02 at 10-06 and 10-03 at
/// 10-07 (its window including the new events), 10-01 unlabelled.
#[test]
fn aggregated_labels_in_the_labeled_tables() {
    let mut db = db();
    let events = db.table_mut(EVENTS);
    events.push(
        "2022-10-05",
        vec![V::Int(5), V::Int(4), V::Int(at("2022-10-05", 10))],
    );
    events.push(
        "2022-10-07",
        vec![V::Int(5), V::Int(7), V::Int(at("2022-10-07", 6))],
    );
    let late = db.table(EVENTS).parts["2022-10-07"].clone();
    let mut first = db.clone();
    first.table_mut(EVENTS).parts.remove("2022-10-07");
    let (_dir, wh) = warehouse(&first);
    let engine = Context::new(&wh).unwrap();
    let j = join("unit_test.labeled.agg", vec![max_active_label()], 5, 5);
    let (features, labels, labeled, latest) = (
        table(&j, ""),
        table(&j, "_labels"),
        table(&j, "_labeled"),
        table(&j, "_labeled_latest"),
    );
    let mut r = runner(&engine, &j);
    label(&engine, &mut r, "2022-10-06");
    let (want_all, want_latest) = expected_labeled(&wh, &features, &labels, &["listing_id"]);
    assert_eq!(table_rows(&wh, &labeled), want_all);
    assert_eq!(table_rows(&wh, &latest), want_latest);
    assert_eq!(late.len(), 3);
    data::write_partition(&wh, &db, EVENTS, "2022-10-07");
    engine.refresh().unwrap();
    let rep = label(&engine, &mut r, "2022-10-07");
    assert_eq!(rep.written, vec![(d("2022-10-07"), d("2022-10-03"))]);
    assert_eq!(rep.labeled_written, vec![d("2022-10-03")]);
    let (want_all, want_latest) = expected_labeled(&wh, &features, &labels, &["listing_id"]);
    assert_eq!(table_rows(&wh, &labeled), want_all);
    assert_eq!(table_rows(&wh, &latest), want_latest);

    let col = format!("label_{MAX_5D}");
    let lat = rows(
        &wh,
        &format!("SELECT ds, listing_id, label_ds, {col} AS v FROM {latest} ORDER BY ds, listing_id, m_views"),
    );
    let got: Vec<String> = lat
        .iter()
        .map(|r| {
            format!(
                "{} {} {} {}",
                plain(&r["ds"]),
                r["listing_id"],
                plain(&r["label_ds"]),
                r["v"]
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            "2022-10-01 1 NULL NULL",
            "2022-10-01 1 NULL NULL",
            "2022-10-01 2 NULL NULL",
            // 10-02..10-06: listing 3 has 0 and 2, listing 4 has 1
            "2022-10-02 3 2022-10-06 2",
            "2022-10-02 4 2022-10-06 1",
            // 10-03..10-07: listing 5 has 4 (10-05) and 7 (10-07, landed late)
            "2022-10-03 5 2022-10-07 7",
        ]
    );
}

/// A rewritten feature partition shows in the labeled tables: a re-landed left day backfilled
/// by the same runner (its new row has no label yet, so `_labeled_latest` leaves it out until
/// the next label run), then a new bootstrap part (values replaced in `_labeled`), then a
/// feature partition rewritten by another runner.
#[test]
fn rewritten_feature_partitions_show_in_the_labeled_tables() {
    let mut db = db();
    let (_dir, wh) = warehouse(&db);
    let engine = Context::new(&wh).unwrap();
    let j = join("unit_test.labeled.relanded", vec![room_label()], 30, 20);
    let (features, labels, labeled, latest) = (
        table(&j, ""),
        table(&j, "_labels"),
        table(&j, "_labeled"),
        table(&j, "_labeled_latest"),
    );
    let check = |what: &str| {
        let (want_all, want_latest) = expected_labeled(&wh, &features, &labels, &["listing_id"]);
        assert_eq!(table_rows(&wh, &labeled), want_all, "{what}: _labeled");
        assert_eq!(
            table_rows(&wh, &latest),
            want_latest,
            "{what}: _labeled_latest"
        );
    };
    let mut r = runner(&engine, &j);
    label(&engine, &mut r, "2022-10-30");
    check("first run");

    // 1. left day 10-02 re-landed: listing 3's views change, listing 6 appears
    let left = db.table_mut(LEFT);
    let rows2 = left.parts.get_mut("2022-10-02").unwrap();
    rows2[0][1] = V::Int(140);
    rows2.push(vec![V::Int(6), V::Int(66), V::Int(at("2022-10-02", 20))]);
    data::write_partition(&wh, &db, LEFT, "2022-10-02");
    engine.refresh().unwrap();
    backfill(&engine, &mut r, "2022-10-03");
    check("after the feature backfill");
    let day = |t: &str| {
        rows(
            &wh,
            &format!("SELECT * FROM {t} WHERE ds = '2022-10-02' ORDER BY listing_id"),
        )
    };
    let lab = day(&labeled);
    assert_eq!(lab.len(), 3, "{lab:?}");
    assert_eq!(lab[0]["m_views"], V::Int(140), "the new left value");
    assert_eq!(lab[0]["label_ds"], V::s("2022-10-30"));
    assert_eq!(lab[2]["listing_id"], V::Int(6));
    assert!(
        lab[2]["label_ds"].is_null(),
        "no label row for listing 6 yet"
    );
    let lat = day(&latest);
    assert_eq!(
        lat.iter()
            .map(|r| r["listing_id"].clone())
            .collect::<Vec<_>>(),
        vec![V::Int(3), V::Int(4)],
        "Chronon's edge: listing 6 has no label on a labelled day"
    );
    // the next label run labels listing 6 (not in the snapshot: NULL value, label_ds set)
    let rep = label(&engine, &mut r, "2022-10-30");
    assert_eq!(rep.written, vec![(d("2022-10-30"), d("2022-10-02"))]);
    check("after the label run");
    let lat = day(&latest);
    assert_eq!(lat.len(), 3);
    assert_eq!(lat[2]["listing_id"], V::Int(6));
    assert_eq!(lat[2]["label_ds"], V::s("2022-10-30"));
    assert!(lat[2][&format!("label_{ROOM_COL}")].is_null());

    // 2. a bootstrap part replaces listing 4's feature on 10-02
    let feature = "unit_test_listing_views_total_m_views_sum";
    let mut boot = Table::new(&[("listing_id", Ty::I64), (feature, Ty::I64)]);
    boot.push("2022-10-02", vec![V::Int(4), V::Int(1000)]);
    db.add("data.views_boot", boot);
    data::write_partition(&wh, &db, "data.views_boot", "2022-10-02");
    engine.refresh().unwrap();
    let mut jb = j.clone();
    jb["bootstrapParts"] = json!([{
        "table": "data.views_boot",
        "query": {"selects": {"listing_id": "listing_id", feature: feature}, "setups": []},
        "keyColumns": ["listing_id"],
    }]);
    r.reconfigure(&engine, &conf::parse(&jb)).unwrap();
    backfill(&engine, &mut r, "2022-10-03");
    check("after the bootstrap");
    let lab = day(&labeled);
    assert_eq!(lab[1]["listing_id"], V::Int(4));
    assert_eq!(lab[1][feature], V::Int(1000));
    let lat = day(&latest);
    assert_eq!(lat[1][feature], V::Int(1000));

    // 3. left 10-03 re-landed, its feature partition dropped and recomputed by another
    // runner: the labeled tables follow (that runner refreshes them too), and this runner's
    // next label run leaves them consistent
    let left = db.table_mut(LEFT);
    left.parts.get_mut("2022-10-03").unwrap()[0][1] = V::Int(5);
    data::write_partition(&wh, &db, LEFT, "2022-10-03");
    wh.drop_partition(
        &data::tn(&features),
        &[("ds".to_string(), "2022-10-03".to_string())],
    )
    .unwrap();
    engine.refresh().unwrap();
    let mut other = JoinRunner::new(&conf::parse(&jb)).unwrap();
    backfill(&engine, &mut other, "2022-10-03");
    check("after another runner's backfill");
    let lab = rows(
        &wh,
        &format!("SELECT m_views, label_ds FROM {labeled} WHERE ds = '2022-10-03'"),
    );
    assert_eq!(lab.len(), 1);
    assert_eq!(lab[0]["m_views"], V::Int(5));
    assert_eq!(lab[0]["label_ds"], V::s("2022-10-30"));
    label(&engine, &mut r, "2022-10-30");
    check("at the end");
}

// ------------------------------------------------------------------------------------------
// DuckDB oracle
// ------------------------------------------------------------------------------------------

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs tests/oracle/labeled_tables.py on joins `(config, row identifier)`; returns
/// (success, output).
fn oracle(wh: &Warehouse, joins: &[(&J, &[&str])]) -> (bool, String) {
    let probe = Command::new("python3")
        .args(["-c", "import duckdb"])
        .status()
        .expect("python3 is needed for the DuckDB oracle");
    assert!(
        probe.success(),
        "the DuckDB oracle needs `pip install duckdb` (bash .ci/run installs it)"
    );
    let mut cmd = Command::new("python3");
    cmd.arg(repo().join("tests/oracle/labeled_tables.py"))
        .args(["--warehouse", wh.root().to_str().unwrap()]);
    for (j, ids) in joins {
        cmd.args(["--join", &format!("{}:{}", table(j, ""), ids.join(","))]);
    }
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// `_labeled` and `_labeled_latest` recomputed by DuckDB SQL from the feature and label
/// tables' Parquet files, on random data: several overlapping label runs (so days have
/// different latest versions), a join with `rowIds`, NULL keys, days outside every run, and a
/// re-landed left day whose new rows have no labels yet (the feature backfill ran, the label
/// run did not). Then a broken `_labeled_latest` is caught.
#[test]
fn duckdb_recomputes_the_labeled_tables() {
    let mut db = random_db(99, "2022-09-01", 16, 8);
    // a few NULL listings
    for ds in ["2022-09-05", "2022-09-12"] {
        db.table_mut(LEFT).push(
            ds,
            vec![
                V::Null,
                V::Int(3),
                V::Int(data::ds(ds).start_millis() + 1000),
            ],
        );
    }
    let (_dir, wh) = warehouse(&db);
    let engine = Context::new(&wh).unwrap();
    let plain = join(
        "unit_test.labeled.oracle",
        vec![room_label(), reservation_label()],
        8,
        3,
    );
    let mut with_ids = join("unit_test.labeled.oracle_ids", vec![room_label()], 5, 2);
    with_ids["rowIds"] = json!(["listing_id", "ts"]);
    let joins: [(&J, &[&str]); 2] = [
        (&plain, &["listing_id"]),
        (&with_ids, &["listing_id", "ts"]),
    ];
    let mut runners = Vec::new();
    for (j, ids) in joins {
        let mut r = JoinRunner::new(&conf::parse(j)).unwrap();
        backfill(&engine, &mut r, "2022-09-16");
        // 8/3: 09-01..09-06, 09-04..09-09, 09-05..09-10, 09-08..09-13; 09-14..16 unlabelled
        for l in ["2022-09-08", "2022-09-11", "2022-09-12", "2022-09-15"] {
            label(&engine, &mut r, l);
        }
        let (want_all, want_latest) =
            expected_labeled(&wh, &table(j, ""), &table(j, "_labels"), ids);
        assert_eq!(table_rows(&wh, &table(j, "_labeled")), want_all);
        assert_eq!(table_rows(&wh, &table(j, "_labeled_latest")), want_latest);
        // the data exercise every case: 4 versions and unlabelled rows, days whose latest
        // version differs, rows dropped from the latest table
        let all = all_rows(&wh, &table(j, "_labeled"));
        let versions: std::collections::BTreeSet<String> =
            all.iter().map(|r| plain_str(&r["label_ds"])).collect();
        assert_eq!(versions.len(), 5, "4 versions and NULL: {versions:?}");
        let lat = all_rows(&wh, &table(j, "_labeled_latest"));
        let latest_versions: std::collections::BTreeSet<String> =
            lat.iter().map(|r| plain_str(&r["label_ds"])).collect();
        assert!(latest_versions.len() >= 4, "{latest_versions:?}");
        assert!(lat.len() < all.len());
        runners.push(r);
    }
    let (ok, text) = oracle(&wh, &joins);
    assert!(ok, "oracle disagrees:\n{text}");
    assert_eq!(text.matches("rows match").count(), 2, "{text}");

    // re-land a labelled left day with new rows; the features follow, the labels do not yet
    let left = db.table_mut(LEFT);
    let ds = "2022-09-06";
    let base = data::ds(ds).start_millis();
    left.push(ds, vec![V::Int(1), V::Int(7), V::Int(base + 77_000)]);
    left.push(ds, vec![V::Int(11), V::Int(8), V::Int(base + 78_000)]);
    data::write_partition(&wh, &db, LEFT, ds);
    engine.refresh().unwrap();
    for ((j, _), r) in joins.iter().zip(runners.iter_mut()) {
        backfill(&engine, r, "2022-09-16");
        let lab = rows(
            &wh,
            &format!(
                "SELECT * FROM {} WHERE ds = '{ds}' AND listing_id = 11",
                table(j, "_labeled")
            ),
        );
        assert_eq!(lab.len(), 1);
        assert!(lab[0]["label_ds"].is_null());
    }
    let (ok, text) = oracle(&wh, &joins);
    assert!(ok, "oracle disagrees after the re-landing:\n{text}");

    // a broken _labeled_latest: a row dropped from one partition
    let t = data::tn(&table(&plain, "_labeled_latest"));
    let day = wh.partitions(&t).unwrap()[5];
    let batches = wh.read_partition(&t, day).unwrap();
    let b = &batches[0];
    assert!(b.num_rows() > 1);
    let cut = b.slice(1, b.num_rows() - 1);
    wh.write_partition(
        &t,
        &[("ds".to_string(), day.to_string())],
        cut.schema(),
        &[cut],
    )
    .unwrap();
    let (ok, text) = oracle(&wh, &joins[..1]);
    assert!(!ok, "the oracle missed a dropped row:\n{text}");
    assert!(text.contains("_labeled_latest: "), "{text}");
}

fn plain_str(v: &V) -> String {
    labelfix::plain(v)
}
