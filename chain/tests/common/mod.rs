//! Shared by the chain tests: where the reference data and the Python verifiers are, and
//! how to run a verifier. The reference data is in the repository; where the verifier
//! environment is missing the test says it is skipped and why, and
//! `PLATFORM_REQUIRE_VERIFIERS=1` (set by `scripts/test.sh`, so CI) makes that a failure.
#![allow(dead_code, clippy::print_stderr)]

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The real Bittensor metadata the tests decode and sign against (`chain/tests/data`, the
/// files of the team's `../shared/chain` with the sha256 sums its README gives): checked
/// before use, so a test never runs on a damaged copy, and never skipped for want of them.
pub fn reference_data() -> PathBuf {
    use sha2::{Digest, Sha256};
    let dir = repo().join("chain/tests/data");
    let sums =
        std::fs::read_to_string(dir.join("SHA256SUMS")).expect("chain/tests/data/SHA256SUMS");
    for line in sums.lines() {
        let (want, file) = line.split_once("  ").expect("sha256sum format");
        let bytes = std::fs::read(dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(
            hex::encode(Sha256::digest(&bytes)),
            want,
            "{file} is damaged"
        );
        // Where the team's copy is beside the checkout, ours is the same file.
        if let Ok(theirs) = std::fs::read(repo().join("../shared/chain").join(file)) {
            assert!(
                theirs == bytes,
                "{file} differs from ../shared/chain/{file}"
            );
        }
    }
    dir
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
