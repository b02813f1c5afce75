//! What the net thread counts: every verdict and every rejection reason, both as `metrics`
//! series (`platform_net_*`) for the node's exporter and as per-instance counters the
//! application (and tests) can read with [`crate::NetHandle::stats`].

use std::sync::atomic::{AtomicU64, Ordering};

use crate::wire::Topic;

/// Metric names (all `platform_net_*`).
pub mod names {
    /// Gauge: connected peers, by `role` (validator = bound to a hotkey in the validator set,
    /// other).
    pub const PEERS: &str = "platform_net_peers";
    /// Counter: gossip messages by `topic`, `direction` (in, out) and `verdict`.
    pub const MESSAGES: &str = "platform_net_messages_total";
    /// Counter: gossip payload bytes by `topic` and `direction`.
    pub const MESSAGE_BYTES: &str = "platform_net_message_bytes_total";
    /// Counter: refused input by `reason`.
    pub const REJECTED: &str = "platform_net_rejected_total";
    /// Counter: DHT operations by `op` and `outcome`.
    pub const DHT: &str = "platform_net_dht_operations_total";
    /// Counter: request-response exchanges by `kind`, `direction` and `outcome`.
    pub const REQUESTS: &str = "platform_net_requests_total";
    /// Counter: peers disconnected and refused for misbehaviour.
    pub const BANS: &str = "platform_net_bans_total";
    /// Counter: events the application did not take in time (its queue was full).
    pub const EVENTS_DROPPED: &str = "platform_net_events_dropped_total";
    /// Counter: messages gossipsub dropped because a peer was too slow to take them.
    pub const SLOW_PEER_DROPS: &str = "platform_net_slow_peer_drops_total";

    /// Counter: submission batches by `direction` (out, in) and `result` (sealed, opened,
    /// refused, fetch_failed).
    pub const BATCHES: &str = "platform_net_batches_total";
    /// Counter: batch entries by `result`: sealed (sent), delivered, duplicate, or the
    /// reason the entry alone was dropped.
    pub const BATCH_ENTRIES: &str = "platform_net_batch_entries_total";

    /// Counter: bytes of submission batches by `direction` (out: sealed, in: fetched and
    /// opened).
    pub const BATCH_BYTES: &str = "platform_net_batch_bytes_total";

    /// Counter: gossip messages received, by `topic` and `copies`: `all` (every copy, as
    /// gossipsub counts them before it drops duplicates: replays and mesh redundancy) and
    /// `first` (what is left for validation). Duplicates are `all - first`.
    pub const GOSSIP_RECEIVED: &str = "platform_net_gossip_received_total";
    /// Counter: gossip messages gossipsub counted invalid, by `topic`: its own checks (a
    /// message signed by another libp2p key than its source, over the topic's size) and the
    /// ones this node rejected.
    pub const GOSSIP_INVALID: &str = "platform_net_gossip_invalid_total";
    /// Counter: blob requests answered from the application's durable store (the blob was no
    /// longer, or never, in this node's memory).
    pub const BLOBS_FROM_STORE: &str = "platform_net_blobs_from_store_total";

    /// Register help text and units with the installed recorder (if any).
    pub fn describe() {
        use metrics::{Unit, describe_counter, describe_gauge};
        describe_gauge!(PEERS, "Connected peers, by role.");
        describe_counter!(
            MESSAGES,
            "Gossip messages, by topic, direction and verdict."
        );
        describe_counter!(
            MESSAGE_BYTES,
            Unit::Bytes,
            "Gossip payload bytes, by topic and direction."
        );
        describe_counter!(REJECTED, "Refused input, by reason.");
        describe_counter!(DHT, "DHT operations, by op and outcome.");
        describe_counter!(
            REQUESTS,
            "Request-response exchanges, by kind, direction and outcome."
        );
        describe_counter!(BANS, "Peers banned for misbehaviour.");
        describe_counter!(BATCHES, "Submission batches, by direction and result.");
        describe_counter!(
            BATCH_BYTES,
            Unit::Bytes,
            "Bytes of submission batches, by direction."
        );
        describe_counter!(
            BATCH_ENTRIES,
            "Entries of opened submission batches, by result."
        );
        describe_counter!(
            GOSSIP_RECEIVED,
            "Gossip messages received, by topic and copies (all, or first: duplicates dropped)."
        );
        describe_counter!(
            GOSSIP_INVALID,
            "Gossip messages gossipsub counted invalid, by topic."
        );
        describe_counter!(
            BLOBS_FROM_STORE,
            "Blob requests answered from the durable store, not memory."
        );
        describe_counter!(
            EVENTS_DROPPED,
            "Events the application did not take in time."
        );
        describe_counter!(
            SLOW_PEER_DROPS,
            "Messages dropped because a peer was too slow."
        );
    }
}

/// Why input was refused. Every variant is a bounded label value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(usize)]
pub enum Reason {
    /// Bytes that do not decode.
    Malformed,
    /// A signature that does not verify.
    BadSignature,
    /// Larger than the topic's or the protocol's limit.
    Oversized,
    /// Published on a topic that does not match its envelope, or an unknown topic.
    WrongTopic,
    /// A payload the topic's check refused (does not decode as what the topic carries).
    InvalidPayload,
    /// An author not allowed to publish on the topic.
    UnknownAuthor,
    /// Older than the replay window.
    Stale,
    /// Stamped too far in the future.
    Future,
    /// Seen before within the replay window.
    Replay,
    /// Above the peer's rate limit.
    RateLimited,
    /// A PeerId-to-hotkey binding that does not verify.
    BadBinding,
    /// A blob or record whose bytes do not hash to what was asked for.
    HashMismatch,
    /// A submission for a challenge that is not active (application's admission).
    InactiveChallenge,
    /// A submission for an epoch that has ended or been decided (application's admission).
    EpochClosed,
    /// A submission for an epoch that has not started yet (application's admission).
    EpochNotOpen,
    /// The miner already has a counted submission for this challenge and epoch with a
    /// lower id (application's admission: one counted per miner, challenge and epoch).
    NotCounted,
    /// The validator cannot decide now (not caught up with the chain, or its admission
    /// queue is full): try again shortly, or another validator.
    Busy,
    /// On a validator-only topic, a message published by a peer bound to a hotkey other
    /// than its author's (a peer that is not a validator cannot publish there).
    NotValidator,
    /// A peer that has not bound its PeerId to a hotkey, where the unbound-peer policy
    /// does not allow what it asked.
    UnboundPeer,
}

/// Number of [`Reason`] variants.
pub const REASONS: usize = 19;

impl Reason {
    /// Every reason.
    pub const ALL: [Reason; REASONS] = [
        Reason::Malformed,
        Reason::BadSignature,
        Reason::Oversized,
        Reason::WrongTopic,
        Reason::InvalidPayload,
        Reason::UnknownAuthor,
        Reason::Stale,
        Reason::Future,
        Reason::Replay,
        Reason::RateLimited,
        Reason::BadBinding,
        Reason::HashMismatch,
        Reason::InactiveChallenge,
        Reason::EpochClosed,
        Reason::EpochNotOpen,
        Reason::NotCounted,
        Reason::Busy,
        Reason::NotValidator,
        Reason::UnboundPeer,
    ];

    /// The label value.
    pub const fn label(self) -> &'static str {
        match self {
            Reason::Malformed => "malformed",
            Reason::BadSignature => "bad_signature",
            Reason::Oversized => "oversized",
            Reason::WrongTopic => "wrong_topic",
            Reason::InvalidPayload => "invalid_payload",
            Reason::UnknownAuthor => "unknown_author",
            Reason::Stale => "stale",
            Reason::Future => "future",
            Reason::Replay => "replay",
            Reason::RateLimited => "rate_limited",
            Reason::BadBinding => "bad_binding",
            Reason::HashMismatch => "hash_mismatch",
            Reason::InactiveChallenge => "inactive_challenge",
            Reason::EpochClosed => "epoch_closed",
            Reason::EpochNotOpen => "epoch_not_open",
            Reason::NotCounted => "not_counted",
            Reason::Busy => "busy",
            Reason::NotValidator => "not_validator",
            Reason::UnboundPeer => "unbound_peer",
        }
    }

    /// Whether the message itself is invalid (reject: gossipsub scores its sender down
    /// and it costs penalty points: provable abuse) or merely not wanted now (ignore: a
    /// replay, an old message, an author the set does not know, a peer over its rate, and
    /// every honest state the application's admission reports; a rate overrun still costs
    /// a point).
    pub const fn penalises(self) -> bool {
        !matches!(
            self,
            Reason::Stale
                | Reason::Future
                | Reason::Replay
                | Reason::UnknownAuthor
                | Reason::RateLimited
                | Reason::InactiveChallenge
                | Reason::EpochClosed
                | Reason::EpochNotOpen
                | Reason::NotCounted
                | Reason::Busy
                | Reason::NotValidator
                | Reason::UnboundPeer
        )
    }

    /// The reason with this label.
    pub fn from_label(label: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.label() == label)
    }
}

/// A snapshot of one node's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Refusals by reason (indexed like [`Reason::ALL`]).
    pub rejected: [u64; REASONS],
    /// Gossip messages accepted and delivered to the application.
    pub delivered: u64,
    /// Gossip messages this node published.
    pub published: u64,
    /// Peers banned.
    pub bans: u64,
    /// Events dropped because the application's queue was full.
    pub events_dropped: u64,
    /// Submissions accepted from miners over request-response.
    pub submissions_accepted: u64,
    /// Gossip messages received, every copy (all topics; see [`names::GOSSIP_RECEIVED`]).
    pub gossip_copies: u64,
    /// Gossip messages received, first copies only.
    pub gossip_first: u64,
    /// Connected peers, as the net thread last counted them (every housekeeping tick).
    pub peers: u64,
}

impl NetStats {
    /// Refusals for one reason.
    pub fn rejected(&self, reason: Reason) -> u64 {
        self.rejected[reason as usize]
    }
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    rejected: [AtomicU64; REASONS],
    delivered: AtomicU64,
    published: AtomicU64,
    bans: AtomicU64,
    events_dropped: AtomicU64,
    submissions_accepted: AtomicU64,
    gossip_copies: AtomicU64,
    gossip_first: AtomicU64,
    peers: AtomicU64,
}

impl Counters {
    pub fn reject(&self, reason: Reason) {
        self.rejected[reason as usize].fetch_add(1, Ordering::Relaxed);
        metrics::counter!(names::REJECTED, "reason" => reason.label()).increment(1);
    }

    pub fn message(
        &self,
        topic: Topic,
        direction: &'static str,
        verdict: &'static str,
        bytes: usize,
    ) {
        metrics::counter!(names::MESSAGES, "topic" => topic.label(), "direction" => direction, "verdict" => verdict)
            .increment(1);
        metrics::counter!(names::MESSAGE_BYTES, "topic" => topic.label(), "direction" => direction)
            .increment(bytes as u64);
        match (direction, verdict) {
            ("in", "accept") => self.delivered.fetch_add(1, Ordering::Relaxed),
            ("out", "sent") => self.published.fetch_add(1, Ordering::Relaxed),
            _ => 0,
        };
    }

    pub fn ban(&self) {
        self.bans.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(names::BANS).increment(1);
    }

    pub fn event_dropped(&self) {
        self.events_dropped.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(names::EVENTS_DROPPED).increment(1);
    }

    pub fn submission_accepted(&self) {
        self.submissions_accepted.fetch_add(1, Ordering::Relaxed);
    }

    /// Mirror gossipsub's own counts (they only grow).
    pub fn gossip(&self, counts: &GossipCounts) {
        for t in Topic::ALL {
            let i = t as usize - 1;
            metrics::counter!(names::GOSSIP_RECEIVED, "topic" => t.label(), "copies" => "all")
                .absolute(counts.copies[i]);
            metrics::counter!(names::GOSSIP_RECEIVED, "topic" => t.label(), "copies" => "first")
                .absolute(counts.first[i]);
            metrics::counter!(names::GOSSIP_INVALID, "topic" => t.label())
                .absolute(counts.invalid[i]);
        }
        self.gossip_copies
            .store(counts.copies.iter().sum(), Ordering::Relaxed);
        self.gossip_first
            .store(counts.first.iter().sum(), Ordering::Relaxed);
    }

    pub fn peers(&self, connected: usize) {
        self.peers.store(connected as u64, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> NetStats {
        let mut rejected = [0; REASONS];
        for (slot, c) in rejected.iter_mut().zip(&self.rejected) {
            *slot = c.load(Ordering::Relaxed);
        }
        NetStats {
            rejected,
            delivered: self.delivered.load(Ordering::Relaxed),
            published: self.published.load(Ordering::Relaxed),
            bans: self.bans.load(Ordering::Relaxed),
            events_dropped: self.events_dropped.load(Ordering::Relaxed),
            submissions_accepted: self.submissions_accepted.load(Ordering::Relaxed),
            gossip_copies: self.gossip_copies.load(Ordering::Relaxed),
            gossip_first: self.gossip_first.load(Ordering::Relaxed),
            peers: self.peers.load(Ordering::Relaxed),
        }
    }
}

/// gossipsub's own per-topic counts, read from its metrics registry (indexed by topic tag - 1).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct GossipCounts {
    pub copies: [u64; Topic::ALL.len()],
    pub first: [u64; Topic::ALL.len()],
    pub invalid: [u64; Topic::ALL.len()],
}

impl GossipCounts {
    /// Read the series we mirror from gossipsub's exposition text (OpenMetrics, as
    /// `prometheus-client` writes it: `name_total{hash="<topic>"} value`); anything else,
    /// and topics that are not ours, are skipped.
    pub fn parse(text: &str) -> GossipCounts {
        let mut c = GossipCounts::default();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some((name, rest)) = line.split_once('{') else {
                continue;
            };
            let Some((labels, value)) = rest.rsplit_once("} ") else {
                continue;
            };
            let topic = labels
                .strip_prefix("hash=\"")
                .and_then(|l| l.strip_suffix('"'))
                .and_then(Topic::from_name);
            let (Some(topic), Ok(value)) = (topic, value.trim().parse::<u64>()) else {
                continue;
            };
            let slot = match name {
                "topic_msg_recv_counts_unfiltered_total" => &mut c.copies,
                "topic_msg_recv_counts_total" => &mut c.first,
                "invalid_messages_per_topic_total" => &mut c.invalid,
                _ => continue,
            };
            slot[topic as usize - 1] = value;
        }
        c
    }
}

pub(crate) fn dht(op: &'static str, outcome: &'static str) {
    metrics::counter!(names::DHT, "op" => op, "outcome" => outcome).increment(1);
}

pub(crate) fn batch(direction: &'static str, result: &'static str) {
    metrics::counter!(names::BATCHES, "direction" => direction, "result" => result).increment(1);
}

pub(crate) fn batch_bytes(direction: &'static str, n: usize) {
    metrics::counter!(names::BATCH_BYTES, "direction" => direction).increment(n as u64);
}

pub(crate) fn batch_entries(result: &'static str, n: u64) {
    metrics::counter!(names::BATCH_ENTRIES, "result" => result).increment(n);
}

pub(crate) fn request(kind: &'static str, direction: &'static str, outcome: &'static str) {
    metrics::counter!(names::REQUESTS, "kind" => kind, "direction" => direction, "outcome" => outcome)
        .increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gossipsub_counts_are_read_per_topic_and_the_rest_skipped() {
        let text = "# HELP topic_msg_recv_counts_unfiltered Number of gossip messages.\n\
                    # TYPE topic_msg_recv_counts_unfiltered counter\n\
                    topic_msg_recv_counts_unfiltered_total{hash=\"/platform/consensus/1\"} 12\n\
                    topic_msg_recv_counts_unfiltered_total{hash=\"/someone/else/1\"} 99\n\
                    topic_msg_recv_counts_total{hash=\"/platform/consensus/1\"} 5\n\
                    topic_msg_recv_counts_total{hash=\"/platform/batches/1\"} 2\n\
                    invalid_messages_per_topic_total{hash=\"/platform/submissions/1\"} 3\n\
                    mesh_peer_counts{hash=\"/platform/consensus/1\"} 4\n\
                    topic_msg_recv_counts_total{hash=\"/platform/evaluations/1\"} garbage\n\
                    # EOF\n";
        let c = GossipCounts::parse(text);
        let at = |t: Topic| t as usize - 1;
        assert_eq!(c.copies[at(Topic::Consensus)], 12);
        assert_eq!(c.first[at(Topic::Consensus)], 5);
        assert_eq!(c.first[at(Topic::Batches)], 2);
        assert_eq!(c.invalid[at(Topic::Submissions)], 3);
        assert_eq!(c.first[at(Topic::Evaluations)], 0, "an unreadable value");
        assert_eq!(
            c.copies.iter().sum::<u64>(),
            12,
            "a topic not ours is skipped"
        );
        assert_eq!(
            GossipCounts::parse("garbage{\n}{ 1"),
            GossipCounts::default()
        );
    }

    #[test]
    fn reasons_are_indexed_in_order_and_labelled_uniquely() {
        for (i, r) in Reason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
        }
        let mut labels: Vec<_> = Reason::ALL.iter().map(|r| r.label()).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), Reason::ALL.len());
    }
}
