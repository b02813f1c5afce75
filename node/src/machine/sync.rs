//! Snapshots and state sync: every checkpoint height the applied state is snapshotted and the
//! following heights' values name it; a node more than [`SNAPSHOT_LAG_EPOCHS`] behind the
//! chain asks peers for their latest certified decision, checks its commit certificate
//! against the roster of its epoch, fetches the snapshot it names (manifest, then chunks, each
//! by hash over request-response), installs it, and replays only the heights after it.

use parity_scale_codec::Encode as _;
use platform_consensus::{Decision, Domain};

use super::{Effect, Hash32, Machine, Storage};
use crate::metrics as m;
use crate::msg::{EpochRecord, EpochValue, decode_exact};
use crate::registry::Registry;
use crate::snapshot::{AppState, Manifest, SNAPSHOT_VERSION, Snapshot, SnapshotRef};

/// A node whose next undecided epoch is more than this behind the chain's catches up from a
/// snapshot rather than height by height.
pub const SNAPSHOT_LAG_EPOCHS: u64 = 3;
/// Snapshots a node keeps (and serves).
pub const SNAPSHOTS_KEPT: usize = 2;

/// Decisions one checkpoint offer may carry.
const OFFER_DECISIONS_MAX: usize = 64;
/// View timeouts a node far behind waits for a peer's snapshot before replaying heights
/// (covers a few asks: a node that has just started may have no peer to ask yet).
pub(super) const OFFER_WAIT_TIMEOUTS: u64 = 6;
/// View timeouts a state sync may run before it is given up.
const SYNC_TIMEOUTS: u64 = 20;

/// Whether a node far behind waits for a snapshot before replaying heights one by one. It
/// waits once per spell behind, and never longer than an offer and its sync may take: a node
/// whose peers hold no snapshot, or whose sync fails, still replays.
#[derive(Clone, Copy, Debug)]
pub(super) enum ReplayHold {
    /// Not far behind (or snapshots are off).
    Off,
    /// Far behind: no height is replayed before this time, unless a snapshot is installed or
    /// the wait is released first.
    Until(u64),
    /// Released for this spell: replay and a state sync race, the first to arrive wins.
    Released,
}

/// A checkpoint offer waiting for its epoch's roster.
#[derive(Debug)]
pub(super) struct Offer {
    /// The newest decision, whose value names the snapshot.
    decision: Decision,
    /// Its value.
    value: EpochValue,
    /// The decisions after the snapshot's height before it (replayed after the install).
    tail: Vec<Decision>,
    /// When it arrived.
    at: u64,
}

/// A state sync in progress.
#[derive(Debug)]
pub(super) struct Catchup {
    /// The certified decision whose value names the snapshot, and the decisions of the
    /// heights after the snapshot's (fed to consensus after the install; each verified there
    /// against its own height's roster).
    decisions: Vec<Decision>,
    /// The snapshot it names.
    reference: SnapshotRef,
    /// The manifest, once fetched.
    manifest: Option<(Manifest, Vec<u8>)>,
    /// Chunks fetched, by index.
    chunks: Vec<Option<Vec<u8>>>,
    /// When it started (given up after a while, to take another offer).
    started_ms: u64,
}

/// A snapshot installed from a peer: what the shell persists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Installed {
    /// The state.
    pub state: AppState,
    /// Its blobs (kept and served onwards).
    pub snapshot: Snapshot,
}

impl<S: Storage> Machine<S> {
    /// The latest snapshot held (taken here or installed).
    pub fn latest_snapshot(&self) -> Option<SnapshotRef> {
        self.snapshots.values().next_back().copied()
    }

    /// A state sync in progress, in words (for status): the snapshot's height and how many
    /// of its chunks are held.
    pub fn state_sync(&self) -> Option<String> {
        let c = self.catchup.as_ref()?;
        Some(match &c.manifest {
            None => format!("snapshot {}: fetching its manifest", c.reference.height),
            Some((mf, _)) => format!(
                "snapshot {}: {} of {} chunks",
                c.reference.height,
                c.chunks.iter().filter(|x| x.is_some()).count(),
                mf.chunks.len()
            ),
        })
    }

    /// The snapshot a value at height `h` must name: that of the latest checkpoint below
    /// it. `Err(())` when this node does not hold it (restored from before snapshots existed):
    /// it cannot check what a proposer names.
    pub(super) fn expected_snapshot(&self, h: u64) -> Result<Option<SnapshotRef>, ()> {
        let i = self.cfg.checkpoint_interval.max(1);
        let c = (h.saturating_sub(1) / i) * i;
        if c == 0 {
            return Ok(None);
        }
        self.snapshots.get(&c).copied().map(Some).ok_or(())
    }

    /// After applying a checkpoint height: snapshot the state and keep it.
    pub(super) fn take_snapshot(
        &mut self,
        height: u64,
        epoch: u64,
        pin: super::Pin,
        record: &EpochRecord,
    ) {
        if self.cfg.checkpoint_interval == 0 || !height.is_multiple_of(self.cfg.checkpoint_interval)
        {
            return;
        }
        let state = AppState {
            version: SNAPSHOT_VERSION,
            height,
            epoch,
            pin,
            owner: self.registry.owner(),
            nonce: self.registry.last_nonce(),
            registry: self
                .registry
                .entries()
                .iter()
                .map(|(id, e)| (*id, e.encode()))
                .collect(),
            record: record.encode(),
        };
        let snap = state.build();
        tracing::info!(
            height,
            "snapshot {} ({} chunks)",
            hex::encode(snap.reference.manifest),
            snap.chunks.len()
        );
        self.keep_snapshot(snap.reference);
        self.out.push(Effect::StoreSnapshot(Box::new(snap)));
    }

    fn keep_snapshot(&mut self, r: SnapshotRef) {
        self.snapshots.insert(r.height, r);
        while self.snapshots.len() > SNAPSHOTS_KEPT {
            self.snapshots.pop_first();
        }
    }

    /// Snapshots are on and the chain is more than [`SNAPSHOT_LAG_EPOCHS`] past the next
    /// epoch to decide: catching up from a snapshot beats replaying height by height.
    fn far_behind(&self) -> bool {
        self.cfg.checkpoint_interval > 0
            && self
                .current_epoch()
                .is_some_and(|c| c > self.next_epoch() + SNAPSHOT_LAG_EPOCHS)
    }

    /// Whether heights are not to be replayed now: far behind with snapshots on, a node
    /// waits for a peer's snapshot first (so its history starts there, not at genesis), for
    /// at most [`OFFER_WAIT_TIMEOUTS`] view timeouts, or as long as a sync it started runs.
    pub(super) fn replay_held(&mut self, now: u64) -> bool {
        if !self.far_behind() {
            self.replay_hold = ReplayHold::Off;
            return false;
        }
        match self.replay_hold {
            ReplayHold::Off => {
                let until = now + OFFER_WAIT_TIMEOUTS * self.cfg.view_timeout_ms;
                self.replay_hold = ReplayHold::Until(until);
                true
            }
            ReplayHold::Until(t) if now < t => true,
            ReplayHold::Until(_) => {
                self.release_replay("no snapshot came in time");
                false
            }
            ReplayHold::Released => false,
        }
    }

    /// Stop waiting for a snapshot: heights are replayed from peers from now on.
    fn release_replay(&mut self, why: &str) {
        if let ReplayHold::Until(_) = self.replay_hold {
            tracing::info!("far behind, replaying heights from peers: {why}");
            self.replay_hold = ReplayHold::Released;
        }
    }

    /// Far behind the chain with no sync running: ask peers for their latest certified
    /// decision, at most once per two view timeouts.
    pub(super) fn maybe_ask_checkpoint(&mut self, now: u64) {
        if let Some(c) = &self.catchup
            && c.reference.height <= self.applied_height
        {
            // Replaying decisions got there first.
            metrics::counter!(m::SNAPSHOT_SYNCS, "outcome" => "overtaken").increment(1);
            self.catchup = None;
        }
        if let Some(c) = &self.catchup
            && now >= c.started_ms + SYNC_TIMEOUTS * self.cfg.view_timeout_ms
        {
            tracing::warn!("state sync from snapshot {} timed out", c.reference.height);
            metrics::counter!(m::SNAPSHOT_SYNCS, "outcome" => "timeout").increment(1);
            self.catchup = None;
            self.release_replay("the state sync timed out");
        }
        if let Some(c) = &self.catchup {
            // Ask again for what a failed or lost fetch left missing.
            let mut want: Vec<Hash32> = Vec::new();
            match &c.manifest {
                None => want.push(c.reference.manifest),
                Some((mf, _)) => want.extend(
                    mf.chunks
                        .iter()
                        .zip(&c.chunks)
                        .filter(|(_, got)| got.is_none())
                        .map(|(h, _)| *h),
                ),
            }
            for h in want {
                self.fetch(now, h);
            }
            return;
        }
        if !self.far_behind() {
            return;
        }
        if self
            .last_checkpoint_ask
            .is_some_and(|t| now < t + 2 * self.cfg.view_timeout_ms)
        {
            return;
        }
        self.last_checkpoint_ask = Some(now);
        self.out.push(Effect::AskCheckpoint);
    }

    /// A peer's latest certified decisions (SCALE list of encoded decisions): worth syncing
    /// from if the newest names a snapshot beyond what is applied here. Checked once its
    /// epoch's roster is read; the others are the tail replayed after the snapshot.
    pub(super) fn on_checkpoint_offer(&mut self, now: u64, bytes: &[u8]) {
        if self.catchup.is_some() {
            return;
        }
        let Some(list) = decode_exact::<Vec<Vec<u8>>>(bytes)
            .filter(|l| !l.is_empty() && l.len() <= OFFER_DECISIONS_MAX)
        else {
            return self.offer_refused("malformed");
        };
        let mut ds = Vec::with_capacity(list.len());
        for b in &list {
            match platform_consensus::codec::decode_decision(b) {
                Ok(d) => ds.push(d),
                Err(_) => return self.offer_refused("malformed"),
            }
        }
        ds.sort_by_key(|d| d.height);
        ds.dedup_by_key(|d| d.height);
        let Some(d) = ds.pop() else {
            return;
        };
        let Some(v) = EpochValue::decode_checked(&d.value) else {
            return self.offer_refused("malformed");
        };
        let Some(r) = v.snapshot else {
            return self.release_replay("a peer has no snapshot yet");
        };
        if r.height <= self.applied_height {
            return self.release_replay("a peer's snapshot is not ahead of this node");
        }
        if d.height <= r.height {
            return; // inconsistent: no decision names a snapshot of its own height or later
        }
        if v.epoch != self.epoch_of_height(d.height) {
            return self.offer_refused("epoch");
        }
        // No epoch the chain has not reached can have been committed (and a made-up height
        // must not hold the place of a real offer).
        if self.current_epoch().is_none_or(|c| v.epoch > c) {
            return self.offer_refused("future");
        }
        if self
            .offer
            .as_ref()
            .is_none_or(|o| o.decision.height < d.height)
        {
            let tail = ds.into_iter().filter(|t| t.height > r.height).collect();
            self.offer = Some(Offer {
                decision: d,
                value: v,
                tail,
                at: now,
            });
        }
        self.check_offer(now);
    }

    fn offer_refused(&mut self, why: &'static str) {
        metrics::counter!(m::SNAPSHOT_SYNCS, "outcome" => why).increment(1);
        tracing::warn!("checkpoint offer refused: {why}");
    }

    /// Verify the held offer's certificate once its roster is read, then start fetching.
    pub(super) fn check_offer(&mut self, now: u64) {
        let Some(Offer {
            decision: d,
            value: v,
            at,
            ..
        }) = self.offer.as_ref()
        else {
            return;
        };
        let Some(roster) = self.rosters.get(&v.epoch) else {
            let (e, at) = (v.epoch, *at);
            if now >= at + 10 * self.cfg.view_timeout_ms {
                self.offer = None;
                self.release_replay("the offer's roster could not be read");
                return self.offer_refused("roster_unavailable");
            }
            self.want_roster_of(now, e);
            return;
        };
        let set = roster.validator_set();
        let domain = Domain {
            netuid: self.cfg.netuid,
            epoch: v.epoch,
        };
        let ok = set.is_ok_and(|set| d.verify(domain, &set).is_ok())
            && v.pin == roster.pin
            && v.roster == roster.digest();
        let Some(Offer {
            decision: d,
            value: v,
            mut tail,
            ..
        }) = self.offer.take()
        else {
            return;
        };
        if !ok {
            return self.offer_refused("certificate");
        }
        let Some(reference) = v.snapshot else {
            return;
        };
        tracing::info!(
            height = reference.height,
            "state sync: fetching snapshot {} named at height {}",
            hex::encode(reference.manifest),
            d.height
        );
        tail.push(d);
        if let ReplayHold::Until(_) = self.replay_hold {
            // Wait as long as the sync may run (it releases the wait if it fails).
            let until = now + SYNC_TIMEOUTS * self.cfg.view_timeout_ms;
            self.replay_hold = ReplayHold::Until(until);
        }
        self.catchup = Some(Catchup {
            decisions: tail,
            reference,
            manifest: None,
            chunks: Vec::new(),
            started_ms: now,
        });
        self.fetch(now, reference.manifest);
    }

    /// A fetched blob that belongs to the running state sync (true if it did).
    pub(super) fn on_sync_blob(&mut self, now: u64, hash: Hash32, bytes: &[u8]) -> bool {
        let Some(c) = self.catchup.as_mut() else {
            return false;
        };
        if c.manifest.is_none() && hash == c.reference.manifest {
            match Manifest::decode_checked(bytes) {
                Ok(mf) if mf.height == c.reference.height => {
                    c.chunks = vec![None; mf.chunks.len()];
                    let want = mf.chunks.clone();
                    c.manifest = Some((mf, bytes.to_vec()));
                    for h in want {
                        self.fetch(now, h);
                    }
                }
                _ => {
                    self.catchup = None;
                    self.release_replay("the snapshot's manifest was refused");
                    self.offer_refused("manifest");
                }
            }
            return true;
        }
        let Some((mf, _)) = c.manifest.as_ref() else {
            return false;
        };
        let mut mine = false;
        for (i, h) in mf.chunks.iter().enumerate() {
            if *h == hash && c.chunks[i].is_none() {
                c.chunks[i] = Some(bytes.to_vec());
                mine = true;
            }
        }
        if mine && c.chunks.iter().all(Option::is_some) {
            self.finish_sync(now);
        }
        mine
    }

    fn finish_sync(&mut self, now: u64) {
        let Some(c) = self.catchup.take() else {
            return;
        };
        let installs = self.stats.snapshots_installed;
        self.try_install(now, c);
        if self.stats.snapshots_installed == installs {
            self.release_replay("the snapshot was not installed");
        }
    }

    fn try_install(&mut self, now: u64, c: Catchup) {
        let Some((mf, manifest_bytes)) = c.manifest else {
            return;
        };
        if mf.height <= self.applied_height {
            // Replaying decisions got there first: nothing to install.
            metrics::counter!(m::SNAPSHOT_SYNCS, "outcome" => "overtaken").increment(1);
            return;
        }
        let chunks: Vec<Vec<u8>> = c.chunks.into_iter().flatten().collect();
        let state = match mf.assemble(&chunks) {
            Ok(s) => s,
            Err(e) => return self.offer_refused(e.label()),
        };
        if state.owner != self.registry.owner() {
            tracing::error!("the snapshot's registry has another owner than this node's config");
            return self.offer_refused("owner");
        }
        let Ok(registry) = Registry::restore(state.owner, &state.registry, state.nonce) else {
            return self.offer_refused("registry");
        };
        if state.epoch != self.epoch_of_height(state.height) {
            return self.offer_refused("epoch");
        }
        self.install(
            now,
            c.decisions,
            Installed {
                state,
                snapshot: Snapshot {
                    reference: c.reference,
                    manifest: manifest_bytes,
                    chunks,
                },
            },
            registry,
        );
    }

    /// Make the snapshot's state this node's: consensus resumes after its height.
    fn install(&mut self, now: u64, decisions: Vec<Decision>, inst: Installed, registry: Registry) {
        let (height, epoch) = (inst.state.height, inst.state.epoch);
        let mut store = match self.replica.take() {
            Some(r) => r.into_store(),
            None => match self.cstore.take() {
                Some(s) => s,
                None => return,
            },
        };
        if let Err(e) = store.set_floor(height) {
            tracing::error!("consensus store: {e}; snapshot not installed");
            self.cstore = Some(store);
            return;
        }
        self.cstore = Some(store);
        self.registry = registry;
        self.applied_height = height;
        self.last_epoch = Some(epoch);
        self.keep_snapshot(inst.snapshot.reference);
        self.decisions.retain(|d| d.height > height);
        self.future.retain(|msg| msg.height() > height);
        self.sync_ahead.retain(|h, _| *h > height);
        for d in decisions {
            if d.height > height && self.sync_ahead.len() < super::SYNC_AHEAD_MAX {
                self.sync_ahead.insert(d.height, d);
            }
        }
        self.timer = None;
        self.want_proposal = None;
        self.validations.clear();
        self.changes.retain(|n, _| *n > self.registry.last_nonce());
        self.forget_through(epoch);
        self.stats.snapshots_installed += 1;
        // The heights after it are replayed at once (and a node still far behind does not
        // wait for another snapshot).
        self.replay_hold = ReplayHold::Released;
        metrics::counter!(m::SNAPSHOT_SYNCS, "outcome" => "installed").increment(1);
        tracing::info!(
            height,
            epoch,
            "state sync: installed snapshot {}; replaying the heights after it",
            hex::encode(inst.snapshot.reference.manifest)
        );
        // The engine runs what the installed registry says is active.
        let active: Vec<_> = self.registry.active().cloned().collect();
        let retire: Vec<u32> = self
            .loaded
            .iter()
            .copied()
            .filter(|id| !active.iter().any(|m| m.id == *id))
            .collect();
        for id in retire {
            self.loaded.remove(&id);
            self.out.push(Effect::RetireChallenge(id));
        }
        self.out.push(Effect::Installed(Box::new(inst)));
        for meta in active {
            if self.modules.contains(&meta.module_hash) {
                self.out.push(Effect::LoadChallenge(meta));
            } else {
                self.fetch_module(now, meta.module_hash);
            }
        }
        self.ensure_replica(now);
    }
}
