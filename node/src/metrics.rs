//! The node's metric names (`platform_<area>_<what>_<unit>`), descriptions, buckets, and the
//! process metrics read from `/proc` at scrape time. Labels are bounded: result and reason
//! names from fixed lists; never a hotkey, submission id or peer id.

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};

/// Counter: miner submissions received by the node, by `result` (accepted, not_counted,
/// malformed, unregistered_miner, inactive_challenge, not_ready, epoch_closed, epoch_not_open,
/// store_error, shed, engine_busy, subnet_busy).
pub const INGRESS: &str = "platform_engine_ingress_submissions_total";
/// The `result` labels of [`INGRESS`].
pub const INGRESS_RESULTS: [&str; 12] = [
    "shed",
    "engine_busy",
    "subnet_busy",
    "accepted",
    "not_counted",
    "malformed",
    "unregistered_miner",
    "inactive_challenge",
    "not_ready",
    "epoch_closed",
    "epoch_not_open",
    "store_error",
];
/// Gauge: evaluation work held (engine and backlog), in estimated seconds of shard time.
pub const OUTSTANDING: &str = "platform_engine_outstanding_work_seconds";
/// Gauge: seconds the held evaluation work takes to drain at the measured rate.
pub const DRAIN: &str = "platform_engine_outstanding_drain_seconds";
/// Gauge: consensus height being decided.
pub const HEIGHT: &str = "platform_consensus_height";
/// Gauge: current view.
pub const VIEW: &str = "platform_consensus_view";
/// Counter: decisions committed.
pub const DECISIONS: &str = "platform_consensus_decisions_total";
/// Counter: view changes this validator started.
pub const VIEW_CHANGES: &str = "platform_consensus_view_changes_total";
/// Counter: proved misbehaviour (equivocation) seen.
pub const MISBEHAVIOUR: &str = "platform_consensus_misbehaviour_total";
/// Histogram: from an epoch's end to its result committed here.
pub const COMMIT_LATENCY: &str = "platform_consensus_commit_latency_seconds";
/// Gauge: the current epoch (wall clock).
pub const EPOCH: &str = "platform_consensus_epoch";
/// Gauge: the last committed epoch.
pub const COMMITTED_EPOCH: &str = "platform_consensus_committed_epoch";
/// Counter: (validator, challenge, miner) reports that disagreed with the agreed score.
pub const FLAGGED: &str = "platform_consensus_flagged_reports_total";
/// Counter: proposals this validator refused to vote for, by `reason`.
pub const PROPOSALS_REJECTED: &str = "platform_consensus_proposals_rejected_total";
/// Counter: times the metagraph at an epoch's pinned block could not be read (the epoch waits).
pub const ROSTER_UNAVAILABLE: &str = "platform_chain_metagraph_unavailable_total";
/// Counter: state syncs from a peer's snapshot, by `outcome` (installed, or why an offer or
/// its data was refused, or timeout).
pub const SNAPSHOT_SYNCS: &str = "platform_consensus_snapshot_syncs_total";
/// Counter: submissions named in peers' batches that this validator had missed, by
/// `outcome` (evaluated, epoch_decided first, or why one was refused).
pub const MISSED: &str = "platform_consensus_missed_submissions_total";
/// Counter: snapshots this validator took at checkpoint heights.
pub const SNAPSHOTS_TAKEN: &str = "platform_consensus_snapshots_taken_total";
/// Counter: evaluation batches published by this validator.
pub const BATCHES: &str = "platform_consensus_batches_published_total";
/// Counter: owner registry changes refused, by `reason`.
pub const REGISTRY_REFUSED: &str = "platform_consensus_registry_changes_refused_total";
/// Counter: weight submissions, by `result` (ok, refused, connection, error).
pub const WEIGHTS: &str = "platform_chain_weight_submissions_total";
/// Counter: hash-commit reveals by `outcome` (revealed, too_early, missed, dropped, failed).
pub const REVEALS: &str = "platform_chain_reveals_total";
/// Counter: our weights read back from the chain after a set or reveal, by `result` (match,
/// mismatch with what we sent, unreadable).
pub const READBACK: &str = "platform_chain_weights_readback_total";
/// Gauge: latest block seen.
pub const BLOCK: &str = "platform_chain_block";
/// Counter: audit records written.
pub const AUDIT: &str = "platform_store_audit_records_total";
/// Counter: store operations that failed.
pub const STORE_ERRORS: &str = "platform_store_errors_total";
/// Counter: rows deleted by retention, by `kind` (bodies, counted, results, audit, batches).
pub const PRUNED: &str = "platform_store_pruned_rows_total";
/// Gauge: epochs below this one are no longer kept (retention).
pub const PRUNED_BELOW: &str = "platform_store_pruned_below_epoch";
/// Gauge: rows kept in the node store, by `table` (those retention bounds).
pub const STORE_ROWS: &str = "platform_store_rows";
/// Gauge: size of a store file, by `file`.
pub const STORE_BYTES: &str = "platform_store_file_bytes";
/// Histogram: seconds one write of the store's writer thread took (a commit and its fsync).
pub const STORE_WRITE: &str = "platform_store_write_seconds";

/// Buckets (seconds) of [`COMMIT_LATENCY`]: 100 ms to 10 min.
pub const COMMIT_BUCKETS_SECONDS: &[f64] = &[
    0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

/// Buckets (seconds) of [`STORE_WRITE`]: 1 ms to 5 s.
pub const STORE_WRITE_BUCKETS_SECONDS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// Describe every node metric and create the series that must exist from the start, so
/// dashboards and alerts see zeros rather than nothing.
pub fn register() {
    describe_gauge!("platform_build_info", "Build information; the value is 1.");
    platform_net::stats::names::describe();
    describe_counter!(INGRESS, "Miner submissions received, by result.");
    describe_gauge!(HEIGHT, "Consensus height being decided.");
    describe_gauge!(
        OUTSTANDING,
        Unit::Seconds,
        "Evaluation work held (engine and backlog), in estimated seconds of shard time."
    );
    describe_gauge!(
        DRAIN,
        Unit::Seconds,
        "Seconds the evaluation work held takes to drain at the measured rate; miners' new submissions are refused busy (engine_busy) while it exceeds the time left until their batch goes out."
    );
    metrics::gauge!(OUTSTANDING).set(0.0);
    describe_gauge!(VIEW, "Consensus view at the current height.");
    describe_counter!(DECISIONS, "Consensus decisions committed.");
    describe_counter!(VIEW_CHANGES, "View changes started by this validator.");
    describe_counter!(MISBEHAVIOUR, "Equivocations proved.");
    describe_histogram!(
        COMMIT_LATENCY,
        Unit::Seconds,
        "Time from an epoch's end to its result committed here."
    );
    describe_gauge!(EPOCH, "Current epoch.");
    describe_gauge!(COMMITTED_EPOCH, "Last committed epoch.");
    describe_counter!(FLAGGED, "Reports that disagreed with the agreed score.");
    describe_counter!(BATCHES, "Evaluation batches published.");
    describe_counter!(PROPOSALS_REJECTED, "Proposals refused, by reason.");
    describe_counter!(
        ROSTER_UNAVAILABLE,
        "Reads of an epoch's pinned metagraph that failed (the epoch waits)."
    );
    describe_counter!(REGISTRY_REFUSED, "Registry changes refused, by reason.");
    describe_counter!(WEIGHTS, "Weight submissions to the chain, by result.");
    describe_counter!(REVEALS, "Hash-commit reveals sent or given up, by outcome.");
    describe_counter!(
        READBACK,
        "Our weights read back from the chain after a set or reveal, by result."
    );
    describe_gauge!(BLOCK, "Latest chain block seen.");
    describe_counter!(AUDIT, "Audit records written.");
    describe_histogram!(
        STORE_WRITE,
        Unit::Seconds,
        "Time one write to node.redb took on the store's writer thread (its commit and fsync); the application loop does not wait for it."
    );
    describe_counter!(STORE_ERRORS, "Store operations that failed.");
    describe_counter!(
        PRUNED,
        "Rows the store deleted for epochs older than node.retain_epochs, by kind."
    );
    describe_gauge!(
        STORE_ROWS,
        "Rows kept in node.redb, by table (submission_bodies, results, audit, batches)."
    );
    describe_gauge!(
        PRUNED_BELOW,
        "Epochs below this one are no longer kept in the store (node.retain_epochs)."
    );
    describe_gauge!(STORE_BYTES, Unit::Bytes, "Size of a store file.");
    describe_counter!(
        SNAPSHOT_SYNCS,
        "State syncs from a peer's snapshot, by outcome."
    );
    describe_counter!(SNAPSHOTS_TAKEN, "Snapshots taken at checkpoint heights.");
    describe_counter!(
        MISSED,
        "Submissions missed and caught up on from peers' batches, by outcome."
    );
    metrics::counter!(MISSED, "outcome" => "evaluated").absolute(0);
    metrics::counter!(SNAPSHOT_SYNCS, "outcome" => "installed").absolute(0);
    for r in INGRESS_RESULTS {
        metrics::counter!(INGRESS, "result" => r).absolute(0);
    }
    for r in [
        "malformed",
        "bad_signature",
        "replay",
        "unknown_challenge",
        "exists",
        "version",
        "invalid",
    ] {
        metrics::counter!(REGISTRY_REFUSED, "reason" => r).increment(0);
    }
    for r in ["ok", "refused", "connection", "error"] {
        metrics::counter!(WEIGHTS, "result" => r).absolute(0);
    }
    for (k, _) in crate::store::Pruned::default().by_kind() {
        metrics::counter!(PRUNED, "kind" => k).absolute(0);
    }
    for name in [
        DECISIONS,
        VIEW_CHANGES,
        MISBEHAVIOUR,
        FLAGGED,
        BATCHES,
        AUDIT,
        STORE_ERRORS,
        ROSTER_UNAVAILABLE,
        SNAPSHOTS_TAKEN,
    ] {
        metrics::counter!(name).absolute(0);
    }
    describe_gauge!(
        "platform_process_resident_memory_bytes",
        Unit::Bytes,
        "Resident set size."
    );
    describe_gauge!(
        "platform_process_resident_memory_max_bytes",
        Unit::Bytes,
        "Peak resident set size."
    );
    describe_counter!(
        "platform_process_cpu_seconds_total",
        Unit::Seconds,
        "CPU time, user and system."
    );
    describe_gauge!(
        "platform_process_heap_bytes",
        Unit::Bytes,
        "The allocator's figures (jemalloc): state allocated (data held), active (pages holding it), resident (the allocator's pages in memory), metadata, retained (mapped, returned)."
    );
    describe_gauge!("platform_process_open_fds", "Open file descriptors.");
    describe_gauge!("platform_process_threads", "Threads.");
    describe_gauge!(
        "platform_process_start_time_seconds",
        Unit::Seconds,
        "Start time, Unix seconds."
    );
}

/// Read this process's figures from `/proc` (Linux) into the process gauges.
pub fn update_process() {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return;
    };
    let kib = |key: &str| -> Option<f64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))?
            .split_whitespace()
            .next()?
            .parse::<f64>()
            .ok()
            .map(|v| v * 1024.0)
    };
    if let Some(v) = kib("VmRSS:") {
        metrics::gauge!("platform_process_resident_memory_bytes").set(v);
    }
    if let Some(v) = kib("VmHWM:") {
        metrics::gauge!("platform_process_resident_memory_max_bytes").set(v);
    }
    if let Some(t) = status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse::<f64>().ok())
    {
        metrics::gauge!("platform_process_threads").set(t);
    }
    if let Some(h) = crate::heap::read() {
        for (state, v) in [
            ("allocated", h.allocated),
            ("active", h.active),
            ("resident", h.resident),
            ("metadata", h.metadata),
            ("retained", h.retained),
        ] {
            metrics::gauge!("platform_process_heap_bytes", "state" => state).set(v as f64);
        }
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        metrics::gauge!("platform_process_open_fds").set(fds.count() as f64);
    }
    // /proc/self/stat: fields after the command name; utime, stime are 14 and 15 (1-based),
    // starttime 22, in clock ticks (100 per second on Linux).
    if let Ok(stat) = std::fs::read_to_string("/proc/self/stat")
        && let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r)
    {
        let f: Vec<&str> = rest.split_whitespace().collect();
        let tick = |i: usize| {
            f.get(i)
                .and_then(|v| v.parse::<f64>().ok())
                .map(|v| v / 100.0)
        };
        if let (Some(u), Some(s)) = (tick(11), tick(12)) {
            metrics::counter!("platform_process_cpu_seconds_total").absolute((u + s) as u64);
        }
        if let (Some(start), Ok(up)) = (tick(19), std::fs::read_to_string("/proc/uptime"))
            && let Some(up) = up
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<f64>().ok())
        {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0);
            metrics::gauge!("platform_process_start_time_seconds").set(now - up + start);
        }
    }
}
