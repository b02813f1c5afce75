//! `SubnetInfoRuntimeApi::get_metagraph` answers written by the Bittensor SDK's own codec
//! (bt-decode, typed by finney's runtime metadata: `chain/tests/verifiers/metagraph.py`) and
//! read by ours. No answer recorded from a live node is available here; these are the
//! closest: the SDK's encoder and the real runtime's types.

mod common;

use platform_chain::BlockInfo;
use platform_chain::StakeKind;
use platform_chain::extrinsic::RuntimeMetadata;
use platform_chain::subtensor::metagraph_from_response;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

fn finney() -> RuntimeMetadata {
    let path = common::reference_data().join("finney_2026-04-21.scale");
    RuntimeMetadata::from_scale(&std::fs::read(path).unwrap()).unwrap()
}

fn encode(py: &std::path::PathBuf, req: &Value) -> (Vec<u8>, Vec<u8>) {
    let md = common::reference_data().join("finney_2026-04-21.scale");
    let out: Value = serde_json::from_str(&common::run_verifier(
        py,
        "metagraph.py",
        &[md.to_str().unwrap()],
        &req.to_string(),
    ))
    .unwrap();
    let bytes = |k: &str| hex::decode(out[k].as_str().unwrap()).unwrap();
    (bytes("some"), bytes("none"))
}

#[test]
fn metagraph_answers_written_by_the_sdks_codec_decode_to_the_same_neurons() {
    let Some(py) = common::python() else {
        return;
    };
    let md = finney();
    // 256 neurons: hotkeys from a hash, every third a validator, stakes up to u64::MAX.
    let neurons: Vec<([u8; 32], bool, u64)> = (0..256u32)
        .map(|i| {
            let hotkey: [u8; 32] = Sha256::digest(i.to_le_bytes()).into();
            let stake = match i {
                0 => u64::MAX,
                1 => 0,
                _ => u64::from(i) * 1_000_000_007,
            };
            (hotkey, i % 3 == 0, stake)
        })
        .collect();
    let req = json!({
        "netuid": 42,
        "block": 5_000_000u64,
        "neurons": neurons.iter().map(|(h, p, s)| json!({
            "hotkey": hex::encode(h), "permit": p, "alpha_stake": s,
        })).collect::<Vec<_>>(),
    });
    let (some, none) = encode(&py, &req);
    let block = BlockInfo {
        number: 5_000_000,
        hash: [7; 32],
    };
    let mg = metagraph_from_response(md.subxt(), 42, block, &some)
        .unwrap()
        .expect("Some");
    assert_eq!(mg.neurons.len(), 256);
    assert_eq!(mg.stake_kind, StakeKind::StakeWeight);
    assert_eq!(mg.block, block);
    for (uid, (n, (hotkey, permit, stake))) in mg.neurons.iter().zip(&neurons).enumerate() {
        assert_eq!(usize::from(n.uid), uid);
        assert_eq!(
            (n.hotkey, n.validator_permit, n.stake),
            (*hotkey, *permit, *stake)
        );
    }
    assert_eq!(
        metagraph_from_response(md.subxt(), 42, block, &none).unwrap(),
        None,
        "no such subnet"
    );
    // Asked for another subnet than the answer's: refused, not taken.
    let e = metagraph_from_response(md.subxt(), 41, block, &some).unwrap_err();
    assert!(
        e.to_string().contains("answer for subnet 42, asked 41"),
        "{e}"
    );
    // Every truncation is an error, never a shorter metagraph.
    for cut in [1, 2, 33, some.len() / 2, some.len() - 1] {
        assert!(
            metagraph_from_response(md.subxt(), 42, block, &some[..cut]).is_err(),
            "cut at {cut}"
        );
    }
}

#[test]
fn the_answer_the_unit_tests_serve_is_the_sdks_codec_output() {
    let Some(py) = common::python() else {
        return;
    };
    let neurons: Vec<Value> = (1..=3u8)
        .map(|i| {
            json!({
                "hotkey": hex::encode([i; 32]),
                "permit": i != 2,
                "alpha_stake": 1100 * u64::from(i),
            })
        })
        .collect();
    let (some, _) = encode(&py, &json!({"netuid": 1, "block": 100, "neurons": neurons}));
    let served =
        std::fs::read_to_string(common::repo().join("chain/tests/data/get_metagraph_netuid1.hex"))
            .unwrap();
    assert_eq!(hex::encode(some), served.trim());
}
