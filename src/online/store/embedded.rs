//! The embedded online store, the default: one redb file at
//! `<warehouse>/.weft-online/online.redb`.
//!
//! Layout: one redb table per dataset, named `weft.dataset.<dataset>`, keyed by the tuple
//! `(key bytes, version ts)` with the value bytes as the value. redb orders a tuple element by
//! element (bytes lexicographically, then `i64` numerically), so one range scan from
//! `(key, after_ts)` to `(key, i64::MAX)` returns exactly a key's versions at or after `after_ts`,
//! oldest first; inserting an existing `(key, ts)` replaces its value. A table per dataset keeps
//! `drop_before` (a scan of every version) to the dataset it cleans.
//!
//! Concurrency: redb is MVCC. Readers take a snapshot (`begin_read`) and never block, on any
//! number of threads; writers are serialised by redb (one write transaction at a time), and a
//! `multi_put` is one transaction, committed durably before it returns. redb locks the file, so
//! one process holds it: every [`EmbeddedStore`] opened for the same warehouse in a process shares
//! one [`Database`] through a process-wide registry, and a second process gets an error that says
//! which process to stop, or to use Redis.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use redb::{Database, DatabaseError, ReadableDatabase, TableDefinition, TableError, TableHandle};

use super::{check_dataset, store_error, GetRequest, OnlineStore, PutRequest, TimedValue};
use crate::error::{Error, Result};

/// The folder under the warehouse root that holds the store.
pub const FOLDER: &str = ".weft-online";
/// The redb file in [`FOLDER`].
pub const FILE: &str = "online.redb";

/// A key's version: `(key bytes, ts)`.
type VersionKey = (&'static [u8], i64);
type DatasetTable<'a> = TableDefinition<'a, VersionKey, &'static [u8]>;

fn table_name(dataset: &str) -> String {
    format!("weft.dataset.{dataset}")
}

/// The redb store of one warehouse. Cheap to open again: handles share the process's database.
pub struct EmbeddedStore {
    shared: Arc<Shared>,
}

/// One open database, shared by every handle in the process. Dropped (closing the file) when
/// the last handle goes.
struct Shared {
    file: PathBuf,
    /// Always `Some` until dropped; taken in `Drop` so the file closes while the registry is locked.
    db: Option<Database>,
}

impl Shared {
    fn db(&self) -> &Database {
        self.db
            .as_ref()
            .expect("the database is open until the store is dropped")
    }
}

/// Open databases by file, so that a second open in the same process reuses the first.
fn registry() -> &'static Mutex<HashMap<PathBuf, Weak<Shared>>> {
    static REGISTRY: OnceLock<Mutex<HashMap<PathBuf, Weak<Shared>>>> = OnceLock::new();
    REGISTRY.get_or_init(|| Mutex::new(HashMap::new()))
}

impl Drop for Shared {
    fn drop(&mut self) {
        // Close the file and forget it under the registry lock: an `open` that found this entry
        // dead waits for its removal, so it never races redb's file lock.
        let mut registry = registry().lock().unwrap_or_else(|p| p.into_inner());
        drop(self.db.take());
        if registry
            .get(&self.file)
            .is_some_and(|weak| weak.strong_count() == 0)
        {
            registry.remove(&self.file);
        }
    }
}

impl EmbeddedStore {
    /// Opens (creating if needed) the store under `warehouse_root`.
    pub fn open(warehouse_root: &Path) -> Result<EmbeddedStore> {
        let folder = warehouse_root.join(FOLDER);
        std::fs::create_dir_all(&folder).map_err(|e| {
            Error::io(
                format!(
                    "creating the embedded online store folder {} (check that the warehouse \
                     folder is writable)",
                    folder.display()
                ),
                e,
            )
        })?;
        let folder = folder
            .canonicalize()
            .map_err(|e| Error::io(format!("resolving {}", folder.display()), e))?;
        let file = folder.join(FILE);
        loop {
            {
                let mut registry = registry().lock().unwrap_or_else(|p| p.into_inner());
                match registry.get(&file).map(Weak::upgrade) {
                    Some(Some(shared)) => return Ok(EmbeddedStore { shared }),
                    // The last handle is being dropped: wait until its file is closed.
                    Some(None) => {}
                    None => {
                        let db = create_database(&file)?;
                        let shared = Arc::new(Shared {
                            file: file.clone(),
                            db: Some(db),
                        });
                        registry.insert(file, Arc::downgrade(&shared));
                        return Ok(EmbeddedStore { shared });
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// The redb file.
    pub fn file(&self) -> &Path {
        &self.shared.file
    }

    fn name(&self) -> String {
        format!("`{}`", self.shared.file.display())
    }

    fn error(&self, dataset: Option<&str>, action: &str, cause: impl std::fmt::Display) -> Error {
        store_error(
            &self.name(),
            dataset,
            action,
            cause,
            "check the disk (space, permissions) under the warehouse folder; a corrupt file can \
             be deleted and rebuilt by running the uploads again",
        )
    }
}

fn create_database(file: &Path) -> Result<Database> {
    Database::builder().create(file).map_err(|e| {
        let name = format!("`{}`", file.display());
        match e {
            DatabaseError::DatabaseAlreadyOpen | DatabaseError::LockProtocolMismatch => {
                store_error(
                    &name,
                    None,
                    "opening",
                    format!(
                        "the embedded online store at {} is open in another process (e.g. a \
                         running `weft serve`)",
                        file.display()
                    ),
                    "stop that process, or use Redis with --online-store redis://host:port",
                )
            }
            DatabaseError::UpgradeRequired(_) => store_error(
                &name,
                None,
                "opening",
                e,
                "the file was written by another redb version; delete it and run the uploads again",
            ),
            other => store_error(
                &name,
                None,
                "opening",
                other,
                "check the path and permissions; if the file is not a weft online store (or is \
                 corrupt), move it away and run the uploads again",
            ),
        }
    })
}

impl OnlineStore for EmbeddedStore {
    fn multi_put(&self, puts: Vec<PutRequest>) -> Result<()> {
        if puts.is_empty() {
            return Ok(());
        }
        let name = self.name();
        for put in &puts {
            check_dataset(&name, &put.dataset)?;
        }
        let mut by_dataset: HashMap<&str, Vec<&PutRequest>> = HashMap::new();
        for put in &puts {
            by_dataset.entry(&put.dataset).or_default().push(put);
        }
        let txn = self
            .shared
            .db()
            .begin_write()
            .map_err(|e| self.error(None, "starting a write", e))?;
        for (dataset, puts) in by_dataset {
            let name = table_name(dataset);
            let mut table = txn
                .open_table(DatasetTable::new(&name))
                .map_err(|e| self.error(Some(dataset), "opening the dataset for writing", e))?;
            // In call order, so a repeated (key, ts) in one call keeps its last value.
            for put in puts {
                table
                    .insert((put.key.as_slice(), put.ts), put.value.as_slice())
                    .map_err(|e| self.error(Some(dataset), "writing", e))?;
            }
        }
        txn.commit()
            .map_err(|e| self.error(None, &format!("committing {} values", puts.len()), e))
    }

    fn multi_get(&self, gets: &[GetRequest]) -> Vec<Result<Vec<TimedValue>>> {
        if gets.is_empty() {
            return Vec::new();
        }
        let name = self.name();
        let txn = match self.shared.db().begin_read() {
            Ok(txn) => txn,
            Err(e) => {
                let message = e.to_string();
                return gets
                    .iter()
                    .map(|g| Err(self.error(Some(&g.dataset), "starting a read", &message)))
                    .collect();
            }
        };
        // Each dataset's table opened once per call; `None` when the dataset has no data.
        let mut tables: HashMap<&str, std::result::Result<Option<_>, String>> = HashMap::new();
        gets.iter()
            .map(|get| {
                check_dataset(&name, &get.dataset)?;
                let table = tables.entry(&get.dataset).or_insert_with(|| {
                    let name = table_name(&get.dataset);
                    match txn.open_table(DatasetTable::new(&name)) {
                        Ok(table) => Ok(Some(table)),
                        Err(TableError::TableDoesNotExist(_)) => Ok(None),
                        Err(e) => Err(e.to_string()),
                    }
                });
                let table = match table {
                    Ok(Some(table)) => table,
                    Ok(None) => return Ok(Vec::new()),
                    Err(e) => return Err(self.error(Some(&get.dataset), "opening the dataset", e)),
                };
                let key = get.key.as_slice();
                let from = (key, get.after_ts.unwrap_or(i64::MIN));
                let range = redb::ReadableTable::range(table, from..=(key, i64::MAX))
                    .map_err(|e| self.error(Some(&get.dataset), "reading", e))?;
                range
                    .map(|entry| {
                        let (k, v) =
                            entry.map_err(|e| self.error(Some(&get.dataset), "reading", e))?;
                        Ok(TimedValue {
                            value: v.value().to_vec(),
                            ts: k.value().1,
                        })
                    })
                    .collect()
            })
            .collect()
    }

    fn drop_before(&self, dataset: &str, before: i64) -> Result<()> {
        check_dataset(&self.name(), dataset)?;
        let name = table_name(dataset);
        let txn = self
            .shared
            .db()
            .begin_write()
            .map_err(|e| self.error(Some(dataset), "starting a write", e))?;
        let exists = txn
            .list_tables()
            .map_err(|e| self.error(Some(dataset), "listing datasets", e))?
            .any(|t| t.name() == name);
        if !exists {
            return Ok(());
        }
        {
            let mut table = txn
                .open_table(DatasetTable::new(&name))
                .map_err(|e| self.error(Some(dataset), "opening the dataset for writing", e))?;
            table
                .retain(|(_, ts), _| ts >= before)
                .map_err(|e| self.error(Some(dataset), "dropping old versions", e))?;
        }
        txn.commit()
            .map_err(|e| self.error(Some(dataset), "committing the dropped versions", e))
    }

    fn describe(&self) -> String {
        format!("embedded: {}", self.shared.file.display())
    }
}
