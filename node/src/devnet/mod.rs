//! `platform devnet`: a whole subnet on one machine. ONE simulated subtensor (served by this
//! process on loopback, a block every `--block-time`) that every validator reads and sets
//! weights on; N validators as separate OS processes (this same binary, `platform node`);
//! optional followers (nodes without stake); the example challenges registered through
//! consensus as the subnet owner; a synthetic miner load; miners registered mid-run. Per
//! committed epoch it prints the block range, the agreed result, each validator's on-chain
//! weights and the Yuma consensus over them (`report`). Everything it writes lives under
//! `--dir` (configs, data, logs, `devnet.json`).

mod chaos;
mod load;
mod nodes;
mod report;
mod rss;
pub use nodes::{peak_rss_kib, proc_status_kib};
pub use rss::slope_per_min;

use load::synthetic_load;
use nodes::{NodeSpec, signal, spawn, stop_all, write_configs};

use std::path::PathBuf;
use std::process::Child;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use platform_keys::{Keypair, ss58_encode};
use sha2::{Digest as _, Sha256};

use crate::chainserver::ChainServer;
use crate::machine::Schedule;
use crate::registry::{ChallengeMeta, Change, Limits, Rule, Scheme};

/// The devnet's subnet.
pub const NETUID: u16 = 1;

/// `platform devnet` options.
#[derive(clap::Args, Debug, Clone)]
pub struct DevnetArgs {
    /// Validators (registered with stake at genesis).
    #[arg(long, default_value_t = 4)]
    pub nodes: usize,
    /// Stop after this many epochs committed by every running validator (0: until Ctrl-C).
    #[arg(long, default_value_t = 0)]
    pub epochs: u64,
    /// Where configs, data and logs go (emptied first).
    #[arg(long, default_value = "data/devnet")]
    pub dir: PathBuf,
    /// Blocks per epoch.
    #[arg(long, default_value_t = 20)]
    pub epoch_blocks: u64,
    /// Time per block of the shared chain.
    #[arg(long, default_value = "250ms", value_parser = humantime::parse_duration)]
    pub block_time: Duration,
    /// Registered miners (synthetic load submits for each).
    #[arg(long, default_value_t = 8)]
    pub miners: usize,
    /// Miners registered on the chain mid-run (at epoch `--late-at`); they count from the
    /// epoch after.
    #[arg(long, default_value_t = 0)]
    pub late_miners: usize,
    /// The epoch at which the late miners register.
    #[arg(long, default_value_t = 3)]
    pub late_at: u64,
    /// Submissions per miner per challenge per epoch (0: no synthetic load).
    #[arg(long, default_value_t = 1)]
    pub load: usize,
    /// Write configs for all validators but leave the last K stopped (start them later
    /// with `platform node --config DIR/vI.toml`).
    #[arg(long, default_value_t = 0)]
    pub hold: usize,
    /// Nodes without stake (not validators): they follow the committed epochs. Register one
    /// with stake (`platform chain register`) and it votes from the next epoch.
    #[arg(long, default_value_t = 0)]
    pub followers: usize,
    /// Do not register the example challenges.
    #[arg(long)]
    pub no_challenges: bool,
    /// Which example challenges to register, by name (default: all of them).
    #[arg(long, value_delimiter = ',', value_parser = parse_example)]
    pub challenges: Vec<String>,
    /// The subnet requires commit-reveal: validators send hash commits and reveal them in
    /// the chain's reveal window (the chain refuses a reveal outside it).
    #[arg(long)]
    pub commit_reveal: bool,
    /// The subnet's incentive mechanisms (1 to 16). With more than one, the last example
    /// challenge registered sends its weights to mechanism 1 (a registry change through
    /// consensus), so validators set weights per mechanism.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=16))]
    pub mechanisms: u8,
    /// Run a seeded fault campaign (kill -9, freeze, wipe and restart, restart all) on the
    /// validators while the devnet runs, and fail unless every invariant held (identical
    /// commits, no gaps, healed nodes caught up within 2 epochs, equal weights on the chain).
    /// Needs `--epochs`. Writes `chaos.json` in the devnet's directory.
    #[arg(long, value_name = "SEED", requires = "epochs")]
    pub chaos: Option<u64>,
    /// Epochs between one fault's healing and the next fault.
    #[arg(long, default_value_t = 1)]
    pub chaos_every: u64,
    /// Committed epochs each validator's store keeps (`[node] retain_epochs`; 0: all).
    #[arg(long, default_value_t = 64)]
    pub retain_epochs: u64,
}

fn parse_example(name: &str) -> Result<String, String> {
    match platform_challenges::by_name(name) {
        Some(_) => Ok(name.to_string()),
        None => Err(format!(
            "no example challenge named {name:?} (known: {})",
            platform_challenges::EXAMPLES
                .iter()
                .map(|e| e.name)
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

fn seed(label: &str, i: usize) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"platform-devnet/");
    h.update(label.as_bytes());
    h.update((i as u64).to_le_bytes());
    h.finalize().into()
}

/// The devnet owner's key (a fixed devnet seed: never use it on a real subnet).
pub fn owner_seed() -> [u8; 32] {
    seed("owner", 0)
}

/// Validator `i`'s hotkey seed.
pub fn validator_seed(i: usize) -> [u8; 32] {
    seed("validator", i)
}

/// Miner `j`'s hotkey seed.
pub fn miner_seed(j: usize) -> [u8; 32] {
    seed("miner", j)
}

fn status(api: &str) -> Option<serde_json::Value> {
    let text = crate::http::get(api, "/status", Duration::from_secs(2)).ok()?;
    serde_json::from_str(&text).ok()
}

/// Register the chosen example challenges (all when `names` is empty) through node `api`:
/// publish then activate; with `mechanisms` > 1, the last one's weights go to mechanism 1.
fn register_examples(api: &str, names: &[String], mechanisms: u8) -> anyhow::Result<()> {
    let owner = Keypair::from_seed(&owner_seed());
    let mut nonce = platform_types::now_ms();
    let chosen: Vec<_> = platform_challenges::EXAMPLES
        .iter()
        .filter(|e| names.is_empty() || names.iter().any(|n| n == e.name))
        .collect();
    for ex in &chosen {
        let meta = ChallengeMeta {
            id: ex.id,
            name: ex.name.into(),
            version: 1,
            module_hash: platform_types::sha256(ex.wasm),
            limits: Limits {
                fuel: 1_000_000_000,
                memory_bytes: 16 << 20,
                input_bytes: 1 << 20,
                output_bytes: 64 << 10,
            },
            emission_share: 1,
            rule: if ex.name == "knapsack" {
                Rule::WinnerTakesAll
            } else {
                Rule::Proportional
            },
        };
        crate::client::post_change(
            api,
            &owner,
            Scheme::Platform,
            Change::Publish(meta),
            nonce,
            Some(ex.wasm.to_vec()),
        )?;
        // Activations are signed as Bittensor tooling signs (version 2), so every devnet
        // takes both versions through consensus.
        crate::client::post_change(
            api,
            &owner,
            Scheme::Substrate,
            Change::Activate(ex.id),
            nonce + 1,
            None,
        )?;
        nonce += 2;
    }
    if let (true, Some(last)) = (mechanisms > 1, chosen.last()) {
        crate::client::post_change(
            api,
            &owner,
            Scheme::Platform,
            Change::SetMechanism {
                id: last.id,
                mecid: 1,
            },
            nonce,
            None,
        )?;
    }
    Ok(())
}

/// Run the devnet until `--epochs` or `stop`.
pub fn run(args: &DevnetArgs, stop: Arc<AtomicBool>) -> anyhow::Result<()> {
    anyhow::ensure!(args.nodes >= 1, "--nodes must be at least 1");
    anyhow::ensure!(
        args.hold < args.nodes,
        "--hold must leave a validator running"
    );
    anyhow::ensure!(
        args.epoch_blocks >= crate::machine::EPOCH_BLOCKS_MIN,
        "--epoch-blocks must be at least {}",
        crate::machine::EPOCH_BLOCKS_MIN
    );
    anyhow::ensure!(
        args.block_time >= Duration::from_millis(20),
        "--block-time must be at least 20ms"
    );
    if args.dir.exists() {
        std::fs::remove_dir_all(&args.dir)
            .with_context(|| format!("emptying {}", args.dir.display()))?;
    }
    std::fs::create_dir_all(&args.dir)?;
    let dir = std::fs::canonicalize(&args.dir)?;

    // The one chain: validators with stake, then the genesis miners, in uid order.
    let mut genesis: Vec<([u8; 32], u64)> = (0..args.nodes)
        .map(|i| (Keypair::from_seed(&validator_seed(i)).public(), 1000))
        .collect();
    genesis.extend((0..args.miners).map(|j| (Keypair::from_seed(&miner_seed(j)).public(), 0)));
    let tempo = u16::try_from(args.epoch_blocks - 1).context("--epoch-blocks too large")?;
    let server = ChainServer::start(
        "127.0.0.1:0".parse()?,
        crate::chainsvc::sim_chain(NETUID, tempo, args.commit_reveal, &genesis),
        args.block_time,
    )?;
    let chain_addr = server.addr().to_string();
    if args.mechanisms > 1 {
        server
            .chain()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .set_mechanism_count(NETUID, args.mechanisms)?;
    }

    let specs = write_configs(args, &dir, &chain_addr)?;
    let exe = std::env::current_exe()?;
    let running: Vec<bool> = (0..specs.len())
        .map(|i| !(i >= args.nodes - args.hold && i < args.nodes))
        .collect();
    let mut children: Vec<Option<Child>> = Vec::new();
    for (i, s) in specs.iter().enumerate() {
        children.push(if running[i] {
            Some(spawn(&exe, s)?)
        } else {
            None
        });
    }
    let manifest = serde_json::json!({
        "netuid": NETUID,
        "chain": chain_addr,
        "epoch_blocks": args.epoch_blocks,
        "block_ms": args.block_time.as_millis() as u64,
        "epoch_ms": (args.block_time * args.epoch_blocks as u32).as_millis() as u64,
        "owner_seed": hex::encode(owner_seed()),
        "nodes": specs.iter().zip(&children).map(|(s, c)| serde_json::json!({
            "config": s.config, "api": s.api, "p2p": s.p2p, "hotkey": s.hotkey, "log": s.log,
            "pid": c.as_ref().map(Child::id), "staked": s.staked,
        })).collect::<Vec<_>>(),
        "miners": (0..args.miners + args.late_miners).map(|j| serde_json::json!({
            "seed": hex::encode(miner_seed(j)),
            "hotkey": ss58_encode(&Keypair::from_seed(&miner_seed(j)).public()),
            "hotkey_file": dir.join(format!("miners/m{j}.json")),
            "late": j >= args.miners,
        })).collect::<Vec<_>>(),
    });
    std::fs::write(
        dir.join("devnet.json"),
        serde_json::to_string_pretty(&manifest)?,
    )?;
    println!(
        "devnet: one shared chain at {chain_addr} (a block every {:?}, epochs of {} blocks); \
         {} validators, {} followers; files in {}",
        args.block_time,
        args.epoch_blocks,
        args.nodes,
        args.followers,
        dir.display()
    );
    for (i, s) in specs.iter().enumerate() {
        println!(
            "  v{i} {} {}  metrics http://{}/metrics  log {}",
            if s.staked { "validator" } else { "follower " },
            s.hotkey,
            s.api,
            s.log.display()
        );
    }

    let result = drive(args, &specs, &mut children, &server, &stop);
    println!("{}", report::chain_calls(&server.chain()));
    let rss: Vec<String> = children
        .iter()
        .enumerate()
        .filter_map(|(i, c)| {
            Some(format!(
                "v{i} {} MiB",
                peak_rss_kib(c.as_ref()?.id())? / 1024
            ))
        })
        .collect();
    if !rss.is_empty() {
        println!("peak RSS: {}", rss.join(", "));
    }
    stop_all(&mut children);
    drop(server);
    println!("devnet stopped");
    result
}

fn drive(
    args: &DevnetArgs,
    specs: &[NodeSpec],
    children: &mut [Option<Child>],
    server: &ChainServer,
    stop: &AtomicBool,
) -> anyhow::Result<()> {
    let up: Vec<usize> = (0..specs.len())
        .filter(|i| children[*i].is_some())
        .collect();
    // Wait for the nodes' APIs and mesh.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let ready = up
            .iter()
            .filter(|i| {
                status(&specs[**i].api)
                    .is_some_and(|st| st["peers"].as_u64().unwrap_or(0) + 1 >= up.len() as u64)
            })
            .count();
        if ready == up.len() {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "nodes did not come up; see the logs in {}",
            args.dir.display()
        );
        anyhow::ensure!(!stop.load(Ordering::Relaxed), "interrupted");
        std::thread::sleep(Duration::from_millis(200));
    }
    println!("devnet: {} nodes connected", up.len());
    if !args.no_challenges {
        register_examples(&specs[0].api, &args.challenges, args.mechanisms)?;
        println!("devnet: example challenges sent to v0; they take effect once committed");
    }
    let schedule = Schedule::of_subnet(NETUID, args.epoch_blocks);
    let mut reporter = report::Reporter::new(specs.iter().map(|s| s.hotkey.clone()).collect());
    let mut loaded_epoch = None;
    let mut late_registered = args.late_miners == 0;
    let mut load: Option<std::thread::JoinHandle<()>> = None;
    let targets: Vec<String> = up.iter().map(|i| specs[*i].p2p.clone()).collect();
    let exe = std::env::current_exe()?;
    let mut rss = rss::RssLog::new(Duration::from_secs(10));
    let mut chaos = args.chaos.map(|seed| {
        let first = schedule.epoch_of(server.head()) + 3;
        chaos::Chaos::new(seed, args.chaos_every, args.nodes - args.hold, first)
    });
    while !stop.load(Ordering::Relaxed) {
        for (i, c) in children.iter_mut().enumerate() {
            if let Some(ch) = c
                && let Ok(Some(code)) = ch.try_wait()
            {
                println!("devnet: v{i} exited ({code})");
                *c = None;
            }
        }
        let frozen = chaos.as_ref().and_then(chaos::Chaos::unreachable);
        let sts: Vec<(usize, serde_json::Value)> = (0..specs.len())
            .filter(|i| children[*i].is_some() && Some(*i) != frozen)
            .filter_map(|i| status(&specs[i].api).map(|st| (i, st)))
            .collect();
        let head = server.head();
        let epoch = schedule.epoch_of(head);
        if !late_registered && epoch >= args.late_at {
            late_registered = true;
            let chain = server.chain();
            let mut c = chain.lock().unwrap_or_else(|p| p.into_inner());
            for j in args.miners..args.miners + args.late_miners {
                let k = Keypair::from_seed(&miner_seed(j)).public();
                let _ = c.register(NETUID, k, 0);
            }
            println!(
                "devnet: {} miners registered at block {head} (epoch {epoch}); they count from epoch {}",
                args.late_miners,
                epoch + 1
            );
        }
        // Synthetic load: once per epoch, early in it, every miner submits to every loaded
        // challenge.
        if args.load > 0
            && loaded_epoch != Some(epoch)
            && load.as_ref().is_none_or(|h| h.is_finished())
            && head - schedule.start(epoch) < args.epoch_blocks * 6 / 10
            && let Some((_, st)) = sts.first()
        {
            let active: Vec<u32> = st["registry"]
                .as_array()
                .map(|r| {
                    r.iter()
                        .filter(|c| c["loaded"].as_bool() == Some(true))
                        .filter_map(|c| c["id"].as_u64().map(|v| v as u32))
                        .collect()
                })
                .unwrap_or_default();
            if !active.is_empty() {
                loaded_epoch = Some(epoch);
                let targets = targets.clone();
                let (miners, per) = (args.miners + args.late_miners, args.load);
                load = Some(std::thread::spawn(move || {
                    synthetic_load(epoch, &active, miners, per, &targets)
                }));
            }
        }
        reporter.report(&sts, &schedule, &server.chain());
        rss.sample(children);
        if let Some(c) = chaos.as_mut() {
            let quiet = reporter.agreed() + 4 >= args.epochs;
            let mut ctx = chaos::Ctx {
                exe: &exe,
                specs,
                children,
            };
            c.step(epoch, quiet, &sts, &mut ctx)?;
        }
        let settled = chaos.as_ref().is_none_or(chaos::Chaos::settled);
        if args.epochs > 0 && reporter.agreed() >= args.epochs && settled {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    if let Some(h) = load {
        let _ = h.join();
    }
    let names: Vec<String> = (0..specs.len()).map(|i| format!("v{i}")).collect();
    std::fs::write(
        args.dir.join("rss.json"),
        serde_json::to_string_pretty(&rss.finish(&names))?,
    )?;
    if let Some(c) = chaos.as_mut() {
        let (sts, newest) = settle_weights(specs, children, args.nodes, stop);
        // The weights of the validators whose last submission, the newest epoch's, landed.
        let rows: Vec<(u16, Vec<(u16, u16)>)> = server
            .chain()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .all_weights(NETUID)
            .into_iter()
            .filter(|(uid, _)| {
                sts.iter().any(|(i, s)| {
                    *i == usize::from(*uid)
                        && s["chain"]["last_epoch"].as_u64() == newest
                        && s["chain"]["last_outcome"]
                            .as_str()
                            .is_some_and(|o| o.starts_with("set "))
                })
            })
            .collect();
        let summary = c.finish(&sts, &rows, reporter.agreed(), reporter.disagreed());
        std::fs::write(
            args.dir.join("chaos.json"),
            serde_json::to_string_pretty(&summary)?,
        )?;
        anyhow::ensure!(
            !c.violated(),
            "the chaos campaign (seed {}) broke an invariant",
            args.chaos.unwrap_or(0)
        );
    }
    anyhow::ensure!(!reporter.disagreed(), "validators disagreed on some epoch");
    Ok(())
}

/// Wait (at most 60 s) until every validator submitted weights for the same newest epoch;
/// their statuses then, and the newest epoch any validator submitted weights for.
fn settle_weights(
    specs: &[NodeSpec],
    children: &[Option<Child>],
    validators: usize,
    stop: &AtomicBool,
) -> (Vec<(usize, serde_json::Value)>, Option<u64>) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let sts = chaos::statuses(specs, children);
        let lasts: std::collections::BTreeSet<Option<u64>> = sts
            .iter()
            .filter(|(i, _)| *i < validators)
            .map(|(_, s)| s["chain"]["last_epoch"].as_u64())
            .collect();
        if lasts.len() == 1 || Instant::now() >= deadline || stop.load(Ordering::Relaxed) {
            let newest = lasts.last().copied().flatten();
            return (sts, newest);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}
