//! The challenge registry: challenge metadata changed only by changes the subnet owner signs,
//! applied only once consensus has committed them. Changes are SCALE-encoded (canonical for
//! these types) and signed with the owner's sr25519 key, in one of two schemes: version 1
//! under the `platform/registry/v1` context, or version 2 as Bittensor tooling signs (the
//! standard Substrate context over `platform/registry/v2:` and the change), so an owner's
//! btcli key can sign with `Keypair.sign`. A strictly increasing nonce makes every change
//! usable once.

use std::collections::BTreeMap;

use parity_scale_codec::{Decode, Encode, Input, Output};
use platform_keys::Keypair;
pub use platform_net::Scheme;

use crate::epoch::WeightRule;

/// Signing context of registry changes (version 1).
pub const REGISTRY_CONTEXT: &[u8] = b"platform/registry/v1";
/// Prefix of what a version-2 change's signature covers (under the Substrate context).
pub const REGISTRY_V2_DOMAIN: &[u8] = b"platform/registry/v2:";
/// First byte of a version-2 signed change; a version-1 change starts with its [`Change`]
/// variant index (0 to 3), so the two never collide.
pub const REGISTRY_V2_TAG: u8 = 0xf2;
/// Longest challenge name.
pub const NAME_MAX: usize = 64;
/// Largest encoded change accepted.
pub const CHANGE_MAX_BYTES: usize = 4096;

/// The runtime limits a challenge runs under (the engine's policy, as agreed).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Limits {
    /// Fuel per evaluation.
    pub fuel: u64,
    /// Linear memory ceiling, bytes.
    pub memory_bytes: u64,
    /// Largest input, bytes.
    pub input_bytes: u32,
    /// Largest output, bytes.
    pub output_bytes: u32,
}

/// Weight rule, encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode)]
pub enum Rule {
    /// See [`WeightRule::Proportional`].
    Proportional,
    /// See [`WeightRule::WinnerTakesAll`].
    WinnerTakesAll,
}

impl From<Rule> for WeightRule {
    fn from(r: Rule) -> WeightRule {
        match r {
            Rule::Proportional => WeightRule::Proportional,
            Rule::WinnerTakesAll => WeightRule::WinnerTakesAll,
        }
    }
}

/// A challenge's metadata.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct ChallengeMeta {
    /// Challenge id.
    pub id: u32,
    /// Human name.
    pub name: String,
    /// Version, increasing with every update.
    pub version: u32,
    /// sha256 of the WASM module.
    pub module_hash: [u8; 32],
    /// Runtime limits.
    pub limits: Limits,
    /// Share of emission relative to other active challenges.
    pub emission_share: u32,
    /// How scores become weights.
    pub rule: Rule,
}

/// A registry change.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub enum Change {
    /// Add a new challenge (inactive until activated).
    Publish(ChallengeMeta),
    /// Replace a challenge's metadata with a higher version.
    Update(ChallengeMeta),
    /// Start evaluating and weighting a challenge.
    Activate(u32),
    /// Stop evaluating and weighting a challenge.
    Deactivate(u32),
    /// Send a challenge's weights to one of the subnet's incentive mechanisms (0: the
    /// subnet's original one, where every challenge starts). A variant added after the first
    /// four: their encodings are unchanged, and a node from before refuses this one as
    /// malformed.
    SetMechanism {
        /// Challenge id.
        id: u32,
        /// The mechanism (0 to [`MECHANISM_MAX`]).
        mecid: u8,
    },
}

/// Highest mechanism a challenge may name: the pallet stores mechanism `m` of subnet `n` at
/// `m × 4096 + n`, a `u16`.
pub const MECHANISM_MAX: u8 = 15;

/// A change with its nonce and the owner's signature.
///
/// Encoding: version 1 is `SCALE(change, nonce) | signature [64]`; version 2 is
/// [`REGISTRY_V2_TAG`] followed by the same.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedChange {
    /// The change.
    pub change: Change,
    /// Strictly greater than every nonce applied before.
    pub nonce: u64,
    /// How it is signed (its version).
    pub scheme: Scheme,
    /// sr25519 signature over `SCALE(change, nonce)`, as [`SignedChange::message`] says.
    pub signature: [u8; 64],
}

impl SignedChange {
    /// Sign a change as the owner (version 1).
    pub fn sign(owner: &Keypair, change: Change, nonce: u64) -> SignedChange {
        SignedChange::sign_as(Scheme::Platform, owner, change, nonce)
    }

    /// Sign a change as the owner, as `scheme` says.
    pub fn sign_as(scheme: Scheme, owner: &Keypair, change: Change, nonce: u64) -> SignedChange {
        let (context, message) = SignedChange::message(scheme, &change, nonce);
        SignedChange {
            signature: owner.sign(context, &message),
            change,
            nonce,
            scheme,
        }
    }

    /// The signing context and the message a change of `scheme` signs: `SCALE(change,
    /// nonce)`, after [`REGISTRY_V2_DOMAIN`] for version 2.
    pub fn message(scheme: Scheme, change: &Change, nonce: u64) -> (&'static [u8], Vec<u8>) {
        match scheme {
            Scheme::Platform => (REGISTRY_CONTEXT, (change, nonce).encode()),
            Scheme::Substrate => {
                let mut m = REGISTRY_V2_DOMAIN.to_vec();
                (change, nonce).encode_to(&mut m);
                (platform_net::wire::SUBSTRATE_CONTEXT, m)
            }
        }
    }

    /// Whether `owner` signed it.
    pub fn verify(&self, owner: &[u8; 32]) -> bool {
        let (context, message) = SignedChange::message(self.scheme, &self.change, self.nonce);
        platform_keys::verify(context, owner, &message, &self.signature)
    }
}

impl Encode for SignedChange {
    fn encode_to<T: Output + ?Sized>(&self, dest: &mut T) {
        if self.scheme == Scheme::Substrate {
            dest.push_byte(REGISTRY_V2_TAG);
        }
        self.change.encode_to(dest);
        self.nonce.encode_to(dest);
        self.signature.encode_to(dest);
    }
}

impl Decode for SignedChange {
    fn decode<I: Input>(input: &mut I) -> Result<Self, parity_scale_codec::Error> {
        let first = input.read_byte()?;
        let (scheme, change) = if first == REGISTRY_V2_TAG {
            (Scheme::Substrate, Change::decode(input)?)
        } else {
            // A version-1 change: the byte read is its variant index.
            let mut whole = Unread {
                first: Some(first),
                rest: input,
            };
            (Scheme::Platform, Change::decode(&mut whole)?)
        };
        Ok(SignedChange {
            change,
            nonce: u64::decode(input)?,
            scheme,
            signature: <[u8; 64]>::decode(input)?,
        })
    }
}

/// An [`Input`] with one byte already read put back in front.
struct Unread<'a, I: Input> {
    first: Option<u8>,
    rest: &'a mut I,
}

impl<I: Input> Input for Unread<'_, I> {
    fn remaining_len(&mut self) -> Result<Option<usize>, parity_scale_codec::Error> {
        let extra = usize::from(self.first.is_some());
        Ok(self.rest.remaining_len()?.map(|n| n + extra))
    }

    fn read(&mut self, into: &mut [u8]) -> Result<(), parity_scale_codec::Error> {
        if self.first.is_some()
            && let Some((head, tail)) = into.split_first_mut()
        {
            *head = self.first.take().expect("checked");
            return self.rest.read(tail);
        }
        self.rest.read(into)
    }
}

/// Why a change was refused (each a counted reason).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// Bytes that do not decode, or too many of them.
    #[error("malformed change")]
    Malformed,
    /// Not signed by the subnet owner.
    #[error("not signed by the subnet owner")]
    BadSignature,
    /// A nonce at or below the last one applied.
    #[error("nonce {0} already used")]
    Replay(u64),
    /// A change to a challenge that does not exist.
    #[error("no challenge {0}")]
    Unknown(u32),
    /// Publishing an id that exists.
    #[error("challenge {0} already exists")]
    Exists(u32),
    /// An update whose version does not increase.
    #[error("version {new} is not above {current}")]
    Version {
        /// Current version.
        current: u32,
        /// Proposed version.
        new: u32,
    },
    /// Metadata out of range.
    #[error("invalid metadata: {0}")]
    Invalid(&'static str),
}

impl RegistryError {
    /// A label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            RegistryError::Malformed => "malformed",
            RegistryError::BadSignature => "bad_signature",
            RegistryError::Replay(_) => "replay",
            RegistryError::Unknown(_) => "unknown_challenge",
            RegistryError::Exists(_) => "exists",
            RegistryError::Version { .. } => "version",
            RegistryError::Invalid(_) => "invalid",
        }
    }
}

/// A registered challenge.
///
/// Encoding: `SCALE(meta, active)`, then the mechanism as one byte only when it is not 0, so
/// entries stored before mechanisms read as mechanism 0's and mechanism-0 entries keep their
/// bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Its metadata.
    pub meta: ChallengeMeta,
    /// Whether it is evaluated and weighted.
    pub active: bool,
    /// The subnet mechanism its weights go to.
    pub mechanism: u8,
}

impl Encode for Entry {
    fn encode_to<T: Output + ?Sized>(&self, dest: &mut T) {
        self.meta.encode_to(dest);
        self.active.encode_to(dest);
        if self.mechanism != 0 {
            dest.push_byte(self.mechanism);
        }
    }
}

impl Decode for Entry {
    fn decode<I: Input>(input: &mut I) -> Result<Self, parity_scale_codec::Error> {
        let meta = ChallengeMeta::decode(input)?;
        let active = bool::decode(input)?;
        let mechanism = match input.remaining_len()? {
            Some(0) => 0,
            _ => input.read_byte()?,
        };
        Ok(Entry {
            meta,
            active,
            mechanism,
        })
    }
}

/// The registry's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registry {
    owner: [u8; 32],
    entries: BTreeMap<u32, Entry>,
    last_nonce: u64,
}

fn check_meta(m: &ChallengeMeta) -> Result<(), RegistryError> {
    if m.name.is_empty() || m.name.len() > NAME_MAX {
        return Err(RegistryError::Invalid("name must be 1 to 64 bytes"));
    }
    if m.limits.fuel == 0 || m.limits.memory_bytes == 0 || m.limits.output_bytes == 0 {
        return Err(RegistryError::Invalid("limits must be positive"));
    }
    if m.emission_share == 0 {
        return Err(RegistryError::Invalid("emission share must be positive"));
    }
    Ok(())
}

impl Registry {
    /// An empty registry governed by `owner`.
    pub fn new(owner: [u8; 32]) -> Registry {
        Registry {
            owner,
            entries: BTreeMap::new(),
            last_nonce: 0,
        }
    }

    /// The owner whose signed changes govern it.
    pub fn owner(&self) -> [u8; 32] {
        self.owner
    }

    /// Rebuild a registry from stored entries (encoded [`Entry`]s) and its last nonce.
    pub fn restore(
        owner: [u8; 32],
        entries: &[(u32, Vec<u8>)],
        last_nonce: u64,
    ) -> Result<Registry, RegistryError> {
        let mut r = Registry::new(owner);
        for (id, bytes) in entries {
            let e = Entry::decode(&mut bytes.as_slice()).map_err(|_| RegistryError::Malformed)?;
            if e.meta.id != *id {
                return Err(RegistryError::Malformed);
            }
            r.entries.insert(*id, e);
        }
        r.last_nonce = last_nonce;
        Ok(r)
    }

    /// Decode and check a change received from the network: size, structure, owner's
    /// signature, fresh nonce, and that it would apply. Nothing changes until [`Self::apply`].
    pub fn verify(&self, bytes: &[u8]) -> Result<SignedChange, RegistryError> {
        if bytes.len() > CHANGE_MAX_BYTES {
            return Err(RegistryError::Malformed);
        }
        let mut input = bytes;
        let sc = SignedChange::decode(&mut input).map_err(|_| RegistryError::Malformed)?;
        if !input.is_empty() {
            return Err(RegistryError::Malformed);
        }
        if !sc.verify(&self.owner) {
            return Err(RegistryError::BadSignature);
        }
        self.clone().apply_unchecked(&sc)?;
        Ok(sc)
    }

    /// Apply a change consensus committed (verified again: a committed change is still
    /// checked, never trusted).
    pub fn apply(&mut self, bytes: &[u8]) -> Result<SignedChange, RegistryError> {
        let sc = self.verify(bytes)?;
        self.apply_unchecked(&sc)?;
        Ok(sc)
    }

    fn apply_unchecked(&mut self, sc: &SignedChange) -> Result<(), RegistryError> {
        if sc.nonce <= self.last_nonce {
            return Err(RegistryError::Replay(sc.nonce));
        }
        match &sc.change {
            Change::Publish(m) => {
                check_meta(m)?;
                if self.entries.contains_key(&m.id) {
                    return Err(RegistryError::Exists(m.id));
                }
                self.entries.insert(
                    m.id,
                    Entry {
                        meta: m.clone(),
                        active: false,
                        mechanism: 0,
                    },
                );
            }
            Change::Update(m) => {
                check_meta(m)?;
                let e = self
                    .entries
                    .get_mut(&m.id)
                    .ok_or(RegistryError::Unknown(m.id))?;
                if m.version <= e.meta.version {
                    return Err(RegistryError::Version {
                        current: e.meta.version,
                        new: m.version,
                    });
                }
                e.meta = m.clone();
            }
            Change::Activate(id) | Change::Deactivate(id) => {
                let e = self
                    .entries
                    .get_mut(id)
                    .ok_or(RegistryError::Unknown(*id))?;
                e.active = matches!(sc.change, Change::Activate(_));
            }
            Change::SetMechanism { id, mecid } => {
                if *mecid > MECHANISM_MAX {
                    return Err(RegistryError::Invalid("mechanism must be 0 to 15"));
                }
                let e = self
                    .entries
                    .get_mut(id)
                    .ok_or(RegistryError::Unknown(*id))?;
                e.mechanism = *mecid;
            }
        }
        self.last_nonce = sc.nonce;
        Ok(())
    }

    /// The active challenges, by id.
    pub fn active(&self) -> impl Iterator<Item = &ChallengeMeta> {
        self.active_entries().map(|e| &e.meta)
    }

    /// The active challenges' entries (metadata and mechanism), by id.
    pub fn active_entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.values().filter(|e| e.active)
    }

    /// Every entry, by id.
    pub fn entries(&self) -> &BTreeMap<u32, Entry> {
        &self.entries
    }

    /// The last nonce applied.
    pub fn last_nonce(&self) -> u64 {
        self.last_nonce
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner() -> Keypair {
        Keypair::from_seed(&[42; 32])
    }

    fn meta(id: u32, version: u32) -> ChallengeMeta {
        ChallengeMeta {
            id,
            name: format!("challenge-{id}"),
            version,
            module_hash: [id as u8; 32],
            limits: Limits {
                fuel: 1_000_000,
                memory_bytes: 1 << 24,
                input_bytes: 65536,
                output_bytes: 64,
            },
            emission_share: 1,
            rule: Rule::Proportional,
        }
    }

    fn signed(change: Change, nonce: u64) -> Vec<u8> {
        SignedChange::sign(&owner(), change, nonce).encode()
    }

    #[test]
    fn owner_signed_lifecycle() {
        let mut r = Registry::new(owner().public());
        r.apply(&signed(Change::Publish(meta(1, 1)), 1)).unwrap();
        assert_eq!(r.active().count(), 0, "published challenges start inactive");
        r.apply(&signed(Change::Activate(1), 2)).unwrap();
        assert_eq!(r.active().map(|m| m.id).collect::<Vec<_>>(), vec![1]);
        r.apply(&signed(Change::Update(meta(1, 2)), 3)).unwrap();
        assert_eq!(r.active().next().unwrap().version, 2);
        assert_eq!(
            r.apply(&signed(Change::Update(meta(1, 2)), 4)),
            Err(RegistryError::Version { current: 2, new: 2 })
        );
        r.apply(&signed(Change::Deactivate(1), 5)).unwrap();
        assert_eq!(r.active().count(), 0);
        assert_eq!(r.last_nonce(), 5);
    }

    #[test]
    fn forged_replayed_and_malformed_changes_are_refused_and_change_nothing() {
        let mut r = Registry::new(owner().public());
        let before = r.clone();
        let other = Keypair::from_seed(&[1; 32]);
        let forged = SignedChange::sign(&other, Change::Publish(meta(1, 1)), 1).encode();
        assert_eq!(r.apply(&forged), Err(RegistryError::BadSignature));
        let mut unsigned = SignedChange::sign(&owner(), Change::Publish(meta(1, 1)), 1);
        unsigned.signature = [0; 64];
        assert_eq!(
            r.apply(&unsigned.encode()),
            Err(RegistryError::BadSignature)
        );
        assert_eq!(r.apply(&[1, 2, 3]), Err(RegistryError::Malformed));
        assert_eq!(
            r.apply(&vec![0; CHANGE_MAX_BYTES + 1]),
            Err(RegistryError::Malformed)
        );
        assert_eq!(r, before);

        let publish = signed(Change::Publish(meta(1, 1)), 7);
        r.apply(&publish).unwrap();
        assert_eq!(r.apply(&publish), Err(RegistryError::Replay(7)));
        assert_eq!(
            r.apply(&signed(Change::Activate(9), 8)),
            Err(RegistryError::Unknown(9))
        );
        assert_eq!(
            r.apply(&signed(Change::Publish(meta(1, 1)), 9)),
            Err(RegistryError::Exists(1))
        );
        let mut bad = meta(2, 1);
        bad.name = String::new();
        assert!(matches!(
            r.apply(&signed(Change::Publish(bad), 10)),
            Err(RegistryError::Invalid(_))
        ));
        // Trailing bytes after a valid change.
        let mut long = signed(Change::Activate(1), 11);
        long.push(0);
        assert_eq!(r.apply(&long), Err(RegistryError::Malformed));
    }

    #[test]
    fn version_1_bytes_are_unchanged_and_version_2_is_tagged_and_not_relabelable() {
        let change = Change::Activate(5);
        let v1 = SignedChange::sign(&owner(), change.clone(), 3);
        let mut want = (&change, 3u64).encode();
        want.extend_from_slice(&v1.signature);
        assert_eq!(
            v1.encode(),
            want,
            "version 1 is SCALE(change, nonce) | signature"
        );

        let v2 = SignedChange::sign_as(Scheme::Substrate, &owner(), change, 3);
        let wire = v2.encode();
        assert_eq!(wire[0], REGISTRY_V2_TAG);
        assert_eq!(
            &wire[1..wire.len() - 64],
            &want[..want.len() - 64],
            "then the same SCALE body"
        );
        let mut r = Registry::new(owner().public());
        r.apply(&signed(Change::Publish(meta(5, 1)), 1)).unwrap();
        assert_eq!(r.verify(&wire).unwrap(), v2);
        // Either signature under the other version does not verify.
        let as_v1 = wire[1..].to_vec();
        assert_eq!(r.verify(&as_v1), Err(RegistryError::BadSignature));
        let mut as_v2 = vec![REGISTRY_V2_TAG];
        as_v2.extend_from_slice(&v1.encode());
        assert_eq!(r.verify(&as_v2), Err(RegistryError::BadSignature));
        r.apply(&wire).unwrap();
        assert_eq!(r.active().map(|m| m.id).collect::<Vec<_>>(), vec![5]);
        assert_eq!(r.verify(&[REGISTRY_V2_TAG]), Err(RegistryError::Malformed));
    }

    #[test]
    fn random_bytes_never_panic() {
        let r = Registry::new(owner().public());
        for valid in [
            signed(Change::Publish(meta(3, 1)), 1),
            SignedChange::sign_as(Scheme::Substrate, &owner(), Change::Publish(meta(3, 1)), 1)
                .encode(),
        ] {
            mutate_and_verify(&r, &valid);
        }
    }

    fn mutate_and_verify(r: &Registry, valid: &[u8]) {
        let mut x = 7u64;
        for i in 0..20_000usize {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let mut b = valid.to_vec();
            let at = (x >> 33) as usize % b.len();
            b[at] ^= (x >> 8) as u8 | 1;
            b.truncate(b.len() - i % 3);
            assert!(r.verify(&b).is_err() || b == valid);
        }
    }

    #[test]
    fn a_challenge_names_its_mechanism_and_older_entries_read_as_mechanism_0() {
        let mut r = Registry::new(owner().public());
        r.apply(&signed(Change::Publish(meta(4, 1)), 1)).unwrap();
        let before = r.entries()[&4].encode();
        assert_eq!(
            before,
            (&meta(4, 1), false).encode(),
            "a mechanism-0 entry keeps the bytes it had before mechanisms"
        );
        // The new change is variant 4; the first four keep their indexes.
        let set = Change::SetMechanism { id: 4, mecid: 2 };
        assert_eq!(set.encode(), vec![4, 4, 0, 0, 0, 2]);
        assert_eq!(Change::Deactivate(4).encode()[0], 3);
        assert_eq!(
            r.verify(&signed(Change::SetMechanism { id: 9, mecid: 1 }, 2)),
            Err(RegistryError::Unknown(9))
        );
        assert_eq!(
            r.verify(&signed(Change::SetMechanism { id: 4, mecid: 16 }, 2)),
            Err(RegistryError::Invalid("mechanism must be 0 to 15"))
        );
        r.apply(&signed(set, 2)).unwrap();
        let e = &r.entries()[&4];
        assert_eq!(e.mechanism, 2);
        let stored = e.encode();
        assert_eq!(stored.len(), before.len() + 1);
        // Restored from storage, old and new entries alike.
        let back = Registry::restore(owner().public(), &[(4, stored)], 2).unwrap();
        assert_eq!(back.entries()[&4].mechanism, 2);
        let old = Registry::restore(owner().public(), &[(4, before)], 1).unwrap();
        assert_eq!(old.entries()[&4].mechanism, 0);
    }
}
