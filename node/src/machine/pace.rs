//! Admission at the pace of the stake. What a validator accepts must be evaluated before the
//! batch of its epoch goes out: the *horizon* is the time left until then — until the open
//! epoch's expected end (from the head block and the measured time between blocks) plus
//! `settle`, or, in the `settle / 2` after an epoch's end while its miners may still send,
//! until that epoch's batch; never less than `settle / 2`, and never more than `settle`: a
//! longer queue mid-epoch admits more (measured with all three examples: 40% more) but its
//! drain-time estimate fails at the epoch's busy end — 16% of what it admitted went
//! unscored, against 6%. A validator is *behind* while the evaluation work it
//! holds would take longer than the horizon to drain.
//!
//! A pair's score needs reports from more than half of the epoch's stake, and a validator
//! can refuse only what its own miners send: each validator deciding alone on its own load
//! lets the fastest set the subnet's pace, and when validators holding half the stake cannot
//! keep up with it, what they fall behind on goes unscored. So each validator tells its
//! peers when it is behind — a `LoadNote` on the load topic — and while validators holding
//! at least half the stake are behind, every validator refuses its miners `busy`.
//!
//! Quiet while all keep up: a validator sends a note when it falls behind, every
//! [`HEARTBEAT_MS`] while it stays behind, and once when it has caught up; a peer's note
//! counts for [`STALE_MS`] after it arrives (a validator that went silent is not behind).
//! A minority claiming to be behind when it is not cannot stop admission alone: what the
//! protocol tolerates as faulty is under a third of the stake.
//!
//! Pure: time comes in as `now` (ms), notes as inputs, what to send as return values.

use std::collections::HashMap;

use platform_consensus::Storage;
use platform_net::Topic;

use super::{Effect, Hotkey, Machine};
use crate::msg::LoadNote;

/// A validator that stays behind says so again this often.
pub(crate) const HEARTBEAT_MS: u64 = 250;
/// A peer's note counts this long after it arrives.
pub(crate) const STALE_MS: u64 = 4 * HEARTBEAT_MS;

/// See the module docs.
#[derive(Debug, Default)]
pub(crate) struct SubnetPace {
    /// Our own drain time, in ms, as the shell last measured it.
    own_ms: u32,
    /// When we last sent a note, and whether it said we were behind.
    sent: Option<(u64, bool)>,
    /// Peers' last notes: when each arrived, and its drain time.
    peers: HashMap<Hotkey, (u64, u32)>,
    /// What was last reported to the shell.
    subnet_behind: bool,
    /// The highest block seen and when (ms).
    last_block: Option<(u64, u64)>,
    /// Running mean time between blocks, in ms.
    block_ms: Option<u64>,
    /// The horizon last told the shell, in ms.
    told_horizon: Option<u64>,
}

impl SubnetPace {
    /// Our drain time is `drain_ms`: the note to send, when peers must hear of it.
    pub(crate) fn own(&mut self, now: u64, drain_ms: u32, horizon_ms: u64) -> Option<LoadNote> {
        self.own_ms = drain_ms;
        let behind = u64::from(drain_ms) > horizon_ms;
        let due = match self.sent {
            // Silence says "keeping up": nothing to send until first behind.
            None => behind,
            Some((_, said)) if said != behind => true,
            Some((at, _)) => behind && now >= at + HEARTBEAT_MS,
        };
        due.then(|| {
            self.sent = Some((now, behind));
            LoadNote { drain_ms }
        })
    }

    /// Block `number` seen at `now`: the time between blocks is learnt (a mean over the
    /// last few; blocks seen together count as their share of the interval).
    pub(crate) fn block(&mut self, now: u64, number: u64) {
        match self.last_block {
            Some((b, _)) if number <= b => return,
            Some((b, at)) => {
                let per = now.saturating_sub(at) / (number - b);
                self.block_ms = Some(self.block_ms.map_or(per, |m| (m * 7 + per) / 8));
            }
            None => {}
        }
        self.last_block = Some((number, now));
    }

    /// When the first block after `end_block` is expected, if blocks have been timed.
    pub(crate) fn expected_at(&self, end_block: u64) -> Option<u64> {
        let (b, at) = self.last_block?;
        Some(at + end_block.saturating_sub(b) * self.block_ms?)
    }

    /// Whether the horizon moved enough since it was last told (20 ms) to tell it again.
    fn horizon_moved(&mut self, horizon_ms: u64) -> bool {
        let moved = self
            .told_horizon
            .is_none_or(|t| t.abs_diff(horizon_ms) >= 20);
        if moved {
            self.told_horizon = Some(horizon_ms);
        }
        moved
    }

    /// A validator's note (its signature checked by the net; the caller checks it is one
    /// of the epoch's validators).
    pub(crate) fn peer(&mut self, now: u64, from: Hotkey, note: LoadNote) {
        self.peers.insert(from, (now, note.drain_ms));
    }

    /// Whether validators holding at least half of `validators`' stake are behind, now:
    /// `Some` when that changed since the last call that returned `Some`.
    pub(crate) fn judge(
        &mut self,
        now: u64,
        me: &Hotkey,
        validators: &[(Hotkey, u64)],
        horizon_ms: u64,
    ) -> Option<bool> {
        self.peers.retain(|_, (at, _)| now < *at + STALE_MS);
        let behind_ms = |v: &Hotkey| {
            if v == me {
                Some(self.own_ms)
            } else {
                self.peers.get(v).map(|(_, ms)| *ms)
            }
        };
        let (mut total, mut behind) = (0u128, 0u128);
        for (v, stake) in validators {
            total += u128::from(*stake);
            if behind_ms(v).is_some_and(|ms| u64::from(ms) > horizon_ms) {
                behind += u128::from(*stake);
            }
        }
        let now_behind = total > 0 && 2 * behind >= total;
        (now_behind != self.subnet_behind).then(|| {
            self.subnet_behind = now_behind;
            now_behind
        })
    }
}

impl<S: Storage> Machine<S> {
    /// The time left (ms) until the batch that what is admitted now must be in goes out
    /// (see the module docs).
    pub(super) fn admission_horizon(&self, now: u64) -> u64 {
        let settle = self.cfg.settle_ms;
        let floor = settle / 2;
        let Some(head) = self.head else {
            return floor;
        };
        let sched = self.cfg.schedule;
        let current = sched.epoch_of(head);
        // The epoch that just ended is still open to its miners: its batch is due first.
        if let Some(at) = current
            .checked_sub(1)
            .and_then(|prev| self.ended_at.get(&prev))
            && now < at + floor
        {
            return (at + settle).saturating_sub(now).max(floor);
        }
        match self.pace.expected_at(sched.end(current)) {
            Some(end) => (end + settle).saturating_sub(now).clamp(floor, settle),
            None => floor,
        }
    }

    /// Time the shell says the work it holds takes to drain: a note to peers when due.
    pub(super) fn on_drain(&mut self, now: u64, ms: u32) {
        let horizon = self.admission_horizon(now);
        if let Some(note) = self.pace.own(now, ms, horizon) {
            self.out.push(Effect::Publish {
                topic: Topic::Load,
                payload: parity_scale_codec::Encode::encode(&note),
            });
        }
    }

    /// A peer's note, if its author is a validator of the latest pinned roster.
    pub(super) fn on_load_note(&mut self, now: u64, from: Hotkey, note: LoadNote) {
        let member = self
            .latest_roster()
            .is_some_and(|(_, r)| r.stake_of(&from).is_some());
        if member && from != self.me.public() {
            self.pace.peer(now, from, note);
        }
    }

    /// Tell the shell the admission horizon when it moves, and whether half the stake is
    /// behind when that changes.
    pub(super) fn judge_pace(&mut self, now: u64) {
        let me = self.me.public();
        let horizon = self.admission_horizon(now);
        if self.pace.horizon_moved(horizon) {
            self.out.push(Effect::Horizon(horizon));
        }
        let validators = self
            .rosters
            .values()
            .next_back()
            .map(|r| r.validators.as_slice())
            .unwrap_or_default();
        if let Some(behind) = self.pace.judge(now, &me, validators, horizon) {
            // Under load this flips a few times a second: refusals are counted
            // (`subnet_busy`), the flips only logged at debug.
            tracing::debug!(
                behind,
                "validators holding half the stake behind on evaluation"
            );
            self.out.push(Effect::SubnetBehind(behind));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: u64 = 500;

    #[test]
    fn a_validator_says_it_is_behind_while_it_is_and_once_when_it_has_caught_up() {
        let mut p = SubnetPace::default();
        assert_eq!(p.own(0, 100, H), None, "silent while keeping up");
        assert_eq!(p.own(10, 500, H), None, "at the horizon is not behind");
        assert_eq!(p.own(20, 900, H), Some(LoadNote { drain_ms: 900 }));
        assert_eq!(p.own(30, 950, H), None, "said already");
        assert_eq!(
            p.own(20 + HEARTBEAT_MS, 800, H),
            Some(LoadNote { drain_ms: 800 })
        );
        assert_eq!(
            p.own(300, 200, H),
            Some(LoadNote { drain_ms: 200 }),
            "caught up"
        );
        assert_eq!(p.own(300 + 10 * HEARTBEAT_MS, 200, H), None, "then silent");
    }

    #[test]
    fn the_subnet_is_behind_while_half_the_stake_is_and_stale_notes_lapse() {
        let (a, b, c, d) = ([1; 32], [2; 32], [3; 32], [4; 32]);
        let set = [(a, 10), (b, 10), (c, 10), (d, 10)];
        let mut p = SubnetPace::default();
        assert_eq!(p.judge(0, &a, &set, H), None, "not behind, as before");
        // One of four behind (a quarter of the stake): admission goes on.
        p.peer(0, b, LoadNote { drain_ms: 2_000 });
        assert_eq!(p.judge(0, &a, &set, H), None);
        // Two of four: half the stake cannot keep up.
        p.peer(100, c, LoadNote { drain_ms: 700 });
        assert_eq!(p.judge(100, &a, &set, H), Some(true));
        assert_eq!(p.judge(150, &a, &set, H), None, "reported once");
        // c catches up: back to one of four.
        p.peer(200, c, LoadNote { drain_ms: 100 });
        assert_eq!(p.judge(200, &a, &set, H), Some(false));
        // We fall behind ourselves, with b: two of four again.
        p.own(300, 5_000, H);
        assert_eq!(p.judge(300, &a, &set, H), Some(true));
        // b goes silent: its note lapses.
        assert_eq!(p.judge(STALE_MS - 1, &a, &set, H), None);
        assert_eq!(p.judge(STALE_MS, &a, &set, H), Some(false));
        // A note from outside the set weighs nothing; an empty set is never behind.
        p.peer(2_000, [9; 32], LoadNote { drain_ms: 9_000 });
        assert_eq!(p.judge(2_000, &a, &set, H), None);
        assert_eq!(p.judge(2_000, &a, &[], H), None);
    }

    #[test]
    fn stake_not_headcount_decides() {
        let (a, b, c) = ([1; 32], [2; 32], [3; 32]);
        // b alone holds half the stake.
        let set = [(a, 25), (b, 50), (c, 25)];
        let mut p = SubnetPace::default();
        p.peer(0, b, LoadNote { drain_ms: 1_000 });
        assert_eq!(p.judge(0, &a, &set, H), Some(true));
        let set = [(a, 26), (b, 49), (c, 25)];
        assert_eq!(p.judge(0, &a, &set, H), Some(false));
    }
}
