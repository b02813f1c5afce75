//! Kademlia's record store, bounded by age as well as count. libp2p's `MemoryStore` drops
//! another peer's provider record only when its key is looked up after it expired, so on a
//! busy network every content key ever announced stays (about 3 KB each) until the count cap,
//! and then new keys are refused. This wrapper remembers when each provider record arrived
//! and removes the expired ones as new ones come in, so the store holds what arrived within
//! one provider-record TTL (plus what is still being republished).

use std::borrow::Cow;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

use libp2p::PeerId;
use libp2p::kad::store::{MemoryStore, RecordStore, Result};
use libp2p::kad::{ProviderRecord, Record, RecordKey};

/// A [`MemoryStore`] whose expired provider records are swept as records arrive.
pub(crate) struct SweptStore {
    inner: MemoryStore,
    /// Provider records in arrival order: (when, key, provider); a refreshed record appears
    /// again, and an entry whose record was refreshed since is skipped.
    arrivals: VecDeque<(Instant, RecordKey, PeerId)>,
    /// How long after arrival a record is looked at again (its TTL).
    ttl: Duration,
}

impl SweptStore {
    pub(crate) fn new(inner: MemoryStore, ttl: Duration) -> SweptStore {
        SweptStore {
            inner,
            arrivals: VecDeque::new(),
            ttl,
        }
    }

    /// [`RecordStore::add_provider`] at `now`.
    fn add_provider_at(&mut self, record: ProviderRecord, now: Instant) -> Result<()> {
        self.sweep(now);
        if record.expires.is_some() {
            self.arrivals
                .push_back((now, record.key.clone(), record.provider));
        }
        self.inner.add_provider(record)
    }

    /// Remove the provider records that arrived at least a TTL ago and have expired.
    fn sweep(&mut self, now: Instant) {
        while let Some((at, _, _)) = self.arrivals.front() {
            if now.saturating_duration_since(*at) < self.ttl {
                break;
            }
            let Some((_, key, provider)) = self.arrivals.pop_front() else {
                break;
            };
            let expired = self
                .inner
                .providers(&key)
                .iter()
                .find(|r| r.provider == provider)
                .is_some_and(|r| r.is_expired(now));
            if expired {
                self.inner.remove_provider(&key, &provider);
            }
        }
    }

    /// Provider records tracked for expiry.
    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.arrivals.len()
    }
}

impl RecordStore for SweptStore {
    type RecordsIter<'a> = <MemoryStore as RecordStore>::RecordsIter<'a>;
    type ProvidedIter<'a> = <MemoryStore as RecordStore>::ProvidedIter<'a>;

    fn get(&self, k: &RecordKey) -> Option<Cow<'_, Record>> {
        self.inner.get(k)
    }

    fn put(&mut self, r: Record) -> Result<()> {
        self.inner.put(r)
    }

    fn remove(&mut self, k: &RecordKey) {
        self.inner.remove(k)
    }

    fn records(&self) -> Self::RecordsIter<'_> {
        self.inner.records()
    }

    fn add_provider(&mut self, record: ProviderRecord) -> Result<()> {
        self.add_provider_at(record, Instant::now())
    }

    fn providers(&self, key: &RecordKey) -> Vec<ProviderRecord> {
        self.inner.providers(key)
    }

    fn provided(&self) -> Self::ProvidedIter<'_> {
        self.inner.provided()
    }

    fn remove_provider(&mut self, k: &RecordKey, p: &PeerId) {
        self.inner.remove_provider(k, p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libp2p::kad::store::MemoryStoreConfig;

    fn record(key: u32, provider: PeerId, expires: Option<Instant>) -> ProviderRecord {
        ProviderRecord {
            key: RecordKey::new(&key.to_le_bytes()),
            provider,
            expires,
            addresses: Vec::new(),
        }
    }

    #[test]
    fn expired_provider_records_are_swept_and_live_ones_kept() {
        let local = PeerId::random();
        let peer = PeerId::random();
        let ttl = Duration::from_secs(600);
        let config = MemoryStoreConfig {
            max_provided_keys: 100,
            ..MemoryStoreConfig::default()
        };
        let mut s = SweptStore::new(MemoryStore::with_config(local, config), ttl);
        let t0 = Instant::now();
        // Our own record never expires; the peer's do, a TTL after arrival.
        s.add_provider_at(record(0, local, None), t0).unwrap();
        for k in 1..=50u32 {
            s.add_provider_at(record(k, peer, Some(t0 + ttl)), t0)
                .unwrap();
        }
        // Key 1 is refreshed (republished) half-way: it lives on.
        let half = t0 + ttl / 2;
        s.add_provider_at(record(1, peer, Some(half + ttl)), half)
            .unwrap();
        // A TTL later, new arrivals sweep the expired ones.
        let later = t0 + ttl + Duration::from_secs(1);
        for k in 51..=60u32 {
            s.add_provider_at(record(k, peer, Some(later + ttl)), later)
                .unwrap();
        }
        let held =
            |s: &SweptStore, k: u32| !s.providers(&RecordKey::new(&k.to_le_bytes())).is_empty();
        assert!(held(&s, 0), "our own record stays");
        assert!(held(&s, 1), "a refreshed record stays");
        for k in 2..=50 {
            assert!(!held(&s, k), "key {k} expired and was swept");
        }
        for k in 51..=60 {
            assert!(held(&s, k));
        }
        assert_eq!(s.provided().count(), 1);
        // The refreshed record's later arrival and the new ones are all that is tracked.
        assert_eq!(s.tracked(), 11);
        // Without the sweep the store would have refused key 101 (100 keys at most); now it
        // holds 12 and takes many more.
        for k in 61..=140u32 {
            s.add_provider_at(record(k, peer, Some(later + ttl)), later)
                .unwrap();
        }
    }
}
