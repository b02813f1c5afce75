//! The normal case of a height: a proposal checked and handed to the application to
//! validate, prepare and commit votes (each made durable before the action that sends it),
//! certificates at a quorum of stake, and the decision.

use super::{Action, Replica, Round};
use crate::crypto::{Kind, value_digest};
use crate::message::{Certificate, Decision, Message, Prepared, Proposal, Vote};
use crate::quorum::is_quorum;
use crate::store::{Recorded, Storage};
use crate::types::{Hash32, Height, View};

impl<S: Storage> Replica<S> {
    pub(super) fn on_proposal(&mut self, p: Proposal) {
        if p.view < self.view {
            self.stats.stale += 1;
            return;
        }
        let Some(_) = self.set.index_of(&p.signer) else {
            self.stats.unknown_signer += 1;
            return;
        };
        if self.set.member(self.leader(p.height, p.view)).hotkey != p.signer {
            self.stats.not_leader += 1;
            return;
        }
        if let Some(existing) = self.round.proposals.get(&p.view) {
            if existing.digest() != p.digest() && p.verify(self.cfg.domain, &self.set).is_ok() {
                self.stats.equivocation += 1;
                self.out.push(Action::Misbehaviour {
                    signer: p.signer,
                    what: "two proposals for one view",
                });
            } else {
                self.stats.duplicate += 1;
            }
            return;
        }
        if let Err(e) = p.verify(self.cfg.domain, &self.set) {
            self.count_invalid(&e);
            return;
        }
        let (view, digest, value) = (p.view, p.digest(), p.value.clone());
        // The justification also carries view changes we may not have seen: keep them.
        for vc in &p.justification {
            if let Some(i) = self.set.index_of(&vc.signer) {
                self.round
                    .view_changes
                    .entry(vc.view)
                    .or_default()
                    .entry(i)
                    .or_insert_with(|| vc.clone());
            }
        }
        self.round.values.insert(digest, value.clone());
        self.round.proposals.insert(view, p);
        if view > self.view {
            // A justified proposal proves a quorum moved to `view`: follow.
            self.enter_view(view);
            return; // enter_view asks for validation of the stored proposal
        }
        self.ask_validation(view, digest, value);
        self.check_quorums(view, digest);
    }

    pub(super) fn count_invalid(&mut self, e: &crate::message::Invalid) {
        match e {
            crate::message::Invalid::BadSignature => self.stats.bad_signature += 1,
            _ => self.stats.invalid += 1,
        }
    }

    pub(super) fn ask_validation(&mut self, view: View, digest: Hash32, value: Vec<u8>) {
        if view == self.view && self.round.validating.insert((view, digest)) {
            self.out.push(Action::Validate {
                height: self.height,
                view,
                value,
            });
        }
    }

    pub(super) fn on_validated(
        &mut self,
        height: Height,
        view: View,
        digest: Hash32,
        accept: bool,
    ) {
        if height != self.height
            || view != self.view
            || !self.round.validating.contains(&(view, digest))
        {
            return;
        }
        if !accept {
            self.stats.rejected_proposals += 1;
            self.start_view_change(view.saturating_add(1));
            return;
        }
        if self.cast(Kind::Prepare, view, digest) {
            self.check_quorums(view, digest);
        }
    }

    /// Record our vote durably, then broadcast it and count it. False if not sent.
    pub(super) fn cast(&mut self, kind: Kind, view: View, digest: Hash32) -> bool {
        let Some(me) = self.me else { return false };
        match self.store.record_vote(kind, self.height, view, digest) {
            Ok(Recorded::New | Recorded::Same) => {}
            Ok(Recorded::Conflict(_)) => {
                self.stats.refused_conflicting_votes += 1;
                return false;
            }
            Err(e) => {
                tracing::error!(error = %e, "could not persist our vote; not sending it");
                return false;
            }
        }
        let vote = Vote::sign(
            &self.signer,
            self.cfg.domain,
            kind,
            self.height,
            view,
            digest,
        );
        self.out
            .push(Action::Broadcast(Message::Vote(vote.clone())));
        self.round.votes.insert((kind, view, me), vote);
        true
    }

    pub(super) fn on_vote(&mut self, v: Vote) {
        if !matches!(v.kind, Kind::Prepare | Kind::Commit) {
            self.stats.invalid += 1;
            return;
        }
        let Some(i) = self.set.index_of(&v.signer) else {
            self.stats.unknown_signer += 1;
            return;
        };
        if let Some(existing) = self.round.votes.get(&(v.kind, v.view, i)) {
            if existing.digest == v.digest {
                self.stats.duplicate += 1;
            } else if v.verify(self.cfg.domain) {
                self.stats.equivocation += 1;
                self.out.push(Action::Misbehaviour {
                    signer: v.signer,
                    what: "two different votes for one slot",
                });
            } else {
                self.stats.bad_signature += 1;
            }
            return;
        }
        if !v.verify(self.cfg.domain) {
            self.stats.bad_signature += 1;
            return;
        }
        let (view, digest) = (v.view, v.digest);
        self.round.votes.insert((v.kind, view, i), v);
        self.check_quorums(view, digest);
    }

    pub(super) fn certificate(
        &self,
        kind: Kind,
        view: View,
        digest: Hash32,
    ) -> Option<Certificate> {
        let signers: Vec<&Vote> = self
            .round
            .votes
            .range((kind, view, 0)..=(kind, view, usize::MAX))
            .map(|(_, v)| v)
            .filter(|v| v.digest == digest)
            .collect();
        let power: u128 = signers
            .iter()
            .filter_map(|v| self.set.index_of(&v.signer))
            .map(|i| u128::from(self.set.power(i)))
            .sum();
        is_quorum(power, self.set.total_power()).then(|| Certificate {
            kind,
            height: self.height,
            view,
            digest,
            signatures: signers.iter().map(|v| (v.signer, v.signature)).collect(),
        })
    }

    pub(super) fn check_quorums(&mut self, view: View, digest: Hash32) {
        let Some(value) = self.round.values.get(&digest).cloned() else {
            return;
        };
        if view == self.view
            && !self.round.committed_in.contains(&view)
            && let Some(cert) = self.certificate(Kind::Prepare, view, digest)
        {
            let prepared = Prepared {
                value: value.clone(),
                certificate: cert,
            };
            let higher = self
                .prepared
                .as_ref()
                .is_none_or(|p| p.certificate.view < view);
            if higher {
                if let Err(e) = self.store.record_prepared(self.height, &prepared) {
                    tracing::error!(error = %e, "could not persist prepared certificate; not committing");
                    return;
                }
                self.prepared = Some(prepared);
            }
            self.round.committed_in.insert(view);
            self.cast(Kind::Commit, view, digest);
        }
        if let Some(cert) = self.certificate(Kind::Commit, view, digest) {
            self.decide(value, cert);
        }
    }

    pub(super) fn decide(&mut self, value: Vec<u8>, certificate: Certificate) {
        debug_assert_eq!(value_digest(&value), certificate.digest);
        let decision = Decision {
            height: self.height,
            value,
            certificate,
        };
        if let Err(e) = self.store.record_decision(&decision) {
            tracing::error!(error = %e, "could not persist a decision; staying at this height");
            return;
        }
        let height = self.height;
        self.out.push(Action::Decided(decision));
        if self.cfg.checkpoint_interval > 0 && height.is_multiple_of(self.cfg.checkpoint_interval) {
            self.out.push(Action::Checkpoint { height });
        }
        self.height += 1;
        self.prepared = None;
        self.round = Round::default();
        if self.finished() {
            self.future.clear();
            return;
        }
        self.enter_view(0);
        let (now, later): (Vec<Message>, Vec<Message>) = std::mem::take(&mut self.future)
            .into_iter()
            .partition(|m| m.height() == self.height);
        self.future = later;
        for m in now {
            self.on_message(m);
        }
    }
}
