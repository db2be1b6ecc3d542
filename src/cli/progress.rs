//! Progress display for long CLI work (indicatif), hidden when stderr is not a terminal.

use indicatif::{ProgressBar, ProgressStyle};

/// A bar over steps, updated through the library's progress callbacks.
pub fn bar(total: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(total);
    pb.set_style(
        ProgressStyle::with_template(
            "{spinner} {prefix} [{bar:30}] {pos}/{len} {wide_msg} ({elapsed})",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    pb.set_prefix(what.to_string());
    pb.enable_steady_tick(std::time::Duration::from_millis(120));
    pb
}

/// The library progress callback `(done, total, message)` driving a bar.
pub fn follow(pb: &ProgressBar) -> impl Fn(usize, usize, &str) + '_ {
    move |done, total, msg| {
        pb.set_length(total as u64);
        pb.set_position(done as u64);
        pb.set_message(msg.to_string());
    }
}

/// A spinner with a message.
pub fn spinner(what: &str) -> ProgressBar {
    let pb = ProgressBar::new_spinner();
    pb.set_style(
        ProgressStyle::with_template("{spinner} {prefix} {wide_msg} ({elapsed})")
            .expect("valid template"),
    );
    pb.set_prefix(what.to_string());
    pb.enable_steady_tick(std::time::Duration::from_millis(120));
    pb
}
