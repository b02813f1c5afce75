//! Peer protection on the net thread: every message's checks short of replay and rate
//! (peer roles, size, structure, topic, freshness, author set, signature, payload), and what
//! a refusal costs its sender (penalty points, a ban at the threshold).

use super::*;

impl Node {
    pub(super) fn penalise(&mut self, peer: PeerId, points: f64) {
        let now = Instant::now();
        let Some(state) = self.peers.get_mut(&peer) else {
            return;
        };
        let total = state.penalty.add(points, now);
        self.swarm
            .behaviour_mut()
            .gossipsub
            .set_application_score(&peer, -total);
        if total >= self.cfg.ban_threshold {
            self.ban(peer, "penalty threshold");
        }
    }

    pub(super) fn ban(&mut self, peer: PeerId, why: &str) {
        tracing::warn!(%peer, why, "banning peer");
        let b = self.swarm.behaviour_mut();
        if b.blocked.block_peer(peer) {
            self.shared.counters.ban();
            self.bans
                .push_back((Instant::now() + self.cfg.ban_duration, peer));
        }
        let _ = self.swarm.disconnect_peer_id(peer);
    }

    /// The unbound-peer policy for gossip relayed by `source`: a peer that has not bound
    /// itself may relay only where the policy is open.
    pub(super) fn check_relay(&self, source: PeerId) -> Result<(), Reason> {
        let unbound = self.peers.get(&source).is_some_and(|p| p.hotkey.is_none());
        if unbound && !self.cfg.unbound_peers.gossip() {
            return Err(Reason::UnboundPeer);
        }
        Ok(())
    }

    /// On a validator-only topic, a publisher we know to be bound to a hotkey must be bound
    /// to a validator's (refused before decoding); its hotkey is returned, and the caller
    /// checks that the envelope is that validator's own. A publisher we do not know (not
    /// connected to us, or not yet bound) leaves the author check to decide.
    pub(super) fn check_publisher(
        &self,
        topic: Topic,
        publisher: &PeerId,
    ) -> Result<Option<Hotkey>, Reason> {
        if !topic.validators_only() {
            return Ok(None);
        }
        let Some(bound) = self.peers.get(publisher).and_then(|p| p.hotkey) else {
            return Ok(None);
        };
        if !self.is_validator(Some(&bound)) {
            return Err(Reason::NotValidator);
        }
        Ok(Some(bound))
    }

    /// Whether `peer` may make requests other than hello under the unbound-peer policy.
    pub(super) fn may_request(&self, peer: &PeerId) -> bool {
        self.cfg.unbound_peers.requests() || self.peers.get(peer).is_none_or(|p| p.hotkey.is_some())
    }

    /// Under `unbound_peers = "refuse"`, close the connections of peers that have not bound
    /// themselves within `hello_timeout` (counted, never banned: they may bind next time).
    pub(super) fn close_unbound(&mut self, now: Instant) {
        if self.cfg.unbound_peers != crate::config::UnboundPeers::Refuse {
            return;
        }
        let timeout = self.cfg.hello_timeout;
        let mut late = Vec::new();
        for (id, p) in self.peers.iter_mut() {
            if p.hotkey.is_none() && now.duration_since(p.connected_at) >= timeout {
                // Counted once per timeout, however long the close takes.
                p.connected_at = now;
                late.push(*id);
            }
        }
        for peer in late {
            tracing::debug!(%peer, "closing a connection that did not bind in time");
            self.counters().reject(Reason::UnboundPeer);
            let _ = self.swarm.disconnect_peer_id(peer);
        }
    }

    /// Within the replay window and not too far ahead of our clock.
    pub(super) fn check_fresh(&self, issued_at_ms: u64) -> Result<(), Reason> {
        let now = now_ms();
        let age = self.cfg.max_message_age.as_millis() as u64;
        let skew = self.cfg.max_clock_skew.as_millis() as u64;
        if issued_at_ms.saturating_add(age) < now {
            return Err(Reason::Stale);
        }
        if issued_at_ms > now.saturating_add(skew) {
            return Err(Reason::Future);
        }
        Ok(())
    }

    /// In the topic's author set, when it has one.
    pub(super) fn check_author(&self, topic: Topic, author: &Hotkey) -> Result<(), Reason> {
        match self.authors.get(&topic) {
            Some(allowed) if !allowed.contains(author) => Err(Reason::UnknownAuthor),
            _ => Ok(()),
        }
    }

    /// Every check of an envelope short of replay and rate: size, structure, topic,
    /// freshness, author, payload, and last the signature (the dearest).
    pub(super) fn check_envelope(
        &self,
        bytes: &[u8],
        topic: Topic,
        fresh: bool,
    ) -> Result<Envelope, Reason> {
        let env = self.check_unsigned(bytes, topic, fresh)?;
        if !env.verify() {
            return Err(Reason::BadSignature);
        }
        Ok(env)
    }

    /// [`Self::check_envelope`] but the signature, which the caller verifies (the door: in
    /// bulk, off this thread).
    pub(super) fn check_unsigned(
        &self,
        bytes: &[u8],
        topic: Topic,
        fresh: bool,
    ) -> Result<Envelope, Reason> {
        let env = self.check_frame(bytes, topic, fresh)?;
        self.check_payload(topic, &env)?;
        Ok(env)
    }

    /// Size, structure, topic, freshness, author.
    fn check_frame(&self, bytes: &[u8], topic: Topic, fresh: bool) -> Result<Envelope, Reason> {
        if bytes.len() > self.cfg.max_payload_bytes.of(topic) + ENVELOPE_OVERHEAD {
            return Err(Reason::Oversized);
        }
        let env = Envelope::decode(bytes).map_err(|_| Reason::Malformed)?;
        if env.topic != topic {
            return Err(Reason::WrongTopic);
        }
        if fresh {
            self.check_fresh(env.issued_at_ms)?;
        }
        self.check_author(topic, &env.author)?;
        Ok(env)
    }

    /// The topic's payload: a submission decodes, and passes the application's check.
    fn check_payload(&self, topic: Topic, env: &Envelope) -> Result<(), Reason> {
        if topic == Topic::Submissions && Submission::decode(&env.payload).is_err() {
            return Err(Reason::InvalidPayload);
        }
        if let Some(check) = self.checks.get(&topic)
            && let Err(e) = check(env)
        {
            tracing::debug!(
                topic = topic.label(),
                reason = e.reason.label(),
                "payload refused: {}",
                e.detail
            );
            return Err(e.reason);
        }
        Ok(())
    }

    pub(super) fn refuse(&mut self, peer: PeerId, reason: Reason) {
        self.counters().reject(reason);
        self.penalise_for(peer, reason);
    }

    /// The penalty a refusal costs: provable abuse a lot, a rate overrun a little, honest
    /// states nothing.
    pub(super) fn penalise_for(&mut self, peer: PeerId, reason: Reason) {
        if reason.penalises() {
            self.penalise(peer, INVALID_POINTS);
        } else if reason == Reason::RateLimited {
            self.penalise(peer, RATE_POINTS);
        }
    }
}
