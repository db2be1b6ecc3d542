//! Crash-safe partition writes. Files are written and synced under `.weft-staging/`, then the
//! finished folder is renamed into place. On Linux a replaced partition is swapped out in one
//! atomic exchange; elsewhere it is parked in `.weft-trash/`
//! first and restored by `recover` if a crash interrupts the swap. Readers see the old
//! partition or the new one, never a half-written one.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use super::{file_name, read_dir_sorted, TableName, Warehouse, STAGING_DIR, TRASH_DIR};
use crate::error::{Error, Result};

static SEQ: AtomicU64 = AtomicU64::new(0);

/// A name no other write of any process uses: `<nanoseconds since the epoch, 20 digits>-<pid>-
/// <sequence>`, so names sort by write time.
pub(super) fn unique() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{nanos:020}-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

/// Writes `batches` to a new Parquet file at `path` (snappy; `metadata` in its footer) and
/// syncs it to disk.
pub(crate) fn write_parquet(
    path: &Path,
    schema: SchemaRef,
    batches: &[RecordBatch],
    metadata: &[(String, String)],
) -> Result<()> {
    let ctx = || format!("writing {}", path.display());
    let file = File::create(path).map_err(|e| Error::io(ctx(), e))?;
    let kv: Vec<parquet::file::metadata::KeyValue> = metadata
        .iter()
        .map(|(k, v)| parquet::file::metadata::KeyValue::new(k.clone(), v.clone()))
        .collect();
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_key_value_metadata((!kv.is_empty()).then_some(kv))
        .build();
    let mut w =
        ArrowWriter::try_new(file, schema, Some(props)).map_err(|e| Error::parquet(ctx(), e))?;
    for b in batches {
        w.write(b).map_err(|e| Error::parquet(ctx(), e))?;
    }
    let file = w.into_inner().map_err(|e| Error::parquet(ctx(), e))?;
    file.sync_all().map_err(|e| Error::io(ctx(), e))
}

pub(crate) fn sync_dir(dir: &Path) {
    if let Ok(f) = File::open(dir) {
        let _ = f.sync_all();
    }
}

impl Warehouse {
    /// Writes one partition (replacing it if present) from record batches that do not contain
    /// the partition columns. An empty batch list writes an empty partition with the schema.
    pub fn write_partition(
        &self,
        t: &TableName,
        spec: &[(String, String)],
        schema: SchemaRef,
        batches: &[RecordBatch],
    ) -> Result<()> {
        self.write_partition_with(t, spec, schema, batches, &[])
    }

    /// As [`Warehouse::write_partition`], with key-value metadata in the Parquet footer
    /// (written atomically with the data; see [`Warehouse::partition_metadata`]).
    pub fn write_partition_with(
        &self,
        t: &TableName,
        spec: &[(String, String)],
        schema: SchemaRef,
        batches: &[RecordBatch],
        metadata: &[(String, String)],
    ) -> Result<()> {
        let staging = self.root().join(STAGING_DIR).join(unique());
        std::fs::create_dir_all(&staging)
            .map_err(|e| Error::io(format!("creating {}", staging.display()), e))?;
        let file_path = staging.join("part-00000.parquet");
        write_parquet(&file_path, schema, batches, metadata).map_err(|e| match e {
            Error::Io { source, .. } => Error::io(
                format!("writing {} partition {}", t, spec_label(spec)),
                source,
            ),
            other => other,
        })?;
        sync_dir(&staging);
        crate::failpoint::hit("partition-staged");
        self.publish(&staging, &self.partition_dir(t, spec))
    }

    /// Moves a finished staging folder to `target`, parking any existing folder in the trash.
    fn publish(&self, staging: &Path, target: &Path) -> Result<()> {
        let parent = target.parent().expect("partition has a table folder");
        std::fs::create_dir_all(parent)
            .map_err(|e| Error::io(format!("creating {}", parent.display()), e))?;
        if target.exists() && exchange(staging, target).is_ok() {
            // The new partition replaced the old one in one step; the old one is now at `staging`.
            // It is retired, not deleted at once: a reader that listed it a moment ago can
            // still open its files.
            sync_dir(parent);
            crate::failpoint::hit("partition-swapped");
            self.retire(staging);
            return Ok(());
        }
        let mut parked: Option<PathBuf> = None;
        if target.exists() {
            let trash_root = self.root().join(TRASH_DIR);
            std::fs::create_dir_all(&trash_root)
                .map_err(|e| Error::io("creating trash folder", e))?;
            let id = unique();
            let marker = trash_root.join(format!("{id}.target"));
            let relative = target.strip_prefix(self.root()).unwrap_or(target);
            std::fs::write(&marker, relative.to_string_lossy().as_bytes())
                .map_err(|e| Error::io("writing trash marker", e))?;
            let dest = trash_root.join(&id);
            std::fs::rename(target, &dest)
                .map_err(|e| Error::io(format!("parking {}", target.display()), e))?;
            parked = Some(dest);
        }
        std::fs::rename(staging, target)
            .map_err(|e| Error::io(format!("publishing {}", target.display()), e))?;
        sync_dir(parent);
        crate::failpoint::hit("partition-swapped");
        if let Some(p) = parked {
            let _ = std::fs::remove_dir_all(&p);
            let _ = std::fs::remove_file(p.with_extension("target"));
        }
        Ok(())
    }

    /// Moves a replaced partition folder to the trash and empties trash folders retired more
    /// than a minute ago (folders parked mid-swap, with a `.target` marker, are left alone).
    fn retire(&self, old: &Path) {
        let trash_root = self.root().join(TRASH_DIR);
        let _ = std::fs::create_dir_all(&trash_root);
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let name = format!("retired-{now_ms}-{}", unique());
        if std::fs::rename(old, trash_root.join(name)).is_err() {
            let _ = std::fs::remove_dir_all(old);
        }
        let Ok(entries) = std::fs::read_dir(&trash_root) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            // the retirement time is in the name (renaming keeps a folder's own times)
            let retired_ms = name
                .strip_prefix("retired-")
                .and_then(|r| r.split('-').next())
                .and_then(|t| t.parse::<u128>().ok());
            if retired_ms.is_some_and(|t| now_ms.saturating_sub(t) > 60_000) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }

    /// Removes a partition (used when a re-landed input leaves an output partition empty).
    pub fn drop_partition(&self, t: &TableName, spec: &[(String, String)]) -> Result<()> {
        let dir = self.partition_dir(t, spec);
        if dir.exists() {
            let trash = self.root().join(TRASH_DIR).join(unique());
            std::fs::create_dir_all(trash.parent().unwrap())
                .map_err(|e| Error::io("creating trash folder", e))?;
            std::fs::rename(&dir, &trash)
                .map_err(|e| Error::io(format!("removing {}", dir.display()), e))?;
            let _ = std::fs::remove_dir_all(&trash);
        }
        Ok(())
    }
}

/// Atomically swaps two paths (Linux `renameat2(RENAME_EXCHANGE)`), so readers of `b` see the
/// old folder or the new one and never a moment without either.
#[cfg(target_os = "linux")]
fn exchange(a: &Path, b: &Path) -> std::io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let ca = CString::new(a.as_os_str().as_bytes()).map_err(std::io::Error::other)?;
    let cb = CString::new(b.as_os_str().as_bytes()).map_err(std::io::Error::other)?;
    // SAFETY: both paths are valid NUL-terminated strings that outlive the call.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            ca.as_ptr(),
            libc::AT_FDCWD,
            cb.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
fn exchange(_a: &Path, _b: &Path) -> std::io::Result<()> {
    Err(std::io::Error::from(std::io::ErrorKind::Unsupported))
}

pub(crate) fn spec_label(spec: &[(String, String)]) -> String {
    spec.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("/")
}

/// Finishes interrupted swaps: a parked partition whose target is missing is put back;
/// everything else in the staging and trash folders is deleted.
pub(crate) fn recover(wh: &Warehouse) -> Result<()> {
    // only what a process that is gone left behind: a running writer (another command, a
    // materializer) keeps its staging folders and parked partitions
    let trash_root = wh.root().join(TRASH_DIR);
    if trash_root.is_dir() {
        for entry in read_dir_sorted(&trash_root)? {
            if entry.extension().is_some_and(|e| e == "target") && !owner_alive(&entry) {
                let parked = entry.with_extension("");
                let relative = std::fs::read_to_string(&entry).unwrap_or_default();
                let target = wh.root().join(&relative);
                let target = target.to_string_lossy().to_string();
                if parked.is_dir() && !relative.is_empty() && !Path::new(&target).exists() {
                    tracing::warn!(partition = %target, "restoring a partition whose replacement was interrupted");
                    std::fs::rename(&parked, &target)
                        .map_err(|e| Error::io(format!("restoring {target}"), e))?;
                }
                let _ = std::fs::remove_file(&entry);
            }
        }
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        for entry in read_dir_sorted(&trash_root)? {
            let name = file_name(&entry);
            let stale = match name.strip_prefix("retired-") {
                // retired partitions stay a minute for readers that listed them
                Some(r) => r
                    .split('-')
                    .next()
                    .and_then(|t| t.parse::<u128>().ok())
                    .is_none_or(|t| now_ms.saturating_sub(t) > 60_000),
                None => !owner_alive(&entry) && !entry.with_extension("target").exists(),
            };
            if stale {
                let _ = std::fs::remove_dir_all(&entry);
            }
        }
    }
    let staging = wh.root().join(STAGING_DIR);
    if staging.is_dir() {
        for entry in read_dir_sorted(&staging)? {
            if !owner_alive(&entry) {
                tracing::debug!(folder = %file_name(&entry), "removing an unfinished partition write");
                let _ = std::fs::remove_dir_all(&entry);
            }
        }
    }
    Ok(())
}

/// Whether the process that named a staging or trash entry (`<nanos>-<pid>-<seq>`, see
/// [`unique`]) is still running: this process, or one that exists.
fn owner_alive(entry: &Path) -> bool {
    let name = file_name(entry);
    let stem = name.split('.').next().unwrap_or("");
    let fields: Vec<&str> = stem.split('-').collect();
    // anything not named by `unique` (older versions, by hand) belongs to nobody running
    let [nanos, pid, _seq] = fields[..] else {
        return false;
    };
    if nanos.len() != 20 || !nanos.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let Ok(pid) = pid.parse::<u32>() else {
        return false;
    };
    if pid == std::process::id() {
        return true;
    }
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists; nothing is sent.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}
