//! Leaving a view: view changes (and PBFT's f+1 rule for joining a later view), and a new
//! leader's proposal, justified by a quorum of view changes and carrying the highest value
//! prepared in them (or the application's, when none was).

use std::collections::BTreeMap;

use super::{Action, Replica};
use crate::crypto::Kind;
use crate::message::{Message, Proposal, ViewChange, highest_prepared};
use crate::quorum::{exceeds_one_third, is_quorum};
use crate::store::Storage;
use crate::types::{Height, View};

impl<S: Storage> Replica<S> {
    pub(super) fn try_propose(&mut self) {
        let view = self.view;
        if self.round.proposed.contains(&view) {
            return;
        }
        if view == 0 {
            if self.round.requested_proposal.insert(0) {
                self.out.push(Action::RequestProposal {
                    height: self.height,
                });
            }
            return;
        }
        let Some(vcs) = self.view_change_quorum(view) else {
            return;
        };
        match highest_prepared(&vcs).map(|p| p.value.clone()) {
            Some(value) => self.propose(value, vcs),
            None => {
                if self.round.requested_proposal.insert(view) {
                    self.out.push(Action::RequestProposal {
                        height: self.height,
                    });
                }
            }
        }
    }

    pub(super) fn view_change_quorum(&self, view: View) -> Option<Vec<ViewChange>> {
        let vcs = self.round.view_changes.get(&view)?;
        let power: u128 = vcs.keys().map(|i| u128::from(self.set.power(*i))).sum();
        is_quorum(power, self.set.total_power()).then(|| vcs.values().cloned().collect())
    }

    pub(super) fn on_app_value(&mut self, height: Height, value: Vec<u8>) {
        let view = self.view;
        if height != self.height || !self.i_lead(view) || self.round.proposed.contains(&view) {
            return;
        }
        if view == 0 {
            self.propose(value, vec![]);
            return;
        }
        // Later views: a prepared value from the view changes takes precedence (safety).
        if let Some(vcs) = self.view_change_quorum(view) {
            let value = highest_prepared(&vcs).map_or(value, |p| p.value.clone());
            self.propose(value, vcs);
        }
    }

    pub(super) fn propose(&mut self, value: Vec<u8>, justification: Vec<ViewChange>) {
        self.round.proposed.insert(self.view);
        let p = Proposal::sign(
            &self.signer,
            self.cfg.domain,
            self.height,
            self.view,
            value,
            justification,
        );
        self.out
            .push(Action::Broadcast(Message::Proposal(p.clone())));
        self.on_proposal(p);
    }

    pub(super) fn start_view_change(&mut self, view: View) {
        if view <= self.view {
            return;
        }
        let vc = ViewChange::sign(
            &self.signer,
            self.cfg.domain,
            self.height,
            view,
            self.prepared.clone(),
        );
        if let Some(me) = self.me {
            match self
                .store
                .record_vote(Kind::ViewChange, self.height, view, [0; 32])
            {
                Ok(_) => {
                    self.out
                        .push(Action::Broadcast(Message::ViewChange(vc.clone())));
                    self.round
                        .view_changes
                        .entry(view)
                        .or_default()
                        .insert(me, vc);
                }
                Err(e) => tracing::error!(error = %e, "could not persist view change"),
            }
        }
        self.stats.view_changes += 1;
        self.enter_view(view);
    }

    pub(super) fn on_view_change(&mut self, vc: ViewChange) {
        let Some(i) = self.set.index_of(&vc.signer) else {
            self.stats.unknown_signer += 1;
            return;
        };
        if vc.view < self.view {
            self.stats.stale += 1;
            // The sender is in an older view of this height: show it our view change so it
            // can join (the f+1 rule below, on its side). Only if it verifies: no amplification
            // of forgeries.
            if vc.verify(self.cfg.domain, &self.set).is_ok()
                && let Some(mine) = self.me.and_then(|me| {
                    self.round
                        .view_changes
                        .get(&self.view)
                        .and_then(|m| m.get(&me))
                })
            {
                self.out
                    .push(Action::Reply(Message::ViewChange(mine.clone())));
            }
            return;
        }
        if self
            .round
            .view_changes
            .get(&vc.view)
            .is_some_and(|m| m.contains_key(&i))
        {
            self.stats.duplicate += 1;
            return;
        }
        if let Err(e) = vc.verify(self.cfg.domain, &self.set) {
            self.count_invalid(&e);
            return;
        }
        let view = vc.view;
        self.round
            .view_changes
            .entry(view)
            .or_default()
            .insert(i, vc);
        // PBFT's f+1 rule: when validators holding more than a third of the power (so at
        // least one honest) ask for views above ours, join the smallest of those views.
        let mut askers: BTreeMap<usize, View> = BTreeMap::new();
        for (v, m) in self.round.view_changes.range(self.view.saturating_add(1)..) {
            for signer in m.keys() {
                askers.entry(*signer).or_insert(*v);
            }
        }
        let power: u128 = askers.keys().map(|i| u128::from(self.set.power(*i))).sum();
        if exceeds_one_third(power, self.set.total_power())
            && let Some(smallest) = askers.values().min().copied()
        {
            self.start_view_change(smallest);
        }
        if self.view == view && self.i_lead(view) {
            self.try_propose();
        }
    }
}
