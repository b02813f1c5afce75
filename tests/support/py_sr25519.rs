//! Shared by the tests that check our sr25519 signatures against `py-sr25519-bindings` (the
//! sr25519 of Substrate's and Bittensor's Python `Keypair`, pinned in
//! `chain/tests/verifiers/requirements.txt`): included with `#[path]`, so each crate's tests
//! keep their own dependencies.

use std::path::PathBuf;
use std::process::Command;

/// The verifier venv's Python (`PLATFORM_PYTHON` overrides it), or `None` and a "skipped"
/// line when it is missing; missing under `PLATFORM_REQUIRE_VERIFIERS=1` is a failure.
pub fn python() -> Option<PathBuf> {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let p = std::env::var_os("PLATFORM_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo.join(".venv/bin/python"));
    if p.exists() {
        return Some(p);
    }
    assert!(
        std::env::var("PLATFORM_REQUIRE_VERIFIERS").as_deref() != Ok("1"),
        "{} missing and PLATFORM_REQUIRE_VERIFIERS=1: run scripts/setup.sh",
        p.display()
    );
    println!("skipped: no verifier Python at {}", p.display());
    None
}

const SCRIPT: &str = r#"
import sys, sr25519
seed, msg = bytes.fromhex(sys.argv[1]), bytes.fromhex(sys.argv[2])
public, private = sr25519.pair_from_seed(seed)
signature = sr25519.sign((public, private), msg)
theirs = bytes.fromhex(sys.argv[3])
print(public.hex(), signature.hex(), sr25519.verify(theirs, msg, public))
"#;

/// What py-sr25519-bindings makes of `seed` and `message` (the bytes signed under the
/// standard `substrate` context): its public key in hex, its signature of the message, and
/// whether it verifies `ours` over the message.
pub fn theirs(
    python: &PathBuf,
    seed: &[u8; 32],
    message: &[u8],
    ours: &[u8; 64],
) -> (String, [u8; 64], bool) {
    let out = Command::new(python)
        .args(["-c", SCRIPT])
        .arg(hex::encode(seed))
        .arg(hex::encode(message))
        .arg(hex::encode(ours))
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let fields: Vec<&str> = text.split_whitespace().collect();
    assert_eq!(fields.len(), 3, "{text}");
    let signature = hex::decode(fields[1]).unwrap().try_into().unwrap();
    (fields[0].to_string(), signature, fields[2] == "True")
}
