//! Kademlia on the net thread: records (checked on every put and get), blob providers,
//! and blob fetches (connected validators first, then providers; bytes checked by hash).

use super::*;

impl Node {
    pub(super) fn on_kad(&mut self, ev: kad::Event) {
        match ev {
            kad::Event::RoutingUpdated { peer, .. }
                // Validators are few: connect to every one the DHT finds.
                if !self.swarm.is_connected(&peer) => {
                    let opts = DialOpts::peer_id(peer)
                        .condition(PeerCondition::DisconnectedAndNotDialing)
                        .build();
                    let _ = self.swarm.dial(opts);
                }
            kad::Event::InboundRequest {
                request:
                    kad::InboundRequest::PutRecord {
                        source,
                        record: Some(record),
                        ..
                    },
            } => match self.check_record(record.key.as_ref(), &record.value) {
                Ok(_) => {
                    if let Err(e) = self.swarm.behaviour_mut().kad.store_mut().put(record) {
                        tracing::debug!("dht store full: {e}");
                        stats::dht("store", "full");
                    } else {
                        stats::dht("store", "ok");
                    }
                }
                Err(reason) => {
                    stats::dht("store", "refused");
                    self.refuse(source, reason);
                }
            },
            kad::Event::OutboundQueryProgressed {
                id, result, step, ..
            } => self.on_query(id, result, step.last),
            _ => {}
        }
    }

    /// A DHT record must be `kind | sha256(value)` with a signed envelope as its value.
    pub(super) fn check_record(&self, key: &[u8], value: &[u8]) -> Result<Hash32, Reason> {
        if value.len() > self.cfg.max_record_bytes {
            return Err(Reason::Oversized);
        }
        let (_, hash) = RecordKind::parse_key(key).map_err(|_| Reason::Malformed)?;
        if sha256(value) != hash {
            return Err(Reason::HashMismatch);
        }
        let env = Envelope::decode(value).map_err(|_| Reason::Malformed)?;
        if !env.verify() {
            return Err(Reason::BadSignature);
        }
        Ok(hash)
    }

    pub(super) fn on_query(&mut self, id: kad::QueryId, result: kad::QueryResult, last: bool) {
        let Some(op) = self.kad_ops.remove(&id) else {
            return;
        };
        let op = match (op, result) {
            (KadOp::Provide(hash, reply), kad::QueryResult::StartProviding(r)) => {
                stats::dht("provide", if r.is_ok() { "ok" } else { "no_peers" });
                reply.send(Ok(hash));
                None
            }
            (KadOp::Providers(hash), kad::QueryResult::GetProviders(r)) => {
                let local = *self.swarm.local_peer_id();
                if let Some(f) = self.fetches.get_mut(&hash) {
                    match r {
                        Ok(kad::GetProvidersOk::FoundProviders { providers, .. }) => {
                            for p in providers {
                                if p != local && !f.tried.contains(&p) && !f.candidates.contains(&p)
                                {
                                    f.candidates.push_back(p);
                                }
                            }
                        }
                        _ => f.providers = Providers::Done,
                    }
                    if last {
                        f.providers = Providers::Done;
                    }
                    stats::dht("providers", "ok");
                }
                self.advance_fetch(&hash);
                (!last).then_some(KadOp::Providers(hash))
            }
            (KadOp::Put(hash, reply), kad::QueryResult::PutRecord(r)) => {
                let r = match r {
                    Ok(_) => {
                        stats::dht("put", "ok");
                        Ok(hash)
                    }
                    Err(e) => {
                        stats::dht("put", "error");
                        Err(NetError::Other(format!("dht put: {e}")))
                    }
                };
                let _ = reply.send(r);
                None
            }
            (KadOp::Get(hash, reply), kad::QueryResult::GetRecord(r)) => {
                let mut reply = reply;
                if let Ok(kad::GetRecordOk::FoundRecord(rec)) = &r
                    && reply.is_some()
                {
                    match self.check_record(rec.record.key.as_ref(), &rec.record.value) {
                        Ok(h) if h == hash => {
                            stats::dht("get", "ok");
                            if let Some(reply) = reply.take() {
                                let _ = reply.send(Ok(rec.record.value.clone()));
                            }
                            if let Some(mut q) = self.swarm.behaviour_mut().kad.query_mut(&id) {
                                q.finish();
                            }
                        }
                        Ok(_) | Err(_) => {
                            self.counters().reject(Reason::HashMismatch);
                            if let Some(p) = rec.peer {
                                self.penalise(p, INVALID_POINTS);
                            }
                        }
                    }
                }
                if last || r.is_err() {
                    if let Some(reply) = reply.take() {
                        stats::dht("get", "not_found");
                        let _ = reply.send(Err(NetError::NotFound));
                    }
                    None
                } else {
                    Some(KadOp::Get(hash, reply))
                }
            }
            (op, _) => Some(op),
        };
        if let Some(op) = op
            && !last
        {
            self.kad_ops.insert(id, op);
        }
    }

    pub(super) fn provide(&mut self, bytes: Vec<u8>, reply: Done<Hash32>) {
        if bytes.len() > self.cfg.max_blob_bytes {
            reply.send(Err(NetError::TooLarge {
                what: "blob",
                len: bytes.len(),
                limit: self.cfg.max_blob_bytes,
            }));
            return;
        }
        let hash = sha256(&bytes);
        self.store_blob(hash, bytes);
        match self.start_providing(hash) {
            Ok(q) => {
                self.kad_ops.insert(q, KadOp::Provide(hash, reply));
            }
            Err(e) => {
                tracing::debug!("{} served but not announced: {e}", hex::encode(hash));
                reply.send(Err(NetError::Other(format!("dht provide: {e}"))));
            }
        }
    }

    pub(super) fn store_blob(&mut self, hash: Hash32, bytes: Vec<u8>) {
        for old in self.blobs.insert(hash, bytes) {
            // Still served from the durable source: still provided.
            if self.source.as_ref().is_some_and(|s| s.holds(&old)) {
                continue;
            }
            self.stop_providing(&old);
        }
    }

    /// Announce `hash` in the DHT, withdrawing the oldest announcement beyond
    /// [`PROVIDED_MAX`](super::PROVIDED_MAX): the newest content is what peers look for, and
    /// every announcement is republished periodically.
    pub(super) fn start_providing(
        &mut self,
        hash: Hash32,
    ) -> Result<kad::QueryId, kad::store::Error> {
        if let Some(i) = self.provided.iter().position(|h| *h == hash) {
            self.provided.remove(i);
        }
        self.provided.push_back(hash);
        while self.provided.len() > super::PROVIDED_MAX {
            if let Some(old) = self.provided.pop_front() {
                self.swarm
                    .behaviour_mut()
                    .kad
                    .stop_providing(&blob_key(&old));
            }
        }
        self.swarm
            .behaviour_mut()
            .kad
            .start_providing(blob_key(&hash))
    }

    fn stop_providing(&mut self, hash: &Hash32) {
        if let Some(i) = self.provided.iter().position(|h| h == hash) {
            self.provided.remove(i);
        }
        self.swarm
            .behaviour_mut()
            .kad
            .stop_providing(&blob_key(hash));
    }

    pub(super) fn fetch(&mut self, hash: Hash32, reply: Done<Vec<u8>>) {
        if let Some(b) = self.blobs.get(&hash) {
            reply.send(Ok(b.clone()));
            return;
        }
        if let Some(f) = self.fetches.get_mut(&hash) {
            f.waiters.push(reply);
            return;
        }
        self.fetches.insert(
            hash,
            Fetch {
                waiters: vec![reply],
                candidates: self.connected_validators().collect(),
                tried: HashSet::new(),
                in_flight: false,
                providers: Providers::NotAsked,
                deadline: Instant::now() + self.cfg.fetch_timeout,
                started: Instant::now(),
            },
        );
        self.advance_fetch(&hash);
    }

    /// Connected peers bound to a validator's hotkey: who is asked for a blob first, and
    /// again (those not yet asked) when its providers had none. Never a miner's connection:
    /// it serves no blobs, and a subnet's validators keep hundreds of them.
    fn connected_validators(&self) -> impl Iterator<Item = PeerId> + '_ {
        self.peers
            .iter()
            .filter(|(_, s)| s.hotkey.is_some() && self.is_validator(s.hotkey.as_ref()))
            .map(|(p, _)| *p)
    }

    /// Ask the next candidate: connected validators first, then the DHT's providers, then
    /// validators connected since; fail when no one is left.
    pub(super) fn advance_fetch(&mut self, hash: &Hash32) {
        let Some(f) = self.fetches.get(hash) else {
            return;
        };
        if f.in_flight {
            return;
        }
        if f.candidates.is_empty() && f.providers == Providers::Done {
            let fresh: Vec<PeerId> = self
                .connected_validators()
                .filter(|p| !f.tried.contains(p))
                .collect();
            if let Some(f) = self.fetches.get_mut(hash) {
                f.candidates.extend(fresh);
            }
        }
        let Some(f) = self.fetches.get_mut(hash) else {
            return;
        };
        match (f.candidates.pop_front(), f.providers) {
            (Some(peer), _) => {
                f.tried.insert(peer);
                f.in_flight = true;
                let rid = self
                    .swarm
                    .behaviour_mut()
                    .rpc
                    .send_request(&peer, Request::Blob(*hash));
                self.outbound.insert(rid, Outbound::Blob(*hash));
            }
            (None, Providers::NotAsked) => {
                f.providers = Providers::Asking;
                let q = self.swarm.behaviour_mut().kad.get_providers(blob_key(hash));
                self.kad_ops.insert(q, KadOp::Providers(*hash));
            }
            (None, Providers::Asking) => {}
            (None, Providers::Done) => self.finish_fetch(hash, Err(NetError::NotFound)),
        }
    }

    pub(super) fn finish_fetch(&mut self, hash: &Hash32, result: Result<Vec<u8>, NetError>) {
        if let Some(f) = self.fetches.remove(hash) {
            tracing::debug!(
                ms = f.started.elapsed().as_millis() as u64,
                tried = f.tried.len(),
                bytes = result.as_ref().map_or(0, |b| b.len()),
                "blob fetch of {} done",
                hex::encode(&hash[..4])
            );
            stats::request(
                "blob",
                "out",
                match &result {
                    Ok(_) => "ok",
                    Err(NetError::Timeout) => "timeout",
                    Err(_) => "not_found",
                },
            );
            for w in f.waiters {
                w.send(result.clone());
            }
        }
        self.batch_fetched(hash, result.ok());
    }

    pub(super) fn put_record(&mut self, kind: RecordKind, bytes: Vec<u8>, reply: Reply<Hash32>) {
        let hash = sha256(&bytes);
        if let Err(reason) = self.check_record(&kind.key(&hash), &bytes) {
            let _ = reply.send(Err(NetError::Rejected(reason.label().into())));
            return;
        }
        let record = kad::Record::new(kind.key(&hash), bytes);
        match self
            .swarm
            .behaviour_mut()
            .kad
            .put_record(record, kad::Quorum::One)
        {
            Ok(q) => {
                self.kad_ops.insert(q, KadOp::Put(hash, reply));
            }
            Err(e) => {
                let _ = reply.send(Err(NetError::Other(format!("dht put: {e}"))));
            }
        }
    }
}
