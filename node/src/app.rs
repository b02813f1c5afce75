//! The running validator: one application thread wires the pieces together.
//!
//! - Miners' submissions arrive by gossip (`Submissions`), are checked (registered miner,
//!   active challenge, current epoch), recorded in the store (the counted rule) and
//!   evaluated on the glommio shards; results and audit records go to the store.
//! - At `end(e) + settle` each validator signs its batch of results for epoch `e` and
//!   announces it (`Evaluations`: epoch and id); batches, whatever their size, travel as
//!   blobs fetched by id from any holder, and are kept in the store.
//! - At `end(e) + 2 × settle` the PBFT leader proposes an [`EpochValue`] (the batches it
//!   holds, pending registry changes, the result digest); validators fetch batches or
//!   modules they lack, recompute the digest with `epoch::compute`, and vote. A committed
//!   value is applied in one store transaction (result, registry, applied height) and its
//!   weights go to the chain thread.
//! - Consensus timers are held while no epoch is due, so rounds do not churn views between
//!   epochs; a restarted node replays committed decisions it had not applied.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use crossbeam_channel::Sender;
use parity_scale_codec::Encode as _;
use platform_chain::submit::{CommitMode, WeightSubmitter};
use platform_consensus::crypto::value_digest;
use platform_consensus::{
    Action, Decision, Domain, Event, Height, RedbStore, Replica, Signer, Storage as _, Validator,
    ValidatorSet, View,
};
use platform_engine::{
    ChallengeId, ChallengePolicy, ChallengeSpec, EvalContext, EvalResult, Runtime, ShardedEngine,
    SubmitError,
};
use platform_keys::{Keypair, ss58_encode};
use platform_net::{Delivery, Envelope, Identity, Net, NetEvent, NetHandle, Options, Topic};
use sha2::{Digest as _, Sha256};

use crate::chainsvc::{self, Backend, ChainStatus, WeightsJob};
use crate::config::{ChainSection, CommitModeName, NodeConfig};
use crate::epoch::{self, EpochInput, Report};
use crate::exporter::{Api, Exporter};
use crate::metrics as m;
use crate::msg::{
    Batch, BatchAnnounce, BatchEntry, ChallengePost, EpochRecord, EpochValue, decode_exact,
};
use crate::registry::{Change, Registry, RegistryError, SignedChange};
use crate::store::{
    AppliedDecision, AuditRecord, Counted, META_APPLIED_HEIGHT, META_LAST_EPOCH,
    META_REGISTRY_NONCE, Store,
};

type Hotkey = [u8; 32];
type Hash = [u8; 32];

/// Committed epochs kept in `status`.
const HISTORY: usize = 64;
/// Fetches of one blob give up after this.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Blob fetches in flight at most (each is a thread waiting on the net).
const FETCHES_MAX: usize = 64;
/// Submissions waiting for room in the engine at most; beyond, new ones are shed (counted).
const BACKLOG_MAX: usize = 200_000;

/// Wall-clock milliseconds since the Unix epoch.
fn now_ms() -> u64 {
    platform_net::wire::now_ms()
}

fn hex32(h: &[u8; 32]) -> String {
    hex::encode(h)
}

/// The epoch clock: epochs are `len_ms` slices of Unix time, so every validator with a
/// synchronised clock agrees on them without talking.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    /// Epoch length.
    pub len_ms: u64,
}

impl Clock {
    /// The epoch at `t`.
    pub fn epoch_at(&self, t: u64) -> u64 {
        t / self.len_ms
    }
    /// When `e` ends.
    pub fn end(&self, e: u64) -> u64 {
        (e + 1) * self.len_ms
    }
    /// Time after an epoch's end for late evaluations; batches go out then.
    pub fn settle(&self) -> u64 {
        self.len_ms / 5
    }
    /// When the leader proposes `e`.
    pub fn due(&self, e: u64) -> u64 {
        self.end(e) + 2 * self.settle()
    }
    /// The latest epoch due at `t`.
    pub fn latest_due(&self, t: u64) -> Option<u64> {
        (t / self.len_ms).checked_sub(1).and_then(|e| {
            if self.due(e) <= t {
                Some(e)
            } else {
                e.checked_sub(1)
            }
        })
    }
}

/// Messages to the application thread from the API and fetch threads.
enum AppMsg {
    Post {
        body: Vec<u8>,
        reply: Sender<Result<String, String>>,
    },
    Fetched {
        what: Fetch,
        bytes: Option<Vec<u8>>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Fetch {
    Batch(Hash),
    Module(Hash),
}

struct PendingValidation {
    height: Height,
    view: View,
    value: Vec<u8>,
    deadline_ms: u64,
}

struct KnownBatch {
    epoch: u64,
    author: Hotkey,
    batch: Batch,
}

/// The HTTP API's view of the node: status from a snapshot, challenge posts forwarded to
/// the application thread.
struct NodeApi {
    status: Arc<Mutex<String>>,
    tx: Sender<AppMsg>,
}

impl Api for NodeApi {
    fn status(&self) -> String {
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn post_challenge(&self, body: Vec<u8>) -> Result<String, String> {
        let (reply, rx) = crossbeam_channel::bounded(1);
        self.tx
            .send(AppMsg::Post { body, reply })
            .map_err(|_| "node is shutting down".to_string())?;
        rx.recv_timeout(Duration::from_secs(30))
            .map_err(|_| "node did not answer".to_string())?
    }
}

/// Load the hotkey a config names.
pub fn load_hotkey(cfg: &NodeConfig, base: &Path) -> anyhow::Result<Keypair> {
    match (&cfg.node.hotkey_file, &cfg.node.hotkey_seed) {
        (Some(f), _) => {
            let p = if f.is_absolute() {
                f.clone()
            } else {
                base.join(f)
            };
            Keypair::from_hotkey_file(&p).with_context(|| format!("hotkey file {}", p.display()))
        }
        (None, Some(seed)) => Ok(Keypair::from_seed_hex(seed)?),
        (None, None) => anyhow::bail!("no hotkey configured"),
    }
}

/// The libp2p node key in `data_dir/node_key` (hex), created on first start.
pub fn node_key(data_dir: &Path) -> anyhow::Result<[u8; 32]> {
    let path = data_dir.join("node_key");
    if let Ok(text) = std::fs::read_to_string(&path) {
        let bytes = hex::decode(text.trim()).context("node_key is not hex")?;
        return bytes
            .try_into()
            .map_err(|_| anyhow::anyhow!("{}: not 32 bytes", path.display()));
    }
    let mut key = [0u8; 32];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut key)?;
    write_node_key(data_dir, &key)?;
    Ok(key)
}

/// Write a node key file (the devnet writes them so it knows every peer id ahead).
pub fn write_node_key(data_dir: &Path, key: &[u8; 32]) -> anyhow::Result<()> {
    std::fs::create_dir_all(data_dir)?;
    let tmp = data_dir.join("node_key.tmp");
    std::fs::write(&tmp, hex::encode(key))?;
    std::fs::rename(&tmp, data_dir.join("node_key"))?;
    Ok(())
}

/// The seed challenges read through `context`: agreed by construction.
fn epoch_seed(netuid: u16, epoch: u64) -> Hash {
    let mut h = Sha256::new();
    h.update(b"platform/epoch-seed/v1");
    h.update(netuid.to_le_bytes());
    h.update(epoch.to_le_bytes());
    h.finalize().into()
}

fn policy_of(meta: &crate::registry::ChallengeMeta) -> ChallengePolicy {
    ChallengePolicy {
        fuel_limit: meta.limits.fuel,
        memory_limit_bytes: meta.limits.memory_bytes,
        input_max_bytes: u64::from(meta.limits.input_bytes),
        output_max_bytes: u64::from(meta.limits.output_bytes),
        ..ChallengePolicy::default()
    }
}

/// Everything the application thread owns.
struct App {
    netuid: u16,
    clock: Clock,
    me: Keypair,
    my_hotkey: Hotkey,
    view_timeout_ms: u64,
    store: Store,
    registry: Registry,
    runtime: Runtime,
    engine: ShardedEngine,
    challenges: BTreeMap<u32, Arc<platform_engine::Challenge>>,
    net: NetHandle,
    replica: Replica<RedbStore>,
    validators: Vec<(Hotkey, u64)>,
    total_stake: u128,
    uids: BTreeMap<Hotkey, u16>,
    app_tx: Sender<AppMsg>,
    chain_tx: Option<Sender<WeightsJob>>,
    chain_status: Arc<Mutex<ChainStatus>>,
    status: Arc<Mutex<String>>,
    metrics_addr: String,
    data_dir: std::path::PathBuf,
    // Consensus plumbing.
    timer: Option<(Height, View, u64)>,
    want_proposal: Option<Height>,
    validations: Vec<PendingValidation>,
    decisions: VecDeque<Decision>,
    applied_height: u64,
    last_epoch: Option<u64>,
    // Epoch data.
    batches: HashMap<Hash, KnownBatch>,
    by_epoch: BTreeMap<u64, BTreeMap<Hotkey, Hash>>,
    published: BTreeSet<u64>,
    fetching: HashSet<Fetch>,
    changes: BTreeMap<u64, Vec<u8>>,
    inflight: HashMap<Hash, (u64, u32, Hash)>,
    backlog: VecDeque<(u64, platform_engine::Submission)>,
    history: VecDeque<serde_json::Value>,
    started_epoch: u64,
    last_view_changes: u64,
    evaluated: u64,
}

/// Run a validator until `stop` is set.
pub fn run(cfg: NodeConfig, config_dir: &Path, stop: Arc<AtomicBool>) -> anyhow::Result<()> {
    let data_dir = if cfg.node.data_dir.is_absolute() {
        cfg.node.data_dir.clone()
    } else {
        config_dir.join(&cfg.node.data_dir)
    };
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let me = load_hotkey(&cfg, config_dir)?;
    let my_hotkey = me.public();
    let owner = platform_keys::ss58_decode(&cfg.node.subnet_owner)?;
    let netuid = cfg.node.netuid;
    let clock = Clock {
        len_ms: u64::try_from(cfg.node.epoch.as_millis()).unwrap_or(u64::MAX),
    };

    let store = Store::open(&data_dir.join("node.redb")).context("opening node.redb")?;
    let registry = Registry::restore(
        owner,
        &store.registry()?,
        store.meta(META_REGISTRY_NONCE)?.unwrap_or(0),
    )
    .map_err(|e| anyhow::anyhow!("stored registry: {e}"))?;

    // The chain: validator set, stakes and miner uids.
    let (mut backend, commit_mode) = match &cfg.chain {
        ChainSection::Sim {
            tempo,
            commit_reveal,
            block_time,
            neurons,
        } => {
            let genesis: Vec<([u8; 32], u64)> = neurons
                .iter()
                .map(|n| Ok((platform_keys::ss58_decode(&n.hotkey)?, n.stake)))
                .collect::<anyhow::Result<_>>()?;
            (
                Backend::Sim {
                    chain: chainsvc::sim_chain(netuid, *tempo, *commit_reveal, &genesis),
                    block_time: *block_time,
                },
                CommitMode::Hash,
            )
        }
        ChainSection::Subtensor {
            url,
            request_timeout,
            commit_mode,
            block_seconds,
        } => {
            let signer = platform_chain::extrinsic::ChainSigner::from_seed(me.secret_seed())?;
            let client = platform_chain::subtensor::Subtensor::connect(
                &platform_chain::subtensor::SubtensorConfig {
                    url: url.clone(),
                    request_timeout: *request_timeout,
                },
                signer,
            )?;
            let mode = match commit_mode {
                CommitModeName::Timelocked => CommitMode::Timelocked {
                    block_seconds: *block_seconds,
                },
                CommitModeName::Hash => CommitMode::Hash,
            };
            (Backend::Subtensor(client), mode)
        }
    };
    let metagraph = backend.chain().metagraph(netuid)?;
    let (validators, uids) = chainsvc::split_metagraph(&metagraph);
    if validators.is_empty() {
        anyhow::bail!("subnet {netuid} has no validator with a permit and stake");
    }
    let set = ValidatorSet::new(
        validators
            .iter()
            .map(|(h, s)| Validator {
                hotkey: platform_consensus::PublicKey(*h),
                stake: *s,
            })
            .collect(),
        None,
    )?;
    let total_stake = validators.iter().map(|(_, s)| u128::from(*s)).sum();
    if !validators.iter().any(|(h, _)| *h == my_hotkey) {
        tracing::warn!(
            "{} holds no validator permit on subnet {netuid}: following, not voting",
            ss58_encode(&my_hotkey)
        );
    }

    // Metrics and API.
    let status = Arc::new(Mutex::new(String::from("{}")));
    let (app_tx, app_rx) = crossbeam_channel::bounded::<AppMsg>(1024);
    let exporter = Exporter::install_with_api(
        cfg.metrics.listen,
        Some(Arc::new(NodeApi {
            status: status.clone(),
            tx: app_tx.clone(),
        })),
    )?;
    tracing::info!("metrics and status on http://{}", exporter.addr());

    // Engine.
    let mut engine_cfg = cfg.engine.clone();
    if engine_cfg.artifact_cache_dir.is_none() {
        engine_cfg.artifact_cache_dir = Some(data_dir.join("artifacts"));
    }
    let runtime = Runtime::new(&engine_cfg)?;
    let engine = ShardedEngine::start(runtime.clone())?;

    // Net.
    let valid_net = cfg.net.clone().validate()?;
    let validator_keys: std::collections::HashSet<Hotkey> =
        validators.iter().map(|(h, _)| *h).collect();
    let mut authors = HashMap::new();
    for t in [Topic::Consensus, Topic::Evaluations, Topic::Challenges] {
        authors.insert(t, validator_keys.clone());
    }
    let mut checks: HashMap<Topic, platform_net::PayloadCheck> = HashMap::new();
    checks.insert(
        Topic::Consensus,
        Arc::new(|env: &Envelope| {
            platform_consensus::codec::decode_message(&env.payload)
                .map(|_| ())
                .map_err(|e| e.0.to_string())
        }),
    );
    checks.insert(
        Topic::Evaluations,
        Arc::new(|env: &Envelope| {
            decode_exact::<BatchAnnounce>(&env.payload)
                .map(|_| ())
                .ok_or_else(|| "not a batch announcement".to_string())
        }),
    );
    // Miners' submissions are refused at the door (the miner's request is answered with the
    // reason; relays are refused too) unless they come from a registered hotkey.
    let registered: std::collections::HashSet<Hotkey> = uids.keys().copied().collect();
    checks.insert(
        Topic::Submissions,
        Arc::new(move |env: &Envelope| {
            if registered.contains(&env.author) {
                Ok(())
            } else {
                Err("the miner's hotkey is not registered on the subnet".into())
            }
        }),
    );
    let net = Net::start(
        valid_net,
        Identity {
            hotkey: me.clone(),
            node_key: node_key(&data_dir)?,
        },
        Options {
            checks,
            authors,
            ..Options::default()
        },
    )?;
    tracing::info!(
        "validator {} peer {} listening on {:?}",
        ss58_encode(&my_hotkey),
        net.handle().peer_id(),
        net.handle().listen_addrs()
    );

    // Consensus.
    let mut ccfg = platform_consensus::Config::new(Domain { netuid, epoch: 0 }, {
        let mut h = Sha256::new();
        h.update(b"platform/leader-seed/v1");
        h.update(netuid.to_le_bytes());
        h.finalize().into()
    });
    let view_timeout_ms = u64::try_from(cfg.consensus.view_timeout.as_millis()).unwrap_or(1000);
    ccfg.view_timeout_ms = view_timeout_ms;
    ccfg.view_timeout_max_ms =
        u64::try_from(cfg.consensus.view_timeout_max.as_millis()).unwrap_or(60_000);
    ccfg.checkpoint_interval = cfg.consensus.checkpoint_interval;
    let cstore = RedbStore::open(&data_dir.join("consensus.redb"))?;
    let (replica, first_actions) = Replica::start(
        ccfg,
        set,
        Signer::from_seed(me.secret_seed()),
        cstore,
        now_ms(),
    )?;

    // Chain thread.
    let submitter = WeightSubmitter::open(
        &data_dir.join("weights.redb"),
        my_hotkey,
        netuid,
        commit_mode,
    )?;
    let chain_status = Arc::new(Mutex::new(ChainStatus::default()));
    let (chain_tx, chain_rx) = crossbeam_channel::bounded::<WeightsJob>(64);
    let chain_thread = {
        let st = chain_status.clone();
        std::thread::Builder::new()
            .name("platform-chain".into())
            .spawn(move || chainsvc::run(backend, submitter, netuid, my_hotkey, chain_rx, st))?
    };

    let applied_height = store.meta(META_APPLIED_HEIGHT)?.unwrap_or(0);
    let last_epoch = store.meta(META_LAST_EPOCH)?;
    let mut app = App {
        netuid,
        clock,
        me,
        my_hotkey,
        view_timeout_ms,
        store,
        registry,
        runtime,
        engine,
        challenges: BTreeMap::new(),
        net: net.handle(),
        replica,
        validators,
        total_stake,
        uids,
        app_tx,
        chain_tx: Some(chain_tx),
        chain_status,
        status,
        metrics_addr: exporter.addr().to_string(),
        data_dir: data_dir.clone(),
        timer: None,
        want_proposal: None,
        validations: Vec::new(),
        decisions: VecDeque::new(),
        applied_height,
        last_epoch,
        batches: HashMap::new(),
        by_epoch: BTreeMap::new(),
        published: BTreeSet::new(),
        fetching: HashSet::new(),
        changes: BTreeMap::new(),
        inflight: HashMap::new(),
        backlog: VecDeque::new(),
        history: VecDeque::new(),
        started_epoch: clock.epoch_at(now_ms()),
        last_view_changes: 0,
        evaluated: 0,
    };
    app.restore()?;
    app.act(first_actions);
    app.publish_status();
    let mut last_status = Instant::now();

    while !stop.load(Ordering::Relaxed) {
        let mut sel = crossbeam_channel::Select::new();
        let i_net = sel.recv(net.events());
        let i_app = sel.recv(&app_rx);
        match sel.select_timeout(Duration::from_millis(10)) {
            Ok(op) if op.index() == i_net => {
                if let Ok(ev) = op.recv(net.events()) {
                    app.on_net(ev);
                }
            }
            Ok(op) if op.index() == i_app => {
                if let Ok(m) = op.recv(&app_rx) {
                    app.on_app(m);
                }
            }
            _ => {}
        }
        // Drain what else is ready, bounded so timers and results keep their turn.
        for _ in 0..256 {
            match net.events().try_recv() {
                Ok(ev) => app.on_net(ev),
                Err(_) => break,
            }
        }
        while let Ok(m) = app_rx.try_recv() {
            app.on_app(m);
        }
        app.tick();
        if last_status.elapsed() >= Duration::from_millis(250) {
            app.publish_status();
            last_status = Instant::now();
        }
    }

    tracing::info!("shutting down");
    let App {
        engine, chain_tx, ..
    } = app;
    engine.shutdown();
    drop(chain_tx);
    let _ = chain_thread.join();
    net.shutdown();
    drop(exporter);
    tracing::info!("stopped");
    Ok(())
}

impl App {
    /// After a restart: registered challenges back into the engine, kept batches back into
    /// the index, our own batches remembered, and committed decisions not yet applied queued.
    fn restore(&mut self) -> anyhow::Result<()> {
        let entries: Vec<_> = self.registry.entries().values().cloned().collect();
        for e in entries {
            if e.active {
                self.load_challenge(e.meta.id);
            }
        }
        let from = self.last_epoch.map_or(0, |e| e.saturating_sub(1));
        for (epoch, author, env) in self.store.batches_from(from)? {
            if author == self.my_hotkey {
                self.published.insert(epoch);
            }
            self.ingest_batch(&env);
            let _ = self.net.provide(env);
        }
        if let Some(last) = self.replica.store().last_decided()? {
            let mut h = self.applied_height + 1;
            while h <= last {
                let ds = self.replica.store().decisions(h, 256)?;
                if ds.is_empty() {
                    break;
                }
                h = ds.last().map_or(h, |d| d.height + 1);
                self.decisions.extend(ds);
            }
        }
        for (epoch, rec) in self.store.epochs_from(
            self.last_epoch
                .map_or(0, |e| e.saturating_sub(HISTORY as u64)),
        )? {
            if let Some(r) = decode_exact::<EpochRecord>(&rec) {
                self.push_history(epoch, &r);
            }
        }
        if !self.decisions.is_empty() {
            tracing::info!("replaying {} committed decisions", self.decisions.len());
        }
        Ok(())
    }

    fn push_history(&mut self, epoch: u64, r: &EpochRecord) {
        self.history.push_back(serde_json::json!({
            "epoch": epoch,
            "height": r.height,
            "digest": hex32(&r.digest),
            "weights": r.weights,
            "scored": r.scored,
            "reports": r.reports,
            "flagged": r.flagged,
        }));
        while self.history.len() > HISTORY {
            self.history.pop_front();
        }
    }

    /// Compile (or load from the artifact cache) an active challenge and warm its pools.
    fn load_challenge(&mut self, id: u32) {
        let Some(entry) = self.registry.entries().get(&id).cloned() else {
            return;
        };
        let module = match self.store.module(&entry.meta.module_hash) {
            Ok(Some(m)) => m,
            Ok(None) => {
                tracing::warn!(challenge = id, "module not held yet; fetching");
                self.fetch(Fetch::Module(entry.meta.module_hash));
                return;
            }
            Err(e) => {
                tracing::error!(challenge = id, "module: {e}");
                return;
            }
        };
        match self.runtime.register(ChallengeSpec {
            id: ChallengeId(id),
            name: entry.meta.name.clone(),
            wasm: module,
            policy: policy_of(&entry.meta),
            data: Vec::new(),
        }) {
            Ok(ch) => {
                self.engine.warm(&ch);
                self.challenges.insert(id, ch);
                tracing::info!(challenge = id, name = %entry.meta.name, "challenge active");
            }
            Err(e) => {
                // Deterministic: every validator refuses the same module the same way.
                tracing::error!(challenge = id, "module refused by the engine: {e}");
            }
        }
    }

    fn fetch(&mut self, what: Fetch) {
        if self.fetching.len() >= FETCHES_MAX || !self.fetching.insert(what) {
            return; // a needed input is asked for again when it is still missing
        }
        let net = self.net.clone();
        let tx = self.app_tx.clone();
        let hash = match what {
            Fetch::Batch(h) | Fetch::Module(h) => h,
        };
        let spawned = std::thread::Builder::new()
            .name("platform-fetch".into())
            .spawn(move || {
                let deadline = Instant::now() + FETCH_TIMEOUT;
                let mut bytes = None;
                while bytes.is_none() && Instant::now() < deadline {
                    match net.fetch(hash) {
                        Ok(b) => bytes = Some(b),
                        Err(_) => std::thread::sleep(Duration::from_millis(200)),
                    }
                }
                let _ = tx.send(AppMsg::Fetched { what, bytes });
            });
        if spawned.is_err() {
            self.fetching.remove(&what);
        }
    }

    // ---- events ----

    fn on_net(&mut self, ev: NetEvent) {
        let NetEvent::Message(d) = ev else {
            return;
        };
        match d.topic {
            Topic::Submissions => self.on_submission(d),
            Topic::Evaluations => {
                // An announcement: the batch itself is fetched by id from whoever holds it.
                let current = self.clock.epoch_at(now_ms());
                if let Some(a) = decode_exact::<BatchAnnounce>(&d.payload)
                    && !self.batches.contains_key(&a.id)
                    && a.epoch <= current
                    && a.epoch + 2 >= current
                {
                    self.fetch(Fetch::Batch(a.id));
                }
            }
            Topic::Consensus => match platform_consensus::codec::decode_message(&d.payload) {
                Ok(m) => {
                    let actions = self.replica.handle(now_ms(), Event::Message(m));
                    self.act(actions);
                }
                Err(e) => tracing::debug!("consensus message: {}", e.0),
            },
            Topic::Challenges => match self.verify_change(&d.payload) {
                Ok(sc) => self.accept_change(sc, d.payload),
                Err(e) => {
                    metrics::counter!(m::REGISTRY_REFUSED, "reason" => e.label()).increment(1);
                    tracing::warn!("registry change refused: {e}");
                }
            },
        }
    }

    fn on_submission(&mut self, d: Delivery) {
        let now = now_ms();
        let count = |result: &'static str| {
            metrics::counter!(m::INGRESS, "result" => result).increment(1);
        };
        let Ok(sub) = platform_net::Submission::decode(&d.payload) else {
            return count("malformed");
        };
        if !self.uids.contains_key(&d.author) {
            return count("unregistered_miner");
        }
        let Some(challenge) = self.challenges.get(&sub.challenge).cloned() else {
            return count("inactive_challenge");
        };
        let current = self.clock.epoch_at(now);
        let in_window = sub.epoch == current
            || (sub.epoch + 1 == current
                && now < self.clock.end(sub.epoch) + self.clock.settle() / 2);
        if !in_window {
            return count("wrong_epoch");
        }
        match self
            .store
            .record_submission(sub.epoch, sub.challenge, &d.author, &d.id, &d.envelope)
        {
            Ok(Counted::Kept) => count("not_counted"),
            Ok(_) => {
                count("accepted");
                let s = platform_engine::Submission {
                    id: d.id,
                    challenge,
                    payload: sub.body.into(),
                    context: EvalContext {
                        epoch: sub.epoch,
                        seed: epoch_seed(self.netuid, sub.epoch),
                    },
                };
                self.evaluate(sub.epoch, s);
            }
            Err(e) => {
                tracing::error!("store: {e}");
                count("store_error");
            }
        }
    }

    fn evaluate(&mut self, epoch: u64, s: platform_engine::Submission) {
        let key = (epoch, s.challenge.id.0, Sha256::digest(&s.payload).into());
        let id = s.id;
        match self.engine.submit(s.clone()) {
            Ok(()) => {
                self.inflight.insert(id, key);
            }
            Err(SubmitError::QueueFull { .. } | SubmitError::Saturated { .. })
                if self.backlog.len() < BACKLOG_MAX =>
            {
                self.backlog.push_back((epoch, s));
            }
            Err(SubmitError::QueueFull { .. } | SubmitError::Saturated { .. }) => {
                metrics::counter!(m::INGRESS, "result" => "shed").increment(1);
            }
            Err(e) => tracing::warn!("submission {} not evaluated: {e}", hex32(&id)),
        }
    }

    fn on_app(&mut self, m: AppMsg) {
        match m {
            AppMsg::Post { body, reply } => {
                let r = self.on_post(&body);
                let _ = reply.send(r);
            }
            AppMsg::Fetched { what, bytes } => {
                self.fetching.remove(&what);
                let Some(bytes) = bytes else {
                    tracing::warn!("fetch of {what:?} failed");
                    return;
                };
                match what {
                    Fetch::Batch(h) => {
                        if platform_net::wire::sha256(&bytes) == h
                            && self.ingest_batch(&bytes).is_some()
                        {
                            // Serve it onwards: every holder is a provider.
                            let _ = self.net.provide(bytes);
                        }
                    }
                    Fetch::Module(h) => match self.store.put_module(&bytes, Some(&h)) {
                        Ok(_) => {
                            let _ = self.net.provide(bytes);
                            let waiting: Vec<u32> = self
                                .registry
                                .entries()
                                .values()
                                .filter(|e| e.active && e.meta.module_hash == h)
                                .map(|e| e.meta.id)
                                .filter(|id| !self.challenges.contains_key(id))
                                .collect();
                            for id in waiting {
                                self.load_challenge(id);
                            }
                        }
                        Err(e) => tracing::warn!("fetched module refused: {e}"),
                    },
                }
            }
        }
    }

    /// An owner's change through the HTTP API: verified, module kept and provided, then
    /// gossiped to every validator; it takes effect once consensus commits it.
    fn on_post(&mut self, body: &[u8]) -> Result<String, String> {
        let post: ChallengePost =
            decode_exact(body).ok_or_else(|| "malformed challenge post".to_string())?;
        let sc = self.verify_change(&post.change).map_err(|e| {
            metrics::counter!(m::REGISTRY_REFUSED, "reason" => e.label()).increment(1);
            e.to_string()
        })?;
        if let Some(hash) = module_of(&sc.change) {
            match (&post.module, self.store.module(&hash)) {
                (_, Ok(Some(_))) => {}
                (Some(m), _) => {
                    self.store
                        .put_module(m, Some(&hash))
                        .map_err(|e| e.to_string())?;
                    let _ = self.net.provide(m.clone());
                }
                (None, _) => return Err("the change names a module that was not sent".into()),
            }
        }
        let nonce = sc.nonce;
        self.net
            .publish(Topic::Challenges, post.change.clone())
            .map_err(|e| format!("gossip: {e}"))?;
        self.accept_change(sc, post.change);
        Ok(format!(
            "accepted change with nonce {nonce}; it takes effect once committed"
        ))
    }

    /// Verify a change against the registry as it will be after the pending changes with
    /// lower nonces.
    fn verify_change(&self, bytes: &[u8]) -> Result<SignedChange, RegistryError> {
        if bytes.len() > crate::registry::CHANGE_MAX_BYTES {
            return Err(RegistryError::Malformed);
        }
        let sc = decode_exact::<SignedChange>(bytes).ok_or(RegistryError::Malformed)?;
        let mut projected = self.registry.clone();
        for c in self.changes.range(..sc.nonce).map(|(_, c)| c) {
            let _ = projected.apply(c);
        }
        projected.verify(bytes)
    }

    fn accept_change(&mut self, sc: SignedChange, bytes: Vec<u8>) {
        if sc.nonce <= self.registry.last_nonce() {
            return;
        }
        if let Some(h) = module_of(&sc.change)
            && !matches!(self.store.module(&h), Ok(Some(_)))
        {
            self.fetch(Fetch::Module(h));
        }
        tracing::info!(
            nonce = sc.nonce,
            "registry change pending consensus: {:?}",
            change_name(&sc.change)
        );
        self.changes.insert(sc.nonce, bytes);
    }

    /// Keep a signed batch (first per author and epoch); returns its id when it is new.
    fn ingest_batch(&mut self, envelope: &[u8]) -> Option<Hash> {
        let env = Envelope::decode(envelope).ok()?;
        if env.topic != Topic::Evaluations || !env.verify() {
            return None;
        }
        if !self.validators.iter().any(|(h, _)| *h == env.author) {
            return None;
        }
        let batch = Batch::decode_checked(&env.payload)?;
        if self.last_epoch.is_some_and(|l| batch.epoch + 1 < l) {
            return None; // long settled
        }
        let kept = self
            .store
            .put_batch(batch.epoch, &env.author, envelope)
            .ok()?;
        let id = platform_net::wire::sha256(&kept);
        let epoch = batch.epoch;
        if kept.as_slice() != envelope {
            // Not the first from this author: keep the first, but let it be fetched by id.
            let other = platform_net::wire::sha256(envelope);
            self.batches.insert(
                other,
                KnownBatch {
                    epoch,
                    author: env.author,
                    batch,
                },
            );
            return None;
        }
        self.by_epoch
            .entry(epoch)
            .or_default()
            .insert(env.author, id);
        let new = self
            .batches
            .insert(
                id,
                KnownBatch {
                    epoch,
                    author: env.author,
                    batch,
                },
            )
            .is_none();
        new.then_some(id)
    }

    // ---- the clock ----

    fn tick(&mut self) {
        let now = now_ms();
        // Evaluation results.
        while let Some(r) = self.engine.try_recv() {
            self.on_result(r);
        }
        while let Some((epoch, s)) = self.backlog.pop_front() {
            let before = self.backlog.len();
            self.evaluate(epoch, s);
            if self.backlog.len() > before {
                break; // still full
            }
        }
        // Our batch for the epoch that just settled.
        let current = self.clock.epoch_at(now);
        if let Some(e) = current.checked_sub(1)
            && now >= self.clock.end(e) + self.clock.settle()
            && e >= self.started_epoch
            && !self.published.contains(&e)
        {
            self.publish_batch(e);
        }
        // Committed decisions waiting for their inputs.
        self.apply_decisions();
        // Proposal, validations, timers.
        if self.decisions.is_empty() {
            self.maybe_propose(now);
            self.retry_validations(now);
        }
        if let Some((h, v, at)) = self.timer
            && at <= now
            && self.timers_open(now)
        {
            self.timer = None;
            let actions = self
                .replica
                .handle(now, Event::Timeout { height: h, view: v });
            self.act(actions);
        }
        let vc = self.replica.stats().view_changes;
        if vc > self.last_view_changes {
            metrics::counter!(m::VIEW_CHANGES).increment(vc - self.last_view_changes);
            self.last_view_changes = vc;
        }
        metrics::gauge!(m::HEIGHT).set(self.replica.height() as f64);
        metrics::gauge!(m::VIEW).set(self.replica.view() as f64);
        metrics::gauge!(m::EPOCH).set(current as f64);
    }

    /// Consensus timers run only while an epoch is due and undecided (plus one view timeout
    /// of grace for the leader), so idle rounds between epochs do not change views.
    fn timers_open(&self, now: u64) -> bool {
        if !self.decisions.is_empty() {
            return true; // catching up: let sync run
        }
        self.clock
            .latest_due(now.saturating_sub(self.view_timeout_ms))
            .is_some_and(|e| self.last_epoch.is_none_or(|l| e > l))
    }

    fn on_result(&mut self, r: platform_engine::EvalReport) {
        let id = r.result.submission_id;
        let Some((epoch, challenge, input_hash)) = self.inflight.remove(&id) else {
            return;
        };
        self.evaluated += 1;
        let canonical = r.result.canonical_bytes();
        let audit = AuditRecord {
            epoch,
            challenge,
            module_hash: r.result.module_hash,
            input_hash,
            submission: id,
            outcome: canonical[120],
            score: r.result.score,
            fuel: r.result.fuel_used,
            host_calls: r
                .host_calls
                .0
                .iter()
                .fold(0u32, |a, b| a.saturating_add(*b)),
        };
        match self.store.record_result(epoch, &id, &canonical, &audit) {
            Ok(_) => metrics::counter!(m::AUDIT).increment(1),
            Err(e) => {
                metrics::counter!(m::STORE_ERRORS).increment(1);
                tracing::error!("store: {e}");
            }
        }
    }

    fn publish_batch(&mut self, epoch: u64) {
        self.published.insert(epoch);
        let counted = match self.store.counted_submissions(epoch) {
            Ok(c) => c,
            Err(e) => return tracing::error!("store: {e}"),
        };
        let entries: Vec<BatchEntry> = counted
            .into_iter()
            .map(|(challenge, miner, submission)| BatchEntry {
                challenge,
                miner,
                submission,
                score: self
                    .store
                    .result(epoch, &submission)
                    .ok()
                    .flatten()
                    .and_then(|c| EvalResult::agreed_score(&c)),
            })
            .collect();
        let n = entries.len();
        let payload = Batch { epoch, entries }.encode();
        let env = Envelope::sign(&self.me, Topic::Evaluations, now_ms(), payload).encode();
        let kept = match self.store.put_batch(epoch, &self.my_hotkey, &env) {
            Ok(k) => k,
            Err(e) => return tracing::error!("store: {e}"),
        };
        let id = platform_net::wire::sha256(&kept);
        self.ingest_batch(&kept);
        let _ = self.net.provide(kept);
        metrics::counter!(m::BATCHES).increment(1);
        let announce = BatchAnnounce {
            epoch,
            id,
            entries: u32::try_from(n).unwrap_or(u32::MAX),
        };
        match self.net.publish(Topic::Evaluations, announce.encode()) {
            Ok(_) => tracing::info!(epoch, entries = n, "batch published"),
            Err(e) => tracing::warn!(epoch, "batch not announced (peers fetch it by id): {e}"),
        }
    }

    // ---- consensus ----

    fn act(&mut self, actions: Vec<Action>) {
        for a in actions {
            match a {
                Action::Broadcast(m) | Action::Reply(m) => {
                    let bytes = platform_consensus::codec::encode_message(&m);
                    if let Err(e) = self.net.publish(Topic::Consensus, bytes) {
                        tracing::debug!("consensus message not sent: {e}");
                    }
                }
                Action::SetTimer {
                    height,
                    view,
                    at_ms,
                } => self.timer = Some((height, view, at_ms)),
                Action::RequestProposal { height } => self.want_proposal = Some(height),
                Action::Validate {
                    height,
                    view,
                    value,
                } => self.validations.push(PendingValidation {
                    height,
                    view,
                    value,
                    deadline_ms: now_ms() + 2 * self.view_timeout_ms,
                }),
                Action::Decided(d) => {
                    metrics::counter!(m::DECISIONS).increment(1);
                    self.decisions.push_back(d);
                }
                Action::Checkpoint { height } => tracing::debug!(height, "checkpoint"),
                Action::Misbehaviour { signer, what } => {
                    metrics::counter!(m::MISBEHAVIOUR).increment(1);
                    tracing::warn!("validator {} misbehaved: {what}", ss58_encode(&signer.0));
                }
            }
        }
    }

    /// The batch ids for an epoch (one per author), sorted.
    fn batch_ids(&self, epoch: u64) -> Vec<Hash> {
        let mut ids: Vec<Hash> = self
            .by_epoch
            .get(&epoch)
            .map(|m| m.values().copied().collect())
            .unwrap_or_default();
        ids.sort();
        ids
    }

    fn maybe_propose(&mut self, now: u64) {
        let Some(h) = self.want_proposal else {
            return;
        };
        if h != self.replica.height() {
            self.want_proposal = None;
            return;
        }
        let Some(e) = self.clock.latest_due(now) else {
            return;
        };
        if self.last_epoch.is_some_and(|l| e <= l) {
            return;
        }
        let ids = self.batch_ids(e);
        let reporting: u128 = ids
            .iter()
            .filter_map(|id| self.batches.get(id))
            .filter_map(|b| self.validators.iter().find(|(k, _)| *k == b.author))
            .map(|(_, s)| u128::from(*s))
            .sum();
        if reporting * 3 <= self.total_stake * 2 && now < self.clock.due(e) + self.clock.settle() {
            return; // wait a little longer for batches
        }
        // Pending changes that apply in order, with their modules held.
        let mut projected = self.registry.clone();
        let mut changes = Vec::new();
        for bytes in self.changes.values() {
            let Ok(sc) = projected.verify(bytes) else {
                continue;
            };
            if let Some(m) = module_of(&sc.change)
                && !matches!(self.store.module(&m), Ok(Some(_)))
            {
                break;
            }
            let _ = projected.apply(bytes);
            changes.push(bytes.clone());
        }
        let Some(result) = self.compute(e, &ids) else {
            return;
        };
        let value = EpochValue {
            epoch: e,
            batches: ids,
            changes,
            digest: result.digest,
        };
        self.want_proposal = None;
        tracing::info!(epoch = e, height = h, "proposing {}", hex32(&result.digest));
        let actions = self.replica.handle(
            now,
            Event::Propose {
                height: h,
                value: value.encode(),
            },
        );
        self.act(actions);
    }

    /// The epoch result over these batches (all held), with the registry as it stands.
    fn compute(&self, epoch: u64, ids: &[Hash]) -> Option<epoch::EpochResult> {
        let mut reports = Vec::new();
        for id in ids {
            let b = self.batches.get(id)?;
            for en in &b.batch.entries {
                reports.push(Report {
                    validator: b.author,
                    challenge: en.challenge,
                    miner: en.miner,
                    score: en.score,
                });
            }
        }
        let input = EpochInput {
            epoch,
            validators: self
                .validators
                .iter()
                .map(|(h, s)| epoch::Validator {
                    hotkey: *h,
                    stake: *s,
                })
                .collect(),
            challenges: self
                .registry
                .active()
                .map(|m| epoch::Challenge {
                    id: m.id,
                    emission_share: m.emission_share,
                    rule: m.rule.into(),
                })
                .collect(),
            miners: self.uids.clone(),
            reports,
        };
        Some(epoch::compute(&input))
    }

    /// Inputs of a value this node lacks (fetches started), or `Err` if it is invalid.
    fn missing_inputs(&mut self, v: &EpochValue) -> Result<Vec<Fetch>, &'static str> {
        let mut missing = Vec::new();
        let mut authors = BTreeSet::new();
        for id in &v.batches {
            match self.batches.get(id) {
                Some(b) => {
                    if b.epoch != v.epoch {
                        return Err("batch of another epoch");
                    }
                    if !authors.insert(b.author) {
                        return Err("two batches from one validator");
                    }
                }
                None => missing.push(Fetch::Batch(*id)),
            }
        }
        let mut projected = self.registry.clone();
        for c in &v.changes {
            let sc = projected.apply(c).map_err(|e| e.label())?;
            if let Some(m) = module_of(&sc.change)
                && !matches!(self.store.module(&m), Ok(Some(_)))
            {
                missing.push(Fetch::Module(m));
            }
        }
        for f in &missing {
            self.fetch(*f);
        }
        Ok(missing)
    }

    fn retry_validations(&mut self, now: u64) {
        let pending = std::mem::take(&mut self.validations);
        for p in pending {
            if p.height != self.replica.height() {
                continue;
            }
            let verdict = match EpochValue::decode_checked(&p.value) {
                None => Some(Err("malformed value")),
                Some(v) => {
                    if self.last_epoch.is_some_and(|l| v.epoch <= l) {
                        Some(Err("epoch already committed"))
                    } else if self.clock.end(v.epoch) > now + 2_000 {
                        Some(Err("epoch has not ended"))
                    } else {
                        match self.missing_inputs(&v) {
                            Err(e) => Some(Err(e)),
                            Ok(m) if !m.is_empty() => None,
                            Ok(_) => match self.compute(v.epoch, &v.batches) {
                                Some(r) if r.digest == v.digest => Some(Ok(())),
                                Some(_) => Some(Err("result digest differs")),
                                None => None,
                            },
                        }
                    }
                }
            };
            let verdict = match verdict {
                None if now >= p.deadline_ms => Some(Err("inputs unavailable")),
                other => other,
            };
            match verdict {
                None => self.validations.push(p),
                Some(r) => {
                    if let Err(why) = r {
                        tracing::warn!(
                            height = p.height,
                            view = p.view,
                            "rejecting proposal: {why}"
                        );
                    }
                    let actions = self.replica.handle(
                        now,
                        Event::Validated {
                            height: p.height,
                            view: p.view,
                            digest: value_digest(&p.value),
                            accept: r.is_ok(),
                        },
                    );
                    self.act(actions);
                }
            }
        }
    }

    /// Apply committed decisions in height order, each once its inputs are held.
    fn apply_decisions(&mut self) {
        while let Some(d) = self.decisions.front() {
            let (height, decoded) = (d.height, EpochValue::decode_checked(&d.value));
            if height <= self.applied_height {
                self.decisions.pop_front();
                continue;
            }
            let Some(v) = decoded else {
                tracing::error!(height, "committed value does not decode; skipping it");
                self.decisions.pop_front();
                self.applied_height = height;
                continue;
            };
            match self.missing_inputs(&v) {
                Ok(m) if !m.is_empty() => return,
                Ok(_) => {}
                Err(e) => tracing::error!(height, "committed value: {e}"),
            }
            let d = self.decisions.pop_front().expect("front exists");
            self.apply(&d, &v);
        }
    }

    fn apply(&mut self, d: &Decision, v: &EpochValue) {
        let now = now_ms();
        let result = self.compute(v.epoch, &v.batches);
        let (weights, scored, flagged, reports) = match &result {
            Some(r) => {
                if r.digest != v.digest {
                    tracing::error!(
                        epoch = v.epoch,
                        "our result {} differs from the committed {}",
                        hex32(&r.digest),
                        hex32(&v.digest)
                    );
                }
                for f in &r.flagged {
                    metrics::counter!(m::FLAGGED).increment(1);
                    tracing::warn!(
                        epoch = v.epoch,
                        challenge = f.challenge,
                        "validator {} flagged: {:?}",
                        ss58_encode(&f.validator),
                        f.flag
                    );
                }
                let reports: usize = v
                    .batches
                    .iter()
                    .filter_map(|id| self.batches.get(id))
                    .map(|b| b.batch.entries.len())
                    .sum();
                (r.weights.clone(), r.scores.len(), r.flagged.len(), reports)
            }
            None => (Vec::new(), 0, 0, 0),
        };
        // Registry changes, after the epoch's result.
        let mut changed = BTreeSet::new();
        for c in &v.changes {
            match self.registry.apply(c) {
                Ok(sc) => {
                    tracing::info!(
                        nonce = sc.nonce,
                        "registry change committed: {}",
                        change_name(&sc.change)
                    );
                    match &sc.change {
                        Change::Publish(m) | Change::Update(m) => {
                            changed.insert(m.id);
                        }
                        Change::Activate(id) | Change::Deactivate(id) => {
                            changed.insert(*id);
                        }
                    }
                }
                Err(e) => tracing::error!("committed registry change refused: {e}"),
            }
        }
        let entries: Vec<(u32, Vec<u8>)> = changed
            .iter()
            .filter_map(|id| self.registry.entries().get(id).map(|e| (*id, e.encode())))
            .collect();
        let record = EpochRecord {
            height: d.height,
            digest: v.digest,
            weights: weights.clone(),
            scored: u32::try_from(scored).unwrap_or(u32::MAX),
            reports: u32::try_from(reports).unwrap_or(u32::MAX),
            flagged: u32::try_from(flagged).unwrap_or(u32::MAX),
        };
        let rec_bytes = record.encode();
        if let Err(e) = self.store.apply_decision(&AppliedDecision {
            height: d.height,
            epoch: Some((v.epoch, &rec_bytes)),
            registry: &entries,
            registry_nonce: self.registry.last_nonce(),
        }) {
            tracing::error!("store: {e}; stopping application of decisions");
            return;
        }
        self.applied_height = d.height;
        self.last_epoch = Some(v.epoch);
        self.changes.retain(|n, _| *n > self.registry.last_nonce());
        for id in changed {
            let active = self.registry.entries().get(&id).is_some_and(|e| e.active);
            if self.challenges.remove(&id).is_some() {
                self.engine.retire(ChallengeId(id));
            }
            if active {
                self.load_challenge(id);
            }
        }
        let latency = now.saturating_sub(self.clock.end(v.epoch)) as f64 / 1000.0;
        metrics::histogram!(m::COMMIT_LATENCY).record(latency);
        metrics::gauge!(m::COMMITTED_EPOCH).set(v.epoch as f64);
        tracing::info!(
            epoch = v.epoch,
            height = d.height,
            batches = v.batches.len(),
            scored,
            "committed {}",
            hex32(&v.digest)
        );
        self.push_history(v.epoch, &record);
        // Weights for a recent epoch go to the chain; replayed history does not.
        let current = self.clock.epoch_at(now);
        if v.epoch + 3 >= current
            && let Some(tx) = &self.chain_tx
        {
            let (uids, w): (Vec<u16>, Vec<u64>) = weights.into_iter().unzip();
            let _ = tx.try_send(WeightsJob {
                epoch: v.epoch,
                uids,
                weights: w,
            });
        }
        // Old epochs' batches are no longer needed in memory.
        let keep_from = v.epoch.saturating_sub(1);
        let old: Vec<u64> = self.by_epoch.range(..keep_from).map(|(e, _)| *e).collect();
        for e in old {
            self.by_epoch.remove(&e);
        }
        self.batches.retain(|_, b| b.epoch >= keep_from);
        self.published.retain(|e| *e >= keep_from);
    }

    fn publish_status(&self) {
        let now = now_ms();
        for f in ["node.redb", "consensus.redb", "weights.redb"] {
            if let Ok(md) = std::fs::metadata(self.data_dir.join(f)) {
                metrics::gauge!(m::STORE_BYTES, "file" => f).set(md.len() as f64);
            }
        }
        let peers = self.net.peers().map(|p| p.len()).unwrap_or(0);
        let chain = self
            .chain_status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let registry: Vec<serde_json::Value> = self
            .registry
            .entries()
            .values()
            .map(|e| {
                serde_json::json!({
                    "id": e.meta.id,
                    "name": e.meta.name,
                    "version": e.meta.version,
                    "active": e.active,
                    "loaded": self.challenges.contains_key(&e.meta.id),
                    "module": hex32(&e.meta.module_hash),
                    "emission_share": e.meta.emission_share,
                })
            })
            .collect();
        let s = serde_json::json!({
            "hotkey": ss58_encode(&self.my_hotkey),
            "peer_id": self.net.peer_id(),
            "listen": self.net.listen_addrs(),
            "metrics": format!("http://{}/metrics", self.metrics_addr),
            "epoch": self.clock.epoch_at(now),
            "epoch_ms": self.clock.len_ms,
            "height": self.replica.height(),
            "view": self.replica.view(),
            "applied_height": self.applied_height,
            "last_committed_epoch": self.last_epoch,
            "committed": self.history,
            "peers": peers,
            "engine_outstanding": self.engine.outstanding(),
            "backlog": self.backlog.len(),
            "evaluated": self.evaluated,
            "pending_changes": self.changes.len(),
            "pending_decisions": self.decisions.len(),
            "registry": registry,
            "registry_nonce": self.registry.last_nonce(),
            "chain": chain,
        });
        *self.status.lock().unwrap_or_else(|p| p.into_inner()) = s.to_string();
    }
}

fn module_of(c: &Change) -> Option<Hash> {
    match c {
        Change::Publish(m) | Change::Update(m) => Some(m.module_hash),
        _ => None,
    }
}

fn change_name(c: &Change) -> String {
    match c {
        Change::Publish(m) => format!("publish {} ({}) v{}", m.id, m.name, m.version),
        Change::Update(m) => format!("update {} ({}) v{}", m.id, m.name, m.version),
        Change::Activate(id) => format!("activate {id}"),
        Change::Deactivate(id) => format!("deactivate {id}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_places_batches_and_proposals_after_each_epoch() {
        let c = Clock { len_ms: 10_000 };
        assert_eq!(c.epoch_at(25_000), 2);
        assert_eq!(c.end(2), 30_000);
        assert_eq!(c.due(2), 34_000);
        assert_eq!(c.latest_due(33_999), Some(1));
        assert_eq!(c.latest_due(34_000), Some(2));
        assert_eq!(c.latest_due(13_999), None);
        assert_eq!(c.latest_due(14_000), Some(0));
        assert_eq!(c.latest_due(5_000), None);
    }

    #[test]
    fn epoch_seeds_differ_by_subnet_and_epoch() {
        assert_ne!(epoch_seed(1, 1), epoch_seed(1, 2));
        assert_ne!(epoch_seed(1, 1), epoch_seed(2, 1));
    }
}
