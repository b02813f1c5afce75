//! Reading the running devnet from outside: each validator's API (status, Prometheus text),
//! and its process (CPU used) — and the slopes of what was sampled.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::Value;

use platform_node::devnet::{proc_status_kib, slope_per_min};

/// CPU seconds (user + system) a process has used so far, from `/proc/PID/stat`.
pub(super) fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces): state is the first; utime and
    // stime are the 12th and 13th.
    let rest = stat.rsplit_once(") ")?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    // SAFETY: sysconf reads a constant of the running system.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (hz > 0).then(|| ticks / hz as f64)
}

/// Sum of a Prometheus counter's samples whose labels contain every `labels` pair.
pub(super) fn prom_sum(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (n, rest) = series.split_once('{').unwrap_or((series, ""));
            (n == name
                && labels
                    .iter()
                    .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\""))))
            .then(|| value.parse::<f64>().ok())
            .flatten()
        })
        .sum()
}

pub(super) struct Node {
    pub(super) api: String,
    pub(super) p2p: String,
    pub(super) pid: Option<u32>,
}

pub(super) fn status(api: &str) -> Option<Value> {
    let text = http_get(api, "/status").ok()?;
    serde_json::from_str(&text).ok()
}

/// One GET over a fresh connection (the node's API is plain HTTP/1.1).
pub(super) fn http_get(addr: &str, path: &str) -> anyhow::Result<String> {
    use std::io::{Read as _, Write as _};
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    let (head, body) = out
        .split_once("\r\n\r\n")
        .context("malformed HTTP response")?;
    anyhow::ensure!(head.contains(" 200 "), "{addr}{path}: {head}");
    Ok(body.to_string())
}

/// Seconds between resident-set samples.
pub(super) const RSS_EVERY_S: f64 = 5.0;

/// Per node (column), the least-squares slope of `series` (rows sampled every `every_s`)
/// over its last half, per minute; `None` with fewer than 3 samples there.
pub(super) fn slope_last_half(series: &[Vec<u64>], every_s: f64) -> Vec<Option<f64>> {
    let nodes = series.first().map_or(0, Vec::len);
    let from = series.len() / 2;
    (0..nodes)
        .map(|i| {
            let pts: Vec<(f64, f64)> = series[from..]
                .iter()
                .enumerate()
                .filter_map(|(k, row)| row.get(i).map(|v| (k as f64 * every_s, *v as f64)))
                .collect();
            slope_per_min(&pts)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    #[test]
    fn cpu_seconds_count_this_process_working() {
        let before = cpu_seconds(std::process::id()).expect("this process's /proc/PID/stat");
        // Work until the count moves by 50 ms of CPU (however busy the machine is).
        let t = Instant::now();
        let mut x = 0u64;
        let mut after = before;
        while after - before < 0.05 && t.elapsed() < Duration::from_secs(60) {
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
            after = cpu_seconds(std::process::id()).unwrap();
        }
        assert!(after - before >= 0.05, "{before} -> {after}");
        assert_eq!(cpu_seconds(u32::MAX), None);
    }

    #[test]
    fn memory_slope_over_the_last_half() {
        // Node 0 grows 1 MiB a sample (12 MiB/min at 5 s) throughout; node 1 grows in the
        // first half only.
        let series: Vec<Vec<u64>> = (0..20u64).map(|k| vec![100 + k, 100 + k.min(9)]).collect();
        let s = slope_last_half(&series, 5.0);
        assert!((s[0].unwrap() - 12.0).abs() < 1e-9, "{s:?}");
        assert_eq!(s[1], Some(0.0));
        assert_eq!(slope_last_half(&series[..4], 5.0), vec![None, None]);
    }
}

/// Each validator's resident set (MiB), live heap (MiB), `node.redb` (MiB) and kept
/// submission bodies, one row per sample.
#[derive(Default)]
pub(super) struct Samples {
    pub(super) rss: Vec<Vec<u64>>,
    pub(super) heap: Vec<Vec<u64>>,
    pub(super) store: Vec<Vec<u64>>,
    pub(super) bodies: Vec<Vec<u64>>,
}

impl Samples {
    /// Take one sample of every node.
    pub(super) fn sample(&mut self, nodes: &[Node]) {
        self.rss.push(
            nodes
                .iter()
                .map(|n| {
                    n.pid
                        .and_then(|p| proc_status_kib(p, "VmRSS:"))
                        .unwrap_or(0)
                        / 1024
                })
                .collect::<Vec<u64>>(),
        );
        self.heap.push(
            nodes
                .iter()
                .map(|n| {
                    status(&n.api)
                        .and_then(|s| s["heap"]["allocated"].as_u64())
                        .unwrap_or(0)
                        >> 20
                })
                .collect::<Vec<u64>>(),
        );
        let texts: Vec<String> = nodes
            .iter()
            .map(|n| http_get(&n.api, "/metrics").unwrap_or_default())
            .collect();
        self.store.push(
            texts
                .iter()
                .map(|t| {
                    prom_sum(t, "platform_store_file_bytes", &[("file", "node.redb")]) as u64 >> 20
                })
                .collect::<Vec<u64>>(),
        );
        self.bodies.push(
            texts
                .iter()
                .map(|t| {
                    prom_sum(t, "platform_store_rows", &[("table", "submission_bodies")]) as u64
                })
                .collect::<Vec<u64>>(),
        );
    }
}

/// Per validator, the bytes it received from peers per submission byte (gossip
/// amplification: `accepted` submissions of `mean_sub` bytes, each from a peer for all but
/// the one in n it admitted itself), and why the validators refused miners `busy`, summed.
pub(super) fn traffic(
    nodes: &[Node],
    accepted: u64,
    mean_sub: f64,
) -> (Vec<f64>, BTreeMap<String, u64>) {
    let n = nodes.len().max(1) as f64;
    let from_peers = accepted as f64 * (n - 1.0) / n;
    let mut busy_why: BTreeMap<String, u64> = BTreeMap::new();
    let amplification: Vec<f64> = nodes
        .iter()
        .map(|node| {
            let text = http_get(&node.api, "/metrics").unwrap_or_default();
            for why in ["engine_busy", "subnet_busy", "not_ready"] {
                let n = prom_sum(
                    &text,
                    "platform_engine_ingress_submissions_total",
                    &[("result", why)],
                );
                *busy_why.entry(why.into()).or_default() += n as u64;
            }
            let bytes = prom_sum(
                &text,
                "platform_net_message_bytes_total",
                &[("direction", "in")],
            ) + prom_sum(
                &text,
                "platform_net_batch_bytes_total",
                &[("direction", "in")],
            );
            bytes / (from_peers * mean_sub).max(1.0)
        })
        .collect();
    (amplification, busy_why)
}
