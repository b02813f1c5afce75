//! The net thread's side of submission batches (layouts and checks in [`crate::batch`]):
//! sealing what this validator accepted, fetching what peers announce, handing fetched
//! batches to the blocking pool to be opened and verified, and delivering their entries.

use std::collections::{HashSet, VecDeque};
use std::time::Instant;

use libp2p::PeerId;

use super::{Fetch, Node};
use crate::api::{Delivery, NetEvent};
use crate::batch::{self, BatchAnnounce, Entry, Outbox};
use crate::stats::{self, Reason};
use crate::wire::{Envelope, Hash32, Topic, now_ms, sha256};

/// A fetched batch, opened (or refused) on the verification pool.
pub(crate) struct Opened {
    announce: BatchAnnounce,
    publisher: PeerId,
    bytes: Vec<u8>,
    result: Result<Vec<Entry>, Reason>,
}

/// Batching state of the net thread.
pub(crate) struct Batches {
    /// Submissions accepted since the last seal, and when the first of them came.
    pub(super) outbox: Outbox,
    pub(super) since: Option<Instant>,
    /// Announced batches being fetched: hash → (announcement, publisher).
    pub(super) fetching: std::collections::HashMap<Hash32, (BatchAnnounce, PeerId)>,
    /// Fetched batches waiting for a verification slot.
    pub(super) waiting: VecDeque<(BatchAnnounce, PeerId, Vec<u8>)>,
    /// Batches on the pool now.
    pub(super) verifying: usize,
    /// Batches this node serves (its own and those it fetched), bounded apart from the
    /// module blobs so load never evicts a module.
    pub(super) cache: crate::protect::BlobCache,
    /// Where pool jobs (batches opened here, the door's verification jobs) report back.
    pub(super) opened_tx: tokio::sync::mpsc::UnboundedSender<super::PoolDone>,
}

impl Batches {
    pub(crate) fn new(
        cache_bytes: usize,
        opened_tx: tokio::sync::mpsc::UnboundedSender<super::PoolDone>,
    ) -> Batches {
        Batches {
            cache: crate::protect::BlobCache::new(cache_bytes),
            outbox: Outbox::default(),
            since: None,
            fetching: Default::default(),
            waiting: VecDeque::new(),
            verifying: 0,
            opened_tx,
        }
    }
}

impl Node {
    /// Whether accepted submissions travel in batches (else one gossip message each).
    pub(super) fn batching(&self) -> bool {
        !self.cfg.batch_window.is_zero()
    }

    /// Queue an accepted submission for the next batch (sealing first if it is full).
    pub(super) fn enqueue_submission(&mut self, envelope: &[u8], now: Instant) {
        if self.batches.outbox.full_for(
            envelope.len(),
            self.cfg.batch_max_entries,
            self.cfg.batch_max_bytes,
        ) {
            self.seal_batch();
        }
        self.batches.outbox.push(envelope);
        self.batches.since.get_or_insert(now);
    }

    /// Seal when the window has passed (called on the batch timer).
    pub(super) fn batch_tick(&mut self, now: Instant) {
        if self
            .batches
            .since
            .is_some_and(|t| now.duration_since(t) >= self.cfg.batch_window)
        {
            self.seal_batch();
        }
    }

    /// Seal the outbox: keep the batch in the blob cache and announce it.
    pub(super) fn seal_batch(&mut self) {
        self.batches.since = None;
        let Some((mut announce, mut blob)) = self.batches.outbox.seal() else {
            return;
        };
        if self.hostile.forge_batch_entries
            && let Some(last) = blob.last_mut()
        {
            *last ^= 1;
            announce.hash = sha256(&blob);
        }
        stats::batch_bytes("out", blob.len());
        self.batches.cache.insert(announce.hash, blob);
        stats::batch("out", "sealed");
        stats::batch_entries("sealed", u64::from(announce.count));
        let env = Envelope::sign(&self.hotkey, Topic::Batches, now_ms(), announce.encode());
        // Alone on the mesh: the batch is ours; peers that join later learn its submissions
        // from consensus, not from this announcement.
        if let Err(e) = self.publish(Topic::Batches, env.encode()) {
            tracing::debug!("batch announcement not gossiped: {e}");
        }
    }

    /// A verified announcement from `publisher`: fetch the batch from it (then from any
    /// connected peer), unless we have it.
    pub(super) fn on_announce(&mut self, publisher: PeerId, via: PeerId, payload: &[u8]) {
        let Some(a) = BatchAnnounce::decode(payload) else {
            self.refuse(via, Reason::InvalidPayload);
            return;
        };
        if a.bytes as usize > self.cfg.max_blob_bytes {
            self.refuse(via, Reason::Oversized);
            return;
        }
        if self.batches.cache.get(&a.hash).is_some() || self.batches.fetching.contains_key(&a.hash)
        {
            return;
        }
        self.batches.fetching.insert(a.hash, (a, publisher));
        let mut candidates = VecDeque::from([publisher]);
        if via != publisher {
            candidates.push_back(via);
        }
        self.fetches.insert(
            a.hash,
            Fetch {
                waiters: Vec::new(),
                candidates,
                tried: HashSet::new(),
                in_flight: false,
                providers: super::Providers::Done,
                deadline: Instant::now() + self.cfg.fetch_timeout,
                started: Instant::now(),
            },
        );
        self.advance_fetch(&a.hash);
    }

    /// Whether `hash` is a batch being fetched (its bytes are not announced on the DHT).
    pub(super) fn is_batch(&self, hash: &Hash32) -> bool {
        self.batches.fetching.contains_key(hash)
    }

    /// A batch fetch ended: verify what came, or count the failure.
    pub(super) fn batch_fetched(&mut self, hash: &Hash32, bytes: Option<Vec<u8>>) {
        let Some((a, publisher)) = self.batches.fetching.remove(hash) else {
            return;
        };
        match bytes {
            Some(b) if self.batches.waiting.len() < 4 * self.cfg.batch_verify_queue => {
                self.batches.waiting.push_back((a, publisher, b));
                self.start_verifying();
            }
            // Beyond the bound the batch is dropped, never queued without limit; its
            // submissions still reach consensus through the publisher's evaluations.
            Some(_) => stats::batch("in", "overloaded"),
            None => stats::batch("in", "fetch_failed"),
        }
    }

    fn start_verifying(&mut self) {
        while self.batches.verifying < self.cfg.batch_verify_queue {
            let Some((announce, publisher, bytes)) = self.batches.waiting.pop_front() else {
                return;
            };
            self.batches.verifying += 1;
            let tx = self.batches.opened_tx.clone();
            let max = batch::max_envelope(self.cfg.max_payload_bytes.submissions);
            drop(tokio::task::spawn_blocking(move || {
                let result = batch::open(&bytes, &announce, max);
                let _ = tx.send(super::PoolDone::Batch(Opened {
                    announce,
                    publisher,
                    bytes,
                    result,
                }));
            }));
        }
    }

    /// A batch back from the pool: refused whole (publisher penalised), or its entries
    /// delivered one by one, each still checked for replay, freshness and author.
    pub(crate) fn on_opened(&mut self, o: Opened) {
        self.batches.verifying = self.batches.verifying.saturating_sub(1);
        self.start_verifying();
        let entries = match o.result {
            Ok(e) => e,
            Err(reason) => {
                stats::batch("in", "refused");
                tracing::warn!(
                    peer = %o.publisher,
                    reason = reason.label(),
                    entries = o.announce.count,
                    "submission batch refused"
                );
                self.refuse(o.publisher, reason);
                return;
            }
        };
        stats::batch("in", "opened");
        stats::batch_bytes("in", o.bytes.len());
        let now = Instant::now();
        let via = o.publisher.to_base58();
        let mut delivered = 0u64;
        for e in entries {
            let bytes = &o.bytes[e.range.clone()];
            let id = sha256(bytes);
            if self.seen.contains(&id) {
                stats::batch_entries("duplicate", 1);
                continue;
            }
            let verdict = self.check_entry(&e, bytes);
            let env = match verdict {
                Ok(env) => env,
                Err(reason) => {
                    // The entry alone is dropped; an honest validator may have accepted
                    // it moments before it went stale, so nobody is penalised.
                    self.counters().reject(reason);
                    stats::batch_entries(reason.label(), 1);
                    continue;
                }
            };
            self.seen.insert(id, now);
            self.counters()
                .message(Topic::Submissions, "in", "accept", bytes.len());
            delivered += 1;
            self.emit(NetEvent::Message(Delivery {
                id,
                topic: Topic::Submissions,
                author: env.author,
                issued_at_ms: env.issued_at_ms,
                payload: env.payload,
                envelope: bytes.to_vec(),
                via_peer: via.clone(),
            }));
        }
        stats::batch_entries("delivered", delivered);
        // Kept to serve peers that ask us for it.
        self.batches.cache.insert(o.announce.hash, o.bytes);
    }

    /// The per-entry checks a batch's verification leaves to the net thread: freshness,
    /// the submissions topic's author set and payload check. Signatures are already
    /// verified.
    fn check_entry(&self, e: &Entry, bytes: &[u8]) -> Result<Envelope, Reason> {
        self.check_fresh(e.issued_at_ms)?;
        self.check_author(Topic::Submissions, &e.author)?;
        let env = Envelope::decode(bytes).map_err(|_| Reason::Malformed)?;
        if let Some(check) = self.checks.get(&Topic::Submissions)
            && check(&env).is_err()
        {
            return Err(Reason::InvalidPayload);
        }
        Ok(env)
    }
}
