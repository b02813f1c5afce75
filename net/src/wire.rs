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
/// Signing context of PeerId-to-hotkey binding records.
pub const BINDING_CONTEXT: &[u8] = b"platform/net/binding/v1";
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
}

impl Topic {
    /// Every topic, in tag order.
    pub const ALL: [Topic; 5] = [
        Topic::Submissions,
        Topic::Evaluations,
        Topic::Consensus,
        Topic::Challenges,
        Topic::Batches,
    ];

    /// The gossipsub topic name.
    pub const fn name(self) -> &'static str {
        match self {
            Topic::Submissions => "/platform/submissions/1",
            Topic::Evaluations => "/platform/evaluations/1",
            Topic::Consensus => "/platform/consensus/1",
            Topic::Challenges => "/platform/challenges/1",
            Topic::Batches => "/platform/batches/1",
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
        }
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

/// How an envelope is signed; its version byte says which.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Scheme {
    /// Version 1: sr25519 under context [`ENVELOPE_CONTEXT`] over every byte before the
    /// signature.
    #[default]
    Platform,
    /// Version 2: sr25519 under context [`SUBSTRATE_CONTEXT`] over [`ENVELOPE_V2_DOMAIN`]
    /// followed by every byte before the signature: what `Keypair.sign(message)` of the
    /// Bittensor and Substrate Python tools makes, so a btcli hotkey can sign.
    Substrate,
}

impl Scheme {
    /// The envelope version byte.
    pub const fn version(self) -> u8 {
        match self {
            Scheme::Platform => WIRE_VERSION,
            Scheme::Substrate => ENVELOPE_V2,
        }
    }

    /// The scheme of an envelope version byte.
    pub const fn of_version(v: u8) -> Option<Scheme> {
        match v {
            WIRE_VERSION => Some(Scheme::Platform),
            ENVELOPE_V2 => Some(Scheme::Substrate),
            _ => None,
        }
    }

    /// The signing context and the message it covers, for `signed` (the envelope's bytes
    /// before its signature).
    pub fn message(self, signed: &[u8]) -> (&'static [u8], std::borrow::Cow<'_, [u8]>) {
        match self {
            Scheme::Platform => (ENVELOPE_CONTEXT, std::borrow::Cow::Borrowed(signed)),
            Scheme::Substrate => {
                let mut m = Vec::with_capacity(ENVELOPE_V2_DOMAIN.len() + signed.len());
                m.extend_from_slice(ENVELOPE_V2_DOMAIN);
                m.extend_from_slice(signed);
                (SUBSTRATE_CONTEXT, std::borrow::Cow::Owned(m))
            }
        }
    }
}

/// A signed gossip message.
///
/// Layout: `version u8 | topic u8 | author [32] | issued_at_ms u64 | len u32 | payload |
/// signature [64]`; the signature covers every byte before it, as its [`Scheme`] says
/// (version 1 or 2). Its id is the sha256 of all its bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Envelope {
    /// How it is signed (its version byte).
    pub scheme: Scheme,
    /// Where it is published.
    pub topic: Topic,
    /// The hotkey that signed it.
    pub author: Hotkey,
    /// When it was signed (ms since the Unix epoch): bounds replays.
    pub issued_at_ms: u64,
    /// The application payload.
    pub payload: Vec<u8>,
    /// The author's signature.
    pub signature: [u8; 64],
}

impl std::fmt::Debug for Envelope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Envelope")
            .field("topic", &self.topic)
            .field("author", &hex::encode(&self.author[..4]))
            .field("issued_at_ms", &self.issued_at_ms)
            .field("payload_len", &self.payload.len())
            .finish()
    }
}

impl Envelope {
    /// Sign `payload` for `topic` as `key`, stamped `issued_at_ms`.
    pub fn sign(key: &Keypair, topic: Topic, issued_at_ms: u64, payload: Vec<u8>) -> Envelope {
        Envelope::sign_as(Scheme::Platform, key, topic, issued_at_ms, payload)
    }

    /// Sign under `scheme` (see [`Scheme::Substrate`] for what Bittensor tooling makes).
    pub fn sign_as(
        scheme: Scheme,
        key: &Keypair,
        topic: Topic,
        issued_at_ms: u64,
        payload: Vec<u8>,
    ) -> Envelope {
        let mut env = Envelope {
            scheme,
            topic,
            author: key.public(),
            issued_at_ms,
            payload,
            signature: [0; 64],
        };
        let signed = env.signed_part();
        let (context, message) = scheme.message(&signed);
        env.signature = key.sign(context, &message);
        env
    }

    /// Every byte before the signature.
    pub fn signed_part(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(ENVELOPE_OVERHEAD + self.payload.len());
        b.push(self.scheme.version());
        b.push(self.topic as u8);
        b.extend_from_slice(&self.author);
        b.extend_from_slice(&self.issued_at_ms.to_le_bytes());
        b.extend_from_slice(&(self.payload.len() as u32).to_le_bytes());
        b.extend_from_slice(&self.payload);
        b
    }

    /// The wire bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = self.signed_part();
        b.extend_from_slice(&self.signature);
        b
    }

    /// Parse wire bytes (structure only; see [`Envelope::verify`]).
    pub fn decode(bytes: &[u8]) -> Result<Envelope, WireError> {
        let mut r = Reader::new(bytes, "envelope");
        let v = r.u8()?;
        let scheme = Scheme::of_version(v).ok_or(WireError::Version(v))?;
        let topic = Topic::from_tag(r.u8()?)?;
        let author = r.array()?;
        let issued_at_ms = r.u64()?;
        let len = r.u32()? as usize;
        let payload = r.vec(len, bytes.len(), "payload")?;
        let signature = r.array()?;
        r.end()?;
        Ok(Envelope {
            scheme,
            topic,
            author,
            issued_at_ms,
            payload,
            signature,
        })
    }

    /// Whether the author's signature is valid.
    pub fn verify(&self) -> bool {
        let signed = self.signed_part();
        let (context, message) = self.scheme.message(&signed);
        platform_keys::verify(context, &self.author, &message, &self.signature)
    }

    /// The message id: sha256 of the wire bytes.
    pub fn id(&self) -> Hash32 {
        sha256(&self.encode())
    }
}

/// What a miner submits, carried as the payload of an [`Envelope`] on
/// [`Topic::Submissions`] signed by the miner's hotkey.
///
/// Layout: `version u8 | challenge u32 | epoch u64 | len u32 | body`.
#[derive(Clone, PartialEq, Eq)]
pub struct Submission {
    /// The challenge it is for.
    pub challenge: u32,
    /// The epoch it is for.
    pub epoch: u64,
    /// The payload the challenge scores.
    pub body: Vec<u8>,
}

impl std::fmt::Debug for Submission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Submission")
            .field("challenge", &self.challenge)
            .field("epoch", &self.epoch)
            .field("body_len", &self.body.len())
            .finish()
    }
}

impl Submission {
    /// The payload bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(17 + self.body.len());
        b.push(WIRE_VERSION);
        b.extend_from_slice(&self.challenge.to_le_bytes());
        b.extend_from_slice(&self.epoch.to_le_bytes());
        b.extend_from_slice(&(self.body.len() as u32).to_le_bytes());
        b.extend_from_slice(&self.body);
        b
    }

    /// Parse payload bytes.
    pub fn decode(bytes: &[u8]) -> Result<Submission, WireError> {
        let mut r = Reader::new(bytes, "submission");
        r.version()?;
        let challenge = r.u32()?;
        let epoch = r.u64()?;
        let len = r.u32()? as usize;
        let body = r.vec(len, bytes.len(), "submission body")?;
        r.end()?;
        Ok(Submission {
            challenge,
            epoch,
            body,
        })
    }

    /// Sign as a miner: the envelope to deliver.
    pub fn sign(&self, miner: &Keypair, issued_at_ms: u64) -> Envelope {
        Envelope::sign(miner, Topic::Submissions, issued_at_ms, self.encode())
    }

    /// Sign as `miner` under `scheme` ([`Scheme::Substrate`]: as Bittensor tooling signs).
    pub fn sign_as(&self, scheme: Scheme, miner: &Keypair, issued_at_ms: u64) -> Envelope {
        Envelope::sign_as(
            scheme,
            miner,
            Topic::Submissions,
            issued_at_ms,
            self.encode(),
        )
    }
}

/// A validator's statement "hotkey H runs on libp2p peer P", signed by H.
///
/// Layout: `version u8 | hotkey [32] | issued_at_ms u64 | peer_len u8 | peer id bytes |
/// signature [64]`; the signature covers `hotkey | issued_at_ms | peer id bytes`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Binding {
    pub hotkey: Hotkey,
    pub issued_at_ms: u64,
    pub peer: Vec<u8>,
    pub signature: [u8; 64],
}

impl Binding {
    fn message(hotkey: &Hotkey, issued_at_ms: u64, peer: &[u8]) -> Vec<u8> {
        let mut m = Vec::with_capacity(40 + peer.len());
        m.extend_from_slice(hotkey);
        m.extend_from_slice(&issued_at_ms.to_le_bytes());
        m.extend_from_slice(peer);
        m
    }

    pub fn sign(key: &Keypair, peer: Vec<u8>, issued_at_ms: u64) -> Binding {
        let hotkey = key.public();
        let signature = key.sign(
            BINDING_CONTEXT,
            &Binding::message(&hotkey, issued_at_ms, &peer),
        );
        Binding {
            hotkey,
            issued_at_ms,
            peer,
            signature,
        }
    }

    /// Whether the record is signed by its hotkey and names `peer`.
    pub fn verify_for(&self, peer: &[u8]) -> bool {
        self.peer == peer
            && platform_keys::verify(
                BINDING_CONTEXT,
                &self.hotkey,
                &Binding::message(&self.hotkey, self.issued_at_ms, &self.peer),
                &self.signature,
            )
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut b = vec![WIRE_VERSION];
        b.extend_from_slice(&self.hotkey);
        b.extend_from_slice(&self.issued_at_ms.to_le_bytes());
        b.push(self.peer.len() as u8);
        b.extend_from_slice(&self.peer);
        b.extend_from_slice(&self.signature);
        b
    }

    pub fn decode(bytes: &[u8]) -> Result<Binding, WireError> {
        let mut r = Reader::new(bytes, "binding");
        r.version()?;
        let hotkey = r.array()?;
        let issued_at_ms = r.u64()?;
        let len = r.u8()? as usize;
        let peer = r.vec(len, 64, "peer id")?;
        let signature = r.array()?;
        r.end()?;
        Ok(Binding {
            hotkey,
            issued_at_ms,
            peer,
            signature,
        })
    }
}

/// What the DHT stores, each under `kind | sha256(value)`; values are signed envelopes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum RecordKind {
    /// A miner's signed submission.
    Submission = 1,
    /// A validator's signed evaluation batch.
    EvaluationBatch = 2,
    /// A signed consensus checkpoint.
    Checkpoint = 3,
}

impl RecordKind {
    /// The record key of a value of this kind with content hash `hash`.
    pub fn key(self, hash: &Hash32) -> Vec<u8> {
        let mut k = Vec::with_capacity(34);
        k.extend_from_slice(b"r");
        k.push(self as u8);
        k.extend_from_slice(hash);
        k
    }

    /// Split a record key into kind and hash.
    pub fn parse_key(key: &[u8]) -> Result<(RecordKind, Hash32), WireError> {
        let mut r = Reader::new(key, "record key");
        if r.u8()? != b'r' {
            return Err(WireError::Tag {
                what: "record key",
                tag: key[0],
            });
        }
        let kind = match r.u8()? {
            1 => RecordKind::Submission,
            2 => RecordKind::EvaluationBatch,
            3 => RecordKind::Checkpoint,
            tag => {
                return Err(WireError::Tag {
                    what: "record kind",
                    tag,
                });
            }
        };
        let hash = r.array()?;
        r.end()?;
        Ok((kind, hash))
    }

    /// A short label for metrics.
    pub const fn label(self) -> &'static str {
        match self {
            RecordKind::Submission => "submission",
            RecordKind::EvaluationBatch => "evaluation_batch",
            RecordKind::Checkpoint => "checkpoint",
        }
    }
}

/// A miner's answer from a validator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SubmitAck {
    /// Accepted and gossiped under this id.
    Accepted(Hash32),
    /// Refused, with the reason.
    Rejected(String),
}

/// Request-response requests (`/platform/rpc/1`).
///
/// Layout: `version u8 | kind u8 | body`; kind 1 = hello (binding record), 2 = blob by
/// hash (32 bytes), 3 = submit (an envelope).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Request {
    Hello(Vec<u8>),
    Blob(Hash32),
    Submit(Vec<u8>),
}

/// Request-response responses.
///
/// Layout: `version u8 | kind u8 | body`; kind 1 = hello (binding record), 2 = blob
/// (`found u8` then the bytes), 3 = submit ack (`0 | id [32]` or `1 | utf-8 reason`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Response {
    Hello(Vec<u8>),
    Blob(Option<Vec<u8>>),
    Submit(SubmitAck),
}

impl Request {
    pub fn encode(&self) -> Vec<u8> {
        let (kind, body): (u8, &[u8]) = match self {
            Request::Hello(b) => (1, b),
            Request::Blob(h) => (2, h),
            Request::Submit(b) => (3, b),
        };
        let mut v = Vec::with_capacity(2 + body.len());
        v.extend_from_slice(&[WIRE_VERSION, kind]);
        v.extend_from_slice(body);
        v
    }

    pub fn decode(bytes: &[u8]) -> Result<Request, WireError> {
        let mut r = Reader::new(bytes, "request");
        r.version()?;
        let kind = r.u8()?;
        let rest = r.bytes.to_vec();
        match kind {
            1 => Ok(Request::Hello(rest)),
            2 => {
                let h = r.array()?;
                r.end()?;
                Ok(Request::Blob(h))
            }
            3 => Ok(Request::Submit(rest)),
            tag => Err(WireError::Tag {
                what: "request",
                tag,
            }),
        }
    }

    pub fn label(&self) -> &'static str {
        match self {
            Request::Hello(_) => "hello",
            Request::Blob(_) => "blob",
            Request::Submit(_) => "submit",
        }
    }
}

impl Response {
    pub fn encode(&self) -> Vec<u8> {
        let mut v = vec![WIRE_VERSION];
        match self {
            Response::Hello(b) => {
                v.push(1);
                v.extend_from_slice(b);
            }
            Response::Blob(b) => {
                v.push(2);
                match b {
                    None => v.push(0),
                    Some(b) => {
                        v.push(1);
                        v.extend_from_slice(b);
                    }
                }
            }
            Response::Submit(ack) => {
                v.push(3);
                match ack {
                    SubmitAck::Accepted(id) => {
                        v.push(0);
                        v.extend_from_slice(id);
                    }
                    SubmitAck::Rejected(reason) => {
                        v.push(1);
                        v.extend_from_slice(reason.as_bytes());
                    }
                }
            }
        }
        v
    }

    pub fn decode(bytes: &[u8]) -> Result<Response, WireError> {
        let mut r = Reader::new(bytes, "response");
        r.version()?;
        match r.u8()? {
            1 => Ok(Response::Hello(r.bytes.to_vec())),
            2 => match r.u8()? {
                0 => {
                    r.end()?;
                    Ok(Response::Blob(None))
                }
                1 => Ok(Response::Blob(Some(r.bytes.to_vec()))),
                tag => Err(WireError::Tag { what: "blob", tag }),
            },
            3 => match r.u8()? {
                0 => {
                    let id = r.array()?;
                    r.end()?;
                    Ok(Response::Submit(SubmitAck::Accepted(id)))
                }
                1 => Ok(Response::Submit(SubmitAck::Rejected(
                    String::from_utf8_lossy(r.bytes).chars().take(256).collect(),
                ))),
                tag => Err(WireError::Tag { what: "ack", tag }),
            },
            tag => Err(WireError::Tag {
                what: "response",
                tag,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Keypair {
        Keypair::from_seed(&[7; 32])
    }

    #[test]
    fn envelope_round_trip_and_signature() {
        let env = Envelope::sign(&key(), Topic::Consensus, 1_700_000_000_000, vec![1, 2, 3]);
        let bytes = env.encode();
        assert_eq!(bytes.len(), ENVELOPE_OVERHEAD + 3);
        let back = Envelope::decode(&bytes).unwrap();
        assert_eq!(back, env);
        assert!(back.verify());
        assert_eq!(back.id(), sha256(&bytes));
        // Every single-bit flip either fails to decode or fails to verify.
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x10;
            if let Ok(e) = Envelope::decode(&b) {
                assert!(!e.verify(), "flip at byte {i} still verifies");
            }
        }
    }

    #[test]
    fn substrate_signed_envelopes_verify_and_cannot_pass_for_the_other_scheme() {
        let env = Envelope::sign_as(Scheme::Substrate, &key(), Topic::Submissions, 9, vec![4; 5]);
        let bytes = env.encode();
        assert_eq!(bytes[0], ENVELOPE_V2);
        let back = Envelope::decode(&bytes).unwrap();
        assert_eq!(back.scheme, Scheme::Substrate);
        assert!(back.verify());
        // The signature is Substrate's over the domain-separated bytes, not the v1 one.
        let signed = env.signed_part();
        let (ctx, msg) = Scheme::Substrate.message(&signed);
        assert_eq!(ctx, b"substrate");
        assert!(msg.starts_with(ENVELOPE_V2_DOMAIN));
        for v in [WIRE_VERSION, ENVELOPE_V2] {
            let other = if v == WIRE_VERSION {
                ENVELOPE_V2
            } else {
                WIRE_VERSION
            };
            let signed = Envelope::sign_as(
                Scheme::of_version(v).unwrap(),
                &key(),
                Topic::Submissions,
                9,
                vec![4; 5],
            )
            .encode();
            let mut relabelled = signed.clone();
            relabelled[0] = other;
            assert!(
                !Envelope::decode(&relabelled).unwrap().verify(),
                "v{v} as v{other}"
            );
        }
        assert_eq!(
            Envelope::decode(&[3; ENVELOPE_OVERHEAD]),
            Err(WireError::Version(3))
        );
    }

    #[test]
    fn truncations_and_trailing_bytes_are_errors() {
        let bytes = Envelope::sign(&key(), Topic::Submissions, 5, vec![9; 40]).encode();
        for n in 0..bytes.len() {
            assert!(Envelope::decode(&bytes[..n]).is_err(), "prefix {n}");
        }
        let mut long = bytes.clone();
        long.push(0);
        assert_eq!(
            Envelope::decode(&long),
            Err(WireError::Trailing("envelope"))
        );
        let mut huge = bytes.clone();
        huge[42..46].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            Envelope::decode(&huge),
            Err(WireError::TooLong { .. })
        ));
        let mut topic = bytes;
        topic[1] = 99;
        assert!(matches!(
            Envelope::decode(&topic),
            Err(WireError::Tag { .. })
        ));
    }

    #[test]
    fn submission_round_trip() {
        let s = Submission {
            challenge: 3,
            epoch: 44,
            body: b"answer".to_vec(),
        };
        assert_eq!(Submission::decode(&s.encode()).unwrap(), s);
        let env = s.sign(&key(), 10);
        assert!(env.verify());
        assert_eq!(Submission::decode(&env.payload).unwrap(), s);
        assert!(Submission::decode(&s.encode()[..10]).is_err());
    }

    #[test]
    fn binding_names_its_peer() {
        let b = Binding::sign(&key(), b"peer-a".to_vec(), 77);
        let back = Binding::decode(&b.encode()).unwrap();
        assert!(back.verify_for(b"peer-a"));
        assert!(
            !back.verify_for(b"peer-b"),
            "a replayed record for another peer"
        );
        let mut forged = back.clone();
        forged.hotkey = Keypair::from_seed(&[8; 32]).public();
        assert!(
            !forged.verify_for(b"peer-a"),
            "another hotkey without its signature"
        );
    }

    #[test]
    fn rpc_frames_round_trip() {
        for r in [
            Request::Hello(vec![1, 2]),
            Request::Blob([4; 32]),
            Request::Submit(vec![5; 9]),
        ] {
            assert_eq!(Request::decode(&r.encode()).unwrap(), r);
        }
        for r in [
            Response::Hello(vec![1]),
            Response::Blob(None),
            Response::Blob(Some(vec![3; 5])),
            Response::Submit(SubmitAck::Accepted([1; 32])),
            Response::Submit(SubmitAck::Rejected("bad signature".into())),
        ] {
            assert_eq!(Response::decode(&r.encode()).unwrap(), r);
        }
        assert!(Request::decode(&[1, 2, 0]).is_err());
        assert!(Response::decode(&[2]).is_err());
        assert!(Response::decode(&[]).is_err());
    }

    #[test]
    fn random_and_mutated_bytes_never_panic_a_decoder() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        let valid = [
            Envelope::sign(&key(), Topic::Evaluations, 9, vec![1; 50]).encode(),
            Binding::sign(&key(), vec![3; 38], 4).encode(),
            Request::Submit(vec![1; 20]).encode(),
            Response::Blob(Some(vec![2; 20])).encode(),
        ];
        for i in 0..50_000 {
            let bytes: Vec<u8> = if i % 2 == 0 {
                let len = (next() % 200) as usize;
                (0..len).map(|_| next() as u8).collect()
            } else {
                let mut b = valid[i % valid.len()].clone();
                for _ in 0..1 + next() % 4 {
                    let at = (next() as usize) % b.len();
                    b[at] = next() as u8;
                }
                b.truncate(b.len() - (next() % 3) as usize);
                b
            };
            let _ = Envelope::decode(&bytes).map(|e| e.verify());
            let _ = Submission::decode(&bytes);
            let _ = Binding::decode(&bytes).map(|b| b.verify_for(&[3; 38]));
            let _ = Request::decode(&bytes);
            let _ = Response::decode(&bytes);
            let _ = RecordKind::parse_key(&bytes);
        }
    }

    #[test]
    fn record_keys() {
        let k = RecordKind::Checkpoint.key(&[5; 32]);
        assert_eq!(
            RecordKind::parse_key(&k).unwrap(),
            (RecordKind::Checkpoint, [5; 32])
        );
        assert!(RecordKind::parse_key(&k[..10]).is_err());
        assert!(RecordKind::parse_key(b"x").is_err());
    }
}
