//! Example challenge (compute-heavy): reconstruct an embedded 1,536-base DNA reference;
//! the score is how close the submission is in Levenshtein distance.
//!
//! Payload: up to 2,048 bytes over `ACGT`. Score: `1 − distance / max(len)`, integer maths;
//! about 3 million dynamic-programming cells per evaluation.

use platform_sdk::{Evaluation, SplitMix64, ratio, splitmix64};

/// Length of the hidden reference.
pub const REFERENCE_LEN: usize = 1536;
/// Longest payload accepted.
pub const PAYLOAD_MAX: usize = 2048;

const ALPHABET: [u8; 4] = *b"ACGT";

/// The hidden reference sequence.
pub const REFERENCE: [u8; REFERENCE_LEN] = {
    let mut r = [0u8; REFERENCE_LEN];
    let mut s = 0x0065_6469_7464_6973u64;
    let mut i = 0;
    while i < REFERENCE_LEN {
        r[i] = ALPHABET[(splitmix64(&mut s) % 4) as usize];
        i += 1;
    }
    r
};

/// Levenshtein distance with two rows (O(min) memory). The inner loop walks the rows with
/// iterators and carries the cell to its left in a local, so the compiled loop has no
/// bounds checks and reloads nothing it just wrote (a wasm compiler keeps fewer values in
/// registers than a native one).
pub fn levenshtein(a: &[u8], b: &[u8]) -> u32 {
    let mut prev: Vec<u32> = (0..=b.len() as u32).collect();
    let mut cur = vec![0u32; b.len() + 1];
    for (i, &ca) in a.iter().enumerate() {
        let mut left = i as u32 + 1;
        cur[0] = left;
        for ((out, above), &cb) in cur[1..].iter_mut().zip(prev.windows(2)).zip(b) {
            let subst = above[0] + u32::from(ca != cb);
            left = subst.min(above[1] + 1).min(left + 1);
            *out = left;
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// Score a payload; empty, oversized or non-`ACGT` payloads score 0.
pub fn evaluate(payload: &[u8]) -> Evaluation {
    if payload.is_empty()
        || payload.len() > PAYLOAD_MAX
        || !payload.iter().all(|c| ALPHABET.contains(c))
    {
        return Evaluation::reject();
    }
    let d = levenshtein(payload, &REFERENCE);
    let longest = payload.len().max(REFERENCE_LEN) as u64;
    let mut e = Evaluation::score(ratio(longest - u64::from(d), longest));
    e.details = d.to_le_bytes().to_vec();
    e
}

/// A plausible miner submission: the reference with seed-dependent substitutions,
/// insertions and deletions.
pub fn sample_payload(seed: u64) -> Vec<u8> {
    let mut rng = SplitMix64::new(seed);
    let rate = 1 + rng.below(40);
    let mut out = Vec::with_capacity(REFERENCE_LEN + 64);
    for &c in REFERENCE.iter() {
        match rng.below(100 * rate) {
            0..=9 => out.push(ALPHABET[rng.below(4) as usize]),
            10..=14 => {}
            15..=19 => {
                out.push(c);
                out.push(ALPHABET[rng.below(4) as usize]);
            }
            _ => out.push(c),
        }
    }
    out.truncate(PAYLOAD_MAX);
    out
}

platform_sdk::export_challenge!(evaluate);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levenshtein_known_values() {
        assert_eq!(levenshtein(b"kitten", b"sitting"), 3);
        assert_eq!(levenshtein(b"", b"abc"), 3);
        assert_eq!(levenshtein(b"abc", b"abc"), 0);
    }

    #[test]
    fn exact_reference_scores_one_and_junk_zero() {
        assert_eq!(evaluate(&REFERENCE).score, platform_sdk::SCORE_SCALE);
        assert_eq!(evaluate(b"hello").score, 0);
        assert_eq!(evaluate(&[]).score, 0);
    }

    #[test]
    fn mutated_samples_score_below_one() {
        for seed in 0..4 {
            let s = evaluate(&sample_payload(seed)).score;
            assert!(
                s > 500_000_000 && s < platform_sdk::SCORE_SCALE,
                "{seed}: {s}"
            );
        }
    }
}
