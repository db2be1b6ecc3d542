//! Archiving a table as Chronon does (`ALTER TABLE t RENAME TO t_<timestamp>` plus the
//! property `chronon_archived=true`): the table folder is renamed in one step, so readers see
//! either the old table or no table, never a half-moved one.

use std::collections::BTreeMap;

use super::{TableName, Warehouse};
use crate::error::{Error, Result};

/// Property set on archived tables.
pub const ARCHIVED_PROPERTY: &str = "chronon_archived";

/// The archive suffix for "now": `yyyyMMddTHHmmss` in UTC, e.g. `20261124T071500`.
pub fn archive_suffix_now() -> String {
    chrono::Utc::now().format("%Y%m%dT%H%M%S").to_string()
}

impl Warehouse {
    /// Renames table `t` to `<name>_<suffix>` in the same namespace and marks it
    /// `chronon_archived=true`. Fails if `t` does not exist or the target name is taken.
    pub fn archive_table(&self, t: &TableName, suffix: &str) -> Result<TableName> {
        let target = TableName::parse(&format!("{}.{}_{suffix}", t.namespace, t.name))?;
        let from = self.table_dir(t);
        if !from.is_dir() {
            return Err(Error::NotFound {
                what: format!(
                    "table `{t}` to archive in warehouse {}",
                    self.root.display()
                ),
                fix: "nothing to archive; check the table name".into(),
            });
        }
        let to = self.table_dir(&target);
        if to.exists() {
            return Err(Error::Usage(format!(
                "cannot archive `{t}` as `{target}`: that table already exists; remove or rename it, or archive again with another suffix"
            )));
        }
        std::fs::rename(&from, &to).map_err(|e| {
            Error::io(
                format!(
                    "archiving table `{t}` as `{target}` (renaming {} to {})",
                    from.display(),
                    to.display()
                ),
                e,
            )
        })?;
        let props = BTreeMap::from([(ARCHIVED_PROPERTY.to_string(), "true".to_string())]);
        self.set_properties(&target, &props)?;
        Ok(target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_renames_and_marks() {
        let dir = tempfile::tempdir().unwrap();
        let wh = Warehouse::open(dir.path()).unwrap();
        let t = TableName::parse("risk.checkout_v1").unwrap();
        std::fs::create_dir_all(wh.table_dir(&t).join("ds=2026-01-01")).unwrap();
        wh.set_properties(
            &t,
            &BTreeMap::from([("semantic_hash".to_string(), "{}".to_string())]),
        )
        .unwrap();
        let a = wh.archive_table(&t, "20261124T071500").unwrap();
        assert_eq!(a.to_string(), "risk.checkout_v1_20261124T071500");
        assert!(!wh.exists(&t));
        assert!(wh.table_dir(&a).join("ds=2026-01-01").is_dir());
        let props = wh.properties(&a).unwrap();
        assert_eq!(props["chronon_archived"], "true");
        assert_eq!(props["semantic_hash"], "{}");
        assert!(wh.archive_table(&t, "x").is_err());
        assert!(archive_suffix_now().len() == 15);
    }
}
