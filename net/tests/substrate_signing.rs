//! Envelopes and binding records of version 2 are signed the way Bittensor tooling signs:
//! checked against `py-sr25519-bindings` (the sr25519 that Substrate's and Bittensor's
//! Python `Keypair` use, pinned in `chain/tests/verifiers/requirements.txt`), code no one
//! here wrote. A signature made there verifies here, and one made here verifies there.

#[path = "../../tests/support/py_sr25519.rs"]
mod py_sr25519;

use platform_keys::Keypair;
use platform_net::wire::{
    BINDING_V2_DOMAIN, Binding, ENVELOPE_V2_DOMAIN, Envelope, Scheme, Submission, Topic,
};
use py_sr25519::{python, theirs};

#[test]
fn a_substrate_keypair_signs_binding_records_and_verifies_ours() {
    let Some(python) = python() else { return };
    let seed = [0x3c; 32];
    let key = Keypair::from_seed(&seed);
    let peer = b"a libp2p peer id's bytes".to_vec();
    let ours = Binding::sign_as(Scheme::Substrate, &key, peer.clone(), 1_700_000_000_123);
    let mut message = BINDING_V2_DOMAIN.to_vec();
    message.extend_from_slice(&key.public());
    message.extend_from_slice(&ours.issued_at_ms.to_le_bytes());
    message.extend_from_slice(&peer);
    let (public, signature, verified) = theirs(&python, &seed, &message, &ours.signature);
    assert_eq!(public, hex::encode(key.public()));
    assert!(verified, "our binding verifies with Substrate's sr25519");
    let mut wire = Binding {
        signature,
        ..ours.clone()
    }
    .encode();
    let back = Binding::decode(&wire).unwrap();
    assert_eq!(back.scheme, Scheme::Substrate);
    assert!(back.verify_for(&peer), "their binding verifies here");
    assert!(!back.verify_for(b"another peer"));
    wire[0] = 1;
    assert!(
        !Binding::decode(&wire).unwrap().verify_for(&peer),
        "not as version 1"
    );
}

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
    let (public, signature, verified) = theirs(&python, &seed, &message, &ours.signature);
    assert_eq!(
        public,
        hex::encode(key.public()),
        "the same key from the same seed"
    );
    assert!(verified, "our signature verifies with Substrate's sr25519");
    let mut theirs = ours.clone();
    theirs.signature = signature;
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
