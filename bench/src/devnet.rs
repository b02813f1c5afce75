//! `bench devnet`: load on the whole system. Starts a devnet (the `platform` binary, N
//! validator processes on loopback) or attaches to a running one, drives signed miner
//! submissions over kept-open connections at a target rate or as fast as the validators
//! accept them, and follows each submission to its committed epoch result. Reports
//! throughput (accepted, and evaluated into committed results), latency percentiles
//! (submission → accepted, submission → in a committed result), refusals by reason, and each
//! validator's resident memory over the run and at its peak.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use hdrhistogram::Histogram;
use platform_keys::Keypair;
use platform_net::miner::MinerClient;
use platform_net::{Submission, SubmitAck};
use platform_types::now_ms;
use serde_json::Value;

use crate::machine::Machine;
use platform_node::devnet::proc_status_kib;

mod follow;
mod pace;
mod probe;
mod report;
mod setup;

use follow::{Committed, committed_everywhere, p99};
use pace::{Pace, RATE_BACKOFF, connections_per_node};
use probe::{Node, RSS_EVERY_S, Samples, cpu_seconds, slope_last_half, status, traffic};
use report::{CpuCores, Report, percentiles};
use setup::{start, wait_for};

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
    // A miner told `rate_limited` or `busy` holds off on that connection for a while, as a
    // real one must: a client that keeps sending over the rate is a flood, and validators ban
    // floods; one that keeps sending to a full engine takes the CPU the engine needs.
    let mut paused_until: Vec<Instant> = vec![Instant::now(); clients.len()];
    let mut pace: Vec<Pace> = vec![Pace::new(Instant::now()); clients.len()];
    let mut ack = Histogram::<u64>::new(3)?;
    let mut to_commit = Histogram::<u64>::new(3)?;
    let mut accepted_at: Vec<(Instant, u64)> = Vec::new();
    let mut refused: BTreeMap<String, u64> = BTreeMap::new();
    let (mut sent, mut accepted) = (0u64, 0u64);
    let mut samples = Samples::default();
    let mut envelope_bytes = 0u64;
    let mut last_sample = Instant::now() - Duration::from_secs(3600);
    // Epochs follow the chain: the current one is what the validators report.
    let chain_epoch = |nodes: &[Node]| status(&nodes[0].api).and_then(|s| s["epoch"].as_u64());
    let first_epoch = wait_for(30, "the chain's epoch", || chain_epoch(&nodes))?;
    let mut current_epoch = first_epoch;
    let mut ended_at: BTreeMap<u64, Instant> = BTreeMap::new();
    let mut seen_commit: BTreeMap<u64, Instant> = BTreeMap::new();
    // Each epoch committed everywhere, as first seen.
    let mut results: BTreeMap<u64, Committed> = BTreeMap::new();
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
                            // Over the rate, or the validator's engine full: try later.
                            if reason == "rate_limited" || reason == "busy" {
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
            samples.sample(&nodes);
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
        .map(|(e, c)| (*e, c.reports, c.scored))
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
    let lag_p99 = p99(commit_lag.iter().map(|(_, s)| *s));
    // The same from the nodes' own stamps: the first node's sight of the end (it polls the
    // chain every 50 ms) to the last node's commit, to the millisecond.
    let stamped_lag: Vec<(u64, f64)> = committed
        .range(first_epoch..=last_epoch)
        .filter_map(|(e, c)| {
            let (end, done) = (c.ended_ms?, c.committed_ms?);
            Some((*e, done.saturating_sub(end) as f64 / 1000.0))
        })
        .collect();
    let stamped_p99 = p99(stamped_lag.iter().map(|(_, s)| *s));
    let n = nodes.len().max(1) as f64;
    let mean_sub = envelope_bytes as f64 / sent.max(1) as f64;
    let (amplification, busy_why) = traffic(&nodes, accepted, mean_sub);
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
        busy_by_reason: busy_why,
        committed_epochs: loaded,
        evaluated_into_results: evaluated,
        evaluated_per_sec: evaluated as f64 / seconds,
        scored_into_results: scored,
        scored_per_sec: scored as f64 / seconds,
        ack: percentiles(&ack),
        to_committed: percentiles(&to_commit),
        commit_after_epoch_end_s: commit_lag,
        commit_after_epoch_end_stamped_s: stamped_lag,
        commit_after_epoch_end_stamped_p99_s: stamped_p99,
        followed_to_commit: followed,
        rss_slope_mib_per_min_last_half: slope_last_half(&samples.rss, RSS_EVERY_S),
        rss_mib_over_time: samples.rss,
        peak_rss_mib: peak,
        heap_allocated_slope_mib_per_min_last_half: slope_last_half(&samples.heap, RSS_EVERY_S),
        heap_allocated_mib_over_time: samples.heap,
        retain_epochs: args.retain_epochs,
        store_slope_mib_per_min_last_half: slope_last_half(&samples.store, RSS_EVERY_S),
        store_mib_over_time: samples.store,
        store_bodies_over_time: samples.bodies,
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
    report.print();
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
