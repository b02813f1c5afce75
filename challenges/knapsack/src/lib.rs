//! Example challenge: verify and score a submitted solution to an embedded 0/1 knapsack
//! instance of 256 items.
//!
//! Payload: a 32-byte bitset (bit `i` of byte `i / 8`, least significant first) selecting
//! items. Score: total value ÷ the proven optimum if the selection fits the capacity, else 0.

use platform_sdk::{Evaluation, SplitMix64, ratio, splitmix64};

/// Items in the instance.
pub const ITEMS: usize = 256;
/// Payload size in bytes.
pub const PAYLOAD_BYTES: usize = ITEMS / 8;

/// (weight, value) per item, both in 1..=1000, values correlated with weights (hard instances).
pub const INSTANCE: [(u32, u32); ITEMS] = {
    let mut items = [(0u32, 0u32); ITEMS];
    let mut s = 0x6b6e_6170_7361_636bu64;
    let mut i = 0;
    while i < ITEMS {
        let w = 1 + (splitmix64(&mut s) % 1000) as u32;
        let v = w + (splitmix64(&mut s) % 100) as u32;
        items[i] = (w, if v > 1000 { 1000 } else { v });
        i += 1;
    }
    items
};

/// Knapsack capacity: a third of the total weight.
pub const CAPACITY: u32 = {
    let mut total = 0;
    let mut i = 0;
    while i < ITEMS {
        total += INSTANCE[i].0;
        i += 1;
    }
    total / 3
};

/// The optimum, proven by the dynamic programme in the tests (`optimum_is_exact`).
pub const OPTIMUM: u32 = 51_129;

/// Score a payload; malformed or overweight selections score 0.
pub fn evaluate(payload: &[u8]) -> Evaluation {
    if payload.len() != PAYLOAD_BYTES {
        return Evaluation::reject();
    }
    // Eight items per payload byte, each added times its bit: no branch per item, so the
    // loop compiles to straight-line code in wasm as it does natively.
    let (mut weight, mut value) = (0u32, 0u32);
    for (&byte, items) in payload.iter().zip(INSTANCE.chunks_exact(8)) {
        for (bit, (w, v)) in items.iter().enumerate() {
            let taken = u32::from(byte >> bit & 1);
            weight += w * taken;
            value += v * taken;
        }
    }
    if weight > CAPACITY {
        return Evaluation::reject();
    }
    let mut e = Evaluation::score(ratio(u64::from(value), u64::from(OPTIMUM)));
    e.details = value.to_le_bytes().to_vec();
    e
}

/// A plausible miner submission: greedy by value density with seed-dependent skips.
pub fn sample_payload(seed: u64) -> Vec<u8> {
    let mut rng = SplitMix64::new(seed);
    let mut order: Vec<usize> = (0..ITEMS).collect();
    order.sort_by(|&a, &b| {
        let (wa, va) = INSTANCE[a];
        let (wb, vb) = INSTANCE[b];
        (u64::from(vb) * u64::from(wa))
            .cmp(&(u64::from(va) * u64::from(wb)))
            .then(a.cmp(&b))
    });
    let skip_one_in = 2 + rng.below(30);
    let mut bits = vec![0u8; PAYLOAD_BYTES];
    let mut weight = 0;
    for i in order {
        if rng.below(skip_one_in) == 0 {
            continue;
        }
        if weight + INSTANCE[i].0 <= CAPACITY {
            weight += INSTANCE[i].0;
            bits[i / 8] |= 1 << (i % 8);
        }
    }
    bits
}

platform_sdk::export_challenge!(evaluate);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn optimum_is_exact() {
        let cap = CAPACITY as usize;
        let mut best = vec![0u32; cap + 1];
        for &(w, v) in INSTANCE.iter() {
            for c in (w as usize..=cap).rev() {
                best[c] = best[c].max(best[c - w as usize] + v);
            }
        }
        assert_eq!(best[cap], OPTIMUM);
    }

    #[test]
    fn overweight_and_malformed_score_zero() {
        assert_eq!(evaluate(&[0xff; PAYLOAD_BYTES]).score, 0);
        assert_eq!(evaluate(&[0; 3]).score, 0);
        assert_eq!(evaluate(&[0; PAYLOAD_BYTES]).score, 0);
    }

    #[test]
    fn greedy_samples_score_high_but_not_above_one() {
        for seed in 0..16 {
            let s = evaluate(&sample_payload(seed)).score;
            assert!(
                s > 500_000_000 && s <= platform_sdk::SCORE_SCALE,
                "{seed}: {s}"
            );
        }
    }
}
