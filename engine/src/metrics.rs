//! Engine metric names (`platform_engine_*`) and their descriptions. Labels are bounded:
//! challenge id (bounded by `challenges_max`), outcome, shard, host function, reason.

/// Counter: evaluations finished, by `challenge` and `outcome`.
pub const EVALUATIONS: &str = "platform_engine_evaluations_total";
/// Histogram: service time of one evaluation (take job → result), by `challenge`.
pub const EVALUATION_DURATION: &str = "platform_engine_evaluation_duration_seconds";
/// Counter: fuel consumed, by `challenge`.
pub const FUEL_CONSUMED: &str = "platform_engine_fuel_consumed_total";
/// Gauge: jobs waiting in a shard's queue, by `shard`.
pub const QUEUE_DEPTH: &str = "platform_engine_queue_depth";
/// Gauge: pre-instantiated instances ready in a shard's pools, by `shard`.
pub const POOL_READY: &str = "platform_engine_pool_ready_instances";
/// Counter: ready instances released so a hotter challenge could use the slot, by `shard`.
pub const POOL_RELEASED: &str = "platform_engine_pool_released_instances_total";
/// Counter: evaluations that found no ready instance and instantiated inline, by `shard`.
pub const INLINE_INSTANTIATIONS: &str = "platform_engine_inline_instantiations_total";
/// Counter: submissions refused at the door, by `reason`.
pub const SUBMISSIONS_REJECTED: &str = "platform_engine_submissions_rejected_total";
/// Counter: queued evaluations dropped unevaluated, their epoch no longer wanted, by `shard`.
pub const DROPPED: &str = "platform_engine_dropped_total";
/// Counter: artifact cache lookups, by `result` (hit, miss, corrupt).
pub const MODULE_CACHE: &str = "platform_engine_module_cache_total";
/// Counter: host function calls, by `function`.
pub const HOST_CALLS: &str = "platform_engine_host_calls_total";

/// Histogram buckets (seconds) for `EVALUATION_DURATION`: 5 µs to 10 s. An exporter must
/// use these so the series are histograms (summable across shards), not summaries.
pub const DURATION_BUCKETS_SECONDS: &[f64] = &[
    5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1,
    0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Register descriptions with the installed recorder (if any).
pub fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        EVALUATIONS,
        "Evaluations finished, by challenge and outcome."
    );
    describe_histogram!(
        EVALUATION_DURATION,
        Unit::Seconds,
        "Service time of one evaluation."
    );
    describe_counter!(FUEL_CONSUMED, "Wasm fuel consumed by evaluations.");
    describe_gauge!(QUEUE_DEPTH, "Submissions waiting in a shard's queue.");
    describe_gauge!(
        POOL_READY,
        "Pre-instantiated instances ready in a shard's pools."
    );
    describe_counter!(
        POOL_RELEASED,
        "Ready instances of cold challenges released to make room for hotter ones."
    );
    describe_counter!(
        INLINE_INSTANTIATIONS,
        "Evaluations that instantiated inline (pool empty)."
    );
    describe_counter!(
        DROPPED,
        "Queued evaluations dropped unevaluated: their epoch was no longer wanted."
    );
    describe_counter!(
        SUBMISSIONS_REJECTED,
        "Submissions refused by the engine, by reason."
    );
    describe_counter!(MODULE_CACHE, "Compiled-artifact cache lookups, by result.");
    describe_counter!(
        HOST_CALLS,
        "Host function calls made by guests, by function."
    );
    // Series that exist from the start (zeros, not absence, before the first event).
    for reason in [
        "queue_full",
        "saturated",
        "payload_too_large",
        "shutting_down",
    ] {
        metrics::counter!(SUBMISSIONS_REJECTED, "reason" => reason).increment(0);
    }
    for result in ["hit", "miss", "corrupt"] {
        metrics::counter!(MODULE_CACHE, "result" => result).increment(0);
    }
    for f in crate::host::HostFn::ALL {
        metrics::counter!(HOST_CALLS, "function" => f.import_name()).increment(0);
    }
}
