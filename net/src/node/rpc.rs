//! Request-response on the net thread: hello (hotkey bindings), blob requests, miners'
//! submissions with their acks, and checkpoint offers to peers catching up.

use super::*;

impl Node {
    pub(super) fn on_rpc(&mut self, ev: request_response::Event<Request, Response>) {
        use request_response::{Event, Message};
        match ev {
            Event::Message {
                peer,
                message:
                    Message::Request {
                        request_id,
                        request,
                        channel,
                    },
                ..
            } => self.on_request(peer, request_id, request, channel),
            Event::Message {
                peer,
                message:
                    Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => match (self.outbound.remove(&request_id), response) {
                (Some(Outbound::Hello), Response::Hello(bytes)) => {
                    stats::request("hello", "out", "ok");
                    self.bind(peer, &bytes);
                }
                (Some(Outbound::Blob(hash)), Response::Blob(blob)) => {
                    if let Some(f) = self.fetches.get_mut(&hash) {
                        f.in_flight = false;
                    }
                    match blob {
                        Some(b) if b.len() <= self.cfg.max_blob_bytes && sha256(&b) == hash => {
                            if self.is_batch(&hash) {
                                self.finish_fetch(&hash, Ok(b));
                            } else {
                                self.store_blob(hash, b.clone());
                                let _ = self.start_providing(hash);
                                self.finish_fetch(&hash, Ok(b));
                            }
                        }
                        Some(_) => {
                            tracing::warn!(%peer, "blob does not match its hash");
                            self.refuse(peer, Reason::HashMismatch);
                            self.advance_fetch(&hash);
                        }
                        None => self.advance_fetch(&hash),
                    }
                }
                (Some(Outbound::Checkpoint), Response::Checkpoint(found)) => {
                    stats::request("checkpoint", "out", "ok");
                    if let Some(bytes) = found {
                        let peer = peer.to_base58();
                        self.emit(NetEvent::Checkpoint { peer, bytes });
                    }
                }
                (Some(_), _) => {
                    self.refuse(peer, Reason::Malformed);
                }
                (None, _) => {}
            },
            Event::OutboundFailure {
                request_id, error, ..
            } => match self.outbound.remove(&request_id) {
                Some(Outbound::Blob(hash)) => {
                    stats::request("blob", "out", "failed");
                    if let Some(f) = self.fetches.get_mut(&hash) {
                        f.in_flight = false;
                    }
                    self.advance_fetch(&hash);
                }
                Some(Outbound::Hello) => {
                    tracing::debug!("hello failed: {error}");
                    stats::request("hello", "out", "failed");
                }
                Some(Outbound::Checkpoint) => {
                    tracing::debug!("checkpoint request failed: {error}");
                    stats::request("checkpoint", "out", "failed");
                }
                None => {}
            },
            Event::InboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                tracing::debug!(%peer, "inbound request failed: {error}");
                stats::request("any", "in", "failed");
                self.answered(request_id);
                // A frame the codec refused (over-long, unknown kind or version, garbage)
                // is counted with its reason and costs its sender like any invalid input.
                if let request_response::InboundFailure::Io(e) = &error
                    && let Some(reason) = crate::codec::frame_refusal(e)
                {
                    self.refuse(peer, reason);
                }
            }
            Event::ResponseSent { request_id, .. } => self.answered(request_id),
        }
    }

    pub(super) fn on_request(
        &mut self,
        peer: PeerId,
        request_id: InboundRequestId,
        request: Request,
        channel: ResponseChannel<Response>,
    ) {
        let now = Instant::now();
        let kind = request.label();
        let allowed = self.peers.get_mut(&peer).is_none_or(|p| {
            p.requests
                .take(self.cfg.peer_request_rate, self.cfg.peer_request_burst, now)
        });
        if !allowed {
            stats::request(kind, "in", "rate_limited");
            if let Request::Submit(_) = request {
                // A miner hears why; the point it costs is taken once the answer is out.
                let answer = admit::Answer::Rpc {
                    channel,
                    peer,
                    request_id,
                };
                return self.refuse_submit(answer, Reason::RateLimited);
            }
            self.refuse(peer, Reason::RateLimited);
            return; // dropping the channel answers nothing; the requester times out
        }
        if !matches!(request, Request::Hello(_)) && !self.may_request(&peer) {
            stats::request(kind, "in", "unbound");
            if let Request::Submit(_) = request {
                let answer = admit::Answer::Rpc {
                    channel,
                    peer,
                    request_id,
                };
                return self.refuse_submit(answer, Reason::UnboundPeer);
            }
            self.counters().reject(Reason::UnboundPeer);
            let _ = self
                .swarm
                .behaviour_mut()
                .rpc
                .send_response(channel, Response::Blob(None));
            return;
        }
        let response = match request {
            Request::Hello(bytes) => {
                self.bind(peer, &bytes);
                if !self.swarm.is_connected(&peer) {
                    return;
                }
                Response::Hello(self.binding.clone())
            }
            Request::Blob(hash) => {
                let mut blob = self
                    .blobs
                    .get(&hash)
                    .or_else(|| self.batches.cache.get(&hash))
                    .cloned()
                    .or_else(|| {
                        let b = self.source.as_ref()?.blob(&hash)?;
                        metrics::counter!(stats::names::BLOBS_FROM_STORE).increment(1);
                        Some(b)
                    });
                if self.hostile.corrupt_blobs
                    && let Some(b) = blob.as_mut()
                    && let Some(x) = b.first_mut()
                {
                    *x ^= 0xff;
                }
                Response::Blob(blob)
            }
            Request::Checkpoint => {
                Response::Checkpoint(self.source.as_ref().and_then(|s| s.checkpoint()))
            }
            Request::Submit(bytes) => {
                stats::request(kind, "in", "ok");
                let answer = admit::Answer::Rpc {
                    channel,
                    peer,
                    request_id,
                };
                return self.on_submit(answer, bytes);
            }
        };
        stats::request(kind, "in", "ok");
        let _ = self
            .swarm
            .behaviour_mut()
            .rpc
            .send_response(channel, response);
    }
}

/// Validator peers asked for a checkpoint at once.
const CHECKPOINT_ASK_PEERS: usize = 3;

impl Node {
    /// Ask a few bound validator peers for their latest certified checkpoint.
    pub(super) fn ask_checkpoint(&mut self) {
        if self.isolated {
            return;
        }
        let peers: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(id, p)| p.hotkey.is_some() && self.swarm.is_connected(id))
            .map(|(id, _)| *id)
            .take(CHECKPOINT_ASK_PEERS)
            .collect();
        for peer in peers {
            let rid = self
                .swarm
                .behaviour_mut()
                .rpc
                .send_request(&peer, Request::Checkpoint);
            self.outbound.insert(rid, Outbound::Checkpoint);
        }
    }
}
