//! Submission batches: how accepted submissions travel between validators.
//!
//! A validator bundles the submissions it accepted from miners over a short window into one
//! content-addressed batch, keeps it in its blob cache, and gossips a small signed
//! announcement (`BatchAnnounce`: hash, count, size). Peers fetch the batch once by hash
//! from the announcer and open it off the net thread: every entry is checked structurally
//! without copying (a `zerocopy` view of the envelope header) and all miner signatures are
//! verified in one batch verification. A batch whose hash, structure or any signature fails
//! is refused whole; entries that are merely stale, replayed or from unregistered miners are
//! dropped one by one by the net thread, and the rest kept.
//!
//! Layouts (little endian; see docs/net-wire.md):
//!
//! ```text
//! announcement (payload on /platform/batches/1): version u8 = 1 | hash [32] | count u32 | bytes u32
//! batch blob (sha256 = hash):                    version u8 = 1 | count u32 | (len u32 | envelope [len]) × count
//! ```

use std::ops::Range;

use zerocopy::little_endian::{U32, U64};
use zerocopy::{FromBytes, Immutable, KnownLayout, Unaligned};

use crate::stats::Reason;
use crate::wire::{ENVELOPE_OVERHEAD, Hash32, Scheme, Submission, Topic, WIRE_VERSION, sha256};

/// Most entries one batch may declare (a bound on what a peer can make us allocate).
pub const MAX_ENTRIES: usize = 65_536;
/// Bytes of an encoded announcement.
pub const ANNOUNCE_BYTES: usize = 1 + 32 + 4 + 4;
const BATCH_HEADER: usize = 1 + 4;

/// A validator's announcement of a batch it serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchAnnounce {
    /// sha256 of the batch blob.
    pub hash: Hash32,
    /// Entries in it.
    pub count: u32,
    /// Its size in bytes.
    pub bytes: u32,
}

impl BatchAnnounce {
    /// The announcement's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(ANNOUNCE_BYTES);
        b.push(WIRE_VERSION);
        b.extend_from_slice(&self.hash);
        b.extend_from_slice(&self.count.to_le_bytes());
        b.extend_from_slice(&self.bytes.to_le_bytes());
        b
    }

    /// Decode exactly one announcement.
    pub fn decode(bytes: &[u8]) -> Option<BatchAnnounce> {
        if bytes.len() != ANNOUNCE_BYTES || bytes[0] != WIRE_VERSION {
            return None;
        }
        let a = BatchAnnounce {
            hash: bytes[1..33].try_into().ok()?,
            count: u32::from_le_bytes(bytes[33..37].try_into().ok()?),
            bytes: u32::from_le_bytes(bytes[37..41].try_into().ok()?),
        };
        (a.count >= 1 && a.count as usize <= MAX_ENTRIES).then_some(a)
    }
}

/// The envelope header as it lies on the wire, read in place.
#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct EnvelopeHeader {
    version: u8,
    topic: u8,
    author: [u8; 32],
    issued_at_ms: U64,
    len: U32,
}

/// One entry of an opened batch: where its envelope lies in the batch, and what the net
/// thread still checks per entry (freshness, author).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The envelope's bytes within the batch.
    pub range: Range<usize>,
    /// The miner's hotkey.
    pub author: [u8; 32],
    /// The miner's timestamp.
    pub issued_at_ms: u64,
}

/// Submissions gathered for the next batch.
#[derive(Debug, Default)]
pub struct Outbox {
    buf: Vec<u8>,
    count: u32,
}

impl Outbox {
    /// Add one accepted submission envelope.
    pub fn push(&mut self, envelope: &[u8]) {
        if self.buf.is_empty() {
            self.buf.push(WIRE_VERSION);
            self.buf.extend_from_slice(&0u32.to_le_bytes());
        }
        self.buf
            .extend_from_slice(&(envelope.len() as u32).to_le_bytes());
        self.buf.extend_from_slice(envelope);
        self.count += 1;
    }

    /// Entries waiting.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// Nothing waiting.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Bytes the batch would have now.
    pub fn bytes(&self) -> usize {
        self.buf.len()
    }

    /// Whether one more envelope of `len` bytes would pass `max_entries` or `max_bytes`.
    pub fn full_for(&self, len: usize, max_entries: usize, max_bytes: usize) -> bool {
        !self.is_empty()
            && (self.len() >= max_entries || self.bytes().max(BATCH_HEADER) + 4 + len > max_bytes)
    }

    /// Seal what is waiting into a batch blob and its announcement.
    pub fn seal(&mut self) -> Option<(BatchAnnounce, Vec<u8>)> {
        if self.is_empty() {
            return None;
        }
        let mut blob = std::mem::take(&mut self.buf);
        blob[1..5].copy_from_slice(&self.count.to_le_bytes());
        let a = BatchAnnounce {
            hash: sha256(&blob),
            count: self.count,
            bytes: blob.len() as u32,
        };
        self.count = 0;
        Some((a, blob))
    }
}

/// Open a fetched batch: check that it is what `announce` named, that every entry is a
/// well-formed submission envelope of at most `max_envelope` bytes, and that every miner
/// signature verifies (in one batch verification). Any failure refuses the batch whole,
/// with the reason.
pub fn open(
    bytes: &[u8],
    announce: &BatchAnnounce,
    max_envelope: usize,
) -> Result<Vec<Entry>, Reason> {
    if bytes.len() != announce.bytes as usize || sha256(bytes) != announce.hash {
        return Err(Reason::HashMismatch);
    }
    if bytes.len() < BATCH_HEADER || bytes[0] != WIRE_VERSION {
        return Err(Reason::Malformed);
    }
    let count = u32::from_le_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
    if count != announce.count || count == 0 || count as usize > MAX_ENTRIES {
        return Err(Reason::Malformed);
    }
    let mut entries = Vec::with_capacity(count as usize);
    let mut at = BATCH_HEADER;
    for _ in 0..count {
        let len_bytes = bytes.get(at..at + 4).ok_or(Reason::Malformed)?;
        let len = u32::from_le_bytes(len_bytes.try_into().map_err(|_| Reason::Malformed)?) as usize;
        at += 4;
        if len > max_envelope {
            return Err(Reason::Oversized);
        }
        let env = bytes.get(at..at + len).ok_or(Reason::Malformed)?;
        let (h, rest) = EnvelopeHeader::ref_from_prefix(env).map_err(|_| Reason::Malformed)?;
        if Scheme::of_version(h.version).is_none() || rest.len() != h.len.get() as usize + 64 {
            return Err(Reason::Malformed);
        }
        if h.topic != Topic::Submissions as u8 {
            return Err(Reason::WrongTopic);
        }
        Submission::decode(&rest[..rest.len() - 64]).map_err(|_| Reason::InvalidPayload)?;
        entries.push(Entry {
            range: at..at + len,
            author: h.author,
            issued_at_ms: h.issued_at_ms.get(),
        });
        at += len;
    }
    if at != bytes.len() {
        return Err(Reason::Malformed);
    }
    // One batch verification per signing scheme (each has its own context).
    let envs: Vec<&[u8]> = entries.iter().map(|e| &bytes[e.range.clone()]).collect();
    if !crate::verify::all_valid(&envs) {
        return Err(Reason::BadSignature);
    }
    Ok(entries)
}

/// The largest envelope a batch entry may be under these payload limits.
pub fn max_envelope(max_submission_payload: usize) -> usize {
    max_submission_payload + ENVELOPE_OVERHEAD
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Envelope;
    use platform_keys::Keypair;

    fn submission(miner: u8, n: u64) -> Vec<u8> {
        let key = Keypair::from_seed(&[miner; 32]);
        let payload = Submission {
            challenge: 1,
            epoch: 7,
            body: n.to_le_bytes().to_vec(),
        }
        .encode();
        Envelope::sign(&key, Topic::Submissions, 1_000 + n, payload).encode()
    }

    fn sealed(envs: &[Vec<u8>]) -> (BatchAnnounce, Vec<u8>) {
        let mut o = Outbox::default();
        for e in envs {
            o.push(e);
        }
        o.seal().unwrap()
    }

    #[test]
    fn a_sealed_batch_opens_to_its_entries_in_order() {
        let envs: Vec<Vec<u8>> = (0..50).map(|i| submission(i as u8 % 7, i)).collect();
        let (a, blob) = sealed(&envs);
        assert_eq!(a.count, 50);
        assert_eq!(BatchAnnounce::decode(&a.encode()), Some(a));
        let entries = open(&blob, &a, 4096).unwrap();
        assert_eq!(entries.len(), 50);
        for (e, env) in entries.iter().zip(&envs) {
            assert_eq!(&blob[e.range.clone()], env.as_slice());
            let d = Envelope::decode(env).unwrap();
            assert_eq!((e.author, e.issued_at_ms), (d.author, d.issued_at_ms));
        }
        let mut empty = Outbox::default();
        assert!(empty.seal().is_none());
    }

    #[test]
    fn a_forged_entry_refuses_the_whole_batch() {
        let mut envs: Vec<Vec<u8>> = (0..20).map(|i| submission(3, i)).collect();
        // Entry 11 claims another miner's key: structure fine, signature not.
        envs[11][2..34].copy_from_slice(&Keypair::from_seed(&[9; 32]).public());
        let (a, blob) = sealed(&envs);
        assert_eq!(open(&blob, &a, 4096), Err(Reason::BadSignature));
    }

    #[test]
    fn entries_of_both_signing_schemes_open_and_a_forged_one_of_either_refuses() {
        let key = Keypair::from_seed(&[4; 32]);
        let v2 = |n: u64| {
            let payload = Submission {
                challenge: 1,
                epoch: 7,
                body: n.to_le_bytes().to_vec(),
            }
            .encode();
            Envelope::sign_as(
                crate::wire::Scheme::Substrate,
                &key,
                Topic::Submissions,
                n,
                payload,
            )
            .encode()
        };
        let envs: Vec<Vec<u8>> = (0..10)
            .map(|i| if i % 2 == 0 { submission(2, i) } else { v2(i) })
            .collect();
        let (a, blob) = sealed(&envs);
        assert_eq!(open(&blob, &a, 4096).unwrap().len(), 10);
        for forged in [4, 5] {
            let mut bad = envs.clone();
            let last = bad[forged].len() - 1;
            bad[forged][last] ^= 1;
            let (a, blob) = sealed(&bad);
            assert_eq!(
                open(&blob, &a, 4096),
                Err(Reason::BadSignature),
                "entry {forged}"
            );
        }
    }

    #[test]
    fn bad_bytes_are_refused_with_the_reason() {
        let envs: Vec<Vec<u8>> = (0..4).map(|i| submission(1, i)).collect();
        let (a, blob) = sealed(&envs);
        // Not what was announced.
        let mut other = blob.clone();
        other[20] ^= 1;
        assert_eq!(open(&other, &a, 4096), Err(Reason::HashMismatch));
        // A consistent announcement over malformed content: truncated entry.
        let cut = &blob[..blob.len() - 3];
        let a2 = BatchAnnounce {
            hash: sha256(cut),
            bytes: cut.len() as u32,
            ..a
        };
        assert_eq!(open(cut, &a2, 4096), Err(Reason::Malformed));
        // Count mismatch with the announcement.
        let a3 = BatchAnnounce { count: 5, ..a };
        assert_eq!(open(&blob, &a3, 4096), Err(Reason::Malformed));
        // Entries above the limit.
        assert_eq!(open(&blob, &a, 64), Err(Reason::Oversized));
        // A non-submission envelope inside.
        let key = Keypair::from_seed(&[1; 32]);
        let wrong = Envelope::sign(&key, Topic::Consensus, 5, vec![1, 2, 3]).encode();
        let (a4, b4) = sealed(&[envs[0].clone(), wrong]);
        assert_eq!(open(&b4, &a4, 4096), Err(Reason::WrongTopic));
        // Garbage announcements.
        assert_eq!(BatchAnnounce::decode(&[1; 40]), None);
        let zero = BatchAnnounce { count: 0, ..a }.encode();
        assert_eq!(BatchAnnounce::decode(&zero), None);
    }

    #[test]
    fn the_outbox_says_when_it_is_full() {
        let mut o = Outbox::default();
        assert!(
            !o.full_for(100, 2, 1000),
            "an empty outbox always takes one"
        );
        o.push(&[0; 100]);
        assert!(!o.full_for(100, 2, 1000));
        assert!(o.full_for(900, 2, 1000), "bytes");
        o.push(&[0; 100]);
        assert!(o.full_for(1, 2, 1000), "entries");
    }
}
