//! `platform devnet`: a whole subnet on one machine. N validators run as separate OS
//! processes (this same binary, `platform node`) on loopback, each with the simulated chain
//! built from the same genesis; the devnet registers the example challenges through
//! consensus as the subnet owner, drives a synthetic miner load, and prints every committed
//! epoch. Everything it writes lives under `--dir` (configs, data, logs, `devnet.json`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use platform_keys::{Keypair, ss58_encode};
use sha2::{Digest as _, Sha256};

use crate::registry::{ChallengeMeta, Change, Limits, Rule};

/// `platform devnet` options.
#[derive(clap::Args, Debug, Clone)]
pub struct DevnetArgs {
    /// Validators.
    #[arg(long, default_value_t = 4)]
    pub nodes: usize,
    /// Stop after this many epochs committed by every running validator (0: until Ctrl-C).
    #[arg(long, default_value_t = 0)]
    pub epochs: u64,
    /// Where configs, data and logs go (emptied first).
    #[arg(long, default_value = "data/devnet")]
    pub dir: PathBuf,
    /// Epoch length.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub epoch: Duration,
    /// Registered miners (synthetic load submits for each).
    #[arg(long, default_value_t = 8)]
    pub miners: usize,
    /// Submissions per miner per challenge per epoch (0: no synthetic load).
    #[arg(long, default_value_t = 1)]
    pub load: usize,
    /// Write configs for all validators but leave the last K stopped (start them later
    /// with `platform node --config DIR/vI.toml`).
    #[arg(long, default_value_t = 0)]
    pub hold: usize,
    /// Do not register the example challenges.
    #[arg(long)]
    pub no_challenges: bool,
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

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

struct NodeSpec {
    config: PathBuf,
    api: String,
    p2p: String,
    hotkey: String,
    log: PathBuf,
}

fn write_configs(args: &DevnetArgs, dir: &Path) -> anyhow::Result<Vec<NodeSpec>> {
    let owner = Keypair::from_seed(&owner_seed());
    let mut neurons = String::new();
    for i in 0..args.nodes {
        let k = Keypair::from_seed(&validator_seed(i));
        neurons += &format!(
            "  {{ hotkey = \"{}\", stake = 1000 }},\n",
            ss58_encode(&k.public())
        );
    }
    std::fs::create_dir_all(dir.join("miners"))?;
    for j in 0..args.miners {
        let k = Keypair::from_seed(&miner_seed(j));
        neurons += &format!("  {{ hotkey = \"{}\" }},\n", ss58_encode(&k.public()));
        std::fs::write(
            dir.join(format!("miners/m{j}.json")),
            k.to_hotkey_file_json(),
        )?;
    }
    let mut specs = Vec::new();
    let mut addrs = Vec::new();
    for i in 0..args.nodes {
        let data = dir.join(format!("v{i}"));
        let node_key = seed("node-key", i);
        crate::app::write_node_key(&data, &node_key)?;
        let peer = platform_net::peer_id_of(node_key)?;
        let port = free_port()?;
        addrs.push(format!("/ip4/127.0.0.1/tcp/{port}/p2p/{peer}"));
        specs.push((i, data, port, free_port()?));
    }
    let view_timeout = (args.epoch / 10).clamp(Duration::from_millis(500), Duration::from_secs(2));
    let mut out = Vec::new();
    for (i, data, port, api_port) in specs {
        let k = Keypair::from_seed(&validator_seed(i));
        let bootstrap: Vec<String> = addrs
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, a)| format!("\"{a}\""))
            .collect();
        let text = format!(
            "# Validator {i} of a devnet (written by `platform devnet`).\n\
             [node]\ndata_dir = \"{data}\"\nhotkey_seed = \"0x{seed}\"\nnetuid = 1\n\
             subnet_owner = \"{owner}\"\nepoch = \"{epoch}ms\"\n\n\
             [engine]\nshards = 1\npin_shards = false\n\n\
             [net]\nlisten = [\"/ip4/127.0.0.1/tcp/{port}\"]\nbootstrap = [{bootstrap}]\nheartbeat = \"100ms\"\n\n\
             [consensus]\nview_timeout = \"{vt}ms\"\nview_timeout_max = \"{vtmax}ms\"\n\n\
             [chain]\nmode = \"sim\"\ntempo = 10\nblock_time = \"1s\"\nneurons = [\n{neurons}]\n\n\
             [metrics]\nlisten = \"127.0.0.1:{api_port}\"\n",
            data = data.display(),
            seed = hex::encode(validator_seed(i)),
            owner = ss58_encode(&owner.public()),
            epoch = args.epoch.as_millis(),
            bootstrap = bootstrap.join(", "),
            vt = view_timeout.as_millis(),
            vtmax = (view_timeout * 8).as_millis(),
        );
        let path = dir.join(format!("v{i}.toml"));
        crate::config::NodeConfig::parse(&text, &path.display().to_string())?;
        std::fs::write(&path, text)?;
        out.push(NodeSpec {
            config: path,
            api: format!("127.0.0.1:{api_port}"),
            p2p: addrs[i].clone(),
            hotkey: ss58_encode(&k.public()),
            log: dir.join(format!("v{i}.log")),
        });
    }
    Ok(out)
}

fn spawn(exe: &Path, spec: &NodeSpec) -> anyhow::Result<Child> {
    let log = std::fs::File::create(&spec.log)?;
    Command::new(exe)
        .args(["node", "--config"])
        .arg(&spec.config)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {}", exe.display()))
}

fn status(api: &str) -> Option<serde_json::Value> {
    let text = crate::http::get(api, "/status", Duration::from_secs(2)).ok()?;
    serde_json::from_str(&text).ok()
}

/// Register every example challenge through node `api`: publish then activate.
fn register_examples(api: &str) -> anyhow::Result<()> {
    let owner = Keypair::from_seed(&owner_seed());
    let mut nonce = platform_net::wire::now_ms();
    for ex in platform_challenges::EXAMPLES {
        let meta = ChallengeMeta {
            id: ex.id,
            name: ex.name.into(),
            version: 1,
            module_hash: platform_net::wire::sha256(ex.wasm),
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
        crate::cli::post_change(
            api,
            &owner,
            Change::Publish(meta),
            nonce,
            Some(ex.wasm.to_vec()),
        )?;
        crate::cli::post_change(api, &owner, Change::Activate(ex.id), nonce + 1, None)?;
        nonce += 2;
    }
    Ok(())
}

/// A process's peak resident set (VmHWM), in KiB.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn signal(child: &Child, sig: i32) {
    if let Ok(pid) = i32::try_from(child.id()) {
        // SAFETY: kill(2) on a child process id we own; no memory is involved.
        unsafe {
            libc::kill(pid, sig);
        }
    }
}

/// Run the devnet until `--epochs` or `stop`.
pub fn run(args: &DevnetArgs, stop: Arc<AtomicBool>) -> anyhow::Result<()> {
    anyhow::ensure!(args.nodes >= 1, "--nodes must be at least 1");
    anyhow::ensure!(
        args.hold < args.nodes,
        "--hold must leave a validator running"
    );
    anyhow::ensure!(
        args.epoch >= Duration::from_secs(5),
        "--epoch must be at least 5s"
    );
    if args.dir.exists() {
        std::fs::remove_dir_all(&args.dir)
            .with_context(|| format!("emptying {}", args.dir.display()))?;
    }
    std::fs::create_dir_all(&args.dir)?;
    let dir = std::fs::canonicalize(&args.dir)?;
    let specs = write_configs(args, &dir)?;
    let exe = std::env::current_exe()?;
    let running = args.nodes - args.hold;
    let mut children: Vec<Option<Child>> = Vec::new();
    for (i, s) in specs.iter().enumerate() {
        children.push(if i < running {
            Some(spawn(&exe, s)?)
        } else {
            None
        });
    }
    let manifest = serde_json::json!({
        "epoch_ms": args.epoch.as_millis() as u64,
        "owner_seed": hex::encode(owner_seed()),
        "nodes": specs.iter().zip(&children).map(|(s, c)| serde_json::json!({
            "config": s.config, "api": s.api, "p2p": s.p2p, "hotkey": s.hotkey, "log": s.log,
            "pid": c.as_ref().map(Child::id),
        })).collect::<Vec<_>>(),
        "miners": (0..args.miners).map(|j| serde_json::json!({
            "seed": hex::encode(miner_seed(j)),
            "hotkey": ss58_encode(&Keypair::from_seed(&miner_seed(j)).public()),
            "hotkey_file": dir.join(format!("miners/m{j}.json")),
        })).collect::<Vec<_>>(),
    });
    std::fs::write(
        dir.join("devnet.json"),
        serde_json::to_string_pretty(&manifest)?,
    )?;
    println!(
        "devnet: {} validators ({} running), epoch {:?}, files in {}",
        args.nodes,
        running,
        args.epoch,
        dir.display()
    );
    for (i, s) in specs.iter().enumerate() {
        println!(
            "  v{i} {}  metrics http://{}/metrics  log {}",
            s.hotkey,
            s.api,
            s.log.display()
        );
    }

    let result = drive(args, &specs, &mut children, running, &stop);
    let rss: Vec<String> = children
        .iter()
        .enumerate()
        .filter_map(|(i, c)| {
            let c = c.as_ref()?;
            Some(format!("v{i} {} MiB", peak_rss_kib(c.id())? / 1024))
        })
        .collect();
    if !rss.is_empty() {
        println!("peak RSS: {}", rss.join(", "));
    }
    for c in children.iter().flatten() {
        signal(c, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    for c in children.iter_mut().flatten() {
        while Instant::now() < deadline {
            if matches!(c.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if !matches!(c.try_wait(), Ok(Some(_))) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
    println!("devnet stopped");
    result
}

fn drive(
    args: &DevnetArgs,
    specs: &[NodeSpec],
    children: &mut [Option<Child>],
    running: usize,
    stop: &AtomicBool,
) -> anyhow::Result<()> {
    // Wait for the validators' APIs and mesh.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let ready = specs[..running]
            .iter()
            .filter(|s| {
                status(&s.api)
                    .is_some_and(|st| st["peers"].as_u64().unwrap_or(0) + 1 >= running as u64)
            })
            .count();
        if ready == running {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "validators did not come up; see the logs in {}",
            args.dir.display()
        );
        anyhow::ensure!(!stop.load(Ordering::Relaxed), "interrupted");
        std::thread::sleep(Duration::from_millis(200));
    }
    println!("devnet: {running} validators connected");
    if !args.no_challenges {
        register_examples(&specs[0].api)?;
        println!("devnet: example challenges sent to v0; they take effect once committed");
    }
    let epoch_ms = args.epoch.as_millis() as u64;
    let mut printed: BTreeMap<u64, bool> = BTreeMap::new();
    let mut loaded_epoch = None;
    let mut agreed_epochs = 0u64;
    let mut load: Option<std::thread::JoinHandle<()>> = None;
    while !stop.load(Ordering::Relaxed) {
        for (i, c) in children.iter_mut().enumerate() {
            if let Some(ch) = c
                && let Ok(Some(code)) = ch.try_wait()
            {
                println!("devnet: v{i} exited ({code})");
                *c = None;
            }
        }
        let sts: Vec<(usize, serde_json::Value)> = specs
            .iter()
            .enumerate()
            .filter_map(|(i, s)| status(&s.api).map(|st| (i, st)))
            .collect();
        // Synthetic load: once per epoch, every miner submits to every loaded challenge.
        let now = platform_net::wire::now_ms();
        let epoch = now / epoch_ms;
        if args.load > 0
            && loaded_epoch != Some(epoch)
            && load.as_ref().is_none_or(|h| h.is_finished())
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
            if !active.is_empty() && now % epoch_ms < epoch_ms * 6 / 10 {
                loaded_epoch = Some(epoch);
                let targets: Vec<String> = sts.iter().map(|(i, _)| specs[*i].p2p.clone()).collect();
                let (miners, per) = (args.miners, args.load);
                load = Some(std::thread::spawn(move || {
                    synthetic_load(epoch, &active, miners, per, &targets)
                }));
            }
        }
        // Report epochs committed by every validator that answers.
        let mut by_epoch: BTreeMap<u64, Vec<(usize, serde_json::Value)>> = BTreeMap::new();
        for (i, st) in &sts {
            for c in st["committed"].as_array().into_iter().flatten() {
                if let Some(e) = c["epoch"].as_u64() {
                    by_epoch.entry(e).or_default().push((*i, c.clone()));
                }
            }
        }
        for (e, commits) in by_epoch {
            if printed.contains_key(&e) || commits.len() < sts.len() || sts.is_empty() {
                continue;
            }
            let digests: std::collections::BTreeSet<&str> = commits
                .iter()
                .filter_map(|(_, c)| c["digest"].as_str())
                .collect();
            let agree = digests.len() == 1;
            let c = &commits[0].1;
            let w = c["weights"].as_array().cloned().unwrap_or_default();
            let shown: Vec<String> = w
                .iter()
                .take(4)
                .map(|p| format!("{}:{}", p[0], p[1]))
                .collect();
            println!(
                "epoch {e}: result {} on {}/{} validators{} | {} reports, {} scored pairs, {} flagged | weights on {} uids {}{}",
                &c["digest"].as_str().unwrap_or("?")[..16],
                commits.len(),
                sts.len(),
                if agree { "" } else { " — DISAGREEMENT" },
                c["reports"],
                c["scored"],
                c["flagged"],
                w.len(),
                shown.join(" "),
                if w.len() > 4 { " …" } else { "" },
            );
            printed.insert(e, agree);
            if agree {
                agreed_epochs += 1;
            }
        }
        if args.epochs > 0 && agreed_epochs >= args.epochs {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    if let Some(h) = load {
        let _ = h.join();
    }
    anyhow::ensure!(
        printed.values().all(|a| *a),
        "validators disagreed on some epoch"
    );
    Ok(())
}

/// Each miner submits `per` payloads to each challenge for `epoch`, spread over validators,
/// eight miners at a time.
fn synthetic_load(epoch: u64, challenges: &[u32], miners: usize, per: usize, targets: &[String]) {
    std::thread::scope(|s| {
        for part in 0..8 {
            s.spawn(move || {
                for j in (part..miners).step_by(8) {
                    load_miner(epoch, challenges, j, per, targets);
                }
            });
        }
    });
}

fn load_miner(epoch: u64, challenges: &[u32], j: usize, per: usize, targets: &[String]) {
    let mut n = j;
    {
        let key = Keypair::from_seed(&miner_seed(j));
        for &c in challenges {
            let Some(ex) = platform_challenges::EXAMPLES.iter().find(|e| e.id == c) else {
                continue;
            };
            for k in 0..per {
                let s = epoch.wrapping_mul(1_000_003)
                    ^ ((j as u64) << 20)
                    ^ ((k as u64) << 8)
                    ^ u64::from(c);
                let sub = platform_net::Submission {
                    challenge: c,
                    epoch,
                    body: (ex.sample_payload)(s),
                };
                let to = &targets[n % targets.len()];
                n += 1;
                if let Err(e) = platform_net::miner::submit(to, &key, &sub, Duration::from_secs(5))
                {
                    tracing::debug!("synthetic submission refused: {e}");
                }
            }
        }
    }
}
