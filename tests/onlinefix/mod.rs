//! Fixtures for the online tests: a folder of compiled configs (Chronon's metadata store) next
//! to the test warehouse, and uploads of GroupBys into the embedded store.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value as J;
use weft::config::{load_conf, Conf};
use weft::online::store::OnlineStore;
use weft::online::upload::upload;
use weft::partition::Ds;
use weft::sql::Engine;
use weft::warehouse::Warehouse;

/// Writes a compiled config `team.rest` under `root/<kind>/team/rest`.
pub fn write_conf(root: &Path, kind: &str, name: &str, j: &J) -> PathBuf {
    let (team, rest) = name.split_once('.').expect("team.name");
    let dir = root.join(kind).join(team);
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(rest);
    std::fs::write(&p, serde_json::to_string_pretty(j).unwrap()).unwrap();
    p
}

/// Uploads the GroupBy config at `path` as of the end of `ds`.
pub fn upload_conf(wh: &Warehouse, store: &dyn OnlineStore, path: &Path, ds: Ds) -> u64 {
    let engine = Engine::new(wh).unwrap();
    let Conf::GroupBy(gb) = load_conf(path).unwrap() else {
        panic!("{} is not a GroupBy", path.display())
    };
    upload(&engine, store, &gb, ds, &|_, _, _| {})
        .unwrap_or_else(|e| panic!("upload: {e}"))
        .keys
}

/// The embedded store of a warehouse.
pub fn embedded(wh: &Warehouse) -> Arc<dyn OnlineStore> {
    weft::online::store::open(None, wh.root()).unwrap()
}
