//! `GET /status`: the node's state as JSON, rebuilt by the application thread a few times a
//! second from the machine and the shell (served from a snapshot, so a slow reader never
//! holds the node up).

use std::collections::{BTreeSet, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use platform_consensus::Storage;
use platform_keys::ss58_encode;
use platform_net::NetHandle;

use crate::chainsvc::ChainStatus;
use crate::machine::{Hotkey, Machine};
use crate::msg::EpochRecord;
use crate::store::Store;

/// Committed epochs kept in `status`.
pub const HISTORY: usize = 64;

/// What the status document shows beside the machine's state.
#[derive(Debug)]
pub struct StatusView {
    hotkey: Hotkey,
    data_dir: PathBuf,
    metrics_addr: String,
    chain: Arc<Mutex<ChainStatus>>,
    out: Arc<Mutex<String>>,
    history: VecDeque<serde_json::Value>,
    /// Evaluations finished.
    pub evaluated: u64,
    /// View changes already counted in metrics.
    pub view_changes: u64,
}

/// When this node saw an epoch end and when it applied the epoch's decision (wall clock, Unix
/// ms): set for epochs decided while it ran, `null` for ones it replayed or synced.
#[derive(Clone, Copy, Debug, Default)]
pub struct Timing {
    pub ended_ms: Option<u64>,
    pub committed_ms: Option<u64>,
}

fn entry(epoch: u64, block: Option<u64>, r: &EpochRecord, t: Timing) -> serde_json::Value {
    serde_json::json!({
        "epoch": epoch,
        "block": block,
        "ended_ms": t.ended_ms,
        "committed_ms": t.committed_ms,
        "height": r.height,
        "digest": hex::encode(r.digest),
        "weights": r.weights,
        "mechanism_weights": r.mechanism_weights,
        "scored": r.scored,
        "reports": r.reports,
        "flagged": r.flagged,
    })
}

/// The last [`HISTORY`] committed epochs from the store.
pub fn history_from(
    store: &Store,
    last: Option<u64>,
) -> anyhow::Result<VecDeque<serde_json::Value>> {
    let from = last.map_or(0, |e| e.saturating_sub(HISTORY as u64));
    Ok(store
        .epochs_from(from)?
        .into_iter()
        .filter_map(|(e, b)| {
            crate::app::decode_record(&b).map(|r| entry(e, None, &r, Timing::default()))
        })
        .collect())
}

impl StatusView {
    /// A view writing into `out`.
    pub fn new(
        hotkey: Hotkey,
        data_dir: PathBuf,
        metrics_addr: String,
        chain: Arc<Mutex<ChainStatus>>,
        out: Arc<Mutex<String>>,
        history: VecDeque<serde_json::Value>,
    ) -> StatusView {
        StatusView {
            hotkey,
            data_dir,
            metrics_addr,
            chain,
            out,
            history,
            evaluated: 0,
            view_changes: 0,
        }
    }

    /// The subnet's mechanism count as the chain thread last read it.
    pub fn mechanism_count(&self) -> Option<u8> {
        self.chain
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .mechanism_count
    }

    /// Remember a committed epoch.
    pub fn push_history(&mut self, epoch: u64, block: u64, r: &EpochRecord, t: Timing) {
        self.history.push_back(entry(epoch, Some(block), r, t));
        while self.history.len() > HISTORY {
            self.history.pop_front();
        }
    }

    /// Rebuild the document.
    pub fn publish<S: Storage>(
        &self,
        m: &Machine<S>,
        net: &NetHandle,
        peers: usize,
        engine_outstanding: usize,
        backlog: usize,
        loaded: &BTreeSet<u32>,
    ) {
        for f in ["node.redb", "consensus.redb", "weights.redb"] {
            if let Ok(md) = std::fs::metadata(self.data_dir.join(f)) {
                metrics::gauge!(crate::metrics::STORE_BYTES, "file" => f).set(md.len() as f64);
            }
        }
        let chain = self.chain.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let registry: Vec<serde_json::Value> = m
            .registry()
            .entries()
            .values()
            .map(|e| {
                serde_json::json!({
                    "id": e.meta.id,
                    "name": e.meta.name,
                    "version": e.meta.version,
                    "active": e.active,
                    "loaded": loaded.contains(&e.meta.id),
                    "module": hex::encode(e.meta.module_hash),
                    "emission_share": e.meta.emission_share,
                })
            })
            .collect();
        let metagraph = m.latest_roster().map(|(epoch, r)| {
            serde_json::json!({
                "epoch": epoch,
                "block": r.pin.block,
                "block_hash": hex::encode(r.pin.hash),
                "validators": r.validators.iter().map(|(k, s)| serde_json::json!({
                    "hotkey": ss58_encode(k), "stake": s,
                })).collect::<Vec<_>>(),
                "miners": r.miners.len(),
                "stake": r.stake_kind.as_str(),
            })
        });
        let (applied_height, last_epoch) = m.applied();
        let role = if m.votes() { "validator" } else { "follower" };
        let s = serde_json::json!({
            "hotkey": ss58_encode(&self.hotkey),
            "role": role,
            "peer_id": net.peer_id(),
            "listen": net.listen_addrs(),
            "metrics": format!("http://{}/metrics", self.metrics_addr),
            "block": m.head(),
            "epoch": m.current_epoch(),
            "next_epoch": m.next_epoch(),
            "metagraph": metagraph,
            "height": m.height(),
            "view": m.view(),
            "applied_height": applied_height,
            "last_committed_epoch": last_epoch,
            "committed": self.history,
            "peers": peers,
            "engine_outstanding": engine_outstanding,
            "backlog": backlog,
            "evaluated": self.evaluated,
            "pending_changes": m.pending_changes(),
            "pending_decisions": m.pending_decisions(),
            "registry": registry,
            "registry_nonce": m.registry().last_nonce(),
            "snapshot": m.latest_snapshot().map(|r| serde_json::json!({
                "height": r.height,
                "manifest": hex::encode(r.manifest),
            })),
            "state_sync": m.state_sync(),
            "machine": m.stats(),
            "chain": chain,
            "heap": crate::heap::read(),
        });
        *self.out.lock().unwrap_or_else(|p| p.into_inner()) = s.to_string();
    }
}
