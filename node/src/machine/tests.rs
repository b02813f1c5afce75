//! The machine alone and in pairs, with effects carried out in memory: a lone validator, a
//! follower, an unreachable chain. (A disagreeing metagraph is refused in the simulation's
//! churn runs, where rosters are read at different times.)

use std::collections::{BTreeMap, VecDeque};

use parity_scale_codec::Encode as _;
use platform_consensus::MemStore;
use platform_keys::Keypair;
use platform_net::Topic;

use super::*;
use crate::registry::{ChallengeMeta, Change, Limits, Rule, SignedChange};

mod early;
mod late;
mod pace;
mod propose;
mod sync;

const MODULE: &[u8] = b"test-module";

fn cfg() -> MachineConfig {
    MachineConfig {
        netuid: 1,
        schedule: Schedule { len: 5, offset: 0 },
        genesis_epoch: 0,
        settle_ms: 100,
        view_timeout_ms: 200,
        view_timeout_max_ms: 800,
        checkpoint_interval: 16,
        rule_break: None,
    }
}

fn key(i: u8) -> Keypair {
    Keypair::from_seed(&[i; 32])
}

fn roster(validators: &[(Hotkey, u64)], miners: &[Hotkey], block: u64) -> Roster {
    Roster::new(
        Pin {
            block,
            hash: [block as u8; 32],
        },
        validators.to_vec(),
        miners
            .iter()
            .enumerate()
            .map(|(i, m)| (*m, i as u16))
            .collect(),
    )
}

/// Machines wired together in memory; `rosters[i]` is what node `i` reads from its chain.
struct Pair {
    nodes: Vec<Machine<MemStore>>,
    rosters: Vec<Box<dyn Fn(u64) -> Option<Roster>>>,
    provided: Vec<BTreeMap<Hash32, Vec<u8>>>,
    published: Vec<Vec<(Topic, Vec<u8>)>>,
    applied: Vec<Vec<Applied>>,
    replies: Vec<Result<String, String>>,
    admits: Vec<(u64, Result<(), Refusal>)>,
    /// Every blob each node asked for.
    fetches: Vec<Vec<Hash32>>,
    queue: VecDeque<(usize, Input)>,
    /// The score each node's engine gives every evaluation.
    scores: Vec<u64>,
}

impl Pair {
    fn new(keys: &[Keypair], rosters: Vec<Box<dyn Fn(u64) -> Option<Roster>>>) -> Pair {
        Pair::with(cfg(), keys, rosters)
    }

    fn with(
        cfg: MachineConfig,
        keys: &[Keypair],
        rosters: Vec<Box<dyn Fn(u64) -> Option<Roster>>>,
    ) -> Pair {
        let owner = key(9).public();
        let nodes = keys
            .iter()
            .map(|k| {
                Machine::new(
                    cfg.clone(),
                    k.clone(),
                    owner,
                    MemStore::default(),
                    Restored::default(),
                )
                .0
            })
            .collect();
        let n = keys.len();
        Pair {
            nodes,
            rosters,
            provided: vec![BTreeMap::new(); n],
            published: vec![Vec::new(); n],
            applied: vec![Vec::new(); n],
            replies: Vec::new(),
            admits: Vec::new(),
            fetches: vec![Vec::new(); n],
            queue: VecDeque::new(),
            scores: vec![7; n],
        }
    }

    fn input(&mut self, now: u64, i: usize, input: Input) {
        self.queue.push_back((i, input));
        while let Some((i, input)) = self.queue.pop_front() {
            let effects = self.nodes[i].handle(now, input);
            for e in effects {
                self.effect(i, e);
            }
        }
    }

    fn all(&mut self, now: u64, input: Input) {
        for i in 0..self.nodes.len() {
            self.input(now, i, input.clone());
        }
    }

    fn effect(&mut self, i: usize, e: Effect) {
        match e {
            Effect::Publish { topic, payload } => {
                self.published[i].push((topic, payload.clone()));
                for j in 0..self.nodes.len() {
                    if j != i {
                        self.queue.push_back((
                            j,
                            Input::Gossip {
                                topic,
                                payload: payload.clone(),
                            },
                        ));
                    }
                }
            }
            Effect::Provide(b) => {
                self.provided[i].insert(platform_types::sha256(&b), b);
            }
            Effect::Fetch(hash) => {
                self.fetches[i].push(hash);
                let bytes = self.provided.iter().find_map(|p| p.get(&hash).cloned());
                self.queue.push_back((i, Input::Fetched { hash, bytes }));
            }
            Effect::ReadRoster { epoch, block } => {
                let input = match (self.rosters[i])(block) {
                    Some(roster) => Input::Roster { epoch, roster },
                    None => Input::RosterUnavailable {
                        epoch,
                        reason: "connection refused".into(),
                    },
                };
                self.queue.push_back((i, input));
            }
            Effect::LoadChallenge(meta) => self.queue.push_back((
                i,
                Input::ChallengeLoaded {
                    id: meta.id,
                    ok: true,
                },
            )),
            Effect::Evaluate { id, .. } => self.queue.push_back((
                i,
                Input::Evaluated {
                    id,
                    score: Some(self.scores[i]),
                },
            )),
            Effect::Applied(a) => self.applied[i].push(*a),
            // Signed submissions are served by id from the store.
            Effect::RecordSubmission(a) => {
                self.provided[i].insert(a.id, a.envelope);
            }
            Effect::StoreSnapshot(snap) => {
                for b in std::iter::once(snap.manifest).chain(snap.chunks) {
                    self.provided[i].insert(platform_types::sha256(&b), b);
                }
            }
            Effect::Reply { result, .. } => self.replies.push(result),
            Effect::Admit { token, verdict } => self.admits.push((token, verdict)),
            _ => {}
        }
    }

    /// Blocks `0..=to` at 100 ms each, ticking every 20 ms in between.
    fn run_blocks(&mut self, to: u64) {
        self.run_span(0, to, |_, _| {});
    }

    /// Blocks `from..=to` at 100 ms each, ticking every 20 ms; `seen` looks after each tick.
    fn run_span(&mut self, from: u64, to: u64, mut seen: impl FnMut(&Pair, u64)) {
        for b in from..=to {
            for t in 0..5 {
                let now = b * 100 + t * 20;
                if t == 0 {
                    self.all(now, Input::Block { number: b });
                }
                self.all(now, Input::Tick);
                seen(self, now);
            }
        }
    }
}

/// Two validators of equal stake and one registered miner, the challenge published and
/// active, blocks `0..=to` run.
fn two_validators(miner: &Keypair, to: u64) -> Pair {
    validators(2, miner, to)
}

/// `n` validators of equal stake and one registered miner, the challenge published and
/// active, blocks `0..=to` run.
fn validators(n: u8, miner: &Keypair, to: u64) -> Pair {
    let keys: Vec<Keypair> = (1..=n).map(key).collect();
    let set: Vec<(Hotkey, u64)> = keys.iter().map(|k| (k.public(), 100)).collect();
    let m = miner.public();
    let rosters: Vec<Box<dyn Fn(u64) -> Option<Roster>>> = (0..n)
        .map(|_| {
            let set = set.clone();
            Box::new(move |b| Some(roster(&set, &[m], b))) as Box<dyn Fn(u64) -> Option<Roster>>
        })
        .collect();
    let mut p = Pair::new(&keys, rosters);
    p.all(0, Input::Block { number: 0 });
    publish_challenge(&mut p, 0);
    p.run_blocks(to);
    p
}

/// A miner's signed submission to challenge 1, as it arrives.
fn signed_arrival(miner: &Keypair, epoch: u64, body: Vec<u8>, at_ms: u64) -> Arrival {
    let envelope = platform_net::Submission {
        challenge: 1,
        epoch,
        body: body.clone(),
    }
    .sign(miner, at_ms)
    .encode();
    Arrival {
        id: platform_types::sha256(&envelope),
        author: miner.public(),
        challenge: 1,
        epoch,
        body,
        envelope,
    }
}

fn publish_challenge(p: &mut Pair, via: usize) {
    let owner = key(9);
    let meta = ChallengeMeta {
        id: 1,
        name: "t".into(),
        version: 1,
        module_hash: platform_types::sha256(MODULE),
        limits: Limits {
            fuel: 1,
            memory_bytes: 1,
            input_bytes: 64,
            output_bytes: 8,
        },
        emission_share: 1,
        rule: Rule::Proportional,
    };
    for (nonce, change, module) in [
        (1, Change::Publish(meta), Some(MODULE.to_vec())),
        (2, Change::Activate(1), None),
    ] {
        let change = SignedChange::sign(&owner, change, nonce).encode();
        p.input(
            1,
            via,
            Input::Post {
                token: nonce,
                change,
                module,
            },
        );
    }
}

#[test]
fn a_lone_validator_commits_registry_changes_and_epochs_alone() {
    let me = key(1);
    let v = vec![(me.public(), 100)];
    let mut p = Pair::new(
        &[me],
        vec![Box::new(move |b| Some(roster(&v, &[[5; 32]], b)))],
    );
    p.input(0, 0, Input::Block { number: 0 });
    publish_challenge(&mut p, 0);
    assert!(p.replies.iter().all(|r| r.is_ok()), "{:?}", p.replies);
    p.run_blocks(12);
    let epochs: Vec<u64> = p.applied[0].iter().map(|a| a.epoch).collect();
    assert_eq!(
        epochs,
        vec![0, 1],
        "epochs 0 and 1 ended and committed, in order"
    );
    assert!(p.applied[0].iter().all(|a| a.recomputed));
    assert!(
        !p.applied[0][0].registry.is_empty(),
        "the changes committed with epoch 0"
    );
    assert_eq!(p.nodes[0].registry().active().count(), 1);
    assert!(p.nodes[0].votes());
    // Each applied epoch names its pinned block: the epoch's first.
    assert_eq!(p.applied[0][1].pin.block, 5);
}

#[test]
fn a_follower_publishes_nothing_and_applies_what_the_validators_commit() {
    let (v, f) = (key(1), key(2));
    let set = vec![(v.public(), 100)];
    let r = move |b| Some(roster(&set, &[[5; 32]], b));
    let mut p = Pair::new(&[v, f], vec![Box::new(r.clone()), Box::new(r)]);
    p.all(0, Input::Block { number: 0 });
    publish_challenge(&mut p, 0);
    p.run_blocks(12);
    assert!(!p.nodes[1].votes());
    let a: Vec<_> = p.applied[0]
        .iter()
        .map(|a| (a.epoch, a.record.digest))
        .collect();
    let b: Vec<_> = p.applied[1]
        .iter()
        .map(|a| (a.epoch, a.record.digest))
        .collect();
    assert!(
        a.len() >= 2 && a == b,
        "follower applied {b:?}, validator {a:?}"
    );
    // A follower sends no batches and no votes: at most requests for decisions it lacks.
    for (topic, payload) in &p.published[1] {
        assert_ne!(*topic, Topic::Evaluations);
        if *topic == Topic::Consensus {
            let m = platform_consensus::codec::decode_message(payload).unwrap();
            assert!(
                matches!(m, platform_consensus::Message::SyncRequest { .. }),
                "{m:?}"
            );
        }
    }
}

#[test]
fn an_unreachable_chain_delays_the_epoch_and_is_asked_again() {
    let me = key(1);
    let v = vec![(me.public(), 100)];
    let up = std::rc::Rc::new(std::cell::Cell::new(false));
    let flag = up.clone();
    let mut p = Pair::new(
        &[me],
        vec![Box::new(move |b| flag.get().then(|| roster(&v, &[], b)))],
    );
    p.run_blocks(7);
    assert!(
        p.nodes[0].stats().roster_unavailable >= 2,
        "asked again after a failure"
    );
    assert!(p.applied[0].is_empty(), "no epoch without its metagraph");
    assert_eq!(p.nodes[0].height(), 1);
    up.set(true);
    for t in 0..60 {
        p.all(800 + t * 20, Input::Tick);
    }
    p.all(2000, Input::Block { number: 11 });
    for t in 0..60 {
        p.all(2000 + t * 20, Input::Tick);
    }
    let epochs: Vec<u64> = p.applied[0].iter().map(|a| a.epoch).collect();
    assert_eq!(epochs, vec![0, 1], "delayed, never skipped");
}

#[test]
fn a_submission_sent_to_us_is_answered_with_what_counts() {
    let me = key(1);
    let miner = [5; 32];
    let v = vec![(me.public(), 100)];
    let mut p = Pair::new(
        &[me],
        vec![Box::new(move |b| Some(roster(&v, &[miner], b)))],
    );
    let arrival = |id: u8, author: Hotkey, challenge: u32, epoch: u64| Arrival {
        id: [id; 32],
        author,
        challenge,
        epoch,
        body: vec![id],
        envelope: vec![id],
    };
    // Before the chain is read, nothing can be decided.
    p.input(
        0,
        0,
        Input::Submit {
            token: 1,
            arrival: arrival(1, miner, 1, 0),
        },
    );
    p.input(0, 0, Input::Block { number: 0 });
    publish_challenge(&mut p, 0);
    p.run_blocks(7); // epoch 1 (blocks 5..10) is open; epoch 0 has ended and settled
    let now = 800;
    let cases = [
        (2, arrival(2, miner, 1, 0)),
        (3, arrival(3, miner, 1, 3)),
        (4, arrival(4, [6; 32], 1, 1)),
        (5, arrival(5, miner, 2, 1)),
        (6, arrival(6, miner, 1, 1)),
        (7, arrival(7, miner, 1, 1)),
        (8, arrival(1, miner, 1, 1)),
    ];
    for (token, a) in cases {
        p.input(now, 0, Input::Submit { token, arrival: a });
    }
    assert_eq!(
        p.admits,
        vec![
            (1, Err(Refusal::NotReady)),
            (2, Err(Refusal::EpochClosed)),
            (3, Err(Refusal::EpochNotOpen)),
            (4, Err(Refusal::Unregistered)),
            (5, Err(Refusal::InactiveChallenge)),
            (6, Ok(())),
            // One counted per miner, challenge and epoch: a higher id does not count, a
            // lower one replaces it.
            (7, Err(Refusal::NotCounted)),
            (8, Ok(())),
        ]
    );
}

#[test]
fn a_validator_reporting_other_scores_is_counted_per_hotkey_on_every_node() {
    let keys = [key(1), key(2), key(3)];
    let miner = [5; 32];
    let set: Vec<(Hotkey, u64)> = keys.iter().map(|k| (k.public(), 100)).collect();
    let rosters: Vec<Box<dyn Fn(u64) -> Option<Roster>>> = (0..3)
        .map(|_| {
            let set = set.clone();
            Box::new(move |b| Some(roster(&set, &[miner], b))) as Box<dyn Fn(u64) -> Option<Roster>>
        })
        .collect();
    let mut p = Pair::new(&keys, rosters);
    p.scores[2] = 9; // the third validator's engine disagrees
    p.all(0, Input::Block { number: 0 });
    publish_challenge(&mut p, 0);
    p.run_blocks(7); // epoch 1 (blocks 5..10) is open
    let arrival = Arrival {
        id: [1; 32],
        author: miner,
        challenge: 1,
        epoch: 1,
        body: vec![1],
        envelope: vec![1],
    };
    for i in 0..3 {
        p.input(
            800,
            i,
            Input::Submit {
                token: i as u64,
                arrival: arrival.clone(),
            },
        );
    }
    p.run_blocks(16);
    assert!(
        p.applied[0]
            .iter()
            .any(|a| a.epoch == 1 && a.record.flagged == 1),
        "epoch 1 committed with one flag: {:?}",
        p.applied[0]
            .iter()
            .map(|a| (a.epoch, a.record.flagged))
            .collect::<Vec<_>>()
    );
    let liar = platform_keys::ss58_encode(&keys[2].public());
    for (i, n) in p.nodes.iter().enumerate() {
        let flagged = &n.stats().flagged_by_validator;
        assert_eq!(flagged.keys().collect::<Vec<_>>(), vec![&liar], "node {i}");
        assert!(flagged[&liar] >= 1);
    }
}
