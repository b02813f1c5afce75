//! Submitting an epoch's agreed weights the way the subnet requires: `set_weights` when
//! commit-reveal is off; otherwise a drand-timelocked commit (v4, revealed by the chain
//! itself) or a hash commit (v2) that this node must reveal later. Hash commits are written
//! to a redb file *before* they are sent, so a node that restarts (or is killed) between
//! commit and reveal still reveals what it committed.

use std::path::Path;

use parity_scale_codec::{Decode, Encode};
use rand_core::{OsRng, RngCore};
use redb::{Database, ReadableDatabase, TableDefinition};

use crate::timelock::{self, WeightsTlockPayload};
use crate::weights::{commit_hash, conform};
use crate::{Chain, ChainError, PalletError};

/// redb's page cache for the pending commits: bounded, so memory plateaus while the file grows.
const CACHE_BYTES: usize = 4 << 20;

/// Pending hash commits: key (netuid, epoch) → SCALE `Pending`.
const PENDING: TableDefinition<(u16, u64), &[u8]> = TableDefinition::new("pending_commits");

/// How to commit when the subnet has commit-reveal on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommitMode {
    /// `commit_timelocked_weights` (commit-reveal v4): the chain reveals at the drand round.
    Timelocked {
        /// Seconds per block (12 on finney), to place the reveal round.
        block_seconds: u64,
    },
    /// `commit_weights` then `reveal_weights` (v2 hash), revealed by this node.
    Hash,
}

/// A hash commit waiting to be revealed.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Pending {
    /// Uids committed.
    pub uids: Vec<u16>,
    /// Values committed.
    pub values: Vec<u16>,
    /// The salt.
    pub salt: Vec<u16>,
    /// Version key committed.
    pub version_key: u64,
}

/// What [`WeightSubmitter::submit`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Submitted {
    /// `set_weights` was accepted.
    Set {
        /// The values sent.
        uids: Vec<u16>,
        /// Normalised values.
        values: Vec<u16>,
    },
    /// A timelocked commit was accepted; the chain reveals it at `reveal_round`.
    Timelocked {
        /// drand round.
        reveal_round: u64,
    },
    /// A hash commit was accepted; [`WeightSubmitter::reveal_due`] reveals it.
    Committed {
        /// The commit hash.
        hash: [u8; 32],
    },
    /// Nothing to set: every weight was zero.
    Nothing,
}

/// What happened to a pending commit in [`WeightSubmitter::reveal_due`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reveal {
    /// Revealed.
    Revealed {
        /// The epoch it was committed for.
        epoch: u64,
    },
    /// Not yet revealable; kept.
    TooEarly {
        /// The epoch it was committed for.
        epoch: u64,
    },
    /// The chain will never take it (expired, or never committed); dropped.
    Dropped {
        /// The epoch it was committed for.
        epoch: u64,
        /// Why.
        error: ChainError,
    },
}

/// Submits weights for one hotkey on one subnet, remembering hash commits in redb.
pub struct WeightSubmitter {
    db: Database,
    hotkey: [u8; 32],
    netuid: u16,
    mode: CommitMode,
}

impl std::fmt::Debug for WeightSubmitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WeightSubmitter")
            .field("netuid", &self.netuid)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

fn store_err(e: impl std::fmt::Display) -> ChainError {
    ChainError::Store(e.to_string())
}

impl WeightSubmitter {
    /// Open (or create) the pending-commit file at `path`.
    pub fn open(
        path: &Path,
        hotkey: [u8; 32],
        netuid: u16,
        mode: CommitMode,
    ) -> Result<WeightSubmitter, ChainError> {
        let db = redb::Builder::new()
            .set_cache_size(CACHE_BYTES)
            .create(path)
            .map_err(store_err)?;
        let tx = db.begin_write().map_err(store_err)?;
        tx.open_table(PENDING).map_err(store_err)?;
        tx.commit().map_err(store_err)?;
        Ok(WeightSubmitter {
            db,
            hotkey,
            netuid,
            mode,
        })
    }

    /// Pending hash commits, by epoch.
    pub fn pending(&self) -> Result<Vec<(u64, Pending)>, ChainError> {
        let tx = self.db.begin_read().map_err(store_err)?;
        let t = tx.open_table(PENDING).map_err(store_err)?;
        let mut out = Vec::new();
        for row in t
            .range((self.netuid, 0)..=(self.netuid, u64::MAX))
            .map_err(store_err)?
        {
            let (k, v) = row.map_err(store_err)?;
            let p = Pending::decode(&mut v.value())
                .map_err(|e| ChainError::Store(format!("corrupt pending commit: {e}")))?;
            out.push((k.value().1, p));
        }
        Ok(out)
    }

    fn put(&self, epoch: u64, p: &Pending) -> Result<(), ChainError> {
        let tx = self.db.begin_write().map_err(store_err)?;
        tx.open_table(PENDING)
            .map_err(store_err)?
            .insert((self.netuid, epoch), p.encode().as_slice())
            .map_err(store_err)?;
        tx.commit().map_err(store_err)
    }

    fn remove(&self, epoch: u64) -> Result<(), ChainError> {
        let tx = self.db.begin_write().map_err(store_err)?;
        tx.open_table(PENDING)
            .map_err(store_err)?
            .remove((self.netuid, epoch))
            .map_err(store_err)?;
        tx.commit().map_err(store_err)
    }

    /// Submit `epoch`'s agreed weights (integer, per uid) as the subnet's hyperparameters
    /// require, conformed exactly as the Python SDK would (clip, normalise).
    pub fn submit(
        &mut self,
        chain: &mut dyn Chain,
        epoch: u64,
        uids: &[u16],
        weights: &[u64],
    ) -> Result<Submitted, ChainError> {
        let hp = chain.hyperparams(self.netuid)?;
        let self_uid = chain
            .metagraph(self.netuid)?
            .neurons
            .iter()
            .find(|n| n.hotkey == self.hotkey)
            .map(|n| n.uid);
        let (uids, values) = conform(uids, weights, hp.max_weight_limit, self_uid)
            .map_err(|e| ChainError::Encode(e.to_string()))?;
        if uids.is_empty() {
            return Ok(Submitted::Nothing);
        }
        let version_key = hp.weights_version_key;
        if !hp.commit_reveal_enabled {
            chain.set_weights(&self.hotkey, self.netuid, &uids, &values, version_key)?;
            return Ok(Submitted::Set { uids, values });
        }
        match self.mode {
            CommitMode::Timelocked { block_seconds } => {
                // The reveal is due `commit_reveal_period` epochs of `tempo` blocks ahead;
                // a drand round at about that wall-clock time. (The SDK derives the round
                // from the subnet's epoch position; this approximation can land a round
                // earlier or later by up to one epoch.)
                let reveal_secs =
                    u64::from(hp.tempo) * hp.commit_reveal_period.max(1) * block_seconds;
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let reveal_round = timelock::round_at(now + reveal_secs);
                let commit = timelock::encrypt(
                    &WeightsTlockPayload {
                        hotkey: self.hotkey.to_vec(),
                        uids,
                        values,
                        version_key,
                    },
                    reveal_round,
                )?;
                chain.commit_timelocked_weights(
                    &self.hotkey,
                    self.netuid,
                    &commit,
                    reveal_round,
                    4,
                )?;
                Ok(Submitted::Timelocked { reveal_round })
            }
            CommitMode::Hash => {
                let mut salt = [0u16; 8];
                for s in &mut salt {
                    *s = OsRng.next_u32() as u16;
                }
                let p = Pending {
                    uids,
                    values,
                    salt: salt.to_vec(),
                    version_key,
                };
                let hash = commit_hash(
                    &self.hotkey,
                    self.netuid,
                    &p.uids,
                    &p.values,
                    &p.salt,
                    p.version_key,
                );
                // Durable first: a crash after the commit lands must still reveal it.
                self.put(epoch, &p)?;
                if let Err(e) = chain.commit_weights(&self.hotkey, self.netuid, hash) {
                    self.remove(epoch)?;
                    return Err(e);
                }
                Ok(Submitted::Committed { hash })
            }
        }
    }

    /// Try to reveal every pending hash commit; keep those that are too early, drop those
    /// the chain will never take.
    pub fn reveal_due(&mut self, chain: &mut dyn Chain) -> Result<Vec<Reveal>, ChainError> {
        let mut out = Vec::new();
        for (epoch, p) in self.pending()? {
            match chain.reveal_weights(
                &self.hotkey,
                self.netuid,
                &p.uids,
                &p.values,
                &p.salt,
                p.version_key,
            ) {
                Ok(()) => {
                    self.remove(epoch)?;
                    out.push(Reveal::Revealed { epoch });
                }
                Err(ChainError::Pallet(PalletError::RevealTooEarly)) => {
                    out.push(Reveal::TooEarly { epoch });
                }
                Err(
                    e @ ChainError::Pallet(
                        PalletError::ExpiredWeightCommit
                        | PalletError::NoWeightsCommitFound
                        | PalletError::InvalidRevealCommitHashNotMatch
                        | PalletError::CommitRevealDisabled,
                    ),
                ) => {
                    self.remove(epoch)?;
                    out.push(Reveal::Dropped { epoch, error: e });
                }
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Hyperparams;
    use crate::sim::{SimChain, SubnetGenesis};

    fn key(i: u8) -> [u8; 32] {
        [i; 32]
    }

    fn chain(commit_reveal: bool) -> SimChain {
        SimChain::new(
            [3; 32],
            vec![SubnetGenesis {
                netuid: 1,
                hyperparams: Hyperparams {
                    tempo: 10,
                    commit_reveal_enabled: commit_reveal,
                    commit_reveal_period: 1,
                    weights_version_key: 5,
                    weights_rate_limit: 0,
                    min_allowed_weights: 1,
                    max_weight_limit: u16::MAX,
                },
                max_uids: 8,
                max_validators: 2,
                min_stake_to_set_weights: 10,
                neurons: vec![(key(1), 1000), (key(2), 500), (key(3), 100)],
            }],
        )
    }

    #[test]
    fn set_weights_when_commit_reveal_is_off() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = chain(false);
        let mut s =
            WeightSubmitter::open(&dir.path().join("p.redb"), key(1), 1, CommitMode::Hash).unwrap();
        let r = s.submit(&mut c, 1, &[1, 2], &[3, 1]).unwrap();
        assert_eq!(
            r,
            Submitted::Set {
                uids: vec![1, 2],
                values: vec![65535, 21845]
            }
        );
        assert_eq!(c.weights_of(1, 0).unwrap(), &[(1, 65535), (2, 21845)]);
        assert_eq!(s.submit(&mut c, 2, &[1], &[0]).unwrap(), Submitted::Nothing);
    }

    #[test]
    fn a_hash_commit_survives_a_restart_and_is_revealed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.redb");
        let mut c = chain(true);
        {
            let mut s = WeightSubmitter::open(&path, key(1), 1, CommitMode::Hash).unwrap();
            let r = s.submit(&mut c, 7, &[1, 2], &[2, 1]).unwrap();
            assert!(matches!(r, Submitted::Committed { .. }));
            assert_eq!(
                s.reveal_due(&mut c).unwrap(),
                vec![Reveal::TooEarly { epoch: 7 }]
            );
        } // the node stops here
        c.advance(11);
        let mut s = WeightSubmitter::open(&path, key(1), 1, CommitMode::Hash).unwrap();
        assert_eq!(s.pending().unwrap().len(), 1, "the commit was remembered");
        assert_eq!(
            s.reveal_due(&mut c).unwrap(),
            vec![Reveal::Revealed { epoch: 7 }]
        );
        assert_eq!(c.weights_of(1, 0).unwrap(), &[(1, 65535), (2, 32768)]);
        assert!(s.pending().unwrap().is_empty());
    }

    #[test]
    fn a_commit_the_chain_refused_is_not_remembered_and_expired_ones_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = chain(true);
        // key(9) is not registered: the commit fails and nothing stays pending.
        let mut s =
            WeightSubmitter::open(&dir.path().join("a.redb"), key(9), 1, CommitMode::Hash).unwrap();
        assert!(s.submit(&mut c, 1, &[1], &[1]).is_err());
        assert!(s.pending().unwrap().is_empty());
        let mut s =
            WeightSubmitter::open(&dir.path().join("b.redb"), key(1), 1, CommitMode::Hash).unwrap();
        s.submit(&mut c, 2, &[1, 2], &[1, 1]).unwrap();
        c.advance(25);
        let r = s.reveal_due(&mut c).unwrap();
        assert!(
            matches!(
                &r[..],
                [Reveal::Dropped {
                    epoch: 2,
                    error: ChainError::Pallet(PalletError::ExpiredWeightCommit)
                }]
            ),
            "{r:?}"
        );
        assert!(s.pending().unwrap().is_empty());
    }

    #[test]
    fn timelocked_commits_go_to_the_chain_which_reveals_them() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = chain(true);
        let mut s = WeightSubmitter::open(
            &dir.path().join("t.redb"),
            key(1),
            1,
            CommitMode::Timelocked { block_seconds: 12 },
        )
        .unwrap();
        let Submitted::Timelocked { reveal_round } = s.submit(&mut c, 3, &[1, 2], &[1, 1]).unwrap()
        else {
            panic!("expected a timelocked commit")
        };
        let now_round = timelock::round_at(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs(),
        );
        // One tempo (10 blocks × 12 s = 120 s) ahead: ~40 quicknet rounds.
        assert!(
            reveal_round >= now_round + 39 && reveal_round <= now_round + 41,
            "{reveal_round} vs {now_round}"
        );
        assert!(
            s.pending().unwrap().is_empty(),
            "nothing for this node to reveal"
        );
    }
}
