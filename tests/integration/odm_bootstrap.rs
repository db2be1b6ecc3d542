//! ODM bootstrap scenarios end to end (odm-scenarios.md C, D, E, G, H; chronon-semantics §4) on
//! a small generated demo warehouse with the real compiled configs of `dataflows/production`:
//!
//! - C `risk.checkout.v2`: v1's production features are carried over from v1's output (the
//!   production parts read no source row), the experimental parts are computed and equal a
//!   copy of v2 without bootstrap parts;
//! - D `risk.checkout.expanded_v1`: the rows of v1's drivers are bootstrapped from v1's output,
//!   the new `_review` drivers are computed;
//! - E `growth.user_engagement.v1`: only the selected purchases columns are reused from the risk
//!   team's v1 output, the growth and users parts are computed;
//! - G `risk.checkout_legacy.v1`: up to the legacy cutoff purchases.weekly_v1 comes from the
//!   legacy table under renamed columns (and is not computed), page views always computed;
//! - H `risk.checkout_online.patched_v1`: a flattened log table written by the test (served
//!   values marked, page views broken on 2026-02-10, one day logged with an older schema): the
//!   one-off backfill join's values override the broken logged ones, logged values are used
//!   elsewhere, rows not logged are computed;
//! - a bootstrap partition re-landed under a live `JoinRunner` rewrites only that output
//!   partition, which then equals a fresh run.
//!
//! Each test generates its own small warehouse and runs the driver table and checkout.v1 on it.

use crate::reference;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use arrow::datatypes::{DataType, Schema};
use reference::data::read_table;
use reference::{values_match, V};
use weft::config::{load_conf, Conf, Join};
use weft::demo::LEGACY_END;
use weft::demo::{generate, DemoSpec};
use weft::engine::Context;
use weft::engine::{backfill_join, JoinOptions, JoinReport, JoinRunner};
use weft::join::bootstrap::assemble::Provenance;
use weft::join::bootstrap::log_schema::{LoggingSchema, LOG_TABLE_PROPERTY, SCHEMA_HASH_PREFIX};
use weft::partition::Ds;
use weft::staging::{self, StagingOptions};
use weft::warehouse::{TableName, Warehouse};

const END: &str = "2026-02-12";
const V1_OUT: &str = "risk.risk_checkout_v1";
const LEFT: [&str; 5] = ["event_id", "user_id", "merchant_id", "amount", "ts"];
const PURCHASES_V1: [&str; 6] = [
    "risk_purchases_v1_amount_cents_sum_1d",
    "risk_purchases_v1_amount_cents_sum_7d",
    "risk_purchases_v1_amount_cents_sum_30d",
    "risk_purchases_v1_amount_cents_count_1d",
    "risk_purchases_v1_amount_cents_count_7d",
    "risk_purchases_v1_amount_cents_count_30d",
];
const PAGE_VIEWS_V1: [&str; 3] = [
    "risk_page_views_v1_page_count_1d",
    "risk_page_views_v1_page_count_7d",
    "risk_page_views_v1_dwell_ms_sum_7d",
];

fn spec() -> DemoSpec {
    DemoSpec {
        end: Ds::parse(END).unwrap(),
        users: 150,
        merchants: 20,
        checkouts_per_day: 30,
        ..DemoSpec::default()
    }
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn production() -> Vec<&'static str> {
    PURCHASES_V1.iter().chain(&PAGE_VIEWS_V1).copied().collect()
}

fn join(rel: &str) -> Join {
    match load_conf(&repo().join("dataflows/production/joins").join(rel)).unwrap() {
        Conf::Join(j) => *j,
        _ => panic!("{rel} is not a join"),
    }
}

/// A copy of `j` named `name` without bootstrap parts (what the join computes on its own).
fn without_bootstrap(j: &Join, name: &str) -> Join {
    let mut c = j.clone();
    c.meta_data.name = name.to_string();
    c.bootstrap_parts.clear();
    c
}

fn renamed(j: &Join, name: &str) -> Join {
    let mut c = j.clone();
    c.meta_data.name = name.to_string();
    c
}

fn output(j: &Join) -> String {
    weft::config::naming::output_table(&j.meta_data).unwrap()
}

fn end() -> Ds {
    Ds::parse(END).unwrap()
}

/// A test's own demo warehouse: the generated data, risk.risk_driver_table_v1 and
/// risk.risk_checkout_v1.
struct Demo {
    _dir: tempfile::TempDir,
    wh: Warehouse,
    engine: Context,
}

impl Demo {
    fn new() -> Demo {
        let dir = tempfile::tempdir().unwrap();
        let wh = Warehouse::open(dir.path()).unwrap();
        generate(&wh, &spec(), &|_| {}).unwrap();
        let engine = Context::new(&wh).unwrap();
        staging_query(&engine, "driver_table.v1");
        let r = run(&engine, &join("risk/checkout.v1"));
        assert_eq!(r.written.len(), 43);
        Demo {
            _dir: dir,
            wh,
            engine,
        }
    }
    fn run(&self, j: &Join) -> JoinReport {
        run(&self.engine, j)
    }
    fn rows(&self, table: &str) -> Rows {
        rows(&self.wh, table)
    }
}

fn staging_query(engine: &Context, name: &str) {
    let path = repo()
        .join("dataflows/production/staging_queries/risk")
        .join(name);
    let Conf::StagingQuery(sq) = load_conf(&path).unwrap() else {
        panic!("{name} is not a staging query")
    };
    staging::run(
        engine.session(),
        &sq,
        &StagingOptions::through(end()),
        &|_, _, _| {},
    )
    .unwrap_or_else(|e| panic!("staging query {name}: {e}"));
    engine.refresh().unwrap();
}

fn run(engine: &Context, j: &Join) -> JoinReport {
    let r = backfill_join(engine, j, &JoinOptions::through(end()), &|_, _, _| {})
        .unwrap_or_else(|e| panic!("{}: {e}", j.meta_data.name));
    engine.refresh().unwrap();
    r
}

type Row = BTreeMap<String, V>;
/// Rows of a table by `(event_id, ds)`.
type Rows = BTreeMap<(String, String), Row>;

fn rows(wh: &Warehouse, table: &str) -> Rows {
    let mut out = Rows::new();
    for (ds, (cols, rs)) in read_table(wh, table).parts {
        let id = cols.iter().position(|c| c == "event_id").expect("event_id");
        for r in rs {
            let V::Str(e) = &r[id] else {
                panic!("{table}: event_id {}", r[id])
            };
            let key = (e.clone(), ds.clone());
            let row: Row = cols.iter().cloned().zip(r.iter().cloned()).collect();
            assert!(
                out.insert(key, row).is_none(),
                "{table}: event ids are unique per ds"
            );
        }
    }
    out
}

fn columns(wh: &Warehouse, table: &str) -> Vec<String> {
    read_table(wh, table)
        .parts
        .values()
        .next()
        .map(|p| p.0.clone())
        .unwrap_or_default()
}

#[track_caller]
fn same(a: &V, b: &V, what: &str) {
    assert!(values_match(a, b), "{what}: {a} != {b}");
}

/// Non-NULL cells of `col` among `rows`.
fn non_null<'a>(rows: impl IntoIterator<Item = &'a Row>, col: &str) -> u64 {
    rows.into_iter().filter(|r| !r[col].is_null()).count() as u64
}

fn coverage(p: &Provenance, part: &str) -> (u64, u64) {
    let c = p
        .parts
        .iter()
        .find(|c| c.part == part)
        .unwrap_or_else(|| panic!("no coverage for {part}: {:?}", p.parts));
    (c.covered, c.computed)
}

/// Source rows read for the part with this full prefix.
fn read_rows(r: &JoinReport, part: &str) -> u64 {
    r.events
        .iter()
        .find(|(p, _)| p == part)
        .unwrap_or_else(|| panic!("no part {part}"))
        .1
        .rows
}

/// Rows with some non-NULL column of the part with this full prefix.
fn with_values(rows: &Rows, part: &str) -> u64 {
    let prefix = format!("{part}_");
    rows.values()
        .filter(|r| {
            r.iter()
                .any(|(c, v)| c.starts_with(&prefix) && !v.is_null())
        })
        .count() as u64
}

/// The selects of bootstrap part `i` of a join: (output column, expression).
fn selects(j: &Join, i: usize) -> Vec<(String, String)> {
    let q = j.bootstrap_parts[i].query.as_ref().expect("a query");
    q.selects
        .as_ref()
        .expect("selects")
        .iter()
        .map(|(a, b)| (a.clone(), b.clone()))
        .collect()
}

/// Left rows with a NULL key for the part with this full prefix.
fn null_key_rows(r: &JoinReport, part: &str) -> u64 {
    r.null_key_rows.iter().find(|(p, _)| p == part).unwrap().1
}

// ------------------------------------------------------------------------------------------
// C: a new model version carries the production features over
// ------------------------------------------------------------------------------------------

#[test]
fn c_new_version_carries_production_features_over_and_computes_experimental_ones() {
    let d = Demo::new();
    let v1 = d.rows(V1_OUT);
    let v2 = join("risk/checkout.v2");
    assert_eq!(
        selects(&v2, 0),
        [("event_id", "event_id")]
            .into_iter()
            .chain(production().into_iter().map(|c| (c, c)))
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect::<Vec<_>>()
    );
    let report = d.run(&v2);
    let plain = without_bootstrap(&v2, "risk.checkout.v2_no_bootstrap");
    let plain_report = d.run(&plain);
    let out = d.rows(&output(&v2));
    let exp = d.rows(&output(&plain));
    assert_eq!(
        columns(&d.wh, &output(&v2)),
        columns(&d.wh, &output(&plain))
    );
    assert_eq!(
        out.keys().collect::<Vec<_>>(),
        v1.keys().collect::<Vec<_>>()
    );
    let cols = columns(&d.wh, &output(&v2));
    let experimental: Vec<&String> = cols
        .iter()
        .filter(|c| !LEFT.contains(&c.as_str()) && !production().contains(&c.as_str()))
        .collect();
    assert!(experimental.len() >= 10, "{experimental:?}");
    for (k, row) in &out {
        for c in LEFT.iter().chain(production().iter()) {
            same(&row[*c], &v1[k][*c], &format!("{k:?} {c} (v1)"));
        }
        for c in &experimental {
            same(&row[*c], &exp[k][*c], &format!("{k:?} {c} (computed)"));
        }
    }
    // the experimental features are not all NULL (the comparison means something)
    for c in [
        "risk_merchants_v1_merchant_category",
        "risk_users_v1_country",
    ] {
        assert!(non_null(out.values(), c) > 0, "{c}");
    }

    let p = report.provenance.clone().expect("provenance");
    let n = out.len() as u64;
    assert_eq!(p.rows, n);
    assert_eq!(p.bootstrap_parts, vec![V1_OUT.to_string()]);
    for part in ["risk_purchases_v1", "risk_page_views_v1"] {
        assert_eq!(coverage(&p, part), (n, 0), "{part}");
        assert_eq!(read_rows(&report, part), 0, "{part}: no source row read");
        assert!(read_rows(&plain_report, part) > 0);
    }
    for part in ["risk_purchases_v2", "risk_merchants_v1", "risk_users_v1"] {
        // computed for every row but those with a NULL key; rows for which the GroupBy has no
        // value at all (no snapshot before the first day, no entity row) are not counted
        let (covered, computed) = coverage(&p, part);
        assert_eq!(covered, 0, "{part}");
        assert!(computed <= n - null_key_rows(&report, part), "{part}");
        assert!(
            computed >= with_values(&out, part) && computed > n / 2,
            "{part}: {computed}"
        );
        assert!(read_rows(&report, part) > 0, "{part}");
    }
    for c in production() {
        let cp = &p.columns[c];
        let filled = non_null(out.values(), c);
        assert_eq!(cp.bootstrap, vec![filled], "{c}");
        assert_eq!((cp.computed, cp.null), (0, n - filled), "{c}");
    }
    for c in &experimental {
        let cp = &p.columns[c.as_str()];
        assert_eq!(cp.bootstrap, vec![0], "{c}");
        assert_eq!(cp.computed, non_null(out.values(), c), "{c}");
    }
}

// ------------------------------------------------------------------------------------------
// D: a model expanded to a new driver segment
// ------------------------------------------------------------------------------------------

#[test]
fn d_expanded_drivers_bootstrap_the_old_rows_and_compute_the_new_segment() {
    let d = Demo::new();
    let v1 = d.rows(V1_OUT);
    staging_query(&d.engine, "driver_table.v2");
    let expanded = join("risk/checkout.expanded_v1");
    let report = d.run(&expanded);
    let plain = without_bootstrap(&expanded, "risk.checkout.expanded_no_bootstrap");
    d.run(&plain);
    let out = d.rows(&output(&expanded));
    let exp = d.rows(&output(&plain));
    assert_eq!(
        columns(&d.wh, &output(&expanded)),
        columns(&d.wh, &output(&plain))
    );
    assert_eq!(
        out.keys().collect::<Vec<_>>(),
        exp.keys().collect::<Vec<_>>()
    );

    let (old, new): (Vec<_>, Vec<_>) = out.iter().partition(|((e, _), _)| !e.ends_with("_review"));
    assert_eq!(
        old.len(),
        v1.len(),
        "every v1 driver is in the new driver table"
    );
    assert!(
        new.len() >= 43,
        "a review row per day at least: {}",
        new.len()
    );
    for (k, row) in &old {
        for c in LEFT.iter().chain(production().iter()) {
            same(&row[*c], &v1[*k][*c], &format!("{k:?} {c} (v1)"));
        }
    }
    for ((e, ds), row) in &new {
        let k = (e.clone(), ds.clone());
        // a review row re-scores a checkout: same user and time, hence v1's values of it
        let orig = &v1[&(e.strip_suffix("_review").unwrap().to_string(), ds.clone())];
        assert!(row["amount"].as_f64().unwrap() >= 100.0);
        for c in production() {
            same(&row[c], &exp[&k][c], &format!("{k:?} {c} (computed)"));
            same(
                &row[c],
                &orig[c],
                &format!("{k:?} {c} (checkout's v1 values)"),
            );
        }
    }
    assert!(non_null(new.iter().map(|x| x.1), PURCHASES_V1[2]) > 0);

    let p = report.provenance.clone().expect("provenance");
    assert_eq!(p.rows, out.len() as u64);
    for part in ["risk_purchases_v1", "risk_page_views_v1"] {
        let (covered, computed) = coverage(&p, part);
        assert_eq!(covered, old.len() as u64, "{part}: the matched v1 rows");
        assert!(
            computed <= new.len() as u64 && computed > 0,
            "{part}: {computed}"
        );
        assert!(
            read_rows(&report, part) > 0,
            "{part}: the new rows need source rows"
        );
    }
    for c in production() {
        let cp = &p.columns[c];
        assert_eq!(
            cp.bootstrap,
            vec![non_null(old.iter().map(|x| x.1), c)],
            "{c}"
        );
        assert_eq!(cp.computed, non_null(new.iter().map(|x| x.1), c), "{c}");
    }
}

// ------------------------------------------------------------------------------------------
// E: another team reuses some feature columns of the same drivers
// ------------------------------------------------------------------------------------------

#[test]
fn e_reused_columns_come_from_the_other_join_and_the_rest_is_computed() {
    let d = Demo::new();
    let v1 = d.rows(V1_OUT);
    let growth = join("growth/user_engagement.v1");
    let report = d.run(&growth);
    let plain = without_bootstrap(&growth, "growth.user_engagement.no_bootstrap");
    d.run(&plain);
    let out = d.rows(&output(&growth));
    let exp = d.rows(&output(&plain));
    let cols = columns(&d.wh, &output(&growth));
    assert_eq!(cols, columns(&d.wh, &output(&plain)));
    assert!(!cols.iter().any(|c| PAGE_VIEWS_V1.contains(&c.as_str())));
    assert_eq!(
        out.keys().collect::<Vec<_>>(),
        v1.keys().collect::<Vec<_>>()
    );
    let others: Vec<&String> = cols
        .iter()
        .filter(|c| c.starts_with("growth_engagement_v1_") || c.starts_with("risk_users_v1_"))
        .collect();
    assert_eq!(others.len(), 7, "{others:?}");
    for (k, row) in &out {
        for c in PURCHASES_V1 {
            same(&row[c], &v1[k][c], &format!("{k:?} {c} (risk v1)"));
        }
        for c in &others {
            same(&row[*c], &exp[k][*c], &format!("{k:?} {c} (computed)"));
        }
    }
    for c in &others {
        assert!(non_null(out.values(), c) > 0, "{c}");
    }
    let p = report.provenance.clone().expect("provenance");
    let n = out.len() as u64;
    assert_eq!(coverage(&p, "risk_purchases_v1"), (n, 0));
    assert_eq!(read_rows(&report, "risk_purchases_v1"), 0);
    for part in ["growth_engagement_v1", "risk_users_v1"] {
        let (covered, computed) = coverage(&p, part);
        assert_eq!(covered, 0, "{part}");
        assert!(
            computed >= with_values(&out, part) && computed > n / 2,
            "{part}"
        );
        assert!(read_rows(&report, part) > 0, "{part}");
    }
    for c in PURCHASES_V1 {
        assert_eq!(
            p.columns[c].bootstrap,
            vec![non_null(out.values(), c)],
            "{c}"
        );
        assert_eq!(p.columns[c].computed, 0, "{c}");
    }
    for c in &others {
        assert_eq!(p.columns[c.as_str()].bootstrap, vec![0], "{c}");
    }
}

// ------------------------------------------------------------------------------------------
// G: features of a legacy pipeline up to its cutoff
// ------------------------------------------------------------------------------------------

const LEGACY: &str = "data.legacy_checkout_features";
const WEEKLY: [(&str, &str); 2] = [
    (
        "risk_purchases_weekly_v1_amount_cents_sum_7d",
        "legacy_purchase_sum_7d",
    ),
    (
        "risk_purchases_weekly_v1_amount_cents_count_7d",
        "legacy_purchase_count_7d",
    ),
];

#[test]
fn g_legacy_features_are_bootstrapped_up_to_the_cutoff_under_chronon_names() {
    let d = Demo::new();
    // The legacy pipeline computed its features its own way: on one day its values differ from
    // Chronon's (so the output shows where they came from).
    let odd_day = "2026-01-20";
    let t = TableName::parse(LEGACY).unwrap();
    let (schema, batches) = d
        .engine
        .session()
        .query_with_schema(
            &format!(
                "SELECT event_id, legacy_purchase_sum_7d + 1000000 AS legacy_purchase_sum_7d, \
                 legacy_purchase_count_7d + 100 AS legacy_purchase_count_7d \
                 FROM {LEGACY} WHERE ds = '{odd_day}'"
            ),
            "test",
        )
        .unwrap();
    d.wh.write_partition(&t, &[("ds".into(), odd_day.into())], schema, &batches)
        .unwrap();
    d.engine.refresh().unwrap();
    assert_eq!(
        d.wh.partitions(&t).unwrap().last(),
        Some(&Ds::parse(LEGACY_END).unwrap())
    );

    staging_query(&d.engine, "driver_table.legacy_union_v1");
    let legacy_join = join("risk/checkout_legacy.v1");
    let mapping = selects(&legacy_join, 0);
    for (chronon, old) in WEEKLY {
        assert!(
            mapping.contains(&(chronon.to_string(), old.to_string())),
            "{mapping:?}"
        );
    }
    let end_partition = legacy_join.bootstrap_parts[0]
        .query
        .as_ref()
        .unwrap()
        .end_partition
        .clone();
    assert_eq!(end_partition.as_deref(), Some(LEGACY_END));
    let report = d.run(&legacy_join);
    let plain = without_bootstrap(&legacy_join, "risk.checkout_legacy.no_bootstrap");
    d.run(&plain);
    let out = d.rows(&output(&legacy_join));
    let exp = d.rows(&output(&plain));
    let legacy = d.rows(LEGACY);
    assert_eq!(
        out.keys().collect::<Vec<_>>(),
        exp.keys().collect::<Vec<_>>()
    );
    let cutoff = LEGACY_END.to_string();
    let (before, after): (Vec<_>, Vec<_>) = out.iter().partition(|((_, ds), _)| *ds <= cutoff);
    assert_eq!(
        before.len(),
        legacy.len(),
        "legacy-period drivers = legacy rows"
    );
    assert!(!after.is_empty());
    let mut differs = 0;
    for (k, row) in &out {
        for c in PAGE_VIEWS_V1 {
            same(&row[c], &exp[k][c], &format!("{k:?} {c} (computed)"));
        }
        for (chronon, old) in WEEKLY {
            if k.1 <= cutoff {
                same(
                    &row[chronon],
                    &legacy[k][old],
                    &format!("{k:?} {chronon} (legacy)"),
                );
                differs += usize::from(!values_match(&row[chronon], &exp[k][chronon]));
            } else {
                same(
                    &row[chronon],
                    &exp[k][chronon],
                    &format!("{k:?} {chronon} (computed)"),
                );
            }
        }
    }
    let odd_rows = legacy.keys().filter(|k| k.1 == odd_day).count();
    assert!(
        differs >= odd_rows,
        "the modified legacy day shows: {differs}"
    );

    let p = report.provenance.clone().expect("provenance");
    let (covered, computed) = coverage(&p, "risk_purchases_weekly_v1");
    assert_eq!(
        covered,
        before.len() as u64,
        "weekly_v1 covered up to the cutoff"
    );
    assert!(computed <= after.len() as u64 && computed > after.len() as u64 / 2);
    let (covered, computed) = coverage(&p, "risk_page_views_v1");
    assert_eq!(covered, 0, "page views are always computed");
    assert!(computed >= with_values(&out, "risk_page_views_v1"));
    for (c, _) in WEEKLY {
        assert_eq!(
            p.columns[c].bootstrap,
            vec![non_null(before.iter().map(|x| x.1), c)],
            "{c}"
        );
        assert_eq!(
            p.columns[c].computed,
            non_null(after.iter().map(|x| x.1), c),
            "{c}"
        );
    }
    // the weekly GroupBy reads only what the rows after the cutoff need
    assert!(read_rows(&report, "risk_purchases_weekly_v1") > 0);
}

// ------------------------------------------------------------------------------------------
// H: incorrect logged values overwritten by a one-off backfill
// ------------------------------------------------------------------------------------------

const ONLINE_JOIN: &str = "risk.checkout_online.v1";
const LOGGED: &str = "risk.risk_checkout_online_v1_logged";
const LOGGING_CUTOFF: &str = "2026-02-01";
/// First day with logs: before the cutoff only some requests were logged.
const LOG_START: &str = "2026-01-31";
/// Days logged with an older logging schema that had no page-view features yet.
const OLD_SCHEMA_DAYS: [&str; 2] = ["2026-01-31", "2026-02-03"];
const BROKEN_DS: &str = "2026-02-10";
/// Served purchase counts differ from the backfilled ones by this much (makes logged values
/// visible in the output).
const SERVED_MARK: i64 = 1000;
/// On the broken day the served page-view features are off by this much.
const BROKEN_MARK: i64 = 100_000;
const CONTEXTUAL: [&str; 3] = ["event_id", "merchant_id", "amount"];

/// The logging schemas of checkout_online.v1: the full one and an older one without page views.
fn logging_schemas(d: &Demo) -> (LoggingSchema, LoggingSchema) {
    let s =
        d.wh.table_schema(&TableName::parse(V1_OUT).unwrap())
            .unwrap();
    let ty = |c: &str| s.field_with_name(c).unwrap().data_type().clone();
    let keys: Vec<(String, DataType)> = ["user_id", "event_id", "merchant_id", "amount"]
        .iter()
        .map(|c| (c.to_string(), ty(c)))
        .collect();
    let contextual: Vec<(String, DataType)> = CONTEXTUAL
        .iter()
        .map(|c| (format!("ext_contextual_{c}"), ty(c)))
        .collect();
    let feats = |cols: &[&str]| -> Vec<(String, DataType)> {
        cols.iter()
            .map(|c| (c.to_string(), ty(c)))
            .chain(contextual.clone())
            .collect()
    };
    let full = LoggingSchema {
        join_name: ONLINE_JOIN.into(),
        keys: keys.clone(),
        values: feats(&production()),
    };
    let old = LoggingSchema {
        join_name: ONLINE_JOIN.into(),
        keys,
        values: feats(&PURCHASES_V1),
    };
    (full, old)
}

/// Writes the flattened log table of checkout_online.v1 from v1's values as if served online:
/// from LOG_START (before the logging cutoff only even-numbered requests), purchase counts
/// marked, page views broken on BROKEN_DS, OLD_SCHEMA_DAYS without page views.
fn write_log_table(d: &Demo) -> (LoggingSchema, LoggingSchema) {
    let (full, old) = logging_schemas(d);
    let t = TableName::parse(LOGGED).unwrap();
    let last = d.wh.partitions(&TableName::parse(V1_OUT).unwrap()).unwrap();
    for ds in last
        .iter()
        .map(|d| d.to_string())
        .filter(|d| d.as_str() >= LOG_START)
    {
        let old_schema = OLD_SCHEMA_DAYS.contains(&ds.as_str());
        let hash = if old_schema { old.hash() } else { full.hash() };
        let mut sel = vec![
            format!("'{hash}' AS schema_hash"),
            "ts".into(),
            "user_id".into(),
            "event_id".into(),
            "merchant_id".into(),
            "amount".into(),
        ];
        for c in PURCHASES_V1 {
            sel.push(if c.ends_with("count_30d") {
                format!("COALESCE({c}, 0) + {SERVED_MARK} AS {c}")
            } else {
                c.to_string()
            });
        }
        for c in PAGE_VIEWS_V1 {
            sel.push(if old_schema {
                format!("CAST(NULL AS BIGINT) AS {c}")
            } else if ds == BROKEN_DS {
                format!("COALESCE({c}, 0) + {BROKEN_MARK} AS {c}")
            } else {
                c.to_string()
            });
        }
        let sampled = if ds.as_str() <= LOGGING_CUTOFF {
            " AND right(event_id, 1) IN ('0', '2', '4', '6', '8')"
        } else {
            ""
        };
        let sql = format!(
            "SELECT {} FROM {V1_OUT} WHERE ds = '{ds}'{sampled}",
            sel.join(", ")
        );
        let (schema, batches) = d
            .engine
            .session()
            .query_with_schema(&sql, "log table")
            .unwrap();
        d.wh.write_partition(&t, &[("ds".into(), ds.clone())], schema, &batches)
            .unwrap();
    }
    let props: BTreeMap<String, String> = [
        (LOG_TABLE_PROPERTY.to_string(), "true".to_string()),
        (
            format!("{SCHEMA_HASH_PREFIX}{}", full.hash()),
            full.to_json(),
        ),
        (format!("{SCHEMA_HASH_PREFIX}{}", old.hash()), old.to_json()),
    ]
    .into();
    d.wh.set_properties(&t, &props).unwrap();
    d.engine.refresh().unwrap();
    (full, old)
}

/// Where a cell of the online joins' output should come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Origin {
    Backfill,
    Log,
    Computed,
}

#[test]
fn h_one_off_backfill_overrides_broken_logged_values_and_logs_win_over_computation() {
    let d = Demo::new();
    let v1 = d.rows(V1_OUT);
    let (full, old) = write_log_table(&d);
    let logged = d.rows(LOGGED);
    staging_query(&d.engine, "driver_table.log_union_v1");
    // the left: v1's drivers up to the cutoff, the logged requests after it (all logged)
    let left = d.rows("risk.risk_driver_table_log_union_v1");
    assert_eq!(
        left.keys().collect::<Vec<_>>(),
        v1.keys().collect::<Vec<_>>()
    );

    let backfill = join("risk/checkout_online.backfill_2026_02_10");
    let b = d.run(&backfill);
    assert_eq!(b.written, vec![Ds::parse(BROKEN_DS).unwrap()]);
    let fixed = d.rows(&output(&backfill));
    assert_eq!(fixed.len(), v1.keys().filter(|k| k.1 == BROKEN_DS).count());
    for (k, row) in &fixed {
        for c in PAGE_VIEWS_V1 {
            same(&row[c], &v1[k][c], &format!("{k:?} {c} (one-off backfill)"));
        }
    }

    let online = join("risk/checkout_online.v1");
    let patched = join("risk/checkout_online.patched_v1");
    let r_online = d.run(&online);
    let r_patched = d.run(&patched);
    let mut counts: BTreeMap<(String, Origin), u64> = BTreeMap::new();
    for (j, r, patch) in [(&online, &r_online, false), (&patched, &r_patched, true)] {
        let name = &j.meta_data.name;
        let out = d.rows(&output(j));
        assert_eq!(
            out.keys().collect::<Vec<_>>(),
            v1.keys().collect::<Vec<_>>(),
            "{name}"
        );
        let mut cols_expected: Vec<String> = LEFT.iter().map(|c| c.to_string()).collect();
        cols_expected.extend(production().iter().map(|c| c.to_string()));
        cols_expected.extend(CONTEXTUAL.iter().map(|c| format!("ext_contextual_{c}")));
        assert_eq!(columns(&d.wh, &output(j)), cols_expected, "{name}");
        let (mut log_rows, mut full_rows) = (0u64, 0u64);
        for (k, row) in &out {
            let log = logged.get(k);
            let full_schema = log.is_some_and(|l| l["schema_hash"] == V::Str(full.hash()));
            if let Some(l) = log {
                log_rows += 1;
                full_rows += u64::from(full_schema);
                let h = &l["schema_hash"];
                assert!(*h == V::Str(full.hash()) || *h == V::Str(old.hash()));
            }
            for c in production() {
                let is_page = PAGE_VIEWS_V1.contains(&c);
                let (want, from) = match log {
                    Some(l) if !is_page || full_schema => {
                        if patch && is_page && k.1 == BROKEN_DS && !fixed[k][c].is_null() {
                            (fixed[k][c].clone(), Origin::Backfill)
                        } else {
                            (l[c].clone(), Origin::Log)
                        }
                    }
                    _ => (v1[k][c].clone(), Origin::Computed),
                };
                same(&row[c], &want, &format!("{name} {k:?} {c} ({from:?})"));
                if patch && !want.is_null() {
                    *counts.entry((c.to_string(), from)).or_default() += 1;
                }
            }
            for c in CONTEXTUAL {
                same(
                    &row[&format!("ext_contextual_{c}")],
                    &row[c],
                    &format!("{name} {k:?} {c}"),
                );
            }
        }
        // the broken day: v1 keeps the broken values; the patched join has the fixed ones,
        // except where the fix is NULL (NULL falls through to the log: a bootstrap cannot
        // override a value with NULL)
        let broken: Vec<&(String, String)> = out.keys().filter(|k| k.1 == BROKEN_DS).collect();
        let still_broken = broken
            .iter()
            .filter(|k| {
                out[**k][PAGE_VIEWS_V1[0]]
                    .as_i64()
                    .is_some_and(|v| v >= BROKEN_MARK)
            })
            .count();
        if patch {
            let null_fixes = broken
                .iter()
                .filter(|k| fixed[**k][PAGE_VIEWS_V1[0]].is_null())
                .count();
            assert_eq!(still_broken, null_fixes, "{name}");
            assert!(still_broken < broken.len() / 2, "{name}");
        } else {
            assert_eq!(
                still_broken,
                broken.len(),
                "{name}: the log's broken values"
            );
        }
        // provenance: logged rows skip purchases; full-schema rows skip page views too
        let p = r.provenance.clone().expect("provenance");
        let n = out.len() as u64;
        assert!(log_rows > full_rows && full_rows > 0 && log_rows < n);
        let (covered, computed) = coverage(&p, "risk_purchases_v1");
        assert_eq!(covered, log_rows, "{name}");
        assert!(computed <= n - log_rows && computed > 0, "{name}");
        let (covered, computed) = coverage(&p, "risk_page_views_v1");
        assert_eq!(covered, full_rows, "{name}");
        assert!(computed <= n - full_rows && computed > 0, "{name}");
    }
    let p = r_patched.provenance.clone().unwrap();
    assert_eq!(
        p.bootstrap_parts,
        vec![
            "risk.risk_checkout_online_backfill_2026_02_10".to_string(),
            format!("{LOGGED} (log)")
        ]
    );
    for c in production() {
        let n = |f: Origin| counts.get(&(c.to_string(), f)).copied().unwrap_or(0);
        let cp = &p.columns[c];
        assert_eq!(
            cp.bootstrap,
            vec![n(Origin::Backfill), n(Origin::Log)],
            "{c}"
        );
        assert_eq!(cp.computed, n(Origin::Computed), "{c}");
        if PAGE_VIEWS_V1.contains(&c) {
            assert!(n(Origin::Backfill) > 0 && n(Origin::Log) > 0, "{c}");
        }
    }
}

// ------------------------------------------------------------------------------------------
// A bootstrap partition re-landed under a live runner
// ------------------------------------------------------------------------------------------

fn partition_bytes(wh: &Warehouse, table: &str) -> BTreeMap<Ds, Vec<u8>> {
    let t = TableName::parse(table).unwrap();
    wh.partitions(&t)
        .unwrap()
        .into_iter()
        .map(|ds| {
            let files = wh.partition_files(&t, ds).unwrap();
            (
                ds,
                files
                    .iter()
                    .flat_map(|f| std::fs::read(f).unwrap())
                    .collect(),
            )
        })
        .collect()
}

/// Re-lands partition `ds` of v1's output from a SELECT over it (`exprs` replace columns).
fn reland_v1(d: &Demo, ds: &str, exprs: &BTreeMap<&str, String>, wheres: &str) {
    let cols = columns(&d.wh, V1_OUT);
    let sel: Vec<String> = cols
        .iter()
        .filter(|c| *c != "ds")
        .map(|c| match exprs.get(c.as_str()) {
            Some(e) => format!("{e} AS {c}"),
            None => c.clone(),
        })
        .collect();
    let sql = format!(
        "SELECT {} FROM {V1_OUT} WHERE ds = '{ds}'{wheres}",
        sel.join(", ")
    );
    let (schema, batches) = d
        .engine
        .session()
        .query_with_schema(&sql, "re-landing")
        .unwrap();
    let t = TableName::parse(V1_OUT).unwrap();
    d.wh.write_partition(&t, &[("ds".into(), ds.into())], schema, &batches)
        .unwrap();
    d.engine.refresh().unwrap();
}

#[track_caller]
fn same_rows(a: &Rows, b: &Rows, what: &str) {
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        b.keys().collect::<Vec<_>>(),
        "{what}"
    );
    for (k, ra) in a {
        let rb = &b[k];
        assert_eq!(
            ra.keys().collect::<Vec<_>>(),
            rb.keys().collect::<Vec<_>>(),
            "{what}"
        );
        for (c, v) in ra {
            same(v, &rb[c], &format!("{what} {k:?} {c}"));
        }
    }
}

#[test]
fn relanded_bootstrap_partition_rewrites_only_its_rows_and_equals_a_fresh_run() {
    let d = Demo::new();
    let v1 = d.rows(V1_OUT);
    let v2 = join("risk/checkout.v2");
    let out_t = output(&v2);
    let opts = JoinOptions::through(end());
    let mut runner = JoinRunner::new(&v2).unwrap();
    let first = runner.run(&d.engine, &opts, &|_, _, _| {}).unwrap();
    assert_eq!(first.written.len(), 43);
    d.engine.refresh().unwrap();
    let before = d.rows(&out_t);
    let bytes_before = partition_bytes(&d.wh, &out_t);

    // v1's partition of one day is re-landed: a feature changed for every row, one value
    // became NULL, one row is gone
    let day = "2026-01-20";
    let of_day: Vec<(&String, &Row)> = v1
        .iter()
        .filter(|(k, _)| k.1 == day)
        .map(|(k, r)| (&k.0, r))
        .collect();
    let with_views = |r: &Row| !r[PAGE_VIEWS_V1[0]].is_null();
    let nulled = of_day
        .iter()
        .find(|(_, r)| with_views(r))
        .unwrap()
        .0
        .clone();
    let dropped = of_day
        .iter()
        .rev()
        .find(|(_, r)| with_views(r) && !r[PURCHASES_V1[2]].is_null())
        .unwrap()
        .0
        .clone();
    assert_ne!(nulled, dropped);
    let sum30 = PURCHASES_V1[2];
    let exprs = BTreeMap::from([
        (sum30, format!("{sum30} + 7")),
        (
            PAGE_VIEWS_V1[0],
            format!(
                "CASE WHEN event_id = '{nulled}' THEN NULL ELSE {} END",
                PAGE_VIEWS_V1[0]
            ),
        ),
    ]);
    let dds = Ds::parse(day).unwrap();
    let orig = v1_partition(&d.wh, dds);
    reland_v1(&d, day, &exprs, &format!(" AND event_id <> '{dropped}'"));
    let r = runner.run(&d.engine, &opts, &|_, _, _| {}).unwrap();
    d.engine.refresh().unwrap();
    assert_eq!(
        r.rewritten,
        vec![dds],
        "only the re-landed day is rewritten"
    );
    assert!(r.written.is_empty());
    let after = d.rows(&out_t);
    let bytes_after = partition_bytes(&d.wh, &out_t);
    for (ds, b) in &bytes_before {
        if *ds != dds {
            assert!(bytes_after[ds] == *b, "partition {ds} untouched");
        }
    }
    assert_eq!(
        after.keys().collect::<Vec<_>>(),
        before.keys().collect::<Vec<_>>()
    );
    for (k, row) in &after {
        if k.1 != day {
            continue;
        }
        let old = &before[k];
        for (c, v) in row {
            let want = if k.0 == dropped {
                old[c].clone() // no bootstrap row: computed, which equals v1's computation
            } else if c == sum30 {
                old[c].as_i64().map_or(V::Null, |x| V::Int(x + 7))
            } else if c == PAGE_VIEWS_V1[0] && k.0 == nulled {
                V::Null // a NULL from a bootstrap table is trusted: the part stays covered
            } else {
                old[c].clone()
            };
            same(v, &want, &format!("{k:?} {c}"));
        }
    }
    // provenance of the rewritten partition: the dropped row was computed
    let p = r
        .provenance
        .clone()
        .expect("provenance of the rewritten partition");
    let n = of_day.len() as u64;
    assert_eq!(p.rows, n);
    for part in ["risk_purchases_v1", "risk_page_views_v1"] {
        assert_eq!(coverage(&p, part), (n - 1, 1), "{part}");
        assert!(
            read_rows(&r, part) > 0,
            "{part}: the dropped row needs source rows"
        );
    }
    assert_eq!(p.columns[PAGE_VIEWS_V1[0]].computed, 1);

    // a fresh run over the same inputs gives the same output
    let fresh = renamed(&v2, "risk.checkout.v2_fresh");
    d.run(&fresh);
    same_rows(&after, &d.rows(&output(&fresh)), "incremental vs fresh");

    // the partition landed back as it was: the first output again
    let t = TableName::parse(V1_OUT).unwrap();
    d.wh.write_partition(&t, &[("ds".into(), day.into())], orig.0.clone(), &orig.1)
        .unwrap();
    d.engine.refresh().unwrap();
    let r = runner.run(&d.engine, &opts, &|_, _, _| {}).unwrap();
    assert_eq!(r.rewritten, vec![dds]);
    d.engine.refresh().unwrap();
    same_rows(&d.rows(&out_t), &before, "restored");
}

/// Partition `ds` of v1's output as written (without the partition column).
fn v1_partition(wh: &Warehouse, ds: Ds) -> (Arc<Schema>, Vec<arrow::record_batch::RecordBatch>) {
    let t = TableName::parse(V1_OUT).unwrap();
    let batches = wh.read_partition(&t, ds).unwrap();
    let schema = batches[0].schema();
    let keep: Vec<usize> = (0..schema.fields().len())
        .filter(|&i| schema.field(i).name() != "ds")
        .collect();
    let batches: Vec<_> = batches.iter().map(|b| b.project(&keep).unwrap()).collect();
    (batches[0].schema(), batches)
}
