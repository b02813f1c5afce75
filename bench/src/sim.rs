//! `bench sim`: the whole-network twin (`platform_node::sim`) over many seeds: seeds per
//! second, epochs committed, messages delivered, and virtual time simulated per second of
//! wall time, on one core and on every core (seeds run in parallel), by validator count.

use std::path::PathBuf;
use std::time::Instant;

use platform_node::sim::{self, Scenario};
use serde::Serialize;

use crate::machine::Machine;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Seeds to run (the same mix CI runs: 4 to 16 validators, faults and churn).
    #[arg(long, default_value_t = 200)]
    seeds: u64,
    /// First seed.
    #[arg(long, default_value_t = 0)]
    from: u64,
    /// Directory for the JSON results.
    #[arg(long, default_value = "bench/results")]
    out: PathBuf,
}

#[derive(Debug, Default, Serialize)]
struct Band {
    validators: String,
    seeds: u64,
    wall_seconds: f64,
    seeds_per_sec: f64,
    virtual_per_wall: f64,
    epochs_committed: u64,
    messages_delivered: u64,
}

#[derive(Debug, Serialize)]
struct Report {
    machine: Machine,
    seeds: u64,
    failures: Vec<String>,
    one_core: Vec<Band>,
    all_cores_seeds_per_sec: f64,
    cores: usize,
}

fn band(label: &str, scs: &[Scenario], failures: &mut Vec<String>) -> Band {
    let start = Instant::now();
    let mut b = Band {
        validators: label.into(),
        seeds: scs.len() as u64,
        ..Band::default()
    };
    let mut virtual_ms = 0u64;
    for sc in scs {
        match sim::run(sc) {
            Ok(o) => {
                virtual_ms += o.virtual_ms;
                b.epochs_committed += o.committed;
                b.messages_delivered += o.delivered;
            }
            Err(v) => failures.push(v.to_string()),
        }
    }
    b.wall_seconds = start.elapsed().as_secs_f64();
    b.seeds_per_sec = scs.len() as f64 / b.wall_seconds;
    b.virtual_per_wall = virtual_ms as f64 / 1000.0 / b.wall_seconds;
    b
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let machine = Machine::detect();
    println!("{}", machine.line());
    let all: Vec<Scenario> = sim::scenarios(args.from, args.seeds).collect();
    let mut failures = Vec::new();
    let mut one_core = Vec::new();
    for (label, lo, hi) in [("4-7", 4, 7), ("8-11", 8, 11), ("12-16", 12, 16)] {
        let scs: Vec<Scenario> = all
            .iter()
            .filter(|s| (lo..=hi).contains(&s.validators))
            .cloned()
            .collect();
        one_core.push(band(label, &scs, &mut failures));
    }
    let cores = std::thread::available_parallelism().map_or(1, |p| p.get());
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..cores {
            let all = &all;
            s.spawn(move || {
                for sc in all.iter().skip(t).step_by(cores) {
                    let _ = sim::run(sc);
                }
            });
        }
    });
    let all_cores = all.len() as f64 / start.elapsed().as_secs_f64();
    println!();
    println!(
        "{:>10} {:>6} {:>9} {:>8} {:>13} {:>8} {:>11}",
        "validators", "seeds", "wall s", "seeds/s", "virtual÷wall", "epochs", "messages"
    );
    for b in &one_core {
        println!(
            "{:>10} {:>6} {:>9.1} {:>8.2} {:>13.1} {:>8} {:>11}",
            b.validators,
            b.seeds,
            b.wall_seconds,
            b.seeds_per_sec,
            b.virtual_per_wall,
            b.epochs_committed,
            b.messages_delivered
        );
    }
    println!(
        "\nall {} seeds on {cores} cores: {all_cores:.2} seeds/s",
        all.len()
    );
    println!(
        "failures: {}",
        if failures.is_empty() {
            "none".into()
        } else {
            failures.join("; ")
        }
    );
    let report = Report {
        machine,
        seeds: args.seeds,
        failures,
        one_core,
        all_cores_seeds_per_sec: all_cores,
        cores,
    };
    crate::machine::write_results(&args.out, "sim", &report.machine, &report)
}
