//! Pacing miners' connections: each keeps within the validators' per-peer request rate, and
//! there are enough of them for the target rate.

use std::time::{Duration, Instant};

/// How long a connection told `rate_limited` or `busy` waits before sending again.
pub(super) const RATE_BACKOFF: Duration = Duration::from_millis(100);

/// Requests a connection may send back to back after an idle spell (its bucket's size),
/// well within the validators' burst (200 by default).
pub(super) const CONNECTION_BURST: f64 = 20.0;

/// Miner connections per validator: as asked, or enough for the target rate at
/// `per_connection` each (at least 8), or 64 when driving as fast as accepted.
pub(super) fn connections_per_node(
    asked: usize,
    rate: f64,
    per_connection: f64,
    nodes: usize,
) -> usize {
    if asked > 0 {
        return asked;
    }
    if rate <= 0.0 {
        return 64;
    }
    let total = (rate / per_connection.max(1e-3)).ceil() as usize;
    total.div_ceil(nodes.max(1)).max(8)
}

/// A connection's pacing: a token bucket refilled at `rate` per second up to
/// [`CONNECTION_BURST`], so a connection never sends faster than a validator takes.
#[derive(Clone, Copy)]
pub(super) struct Pace {
    tokens: f64,
    at: Instant,
}

impl Pace {
    pub(super) fn new(now: Instant) -> Pace {
        Pace {
            tokens: CONNECTION_BURST,
            at: now,
        }
    }

    /// Take a token if there is one.
    pub(super) fn take(&mut self, rate: f64, now: Instant) -> bool {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + dt * rate).min(CONNECTION_BURST);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_cover_the_target_rate_within_the_peer_rate() {
        // 10,000/s at 45/s a connection over 4 validators: 223 in all, 56 each.
        assert_eq!(connections_per_node(0, 10_000.0, 45.0, 4), 56);
        assert_eq!(connections_per_node(0, 100.0, 45.0, 4), 8);
        assert_eq!(connections_per_node(0, 0.0, 45.0, 4), 64);
        assert_eq!(connections_per_node(3, 10_000.0, 45.0, 4), 3);
    }

    #[test]
    fn a_connection_never_sends_faster_than_its_rate() {
        let t0 = Instant::now();
        let mut p = Pace::new(t0);
        let mut sent = 0;
        // Over 10 s at 45/s, asked every millisecond: the burst plus 450.
        for ms in 0..10_000 {
            if p.take(45.0, t0 + Duration::from_millis(ms)) {
                sent += 1;
            }
        }
        assert!(
            (450..=451 + CONNECTION_BURST as u32).contains(&sent),
            "{sent}"
        );
        assert!(sent >= 450 + CONNECTION_BURST as u32 - 1, "{sent}");
    }
}
