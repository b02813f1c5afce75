//! The node's durable state under `data/`: one redb file holding challenge modules by hash,
//! the registry, the submissions index, evaluation results, an append-only audit log of
//! evaluations, and small counters. Every write is one redb transaction: a node killed at
//! any moment reopens to the last committed transaction, never a torn one. Under load the
//! node gathers one loop pass's submissions and results in [`Writes`] and commits them in
//! one transaction: one fsync per pass instead of one per record.

use std::path::Path;
use std::sync::Arc;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, TableHandle};
use sha2::{Digest, Sha256};

/// redb's page cache for the node store: bounded, so memory plateaus while the file grows.
const CACHE_BYTES: usize = 64 << 20;

/// Module bytes by sha256.
const MODULES: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("modules");
/// Registry entries by challenge id (encoded by the registry).
const REGISTRY: TableDefinition<u32, &[u8]> = TableDefinition::new("registry");
/// The counted submission per (epoch, challenge, miner): its id. No longer written (the
/// counted ones are derived from the envelopes, see `counted`); an older store's rows are
/// pruned with their epochs.
const SUBMISSIONS: TableDefinition<(u64, u32, &[u8; 32]), &[u8; 32]> =
    TableDefinition::new("submissions");
/// Signed submission envelopes by id, as earlier releases kept them (moved to
/// `envelopes::ENVELOPES` at open).
const BODIES: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("submission_bodies");
/// Canonical evaluation records by (epoch, submission id): where earlier releases kept them,
/// and where a result goes whose submission is not kept (see `envelopes::RESULTS_AT`).
const RESULTS: TableDefinition<(u64, &[u8; 32]), &[u8]> = TableDefinition::new("results");
/// The audit log: sequence number → record.
const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");
/// Named counters (last committed epoch, …).
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// Signed evaluation batches by (epoch, author hotkey): the first one seen per author.
const BATCHES: TableDefinition<(u64, &[u8; 32]), &[u8]> = TableDefinition::new("batches");
/// Committed epoch results by epoch (encoded by the node).
const EPOCHS: TableDefinition<u64, &[u8]> = TableDefinition::new("epochs");

/// Meta key: the last consensus height whose decision was applied.
pub const META_APPLIED_HEIGHT: &str = "applied_height";
/// Meta key: the registry's last applied nonce.
pub const META_REGISTRY_NONCE: &str = "registry_nonce";
/// Meta key: the last committed epoch.
pub const META_LAST_EPOCH: &str = "last_epoch";

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// redb failed (disk full, corrupt file, …).
    #[error("store: {0}")]
    Db(String),
    /// Bytes that do not match the hash they are stored under.
    #[error("store: module bytes do not hash to {0}")]
    HashMismatch(String),
    /// A record that does not decode.
    #[error("store: corrupt {0} record")]
    Corrupt(&'static str),
    /// Writing what was read failed (an export's output).
    #[error("writing: {0}")]
    Io(String),
}

fn db(e: impl std::fmt::Display) -> StoreError {
    StoreError::Db(e.to_string())
}

/// One evaluation, as the audit log keeps it (fixed layout, 129 bytes, little endian).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditRecord {
    /// Epoch.
    pub epoch: u64,
    /// Challenge id.
    pub challenge: u32,
    /// sha256 of the module that ran.
    pub module_hash: [u8; 32],
    /// sha256 of the input (the submission body).
    pub input_hash: [u8; 32],
    /// Submission id.
    pub submission: [u8; 32],
    /// Outcome code (the engine's outcome as a stable small integer).
    pub outcome: u8,
    /// Score (fixed point).
    pub score: u64,
    /// Fuel used.
    pub fuel: u64,
    /// Host calls made.
    pub host_calls: u32,
}

const AUDIT_LEN: usize = 8 + 4 + 32 + 32 + 32 + 1 + 8 + 8 + 4;

impl AuditRecord {
    fn encode(&self) -> [u8; AUDIT_LEN] {
        let mut b = [0u8; AUDIT_LEN];
        let mut at = 0;
        let mut put = |x: &[u8]| {
            b[at..at + x.len()].copy_from_slice(x);
            at += x.len();
        };
        put(&self.epoch.to_le_bytes());
        put(&self.challenge.to_le_bytes());
        put(&self.module_hash);
        put(&self.input_hash);
        put(&self.submission);
        put(&[self.outcome]);
        put(&self.score.to_le_bytes());
        put(&self.fuel.to_le_bytes());
        put(&self.host_calls.to_le_bytes());
        b
    }

    fn decode(b: &[u8]) -> Option<AuditRecord> {
        if b.len() != AUDIT_LEN {
            return None;
        }
        let arr = |r: std::ops::Range<usize>| -> [u8; 32] { b[r].try_into().expect("32") };
        Some(AuditRecord {
            epoch: u64::from_le_bytes(b[0..8].try_into().ok()?),
            challenge: u32::from_le_bytes(b[8..12].try_into().ok()?),
            module_hash: arr(12..44),
            input_hash: arr(44..76),
            submission: arr(76..108),
            outcome: b[108],
            score: u64::from_le_bytes(b[109..117].try_into().ok()?),
            fuel: u64::from_le_bytes(b[117..125].try_into().ok()?),
            host_calls: u32::from_le_bytes(b[125..129].try_into().ok()?),
        })
    }
}

/// Keep an author's batch for an epoch in `tx` unless one is kept (the first wins); a later
/// one of the author (a laggard's, with the submissions it caught up on) is kept by id, so a
/// value naming it can be replayed. Returns the kept envelope.
fn keep_batch(
    tx: &redb::WriteTransaction,
    epoch: u64,
    author: &[u8; 32],
    envelope: &[u8],
) -> Result<Vec<u8>, StoreError> {
    let mut t = tx.open_table(BATCHES).map_err(db)?;
    let existing = t
        .get((epoch, author))
        .map_err(db)?
        .map(|v| v.value().to_vec());
    match existing {
        Some(e) => {
            if e != envelope {
                blobs::keep_extra_batch(tx, envelope)?;
            }
            Ok(e)
        }
        None => {
            t.insert((epoch, author), envelope).map_err(db)?;
            blobs::index_batch(tx, epoch, author, envelope)?;
            Ok(envelope.to_vec())
        }
    }
}

/// A counted submission: (challenge, miner hotkey, submission id).
pub type CountedSubmission = (u32, [u8; 32], [u8; 32]);

/// A counted submission with its epoch: (epoch, challenge, miner hotkey, submission id).
pub type EpochSubmission = (u64, u32, [u8; 32], [u8; 32]);

/// A kept batch: (epoch, author, signed envelope).
pub type BatchRow = (u64, [u8; 32], Vec<u8>);

/// Everything one committed decision changes, written together.
#[derive(Debug)]
pub struct AppliedDecision<'a> {
    /// Consensus height.
    pub height: u64,
    /// The epoch and its encoded result record, when the decision carried one.
    pub epoch: Option<(u64, &'a [u8])>,
    /// Registry entries changed, encoded.
    pub registry: &'a [(u32, Vec<u8>)],
    /// The registry's last nonce after the decision.
    pub registry_nonce: u64,
}

/// The node's redb store. Clones share the file and the envelope index: one thread writes
/// (the shell's writer), any may read.
#[derive(Clone)]
pub struct Store {
    db: Arc<Database>,
    /// Kept submission envelopes by id.
    envelopes: envelopes::EnvelopeIndex,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

impl Store {
    /// Open or create the store file.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let d = redb::Builder::new()
            .set_cache_size(CACHE_BYTES)
            .create(path)
            .map_err(db)?;
        let tx = d.begin_write().map_err(db)?;
        tx.open_table(MODULES).map_err(db)?;
        tx.open_table(REGISTRY).map_err(db)?;
        tx.open_table(SUBMISSIONS).map_err(db)?;
        tx.open_table(envelopes::ENVELOPES).map_err(db)?;
        tx.open_table(RESULTS).map_err(db)?;
        tx.open_table(envelopes::RESULTS_AT).map_err(db)?;
        tx.open_table(AUDIT).map_err(db)?;
        tx.open_table(META).map_err(db)?;
        tx.open_table(BATCHES).map_err(db)?;
        tx.open_table(EPOCHS).map_err(db)?;
        blobs::index_batches(&tx)?;
        let old_layout = tx
            .list_tables()
            .map_err(db)?
            .any(|t| t.name() == BODIES.name());
        if old_layout {
            retention::index_bodies(&tx)?;
            envelopes::migrate(&tx)?;
        }
        let index = envelopes::EnvelopeIndex::build(&tx)?;
        snapshots::create(&tx)?;
        tx.commit().map_err(db)?;
        Ok(Store {
            db: Arc::new(d),
            envelopes: index,
        })
    }

    /// Store a module under its sha256, checking `expected` when given.
    pub fn put_module(
        &self,
        bytes: &[u8],
        expected: Option<&[u8; 32]>,
    ) -> Result<[u8; 32], StoreError> {
        let hash: [u8; 32] = Sha256::digest(bytes).into();
        if let Some(e) = expected
            && *e != hash
        {
            return Err(StoreError::HashMismatch(hex::encode(e)));
        }
        let tx = self.db.begin_write().map_err(db)?;
        tx.open_table(MODULES)
            .map_err(db)?
            .insert(&hash, bytes)
            .map_err(db)?;
        tx.commit().map_err(db)?;
        Ok(hash)
    }

    /// A module's bytes, re-verified against their hash.
    pub fn module(&self, hash: &[u8; 32]) -> Result<Option<Vec<u8>>, StoreError> {
        let tx = self.db.begin_read().map_err(db)?;
        let t = tx.open_table(MODULES).map_err(db)?;
        let Some(v) = t.get(hash).map_err(db)? else {
            return Ok(None);
        };
        let bytes = v.value().to_vec();
        if <[u8; 32]>::from(Sha256::digest(&bytes)) != *hash {
            return Err(StoreError::HashMismatch(hex::encode(hash)));
        }
        Ok(Some(bytes))
    }

    /// The hashes of every module held.
    pub fn module_hashes(&self) -> Result<Vec<[u8; 32]>, StoreError> {
        let tx = self.db.begin_read().map_err(db)?;
        let t = tx.open_table(MODULES).map_err(db)?;
        t.iter()
            .map_err(db)?
            .map(|r| r.map(|(k, _)| *k.value()).map_err(db))
            .collect()
    }

    /// Set a registry entry.
    pub fn put_registry(&self, challenge: u32, entry: &[u8]) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(db)?;
        tx.open_table(REGISTRY)
            .map_err(db)?
            .insert(challenge, entry)
            .map_err(db)?;
        tx.commit().map_err(db)
    }

    /// Every registry entry, by challenge id.
    pub fn registry(&self) -> Result<Vec<(u32, Vec<u8>)>, StoreError> {
        let tx = self.db.begin_read().map_err(db)?;
        let t = tx.open_table(REGISTRY).map_err(db)?;
        t.iter()
            .map_err(db)?
            .map(|r| r.map(|(k, v)| (k.value(), v.value().to_vec())).map_err(db))
            .collect()
    }

    /// Keep a miner's signed submission envelope under its id, in a transaction of its own
    /// (under load the node gathers them in [`Writes`]).
    pub fn record_submission(
        &self,
        epoch: u64,
        id: &[u8; 32],
        envelope: &[u8],
    ) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(db)?;
        let mut t = SubmissionTables::open(&tx, 1)?;
        t.put(&self.envelopes, epoch, id, envelope)?;
        let added = std::mem::take(&mut t.added);
        drop(t);
        tx.commit().map_err(db)?;
        self.envelopes.add(added);
        Ok(())
    }

    /// The counted submissions of an epoch: (challenge, miner, id), in key order. The counted
    /// one per (challenge, miner) is the kept envelope with the smallest id (sha256 of the
    /// signed envelope): a rule every validator applies to the same set with the same
    /// result, whatever order submissions arrived in.
    pub fn counted_submissions(&self, epoch: u64) -> Result<Vec<CountedSubmission>, StoreError> {
        let tx = self.db.begin_read().map_err(db)?;
        let end = (epoch.saturating_add(1), 0);
        let all = counted::counted_in(&tx, (epoch, 0)..end)?;
        Ok(all
            .into_iter()
            .map(|k| (k.challenge, k.miner, k.id))
            .collect())
    }

    /// The counted submissions of epochs `from..`: (epoch, challenge, miner, id), in key order.
    pub fn counted_from(&self, from: u64) -> Result<Vec<EpochSubmission>, StoreError> {
        Ok(self
            .counted_kept_from(from)?
            .into_iter()
            .map(|k| (k.epoch, k.challenge, k.miner, k.id))
            .collect())
    }

    /// The counted submissions of epochs `from..` with their envelopes, decoded, in key
    /// order: what a restarting node resumes from, read once.
    pub fn counted_kept_from(&self, from: u64) -> Result<Vec<KeptSubmission>, StoreError> {
        let tx = self.db.begin_read().map_err(db)?;
        counted::counted_in(&tx, (from, 0)..)
    }

    /// A submission's signed envelope.
    pub fn submission_body(&self, id: &[u8; 32]) -> Result<Option<Vec<u8>>, StoreError> {
        let tx = self.db.begin_read().map_err(db)?;
        let t = tx.open_table(envelopes::ENVELOPES).map_err(db)?;
        envelopes::get(&t, &self.envelopes, id)
    }

    /// Store an evaluation's canonical record and append it to the audit log, atomically.
    /// Returns the audit sequence number.
    pub fn record_result(
        &self,
        epoch: u64,
        submission: &[u8; 32],
        canonical: &[u8],
        audit: &AuditRecord,
    ) -> Result<u64, StoreError> {
        let mut w = Writes::default();
        w.result(epoch, *submission, canonical.to_vec(), audit.clone());
        Ok(self.write(&mut w)?.saturating_sub(1))
    }

    /// Commit everything gathered in `w` in one transaction (one fsync instead of one per
    /// record), then empty it. Returns the next audit sequence number.
    pub fn write(&self, w: &mut Writes) -> Result<u64, StoreError> {
        let tx = self.db.begin_write().map_err(db)?;
        let mut added = Default::default();
        if !w.submissions.is_empty() {
            let mut t = SubmissionTables::open(&tx, w.submissions.len())?;
            for s in &w.submissions {
                t.put(&self.envelopes, s.epoch, &s.id, &s.envelope)?;
            }
            added = t.added;
        }
        for (epoch, author, envelope) in &w.batches {
            keep_batch(&tx, *epoch, author, envelope)?;
        }
        let next = {
            let mut by_id = tx.open_table(RESULTS).map_err(db)?;
            let mut at = tx.open_table(envelopes::RESULTS_AT).map_err(db)?;
            let mut log = tx.open_table(AUDIT).map_err(db)?;
            let mut seq = log.last().map_err(db)?.map_or(0, |(k, _)| k.value() + 1);
            for (epoch, id, canonical, audit) in &w.results {
                let place = added
                    .get(&envelopes::half(id))
                    .copied()
                    .or_else(|| self.envelopes.place(id));
                match place {
                    Some(p) if p.0 == *epoch => at.insert(p, canonical.as_slice()),
                    _ => by_id.insert((*epoch, id), canonical.as_slice()),
                }
                .map_err(db)?;
                log.insert(seq, audit.encode().as_slice()).map_err(db)?;
                seq += 1;
            }
            seq
        };
        tx.commit().map_err(db)?;
        self.envelopes.add(added);
        w.submissions.clear();
        w.results.clear();
        w.batches.clear();
        Ok(next)
    }

    /// A stored canonical evaluation record.
    pub fn result(&self, epoch: u64, submission: &[u8; 32]) -> Result<Option<Vec<u8>>, StoreError> {
        let tx = self.db.begin_read().map_err(db)?;
        // Under its submission's key when that submission is kept, as `write` placed it.
        if let Some(place) = self.envelopes.place(submission)
            && place.0 == epoch
            && let Some(v) = tx
                .open_table(envelopes::RESULTS_AT)
                .map_err(db)?
                .get(place)
                .map_err(db)?
        {
            return Ok(Some(v.value().to_vec()));
        }
        let t = tx.open_table(RESULTS).map_err(db)?;
        Ok(t.get((epoch, submission))
            .map_err(db)?
            .map(|v| v.value().to_vec()))
    }

    /// Audit records from sequence number `from` on.
    pub fn audit_from(&self, from: u64) -> Result<Vec<(u64, AuditRecord)>, StoreError> {
        let tx = self.db.begin_read().map_err(db)?;
        let t = tx.open_table(AUDIT).map_err(db)?;
        t.range(from..)
            .map_err(db)?
            .map(|r| {
                let (k, v) = r.map_err(db)?;
                let rec = AuditRecord::decode(v.value()).ok_or(StoreError::Corrupt("audit"))?;
                Ok((k.value(), rec))
            })
            .collect()
    }

    /// Visit the audit records from sequence number `from` on, in order, without holding
    /// them all in memory.
    pub fn audit_each(
        &self,
        from: u64,
        mut f: impl FnMut(u64, &AuditRecord) -> std::io::Result<()>,
    ) -> Result<(), StoreError> {
        let tx = self.db.begin_read().map_err(db)?;
        let t = tx.open_table(AUDIT).map_err(db)?;
        for r in t.range(from..).map_err(db)? {
            let (k, v) = r.map_err(db)?;
            let rec = AuditRecord::decode(v.value()).ok_or(StoreError::Corrupt("audit"))?;
            f(k.value(), &rec).map_err(|e| StoreError::Io(e.to_string()))?;
        }
        Ok(())
    }

    /// A named counter.
    pub fn meta(&self, key: &str) -> Result<Option<u64>, StoreError> {
        let tx = self.db.begin_read().map_err(db)?;
        let t = tx.open_table(META).map_err(db)?;
        Ok(t.get(key).map_err(db)?.map(|v| v.value()))
    }

    /// Keep an author's signed batch for an epoch unless one is already kept (the first
    /// wins: a validator's batch for an epoch never changes). Returns the kept envelope.
    pub fn put_batch(
        &self,
        epoch: u64,
        author: &[u8; 32],
        envelope: &[u8],
    ) -> Result<Vec<u8>, StoreError> {
        let tx = self.db.begin_write().map_err(db)?;
        let kept = keep_batch(&tx, epoch, author, envelope)?;
        tx.commit().map_err(db)?;
        Ok(kept)
    }

    /// The batches kept for epochs `from..`, as (epoch, author, envelope).
    pub fn batches_from(&self, from: u64) -> Result<Vec<BatchRow>, StoreError> {
        let tx = self.db.begin_read().map_err(db)?;
        let t = tx.open_table(BATCHES).map_err(db)?;
        t.range((from, &[0u8; 32])..)
            .map_err(db)?
            .map(|r| {
                let (k, v) = r.map_err(db)?;
                let (e, a) = k.value();
                Ok((e, *a, v.value().to_vec()))
            })
            .collect()
    }

    /// Apply one committed decision in one transaction: the epoch's result record, the
    /// registry entries it changed, the registry nonce, and the applied height. A node
    /// killed at any moment has either all of it or none, and re-applies from consensus.
    pub fn apply_decision(&self, d: &AppliedDecision<'_>) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(db)?;
        {
            if let Some((epoch, record)) = d.epoch {
                tx.open_table(EPOCHS)
                    .map_err(db)?
                    .insert(epoch, record)
                    .map_err(db)?;
            }
            let mut reg = tx.open_table(REGISTRY).map_err(db)?;
            for (id, entry) in d.registry {
                reg.insert(*id, entry.as_slice()).map_err(db)?;
            }
            let mut meta = tx.open_table(META).map_err(db)?;
            meta.insert(META_APPLIED_HEIGHT, d.height).map_err(db)?;
            meta.insert(META_REGISTRY_NONCE, d.registry_nonce)
                .map_err(db)?;
            if let Some((epoch, _)) = d.epoch {
                meta.insert(META_LAST_EPOCH, epoch).map_err(db)?;
            }
        }
        tx.commit().map_err(db)
    }

    /// Committed epoch records from `from` on, in epoch order.
    pub fn epochs_from(&self, from: u64) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let tx = self.db.begin_read().map_err(db)?;
        let t = tx.open_table(EPOCHS).map_err(db)?;
        t.range(from..)
            .map_err(db)?
            .map(|r| r.map(|(k, v)| (k.value(), v.value().to_vec())).map_err(db))
            .collect()
    }

    /// Set a named counter.
    pub fn set_meta(&self, key: &str, value: u64) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(db)?;
        tx.open_table(META)
            .map_err(db)?
            .insert(key, value)
            .map_err(db)?;
        tx.commit().map_err(db)
    }
}

mod blobs;
mod counted;
mod envelopes;
mod retention;
mod snapshots;
mod writes;
pub use blobs::StoreBlobs;
pub use counted::KeptSubmission;
use envelopes::SubmissionTables;
pub use retention::{META_PRUNED_BELOW, PRUNE_MAX_ROWS, Pruned};
pub use snapshots::CHECKPOINT_TAIL;
pub use writes::Writes;

impl Store {
    /// A read handle serving the modules and batches this store holds, by sha256, for the
    /// net thread (the node's durable blob source).
    pub fn blobs(&self) -> StoreBlobs {
        StoreBlobs(self.db.clone(), self.envelopes.clone())
    }
}

#[cfg(test)]
mod tests;
