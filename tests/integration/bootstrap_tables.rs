//! Table bootstraps (chronon-semantics §4, §10.1 TableBootstrapTest): list-order priority with
//! NULL falling through, column-level filling, coverage across several bootstrap parts, and
//! a fully covered part doing no aggregation work.

use crate::bootfix;
use crate::reference;

use bootfix::*;
use rand::Rng;
use reference::harness::warehouse;
use reference::{output_table, Ty, V};

/// testBootstrap: two bootstrap tables, each an 80% sample providing the 30d column, in order
/// [b1, b2]: 30d = coalesce(b1, b2, computed), 15d = computed.
#[test]
fn list_order_priority_and_column_level_filling() {
    let db = db(7, 40);
    let (_dir, wh) = warehouse(&db);
    let base = join(
        "unit_test.user_transaction_features.base",
        vec![reference::conf::part(user_transactions(), &[], None)],
    );
    run_base(&wh, &db, &base);
    let base_rows = rows_by_id(&wh, &output_table(&base));
    assert!(base_rows.len() >= 150);
    let b1 = sample(&base_rows, 0.8, 1, |r| V::Int(r.random_range(0..30000)));
    let b2 = sample(&base_rows, 0.8, 2, |r| V::Int(r.random_range(0..30000)));
    for (name, rows) in [("data.boot_1", &b1), ("data.boot_2", &b2)] {
        let rows: Vec<(String, Vec<V>)> = rows
            .iter()
            .map(|(id, ds, v)| (ds.clone(), vec![V::s(id), v.clone()]))
            .collect();
        write_table(
            &wh,
            name,
            &[("request_id", Ty::Str), (SUM_30D, Ty::I64)],
            &rows,
        );
    }
    let sel = ["request_id", SUM_30D];
    let mut j = join(
        "unit_test.user_transaction_features.bootstrap",
        vec![reference::conf::part(user_transactions(), &[], None)],
    );
    j["bootstrapParts"] = serde_json::json!([
        boot_part(
            "data.boot_1",
            Some(&sel),
            Some(&left_start()),
            Some(&end_day())
        ),
        boot_part(
            "data.boot_2",
            Some(&sel),
            Some(&left_start()),
            Some(&end_day())
        ),
    ]);
    let report = run_join(&wh, &j);
    let out = rows_by_id(&wh, &output_table(&j));
    assert_eq!(out.len(), base_rows.len());
    let find = |v: &Vec<(String, String, V)>, k: &(String, String)| {
        v.iter()
            .find(|(i, d, _)| (i, d) == (&k.0, &k.1))
            .map(|x| x.2.clone())
    };
    let mut from = [0; 3];
    for (k, row) in &out {
        let b = &base_rows[k];
        let expect30 = find(&b1, k)
            .or_else(|| find(&b2, k))
            .unwrap_or_else(|| b[SUM_30D].clone());
        from[if find(&b1, k).is_some() {
            0
        } else if find(&b2, k).is_some() {
            1
        } else {
            2
        }] += 1;
        assert_eq!(row[SUM_30D], expect30, "30d of {k:?}");
        assert_eq!(row[SUM_15D], b[SUM_15D], "15d of {k:?}");
        assert_eq!(row["user"], b["user"]);
    }
    assert!(from.iter().all(|&n| n > 0), "every source used: {from:?}");
    // the part is computed for every row (15d is never covered)
    let prov = report.provenance.expect("provenance");
    assert_eq!(prov.parts[0].covered, 0);
    assert_eq!(prov.parts[0].computed as usize, out.len());
    assert_eq!(
        prov.columns[SUM_30D].bootstrap,
        vec![from[0] as u64, from[1] as u64]
    );
}

/// testBootstrapSameJoinPartMultipleSources: one table gives 30d, another 15d, both for every
/// row: the union covers the part, which is never computed (no source is read).
#[test]
fn union_of_parts_covers_a_group_by_which_is_not_computed() {
    let db = db(8, 30);
    let (_dir, wh) = warehouse(&db);
    let base = join(
        "unit_test.user_transaction_features.base",
        vec![reference::conf::part(user_transactions(), &[], None)],
    );
    run_base(&wh, &db, &base);
    let base_rows = rows_by_id(&wh, &output_table(&base));
    for (name, col, seed) in [("data.boot_30", SUM_30D, 3), ("data.boot_15", SUM_15D, 4)] {
        let rows: Vec<(String, Vec<V>)> = sample(&base_rows, 1.0, seed, |r| {
            if r.random_bool(0.1) {
                V::Null
            } else {
                V::Int(r.random_range(0..100))
            }
        })
        .into_iter()
        .map(|(id, ds, v)| (ds, vec![V::s(&id), v]))
        .collect();
        write_table(&wh, name, &[("request_id", Ty::Str), (col, Ty::I64)], &rows);
    }
    let mut j = join(
        "unit_test.user_transaction_features.covered",
        vec![reference::conf::part(user_transactions(), &[], None)],
    );
    j["bootstrapParts"] = serde_json::json!([
        boot_part("data.boot_30", Some(&["request_id", SUM_30D]), None, None),
        boot_part("data.boot_15", Some(&["request_id", SUM_15D]), None, None),
    ]);
    let report = run_join(&wh, &j);
    let out = rows_by_id(&wh, &output_table(&j));
    assert_eq!(out.len(), base_rows.len());
    let b30 = rows_by_id_table(&wh, "data.boot_30");
    let b15 = rows_by_id_table(&wh, "data.boot_15");
    for (k, row) in &out {
        // a NULL from a trusted table stays NULL: the part is covered, nothing is computed
        assert_eq!(row[SUM_30D], b30[k][SUM_30D], "{k:?}");
        assert_eq!(row[SUM_15D], b15[k][SUM_15D], "{k:?}");
    }
    let prov = report.provenance.expect("provenance");
    assert_eq!(prov.parts[0].computed, 0);
    assert_eq!(prov.parts[0].covered as usize, out.len());
    // no aggregation work: no source row was read for the part
    assert_eq!(
        report.events[0].1.rows, 0,
        "source rows read for a covered part"
    );
    assert_eq!(report.part_rows[0].1, 0);
}

fn rows_by_id_table(
    wh: &weft::warehouse::Warehouse,
    t: &str,
) -> std::collections::BTreeMap<(String, String), std::collections::BTreeMap<String, V>> {
    rows_by_id(wh, t)
}

/// The same output for any number of workers and any step size (the bootstrap stage is
/// exchanged by key and row; coverage is decided before sources are fed, step by step).
#[test]
fn output_is_the_same_for_workers_and_step_sizes() {
    use reference::data::read_table;
    use reference::harness::{backfill, options, outputs_equal};
    let db = db(9, 25);
    let (_dir, wh) = warehouse(&db);
    let base = join(
        "unit_test.user_transaction_features.base",
        vec![
            reference::conf::part(user_transactions(), &[], None),
            reference::conf::part(user_transactions_v2(), &[], None),
        ],
    );
    run_base(&wh, &db, &base);
    let base_rows = rows_by_id(&wh, &output_table(&base));
    let rows: Vec<(String, Vec<V>)> = sample(&base_rows, 0.6, 3, |r| V::Int(r.random_range(0..9)))
        .into_iter()
        .map(|(id, ds, v)| (ds, vec![V::s(&id), v.clone(), v]))
        .collect();
    write_table(
        &wh,
        "data.boot_both",
        &[
            ("request_id", Ty::Str),
            (SUM_30D, Ty::I64),
            (SUM_15D, Ty::I64),
        ],
        &rows,
    );
    let mk = |name: &str| {
        let mut j = join(
            name,
            vec![
                reference::conf::part(user_transactions(), &[], None),
                reference::conf::part(user_transactions_v2(), &[], None),
            ],
        );
        j["bootstrapParts"] = serde_json::json!([boot_part("data.boot_both", None, None, None)]);
        j
    };
    let one = mk("unit_test.boot.one");
    backfill(&wh, &one, &options(&run())).unwrap();
    let many = mk("unit_test.boot.many");
    let mut o = options(&run());
    o.step_days = 1;
    let r = reference::harness::backfill_on(&wh, &many, &o, 3).unwrap();
    let prov = r.provenance.unwrap();
    assert_eq!(prov.parts[0].covered as usize, rows.len());
    assert!(prov.parts[0].computed > 0);
    outputs_equal(
        &read_table(&wh, &output_table(&one)),
        &read_table(&wh, &output_table(&many)),
        "1 worker, 30-day steps",
        "3 workers, 1-day steps",
    )
    .unwrap();
}
