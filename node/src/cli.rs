//! The `platform` command line (the binary is a thin wrapper, so end-to-end tests can run
//! the same code as their own binary).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand, ValueEnum};
use platform_keys::Keypair;

use crate::client::post_change;
use crate::config::NodeConfig;
use crate::registry::{ChallengeMeta, Change, Limits, Rule};

/// The command line.
#[derive(Parser, Debug)]
#[command(
    name = "platform",
    version,
    about = "Platform: a validator node for Bittensor subnets",
    long_about = "Platform: a validator node for Bittensor subnets.\n\nStart here: `platform devnet` runs four validators, the example challenges and a synthetic miner load on this machine. `platform node --config config/validator.toml` runs one validator.\n\nKeys are Bittensor hotkey files (JSON with secretSeed, as btcli writes them)."
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a validator (stops cleanly on Ctrl-C or SIGTERM; restarts resume from data_dir).
    Node {
        /// The node's config file (see config/validator.toml).
        #[arg(long)]
        config: PathBuf,
    },
    /// Run a local network: N validators as separate processes on loopback with the
    /// simulated chain, the example challenges registered through consensus, and miners.
    #[command(args_override_self = true)]
    Devnet(crate::devnet::DevnetArgs),
    /// Create and inspect hotkeys.
    #[command(subcommand)]
    Keys(crate::keys::KeysCommand),
    /// As a miner: sign a payload with your hotkey and send it to a validator.
    Submit(platform_net::miner::SubmitArgs),
    /// Show what a running node is doing (epoch, consensus height, peers, queues, weights).
    Status {
        /// The node's metrics/API address (`[metrics] listen`).
        #[arg(long, default_value = "127.0.0.1:9615")]
        node: String,
        /// Print the raw JSON document.
        #[arg(long)]
        json: bool,
    },
    /// As the subnet owner: sign a registry change and send it to a validator.
    #[command(subcommand)]
    Challenge(ChallengeCommand),
    /// The devnet's shared simulated chain (its address is `chain` in devnet.json).
    #[command(subcommand)]
    Chain(ChainCommand),
    /// A node's audit log (every evaluation it ran).
    #[command(subcommand)]
    Audit(crate::audit::AuditCommand),
    /// Re-execute a committed epoch's evaluations (or one) from a stopped node's stores and
    /// compare them with the stored results and the audit log.
    Verify(crate::verify::VerifyArgs),
}

/// Commands on a devnet's shared chain.
#[derive(Subcommand, Debug)]
pub enum ChainCommand {
    /// Set the number of incentive mechanisms of the devnet's subnet (the owner's
    /// `sudo_set_mechanism_count` on the shared simulated chain).
    Mechanisms {
        /// The chain's address (`chain` in devnet.json).
        #[arg(long)]
        chain: String,
        /// Mechanisms (1 to 16).
        #[arg(long)]
        count: u8,
        /// Subnet.
        #[arg(long, default_value_t = crate::devnet::NETUID)]
        netuid: u16,
    },
    /// Register a hotkey on the subnet: a miner (no stake) counts from the next epoch; with
    /// stake, a validator votes from the next epoch.
    Register {
        /// The chain's address (`chain` in devnet.json).
        #[arg(long)]
        chain: String,
        /// SS58 hotkey.
        #[arg(long)]
        hotkey: String,
        /// Stake (0: a miner).
        #[arg(long, default_value_t = 0)]
        stake: u64,
        /// Subnet.
        #[arg(long, default_value_t = crate::devnet::NETUID)]
        netuid: u16,
    },
}

/// Registry changes.
#[derive(Subcommand, Debug)]
pub enum ChallengeCommand {
    /// Register a new challenge (inactive until activated).
    Publish(MetaArgs),
    /// Replace a challenge's module or metadata (a higher version).
    Update(MetaArgs),
    /// Start evaluating and weighting a challenge.
    Activate(IdArgs),
    /// Stop evaluating and weighting a challenge.
    Deactivate(IdArgs),
    /// Send a challenge's weights to one of the subnet's incentive mechanisms (0: the
    /// subnet's original one, where challenges start). A validator refuses a mechanism the
    /// subnet does not have.
    Mechanism(MechanismArgs),
}

/// A challenge and the mechanism its weights go to.
#[derive(Args, Debug, Clone)]
pub struct MechanismArgs {
    #[command(flatten)]
    pub owner: OwnerArgs,
    /// Challenge id.
    #[arg(long)]
    pub id: u32,
    /// The mechanism (0 to 15; the subnet must have it).
    #[arg(long)]
    pub mecid: u8,
}

/// Who signs and where the change goes.
#[derive(Args, Debug, Clone)]
pub struct OwnerArgs {
    /// A validator's API address (`[metrics] listen`).
    #[arg(long, default_value = "127.0.0.1:9615")]
    pub node: String,
    /// The subnet owner's hotkey file.
    #[arg(long, conflicts_with = "owner_seed")]
    pub owner_key: Option<PathBuf>,
    /// The owner's secret seed in hex (devnets only).
    #[arg(long)]
    pub owner_seed: Option<String>,
    /// Strictly above every nonce used before (default: the current time in ms).
    #[arg(long)]
    pub nonce: Option<u64>,
    /// Sign as Bittensor tooling does (registry change version 2: the standard Substrate
    /// context over `platform/registry/v2:` and the change) instead of version 1.
    #[arg(long)]
    pub substrate_signing: bool,
}

/// A challenge's metadata.
#[derive(Args, Debug, Clone)]
pub struct MetaArgs {
    #[command(flatten)]
    pub owner: OwnerArgs,
    /// Challenge id.
    #[arg(long)]
    pub id: u32,
    /// Name.
    #[arg(long)]
    pub name: String,
    /// Version (an update must raise it).
    #[arg(long, default_value_t = 1)]
    pub version: u32,
    /// The WebAssembly module.
    #[arg(long)]
    pub module: PathBuf,
    /// Fuel per evaluation.
    #[arg(long, default_value_t = 1_000_000_000)]
    pub fuel: u64,
    /// Linear memory ceiling in bytes.
    #[arg(long, default_value_t = 16 << 20)]
    pub memory: u64,
    /// Largest miner payload in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    pub input_max: u32,
    /// Largest guest output in bytes.
    #[arg(long, default_value_t = 64 << 10)]
    pub output_max: u32,
    /// Share of emission relative to the other active challenges.
    #[arg(long, default_value_t = 1)]
    pub emission_share: u32,
    /// How scores become weights.
    #[arg(long, value_enum, default_value_t = RuleArg::Proportional)]
    pub rule: RuleArg,
}

/// A challenge id.
#[derive(Args, Debug, Clone)]
pub struct IdArgs {
    #[command(flatten)]
    pub owner: OwnerArgs,
    /// Challenge id.
    #[arg(long)]
    pub id: u32,
}

/// Weight rule on the command line.
#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum RuleArg {
    /// Weight proportional to score.
    Proportional,
    /// The best score takes the challenge's share.
    WinnerTakesAll,
}

fn owner_key(a: &OwnerArgs) -> anyhow::Result<Keypair> {
    match (&a.owner_key, &a.owner_seed) {
        (Some(p), _) => Ok(Keypair::from_hotkey_file(p)?),
        (None, Some(s)) => Ok(Keypair::from_seed_hex(s)?),
        (None, None) => anyhow::bail!("give --owner-key FILE (or --owner-seed on a devnet)"),
    }
}

fn nonce(a: &OwnerArgs) -> u64 {
    a.nonce.unwrap_or_else(platform_types::now_ms)
}

fn meta(m: &MetaArgs) -> anyhow::Result<(ChallengeMeta, Vec<u8>)> {
    let module =
        std::fs::read(&m.module).with_context(|| format!("reading {}", m.module.display()))?;
    Ok((
        ChallengeMeta {
            id: m.id,
            name: m.name.clone(),
            version: m.version,
            module_hash: platform_types::sha256(&module),
            limits: Limits {
                fuel: m.fuel,
                memory_bytes: m.memory,
                input_bytes: m.input_max,
                output_bytes: m.output_max,
            },
            emission_share: m.emission_share,
            rule: match m.rule {
                RuleArg::Proportional => Rule::Proportional,
                RuleArg::WinnerTakesAll => Rule::WinnerTakesAll,
            },
        },
        module,
    ))
}

fn print_status(doc: &serde_json::Value) {
    let g = |k: &str| doc.get(k).cloned().unwrap_or(serde_json::Value::Null);
    println!(
        "{:<11} {}",
        g("role").as_str().unwrap_or("node"),
        g("hotkey").as_str().unwrap_or("?")
    );
    println!("peer        {}", g("peer_id").as_str().unwrap_or("?"));
    println!("metrics     {}", g("metrics").as_str().unwrap_or("?"));
    println!(
        "epoch       {} at block {} (committed up to {})",
        g("epoch"),
        g("block"),
        g("last_committed_epoch")
    );
    let mg = g("metagraph");
    if !mg.is_null() {
        let vs: Vec<String> = mg["validators"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|v| {
                format!(
                    "{}={}",
                    &v["hotkey"].as_str().unwrap_or("?")[..8],
                    v["stake"]
                )
            })
            .collect();
        println!(
            "metagraph   epoch {} pinned at block {}: {} validators ({}), {} neurons",
            mg["epoch"],
            mg["block"],
            vs.len(),
            vs.join(" "),
            mg["miners"]
        );
    }
    println!("consensus   height {} view {}", g("height"), g("view"));
    println!("peers       {}", g("peers"));
    println!(
        "queues      engine {} backlog {} evaluated {} pending changes {}",
        g("engine_outstanding"),
        g("backlog"),
        g("evaluated"),
        g("pending_changes")
    );
    if let Some(reg) = doc.get("registry").and_then(|r| r.as_array()) {
        for c in reg {
            println!(
                "challenge   {} {} v{} {}",
                c["id"],
                c["name"].as_str().unwrap_or("?"),
                c["version"],
                if c["active"].as_bool() == Some(true) {
                    "active"
                } else {
                    "inactive"
                }
            );
        }
    }
    if let Some(last) = doc
        .get("committed")
        .and_then(|c| c.as_array())
        .and_then(|c| c.last())
    {
        println!(
            "last result epoch {} digest {} weights {}",
            last["epoch"],
            last["digest"].as_str().unwrap_or("?"),
            last["weights"]
        );
    }
    let chain = g("chain");
    println!(
        "chain       block {} last weights epoch {} ({})",
        chain["block"],
        chain["last_epoch"],
        chain["last_outcome"].as_str().unwrap_or("")
    );
}

/// Log to stderr, `RUST_LOG` or info.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,libp2p_swarm=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Stop flag set by SIGINT or SIGTERM.
pub fn stop_on_signals() -> anyhow::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())?;
    }
    Ok(stop)
}

/// Run the command line.
pub fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Node { config } => {
            init_logging();
            let cfg = NodeConfig::load(&config)?;
            // Relative paths in the file (data_dir, hotkey_file) are relative to the working
            // directory, as operators expect from `data_dir = "data"`.
            crate::app::run(cfg, std::path::Path::new("."), stop_on_signals()?)
        }
        Command::Devnet(args) => {
            init_logging();
            crate::devnet::run(&args, stop_on_signals()?)
        }
        Command::Keys(k) => crate::keys::run(k),
        Command::Audit(a) => crate::audit::run(a),
        Command::Verify(v) => crate::verify::run(&v),
        Command::Submit(args) => {
            let id = platform_net::miner::run_submit(&args)?;
            println!("accepted: {id}");
            Ok(())
        }
        Command::Status { node, json } => {
            let text = crate::http::get(&node, "/status", Duration::from_secs(10))?;
            if json {
                println!("{text}");
            } else {
                print_status(&serde_json::from_str(&text).context("status is not JSON")?);
            }
            Ok(())
        }
        Command::Chain(ChainCommand::Register {
            chain,
            hotkey,
            stake,
            netuid,
        }) => {
            let c = crate::chainserver::RemoteChain::new(&chain, Duration::from_secs(10));
            let uid = c.register(netuid, &hotkey, stake)?;
            println!("registered {hotkey} as uid {uid} on subnet {netuid} (stake {stake})");
            Ok(())
        }
        Command::Chain(ChainCommand::Mechanisms {
            chain,
            count,
            netuid,
        }) => {
            let c = crate::chainserver::RemoteChain::new(&chain, Duration::from_secs(10));
            c.set_mechanism_count(netuid, count)?;
            println!("subnet {netuid} has {count} mechanisms");
            Ok(())
        }
        Command::Challenge(c) => {
            let (owner, change, module) = match &c {
                ChallengeCommand::Publish(m) => {
                    let (meta, module) = meta(m)?;
                    (&m.owner, Change::Publish(meta), Some(module))
                }
                ChallengeCommand::Update(m) => {
                    let (meta, module) = meta(m)?;
                    (&m.owner, Change::Update(meta), Some(module))
                }
                ChallengeCommand::Activate(a) => (&a.owner, Change::Activate(a.id), None),
                ChallengeCommand::Deactivate(a) => (&a.owner, Change::Deactivate(a.id), None),
                ChallengeCommand::Mechanism(a) => (
                    &a.owner,
                    Change::SetMechanism {
                        id: a.id,
                        mecid: a.mecid,
                    },
                    None,
                ),
            };
            let key = owner_key(owner)?;
            let scheme = if owner.substrate_signing {
                crate::registry::Scheme::Substrate
            } else {
                crate::registry::Scheme::Platform
            };
            println!(
                "{}",
                post_change(&owner.node, &key, scheme, change, nonce(owner), module)?
            );
            Ok(())
        }
    }
}
