//! The `weft` binary: parses the command line, sets up logging, and reports errors.

use clap::Parser;

// The engine allocates many small values (partial aggregates, rows); mimalloc is markedly
// faster than the system allocator for that and returns memory to the OS sooner.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use tracing_subscriber::EnvFilter;

fn main() {
    // `weft … | head` ends quietly, as command-line tools do, instead of panicking on a
    // closed pipe. SAFETY: restoring the default disposition of SIGPIPE before any thread.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = weft::cli::Cli::parse();
    let default = match cli.verbose {
        0 => "warn",
        1 => "warn,weft=info",
        _ => "info,weft=debug",
    };
    let filter = EnvFilter::try_from_env("WEFT_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    weft::panics::install();
    weft::memory::setup_process();
    weft::cli::process_ends_after_command();
    if let Err(e) = weft::cli::run(cli) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
