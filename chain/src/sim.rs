//! An in-process simulated subtensor for the devnet and tests: blocks on demand, hotkeys
//! registered to uids with stake, validator permits for the top stakes, tempo, and the
//! SubtensorModule's own checks on `set_weights`, `commit_weights` and `reveal_weights`,
//! failing with the pallet's error names, so a call the real chain would reject is
//! rejected here too. Deterministic from its genesis.

use std::collections::{BTreeMap, VecDeque};

use blake2::digest::consts::U32;
use blake2::{Blake2b, Digest};

use crate::weights::commit_hash;
use crate::{BlockInfo, Chain, ChainError, Hyperparams, Metagraph, Neuron, PalletError};

/// Unrevealed commits a hotkey may hold per subnet.
const MAX_UNREVEALED_COMMITS: usize = 10;
/// Weight calls remembered for inspection (the oldest are forgotten beyond).
const CALLS_KEPT: usize = 4096;
/// Metagraph versions kept per subnet for reads at past blocks (older ones are pruned, as a
/// non-archive node prunes state).
const HISTORY_MAX: usize = 4096;

/// A subnet's settings at genesis.
#[derive(Clone, Debug)]
pub struct SubnetGenesis {
    /// Subnet id.
    pub netuid: u16,
    /// Hyperparameters.
    pub hyperparams: Hyperparams,
    /// Most neurons.
    pub max_uids: u16,
    /// Validator permits go to this many top-stake neurons.
    pub max_validators: u16,
    /// Stake needed to set weights.
    pub min_stake_to_set_weights: u64,
    /// (hotkey, stake) registered at genesis, in uid order.
    pub neurons: Vec<([u8; 32], u64)>,
}

#[derive(Clone, Debug)]
struct Commit {
    hash: [u8; 32],
    epoch: u64,
}

#[derive(Clone, Debug)]
struct Subnet {
    genesis: SubnetGenesis,
    neurons: Vec<Neuron>,
    last_update: BTreeMap<u16, u64>,
    weights: BTreeMap<u16, Vec<(u16, u16)>>,
    commits: BTreeMap<u16, Vec<Commit>>,
    /// Timelocked commits by uid: (reveal round, ciphertext). The simulation holds no drand
    /// signatures, so it keeps them for inspection and never reveals them.
    timelocked: BTreeMap<u16, Vec<(u64, Vec<u8>)>>,
    /// Neurons as of each block where they changed (the first entry is genesis, block 0).
    history: BTreeMap<u64, Vec<Neuron>>,
}

/// A weight extrinsic the simulated chain received: at which block, which call, and the
/// error it was refused with (`None`: it landed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallRecord {
    /// The head when it arrived.
    pub block: u64,
    /// The call's name (`set_weights`, `commit_weights`, `reveal_weights`,
    /// `commit_timelocked_weights`).
    pub call: &'static str,
    /// Why the chain refused it.
    pub refused: Option<ChainError>,
}

/// The simulated chain.
#[derive(Debug)]
pub struct SimChain {
    seed: [u8; 32],
    block: u64,
    subnets: BTreeMap<u16, Subnet>,
    calls: VecDeque<CallRecord>,
}

impl SimChain {
    /// A chain at block 0 with these subnets.
    pub fn new(seed: [u8; 32], subnets: Vec<SubnetGenesis>) -> SimChain {
        let mut chain = SimChain {
            seed,
            block: 0,
            subnets: BTreeMap::new(),
            calls: VecDeque::new(),
        };
        for g in subnets {
            let mut s = Subnet {
                genesis: g.clone(),
                neurons: vec![],
                last_update: BTreeMap::new(),
                weights: BTreeMap::new(),
                commits: BTreeMap::new(),
                timelocked: BTreeMap::new(),
                history: BTreeMap::new(),
            };
            for (hotkey, stake) in &g.neurons {
                let uid = s.neurons.len() as u16;
                s.neurons.push(Neuron {
                    uid,
                    hotkey: *hotkey,
                    stake: *stake,
                    validator_permit: false,
                });
            }
            update_permits(&mut s);
            s.history.insert(0, s.neurons.clone());
            chain.subnets.insert(g.netuid, s);
        }
        chain
    }

    /// The weight extrinsics received, oldest first (the last 4,096).
    pub fn calls(&self) -> impl Iterator<Item = &CallRecord> {
        self.calls.iter()
    }

    /// Produce `n` blocks.
    pub fn advance(&mut self, n: u64) {
        self.block += n;
    }

    /// Register a hotkey on a subnet with some stake; returns its uid.
    pub fn register(
        &mut self,
        netuid: u16,
        hotkey: [u8; 32],
        stake: u64,
    ) -> Result<u16, ChainError> {
        let s = self
            .subnets
            .get_mut(&netuid)
            .ok_or(ChainError::Pallet(PalletError::SubnetNotExists))?;
        if let Some(n) = s.neurons.iter().find(|n| n.hotkey == hotkey) {
            return Ok(n.uid);
        }
        if s.neurons.len() >= usize::from(s.genesis.max_uids) {
            return Err(ChainError::Pallet(PalletError::Other(
                "TooManyRegistrationsThisBlock",
            )));
        }
        let uid = s.neurons.len() as u16;
        s.neurons.push(Neuron {
            uid,
            hotkey,
            stake,
            validator_permit: false,
        });
        let block = self.block;
        s.changed(block);
        Ok(uid)
    }

    /// Set the stake behind a registered hotkey (permits follow, as the pallet recomputes
    /// them).
    pub fn set_stake(
        &mut self,
        netuid: u16,
        hotkey: &[u8; 32],
        stake: u64,
    ) -> Result<(), ChainError> {
        let block = self.block;
        let s = self
            .subnets
            .get_mut(&netuid)
            .ok_or(ChainError::Pallet(PalletError::SubnetNotExists))?;
        let n = s
            .neurons
            .iter_mut()
            .find(|n| &n.hotkey == hotkey)
            .ok_or(ChainError::Pallet(PalletError::HotKeyNotRegisteredInSubNet))?;
        n.stake = stake;
        s.changed(block);
        Ok(())
    }

    /// Give a uid to a new hotkey (the pallet's registration into a full subnet prunes a uid
    /// this way): the old hotkey is deregistered, its weights and history on that uid cleared.
    pub fn replace(
        &mut self,
        netuid: u16,
        uid: u16,
        hotkey: [u8; 32],
        stake: u64,
    ) -> Result<(), ChainError> {
        let block = self.block;
        let s = self
            .subnets
            .get_mut(&netuid)
            .ok_or(ChainError::Pallet(PalletError::SubnetNotExists))?;
        if s.neurons.iter().any(|n| n.hotkey == hotkey) {
            return Err(ChainError::Pallet(PalletError::Other(
                "HotKeyAlreadyRegisteredInSubNet",
            )));
        }
        let n = s
            .neurons
            .get_mut(usize::from(uid))
            .ok_or(ChainError::Pallet(PalletError::UidVecContainInvalidOne))?;
        n.hotkey = hotkey;
        n.stake = stake;
        s.weights.remove(&uid);
        s.last_update.remove(&uid);
        s.commits.remove(&uid);
        s.changed(block);
        Ok(())
    }

    /// Every validator's weights on a subnet (uid → (uid, value)).
    pub fn all_weights(&self, netuid: u16) -> BTreeMap<u16, Vec<(u16, u16)>> {
        self.subnets
            .get(&netuid)
            .map(|s| s.weights.clone())
            .unwrap_or_default()
    }

    /// The weights a hotkey's uid last set on a subnet (uid, value), if any.
    pub fn weights_of(&self, netuid: u16, uid: u16) -> Option<&[(u16, u16)]> {
        self.subnets
            .get(&netuid)?
            .weights
            .get(&uid)
            .map(Vec::as_slice)
    }

    fn block_hash(&self, number: u64) -> [u8; 32] {
        let mut h = Blake2b::<U32>::new();
        h.update(self.seed);
        h.update(number.to_le_bytes());
        h.finalize().into()
    }

    fn epoch_of(&self, netuid: u16, block: u64) -> u64 {
        crate::epoch_index(
            netuid,
            self.subnets[&netuid].genesis.hyperparams.tempo,
            block,
        )
    }

    fn subnet(&self, netuid: u16) -> Result<&Subnet, ChainError> {
        self.subnets
            .get(&netuid)
            .ok_or(ChainError::Pallet(PalletError::SubnetNotExists))
    }

    /// The pallet's `set_weights` checks and effect, shared by `set_weights` and `reveal`.
    fn apply_weights(
        &mut self,
        hotkey: &[u8; 32],
        netuid: u16,
        uids: &[u16],
        values: &[u16],
        version_key: u64,
    ) -> Result<(), ChainError> {
        use PalletError as E;
        let block = self.block;
        let s = self
            .subnets
            .get_mut(&netuid)
            .ok_or(ChainError::Pallet(E::SubnetNotExists))?;
        let hp = &s.genesis.hyperparams;
        if uids.len() != values.len() {
            return Err(E::WeightVecNotEqualSize.into());
        }
        let me = s.neuron(hotkey)?.clone();
        if me.stake < s.genesis.min_stake_to_set_weights {
            return Err(E::NotEnoughStakeToSetWeights.into());
        }
        if hp.weights_version_key != 0 && version_key < hp.weights_version_key {
            return Err(E::IncorrectWeightVersionKey.into());
        }
        rate_check(s, me.uid, block, E::SettingWeightsTooFast)?;
        let self_weight_only = uids.len() == 1 && uids[0] == me.uid;
        if !self_weight_only && !me.validator_permit {
            return Err(E::NeuronNoValidatorPermit.into());
        }
        let mut seen = std::collections::BTreeSet::new();
        if uids.iter().any(|u| !seen.insert(*u)) {
            return Err(E::DuplicateUids.into());
        }
        if uids.len() > s.neurons.len() {
            return Err(E::UidsLengthExceedUidsInSubNet.into());
        }
        if uids.iter().any(|u| usize::from(*u) >= s.neurons.len()) {
            return Err(E::UidVecContainInvalidOne.into());
        }
        let min = usize::from(hp.min_allowed_weights).min(s.neurons.len());
        if !self_weight_only && uids.len() < min {
            return Err(E::WeightVecLengthIsLow.into());
        }
        if !self_weight_only && hp.max_weight_limit != u16::MAX {
            // The pallet max-upscales, then checks every value against the limit.
            let max = values.iter().copied().max().unwrap_or(0);
            let limited = values.iter().all(|v| {
                max == 0
                    || (u64::from(*v) * 65535 / u64::from(max)) <= u64::from(hp.max_weight_limit)
            });
            if !limited {
                return Err(E::MaxWeightExceeded.into());
            }
        }
        s.weights.insert(
            me.uid,
            uids.iter().copied().zip(values.iter().copied()).collect(),
        );
        s.last_update.insert(me.uid, block);
        Ok(())
    }
}

impl Subnet {
    /// Neurons changed while `block` is the head: permits recomputed, and the version kept
    /// for reads at `block + 1` on (a produced block's state never changes, as on a real
    /// chain: a change lands in the next block).
    fn changed(&mut self, block: u64) {
        update_permits(self);
        self.history.insert(block + 1, self.neurons.clone());
        while self.history.len() > HISTORY_MAX {
            self.history.pop_first();
        }
    }

    /// The neuron registered under `hotkey`, or the pallet's error.
    fn neuron(&self, hotkey: &[u8; 32]) -> Result<&Neuron, ChainError> {
        self.neurons
            .iter()
            .find(|n| &n.hotkey == hotkey)
            .ok_or(ChainError::Pallet(PalletError::HotKeyNotRegisteredInSubNet))
    }
}

/// The pallet's rate limit, for sets and commits alike: `weights_rate_limit` blocks since the
/// neuron's last update (a set, a reveal or a commit); `refused` names the call's error.
fn rate_check(s: &Subnet, uid: u16, block: u64, refused: PalletError) -> Result<(), ChainError> {
    match s.last_update.get(&uid) {
        Some(last) if block.saturating_sub(*last) < s.genesis.hyperparams.weights_rate_limit => {
            Err(refused.into())
        }
        _ => Ok(()),
    }
}

fn update_permits(s: &mut Subnet) {
    let mut order: Vec<usize> = (0..s.neurons.len()).collect();
    // Highest stake first; ties to the lower uid. Deterministic.
    order.sort_by(|a, b| s.neurons[*b].stake.cmp(&s.neurons[*a].stake).then(a.cmp(b)));
    for (rank, i) in order.into_iter().enumerate() {
        s.neurons[i].validator_permit =
            rank < usize::from(s.genesis.max_validators) && s.neurons[i].stake > 0;
    }
}

impl Chain for SimChain {
    fn current_block(&self) -> Result<BlockInfo, ChainError> {
        Ok(BlockInfo {
            number: self.block,
            hash: self.block_hash(self.block),
        })
    }

    fn metagraph(&self, netuid: u16) -> Result<Metagraph, ChainError> {
        self.metagraph_at(netuid, self.block)
    }

    fn metagraph_at(&self, netuid: u16, block: u64) -> Result<Metagraph, ChainError> {
        let s = self.subnet(netuid)?;
        if block > self.block {
            return Err(ChainError::Connection(format!(
                "block {block} is not produced yet (head {})",
                self.block
            )));
        }
        // The version in force at `block`: the last one that landed at or before it.
        let neurons = s
            .history
            .range(..=block)
            .next_back()
            .map(|(_, n)| n.clone())
            .ok_or_else(|| ChainError::Connection(format!("state at block {block} is pruned")))?;
        Ok(Metagraph {
            netuid,
            block: BlockInfo {
                number: block,
                hash: self.block_hash(block),
            },
            neurons,
        })
    }

    fn hyperparams(&self, netuid: u16) -> Result<Hyperparams, ChainError> {
        Ok(self.subnet(netuid)?.genesis.hyperparams.clone())
    }

    fn weights(&self, netuid: u16, uid: u16) -> Result<Vec<(u16, u16)>, ChainError> {
        Ok(self
            .subnet(netuid)?
            .weights
            .get(&uid)
            .cloned()
            .unwrap_or_default())
    }

    fn set_weights(
        &mut self,
        hotkey: &[u8; 32],
        netuid: u16,
        uids: &[u16],
        values: &[u16],
        version_key: u64,
    ) -> Result<(), ChainError> {
        let r = self.set_weights_inner(hotkey, netuid, uids, values, version_key);
        self.record("set_weights", &r);
        r
    }

    fn commit_weights(
        &mut self,
        hotkey: &[u8; 32],
        netuid: u16,
        hash: [u8; 32],
    ) -> Result<(), ChainError> {
        let r = self.commit_weights_inner(hotkey, netuid, hash);
        self.record("commit_weights", &r);
        r
    }

    fn commit_timelocked_weights(
        &mut self,
        hotkey: &[u8; 32],
        netuid: u16,
        commit: &[u8],
        reveal_round: u64,
        commit_reveal_version: u16,
    ) -> Result<(), ChainError> {
        let r = self.commit_timelocked_weights_inner(
            hotkey,
            netuid,
            commit,
            reveal_round,
            commit_reveal_version,
        );
        self.record("commit_timelocked_weights", &r);
        r
    }

    fn reveal_weights(
        &mut self,
        hotkey: &[u8; 32],
        netuid: u16,
        uids: &[u16],
        values: &[u16],
        salt: &[u16],
        version_key: u64,
    ) -> Result<(), ChainError> {
        let r = self.reveal_weights_inner(hotkey, netuid, uids, values, salt, version_key);
        self.record("reveal_weights", &r);
        r
    }
}

/// The weight calls' checks and effects, behind the [`Chain`] methods that record them.
impl SimChain {
    fn set_weights_inner(
        &mut self,
        hotkey: &[u8; 32],
        netuid: u16,
        uids: &[u16],
        values: &[u16],
        version_key: u64,
    ) -> Result<(), ChainError> {
        if self
            .subnet(netuid)?
            .genesis
            .hyperparams
            .commit_reveal_enabled
        {
            return Err(PalletError::CommitRevealEnabled.into());
        }
        self.apply_weights(hotkey, netuid, uids, values, version_key)
    }

    fn commit_weights_inner(
        &mut self,
        hotkey: &[u8; 32],
        netuid: u16,
        hash: [u8; 32],
    ) -> Result<(), ChainError> {
        let epoch = self.epoch_of(netuid, self.block);
        let s = self
            .subnets
            .get_mut(&netuid)
            .ok_or(ChainError::Pallet(PalletError::SubnetNotExists))?;
        if !s.genesis.hyperparams.commit_reveal_enabled {
            return Err(PalletError::CommitRevealDisabled.into());
        }
        let uid = s.neuron(hotkey)?.uid;
        rate_check(s, uid, self.block, PalletError::CommittingWeightsTooFast)?;
        let commits = s.commits.entry(uid).or_default();
        if commits.len() >= MAX_UNREVEALED_COMMITS {
            return Err(PalletError::TooManyUnrevealedCommits.into());
        }
        commits.push(Commit { hash, epoch });
        s.last_update.insert(uid, self.block);
        Ok(())
    }

    fn commit_timelocked_weights_inner(
        &mut self,
        hotkey: &[u8; 32],
        netuid: u16,
        commit: &[u8],
        reveal_round: u64,
        _commit_reveal_version: u16,
    ) -> Result<(), ChainError> {
        let s = self
            .subnets
            .get_mut(&netuid)
            .ok_or(ChainError::Pallet(PalletError::SubnetNotExists))?;
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
        rate_check(s, uid, self.block, PalletError::CommittingWeightsTooFast)?;
        let list = s.timelocked.entry(uid).or_default();
        if list.len() >= MAX_UNREVEALED_COMMITS {
            return Err(PalletError::TooManyUnrevealedCommits.into());
        }
        list.push((reveal_round, commit.to_vec()));
        s.last_update.insert(uid, self.block);
        Ok(())
    }

    fn reveal_weights_inner(
        &mut self,
        hotkey: &[u8; 32],
        netuid: u16,
        uids: &[u16],
        values: &[u16],
        salt: &[u16],
        version_key: u64,
    ) -> Result<(), ChainError> {
        let now_epoch = self.epoch_of(netuid, self.block);
        let s = self.subnet(netuid)?;
        if !s.genesis.hyperparams.commit_reveal_enabled {
            return Err(PalletError::CommitRevealDisabled.into());
        }
        let reveal_period = s.genesis.hyperparams.commit_reveal_period.max(1);
        let uid = s.neuron(hotkey)?.uid;
        let commits = s
            .commits
            .get(&uid)
            .filter(|c| !c.is_empty())
            .ok_or(ChainError::Pallet(PalletError::NoWeightsCommitFound))?;
        let hash = commit_hash(hotkey, netuid, uids, values, salt, version_key);
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
        self.apply_weights(hotkey, netuid, uids, values, version_key)?;
        if let Some(c) = self
            .subnets
            .get_mut(&netuid)
            .and_then(|s| s.commits.get_mut(&uid))
        {
            c.remove(pos);
        }
        Ok(())
    }

    fn record(&mut self, call: &'static str, r: &Result<(), ChainError>) {
        if self.calls.len() == CALLS_KEPT {
            self.calls.pop_front();
        }
        self.calls.push_back(CallRecord {
            block: self.block,
            call,
            refused: r.as_ref().err().cloned(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u8) -> [u8; 32] {
        [i; 32]
    }

    fn chain(commit_reveal: bool) -> SimChain {
        SimChain::new(
            [7; 32],
            vec![SubnetGenesis {
                netuid: 1,
                hyperparams: Hyperparams {
                    tempo: 10,
                    commit_reveal_enabled: commit_reveal,
                    commit_reveal_period: 1,
                    weights_version_key: 5,
                    weights_rate_limit: 3,
                    min_allowed_weights: 2,
                    max_weight_limit: u16::MAX,
                },
                max_uids: 8,
                max_validators: 2,
                min_stake_to_set_weights: 10,
                neurons: vec![(key(1), 1000), (key(2), 500), (key(3), 100), (key(4), 5)],
            }],
        )
    }

    fn err(r: Result<(), ChainError>) -> PalletError {
        match r {
            Err(ChainError::Pallet(e)) => e,
            other => panic!("expected a pallet error, got {other:?}"),
        }
    }

    #[test]
    fn permits_go_to_the_top_stakes() {
        let m = chain(false).metagraph(1).unwrap();
        let permits: Vec<bool> = m.neurons.iter().map(|n| n.validator_permit).collect();
        assert_eq!(permits, vec![true, true, false, false]);
    }

    #[test]
    fn set_weights_enforces_the_pallet_checks() {
        let mut c = chain(false);
        c.advance(5);
        let v = key(1);
        assert_eq!(
            err(c.set_weights(&key(9), 1, &[0, 1], &[1, 1], 5)),
            PalletError::HotKeyNotRegisteredInSubNet
        );
        assert_eq!(
            err(c.set_weights(&v, 2, &[0, 1], &[1, 1], 5)),
            PalletError::SubnetNotExists
        );
        assert_eq!(
            err(c.set_weights(&v, 1, &[0, 1], &[1], 5)),
            PalletError::WeightVecNotEqualSize
        );
        assert_eq!(
            err(c.set_weights(&v, 1, &[0, 1], &[1, 1], 4)),
            PalletError::IncorrectWeightVersionKey
        );
        assert_eq!(
            err(c.set_weights(&v, 1, &[1, 1], &[1, 1], 5)),
            PalletError::DuplicateUids
        );
        assert_eq!(
            err(c.set_weights(&v, 1, &[0, 9], &[1, 1], 5)),
            PalletError::UidVecContainInvalidOne
        );
        assert_eq!(
            err(c.set_weights(&v, 1, &[1], &[1], 5)),
            PalletError::WeightVecLengthIsLow
        );
        assert_eq!(
            err(c.set_weights(&key(3), 1, &[0, 1], &[1, 1], 5)),
            PalletError::NeuronNoValidatorPermit
        );
        assert_eq!(
            err(c.set_weights(&key(4), 1, &[3], &[1], 5)),
            PalletError::NotEnoughStakeToSetWeights
        );
        c.set_weights(&v, 1, &[0, 1, 2], &[65535, 100, 1], 5)
            .unwrap();
        assert_eq!(c.weights_of(1, 0).unwrap(), &[(0, 65535), (1, 100), (2, 1)]);
        assert_eq!(
            err(c.set_weights(&v, 1, &[0, 1], &[1, 1], 5)),
            PalletError::SettingWeightsTooFast
        );
        c.advance(3);
        c.set_weights(&v, 1, &[0, 1], &[1, 1], 6).unwrap();
        // A self-weight needs no permit and no minimum length.
        c.set_weights(&key(3), 1, &[2], &[1], 5).unwrap();
    }

    #[test]
    fn commit_reveal_flow_with_the_v2_hash() {
        let mut c = chain(true);
        let v = key(1);
        assert_eq!(
            err(c.set_weights(&v, 1, &[0, 1], &[1, 1], 5)),
            PalletError::CommitRevealEnabled
        );
        let (uids, vals, salt) = (
            [0u16, 1, 2],
            [65535u16, 32768, 1],
            [1u16, 2, 3, 4, 5, 6, 7, 8],
        );
        assert_eq!(
            err(c.reveal_weights(&v, 1, &uids, &vals, &salt, 5)),
            PalletError::NoWeightsCommitFound
        );
        c.commit_weights(&v, 1, commit_hash(&v, 1, &uids, &vals, &salt, 5))
            .unwrap();
        assert_eq!(
            err(c.reveal_weights(&v, 1, &uids, &vals, &salt, 5)),
            PalletError::RevealTooEarly
        );
        c.advance(11);
        assert_eq!(
            err(c.reveal_weights(&v, 1, &uids, &[1, 1, 1], &salt, 5)),
            PalletError::InvalidRevealCommitHashNotMatch
        );
        c.reveal_weights(&v, 1, &uids, &vals, &salt, 5).unwrap();
        assert_eq!(c.weights_of(1, 0).unwrap().len(), 3);
        // A commit within the rate limit of the reveal (an update) is refused, as the pallet
        // refuses it.
        assert_eq!(
            err(c.commit_weights(&v, 1, commit_hash(&v, 1, &uids, &vals, &salt, 6))),
            PalletError::CommittingWeightsTooFast
        );
        c.advance(3);
        // Expired: commit, then wait two epochs.
        c.commit_weights(&v, 1, commit_hash(&v, 1, &uids, &vals, &salt, 6))
            .unwrap();
        c.advance(22);
        assert_eq!(
            err(c.reveal_weights(&v, 1, &uids, &vals, &salt, 6)),
            PalletError::ExpiredWeightCommit
        );
    }

    #[test]
    fn deterministic_from_genesis() {
        let (mut a, mut b) = (chain(false), chain(false));
        a.advance(17);
        b.advance(17);
        assert_eq!(a.current_block().unwrap(), b.current_block().unwrap());
        assert_ne!(
            a.current_block().unwrap().hash,
            chain(false).current_block().unwrap().hash
        );
    }
}
