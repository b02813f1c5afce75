//! The real chain: a subxt client of a subtensor node, using the node's own metadata at run
//! time (dynamic storage reads and calls). It owns a small tokio runtime so the node's
//! threads call it synchronously. Connections go through subxt's reconnecting RPC client, so
//! a dropped connection is re-established (a call in flight then fails with a
//! `ChainError::Connection` and can be retried). Failures are told apart: a connection
//! refused or a host that does not resolve (at once, before any retrying), no answer in time
//! (`Timeout`), an extrinsic that cannot be built (`Encode`), one the transaction pool
//! refuses (`Rejected`), and one the pallet refuses (`Pallet`, by name).

use std::time::Duration;

use subxt::config::SubstrateConfig;
use subxt::dynamic;
use subxt::error::DispatchError;
use subxt::{OnlineClient, ext::scale_decode::DecodeAsType};
use subxt_rpcs::RpcClient;
use subxt_rpcs::client::ReconnectingRpcClient;

use crate::extrinsic::{ChainSigner, WeightsCall};
use crate::{BlockInfo, Chain, ChainError, Hyperparams, Metagraph, PalletError};

mod metagraph;
pub use metagraph::{METAGRAPH_API, MetagraphSource, has_metagraph_api, metagraph_from_response};

/// Storage reads of one entry sent together (a metagraph's hotkeys, then its stakes).
const READ_CHUNK: usize = 256;

/// Storage entries of `SubtensorModule` this client reads; [`Subtensor::connect`] checks the
/// node's metadata has every one.
pub const STORAGE_READ: [&str; 14] = [
    "NetworksAdded",
    "Uids",
    "Weights",
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

/// The commit-reveal schemes a runtime offers (see [`Subtensor::commit_support`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommitSupport {
    /// `commit_weights` and `reveal_weights` (v2 hash commits).
    pub hash: bool,
    /// `commit_timelocked_weights`, with the commit-reveal version it takes.
    pub timelocked: Option<u16>,
}

/// How to reach a subtensor node.
#[derive(Clone, Debug)]
pub struct SubtensorConfig {
    /// `ws://` or `wss://` URL of the node.
    pub url: String,
    /// Each request (a read, or a submission until finalised) gives up after this.
    pub request_timeout: Duration,
    /// Where metagraphs are read from.
    pub metagraph: MetagraphSource,
}

/// A subxt-backed [`Chain`].
pub struct Subtensor {
    rt: tokio::runtime::Runtime,
    client: OnlineClient<SubstrateConfig>,
    signer: ChainSigner,
    timeout: Duration,
    metagraph_source: MetagraphSource,
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
        reachable(&config.url, config.request_timeout)?;
        let rt = runtime()?;
        let rpc = rt.block_on(async {
            tokio::time::timeout(
                config.request_timeout,
                ReconnectingRpcClient::builder().build(config.url.clone()),
            )
            .await
            .map_err(|_| ChainError::Timeout(format!("{}: no answer", config.url)))?
            .map_err(|e| conn(format!("{}: {e}", config.url)))
        })?;
        let mut s = Subtensor::with_rpc(rt, RpcClient::new(rpc), signer, config.request_timeout)?;
        s.metagraph_source = config.metagraph;
        Ok(s)
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
            .map_err(|_| ChainError::Timeout("no answer while connecting".into()))?
            .map_err(conn)
        })?;
        let s = Subtensor {
            rt,
            client,
            signer,
            timeout,
            metagraph_source: MetagraphSource::default(),
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
        // The commit calls are checked against the commit mode (see `commit_support`).
        if pallet.call_variant_by_name("set_weights").is_none() {
            return Err(ChainError::Metadata(
                "SubtensorModule has no call set_weights: unsupported runtime".into(),
            ));
        }
        Ok(())
    }

    /// Which commit-reveal schemes this runtime offers: hash commits (`commit_weights` and
    /// `reveal_weights`), and timelocked commits (`commit_timelocked_weights`) with the
    /// commit-reveal version the pallet expects (storage `CommitRevealWeightsVersion`).
    pub fn commit_support(&self) -> Result<CommitSupport, ChainError> {
        let at = self.block_on(self.client.at_current_block())?;
        let md = at.metadata_ref();
        let pallet = md
            .pallet_by_name("SubtensorModule")
            .ok_or_else(|| ChainError::Metadata("no SubtensorModule pallet".into()))?;
        let has = |call: &str| pallet.call_variant_by_name(call).is_some();
        let hash = has("commit_weights") && has("reveal_weights");
        let versioned = pallet
            .storage()
            .and_then(|s| s.entry_by_name("CommitRevealWeightsVersion"))
            .is_some();
        let timelocked = if !has("commit_timelocked_weights") {
            None
        } else if versioned {
            Some(self.read(&at, "CommitRevealWeightsVersion", ())?)
        } else {
            Some(crate::timelock::COMMIT_REVEAL_VERSION)
        };
        Ok(CommitSupport { hash, timelocked })
    }

    /// Run a future with the request timeout, mapping its error.
    fn block_on<T, E: std::fmt::Display>(
        &self,
        f: impl Future<Output = Result<T, E>>,
    ) -> Result<T, ChainError> {
        self.rt.block_on(async {
            tokio::time::timeout(self.timeout, f)
                .await
                .map_err(|_| ChainError::Timeout(format!("no answer within {:?}", self.timeout)))?
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

    /// [`Self::read`] of an entry without a default: `None` where the key holds no value.
    fn read_opt<K, V>(&self, at: &At, entry: &str, key: K) -> Result<Option<V>, ChainError>
    where
        K: subxt::ext::frame_decode::storage::IntoEncodableValues
            + subxt::ext::frame_decode::storage::IntoDecodableValues,
        V: DecodeAsType,
    {
        let addr = dynamic::storage::<K, V>("SubtensorModule", entry);
        match self.block_on(at.storage().try_fetch(addr, key))? {
            None => Ok(None),
            Some(v) => v
                .decode()
                .map(Some)
                .map_err(|e| ChainError::Malformed(format!("SubtensorModule::{entry}: {e}"))),
        }
    }

    /// [`Self::read`] for many keys of one entry, the requests of each chunk in flight
    /// together (one round trip per chunk, not per key), each chunk under the timeout.
    fn read_many<K, V>(&self, at: &At, entry: &str, keys: Vec<K>) -> Result<Vec<V>, ChainError>
    where
        K: subxt::ext::frame_decode::storage::IntoEncodableValues
            + subxt::ext::frame_decode::storage::IntoDecodableValues
            + Clone,
        V: DecodeAsType,
    {
        let mut out = Vec::with_capacity(keys.len());
        let storage = at.storage();
        for chunk in keys.chunks(READ_CHUNK) {
            let fetches = chunk.iter().cloned().map(|key| {
                let addr = dynamic::storage::<K, V>("SubtensorModule", entry);
                storage.fetch(addr, key)
            });
            for v in self.block_on(futures::future::try_join_all(fetches))? {
                out.push(v.decode().map_err(|e| {
                    ChainError::Malformed(format!("SubtensorModule::{entry}: {e}"))
                })?);
            }
        }
        Ok(out)
    }

    /// `SubnetNotExists` unless the subnet exists at `at` (storage of a subnet that does not
    /// exist reads as defaults, which would look like an empty or default subnet).
    fn subnet_exists(&self, at: &At, netuid: u16) -> Result<(), ChainError> {
        let added: bool = self.read(at, "NetworksAdded", (netuid,))?;
        if added {
            Ok(())
        } else {
            Err(PalletError::SubnetNotExists.into())
        }
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
                // A call the runtime lacks (a mechanism call on a runtime from before
                // mechanisms) is named, not reported as an encoding failure.
                let has_call = at
                    .metadata_ref()
                    .pallet_by_name("SubtensorModule")
                    .and_then(|p| p.call_variant_by_name(call.name()))
                    .is_some();
                if !has_call {
                    let (netuid, mecid) = call.target();
                    return Err(ChainError::Metadata(format!(
                        "the runtime has no call SubtensorModule::{} (weights for mechanism \
                         {mecid} of subnet {netuid})",
                        call.name()
                    )));
                }
                let progress = at
                    .transactions()
                    .sign_and_submit_then_watch_default(&payload, &signer)
                    .await
                    .map_err(|e| extrinsic_error(&e))?;
                let in_block = progress
                    .wait_for_finalized()
                    .await
                    .map_err(|e| progress_error(&e))?;
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
                .map_err(|_| ChainError::Timeout(format!("not finalised within {limit:?}")))?
        })
    }
}

type At = subxt::client::ClientAtBlock<
    SubstrateConfig,
    subxt::client::OnlineClientAtBlockImpl<SubstrateConfig>,
>;

/// Whether `url` (`ws://` or `wss://host[:port]`) takes a TCP connection: a refused
/// connection or a host that does not resolve is an error at once, with its cause, instead
/// of "no answer" after the reconnecting client's retries.
fn reachable(url: &str, timeout: Duration) -> Result<(), ChainError> {
    use std::net::ToSocketAddrs;
    let bad = |why: String| ChainError::Connection(format!("{url}: {why}"));
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| bad("not a ws:// or wss:// URL".into()))?;
    let default_port = match scheme {
        "ws" => 80,
        "wss" => 443,
        _ => return Err(bad("not a ws:// or wss:// URL".into())),
    };
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    let host_port = match authority.rsplit_once(':') {
        Some((_, port)) if !authority.ends_with(']') && port.parse::<u16>().is_ok() => {
            authority.to_string()
        }
        _ => format!("{authority}:{default_port}"),
    };
    let addrs: Vec<_> = host_port
        .to_socket_addrs()
        .map_err(|e| bad(format!("cannot resolve {host_port}: {e}")))?
        .collect();
    let mut last = None;
    for a in &addrs {
        match std::net::TcpStream::connect_timeout(a, timeout) {
            Ok(_) => return Ok(()),
            Err(e) => last = Some(e),
        }
    }
    Err(match last {
        Some(e) if e.kind() == std::io::ErrorKind::TimedOut => {
            ChainError::Timeout(format!("{url}: no TCP answer within {timeout:?}"))
        }
        Some(e) => bad(e.to_string()),
        None => bad(format!("{host_port} resolves to no address")),
    })
}

/// An extrinsic that could not be sent, by cause: not buildable (`Encode`), refused by the
/// transaction pool (`Rejected`), or the connection.
fn extrinsic_error(e: &subxt::error::ExtrinsicError) -> ChainError {
    use subxt::error::ExtrinsicError as E;
    match e {
        E::EncodeError(_)
        | E::IncompatibleCodegen
        | E::PalletNameNotFound(_)
        | E::CallNameNotFound { .. }
        | E::GenesisHashNotProvided
        | E::UnsupportedVersion
        | E::Params(_) => ChainError::Encode(e.to_string()),
        E::TransactionStatusError(s) => status_error(s),
        E::ErrorSubmittingTransaction(b) if pool_refusal(&b.to_string()) => {
            ChainError::Rejected(b.to_string())
        }
        _ => conn(e),
    }
}

fn progress_error(e: &subxt::error::TransactionProgressError) -> ChainError {
    match e {
        subxt::error::TransactionProgressError::TransactionStatusError(s) => status_error(s),
        _ => conn(e),
    }
}

fn status_error(s: &subxt::error::TransactionStatusError) -> ChainError {
    use subxt::error::TransactionStatusError as S;
    match s {
        S::Invalid(_) | S::Dropped(_) => ChainError::Rejected(s.to_string()),
        _ => conn(s),
    }
}

/// Whether an RPC error from `author_submitAndWatchExtrinsic` is the pool's verdict on the
/// transaction (Substrate answers 1010 "Invalid Transaction" / 1012 "Transaction is
/// temporarily banned" / 1014 "Priority is too low"), not a transport failure.
fn pool_refusal(message: &str) -> bool {
    [
        "Invalid Transaction",
        "temporarily banned",
        "Priority is too low",
        "1010",
        "1012",
        "1014",
    ]
    .iter()
    .any(|m| message.contains(m))
}

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

    /// One read of `Uids` (netuid, hotkey), not the whole metagraph.
    fn uid_of(&self, netuid: u16, hotkey: &[u8; 32]) -> Result<Option<u16>, ChainError> {
        let at = self.block_on(self.client.at_current_block())?;
        self.subnet_exists(&at, netuid)?;
        self.read_opt(&at, "Uids", (netuid, *hotkey))
    }

    fn mechanism_weights(
        &self,
        netuid: u16,
        mecid: u8,
        uid: u16,
    ) -> Result<Vec<(u16, u16)>, ChainError> {
        let at = self.block_on(self.client.at_current_block())?;
        self.subnet_exists(&at, netuid)?;
        let index = mechanism_index(netuid, mecid)?;
        // Keyed by the mechanism's storage index: mechanism 0's is the netuid itself.
        self.read(&at, "Weights", (index, uid))
    }

    fn epoch_schedule(&self, netuid: u16) -> Result<crate::schedule::EpochSchedule, ChainError> {
        let at = self.block_on(self.client.at_current_block())?;
        self.subnet_exists(&at, netuid)?;
        let head = at.block_number();
        let tempo: u16 = self.read(&at, "Tempo", (netuid,))?;
        let has = |name: &str| {
            at.metadata_ref()
                .pallet_by_name("SubtensorModule")
                .and_then(|p| p.storage())
                .and_then(|s| s.entry_by_name(name))
                .is_some()
        };
        // A runtime from before the stateful epoch model has epochs at fixed blocks.
        if !(has("LastEpochBlock") && has("PendingEpochAt") && has("SubnetEpochIndex")) {
            return Ok(crate::schedule::EpochSchedule::legacy(netuid, tempo, head));
        }
        Ok(crate::schedule::EpochSchedule {
            last_epoch_block: self.read(&at, "LastEpochBlock", (netuid,))?,
            pending_epoch_at: self.read(&at, "PendingEpochAt", (netuid,))?,
            epoch_index: self.read(&at, "SubnetEpochIndex", (netuid,))?,
            tempo: u64::from(tempo),
            blocks_since_last_step: self.read(&at, "BlocksSinceLastStep", (netuid,))?,
            head,
        })
    }

    fn mechanism_count(&self, netuid: u16) -> Result<u8, ChainError> {
        let at = self.block_on(self.client.at_current_block())?;
        self.subnet_exists(&at, netuid)?;
        let has = at
            .metadata_ref()
            .pallet_by_name("SubtensorModule")
            .and_then(|p| p.storage())
            .and_then(|s| s.entry_by_name("MechanismCountCurrent"))
            .is_some();
        // A runtime from before mechanisms has the subnet's one.
        if has {
            self.read(&at, "MechanismCountCurrent", (netuid,))
        } else {
            Ok(1)
        }
    }

    fn hyperparams(&self, netuid: u16) -> Result<Hyperparams, ChainError> {
        let at = self.block_on(self.client.at_current_block())?;
        self.subnet_exists(&at, netuid)?;
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

    fn set_mechanism_weights(
        &mut self,
        hotkey: &[u8; 32],
        netuid: u16,
        mecid: u8,
        uids: &[u16],
        values: &[u16],
        version_key: u64,
    ) -> Result<(), ChainError> {
        let call = WeightsCall::set(netuid, mecid, uids.to_vec(), values.to_vec(), version_key);
        self.submit(hotkey, call)
    }

    fn commit_mechanism_weights(
        &mut self,
        hotkey: &[u8; 32],
        netuid: u16,
        mecid: u8,
        hash: [u8; 32],
    ) -> Result<(), ChainError> {
        self.submit(hotkey, WeightsCall::commit(netuid, mecid, hash))
    }

    fn reveal_mechanism_weights(
        &mut self,
        hotkey: &[u8; 32],
        netuid: u16,
        mecid: u8,
        uids: &[u16],
        values: &[u16],
        salt: &[u16],
        version_key: u64,
    ) -> Result<(), ChainError> {
        let call = WeightsCall::reveal(
            netuid,
            mecid,
            uids.to_vec(),
            values.to_vec(),
            salt.to_vec(),
            version_key,
        );
        self.submit(hotkey, call)
    }

    fn commit_timelocked_mechanism_weights(
        &mut self,
        hotkey: &[u8; 32],
        netuid: u16,
        mecid: u8,
        commit: &[u8],
        reveal_round: u64,
        commit_reveal_version: u16,
    ) -> Result<(), ChainError> {
        let call = WeightsCall::commit_timelocked(
            netuid,
            mecid,
            commit.to_vec(),
            reveal_round,
            commit_reveal_version,
        );
        self.submit(hotkey, call)
    }
}

/// The storage index of a mechanism, or a clear error where it has none.
fn mechanism_index(netuid: u16, mecid: u8) -> Result<u16, ChainError> {
    crate::storage_index(netuid, mecid).ok_or_else(|| {
        ChainError::Encode(format!(
            "mechanism {mecid} of subnet {netuid} has no storage index"
        ))
    })
}

#[cfg(test)]
mod tests;
