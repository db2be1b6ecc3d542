//! Every compiled config in dataflows/production loads into the typed model, and the fields
//! the seed scenarios rely on come through (enums as integers, 0/1 booleans, JSON strings,
//! lower-case `metadata` on external sources).

use std::path::Path;

use weft::config::{conf_files, load_conf, naming, Accuracy, Conf, Operation, Source};

fn production() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("dataflows/production")
}

fn load(rel: &str) -> Conf {
    load_conf(&production().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

#[test]
fn every_compiled_file_loads() {
    let files = conf_files(&production()).unwrap();
    assert!(
        files.len() >= 20,
        "expected the seed scenario configs, found {}",
        files.len()
    );
    let mut kinds = [0usize; 3];
    for f in &files {
        let conf = load_conf(f).unwrap_or_else(|e| panic!("{e}"));
        kinds[match conf {
            Conf::Join(_) => 0,
            Conf::GroupBy(_) => 1,
            Conf::StagingQuery(_) => 2,
        }] += 1;
        assert!(
            naming::output_table(conf.meta()).is_ok(),
            "{}: no output namespace",
            f.display()
        );
    }
    assert!(
        kinds.iter().all(|&k| k > 0),
        "joins, group_bys and staging queries all present: {kinds:?}"
    );
}

#[test]
fn first_join_fields_and_names() {
    let Conf::Join(j) = load("joins/risk/checkout.v1") else {
        panic!("not a join")
    };
    assert_eq!(
        naming::output_table(&j.meta_data).unwrap(),
        "risk.risk_checkout_v1"
    );
    assert_eq!(j.meta_data.online, Some(true), "online: 1 reads as true");
    assert!(j.meta_data.sample_percent.is_some());
    assert!(
        j.meta_data
            .custom_json
            .as_ref()
            .is_some_and(|v| v.is_object()),
        "customJson parsed from its string"
    );
    let Source::Events(left) = &j.left else {
        panic!("event left")
    };
    assert_eq!(left.query.time_column.as_deref(), Some("ts"));
    let gb = &j.join_parts[0].group_by;
    assert_eq!(gb.inferred_accuracy(), Accuracy::Temporal);
    assert_eq!(
        gb.aggregations.as_ref().unwrap()[0].operation,
        Operation::Sum
    );
    let cols: Vec<String> = naming::aggregation_parts(gb)
        .into_iter()
        .map(|p| p.column)
        .collect();
    assert_eq!(cols[0], "amount_cents_sum_1d");
    assert!(cols.contains(&"amount_cents_count_30d".to_string()));
    assert_eq!(
        naming::part_full_prefix(&j.join_parts[0]),
        "risk_purchases_v1"
    );
    assert_eq!(
        j.join_parts[1].group_by.inferred_accuracy(),
        Accuracy::Snapshot
    );
}

#[test]
fn scenario_fields_come_through() {
    let mut saw = (false, false, false, false, false);
    for f in conf_files(&production().join("joins")).unwrap() {
        let Conf::Join(j) = load_conf(&f).unwrap() else {
            continue;
        };
        saw.0 |= !j.bootstrap_parts.is_empty() && !j.row_ids.is_empty();
        saw.1 |= j
            .online_external_parts
            .iter()
            .any(|p| p.source.metadata.name == "contextual");
        saw.2 |= j
            .label_part
            .as_ref()
            .is_some_and(|l| l.left_start_offset > 0 && !l.labels.is_empty());
        saw.3 |= !j.derivations.is_empty();
        saw.4 |= j
            .join_parts
            .iter()
            .any(|p| !p.key_mapping.is_empty() || p.prefix.is_some());
    }
    assert_eq!(
        saw,
        (true, true, true, true, true),
        "(bootstrap+rowIds, contextual external part, labelPart, derivations, keyMapping/prefix)"
    );
}
