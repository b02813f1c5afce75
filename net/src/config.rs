//! Net configuration: typed, defaulted, unknown keys refused, values and relations checked.

use std::time::Duration;

use libp2p::Multiaddr;
use serde::{Deserialize, Serialize};

use crate::wire::{ENVELOPE_OVERHEAD, Topic};

/// Settings of the libp2p mesh (the `[net]` table of a node's config).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetConfig {
    /// Multiaddrs to listen on (TCP `/ip4/A/tcp/P`, QUIC `/ip4/A/udp/P/quic-v1`).
    pub listen: Vec<String>,
    /// Peers to dial at start and to redial when disconnected: multiaddrs ending in
    /// `/p2p/PEER_ID`.
    pub bootstrap: Vec<String>,
    /// Largest gossip message accepted or sent, envelope included.
    pub max_message_bytes: usize,
    /// Largest payload per topic (each at most `max_message_bytes` less the envelope).
    pub max_payload_bytes: TopicLimits,
    /// Largest blob (module, submission body) sent or fetched by request-response.
    pub max_blob_bytes: usize,
    /// Memory for blobs this node serves; the oldest are evicted beyond it (the hot working
    /// set: what `Options::blobs` holds durably is still served, from there, once evicted).
    pub blob_cache_bytes: usize,
    /// Largest DHT record value.
    pub max_record_bytes: usize,
    /// Most DHT records stored for other peers.
    pub max_records: usize,
    /// A single request-response exchange gives up after this.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// A blob fetch (finding providers, then trying them) gives up after this.
    #[serde(with = "humantime_serde")]
    pub fetch_timeout: Duration,
    /// Connections with no open streams close after this.
    #[serde(with = "humantime_serde")]
    pub idle_connection_timeout: Duration,
    /// gossipsub heartbeat.
    #[serde(with = "humantime_serde")]
    pub heartbeat: Duration,
    /// gossipsub target mesh degree, and its bounds (sized for validator counts: a subnet
    /// has at most 64 permits).
    pub mesh_n: usize,
    /// Lower bound of the mesh degree.
    pub mesh_n_low: usize,
    /// Upper bound of the mesh degree.
    pub mesh_n_high: usize,
    /// Minimum outbound peers in the mesh (at most `mesh_n_low` and `mesh_n / 2`).
    pub mesh_outbound_min: usize,
    /// Most established connections in all.
    pub max_connections: u32,
    /// Most established connections per peer.
    pub max_connections_per_peer: u32,
    /// Most connections being set up at once, incoming.
    pub max_pending_incoming: u32,
    /// Gossip messages per second each peer may send us (token bucket rate).
    pub peer_message_rate: f64,
    /// Burst size of that bucket.
    pub peer_message_burst: f64,
    /// Requests per second each peer may send us.
    pub peer_request_rate: f64,
    /// Burst size of that bucket.
    pub peer_request_burst: f64,
    /// Penalty points at which a peer is disconnected and refused (an invalid message
    /// costs 10, a rate-limited one 1; points decay by half every minute).
    pub ban_threshold: f64,
    /// How long a banned peer is refused.
    #[serde(with = "humantime_serde")]
    pub ban_duration: Duration,
    /// Envelopes older than this are ignored (and ids are remembered this long: replays).
    #[serde(with = "humantime_serde")]
    pub max_message_age: Duration,
    /// Envelopes stamped further than this in the future are ignored.
    #[serde(with = "humantime_serde")]
    pub max_clock_skew: Duration,
    /// Capacity of the event channel to the application; beyond it events are dropped and
    /// counted, the net thread never blocks.
    pub event_queue: usize,
    /// Capacity of the command channel from the application.
    pub command_queue: usize,
    /// Submissions a validator accepts from miners are bundled over this window into one
    /// signed, content-addressed batch that peers fetch once (`0s`: gossip each one).
    #[serde(with = "humantime_serde")]
    pub batch_window: Duration,
    /// A batch is sealed early once it holds this many submissions.
    pub batch_max_entries: usize,
    /// A batch is sealed early once it holds this many bytes (at most `max_blob_bytes`).
    pub batch_max_bytes: usize,
    /// Batches fetched but not yet verified at most; announcements beyond wait.
    pub batch_verify_queue: usize,
    /// Memory for the batches this node serves, apart from `blob_cache_bytes`; the oldest
    /// are evicted beyond it.
    pub batch_cache_bytes: usize,
    /// What a peer that has not bound its PeerId to a hotkey (no valid hello) may do; see
    /// [`UnboundPeers`].
    pub unbound_peers: UnboundPeers,
    /// Under `unbound_peers = "refuse"`, a connection whose peer has not bound itself by
    /// then is closed.
    #[serde(with = "humantime_serde")]
    pub hello_timeout: Duration,
}

/// The policy for peers that have not bound their PeerId to a hotkey with a valid hello
/// (miners that only submit, crawlers, anything else that connects). Bound peers are not
/// affected: a bound peer whose hotkey is not in the validator set may still not publish on
/// validator-only topics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnboundPeers {
    /// Treated as any peer that is not a validator: it may submit, fetch blobs and gossip
    /// (public ingress; libp2p miners need not bind).
    #[default]
    Open,
    /// It may submit and fetch blobs; its gossip is ignored (`unbound_peer`, no penalty).
    RequestsOnly,
    /// It may only say hello: a submission is answered `unbound_peer`, a blob request
    /// "not here", gossip ignored, and the connection is closed after `hello_timeout`
    /// without a valid binding (a validators-and-bound-clients mesh; miners use HTTP or
    /// bind their own hotkey).
    Refuse,
}

impl UnboundPeers {
    /// Whether an unbound peer's gossip is taken.
    pub const fn gossip(self) -> bool {
        matches!(self, UnboundPeers::Open)
    }

    /// Whether an unbound peer's submissions and blob requests are served.
    pub const fn requests(self) -> bool {
        !matches!(self, UnboundPeers::Refuse)
    }
}

/// Largest payload per topic.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TopicLimits {
    /// Miner submissions (larger bodies travel as blobs, by hash).
    pub submissions: usize,
    /// Evaluation batches.
    pub evaluations: usize,
    /// Consensus messages.
    pub consensus: usize,
    /// Challenge announcements.
    pub challenges: usize,
    /// Submission-batch announcements (the batches themselves travel as blobs).
    pub batches: usize,
    /// Validators' load notes.
    pub load: usize,
}

impl Default for TopicLimits {
    fn default() -> Self {
        TopicLimits {
            submissions: 64 * 1024,
            evaluations: 128 * 1024,
            consensus: 128 * 1024,
            challenges: 16 * 1024,
            batches: 1024,
            load: 256,
        }
    }
}

impl TopicLimits {
    /// The limit of one topic.
    pub fn of(&self, topic: Topic) -> usize {
        match topic {
            Topic::Submissions => self.submissions,
            Topic::Evaluations => self.evaluations,
            Topic::Consensus => self.consensus,
            Topic::Challenges => self.challenges,
            Topic::Batches => self.batches,
            Topic::Load => self.load,
        }
    }
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            listen: vec![
                "/ip4/0.0.0.0/tcp/30333".into(),
                "/ip4/0.0.0.0/udp/30333/quic-v1".into(),
            ],
            bootstrap: Vec::new(),
            max_message_bytes: 256 * 1024,
            max_payload_bytes: TopicLimits::default(),
            max_blob_bytes: 16 * 1024 * 1024,
            blob_cache_bytes: 32 * 1024 * 1024,
            max_record_bytes: 64 * 1024,
            max_records: 8192,
            request_timeout: Duration::from_secs(10),
            fetch_timeout: Duration::from_secs(30),
            idle_connection_timeout: Duration::from_secs(300),
            heartbeat: Duration::from_millis(700),
            mesh_n: 6,
            mesh_n_low: 2,
            mesh_n_high: 12,
            mesh_outbound_min: 1,
            max_connections: 256,
            max_connections_per_peer: 2,
            max_pending_incoming: 64,
            peer_message_rate: 1000.0,
            peer_message_burst: 5000.0,
            peer_request_rate: 50.0,
            peer_request_burst: 200.0,
            ban_threshold: 100.0,
            ban_duration: Duration::from_secs(600),
            max_message_age: Duration::from_secs(600),
            max_clock_skew: Duration::from_secs(30),
            event_queue: 16 * 1024,
            command_queue: 4096,
            batch_window: Duration::from_millis(50),
            batch_max_entries: 4096,
            batch_max_bytes: 1024 * 1024,
            batch_verify_queue: 64,
            batch_cache_bytes: 16 * 1024 * 1024,
            unbound_peers: UnboundPeers::Open,
            hello_timeout: Duration::from_secs(10),
        }
    }
}

/// A bad net setting, named.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("net.{field}: {problem}")]
pub struct ConfigError {
    /// The setting.
    pub field: String,
    /// What is wrong with it.
    pub problem: String,
}

fn bad(field: &str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        field: field.into(),
        problem: problem.into(),
    }
}

/// A checked [`NetConfig`], addresses parsed.
#[derive(Clone, Debug)]
pub struct ValidNetConfig {
    pub(crate) config: NetConfig,
    pub(crate) listen: Vec<Multiaddr>,
    pub(crate) bootstrap: Vec<Multiaddr>,
}

impl ValidNetConfig {
    /// The settings.
    pub fn config(&self) -> &NetConfig {
        &self.config
    }
}

impl NetConfig {
    /// Settings for tests and devnets on loopback: ephemeral TCP port, fast heartbeat.
    pub fn loopback() -> NetConfig {
        NetConfig {
            listen: vec!["/ip4/127.0.0.1/tcp/0".into()],
            heartbeat: Duration::from_millis(100),
            ..NetConfig::default()
        }
    }

    /// Check every value and relation.
    pub fn validate(self) -> Result<ValidNetConfig, ConfigError> {
        let parse = |field: &str, list: &[String]| -> Result<Vec<Multiaddr>, ConfigError> {
            list.iter()
                .map(|a| {
                    a.parse::<Multiaddr>()
                        .map_err(|e| bad(field, format!("{a:?} is not a multiaddr: {e}")))
                })
                .collect()
        };
        if self.listen.is_empty() {
            return Err(bad("listen", "at least one address is needed"));
        }
        let listen = parse("listen", &self.listen)?;
        let bootstrap = parse("bootstrap", &self.bootstrap)?;
        for (a, text) in bootstrap.iter().zip(&self.bootstrap) {
            if !matches!(a.iter().last(), Some(libp2p::multiaddr::Protocol::P2p(_))) {
                return Err(bad(
                    "bootstrap",
                    format!("{text:?} must end in /p2p/PEER_ID"),
                ));
            }
        }
        let c = &self;
        if !(1024..=16 * 1024 * 1024).contains(&c.max_message_bytes) {
            return Err(bad("max_message_bytes", "must be between 1 KiB and 16 MiB"));
        }
        for t in Topic::ALL {
            let limit = c.max_payload_bytes.of(t);
            if limit == 0 || limit + ENVELOPE_OVERHEAD > c.max_message_bytes {
                return Err(bad(
                    &format!("max_payload_bytes.{}", t.label()),
                    format!(
                        "must be between 1 and max_message_bytes - {ENVELOPE_OVERHEAD} = {}",
                        c.max_message_bytes.saturating_sub(ENVELOPE_OVERHEAD)
                    ),
                ));
            }
        }
        if c.max_blob_bytes == 0 || c.max_blob_bytes > 1 << 30 {
            return Err(bad("max_blob_bytes", "must be between 1 byte and 1 GiB"));
        }
        if c.blob_cache_bytes < c.max_blob_bytes {
            return Err(bad(
                "blob_cache_bytes",
                "must hold at least one max_blob_bytes blob",
            ));
        }
        if c.max_record_bytes == 0 || c.max_record_bytes > c.max_message_bytes {
            return Err(bad(
                "max_record_bytes",
                "must be between 1 and max_message_bytes",
            ));
        }
        if c.max_records == 0 {
            return Err(bad("max_records", "must be at least 1"));
        }
        if c.batch_max_entries == 0 || c.batch_max_entries > crate::batch::MAX_ENTRIES {
            return Err(bad(
                "batch_max_entries",
                format!("must be between 1 and {}", crate::batch::MAX_ENTRIES),
            ));
        }
        if c.batch_max_bytes < c.max_payload_bytes.submissions + ENVELOPE_OVERHEAD + 16
            || c.batch_max_bytes > c.max_blob_bytes
        {
            return Err(bad(
                "batch_max_bytes",
                "must hold one largest submission and be at most max_blob_bytes",
            ));
        }
        if c.batch_cache_bytes < c.batch_max_bytes {
            return Err(bad(
                "batch_cache_bytes",
                "must hold at least one batch_max_bytes batch",
            ));
        }
        if c.batch_verify_queue == 0 {
            return Err(bad("batch_verify_queue", "must be at least 1"));
        }
        if c.batch_window > Duration::from_secs(10) {
            return Err(bad("batch_window", "must be at most 10s"));
        }
        for (f, d) in [
            ("request_timeout", c.request_timeout),
            ("fetch_timeout", c.fetch_timeout),
            ("idle_connection_timeout", c.idle_connection_timeout),
            ("heartbeat", c.heartbeat),
            ("ban_duration", c.ban_duration),
            ("max_message_age", c.max_message_age),
            ("hello_timeout", c.hello_timeout),
        ] {
            if d.is_zero() {
                return Err(bad(f, "must be more than zero"));
            }
        }
        if c.fetch_timeout < c.request_timeout {
            return Err(bad("fetch_timeout", "must be at least request_timeout"));
        }
        if c.heartbeat > Duration::from_secs(10) {
            return Err(bad("heartbeat", "must be at most 10s"));
        }
        if !(c.mesh_n_low <= c.mesh_n && c.mesh_n <= c.mesh_n_high && c.mesh_n_low >= 1) {
            return Err(bad(
                "mesh_n",
                "need 1 <= mesh_n_low <= mesh_n <= mesh_n_high",
            ));
        }
        if c.mesh_outbound_min > c.mesh_n_low || c.mesh_outbound_min * 2 > c.mesh_n {
            return Err(bad(
                "mesh_outbound_min",
                "must be at most mesh_n_low and mesh_n / 2",
            ));
        }
        if c.max_connections == 0 || c.max_connections_per_peer == 0 {
            return Err(bad("max_connections", "limits must be at least 1"));
        }
        for (f, v) in [
            ("peer_message_rate", c.peer_message_rate),
            ("peer_message_burst", c.peer_message_burst),
            ("peer_request_rate", c.peer_request_rate),
            ("peer_request_burst", c.peer_request_burst),
            ("ban_threshold", c.ban_threshold),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(bad(f, "must be a positive number"));
            }
        }
        if c.peer_message_burst < 1.0 || c.peer_request_burst < 1.0 {
            return Err(bad("peer_message_burst", "bursts must be at least 1"));
        }
        if c.event_queue == 0 || c.command_queue == 0 {
            return Err(bad("event_queue", "queues must hold at least 1"));
        }
        Ok(ValidNetConfig {
            config: self,
            listen,
            bootstrap,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate() {
        NetConfig::default().validate().unwrap();
        NetConfig::loopback().validate().unwrap();
    }

    #[test]
    fn bad_values_are_named() {
        let cases: Vec<(NetConfig, &str)> = vec![
            (
                NetConfig {
                    listen: vec!["tcp://1.2.3.4".into()],
                    ..NetConfig::default()
                },
                "net.listen",
            ),
            (
                NetConfig {
                    bootstrap: vec!["/ip4/127.0.0.1/tcp/1".into()],
                    ..NetConfig::default()
                },
                "net.bootstrap",
            ),
            (
                NetConfig {
                    max_payload_bytes: TopicLimits {
                        consensus: 256 * 1024,
                        ..TopicLimits::default()
                    },
                    ..NetConfig::default()
                },
                "net.max_payload_bytes.consensus",
            ),
            (
                NetConfig {
                    fetch_timeout: Duration::from_secs(1),
                    ..NetConfig::default()
                },
                "net.fetch_timeout",
            ),
            (
                NetConfig {
                    batch_max_bytes: 32 * 1024 * 1024,
                    ..NetConfig::default()
                },
                "net.batch_max_bytes",
            ),
            (
                NetConfig {
                    batch_max_entries: 0,
                    ..NetConfig::default()
                },
                "net.batch_max_entries",
            ),
            (
                NetConfig {
                    batch_cache_bytes: 1024,
                    ..NetConfig::default()
                },
                "net.batch_cache_bytes",
            ),
            (
                NetConfig {
                    mesh_n_low: 7,
                    ..NetConfig::default()
                },
                "net.mesh_n",
            ),
            (
                NetConfig {
                    hello_timeout: Duration::ZERO,
                    ..NetConfig::default()
                },
                "net.hello_timeout",
            ),
            (
                NetConfig {
                    peer_message_rate: f64::NAN,
                    ..NetConfig::default()
                },
                "net.peer_message_rate",
            ),
        ];
        for (c, field) in cases {
            let e = c.validate().unwrap_err().to_string();
            assert!(e.starts_with(field), "{e} should name {field}");
        }
    }

    #[test]
    fn unbound_peer_policy_parses_by_name_and_refuses_others() {
        for (text, want) in [
            ("open", UnboundPeers::Open),
            ("requests_only", UnboundPeers::RequestsOnly),
            ("refuse", UnboundPeers::Refuse),
        ] {
            let c: NetConfig = toml::from_str(&format!("unbound_peers = {text:?}")).unwrap();
            assert_eq!(c.unbound_peers, want);
        }
        let e = toml::from_str::<NetConfig>("unbound_peers = \"ban\"").unwrap_err();
        assert!(e.to_string().contains("unknown variant"), "{e}");
        assert!(UnboundPeers::Open.gossip() && UnboundPeers::Open.requests());
        assert!(!UnboundPeers::RequestsOnly.gossip() && UnboundPeers::RequestsOnly.requests());
        assert!(!UnboundPeers::Refuse.gossip() && !UnboundPeers::Refuse.requests());
    }
}
