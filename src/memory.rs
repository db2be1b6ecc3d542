//! Process-wide memory settings, applied once at start-up by the binary (and by the benches,
//! which measure the same process setup): [`setup_process`].

/// Everything below, in one call.
pub fn setup_process() {
    disable_transparent_huge_pages();
    collect_heaps_rarely();
}

/// Turns transparent huge pages off for this process (Linux; elsewhere nothing). mimalloc asks
/// for huge pages on its arenas, and the kernel then zeroes 2 MiB at every first touch: in a
/// backfill that was a quarter of the CPU time (profiled with `perf`: `clear_page_erms` under
/// `do_huge_pmd_anonymous_page`). With 4 KiB pages the same 300k-row join ran in 0.91× the
/// wall time, with half the system time. Failure only costs that speed, so it is logged, not
/// raised.
pub fn disable_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: prctl with PR_SET_THP_DISABLE takes plain integer arguments and changes only
        // this process's memory policy.
        let r = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
        if r != 0 {
            tracing::debug!(error = %std::io::Error::last_os_error(), "could not turn transparent huge pages off");
        }
    }
}

/// mimalloc's option `generic_collect` (its index in `mi_option_t` of mimalloc 3, the C
/// library inside the pinned `mimalloc = "=0.1.52"`; a unit test checks the index by its
/// documented default).
const MI_OPTION_GENERIC_COLLECT: std::ffi::c_int = 34;

/// How many allocations on mimalloc's slow path pass between two collections of a thread's
/// whole heap (mimalloc's default: 10,000; the most it accepts: 1,000,000).
const GENERIC_COLLECT_EVERY: std::ffi::c_long = 1_000_000;

// the C library comes with the `mimalloc` crate (the binary's global allocator)
use mimalloc as _;

extern "C" {
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
    #[cfg(test)]
    fn mi_option_get(option: std::ffi::c_int) -> std::ffi::c_long;
}

/// Makes mimalloc collect a thread's whole heap 100× less often. Each collection visits every
/// page the thread owns, so with a dataflow's state of a gigabyte or more it was the largest
/// single cost of an appended day in a live runner (`perf`: 14% of its samples under
/// `mi_theap_visit_pages`, from allocations of small per-key buffers). At 1M rows an appended
/// day took 0.19 s instead of 0.215 s (medians of 4 pairs), with the same peak memory: freed
/// memory is still reused at once, only the sweep over every page is rarer.
pub fn collect_heaps_rarely() {
    // SAFETY: mi_option_set stores an integer in mimalloc's option table; any value is valid
    // (mimalloc clamps it) and it may be called at any time from any thread.
    unsafe { mi_option_set(MI_OPTION_GENERIC_COLLECT, GENERIC_COLLECT_EVERY) };
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hard-coded option index is `generic_collect`'s: nothing else in mimalloc 3 has a
    /// default of 10,000, and setting it reads back.
    #[test]
    fn the_option_index_is_generic_collect() {
        // SAFETY: as in `collect_heaps_rarely`; mi_option_get only reads the table.
        let before = unsafe { mi_option_get(MI_OPTION_GENERIC_COLLECT) };
        assert!(
            before == 10_000 || before == GENERIC_COLLECT_EVERY,
            "mimalloc option {MI_OPTION_GENERIC_COLLECT} is {before}: not generic_collect (default 10000); was the mimalloc crate upgraded?"
        );
        collect_heaps_rarely();
        // SAFETY: as above.
        assert_eq!(
            unsafe { mi_option_get(MI_OPTION_GENERIC_COLLECT) },
            GENERIC_COLLECT_EVERY
        );
    }
}
