//! The PBFT replica: a synchronous state machine. Events (messages, timer expiries, the
//! application's proposals and validation verdicts, with the current time) go in; actions
//! (broadcast, reply, set a timer, ask the application, report a decision or misbehaviour)
//! come out. No sockets, threads, clocks or randomness inside. Its own votes are made
//! durable through [`Storage`] before the action that sends them is returned.

use std::collections::{BTreeMap, BTreeSet};

use crate::crypto::{Kind, Signer};
use crate::message::{Decision, Message, Prepared, Proposal, ViewChange, Vote};
use crate::store::{Storage, StoreError};
use crate::types::{Domain, Hash32, Height, PublicKey, ValidatorSet, View};

mod view_change;
mod votes;

/// Replica settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// Domain every signature is bound to.
    pub domain: Domain,
    /// Agreed data seeding leader selection (e.g. the epoch's pinned block hash).
    pub seed: Hash32,
    /// Timeout of view 0; view `v` waits `view_timeout_ms << v`, capped.
    pub view_timeout_ms: u64,
    /// Cap on the view timeout.
    pub view_timeout_max_ms: u64,
    /// Messages for the next heights kept until we get there.
    pub future_buffer_max: usize,
    /// Decisions sent per sync response.
    pub sync_batch_max: usize,
    /// Emit [`Action::Checkpoint`] every this many heights.
    pub checkpoint_interval: u64,
    /// The last height this replica decides, if set: once it is decided the replica falls
    /// silent, so an application whose validator set changes per height starts the next
    /// height's replica with that height's set (no message is ever judged by another
    /// height's set, and no sync decision beyond it is accepted on this set's word).
    pub last_height: Option<Height>,
}

impl Config {
    /// Defaults for `domain` and `seed`.
    pub fn new(domain: Domain, seed: Hash32) -> Config {
        Config {
            domain,
            seed,
            view_timeout_ms: 1_000,
            view_timeout_max_ms: 60_000,
            future_buffer_max: 4096,
            sync_batch_max: 256,
            checkpoint_interval: 16,
            last_height: None,
        }
    }
}

/// Inputs to the replica.
#[derive(Clone, Debug)]
pub enum Event {
    /// A message from the network (unauthenticated: everything is verified).
    Message(Message),
    /// A timer set by [`Action::SetTimer`] fired.
    Timeout {
        /// Height the timer was set for.
        height: Height,
        /// View the timer was set for.
        view: View,
    },
    /// The application's value for a height this replica leads.
    Propose {
        /// Height asked for.
        height: Height,
        /// Canonically encoded action.
        value: Vec<u8>,
    },
    /// The application's verdict on a proposed value.
    Validated {
        /// Height.
        height: Height,
        /// View of the proposal.
        view: View,
        /// Digest of the value validated.
        digest: Hash32,
        /// True: approve (it recomputed the same result). False: reject.
        accept: bool,
    },
}

/// Outputs of the replica, to be carried out in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send to every other validator.
    Broadcast(Message),
    /// Send to the peer whose message is being handled.
    Reply(Message),
    /// Deliver `Event::Timeout { height, view }` at time `at_ms` (replaces earlier timers).
    SetTimer {
        /// Height.
        height: Height,
        /// View.
        view: View,
        /// Absolute time in ms.
        at_ms: u64,
    },
    /// Ask the application for a value to propose (answer with `Event::Propose`).
    RequestProposal {
        /// Height.
        height: Height,
    },
    /// Ask the application to validate a proposed value (answer with `Event::Validated`).
    Validate {
        /// Height.
        height: Height,
        /// View.
        view: View,
        /// The value.
        value: Vec<u8>,
    },
    /// A value was committed (already durable).
    Decided(Decision),
    /// Every `checkpoint_interval` heights: the application may snapshot its state.
    Checkpoint {
        /// Height of the checkpoint decision.
        height: Height,
    },
    /// A validator proved to misbehave (two different signed messages for one slot).
    Misbehaviour {
        /// Who.
        signer: PublicKey,
        /// What.
        what: &'static str,
    },
}

/// Messages rejected or ignored, by reason (for metrics and tests).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Signature did not verify.
    pub bad_signature: u64,
    /// Signer not in the validator set.
    pub unknown_signer: u64,
    /// Proposal from a validator that does not lead that view.
    pub not_leader: u64,
    /// Same vote seen again.
    pub duplicate: u64,
    /// Two different votes or proposals for one slot from one signer.
    pub equivocation: u64,
    /// Message for a past height or view.
    pub stale: u64,
    /// Proposal justification, certificate or sync decision did not verify.
    pub invalid: u64,
    /// Proposals the application rejected.
    pub rejected_proposals: u64,
    /// Future messages dropped because the buffer was full.
    pub future_dropped: u64,
    /// Votes we refused to send because a different one was on record.
    pub refused_conflicting_votes: u64,
    /// View changes started by this replica.
    pub view_changes: u64,
    /// Messages for views too far ahead (beyond `VIEW_WINDOW`) or values too large.
    pub out_of_bounds: u64,
}

/// Views ahead of ours we keep messages for; beyond, a peer could make us store without bound.
pub const VIEW_WINDOW: View = 64;

/// Why the replica could not start.
#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Per-height state, reset when a height is decided.
#[derive(Default)]
struct Round {
    proposals: BTreeMap<View, Proposal>,
    values: BTreeMap<Hash32, Vec<u8>>,
    votes: BTreeMap<(Kind, View, usize), Vote>,
    view_changes: BTreeMap<View, BTreeMap<usize, ViewChange>>,
    validating: BTreeSet<(View, Hash32)>,
    proposed: BTreeSet<View>,
    requested_proposal: BTreeSet<View>,
    committed_in: BTreeSet<View>,
    retransmitted: BTreeSet<View>,
}

/// A PBFT replica for one epoch's validator set.
pub struct Replica<S: Storage> {
    cfg: Config,
    set: ValidatorSet,
    signer: Signer,
    me: Option<usize>,
    store: S,
    height: Height,
    view: View,
    prepared: Option<Prepared>,
    round: Round,
    future: Vec<Message>,
    now_ms: u64,
    last_sync_request_ms: Option<u64>,
    stats: Stats,
    out: Vec<Action>,
}

impl<S: Storage> std::fmt::Debug for Replica<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replica")
            .field("height", &self.height)
            .field("view", &self.view)
            .finish_non_exhaustive()
    }
}

impl<S: Storage> Replica<S> {
    /// Resume from `store` (after the last decided height, in the last view we voted in)
    /// and return the actions of entering that view.
    pub fn start(
        cfg: Config,
        set: ValidatorSet,
        signer: Signer,
        store: S,
        now_ms: u64,
    ) -> Result<(Self, Vec<Action>), ReplicaError> {
        let me = set.index_of(&signer.public());
        let height = store.last_decided()?.map_or(1, |h| h + 1);
        let view = store.last_view(height)?.unwrap_or(0);
        let prepared = store.prepared(height)?;
        let mut r = Replica {
            cfg,
            set,
            signer,
            me,
            store,
            height,
            view,
            prepared,
            round: Round::default(),
            future: Vec::new(),
            now_ms,
            last_sync_request_ms: None,
            stats: Stats::default(),
            out: Vec::new(),
        };
        r.enter_view(view);
        let actions = std::mem::take(&mut r.out);
        Ok((r, actions))
    }

    /// Height being decided.
    pub fn height(&self) -> Height {
        self.height
    }

    /// Current view.
    pub fn view(&self) -> View {
        self.view
    }

    /// Rejection counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The store (e.g. to read decisions).
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Leader index of `(height, view)`.
    pub fn leader(&self, height: Height, view: View) -> usize {
        self.set.leader(&self.cfg.seed, height, view)
    }

    /// True once `last_height` is decided: the replica handles nothing more.
    pub fn finished(&self) -> bool {
        self.cfg.last_height.is_some_and(|l| self.height > l)
    }

    /// Give the store back (to start the next height's replica on it).
    pub fn into_store(self) -> S {
        self.store
    }

    /// Handle one event at time `now_ms`; returns the actions to carry out, in order.
    pub fn handle(&mut self, now_ms: u64, event: Event) -> Vec<Action> {
        self.now_ms = self.now_ms.max(now_ms);
        if self.finished() {
            // Sync requests are still answered from the store: it holds every decision.
            if let Event::Message(Message::SyncRequest { from }) = event {
                self.on_message(Message::SyncRequest { from });
                return std::mem::take(&mut self.out);
            }
            return Vec::new();
        }
        match event {
            Event::Message(m) => self.on_message(m),
            Event::Timeout { height, view } => {
                if height == self.height
                    && view == self.view
                    && self.round.retransmitted.insert(view)
                {
                    // Halfway through the view: send our messages of this view again (links
                    // lose messages; nothing else resends them), then wait out the rest.
                    self.retransmit();
                    let at_ms = self.now_ms + self.timeout_ms(view) / 2;
                    self.out.push(Action::SetTimer {
                        height,
                        view,
                        at_ms,
                    });
                } else if height == self.height && view == self.view {
                    if !self.future.is_empty() {
                        // Others are already past this height: ask for what we missed.
                        self.request_sync();
                    }
                    self.start_view_change(view.saturating_add(1));
                }
            }
            Event::Propose { height, value } => self.on_app_value(height, value),
            Event::Validated {
                height,
                view,
                digest,
                accept,
            } => self.on_validated(height, view, digest, accept),
        }
        std::mem::take(&mut self.out)
    }

    fn timeout_ms(&self, view: View) -> u64 {
        let shift = view.min(20);
        self.cfg
            .view_timeout_ms
            .saturating_mul(1 << shift)
            .min(self.cfg.view_timeout_max_ms)
    }

    fn i_lead(&self, view: View) -> bool {
        self.me == Some(self.leader(self.height, view))
    }

    fn retransmit(&mut self) {
        let view = self.view;
        let Some(me) = self.me else { return };
        if let Some(p) = self
            .round
            .proposals
            .get(&view)
            .filter(|p| self.round.proposed.contains(&p.view))
        {
            self.out
                .push(Action::Broadcast(Message::Proposal(p.clone())));
        }
        for kind in [Kind::Prepare, Kind::Commit] {
            if let Some(v) = self.round.votes.get(&(kind, view, me)) {
                self.out.push(Action::Broadcast(Message::Vote(v.clone())));
            }
        }
        if let Some(vc) = self.round.view_changes.get(&view).and_then(|m| m.get(&me)) {
            self.out
                .push(Action::Broadcast(Message::ViewChange(vc.clone())));
        }
    }

    fn enter_view(&mut self, view: View) {
        self.view = view;
        // First expiry at half the view timeout retransmits; the second changes view.
        let at_ms = self.now_ms + self.timeout_ms(view) / 2;
        self.out.push(Action::SetTimer {
            height: self.height,
            view,
            at_ms,
        });
        if self.i_lead(view) {
            self.try_propose();
        }
        // A valid proposal for this view may have arrived while we were behind.
        if let Some(p) = self.round.proposals.get(&view) {
            let (v, d, value) = (p.view, p.digest(), p.value.clone());
            self.ask_validation(v, d, value);
        }
    }

    fn on_message(&mut self, m: Message) {
        match m {
            Message::SyncRequest { from } => {
                match self.store.decisions(from, self.cfg.sync_batch_max) {
                    Ok(ds) if !ds.is_empty() => {
                        self.out.push(Action::Reply(Message::SyncResponse(ds)))
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "reading decisions for a sync request"),
                }
                return;
            }
            Message::SyncResponse(ds) => {
                self.on_sync(ds);
                return;
            }
            _ => {}
        }
        let h = m.height();
        if h < self.height {
            self.stats.stale += 1;
            // A view change for a height we decided: the sender is stuck behind. Help it
            // with the decisions (it verifies their certificates). One reply per such
            // message, and honest senders send them only on timeouts: bounded.
            if matches!(m, Message::ViewChange(_)) {
                self.on_message(Message::SyncRequest { from: h });
            }
            return;
        }
        if h > self.height {
            self.buffer_future(m);
            return;
        }
        let view = match &m {
            Message::Proposal(p) => p.view,
            Message::Vote(v) => v.view,
            Message::ViewChange(vc) => vc.view,
            Message::SyncRequest { .. } | Message::SyncResponse(_) => 0,
        };
        let too_large =
            matches!(&m, Message::Proposal(p) if p.value.len() > crate::codec::VALUE_MAX_BYTES);
        if view > self.view.saturating_add(VIEW_WINDOW) || too_large {
            self.stats.out_of_bounds += 1;
            return;
        }
        match m {
            Message::Proposal(p) => self.on_proposal(p),
            Message::Vote(v) => self.on_vote(v),
            Message::ViewChange(vc) => self.on_view_change(vc),
            Message::SyncRequest { .. } | Message::SyncResponse(_) => {}
        }
    }

    fn buffer_future(&mut self, m: Message) {
        if m.height() > self.height + 2 {
            // Far behind: ask for the decisions we missed instead of buffering.
            self.request_sync();
            return;
        }
        if self.future.len() >= self.cfg.future_buffer_max {
            self.stats.future_dropped += 1;
            return;
        }
        self.future.push(m);
    }

    fn request_sync(&mut self) {
        let due = self
            .last_sync_request_ms
            .is_none_or(|t| self.now_ms >= t + self.cfg.view_timeout_ms);
        if due {
            self.last_sync_request_ms = Some(self.now_ms);
            self.out.push(Action::Broadcast(Message::SyncRequest {
                from: self.height,
            }));
        }
    }

    fn on_sync(&mut self, mut ds: Vec<Decision>) {
        ds.sort_by_key(|d| d.height);
        for d in ds {
            if d.height != self.height || self.finished() {
                continue;
            }
            if d.verify(self.cfg.domain, &self.set).is_err() {
                self.stats.invalid += 1;
                return;
            }
            self.decide(d.value, d.certificate);
        }
    }
}
