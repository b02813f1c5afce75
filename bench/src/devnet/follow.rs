//! Following the load to its results: the epochs every validator committed (with the nodes'
//! own stamps of each epoch's end and commit), and the p99 of what was measured.

use std::collections::BTreeMap;

use super::probe::{Node, status};

/// Epochs committed by every node, and when this process first saw that.
/// Per epoch: (reports in its input, (challenge, miner) pairs with an agreed score).
/// An epoch committed at every node, as their statuses tell it.
#[derive(Clone, Copy, Debug)]
pub(super) struct Committed {
    pub(super) reports: u64,
    pub(super) scored: u64,
    /// The first node's sight of the epoch's end and the last node's commit (wall clock,
    /// Unix ms, stamped by the nodes themselves); `None` where a node did not stamp it.
    pub(super) ended_ms: Option<u64>,
    pub(super) committed_ms: Option<u64>,
}

pub(super) fn committed_everywhere(nodes: &[Node]) -> BTreeMap<u64, Committed> {
    let mut counts: BTreeMap<u64, (usize, Committed)> = BTreeMap::new();
    for n in nodes {
        if let Some(st) = status(&n.api) {
            for c in st["committed"].as_array().into_iter().flatten() {
                if let Some(e) = c["epoch"].as_u64() {
                    let (ended, done) = (c["ended_ms"].as_u64(), c["committed_ms"].as_u64());
                    let entry = counts.entry(e).or_insert((
                        0,
                        Committed {
                            reports: c["reports"].as_u64().unwrap_or(0),
                            scored: c["scored"].as_u64().unwrap_or(0),
                            ended_ms: ended,
                            committed_ms: done,
                        },
                    ));
                    if entry.0 > 0 {
                        let t = &mut entry.1;
                        t.ended_ms = t.ended_ms.zip(ended).map(|(a, b)| a.min(b));
                        t.committed_ms = t.committed_ms.zip(done).map(|(a, b)| a.max(b));
                    }
                    entry.0 += 1;
                }
            }
        }
    }
    counts
        .into_iter()
        .filter(|(_, (n, _))| *n == nodes.len())
        .map(|(e, (_, c))| (e, c))
        .collect()
}

/// The p99 of `values` (0 when empty).
pub(super) fn p99(values: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.collect();
    v.sort_by(f64::total_cmp);
    v.get(((v.len() as f64 * 0.99).ceil() as usize).saturating_sub(1))
        .copied()
        .unwrap_or(0.0)
}
