//! The devnet's node processes: ports, each node's config and data dir, starting one (its
//! log appended), signalling and stopping them all, and reading their memory from `/proc`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use platform_keys::{Keypair, ss58_encode};

use super::{DevnetArgs, NETUID, miner_seed, owner_seed, seed, validator_seed};

/// `n` distinct free loopback ports: every listener is held until all are picked, so the
/// system cannot hand the same port out twice (a node's net and metrics listeners once got
/// the same one, and the node could not start).
fn free_ports(n: usize) -> anyhow::Result<Vec<u16>> {
    let held = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(held
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<Result<_, _>>()?)
}

pub(super) struct NodeSpec {
    pub(super) config: PathBuf,
    pub(super) data: PathBuf,
    pub(super) api: String,
    pub(super) p2p: String,
    pub(super) hotkey: String,
    pub(super) log: PathBuf,
    pub(super) staked: bool,
}

pub(super) fn write_configs(
    args: &DevnetArgs,
    dir: &Path,
    chain: &str,
) -> anyhow::Result<Vec<NodeSpec>> {
    let owner = Keypair::from_seed(&owner_seed());
    std::fs::create_dir_all(dir.join("miners"))?;
    for j in 0..args.miners + args.late_miners {
        let k = Keypair::from_seed(&miner_seed(j));
        std::fs::write(
            dir.join(format!("miners/m{j}.json")),
            k.to_hotkey_file_json(),
        )?;
    }
    let total = args.nodes + args.followers;
    let mut specs = Vec::new();
    let mut addrs = Vec::new();
    let ports = free_ports(2 * total)?;
    for i in 0..total {
        let data = dir.join(format!("v{i}"));
        let node_key = seed("node-key", i);
        crate::boot::write_node_key(&data, &node_key)?;
        let peer = platform_net::peer_id_of(node_key)?;
        let (port, api_port) = (ports[2 * i], ports[2 * i + 1]);
        addrs.push(format!("/ip4/127.0.0.1/tcp/{port}/p2p/{peer}"));
        specs.push((i, data, port, api_port));
    }
    let epoch = args.block_time * args.epoch_blocks as u32;
    let settle = (epoch / 10).clamp(Duration::from_millis(300), Duration::from_secs(6));
    let view_timeout = (epoch / 10).clamp(Duration::from_millis(500), Duration::from_secs(2));
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
            "# Node {i} of a devnet (written by `platform devnet`).\n\
             [node]\ndata_dir = \"{data}\"\nhotkey_seed = \"0x{seed}\"\nnetuid = {NETUID}\n\
             subnet_owner = \"{owner}\"\nepoch_blocks = {blocks}\nfault_signals = true\n\
             retain_epochs = {retain}\n\n\
             [engine]\nshards = 1\npin_shards = false\n\n\
             [net]\nlisten = [\"/ip4/127.0.0.1/tcp/{port}\"]\nbootstrap = [{bootstrap}]\nheartbeat = \"100ms\"\n\n\
             [consensus]\nview_timeout = \"{vt}ms\"\nview_timeout_max = \"{vtmax}ms\"\n\
             settle = \"{settle}ms\"\ngenesis_epoch = 0\n\n\
             [chain]\nmode = \"devnet\"\nurl = \"{chain}\"\n\n\
             [metrics]\nlisten = \"127.0.0.1:{api_port}\"\n",
            data = data.display(),
            seed = hex::encode(validator_seed(i)),
            owner = ss58_encode(&owner.public()),
            blocks = args.epoch_blocks,
            retain = args.retain_epochs,
            bootstrap = bootstrap.join(", "),
            vt = view_timeout.as_millis(),
            vtmax = (view_timeout * 8).as_millis(),
            settle = settle.as_millis(),
        );
        let path = dir.join(format!("v{i}.toml"));
        crate::config::NodeConfig::parse(&text, &path.display().to_string())?;
        std::fs::write(&path, text)?;
        out.push(NodeSpec {
            config: path,
            data: data.clone(),
            api: format!("127.0.0.1:{api_port}"),
            p2p: addrs[i].clone(),
            hotkey: ss58_encode(&k.public()),
            log: dir.join(format!("v{i}.log")),
            staked: i < args.nodes,
        });
    }
    Ok(out)
}

pub(super) fn spawn(exe: &Path, spec: &NodeSpec) -> anyhow::Result<Child> {
    // Appended: a node started again (by the chaos campaign) keeps its earlier log.
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&spec.log)?;
    Command::new(exe)
        .args(["node", "--config"])
        .arg(&spec.config)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {}", exe.display()))
}

/// A process's peak resident set (VmHWM), in KiB.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    proc_status_kib(pid, "VmHWM:")
}

/// A `/proc/PID/status` field given in KiB (`VmRSS:`, `VmHWM:`).
pub fn proc_status_kib(pid: u32, key: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(key))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Stop every running node cleanly: SIGTERM to all, then SIGKILL to any still running 15 s
/// later. Every slot is left empty.
pub(super) fn stop_all(children: &mut [Option<Child>]) {
    for c in children.iter().flatten() {
        signal(c, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    for mut c in children.iter_mut().filter_map(Option::take) {
        while Instant::now() < deadline && !matches!(c.try_wait(), Ok(Some(_))) {
            std::thread::sleep(Duration::from_millis(50));
        }
        if !matches!(c.try_wait(), Ok(Some(_))) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub(super) fn signal(child: &Child, sig: i32) {
    if let Ok(pid) = i32::try_from(child.id()) {
        // SAFETY: kill(2) on a child process id we own; no memory is involved.
        unsafe {
            libc::kill(pid, sig);
        }
    }
}
