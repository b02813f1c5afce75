//! What the end-to-end tests share: the `platform` binary (as `platform-e2e`), a devnet in
//! the background, validators started and stopped, and reading what they committed.
#![allow(dead_code)] // each test binary uses its own part

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use platform_tests::e2e::{sigterm, wait_for};
use serde_json::Value;

pub const EXE: &str = env!("CARGO_BIN_EXE_platform-e2e");

/// Devnet tests of one binary share the machine; a test whose checks are about timing takes
/// it alone (`write`).
pub static CPU: std::sync::RwLock<()> = std::sync::RwLock::new(());

/// `platform devnet ARGS --dir DIR/devnet` run to its end; its printout (it must exit
/// successfully).
pub fn devnet_to_end(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(EXE)
        .arg("devnet")
        .args(args)
        .arg("--dir")
        .arg(dir.join("devnet"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "devnet failed: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// Committed epochs of a node: epoch → (digest, weights).
pub fn committed(st: &Value) -> BTreeMap<u64, (String, Value)> {
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

pub fn active_loaded(st: &Value) -> usize {
    st["registry"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["active"].as_bool() == Some(true) && c["loaded"].as_bool() == Some(true))
        .count()
}

/// `platform devnet ARGS` (250 ms blocks) running in the background under `dir/devnet`,
/// its output in `dir/devnet.log`; returns it once its `devnet.json` is written, with that.
pub fn background_devnet(dir: &Path, args: &[&str]) -> (Child, Value) {
    let root = dir.join("devnet");
    let log = std::fs::File::create(dir.join("devnet.log")).unwrap();
    let child = Command::new(EXE)
        .arg("devnet")
        .args(args)
        .args(["--block-time", "250ms", "--dir"])
        .arg(&root)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let manifest = wait_for(60, "devnet.json", || {
        let text = std::fs::read_to_string(root.join("devnet.json")).ok()?;
        serde_json::from_str(&text).ok()
    });
    (child, manifest)
}

pub fn start_node(config: &Path, log: &Path) -> Child {
    let out = std::fs::File::create(log).unwrap();
    Command::new(EXE)
        .args(["node", "--config"])
        .arg(config)
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap()
}

pub fn sigterm_and_wait(c: &mut Child) -> std::process::ExitStatus {
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
pub fn agreed(sts: &[Value]) -> BTreeMap<u64, String> {
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
