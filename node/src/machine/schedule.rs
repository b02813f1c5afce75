//! Epochs as windows of chain blocks, and the metagraph pinned at each epoch's first block.
//!
//! Epoch `e` is the blocks `[start(e), start(e + 1))` with `start(e) = e·len − offset`: with
//! `len = tempo + 1` and `offset = netuid + 1` these are exactly subtensor's own epochs
//! (the pallet runs a subnet's epoch when `(block + netuid + 1) % (tempo + 1) == 0`).
//! Nothing here reads a clock: block numbers come from the chain.

use std::collections::BTreeMap;

use sha2::{Digest as _, Sha256};

/// A hotkey (sr25519 public key).
pub type Hotkey = [u8; 32];
/// A sha256 or block hash.
pub use platform_types::Hash32;

/// Fewest blocks an epoch may have: evaluation, settling and voting need room.
pub const EPOCH_BLOCKS_MIN: u64 = 3;

/// Which blocks belong to which epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Schedule {
    /// Blocks per epoch (at least [`EPOCH_BLOCKS_MIN`]).
    pub len: u64,
    /// Blocks the first boundary is shifted by (`netuid + 1` follows the chain).
    pub offset: u64,
}

impl Schedule {
    /// Subtensor's epochs for a subnet: `tempo + 1` blocks, shifted by `netuid + 1`.
    pub fn of_subnet(netuid: u16, len: u64) -> Schedule {
        let len = len.max(EPOCH_BLOCKS_MIN);
        Schedule {
            len,
            offset: (u64::from(netuid) + 1) % len,
        }
    }

    /// The epoch block `b` belongs to.
    pub fn epoch_of(&self, b: u64) -> u64 {
        (b + self.offset) / self.len
    }

    /// The first block of epoch `e` (its pinned block). Epoch 0 starts at block 0.
    pub fn start(&self, e: u64) -> u64 {
        (e * self.len).saturating_sub(self.offset)
    }

    /// The first block after epoch `e`: when it is seen, `e` has ended.
    pub fn end(&self, e: u64) -> u64 {
        self.start(e + 1)
    }
}

/// A block the node read state at.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, parity_scale_codec::Encode, parity_scale_codec::Decode,
)]
pub struct Pin {
    /// Block number.
    pub block: u64,
    /// Its hash.
    pub hash: Hash32,
}

/// The metagraph of one epoch as read at its pinned block: who validates (permit and stake)
/// and which hotkeys are miners with which uid. Every validator reading the same block gets
/// the same roster; its digest is part of the agreed epoch value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Roster {
    /// Where it was read.
    pub pin: Pin,
    /// (hotkey, stake) of validators with a permit and stake, sorted by hotkey.
    pub validators: Vec<(Hotkey, u64)>,
    /// Every neuron's hotkey → uid.
    pub miners: BTreeMap<Hotkey, u16>,
    /// What the stakes measure (how the metagraph was read).
    pub stake_kind: platform_chain::StakeKind,
}

impl Roster {
    /// A roster with its validators put in canonical (hotkey) order.
    pub fn new(
        pin: Pin,
        mut validators: Vec<(Hotkey, u64)>,
        miners: BTreeMap<Hotkey, u16>,
    ) -> Roster {
        validators.sort();
        validators.dedup_by_key(|v| v.0);
        Roster {
            pin,
            validators,
            miners,
            stake_kind: platform_chain::StakeKind::HotkeyAlpha,
        }
    }

    /// The same roster, its stakes of `kind`.
    pub fn with_stake_kind(mut self, kind: platform_chain::StakeKind) -> Roster {
        self.stake_kind = kind;
        self
    }

    /// Total validator stake.
    pub fn total_stake(&self) -> u128 {
        self.validators.iter().map(|(_, s)| u128::from(*s)).sum()
    }

    /// The consensus validator set it names (voting power = stake, uncapped).
    pub fn validator_set(
        &self,
    ) -> Result<platform_consensus::ValidatorSet, platform_consensus::types::SetError> {
        platform_consensus::ValidatorSet::new(
            self.validators
                .iter()
                .map(|(k, s)| platform_consensus::Validator {
                    hotkey: platform_consensus::PublicKey(*k),
                    stake: *s,
                })
                .collect(),
            None,
        )
    }

    /// A validator's stake, if it is one.
    pub fn stake_of(&self, hotkey: &Hotkey) -> Option<u64> {
        self.validators
            .binary_search_by_key(hotkey, |v| v.0)
            .ok()
            .map(|i| self.validators[i].1)
    }

    /// `sha256(tag | block | hash | n | (hotkey, stake)… | m | (hotkey, uid)…)`, integers
    /// little endian, both lists in hotkey order; the tag names what the stakes measure:
    /// `platform/roster/v1` for `TotalHotkeyAlpha` (the only kind before runtime-API reads,
    /// so those digests are unchanged), `platform/roster/v2-stake-weight` for the chain's
    /// stake weights. Validators reading different kinds disagree on the digest, openly.
    pub fn digest(&self) -> Hash32 {
        let mut h = Sha256::new();
        h.update(match self.stake_kind {
            platform_chain::StakeKind::HotkeyAlpha => &b"platform/roster/v1"[..],
            platform_chain::StakeKind::StakeWeight => &b"platform/roster/v2-stake-weight"[..],
        });
        h.update(self.pin.block.to_le_bytes());
        h.update(self.pin.hash);
        h.update((self.validators.len() as u64).to_le_bytes());
        for (k, s) in &self.validators {
            h.update(k);
            h.update(s.to_le_bytes());
        }
        h.update((self.miners.len() as u64).to_le_bytes());
        for (k, uid) in &self.miners {
            h.update(k);
            h.update(uid.to_le_bytes());
        }
        h.finalize().into()
    }
}

/// The seed challenges read through their context: agreed data only (the epoch's pinned block
/// hash), so no validator can predict it before the epoch starts or bias it.
pub fn epoch_seed(netuid: u16, epoch: u64, pin: &Pin) -> Hash32 {
    let mut h = Sha256::new();
    h.update(b"platform/epoch-seed/v2");
    h.update(netuid.to_le_bytes());
    h.update(epoch.to_le_bytes());
    h.update(pin.hash);
    h.finalize().into()
}

/// Seed of the consensus leader rotation for the height deciding `epoch`.
pub fn leader_seed(netuid: u16, epoch: u64, pin: &Pin) -> Hash32 {
    let mut h = Sha256::new();
    h.update(b"platform/leader-seed/v2");
    h.update(netuid.to_le_bytes());
    h.update(epoch.to_le_bytes());
    h.update(pin.hash);
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_follow_subtensor_boundaries() {
        // tempo 99, netuid 1: the pallet's epoch runs when (b + 2) % 100 == 0, i.e. at
        // blocks 98, 198, …; our epoch e+1 starts right after the pallet's epoch.
        let s = Schedule::of_subnet(1, 100);
        assert_eq!(s.start(0), 0);
        assert_eq!(s.start(1), 98);
        assert_eq!(s.end(1), 198);
        assert_eq!(s.epoch_of(97), 0);
        assert_eq!(s.epoch_of(98), 1);
        assert_eq!(s.epoch_of(197), 1);
        assert_eq!(s.epoch_of(198), 2);
        for b in 0..1000 {
            let e = s.epoch_of(b);
            assert!(s.start(e) <= b && b < s.end(e), "block {b} epoch {e}");
        }
    }

    #[test]
    fn rosters_hash_what_they_hold() {
        let pin = Pin {
            block: 5,
            hash: [1; 32],
        };
        let a = Roster::new(pin, vec![([2; 32], 10), ([1; 32], 5)], BTreeMap::new());
        let b = Roster::new(pin, vec![([1; 32], 5), ([2; 32], 10)], BTreeMap::new());
        assert_eq!(a.digest(), b.digest());
        assert_eq!(a.stake_of(&[2; 32]), Some(10));
        let c = Roster::new(pin, vec![([1; 32], 5), ([2; 32], 11)], BTreeMap::new());
        assert_ne!(a.digest(), c.digest());
        let d = Roster::new(
            Pin {
                block: 5,
                hash: [2; 32],
            },
            a.validators.clone(),
            BTreeMap::new(),
        );
        assert_ne!(a.digest(), d.digest());
        assert_ne!(epoch_seed(1, 2, &pin), epoch_seed(1, 2, &d.pin));
    }

    #[test]
    fn a_rosters_digest_names_the_kind_of_stake_and_v1_is_unchanged() {
        let pin = Pin {
            block: 5,
            hash: [1; 32],
        };
        let miners = BTreeMap::from([([3; 32], 7u16)]);
        let a = Roster::new(pin, vec![([1; 32], 5)], miners.clone());
        // The v1 layout, hashed by hand: the digests of rosters read from storage (and of
        // every roster before runtime-API reads) must not change.
        let mut h = Sha256::new();
        h.update(b"platform/roster/v1");
        h.update(5u64.to_le_bytes());
        h.update([1; 32]);
        h.update(1u64.to_le_bytes());
        h.update([1; 32]);
        h.update(5u64.to_le_bytes());
        h.update(1u64.to_le_bytes());
        h.update([3; 32]);
        h.update(7u16.to_le_bytes());
        assert_eq!(a.digest(), <Hash32>::from(h.finalize()));
        let w = a
            .clone()
            .with_stake_kind(platform_chain::StakeKind::StakeWeight);
        assert_ne!(
            a.digest(),
            w.digest(),
            "the same numbers read as stake weights are another roster"
        );
    }
}
