//! The store's writer thread: every write the application loop makes to `node.redb` runs
//! here, in the order the loop made it, so the loop never waits on a commit's `fsync` (8–38 ms
//! each under load, several a second). A read that must see what the loop wrote before it
//! first waits for the writer to catch up ([`Writer::sync`]); the queue is bounded, so a disk
//! slower than the load holds the loop back instead of growing memory.

use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::{Sender, bounded};

use crate::machine::{Installed, SNAPSHOTS_KEPT};
use crate::metrics as m;
use crate::snapshot::Snapshot;
use crate::store::{AppliedDecision, Store, Writes};

/// Jobs queued at most; beyond, the loop waits for the writer.
const QUEUE: usize = 4;

/// One write, as the loop asked for it.
pub(crate) enum Job {
    /// A pass's records (submissions, results with their audit records, peers' batches).
    Records(Writes),
    /// A challenge's module.
    Module(Vec<u8>),
    /// A snapshot taken here.
    Snapshot(Box<Snapshot>),
    /// A snapshot installed from a peer.
    Install(Box<Installed>),
    /// An applied decision, the checkpoint it names and the retention it allows.
    Applied(Box<AppliedJob>),
    /// Answered once every job before it has run.
    Sync(Sender<()>),
}

/// What an applied decision leaves in the store.
pub(crate) struct AppliedJob {
    pub(crate) height: u64,
    pub(crate) epoch: u64,
    /// The epoch's result record, encoded.
    pub(crate) record: Vec<u8>,
    pub(crate) registry: Vec<(u32, Vec<u8>)>,
    pub(crate) registry_nonce: u64,
    /// The decision, encoded, when its value names a snapshot (offered to peers).
    pub(crate) checkpoint: Option<Vec<u8>>,
    /// Epochs below this are deleted (retention), if any.
    pub(crate) prune_before: Option<u64>,
}

/// The writer thread and its queue.
pub(crate) struct Writer {
    tx: Option<Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    /// Start the thread over a handle to the store.
    pub(crate) fn start(store: Store) -> std::io::Result<Writer> {
        let (tx, rx) = bounded::<Job>(QUEUE);
        let thread = std::thread::Builder::new()
            .name("platform-store".into())
            .spawn(move || {
                for job in rx {
                    run(&store, job);
                }
            })?;
        Ok(Writer {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// Queue a write (waits only while the queue is full).
    pub(crate) fn send(&self, job: Job) {
        if self.tx.as_ref().is_none_or(|tx| tx.send(job).is_err()) {
            metrics::counter!(m::STORE_ERRORS).increment(1);
            tracing::error!("store writer stopped; a write is lost");
        }
    }

    /// Wait until every write queued before has run.
    pub(crate) fn sync(&self) {
        let (done, wait) = bounded(1);
        self.send(Job::Sync(done));
        let _ = wait.recv();
    }

    /// Whether the thread still runs (it stops only when finished, or if a write panicked:
    /// then the node must stop rather than run on without its store).
    pub(crate) fn alive(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Run what is queued, then stop the thread.
    pub(crate) fn finish(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take()
            && t.join().is_err()
        {
            tracing::error!("store writer panicked");
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.finish();
    }
}

fn run(store: &Store, job: Job) {
    let started = Instant::now();
    let what = match job {
        Job::Records(mut w) => {
            let audits = w.audit_len() as u64;
            store
                .write(&mut w)
                .map(|_| metrics::counter!(m::AUDIT).increment(audits))
                .map_err(|e| format!("{e}; {audits} evaluation records lost"))
                .err()
        }
        Job::Module(bytes) => store.put_module(&bytes, None).err().map(|e| e.to_string()),
        Job::Snapshot(snap) => {
            metrics::counter!(m::SNAPSHOTS_TAKEN).increment(1);
            store
                .put_snapshot(&snap, SNAPSHOTS_KEPT)
                .err()
                .map(|e| format!("{e}; snapshot {} not kept", snap.reference.height))
        }
        Job::Install(inst) => store
            .install_snapshot(&inst.state, &inst.snapshot, SNAPSHOTS_KEPT)
            // The machine runs from it; a restart syncs again.
            .err()
            .map(|e| format!("{e}; the installed snapshot is not durable")),
        Job::Applied(a) => applied(store, &a),
        Job::Sync(done) => {
            let _ = done.send(());
            return;
        }
    };
    if let Some(e) = what {
        metrics::counter!(m::STORE_ERRORS).increment(1);
        tracing::error!("store: {e}");
    }
    metrics::histogram!(m::STORE_WRITE).record(started.elapsed().as_secs_f64());
}

fn applied(store: &Store, a: &AppliedJob) -> Option<String> {
    if let Err(e) = store.apply_decision(&AppliedDecision {
        height: a.height,
        epoch: Some((a.epoch, &a.record)),
        registry: &a.registry,
        registry_nonce: a.registry_nonce,
    }) {
        // The machine moves on; a restart re-applies from the consensus store.
        return Some(format!(
            "{e}; the decision is applied again after a restart"
        ));
    }
    if let Some(c) = &a.checkpoint
        && let Err(e) = store.put_checkpoint(a.height, c)
    {
        tracing::warn!("store: {e}; the checkpoint offered to peers is older");
    }
    let before = a.prune_before?;
    match store.prune(before) {
        Ok(p) => {
            for (kind, n) in p.by_kind() {
                metrics::counter!(m::PRUNED, "kind" => kind).increment(n);
            }
            if !p.more {
                metrics::gauge!(m::PRUNED_BELOW).set(before as f64);
            }
            if p.total() > 0 {
                tracing::debug!(before, rows = p.total(), more = p.more, "store pruned");
            }
            None
        }
        Err(e) => Some(format!("{e}; old epochs not pruned")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::AuditRecord;

    fn audit(epoch: u64, id: u8) -> AuditRecord {
        AuditRecord {
            epoch,
            challenge: 1,
            module_hash: [1; 32],
            input_hash: [2; 32],
            submission: [id; 32],
            outcome: 0,
            score: u64::from(id),
            fuel: 10,
            host_calls: 0,
        }
    }

    /// Writes land in the order queued, a sync sees every one queued before it, and finishing
    /// runs what is still queued.
    #[test]
    fn writes_land_in_order_and_a_sync_sees_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("node.redb")).unwrap();
        let mut writer = Writer::start(store.clone()).unwrap();
        for id in 0..50u8 {
            let mut w = Writes::default();
            w.submission(3, [id; 32], vec![id; 8]);
            w.result(3, [id; 32], vec![id], audit(3, id));
            writer.send(Job::Records(w));
        }
        writer.send(Job::Module(vec![0, 97, 115, 109, 1, 0, 0, 0]));
        writer.sync();
        let audit_log = store.audit_from(0).unwrap();
        let ids: Vec<u8> = audit_log.iter().map(|(_, r)| r.submission[0]).collect();
        assert_eq!(ids, (0..50).collect::<Vec<_>>(), "in the order queued");
        assert_eq!(store.result(3, &[49; 32]).unwrap(), Some(vec![49]));
        assert_eq!(store.module_hashes().unwrap().len(), 1);
        // Queued and not synced: finishing still writes it.
        let mut w = Writes::default();
        w.result(4, [99; 32], vec![7], audit(4, 99));
        writer.send(Job::Records(w));
        assert!(writer.alive());
        writer.finish();
        assert!(!writer.alive());
        assert_eq!(store.result(4, &[99; 32]).unwrap(), Some(vec![7]));
        // A stopped writer loses the write loudly, never blocks or panics.
        writer.send(Job::Module(vec![1]));
        writer.sync();
    }
}
