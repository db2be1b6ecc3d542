//! The online key-value store (chronon-semantics §6.1): datasets of versioned values per key.
//! A value is written with a version (epoch milliseconds); a read returns the versions at or
//! after a time, oldest first. Batch uploads write one version per upload day; streaming
//! writes one version per event. Two implementations behind [`OnlineStore`]: an embedded
//! store under the warehouse folder (the default) and Redis (`redis://host:port`).

use std::path::Path;
use std::sync::Arc;

use crate::error::{Error, Result};

pub mod embedded;
pub mod redis;

/// One value to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutRequest {
    pub dataset: String,
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    /// Version: epoch milliseconds. A put with the same dataset, key and version replaces it.
    pub ts: i64,
}

/// One key to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetRequest {
    pub dataset: String,
    pub key: Vec<u8>,
    /// Only versions with `ts >= after_ts` (all versions when `None`).
    pub after_ts: Option<i64>,
}

/// A stored version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimedValue {
    pub value: Vec<u8>,
    pub ts: i64,
}

/// A key-value store for serving data. Implementations are safe to share between threads.
pub trait OnlineStore: Send + Sync + 'static {
    /// Writes every value (atomically per call where the store allows).
    fn multi_put(&self, puts: Vec<PutRequest>) -> Result<()>;
    /// Reads each request's versions, oldest first; a missing key gives an empty list. Each
    /// request fails or succeeds on its own.
    fn multi_get(&self, gets: &[GetRequest]) -> Vec<Result<Vec<TimedValue>>>;
    /// Removes the versions of a dataset older than `before` (uploads keep a few days).
    fn drop_before(&self, dataset: &str, before: i64) -> Result<()>;
    /// What the store is, for logs and `--help` output (e.g. `embedded: /w/.weft-online`).
    fn describe(&self) -> String;
}

/// The `--online-store` forms [`open`] accepts, for error messages and `--help`.
pub const ACCEPTED_SPECS: &str =
    "`embedded` (the default: a file under the warehouse folder) or `redis://host:port[/db]`";

/// Opens the store named by `spec`: `None` or `"embedded"` for the embedded store under
/// `warehouse_root`, `redis://host:port[/db]` for Redis. Within one process, every open of the
/// same warehouse's embedded store shares one database handle.
pub fn open(spec: Option<&str>, warehouse_root: &Path) -> Result<Arc<dyn OnlineStore>> {
    match spec.map(str::trim) {
        None | Some("embedded") => Ok(Arc::new(embedded::EmbeddedStore::open(warehouse_root)?)),
        Some(url) if url.starts_with("redis://") => {
            Ok(Arc::new(self::redis::RedisStore::open(url)?))
        }
        Some(other) => Err(Error::Usage(format!(
            "--online-store `{other}` is not a store weft knows; accepted forms: {ACCEPTED_SPECS}"
        ))),
    }
}

/// A failure of the store itself (disk, network, a file held by another process): names the
/// store, the dataset when there is one, what was being done, the cause and the fix.
pub(crate) fn store_error(
    store: &str,
    dataset: Option<&str>,
    action: &str,
    cause: impl std::fmt::Display,
    fix: &str,
) -> Error {
    let dataset = dataset
        .map(|d| format!(", dataset `{d}`"))
        .unwrap_or_default();
    Error::io(
        format!("online store {store}{dataset}: {action}"),
        std::io::Error::other(format!("{cause}; fix: {fix}")),
    )
}

/// Rejects a dataset name no store can hold.
pub(crate) fn check_dataset(store: &str, dataset: &str) -> Result<()> {
    if dataset.is_empty() {
        return Err(Error::Usage(format!(
            "online store {store}: a request names an empty dataset; every put and get needs the \
             GroupBy's dataset name (e.g. `MY_GROUPBY_BATCH`)"
        )));
    }
    Ok(())
}
