//! The public face of the net thread: start it, send it commands through a cheap handle
//! (bounded crossbeam channel plus a wake-up), read its typed events. No libp2p type here.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TrySendError};
use libp2p::Multiaddr;
use platform_keys::Keypair;
use tokio::sync::Notify;

use crate::config::{NetConfig, ValidNetConfig};
use crate::node::run;
use crate::stats::{Counters, NetStats, Reason};
use crate::wire::{Envelope, Hash32, Hotkey, RecordKind, SubmitAck, Topic};

mod blobs;
mod outcome;

/// Who this node is: the hotkey it signs with and the key of its libp2p PeerId.
pub struct Identity {
    /// The validator's (or miner's) hotkey.
    pub hotkey: Keypair,
    /// Secret of the ed25519 libp2p node key (persist it to keep the PeerId).
    pub node_key: [u8; 32],
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("hotkey", &self.hotkey)
            .finish_non_exhaustive()
    }
}

/// A check of a topic's payload beyond what net knows (for example "decodes as a consensus
/// message"), run on the net thread before a message is accepted. It must be cheap.
pub type PayloadCheck = Arc<dyn Fn(&Envelope) -> Result<(), Refused> + Send + Sync>;

/// Why a [`PayloadCheck`] refused a message: the reason counted and answered (it decides
/// whether the sender is penalised), and a detail for the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refused {
    /// The reason.
    pub reason: Reason,
    /// What was wrong, for the log.
    pub detail: String,
}

impl From<String> for Refused {
    /// A payload that is not what its topic carries (`invalid_payload`).
    fn from(detail: String) -> Refused {
        Refused {
            reason: Reason::InvalidPayload,
            detail,
        }
    }
}

/// Misbehaviour, for tests of peer protection only: a validator never sets it.
#[doc(hidden)]
#[derive(Clone, Debug, Default)]
pub struct Hostile {
    /// Present this hotkey in the binding record, signed with our own key.
    pub claim_hotkey: Option<Hotkey>,
    /// Serve blobs with a flipped byte.
    pub corrupt_blobs: bool,
    /// Seal submission batches whose last entry's signature has a flipped bit (the batch
    /// hash is computed over the forged bytes, so only the signature check catches it).
    pub forge_batch_entries: bool,
}

/// What to start a node with besides its config.
#[derive(Default)]
pub struct Options {
    /// Extra payload checks by topic.
    pub checks: HashMap<Topic, PayloadCheck>,
    /// Who may publish on each topic (`None` or absent: any author with a valid signature).
    pub authors: HashMap<Topic, HashSet<Hotkey>>,
    /// Hold each miner's submit ack until the application decides ([`NetEvent::Submit`],
    /// answered with [`NetHandle::admit`]): what counts is then answered at the door. Off,
    /// the net acks every submission that passes its own checks.
    pub admission: bool,
    /// Durable content behind the in-memory blob caches: a blob request this node cannot
    /// answer from memory (evicted, or held since before a restart) is answered from here,
    /// and a blob evicted from memory that the source still holds stays provided in the DHT.
    pub blobs: Option<Arc<dyn BlobSource>>,
    #[doc(hidden)]
    pub hostile: Hostile,
}

/// Content the application keeps durably (modules, batches), by sha256: what the net serves
/// when its memory caches no longer hold a blob. Called on the net thread: a read must be
/// quick (a local database lookup), never a network call.
pub trait BlobSource: Send + Sync {
    /// The blob whose sha256 is `hash`, if held.
    fn blob(&self, hash: &Hash32) -> Option<Vec<u8>>;
    /// Whether it is held.
    fn holds(&self, hash: &Hash32) -> bool {
        self.blob(hash).is_some()
    }
    /// The application's latest certified checkpoint (opaque bytes: the node's latest
    /// committed decision naming a state snapshot), answered to a peer catching up.
    fn checkpoint(&self) -> Option<Vec<u8>> {
        None
    }
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("checks", &self.checks.keys().collect::<Vec<_>>())
            .field("authors", &self.authors.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// The libp2p peer id (base58) a node key gives: lets a devnet write every validator's
/// bootstrap address before any of them starts.
pub fn peer_id_of(node_key: [u8; 32]) -> Result<String, NetError> {
    libp2p::identity::Keypair::ed25519_from_bytes(node_key)
        .map(|k| k.public().to_peer_id().to_base58())
        .map_err(|e| NetError::Start(format!("node key: {e}")))
}

/// Why a net operation failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NetError {
    /// The net thread could not start.
    #[error("net failed to start: {0}")]
    Start(String),
    /// The net thread has stopped.
    #[error("net thread stopped")]
    Stopped,
    /// The command queue is full.
    #[error("net command queue full")]
    Busy,
    /// Larger than the limit.
    #[error("{what} of {len} bytes exceeds the limit of {limit}")]
    TooLarge {
        /// What.
        what: &'static str,
        /// Its size.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// The same bytes were published within the replay window.
    #[error("duplicate: these bytes were already published")]
    Duplicate,
    /// No peer is subscribed to the topic.
    #[error("no connected peer subscribes to the topic")]
    NoPeers,
    /// Not found in the network.
    #[error("not found")]
    NotFound,
    /// No answer in time.
    #[error("timed out")]
    Timeout,
    /// A bad address.
    #[error("bad address {0}")]
    Address(String),
    /// Refused by a peer, or an invalid value refused locally.
    #[error("rejected: {0}")]
    Rejected(String),
    /// A libp2p operation failed.
    #[error("{0}")]
    Other(String),
}

/// An accepted gossip message (or a submission a miner delivered to this node).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// The message id: sha256 of the envelope bytes.
    pub id: Hash32,
    /// The topic.
    pub topic: Topic,
    /// The verified author.
    pub author: Hotkey,
    /// The author's timestamp.
    pub issued_at_ms: u64,
    /// The payload.
    pub payload: Vec<u8>,
    /// The envelope bytes as received (to relay or store).
    pub envelope: Vec<u8>,
    /// The peer it came from (a PeerId in base58).
    pub via_peer: String,
}

/// What the net thread reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetEvent {
    /// A validated message.
    Message(Delivery),
    /// A peer proved it runs a hotkey.
    PeerBound {
        /// The PeerId.
        peer: String,
        /// Its hotkey.
        hotkey: Hotkey,
    },
    /// A miner's submission that passed the net's checks, waiting for the application's
    /// admission (with [`Options::admission`]): answer with [`NetHandle::admit`] and
    /// `token`. Unanswered for `ADMISSION_TIMEOUT` (5 s), the miner is told `busy`.
    Submit {
        /// Names the waiting ack.
        token: u64,
        /// The submission.
        delivery: Delivery,
    },
    /// A peer's answer to [`NetHandle::ask_checkpoint`]: its latest certified checkpoint
    /// (unverified: the application checks it).
    Checkpoint {
        /// The PeerId.
        peer: String,
        /// Its bytes.
        bytes: Vec<u8>,
    },
    /// A peer's last connection closed.
    PeerLeft {
        /// The PeerId.
        peer: String,
        /// Its hotkey, if it was bound.
        hotkey: Option<Hotkey>,
    },
}

/// A connected peer, as seen from this node.
#[derive(Clone, Debug, PartialEq)]
pub struct PeerInfo {
    /// PeerId in base58.
    pub peer: String,
    /// The hotkey it proved, if any.
    pub hotkey: Option<Hotkey>,
    /// Whether that hotkey is in the validator set (the authors allowed on the consensus
    /// topic); with no set given, any bound peer counts.
    pub validator: bool,
    /// Its gossipsub score.
    pub gossip_score: Option<f64>,
    /// Its penalty points.
    pub penalty: f64,
    /// The topics it subscribes to.
    pub topics: Vec<Topic>,
}

pub(crate) type Reply<T> = Sender<Result<T, NetError>>;

pub(crate) use outcome::Done;

pub(crate) enum Command {
    Publish {
        topic: Topic,
        bytes: Vec<u8>,
        reply: Done<Hash32>,
    },
    SetAuthors {
        topic: Topic,
        authors: Option<HashSet<Hotkey>>,
    },
    Provide {
        bytes: Vec<u8>,
        reply: Done<Hash32>,
    },
    Fetch {
        hash: Hash32,
        reply: Done<Vec<u8>>,
    },
    PutRecord {
        kind: RecordKind,
        bytes: Vec<u8>,
        reply: Reply<Hash32>,
    },
    GetRecord {
        kind: RecordKind,
        hash: Hash32,
        reply: Reply<Vec<u8>>,
    },
    Dial {
        addr: Multiaddr,
    },
    Isolate {
        on: bool,
    },
    AskCheckpoint,
    Peers {
        reply: Reply<Vec<PeerInfo>>,
    },
    Admit {
        token: u64,
        verdict: Result<(), Reason>,
    },
    Submit {
        bytes: Vec<u8>,
        reply: Reply<SubmitAck>,
    },
    Shutdown,
}

pub(crate) struct Shared {
    pub(crate) counters: Counters,
    pub(crate) peer_id: String,
    pub(crate) listen: Mutex<Vec<String>>,
}

/// A cheap, cloneable handle to a running net thread.
#[derive(Clone)]
pub struct NetHandle {
    tx: Sender<Command>,
    wake: Arc<Notify>,
    shared: Arc<Shared>,
    hotkey: Arc<Keypair>,
    config: Arc<NetConfig>,
}

impl std::fmt::Debug for NetHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetHandle")
            .field("peer_id", &self.shared.peer_id)
            .finish_non_exhaustive()
    }
}

/// A running net thread: its handle, its events, and the thread itself (joined on drop).
pub struct Net {
    handle: NetHandle,
    events: Receiver<NetEvent>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Net").field("handle", &self.handle).finish()
    }
}

impl Net {
    /// Start the net thread: listen, subscribe, dial the bootstrap peers. Returns once every
    /// listener is bound (or fails).
    pub fn start(
        config: ValidNetConfig,
        identity: Identity,
        options: Options,
    ) -> Result<Net, NetError> {
        let cfg = config.config.clone();
        let (cmd_tx, cmd_rx) = crossbeam_channel::bounded(cfg.command_queue);
        let (ev_tx, ev_rx) = crossbeam_channel::bounded(cfg.event_queue);
        let (ready_tx, ready_rx) = crossbeam_channel::bounded(1);
        let wake = Arc::new(Notify::new());
        let node_key = libp2p::identity::Keypair::ed25519_from_bytes(identity.node_key)
            .map_err(|e| NetError::Start(format!("node key: {e}")))?;
        let peer_id = node_key.public().to_peer_id();
        let shared = Arc::new(Shared {
            counters: Counters::default(),
            peer_id: peer_id.to_base58(),
            listen: Mutex::new(Vec::new()),
        });
        let hotkey = Arc::new(identity.hotkey);
        let (w, s, h) = (wake.clone(), shared.clone(), hotkey.clone());
        let thread = std::thread::Builder::new()
            .name("platform-net".into())
            .spawn(move || {
                // Signatures are checked off this thread, in bulk, on the runtime's blocking
                // pool: a worker blocks while idle (rayon's spin through `sched_yield`
                // first, which took a sixth of a loaded validator's CPU from its shards).
                let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .thread_name("platform-verify")
                    .max_blocking_threads(cores)
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(NetError::Start(format!("runtime: {e}"))));
                        return;
                    }
                };
                rt.block_on(run(
                    config, node_key, h, options, s, cmd_rx, w, ev_tx, ready_tx,
                ));
            })
            .map_err(|e| NetError::Start(format!("thread: {e}")))?;
        let handle = NetHandle {
            tx: cmd_tx,
            wake,
            shared,
            hotkey,
            config: Arc::new(cfg),
        };
        let mut net = Net {
            handle,
            events: ev_rx,
            thread: Some(thread),
        };
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(net),
            Ok(Err(e)) => {
                net.join();
                Err(e)
            }
            Err(_) => {
                net.join();
                Err(NetError::Start("net thread exited during start".into()))
            }
        }
    }

    /// A handle to send commands from any thread.
    pub fn handle(&self) -> NetHandle {
        self.handle.clone()
    }

    /// Validated messages and peer events.
    pub fn events(&self) -> &Receiver<NetEvent> {
        &self.events
    }

    /// Stop the net thread and wait for it.
    pub fn shutdown(mut self) {
        self.join();
    }

    fn join(&mut self) {
        let _ = self.handle.tx.try_send(Command::Shutdown);
        self.handle.wake.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        self.join();
    }
}

impl NetHandle {
    fn send(&self, cmd: Command) -> Result<(), NetError> {
        self.tx.try_send(cmd).map_err(|e| match e {
            TrySendError::Full(_) => NetError::Busy,
            TrySendError::Disconnected(_) => NetError::Stopped,
        })?;
        self.wake.notify_one();
        Ok(())
    }

    fn call<T>(
        &self,
        wait: Duration,
        cmd: impl FnOnce(Reply<T>) -> Command,
    ) -> Result<T, NetError> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.send(cmd(tx))?;
        match rx.recv_timeout(wait) {
            Ok(r) => r,
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => Err(NetError::Timeout),
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => Err(NetError::Stopped),
        }
    }

    fn short_wait(&self) -> Duration {
        self.config.request_timeout
    }

    /// Ask connected validator peers (a few) for their latest certified checkpoint; the
    /// answers arrive as [`NetEvent::Checkpoint`]. Never waits.
    pub fn ask_checkpoint(&self) -> Result<(), NetError> {
        self.send(Command::AskCheckpoint)
    }

    /// This node's PeerId (base58).
    pub fn peer_id(&self) -> String {
        self.shared.peer_id.clone()
    }

    /// This node's hotkey.
    pub fn hotkey(&self) -> Hotkey {
        self.hotkey.public()
    }

    /// The addresses it listens on, each ending in `/p2p/PEER_ID` (dialable as given).
    pub fn listen_addrs(&self) -> Vec<String> {
        self.shared
            .listen
            .lock()
            .map(|l| l.clone())
            .unwrap_or_default()
    }

    /// Counters of this node.
    pub fn stats(&self) -> NetStats {
        self.shared.counters.snapshot()
    }

    /// Submit a miner's signed envelope as if it had arrived over request-response (for a
    /// node's HTTP endpoint): the same checks, admission and answer, with no peer to
    /// penalise. Waits for the answer (`busy` after the admission timeout).
    pub fn submit(&self, envelope: Vec<u8>) -> Result<SubmitAck, NetError> {
        self.call(
            crate::node::ADMISSION_TIMEOUT + Duration::from_secs(2),
            |reply| Command::Submit {
                bytes: envelope,
                reply,
            },
        )
    }

    /// The application's admission of a [`NetEvent::Submit`]: `Ok` acks it accepted and
    /// passes it on to peers; `Err` tells the miner why (never penalised: use it for
    /// honest states such as a closed epoch).
    pub fn admit(&self, token: u64, verdict: Result<(), Reason>) -> Result<(), NetError> {
        self.send(Command::Admit { token, verdict })
    }

    /// Allow only these authors on `topic` (`None`: any author with a valid signature).
    pub fn set_authors(
        &self,
        topic: Topic,
        authors: Option<HashSet<Hotkey>>,
    ) -> Result<(), NetError> {
        self.send(Command::SetAuthors { topic, authors })
    }

    /// Dial a multiaddr (ending in `/p2p/PEER_ID` to know whom to expect).
    pub fn dial(&self, addr: &str) -> Result<(), NetError> {
        let addr = addr
            .parse()
            .map_err(|e| NetError::Address(format!("{addr}: {e}")))?;
        self.send(Command::Dial { addr })
    }

    /// Cut this node off from every peer (`true`: connections closed, new ones closed as
    /// they come) or let it rejoin (`false`: the bootstrap peers are dialled again). A fault
    /// injection for tests and fault campaigns: a partitioned node that keeps running.
    pub fn isolate(&self, on: bool) -> Result<(), NetError> {
        self.send(Command::Isolate { on })
    }

    /// The connected peers.
    pub fn peers(&self) -> Result<Vec<PeerInfo>, NetError> {
        self.call(self.short_wait(), |reply| Command::Peers { reply })
    }
}
