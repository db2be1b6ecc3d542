//! Process-wide memory settings, applied once at start-up by the binary (and by the benches,
//! which measure the same process setup).

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
