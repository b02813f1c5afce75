//! The wire formats: signed gossip envelopes, miner submissions, PeerId-to-hotkey binding
//! records, request-response frames and DHT record keys. Every layout is fixed, little
//! endian and versioned; `docs/net-wire.md` documents it for clients in other languages.
//! Decoders are total: any byte string gives a value or a [`WireError`], never a panic.

use platform_keys::Keypair;

/// A 32-byte hash (sha256).
pub use platform_types::Hash32;
/// A hotkey's sr25519 public key.
pub type Hotkey = [u8; 32];

/// Signing context of gossip envelopes (and of submissions, which are envelopes).
pub const ENVELOPE_CONTEXT: &[u8] = b"platform/net/envelope/v1";
/// Version byte of an envelope signed the way Bittensor tooling signs ([`Scheme::Substrate`]).
pub const ENVELOPE_V2: u8 = 2;
/// Signing context of [`Scheme::Substrate`] envelopes: the one Substrate's and Bittensor's
/// `Keypair.sign` use.
pub const SUBSTRATE_CONTEXT: &[u8] = b"substrate";
/// Prefix of the message a [`Scheme::Substrate`] envelope's signature covers, so the
/// signature means nothing outside this protocol.
pub const ENVELOPE_V2_DOMAIN: &[u8] = b"platform/net/envelope/v2:";
/// Signing context of PeerId-to-hotkey binding records (version 1).
pub const BINDING_CONTEXT: &[u8] = b"platform/net/binding/v1";
/// Prefix of the message a version-2 binding record's signature covers (under
/// [`SUBSTRATE_CONTEXT`]).
pub const BINDING_V2_DOMAIN: &[u8] = b"platform/net/binding/v2:";
/// Version byte of every format here.
pub const WIRE_VERSION: u8 = 1;
/// Envelope bytes that are not payload: version, topic, author, time, length, signature.
pub const ENVELOPE_OVERHEAD: usize = ENVELOPE_HEADER + 64;
const ENVELOPE_HEADER: usize = 1 + 1 + 32 + 8 + 4;

/// Why bytes did not decode.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Fewer bytes than the layout needs.
    #[error("truncated {0}")]
    Truncated(&'static str),
    /// Bytes left over after the layout.
    #[error("trailing bytes after {0}")]
    Trailing(&'static str),
    /// An unknown version byte.
    #[error("unknown version {0}")]
    Version(u8),
    /// An unknown tag (topic, request kind, record kind).
    #[error("unknown {what} tag {tag}")]
    Tag {
        /// Which tag.
        what: &'static str,
        /// Its value.
        tag: u8,
    },
    /// A declared length above its limit.
    #[error("{what} of {len} bytes exceeds {limit}")]
    TooLong {
        /// Which field.
        what: &'static str,
        /// Declared length.
        len: usize,
        /// Limit.
        limit: usize,
    },
}

/// The gossip topics. Each name is versioned: a change of encoding gets a new name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Topic {
    /// Miners' signed submissions.
    Submissions = 1,
    /// Validators' signed evaluation-result batches.
    Evaluations = 2,
    /// PBFT proposals, votes and view changes.
    Consensus = 3,
    /// Owner-signed challenge lifecycle announcements.
    Challenges = 4,
    /// Validators' announcements of submission batches (fetched by hash).
    Batches = 5,
    /// Validators' notes of how far behind their evaluation is (`LoadNote`, node-defined).
    Load = 6,
}

impl Topic {
    /// Every topic, in tag order.
    pub const ALL: [Topic; 6] = [
        Topic::Submissions,
        Topic::Evaluations,
        Topic::Consensus,
        Topic::Challenges,
        Topic::Batches,
        Topic::Load,
    ];

    /// The gossipsub topic name.
    pub const fn name(self) -> &'static str {
        match self {
            Topic::Submissions => "/platform/submissions/1",
            Topic::Evaluations => "/platform/evaluations/1",
            Topic::Consensus => "/platform/consensus/1",
            Topic::Challenges => "/platform/challenges/1",
            Topic::Batches => "/platform/batches/1",
            Topic::Load => "/platform/load/1",
        }
    }

    /// A short label for metrics and logs.
    pub const fn label(self) -> &'static str {
        match self {
            Topic::Submissions => "submissions",
            Topic::Evaluations => "evaluations",
            Topic::Consensus => "consensus",
            Topic::Challenges => "challenges",
            Topic::Batches => "batches",
            Topic::Load => "load",
        }
    }

    /// Whether only validators publish here (consensus, evaluations, batch announcements,
    /// load notes):
    /// a message on it whose publishing peer we know to be bound to a hotkey must be that
    /// validator's own. Submissions (miners) and challenges (owner-signed, relayed by
    /// anyone) are open.
    pub const fn validators_only(self) -> bool {
        matches!(
            self,
            Topic::Consensus | Topic::Evaluations | Topic::Batches | Topic::Load
        )
    }

    /// The topic with this tag.
    pub fn from_tag(tag: u8) -> Result<Topic, WireError> {
        Topic::ALL
            .into_iter()
            .find(|t| *t as u8 == tag)
            .ok_or(WireError::Tag { what: "topic", tag })
    }

    /// The topic with this gossipsub name.
    pub fn from_name(name: &str) -> Option<Topic> {
        Topic::ALL.into_iter().find(|t| t.name() == name)
    }
}

pub use platform_types::{now_ms, sha256};

struct Reader<'a> {
    bytes: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8], what: &'static str) -> Self {
        Reader { bytes, what }
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if self.bytes.len() < n {
            return Err(WireError::Truncated(self.what));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, WireError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4")))
    }
    fn u64(&mut self) -> Result<u64, WireError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8")))
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        Ok(self.take(N)?.try_into().expect("N"))
    }
    fn vec(&mut self, len: usize, limit: usize, what: &'static str) -> Result<Vec<u8>, WireError> {
        if len > limit {
            return Err(WireError::TooLong { what, len, limit });
        }
        Ok(self.take(len)?.to_vec())
    }
    fn version(&mut self) -> Result<(), WireError> {
        match self.u8()? {
            WIRE_VERSION => Ok(()),
            v => Err(WireError::Version(v)),
        }
    }
    fn end(self) -> Result<(), WireError> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(WireError::Trailing(self.what))
        }
    }
}

mod binding;
mod envelope;
mod rpc;
#[cfg(test)]
mod tests;

pub use binding::Binding;
pub use envelope::{Envelope, Scheme, Submission};
pub use rpc::{RecordKind, SubmitAck};
pub(crate) use rpc::{Request, Response};
