//! The shell's hands: carries out the epoch machine's effects on the real net, engine,
//! store and chain thread, and turns what they report into machine inputs.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use platform_consensus::RedbStore;
use platform_engine::{
    ChallengeId, ChallengeSpec, EvalContext, EvalResult, Runtime, ShardedEngine, SubmitError,
};
use platform_keys::ss58_encode;
use platform_net::{NetEvent, NetHandle, Reason, Topic};

use crate::app::{AppMsg, now_ms};
use crate::chainsvc::{ChainJob, WeightsJob};
use crate::machine::{Applied, Arrival, Effect, Hash32, Hotkey, Input, Machine, Refusal, Roster};
use crate::metrics as m;
use crate::msg::{ChallengePost, LoadNote, decode_exact};
use crate::registry::ChallengeMeta;
use crate::status::{StatusView, Timing};
use crate::store::{AuditRecord, Store, Writes};

mod fetch;
mod load;
mod writer;
pub(crate) use fetch::Fetches;
pub(crate) use load::Load;
pub(crate) use writer::Writer;
use writer::{AppliedJob, Job};

/// Records gathered at most this long before they are committed (one fsync per window).
const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// ... or this many, whichever comes first.
const FLUSH_MAX: usize = 8192;
/// Submissions waiting for room in the engine at most; beyond, new ones are shed (counted).
const BACKLOG_MAX: usize = 200_000;

/// Everything the application thread owns besides the machine.
pub(crate) struct Shell {
    /// For reads; every write goes through `writer`.
    pub(crate) store: Store,
    /// The store's writer thread: the loop queues writes and never waits on a commit.
    pub(crate) writer: Writer,
    /// Records of this pass of the loop, committed together by [`Shell::flush`].
    pub(crate) pending: Writes,
    pub(crate) last_flush: Instant,
    pub(crate) runtime: Runtime,
    pub(crate) engine: ShardedEngine,
    pub(crate) challenges: HashMap<u32, Arc<platform_engine::Challenge>>,
    pub(crate) net: NetHandle,
    pub(crate) chain_tx: Sender<ChainJob>,
    pub(crate) inflight: HashMap<Hash32, (u64, u32, Hash32)>,
    pub(crate) backlog: std::collections::VecDeque<(u64, platform_engine::Submission)>,
    pub(crate) fetches: Fetches,
    /// Evaluation work held: miners are refused `busy` while it would take longer than the
    /// admission horizon to drain.
    pub(crate) load: Load,
    pub(crate) replies: HashMap<u64, Sender<Result<String, String>>>,
    pub(crate) next_token: u64,
    pub(crate) miners: Arc<RwLock<HashSet<Hotkey>>>,
    pub(crate) pinned: std::collections::BTreeMap<u64, Roster>,
    /// `[node] retain_epochs`: committed epochs kept in the store (0: all).
    pub(crate) retain_epochs: u64,
    /// Epochs below this are decided: their evaluations are dropped, not run.
    pub(crate) decided_below: u64,
    /// Validators holding half the stake are behind on evaluation: miners are refused
    /// `busy` (the machine says when this changes).
    pub(crate) subnet_behind: bool,
    pub(crate) view: StatusView,
}

/// A delivered submission as the machine takes it (`None`, counted, if it does not decode).
fn arrival(d: platform_net::Delivery) -> Option<Arrival> {
    match platform_net::Submission::decode(&d.payload) {
        Ok(sub) => Some(Arrival {
            id: d.id,
            author: d.author,
            challenge: sub.challenge,
            epoch: sub.epoch,
            body: sub.body,
            envelope: d.envelope,
        }),
        Err(_) => {
            metrics::counter!(m::INGRESS, "result" => "malformed").increment(1);
            None
        }
    }
}

impl Shell {
    pub(crate) fn on_net(&mut self, ev: NetEvent, inputs: &mut Vec<Input>) {
        let d = match ev {
            NetEvent::Message(d) => d,
            // Sent to us by a miner: the machine's admission answers its ack.
            NetEvent::Submit { token, delivery } => {
                let busy = if self.load.busy() {
                    Some("engine_busy")
                } else {
                    self.subnet_behind.then_some("subnet_busy")
                };
                if let Some(why) = busy {
                    metrics::counter!(m::INGRESS, "result" => why).increment(1);
                    let _ = self.net.admit(token, Err(Reason::Busy));
                    return;
                }
                match arrival(delivery) {
                    Some(arrival) => inputs.push(Input::Submit { token, arrival }),
                    None => {
                        let _ = self.net.admit(token, Err(Reason::Malformed));
                    }
                }
                return;
            }
            NetEvent::Checkpoint { bytes, .. } => {
                inputs.push(Input::CheckpointOffer(bytes));
                return;
            }
            _ => return,
        };
        if d.topic == Topic::Submissions {
            if let Some(a) = arrival(d) {
                inputs.push(Input::Submission(a));
            }
            return;
        }
        if d.topic == Topic::Load {
            if let Some(note) = decode_exact::<LoadNote>(&d.payload) {
                inputs.push(Input::LoadNote {
                    from: d.author,
                    note,
                });
            }
            return;
        }
        inputs.push(Input::Gossip {
            topic: d.topic,
            payload: d.payload,
        });
    }

    pub(crate) fn on_app(&mut self, msg: AppMsg, inputs: &mut Vec<Input>) {
        match msg {
            AppMsg::Post { body, reply } => match decode_exact::<ChallengePost>(&body) {
                Some(post) if let Some(why) = self.mechanism_refusal(&post.change) => {
                    let _ = reply.send(Err(why));
                }
                Some(post) => {
                    let token = self.next_token;
                    self.next_token += 1;
                    self.replies.insert(token, reply);
                    inputs.push(Input::Post {
                        token,
                        change: post.change,
                        module: post.module,
                    });
                }
                None => {
                    let _ = reply.send(Err("malformed challenge post".into()));
                }
            },
        }
    }

    /// Why a change sending a challenge's weights to a mechanism is refused at the door: the
    /// subnet (as the chain thread last read it) has no such mechanism. Checked here, not in
    /// consensus: the count is chain state read at no agreed block, and an owner may add the
    /// mechanism later.
    fn mechanism_refusal(&self, change: &[u8]) -> Option<String> {
        let sc = decode_exact::<crate::registry::SignedChange>(change)?;
        let crate::registry::Change::SetMechanism { mecid, .. } = sc.change else {
            return None;
        };
        let count = self.view.mechanism_count()?;
        (mecid >= count).then(|| {
            format!(
                "refused: the subnet has {count} mechanism(s) (0 to {}); mechanism {mecid} does \
                 not exist",
                count.saturating_sub(1)
            )
        })
    }

    /// Commit the gathered records when the flush window has passed or they are many.
    pub(crate) fn maybe_flush(&mut self) {
        if self.pending.len() >= FLUSH_MAX || self.last_flush.elapsed() >= FLUSH_EVERY {
            self.flush();
        }
    }

    /// Hand the records gathered since the last flush to the writer, to be committed in one
    /// transaction. Called every `FLUSH_EVERY` and before any other store write, so records
    /// land in order.
    pub(crate) fn flush(&mut self) {
        self.last_flush = Instant::now();
        if self.pending.is_empty() {
            return;
        }
        self.writer
            .send(Job::Records(std::mem::take(&mut self.pending)));
    }

    /// Queue a store write after the records gathered so far.
    fn write(&mut self, job: Job) {
        self.flush();
        self.writer.send(job);
    }

    /// Evaluation results: kept for the store with their audit record (committed at the
    /// next flush), their scores to the machine.
    pub(crate) fn engine_results(&mut self, inputs: &mut Vec<Input>) {
        while let Some(r) = self.engine.try_recv() {
            let id = r.result.submission_id;
            let Some((epoch, challenge, input_hash)) = self.inflight.remove(&id) else {
                continue;
            };
            self.load.done(&id, challenge, r.service_nanos);
            self.view.evaluated += 1;
            let canonical = r.result.canonical_bytes();
            let audit = AuditRecord {
                epoch,
                challenge,
                module_hash: r.result.module_hash,
                input_hash,
                submission: id,
                outcome: canonical[120],
                score: r.result.score,
                fuel: r.result.fuel_used,
                host_calls: r
                    .host_calls
                    .0
                    .iter()
                    .fold(0u32, |a, b| a.saturating_add(*b)),
            };
            let score = EvalResult::agreed_score(&canonical);
            self.pending.result(epoch, id, canonical, audit);
            inputs.push(Input::Evaluated { id, score });
        }
        self.load.tick(Instant::now());
        metrics::gauge!(m::OUTSTANDING).set(self.load.outstanding_secs());
        let drain = self.load.drain_secs();
        metrics::gauge!(m::DRAIN).set(drain);
        inputs.push(Input::Drain {
            ms: (drain * 1000.0).min(f64::from(u32::MAX)) as u32,
        });
        while let Some((epoch, s)) = self.backlog.pop_front() {
            if epoch < self.decided_below {
                self.load.forget(&s.id);
                continue;
            }
            let before = self.backlog.len();
            self.submit(epoch, s);
            if self.backlog.len() > before {
                break; // still full
            }
        }
    }

    fn submit(&mut self, epoch: u64, s: platform_engine::Submission) {
        let key = (epoch, s.challenge.id.0, platform_types::sha256(&s.payload));
        let id = s.id;
        match self.engine.submit(s.clone()) {
            Ok(()) => {
                self.inflight.insert(id, key);
            }
            Err(SubmitError::QueueFull { .. } | SubmitError::Saturated { .. })
                if self.backlog.len() < BACKLOG_MAX =>
            {
                self.backlog.push_back((epoch, s));
            }
            Err(SubmitError::QueueFull { .. } | SubmitError::Saturated { .. }) => {
                self.load.forget(&id);
                metrics::counter!(m::INGRESS, "result" => "shed").increment(1);
            }
            Err(e) => {
                self.load.forget(&id);
                tracing::warn!("submission {} not evaluated: {e}", hex::encode(id));
            }
        }
    }

    /// Serve a blob and announce it, without waiting for the DHT.
    pub(crate) fn provide(&self, bytes: Vec<u8>) {
        if let Err(e) = self.net.provide_detached(bytes) {
            tracing::warn!("blob not served: {e}");
        }
    }

    /// Carry out the machine's effects, in order; inputs they produce at once (a challenge
    /// loaded) go straight back.
    pub(crate) fn carry_out(&mut self, machine: &mut Machine<RedbStore>, effects: Vec<Effect>) {
        let mut queue: std::collections::VecDeque<Effect> = effects.into();
        while let Some(e) = queue.pop_front() {
            if let Some(input) = self.effect(e) {
                queue.extend(machine.handle(now_ms(), input));
            }
        }
    }

    fn effect(&mut self, e: Effect) -> Option<Input> {
        match e {
            Effect::Publish { topic, payload } => {
                // Never waits on the net thread; it logs a publication that fails.
                if let Err(err) = self.net.publish_detached(topic, payload) {
                    tracing::warn!(?topic, "not published: {err}");
                }
            }
            Effect::Provide(bytes) => self.provide(bytes),
            Effect::Fetch(hash) => self.fetches.fetch(Instant::now(), hash),
            Effect::ReadRoster { epoch, block } => {
                if self
                    .chain_tx
                    .try_send(ChainJob::Roster { epoch, block })
                    .is_err()
                {
                    tracing::warn!(epoch, "chain thread busy; the roster is asked again");
                }
            }
            Effect::Pinned { epoch, roster } => self.pinned(epoch, roster),
            Effect::RecordSubmission(a) => {
                self.pending.submission(a.epoch, a.id, a.envelope);
            }
            Effect::Evaluate {
                epoch,
                id,
                challenge,
                seed,
                body,
            } => match self.challenges.get(&challenge).cloned() {
                Some(ch) => {
                    self.load.taken(id, challenge);
                    self.submit(
                        epoch,
                        platform_engine::Submission {
                            id,
                            challenge: ch,
                            payload: body.into(),
                            context: EvalContext { epoch, seed },
                        },
                    );
                }
                None => return Some(Input::Evaluated { id, score: None }),
            },
            Effect::StoreBatch {
                epoch,
                author,
                envelope,
            } => self.pending.batch(epoch, author, envelope),
            Effect::StoreModule(bytes) => self.write(Job::Module(bytes)),
            Effect::LoadChallenge(meta) => {
                let ok = self.load_challenge(&meta);
                return Some(Input::ChallengeLoaded { id: meta.id, ok });
            }
            Effect::RetireChallenge(id) => {
                if self.challenges.remove(&id).is_some() {
                    self.engine.retire(ChallengeId(id));
                }
            }
            Effect::Applied(a) => self.applied(*a),
            Effect::StoreSnapshot(snap) => {
                // Announced as held (served from the store once the net's cache evicts it).
                for b in std::iter::once(&snap.manifest).chain(&snap.chunks) {
                    self.provide(b.clone());
                }
                self.write(Job::Snapshot(snap));
            }
            Effect::AskCheckpoint => {
                if let Err(e) = self.net.ask_checkpoint() {
                    tracing::debug!("checkpoint not asked: {e}");
                }
            }
            Effect::Installed(inst) => {
                let snap = &inst.snapshot;
                for b in std::iter::once(&snap.manifest).chain(&snap.chunks) {
                    self.provide(b.clone());
                }
                if let Some(r) = inst.state.epoch_record() {
                    metrics::gauge!(m::COMMITTED_EPOCH).set(inst.state.epoch as f64);
                    self.view.push_history(
                        inst.state.epoch,
                        inst.state.pin.block,
                        &r,
                        Timing::default(),
                    );
                }
                self.write(Job::Install(inst));
            }
            Effect::SubnetBehind(behind) => self.subnet_behind = behind,
            Effect::Horizon(ms) => self.load.set_horizon(Duration::from_millis(ms)),
            Effect::Admit { token, verdict } => {
                let verdict = verdict.map_err(|r| match r {
                    Refusal::NotReady => Reason::Busy,
                    Refusal::EpochClosed => Reason::EpochClosed,
                    Refusal::EpochNotOpen => Reason::EpochNotOpen,
                    Refusal::Unregistered => Reason::UnknownAuthor,
                    Refusal::InactiveChallenge => Reason::InactiveChallenge,
                    Refusal::NotCounted => Reason::NotCounted,
                });
                let _ = self.net.admit(token, verdict);
            }
            Effect::Reply { token, result } => {
                if let Some(tx) = self.replies.remove(&token) {
                    let _ = tx.send(result);
                }
            }
        }
        None
    }

    /// Compile (or load from the artifact cache) an active challenge and warm its pools.
    fn load_challenge(&mut self, meta: &ChallengeMeta) -> bool {
        // The module may have been queued for the store just before.
        self.writer.sync();
        let module = match self.store.module(&meta.module_hash) {
            Ok(Some(m)) => m,
            Ok(None) => {
                tracing::warn!(challenge = meta.id, "module not held yet");
                return false;
            }
            Err(e) => {
                tracing::error!(challenge = meta.id, "module: {e}");
                return false;
            }
        };
        match self.runtime.register(ChallengeSpec {
            id: ChallengeId(meta.id),
            name: meta.name.clone(),
            wasm: module,
            policy: crate::boot::policy_of(meta),
            data: Vec::new(),
        }) {
            Ok(ch) => {
                self.engine.warm(&ch);
                self.challenges.insert(meta.id, ch);
                tracing::info!(challenge = meta.id, name = %meta.name, "challenge active");
                true
            }
            Err(e) => {
                // Deterministic: every validator refuses the same module the same way.
                tracing::error!(challenge = meta.id, "module refused by the engine: {e}");
                false
            }
        }
    }

    /// An epoch's roster is pinned: logged, and the net's door checks follow it (validators
    /// and miners of the two latest pinned epochs).
    fn pinned(&mut self, epoch: u64, roster: Roster) {
        tracing::info!(
            epoch,
            block = roster.pin.block,
            hash = %hex::encode(&roster.pin.hash[..8]),
            validators = %roster
                .validators
                .iter()
                .map(|(k, s)| format!("{}={s}", &ss58_encode(k)[..8]))
                .collect::<Vec<_>>()
                .join(","),
            miners = roster.miners.len(),
            "metagraph pinned"
        );
        self.pinned.insert(epoch, roster);
        while self.pinned.len() > 2 {
            self.pinned.pop_first();
        }
        let validators: HashSet<Hotkey> = self
            .pinned
            .values()
            .flat_map(|r| r.validators.iter().map(|(k, _)| *k))
            .collect();
        for t in [
            Topic::Consensus,
            Topic::Evaluations,
            Topic::Challenges,
            Topic::Batches,
        ] {
            let _ = self.net.set_authors(t, Some(validators.clone()));
        }
        let miners: HashSet<Hotkey> = self
            .pinned
            .values()
            .flat_map(|r| r.miners.keys().copied())
            .collect();
        *self.miners.write().unwrap_or_else(|p| p.into_inner()) = miners;
    }

    /// Epochs below `epoch` are decided: their evaluations not yet run are of no use (the
    /// result is agreed without them) and would only delay the open epochs' — under overload
    /// a validator that fell behind would otherwise stay behind, evaluating submissions of
    /// epochs already decided while the open epoch's go unscored. The engine drops them from
    /// its queues; the backlog and the work held forget them.
    fn drop_decided(&mut self, epoch: u64) {
        if epoch <= self.decided_below {
            return;
        }
        self.decided_below = epoch;
        self.engine.drop_epochs_below(epoch);
        let before = self.inflight.len() + self.backlog.len();
        let load = &mut self.load;
        self.inflight.retain(|id, (e, _, _)| {
            let keep = *e >= epoch;
            if !keep {
                load.forget(id);
            }
            keep
        });
        self.backlog.retain(|(e, s)| {
            let keep = *e >= epoch;
            if !keep {
                load.forget(&s.id);
            }
            keep
        });
        let dropped = before - self.inflight.len() - self.backlog.len();
        if dropped > 0 {
            // Those the engine still held are counted in `platform_engine_dropped_total`.
            tracing::debug!(epoch, dropped, "evaluations of decided epochs given up");
        }
    }

    fn applied(&mut self, mut a: Applied) {
        self.drop_decided(a.epoch + 1);
        // Retention: with epoch `a.epoch` applied, what the store keeps of epochs more than
        // `retain_epochs` before it goes (a bounded amount; the rest at the next epoch).
        let prune_before = (self.retain_epochs > 0 && a.epoch >= self.retain_epochs)
            .then(|| a.epoch + 1 - self.retain_epochs);
        self.write(Job::Applied(Box::new(AppliedJob {
            height: a.height,
            epoch: a.epoch,
            record: parity_scale_codec::Encode::encode(&a.record),
            registry: std::mem::take(&mut a.registry),
            registry_nonce: a.registry_nonce,
            checkpoint: a.checkpoint.take(),
            prune_before,
        })));
        let committed_ms = now_ms();
        if let Some(t) = a.ended_at_ms {
            metrics::histogram!(m::COMMIT_LATENCY)
                .record(committed_ms.saturating_sub(t) as f64 / 1000.0);
        }
        metrics::gauge!(m::COMMITTED_EPOCH).set(a.epoch as f64);
        let timing = Timing {
            ended_ms: a.ended_at_ms,
            committed_ms: a.recent.then_some(committed_ms),
        };
        self.view
            .push_history(a.epoch, a.pin.block, &a.record, timing);
        // Weights for a recent epoch go to the chain; replayed history does not.
        if a.recent {
            // Mechanism 0's always (an empty set is reported as such); each other
            // mechanism's where a challenge sent it weights.
            let per_mechanism = std::iter::once((0u8, &a.record.weights))
                .chain(a.record.mechanism_weights.iter().map(|(m, w)| (*m, w)));
            for (mecid, weights) in per_mechanism {
                let (uids, w): (Vec<u16>, Vec<u64>) = weights.iter().copied().unzip();
                let job = ChainJob::Weights(WeightsJob {
                    epoch: a.epoch,
                    mecid,
                    uids,
                    weights: w,
                });
                if self.chain_tx.try_send(job).is_err() {
                    tracing::warn!(
                        epoch = a.epoch,
                        mecid,
                        "chain thread busy; weights not queued"
                    );
                }
            }
        }
    }

    pub(crate) fn publish_status(&mut self, machine: &Machine<RedbStore>) {
        // Read from the net's counters: the application thread never waits on the net.
        let peers = usize::try_from(self.net.stats().peers).unwrap_or(usize::MAX);
        self.view.publish(
            machine,
            &self.net,
            peers,
            self.engine.outstanding(),
            self.backlog.len(),
            &self.challenges.keys().copied().collect(),
        );
        let vc = machine.view_changes();
        if vc > self.view.view_changes {
            metrics::counter!(m::VIEW_CHANGES).increment(vc - self.view.view_changes);
            self.view.view_changes = vc;
        }
        metrics::gauge!(m::HEIGHT).set(machine.height() as f64);
        metrics::gauge!(m::VIEW).set(machine.view() as f64);
        if let Ok(rows) = self.store.row_counts() {
            for (table, n) in rows {
                metrics::gauge!(m::STORE_ROWS, "table" => table).set(n as f64);
            }
        }
        if let Some(e) = machine.current_epoch() {
            metrics::gauge!(m::EPOCH).set(e as f64);
        }
    }
}
