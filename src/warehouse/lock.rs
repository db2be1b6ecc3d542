//! One writer per table at a time: a pipeline holds its output table's lock
//! (`<root>/.weft-locks/<ns>.<name>.lock`, an advisory `flock`) while it is installed, so a
//! second process writing the same table is refused with the holder named, instead of the two
//! interleaving partition writes. The lock goes with the process, even after `kill -9`.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::Path;

use super::{TableName, Warehouse};
use crate::error::{Error, Result};

/// A held table lock; released when dropped.
#[derive(Debug)]
pub struct TableLock {
    _file: File,
}

/// Takes the advisory lock of file `path` for this process and writes `pid N (holder)` into
/// it; `Ok(Err(text))` when another process holds it (the text it wrote).
pub(crate) fn flock_file(path: &Path, holder: &str) -> Result<std::result::Result<File, String>> {
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    // SAFETY: flock on a valid, open file descriptor owned by `file`.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let held_by = std::fs::read_to_string(path).unwrap_or_default();
        return Ok(Err(held_by.trim().to_string()));
    }
    file.set_len(0)
        .and_then(|_| writeln!(file, "pid {} ({holder})", std::process::id()))
        .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
    Ok(Ok(file))
}

impl Warehouse {
    /// Takes table `t`'s writer lock for `holder` (e.g. "weft backfill of join x"), or says
    /// who holds it.
    pub fn lock_table(&self, t: &TableName, holder: &str) -> Result<TableLock> {
        let dir = self.root().join(".weft-locks");
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        let path = dir.join(format!("{}.{}.lock", t.namespace, t.name));
        let file = flock_file(&path, holder)?.map_err(|held_by| {
            Error::external(
                format!("table `{t}`"),
                format!(
                    "it is being written by {held_by}; wait for that to finish (or stop it) and try again"
                ),
            )
        })?;
        Ok(TableLock { _file: file })
    }
}
