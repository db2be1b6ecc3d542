//! ODM label scenarios end to end (odm-scenarios.md I and J; chronon-semantics §7) on a small
//! generated demo warehouse with the real compiled configs of `dataflows/production`:
//!
//! - I `risk.checkout_labels.v1`: entity labels `risk.labels.checkout_outcomes_v1` (is_fraud,
//!   dispute_count of `data.checkout_outcomes`), offsets 30/10: a run for `label_ds` D labels
//!   the left days `[D − 29, D − 9]` with the snapshot of D, joined on user_id;
//! - J `risk.checkout_labels.v2`: aggregated labels `risk.labels.refunds_7d_v1`
//!   (SUM(refund_cents) over 7 days of `data.refunds`), offsets 7/7: a run for D labels the
//!   single left day `D − 6` with the refunds of `[ds 00:00, ds + 7 00:00)`;
//! - J's labels mature: with refund partitions of the window missing the labels are NULL or
//!   partial and the report names the missing partitions; once they land, a run on the same
//!   runner rewrites exactly the label partitions whose values change, which then equal the
//!   full recomputation;
//! - `weft label-join` prints the left days and the offsets and writes the same labels.
//!
//! Expected labels are recomputed here in plain Rust from the generated source tables.

use crate::reference;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use reference::data::read_table;
use reference::V;
use weft::config::{load_conf, Conf, Join};
use weft::demo::{generate, DemoSpec};
use weft::engine::Context;
use weft::engine::{JoinOptions, JoinRunner};
use weft::label::LabelReport;
use weft::partition::{Ds, PartitionRange};
use weft::staging::{self, StagingOptions};
use weft::warehouse::{TableName, Warehouse};

const END: &str = "2026-02-12";
const LEFT: &str = "risk.risk_driver_table_v1";
const V1_OUT: &str = "risk.risk_checkout_labels_v1";
const V2_OUT: &str = "risk.risk_checkout_labels_v2";
const IS_FRAUD: &str = "risk_labels_checkout_outcomes_v1_is_fraud";
const DISPUTES: &str = "risk_labels_checkout_outcomes_v1_dispute_count";
const REFUNDS_7D: &str = "risk_labels_refunds_7d_v1_refund_cents_sum_7d";
const DAY: i64 = 86_400_000;

fn spec() -> DemoSpec {
    // few users, so users come back and refund within a week
    DemoSpec {
        end: d(END),
        users: 60,
        merchants: 20,
        checkouts_per_day: 40,
        ..DemoSpec::default()
    }
}

fn d(s: &str) -> Ds {
    Ds::parse(s).unwrap()
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn conf_path(rel: &str) -> PathBuf {
    repo().join("dataflows/production/joins").join(rel)
}

fn join(rel: &str) -> Join {
    match load_conf(&conf_path(rel)).unwrap() {
        Conf::Join(j) => *j,
        _ => panic!("{rel} is not a join"),
    }
}

/// A test's own demo warehouse with the generated data and risk.risk_driver_table_v1.
struct Demo {
    dir: tempfile::TempDir,
    wh: Warehouse,
    engine: Context,
}

impl Demo {
    fn new() -> Demo {
        let dir = tempfile::tempdir().unwrap();
        let wh = Warehouse::open(dir.path()).unwrap();
        generate(&wh, &spec(), &|_| {}).unwrap();
        let engine = Context::new(&wh).unwrap();
        let Conf::StagingQuery(sq) =
            load_conf(&repo().join("dataflows/production/staging_queries/risk/driver_table.v1"))
                .unwrap()
        else {
            panic!("driver_table.v1 is not a staging query")
        };
        staging::run(
            engine.session(),
            &sq,
            &StagingOptions::through(d(END)),
            &|_, _, _| {},
        )
        .unwrap_or_else(|e| panic!("staging query: {e}"));
        engine.refresh().unwrap();
        Demo { dir, wh, engine }
    }

    /// A runner for the join, its features backfilled through END.
    fn runner(&self, rel: &str) -> JoinRunner {
        let mut r = JoinRunner::new(&join(rel)).unwrap_or_else(|e| panic!("plan {rel}: {e}"));
        let rep = r
            .run(&self.engine, &JoinOptions::through(d(END)), &|_, _, _| {})
            .unwrap_or_else(|e| panic!("feature backfill {rel}: {e}"));
        assert_eq!(
            rep.written.len(),
            43,
            "{rel}: one feature partition per day"
        );
        self.engine.refresh().unwrap();
        r
    }

    fn label(&self, r: &mut JoinRunner, label_ds: &str) -> LabelReport {
        let rep = r
            .label(&self.engine, d(label_ds))
            .unwrap_or_else(|e| panic!("label run {label_ds}: {e}"));
        self.engine.refresh().unwrap();
        rep
    }

    /// Rows of a SQL query, each as column → value (a fresh engine sees every table).
    fn sql(&self, sql: &str) -> Vec<BTreeMap<String, V>> {
        reference::data::sql_rows(&self.wh, sql)
    }

    fn count(&self, table: &str) -> usize {
        let r = self.sql(&format!("SELECT COUNT(*) AS n FROM {table}"));
        r[0]["n"].as_i64().unwrap() as usize
    }
}

/// A left row: (event_id, user_id).
type LeftRow = (String, Option<String>);

/// The driver table's rows by ds.
fn left_rows(wh: &Warehouse) -> BTreeMap<Ds, Vec<LeftRow>> {
    let mut out: BTreeMap<Ds, Vec<LeftRow>> = BTreeMap::new();
    for (ds, (cols, rows)) in read_table(wh, LEFT).parts {
        let e = cols.iter().position(|c| c == "event_id").unwrap();
        let u = cols.iter().position(|c| c == "user_id").unwrap();
        let v = out.entry(d(&ds)).or_default();
        for r in rows {
            let V::Str(id) = &r[e] else {
                panic!("event_id {}", r[e])
            };
            let user = match &r[u] {
                V::Str(s) => Some(s.clone()),
                V::Null => None,
                other => panic!("user_id {other}"),
            };
            v.push((id.clone(), user));
        }
    }
    out
}

/// Scenario I's expectation for one run: (event_id, ds) → (is_fraud, dispute_count) from the
/// snapshot of `label_ds` of data.checkout_outcomes, for the left days `[D − 29, D − 9]`.
fn expected_outcomes(wh: &Warehouse, label_ds: Ds) -> BTreeMap<(String, Ds), (V, V)> {
    let snap = read_table(wh, "data.checkout_outcomes");
    let (cols, rows) = &snap.parts[&label_ds.to_string()];
    let at = |c: &str| cols.iter().position(|x| x == c).unwrap();
    let (u, f, n) = (at("user_id"), at("is_fraud"), at("dispute_count"));
    let by_user: BTreeMap<String, (V, V)> = rows
        .iter()
        .map(|r| {
            let V::Str(user) = &r[u] else { panic!() };
            (user.clone(), (r[f].clone(), r[n].clone()))
        })
        .collect();
    let left = left_rows(wh);
    let mut out = BTreeMap::new();
    for ds in PartitionRange::new(label_ds.shift(-29), label_ds.shift(-9)).days() {
        for (e, user) in &left[&ds] {
            let v = user
                .as_ref()
                .and_then(|u| by_user.get(u).cloned())
                .unwrap_or((V::Null, V::Null));
            out.insert((e.clone(), ds), v);
        }
    }
    out
}

/// Refund events: (user_id, refund_cents, ts), from the partitions `refunds` holds.
fn refund_events(wh: &Warehouse) -> Vec<(String, i64, i64)> {
    let mut out = Vec::new();
    for (_, (cols, rows)) in read_table(wh, "data.refunds").parts {
        let at = |c: &str| cols.iter().position(|x| x == c).unwrap();
        let (u, c, t) = (at("user_id"), at("refund_cents"), at("ts"));
        for r in rows {
            let V::Str(user) = &r[u] else { panic!() };
            out.push((user.clone(), r[c].as_i64().unwrap(), r[t].as_i64().unwrap()));
        }
    }
    out
}

/// Scenario J's expectation for one run: the single left day `ds = D − 6`, each row's
/// SUM(refund_cents) over the user's refunds with ts in `[ds 00:00, ds + 7 00:00)` (NULL when
/// there are none or the row has no user). `skip` leaves out refunds of those partition days.
fn expected_refunds(
    wh: &Warehouse,
    refunds: &[(String, i64, i64)],
    label_ds: Ds,
    skip: &[Ds],
) -> BTreeMap<(String, Ds), V> {
    let ds = label_ds.shift(-6);
    let (lo, hi) = (ds.start_millis(), ds.start_millis() + 7 * DAY);
    let left = left_rows(wh);
    let mut out = BTreeMap::new();
    for (e, user) in &left[&ds] {
        let sum: Option<i64> = user.as_ref().and_then(|u| {
            let vals: Vec<i64> = refunds
                .iter()
                .filter(|(ru, _, ts)| {
                    ru == u && *ts >= lo && *ts < hi && !skip.contains(&Ds::of_millis(*ts))
                })
                .map(|r| r.1)
                .collect();
            (!vals.is_empty()).then(|| vals.iter().sum())
        });
        out.insert((e.clone(), ds), sum.map(V::Int).unwrap_or(V::Null));
    }
    out
}

/// The label table's rows of one `label_ds`: (event_id, ds) → row.
fn label_rows(
    demo: &Demo,
    table: &str,
    label_ds: Ds,
) -> BTreeMap<(String, Ds), BTreeMap<String, V>> {
    let mut out = BTreeMap::new();
    for r in demo.sql(&format!(
        "SELECT * FROM {table}_labels WHERE label_ds = '{label_ds}'"
    )) {
        let V::Str(e) = &r["event_id"] else {
            panic!("{r:?}")
        };
        let V::Str(ds) = &r["ds"] else {
            panic!("{r:?}")
        };
        let key = (e.clone(), d(ds));
        assert!(
            out.insert(key.clone(), r).is_none(),
            "{table}_labels: one row per row identifier, {key:?} twice"
        );
    }
    out
}

fn pairs(label_ds: Ds, days: impl IntoIterator<Item = Ds>) -> Vec<(Ds, Ds)> {
    days.into_iter().map(|ds| (label_ds, ds)).collect()
}

fn sorted(mut v: Vec<(Ds, Ds)>) -> Vec<(Ds, Ds)> {
    v.sort();
    v
}

/// Compares scenario I's label table rows of `label_ds` with the recomputation.
fn check_outcomes(demo: &Demo, label_ds: Ds) {
    let want = expected_outcomes(&demo.wh, label_ds);
    let got = label_rows(demo, V1_OUT, label_ds);
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "label_ds {label_ds}: one label row per left row of [D − 29, D − 9]"
    );
    for (k, (fraud, disputes)) in &want {
        let r = &got[k];
        assert_eq!(&r[IS_FRAUD], fraud, "{k:?} is_fraud: {r:?}");
        assert_eq!(&r[DISPUTES], disputes, "{k:?} dispute_count: {r:?}");
        assert_eq!(r["label_ds"], V::Str(label_ds.to_string()));
    }
    let labelled = want.values().filter(|v| !v.0.is_null()).count();
    assert!(
        labelled * 10 > want.len() * 9,
        "most left rows have a user and so an outcome: {labelled} of {}",
        want.len()
    );
    assert!(
        want.values().any(|v| v.0 == V::Int(1)) && want.values().any(|v| v.0 == V::Int(0)),
        "both outcomes occur"
    );
}

/// Compares scenario J's label table rows of `label_ds` with the recomputation.
fn check_refunds(demo: &Demo, want: &BTreeMap<(String, Ds), V>, label_ds: Ds) {
    let got = label_rows(demo, V2_OUT, label_ds);
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "label_ds {label_ds}: one label row per left row of D − 6"
    );
    for (k, sum) in want {
        assert_eq!(&got[k][REFUNDS_7D], sum, "{k:?}: {:?}", got[k]);
    }
}

// ------------------------------------------------------------------------------------------
// I: entity labels from the snapshot of label_ds
// ------------------------------------------------------------------------------------------

#[test]
fn i_entity_labels_come_from_the_label_ds_snapshot() {
    let demo = Demo::new();
    let mut r = demo.runner("risk/checkout_labels.v1");
    let lp = r.label_plan().expect("v1 has a label part");
    assert_eq!((lp.start_offset, lp.end_offset), (30, 10));
    assert_eq!(lp.row_identifier, ["event_id", "ds"]);
    assert_eq!(lp.schedule, "@weekly");

    let label_ds = d(END);
    let rep = demo.label(&mut r, END);
    let days: Vec<Ds> = PartitionRange::new(d("2026-01-14"), d("2026-02-03"))
        .days()
        .collect();
    assert_eq!(rep.label_ds, Some(label_ds));
    assert_eq!(rep.left_days, days, "[D − 29, D − 9]");
    assert!(rep.missing_left.is_empty(), "{rep:?}");
    assert!(rep.missing_sources.is_empty(), "{rep:?}");
    assert!(rep.missing_features.is_empty(), "{rep:?}");
    assert_eq!(sorted(rep.written.clone()), pairs(label_ds, days.clone()));
    let all_days: Vec<Ds> = PartitionRange::new(spec().start, d(END)).days().collect();
    assert_eq!(
        rep.labeled_written, all_days,
        "the first run writes the labeled tables for every feature day"
    );
    check_outcomes(&demo, label_ds);

    // _labeled: every feature row (43 days), labels on the 21 labelled days only
    let features = demo.count(V1_OUT);
    assert_eq!(demo.count(&format!("{V1_OUT}_labeled")), features);
    assert_eq!(demo.count(&format!("{V1_OUT}_labeled_latest")), features);
    let want = expected_outcomes(&demo.wh, label_ds);
    let labeled = demo.sql(&format!(
        "SELECT event_id, ds, label_ds, label_{IS_FRAUD} AS fraud, label_{DISPUTES} AS disputes, \
         risk_purchases_v1_amount_cents_sum_7d AS f FROM {V1_OUT}_labeled"
    ));
    assert_eq!(labeled.len(), features);
    let mut labelled = 0;
    for row in &labeled {
        let V::Str(e) = &row["event_id"] else {
            panic!()
        };
        let V::Str(ds) = &row["ds"] else { panic!() };
        match want.get(&(e.clone(), d(ds))) {
            Some((fraud, disputes)) => {
                labelled += 1;
                assert_eq!(row["label_ds"], V::Str(END.into()), "{row:?}");
                assert_eq!(&row["fraud"], fraud, "{row:?}");
                assert_eq!(&row["disputes"], disputes, "{row:?}");
            }
            None => {
                assert!(!days.contains(&d(ds)), "{row:?}");
                assert!(
                    row["label_ds"].is_null() && row["fraud"].is_null(),
                    "{row:?}"
                );
            }
        }
    }
    assert_eq!(labelled, want.len());
    assert!(
        labeled.iter().any(|r| !r["f"].is_null()),
        "feature values kept"
    );

    // the previous weekly run: its days overlapping this run's get a second label version
    let older = label_ds.shift(-7);
    let rep = demo.label(&mut r, &older.to_string());
    let older_days: Vec<Ds> = PartitionRange::new(older.shift(-29), older.shift(-9))
        .days()
        .collect();
    assert_eq!(rep.left_days, older_days);
    assert_eq!(
        sorted(rep.written.clone()),
        pairs(older, older_days.clone())
    );
    assert_eq!(
        rep.labeled_written, older_days,
        "only the days with new labels"
    );
    check_outcomes(&demo, older);
    check_outcomes(&demo, label_ds);
    let overlap: Vec<String> = older_days
        .iter()
        .filter(|x| days.contains(x))
        .map(|x| format!("'{x}'"))
        .collect();
    assert_eq!(overlap.len(), 14);
    let overlap_rows = demo.count(&format!("{V1_OUT} WHERE ds IN ({})", overlap.join(", ")));
    assert_eq!(
        demo.count(&format!("{V1_OUT}_labeled")),
        features + overlap_rows,
        "two label versions on the overlapping days"
    );
    // _labeled_latest: one row per feature row, the latest version of each day
    let latest = demo.sql(&format!(
        "SELECT event_id, ds, label_ds, label_{IS_FRAUD} AS fraud FROM {V1_OUT}_labeled_latest"
    ));
    assert_eq!(latest.len(), features);
    let older_want = expected_outcomes(&demo.wh, older);
    for row in &latest {
        let V::Str(e) = &row["event_id"] else {
            panic!()
        };
        let V::Str(ds) = &row["ds"] else { panic!() };
        let key = (e.clone(), d(ds));
        if let Some((fraud, _)) = want.get(&key) {
            assert_eq!(row["label_ds"], V::Str(END.into()), "{row:?}");
            assert_eq!(&row["fraud"], fraud);
        } else if let Some((fraud, _)) = older_want.get(&key) {
            assert_eq!(row["label_ds"], V::Str(older.to_string()), "{row:?}");
            assert_eq!(&row["fraud"], fraud);
        } else {
            assert!(row["label_ds"].is_null(), "{row:?}");
        }
    }
}

// ------------------------------------------------------------------------------------------
// J: aggregated labels over the 7 days starting with the left day
// ------------------------------------------------------------------------------------------

#[test]
fn j_aggregated_labels_sum_the_week_starting_at_the_left_day() {
    let demo = Demo::new();
    let mut r = demo.runner("risk/checkout_labels.v2");
    let lp = r.label_plan().expect("v2 has a label part");
    assert_eq!((lp.start_offset, lp.end_offset), (7, 7));
    let refunds = refund_events(&demo.wh);
    let runs: Vec<Ds> = PartitionRange::new(d(END).shift(-2), d(END))
        .days()
        .collect();
    let mut non_null = 0;
    for &label_ds in &runs {
        let rep = demo.label(&mut r, &label_ds.to_string());
        assert_eq!(rep.left_days, [label_ds.shift(-6)], "the single day D − 6");
        assert_eq!(rep.written, [(label_ds, label_ds.shift(-6))]);
        assert!(rep.missing_sources.is_empty(), "{rep:?}");
        assert!(rep.missing_features.is_empty(), "{rep:?}");
        let want = expected_refunds(&demo.wh, &refunds, label_ds, &[]);
        check_refunds(&demo, &want, label_ds);
        non_null += want.values().filter(|v| !v.is_null()).count();
    }
    assert!(non_null >= 5, "some left rows have refunds: {non_null}");
    // every run's rows still there
    for &label_ds in &runs {
        check_refunds(
            &demo,
            &expected_refunds(&demo.wh, &refunds, label_ds, &[]),
            label_ds,
        );
    }
    // the labeled tables: feature rows; the three labelled days carry their label
    let features = demo.count(V2_OUT);
    assert_eq!(demo.count(&format!("{V2_OUT}_labeled")), features);
    assert_eq!(demo.count(&format!("{V2_OUT}_labeled_latest")), features);
    let labeled = demo.sql(&format!(
        "SELECT event_id, ds, label_ds, label_{REFUNDS_7D} AS refunds FROM {V2_OUT}_labeled_latest \
         WHERE label_ds IS NOT NULL"
    ));
    let mut want = BTreeMap::new();
    for &label_ds in &runs {
        want.extend(expected_refunds(&demo.wh, &refunds, label_ds, &[]));
    }
    assert_eq!(labeled.len(), want.len());
    for row in &labeled {
        let V::Str(e) = &row["event_id"] else {
            panic!()
        };
        let V::Str(ds) = &row["ds"] else { panic!() };
        assert_eq!(row["refunds"], want[&(e.clone(), d(ds))], "{row:?}");
        assert_eq!(row["label_ds"], V::Str(d(ds).shift(6).to_string()));
    }
}

// ------------------------------------------------------------------------------------------
// J: labels mature as late refund partitions land
// ------------------------------------------------------------------------------------------

#[test]
fn j_labels_mature_when_missing_refund_partitions_land() {
    let demo = Demo::new();
    let refunds_t = TableName::parse("data.refunds").unwrap();
    let refunds = refund_events(&demo.wh);
    let end = d(END);
    let runs: Vec<Ds> = PartitionRange::new(end.shift(-2), end).days().collect();
    // the refunds of END − 1 and END are late: in the windows of the last two runs only
    // (run END − 2 covers [END − 8, END − 2])
    let late = [end.shift(-1), end];
    let full: Vec<BTreeMap<(String, Ds), V>> = runs
        .iter()
        .map(|&l| expected_refunds(&demo.wh, &refunds, l, &[]))
        .collect();
    let partial: Vec<BTreeMap<(String, Ds), V>> = runs
        .iter()
        .map(|&l| expected_refunds(&demo.wh, &refunds, l, &late))
        .collect();
    let affected: Vec<(Ds, Ds)> = runs
        .iter()
        .zip(full.iter().zip(&partial))
        .filter(|(_, (f, p))| f != p)
        .map(|(&l, _)| (l, l.shift(-6)))
        .collect();
    assert!(
        !affected.is_empty() && affected.len() < runs.len(),
        "the late refunds change some runs' labels but not all: {affected:?}"
    );
    assert!(!affected.iter().any(|(l, _)| *l == runs[0]));
    let saved: Vec<(Ds, Vec<_>)> = late
        .iter()
        .map(|&x| (x, demo.wh.read_partition(&refunds_t, x).unwrap()))
        .collect();
    for x in late {
        demo.wh
            .drop_partition(&refunds_t, &[("ds".into(), x.to_string())])
            .unwrap();
    }
    // the day before the first window is in no run's window: not missing for any run
    let before_windows = end.shift(-9);
    let kept = demo.wh.read_partition(&refunds_t, before_windows).unwrap();
    demo.wh
        .drop_partition(&refunds_t, &[("ds".into(), before_windows.to_string())])
        .unwrap();

    let mut r = demo.runner("risk/checkout_labels.v2");
    for (i, &label_ds) in runs.iter().enumerate() {
        let rep = demo.label(&mut r, &label_ds.to_string());
        let missing: Vec<Ds> = late.iter().copied().filter(|x| *x <= label_ds).collect();
        if missing.is_empty() {
            assert!(rep.missing_sources.is_empty(), "{rep:?}");
        } else {
            assert_eq!(
                rep.missing_sources,
                [("data.refunds".to_string(), missing)],
                "label_ds {label_ds}"
            );
        }
        assert_eq!(rep.written, [(label_ds, label_ds.shift(-6))]);
        check_refunds(&demo, &partial[i], label_ds);
    }
    // some label is NULL or smaller than its mature value
    let immature = partial
        .iter()
        .zip(&full)
        .flat_map(|(p, f)| p.iter().map(move |(k, v)| (v, &f[k])))
        .filter(|(p, f)| p != f)
        .count();
    assert!(immature > 0);

    // the late partitions land; the same runner picks them up
    for (x, batches) in saved.iter().chain([(before_windows, kept)].iter()) {
        let schema = batches[0].schema();
        demo.wh
            .write_partition(&refunds_t, &[("ds".into(), x.to_string())], schema, batches)
            .unwrap();
    }
    let rep = demo.label(&mut r, END);
    assert!(rep.missing_sources.is_empty(), "{rep:?}");
    assert_eq!(
        sorted(rep.written.clone()),
        affected,
        "only the label partitions whose values change are rewritten"
    );
    let affected_days: Vec<Ds> = affected.iter().map(|p| p.1).collect();
    assert_eq!(rep.labeled_written, affected_days);
    for (i, &label_ds) in runs.iter().enumerate() {
        check_refunds(&demo, &full[i], label_ds);
    }
    // nothing changed since: nothing rewritten
    let rep = demo.label(&mut r, END);
    assert!(
        rep.written.is_empty() && rep.labeled_written.is_empty(),
        "{rep:?}"
    );

    // a fresh runner on the landed data writes the same labels
    let before: Vec<_> = runs.iter().map(|&l| label_rows(&demo, V2_OUT, l)).collect();
    let mut fresh = JoinRunner::new(&join("risk/checkout_labels.v2")).unwrap();
    for &label_ds in &runs {
        demo.label(&mut fresh, &label_ds.to_string());
    }
    let after: Vec<_> = runs.iter().map(|&l| label_rows(&demo, V2_OUT, l)).collect();
    assert_eq!(before, after);
}

// ------------------------------------------------------------------------------------------
// The CLI
// ------------------------------------------------------------------------------------------

fn cli(wh: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_weft"))
        .arg("--warehouse")
        .arg(wh)
        .args(args)
        .output()
        .expect("running weft");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "weft {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn cli_label_join_prints_the_left_days_and_offsets_and_writes_the_labels() {
    let demo = Demo::new();
    demo.runner("risk/checkout_labels.v1");
    demo.runner("risk/checkout_labels.v2");
    let root = demo.dir.path();

    let v1 = conf_path("risk/checkout_labels.v1");
    let out = cli(
        root,
        &[
            "label-join",
            "--conf",
            v1.to_str().unwrap(),
            "--label-ds",
            END,
        ],
    );
    assert!(out.contains("risk.checkout_labels.v1"), "{out}");
    assert!(out.contains("label_ds=2026-02-12"), "{out}");
    assert!(out.contains("left days [2026-01-14, 2026-02-03]"), "{out}");
    assert!(out.contains("offsets 30/10"), "{out}");
    assert!(
        out.contains(&format!("{V1_OUT}_labels: 21 partition(s) written")),
        "{out}"
    );
    assert!(
        out.contains("43 day(s) rewritten")
            && !out.contains("lacks")
            && !out.contains("no feature partition"),
        "nothing missing: {out}"
    );
    check_outcomes(&demo, d(END));

    // v2 over three label days: one run each, the single left day D − 6
    let v2 = conf_path("risk/checkout_labels.v2");
    let out = cli(
        root,
        &[
            "label-join",
            "--conf",
            v2.to_str().unwrap(),
            "--from-label-ds",
            "2026-02-10",
            "--label-ds",
            END,
        ],
    );
    let refunds = refund_events(&demo.wh);
    for (label_ds, left) in [
        ("2026-02-10", "2026-02-04"),
        ("2026-02-11", "2026-02-05"),
        ("2026-02-12", "2026-02-06"),
    ] {
        assert!(
            out.contains(&format!(
                "label_ds={label_ds}, left days [{left}, {left}] (offsets 7/7"
            )),
            "{out}"
        );
        check_refunds(
            &demo,
            &expected_refunds(&demo.wh, &refunds, d(label_ds), &[]),
            d(label_ds),
        );
    }
    assert_eq!(
        out.matches(&format!("{V2_OUT}_labels: 1 partition(s) written"))
            .count(),
        3,
        "{out}"
    );
    let labelled: BTreeSet<String> = demo
        .sql(&format!(
            "SELECT DISTINCT ds FROM {V2_OUT}_labeled_latest WHERE label_ds IS NOT NULL"
        ))
        .into_iter()
        .map(|r| match &r["ds"] {
            V::Str(s) => s.clone(),
            other => panic!("{other}"),
        })
        .collect();
    assert_eq!(
        labelled.into_iter().collect::<Vec<_>>(),
        ["2026-02-04", "2026-02-05", "2026-02-06"]
    );
}
