//! What goes into the epoch machine and what comes out: [`Input`], [`Effect`], and the
//! records they carry (a miner's [`Arrival`] and its [`Refusal`], an [`Applied`] decision,
//! what a restart [`Restored`]).

#[allow(clippy::wildcard_imports)]
use super::*;

/// What happens to the machine.
#[derive(Clone, Debug)]
pub enum Input {
    /// Time passed (the shell ticks often; timers and windows are checked).
    Tick,
    /// The chain's latest finalised block.
    Block {
        /// Its number.
        number: u64,
    },
    /// The metagraph at an epoch's pinned block, as the shell read it.
    Roster {
        /// The epoch.
        epoch: u64,
        /// What was read.
        roster: Roster,
    },
    /// The pinned block of an epoch could not be read (the shell retries when asked again).
    RosterUnavailable {
        /// The epoch.
        epoch: u64,
        /// Why.
        reason: String,
    },
    /// A validated gossip message (consensus, batch announcements, registry changes).
    Gossip {
        /// Its topic.
        topic: Topic,
        /// Its payload.
        payload: Vec<u8>,
    },
    /// A miner's signed submission (signature checked by the net), relayed by a peer.
    Submission(Arrival),
    /// A miner's signed submission sent to this validator, whose ack waits for the
    /// machine's admission ([`Effect::Admit`] with `token`).
    Submit {
        /// The shell's ack handle.
        token: u64,
        /// The submission.
        arrival: Arrival,
    },
    /// The engine's verdict on a submission: its agreed score, or `None` (abstain).
    Evaluated {
        /// The submission.
        id: Hash32,
        /// Its score.
        score: Option<u64>,
    },
    /// A blob asked for with [`Effect::Fetch`]: its bytes, or `None` if it could not be had.
    Fetched {
        /// Its hash.
        hash: Hash32,
        /// Its bytes.
        bytes: Option<Vec<u8>>,
    },
    /// The engine loaded (or refused) a challenge asked for by [`Effect::LoadChallenge`].
    ChallengeLoaded {
        /// The challenge.
        id: u32,
        /// Loaded.
        ok: bool,
    },
    /// A peer's latest certified checkpoint (an encoded consensus decision), asked for with
    /// [`Effect::AskCheckpoint`]; unverified.
    CheckpointOffer(Vec<u8>),
    /// How long the evaluation work this validator holds would take to drain, in ms (the
    /// shell measures it; see `machine/pace.rs`).
    Drain {
        /// Drain time.
        ms: u32,
    },
    /// A validator's load note (its signature checked by the net).
    LoadNote {
        /// Its author.
        from: Hotkey,
        /// The note.
        note: crate::msg::LoadNote,
    },
    /// An owner's change through the API (answered by [`Effect::Reply`] with `token`).
    Post {
        /// The shell's reply handle.
        token: u64,
        /// The SCALE `SignedChange`.
        change: Vec<u8>,
        /// The module, for publish/update.
        module: Option<Vec<u8>>,
    },
}

/// Why a submission does not count, as the miner is told at the door.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The machine has not read the chain yet, or the epoch's roster is not pinned yet.
    NotReady,
    /// The epoch has ended (and its settle window passed) or was decided.
    EpochClosed,
    /// The epoch has not started.
    EpochNotOpen,
    /// The hotkey is not a miner in the epoch's pinned metagraph.
    Unregistered,
    /// The challenge is not active (or not loaded here).
    InactiveChallenge,
    /// The miner already has a counted submission for this challenge and epoch with a
    /// lower id.
    NotCounted,
}

impl Refusal {
    /// The `result` label of the ingress counter.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::NotReady => "not_ready",
            Refusal::EpochClosed => "epoch_closed",
            Refusal::EpochNotOpen => "epoch_not_open",
            Refusal::Unregistered => "unregistered_miner",
            Refusal::InactiveChallenge => "inactive_challenge",
            Refusal::NotCounted => "not_counted",
        }
    }
}

/// A miner's submission as it arrives.
#[derive(Clone, Debug)]
pub struct Arrival {
    /// sha256 of the signed envelope.
    pub id: Hash32,
    /// The miner's hotkey.
    pub author: Hotkey,
    /// The challenge.
    pub challenge: u32,
    /// The epoch the miner named.
    pub epoch: u64,
    /// The payload.
    pub body: Vec<u8>,
    /// The signed envelope (kept by the store).
    pub envelope: Vec<u8>,
}

/// What the shell must do, in order.
#[derive(Clone, Debug)]
pub enum Effect {
    /// Gossip a payload.
    Publish {
        /// Topic.
        topic: Topic,
        /// Payload.
        payload: Vec<u8>,
    },
    /// Serve a blob by its sha256.
    Provide(Vec<u8>),
    /// Fetch a blob by sha256; answer with [`Input::Fetched`].
    Fetch(Hash32),
    /// Read the metagraph at `block`; answer with [`Input::Roster`] or `RosterUnavailable`.
    ReadRoster {
        /// The epoch.
        epoch: u64,
        /// Its pinned block.
        block: u64,
    },
    /// An epoch's roster was pinned (for logs, status and the net's door checks).
    Pinned {
        /// The epoch.
        epoch: u64,
        /// The roster.
        roster: Roster,
    },
    /// Keep a submission (the counted one per epoch, challenge and miner is the smallest id).
    RecordSubmission(Arrival),
    /// Evaluate a submission; answer with [`Input::Evaluated`].
    Evaluate {
        /// The epoch.
        epoch: u64,
        /// The submission.
        id: Hash32,
        /// The challenge.
        challenge: u32,
        /// Agreed seed (from the pinned block hash).
        seed: Hash32,
        /// The payload.
        body: Vec<u8>,
    },
    /// Keep a signed batch envelope.
    StoreBatch {
        /// Its epoch.
        epoch: u64,
        /// Its author.
        author: Hotkey,
        /// The signed envelope.
        envelope: Vec<u8>,
    },
    /// Keep a module (its sha256 checked).
    StoreModule(Vec<u8>),
    /// Compile and warm an active challenge (the module is stored); answer with
    /// [`Input::ChallengeLoaded`].
    LoadChallenge(ChallengeMeta),
    /// Stop evaluating a challenge.
    RetireChallenge(u32),
    /// A committed decision was applied: persist it in one transaction, then submit weights.
    Applied(Box<Applied>),
    /// A snapshot taken at a checkpoint height: keep its blobs and serve them.
    StoreSnapshot(Box<crate::snapshot::Snapshot>),
    /// Far behind: ask peers for their latest certified checkpoint ([`Input::CheckpointOffer`]).
    AskCheckpoint,
    /// A snapshot fetched from peers was installed: persist its state in one transaction.
    Installed(Box<super::sync::Installed>),
    /// Answer an [`Input::Submit`]: counted, or why not.
    Admit {
        /// The shell's ack handle.
        token: u64,
        /// The admission.
        verdict: Result<(), Refusal>,
    },
    /// Whether validators holding half of the stake are behind on evaluation (then
    /// miners are refused `busy`); sent when it changes.
    SubnetBehind(bool),
    /// The admission horizon, in ms: evaluation work held beyond it is refused `busy`
    /// (see `machine/pace.rs`); sent when it moves.
    Horizon(u64),
    /// Answer an [`Input::Post`].
    Reply {
        /// The shell's token.
        token: u64,
        /// The answer.
        result: Result<String, String>,
    },
}

/// Everything one applied decision changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    /// Consensus height.
    pub height: u64,
    /// The epoch.
    pub epoch: u64,
    /// Its pinned block.
    pub pin: Pin,
    /// The record the store keeps.
    pub record: EpochRecord,
    /// Whether this node's own recomputation gave the committed digest.
    pub recomputed: bool,
    /// Registry entries changed (id, encoded entry).
    pub registry: Vec<(u32, Vec<u8>)>,
    /// The registry's last nonce after it.
    pub registry_nonce: u64,
    /// The epoch is recent enough that its weights go to the chain (replays do not).
    pub recent: bool,
    /// When the epoch's end was seen here, if it was (for commit latency).
    pub ended_at_ms: Option<u64>,
    /// The decision (encoded, with its certificate) when its value names a snapshot: what
    /// this node offers peers catching up.
    pub checkpoint: Option<Vec<u8>>,
}

/// What the machine resumes from after a restart (read from the store by the shell).
#[derive(Debug, Default)]
pub struct Restored {
    /// The registry as applied.
    pub registry: Option<Registry>,
    /// Last applied height.
    pub applied_height: u64,
    /// Last applied epoch.
    pub last_epoch: Option<u64>,
    /// Kept batch envelopes (epoch, author, envelope) of epochs not yet applied.
    pub batches: Vec<(u64, Hotkey, Vec<u8>)>,
    /// Kept counted submissions of epochs not yet applied, with their score if evaluated.
    pub submissions: Vec<(Arrival, Option<Option<u64>>)>,
    /// Modules held.
    pub modules: BTreeSet<Hash32>,
    /// Snapshots kept.
    pub snapshots: Vec<crate::snapshot::SnapshotRef>,
}
