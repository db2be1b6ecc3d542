//! `weft stream`'s sources: a JSON-lines file (identical events in one millisecond are distinct
//! events, lines that are not events of the table are counted and skipped, a restart resumes
//! from the saved offset) and table replay (repeating a replay changes nothing).

use crate::bootfix;
use crate::onlinefix;
use crate::reference;

use std::io::Write;

use bootfix::*;
use onlinefix::*;
use reference::conf::{self, W};
use reference::harness::warehouse;
use reference::Op;
use serde_json::json;
use weft::config::{load_conf, Conf};
use weft::online::fetch_join::FetchRequest;
use weft::online::fetcher::Fetcher;
use weft::online::stream::Streamer;
use weft::partition::{Ds, PartitionRange};
use weft::sql::Session;

fn temporal() -> serde_json::Value {
    let mut aggs = conf::aggs_for("amount_dollars", Op::Count, &[W::Days(1)], &[]);
    aggs.extend(conf::aggs_for(
        "amount_dollars",
        Op::Sum,
        &[W::Days(1)],
        &[],
    ));
    conf::group_by(
        "unit_test.stream_counts",
        vec![conf::events_source(
            "data.transactions",
            &["user", "amount_dollars"],
            Some("ts"),
        )],
        &["user"],
        Some(aggs),
        Some(0),
    )
}

#[test]
fn file_and_replay_sources() {
    let db = db(51, 5);
    let (dir, wh) = warehouse(&db);
    let root = dir.path().join("conf");
    let path = write_conf(&root, "group_bys", "unit_test.stream_counts", &temporal());
    let store = embedded(&wh);
    let e = Ds::parse(&end_day()).unwrap();
    upload_conf(&wh, store.as_ref(), &path, e.shift(-1));
    let Conf::GroupBy(gb) = load_conf(&path).unwrap() else {
        panic!()
    };
    let engine = Session::new(&wh).unwrap();
    let t = e.start_millis() + 1000;
    let events = dir.path().join("events.jsonl");
    let mut f = std::fs::File::create(&events).unwrap();
    for line in [
        json!({"user": 777, "amount_dollars": 5, "ts": t}).to_string(),
        json!({"user": 777, "amount_dollars": 5, "ts": t}).to_string(),
        "not json".to_string(),
        json!({"user": 777, "amount_dollars": "five", "ts": t}).to_string(),
        json!({"user": 778, "amount_dollars": 9, "ts": t + 1}).to_string(),
    ] {
        writeln!(f, "{line}").unwrap();
    }
    drop(f);
    let mut s = Streamer::new(&engine, store.as_ref(), &gb).unwrap();
    s.follow_file(&events, 100).unwrap();
    assert_eq!(s.report.bad_lines, 2, "{:?}", s.report);
    assert_eq!(s.report.events_written, 3, "{:?}", s.report);
    // resuming reads nothing twice
    s.follow_file(&events, 100).unwrap();
    assert_eq!(s.report.events_written, 3);
    drop(s);
    let fetcher = Fetcher::new(Session::new(&wh).unwrap(), store.clone(), &root);
    let get = |u: i64| {
        fetcher
            .fetch_group_by(
                "unit_test/stream_counts",
                &[FetchRequest {
                    keys: json!({"user": u}).as_object().unwrap().clone(),
                    at_millis: Some(t + 10),
                }],
                0,
            )
            .unwrap()
            .remove(0)
    };
    let r = get(777);
    assert_eq!(r["amount_dollars_count_1d"], json!(2), "{r:?}");
    assert_eq!(r["amount_dollars_sum_1d"], json!(10), "{r:?}");
    assert_eq!(get(778)["amount_dollars_sum_1d"], json!(9));

    // replaying a day twice gives what replaying it once gives
    let users: Vec<i64> = (0..30).collect();
    let snapshot = |f: &Fetcher| -> Vec<serde_json::Value> {
        let reqs: Vec<FetchRequest> = users
            .iter()
            .map(|u| FetchRequest {
                keys: json!({"user": u}).as_object().unwrap().clone(),
                at_millis: Some(e.shift(1).start_millis()),
            })
            .collect();
        f.fetch_group_by("unit_test/stream_counts", &reqs, 0)
            .unwrap()
            .into_iter()
            .map(|m| json!(m))
            .collect()
    };
    let mut s = Streamer::new(&engine, store.as_ref(), &gb).unwrap();
    s.replay(PartitionRange::new(e, e)).unwrap();
    let once = snapshot(&fetcher);
    // the replayed day's values, from the source rows: at midnight after day e the 1-day
    // window (hourly hops) is exactly day e
    let (lo, hi) = (e.start_millis(), e.shift(1).start_millis());
    for (u, got) in users.iter().zip(&once) {
        let amounts: Vec<i64> = db.tables["data.transactions"]
            .parts
            .values()
            .flatten()
            .filter(|r| r[0] == reference::V::Int(*u))
            .filter(|r| matches!(r[2], reference::V::Int(ts) if ts >= lo && ts < hi))
            .filter_map(|r| match r[1] {
                reference::V::Int(a) => Some(a),
                _ => None,
            })
            .collect();
        let (count, sum) = if amounts.is_empty() {
            (json!(null), json!(null))
        } else {
            (json!(amounts.len()), json!(amounts.iter().sum::<i64>()))
        };
        assert_eq!(got["amount_dollars_count_1d"], count, "user {u}: {got}");
        assert_eq!(got["amount_dollars_sum_1d"], sum, "user {u}: {got}");
    }
    assert!(
        once.iter()
            .filter(|v| v["amount_dollars_count_1d"].as_i64().unwrap_or(0) > 0)
            .count()
            > 10
    );
    s.replay(PartitionRange::new(e, e)).unwrap();
    assert_eq!(snapshot(&fetcher), once);
}
