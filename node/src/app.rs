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
use platform_chain::submit::WeightSubmitter;
use platform_consensus::RedbStore;
use platform_engine::{Runtime, ShardedEngine};
use platform_keys::ss58_encode;
use platform_net::{Envelope, Identity, Net, Options, Topic};

use crate::chainsvc::{self, ChainEvent, ChainJob, ChainStatus};
use crate::config::NodeConfig;
use crate::exporter::{Api, Exporter};
use crate::machine::{Hotkey, Input, Machine, MachineConfig, Schedule};
use crate::msg::{EpochRecord, decode_exact};
use crate::status::StatusView;
use crate::store::Store;

/// Wall-clock milliseconds since the Unix epoch: the shell's clock, handed to the machine.
pub(crate) fn now_ms() -> u64 {
    platform_types::now_ms()
}

/// Messages to the application thread from the API, fetch and chain threads.
pub(crate) enum AppMsg {
    Post {
        body: Vec<u8>,
        reply: Sender<Result<String, String>>,
    },
}

/// The HTTP API's view of the node: status from a snapshot, challenge posts forwarded to
/// the application thread.
struct NodeApi {
    status: Arc<Mutex<String>>,
    tx: Sender<AppMsg>,
    /// Set once the net thread runs; submissions before that are `busy`.
    net: Arc<std::sync::OnceLock<platform_net::NetHandle>>,
}

impl Api for NodeApi {
    fn status(&self) -> String {
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn submit(&self, envelope: Vec<u8>) -> Result<String, String> {
        let Some(net) = self.net.get() else {
            return Err("busy".into());
        };
        match net.submit(envelope) {
            Ok(platform_net::SubmitAck::Accepted(id)) => Ok(hex::encode(id)),
            Ok(platform_net::SubmitAck::Rejected(reason)) => Err(reason),
            Err(_) => Err("busy".into()),
        }
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

/// With `[node] fault_signals`: flags set by SIGUSR1 (cut off from every peer) and SIGUSR2
/// (rejoin).
type PartitionFlags = (Arc<AtomicBool>, Arc<AtomicBool>);

fn fault_signals(on: bool) -> anyhow::Result<Option<PartitionFlags>> {
    if !on {
        return Ok(None);
    }
    let (cut, rejoin) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    signal_hook::flag::register(signal_hook::consts::SIGUSR1, cut.clone())?;
    signal_hook::flag::register(signal_hook::consts::SIGUSR2, rejoin.clone())?;
    tracing::warn!("fault signals on: SIGUSR1 cuts this node off from its peers, SIGUSR2 rejoins");
    Ok(Some((cut, rejoin)))
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
    let me = crate::boot::load_hotkey(&cfg, config_dir)?;
    let my_hotkey = me.public();
    let owner = platform_keys::ss58_decode(&cfg.node.subnet_owner)?;
    let netuid = cfg.node.netuid;
    let store = crate::boot::open_store(&data_dir.join("node.redb"), Store::open)?;

    // The chain: how long an epoch is and where the chain stands.
    let (mut backend, commit_mode) = crate::boot::backend(&cfg, &me)?;
    let standing = crate::boot::standing(backend.chain(), netuid, &my_hotkey)?;
    tracing::info!("{standing}");
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
    let api_net: Arc<std::sync::OnceLock<platform_net::NetHandle>> = Arc::default();
    let exporter = Exporter::install_with_api(
        cfg.metrics.listen,
        Some(Arc::new(NodeApi {
            status: status.clone(),
            tx: app_tx.clone(),
            net: api_net.clone(),
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
    let shards = engine.shards();

    // Net: who may publish on validator topics and which miners may submit follow the
    // pinned rosters (updated as epochs are pinned).
    let miners: Arc<RwLock<HashSet<Hotkey>>> = Arc::default();
    let mut checks: HashMap<Topic, platform_net::PayloadCheck> = HashMap::new();
    checks.insert(
        Topic::Consensus,
        Arc::new(|env: &Envelope| {
            platform_consensus::codec::decode_message(&env.payload)
                .map(|_| ())
                .map_err(|e| e.0.to_string().into())
        }),
    );
    checks.insert(
        Topic::Evaluations,
        Arc::new(|env: &Envelope| {
            decode_exact::<crate::msg::BatchAnnounce>(&env.payload)
                .map(|_| ())
                .ok_or_else(|| "not a batch announcement".to_string().into())
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
                // An honest state (a lapsed registration), not abuse: never penalised.
                Err(platform_net::Refused {
                    reason: platform_net::Reason::UnknownAuthor,
                    detail: "the miner's hotkey is not registered on the subnet".into(),
                })
            }
        }),
    );
    let net = Net::start(
        cfg.net.clone().validate()?,
        Identity {
            hotkey: me.clone(),
            node_key: crate::boot::node_key(&data_dir)?,
        },
        Options {
            checks,
            admission: true,
            // Modules and batches are served from node.redb once the net's memory no
            // longer holds them (evicted, or from before a restart).
            blobs: Some(Arc::new(store.blobs())),
            ..Options::default()
        },
    )?;
    let _ = api_net.set(net.handle());
    tracing::info!(
        "validator {} peer {} listening on {:?}",
        ss58_encode(&my_hotkey),
        net.handle().peer_id(),
        net.handle().listen_addrs()
    );

    // Chain thread.
    let submitter = crate::boot::open_store(&data_dir.join("weights.redb"), |p| {
        WeightSubmitter::open(p, my_hotkey, netuid, commit_mode)
    })?;
    let chain_status = Arc::new(Mutex::new(ChainStatus {
        standing,
        ..ChainStatus::default()
    }));
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
    let cstore = crate::boot::open_store(&data_dir.join("consensus.redb"), RedbStore::open)?;
    let restored = crate::boot::restored(&store, owner, schedule.epoch_of(head.number))?;
    let history = crate::status::history_from(&store, restored.last_epoch)?;
    let (mut machine, first) = Machine::new(mcfg, me.clone(), owner, cstore, restored);
    let mut shell = crate::shell::Shell {
        writer: crate::shell::Writer::start(store.clone())?,
        store,
        pending: Default::default(),
        last_flush: Instant::now(),
        runtime,
        engine,
        challenges: HashMap::new(),
        net: net.handle(),
        chain_tx,
        inflight: HashMap::new(),
        backlog: std::collections::VecDeque::new(),
        fetches: crate::shell::Fetches::over(net.handle()),
        // The machine tells the admission horizon as it moves; until then the least it can
        // be: miners' intake closes settle / 2 after an epoch's end, its batch goes out at
        // settle.
        load: crate::shell::Load::new(shards, cfg.consensus.settle / 2),
        replies: HashMap::new(),
        next_token: 1,
        miners,
        pinned: std::collections::BTreeMap::new(),
        retain_epochs: cfg.node.retain_epochs,
        decided_below: 0,
        subnet_behind: false,
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
            shell.provide(b);
        }
    }
    shell.carry_out(&mut machine, first);
    shell.publish_status(&machine);
    let mut last_status = Instant::now();
    let fetched = shell.fetches.outcomes().clone();
    let partition = fault_signals(cfg.node.fault_signals)?;

    while !stop.load(Ordering::Relaxed) {
        if let Some((cut, rejoin)) = &partition {
            if cut.swap(false, Ordering::Relaxed) {
                let _ = net.handle().isolate(true);
            }
            if rejoin.swap(false, Ordering::Relaxed) {
                let _ = net.handle().isolate(false);
            }
        }
        let mut sel = crossbeam_channel::Select::new();
        let i_net = sel.recv(net.events());
        let i_app = sel.recv(&app_rx);
        let i_chain = sel.recv(&ev_rx);
        let i_fetched = sel.recv(&fetched);
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
            Ok(op) if op.index() == i_fetched => {
                if let Ok(o) = op.recv(&fetched) {
                    shell.fetches.outcome(Instant::now(), o, &mut inputs);
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
        shell.fetches.poll(Instant::now(), &mut inputs);
        shell.engine_results(&mut inputs);
        inputs.push(Input::Tick);
        let effects = machine.handle_all(now_ms(), inputs);
        shell.carry_out(&mut machine, effects);
        shell.maybe_flush();
        if last_status.elapsed() >= Duration::from_millis(250) {
            shell.publish_status(&machine);
            last_status = Instant::now();
        }
        anyhow::ensure!(
            shell.writer.alive(),
            "the store's writer thread stopped (see the error above); stopping rather than \
             running on without node.redb — a restart resumes from what it holds"
        );
    }

    tracing::info!("shutting down");
    shell.flush();
    shell.writer.finish();
    let crate::shell::Shell {
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

pub(crate) fn chain_input(ev: ChainEvent) -> Input {
    match ev {
        ChainEvent::Block(number) => Input::Block { number },
        ChainEvent::Roster { epoch, roster } => Input::Roster { epoch, roster },
        ChainEvent::RosterUnavailable { epoch, reason } => {
            Input::RosterUnavailable { epoch, reason }
        }
    }
}

/// A stored epoch record, decoded (the status history reads them back).
pub fn decode_record(bytes: &[u8]) -> Option<EpochRecord> {
    decode_exact::<EpochRecord>(bytes)
}
