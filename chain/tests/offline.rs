//! SubtensorModule calls and extrinsics built by subxt from real Bittensor metadata
//! (`chain/tests/data`, the team's `../shared/chain` files), checked byte for byte and by independent code: `scalecodec` +
//! `py-sr25519-bindings` decode our signed extrinsic and verify its signature;
//! `bittensor-drand` decrypts our timelocked commit with drand's round-1000 signature.

mod common;

use parity_scale_codec::Encode;
use platform_chain::extrinsic::{
    ChainParams, ChainSigner, RuntimeMetadata, WeightsCall, call_data, sign_offline,
};
use platform_chain::pallet;
use platform_chain::timelock::{self, WeightsTlockPayload};
use serde_json::{Value, json};

const ALICE: &str = "d43593c715fdd31c61141abd04a99fd6822c8558854ccde39a5684e7a56da27d";
/// Bittensor finney's genesis hash.
const FINNEY_GENESIS: &str = "2f0555cc76fc2840a25a6ea3b9637146806f1f44b090c175ffde2a7e5ab36c03";
const ROUND_1000: &str = "b44679b9a59af2ec876b1a6b1ad52ea9b1615fc3982b19576350f93447cb1125e342b73a8dd2bacbe47e4b6b63ed5e39";

/// Run a verifier script on a JSON request; its JSON answer.
fn verify(py: &std::path::PathBuf, script: &str, args: &[&str], req: &Value) -> Value {
    serde_json::from_str(&common::run_verifier(py, script, args, &req.to_string())).unwrap()
}

/// What a signature on finney commits to, with `md`'s runtime version.
fn finney_params(md: &RuntimeMetadata) -> ChainParams {
    let (spec_version, transaction_version) = md.runtime_version().unwrap();
    let mut genesis_hash = [0u8; 32];
    hex::decode_to_slice(FINNEY_GENESIS, &mut genesis_hash).unwrap();
    ChainParams {
        genesis_hash,
        spec_version,
        transaction_version,
    }
}

fn metadata(file: &str) -> RuntimeMetadata {
    let bytes = std::fs::read(common::reference_data().join(file)).unwrap();
    RuntimeMetadata::from_scale(&bytes).unwrap()
}

fn calls() -> Vec<(WeightsCall, &'static str, u8, Vec<u8>)> {
    let uids = vec![0u16, 1, 2];
    let values = vec![65535u16, 32768, 1];
    let salt = vec![1u16, 2, 3, 4, 5, 6, 7, 8];
    vec![
        (
            WeightsCall::SetWeights {
                netuid: 1,
                uids: uids.clone(),
                values: values.clone(),
                version_key: 42,
            },
            "070001000c0000010002000cffff008001002a00000000000000",
            pallet::SET_WEIGHTS,
            (1u16, uids.clone(), values.clone(), 42u64).encode(),
        ),
        (
            WeightsCall::CommitWeights {
                netuid: 1,
                hash: [0xab; 32],
            },
            "07600100abababababababababababababababababababababababababababababababab",
            pallet::COMMIT_WEIGHTS,
            (1u16, [0xabu8; 32]).encode(),
        ),
        (
            WeightsCall::RevealWeights {
                netuid: 1,
                uids: uids.clone(),
                values: values.clone(),
                salt: salt.clone(),
                version_key: 42,
            },
            "076101000c0000010002000cffff0080010020010002000300040005000600070008002a00000000000000",
            pallet::REVEAL_WEIGHTS,
            (1u16, uids, values, salt, 42u64).encode(),
        ),
        (
            WeightsCall::CommitTimelocked {
                netuid: 1,
                commit: vec![1, 2, 3],
                reveal_round: 1000,
                commit_reveal_version: 4,
            },
            "077101000c010203e8030000000000000400",
            pallet::COMMIT_TIMELOCKED_WEIGHTS,
            (1u16, vec![1u8, 2, 3], 1000u64, 4u16).encode(),
        ),
    ]
}

/// The mechanism forms of the weight calls (mechanism 2 of subnet 1): call bytes, the call
/// index, and the SCALE of the arguments by hand.
fn mechanism_calls() -> Vec<(WeightsCall, &'static str, u8, Vec<u8>)> {
    let uids = vec![0u16, 1, 2];
    let values = vec![65535u16, 32768, 1];
    let salt = vec![1u16, 2, 3, 4, 5, 6, 7, 8];
    vec![
        (
            WeightsCall::SetMechanismWeights {
                netuid: 1,
                mecid: 2,
                uids: uids.clone(),
                values: values.clone(),
                version_key: 42,
            },
            "07770100020c0000010002000cffff008001002a00000000000000",
            pallet::SET_MECHANISM_WEIGHTS,
            (1u16, 2u8, uids.clone(), values.clone(), 42u64).encode(),
        ),
        (
            WeightsCall::CommitMechanismWeights {
                netuid: 1,
                mecid: 2,
                hash: [0xab; 32],
            },
            "0773010002abababababababababababababababababababababababababababababababab",
            pallet::COMMIT_MECHANISM_WEIGHTS,
            (1u16, 2u8, [0xabu8; 32]).encode(),
        ),
        (
            WeightsCall::RevealMechanismWeights {
                netuid: 1,
                mecid: 2,
                uids: uids.clone(),
                values: values.clone(),
                salt: salt.clone(),
                version_key: 42,
            },
            "07740100020c0000010002000cffff0080010020010002000300040005000600070008002a00000000000000",
            pallet::REVEAL_MECHANISM_WEIGHTS,
            (1u16, 2u8, uids, values, salt, 42u64).encode(),
        ),
        (
            WeightsCall::CommitTimelockedMechanism {
                netuid: 1,
                mecid: 2,
                commit: vec![1, 2, 3],
                reveal_round: 1000,
                commit_reveal_version: 4,
            },
            "07760100020c010203e8030000000000000400",
            pallet::COMMIT_TIMELOCKED_MECHANISM_WEIGHTS,
            (1u16, 2u8, vec![1u8, 2, 3], 1000u64, 4u16).encode(),
        ),
    ]
}

#[test]
fn golden_call_bytes_from_finney_metadata() {
    let md = metadata("finney_2026-04-21.scale");
    assert_eq!(md.runtime_version().unwrap(), (393, 1));
    for (call, golden, index, args) in calls().into_iter().chain(mechanism_calls()) {
        let bytes = call_data(&md, &call).unwrap();
        assert_eq!(hex::encode(&bytes), golden, "{}", call.name());
        // The same bytes by hand: pallet index, call index, SCALE of the arguments.
        let mut by_hand = vec![pallet::INDEX, index];
        by_hand.extend(args);
        assert_eq!(bytes, by_hand, "{}", call.name());
    }
    // A call the runtime does not have, or arguments of the wrong shape, are errors.
    assert!(!md.has_call("set_weightz"));
    assert!(md.has_call("commit_timelocked_weights"));
    // A runtime from before mechanisms has none of their calls: encoding one is an error.
    let spec218 = metadata("raonet_spec218_v14.scale");
    for (call, ..) in mechanism_calls() {
        assert!(md.has_call(call.name()) && !spec218.has_call(call.name()));
        assert!(call_data(&spec218, &call).is_err(), "{}", call.name());
    }
}

/// Each mechanism call, signed by us, decoded by `scalecodec` with the mainnet metadata:
/// the call it names and its arguments, and the signature verifies.
#[test]
fn signed_mechanism_calls_decode_with_scalecodec() {
    let md = metadata("mainnet_v14_2025-11.scale");
    let Some(py) = common::python() else { return };
    let params = finney_params(&md);
    let (spec_version, transaction_version) = (params.spec_version, params.transaction_version);
    let alice = ChainSigner::from_uri("//Alice").unwrap();
    let uids = json!([0, 1, 2]);
    let values = json!([65535, 32768, 1]);
    let expected = [
        json!({"netuid": 1, "mecid": 2, "dests": uids, "weights": values, "version_key": 42}),
        json!({"netuid": 1, "mecid": 2, "commit_hash": format!("0x{}", "ab".repeat(32))}),
        json!({"netuid": 1, "mecid": 2, "uids": uids, "values": values,
               "salt": [1, 2, 3, 4, 5, 6, 7, 8], "version_key": 42}),
        // scalecodec decodes a BoundedVec<u8> as a string of its bytes.
        json!({"netuid": 1, "mecid": 2, "commit": "\u{1}\u{2}\u{3}", "reveal_round": 1000,
               "commit_reveal_version": 4}),
    ];
    for ((call, ..), args) in mechanism_calls().into_iter().zip(expected) {
        let ext = sign_offline(&md, params, &alice, 3, &call).unwrap();
        let req = json!({
            "metadata": common::reference_data().join("mainnet_v14_2025-11.scale"),
            "extrinsic": hex::encode(&ext.bytes),
            "genesis_hash": FINNEY_GENESIS,
            "spec_version": spec_version,
            "transaction_version": transaction_version,
        });
        let out = verify(&py, "extrinsic.py", &[], &req);
        assert_eq!(out["call_module"], "SubtensorModule");
        assert_eq!(out["call_function"], call.name());
        assert_eq!(out["args"], args, "{}", call.name());
        assert_eq!(out["signature_valid"], true, "{}", call.name());
    }
}

/// The v2 commit hash over a mechanism's storage index, against `scalecodec` + blake2b over
/// the index the Bittensor SDK computes (and the README's vector for mechanism 0).
#[test]
fn mechanism_commit_hashes_match_an_independent_encoder() {
    let Some(py) = common::python() else { return };
    let alice: [u8; 32] = hex::decode(ALICE).unwrap().try_into().unwrap();
    let mut cases = Vec::new();
    let mut ours = Vec::new();
    for (netuid, mecid, k) in [
        (1u16, 0u8, 42u64),
        (1, 1, 42),
        (1, 2, 7),
        (4095, 15, 1),
        (77, 3, 0),
    ] {
        let (uids, values, salt) = (
            [0u16, 1, 2],
            [65535u16, 32768, 1],
            [1u16, 2, 3, 4, 5, 6, 7, 8],
        );
        cases.push(
            json!({"hotkey": ALICE, "netuid": netuid, "mecid": mecid, "uids": uids,
                          "values": values, "salt": salt, "version_key": k}),
        );
        let index = platform_chain::storage_index(netuid, mecid).unwrap();
        let hash = platform_chain::weights::commit_hash(&alice, index, &uids, &values, &salt, k);
        ours.push(json!({"index": index, "hash": hex::encode(hash)}));
    }
    let out = verify(&py, "commit_hash.py", &[], &Value::Array(cases));
    assert_eq!(out, Value::Array(ours));
    assert_eq!(
        out[0]["hash"], "4ee856165f83e43763e9b6f848574df3fb823bdfe08910858f9d17d96b317bbc",
        "the reference vector (mechanism 0 of subnet 1)"
    );
    assert_eq!(platform_chain::storage_index(4096, 0), None);
    assert_eq!(platform_chain::storage_index(1, 16), None);
}

#[test]
fn signed_set_weights_verifies_with_scalecodec_and_sr25519() {
    let md = metadata("mainnet_v14_2025-11.scale");
    let Some(py) = common::python() else { return };
    let params = finney_params(&md);
    let (spec_version, transaction_version) = (params.spec_version, params.transaction_version);
    let alice = ChainSigner::from_uri("//Alice").unwrap();
    assert_eq!(hex::encode(alice.public()), ALICE);
    let (call, ..) = calls().remove(0);
    let ext = sign_offline(&md, params, &alice, 7, &call).unwrap();

    let request = |extrinsic: &[u8]| {
        json!({
            "metadata": common::reference_data().join("mainnet_v14_2025-11.scale"),
            "extrinsic": hex::encode(extrinsic),
            "genesis_hash": FINNEY_GENESIS,
            "spec_version": spec_version,
            "transaction_version": transaction_version,
        })
    };
    let req = request(&ext.bytes);
    let out = verify(&py, "extrinsic.py", &[], &req);
    assert_eq!(out["address"], format!("0x{ALICE}"));
    assert_eq!(out["call_module"], "SubtensorModule");
    assert_eq!(out["call_function"], "set_weights");
    assert_eq!(
        out["args"],
        json!({"netuid": 1, "dests": [0, 1, 2], "weights": [65535, 32768, 1], "version_key": 42})
    );
    assert_eq!(out["nonce"], 7);
    assert_eq!(
        out["payload"],
        hex::encode(&ext.signer_payload),
        "same signing payload"
    );
    assert_eq!(out["signature_valid"], true);

    // A flipped byte in the signature no longer verifies (the check can fail).
    let mut bad = ext.bytes.clone();
    bad[40] ^= 1; // inside the 64-byte signature, after length, version, address
    let req = request(&bad);
    let out = verify(&py, "extrinsic.py", &[], &req);
    assert_eq!(out["signature_valid"], false);
}

#[test]
fn timelocked_commit_decrypts_with_bittensor_drand() {
    let Some(py) = common::python() else { return };
    let payload = WeightsTlockPayload {
        hotkey: hex::decode(ALICE).unwrap(),
        uids: vec![0, 1, 2, 7],
        values: vec![65535, 32768, 1, 12],
        version_key: 42,
    };
    let commit = timelock::encrypt(&payload, 1000).unwrap();
    let req =
        json!({"commit": hex::encode(&commit), "reveal_round": 1000, "signature": ROUND_1000});
    let out = verify(&py, "timelock.py", &["decrypt"], &req);
    assert_eq!(
        out,
        json!({"hotkey": ALICE, "uids": [0, 1, 2, 7], "values": [65535, 32768, 1, 12],
               "version_key": 42})
    );
}

#[test]
fn bittensor_drand_commits_decrypt_with_ours() {
    let Some(py) = common::python() else { return };
    let payload = WeightsTlockPayload {
        hotkey: hex::decode(ALICE).unwrap(),
        uids: vec![3, 4],
        values: vec![65535, 9],
        version_key: 7,
    };
    let req = json!({"plaintext": hex::encode(payload.encode()), "reveal_round": 1000});
    let out = verify(&py, "timelock.py", &["encrypt"], &req);
    let commit = hex::decode(out["commit"].as_str().unwrap()).unwrap();
    assert_eq!(timelock::decrypt(&commit, ROUND_1000).unwrap(), payload);
}

/// What `commit_mode = "auto"` sees in real runtimes: finney offers timelocked and hash
/// commits; subtensor spec 218 (where the old default `timelocked` failed only at submit
/// time) offers hash commits alone.
#[test]
fn commit_calls_in_real_runtimes() {
    let (finney, spec218) = (
        metadata("finney_2026-04-21.scale"),
        metadata("raonet_spec218_v14.scale"),
    );
    for (md, timelocked) in [(&finney, true), (&spec218, false)] {
        assert!(md.has_call("commit_weights"));
        assert!(md.has_call("reveal_weights"));
        assert_eq!(md.has_call("commit_timelocked_weights"), timelocked);
    }
}

/// The reveal round of a timelocked commit, against the Bittensor SDK's own
/// `get_encrypted_commit_v2` (bittensor-drand) on the same chain state: stateful schedules
/// (owner-triggered and overdue epochs, several reveal periods, fast blocks) and the
/// schedules of runtimes without that state, as `EpochSchedule::legacy` gives them.
#[test]
fn reveal_rounds_match_the_sdks_stateful_epoch_model() {
    use platform_chain::schedule::{EpochSchedule, MAX_TEMPO};
    let Some(py) = common::python() else { return };
    let base = EpochSchedule {
        last_epoch_block: 100,
        pending_epoch_at: 0,
        epoch_index: 5,
        tempo: 50,
        blocks_since_last_step: 20,
        head: 120,
    };
    let mut cases: Vec<(EpochSchedule, u64, f64)> = vec![
        (base, 1, 12.0),
        (base, 3, 12.0),
        (base, 1, 0.25),
        (
            EpochSchedule {
                pending_epoch_at: 125,
                ..base
            },
            1,
            12.0,
        ),
        (
            EpochSchedule {
                pending_epoch_at: 121,
                ..base
            },
            2,
            12.0,
        ),
        (
            EpochSchedule {
                blocks_since_last_step: MAX_TEMPO + 1,
                ..base
            },
            1,
            12.0,
        ),
        (
            EpochSchedule {
                head: 149,
                blocks_since_last_step: 49,
                ..base
            },
            1,
            12.0,
        ),
        (
            EpochSchedule {
                head: 150,
                blocks_since_last_step: 50,
                ..base
            },
            1,
            12.0,
        ),
        (
            EpochSchedule {
                tempo: 360,
                last_epoch_block: 7_000_000,
                head: 7_000_359,
                blocks_since_last_step: 359,
                ..base
            },
            1,
            12.0,
        ),
    ];
    for (netuid, tempo, head) in [
        (1u16, 10u16, 0u64),
        (1, 10, 12),
        (1, 10, 19),
        (7, 99, 5_000),
        (64, 360, 7_123_456),
    ] {
        cases.push((EpochSchedule::legacy(netuid, tempo, head), 1, 12.0));
        cases.push((EpochSchedule::legacy(netuid, tempo, head), 2, 12.0));
    }
    let request: Vec<Value> = cases
        .iter()
        .map(|(s, period, bt)| {
            json!({"last_epoch_block": s.last_epoch_block, "pending_epoch_at": s.pending_epoch_at,
                   "subnet_epoch_index": s.epoch_index, "tempo": s.tempo,
                   "blocks_since_last_step": s.blocks_since_last_step, "current_block": s.head,
                   "reveal_period": period, "block_time": bt})
        })
        .collect();
    let out = verify(&py, "reveal_round.py", &[], &Value::Array(request));
    for ((s, period, bt), sdk) in cases.iter().zip(out.as_array().unwrap()) {
        let round = sdk["round"]
            .as_u64()
            .unwrap_or_else(|| panic!("{s:?}: {sdk}"));
        let lo = s
            .reveal_round(*period, *bt, sdk["before"].as_f64().unwrap())
            .unwrap();
        let hi = s
            .reveal_round(*period, *bt, sdk["after"].as_f64().unwrap())
            .unwrap();
        assert!(
            (lo..=hi).contains(&round),
            "{s:?} period {period}: the SDK says {round}, we say {lo}..={hi}"
        );
    }
}
