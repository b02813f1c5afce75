//! Timelocked weight commits (commit-reveal v4): the SCALE `WeightsTlockPayload` encrypted
//! with timelock IBE to the drand quicknet public key for a future round, serialised
//! compressed, exactly as the chain decrypts it when the round's signature is published.

use ark_serialize::{CanonicalDeserialize, CanonicalSerialize};
use parity_scale_codec::{Decode, Encode};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::{OsRng, RngCore, SeedableRng};
use sha2::{Digest, Sha256};
use timelock::curves::drand::TinyBLS381;
use timelock::ibe::fullident::Identity;
use timelock::stream_ciphers::AESGCMStreamCipherProvider;
use timelock::tlock::{EngineBLS, TLECiphertext, tld, tle};

use crate::ChainError;

/// drand quicknet's public key (G2, compressed).
pub const DRAND_QUICKNET_PUBLIC_KEY: &str = "83cf0f2896adee7eb8b5f01fcad3912212c437e0073e911fb90022d3e760183c8c4b450b6a0a6c3ac6a5776a2d1064510d1fec758c921cc22b0e17e63aaf4bcb5ed66304de9cf809bd274ca73bab4af5a6e9c76a4bc09e76eae8991ef5ece45a";
/// drand quicknet's genesis time (Unix seconds) and period: round r is published at
/// `genesis + (r - 1) * period`.
pub const DRAND_QUICKNET_GENESIS: u64 = 1_692_803_367;
/// Seconds between quicknet rounds.
pub const DRAND_QUICKNET_PERIOD: u64 = 3;
/// The commit-reveal version of timelocked commits where the runtime does not say (v4).
pub const COMMIT_REVEAL_VERSION: u16 = 4;
/// The chain's limit on a commit's size.
pub const MAX_COMMIT_BYTES: usize = 5000;

/// What a timelocked commit encrypts (SCALE, field order as the pallet's struct).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct WeightsTlockPayload {
    /// The committing hotkey's public key bytes.
    pub hotkey: Vec<u8>,
    /// Uids.
    pub uids: Vec<u16>,
    /// Normalised values.
    pub values: Vec<u16>,
    /// Weights version key.
    pub version_key: u64,
}

fn tl_err(what: &str, e: impl std::fmt::Debug) -> ChainError {
    ChainError::Encode(format!("timelock {what}: {e:?}"))
}

fn identity(round: u64) -> Identity {
    Identity::new(b"", vec![Sha256::digest(round.to_be_bytes()).to_vec()])
}

/// The first quicknet round published at or after Unix time `at_secs`.
pub fn round_at(at_secs: u64) -> u64 {
    if at_secs <= DRAND_QUICKNET_GENESIS {
        return 1;
    }
    (at_secs - DRAND_QUICKNET_GENESIS).div_ceil(DRAND_QUICKNET_PERIOD) + 1
}

/// Encrypt `payload` for `reveal_round`. The ephemeral key and the cipher's randomness come
/// from the OS: a commit must not be predictable before its round.
pub fn encrypt(payload: &WeightsTlockPayload, reveal_round: u64) -> Result<Vec<u8>, ChainError> {
    let mut seed = [0u8; 32];
    OsRng.fill_bytes(&mut seed);
    encrypt_with_seed(payload, reveal_round, seed)
}

/// [`encrypt`] with the randomness derived from `seed` (tests only: deterministic bytes).
pub fn encrypt_with_seed(
    payload: &WeightsTlockPayload,
    reveal_round: u64,
    seed: [u8; 32],
) -> Result<Vec<u8>, ChainError> {
    let pk_bytes = hex::decode(DRAND_QUICKNET_PUBLIC_KEY).expect("constant hex");
    let pk = <TinyBLS381 as EngineBLS>::PublicKeyGroup::deserialize_compressed(&pk_bytes[..])
        .map_err(|e| tl_err("public key", e))?;
    let mut rng = ChaCha20Rng::from_seed(seed);
    let mut esk = [0u8; 32];
    rng.fill_bytes(&mut esk);
    let ct = tle::<TinyBLS381, AESGCMStreamCipherProvider, ChaCha20Rng>(
        pk,
        esk,
        &payload.encode(),
        identity(reveal_round),
        rng,
    )
    .map_err(|e| tl_err("encrypt", e))?;
    let mut out = Vec::new();
    ct.serialize_compressed(&mut out)
        .map_err(|e| tl_err("serialise", e))?;
    if out.len() > MAX_COMMIT_BYTES {
        return Err(ChainError::Encode(format!(
            "timelocked commit of {} bytes exceeds the chain's {MAX_COMMIT_BYTES}",
            out.len()
        )));
    }
    Ok(out)
}

/// Decrypt a commit with the drand signature of its round (hex, G1 compressed), as the
/// chain does at reveal time.
pub fn decrypt(
    commit: &[u8],
    round_signature_hex: &str,
) -> Result<WeightsTlockPayload, ChainError> {
    let ct = TLECiphertext::<TinyBLS381>::deserialize_compressed(commit)
        .map_err(|e| tl_err("ciphertext", e))?;
    let sig_bytes = hex::decode(round_signature_hex).map_err(|e| tl_err("signature hex", e))?;
    let sig = <TinyBLS381 as EngineBLS>::SignatureGroup::deserialize_compressed(&sig_bytes[..])
        .map_err(|e| tl_err("signature", e))?;
    let plain =
        tld::<TinyBLS381, AESGCMStreamCipherProvider>(ct, sig).map_err(|e| tl_err("decrypt", e))?;
    WeightsTlockPayload::decode(&mut &plain[..]).map_err(|e| tl_err("payload", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// drand quicknet's signature for round 1000 (see ../shared/chain/README.md).
    const ROUND_1000: &str = "b44679b9a59af2ec876b1a6b1ad52ea9b1615fc3982b19576350f93447cb1125e342b73a8dd2bacbe47e4b6b63ed5e39";

    fn payload() -> WeightsTlockPayload {
        WeightsTlockPayload {
            hotkey: vec![0xd4; 32],
            uids: vec![0, 1, 2],
            values: vec![65535, 32768, 1],
            version_key: 42,
        }
    }

    #[test]
    fn round_1000_signature_decrypts_what_we_encrypt() {
        let c = encrypt(&payload(), 1000).unwrap();
        assert!(c.len() <= MAX_COMMIT_BYTES);
        assert_eq!(decrypt(&c, ROUND_1000).unwrap(), payload());
        let c2 = encrypt(&payload(), 1000).unwrap();
        assert_ne!(c, c2, "fresh randomness per commit");
    }

    #[test]
    fn the_wrong_round_or_bytes_do_not_decrypt() {
        let c = encrypt(&payload(), 1001).unwrap();
        assert!(decrypt(&c, ROUND_1000).is_err());
        let mut bad = encrypt(&payload(), 1000).unwrap();
        let n = bad.len();
        bad[n - 30] ^= 1; // inside the AES-GCM body: authenticated
        assert!(decrypt(&bad, ROUND_1000).is_err());
        assert!(decrypt(&[1, 2, 3], ROUND_1000).is_err());
    }

    #[test]
    fn rounds_follow_the_quicknet_clock() {
        assert_eq!(round_at(DRAND_QUICKNET_GENESIS), 1);
        assert_eq!(round_at(DRAND_QUICKNET_GENESIS + 3), 2);
        assert_eq!(round_at(DRAND_QUICKNET_GENESIS + 4), 3);
    }
}
