//! Peers on the net thread: connections opened and closed, hello bindings, and who counts
//! as a validator.

use super::*;

impl Node {
    /// A peer counts as a validator only when its bound hotkey is in the validator set
    /// (the consensus topic's authors, as the application pins them); with no set given,
    /// any bound peer does.
    pub(super) fn is_validator(&self, hotkey: Option<&Hotkey>) -> bool {
        let Some(h) = hotkey else {
            return false;
        };
        self.authors
            .get(&Topic::Consensus)
            .is_none_or(|set| set.contains(h))
    }

    pub(super) fn peer_infos(&self) -> Vec<PeerInfo> {
        let gs = &self.swarm.behaviour().gossipsub;
        let topics: HashMap<PeerId, Vec<Topic>> = gs
            .all_peers()
            .map(|(p, ts)| {
                let ts = Topic::ALL
                    .into_iter()
                    .filter(|t| ts.contains(&&IdentTopic::new(t.name()).hash()))
                    .collect();
                (*p, ts)
            })
            .collect();
        let now = Instant::now();
        let mut out: Vec<PeerInfo> = self
            .peers
            .iter()
            .map(|(p, s)| PeerInfo {
                peer: p.to_base58(),
                hotkey: s.hotkey,
                validator: self.is_validator(s.hotkey.as_ref()),
                gossip_score: gs.peer_score(p),
                penalty: s.penalty.clone().add(0.0, now),
                topics: topics.get(p).cloned().unwrap_or_default(),
            })
            .collect();
        out.sort_by(|a, b| a.peer.cmp(&b.peer));
        out
    }

    pub(super) fn on_swarm_event(&mut self, ev: SwarmEvent<BehaviourEvent>) {
        match ev {
            SwarmEvent::Behaviour(ev) => self.on_behaviour(ev),
            SwarmEvent::ConnectionEstablished {
                peer_id,
                endpoint,
                num_established,
                ..
            } => {
                if self.isolated {
                    let _ = self.swarm.disconnect_peer_id(peer_id);
                    return;
                }
                if endpoint.is_dialer() {
                    self.swarm
                        .behaviour_mut()
                        .kad
                        .add_address(&peer_id, endpoint.get_remote_address().clone());
                }
                if num_established.get() == 1 {
                    let now = Instant::now();
                    self.peers.insert(
                        peer_id,
                        PeerState {
                            hotkey: None,
                            connected_at: now,
                            messages: Bucket::new(self.cfg.peer_message_burst, now),
                            requests: Bucket::new(self.cfg.peer_request_burst, now),
                            penalty: Penalty::new(now),
                        },
                    );
                    let rid = self
                        .swarm
                        .behaviour_mut()
                        .rpc
                        .send_request(&peer_id, Request::Hello(self.binding.clone()));
                    self.outbound.insert(rid, Outbound::Hello);
                    if self.bootstrap.iter().any(|(p, _)| *p == peer_id) {
                        let _ = self.swarm.behaviour_mut().kad.bootstrap();
                    }
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => {
                if let Some(state) = self.peers.remove(&peer_id) {
                    self.emit(NetEvent::PeerLeft {
                        peer: peer_id.to_base58(),
                        hotkey: state.hotkey,
                    });
                }
            }
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                tracing::debug!(?peer_id, "outgoing connection failed: {error}");
            }
            SwarmEvent::IncomingConnectionError { error, .. } => {
                tracing::debug!("incoming connection failed: {error}");
            }
            _ => {}
        }
    }

    pub(super) fn bind(&mut self, peer: PeerId, bytes: &[u8]) {
        let ok = Binding::decode(bytes)
            .ok()
            .filter(|b| b.verify_for(&peer.to_bytes()));
        match ok {
            Some(b) => {
                if let Some(state) = self.peers.get_mut(&peer)
                    && state.hotkey.is_none()
                {
                    state.hotkey = Some(b.hotkey);
                    self.emit(NetEvent::PeerBound {
                        peer: peer.to_base58(),
                        hotkey: b.hotkey,
                    });
                }
            }
            None => {
                self.counters().reject(Reason::BadBinding);
                self.ban(peer, "invalid hotkey binding");
            }
        }
    }
}
