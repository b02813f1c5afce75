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
    /// Stake backing the hotkey on this subnet (rao).
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

/// What the validator needs from Bittensor. Implemented by the simulated chain and by the
/// subxt-backed [`subtensor::Subtensor`].
pub trait Chain {
    /// Latest block.
    fn current_block(&self) -> Result<BlockInfo, ChainError>;
    /// A subnet's metagraph at the current block.
    fn metagraph(&self, netuid: u16) -> Result<Metagraph, ChainError>;
    /// A subnet's metagraph at a past (finalised) block: what every validator reads for an
    /// epoch's pinned block. A block not produced yet, or pruned from the node's state, is an
    /// error.
    fn metagraph_at(&self, netuid: u16, block: u64) -> Result<Metagraph, ChainError>;
    /// A subnet's weight-related hyperparameters.
    fn hyperparams(&self, netuid: u16) -> Result<Hyperparams, ChainError>;
    /// The weights the chain holds from neuron `uid` (storage `Weights`): (uid, u16 value)
    /// pairs, empty when it has set none.
    fn weights(&self, netuid: u16, uid: u16) -> Result<Vec<(u16, u16)>, ChainError>;
    /// `set_weights` (commit-reveal off).
    fn set_weights(
        &mut self,
        hotkey: &[u8; 32],
        netuid: u16,
        uids: &[u16],
        values: &[u16],
        version_key: u64,
    ) -> Result<(), ChainError>;
    /// `commit_weights` with a v2 hash (see [`weights::commit_hash`]).
    fn commit_weights(
        &mut self,
        hotkey: &[u8; 32],
        netuid: u16,
        hash: [u8; 32],
    ) -> Result<(), ChainError>;
    /// `commit_timelocked_weights`: a drand-timelocked commit (see [`timelock`]) that the
    /// chain reveals itself at `reveal_round`.
    fn commit_timelocked_weights(
        &mut self,
        hotkey: &[u8; 32],
        netuid: u16,
        commit: &[u8],
        reveal_round: u64,
        commit_reveal_version: u16,
    ) -> Result<(), ChainError>;
    /// `reveal_weights` for an earlier commit.
    fn reveal_weights(
        &mut self,
        hotkey: &[u8; 32],
        netuid: u16,
        uids: &[u16],
        values: &[u16],
        salt: &[u16],
        version_key: u64,
    ) -> Result<(), ChainError>;
}

impl PalletError {
    /// Every named variant.
    pub const ALL: [PalletError; 20] = [
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
    /// Weights are u16 values, max-upscaled so the largest is this.
    pub const WEIGHT_MAX: u16 = u16::MAX;
}
