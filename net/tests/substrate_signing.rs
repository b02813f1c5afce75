//! Envelopes of version 2 are signed the way Bittensor tooling signs: checked against
//! `py-sr25519-bindings` (the sr25519 that Substrate's and Bittensor's Python `Keypair`
//! use, pinned in `chain/tests/verifiers/requirements.txt`), code no one here wrote. A
//! signature made there verifies here, and one made here verifies there.

use std::path::PathBuf;
use std::process::Command;

use platform_keys::Keypair;
use platform_net::wire::{ENVELOPE_V2_DOMAIN, Envelope, Scheme, Submission, Topic};

fn python() -> Option<PathBuf> {
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

#[test]
fn a_substrate_keypair_signs_envelopes_and_verifies_ours() {
    let Some(python) = python() else { return };
    let seed = [0x5a; 32];
    let key = Keypair::from_seed(&seed);
    let payload = Submission {
        challenge: 3,
        epoch: 11,
        body: b"signed by a btcli hotkey".to_vec(),
    }
    .encode();
    // Ours, to be checked there; and the same bytes for them to sign.
    let ours = Envelope::sign_as(
        Scheme::Substrate,
        &key,
        Topic::Submissions,
        1_700_000_000_000,
        payload,
    );
    let signed = ours.signed_part();
    let mut message = ENVELOPE_V2_DOMAIN.to_vec();
    message.extend_from_slice(&signed);
    let out = Command::new(&python)
        .args(["-c", SCRIPT])
        .arg(hex::encode(seed))
        .arg(hex::encode(&message))
        .arg(hex::encode(ours.signature))
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
    assert_eq!(
        fields[0],
        hex::encode(key.public()),
        "the same key from the same seed"
    );
    assert_eq!(
        fields[2], "True",
        "our signature verifies with Substrate's sr25519"
    );
    let mut theirs = ours.clone();
    theirs.signature = hex::decode(fields[1]).unwrap().try_into().unwrap();
    assert_ne!(
        theirs.signature, ours.signature,
        "sr25519 signatures are randomised"
    );
    let wire = theirs.encode();
    let back = Envelope::decode(&wire).unwrap();
    assert_eq!(back.scheme, Scheme::Substrate);
    assert!(back.verify(), "their signature verifies here");
    // The same signature under the version-1 scheme does not.
    let mut as_v1 = wire;
    as_v1[0] = 1;
    assert!(!Envelope::decode(&as_v1).unwrap().verify());
}
