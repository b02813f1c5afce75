//! Validator sets, keys, signatures and the domain every signature is bound to.

use sha2::{Digest, Sha256};

pub use platform_types::Hash32;
/// Consensus instance number within an epoch (one decision per height).
pub type Height = u64;
/// PBFT view (round) within a height; leader rotates per view.
pub type View = u32;

/// A validator's sr25519 public key (its Bittensor hotkey).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PublicKey(pub [u8; 32]);

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "PublicKey({:02x}{:02x}{:02x}{:02x}…)",
            self.0[0], self.0[1], self.0[2], self.0[3]
        )
    }
}

/// An sr25519 signature.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signature(pub [u8; 64]);

impl std::fmt::Debug for Signature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signature({:02x}{:02x}…)", self.0[0], self.0[1])
    }
}

/// What every consensus signature is bound to, besides the message itself: a vote for
/// subnet 7 epoch 12 can never be replayed on subnet 8 or in epoch 13.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Domain {
    /// Bittensor subnet.
    pub netuid: u16,
    /// Epoch whose validator set signs.
    pub epoch: u64,
}

/// One member of the validator set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Validator {
    /// Hotkey.
    pub hotkey: PublicKey,
    /// Stake (voting power before any cap).
    pub stake: u64,
}

/// Why a validator set is unusable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SetError {
    /// No validator has power.
    #[error("validator set has no voting power")]
    Empty,
    /// A hotkey appears twice.
    #[error("hotkey {0:?} appears twice in the validator set")]
    Duplicate(PublicKey),
    /// More validators than votes can address.
    #[error("{0} validators; at most 65535")]
    TooLarge(usize),
}

/// The validators of an epoch with their voting power, sorted by hotkey (so every node
/// indexes them the same way), zero-power members dropped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidatorSet {
    members: Vec<Validator>,
    powers: Vec<u64>,
    total: u128,
}

impl ValidatorSet {
    /// Build a set; `power_cap`, if set, caps each validator's voting power (off by default:
    /// power equals stake).
    pub fn new(
        mut validators: Vec<Validator>,
        power_cap: Option<u64>,
    ) -> Result<ValidatorSet, SetError> {
        validators.retain(|v| v.stake > 0);
        validators.sort_by_key(|v| v.hotkey);
        if let Some(w) = validators.windows(2).find(|w| w[0].hotkey == w[1].hotkey) {
            return Err(SetError::Duplicate(w[0].hotkey));
        }
        if validators.len() > usize::from(u16::MAX) {
            return Err(SetError::TooLarge(validators.len()));
        }
        let powers: Vec<u64> = validators
            .iter()
            .map(|v| power_cap.map_or(v.stake, |c| v.stake.min(c)))
            .collect();
        let total: u128 = powers.iter().map(|p| u128::from(*p)).sum();
        if total == 0 {
            return Err(SetError::Empty);
        }
        Ok(ValidatorSet {
            members: validators,
            powers,
            total,
        })
    }

    /// Number of validators.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// True if the set has no members (never, for a constructed set).
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Sum of voting power.
    pub fn total_power(&self) -> u128 {
        self.total
    }

    /// Voting power of member `i`.
    pub fn power(&self, i: usize) -> u64 {
        self.powers[i]
    }

    /// Member `i`.
    pub fn member(&self, i: usize) -> &Validator {
        &self.members[i]
    }

    /// Index of a hotkey, if it is a member.
    pub fn index_of(&self, key: &PublicKey) -> Option<usize> {
        self.members.binary_search_by_key(key, |v| v.hotkey).ok()
    }

    /// The leader of `(height, view)`: drawn with probability proportional to power from a
    /// hash of agreed data (`seed`), height and view. Same inputs, same leader, everywhere.
    pub fn leader(&self, seed: &Hash32, height: Height, view: View) -> usize {
        let mut h = Sha256::new();
        h.update(b"platform/leader/v1");
        h.update(seed);
        h.update(height.to_le_bytes());
        h.update(view.to_le_bytes());
        let d = h.finalize();
        let r = u128::from_le_bytes(d[..16].try_into().expect("16 bytes")) % self.total;
        let mut acc = 0u128;
        for (i, p) in self.powers.iter().enumerate() {
            acc += u128::from(*p);
            if r < acc {
                return i;
            }
        }
        unreachable!("r < total = sum of powers")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> PublicKey {
        PublicKey([b; 32])
    }

    #[test]
    fn set_is_sorted_deduplicated_and_capped() {
        let set = ValidatorSet::new(
            vec![
                Validator {
                    hotkey: key(3),
                    stake: 10,
                },
                Validator {
                    hotkey: key(1),
                    stake: 100,
                },
                Validator {
                    hotkey: key(2),
                    stake: 0,
                },
            ],
            Some(50),
        )
        .unwrap();
        assert_eq!(set.len(), 2);
        assert_eq!(set.index_of(&key(1)), Some(0));
        assert_eq!(set.power(0), 50);
        assert_eq!(set.total_power(), 60);
        let dup = ValidatorSet::new(
            vec![
                Validator {
                    hotkey: key(1),
                    stake: 1,
                },
                Validator {
                    hotkey: key(1),
                    stake: 2,
                },
            ],
            None,
        );
        assert_eq!(dup.unwrap_err(), SetError::Duplicate(key(1)));
        assert_eq!(
            ValidatorSet::new(vec![], None).unwrap_err(),
            SetError::Empty
        );
    }

    #[test]
    fn leader_is_deterministic_and_stake_weighted() {
        let set = ValidatorSet::new(
            vec![
                Validator {
                    hotkey: key(1),
                    stake: 900,
                },
                Validator {
                    hotkey: key(2),
                    stake: 100,
                },
            ],
            None,
        )
        .unwrap();
        let seed = [7; 32];
        let picks: Vec<usize> = (0..1000).map(|h| set.leader(&seed, h, 0)).collect();
        assert_eq!(
            picks,
            (0..1000)
                .map(|h| set.leader(&seed, h, 0))
                .collect::<Vec<_>>()
        );
        let heavy = picks.iter().filter(|i| **i == 0).count();
        assert!((850..950).contains(&heavy), "{heavy}");
    }
}
