//! The weight calls' checks and effects, behind the [`Chain`](crate::Chain) methods that
//! record them. Every call names a mechanism (0 for the original calls); state is kept per
//! mechanism, as the pallet keys it by the mechanism's storage index.

use super::{CALLS_KEPT, CallRecord, Commit, MAX_UNREVEALED_COMMITS, SimChain};
use crate::weights::commit_hash;
use crate::{ChainError, PalletError};

impl SimChain {
    pub(super) fn set_weights_inner(
        &mut self,
        hotkey: &[u8; 32],
        netuid: u16,
        mecid: u8,
        uids: &[u16],
        values: &[u16],
        version_key: u64,
    ) -> Result<(), ChainError> {
        let s = self.subnet(netuid)?;
        s.mechanism(mecid)?;
        if s.genesis.hyperparams.commit_reveal_enabled {
            return Err(PalletError::CommitRevealEnabled.into());
        }
        self.apply_weights(hotkey, netuid, mecid, uids, values, version_key)
    }

    pub(super) fn commit_weights_inner(
        &mut self,
        hotkey: &[u8; 32],
        netuid: u16,
        mecid: u8,
        hash: [u8; 32],
    ) -> Result<(), ChainError> {
        let block = self.block;
        let epoch = self.epoch_of(netuid, block);
        let s = self
            .subnets
            .get_mut(&netuid)
            .ok_or(ChainError::Pallet(PalletError::SubnetNotExists))?;
        s.mechanism(mecid)?;
        if !s.genesis.hyperparams.commit_reveal_enabled {
            return Err(PalletError::CommitRevealDisabled.into());
        }
        let uid = s.neuron(hotkey)?.uid;
        super::rate_check(s, mecid, uid, block, PalletError::CommittingWeightsTooFast)?;
        let m = s.mechanisms.entry(mecid).or_default();
        let commits = m.commits.entry(uid).or_default();
        if commits.len() >= MAX_UNREVEALED_COMMITS {
            return Err(PalletError::TooManyUnrevealedCommits.into());
        }
        commits.push(Commit { hash, epoch });
        m.last_update.insert(uid, block);
        Ok(())
    }

    pub(super) fn commit_timelocked_weights_inner(
        &mut self,
        hotkey: &[u8; 32],
        netuid: u16,
        mecid: u8,
        commit: &[u8],
        reveal_round: u64,
        _commit_reveal_version: u16,
    ) -> Result<(), ChainError> {
        let block = self.block;
        let s = self
            .subnets
            .get_mut(&netuid)
            .ok_or(ChainError::Pallet(PalletError::SubnetNotExists))?;
        s.mechanism(mecid)?;
        if !s.genesis.hyperparams.commit_reveal_enabled {
            return Err(PalletError::CommitRevealDisabled.into());
        }
        if commit.len() > crate::timelock::MAX_COMMIT_BYTES {
            // A BoundedVec<u8, 5000> longer than its bound does not even decode.
            return Err(ChainError::Encode(format!(
                "commit of {} bytes exceeds {}",
                commit.len(),
                crate::timelock::MAX_COMMIT_BYTES
            )));
        }
        let uid = s.neuron(hotkey)?.uid;
        super::rate_check(s, mecid, uid, block, PalletError::CommittingWeightsTooFast)?;
        let m = s.mechanisms.entry(mecid).or_default();
        let list = m.timelocked.entry(uid).or_default();
        if list.len() >= MAX_UNREVEALED_COMMITS {
            return Err(PalletError::TooManyUnrevealedCommits.into());
        }
        list.push((reveal_round, commit.to_vec()));
        m.last_update.insert(uid, block);
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn reveal_weights_inner(
        &mut self,
        hotkey: &[u8; 32],
        netuid: u16,
        mecid: u8,
        uids: &[u16],
        values: &[u16],
        salt: &[u16],
        version_key: u64,
    ) -> Result<(), ChainError> {
        let now_epoch = self.epoch_of(netuid, self.block);
        let s = self.subnet(netuid)?;
        s.mechanism(mecid)?;
        if !s.genesis.hyperparams.commit_reveal_enabled {
            return Err(PalletError::CommitRevealDisabled.into());
        }
        let reveal_period = s.genesis.hyperparams.commit_reveal_period.max(1);
        let uid = s.neuron(hotkey)?.uid;
        let commits = s
            .mechanisms
            .get(&mecid)
            .and_then(|m| m.commits.get(&uid))
            .filter(|c| !c.is_empty())
            .ok_or(ChainError::Pallet(PalletError::NoWeightsCommitFound))?;
        // The hash covers the mechanism's storage index (the netuid for mechanism 0).
        let index = crate::storage_index(netuid, mecid)
            .ok_or(ChainError::Pallet(PalletError::MechanismDoesNotExist))?;
        let hash = commit_hash(hotkey, index, uids, values, salt, version_key);
        let pos = commits
            .iter()
            .position(|c| c.hash == hash)
            .ok_or(ChainError::Pallet(
                PalletError::InvalidRevealCommitHashNotMatch,
            ))?;
        let commit_epoch = commits[pos].epoch;
        if now_epoch < commit_epoch + reveal_period {
            return Err(PalletError::RevealTooEarly.into());
        }
        if now_epoch > commit_epoch + reveal_period {
            return Err(PalletError::ExpiredWeightCommit.into());
        }
        self.apply_weights(hotkey, netuid, mecid, uids, values, version_key)?;
        if let Some(c) = self
            .subnets
            .get_mut(&netuid)
            .and_then(|s| s.mechanisms.get_mut(&mecid))
            .and_then(|m| m.commits.get_mut(&uid))
        {
            c.remove(pos);
        }
        Ok(())
    }

    /// Remember a call: its name is the original call's for mechanism 0 and the mechanism
    /// form's otherwise (`names`), as a client sends them.
    pub(super) fn record(
        &mut self,
        mecid: u8,
        names: [&'static str; 2],
        r: &Result<(), ChainError>,
    ) {
        if self.calls.len() == CALLS_KEPT {
            self.calls.pop_front();
        }
        self.calls.push_back(CallRecord {
            block: self.block,
            call: names[usize::from(mecid != 0)],
            mecid,
            refused: r.as_ref().err().cloned(),
        });
    }
}
