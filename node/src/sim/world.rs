//! The simulated world: nodes, links, the chain, miners, faults, and the invariant checks.
//! (`PLATFORM_SIM_DEBUG=1` prints every node's state on a liveness failure.)
#![allow(clippy::print_stderr)]

mod effects;
mod miners;

use std::collections::BTreeMap;

use parity_scale_codec::Encode as _;
use platform_chain::Chain as _;
use platform_chain::sim::{SimChain, SubnetGenesis};
use platform_consensus::MemStore;
use platform_consensus::sim::Rng;
use platform_keys::Keypair;

use crate::machine::{
    Arrival, Hash32, Hotkey, Input, Machine, MachineConfig, Restored, RuleBreak, Schedule,
};
use crate::registry::{ChallengeMeta, Change, Limits, Registry, Rule, SignedChange};

const NETUID: u16 = 7;
const TICK_MS: u64 = 20;
const CHALLENGE: u32 = 1;

/// One simulated run's settings, all drawn from `seed` by [`Scenario::random`].
#[derive(Clone, Debug)]
pub struct Scenario {
    /// The seed.
    pub seed: u64,
    /// Validators at genesis.
    pub validators: usize,
    /// Miners at genesis.
    pub miners: usize,
    /// Epochs the run lasts (faults happen in the first half; the rest is calm).
    pub epochs: u64,
    /// Virtual time per block.
    pub block_ms: u64,
    /// Blocks per epoch.
    pub epoch_blocks: u64,
    /// Link delay range.
    pub delay_ms: (u64, u64),
    /// Messages lost per thousand.
    pub loss_per_mille: u64,
    /// Crash-and-restart events.
    pub crashes: usize,
    /// Partitions (each heals).
    pub partitions: usize,
    /// Metagraph changes: miners registering and replaced, stake moving, a validator
    /// joining and one leaving.
    pub churn: bool,
    /// One validator, as leader, proposes a value with a wrong result digest.
    pub liar: bool,
    /// The liar's stake (the honest validators hold 300 to 999 each).
    pub liar_stake: u64,
    /// A broken rule given to every node (the proof that the checks catch it).
    pub rule_break: Option<RuleBreak>,
    /// Validators whose data is wiped during the faults (each restarts empty when they end
    /// and catches up from a peer's snapshot).
    pub wipes: usize,
}

impl Scenario {
    /// A scenario drawn from `seed`: 4 to 16 validators; most seeds have crashes,
    /// partitions, churn and loss.
    pub fn random(seed: u64) -> Scenario {
        let mut r = Rng(seed ^ 0x5151_5151);
        Scenario {
            seed,
            validators: 4 + r.below(13) as usize,
            miners: 3 + r.below(6) as usize,
            epochs: 8,
            block_ms: 100,
            epoch_blocks: 8 + r.below(5),
            delay_ms: (1, 5 + r.below(30)),
            loss_per_mille: r.below(40),
            crashes: r.below(4) as usize,
            partitions: r.below(2) as usize,
            churn: r.chance(700),
            liar: r.chance(300),
            liar_stake: 50,
            rule_break: None,
            wipes: r.below(2) as usize,
        }
    }
}

/// What a run produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The seed.
    pub seed: u64,
    /// Epochs committed (agreed by every node that applied them).
    pub committed: u64,
    /// Virtual time simulated.
    pub virtual_ms: u64,
    /// Messages delivered.
    pub delivered: u64,
    /// Of those, delivered to a node together with others at the same instant (handled as
    /// one batch, as a node's loop handles what it drains in one pass).
    pub delivered_batched: u64,
    /// A hash of every applied (node, epoch, digest), in order: equal runs, equal traces.
    pub trace: Hash32,
    /// Snapshots installed from peers by the nodes running at the end.
    pub snapshots_installed: u64,
    /// Submissions the nodes running at the end missed, learnt of from peers' batches,
    /// fetched and evaluated.
    pub missed_evaluated: u64,
}

/// A broken invariant, with the seed that reproduces it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "seed {seed}: {what} (replay: PLATFORM_SIM_SEED={seed} cargo test -p platform-node --test simulation)"
)]
pub struct Violation {
    /// The seed.
    pub seed: u64,
    /// What broke.
    pub what: String,
}

/// What a node made durable (what its redb files hold in the real node).
#[derive(Default)]
struct Disk {
    subs: BTreeMap<Hash32, Arrival>,
    scores: BTreeMap<Hash32, Option<u64>>,
    batches: Vec<(u64, Hotkey, Vec<u8>)>,
    modules: BTreeMap<Hash32, Vec<u8>>,
    registry: BTreeMap<u32, Vec<u8>>,
    nonce: u64,
    applied_height: u64,
    last_epoch: Option<u64>,
    snapshots: BTreeMap<u64, Vec<Vec<u8>>>,
    /// The latest decisions naming a snapshot, by height (what peers are offered).
    checkpoints: BTreeMap<u64, Vec<u8>>,
}

struct Node {
    key: Keypair,
    machine: Option<Machine<MemStore>>,
    store: Option<MemStore>,
    disk: Disk,
    incarnation: u32,
    group: u8,
    liar: bool,
    provided: BTreeMap<Hash32, Vec<u8>>,
    applied: Vec<u64>,
    /// Its applied epochs start from a snapshot's, not from genesis.
    synced: bool,
}

#[derive(Debug)]
enum Ev {
    Tick,
    Block,
    Deliver { to: usize, inc: u32, input: Input },
    Crash(usize),
    Wipe(usize),
    Restart(usize),
    Partition(bool),
    Churn,
    Submit { miner: usize, nonce: u64 },
}

/// The world of one run.
pub(super) struct World {
    sc: Scenario,
    rng: Rng,
    now: u64,
    seq: u64,
    queue: BTreeMap<(u64, u64), Ev>,
    chain: SimChain,
    nodes: Vec<Node>,
    miners: Vec<Hotkey>,
    /// Each miner's key (submissions are real signed envelopes, fetched by id by a
    /// validator that missed them).
    miner_keys: BTreeMap<Hotkey, Keypair>,
    owner: Keypair,
    agreed: BTreeMap<u64, (Hash32, Vec<(u16, u64)>)>,
    delivered: u64,
    delivered_batched: u64,
    trace: sha2::Sha256,
    faults_until: u64,
    end: u64,
    pending_violation: Option<String>,
    miners_stop: bool,
}

fn keypair(tag: u8, i: u64, seed: u64) -> Keypair {
    let mut s = [tag; 32];
    s[..8].copy_from_slice(&seed.to_le_bytes());
    s[8..16].copy_from_slice(&i.to_le_bytes());
    Keypair::from_seed(&s)
}

impl World {
    pub(super) fn new(sc: Scenario) -> World {
        let mut rng = Rng(sc.seed);
        let nodes: Vec<Node> = (0..sc.validators)
            .map(|i| Node::new(keypair(1, i as u64, sc.seed)))
            .collect();
        let miners: Vec<Hotkey> = (0..sc.miners)
            .map(|i| keypair(2, i as u64, sc.seed).public())
            .collect();
        let liar = if sc.liar {
            Some(rng.below(nodes.len() as u64) as usize)
        } else {
            None
        };
        let mut genesis: Vec<([u8; 32], u64)> = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                // A liar's stake stays well under a third of the honest stake.
                let stake = if Some(i) == liar {
                    sc.liar_stake
                } else {
                    300 + rng.below(700)
                };
                (n.key.public(), stake)
            })
            .collect();
        genesis.extend(miners.iter().map(|m| (*m, 0)));
        let chain = SimChain::new(
            [9; 32],
            vec![SubnetGenesis {
                netuid: NETUID,
                hyperparams: platform_chain::Hyperparams {
                    tempo: (sc.epoch_blocks - 1) as u16,
                    commit_reveal_enabled: false,
                    commit_reveal_period: 1,
                    weights_version_key: 0,
                    weights_rate_limit: 1,
                    min_allowed_weights: 1,
                    max_weight_limit: u16::MAX,
                },
                max_uids: 256,
                max_validators: 64,
                min_stake_to_set_weights: 1,
                neurons: genesis,
            }],
        );
        let epoch_ms = sc.block_ms * sc.epoch_blocks;
        let end = sc.epochs * epoch_ms;
        let mut w = World {
            pending_violation: None,
            miners_stop: false,
            faults_until: end / 2,
            end,
            rng,
            now: 0,
            seq: 0,
            queue: BTreeMap::new(),
            chain,
            nodes,
            miner_keys: (0..sc.miners)
                .map(|i| {
                    let k = keypair(2, i as u64, sc.seed);
                    (k.public(), k)
                })
                .collect(),
            miners,
            owner: keypair(3, 0, sc.seed),
            agreed: BTreeMap::new(),
            delivered: 0,
            delivered_batched: 0,
            trace: <sha2::Sha256 as sha2::Digest>::new(),
            sc,
        };
        if let Some(l) = liar {
            w.nodes[l].liar = true;
        }
        for i in 0..w.nodes.len() {
            w.start(i);
        }
        w.at(0, Ev::Tick);
        w.at(w.sc.block_ms, Ev::Block);
        for _ in 0..w.sc.crashes {
            let t = w.rng.below(w.faults_until);
            let i = w.rng.below(w.nodes.len() as u64) as usize;
            w.at(t, Ev::Crash(i));
            let back = t + 100 + w.rng.below(2 * epoch_ms);
            w.at(back.min(w.faults_until), Ev::Restart(i));
        }
        for _ in 0..w.sc.partitions {
            let t = w.rng.below(w.faults_until);
            w.at(t, Ev::Partition(true));
            let heal = (t + w.rng.below(epoch_ms * 2)).min(w.faults_until);
            w.at(heal, Ev::Partition(false));
        }
        for _ in 0..w.sc.wipes {
            let t = w.rng.below(w.faults_until / 2);
            let i = w.rng.below(w.nodes.len() as u64) as usize;
            w.at(t, Ev::Wipe(i));
            w.at(w.faults_until, Ev::Restart(i));
        }
        if w.sc.churn {
            for _ in 0..4 {
                let t = w.rng.below(w.faults_until);
                w.at(t, Ev::Churn);
            }
        }
        w
    }

    fn cfg(&self) -> MachineConfig {
        MachineConfig {
            netuid: NETUID,
            schedule: Schedule::of_subnet(NETUID, self.sc.epoch_blocks),
            genesis_epoch: 0,
            settle_ms: 150,
            view_timeout_ms: 200,
            view_timeout_max_ms: 1600,
            checkpoint_interval: 2,
            rule_break: self.sc.rule_break,
        }
    }

    fn at(&mut self, t: u64, ev: Ev) {
        self.seq += 1;
        self.queue.insert((t, self.seq), ev);
    }

    fn delay(&mut self) -> u64 {
        let (lo, hi) = self.sc.delay_ms;
        lo + self.rng.below(hi - lo + 1)
    }

    /// Start (or restart) node `i` from its disk.
    fn start(&mut self, i: usize) {
        let cfg = self.cfg();
        let owner = self.owner.public();
        let n = &mut self.nodes[i];
        let d = &n.disk;
        let registry = Registry::restore(
            owner,
            &d.registry
                .iter()
                .map(|(k, v)| (*k, v.clone()))
                .collect::<Vec<_>>(),
            d.nonce,
        )
        .ok();
        let open = |e: u64| d.last_epoch.is_none_or(|l| e > l);
        let restored = Restored {
            registry,
            applied_height: d.applied_height,
            last_epoch: d.last_epoch,
            batches: d.batches.iter().filter(|b| open(b.0)).cloned().collect(),
            submissions: d
                .subs
                .values()
                .filter(|a| open(a.epoch))
                .map(|a| (a.clone(), d.scores.get(&a.id).copied()))
                .collect(),
            modules: d.modules.keys().copied().collect(),
            snapshots: d
                .snapshots
                .iter()
                .filter_map(|(h, blobs)| {
                    Some(crate::snapshot::SnapshotRef {
                        height: *h,
                        manifest: platform_types::sha256(blobs.first()?),
                    })
                })
                .collect(),
        };
        let store = n.store.take().unwrap_or_default();
        let (m, effects) = Machine::new(cfg, n.key.clone(), owner, store, restored);
        n.machine = Some(m);
        n.incarnation += 1;
        // The shell provides every stored module again at start.
        let modules: Vec<Vec<u8>> = n
            .disk
            .modules
            .values()
            .chain(n.disk.snapshots.values().flatten())
            .cloned()
            .collect();
        for b in modules {
            n.provided.insert(platform_types::sha256(&b), b);
        }
        self.carry_out(i, effects);
        if let Some(head) = self.chain.current_block().ok().map(|b| b.number) {
            let inc = self.nodes[i].incarnation;
            let t = self.now + 1;
            self.at(
                t,
                Ev::Deliver {
                    to: i,
                    inc,
                    input: Input::Block { number: head },
                },
            );
        }
    }

    pub(super) fn run(mut self) -> Result<Outcome, Violation> {
        // The owner publishes and activates the challenge through node 0's API.
        let meta = ChallengeMeta {
            id: CHALLENGE,
            name: "sim".into(),
            version: 1,
            module_hash: platform_types::sha256(b"sim-module"),
            limits: Limits {
                fuel: 1,
                memory_bytes: 1,
                input_bytes: 64,
                output_bytes: 8,
            },
            emission_share: 1,
            rule: Rule::Proportional,
        };
        for (k, (change, module)) in [
            (Change::Publish(meta), Some(b"sim-module".to_vec())),
            (Change::Activate(CHALLENGE), None),
        ]
        .into_iter()
        .enumerate()
        {
            let sc = SignedChange::sign(&self.owner, change, k as u64 + 1).encode();
            self.at(
                10 + k as u64,
                Ev::Deliver {
                    to: 0,
                    inc: 1,
                    input: Input::Post {
                        token: 0,
                        change: sc,
                        module,
                    },
                },
            );
        }
        self.run_until(self.end)?;
        // Liveness: with the faults healed for half the run, the network kept committing.
        let current = self.current_epoch();
        let committed = self.agreed.keys().next_back().copied();
        if committed.is_none_or(|c| c + 2 < current) {
            return Err(self.stuck(format!(
                "the network committed up to epoch {committed:?} of {current}"
            )));
        }
        // Every node, restarted ones and joiners included, catches up to that within two
        // more epochs (no new submissions: only the chain goes on).
        self.miners_stop = true;
        let grace = 2 * self.sc.block_ms * self.sc.epoch_blocks;
        self.run_until(self.end + grace)?;
        self.check_caught_up(committed.unwrap_or(0))?;
        Ok(Outcome {
            seed: self.sc.seed,
            committed: self.agreed.len() as u64,
            virtual_ms: self.now,
            delivered: self.delivered,
            delivered_batched: self.delivered_batched,
            snapshots_installed: self.total(|s| s.snapshots_installed),
            missed_evaluated: self.total(|s| s.missed_evaluated),
            trace: sha2::Digest::finalize(self.trace).into(),
        })
    }

    /// A counter summed over the nodes running now.
    fn total(&self, f: impl Fn(&crate::machine::MachineStats) -> u64) -> u64 {
        self.nodes
            .iter()
            .filter_map(|n| n.machine.as_ref())
            .map(|m| f(m.stats()))
            .sum()
    }

    fn run_until(&mut self, end: u64) -> Result<(), Violation> {
        while let Some((&(t, _), _)) = self.queue.first_key_value() {
            if t > end {
                break;
            }
            let Some((_, ev)) = self.queue.pop_first() else {
                break;
            };
            self.now = t;
            self.event(ev)?;
        }
        Ok(())
    }

    fn current_epoch(&self) -> u64 {
        let head = self.chain.current_block().map(|b| b.number).unwrap_or(0);
        Schedule::of_subnet(NETUID, self.sc.epoch_blocks).epoch_of(head)
    }

    /// A delivery to node `to`, with every other queued for it at this instant: they
    /// arrive together, as a node's loop drains them in one pass, and are handled as one
    /// batch.
    fn deliver(&mut self, to: usize, inc: u32, input: Input) -> Result<(), Violation> {
        let mut batch = vec![input];
        while let Some((
            &(t, _),
            Ev::Deliver {
                to: to2, inc: inc2, ..
            },
        )) = self.queue.first_key_value()
        {
            if t != self.now || *to2 != to || *inc2 != inc {
                break;
            }
            if let Some((_, Ev::Deliver { input, .. })) = self.queue.pop_first() {
                batch.push(input);
            }
        }
        if self.nodes[to].incarnation != inc {
            return Ok(());
        }
        self.delivered += batch.len() as u64;
        if batch.len() > 1 {
            self.delivered_batched += batch.len() as u64;
        }
        self.inputs(to, batch)
    }

    fn event(&mut self, ev: Ev) -> Result<(), Violation> {
        match ev {
            Ev::Tick => {
                for i in 0..self.nodes.len() {
                    self.input(i, Input::Tick)?;
                }
                self.at(self.now + TICK_MS, Ev::Tick);
            }
            Ev::Block => {
                self.chain.advance(1);
                let number = self.chain.current_block().map(|b| b.number).unwrap_or(0);
                for i in 0..self.nodes.len() {
                    let d = self.rng.below(20);
                    let inc = self.nodes[i].incarnation;
                    self.at(
                        self.now + d,
                        Ev::Deliver {
                            to: i,
                            inc,
                            input: Input::Block { number },
                        },
                    );
                }
                // Miners submit during the epoch.
                for m in 0..self.miners.len() {
                    if self.miners_stop {
                        break;
                    }
                    if self.rng.chance(300) {
                        let t = self.now + self.rng.below(self.sc.block_ms);
                        let nonce = self.rng.next();
                        self.at(t, Ev::Submit { miner: m, nonce });
                    }
                }
                self.at(self.now + self.sc.block_ms, Ev::Block);
            }
            Ev::Deliver { to, inc, input } => self.deliver(to, inc, input)?,
            Ev::Crash(i) => {
                if let Some(m) = self.nodes[i].machine.take() {
                    self.nodes[i].store = m.into_consensus_store();
                    self.nodes[i].provided.clear();
                    self.nodes[i].incarnation += 1;
                }
            }
            Ev::Wipe(i) => {
                self.nodes[i].machine = None;
                self.nodes[i].store = None;
                self.nodes[i].disk = Disk::default();
                self.nodes[i].provided.clear();
                self.nodes[i].applied.clear();
                self.nodes[i].synced = false;
                self.nodes[i].incarnation += 1;
            }
            Ev::Restart(i) => {
                if self.nodes[i].machine.is_none() {
                    self.start(i);
                }
            }
            Ev::Partition(on) => {
                for i in 0..self.nodes.len() {
                    self.nodes[i].group = if on { self.rng.below(2) as u8 } else { 0 };
                }
            }
            Ev::Churn => self.churn(),
            Ev::Submit { miner, nonce } => self.submit(miner, nonce)?,
        }
        Ok(())
    }

    /// Whether a message from `a` reaches `b` (both up, same side of a partition, not lost).
    fn link(&mut self, a: usize, b: usize) -> bool {
        self.nodes[a].machine.is_some()
            && self.nodes[b].machine.is_some()
            && self.nodes[a].group == self.nodes[b].group
            && !self.rng.chance(self.sc.loss_per_mille)
    }
}

impl Node {
    fn new(key: Keypair) -> Node {
        Node {
            key,
            machine: None,
            store: None,
            disk: Disk::default(),
            incarnation: 0,
            group: 0,
            liar: false,
            provided: BTreeMap::new(),
            applied: Vec::new(),
            synced: false,
        }
    }
}
