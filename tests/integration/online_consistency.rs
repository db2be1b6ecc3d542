//! Online/offline consistency (Chronon's FetcherTest `compareTemporalFetch`): a join of a TEMPORAL
//! event GroupBy (several operations and windows, GroupBy derivations), a SNAPSHOT GroupBy and
//! join derivations is backfilled offline for a day; the GroupBys are uploaded as of the day
//! before and the TEMPORAL one's events of the day are streamed; fetching every left row of the
//! day at its own `ts` must give the offline row's values.

use crate::bootfix;
use crate::onlinefix;
use crate::reference;

use std::collections::BTreeMap;
use std::sync::Arc;

use bootfix::*;
use reference::conf::{self, W};
use reference::data::read_table;
use reference::harness::warehouse;
use reference::{output_table, Op, V};
use serde_json::{json, Value as J};
use weft::config::{load_conf, Conf};
use weft::engine::Context;
use weft::online::fetch_join::FetchRequest;
use weft::online::fetcher::Fetcher;
use weft::online::store;
use weft::online::stream::Streamer;
use weft::online::upload::upload;
use weft::partition::{Ds, PartitionRange};

/// TEMPORAL: SUM/COUNT/AVERAGE/LAST_K/MAX over 1h, 1d, 7d and all history; derivation on top.
fn temporal_gb() -> J {
    let mut aggs = conf::aggs_for(
        "amount_dollars",
        Op::Sum,
        &[W::Hours(1), W::Days(1), W::Days(7), W::Unbounded],
        &[],
    );
    aggs.extend(conf::aggs_for(
        "amount_dollars",
        Op::Count,
        &[W::Days(1), W::Unbounded],
        &[],
    ));
    aggs.extend(conf::aggs_for(
        "amount_dollars",
        Op::Average,
        &[W::Days(7)],
        &[],
    ));
    aggs.extend(conf::aggs_for(
        "amount_dollars",
        Op::LastK,
        &[W::Days(1)],
        &[("k", "3")],
    ));
    aggs.extend(conf::aggs_for(
        "amount_dollars",
        Op::Max,
        &[W::Hours(1)],
        &[],
    ));
    let mut gb = conf::group_by(
        "unit_test.user_txn_temporal",
        vec![conf::events_source(
            "data.transactions",
            &["user", "amount_dollars"],
            Some("ts"),
        )],
        &["user"],
        Some(aggs),
        Some(0),
    );
    gb["derivations"] = json!([
        {"name": "*", "expression": "*"},
        {"name": "avg_1d", "expression": "amount_dollars_sum_1d / amount_dollars_count_1d"}
    ]);
    gb
}

fn write_conf(root: &std::path::Path, kind: &str, name: &str, j: &J) -> std::path::PathBuf {
    let (team, rest) = name.split_once('.').unwrap();
    let dir = root.join(kind).join(team);
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(rest);
    std::fs::write(&p, serde_json::to_string_pretty(j).unwrap()).unwrap();
    p
}

fn close(a: &V, b: &J) -> bool {
    match (a, b) {
        (V::Null, J::Null) => true,
        (V::Int(x), J::Number(n)) => n.as_i64() == Some(*x) || n.as_f64() == Some(*x as f64),
        (V::Float(x), J::Number(n)) => n
            .as_f64()
            .is_some_and(|y| (x - y).abs() <= 1e-6 * x.abs().max(1.0)),
        (V::Str(s), J::String(t)) => s == t,
        (V::List(xs), J::Array(ys)) => {
            xs.len() == ys.len() && xs.iter().zip(ys).all(|(x, y)| close(x, y))
        }
        (V::Bool(x), J::Bool(y)) => x == y,
        _ => false,
    }
}

#[test]
fn fetching_each_left_row_at_its_ts_matches_the_backfill() {
    consistency(None);
}

/// The same through Redis.
#[test]
fn fetching_through_redis_matches_the_backfill() {
    let server = onlinefix::RedisServer::start();
    consistency(Some(&server.url()));
}

fn consistency(store_spec: Option<&str>) {
    let db = db(21, 40);
    let (dir, wh) = warehouse(&db);
    let mut j = join(
        "unit_test.online_consistency",
        vec![
            conf::part(temporal_gb(), &[], None),
            conf::part(user_transactions(), &[], Some("snap")),
        ],
    );
    j["derivations"] = json!([
        {"name": "*", "expression": "*"},
        {"name": "ratio", "expression": "unit_test_user_txn_temporal_amount_dollars_sum_1d / snap_unit_test_user_transactions_amount_dollars_sum_30d"}
    ]);
    let conf_root = dir.path().join("conf");
    let join_path = write_conf(&conf_root, "joins", "unit_test.online_consistency", &j);
    let tgb = write_conf(
        &conf_root,
        "group_bys",
        "unit_test.user_txn_temporal",
        &temporal_gb(),
    );
    let mut sgb_json = user_transactions();
    sgb_json["metaData"]["outputNamespace"] = json!("test");
    sgb_json["backfillStartDate"] = json!(day(0));
    let sgb = write_conf(
        &conf_root,
        "group_bys",
        "unit_test.user_transactions",
        &sgb_json,
    );
    // offline
    run_join(&wh, &j);
    let offline = read_table(&wh, &output_table(&j));
    let day_e = end_day();
    let (cols, rows) = offline.parts[&day_e].clone();
    assert!(rows.len() >= 30);

    // online: upload as of the day before, stream the day's events
    let engine = Context::new(&wh).unwrap();
    let st = store::open(store_spec, wh.root()).unwrap();
    let prev = Ds::parse(&day_e).unwrap().shift(-1);
    for p in [&tgb, &sgb] {
        let Conf::GroupBy(gb) = load_conf(p).unwrap() else {
            panic!()
        };
        let r = upload(&engine, st.as_ref(), &gb, prev, &|_, _, _| {}).unwrap();
        assert!(r.keys > 0, "{r:?}");
    }
    let Conf::GroupBy(gb) = load_conf(&tgb).unwrap() else {
        panic!()
    };
    let mut s = Streamer::new(engine.session(), st.as_ref(), &gb).unwrap();
    let e = Ds::parse(&day_e).unwrap();
    s.replay(PartitionRange::new(e, e)).unwrap();
    assert!(s.report.events_written > 0);
    drop(s);
    let fetcher = Fetcher::new(
        weft::sql::Session::new(&wh).unwrap(),
        Arc::clone(&st),
        &conf_root,
    );
    let ci = |c: &str| cols.iter().position(|x| x == c).unwrap();
    let requests: Vec<FetchRequest> = rows
        .iter()
        .map(|r| {
            let mut keys = serde_json::Map::new();
            keys.insert("user".into(), json!(r[ci("user")].as_i64()));
            keys.insert("request_id".into(), json!(r[ci("request_id")].key_string()));
            FetchRequest {
                keys,
                at_millis: r[ci("ts")].as_i64(),
            }
        })
        .collect();
    let _ = join_path;
    let results = fetcher
        .fetch_join("unit_test/online_consistency", &requests, 0)
        .unwrap();
    let features: Vec<&String> = cols
        .iter()
        .filter(|c| !["user", "request_id", "ts"].contains(&c.as_str()))
        .collect();
    assert!(features.len() >= 12, "{features:?}");
    let mut mismatches: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut non_null = 0;
    for (r, res) in rows.iter().zip(&results) {
        assert!(!res.keys().any(|k| k.ends_with("_exception")), "{res:?}");
        for c in &features {
            let got = res.get(c.as_str()).unwrap_or(&J::Null);
            let want = &r[ci(c)];
            if !want.is_null() {
                non_null += 1;
            }
            if !close(want, got) {
                mismatches
                    .entry(c.to_string())
                    .or_default()
                    .push(format!("offline {want:?} online {got}"));
            }
        }
    }
    assert!(
        non_null > rows.len() * 5,
        "too few values to compare: {non_null}"
    );
    assert!(
        mismatches.is_empty(),
        "online differs from offline: {mismatches:#?}"
    );
}
