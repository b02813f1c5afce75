//! Platform's libp2p mesh: a swarm on its own OS thread carrying submissions, evaluation
//! results, consensus messages and challenge modules between validators and from miners.
//!
//! - TCP + noise + yamux and QUIC; identify; ping; connection limits; a block list.
//! - gossipsub with application validation before forwarding: every message is a signed
//!   [`Envelope`] checked for size, structure, topic, freshness, replay, author, signature
//!   and payload; accept, reject (the peer is penalised) or ignore, with a counted reason.
//! - PeerId-to-hotkey binding: each side sends a record signed by its hotkey naming its
//!   PeerId on connection; a record that does not verify gets the peer refused.
//! - Submissions a validator accepts travel to its peers in batches ([`batch`]): a signed
//!   announcement on gossip, the batch fetched once by hash, opened and its signatures
//!   verified in bulk on the blocking pool, never on the net thread.
//! - Kademlia records (submissions, evaluation batches, checkpoints) keyed by content hash,
//!   and blobs (modules, large bodies) fetched by request-response from providers, hashes
//!   verified.
//!
//! Invariants: no libp2p type appears in this crate's public API; the rest of the system
//! sees typed, verified messages on bounded channels; the net thread never blocks on the
//! application (a full event queue drops and counts); net carries messages, it never decides.

mod api;
pub mod batch;
mod codec;
pub mod config;
mod kadstore;
pub mod miner;
mod node;
mod protect;
pub mod stats;
mod verify;
pub mod wire;

pub use api::{
    BlobSource, Delivery, Hostile, Identity, Net, NetError, NetEvent, NetHandle, Options,
    PayloadCheck, PeerInfo, Refused, peer_id_of,
};
pub use config::{ConfigError, NetConfig, TopicLimits, UnboundPeers, ValidNetConfig};
pub use stats::{NetStats, Reason};
pub use wire::{
    Envelope, Hash32, Hotkey, RecordKind, Scheme, Submission, SubmitAck, Topic, WireError,
};

/// Gossipsub topic names, versioned: a change of encoding gets a new topic name.
pub mod topics {
    use crate::wire::Topic;

    /// Miners' signed submissions.
    pub const SUBMISSIONS: &str = Topic::Submissions.name();
    /// Validators' signed evaluation-result batches.
    pub const EVALUATIONS: &str = Topic::Evaluations.name();
    /// PBFT proposals, votes and view changes.
    pub const CONSENSUS: &str = Topic::Consensus.name();
    /// Owner-signed challenge lifecycle announcements.
    pub const CHALLENGES: &str = Topic::Challenges.name();

    /// Every topic a validator subscribes to.
    pub const ALL: [&str; 4] = [SUBMISSIONS, EVALUATIONS, CONSENSUS, CHALLENGES];
}

#[cfg(test)]
mod tests {
    #[test]
    fn topics_are_distinct_and_versioned() {
        let mut t = super::topics::ALL.to_vec();
        t.sort_unstable();
        t.dedup();
        assert_eq!(t.len(), 4);
        assert!(
            super::topics::ALL
                .iter()
                .all(|t| t.starts_with("/platform/") && t.ends_with("/1"))
        );
    }
}
