//! Submitting an epoch's agreed weights the way the subnet requires: `set_weights` when
//! commit-reveal is off; otherwise a drand-timelocked commit (v4, revealed by the chain
//! itself) or a hash commit (v2) that this node must reveal later. Hash commits are written
//! to a redb file *before* they are sent, so a node that restarts (or is killed) between
//! commit and reveal still reveals what it committed.
//!
//! Nothing is sent that the pallet must refuse: a hash commit's reveal window is computed
//! from chain data when it is made (the blocks of the epoch `commit_reveal_period` after the
//! commit's, as the pallet counts epochs) and its reveal is sent once inside it, again only
//! after a failure and with backoff; a `set_weights` (or reveal) inside the subnet's
//! `weights_rate_limit` of our last one waits.

use std::path::Path;
use std::sync::Arc;

use parity_scale_codec::{Decode, Encode};
use rand_core::{OsRng, RngCore};
use redb::{Database, ReadableDatabase, TableDefinition};

use crate::timelock::{self, WeightsTlockPayload};
use crate::weights::{commit_hash, conform};
use crate::{Chain, ChainError, PalletError};

/// redb's page cache for the pending commits: bounded, so memory plateaus while the file grows.
const CACHE_BYTES: usize = 4 << 20;

/// Pending hash commits: key (storage index, epoch) → SCALE `Pending`, then its
/// `RevealWindow` (absent in records written before windows were kept). The storage index of
/// mechanism 0 is the netuid, so records written before mechanisms read as mechanism 0's.
const PENDING: TableDefinition<(u16, u64), &[u8]> = TableDefinition::new("pending_commits");
/// The block of our last weights landing (set, commit or reveal: the pallet's `LastUpdate`),
/// per storage index (mechanism): the rate limit counts from it.
const LAST_SET: TableDefinition<u16, u64> = TableDefinition::new("last_weights_block");
/// Longest wait between two tries of a failed reveal, in blocks.
const BACKOFF_MAX_BLOCKS: u64 = 64;

/// How to commit when the subnet has commit-reveal on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommitMode {
    /// `commit_timelocked_weights`: the chain reveals at the drand round.
    Timelocked {
        /// Seconds per block (12 on finney), to place the reveal round.
        block_seconds: u64,
        /// The commit-reveal version the runtime expects (its `CommitRevealWeightsVersion`).
        version: u16,
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
    /// When the chain takes its reveal (stored after the fields above; `None` for a record
    /// written before windows were kept, which is tried until the chain answers).
    #[codec(skip)]
    pub window: Option<RevealWindow>,
}

/// The blocks in which the chain takes a hash commit's reveal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode)]
pub struct RevealWindow {
    /// The head when the commit was sent.
    pub commit_block: u64,
    /// First block of the window.
    pub first_block: u64,
    /// Last block of the window.
    pub last_block: u64,
}

impl RevealWindow {
    /// The window of a commit included at `block`, as the pallet decides: epochs are
    /// numbered `(block + netuid + 1) / (tempo + 1)`, and the reveal is taken in exactly the
    /// epoch `commit_reveal_period` (at least 1) after the commit's.
    pub fn of(netuid: u16, tempo: u16, commit_reveal_period: u64, block: u64) -> RevealWindow {
        let blocks = u64::from(tempo) + 1;
        let reveal_epoch = crate::epoch_index(netuid, tempo, block) + commit_reveal_period.max(1);
        // The first block whose epoch index is `reveal_epoch`.
        let first_block = (reveal_epoch * blocks).saturating_sub(u64::from(netuid) + 1);
        RevealWindow {
            commit_block: block,
            first_block,
            last_block: first_block + u64::from(tempo),
        }
    }

    /// The window of a commit included somewhere in `from..=to` (the heads read before and
    /// after sending it): from the earliest possible first block to the latest last one, so
    /// a commit that crossed an epoch boundary is never given up early.
    pub fn spanning(
        netuid: u16,
        tempo: u16,
        commit_reveal_period: u64,
        from: u64,
        to: u64,
    ) -> RevealWindow {
        let a = RevealWindow::of(netuid, tempo, commit_reveal_period, from);
        let b = RevealWindow::of(netuid, tempo, commit_reveal_period, to.max(from));
        RevealWindow {
            commit_block: from,
            first_block: a.first_block,
            last_block: b.last_block,
        }
    }
}

fn encode_pending(p: &Pending) -> Vec<u8> {
    let mut b = p.encode();
    if let Some(w) = &p.window {
        w.encode_to(&mut b);
    }
    b
}

fn decode_pending(mut bytes: &[u8]) -> Result<Pending, parity_scale_codec::Error> {
    let mut p = Pending::decode(&mut bytes)?;
    if !bytes.is_empty() {
        p.window = Some(RevealWindow::decode(&mut bytes)?);
        if !bytes.is_empty() {
            return Err("trailing bytes after a pending commit".into());
        }
    }
    Ok(p)
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
    /// A hash commit was accepted; [`WeightSubmitter::reveal_due`] reveals it in `window`.
    Committed {
        /// The commit hash.
        hash: [u8; 32],
        /// When the chain takes its reveal.
        window: RevealWindow,
    },
    /// Nothing to set: every weight was zero.
    Nothing,
    /// Not sent: our last set, commit or reveal landed within the subnet's
    /// `weights_rate_limit`, so the pallet would refuse it (`SettingWeightsTooFast`,
    /// `CommittingWeightsTooFast`). The next epoch's weights go.
    RateLimited {
        /// The first block a set is allowed again.
        until_block: u64,
    },
}

/// What happened to a pending commit in [`WeightSubmitter::reveal_due`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reveal {
    /// Revealed.
    Revealed {
        /// The epoch it was committed for.
        epoch: u64,
        /// The uids revealed.
        uids: Vec<u16>,
        /// Their values.
        values: Vec<u16>,
    },
    /// Not sent: its window (or the rate limit, or a backoff) has not come; kept.
    Waiting {
        /// The epoch it was committed for.
        epoch: u64,
        /// The first block it will be tried at.
        at_block: u64,
    },
    /// The chain said it is too early (a record without a window, or a commit that crossed
    /// an epoch boundary); kept and tried again later.
    TooEarly {
        /// The epoch it was committed for.
        epoch: u64,
    },
    /// Its window passed before it could be sent (the node was down): dropped unsent.
    Missed {
        /// The epoch it was committed for.
        epoch: u64,
        /// The window's last block.
        last_block: u64,
    },
    /// Sending failed (connection, timeout); kept and tried again from `retry_at`.
    Failed {
        /// The epoch it was committed for.
        epoch: u64,
        /// What went wrong.
        error: ChainError,
        /// The block from which it is tried again.
        retry_at: u64,
    },
    /// The chain will never take it (expired, or never committed); dropped.
    Dropped {
        /// The epoch it was committed for.
        epoch: u64,
        /// Why.
        error: ChainError,
    },
}

/// Submits weights for one hotkey to one mechanism of one subnet, remembering hash commits in
/// redb ([`WeightSubmitter::for_mechanism`] gives the others, sharing the file).
pub struct WeightSubmitter {
    db: Arc<Database>,
    hotkey: [u8; 32],
    netuid: u16,
    /// The mechanism, and its storage index (the key of everything stored).
    mecid: u8,
    index: u16,
    mode: CommitMode,
    /// Block of our last weights landing (persisted in `LAST_SET`).
    last_set: Option<u64>,
    /// The subnet's `weights_rate_limit` as last read.
    rate_limit: u64,
    /// Failed reveals: epoch → (tries, first block to try again).
    backoff: std::collections::BTreeMap<u64, (u32, u64)>,
    /// Our uid on the subnet, as the last submission's metagraph read found it.
    uid: Option<u16>,
}

impl std::fmt::Debug for WeightSubmitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WeightSubmitter")
            .field("netuid", &self.netuid)
            .field("mecid", &self.mecid)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

fn store_err(e: impl std::fmt::Display) -> ChainError {
    ChainError::Store(e.to_string())
}

impl WeightSubmitter {
    /// Open (or create) the pending-commit file at `path`; the submitter for the subnet's
    /// mechanism 0.
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
        WeightSubmitter::with_db(Arc::new(db), hotkey, netuid, 0, mode)
    }

    fn with_db(
        db: Arc<Database>,
        hotkey: [u8; 32],
        netuid: u16,
        mecid: u8,
        mode: CommitMode,
    ) -> Result<WeightSubmitter, ChainError> {
        // Mechanism 0's index is the netuid, whatever the netuid.
        let index = match mecid {
            0 => netuid,
            _ => crate::storage_index(netuid, mecid)
                .ok_or(ChainError::Pallet(PalletError::MechanismDoesNotExist))?,
        };
        let tx = db.begin_write().map_err(store_err)?;
        tx.open_table(PENDING).map_err(store_err)?;
        let last_set = {
            let t = tx.open_table(LAST_SET).map_err(store_err)?;
            redb::ReadableTable::get(&t, index)
                .map_err(store_err)?
                .map(|v| v.value())
        };
        tx.commit().map_err(store_err)?;
        Ok(WeightSubmitter {
            db,
            hotkey,
            netuid,
            mecid,
            index,
            mode,
            last_set,
            rate_limit: 0,
            backoff: std::collections::BTreeMap::new(),
            uid: None,
        })
    }

    /// The submitter for mechanism `mecid` of the same subnet, hotkey and mode, sharing the
    /// pending-commit file (its commits, reveals and rate limit are its own, as the pallet
    /// keeps them per mechanism).
    pub fn for_mechanism(&self, mecid: u8) -> Result<WeightSubmitter, ChainError> {
        WeightSubmitter::with_db(self.db.clone(), self.hotkey, self.netuid, mecid, self.mode)
    }

    /// The mechanism this submitter sends weights to.
    pub fn mecid(&self) -> u8 {
        self.mecid
    }

    /// The subnet's mechanisms other than this one with hash commits pending in the shared
    /// file (a restarted node reveals them too), ascending.
    pub fn pending_mechanisms(&self) -> Result<Vec<u8>, ChainError> {
        let tx = self.db.begin_read().map_err(store_err)?;
        let t = tx.open_table(PENDING).map_err(store_err)?;
        let mut out = std::collections::BTreeSet::new();
        for row in redb::ReadableTable::iter(&t).map_err(store_err)? {
            let (k, _) = row.map_err(store_err)?;
            let index = k.value().0;
            if index % crate::pallet::GLOBAL_MAX_SUBNET_COUNT == self.netuid && index != self.index
            {
                out.insert((index / crate::pallet::GLOBAL_MAX_SUBNET_COUNT) as u8);
            }
        }
        Ok(out.into_iter().collect())
    }

    /// The first block our next weights may land at under the rate limit, if later than
    /// `block`.
    fn rate_limited_until(&self, block: u64) -> Option<u64> {
        let until = self.last_set?.saturating_add(self.rate_limit);
        (block < until).then_some(until)
    }

    fn landed(&mut self, block: u64) -> Result<(), ChainError> {
        self.last_set = Some(block);
        let tx = self.db.begin_write().map_err(store_err)?;
        tx.open_table(LAST_SET)
            .map_err(store_err)?
            .insert(self.index, block)
            .map_err(store_err)?;
        tx.commit().map_err(store_err)
    }

    /// Our uid on the subnet as of the last submission (`None` before one, or if the hotkey
    /// was not registered then).
    pub fn uid(&self) -> Option<u16> {
        self.uid
    }

    /// Pending hash commits, by epoch.
    pub fn pending(&self) -> Result<Vec<(u64, Pending)>, ChainError> {
        let tx = self.db.begin_read().map_err(store_err)?;
        let t = tx.open_table(PENDING).map_err(store_err)?;
        let mut out = Vec::new();
        for row in t
            .range((self.index, 0)..=(self.index, u64::MAX))
            .map_err(store_err)?
        {
            let (k, v) = row.map_err(store_err)?;
            let p = decode_pending(v.value())
                .map_err(|e| ChainError::Store(format!("corrupt pending commit: {e}")))?;
            out.push((k.value().1, p));
        }
        Ok(out)
    }

    fn put(&self, epoch: u64, p: &Pending) -> Result<(), ChainError> {
        let tx = self.db.begin_write().map_err(store_err)?;
        tx.open_table(PENDING)
            .map_err(store_err)?
            .insert((self.index, epoch), encode_pending(p).as_slice())
            .map_err(store_err)?;
        tx.commit().map_err(store_err)
    }

    fn remove(&self, epoch: u64) -> Result<(), ChainError> {
        let tx = self.db.begin_write().map_err(store_err)?;
        tx.open_table(PENDING)
            .map_err(store_err)?
            .remove((self.index, epoch))
            .map_err(store_err)?;
        tx.commit().map_err(store_err)
    }

    /// Submit `epoch`'s agreed weights (integer, per uid) to this submitter's mechanism as
    /// the subnet's hyperparameters require, conformed exactly as the Python SDK would (clip,
    /// normalise). A mechanism the subnet lacks is refused (`MechanismDoesNotExist`) before
    /// anything is sent.
    pub fn submit(
        &mut self,
        chain: &mut dyn Chain,
        epoch: u64,
        uids: &[u16],
        weights: &[u64],
    ) -> Result<Submitted, ChainError> {
        let hp = chain.hyperparams(self.netuid)?;
        if self.mecid != 0 && chain.mechanism_count(self.netuid)? <= self.mecid {
            return Err(PalletError::MechanismDoesNotExist.into());
        }
        self.rate_limit = hp.weights_rate_limit;
        let block = chain.current_block()?.number;
        let self_uid = chain.uid_of(self.netuid, &self.hotkey)?;
        self.uid = self_uid;
        let (uids, values) = conform(uids, weights, hp.max_weight_limit, self_uid)
            .map_err(|e| ChainError::Encode(e.to_string()))?;
        if uids.is_empty() {
            return Ok(Submitted::Nothing);
        }
        let version_key = hp.weights_version_key;
        // Sets and commits (of either kind) share the pallet's rate limit.
        if let Some(until_block) = self.rate_limited_until(block) {
            return Ok(Submitted::RateLimited { until_block });
        }
        if !hp.commit_reveal_enabled {
            chain.set_mechanism_weights(
                &self.hotkey,
                self.netuid,
                self.mecid,
                &uids,
                &values,
                version_key,
            )?;
            self.landed(block)?;
            return Ok(Submitted::Set { uids, values });
        }
        match self.mode {
            CommitMode::Timelocked {
                block_seconds,
                version,
            } => {
                // The drand round current just after the chain's first reveal block, as the
                // Bittensor SDK computes it from the subnet's epoch state.
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0.0, |d| d.as_secs_f64());
                let reveal_round = chain
                    .epoch_schedule(self.netuid)?
                    .reveal_round(hp.commit_reveal_period, block_seconds as f64, now)
                    .ok_or_else(|| {
                        ChainError::Encode(format!(
                            "subnet {} runs no epochs (tempo 0): a timelocked commit would \
                             never be revealed",
                            self.netuid
                        ))
                    })?;
                let commit = timelock::encrypt(
                    &WeightsTlockPayload {
                        hotkey: self.hotkey.to_vec(),
                        uids,
                        values,
                        version_key,
                    },
                    reveal_round,
                )?;
                chain.commit_timelocked_mechanism_weights(
                    &self.hotkey,
                    self.netuid,
                    self.mecid,
                    &commit,
                    reveal_round,
                    version,
                )?;
                self.landed(block)?;
                Ok(Submitted::Timelocked { reveal_round })
            }
            CommitMode::Hash => {
                let mut salt = [0u16; 8];
                for s in &mut salt {
                    *s = OsRng.next_u32() as u16;
                }
                let period = hp.commit_reveal_period;
                let mut p = Pending {
                    uids,
                    values,
                    salt: salt.to_vec(),
                    version_key,
                    window: Some(RevealWindow::of(self.netuid, hp.tempo, period, block)),
                };
                // Over the mechanism's storage index, as the pallet hashes the reveal.
                let hash = commit_hash(
                    &self.hotkey,
                    self.index,
                    &p.uids,
                    &p.values,
                    &p.salt,
                    p.version_key,
                );
                // Durable first: a crash after the commit lands must still reveal it.
                self.put(epoch, &p)?;
                let sent =
                    chain.commit_mechanism_weights(&self.hotkey, self.netuid, self.mecid, hash);
                if let Err(e) = sent {
                    self.remove(epoch)?;
                    return Err(e);
                }
                // It landed somewhere between the head before and the head now.
                let after = chain.current_block().map_or(block, |b| b.number);
                self.landed(after)?;
                let window = RevealWindow::spanning(self.netuid, hp.tempo, period, block, after);
                if after != block {
                    p.window = Some(window);
                    self.put(epoch, &p)?;
                }
                Ok(Submitted::Committed { hash, window })
            }
        }
    }

    /// Reveal the pending hash commits whose window is open at `block` (the chain's head),
    /// each sent once (again only after a failure, with backoff); keep those whose window
    /// has not come, drop those whose window passed or that the chain will never take.
    pub fn reveal_due(
        &mut self,
        chain: &mut dyn Chain,
        block: u64,
    ) -> Result<Vec<Reveal>, ChainError> {
        let mut out = Vec::new();
        for (epoch, p) in self.pending()? {
            if let Some(w) = p.window {
                if block > w.last_block {
                    self.remove(epoch)?;
                    self.backoff.remove(&epoch);
                    out.push(Reveal::Missed {
                        epoch,
                        last_block: w.last_block,
                    });
                    continue;
                }
                let retry = self.backoff.get(&epoch).map_or(0, |b| b.1);
                let at_block = w
                    .first_block
                    .max(retry)
                    .max(self.rate_limited_until(block).unwrap_or(0));
                if block < at_block {
                    out.push(Reveal::Waiting { epoch, at_block });
                    continue;
                }
            }
            match chain.reveal_mechanism_weights(
                &self.hotkey,
                self.netuid,
                self.mecid,
                &p.uids,
                &p.values,
                &p.salt,
                p.version_key,
            ) {
                Ok(()) => {
                    self.remove(epoch)?;
                    self.backoff.remove(&epoch);
                    self.landed(block)?;
                    out.push(Reveal::Revealed {
                        epoch,
                        uids: p.uids,
                        values: p.values,
                    });
                }
                Err(e @ ChainError::Pallet(PalletError::RevealTooEarly)) => {
                    let retry_at = self.back_off(epoch, block);
                    if p.window.is_some() {
                        out.push(Reveal::Failed {
                            epoch,
                            error: e,
                            retry_at,
                        });
                    } else {
                        out.push(Reveal::TooEarly { epoch });
                    }
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
                    self.backoff.remove(&epoch);
                    out.push(Reveal::Dropped { epoch, error: e });
                }
                Err(error) => {
                    let retry_at = self.back_off(epoch, block);
                    out.push(Reveal::Failed {
                        epoch,
                        error,
                        retry_at,
                    });
                }
            }
        }
        Ok(out)
    }

    /// One more failed try of `epoch`'s reveal: the next one waits 1, 2, 4, … blocks (at
    /// most [`BACKOFF_MAX_BLOCKS`]).
    fn back_off(&mut self, epoch: u64, block: u64) -> u64 {
        let tries = self.backoff.get(&epoch).map_or(0, |b| b.0) + 1;
        let wait = (1u64 << (tries - 1).min(6)).min(BACKOFF_MAX_BLOCKS);
        let retry_at = block + wait;
        self.backoff.insert(epoch, (tries, retry_at));
        retry_at
    }
}

#[cfg(test)]
mod tests;
