//! Appending files to a partition (for streams such as the raw log table, which gain a file
//! per flush). A file is written and synced under a hidden temporary name inside the partition
//! folder, then published under a fresh `part-<time>-<unique>.parquet` name with a hard link,
//! which fails rather than replace an existing file. Readers see a file completely or not at
//! all; a crash leaves at most a hidden `.append-*.tmp` file, which readers skip.

use std::fs::File;
use std::path::PathBuf;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::write::{spec_label, sync_dir, unique, write_parquet};
use super::{file_name, read_dir_sorted, TableName, Warehouse};
use crate::error::{Error, Result};

impl Warehouse {
    /// Appends one Parquet file holding `batches` (which do not contain the partition columns)
    /// to partition `spec` of `t`, creating the partition folder if needed. Existing files are
    /// never replaced. Returns the new file's path.
    pub fn append_file(
        &self,
        t: &TableName,
        spec: &[(String, String)],
        schema: SchemaRef,
        batches: &[RecordBatch],
    ) -> Result<PathBuf> {
        self.add_file(t, spec, None, schema, batches)
    }

    /// Like [`Warehouse::append_file`], under a name the caller derives from what the file
    /// holds (e.g. the Kafka offsets of its records): a file of that name is replaced, which
    /// only happens when the same records are written again after a crash.
    pub fn put_named_file(
        &self,
        t: &TableName,
        spec: &[(String, String)],
        name: &str,
        schema: SchemaRef,
        batches: &[RecordBatch],
    ) -> Result<PathBuf> {
        self.add_file(t, spec, Some(name), schema, batches)
    }

    fn add_file(
        &self,
        t: &TableName,
        spec: &[(String, String)],
        name: Option<&str>,
        schema: SchemaRef,
        batches: &[RecordBatch],
    ) -> Result<PathBuf> {
        let dir = self.partition_dir(t, spec);
        let where_ = || format!("appending a file to {t} partition {}", spec_label(spec));
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(where_(), e))?;
        let id = unique();
        let tmp = dir.join(format!(".append-{id}.tmp"));
        let result = write_parquet(&tmp, schema, batches, &[]).and_then(|()| {
            if let Some(name) = name {
                let target = dir.join(name);
                std::fs::rename(&tmp, &target).map_err(|e| {
                    Error::io(format!("{} (publishing {})", where_(), target.display()), e)
                })?;
                return Ok(target);
            }
            let target = dir.join(format!("part-{id}.parquet"));
            std::fs::hard_link(&tmp, &target)
                .or_else(|e| {
                    // file systems without hard links: a rename to the (unique) name
                    if e.kind() == std::io::ErrorKind::AlreadyExists || target.exists() {
                        Err(e)
                    } else {
                        std::fs::rename(&tmp, &target)
                    }
                })
                .map_err(|e| {
                    Error::io(format!("{} (publishing {})", where_(), target.display()), e)
                })?;
            Ok(target)
        });
        let _ = std::fs::remove_file(&tmp);
        let target = result?;
        sync_dir(&dir);
        Ok(target)
    }

    /// The Parquet files directly in partition folder `spec` of `t`, sorted by name (hidden and
    /// temporary files skipped; empty if the folder does not exist).
    pub fn files_in(&self, t: &TableName, spec: &[(String, String)]) -> Result<Vec<PathBuf>> {
        let dir = self.partition_dir(t, spec);
        if !dir.is_dir() {
            return Ok(vec![]);
        }
        Ok(read_dir_sorted(&dir)?
            .into_iter()
            .filter(|p| {
                let n = file_name(p);
                n.ends_with(".parquet") && !n.starts_with('.') && p.is_file()
            })
            .collect())
    }

    /// All rows of the given Parquet files, in order.
    pub fn read_files(&self, files: &[PathBuf]) -> Result<Vec<RecordBatch>> {
        let mut out = Vec::new();
        for f in files {
            let ctx = || format!("reading {}", f.display());
            let file = File::open(f).map_err(|e| Error::io(ctx(), e))?;
            let reader = ParquetRecordBatchReaderBuilder::try_new(file)
                .map_err(|e| Error::parquet(ctx(), e))?
                .with_batch_size(65_536)
                .build()
                .map_err(|e| Error::parquet(ctx(), e))?;
            for b in reader {
                out.push(b.map_err(|e| Error::arrow(ctx(), e))?);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, RecordBatch};
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    #[test]
    fn appends_never_replace_and_skip_temporaries() {
        let dir = tempfile::tempdir().unwrap();
        let wh = Warehouse::open(dir.path()).unwrap();
        let t = TableName::parse("logs.raw").unwrap();
        let spec = vec![
            ("ds".to_string(), "2026-03-01".to_string()),
            ("name".to_string(), "a%2Fb".to_string()),
        ];
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, true)]));
        let batch = |v: i64| {
            RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(vec![v]))]).unwrap()
        };
        let a = wh
            .append_file(&t, &spec, schema.clone(), &[batch(1)])
            .unwrap();
        let b = wh
            .append_file(&t, &spec, schema.clone(), &[batch(2)])
            .unwrap();
        assert_ne!(a, b);
        std::fs::write(wh.partition_dir(&t, &spec).join(".append-x.tmp"), b"junk").unwrap();
        let files = wh.files_in(&t, &spec).unwrap();
        assert_eq!(files, vec![a, b], "in write order, temporaries skipped");
        let rows: Vec<i64> = wh
            .read_files(&files)
            .unwrap()
            .iter()
            .flat_map(|b| {
                b.column(0)
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .unwrap()
                    .values()
                    .to_vec()
            })
            .collect();
        assert_eq!(rows, vec![1, 2]);
        assert_eq!(wh.partitions(&t).unwrap().len(), 1);
        assert!(wh
            .files_in(&t, &[("ds".into(), "2026-03-02".into())])
            .unwrap()
            .is_empty());
    }
}
