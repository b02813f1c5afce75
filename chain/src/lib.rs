//! Platform's link to Bittensor.
//!
//! - [`Chain`]: what a validator needs (block, metagraph at a block, weight hyperparameters,
//!   `set_weights`, hash commit-reveal, timelocked commits), with typed pallet errors.
//! - [`subtensor::Subtensor`]: subxt 0.51 against a node URL, dynamic calls and storage
//!   reads from the node's own metadata, reconnecting RPC, dispatch errors by pallet name.
//! - [`sim::SimChain`]: a deterministic simulated subtensor with the pallet's weight checks.
//! - [`extrinsic`]: weight calls and offline-signed extrinsics; [`timelock`]: drand-timelocked
//!   commits; [`weights`]: SDK-exact clipping and normalisation, the v2 commit hash;
//!   [`submit::WeightSubmitter`]: set / commit / reveal as the subnet requires, pending hash
//!   commits durable in redb; [`yuma`]: a preview of the chain's incentive computation.
//!
//! Invariants: chain never decides weights, it submits what consensus committed; nothing
//! outside this crate sees a subxt type.

pub mod extrinsic;
pub mod schedule;
pub mod sim;
pub mod submit;
pub mod subtensor;
pub mod timelock;
pub mod weights;
pub mod yuma;

/// A block number and its hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockInfo {
    /// Block number.
    pub number: u64,
    /// Block hash.
    pub hash: [u8; 32],
}

/// One neuron of a subnet's metagraph.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Neuron {
    /// Uid in the subnet.
    pub uid: u16,
    /// Hotkey (sr25519 public key).
    pub hotkey: [u8; 32],
    /// Stake backing the hotkey on this subnet (rao), as the metagraph's
    /// [`Metagraph::stake_kind`] measures it.
    pub stake: u64,
    /// May set weights on others.
    pub validator_permit: bool,
}

/// A subnet's neurons as of a block: every validator derives the same set from it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Metagraph {
    /// Subnet.
    pub netuid: u16,
    /// The block it was read at.
    pub block: BlockInfo,
    /// Neurons in uid order.
    pub neurons: Vec<Neuron>,
    /// What the neurons' stakes measure.
    pub stake_kind: StakeKind,
}

/// What a metagraph's stakes measure. Stakes weigh validators' votes, so every validator of a
/// subnet must read the same kind; the node's roster digest names it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StakeKind {
    /// `TotalHotkeyAlpha`: the alpha staked on the hotkey on the subnet (storage reads, and the
    /// simulated chain, which has no child hotkeys).
    #[default]
    HotkeyAlpha,
    /// The chain's stake weight (`alpha_stake` of `SubnetInfoRuntimeApi::get_metagraph`): the
    /// hotkey's alpha with what parent hotkeys lend it and less what it lends its children,
    /// what the chain itself weighs validators by. Equal to `HotkeyAlpha` without child
    /// hotkeys.
    StakeWeight,
}

impl StakeKind {
    /// A short name (status, logs).
    pub fn as_str(self) -> &'static str {
        match self {
            StakeKind::HotkeyAlpha => "hotkey_alpha",
            StakeKind::StakeWeight => "stake_weight",
        }
    }
}

/// Hyperparameters that matter for setting weights.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hyperparams {
    /// Blocks per epoch (minus one, as the pallet counts).
    pub tempo: u16,
    /// Weights must be committed then revealed.
    pub commit_reveal_enabled: bool,
    /// Epochs between a commit and its reveal.
    pub commit_reveal_period: u64,
    /// Minimum `version_key` accepted (0: any).
    pub weights_version_key: u64,
    /// Blocks between two weight updates of one neuron.
    pub weights_rate_limit: u64,
    /// Fewest uids in a weight vector (self-weights excepted).
    pub min_allowed_weights: u16,
    /// Largest normalised weight (65535: no limit).
    pub max_weight_limit: u16,
}

/// SubtensorModule errors, by the pallet's own names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PalletError {
    /// `SubnetNotExists`
    #[error("SubnetNotExists")]
    SubnetNotExists,
    /// `HotKeyNotRegisteredInSubNet`
    #[error("HotKeyNotRegisteredInSubNet")]
    HotKeyNotRegisteredInSubNet,
    /// `NotEnoughStakeToSetWeights`
    #[error("NotEnoughStakeToSetWeights")]
    NotEnoughStakeToSetWeights,
    /// `IncorrectWeightVersionKey`
    #[error("IncorrectWeightVersionKey")]
    IncorrectWeightVersionKey,
    /// `SettingWeightsTooFast`
    #[error("SettingWeightsTooFast")]
    SettingWeightsTooFast,
    /// `NeuronNoValidatorPermit`
    #[error("NeuronNoValidatorPermit")]
    NeuronNoValidatorPermit,
    /// `DuplicateUids`
    #[error("DuplicateUids")]
    DuplicateUids,
    /// `UidVecContainInvalidOne`
    #[error("UidVecContainInvalidOne")]
    UidVecContainInvalidOne,
    /// `UidsLengthExceedUidsInSubNet`
    #[error("UidsLengthExceedUidsInSubNet")]
    UidsLengthExceedUidsInSubNet,
    /// `WeightVecNotEqualSize`
    #[error("WeightVecNotEqualSize")]
    WeightVecNotEqualSize,
    /// `WeightVecLengthIsLow`
    #[error("WeightVecLengthIsLow")]
    WeightVecLengthIsLow,
    /// `MaxWeightExceeded`
    #[error("MaxWeightExceeded")]
    MaxWeightExceeded,
    /// `CommitRevealEnabled`
    #[error("CommitRevealEnabled")]
    CommitRevealEnabled,
    /// `CommitRevealDisabled`
    #[error("CommitRevealDisabled")]
    CommitRevealDisabled,
    /// `NoWeightsCommitFound`
    #[error("NoWeightsCommitFound")]
    NoWeightsCommitFound,
    /// `InvalidRevealCommitHashNotMatch`
    #[error("InvalidRevealCommitHashNotMatch")]
    InvalidRevealCommitHashNotMatch,
    /// `RevealTooEarly`
    #[error("RevealTooEarly")]
    RevealTooEarly,
    /// `ExpiredWeightCommit`
    #[error("ExpiredWeightCommit")]
    ExpiredWeightCommit,
    /// `TooManyUnrevealedCommits`
    #[error("TooManyUnrevealedCommits")]
    TooManyUnrevealedCommits,
    /// `CommittingWeightsTooFast`
    #[error("CommittingWeightsTooFast")]
    CommittingWeightsTooFast,
    /// `MechanismDoesNotExist`
    #[error("MechanismDoesNotExist")]
    MechanismDoesNotExist,
    /// Another pallet error, by name.
    #[error("{0}")]
    Other(&'static str),
}

/// Why a chain call failed.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChainError {
    /// The pallet rejected the call.
    #[error("SubtensorModule::{0}")]
    Pallet(#[from] PalletError),
    /// The connection to the node failed (real client only).
    #[error("chain connection: {0}")]
    Connection(String),
    /// Metadata that does not decode or lacks what is needed.
    #[error("chain metadata: {0}")]
    Metadata(String),
    /// A call or extrinsic that could not be encoded.
    #[error("encoding a call: {0}")]
    Encode(String),
    /// A key that could not be read.
    #[error("key: {0}")]
    Key(String),
    /// The local pending-commit store failed.
    #[error("pending-commit store: {0}")]
    Store(String),
    /// The node answered with bytes that do not decode as what was asked for.
    #[error("malformed answer: {0}")]
    Malformed(String),
    /// The chain refused the extrinsic with an error this crate has no variant for
    /// (`Pallet::Name`).
    #[error("dispatch error: {0}")]
    Dispatch(String),
    /// No answer in time (the node is up but slow, or the extrinsic was not finalised).
    #[error("timed out: {0}")]
    Timeout(String),
    /// The node's transaction pool refused the extrinsic before it was included (invalid:
    /// a stale nonce, a transaction extension's check, too low a priority; or dropped).
    #[error("the transaction pool refused it: {0}")]
    Rejected(String),
}

impl ChainError {
    /// A label for metrics, one per kind of failure.
    pub fn label(&self) -> &'static str {
        match self {
            ChainError::Pallet(_) | ChainError::Dispatch(_) => "refused",
            ChainError::Connection(_) => "connection",
            ChainError::Timeout(_) => "timeout",
            ChainError::Rejected(_) => "rejected",
            ChainError::Metadata(_) => "metadata",
            ChainError::Encode(_) => "encode",
            ChainError::Key(_) => "key",
            ChainError::Store(_) => "store",
            ChainError::Malformed(_) => "malformed",
        }
    }
}

/// The pallet's epoch number of `block` on subnet `netuid`: `(block + netuid + 1) /
/// (tempo + 1)`, as commit-reveal windows count epochs.
pub fn epoch_index(netuid: u16, tempo: u16, block: u64) -> u64 {
    (block + u64::from(netuid) + 1) / (u64::from(tempo) + 1)
}

/// The storage index of mechanism `mecid` of subnet `netuid` (`mecid × 4096 + netuid`, as
/// the pallet keys `Weights`, `LastUpdate` and weight commits): mechanism 0's is the netuid
/// itself. `None` where it does not fit the pallet's `u16` (a netuid ≥ 4096, or mecid ≥ 16).
pub fn storage_index(netuid: u16, mecid: u8) -> Option<u16> {
    if netuid >= pallet::GLOBAL_MAX_SUBNET_COUNT {
        return None;
    }
    u16::from(mecid)
        .checked_mul(pallet::GLOBAL_MAX_SUBNET_COUNT)?
        .checked_add(netuid)
}

/// What the validator needs from Bittensor. Implemented by the simulated chain and by the
/// subxt-backed [`subtensor::Subtensor`].
///
/// Weights go to one of a subnet's incentive mechanisms (`mecid`; mechanism 0 is the
/// subnet's original one, which runtimes without mechanisms have alone). The plain forms
/// (`set_weights`, …) are mechanism 0's; an implementation sends mechanism 0's weights with
/// the original calls, so runtimes without mechanism calls keep working.
pub trait Chain {
    /// Latest block.
    fn current_block(&self) -> Result<BlockInfo, ChainError>;
    /// A subnet's metagraph at the current block.
    fn metagraph(&self, netuid: u16) -> Result<Metagraph, ChainError>;
    /// A subnet's metagraph at a past (finalised) block: what every validator reads for an
    /// epoch's pinned block. A block not produced yet, or pruned from the node's state, is an
    /// error.
    fn metagraph_at(&self, netuid: u16, block: u64) -> Result<Metagraph, ChainError>;
    /// The uid a hotkey holds on a subnet at the current block (`None`: not registered).
    /// The default reads the whole metagraph; an implementation that can look one hotkey
    /// up (subtensor's `Uids` storage) should.
    fn uid_of(&self, netuid: u16, hotkey: &[u8; 32]) -> Result<Option<u16>, ChainError> {
        Ok(self
            .metagraph(netuid)?
            .neurons
            .iter()
            .find(|n| n.hotkey == *hotkey)
            .map(|n| n.uid))
    }
    /// A subnet's weight-related hyperparameters.
    fn hyperparams(&self, netuid: u16) -> Result<Hyperparams, ChainError>;
    /// How many incentive mechanisms the subnet has (`MechanismCountCurrent`; 1 on runtimes
    /// without mechanisms). Mechanisms are numbered `0..count`.
    fn mechanism_count(&self, netuid: u16) -> Result<u8, ChainError>;
    /// The weights the chain holds from neuron `uid` for mechanism `mecid` (storage
    /// `Weights` at the mechanism's storage index): (uid, u16 value) pairs, empty when it
    /// has set none.
    fn mechanism_weights(
        &self,
        netuid: u16,
        mecid: u8,
        uid: u16,
    ) -> Result<Vec<(u16, u16)>, ChainError>;
    /// `set_mechanism_weights` (`set_weights` for mechanism 0); commit-reveal off.
    fn set_mechanism_weights(
        &mut self,
        hotkey: &[u8; 32],
        netuid: u16,
        mecid: u8,
        uids: &[u16],
        values: &[u16],
        version_key: u64,
    ) -> Result<(), ChainError>;
    /// `commit_mechanism_weights` (`commit_weights` for mechanism 0) with a v2 hash over the
    /// mechanism's storage index (see [`weights::commit_hash`]).
    fn commit_mechanism_weights(
        &mut self,
        hotkey: &[u8; 32],
        netuid: u16,
        mecid: u8,
        hash: [u8; 32],
    ) -> Result<(), ChainError>;
    /// `commit_timelocked_mechanism_weights` (`commit_timelocked_weights` for mechanism 0):
    /// a drand-timelocked commit (see [`timelock`]) that the chain reveals itself at
    /// `reveal_round`.
    fn commit_timelocked_mechanism_weights(
        &mut self,
        hotkey: &[u8; 32],
        netuid: u16,
        mecid: u8,
        commit: &[u8],
        reveal_round: u64,
        commit_reveal_version: u16,
    ) -> Result<(), ChainError>;
    /// `reveal_mechanism_weights` (`reveal_weights` for mechanism 0) for an earlier commit.
    #[allow(clippy::too_many_arguments)]
    fn reveal_mechanism_weights(
        &mut self,
        hotkey: &[u8; 32],
        netuid: u16,
        mecid: u8,
        uids: &[u16],
        values: &[u16],
        salt: &[u16],
        version_key: u64,
    ) -> Result<(), ChainError>;

    /// The subnet's epoch state at the head, from which the block that reveals a timelocked
    /// commit follows ([`schedule::EpochSchedule`]). By default the schedule of a runtime
    /// without the stateful epoch model, from the tempo and the head.
    fn epoch_schedule(&self, netuid: u16) -> Result<schedule::EpochSchedule, ChainError> {
        let tempo = self.hyperparams(netuid)?.tempo;
        let head = self.current_block()?.number;
        Ok(schedule::EpochSchedule::legacy(netuid, tempo, head))
    }

    /// Mechanism 0's weights from `uid`.
    fn weights(&self, netuid: u16, uid: u16) -> Result<Vec<(u16, u16)>, ChainError> {
        self.mechanism_weights(netuid, 0, uid)
    }
    /// `set_weights` (mechanism 0; commit-reveal off).
    fn set_weights(
        &mut self,
        hotkey: &[u8; 32],
        netuid: u16,
        uids: &[u16],
        values: &[u16],
        version_key: u64,
    ) -> Result<(), ChainError> {
        self.set_mechanism_weights(hotkey, netuid, 0, uids, values, version_key)
    }
    /// `commit_weights` (mechanism 0) with a v2 hash.
    fn commit_weights(
        &mut self,
        hotkey: &[u8; 32],
        netuid: u16,
        hash: [u8; 32],
    ) -> Result<(), ChainError> {
        self.commit_mechanism_weights(hotkey, netuid, 0, hash)
    }
    /// `commit_timelocked_weights` (mechanism 0).
    fn commit_timelocked_weights(
        &mut self,
        hotkey: &[u8; 32],
        netuid: u16,
        commit: &[u8],
        reveal_round: u64,
        commit_reveal_version: u16,
    ) -> Result<(), ChainError> {
        self.commit_timelocked_mechanism_weights(
            hotkey,
            netuid,
            0,
            commit,
            reveal_round,
            commit_reveal_version,
        )
    }
    /// `reveal_weights` (mechanism 0).
    fn reveal_weights(
        &mut self,
        hotkey: &[u8; 32],
        netuid: u16,
        uids: &[u16],
        values: &[u16],
        salt: &[u16],
        version_key: u64,
    ) -> Result<(), ChainError> {
        self.reveal_mechanism_weights(hotkey, netuid, 0, uids, values, salt, version_key)
    }
}

impl PalletError {
    /// Every named variant.
    pub const ALL: [PalletError; 21] = [
        PalletError::SubnetNotExists,
        PalletError::HotKeyNotRegisteredInSubNet,
        PalletError::NotEnoughStakeToSetWeights,
        PalletError::IncorrectWeightVersionKey,
        PalletError::SettingWeightsTooFast,
        PalletError::NeuronNoValidatorPermit,
        PalletError::DuplicateUids,
        PalletError::UidVecContainInvalidOne,
        PalletError::UidsLengthExceedUidsInSubNet,
        PalletError::WeightVecNotEqualSize,
        PalletError::WeightVecLengthIsLow,
        PalletError::MaxWeightExceeded,
        PalletError::CommitRevealEnabled,
        PalletError::CommitRevealDisabled,
        PalletError::NoWeightsCommitFound,
        PalletError::InvalidRevealCommitHashNotMatch,
        PalletError::RevealTooEarly,
        PalletError::ExpiredWeightCommit,
        PalletError::TooManyUnrevealedCommits,
        PalletError::CommittingWeightsTooFast,
        PalletError::MechanismDoesNotExist,
    ];

    /// The variant with the pallet's error name, if this crate names it.
    pub fn from_name(name: &str) -> Option<PalletError> {
        PalletError::ALL.into_iter().find(|p| p.to_string() == name)
    }
}

/// SubtensorModule pallet facts from the runtime metadata (see `../shared/chain/README.md`).
pub mod pallet {
    /// Pallet index of SubtensorModule.
    pub const INDEX: u8 = 7;
    /// Call index of `set_weights`.
    pub const SET_WEIGHTS: u8 = 0;
    /// Call index of `commit_weights`.
    pub const COMMIT_WEIGHTS: u8 = 96;
    /// Call index of `reveal_weights`.
    pub const REVEAL_WEIGHTS: u8 = 97;
    /// Call index of `commit_timelocked_weights`.
    pub const COMMIT_TIMELOCKED_WEIGHTS: u8 = 113;
    /// Call index of `commit_mechanism_weights`.
    pub const COMMIT_MECHANISM_WEIGHTS: u8 = 115;
    /// Call index of `reveal_mechanism_weights`.
    pub const REVEAL_MECHANISM_WEIGHTS: u8 = 116;
    /// Call index of `commit_timelocked_mechanism_weights`.
    pub const COMMIT_TIMELOCKED_MECHANISM_WEIGHTS: u8 = 118;
    /// Call index of `set_mechanism_weights`.
    pub const SET_MECHANISM_WEIGHTS: u8 = 119;
    /// Subnets the pallet's storage indexes leave room for: mechanism `m` of subnet `n` is
    /// stored at `m × 4096 + n`.
    pub const GLOBAL_MAX_SUBNET_COUNT: u16 = 4096;
    /// Weights are u16 values, max-upscaled so the largest is this.
    pub const WEIGHT_MAX: u16 = u16::MAX;
}
