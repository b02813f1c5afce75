//! Durable consensus state. The replica records its own votes *before* they leave the node,
//! so a crash and restart can never make it sign two different votes for one
//! `(kind, height, view)`; prepared certificates and decisions are durable too.
//! [`RedbStore`] keeps them in a redb file; [`MemStore`] is the same contract in memory.

use std::collections::BTreeMap;
use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use crate::codec::{self, DecodeError};
use crate::crypto::Kind;
use crate::message::{Decision, Prepared};
use crate::types::{Hash32, Height, View};

/// redb's page cache for the consensus store: bounded, so memory plateaus while the file grows.
const CACHE_BYTES: usize = 16 << 20;

/// Outcome of recording one of our own votes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recorded {
    /// Newly recorded: safe to send.
    New,
    /// The same vote was recorded before (e.g. before a restart): safe to send again.
    Same,
    /// A different digest is on record for this slot: sending would equivocate. Refused.
    Conflict(Hash32),
}

/// Storage failures. A vote that could not be made durable is never sent.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed.
    #[error("consensus store: {0}")]
    Db(String),
    /// A stored record does not decode.
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

/// What the replica needs from durable storage.
pub trait Storage {
    /// Record our own vote for a slot, durably, unless a different one is on record.
    fn record_vote(
        &mut self,
        kind: Kind,
        height: Height,
        view: View,
        digest: Hash32,
    ) -> Result<Recorded, StoreError>;
    /// Our highest prepared certificate at `height`, if any.
    fn prepared(&self, height: Height) -> Result<Option<Prepared>, StoreError>;
    /// Replace our prepared certificate at `height` (only ever with a higher view).
    fn record_prepared(&mut self, height: Height, prepared: &Prepared) -> Result<(), StoreError>;
    /// The highest view we voted in at `height` (any kind), to resume there after a restart.
    fn last_view(&self, height: Height) -> Result<Option<View>, StoreError>;
    /// Record a decision (with its certificate).
    fn record_decision(&mut self, decision: &Decision) -> Result<(), StoreError>;
    /// The highest decided height, if any: the last decision held, or the floor.
    fn last_decided(&self) -> Result<Option<Height>, StoreError>;
    /// Heights up to `height` are decided and known from an application snapshot (a node
    /// that caught up from one holds no decisions below it): [`Self::last_decided`] is at
    /// least `height` from now on.
    fn set_floor(&mut self, height: Height) -> Result<(), StoreError>;
    /// Decisions from `from` on, in order, at most `limit`.
    fn decisions(&self, from: Height, limit: usize) -> Result<Vec<Decision>, StoreError>;
}

/// In-memory storage with the same contract (for tests of the replica alone).
#[derive(Debug, Default)]
pub struct MemStore {
    votes: BTreeMap<(Height, View, u8), Hash32>,
    prepared: BTreeMap<Height, Prepared>,
    decisions: BTreeMap<Height, Decision>,
    floor: Option<Height>,
}

impl Storage for MemStore {
    fn record_vote(
        &mut self,
        kind: Kind,
        height: Height,
        view: View,
        digest: Hash32,
    ) -> Result<Recorded, StoreError> {
        Ok(match self.votes.get(&(height, view, kind as u8)) {
            Some(d) if *d == digest => Recorded::Same,
            Some(d) => Recorded::Conflict(*d),
            None => {
                self.votes.insert((height, view, kind as u8), digest);
                Recorded::New
            }
        })
    }
    fn prepared(&self, height: Height) -> Result<Option<Prepared>, StoreError> {
        Ok(self.prepared.get(&height).cloned())
    }
    fn record_prepared(&mut self, height: Height, prepared: &Prepared) -> Result<(), StoreError> {
        self.prepared.insert(height, prepared.clone());
        Ok(())
    }
    fn last_view(&self, height: Height) -> Result<Option<View>, StoreError> {
        Ok(self
            .votes
            .range((height, 0, 0)..=(height, View::MAX, u8::MAX))
            .map(|((_, v, _), _)| *v)
            .max())
    }
    fn record_decision(&mut self, decision: &Decision) -> Result<(), StoreError> {
        self.decisions.insert(decision.height, decision.clone());
        Ok(())
    }
    fn last_decided(&self) -> Result<Option<Height>, StoreError> {
        Ok(self.decisions.keys().next_back().copied().max(self.floor))
    }
    fn set_floor(&mut self, height: Height) -> Result<(), StoreError> {
        self.floor = self.floor.max(Some(height));
        Ok(())
    }
    fn decisions(&self, from: Height, limit: usize) -> Result<Vec<Decision>, StoreError> {
        Ok(self
            .decisions
            .range(from..)
            .take(limit)
            .map(|(_, d)| d.clone())
            .collect())
    }
}

const VOTES: TableDefinition<(u64, u32, u8), [u8; 32]> = TableDefinition::new("own_votes");
const PREPARED: TableDefinition<u64, &[u8]> = TableDefinition::new("prepared");
const DECISIONS: TableDefinition<u64, &[u8]> = TableDefinition::new("decisions");
/// Named heights: the snapshot floor.
const HEIGHTS: TableDefinition<&str, u64> = TableDefinition::new("heights");
const FLOOR: &str = "floor";

/// redb-backed storage; every write is its own durable transaction.
pub struct RedbStore {
    db: Database,
}

impl std::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbStore").finish_non_exhaustive()
    }
}

fn db_err<E: std::fmt::Display>(e: E) -> StoreError {
    StoreError::Db(e.to_string())
}

impl RedbStore {
    /// Open (or create) the store at `path`.
    pub fn open(path: &Path) -> Result<RedbStore, StoreError> {
        let db = redb::Builder::new()
            .set_cache_size(CACHE_BYTES)
            .create(path)
            .map_err(db_err)?;
        let tx = db.begin_write().map_err(db_err)?;
        tx.open_table(VOTES).map_err(db_err)?;
        tx.open_table(PREPARED).map_err(db_err)?;
        tx.open_table(DECISIONS).map_err(db_err)?;
        tx.open_table(HEIGHTS).map_err(db_err)?;
        tx.commit().map_err(db_err)?;
        Ok(RedbStore { db })
    }
}

impl Storage for RedbStore {
    fn record_vote(
        &mut self,
        kind: Kind,
        height: Height,
        view: View,
        digest: Hash32,
    ) -> Result<Recorded, StoreError> {
        let tx = self.db.begin_write().map_err(db_err)?;
        let recorded = {
            let mut t = tx.open_table(VOTES).map_err(db_err)?;
            let key = (height, view, kind as u8);
            let existing = t.get(key).map_err(db_err)?.map(|g| g.value());
            match existing {
                Some(d) if d == digest => Recorded::Same,
                Some(d) => Recorded::Conflict(d),
                None => {
                    t.insert(key, digest).map_err(db_err)?;
                    Recorded::New
                }
            }
        };
        tx.commit().map_err(db_err)?;
        Ok(recorded)
    }

    fn prepared(&self, height: Height) -> Result<Option<Prepared>, StoreError> {
        let tx = self.db.begin_read().map_err(db_err)?;
        let t = tx.open_table(PREPARED).map_err(db_err)?;
        let bytes = t.get(height).map_err(db_err)?.map(|g| g.value().to_vec());
        bytes
            .map(|b| codec::decode_prepared(&b))
            .transpose()
            .map_err(StoreError::from)
    }

    fn record_prepared(&mut self, height: Height, prepared: &Prepared) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(db_err)?;
        tx.open_table(PREPARED)
            .map_err(db_err)?
            .insert(height, codec::encode_prepared(prepared).as_slice())
            .map_err(db_err)?;
        tx.commit().map_err(db_err)
    }

    fn last_view(&self, height: Height) -> Result<Option<View>, StoreError> {
        let tx = self.db.begin_read().map_err(db_err)?;
        let t = tx.open_table(VOTES).map_err(db_err)?;
        let mut best = None;
        for entry in t
            .range((height, 0, 0)..=(height, View::MAX, u8::MAX))
            .map_err(db_err)?
        {
            let (k, _) = entry.map_err(db_err)?;
            best = best.max(Some(k.value().1));
        }
        Ok(best)
    }

    fn record_decision(&mut self, decision: &Decision) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(db_err)?;
        tx.open_table(DECISIONS)
            .map_err(db_err)?
            .insert(decision.height, codec::encode_decision(decision).as_slice())
            .map_err(db_err)?;
        tx.commit().map_err(db_err)
    }

    fn last_decided(&self) -> Result<Option<Height>, StoreError> {
        let tx = self.db.begin_read().map_err(db_err)?;
        let t = tx.open_table(DECISIONS).map_err(db_err)?;
        let last = t.last().map_err(db_err)?.map(|(k, _)| k.value());
        let floor = tx
            .open_table(HEIGHTS)
            .map_err(db_err)?
            .get(FLOOR)
            .map_err(db_err)?
            .map(|g| g.value());
        Ok(last.max(floor))
    }

    fn set_floor(&mut self, height: Height) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(db_err)?;
        {
            let mut t = tx.open_table(HEIGHTS).map_err(db_err)?;
            let old = t.get(FLOOR).map_err(db_err)?.map(|g| g.value());
            if old.is_none_or(|o| o < height) {
                t.insert(FLOOR, height).map_err(db_err)?;
            }
        }
        tx.commit().map_err(db_err)
    }

    fn decisions(&self, from: Height, limit: usize) -> Result<Vec<Decision>, StoreError> {
        let tx = self.db.begin_read().map_err(db_err)?;
        let t = tx.open_table(DECISIONS).map_err(db_err)?;
        let mut out = vec![];
        for entry in t.range(from..).map_err(db_err)?.take(limit) {
            let (_, v) = entry.map_err(db_err)?;
            out.push(codec::decode_decision(v.value())?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Certificate;

    fn exercise(s: &mut dyn Storage) {
        assert_eq!(
            s.record_vote(Kind::Prepare, 1, 0, [1; 32]).unwrap(),
            Recorded::New
        );
        assert_eq!(
            s.record_vote(Kind::Prepare, 1, 0, [1; 32]).unwrap(),
            Recorded::Same
        );
        assert_eq!(
            s.record_vote(Kind::Prepare, 1, 0, [2; 32]).unwrap(),
            Recorded::Conflict([1; 32])
        );
        assert_eq!(
            s.record_vote(Kind::Commit, 1, 0, [2; 32]).unwrap(),
            Recorded::New
        );
        assert_eq!(
            s.record_vote(Kind::ViewChange, 1, 3, [0; 32]).unwrap(),
            Recorded::New
        );
        assert_eq!(s.last_view(1).unwrap(), Some(3));
        assert_eq!(s.last_view(2).unwrap(), None);
        let cert = Certificate {
            kind: Kind::Commit,
            height: 1,
            view: 0,
            digest: [5; 32],
            signatures: vec![],
        };
        let d = Decision {
            height: 1,
            value: vec![1, 2],
            certificate: cert,
        };
        s.record_decision(&d).unwrap();
        assert_eq!(s.last_decided().unwrap(), Some(1));
        assert_eq!(s.decisions(0, 10).unwrap(), vec![d.clone()]);
        // A snapshot floor above the decisions held: later heights resume after it, and only
        // the decisions held are served.
        s.set_floor(9).unwrap();
        assert_eq!(s.last_decided().unwrap(), Some(9));
        s.set_floor(4).unwrap();
        assert_eq!(
            s.last_decided().unwrap(),
            Some(9),
            "the floor never goes down"
        );
        assert_eq!(s.decisions(0, 10).unwrap(), vec![d]);
    }

    #[test]
    fn mem_store_contract() {
        exercise(&mut MemStore::default());
    }

    #[test]
    fn redb_store_contract_and_durability_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("consensus.redb");
        exercise(&mut RedbStore::open(&path).unwrap());
        let mut reopened = RedbStore::open(&path).unwrap();
        assert_eq!(
            reopened.record_vote(Kind::Prepare, 1, 0, [9; 32]).unwrap(),
            Recorded::Conflict([1; 32])
        );
        assert_eq!(
            reopened.last_decided().unwrap(),
            Some(9),
            "the floor is durable"
        );
    }
}
