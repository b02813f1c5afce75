//! Submission envelopes: kept by (epoch, arrival sequence), so each one kept under load is an
//! append at the end of its epoch's range — the pages a commit writes are the few at the
//! table's end, not one B-tree leaf per envelope at a random place, as keying them by id
//! did. Lookups by id (a peer fetching a submission by hash, `platform verify`, the
//! one-per-id rule when keeping) go through [`EnvelopeIndex`], an in-memory map from the
//! id's first 128 bits to the envelope's key, rebuilt at open from the envelopes themselves
//! (~40 bytes per kept envelope; retention bounds both). An envelope found is checked against
//! the full id by hashing it; a result is looked up where its submission's place says (two
//! ids sharing 128 bits is a 2^-128 event).
//!
//! Evaluation results are kept the same way, under their submission's (epoch, arrival) key
//! ([`RESULTS_AT`]): evaluations finish in about arrival order, so those are appends near the
//! table's end too. A result whose submission is not kept (none is expected) goes to the
//! by-(epoch, id) table earlier releases wrote, which is read after this one.
//!
//! Stores written by earlier releases kept envelopes by id (`submission_bodies`) with an
//! (epoch, arrival) → id index (`submission_body_epochs`); they are moved over once, at open.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use redb::{ReadableTable, ReadableTableMetadata, TableDefinition};

use super::retention::BODY_EPOCHS;
use super::{BODIES, StoreError, db, retention};

/// Submission envelopes by (epoch, arrival sequence).
pub(super) const ENVELOPES: TableDefinition<(u64, u64), &[u8]> =
    TableDefinition::new("submission_envelopes");

/// Canonical evaluation records by their submission's key in [`ENVELOPES`].
pub(super) const RESULTS_AT: TableDefinition<(u64, u64), &[u8]> =
    TableDefinition::new("results_by_arrival");

/// Where an envelope is kept: its key in [`ENVELOPES`].
pub(super) type Place = (u64, u64);

/// The first 128 bits of an id (a sha256 digest): the in-memory index's key.
pub(super) fn half(id: &[u8; 32]) -> u128 {
    u128::from_le_bytes(id[..16].try_into().expect("16 bytes"))
}

/// Kept envelopes by id, in memory, shared by the store and its blob source.
#[derive(Clone, Default)]
pub(super) struct EnvelopeIndex(Arc<RwLock<HashMap<u128, Place>>>);

impl EnvelopeIndex {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<u128, Place>> {
        self.0.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<u128, Place>> {
        self.0.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Where the envelope with this id is kept, if it is.
    pub(super) fn place(&self, id: &[u8; 32]) -> Option<Place> {
        self.read().get(&half(id)).copied()
    }

    /// Envelopes committed: now findable by id.
    pub(super) fn add(&self, added: HashMap<u128, Place>) {
        if !added.is_empty() {
            self.write().extend(added);
        }
    }

    /// Envelopes deleted (by id half).
    pub(super) fn remove(&self, gone: &[u128]) {
        if !gone.is_empty() {
            let mut m = self.write();
            for h in gone {
                m.remove(h);
            }
        }
    }

    /// Rebuilt from the table: every envelope hashed once.
    pub(super) fn build(tx: &redb::WriteTransaction) -> Result<EnvelopeIndex, StoreError> {
        let started = std::time::Instant::now();
        let t = tx.open_table(ENVELOPES).map_err(db)?;
        let mut m = HashMap::with_capacity(t.len().map_err(db)? as usize);
        for row in t.iter().map_err(db)? {
            let (k, v) = row.map_err(db)?;
            m.insert(half(&platform_types::sha256(v.value())), k.value());
        }
        if !m.is_empty() {
            tracing::info!(
                envelopes = m.len(),
                ms = started.elapsed().as_millis() as u64,
                "store: kept submission envelopes indexed by id"
            );
        }
        Ok(EnvelopeIndex(Arc::new(RwLock::new(m))))
    }
}

/// The envelope with this id, read where the index places it and checked against the id.
pub(super) fn get<T: ReadableTable<(u64, u64), &'static [u8]>>(
    table: &T,
    index: &EnvelopeIndex,
    id: &[u8; 32],
) -> Result<Option<Vec<u8>>, StoreError> {
    let Some(place) = index.place(id) else {
        return Ok(None);
    };
    let Some(v) = table.get(place).map_err(db)? else {
        return Ok(None);
    };
    let bytes = v.value();
    Ok((platform_types::sha256(bytes) == *id).then(|| bytes.to_vec()))
}

/// Move a store's envelopes kept by id (an earlier release's layout) to [`ENVELOPES`], in
/// the (epoch, arrival) order its index gave them, under fresh sequence numbers, and drop
/// the old tables. Run at open when the old table exists, after
/// [`retention::index_bodies`] completed that index.
pub(super) fn migrate(tx: &redb::WriteTransaction) -> Result<(), StoreError> {
    let mut moved = 0u64;
    {
        let index = tx.open_table(BODY_EPOCHS).map_err(db)?;
        let bodies = tx.open_table(BODIES).map_err(db)?;
        let n = index.len().map_err(db)? as usize;
        let first = retention::next_seqs(tx, n)?;
        let mut envelopes = tx.open_table(ENVELOPES).map_err(db)?;
        for (seq, row) in (first..).zip(index.iter().map_err(db)?) {
            let (k, id) = row.map_err(db)?;
            let (epoch, _) = k.value();
            if let Some(body) = bodies.get(id.value()).map_err(db)? {
                envelopes.insert((epoch, seq), body.value()).map_err(db)?;
                moved += 1;
            }
        }
    }
    tx.delete_table(BODY_EPOCHS).map_err(db)?;
    tx.delete_table(BODIES).map_err(db)?;
    if moved > 0 {
        tracing::info!("store: moved {moved} submission envelopes to their (epoch, arrival) table");
    }
    Ok(())
}

/// The table a submission is written to, opened once per transaction.
pub(super) struct SubmissionTables<'t> {
    envelopes: redb::Table<'t, (u64, u64), &'static [u8]>,
    /// The next arrival sequence number.
    seq: u64,
    /// Envelopes kept in this transaction, by id half: into the index once it commits.
    pub(super) added: HashMap<u128, Place>,
}

impl<'t> SubmissionTables<'t> {
    pub(super) fn open(tx: &'t redb::WriteTransaction, n: usize) -> Result<Self, StoreError> {
        let seq = retention::next_seqs(tx, n)?;
        Ok(SubmissionTables {
            envelopes: tx.open_table(ENVELOPES).map_err(db)?,
            seq,
            added: HashMap::with_capacity(n),
        })
    }

    /// Keep an envelope under (epoch, arrival) unless one with its id is kept.
    pub(super) fn put(
        &mut self,
        index: &EnvelopeIndex,
        epoch: u64,
        id: &[u8; 32],
        envelope: &[u8],
    ) -> Result<(), StoreError> {
        let h = half(id);
        if !self.added.contains_key(&h) && index.place(id).is_none() {
            let place = (epoch, self.seq);
            self.envelopes.insert(place, envelope).map_err(db)?;
            self.added.insert(h, place);
        }
        self.seq += 1;
        Ok(())
    }
}

/// Delete the envelopes of epochs below `before`, at most `max`: the id halves of those
/// that went (to leave the index once the deletion commits).
pub(super) fn prune(
    tx: &redb::WriteTransaction,
    before: u64,
    max: usize,
) -> Result<Vec<u128>, StoreError> {
    let mut t = tx.open_table(ENVELOPES).map_err(db)?;
    let mut gone = Vec::new();
    for row in t
        .extract_from_if(..(before, 0), |_, _| true)
        .map_err(db)?
        .take(max)
    {
        let (_, v) = row.map_err(db)?;
        gone.push(half(&platform_types::sha256(v.value())));
    }
    Ok(gone)
}
