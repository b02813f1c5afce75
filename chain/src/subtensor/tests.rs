//! Tests of `subtensor`.

use super::*;
use crate::Neuron;
use crate::extrinsic::RuntimeMetadata;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use subxt::dynamic::Value as DynValue;
use subxt_rpcs::client::MockRpcClient;

const HEAD: &str = "0x1111111111111111111111111111111111111111111111111111111111111111";
const GENESIS: &str = "0x2f0555cc76fc2840a25a6ea3b9637146806f1f44b090c175ffde2a7e5ab36c03";

/// How the fake node misbehaves.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Healthy,
    /// Every call fails as a dropped connection does.
    Disconnected,
    /// Calls never answer.
    Hung,
    /// Storage answers are not hex strings.
    Garbage,
}

/// A fake subtensor node answering the legacy JSON-RPC methods from the real finney
/// metadata and an in-memory storage map.
struct FakeNode {
    metadata_hex: String,
    storage: HashMap<String, String>,
    mode: Mode,
    /// `SubnetInfoRuntimeApi_get_metagraph`'s answer (hex), if it answers.
    metagraph_api: Option<String>,
    /// The arguments each `get_metagraph` call came with (hex).
    api_args: Vec<String>,
    /// Storage reads answered.
    reads: usize,
}

fn finney() -> Vec<u8> {
    let p =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/finney_2026-04-21.scale");
    std::fs::read(p).expect("chain/tests/data/finney_2026-04-21.scale, in the repository")
}

/// The bt-decode-encoded `get_metagraph` answer for subnet 1 (see `metagraph_answer`).
fn recorded_metagraph() -> String {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/get_metagraph_netuid1.hex");
    format!("0x{}", std::fs::read_to_string(p).unwrap().trim())
}

fn respond(node: &Arc<Mutex<FakeNode>>, name: &str, params: Option<Value>) -> Option<Value> {
    let mut n = node.lock().unwrap();
    if n.mode == Mode::Garbage && name == "state_getStorage" {
        return Some(json!(12345));
    }
    let p0 = params.as_ref().and_then(|p| p.get(0)).cloned();
    Some(match name {
        "rpc_methods" => json!({"methods": [
            "chain_getBlockHash", "chain_getFinalizedHead", "chain_getHeader",
            "state_getRuntimeVersion", "state_getMetadata", "state_getStorage",
            "state_call", "system_chain"]}),
        "chain_getBlockHash" => match p0 {
            Some(Value::Number(n)) if n.as_u64() == Some(0) => json!(GENESIS),
            _ => json!(HEAD),
        },
        "chain_getFinalizedHead" => json!(HEAD),
        "chain_getHeader" => json!({
            "parentHash": GENESIS, "number": "0x64",
            "stateRoot": HEAD, "extrinsicsRoot": HEAD, "digest": {"logs": []}}),
        "state_getRuntimeVersion" => json!({
            "specName": "node-subtensor", "implName": "node-subtensor",
            "authoringVersion": 1, "specVersion": 393, "implVersion": 1,
            "apis": [], "transactionVersion": 1, "stateVersion": 1}),
        "state_getMetadata" => json!(n.metadata_hex),
        "state_call" => {
            use parity_scale_codec::Encode;
            let method = p0?.as_str()?.to_string();
            if method == "SubnetInfoRuntimeApi_get_metagraph" {
                let args = params.as_ref()?.get(1)?.as_str()?.to_string();
                n.api_args.push(args);
                return n.metagraph_api.clone().map(Value::String);
            }
            let bytes = match method.as_str() {
                "Core_version" => (
                    "node-subtensor".to_string(),
                    "node-subtensor".to_string(),
                    1u32,
                    393u32,
                    1u32,
                    Vec::<([u8; 8], u32)>::new(),
                    1u32,
                    1u8,
                )
                    .encode(),
                "Metadata_metadata_versions" => vec![14u32, 15, 16].encode(),
                "Metadata_metadata_at_version" => {
                    let md = hex::decode(n.metadata_hex.trim_start_matches("0x")).ok()?;
                    Some(md).encode()
                }
                _ => return None,
            };
            json!(format!("0x{}", hex::encode(bytes)))
        }
        "state_getStorage" => {
            n.reads += 1;
            let key = p0?.as_str()?.to_string();
            return Some(n.storage.get(&key).map_or(Value::Null, |v| json!(v)));
        }
        _ => return None,
    })
}

fn client(node: &Arc<Mutex<FakeNode>>) -> Result<Subtensor, ChainError> {
    let n = node.clone();
    let mock = MockRpcClient::builder()
        .method_fallback(move |name, params| {
            let params: Option<Value> = params.and_then(|p| serde_json::from_str(p.get()).ok());
            let mode = n.lock().unwrap().mode;
            let r = respond(&n, &name, params);
            async move {
                match mode {
                    // (`DisconnectedWillReconnect` would make subxt retry until our
                    // timeout; against a mock that retry is a busy loop.)
                    Mode::Disconnected => {
                        Err(subxt_rpcs::Error::Client("connection reset by peer".into()))
                    }
                    Mode::Hung => std::future::pending().await,
                    _ => r.ok_or_else(|| subxt_rpcs::Error::Client("method not found".into())),
                }
            }
        })
        .build();
    Subtensor::with_rpc(
        runtime().unwrap(),
        RpcClient::new(mock),
        ChainSigner::from_uri("//Alice").unwrap(),
        Duration::from_secs(2),
    )
}

/// Storage keys computed by subxt's own key encoding for the finney metadata.
fn key<K>(md: &RuntimeMetadata, entry: &str, parts: K) -> String
where
    K: subxt::ext::frame_decode::storage::IntoEncodableValues
        + subxt::ext::frame_decode::storage::IntoDecodableValues,
{
    let config = SubstrateConfig::builder()
        .set_spec_version_for_block_ranges([subxt::config::substrate::SpecVersionForRange {
            block_range: 0..u64::MAX,
            spec_version: 393,
            transaction_version: 1,
        }])
        .set_metadata_for_spec_versions([(393, md.0.clone())])
        .build();
    let client = subxt::OfflineClient::new_with_config(config);
    let at = client.at_block(0u64).unwrap();
    let addr = dynamic::storage::<K, DynValue>("SubtensorModule", entry);
    let k = at.storage().entry(addr).unwrap().fetch_key(parts).unwrap();
    format!("0x{}", hex::encode(k))
}

fn fake_node() -> (Arc<Mutex<FakeNode>>, Vec<Neuron>) {
    use parity_scale_codec::Encode;
    let bytes = finney();
    let md = RuntimeMetadata::from_scale(&bytes).unwrap();
    let neurons: Vec<Neuron> = (0..3u16)
        .map(|uid| Neuron {
            uid,
            hotkey: [uid as u8 + 1; 32],
            stake: 1_000 * (u64::from(uid) + 1),
            validator_permit: uid != 1,
        })
        .collect();
    let mut storage = HashMap::new();
    let hexv = |b: Vec<u8>| format!("0x{}", hex::encode(b));
    storage.insert(key(&md, "NetworksAdded", (1u16,)), hexv(true.encode()));
    storage.insert(key(&md, "SubnetworkN", (1u16,)), hexv(3u16.encode()));
    let permits: Vec<bool> = neurons.iter().map(|n| n.validator_permit).collect();
    storage.insert(key(&md, "ValidatorPermit", (1u16,)), hexv(permits.encode()));
    for n in &neurons {
        storage.insert(key(&md, "Keys", (1u16, n.uid)), hexv(n.hotkey.to_vec()));
        storage.insert(key(&md, "Uids", (1u16, n.hotkey)), hexv(n.uid.encode()));
        storage.insert(
            key(&md, "TotalHotkeyAlpha", (n.hotkey, 1u16)),
            hexv(n.stake.encode()),
        );
    }
    storage.insert(key(&md, "Tempo", (1u16,)), hexv(99u16.encode()));
    storage.insert(
        key(&md, "Weights", (1u16, 0u16)),
        hexv(vec![(0u16, 65535u16), (2, 1234)].encode()),
    );
    storage.insert(
        key(&md, "MaxWeightsLimit", (1u16,)),
        hexv(32768u16.encode()),
    );
    // Subnet 1 has two mechanisms; mechanism 1's weights live at storage index 4096 + 1.
    storage.insert(
        key(&md, "MechanismCountCurrent", (1u16,)),
        hexv(2u8.encode()),
    );
    storage.insert(
        key(&md, "Weights", (4097u16, 0u16)),
        hexv(vec![(1u16, 65535u16)].encode()),
    );
    let node = FakeNode {
        metadata_hex: format!("0x{}", hex::encode(&bytes)),
        storage,
        mode: Mode::Healthy,
        metagraph_api: Some(recorded_metagraph()),
        api_args: Vec::new(),
        reads: 0,
    };
    (Arc::new(Mutex::new(node)), neurons)
}

#[test]
fn metagraph_and_hyperparams_read_through_rpc() {
    let (node, neurons) = fake_node();
    let mut c = client(&node).unwrap();
    c.metagraph_source = MetagraphSource::Storage;
    let mg = c.metagraph(1).unwrap();
    assert_eq!(mg.neurons, neurons);
    assert_eq!(mg.stake_kind, crate::StakeKind::HotkeyAlpha);
    assert!(node.lock().unwrap().api_args.is_empty(), "storage only");
    assert_eq!(mg.block.number, 100);
    assert_eq!(mg.block.hash, [0x11; 32]);
    assert_eq!(c.weights(1, 0).unwrap(), vec![(0, 65535), (2, 1234)]);
    let reads = node.lock().unwrap().reads;
    assert_eq!(c.uid_of(1, &neurons[2].hotkey).unwrap(), Some(2));
    assert_eq!(c.uid_of(1, &[0xee; 32]).unwrap(), None, "not registered");
    assert_eq!(
        node.lock().unwrap().reads - reads,
        4,
        "a uid is one read (and the subnet's existence), not the metagraph"
    );
    assert_eq!(
        c.uid_of(2, &neurons[0].hotkey),
        Err(ChainError::Pallet(PalletError::SubnetNotExists))
    );
    assert_eq!(c.weights(1, 1).unwrap(), vec![], "none set reads empty");
    assert_eq!(c.mechanism_count(1).unwrap(), 2);
    assert_eq!(c.mechanism_weights(1, 1, 0).unwrap(), vec![(1, 65535)]);
    assert_eq!(
        c.mechanism_count(2),
        Err(ChainError::Pallet(PalletError::SubnetNotExists))
    );
    let hp = c.hyperparams(1).unwrap();
    assert_eq!(hp.tempo, 99);
    assert_eq!(hp.max_weight_limit, 32768);
    for e in [
        c.metagraph(2).unwrap_err(),
        c.hyperparams(2).map(|_| ()).unwrap_err(),
    ] {
        assert_eq!(
            e,
            ChainError::Pallet(PalletError::SubnetNotExists),
            "a subnet that does not exist is named so, not read as defaults"
        );
    }
}

#[test]
fn the_metagraph_is_one_runtime_api_call_where_the_runtime_has_it() {
    let (node, neurons) = fake_node();
    let c = client(&node).unwrap();
    let before = node.lock().unwrap().reads;
    let mg = c.metagraph(1).unwrap();
    let n = node.lock().unwrap();
    assert_eq!(n.reads, before, "no storage read");
    assert_eq!(
        n.api_args,
        vec!["0x0100".to_string()],
        "one call, netuid 1 as a u16"
    );
    drop(n);
    // The SDK's encoding of the same neurons with their stake weights (1.1× the alpha).
    let want: Vec<Neuron> = neurons
        .iter()
        .map(|x| Neuron {
            stake: x.stake * 11 / 10,
            ..x.clone()
        })
        .collect();
    assert_eq!(mg.neurons, want);
    assert_eq!(mg.stake_kind, crate::StakeKind::StakeWeight);
    assert_eq!((mg.block.number, mg.block.hash), (100, [0x11; 32]));
    assert_eq!(
        c.metagraph_reads().unwrap(),
        "one SubnetInfoRuntimeApi::get_metagraph call (stakes: stake weights)"
    );

    // `None`: the subnet does not exist.
    node.lock().unwrap().metagraph_api = Some("0x00".into());
    assert_eq!(
        c.metagraph(1).unwrap_err(),
        ChainError::Pallet(PalletError::SubnetNotExists)
    );
    // A truncated answer, an answer for another subnet: malformed, said so.
    let full = recorded_metagraph();
    node.lock().unwrap().metagraph_api = Some(full[..full.len() - 2].to_string());
    let e = c.metagraph(1).unwrap_err();
    assert_eq!(e.label(), "malformed", "{e}");
    assert!(e.to_string().contains("get_metagraph"), "{e}");
    node.lock().unwrap().metagraph_api = Some(full.replacen("0x0104", "0x0108", 1));
    let e = c.metagraph(1).unwrap_err();
    assert!(
        e.to_string().contains("answer for subnet 2, asked 1"),
        "{e}"
    );
}

#[test]
fn the_runtime_api_is_found_in_the_metadata_and_required_only_when_configured() {
    let md = |f: &str| {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data")
            .join(f);
        RuntimeMetadata::from_scale(&std::fs::read(p).unwrap()).unwrap()
    };
    assert!(has_metagraph_api(&md("finney_2026-04-21.scale").0));
    // V14 metadata carries no runtime APIs: `auto` reads storage there.
    assert!(!has_metagraph_api(&md("raonet_spec218_v14.scale").0));
    let (node, _) = fake_node();
    let mut c = client(&node).unwrap();
    c.metagraph_source = MetagraphSource::Storage;
    assert!(c.metagraph_reads().unwrap().starts_with("storage reads"));
}

#[test]
fn commit_support_reads_the_runtimes_calls_and_version() {
    use parity_scale_codec::Encode;
    let (node, _) = fake_node();
    let md = RuntimeMetadata::from_scale(&finney()).unwrap();
    let c = client(&node).unwrap();
    node.lock().unwrap().storage.insert(
        key(&md, "CommitRevealWeightsVersion", ()),
        format!("0x{}", hex::encode(4u16.encode())),
    );
    assert_eq!(
        c.commit_support().unwrap(),
        CommitSupport {
            hash: true,
            timelocked: Some(4)
        }
    );
    // The version is the runtime's, never assumed.
    node.lock().unwrap().storage.insert(
        key(&md, "CommitRevealWeightsVersion", ()),
        format!("0x{}", hex::encode(5u16.encode())),
    );
    assert_eq!(c.commit_support().unwrap().timelocked, Some(5));
}

#[test]
fn disconnects_hangs_and_garbage_are_clear_errors_and_the_client_recovers() {
    let (node, neurons) = fake_node();
    let mut c = client(&node).unwrap();
    c.metagraph_source = MetagraphSource::Storage;
    for (mode, expect, label) in [
        (Mode::Disconnected, "connection reset", "connection"),
        (Mode::Hung, "timed out: no answer within", "timeout"),
        (Mode::Garbage, "deserialize", "connection"),
    ] {
        node.lock().unwrap().mode = mode;
        let e = c.metagraph(1).unwrap_err();
        assert_eq!(e.label(), label, "{e}");
        assert!(e.to_string().contains(expect), "{e}");
        node.lock().unwrap().mode = Mode::Healthy;
        assert_eq!(
            c.metagraph(1).unwrap().neurons,
            neurons,
            "recovered after {expect}"
        );
    }
    // A storage value that does not decode as its type.
    let md = RuntimeMetadata::from_scale(&finney()).unwrap();
    node.lock()
        .unwrap()
        .storage
        .insert(key(&md, "ValidatorPermit", (1u16,)), "0xff".into());
    let e = c.metagraph(1).unwrap_err();
    assert!(
        matches!(&e, ChainError::Malformed(m) if m.contains("ValidatorPermit")),
        "{e}"
    );
}

#[test]
fn a_node_that_does_not_answer_is_a_clear_error_at_connect() {
    let (node, _) = fake_node();
    node.lock().unwrap().mode = Mode::Disconnected;
    let e = client(&node).unwrap_err();
    assert!(matches!(e, ChainError::Connection(_)), "{e}");
}

#[test]
fn a_refused_connection_or_a_bad_url_is_said_at_once_with_its_cause() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let connect = |url: &str| {
        Subtensor::connect(
            &SubtensorConfig {
                url: url.into(),
                request_timeout: Duration::from_secs(30),
                metagraph: MetagraphSource::Auto,
            },
            ChainSigner::from_uri("//Alice").unwrap(),
        )
        .unwrap_err()
    };
    let e = connect(&format!("ws://127.0.0.1:{closed}"));
    assert_eq!(e.label(), "connection", "{e}");
    assert!(e.to_string().contains("refused"), "{e}");
    let e = connect("http://127.0.0.1:9944");
    assert!(e.to_string().contains("not a ws:// or wss:// URL"), "{e}");
}

#[test]
fn pool_verdicts_are_told_from_transport_failures() {
    assert!(pool_refusal(
        "RPC error: 1010: Invalid Transaction: Transaction has a bad signature"
    ));
    assert!(pool_refusal("1014: Priority is too low"));
    assert!(!pool_refusal("connection reset by peer"));
    let invalid = subxt::error::TransactionStatusError::Invalid("stale".into());
    assert_eq!(status_error(&invalid).label(), "rejected");
    let other = subxt::error::TransactionStatusError::Error("node restarting".into());
    assert_eq!(status_error(&other).label(), "connection");
}

#[test]
fn dispatch_errors_map_to_pallet_names() {
    for p in PalletError::ALL {
        assert_eq!(PalletError::from_name(&p.to_string()), Some(p));
    }
    assert_eq!(PalletError::from_name("NoSuchError"), None);
}
