//! Fixtures shared by the bootstrap tests (after Chronon's BootstrapUtils): an events table
//! `transactions(user, amount_dollars, ts)` over 45 days, a left `queries(user, request_id,
//! ts)` over the last 5 days with unique request ids, and the GroupBy
//! `unit_test.user_transactions` (SUM of `amount_dollars` over 30 and 15 days, SNAPSHOT).
//! Helpers run a join, read an output as rows keyed by `request_id`, and write bootstrap
//! tables.

#![allow(dead_code)]

use std::collections::BTreeMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value as J};
use weft::engine::JoinReport;
use weft::warehouse::Warehouse;

use crate::reference::conf::{self, W};
use crate::reference::data::{self, read_table};
use crate::reference::harness::{backfill, options};
use crate::reference::{ds_shift, ds_start, Db, Op, Run, Table, Ty, DAY, V};

pub const BASE: &str = "2026-03-01";
/// Days of transactions; the left covers the last 5.
pub const DAYS: i64 = 45;
pub const SUM_30D: &str = "unit_test_user_transactions_amount_dollars_sum_30d";
pub const SUM_15D: &str = "unit_test_user_transactions_amount_dollars_sum_15d";

pub fn day(i: i64) -> String {
    ds_shift(BASE, i)
}

/// The last day with data.
pub fn end_day() -> String {
    day(DAYS - 1)
}

/// First day of the left.
pub fn left_start() -> String {
    day(DAYS - 5)
}

pub fn run() -> Run {
    Run::through(&end_day())
}

/// The transactions and queries tables.
pub fn db(seed: u64, left_per_day: usize) -> Db {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut db = Db::default();
    let mut tx = Table::new(&[
        ("user", Ty::I64),
        ("amount_dollars", Ty::I64),
        ("ts", Ty::I64),
    ]);
    for d in 0..DAYS {
        for _ in 0..60 {
            let ts = ds_start(BASE) + d * DAY + rng.random_range(0..DAY);
            tx.push(
                &day(d),
                vec![
                    V::Int(rng.random_range(0..30)),
                    if rng.random_bool(0.02) {
                        V::Null
                    } else {
                        V::Int(rng.random_range(1..500))
                    },
                    V::Int(ts),
                ],
            );
        }
    }
    db.tables.insert("data.transactions".into(), tx);
    let mut q = Table::new(&[("user", Ty::I64), ("request_id", Ty::Str), ("ts", Ty::I64)]);
    let mut id = 0;
    for d in DAYS - 5..DAYS {
        for _ in 0..left_per_day {
            let ts = ds_start(BASE) + d * DAY + rng.random_range(0..DAY);
            q.push(
                &day(d),
                vec![
                    V::Int(rng.random_range(0..30)),
                    V::s(&format!("r{id}")),
                    V::Int(ts),
                ],
            );
            id += 1;
        }
    }
    db.tables.insert("data.queries".into(), q);
    db
}

/// `unit_test.user_transactions`: SUM(amount_dollars) over 30d and 15d, SNAPSHOT.
pub fn user_transactions() -> J {
    conf::group_by(
        "unit_test.user_transactions",
        vec![conf::events_source(
            "data.transactions",
            &["user", "amount_dollars"],
            Some("ts"),
        )],
        &["user"],
        Some(conf::aggs_for(
            "amount_dollars",
            Op::Sum,
            &[W::Days(30), W::Days(15)],
            &[],
        )),
        Some(1),
    )
}

/// `unit_test.user_transactions_v2`: unwindowed SUM(amount_dollars).
pub fn user_transactions_v2() -> J {
    conf::group_by(
        "unit_test.user_transactions_v2",
        vec![conf::events_source(
            "data.transactions",
            &["user", "amount_dollars"],
            Some("ts"),
        )],
        &["user"],
        Some(conf::aggs_for(
            "amount_dollars",
            Op::Sum,
            &[W::Unbounded],
            &[],
        )),
        Some(1),
    )
}

/// A join of the queries with `parts`, row ids `[request_id]`.
pub fn join(name: &str, parts: Vec<J>) -> J {
    let mut j = conf::join(
        name,
        conf::events_left("data.queries", &["user", "request_id"]),
        parts,
    );
    j["rowIds"] = json!(["request_id"]);
    j
}

/// A bootstrap part over `table` with `selects` (`None`: no query) and bounds.
pub fn boot_part(
    table: &str,
    selects: Option<&[&str]>,
    start: Option<&str>,
    end: Option<&str>,
) -> J {
    let mut p = json!({ "table": table });
    let mut q = serde_json::Map::new();
    if let Some(s) = selects {
        let mut m = serde_json::Map::new();
        for c in s {
            match c.split_once('=') {
                Some((o, e)) => m.insert(o.to_string(), J::String(e.to_string())),
                None => m.insert(c.to_string(), J::String(c.to_string())),
            };
        }
        q.insert("selects".into(), J::Object(m));
    }
    if let Some(s) = start {
        q.insert("startPartition".into(), json!(s));
    }
    if let Some(e) = end {
        q.insert("endPartition".into(), json!(e));
    }
    if !q.is_empty() {
        q.insert("setups".into(), json!([]));
        p["query"] = J::Object(q);
    }
    p
}

/// Runs a join through the run's end.
pub fn run_join(wh: &Warehouse, j: &J) -> JoinReport {
    backfill(wh, j, &options(&run())).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs a base join (one without bootstrap parts) and checks its output against the reference
/// once, so the expected values the bootstrap tests derive from it are trustworthy.
pub fn run_base(wh: &Warehouse, db: &Db, j: &J) -> JoinReport {
    let report = run_join(wh, j);
    let out = crate::reference::output_table(j);
    crate::reference::harness::compare(
        &crate::reference::expected(j, db, &run()),
        &read_table(wh, &out),
    )
    .unwrap_or_else(|e| panic!("the base join {out} differs from the reference: {e}"));
    report
}

/// Output rows by `(request_id, ds)`: column name → value.
pub fn rows_by_id(wh: &Warehouse, table: &str) -> BTreeMap<(String, String), BTreeMap<String, V>> {
    let mut out = BTreeMap::new();
    for (ds, (cols, rows)) in read_table(wh, table).parts {
        let rid = cols
            .iter()
            .position(|c| c == "request_id")
            .expect("request_id column");
        for r in rows {
            let key = match &r[rid] {
                V::Str(s) => s.clone(),
                other => format!("{other:?}"),
            };
            let m: BTreeMap<String, V> = cols.iter().cloned().zip(r.iter().cloned()).collect();
            assert!(
                out.insert((key, ds.clone()), m).is_none(),
                "request ids are unique"
            );
        }
    }
    out
}

/// Writes a bootstrap table `name` with columns `cols` (plus partition `ds`).
pub fn write_table(wh: &Warehouse, name: &str, cols: &[(&str, Ty)], rows: &[(String, Vec<V>)]) {
    let mut t = Table::new(cols);
    for (ds, r) in rows {
        t.push(ds, r.clone());
    }
    let mut db = Db::default();
    db.tables.insert(name.into(), t);
    data::write_db(wh, &db);
}

/// A random sample (fraction `p`) of the output rows of a join, as `(request_id, value of
/// column)`, the value replaced by `f(rng)`.
pub fn sample(
    rows: &BTreeMap<(String, String), BTreeMap<String, V>>,
    p: f64,
    seed: u64,
    f: impl Fn(&mut StdRng) -> V,
) -> Vec<(String, String, V)> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = Vec::new();
    for (id, ds) in rows.keys() {
        if rng.random_bool(p) {
            out.push((id.clone(), ds.clone(), f(&mut rng)));
        }
    }
    out
}
