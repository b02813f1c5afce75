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
/// gives empty vectors (the SDK's behaviour). Weights must be at most 2^53 (exact in f64).
pub fn normalize_for_emit(
    uids: &[u16],
    weights: &[u64],
) -> Result<(Vec<u16>, Vec<u16>), WeightsError> {
    check_shape(uids, weights.len())?;
    let floats: Vec<f64> = weights.iter().map(|&w| w as f64).collect();
    Ok(normalize_floats(uids, &floats))
}

fn check_shape(uids: &[u16], weights: usize) -> Result<(), WeightsError> {
    if uids.len() != weights {
        return Err(WeightsError::LengthMismatch {
            uids: uids.len(),
            weights,
        });
    }
    let mut seen = std::collections::BTreeSet::new();
    if let Some(dup) = uids.iter().find(|u| !seen.insert(**u)) {
        return Err(WeightsError::DuplicateUid(*dup));
    }
    Ok(())
}

/// The SDK's `normalize` on floats: `round((w / max) * 65535)`, zeros dropped.
fn normalize_floats(uids: &[u16], weights: &[f64]) -> (Vec<u16>, Vec<u16>) {
    let top = weights.iter().copied().fold(0.0f64, f64::max);
    if top == 0.0 {
        return (vec![], vec![]);
    }
    let mut out_uids = Vec::with_capacity(uids.len());
    let mut out_vals = Vec::with_capacity(uids.len());
    for (&uid, &w) in uids.iter().zip(weights) {
        let v = ((w / top) * f64::from(U16_MAX)).round_ties_even();
        // 0 ≤ w ≤ top, so 0 ≤ v ≤ 65535 exactly: the cast cannot truncate.
        let v = v as u16;
        if v != 0 {
            out_uids.push(uid);
            out_vals.push(v);
        }
    }
    (out_uids, out_vals)
}

/// The SDK's `clip_to_max_weight(weights, limit)`: normalise to sum 1 with no element above
/// `limit`, redistributing the clipped mass by a cutoff. The same IEEE operations in the
/// same order as the Python (3.11, whose `sum` adds left to right), so results are
/// bit-identical. `None` for empty or all-zero input (the SDK raises).
pub fn clip_to_max_weight(weights: &[u64], limit: f64) -> Option<Vec<f64>> {
    let n = weights.len();
    // Python: float(sum(ints)) — an exact integer sum, rounded once.
    let total = weights.iter().map(|&w| u128::from(w)).sum::<u128>() as f64;
    if n == 0 || total <= 0.0 {
        return None;
    }
    if n as f64 * limit <= 1.0 {
        return Some(vec![1.0 / n as f64; n]);
    }
    let mut estimation: Vec<f64> = weights.iter().map(|&w| w as f64 / total).collect();
    estimation.sort_by(f64::total_cmp);
    if estimation[n - 1] <= limit {
        return Some(weights.iter().map(|&w| w as f64 / total).collect());
    }
    const EPSILON: f64 = 1e-7;
    let mut cumsum = Vec::with_capacity(n);
    let mut acc = 0.0f64;
    for (i, e) in estimation.iter().enumerate() {
        acc = if i == 0 { *e } else { acc + e };
        cumsum.push(acc);
    }
    let n_values = estimation
        .iter()
        .enumerate()
        .filter(|(i, e)| *e / ((n - i - 1) as f64 * *e + cumsum[*i] + EPSILON) < limit)
        .count();
    // n * limit > 1 and the largest estimate exceeds the limit, so the smallest estimate
    // passes the test and n_values ≥ 1.
    let n_values = n_values.max(1);
    let cutoff_scale =
        (limit * cumsum[n_values - 1] - EPSILON) / (1.0 - limit * (n - n_values) as f64);
    let cutoff = cutoff_scale * total;
    let clipped: Vec<f64> = weights.iter().map(|&w| (w as f64).min(cutoff)).collect();
    let clipped_total = clipped.iter().fold(0.0f64, |a, w| a + w);
    Some(clipped.iter().map(|w| w / clipped_total).collect())
}

/// What the SDK's `SetWeights` does to weights before submitting them: clip to the
/// subnet's `max_weight_limit` (when below 65535, unless the only weight is the
/// validator's own uid), then normalise. Integer weights in, chain values out.
pub fn conform(
    uids: &[u16],
    weights: &[u64],
    max_weight_limit: u16,
    self_uid: Option<u16>,
) -> Result<(Vec<u16>, Vec<u16>), WeightsError> {
    check_shape(uids, weights.len())?;
    let is_self_weight = self_uid.is_some_and(|s| uids == [s]);
    if !is_self_weight && max_weight_limit < U16_MAX {
        let limit = f64::from(max_weight_limit) / f64::from(U16_MAX);
        return Ok(match clip_to_max_weight(weights, limit) {
            Some(floats) => normalize_floats(uids, &floats),
            None => (vec![], vec![]),
        });
    }
    normalize_for_emit(uids, weights)
}

/// Commit-reveal v2 commit hash:
/// `BlakeTwo256(SCALE(hotkey: AccountId32, netuid_index: u16, uids: Vec<u16>,
/// values: Vec<u16>, salt: Vec<u16>, version_key: u64))`, where `netuid_index` is the
/// mechanism's storage index ([`crate::storage_index`]; the netuid for mechanism 0).
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
    fn clipping_caps_the_largest_share() {
        // Already within the limit: just sum-normalised.
        let w = clip_to_max_weight(&[1, 1, 1, 1], 0.5).unwrap();
        assert_eq!(w, vec![0.25; 4]);
        // One dominant weight is cut to the limit (up to the SDK's epsilon).
        let w = clip_to_max_weight(&[100, 1, 1, 1], 0.4).unwrap();
        let max = w.iter().copied().fold(0.0, f64::max);
        assert!(max <= 0.4 + 1e-6 && max > 0.39, "{w:?}");
        assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        // A limit no distribution meets: uniform.
        assert_eq!(clip_to_max_weight(&[5, 1], 0.4).unwrap(), vec![0.5, 0.5]);
        assert_eq!(clip_to_max_weight(&[0, 0], 0.4), None);
        assert_eq!(clip_to_max_weight(&[], 0.4), None);
        // conform: clipping then max-upscale; the validator's own single uid is exempt.
        let (u, v) = conform(&[0, 1, 2, 3], &[100, 1, 1, 1], 26214, None).unwrap();
        assert_eq!(u, vec![0, 1, 2, 3]);
        assert_eq!(v[0], 65535);
        assert!(v[1] > 1000, "clipped mass went to the others: {v:?}");
        assert_eq!(
            conform(&[5], &[9], 100, Some(5)).unwrap(),
            (vec![5], vec![65535])
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
