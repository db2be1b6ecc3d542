//! Named crash points for the crash-matrix tests: `WEFT_FAILPOINT=<name>[,<name>…]` makes the
//! process abort (as a `kill -9` would stop it: no destructors, no cleanup) the first time it
//! reaches a point of that name. Unset (the normal case), a point costs one atomic load.
//!
//! Points: `join-fed` (a join's step fed, not sealed), `partition-staged` (a partition's
//! files written in staging, not swapped in), `partition-swapped` (swapped in, the old folder
//! not yet retired), `epoch-before-manifest` (every pipeline stepped, the epoch not
//! committed), `epoch-after-manifest` (committed, readers not yet told), `log-file-written`
//! (a raw log file written, its offsets not yet recorded).

use std::sync::OnceLock;

fn armed() -> &'static [String] {
    static ARMED: OnceLock<Vec<String>> = OnceLock::new();
    ARMED.get_or_init(|| {
        std::env::var("WEFT_FAILPOINT")
            .map(|v| {
                v.split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    })
}

/// Aborts the process if the failpoint `name` is armed.
pub fn hit(name: &str) {
    if armed().iter().any(|a| a == name) {
        eprintln!("weft: failpoint {name} reached: aborting (WEFT_FAILPOINT)");
        std::process::abort();
    }
}
