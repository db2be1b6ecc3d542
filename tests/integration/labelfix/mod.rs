//! Fixtures shared by the label tests (after the shapes of Chronon's label test data, with
//! our own values): a left `data.listing_views(listing_id, m_views, ts)` on 2022-10-01..03,
//! entity label snapshots `data.listing_attributes_room(listing_id, dim_room_type)` and
//! `data.listing_attributes_reservation(listing_id, dim_reservations)` on 2022-10-30 and
//! 2022-11-11, and label events `data.listing_events(listing_id, is_active, ts)`. Helpers
//! build label joins, run them and read tables back through SQL.

#![allow(dead_code)]

use std::collections::BTreeMap;

use serde_json::{json, Value as J};
use weft::engine::Context;
use weft::engine::{JoinOptions, JoinRunner};
use weft::label::LabelReport;
use weft::warehouse::Warehouse;

use crate::reference::conf::{self, W};
use crate::reference::data;
use crate::reference::{ds_shift, ds_start, Db, Op, Table, Ty, DAY, V};

pub const LEFT: &str = "data.listing_views";
pub const ROOM: &str = "data.listing_attributes_room";
pub const RESERVATION: &str = "data.listing_attributes_reservation";
pub const EVENTS: &str = "data.listing_events";
pub const ROOM_COL: &str = "unit_test_listing_attributes_room_dim_room_type";
pub const RESERVATION_COL: &str = "unit_test_listing_attributes_reservation_dim_reservations";
pub const MAX_5D: &str = "unit_test_listing_events_is_active_max_5d";

/// Epoch millis of `hh:00` on `ds`.
pub fn at(ds: &str, hour: i64) -> i64 {
    ds_start(ds) + hour * DAY / 24
}

/// The left: 6 views on 2022-10-01..03, listing 1 twice on 10-01.
pub fn left_table() -> Table {
    let mut t = Table::new(&[
        ("listing_id", Ty::I64),
        ("m_views", Ty::I64),
        ("ts", Ty::I64),
    ]);
    for (ds, id, views, h) in [
        ("2022-10-01", 1, 20, 3),
        ("2022-10-01", 1, 21, 9),
        ("2022-10-01", 2, 35, 5),
        ("2022-10-02", 3, 14, 7),
        ("2022-10-02", 4, 8, 11),
        ("2022-10-03", 5, 99, 13),
    ] {
        t.push(ds, vec![V::Int(id), V::Int(views), V::Int(at(ds, h))]);
    }
    t
}

/// Room types: listings 1–5 on 2022-10-30, listings 1–3 (two changed) on 2022-11-11.
pub fn room_table() -> Table {
    let mut t = Table::new(&[("listing_id", Ty::I64), ("dim_room_type", Ty::Str)]);
    for (id, v) in [
        (1, "ENTIRE_HOME"),
        (2, "PRIVATE_ROOM"),
        (3, "SHARED_ROOM"),
        (4, "ENTIRE_HOME"),
        (5, "HOTEL_ROOM"),
    ] {
        t.push("2022-10-30", vec![V::Int(id), V::s(v)]);
    }
    for (id, v) in [(1, "PRIVATE_ROOM"), (2, "PRIVATE_ROOM"), (3, "ENTIRE_HOME")] {
        t.push("2022-11-11", vec![V::Int(id), V::s(v)]);
    }
    t
}

/// Reservation counts on the same days.
pub fn reservation_table() -> Table {
    let mut t = Table::new(&[("listing_id", Ty::I64), ("dim_reservations", Ty::I64)]);
    for id in 1..=5 {
        t.push("2022-10-30", vec![V::Int(id), V::Int(id * 3)]);
    }
    for id in 1..=3 {
        t.push("2022-11-11", vec![V::Int(id), V::Int(id * 3 + 1)]);
    }
    t
}

/// Label events on 10-01, 10-02, 10-06 and 10-07.
pub fn events_table() -> Table {
    let mut t = Table::new(&[
        ("listing_id", Ty::I64),
        ("is_active", Ty::I64),
        ("ts", Ty::I64),
    ]);
    for (ds, id, v, h) in [
        ("2022-10-01", 1, 0, 4),
        ("2022-10-01", 2, 1, 6),
        ("2022-10-02", 1, 1, 8),
        ("2022-10-02", 3, 0, 10),
        ("2022-10-06", 3, 2, 12),
        ("2022-10-06", 4, 1, 1),
        ("2022-10-07", 1, 5, 2),
        ("2022-10-07", 3, 3, 23),
    ] {
        t.push(ds, vec![V::Int(id), V::Int(v), V::Int(at(ds, h))]);
    }
    t
}

/// Every table of the fixture.
pub fn db() -> Db {
    let mut db = Db::default();
    db.add(LEFT, left_table());
    db.add(ROOM, room_table());
    db.add(RESERVATION, reservation_table());
    db.add(EVENTS, events_table());
    db
}

/// The feature part: total views per listing (so the join has a feature table).
pub fn views_part() -> J {
    conf::part(
        conf::group_by(
            "unit_test.listing_views_total",
            vec![conf::events_source(
                LEFT,
                &["listing_id", "m_views"],
                Some("ts"),
            )],
            &["listing_id"],
            Some(conf::aggs_for("m_views", Op::Sum, &[W::Unbounded], &[])),
            None,
        ),
        &[],
        None,
    )
}

/// An entity label GroupBy (no aggregations) over `table` with value `column`.
pub fn entity_label(name: &str, table: &str, column: &str) -> J {
    conf::part(
        conf::group_by(
            name,
            vec![conf::entities_source(
                table,
                None,
                &["listing_id", column],
                None,
            )],
            &["listing_id"],
            None,
            None,
        ),
        &[],
        None,
    )
}

pub fn room_label() -> J {
    entity_label("unit_test.listing_attributes_room", ROOM, "dim_room_type")
}

pub fn reservation_label() -> J {
    entity_label(
        "unit_test.listing_attributes_reservation",
        RESERVATION,
        "dim_reservations",
    )
}

/// The aggregated label: MAX(is_active) over 5 days.
pub fn max_active_label() -> J {
    conf::part(
        conf::group_by(
            "unit_test.listing_events",
            vec![conf::events_source(
                EVENTS,
                &["listing_id", "is_active"],
                Some("ts"),
            )],
            &["listing_id"],
            Some(vec![conf::agg(
                "is_active",
                Op::Max,
                &[W::Days(5)],
                &[],
                &[],
            )]),
            None,
        ),
        &[],
        None,
    )
}

/// A label join of the views with `labels` and offsets.
pub fn join(name: &str, labels: Vec<J>, start: i64, end: i64) -> J {
    let mut j = conf::join(
        name,
        conf::events_left(LEFT, &["listing_id", "m_views"]),
        vec![views_part()],
    );
    j["labelPart"] = json!({
        "labels": labels,
        "leftStartOffset": start,
        "leftEndOffset": end,
        "metaData": {"offlineSchedule": "@weekly"},
    });
    j
}

/// Output table of a join (`test.<clean name>`), with a suffix.
pub fn table(j: &J, suffix: &str) -> String {
    format!(
        "test.{}{suffix}",
        j["metaData"]["name"].as_str().unwrap().replace('.', "_")
    )
}

/// Runs the join's feature backfill through `end`.
pub fn backfill(engine: &Context, runner: &mut JoinRunner, end: &str) {
    runner
        .run(engine, &JoinOptions::through(data::ds(end)), &|_, _, _| {})
        .unwrap_or_else(|e| panic!("feature backfill: {e}"));
}

/// A runner for the join, its features backfilled through 2022-10-03.
pub fn runner(engine: &Context, j: &J) -> JoinRunner {
    let mut r = JoinRunner::new(&conf::parse(j)).unwrap_or_else(|e| panic!("plan: {e}"));
    backfill(engine, &mut r, "2022-10-03");
    r
}

/// One label run.
pub fn label(engine: &Context, runner: &mut JoinRunner, label_ds: &str) -> LabelReport {
    runner
        .label(engine, data::ds(label_ds))
        .unwrap_or_else(|e| panic!("label run {label_ds}: {e}"))
}

/// Rows of a SQL query, each as column → value.
pub fn rows(wh: &Warehouse, sql: &str) -> Vec<BTreeMap<String, V>> {
    data::sql_rows(wh, sql)
}

/// Every row of a table, sorted by its rendering (columns in name order).
pub fn table_rows(wh: &Warehouse, t: &str) -> Vec<String> {
    let mut out: Vec<String> = rows(wh, &format!("SELECT * FROM {t}"))
        .into_iter()
        .map(|r| {
            r.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .collect();
    out.sort();
    out
}

// ------------------------------------------------------------------------------------------
// Label evolution: one snapshot table with room and host types
// ------------------------------------------------------------------------------------------

/// Room and host types per listing: listings 1–5 on 2022-10-30 and on 2022-11-01 (listing 3
/// became a new host, listing 5 changed room type).
pub const HOST: &str = "data.listing_attributes_host";
pub const HOST_COL: &str = "unit_test_listing_attributes_room_dim_host_type";

pub fn room_host_table() -> Table {
    let mut t = Table::new(&[
        ("listing_id", Ty::I64),
        ("dim_room_type", Ty::Str),
        ("dim_host_type", Ty::Str),
    ]);
    for (ds, id, room, host) in [
        ("2022-10-30", 1, "ENTIRE_HOME", "SUPERHOST"),
        ("2022-10-30", 2, "PRIVATE_ROOM", "REGULAR"),
        ("2022-10-30", 3, "SHARED_ROOM", "REGULAR"),
        ("2022-10-30", 4, "ENTIRE_HOME", "SUPERHOST"),
        ("2022-10-30", 5, "HOTEL_ROOM", "REGULAR"),
        ("2022-11-01", 1, "ENTIRE_HOME", "SUPERHOST"),
        ("2022-11-01", 2, "PRIVATE_ROOM", "SUPERHOST"),
        ("2022-11-01", 3, "SHARED_ROOM", "NEW_HOST"),
        ("2022-11-01", 4, "ENTIRE_HOME", "REGULAR"),
        ("2022-11-01", 5, "ENTIRE_HOME", "REGULAR"),
    ] {
        t.push(ds, vec![V::Int(id), V::s(room), V::s(host)]);
    }
    t
}

/// The room label GroupBy (same name as [`room_label`], so the same label column) reading
/// [`HOST`]; with `host`, V2 also selects `dim_host_type`.
pub fn room_host_label(host: bool) -> J {
    let cols: &[&str] = if host {
        &["listing_id", "dim_room_type", "dim_host_type"]
    } else {
        &["listing_id", "dim_room_type"]
    };
    conf::part(
        conf::group_by(
            "unit_test.listing_attributes_room",
            vec![conf::entities_source(HOST, None, cols, None)],
            &["listing_id"],
            None,
            None,
        ),
        &[],
        None,
    )
}

// ------------------------------------------------------------------------------------------
// Partition columns other than `ds`
// ------------------------------------------------------------------------------------------

/// Sets `partitionColumn` on every query of a join: the left, the feature parts' sources and
/// the label parts' sources.
pub fn partitioned_by(j: &mut J, col: &str) {
    fn source(s: &mut J, col: &str) {
        for kind in ["events", "entities"] {
            if let Some(q) = s.get_mut(kind).and_then(|x| x.get_mut("query")) {
                q["partitionColumn"] = J::String(col.into());
            }
        }
    }
    source(&mut j["left"], col);
    let mut parts: Vec<&mut J> = Vec::new();
    if let Some(a) = j["joinParts"].as_array_mut() {
        parts.extend(a.iter_mut());
    }
    for p in parts {
        for s in p["groupBy"]["sources"].as_array_mut().unwrap() {
            source(s, col);
        }
    }
    if let Some(a) = j["labelPart"]["labels"].as_array_mut() {
        for p in a {
            for s in p["groupBy"]["sources"].as_array_mut().unwrap() {
                source(s, col);
            }
        }
    }
}

/// A fresh warehouse holding `db` with every table partitioned by `col` instead of `ds`.
pub fn warehouse_by(db: &Db, col: &str) -> (tempfile::TempDir, Warehouse) {
    let dir = tempfile::tempdir().expect("tempdir");
    let wh = Warehouse::open(dir.path()).expect("warehouse");
    for (name, t) in &db.tables {
        for (ds, rows) in &t.parts {
            let b = data::batch(t, rows);
            let batches = if rows.is_empty() { vec![] } else { vec![b] };
            wh.write_partition(
                &data::tn(name),
                &[(col.to_string(), ds.clone())],
                data::schema(t),
                &batches,
            )
            .expect("writing test partition");
        }
    }
    (dir, wh)
}

// ------------------------------------------------------------------------------------------
// Reading label tables back, and a plain reference for label values
// ------------------------------------------------------------------------------------------

/// The label table of a join: `cols` (a select list) ordered by label_ds, ds, listing_id.
pub fn label_rows(wh: &Warehouse, j: &J, cols: &str) -> Vec<BTreeMap<String, V>> {
    rows(
        wh,
        &format!(
            "SELECT {cols} FROM {} ORDER BY label_ds, ds, listing_id",
            table(j, "_labels")
        ),
    )
}

/// Column names of a table's data files (partition columns excluded), sorted.
pub fn columns(wh: &Warehouse, t: &str) -> Vec<String> {
    let s = wh
        .table_schema_under(&data::tn(t), &["label_ds".into(), "ds".into()])
        .unwrap_or_else(|e| panic!("schema of {t}: {e}"));
    let mut c: Vec<String> = s.fields().iter().map(|f| f.name().clone()).collect();
    c.sort();
    c
}

/// The value of `col` for listing `id` in partition `ds` of a snapshot table (NULL when the
/// listing or the partition is missing).
pub fn snapshot_value(t: &Table, ds: &str, id: i64, col: &str) -> V {
    let (ki, ci) = (t.col("listing_id").unwrap(), t.col(col).unwrap());
    t.parts
        .get(ds)
        .and_then(|rows| rows.iter().find(|r| r[ki] == V::Int(id)))
        .map(|r| r[ci].clone())
        .unwrap_or(V::Null)
}

/// MAX of the non-NULL `col` of `id`'s events with `from ≤ ts < to` (NULL when none).
pub fn max_between(t: &Table, id: i64, col: &str, from: i64, to: i64) -> V {
    let (ki, ci, ti) = (
        t.col("listing_id").unwrap(),
        t.col(col).unwrap(),
        t.col("ts").unwrap(),
    );
    t.parts
        .values()
        .flatten()
        .filter(|r| r[ki] == V::Int(id))
        .filter(|r| matches!(r[ti], V::Int(ts) if ts >= from && ts < to))
        .filter_map(|r| r[ci].as_i64())
        .max()
        .map(V::Int)
        .unwrap_or(V::Null)
}

/// The distinct row identifiers `(ds, listing_id)` of the left days `[from, to]` (Chronon
/// drops duplicates on the row identifier).
pub fn left_ids(left: &Table, from: &str, to: &str) -> Vec<(String, V)> {
    let ki = left.col("listing_id").unwrap();
    let mut out: Vec<(String, V)> = Vec::new();
    for (ds, rows) in left.parts.range(from.to_string()..=to.to_string()) {
        for r in rows {
            let id = (ds.clone(), r[ki].clone());
            if !out.contains(&id) {
                out.push(id);
            }
        }
    }
    out.sort_by_key(|a| (a.0.clone(), a.1.identity()));
    out
}

/// The left range of a `label_ds` run: `[label_ds − (start − 1), label_ds − (end − 1)]`.
pub fn left_range(label_ds: &str, start: i64, end: i64) -> (String, String) {
    (
        ds_shift(label_ds, -(start - 1)),
        ds_shift(label_ds, -(end - 1)),
    )
}

// ------------------------------------------------------------------------------------------
// Randomized data
// ------------------------------------------------------------------------------------------

/// A small deterministic generator (SplitMix64).
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `[0, n)`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

pub const ROOM_TYPES: [&str; 4] = ["ENTIRE_HOME", "PRIVATE_ROOM", "SHARED_ROOM", "HOTEL_ROOM"];

/// Random tables with the fixture's shapes over `days` days from `first`: left views (0–12
/// rows a day, a few listings viewed twice a day, one day surely empty), daily room
/// and reservation snapshots (each listing present with 75% chance, one day without a
/// snapshot) and label events (some NULL `is_active`), `listings` listings.
pub fn random_db(seed: u64, first: &str, days: i64, listings: u64) -> Db {
    let mut rng = Rng(seed);
    let mut left = Table::new(&[
        ("listing_id", Ty::I64),
        ("m_views", Ty::I64),
        ("ts", Ty::I64),
    ]);
    let mut room = Table::new(&[("listing_id", Ty::I64), ("dim_room_type", Ty::Str)]);
    let mut res = Table::new(&[("listing_id", Ty::I64), ("dim_reservations", Ty::I64)]);
    let mut events = Table::new(&[
        ("listing_id", Ty::I64),
        ("is_active", Ty::I64),
        ("ts", Ty::I64),
    ]);
    let no_left = rng.below(days as u64) as i64;
    let no_snapshot = rng.below(days as u64) as i64;
    for d in 0..days {
        let ds = ds_shift(first, d);
        left.touch(&ds);
        if d != no_left {
            for _ in 0..rng.below(13) {
                let id = 1 + rng.below(listings) as i64;
                let ts = ds_start(&ds) + rng.below(DAY as u64) as i64;
                left.push(
                    &ds,
                    vec![V::Int(id), V::Int(rng.below(100) as i64), V::Int(ts)],
                );
            }
        }
        if d != no_snapshot {
            room.touch(&ds);
            res.touch(&ds);
            for id in 1..=listings as i64 {
                if rng.chance(75) {
                    let r = ROOM_TYPES[rng.below(4) as usize];
                    room.push(&ds, vec![V::Int(id), V::s(r)]);
                }
                if rng.chance(75) {
                    res.push(&ds, vec![V::Int(id), V::Int(rng.below(30) as i64)]);
                }
            }
        }
        events.touch(&ds);
        for _ in 0..rng.below(8) {
            let id = 1 + rng.below(listings) as i64;
            let v = if rng.chance(10) {
                V::Null
            } else {
                V::Int(rng.below(10) as i64)
            };
            let ts = ds_start(&ds) + rng.below(DAY as u64) as i64;
            events.push(&ds, vec![V::Int(id), v, V::Int(ts)]);
        }
    }
    let mut db = Db::default();
    db.add(LEFT, left);
    db.add(ROOM, room);
    db.add(RESERVATION, res);
    db.add(EVENTS, events);
    db
}

/// The label table a set of `label_ds` runs of entity labels `(table, column, label column)`
/// should hold, as rendered rows `label_ds|ds|listing_id|value…` (the plain reference of
/// §7.4: every distinct row identifier of the left range, the snapshot `label_ds` value).
pub fn expected_entity_labels(
    db: &Db,
    labels: &[(&str, &str)],
    runs: &[&str],
    start: i64,
    end: i64,
) -> Vec<String> {
    let mut out = Vec::new();
    for l in runs {
        let (from, to) = left_range(l, start, end);
        for (ds, id) in left_ids(db.table(LEFT), &from, &to) {
            let mut s = format!("{l}|{ds}|{id}");
            for (t, c) in labels {
                let v = match id {
                    V::Int(i) => snapshot_value(db.table(t), l, i, c),
                    _ => V::Null,
                };
                s.push_str(&format!("|{v}"));
            }
            out.push(s);
        }
    }
    out.sort();
    out
}

/// The label table of `MAX(is_active)` over `w` days with offsets `w/w` for `runs` (§7.5):
/// the one left day `label_ds − (w − 1)`, each listing's MAX over events with
/// `ts ∈ [(label_ds + 1 − w) 00:00, (label_ds + 1) 00:00)`.
pub fn expected_max_labels(db: &Db, w: i64, runs: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for l in runs {
        let day = ds_shift(l, -(w - 1));
        let (from, to) = (ds_start(&day), ds_start(l) + DAY);
        for (ds, id) in left_ids(db.table(LEFT), &day, &day) {
            let v = match id {
                V::Int(i) => max_between(db.table(EVENTS), i, "is_active", from, to),
                _ => V::Null,
            };
            out.push(format!("{l}|{ds}|{id}|{v}"));
        }
    }
    out.sort();
    out
}

/// The label table rendered as [`expected_entity_labels`] does, for label columns `cols`.
pub fn rendered_labels(wh: &Warehouse, j: &J, cols: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = label_rows(wh, j, "*")
        .into_iter()
        .map(|r| {
            let mut s = format!(
                "{}|{}|{}",
                plain(&r["label_ds"]),
                plain(&r["ds"]),
                r["listing_id"]
            );
            for c in cols {
                s.push_str(&format!("|{}", r[*c]));
            }
            s
        })
        .collect();
    out.sort();
    out
}

/// A string value without quotes (partition values), anything else as displayed.
pub fn plain(v: &V) -> String {
    match v {
        V::Str(s) => s.clone(),
        other => other.to_string(),
    }
}

// ------------------------------------------------------------------------------------------
// A plain reference for the labeled tables (§7.7)
// ------------------------------------------------------------------------------------------

/// Renders rows as [`table_rows`] does.
pub fn render(rows: &[BTreeMap<String, V>]) -> Vec<String> {
    let mut out: Vec<String> = rows
        .iter()
        .map(|r| {
            r.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .collect();
    out.sort();
    out
}

/// The label partitions `(label_ds, ds)` of a label table, from its folders.
pub fn label_partitions(wh: &Warehouse, labels: &str) -> Vec<(String, String)> {
    let t = data::tn(labels);
    let dir = wh.root().join(&t.namespace).join(&t.name);
    let mut out = Vec::new();
    let Ok(outer) = std::fs::read_dir(&dir) else {
        return out;
    };
    for o in outer.flatten() {
        let name = o.file_name().to_string_lossy().to_string();
        let Some(l) = name.strip_prefix("label_ds=") else {
            continue;
        };
        for i in std::fs::read_dir(o.path()).unwrap().flatten() {
            let name = i.file_name().to_string_lossy().to_string();
            if let Some(ds) = name.strip_prefix("ds=") {
                out.push((l.to_string(), ds.to_string()));
            }
        }
    }
    out.sort();
    out
}

/// `_labeled` and `_labeled_latest` recomputed from the feature table and the label table as
/// §7.7 describes them: every feature row left-outer-joined with the label rows of the same
/// row identifier (`ids`, then `ds`; NULL never matches), label columns prefixed `label_`
/// (those already starting with `label` keep their name); then, per `ds` with label
/// partitions, only the rows whose `label_ds` is that day's latest (rows with a NULL label_ds
/// drop out), and every row of a day without label partitions.
pub fn expected_labeled(
    wh: &Warehouse,
    features: &str,
    labels: &str,
    ids: &[&str],
) -> (Vec<String>, Vec<String>) {
    let feats = rows(wh, &format!("SELECT * FROM {features}"));
    let labs = if label_partitions(wh, labels).is_empty() {
        vec![]
    } else {
        rows(wh, &format!("SELECT * FROM {labels}"))
    };
    let label_cols: Vec<String> = columns(wh, labels)
        .into_iter()
        .filter(|c| !ids.contains(&c.as_str()))
        .collect();
    let renamed = |c: &str| {
        if c.starts_with("label") {
            c.to_string()
        } else {
            format!("label_{c}")
        }
    };
    let mut all = Vec::new();
    for f in &feats {
        let matches: Vec<&BTreeMap<String, V>> = labs
            .iter()
            .filter(|l| {
                l["ds"] == f["ds"]
                    && ids
                        .iter()
                        .all(|c| !f[*c].is_null() && !l[*c].is_null() && f[*c] == l[*c])
            })
            .collect();
        if matches.is_empty() {
            let mut r = f.clone();
            for c in &label_cols {
                r.insert(renamed(c), V::Null);
            }
            r.insert("label_ds".into(), V::Null);
            all.push(r);
        }
        for l in matches {
            let mut r = f.clone();
            for c in &label_cols {
                r.insert(renamed(c), l.get(c).cloned().unwrap_or(V::Null));
            }
            r.insert("label_ds".into(), l["label_ds"].clone());
            all.push(r);
        }
    }
    let mut latest: BTreeMap<String, String> = BTreeMap::new();
    for (l, ds) in label_partitions(wh, labels) {
        let e = latest.entry(ds).or_default();
        if l > *e {
            *e = l;
        }
    }
    let kept: Vec<BTreeMap<String, V>> = all
        .iter()
        .filter(|r| match latest.get(&plain(&r["ds"])) {
            Some(l) => r["label_ds"] == V::s(l),
            None => true,
        })
        .cloned()
        .collect();
    (render(&all), render(&kept))
}
