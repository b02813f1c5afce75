//! Running consensus: one replica per height (with the roster of the epoch it decides),
//! started once that roster is pinned; consensus messages and sync decisions fed to it,
//! held for later heights; its actions carried out; its timers run only while due.

use platform_consensus::{Action, Domain, Event, Message, Replica, Signer, Storage};
use platform_keys::ss58_encode;
use platform_net::Topic;

use super::{Effect, FUTURE_MAX, Machine, PendingValidation, SYNC_AHEAD_MAX, leader_seed};
use crate::metrics as m;

impl<S: Storage> Machine<S> {
    /// Committed decisions this node had not applied before a restart.
    pub(super) fn restore_decisions(&mut self) {
        let Some(store) = self.cstore.as_ref() else {
            return;
        };
        let Ok(Some(last)) = store.last_decided() else {
            return;
        };
        let mut h = self.applied_height + 1;
        while h <= last {
            let ds = match store.decisions(h, 256) {
                Ok(ds) if !ds.is_empty() => ds,
                _ => break,
            };
            h = ds.last().map_or(h, |d| d.height + 1);
            self.decisions.extend(ds);
        }
        if !self.decisions.is_empty() {
            tracing::info!("replaying {} committed decisions", self.decisions.len());
        }
    }

    /// Start the replica of the height being decided once its epoch's roster is pinned.
    pub(super) fn ensure_replica(&mut self, now: u64) {
        if self.replica.is_some() || self.replay_held(now) {
            return;
        }
        let h = self.height();
        let e = self.epoch_of_height(h);
        let Some(roster) = self.rosters.get(&e) else {
            return;
        };
        let set = match roster.validator_set() {
            Ok(s) => s,
            Err(err) => {
                return tracing::error!(epoch = e, "no validator set for the epoch: {err}");
            }
        };
        let mut ccfg = platform_consensus::Config::new(
            Domain {
                netuid: self.cfg.netuid,
                epoch: e,
            },
            leader_seed(self.cfg.netuid, e, &roster.pin),
        );
        ccfg.view_timeout_ms = self.cfg.view_timeout_ms;
        ccfg.view_timeout_max_ms = self.cfg.view_timeout_max_ms;
        ccfg.checkpoint_interval = self.cfg.checkpoint_interval;
        ccfg.last_height = Some(h);
        let Some(store) = self.cstore.take() else {
            return;
        };
        let signer = Signer::from_seed(self.me.secret_seed());
        let (replica, actions) = match Replica::start(ccfg, set, signer, store, now) {
            Ok(r) => r,
            Err(err) => {
                // The store failed: nothing can be decided safely. Stay stopped, loudly.
                return tracing::error!("consensus store: {err}; not deciding");
            }
        };
        self.replica = Some(replica);
        self.timer = None;
        self.want_proposal = None;
        self.validations.clear();
        self.act(now, actions);
        // Messages and sync decisions that arrived for this height before its replica.
        let held: Vec<Message> = std::mem::take(&mut self.future);
        let (mine, later): (Vec<_>, Vec<_>) = held.into_iter().partition(|m| m.height() == h);
        self.future = later.into_iter().filter(|m| m.height() > h).collect();
        for msg in mine {
            self.feed_replica(now, msg);
        }
        self.sync_ahead.retain(|k, _| *k >= h);
        if let Some(d) = self.sync_ahead.remove(&h) {
            self.feed_replica(now, Message::SyncResponse(vec![d]));
        }
    }

    pub(super) fn on_consensus(&mut self, now: u64, msg: Message) {
        let h = self.height();
        tracing::debug!(height = msg.height(), "consensus {}", msg.label());
        if let Message::SyncResponse(ds) = &msg {
            for d in ds {
                if d.height > h && self.sync_ahead.len() < SYNC_AHEAD_MAX {
                    self.sync_ahead.insert(d.height, d.clone());
                }
            }
        }
        let mh = msg.height();
        if mh > h && !matches!(msg, Message::SyncRequest { .. } | Message::SyncResponse(_)) {
            self.behind = true;
            if mh <= h + 2 && self.future.len() < FUTURE_MAX {
                self.future.push(msg.clone());
            }
            // Others are deciding later heights: ask for the decisions we lack, at most once
            // a view timeout (the replica asks too, but only as its own timers expire).
            if self
                .last_sync_ask
                .is_none_or(|t| now >= t + self.cfg.view_timeout_ms)
                && !self.replay_held(now)
            {
                self.last_sync_ask = Some(now);
                self.out.push(Effect::Publish {
                    topic: Topic::Consensus,
                    payload: platform_consensus::codec::encode_message(&Message::SyncRequest {
                        from: h,
                    }),
                });
            }
        }
        if self.replica.is_some() {
            self.feed_replica(now, msg);
        }
    }

    pub(super) fn feed_replica(&mut self, now: u64, msg: Message) {
        let Some(r) = self.replica.as_mut() else {
            return;
        };
        let actions = r.handle(now, Event::Message(msg));
        self.act(now, actions);
    }

    pub(super) fn act(&mut self, now: u64, actions: Vec<Action>) {
        for a in actions {
            match a {
                Action::Broadcast(msg) | Action::Reply(msg) => self.out.push(Effect::Publish {
                    topic: Topic::Consensus,
                    payload: platform_consensus::codec::encode_message(&msg),
                }),
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
                    deadline_ms: now + 2 * self.cfg.view_timeout_ms,
                }),
                Action::Decided(d) => {
                    metrics::counter!(m::DECISIONS).increment(1);
                    self.decisions.push_back(d);
                }
                Action::Checkpoint { height } => tracing::debug!(height, "checkpoint"),
                Action::Misbehaviour { signer, what } => {
                    self.stats.misbehaviour += 1;
                    metrics::counter!(m::MISBEHAVIOUR).increment(1);
                    tracing::warn!("validator {} misbehaved: {what}", ss58_encode(&signer.0));
                }
            }
        }
        if self.replica.as_ref().is_some_and(|r| r.finished()) {
            // This height is decided: the next one has its own roster and replica.
            if let Some(r) = self.replica.take() {
                self.stats.view_changes += r.stats().view_changes;
                self.cstore = Some(r.into_store());
            }
            self.behind = false;
            self.timer = None;
            self.want_proposal = None;
            self.validations.clear();
            self.ensure_replica(now);
        }
    }

    /// Consensus timers run only while the height's epoch is due (plus one view timeout of
    /// grace for the leader) or this node is behind, so heights do not churn views between
    /// epochs.
    pub(super) fn timers_open(&mut self, now: u64) -> bool {
        if self.behind || !self.decisions.is_empty() {
            return true;
        }
        let e = self.next_epoch();
        self.ended(now, e)
            .is_some_and(|t| now >= t + 2 * self.cfg.settle_ms + self.cfg.view_timeout_ms)
    }

    pub(super) fn fire_timer(&mut self, now: u64) {
        let Some((height, view, at)) = self.timer else {
            return;
        };
        if at > now || !self.timers_open(now) {
            return;
        }
        self.timer = None;
        if let Some(r) = self.replica.as_mut() {
            let actions = r.handle(now, Event::Timeout { height, view });
            self.act(now, actions);
        }
    }
}
