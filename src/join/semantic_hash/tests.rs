//! Hashing and reuse decisions against Chronon's rules (chronon-semantics §3.7).

use super::*;
use crate::config::{load_conf, Conf, Derivation, Source};
use std::path::Path;

fn production_join(name: &str) -> Join {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("dataflows/production/joins")
        .join(name);
    match load_conf(&path).unwrap() {
        Conf::Join(j) => *j,
        other => panic!("not a join: {:?}", other.kind()),
    }
}

fn checkout() -> Join {
    production_join("risk/checkout.v1")
}

const OUT: &str = "risk.risk_checkout_v1";

fn decide_fixed(old: &Join, new: &Join) -> Decision {
    let o = semantic_hash(old).unwrap();
    let n = semantic_hash(new).unwrap();
    decide(Some(&o), &n, new).with_archive_suffix("20261124T071500")
}

fn derivation(name: &str, expression: &str) -> Derivation {
    Derivation {
        name: name.into(),
        expression: expression.into(),
        meta_data: None,
    }
}

#[test]
fn hash_function_is_stable() {
    // Pinned: canonical JSON `{"a":1,"b":[2,{"c":"x"}]}` → base64(MD5) prefix.
    let v: Value = serde_json::from_str(r#"{"b":[2,{"c":"x","d":null}],"a":1,"e":[]}"#).unwrap();
    assert_eq!(canonical_json(&v), r#"{"a":1,"b":[2,{"c":"x"}]}"#);
    assert_eq!(hash_json(&v), "cq8BFKtOAS");
    assert_eq!(hash_json(&v).len(), 10);
}

#[test]
fn java_hash_code_matches_java() {
    // "hello".hashCode() == 99162322 == 0x5e918d2; "" → 0; negative values print unsigned.
    assert_eq!(java_string_hash("hello"), 99162322);
    assert_eq!(derived_hash(&[]), "0");
    assert_eq!(derived_hash(&[derivation("*", "*")]), "499c45f2");
    // Negative hash codes print as unsigned hex, as Integer.toHexString does.
    assert_eq!(java_string_hash("polygenelubricants"), i32::MIN);
    assert_eq!(
        derived_hash(&[
            derivation("double_amount", "amount * 2"),
            derivation("*", "*")
        ]),
        "d74c4a2a"
    );
}

#[test]
fn hash_keys_follow_chronon() {
    let j = checkout();
    let h = semantic_hash(&j).unwrap();
    let keys: Vec<&str> = h.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        vec![
            "risk.risk_checkout_v1_risk_purchases_v1",
            "risk.risk_checkout_v1_risk_page_views_v1",
            "left_source",
            "risk.risk_checkout_v1_bootstrap",
        ]
    );
    assert!(h.values().all(|v| v.len() == 10));
    // Same value twice, and from a fresh load.
    assert_eq!(h, semantic_hash(&checkout()).unwrap());
    let d = production_join("risk/checkout_derived.v1");
    assert!(semantic_hash(&d).unwrap().contains_key(DERIVED_KEY));
}

fn reverse_keys(v: Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut pairs: Vec<(String, Value)> = m.into_iter().collect();
            pairs.reverse();
            Value::Object(
                pairs
                    .into_iter()
                    .map(|(k, v)| (k, reverse_keys(v)))
                    .collect(),
            )
        }
        Value::Array(a) => Value::Array(a.into_iter().map(reverse_keys).collect()),
        o => o,
    }
}

#[test]
fn hash_ignores_json_key_order() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("dataflows/production/joins/risk/checkout_derived.v1");
    let text = std::fs::read_to_string(&path).unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    let reversed = serde_json::to_string(&reverse_keys(doc)).unwrap();
    assert_ne!(text.trim(), reversed);
    let a = match crate::config::parse_conf(&path, &text).unwrap() {
        Conf::Join(j) => semantic_hash(&j).unwrap(),
        _ => unreachable!(),
    };
    let b = match crate::config::parse_conf(&path, &reversed).unwrap() {
        Conf::Join(j) => semantic_hash(&j).unwrap(),
        _ => unreachable!(),
    };
    assert_eq!(a, b);
}

#[test]
fn topics_do_not_count() {
    let j = checkout();
    let before = semantic_hash(&j).unwrap();
    let mut t = j.clone();
    if let Source::Events(e) = &mut t.left {
        e.topic = Some("kafka://checkouts".into());
    }
    for p in &mut t.join_parts {
        for s in &mut p.group_by.sources {
            match s {
                Source::Events(e) => e.topic = Some("kafka://x/y".into()),
                Source::Entities(e) => e.mutation_topic = Some("kafka://m".into()),
                Source::JoinSource(_) => {}
            }
        }
    }
    assert_eq!(before, semantic_hash(&t).unwrap());
    // Other edits of a source do count.
    if let Source::Events(e) = &mut t.left {
        e.table = "risk.other".into();
    }
    assert_ne!(
        before[LEFT_SOURCE_KEY],
        semantic_hash(&t).unwrap()[LEFT_SOURCE_KEY]
    );
    // GroupBy metadata does not.
    let mut m = j.clone();
    m.join_parts[0].group_by.meta_data.description = Some("new docs".into());
    m.join_parts[0].group_by.meta_data.online = Some(false);
    assert_eq!(before, semantic_hash(&m).unwrap());
}

#[test]
fn no_stored_hash_archives_nothing() {
    let j = checkout();
    let d = decide(None, &semantic_hash(&j).unwrap(), &j);
    assert!(!d.had_previous && d.archive.is_empty() && d.full_recompute.is_none());
    assert!(d
        .to_string()
        .starts_with("no semantic hash stored on risk.risk_checkout_v1"));
}

#[test]
fn unchanged_reuses_everything() {
    let j = checkout();
    let d = decide_fixed(&j, &j);
    assert!(d.is_unchanged());
    assert!(d.recompute_parts().is_empty());
    assert_eq!(d.reused_parts.len(), 2);
    assert_eq!(
        d.to_string(),
        "join unchanged since the last run: reusing parts `risk_purchases_v1`, `risk_page_views_v1` and risk.risk_checkout_v1; computing missing partitions"
    );
}

// JoinTest.testVersioning, step 1: a left change archives every part table, the
// bootstrap table and the output.
#[test]
fn left_change_archives_everything() {
    let j = checkout();
    let mut n = j.clone();
    if let Source::Events(e) = &mut n.left {
        e.query.start_partition = Some("2026-01-15".into());
    }
    let d = decide_fixed(&j, &n);
    assert_eq!(d.full_recompute, Some(FullRecompute::LeftChanged));
    assert_eq!(
        d.archive,
        vec![
            format!("{OUT}_risk_purchases_v1"),
            format!("{OUT}_risk_page_views_v1"),
            format!("{OUT}_bootstrap"),
            OUT.to_string(),
        ]
    );
    assert_eq!(d.recompute_parts(), d.all_parts);
    assert!(d.to_string().starts_with(
        "left source changed: archiving risk.risk_checkout_v1_risk_purchases_v1 to risk.risk_checkout_v1_risk_purchases_v1_20261124T071500, "
    ));
    assert!(d.to_string().ends_with(
        "risk.risk_checkout_v1 to risk.risk_checkout_v1_20261124T071500 and recomputing everything"
    ));
}

#[test]
fn bootstrap_change_is_a_full_recompute_but_adding_bootstrap_is_not() {
    let with_bootstrap = production_join("risk/checkout_external.v1");
    assert!(!with_bootstrap.bootstrap_parts.is_empty());
    let mut changed = with_bootstrap.clone();
    changed.bootstrap_parts[0].table = "risk.other_bootstrap".into();
    let d = decide_fixed(&with_bootstrap, &changed);
    assert_eq!(d.full_recompute, Some(FullRecompute::BootstrapChanged));
    // An old hash without a bootstrap entry: adding bootstrap parts only rewrites the output.
    let mut old = semantic_hash(&with_bootstrap).unwrap();
    old.shift_remove(&bootstrap_table(&with_bootstrap).unwrap());
    let d = decide(
        Some(&old),
        &semantic_hash(&with_bootstrap).unwrap(),
        &with_bootstrap,
    );
    assert!(d.full_recompute.is_none() && d.bootstrap_added && d.rewrite_output);
    // ... and a missing entry with no bootstrap parts is no change at all.
    let j = checkout();
    let mut old = semantic_hash(&j).unwrap();
    old.shift_remove(&bootstrap_table(&j).unwrap());
    let d = decide(Some(&old), &semantic_hash(&j).unwrap(), &j);
    assert!(d.is_unchanged());
}

#[test]
fn changed_part_is_recomputed_and_others_reused() {
    let j = checkout();
    let mut n = j.clone();
    n.join_parts[0]
        .group_by
        .key_columns
        .push("merchant_id".into());
    let d = decide_fixed(&j, &n);
    assert!(d.full_recompute.is_none());
    assert_eq!(d.changed_parts, vec![format!("{OUT}_risk_purchases_v1")]);
    assert_eq!(d.reused_parts, vec![format!("{OUT}_risk_page_views_v1")]);
    assert_eq!(
        d.archive,
        vec![format!("{OUT}_risk_purchases_v1"), OUT.to_string()]
    );
    assert_eq!(
        d.to_string(),
        "part `risk_purchases_v1` changed: recomputing 1 of 2 parts; reusing `risk_page_views_v1`; archiving risk.risk_checkout_v1_risk_purchases_v1 to risk.risk_checkout_v1_risk_purchases_v1_20261124T071500, risk.risk_checkout_v1 to risk.risk_checkout_v1_20261124T071500 and rewriting risk.risk_checkout_v1"
    );
}

// JoinTest.testVersioning, step 2: adding a part archives only the output.
#[test]
fn added_part_archives_only_the_output() {
    let j = checkout();
    let mut n = j.clone();
    let mut extra = n.join_parts[0].clone();
    extra.group_by.meta_data.name = "risk.merchant.v1".into();
    n.join_parts.push(extra);
    let d = decide_fixed(&j, &n);
    assert_eq!(d.added_parts, vec![format!("{OUT}_risk_merchant_v1")]);
    assert_eq!(d.archive, vec![OUT.to_string()]);
    assert_eq!(d.recompute_parts(), vec![format!("{OUT}_risk_merchant_v1")]);
    assert_eq!(
        d.to_string(),
        "part `risk_merchant_v1` added: recomputing 1 of 3 parts; reusing `risk_purchases_v1`, `risk_page_views_v1`; archiving risk.risk_checkout_v1 to risk.risk_checkout_v1_20261124T071500 and rewriting risk.risk_checkout_v1"
    );
}

#[test]
fn removed_part_archives_its_table_and_the_output() {
    let j = checkout();
    let mut n = j.clone();
    n.join_parts.remove(1);
    let d = decide_fixed(&j, &n);
    assert_eq!(d.removed_parts, vec![format!("{OUT}_risk_page_views_v1")]);
    assert!(d.recompute_parts().is_empty());
    assert_eq!(
        d.archive,
        vec![format!("{OUT}_risk_page_views_v1"), OUT.to_string()]
    );
    assert!(d.to_string().starts_with(
        "part `risk_page_views_v1` removed: recomputing no parts; reusing `risk_purchases_v1`; archiving"
    ));
}

// JoinTest.testVersioning, step 3: a new prefix is a removed part plus an added one.
#[test]
fn prefix_change_is_remove_plus_add() {
    let j = checkout();
    let mut n = j.clone();
    n.join_parts[1].prefix = Some("user".into());
    let d = decide_fixed(&j, &n);
    assert_eq!(
        d.added_parts,
        vec![format!("{OUT}_user_risk_page_views_v1")]
    );
    assert_eq!(d.removed_parts, vec![format!("{OUT}_risk_page_views_v1")]);
    assert_eq!(
        d.archive,
        vec![format!("{OUT}_risk_page_views_v1"), OUT.to_string()]
    );
    assert_eq!(
        d.recompute_parts(),
        vec![format!("{OUT}_user_risk_page_views_v1")]
    );
    assert!(d.to_string().starts_with(
        "part `user_risk_page_views_v1` added, part `risk_page_views_v1` removed: recomputing 1 of 2 parts; reusing `risk_purchases_v1`"
    ));
}

#[test]
fn derivation_change_rewrites_only_the_output() {
    let j = production_join("risk/checkout_derived.v1");
    let mut n = j.clone();
    n.derivations
        .push(derivation("double_amount", "amount * 2"));
    let d = decide_fixed(&j, &n);
    assert!(d.derived_changed && d.rewrite_output);
    assert!(d.recompute_parts().is_empty());
    assert_eq!(d.archive, vec!["risk.risk_checkout_derived_v1".to_string()]);
    assert!(d
        .to_string()
        .starts_with("derivations changed: recomputing no parts; reusing "));
    // Removing every derivation removes the key: also a change.
    let mut none = j.clone();
    none.derivations.clear();
    assert!(decide_fixed(&j, &none).derived_changed);
    // Adding derivations to a join without them.
    let c = checkout();
    let mut with = c.clone();
    with.derivations = vec![derivation("*", "*")];
    assert!(decide_fixed(&c, &with).derived_changed);
}

#[test]
fn external_parts_with_offline_group_by_are_hashed() {
    let j = production_join("risk/checkout_external.v1");
    let before = semantic_hash(&j).unwrap();
    // Online-only external parts have no part table.
    assert_eq!(before.len(), j.join_parts.len() + 2);
    let mut n = j.clone();
    let ep = n
        .online_external_parts
        .iter_mut()
        .find(|p| p.source.metadata.name != "contextual")
        .unwrap();
    let mut gb = j.join_parts[0].group_by.clone();
    gb.meta_data.name = "risk.service_user_backfill.v1".into();
    ep.source.offline_group_by = Some(gb);
    ep.prefix = Some("svc".into());
    let after = semantic_hash(&n).unwrap();
    let key = "risk.risk_checkout_external_v1_svc_risk_service_user_backfill_v1";
    assert_eq!(after.len(), before.len() + 1);
    assert_eq!(after[key], after.values().next().unwrap().clone());
    let d = decide_fixed(&j, &n);
    assert_eq!(d.added_parts, vec![key.to_string()]);
}

#[test]
fn store_and_load_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let wh = Warehouse::open(dir.path()).unwrap();
    let j = checkout();
    let out = TableName::parse(OUT).unwrap();
    let (h, d) = plan_versioning(&wh, &j).unwrap();
    assert!(!d.had_previous);
    store_semantic_hash(&wh, &out, &h).unwrap();
    let props = wh.properties(&out).unwrap();
    assert_eq!(
        props[SEMANTIC_HASH_OPTIONS_PROPERTY],
        r#"{"exclude_topic":"true"}"#
    );
    let loaded = load_semantic_hash(&wh, &out).unwrap().unwrap();
    assert_eq!(loaded.hash, h);
    assert_eq!(
        loaded.hash.keys().collect::<Vec<_>>(),
        h.keys().collect::<Vec<_>>()
    );
    assert!(loaded.exclude_topic && loaded.weft);
    let (_, d) = plan_versioning(&wh, &j).unwrap();
    assert!(d.had_previous && d.is_unchanged());

    // A left change archives the output (the only table that exists here).
    let mut n = j.clone();
    if let Source::Events(e) = &mut n.left {
        e.query.wheres.push("amount > 0".into());
    }
    let (_, d) = plan_versioning(&wh, &n).unwrap();
    let d = d.with_archive_suffix("20261124T071500");
    let archived = d.apply_archive(&wh).unwrap();
    assert_eq!(archived.len(), 1);
    assert_eq!(
        archived[0].1.to_string(),
        "risk.risk_checkout_v1_20261124T071500"
    );
    assert!(!wh.exists(&out));

    // A hash written without the options (an older Chronon) is refused.
    let t2 = TableName::parse(OUT).unwrap();
    wh.set_properties(
        &t2,
        &BTreeMap::from([(SEMANTIC_HASH_PROPERTY.to_string(), "{}".to_string())]),
    )
    .unwrap();
    let err = plan_versioning(&wh, &j).unwrap_err().to_string();
    assert!(
        err.contains("topics") && err.contains("archive the table by hand"),
        "{err}"
    );
}
