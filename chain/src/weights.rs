//! Weights as the chain takes them: u16 values for uids, normalised exactly as the Bittensor
//! Python SDK does (`convert_weights_and_uids_for_emit`: divide by the maximum, scale to
//! 65535, round half to even, drop zeros), and the commit-reveal v2 commit hash.
//!
//! Normalisation uses f64 on purpose: the SDK computes `round(float(w) / max * 65535)` in
//! IEEE doubles, and every operation here is the same correctly rounded IEEE operation, so
//! the result is bit-identical to the SDK's on every machine. Inputs and outputs are integers.

use blake2::digest::consts::U32;
use blake2::{Blake2b, Digest};
use parity_scale_codec::Encode;

/// Largest weight value on chain.
pub const U16_MAX: u16 = u16::MAX;

/// Why weights cannot be emitted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WeightsError {
    /// `uids` and `weights` differ in length.
    #[error("{uids} uids but {weights} weights")]
    LengthMismatch {
        /// Number of uids.
        uids: usize,
        /// Number of weights.
        weights: usize,
    },
    /// A uid appears twice.
    #[error("uid {0} appears twice")]
    DuplicateUid(u16),
}

/// Normalise integer weights for uids the way the Python SDK does before `set_weights`:
/// max-upscale to 65535 with round-half-to-even, zeros dropped, order kept. All-zero input
/// gives empty vectors (the SDK's behaviour).
pub fn normalize_for_emit(
    uids: &[u16],
    weights: &[u64],
) -> Result<(Vec<u16>, Vec<u16>), WeightsError> {
    if uids.len() != weights.len() {
        return Err(WeightsError::LengthMismatch {
            uids: uids.len(),
            weights: weights.len(),
        });
    }
    let mut seen = std::collections::BTreeSet::new();
    if let Some(dup) = uids.iter().find(|u| !seen.insert(**u)) {
        return Err(WeightsError::DuplicateUid(*dup));
    }
    let max = weights.iter().copied().max().unwrap_or(0);
    if max == 0 {
        return Ok((vec![], vec![]));
    }
    let max = max as f64;
    let mut out_uids = Vec::with_capacity(uids.len());
    let mut out_vals = Vec::with_capacity(uids.len());
    for (&uid, &w) in uids.iter().zip(weights) {
        let v = ((w as f64 / max) * f64::from(U16_MAX)).round_ties_even();
        // 0 ≤ w ≤ max, so 0 ≤ v ≤ 65535 exactly: the cast cannot truncate.
        let v = v as u16;
        if v != 0 {
            out_uids.push(uid);
            out_vals.push(v);
        }
    }
    Ok((out_uids, out_vals))
}

/// Commit-reveal v2 commit hash:
/// `BlakeTwo256(SCALE(hotkey: AccountId32, netuid_index: u16, uids: Vec<u16>,
/// values: Vec<u16>, salt: Vec<u16>, version_key: u64))`.
pub fn commit_hash(
    hotkey: &[u8; 32],
    netuid_index: u16,
    uids: &[u16],
    values: &[u16],
    salt: &[u16],
    version_key: u64,
) -> [u8; 32] {
    let encoded = (
        hotkey,
        netuid_index,
        uids.to_vec(),
        values.to_vec(),
        salt.to_vec(),
        version_key,
    )
        .encode();
    Blake2b::<U32>::digest(encoded).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex32(s: &str) -> [u8; 32] {
        let s = s.trim_start_matches("0x");
        let mut out = [0u8; 32];
        for (i, b) in out.iter_mut().enumerate() {
            *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
        }
        out
    }

    #[test]
    fn commit_hash_matches_the_reference_vector() {
        // ../shared/chain/README.md: hotkey //Alice, netuid_index 1, uids [0, 1, 2],
        // values [65535, 32768, 1], salt [1..=8], version_key 42.
        let alice = hex32("d43593c715fdd31c61141abd04a99fd6822c8558854ccde39a5684e7a56da27d");
        let h = commit_hash(
            &alice,
            1,
            &[0, 1, 2],
            &[65535, 32768, 1],
            &[1, 2, 3, 4, 5, 6, 7, 8],
            42,
        );
        assert_eq!(
            h,
            hex32("0x4ee856165f83e43763e9b6f848574df3fb823bdfe08910858f9d17d96b317bbc")
        );
    }

    #[test]
    fn normalization_edge_cases() {
        assert_eq!(
            normalize_for_emit(&[0, 1], &[0, 0]).unwrap(),
            (vec![], vec![])
        );
        assert_eq!(
            normalize_for_emit(&[7], &[3]).unwrap(),
            (vec![7], vec![65535])
        );
        // 1/2 × 65535 = 32767.5 → ties to even: 32768.
        assert_eq!(
            normalize_for_emit(&[0, 1], &[2, 1]).unwrap(),
            (vec![0, 1], vec![65535, 32768])
        );
        // 3/2 scaled: 1/6 × 65535 = 10922.5 → 10922 (even).
        assert_eq!(
            normalize_for_emit(&[0, 1], &[6, 1]).unwrap(),
            (vec![0, 1], vec![65535, 10922])
        );
        // Tiny weights round to zero and are dropped.
        assert_eq!(
            normalize_for_emit(&[0, 1, 2], &[1_000_000, 1, 0]).unwrap(),
            (vec![0], vec![65535])
        );
        assert_eq!(
            normalize_for_emit(&[0, 1], &[1]).unwrap_err(),
            WeightsError::LengthMismatch {
                uids: 2,
                weights: 1
            }
        );
        assert_eq!(
            normalize_for_emit(&[3, 3], &[1, 1]).unwrap_err(),
            WeightsError::DuplicateUid(3)
        );
    }
}
