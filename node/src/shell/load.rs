//! The evaluation work a validator holds, in estimated shard time, so that a miner's new
//! submission is refused `busy` while the work already taken could not be done within one
//! settle window: what is accepted is evaluated before its epoch's batch goes out, and
//! overload reaches miners as a clear answer instead of unscored submissions.
//!
//! Every submission this validator evaluates counts — its own miners' and those its peers
//! counted (which it cannot refuse): each validator evaluates them all, so each sees the
//! subnet's whole load and refuses its own miners' share of the excess.

use std::collections::HashMap;
use std::time::Duration;

use crate::machine::Hash32;

/// The cost assumed for a challenge before any of its evaluations is measured.
const FIRST_GUESS_NS: u64 = 1_000_000;
/// Weight of a new measurement in a challenge's running cost (1/8).
const EWMA_SHIFT: u32 = 3;

/// Work taken and not yet done.
#[derive(Debug)]
pub(crate) struct Load {
    /// Running mean service time per challenge, in ns.
    cost_ns: HashMap<u32, u64>,
    /// What each submission in the engine or its backlog was estimated at.
    pending: HashMap<Hash32, u64>,
    outstanding_ns: u64,
    budget_ns: u64,
}

impl Load {
    /// Work for `shards` engine cores over `horizon` (the settle window) at most.
    pub(crate) fn new(shards: usize, horizon: Duration) -> Load {
        let budget = horizon.as_nanos().saturating_mul(shards.max(1) as u128);
        Load {
            cost_ns: HashMap::new(),
            pending: HashMap::new(),
            outstanding_ns: 0,
            budget_ns: u64::try_from(budget).unwrap_or(u64::MAX),
        }
    }

    /// A submission handed to the engine (or its backlog).
    pub(crate) fn taken(&mut self, id: Hash32, challenge: u32) {
        let est = self
            .cost_ns
            .get(&challenge)
            .copied()
            .unwrap_or(FIRST_GUESS_NS);
        if let Some(old) = self.pending.insert(id, est) {
            self.outstanding_ns = self.outstanding_ns.saturating_sub(old);
        }
        self.outstanding_ns = self.outstanding_ns.saturating_add(est);
    }

    /// Its evaluation came back after `service_ns` on a shard.
    pub(crate) fn done(&mut self, id: &Hash32, challenge: u32, service_ns: u64) {
        self.forget(id);
        let c = self.cost_ns.entry(challenge).or_insert(service_ns);
        *c = if service_ns >= *c {
            *c + ((service_ns - *c) >> EWMA_SHIFT)
        } else {
            *c - ((*c - service_ns) >> EWMA_SHIFT)
        };
    }

    /// It will not be evaluated (shed, refused by the engine).
    pub(crate) fn forget(&mut self, id: &Hash32) {
        if let Some(est) = self.pending.remove(id) {
            self.outstanding_ns = self.outstanding_ns.saturating_sub(est);
        }
    }

    /// Whether new submissions from miners are refused.
    pub(crate) fn busy(&self) -> bool {
        self.outstanding_ns >= self.budget_ns
    }

    /// Estimated seconds of shard time held.
    pub(crate) fn outstanding_secs(&self) -> f64 {
        self.outstanding_ns as f64 / 1e9
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_while_the_work_taken_exceeds_the_window_and_free_once_it_is_done() {
        // 2 shards × 10 ms: 20 ms of work.
        let mut l = Load::new(2, Duration::from_millis(10));
        // The first guess (1 ms) until measured.
        for i in 0..19u8 {
            l.taken([i; 32], 7);
        }
        assert!(!l.busy(), "19 ms held");
        l.taken([19; 32], 7);
        assert!(l.busy(), "20 ms held");
        l.done(&[0; 32], 7, 1_000_000);
        assert!(!l.busy());
        // A challenge measured slower is estimated slower.
        for _ in 0..64 {
            l.taken([200; 32], 9);
            l.done(&[200; 32], 9, 6_000_000);
        }
        l.taken([201; 32], 9);
        assert!(l.busy(), "19 ms + ~6 ms held: {}", l.outstanding_secs());
        l.forget(&[201; 32]);
        assert!(!l.busy());
        for i in 1..20u8 {
            l.done(&[i; 32], 7, 1_000_000);
        }
        assert_eq!(l.outstanding_secs(), 0.0);
        // Taken twice (a result never came): counted once.
        l.taken([50; 32], 7);
        l.taken([50; 32], 7);
        l.forget(&[50; 32]);
        assert_eq!(l.outstanding_secs(), 0.0);
    }
}
