//! `platform`: the validator node's command line (see `platform --help`).

use std::process::ExitCode;

/// jemalloc, not glibc's malloc: under a soak glibc's per-thread arenas kept growing (memory
/// freed on one thread and reused on another stays resident), while jemalloc's background
/// thread returns pages unused for a few seconds, and its figures are exported
/// (`platform_process_heap_bytes`).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// A failure is one line on stderr and a non-zero exit; the backtrace only when asked
/// for with `RUST_BACKTRACE`.
#[allow(
    clippy::print_stderr,
    reason = "a command line reports its failure on stderr"
)]
fn main() -> ExitCode {
    platform_node::heap::start_purging();
    match platform_node::cli::main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("platform: {e:#}");
            if std::env::var_os("RUST_BACKTRACE").is_some_and(|v| v != "0") {
                eprintln!("{}", e.backtrace());
            }
            ExitCode::FAILURE
        }
    }
}
