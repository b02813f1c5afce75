//! Bittensor hotkeys: sr25519 keypairs expanded the way Substrate expands them, signatures
//! under a caller-chosen signing context, SS58 addresses, and Bittensor hotkey files.
//!
//! Invariants: a seed always yields the public key every Substrate tool derives for it
//! (`//Alice` is tested); signing is deterministic (nonce randomness derived from the
//! message); verification never panics on malformed keys or signatures, it says `false`.

use std::path::Path;

mod cache;
pub use cache::CAPACITY as KEY_CACHE_CAPACITY;

use blake2::{Blake2b512, Digest as _};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use schnorrkel::{ExpansionMode, MiniSecretKey, signing_context};
use sha2::Sha256;

/// The SS58 prefix of Bittensor (and generic Substrate) accounts.
pub const SS58_PREFIX: u16 = 42;

/// Why a key could not be read.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The hotkey file could not be read.
    #[error("cannot read key file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not a Bittensor hotkey file.
    #[error("{path} is not a Bittensor hotkey file: {reason}")]
    BadFile {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A seed is not 32 bytes of hex.
    #[error("a secret seed is 32 bytes as hex (64 digits, optional 0x): {0}")]
    BadSeed(String),
    /// An SS58 address does not decode.
    #[error("not an SS58 address: {0}")]
    BadAddress(String),
}

/// An sr25519 keypair: a Bittensor hotkey (or coldkey, or a subnet owner's key).
pub struct Keypair {
    seed: [u8; 32],
    keypair: schnorrkel::Keypair,
}

impl std::fmt::Debug for Keypair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keypair")
            .field("ss58", &ss58_encode(&self.public()))
            .finish_non_exhaustive()
    }
}

impl Clone for Keypair {
    fn clone(&self) -> Self {
        Keypair::from_seed(&self.seed)
    }
}

impl Keypair {
    /// The 32-byte mini secret (to build a chain signer from the same key). Secret: never log it.
    pub fn secret_seed(&self) -> &[u8; 32] {
        &self.seed
    }

    /// From a 32-byte mini secret (a Bittensor hotkey file's `secretSeed`), expanded as
    /// Substrate does, so the public key equals the account's.
    pub fn from_seed(seed: &[u8; 32]) -> Keypair {
        let mini = MiniSecretKey::from_bytes(seed).expect("32 bytes is a valid mini secret");
        Keypair {
            seed: *seed,
            keypair: mini.expand_to_keypair(ExpansionMode::Ed25519),
        }
    }

    /// From a seed written as hex (`0x` optional).
    pub fn from_seed_hex(hex_seed: &str) -> Result<Keypair, KeyError> {
        let s = hex_seed.trim();
        let s = s.strip_prefix("0x").unwrap_or(s);
        let bytes = hex::decode(s).map_err(|e| KeyError::BadSeed(e.to_string()))?;
        let seed: [u8; 32] = bytes
            .try_into()
            .map_err(|b: Vec<u8>| KeyError::BadSeed(format!("{} bytes", b.len())))?;
        Ok(Keypair::from_seed(&seed))
    }

    /// From a Bittensor hotkey file (`~/.bittensor/wallets/W/hotkeys/H`): unencrypted JSON
    /// with `secretSeed` and, checked when present, `publicKey` and `ss58Address`.
    pub fn from_hotkey_file(path: &Path) -> Result<Keypair, KeyError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| KeyError::Io {
            path: p.clone(),
            source,
        })?;
        let bad = |reason: String| KeyError::BadFile {
            path: p.clone(),
            reason,
        };
        let file: HotkeyFile = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        let kp = Keypair::from_seed_hex(&file.secret_seed).map_err(|e| bad(e.to_string()))?;
        if let Some(pk) = &file.public_key {
            let pk = pk.trim_start_matches("0x");
            if !pk.eq_ignore_ascii_case(&hex::encode(kp.public())) {
                return Err(bad("publicKey does not match secretSeed".into()));
            }
        }
        if let Some(addr) = &file.ss58_address
            && *addr != ss58_encode(&kp.public())
        {
            return Err(bad("ss58Address does not match secretSeed".into()));
        }
        Ok(kp)
    }

    /// This key as a Bittensor hotkey file's JSON (unencrypted, as `btcli` writes hotkeys).
    pub fn to_hotkey_file_json(&self) -> String {
        let file = HotkeyFile {
            secret_seed: format!("0x{}", hex::encode(self.seed)),
            public_key: Some(format!("0x{}", hex::encode(self.public()))),
            ss58_address: Some(ss58_encode(&self.public())),
        };
        serde_json::to_string_pretty(&file).expect("plain struct serialises")
    }

    /// The 32-byte public key.
    pub fn public(&self) -> [u8; 32] {
        self.keypair.public.to_bytes()
    }

    /// Sign `message` under `context`. Deterministic: the nonce randomness is derived from
    /// the message and mixed with the secret by schnorrkel.
    pub fn sign(&self, context: &[u8], message: &[u8]) -> [u8; 64] {
        let rng = ChaCha20Rng::from_seed(Sha256::digest(message).into());
        let t = schnorrkel::context::attach_rng(signing_context(context).bytes(message), rng);
        self.keypair.sign(t).to_bytes()
    }
}

/// Verify an sr25519 signature made under `context`. Malformed keys or signatures are
/// simply invalid.
pub fn verify(context: &[u8], public: &[u8; 32], message: &[u8], signature: &[u8; 64]) -> bool {
    let Some(pk) = cache::public_key(public) else {
        return false;
    };
    let Ok(sig) = schnorrkel::Signature::from_bytes(signature) else {
        return false;
    };
    pk.verify(signing_context(context).bytes(message), &sig)
        .is_ok()
}

/// Verify many sr25519 signatures made under one `context` at once: `(public key,
/// message, signature)` each. Batch verification (one multi-scalar multiplication with
/// random coefficients) costs well under one single verification per signature; the
/// answer is `true` only if every signature verifies (a forged one fails the whole batch,
/// except with negligible probability). Malformed keys or signatures make it `false`.
pub fn verify_many(context: &[u8], items: &[(&[u8; 32], &[u8], &[u8; 64])]) -> bool {
    if items.is_empty() {
        return true;
    }
    let Some(keys) = cache::public_keys(items.iter().map(|(pk, _, _)| *pk)) else {
        return false;
    };
    let mut sigs = Vec::with_capacity(items.len());
    for (_, _, sig) in items {
        let Ok(sig) = schnorrkel::Signature::from_bytes(&sig[..]) else {
            return false;
        };
        sigs.push(sig);
    }
    let ctx = signing_context(context);
    let transcripts = items.iter().map(|(_, m, _)| ctx.bytes(m));
    schnorrkel::verify_batch(transcripts, &sigs, &keys, false).is_ok()
}

#[derive(serde::Serialize, serde::Deserialize)]
struct HotkeyFile {
    #[serde(rename = "secretSeed")]
    secret_seed: String,
    #[serde(rename = "publicKey", default, skip_serializing_if = "Option::is_none")]
    public_key: Option<String>,
    #[serde(
        rename = "ss58Address",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    ss58_address: Option<String>,
}

fn ss58_checksum(body: &[u8]) -> [u8; 2] {
    let mut h = Blake2b512::new();
    h.update(b"SS58PRE");
    h.update(body);
    let d = h.finalize();
    [d[0], d[1]]
}

/// The SS58 address (prefix 42) of a public key.
pub fn ss58_encode(public: &[u8; 32]) -> String {
    let mut body = Vec::with_capacity(35);
    body.push(SS58_PREFIX as u8);
    body.extend_from_slice(public);
    let sum = ss58_checksum(&body);
    body.extend_from_slice(&sum);
    bs58::encode(body).into_string()
}

/// The public key of an SS58 address with a one-byte prefix, checksum verified.
pub fn ss58_decode(address: &str) -> Result<[u8; 32], KeyError> {
    let bad = || KeyError::BadAddress(address.to_string());
    let raw = bs58::decode(address).into_vec().map_err(|_| bad())?;
    if raw.len() != 35 || raw[0] >= 64 {
        return Err(bad());
    }
    if ss58_checksum(&raw[..33]) != raw[33..35] {
        return Err(bad());
    }
    Ok(raw[1..33].try_into().expect("32 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE_SEED: &str = "e5be9a5092b81bca64be81d212e7f2f9eba183bb7a90954f7b76361f6edb5c0a";
    const ALICE_PUBLIC: &str = "d43593c715fdd31c61141abd04a99fd6822c8558854ccde39a5684e7a56da27d";
    const ALICE_SS58: &str = "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY";

    #[test]
    fn kept_keys_verify_as_fresh_ones_and_a_bad_key_is_never_kept() {
        let k = Keypair::from_seed(&[201; 32]);
        let sig = k.sign(b"ctx", b"m");
        // First sight decompresses and keeps the key; later ones use the kept point.
        for _ in 0..3 {
            assert!(verify(b"ctx", &k.public(), b"m", &sig));
            assert!(cache::kept(&k.public()));
            assert!(
                !verify(b"ctx", &k.public(), b"n", &sig),
                "a kept key binds its message"
            );
            assert!(verify_many(b"ctx", &[(&k.public(), b"m", &sig)]));
        }
        // 32 bytes that are no Ristretto point: invalid, and not kept.
        let bad = [0xff; 32];
        assert!(schnorrkel::PublicKey::from_bytes(&bad).is_err());
        assert!(!verify(b"ctx", &bad, b"m", &sig));
        assert!(!verify_many(
            b"ctx",
            &[(&k.public(), b"m", &sig), (&bad, b"m", &sig)]
        ));
        assert!(!cache::kept(&bad));
    }

    #[test]
    fn many_signatures_verify_together_and_one_forgery_fails_them() {
        let keys: Vec<Keypair> = (0..40u8).map(|i| Keypair::from_seed(&[i; 32])).collect();
        let msgs: Vec<Vec<u8>> = (0..40u8).map(|i| vec![i; 1 + i as usize]).collect();
        let mut sigs: Vec<[u8; 64]> = keys
            .iter()
            .zip(&msgs)
            .map(|(k, m)| k.sign(b"ctx", m))
            .collect();
        let pubs: Vec<[u8; 32]> = keys.iter().map(|k| k.public()).collect();
        let items = |sigs: &[[u8; 64]]| -> Vec<([u8; 32], Vec<u8>, [u8; 64])> {
            (0..40)
                .map(|i| (pubs[i], msgs[i].clone(), sigs[i]))
                .collect()
        };
        let check = |ctx: &[u8], v: &[([u8; 32], Vec<u8>, [u8; 64])]| {
            let refs: Vec<(&[u8; 32], &[u8], &[u8; 64])> =
                v.iter().map(|(p, m, s)| (p, m.as_slice(), s)).collect();
            verify_many(ctx, &refs)
        };
        assert!(check(b"ctx", &items(&sigs)));
        assert!(!check(b"other", &items(&sigs)), "the context is bound");
        assert!(verify_many(b"ctx", &[]));
        // Each signature also verifies alone; swapping two breaks the batch.
        assert!(verify(b"ctx", &pubs[7], &msgs[7], &sigs[7]));
        sigs.swap(3, 4);
        assert!(!check(b"ctx", &items(&sigs)));
        sigs.swap(3, 4);
        sigs[39][5] ^= 1;
        assert!(!check(b"ctx", &items(&sigs)), "one flipped bit fails all");
    }

    #[test]
    fn alice_matches_substrate() {
        let kp = Keypair::from_seed_hex(ALICE_SEED).unwrap();
        assert_eq!(hex::encode(kp.public()), ALICE_PUBLIC);
        assert_eq!(ss58_encode(&kp.public()), ALICE_SS58);
        assert_eq!(ss58_decode(ALICE_SS58).unwrap(), kp.public());
    }

    #[test]
    fn sign_verify_context_separated() {
        let kp = Keypair::from_seed(&[3; 32]);
        let sig = kp.sign(b"ctx/a", b"hello");
        assert_eq!(sig, kp.sign(b"ctx/a", b"hello"), "deterministic");
        assert!(verify(b"ctx/a", &kp.public(), b"hello", &sig));
        assert!(!verify(b"ctx/b", &kp.public(), b"hello", &sig));
        assert!(!verify(b"ctx/a", &kp.public(), b"hellO", &sig));
        assert!(!verify(b"ctx/a", &[0xff; 32], b"hello", &sig));
        let mut bad = sig;
        bad[5] ^= 1;
        assert!(!verify(b"ctx/a", &kp.public(), b"hello", &bad));
    }

    #[test]
    fn ss58_rejects_corruption() {
        let mut s = ALICE_SS58.to_string().into_bytes();
        s[10] = if s[10] == b'a' { b'b' } else { b'a' };
        assert!(ss58_decode(std::str::from_utf8(&s).unwrap()).is_err());
        assert!(ss58_decode("0OIl").is_err());
        assert!(ss58_decode("").is_err());
    }

    #[test]
    fn hotkey_file_round_trip_and_mismatch() {
        let dir = tempfile::tempdir().unwrap();
        let kp = Keypair::from_seed(&[9; 32]);
        let path = dir.path().join("hot");
        std::fs::write(&path, kp.to_hotkey_file_json()).unwrap();
        assert_eq!(
            Keypair::from_hotkey_file(&path).unwrap().public(),
            kp.public()
        );

        let other = Keypair::from_seed(&[8; 32]);
        let forged = kp
            .to_hotkey_file_json()
            .replace(&ss58_encode(&kp.public()), &ss58_encode(&other.public()));
        std::fs::write(&path, forged).unwrap();
        let err = Keypair::from_hotkey_file(&path).unwrap_err().to_string();
        assert!(err.contains("ss58Address does not match"), "{err}");

        std::fs::write(&path, "{\"secretSeed\": \"0x1234\"}").unwrap();
        assert!(Keypair::from_hotkey_file(&path).is_err());
        std::fs::write(&path, "not json").unwrap();
        assert!(Keypair::from_hotkey_file(&path).is_err());
    }
}
