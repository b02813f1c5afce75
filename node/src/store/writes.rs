//! The write path under load: records gathered over a pass of the node's loop ([`Writes`]).
use super::AuditRecord;

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
