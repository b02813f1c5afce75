//! Registry changes of version 2 are signed the way Bittensor tooling signs: checked against
//! `py-sr25519-bindings` (the sr25519 of Substrate's and Bittensor's Python `Keypair`,
//! pinned in `chain/tests/verifiers/requirements.txt`), code no one here wrote. The owner's
//! key signs there and the registry applies it here; ours verifies there.

#[path = "../../tests/support/py_sr25519.rs"]
mod py_sr25519;

use parity_scale_codec::Encode as _;
use platform_keys::Keypair;
use platform_node::registry::{
    Change, REGISTRY_V2_DOMAIN, Registry, RegistryError, Scheme, SignedChange,
};
use py_sr25519::{python, theirs};

#[test]
fn an_owner_key_signs_registry_changes_as_substrate_does() {
    let Some(python) = python() else { return };
    let seed = [0x42; 32];
    let owner = Keypair::from_seed(&seed);
    let change = Change::Deactivate(7);
    let ours = SignedChange::sign_as(Scheme::Substrate, &owner, change.clone(), 9);
    let mut message = REGISTRY_V2_DOMAIN.to_vec();
    message.extend_from_slice(&(&change, 9u64).encode());
    let (public, signature, verified) = theirs(&python, &seed, &message, &ours.signature);
    assert_eq!(public, hex::encode(owner.public()));
    assert!(verified, "our change verifies with Substrate's sr25519");
    let theirs = SignedChange { signature, ..ours };
    // The registry checks the signature before whether the change applies: their correctly
    // signed change for a challenge this registry lacks is refused as unknown, not forged.
    let registry = Registry::new(owner.public());
    assert_eq!(
        registry.verify(&theirs.encode()),
        Err(RegistryError::Unknown(7)),
        "their signature verifies here"
    );
    let mut forged = theirs.clone();
    forged.nonce = 10;
    assert_eq!(
        registry.verify(&forged.encode()),
        Err(RegistryError::BadSignature)
    );
}
