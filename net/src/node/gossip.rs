//! Gossip on the net thread: publishing, and every received message's checks (rate, replay,
//! relay and publisher roles, the envelope) before gossipsub may forward it.

use super::*;

impl Node {
    pub(super) fn publish(&mut self, topic: Topic, bytes: Vec<u8>) -> Result<Hash32, NetError> {
        let limit = self.cfg.max_message_bytes;
        if bytes.len() > limit {
            return Err(NetError::TooLarge {
                what: "message",
                len: bytes.len(),
                limit,
            });
        }
        let id = sha256(&bytes);
        let len = bytes.len();
        match self
            .swarm
            .behaviour_mut()
            .gossipsub
            .publish(IdentTopic::new(topic.name()), bytes)
        {
            Ok(_) => {
                self.seen.insert(id, Instant::now());
                self.counters().message(topic, "out", "sent", len);
                Ok(id)
            }
            Err(gossipsub::PublishError::Duplicate) => Err(NetError::Duplicate),
            Err(gossipsub::PublishError::NoPeersSubscribedToTopic) => Err(NetError::NoPeers),
            Err(gossipsub::PublishError::MessageTooLarge) => Err(NetError::TooLarge {
                what: "message",
                len,
                limit,
            }),
            Err(e) => Err(NetError::Other(format!("publish: {e}"))),
        }
    }

    pub(super) fn on_gossip(&mut self, source: PeerId, msg_id: MessageId, msg: gossipsub::Message) {
        let now = Instant::now();
        let len = msg.data.len();
        let topic = Topic::from_name(msg.topic.as_str());
        let verdict = (|| {
            let topic = topic.ok_or(Reason::WrongTopic)?;
            if let Some(p) = self.peers.get_mut(&source)
                && !p
                    .messages
                    .take(self.cfg.peer_message_rate, self.cfg.peer_message_burst, now)
            {
                return Err(Reason::RateLimited);
            }
            let id = sha256(&msg.data);
            if self.seen.contains(&id) {
                return Err(Reason::Replay);
            }
            self.check_relay(source)?;
            let publisher = msg.source.unwrap_or(source);
            let bound = self.check_publisher(topic, &publisher)?;
            let env = self.check_envelope(&msg.data, topic, true)?;
            if bound.is_some_and(|h| h != env.author) {
                return Err(Reason::NotValidator);
            }
            Ok((topic, id, env))
        })();
        let label = topic.unwrap_or(Topic::Consensus);
        match verdict {
            Ok((topic, id, env)) => {
                self.swarm
                    .behaviour_mut()
                    .gossipsub
                    .report_message_validation_result(&msg_id, &source, MessageAcceptance::Accept);
                self.seen.insert(id, now);
                self.counters().message(topic, "in", "accept", len);
                if topic == Topic::Batches {
                    let publisher = msg.source.unwrap_or(source);
                    self.on_announce(publisher, source, &env.payload);
                    return;
                }
                self.emit(NetEvent::Message(Delivery {
                    id,
                    topic,
                    author: env.author,
                    issued_at_ms: env.issued_at_ms,
                    payload: env.payload,
                    envelope: msg.data,
                    via_peer: source.to_base58(),
                }));
            }
            Err(reason) => {
                let (acceptance, verdict) = if reason.penalises() {
                    (MessageAcceptance::Reject, "reject")
                } else {
                    (MessageAcceptance::Ignore, "ignore")
                };
                self.swarm
                    .behaviour_mut()
                    .gossipsub
                    .report_message_validation_result(&msg_id, &source, acceptance);
                self.counters().message(label, "in", verdict, len);
                tracing::debug!(peer = %source, reason = reason.label(), "gossip refused");
                self.refuse(source, reason);
            }
        }
    }
}
