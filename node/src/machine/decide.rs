//! Deciding epochs: proposals, validation by recomputation, and committed decisions applied
//! in height order (the replica of each height runs in `replica`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use parity_scale_codec::Encode as _;
use platform_consensus::crypto::value_digest;
use platform_consensus::{Decision, Event, Storage};
use platform_keys::ss58_encode;

use super::intake::{change_name, module_of};
use super::{Applied, Effect, Hash32, Hotkey, KnownBatch, Machine, RuleBreak};
use crate::epoch::{self, EpochInput, Report};
use crate::metrics as m;
use crate::msg::{EPOCH_VALUE_VERSION, EpochRecord, EpochValue};
use crate::registry::Change;

/// What a validator does with a proposed value.
enum Verdict {
    Accept,
    Reject(&'static str),
    Wait(&'static str),
}

impl<S: Storage> Machine<S> {
    pub(super) fn maybe_propose(&mut self, now: u64) {
        let Some(h) = self.want_proposal else {
            return;
        };
        if h != self.height() {
            self.want_proposal = None;
            return;
        }
        let e = self.epoch_of_height(h);
        let Some(t) = self.ended(now, e) else {
            return;
        };
        if now < t + self.cfg.settle_ms {
            return; // batches go out at `settle`
        }
        let Some(roster) = self.rosters.get(&e) else {
            return;
        };
        let ids = self.batch_ids(e);
        let held: Vec<&KnownBatch> = ids.iter().filter_map(|id| self.batches.get(id)).collect();
        let reporting: u128 = held
            .iter()
            .filter_map(|b| roster.stake_of(&b.author))
            .map(u128::from)
            .sum();
        let total = roster.total_stake();
        let (roster_digest, pin) = (
            self.roster_digests
                .get(&e)
                .copied()
                .unwrap_or_else(|| roster.digest()),
            roster.pin,
        );
        // Every validator's batch held and every submission they name agreed (no counted
        // submission waits on a validator catching up and publishing again): proposed at
        // once. Otherwise at 2 × settle with more than 2/3 of the stake reporting, or at
        // 3 × settle with what there is.
        let complete = reporting == total && self.agrees_on_all(e, &ids);
        if !complete && now < t + 2 * self.cfg.settle_ms {
            return;
        }
        if reporting * 3 <= total * 2 && now < t + 3 * self.cfg.settle_ms {
            return; // wait a little longer for batches
        }
        // Pending changes that apply in order, with their modules held.
        let mut projected = self.registry.clone();
        let mut changes = Vec::new();
        for bytes in self.changes.values() {
            let Ok(sc) = projected.verify(bytes) else {
                continue;
            };
            if module_of(&sc.change).is_some_and(|m| !self.modules.contains(&m)) {
                break;
            }
            let _ = projected.apply(bytes);
            changes.push(bytes.clone());
        }
        let Some(result) = self.compute(e, &ids) else {
            return;
        };
        let value = EpochValue {
            version: EPOCH_VALUE_VERSION,
            epoch: e,
            pin,
            roster: roster_digest,
            batches: ids,
            changes,
            digest: result.digest,
            // Not holding the checkpoint's snapshot (restored from before snapshots): name
            // none; validators that hold it refuse, and another leader proposes.
            snapshot: self.expected_snapshot(h).unwrap_or(None),
        };
        self.want_proposal = None;
        tracing::info!(
            epoch = e,
            height = h,
            "proposing {}",
            hex::encode(result.digest)
        );
        if let Some(r) = self.replica.as_mut() {
            let actions = r.handle(
                now,
                Event::Propose {
                    height: h,
                    value: value.encode(),
                },
            );
            self.act(now, actions);
        }
    }

    /// Once the next epoch to decide has a batch from each of its validators, compute the
    /// result over them ahead of the proposal (which names the same batches when no one
    /// publishes again): judging it is then a lookup, off the consensus round's critical
    /// path. The leader weighs the same result to decide when to propose.
    pub(super) fn precompute(&mut self, now: u64) {
        let e = self.epoch_of_height(self.height());
        if self
            .ended(now, e)
            .is_none_or(|t| now < t + self.cfg.settle_ms)
        {
            return;
        }
        let (Some(roster), Some(held)) = (self.rosters.get(&e), self.by_epoch.get(&e)) else {
            return;
        };
        if roster.validators.iter().all(|(v, _)| held.contains_key(v)) {
            let ids = self.batch_ids(e);
            let _ = self.agrees_on_all(e, &ids);
        }
    }

    /// Whether the result over these batches agrees a score for every (challenge, miner)
    /// any of them names. Weighed once per set of batches (a result over an epoch's
    /// batches is tens of thousands of reports).
    fn agrees_on_all(&mut self, epoch: u64, ids: &[Hash32]) -> bool {
        if let Some((weighed, ok)) = &self.covered
            && weighed == ids
        {
            return *ok;
        }
        let Some(result) = self.compute(epoch, ids) else {
            return false;
        };
        let ok = ids
            .iter()
            .filter_map(|id| self.batches.get(id))
            .all(|b| all_agreed(&b.batch.entries, &result.scores));
        self.covered = Some((ids.to_vec(), ok));
        ok
    }

    /// The batch ids held for an epoch (the first per author), sorted.
    fn batch_ids(&self, epoch: u64) -> Vec<Hash32> {
        let mut ids: Vec<Hash32> = self
            .by_epoch
            .get(&epoch)
            .map(|m| m.values().copied().collect())
            .unwrap_or_default();
        ids.sort();
        ids
    }

    /// The epoch result over these batches (all held), with the epoch's roster and the
    /// registry as applied. The last result is kept: a validator computes a height's value
    /// when it judges (or proposes) it and again when it applies it, from the same inputs.
    pub(super) fn compute(
        &mut self,
        epoch: u64,
        ids: &[Hash32],
    ) -> Option<Arc<epoch::EpochResult>> {
        let roster = self.rosters.get(&epoch)?;
        let challenges: Vec<epoch::Challenge> = self
            .registry
            .active_entries()
            .map(|e| epoch::Challenge {
                id: e.meta.id,
                emission_share: e.meta.emission_share,
                rule: e.meta.rule.into(),
                mechanism: e.mechanism,
            })
            .collect();
        let key = self.roster_digests.get(&epoch).map(|d| Computed {
            epoch,
            roster: *d,
            ids: ids.to_vec(),
            challenges: challenges.clone(),
        });
        if let (Some(k), Some((held, result))) = (&key, &self.computed)
            && k == held
        {
            return Some(Arc::clone(result));
        }
        let entries = ids
            .iter()
            .filter_map(|id| self.batches.get(id))
            .map(|b| b.batch.entries.len())
            .sum();
        // The reports vector of the last computation, its capacity kept: tens of thousands of
        // reports (~110 bytes each) would otherwise be fresh memory, page-faulted in again
        // at every computation.
        let mut reports = std::mem::take(&mut self.reports_scratch);
        reports.clear();
        reports.reserve(entries);
        for id in ids {
            let b = self.batches.get(id)?;
            for en in &b.batch.entries {
                reports.push(Report {
                    validator: b.author,
                    challenge: en.challenge,
                    miner: en.miner,
                    submission: en.submission,
                    score: en.score,
                });
            }
        }
        let input = EpochInput {
            epoch,
            validators: roster
                .validators
                .iter()
                .map(|(h, s)| epoch::Validator {
                    hotkey: *h,
                    stake: *s,
                })
                .collect(),
            challenges,
            miners: roster.miners.clone(),
            reports,
        };
        let result = Arc::new(epoch::compute(&input));
        self.reports_scratch = input.reports;
        if let Some(k) = key {
            self.computed = Some((k, Arc::clone(&result)));
        }
        Some(result)
    }

    /// Inputs of a value this node lacks (fetches started), or why it is invalid.
    fn missing_inputs(&mut self, now: u64, v: &EpochValue) -> Result<usize, &'static str> {
        let mut missing = Vec::new();
        let mut authors = BTreeSet::new();
        let roster = self.rosters.get(&v.epoch);
        for id in &v.batches {
            match self.batches.get(id) {
                Some(b) => {
                    if b.epoch != v.epoch {
                        return Err("batch of another epoch");
                    }
                    if !authors.insert(b.author) {
                        return Err("two batches from one validator");
                    }
                    if roster.is_some_and(|r| r.stake_of(&b.author).is_none()) {
                        return Err("batch from outside the epoch's validator set");
                    }
                }
                None => missing.push(*id),
            }
        }
        let mut modules = Vec::new();
        let mut projected = self.registry.clone();
        for c in &v.changes {
            let sc = projected.apply(c).map_err(|e| e.label())?;
            if let Some(m) = module_of(&sc.change)
                && !self.modules.contains(&m)
            {
                modules.push(m);
            }
        }
        let n = missing.len() + modules.len();
        for id in missing {
            self.fetch(now, id);
        }
        for m in modules {
            self.fetch_module(now, m);
        }
        Ok(n)
    }

    /// The verdict on a proposed value: vote for it, refuse it (why), or wait for inputs
    /// (what is awaited: the reason given if the wait runs out).
    fn judge(&mut self, now: u64, height: u64, bytes: &[u8]) -> Verdict {
        let Some(v) = EpochValue::decode_checked(bytes) else {
            return Verdict::Reject("malformed value");
        };
        if self.cfg.rule_break == Some(RuleBreak::VoteWithoutRecompute) {
            return Verdict::Accept;
        }
        if v.epoch != self.epoch_of_height(height) {
            return Verdict::Reject("not the epoch this height decides");
        }
        let Some(roster) = self.rosters.get(&v.epoch) else {
            return Verdict::Wait("pinned block unreadable");
        };
        if v.pin != roster.pin {
            return Verdict::Reject("pinned block differs");
        }
        let digest = self
            .roster_digests
            .get(&v.epoch)
            .copied()
            .unwrap_or_else(|| roster.digest());
        if v.roster != digest {
            return Verdict::Reject("metagraph at the pinned block differs");
        }
        if self.ended(now, v.epoch).is_none() {
            return Verdict::Wait("epoch has not ended");
        }
        // The snapshot it names must be ours (a node without it cannot check, and does not).
        if self
            .expected_snapshot(height)
            .is_ok_and(|mine| mine != v.snapshot)
        {
            return Verdict::Reject("snapshot differs");
        }
        match self.missing_inputs(now, &v) {
            Err(why) => return Verdict::Reject(why),
            Ok(n) if n > 0 => return Verdict::Wait("inputs unavailable"),
            Ok(_) => {}
        }
        match self.compute(v.epoch, &v.batches) {
            Some(r) if r.digest == v.digest => Verdict::Accept,
            Some(_) => Verdict::Reject("result digest differs"),
            None => Verdict::Wait("inputs unavailable"),
        }
    }

    pub(super) fn retry_validations(&mut self, now: u64) {
        let pending = std::mem::take(&mut self.validations);
        for p in pending {
            if p.height != self.height() {
                continue;
            }
            let verdict = match self.judge(now, p.height, &p.value) {
                Verdict::Wait(why) if now >= p.deadline_ms => Err(why),
                Verdict::Wait(_) => {
                    self.validations.push(p);
                    continue;
                }
                Verdict::Accept => Ok(()),
                Verdict::Reject(why) => Err(why),
            };
            if let Err(why) = verdict {
                *self.stats.rejected.entry(why).or_default() += 1;
                metrics::counter!(m::PROPOSALS_REJECTED, "reason" => why).increment(1);
                tracing::warn!(
                    height = p.height,
                    view = p.view,
                    "rejecting proposal: {why}"
                );
            }
            if let Some(r) = self.replica.as_mut() {
                let actions = r.handle(
                    now,
                    Event::Validated {
                        height: p.height,
                        view: p.view,
                        digest: value_digest(&p.value),
                        accept: verdict.is_ok(),
                    },
                );
                self.act(now, actions);
            }
        }
    }

    /// Apply committed decisions in height order, each once its inputs are held.
    pub(super) fn apply_decisions(&mut self, now: u64) {
        while let Some(d) = self.decisions.front() {
            let height = d.height;
            if height <= self.applied_height {
                self.decisions.pop_front();
                continue;
            }
            let Some(v) = EpochValue::decode_checked(&d.value) else {
                tracing::error!(height, "committed value does not decode; skipping it");
                self.decisions.pop_front();
                self.applied_height = height;
                continue;
            };
            if !self.rosters.contains_key(&v.epoch) {
                // Replayed or synced: read the roster it was decided with.
                self.want_roster_of(now, v.epoch);
                return;
            }
            match self.missing_inputs(now, &v) {
                Ok(n) if n > 0 => return,
                Ok(_) => {}
                Err(e) => tracing::error!(height, "committed value: {e}"),
            }
            let Some(d) = self.decisions.pop_front() else {
                return;
            };
            self.apply(&d, &v);
        }
    }

    pub(super) fn want_roster_of(&mut self, now: u64, epoch: u64) {
        let retry = self.cfg.view_timeout_ms.max(1000);
        if self
            .roster_asked
            .get(&epoch)
            .is_some_and(|at| now < at + retry)
        {
            return;
        }
        self.roster_asked.insert(epoch, now);
        self.out.push(Effect::ReadRoster {
            epoch,
            block: self.cfg.schedule.start(epoch),
        });
    }

    fn apply(&mut self, d: &Decision, v: &EpochValue) {
        let result = self.compute(v.epoch, &v.batches);
        let recomputed = result.as_ref().is_some_and(|r| r.digest == v.digest);
        if !recomputed {
            self.stats.digest_mismatches += 1;
            tracing::error!(
                epoch = v.epoch,
                "our result differs from the committed {}",
                hex::encode(v.digest)
            );
        }
        let ((weights, mechanism_weights), scored, flagged) = match &result {
            Some(r) => {
                let set = self.rosters.get(&v.epoch).map(|ro| &ro.validators);
                for f in &r.flagged {
                    if set.is_some_and(|vs| vs.iter().any(|(h, _)| *h == f.validator)) {
                        *self
                            .stats
                            .flagged_by_validator
                            .entry(ss58_encode(&f.validator))
                            .or_default() += 1;
                    }
                    metrics::counter!(m::FLAGGED).increment(1);
                    tracing::warn!(
                        epoch = v.epoch,
                        challenge = f.challenge,
                        "validator {} flagged: {:?}",
                        ss58_encode(&f.validator),
                        f.flag
                    );
                }
                (
                    (r.weights.clone(), r.mechanism_weights.clone()),
                    r.scores.len(),
                    r.flagged.len(),
                )
            }
            None => ((Vec::new(), Vec::new()), 0, 0),
        };
        let reports: usize = v
            .batches
            .iter()
            .filter_map(|id| self.batches.get(id))
            .map(|b| b.batch.entries.len())
            .sum();
        // Registry changes, after the epoch's result.
        let mut changed = BTreeSet::new();
        for c in &v.changes {
            match self.registry.apply(c) {
                Ok(sc) => {
                    tracing::info!(
                        nonce = sc.nonce,
                        "registry change committed: {}",
                        change_name(&sc.change)
                    );
                    changed.insert(match &sc.change {
                        Change::Publish(m) | Change::Update(m) => m.id,
                        Change::Activate(id)
                        | Change::Deactivate(id)
                        | Change::SetMechanism { id, .. } => *id,
                    });
                }
                Err(e) => tracing::error!("committed registry change refused: {e}"),
            }
        }
        let registry: Vec<(u32, Vec<u8>)> = changed
            .iter()
            .filter_map(|id| self.registry.entries().get(id).map(|e| (*id, e.encode())))
            .collect();
        let record = EpochRecord {
            height: d.height,
            digest: v.digest,
            weights,
            mechanism_weights,
            scored: u32::try_from(scored).unwrap_or(u32::MAX),
            reports: u32::try_from(reports).unwrap_or(u32::MAX),
            flagged: u32::try_from(flagged).unwrap_or(u32::MAX),
        };
        self.applied_height = d.height;
        self.last_epoch = Some(v.epoch);
        self.changes.retain(|n, _| *n > self.registry.last_nonce());
        let snapshot_record = record.clone();
        let recent = self.current_epoch().is_none_or(|c| v.epoch + 3 >= c);
        self.out.push(Effect::Applied(Box::new(Applied {
            height: d.height,
            epoch: v.epoch,
            pin: v.pin,
            record,
            recomputed,
            registry,
            registry_nonce: self.registry.last_nonce(),
            recent,
            ended_at_ms: self.ended_at.get(&v.epoch).copied(),
            checkpoint: v
                .snapshot
                .map(|_| platform_consensus::codec::encode_decision(d)),
        })));
        self.take_snapshot(d.height, v.epoch, v.pin, &snapshot_record);
        for id in changed {
            if self.loaded.remove(&id) {
                self.out.push(Effect::RetireChallenge(id));
            }
            if let Some(e) = self.registry.entries().get(&id)
                && e.active
            {
                self.out.push(Effect::LoadChallenge(e.meta.clone()));
            }
        }
        tracing::info!(
            epoch = v.epoch,
            height = d.height,
            batches = v.batches.len(),
            scored,
            "committed {}",
            hex::encode(v.digest)
        );
        self.forget_through(v.epoch);
    }

    /// What epochs up to `epoch` needed is no longer kept in memory once it is applied.
    pub(super) fn forget_through(&mut self, epoch: u64) {
        let keep = epoch + 1;
        self.subs.retain(|e, _| *e >= keep);
        self.by_epoch.retain(|e, _| *e >= keep);
        self.batches.retain(|_, b| b.epoch >= keep);
        self.published.retain(|e| *e >= keep);
        self.rosters.retain(|e, _| *e + 1 >= keep);
        self.roster_digests.retain(|e, _| *e + 1 >= keep);
        self.ended_at.retain(|e, _| *e + 1 >= keep);
        self.roster_asked.retain(|e, _| *e + 1 >= keep);
        self.pending_evaluations.retain(|a| a.epoch >= keep);
    }
}

/// What an epoch result was computed from (the roster by its digest; batches are
/// content-addressed): equal inputs give the equal result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Computed {
    epoch: u64,
    roster: Hash32,
    ids: Vec<Hash32>,
    challenges: Vec<epoch::Challenge>,
}

/// Whether the result agrees a score for every (challenge, miner) a batch names. A batch's
/// entries are in ascending order (`Batch::decode_checked`, and ours from the counted map),
/// as are the scores, so one walk through both answers it instead of a tree lookup per
/// entry (36,000 entries at 2,000/s: the precompute's CPU 16–26 → 13–19 ms, on the path to
/// the proposal at an epoch's end). Entries out of order are looked up one by one.
pub(super) fn all_agreed(
    entries: &[crate::msg::BatchEntry],
    scores: &BTreeMap<(u32, Hotkey), u64>,
) -> bool {
    let key = |en: &crate::msg::BatchEntry| (en.challenge, en.miner);
    if !entries.windows(2).all(|w| key(&w[0]) < key(&w[1])) {
        return entries.iter().all(|en| scores.contains_key(&key(en)));
    }
    let mut agreed = scores.keys().peekable();
    entries.iter().all(|en| {
        let k = key(en);
        while agreed.next_if(|a| **a < k).is_some() {}
        agreed.peek().is_some_and(|a| **a == k)
    })
}
