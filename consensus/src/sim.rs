//! The deterministic twin of the network for consensus: N replicas (real redb files, real
//! sr25519 signatures) on a simulated network driven by one seed — per-link latency and
//! jitter, loss, duplication, reordering, partitions that heal, crashes with restart from
//! each node's own store, late joiners — and validators that misbehave, named by what they
//! do. Used by the simulation tests and by `bench consensus`. Every check names its seed;
//! the same seed replays the same trace (`Outcome::trace_hash`).

#![allow(clippy::print_stderr)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::{
    Action, Config, Decision, Domain, Event, Height, Kind, Message, Proposal, RedbStore, Replica,
    Signer, Storage, Validator, ValidatorSet, View, Vote,
};

/// Domain of every simulated signature.
pub const DOMAIN: Domain = Domain {
    netuid: 42,
    epoch: 7,
};

/// SplitMix64: the simulation's only source of randomness.
#[derive(Debug)]
pub struct Rng(pub u64);
impl Rng {
    /// Next 64 bits.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform-ish in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
    /// True with probability `per_mille / 1000`.
    pub fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }
}

/// What a simulated validator does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
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

/// A simulated run: validators, behaviours, network and faults, all from `seed`.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub seed: u64,
    pub stakes: Vec<u64>,
    pub behaviours: Vec<Behaviour>,
    pub latency_ms: (u64, u64),
    pub loss_per_mille: u64,
    pub dup_per_mille: u64,
    /// (from_ms, until_ms, side A); messages across the cut are dropped.
    pub partitions: Vec<(u64, u64, Vec<usize>)>,
    /// (node, crash_at_ms, restart_at_ms)
    pub crashes: Vec<(usize, u64, u64)>,
    /// (node, start_at_ms) for nodes that join late.
    pub late: Vec<(usize, u64)>,
    pub heights: Height,
    pub time_limit_ms: u64,
}

impl Scenario {
    /// `n` honest validators of equal stake on a clean network.
    pub fn honest(seed: u64, n: usize) -> Scenario {
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

#[derive(Debug)]
struct Node {
    signer_seed: [u8; 32],
    db: PathBuf,
    replica: Option<Replica<RedbStore>>,
    timer: Option<(u64, Height, u32)>,
    next_value: u64,
}

/// What a run produced.
#[derive(Debug, PartialEq, Eq)]
pub struct Outcome {
    /// decisions[node][height] = value
    pub decisions: Vec<BTreeMap<Height, Vec<u8>>>,
    pub delivered: u64,
    pub misbehaviour_reports: u64,
    pub bad_signatures_seen: u64,
    /// Messages put on the wire (after loss decisions: each copy counted once sent).
    pub messages_sent: u64,
    /// Bytes of those messages in the wire encoding (`codec::encode_message`).
    pub bytes_sent: u64,
    /// For each decision taken on receipt of a message: network hops from the proposal.
    pub decision_hops: Vec<u32>,
    /// Every value an application proposed (or an equivocator made up).
    pub proposed: std::collections::BTreeSet<Vec<u8>>,
    /// Two different votes for one slot sent by an honest validator (must stay 0).
    pub honest_equivocations: u64,
    pub trace_hash: u64,
}

/// The simulation of one scenario.
#[allow(missing_debug_implementations)]
pub struct Sim {
    sc: Scenario,
    rng: Rng,
    set: ValidatorSet,
    nodes: Vec<Node>,
    net: BTreeMap<(u64, u64), (usize, usize, Message, u32)>,
    /// Votes honest validators sent, to prove none equivocated (across restarts too).
    sent_votes: BTreeMap<(Kind, Height, View, usize), [u8; 32]>,
    /// Hop count of the message being handled (0 for timers and the application).
    hop: u32,
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
    /// Set up a scenario (redb files in a fresh temporary directory).
    pub fn new(sc: Scenario) -> Sim {
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
            sent_votes: BTreeMap::new(),
            hop: 0,
            seq: 0,
            now: 0,
            out: Outcome {
                decisions: vec![BTreeMap::new(); n],
                delivered: 0,
                misbehaviour_reports: 0,
                bad_signatures_seen: 0,
                trace_hash: 0xcbf2_9ce4_8422_2325,
                messages_sent: 0,
                bytes_sent: 0,
                decision_hops: vec![],
                proposed: std::collections::BTreeSet::new(),
                honest_equivocations: 0,
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
            self.out.messages_sent += 1;
            self.out.bytes_sent += crate::codec::encode_message(&m).len() as u64;
            // A proposal starts a decision: one hop once delivered. Anything else is one hop
            // further than what caused it.
            let hop = if matches!(m, Message::Proposal(_)) {
                1
            } else {
                self.hop + 1
            };
            self.net.insert((at, self.seq), (to, from, m.clone(), hop));
        }
    }

    fn signer(&self, i: usize) -> Signer {
        Signer::from_seed(&self.nodes[i].signer_seed)
    }

    /// What node `from` actually puts on the wire for a broadcast, per its behaviour.
    fn broadcast(&mut self, from: usize, m: Message) {
        let n = self.nodes.len();
        if self.sc.behaviours[from] == Behaviour::Honest
            && let Message::Vote(v) = &m
        {
            let prev = self
                .sent_votes
                .insert((v.kind, v.height, v.view, from), v.digest);
            if prev.is_some_and(|d| d != v.digest) {
                self.out.honest_equivocations += 1;
            }
        }
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
                        {
                            let evil = format!("evil-{}-{}", p.height, p.view).into_bytes();
                            self.out.proposed.insert(evil.clone());
                            evil
                        },
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
                    self.out.proposed.insert(value.clone());
                    work.push(Event::Propose { height, value });
                }
                Action::Validate {
                    height,
                    view,
                    value,
                } => {
                    let accept = !value.starts_with(b"bad");
                    let digest = crate::crypto::value_digest(&value);
                    work.push(Event::Validated {
                        height,
                        view,
                        digest,
                        accept,
                    });
                }
                Action::Decided(Decision { height, value, .. }) => {
                    if self.hop > 0 {
                        self.out.decision_hops.push(self.hop);
                    }
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

    /// Run until every honest validator decided `heights` heights, or the time limit.
    pub fn run(mut self) -> Outcome {
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
            // With zero latency a whole run happens at one instant: stop when done.
            while !self.done() {
                let Some(entry) = self.net.first_entry() else {
                    break;
                };
                if entry.key().0 > self.now {
                    break;
                }
                let (to, from, m, hop) = entry.remove();
                self.hop = hop;
                self.out.delivered += 1;
                self.trace(to as u64 * 7 + from as u64);
                let Some(r) = self.nodes[to].replica.as_mut() else {
                    continue;
                };
                let actions = r.handle(self.now, Event::Message(m));
                self.apply(to, Some(from), actions);
                self.hop = 0;
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

/// Agreement: no two nodes (live or restarted) decided different values at one height.
pub fn assert_safe(seed: u64, out: &Outcome) {
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

/// Liveness: every honest validator decided `heights` heights.
pub fn assert_live(seed: u64, sc: &Scenario, out: &Outcome) {
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

/// Run a scenario and check agreement, validity and honest non-equivocation.
pub fn run_checked(sc: Scenario) -> Outcome {
    let seed = sc.seed;
    let out = Sim::new(sc.clone()).run();
    assert_safe(seed, &out);
    assert_eq!(
        out.honest_equivocations, 0,
        "seed {seed}: an honest validator equivocated"
    );
    for ds in &out.decisions {
        for (h, v) in ds {
            assert!(
                out.proposed.contains(v),
                "seed {seed}: height {h} decided a value nobody proposed"
            );
            assert!(
                !v.starts_with(b"bad"),
                "seed {seed}: height {h} decided a value the application rejected"
            );
        }
    }
    out
}
