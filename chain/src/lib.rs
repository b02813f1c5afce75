//! Platform's link to Bittensor (issue #5 builds it: a `Chain` trait, the subxt-backed
//! `subtensor` client and the in-process simulated chain).
//!
//! Invariants: chain never decides weights, it submits what consensus committed; nothing
//! outside this crate sees a subxt type.
//!
//! Today it holds the facts of the SubtensorModule pallet, SDK-exact weight normalisation and
//! the commit-reveal v2 commit hash.

pub mod weights;

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
