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

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let id = platform_net::miner::run_submit(&cli.args)?;
    println!("{id}");
    Ok(())
}
