//! The materializer's state folder: a `LOCK` held for the life of the process (a second
//! materializer on the same folder is refused, naming the holder), and one manifest per
//! committed epoch, `epochs/<E:012>.json`, written to a temporary file, synced and renamed:
//! the commit point of the epoch. The last manifest says what the last run committed.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// What one committed epoch did.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub epoch: u64,
    /// Unix milliseconds when the epoch's scan started and when it was committed.
    pub started_ms: i64,
    pub committed_ms: i64,
    pub pipelines: Vec<PipelineEpoch>,
}

/// One pipeline in an epoch.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct PipelineEpoch {
    pub name: String,
    pub output: String,
    /// The last day the pipeline's inputs are complete for (`None`: waiting).
    pub ready_through: Option<String>,
    pub written: Vec<String>,
    pub rewritten: Vec<String>,
    /// Existing partitions recomputed because their inputs changed (or had no input
    /// record); those whose rows differed are also in `rewritten`.
    #[serde(default)]
    pub recomputed: Vec<String>,
    /// Input rows that could not be used (all keys NULL, NULL or out-of-range ts), counted.
    #[serde(default)]
    pub skipped_rows: u64,
    /// Output rows whose values changed (new rows included).
    #[serde(default)]
    pub rows_changed: u64,
    /// A join's versioning decision after its config changed (reused, archived, recomputed).
    #[serde(default)]
    pub versioning: Option<String>,
    /// Label runs (`label_ds`) done in the epoch.
    pub label_runs: Vec<String>,
    /// The last label date run so far (carried from epoch to epoch).
    #[serde(default)]
    pub label_through: Option<String>,
    /// What the pipeline waits for, for people.
    pub waiting: Option<String>,
    /// `(kind, message)` of the error that stopped it in this epoch.
    pub error: Option<(String, String)>,
}

/// The state folder, locked.
pub struct StateDir {
    dir: PathBuf,
    // held open: the advisory lock lives as long as the file descriptor
    _lock: File,
}

impl StateDir {
    /// Opens (creating) `dir` and takes its lock; an error names the process holding it.
    pub fn open(dir: &Path) -> Result<StateDir> {
        std::fs::create_dir_all(dir.join("epochs"))
            .map_err(|e| Error::io(format!("creating the state folder {}", dir.display()), e))?;
        let path = dir.join("LOCK");
        let lock = crate::warehouse::flock_file(&path, "weft materialize")?.map_err(|holder| {
            Error::Usage(format!(
                "another weft materialize holds the state folder {} ({holder}); stop it first, or give this one its own --state-dir",
                dir.display()
            ))
        })?;
        Ok(StateDir {
            dir: dir.to_path_buf(),
            _lock: lock,
        })
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The last committed manifest, if any.
    pub fn last(&self) -> Result<Option<Manifest>> {
        last_manifest(&self.dir)
    }

    /// Commits an epoch: its manifest written, synced and renamed into place.
    pub fn commit(&self, m: &Manifest) -> Result<()> {
        let epochs = self.dir.join("epochs");
        let tmp = epochs.join(format!(".{:012}.json.tmp", m.epoch));
        let dst = epochs.join(format!("{:012}.json", m.epoch));
        let io = |e| {
            Error::io(
                format!("committing epoch {} in {}", m.epoch, epochs.display()),
                e,
            )
        };
        let mut f = File::create(&tmp).map_err(io)?;
        f.write_all(
            serde_json::to_string_pretty(m)
                .expect("manifest serializes")
                .as_bytes(),
        )
        .and_then(|_| f.sync_all())
        .map_err(io)?;
        std::fs::rename(&tmp, &dst).map_err(io)?;
        File::open(&epochs).and_then(|d| d.sync_all()).map_err(io)?;
        // keep the last 100 manifests
        let mut names = manifest_names(&epochs)?;
        while names.len() > 100 {
            let old = names.remove(0);
            let _ = std::fs::remove_file(epochs.join(old));
        }
        Ok(())
    }
}

fn manifest_names(epochs: &Path) -> Result<Vec<String>> {
    let mut names: Vec<String> = match std::fs::read_dir(epochs) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().to_string())
            .filter(|n| n.ends_with(".json") && !n.starts_with('.'))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(Error::io(format!("listing {}", epochs.display()), e)),
    };
    names.sort();
    Ok(names)
}

/// The last committed manifest of a state folder (no lock needed: manifests appear whole).
pub fn last_manifest(dir: &Path) -> Result<Option<Manifest>> {
    let epochs = dir.join("epochs");
    let Some(name) = manifest_names(&epochs)?.pop() else {
        return Ok(None);
    };
    let path = epochs.join(name);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    serde_json::from_str(&text).map(Some).map_err(|e| {
        Error::Usage(format!(
            "{} is not a weft epoch manifest ({e}); remove it or point --state-dir elsewhere",
            path.display()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_and_manifests_commit_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let s = StateDir::open(dir.path()).unwrap();
        let e = StateDir::open(dir.path()).err().unwrap().to_string();
        assert!(
            e.contains("another weft materialize") && e.contains("pid"),
            "{e}"
        );
        assert!(s.last().unwrap().is_none());
        for epoch in 0..3 {
            s.commit(&Manifest {
                epoch,
                ..Default::default()
            })
            .unwrap();
        }
        assert_eq!(s.last().unwrap().unwrap().epoch, 2);
        drop(s);
        // the lock goes with the process (or the handle)
        let s = StateDir::open(dir.path()).unwrap();
        assert_eq!(last_manifest(s.path()).unwrap().unwrap().epoch, 2);
    }
}
