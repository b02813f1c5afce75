//! The Platform validator node (issue #6 builds it out): the deterministic epoch result and,
//! as they arrive, the pieces that wire engine, net, consensus, chain and store together.
//!
//! Invariants: the epoch result depends only on the agreed inputs (never on arrival order,
//! core count or local time); integer arithmetic only in anything agreed.

pub mod app;
pub mod audit;
pub mod boot;
pub mod chainserver;
pub mod chainsvc;
pub mod cli;
pub mod client;
pub mod config;
pub mod devnet;
pub mod epoch;
pub mod exporter;
pub mod heap;
pub mod http;
mod keys;
pub mod machine;
pub mod metrics;
pub mod msg;
pub mod registry;
mod shell;
pub mod sim;
pub mod snapshot;
pub mod status;
pub mod store;
pub mod verify;
