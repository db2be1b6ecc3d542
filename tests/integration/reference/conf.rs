//! Compiled-shape Join/GroupBy JSON for tests, as Chronon's `compile.py` writes it (thrift
//! simple JSON: enums as integers, keys and inputs in the selects, `ts` in event-left selects,
//! GroupBys embedded in join parts).

use serde_json::{json, Map, Value as J};

use super::Op;

/// A window: hours, days or unbounded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum W {
    Hours(i64),
    Days(i64),
    Unbounded,
}

impl W {
    pub fn millis(self) -> Option<i64> {
        match self {
            W::Hours(h) => Some(h * super::HOUR),
            W::Days(d) => Some(d * super::DAY),
            W::Unbounded => None,
        }
    }
    fn json(self) -> Option<J> {
        match self {
            W::Hours(h) => Some(json!({"length": h, "timeUnit": 0})),
            W::Days(d) => Some(json!({"length": d, "timeUnit": 1})),
            W::Unbounded => None,
        }
    }
}

fn selects(cols: &[&str]) -> J {
    let mut m = Map::new();
    for c in cols {
        match c.split_once('=') {
            // "out=expr" renames
            Some((out, expr)) => m.insert(out.to_string(), J::String(expr.to_string())),
            None => m.insert(c.to_string(), J::String(c.to_string())),
        };
    }
    J::Object(m)
}

/// An events left: `selects` (plus `ts`), `timeColumn: ts`.
pub fn events_left(table: &str, cols: &[&str]) -> J {
    let mut s = selects(cols);
    s.as_object_mut()
        .unwrap()
        .entry("ts")
        .or_insert(J::String("ts".into()));
    json!({"events": {"table": table, "query": {"selects": s, "timeColumn": "ts", "setups": []}}})
}

/// An entities left (no time column).
pub fn entities_left(table: &str, cols: &[&str]) -> J {
    json!({"entities": {"snapshotTable": table, "query": {"selects": selects(cols), "setups": []}}})
}

/// An event GroupBy source; `time` is the timeColumn (None: SNAPSHOT sources may omit it).
pub fn events_source(table: &str, cols: &[&str], time: Option<&str>) -> J {
    let mut q = json!({"selects": selects(cols), "setups": []});
    if let Some(t) = time {
        q["timeColumn"] = J::String(t.into());
    }
    json!({"events": {"table": table, "query": q}})
}

/// An entity GroupBy source; with `mutations`, the mutation table and its columns
/// (`mutation_ts`, `is_before`) and a mutation topic (so accuracy infers TEMPORAL).
pub fn entities_source(
    snapshot: &str,
    mutations: Option<&str>,
    cols: &[&str],
    time: Option<&str>,
) -> J {
    let mut q = json!({"selects": selects(cols), "setups": []});
    if let Some(t) = time {
        q["timeColumn"] = J::String(t.into());
    }
    let mut e = json!({"snapshotTable": snapshot, "query": q});
    if let Some(m) = mutations {
        e["mutationTable"] = J::String(m.into());
        e["mutationTopic"] = J::String(format!("{m}_topic"));
        e["query"]["mutationTimeColumn"] = J::String("mutation_ts".into());
        e["query"]["reversalColumn"] = J::String("is_before".into());
    }
    json!({ "entities": e })
}

/// Adds a start/end partition to a source's (or left's) query.
pub fn with_bounds(mut src: J, start: Option<&str>, end: Option<&str>) -> J {
    let kind = if src.get("events").is_some() {
        "events"
    } else {
        "entities"
    };
    if let Some(s) = start {
        src[kind]["query"]["startPartition"] = J::String(s.into());
    }
    if let Some(e) = end {
        src[kind]["query"]["endPartition"] = J::String(e.into());
    }
    src
}

/// One aggregation. Unbounded windows are written as a missing `windows` list (the compiled
/// shape of `windows=None`), so `windows` must be all bounded or exactly `[Unbounded]`.
pub fn agg(input: &str, op: Op, windows: &[W], args: &[(&str, &str)], buckets: &[&str]) -> J {
    let mut a = json!({"inputColumn": input, "operation": op.code(), "argMap": {}});
    for (k, v) in args {
        a["argMap"][*k] = J::String(v.to_string());
    }
    let bounded: Vec<J> = windows.iter().filter_map(|w| w.json()).collect();
    assert!(
        bounded.len() == windows.len() || windows.len() == 1,
        "an unbounded window goes in an aggregation of its own"
    );
    if !bounded.is_empty() {
        a["windows"] = J::Array(bounded);
    }
    if !buckets.is_empty() {
        a["buckets"] = json!(buckets);
    }
    a
}

/// Aggregations of `op` over `input` for each window (an unbounded one gets its own entry).
pub fn aggs_for(input: &str, op: Op, windows: &[W], args: &[(&str, &str)]) -> Vec<J> {
    let bounded: Vec<W> = windows
        .iter()
        .copied()
        .filter(|w| *w != W::Unbounded)
        .collect();
    let mut out = Vec::new();
    if !bounded.is_empty() {
        out.push(agg(input, op, &bounded, args, &[]));
    }
    if windows.contains(&W::Unbounded) {
        out.push(agg(input, op, &[W::Unbounded], args, &[]));
    }
    out
}

/// A GroupBy. `accuracy`: Some(0) TEMPORAL, Some(1) SNAPSHOT, None inferred. `aggs: None`
/// for a GroupBy without aggregations.
pub fn group_by(
    name: &str,
    sources: Vec<J>,
    keys: &[&str],
    aggs: Option<Vec<J>>,
    accuracy: Option<i64>,
) -> J {
    let team = name.split('.').next().unwrap();
    let mut g = json!({
        "metaData": {"name": name, "online": 0, "team": team,
                     "customJson": "{\"lag\": 0, \"groupby_tags\": null, \"column_tags\": {}}"},
        "sources": sources,
        "keyColumns": keys,
    });
    if let Some(a) = aggs {
        g["aggregations"] = J::Array(a);
    }
    if let Some(acc) = accuracy {
        g["accuracy"] = json!(acc);
    }
    g
}

/// A join part with an optional key mapping (left column → GroupBy key) and prefix.
pub fn part(gb: J, key_mapping: &[(&str, &str)], prefix: Option<&str>) -> J {
    let mut p = json!({ "groupBy": gb });
    if !key_mapping.is_empty() {
        let mut m = Map::new();
        for (l, r) in key_mapping {
            m.insert(l.to_string(), J::String(r.to_string()));
        }
        p["keyMapping"] = J::Object(m);
    }
    if let Some(x) = prefix {
        p["prefix"] = J::String(x.into());
    }
    p
}

/// A join named `name` (`team.module.var`) writing to namespace `test`.
pub fn join(name: &str, left: J, parts: Vec<J>) -> J {
    let team = name.split('.').next().unwrap();
    json!({
        "metaData": {
            "name": name, "online": 0, "production": 0, "team": team,
            "outputNamespace": "test",
            "customJson": "{\"check_consistency\": false, \"lag\": 0, \"join_tags\": null, \"join_part_tags\": {}}",
            "tableProperties": {"source": "chronon"},
            "offlineSchedule": "@daily"
        },
        "left": left,
        "joinParts": parts,
    })
}

/// Parses the JSON as weft does for a file under `joins/`.
pub fn parse(j: &J) -> weft::config::Join {
    let text = serde_json::to_string_pretty(j).unwrap();
    let name = j["metaData"]["name"].as_str().unwrap_or("test");
    match weft::config::parse_conf(
        std::path::Path::new(&format!("production/joins/{name}")),
        &text,
    )
    .unwrap_or_else(|e| panic!("weft rejects the test config: {e}\n{text}"))
    {
        weft::config::Conf::Join(j) => *j,
        _ => panic!("not a join"),
    }
}
