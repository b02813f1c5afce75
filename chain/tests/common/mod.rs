//! Shared by the chain tests: where the reference data and the Python verifiers are, and
//! how to run a verifier. Where either is missing the test says it is skipped and why;
//! `PLATFORM_REQUIRE_VERIFIERS=1` (set by `scripts/test.sh`, so CI) turns a missing
//! verifier environment into a failure instead.
#![allow(dead_code, clippy::print_stderr)]

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `../shared/chain` beside the checkout, if present.
pub fn shared_chain() -> Option<PathBuf> {
    let p = repo().join("../shared/chain");
    if p.join("README.md").exists() {
        Some(p)
    } else {
        eprintln!("skipped: ../shared/chain not found (real metadata and vectors live there)");
        None
    }
}

/// The Python with the verifier packages (`.venv`, made by `scripts/setup.sh`).
pub fn python() -> Option<PathBuf> {
    let p = std::env::var_os("PLATFORM_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".venv/bin/python"));
    if p.exists() {
        return Some(p);
    }
    if std::env::var("PLATFORM_REQUIRE_VERIFIERS").as_deref() == Ok("1") {
        panic!(
            "{} missing and PLATFORM_REQUIRE_VERIFIERS=1: run scripts/setup.sh",
            p.display()
        );
    }
    eprintln!(
        "skipped: no verifier Python at {} (run scripts/setup.sh to install bittensor, scalecodec, py-sr25519-bindings, bittensor-drand)",
        p.display()
    );
    None
}

/// Run `chain/tests/verifiers/<script>` with `args`, feeding `stdin`; its stdout.
pub fn run_verifier(python: &PathBuf, script: &str, args: &[&str], stdin: &str) -> String {
    let path = repo().join("chain/tests/verifiers").join(script);
    let mut child = Command::new(python)
        .arg(&path)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start python");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{script} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
