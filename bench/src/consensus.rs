//! `bench consensus`: the PBFT replicas in the deterministic simulation with zero network
//! latency, so the figures are the protocol's own cost: decisions per second (signing,
//! verifying, durable redb writes included), messages and bytes on the wire per decision, and
//! network hops from proposal to commit. Medians over `--runs`.

use std::path::PathBuf;
use std::time::Instant;

use platform_consensus::sim::{Scenario, Sim};
use serde::Serialize;

use crate::machine::Machine;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Validator counts to simulate.
    #[arg(long, value_delimiter = ',', default_values_t = vec![4, 16, 64])]
    validators: Vec<usize>,
    /// Heights decided per run (fewer are used for large N, see `--max-messages`).
    #[arg(long, default_value_t = 20)]
    heights: u64,
    /// Repetitions; medians are reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Directory for the JSON results.
    #[arg(long, default_value = "bench/results")]
    out: PathBuf,
}

#[derive(Debug, Serialize)]
struct Row {
    validators: usize,
    heights: u64,
    decisions_per_sec: f64,
    ms_per_decision: f64,
    messages_per_decision: f64,
    bytes_per_decision: f64,
    hops_proposal_to_commit: u32,
}

#[derive(Debug, Serialize)]
struct Report {
    machine: Machine,
    rows: Vec<Row>,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

pub fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.runs >= 1 && args.heights >= 1,
        "runs and heights must be positive"
    );
    let machine = Machine::detect();
    println!("{}", machine.line());
    let mut rows = vec![];
    for &n in &args.validators {
        anyhow::ensure!((1..=255).contains(&n), "validators must be 1..=255");
        // Message count grows with n²: keep big networks to a few heights.
        let heights = if n > 32 {
            args.heights.min(4)
        } else {
            args.heights
        };
        let (mut rate, mut msgs, mut bytes, mut hops) = (vec![], vec![], vec![], vec![]);
        for run in 0..args.runs {
            let mut sc = Scenario::honest(run as u64 + 1, n);
            sc.latency_ms = (0, 0);
            sc.heights = heights;
            let start = Instant::now();
            let out = Sim::new(sc).run();
            let secs = start.elapsed().as_secs_f64();
            let decided = out
                .decisions
                .iter()
                .map(|d| d.len() as u64)
                .min()
                .unwrap_or(0);
            anyhow::ensure!(
                decided >= heights,
                "n = {n}: only {decided} of {heights} heights decided"
            );
            rate.push(decided as f64 / secs);
            msgs.push(out.messages_sent as f64 / decided as f64);
            bytes.push(out.bytes_sent as f64 / decided as f64);
            let mut h = out.decision_hops.clone();
            h.sort_unstable();
            hops.push(f64::from(h.get(h.len() / 2).copied().unwrap_or(0)));
        }
        let decisions_per_sec = median(rate);
        rows.push(Row {
            validators: n,
            heights,
            decisions_per_sec,
            ms_per_decision: 1e3 / decisions_per_sec,
            messages_per_decision: median(msgs),
            bytes_per_decision: median(bytes),
            hops_proposal_to_commit: median(hops) as u32,
        });
    }
    println!();
    println!(
        "{:>10} {:>8} {:>12} {:>10} {:>12} {:>14} {:>6}",
        "validators", "heights", "decisions/s", "ms/dec", "msgs/dec", "bytes/dec", "hops"
    );
    for r in &rows {
        println!(
            "{:>10} {:>8} {:>12.1} {:>10.1} {:>12.0} {:>14.0} {:>6}",
            r.validators,
            r.heights,
            r.decisions_per_sec,
            r.ms_per_decision,
            r.messages_per_decision,
            r.bytes_per_decision,
            r.hops_proposal_to_commit
        );
    }
    println!();
    println!(
        "One process simulates every validator on one thread: decisions/s is the whole network's"
    );
    println!(
        "protocol cost (n² signature checks per phase, redb writes) on one core, not one node's."
    );
    let report = Report { machine, rows };
    crate::machine::write_results(&args.out, "consensus", &report.machine, &report)
}
