//! `bench devnet`: load on the whole system. Starts a devnet (the `platform` binary, N
//! validator processes on loopback) or attaches to a running one, drives signed miner
//! submissions over kept-open connections at a target rate or as fast as the validators
//! accept them, and follows each submission to its committed epoch result. Reports
//! throughput (accepted, and evaluated into committed results), latency percentiles
//! (submission → accepted, submission → in a committed result), refusals by reason, and each
//! validator's resident memory over the run and at its peak.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use hdrhistogram::Histogram;
use platform_keys::Keypair;
use platform_net::miner::MinerClient;
use platform_net::{Submission, SubmitAck};
use platform_types::now_ms;
use serde::Serialize;
use serde_json::Value;

use crate::machine::Machine;
use platform_node::devnet::{proc_status_kib, slope_per_min};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Validators to start.
    #[arg(long, default_value_t = 4)]
    nodes: usize,
    /// Blocks per epoch of the devnet started.
    #[arg(long, default_value_t = 40)]
    epoch_blocks: u64,
    /// Time per block of the devnet's shared chain.
    #[arg(long, default_value = "250ms", value_parser = humantime::parse_duration)]
    block_time: Duration,
    /// Registered miners (one counted submission per miner, challenge and epoch).
    #[arg(long, default_value_t = 1000)]
    miners: usize,
    /// Target submissions per second (0: as fast as accepted, `window` in flight).
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Submissions in flight at most (0: two per miner connection, at least 64).
    #[arg(long, default_value_t = 0)]
    window: usize,
    /// Miner connections per validator (each its own libp2p identity, as each miner of a
    /// subnet is: validators rate-limit every peer, 50 requests/s by default, so one
    /// connection cannot carry a whole load). 0: enough for `rate` at `connection_rate`
    /// each (at least 8), or 64 when driving as fast as accepted.
    #[arg(long, default_value_t = 0)]
    connections: usize,
    /// Requests per second each connection sends at most, as a miner that keeps within the
    /// validators' `peer_request_rate` (50/s by default) must: over it, requests are refused
    /// `rate_limited` and cost penalty points, and a banned connection is closed.
    #[arg(long, default_value_t = 45.0)]
    connection_rate: f64,
    /// How long to drive load.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Stop after this many submissions (before `duration` if reached).
    #[arg(long)]
    count: Option<u64>,
    /// Example challenges the devnet registers, by name, comma-separated (default: all).
    #[arg(long, value_delimiter = ',')]
    challenges: Vec<String>,
    /// Attach to a running devnet: its directory (with devnet.json) instead of starting one.
    #[arg(long)]
    attach: Option<PathBuf>,
    /// The `platform` binary (default: beside this one).
    #[arg(long)]
    platform: Option<PathBuf>,
    /// Committed epochs each validator keeps in its store (`[node] retain_epochs`; 0: all;
    /// default: the node's default).
    #[arg(long)]
    retain_epochs: Option<u64>,
    /// Directory for the JSON results.
    #[arg(long, default_value = "bench/results")]
    out: PathBuf,
}

#[derive(Debug, Serialize)]
struct Percentiles {
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

#[derive(Debug, Serialize)]
struct Report {
    machine: Machine,
    nodes: usize,
    epoch_ms: u64,
    miners: usize,
    target_rate: f64,
    window: usize,
    connections: usize,
    seconds: f64,
    sent: u64,
    accepted: u64,
    accepted_per_sec: f64,
    refused: BTreeMap<String, u64>,
    /// (epoch, reports from all validators, submissions with an agreed score).
    committed_epochs: Vec<(u64, u64, u64)>,
    /// Reports in committed inputs ÷ validators (abstentions included).
    evaluated_into_results: u64,
    evaluated_per_sec: f64,
    /// Submissions with an agreed score in a committed epoch: what counted.
    scored_into_results: u64,
    scored_per_sec: f64,
    ack: Percentiles,
    to_committed: Percentiles,
    /// Per loaded epoch: seconds from the epoch's end until every validator had committed it.
    commit_after_epoch_end_s: Vec<(u64, f64)>,
    followed_to_commit: u64,
    /// Every 5 s, each node's resident set.
    rss_mib_over_time: Vec<Vec<u64>>,
    /// Per node, the least-squares slope of its resident set over the last half of the run
    /// (MiB per minute; ≈ 0 when memory plateaus).
    rss_slope_mib_per_min_last_half: Vec<Option<f64>>,
    peak_rss_mib: Vec<u64>,
    /// At the same moments, each node's live heap (jemalloc's `allocated`, from its status):
    /// what RSS would be without the allocator's pages and the wasm slots.
    heap_allocated_mib_over_time: Vec<Vec<u64>>,
    /// Per node, the slope of its live heap over the last half of the run (MiB per minute).
    heap_allocated_slope_mib_per_min_last_half: Vec<Option<f64>>,
    /// `[node] retain_epochs` the devnet was started with (None: the node's default, or
    /// attached).
    retain_epochs: Option<u64>,
    /// At the same moments, the size of each node's `node.redb` (MiB; redb grows it by
    /// doubling, so it reads in steps).
    store_mib_over_time: Vec<Vec<u64>>,
    /// At the same moments, the submission envelopes each node's store keeps.
    store_bodies_over_time: Vec<Vec<u64>>,
    /// Per node, the slope of its `node.redb` size over the last half of the run (MiB/min).
    store_slope_mib_per_min_last_half: Vec<Option<f64>>,
    challenges: Vec<String>,
    /// Epochs from the first to the last loaded one that did not commit everywhere.
    epochs_skipped: Vec<u64>,
    /// p99 over loaded epochs of seconds from the epoch's end to its commit everywhere.
    commit_after_epoch_end_p99_s: f64,
    /// The engine alone in this run: pooled evaluations/s on 2 shards of the submission
    /// mix (harmonic mean over the challenges, which the load round-robins).
    engine_2shard_evals_per_sec: f64,
    /// What the replicated design allows: every validator evaluates every submission.
    limit_committed_per_sec: f64,
    /// scored into committed results/s ÷ that limit.
    limit_ratio: f64,
    /// CPU used while load was driven, in cores (CPU seconds ÷ wall seconds): each
    /// validator process, the `platform devnet` process (the shared chain), and this driver
    /// (signing, its miner connections). Their sum against the machine's cores says whether
    /// the machine, not the protocol, caps the run.
    cpu_cores: CpuCores,
    /// Per validator: bytes received from peers (gossip of every topic and fetched
    /// submission batches) per unique submission it did not get from a miner, ÷ the mean
    /// submission envelope size.
    bytes_received_per_submission_ratio: Vec<f64>,
    mean_submission_bytes: f64,
}

#[derive(Debug, Serialize)]
struct CpuCores {
    validators: Vec<f64>,
    chain: f64,
    driver: f64,
    machine_cores: usize,
}

/// CPU seconds (user + system) a process has used so far, from `/proc/PID/stat`.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces): state is the first; utime and
    // stime are the 12th and 13th.
    let rest = stat.rsplit_once(") ")?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    // SAFETY: sysconf reads a constant of the running system.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (hz > 0).then(|| ticks / hz as f64)
}

/// How long a connection told `rate_limited` waits before sending again.
const RATE_BACKOFF: Duration = Duration::from_millis(100);

/// Requests a connection may send back to back after an idle spell (its bucket's size),
/// well within the validators' burst (200 by default).
const CONNECTION_BURST: f64 = 20.0;

/// Miner connections per validator: as asked, or enough for the target rate at
/// `per_connection` each (at least 8), or 64 when driving as fast as accepted.
fn connections_per_node(asked: usize, rate: f64, per_connection: f64, nodes: usize) -> usize {
    if asked > 0 {
        return asked;
    }
    if rate <= 0.0 {
        return 64;
    }
    let total = (rate / per_connection.max(1e-3)).ceil() as usize;
    total.div_ceil(nodes.max(1)).max(8)
}

/// A connection's pacing: a token bucket refilled at `rate` per second up to
/// [`CONNECTION_BURST`], so a connection never sends faster than a validator takes.
#[derive(Clone, Copy)]
struct Pace {
    tokens: f64,
    at: Instant,
}

impl Pace {
    fn new(now: Instant) -> Pace {
        Pace {
            tokens: CONNECTION_BURST,
            at: now,
        }
    }

    /// Take a token if there is one.
    fn take(&mut self, rate: f64, now: Instant) -> bool {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + dt * rate).min(CONNECTION_BURST);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Sum of a Prometheus counter's samples whose labels contain every `labels` pair.
fn prom_sum(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (n, rest) = series.split_once('{').unwrap_or((series, ""));
            (n == name
                && labels
                    .iter()
                    .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\""))))
            .then(|| value.parse::<f64>().ok())
            .flatten()
        })
        .sum()
}

struct Node {
    api: String,
    p2p: String,
    pid: Option<u32>,
}

fn status(api: &str) -> Option<Value> {
    let text = http_get(api, "/status").ok()?;
    serde_json::from_str(&text).ok()
}

/// One GET over a fresh connection (the node's API is plain HTTP/1.1).
fn http_get(addr: &str, path: &str) -> anyhow::Result<String> {
    use std::io::{Read as _, Write as _};
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    let (head, body) = out
        .split_once("\r\n\r\n")
        .context("malformed HTTP response")?;
    anyhow::ensure!(head.contains(" 200 "), "{addr}{path}: {head}");
    Ok(body.to_string())
}

/// Seconds between resident-set samples.
const RSS_EVERY_S: f64 = 5.0;

/// Per node (column), the least-squares slope of `series` (rows sampled every `every_s`)
/// over its last half, per minute; `None` with fewer than 3 samples there.
fn slope_last_half(series: &[Vec<u64>], every_s: f64) -> Vec<Option<f64>> {
    let nodes = series.first().map_or(0, Vec::len);
    let from = series.len() / 2;
    (0..nodes)
        .map(|i| {
            let pts: Vec<(f64, f64)> = series[from..]
                .iter()
                .enumerate()
                .filter_map(|(k, row)| row.get(i).map(|v| (k as f64 * every_s, *v as f64)))
                .collect();
            slope_per_min(&pts)
        })
        .collect()
}

fn percentiles(h: &Histogram<u64>) -> Percentiles {
    let ms = |v: u64| v as f64 / 1000.0;
    Percentiles {
        p50_ms: ms(h.value_at_quantile(0.5)),
        p99_ms: ms(h.value_at_quantile(0.99)),
        max_ms: ms(h.max()),
    }
}

struct Devnet {
    child: Option<Child>,
    _dir: Option<tempfile_dir::Dir>,
}

mod tempfile_dir {
    /// A directory removed on drop.
    pub struct Dir(pub std::path::PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

impl Drop for Devnet {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline && matches!(c.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn start(args: &Args) -> anyhow::Result<(Devnet, PathBuf)> {
    if let Some(dir) = &args.attach {
        return Ok((
            Devnet {
                child: None,
                _dir: None,
            },
            dir.clone(),
        ));
    }
    let exe = match &args.platform {
        Some(p) => p.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("no exe directory")?
            .join("platform"),
    };
    anyhow::ensure!(
        exe.is_file(),
        "{} not found: build it (cargo build --release -p platform-node) or pass --platform",
        exe.display()
    );
    let dir = std::env::temp_dir().join(format!("platform-bench-devnet-{}", std::process::id()));
    let log = std::fs::File::create(std::env::temp_dir().join("platform-bench-devnet.log"))?;
    let child = Command::new(&exe)
        .args(["devnet", "--load", "0", "--nodes", &args.nodes.to_string()])
        .args(["--miners", &args.miners.to_string()])
        .args(["--epoch-blocks", &args.epoch_blocks.to_string()])
        .args(
            args.retain_epochs
                .map(|r| ["--retain-epochs".to_string(), r.to_string()])
                .into_iter()
                .flatten(),
        )
        .args(
            (!args.challenges.is_empty())
                .then(|| ["--challenges".to_string(), args.challenges.join(",")])
                .into_iter()
                .flatten(),
        )
        .arg("--block-time")
        .arg(format!("{}ms", args.block_time.as_millis()))
        .arg("--dir")
        .arg(&dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {}", exe.display()))?;
    Ok((
        Devnet {
            child: Some(child),
            _dir: Some(tempfile_dir::Dir(dir.clone())),
        },
        dir,
    ))
}

fn wait_for<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> anyhow::Result<T> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        anyhow::ensure!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Epochs committed by every node, and when this process first saw that.
/// Per epoch: (reports in its input, (challenge, miner) pairs with an agreed score).
fn committed_everywhere(nodes: &[Node]) -> BTreeMap<u64, (u64, u64)> {
    let mut counts: BTreeMap<u64, (usize, (u64, u64))> = BTreeMap::new();
    for n in nodes {
        if let Some(st) = status(&n.api) {
            for c in st["committed"].as_array().into_iter().flatten() {
                if let Some(e) = c["epoch"].as_u64() {
                    let reports = c["reports"].as_u64().unwrap_or(0);
                    let scored = c["scored"].as_u64().unwrap_or(0);
                    let entry = counts.entry(e).or_insert((0, (reports, scored)));
                    entry.0 += 1;
                }
            }
        }
    }
    counts
        .into_iter()
        .filter(|(_, (n, _))| *n == nodes.len())
        .map(|(e, (_, rs))| (e, rs))
        .collect()
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let machine = Machine::detect();
    println!("{}", machine.line());
    // The engine's own limit, measured in this run before the devnet starts.
    let names: Vec<String> = if args.challenges.is_empty() {
        platform_challenges::EXAMPLES
            .iter()
            .map(|e| e.name.to_string())
            .collect()
    } else {
        args.challenges.clone()
    };
    let mut inverse = 0.0;
    for n in &names {
        let r = crate::engine::pooled_rate(2, n, Duration::from_secs(2))?;
        println!("engine alone, 2 shards, {n}: {r:.0} evaluations/s");
        inverse += 1.0 / r.max(1e-9);
    }
    let engine_rate = names.len() as f64 / inverse;
    let (devnet, dir) = start(&args)?;
    let manifest: Value = wait_for(120, "devnet.json", || {
        serde_json::from_str(&std::fs::read_to_string(dir.join("devnet.json")).ok()?).ok()
    })?;
    let epoch_ms = manifest["epoch_ms"].as_u64().context("epoch_ms")?;
    let nodes: Vec<Node> = manifest["nodes"]
        .as_array()
        .context("nodes")?
        .iter()
        .map(|n| Node {
            api: n["api"].as_str().unwrap_or_default().to_string(),
            p2p: n["p2p"].as_str().unwrap_or_default().to_string(),
            pid: n["pid"].as_u64().map(|p| p as u32),
        })
        .filter(|n| n.pid.is_some())
        .collect();
    let miners: Vec<Keypair> = manifest["miners"]
        .as_array()
        .context("miners")?
        .iter()
        .filter_map(|m| Keypair::from_seed_hex(m["seed"].as_str()?).ok())
        .collect();
    anyhow::ensure!(!miners.is_empty(), "the devnet has no miners");
    let challenges: Vec<u32> = wait_for(180, "challenges active on every validator", || {
        let mut ids = None;
        for n in &nodes {
            let st = status(&n.api)?;
            let loaded: Vec<u32> = st["registry"]
                .as_array()?
                .iter()
                .filter(|c| c["loaded"].as_bool() == Some(true))
                .filter_map(|c| c["id"].as_u64().map(|v| v as u32))
                .collect();
            if loaded.is_empty() {
                return None;
            }
            ids = Some(loaded);
        }
        ids
    })?;
    println!(
        "devnet: {} validators, epoch {} ms, {} miners, challenges {:?}; driving load for {:?}",
        nodes.len(),
        epoch_ms,
        miners.len(),
        challenges,
        args.duration
    );
    let per_node = connections_per_node(
        args.connections,
        args.rate,
        args.connection_rate,
        nodes.len(),
    );
    println!(
        "miner connections: {per_node} per validator, each at most {} requests/s",
        args.connection_rate
    );
    let window = if args.window > 0 {
        args.window
    } else {
        (2 * per_node * nodes.len()).max(64)
    };
    let clients: Vec<MinerClient> = (0..per_node)
        .flat_map(|_| nodes.iter())
        .map(|n| MinerClient::connect(&n.p2p, Duration::from_secs(10)))
        .collect::<Result<_, _>>()?;

    // Pre-generated payloads per challenge (generation is not what we measure).
    let payloads: BTreeMap<u32, Vec<Vec<u8>>> = challenges
        .iter()
        .filter_map(|c| {
            let ex = platform_challenges::EXAMPLES.iter().find(|e| e.id == *c)?;
            Some((*c, (0..64).map(|s| (ex.sample_payload)(s)).collect()))
        })
        .collect();

    let bar = indicatif::ProgressBar::new(args.duration.as_secs());
    bar.set_style(
        indicatif::ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let cpu_pids: Vec<Option<u32>> = nodes
        .iter()
        .map(|n| n.pid)
        .chain([
            devnet.child.as_ref().map(|c| c.id()),
            Some(std::process::id()),
        ])
        .collect();
    let cpu_at = |pids: &[Option<u32>]| -> Vec<f64> {
        pids.iter()
            .map(|p| p.and_then(cpu_seconds).unwrap_or(0.0))
            .collect()
    };
    let cpu_before = cpu_at(&cpu_pids);
    let start = Instant::now();
    let mut inflight: VecDeque<(Instant, u64, usize, crossbeam_channel::Receiver<_>)> =
        VecDeque::new();
    // A miner told `rate_limited` holds off on that connection for a while, as a real one
    // must: a client that keeps sending over the rate is a flood, and validators ban floods.
    let mut paused_until: Vec<Instant> = vec![Instant::now(); clients.len()];
    let mut pace: Vec<Pace> = vec![Pace::new(Instant::now()); clients.len()];
    let mut ack = Histogram::<u64>::new(3)?;
    let mut to_commit = Histogram::<u64>::new(3)?;
    let mut accepted_at: Vec<(Instant, u64)> = Vec::new();
    let mut refused: BTreeMap<String, u64> = BTreeMap::new();
    let (mut sent, mut accepted) = (0u64, 0u64);
    let mut rss_over_time = Vec::new();
    let mut heap_over_time = Vec::new();
    let mut store_over_time = Vec::new();
    let mut bodies_over_time = Vec::new();
    let mut envelope_bytes = 0u64;
    let mut last_sample = Instant::now() - Duration::from_secs(3600);
    // Epochs follow the chain: the current one is what the validators report.
    let chain_epoch = |nodes: &[Node]| status(&nodes[0].api).and_then(|s| s["epoch"].as_u64());
    let first_epoch = wait_for(30, "the chain's epoch", || chain_epoch(&nodes))?;
    let mut current_epoch = first_epoch;
    let mut ended_at: BTreeMap<u64, Instant> = BTreeMap::new();
    let mut seen_commit: BTreeMap<u64, Instant> = BTreeMap::new();
    // (reports, scored) of each epoch committed everywhere, as first seen.
    let mut results: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    let mut last_poll = Instant::now();
    loop {
        let elapsed = start.elapsed();
        let done_sending = elapsed >= args.duration || args.count.is_some_and(|c| sent >= c);
        let now = Instant::now();
        let due = !done_sending
            && inflight.len() < window
            && (args.rate <= 0.0 || (sent as f64) < elapsed.as_secs_f64() * args.rate);
        let client = due
            .then(|| {
                (0..clients.len())
                    .map(|k| (sent as usize + k) % clients.len())
                    .find(|&k| paused_until[k] <= now && pace[k].take(args.connection_rate, now))
            })
            .flatten();
        if let Some(client) = client {
            let epoch = current_epoch;
            let i = sent as usize;
            let c = challenges[i % challenges.len()];
            let miner = &miners[(i / challenges.len()) % miners.len()];
            let body = payloads[&c][i % 64].clone();
            let env = Submission {
                challenge: c,
                epoch,
                body,
            }
            .sign(miner, now_ms())
            .encode();
            envelope_bytes += env.len() as u64;
            inflight.push_back((Instant::now(), epoch, client, clients[client].send(env)));
            sent += 1;
            continue;
        }
        // Answers.
        while let Some((t, epoch, client, rx)) = inflight.front() {
            match rx.try_recv() {
                Ok(r) => {
                    let us = t.elapsed().as_micros() as u64;
                    match r {
                        Ok(SubmitAck::Accepted(_)) => {
                            accepted += 1;
                            ack.record(us.max(1))?;
                            accepted_at.push((*t, *epoch));
                        }
                        Ok(SubmitAck::Rejected(reason)) => {
                            if reason == "rate_limited" {
                                paused_until[*client] = Instant::now() + RATE_BACKOFF;
                            }
                            *refused.entry(reason).or_default() += 1
                        }
                        Err(e) => {
                            // "submit to ADDR: why" → "why": bounded keys.
                            let e = e.to_string();
                            let why = e.rsplit(": ").next().unwrap_or(&e).to_string();
                            *refused.entry(format!("error: {why}")).or_default() += 1
                        }
                    }
                    inflight.pop_front();
                }
                Err(crossbeam_channel::TryRecvError::Empty) => break,
                Err(crossbeam_channel::TryRecvError::Disconnected) => {
                    *refused.entry("client stopped".into()).or_default() += 1;
                    inflight.pop_front();
                }
            }
        }
        if last_poll.elapsed() >= Duration::from_millis(250) {
            last_poll = Instant::now();
            if let Some(e) = chain_epoch(&nodes)
                && e > current_epoch
            {
                for ended in current_epoch..e {
                    ended_at.entry(ended).or_insert_with(Instant::now);
                }
                current_epoch = e;
            }
            for (e, rs) in committed_everywhere(&nodes) {
                seen_commit.entry(e).or_insert_with(Instant::now);
                results.entry(e).or_insert(rs);
            }
        }
        if last_sample.elapsed() >= Duration::from_secs_f64(RSS_EVERY_S) {
            last_sample = Instant::now();
            rss_over_time.push(
                nodes
                    .iter()
                    .map(|n| {
                        n.pid
                            .and_then(|p| proc_status_kib(p, "VmRSS:"))
                            .unwrap_or(0)
                            / 1024
                    })
                    .collect::<Vec<u64>>(),
            );
            heap_over_time.push(
                nodes
                    .iter()
                    .map(|n| {
                        status(&n.api)
                            .and_then(|s| s["heap"]["allocated"].as_u64())
                            .unwrap_or(0)
                            >> 20
                    })
                    .collect::<Vec<u64>>(),
            );
            let texts: Vec<String> = nodes
                .iter()
                .map(|n| http_get(&n.api, "/metrics").unwrap_or_default())
                .collect();
            store_over_time.push(
                texts
                    .iter()
                    .map(|t| {
                        prom_sum(t, "platform_store_file_bytes", &[("file", "node.redb")]) as u64
                            >> 20
                    })
                    .collect::<Vec<u64>>(),
            );
            bodies_over_time.push(
                texts
                    .iter()
                    .map(|t| {
                        prom_sum(t, "platform_store_rows", &[("table", "submission_bodies")]) as u64
                    })
                    .collect::<Vec<u64>>(),
            );
        }
        bar.set_position(elapsed.as_secs().min(args.duration.as_secs()));
        bar.set_message(format!(
            "sent {sent} accepted {accepted} in flight {} committed epochs {}",
            inflight.len(),
            seen_commit.range(first_epoch..).count()
        ));
        if done_sending && inflight.is_empty() {
            break;
        }
        if client.is_none() || (args.rate > 0.0 && !done_sending) {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let cores_used: Vec<f64> = cpu_at(&cpu_pids)
        .iter()
        .zip(&cpu_before)
        .map(|(after, before)| (after - before) / seconds.max(1e-9))
        .collect();
    let cpu_cores = CpuCores {
        validators: cores_used[..nodes.len()].to_vec(),
        chain: cores_used[nodes.len()],
        driver: cores_used[nodes.len() + 1],
        machine_cores: machine.cores,
    };
    bar.finish_and_clear();
    // Follow the last epochs to their commit.
    let last_epoch = accepted_at
        .iter()
        .map(|(_, e)| *e)
        .max()
        .unwrap_or(first_epoch);
    wait_for(
        epoch_ms / 1000 * 4 + 30,
        "the last loaded epoch committed",
        || {
            for (e, rs) in committed_everywhere(&nodes) {
                seen_commit.entry(e).or_insert_with(Instant::now);
                results.entry(e).or_insert(rs);
            }
            seen_commit.contains_key(&last_epoch).then_some(())
        },
    )?;
    let mut followed = 0u64;
    for (t, e) in &accepted_at {
        if let Some(c) = seen_commit.get(e) {
            to_commit.record((c.saturating_duration_since(*t).as_micros() as u64).max(1))?;
            followed += 1;
        }
    }
    // From the first poll that saw the epoch over to the first that saw it committed
    // everywhere (both to within the 250 ms poll).
    let commit_lag: Vec<(u64, f64)> = seen_commit
        .range(first_epoch..=last_epoch)
        .filter_map(|(e, t)| {
            let end = ended_at.get(e)?;
            Some((*e, t.saturating_duration_since(*end).as_secs_f64()))
        })
        .collect();
    // Every epoch seen committed everywhere during the run (a node's status keeps only its
    // last 64), then what the statuses show now.
    let mut committed = results;
    for (e, rs) in committed_everywhere(&nodes) {
        committed.entry(e).or_insert(rs);
    }
    let loaded: Vec<(u64, u64, u64)> = committed
        .range(first_epoch..=last_epoch)
        .map(|(e, (r, sc))| (*e, *r, *sc))
        .collect();
    let evaluated: u64 = loaded.iter().map(|(_, r, _)| r).sum::<u64>() / nodes.len().max(1) as u64;
    let scored: u64 = loaded.iter().map(|(_, _, sc)| sc).sum();
    let peak: Vec<u64> = nodes
        .iter()
        .map(|n| {
            n.pid
                .and_then(|p| proc_status_kib(p, "VmHWM:"))
                .unwrap_or(0)
                / 1024
        })
        .collect();
    let skipped: Vec<u64> = (first_epoch..=last_epoch)
        .filter(|e| !committed.contains_key(e))
        .collect();
    let mut lags: Vec<f64> = commit_lag.iter().map(|(_, s)| *s).collect();
    lags.sort_by(f64::total_cmp);
    let lag_p99 = lags
        .get(((lags.len() as f64 * 0.99).ceil() as usize).saturating_sub(1))
        .copied()
        .unwrap_or(0.0);
    let n = nodes.len().max(1) as f64;
    let mean_sub = envelope_bytes as f64 / sent.max(1) as f64;
    let from_peers = accepted as f64 * (n - 1.0) / n;
    let amplification: Vec<f64> = nodes
        .iter()
        .map(|node| {
            let text = http_get(&node.api, "/metrics").unwrap_or_default();
            let bytes = prom_sum(
                &text,
                "platform_net_message_bytes_total",
                &[("direction", "in")],
            ) + prom_sum(
                &text,
                "platform_net_batch_bytes_total",
                &[("direction", "in")],
            );
            bytes / (from_peers * mean_sub).max(1.0)
        })
        .collect();
    let limit = engine_rate / n;
    let report = Report {
        machine: machine.clone(),
        nodes: nodes.len(),
        epoch_ms,
        miners: miners.len(),
        target_rate: args.rate,
        window,
        connections: per_node,
        seconds,
        sent,
        accepted,
        accepted_per_sec: accepted as f64 / seconds,
        refused,
        committed_epochs: loaded,
        evaluated_into_results: evaluated,
        evaluated_per_sec: evaluated as f64 / seconds,
        scored_into_results: scored,
        scored_per_sec: scored as f64 / seconds,
        ack: percentiles(&ack),
        to_committed: percentiles(&to_commit),
        commit_after_epoch_end_s: commit_lag,
        followed_to_commit: followed,
        rss_slope_mib_per_min_last_half: slope_last_half(&rss_over_time, RSS_EVERY_S),
        rss_mib_over_time: rss_over_time,
        peak_rss_mib: peak,
        heap_allocated_slope_mib_per_min_last_half: slope_last_half(&heap_over_time, RSS_EVERY_S),
        heap_allocated_mib_over_time: heap_over_time,
        retain_epochs: args.retain_epochs,
        store_slope_mib_per_min_last_half: slope_last_half(&store_over_time, RSS_EVERY_S),
        store_mib_over_time: store_over_time,
        store_bodies_over_time: bodies_over_time,
        challenges: names.clone(),
        epochs_skipped: skipped,
        commit_after_epoch_end_p99_s: lag_p99,
        engine_2shard_evals_per_sec: engine_rate,
        limit_committed_per_sec: limit,
        limit_ratio: scored as f64 / seconds / limit,
        cpu_cores,
        bytes_received_per_submission_ratio: amplification,
        mean_submission_bytes: mean_sub,
    };
    println!(
        "\n| sent | accepted/s | evaluated into results/s | scored into results/s | ack p50 / p99 | to committed p50 / p99 / max | peak RSS per node |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---|");
    println!(
        "| {} | {:.1} | {:.1} | {:.1} | {:.1} / {:.1} ms | {:.2} / {:.2} / {:.2} s | {} MiB |",
        report.sent,
        report.accepted_per_sec,
        report.evaluated_per_sec,
        report.scored_per_sec,
        report.ack.p50_ms,
        report.ack.p99_ms,
        report.to_committed.p50_ms / 1000.0,
        report.to_committed.p99_ms / 1000.0,
        report.to_committed.max_ms / 1000.0,
        report
            .peak_rss_mib
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(" / ")
    );
    println!(
        "commit after epoch end (s, seen by this poller every 250 ms): {:?}",
        report
            .commit_after_epoch_end_s
            .iter()
            .map(|(e, s)| format!("{e}: {s:.2}"))
            .collect::<Vec<_>>()
    );
    println!(
        "limit: engine {:.0} evals/s on 2 shards ÷ {} validators = {:.0}/s; scored/s ÷ limit = {:.3}",
        report.engine_2shard_evals_per_sec,
        report.nodes,
        report.limit_committed_per_sec,
        report.limit_ratio
    );
    let c = &report.cpu_cores;
    println!(
        "CPU while driving, in cores of {}: validators {:.2?} (sum {:.2}), chain {:.2}, driver {:.2}; all {:.2}",
        c.machine_cores,
        c.validators,
        c.validators.iter().sum::<f64>(),
        c.chain,
        c.driver,
        c.validators.iter().sum::<f64>() + c.chain + c.driver
    );
    println!(
        "epochs skipped: {:?}; commit after epoch end p99 {:.2} s; bytes received per submission ÷ its size ({:.0} B): {:?}",
        report.epochs_skipped,
        report.commit_after_epoch_end_p99_s,
        report.mean_submission_bytes,
        report
            .bytes_received_per_submission_ratio
            .iter()
            .map(|r| format!("{r:.2}"))
            .collect::<Vec<_>>()
    );
    if !report.refused.is_empty() {
        println!("refused: {:?}", report.refused);
    }
    println!(
        "committed epochs (epoch, reports from all validators, scored): {:?}",
        report.committed_epochs
    );
    if let (Some(first), Some(last)) = (
        report.rss_mib_over_time.first(),
        report.rss_mib_over_time.last(),
    ) {
        println!("RSS MiB at start {first:?}, at end {last:?}");
    }
    if let (Some(first), Some(last)) = (
        report.heap_allocated_mib_over_time.first(),
        report.heap_allocated_mib_over_time.last(),
    ) {
        println!(
            "live heap MiB at start {first:?}, at end {last:?}; slopes over the last half (MiB/min): RSS {:?}, heap {:?}",
            report.rss_slope_mib_per_min_last_half,
            report.heap_allocated_slope_mib_per_min_last_half
        );
    }
    if let (Some(first), Some(last)) = (
        report.store_mib_over_time.first(),
        report.store_mib_over_time.last(),
    ) {
        println!(
            "node.redb MiB at start {first:?}, at end {last:?} (retain_epochs {:?}); slope over the last half (MiB/min) {:?}",
            report.retain_epochs, report.store_slope_mib_per_min_last_half
        );
    }
    if let (Some(mid), Some(last)) = (
        report
            .store_bodies_over_time
            .get(report.store_bodies_over_time.len() / 2),
        report.store_bodies_over_time.last(),
    ) {
        println!("submission envelopes kept: at half time {mid:?}, at the end {last:?}");
    }
    let mix = if args.challenges.is_empty() {
        "all".to_string()
    } else {
        args.challenges.join("+")
    };
    let name = if args.rate > 0.0 {
        format!("devnet-{mix}-{}rps-{}s", args.rate, args.duration.as_secs())
    } else {
        format!("devnet-{mix}-max-{}s", args.duration.as_secs())
    };
    crate::machine::write_results(&args.out, &name, &machine, &report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_seconds_count_this_process_working() {
        let before = cpu_seconds(std::process::id()).expect("this process's /proc/PID/stat");
        // Work until the count moves by 50 ms of CPU (however busy the machine is).
        let t = Instant::now();
        let mut x = 0u64;
        let mut after = before;
        while after - before < 0.05 && t.elapsed() < Duration::from_secs(60) {
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
            after = cpu_seconds(std::process::id()).unwrap();
        }
        assert!(after - before >= 0.05, "{before} -> {after}");
        assert_eq!(cpu_seconds(u32::MAX), None);
    }

    #[test]
    fn connections_cover_the_target_rate_within_the_peer_rate() {
        // 10,000/s at 45/s a connection over 4 validators: 223 in all, 56 each.
        assert_eq!(connections_per_node(0, 10_000.0, 45.0, 4), 56);
        assert_eq!(connections_per_node(0, 100.0, 45.0, 4), 8);
        assert_eq!(connections_per_node(0, 0.0, 45.0, 4), 64);
        assert_eq!(connections_per_node(3, 10_000.0, 45.0, 4), 3);
    }

    #[test]
    fn a_connection_never_sends_faster_than_its_rate() {
        let t0 = Instant::now();
        let mut p = Pace::new(t0);
        let mut sent = 0;
        // Over 10 s at 45/s, asked every millisecond: the burst plus 450.
        for ms in 0..10_000 {
            if p.take(45.0, t0 + Duration::from_millis(ms)) {
                sent += 1;
            }
        }
        assert!(
            (450..=451 + CONNECTION_BURST as u32).contains(&sent),
            "{sent}"
        );
        assert!(sent >= 450 + CONNECTION_BURST as u32 - 1, "{sent}");
    }

    #[test]
    fn memory_slope_over_the_last_half() {
        // Node 0 grows 1 MiB a sample (12 MiB/min at 5 s) throughout; node 1 grows in the
        // first half only.
        let series: Vec<Vec<u64>> = (0..20u64).map(|k| vec![100 + k, 100 + k.min(9)]).collect();
        let s = slope_last_half(&series, 5.0);
        assert!((s[0].unwrap() - 12.0).abs() < 1e-9, "{s:?}");
        assert_eq!(s[1], Some(0.0));
        assert_eq!(slope_last_half(&series[..4], 5.0), vec![None, None]);
    }
}
