//! The epoch machine: the validator's epoch protocol as a pure state machine.
//!
//! `Machine::handle(now_ms, Input) -> Vec<Effect>`: chain blocks and the metagraph pinned at
//! each epoch's first block, miners' submissions, evaluation results, gossip, fetched blobs
//! and owner posts go in, with the shell's clock; effects (publish, provide, fetch, evaluate,
//! persist, read the chain, apply a decision, reply) come out. It owns the consensus
//! [`Replica`] (one per height, each with the validator set of the epoch that height
//! decides), batches, registry changes, validations, decisions and timers. It never reads a
//! clock, opens a socket, spawns a thread or touches a disk: the node's shell (`app`) and the
//! whole-network twin (`sim`) carry out its effects.
//!
//! The protocol (also `docs/epoch.md`): height `h` decides epoch `genesis + h − 1`, so no
//! epoch is skipped and every node knows which validator set signs each height: the roster
//! read at that epoch's pinned block. Submissions for epoch `e` are admitted against
//! `roster(e)` while `e` runs (after its end block is seen, `settle / 2` more from miners,
//! and from peers until this validator's batch goes out); `settle` after the end each
//! validator of `roster(e)` publishes its batch; once every batch is held and agrees on all
//! it names (`2 × settle` after the end at the latest), the leader
//! proposes an [`EpochValue`] naming the pin, the roster digest, the batches and pending
//! registry changes; validators check the pin against their own reading, fetch what they
//! lack, recompute, and vote. Committed values are applied in height order.

mod decide;
mod early;
mod intake;
mod io;
mod laggard;
mod pace;
mod replica;
mod schedule;
mod sync;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

use platform_consensus::{Decision, Height, Message, Replica, Storage, View};
use platform_keys::Keypair;
use platform_net::Topic;

use intake::Source;
pub use io::{Applied, Arrival, Effect, Input, Refusal, Restored};
pub use schedule::{
    EPOCH_BLOCKS_MIN, Hash32, Hotkey, Pin, Roster, Schedule, epoch_seed, leader_seed,
};
pub use sync::{Installed, SNAPSHOT_LAG_EPOCHS, SNAPSHOTS_KEPT};

use crate::msg::{Batch, EpochRecord};
use crate::registry::{ChallengeMeta, Registry};

/// Fetches in flight at most.
const FETCHES_MAX: usize = 64;
/// Consensus messages for later heights kept until their replica starts.
const FUTURE_MAX: usize = 4096;
/// Sync decisions for later heights kept until their replica starts.
const SYNC_AHEAD_MAX: usize = 256;
/// Epochs ahead of the next undecided one whose rosters are read.
const ROSTERS_AHEAD: u64 = 4;

/// A deliberately broken protocol rule, for the simulation's proof that its invariants catch
/// a broken node. Never set outside tests.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuleBreak {
    /// Vote for any well-formed proposal without recomputing its result.
    VoteWithoutRecompute,
}

/// The machine's settings (from the node's config; all durations in ms, handed in).
#[derive(Clone, Debug)]
pub struct MachineConfig {
    /// The subnet.
    pub netuid: u16,
    /// Which blocks make which epoch.
    pub schedule: Schedule,
    /// The epoch consensus height 1 decides (agreed by every validator, like a genesis).
    pub genesis_epoch: u64,
    /// After an epoch's end block is seen: miners' late submissions for `settle / 2` (peers'
    /// until the batch goes out), batches at `settle`, the proposal once every batch is held
    /// and agrees on all it names, at `2 × settle` otherwise (up to `3 × settle` for
    /// batches).
    pub settle_ms: u64,
    /// Consensus view timeout (view 0), doubling up to `view_timeout_max_ms`.
    pub view_timeout_ms: u64,
    /// Cap of the view timeout.
    pub view_timeout_max_ms: u64,
    /// Consensus checkpoint interval.
    pub checkpoint_interval: u64,
    /// A test-only broken rule (see [`RuleBreak`]).
    #[doc(hidden)]
    pub rule_break: Option<RuleBreak>,
}

/// A batch the machine holds.
#[derive(Debug)]
struct KnownBatch {
    epoch: u64,
    author: Hotkey,
    batch: Batch,
}

/// Submissions of one open epoch.
#[derive(Debug, Default)]
struct EpochSubs {
    /// The counted submission per (challenge, miner).
    counted: BTreeMap<(u32, Hotkey), Hash32>,
    /// Evaluated: the score or abstain.
    scores: HashMap<Hash32, Option<u64>>,
    /// The ids in `counted`, to find an evaluated id's epoch without a scan.
    ids: HashSet<Hash32>,
}

impl EpochSubs {
    /// Make `id` the counted submission of `key` (the caller checked it is the smallest).
    fn count(&mut self, key: (u32, Hotkey), id: Hash32) {
        if let Some(old) = self.counted.insert(key, id) {
            self.ids.remove(&old);
        }
        self.ids.insert(id);
    }
}

#[derive(Debug)]
struct PendingValidation {
    height: Height,
    view: View,
    value: Vec<u8>,
    deadline_ms: u64,
}

/// Counters of the machine's refusals and work (for status, metrics and tests).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct MachineStats {
    /// Submissions admitted.
    pub admitted: u64,
    /// Proposals rejected, by reason.
    pub rejected: BTreeMap<&'static str, u64>,
    /// Rosters that could not be read.
    pub roster_unavailable: u64,
    /// Decisions applied whose digest this node recomputed differently.
    pub digest_mismatches: u64,
    /// View changes of finished heights.
    pub view_changes: u64,
    /// Equivocations proved against a validator (two different signed votes or proposals
    /// for one height and view).
    pub misbehaviour: u64,
    /// Flags (a reported score other than the agreed one, or two scores for one pair) in
    /// committed epochs, per validator (SS58), counted only for hotkeys in that epoch's
    /// validator set, so bounded by it.
    pub flagged_by_validator: BTreeMap<String, u64>,
    /// Snapshots fetched from peers and installed (state syncs).
    pub snapshots_installed: u64,
    /// Submissions this validator missed, learnt of from peers' batches, fetched and
    /// evaluated itself.
    pub missed_evaluated: u64,
}

/// The epoch machine (see the module docs). `S` is the consensus store.
pub struct Machine<S: Storage> {
    cfg: MachineConfig,
    me: Keypair,
    registry: Registry,
    changes: BTreeMap<u64, Vec<u8>>,
    modules: BTreeSet<Hash32>,
    loaded: BTreeSet<u32>,
    head: Option<u64>,
    ended_at: BTreeMap<u64, u64>,
    rosters: BTreeMap<u64, Roster>,
    /// Each pinned roster's digest, hashed once when it is pinned (a roster of a large
    /// subnet is thousands of hotkeys; proposals are checked against it many times).
    roster_digests: BTreeMap<u64, Hash32>,
    /// The last epoch result computed, and from what.
    computed: Option<(decide::Computed, std::sync::Arc<crate::epoch::EpochResult>)>,
    /// The last computation's reports vector, emptied, its capacity kept for the next.
    reports_scratch: Vec<crate::epoch::Report>,
    /// The last set of batches weighed (by `precompute` and the leader) and whether their
    /// result agrees a score for everything they name: the weighing is done once per set.
    covered: Option<(Vec<Hash32>, bool)>,
    roster_asked: BTreeMap<u64, u64>,
    subs: BTreeMap<u64, EpochSubs>,
    pending_evaluations: Vec<Arrival>,
    batches: HashMap<Hash32, KnownBatch>,
    by_epoch: BTreeMap<u64, BTreeMap<Hotkey, Hash32>>,
    published: BTreeSet<u64>,
    fetching: BTreeMap<Hash32, u64>,
    modules_wanted: BTreeSet<Hash32>,
    replica: Option<Replica<S>>,
    cstore: Option<S>,
    future: Vec<Message>,
    sync_ahead: BTreeMap<Height, Decision>,
    timer: Option<(Height, View, u64)>,
    want_proposal: Option<Height>,
    validations: Vec<PendingValidation>,
    decisions: VecDeque<Decision>,
    applied_height: u64,
    last_epoch: Option<u64>,
    behind: bool,
    last_sync_ask: Option<u64>,
    snapshots: BTreeMap<u64, crate::snapshot::SnapshotRef>,
    offer: Option<sync::Offer>,
    catchup: Option<sync::Catchup>,
    last_checkpoint_ask: Option<u64>,
    replay_hold: sync::ReplayHold,
    missed: BTreeMap<Hash32, laggard::Missed>,
    /// Peers' submissions that arrived after this node's intake closed, for epochs not yet
    /// decided: a peer that counted one names it in its batch, and it is taken from here
    /// instead of fetched.
    late: laggard::Late,
    /// Missed submissions' fetches are paced (peers rate-limit requests).
    missed_pace: laggard::Pace,
    /// Epochs whose batch goes out again, with the caught-up submissions it waits for.
    republish: BTreeMap<u64, Vec<Hash32>>,
    /// Validators' load notes: whether the subnet's stake keeps up with its admissions.
    pace: pace::SubnetPace,
    /// Submissions waiting for their epoch's roster.
    early: early::Early,
    stats: MachineStats,
    out: Vec<Effect>,
}

impl<S: Storage> std::fmt::Debug for Machine<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Machine")
            .field("head", &self.head)
            .field("applied_height", &self.applied_height)
            .field("last_epoch", &self.last_epoch)
            .finish_non_exhaustive()
    }
}

impl<S: Storage> Machine<S> {
    /// A machine for `me` over the consensus store `cstore`, resumed from `restored`, with
    /// the registry governed by `owner` when nothing was restored.
    pub fn new(
        cfg: MachineConfig,
        me: Keypair,
        owner: Hotkey,
        cstore: S,
        restored: Restored,
    ) -> (Machine<S>, Vec<Effect>) {
        let mut m = Machine {
            registry: restored.registry.unwrap_or_else(|| Registry::new(owner)),
            cfg,
            me,
            changes: BTreeMap::new(),
            modules: restored.modules,
            loaded: BTreeSet::new(),
            head: None,
            ended_at: BTreeMap::new(),
            rosters: BTreeMap::new(),
            roster_digests: BTreeMap::new(),
            computed: None,
            reports_scratch: Vec::new(),
            covered: None,
            roster_asked: BTreeMap::new(),
            subs: BTreeMap::new(),
            pending_evaluations: Vec::new(),
            batches: HashMap::new(),
            by_epoch: BTreeMap::new(),
            published: BTreeSet::new(),
            fetching: BTreeMap::new(),
            modules_wanted: BTreeSet::new(),
            replica: None,
            cstore: Some(cstore),
            future: Vec::new(),
            sync_ahead: BTreeMap::new(),
            timer: None,
            want_proposal: None,
            validations: Vec::new(),
            decisions: VecDeque::new(),
            applied_height: restored.applied_height,
            last_epoch: restored.last_epoch,
            behind: false,
            last_sync_ask: None,
            snapshots: restored.snapshots.iter().map(|r| (r.height, *r)).collect(),
            offer: None,
            catchup: None,
            last_checkpoint_ask: None,
            replay_hold: sync::ReplayHold::Off,
            missed: BTreeMap::new(),
            late: laggard::Late::default(),
            missed_pace: laggard::Pace::default(),
            republish: BTreeMap::new(),
            pace: pace::SubnetPace::default(),
            early: early::Early::default(),
            stats: MachineStats::default(),
            out: Vec::new(),
        };
        m.restore_decisions();
        for (epoch, author, env) in restored.batches {
            if author == m.me.public() {
                m.published.insert(epoch);
            }
            m.ingest_batch(&env);
            m.out.push(Effect::Provide(env));
        }
        for (a, score) in restored.submissions {
            let subs = m.subs.entry(a.epoch).or_default();
            let key = (a.challenge, a.author);
            if subs.counted.get(&key).is_none_or(|c| a.id < *c) {
                subs.count(key, a.id);
            }
            match score {
                Some(s) => {
                    subs.scores.insert(a.id, s);
                }
                // Recorded but not evaluated before the restart: evaluated once the epoch's
                // roster (and so its seed) is read again.
                None => m.pending_evaluations.push(a),
            }
        }
        let active: Vec<ChallengeMeta> = m.registry.active().cloned().collect();
        for meta in active {
            m.out.push(Effect::LoadChallenge(meta));
        }
        let effects = std::mem::take(&mut m.out);
        (m, effects)
    }

    /// Handle one input at `now_ms` (the shell's clock); returns the effects, in order.
    pub fn handle(&mut self, now_ms: u64, input: Input) -> Vec<Effect> {
        self.handle_all(now_ms, std::iter::once(input))
    }

    /// Handle inputs that arrived together (what a loaded node's loop drained in one
    /// pass), in order, then do the machine's own work — rosters, batches, fetches,
    /// proposals, validations, timers — once after them rather than after each. Returns
    /// the effects, in order.
    pub fn handle_all(
        &mut self,
        now_ms: u64,
        inputs: impl IntoIterator<Item = Input>,
    ) -> Vec<Effect> {
        for input in inputs {
            self.on_input(now_ms, input);
        }
        self.step(now_ms);
        std::mem::take(&mut self.out)
    }

    fn on_input(&mut self, now_ms: u64, input: Input) {
        match input {
            Input::Tick => {}
            Input::Block { number } => self.on_block(now_ms, number),
            Input::Roster { epoch, roster } => self.on_roster(now_ms, epoch, roster),
            Input::RosterUnavailable { epoch, reason } => {
                self.stats.roster_unavailable += 1;
                metrics::counter!(crate::metrics::ROSTER_UNAVAILABLE).increment(1);
                tracing::warn!(
                    epoch,
                    "metagraph at the epoch's pinned block unavailable ({reason}); the epoch waits"
                );
            }
            Input::Gossip { topic, payload } => self.on_gossip(now_ms, topic, payload),
            Input::Submission(a) => self.take_submission(now_ms, None, a, Source::Peer),
            Input::Submit { token, arrival } => {
                self.take_submission(now_ms, Some(token), arrival, Source::Miner);
            }
            Input::Evaluated { id, score } => self.on_evaluated(id, score),
            Input::Drain { ms } => self.on_drain(now_ms, ms),
            Input::LoadNote { from, note } => self.on_load_note(now_ms, from, note),
            Input::Fetched { hash, bytes } => self.on_fetched(now_ms, hash, bytes),
            Input::CheckpointOffer(bytes) => self.on_checkpoint_offer(now_ms, &bytes),
            Input::ChallengeLoaded { id, ok } => {
                if ok {
                    self.loaded.insert(id);
                } else {
                    self.loaded.remove(&id);
                }
            }
            Input::Post {
                token,
                change,
                module,
            } => {
                let result = self.on_post(change, module);
                self.out.push(Effect::Reply { token, result });
            }
        }
    }

    /// The epoch consensus height `h` decides.
    pub fn epoch_of_height(&self, h: Height) -> u64 {
        self.cfg.genesis_epoch + h.saturating_sub(1)
    }

    /// The epoch the next undecided height decides.
    pub fn next_epoch(&self) -> u64 {
        self.epoch_of_height(self.height())
    }

    /// Height being decided.
    pub fn height(&self) -> Height {
        match &self.replica {
            Some(r) => r.height(),
            None => self
                .cstore
                .as_ref()
                .and_then(|s| s.last_decided().ok().flatten())
                .map_or(1, |h| h + 1),
        }
    }

    /// View at the height being decided.
    pub fn view(&self) -> View {
        self.replica.as_ref().map_or(0, |r| r.view())
    }

    /// View changes this node started, over every height since it started.
    pub fn view_changes(&self) -> u64 {
        self.stats.view_changes + self.replica.as_ref().map_or(0, |r| r.stats().view_changes)
    }

    /// Last applied height and epoch.
    pub fn applied(&self) -> (u64, Option<u64>) {
        (self.applied_height, self.last_epoch)
    }

    /// The latest block seen.
    pub fn head(&self) -> Option<u64> {
        self.head
    }

    /// The epoch the chain is in.
    pub fn current_epoch(&self) -> Option<u64> {
        self.head.map(|b| self.cfg.schedule.epoch_of(b))
    }

    /// The roster pinned for an epoch, if read.
    pub fn roster(&self, epoch: u64) -> Option<&Roster> {
        self.rosters.get(&epoch)
    }

    /// The latest pinned roster.
    pub fn latest_roster(&self) -> Option<(u64, &Roster)> {
        self.rosters.iter().next_back().map(|(e, r)| (*e, r))
    }

    /// Whether this node votes at the height being decided.
    pub fn votes(&self) -> bool {
        let me = self.me.public();
        self.rosters
            .get(&self.next_epoch())
            .is_some_and(|r| r.stake_of(&me).is_some())
    }

    /// The registry as applied.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Challenges loaded in the engine.
    pub fn loaded(&self) -> &BTreeSet<u32> {
        &self.loaded
    }

    /// Registry changes waiting for consensus.
    pub fn pending_changes(&self) -> usize {
        self.changes.len()
    }

    /// Committed decisions waiting for their inputs.
    pub fn pending_decisions(&self) -> usize {
        self.decisions.len()
    }

    /// Counters.
    pub fn stats(&self) -> &MachineStats {
        &self.stats
    }

    /// Stop: give back the consensus store (a crashed node in the simulation keeps it, as a
    /// real one keeps its redb file).
    pub fn into_consensus_store(self) -> Option<S> {
        match self.replica {
            Some(r) => Some(r.into_store()),
            None => self.cstore,
        }
    }

    /// Internals in words, for a failing simulation's report.
    #[doc(hidden)]
    pub fn debug_state(&self) -> String {
        format!(
            "head {:?} next_epoch {} height {} view {} replica {} behind {} timer {:?} want_proposal {:?} \
             validations {} decisions {} rosters {:?} ended {:?} future {} sync_ahead {:?} fetching {} \
             batches {:?} stats {:?}",
            self.head,
            self.next_epoch(),
            self.height(),
            self.view(),
            self.replica.is_some(),
            self.behind,
            self.timer,
            self.want_proposal,
            self.validations.len(),
            self.decisions.len(),
            self.rosters.keys().collect::<Vec<_>>(),
            self.ended_at,
            self.future.len(),
            self.sync_ahead.keys().collect::<Vec<_>>(),
            self.fetching.len(),
            self.by_epoch
                .iter()
                .map(|(e, m)| (*e, m.len()))
                .collect::<Vec<_>>(),
            self.stats,
        )
    }

    /// The consensus store (to read decisions).
    pub fn consensus_store(&self) -> Option<&S> {
        self.replica
            .as_ref()
            .map(|r| r.store())
            .or(self.cstore.as_ref())
    }

    /// Everything that runs on time and on what arrived: rosters, batches, decisions,
    /// proposals, validations, timers.
    fn step(&mut self, now: u64) {
        self.want_rosters(now);
        self.expire_waiting(now);
        self.check_offer(now);
        self.maybe_ask_checkpoint(now);
        self.ensure_replica(now);
        self.publish_batches(now);
        self.fetch_missed(now);
        self.republish_batches(now);
        self.apply_decisions(now);
        if self.decisions.is_empty() {
            self.precompute(now);
            self.maybe_propose(now);
            self.retry_validations(now);
        }
        self.fire_timer(now);
        self.judge_pace(now);
        let stale: Vec<Hash32> = self
            .fetching
            .iter()
            .filter(|(_, at)| now >= **at + 2 * self.cfg.view_timeout_ms)
            .map(|(h, _)| *h)
            .collect();
        for h in stale {
            self.fetching.remove(&h); // asked again while still needed
        }
    }

    /// Fetch a module unless it is held.
    fn fetch_module(&mut self, now: u64, hash: Hash32) {
        if !self.modules.contains(&hash) {
            self.modules_wanted.insert(hash);
            self.fetch(now, hash);
        }
    }

    fn fetch(&mut self, now: u64, hash: Hash32) {
        if self.fetching.len() >= FETCHES_MAX || self.fetching.contains_key(&hash) {
            return;
        }
        self.fetching.insert(hash, now);
        self.out.push(Effect::Fetch(hash));
    }
}
