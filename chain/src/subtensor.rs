//! The real chain: a subxt client of a subtensor node, using the node's own metadata at run
//! time (dynamic storage reads and calls). It owns a small tokio runtime so the node's
//! threads call it synchronously. Connections go through subxt's reconnecting RPC client, so
//! a dropped connection is re-established (a call in flight then fails with a
//! `ChainError::Connection` and can be retried).

use std::time::Duration;

use subxt::config::SubstrateConfig;
use subxt::dynamic;
use subxt::error::DispatchError;
use subxt::{OnlineClient, ext::scale_decode::DecodeAsType};
use subxt_rpcs::RpcClient;
use subxt_rpcs::client::ReconnectingRpcClient;

use crate::extrinsic::{ChainSigner, WeightsCall};
use crate::{BlockInfo, Chain, ChainError, Hyperparams, Metagraph, Neuron, PalletError};

/// Storage entries of `SubtensorModule` this client reads; [`Subtensor::connect`] checks the
/// node's metadata has every one.
pub const STORAGE_READ: [&str; 11] = [
    "SubnetworkN",
    "Keys",
    "ValidatorPermit",
    "TotalHotkeyAlpha",
    "Tempo",
    "CommitRevealWeightsEnabled",
    "RevealPeriodEpochs",
    "WeightsVersionKey",
    "WeightsSetRateLimit",
    "MinAllowedWeights",
    "MaxWeightsLimit",
];

/// How to reach a subtensor node.
#[derive(Clone, Debug)]
pub struct SubtensorConfig {
    /// `ws://` or `wss://` URL of the node.
    pub url: String,
    /// Each request (a read, or a submission until finalised) gives up after this.
    pub request_timeout: Duration,
}

/// A subxt-backed [`Chain`].
pub struct Subtensor {
    rt: tokio::runtime::Runtime,
    client: OnlineClient<SubstrateConfig>,
    signer: ChainSigner,
    timeout: Duration,
}

impl std::fmt::Debug for Subtensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subtensor")
            .field("signer", &self.signer)
            .finish_non_exhaustive()
    }
}

fn conn(e: impl std::fmt::Display) -> ChainError {
    ChainError::Connection(e.to_string())
}

fn runtime() -> Result<tokio::runtime::Runtime, ChainError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ChainError::Connection(format!("runtime: {e}")))
}

impl Subtensor {
    /// Connect to `config.url` (retrying with backoff on drops) and check that the node's
    /// runtime has the storage and calls this client uses.
    pub fn connect(config: &SubtensorConfig, signer: ChainSigner) -> Result<Subtensor, ChainError> {
        let rt = runtime()?;
        let rpc = rt.block_on(async {
            tokio::time::timeout(
                config.request_timeout,
                ReconnectingRpcClient::builder().build(config.url.clone()),
            )
            .await
            .map_err(|_| ChainError::Connection(format!("{}: no answer", config.url)))?
            .map_err(|e| conn(format!("{}: {e}", config.url)))
        })?;
        Subtensor::with_rpc(rt, RpcClient::new(rpc), signer, config.request_timeout)
    }

    pub(crate) fn with_rpc(
        rt: tokio::runtime::Runtime,
        rpc: RpcClient,
        signer: ChainSigner,
        timeout: Duration,
    ) -> Result<Subtensor, ChainError> {
        let client = rt.block_on(async {
            tokio::time::timeout(
                timeout,
                OnlineClient::<SubstrateConfig>::from_rpc_client(rpc),
            )
            .await
            .map_err(|_| ChainError::Connection("no answer while connecting".into()))?
            .map_err(conn)
        })?;
        let s = Subtensor {
            rt,
            client,
            signer,
            timeout,
        };
        s.check_metadata()?;
        Ok(s)
    }

    fn check_metadata(&self) -> Result<(), ChainError> {
        let at = self.block_on(self.client.at_current_block())?;
        let md = at.metadata_ref();
        let pallet = md
            .pallet_by_name("SubtensorModule")
            .ok_or_else(|| ChainError::Metadata("no SubtensorModule pallet".into()))?;
        for name in STORAGE_READ {
            if pallet
                .storage()
                .and_then(|s| s.entry_by_name(name))
                .is_none()
            {
                return Err(ChainError::Metadata(format!(
                    "SubtensorModule has no storage {name}: unsupported runtime"
                )));
            }
        }
        for call in ["set_weights", "commit_weights", "reveal_weights"] {
            if pallet.call_variant_by_name(call).is_none() {
                return Err(ChainError::Metadata(format!(
                    "SubtensorModule has no call {call}: unsupported runtime"
                )));
            }
        }
        Ok(())
    }

    /// Run a future with the request timeout, mapping its error.
    fn block_on<T, E: std::fmt::Display>(
        &self,
        f: impl Future<Output = Result<T, E>>,
    ) -> Result<T, ChainError> {
        self.rt.block_on(async {
            tokio::time::timeout(self.timeout, f)
                .await
                .map_err(|_| ChainError::Connection("request timed out".into()))?
                .map_err(conn)
        })
    }

    fn read<K, V>(&self, at: &At, entry: &str, key: K) -> Result<V, ChainError>
    where
        K: subxt::ext::frame_decode::storage::IntoEncodableValues
            + subxt::ext::frame_decode::storage::IntoDecodableValues,
        V: DecodeAsType,
    {
        let addr = dynamic::storage::<K, V>("SubtensorModule", entry);
        let v = self.block_on(at.storage().fetch(addr, key))?;
        v.decode()
            .map_err(|e| ChainError::Malformed(format!("SubtensorModule::{entry}: {e}")))
    }

    /// The metagraph as of the block `at`.
    fn metagraph_on(&self, at: &At, netuid: u16) -> Result<Metagraph, ChainError> {
        let n: u16 = self.read(at, "SubnetworkN", (netuid,))?;
        let permits: Vec<bool> = self.read(at, "ValidatorPermit", (netuid,))?;
        let mut neurons = Vec::with_capacity(usize::from(n));
        for uid in 0..n {
            let hotkey: [u8; 32] = self.read(at, "Keys", (netuid, uid))?;
            let stake: u64 = self.read(at, "TotalHotkeyAlpha", (hotkey, netuid))?;
            neurons.push(Neuron {
                uid,
                hotkey,
                stake,
                validator_permit: permits.get(usize::from(uid)).copied().unwrap_or(false),
            });
        }
        Ok(Metagraph {
            netuid,
            block: BlockInfo {
                number: at.block_number(),
                hash: at.block_hash().0,
            },
            neurons,
        })
    }

    fn submit(&mut self, hotkey: &[u8; 32], call: WeightsCall) -> Result<(), ChainError> {
        if *hotkey != self.signer.public() {
            return Err(ChainError::Key(
                "asked to sign for a hotkey this client does not hold".into(),
            ));
        }
        let payload = call.payload();
        let signer = self.signer.0.clone();
        let client = self.client.clone();
        let limit = self.timeout * 4;
        self.rt.block_on(async move {
            let fut = async {
                let at = client.at_current_block().await.map_err(conn)?;
                let progress = at
                    .transactions()
                    .sign_and_submit_then_watch_default(&payload, &signer)
                    .await
                    .map_err(conn)?;
                let in_block = progress.wait_for_finalized().await.map_err(conn)?;
                match in_block.wait_for_success().await {
                    Ok(_) => Ok(()),
                    Err(subxt::error::TransactionEventsError::ExtrinsicFailed(e)) => {
                        Err(dispatch_error(&e))
                    }
                    Err(e) => Err(conn(e)),
                }
            };
            tokio::time::timeout(limit, fut)
                .await
                .map_err(|_| ChainError::Connection("not finalised in time".into()))?
        })
    }
}

type At = subxt::client::ClientAtBlock<
    SubstrateConfig,
    subxt::client::OnlineClientAtBlockImpl<SubstrateConfig>,
>;

/// A dispatch error as a typed pallet error where the name is one we know.
fn dispatch_error(e: &DispatchError) -> ChainError {
    if let DispatchError::Module(m) = e
        && let Ok(d) = m.details()
    {
        let pallet = d.pallet.name();
        let name = d.variant.name.as_str();
        if pallet == "SubtensorModule"
            && let Some(p) = PalletError::from_name(name)
        {
            return ChainError::Pallet(p);
        }
        return ChainError::Dispatch(format!("{pallet}::{name}"));
    }
    ChainError::Dispatch(e.to_string())
}

impl Chain for Subtensor {
    fn current_block(&self) -> Result<BlockInfo, ChainError> {
        let at = self.block_on(self.client.at_current_block())?;
        Ok(BlockInfo {
            number: at.block_number(),
            hash: at.block_hash().0,
        })
    }

    fn metagraph(&self, netuid: u16) -> Result<Metagraph, ChainError> {
        let at = self.block_on(self.client.at_current_block())?;
        self.metagraph_on(&at, netuid)
    }

    fn metagraph_at(&self, netuid: u16, block: u64) -> Result<Metagraph, ChainError> {
        let at = self.block_on(self.client.at_block(block))?;
        self.metagraph_on(&at, netuid)
    }

    fn hyperparams(&self, netuid: u16) -> Result<Hyperparams, ChainError> {
        let at = self.block_on(self.client.at_current_block())?;
        Ok(Hyperparams {
            tempo: self.read(&at, "Tempo", (netuid,))?,
            commit_reveal_enabled: self.read(&at, "CommitRevealWeightsEnabled", (netuid,))?,
            commit_reveal_period: self.read(&at, "RevealPeriodEpochs", (netuid,))?,
            weights_version_key: self.read(&at, "WeightsVersionKey", (netuid,))?,
            weights_rate_limit: self.read(&at, "WeightsSetRateLimit", (netuid,))?,
            min_allowed_weights: self.read(&at, "MinAllowedWeights", (netuid,))?,
            max_weight_limit: self.read(&at, "MaxWeightsLimit", (netuid,))?,
        })
    }

    fn set_weights(
        &mut self,
        hotkey: &[u8; 32],
        netuid: u16,
        uids: &[u16],
        values: &[u16],
        version_key: u64,
    ) -> Result<(), ChainError> {
        self.submit(
            hotkey,
            WeightsCall::SetWeights {
                netuid,
                uids: uids.to_vec(),
                values: values.to_vec(),
                version_key,
            },
        )
    }

    fn commit_weights(
        &mut self,
        hotkey: &[u8; 32],
        netuid: u16,
        hash: [u8; 32],
    ) -> Result<(), ChainError> {
        self.submit(hotkey, WeightsCall::CommitWeights { netuid, hash })
    }

    fn reveal_weights(
        &mut self,
        hotkey: &[u8; 32],
        netuid: u16,
        uids: &[u16],
        values: &[u16],
        salt: &[u16],
        version_key: u64,
    ) -> Result<(), ChainError> {
        self.submit(
            hotkey,
            WeightsCall::RevealWeights {
                netuid,
                uids: uids.to_vec(),
                values: values.to_vec(),
                salt: salt.to_vec(),
                version_key,
            },
        )
    }

    fn commit_timelocked_weights(
        &mut self,
        hotkey: &[u8; 32],
        netuid: u16,
        commit: &[u8],
        reveal_round: u64,
        commit_reveal_version: u16,
    ) -> Result<(), ChainError> {
        self.submit(
            hotkey,
            WeightsCall::CommitTimelocked {
                netuid,
                commit: commit.to_vec(),
                reveal_round,
                commit_reveal_version,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
    }

    fn finney() -> Option<Vec<u8>> {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/chain/finney_2026-04-21.scale");
        std::fs::read(p).ok()
    }

    fn respond(node: &Arc<Mutex<FakeNode>>, name: &str, params: Option<Value>) -> Option<Value> {
        let n = node.lock().unwrap();
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

    fn fake_node() -> Option<(Arc<Mutex<FakeNode>>, Vec<Neuron>)> {
        use parity_scale_codec::Encode;
        let bytes = finney()?;
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
        storage.insert(key(&md, "SubnetworkN", (1u16,)), hexv(3u16.encode()));
        let permits: Vec<bool> = neurons.iter().map(|n| n.validator_permit).collect();
        storage.insert(key(&md, "ValidatorPermit", (1u16,)), hexv(permits.encode()));
        for n in &neurons {
            storage.insert(key(&md, "Keys", (1u16, n.uid)), hexv(n.hotkey.to_vec()));
            storage.insert(
                key(&md, "TotalHotkeyAlpha", (n.hotkey, 1u16)),
                hexv(n.stake.encode()),
            );
        }
        storage.insert(key(&md, "Tempo", (1u16,)), hexv(99u16.encode()));
        storage.insert(
            key(&md, "MaxWeightsLimit", (1u16,)),
            hexv(32768u16.encode()),
        );
        let node = FakeNode {
            metadata_hex: format!("0x{}", hex::encode(&bytes)),
            storage,
            mode: Mode::Healthy,
        };
        Some((Arc::new(Mutex::new(node)), neurons))
    }

    #[test]
    fn metagraph_and_hyperparams_read_through_rpc() {
        let Some((node, neurons)) = fake_node() else {
            return; // ../shared/chain absent: nothing to serve
        };
        let c = client(&node).unwrap();
        let mg = c.metagraph(1).unwrap();
        assert_eq!(mg.neurons, neurons);
        assert_eq!(mg.block.number, 100);
        assert_eq!(mg.block.hash, [0x11; 32]);
        let hp = c.hyperparams(1).unwrap();
        assert_eq!(hp.tempo, 99);
        assert_eq!(hp.max_weight_limit, 32768);
        assert!(
            c.metagraph(2).unwrap().neurons.is_empty(),
            "an unknown subnet reads empty"
        );
    }

    #[test]
    fn disconnects_hangs_and_garbage_are_clear_errors_and_the_client_recovers() {
        let Some((node, neurons)) = fake_node() else {
            return;
        };
        let c = client(&node).unwrap();
        for (mode, expect) in [
            (Mode::Disconnected, "connection reset"),
            (Mode::Hung, "timed out"),
            (Mode::Garbage, "deserialize"),
        ] {
            node.lock().unwrap().mode = mode;
            let e = c.metagraph(1).unwrap_err();
            assert!(matches!(e, ChainError::Connection(_)), "{e}");
            assert!(e.to_string().contains(expect), "{e}");
            node.lock().unwrap().mode = Mode::Healthy;
            assert_eq!(
                c.metagraph(1).unwrap().neurons,
                neurons,
                "recovered after {expect}"
            );
        }
        // A storage value that does not decode as its type.
        let md = RuntimeMetadata::from_scale(&finney().unwrap()).unwrap();
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
        let Some((node, _)) = fake_node() else {
            return;
        };
        node.lock().unwrap().mode = Mode::Disconnected;
        let e = client(&node).unwrap_err();
        assert!(matches!(e, ChainError::Connection(_)), "{e}");
    }

    #[test]
    fn dispatch_errors_map_to_pallet_names() {
        for p in PalletError::ALL {
            assert_eq!(PalletError::from_name(&p.to_string()), Some(p));
        }
        assert_eq!(PalletError::from_name("NoSuchError"), None);
    }
}
