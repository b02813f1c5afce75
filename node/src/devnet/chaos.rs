//! `platform devnet --chaos SEED`: a seeded fault campaign on the running devnet. Every few
//! epochs one fault, its victim and its length drawn from the seed: a validator killed with
//! SIGKILL (restarted 1–2 epochs later), frozen with SIGSTOP (let go 1–2 epochs later),
//! partitioned from every peer while it keeps running (`[node] fault_signals`: SIGUSR1, then
//! SIGUSR2 to rejoin), killed and its stores wiped (restarted empty: it must catch up from its
//! peers), or every node stopped and started again. At most one fault at a time, none in
//! the last epochs, so the campaign ends healed.
//!
//! Checked while it runs and at the end (a violation fails the devnet, naming the seed):
//! every epoch committed identically wherever it was committed (the reporter), no node's
//! committed epochs with a gap, every healed node caught up within 2 epochs of healing, and
//! the validators' weights on the shared chain equal at the end.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Child;

use serde_json::{Value, json};

use super::{NodeSpec, signal, spawn, status};

/// One kind of fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    Kill,
    Pause,
    Partition,
    Wipe,
    RestartAll,
}

impl Fault {
    fn label(self) -> &'static str {
        match self {
            Fault::Kill => "kill_9",
            Fault::Pause => "pause",
            Fault::Partition => "partition",
            Fault::Wipe => "wipe_and_restart",
            Fault::RestartAll => "restart_all",
        }
    }
}

/// A fault in force and when it is undone.
#[derive(Debug)]
struct Open {
    fault: Fault,
    node: usize,
    until_epoch: u64,
}

/// The campaign's state.
#[derive(Debug)]
pub(super) struct Chaos {
    seed: u64,
    rng: u64,
    every: u64,
    validators: usize,
    next_at: u64,
    open: Option<Open>,
    /// (node, chain epoch at which it was healed) still to be seen caught up.
    healed: Vec<(usize, u64)>,
    injected: BTreeMap<&'static str, u64>,
    caught_up: u64,
    violations: Vec<String>,
    events: Vec<Value>,
}

impl Chaos {
    /// A campaign drawn from `seed`, a fault every `every` epochs on the first `validators`
    /// nodes, starting at epoch `first`.
    pub(super) fn new(seed: u64, every: u64, validators: usize, first: u64) -> Chaos {
        Chaos {
            seed,
            rng: seed ^ 0x9e37_79b9_7f4a_7c15,
            every: every.max(1),
            validators,
            next_at: first,
            open: None,
            healed: Vec::new(),
            injected: BTreeMap::new(),
            caught_up: 0,
            violations: Vec::new(),
            events: Vec::new(),
        }
    }

    /// splitmix64.
    fn draw(&mut self, n: u64) -> u64 {
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % n.max(1)
    }

    /// Nodes not to ask for status now (frozen or down; a partitioned node answers).
    pub(super) fn unreachable(&self) -> Option<usize> {
        self.open
            .as_ref()
            .filter(|o| !matches!(o.fault, Fault::RestartAll | Fault::Partition))
            .map(|o| o.node)
    }

    /// No fault in force.
    pub(super) fn settled(&self) -> bool {
        self.open.is_none()
    }

    /// One step at chain epoch `epoch`: undo a fault that is due, check healed nodes, and
    /// inject the next fault when it is time (`quiet`: the campaign's end is near, inject
    /// nothing new).
    pub(super) fn step(
        &mut self,
        epoch: u64,
        quiet: bool,
        sts: &[(usize, Value)],
        ctx: &mut Ctx<'_>,
    ) -> anyhow::Result<()> {
        self.check_healed(epoch, sts);
        if let Some(o) = &self.open {
            if epoch < o.until_epoch {
                return Ok(());
            }
            let (fault, node) = (o.fault, o.node);
            match fault {
                Fault::Kill | Fault::Wipe => ctx.start(node)?,
                Fault::Pause => ctx.signal(node, libc::SIGCONT),
                Fault::Partition => ctx.signal(node, libc::SIGUSR2),
                Fault::RestartAll => {}
            }
            self.open = None;
            self.healed.push((node, epoch));
            self.event(epoch, "healed", fault, node);
            return Ok(());
        }
        if quiet || epoch < self.next_at {
            return Ok(());
        }
        let kinds = [
            Fault::Kill,
            Fault::Pause,
            Fault::Partition,
            Fault::Wipe,
            Fault::RestartAll,
        ];
        let fault = kinds[self.draw(kinds.len() as u64) as usize];
        let node = self.draw(self.validators as u64) as usize;
        let until_epoch = epoch + 1 + self.draw(2);
        match fault {
            Fault::Kill => ctx.kill(node),
            Fault::Pause => ctx.signal(node, libc::SIGSTOP),
            Fault::Partition => ctx.signal(node, libc::SIGUSR1),
            Fault::Wipe => {
                ctx.kill(node);
                ctx.wipe(node)?;
            }
            Fault::RestartAll => {
                super::stop_all(ctx.children);
                for i in 0..ctx.children.len() {
                    ctx.start(i)?;
                }
            }
        }
        *self.injected.entry(fault.label()).or_default() += 1;
        self.event(epoch, "injected", fault, node);
        self.open = Some(Open {
            fault,
            node,
            until_epoch: if fault == Fault::RestartAll {
                epoch
            } else {
                until_epoch
            },
        });
        self.next_at = until_epoch + self.every;
        Ok(())
    }

    fn event(&mut self, epoch: u64, what: &str, fault: Fault, node: usize) {
        let who = if fault == Fault::RestartAll {
            "all".to_string()
        } else {
            format!("v{node}")
        };
        println!("chaos: epoch {epoch}: {what} {} on {who}", fault.label());
        self.events
            .push(json!({"epoch": epoch, "what": what, "fault": fault.label(), "node": who}));
    }

    /// A node healed at `h` must have committed what the others committed by `h + 2`.
    fn check_healed(&mut self, epoch: u64, sts: &[(usize, Value)]) {
        let last = |st: &Value| st["last_committed_epoch"].as_u64();
        let mut keep = Vec::new();
        for (node, h) in std::mem::take(&mut self.healed) {
            let Some(mine) = sts
                .iter()
                .find(|(i, _)| *i == node)
                .and_then(|(_, s)| last(s))
            else {
                if epoch >= h + 3 {
                    self.violations.push(format!(
                        "v{node} healed at epoch {h} committed nothing by {epoch}"
                    ));
                } else {
                    keep.push((node, h));
                }
                continue;
            };
            let best = sts.iter().filter_map(|(_, s)| last(s)).max().unwrap_or(0);
            if mine + 1 >= best {
                self.caught_up += 1;
            } else if epoch >= h + 3 {
                self.violations.push(format!(
                    "v{node} healed at epoch {h} was at epoch {mine}, the others at {best}, by {epoch}"
                ));
            } else {
                keep.push((node, h));
            }
        }
        self.healed = keep;
    }

    /// The end: gaps in any node's committed epochs, and the validators' weights on the
    /// chain (`rows`: each validator's last weights) compared; the summary as JSON.
    pub(super) fn finish(
        &mut self,
        sts: &[(usize, Value)],
        rows: &[(u16, Vec<(u16, u16)>)],
        agreed: u64,
        differing: bool,
    ) -> Value {
        for (i, st) in sts {
            let epochs: Vec<u64> = st["committed"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c["epoch"].as_u64())
                .collect();
            if let Some(w) = epochs.windows(2).find(|w| w[1] != w[0] + 1) {
                self.violations
                    .push(format!("v{i} committed epoch {} then {}", w[0], w[1]));
            }
        }
        for (i, st) in sts {
            let n = st["machine"]["misbehaviour"].as_u64().unwrap_or(0);
            if n > 0 {
                self.violations.push(format!(
                    "v{i} saw {n} equivocation(s): a validator voted twice"
                ));
            }
        }
        for (node, h) in &self.healed {
            self.violations
                .push(format!("v{node} healed at epoch {h}: not seen caught up"));
        }
        let distinct: std::collections::BTreeSet<&Vec<(u16, u16)>> =
            rows.iter().map(|(_, w)| w).collect();
        let weights_agree = distinct.len() <= 1;
        if !weights_agree {
            self.violations.push(format!(
                "validators hold different weights on the chain: {rows:?}"
            ));
        }
        if differing {
            self.violations
                .push("some epoch was committed differently".to_string());
        }
        // Nodes that caught up from a peer's snapshot (a wiped node more than a few epochs
        // behind), as the nodes running at the end count them.
        let snapshot_syncs: u64 = sts
            .iter()
            .filter_map(|(_, st)| st["machine"]["snapshots_installed"].as_u64())
            .sum();
        let summary = json!({
            "seed": self.seed,
            "faults": self.injected,
            "healed_and_caught_up": self.caught_up,
            "snapshot_syncs": snapshot_syncs,
            "epochs_agreed": agreed,
            "epochs_differing": differing,
            "chain_weights_agree": weights_agree,
            "violations": self.violations,
            "events": self.events,
        });
        println!(
            "chaos: seed {} · faults {} · {} healed nodes caught up within 2 epochs ({} from a \
             snapshot) · {} epochs agreed · {}",
            self.seed,
            self.injected
                .iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect::<Vec<_>>()
                .join(", "),
            self.caught_up,
            snapshot_syncs,
            agreed,
            if self.violations.is_empty() {
                "every invariant held".to_string()
            } else {
                format!("VIOLATED: {}", self.violations.join("; "))
            }
        );
        summary
    }

    /// Whether an invariant failed.
    pub(super) fn violated(&self) -> bool {
        !self.violations.is_empty()
    }
}

/// What a fault acts on: the devnet's node processes.
pub(super) struct Ctx<'a> {
    pub(super) exe: &'a Path,
    pub(super) specs: &'a [NodeSpec],
    pub(super) children: &'a mut [Option<Child>],
}

impl Ctx<'_> {
    fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.children[i].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn signal(&self, i: usize, sig: i32) {
        if let Some(c) = &self.children[i] {
            signal(c, sig);
        }
    }

    fn start(&mut self, i: usize) -> anyhow::Result<()> {
        if self.children[i].is_none() {
            self.children[i] = Some(spawn(self.exe, &self.specs[i])?);
        }
        Ok(())
    }

    /// Remove a stopped node's stores (its node key stays: it is the same peer).
    fn wipe(&self, i: usize) -> anyhow::Result<()> {
        let dir = self.specs[i].data.as_path();
        for e in std::fs::read_dir(dir)? {
            let p = e?.path();
            if p.extension().is_some_and(|x| x == "redb") {
                std::fs::remove_file(&p)?;
            }
        }
        Ok(())
    }
}

/// Every validator's node answers status (a devnet helper for the end of the campaign).
pub(super) fn statuses(specs: &[NodeSpec], children: &[Option<Child>]) -> Vec<(usize, Value)> {
    (0..specs.len())
        .filter(|i| children[*i].is_some())
        .filter_map(|i| status(&specs[i].api).map(|st| (i, st)))
        .collect()
}
