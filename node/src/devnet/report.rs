//! What the devnet prints per committed epoch, in words a person reads: the epoch's blocks,
//! the agreed result on how many nodes, each validator's weights as the shared chain holds
//! them (percentages), and the Yuma consensus preview over them.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use platform_chain::Chain as _;
use platform_chain::sim::SimChain;
use platform_chain::yuma::{self, ValidatorWeights};
use platform_keys::ss58_encode;
use serde_json::Value;

use super::NETUID;
use crate::machine::Schedule;

/// How long after every node committed an epoch its report waits for weights to land.
const WEIGHTS_GRACE: Duration = Duration::from_secs(4);

/// Prints each epoch once every running node committed it.
pub(super) struct Reporter {
    names: Vec<String>,
    printed: BTreeMap<u64, bool>,
    seen_all: BTreeMap<u64, Instant>,
}

fn percent(ws: &[(u16, u16)]) -> String {
    let total: u64 = ws.iter().map(|(_, w)| u64::from(*w)).sum();
    if total == 0 {
        return "none".into();
    }
    ws.iter()
        .filter(|(_, w)| *w > 0)
        .map(|(u, w)| format!("uid {u} {:.1}%", 100.0 * *w as f64 / total as f64))
        .collect::<Vec<_>>()
        .join(" · ")
}

impl Reporter {
    /// A reporter naming nodes by index (their hotkeys in `names`).
    pub(super) fn new(names: Vec<String>) -> Reporter {
        Reporter {
            names,
            printed: BTreeMap::new(),
            seen_all: BTreeMap::new(),
        }
    }

    /// Epochs every node agreed on.
    pub(super) fn agreed(&self) -> u64 {
        self.printed.values().filter(|a| **a).count() as u64
    }

    /// Whether some epoch was committed differently.
    pub(super) fn disagreed(&self) -> bool {
        self.printed.values().any(|a| !*a)
    }

    /// Print what is ready.
    pub(super) fn report(
        &mut self,
        sts: &[(usize, Value)],
        schedule: &Schedule,
        chain: &Mutex<SimChain>,
    ) {
        if sts.is_empty() {
            return;
        }
        let mut by_epoch: BTreeMap<u64, Vec<(usize, Value)>> = BTreeMap::new();
        for (i, st) in sts {
            for c in st["committed"].as_array().into_iter().flatten() {
                if let Some(e) = c["epoch"].as_u64() {
                    by_epoch.entry(e).or_default().push((*i, c.clone()));
                }
            }
        }
        for (e, commits) in by_epoch {
            if self.printed.contains_key(&e) || commits.len() < sts.len() {
                continue;
            }
            let seen = *self.seen_all.entry(e).or_insert_with(Instant::now);
            let weights_in = sts.iter().all(|(_, s)| {
                s["role"] != "validator" || s["chain"]["last_epoch"].as_u64() >= Some(e)
            });
            if !weights_in && seen.elapsed() < WEIGHTS_GRACE {
                continue;
            }
            let digests: BTreeSet<&str> = commits
                .iter()
                .filter_map(|(_, c)| c["digest"].as_str())
                .collect();
            let agree = digests.len() == 1;
            let c = &commits[0].1;
            println!(
                "epoch {e} · blocks {}–{} · result {} on {}/{} nodes{} · {} reports, {} scored, {} flagged",
                schedule.start(e),
                schedule.end(e) - 1,
                &c["digest"].as_str().unwrap_or("?")[..16],
                commits.len(),
                sts.len(),
                if agree { "" } else { " — DISAGREEMENT" },
                c["reports"],
                c["scored"],
                c["flagged"],
            );
            self.print_chain(chain);
            self.printed.insert(e, agree);
        }
    }

    /// Each validator's weights as the chain holds them, and the Yuma preview over them.
    fn print_chain(&self, chain: &Mutex<SimChain>) {
        let c = chain.lock().unwrap_or_else(|p| p.into_inner());
        let (Ok(m), block) = (
            c.metagraph(NETUID),
            c.current_block().map_or(0, |b| b.number),
        ) else {
            return;
        };
        let all = c.all_weights(NETUID);
        drop(c);
        let name = |hotkey: &[u8; 32]| {
            let s = ss58_encode(hotkey);
            self.names
                .iter()
                .position(|n| *n == s)
                .map_or_else(|| format!("uid-{}", &s[..6]), |i| format!("v{i}"))
        };
        let mut rows: Vec<(String, String)> = Vec::new();
        let mut validators = Vec::new();
        for n in m
            .neurons
            .iter()
            .filter(|n| n.validator_permit && n.stake > 0)
        {
            let ws = all.get(&n.uid).cloned().unwrap_or_default();
            rows.push((name(&n.hotkey), percent(&ws)));
            validators.push(ValidatorWeights {
                stake: n.stake,
                permit: true,
                weights: ws,
            });
        }
        let distinct: BTreeSet<&String> = rows.iter().map(|(_, w)| w).collect();
        if distinct.len() == 1 {
            println!(
                "  on-chain weights at block {block} (identical for all {} validators: {}): {}",
                rows.len(),
                rows.iter()
                    .map(|(n, _)| n.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                rows[0].1
            );
        } else {
            println!("  on-chain weights at block {block}:");
            for (n, w) in &rows {
                println!("    {n}: {w}");
            }
        }
        let n = u16::try_from(m.neurons.len()).unwrap_or(u16::MAX);
        let p = yuma::preview(&validators, n, 0.5);
        let shares: Vec<(u16, u16)> = p
            .incentive
            .iter()
            .enumerate()
            .filter(|(_, x)| **x > 0.0)
            .map(|(u, x)| (u as u16, (x * 10_000.0).round() as u16))
            .collect();
        println!(
            "  Yuma consensus preview (miner incentive): {}",
            percent(&shares)
        );
    }
}

/// One line: the weight extrinsics the chain received, by call, and those it refused, by
/// error (a validator should send none that the pallet must refuse).
pub(super) fn chain_calls(chain: &Mutex<SimChain>) -> String {
    let c = chain.lock().unwrap_or_else(|p| p.into_inner());
    let mut sent: BTreeMap<&str, usize> = BTreeMap::new();
    let mut refused: BTreeMap<String, usize> = BTreeMap::new();
    for k in c.calls() {
        *sent.entry(k.call).or_default() += 1;
        if let Some(e) = &k.refused {
            *refused.entry(format!("{} {e}", k.call)).or_default() += 1;
        }
    }
    let list = |m: Vec<(String, usize)>| {
        m.iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "chain: weight calls received: {}; refused: {}",
        if sent.is_empty() {
            "none".to_string()
        } else {
            list(sent.into_iter().map(|(k, n)| (k.to_string(), n)).collect())
        },
        if refused.is_empty() {
            "none".to_string()
        } else {
            list(refused.into_iter().collect())
        }
    )
}
