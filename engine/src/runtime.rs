//! The process-wide runtime: deterministic wasmtime `Engine`s with pooling allocators (one
//! per shard unless `engines` says fewer, identically configured), their host-function
//! `Linker`s, and challenge registration (validate → compile or load from cache → ABI check
//! → an `InstancePre` on every engine).
//!
//! Why several engines: every instantiation takes and drops references to what its engine
//! shares — the engine itself, the module's code and types, the type registry, the pool's
//! index lock — and with shards on one engine those cache lines bounce between cores on
//! every evaluation (two shards on one engine did 1.28–1.66× one shard's knapsack
//! evaluations, measured side by side; on two engines, 1.58–1.73×). A module is compiled
//! once and its artifact deserialized into the other engines; each engine holds its own copy
//! of every challenge's machine code.

use std::hash::Hasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};
use wasmtime::{
    Config, Enabled, Engine, ExternType, InstanceAllocationStrategy, InstancePre, Linker, Module,
    OptLevel, PoolingAllocationConfig, ValType,
};

use crate::abi::AbiExports;
use crate::cache::{ArtifactCache, Lookup};
use crate::config::{ChallengePolicy, ConfigError, EngineConfig, ValidEngineConfig};
use crate::host::{self, HOST_MODULE, HostFn, HostState};
use crate::metrics as m;
use crate::result::{ChallengeId, Hash32};

/// The wasmtime version this build pins (see the workspace `Cargo.toml`). Part of the
/// artifact cache key and of the engine fingerprint peers compare.
pub const WASMTIME_VERSION: &str = "48.0.8";

/// Tables one challenge module may define (pool limit; more is refused at instantiation).
const MAX_TABLES_PER_MODULE: u32 = 4;

/// Version of the challenge ABI this engine implements (see `docs/challenge-abi.md`).
pub const ABI_VERSION: u32 = 1;

/// Exports the ABI requires.
pub const EXPORT_MEMORY: &str = "memory";
/// `() -> ()`: marker naming the ABI version.
pub const EXPORT_ABI_MARKER: &str = "platform_abi_v1";
/// `(len: i32) -> i32`: guest allocator for the input.
pub const EXPORT_ALLOC: &str = "platform_alloc";
/// `(ptr: i32, len: i32) -> i64`: score the input; returns `ptr << 32 | len` of the output.
pub const EXPORT_EVALUATE: &str = "platform_evaluate";

/// Why the engine could not start.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// wasmtime refused the engine configuration (e.g. the pool could not reserve memory).
    #[error("wasmtime engine: {0}")]
    Wasmtime(String),
    /// The artifact cache directory is unusable.
    #[error("artifact cache: {0}")]
    Cache(#[from] std::io::Error),
    /// glommio could not start the shard executors.
    #[error("shard executors: {0}")]
    Shards(String),
}

/// Why a challenge module was refused at registration. Each names the reason.
#[derive(Debug, thiserror::Error)]
pub enum ModuleError {
    /// The module is larger than `module_max_bytes`.
    #[error("module is {size} bytes; the limit is {max}")]
    TooLarge {
        /// Module size.
        size: u64,
        /// Configured limit.
        max: u64,
    },
    /// The policy is invalid.
    #[error("policy: {0}")]
    Policy(#[from] ConfigError),
    /// The bytes are not a valid module under the deterministic feature set.
    #[error("invalid or unsupported wasm: {0}")]
    Invalid(String),
    /// An import outside the `platform` host-function whitelist.
    #[error("import `{module}::{name}` is not a platform host function")]
    UnknownImport {
        /// Import module.
        module: String,
        /// Import name.
        name: String,
    },
    /// A whitelisted host function the challenge's policy does not allow.
    #[error("import `platform::{0}` is not allowed by this challenge's policy")]
    ForbiddenImport(&'static str),
    /// A required ABI export is missing.
    #[error("missing export `{0}` required by challenge ABI v1")]
    MissingExport(&'static str),
    /// An ABI export has the wrong type.
    #[error("export `{name}` has the wrong type: expected {expected}")]
    WrongExportType {
        /// Export name.
        name: &'static str,
        /// Expected signature.
        expected: &'static str,
    },
    /// The module's declared initial memory exceeds the policy's memory limit.
    #[error("initial memory of {initial} bytes exceeds the policy limit of {limit} bytes")]
    InitialMemoryTooLarge {
        /// Declared initial size.
        initial: u64,
        /// Policy limit.
        limit: u64,
    },
    /// Linking failed (a host function signature mismatch).
    #[error("link: {0}")]
    Link(String),
}

/// A challenge to register: the owner-signed metadata the engine needs.
#[derive(Clone, Debug)]
pub struct ChallengeSpec {
    /// Owner-chosen id.
    pub id: ChallengeId,
    /// Human name (logs only).
    pub name: String,
    /// The wasm module (binary; the text format is accepted for tests and tooling).
    pub wasm: Vec<u8>,
    /// Limits and allowed host functions.
    pub policy: ChallengePolicy,
    /// Data the guest may read through `data_read` (e.g. an evaluation set).
    pub data: Vec<u8>,
}

/// A registered challenge: compiled, checked, and ready to instantiate on any shard.
pub struct Challenge {
    /// Owner-chosen id.
    pub id: ChallengeId,
    /// Human name.
    pub name: String,
    /// sha256 of the module bytes as registered.
    pub module_hash: Hash32,
    /// Limits and allowed host functions.
    pub policy: ChallengePolicy,
    /// What each engine instantiates, by engine index.
    pub(crate) lanes: Vec<ChallengeLane>,
    /// Where the compiled code came from.
    pub source: ArtifactSource,
}

/// A challenge on one engine: nothing in it is shared with another engine's shards.
pub(crate) struct ChallengeLane {
    pub(crate) pre: InstancePre<HostState>,
    /// Where the module's ABI exports are.
    pub(crate) abi: AbiExports,
    /// The registered data, behind a reference count of this engine's own (the bytes are
    /// shared by every engine).
    pub(crate) data: Arc<Arc<[u8]>>,
}

impl Challenge {
    /// The challenge as engine `engine` instantiates it.
    pub(crate) fn lane(&self, engine: usize) -> &ChallengeLane {
        &self.lanes[engine]
    }
}

impl std::fmt::Debug for Challenge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Challenge")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("module_hash", &hex::encode(self.module_hash))
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// How a challenge's machine code was obtained.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArtifactSource {
    /// Compiled now (no cache configured, or a miss).
    Compiled,
    /// Loaded from a verified cache entry with `deserialize`.
    Cache,
    /// The cache entry was corrupt; compiled again and the entry rewritten.
    RecompiledCorrupt,
}

/// Counters of artifact cache activity since the runtime started.
#[derive(Debug, Default)]
pub struct CacheStats {
    /// Modules loaded from cache.
    pub hits: AtomicU64,
    /// Modules compiled (no entry).
    pub misses: AtomicU64,
    /// Corrupt entries detected and replaced.
    pub corrupt: AtomicU64,
}

/// One wasmtime engine and its linker.
struct Lane {
    engine: Engine,
    linker: Linker<HostState>,
}

struct Inner {
    /// By engine index (`ValidEngineConfig::engine_of` maps shards to them).
    lanes: Vec<Lane>,
    config: ValidEngineConfig,
    cache: Option<ArtifactCache>,
    engine_key: String,
    cache_stats: CacheStats,
}

/// Handle to the process-wide runtime; cheap to clone, shared by all shards.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("engine_key", &self.inner.engine_key)
            .finish_non_exhaustive()
    }
}

/// The deterministic part of the wasmtime configuration, shared by the pooled engine and
/// the baseline. Everything here feeds the engine fingerprint.
pub(crate) fn deterministic_config(cfg: &EngineConfig) -> Config {
    let mut c = Config::new();
    c.consume_fuel(true)
        // The wall-clock deadline is checked where a metered guest yields, every fuel slice
        // (see `eval`), not by epoch checks compiled into every loop and function entry:
        // those cost up to half a tight loop's time (registers spilled around the check).
        .epoch_interruption(false)
        .cranelift_nan_canonicalization(true)
        .cranelift_opt_level(OptLevel::Speed)
        // wasm threads: the `threads` cargo feature is not compiled in, so they are off.
        .shared_memory(false)
        .wasm_relaxed_simd(false)
        .relaxed_simd_deterministic(true)
        .wasm_memory64(false)
        .wasm_multi_memory(false)
        .wasm_custom_page_sizes(false)
        .wasm_simd(true)
        .wasm_bulk_memory(true)
        .wasm_multi_value(true)
        .wasm_tail_call(true)
        .max_wasm_stack(cfg.wasm_stack_max_bytes)
        .async_stack_size(cfg.async_stack_bytes)
        .parallel_compilation(true);
    c
}

/// A `Hasher` that feeds sha256, to fingerprint wasmtime's compatibility hash stably.
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn finish(&self) -> u64 {
        let d = self.0.clone().finalize();
        u64::from_le_bytes(d[..8].try_into().unwrap_or_default())
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

fn engine_fingerprint(engine: &Engine) -> String {
    let mut h = Sha256Hasher(Sha256::new());
    h.write(WASMTIME_VERSION.as_bytes());
    std::hash::Hash::hash(&engine.precompile_compatibility_hash(), &mut h);
    let digest = h.0.finalize();
    format!("wt{WASMTIME_VERSION}-{}", hex::encode(&digest[..8]))
}

impl Runtime {
    /// Build the engine from a configuration. Fails with a clear error if the configuration
    /// is invalid or the pooling allocator cannot reserve its address space.
    pub fn new(cfg: &EngineConfig) -> Result<Runtime, EngineError> {
        Runtime::build(cfg, true)
    }

    /// The same runtime without fuel metering, so a benchmark can price metering side by
    /// side on the pooled sync path. Nothing bounds a guest here — no fuel, and so no fuel
    /// yields where the wall-clock deadline is checked — and its fingerprint differs from
    /// every metered engine's: only for known guests, never for results that count.
    /// Evaluate with [`crate::evaluate_blocking`]; shards need a metered runtime.
    pub fn unmetered(cfg: &EngineConfig) -> Result<Runtime, EngineError> {
        Runtime::build(cfg, false)
    }

    fn build(cfg: &EngineConfig, metered: bool) -> Result<Runtime, EngineError> {
        let valid = cfg.validate()?;
        if cfg.deadline_tick.is_some() {
            tracing::warn!(
                "engine.deadline_tick is ignored: the wall-clock deadline is checked at every \
                 fuel yield (fuel_yield_interval); remove the line"
            );
        }
        let mut wcfg = deterministic_config(cfg);
        wcfg.consume_fuel(metered);
        let mut pool = PoolingAllocationConfig::new();
        pool.total_core_instances(valid.instance_slots())
            .total_memories(valid.instance_slots())
            // A module may define up to `max_tables_per_module` tables, each taking a slot.
            .total_tables(valid.instance_slots().saturating_mul(MAX_TABLES_PER_MODULE))
            .total_stacks(valid.stack_slots())
            .total_component_instances(0)
            .max_memories_per_module(1)
            .max_tables_per_module(MAX_TABLES_PER_MODULE)
            .max_memory_size(usize::try_from(cfg.memory_max_bytes).unwrap_or(usize::MAX))
            .linear_memory_keep_resident(cfg.memory_keep_resident_bytes)
            .table_keep_resident(64 << 10)
            .pagemap_scan(Enabled::Auto);
        wcfg.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let lanes = (0..valid.engines)
            .map(|_| {
                let engine = Engine::new(&wcfg)?;
                let mut linker = Linker::new(&engine);
                host::define(&mut linker)?;
                Ok(Lane { engine, linker })
            })
            .collect::<wasmtime::Result<Vec<Lane>>>()
            .map_err(|e| EngineError::Wasmtime(format!("{e:#}")))?;
        let engine_key = engine_fingerprint(&lanes[0].engine);
        let cache = match &cfg.artifact_cache_dir {
            Some(dir) => Some(ArtifactCache::new(dir, engine_key.clone())?),
            None => None,
        };
        m::describe();
        Ok(Runtime {
            inner: Arc::new(Inner {
                lanes,
                config: valid,
                cache,
                engine_key,
                cache_stats: CacheStats::default(),
            }),
        })
    }

    /// The validated configuration.
    pub fn config(&self) -> &ValidEngineConfig {
        &self.inner.config
    }

    /// Fingerprint of the wasmtime version and configuration; validators must agree on it.
    pub fn engine_key(&self) -> &str {
        &self.inner.engine_key
    }

    /// Artifact cache counters.
    pub fn cache_stats(&self) -> &CacheStats {
        &self.inner.cache_stats
    }

    /// Engine `engine` (0 for callers outside the shards).
    pub(crate) fn engine(&self, engine: usize) -> &Engine {
        &self.inner.lanes[engine].engine
    }

    /// Validate, compile (or load from the artifact cache) and link a challenge.
    pub fn register(&self, spec: ChallengeSpec) -> Result<Arc<Challenge>, ModuleError> {
        let cfg = &self.inner.config;
        let size = spec.wasm.len() as u64;
        if size > cfg.raw.module_max_bytes {
            return Err(ModuleError::TooLarge {
                size,
                max: cfg.raw.module_max_bytes,
            });
        }
        spec.policy.validate(cfg)?;
        let wasm = wat::parse_bytes(&spec.wasm).map_err(|e| ModuleError::Invalid(e.to_string()))?;
        let module_hash: Hash32 = Sha256::digest(&spec.wasm).into();
        let (module, source) = self.load_module(&wasm, &module_hash)?;
        check_abi(&module, &spec.policy)?;
        let data: Arc<[u8]> = spec.data.into();
        let mut lanes = Vec::with_capacity(self.inner.lanes.len());
        let artifact = match self.inner.lanes.len() {
            1 => None,
            _ => Some(
                module
                    .serialize()
                    .map_err(|e| ModuleError::Invalid(format!("{e:#}")))?,
            ),
        };
        for (i, lane) in self.inner.lanes.iter().enumerate() {
            let module = match (i, &artifact) {
                (0, _) | (_, None) => module.clone(),
                // SAFETY: the bytes were serialized just now from a module of engine 0,
                // which is configured exactly as this one (one `Config` built them all).
                (_, Some(bytes)) => unsafe { Module::deserialize(&lane.engine, bytes) }
                    .map_err(|e| ModuleError::Invalid(format!("{e:#}")))?,
            };
            let abi = AbiExports::of(&module).ok_or(ModuleError::MissingExport(EXPORT_EVALUATE))?;
            let pre = lane
                .linker
                .instantiate_pre(&module)
                .map_err(|e| ModuleError::Link(format!("{e:#}")))?;
            lanes.push(ChallengeLane {
                pre,
                abi,
                data: Arc::new(data.clone()),
            });
        }
        tracing::info!(challenge = %spec.id, name = %spec.name, module = %hex::encode(module_hash), ?source, engines = lanes.len(), "challenge registered");
        Ok(Arc::new(Challenge {
            id: spec.id,
            name: spec.name,
            module_hash,
            policy: spec.policy,
            lanes,
            source,
        }))
    }

    fn compile(&self, wasm: &[u8]) -> Result<Module, ModuleError> {
        Module::from_binary(self.engine(0), wasm)
            .map_err(|e| ModuleError::Invalid(format!("{e:#}")))
    }

    fn load_module(
        &self,
        wasm: &[u8],
        module_hash: &Hash32,
    ) -> Result<(Module, ArtifactSource), ModuleError> {
        let Some(cache) = &self.inner.cache else {
            return Ok((self.compile(wasm)?, ArtifactSource::Compiled));
        };
        let stats = &self.inner.cache_stats;
        let source = match cache.load(module_hash) {
            Lookup::Hit(artifact) => {
                // SAFETY: the artifact was written by `precompile_module` of an engine with the
                // same fingerprint (it is part of the file name) and its sha256 checksum was
                // verified on read, so these are bytes this engine configuration produced.
                match unsafe { Module::deserialize(self.engine(0), &artifact) } {
                    Ok(module) => {
                        stats.hits.fetch_add(1, Ordering::Relaxed);
                        metrics::counter!(m::MODULE_CACHE, "result" => "hit").increment(1);
                        return Ok((module, ArtifactSource::Cache));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cached artifact rejected by wasmtime; recompiling");
                        ArtifactSource::RecompiledCorrupt
                    }
                }
            }
            Lookup::Miss => ArtifactSource::Compiled,
            Lookup::Corrupt(reason) => {
                tracing::warn!(%reason, "corrupt artifact cache entry; recompiling");
                ArtifactSource::RecompiledCorrupt
            }
        };
        let counter = if source == ArtifactSource::Compiled {
            &stats.misses
        } else {
            &stats.corrupt
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let label = if source == ArtifactSource::Compiled {
            "miss"
        } else {
            "corrupt"
        };
        metrics::counter!(m::MODULE_CACHE, "result" => label).increment(1);
        let artifact = self
            .engine(0)
            .precompile_module(wasm)
            .map_err(|e| ModuleError::Invalid(format!("{e:#}")))?;
        if let Err(e) = cache.store(module_hash, &artifact) {
            tracing::warn!(error = %e, "could not write artifact cache entry");
        }
        // SAFETY: `artifact` was produced just now by `precompile_module` on this very engine.
        let module = unsafe { Module::deserialize(self.engine(0), &artifact) }
            .map_err(|e| ModuleError::Invalid(format!("{e:#}")))?;
        Ok((module, source))
    }
}

/// Check imports against the whitelist and policy, and exports against ABI v1.
fn check_abi(module: &Module, policy: &ChallengePolicy) -> Result<(), ModuleError> {
    for import in module.imports() {
        if import.module() != HOST_MODULE {
            return Err(ModuleError::UnknownImport {
                module: import.module().into(),
                name: import.name().into(),
            });
        }
        let Some(f) = HostFn::from_import_name(import.name()) else {
            return Err(ModuleError::UnknownImport {
                module: import.module().into(),
                name: import.name().into(),
            });
        };
        if !policy.allowed_host_functions.contains(&f) {
            return Err(ModuleError::ForbiddenImport(f.import_name()));
        }
    }
    let export = |name: &'static str| {
        module
            .get_export(name)
            .ok_or(ModuleError::MissingExport(name))
    };
    match export(EXPORT_MEMORY)? {
        ExternType::Memory(mem) => {
            let initial = mem.minimum().saturating_mul(crate::config::WASM_PAGE_BYTES);
            if initial > policy.memory_limit_bytes {
                return Err(ModuleError::InitialMemoryTooLarge {
                    initial,
                    limit: policy.memory_limit_bytes,
                });
            }
        }
        _ => {
            return Err(ModuleError::WrongExportType {
                name: EXPORT_MEMORY,
                expected: "memory",
            });
        }
    }
    let func_type =
        |name: &'static str, params: &[ValType], results: &[ValType], expected: &'static str| {
            let wrong = ModuleError::WrongExportType { name, expected };
            match export(name)? {
                ExternType::Func(f) => {
                    let p: Vec<_> = f.params().collect();
                    let r: Vec<_> = f.results().collect();
                    let same = |a: &[ValType], b: &[ValType]| {
                        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| ValType::eq(x, y))
                    };
                    if same(&p, params) && same(&r, results) {
                        Ok(())
                    } else {
                        Err(wrong)
                    }
                }
                _ => Err(wrong),
            }
        };
    func_type(EXPORT_ABI_MARKER, &[], &[], "func () -> ()")?;
    func_type(
        EXPORT_ALLOC,
        &[ValType::I32],
        &[ValType::I32],
        "func (i32) -> i32",
    )?;
    func_type(
        EXPORT_EVALUATE,
        &[ValType::I32, ValType::I32],
        &[ValType::I64],
        "func (i32, i32) -> i64",
    )?;
    Ok(())
}
