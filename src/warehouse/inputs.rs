//! Input records: for each partition of an output table, a digest of the input partitions it
//! was computed from (their fingerprints), kept in `_weft_inputs.json` in the table folder and
//! replaced atomically after the partitions. A job that finds a partition whose record is
//! missing or differs from its inputs' current digest knows the partition may be stale; one
//! whose record matches can be trusted without recomputing it (a restart, a second backfill).
//! A crash between a partition swap and the record update leaves an old record, which only
//! costs a recomputation.

use std::collections::BTreeMap;

use super::{TableName, Warehouse};
use crate::error::{Error, Result};
use crate::partition::Ds;

const FILE: &str = "_weft_inputs.json";

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Records {
    /// Partition value → inputs digest (hex).
    partitions: BTreeMap<String, String>,
}

impl Warehouse {
    /// The stored inputs digest of every recorded partition of `t` (empty when none).
    pub fn input_records(&self, t: &TableName) -> Result<BTreeMap<Ds, String>> {
        let path = self.table_dir(t).join(FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
            Err(e) => return Err(Error::io(format!("reading {}", path.display()), e)),
        };
        // a corrupt record only means "recompute": it never blocks a job
        let Ok(records) = serde_json::from_str::<Records>(&text) else {
            tracing::warn!(table = %t, file = %path.display(), "input records unreadable: every partition is treated as stale");
            return Ok(BTreeMap::new());
        };
        Ok(records
            .partitions
            .into_iter()
            .filter_map(|(k, v)| Ds::parse(&k).ok().map(|d| (d, v)))
            .collect())
    }

    /// Replaces the records of the partitions in `set` and drops those `drop` names; the file
    /// is rewritten only when that changes it.
    pub fn update_input_records(
        &self,
        t: &TableName,
        set: &BTreeMap<Ds, String>,
        drop: &dyn Fn(Ds) -> bool,
    ) -> Result<()> {
        let before = self.input_records(t)?;
        let mut all = before.clone();
        all.retain(|d, _| !drop(*d));
        all.extend(set.iter().map(|(d, v)| (*d, v.clone())));
        if all == before {
            return Ok(());
        }
        let dir = self.table_dir(t);
        if !dir.is_dir() {
            return Ok(()); // nothing written: nothing to describe
        }
        let records = Records {
            partitions: all.into_iter().map(|(d, v)| (d.to_string(), v)).collect(),
        };
        let text = serde_json::to_string_pretty(&records).expect("serializable");
        let tmp = dir.join(format!(".{FILE}.tmp-{}", std::process::id()));
        std::fs::write(&tmp, text)
            .map_err(|e| Error::io(format!("writing {}", tmp.display()), e))?;
        std::fs::rename(&tmp, dir.join(FILE))
            .map_err(|e| Error::io(format!("replacing {FILE} in {}", dir.display()), e))
    }
}
