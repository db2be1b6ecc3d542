//! Reading partitions back: record batches, row counts from Parquet footers, and a table's
//! schema merged over its partitions (columns added later are appended).

use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;

use arrow::datatypes::{Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::file::reader::{FileReader, SerializedFileReader};

use super::{file_name, read_dir_sorted, TableName, Warehouse};
use crate::error::{Error, Result};
use crate::partition::Ds;

/// What `weft show` prints about a partition.
#[derive(Debug, Clone)]
pub struct PartitionInfo {
    pub ds: Ds,
    pub files: usize,
    pub rows: u64,
    pub bytes: u64,
}

impl Warehouse {
    /// The Parquet files of one `ds` partition, sorted by name.
    pub fn partition_files(&self, t: &TableName, ds: Ds) -> Result<Vec<PathBuf>> {
        let dir = self.partition_dir(t, &[("ds".into(), ds.to_string())]);
        if !dir.is_dir() {
            return Err(Error::data(
                &t.to_string(),
                Some(&format!("ds={ds}")),
                "partition does not exist",
            )
            .with_fix("land the partition, or choose a range the table covers (see `weft show`)"));
        }
        Ok(read_dir_sorted(&dir)?
            .into_iter()
            .filter(|p| file_name(p).ends_with(".parquet") && !file_name(p).starts_with('.'))
            .collect())
    }

    /// The key-value metadata of a partition's Parquet footers (later files win).
    pub fn partition_metadata(
        &self,
        t: &TableName,
        ds: Ds,
    ) -> Result<std::collections::BTreeMap<String, String>> {
        let mut out = std::collections::BTreeMap::new();
        for f in self.partition_files(t, ds)? {
            let ctx = || format!("reading the footer of {}", f.display());
            let file = File::open(&f).map_err(|e| Error::io(ctx(), e))?;
            let reader = parquet::file::reader::SerializedFileReader::new(file)
                .map_err(|e| Error::parquet(ctx(), e))?;
            use parquet::file::reader::FileReader;
            for kv in reader
                .metadata()
                .file_metadata()
                .key_value_metadata()
                .into_iter()
                .flatten()
            {
                if let Some(v) = &kv.value {
                    out.insert(kv.key.clone(), v.clone());
                }
            }
        }
        Ok(out)
    }

    /// All rows of one partition.
    pub fn read_partition(&self, t: &TableName, ds: Ds) -> Result<Vec<RecordBatch>> {
        self.read_files(&self.partition_files(t, ds)?)
    }

    /// File count, row count and size of each partition, from Parquet footers.
    pub fn partition_infos(&self, t: &TableName) -> Result<Vec<PartitionInfo>> {
        let mut out = Vec::new();
        for ds in self.partitions(t)? {
            let mut info = PartitionInfo {
                ds,
                files: 0,
                rows: 0,
                bytes: 0,
            };
            for f in self.partition_files(t, ds)? {
                let file =
                    File::open(&f).map_err(|e| Error::io(format!("opening {}", f.display()), e))?;
                info.bytes += file.metadata().map(|m| m.len()).unwrap_or(0);
                let r = SerializedFileReader::new(file)
                    .map_err(|e| Error::parquet(format!("reading {}", f.display()), e))?;
                info.rows += r.metadata().file_metadata().num_rows() as u64;
                info.files += 1;
            }
            out.push(info);
        }
        Ok(out)
    }

    /// The schema of one Parquet file's footer.
    /// A data file's schema, from its footer (read once per file, see `footers`).
    fn file_schema(&self, path: &PathBuf) -> Result<SchemaRef> {
        self.schemas.schema(path, || {
            let file = File::open(path)
                .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
            let b = ParquetRecordBatchReaderBuilder::try_new(file)
                .map_err(|e| Error::parquet(format!("reading {}", path.display()), e))?;
            Ok(b.schema().clone())
        })
    }

    /// Every Parquet data file of a table (any partition depth), sorted by path.
    pub fn data_files(&self, t: &TableName) -> Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        let mut stack = vec![self.table_dir(t)];
        while let Some(dir) = stack.pop() {
            if !dir.is_dir() {
                continue;
            }
            for p in read_dir_sorted(&dir)? {
                let name = file_name(&p);
                if name.starts_with('.') || name.starts_with('_') {
                    continue;
                }
                if p.is_dir() {
                    stack.push(p);
                } else if name.ends_with(".parquet") {
                    out.push(p);
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// The table's data schema (without partition columns): columns in order of first
    /// appearance across partitions. A column whose type differs between partitions is an error.
    pub fn table_schema(&self, t: &TableName) -> Result<SchemaRef> {
        self.table_schema_under(t, &["ds".to_string()])
    }

    /// Like [`Warehouse::table_schema`], leaving out the given partition columns.
    pub fn table_schema_under(
        &self,
        t: &TableName,
        partition_cols: &[String],
    ) -> Result<SchemaRef> {
        let files = self.data_files(t)?;
        if files.is_empty() {
            return Err(self.missing_table(t, "a read"));
        }
        let mut fields: Vec<Field> = Vec::new();
        let mut seen_in: Vec<String> = Vec::new();
        let table_dir = self.table_dir(t);
        for f in files {
            let part = f
                .parent()
                .and_then(|p| p.strip_prefix(&table_dir).ok())
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            let s = self.file_schema(&f)?;
            for field in s.fields() {
                if partition_cols.contains(field.name()) {
                    continue;
                }
                match fields.iter().position(|x| x.name() == field.name()) {
                    Some(i) if fields[i].data_type() != field.data_type() => {
                        return Err(Error::Data {
                            location: crate::error::Location {
                                table: t.to_string(),
                                partition: Some(part),
                                column: Some(field.name().clone()),
                            },
                            message: format!(
                                "type {} differs from type {} in partition {}",
                                field.data_type(),
                                fields[i].data_type(),
                                seen_in[i]
                            ),
                            fix: Some("rewrite the older partitions with the new type, or cast the column in the writer".into()),
                        });
                    }
                    Some(_) => {}
                    None => {
                        fields.push(field.as_ref().clone().with_nullable(true));
                        seen_in.push(part.clone());
                    }
                }
            }
        }
        Ok(Arc::new(Schema::new(fields)))
    }
}
