//! Table properties (Chronon's `semantic_hash`, `schema_hash_<h>`, `chronon_log_table`, …),
//! stored as `_weft_table.json` in the table folder and replaced atomically.

use std::collections::BTreeMap;

use super::{TableName, Warehouse};
use crate::error::{Error, Result};

const FILE: &str = "_weft_table.json";

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct TableMeta {
    properties: BTreeMap<String, String>,
}

impl Warehouse {
    /// All properties of a table (empty if none were written).
    pub fn properties(&self, t: &TableName) -> Result<BTreeMap<String, String>> {
        let path = self.table_dir(t).join(FILE);
        if !path.exists() {
            return Ok(BTreeMap::new());
        }
        let text = std::fs::read_to_string(&path)
            .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        let meta: TableMeta = serde_json::from_str(&text).map_err(|e| {
            Error::data(
                &t.to_string(),
                None,
                format!("table properties file {} is corrupt: {e}", path.display()),
            )
            .with_fix("delete the file and re-run the job that writes the table")
        })?;
        Ok(meta.properties)
    }

    /// Merges `props` into the table's properties (existing keys are overwritten).
    pub fn set_properties(&self, t: &TableName, props: &BTreeMap<String, String>) -> Result<()> {
        let mut all = self.properties(t)?;
        all.extend(props.iter().map(|(k, v)| (k.clone(), v.clone())));
        let dir = self.table_dir(t);
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        let text =
            serde_json::to_string_pretty(&TableMeta { properties: all }).expect("serializable");
        let tmp = dir.join(format!(".{FILE}.tmp-{}", std::process::id()));
        std::fs::write(&tmp, text)
            .map_err(|e| Error::io(format!("writing {}", tmp.display()), e))?;
        std::fs::rename(&tmp, dir.join(FILE))
            .map_err(|e| Error::io(format!("replacing {FILE} in {}", dir.display()), e))
    }
}
