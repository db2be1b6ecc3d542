//! Spark's `/` through a join, on the `bootfix` fixtures: in Spark SQL `/` between integers is
//! a DOUBLE division and a zero divisor gives NULL. Checked in each place a Chronon config holds
//! SQL: a GroupBy derivation (`amount_dollars_sum_30d / 30`, Chronon's own example), join
//! derivations (a ratio of two sums, a division by zero), a source select and a source where
//! (both rendered into the scan).

use crate::bootfix;
use crate::reference;

use std::collections::BTreeMap;

use arrow::datatypes::DataType;
use bootfix::*;
use reference::data::tn;
use reference::harness::warehouse;
use reference::{output_table, V};
use serde_json::{json, Value as J};
use weft::warehouse::Warehouse;

type Rows = BTreeMap<(String, String), BTreeMap<String, V>>;

const AVG_30D: &str = "unit_test_user_transactions_avg_30d";

fn derivations(list: &[(&str, &str)]) -> J {
    J::Array(
        list.iter()
            .map(|(n, e)| json!({"name": n, "expression": e}))
            .collect(),
    )
}

/// The Arrow type of a column of the output's first partition.
fn column_type(wh: &Warehouse, table: &str, col: &str) -> DataType {
    let t = tn(table);
    let ds = wh.partitions(&t).unwrap()[0];
    let b = wh.read_partition(&t, ds).unwrap();
    b[0].schema()
        .field_with_name(col)
        .unwrap()
        .data_type()
        .clone()
}

/// Runs a join of the queries with one part over `gb` (and the join-level `derivations`), and
/// returns its output rows.
fn run_part(wh: &Warehouse, name: &str, gb: J, join_derivations: Option<J>) -> (String, Rows) {
    let mut j = join(name, vec![reference::conf::part(gb, &[], None)]);
    if let Some(d) = join_derivations {
        j["derivations"] = d;
    }
    run_join(wh, &j);
    let table = output_table(&j);
    let rows = rows_by_id(wh, &table);
    (table, rows)
}

fn int(v: &V) -> Option<i64> {
    match v {
        V::Int(x) => Some(*x),
        V::Null => None,
        other => panic!("expected an integer, got {other:?}"),
    }
}

/// `a / b` as Spark evaluates it on two BIGINTs: a double, NULL for NULL or a zero divisor.
fn spark_div(a: Option<i64>, b: Option<i64>) -> V {
    match (a, b) {
        (Some(x), Some(y)) if y != 0 => V::Float(x as f64 / y as f64),
        _ => V::Null,
    }
}

#[test]
fn group_by_derivation_divides_integers_as_doubles() {
    let db = db(11, 40);
    let (_dir, wh) = warehouse(&db);
    let (_, base) = run_part(&wh, "unit_test.division.base", user_transactions(), None);
    let mut gb = user_transactions();
    gb["derivations"] = derivations(&[("avg_30d", "amount_dollars_sum_30d / 30"), ("*", "*")]);
    let (table, out) = run_part(&wh, "unit_test.division.gb_derived", gb, None);
    assert_eq!(column_type(&wh, &table, AVG_30D), DataType::Float64);
    assert_eq!(out.len(), base.len());
    assert!(base.len() >= 150);
    let (mut fractional, mut null) = (0, 0);
    for (k, row) in &out {
        let sum = int(&base[k][SUM_30D]);
        assert_eq!(row[SUM_30D], base[k][SUM_30D], "{k:?}");
        assert_eq!(row[AVG_30D], spark_div(sum, Some(30)), "{k:?}");
        match sum {
            Some(s) if s % 30 != 0 => fractional += 1,
            None => null += 1,
            _ => {}
        }
    }
    // Most sums are not multiples of 30: an integer division would have truncated them.
    assert!(fractional > out.len() / 2, "{fractional} of {}", out.len());
    assert!(null < out.len(), "{null} NULL sums");
}

#[test]
fn join_derivations_divide_as_doubles_and_zero_divisors_give_null() {
    let db = db(12, 40);
    let (_dir, wh) = warehouse(&db);
    let (_, base) = run_part(&wh, "unit_test.division.base", user_transactions(), None);
    let (table, out) = run_part(
        &wh,
        "unit_test.division.join_derived",
        user_transactions(),
        Some(derivations(&[
            ("*", "*"),
            ("ratio", &format!("{SUM_30D} / {SUM_15D}")),
            ("halves", &format!("{SUM_30D} / 2")),
            ("by_zero", &format!("{SUM_30D} / ({SUM_15D} - {SUM_15D})")),
            ("by_zero_double", &format!("{SUM_30D} / 0.0")),
        ])),
    );
    for c in ["ratio", "halves", "by_zero", "by_zero_double"] {
        assert_eq!(column_type(&wh, &table, c), DataType::Float64, "{c}");
    }
    assert_eq!(out.len(), base.len());
    let mut odd = 0;
    for (k, row) in &out {
        let (s30, s15) = (int(&base[k][SUM_30D]), int(&base[k][SUM_15D]));
        assert_eq!(row["ratio"], spark_div(s30, s15), "{k:?}");
        assert_eq!(row["halves"], spark_div(s30, Some(2)), "{k:?}");
        assert_eq!(row["by_zero"], V::Null, "{k:?}");
        assert_eq!(row["by_zero_double"], V::Null, "{k:?}");
        odd += s30.is_some_and(|s| s % 2 != 0) as usize;
    }
    assert!(odd > 0, "some 30d sums are odd");
    assert!(
        out.values()
            .any(|r| matches!(r["ratio"], V::Float(x) if x.fract() != 0.0)),
        "some ratios are fractional"
    );
}

#[test]
fn source_selects_and_wheres_divide_as_doubles() {
    let db = db(13, 40);
    let (_dir, wh) = warehouse(&db);
    let (_, base) = run_part(&wh, "unit_test.division.base", user_transactions(), None);

    // A select `amount_dollars / 2`: each amount halved exactly, so the sums are halved.
    let mut gb = user_transactions();
    gb["sources"][0]["events"]["query"]["selects"]["amount_dollars"] = json!("amount_dollars / 2");
    let (table, out) = run_part(&wh, "unit_test.division.halved", gb, None);
    assert_eq!(column_type(&wh, &table, SUM_30D), DataType::Float64);
    assert_eq!(out.len(), base.len());
    for (k, row) in &out {
        assert_eq!(
            row[SUM_30D],
            spark_div(int(&base[k][SUM_30D]), Some(2)),
            "{k:?}"
        );
        assert_eq!(
            row[SUM_15D],
            spark_div(int(&base[k][SUM_15D]), Some(2)),
            "{k:?}"
        );
    }

    // A where `amount_dollars / 2 > 100` keeps the amounts above 200, 201 included (an integer
    // division would keep those above 201 only).
    let with_where = |name: &str, w: &str| {
        let mut gb = user_transactions();
        gb["sources"][0]["events"]["query"]["wheres"] = json!([w]);
        run_part(&wh, name, gb, None).1
    };
    let divided = with_where("unit_test.division.where_div", "amount_dollars / 2 > 100");
    let above_200 = with_where("unit_test.division.where_200", "amount_dollars > 200");
    let above_201 = with_where("unit_test.division.where_201", "amount_dollars > 201");
    assert_eq!(divided, above_200);
    assert_ne!(
        above_200, above_201,
        "the fixture has amounts of 201 in the left's windows"
    );
}
