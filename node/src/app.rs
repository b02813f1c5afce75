//! The running validator: the shell around the epoch machine (`machine`). One application
//! thread turns what arrives (net events, chain blocks and rosters, engine results, API
//! posts, fetched blobs) into machine inputs with the wall clock, and carries out the
//! machine's effects on the real net, engine, store and chain thread. The protocol itself
//! (what is admitted, when batches and proposals go out, what is voted for and applied)
//! lives in the machine, which the simulation twin (`sim`) runs too; nothing here decides.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use crossbeam_channel::Sender;
use platform_chain::submit::{CommitMode, WeightSubmitter};
use platform_consensus::RedbStore;
use platform_engine::{
    ChallengeId, ChallengePolicy, ChallengeSpec, EvalContext, EvalResult, Runtime, ShardedEngine,
    SubmitError,
};
use platform_keys::{Keypair, ss58_encode};
use platform_net::{Envelope, Identity, Net, NetEvent, NetHandle, Options, Topic};

use crate::chainsvc::{self, Backend, ChainEvent, ChainJob, ChainStatus, WeightsJob};
use crate::config::{ChainSection, CommitModeName, NodeConfig};
use crate::exporter::{Api, Exporter};
use crate::machine::{
    Applied, Arrival, Effect, Hash, Hotkey, Input, Machine, MachineConfig, Restored, Roster,
    Schedule,
};
use crate::metrics as m;
use crate::msg::{ChallengePost, EpochRecord, decode_exact};
use crate::registry::{ChallengeMeta, Registry};
use crate::status::StatusView;
use crate::store::{
    AppliedDecision, AuditRecord, META_APPLIED_HEIGHT, META_LAST_EPOCH, META_REGISTRY_NONCE, Store,
};

/// Fetches of one blob give up after this.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Submissions waiting for room in the engine at most; beyond, new ones are shed (counted).
const BACKLOG_MAX: usize = 200_000;
/// Epochs before the current one whose kept submissions are restored after a restart.
const RESTORE_EPOCHS: u64 = 8;

/// Wall-clock milliseconds since the Unix epoch: the shell's clock, handed to the machine.
fn now_ms() -> u64 {
    platform_net::wire::now_ms()
}

/// Messages to the application thread from the API, fetch and chain threads.
enum AppMsg {
    Post {
        body: Vec<u8>,
        reply: Sender<Result<String, String>>,
    },
    Fetched {
        hash: Hash,
        bytes: Option<Vec<u8>>,
    },
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

fn policy_of(meta: &ChallengeMeta) -> ChallengePolicy {
    ChallengePolicy {
        fuel_limit: meta.limits.fuel,
        memory_limit_bytes: meta.limits.memory_bytes,
        input_max_bytes: u64::from(meta.limits.input_bytes),
        output_max_bytes: u64::from(meta.limits.output_bytes),
        ..ChallengePolicy::default()
    }
}

/// The chain backend a config names, and how weights are committed on it.
fn backend(cfg: &NodeConfig, me: &Keypair) -> anyhow::Result<(Backend, CommitMode)> {
    let netuid = cfg.node.netuid;
    Ok(match &cfg.chain {
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
        ChainSection::Devnet {
            url,
            request_timeout,
        } => (
            Backend::Remote(crate::chainserver::RemoteChain::new(url, *request_timeout)),
            CommitMode::Hash,
        ),
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
    })
}

/// What the machine resumes from: the store's registry, applied height, batches and the
/// kept submissions of recent epochs with their scores.
fn restored(store: &Store, owner: Hotkey, current: u64) -> anyhow::Result<Restored> {
    let registry = Registry::restore(
        owner,
        &store.registry()?,
        store.meta(META_REGISTRY_NONCE)?.unwrap_or(0),
    )
    .map_err(|e| anyhow::anyhow!("stored registry: {e}"))?;
    let last_epoch = store.meta(META_LAST_EPOCH)?;
    let from = last_epoch
        .map_or(0, |e| e + 1)
        .max(current.saturating_sub(RESTORE_EPOCHS));
    let mut submissions = Vec::new();
    for (epoch, challenge, miner, id) in store.counted_from(from)? {
        let Some(env) = store.submission_body(&id)? else {
            continue;
        };
        let Some(sub) = Envelope::decode(&env)
            .ok()
            .and_then(|e| platform_net::Submission::decode(&e.payload).ok())
        else {
            continue;
        };
        let score = store
            .result(epoch, &id)?
            .map(|c| EvalResult::agreed_score(&c));
        submissions.push((
            Arrival {
                id,
                author: miner,
                challenge,
                epoch,
                body: sub.body,
                envelope: env,
            },
            score,
        ));
    }
    Ok(Restored {
        registry: Some(registry),
        applied_height: store.meta(META_APPLIED_HEIGHT)?.unwrap_or(0),
        last_epoch,
        batches: store.batches_from(last_epoch.map_or(0, |e| e + 1))?,
        submissions,
        modules: store.module_hashes()?.into_iter().collect(),
    })
}

/// Everything the application thread owns besides the machine.
struct Shell {
    store: Store,
    runtime: Runtime,
    engine: ShardedEngine,
    challenges: HashMap<u32, Arc<platform_engine::Challenge>>,
    net: NetHandle,
    app_tx: Sender<AppMsg>,
    chain_tx: Sender<ChainJob>,
    inflight: HashMap<Hash, (u64, u32, Hash)>,
    backlog: std::collections::VecDeque<(u64, platform_engine::Submission)>,
    fetching: HashSet<Hash>,
    replies: HashMap<u64, Sender<Result<String, String>>>,
    next_token: u64,
    miners: Arc<RwLock<HashSet<Hotkey>>>,
    pinned: std::collections::BTreeMap<u64, Roster>,
    view: StatusView,
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
    let store = Store::open(&data_dir.join("node.redb")).context("opening node.redb")?;

    // The chain: how long an epoch is and where the chain stands.
    let (mut backend, commit_mode) = backend(&cfg, &me)?;
    let epoch_blocks = match cfg.node.epoch_blocks {
        Some(b) => b,
        None => {
            let hp = backend
                .chain()
                .hyperparams(netuid)
                .with_context(|| format!("reading subnet {netuid}'s tempo"))?;
            u64::from(hp.tempo) + 1
        }
    };
    anyhow::ensure!(
        epoch_blocks >= crate::machine::EPOCH_BLOCKS_MIN,
        "subnet {netuid}'s epoch is {epoch_blocks} blocks; set node.epoch_blocks to at least {}",
        crate::machine::EPOCH_BLOCKS_MIN
    );
    let schedule = Schedule::of_subnet(netuid, epoch_blocks);
    let head = backend
        .chain()
        .current_block()
        .context("reading the chain's latest block")?;
    tracing::info!(
        "chain at block {}; epochs of {epoch_blocks} blocks (epoch {} now)",
        head.number,
        schedule.epoch_of(head.number)
    );

    // Metrics and API.
    let status = Arc::new(Mutex::new(String::from("{}")));
    let (app_tx, app_rx) = crossbeam_channel::bounded::<AppMsg>(4096);
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

    // Net: who may publish on validator topics and which miners may submit follow the
    // pinned rosters (updated as epochs are pinned).
    let miners: Arc<RwLock<HashSet<Hotkey>>> = Arc::default();
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
            decode_exact::<crate::msg::BatchAnnounce>(&env.payload)
                .map(|_| ())
                .ok_or_else(|| "not a batch announcement".to_string())
        }),
    );
    let door = miners.clone();
    checks.insert(
        Topic::Submissions,
        Arc::new(move |env: &Envelope| {
            let known = door.read().unwrap_or_else(|p| p.into_inner());
            if known.is_empty() || known.contains(&env.author) {
                Ok(())
            } else {
                Err("the miner's hotkey is not registered on the subnet".into())
            }
        }),
    );
    let net = Net::start(
        cfg.net.clone().validate()?,
        Identity {
            hotkey: me.clone(),
            node_key: node_key(&data_dir)?,
        },
        Options {
            checks,
            ..Options::default()
        },
    )?;
    tracing::info!(
        "validator {} peer {} listening on {:?}",
        ss58_encode(&my_hotkey),
        net.handle().peer_id(),
        net.handle().listen_addrs()
    );

    // Chain thread.
    let submitter = WeightSubmitter::open(
        &data_dir.join("weights.redb"),
        my_hotkey,
        netuid,
        commit_mode,
    )?;
    let chain_status = Arc::new(Mutex::new(ChainStatus::default()));
    let (chain_tx, chain_rx) = crossbeam_channel::bounded::<ChainJob>(256);
    let (ev_tx, ev_rx) = crossbeam_channel::bounded::<ChainEvent>(256);
    let chain_thread = {
        let st = chain_status.clone();
        std::thread::Builder::new()
            .name("platform-chain".into())
            .spawn(move || {
                chainsvc::run(backend, submitter, netuid, my_hotkey, chain_rx, ev_tx, st)
            })?
    };

    // The machine, resumed from the stores.
    let mcfg = MachineConfig {
        netuid,
        schedule,
        genesis_epoch: cfg.consensus.genesis_epoch.unwrap_or(0),
        settle_ms: ms(cfg.consensus.settle),
        view_timeout_ms: ms(cfg.consensus.view_timeout),
        view_timeout_max_ms: ms(cfg.consensus.view_timeout_max),
        checkpoint_interval: cfg.consensus.checkpoint_interval,
        rule_break: None,
    };
    let cstore = RedbStore::open(&data_dir.join("consensus.redb"))?;
    let restored = restored(&store, owner, schedule.epoch_of(head.number))?;
    let history = crate::status::history_from(&store, restored.last_epoch)?;
    let (mut machine, first) = Machine::new(mcfg, me.clone(), owner, cstore, restored);
    let mut shell = Shell {
        store,
        runtime,
        engine,
        challenges: HashMap::new(),
        net: net.handle(),
        app_tx,
        chain_tx,
        inflight: HashMap::new(),
        backlog: std::collections::VecDeque::new(),
        fetching: HashSet::new(),
        replies: HashMap::new(),
        next_token: 1,
        miners,
        pinned: std::collections::BTreeMap::new(),
        view: StatusView::new(
            my_hotkey,
            data_dir.clone(),
            exporter.addr().to_string(),
            chain_status,
            status,
            history,
        ),
    };
    // Stored modules are served again (a late joiner may need them from us).
    for h in shell.store.module_hashes()? {
        if let Ok(Some(b)) = shell.store.module(&h) {
            let _ = shell.net.provide(b);
        }
    }
    shell.carry_out(&mut machine, first);
    shell.publish_status(&machine);
    let mut last_status = Instant::now();

    while !stop.load(Ordering::Relaxed) {
        let mut sel = crossbeam_channel::Select::new();
        let i_net = sel.recv(net.events());
        let i_app = sel.recv(&app_rx);
        let i_chain = sel.recv(&ev_rx);
        let mut inputs = Vec::new();
        match sel.select_timeout(Duration::from_millis(10)) {
            Ok(op) if op.index() == i_net => {
                if let Ok(ev) = op.recv(net.events()) {
                    shell.on_net(ev, &mut inputs);
                }
            }
            Ok(op) if op.index() == i_app => {
                if let Ok(msg) = op.recv(&app_rx) {
                    shell.on_app(msg, &mut inputs);
                }
            }
            Ok(op) if op.index() == i_chain => {
                if let Ok(ev) = op.recv(&ev_rx) {
                    inputs.push(chain_input(ev));
                }
            }
            _ => {}
        }
        // Drain what else is ready, bounded so timers and results keep their turn.
        for ev in net.events().try_iter().take(256) {
            shell.on_net(ev, &mut inputs);
        }
        for msg in app_rx.try_iter().take(256) {
            shell.on_app(msg, &mut inputs);
        }
        inputs.extend(ev_rx.try_iter().map(chain_input));
        shell.engine_results(&mut inputs);
        inputs.push(Input::Tick);
        for input in inputs {
            let effects = machine.handle(now_ms(), input);
            shell.carry_out(&mut machine, effects);
        }
        if last_status.elapsed() >= Duration::from_millis(250) {
            shell.publish_status(&machine);
            last_status = Instant::now();
        }
    }

    tracing::info!("shutting down");
    let Shell {
        engine, chain_tx, ..
    } = shell;
    engine.shutdown();
    drop(chain_tx);
    let _ = chain_thread.join();
    net.shutdown();
    drop(exporter);
    tracing::info!("stopped");
    Ok(())
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn chain_input(ev: ChainEvent) -> Input {
    match ev {
        ChainEvent::Block(number) => Input::Block { number },
        ChainEvent::Roster { epoch, roster } => Input::Roster { epoch, roster },
        ChainEvent::RosterUnavailable { epoch, reason } => {
            Input::RosterUnavailable { epoch, reason }
        }
    }
}

impl Shell {
    fn on_net(&mut self, ev: NetEvent, inputs: &mut Vec<Input>) {
        let NetEvent::Message(d) = ev else {
            return;
        };
        if d.topic == Topic::Submissions {
            match platform_net::Submission::decode(&d.payload) {
                Ok(sub) => inputs.push(Input::Submission(Arrival {
                    id: d.id,
                    author: d.author,
                    challenge: sub.challenge,
                    epoch: sub.epoch,
                    body: sub.body,
                    envelope: d.envelope,
                })),
                Err(_) => metrics::counter!(m::INGRESS, "result" => "malformed").increment(1),
            }
            return;
        }
        inputs.push(Input::Gossip {
            topic: d.topic,
            payload: d.payload,
        });
    }

    fn on_app(&mut self, msg: AppMsg, inputs: &mut Vec<Input>) {
        match msg {
            AppMsg::Post { body, reply } => match decode_exact::<ChallengePost>(&body) {
                Some(post) => {
                    let token = self.next_token;
                    self.next_token += 1;
                    self.replies.insert(token, reply);
                    inputs.push(Input::Post {
                        token,
                        change: post.change,
                        module: post.module,
                    });
                }
                None => {
                    let _ = reply.send(Err("malformed challenge post".into()));
                }
            },
            AppMsg::Fetched { hash, bytes } => {
                self.fetching.remove(&hash);
                inputs.push(Input::Fetched { hash, bytes });
            }
        }
    }

    /// Evaluation results: stored with their audit record, then their scores to the machine.
    fn engine_results(&mut self, inputs: &mut Vec<Input>) {
        while let Some(r) = self.engine.try_recv() {
            let id = r.result.submission_id;
            let Some((epoch, challenge, input_hash)) = self.inflight.remove(&id) else {
                continue;
            };
            self.view.evaluated += 1;
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
            inputs.push(Input::Evaluated {
                id,
                score: EvalResult::agreed_score(&canonical),
            });
        }
        while let Some((epoch, s)) = self.backlog.pop_front() {
            let before = self.backlog.len();
            self.submit(epoch, s);
            if self.backlog.len() > before {
                break; // still full
            }
        }
    }

    fn submit(&mut self, epoch: u64, s: platform_engine::Submission) {
        let key = (
            epoch,
            s.challenge.id.0,
            platform_net::wire::sha256(&s.payload),
        );
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
            Err(e) => tracing::warn!("submission {} not evaluated: {e}", hex::encode(id)),
        }
    }

    fn fetch(&mut self, hash: Hash) {
        if !self.fetching.insert(hash) {
            return;
        }
        let net = self.net.clone();
        let tx = self.app_tx.clone();
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
                let _ = tx.send(AppMsg::Fetched { hash, bytes });
            });
        if spawned.is_err() {
            self.fetching.remove(&hash);
            let _ = self.app_tx.try_send(AppMsg::Fetched { hash, bytes: None });
        }
    }

    /// Carry out the machine's effects, in order; inputs they produce at once (a challenge
    /// loaded) go straight back.
    fn carry_out(&mut self, machine: &mut Machine<RedbStore>, effects: Vec<Effect>) {
        let mut queue: std::collections::VecDeque<Effect> = effects.into();
        while let Some(e) = queue.pop_front() {
            if let Some(input) = self.effect(e) {
                queue.extend(machine.handle(now_ms(), input));
            }
        }
    }

    fn effect(&mut self, e: Effect) -> Option<Input> {
        match e {
            Effect::Publish { topic, payload } => {
                if let Err(err) = self.net.publish(topic, payload) {
                    tracing::debug!(?topic, "not published: {err}");
                }
            }
            Effect::Provide(bytes) => {
                let _ = self.net.provide(bytes);
            }
            Effect::Fetch(hash) => self.fetch(hash),
            Effect::ReadRoster { epoch, block } => {
                if self
                    .chain_tx
                    .try_send(ChainJob::Roster { epoch, block })
                    .is_err()
                {
                    tracing::warn!(epoch, "chain thread busy; the roster is asked again");
                }
            }
            Effect::Pinned { epoch, roster } => self.pinned(epoch, roster),
            Effect::RecordSubmission(a) => {
                if let Err(e) = self.store.record_submission(
                    a.epoch,
                    a.challenge,
                    &a.author,
                    &a.id,
                    &a.envelope,
                ) {
                    metrics::counter!(m::STORE_ERRORS).increment(1);
                    tracing::error!("store: {e}");
                }
            }
            Effect::Evaluate {
                epoch,
                id,
                challenge,
                seed,
                body,
            } => match self.challenges.get(&challenge).cloned() {
                Some(ch) => self.submit(
                    epoch,
                    platform_engine::Submission {
                        id,
                        challenge: ch,
                        payload: body.into(),
                        context: EvalContext { epoch, seed },
                    },
                ),
                None => return Some(Input::Evaluated { id, score: None }),
            },
            Effect::StoreBatch {
                epoch,
                author,
                envelope,
            } => {
                if let Err(e) = self.store.put_batch(epoch, &author, &envelope) {
                    tracing::error!("store: {e}");
                }
            }
            Effect::StoreModule(bytes) => {
                if let Err(e) = self.store.put_module(&bytes, None) {
                    tracing::error!("store: {e}");
                }
            }
            Effect::LoadChallenge(meta) => {
                let ok = self.load_challenge(&meta);
                return Some(Input::ChallengeLoaded { id: meta.id, ok });
            }
            Effect::RetireChallenge(id) => {
                if self.challenges.remove(&id).is_some() {
                    self.engine.retire(ChallengeId(id));
                }
            }
            Effect::Applied(a) => self.applied(&a),
            Effect::Reply { token, result } => {
                if let Some(tx) = self.replies.remove(&token) {
                    let _ = tx.send(result);
                }
            }
        }
        None
    }

    /// Compile (or load from the artifact cache) an active challenge and warm its pools.
    fn load_challenge(&mut self, meta: &ChallengeMeta) -> bool {
        let module = match self.store.module(&meta.module_hash) {
            Ok(Some(m)) => m,
            Ok(None) => {
                tracing::warn!(challenge = meta.id, "module not held yet");
                return false;
            }
            Err(e) => {
                tracing::error!(challenge = meta.id, "module: {e}");
                return false;
            }
        };
        match self.runtime.register(ChallengeSpec {
            id: ChallengeId(meta.id),
            name: meta.name.clone(),
            wasm: module,
            policy: policy_of(meta),
            data: Vec::new(),
        }) {
            Ok(ch) => {
                self.engine.warm(&ch);
                self.challenges.insert(meta.id, ch);
                tracing::info!(challenge = meta.id, name = %meta.name, "challenge active");
                true
            }
            Err(e) => {
                // Deterministic: every validator refuses the same module the same way.
                tracing::error!(challenge = meta.id, "module refused by the engine: {e}");
                false
            }
        }
    }

    /// An epoch's roster is pinned: logged, and the net's door checks follow it (validators
    /// and miners of the two latest pinned epochs).
    fn pinned(&mut self, epoch: u64, roster: Roster) {
        tracing::info!(
            epoch,
            block = roster.pin.block,
            hash = %hex::encode(&roster.pin.hash[..8]),
            validators = %roster
                .validators
                .iter()
                .map(|(k, s)| format!("{}={s}", &ss58_encode(k)[..8]))
                .collect::<Vec<_>>()
                .join(","),
            miners = roster.miners.len(),
            "metagraph pinned"
        );
        self.pinned.insert(epoch, roster);
        while self.pinned.len() > 2 {
            self.pinned.pop_first();
        }
        let validators: HashSet<Hotkey> = self
            .pinned
            .values()
            .flat_map(|r| r.validators.iter().map(|(k, _)| *k))
            .collect();
        for t in [Topic::Consensus, Topic::Evaluations, Topic::Challenges] {
            let _ = self.net.set_authors(t, Some(validators.clone()));
        }
        let miners: HashSet<Hotkey> = self
            .pinned
            .values()
            .flat_map(|r| r.miners.keys().copied())
            .collect();
        *self.miners.write().unwrap_or_else(|p| p.into_inner()) = miners;
    }

    fn applied(&mut self, a: &Applied) {
        let rec_bytes = parity_scale_codec::Encode::encode(&a.record);
        if let Err(e) = self.store.apply_decision(&AppliedDecision {
            height: a.height,
            epoch: Some((a.epoch, &rec_bytes)),
            registry: &a.registry,
            registry_nonce: a.registry_nonce,
        }) {
            // The machine moves on; a restart re-applies from the consensus store.
            metrics::counter!(m::STORE_ERRORS).increment(1);
            tracing::error!("store: {e}; the decision is applied again after a restart");
        }
        if let Some(t) = a.ended_at_ms {
            metrics::histogram!(m::COMMIT_LATENCY)
                .record(now_ms().saturating_sub(t) as f64 / 1000.0);
        }
        metrics::gauge!(m::COMMITTED_EPOCH).set(a.epoch as f64);
        self.view.push_history(a.epoch, a.pin.block, &a.record);
        // Weights for a recent epoch go to the chain; replayed history does not.
        if a.recent {
            let (uids, w): (Vec<u16>, Vec<u64>) = a.record.weights.iter().copied().unzip();
            let job = ChainJob::Weights(WeightsJob {
                epoch: a.epoch,
                uids,
                weights: w,
            });
            if self.chain_tx.try_send(job).is_err() {
                tracing::warn!(epoch = a.epoch, "chain thread busy; weights not queued");
            }
        }
    }

    fn publish_status(&mut self, machine: &Machine<RedbStore>) {
        let peers = self.net.peers().map(|p| p.len()).unwrap_or(0);
        self.view.publish(
            machine,
            &self.net,
            peers,
            self.engine.outstanding(),
            self.backlog.len(),
            &self.challenges.keys().copied().collect(),
        );
        let vc = machine.view_changes();
        if vc > self.view.view_changes {
            metrics::counter!(m::VIEW_CHANGES).increment(vc - self.view.view_changes);
            self.view.view_changes = vc;
        }
        metrics::gauge!(m::HEIGHT).set(machine.height() as f64);
        metrics::gauge!(m::VIEW).set(machine.view() as f64);
        if let Some(e) = machine.current_epoch() {
            metrics::gauge!(m::EPOCH).set(e as f64);
        }
    }
}

/// A stored epoch record, decoded (the status history reads them back).
pub fn decode_record(bytes: &[u8]) -> Option<EpochRecord> {
    decode_exact::<EpochRecord>(bytes)
}
