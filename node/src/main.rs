//! `platform`: the validator node's command line.

use clap::{Parser, Subcommand};

mod keys;

#[derive(Parser)]
#[command(
    name = "platform",
    version,
    about = "Platform: a validator node for Bittensor subnets",
    long_about = "Platform: a validator node for Bittensor subnets.\n\nKeys are Bittensor hotkey files (JSON with secretSeed, as btcli writes them)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create and inspect hotkeys.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// As a miner: sign a payload with your hotkey and send it to a validator.
    Submit(platform_net::miner::SubmitArgs),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Keys(k) => keys::run(k),
        Command::Submit(args) => {
            let id = platform_net::miner::run_submit(&args)?;
            println!("accepted: {id}");
            Ok(())
        }
    }
}
