//! The evaluation work a validator holds, in estimated shard time, so that a miner's new
//! submission is refused `busy` while the work already taken could not be done within the
//! horizon — the time left until the batch that what is admitted now goes in (the machine
//! says it: `machine/pace.rs`; `settle / 2`, the least it can be, until it has): what is
//! accepted is evaluated before its batch, and overload reaches miners as a clear answer
//! instead of unscored submissions.
//!
//! Every submission this validator evaluates counts — its own miners' and those its peers
//! counted (which it cannot refuse): each validator evaluates them all, so each sees the
//! subnet's whole load and refuses its own miners' share of the excess.
//!
//! How fast the held work drains is measured, not assumed: the engine's shards may share
//! their cores with other validators, a load driver or anything else on the machine. While
//! work is held throughout a window, the estimated work finished in it over its length is
//! the drain rate (a running mean over windows); until one is measured, the shards are
//! assumed to have their cores to themselves.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::machine::Hash32;

/// The cost assumed for a challenge before any of its evaluations is measured.
const FIRST_GUESS_NS: u64 = 1_000_000;
/// Weight of a new measurement in a challenge's running cost (1/8).
const EWMA_SHIFT: u32 = 3;
/// A drain rate is measured over windows at least this long with work held throughout.
const WINDOW: Duration = Duration::from_millis(250);
/// Weight of a window's drain rate in the running one.
const RATE_WEIGHT: f64 = 0.25;

/// Work taken and not yet done.
#[derive(Debug)]
pub(crate) struct Load {
    /// Running mean service time per challenge, in ns.
    cost_ns: HashMap<u32, u64>,
    /// What each submission in the engine or its backlog was estimated at.
    pending: HashMap<Hash32, u64>,
    outstanding_ns: u64,
    /// Wall time the held work must drain within.
    horizon_ns: f64,
    /// Shards, the drain rate assumed before one is measured.
    shards: f64,
    /// Estimated work drained per ns of wall time, once measured.
    rate: Option<f64>,
    /// The window being measured: since when, work finished in it, and whether the held
    /// work ran out in it (then it measures the arrivals, not the drain, and is dropped).
    window_start: Option<Instant>,
    window_done_ns: u64,
    window_idle: bool,
}

impl Load {
    /// Work that `shards` engine cores drain within `horizon` at most (until a drain rate
    /// is measured).
    pub(crate) fn new(shards: usize, horizon: Duration) -> Load {
        Load {
            cost_ns: HashMap::new(),
            pending: HashMap::new(),
            outstanding_ns: 0,
            horizon_ns: horizon.as_nanos() as f64,
            shards: shards.max(1) as f64,
            rate: None,
            window_start: None,
            window_done_ns: 0,
            window_idle: false,
        }
    }

    fn estimate(&self, challenge: u32) -> u64 {
        self.cost_ns
            .get(&challenge)
            .copied()
            .unwrap_or(FIRST_GUESS_NS)
    }

    /// The time the work held must drain within, from now (the machine's admission
    /// horizon: until the batch what is admitted now goes in).
    pub(crate) fn set_horizon(&mut self, horizon: Duration) {
        self.horizon_ns = horizon.as_nanos() as f64;
    }

    /// A submission handed to the engine (or its backlog).
    pub(crate) fn taken(&mut self, id: Hash32, challenge: u32) {
        let est = self.estimate(challenge);
        if let Some(old) = self.pending.insert(id, est) {
            self.outstanding_ns = self.outstanding_ns.saturating_sub(old);
        }
        self.outstanding_ns = self.outstanding_ns.saturating_add(est);
    }

    /// Its evaluation came back after `service_ns` on a shard.
    pub(crate) fn done(&mut self, id: &Hash32, challenge: u32, service_ns: u64) {
        if let Some(est) = self.release(id) {
            self.window_done_ns = self.window_done_ns.saturating_add(est);
        }
        let c = self.cost_ns.entry(challenge).or_insert(service_ns);
        *c = if service_ns >= *c {
            *c + ((service_ns - *c) >> EWMA_SHIFT)
        } else {
            *c - ((*c - service_ns) >> EWMA_SHIFT)
        };
    }

    /// It will not be evaluated (shed, refused by the engine, its epoch decided).
    pub(crate) fn forget(&mut self, id: &Hash32) {
        self.release(id);
    }

    fn release(&mut self, id: &Hash32) -> Option<u64> {
        let est = self.pending.remove(id)?;
        self.outstanding_ns = self.outstanding_ns.saturating_sub(est);
        if self.outstanding_ns == 0 {
            self.window_idle = true;
        }
        Some(est)
    }

    /// Close the window being measured if it is long enough: its drain rate counts if
    /// work was held throughout. Called after each round of results.
    pub(crate) fn tick(&mut self, now: Instant) {
        let Some(start) = self.window_start else {
            self.window_start = Some(now);
            self.window_done_ns = 0;
            self.window_idle = self.outstanding_ns == 0;
            return;
        };
        let len = now.saturating_duration_since(start);
        if len < WINDOW {
            return;
        }
        if !self.window_idle && self.window_done_ns > 0 {
            let measured = self.window_done_ns as f64 / len.as_nanos() as f64;
            self.rate = Some(match self.rate {
                Some(r) => r + RATE_WEIGHT * (measured - r),
                None => measured,
            });
        }
        self.window_start = Some(now);
        self.window_done_ns = 0;
        self.window_idle = self.outstanding_ns == 0;
    }

    /// Whether new submissions from miners are refused: the work held would take longer
    /// than the horizon to drain.
    pub(crate) fn busy(&self) -> bool {
        self.outstanding_ns as f64 >= self.drain_rate() * self.horizon_ns
    }

    /// Estimated work drained per ns: measured, or one per shard until measured.
    fn drain_rate(&self) -> f64 {
        self.rate.unwrap_or(self.shards)
    }

    /// Estimated seconds of shard time held.
    pub(crate) fn outstanding_secs(&self) -> f64 {
        self.outstanding_ns as f64 / 1e9
    }

    /// Seconds the work held would take to drain at the measured rate.
    pub(crate) fn drain_secs(&self) -> f64 {
        self.outstanding_ns as f64 / self.drain_rate() / 1e9
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

    /// Hold `n` evaluations of 1 ms estimated each, ids from `first`.
    fn hold(l: &mut Load, first: u32, n: u32) {
        for i in first..first + n {
            let mut id = [0u8; 32];
            id[..4].copy_from_slice(&i.to_le_bytes());
            l.taken(id, 7);
        }
    }

    fn finish(l: &mut Load, first: u32, n: u32) {
        for i in first..first + n {
            let mut id = [0u8; 32];
            id[..4].copy_from_slice(&i.to_le_bytes());
            l.done(&id, 7, 1_000_000);
        }
    }

    #[test]
    fn the_drain_rate_is_measured_while_work_is_held_and_sets_how_much_is_taken() {
        // 2 shards, 100 ms horizon: 200 ms of work until a rate is measured.
        let mut l = Load::new(2, Duration::from_millis(100));
        let t0 = Instant::now();
        hold(&mut l, 0, 300);
        assert!(l.busy(), "300 ms held > 2 × 100 ms");
        l.tick(t0);
        // The shards share their cores: 100 ms of estimated work done in 250 ms of wall
        // time, with work held throughout — a drain rate of 0.4, not 2.
        finish(&mut l, 0, 100);
        l.tick(t0 + Duration::from_millis(250));
        assert!((l.drain_rate() - 0.4).abs() < 1e-9, "{}", l.drain_rate());
        // 200 ms held now drains in 500 ms: busy until below 40 ms.
        assert!(l.busy());
        finish(&mut l, 100, 160);
        assert!(l.busy(), "40 ms held");
        finish(&mut l, 260, 1);
        assert!(!l.busy(), "39 ms held");
        assert!((l.drain_secs() - 0.039 / 0.4).abs() < 1e-9);
        // A window in which the work ran out measures the arrivals, not the drain: ignored.
        finish(&mut l, 261, 39);
        hold(&mut l, 1000, 10);
        finish(&mut l, 1000, 10);
        l.tick(t0 + Duration::from_millis(600));
        assert!((l.drain_rate() - 0.4).abs() < 1e-9);
        // So is one that started with nothing held.
        hold(&mut l, 2000, 1000);
        l.tick(t0 + Duration::from_millis(850));
        assert!((l.drain_rate() - 0.4).abs() < 1e-9);
        // A faster window moves the running rate a quarter of the way.
        finish(&mut l, 2000, 300);
        l.tick(t0 + Duration::from_millis(1100));
        assert!((l.drain_rate() - (0.4 + 0.25 * (1.2 - 0.4))).abs() < 1e-9);
        // A window shorter than `WINDOW` is still open.
        finish(&mut l, 2300, 10);
        l.tick(t0 + Duration::from_millis(1200));
        assert!((l.drain_rate() - 0.6).abs() < 1e-9);
    }
}
