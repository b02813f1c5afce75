//! What arrives: blocks and pinned rosters, miners' submissions and their scores, batches
//! (ours published, others' fetched), owner changes, fetched blobs.

use parity_scale_codec::Encode as _;
use platform_consensus::Storage;
use platform_net::{Envelope, Topic};

use super::{
    Arrival, Effect, Hash32, Hotkey, KnownBatch, Machine, ROSTERS_AHEAD, Refusal, Roster,
    epoch_seed,
};
use crate::metrics as m;
use crate::msg::{Batch, BatchAnnounce, BatchEntry, decode_exact};
use crate::registry::{Change, RegistryError, SignedChange};

/// The ingress result label of a refused or kept submission.
fn count(result: &'static str) {
    metrics::counter!(m::INGRESS, "result" => result).increment(1);
}

/// The module a change names, if any.
pub(super) fn module_of(c: &Change) -> Option<Hash32> {
    match c {
        Change::Publish(m) | Change::Update(m) => Some(m.module_hash),
        _ => None,
    }
}

/// A change in words, for logs.
pub(super) fn change_name(c: &Change) -> String {
    match c {
        Change::Publish(m) => format!("publish {} ({}) v{}", m.id, m.name, m.version),
        Change::Update(m) => format!("update {} ({}) v{}", m.id, m.name, m.version),
        Change::Activate(id) => format!("activate {id}"),
        Change::Deactivate(id) => format!("deactivate {id}"),
        Change::SetMechanism { id, mecid } => format!("weights of {id} to mechanism {mecid}"),
    }
}

/// Who handed a submission in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Source {
    /// A miner, to this validator.
    Miner,
    /// A peer, in its submission batch (or gossiped singly).
    Peer,
}

impl<S: Storage> Machine<S> {
    pub(super) fn on_block(&mut self, now: u64, number: u64) {
        let previous = self.head;
        if previous.is_some_and(|p| number <= p) {
            return;
        }
        self.head = Some(number);
        self.pace.block(now, number);
        let sched = self.cfg.schedule;
        // Epochs that ended with this block: note when (windows count from there).
        let from = previous
            .map_or(0, |p| sched.epoch_of(p))
            .max(self.next_epoch().saturating_sub(1));
        let to = sched.epoch_of(number);
        for e in from..to.min(from + 64) {
            self.ended_at.entry(e).or_insert_with(|| {
                tracing::debug!(epoch = e, block = number, "epoch end seen");
                now
            });
        }
    }

    /// When epoch `e`'s end was first seen here (now, if it has ended and was not noted).
    pub(super) fn ended(&mut self, now: u64, e: u64) -> Option<u64> {
        let head = self.head?;
        if head < self.cfg.schedule.end(e) {
            return None;
        }
        Some(*self.ended_at.entry(e).or_insert(now))
    }

    /// Ask for the rosters of the next undecided epochs the chain has reached.
    pub(super) fn want_rosters(&mut self, now: u64) {
        let Some(current) = self.current_epoch() else {
            return;
        };
        let next = self.next_epoch();
        let retry = self.cfg.view_timeout_ms.max(1000);
        for e in next..=current.min(next + ROSTERS_AHEAD) {
            if self.rosters.contains_key(&e) {
                continue;
            }
            if self.roster_asked.get(&e).is_some_and(|at| now < at + retry) {
                continue;
            }
            self.roster_asked.insert(e, now);
            self.out.push(Effect::ReadRoster {
                epoch: e,
                block: self.cfg.schedule.start(e),
            });
        }
    }

    pub(super) fn on_roster(&mut self, now: u64, epoch: u64, roster: Roster) {
        if roster.pin.block != self.cfg.schedule.start(epoch) {
            tracing::error!(
                epoch,
                block = roster.pin.block,
                "roster read at a block other than the epoch's pin; ignored"
            );
            return;
        }
        if self.last_epoch.is_some_and(|l| epoch <= l) || self.rosters.contains_key(&epoch) {
            return;
        }
        self.roster_asked.remove(&epoch);
        self.roster_digests.insert(epoch, roster.digest());
        self.rosters.insert(epoch, roster.clone());
        self.out.push(Effect::Pinned { epoch, roster });
        self.roster_arrived(now, epoch);
        // Submissions recorded before a restart but not evaluated: their seed is known now.
        let waiting: Vec<Arrival> = std::mem::take(&mut self.pending_evaluations);
        for a in waiting {
            if a.epoch == epoch {
                self.evaluate(a);
            } else {
                self.pending_evaluations.push(a);
            }
        }
        self.ensure_replica(now);
    }

    pub(super) fn on_gossip(&mut self, now: u64, topic: Topic, payload: Vec<u8>) {
        match topic {
            Topic::Consensus => match platform_consensus::codec::decode_message(&payload) {
                Ok(msg) => self.on_consensus(now, msg),
                Err(e) => tracing::debug!("consensus message: {}", e.0),
            },
            Topic::Evaluations => {
                // An announcement: the batch itself is fetched by id from whoever holds it.
                let next = self.next_epoch();
                if let Some(a) = decode_exact::<BatchAnnounce>(&payload)
                    && !self.batches.contains_key(&a.id)
                    && a.epoch + 1 >= next
                    && a.epoch <= next + ROSTERS_AHEAD
                {
                    self.fetch(now, a.id);
                }
            }
            Topic::Challenges => match self.verify_change(&payload) {
                Ok(sc) => self.accept_change(now, sc, payload),
                Err(e) => {
                    metrics::counter!(m::REGISTRY_REFUSED, "reason" => e.label()).increment(1);
                    tracing::warn!("registry change refused: {e}");
                }
            },
            // Submissions arrive as `Input::Submission`; submission batches are opened by
            // the net, which delivers their entries one by one.
            // Load notes arrive as `Input::LoadNote`, with their author.
            Topic::Submissions | Topic::Batches | Topic::Load => {}
        }
    }

    /// Count a submission, or say why it does not count (the ingress counter is moved
    /// either way).
    pub(super) fn on_submission(
        &mut self,
        now: u64,
        a: Arrival,
        from: Source,
    ) -> Result<(), Refusal> {
        let verdict = self.admit(now, &a, from);
        count(verdict.err().map_or("accepted", Refusal::label));
        if verdict == Err(Refusal::EpochClosed) && a.epoch >= self.next_epoch() {
            self.late.hold(a.id, a.epoch, a.envelope);
            return verdict;
        }
        verdict?;
        let subs = self.subs.entry(a.epoch).or_default();
        subs.count((a.challenge, a.author), a.id);
        self.stats.admitted += 1;
        self.out.push(Effect::RecordSubmission(a.clone()));
        self.evaluate(a);
        Ok(())
    }

    /// Whether a submission counts: its epoch open, its miner registered at the epoch's
    /// pinned block, its challenge active, and no lower id from the same miner counted for
    /// the challenge and epoch. An epoch is open to its miners until `settle / 2` after its
    /// end block is seen, and to what peers counted (in their submission batches, still in
    /// transit when miners' intake closed) until this validator's batch goes out, at
    /// `settle`: what a peer admitted at its last moment is in every first batch, and the
    /// leader need not wait for validators to catch up and publish again.
    fn admit(&mut self, now: u64, a: &Arrival, from: Source) -> Result<(), Refusal> {
        let sched = self.cfg.schedule;
        let head = self.head.ok_or(Refusal::NotReady)?;
        if a.epoch < self.next_epoch() {
            return Err(Refusal::EpochClosed);
        }
        if head < sched.start(a.epoch) {
            return Err(Refusal::EpochNotOpen);
        }
        let window = match from {
            Source::Miner => self.cfg.settle_ms / 2,
            Source::Peer => self.cfg.settle_ms,
        };
        let open = head < sched.end(a.epoch)
            || (self.ended(now, a.epoch).is_some_and(|t| now < t + window)
                && !self.published.contains(&a.epoch));
        if !open {
            return Err(Refusal::EpochClosed);
        }
        let roster = self.rosters.get(&a.epoch).ok_or(Refusal::NotReady)?;
        if !roster.miners.contains_key(&a.author) {
            return Err(Refusal::Unregistered);
        }
        if !self.loaded.contains(&a.challenge) {
            return Err(Refusal::InactiveChallenge);
        }
        let counted = self
            .subs
            .get(&a.epoch)
            .and_then(|s| s.counted.get(&(a.challenge, a.author)));
        if counted.is_some_and(|c| *c <= a.id) {
            return Err(Refusal::NotCounted);
        }
        Ok(())
    }

    pub(super) fn evaluate(&mut self, a: Arrival) {
        let Some(roster) = self.rosters.get(&a.epoch) else {
            self.pending_evaluations.push(a);
            return;
        };
        let seed = epoch_seed(self.cfg.netuid, a.epoch, &roster.pin);
        self.out.push(Effect::Evaluate {
            epoch: a.epoch,
            id: a.id,
            challenge: a.challenge,
            seed,
            body: a.body,
        });
    }

    pub(super) fn on_evaluated(&mut self, id: Hash32, score: Option<u64>) {
        // The epoch is not known from the id alone; open epochs are few.
        for subs in self.subs.values_mut() {
            if subs.ids.contains(&id) {
                subs.scores.insert(id, score);
                return;
            }
        }
    }

    /// Sign and announce our batch for every ended, undecided epoch whose roster names us,
    /// `settle` after its end.
    pub(super) fn publish_batches(&mut self, now: u64) {
        let me = self.me.public();
        let next = self.next_epoch();
        let Some(current) = self.current_epoch() else {
            return;
        };
        for e in next..current.min(next + ROSTERS_AHEAD) {
            let member = self
                .rosters
                .get(&e)
                .is_some_and(|r| r.stake_of(&me).is_some());
            if self.published.contains(&e) || !member {
                continue;
            }
            let Some(t) = self.ended(now, e) else {
                continue;
            };
            if now < t + self.cfg.settle_ms {
                continue;
            }
            self.publish_batch(now, e);
        }
    }

    pub(super) fn publish_batch(&mut self, now: u64, epoch: u64) {
        self.published.insert(epoch);
        let me = self.me.public();
        let entries: Vec<BatchEntry> = self
            .subs
            .get(&epoch)
            .map(|s| {
                s.counted
                    .iter()
                    .map(|((challenge, miner), id)| BatchEntry {
                        challenge: *challenge,
                        miner: *miner,
                        submission: *id,
                        score: s.scores.get(id).copied().flatten(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let n = entries.len();
        // Unscored entries by challenge: where evaluation fell behind.
        let mut behind = std::collections::BTreeMap::<u32, usize>::new();
        for e in entries.iter().filter(|e| e.score.is_none()) {
            *behind.entry(e.challenge).or_default() += 1;
        }
        let unscored: usize = behind.values().sum();
        if n > crate::msg::BATCH_ENTRIES_MAX {
            // Peers would refuse it (admission bounds an epoch far below this).
            return tracing::error!(epoch, entries = n, "our batch is over the entry limit");
        }
        let batch = Batch { epoch, entries };
        let env = Envelope::sign(&self.me, Topic::Evaluations, now, batch.encode()).encode();
        // Signed here and in canonical order (the counted map's): kept without decoding it
        // again or checking our own signature over a megabyte-sized payload.
        let Some(id) = self.keep_batch(&env, me, batch) else {
            return tracing::error!(epoch, "our own batch was refused");
        };
        self.out.push(Effect::Provide(env));
        metrics::counter!(m::BATCHES).increment(1);
        let announce = BatchAnnounce {
            epoch,
            id,
            entries: u32::try_from(n).unwrap_or(u32::MAX),
        };
        self.out.push(Effect::Publish {
            topic: Topic::Evaluations,
            payload: announce.encode(),
        });
        tracing::info!(epoch, entries = n, unscored, ?behind, "batch published");
    }

    /// Keep a signed batch; returns its id when it is new and the first of its author for
    /// its epoch (a second one is kept by id only, so a value naming it can be checked).
    pub(super) fn ingest_batch(&mut self, envelope: &[u8]) -> Option<Hash32> {
        let env = Envelope::decode(envelope).ok()?;
        if env.topic != Topic::Evaluations || !env.verify() {
            return None;
        }
        let batch = Batch::decode_checked(&env.payload)?;
        self.keep_batch(envelope, env.author, batch)
    }

    /// [`Machine::ingest_batch`] for a batch whose envelope is checked: `author` signed
    /// `envelope`, whose payload is `batch`.
    fn keep_batch(&mut self, envelope: &[u8], author: Hotkey, batch: Batch) -> Option<Hash32> {
        if self.last_epoch.is_some_and(|l| batch.epoch <= l) {
            return None; // applied already
        }
        if let Some(r) = self.rosters.get(&batch.epoch)
            && r.stake_of(&author).is_none()
        {
            return None; // not a validator of that epoch
        }
        let id = platform_types::sha256(envelope);
        if self.batches.contains_key(&id) {
            return None;
        }
        let epoch = batch.epoch;
        self.note_missed(epoch, author, &batch.entries);
        // An author's later batch with at least as many entries (a laggard's, with what it
        // caught up on) takes the place of its earlier one; a proposal names one of them and
        // validators fetch whichever is named.
        let held = self.by_epoch.entry(epoch).or_default();
        let later = held.get(&author).is_some_and(|old| {
            self.batches
                .get(old)
                .is_some_and(|b| batch.entries.len() >= b.batch.entries.len())
        });
        if later {
            held.insert(author, id);
        }
        let first = *held.entry(author).or_insert(id) == id;
        tracing::debug!(
            epoch,
            author = %hex::encode(&author[..4]),
            entries = batch.entries.len(),
            "batch held"
        );
        self.batches.insert(
            id,
            KnownBatch {
                epoch,
                author,
                batch,
            },
        );
        if first {
            self.out.push(Effect::StoreBatch {
                epoch,
                author,
                envelope: envelope.to_vec(),
            });
        }
        first.then_some(id)
    }

    pub(super) fn on_fetched(&mut self, now: u64, hash: Hash32, bytes: Option<Vec<u8>>) {
        self.fetching.remove(&hash);
        let Some(bytes) = bytes else {
            if self.missed.remove(&hash).is_some() {
                // No peer could serve it: this validator abstains on it.
                metrics::counter!(m::MISSED, "outcome" => "unavailable").increment(1);
            }
            return tracing::debug!("fetch of {} failed", hex::encode(hash));
        };
        if platform_types::sha256(&bytes) != hash {
            return tracing::warn!("fetched blob does not match its hash");
        }
        if self.on_sync_blob(now, hash, &bytes) || self.on_missed_blob(hash, &bytes) {
            return;
        }
        if self.modules_wanted.remove(&hash) {
            self.keep_module(bytes, hash);
        } else if self.ingest_batch(&bytes).is_some() || self.batches.contains_key(&hash) {
            // Serve it onwards: every holder is a provider.
            self.out.push(Effect::Provide(bytes));
        }
    }

    fn keep_module(&mut self, bytes: Vec<u8>, hash: Hash32) {
        if !self.modules.insert(hash) {
            return;
        }
        self.out.push(Effect::StoreModule(bytes.clone()));
        self.out.push(Effect::Provide(bytes));
        let waiting: Vec<_> = self
            .registry
            .entries()
            .values()
            .filter(|e| e.active && e.meta.module_hash == hash && !self.loaded.contains(&e.meta.id))
            .map(|e| e.meta.clone())
            .collect();
        for meta in waiting {
            self.out.push(Effect::LoadChallenge(meta));
        }
    }

    /// An owner's change through the API: verified, module kept and provided, then gossiped;
    /// it takes effect once consensus commits it. Accepted here first, so a lone validator
    /// (no peer to gossip to) commits it too.
    pub(super) fn on_post(
        &mut self,
        change: Vec<u8>,
        module: Option<Vec<u8>>,
    ) -> Result<String, String> {
        let sc = self.verify_change(&change).map_err(|e| {
            metrics::counter!(m::REGISTRY_REFUSED, "reason" => e.label()).increment(1);
            e.to_string()
        })?;
        if let Some(hash) = module_of(&sc.change)
            && !self.modules.contains(&hash)
        {
            match module {
                Some(bytes) if platform_types::sha256(&bytes) == hash => {
                    self.keep_module(bytes, hash);
                }
                Some(_) => return Err("the module sent does not match the change's hash".into()),
                None => return Err("the change names a module that was not sent".into()),
            }
        }
        let nonce = sc.nonce;
        self.out.push(Effect::Publish {
            topic: Topic::Challenges,
            payload: change.clone(),
        });
        self.changes.insert(nonce, change);
        tracing::info!(
            nonce,
            "registry change pending consensus: {}",
            change_name(&sc.change)
        );
        Ok(format!(
            "accepted change with nonce {nonce}; it takes effect once committed"
        ))
    }

    /// Verify a change against the registry as it will be after the pending changes with
    /// lower nonces.
    pub(super) fn verify_change(&self, bytes: &[u8]) -> Result<SignedChange, RegistryError> {
        if bytes.len() > crate::registry::CHANGE_MAX_BYTES {
            return Err(RegistryError::Malformed);
        }
        let sc = decode_exact::<SignedChange>(bytes).ok_or(RegistryError::Malformed)?;
        let mut projected = self.registry.clone();
        for c in self.changes.range(..sc.nonce).map(|(_, c)| c) {
            let _ = projected.apply(c);
        }
        projected.verify(bytes)
    }

    fn accept_change(&mut self, now: u64, sc: SignedChange, bytes: Vec<u8>) {
        if sc.nonce <= self.registry.last_nonce() || self.changes.contains_key(&sc.nonce) {
            return;
        }
        if let Some(h) = module_of(&sc.change) {
            self.fetch_module(now, h);
        }
        tracing::info!(
            nonce = sc.nonce,
            "registry change pending consensus: {}",
            change_name(&sc.change)
        );
        self.changes.insert(sc.nonce, bytes);
    }
}
