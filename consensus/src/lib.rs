//! Stake-weighted PBFT for Platform, as a pure state machine ([`Replica`]): events and the
//! current time in, actions out. Votes are signed with sr25519 hotkeys over domain-separated
//! canonical bytes, made durable before they are sent ([`Storage`], [`RedbStore`]), and
//! committed on a quorum certificate of strictly more than 2/3 of the power.
//!
//! Invariants: consensus never opens a socket, spawns a thread, reads the wall clock or draws
//! randomness; it never sends a vote it has not made durable, and never signs two different
//! votes for one `(kind, height, view)`, across restarts too.

pub mod codec;
pub mod crypto;
pub mod message;
pub mod quorum;
pub mod replica;
pub mod sim;
pub mod store;
pub mod types;

pub use crypto::{Kind, Signer};
pub use message::{Certificate, Decision, Message, Prepared, Proposal, ViewChange, Vote};
pub use replica::{Action, Config, Event, Replica, Stats};
pub use store::{MemStore, Recorded, RedbStore, Storage, StoreError};
pub use types::{Domain, Hash32, Height, PublicKey, Signature, Validator, ValidatorSet, View};
