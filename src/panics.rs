//! Panics are never lost silently: [`install`] sets a process-wide hook that counts every
//! panic — on any thread: a background flush, a blocking task, a dataflow worker — and logs
//! it through `tracing` (thread, message, location) before the default report (a lost
//! cluster peer is logged as one line: the runtime reports it as an error). Both HTTP
//! servers export the count as `weft_panics_total`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Once;

static COUNT: AtomicU64 = AtomicU64::new(0);

/// Installs the counting hook (once; later calls do nothing).
pub fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            COUNT.fetch_add(1, Ordering::Relaxed);
            let message = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(no message)".into());
            let location = info
                .location()
                .map(|l| format!("{}:{}", l.file(), l.line()))
                .unwrap_or_default();
            let thread = std::thread::current()
                .name()
                .unwrap_or("unnamed")
                .to_string();
            if lost_peer(&message) {
                // an expected way for a cluster to stop, reported by the runtime: one line
                tracing::error!(%thread, %message, "cluster connection lost");
                return;
            }
            tracing::error!(%thread, %message, %location, "panic");
            previous(info);
        }));
    });
}

/// Whether a panic is timely's report of a lost peer process (its network thread's, or a
/// worker's that read from the poisoned queue after it).
fn lost_peer(message: &str) -> bool {
    message.starts_with("timely communication error") || message.starts_with("MergeQueue poisoned")
}

/// Panics counted since [`install`].
pub fn count() -> u64 {
    COUNT.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_panic_on_another_thread_is_counted() {
        super::install();
        let before = super::count();
        let r = std::thread::Builder::new()
            .name("background".into())
            .spawn(|| panic!("a background task failed"))
            .unwrap()
            .join();
        assert!(r.is_err());
        assert!(super::count() > before);
    }
}
