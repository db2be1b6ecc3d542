//! Chronon's join behaviours (chronon-semantics §10.4: JoinTest, JoinBasicTest) recreated on
//! small generated data and checked against the reference of tests/reference: a 2-source
//! entity GroupBy with a swapped key mapping and refilled holes, SNAPSHOT and TEMPORAL event
//! joins, duplicated left rows, `endPartition`, entity lefts, GroupBys without aggregations,
//! `historicalBackfill = false`, skew keys, prefixes and several parts in one join.

use crate::reference;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reference::conf::{self, W};
use reference::data::{self, read_table};
use reference::harness::{
    self, assert_ok, backfill, check_rich, compare, options, outputs_equal, warehouse,
};
use reference::{
    ds_of, ds_shift, ds_start, expected, output_table, Db, Op, Run, Table, Ty, DAY, V,
};
use serde_json::{json, Value as J};

const BASE: &str = "2026-01-01";

fn day(i: i64) -> String {
    ds_shift(BASE, i)
}
fn t0(i: i64) -> i64 {
    ds_start(BASE) + i * DAY
}

fn pick<'a>(rng: &mut StdRng, xs: &[&'a str]) -> &'a str {
    xs[rng.random_range(0..xs.len())]
}

fn opt_str(rng: &mut StdRng, xs: &[&str], p_null: f64) -> V {
    if rng.random_bool(p_null) {
        V::Null
    } else {
        V::s(pick(rng, xs))
    }
}

fn opt_int(rng: &mut StdRng, lo: i64, hi: i64, p_null: f64) -> V {
    if rng.random_bool(p_null) {
        V::Null
    } else {
        V::Int(rng.random_range(lo..hi))
    }
}

/// Event-left rows `(row_id, cols…, ts)` on days `days`, `n` per day, ts within the day.
fn event_left(
    rng: &mut StdRng,
    cols: &[(&str, &[&str])],
    days: std::ops::RangeInclusive<i64>,
    n: usize,
) -> Table {
    let mut spec: Vec<(&str, Ty)> = vec![("row_id", Ty::I64)];
    spec.extend(cols.iter().map(|(c, _)| (*c, Ty::Str)));
    spec.push(("ts", Ty::I64));
    let mut t = Table::new(&spec);
    let mut id = 0;
    for d in days {
        for _ in 0..n {
            let mut row = vec![V::Int(id)];
            id += 1;
            for (_, vocab) in cols {
                row.push(opt_str(rng, vocab, 0.05));
            }
            let ts = if rng.random_bool(0.1) {
                t0(d)
            } else {
                t0(d) + rng.random_range(0..DAY)
            };
            row.push(V::Int(ts));
            t.push(&day(d), row);
        }
    }
    t
}

fn run_to(d: i64) -> Run {
    Run::through(&day(d))
}

// ------------------------------------------------------------------------------------------
// testEventsEntitiesSnapshot
// ------------------------------------------------------------------------------------------

const NAMES: &[&str] = &["a", "b", "c", "d"];

/// Entity snapshots whose rows carry `(user, user_name, ts, <amount col>)`; each day's snapshot
/// holds rows updated over the previous 40 days.
fn txn_snapshots(rng: &mut StdRng, amount: &str, days: std::ops::RangeInclusive<i64>) -> Table {
    let mut t = Table::new(&[
        ("user", Ty::Str),
        ("user_name", Ty::Str),
        ("ts", Ty::I64),
        (amount, Ty::I64),
    ]);
    for d in days {
        t.touch(&day(d));
        for _ in 0..rng.random_range(4..10) {
            let ts = t0(d + 1) - rng.random_range(1..40 * DAY);
            let row = vec![
                opt_str(rng, NAMES, 0.05),
                opt_str(rng, NAMES, 0.05),
                V::Int(ts),
                opt_int(rng, 1, 1000, 0.1),
            ];
            t.push(&day(d), row);
        }
    }
    t
}

fn events_entities_join() -> J {
    let gb = conf::group_by(
        "unit_test.user_transactions.v1",
        vec![
            conf::entities_source(
                "data.dollar_transactions",
                None,
                &["user", "user_name", "amount_dollars"],
                Some("ts"),
            ),
            conf::entities_source(
                "data.rupee_transactions",
                None,
                &["user", "user_name", "amount_dollars=amount_rupees"],
                Some("ts"),
            ),
        ],
        &["user", "user_name"],
        Some(vec![conf::agg(
            "amount_dollars",
            Op::Sum,
            &[W::Days(30)],
            &[],
            &[],
        )]),
        Some(1),
    );
    conf::join(
        "unit_test.events_entities_snapshot.v1",
        conf::events_left("data.queries", &["row_id", "user_name", "user"]),
        // swapped: the left's user_name is the GroupBy's user and vice versa
        vec![conf::part(
            gb,
            &[("user_name", "user"), ("user", "user_name")],
            None,
        )],
    )
}

fn events_entities_db() -> Db {
    let mut rng = StdRng::seed_from_u64(1);
    let mut db = Db::default();
    db.add(
        "data.queries",
        event_left(
            &mut rng,
            &[("user_name", NAMES), ("user", NAMES)],
            40..=49,
            8,
        ),
    );
    db.add(
        "data.dollar_transactions",
        txn_snapshots(&mut rng, "amount_dollars", 38..=49),
    );
    db.add(
        "data.rupee_transactions",
        txn_snapshots(&mut rng, "amount_rupees", 38..=49),
    );
    db
}

#[test]
fn events_entities_snapshot_two_sources_swapped_keys() {
    let db = events_entities_db();
    let join = events_entities_join();
    let exp = expected(&join, &db, &run_to(49));
    assert_eq!(
        exp.feat_cols,
        ["unit_test_user_transactions_v1_amount_dollars_sum_30d"]
    );
    let matched = exp
        .parts
        .values()
        .flatten()
        .filter(|r| !r.feats[0].matches(&V::Null))
        .count();
    assert!(
        matched > 10,
        "the data should give most left rows a value ({matched})"
    );
    assert_ok(check_rich(&join, &db, &run_to(49)));
}

#[test]
fn events_entities_snapshot_dropped_partitions_are_refilled() {
    let db = events_entities_db();
    let join = events_entities_join();
    let (_dir, wh) = warehouse(&db);
    let out = output_table(&join);
    backfill(&wh, &join, &options(&run_to(49))).unwrap();
    let first = read_table(&wh, &out);
    assert_ok(compare(&expected(&join, &db, &run_to(49)), &first));
    assert_eq!(first.parts.len(), 10);

    // holes in the middle are refilled equal
    for d in [42, 45, 46] {
        data::drop_partition(&wh, &out, &day(d));
    }
    let r = backfill(&wh, &join, &options(&run_to(49))).unwrap();
    assert_eq!(
        r.written.len(),
        3,
        "only the dropped partitions are computed again"
    );
    assert_ok(outputs_equal(
        &first,
        &read_table(&wh, &out),
        "first run",
        "refill",
    ));

    // a hole before the first existing partition is skipped (retention), unless asked for
    data::drop_partition(&wh, &out, &day(40));
    let r = backfill(&wh, &join, &options(&run_to(49))).unwrap();
    assert!(r.written.is_empty(), "first hole skipped: {:?}", r.written);
    assert!(!read_table(&wh, &out).parts.contains_key(&day(40)));
    let mut o = options(&run_to(49));
    o.run_first_hole = true;
    let r = backfill(&wh, &join, &o).unwrap();
    assert_eq!(r.written.len(), 1);
    assert_ok(outputs_equal(
        &first,
        &read_table(&wh, &out),
        "first run",
        "refill of the first hole",
    ));
}

// ------------------------------------------------------------------------------------------
// testEventsEventsSnapshot / testEventsEventsTemporal
// ------------------------------------------------------------------------------------------

const ITEMS: &[&str] = &["i1", "i2", "i3", "i4", "i5"];

/// `data.views(item, time_spent_ms, ts)` on days `days`, each event in its own ts partition.
fn views(rng: &mut StdRng, days: std::ops::RangeInclusive<i64>, n: usize) -> Table {
    let mut t = Table::new(&[
        ("item", Ty::Str),
        ("time_spent_ms", Ty::I64),
        ("ts", Ty::I64),
    ]);
    for d in days.clone() {
        t.touch(&day(d));
    }
    for _ in 0..n {
        let d = rng.random_range(days.clone());
        let ts = t0(d) + rng.random_range(0..DAY);
        t.push(
            &ds_of(ts),
            vec![
                opt_str(rng, ITEMS, 0.05),
                opt_int(rng, 0, 5000, 0.1),
                V::Int(ts),
            ],
        );
    }
    t
}

#[test]
fn events_events_snapshot_average_unwindowed() {
    // SNAPSHOT without a timeColumn: every event of partition D counts as of the end of D, so a
    // left row sees exactly the partitions before its own day
    let mut rng = StdRng::seed_from_u64(2);
    let mut db = Db::default();
    db.add(
        "data.item_queries",
        event_left(&mut rng, &[("item", ITEMS)], 20..=25, 10),
    );
    db.add("data.views", views(&mut rng, 0..=25, 200));
    let gb = conf::group_by(
        "unit_test.item_views.v1",
        vec![conf::events_source(
            "data.views",
            &["item", "time_spent_ms"],
            None,
        )],
        &["item"],
        Some(vec![
            conf::agg("time_spent_ms", Op::Average, &[W::Unbounded], &[], &[]),
            conf::agg("time_spent_ms", Op::Sum, &[W::Days(3)], &[], &[]),
        ]),
        Some(1),
    );
    let join = conf::join(
        "unit_test.events_events_snapshot.v1",
        conf::events_left("data.item_queries", &["row_id", "item"]),
        vec![conf::part(gb, &[], Some("user"))],
    );
    let exp = expected(&join, &db, &run_to(25));
    assert_eq!(
        exp.feat_cols,
        [
            "user_unit_test_item_views_v1_time_spent_ms_average",
            "user_unit_test_item_views_v1_time_spent_ms_sum_3d"
        ]
    );
    assert_ok(check_rich(&join, &db, &run_to(25)));
}

#[test]
fn events_events_temporal_keeps_duplicated_left_rows() {
    let mut rng = StdRng::seed_from_u64(3);
    let mut left = event_left(&mut rng, &[("item", ITEMS)], 20..=24, 8);
    // every left row twice
    for rows in left.parts.values_mut() {
        let copy = rows.clone();
        rows.extend(copy);
    }
    let left_count: usize = left.parts.values().map(Vec::len).sum();
    let mut db = Db::default();
    db.add("data.item_queries", left);
    db.add("data.views", views(&mut rng, 0..=24, 250));
    let gb = conf::group_by(
        "unit_test.item_views.v1",
        vec![conf::events_source(
            "data.views",
            &["item", "time_spent_ms"],
            Some("ts"),
        )],
        &["item"],
        Some(vec![
            conf::agg("time_spent_ms", Op::Average, &[W::Days(10)], &[], &[]),
            conf::agg("ts", Op::Min, &[W::Unbounded], &[], &[]),
            conf::agg("ts", Op::Max, &[W::Unbounded], &[], &[]),
            conf::agg(
                "time_spent_ms",
                Op::Sum,
                &[W::Hours(6), W::Days(1)],
                &[],
                &[],
            ),
            conf::agg("time_spent_ms", Op::Count, &[W::Days(7)], &[], &[]),
        ]),
        Some(0),
    );
    let join = conf::join(
        "unit_test.events_events_temporal.v1",
        conf::events_left("data.item_queries", &["row_id", "item"]),
        vec![conf::part(gb, &[], None)],
    );
    let (_dir, wh) = warehouse(&db);
    backfill(&wh, &join, &options(&run_to(24))).unwrap();
    let act = read_table(&wh, &output_table(&join));
    let out_count: usize = harness::row_counts(&act).values().sum();
    assert_eq!(
        out_count, left_count,
        "every left row is kept, duplicates included"
    );
    assert_ok(compare(&expected(&join, &db, &run_to(24)), &act));
}

#[test]
fn events_events_temporal_sum_count_keeps_duplicated_left_rows() {
    let mut rng = StdRng::seed_from_u64(4);
    let mut left = event_left(&mut rng, &[("item", ITEMS)], 20..=24, 6);
    for rows in left.parts.values_mut() {
        let copy = rows.clone();
        rows.extend(copy);
    }
    let left_count: usize = left.parts.values().map(Vec::len).sum();
    let mut db = Db::default();
    db.add("data.item_queries", left);
    db.add("data.views", views(&mut rng, 0..=24, 250));
    let gb = conf::group_by(
        "unit_test.item_views.v1",
        vec![conf::events_source(
            "data.views",
            &["item", "time_spent_ms"],
            Some("ts"),
        )],
        &["item"],
        Some(vec![
            conf::agg(
                "time_spent_ms",
                Op::Sum,
                &[W::Hours(6), W::Days(1), W::Days(12)],
                &[],
                &[],
            ),
            conf::agg("time_spent_ms", Op::Count, &[W::Unbounded], &[], &[]),
        ]),
        Some(0),
    );
    let join = conf::join(
        "unit_test.events_events_temporal.v1",
        conf::events_left("data.item_queries", &["row_id", "item"]),
        vec![conf::part(gb, &[], None)],
    );
    let (_dir, wh) = warehouse(&db);
    backfill(&wh, &join, &options(&run_to(24))).unwrap();
    let act = read_table(&wh, &output_table(&join));
    assert_eq!(
        harness::row_counts(&act).values().sum::<usize>(),
        left_count
    );
    assert_ok(compare(&expected(&join, &db, &run_to(24)), &act));
}

#[test]
fn events_events_dropped_partitions_are_refilled() {
    let mut rng = StdRng::seed_from_u64(5);
    let mut db = Db::default();
    db.add(
        "data.item_queries",
        event_left(&mut rng, &[("item", ITEMS)], 20..=27, 6),
    );
    db.add("data.views", views(&mut rng, 0..=27, 250));
    let gb = conf::group_by(
        "unit_test.item_views.v1",
        vec![conf::events_source(
            "data.views",
            &["item", "time_spent_ms"],
            Some("ts"),
        )],
        &["item"],
        Some(vec![conf::agg(
            "time_spent_ms",
            Op::Sum,
            &[W::Days(1), W::Days(7)],
            &[],
            &[],
        )]),
        Some(0),
    );
    let join = conf::join(
        "unit_test.refill.v1",
        conf::events_left("data.item_queries", &["row_id", "item"]),
        vec![conf::part(gb, &[], None)],
    );
    let (_dir, wh) = warehouse(&db);
    let out = output_table(&join);
    let mut o = options(&run_to(27));
    o.step_days = 3;
    backfill(&wh, &join, &o).unwrap();
    let first = read_table(&wh, &out);
    assert_ok(compare(&expected(&join, &db, &run_to(27)), &first));
    for d in [21, 22, 26] {
        data::drop_partition(&wh, &out, &day(d));
    }
    let r = backfill(&wh, &join, &o).unwrap();
    assert_eq!(r.written.len(), 3);
    assert_ok(outputs_equal(
        &first,
        &read_table(&wh, &out),
        "first run",
        "refill",
    ));
}

// ------------------------------------------------------------------------------------------
// testEndPartitionJoin, key mapping, prefixes
// ------------------------------------------------------------------------------------------

#[test]
fn left_end_partition_caps_the_output() {
    let mut rng = StdRng::seed_from_u64(6);
    let mut db = Db::default();
    db.add(
        "data.item_queries",
        event_left(&mut rng, &[("item", ITEMS)], 20..=27, 5),
    );
    db.add("data.views", views(&mut rng, 0..=27, 150));
    let gb = conf::group_by(
        "unit_test.item_views.v1",
        vec![conf::events_source(
            "data.views",
            &["item", "time_spent_ms"],
            Some("ts"),
        )],
        &["item"],
        Some(vec![conf::agg(
            "time_spent_ms",
            Op::Sum,
            &[W::Days(3)],
            &[],
            &[],
        )]),
        Some(0),
    );
    let mut left = conf::events_left("data.item_queries", &["row_id", "item"]);
    left["events"]["query"]["startPartition"] = json!(day(21));
    left["events"]["query"]["endPartition"] = json!(day(24));
    let join = conf::join(
        "unit_test.end_partition.v1",
        left,
        vec![conf::part(gb, &[], None)],
    );
    let (_dir, wh) = warehouse(&db);
    backfill(&wh, &join, &options(&run_to(27))).unwrap();
    let act = read_table(&wh, &output_table(&join));
    let got: Vec<&String> = act.parts.keys().collect();
    assert_eq!(
        got,
        [&day(21), &day(22), &day(23), &day(24)],
        "start/endPartition bound the output"
    );
    assert_ok(compare(&expected(&join, &db, &run_to(27)), &act));
}

#[test]
fn two_key_mapping_and_prefix_on_events() {
    // GroupBy keys (item_id, country); the left calls them item and region
    let mut rng = StdRng::seed_from_u64(7);
    let countries = &["us", "fr", "jp"];
    let mut db = Db::default();
    db.add(
        "data.item_queries",
        event_left(
            &mut rng,
            &[("item", ITEMS), ("region", countries)],
            10..=14,
            10,
        ),
    );
    let mut ev = Table::new(&[
        ("item_id", Ty::Str),
        ("country", Ty::Str),
        ("price", Ty::I64),
        ("ts", Ty::I64),
    ]);
    for d in 0..=14 {
        ev.touch(&day(d));
    }
    for _ in 0..300 {
        let ts = t0(rng.random_range(0..=14)) + rng.random_range(0..DAY);
        let row = vec![
            opt_str(&mut rng, ITEMS, 0.05),
            opt_str(&mut rng, countries, 0.05),
            opt_int(&mut rng, 1, 100, 0.1),
            V::Int(ts),
        ];
        ev.push(&ds_of(ts), row);
    }
    db.add("data.sales", ev);
    let gb = conf::group_by(
        "unit_test.item_sales.v1",
        vec![conf::events_source(
            "data.sales",
            &["item_id", "country", "price"],
            Some("ts"),
        )],
        &["item_id", "country"],
        Some(vec![
            conf::agg("price", Op::Sum, &[W::Hours(12), W::Days(3)], &[], &[]),
            conf::agg("price", Op::Count, &[W::Unbounded], &[], &[]),
        ]),
        Some(0),
    );
    let join = conf::join(
        "unit_test.key_mapping.v1",
        conf::events_left("data.item_queries", &["row_id", "item", "region"]),
        vec![conf::part(
            gb,
            &[("item", "item_id"), ("region", "country")],
            Some("sales"),
        )],
    );
    let exp = expected(&join, &db, &run_to(14));
    assert_eq!(
        exp.feat_cols,
        [
            "sales_unit_test_item_sales_v1_price_sum_12h",
            "sales_unit_test_item_sales_v1_price_sum_3d",
            "sales_unit_test_item_sales_v1_price_count"
        ]
    );
    assert_ok(check_rich(&join, &db, &run_to(14)));
}

// ------------------------------------------------------------------------------------------
// JoinBasicTest: entity lefts, no-agg GroupBys, historicalBackfill = false
// ------------------------------------------------------------------------------------------

const COUNTRIES: &[&str] = &["us", "fr", "jp", "br"];

/// Entity snapshots `(country, weight, ts)` per day.
fn country_weights(rng: &mut StdRng, days: std::ops::RangeInclusive<i64>) -> Table {
    let mut t = Table::new(&[("country", Ty::Str), ("weight", Ty::I64), ("ts", Ty::I64)]);
    for d in days {
        t.touch(&day(d));
        for _ in 0..rng.random_range(3..12) {
            let ts = t0(d + 1) - rng.random_range(1..5 * DAY);
            t.push(
                &day(d),
                vec![
                    opt_str(rng, COUNTRIES, 0.05),
                    opt_int(rng, 40, 120, 0.1),
                    V::Int(ts),
                ],
            );
        }
    }
    t
}

fn entity_left(rng: &mut StdRng, days: std::ops::RangeInclusive<i64>) -> Table {
    let mut t = Table::new(&[("row_id", Ty::I64), ("country", Ty::Str)]);
    let mut id = 0;
    for d in days {
        for c in COUNTRIES.iter().take(rng.random_range(1..=4)) {
            t.push(&day(d), vec![V::Int(id), V::s(c)]);
            id += 1;
        }
        if rng.random_bool(0.3) {
            t.push(&day(d), vec![V::Int(id), V::Null]);
            id += 1;
        }
    }
    t
}

fn weights_join(name: &str) -> J {
    let gb = conf::group_by(
        "unit_test.country_weights.v1",
        vec![conf::entities_source(
            "data.weights",
            None,
            &["country", "weight"],
            Some("ts"),
        )],
        &["country"],
        Some(vec![
            conf::agg("weight", Op::Average, &[W::Unbounded], &[], &[]),
            conf::agg("weight", Op::Sum, &[W::Days(2)], &[], &[]),
            conf::agg("weight", Op::Count, &[W::Unbounded], &[], &[]),
        ]),
        None,
    );
    conf::join(
        name,
        conf::entities_left("data.countries", &["row_id", "country"]),
        vec![conf::part(gb, &[], None)],
    )
}

#[test]
fn entities_entities_join_the_same_ds() {
    let mut rng = StdRng::seed_from_u64(8);
    let mut db = Db::default();
    db.add("data.countries", entity_left(&mut rng, 5..=12));
    db.add("data.weights", country_weights(&mut rng, 0..=12));
    let join = weights_join("unit_test.entities_entities.v1");
    assert_ok(check_rich(&join, &db, &run_to(12)));
}

#[test]
fn entities_entities_no_historical_backfill_writes_only_the_end() {
    let mut rng = StdRng::seed_from_u64(9);
    let mut db = Db::default();
    db.add("data.countries", entity_left(&mut rng, 5..=12));
    db.add("data.weights", country_weights(&mut rng, 0..=12));
    let mut join = weights_join("unit_test.entities_entities_no_hist.v1");
    join["metaData"]["historicalBackfill"] = json!(0);
    let (_dir, wh) = warehouse(&db);
    backfill(&wh, &join, &options(&run_to(10))).unwrap();
    let act = read_table(&wh, &output_table(&join));
    assert_eq!(act.parts.keys().collect::<Vec<_>>(), [&day(10)]);
    assert_ok(compare(&expected(&join, &db, &run_to(10)), &act));
}

/// `data.listing_attributes(listing, room_type, price)` snapshots; some listings have two rows.
fn listing_attributes(rng: &mut StdRng, days: std::ops::RangeInclusive<i64>) -> Table {
    let mut t = Table::new(&[
        ("listing", Ty::I64),
        ("room_type", Ty::Str),
        ("price", Ty::F64),
    ]);
    for d in days {
        t.touch(&day(d));
        for l in 0..5 {
            let copies = match rng.random_range(0..6) {
                0 => 0,
                1 => 2,
                _ => 1,
            };
            for _ in 0..copies {
                let price = if rng.random_bool(0.1) {
                    V::Null
                } else {
                    V::Float(rng.random_range(50..300) as f64 + 0.5)
                };
                t.push(
                    &day(d),
                    vec![
                        V::Int(l),
                        opt_str(rng, &["entire", "private", "shared"], 0.1),
                        price,
                    ],
                );
            }
        }
    }
    t
}

fn no_agg_part() -> J {
    let gb = conf::group_by(
        "unit_test.listing_attributes.v1",
        vec![conf::entities_source(
            "data.listing_attributes",
            None,
            &["listing", "room_type", "price"],
            None,
        )],
        &["listing"],
        None,
        None,
    );
    conf::part(gb, &[("listing_id", "listing")], Some("dim"))
}

#[test]
fn no_agg_values_join_raw_for_an_events_left() {
    // the snapshot of ts_ds − 1; duplicate entity rows multiply the left row
    let mut rng = StdRng::seed_from_u64(10);
    let mut left = Table::new(&[
        ("row_id", Ty::I64),
        ("listing_id", Ty::I64),
        ("ts", Ty::I64),
    ]);
    for id in 0..30 {
        let d = rng.random_range(3..=7);
        let ts = t0(d) + rng.random_range(0..DAY);
        left.push(
            &day(d),
            vec![V::Int(id), opt_int(&mut rng, 0, 6, 0.05), V::Int(ts)],
        );
    }
    let mut db = Db::default();
    db.add("data.listing_views", left);
    db.add(
        "data.listing_attributes",
        listing_attributes(&mut rng, 0..=7),
    );
    let join = conf::join(
        "unit_test.no_agg_events.v1",
        conf::events_left("data.listing_views", &["row_id", "listing_id"]),
        vec![no_agg_part()],
    );
    let exp = expected(&join, &db, &run_to(7));
    assert_eq!(
        exp.feat_cols,
        [
            "dim_unit_test_listing_attributes_v1_room_type",
            "dim_unit_test_listing_attributes_v1_price"
        ]
    );
    let left_rows: usize = db
        .table("data.listing_views")
        .parts
        .values()
        .map(Vec::len)
        .sum();
    let out_rows: usize = exp.parts.values().map(Vec::len).sum();
    assert!(
        out_rows > left_rows,
        "the data has duplicate entity rows ({out_rows} vs {left_rows})"
    );
    assert_ok(check_rich(&join, &db, &run_to(7)));
}

#[test]
fn no_agg_values_join_raw_for_an_entities_left() {
    let mut rng = StdRng::seed_from_u64(11);
    let mut left = Table::new(&[("row_id", Ty::I64), ("listing_id", Ty::I64)]);
    let mut id = 0;
    for d in 3..=6 {
        for _ in 0..6 {
            left.push(&day(d), vec![V::Int(id), opt_int(&mut rng, 0, 6, 0.05)]);
            id += 1;
        }
    }
    let mut db = Db::default();
    db.add("data.listings", left);
    db.add(
        "data.listing_attributes",
        listing_attributes(&mut rng, 0..=6),
    );
    let join = conf::join(
        "unit_test.no_agg_entities.v1",
        conf::entities_left("data.listings", &["row_id", "listing_id"]),
        vec![no_agg_part()],
    );
    assert_ok(check_rich(&join, &db, &run_to(6)));
}

// ------------------------------------------------------------------------------------------
// Skew keys
// ------------------------------------------------------------------------------------------

fn skew_db(seed: u64) -> Db {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut db = Db::default();
    db.add(
        "data.item_queries",
        event_left(&mut rng, &[("item", ITEMS)], 20..=23, 12),
    );
    db.add("data.views", views(&mut rng, 0..=23, 150));
    db
}

fn skew_join(skew: J) -> J {
    let gb = conf::group_by(
        "unit_test.item_views.v1",
        vec![conf::events_source(
            "data.views",
            &["item", "time_spent_ms"],
            Some("ts"),
        )],
        &["item"],
        Some(vec![conf::agg(
            "time_spent_ms",
            Op::Sum,
            &[W::Days(2)],
            &[],
            &[],
        )]),
        Some(0),
    );
    let mut join = conf::join(
        "unit_test.skew.v1",
        conf::events_left("data.item_queries", &["row_id", "item"]),
        vec![conf::part(gb, &[], None)],
    );
    join["skewKeys"] = skew;
    join
}

#[test]
fn skew_key_rows_are_removed_from_the_output() {
    let db = skew_db(12);
    let join = skew_join(json!({"item": ["'i1'", "'i3'"]}));
    let exp = expected(&join, &db, &run_to(23));
    let items: Vec<&V> = exp.parts.values().flatten().map(|r| &r.left[1]).collect();
    assert!(!items.contains(&&V::s("i1")) && !items.contains(&&V::s("i3")));
    assert!(
        !items.contains(&&V::Null),
        "`item NOT IN (…)` is not true for a NULL item"
    );
    assert!(items.contains(&&V::s("i2")));
    assert_ok(check_rich(&join, &db, &run_to(23)));
}

#[test]
fn skew_keys_listing_null() {
    let db = skew_db(13);
    let join = skew_join(json!({"item": ["'i2'", "null"]}));
    assert_ok(check_rich(&join, &db, &run_to(23)));
}

// ------------------------------------------------------------------------------------------
// Several parts in one join
// ------------------------------------------------------------------------------------------

#[test]
fn several_parts_of_every_kind_in_one_join() {
    let mut rng = StdRng::seed_from_u64(14);
    let mut db = Db::default();
    let mut left = Table::new(&[
        ("row_id", Ty::I64),
        ("item", Ty::Str),
        ("country", Ty::Str),
        ("listing_id", Ty::I64),
        ("ts", Ty::I64),
    ]);
    for id in 0..40 {
        let d = rng.random_range(10..=14);
        let ts = if id % 7 == 0 {
            t0(d)
        } else {
            t0(d) + rng.random_range(0..DAY)
        };
        let row = vec![
            V::Int(id),
            opt_str(&mut rng, ITEMS, 0.05),
            opt_str(&mut rng, COUNTRIES, 0.05),
            opt_int(&mut rng, 0, 6, 0.05),
            V::Int(ts),
        ];
        left.push(&day(d), row);
    }
    db.add("data.queries", left);
    db.add("data.views", views(&mut rng, 0..=14, 300));
    db.add("data.weights", country_weights(&mut rng, 0..=14));
    db.add(
        "data.listing_attributes",
        listing_attributes(&mut rng, 0..=14),
    );
    let views_gb = |accuracy: i64| {
        conf::group_by(
            "unit_test.item_views.v1",
            vec![conf::events_source(
                "data.views",
                &["item", "time_spent_ms"],
                Some("ts"),
            )],
            &["item"],
            Some(vec![
                conf::agg(
                    "time_spent_ms",
                    Op::Sum,
                    &[W::Days(1), W::Days(3)],
                    &[],
                    &[],
                ),
                conf::agg("time_spent_ms", Op::Count, &[W::Unbounded], &[], &[]),
            ]),
            Some(accuracy),
        )
    };
    let weights_gb = conf::group_by(
        "unit_test.country_weights.v1",
        vec![conf::entities_source(
            "data.weights",
            None,
            &["country", "weight"],
            Some("ts"),
        )],
        &["country"],
        Some(vec![conf::agg(
            "weight",
            Op::Max,
            &[W::Unbounded],
            &[],
            &[],
        )]),
        Some(1),
    );
    let join = conf::join(
        "unit_test.all_parts.v1",
        conf::events_left("data.queries", &["row_id", "item", "country", "listing_id"]),
        vec![
            conf::part(views_gb(0), &[], Some("temporal")),
            conf::part(views_gb(1), &[], Some("snapshot")),
            conf::part(weights_gb, &[], None),
            no_agg_part(),
        ],
    );
    assert_ok(check_rich(&join, &db, &run_to(14)));
}
