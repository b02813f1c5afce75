//! The naive evaluation path of the system we replace, kept for the benchmark's baseline
//! column and as a cross-check: per evaluation a new `Linker` with every host function, a
//! new `Store`, an on-demand (non-pooled) instantiation and synchronous calls, one after
//! another on the caller's thread. Same deterministic configuration and outcome mapping as
//! the pooled engine, so both must produce identical results.

use std::collections::BTreeMap;
use std::sync::Arc;

use wasmtime::{Engine, Linker, Module};

use crate::config::EngineConfig;
use crate::eval::{self, Meta, Submission};
use crate::host::{self, HostState};
use crate::result::{EvalReport, EvalResult, Hash32};
use crate::runtime::{
    Challenge, EXPORT_ALLOC, EXPORT_EVALUATE, EXPORT_MEMORY, EngineError, ModuleError,
    deterministic_config,
};

/// Naive evaluator: no pool, no shards, no pre-instantiation.
pub struct Baseline {
    engine: Engine,
    modules: BTreeMap<Hash32, Module>,
}

impl std::fmt::Debug for Baseline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Baseline")
            .field("modules", &self.modules.len())
            .finish_non_exhaustive()
    }
}

impl Baseline {
    /// An engine with the deterministic configuration and wasmtime's default allocator.
    pub fn new(cfg: &EngineConfig) -> Result<Baseline, EngineError> {
        let engine = Engine::new(&deterministic_config(cfg))
            .map_err(|e| EngineError::Wasmtime(format!("{e:#}")))?;
        Ok(Baseline {
            engine,
            modules: BTreeMap::new(),
        })
    }

    /// Compile `wasm` (the bytes `challenge` was registered with) for this engine.
    pub fn add(&mut self, challenge: &Challenge, wasm: &[u8]) -> Result<(), ModuleError> {
        let module =
            Module::new(&self.engine, wasm).map_err(|e| ModuleError::Invalid(format!("{e:#}")))?;
        self.modules.insert(challenge.module_hash, module);
        Ok(())
    }

    /// Evaluate the way the old system did. Returns `None` for a challenge not added.
    pub fn evaluate(&self, sub: &Submission) -> Option<EvalReport> {
        let start = std::time::Instant::now();
        let module = self.modules.get(&sub.challenge.module_hash)?;
        let (result, store) = self.run(module, &sub.challenge, sub);
        let nanos = eval::nanos_since(start);
        let ran = eval::Ran {
            result,
            store,
            sync: true,
        };
        Some(eval::report(ran, 0, nanos, false))
    }

    /// The naive instance lifecycle alone: new linker with every host function, new store,
    /// on-demand instantiation, drop. Returns false if the challenge was not added or
    /// instantiation failed.
    pub fn instantiate_and_drop(&self, challenge: &Challenge) -> bool {
        let Some(module) = self.modules.get(&challenge.module_hash) else {
            return false;
        };
        let mut linker = Linker::new(&self.engine);
        host::define(&mut linker).expect("host functions are well-typed");
        let mut store = eval::new_store(&self.engine, challenge, 0, None);
        linker.instantiate(&mut store, module).is_ok()
    }

    fn run(
        &self,
        module: &Module,
        challenge: &Arc<Challenge>,
        sub: &Submission,
    ) -> (EvalResult, wasmtime::Store<HostState>) {
        let meta = Meta {
            submission_id: sub.id,
            challenge_id: challenge.id,
            module_hash: challenge.module_hash,
            policy: &challenge.policy,
        };
        let mut linker = Linker::new(&self.engine);
        host::define(&mut linker).expect("host functions are well-typed");
        // The deadline is checked at host calls only: this path has no fuel yields.
        let mut store = eval::new_store(&self.engine, challenge, 0, None);
        let instance = match linker.instantiate(&mut store, module) {
            Ok(i) => i,
            Err(e) => {
                let outcome = eval::classify(&store, &e);
                return (eval::finish(&store, &meta, Err(outcome)), store);
            }
        };
        // As on the pooled path, the context is set after instantiation.
        eval::set_context(
            &mut store,
            sub,
            eval::deadline_from_now(challenge.policy.deadline),
        );
        let output = (|| {
            // As a plain embedding does: look the exports up by name, typed and checked.
            let abi = crate::result::Outcome::Trap(crate::result::TrapKind::AbiViolation);
            let memory = instance.get_memory(&mut store, EXPORT_MEMORY).ok_or(abi)?;
            let alloc = instance
                .get_typed_func::<i32, i32>(&mut store, EXPORT_ALLOC)
                .map_err(|_| abi)?;
            let evaluate = instance
                .get_typed_func::<(i32, i32), i64>(&mut store, EXPORT_EVALUATE)
                .map_err(|_| abi)?;
            let len = i32::try_from(sub.payload.len())
                .map_err(|_| crate::result::Outcome::InvalidOutput)?;
            let ptr = alloc
                .call(&mut store, len)
                .map_err(|e| eval::classify(&store, &e))?;
            eval::write_input(&mut store, memory, ptr, &sub.payload)?;
            let start = std::time::Instant::now();
            let called = evaluate.call(&mut store, (ptr, len));
            store.data_mut().call_nanos = eval::nanos_since(start);
            let packed = called.map_err(|e| eval::classify(&store, &e))?;
            eval::read_output(&store, memory, packed)
        })();
        (eval::finish(&store, &meta, output), store)
    }
}
