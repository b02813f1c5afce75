//! Seeded deterministic simulation: N replicas (real redb files, real signatures) on a
//! simulated network with latency, jitter, loss, duplication, reordering, partitions that
//! heal, crashes with restart from each node's own store, and misbehaving validators named
//! by what they do. Every failure prints its seed; the same seed replays the same trace.
//! `PLATFORM_SIM_SEED=S` replays one seed of the mixed-fault sweep with a printed trace summary.

#![allow(clippy::print_stderr)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use platform_consensus::{
    Action, Config, Decision, Domain, Event, Height, Message, Proposal, RedbStore, Replica, Signer,
    Storage, Validator, ValidatorSet, Vote,
};

const DOMAIN: Domain = Domain {
    netuid: 42,
    epoch: 7,
};

/// SplitMix64: the simulation's only source of randomness.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
    fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Behaviour {
    Honest,
    /// Sends nothing at all.
    Silent,
    /// As leader, sends one value to half the validators and another to the rest.
    EquivocatingLeader,
    /// Sends a second, different vote for every vote it casts.
    DoubleVoter,
    /// Every signature it sends is corrupted.
    Forger,
    /// As leader, proposes values the honest application rejects.
    BadProposer,
}

#[derive(Clone)]
struct Scenario {
    seed: u64,
    stakes: Vec<u64>,
    behaviours: Vec<Behaviour>,
    latency_ms: (u64, u64),
    loss_per_mille: u64,
    dup_per_mille: u64,
    /// (from_ms, until_ms, side A); messages across the cut are dropped.
    partitions: Vec<(u64, u64, Vec<usize>)>,
    /// (node, crash_at_ms, restart_at_ms)
    crashes: Vec<(usize, u64, u64)>,
    /// (node, start_at_ms) for nodes that join late.
    late: Vec<(usize, u64)>,
    heights: Height,
    time_limit_ms: u64,
}

impl Scenario {
    fn honest(seed: u64, n: usize) -> Scenario {
        Scenario {
            seed,
            stakes: vec![100; n],
            behaviours: vec![Behaviour::Honest; n],
            latency_ms: (5, 40),
            loss_per_mille: 0,
            dup_per_mille: 0,
            partitions: vec![],
            crashes: vec![],
            late: vec![],
            heights: 5,
            time_limit_ms: 120_000,
        }
    }
}

struct Node {
    signer_seed: [u8; 32],
    db: PathBuf,
    replica: Option<Replica<RedbStore>>,
    timer: Option<(u64, Height, u32)>,
    next_value: u64,
}

#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    /// decisions[node][height] = value
    decisions: Vec<BTreeMap<Height, Vec<u8>>>,
    delivered: u64,
    misbehaviour_reports: u64,
    bad_signatures_seen: u64,
    trace_hash: u64,
}

struct Sim {
    sc: Scenario,
    rng: Rng,
    set: ValidatorSet,
    nodes: Vec<Node>,
    net: BTreeMap<(u64, u64), (usize, usize, Message)>,
    seq: u64,
    now: u64,
    out: Outcome,
    _dir: tempfile::TempDir,
}

fn signer_seed(i: usize) -> [u8; 32] {
    let mut s = [0u8; 32];
    s[0] = i as u8 + 1;
    s[31] = 0x5a;
    s
}

impl Sim {
    fn new(sc: Scenario) -> Sim {
        let dir = tempfile::tempdir().unwrap();
        let n = sc.stakes.len();
        let validators = (0..n)
            .map(|i| Validator {
                hotkey: Signer::from_seed(&signer_seed(i)).public(),
                stake: sc.stakes[i],
            })
            .collect();
        let set = ValidatorSet::new(validators, None).unwrap();
        let nodes = (0..n)
            .map(|i| Node {
                signer_seed: signer_seed(i),
                db: dir.path().join(format!("node{i}.redb")),
                replica: None,
                timer: None,
                next_value: 0,
            })
            .collect();
        Sim {
            rng: Rng(sc.seed),
            sc,
            set,
            nodes,
            net: BTreeMap::new(),
            seq: 0,
            now: 0,
            out: Outcome {
                decisions: vec![BTreeMap::new(); n],
                delivered: 0,
                misbehaviour_reports: 0,
                bad_signatures_seen: 0,
                trace_hash: 0xcbf2_9ce4_8422_2325,
            },
            _dir: dir,
        }
    }

    fn trace(&mut self, x: u64) {
        self.out.trace_hash = (self.out.trace_hash ^ x).wrapping_mul(0x0100_0000_01b3);
    }

    fn config(&self) -> Config {
        let mut c = Config::new(DOMAIN, [9; 32]);
        c.view_timeout_ms = 400;
        c.view_timeout_max_ms = 10_000;
        c
    }

    fn boot(&mut self, i: usize) {
        let store = RedbStore::open(&self.nodes[i].db).unwrap();
        let signer = Signer::from_seed(&self.nodes[i].signer_seed);
        let (replica, actions) =
            Replica::start(self.config(), self.set.clone(), signer, store, self.now).unwrap();
        // A restarted node keeps the decisions it made durable.
        for d in replica.store().decisions(1, usize::MAX).unwrap() {
            self.out.decisions[i].entry(d.height).or_insert(d.value);
        }
        self.nodes[i].replica = Some(replica);
        self.apply(i, None, actions);
    }

    fn partitioned(&self, a: usize, b: usize) -> bool {
        self.sc.partitions.iter().any(|(from, until, side)| {
            self.now >= *from && self.now < *until && side.contains(&a) != side.contains(&b)
        })
    }

    fn send(&mut self, from: usize, to: usize, m: Message) {
        if from == to || self.partitioned(from, to) || self.rng.chance(self.sc.loss_per_mille) {
            return;
        }
        let copies = if self.rng.chance(self.sc.dup_per_mille) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let (lo, hi) = self.sc.latency_ms;
            let at = self.now + lo + self.rng.below(hi - lo + 1);
            self.seq += 1;
            self.net.insert((at, self.seq), (to, from, m.clone()));
        }
    }

    fn signer(&self, i: usize) -> Signer {
        Signer::from_seed(&self.nodes[i].signer_seed)
    }

    /// What node `from` actually puts on the wire for a broadcast, per its behaviour.
    fn broadcast(&mut self, from: usize, m: Message) {
        let n = self.nodes.len();
        match self.sc.behaviours[from] {
            Behaviour::Honest | Behaviour::BadProposer => {
                (0..n).for_each(|j| self.send(from, j, m.clone()))
            }
            Behaviour::Silent => {}
            Behaviour::EquivocatingLeader => match &m {
                Message::Proposal(p) => {
                    let evil = Proposal::sign(
                        &self.signer(from),
                        DOMAIN,
                        p.height,
                        p.view,
                        format!("evil-{}-{}", p.height, p.view).into_bytes(),
                        p.justification.clone(),
                    );
                    for j in 0..n {
                        let m = if j % 2 == 0 {
                            m.clone()
                        } else {
                            Message::Proposal(evil.clone())
                        };
                        self.send(from, j, m);
                    }
                }
                _ => (0..n).for_each(|j| self.send(from, j, m.clone())),
            },
            Behaviour::DoubleVoter => {
                (0..n).for_each(|j| self.send(from, j, m.clone()));
                if let Message::Vote(v) = &m {
                    let mut other = v.digest;
                    other[0] ^= 0xff;
                    let second =
                        Vote::sign(&self.signer(from), DOMAIN, v.kind, v.height, v.view, other);
                    (0..n).for_each(|j| self.send(from, j, Message::Vote(second.clone())));
                }
            }
            Behaviour::Forger => {
                let mut m = m;
                match &mut m {
                    Message::Proposal(p) => p.signature.0[5] ^= 1,
                    Message::Vote(v) => v.signature.0[5] ^= 1,
                    Message::ViewChange(vc) => vc.signature.0[5] ^= 1,
                    _ => {}
                }
                (0..n).for_each(|j| self.send(from, j, m.clone()));
            }
        }
    }

    fn apply(&mut self, i: usize, reply_to: Option<usize>, actions: Vec<Action>) {
        let mut work: Vec<Event> = vec![];
        for a in actions {
            match a {
                Action::Broadcast(m) => {
                    self.trace(1);
                    self.broadcast(i, m);
                }
                Action::Reply(m) => {
                    if let Some(to) = reply_to
                        && self.sc.behaviours[i] != Behaviour::Silent
                    {
                        self.send(i, to, m);
                    }
                }
                Action::SetTimer {
                    height,
                    view,
                    at_ms,
                } => self.nodes[i].timer = Some((at_ms, height, view)),
                Action::RequestProposal { height } => {
                    self.nodes[i].next_value += 1;
                    let tag = if self.sc.behaviours[i] == Behaviour::BadProposer {
                        "bad"
                    } else {
                        "good"
                    };
                    let value =
                        format!("{tag}-h{height}-n{i}-{}", self.nodes[i].next_value).into_bytes();
                    work.push(Event::Propose { height, value });
                }
                Action::Validate {
                    height,
                    view,
                    value,
                } => {
                    let accept = !value.starts_with(b"bad");
                    let digest = platform_consensus::crypto::value_digest(&value);
                    work.push(Event::Validated {
                        height,
                        view,
                        digest,
                        accept,
                    });
                }
                Action::Decided(Decision { height, value, .. }) => {
                    self.trace(height.wrapping_mul(31) ^ value.len() as u64);
                    let prev = self.out.decisions[i].insert(height, value.clone());
                    assert!(
                        prev.is_none() || prev.as_ref() == Some(&value),
                        "node {i} decided height {height} twice differently"
                    );
                }
                Action::Checkpoint { .. } => {}
                Action::Misbehaviour { .. } => self.out.misbehaviour_reports += 1,
            }
        }
        for e in work {
            let Some(r) = self.nodes[i].replica.as_mut() else {
                return;
            };
            let actions = r.handle(self.now, e);
            self.apply(i, None, actions);
        }
    }

    fn honest_nodes(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|i| self.sc.behaviours[*i] == Behaviour::Honest)
            .collect()
    }

    fn done(&self) -> bool {
        self.honest_nodes()
            .iter()
            .all(|i| self.out.decisions[*i].len() as u64 >= self.sc.heights)
    }

    fn run(mut self) -> Outcome {
        let late: BTreeMap<usize, u64> = self.sc.late.iter().copied().collect();
        for i in 0..self.nodes.len() {
            if !late.contains_key(&i) {
                self.boot(i);
            }
        }
        let mut steps = 0u64;
        while self.now < self.sc.time_limit_ms && !self.done() {
            steps += 1;
            assert!(steps < 5_000_000, "runaway simulation");
            // Next event: a delivery, a timer, a crash, a restart or a late start.
            let mut next = self.net.keys().next().map(|k| k.0).unwrap_or(u64::MAX);
            for n in &self.nodes {
                if let (Some((at, ..)), Some(_)) = (n.timer, &n.replica) {
                    next = next.min(at);
                }
            }
            for (_, c, r) in &self.sc.crashes {
                for t in [*c, *r] {
                    if t > self.now {
                        next = next.min(t);
                    }
                }
            }
            for t in late.values() {
                if *t > self.now {
                    next = next.min(*t);
                }
            }
            if next == u64::MAX {
                break;
            }
            self.now = next.max(self.now);
            for (node, crash, restart) in self.sc.crashes.clone() {
                if crash == self.now && self.nodes[node].replica.is_some() {
                    self.nodes[node].replica = None; // drops the redb handle, like kill -9
                    self.nodes[node].timer = None;
                }
                if restart == self.now && self.nodes[node].replica.is_none() {
                    self.boot(node);
                }
            }
            for (&node, &t) in &late {
                if t == self.now && self.nodes[node].replica.is_none() {
                    self.boot(node);
                }
            }
            for i in 0..self.nodes.len() {
                if let Some((at, height, view)) = self.nodes[i].timer
                    && at <= self.now
                    && self.nodes[i].replica.is_some()
                {
                    self.nodes[i].timer = None;
                    let actions = self.nodes[i]
                        .replica
                        .as_mut()
                        .unwrap()
                        .handle(self.now, Event::Timeout { height, view });
                    self.apply(i, None, actions);
                }
            }
            while let Some(entry) = self.net.first_entry() {
                if entry.key().0 > self.now {
                    break;
                }
                let (to, from, m) = entry.remove();
                self.out.delivered += 1;
                self.trace(to as u64 * 7 + from as u64);
                let Some(r) = self.nodes[to].replica.as_mut() else {
                    continue;
                };
                let actions = r.handle(self.now, Event::Message(m));
                self.apply(to, Some(from), actions);
            }
        }
        if std::env::var("PLATFORM_SIM_SEED").is_ok() {
            for (i, n) in self.nodes.iter().enumerate() {
                if let Some(r) = &n.replica {
                    eprintln!(
                        "node {i}: height {} view {} timer {:?} stats {:?}",
                        r.height(),
                        r.view(),
                        n.timer,
                        r.stats()
                    );
                }
            }
            eprintln!("now {} in flight {}", self.now, self.net.len());
        }
        self.out.bad_signatures_seen = self
            .nodes
            .iter()
            .filter_map(|n| n.replica.as_ref())
            .map(|r| r.stats().bad_signature)
            .sum();
        self.out
    }
}

/// No two nodes (honest or not, live or restarted) decided different values at one height.
fn assert_safe(seed: u64, out: &Outcome) {
    let mut agreed: BTreeMap<Height, &Vec<u8>> = BTreeMap::new();
    for (i, ds) in out.decisions.iter().enumerate() {
        for (h, v) in ds {
            if let Some(prev) = agreed.insert(*h, v) {
                assert_eq!(
                    prev, v,
                    "seed {seed}: node {i} decided a different value at height {h}"
                );
            }
        }
    }
}

fn assert_live(seed: u64, sc: &Scenario, out: &Outcome) {
    for i in 0..sc.stakes.len() {
        if sc.behaviours[i] == Behaviour::Honest {
            assert!(
                out.decisions[i].len() as u64 >= sc.heights,
                "seed {seed}: honest node {i} decided only {} of {} heights",
                out.decisions[i].len(),
                sc.heights
            );
        }
    }
}

fn run_checked(sc: Scenario) -> Outcome {
    let seed = sc.seed;
    let out = Sim::new(sc.clone()).run();
    assert_safe(seed, &out);
    out
}

const SEEDS: [u64; 3] = [1, 0xfeed, 0x5eed_0003];

#[test]
fn four_honest_validators_agree_on_every_height() {
    for seed in SEEDS {
        let sc = Scenario {
            heights: 8,
            ..Scenario::honest(seed, 4)
        };
        let out = run_checked(sc.clone());
        assert_live(seed, &sc, &out);
    }
}

#[test]
fn sixteen_validators_with_loss_duplication_reordering_and_unequal_stake() {
    let seed = 0xabc;
    let mut sc = Scenario::honest(seed, 16);
    sc.stakes = (0..16).map(|i| 10 + i * 37 % 101).collect();
    sc.latency_ms = (1, 120);
    sc.loss_per_mille = 50;
    sc.dup_per_mille = 50;
    sc.heights = 4;
    let out = run_checked(sc.clone());
    assert_live(seed, &sc, &out);
}

#[test]
fn a_partition_stalls_the_minority_and_heals() {
    for seed in SEEDS {
        let mut sc = Scenario::honest(seed, 7);
        sc.partitions = vec![(300, 6_000, vec![0, 1, 2])];
        sc.heights = 6;
        let out = run_checked(sc.clone());
        assert_live(seed, &sc, &out);
    }
}

#[test]
fn crash_and_restart_from_redb_never_equivocates_and_catches_up() {
    for seed in SEEDS {
        let mut sc = Scenario::honest(seed, 4);
        sc.crashes = vec![(1, 150, 2_000), (2, 2_500, 2_600), (3, 4_000, 9_000)];
        sc.loss_per_mille = 20;
        sc.heights = 8;
        let out = run_checked(sc.clone());
        assert_live(seed, &sc, &out);
    }
}

#[test]
fn a_late_joiner_syncs_decisions_and_verifies_their_certificates() {
    let seed = 77;
    let mut sc = Scenario::honest(seed, 5);
    sc.late = vec![(4, 5_000)];
    sc.heights = 10;
    let out = run_checked(sc.clone());
    assert_live(seed, &sc, &out);
}

#[test]
fn an_equivocating_leader_cannot_split_the_honest_validators() {
    for seed in SEEDS {
        let mut sc = Scenario::honest(seed, 4);
        sc.behaviours[0] = Behaviour::EquivocatingLeader;
        sc.heights = 6;
        let out = run_checked(sc.clone());
        assert_live(seed, &sc, &out);
        for ds in &out.decisions {
            assert!(
                ds.values().all(|v| !v.starts_with(b"evil"))
                    || ds
                        .values()
                        .all(|v| v.starts_with(b"good") || v.starts_with(b"evil"))
            );
        }
    }
}

#[test]
fn a_double_voter_is_reported_and_ignored() {
    let seed = 5;
    let mut sc = Scenario::honest(seed, 4);
    sc.behaviours[3] = Behaviour::DoubleVoter;
    sc.heights = 5;
    let out = run_checked(sc.clone());
    assert_live(seed, &sc, &out);
    assert!(
        out.misbehaviour_reports > 0,
        "double votes must be reported"
    );
}

#[test]
fn a_forger_is_rejected_on_signatures() {
    let seed = 6;
    let mut sc = Scenario::honest(seed, 4);
    sc.behaviours[2] = Behaviour::Forger;
    sc.heights = 5;
    let out = run_checked(sc.clone());
    assert_live(seed, &sc, &out);
    assert!(out.bad_signatures_seen > 0);
}

#[test]
fn rejected_proposals_lead_to_a_view_change_and_a_good_value() {
    let seed = 8;
    let mut sc = Scenario::honest(seed, 4);
    sc.behaviours[1] = Behaviour::BadProposer;
    sc.heights = 6;
    let out = run_checked(sc.clone());
    assert_live(seed, &sc, &out);
    for ds in &out.decisions {
        assert!(
            ds.values().all(|v| v.starts_with(b"good")),
            "a rejected value was decided"
        );
    }
}

#[test]
fn silent_validators_just_under_a_third_of_stake_do_not_stop_progress() {
    for seed in SEEDS {
        let mut sc = Scenario::honest(seed, 7);
        // Total 600 + 149 = 749; silent 100 + 149 = 249: 249 × 3 = 747 < 749, so the
        // honest 500 still make a quorum (500 × 3 = 1500 > 2 × 749 = 1498).
        sc.stakes[6] = 149;
        sc.behaviours[5] = Behaviour::Silent;
        sc.behaviours[6] = Behaviour::Silent;
        sc.heights = 5;
        let out = run_checked(sc.clone());
        assert_live(seed, &sc, &out);
    }
}

#[test]
fn silent_validators_just_over_a_third_of_stake_stop_progress_safely() {
    let seed = 9;
    let mut sc = Scenario::honest(seed, 7);
    // Total 600 + 151 = 751; silent 100 + 151 = 251: 251 × 3 = 753 > 751. The honest 500
    // are no quorum (1500 < 2 × 751 = 1502): no progress is the correct outcome.
    sc.stakes[6] = 151;
    sc.behaviours[5] = Behaviour::Silent;
    sc.behaviours[6] = Behaviour::Silent;
    sc.time_limit_ms = 30_000;
    let out = run_checked(sc);
    assert!(
        out.decisions.iter().all(BTreeMap::is_empty),
        "seed {seed}: decided without a quorum"
    );
}

#[test]
fn the_same_seed_replays_the_same_trace() {
    let mut sc = Scenario::honest(0x7ace, 5);
    sc.loss_per_mille = 30;
    sc.dup_per_mille = 30;
    sc.crashes = vec![(2, 500, 1_500)];
    let a = run_checked(sc.clone());
    let b = run_checked(sc);
    assert_eq!(a, b);
}

/// Many seeds of a mix of faults at once: lossy, duplicating, reordering links; a crash and
/// restart; a partition that heals; one byzantine validator. `PLATFORM_SIM_SEEDS=N` runs N
/// seeds (default 12); a failure names its seed, and `PLATFORM_SIM_SEED=S` replays one.
#[test]
fn mixed_faults_over_many_seeds() {
    let seeds: Vec<u64> = match std::env::var("PLATFORM_SIM_SEED") {
        Ok(s) => vec![s.parse().expect("PLATFORM_SIM_SEED is a u64")],
        Err(_) => {
            let n = std::env::var("PLATFORM_SIM_SEEDS")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(12u64);
            (1000..1000 + n).collect()
        }
    };
    let byzantine = [
        Behaviour::EquivocatingLeader,
        Behaviour::DoubleVoter,
        Behaviour::Forger,
        Behaviour::Silent,
        Behaviour::BadProposer,
    ];
    for seed in seeds {
        let mut rng = Rng(seed);
        let n = 4 + rng.below(4) as usize;
        let mut sc = Scenario::honest(seed, n);
        sc.stakes = (0..n).map(|_| 50 + rng.below(100)).collect();
        // Keep the byzantine validator's stake under a third of the total.
        let total: u64 = sc.stakes.iter().sum();
        sc.stakes[n - 1] = sc.stakes[n - 1].min(total / 4);
        sc.behaviours[n - 1] = byzantine[rng.below(byzantine.len() as u64) as usize];
        sc.latency_ms = (1, 20 + rng.below(150));
        sc.loss_per_mille = rng.below(80);
        sc.dup_per_mille = rng.below(80);
        let victim = rng.below(n as u64 - 1) as usize;
        let crash_at = 100 + rng.below(3_000);
        sc.crashes = vec![(victim, crash_at, crash_at + 200 + rng.below(4_000))];
        let cut_from = rng.below(5_000);
        sc.partitions = vec![(cut_from, cut_from + rng.below(4_000), vec![0])];
        sc.heights = 5;
        if std::env::var("PLATFORM_SIM_SEED").is_ok() {
            eprintln!(
                "scenario: stakes {:?} behaviours {:?} latency {:?} loss {} dup {} crashes {:?} partitions {:?}",
                sc.stakes,
                sc.behaviours,
                sc.latency_ms,
                sc.loss_per_mille,
                sc.dup_per_mille,
                sc.crashes,
                sc.partitions
            );
        }
        let out = run_checked(sc.clone());
        if std::env::var("PLATFORM_SIM_SEED").is_ok() {
            eprintln!(
                "decided per node: {:?}",
                out.decisions.iter().map(BTreeMap::len).collect::<Vec<_>>()
            );
        }
        assert_live(seed, &sc, &out);
    }
}
