//! Example challenge: score a submitted linear classifier on an embedded dataset.
//!
//! Payload: 17 little-endian `i32` (16 weights then a bias, Q16.16 fixed point), 68 bytes.
//! Score: classification accuracy on 1,024 embedded samples, integer maths only.

use platform_sdk::{Evaluation, SplitMix64, ratio, splitmix64};

/// Features per sample.
pub const FEATURES: usize = 16;
/// Samples in the embedded evaluation set.
pub const SAMPLES: usize = 1024;
/// Payload size in bytes.
pub const PAYLOAD_BYTES: usize = (FEATURES + 1) * 4;

const SEED: u64 = 0x5eed_11ea_4000_0001;

/// Hidden model the labels come from (Q16.16), bias last.
const TRUTH: [i32; FEATURES + 1] = {
    let mut w = [0i32; FEATURES + 1];
    let mut s = SEED;
    let mut i = 0;
    while i <= FEATURES {
        w[i] = (splitmix64(&mut s) % 131_072) as i32 - 65_536;
        i += 1;
    }
    w
};

/// Features in -1024..1024, and labels from the hidden model with ~5% label noise.
const DATA: ([[i16; FEATURES]; SAMPLES], [bool; SAMPLES]) = {
    let mut x = [[0i16; FEATURES]; SAMPLES];
    let mut y = [false; SAMPLES];
    let mut s = SEED ^ 0xdead_beef;
    let mut n = 0;
    while n < SAMPLES {
        let mut acc: i64 = TRUTH[FEATURES] as i64 * 1024;
        let mut f = 0;
        while f < FEATURES {
            let v = (splitmix64(&mut s) % 2048) as i64 - 1024;
            x[n][f] = v as i16;
            acc += TRUTH[f] as i64 * v;
            f += 1;
        }
        let noisy = splitmix64(&mut s).is_multiple_of(20);
        y[n] = (acc >= 0) != noisy;
        n += 1;
    }
    (x, y)
};

fn predict(w: &[i32; FEATURES + 1], x: &[i16; FEATURES]) -> bool {
    let mut acc: i64 = i64::from(w[FEATURES]) * 1024;
    for f in 0..FEATURES {
        acc += i64::from(w[f]) * i64::from(x[f]);
    }
    acc >= 0
}

/// Score a payload: accuracy on the embedded set; malformed payloads score 0.
pub fn evaluate(payload: &[u8]) -> Evaluation {
    if payload.len() != PAYLOAD_BYTES {
        return Evaluation::reject();
    }
    let mut w = [0i32; FEATURES + 1];
    for (i, chunk) in payload.chunks_exact(4).enumerate() {
        w[i] = i32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
    }
    let (xs, ys) = &DATA;
    let correct = xs
        .iter()
        .zip(ys.iter())
        .filter(|(x, y)| predict(&w, x) == **y)
        .count();
    let mut e = Evaluation::score(ratio(correct as u64, SAMPLES as u64));
    e.details = (correct as u32).to_le_bytes().to_vec();
    e
}

/// A plausible miner submission: the hidden model perturbed by a seed-dependent amount.
pub fn sample_payload(seed: u64) -> Vec<u8> {
    let mut rng = SplitMix64::new(seed);
    let noise = 1 + rng.below(65_536) as i64;
    TRUTH
        .iter()
        .flat_map(|w| {
            {
                let delta = rng.below(2 * noise as u64) as i64 - noise;
                (i64::from(*w) + delta).clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
            }
            .to_le_bytes()
        })
        .collect()
}

platform_sdk::export_challenge!(evaluate);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hidden_model_scores_about_95_percent() {
        let payload: Vec<u8> = TRUTH.iter().flat_map(|w| w.to_le_bytes()).collect();
        let s = evaluate(&payload).score;
        assert!(s > 900_000_000 && s < 990_000_000, "{s}");
    }

    #[test]
    fn malformed_payload_scores_zero() {
        assert_eq!(evaluate(&[1, 2, 3]).score, 0);
        assert_eq!(evaluate(&[]).score, 0);
    }

    #[test]
    fn samples_spread_over_scores() {
        let scores: Vec<u64> = (0..32)
            .map(|s| evaluate(&sample_payload(s)).score)
            .collect();
        assert!(scores.iter().any(|s| *s > 800_000_000));
        assert!(scores.iter().min() != scores.iter().max());
    }
}
