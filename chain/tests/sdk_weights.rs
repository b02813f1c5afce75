//! Our weight conforming against the Bittensor Python SDK's own (`bittensor` 11,
//! `intents.weights._conform`: clip to the max weight limit, max-upscale, round half to even,
//! zeros dropped), on edge cases and on random vectors of 256 uids.

mod common;

use platform_chain::weights::conform;
use serde_json::{Value, json};

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

struct Case {
    uids: Vec<u16>,
    weights: Vec<u64>,
    limit: u16,
    self_uid: Option<u16>,
}

fn cases() -> Vec<Case> {
    let c = |uids: Vec<u16>, weights: Vec<u64>, limit: u16| Case {
        uids,
        weights,
        limit,
        self_uid: None,
    };
    let mut v = vec![
        // Ties at .5: 65535/2 = 32767.5 → 32768; 65535/6 = 10922.5 → 10922.
        c(vec![0, 1], vec![2, 1], 65535),
        c(vec![0, 1], vec![6, 1], 65535),
        c(vec![0, 1, 2], vec![10, 5, 3], 65535),
        // All zeros, a single weight, tiny weights dropped.
        c(vec![0, 1, 2], vec![0, 0, 0], 65535),
        c(vec![9], vec![123], 65535),
        c(vec![0, 1, 2], vec![1_000_000, 1, 0], 65535),
        // Max weight limit clipping.
        c(vec![0, 1, 2, 3], vec![100, 1, 1, 1], 26214),
        c(vec![0, 1, 2, 3, 4], vec![50, 30, 10, 5, 5], 16384),
        c(vec![0, 1], vec![5, 1], 26214),
        c(vec![0, 1, 2, 3], vec![7, 7, 7, 7], 1),
        c(vec![0, 1, 2], vec![0, 0, 0], 26214),
        // The validator's own single uid is exempt from clipping.
        Case {
            uids: vec![4],
            weights: vec![8],
            limit: 100,
            self_uid: Some(4),
        },
        // Large weights, exact in f64.
        c(vec![0, 1, 2], vec![1 << 52, (1 << 52) - 1, 3], 65535),
    ];
    let mut s = 42u64;
    for (i, limit) in [65535u16, 65535, 32768, 6553, 655, 30000]
        .into_iter()
        .enumerate()
    {
        let n = 256;
        let uids: Vec<u16> = (0..n as u16).collect();
        let weights: Vec<u64> = (0..n)
            .map(|j| match (i + j) % 7 {
                0 => 0,
                1 => splitmix(&mut s) % 10,
                _ => splitmix(&mut s) % 1_000_000_000,
            })
            .collect();
        v.push(c(uids, weights, limit));
    }
    v
}

#[test]
fn conform_matches_the_python_sdk() {
    let Some(py) = common::python() else { return };
    let cases = cases();
    let input: Vec<Value> = cases
        .iter()
        .map(|c| {
            json!({"uids": c.uids, "weights": c.weights, "max_weight_limit": c.limit,
                   "self_uid": c.self_uid})
        })
        .collect();
    let out = common::run_verifier(&py, "weights.py", &[], &Value::Array(input).to_string());
    let sdk: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(sdk.len(), cases.len());
    for (i, (c, s)) in cases.iter().zip(&sdk).enumerate() {
        let ours = conform(&c.uids, &c.weights, c.limit, c.self_uid).unwrap();
        if s.get("error").is_some() {
            assert!(
                ours.0.is_empty(),
                "case {i}: SDK refused ({s}), we gave {ours:?}"
            );
            continue;
        }
        let uids: Vec<u16> = serde_json::from_value(s[0].clone()).unwrap();
        let vals: Vec<u16> = serde_json::from_value(s[1].clone()).unwrap();
        assert_eq!(ours, (uids, vals), "case {i} (limit {})", c.limit);
    }
}
