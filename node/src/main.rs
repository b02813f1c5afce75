//! `platform`: the validator node's command line (see `platform --help`).

use std::process::ExitCode;

/// A failure is one line on stderr and a non-zero exit; the backtrace only when asked
/// for with `RUST_BACKTRACE`.
#[allow(
    clippy::print_stderr,
    reason = "a command line reports its failure on stderr"
)]
fn main() -> ExitCode {
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
