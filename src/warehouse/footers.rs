//! [`SchemaCache`]: the Arrow schemas of the warehouse's Parquet files, remembered by path and
//! file identity (size, modification time, inode). weft never changes a data file in place —
//! every write lands new files by an atomic rename — so a file whose identity matches has
//! the footer it had, and a refresh of the SQL session stats a table's files instead of
//! opening and parsing every footer again.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use arrow::datatypes::SchemaRef;

use crate::error::{Error, Result};

/// Past this many files the cache starts over (a bound on its memory; it refills as read).
const MAX_FILES: usize = 200_000;

/// Size, modification time (seconds, nanoseconds) and inode of a file: what tells a data
/// file from the one that was there before (the partition fingerprints hash it too).
pub(super) type Identity = (u64, i64, i64, u64);

/// A file's [`Identity`].
pub(super) fn identity(m: &std::fs::Metadata) -> Identity {
    (m.len(), m.mtime(), m.mtime_nsec(), m.ino())
}

#[derive(Debug, Default)]
pub(super) struct SchemaCache {
    files: Mutex<Files>,
}

#[derive(Debug, Default)]
struct Files {
    by_path: HashMap<PathBuf, (Identity, usize)>,
    /// Distinct schemas (a table's files usually share one).
    schemas: Vec<SchemaRef>,
}

impl SchemaCache {
    /// The schema of the file at `path`: remembered if the file is the one read before,
    /// otherwise read with `read` and remembered.
    pub(super) fn schema(
        &self,
        path: &Path,
        read: impl FnOnce() -> Result<SchemaRef>,
    ) -> Result<SchemaRef> {
        let m = std::fs::metadata(path)
            .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        let id = identity(&m);
        {
            let files = self.files.lock().expect("schema cache lock");
            if let Some(&(known, i)) = files.by_path.get(path) {
                if known == id {
                    return Ok(files.schemas[i].clone());
                }
            }
        }
        let schema = read()?;
        let mut files = self.files.lock().expect("schema cache lock");
        if files.by_path.len() >= MAX_FILES {
            *files = Files::default();
        }
        let i = match files.schemas.iter().position(|s| s == &schema) {
            Some(i) => i,
            None => {
                files.schemas.push(schema.clone());
                files.schemas.len() - 1
            }
        };
        files.by_path.insert(path.to_path_buf(), (id, i));
        Ok(schema)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    fn schema(name: &str) -> SchemaRef {
        Arc::new(Schema::new(vec![Field::new(name, DataType::Int64, true)]))
    }

    /// A file read once is not read again while it is the same file; a file replaced by
    /// another (a new inode, as every weft write makes) is read again.
    #[test]
    fn a_file_is_read_once_until_it_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("part-0.parquet");
        std::fs::write(&path, b"one").unwrap();
        let cache = SchemaCache::default();
        let reads = std::cell::Cell::new(0);
        let read = |name: &'static str| {
            let reads = &reads;
            move || {
                reads.set(reads.get() + 1);
                Ok(schema(name))
            }
        };
        assert_eq!(cache.schema(&path, read("a")).unwrap(), schema("a"));
        assert_eq!(cache.schema(&path, read("b")).unwrap(), schema("a"));
        assert_eq!(
            reads.get(),
            1,
            "the second call was answered from the cache"
        );
        let tmp = dir.path().join(".staged");
        std::fs::write(&tmp, b"another file").unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        assert_eq!(cache.schema(&path, read("b")).unwrap(), schema("b"));
        assert_eq!(reads.get(), 2, "the replaced file was read again");
        let missing = dir.path().join("gone.parquet");
        let err = cache.schema(&missing, read("c")).unwrap_err().to_string();
        assert!(err.contains("gone.parquet"), "{err}");
    }
}
