//! Fixtures shared by the label tests (after the shapes of Chronon's label test data, with
//! our own values): a left `data.listing_views(listing_id, m_views, ts)` on 2022-10-01..03,
//! entity label snapshots `data.listing_attributes_room(listing_id, dim_room_type)` and
//! `data.listing_attributes_reservation(listing_id, dim_reservations)` on 2022-10-30 and
//! 2022-11-11, and label events `data.listing_events(listing_id, is_active, ts)`. Helpers
//! build label joins, run them and read tables back through SQL.

#![allow(dead_code)]

use std::collections::BTreeMap;

use serde_json::{json, Value as J};
use weft::join::{JoinOptions, JoinRunner};
use weft::label::LabelReport;
use weft::sql::Engine;
use weft::warehouse::Warehouse;

use crate::reference::conf::{self, W};
use crate::reference::data::{self, cell};
use crate::reference::{ds_start, Db, Op, Table, Ty, DAY, V};

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
            vec![conf::events_source(LEFT, &["listing_id", "m_views"], Some("ts"))],
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
            vec![conf::entities_source(table, None, &["listing_id", column], None)],
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
            vec![conf::events_source(EVENTS, &["listing_id", "is_active"], Some("ts"))],
            &["listing_id"],
            Some(vec![conf::agg("is_active", Op::Max, &[W::Days(5)], &[], &[])]),
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
pub fn backfill(engine: &Engine, runner: &mut JoinRunner, end: &str) {
    runner
        .run(engine, &JoinOptions::through(data::ds(end)), &|_, _, _| {})
        .unwrap_or_else(|e| panic!("feature backfill: {e}"));
}

/// A runner for the join, its features backfilled through 2022-10-03.
pub fn runner(engine: &Engine, j: &J) -> JoinRunner {
    let mut r = JoinRunner::new(&conf::parse(j)).unwrap_or_else(|e| panic!("plan: {e}"));
    backfill(engine, &mut r, "2022-10-03");
    r
}

/// One label run.
pub fn label(engine: &Engine, runner: &mut JoinRunner, label_ds: &str) -> LabelReport {
    runner
        .label(engine, data::ds(label_ds), 1)
        .unwrap_or_else(|e| panic!("label run {label_ds}: {e}"))
}

/// Rows of a SQL query, each as column → value.
pub fn rows(wh: &Warehouse, sql: &str) -> Vec<BTreeMap<String, V>> {
    let engine = Engine::new(wh).expect("engine");
    let (schema, batches) = engine
        .query_with_schema(sql, "test query")
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let mut out = Vec::new();
    for b in &batches {
        for i in 0..b.num_rows() {
            out.push(
                schema
                    .fields()
                    .iter()
                    .zip(b.columns())
                    .map(|(f, c)| (f.name().clone(), cell(c.as_ref(), i)))
                    .collect(),
            );
        }
    }
    out
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
