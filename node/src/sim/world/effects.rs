//! Carrying out a simulated node's effects on the simulated world (links, blob holders,
//! the chain, the node's disk), the lying leader, and the checks made as decisions apply.

use parity_scale_codec::Encode as _;
use platform_chain::Chain as _;
use platform_consensus::{Domain, Message, Proposal, Signer};
use platform_net::Topic;

use super::{Ev, NETUID, World};
use crate::machine::{Effect, Input, Roster};
use crate::msg::{EpochValue, decode_exact};
use crate::sim::Violation;

impl World {
    pub(super) fn input(&mut self, i: usize, input: Input) -> Result<(), Violation> {
        self.inputs(i, vec![input])
    }

    /// Inputs that reach node `i` at one instant, handled as one batch (its own work done
    /// once after them, as the node's loop does with what it drains in one pass).
    pub(super) fn inputs(&mut self, i: usize, inputs: Vec<Input>) -> Result<(), Violation> {
        let now = self.now;
        let Some(m) = self.nodes[i].machine.as_mut() else {
            return Ok(());
        };
        let effects = m.handle_all(now, inputs);
        self.carry_out(i, effects);
        self.check_applied(i)
    }

    pub(super) fn carry_out(&mut self, i: usize, effects: Vec<Effect>) {
        let inc = self.nodes[i].incarnation;
        for e in effects {
            match e {
                Effect::Publish { topic, payload } => self.publish(i, topic, payload),
                Effect::Provide(b) => {
                    self.nodes[i].provided.insert(platform_types::sha256(&b), b);
                }
                Effect::Fetch(hash) => {
                    // Blobs provided, and signed submissions by id (served from the store).
                    let held = |n: &super::Node| {
                        n.provided
                            .get(&hash)
                            .cloned()
                            .or_else(|| n.disk.subs.get(&hash).map(|a| a.envelope.clone()))
                    };
                    let holders: Vec<usize> = (0..self.nodes.len())
                        .filter(|j| *j != i && held(&self.nodes[*j]).is_some())
                        .collect();
                    let from = holders.into_iter().find(|j| self.link(i, *j));
                    let (t, bytes) = match from {
                        Some(j) => (2 * self.delay(), held(&self.nodes[j])),
                        None => (300, None),
                    };
                    self.at(
                        self.now + t,
                        Ev::Deliver {
                            to: i,
                            inc,
                            input: Input::Fetched { hash, bytes },
                        },
                    );
                }
                Effect::ReadRoster { epoch, block } => {
                    let input = match self.chain.metagraph_at(NETUID, block) {
                        Ok(g) => {
                            let (v, uids) = crate::chainsvc::split_metagraph(&g);
                            Input::Roster {
                                epoch,
                                roster: Roster::new(
                                    crate::machine::Pin {
                                        block: g.block.number,
                                        hash: g.block.hash,
                                    },
                                    v,
                                    uids,
                                ),
                            }
                        }
                        Err(e) => Input::RosterUnavailable {
                            epoch,
                            reason: e.to_string(),
                        },
                    };
                    self.at(self.now + 3, Ev::Deliver { to: i, inc, input });
                }
                Effect::Pinned { .. }
                | Effect::RetireChallenge(_)
                | Effect::Reply { .. }
                | Effect::SubnetBehind(_)
                | Effect::Horizon(_)
                | Effect::Admit { .. } => {}
                Effect::RecordSubmission(a) => {
                    self.nodes[i].disk.subs.insert(a.id, a);
                }
                Effect::Evaluate { id, seed, body, .. } => {
                    // The shell stores the result with its audit record as it arrives.
                    let mut src = seed.to_vec();
                    src.extend_from_slice(&body);
                    let h = platform_types::sha256(&src);
                    let score = (h[0] != 0).then(|| u64::from(h[1]) * 1000 + u64::from(h[2]));
                    self.nodes[i].disk.scores.insert(id, score);
                    let t = self.now + 1 + self.rng.below(5);
                    self.at(
                        t,
                        Ev::Deliver {
                            to: i,
                            inc,
                            input: Input::Evaluated { id, score },
                        },
                    );
                }
                Effect::StoreBatch {
                    epoch,
                    author,
                    envelope,
                } => {
                    self.nodes[i].disk.batches.push((epoch, author, envelope));
                }
                Effect::StoreModule(b) => {
                    self.nodes[i]
                        .disk
                        .modules
                        .insert(platform_types::sha256(&b), b);
                }
                Effect::LoadChallenge(meta) => {
                    let input = Input::ChallengeLoaded {
                        id: meta.id,
                        ok: true,
                    };
                    self.at(self.now, Ev::Deliver { to: i, inc, input });
                }
                Effect::Applied(a) => self.applied(i, &a),
                Effect::StoreSnapshot(snap) => self.keep_snapshot(i, &snap),
                Effect::AskCheckpoint => {
                    // A few linked peers answer with the latest decision naming a snapshot.
                    let mut peers = Vec::new();
                    for j in 0..self.nodes.len() {
                        if j != i && peers.len() < 3 && self.link(i, j) {
                            peers.push(j);
                        }
                    }
                    for j in peers {
                        let tail: Vec<Vec<u8>> =
                            self.nodes[j].disk.checkpoints.values().cloned().collect();
                        if !tail.is_empty() {
                            let t = self.now + 2 * self.delay();
                            let input = Input::CheckpointOffer(tail.encode());
                            self.at(t, Ev::Deliver { to: i, inc, input });
                        }
                    }
                }
                Effect::Installed(inst) => self.installed(i, &inst),
            }
        }
    }

    fn publish(&mut self, from: usize, topic: Topic, payload: Vec<u8>) {
        let payload = if self.nodes[from].liar {
            self.lie(from, topic, payload)
        } else {
            payload
        };
        for to in 0..self.nodes.len() {
            if to == from || !self.link(from, to) {
                continue;
            }
            let d = self.delay();
            let inc = self.nodes[to].incarnation;
            let input = Input::Gossip {
                topic,
                payload: payload.clone(),
            };
            self.at(self.now + d, Ev::Deliver { to, inc, input });
        }
    }

    /// The liar re-signs its proposals with a wrong result digest.
    fn lie(&mut self, from: usize, topic: Topic, payload: Vec<u8>) -> Vec<u8> {
        if topic != Topic::Consensus {
            return payload;
        }
        let Ok(Message::Proposal(p)) = platform_consensus::codec::decode_message(&payload) else {
            return payload;
        };
        let Some(mut v) = decode_exact::<EpochValue>(&p.value) else {
            return payload;
        };
        v.digest[0] ^= 0xff;
        let signer = Signer::from_seed(self.nodes[from].key.secret_seed());
        let domain = Domain {
            netuid: NETUID,
            epoch: v.epoch,
        };
        let forged = Proposal::sign(
            &signer,
            domain,
            p.height,
            p.view,
            v.encode(),
            p.justification,
        );
        platform_consensus::codec::encode_message(&Message::Proposal(forged))
    }

    fn keep_snapshot(&mut self, i: usize, snap: &crate::snapshot::Snapshot) {
        let n = &mut self.nodes[i];
        let blobs: Vec<Vec<u8>> = std::iter::once(snap.manifest.clone())
            .chain(snap.chunks.iter().cloned())
            .collect();
        for b in &blobs {
            n.provided.insert(platform_types::sha256(b), b.clone());
        }
        n.disk.snapshots.insert(snap.reference.height, blobs);
        while n.disk.snapshots.len() > crate::machine::SNAPSHOTS_KEPT {
            n.disk.snapshots.pop_first();
        }
    }

    /// A snapshot installed from peers: what it says about its epoch must be what the
    /// network committed, and the node's applied epochs go on from it.
    fn installed(&mut self, i: usize, inst: &crate::machine::Installed) {
        let s = &inst.state;
        let record = s.epoch_record();
        match (self.agreed.get(&s.epoch), &record) {
            (Some((digest, weights)), Some(r)) if r.digest == *digest && r.weights == *weights => {}
            (None, _) => {}
            _ => {
                self.pending_violation = Some(format!(
                    "node {i} installed a snapshot of epoch {} unlike the committed one",
                    s.epoch
                ));
            }
        }
        let n = &mut self.nodes[i];
        n.disk.registry = s.registry.iter().cloned().collect();
        n.disk.nonce = s.nonce;
        n.disk.applied_height = s.height;
        n.disk.last_epoch = Some(s.epoch);
        n.applied = vec![s.epoch];
        n.synced = true;
        self.keep_snapshot(i, &inst.snapshot);
    }

    fn applied(&mut self, i: usize, a: &crate::machine::Applied) {
        let n = &mut self.nodes[i];
        if let Some(c) = &a.checkpoint {
            n.disk.checkpoints.insert(a.height, c.clone());
            while n.disk.checkpoints.len() > crate::store::CHECKPOINT_TAIL {
                n.disk.checkpoints.pop_first();
            }
        }
        n.disk.applied_height = a.height;
        n.disk.last_epoch = Some(a.epoch);
        n.disk.nonce = a.registry_nonce;
        for (id, e) in &a.registry {
            n.disk.registry.insert(*id, e.clone());
        }
        n.applied.push(a.epoch);
        sha2::Digest::update(
            &mut self.trace,
            (i as u64, a.epoch, a.record.digest).encode(),
        );
        if a.recent && !n.liar && !a.record.weights.is_empty() {
            let (uids, w): (Vec<u16>, Vec<u64>) = a.record.weights.iter().copied().unzip();
            if let Ok((u, v)) = platform_chain::weights::conform(&uids, &w, u16::MAX, None) {
                let k = n.key.public();
                let _ = self.chain.set_weights(&k, NETUID, &u, &v, 0);
            }
        }
        let entry = self
            .agreed
            .entry(a.epoch)
            .or_insert((a.record.digest, a.record.weights.clone()));
        if entry.0 != a.record.digest || entry.1 != a.record.weights {
            self.pending_violation =
                Some(format!("node {i} applied epoch {} differently", a.epoch));
        } else if !a.recomputed && !self.nodes[i].liar {
            self.pending_violation = Some(format!(
                "node {i}: committed digest of epoch {} is not the result of its inputs",
                a.epoch
            ));
        }
    }

    pub(super) fn check_applied(&mut self, i: usize) -> Result<(), Violation> {
        if let Some(what) = self.pending_violation.take() {
            return Err(self.violation(what));
        }
        let ap = &self.nodes[i].applied;
        if let Some(w) = ap.windows(2).find(|w| w[1] != w[0] + 1) {
            return Err(self.violation(format!("node {i} applied epoch {} after {}", w[1], w[0])));
        }
        if !self.nodes[i].synced && ap.first().is_some_and(|e| *e != 0) {
            return Err(self.violation(format!("node {i} skipped the genesis epoch")));
        }
        Ok(())
    }

    pub(super) fn check_caught_up(&self, want: u64) -> Result<(), Violation> {
        for (i, n) in self.nodes.iter().enumerate() {
            let Some(m) = &n.machine else { continue };
            let last = m.applied().1;
            if last.is_none_or(|l| l < want) {
                return Err(self.stuck(format!(
                    "node {i} applied up to epoch {last:?}, not {want} (height {}, view {})",
                    m.height(),
                    m.view()
                )));
            }
        }
        Ok(())
    }

    /// A liveness violation, with every node's state when `PLATFORM_SIM_DEBUG` is set.
    pub(super) fn stuck(&self, what: String) -> Violation {
        if std::env::var_os("PLATFORM_SIM_DEBUG").is_some() {
            for (j, n) in self.nodes.iter().enumerate() {
                if let Some(m) = &n.machine {
                    let liar = if n.liar { " (liar)" } else { "" };
                    eprintln!("node {j}{liar}: {}", m.debug_state());
                }
            }
            eprintln!("{:?}", self.sc);
        }
        self.violation(what)
    }

    pub(super) fn violation(&self, what: String) -> Violation {
        Violation {
            seed: self.sc.seed,
            what,
        }
    }
}
