//! What a `bench devnet` run reports (the JSON written under `bench/results/`) and its
//! summary on the terminal.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::machine::Machine;

#[derive(Debug, Serialize)]
pub(super) struct Percentiles {
    pub(super) p50_ms: f64,
    pub(super) p99_ms: f64,
    pub(super) max_ms: f64,
}

#[derive(Debug, Serialize)]
pub(super) struct Report {
    pub(super) machine: Machine,
    pub(super) nodes: usize,
    pub(super) epoch_ms: u64,
    pub(super) miners: usize,
    pub(super) target_rate: f64,
    pub(super) window: usize,
    pub(super) connections: usize,
    pub(super) seconds: f64,
    pub(super) sent: u64,
    pub(super) accepted: u64,
    pub(super) accepted_per_sec: f64,
    pub(super) refused: BTreeMap<String, u64>,
    /// The validators' reasons for `busy` (their ingress counters, summed): their own
    /// engine's held work, half the stake saying it is behind, or the epoch's roster not
    /// read in time (`not_ready`).
    pub(super) busy_by_reason: BTreeMap<String, u64>,
    /// (epoch, reports from all validators, submissions with an agreed score).
    pub(super) committed_epochs: Vec<(u64, u64, u64)>,
    /// Reports in committed inputs ÷ validators (abstentions included).
    pub(super) evaluated_into_results: u64,
    pub(super) evaluated_per_sec: f64,
    /// Submissions with an agreed score in a committed epoch: what counted.
    pub(super) scored_into_results: u64,
    pub(super) scored_per_sec: f64,
    pub(super) ack: Percentiles,
    pub(super) to_committed: Percentiles,
    /// Per loaded epoch: seconds from the epoch's end until every validator had committed it.
    pub(super) commit_after_epoch_end_s: Vec<(u64, f64)>,
    /// Per loaded epoch: seconds from the first validator's sight of the epoch's end to the
    /// last one's commit, from the validators' own clocks (ms; each polls the chain every
    /// 50 ms), and their p99.
    pub(super) commit_after_epoch_end_stamped_s: Vec<(u64, f64)>,
    pub(super) commit_after_epoch_end_stamped_p99_s: f64,
    pub(super) followed_to_commit: u64,
    /// Every 5 s, each node's resident set.
    pub(super) rss_mib_over_time: Vec<Vec<u64>>,
    /// Per node, the least-squares slope of its resident set over the last half of the run
    /// (MiB per minute; ≈ 0 when memory plateaus).
    pub(super) rss_slope_mib_per_min_last_half: Vec<Option<f64>>,
    pub(super) peak_rss_mib: Vec<u64>,
    /// At the same moments, each node's live heap (jemalloc's `allocated`, from its status):
    /// what RSS would be without the allocator's pages and the wasm slots.
    pub(super) heap_allocated_mib_over_time: Vec<Vec<u64>>,
    /// Per node, the slope of its live heap over the last half of the run (MiB per minute).
    pub(super) heap_allocated_slope_mib_per_min_last_half: Vec<Option<f64>>,
    /// `[node] retain_epochs` the devnet was started with (None: the node's default, or
    /// attached).
    pub(super) retain_epochs: Option<u64>,
    /// At the same moments, the size of each node's `node.redb` (MiB; redb grows it by
    /// doubling, so it reads in steps).
    pub(super) store_mib_over_time: Vec<Vec<u64>>,
    /// At the same moments, the submission envelopes each node's store keeps.
    pub(super) store_bodies_over_time: Vec<Vec<u64>>,
    /// Per node, the slope of its `node.redb` size over the last half of the run (MiB/min).
    pub(super) store_slope_mib_per_min_last_half: Vec<Option<f64>>,
    pub(super) challenges: Vec<String>,
    /// Epochs from the first to the last loaded one that did not commit everywhere.
    pub(super) epochs_skipped: Vec<u64>,
    /// p99 over loaded epochs of seconds from the epoch's end to its commit everywhere.
    pub(super) commit_after_epoch_end_p99_s: f64,
    /// The engine alone in this run: pooled evaluations/s on 2 shards of the submission
    /// mix (harmonic mean over the challenges, which the load round-robins).
    pub(super) engine_2shard_evals_per_sec: f64,
    /// What the replicated design allows: every validator evaluates every submission.
    pub(super) limit_committed_per_sec: f64,
    /// scored into committed results/s ÷ that limit.
    pub(super) limit_ratio: f64,
    /// CPU used while load was driven, in cores (CPU seconds ÷ wall seconds): each
    /// validator process, the `platform devnet` process (the shared chain), and this driver
    /// (signing, its miner connections). Their sum against the machine's cores says whether
    /// the machine, not the protocol, caps the run.
    pub(super) cpu_cores: CpuCores,
    /// Per validator: bytes received from peers (gossip of every topic and fetched
    /// submission batches) per unique submission it did not get from a miner, ÷ the mean
    /// submission envelope size.
    pub(super) bytes_received_per_submission_ratio: Vec<f64>,
    pub(super) mean_submission_bytes: f64,
}

#[derive(Debug, Serialize)]
pub(super) struct CpuCores {
    pub(super) validators: Vec<f64>,
    pub(super) chain: f64,
    pub(super) driver: f64,
    pub(super) machine_cores: usize,
}

pub(super) fn percentiles(h: &Histogram<u64>) -> Percentiles {
    let ms = |v: u64| v as f64 / 1000.0;
    Percentiles {
        p50_ms: ms(h.value_at_quantile(0.5)),
        p99_ms: ms(h.value_at_quantile(0.99)),
        max_ms: ms(h.max()),
    }
}

impl Report {
    /// The run's summary on the terminal.
    pub(super) fn print(&self) {
        println!(
            "\n| sent | accepted/s | evaluated into results/s | scored into results/s | ack p50 / p99 | to committed p50 / p99 / max | peak RSS per node |"
        );
        println!("|---:|---:|---:|---:|---:|---:|---|");
        println!(
            "| {} | {:.1} | {:.1} | {:.1} | {:.1} / {:.1} ms | {:.2} / {:.2} / {:.2} s | {} MiB |",
            self.sent,
            self.accepted_per_sec,
            self.evaluated_per_sec,
            self.scored_per_sec,
            self.ack.p50_ms,
            self.ack.p99_ms,
            self.to_committed.p50_ms / 1000.0,
            self.to_committed.p99_ms / 1000.0,
            self.to_committed.max_ms / 1000.0,
            self.peak_rss_mib
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(" / ")
        );
        println!(
            "commit after epoch end (s, seen by this poller every 250 ms): {:?}",
            self.commit_after_epoch_end_s
                .iter()
                .map(|(e, s)| format!("{e}: {s:.2}"))
                .collect::<Vec<_>>()
        );
        println!(
            "commit after epoch end (s, validators' stamps: first to see the end → last to commit): {:?}; p99 {:.3} s",
            self.commit_after_epoch_end_stamped_s
                .iter()
                .map(|(e, s)| format!("{e}: {s:.3}"))
                .collect::<Vec<_>>(),
            self.commit_after_epoch_end_stamped_p99_s
        );
        println!(
            "limit: engine {:.0} evals/s on 2 shards ÷ {} validators = {:.0}/s; scored/s ÷ limit = {:.3}",
            self.engine_2shard_evals_per_sec,
            self.nodes,
            self.limit_committed_per_sec,
            self.limit_ratio
        );
        let c = &self.cpu_cores;
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
            self.epochs_skipped,
            self.commit_after_epoch_end_p99_s,
            self.mean_submission_bytes,
            self.bytes_received_per_submission_ratio
                .iter()
                .map(|r| format!("{r:.2}"))
                .collect::<Vec<_>>()
        );
        if !self.refused.is_empty() {
            println!(
                "refused: {:?}; busy, by the validators' reason: {:?}",
                self.refused, self.busy_by_reason
            );
        }
        println!(
            "committed epochs (epoch, reports from all validators, scored): {:?}",
            self.committed_epochs
        );
        if let (Some(first), Some(last)) = (
            self.rss_mib_over_time.first(),
            self.rss_mib_over_time.last(),
        ) {
            println!("RSS MiB at start {first:?}, at end {last:?}");
        }
        if let (Some(first), Some(last)) = (
            self.heap_allocated_mib_over_time.first(),
            self.heap_allocated_mib_over_time.last(),
        ) {
            println!(
                "live heap MiB at start {first:?}, at end {last:?}; slopes over the last half (MiB/min): RSS {:?}, heap {:?}",
                self.rss_slope_mib_per_min_last_half,
                self.heap_allocated_slope_mib_per_min_last_half
            );
        }
        if let (Some(first), Some(last)) = (
            self.store_mib_over_time.first(),
            self.store_mib_over_time.last(),
        ) {
            println!(
                "node.redb MiB at start {first:?}, at end {last:?} (retain_epochs {:?}); slope over the last half (MiB/min) {:?}",
                self.retain_epochs, self.store_slope_mib_per_min_last_half
            );
        }
        if let (Some(mid), Some(last)) = (
            self.store_bodies_over_time
                .get(self.store_bodies_over_time.len() / 2),
            self.store_bodies_over_time.last(),
        ) {
            println!("submission envelopes kept: at half time {mid:?}, at the end {last:?}");
        }
    }
}
