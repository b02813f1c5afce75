//! End to end: the real `platform` binary (as `platform-e2e`) runs a devnet of separate
//! validator processes on loopback around ONE shared simulated chain. One scenario, in order:
//!
//! 1. Three of four validators and a follower (no stake) start; the example challenges are
//!    registered through consensus and become active on all of them. Epochs are windows of
//!    blocks: each committed epoch names its pinned block, the epoch's first.
//! 2. The fourth validator starts late: it catches up and has the same challenges active;
//!    the follower follows every committed epoch and says it is a follower.
//! 3. A miner submission sent with `platform submit` shows up in the committed weights,
//!    identical on every validator, and in what the shared chain holds from each.
//! 4. A miner registered on the chain mid-run is refused for the epoch it registered in and
//!    scored from the next; the follower, registered with stake, votes from the next epoch.
//! 5. One validator is killed with SIGKILL mid-epoch and restarted: the others keep
//!    committing, it catches up, and what it had committed before the kill is unchanged.
//! 6. SIGTERM stops every process cleanly (exit status 0).
//!
//! A second test: a lone validator (all the stake) registers the challenges and commits.
//! A third: on a subnet that requires commit-reveal, validators' hash commits are revealed
//! inside the chain's reveal windows, and the chain refuses none of their weight calls.
#![allow(clippy::print_stderr)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use platform_tests::e2e::{Procs, status, wait_for};
use serde_json::Value;

mod common;
use common::{
    CPU, EXE, active_loaded, agreed, background_devnet, committed, devnet_to_end, sigterm_and_wait,
    start_node,
};

/// Blocks per epoch of the devnet (250 ms blocks: 5 s epochs).
const EPOCH_BLOCKS: u64 = 20;

/// The first block of epoch `e` on subnet 1 (epochs follow subtensor's boundaries).
fn start_block(e: u64) -> u64 {
    (e * EPOCH_BLOCKS).saturating_sub(2)
}

/// Wait until a node is early in an epoch (its first third); returns (epoch, block).
fn early_in_epoch(api: &str) -> (u64, u64) {
    wait_for(30, "the start of an epoch", || {
        let st = status(api)?;
        let (e, b) = (st["epoch"].as_u64()?, st["block"].as_u64()?);
        (b - start_block(e) < EPOCH_BLOCKS / 3).then_some((e, b))
    })
}

fn run(args: &[&str]) -> std::process::Output {
    Command::new(EXE).args(args).output().unwrap()
}

#[test]
fn devnet_commits_by_block_takes_joiners_followers_and_new_miners_and_survives_kill_9() {
    let _shared = CPU.read().unwrap_or_else(|p| p.into_inner());
    let t0 = Instant::now();
    let stage = |what: &str| eprintln!("[{:>5.1}s] {what}", t0.elapsed().as_secs_f64());
    let dir = tempfile::tempdir().unwrap();
    let (devnet, manifest) = background_devnet(
        dir.path(),
        &[
            "--nodes",
            "4",
            "--hold",
            "1",
            "--followers",
            "1",
            "--miners",
            "4",
            "--late-miners",
            "1",
            "--late-at",
            "1000000",
            "--load",
            "0",
            "--epoch-blocks",
            &EPOCH_BLOCKS.to_string(),
        ],
    );
    let mut procs = Procs(vec![devnet]);
    let nodes = manifest["nodes"].as_array().unwrap().clone();
    let chain = manifest["chain"].as_str().unwrap().to_string();
    let api = |i: usize| nodes[i]["api"].as_str().unwrap().to_string();
    let config = |i: usize| PathBuf::from(nodes[i]["config"].as_str().unwrap());
    let all =
        |ids: &[usize]| -> Option<Vec<Value>> { ids.iter().map(|i| status(&api(*i))).collect() };

    // 1. The challenges are committed and active on the three running validators and the
    //    follower; committed epochs name their pinned block.
    wait_for(
        180,
        "3 challenges active on v0..v2 and the follower v4",
        || {
            [0, 1, 2, 4]
                .iter()
                .all(|i| status(&api(*i)).is_some_and(|s| active_loaded(&s) == 3))
                .then_some(())
        },
    );
    let st0 = status(&api(0)).unwrap();
    for c in st0["committed"].as_array().unwrap() {
        let e = c["epoch"].as_u64().unwrap();
        assert_eq!(
            c["block"].as_u64(),
            Some(start_block(e)),
            "epoch {e} pinned elsewhere: {c}"
        );
        // Epochs decided while it ran carry when it saw them end and when it committed them.
        if let (Some(end), Some(done)) = (c["ended_ms"].as_u64(), c["committed_ms"].as_u64()) {
            assert!(end <= done, "epoch {e} committed before it ended: {c}");
        }
    }
    assert!(
        st0["committed"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["ended_ms"].is_u64() && c["committed_ms"].is_u64()),
        "no committed epoch carries its timing: {}",
        st0["committed"]
    );
    assert_eq!(
        st0["metagraph"]["validators"].as_array().unwrap().len(),
        4,
        "{}",
        st0["metagraph"]
    );
    assert_eq!(st0["role"], "validator");
    stage("stage 1: challenges active on v0..v2 and the follower; epochs by block");

    // A change not signed by the owner is refused with the reason, and nothing changes.
    let out = run(&[
        "challenge",
        "deactivate",
        "--node",
        &api(0),
        "--id",
        "1",
        "--owner-seed",
        &format!("0x{}", "42".repeat(32)),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not signed by the subnet owner"), "{err}");
    // Weights sent to a mechanism the subnet lacks (it has one): refused at the door, named.
    let out = run(&[
        "challenge",
        "mechanism",
        "--node",
        &api(0),
        "--id",
        "1",
        "--mecid",
        "3",
        "--owner-seed",
        &format!("0x{}", hex::encode(platform_node::devnet::owner_seed())),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("1 mechanism(s)") && err.contains("mechanism 3 does not exist"),
        "{err}"
    );
    // `platform status` reads a node.
    let out = run(&["status", "--node", &api(0)]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("knapsack") && text.contains("metagraph"),
        "{text}"
    );

    // 2. A late joiner catches up and activates them too; the follower follows.
    procs
        .0
        .push(start_node(&config(3), &dir.path().join("v3-late.log")));
    let st3 = wait_for(120, "v3 to catch up with the challenges", || {
        status(&api(3)).filter(|s| active_loaded(s) == 3)
    });
    assert_eq!(st3["registry"].as_array().unwrap().len(), 3);
    let st4 = wait_for(
        60,
        "the follower at the validators' committed epoch",
        || {
            let sts = all(&[0, 4])?;
            (sts[1]["last_committed_epoch"] == sts[0]["last_committed_epoch"])
                .then(|| sts[1].clone())
        },
    );
    assert_eq!(st4["role"], "follower");
    agreed(&all(&[0, 1, 2, 4]).unwrap());
    stage("stage 2: late joiner v3 caught up; follower v4 follows");

    // 3. A miner's submission through `platform submit` is reflected in the weights.
    let miner = &manifest["miners"][1];
    let payload = dir.path().join("payload.bin");
    std::fs::write(
        &payload,
        (platform_challenges::EXAMPLES[1].sample_payload)(7),
    )
    .unwrap();
    let challenge = platform_challenges::EXAMPLES[1].id.to_string();
    // `platform submit` of the payload for `challenge` and `epoch` to v0, signed with `key`
    // (flag, value).
    let submit_to = |key: [&str; 2], challenge: &str, epoch: u64| {
        Command::new(EXE)
            .args(["submit", "--to", nodes[0]["p2p"].as_str().unwrap()])
            .args(key)
            .args([
                "--challenge",
                challenge,
                "--epoch",
                &epoch.to_string(),
                "--payload",
            ])
            .arg(&payload)
            .env_remove("RUST_BACKTRACE")
            .output()
            .unwrap()
    };
    let submit = |key: [&str; 2], epoch: u64| submit_to(key, &challenge, epoch);
    // A refusal is one line naming the reason, and a failed exit.
    let refused = |out: std::process::Output, reason: &str| {
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.trim().lines().count() == 1,
            "one line and a failed exit: {err}"
        );
        assert!(
            err.contains(&format!("refused it: {reason}")),
            "{reason}: {err}"
        );
    };
    let (epoch, _) = early_in_epoch(&api(0));
    // An unregistered hotkey is refused at the door, with the reason, on every try and
    // without a ban.
    for _ in 0..12 {
        let out = submit(["--seed", &format!("0x{}", "77".repeat(32))], epoch);
        refused(out, "unknown_author");
    }
    let miner_key = ["--hotkey-file", miner["hotkey_file"].as_str().unwrap()];
    // What does not count is refused at the ack: a challenge that is not active, an epoch
    // that closed long ago.
    refused(submit_to(miner_key, "4242", epoch), "inactive_challenge");
    if let Some(old) = epoch.checked_sub(2) {
        refused(submit(miner_key, old), "epoch_closed");
    }
    // The HTTP endpoint is the same door: an envelope signed as Bittensor tooling signs
    // (version 2), posted to `/submission`, gets the same answers.
    let post = |envelope: Vec<u8>| {
        let (code, body) = platform_node::http::request(
            &api(0),
            "POST",
            "/submission",
            &envelope,
            Duration::from_secs(15),
        )
        .unwrap();
        (code, String::from_utf8_lossy(&body).into_owned())
    };
    let signed = |key: &platform_keys::Keypair, challenge: u32| {
        platform_net::Submission {
            challenge,
            epoch,
            body: std::fs::read(&payload).unwrap(),
        }
        .sign_as(
            platform_net::Scheme::Substrate,
            key,
            platform_net::wire::now_ms(),
        )
        .encode()
    };
    let miner_kp = platform_keys::Keypair::from_hotkey_file(std::path::Path::new(
        miner["hotkey_file"].as_str().unwrap(),
    ))
    .unwrap();
    let (code, body) = post(signed(&miner_kp, 4242));
    assert_eq!(
        (code, body.trim()),
        (422, r#"{"refused":"inactive_challenge"}"#)
    );
    let stranger = platform_keys::Keypair::from_seed(&[0x77; 32]);
    let (code, body) = post(signed(&stranger, 4242));
    assert_eq!(
        (code, body.trim()),
        (422, r#"{"refused":"unknown_author"}"#)
    );
    let (code, body) = post(b"not an envelope".to_vec());
    assert_eq!((code, body.trim()), (422, r#"{"refused":"malformed"}"#));
    // The Python miner client (clients/python, on the real bittensor-wallet package) loads
    // the btcli hotkey file, signs version 2 and posts over HTTP; without the venv that
    // scripts/setup.sh makes, `platform submit` stands in (never under CI's
    // PLATFORM_REQUIRE_VERIFIERS=1).
    let py = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/platform-miner-py");
    let py_submit = |challenge: &str| {
        Command::new(&py)
            .args(["--to", &format!("http://{}", api(0))])
            .args(["--hotkey-file", miner["hotkey_file"].as_str().unwrap()])
            .args(["--challenge", challenge, "--epoch", &epoch.to_string()])
            .arg("--payload")
            .arg(&payload)
            .output()
            .unwrap()
    };
    let out = if py.exists() {
        let out = py_submit("4242");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success()
                && err.trim().lines().count() == 1
                && err.contains("refused it: inactive_challenge"),
            "{err}"
        );
        py_submit(&challenge)
    } else {
        assert!(
            std::env::var("PLATFORM_REQUIRE_VERIFIERS").as_deref() != Ok("1"),
            "{} missing: run scripts/setup.sh",
            py.display()
        );
        submit(miner_key, epoch)
    };
    assert!(
        out.status.success(),
        "submit failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let miner_uid = 4 + 1; // four validators, then miners in order
    let sts = wait_for(60, "the submission's epoch committed on all four", || {
        let sts = all(&[0, 1, 2, 3])?;
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
    // What each validator set on the shared chain is the same.
    let onchain = wait_for(30, "weights on chain from all four", || {
        let sts = all(&[0, 1, 2, 3])?;
        let w: Vec<Value> = sts
            .iter()
            .map(|s| s["chain"]["onchain_weights"].clone())
            .collect();
        let all_set = sts
            .iter()
            .all(|s| s["chain"]["last_epoch"].as_u64() >= Some(epoch));
        (all_set && w.iter().all(|x| x == &w[0])).then_some(w[0].clone())
    });
    assert_eq!(
        onchain[0][0].as_u64(),
        Some(miner_uid),
        "chain holds {onchain}"
    );
    stage("stage 3: submission reflected in weights and on the shared chain");

    // 4. A miner registered mid-run counts from the next epoch; the follower, given stake,
    //    votes from the next epoch.
    let late = &manifest["miners"][4];
    assert_eq!(late["late"], true);
    let (e_reg, _) = early_in_epoch(&api(0));
    let out = run(&[
        "chain",
        "register",
        "--chain",
        &chain,
        "--hotkey",
        late["hotkey"].as_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&[
        "chain",
        "register",
        "--chain",
        &chain,
        "--hotkey",
        nodes[4]["hotkey"].as_str().unwrap(),
        "--stake",
        "1000",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let late_key = ["--hotkey-file", late["hotkey_file"].as_str().unwrap()];
    let out = submit(late_key, e_reg);
    assert!(
        !out.status.success(),
        "a miner registered in epoch {e_reg} was admitted to it"
    );
    let (e_next, _) = wait_for(30, "the next epoch", || {
        let (e, b) = early_in_epoch(&api(0));
        (e > e_reg).then_some((e, b))
    });
    let out = submit(late_key, e_next);
    assert!(
        out.status.success(),
        "the new miner was refused in epoch {e_next}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let late_uid = 4 + 4; // after the validators and the genesis miners
    let sts = wait_for(60, "the new miner's epoch committed", || {
        let sts = all(&[0, 1, 2, 3, 4])?;
        agreed(&sts).contains_key(&e_next).then_some(sts)
    });
    let weights = &committed(&sts[0])[&e_next].1;
    assert_eq!(
        weights[0][0].as_u64(),
        Some(late_uid),
        "the new miner's uid is scored: {weights}"
    );
    assert_eq!(
        sts[4]["role"], "validator",
        "the follower with stake votes from the next epoch"
    );
    assert_eq!(
        sts[0]["metagraph"]["validators"].as_array().unwrap().len(),
        5
    );
    stage("stage 4: new miner scored from the next epoch; new validator voting");

    // 5. SIGKILL v1 mid-epoch; the rest keep committing; it restarts and catches up.
    wait_for(30, "mid-epoch", || {
        let st = status(&api(0))?;
        let into = st["block"].as_u64()? - start_block(st["epoch"].as_u64()?);
        (into > EPOCH_BLOCKS * 2 / 5 && into < EPOCH_BLOCKS * 3 / 5).then_some(())
    });
    let before_kill = committed(&status(&api(1)).unwrap());
    let pid = nodes[1]["pid"].as_u64().unwrap() as i32;
    // SAFETY: kill(2) on the devnet's child process.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    let last_before = *before_kill.keys().max().unwrap();
    wait_for(60, "two epochs committed by the others", || {
        (agreed(&all(&[0, 2, 3, 4])?)
            .range(last_before + 1..)
            .count()
            >= 2)
            .then_some(())
    });
    procs
        .0
        .push(start_node(&config(1), &dir.path().join("v1-restart.log")));
    wait_for(120, "v1 to catch up after the restart", || {
        let sts = all(&[0, 1, 2, 3, 4])?;
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
    stage("stage 5: v1 killed, restarted, caught up");

    // 6. Clean shutdown: nodes started here, then the devnet (which stops its own).
    for i in (1..procs.0.len()).rev() {
        let s = sigterm_and_wait(&mut procs.0[i]);
        assert!(s.success(), "a validator exited with {s}");
    }
    let s = sigterm_and_wait(&mut procs.0[0]);
    assert!(s.success(), "devnet exited with {s}");
}

/// A five-epoch devnet of 12-block epochs with two miners, under `dir/devnet`, with `extra`
/// flags; its printout (it must exit successfully).
fn short_devnet(dir: &Path, extra: &[&str]) -> String {
    let mut args = vec!["--epochs", "5", "--miners", "2", "--load", "1"];
    args.extend(["--epoch-blocks", "12", "--block-time", "250ms"]);
    args.extend(extra);
    devnet_to_end(dir, &args)
}

#[test]
fn a_lone_validator_registers_challenges_and_commits_alone() {
    let _shared = CPU.read().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let text = short_devnet(dir.path(), &["--nodes", "1"]);
    assert!(
        text.contains("on 1/1 nodes") && text.contains("on-chain weights"),
        "{text}"
    );
    // The challenges it registered alone were committed and scored: weights name uids.
    assert!(
        text.lines()
            .any(|l| l.contains("on-chain weights") && l.contains("uid ")),
        "{text}"
    );
    assert!(text.contains("Yuma consensus preview"), "{text}");
    // Its audit log, exported from the stopped node: one JSON line per evaluation it ran.
    let out = run(&[
        "audit",
        "export",
        "--data-dir",
        dir.path().join("devnet/v0").to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!lines.is_empty(), "the lone validator evaluated something");
    assert!(
        lines
            .iter()
            .all(|l| l["submission"].as_str().is_some_and(|s| s.len() == 64)
                && l["outcome"].is_string()),
        "{lines:?}"
    );
    assert!(lines.iter().any(|l| l["outcome"] == "scored"), "{lines:?}");

    // Receipts: every evaluation of a committed epoch re-executes to the stored result.
    let epoch = lines[0]["epoch"].as_u64().unwrap();
    let config = dir.path().join("devnet/v0.toml");
    let verify = |what: &str| {
        let out = run(&[
            "verify",
            "--config",
            config.to_str().unwrap(),
            "--epoch",
            &epoch.to_string(),
        ]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        eprintln!(
            "verify ({what}):\n{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    };
    let (ok, text) = verify("as stored");
    assert!(ok && text.contains(" 0 differ"), "{text}");
    assert!(!text.contains("cannot be re-executed"), "{text}");
    // An audit record edited on disk is caught, and so is an edited result.
    let node_redb = dir.path().join("devnet/v0/node.redb");
    tamper(&node_redb, "audit", |_, v| v[109] ^= 1);
    let (ok, text) = verify("audit edited");
    assert!(!ok && text.contains("the audit record DIFFERS"), "{text}");
    tamper(&node_redb, "results", |e, v| {
        if e == epoch {
            v[0] ^= 1;
        }
    });
    let (ok, text) = verify("result edited");
    assert!(
        !ok && text.contains("DIFFERS from the stored result"),
        "{text}"
    );
}

/// Rewrite the first record of a `node.redb` table (`audit`: sequence → record; `results`:
/// the first of the epoch's canonical records, kept by (epoch, arrival)) with
/// `edit(epoch, bytes)`.
fn tamper(path: &Path, table: &str, edit: impl Fn(u64, &mut Vec<u8>)) {
    use redb::{ReadableTable as _, TableDefinition};
    let db = redb::Database::open(path).unwrap();
    let tx = db.begin_write().unwrap();
    if table == "audit" {
        let def: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");
        let mut t = tx.open_table(def).unwrap();
        let (k, mut v) = {
            let (k, v) = t.first().unwrap().unwrap();
            (k.value(), v.value().to_vec())
        };
        let epoch = u64::from_le_bytes(v[..8].try_into().unwrap());
        edit(epoch, &mut v);
        t.insert(k, v.as_slice()).unwrap();
    } else {
        // Results are kept under their submission's (epoch, arrival) key.
        let def: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("results_by_arrival");
        let mut t = tx.open_table(def).unwrap();
        type Row = ((u64, u64), Vec<u8>);
        let rows: Vec<Row> = t
            .iter()
            .unwrap()
            .map(|r| {
                let (k, v) = r.unwrap();
                (k.value(), v.value().to_vec())
            })
            .collect();
        for ((e, seq), mut v) in rows {
            let before = v.clone();
            edit(e, &mut v);
            if v != before {
                t.insert((e, seq), v.as_slice()).unwrap();
                break;
            }
        }
    }
    tx.commit().unwrap();
}

#[test]
fn on_a_commit_reveal_subnet_weights_are_revealed_in_their_window_and_nothing_is_refused() {
    let _shared = CPU.read().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let text = short_devnet(dir.path(), &["--nodes", "2", "--commit-reveal"]);
    let calls = text
        .lines()
        .find(|l| l.starts_with("chain: weight calls received:"))
        .unwrap_or_else(|| panic!("no chain summary: {text}"));
    assert!(calls.ends_with("refused: none"), "{calls}");
    assert!(
        calls.contains("commit_weights") && calls.contains("reveal_weights"),
        "{calls}"
    );
    assert!(
        !calls.contains("set_weights"),
        "no plain set on this subnet: {calls}"
    );
    // Revealed weights reached the chain: an epoch's line shows them by uid.
    assert!(
        text.lines()
            .any(|l| l.contains("on-chain weights") && l.contains("uid ")),
        "{text}"
    );
}

#[test]
fn a_challenge_on_another_mechanism_gets_its_weights_set_there() {
    let _shared = CPU.read().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let text = short_devnet(
        dir.path(),
        &[
            "--nodes",
            "2",
            "--challenges",
            "knapsack,linear-model",
            "--mechanisms",
            "2",
        ],
    );
    let calls = text
        .lines()
        .find(|l| l.starts_with("chain: weight calls received:"))
        .unwrap_or_else(|| panic!("no chain summary: {text}"));
    // knapsack's weights on mechanism 0, linear-model's on mechanism 1, nothing refused.
    assert!(
        calls.contains("set_weights") && calls.contains("set_mechanism_weights"),
        "{calls}"
    );
    assert!(calls.ends_with("refused: none"), "{calls}");
}
