//! Application snapshots: what a validator's state is after applying a checkpoint height,
//! in canonical bytes, split into content-addressed chunks under a manifest.
//!
//! Every `checkpoint_interval` heights each validator encodes its applied state (the
//! registry, the last committed epoch's record with its weights, the epoch's pin) as an
//! [`AppState`], cuts it into chunks of at most [`CHUNK_BYTES`] and writes a [`Manifest`]
//! naming each chunk's sha256. The manifest's sha256 is the snapshot's hash: the next heights'
//! epoch values name it ([`SnapshotRef`]), so a commit certificate on any of them certifies the
//! snapshot. A node far behind fetches the manifest and its chunks as blobs (request-response,
//! each checked against its hash), checks the whole against the manifest, and installs it.
//!
//! The counted submissions of epochs not yet decided are not part of it: they are each
//! validator's own admissions, not agreed state; those of decided epochs are in the batches
//! the decisions name.

use parity_scale_codec::{Decode, Encode};
use platform_types::sha256;

use crate::machine::{Hash32, Pin};
use crate::msg::{EpochRecord, decode_exact};

/// Version tag of [`AppState`] and [`Manifest`].
pub const SNAPSHOT_VERSION: u8 = 1;
/// Largest chunk.
pub const CHUNK_BYTES: usize = 256 * 1024;
/// Most chunks one manifest may name (so a snapshot is at most 256 MiB).
pub const CHUNKS_MAX: usize = 1024;

/// A committed snapshot, as an epoch value names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode)]
pub struct SnapshotRef {
    /// The checkpoint height whose applied state it is.
    pub height: u64,
    /// sha256 of its manifest.
    pub manifest: Hash32,
}

/// A validator's applied state after a checkpoint height.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct AppState {
    /// [`SNAPSHOT_VERSION`].
    pub version: u8,
    /// The last applied height.
    pub height: u64,
    /// The epoch it decided.
    pub epoch: u64,
    /// That epoch's pinned block.
    pub pin: Pin,
    /// The registry's owner.
    pub owner: [u8; 32],
    /// The registry's last applied nonce.
    pub nonce: u64,
    /// Every registry entry (id, encoded `Entry`), by id.
    pub registry: Vec<(u32, Vec<u8>)>,
    /// The committed epoch's record (encoded `EpochRecord`: digest and weights).
    pub record: Vec<u8>,
}

/// The list of a snapshot's chunks.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Manifest {
    /// [`SNAPSHOT_VERSION`].
    pub version: u8,
    /// The checkpoint height.
    pub height: u64,
    /// Total length of the encoded [`AppState`].
    pub len: u64,
    /// sha256 of each chunk, in order.
    pub chunks: Vec<Hash32>,
}

/// A built snapshot: its reference and the blobs to keep and serve.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// What epoch values name.
    pub reference: SnapshotRef,
    /// The encoded manifest (its sha256 is `reference.manifest`).
    pub manifest: Vec<u8>,
    /// The chunks, in order.
    pub chunks: Vec<Vec<u8>>,
}

/// Why fetched snapshot data was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    /// The manifest does not decode, or names too many chunks or a length they cannot hold.
    #[error("malformed snapshot manifest")]
    Manifest,
    /// A chunk does not hash to the manifest's entry.
    #[error("snapshot chunk does not match the manifest")]
    Chunk,
    /// The chunks do not decode as the state the manifest names.
    #[error("snapshot state does not decode or is not the manifest's height")]
    State,
}

impl SnapshotError {
    /// A short label for metrics.
    pub const fn label(self) -> &'static str {
        match self {
            SnapshotError::Manifest => "manifest",
            SnapshotError::Chunk => "chunk",
            SnapshotError::State => "state",
        }
    }
}

impl AppState {
    /// Encode, chunk and name the state.
    pub fn build(&self) -> Snapshot {
        let bytes = self.encode();
        let chunks: Vec<Vec<u8>> = bytes.chunks(CHUNK_BYTES).map(<[u8]>::to_vec).collect();
        let manifest = Manifest {
            version: SNAPSHOT_VERSION,
            height: self.height,
            len: bytes.len() as u64,
            chunks: chunks.iter().map(|c| sha256(c)).collect(),
        }
        .encode();
        Snapshot {
            reference: SnapshotRef {
                height: self.height,
                manifest: sha256(&manifest),
            },
            manifest,
            chunks,
        }
    }

    /// The committed record it carries.
    pub fn epoch_record(&self) -> Option<EpochRecord> {
        decode_exact(&self.record)
    }
}

impl Manifest {
    /// Decode a fetched manifest (its hash already checked), refusing impossible ones.
    pub fn decode_checked(bytes: &[u8]) -> Result<Manifest, SnapshotError> {
        let m: Manifest = decode_exact(bytes).ok_or(SnapshotError::Manifest)?;
        let fits = m.len <= (m.chunks.len() * CHUNK_BYTES) as u64
            && m.len > ((m.chunks.len().saturating_sub(1)) * CHUNK_BYTES) as u64;
        if m.version != SNAPSHOT_VERSION || m.chunks.len() > CHUNKS_MAX || !fits {
            return Err(SnapshotError::Manifest);
        }
        Ok(m)
    }

    /// Check fetched chunks (in order) against the manifest and decode the state.
    pub fn assemble(&self, chunks: &[Vec<u8>]) -> Result<AppState, SnapshotError> {
        if chunks.len() != self.chunks.len()
            || chunks
                .iter()
                .zip(&self.chunks)
                .any(|(c, h)| sha256(c) != *h)
        {
            return Err(SnapshotError::Chunk);
        }
        let bytes = chunks.concat();
        if bytes.len() as u64 != self.len {
            return Err(SnapshotError::State);
        }
        let state: AppState = decode_exact(&bytes).ok_or(SnapshotError::State)?;
        if state.version != SNAPSHOT_VERSION || state.height != self.height {
            return Err(SnapshotError::State);
        }
        Ok(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(registry_bytes: usize) -> AppState {
        AppState {
            version: SNAPSHOT_VERSION,
            height: 32,
            epoch: 40,
            pin: Pin {
                block: 400,
                hash: [4; 32],
            },
            owner: [1; 32],
            nonce: 3,
            registry: vec![(1, vec![7; registry_bytes]), (2, vec![8; 10])],
            record: EpochRecord {
                height: 32,
                digest: [9; 32],
                weights: vec![(0, 5), (3, 9)],
                mechanism_weights: Vec::new(),
                scored: 2,
                reports: 8,
                flagged: 0,
            }
            .encode(),
        }
    }

    #[test]
    fn a_snapshot_round_trips_through_its_manifest_and_chunks() {
        for size in [0, 100, CHUNK_BYTES, 3 * CHUNK_BYTES + 17] {
            let s = state(size);
            let snap = s.build();
            assert_eq!(snap.reference.manifest, sha256(&snap.manifest));
            assert_eq!(snap.reference.height, 32);
            assert!(snap.chunks.iter().all(|c| c.len() <= CHUNK_BYTES));
            let m = Manifest::decode_checked(&snap.manifest).unwrap();
            assert_eq!(m.chunks.len(), snap.chunks.len());
            assert_eq!(m.assemble(&snap.chunks), Ok(s.clone()));
            assert_eq!(s.epoch_record().unwrap().weights, vec![(0, 5), (3, 9)]);
            // Same state, same bytes: every validator names the same hash.
            assert_eq!(s.build(), snap);
        }
    }

    #[test]
    fn tampered_or_impossible_snapshots_are_refused() {
        let snap = state(2 * CHUNK_BYTES).build();
        let m = Manifest::decode_checked(&snap.manifest).unwrap();
        let mut bad = snap.chunks.clone();
        bad[1][5] ^= 1;
        assert_eq!(m.assemble(&bad), Err(SnapshotError::Chunk));
        assert_eq!(m.assemble(&snap.chunks[..2]), Err(SnapshotError::Chunk));
        let mut swapped = snap.chunks.clone();
        swapped.swap(0, 1);
        assert_eq!(m.assemble(&swapped), Err(SnapshotError::Chunk));
        // A manifest that names chunks whose bytes are not a state of its height.
        let mut other = m.clone();
        other.height = 31;
        assert_eq!(other.assemble(&snap.chunks), Err(SnapshotError::State));
        // Lengths the chunks cannot hold, too many chunks, trailing bytes.
        let mut long = m.clone();
        long.len = (m.chunks.len() * CHUNK_BYTES) as u64 + 1;
        assert_eq!(
            Manifest::decode_checked(&long.encode()),
            Err(SnapshotError::Manifest)
        );
        let mut many = m.clone();
        many.chunks = vec![[0; 32]; CHUNKS_MAX + 1];
        many.len = (CHUNKS_MAX * CHUNK_BYTES) as u64;
        assert_eq!(
            Manifest::decode_checked(&many.encode()),
            Err(SnapshotError::Manifest)
        );
        let mut trailing = snap.manifest.clone();
        trailing.push(0);
        assert_eq!(
            Manifest::decode_checked(&trailing),
            Err(SnapshotError::Manifest)
        );
    }
}
