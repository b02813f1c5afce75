//! End to end, recovery: a seeded fault campaign on a loaded devnet, and state sync — a
//! validator far behind, wiped or cut off catching up from its peers' certified snapshot and
//! fetching the submissions it missed.
#![allow(clippy::print_stderr)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use platform_tests::e2e::{Procs, status, wait_for};
use serde_json::Value;

mod common;
use common::{
    CPU, active_loaded, agreed, background_devnet, committed, devnet_to_end, sigterm_and_wait,
    start_node,
};

/// The fault campaign: a validator wiped and restarted empty, every node stopped and started
/// again, one partitioned from its peers while it runs (seed 29 draws these first), on a
/// loaded devnet; every invariant holds.
#[test]
fn a_seeded_fault_campaign_keeps_every_invariant() {
    // Alone: its invariants are about timing (caught up within 2 epochs), which the other
    // devnets of this file running beside it on two cores would distort.
    let _alone = CPU.write().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let text = devnet_to_end(
        dir.path(),
        &[
            "--nodes",
            "4",
            "--epochs",
            "14",
            "--miners",
            "4",
            "--load",
            "1",
            "--epoch-blocks",
            "12",
            "--block-time",
            "250ms",
            "--chaos",
            "29",
            // Retention at its least (2 checkpoints): old epochs are deleted from every
            // store while nodes are killed, wiped and caught up.
            "--retain-epochs",
            "8",
        ],
    );
    let summary: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("devnet/chaos.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(summary["violations"], serde_json::json!([]), "{text}");
    let faults = summary["faults"].as_object().unwrap();
    for f in ["partition", "wipe_and_restart", "restart_all"] {
        assert!(faults.contains_key(f), "{f} not injected: {summary}");
    }
    assert!(
        summary["healed_and_caught_up"].as_u64().unwrap() >= 3,
        "{summary}"
    );
    assert_eq!(summary["chain_weights_agree"], true);
    assert!(text.contains("every invariant held"), "{text}");
    // Retention ran on every store (the devnet has stopped: its files can be opened), and
    // nothing below its horizon is left.
    for i in 0..4 {
        let path = dir.path().join(format!("devnet/v{i}/node.redb"));
        let store = platform_node::store::Store::open(&path).unwrap();
        let below = store.pruned_below().unwrap();
        assert!(below >= 1, "node {i} pruned nothing: {text}");
        let counted = store.counted_from(0).unwrap();
        assert!(
            counted.iter().all(|(epoch, ..)| *epoch >= below),
            "node {i} kept submissions of epochs below {below}"
        );
        // The audit log is pruned from its front (evaluation order).
        let audit = store.audit_from(0).unwrap();
        assert!(
            audit.first().is_none_or(|(_, r)| r.epoch >= below),
            "node {i}"
        );
    }
}

/// State sync: a validator that joins with an empty data dir several epochs in, and later
/// one wiped (its stores deleted) and kept down for several epochs, each catch up from a
/// peer's certified snapshot (not by replaying from genesis), agree with the others on
/// every epoch after it, and run the challenges the snapshot's registry names; then, cut off
/// from its peers for 4+ epochs while it runs, it catches up within 2 epochs of healing; cut
/// off for part of an epoch, it fetches and evaluates the submissions it missed.
#[test]
fn a_validator_far_behind_or_wiped_catches_up_from_a_snapshot() {
    let _shared = CPU.read().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let (devnet, manifest) = background_devnet(
        dir.path(),
        &[
            "--nodes",
            "4",
            "--hold",
            "1",
            "--miners",
            "2",
            "--load",
            "2",
            "--epoch-blocks",
            "12",
        ],
    );
    let root: PathBuf = dir.path().join("devnet");
    let mut procs = Procs(vec![devnet]);
    let nodes = manifest["nodes"].as_array().unwrap().clone();
    let api = |i: usize| nodes[i]["api"].as_str().unwrap().to_string();
    let config = PathBuf::from(nodes[3]["config"].as_str().unwrap());
    let data = root.join("v3");
    let last = |st: &Value| st["last_committed_epoch"].as_u64();
    // Checkpoints every 4 heights (the default): once epoch 5 is committed, the values name
    // the snapshot of height 4, and a node 4+ epochs behind takes it.
    wait_for(180, "epoch 5 committed on v0", || {
        status(&api(0)).and_then(|s| last(&s)).filter(|e| *e >= 5)
    });
    let caught_up = |installs: u64, what: &str| -> Value {
        wait_for(120, what, || {
            let st3 = status(&api(3))?;
            let st0 = status(&api(0))?;
            (st3["machine"]["snapshots_installed"].as_u64() == Some(installs)
                && last(&st3)? + 1 >= last(&st0)?
                && active_loaded(&st3) == 3)
                .then_some(st3)
        })
    };
    procs
        .0
        .push(start_node(&config, &dir.path().join("v3-late.log")));
    let st3 = caught_up(1, "the late joiner caught up from a snapshot");
    assert!(st3["snapshot"]["height"].as_u64().unwrap() >= 4, "{st3}");
    // Its history starts at the snapshot's epoch, not at genesis.
    let first = committed(&st3).keys().next().copied().unwrap();
    assert!(
        first >= 3,
        "replayed from genesis instead: {}",
        st3["committed"]
    );
    agreed(&[status(&api(0)).unwrap(), st3]);

    // Killed, its stores deleted, down for 4+ epochs: it comes back empty and syncs again.
    let mut late = procs.0.pop().unwrap();
    // SAFETY: kill(2) on a child process of this test.
    assert_eq!(unsafe { libc::kill(late.id() as i32, libc::SIGKILL) }, 0);
    let _ = late.wait();
    for e in std::fs::read_dir(&data).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "redb") {
            std::fs::remove_file(&p).unwrap();
        }
    }
    let down_at = last(&status(&api(0)).unwrap()).unwrap();
    wait_for(120, "4 more epochs committed without v3", || {
        status(&api(0))
            .and_then(|s| last(&s))
            .filter(|e| *e >= down_at + 4)
    });
    procs
        .0
        .push(start_node(&config, &dir.path().join("v3-wiped.log")));
    let st3 = caught_up(1, "the wiped validator caught up from a snapshot");
    let first = committed(&st3).keys().next().copied().unwrap();
    assert!(first > down_at, "{}", st3["committed"]);
    let sts = [status(&api(0)).unwrap(), status(&api(1)).unwrap(), st3];
    assert!(agreed(&sts).len() >= 2, "{}", sts[2]["committed"]);

    // Partitioned from every peer for 4+ epochs while it runs (the devnet's fault signals:
    // SIGUSR1 isolates, SIGUSR2 rejoins), it catches up within 2 epochs of healing.
    let pid = procs.0.last().unwrap().id() as i32;
    // SAFETY: kill(2) on a child process of this test.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGUSR1) }, 0);
    let cut_at = last(&status(&api(0)).unwrap()).unwrap();
    wait_for(
        120,
        "4 more epochs committed while v3 is partitioned",
        || {
            status(&api(0))
                .and_then(|s| last(&s))
                .filter(|e| *e >= cut_at + 4)
        },
    );
    let behind = last(&status(&api(3)).unwrap()).unwrap();
    assert!(behind + 3 <= cut_at + 4, "v3 kept committing while cut off");
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGUSR2) }, 0);
    let healed_at = last(&status(&api(0)).unwrap()).unwrap();
    let st3 = wait_for(60, "the partitioned validator caught up", || {
        let st3 = status(&api(3))?;
        let st0 = status(&api(0))?;
        (last(&st3)? + 1 >= last(&st0)?).then_some(st3)
    });
    assert!(
        last(&status(&api(0)).unwrap()).unwrap() <= healed_at + 2,
        "caught up, but more than 2 epochs after healing"
    );
    agreed(&[status(&api(0)).unwrap(), st3]);

    // Cut off for part of an epoch while miners submit: it misses what was gossiped then,
    // learns of it from its peers' batches after healing, fetches each submission by id and
    // evaluates it itself.
    let block = |api: &str| status(api).and_then(|s| s["block"].as_u64());
    // Cut off from late in one epoch (subnet 1's 12-block epochs start at 12e − 2) until
    // after the miners' load of the next was sent (in its first 60%). The devnet sends that
    // load when its poller sees the epoch begin, which a loaded machine can delay past the
    // healing: up to three cuts, and at least one must leave v3 something to catch up on.
    let missed = || status(&api(3)).and_then(|s| s["machine"]["missed_evaluated"].as_u64());
    let before = missed().unwrap();
    let mut caught_up = None;
    for _ in 0..3 {
        let next_start = wait_for(30, "late in an epoch", || {
            let st = status(&api(0))?;
            let (e, b) = (st["epoch"].as_u64()?, st["block"].as_u64()?);
            (b + 2 - 12 * e >= 9).then_some(12 * (e + 1) - 2)
        });
        // SAFETY: as above.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGUSR1) }, 0);
        wait_for(30, "the next epoch's load sent while v3 is cut off", || {
            block(&api(0)).filter(|b| *b >= next_start + 8)
        });
        // SAFETY: as above.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGUSR2) }, 0);
        // Its peers' batches come at the epoch's end + settle; the fetches follow.
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline && caught_up.is_none() {
            caught_up = missed().filter(|n| *n > before);
            std::thread::sleep(Duration::from_millis(250));
        }
        if caught_up.is_some() {
            break;
        }
    }
    assert!(
        caught_up.is_some(),
        "v3 evaluated none of the submissions it missed in three cuts"
    );
    // One at a time: should one fail, the rest are still killed when `procs` drops.
    while let Some(mut p) = procs.0.pop() {
        let s = sigterm_and_wait(&mut p);
        assert!(s.success(), "a process exited with {s}");
    }
}
