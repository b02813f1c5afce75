//! `bench`: Platform's benchmark harness. `bench engine` compares, side by side in one run,
//! the pooled sharded engine, the naive path of the system we replace, and native code;
//! `bench consensus` and `bench net` measure those layers alone; `bench devnet` loads the
//! whole system; `bench sim` runs the whole-network twin over many seeds.

mod consensus;
mod devnet;
mod engine;
mod machine;
mod net;
mod sim;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "bench",
    about = "Platform benchmarks: tables side by side with baselines, JSON beside them"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Engine alone: pooled sharded vs naive (fresh linker + instance per call) vs native.
    Engine(engine::Args),
    /// PBFT in the deterministic simulation: decisions/s, messages, bytes and hops per decision.
    Consensus(consensus::Args),
    /// The libp2p mesh on loopback: messages/s and delivery latency, signed and validated.
    Net(net::Args),
    /// The whole system: a devnet of validator processes under miner load; throughput,
    /// submission-to-committed-result latency, refusals, memory.
    Devnet(devnet::Args),
    /// The whole-network twin over many seeds: seeds/s and virtual÷wall time.
    Sim(sim::Args),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Engine(args) => engine::run(args),
        Command::Consensus(args) => consensus::run(args),
        Command::Net(args) => net::run(args),
        Command::Devnet(args) => devnet::run(args),
        Command::Sim(args) => sim::run(args),
    }
}
