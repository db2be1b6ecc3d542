//! Partition fingerprints: a cheap identity of what a partition holds (its files' names,
//! sizes, modification times and inodes), so a running join notices a re-landed partition
//! without reading it.

use std::hash::{Hash, Hasher};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::{read_dir_sorted, TableName, Warehouse};
use crate::error::{Error, Result};
use crate::partition::Ds;

impl Warehouse {
    /// The partitions of `t` by column `col`, each with the fingerprint of its files.
    pub fn partition_fingerprints(&self, t: &TableName, col: &str) -> Result<Vec<(Ds, u64)>> {
        self.partitions_by(t, col)?
            .into_iter()
            .map(|ds| {
                let dir = self.partition_dir(t, &[(col.to_string(), ds.to_string())]);
                let mut h = std::hash::DefaultHasher::new();
                hash_dir(&dir, &mut h)?;
                Ok((ds, h.finish()))
            })
            .collect()
    }
}

impl Warehouse {
    /// The sub-partitions by column `col` under the partition `outer` (such as `label_ds=D`),
    /// each with its fingerprint; empty when `outer` does not exist.
    pub fn sub_partition_fingerprints(
        &self,
        t: &TableName,
        outer: &[(&str, Ds)],
        col: &str,
    ) -> Result<Vec<(Ds, u64)>> {
        let spec: Vec<(String, String)> = outer
            .iter()
            .map(|(c, d)| (c.to_string(), d.to_string()))
            .collect();
        let dir = self.partition_dir(t, &spec);
        if !dir.is_dir() {
            return Ok(vec![]);
        }
        let prefix = format!("{col}=");
        let mut out = Vec::new();
        for p in read_dir_sorted(&dir)? {
            let name = super::file_name(&p);
            let Some(v) = name.strip_prefix(prefix.as_str()) else {
                continue;
            };
            if !p.is_dir() {
                continue;
            }
            let ds = super::partition_value(t, col, v)?;
            let mut h = std::hash::DefaultHasher::new();
            hash_dir(&p, &mut h)?;
            out.push((ds, h.finish()));
        }
        out.sort();
        Ok(out)
    }
}

fn hash_dir(dir: &Path, h: &mut impl Hasher) -> Result<()> {
    let meta =
        std::fs::metadata(dir).map_err(|e| Error::io(format!("reading {}", dir.display()), e))?;
    meta.ino().hash(h);
    for p in read_dir_sorted(dir)? {
        let name = super::file_name(&p);
        if name.starts_with('.') || name.starts_with('_') {
            continue;
        }
        let m =
            std::fs::metadata(&p).map_err(|e| Error::io(format!("reading {}", p.display()), e))?;
        name.hash(h);
        if m.is_dir() {
            hash_dir(&p, h)?;
        } else {
            super::footers::identity(&m).hash(h);
        }
    }
    Ok(())
}
