//! Platform's evaluation engine: challenges (WebAssembly modules) score miners' payloads in
//! a deterministic wasmtime sandbox, sharded across cores with glommio.
//!
//! - [`Runtime`]: the one deterministic wasmtime engine, host functions, challenge
//!   registration with an on-disk artifact cache.
//! - [`ShardedEngine`]: one executor per core, bounded queues, pre-instantiated pools.
//! - [`Baseline`]: the naive path of the system we replace, for benchmarks and cross-checks.
//!
//! The engine knows nothing of PBFT, libp2p or Bittensor: submissions in, results out.

mod abi;
mod baseline;
mod cache;
pub mod config;
mod eval;
pub mod host;
pub mod metrics;
mod queue;
pub mod result;
mod runtime;
mod sched;
mod shard;

pub use baseline::Baseline;
pub use config::{ChallengePolicy, ConfigError, EngineConfig, ValidEngineConfig};
pub use eval::Submission;
pub use host::{EvalContext, HostCallCounts, HostFn};
pub use result::{ChallengeId, EvalReport, EvalResult, Hash32, Outcome, SCORE_SCALE, TrapKind};
pub use runtime::{
    ABI_VERSION, ArtifactSource, CacheStats, Challenge, ChallengeSpec, EngineError, ModuleError,
    Runtime, WASMTIME_VERSION,
};
pub use shard::{ShardedEngine, SubmitError};

/// Evaluate one submission on the calling thread with the pooled engine's exact code path
/// (fresh instance; the sync path first, the async one driven to completion here if the
/// evaluation needs it). For tests, tools and validators recomputing a single result
/// outside the shards.
pub fn evaluate_blocking(rt: &Runtime, sub: &Submission) -> EvalReport {
    futures_lite::future::block_on(async {
        let start = std::time::Instant::now();
        let prepared = eval::prepare_any(rt, 0, &sub.challenge, true).await;
        let ran = eval::run(rt, 0, prepared, sub).await;
        let nanos = eval::nanos_since(start);
        eval::report(ran, 0, nanos, false)
    })
}

/// Evaluate on the async path only (every call on a fiber, yielding every slice), as the
/// engine did before its sync path; results are identical. For tests and benchmarks.
pub fn evaluate_blocking_async(rt: &Runtime, sub: &Submission) -> EvalReport {
    futures_lite::future::block_on(async {
        let start = std::time::Instant::now();
        let prepared = eval::prepare(rt, 0, &sub.challenge).await;
        let ran = eval::run(rt, 0, prepared, sub).await;
        let nanos = eval::nanos_since(start);
        eval::report(ran, 0, nanos, false)
    })
}

/// Create a fresh pooled instance of `challenge` (store + instantiate, start function
/// included) the way the shards make ready instances, and drop it, on the calling thread.
/// Returns false if instantiation failed. For benchmarks of the instance lifecycle.
pub fn instantiate_and_drop(rt: &Runtime, challenge: &Challenge) -> bool {
    futures_lite::future::block_on(eval::prepare_any(rt, 0, challenge, true)).is_ok()
}
