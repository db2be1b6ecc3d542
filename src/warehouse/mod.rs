//! The embedded warehouse: a folder of Hive-layout Parquet tables
//! (`<root>/<ns>/<name>/ds=YYYY-MM-DD/*.parquet`, readable by DuckDB, pyarrow and Spark),
//! with table properties stored beside the data (`properties`), crash-safe partition
//! writes (`write`) and file appends to a partition (`append`).

pub(crate) mod append;
pub(crate) mod archive;
mod fingerprint;
mod footers;
mod inputs;
mod lock;
pub(crate) mod properties;
pub(crate) mod read;
pub(crate) mod types;
pub(crate) mod write;

use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::partition::Ds;

pub(crate) use lock::flock_file;
pub use lock::TableLock;
pub use read::PartitionInfo;

/// The partition column every table has.
pub const DS: &str = "ds";

/// Folder for partitions being written (renamed into place when complete).
const STAGING_DIR: &str = ".weft-staging";
/// Folder for partitions being replaced (restored if a crash interrupts the swap).
const TRASH_DIR: &str = ".weft-trash";

/// A table name `ns.name`; a name without a namespace lives in `default`.
/// Chronon sub-partition specs (`ns.t/k=v`) are kept as equality filters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TableName {
    pub namespace: String,
    pub name: String,
    pub sub_partition_filters: Vec<(String, String)>,
}

impl TableName {
    pub fn parse(s: &str) -> Result<TableName> {
        let mut pieces = s.trim().split('/');
        let base = pieces.next().unwrap_or_default();
        let mut filters = Vec::new();
        for p in pieces {
            let (k, v) = p.split_once('=').ok_or_else(|| {
                Error::Usage(format!(
                    "table `{s}`: sub-partition `{p}` must look like key=value"
                ))
            })?;
            filters.push((k.to_string(), v.to_string()));
        }
        let (namespace, name) = match base.split_once('.') {
            Some((ns, n)) => (ns.to_string(), n.to_string()),
            None => ("default".to_string(), base.to_string()),
        };
        let valid =
            |x: &str| !x.is_empty() && x.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid(&namespace) || !valid(&name) {
            return Err(Error::Usage(format!(
                "`{s}` is not a table name; expected namespace.table with letters, digits and underscores"
            )));
        }
        Ok(TableName {
            namespace,
            name,
            sub_partition_filters: filters,
        })
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.namespace, self.name)
    }
}

/// A warehouse rooted at a folder.
#[derive(Debug, Clone)]
pub struct Warehouse {
    root: PathBuf,
    /// Footer schemas already read, shared by every clone.
    schemas: std::sync::Arc<footers::SchemaCache>,
}

impl Warehouse {
    /// Opens (creating if needed) a warehouse folder and finishes any partition swap that a
    /// crash interrupted, so readers never see a half-written partition.
    pub fn open(root: impl AsRef<Path>) -> Result<Warehouse> {
        let root = root.as_ref().to_path_buf();
        std::fs::create_dir_all(&root)
            .map_err(|e| Error::io(format!("creating warehouse folder {}", root.display()), e))?;
        let wh = Warehouse {
            root,
            schemas: Default::default(),
        };
        write::recover(&wh)?;
        Ok(wh)
    }

    /// Opens a warehouse that must already exist (what reading commands do): a missing
    /// folder or an object-store URL is an error naming it, never an empty new folder.
    pub fn open_existing(root: impl AsRef<Path>) -> Result<Warehouse> {
        let root = root.as_ref();
        let text = root.to_string_lossy();
        if text.contains("://") {
            return Err(Error::Unsupported {
                what: format!("the warehouse `{text}`"),
                detail: "weft reads and writes a local folder; object stores are not supported yet: copy the tables locally, or mount the bucket as a folder".into(),
            });
        }
        if !root.is_dir() {
            return Err(Error::NotFound {
                what: format!("warehouse folder {}", root.display()),
                fix: "pass --warehouse DIR (or set WEFT_WAREHOUSE) naming an existing warehouse; `weft demo` writes one to weft-demo/warehouse".into(),
            });
        }
        Self::open(root)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn table_dir(&self, t: &TableName) -> PathBuf {
        self.root.join(&t.namespace).join(&t.name)
    }

    /// The folder of one partition, given its partition columns in order.
    pub fn partition_dir(&self, t: &TableName, spec: &[(String, String)]) -> PathBuf {
        let mut p = self.table_dir(t);
        for (k, v) in spec {
            p.push(format!("{k}={v}"));
        }
        p
    }

    pub fn exists(&self, t: &TableName) -> bool {
        self.table_dir(t).is_dir()
    }

    /// Every table in the warehouse, sorted.
    pub fn tables(&self) -> Result<Vec<TableName>> {
        let mut out = Vec::new();
        for ns in read_dir_sorted(&self.root)? {
            let ns_name = file_name(&ns);
            if ns_name.starts_with('.') || !ns.is_dir() {
                continue;
            }
            for t in read_dir_sorted(&ns)? {
                let t_name = file_name(&t);
                if t_name.starts_with('.') || t_name.starts_with('_') || !t.is_dir() {
                    continue;
                }
                out.push(TableName {
                    namespace: ns_name.clone(),
                    name: t_name,
                    sub_partition_filters: vec![],
                });
            }
        }
        Ok(out)
    }

    /// Error for a table that does not exist, listing close names.
    pub fn missing_table(&self, t: &TableName, needed_by: &str) -> Error {
        // the closest names first (a typo is the usual cause)
        let wanted = t.to_string();
        let mut others: Vec<(usize, String)> = self
            .tables()
            .unwrap_or_default()
            .into_iter()
            .map(|o| o.to_string())
            .map(|o| (edit_distance(&wanted, &o), o))
            .filter(|(d, o)| *d <= wanted.len().max(o.len()) / 2)
            .collect();
        others.sort();
        let others: Vec<String> = others.into_iter().take(5).map(|(_, o)| o).collect();
        let hint = if others.is_empty() {
            String::new()
        } else {
            format!(" (closest tables: {})", others.join(", "))
        };
        Error::NotFound {
            what: format!("table `{t}` (needed by {needed_by}) in warehouse {}{hint}", self.root.display()),
            fix: "write the table first (a staging query or an upstream job), or fix the table name in the config".into(),
        }
    }

    /// The `ds` partitions of a table, sorted (empty if the table does not exist).
    pub fn partitions(&self, t: &TableName) -> Result<Vec<Ds>> {
        self.partitions_by(t, DS)
    }

    /// The partitions of a table by its top-level partition column `col`, sorted.
    pub fn partitions_by(&self, t: &TableName, col: &str) -> Result<Vec<Ds>> {
        let dir = self.table_dir(t);
        let prefix = format!("{col}=");
        if !dir.is_dir() {
            return Ok(vec![]);
        }
        let mut out = Vec::new();
        for p in read_dir_sorted(&dir)? {
            let name = file_name(&p);
            if let Some(v) = name.strip_prefix(prefix.as_str()) {
                if p.is_dir() {
                    out.push(partition_value(t, col, v)?);
                    if read_dir_sorted(&p)?.iter().all(|f| {
                        let n = file_name(f);
                        n.starts_with('.') || n.starts_with('_')
                    }) {
                        tracing::warn!(table = %t, partition = %name, "partition folder holds no data file: read as an empty partition (remove it if the day has not landed)");
                    }
                }
            }
        }
        out.sort();
        Ok(out)
    }
}

/// The day of partition folder `<col>=<v>` of `t`: `yyyy-MM-dd`, zero-padded (a folder named
/// `ds=2024-2-5` is refused with its canonical name, never read at another path).
pub(crate) fn partition_value(t: &TableName, col: &str, v: &str) -> Result<Ds> {
    let bad = |why: String, fix: String| {
        Error::data(&t.to_string(), Some(&format!("{col}={v}")), why).with_fix(fix)
    };
    let d = Ds::parse(v).map_err(|_| {
        bad(
            format!("partition folder name is not {col}=yyyy-MM-dd"),
            "rename or remove the folder".into(),
        )
    })?;
    if d.to_string() != v {
        return Err(bad(
            format!("partition folder name is not canonical yyyy-MM-dd (zero-padded): it means {col}={d}"),
            format!("rename the folder to {col}={d}"),
        ));
    }
    Ok(d)
}

pub(crate) fn read_dir_sorted(dir: &Path) -> Result<Vec<PathBuf>> {
    let rd =
        std::fs::read_dir(dir).map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
    let mut v: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
    v.sort();
    Ok(v)
}

/// Levenshtein distance between two names (for "did you mean" hints).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

pub(crate) fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_folders_must_be_canonical_dates() {
        let dir = tempfile::tempdir().unwrap();
        let wh = Warehouse::open(dir.path()).unwrap();
        let t = TableName::parse("data.t").unwrap();
        std::fs::create_dir_all(wh.table_dir(&t).join("ds=2024-2-5")).unwrap();
        let e = wh.partitions(&t).unwrap_err().to_string();
        assert!(
            e.contains("ds=2024-2-5") && e.contains("rename the folder to ds=2024-02-05"),
            "{e}"
        );
        std::fs::rename(
            wh.table_dir(&t).join("ds=2024-2-5"),
            wh.table_dir(&t).join("ds=2024-02-05"),
        )
        .unwrap();
        assert_eq!(
            wh.partitions(&t).unwrap(),
            vec![Ds::parse("2024-02-05").unwrap()]
        );
    }

    #[test]
    fn table_names() {
        let t = TableName::parse("data.purchases").unwrap();
        assert_eq!(
            (t.namespace.as_str(), t.name.as_str()),
            ("data", "purchases")
        );
        assert_eq!(TableName::parse("purchases").unwrap().namespace, "default");
        let s = TableName::parse("db.t/hr=00:00").unwrap();
        assert_eq!(
            s.sub_partition_filters,
            vec![("hr".to_string(), "00:00".to_string())]
        );
        assert!(TableName::parse("bad name.x").is_err());
    }
}
