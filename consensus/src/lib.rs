//! Stake-weighted PBFT for Platform (issue #3 builds the replica state machine, crash-safe
//! votes in redb and the seeded fault simulation). Today it holds the quorum rule every
//! other part of the protocol is built on.
//!
//! Invariants: consensus never opens a socket, spawns a thread, reads the wall clock or draws
//! randomness; time and messages come in as events.

pub mod quorum;
