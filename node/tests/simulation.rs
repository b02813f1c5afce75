//! The whole-network twin (`platform_node::sim`): the real epoch machine and consensus
//! replica on N simulated validators, with metagraph changes, crashes, partitions and a lying
//! leader. Every failure prints its seed; `PLATFORM_SIM_SEED=n` replays one seed and
//! `PLATFORM_SIM_SEEDS=n` runs more (or fewer) seeds than the default 1,000.

use platform_node::machine::RuleBreak;
use platform_node::sim::{self, Scenario};

fn seeds() -> (u64, u64) {
    if let Ok(s) = std::env::var("PLATFORM_SIM_SEED") {
        return (s.parse().expect("PLATFORM_SIM_SEED"), 1);
    }
    let n = std::env::var("PLATFORM_SIM_SEEDS")
        .map_or(1000, |s| s.parse().expect("PLATFORM_SIM_SEEDS"));
    (0, n)
}

#[test]
fn a_thousand_seeds_keep_every_invariant() {
    let (from, n) = seeds();
    let threads = std::thread::available_parallelism()
        .map_or(2, |p| p.get())
        .min(8) as u64;
    let failures: Vec<String> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    let mut bad = Vec::new();
                    let mut seed = from + t;
                    while seed < from + n {
                        if let Err(v) = sim::run(&Scenario::random(seed)) {
                            bad.push(v.to_string());
                        }
                        seed += threads;
                    }
                    bad
                })
            })
            .collect();
        hs.into_iter()
            .flat_map(|h| h.join().expect("a simulation panicked"))
            .collect()
    });
    assert!(
        failures.is_empty(),
        "{} of {n} seeds failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn the_same_seed_replays_the_same_run() {
    let sc = Scenario::random(7);
    let a = sim::run(&sc).unwrap();
    let b = sim::run(&sc).unwrap();
    assert_eq!(a, b);
    assert!(a.committed >= 4, "{a:?}");
    // Some deliveries reach a node at one instant and are handled as one batch (the path
    // a loaded node's loop takes), so the runs cover it.
    assert!(a.delivered_batched > 0, "{a:?}");
}

#[test]
fn a_node_that_votes_without_recomputing_is_caught() {
    // A lying leader proposes wrong digests. Honest nodes refuse them (the first loop); with
    // the recomputation rule broken, a wrong result is committed and the checks name it.
    let scenario = |seed: u64, rule_break| Scenario {
        validators: 4,
        liar: true,
        liar_stake: 500,
        crashes: 0,
        partitions: 0,
        churn: false,
        rule_break,
        ..Scenario::random(seed)
    };
    for seed in 0..10 {
        sim::run(&scenario(seed, None)).unwrap_or_else(|v| panic!("honest rules failed: {v}"));
    }
    let caught: Vec<String> = (0..10)
        .filter_map(|seed| sim::run(&scenario(seed, Some(RuleBreak::VoteWithoutRecompute))).err())
        .map(|v| v.to_string())
        .collect();
    assert!(
        !caught.is_empty(),
        "the broken rule went unnoticed on 10 seeds"
    );
    assert!(
        caught
            .iter()
            .all(|v| v.contains("not the result of its inputs")),
        "{caught:?}"
    );
}

#[test]
fn a_wiped_validator_catches_up_from_a_snapshot() {
    // One validator loses its data early and comes back empty once the faults end, several
    // epochs behind: it fetches a peer's certified snapshot (checked against the commit
    // certificate, the roster and its manifest) instead of replaying from genesis, and the
    // checks compare what it installed with what the network committed.
    for seed in 0..8 {
        let sc = Scenario {
            epochs: 16,
            crashes: 0,
            partitions: 0,
            liar: false,
            wipes: 1,
            ..Scenario::random(seed)
        };
        let out = sim::run(&sc).unwrap_or_else(|v| panic!("{v}"));
        // The wiped validator (and any joiner that started far behind) took a snapshot.
        assert!(
            out.snapshots_installed >= 1,
            "seed {seed}: the wiped validator did not catch up from a snapshot"
        );
    }
}

#[test]
fn validators_that_missed_submissions_fetch_and_evaluate_them() {
    // Partitions and loss make validators miss submissions gossiped while they were cut
    // off; they learn of them from their peers' batches, fetch them by id, evaluate them
    // themselves and publish again (every other invariant still checked).
    let mut missed = 0;
    for seed in 0..12 {
        let sc = Scenario {
            partitions: 1,
            liar: false,
            ..Scenario::random(seed)
        };
        missed += sim::run(&sc)
            .unwrap_or_else(|v| panic!("{v}"))
            .missed_evaluated;
    }
    assert!(missed > 0, "no validator caught up on a missed submission");
}
