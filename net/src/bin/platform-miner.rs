//! `platform-miner`: sign a submission with a miner hotkey and deliver it to a validator.
//! (The node binary offers the same as `platform submit`.)

use clap::Parser;

#[derive(Parser)]
#[command(
    version,
    about = "Sign a submission with a miner hotkey and send it to a validator"
)]
struct Cli {
    #[command(flatten)]
    args: platform_net::miner::SubmitArgs,
}

/// Prints the accepted id; a refusal or failure is one line on stderr and a non-zero exit
/// (the backtrace only when asked for with `RUST_BACKTRACE`).
#[allow(
    clippy::print_stderr,
    reason = "a command line reports its failure on stderr"
)]
fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match platform_net::miner::run_submit(&cli.args) {
        Ok(id) => {
            println!("{id}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("platform-miner: {e:#}");
            if std::env::var_os("RUST_BACKTRACE").is_some_and(|v| v != "0") {
                eprintln!("{}", e.backtrace());
            }
            std::process::ExitCode::FAILURE
        }
    }
}
