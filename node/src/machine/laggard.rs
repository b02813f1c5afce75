//! Laggards evaluate: a validator that missed submissions of an epoch (down, partitioned or
//! slow while they were gossiped) learns of them from its peers' evaluation batches, fetches
//! each signed submission by its id (the sha256 of its envelope, served by every validator
//! that recorded it), checks it as the door would have (signature, the miner in the epoch's
//! roster, the challenge active, the smallest id for its pair), evaluates it itself, and
//! publishes its batch again with those entries while the epoch is still undecided. It
//! abstains on a submission only when the epoch was decided first. A peer's submission that
//! reached it after its intake closed is held for its undecided epoch and taken from there
//! instead of fetched; fetches are paced under the request rate peers allow.

use std::collections::BTreeMap;

use platform_consensus::Storage;
use platform_net::{Envelope, Topic};

use super::{Arrival, Effect, Hash32, Machine};
use crate::metrics as m;
use crate::msg::BatchEntry;

/// Missed submissions being fetched at most (a laggard of a huge epoch catches up on this
/// many at a time and abstains on the rest if the epoch is decided first).
pub(super) const MISSED_MAX: usize = 100_000;
/// Late arrivals held at most (envelopes of a few hundred bytes).
const LATE_MAX: usize = 50_000;
/// Fetches of missed submissions started per second at most, and in a burst: each asks
/// validators one at a time, and a validator refuses (and penalises) a peer that sends it
/// more than `peer_request_rate` (50/s by default) requests.
const MISSED_FETCH_RATE: u64 = 40;

/// Peers' submissions that arrived after intake closed, by id, for undecided epochs.
#[derive(Debug, Default)]
pub(super) struct Late {
    held: BTreeMap<Hash32, (u64, Vec<u8>)>,
    /// Epochs below this are swept.
    swept_below: u64,
}

impl Late {
    pub(super) fn hold(&mut self, id: Hash32, epoch: u64, envelope: Vec<u8>) {
        if self.held.len() < LATE_MAX {
            self.held.insert(id, (epoch, envelope));
        }
    }

    fn take(&mut self, id: &Hash32) -> Option<Vec<u8>> {
        self.held.remove(id).map(|(_, env)| env)
    }

    /// Forget what epochs before `next` held (decided); true when `next` moved on since
    /// the last sweep.
    fn sweep(&mut self, next: u64) -> bool {
        if next <= self.swept_below {
            return false;
        }
        self.held.retain(|_, (e, _)| *e >= next);
        self.swept_below = next;
        true
    }
}

/// A token bucket over the machine's clock: [`MISSED_FETCH_RATE`] a second.
#[derive(Debug, Default)]
pub(super) struct Pace {
    tokens: u64,
    /// When the bucket was last filled (ms), and the fraction of a token carried over.
    at_ms: u64,
    carry: u64,
}

impl Pace {
    fn take(&mut self, now: u64) -> bool {
        let elapsed = now.saturating_sub(self.at_ms);
        self.at_ms = now.max(self.at_ms);
        let earned = self.carry + elapsed.saturating_mul(MISSED_FETCH_RATE);
        self.tokens = (self.tokens + earned / 1000).min(MISSED_FETCH_RATE);
        self.carry = if self.tokens == MISSED_FETCH_RATE {
            0
        } else {
            earned % 1000
        };
        if self.tokens == 0 {
            return false;
        }
        self.tokens -= 1;
        true
    }
}

/// A submission a peer counted that this validator does not hold.
#[derive(Clone, Copy, Debug)]
pub(super) struct Missed {
    epoch: u64,
    challenge: u32,
    miner: [u8; 32],
}

impl<S: Storage> Machine<S> {
    /// A peer's batch for an undecided epoch whose roster names us: note the submissions it
    /// counted that we do not (none held for the pair, or ours has a larger id).
    pub(super) fn note_missed(&mut self, epoch: u64, author: [u8; 32], entries: &[BatchEntry]) {
        let me = self.me.public();
        let member = self
            .rosters
            .get(&epoch)
            .is_some_and(|r| r.stake_of(&me).is_some());
        if author == me || !member || epoch < self.next_epoch() {
            return;
        }
        let subs = self.subs.get(&epoch);
        let mut held = Vec::new();
        for en in entries {
            let ours = subs.and_then(|s| s.counted.get(&(en.challenge, en.miner)));
            if ours.is_some_and(|c| *c <= en.submission) || self.missed.len() >= MISSED_MAX {
                continue;
            }
            self.missed.entry(en.submission).or_insert(Missed {
                epoch,
                challenge: en.challenge,
                miner: en.miner,
            });
            // Arrived after our intake closed: taken as if fetched.
            if let Some(env) = self.late.take(&en.submission) {
                held.push((en.submission, env));
            }
        }
        for (id, env) in held {
            self.on_missed_blob(id, &env);
        }
    }

    /// Fetch missed submissions of undecided epochs; forget those of decided ones.
    pub(super) fn fetch_missed(&mut self, now: u64) {
        let next = self.next_epoch();
        if self.late.sweep(next) {
            let decided: Vec<Hash32> = self
                .missed
                .iter()
                .filter(|(_, x)| x.epoch < next)
                .map(|(id, _)| *id)
                .collect();
            for id in decided {
                self.missed.remove(&id);
                metrics::counter!(m::MISSED, "outcome" => "epoch_decided").increment(1);
            }
        }
        if self.missed.is_empty() {
            return;
        }
        let mut want = Vec::new();
        for id in self.missed.keys() {
            if self.fetching.contains_key(id) {
                continue;
            }
            if !self.missed_pace.take(now) {
                break;
            }
            want.push(*id);
        }
        for id in want {
            self.fetch(now, id);
        }
    }

    /// A fetched blob that is a missed submission (true if it was): admitted as a peer
    /// counted it, recorded and evaluated.
    pub(super) fn on_missed_blob(&mut self, hash: Hash32, bytes: &[u8]) -> bool {
        let Some(x) = self.missed.remove(&hash) else {
            return false;
        };
        let outcome = match self.admit_missed(x, hash, bytes) {
            Ok(a) => {
                let subs = self.subs.entry(x.epoch).or_default();
                subs.count((x.challenge, x.miner), hash);
                self.stats.missed_evaluated += 1;
                self.out.push(Effect::RecordSubmission(a.clone()));
                self.evaluate(a);
                // Our batch went out without it: it goes out again once this is scored.
                if self.published.contains(&x.epoch) {
                    self.republish.entry(x.epoch).or_default().push(hash);
                }
                "evaluated"
            }
            Err(why) => {
                tracing::warn!(
                    epoch = x.epoch,
                    "submission {} named in a peer's batch refused: {why}",
                    hex::encode(hash)
                );
                why
            }
        };
        metrics::counter!(m::MISSED, "outcome" => outcome).increment(1);
        true
    }

    /// The door's checks for a submission a peer's batch named (its time window aside: the
    /// peer admitted it in time).
    fn admit_missed(&self, x: Missed, id: Hash32, bytes: &[u8]) -> Result<Arrival, &'static str> {
        let env = Envelope::decode(bytes).map_err(|_| "malformed")?;
        if env.topic != Topic::Submissions || !env.verify() {
            return Err("bad_signature");
        }
        let sub = platform_net::Submission::decode(&env.payload).map_err(|_| "malformed")?;
        if env.author != x.miner || sub.challenge != x.challenge || sub.epoch != x.epoch {
            return Err("not_what_the_batch_says");
        }
        let roster = self.rosters.get(&x.epoch).ok_or("not_ready")?;
        if !roster.miners.contains_key(&x.miner) {
            return Err("unregistered_miner");
        }
        if !self.loaded.contains(&x.challenge) {
            return Err("inactive_challenge");
        }
        let counted = self
            .subs
            .get(&x.epoch)
            .and_then(|s| s.counted.get(&(x.challenge, x.miner)));
        if counted.is_some_and(|c| *c <= id) {
            return Err("not_counted");
        }
        Ok(Arrival {
            id,
            author: x.miner,
            challenge: x.challenge,
            epoch: x.epoch,
            body: sub.body,
            envelope: bytes.to_vec(),
        })
    }

    /// Publish again the batch of an undecided epoch once the missed submissions fetched
    /// for it are scored and none is still being fetched.
    pub(super) fn republish_batches(&mut self, now: u64) {
        let next = self.next_epoch();
        let due: Vec<u64> = self
            .republish
            .iter()
            .filter(|(e, ids)| {
                **e < next
                    || (!self.missed.values().any(|x| x.epoch == **e)
                        && self
                            .subs
                            .get(e)
                            .is_none_or(|s| ids.iter().all(|id| s.scores.contains_key(id))))
            })
            .map(|(e, _)| *e)
            .collect();
        for e in due {
            self.republish.remove(&e);
            if e >= next {
                self.publish_batch(now, e);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missed_fetches_are_paced_at_the_rate_with_a_burst_of_one_second() {
        let mut p = Pace::default();
        let burst = (0..1000).take_while(|_| p.take(10_000)).count() as u64;
        assert_eq!(burst, MISSED_FETCH_RATE, "a full bucket after idling");
        // Then one per 1000 / rate ms, fractions carried over.
        let mut started = 0;
        for ms in 10_001..=12_000 {
            while p.take(ms) {
                started += 1;
            }
        }
        assert_eq!(started, 2 * MISSED_FETCH_RATE);
        // A clock that steps back earns nothing.
        assert!(!p.take(5_000));
    }

    #[test]
    fn late_arrivals_are_held_until_their_epoch_is_decided() {
        let mut l = Late::default();
        l.hold([1; 32], 5, b"a".to_vec());
        l.hold([2; 32], 6, b"b".to_vec());
        l.sweep(6);
        assert_eq!(l.take(&[1; 32]), None, "epoch 5 decided: forgotten");
        assert_eq!(l.take(&[2; 32]), Some(b"b".to_vec()));
        assert_eq!(l.take(&[2; 32]), None, "taken once");
    }
}
