//! Engine configuration: raw serde sections (unknown keys rejected) → `validate()` → sizes
//! the rest of the engine uses (pool slots, queue bounds).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::host::HostFn;

/// Errors in an engine or policy configuration. Each names the field and the rule it broke.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// A field is out of its allowed range.
    #[error("engine config: `{field}` {problem}")]
    Invalid {
        /// Field name as written in the config file.
        field: &'static str,
        /// What is wrong with it.
        problem: String,
    },
}

fn invalid(field: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field,
        problem: problem.into(),
    }
}

/// WebAssembly page size.
pub const WASM_PAGE_BYTES: u64 = 65_536;

/// The `[engine]` section.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    /// Number of shards (one glommio executor each). 0 means one per available core.
    pub shards: usize,
    /// Pin each shard to a CPU (`MaxSpread`); off lets the kernel place them.
    pub pin_shards: bool,
    /// wasmtime engines the shards are spread over (shard `i` uses engine `i mod engines`);
    /// 0: one per shard, at most one per shard. Shards on separate engines share no
    /// wasmtime state — the reference counts, type registry and pool locks every
    /// instantiation touches — so a second core adds nearly what the first does; each
    /// engine holds its own copy of every challenge's compiled code.
    pub engines: usize,
    /// Evaluations a shard runs concurrently (they interleave at fuel yields).
    pub in_flight_per_shard: usize,
    /// Pending submissions a shard's queue holds before `submit` reports it full. A shard
    /// moves what is queued into its scheduler as it picks the next job, so under load the
    /// bound that refuses is the engine-wide one (`outstanding_max`: `Saturated`).
    pub queue_depth_max: usize,
    /// Pre-instantiated instances kept ready per challenge per shard.
    pub instances_ready_per_challenge: usize,
    /// Challenges whose ready instances a shard keeps at once (sizes the instance pool).
    /// More may be registered: the least recently used give their ready instances up.
    pub challenges_max: usize,
    /// Ceiling for any challenge's linear memory; policies may set less.
    pub memory_max_bytes: u64,
    /// Largest wasm module accepted for registration.
    pub module_max_bytes: u64,
    /// Maximum wasm stack (fixed: trap depth is part of consensus).
    pub wasm_stack_max_bytes: usize,
    /// Host stack for each async evaluation; must exceed `wasm_stack_max_bytes`.
    pub async_stack_bytes: usize,
    /// Linear memory kept resident (memset, not madvise) when a pool slot is reused.
    pub memory_keep_resident_bytes: usize,
    /// Fuel between cooperative yields to the shard's executor. An evaluation that fits in
    /// one such slice runs synchronously (no fiber); a longer one starts over, from a fresh
    /// instance, on the yielding path. Results are identical either way. Each yield is also
    /// where the wall-clock deadline is checked: a slice is its granularity.
    pub fuel_yield_interval: u64,
    /// No longer used (the deadline was once armed by epoch ticks; it is now checked at
    /// every fuel yield). Accepted so that older configuration files still load; a
    /// warning says it is ignored.
    #[serde(with = "humantime_serde::option")]
    pub deadline_tick: Option<Duration>,
    /// Directory holding compiled module artifacts; none disables the cache.
    pub artifact_cache_dir: Option<PathBuf>,
    /// Bytes of io memory per glommio executor (keep under `ulimit -l`).
    pub io_memory_bytes: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            shards: 0,
            pin_shards: true,
            engines: 0,
            in_flight_per_shard: 4,
            queue_depth_max: 1024,
            instances_ready_per_challenge: 4,
            challenges_max: 16,
            memory_max_bytes: 64 << 20,
            module_max_bytes: 16 << 20,
            wasm_stack_max_bytes: 512 << 10,
            async_stack_bytes: 2 << 20,
            memory_keep_resident_bytes: 4 << 20,
            fuel_yield_interval: 1_000_000,
            deadline_tick: None,
            artifact_cache_dir: None,
            io_memory_bytes: 512 << 10,
        }
    }
}

/// An [`EngineConfig`] that passed validation, with derived sizes.
#[derive(Clone, Debug)]
pub struct ValidEngineConfig {
    /// The checked configuration.
    pub raw: EngineConfig,
    /// Resolved shard count (never 0).
    pub shards: usize,
    /// Resolved wasmtime engine count (1..=shards).
    pub engines: usize,
}

impl ValidEngineConfig {
    /// Shards on the busiest engine.
    pub fn shards_per_engine(&self) -> usize {
        self.shards.div_ceil(self.engines)
    }

    /// The engine shard `shard` runs on.
    pub fn engine_of(&self, shard: usize) -> usize {
        shard % self.engines
    }

    /// Pool slots for instances, per engine: every shard's ready instances for every
    /// challenge, plus those in flight (each may be instantiated inline), plus a margin for
    /// registration and callers outside the shards.
    pub fn instance_slots(&self) -> u32 {
        let per_shard = self.raw.challenges_max * self.raw.instances_ready_per_challenge
            + 2 * self.raw.in_flight_per_shard;
        u32::try_from(self.shards_per_engine() * per_shard + 8).unwrap_or(u32::MAX)
    }

    /// Fiber stacks, per engine: one per evaluation in flight plus one per shard for refills.
    pub fn stack_slots(&self) -> u32 {
        u32::try_from(self.shards_per_engine() * (self.raw.in_flight_per_shard + 2) + 4)
            .unwrap_or(u32::MAX)
    }

    /// Most evaluations that may be outstanding (queued, running or unread) at once.
    pub fn outstanding_max(&self) -> usize {
        self.shards * (self.raw.queue_depth_max + self.raw.in_flight_per_shard)
    }
}

impl EngineConfig {
    /// Check every field and relation; resolve `shards = 0` to the core count.
    pub fn validate(&self) -> Result<ValidEngineConfig, ConfigError> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let shards = if self.shards == 0 { cores } else { self.shards };
        if shards > 1024 {
            return Err(invalid("shards", format!("is {shards}; at most 1024")));
        }
        if self.in_flight_per_shard == 0 || self.in_flight_per_shard > 256 {
            return Err(invalid("in_flight_per_shard", "must be 1..=256"));
        }
        if self.queue_depth_max == 0 || self.queue_depth_max > 1 << 20 {
            return Err(invalid("queue_depth_max", "must be 1..=1048576"));
        }
        if self.instances_ready_per_challenge > 64 {
            return Err(invalid(
                "instances_ready_per_challenge",
                "must be at most 64",
            ));
        }
        if self.challenges_max == 0 || self.challenges_max > 1024 {
            return Err(invalid("challenges_max", "must be 1..=1024"));
        }
        if self.memory_max_bytes < WASM_PAGE_BYTES || self.memory_max_bytes > 4 << 30 {
            return Err(invalid(
                "memory_max_bytes",
                "must be between 64 KiB and 4 GiB",
            ));
        }
        if !self.memory_max_bytes.is_multiple_of(WASM_PAGE_BYTES) {
            return Err(invalid("memory_max_bytes", "must be a multiple of 64 KiB"));
        }
        if self.module_max_bytes == 0 || self.module_max_bytes > 256 << 20 {
            return Err(invalid("module_max_bytes", "must be 1 byte..=256 MiB"));
        }
        if self.wasm_stack_max_bytes < 64 << 10 {
            return Err(invalid("wasm_stack_max_bytes", "must be at least 64 KiB"));
        }
        if self.async_stack_bytes <= self.wasm_stack_max_bytes {
            return Err(invalid(
                "async_stack_bytes",
                "must be larger than wasm_stack_max_bytes (host frames need room too)",
            ));
        }
        if self.fuel_yield_interval == 0 {
            return Err(invalid("fuel_yield_interval", "must be positive"));
        }
        if self.io_memory_bytes < 64 << 10 {
            return Err(invalid("io_memory_bytes", "must be at least 64 KiB"));
        }
        if self.engines > shards {
            return Err(invalid(
                "engines",
                format!("is {}; at most one per shard ({shards})", self.engines),
            ));
        }
        let valid = ValidEngineConfig {
            raw: self.clone(),
            shards,
            engines: if self.engines == 0 {
                shards
            } else {
                self.engines
            },
        };
        if u64::from(valid.instance_slots()) * valid.engines as u64 > 100_000 {
            return Err(invalid(
                "challenges_max",
                "shards × challenges_max × instances_ready_per_challenge needs over 100000 pool slots",
            ));
        }
        Ok(valid)
    }
}

/// Runtime policy of one challenge: its limits and the host functions it may import.
/// Signed by the subnet owner as part of the challenge metadata.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ChallengePolicy {
    /// Fuel budget per evaluation (start function included).
    pub fuel_limit: u64,
    /// Linear memory limit.
    pub memory_limit_bytes: u64,
    /// Largest payload accepted.
    pub input_max_bytes: u64,
    /// Largest output a guest may return (8-byte score included).
    pub output_max_bytes: u64,
    /// Wall-clock safety net; a deadline hit is `Timeout`, never a score.
    #[serde(with = "humantime_serde")]
    pub deadline: Duration,
    /// Bytes of guest log kept per evaluation; the rest is dropped and counted.
    pub log_max_bytes: u64,
    /// Host functions the module may import.
    pub allowed_host_functions: BTreeSet<HostFn>,
}

impl Default for ChallengePolicy {
    fn default() -> Self {
        ChallengePolicy {
            fuel_limit: 1_000_000_000,
            memory_limit_bytes: 16 << 20,
            input_max_bytes: 1 << 20,
            output_max_bytes: 64 << 10,
            deadline: Duration::from_secs(5),
            log_max_bytes: 4096,
            allowed_host_functions: HostFn::ALL.iter().copied().collect(),
        }
    }
}

impl ChallengePolicy {
    /// Check the policy against the engine's ceilings.
    pub fn validate(&self, engine: &ValidEngineConfig) -> Result<(), ConfigError> {
        if self.fuel_limit == 0 {
            return Err(invalid("fuel_limit", "must be positive"));
        }
        if self.memory_limit_bytes < WASM_PAGE_BYTES
            || self.memory_limit_bytes > engine.raw.memory_max_bytes
        {
            return Err(invalid(
                "memory_limit_bytes",
                format!(
                    "must be between 64 KiB and the engine's memory_max_bytes ({})",
                    engine.raw.memory_max_bytes
                ),
            ));
        }
        if self.input_max_bytes == 0 || self.input_max_bytes >= self.memory_limit_bytes {
            return Err(invalid(
                "input_max_bytes",
                "must be positive and below memory_limit_bytes",
            ));
        }
        if self.output_max_bytes < 8 {
            return Err(invalid(
                "output_max_bytes",
                "must be at least 8 (the score)",
            ));
        }
        if self.deadline.is_zero() || self.deadline > Duration::from_secs(600) {
            return Err(invalid("deadline", "must be between 1ns and 10 minutes"));
        }
        if self.log_max_bytes > 1 << 20 {
            return Err(invalid("log_max_bytes", "must be at most 1 MiB"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate() {
        let v = EngineConfig::default().validate().unwrap();
        assert!(v.shards >= 1);
        assert_eq!(v.engines, v.shards, "one engine per shard by default");
        ChallengePolicy::default().validate(&v).unwrap();
    }

    #[test]
    fn shards_spread_over_engines() {
        let v = EngineConfig {
            shards: 5,
            engines: 2,
            ..EngineConfig::default()
        }
        .validate()
        .unwrap();
        assert_eq!(v.shards_per_engine(), 3);
        assert_eq!(
            (0..5).map(|s| v.engine_of(s)).collect::<Vec<_>>(),
            [0, 1, 0, 1, 0]
        );
        let per_shard = 16 * 4 + 2 * 4;
        assert_eq!(v.instance_slots(), 3 * per_shard + 8);
        let err = EngineConfig {
            shards: 2,
            engines: 3,
            ..EngineConfig::default()
        }
        .validate()
        .unwrap_err();
        assert!(err.to_string().contains("at most one per shard"), "{err}");
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = toml::from_str::<EngineConfig>("shards = 2\nshard = 3\n").unwrap_err();
        assert!(err.to_string().contains("unknown field `shard`"), "{err}");
    }

    #[test]
    fn relations_are_checked() {
        let cfg = EngineConfig {
            async_stack_bytes: 256 << 10,
            ..EngineConfig::default()
        };
        let err = cfg.validate().unwrap_err();
        assert!(err.to_string().contains("async_stack_bytes"), "{err}");

        let v = EngineConfig::default().validate().unwrap();
        let policy = ChallengePolicy {
            memory_limit_bytes: 1 << 30,
            ..ChallengePolicy::default()
        };
        assert!(
            policy
                .validate(&v)
                .unwrap_err()
                .to_string()
                .contains("memory_limit_bytes")
        );
    }

    #[test]
    fn durations_and_host_functions_parse() {
        let p: ChallengePolicy = toml::from_str(
            "deadline = \"250ms\"\nallowed_host_functions = [\"log\", \"sha256\"]\n",
        )
        .unwrap();
        assert_eq!(p.deadline, Duration::from_millis(250));
        assert_eq!(p.allowed_host_functions.len(), 2);
        let bad = toml::from_str::<ChallengePolicy>("allowed_host_functions = [\"open_socket\"]\n");
        assert!(bad.is_err());
    }

    #[test]
    fn an_older_file_with_deadline_tick_still_loads() {
        let c: EngineConfig = toml::from_str("deadline_tick = \"10ms\"\nshards = 2\n").unwrap();
        assert_eq!(c.deadline_tick, Some(Duration::from_millis(10)));
        assert_eq!(c.shards, 2);
        c.validate().unwrap();
        let c: EngineConfig = toml::from_str("shards = 2\n").unwrap();
        assert_eq!(c.deadline_tick, None);
    }
}
