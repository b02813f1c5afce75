//! Seeded deterministic simulation: N replicas (real redb files, real signatures) on a
//! simulated network with latency, jitter, loss, duplication, reordering, partitions that
//! heal, crashes with restart from each node's own store, and misbehaving validators named
//! by what they do. Every failure prints its seed; the same seed replays the same trace.
//! `PLATFORM_SIM_SEED=S` replays one seed of the mixed-fault sweep with a printed trace summary.

#![allow(clippy::print_stderr)]

use std::collections::BTreeMap;

use platform_consensus::sim::{Behaviour, Rng, Scenario, assert_live, run_checked};

const SEEDS: [u64; 3] = [1, 0xfeed, 0x5eed_0003];

#[test]
fn four_honest_validators_agree_on_every_height() {
    for seed in SEEDS {
        let sc = Scenario {
            heights: 8,
            ..Scenario::honest(seed, 4)
        };
        let out = run_checked(sc.clone());
        assert_live(seed, &sc, &out);
    }
}

#[test]
fn sixteen_validators_with_loss_duplication_reordering_and_unequal_stake() {
    let seed = 0xabc;
    let mut sc = Scenario::honest(seed, 16);
    sc.stakes = (0..16).map(|i| 10 + i * 37 % 101).collect();
    sc.latency_ms = (1, 120);
    sc.loss_per_mille = 50;
    sc.dup_per_mille = 50;
    sc.heights = 4;
    let out = run_checked(sc.clone());
    assert_live(seed, &sc, &out);
}

#[test]
fn a_partition_stalls_the_minority_and_heals() {
    for seed in SEEDS {
        let mut sc = Scenario::honest(seed, 7);
        sc.partitions = vec![(300, 6_000, vec![0, 1, 2])];
        sc.heights = 6;
        let out = run_checked(sc.clone());
        assert_live(seed, &sc, &out);
    }
}

#[test]
fn crash_and_restart_from_redb_never_equivocates_and_catches_up() {
    for seed in SEEDS {
        let mut sc = Scenario::honest(seed, 4);
        sc.crashes = vec![(1, 150, 2_000), (2, 2_500, 2_600), (3, 4_000, 9_000)];
        sc.loss_per_mille = 20;
        sc.heights = 8;
        let out = run_checked(sc.clone());
        assert_live(seed, &sc, &out);
    }
}

#[test]
fn a_late_joiner_syncs_decisions_and_verifies_their_certificates() {
    let seed = 77;
    let mut sc = Scenario::honest(seed, 5);
    sc.late = vec![(4, 5_000)];
    sc.heights = 10;
    let out = run_checked(sc.clone());
    assert_live(seed, &sc, &out);
}

#[test]
fn an_equivocating_leader_cannot_split_the_honest_validators() {
    for seed in SEEDS {
        let mut sc = Scenario::honest(seed, 4);
        sc.behaviours[0] = Behaviour::EquivocatingLeader;
        sc.heights = 6;
        let out = run_checked(sc.clone());
        assert_live(seed, &sc, &out);
        for ds in &out.decisions {
            assert!(
                ds.values().all(|v| !v.starts_with(b"evil"))
                    || ds
                        .values()
                        .all(|v| v.starts_with(b"good") || v.starts_with(b"evil"))
            );
        }
    }
}

#[test]
fn a_double_voter_is_reported_and_ignored() {
    let seed = 5;
    let mut sc = Scenario::honest(seed, 4);
    sc.behaviours[3] = Behaviour::DoubleVoter;
    sc.heights = 5;
    let out = run_checked(sc.clone());
    assert_live(seed, &sc, &out);
    assert!(
        out.misbehaviour_reports > 0,
        "double votes must be reported"
    );
}

#[test]
fn a_forger_is_rejected_on_signatures() {
    let seed = 6;
    let mut sc = Scenario::honest(seed, 4);
    sc.behaviours[2] = Behaviour::Forger;
    sc.heights = 5;
    let out = run_checked(sc.clone());
    assert_live(seed, &sc, &out);
    assert!(out.bad_signatures_seen > 0);
}

#[test]
fn rejected_proposals_lead_to_a_view_change_and_a_good_value() {
    let seed = 8;
    let mut sc = Scenario::honest(seed, 4);
    sc.behaviours[1] = Behaviour::BadProposer;
    sc.heights = 6;
    let out = run_checked(sc.clone());
    assert_live(seed, &sc, &out);
    for ds in &out.decisions {
        assert!(
            ds.values().all(|v| v.starts_with(b"good")),
            "a rejected value was decided"
        );
    }
}

#[test]
fn silent_validators_just_under_a_third_of_stake_do_not_stop_progress() {
    for seed in SEEDS {
        let mut sc = Scenario::honest(seed, 7);
        // Total 600 + 149 = 749; silent 100 + 149 = 249: 249 × 3 = 747 < 749, so the
        // honest 500 still make a quorum (500 × 3 = 1500 > 2 × 749 = 1498).
        sc.stakes[6] = 149;
        sc.behaviours[5] = Behaviour::Silent;
        sc.behaviours[6] = Behaviour::Silent;
        sc.heights = 5;
        let out = run_checked(sc.clone());
        assert_live(seed, &sc, &out);
    }
}

#[test]
fn silent_validators_just_over_a_third_of_stake_stop_progress_safely() {
    let seed = 9;
    let mut sc = Scenario::honest(seed, 7);
    // Total 600 + 151 = 751; silent 100 + 151 = 251: 251 × 3 = 753 > 751. The honest 500
    // are no quorum (1500 < 2 × 751 = 1502): no progress is the correct outcome.
    sc.stakes[6] = 151;
    sc.behaviours[5] = Behaviour::Silent;
    sc.behaviours[6] = Behaviour::Silent;
    sc.time_limit_ms = 30_000;
    let out = run_checked(sc);
    assert!(
        out.decisions.iter().all(BTreeMap::is_empty),
        "seed {seed}: decided without a quorum"
    );
}

#[test]
fn the_same_seed_replays_the_same_trace() {
    let mut sc = Scenario::honest(0x7ace, 5);
    sc.loss_per_mille = 30;
    sc.dup_per_mille = 30;
    sc.crashes = vec![(2, 500, 1_500)];
    let a = run_checked(sc.clone());
    let b = run_checked(sc);
    assert_eq!(a, b);
}

/// Many seeds of a mix of faults at once: lossy, duplicating, reordering links; a crash and
/// restart; a partition that heals; one byzantine validator. `PLATFORM_SIM_SEEDS=N` runs N
/// seeds (default 200); a failure names its seed, and `PLATFORM_SIM_SEED=S` replays one.
#[test]
fn mixed_faults_over_many_seeds() {
    let seeds: Vec<u64> = match std::env::var("PLATFORM_SIM_SEED") {
        Ok(s) => vec![s.parse().expect("PLATFORM_SIM_SEED is a u64")],
        Err(_) => {
            let n = std::env::var("PLATFORM_SIM_SEEDS")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(200u64);
            (1000..1000 + n).collect()
        }
    };
    let byzantine = [
        Behaviour::EquivocatingLeader,
        Behaviour::DoubleVoter,
        Behaviour::Forger,
        Behaviour::Silent,
        Behaviour::BadProposer,
    ];
    for seed in seeds {
        let mut rng = Rng(seed);
        let n = 4 + rng.below(4) as usize;
        let mut sc = Scenario::honest(seed, n);
        sc.stakes = (0..n).map(|_| 50 + rng.below(100)).collect();
        // Keep the byzantine validator's stake under a third of the total.
        let total: u64 = sc.stakes.iter().sum();
        sc.stakes[n - 1] = sc.stakes[n - 1].min(total / 4);
        sc.behaviours[n - 1] = byzantine[rng.below(byzantine.len() as u64) as usize];
        sc.latency_ms = (1, 20 + rng.below(150));
        sc.loss_per_mille = rng.below(80);
        sc.dup_per_mille = rng.below(80);
        let victim = rng.below(n as u64 - 1) as usize;
        let crash_at = 100 + rng.below(3_000);
        sc.crashes = vec![(victim, crash_at, crash_at + 200 + rng.below(4_000))];
        let cut_from = rng.below(5_000);
        sc.partitions = vec![(cut_from, cut_from + rng.below(4_000), vec![0])];
        sc.heights = 5;
        if std::env::var("PLATFORM_SIM_SEED").is_ok() {
            eprintln!(
                "scenario: stakes {:?} behaviours {:?} latency {:?} loss {} dup {} crashes {:?} partitions {:?}",
                sc.stakes,
                sc.behaviours,
                sc.latency_ms,
                sc.loss_per_mille,
                sc.dup_per_mille,
                sc.crashes,
                sc.partitions
            );
        }
        let out = run_checked(sc.clone());
        if std::env::var("PLATFORM_SIM_SEED").is_ok() {
            eprintln!(
                "decided per node: {:?}",
                out.decisions.iter().map(BTreeMap::len).collect::<Vec<_>>()
            );
        }
        assert_live(seed, &sc, &out);
    }
}
