//! Memory over a devnet's run: each node's resident set sampled every few seconds, and its
//! slope over the last half of the run (a soak's question: does memory plateau?). Written to
//! `DIR/rss.json` and summed up in one line at the end.

use std::process::Child;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The least-squares slope of `points` (seconds, value), per minute; `None` with fewer than
/// 3 points or no spread in time.
pub fn slope_per_min(points: &[(f64, f64)]) -> Option<f64> {
    if points.len() < 3 {
        return None;
    }
    let n = points.len() as f64;
    let mt = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mv = points.iter().map(|p| p.1).sum::<f64>() / n;
    let var: f64 = points.iter().map(|p| (p.0 - mt).powi(2)).sum();
    let cov: f64 = points.iter().map(|p| (p.0 - mt) * (p.1 - mv)).sum();
    (var > 0.0).then(|| cov / var * 60.0)
}

/// Samples of every node's resident set.
#[derive(Debug)]
pub(super) struct RssLog {
    start: Instant,
    every: Duration,
    last: Option<Instant>,
    /// (seconds since start, KiB per node; `None` while a node is down).
    samples: Vec<(f64, Vec<Option<u64>>)>,
}

impl RssLog {
    pub(super) fn new(every: Duration) -> RssLog {
        RssLog {
            start: Instant::now(),
            every,
            last: None,
            samples: Vec::new(),
        }
    }

    /// Take a sample if one is due.
    pub(super) fn sample(&mut self, children: &[Option<Child>]) {
        if self.last.is_some_and(|t| t.elapsed() < self.every) {
            return;
        }
        self.last = Some(Instant::now());
        let row = children
            .iter()
            .map(|c| {
                c.as_ref()
                    .and_then(|c| super::proc_status_kib(c.id(), "VmRSS:"))
            })
            .collect();
        self.samples.push((self.start.elapsed().as_secs_f64(), row));
    }

    /// Least-squares slope, KiB per minute, of node `i` over the samples from `from` seconds.
    fn slope(&self, i: usize, from: f64) -> Option<f64> {
        let pts: Vec<(f64, f64)> = self
            .samples
            .iter()
            .filter(|(t, _)| *t >= from)
            .filter_map(|(t, row)| row.get(i).copied().flatten().map(|k| (*t, k as f64)))
            .collect();
        slope_per_min(&pts)
    }

    /// The series and each node's slope over the last half of the run, as JSON; one line
    /// printed.
    pub(super) fn finish(&self, names: &[String]) -> Value {
        let end = self.samples.last().map_or(0.0, |s| s.0);
        let half = end / 2.0;
        let nodes: Vec<Value> = names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let last = self
                    .samples
                    .iter()
                    .rev()
                    .find_map(|(_, r)| r.get(i).copied().flatten());
                json!({
                    "node": n,
                    "last_kib": last,
                    "slope_kib_per_min_last_half": self.slope(i, half),
                })
            })
            .collect();
        let line: Vec<String> = nodes
            .iter()
            .map(|v| {
                format!(
                    "{} {} MiB ({:+.2} MiB/min over the last half)",
                    v["node"].as_str().unwrap_or("?"),
                    v["last_kib"].as_u64().unwrap_or(0) / 1024,
                    v["slope_kib_per_min_last_half"].as_f64().unwrap_or(0.0) / 1024.0
                )
            })
            .collect();
        println!("RSS: {}", line.join(", "));
        json!({
            "seconds": end,
            "every_seconds": self.every.as_secs_f64(),
            "nodes": nodes,
            "samples": self.samples.iter().map(|(t, r)| json!({"t": t, "kib": r})).collect::<Vec<_>>(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_slope_is_per_minute_over_the_chosen_window() {
        let mut log = RssLog::new(Duration::from_secs(1));
        for s in 0u32..10 {
            // Node 0 grows 60 KiB a second until 5 s, then stays; node 1 is down at first.
            let k0 = 1000 + 60 * u64::from(s.min(5));
            let k1 = (s >= 2).then_some(500);
            log.samples.push((f64::from(s), vec![Some(k0), k1]));
        }
        assert_eq!(log.slope(0, 0.0).map(|x| x > 0.0), Some(true));
        assert_eq!(log.slope(0, 5.0), Some(0.0));
        assert_eq!(log.slope(1, 0.0), Some(0.0));
        assert!(log.slope(0, 8.5).is_none(), "too few samples");
        let v = log.finish(&["v0".into(), "v1".into()]);
        assert_eq!(v["nodes"][0]["slope_kib_per_min_last_half"], 0.0);
    }
}
