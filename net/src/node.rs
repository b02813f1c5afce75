//! The net thread: a libp2p swarm on its own OS thread and its own single-threaded tokio
//! runtime, driven by commands on a bounded crossbeam channel and reporting typed events on
//! another. Every message from a peer is checked here (size, structure, topic, freshness,
//! replay, author, signature, payload) before gossipsub may forward it.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use futures::StreamExt;
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance, MessageAuthenticity, MessageId};
use libp2p::kad;
use libp2p::kad::store::{MemoryStore, MemoryStoreConfig, RecordStore};
use libp2p::request_response::{
    self, InboundRequestId, OutboundRequestId, ProtocolSupport, ResponseChannel,
};
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{
    Multiaddr, PeerId, StreamProtocol, Swarm, allow_block_list, connection_limits, identify, noise,
    ping, tcp, yamux,
};
use platform_keys::Keypair;
use prometheus_client::registry::Registry;
use tokio::sync::Notify;

mod admit;

pub(crate) use admit::ADMISSION_TIMEOUT;
mod batches;
mod checks;
mod dht;
mod gossip;
mod peers;
mod rpc;

use crate::api::{
    Command, Delivery, Done, Hostile, NetError, NetEvent, Options, PayloadCheck, PeerInfo, Reply,
    Shared,
};
use crate::codec::{PROTOCOL, RpcCodec};
use crate::config::{NetConfig, ValidNetConfig};
use crate::protect::{BlobCache, Bucket, Penalty, SeenCache};
use crate::stats::{self, Counters, Reason};
use crate::wire::{
    Binding, ENVELOPE_OVERHEAD, Envelope, Hash32, Hotkey, RecordKind, Request, Response,
    Submission, Topic, now_ms, sha256,
};

/// Penalty points for a message or record that breaks the rules.
const INVALID_POINTS: f64 = 10.0;
/// Penalty points for a message above the peer's rate.
const RATE_POINTS: f64 = 1.0;
/// Replay-cache capacity (ids).
const SEEN_CAPACITY: usize = 1 << 20;
/// How long another peer's provider record is kept without being republished; our own are
/// republished at a third of it. Content is fetched within seconds of its announcement; a
/// fetch of older content that finds no provider record asks every connected peer.
const PROVIDER_TTL: Duration = Duration::from_secs(10 * 60);
/// Blobs this node announces in the DHT at most; beyond, its oldest announcement is
/// withdrawn (the blob is still served on request).
const PROVIDED_MAX: usize = 256;
/// How often the net thread does its housekeeping.
const TICK: Duration = Duration::from_millis(250);

#[derive(NetworkBehaviour)]
struct Behaviour {
    blocked: allow_block_list::Behaviour<allow_block_list::BlockedPeers>,
    limits: connection_limits::Behaviour,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    gossipsub: gossipsub::Behaviour,
    kad: kad::Behaviour<crate::kadstore::SweptStore>,
    rpc: request_response::Behaviour<RpcCodec>,
}

fn build_behaviour(
    key: &libp2p::identity::Keypair,
    cfg: &NetConfig,
    gossip_metrics: &mut Registry,
) -> Result<Behaviour, String> {
    let peer_id = key.public().to_peer_id();
    let gcfg = gossipsub::ConfigBuilder::default()
        .validation_mode(gossipsub::ValidationMode::Strict)
        .validate_messages()
        .message_id_fn(|m: &gossipsub::Message| MessageId::from(sha256(&m.data).to_vec()))
        .max_transmit_size(cfg.max_message_bytes)
        .heartbeat_interval(cfg.heartbeat)
        .mesh_n(cfg.mesh_n)
        .mesh_n_low(cfg.mesh_n_low)
        .mesh_n_high(cfg.mesh_n_high)
        .mesh_outbound_min(cfg.mesh_outbound_min)
        .flood_publish(true)
        .duplicate_cache_time(cfg.max_message_age + cfg.max_clock_skew)
        .build()
        .map_err(|e| format!("gossipsub config: {e}"))?;
    // gossipsub's own counts (copies before it drops duplicates, its invalid messages) are
    // read from this registry and mirrored into ours (`platform_net_gossip_*`).
    let mut gossipsub = gossipsub::Behaviour::new(MessageAuthenticity::Signed(key.clone()), gcfg)
        .map_err(|e| format!("gossipsub: {e}"))?
        .with_metrics(gossip_metrics, gossipsub::MetricsConfig::default());
    let mut params = gossipsub::PeerScoreParams {
        app_specific_weight: 1.0,
        // Validators share hosts in devnets; identity comes from hotkey bindings.
        ip_colocation_factor_weight: 0.0,
        ..Default::default()
    };
    for t in Topic::ALL {
        params.topics.insert(
            IdentTopic::new(t.name()).hash(),
            gossipsub::TopicScoreParams {
                topic_weight: 1.0,
                // Low-traffic topics: no penalty for few deliveries.
                mesh_message_deliveries_weight: 0.0,
                mesh_failure_penalty_weight: 0.0,
                // Positive terms stay small (at most ~10.1 in all) so that one invalid
                // message (-50, squared count) always puts its sender below zero.
                time_in_mesh_weight: 0.01,
                time_in_mesh_quantum: Duration::from_secs(1),
                time_in_mesh_cap: 10.0,
                first_message_deliveries_weight: 0.1,
                first_message_deliveries_decay: 0.9,
                first_message_deliveries_cap: 100.0,
                invalid_message_deliveries_weight: -50.0,
                invalid_message_deliveries_decay: 0.99,
                ..Default::default()
            },
        );
    }
    gossipsub
        .with_peer_score(params, gossipsub::PeerScoreThresholds::default())
        .map_err(|e| format!("gossipsub scoring: {e}"))?;

    let mut kcfg = kad::Config::new(StreamProtocol::new("/platform/kad/1"));
    kcfg.set_record_filtering(kad::StoreInserts::FilterBoth);
    kcfg.set_max_packet_size(cfg.max_record_bytes + 4096);
    kcfg.set_query_timeout(cfg.fetch_timeout);
    kcfg.set_provider_record_ttl(Some(PROVIDER_TTL));
    kcfg.set_provider_publication_interval(Some(PROVIDER_TTL / 3));
    let store = MemoryStore::with_config(
        peer_id,
        MemoryStoreConfig {
            max_records: cfg.max_records,
            max_value_bytes: cfg.max_record_bytes,
            max_providers_per_key: 64,
            max_provided_keys: cfg.max_records,
        },
    );
    let store = crate::kadstore::SweptStore::new(store, PROVIDER_TTL);
    let mut kad = kad::Behaviour::with_config(peer_id, store, kcfg);
    kad.set_mode(Some(kad::Mode::Server));

    let codec = RpcCodec {
        max_request: cfg.max_payload_bytes.submissions + ENVELOPE_OVERHEAD + 256,
        max_response: cfg.max_blob_bytes + 16,
    };
    let rpc = request_response::Behaviour::with_codec(
        codec,
        [(PROTOCOL, ProtocolSupport::Full)],
        request_response::Config::default().with_request_timeout(cfg.request_timeout),
    );
    let limits = connection_limits::ConnectionLimits::default()
        .with_max_established(Some(cfg.max_connections))
        .with_max_established_per_peer(Some(cfg.max_connections_per_peer))
        .with_max_pending_incoming(Some(cfg.max_pending_incoming));
    Ok(Behaviour {
        blocked: Default::default(),
        limits: connection_limits::Behaviour::new(limits),
        identify: identify::Behaviour::new(
            identify::Config::new("/platform/1".into(), key.public())
                .with_agent_version(format!("platform/{}", env!("CARGO_PKG_VERSION"))),
        ),
        ping: ping::Behaviour::new(ping::Config::new()),
        gossipsub,
        kad,
        rpc,
    })
}

struct PeerState {
    hotkey: Option<Hotkey>,
    /// When its first connection was established (the hello deadline counts from here).
    connected_at: Instant,
    messages: Bucket,
    requests: Bucket,
    penalty: Penalty,
}

struct Fetch {
    waiters: Vec<Done<Vec<u8>>>,
    candidates: VecDeque<PeerId>,
    tried: HashSet<PeerId>,
    in_flight: bool,
    providers: Providers,
    deadline: Instant,
    started: Instant,
}

/// Where a fetch stands with the DHT's providers of its blob: asked only once the
/// connected validators had no copy (they hold what validators exchange).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Providers {
    NotAsked,
    Asking,
    Done,
}

enum KadOp {
    Provide(Hash32, Done<Hash32>),
    Providers(Hash32),
    Put(Hash32, Reply<Hash32>),
    Get(Hash32, Option<Reply<Vec<u8>>>),
}

enum Outbound {
    Hello,
    Blob(Hash32),
    Checkpoint,
}

struct Node {
    swarm: Swarm<Behaviour>,
    hotkey: Arc<Keypair>,
    batches: batches::Batches,
    cfg: NetConfig,
    shared: Arc<Shared>,
    events: Sender<NetEvent>,
    binding: Vec<u8>,
    checks: HashMap<Topic, PayloadCheck>,
    authors: HashMap<Topic, HashSet<Hotkey>>,
    hostile: Hostile,
    /// Durable content behind `blobs` and the batch cache.
    source: Option<Arc<dyn crate::api::BlobSource>>,
    /// Cut off from every peer ([`crate::NetHandle::isolate`]).
    isolated: bool,
    peers: HashMap<PeerId, PeerState>,
    bans: VecDeque<(Instant, PeerId)>,
    seen: SeenCache,
    blobs: BlobCache,
    /// Blobs announced in the DHT, oldest first (at most [`PROVIDED_MAX`]).
    provided: VecDeque<Hash32>,
    fetches: HashMap<Hash32, Fetch>,
    kad_ops: HashMap<kad::QueryId, KadOp>,
    outbound: HashMap<OutboundRequestId, Outbound>,
    bootstrap: Vec<(PeerId, Multiaddr)>,
    /// Submit acks wait for the application's admission.
    admission: bool,
    door: admit::Door,
    last_redial: Instant,
    last_kad_bootstrap: Option<Instant>,
    /// gossipsub's metrics registry (see `stats::GossipCounts`).
    gossip_metrics: Registry,
}

fn blob_key(hash: &Hash32) -> kad::RecordKey {
    let mut k = Vec::with_capacity(33);
    k.push(b'b');
    k.extend_from_slice(hash);
    kad::RecordKey::new(&k)
}

/// Work done on the blocking pool (one thread per core, idle ones asleep), back to the net thread.
pub(crate) enum PoolDone {
    /// A fetched submission batch, opened (or refused).
    Batch(batches::Opened),
    /// A door verification job's verdicts.
    Door(admit::DoorChecked),
}

#[allow(clippy::too_many_arguments)]
pub(crate) async fn run(
    config: ValidNetConfig,
    key: libp2p::identity::Keypair,
    hotkey: Arc<Keypair>,
    options: Options,
    shared: Arc<Shared>,
    commands: Receiver<Command>,
    wake: Arc<Notify>,
    events: Sender<NetEvent>,
    ready: Sender<Result<(), NetError>>,
) {
    let (pool_tx, mut pool_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut node = match Node::new(&config, key, hotkey, options, shared, events, pool_tx).await {
        Ok(n) => n,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let _ = ready.send(Ok(()));
    node.dial_bootstrap();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut batch_tick =
        tokio::time::interval(config.config.batch_window.max(Duration::from_millis(1)));
    batch_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let batching = node.batching();
    loop {
        tokio::select! {
            ev = node.swarm.select_next_some() => node.on_swarm_event(ev),
            _ = wake.notified() => {
                while let Ok(cmd) = commands.try_recv() {
                    if matches!(cmd, Command::Shutdown) {
                        return;
                    }
                    node.on_command(cmd);
                }
            }
            _ = tick.tick() => node.housekeeping(),
            _ = batch_tick.tick(), if batching => node.batch_tick(Instant::now()),
            Some(done) = pool_rx.recv() => match done {
                PoolDone::Batch(opened) => node.on_opened(opened),
                PoolDone::Door(checked) => node.on_door_checked(checked, Instant::now()),
            },
        }
    }
}

impl Node {
    async fn new(
        config: &ValidNetConfig,
        key: libp2p::identity::Keypair,
        hotkey: Arc<Keypair>,
        options: Options,
        shared: Arc<Shared>,
        events: Sender<NetEvent>,
        pool_tx: tokio::sync::mpsc::UnboundedSender<PoolDone>,
    ) -> Result<Node, NetError> {
        let cfg = config.config.clone();
        let start = |e: &dyn std::fmt::Display| NetError::Start(e.to_string());
        let b = cfg.clone();
        let mut gossip_metrics = Registry::default();
        let mut swarm = libp2p::SwarmBuilder::with_existing_identity(key.clone())
            .with_tokio()
            .with_tcp(
                tcp::Config::default().nodelay(true),
                noise::Config::new,
                yamux::Config::default,
            )
            .map_err(|e| start(&e))?
            .with_quic()
            .with_behaviour(|k| {
                build_behaviour(k, &b, &mut gossip_metrics)
                    .map_err(Box::<dyn std::error::Error + Send + Sync>::from)
            })
            .map_err(|e| start(&e))?
            .with_swarm_config(|c| c.with_idle_connection_timeout(cfg.idle_connection_timeout))
            .build();
        for t in Topic::ALL {
            swarm
                .behaviour_mut()
                .gossipsub
                .subscribe(&IdentTopic::new(t.name()))
                .map_err(|e| start(&e))?;
        }
        let mut listeners = HashSet::new();
        for addr in &config.listen {
            let id = swarm
                .listen_on(addr.clone())
                .map_err(|e| NetError::Start(format!("listen on {addr}: {e}")))?;
            listeners.insert(id);
        }
        // Wait until every listener has an address.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let peer_id = *swarm.local_peer_id();
        let mut bound = HashSet::new();
        let mut addrs = Vec::new();
        while bound.len() < listeners.len() {
            let ev = tokio::time::timeout_at(deadline, swarm.select_next_some())
                .await
                .map_err(|_| NetError::Start("listeners did not bind within 10s".into()))?;
            match ev {
                SwarmEvent::NewListenAddr {
                    listener_id,
                    address,
                } => {
                    bound.insert(listener_id);
                    addrs.push(format!("{address}/p2p/{peer_id}"));
                }
                SwarmEvent::ListenerError { error, .. } => {
                    return Err(NetError::Start(format!("listener: {error}")));
                }
                SwarmEvent::ListenerClosed { reason, .. } => {
                    return Err(NetError::Start(format!("listener closed: {reason:?}")));
                }
                _ => {}
            }
        }
        if let Ok(mut l) = shared.listen.lock() {
            *l = addrs;
        }
        let bootstrap = config
            .bootstrap
            .iter()
            .filter_map(|a| match a.iter().last() {
                Some(libp2p::multiaddr::Protocol::P2p(p)) => Some((p, a.clone())),
                _ => None,
            })
            .collect();
        let own_hotkey = options.hostile.claim_hotkey.unwrap_or(hotkey.public());
        let mut binding = Binding::sign(&hotkey, peer_id.to_bytes(), now_ms());
        binding.hotkey = own_hotkey;
        tracing::info!(peer = %peer_id, "net started");
        Ok(Node {
            swarm,
            hotkey,
            batches: batches::Batches::new(cfg.batch_cache_bytes, pool_tx),
            seen: SeenCache::new(cfg.max_message_age + cfg.max_clock_skew, SEEN_CAPACITY),
            blobs: BlobCache::new(cfg.blob_cache_bytes),
            provided: VecDeque::new(),
            cfg,
            shared,
            events,
            binding: binding.encode(),
            checks: options.checks,
            authors: options.authors,
            hostile: options.hostile,
            source: options.blobs,
            isolated: false,
            admission: options.admission,
            door: admit::Door::default(),
            peers: HashMap::new(),
            bans: VecDeque::new(),
            fetches: HashMap::new(),
            kad_ops: HashMap::new(),
            outbound: HashMap::new(),
            bootstrap,
            last_redial: Instant::now(),
            last_kad_bootstrap: None,
            gossip_metrics,
        })
    }

    fn counters(&self) -> &Counters {
        &self.shared.counters
    }

    fn emit(&self, ev: NetEvent) {
        self.try_emit(ev);
    }

    /// Deliver an event; false (and counted) when the application's queue is full.
    fn try_emit(&self, ev: NetEvent) -> bool {
        match self.events.try_send(ev) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                self.counters().event_dropped();
                false
            }
            Err(TrySendError::Disconnected(_)) => false,
        }
    }

    fn dial_bootstrap(&mut self) {
        let connected: HashSet<PeerId> = self.swarm.connected_peers().copied().collect();
        for (peer, addr) in self.bootstrap.clone() {
            if !connected.contains(&peer) {
                self.swarm
                    .behaviour_mut()
                    .kad
                    .add_address(&peer, addr.clone());
                if let Err(e) = self.swarm.dial(addr.clone()) {
                    tracing::debug!(%addr, "dial: {e}");
                }
            }
        }
        self.last_redial = Instant::now();
    }

    fn housekeeping(&mut self) {
        let now = Instant::now();
        while let Some((until, peer)) = self.bans.front().copied() {
            if until > now {
                break;
            }
            self.bans.pop_front();
            self.swarm.behaviour_mut().blocked.unblock_peer(peer);
        }
        let expired: Vec<Hash32> = self
            .fetches
            .iter()
            .filter(|(_, f)| f.deadline <= now)
            .map(|(h, _)| *h)
            .collect();
        for h in expired {
            self.finish_fetch(&h, Err(NetError::Timeout));
        }
        self.expire_admissions(now);
        self.close_unbound(now);
        if now.duration_since(self.last_redial) >= Duration::from_secs(5) {
            self.dial_bootstrap();
        }
        let due = self
            .last_kad_bootstrap
            .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(30));
        if due && self.swarm.connected_peers().next().is_some() {
            let _ = self.swarm.behaviour_mut().kad.bootstrap();
            self.last_kad_bootstrap = Some(now);
        }
        let validators = self
            .peers
            .values()
            .filter(|p| self.is_validator(p.hotkey.as_ref()))
            .count();
        metrics::gauge!(stats::names::PEERS, "role" => "validator").set(validators as f64);
        metrics::gauge!(stats::names::PEERS, "role" => "other")
            .set((self.peers.len() - validators) as f64);
        self.counters().peers(self.peers.len());
        let mut text = String::new();
        if prometheus_client::encoding::text::encode(&mut text, &self.gossip_metrics).is_ok() {
            self.counters().gossip(&stats::GossipCounts::parse(&text));
        }
    }

    fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Admit { token, verdict } => self.on_admit(token, verdict, Instant::now()),
            Command::Submit { bytes, reply } => self.on_submit(admit::Answer::Local(reply), bytes),
            Command::Publish {
                topic,
                bytes,
                reply,
            } => {
                let r = self.publish(topic, bytes);
                if let Err(e) = &r {
                    tracing::debug!(?topic, "not published: {e}");
                }
                reply.send(r);
            }
            Command::Isolate { on } => {
                self.isolated = on;
                if on {
                    let peers: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
                    for p in peers {
                        let _ = self.swarm.disconnect_peer_id(p);
                    }
                    tracing::warn!("isolated from every peer (fault injection)");
                } else {
                    for addr in self.cfg.bootstrap.clone() {
                        if let Ok(a) = addr.parse::<libp2p::Multiaddr>() {
                            let _ = self.swarm.dial(a);
                        }
                    }
                    tracing::warn!("rejoining the network (fault injection over)");
                }
            }
            Command::SetAuthors { topic, authors } => match authors {
                Some(a) => {
                    self.authors.insert(topic, a);
                }
                None => {
                    self.authors.remove(&topic);
                }
            },
            Command::Provide { bytes, reply } => self.provide(bytes, reply),
            Command::Fetch { hash, reply } => self.fetch(hash, reply),
            Command::PutRecord { kind, bytes, reply } => self.put_record(kind, bytes, reply),
            Command::GetRecord { kind, hash, reply } => {
                let q = self
                    .swarm
                    .behaviour_mut()
                    .kad
                    .get_record(kind.key(&hash).into());
                self.kad_ops.insert(q, KadOp::Get(hash, Some(reply)));
            }
            Command::Dial { addr } => {
                if let Some(libp2p::multiaddr::Protocol::P2p(p)) = addr.iter().last() {
                    self.swarm.behaviour_mut().kad.add_address(&p, addr.clone());
                }
                if let Err(e) = self.swarm.dial(addr.clone()) {
                    tracing::warn!(%addr, "dial: {e}");
                }
            }
            Command::Peers { reply } => {
                let _ = reply.send(Ok(self.peer_infos()));
            }
            Command::AskCheckpoint => self.ask_checkpoint(),
            Command::Shutdown => {}
        }
    }

    fn on_behaviour(&mut self, ev: BehaviourEvent) {
        match ev {
            BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            }) => self.on_gossip(propagation_source, message_id, message),
            BehaviourEvent::Gossipsub(gossipsub::Event::SlowPeer {
                peer_id,
                failed_messages,
            }) => {
                let n = failed_messages.priority + failed_messages.non_priority;
                metrics::counter!(stats::names::SLOW_PEER_DROPS).increment(n as u64);
                tracing::debug!(peer = %peer_id, n, "slow peer: messages dropped");
            }
            BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. }) => {
                for addr in info.listen_addrs {
                    self.swarm.behaviour_mut().kad.add_address(&peer_id, addr);
                }
            }
            BehaviourEvent::Kad(ev) => self.on_kad(ev),
            BehaviourEvent::Rpc(ev) => self.on_rpc(ev),
            _ => {}
        }
    }
}
