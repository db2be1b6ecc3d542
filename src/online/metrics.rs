//! Counters and latency histograms of the online service, rendered in Prometheus' text format
//! at `/metrics`. Lock-free: relaxed atomics updated on every request.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// Latency bucket upper bounds, in microseconds.
const BUCKETS_US: [u64; 12] = [
    250, 500, 1_000, 2_000, 3_000, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000,
];

/// A latency histogram.
#[derive(Default)]
pub struct Histogram {
    buckets: [AtomicU64; 12],
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, us: u64) {
        for (b, le) in self.buckets.iter().zip(BUCKETS_US) {
            if us <= le {
                b.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        for (b, le) in self.buckets.iter().zip(BUCKETS_US) {
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}le=\"{}\"}} {}",
                le as f64 / 1e6,
                b.load(Ordering::Relaxed)
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}le=\"+Inf\"}} {count}");
        let _ = writeln!(
            out,
            "{name}_sum{{{}}} {}",
            labels.trim_end_matches(','),
            self.sum_us.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(
            out,
            "{name}_count{{{}}} {count}",
            labels.trim_end_matches(',')
        );
    }
}

/// Every metric of the service.
#[derive(Default)]
pub struct Metrics {
    pub join_requests: AtomicU64,
    pub group_by_requests: AtomicU64,
    /// Responses carrying at least one `_exception` entry.
    pub responses_with_exceptions: AtomicU64,
    /// Calls that failed as a whole (unknown join, bad body).
    pub failed_calls: AtomicU64,
    pub join_latency: Histogram,
    pub group_by_latency: Histogram,
}

impl Metrics {
    /// The Prometheus text exposition.
    pub fn render(&self, extra: &[(&str, &str, u64)]) -> String {
        let mut s = String::new();
        let counter = |s: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
        };
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        counter(
            &mut s,
            "weft_join_requests_total",
            "Join requests fetched (one per key set).",
            load(&self.join_requests),
        );
        counter(
            &mut s,
            "weft_group_by_requests_total",
            "GroupBy requests fetched.",
            load(&self.group_by_requests),
        );
        counter(
            &mut s,
            "weft_responses_with_exceptions_total",
            "Responses with an _exception entry.",
            load(&self.responses_with_exceptions),
        );
        counter(
            &mut s,
            "weft_failed_calls_total",
            "Calls that failed as a whole.",
            load(&self.failed_calls),
        );
        counter(
            &mut s,
            "weft_panics_total",
            "Panics anywhere in the process (each is logged).",
            crate::panics::count(),
        );
        for (name, help, v) in extra {
            counter(&mut s, name, help, *v);
        }
        let _ = writeln!(s, "# HELP weft_fetch_seconds Latency of fetch calls.\n# TYPE weft_fetch_seconds histogram");
        self.join_latency
            .render(&mut s, "weft_fetch_seconds", "kind=\"join\",");
        self.group_by_latency
            .render(&mut s, "weft_fetch_seconds", "kind=\"group_by\",");
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_cumulative_buckets() {
        let m = Metrics::default();
        m.join_requests.fetch_add(3, Ordering::Relaxed);
        m.join_latency.observe(400);
        m.join_latency.observe(4_000);
        let text = m.render(&[]);
        assert!(text.contains("weft_join_requests_total 3"), "{text}");
        assert!(
            text.contains("weft_fetch_seconds_bucket{kind=\"join\",le=\"0.0005\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("weft_fetch_seconds_bucket{kind=\"join\",le=\"0.005\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("weft_fetch_seconds_count{kind=\"join\"} 2"),
            "{text}"
        );
    }
}
