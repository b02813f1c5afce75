//! One evaluation: prepare a fresh instance (store + instantiate, start function included),
//! copy the payload in, call `platform_evaluate`, read and check the output, and map every
//! failure to an [`Outcome`]. An instance serves exactly one evaluation.
//!
//! Two paths give identical results. The sync path runs instantiation and the calls on the
//! caller's stack with the store's fuel capped at one yield slice (`fuel_yield_interval`),
//! so it holds its shard no longer than a yielding evaluation would and pays no fiber
//! switch. An evaluation that needs more than a slice is dropped and starts again from a
//! fresh instance on the async path, which yields to its shard every slice. Fuel is
//! carried over exactly, so `fuel_used` is the same on either path.
//!
//! The wall-clock deadline (a safety net, never a score) is checked where the async path
//! yields, once per slice (`within`), and at every host call (a host charge refills the
//! slice, so a guest looping on one may never yield): fuel prices every operator, bulk
//! memory by the byte and host calls by the byte they touch, so a slice is bounded in time
//! and a guest cannot run far past its deadline. No epoch checks are compiled into guest
//! code.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::{Memory, Store};

use crate::abi::Exports;
use crate::host::{DeadlinePassed, EvalContext, HostState, HostTrap, MemoryLimitHit};
use crate::result::{EvalReport, EvalResult, Hash32, Outcome, SCORE_SCALE, TrapKind};
use crate::runtime::{Challenge, ChallengeLane, Runtime};

/// Nanoseconds since `start`, saturating (local timing facts for reports).
pub(crate) fn nanos_since(start: std::time::Instant) -> u64 {
    u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// A submission to evaluate.
#[derive(Clone, Debug)]
pub struct Submission {
    /// Identity of the submission (caller-defined; e.g. sha256 of the signed submission).
    pub id: Hash32,
    /// The challenge that scores it.
    pub challenge: Arc<Challenge>,
    /// The miner's payload.
    pub payload: Arc<[u8]>,
    /// Agreed context the guest may read.
    pub context: EvalContext,
}

impl Submission {
    /// Convenience: a submission whose id is the sha256 of its payload.
    pub fn new(
        challenge: Arc<Challenge>,
        payload: impl Into<Arc<[u8]>>,
        context: EvalContext,
    ) -> Submission {
        let payload = payload.into();
        let id = Sha256::digest(&payload).into();
        Submission {
            id,
            challenge,
            payload,
            context,
        }
    }
}

/// A fresh instance, made ahead of time, waiting for its one evaluation.
pub(crate) struct Prepared {
    store: Store<HostState>,
    exports: Exports,
    /// Made on the sync path (no fuel yields configured): its evaluation runs there first.
    sync: bool,
}

/// Instantiation failed: the evaluation that needs this instance gets `outcome`.
pub(crate) struct PrepareFailed {
    store: Store<HostState>,
    pub outcome: Outcome,
}

pub(crate) fn new_store(
    engine: &wasmtime::Engine,
    challenge: &Challenge,
    lane: usize,
    yield_interval: Option<u64>,
) -> Store<HostState> {
    let policy = &challenge.policy;
    let memory_limit = usize::try_from(policy.memory_limit_bytes).unwrap_or(usize::MAX);
    let log_max = usize::try_from(policy.log_max_bytes).unwrap_or(usize::MAX);
    let mut store = Store::new(
        engine,
        HostState::new(
            challenge.lane(lane).data.clone(),
            memory_limit,
            log_max,
            deadline_from_now(policy.deadline),
        ),
    );
    store.limiter(|s| s);
    // Fuel is enabled on every engine we build except the benchmark's unmetered baseline
    // (which never asks for yields), so only that one can fail here.
    let metered = store.set_fuel(policy.fuel_limit).is_ok();
    debug_assert!(metered || yield_interval.is_none());
    if yield_interval.is_some() {
        store
            .fuel_async_yield_interval(yield_interval)
            .expect("fuel metering is enabled");
    }
    store
}

/// When an evaluation (or an instantiation) started now must give up.
pub(crate) fn deadline_from_now(limit: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(limit).unwrap_or(now)
}

/// Drive a wasmtime async call, which hands control back to its executor at every fuel
/// slice, until it finishes or a slice ends past `deadline` (`Timeout`; dropping the call
/// unwinds the guest). The clock is read only at those yields.
async fn within<T>(
    deadline: Instant,
    call: impl Future<Output = wasmtime::Result<T>>,
) -> Result<wasmtime::Result<T>, Outcome> {
    let mut call = pin!(call);
    std::future::poll_fn(|cx| match call.as_mut().poll(cx) {
        Poll::Ready(r) => Poll::Ready(Ok(r)),
        Poll::Pending if Instant::now() >= deadline => Poll::Ready(Err(Outcome::Timeout)),
        Poll::Pending => Poll::Pending,
    })
    .await
}

/// Instantiate on the async path (pooled engine, fuel yields).
pub(crate) async fn prepare(
    rt: &Runtime,
    lane: usize,
    challenge: &Challenge,
) -> Result<Prepared, PrepareFailed> {
    let mut store = new_store(
        rt.engine(lane),
        challenge,
        lane,
        Some(rt.config().raw.fuel_yield_interval),
    );
    let deadline = store.data().deadline;
    let made = within(
        deadline,
        challenge.lane(lane).pre.instantiate_async(&mut store),
    )
    .await;
    let instance = match made {
        Ok(Ok(i)) => i,
        Ok(Err(e)) => {
            let outcome = classify(&store, &e);
            return Err(PrepareFailed { store, outcome });
        }
        Err(outcome) => return Err(PrepareFailed { store, outcome }),
    };
    ready(store, &instance, challenge.lane(lane), false)
}

/// A made instance with its ABI exports resolved, for the path `sync` says.
fn ready(
    mut store: Store<HostState>,
    instance: &wasmtime::Instance,
    challenge: &ChallengeLane,
    sync: bool,
) -> Result<Prepared, PrepareFailed> {
    match Exports::resolve(&mut store, instance, &challenge.abi) {
        Ok(exports) => Ok(Prepared {
            store,
            exports,
            sync,
        }),
        Err(outcome) => Err(PrepareFailed { store, outcome }),
    }
}

/// The most fuel one synchronous step may burn: the slice between two yields.
fn slice(rt: &Runtime) -> u64 {
    rt.config().raw.fuel_yield_interval
}

/// Cap the store's fuel at one slice; returns (fuel the evaluation has left, the cap), or
/// `None` on an unmetered benchmark runtime.
fn cap_fuel(rt: &Runtime, store: &mut Store<HostState>) -> Option<(u64, u64)> {
    let remaining = store.get_fuel().ok()?;
    let cap = remaining.min(slice(rt));
    store.set_fuel(cap).ok()?;
    Some((remaining, cap))
}

/// Undo `cap_fuel`: what the step used comes off what the evaluation had left, exactly as
/// if it had run uncapped. True when the step ran out of its slice, not of its fuel.
fn uncap_fuel(store: &mut Store<HostState>, capped: Option<(u64, u64)>, out_of_fuel: bool) -> bool {
    let Some((remaining, cap)) = capped else {
        return false;
    };
    let used = cap.saturating_sub(store.get_fuel().unwrap_or(0));
    let _ = store.set_fuel(remaining.saturating_sub(used));
    out_of_fuel && cap < remaining
}

/// Instantiate on the sync path. `None` when the start function needs more than a slice
/// of fuel (the async path must make this instance).
pub(crate) fn prepare_sync(
    rt: &Runtime,
    lane: usize,
    challenge: &Challenge,
) -> Option<Result<Prepared, PrepareFailed>> {
    let mut store = new_store(rt.engine(lane), challenge, lane, None);
    let capped = cap_fuel(rt, &mut store);
    let made = challenge.lane(lane).pre.instantiate(&mut store);
    let made = made.map_err(|e| classify(&store, &e));
    if uncap_fuel(
        &mut store,
        capped,
        made.as_ref().err() == Some(&Outcome::OutOfFuel),
    ) {
        return None;
    }
    let instance = match made {
        Ok(i) => i,
        Err(outcome) => return Some(Err(PrepareFailed { store, outcome })),
    };
    Some(ready(store, &instance, challenge.lane(lane), true))
}

/// Instantiate on the sync path when `sync` is asked for and the start function fits in a
/// slice, else on the async path.
pub(crate) async fn prepare_any(
    rt: &Runtime,
    lane: usize,
    challenge: &Challenge,
    sync: bool,
) -> Result<Prepared, PrepareFailed> {
    if sync && let Some(made) = prepare_sync(rt, lane, challenge) {
        return made;
    }
    prepare(rt, lane, challenge).await
}

/// A finished evaluation: the result, its store, and whether it ran on the sync path.
pub(crate) struct Ran {
    pub result: EvalResult,
    pub store: Store<HostState>,
    pub sync: bool,
}

/// Run one evaluation on a prepared instance (or report why preparing failed). A sync
/// instance whose evaluation needs more than a slice starts again on the async path.
pub(crate) async fn run(
    rt: &Runtime,
    lane: usize,
    prepared: Result<Prepared, PrepareFailed>,
    sub: &Submission,
) -> Ran {
    let meta = Meta::of(sub);
    let failed = |f: PrepareFailed| Ran {
        result: finish(&f.store, &meta, Err(f.outcome)),
        store: f.store,
        sync: false,
    };
    let mut p = match prepared {
        Ok(p) => p,
        Err(f) => return failed(f),
    };
    // The instance may have waited in the pool: the deadline counts from now, and stays
    // when a sync attempt starts over on the async path.
    let deadline = deadline_from_now(sub.challenge.policy.deadline);
    if p.sync {
        match run_sync(rt, p, sub, &meta, deadline) {
            Some(ran) => return ran,
            None => match prepare(rt, lane, &sub.challenge).await {
                Ok(again) => p = again,
                Err(f) => return failed(f),
            },
        }
    }
    set_context(&mut p.store, sub, deadline);
    let output = call_async(&mut p, &sub.payload).await;
    Ran {
        result: finish(&p.store, &meta, output),
        store: p.store,
        sync: false,
    }
}

/// The evaluation on the sync path; `None` if it needs more than the slice it has.
fn run_sync(
    rt: &Runtime,
    mut p: Prepared,
    sub: &Submission,
    meta: &Meta<'_>,
    deadline: Instant,
) -> Option<Ran> {
    set_context(&mut p.store, sub, deadline);
    let capped = cap_fuel(rt, &mut p.store);
    let output = call_sync(&mut p, &sub.payload);
    if uncap_fuel(&mut p.store, capped, output == Err(Outcome::OutOfFuel)) {
        return None;
    }
    Some(Ran {
        result: finish(&p.store, meta, output),
        store: p.store,
        sync: true,
    })
}

/// Hand the instance its submission and the evaluation's deadline.
pub(crate) fn set_context(store: &mut Store<HostState>, sub: &Submission, deadline: Instant) {
    let state = store.data_mut();
    state.submission_id = sub.id;
    state.ctx = sub.context;
    state.deadline = deadline;
}

/// What a result needs to know about its submission and challenge.
pub(crate) struct Meta<'a> {
    pub submission_id: Hash32,
    pub challenge_id: crate::result::ChallengeId,
    pub module_hash: Hash32,
    pub policy: &'a crate::config::ChallengePolicy,
}

impl<'a> Meta<'a> {
    fn of(sub: &'a Submission) -> Meta<'a> {
        Meta {
            submission_id: sub.id,
            challenge_id: sub.challenge.id,
            module_hash: sub.challenge.module_hash,
            policy: &sub.challenge.policy,
        }
    }
}

async fn call_async(p: &mut Prepared, payload: &[u8]) -> Result<Vec<u8>, Outcome> {
    let deadline = p.store.data().deadline;
    let len = i32::try_from(payload.len()).map_err(|_| Outcome::InvalidOutput)?;
    let ptr = match within(deadline, p.exports.alloc.call_async(&mut p.store, len)).await? {
        Ok(ptr) => ptr,
        Err(e) => return Err(classify(&p.store, &e)),
    };
    write_input(&mut p.store, p.exports.memory, ptr, payload)?;
    let start = std::time::Instant::now();
    let evaluate = p.exports.evaluate.call_async(&mut p.store, (ptr, len));
    let called = within(deadline, evaluate).await;
    p.store.data_mut().call_nanos = nanos_since(start);
    let called = called?;
    match called {
        Ok(packed) => read_output(&p.store, p.exports.memory, packed),
        Err(e) => Err(classify(&p.store, &e)),
    }
}

fn call_sync(p: &mut Prepared, payload: &[u8]) -> Result<Vec<u8>, Outcome> {
    let len = i32::try_from(payload.len()).map_err(|_| Outcome::InvalidOutput)?;
    let ptr = match p.exports.alloc.call(&mut p.store, len) {
        Ok(ptr) => ptr,
        Err(e) => return Err(classify(&p.store, &e)),
    };
    write_input(&mut p.store, p.exports.memory, ptr, payload)?;
    let start = std::time::Instant::now();
    let called = p.exports.evaluate.call(&mut p.store, (ptr, len));
    p.store.data_mut().call_nanos = nanos_since(start);
    match called {
        Ok(packed) => read_output(&p.store, p.exports.memory, packed),
        Err(e) => Err(classify(&p.store, &e)),
    }
}

pub(crate) fn write_input(
    store: &mut Store<HostState>,
    memory: Memory,
    ptr: i32,
    payload: &[u8],
) -> Result<(), Outcome> {
    let start = u32::try_from(ptr).map_err(|_| Outcome::Trap(TrapKind::AbiViolation))? as usize;
    let data = memory.data_mut(store);
    let dst = start
        .checked_add(payload.len())
        .and_then(|end| data.get_mut(start..end))
        .ok_or(Outcome::Trap(TrapKind::AbiViolation))?;
    dst.copy_from_slice(payload);
    Ok(())
}

pub(crate) fn read_output(
    store: &Store<HostState>,
    memory: Memory,
    packed: i64,
) -> Result<Vec<u8>, Outcome> {
    let packed = packed as u64;
    let ptr = (packed >> 32) as usize;
    let len = (packed & 0xffff_ffff) as usize;
    let data = memory.data(store);
    let out = ptr
        .checked_add(len)
        .and_then(|end| data.get(ptr..end))
        .ok_or(Outcome::InvalidOutput)?;
    Ok(out.to_vec())
}

/// Turn the output (or failure) into the agreed result.
pub(crate) fn finish(
    store: &Store<HostState>,
    meta: &Meta<'_>,
    output: Result<Vec<u8>, Outcome>,
) -> EvalResult {
    let policy = meta.policy;
    let remaining = store.get_fuel().unwrap_or(0);
    let fuel_used = policy.fuel_limit.saturating_sub(remaining);
    let mut result = EvalResult {
        submission_id: meta.submission_id,
        challenge_id: meta.challenge_id,
        module_hash: meta.module_hash,
        outcome: Outcome::InvalidOutput,
        score: 0,
        fuel_used,
        output_hash: [0; 32],
    };
    match output {
        Err(outcome) => result.outcome = outcome,
        Ok(out) => {
            if out.len() < 8 || out.len() as u64 > policy.output_max_bytes {
                return result;
            }
            let score = u64::from_le_bytes(out[..8].try_into().expect("checked length"));
            if score > SCORE_SCALE {
                return result;
            }
            result.outcome = Outcome::Scored;
            result.score = score;
            result.output_hash = Sha256::digest(&out).into();
        }
    }
    result
}

/// Map a wasmtime error to an outcome. Order matters: the limiter's flag first (a failed
/// growth may surface as a trap of the guest's own making), then wasmtime traps, then ours.
pub(crate) fn classify(store: &Store<HostState>, e: &wasmtime::Error) -> Outcome {
    if store.data().memory_limit_hit || e.downcast_ref::<MemoryLimitHit>().is_some() {
        return Outcome::MemoryLimit;
    }
    if let Some(trap) = e.downcast_ref::<wasmtime::Trap>() {
        use wasmtime::Trap as T;
        return match trap {
            T::OutOfFuel => Outcome::OutOfFuel,
            T::Interrupt => Outcome::Timeout,
            T::StackOverflow => Outcome::Trap(TrapKind::StackOverflow),
            T::MemoryOutOfBounds | T::HeapMisaligned => Outcome::Trap(TrapKind::MemoryOutOfBounds),
            T::UnreachableCodeReached => Outcome::Trap(TrapKind::Unreachable),
            T::IntegerDivisionByZero => Outcome::Trap(TrapKind::DivisionByZero),
            T::IntegerOverflow => Outcome::Trap(TrapKind::IntegerOverflow),
            T::BadConversionToInteger => Outcome::Trap(TrapKind::BadConversion),
            T::TableOutOfBounds | T::IndirectCallToNull | T::BadSignature => {
                Outcome::Trap(TrapKind::BadIndirectCall)
            }
            _ => Outcome::Trap(TrapKind::Other),
        };
    }
    if e.downcast_ref::<DeadlinePassed>().is_some() {
        return Outcome::Timeout;
    }
    if e.downcast_ref::<HostTrap>().is_some() {
        return Outcome::Trap(TrapKind::HostCall);
    }
    // Not a trap: the pool is exhausted or the host ran out of resources. Local, not agreed.
    tracing::warn!(error = %format!("{e:#}"), "evaluation aborted by a host-side failure");
    Outcome::Aborted
}

/// Assemble the report for a finished evaluation.
pub(crate) fn report(
    ran: Ran,
    shard: usize,
    service_nanos: u64,
    pooled_instance: bool,
) -> EvalReport {
    let state = ran.store.data();
    EvalReport {
        result: ran.result,
        sync: ran.sync,
        host_calls: state.host_calls,
        log: state.log.clone(),
        log_dropped_bytes: state.log_dropped_bytes,
        shard,
        service_nanos,
        call_nanos: state.call_nanos,
        pooled_instance,
    }
}
