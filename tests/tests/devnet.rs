//! End to end: the real `platform` binary (as `platform-e2e`) runs a devnet of separate
//! validator processes on loopback. One scenario, in order:
//!
//! 1. Three of four validators start; the example challenges are registered through
//!    consensus and become active on all of them.
//! 2. The fourth starts late: it catches up and has the same challenges active.
//! 3. A miner submission sent with `platform submit` shows up in the committed weights,
//!    identical on every validator, and in what the simulated chain holds from each.
//! 4. Epochs commit with the same result hash on all four.
//! 5. One validator is killed with SIGKILL mid-epoch and restarted: the other three keep
//!    committing (3 of 4 is more than 2/3), it catches up, and what it had committed before
//!    the kill is still there unchanged.
//! 6. SIGTERM stops every process cleanly (exit status 0).
#![allow(clippy::print_stderr)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use platform_tests::e2e::{Procs, sigterm, status, wait_for};
use serde_json::Value;

const EXE: &str = env!("CARGO_BIN_EXE_platform-e2e");
const EPOCH_MS: u64 = 5_000;

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Committed epochs of a node: epoch → (digest, weights).
fn committed(st: &Value) -> BTreeMap<u64, (String, Value)> {
    st["committed"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            (
                c["epoch"].as_u64().unwrap(),
                (
                    c["digest"].as_str().unwrap().to_string(),
                    c["weights"].clone(),
                ),
            )
        })
        .collect()
}

fn active_loaded(st: &Value) -> usize {
    st["registry"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["active"].as_bool() == Some(true) && c["loaded"].as_bool() == Some(true))
        .count()
}

fn start_node(config: &Path, log: &Path) -> Child {
    let out = std::fs::File::create(log).unwrap();
    Command::new(EXE)
        .args(["node", "--config"])
        .arg(config)
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap()
}

fn sigterm_and_wait(c: &mut Child) -> std::process::ExitStatus {
    sigterm(c);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(s) = c.try_wait().unwrap() {
            return s;
        }
        assert!(Instant::now() < deadline, "process did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Epochs every listed node committed, with their digests (all must agree).
fn agreed(sts: &[Value]) -> BTreeMap<u64, String> {
    let maps: Vec<_> = sts.iter().map(committed).collect();
    let mut out = BTreeMap::new();
    for (e, (d, _)) in &maps[0] {
        if maps.iter().all(|m| m.contains_key(e)) {
            for m in &maps {
                assert_eq!(
                    &m[e].0, d,
                    "validators committed different results for epoch {e}"
                );
            }
            out.insert(*e, d.clone());
        }
    }
    out
}

#[test]
fn devnet_commits_agreed_weights_survives_kill_9_and_takes_late_joiners() {
    let t0 = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let root: PathBuf = dir.path().join("devnet");
    let mut procs = Procs(Vec::new());
    let devnet_log = std::fs::File::create(dir.path().join("devnet.log")).unwrap();
    procs.0.push(
        Command::new(EXE)
            .args([
                "devnet", "--nodes", "4", "--hold", "1", "--miners", "4", "--load", "0",
            ])
            .args(["--epoch", "5s", "--dir"])
            .arg(&root)
            .stdin(Stdio::null())
            .stdout(devnet_log.try_clone().unwrap())
            .stderr(devnet_log)
            .spawn()
            .unwrap(),
    );
    let manifest: Value = wait_for(60, "devnet.json", || {
        let text = std::fs::read_to_string(root.join("devnet.json")).ok()?;
        serde_json::from_str(&text).ok()
    });
    let nodes = manifest["nodes"].as_array().unwrap().clone();
    let api = |i: usize| nodes[i]["api"].as_str().unwrap().to_string();
    let config = |i: usize| PathBuf::from(nodes[i]["config"].as_str().unwrap());

    // 1. The challenges are committed and active on the three running validators.
    wait_for(180, "3 challenges active on v0..v2", || {
        (0..3)
            .all(|i| status(&api(i)).is_some_and(|s| active_loaded(&s) == 3))
            .then_some(())
    });

    eprintln!(
        "[{:>5.1}s] stage 1: challenges active on v0..v2",
        t0.elapsed().as_secs_f64()
    );
    // A change not signed by the owner is refused with the reason, and nothing changes.
    let out = Command::new(EXE)
        .args(["challenge", "deactivate", "--node", &api(0), "--id", "1"])
        .args(["--owner-seed", &format!("0x{}", "42".repeat(32))])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not signed by the subnet owner"), "{err}");
    // `platform status` reads a node.
    let out = Command::new(EXE)
        .args(["status", "--node", &api(0)])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("knapsack"), "{text}");

    // 2. A late joiner catches up and activates them too.
    procs
        .0
        .push(start_node(&config(3), &dir.path().join("v3-late.log")));
    let st3 = wait_for(120, "v3 to catch up with the challenges", || {
        status(&api(3)).filter(|s| active_loaded(s) == 3)
    });
    assert_eq!(st3["registry"].as_array().unwrap().len(), 3);

    eprintln!(
        "[{:>5.1}s] stage 2: late joiner v3 caught up",
        t0.elapsed().as_secs_f64()
    );
    // 3. A miner's submission through `platform submit` is reflected in the weights.
    let miner = &manifest["miners"][1];
    let payload = dir.path().join("payload.bin");
    std::fs::write(
        &payload,
        (platform_challenges::EXAMPLES[1].sample_payload)(7),
    )
    .unwrap();
    // Submit early in an epoch so it lands in that epoch.
    let epoch = wait_for(20, "the start of an epoch", || {
        let t = now_ms();
        (t % EPOCH_MS < EPOCH_MS / 3).then_some(t / EPOCH_MS)
    });
    // `platform submit` of the payload for `epoch` to v0, signed with `key` (flag, value).
    let submit = |key: [&str; 2]| {
        Command::new(EXE)
            .args(["submit", "--to", nodes[0]["p2p"].as_str().unwrap()])
            .args(key)
            .args([
                "--challenge",
                &platform_challenges::EXAMPLES[1].id.to_string(),
            ])
            .args(["--epoch", &epoch.to_string(), "--payload"])
            .arg(&payload)
            .output()
            .unwrap()
    };
    // An unregistered hotkey is refused at the door, with the reason.
    let out = submit(["--seed", &format!("0x{}", "77".repeat(32))]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("refused"), "{err}");
    let out = submit(["--hotkey-file", miner["hotkey_file"].as_str().unwrap()]);
    assert!(
        out.status.success(),
        "submit failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let miner_uid = 4 + 1; // four validators, then miners in order
    let sts = wait_for(60, "the submission's epoch committed on all four", || {
        let sts: Vec<Value> = (0..4).map(|i| status(&api(i))).collect::<Option<_>>()?;
        agreed(&sts).contains_key(&epoch).then_some(sts)
    });
    let weights = &committed(&sts[0])[&epoch].1;
    assert_eq!(
        weights.as_array().unwrap().len(),
        1,
        "only the one miner scored: {weights}"
    );
    assert_eq!(weights[0][0].as_u64(), Some(miner_uid));
    assert!(weights[0][1].as_u64().unwrap() > 0);
    // What each validator set on the (simulated) chain is the same.
    let chain = wait_for(30, "weights on chain from all four", || {
        let sts: Vec<Value> = (0..4).map(|i| status(&api(i))).collect::<Option<_>>()?;
        let w: Vec<Value> = sts
            .iter()
            .map(|s| s["chain"]["onchain_weights"].clone())
            .collect();
        let all_set = sts
            .iter()
            .all(|s| s["chain"]["last_epoch"].as_u64() >= Some(epoch));
        (all_set && w.iter().all(|x| x == &w[0])).then_some(w[0].clone())
    });
    assert_eq!(chain[0][0].as_u64(), Some(miner_uid), "chain holds {chain}");

    eprintln!(
        "[{:>5.1}s] stage 3: submission reflected in weights and on chain",
        t0.elapsed().as_secs_f64()
    );
    // 4. Three epochs committed identically by all four.
    let before = agreed(&sts).keys().max().copied().unwrap();
    wait_for(60, "three more agreed epochs", || {
        let sts: Vec<Value> = (0..4).map(|i| status(&api(i))).collect::<Option<_>>()?;
        (agreed(&sts).range(before + 1..).count() >= 3).then_some(())
    });

    eprintln!(
        "[{:>5.1}s] stage 4: three agreed epochs",
        t0.elapsed().as_secs_f64()
    );
    // 5. SIGKILL v1 mid-epoch; the rest keep committing; it restarts and catches up.
    wait_for(20, "mid-epoch", || {
        let t = now_ms() % EPOCH_MS;
        (t > EPOCH_MS * 2 / 5 && t < EPOCH_MS * 3 / 5).then_some(())
    });
    let before_kill = committed(&status(&api(1)).unwrap());
    let pid = nodes[1]["pid"].as_u64().unwrap() as i32;
    // SAFETY: kill(2) on the devnet's child process.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    let last_before = *before_kill.keys().max().unwrap();
    wait_for(60, "two epochs committed by the other three", || {
        let sts: Vec<Value> = [0, 2, 3]
            .iter()
            .map(|i| status(&api(*i)))
            .collect::<Option<_>>()?;
        (agreed(&sts).range(last_before + 1..).count() >= 2).then_some(())
    });
    procs
        .0
        .push(start_node(&config(1), &dir.path().join("v1-restart.log")));
    wait_for(120, "v1 to catch up after the restart", || {
        let sts: Vec<Value> = (0..4).map(|i| status(&api(i))).collect::<Option<_>>()?;
        let agreed = agreed(&sts);
        let newest = committed(&sts[0]).keys().max().copied()?;
        (agreed.range(last_before + 1..).count() >= 2 && agreed.contains_key(&newest)).then_some(())
    });
    let after = committed(&status(&api(1)).unwrap());
    for (e, (d, w)) in &before_kill {
        if let Some((d2, w2)) = after.get(e) {
            assert_eq!((d, w), (d2, w2), "epoch {e} changed across the kill");
        }
    }
    assert!(
        after.contains_key(&last_before),
        "epoch {last_before} lost across the kill"
    );

    eprintln!(
        "[{:>5.1}s] stage 5: v1 killed, restarted, caught up",
        t0.elapsed().as_secs_f64()
    );
    // 6. Clean shutdown: nodes started here, then the devnet (which stops its own).
    for i in (1..procs.0.len()).rev() {
        let s = sigterm_and_wait(&mut procs.0[i]);
        assert!(s.success(), "a validator exited with {s}");
    }
    let s = sigterm_and_wait(&mut procs.0[0]);
    assert!(s.success(), "devnet exited with {s}");
}
