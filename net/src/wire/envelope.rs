//! Signed envelopes and the submissions they carry.

use super::*;

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
