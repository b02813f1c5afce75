//! `bench net`: the libp2p mesh on loopback. N validators (net threads in this process,
//! sharing this machine's cores), one publishing signed envelopes as fast as the mesh
//! delivers them with a bounded window in flight; every other node validates (signature
//! included) and receives. Reports messages/s delivered to all, p50/p99 publish-to-delivery
//! latency, and, beside it, what sr25519 verification alone allows on one core: the ceiling
//! the validation of every message puts on one net thread.
//!
//! The batch path beside it: miners' signed submissions handed to one validator, which
//! bundles them into signed batches its peers fetch once and open in bulk (as the node
//! does); entries/s delivered to every other validator, and submit-to-delivery latency.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use hdrhistogram::Histogram;
use platform_keys::Keypair;
use platform_net::wire::{Envelope, Topic};
use platform_net::{Identity, Net, NetConfig, NetEvent, Options, TopicLimits};
use platform_types::now_ms;
use serde::Serialize;

use crate::machine::Machine;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Validators in the mesh.
    #[arg(long, default_value_t = 4)]
    nodes: usize,
    /// Payload sizes in bytes.
    #[arg(long, value_delimiter = ',', default_values_t = vec![1024, 65536])]
    sizes: Vec<usize>,
    /// Messages per size.
    #[arg(long, default_value_t = 4000)]
    messages: usize,
    /// Messages in flight (published, not yet at every node): 1 gives unloaded latency, a
    /// larger window throughput.
    #[arg(long, value_delimiter = ',', default_values_t = vec![1, 64])]
    windows: Vec<usize>,
    /// Submissions through the batch path (0: skip it).
    #[arg(long, default_value_t = 20000)]
    submissions: usize,
    /// Submission body sizes in bytes for the batch path.
    #[arg(long, value_delimiter = ',', default_values_t = vec![160, 1024])]
    submission_sizes: Vec<usize>,
    /// Threads handing submissions to the validator at once.
    #[arg(long, default_value_t = 8)]
    submitters: usize,
    /// Directory for the JSON results.
    #[arg(long, default_value = "bench/results")]
    out: PathBuf,
}

/// The batch path: submissions delivered as batch entries.
#[derive(Debug, Serialize)]
struct BatchRow {
    body_bytes: usize,
    envelope_bytes: usize,
    submissions: usize,
    submitters: usize,
    delivered_to_all: usize,
    entries_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

#[derive(Debug, Serialize)]
struct Row {
    payload_bytes: usize,
    window: usize,
    messages: usize,
    delivered_to_all: usize,
    messages_per_sec: f64,
    mib_per_sec_per_receiver: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

#[derive(Debug, Serialize)]
struct Report {
    machine: Machine,
    nodes: usize,
    verify_per_sec_one_core: f64,
    rows: Vec<Row>,
    batch_rows: Vec<BatchRow>,
}

fn mesh(n: usize) -> anyhow::Result<Vec<Net>> {
    let cfg = NetConfig {
        max_message_bytes: 256 * 1024,
        max_payload_bytes: TopicLimits {
            evaluations: 128 * 1024,
            ..TopicLimits::default()
        },
        peer_message_rate: 1e9,
        peer_message_burst: 1e9,
        event_queue: 1 << 16,
        ..NetConfig::loopback()
    };
    let mut nodes: Vec<Net> = Vec::new();
    for i in 0..n {
        let mut c = cfg.clone();
        if let Some(first) = nodes.first() {
            c.bootstrap = vec![first.handle().listen_addrs()[0].clone()];
        }
        let id = Identity {
            hotkey: Keypair::from_seed(&[i as u8 + 1; 32]),
            node_key: [i as u8 + 101; 32],
        };
        nodes.push(Net::start(c.validate()?, id, Options::default())?);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    for n_ in &nodes {
        loop {
            let ready = n_
                .handle()
                .peers()?
                .iter()
                .filter(|p| p.hotkey.is_some() && p.topics.contains(&Topic::Evaluations))
                .count();
            if ready >= n - 1 {
                break;
            }
            anyhow::ensure!(Instant::now() < deadline, "mesh did not form in 30 s");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    Ok(nodes)
}

fn verify_rate() -> f64 {
    let key = Keypair::from_seed(&[9; 32]);
    let env = Envelope::sign(&key, Topic::Evaluations, now_ms(), vec![0; 1024]);
    let t = Instant::now();
    let mut n = 0u64;
    while t.elapsed() < Duration::from_millis(500) {
        assert!(env.verify());
        n += 1;
    }
    n as f64 / t.elapsed().as_secs_f64()
}

fn run_size(nodes: &[Net], size: usize, count: usize, window: usize) -> anyhow::Result<Row> {
    let receivers = nodes.len() - 1;
    let publisher = nodes[0].handle();
    let mut sent_at: HashMap<u64, Instant> = HashMap::new();
    let mut got: HashMap<u64, usize> = HashMap::new();
    let mut hist = Histogram::<u64>::new(3)?;
    let mut complete = 0usize;
    let mut next = 0u64;
    let start = Instant::now();
    let mut last_progress = Instant::now();
    while complete < count {
        while (next as usize) < count && sent_at.len() - complete < window {
            let mut payload = vec![0u8; size];
            payload[..8].copy_from_slice(&next.to_le_bytes());
            payload[8..16].copy_from_slice(&(size as u64).to_le_bytes());
            publisher
                .publish(Topic::Evaluations, payload)
                .with_context(|| format!("publish {next}"))?;
            sent_at.insert(next, Instant::now());
            next += 1;
        }
        let mut any = false;
        for n in &nodes[1..] {
            while let Ok(ev) = n.events().try_recv() {
                if let NetEvent::Message(d) = ev {
                    let seq = u64::from_le_bytes(d.payload[..8].try_into()?);
                    let tag = u64::from_le_bytes(d.payload[8..16].try_into()?);
                    if tag != size as u64 {
                        continue;
                    }
                    let at = sent_at[&seq];
                    hist.record(at.elapsed().as_micros() as u64)?;
                    let c = got.entry(seq).or_default();
                    *c += 1;
                    if *c == receivers {
                        complete += 1;
                    }
                    any = true;
                }
            }
        }
        progressed(any, &mut last_progress, complete, count)?;
    }
    let secs = start.elapsed().as_secs_f64();
    Ok(Row {
        payload_bytes: size,
        window,
        messages: count,
        delivered_to_all: complete,
        messages_per_sec: count as f64 / secs,
        mib_per_sec_per_receiver: (count * size) as f64 / secs / (1024.0 * 1024.0),
        p50_ms: hist.value_at_quantile(0.5) as f64 / 1000.0,
        p99_ms: hist.value_at_quantile(0.99) as f64 / 1000.0,
        max_ms: hist.max() as f64 / 1000.0,
    })
}

/// `count` submissions of `size`-byte bodies, each signed by its own miner, handed to node 0
/// by `threads` threads; every other node must receive every entry.
fn run_batches(
    nodes: &[Net],
    size: usize,
    count: usize,
    threads: usize,
) -> anyhow::Result<BatchRow> {
    use std::sync::atomic::{AtomicU64, Ordering};
    let receivers = nodes.len() - 1;
    let threads = threads.max(1);
    let envelopes: Vec<Vec<u8>> = (0..count)
        .map(|i| {
            let mut seed = [7u8; 32];
            seed[..8].copy_from_slice(&(i as u64).to_le_bytes());
            seed[8..16].copy_from_slice(&(size as u64).to_le_bytes());
            let mut body = vec![0u8; size.max(8)];
            body[..8].copy_from_slice(&(i as u64).to_le_bytes());
            platform_net::Submission {
                challenge: 1,
                epoch: 3,
                body,
            }
            .sign(&Keypair::from_seed(&seed), now_ms())
            .encode()
        })
        .collect();
    let index: HashMap<[u8; 32], usize> = envelopes
        .iter()
        .enumerate()
        .map(|(i, e)| (platform_types::sha256(e), i))
        .collect();
    let start = Instant::now();
    let sent_at: Vec<AtomicU64> = (0..count).map(|_| AtomicU64::new(0)).collect();
    let mut got = vec![0usize; count];
    let mut hist = Histogram::<u64>::new(3)?;
    let mut complete = 0usize;
    let handle = nodes[0].handle();
    std::thread::scope(|scope| -> anyhow::Result<()> {
        for t in 0..threads {
            let (handle, envelopes, sent_at) = (&handle, &envelopes, &sent_at);
            scope.spawn(move || {
                for i in (t..count).step_by(threads) {
                    sent_at[i].store(start.elapsed().as_micros() as u64, Ordering::Relaxed);
                    let _ = handle.submit(envelopes[i].clone());
                }
            });
        }
        let mut last_progress = Instant::now();
        while complete < count {
            let mut any = false;
            for n in &nodes[1..] {
                while let Ok(ev) = n.events().try_recv() {
                    let NetEvent::Message(d) = ev else { continue };
                    let Some(&i) = index.get(&d.id) else { continue };
                    let at = sent_at[i].load(Ordering::Relaxed);
                    let now = start.elapsed().as_micros() as u64;
                    hist.record(now.saturating_sub(at))?;
                    got[i] += 1;
                    if got[i] == receivers {
                        complete += 1;
                    }
                    any = true;
                }
            }
            progressed(any, &mut last_progress, complete, count)?;
        }
        Ok(())
    })?;
    let secs = start.elapsed().as_secs_f64();
    Ok(BatchRow {
        body_bytes: size,
        envelope_bytes: envelopes[0].len(),
        submissions: count,
        submitters: threads,
        delivered_to_all: complete,
        entries_per_sec: count as f64 / secs,
        p50_ms: hist.value_at_quantile(0.5) as f64 / 1000.0,
        p99_ms: hist.value_at_quantile(0.99) as f64 / 1000.0,
        max_ms: hist.max() as f64 / 1000.0,
    })
}

pub fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(args.nodes >= 2, "need at least 2 nodes");
    anyhow::ensure!(
        args.sizes.iter().all(|s| (16..=128 * 1024).contains(s)),
        "sizes must be 16 B to 128 KiB"
    );
    let machine = Machine::detect();
    println!("{}", machine.line());
    let nodes = mesh(args.nodes)?;
    let verify = verify_rate();
    let mut rows = Vec::new();
    anyhow::ensure!(
        args.windows.iter().all(|w| *w >= 1),
        "windows must be at least 1"
    );
    for &window in &args.windows {
        for &size in &args.sizes {
            rows.push(run_size(&nodes, size, args.messages, window)?);
        }
    }
    println!();
    println!(
        "net: {} validators on loopback (one process, {} cores shared), signed + validated",
        args.nodes, machine.cores
    );
    println!(
        "{:>9} {:>7} {:>8} {:>10} {:>12} {:>9} {:>9} {:>9}",
        "payload", "window", "msgs", "msgs/s", "MiB/s/recv", "p50 ms", "p99 ms", "max ms"
    );
    for r in &rows {
        println!(
            "{:>9} {:>7} {:>8} {:>10.0} {:>12.1} {:>9.2} {:>9.2} {:>9.2}",
            r.payload_bytes,
            r.window,
            r.messages,
            r.messages_per_sec,
            r.mib_per_sec_per_receiver,
            r.p50_ms,
            r.p99_ms,
            r.max_ms
        );
    }
    println!(
        "sr25519 verify alone, one core: {verify:.0}/s (each receiver verifies every message once)"
    );
    let mut batch_rows = Vec::new();
    if args.submissions > 0 {
        for &size in &args.submission_sizes {
            batch_rows.push(run_batches(
                &nodes,
                size,
                args.submissions,
                args.submitters,
            )?);
        }
        println!();
        println!("batch path: miners' submissions to one validator, batched to the others");
        println!(
            "{:>9} {:>9} {:>8} {:>12} {:>9} {:>9} {:>9}",
            "body", "envelope", "entries", "entries/s", "p50 ms", "p99 ms", "max ms"
        );
        for r in &batch_rows {
            println!(
                "{:>9} {:>9} {:>8} {:>12.0} {:>9.2} {:>9.2} {:>9.2}",
                r.body_bytes,
                r.envelope_bytes,
                r.submissions,
                r.entries_per_sec,
                r.p50_ms,
                r.p99_ms,
                r.max_ms
            );
        }
    }
    let report = Report {
        machine,
        nodes: args.nodes,
        verify_per_sec_one_core: verify,
        rows,
        batch_rows,
    };
    crate::machine::write_results(&args.out, "net", &report.machine, &report)
}

/// After one pass over the receivers: note progress, or fail once nothing was delivered for
/// 10 s (and wait a little before the next pass).
fn progressed(
    any: bool,
    last_progress: &mut Instant,
    complete: usize,
    count: usize,
) -> anyhow::Result<()> {
    if any {
        *last_progress = Instant::now();
    } else {
        anyhow::ensure!(
            last_progress.elapsed() < Duration::from_secs(10),
            "no delivery for 10 s: {complete}/{count} complete"
        );
        std::thread::sleep(Duration::from_micros(200));
    }
    Ok(())
}
