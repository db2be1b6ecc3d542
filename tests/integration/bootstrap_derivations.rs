//! Bootstrap together with derivations, external and contextual fields, and bootstrap
//! validation (chronon-semantics §4.3–§4.10, §9; Chronon's `DerivationTest` rows of §10.1),
//! on the BootstrapUtils-like fixtures of `bootfix`:
//!
//! - bootstrapping a derived field, an external value (+ its key) and a contextual key into a
//!   join with GroupBy derivations, join derivations with `*`, an external and a contextual
//!   source: derived = coalesce(bootstrap, expression), external-derived columns only from
//!   bootstrap, mixed expressions recomputed from bootstrapped inputs (§4.9, §4.10);
//! - derivations without `*` fully bootstrapped: the GroupBy is never computed and the output
//!   is the bootstrap table (§4.6 coverage through derivation dependencies);
//! - the same coverage row by row: a rename alone does not cover the GroupBy, a part no
//!   derivation references is skipped for every row that matched some bootstrap (§4.8);
//! - a join without join parts over contextual fields: the four derivation variants of
//!   `testContextual` and which of `<field>` / `ext_contextual_<field>` survive;
//! - external fields nothing supplies: NULL columns (with prefixes and non-left keys);
//! - a left column named like a contextual field wins over bootstrap, a NULL falls through;
//! - bootstrap validation (§4.4, §3.2, §4.1): every problem names table, column and a fix,
//!   all reported in one error;
//! - `keyColumns` on a bootstrap part instead of row ids, with duplicate keys resolved
//!   deterministically.

use crate::bootfix;
use crate::reference;

use std::collections::{BTreeMap, BTreeSet};

use bootfix::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value as J};
use weft::warehouse::Warehouse;

use reference::data::{read_table, tn};
use reference::harness::{backfill, options, warehouse};
use reference::{output_table, Ty, V};

type Rows = BTreeMap<(String, String), BTreeMap<String, V>>;

const AVG_30D: &str = "unit_test_user_transactions_amount_dollars_avg_30d";
const EXT_15D: &str = "ext_payments_service_user_txn_count_15d";
const CTX_30D: &str = "ext_contextual_user_txn_count_30d";

// ------------------------------------------------------------------------------------------
// Helpers
// ------------------------------------------------------------------------------------------

/// A Long/Double/String field of an external source schema.
fn field(name: &str, kind: i64) -> J {
    json!({"name": name, "dataType": {"kind": kind}})
}

/// An online-only external part (no offlineGroupBy) with Long/Double/String fields.
fn external(name: &str, prefix: Option<&str>, keys: &[(&str, i64)], values: &[(&str, i64)]) -> J {
    let mut e = json!({"source": {
        "metadata": {"name": name, "team": "unit_test"},
        "keySchema": {"kind": 13, "name": format!("ext_{name}_keys"),
                      "params": keys.iter().map(|(n, k)| field(n, *k)).collect::<Vec<_>>()},
        "valueSchema": {"kind": 13, "name": format!("ext_{name}_values"),
                        "params": values.iter().map(|(n, k)| field(n, *k)).collect::<Vec<_>>()},
    }});
    if let Some(p) = prefix {
        e["prefix"] = json!(p);
    }
    e
}

/// The contextual source: its fields are both keys and values.
fn contextual(fields: &[(&str, i64)]) -> J {
    let mut e = external("contextual", None, fields, fields);
    e["source"]["keySchema"]["name"] = json!("contextual_keys");
    e["source"]["valueSchema"]["name"] = json!("contextual_values");
    e
}

fn payments_service() -> J {
    external(
        "payments_service",
        None,
        &[("user", 4)],
        &[("user_txn_count_15d", 4)],
    )
}

fn derivations(list: &[(&str, &str)]) -> J {
    J::Array(
        list.iter()
            .map(|(n, e)| json!({"name": n, "expression": e}))
            .collect(),
    )
}

/// The output's column names (every partition has the same ones; `ds` is the partition).
fn columns(wh: &Warehouse, table: &str) -> BTreeSet<String> {
    let act = read_table(wh, table);
    let mut sets = act
        .parts
        .values()
        .map(|(c, _)| c.iter().cloned().collect::<BTreeSet<String>>());
    let first = sets.next().expect("output has partitions");
    for s in sets {
        assert_eq!(s, first, "every partition of {table} has the same columns");
    }
    first
}

/// The Arrow type of a column of the output's first partition.
fn column_type(wh: &Warehouse, table: &str, col: &str) -> arrow::datatypes::DataType {
    let t = tn(table);
    let ds = wh.partitions(&t).unwrap()[0];
    let b = wh.read_partition(&t, ds).unwrap();
    b[0].schema()
        .field_with_name(col)
        .unwrap()
        .data_type()
        .clone()
}

fn set(cols: &[&str]) -> BTreeSet<String> {
    cols.iter().map(|c| c.to_string()).collect()
}

fn float_eq(a: &V, b: &V) -> bool {
    match (a, b) {
        (V::Null, V::Null) => true,
        (V::Float(x), V::Float(y)) => (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0),
        _ => false,
    }
}

/// `1.0 * a / b` as Spark evaluates it (NULL in, NULL out).
fn ratio(a: &V, b: &V) -> V {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) if y != 0.0 => V::Float(x / y),
        _ => V::Null,
    }
}

fn minus(a: &V, b: &V) -> V {
    match (a, b) {
        (V::Int(x), V::Int(y)) => V::Int(x - y),
        _ => V::Null,
    }
}

/// A bootstrap table `name` of rows `(request_id, ds) → values of cols` (after `request_id`).
fn write_boot(
    wh: &Warehouse,
    name: &str,
    cols: &[(&str, Ty)],
    rows: &BTreeMap<(String, String), Vec<V>>,
) {
    let mut all = vec![("request_id", Ty::Str)];
    all.extend(cols.iter().cloned());
    let rows: Vec<(String, Vec<V>)> = rows
        .iter()
        .map(|((id, ds), v)| {
            let mut r = vec![V::s(id)];
            r.extend(v.iter().cloned());
            (ds.clone(), r)
        })
        .collect();
    write_table(wh, name, &all, &rows);
}

/// An 80% sample (seeded) of the left rows with a random value in `1..30000`.
fn sample_values(rows: &Rows, seed: u64) -> BTreeMap<(String, String), V> {
    sample(rows, 0.8, seed, |r| V::Int(r.random_range(1..30000)))
        .into_iter()
        .map(|(id, ds, v)| ((id, ds), v))
        .collect()
}

/// The plain join (no derivations, no externals): the reference values of the GroupBy.
fn base_rows(wh: &Warehouse) -> Rows {
    let base = join(
        "unit_test.user_transaction_features.plain",
        vec![reference::conf::part(user_transactions(), &[], None)],
    );
    run_join(wh, &base);
    rows_by_id(wh, &output_table(&base))
}

fn error_of(wh: &Warehouse, j: &J) -> String {
    match backfill(wh, j, &options(&run())) {
        Ok(_) => panic!("the backfill of {} should fail", j["metaData"]["name"]),
        Err(e) => e,
    }
}

// ------------------------------------------------------------------------------------------
// 1. testBootstrapToDerivations
// ------------------------------------------------------------------------------------------

/// The derived join of DerivationTest `testBootstrapToDerivations`: GroupBy derivations
/// `[amount_dollars_avg_30d = CAST(amount_dollars_sum_30d AS DOUBLE) / 30, *]` (Chronon
/// writes `amount_dollars_sum_30d / 30`, a double division in Spark; the explicit cast keeps
/// this test about bootstrap rather than division typing), an external source
/// `payments_service` (key `user`), a contextual `user_txn_count_30d`, and join derivations
/// `*` plus renames and expressions over part, external, contextual and left columns.
fn derived_join(name: &str) -> J {
    let mut gb = user_transactions();
    gb["derivations"] = derivations(&[
        (
            "amount_dollars_avg_30d",
            "CAST(amount_dollars_sum_30d AS DOUBLE) / 30",
        ),
        ("*", "*"),
    ]);
    let mut j = join(name, vec![reference::conf::part(gb, &[], None)]);
    j["onlineExternalParts"] =
        json!([payments_service(), contextual(&[("user_txn_count_30d", 4)])]);
    let diff = format!("{SUM_30D} - {SUM_15D}");
    let avg30 = format!("1.0 * {SUM_30D} / {CTX_30D}");
    let avg15 = format!("1.0 * {SUM_15D} / {EXT_15D}");
    let concat = format!("CONCAT({EXT_15D}, ' ', user)");
    j["derivations"] = derivations(&[
        ("*", "*"),
        // contextual rename
        ("user_txn_count_30d", CTX_30D),
        // external rename
        ("user_txn_count_15d", EXT_15D),
        // external field with a left column
        ("user_txn_count_15d_with_user_id", &concat),
        // GroupBy renames (one of a GroupBy-derived column)
        ("user_amount_30d", SUM_30D),
        ("user_amount_30d_avg", AVG_30D),
        ("user_amount_15d", SUM_15D),
        // two GroupBy columns
        ("user_amount_30d_minus_15d", &diff),
        // a GroupBy column and a contextual one
        ("user_amount_avg_30d", &avg30),
        // a GroupBy column and an external one
        ("user_amount_avg_15d", &avg15),
    ]);
    j
}

#[test]
fn bootstrap_to_derivations_with_star() {
    let db = db(11, 30);
    let (_dir, wh) = warehouse(&db);
    let plain = base_rows(&wh);

    // first run: no bootstrap
    let j1 = derived_join("unit_test.derivations_join");
    run_join(&wh, &j1);
    // every base column is used verbatim by a rename, so `*` adds none of them; the contextual
    // key is a derivation output (kept), the external key `user` a left column
    assert_eq!(
        columns(&wh, &output_table(&j1)),
        set(&[
            "user",
            "request_id",
            "ts",
            "user_txn_count_30d",
            "user_txn_count_15d",
            "user_txn_count_15d_with_user_id",
            "user_amount_30d",
            "user_amount_30d_avg",
            "user_amount_15d",
            "user_amount_30d_minus_15d",
            "user_amount_avg_30d",
            "user_amount_avg_15d",
        ])
    );
    // a double column (see the note on `derived_join`)
    assert_eq!(
        column_type(&wh, &output_table(&j1), "user_amount_30d_avg"),
        arrow::datatypes::DataType::Float64
    );
    let o1 = rows_by_id(&wh, &output_table(&j1));
    assert_eq!(o1.len(), plain.len());
    let mut non_null = 0;
    for (k, r) in &o1 {
        let p = &plain[k];
        assert_eq!(r["user"], p["user"]);
        assert_eq!(r["ts"], p["ts"]);
        assert_eq!(r["user_amount_30d"], p[SUM_30D], "{k:?}");
        assert_eq!(r["user_amount_15d"], p[SUM_15D], "{k:?}");
        assert_eq!(
            r["user_amount_30d_minus_15d"],
            minus(&p[SUM_30D], &p[SUM_15D]),
            "{k:?}"
        );
        let avg = match &p[SUM_30D] {
            V::Int(s) => V::Float(*s as f64 / 30.0),
            _ => V::Null,
        };
        assert!(
            float_eq(&r["user_amount_30d_avg"], &avg),
            "{k:?}: {} vs {avg}",
            r["user_amount_30d_avg"]
        );
        non_null += !p[SUM_30D].is_null() as usize;
        // nothing supplies the external and contextual fields: NULL, and so is everything
        // derived from them (Spark's CONCAT is NULL when an argument is)
        for c in [
            "user_txn_count_30d",
            "user_txn_count_15d",
            "user_txn_count_15d_with_user_id",
            "user_amount_avg_30d",
            "user_amount_avg_15d",
        ] {
            assert_eq!(r[c], V::Null, "{c} of {k:?}");
        }
    }
    assert!(non_null > o1.len() / 2, "the GroupBy has values");

    // second run: three bootstrap parts (80% samples each)
    let diff = sample_values(&o1, 21);
    let ext = sample_values(&o1, 22);
    let ctx = sample_values(&o1, 23);
    write_boot(
        &wh,
        "data.bootstrap_diff",
        &[("user_amount_30d_minus_15d", Ty::I64)],
        &diff
            .iter()
            .map(|(k, v)| (k.clone(), vec![v.clone()]))
            .collect(),
    );
    write_boot(
        &wh,
        "data.bootstrap_external",
        &[(EXT_15D, Ty::I64), ("user", Ty::I64)],
        &ext.iter()
            .map(|(k, v)| (k.clone(), vec![v.clone(), o1[k]["user"].clone()]))
            .collect(),
    );
    write_boot(
        &wh,
        "data.bootstrap_contextual",
        &[("user_txn_count_30d", Ty::I64)],
        &ctx.iter()
            .map(|(k, v)| (k.clone(), vec![v.clone()]))
            .collect(),
    );
    let (s, e) = (left_start(), end_day());
    let mut j2 = derived_join("unit_test.derivations_join_w_bootstrap");
    j2["bootstrapParts"] = json!([
        boot_part(
            "data.bootstrap_diff",
            Some(&["request_id", "user_amount_30d_minus_15d"]),
            Some(&s),
            Some(&e)
        ),
        boot_part(
            "data.bootstrap_external",
            Some(&["request_id", EXT_15D, "user"]),
            Some(&s),
            Some(&e)
        ),
        boot_part(
            "data.bootstrap_contextual",
            Some(&["request_id", "user_txn_count_30d"]),
            Some(&s),
            Some(&e)
        ),
    ]);
    let report = run_join(&wh, &j2);
    assert_eq!(
        columns(&wh, &output_table(&j2)),
        columns(&wh, &output_table(&j1))
    );
    let o2 = rows_by_id(&wh, &output_table(&j2));
    assert_eq!(o2.len(), o1.len());
    let mut used = [0usize; 3];
    for (k, r) in &o2 {
        let b = &o1[k];
        for c in ["user", "ts", "user_amount_30d", "user_amount_15d"] {
            assert_eq!(r[c], b[c], "{c} of {k:?}");
        }
        assert!(
            float_eq(&r["user_amount_30d_avg"], &b["user_amount_30d_avg"]),
            "{k:?}"
        );
        // a bootstrapped derived value wins over the expression
        let d = diff
            .get(k)
            .cloned()
            .unwrap_or_else(|| b["user_amount_30d_minus_15d"].clone());
        assert_eq!(
            r["user_amount_30d_minus_15d"], d,
            "user_amount_30d_minus_15d of {k:?}"
        );
        // external and contextual fields only from bootstrap
        let x = ext.get(k).cloned().unwrap_or(V::Null);
        let c = ctx.get(k).cloned().unwrap_or(V::Null);
        assert_eq!(r["user_txn_count_15d"], x, "user_txn_count_15d of {k:?}");
        assert_eq!(r["user_txn_count_30d"], c, "user_txn_count_30d of {k:?}");
        let with_user = match (&x, &b["user"]) {
            (V::Int(v), V::Int(u)) => V::Str(format!("{v} {u}")),
            _ => V::Null,
        };
        assert_eq!(r["user_txn_count_15d_with_user_id"], with_user, "{k:?}");
        // mixed expressions recomputed from the bootstrapped inputs
        let a30 = ratio(&b["user_amount_30d"], &c);
        let a15 = ratio(&b["user_amount_15d"], &x);
        assert!(
            float_eq(&r["user_amount_avg_30d"], &a30),
            "avg_30d of {k:?}: {} vs {a30}",
            r["user_amount_avg_30d"]
        );
        assert!(
            float_eq(&r["user_amount_avg_15d"], &a15),
            "avg_15d of {k:?}: {} vs {a15}",
            r["user_amount_avg_15d"]
        );
        used[0] += diff.contains_key(k) as usize;
        used[1] += (!a15.is_null()) as usize;
        used[2] += (!a30.is_null()) as usize;
    }
    assert!(
        used.iter().all(|&n| n > 0 && n < o2.len()),
        "samples are partial and used: {used:?}"
    );
    // the part is still computed for every row: user_amount_30d etc. are not bootstrapped
    let prov = report.provenance.expect("provenance");
    assert_eq!(prov.bootstrap_parts.len(), 3);
    assert_eq!(prov.parts[0].covered, 0);
    assert_eq!(prov.parts[0].computed as usize, o2.len());
    assert_eq!(
        prov.columns["user_amount_30d_minus_15d"].bootstrap[0] as usize,
        diff.len()
    );
}

// ------------------------------------------------------------------------------------------
// 2. testBootstrapToDerivationsNoStar
// ------------------------------------------------------------------------------------------

/// Derivations without `*` (a rename and a difference) both bootstrapped for every row: the
/// part's derivation dependencies are covered, so the GroupBy is never computed and the
/// output is the bootstrap table — NULLs from the trusted table included.
#[test]
fn no_star_derivations_fully_bootstrapped_skip_the_group_by() {
    let db = db(12, 30);
    let (_dir, wh) = warehouse(&db);
    let mut rng = StdRng::seed_from_u64(5);
    // the bootstrap table: the left rows with random derived values
    let mut boot: BTreeMap<(String, String), Vec<V>> = BTreeMap::new();
    for (ds, rows) in &db.table("data.queries").parts {
        for r in rows {
            let mut v = || {
                if rng.random_bool(0.1) {
                    V::Null
                } else {
                    V::Int(rng.random_range(0..30000))
                }
            };
            let (a, b) = (v(), v());
            let id = match &r[1] {
                V::Str(s) => s.clone(),
                _ => unreachable!(),
            };
            boot.insert((id, ds.clone()), vec![r[0].clone(), r[2].clone(), a, b]);
        }
    }
    write_boot(
        &wh,
        "data.bootstrap_table",
        &[
            ("user", Ty::I64),
            ("ts", Ty::I64),
            ("user_amount_30d", Ty::I64),
            ("user_amount_30d_minus_15d", Ty::I64),
        ],
        &boot,
    );
    let mut j = join(
        "unit_test.derivations_join_no_star",
        vec![reference::conf::part(user_transactions(), &[], None)],
    );
    j["derivations"] = derivations(&[
        ("user_amount_30d", SUM_30D),
        (
            "user_amount_30d_minus_15d",
            &format!("{SUM_30D} - {SUM_15D}"),
        ),
    ]);
    j["bootstrapParts"] = json!([boot_part(
        "data.bootstrap_table",
        Some(&["request_id", "user_amount_30d", "user_amount_30d_minus_15d"]),
        None,
        None
    )]);
    let report = run_join(&wh, &j);
    // the GroupBy did no work: no source row read, no left row computed
    assert_eq!(
        report.events[0].1.rows, 0,
        "source rows read for a covered part"
    );
    assert_eq!(report.part_rows[0].1, 0, "left rows computed");
    let prov = report.provenance.expect("provenance");
    assert_eq!(prov.parts[0].computed, 0);
    assert_eq!(prov.parts[0].covered as usize, boot.len());
    let t = output_table(&j);
    assert_eq!(
        columns(&wh, &t),
        set(&[
            "request_id",
            "user",
            "ts",
            "user_amount_30d",
            "user_amount_30d_minus_15d"
        ])
    );
    let out = rows_by_id(&wh, &t);
    assert_eq!(out.len(), boot.len());
    let mut nulls = 0;
    for (k, b) in &boot {
        let r = &out[k];
        assert_eq!(
            [
                &r["user"],
                &r["ts"],
                &r["user_amount_30d"],
                &r["user_amount_30d_minus_15d"]
            ],
            [&b[0], &b[1], &b[2], &b[3]],
            "{k:?}"
        );
        nulls += b[2].is_null() as usize;
    }
    assert!(nulls > 0, "some trusted NULLs stay NULL");
}

/// Coverage through derivation dependencies, row by row (§4.6, §4.8): rows bootstrapped with
/// both derived columns skip the GroupBy; rows with only the rename still need it (the
/// difference depends on its columns); a second part no derivation references is skipped for
/// every row that matched some bootstrap (vacuous coverage) and computed for the others.
#[test]
fn derivation_dependencies_decide_coverage_per_row() {
    let db = db(18, 30);
    let (_dir, wh) = warehouse(&db);
    let plain = base_rows(&wh);
    let mut rng = StdRng::seed_from_u64(8);
    let (mut both, mut rename) = (BTreeMap::new(), BTreeMap::new());
    for k in plain.keys() {
        let x = rng.random::<f64>();
        let (a, b) = (
            V::Int(rng.random_range(0..30000)),
            V::Int(rng.random_range(0..30000)),
        );
        if x < 0.4 {
            both.insert(k.clone(), vec![a, b]);
        } else if x < 0.7 {
            rename.insert(k.clone(), vec![a]);
        }
    }
    write_boot(
        &wh,
        "data.boot_both",
        &[
            ("user_amount_30d", Ty::I64),
            ("user_amount_30d_minus_15d", Ty::I64),
        ],
        &both,
    );
    write_boot(
        &wh,
        "data.boot_rename",
        &[("user_amount_30d", Ty::I64)],
        &rename,
    );
    let mut j = join(
        "unit_test.derivations_partial",
        vec![
            reference::conf::part(user_transactions(), &[], None),
            reference::conf::part(user_transactions_v2(), &[], None),
        ],
    );
    j["derivations"] = derivations(&[
        ("user_amount_30d", SUM_30D),
        (
            "user_amount_30d_minus_15d",
            &format!("{SUM_30D} - {SUM_15D}"),
        ),
    ]);
    j["bootstrapParts"] = json!([
        boot_part("data.boot_both", None, None, None),
        boot_part("data.boot_rename", None, None, None),
    ]);
    let report = run_join(&wh, &j);
    let t = output_table(&j);
    assert_eq!(
        columns(&wh, &t),
        set(&[
            "request_id",
            "user",
            "ts",
            "user_amount_30d",
            "user_amount_30d_minus_15d"
        ])
    );
    let out = rows_by_id(&wh, &t);
    assert_eq!(out.len(), plain.len());
    for (k, r) in &out {
        let p = &plain[k];
        let computed = minus(&p[SUM_30D], &p[SUM_15D]);
        let (a, d) = match (both.get(k), rename.get(k)) {
            (Some(b), _) => (b[0].clone(), b[1].clone()),
            (None, Some(b)) => (b[0].clone(), computed),
            (None, None) => (p[SUM_30D].clone(), computed),
        };
        assert_eq!(r["user_amount_30d"], a, "user_amount_30d of {k:?}");
        assert_eq!(
            r["user_amount_30d_minus_15d"], d,
            "user_amount_30d_minus_15d of {k:?}"
        );
    }
    let n = out.len() as u64;
    let (nb, nr) = (both.len() as u64, rename.len() as u64);
    assert!(nb > 0 && nr > 0 && nb + nr < n);
    let prov = report.provenance.expect("provenance");
    assert_eq!(
        (prov.parts[0].covered, prov.parts[0].computed),
        (nb, n - nb),
        "user_transactions"
    );
    assert_eq!(
        (prov.parts[1].covered, prov.parts[1].computed),
        (nb + nr, n - nb - nr),
        "user_transactions_v2"
    );
    assert_eq!(report.part_rows[0].1, n - nb);
    assert_eq!(report.part_rows[1].1, n - nb - nr);
}

// ------------------------------------------------------------------------------------------
// 3. testContextual
// ------------------------------------------------------------------------------------------

/// A join without join parts over contextual `context_1`, `context_2`, bootstrapped (no
/// query) from a table holding both the keys and the `ext_contextual_*` columns. Which forms
/// survive depends on the derivations (DerivationTest `testContextual`).
#[test]
fn contextual_fields_and_derivations_without_join_parts() {
    let db = db(13, 20);
    let (_dir, wh) = warehouse(&db);
    let mut rng = StdRng::seed_from_u64(9);
    let mut boot: BTreeMap<(String, String), Vec<V>> = BTreeMap::new();
    for (ds, rows) in &db.table("data.queries").parts {
        for r in rows {
            if rng.random_bool(0.2) {
                continue; // not bootstrapped: NULL
            }
            let (c1, c2) = (
                V::Int(rng.random_range(0..30000)),
                V::Int(rng.random_range(0..30000)),
            );
            let id = match &r[1] {
                V::Str(s) => s.clone(),
                _ => unreachable!(),
            };
            boot.insert((id, ds.clone()), vec![c1.clone(), c2.clone(), c1, c2]);
        }
    }
    write_boot(
        &wh,
        "data.bootstrap_ctx",
        &[
            ("context_1", Ty::I64),
            ("context_2", Ty::I64),
            ("ext_contextual_context_1", Ty::I64),
            ("ext_contextual_context_2", Ty::I64),
        ],
        &boot,
    );
    let left_rows: usize = db.table("data.queries").parts.values().map(Vec::len).sum();
    let run_variant = |name: &str, derivs: Option<&[(&str, &str)]>| {
        let mut j = join(&format!("unit_test.contextual_{name}"), vec![]);
        j["onlineExternalParts"] = json!([contextual(&[("context_1", 4), ("context_2", 4)])]);
        j["bootstrapParts"] = json!([boot_part("data.bootstrap_ctx", None, None, None)]);
        if let Some(d) = derivs {
            j["derivations"] = derivations(d);
        }
        run_join(&wh, &j);
        let t = output_table(&j);
        let cols = columns(&wh, &t);
        let rows = rows_by_id(&wh, &t);
        assert_eq!(rows.len(), left_rows, "{name}: every left row");
        // present columns hold the bootstrap table's values (NULL where it has no row)
        let mut hits = 0;
        for (k, r) in &rows {
            let b = boot.get(k);
            for (c, i) in [
                ("context_1", 0),
                ("context_2", 1),
                ("ext_contextual_context_1", 2),
                ("ext_contextual_context_2", 3),
            ] {
                if let Some(v) = r.get(c) {
                    assert_eq!(
                        v,
                        b.map(|b| &b[i]).unwrap_or(&V::Null),
                        "{name}: {c} of {k:?}"
                    );
                    hits += b.is_some() as usize;
                }
            }
        }
        assert!(hits > 0, "{name}: values were bootstrapped");
        cols
    };
    let left = ["request_id", "user", "ts"];
    let with = |extra: &[&str]| {
        let mut s = set(&left);
        s.extend(extra.iter().map(|c| c.to_string()));
        s
    };
    // (1) no derivations: the values stay, the keys go
    assert_eq!(
        run_variant("1", None),
        with(&["ext_contextual_context_1", "ext_contextual_context_2"])
    );
    // (2) a rename to the key form and `*`: context_1 and ext_contextual_context_2
    assert_eq!(
        run_variant(
            "2",
            Some(&[("context_1", "ext_contextual_context_1"), ("*", "*")])
        ),
        with(&["context_1", "ext_contextual_context_2"])
    );
    // (3) the rename only: context_1 alone
    assert_eq!(
        run_variant("3", Some(&[("context_1", "ext_contextual_context_1")])),
        with(&["context_1"])
    );
    // (4) both forms selected explicitly
    assert_eq!(
        run_variant(
            "4",
            Some(&[
                ("context_1", "ext_contextual_context_1"),
                ("ext_contextual_context_1", "ext_contextual_context_1"),
            ])
        ),
        with(&["context_1", "ext_contextual_context_1"])
    );
}

// ------------------------------------------------------------------------------------------
// 4. External fields without bootstrap
// ------------------------------------------------------------------------------------------

/// External parts and a contextual source but no bootstrap: their value columns (and a
/// non-contextual key that is not a left column) are NULL-padded with their declared types,
/// the contextual key is dropped, the GroupBy is computed as usual (§4.9, §4.7 item 5).
#[test]
fn external_fields_without_bootstrap_are_null_columns() {
    let db = db(14, 20);
    let (_dir, wh) = warehouse(&db);
    let plain = base_rows(&wh);
    let mut j = join(
        "unit_test.externals_no_bootstrap",
        vec![reference::conf::part(user_transactions(), &[], None)],
    );
    j["onlineExternalParts"] = json!([
        payments_service(),
        external(
            "merchant_service",
            Some("risk"),
            &[("merchant", 4)],
            &[("score", 6), ("label", 7)]
        ),
        contextual(&[("user_txn_count_30d", 4)]),
    ]);
    let report = run_join(&wh, &j);
    let t = output_table(&j);
    assert_eq!(
        columns(&wh, &t),
        set(&[
            "request_id",
            "user",
            "ts",
            SUM_30D,
            SUM_15D,
            EXT_15D,
            "merchant",
            "ext_risk_merchant_service_score",
            "ext_risk_merchant_service_label",
            CTX_30D,
        ])
    );
    use arrow::datatypes::DataType;
    assert_eq!(column_type(&wh, &t, EXT_15D), DataType::Int64);
    assert_eq!(column_type(&wh, &t, "merchant"), DataType::Int64);
    assert_eq!(
        column_type(&wh, &t, "ext_risk_merchant_service_score"),
        DataType::Float64
    );
    assert!(matches!(
        column_type(&wh, &t, "ext_risk_merchant_service_label"),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    ));
    let out = rows_by_id(&wh, &t);
    assert_eq!(out.len(), plain.len());
    for (k, r) in &out {
        assert_eq!(r[SUM_30D], plain[k][SUM_30D], "{k:?}");
        assert_eq!(r[SUM_15D], plain[k][SUM_15D], "{k:?}");
        for c in [
            EXT_15D,
            "merchant",
            "ext_risk_merchant_service_score",
            "ext_risk_merchant_service_label",
            CTX_30D,
        ] {
            assert_eq!(r[c], V::Null, "{c} of {k:?}");
        }
    }
    let prov = report
        .provenance
        .expect("provenance for a join with external parts");
    assert_eq!(prov.rows as usize, out.len());
    assert_eq!(prov.parts[0].computed as usize, out.len());
    assert_eq!(prov.parts[0].covered, 0);
    for c in [
        EXT_15D,
        "merchant",
        "ext_risk_merchant_service_score",
        CTX_30D,
    ] {
        let p = &prov.columns[c];
        assert_eq!(p.null as usize, out.len(), "{c}: {p:?}");
        assert_eq!(
            p.computed + p.left + p.bootstrap.iter().sum::<u64>(),
            0,
            "{c}: {p:?}"
        );
    }
    let non_null = out.values().filter(|r| !r[SUM_30D].is_null()).count() as u64;
    assert!(non_null > 0);
    assert_eq!(prov.columns[SUM_30D].computed, non_null);
    assert_eq!(prov.columns["user"].left as usize, out.len());
}

// ------------------------------------------------------------------------------------------
// 5. Left column precedence
// ------------------------------------------------------------------------------------------

/// A contextual field named like a left column (`user`): the left's value wins over every
/// bootstrap and populates `ext_contextual_user` too; where the left is NULL the bootstrap
/// value falls through, from either form (`user` or `ext_contextual_user`), in list order
/// (§4.5, §4.7 item 1, §4.9).
#[test]
fn left_column_wins_over_bootstrap_and_null_falls_through() {
    let mut db = db(15, 30);
    let mut rng = StdRng::seed_from_u64(3);
    for rows in db.table_mut("data.queries").parts.values_mut() {
        for r in rows.iter_mut() {
            if rng.random_bool(0.3) {
                r[0] = V::Null;
            }
        }
    }
    let (_dir, wh) = warehouse(&db);
    let left: Vec<((String, String), V)> = db
        .table("data.queries")
        .parts
        .iter()
        .flat_map(|(ds, rows)| {
            rows.iter().map(move |r| {
                let id = match &r[1] {
                    V::Str(s) => s.clone(),
                    _ => unreachable!(),
                };
                ((id, ds.clone()), r[0].clone())
            })
        })
        .collect();
    // part 0 gives `user` for every other row, part 1 `ext_contextual_user` for every row
    let a: BTreeMap<_, _> = left
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 2 == 0)
        .map(|(i, (k, _))| (k.clone(), vec![V::Int(1000 + i as i64)]))
        .collect();
    let b: BTreeMap<_, _> = left
        .iter()
        .enumerate()
        .map(|(i, (k, _))| (k.clone(), vec![V::Int(5000 + i as i64)]))
        .collect();
    write_boot(&wh, "data.boot_user", &[("user", Ty::I64)], &a);
    write_boot(
        &wh,
        "data.boot_ext_user",
        &[("ext_contextual_user", Ty::I64)],
        &b,
    );
    let mut j = join("unit_test.left_precedence", vec![]);
    j["onlineExternalParts"] = json!([contextual(&[("user", 4)])]);
    j["bootstrapParts"] = json!([
        boot_part("data.boot_user", Some(&["request_id", "user"]), None, None),
        boot_part(
            "data.boot_ext_user",
            Some(&["request_id", "ext_contextual_user"]),
            None,
            None
        ),
    ]);
    let report = run_join(&wh, &j);
    let t = output_table(&j);
    assert_eq!(
        columns(&wh, &t),
        set(&["request_id", "user", "ts", "ext_contextual_user"])
    );
    let out = rows_by_id(&wh, &t);
    assert_eq!(out.len(), left.len());
    let mut from = [0u64; 3];
    for (k, l) in &left {
        let r = &out[k];
        let (want, src) = if !l.is_null() {
            (l.clone(), 0)
        } else if let Some(v) = a.get(k) {
            (v[0].clone(), 1)
        } else {
            (b[k][0].clone(), 2)
        };
        from[src] += 1;
        assert_eq!(r["user"], want, "user of {k:?} (left {l})");
        assert_eq!(
            r["ext_contextual_user"], want,
            "ext_contextual_user of {k:?} (left {l})"
        );
    }
    assert!(from.iter().all(|&n| n > 0), "every case occurs: {from:?}");
    let prov = report.provenance.expect("provenance");
    let p = &prov.columns["user"];
    assert_eq!(
        (p.left, p.bootstrap.clone(), p.null),
        (from[0], vec![from[1], from[2]], 0)
    );
}

// ------------------------------------------------------------------------------------------
// 6. Validation
// ------------------------------------------------------------------------------------------

/// The problem lines of a collected error that mention `table`.
fn lines_about<'a>(err: &'a str, table: &str) -> Vec<&'a str> {
    err.lines()
        .filter(|l| l.contains(&format!("`{table}`")) || l.contains(&format!("{table} ")))
        .collect()
}

/// Bootstrap validation (§4.4): every problem of every part — a non-field column without
/// explicit selects, a type mismatch, `schema_hash` from a table part, a missing key, a
/// missing table, reserved columns — and a reserved left column (§3.2), in one error, each
/// naming the table and column with a fix.
#[test]
fn bootstrap_problems_are_reported_together() {
    let mut db = db(16, 5);
    // a left with a reserved column
    let mut q = db.table("data.queries").clone();
    q.cols.push(("matched_hashes".into(), Ty::Str));
    for rows in q.parts.values_mut() {
        for r in rows.iter_mut() {
            r.push(V::Null);
        }
    }
    db.add("data.queries_reserved", q);
    let (_dir, wh) = warehouse(&db);
    let one = |ds: &str, vals: Vec<V>| vec![(ds.to_string(), vals)];
    let d = end_day();
    // another join's output: carries a left column `session_id`, no selects
    write_table(
        &wh,
        "data.boot_extra",
        &[
            ("request_id", Ty::Str),
            (SUM_30D, Ty::I64),
            ("session_id", Ty::Str),
        ],
        &one(&d, vec![V::s("r0"), V::Int(1), V::s("s")]),
    );
    write_table(
        &wh,
        "data.boot_type",
        &[("request_id", Ty::Str), (SUM_15D, Ty::F64)],
        &one(&d, vec![V::s("r0"), V::Float(1.5)]),
    );
    write_table(
        &wh,
        "data.boot_hash",
        &[
            ("request_id", Ty::Str),
            (SUM_30D, Ty::I64),
            ("schema_hash", Ty::Str),
        ],
        &one(&d, vec![V::s("r0"), V::Int(1), V::s("h")]),
    );
    write_table(
        &wh,
        "data.boot_nokey",
        &[("rid", Ty::Str), (SUM_30D, Ty::I64)],
        &one(&d, vec![V::s("r0"), V::Int(1)]),
    );
    write_table(
        &wh,
        "data.boot_reserved",
        &[
            ("request_id", Ty::Str),
            (SUM_30D, Ty::I64),
            ("bootstrap_hash", Ty::Str),
            ("matched_hashes", Ty::Str),
        ],
        &one(&d, vec![V::s("r0"), V::Int(1), V::s("x"), V::s("y")]),
    );
    let mut j = reference::conf::join(
        "unit_test.bootstrap_validation",
        reference::conf::events_left(
            "data.queries_reserved",
            &["user", "request_id", "matched_hashes"],
        ),
        vec![reference::conf::part(user_transactions(), &[], None)],
    );
    j["rowIds"] = json!(["request_id"]);
    j["bootstrapParts"] = json!([
        boot_part("data.boot_extra", None, None, None),
        boot_part("data.boot_type", Some(&["request_id", SUM_15D]), None, None),
        boot_part(
            "data.boot_hash",
            Some(&["request_id", SUM_30D, "schema_hash"]),
            None,
            None
        ),
        boot_part("data.boot_nokey", Some(&[SUM_30D]), None, None),
        boot_part("data.boot_missing", None, None, None),
        boot_part("data.boot_reserved", None, None, None),
    ]);
    let err = error_of(&wh, &j);
    let fail = |what: &str| -> String { format!("{what}\nfull error:\n{err}") };
    assert!(
        err.contains("unit_test.bootstrap_validation"),
        "{}",
        fail("names the join")
    );
    // (table, column, extra words the line must contain)
    let expect: &[(&str, &str, &[&str])] = &[
        (
            "data.boot_extra",
            "session_id",
            &["select the feature columns explicitly"],
        ),
        ("data.boot_type", SUM_15D, &[]),
        ("data.boot_hash", "schema_hash", &["reserved"]),
        ("data.boot_nokey", "request_id", &[]),
        ("data.boot_missing", "data.boot_missing", &[]),
        ("data.boot_reserved", "bootstrap_hash", &["reserved"]),
        ("data.boot_reserved", "matched_hashes", &["reserved"]),
        ("data.queries_reserved", "matched_hashes", &["reserved"]),
    ];
    for (table, col, words) in expect {
        let lines = lines_about(&err, table);
        let line = lines
            .iter()
            .find(|l| l.contains(col) && words.iter().all(|w| l.contains(w)))
            .unwrap_or_else(|| {
                panic!(
                    "{}",
                    fail(&format!("no problem about {table} / {col} with {words:?}"))
                )
            });
        assert!(
            line.to_lowercase().contains("fix"),
            "{}",
            fail(&format!("no fix in: {line}"))
        );
    }
    // the type mismatch names both types
    let line = lines_about(&err, "data.boot_type")
        .into_iter()
        .find(|l| l.contains(SUM_15D))
        .unwrap()
        .to_lowercase();
    assert!(
        (line.contains("float64") || line.contains("double"))
            && (line.contains("int64") || line.contains("bigint") || line.contains("long")),
        "{}",
        fail(&format!("both types named: {line}"))
    );
    // nothing was written
    assert!(
        !wh.exists(&tn(&output_table(&j))),
        "no output after a validation failure"
    );

    // a join with bootstrap parts but neither rowIds nor keyColumns
    let mut j = join(
        "unit_test.bootstrap_no_key",
        vec![reference::conf::part(user_transactions(), &[], None)],
    );
    j.as_object_mut().unwrap().remove("rowIds");
    write_table(
        &wh,
        "data.boot_ok",
        &[("request_id", Ty::Str), (SUM_30D, Ty::I64)],
        &one(&d, vec![V::s("r0"), V::Int(1)]),
    );
    j["bootstrapParts"] = json!([boot_part("data.boot_ok", None, None, None)]);
    let err = error_of(&wh, &j);
    assert!(
        err.contains("bootstrapParts[0]") && err.contains("rowIds") && err.contains("keyColumns"),
        "a missing bootstrap key names the part and both ways to set it: {err}"
    );
}

// ------------------------------------------------------------------------------------------
// 7. keyColumns
// ------------------------------------------------------------------------------------------

/// A bootstrap part keyed on `user` (keyColumns, no rowIds on the join): every left row of a
/// `(user, ds)` gets that row's value; users without a bootstrap row are computed; duplicate
/// rows for one key resolve to one of them, the same whatever order they are stored in.
#[test]
fn key_columns_match_every_row_of_the_key_and_duplicates_resolve_deterministically() {
    let db = db(17, 40);
    let run_with = |reverse: bool| -> (Rows, Rows) {
        let (_dir, wh) = warehouse(&db);
        let plain = base_rows(&wh);
        let mut rows: Vec<(String, Vec<V>)> = Vec::new();
        for d in 0..5 {
            let ds = day(bootfix::DAYS - 5 + d);
            for u in 0..20i64 {
                let v = 100_000 * (d + 1) + u;
                let mut group = vec![(ds.clone(), vec![V::Int(u), V::Int(v)])];
                if u < 6 {
                    // a duplicate key with another value
                    group.push((ds.clone(), vec![V::Int(u), V::Int(v + 50_000)]));
                }
                if reverse {
                    group.reverse();
                }
                rows.extend(group);
            }
        }
        if reverse {
            rows.reverse();
        }
        write_table(
            &wh,
            "data.boot_by_user",
            &[("user", Ty::I64), (SUM_30D, Ty::I64)],
            &rows,
        );
        let mut j = join(
            "unit_test.bootstrap_by_user",
            vec![reference::conf::part(user_transactions(), &[], None)],
        );
        j.as_object_mut().unwrap().remove("rowIds");
        let mut p = boot_part("data.boot_by_user", Some(&["user", SUM_30D]), None, None);
        p["keyColumns"] = json!(["user"]);
        j["bootstrapParts"] = json!([p]);
        run_join(&wh, &j);
        (rows_by_id(&wh, &output_table(&j)), plain)
    };
    let (out, plain) = run_with(false);
    assert_eq!(out.len(), plain.len());
    let mut per_key: BTreeMap<(i64, String), BTreeSet<String>> = BTreeMap::new();
    let mut counts = [0; 3];
    for ((id, ds), r) in &out {
        let p = &plain[&(id.clone(), ds.clone())];
        assert_eq!(r[SUM_15D], p[SUM_15D], "15d is computed for {id}");
        let V::Int(u) = r["user"] else { panic!("user") };
        let d = (bootfix::DAYS - 5..bootfix::DAYS)
            .position(|i| day(i) == *ds)
            .unwrap() as i64;
        let v = 100_000 * (d + 1) + u;
        if u >= 20 {
            assert_eq!(
                r[SUM_30D], p[SUM_30D],
                "user {u} has no bootstrap row: computed"
            );
            counts[0] += 1;
        } else if u >= 6 {
            assert_eq!(r[SUM_30D], V::Int(v), "user {u} on {ds}");
            counts[1] += 1;
        } else {
            assert!(
                r[SUM_30D] == V::Int(v) || r[SUM_30D] == V::Int(v + 50_000),
                "user {u} on {ds}: {}",
                r[SUM_30D]
            );
            per_key
                .entry((u, ds.clone()))
                .or_default()
                .insert(format!("{}", r[SUM_30D]));
            counts[2] += 1;
        }
    }
    assert!(counts.iter().all(|&n| n > 0), "{counts:?}");
    // every row of a duplicated key got the same one value
    assert!(per_key.values().all(|s| s.len() == 1), "{per_key:?}");
    let shared = out
        .values()
        .filter(|r| matches!(r["user"], V::Int(u) if u < 6))
        .count();
    assert!(
        shared > per_key.len(),
        "some duplicated keys have several left rows"
    );
    // a fresh warehouse with the rows stored in the other order: the same output
    let (again, _) = run_with(true);
    assert_eq!(
        again, out,
        "duplicates resolve to the same row whatever the storage order"
    );
}
