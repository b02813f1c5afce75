//! Submissions that arrive for an epoch the chain has opened before this validator holds
//! the epoch's roster (its metagraph at the pin block, read once the epoch's first block is
//! seen: a few hundred ms on a loaded node). Refusing them `not_ready` told miners `busy`
//! while nothing was busy (0.3–0.5% of submissions at 1,000/s, all at epoch starts) and
//! dropped peers' gossip that their batches then named, to be fetched again. They wait
//! here instead, bounded, and are decided as the roster arrives, in arrival order (a
//! miner's ack waits with them); what waits longer than [`WAIT_MS`] is decided as it stands
//! then (`not_ready` while the roster is still missing).

use std::collections::VecDeque;

use platform_consensus::Storage;

use super::intake::Source;
use super::{Arrival, Effect, Machine};

/// Longest a submission waits for its epoch's roster (ms).
pub(super) const WAIT_MS: u64 = 2_000;
/// Most submissions waiting at once, and their bytes: past either, refused at once.
const WAITING_MAX: usize = 4_096;
const WAITING_BYTES_MAX: usize = 16 << 20;

/// See the module docs.
#[derive(Debug, Default)]
pub(super) struct Early {
    waiting: VecDeque<Waiting>,
    bytes: usize,
}

#[derive(Debug)]
struct Waiting {
    since: u64,
    /// A miner's admission token (its ack waits); `None` for a peer's submission.
    token: Option<u64>,
    arrival: Arrival,
    from: Source,
}

fn size(a: &Arrival) -> usize {
    a.envelope.len() + a.body.len()
}

#[cfg(test)]
impl Early {
    /// Submissions waiting.
    pub(super) fn len(&self) -> usize {
        self.waiting.len()
    }
}

impl<S: Storage> Machine<S> {
    /// A submission (a miner's, with its ack's token, or a peer's): kept until its epoch's
    /// roster arrives when the chain has opened the epoch and the roster is still being
    /// read, decided now otherwise.
    pub(super) fn take_submission(
        &mut self,
        now: u64,
        token: Option<u64>,
        a: Arrival,
        from: Source,
    ) {
        let opened = self
            .head
            .is_some_and(|h| h >= self.cfg.schedule.start(a.epoch));
        let room = self.early.waiting.len() < WAITING_MAX
            && self.early.bytes + size(&a) <= WAITING_BYTES_MAX;
        if !opened || !room || a.epoch < self.next_epoch() || self.rosters.contains_key(&a.epoch) {
            return self.decide_submission(now, token, a, from);
        }
        self.early.bytes += size(&a);
        self.early.waiting.push_back(Waiting {
            since: now,
            token,
            arrival: a,
            from,
        });
    }

    /// `epoch`'s roster arrived: decide what waited for it.
    pub(super) fn roster_arrived(&mut self, now: u64, epoch: u64) {
        let (ready, rest): (VecDeque<Waiting>, VecDeque<Waiting>) =
            std::mem::take(&mut self.early.waiting)
                .into_iter()
                .partition(|w| w.arrival.epoch == epoch);
        self.early.waiting = rest;
        for w in ready {
            self.decide_waiting(now, w);
        }
    }

    /// Decide what has waited [`WAIT_MS`].
    pub(super) fn expire_waiting(&mut self, now: u64) {
        while self
            .early
            .waiting
            .front()
            .is_some_and(|w| now >= w.since + WAIT_MS)
        {
            if let Some(w) = self.early.waiting.pop_front() {
                self.decide_waiting(now, w);
            }
        }
    }

    fn decide_waiting(&mut self, now: u64, w: Waiting) {
        self.early.bytes = self.early.bytes.saturating_sub(size(&w.arrival));
        self.decide_submission(now, w.token, w.arrival, w.from);
    }

    /// Count (or refuse) a submission; a miner's ack carries the verdict.
    fn decide_submission(&mut self, now: u64, token: Option<u64>, a: Arrival, from: Source) {
        let verdict = self.on_submission(now, a, from);
        if let Some(token) = token {
            self.out.push(Effect::Admit { token, verdict });
        }
    }
}
