//! Log bootstrap (chronon-semantics §4.2–§4.10, §5.6; §10.1 LogBootstrapTest and DerivationTest
//! testLogging / testLoggingNonStar). The log flattener does not exist yet, so every test writes
//! a flattened log table itself in Chronon's layout — `schema_hash, ts, <keys…>, <values…>`
//! partitioned by `ds`, table properties `chronon_log_table` and `schema_hash_<h>` holding each
//! logging schema — and checks that a log row covers a join part only when its own schema
//! logged every field of the part (name and type), that logged values (even where the part is
//! computed) win over computed ones but lose to earlier bootstrap parts and the left, how
//! derivations decide coverage, the failures and fallbacks of §4.2/§4.4, and that an
//! incremental runner reacts to new, grown and shrunk log partitions exactly as a fresh
//! backfill would.
//!
//! Logged feature values are the recomputed ones plus [`PERTURB`], so a value in the output
//! tells where it came from.

use crate::bootfix;
use crate::reference;

use std::collections::{BTreeMap, BTreeSet};

use arrow::datatypes::DataType;
use bootfix::*;
use reference::conf::part;
use reference::data::read_table;
use reference::harness::{backfill, options, outputs_equal, warehouse};
use reference::{output_table, Ty, V};
use serde_json::{json, Value as J};
use weft::join::bootstrap::log_schema::LoggingSchema;
use weft::warehouse::{TableName, Warehouse};

/// Added to recomputed values to make a logged value.
const PERTURB: i64 = 1_000_000;
const V2_SUM: &str = "unit_test_user_transactions_v2_amount_dollars_sum";
const CTX_ID: &str = "ext_contextual_request_id";
const CTX_ID2: &str = "ext_contextual_request_id_2";
/// The join the logs were written by (V1 and V2 share the name, as in LogBootstrapTest).
const LOGGED_JOIN: &str = "unit_test.user_transaction_features";
/// `bootstrap_from_log`'s table: `<ns>.<join cleanName>_logged`.
const LOG: &str = "test.unit_test_user_transaction_features_logged";

type Rows = BTreeMap<(String, String), BTreeMap<String, V>>;
type Row = BTreeMap<String, V>;

// ------------------------------------------------------------------------------------------
// Helpers
// ------------------------------------------------------------------------------------------

/// The contextual external source with string fields `fields`.
fn contextual(fields: &[&str]) -> J {
    let params: Vec<J> = fields
        .iter()
        .map(|f| json!({"name": f, "dataType": {"kind": 7}}))
        .collect();
    json!([{"source": {
        "metadata": {"name": "contextual", "team": "unit_test"},
        "keySchema": {"kind": 13, "params": params, "name": "contextual_keys"},
        "valueSchema": {"kind": 13, "params": params, "name": "contextual_values"}
    }}])
}

/// A join over the queries with `parts` and a contextual source with `ctx` fields.
fn cjoin(name: &str, parts: Vec<J>, ctx: &[&str]) -> J {
    let mut j = join(name, parts);
    if !ctx.is_empty() {
        j["onlineExternalParts"] = contextual(ctx);
    }
    j
}

fn ut() -> J {
    part(user_transactions(), &[], None)
}

fn ut_v2() -> J {
    part(user_transactions_v2(), &[], None)
}

/// The log bootstrap part `bootstrap_from_log` appends: just the table.
fn log_part(table: &str) -> J {
    json!({ "table": table })
}

fn with_boot(mut j: J, parts: Vec<J>) -> J {
    j["bootstrapParts"] = J::Array(parts);
    j
}

fn with_derivations(mut j: J, ds: &[(&str, &str)]) -> J {
    j["derivations"] = J::Array(
        ds.iter()
            .map(|(n, e)| json!({"name": n, "expression": e}))
            .collect(),
    );
    j
}

fn i64t() -> DataType {
    DataType::Int64
}

fn strt() -> DataType {
    DataType::Utf8
}

/// A logging schema of [`LOGGED_JOIN`]: key fields (`user` is a long, the rest strings) and
/// value fields with their types.
fn schema(keys: &[&str], values: &[(&str, DataType)]) -> LoggingSchema {
    LoggingSchema {
        join_name: LOGGED_JOIN.into(),
        keys: keys
            .iter()
            .map(|k| (k.to_string(), if *k == "user" { i64t() } else { strt() }))
            .collect(),
        values: values
            .iter()
            .map(|(n, t)| (n.to_string(), t.clone()))
            .collect(),
    }
}

/// V1's logging schema: keys user, request_id, request_id_2; values both sums and the
/// contextual values.
fn v1_schema() -> LoggingSchema {
    schema(
        &["user", "request_id", "request_id_2"],
        &[
            (SUM_30D, i64t()),
            (SUM_15D, i64t()),
            (CTX_ID, strt()),
            (CTX_ID2, strt()),
        ],
    )
}

/// The columns of a V1 log table (flattened layout; the contextual fields only as keys).
fn v1_log_cols() -> Vec<(&'static str, Ty)> {
    vec![
        ("schema_hash", Ty::Str),
        ("ts", Ty::I64),
        ("user", Ty::I64),
        ("request_id", Ty::Str),
        ("request_id_2", Ty::Str),
        (SUM_30D, Ty::I64),
        (SUM_15D, Ty::I64),
    ]
}

/// Writes (or re-lands the partitions of) a flattened log table: rows are `(ds, column →
/// value)` (missing columns NULL); the table gets the log-table properties and a
/// `schema_hash_<h>` property per schema (merged into the existing ones, as the flattener's
/// properties are cumulative).
fn write_log(
    wh: &Warehouse,
    table: &str,
    cols: &[(&str, Ty)],
    rows: &[(String, Row)],
    schemas: &[&LoggingSchema],
) {
    let rows: Vec<(String, Vec<V>)> = rows
        .iter()
        .map(|(ds, r)| {
            let cells = cols
                .iter()
                .map(|(c, _)| r.get(*c).cloned().unwrap_or(V::Null))
                .collect();
            (ds.clone(), cells)
        })
        .collect();
    write_table(wh, table, cols, &rows);
    let mut props = BTreeMap::new();
    props.insert("chronon_log_table".to_string(), "true".to_string());
    props.insert("chronon_generated".to_string(), "true".to_string());
    props.insert("chronon_table_type".to_string(), "logged".to_string());
    for s in schemas {
        props.insert(format!("schema_hash_{}", s.hash()), s.to_json());
    }
    wh.set_properties(&TableName::parse(table).unwrap(), &props)
        .expect("setting log table properties");
}

/// A log row for output row `r` of a join without bootstrap: the keys, `request_id_2 =
/// request_id + "_2"`, and the sums perturbed.
fn logged(r: &Row, hash: Option<&LoggingSchema>) -> Row {
    let mut l = Row::new();
    l.insert(
        "schema_hash".into(),
        hash.map_or(V::Null, |h| V::s(&h.hash())),
    );
    for c in ["ts", "user", "request_id"] {
        l.insert(c.into(), r[c].clone());
    }
    let V::Str(id) = &r["request_id"] else {
        panic!("request id")
    };
    l.insert("request_id_2".into(), V::s(&format!("{id}_2")));
    for c in [SUM_30D, SUM_15D] {
        l.insert(c.into(), plus(&r[c], PERTURB));
    }
    l
}

fn plus(v: &V, d: i64) -> V {
    match v {
        V::Int(i) => V::Int(i + d),
        other => other.clone(),
    }
}

/// The rows of a day, in request id order.
fn day_rows(rows: &Rows, ds: &str) -> Vec<((String, String), Row)> {
    rows.iter()
        .filter(|((_, d), _)| d == ds)
        .map(|(k, r)| (k.clone(), r.clone()))
        .collect()
}

/// One bootstrap source of a left row, in priority order: the fields it provides for
/// coverage and the values it carries.
struct Src<'a> {
    provided: Vec<&'a str>,
    values: &'a Row,
}

/// The expected output of `cols` for a row: per column the first non-NULL bootstrap value, else
/// the computed one (`base`) unless the part (`part_fields`) is covered by the union of the
/// sources' fields, in which case NULL. Returns whether the part is covered.
fn expect(base: &Row, srcs: &[Src], part_fields: &[&str], cols: &[&str]) -> (bool, Row) {
    let provided: BTreeSet<&str> = srcs
        .iter()
        .flat_map(|s| s.provided.iter().copied())
        .collect();
    let covered = !srcs.is_empty() && part_fields.iter().all(|f| provided.contains(f));
    let mut out = Row::new();
    for c in cols {
        let from_boot = srcs
            .iter()
            .find_map(|s| s.values.get(*c).filter(|v| !v.is_null()).cloned());
        let v = match from_boot {
            Some(v) => v,
            None if covered => V::Null,
            None => base[*c].clone(),
        };
        out.insert(c.to_string(), v);
    }
    (covered, out)
}

fn run_err(wh: &Warehouse, j: &J) -> String {
    match backfill(wh, j, &options(&run())) {
        Ok(_) => panic!("the backfill of {} should fail", output_table(j)),
        Err(e) => e,
    }
}

fn columns(wh: &Warehouse, table: &str) -> Vec<String> {
    let a = read_table(wh, table);
    let (_, (cols, _)) = a.parts.iter().next().expect("an output partition");
    cols.clone()
}

// ------------------------------------------------------------------------------------------
// 1. LogBootstrapTest
// ------------------------------------------------------------------------------------------

/// LogBootstrapTest: V1 (user_transactions + contextual request_id, request_id_2) logged its
/// responses for most rows of the last day; V2 (V1 + user_transactions_v2) bootstraps from that
/// log. Logged rows keep the logged 30d/15d values and user_transactions is not computed for
/// them; v2 is computed for every row (not in the logged schema); the contextual values come
/// from the left (request_id) and from the log's key column (request_id_2). Rows without a
/// schema hash, with a NULL key, or matching no left row are not used.
#[test]
fn log_of_v1_bootstraps_v2() {
    let db = db(21, 40);
    let (_dir, wh) = warehouse(&db);
    let ctx = ["request_id", "request_id_2"];
    // what the online service would have served, and V2 computed from scratch
    let v1 = cjoin("unit_test.user_transaction_features.v1", vec![ut()], &ctx);
    run_join(&wh, &v1);
    let v1_rows = rows_by_id(&wh, &output_table(&v1));
    let v2_base = cjoin(
        "unit_test.user_transaction_features.v2_base",
        vec![ut(), ut_v2()],
        &ctx,
    );
    run_join(&wh, &v2_base);
    let base = rows_by_id(&wh, &output_table(&v2_base));
    assert_eq!(base.len(), 200);
    for (k, r) in &v1_rows {
        assert_eq!(r[SUM_30D], base[k][SUM_30D]);
    }

    // the log of the last day: every row but every fifth
    let h = v1_schema();
    let end = end_day();
    let rows = day_rows(&v1_rows, &end);
    let mut log: BTreeMap<(String, String), Row> = BTreeMap::new();
    let unlogged_users: BTreeSet<String> = rows
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 5 == 4)
        .map(|(_, (_, r))| r["user"].to_string())
        .collect();
    let mut null_30d = None;
    for (i, (k, r)) in rows.iter().enumerate() {
        if i % 5 == 4 {
            continue;
        }
        let mut l = logged(r, Some(&h));
        // the left's own columns win over logged ones
        l.insert("user".into(), plus(&r["user"], 1000));
        // a logged NULL is still covered (no row with the same user and day is computed, so
        // not even Chronon's part-table join could fill it)
        if null_30d.is_none() && !unlogged_users.contains(&r["user"].to_string()) {
            l.insert(SUM_30D.into(), V::Null);
            null_30d = Some(k.clone());
        }
        log.insert(k.clone(), l);
    }
    let null_30d = null_30d.expect("a user only seen on logged rows");
    let mut written: Vec<(String, Row)> = log
        .iter()
        .map(|((_, d), r)| (d.clone(), r.clone()))
        .collect();
    // unusable rows: a legacy row without a schema hash for an unlogged request (its values
    // must not be used), a row with a NULL row id, a row of a request the left does not have
    let (skipped_k, skipped_r) = &rows[4];
    let mut legacy = logged(skipped_r, None);
    legacy.insert(SUM_30D.into(), V::Int(-1));
    written.push((end.clone(), legacy));
    let mut no_id = logged(&rows[0].1, Some(&h));
    no_id.insert("request_id".into(), V::Null);
    written.push((end.clone(), no_id));
    let mut orphan = logged(&rows[0].1, Some(&h));
    orphan.insert("request_id".into(), V::s("not_a_request"));
    written.push((end.clone(), orphan));
    // a request of an earlier day logged under the last day's ds: matched on (request_id, ds),
    // so it reaches nothing
    let (other_k, other_r) = day_rows(&v1_rows, &day(DAYS - 2)).remove(0);
    let mut other = logged(&other_r, Some(&h));
    other.insert(SUM_30D.into(), V::Int(-2));
    written.push((end.clone(), other));
    write_log(&wh, LOG, &v1_log_cols(), &written, &[&h]);

    let v2 = with_boot(
        cjoin(LOGGED_JOIN, vec![ut(), ut_v2()], &ctx),
        vec![log_part(LOG)],
    );
    let report = run_join(&wh, &v2);
    let out = rows_by_id(&wh, &output_table(&v2));
    assert_eq!(out.len(), base.len());
    let cols = columns(&wh, &output_table(&v2));
    assert_eq!(
        cols,
        vec![
            "user",
            "request_id",
            "ts",
            SUM_30D,
            SUM_15D,
            V2_SUM,
            CTX_ID,
            CTX_ID2
        ],
        "the contextual key request_id_2 is not a left column: dropped"
    );

    let n_logged = log.len() as u64;
    assert!(n_logged >= 25 && n_logged < rows.len() as u64);
    for (k, row) in &out {
        let b = &base[k];
        assert_eq!(
            row["user"], b["user"],
            "left user wins over the logged one: {k:?}"
        );
        assert_eq!(row["ts"], b["ts"]);
        assert_eq!(
            row[V2_SUM], b[V2_SUM],
            "v2 is never logged, always computed: {k:?}"
        );
        assert_eq!(
            row[CTX_ID], b["request_id"],
            "contextual request_id = left request_id"
        );
        match log.get(k) {
            Some(l) => {
                assert_eq!(row[SUM_30D], l[SUM_30D], "logged 30d of {k:?}");
                assert_eq!(row[SUM_15D], l[SUM_15D], "logged 15d of {k:?}");
                assert_eq!(
                    row[CTX_ID2], l["request_id_2"],
                    "logged request_id_2 of {k:?}"
                );
            }
            None => {
                assert_eq!(row[SUM_30D], b[SUM_30D], "computed 30d of {k:?}");
                assert_eq!(row[SUM_15D], b[SUM_15D], "computed 15d of {k:?}");
                assert_eq!(row[CTX_ID2], V::Null, "no source for request_id_2: {k:?}");
            }
        }
    }
    assert_eq!(out[&null_30d][SUM_30D], V::Null, "a logged NULL stays NULL");
    assert_eq!(
        out[skipped_k][SUM_30D], base[skipped_k][SUM_30D],
        "a row without schema hash is not used"
    );
    assert_eq!(
        out[&other_k][SUM_30D], base[&other_k][SUM_30D],
        "the ds must match too"
    );

    // coverage: user_transactions skipped exactly for logged rows, v2 computed everywhere
    let prov = report.provenance.expect("provenance");
    assert_eq!(prov.bootstrap_parts, vec![format!("{LOG} (log)")]);
    assert_eq!(prov.rows, 200);
    assert_eq!(prov.parts[0].part, "unit_test_user_transactions");
    assert_eq!(
        (prov.parts[0].covered, prov.parts[0].computed),
        (n_logged, 200 - n_logged)
    );
    assert_eq!(prov.parts[1].part, "unit_test_user_transactions_v2");
    assert_eq!((prov.parts[1].covered, prov.parts[1].computed), (0, 200));
    assert_eq!(prov.columns[SUM_30D].bootstrap, vec![n_logged - 1]);
    assert_eq!(prov.columns[SUM_15D].bootstrap, vec![n_logged]);
    assert_eq!(prov.columns[CTX_ID2].bootstrap, vec![n_logged]);
    assert_eq!(prov.columns[CTX_ID2].null, 200 - n_logged);
    assert_eq!(prov.columns[V2_SUM].bootstrap, vec![0]);
    assert_eq!(
        report.part_rows[0].1,
        200 - n_logged,
        "{:?}",
        report.part_rows
    );
    assert_eq!(report.part_rows[1].1, 200);
    // the log table's use
    assert_eq!(report.bootstrap.len(), 1);
    let (t, is_log, st) = &report.bootstrap[0];
    assert_eq!((t.as_str(), *is_log), (LOG, true));
    assert_eq!((st.rows, st.null_keys, st.null_hash), (n_logged + 4, 1, 1));
}

// ------------------------------------------------------------------------------------------
// 2. Schema evolution
// ------------------------------------------------------------------------------------------

/// Several schema hashes in one `ds` (§5.6): rows of an older schema that lacked the 15d
/// feature do not cover user_transactions (computed; the logged 30d still wins, 15d is
/// computed); rows of the current schema do; rows whose schema logged 15d as a double do not
/// cover it either (coverage compares name and type), though the value in the (long) column is
/// still used. A feature the join no longer has stays a log column and is ignored. Two log rows
/// for one request: one of them is used, whole (its values and its schema's coverage). A log
/// table whose 15d column is a double does not cover any row.
#[test]
fn schema_evolution_coverage_follows_each_rows_schema() {
    let db = db(22, 30);
    let (_dir, wh) = warehouse(&db);
    let ctx = ["request_id", "request_id_2"];
    let base_j = cjoin("unit_test.user_transaction_features.base", vec![ut()], &ctx);
    run_join(&wh, &base_j);
    let base = rows_by_id(&wh, &output_table(&base_j));
    let keys = ["user", "request_id", "request_id_2"];
    let removed = "unit_test_user_transactions_amount_dollars_max";
    let old = schema(
        &keys,
        &[
            (SUM_30D, i64t()),
            (removed, i64t()),
            (CTX_ID, strt()),
            (CTX_ID2, strt()),
        ],
    );
    let new = v1_schema();
    let doubled = schema(
        &keys,
        &[
            (SUM_30D, i64t()),
            (SUM_15D, DataType::Float64),
            (CTX_ID, strt()),
            (CTX_ID2, strt()),
        ],
    );
    assert!(old.hash() != new.hash() && new.hash() != doubled.hash());
    let mut cols = v1_log_cols();
    cols.push((removed, Ty::I64));
    // two days logged; each day mixes the schemas
    let mut log: BTreeMap<(String, String), (usize, Row)> = BTreeMap::new();
    for d in [day(DAYS - 2), end_day()] {
        for (i, (k, r)) in day_rows(&base, &d).into_iter().enumerate() {
            let which = i % 3;
            let s = [&old, &new, &doubled][which];
            let mut l = logged(&r, Some(s));
            if which == 0 {
                // the flattener writes NULL for a column the row's schema does not have
                l.insert(SUM_15D.into(), V::Null);
                l.insert(removed.into(), V::Int(5));
            }
            log.insert(k, (which, l));
        }
    }
    let mut written: Vec<(String, Row)> = log
        .iter()
        .map(|((_, d), (_, r))| (d.clone(), r.clone()))
        .collect();
    // a second row for a current-schema request, of the old schema, with other values
    let (dup_k, (_, dup_new)) = log
        .iter()
        .find(|(_, (w, _))| *w == 1)
        .map(|(k, v)| (k.clone(), v.clone()))
        .unwrap();
    let mut dup_old = logged(&base[&dup_k], Some(&old));
    dup_old.insert(SUM_30D.into(), plus(&base[&dup_k][SUM_30D], 3 * PERTURB));
    dup_old.insert(SUM_15D.into(), V::Null);
    written.push((dup_k.1.clone(), dup_old.clone()));
    write_log(&wh, LOG, &cols, &written, &[&old, &new, &doubled]);
    let j = with_boot(cjoin(LOGGED_JOIN, vec![ut()], &ctx), vec![log_part(LOG)]);
    let report = run_join(&wh, &j);
    let out = rows_by_id(&wh, &output_table(&j));
    assert_eq!(out.len(), base.len());
    assert!(!columns(&wh, &output_table(&j)).contains(&removed.to_string()));
    // whichever duplicate was kept, it is used whole
    if out[&dup_k][SUM_30D] == dup_old[SUM_30D] {
        log.insert(dup_k.clone(), (0, dup_old.clone()));
    } else {
        assert_eq!(out[&dup_k][SUM_30D], dup_new[SUM_30D]);
    }
    let mut counts = [0u64; 3];
    for (k, row) in &out {
        let b = &base[k];
        match log.get(k) {
            None => {
                assert_eq!(row[SUM_30D], b[SUM_30D]);
                assert_eq!(row[SUM_15D], b[SUM_15D]);
            }
            Some((which, l)) => {
                counts[*which] += 1;
                assert_eq!(
                    row[SUM_30D], l[SUM_30D],
                    "logged 30d, schema {which}, {k:?}"
                );
                let want15 = if *which == 0 {
                    &b[SUM_15D]
                } else {
                    &l[SUM_15D]
                };
                assert_eq!(&row[SUM_15D], want15, "15d, schema {which}, {k:?}");
            }
        }
    }
    assert!(counts.iter().all(|&c| c > 3), "{counts:?}");
    let prov = report.provenance.expect("provenance");
    assert_eq!(
        prov.parts[0].covered, counts[1],
        "only current-schema rows are covered"
    );
    assert_eq!(prov.parts[0].computed, 150 - counts[1]);
    assert_eq!(
        prov.columns[SUM_30D].bootstrap,
        vec![counts.iter().sum::<u64>()]
    );
    assert_eq!(prov.columns[SUM_15D].bootstrap, vec![counts[1] + counts[2]]);
    assert_eq!(report.bootstrap[0].2.rows, written.len() as u64);

    // a log whose 15d column is a double: nothing is covered, its 15d values are not used
    // (weft keeps the join's column type; the logged 30d still is)
    let dlog = "test.doubled_logged";
    let mut cols = v1_log_cols();
    cols[6].1 = Ty::F64;
    let rows: Vec<(String, Row)> = day_rows(&base, &end_day())
        .into_iter()
        .map(|((_, d), r)| {
            let mut l = logged(&r, Some(&doubled));
            l.insert(SUM_15D.into(), V::Float(0.5));
            (d, l)
        })
        .collect();
    write_log(&wh, dlog, &cols, &rows, &[&doubled]);
    let j = with_boot(
        cjoin(
            "unit_test.user_transaction_features.doubled",
            vec![ut()],
            &ctx,
        ),
        vec![log_part(dlog)],
    );
    let report = run_join(&wh, &j);
    let out = rows_by_id(&wh, &output_table(&j));
    for (_, l) in &rows {
        let k = (
            match &l["request_id"] {
                V::Str(s) => s.clone(),
                _ => unreachable!(),
            },
            end_day(),
        );
        assert_eq!(out[&k][SUM_30D], l[SUM_30D]);
        assert_eq!(out[&k][SUM_15D], base[&k][SUM_15D]);
    }
    let prov = report.provenance.expect("provenance");
    assert_eq!((prov.parts[0].covered, prov.parts[0].computed), (0, 150));
    assert_eq!(prov.columns[SUM_30D].bootstrap, vec![rows.len() as u64]);
}

// ------------------------------------------------------------------------------------------
// 3. Priority
// ------------------------------------------------------------------------------------------

/// ODM scenario H: a one-off backfill table listed before the log overrides logged values for
/// a date range (startPartition/endPartition on the table part). Per column: the table's
/// non-NULL value, else the log's, else computed — unless the rows' sources together cover
/// user_transactions, where a NULL stays NULL (the table is trusted). The table's rows outside
/// its range are not used.
#[test]
fn table_before_log_wins_and_nulls_fall_through() {
    let db = db(23, 30);
    let (_dir, wh) = warehouse(&db);
    let ctx = ["request_id", "request_id_2"];
    let base_j = cjoin("unit_test.user_transaction_features.base", vec![ut()], &ctx);
    run_join(&wh, &base_j);
    let base = rows_by_id(&wh, &output_table(&base_j));
    let h = v1_schema();
    // the log: the last two days, a logged NULL 30d on every 7th row
    let mut log: BTreeMap<(String, String), Row> = BTreeMap::new();
    for d in [day(DAYS - 2), end_day()] {
        for (i, (k, r)) in day_rows(&base, &d).into_iter().enumerate() {
            let mut l = logged(&r, Some(&h));
            if i % 7 == 3 {
                l.insert(SUM_30D.into(), V::Null);
            }
            log.insert(k, l);
        }
    }
    let written: Vec<(String, Row)> = log
        .iter()
        .map(|((_, d), r)| (d.clone(), r.clone()))
        .collect();
    write_log(&wh, LOG, &v1_log_cols(), &written, &[&h]);
    // the fix: rows of four days (only two in its range), 4 of 5 rows, some NULLs
    let (lo, hi) = (day(DAYS - 3), day(DAYS - 2));
    let mut fix: BTreeMap<(String, String), Row> = BTreeMap::new();
    for d in [day(DAYS - 4), lo.clone(), hi.clone(), end_day()] {
        for (i, (k, r)) in day_rows(&base, &d).into_iter().enumerate() {
            if i % 5 == 0 {
                continue;
            }
            let mut f = Row::new();
            f.insert("request_id".into(), r["request_id"].clone());
            for c in [SUM_30D, SUM_15D] {
                f.insert(c.into(), plus(&r[c], 2 * PERTURB));
            }
            match i % 4 {
                1 => {
                    f.insert(SUM_30D.into(), V::Null);
                }
                2 => {
                    f.insert(SUM_15D.into(), V::Null);
                }
                _ => {}
            }
            fix.insert(k, f);
        }
    }
    let fix_rows: Vec<(String, Vec<V>)> = fix
        .iter()
        .map(|((_, d), f)| {
            (
                d.clone(),
                vec![
                    f["request_id"].clone(),
                    f[SUM_30D].clone(),
                    f[SUM_15D].clone(),
                ],
            )
        })
        .collect();
    write_table(
        &wh,
        "data.fix",
        &[
            ("request_id", Ty::Str),
            (SUM_30D, Ty::I64),
            (SUM_15D, Ty::I64),
        ],
        &fix_rows,
    );

    let j = with_boot(
        cjoin(LOGGED_JOIN, vec![ut()], &ctx),
        vec![
            boot_part(
                "data.fix",
                Some(&["request_id", SUM_30D, SUM_15D]),
                Some(&lo),
                Some(&hi),
            ),
            log_part(LOG),
        ],
    );
    let report = run_join(&wh, &j);
    let out = rows_by_id(&wh, &output_table(&j));
    assert_eq!(out.len(), base.len());
    let both = [SUM_30D, SUM_15D];
    let (mut covered, mut from) = (0u64, [[0u64; 2]; 2]);
    let mut seen = BTreeSet::new();
    for (k, row) in &out {
        let mut srcs = Vec::new();
        let in_range = k.1 >= lo && k.1 <= hi;
        if let Some(f) = fix.get(k).filter(|_| in_range) {
            srcs.push(Src {
                provided: both.to_vec(),
                values: f,
            });
        }
        if let Some(l) = log.get(k) {
            srcs.push(Src {
                provided: both.to_vec(),
                values: l,
            });
        }
        let (cov, want) = expect(&base[k], &srcs, &both, &both);
        covered += cov as u64;
        for (ci, c) in both.iter().enumerate() {
            assert_eq!(row[*c], want[*c], "{c} of {k:?} (sources: {})", srcs.len());
            for (si, s) in srcs.iter().enumerate() {
                if !s.values[*c].is_null() {
                    let p = if srcs.len() == 2 {
                        si
                    } else if in_range && fix.contains_key(k) {
                        0
                    } else {
                        1
                    };
                    from[p][ci] += 1;
                    break;
                }
            }
        }
        // the interesting cases all occur
        let fv = fix.get(k).filter(|_| in_range);
        let lv = log.get(k);
        seen.insert(match (fv, lv) {
            (Some(f), Some(_)) if f[SUM_30D].is_null() => "fix NULL → log",
            (Some(_), Some(_)) => "fix over log",
            (Some(f), None) if f[SUM_30D].is_null() => "fix NULL trusted",
            (Some(_), None) => "fix only",
            (None, Some(_)) => "log only",
            (None, None) if fix.contains_key(k) => "fix out of range",
            (None, None) => "computed",
        });
        if let (Some(f), None) = (fv, lv) {
            if f[SUM_30D].is_null() {
                assert_eq!(
                    row[SUM_30D],
                    V::Null,
                    "a trusted NULL of a covering table: {k:?}"
                );
            }
        }
    }
    assert_eq!(seen.len(), 7, "{seen:?}");
    let prov = report.provenance.expect("provenance");
    assert_eq!(
        prov.bootstrap_parts,
        vec!["data.fix".to_string(), format!("{LOG} (log)")]
    );
    assert_eq!(prov.parts[0].covered, covered);
    assert_eq!(prov.parts[0].computed, 150 - covered);
    assert_eq!(
        prov.columns[SUM_30D].bootstrap,
        vec![from[0][0], from[1][0]]
    );
    assert_eq!(
        prov.columns[SUM_15D].bootstrap,
        vec![from[0][1], from[1][1]]
    );
    assert_eq!(
        report.bootstrap.iter().map(|b| b.1).collect::<Vec<_>>(),
        vec![false, true]
    );
}

// ------------------------------------------------------------------------------------------
// 4. Derivations
// ------------------------------------------------------------------------------------------

/// DerivationTest testLogging / testLoggingNonStar: the left restricted to the last day, every
/// row logged with full values (bases, and `diff` once the schema had it). With `[*, diff]` and
/// with `[diff]` alone the part is not computed at all and the output is the log's: `diff`
/// from the log where logged, else derived from the logged bases. The non-star output has no
/// base columns. A log of `diff` alone covers the part for `[diff]` but not for `[*, diff]`.
#[test]
fn derivations_over_logged_values() {
    let db = db(24, 30);
    let (_dir, wh) = warehouse(&db);
    let ctx = ["request_id"];
    let end = end_day();
    let last_day = |mut j: J| {
        j["left"]["events"]["query"]["startPartition"] = json!(end_day());
        j
    };
    let base_j = last_day(cjoin(
        "unit_test.user_transaction_features.base",
        vec![ut()],
        &ctx,
    ));
    run_join(&wh, &base_j);
    let base = rows_by_id(&wh, &output_table(&base_j));
    assert_eq!(base.len(), 30);
    assert!(base.keys().all(|(_, d)| *d == end));
    let keys = ["user", "request_id"];
    let bases = [(SUM_30D, i64t()), (SUM_15D, i64t()), (CTX_ID, strt())];
    let s_bases = schema(&keys, &bases);
    let mut full = bases.to_vec();
    full.push(("diff", i64t()));
    let s_full = schema(&keys, &full);
    let s_diff = schema(&keys, &[(CTX_ID, strt()), ("diff", i64t())]);
    let cols = [
        ("schema_hash", Ty::Str),
        ("ts", Ty::I64),
        ("user", Ty::I64),
        ("request_id", Ty::Str),
        (SUM_30D, Ty::I64),
        (SUM_15D, Ty::I64),
        ("diff", Ty::I64),
    ];
    // even rows: full schema with a logged diff (deliberately not 30d - 15d, to tell it from a
    // derived one); odd rows: an older schema without diff
    let mut log: BTreeMap<(String, String), Row> = BTreeMap::new();
    for (i, (k, r)) in day_rows(&base, &end).into_iter().enumerate() {
        let mut l = logged(&r, Some(if i % 2 == 0 { &s_full } else { &s_bases }));
        l.remove("request_id_2");
        l.insert(SUM_15D.into(), plus(&r[SUM_15D], 2 * PERTURB));
        if i % 2 == 0 {
            l.insert("diff".into(), V::Int(7_000_000 + i as i64));
        }
        log.insert(k, l);
    }
    let written: Vec<(String, Row)> = log
        .iter()
        .map(|((_, d), r)| (d.clone(), r.clone()))
        .collect();
    write_log(&wh, LOG, &cols, &written, &[&s_full, &s_bases]);
    let diff_expr = format!("{SUM_30D} - {SUM_15D}");
    let diff_of = |a: &V, b: &V| match (a, b) {
        (V::Int(x), V::Int(y)) => V::Int(x - y),
        _ => V::Null,
    };

    for star in [true, false] {
        let derivations: Vec<(&str, &str)> = if star {
            vec![("*", "*"), ("diff", &diff_expr)]
        } else {
            vec![("diff", &diff_expr)]
        };
        let name = if star {
            "unit_test.logging.star"
        } else {
            "unit_test.logging.non_star"
        };
        let j = with_boot(
            with_derivations(last_day(cjoin(name, vec![ut()], &ctx)), &derivations),
            vec![log_part(LOG)],
        );
        let report = run_join(&wh, &j);
        assert_eq!(
            report.events[0].1.rows, 0,
            "star={star}: the part reads no source row"
        );
        assert_eq!(
            report.part_rows[0].1, 0,
            "star={star}: the part computes no row"
        );
        let prov = report.provenance.expect("provenance");
        assert_eq!((prov.parts[0].covered, prov.parts[0].computed), (30, 0));
        let out = rows_by_id(&wh, &output_table(&j));
        assert_eq!(out.len(), 30);
        let cols = columns(&wh, &output_table(&j));
        if star {
            assert_eq!(
                cols,
                vec!["user", "request_id", "ts", SUM_30D, SUM_15D, CTX_ID, "diff"]
            );
        } else {
            assert_eq!(
                cols,
                vec!["user", "request_id", "ts", "diff"],
                "no base columns"
            );
        }
        for (k, row) in &out {
            let l = &log[k];
            assert_eq!(row["user"], base[k]["user"]);
            let want = match l.get("diff") {
                Some(d) => d.clone(),
                None => diff_of(&l[SUM_30D], &l[SUM_15D]),
            };
            assert_eq!(row["diff"], want, "star={star}: diff of {k:?}");
            assert_ne!(row["diff"], diff_of(&base[k][SUM_30D], &base[k][SUM_15D]));
            if star {
                assert_eq!(row[SUM_30D], l[SUM_30D]);
                assert_eq!(row[SUM_15D], l[SUM_15D]);
                assert_eq!(row[CTX_ID], l["request_id"]);
            }
        }
    }

    // a log of the derived value alone
    let dlog = "test.diff_only_logged";
    let rows: Vec<(String, Row)> = day_rows(&base, &end)
        .into_iter()
        .enumerate()
        .map(|(i, ((_, d), r))| {
            let mut l = Row::new();
            l.insert("schema_hash".into(), V::s(&s_diff.hash()));
            for c in ["ts", "user", "request_id"] {
                l.insert(c.into(), r[c].clone());
            }
            l.insert("diff".into(), V::Int(9_000_000 + i as i64));
            (d, l)
        })
        .collect();
    let dcols = [
        ("schema_hash", Ty::Str),
        ("ts", Ty::I64),
        ("user", Ty::I64),
        ("request_id", Ty::Str),
        ("diff", Ty::I64),
    ];
    write_log(&wh, dlog, &dcols, &rows, &[&s_diff]);
    let by_id: BTreeMap<String, V> = rows
        .iter()
        .map(|(_, l)| (l["request_id"].to_string(), l["diff"].clone()))
        .collect();
    for star in [true, false] {
        let derivations: Vec<(&str, &str)> = if star {
            vec![("*", "*"), ("diff", &diff_expr)]
        } else {
            vec![("diff", &diff_expr)]
        };
        let name = if star {
            "unit_test.diff_only.star"
        } else {
            "unit_test.diff_only.non_star"
        };
        let j = with_boot(
            with_derivations(last_day(cjoin(name, vec![ut()], &ctx)), &derivations),
            vec![log_part(dlog)],
        );
        let report = run_join(&wh, &j);
        let prov = report.provenance.expect("provenance");
        let out = rows_by_id(&wh, &output_table(&j));
        if star {
            // 30d and 15d are outputs of `*`: not logged, so the part is computed
            assert_eq!((prov.parts[0].covered, prov.parts[0].computed), (0, 30));
            assert!(report.events[0].1.rows > 0);
        } else {
            assert_eq!((prov.parts[0].covered, prov.parts[0].computed), (30, 0));
            assert_eq!(report.events[0].1.rows, 0);
        }
        for (k, row) in &out {
            assert_eq!(
                row["diff"],
                by_id[&V::s(&k.0).to_string()],
                "star={star}: logged diff wins"
            );
            if star {
                assert_eq!(row[SUM_30D], base[k][SUM_30D]);
                assert_eq!(row[SUM_15D], base[k][SUM_15D]);
            }
        }
    }
}

// ------------------------------------------------------------------------------------------
// 5. Failures and log tables used as regular tables
// ------------------------------------------------------------------------------------------

/// A log row whose schema hash has no `schema_hash_<h>` property fails the backfill, naming
/// the table, the partition and the hash. The same table with explicit selects is a regular
/// table: no schema hashes are read, a NULL is trusted, every row covers what is selected.
/// A log table without `schema_hash`, and `schema_hash` selected from a table, are rejected.
#[test]
fn unknown_hashes_fail_and_selects_make_a_regular_table() {
    let db = db(25, 30);
    let (_dir, wh) = warehouse(&db);
    let ctx = ["request_id", "request_id_2"];
    let base_j = cjoin("unit_test.user_transaction_features.base", vec![ut()], &ctx);
    run_join(&wh, &base_j);
    let base = rows_by_id(&wh, &output_table(&base_j));
    let keys = ["user", "request_id", "request_id_2"];
    let old = schema(
        &keys,
        &[(SUM_30D, i64t()), (CTX_ID, strt()), (CTX_ID2, strt())],
    );
    let new = v1_schema();
    let end = end_day();
    let mut log: BTreeMap<(String, String), Row> = BTreeMap::new();
    for (i, (k, r)) in day_rows(&base, &end).into_iter().enumerate() {
        let mut l = logged(&r, Some(if i % 2 == 0 { &old } else { &new }));
        if i % 2 == 0 {
            l.insert(SUM_15D.into(), V::Null);
        }
        log.insert(k, l);
    }
    let mut written: Vec<(String, Row)> = log
        .iter()
        .map(|((_, d), r)| (d.clone(), r.clone()))
        .collect();
    let stale = "AbCdEfGhIj";
    let (sk, sr) = day_rows(&base, &day(DAYS - 2)).remove(0);
    let mut bad = logged(&sr, None);
    bad.insert("schema_hash".into(), V::s(stale));
    written.push((sk.1.clone(), bad.clone()));
    write_log(&wh, LOG, &v1_log_cols(), &written, &[&old, &new]);

    let j = with_boot(cjoin(LOGGED_JOIN, vec![ut()], &ctx), vec![log_part(LOG)]);
    let e = run_err(&wh, &j);
    for want in [LOG, stale, &format!("ds={}", sk.1)] {
        assert!(e.contains(want), "the error should name {want}: {e}");
    }
    assert!(
        read_table(&wh, &output_table(&j)).parts.is_empty(),
        "nothing written"
    );

    // with selects, the log table is a regular table
    let sel = ["request_id", SUM_30D, SUM_15D];
    let j = with_boot(
        cjoin(
            "unit_test.user_transaction_features.selected",
            vec![ut()],
            &ctx,
        ),
        vec![boot_part(LOG, Some(&sel), None, None)],
    );
    let report = run_join(&wh, &j);
    assert!(!report.bootstrap[0].1, "not a log bootstrap");
    let out = rows_by_id(&wh, &output_table(&j));
    log.insert(sk.clone(), bad.clone());
    for (k, row) in &out {
        match log.get(k) {
            Some(l) => {
                assert_eq!(row[SUM_30D], l[SUM_30D], "{k:?}");
                assert_eq!(
                    row[SUM_15D], l[SUM_15D],
                    "a NULL of a regular table is trusted: {k:?}"
                );
                assert_eq!(row[CTX_ID2], V::Null, "request_id_2 is not selected");
            }
            None => assert_eq!(row[SUM_15D], base[k][SUM_15D]),
        }
    }
    let prov = report.provenance.expect("provenance");
    assert_eq!(prov.parts[0].covered, log.len() as u64);
    assert_eq!(prov.bootstrap_parts, vec![LOG.to_string()]);
    log.remove(&sk);

    // without the stale row, as a log: the old-schema rows are computed
    written.pop();
    crate::reference::data::drop_partition(&wh, LOG, &sk.1);
    write_log(&wh, LOG, &v1_log_cols(), &written, &[]);
    let j = with_boot(
        cjoin(
            "unit_test.user_transaction_features.relogged",
            vec![ut()],
            &ctx,
        ),
        vec![log_part(LOG)],
    );
    let report = run_join(&wh, &j);
    let out = rows_by_id(&wh, &output_table(&j));
    for (k, l) in &log {
        let want = if l[SUM_15D].is_null() {
            &base[k][SUM_15D]
        } else {
            &l[SUM_15D]
        };
        assert_eq!(&out[k][SUM_15D], want, "{k:?}");
        assert!(!want.is_null());
    }
    let prov = report.provenance.expect("provenance");
    assert_eq!(prov.parts[0].covered, (log.len() / 2) as u64);

    // `schema_hash` selected from a table; a log table without `schema_hash`
    let j = with_boot(
        cjoin(
            "unit_test.user_transaction_features.reserved",
            vec![ut()],
            &ctx,
        ),
        vec![boot_part(
            LOG,
            Some(&["request_id", SUM_30D, "schema_hash"]),
            None,
            None,
        )],
    );
    let e = run_err(&wh, &j);
    assert!(e.contains("schema_hash is a reserved column"), "{e}");
    let nlog = "test.no_hash_logged";
    let rows: Vec<(String, Row)> = written
        .iter()
        .map(|(d, l)| {
            let mut l = l.clone();
            l.remove("schema_hash");
            (d.clone(), l)
        })
        .collect();
    write_log(&wh, nlog, &v1_log_cols()[1..], &rows, &[&new]);
    let j = with_boot(
        cjoin(
            "unit_test.user_transaction_features.no_hash",
            vec![ut()],
            &ctx,
        ),
        vec![log_part(nlog)],
    );
    let e = run_err(&wh, &j);
    assert!(e.contains(nlog) && e.contains("schema_hash"), "{e}");
}

// ------------------------------------------------------------------------------------------
// 6. Incremental
// ------------------------------------------------------------------------------------------

/// A [`weft::engine::JoinRunner`] kept alive across log changes: (1) the last day fully logged,
/// so user_transactions is not computed for it at all; (2) a new log partition lands for an
/// earlier day with a new schema hash (some rows of an older schema without 15d); (3) the last
/// day's log is re-landed with a third of its rows, so the others lose coverage and need source
/// partitions the runner never read; (4) the earlier day re-landed with the current schema only;
/// (5) its log partition dropped; (6) a partition whose schema property is missing fails the
/// run. After each change the output equals a fresh backfill of
/// another join over the same inputs, rows that became covered carry the logged values, rows
/// that lost coverage the computed ones, and only the changed partitions are rewritten.
#[test]
fn incremental_runner_follows_log_changes() {
    let db = db(26, 30);
    let (_dir, wh) = warehouse(&db);
    let ctx = ["request_id", "request_id_2"];
    let base_j = cjoin("unit_test.user_transaction_features.base", vec![ut()], &ctx);
    run_join(&wh, &base_j);
    let base = rows_by_id(&wh, &output_table(&base_j));
    let keys = ["user", "request_id", "request_id_2"];
    let old = schema(
        &keys,
        &[(SUM_30D, i64t()), (CTX_ID, strt()), (CTX_ID2, strt())],
    );
    let new = v1_schema();
    let end = end_day();
    let earlier = day(DAYS - 3);
    let log_of = |d: &str, keep: &dyn Fn(usize) -> bool, old_every: usize| {
        day_rows(&base, d)
            .into_iter()
            .enumerate()
            .filter(|(i, _)| keep(*i))
            .map(|(i, (k, r))| {
                let is_old = old_every > 0 && i % old_every == 0;
                let mut l = logged(&r, Some(if is_old { &old } else { &new }));
                if is_old {
                    l.insert(SUM_15D.into(), V::Null);
                }
                (k, l)
            })
            .collect::<BTreeMap<(String, String), Row>>()
    };
    let write = |log: &BTreeMap<(String, String), Row>, schemas: &[&LoggingSchema]| {
        let rows: Vec<(String, Row)> = log
            .iter()
            .map(|((_, d), r)| (d.clone(), r.clone()))
            .collect();
        write_log(&wh, LOG, &v1_log_cols(), &rows, schemas);
    };
    let mut log = log_of(&end, &|_| true, 0);
    write(&log, &[&new]);

    let j = with_boot(cjoin(LOGGED_JOIN, vec![ut()], &ctx), vec![log_part(LOG)]);
    let parsed = reference::conf::parse(&j);
    let mut runner = weft::engine::JoinRunner::new(&parsed).expect("plan");
    let engine = weft::engine::Context::new(&wh).expect("engine");
    let opts = options(&run());
    let r1 = runner
        .run(&engine, &opts, &|_, _, _| {})
        .expect("first run");
    assert_eq!(r1.written.len(), 5);
    let prov = r1.provenance.expect("provenance");
    assert_eq!((prov.parts[0].covered, prov.parts[0].computed), (30, 120));

    let check = |log: &BTreeMap<(String, String), Row>, fresh_name: &str| {
        let out = rows_by_id(&wh, &output_table(&j));
        assert_eq!(out.len(), base.len());
        for (k, row) in &out {
            let (want30, want15) = match log.get(k) {
                Some(l) => (
                    l[SUM_30D].clone(),
                    if l[SUM_15D].is_null() {
                        base[k][SUM_15D].clone()
                    } else {
                        l[SUM_15D].clone()
                    },
                ),
                None => (base[k][SUM_30D].clone(), base[k][SUM_15D].clone()),
            };
            assert_eq!(row[SUM_30D], want30, "{fresh_name}: 30d of {k:?}");
            assert_eq!(row[SUM_15D], want15, "{fresh_name}: 15d of {k:?}");
            let want2 = log.get(k).map_or(V::Null, |l| l["request_id_2"].clone());
            assert_eq!(row[CTX_ID2], want2, "{fresh_name}: request_id_2 of {k:?}");
        }
        let mut fresh = j.clone();
        fresh["metaData"]["name"] = json!(fresh_name);
        run_join(&wh, &fresh);
        outputs_equal(
            &read_table(&wh, &output_table(&j)),
            &read_table(&wh, &output_table(&fresh)),
            "incremental",
            "fresh",
        )
        .unwrap_or_else(|e| panic!("{fresh_name}: {e}"));
    };
    check(&log, "unit_test.user_transaction_features.fresh_1");

    // (2) a log partition for an earlier day, two schemas
    let more = log_of(&earlier, &|i| i % 4 != 1, 3);
    write(&more, &[&old]);
    log.extend(more.clone());
    engine.refresh().expect("refresh");
    let r2 = runner
        .run(&engine, &opts, &|_, _, _| {})
        .expect("second run");
    assert!(r2.written.is_empty());
    assert_eq!(r2.rewritten, vec![reference::data::ds(&earlier)]);
    let newly = more.values().filter(|l| !l[SUM_15D].is_null()).count() as u64;
    let prov = r2.provenance.expect("provenance");
    assert_eq!(
        (prov.parts[0].covered, prov.parts[0].computed),
        (newly, 30 - newly)
    );
    check(&log, "unit_test.user_transaction_features.fresh_2");

    // (3) the last day's log re-landed with a third of its rows
    let fewer = log_of(&end, &|i| i % 3 == 0, 0);
    log.retain(|(_, d), _| *d != end);
    log.extend(fewer.clone());
    write(&fewer, &[]);
    engine.refresh().expect("refresh");
    let r3 = runner
        .run(&engine, &opts, &|_, _, _| {})
        .expect("third run");
    assert_eq!(r3.rewritten, vec![reference::data::ds(&end)]);
    assert!(
        r3.events[0].1.rows > 0,
        "the rows that lost coverage need source rows"
    );
    let prov = r3.provenance.expect("provenance");
    assert_eq!((prov.parts[0].covered, prov.parts[0].computed), (10, 20));
    check(&log, "unit_test.user_transaction_features.fresh_3");

    // (4) the earlier day re-landed, every row now of the current schema: the old-schema rows
    // become covered (their 15d logged), the rows that were not logged still are not
    let relanded = log_of(&earlier, &|i| i % 4 != 1, 0);
    log.extend(relanded.clone());
    write(&relanded, &[]);
    engine.refresh().expect("refresh");
    let r4 = runner
        .run(&engine, &opts, &|_, _, _| {})
        .expect("fourth run");
    assert_eq!(r4.rewritten, vec![reference::data::ds(&earlier)]);
    let prov = r4.provenance.expect("provenance");
    let n = relanded.len() as u64;
    assert_eq!((prov.parts[0].covered, prov.parts[0].computed), (n, 30 - n));
    check(&log, "unit_test.user_transaction_features.fresh_4");

    // (5) the earlier day's log partition dropped: its rows are computed again
    reference::data::drop_partition(&wh, LOG, &earlier);
    log.retain(|(_, d), _| *d != earlier);
    engine.refresh().expect("refresh");
    let r5 = runner
        .run(&engine, &opts, &|_, _, _| {})
        .expect("fifth run");
    assert_eq!(r5.rewritten, vec![reference::data::ds(&earlier)]);
    check(&log, "unit_test.user_transaction_features.fresh_5");

    // (6) a partition landing before its schema's property fails the run, naming the hash
    let newer = schema(
        &keys,
        &[(SUM_30D, i64t()), (SUM_15D, i64t()), (CTX_ID, strt())],
    );
    let mut late = log_of(&day(DAYS - 4), &|i| i % 2 == 0, 0);
    for l in late.values_mut() {
        l.insert("schema_hash".into(), V::s(&newer.hash()));
    }
    write(&late, &[]);
    engine.refresh().expect("refresh");
    let e = runner
        .run(&engine, &opts, &|_, _, _| {})
        .expect_err("unknown schema hash");
    assert!(
        e.to_string().contains(&newer.hash()) && e.to_string().contains(LOG),
        "{e}"
    );
}

// ------------------------------------------------------------------------------------------
// 7. Bounds on a log part
// ------------------------------------------------------------------------------------------

/// A log part with a query that only bounds its partitions (no selects) is still a log
/// bootstrap (§4.2): coverage by schema hash within its start/end partitions, nothing outside.
#[test]
fn log_part_with_partition_bounds_stays_a_log_bootstrap() {
    let db = db(27, 20);
    let (_dir, wh) = warehouse(&db);
    let ctx = ["request_id", "request_id_2"];
    let base_j = cjoin("unit_test.user_transaction_features.base", vec![ut()], &ctx);
    run_join(&wh, &base_j);
    let base = rows_by_id(&wh, &output_table(&base_j));
    let keys = ["user", "request_id", "request_id_2"];
    let old = schema(
        &keys,
        &[(SUM_30D, i64t()), (CTX_ID, strt()), (CTX_ID2, strt())],
    );
    let new = v1_schema();
    let mut log: BTreeMap<(String, String), Row> = BTreeMap::new();
    for d in [day(DAYS - 3), day(DAYS - 2), end_day()] {
        for (i, (k, r)) in day_rows(&base, &d).into_iter().enumerate() {
            let mut l = logged(&r, Some(if i % 2 == 0 { &old } else { &new }));
            if i % 2 == 0 {
                l.insert(SUM_15D.into(), V::Null);
            }
            log.insert(k, l);
        }
    }
    let written: Vec<(String, Row)> = log
        .iter()
        .map(|((_, d), r)| (d.clone(), r.clone()))
        .collect();
    write_log(&wh, LOG, &v1_log_cols(), &written, &[&old, &new]);
    let (lo, hi) = (day(DAYS - 3), day(DAYS - 2));
    let j = with_boot(
        cjoin(LOGGED_JOIN, vec![ut()], &ctx),
        vec![boot_part(LOG, None, Some(&lo), Some(&hi))],
    );
    let report = run_join(&wh, &j);
    assert!(report.bootstrap[0].1, "still a log bootstrap");
    let out = rows_by_id(&wh, &output_table(&j));
    let mut covered = 0;
    for (k, row) in &out {
        let l = log.get(k).filter(|_| k.1 >= lo && k.1 <= hi);
        match l {
            Some(l) => {
                assert_eq!(row[SUM_30D], l[SUM_30D], "{k:?}");
                let want15 = if l[SUM_15D].is_null() {
                    &base[k][SUM_15D]
                } else {
                    &l[SUM_15D]
                };
                assert_eq!(&row[SUM_15D], want15, "old-schema rows are computed: {k:?}");
                covered += !l[SUM_15D].is_null() as u64;
            }
            None => {
                assert_eq!(row[SUM_30D], base[k][SUM_30D], "{k:?}");
                assert_eq!(row[SUM_15D], base[k][SUM_15D], "{k:?}");
            }
        }
    }
    assert_eq!(covered, 20);
    let prov = report.provenance.expect("provenance");
    assert_eq!(prov.parts[0].covered, covered);
    assert_eq!(prov.columns[SUM_30D].bootstrap, vec![40]);
}
