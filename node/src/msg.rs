//! What validators exchange besides consensus messages (SCALE, canonical for these types):
//! evaluation batches (signed envelopes fetched as blobs) and their gossiped announcements,
//! the value consensus decides per epoch, the record of a committed epoch, and an owner's
//! challenge post.

use parity_scale_codec::{Decode, Encode};

/// Largest number of entries in one batch (bounded: the decoder never allocates beyond it).
pub const BATCH_ENTRIES_MAX: usize = 100_000;
/// Largest number of batches or registry changes one epoch value may name.
pub const VALUE_ITEMS_MAX: usize = 4096;

/// One validator's result for a counted submission.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct BatchEntry {
    /// Challenge id.
    pub challenge: u32,
    /// Miner hotkey.
    pub miner: [u8; 32],
    /// The counted submission's id.
    pub submission: [u8; 32],
    /// Agreed score, or `None` (abstain: not evaluated in time, or a non-agreed outcome).
    pub score: Option<u64>,
}

/// A validator's results for one epoch (signed as an `Evaluations` envelope).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Batch {
    /// The epoch.
    pub epoch: u64,
    /// Its entries, sorted by (challenge, miner).
    pub entries: Vec<BatchEntry>,
}

/// The gossiped announcement of a batch (the payload of a signed `Evaluations` envelope):
/// batches grow with the load, so they travel as blobs fetched by id, never as gossip.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct BatchAnnounce {
    /// The epoch.
    pub epoch: u64,
    /// sha256 of the batch's signed envelope.
    pub id: [u8; 32],
    /// Its number of entries.
    pub entries: u32,
}

/// A validator's note of how far behind its evaluation is (the payload of a signed
/// `/platform/load/1` envelope): the seconds, in ms, the evaluation work it holds would take
/// to drain at the rate it measures. See `machine/pace.rs`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode)]
pub struct LoadNote {
    /// Drain time of the work held, in ms (saturating).
    pub drain_ms: u32,
}

/// Version tag of [`EpochValue`]'s layout. v1 (no tag, no pin) named wall-clock epochs; v2
/// names the epoch's pinned block and roster; v3 adds the snapshot of the latest checkpoint.
pub const EPOCH_VALUE_VERSION: u8 = 3;
/// The layout before snapshots (still decoded: stored decisions are replayed).
pub const EPOCH_VALUE_V2: u8 = 2;

/// What consensus decides at each height: an epoch's inputs and result, plus the registry
/// changes that take effect after it.
///
/// Encoding: `SCALE(version, epoch, pin, roster, batches, changes, digest)`, then, from
/// version 3, `SCALE(snapshot)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EpochValue {
    /// [`EPOCH_VALUE_VERSION`] (or [`EPOCH_VALUE_V2`] in a stored decision).
    pub version: u8,
    /// The epoch.
    pub epoch: u64,
    /// The epoch's first block, where its metagraph was read.
    pub pin: crate::machine::Pin,
    /// `Roster::digest` of the metagraph at `pin`.
    pub roster: [u8; 32],
    /// Ids (sha256 of the signed envelope) of the batches that are the epoch's input, sorted,
    /// at most one per validator.
    pub batches: Vec<[u8; 32]>,
    /// Owner-signed registry changes, in nonce order, applied after the epoch's result.
    pub changes: Vec<Vec<u8>>,
    /// `epoch::compute(...).digest` over those batches.
    pub digest: [u8; 32],
    /// The snapshot of the applied state at the latest checkpoint height below this one
    /// (`None` before the first checkpoint, and in v2 values).
    pub snapshot: Option<crate::snapshot::SnapshotRef>,
}

impl Encode for EpochValue {
    fn encode_to<T: parity_scale_codec::Output + ?Sized>(&self, dest: &mut T) {
        (
            self.version,
            self.epoch,
            self.pin,
            self.roster,
            &self.batches,
            &self.changes,
            self.digest,
        )
            .encode_to(dest);
        if self.version >= EPOCH_VALUE_VERSION {
            self.snapshot.encode_to(dest);
        }
    }
}

impl Decode for EpochValue {
    fn decode<I: parity_scale_codec::Input>(
        input: &mut I,
    ) -> Result<Self, parity_scale_codec::Error> {
        let (version, epoch, pin, roster, batches, changes, digest) = Decode::decode(input)?;
        let snapshot = if version >= EPOCH_VALUE_VERSION {
            Decode::decode(input)?
        } else {
            None
        };
        Ok(EpochValue {
            version,
            epoch,
            pin,
            roster,
            batches,
            changes,
            digest,
            snapshot,
        })
    }
}

/// A committed epoch, as the store keeps it.
///
/// Encoding: `SCALE(height, digest, weights, scored, reports, flagged)`, then
/// `SCALE(mechanism_weights)` only when it is not empty, so records stored before mechanisms
/// decode unchanged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EpochRecord {
    /// Consensus height that committed it.
    pub height: u64,
    /// The result digest.
    pub digest: [u8; 32],
    /// Combined weights (uid, value) for the subnet's mechanism 0.
    pub weights: Vec<(u16, u64)>,
    /// Combined weights for each other mechanism a challenge names.
    pub mechanism_weights: Vec<(u8, Vec<(u16, u64)>)>,
    /// Number of (challenge, miner) pairs with an agreed score.
    pub scored: u32,
    /// Number of reports in the input.
    pub reports: u32,
    /// Validators flagged for disagreeing.
    pub flagged: u32,
}

impl Encode for EpochRecord {
    fn encode_to<T: parity_scale_codec::Output + ?Sized>(&self, dest: &mut T) {
        (
            self.height,
            self.digest,
            &self.weights,
            self.scored,
            self.reports,
            self.flagged,
        )
            .encode_to(dest);
        if !self.mechanism_weights.is_empty() {
            self.mechanism_weights.encode_to(dest);
        }
    }
}

impl Decode for EpochRecord {
    fn decode<I: parity_scale_codec::Input>(
        input: &mut I,
    ) -> Result<Self, parity_scale_codec::Error> {
        let (height, digest, weights, scored, reports, flagged) = Decode::decode(input)?;
        let mechanism_weights = match input.remaining_len()? {
            Some(0) => Vec::new(),
            _ => Decode::decode(input)?,
        };
        Ok(EpochRecord {
            height,
            digest,
            weights,
            mechanism_weights,
            scored,
            reports,
            flagged,
        })
    }
}

/// An owner's challenge change as `platform challenge` sends it to a validator's API: the
/// signed change and, for publish/update, the module bytes.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct ChallengePost {
    /// SCALE-encoded `SignedChange`.
    pub change: Vec<u8>,
    /// The module, when the change names a new one.
    pub module: Option<Vec<u8>>,
}

/// Decode exactly: the whole input, nothing left over.
pub fn decode_exact<T: Decode>(bytes: &[u8]) -> Option<T> {
    let mut input = bytes;
    let v = T::decode(&mut input).ok()?;
    input.is_empty().then_some(v)
}

impl Batch {
    /// Decode a batch payload, refusing oversized or unsorted ones.
    pub fn decode_checked(bytes: &[u8]) -> Option<Batch> {
        let b: Batch = decode_exact(bytes)?;
        let sorted = b
            .entries
            .windows(2)
            .all(|w| (w[0].challenge, w[0].miner) < (w[1].challenge, w[1].miner));
        (b.entries.len() <= BATCH_ENTRIES_MAX && sorted).then_some(b)
    }
}

impl EpochValue {
    /// Decode a proposed value, refusing oversized or non-canonical ones.
    pub fn decode_checked(bytes: &[u8]) -> Option<EpochValue> {
        let v: EpochValue = decode_exact(bytes)?;
        let sorted = v.batches.windows(2).all(|w| w[0] < w[1]);
        ((v.version == EPOCH_VALUE_VERSION || v.version == EPOCH_VALUE_V2)
            && v.batches.len() <= VALUE_ITEMS_MAX
            && v.changes.len() <= VALUE_ITEMS_MAX
            && sorted)
            .then_some(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_and_non_canonical_ones_are_refused() {
        let v = EpochValue {
            version: EPOCH_VALUE_VERSION,
            epoch: 9,
            pin: crate::machine::Pin {
                block: 90,
                hash: [3; 32],
            },
            roster: [4; 32],
            batches: vec![[1; 32], [2; 32]],
            changes: vec![vec![1, 2, 3]],
            digest: [7; 32],
            snapshot: Some(crate::snapshot::SnapshotRef {
                height: 16,
                manifest: [8; 32],
            }),
        };
        assert_eq!(EpochValue::decode_checked(&v.encode()), Some(v.clone()));
        // A v2 value (stored before snapshots) decodes without one.
        let v2 = EpochValue {
            version: EPOCH_VALUE_V2,
            snapshot: None,
            ..v.clone()
        };
        let v2_bytes = v2.encode();
        assert_eq!(
            v2_bytes.len()
                + Some(crate::snapshot::SnapshotRef {
                    height: 16,
                    manifest: [8; 32],
                })
                .encode()
                .len(),
            v.encode().len()
        );
        assert_eq!(EpochValue::decode_checked(&v2_bytes), Some(v2));
        let mut unsorted = v.clone();
        unsorted.batches.reverse();
        assert_eq!(EpochValue::decode_checked(&unsorted.encode()), None);
        let mut v1 = v.clone();
        v1.version = 1;
        assert_eq!(EpochValue::decode_checked(&v1.encode()), None, "old layout");
        let mut trailing = v.encode();
        trailing.push(0);
        assert_eq!(EpochValue::decode_checked(&trailing), None);
        let b = Batch {
            epoch: 1,
            entries: vec![
                BatchEntry {
                    challenge: 1,
                    miner: [1; 32],
                    submission: [0; 32],
                    score: Some(5),
                },
                BatchEntry {
                    challenge: 1,
                    miner: [1; 32],
                    submission: [1; 32],
                    score: None,
                },
            ],
        };
        assert_eq!(Batch::decode_checked(&b.encode()), None, "duplicate pair");
    }

    #[test]
    fn epoch_records_from_before_mechanisms_still_decode() {
        let mut r = EpochRecord {
            height: 5,
            digest: [9; 32],
            weights: vec![(1, 7), (3, 8)],
            mechanism_weights: Vec::new(),
            scored: 2,
            reports: 8,
            flagged: 0,
        };
        let old = (
            5u64,
            [9u8; 32],
            vec![(1u16, 7u64), (3, 8)],
            2u32,
            8u32,
            0u32,
        )
            .encode();
        assert_eq!(r.encode(), old, "no mechanisms: the bytes of before");
        assert_eq!(decode_exact::<EpochRecord>(&old), Some(r.clone()));
        r.mechanism_weights = vec![(1, vec![(2, 4)]), (3, vec![(0, 1)])];
        let new = r.encode();
        assert_eq!(new.len(), old.len() + r.mechanism_weights.encode().len());
        assert_eq!(decode_exact::<EpochRecord>(&new), Some(r));
        assert_eq!(decode_exact::<EpochRecord>(&new[..new.len() - 1]), None);
    }

    #[test]
    fn garbage_never_panics() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for len in 0..2000usize {
            let bytes: Vec<u8> = (0..len % 300)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            let _ = EpochValue::decode_checked(&bytes);
            let _ = Batch::decode_checked(&bytes);
            let _ = decode_exact::<ChallengePost>(&bytes);
            let _ = decode_exact::<EpochRecord>(&bytes);
            let _ = decode_exact::<BatchAnnounce>(&bytes);
        }
    }
}
