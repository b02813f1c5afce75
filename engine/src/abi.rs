//! The ABI v1 surface of an instance, found once per challenge. Registration checks the
//! exports' types (`check_abi`) and records where they are ([`AbiExports`]); each instance
//! resolves them by index, without a second type check. Looking functions up by name and
//! type-checking them for every instance cost a tenth of a shard's time on a small
//! challenge, much of it on the type registry's lock and reference counts that every shard
//! shares. (Both paths still call through `TypedFunc`: wasmtime's raw call interface puts
//! host frames of another size below the wasm stack limit, so recursion would overflow at
//! another depth on the sync path than on the async one — see `tests/paths.rs`.)

use wasmtime::{Extern, Instance, Memory, Module, ModuleExport, Store, TypedFunc};

use crate::host::HostState;
use crate::result::{Outcome, TrapKind};
use crate::runtime::{EXPORT_ALLOC, EXPORT_EVALUATE, EXPORT_MEMORY};

/// Where a registered module's ABI exports are. Only made after `check_abi` accepted the
/// module: the functions' types are the ABI's.
#[derive(Clone, Copy)]
pub(crate) struct AbiExports {
    memory: ModuleExport,
    alloc: ModuleExport,
    evaluate: ModuleExport,
}

impl AbiExports {
    /// The export indices of a module `check_abi` accepted (`None` if one is missing).
    pub(crate) fn of(module: &Module) -> Option<AbiExports> {
        Some(AbiExports {
            memory: module.get_export_index(EXPORT_MEMORY)?,
            alloc: module.get_export_index(EXPORT_ALLOC)?,
            evaluate: module.get_export_index(EXPORT_EVALUATE)?,
        })
    }
}

/// The ABI exports of one instance.
pub(crate) struct Exports {
    pub memory: Memory,
    pub alloc: TypedFunc<i32, i32>,
    pub evaluate: TypedFunc<(i32, i32), i64>,
}

impl Exports {
    /// Resolve `abi` in an instance of the module it was made from. Anything else is an ABI
    /// break (wasmtime answers `None` for an instance of another module).
    pub(crate) fn resolve(
        store: &mut Store<HostState>,
        instance: &Instance,
        abi: &AbiExports,
    ) -> Result<Exports, Outcome> {
        let broken = Outcome::Trap(TrapKind::AbiViolation);
        let mut get = |e: &ModuleExport| instance.get_module_export(&mut *store, e);
        let (Some(Extern::Memory(memory)), Some(Extern::Func(alloc)), Some(Extern::Func(evaluate))) =
            (get(&abi.memory), get(&abi.alloc), get(&abi.evaluate))
        else {
            return Err(broken);
        };
        // SAFETY: both functions come from an instance of the module `abi` was made from
        // (wasmtime checked the module above), whose export types `check_abi` verified as
        // `func (i32) -> i32` and `func (i32, i32) -> i64`: `typed` would succeed.
        let (alloc, evaluate) = unsafe {
            (
                TypedFunc::new_unchecked(&*store, alloc),
                TypedFunc::new_unchecked(&*store, evaluate),
            )
        };
        Ok(Exports {
            memory,
            alloc,
            evaluate,
        })
    }
}
