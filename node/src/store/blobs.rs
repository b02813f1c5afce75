//! The store as the net's durable blob source: modules, epoch batches, signed submissions
//! and snapshot chunks by sha256, and the latest certified checkpoint, so a
//! peer can fetch what this node holds after the net's memory evicted it or the node
//! restarted (`platform_net::BlobSource`).

use std::sync::Arc;

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

use super::envelopes::{self, ENVELOPES, EnvelopeIndex};
use super::snapshots::{CHECKPOINTS, SNAPSHOT_BLOBS};
use super::{BATCHES, MODULES, StoreError, db};

/// Batch envelopes by sha256 (the id a batch is fetched and proposed by) → its key in
/// `batches` (epoch, author).
pub(super) const BATCH_IDS: TableDefinition<&[u8; 32], (u64, &[u8; 32])> =
    TableDefinition::new("batch_ids");
/// An author's later batches for an epoch (after its first, which `batches` keeps), by sha256.
pub(super) const EXTRA_BATCHES: TableDefinition<&[u8; 32], &[u8]> =
    TableDefinition::new("extra_batches");

/// Keep an author's later batch by id.
pub(super) fn keep_extra_batch(
    tx: &redb::WriteTransaction,
    envelope: &[u8],
) -> Result<(), StoreError> {
    tx.open_table(EXTRA_BATCHES)
        .map_err(db)?
        .insert(&platform_types::sha256(envelope), envelope)
        .map_err(db)?;
    Ok(())
}

/// Index a batch just kept.
pub(super) fn index_batch(
    tx: &redb::WriteTransaction,
    epoch: u64,
    author: &[u8; 32],
    envelope: &[u8],
) -> Result<(), StoreError> {
    tx.open_table(BATCH_IDS)
        .map_err(db)?
        .insert(&platform_types::sha256(envelope), (epoch, author))
        .map_err(db)?;
    Ok(())
}

/// Create the index, and fill it from the kept batches when a store written before it has
/// some (once: an index with entries is complete, as every batch is indexed when kept).
pub(super) fn index_batches(tx: &redb::WriteTransaction) -> Result<(), StoreError> {
    tx.open_table(EXTRA_BATCHES).map_err(db)?;
    let mut ids = tx.open_table(BATCH_IDS).map_err(db)?;
    if !ids.is_empty().map_err(db)? {
        return Ok(());
    }
    let batches = tx.open_table(BATCHES).map_err(db)?;
    for row in batches.iter().map_err(db)? {
        let (k, v) = row.map_err(db)?;
        let (epoch, author) = k.value();
        ids.insert(&platform_types::sha256(v.value()), (epoch, author))
            .map_err(db)?;
    }
    Ok(())
}

/// A read handle on the store for the net thread.
#[derive(Clone)]
pub struct StoreBlobs(pub(super) Arc<Database>, pub(super) EnvelopeIndex);

impl std::fmt::Debug for StoreBlobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreBlobs")
    }
}

impl StoreBlobs {
    /// Whether a module or batch with this hash is kept, without reading it.
    fn contains(&self, hash: &[u8; 32]) -> Result<bool, StoreError> {
        let tx = self.0.begin_read().map_err(db)?;
        Ok(tx
            .open_table(MODULES)
            .map_err(db)?
            .get(hash)
            .map_err(db)?
            .is_some()
            || tx
                .open_table(BATCH_IDS)
                .map_err(db)?
                .get(hash)
                .map_err(db)?
                .is_some()
            || tx
                .open_table(SNAPSHOT_BLOBS)
                .map_err(db)?
                .get(hash)
                .map_err(db)?
                .is_some()
            || tx
                .open_table(EXTRA_BATCHES)
                .map_err(db)?
                .get(hash)
                .map_err(db)?
                .is_some()
            || self.1.place(hash).is_some())
    }

    fn read(&self, hash: &[u8; 32]) -> Result<Option<Vec<u8>>, StoreError> {
        let tx = self.0.begin_read().map_err(db)?;
        if let Some(m) = tx.open_table(MODULES).map_err(db)?.get(hash).map_err(db)? {
            return Ok(Some(m.value().to_vec()));
        }
        for table in [SNAPSHOT_BLOBS, EXTRA_BATCHES] {
            if let Some(b) = tx.open_table(table).map_err(db)?.get(hash).map_err(db)? {
                return Ok(Some(b.value().to_vec()));
            }
        }
        let kept = tx.open_table(ENVELOPES).map_err(db)?;
        if let Some(b) = envelopes::get(&kept, &self.1, hash)? {
            return Ok(Some(b));
        }
        let Some(key) = tx
            .open_table(BATCH_IDS)
            .map_err(db)?
            .get(hash)
            .map_err(db)?
        else {
            return Ok(None);
        };
        let (epoch, author) = key.value();
        let batches = tx.open_table(BATCHES).map_err(db)?;
        let envelope = batches.get((epoch, author)).map_err(db)?;
        Ok(envelope.map(|v| v.value().to_vec()))
    }
}

impl platform_net::BlobSource for StoreBlobs {
    fn holds(&self, hash: &[u8; 32]) -> bool {
        self.contains(hash).unwrap_or(false)
    }

    fn blob(&self, hash: &[u8; 32]) -> Option<Vec<u8>> {
        match self.read(hash) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!("serving blob {} from the store: {e}", hex::encode(hash));
                None
            }
        }
    }

    fn checkpoint(&self) -> Option<Vec<u8>> {
        let read = || -> Result<Option<Vec<u8>>, StoreError> {
            let tx = self.0.begin_read().map_err(db)?;
            let t = tx.open_table(CHECKPOINTS).map_err(db)?;
            let tail: Vec<Vec<u8>> = t
                .iter()
                .map_err(db)?
                .map(|r| r.map(|(_, v)| v.value().to_vec()).map_err(db))
                .collect::<Result<_, _>>()?;
            Ok((!tail.is_empty()).then(|| parity_scale_codec::Encode::encode(&tail)))
        };
        read().unwrap_or_else(|e| {
            tracing::warn!("serving the latest checkpoint from the store: {e}");
            None
        })
    }
}
