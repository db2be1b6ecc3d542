//! Running weft's join backfill on test data and comparing its output with the reference.

use std::collections::BTreeMap;

use serde_json::Value as J;
use weft::engine::Context;
use weft::engine::{backfill_join, JoinOptions, JoinReport};
use weft::warehouse::Warehouse;

use super::data::{self, Actual};
use super::{conf, expected, output_table, values_match, Db, ExpRow, Expected, Run, V};

/// Backfill options for a run (one worker, 30-day steps unless changed).
pub fn options(run: &Run) -> JoinOptions {
    let mut o = JoinOptions::through(data::ds(&run.end));
    o.start = run.start.as_deref().map(data::ds);
    o
}

/// A fresh warehouse holding `db`.
pub fn warehouse(db: &Db) -> (tempfile::TempDir, Warehouse) {
    let dir = tempfile::tempdir().expect("tempdir");
    let wh = Warehouse::open(dir.path()).expect("warehouse");
    data::write_db(&wh, db);
    (dir, wh)
}

/// Runs weft's backfill of `join` on `wh`.
pub fn backfill(wh: &Warehouse, join: &J, opts: &JoinOptions) -> Result<JoinReport, String> {
    backfill_on(wh, join, opts, 1)
}

/// Runs weft's backfill of `join` on `wh` with `workers` dataflow workers.
pub fn backfill_on(
    wh: &Warehouse,
    join: &J,
    opts: &JoinOptions,
    workers: usize,
) -> Result<JoinReport, String> {
    let engine = Context::with_workers(wh, workers).map_err(|e| format!("engine: {e}"))?;
    backfill_join(&engine, &conf::parse(join), opts, &|_, _, _| {})
        .map_err(|e| format!("weft backfill failed: {e}"))
}

/// Writes `db` to a new warehouse, backfills `join` for `run` and compares with the reference.
pub fn check(join: &J, db: &Db, run: &Run) -> Result<(), String> {
    let exp = expected(join, db, run);
    let (_dir, wh) = warehouse(db);
    backfill(&wh, join, &options(run))?;
    let act = data::read_table(&wh, &output_table(join));
    compare(&exp, &act)
}

/// Like [`check`], and first makes sure the data exercise every feature column: each has a
/// non-NULL expected value somewhere (for hand-made data sets; random cases may be sparse).
pub fn check_rich(join: &J, db: &Db, run: &Run) -> Result<(), String> {
    let exp = expected(join, db, run);
    let rows: Vec<&ExpRow> = exp.parts.values().flatten().collect();
    for (i, c) in exp.feat_cols.iter().enumerate() {
        assert!(
            rows.iter().any(|r| !r.feats[i].matches(&V::Null)),
            "test data too thin: feature {c} is NULL for every left row"
        );
    }
    check(join, db, run)
}

/// Panics with the comparison report.
pub fn assert_ok(r: Result<(), String>) {
    if let Err(e) = r {
        panic!("{e}");
    }
}

fn row_text(cols: &[String], row: &[V]) -> String {
    cols.iter()
        .zip(row)
        .map(|(c, v)| format!("{c}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn exp_text(exp: &Expected, r: &ExpRow) -> String {
    let mut parts: Vec<String> = exp
        .left_cols
        .iter()
        .zip(&r.left)
        .map(|(c, v)| format!("{c}={v}"))
        .collect();
    parts.extend(
        exp.feat_cols
            .iter()
            .zip(&r.feats)
            .map(|(c, e)| format!("{c}={e}")),
    );
    parts.join(", ")
}

/// Compares weft's output with the reference: the same partitions (a partition the reference
/// expects to be empty may be missing), the same columns (left columns first, then the
/// features in Chronon's order), and the same rows as multisets.
pub fn compare(exp: &Expected, act: &Actual) -> Result<(), String> {
    let mut problems: Vec<String> = Vec::new();
    let mut all: Vec<&String> = exp.parts.keys().chain(act.parts.keys()).collect();
    all.sort();
    all.dedup();
    for ds in all {
        let want: &[ExpRow] = exp.parts.get(ds).map(Vec::as_slice).unwrap_or(&[]);
        let Some((cols, rows)) = act.parts.get(ds) else {
            if !want.is_empty() {
                problems.push(format!(
                    "ds={ds}: output partition missing ({} rows expected)",
                    want.len()
                ));
            }
            continue;
        };
        if !exp.parts.contains_key(ds) {
            if !rows.is_empty() {
                problems.push(format!(
                    "ds={ds}: unexpected output partition with {} rows",
                    rows.len()
                ));
            }
            continue;
        }
        // columns
        let pos = |name: &str| cols.iter().position(|c| c == name);
        let missing: Vec<&String> = exp
            .left_cols
            .iter()
            .chain(&exp.feat_cols)
            .filter(|c| pos(c).is_none())
            .collect();
        let extra: Vec<&String> = cols
            .iter()
            .filter(|c| !exp.left_cols.contains(c) && !exp.feat_cols.contains(c))
            .collect();
        if !missing.is_empty() || !extra.is_empty() {
            problems.push(format!(
                "ds={ds}: columns differ: missing {missing:?}, unexpected {extra:?}; output has {cols:?}"
            ));
            continue;
        }
        let feat_order: Vec<&String> = cols.iter().filter(|c| exp.feat_cols.contains(c)).collect();
        let first_feat = exp
            .feat_cols
            .iter()
            .filter_map(|c| pos(c))
            .min()
            .unwrap_or(cols.len());
        let last_left = exp.left_cols.iter().filter_map(|c| pos(c)).max();
        if feat_order.iter().zip(&exp.feat_cols).any(|(a, b)| *a != b)
            || last_left.is_some_and(|l| l > first_feat)
        {
            problems.push(format!(
                "ds={ds}: column order: expected left columns {:?} then features {:?}, output has {cols:?}",
                exp.left_cols, exp.feat_cols
            ));
        }
        let li: Vec<usize> = exp.left_cols.iter().map(|c| pos(c).unwrap()).collect();
        let fi: Vec<usize> = exp.feat_cols.iter().map(|c| pos(c).unwrap()).collect();
        // multiset matching: rows are paired greedily on the left values, then the features
        let mut used = vec![false; want.len()];
        let mut unmatched_actual: Vec<&Vec<V>> = Vec::new();
        for r in rows {
            let left: Vec<&V> = li.iter().map(|&i| &r[i]).collect();
            let found = want.iter().enumerate().position(|(j, w)| {
                !used[j]
                    && w.left.iter().zip(&left).all(|(a, b)| values_match(a, b))
                    && w.feats.iter().zip(&fi).all(|(e, &i)| e.matches(&r[i]))
            });
            match found {
                Some(j) => used[j] = true,
                None => unmatched_actual.push(r),
            }
        }
        let unmatched_expected: Vec<&ExpRow> = want
            .iter()
            .zip(&used)
            .filter(|(_, u)| !**u)
            .map(|(w, _)| w)
            .collect();
        if unmatched_actual.is_empty() && unmatched_expected.is_empty() {
            continue;
        }
        let mut msg = format!(
            "ds={ds}: {} output rows, {} expected; {} output rows match no expected row, {} expected rows are not in the output",
            rows.len(),
            want.len(),
            unmatched_actual.len(),
            unmatched_expected.len()
        );
        // explain: for an unmatched output row, the expected row with the same left values
        for r in unmatched_actual.iter().take(8) {
            let same_left = unmatched_expected.iter().find(|w| {
                w.left
                    .iter()
                    .zip(li.iter())
                    .all(|(a, &i)| values_match(a, &r[i]))
            });
            let left_txt: Vec<String> = exp
                .left_cols
                .iter()
                .zip(&li)
                .map(|(c, &i)| format!("{c}={}", r[i]))
                .collect();
            match same_left {
                Some(w) => {
                    msg.push_str(&format!("\n  row {}:", left_txt.join(", ")));
                    for ((c, e), &i) in exp.feat_cols.iter().zip(&w.feats).zip(&fi) {
                        if !e.matches(&r[i]) {
                            msg.push_str(&format!("\n      {c}: expected {e}, got {}", r[i]));
                        }
                    }
                }
                None => msg.push_str(&format!("\n  unexpected output row: {}", row_text(cols, r))),
            }
        }
        let unexplained: Vec<&&ExpRow> = unmatched_expected
            .iter()
            .filter(|w| {
                !unmatched_actual.iter().any(|r| {
                    w.left
                        .iter()
                        .zip(li.iter())
                        .all(|(a, &i)| values_match(a, &r[i]))
                })
            })
            .collect();
        for w in unexplained.iter().take(8) {
            msg.push_str(&format!("\n  missing expected row: {}", exp_text(exp, w)));
        }
        problems.push(msg);
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "output differs from the reference:\n{}",
            problems.join("\n")
        ))
    }
}

fn sort_key(cols: &[String], row: &[V]) -> String {
    let mut idx: Vec<usize> = (0..cols.len()).collect();
    idx.sort_by_key(|&i| cols[i].clone());
    fn short(v: &V) -> String {
        match v {
            V::Float(f) => format!("{f:.6e}"),
            V::List(l) => l.iter().map(short).collect::<Vec<_>>().join(","),
            V::Map(m) => m
                .iter()
                .map(|(k, v)| format!("{k}:{}", short(v)))
                .collect::<Vec<_>>()
                .join(","),
            other => other.to_string(),
        }
    }
    idx.iter()
        .map(|&i| format!("{}={}", cols[i], short(&row[i])))
        .collect::<Vec<_>>()
        .join("|")
}

/// Two outputs hold the same partitions, columns and rows (as multisets; doubles within
/// 1e-9 relative).
pub fn outputs_equal(a: &Actual, b: &Actual, what_a: &str, what_b: &str) -> Result<(), String> {
    let ka: Vec<&String> = a.parts.keys().collect();
    let kb: Vec<&String> = b.parts.keys().collect();
    if ka != kb {
        return Err(format!(
            "partitions differ: {what_a} has {ka:?}, {what_b} has {kb:?}"
        ));
    }
    for (ds, (ca, ra)) in &a.parts {
        let (cb, rb) = &b.parts[ds];
        if ca != cb {
            return Err(format!(
                "ds={ds}: columns differ: {what_a} {ca:?}, {what_b} {cb:?}"
            ));
        }
        let mut sa: Vec<&Vec<V>> = ra.iter().collect();
        let mut sb: Vec<&Vec<V>> = rb.iter().collect();
        sa.sort_by_key(|r| sort_key(ca, r));
        sb.sort_by_key(|r| sort_key(cb, r));
        if sa.len() != sb.len() {
            return Err(format!(
                "ds={ds}: {what_a} has {} rows, {what_b} {}",
                sa.len(),
                sb.len()
            ));
        }
        for (x, y) in sa.iter().zip(&sb) {
            if !x.iter().zip(y.iter()).all(|(p, q)| values_match(p, q)) {
                return Err(format!(
                    "ds={ds}: rows differ:\n  {what_a}: {}\n  {what_b}: {}",
                    row_text(ca, x),
                    row_text(cb, y)
                ));
            }
        }
    }
    Ok(())
}

/// Like [`outputs_equal`], but doubles must be the same bits (NaN, −0.0 and rounding
/// included): what "incremental equals a fresh run" promises.
pub fn outputs_identical(a: &Actual, b: &Actual, what_a: &str, what_b: &str) -> Result<(), String> {
    outputs_equal(a, b, what_a, what_b)?;
    fn bits(v: &V, out: &mut Vec<u64>) {
        match v {
            V::Float(x) => out.push(x.to_bits()),
            V::List(xs) => xs.iter().for_each(|x| bits(x, out)),
            V::Map(m) => m.values().for_each(|x| bits(x, out)),
            _ => {}
        }
    }
    for (ds, (ca, ra)) in &a.parts {
        let (cb, rb) = &b.parts[ds];
        let mut sa: Vec<&Vec<V>> = ra.iter().collect();
        let mut sb: Vec<&Vec<V>> = rb.iter().collect();
        sa.sort_by_key(|r| sort_key(ca, r));
        sb.sort_by_key(|r| sort_key(cb, r));
        for (x, y) in sa.iter().zip(&sb) {
            let (mut bx, mut by) = (Vec::new(), Vec::new());
            x.iter().for_each(|v| bits(v, &mut bx));
            y.iter().for_each(|v| bits(v, &mut by));
            if bx != by {
                return Err(format!(
                    "ds={ds}: doubles differ in their bits:\n  {what_a}: {}\n  {what_b}: {}",
                    row_text(ca, x),
                    row_text(cb, y)
                ));
            }
        }
    }
    Ok(())
}

/// Copies a warehouse folder, leaving out one table (and weft's hidden folders).
pub fn copy_warehouse_without(src: &std::path::Path, dst: &std::path::Path, skip_table: &str) {
    let (ns, name) = skip_table.split_once('.').unwrap();
    let skip = src.join(ns).join(name);
    fn copy(from: &std::path::Path, to: &std::path::Path, skip: &std::path::Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let n = e.file_name().to_string_lossy().to_string();
            if p == skip || n.starts_with(".weft") {
                continue;
            }
            if p.is_dir() {
                copy(&p, &to.join(&n), skip);
            } else {
                std::fs::copy(&p, to.join(&n)).unwrap();
            }
        }
    }
    copy(src, dst, &skip);
}

/// Row counts of each partition of an output.
pub fn row_counts(a: &Actual) -> BTreeMap<String, usize> {
    a.parts
        .iter()
        .map(|(d, (_, r))| (d.clone(), r.len()))
        .collect()
}
