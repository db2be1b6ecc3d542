//! The crash matrix of `weft materialize`: a materializer run with `--once` is aborted at each
//! named failpoint (`WEFT_FAILPOINT`, as a `kill -9` would stop it) while it computes a new
//! day, then restarted with `--once`. After the restart every maintained table equals a
//! from-scratch backfill of the same inputs, the partitions the new day cannot reach were
//! never rewritten (neither by the crashed run nor by the restart), and no staging or trash
//! entry of the dead process is left behind.

use std::process::Command;

use crate::materialize::{check, day, joins, partition_dirs, Harness, World};
use crate::reference::output_table;

const POINTS: &[&str] = &[
    "join-fed",
    "partition-staged",
    "partition-swapped",
    "epoch-before-manifest",
    "epoch-after-manifest",
];

fn materialize_once(h: &Harness, failpoint: Option<&str>) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_weft"));
    cmd.arg("--warehouse")
        .arg(h.wh.root())
        .args(["materialize", "--once", "--workers", "1", "--conf-root"])
        .arg(&h.confs)
        .arg("--state-dir")
        .arg(&h.state);
    match failpoint {
        Some(p) => cmd.env("WEFT_FAILPOINT", p),
        None => cmd.env_remove("WEFT_FAILPOINT"),
    };
    cmd.output().expect("running weft materialize")
}

fn entries(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|r| {
            r.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_materializer_killed_at_any_failpoint_restarts_to_the_same_tables() {
    for (i, point) in POINTS.iter().enumerate() {
        let mut w = World::new(40 + i as u64);
        let mut h = Harness::new(&w);
        h.materialize("before the crash");
        h.m = None; // the CLI processes take the state folder
        let outs: Vec<String> = joins().iter().map(output_table).collect();
        let before: Vec<_> = outs.iter().map(|o| partition_dirs(&h.wh, o)).collect();
        // a new day lands
        let new_day = w.land_day(&h.wh);

        let crashed = materialize_once(&h, Some(point));
        assert!(
            crashed.status.code().is_none(),
            "{point}: the run was not aborted (exit {:?}): {}",
            crashed.status.code(),
            String::from_utf8_lossy(&crashed.stderr)
        );
        assert!(
            String::from_utf8_lossy(&crashed.stderr).contains(&format!("failpoint {point}")),
            "{point}: {}",
            String::from_utf8_lossy(&crashed.stderr)
        );
        let restarted = materialize_once(&h, None);
        assert_eq!(
            restarted.status.code(),
            Some(0),
            "{point}: restart failed: {}",
            String::from_utf8_lossy(&restarted.stderr)
        );
        check(&h, &w, &format!("restart after {point}"));
        // days the new day cannot reach (its queries may read one event partition back)
        // kept their folders: nothing was rewritten for them
        let reach = day(new_day - 1);
        for (o, b) in outs.iter().zip(&before) {
            let now = partition_dirs(&h.wh, o);
            for (ds, ino) in b.iter().filter(|(d, _)| d.as_str() < reach.as_str()) {
                assert_eq!(now.get(ds), Some(ino), "{point}: {o} {ds} rewritten");
            }
            assert!(
                now.contains_key(&day(new_day)),
                "{point}: {o} misses the new day"
            );
        }
        // the dead process's staging and trash are gone
        for d in [".weft-staging", ".weft-trash"] {
            let left: Vec<String> = entries(&h.wh.root().join(d));
            assert!(left.is_empty(), "{point}: {d} still holds {left:?}");
        }
    }
}

/// A first backfill killed after its first partition is published, then a config change: the
/// semantic hash was stored before that partition, so the next run versions the table (the
/// added part is computed for the partition already there) instead of keeping the old
/// version's partition beside new ones. The result equals a fresh backfill of the new config.
#[test]
fn a_config_change_after_a_crashed_first_backfill_is_versioned() {
    use crate::materialize::events_group_by;
    use crate::reference::conf;
    use crate::reference::data::read_table;
    use crate::reference::harness::{backfill, copy_warehouse_without, options, outputs_equal};
    use crate::reference::Run;

    let w = World::new(77);
    let mut h = Harness::new(&w);
    h.m = None; // nothing computed yet
    let end = day(w.complete_through());
    let file = h.confs.join("joins/test/mat_a.v1");
    let run = |failpoint: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_weft"));
        cmd.arg("--warehouse")
            .arg(h.wh.root())
            .args(["backfill", "--end-ds", &end, "--conf"])
            .arg(&file);
        match failpoint {
            Some(p) => cmd.env("WEFT_FAILPOINT", p),
            None => cmd.env_remove("WEFT_FAILPOINT"),
        };
        cmd.output().unwrap()
    };
    let crashed = run(Some("partition-swapped"));
    assert!(crashed.status.code().is_none(), "{crashed:?}");
    let out = output_table(&joins()[0]);
    let t = weft::warehouse::TableName::parse(&out).unwrap();
    assert_eq!(
        h.wh.partitions(&t).unwrap().len(),
        1,
        "one partition published before the crash"
    );
    // v2: a second part
    let mut v2 = joins()[0].clone();
    v2["joinParts"].as_array_mut().unwrap().push(conf::part(
        events_group_by("test.mat_more.v1"),
        &[],
        Some("more"),
    ));
    std::fs::write(&file, serde_json::to_string_pretty(&v2).unwrap()).unwrap();
    let second = run(None);
    let text = String::from_utf8_lossy(&second.stdout).to_string();
    assert_eq!(
        second.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&second.stderr)
    );
    assert!(!text.contains("no semantic hash stored"), "{text}");
    assert!(text.contains("added"), "the change is named: {text}");
    let copy = tempfile::tempdir().unwrap();
    copy_warehouse_without(h.wh.root(), copy.path(), &out);
    let fresh = weft::warehouse::Warehouse::open(copy.path()).unwrap();
    backfill(&fresh, &v2, &options(&Run::through(&end))).unwrap();
    outputs_equal(
        &read_table(&h.wh, &out),
        &read_table(&fresh, &out),
        "after the crash and the change",
        "fresh v2",
    )
    .unwrap();
}
