//! `weft demo` end to end through the binary (small): it runs the feature joins, then the label
//! joins of scenarios I and J, and prints their summary; the label tables exist and hold rows.

use std::collections::BTreeMap;

use weft::sql::Session;
use weft::warehouse::{TableName, Warehouse};

/// `SELECT COUNT(*), COUNT(label_ds)` over a table.
fn counts(engine: &Session, t: &str) -> (i64, i64) {
    let b = engine
        .query(
            &format!("SELECT COUNT(*) AS n, COUNT(label_ds) AS l FROM {t}"),
            "test",
        )
        .unwrap_or_else(|e| panic!("{t}: {e}"));
    let b = b.iter().find(|b| b.num_rows() > 0).expect("a count row");
    let v = |i: usize| {
        b.column(i)
            .as_any()
            .downcast_ref::<arrow::array::Int64Array>()
            .unwrap()
            .value(0)
    };
    (v(0), v(1))
}

#[test]
fn demo_runs_the_feature_and_label_joins() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["demo", "--dir"])
        .arg(&dir)
        .args(["--days", "40", "--checkouts-per-day", "20"])
        .output()
        .expect("running weft demo");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "weft demo failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!stdout.contains("not implemented"), "{stdout}");
    assert!(stdout.contains("4. Labels"), "{stdout}");
    // 40 days end on 2026-02-09; the weekly label runs are 2026-02-02 and 2026-02-09
    for line in [
        "label_ds=2026-02-02: left days [2026-01-04, 2026-01-24], 21 label partition(s) written",
        "label_ds=2026-02-09: left days [2026-01-11, 2026-01-31], 21 label partition(s) written",
        "label_ds=2026-02-02: left days [2026-01-27, 2026-01-27], 1 label partition(s) written",
        "label_ds=2026-02-09: left days [2026-02-03, 2026-02-03], 1 label partition(s) written",
    ] {
        assert!(stdout.contains(line), "{line}:\n{stdout}");
    }

    let wh = Warehouse::open(dir.join("warehouse")).unwrap();
    let engine = Session::new(&wh).unwrap();
    let mut rows = BTreeMap::new();
    for join in [
        "risk.risk_checkout_labels_v1",
        "risk.risk_checkout_labels_v2",
    ] {
        for suffix in ["", "_labels", "_labeled", "_labeled_latest"] {
            let t = format!("{join}{suffix}");
            assert!(wh.exists(&TableName::parse(&t).unwrap()), "{t} exists");
            let (n, labelled) = counts_or_features(&engine, &t, suffix);
            assert!(n > 0, "{t} has rows");
            if !suffix.is_empty() {
                assert!(labelled > 0, "{t} has labelled rows");
            }
            rows.insert(t, (n, labelled));
        }
    }
    // 20 checkouts a day: I labels 2 × 21 days, J 2 × 1 day; every feature row is in _labeled,
    // the 14 days both I runs label twice
    let r = |t: &str| rows[t];
    assert_eq!(r("risk.risk_checkout_labels_v1_labels"), (42 * 20, 42 * 20));
    assert_eq!(r("risk.risk_checkout_labels_v2_labels"), (2 * 20, 2 * 20));
    assert_eq!(
        r("risk.risk_checkout_labels_v1_labeled"),
        (40 * 20 + 14 * 20, 42 * 20)
    );
    assert_eq!(
        r("risk.risk_checkout_labels_v1_labeled_latest"),
        (40 * 20, 28 * 20)
    );
    assert_eq!(
        r("risk.risk_checkout_labels_v2_labeled_latest"),
        (40 * 20, 2 * 20)
    );
    let fraud = engine
        .query(
            "SELECT COUNT(risk_labels_checkout_outcomes_v1_is_fraud) FROM risk.risk_checkout_labels_v1_labels",
            "test",
        )
        .unwrap();
    let fraud = fraud[0]
        .column(0)
        .as_any()
        .downcast_ref::<arrow::array::Int64Array>()
        .unwrap()
        .value(0);
    assert!(
        fraud * 10 > 42 * 20 * 9,
        "most rows have an outcome: {fraud}"
    );
    // `tables` and `show` list a label table's label_ds=…/ds=… partitions
    let weft = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_weft"))
            .arg("--warehouse")
            .arg(dir.join("warehouse"))
            .args(args)
            .output()
            .expect("running weft");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let tables = weft(&["tables", "risk"]);
    let line = tables
        .lines()
        .find(|l| {
            l.trim_start()
                .starts_with("risk.risk_checkout_labels_v2_labels ")
        })
        .unwrap_or_else(|| panic!("{tables}"));
    let cells: Vec<&str> = line.split_whitespace().collect();
    // table, partitions, range (first .. last), rows
    assert_eq!(cells[1], "2", "{line}");
    assert_eq!(
        cells.last().copied(),
        Some(&*(2 * 20).to_string()),
        "{line}"
    );
    assert!(line.contains("label_ds="), "{line}");
    let show = weft(&["show", "risk.risk_checkout_labels_v2_labels", "--rows", "2"]);
    assert!(
        show.contains("label_ds ") && show.contains("partitions: 2"),
        "{show}"
    );
    assert!(show.contains("sample of label_ds="), "{show}");
}

/// Row counts of a label table, or of the feature table (which has no `label_ds`).
fn counts_or_features(engine: &Session, t: &str, suffix: &str) -> (i64, i64) {
    if suffix.is_empty() {
        let b = engine
            .query(&format!("SELECT COUNT(*) FROM {t}"), "test")
            .unwrap();
        let n = b[0]
            .column(0)
            .as_any()
            .downcast_ref::<arrow::array::Int64Array>()
            .unwrap()
            .value(0);
        (n, 0)
    } else {
        counts(engine, t)
    }
}
