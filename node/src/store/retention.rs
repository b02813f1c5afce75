//! Retention: what the store keeps of old epochs. Submission envelopes, their counted index,
//! evaluation results, audit records and signed batches of epochs older than the retention
//! horizon are deleted as epochs are applied, a bounded amount per call, so the file stops
//! growing with the load; committed epoch records, the registry, modules and snapshots stay.
//!
//! Envelopes are kept by (epoch, arrival sequence) (see `envelopes`), so an old epoch's are
//! one range at the table's front. Earlier releases kept them by id with an (epoch, arrival)
//! index, `submission_body_epochs`; a store written before even that index gets it filled
//! once, at open, from the envelopes themselves (each names its epoch), and then moved over.

use redb::{ReadableTable, ReadableTableMetadata, TableDefinition};

use super::blobs::{BATCH_IDS, EXTRA_BATCHES};
use super::{
    AUDIT, AuditRecord, BATCHES, BODIES, META, RESULTS, SUBMISSIONS, Store, StoreError, db,
    envelopes,
};

/// Envelope ids by (epoch, arrival sequence), as earlier releases indexed them (moved to
/// `envelopes::ENVELOPES` at open).
pub(super) const BODY_EPOCHS: TableDefinition<(u64, u64), &[u8; 32]> =
    TableDefinition::new("submission_body_epochs");

/// Meta key: the next arrival sequence number of kept envelopes.
const META_BODY_SEQ: &str = "body_seq";
/// Meta key: epochs below this one have been pruned.
pub const META_PRUNED_BELOW: &str = "pruned_below";

/// Rows deleted per table at most by one [`prune`] call: an epoch of a loaded subnet fits,
/// and a store catching up on a long backlog does it over several calls, none long.
pub const PRUNE_MAX_ROWS: usize = 50_000;

/// The epoch a stored submission envelope names (`None` if it does not decode).
fn envelope_epoch(envelope: &[u8]) -> Option<u64> {
    super::counted::decode([0; 32], envelope).map(|k| k.epoch)
}

/// The epoch a stored signed batch names (its payload starts with the SCALE epoch).
fn batch_epoch(envelope: &[u8]) -> Option<u64> {
    let env = platform_net::Envelope::decode(envelope).ok()?;
    let head: [u8; 8] = env.payload.get(..8)?.try_into().ok()?;
    Some(u64::from_le_bytes(head))
}

/// Sequence numbers for `n` new envelopes: the first one, and the counter moved past them.
pub(super) fn next_seqs(tx: &redb::WriteTransaction, n: usize) -> Result<u64, StoreError> {
    let mut meta = tx.open_table(META).map_err(db)?;
    let first = meta
        .get(META_BODY_SEQ)
        .map_err(db)?
        .map_or(0, |v| v.value());
    meta.insert(META_BODY_SEQ, first + n as u64).map_err(db)?;
    Ok(first)
}

/// Create the index; fill it from the stored envelopes when a store written before it has
/// some (once: an index with entries is complete, as every envelope is indexed when kept).
/// An envelope that does not decode is indexed under epoch 0: pruned first.
pub(super) fn index_bodies(tx: &redb::WriteTransaction) -> Result<(), StoreError> {
    let mut index = tx.open_table(BODY_EPOCHS).map_err(db)?;
    if !index.is_empty().map_err(db)? {
        return Ok(());
    }
    let bodies = tx.open_table(BODIES).map_err(db)?;
    let mut n = 0u64;
    for row in bodies.iter().map_err(db)? {
        let (id, env) = row.map_err(db)?;
        let epoch = envelope_epoch(env.value()).unwrap_or(0);
        index.insert((epoch, n), id.value()).map_err(db)?;
        n += 1;
    }
    drop(index);
    if n > 0 {
        let mut meta = tx.open_table(META).map_err(db)?;
        let next = meta
            .get(META_BODY_SEQ)
            .map_err(db)?
            .map_or(0, |v| v.value());
        meta.insert(META_BODY_SEQ, next.max(n)).map_err(db)?;
        tracing::info!("store: indexed {n} stored submission envelopes by epoch");
    }
    Ok(())
}

/// What one [`prune`] call deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Submission envelopes.
    pub bodies: u64,
    /// Counted-submission index rows.
    pub counted: u64,
    /// Canonical evaluation results.
    pub results: u64,
    /// Audit records.
    pub audit: u64,
    /// Signed batches (first and later ones).
    pub batches: u64,
    /// Whether rows older than the horizon are left for the next call.
    pub more: bool,
}

impl Pruned {
    /// Rows deleted per kind, named as the `kind` label of the pruned-rows metric.
    pub fn by_kind(&self) -> [(&'static str, u64); 5] {
        [
            ("bodies", self.bodies),
            ("counted", self.counted),
            ("results", self.results),
            ("audit", self.audit),
            ("batches", self.batches),
        ]
    }

    /// Rows deleted in all.
    pub fn total(&self) -> u64 {
        self.by_kind().iter().map(|(_, n)| n).sum()
    }
}

impl Store {
    /// Delete what the store keeps of epochs below `before` — submission envelopes, counted
    /// index, results, audit records, signed batches — at most [`PRUNE_MAX_ROWS`] rows per
    /// table, in one transaction; `more` says whether older rows are left for another call.
    pub fn prune(&self, before: u64) -> Result<Pruned, StoreError> {
        self.prune_at_most(before, PRUNE_MAX_ROWS)
    }

    /// [`Store::prune`] with `max` rows per table.
    fn prune_at_most(&self, before: u64, max: usize) -> Result<Pruned, StoreError> {
        let tx = self.db.begin_write().map_err(db)?;
        let (p, gone) = prune(&tx, before, max)?;
        tx.commit().map_err(db)?;
        self.envelopes.remove(&gone);
        Ok(p)
    }

    /// Rows kept per table that retention bounds: (table, rows).
    pub fn row_counts(&self) -> Result<[(&'static str, u64); 4], StoreError> {
        use redb::ReadableDatabase as _;
        let tx = self.db.begin_read().map_err(db)?;
        let len = |n: Result<u64, redb::StorageError>| n.map_err(db);
        Ok([
            (
                "submission_bodies",
                len(tx.open_table(envelopes::ENVELOPES).map_err(db)?.len())?,
            ),
            (
                "results",
                len(tx.open_table(RESULTS).map_err(db)?.len())?
                    + len(tx.open_table(envelopes::RESULTS_AT).map_err(db)?.len())?,
            ),
            ("audit", len(tx.open_table(AUDIT).map_err(db)?.len())?),
            ("batches", len(tx.open_table(BATCHES).map_err(db)?.len())?),
        ])
    }

    /// Epochs below this one were pruned (0: none).
    pub fn pruned_below(&self) -> Result<u64, StoreError> {
        Ok(self.meta(META_PRUNED_BELOW)?.unwrap_or(0))
    }
}

/// Delete what belongs to epochs below `before`: at most `max` rows per table. Also
/// returns the deleted envelopes' id halves, for the in-memory index.
fn prune(
    tx: &redb::WriteTransaction,
    before: u64,
    max: usize,
) -> Result<(Pruned, Vec<u128>), StoreError> {
    let mut p = Pruned::default();
    let gone = envelopes::prune(tx, before, max)?;
    p.bodies = gone.len() as u64;
    p.more |= gone.len() == max;
    p.counted = drain(
        &mut tx.open_table(SUBMISSIONS).map_err(db)?,
        ..(before, 0, &[0u8; 32]),
        max,
    )?;
    let results_at = drain(
        &mut tx.open_table(envelopes::RESULTS_AT).map_err(db)?,
        ..(before, 0),
        max,
    )?;
    let results_by_id = drain(
        &mut tx.open_table(RESULTS).map_err(db)?,
        ..(before, &[0u8; 32]),
        max,
    )?;
    p.results = results_at + results_by_id;
    p.more |= [p.counted, results_at, results_by_id]
        .iter()
        .any(|n| *n as usize == max);
    // The audit log is in evaluation order, which follows epochs closely: delete from its
    // front while records are older (a late one of an old epoch goes when the front does).
    {
        let mut log = tx.open_table(AUDIT).map_err(db)?;
        let mut last = None;
        let mut n = 0;
        for row in log.iter().map_err(db)?.take(max) {
            let (seq, rec) = row.map_err(db)?;
            match AuditRecord::decode(rec.value()) {
                Some(r) if r.epoch >= before => break,
                _ => {}
            }
            last = Some(seq.value());
            n += 1;
        }
        if let Some(last) = last {
            log.retain_in(..=last, |_, _| false).map_err(db)?;
        }
        p.audit = n;
        p.more |= n as usize == max;
    }
    // Signed batches, with their ids.
    {
        let mut batches = tx.open_table(BATCHES).map_err(db)?;
        let mut ids = tx.open_table(BATCH_IDS).map_err(db)?;
        let gone: Vec<Vec<u8>> = batches
            .extract_from_if(..(before, &[0u8; 32]), |_, _| true)
            .map_err(db)?
            .take(max)
            .map(|r| r.map(|(_, v)| v.value().to_vec()).map_err(db))
            .collect::<Result<_, _>>()?;
        for env in &gone {
            ids.remove(&platform_types::sha256(env)).map_err(db)?;
        }
        p.batches = gone.len() as u64;
        p.more |= gone.len() == max;
        let mut extra = tx.open_table(EXTRA_BATCHES).map_err(db)?;
        let before_horizon = |env: &[u8]| batch_epoch(env).is_some_and(|e| e < before);
        let old: Vec<[u8; 32]> = extra
            .iter()
            .map_err(db)?
            .filter_map(|r| r.ok())
            .filter(|(_, v)| before_horizon(v.value()))
            .map(|(k, _)| *k.value())
            .take(max)
            .collect();
        for id in &old {
            extra.remove(id).map_err(db)?;
        }
        p.batches += old.len() as u64;
    }
    if !p.more {
        let mut meta = tx.open_table(META).map_err(db)?;
        let below = meta
            .get(META_PRUNED_BELOW)
            .map_err(db)?
            .map_or(0, |v| v.value());
        if before > below {
            meta.insert(META_PRUNED_BELOW, before).map_err(db)?;
        }
    }
    Ok((p, gone))
}

/// Delete the first `max` rows of `table` in `range`; how many went.
fn drain<'a, K, V, KR>(
    table: &mut redb::Table<'_, K, V>,
    range: impl std::ops::RangeBounds<KR> + 'a,
    max: usize,
) -> Result<u64, StoreError>
where
    K: redb::Key + 'static,
    V: redb::Value + 'static,
    KR: std::borrow::Borrow<K::SelfType<'a>> + 'a,
{
    let mut n = 0u64;
    for row in table
        .extract_from_if(range, |_, _| true)
        .map_err(db)?
        .take(max)
    {
        row.map_err(db)?;
        n += 1;
    }
    Ok(n)
}

#[cfg(test)]
#[path = "retention_tests.rs"]
mod tests;
