//! PeerId-to-hotkey binding records.

use super::*;

/// A peer's statement "hotkey H runs on libp2p peer P", signed by H.
///
/// Layout: `version u8 | hotkey [32] | issued_at_ms u64 | peer_len u8 | peer id bytes |
/// signature [64]`. The signature covers `hotkey | issued_at_ms | peer id bytes`, as the
/// version's [`Scheme`] says: version 1 under context [`BINDING_CONTEXT`]; version 2 under
/// the standard Substrate context over [`BINDING_V2_DOMAIN`] followed by those bytes (what
/// `Keypair.sign(message)` of the Bittensor Python tools makes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binding {
    /// How it is signed (its version byte).
    pub scheme: Scheme,
    /// The hotkey that signed it.
    pub hotkey: Hotkey,
    /// When it was signed (ms since the Unix epoch).
    pub issued_at_ms: u64,
    /// The libp2p PeerId's bytes.
    pub peer: Vec<u8>,
    /// The hotkey's signature.
    pub signature: [u8; 64],
}

/// Longest PeerId accepted in a binding.
const PEER_MAX: usize = 64;

impl Binding {
    /// The signing context and the message a binding of `scheme` signs.
    pub fn message(
        scheme: Scheme,
        hotkey: &Hotkey,
        issued_at_ms: u64,
        peer: &[u8],
    ) -> (&'static [u8], Vec<u8>) {
        let (context, domain): (_, &[u8]) = match scheme {
            Scheme::Platform => (BINDING_CONTEXT, b""),
            Scheme::Substrate => (SUBSTRATE_CONTEXT, BINDING_V2_DOMAIN),
        };
        let mut m = Vec::with_capacity(domain.len() + 40 + peer.len());
        m.extend_from_slice(domain);
        m.extend_from_slice(hotkey);
        m.extend_from_slice(&issued_at_ms.to_le_bytes());
        m.extend_from_slice(peer);
        (context, m)
    }

    /// A version-1 binding (what validators send).
    pub fn sign(key: &Keypair, peer: Vec<u8>, issued_at_ms: u64) -> Binding {
        Binding::sign_as(Scheme::Platform, key, peer, issued_at_ms)
    }

    /// A binding signed as `scheme` says.
    pub fn sign_as(scheme: Scheme, key: &Keypair, peer: Vec<u8>, issued_at_ms: u64) -> Binding {
        let hotkey = key.public();
        let (context, message) = Binding::message(scheme, &hotkey, issued_at_ms, &peer);
        Binding {
            scheme,
            hotkey,
            issued_at_ms,
            signature: key.sign(context, &message),
            peer,
        }
    }

    /// Whether the record is signed by its hotkey and names `peer`.
    pub fn verify_for(&self, peer: &[u8]) -> bool {
        let (context, message) =
            Binding::message(self.scheme, &self.hotkey, self.issued_at_ms, &self.peer);
        self.peer == peer && platform_keys::verify(context, &self.hotkey, &message, &self.signature)
    }

    /// Wire bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = vec![self.scheme.version()];
        b.extend_from_slice(&self.hotkey);
        b.extend_from_slice(&self.issued_at_ms.to_le_bytes());
        b.push(self.peer.len() as u8);
        b.extend_from_slice(&self.peer);
        b.extend_from_slice(&self.signature);
        b
    }

    /// Parse wire bytes (structure only; see [`Binding::verify_for`]).
    pub fn decode(bytes: &[u8]) -> Result<Binding, WireError> {
        let mut r = Reader::new(bytes, "binding");
        let v = r.u8()?;
        let scheme = Scheme::of_version(v).ok_or(WireError::Version(v))?;
        let hotkey = r.array()?;
        let issued_at_ms = r.u64()?;
        let len = r.u8()? as usize;
        let peer = r.vec(len, PEER_MAX, "peer id")?;
        let signature = r.array()?;
        r.end()?;
        Ok(Binding {
            scheme,
            hotkey,
            issued_at_ms,
            peer,
            signature,
        })
    }
}
