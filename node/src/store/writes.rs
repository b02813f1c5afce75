//! The write path under load: records gathered over a pass of the node's loop ([`Writes`])
//! and the tables a submission goes to, opened once per transaction.
use super::{AuditRecord, BODIES, StoreError, db, retention};

/// A submission waiting in [`Writes`].
#[derive(Clone, Debug)]
pub(super) struct PendingSubmission {
    pub(super) epoch: u64,
    pub(super) id: [u8; 32],
    pub(super) envelope: Vec<u8>,
}

/// Records gathered over one pass of the node's loop and committed together by
/// [`Store::write`]: a node under load pays one fsync per pass, not one per record.
#[derive(Clone, Debug, Default)]
pub struct Writes {
    pub(super) submissions: Vec<PendingSubmission>,
    pub(super) results: Vec<(u64, [u8; 32], Vec<u8>, AuditRecord)>,
    pub(super) batches: Vec<(u64, [u8; 32], Vec<u8>)>,
}

impl Writes {
    /// A miner's signed submission envelope under its id (which one counts: see
    /// [`Store::counted_submissions`]).
    pub fn submission(&mut self, epoch: u64, id: [u8; 32], envelope: Vec<u8>) {
        self.submissions.push(PendingSubmission {
            epoch,
            id,
            envelope,
        });
    }

    /// An evaluation's canonical record and its audit entry.
    pub fn result(&mut self, epoch: u64, id: [u8; 32], canonical: Vec<u8>, audit: AuditRecord) {
        self.results.push((epoch, id, canonical, audit));
    }

    /// A peer's signed batch for an epoch (see [`Store::put_batch`] for which one is kept).
    /// Kept with the pass's other records: a batch of its own transaction cost a commit
    /// and an fsync, and forced the pass's records out early, several times a second.
    pub fn batch(&mut self, epoch: u64, author: [u8; 32], envelope: Vec<u8>) {
        self.batches.push((epoch, author, envelope));
    }

    /// Audit records waiting.
    pub fn audit_len(&self) -> usize {
        self.results.len()
    }

    /// Records waiting.
    pub fn len(&self) -> usize {
        self.submissions.len() + self.results.len() + self.batches.len()
    }

    /// Nothing waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The tables a submission is written to, opened once per transaction.
pub(super) struct SubmissionTables<'t> {
    bodies: redb::Table<'t, &'static [u8; 32], &'static [u8]>,
    index: redb::Table<'t, (u64, u64), &'static [u8; 32]>,
    /// The next arrival sequence number of the epoch index.
    seq: u64,
}

impl<'t> SubmissionTables<'t> {
    pub(super) fn open(tx: &'t redb::WriteTransaction, n: usize) -> Result<Self, StoreError> {
        let seq = retention::next_seqs(tx, n)?;
        Ok(SubmissionTables {
            bodies: tx.open_table(BODIES).map_err(db)?,
            index: tx.open_table(retention::BODY_EPOCHS).map_err(db)?,
            seq,
        })
    }

    /// Keep an envelope under its id, indexed by (epoch, arrival) when it is new.
    pub(super) fn put(
        &mut self,
        epoch: u64,
        id: &[u8; 32],
        envelope: &[u8],
    ) -> Result<(), StoreError> {
        let fresh = self.bodies.insert(id, envelope).map_err(db)?.is_none();
        if fresh {
            self.index.insert((epoch, self.seq), id).map_err(db)?;
        }
        self.seq += 1;
        Ok(())
    }
}
