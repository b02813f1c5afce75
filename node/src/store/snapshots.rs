//! Snapshots in the store: their manifests and chunks by sha256 (served to peers as blobs),
//! which heights are kept, the latest certified decision naming one (what a catching-up
//! peer is offered), and installing a snapshot fetched from peers in one transaction.

use parity_scale_codec::{Decode as _, Encode as _};
use redb::{ReadableDatabase, ReadableTable, TableDefinition};

use super::{
    EPOCHS, META, META_APPLIED_HEIGHT, META_LAST_EPOCH, META_REGISTRY_NONCE, REGISTRY, Store,
    StoreError, db,
};
use crate::snapshot::{AppState, Snapshot, SnapshotRef};

/// Snapshot manifests and chunks by sha256.
pub(super) const SNAPSHOT_BLOBS: TableDefinition<&[u8; 32], &[u8]> =
    TableDefinition::new("snapshot_blobs");
/// Kept snapshots by height: SCALE(manifest hash, chunk hashes).
const SNAPSHOTS: TableDefinition<u64, &[u8]> = TableDefinition::new("snapshots");
/// The latest applied decisions whose values name a snapshot, by height (each encoded with
/// its certificate): what a peer catching up is offered.
pub(super) const CHECKPOINTS: TableDefinition<u64, &[u8]> =
    TableDefinition::new("checkpoint_decisions");
/// Decisions kept in `CHECKPOINTS` (more than a checkpoint interval's worth).
pub const CHECKPOINT_TAIL: usize = 32;

pub(super) fn create(tx: &redb::WriteTransaction) -> Result<(), StoreError> {
    tx.open_table(SNAPSHOT_BLOBS).map_err(db)?;
    tx.open_table(SNAPSHOTS).map_err(db)?;
    tx.open_table(CHECKPOINTS).map_err(db)?;
    Ok(())
}

fn put(tx: &redb::WriteTransaction, snap: &Snapshot, keep: usize) -> Result<(), StoreError> {
    let mut blobs = tx.open_table(SNAPSHOT_BLOBS).map_err(db)?;
    let mut kept = tx.open_table(SNAPSHOTS).map_err(db)?;
    blobs
        .insert(&snap.reference.manifest, snap.manifest.as_slice())
        .map_err(db)?;
    let mut hashes = Vec::with_capacity(snap.chunks.len());
    for c in &snap.chunks {
        let h = platform_types::sha256(c);
        blobs.insert(&h, c.as_slice()).map_err(db)?;
        hashes.push(h);
    }
    kept.insert(
        snap.reference.height,
        (snap.reference.manifest, hashes).encode().as_slice(),
    )
    .map_err(db)?;
    // Older snapshots go, blobs and all (a chunk shared with a kept one stays).
    let heights: Vec<u64> = kept
        .iter()
        .map_err(db)?
        .map(|r| r.map(|(k, _)| k.value()).map_err(db))
        .collect::<Result<_, _>>()?;
    let drop = heights.len().saturating_sub(keep);
    let mut live = std::collections::BTreeSet::new();
    for h in &heights[drop..] {
        if let Some(v) = kept.get(h).map_err(db)? {
            let (m, cs) = <([u8; 32], Vec<[u8; 32]>)>::decode(&mut v.value())
                .map_err(|_| StoreError::Corrupt("snapshot"))?;
            live.insert(m);
            live.extend(cs);
        }
    }
    for h in &heights[..drop] {
        let gone = kept
            .remove(h)
            .map_err(db)?
            .map(|v| <([u8; 32], Vec<[u8; 32]>)>::decode(&mut v.value()));
        let Some(Ok((m, cs))) = gone else {
            continue;
        };
        for b in std::iter::once(m).chain(cs) {
            if !live.contains(&b) {
                blobs.remove(&b).map_err(db)?;
            }
        }
    }
    Ok(())
}

impl Store {
    /// Keep a snapshot this node took (its blobs, served to peers) and forget all but the
    /// latest `keep`.
    pub fn put_snapshot(&self, snap: &Snapshot, keep: usize) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(db)?;
        put(&tx, snap, keep)?;
        tx.commit().map_err(db)
    }

    /// The snapshots kept, by height.
    pub fn snapshot_refs(&self) -> Result<Vec<SnapshotRef>, StoreError> {
        let tx = self.db.begin_read().map_err(db)?;
        let t = tx.open_table(SNAPSHOTS).map_err(db)?;
        t.iter()
            .map_err(db)?
            .map(|r| {
                let (k, v) = r.map_err(db)?;
                let (manifest, _) = <([u8; 32], Vec<[u8; 32]>)>::decode(&mut v.value())
                    .map_err(|_| StoreError::Corrupt("snapshot"))?;
                Ok(SnapshotRef {
                    height: k.value(),
                    manifest,
                })
            })
            .collect()
    }

    /// Remember an applied decision that names a snapshot (peers catching up are offered
    /// the latest [`CHECKPOINT_TAIL`]).
    pub fn put_checkpoint(&self, height: u64, decision: &[u8]) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(db)?;
        {
            let mut t = tx.open_table(CHECKPOINTS).map_err(db)?;
            t.insert(height, decision).map_err(db)?;
            let first = height.saturating_sub(CHECKPOINT_TAIL as u64 - 1);
            t.retain(|h, _| h >= first).map_err(db)?;
        }
        tx.commit().map_err(db)
    }

    /// Install a snapshot fetched from peers, in one transaction: the registry replaced, the
    /// committed record of its epoch, the applied height, nonce and epoch, and its blobs kept.
    pub fn install_snapshot(
        &self,
        state: &AppState,
        snap: &Snapshot,
        keep: usize,
    ) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(db)?;
        {
            let mut reg = tx.open_table(REGISTRY).map_err(db)?;
            reg.retain(|_, _| false).map_err(db)?;
            for (id, entry) in &state.registry {
                reg.insert(*id, entry.as_slice()).map_err(db)?;
            }
            tx.open_table(EPOCHS)
                .map_err(db)?
                .insert(state.epoch, state.record.as_slice())
                .map_err(db)?;
            let mut meta = tx.open_table(META).map_err(db)?;
            meta.insert(META_APPLIED_HEIGHT, state.height).map_err(db)?;
            meta.insert(META_REGISTRY_NONCE, state.nonce).map_err(db)?;
            meta.insert(META_LAST_EPOCH, state.epoch).map_err(db)?;
        }
        put(&tx, snap, keep)?;
        tx.commit().map_err(db)
    }
}
