//! Platform's libp2p mesh (issue #4 builds it: a swarm on its own thread, validated
//! gossipsub, PeerId-to-hotkey binding, Kademlia records and module transfer).
//!
//! Invariants: no libp2p type appears in this crate's public API; the rest of the system sees
//! typed, verified messages on bounded channels; net carries messages, it never decides.
//!
//! Today it holds the gossip topic names, which are part of the wire contract.

/// Gossipsub topics, versioned: a change of encoding gets a new topic name.
pub mod topics {
    /// Miners' signed submissions.
    pub const SUBMISSIONS: &str = "/platform/submissions/1";
    /// Validators' signed evaluation-result batches.
    pub const EVALUATIONS: &str = "/platform/evaluations/1";
    /// PBFT proposals, votes and view changes.
    pub const CONSENSUS: &str = "/platform/consensus/1";
    /// Owner-signed challenge lifecycle announcements.
    pub const CHALLENGES: &str = "/platform/challenges/1";

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
