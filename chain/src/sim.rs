//! An in-process simulated subtensor for the devnet and tests: blocks on demand, hotkeys
//! registered to uids with stake, validator permits for the top stakes, tempo, incentive
//! mechanisms, and the SubtensorModule's own checks on `set_weights`, `commit_weights` and
//! `reveal_weights` (and their mechanism forms), failing with the pallet's error names, so a
//! call the real chain would reject is rejected here too. Deterministic from its genesis.

use std::collections::{BTreeMap, VecDeque};

use blake2::digest::consts::U32;
use blake2::{Blake2b, Digest};

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

/// One incentive mechanism's weight state (the pallet keys it by the mechanism's storage
/// index).
#[derive(Clone, Debug, Default)]
struct Mechanism {
    last_update: BTreeMap<u16, u64>,
    weights: BTreeMap<u16, Vec<(u16, u16)>>,
    commits: BTreeMap<u16, Vec<Commit>>,
    /// Timelocked commits by uid: (reveal round, ciphertext). The simulation holds no drand
    /// signatures, so it keeps them for inspection and never reveals them.
    timelocked: BTreeMap<u16, Vec<(u64, Vec<u8>)>>,
}

#[derive(Clone, Debug)]
struct Subnet {
    genesis: SubnetGenesis,
    neurons: Vec<Neuron>,
    /// `MechanismCountCurrent`: mechanisms `0..count` exist.
    mechanism_count: u8,
    /// Weight state per mechanism (created on first use).
    mechanisms: BTreeMap<u8, Mechanism>,
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
    /// `commit_timelocked_weights`, or their mechanism forms for a mechanism other than 0).
    pub call: &'static str,
    /// The mechanism the call was for.
    pub mecid: u8,
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
                mechanism_count: 1,
                mechanisms: BTreeMap::new(),
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
        for m in s.mechanisms.values_mut() {
            m.weights.remove(&uid);
            m.last_update.remove(&uid);
            m.commits.remove(&uid);
            m.timelocked.remove(&uid);
        }
        s.changed(block);
        Ok(())
    }

    /// Set a subnet's mechanism count (the owner's `sudo_set_mechanism_count`): mechanisms
    /// `0..count` exist. 1 to 16 (the pallet's storage index leaves room for 16).
    pub fn set_mechanism_count(&mut self, netuid: u16, count: u8) -> Result<(), ChainError> {
        if count == 0 || crate::storage_index(netuid, count - 1).is_none() {
            return Err(ChainError::Pallet(PalletError::Other("InvalidValue")));
        }
        let s = self
            .subnets
            .get_mut(&netuid)
            .ok_or(ChainError::Pallet(PalletError::SubnetNotExists))?;
        s.mechanism_count = count;
        s.mechanisms.retain(|m, _| *m < count);
        Ok(())
    }

    /// Every validator's weights on a subnet's mechanism 0 (uid → (uid, value)).
    pub fn all_weights(&self, netuid: u16) -> BTreeMap<u16, Vec<(u16, u16)>> {
        self.all_mechanism_weights(netuid, 0)
    }

    /// Every validator's weights on one of a subnet's mechanisms (uid → (uid, value)).
    pub fn all_mechanism_weights(&self, netuid: u16, mecid: u8) -> BTreeMap<u16, Vec<(u16, u16)>> {
        self.subnets
            .get(&netuid)
            .and_then(|s| s.mechanisms.get(&mecid))
            .map(|m| m.weights.clone())
            .unwrap_or_default()
    }

    /// The weights a hotkey's uid last set on a subnet's mechanism 0 (uid, value), if any.
    pub fn weights_of(&self, netuid: u16, uid: u16) -> Option<&[(u16, u16)]> {
        self.subnets
            .get(&netuid)?
            .mechanisms
            .get(&0)?
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
        mecid: u8,
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
        s.mechanism(mecid)?;
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
        rate_check(s, mecid, me.uid, block, E::SettingWeightsTooFast)?;
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
        let m = s.mechanisms.entry(mecid).or_default();
        m.weights.insert(
            me.uid,
            uids.iter().copied().zip(values.iter().copied()).collect(),
        );
        m.last_update.insert(me.uid, block);
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

    /// `MechanismDoesNotExist` unless the subnet has mechanism `mecid`.
    fn mechanism(&self, mecid: u8) -> Result<(), ChainError> {
        if mecid < self.mechanism_count {
            Ok(())
        } else {
            Err(PalletError::MechanismDoesNotExist.into())
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
/// neuron's last update of this mechanism (a set, a reveal or a commit; `LastUpdate` is kept
/// per mechanism); `refused` names the call's error.
fn rate_check(
    s: &Subnet,
    mecid: u8,
    uid: u16,
    block: u64,
    refused: PalletError,
) -> Result<(), ChainError> {
    let last = s
        .mechanisms
        .get(&mecid)
        .and_then(|m| m.last_update.get(&uid));
    match last {
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
            stake_kind: crate::StakeKind::HotkeyAlpha,
        })
    }

    /// As of the head, like [`Self::metagraph`] (a registration lands in the next block),
    /// without building the metagraph.
    fn uid_of(&self, netuid: u16, hotkey: &[u8; 32]) -> Result<Option<u16>, ChainError> {
        let s = self.subnet(netuid)?;
        let neurons = s.history.range(..=self.block).next_back().map(|(_, n)| n);
        Ok(neurons
            .and_then(|ns| ns.iter().find(|n| n.hotkey == *hotkey))
            .map(|n| n.uid))
    }

    fn hyperparams(&self, netuid: u16) -> Result<Hyperparams, ChainError> {
        Ok(self.subnet(netuid)?.genesis.hyperparams.clone())
    }

    fn mechanism_count(&self, netuid: u16) -> Result<u8, ChainError> {
        Ok(self.subnet(netuid)?.mechanism_count)
    }

    fn mechanism_weights(
        &self,
        netuid: u16,
        mecid: u8,
        uid: u16,
    ) -> Result<Vec<(u16, u16)>, ChainError> {
        let s = self.subnet(netuid)?;
        s.mechanism(mecid)?;
        Ok(s.mechanisms
            .get(&mecid)
            .and_then(|m| m.weights.get(&uid))
            .cloned()
            .unwrap_or_default())
    }

    fn set_mechanism_weights(
        &mut self,
        hotkey: &[u8; 32],
        netuid: u16,
        mecid: u8,
        uids: &[u16],
        values: &[u16],
        version_key: u64,
    ) -> Result<(), ChainError> {
        let r = self.set_weights_inner(hotkey, netuid, mecid, uids, values, version_key);
        self.record(mecid, ["set_weights", "set_mechanism_weights"], &r);
        r
    }

    fn commit_mechanism_weights(
        &mut self,
        hotkey: &[u8; 32],
        netuid: u16,
        mecid: u8,
        hash: [u8; 32],
    ) -> Result<(), ChainError> {
        let r = self.commit_weights_inner(hotkey, netuid, mecid, hash);
        self.record(mecid, ["commit_weights", "commit_mechanism_weights"], &r);
        r
    }

    fn commit_timelocked_mechanism_weights(
        &mut self,
        hotkey: &[u8; 32],
        netuid: u16,
        mecid: u8,
        commit: &[u8],
        reveal_round: u64,
        commit_reveal_version: u16,
    ) -> Result<(), ChainError> {
        let r = self.commit_timelocked_weights_inner(
            hotkey,
            netuid,
            mecid,
            commit,
            reveal_round,
            commit_reveal_version,
        );
        let names = [
            "commit_timelocked_weights",
            "commit_timelocked_mechanism_weights",
        ];
        self.record(mecid, names, &r);
        r
    }

    fn reveal_mechanism_weights(
        &mut self,
        hotkey: &[u8; 32],
        netuid: u16,
        mecid: u8,
        uids: &[u16],
        values: &[u16],
        salt: &[u16],
        version_key: u64,
    ) -> Result<(), ChainError> {
        let r = self.reveal_weights_inner(hotkey, netuid, mecid, uids, values, salt, version_key);
        self.record(mecid, ["reveal_weights", "reveal_mechanism_weights"], &r);
        r
    }
}

mod calls;

#[cfg(test)]
mod tests;
