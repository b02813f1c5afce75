//! sr25519 signing and verification (schnorrkel, Substrate's expansion), and the canonical,
//! domain-separated bytes every consensus signature covers.

use platform_keys::Keypair;
use sha2::{Digest, Sha256};

use crate::types::{Domain, Hash32, Height, PublicKey, Signature, View};

/// schnorrkel signing context: the protocol tag of every consensus signature.
const CONTEXT: &[u8] = b"platform/consensus/v1";

/// What a signature is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Kind {
    /// A leader's proposal.
    Proposal = 1,
    /// A prepare vote.
    Prepare = 2,
    /// A commit vote.
    Commit = 3,
    /// A view-change vote.
    ViewChange = 4,
}

/// The canonical bytes signed for `(kind, height, view, digest)` under `domain`:
/// fixed layout, little endian, 55 bytes.
pub fn signing_bytes(
    domain: Domain,
    kind: Kind,
    height: Height,
    view: View,
    digest: &Hash32,
) -> [u8; 55] {
    let mut b = [0u8; 55];
    b[0..2].copy_from_slice(&domain.netuid.to_le_bytes());
    b[2..10].copy_from_slice(&domain.epoch.to_le_bytes());
    b[10] = kind as u8;
    b[11..19].copy_from_slice(&height.to_le_bytes());
    b[19..23].copy_from_slice(&view.to_le_bytes());
    b[23..55].copy_from_slice(digest);
    b
}

/// A validator's signing key.
pub struct Signer {
    keypair: Keypair,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("public", &self.public())
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// From a 32-byte mini secret (a Bittensor hotkey's `secretSeed`), expanded the way
    /// Substrate does, so the public key equals the hotkey's ss58 account.
    pub fn from_seed(seed: &[u8; 32]) -> Signer {
        Signer {
            keypair: Keypair::from_seed(seed),
        }
    }

    /// The public key.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.keypair.public())
    }

    /// Sign a message. The nonce randomness is derived from the message (and mixed with the
    /// secret by schnorrkel), so signing is deterministic: replays of a seeded simulation
    /// produce identical bytes.
    pub fn sign(&self, message: &[u8]) -> Signature {
        Signature(self.keypair.sign(CONTEXT, message))
    }
}

/// Verify an sr25519 signature under the consensus context. Malformed keys or signatures
/// are simply invalid.
pub fn verify(key: &PublicKey, message: &[u8], sig: &Signature) -> bool {
    platform_keys::verify(CONTEXT, &key.0, message, &sig.0)
}

/// Digest of a proposed value, domain-separated from every other hash.
pub fn value_digest(value: &[u8]) -> Hash32 {
    let mut h = Sha256::new();
    h.update(b"platform/value/v1");
    h.update((value.len() as u64).to_le_bytes());
    h.update(value);
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: Domain = Domain {
        netuid: 7,
        epoch: 12,
    };

    #[test]
    fn sign_verify_and_domain_separation() {
        let s = Signer::from_seed(&[1; 32]);
        let msg = signing_bytes(D, Kind::Prepare, 5, 0, &[9; 32]);
        let sig = s.sign(&msg);
        assert!(verify(&s.public(), &msg, &sig));
        assert_eq!(sig, s.sign(&msg), "deterministic");
        for other in [
            signing_bytes(Domain { netuid: 8, ..D }, Kind::Prepare, 5, 0, &[9; 32]),
            signing_bytes(Domain { epoch: 13, ..D }, Kind::Prepare, 5, 0, &[9; 32]),
            signing_bytes(D, Kind::Commit, 5, 0, &[9; 32]),
            signing_bytes(D, Kind::Prepare, 6, 0, &[9; 32]),
            signing_bytes(D, Kind::Prepare, 5, 1, &[9; 32]),
            signing_bytes(D, Kind::Prepare, 5, 0, &[8; 32]),
        ] {
            assert!(!verify(&s.public(), &other, &sig));
        }
        let mut bad = sig;
        bad.0[10] ^= 1;
        assert!(!verify(&s.public(), &msg, &bad));
        assert!(!verify(&PublicKey([0xff; 32]), &msg, &sig));
    }

    #[test]
    fn alice_dev_key_matches_substrate() {
        // //Alice's mini secret and sr25519 public key, as every Substrate tool derives them.
        let seed = hex32("e5be9a5092b81bca64be81d212e7f2f9eba183bb7a90954f7b76361f6edb5c0a");
        let alice = hex32("d43593c715fdd31c61141abd04a99fd6822c8558854ccde39a5684e7a56da27d");
        assert_eq!(Signer::from_seed(&seed).public(), PublicKey(alice));
    }

    fn hex32(s: &str) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (i, b) in out.iter_mut().enumerate() {
            *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
        }
        out
    }
}
