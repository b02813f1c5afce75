//! When the chain reveals a timelocked commit, and so which drand round to encrypt it to:
//! the stateful epoch model the Bittensor SDK uses (`bittensor-drand`'s
//! `get_encrypted_commit_v2`), here as a small pure function of chain state and the time.
//!
//! The pallet runs a subnet's epoch at a block when an owner-triggered epoch is due
//! (`PendingEpochAt`), when the subnet went more than [`MAX_TEMPO`] blocks without a step,
//! or when `tempo` blocks passed since the last epoch (`LastEpochBlock`). It reveals
//! timelocked commits *before* that block's epoch step, in the epoch the commit named plus
//! the reveal period; a commit sent at head `h` lands in block `h + 1`. The round is the
//! drand round current [`INGEST_OFFSET_BLOCKS`] blocks after the first reveal block, so the
//! chain holds its pulse by then.
//!
//! Runtimes from before the stateful model keep none of that state: their epochs fall where
//! `(block + netuid + 1) % (tempo + 1) == 0` ([`crate::epoch_index`]), which is the same model
//! with a period of `tempo + 1` counted from the last such block ([`EpochSchedule::legacy`]).

use crate::timelock::{DRAND_QUICKNET_GENESIS, DRAND_QUICKNET_PERIOD};

/// The most blocks an owner may set as tempo; a subnet that went longer without a step runs
/// one at once.
pub const MAX_TEMPO: u64 = 50_400;
/// Blocks between the head a commit is made at and the block it lands in.
pub const INCLUSION_OFFSET_BLOCKS: u64 = 1;
/// Blocks after the first reveal block whose drand round the commit is encrypted to.
pub const INGEST_OFFSET_BLOCKS: u64 = 3;

/// A subnet's epoch state at a head block (storage `LastEpochBlock`, `PendingEpochAt`,
/// `SubnetEpochIndex`, `Tempo`, `BlocksSinceLastStep`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpochSchedule {
    /// Block at which the subnet's last epoch ran.
    pub last_epoch_block: u64,
    /// An owner-triggered epoch due at this block (0: none).
    pub pending_epoch_at: u64,
    /// The subnet's epoch counter.
    pub epoch_index: u64,
    /// Blocks between epochs (0: the subnet runs none).
    pub tempo: u64,
    /// Blocks since the subnet's last step.
    pub blocks_since_last_step: u64,
    /// The head these were read at.
    pub head: u64,
}

impl EpochSchedule {
    /// The schedule of a runtime without the stateful model: epochs every `tempo + 1` blocks,
    /// at `(block + netuid + 1) % (tempo + 1) == 0`, numbered by [`crate::epoch_index`].
    pub fn legacy(netuid: u16, tempo: u16, head: u64) -> EpochSchedule {
        let period = u64::from(tempo) + 1;
        let offset = (u64::from(netuid) + 1) % period;
        // Blocks since the last block at or before the head where an epoch ran.
        let since = (head + offset) % period;
        let epoch_index = crate::epoch_index(netuid, tempo, head);
        if head < since {
            // No epoch has run yet: the first one is due at the first boundary.
            return EpochSchedule {
                last_epoch_block: 0,
                pending_epoch_at: head + period - since,
                epoch_index,
                tempo: period,
                blocks_since_last_step: head,
                head,
            };
        }
        EpochSchedule {
            last_epoch_block: head - since,
            pending_epoch_at: 0,
            epoch_index,
            tempo: period,
            blocks_since_last_step: since,
            head,
        }
    }

    /// Whether the subnet's epoch runs at `block`, given the state before it.
    fn runs_at(&self, block: u64) -> bool {
        if self.tempo == 0 {
            return false;
        }
        (self.pending_epoch_at > 0 && block >= self.pending_epoch_at)
            || self.blocks_since_last_step > MAX_TEMPO
            || block.saturating_sub(self.last_epoch_block) >= self.tempo
    }

    /// The epoch index reveals at `block` see (they run before the block's epoch step).
    fn epoch_seen_at(&self, block: u64) -> u64 {
        self.epoch_index + u64::from(self.runs_at(block))
    }

    /// The state after `block`'s step.
    fn step(&mut self, block: u64) {
        self.blocks_since_last_step += 1;
        self.head = block;
        if self.runs_at(block) {
            self.last_epoch_block = block;
            self.pending_epoch_at = 0;
            self.epoch_index += 1;
            self.blocks_since_last_step = 0;
        }
    }

    /// The first block at which the chain reveals a commit made at this head with a reveal
    /// period of `reveal_period` epochs; `None` for a subnet without epochs (tempo 0) or one
    /// that would not reach it within `reveal_period + 1` maximal tempos.
    pub fn first_reveal_block(&self, reveal_period: u64) -> Option<u64> {
        if self.tempo == 0 {
            return None;
        }
        let landed = self.head + INCLUSION_OFFSET_BLOCKS;
        let mut state = *self;
        for b in self.head + 1..landed {
            state.step(b);
        }
        let target = state.epoch_seen_at(landed) + reveal_period;
        let budget = reveal_period.saturating_add(1).saturating_mul(MAX_TEMPO);
        for b in landed..=landed.saturating_add(budget) {
            if state.epoch_seen_at(b) == target {
                return Some(b);
            }
            state.step(b);
        }
        None
    }

    /// The drand quicknet round to encrypt a commit made at this head to, at `now_secs` (Unix
    /// time) with blocks of `block_seconds`: the round current [`INGEST_OFFSET_BLOCKS`] after
    /// the first reveal block.
    pub fn reveal_round(
        &self,
        reveal_period: u64,
        block_seconds: f64,
        now_secs: f64,
    ) -> Option<u64> {
        let reveal = self.first_reveal_block(reveal_period)?;
        let blocks = (reveal + INGEST_OFFSET_BLOCKS).saturating_sub(self.head);
        let at = now_secs + blocks as f64 * block_seconds;
        let round = ((at - DRAND_QUICKNET_GENESIS as f64) / DRAND_QUICKNET_PERIOD as f64).floor();
        Some(if round < 1.0 { 1 } else { round as u64 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_legacy_schedule_reveals_in_the_pallets_epoch() {
        // Subnet 1, tempo 10: epochs at blocks 9, 20, 31, … ((b + 2) % 11 == 0).
        let s = EpochSchedule::legacy(1, 10, 12);
        assert_eq!((s.last_epoch_block, s.epoch_index, s.tempo), (9, 1, 11));
        // A commit landing at block 13 (epoch 1) is revealed in epoch 2, from block 20 on.
        assert_eq!(s.first_reveal_block(1), Some(20));
        assert_eq!(s.first_reveal_block(2), Some(31));
        assert_eq!(crate::epoch_index(1, 10, 20), 2);
        assert_eq!(crate::epoch_index(1, 10, 19), 1);
        // At a boundary's eve: the commit lands in the next epoch.
        let s = EpochSchedule::legacy(1, 10, 19);
        assert_eq!(s.first_reveal_block(1), Some(31));
        // Before the first epoch ran: the first boundary (block 9) starts epoch 1.
        assert_eq!(
            EpochSchedule::legacy(1, 10, 0).first_reveal_block(1),
            Some(9)
        );
        // Every head agrees with the pallet's numbering.
        for head in 0..200 {
            let s = EpochSchedule::legacy(3, 7, head);
            let r = s.first_reveal_block(1).unwrap();
            assert_eq!(
                crate::epoch_index(3, 7, r),
                crate::epoch_index(3, 7, head + 1) + 1
            );
            assert_eq!(
                crate::epoch_index(3, 7, r - 1) + 1,
                crate::epoch_index(3, 7, r)
            );
        }
    }

    #[test]
    fn owner_triggered_and_overdue_epochs_come_early() {
        let base = EpochSchedule {
            last_epoch_block: 100,
            pending_epoch_at: 0,
            epoch_index: 5,
            tempo: 50,
            blocks_since_last_step: 20,
            head: 120,
        };
        assert_eq!(base.first_reveal_block(1), Some(150));
        let pending = EpochSchedule {
            pending_epoch_at: 125,
            ..base
        };
        assert_eq!(pending.first_reveal_block(1), Some(125));
        let overdue = EpochSchedule {
            blocks_since_last_step: MAX_TEMPO + 1,
            ..base
        };
        // The step runs at once (block 121, where the commit lands: it sees epoch 6), and the
        // next one a tempo later.
        assert_eq!(overdue.first_reveal_block(1), Some(171));
        let stopped = EpochSchedule { tempo: 0, ..base };
        assert_eq!(stopped.first_reveal_block(1), None);
    }

    #[test]
    fn the_round_is_the_one_current_three_blocks_after_the_reveal() {
        let s = EpochSchedule::legacy(1, 10, 12);
        let now = DRAND_QUICKNET_GENESIS as f64 + 3000.0;
        // Reveal at block 20: 8 + 3 blocks of 12 s after the head.
        assert_eq!(s.reveal_round(1, 12.0, now), Some((3000 + 11 * 12) / 3));
        assert_eq!(s.reveal_round(1, 12.0, 0.0), Some(1), "never round 0");
    }
}
