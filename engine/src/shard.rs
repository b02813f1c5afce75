//! The sharded engine: one glommio executor per core, each owning its queue, its pools of
//! pre-instantiated instances (per challenge) and its metrics handles. Callers on any thread
//! `submit` (routed by submission id; a full queue is an error value) and read reports from
//! one bounded channel whose capacity covers everything admitted, so a shard never blocks.
//! A shard moves what its queue holds into its scheduler (`sched`), which picks the next
//! evaluation: the oldest epoch's first, and within it the challenge that has had the least
//! of the shard's time. A caller that no longer needs an epoch's evaluations says so
//! (`drop_epochs_below`): the shards drop them unevaluated instead of spending cores on them.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use glommio::sync::Semaphore;
use glommio::{Latency, LocalExecutorPoolBuilder, PoolPlacement, PoolThreadHandles, Shares};

use crate::eval::{self, Prepared, Submission};
use crate::metrics as m;
use crate::queue::Inbox;
use crate::result::{ChallengeId, EvalReport, Outcome};
use crate::runtime::{Challenge, EngineError, Runtime};
use crate::sched::{Charge, Sched};

/// Why a submission was not accepted. The caller sees backpressure; nothing is queued.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SubmitError {
    /// The shard this submission routes to has `queue_depth_max` jobs waiting.
    #[error("shard {shard} queue is full")]
    QueueFull {
        /// The shard.
        shard: usize,
    },
    /// Reports are waiting to be read up to the admission limit; read some first.
    #[error("{outstanding} evaluations outstanding; read results before submitting more")]
    Saturated {
        /// Admitted but not yet read.
        outstanding: usize,
    },
    /// The payload exceeds the challenge's `input_max_bytes`.
    #[error("payload of {len} bytes exceeds the challenge limit of {max}")]
    PayloadTooLarge {
        /// Payload size.
        len: usize,
        /// Policy limit.
        max: u64,
    },
    /// The engine is shutting down.
    #[error("engine is shutting down")]
    ShuttingDown,
}

impl SubmitError {
    fn reason(&self) -> &'static str {
        match self {
            SubmitError::QueueFull { .. } => "queue_full",
            SubmitError::Saturated { .. } => "saturated",
            SubmitError::PayloadTooLarge { .. } => "payload_too_large",
            SubmitError::ShuttingDown => "shutting_down",
        }
    }
}

enum Control {
    Warm(Arc<Challenge>),
    Retire(ChallengeId),
}

struct Shared {
    rt: Runtime,
    jobs: Vec<Inbox<Submission>>,
    control: Vec<Inbox<Control>>,
    results: crossbeam_channel::Sender<EvalReport>,
    next_shard_index: AtomicUsize,
    /// Evaluations admitted whose reports have not been read (or that were dropped).
    outstanding: AtomicUsize,
    /// Queued evaluations of epochs below this are dropped, not run.
    epochs_below: AtomicU64,
}

/// Handle to the running shards. Dropping it shuts them down after draining their queues.
pub struct ShardedEngine {
    shared: Arc<Shared>,
    results: crossbeam_channel::Receiver<EvalReport>,
    outstanding_max: usize,
    handles: Option<PoolThreadHandles<()>>,
}

impl std::fmt::Debug for ShardedEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardedEngine")
            .field("shards", &self.shards())
            .field("outstanding", &self.outstanding())
            .finish_non_exhaustive()
    }
}

impl ShardedEngine {
    /// Start one executor per configured shard.
    pub fn start(rt: Runtime) -> Result<ShardedEngine, EngineError> {
        let cfg = rt.config().clone();
        let shards = cfg.shards;
        let outstanding_max = cfg.outstanding_max();
        let (tx, rx) = crossbeam_channel::bounded(outstanding_max);
        let shared = Arc::new(Shared {
            rt,
            jobs: (0..shards)
                .map(|_| Inbox::new(cfg.raw.queue_depth_max))
                .collect(),
            control: (0..shards).map(|_| Inbox::new(1024)).collect(),
            results: tx,
            next_shard_index: AtomicUsize::new(0),
            outstanding: AtomicUsize::new(0),
            epochs_below: AtomicU64::new(0),
        });
        let placement = |pin: bool| {
            if pin {
                PoolPlacement::MaxSpread(shards, None)
            } else {
                PoolPlacement::Unbound(shards)
            }
        };
        let spawn = |placement: PoolPlacement| {
            let s = shared.clone();
            LocalExecutorPoolBuilder::new(placement)
                .name("platform-shard")
                .io_memory(cfg.raw.io_memory_bytes)
                .on_all_shards(move || shard_main(s))
        };
        let handles = match spawn(placement(cfg.raw.pin_shards)) {
            Ok(h) => h,
            Err(e) if cfg.raw.pin_shards => {
                tracing::warn!(error = %e, "could not pin shards to CPUs; running them unpinned");
                shared.next_shard_index.store(0, Ordering::SeqCst);
                spawn(placement(false)).map_err(|e| EngineError::Shards(e.to_string()))?
            }
            Err(e) => return Err(EngineError::Shards(e.to_string())),
        };
        Ok(ShardedEngine {
            shared,
            results: rx,
            outstanding_max,
            handles: Some(handles),
        })
    }

    /// Number of shards.
    pub fn shards(&self) -> usize {
        self.shared.jobs.len()
    }

    /// Evaluations admitted whose reports have not been read yet.
    pub fn outstanding(&self) -> usize {
        self.shared.outstanding.load(Ordering::Acquire)
    }

    /// The shard a submission id routes to.
    pub fn route(&self, sub: &Submission) -> usize {
        let key = u64::from_le_bytes(sub.id[..8].try_into().expect("32-byte id"));
        (key % self.shards() as u64) as usize
    }

    /// Queue a submission on its shard. Never blocks; a full queue is an error value.
    pub fn submit(&self, sub: Submission) -> Result<(), SubmitError> {
        let res = self.try_submit(sub);
        if let Err(e) = &res {
            metrics::counter!(m::SUBMISSIONS_REJECTED, "reason" => e.reason()).increment(1);
        }
        res
    }

    fn try_submit(&self, sub: Submission) -> Result<(), SubmitError> {
        let max = sub.challenge.policy.input_max_bytes;
        if sub.payload.len() as u64 > max {
            return Err(SubmitError::PayloadTooLarge {
                len: sub.payload.len(),
                max,
            });
        }
        let admitted = self.shared.outstanding.fetch_add(1, Ordering::AcqRel);
        if admitted >= self.outstanding_max {
            self.shared.outstanding.fetch_sub(1, Ordering::AcqRel);
            return Err(SubmitError::Saturated {
                outstanding: admitted,
            });
        }
        let shard = self.route(&sub);
        if self.shared.jobs[shard].push(sub).is_err() {
            self.shared.outstanding.fetch_sub(1, Ordering::AcqRel);
            return Err(if self.handles.is_none() {
                SubmitError::ShuttingDown
            } else {
                SubmitError::QueueFull { shard }
            });
        }
        Ok(())
    }

    /// Evaluations of epochs below `epoch` (`EvalContext::epoch`) are no longer wanted:
    /// those still queued are dropped when a shard reaches them — no report, counted in
    /// `platform_engine_dropped_total` — and later submissions of such epochs too. Ones
    /// already running finish and report. The mark only rises.
    pub fn drop_epochs_below(&self, epoch: u64) {
        self.shared.epochs_below.fetch_max(epoch, Ordering::AcqRel);
    }

    /// Fill every shard's pool for `challenge` ahead of its first submission.
    pub fn warm(&self, challenge: &Arc<Challenge>) {
        self.broadcast_control(|| Control::Warm(challenge.clone()));
    }

    /// Drop every shard's pool for a challenge (deactivated or retired).
    pub fn retire(&self, id: ChallengeId) {
        self.broadcast_control(|| Control::Retire(id));
    }

    /// Deliver a control message to every shard. Control queues are drained promptly and
    /// messages are rare, so a full queue is waited out rather than reported.
    fn broadcast_control(&self, make: impl Fn() -> Control) {
        for inbox in &self.shared.control {
            let mut msg = make();
            while let Err(back) = inbox.push(msg) {
                msg = back;
                std::thread::yield_now();
            }
        }
    }

    fn took(&self, r: Option<EvalReport>) -> Option<EvalReport> {
        if r.is_some() {
            self.shared.outstanding.fetch_sub(1, Ordering::AcqRel);
        }
        r
    }

    /// Next report, waiting up to `timeout`.
    pub fn recv_timeout(&self, timeout: Duration) -> Option<EvalReport> {
        self.took(self.results.recv_timeout(timeout).ok())
    }

    /// Next report if one is ready.
    pub fn try_recv(&self) -> Option<EvalReport> {
        self.took(self.results.try_recv().ok())
    }

    /// Stop accepting, let the shards drain their queues, and join them.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let Some(handles) = self.handles.take() else {
            return;
        };
        for inbox in &self.shared.jobs {
            inbox.close();
        }
        for inbox in &self.shared.control {
            inbox.close();
        }
        for r in handles.join_all() {
            if let Err(e) = r {
                tracing::error!(error = %e, "shard exited with an error");
            }
        }
    }
}

impl Drop for ShardedEngine {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Per-challenge metric handles, registered once per shard.
struct ChallengeMetrics {
    by_outcome: BTreeMap<&'static str, metrics::Counter>,
    duration: metrics::Histogram,
    fuel: metrics::Counter,
}

impl ChallengeMetrics {
    fn new(id: ChallengeId) -> Self {
        let label = id.to_string();
        let by_outcome = Outcome::LABELS
            .iter()
            .map(|o| (*o, metrics::counter!(m::EVALUATIONS, "challenge" => label.clone(), "outcome" => *o)))
            .collect();
        ChallengeMetrics {
            by_outcome,
            duration: metrics::histogram!(m::EVALUATION_DURATION, "challenge" => label.clone()),
            fuel: metrics::counter!(m::FUEL_CONSUMED, "challenge" => label),
        }
    }
}

struct Pool {
    challenge: Arc<Challenge>,
    ready: VecDeque<Prepared>,
    /// The shard's use clock when this pool last served an evaluation (0: never). The
    /// ready budget goes to the most recently used pools.
    last_used: u64,
    /// Instantiation fails for this module (e.g. its start function traps): stop making
    /// instances ahead of time; each evaluation instantiates inline and records the outcome.
    failing: bool,
    /// Make instances for the sync path. Cleared when an evaluation needed more than a
    /// slice (it started over on the async path); set again when one fits in a slice.
    sync: bool,
    metrics: ChallengeMetrics,
}

struct Shard {
    index: usize,
    /// The wasmtime engine this shard instantiates on.
    lane: usize,
    shared: Arc<Shared>,
    pools: RefCell<BTreeMap<ChallengeId, Pool>>,
    /// Jobs taken from the queue, waiting for a permit.
    sched: RefCell<Sched<Submission>>,
    refill: LocalSender<()>,
    stopping: Cell<bool>,
    /// Ready instances this shard may hold across all its pools: `challenges_max ×
    /// instances_ready_per_challenge`, the share of the instance slots sized for it.
    ready_budget: usize,
    /// Advances on every evaluation; stamps `Pool::last_used`.
    uses: Cell<u64>,
    released_counter: metrics::Counter,
    ready_gauge: metrics::Gauge,
    queue_gauge: metrics::Gauge,
    inline_counter: metrics::Counter,
}

impl Shard {
    fn ready_total(&self) -> usize {
        self.pools.borrow().values().map(|p| p.ready.len()).sum()
    }

    fn update_gauges(&self) {
        self.ready_gauge.set(self.ready_total() as f64);
        let queued = self.shared.jobs[self.index].len() + self.sched.borrow().len();
        self.queue_gauge.set(queued as f64);
    }

    /// Make sure a pool exists for this exact module; replace one for an older module.
    fn ensure_pool(&self, challenge: &Arc<Challenge>) {
        let mut pools = self.pools.borrow_mut();
        let stale = pools
            .get(&challenge.id)
            .is_some_and(|p| p.challenge.module_hash != challenge.module_hash);
        if stale || !pools.contains_key(&challenge.id) {
            pools.insert(
                challenge.id,
                Pool {
                    challenge: challenge.clone(),
                    ready: VecDeque::new(),
                    last_used: 0,
                    failing: false,
                    sync: true,
                    metrics: ChallengeMetrics::new(challenge.id),
                },
            );
        }
    }

    fn take_ready(&self, challenge: &Arc<Challenge>) -> Option<Prepared> {
        self.ensure_pool(challenge);
        let now = self.uses.get() + 1;
        self.uses.set(now);
        let taken = self
            .pools
            .borrow_mut()
            .get_mut(&challenge.id)
            .and_then(|p| {
                p.last_used = now;
                p.ready.pop_front()
            });
        let _ = self.refill.try_send(());
        taken
    }

    /// The next pool to refill: the most recently used one below `depth`. When the shard's
    /// ready budget is spent, one ready instance of a colder pool is released to make room;
    /// when no pool is colder, nothing is refilled.
    fn next_refill(&self, depth: usize) -> Option<Arc<Challenge>> {
        let mut pools = self.pools.borrow_mut();
        let (id, hot) = pools
            .iter()
            .filter(|(_, p)| !p.failing && p.ready.len() < depth)
            .max_by_key(|(_, p)| p.last_used)
            .map(|(id, p)| (*id, p.last_used))?;
        let total: usize = pools.values().map(|p| p.ready.len()).sum();
        if total >= self.ready_budget {
            let cold = pools
                .iter_mut()
                .filter(|(other, p)| **other != id && !p.ready.is_empty() && p.last_used < hot)
                .min_by_key(|(_, p)| p.last_used)?;
            // Dropping the store frees its instance slot at once.
            drop(cold.1.ready.pop_back());
            self.released_counter.increment(1);
        }
        pools.get(&id).map(|p| p.challenge.clone())
    }

    /// Release one ready instance of the least recently used pool other than `except`, so
    /// an inline instantiation that found no free slot can try again. False if none is held.
    fn release_coldest(&self, except: ChallengeId) -> bool {
        let mut pools = self.pools.borrow_mut();
        let Some((_, pool)) = pools
            .iter_mut()
            .filter(|(id, p)| **id != except && !p.ready.is_empty())
            .min_by_key(|(_, p)| p.last_used)
        else {
            return false;
        };
        drop(pool.ready.pop_back());
        self.released_counter.increment(1);
        true
    }

    /// Put a freshly made instance in its pool. Returns false when refilling should pause
    /// (a local resource failure); a deterministic failure marks the pool as failing.
    fn store_prepared(
        &self,
        challenge: &Arc<Challenge>,
        made: Result<Prepared, eval::PrepareFailed>,
    ) -> bool {
        let mut pools = self.pools.borrow_mut();
        // Retired or replaced while we were instantiating: drop the instance.
        let Some(pool) = pools
            .get_mut(&challenge.id)
            .filter(|p| p.challenge.module_hash == challenge.module_hash)
        else {
            return true;
        };
        match made {
            Ok(p) => pool.ready.push_back(p),
            // Deterministic failure (e.g. the start function traps): every instance would
            // fail the same way, so stop making them.
            Err(f) if f.outcome.is_deterministic() => pool.failing = true,
            // Local resource trouble (pool slots exhausted): try again on the next signal.
            Err(_) => return false,
        }
        true
    }

    /// Which path this challenge's next instances are made for.
    fn sync_mode(&self, id: ChallengeId) -> bool {
        self.pools.borrow().get(&id).is_none_or(|p| p.sync)
    }

    fn record(&self, report: &EvalReport) {
        let mut pools = self.pools.borrow_mut();
        if let Some(pool) = pools.get_mut(&report.result.challenge_id) {
            let slice = self.shared.rt.config().raw.fuel_yield_interval;
            pool.sync = report.sync || report.result.fuel_used < slice;
            if let Some(c) = pool.metrics.by_outcome.get(report.result.outcome.as_str()) {
                c.increment(1);
            }
            pool.metrics
                .duration
                .record(report.service_nanos as f64 / 1e9);
            pool.metrics.fuel.increment(report.result.fuel_used);
        }
        for (f, n) in report.host_calls.used() {
            metrics::counter!(m::HOST_CALLS, "function" => f.import_name()).increment(u64::from(n));
        }
        if !report.pooled_instance {
            self.inline_counter.increment(1);
        }
    }
}

async fn shard_main(shared: Arc<Shared>) {
    let index = shared.next_shard_index.fetch_add(1, Ordering::SeqCst);
    let cfg = shared.rt.config().raw.clone();
    let (refill_tx, refill_rx) = local_channel::new_bounded(1);
    let label = index.to_string();
    let shard = Rc::new(Shard {
        index,
        lane: shared.rt.config().engine_of(index),
        shared: shared.clone(),
        pools: RefCell::new(BTreeMap::new()),
        sched: RefCell::new(Sched::new()),
        refill: refill_tx,
        stopping: Cell::new(false),
        ready_budget: cfg.challenges_max * cfg.instances_ready_per_challenge,
        uses: Cell::new(0),
        released_counter: metrics::counter!(m::POOL_RELEASED, "shard" => label.clone()),
        ready_gauge: metrics::gauge!(m::POOL_READY, "shard" => label.clone()),
        queue_gauge: metrics::gauge!(m::QUEUE_DEPTH, "shard" => label.clone()),
        inline_counter: metrics::counter!(m::INLINE_INSTANTIATIONS, "shard" => label),
    });
    let ex = glommio::executor();
    // Evaluations get most of the core; refills run in the gaps, off the critical path.
    let tq_eval = ex.create_task_queue(Shares::Static(1000), Latency::NotImportant, "eval");
    let tq_background = ex.create_task_queue(Shares::Static(200), Latency::NotImportant, "refill");

    let refill_task = glommio::spawn_local_into(
        refill_loop(shard.clone(), refill_rx, cfg.instances_ready_per_challenge),
        tq_background,
    )
    .expect("task queue exists");
    let control_task = glommio::spawn_local_into(control_loop(shard.clone()), tq_background)
        .expect("task queue exists");

    let dropped = metrics::counter!(m::DROPPED, "shard" => index.to_string());
    let in_flight = cfg.in_flight_per_shard as u64;
    let permits = Rc::new(Semaphore::new(in_flight));
    loop {
        let permit = permits
            .acquire_static_permit(1)
            .await
            .expect("semaphore is never closed");
        let Some((sub, charge)) = next_job(&shard, &dropped).await else {
            break;
        };
        let s = shard.clone();
        glommio::spawn_local_into(
            async move {
                run_job(&s, sub, charge).await;
                drop(permit);
            },
            tq_eval,
        )
        .expect("task queue exists")
        .detach();
    }
    // Drain: every admitted job reports before the shard exits.
    permits
        .acquire(in_flight)
        .await
        .expect("semaphore is never closed");
    control_task.await;
    shard.stopping.set(true);
    // If the signal slot is already full the loop wakes anyway and sees `stopping`.
    let _ = shard.refill.try_send(());
    refill_task.await;
}

/// The next job to run: everything queued moves to the scheduler, which picks; when it holds
/// nothing, wait for the queue. `None` once the queue is closed and everything is taken.
async fn next_job(shard: &Shard, dropped: &metrics::Counter) -> Option<(Submission, Charge)> {
    let shared = &shard.shared;
    let inbox = &shared.jobs[shard.index];
    loop {
        let picked = {
            let mut sched = shard.sched.borrow_mut();
            while let Some(job) = inbox.try_pop() {
                sched.push(job);
            }
            sched.pop(shared.epochs_below.load(Ordering::Acquire), |_| {
                shared.outstanding.fetch_sub(1, Ordering::AcqRel);
                dropped.increment(1);
            })
        };
        if picked.is_some() {
            return picked;
        }
        let job = inbox.pop().await?;
        shard.sched.borrow_mut().push(job);
    }
}

async fn run_job(shard: &Shard, sub: Submission, charge: Charge) {
    let start = Instant::now();
    let rt = &shard.shared.rt;
    let (prepared, pooled) = match shard.take_ready(&sub.challenge) {
        Some(p) => (Ok(p), true),
        None => (prepare_inline(shard, &sub.challenge).await, false),
    };
    let ran = eval::run(rt, shard.lane, prepared, &sub).await;
    let nanos = eval::nanos_since(start);
    shard.sched.borrow_mut().took(charge, nanos);
    let report = eval::report(ran, shard.index, nanos, pooled);
    shard.record(&report);
    // Capacity covers every admitted job, so this only fails if the receiver is gone.
    let _ = shard.shared.results.try_send(report);
    shard.update_gauges();
}

/// Instantiate for one evaluation. The ready budget leaves slots for every evaluation in
/// flight, so a local failure (no free slot: other users of the runtime, or instances being
/// dropped) is met by releasing cold ready instances and trying again, never by aborting
/// while this shard still holds any.
async fn prepare_inline(
    shard: &Shard,
    challenge: &Arc<Challenge>,
) -> Result<Prepared, eval::PrepareFailed> {
    loop {
        let sync = shard.sync_mode(challenge.id);
        match eval::prepare_any(&shard.shared.rt, shard.lane, challenge, sync).await {
            Err(f) if !f.outcome.is_deterministic() && shard.release_coldest(challenge.id) => {}
            made => return made,
        }
    }
}

async fn refill_loop(shard: Rc<Shard>, signal: LocalReceiver<()>, depth: usize) {
    while signal.recv().await.is_some() && !shard.stopping.get() {
        while !shard.stopping.get() {
            // Pick one pool below its depth; never hold the borrow across an await.
            let Some(challenge) = shard.next_refill(depth) else {
                break;
            };
            let sync = shard.sync_mode(challenge.id);
            let made = eval::prepare_any(&shard.shared.rt, shard.lane, &challenge, sync).await;
            if !shard.store_prepared(&challenge, made) {
                break;
            }
            shard.update_gauges();
            glommio::yield_if_needed().await;
        }
    }
}

async fn control_loop(shard: Rc<Shard>) {
    while let Some(msg) = shard.shared.control[shard.index].pop().await {
        match msg {
            Control::Warm(challenge) => {
                shard.ensure_pool(&challenge);
                let _ = shard.refill.try_send(());
            }
            Control::Retire(id) => {
                shard.pools.borrow_mut().remove(&id);
                shard.sched.borrow_mut().forget(id);
            }
        }
        shard.update_gauges();
    }
}
