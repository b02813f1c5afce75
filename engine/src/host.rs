//! The host-function whitelist (module `platform`), the per-evaluation store state and the
//! memory limiter. Every host function is deterministic, charges fuel, and is counted.

use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use wasmtime::{Caller, Linker, ResourceLimiter};

use crate::result::Hash32;

/// Wasm import module that holds every host function.
pub const HOST_MODULE: &str = "platform";

/// The host functions a challenge may import (if its policy allows them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HostFn {
    /// `log(ptr: i32, len: i32)`: append to the evaluation's bounded log.
    Log,
    /// `sha256(ptr: i32, len: i32, out: i32)`: write the 32-byte digest at `out`.
    Sha256,
    /// `data_len() -> i32`: size of the challenge's registered data.
    DataLen,
    /// `data_read(offset: i32, ptr: i32, len: i32) -> i32`: copy registered data, return bytes copied.
    DataRead,
    /// `epoch() -> i64`: the epoch the evaluation belongs to.
    Epoch,
    /// `submission_id(out: i32)`: write the 32-byte submission id.
    SubmissionId,
    /// `seed(out: i32)`: write the 32-byte seed derived from agreed data.
    Seed,
}

impl HostFn {
    /// Every host function, in ABI order.
    pub const ALL: [HostFn; 7] = [
        HostFn::Log,
        HostFn::Sha256,
        HostFn::DataLen,
        HostFn::DataRead,
        HostFn::Epoch,
        HostFn::SubmissionId,
        HostFn::Seed,
    ];

    /// Import name inside the `platform` module.
    pub fn import_name(self) -> &'static str {
        match self {
            HostFn::Log => "log",
            HostFn::Sha256 => "sha256",
            HostFn::DataLen => "data_len",
            HostFn::DataRead => "data_read",
            HostFn::Epoch => "epoch",
            HostFn::SubmissionId => "submission_id",
            HostFn::Seed => "seed",
        }
    }

    /// The host function with this import name, if any.
    pub fn from_import_name(name: &str) -> Option<HostFn> {
        HostFn::ALL.into_iter().find(|f| f.import_name() == name)
    }
}

/// Calls per host function in one evaluation, indexed like [`HostFn::ALL`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostCallCounts(pub [u32; HostFn::ALL.len()]);

impl HostCallCounts {
    /// Calls made to `f`.
    pub fn get(&self, f: HostFn) -> u32 {
        self.0[f as usize]
    }

    /// Host functions called at least once, with counts.
    pub fn used(&self) -> impl Iterator<Item = (HostFn, u32)> + '_ {
        HostFn::ALL
            .into_iter()
            .map(|f| (f, self.get(f)))
            .filter(|(_, n)| *n > 0)
    }

    fn bump(&mut self, f: HostFn) {
        let slot = &mut self.0[f as usize];
        *slot = slot.saturating_add(1);
    }
}

/// Agreed inputs of an evaluation that a guest may read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvalContext {
    /// Epoch the evaluation belongs to.
    pub epoch: u64,
    /// Seed derived from agreed data (e.g. the epoch's block hash).
    pub seed: Hash32,
}

/// Fuel charged per host call, plus per byte touched: host work is not free.
const HOST_CALL_FUEL: u64 = 100;

/// Why a host function refused a call; surfaces as `Trap(HostCall)`.
#[derive(Debug, thiserror::Error)]
#[error("host function `{function}` refused the call: {reason}")]
pub struct HostTrap {
    /// Which function.
    pub function: &'static str,
    /// Why.
    pub reason: &'static str,
}

/// Raised by a host call made past the evaluation's wall-clock deadline; surfaces as
/// `Timeout`. (A guest that calls the host often never spends a whole fuel slice without
/// one — each charge refills the slice — so the calls check the clock themselves.)
#[derive(Debug, thiserror::Error)]
#[error("wall-clock deadline passed")]
pub(crate) struct DeadlinePassed;

/// Raised by the limiter when the guest asks for memory beyond its policy.
#[derive(Debug, thiserror::Error)]
#[error("memory limit of {limit} bytes exceeded (asked for {desired})")]
pub struct MemoryLimitHit {
    /// Policy limit in bytes.
    pub limit: usize,
    /// Size the guest asked for.
    pub desired: usize,
}

/// Store data of one evaluation. `Send` so the async call APIs accept it.
#[derive(Debug)]
pub(crate) struct HostState {
    pub data: Arc<Arc<[u8]>>,
    pub submission_id: Hash32,
    pub ctx: EvalContext,
    pub memory_limit: usize,
    pub memory_limit_hit: bool,
    pub host_calls: HostCallCounts,
    pub log: Vec<u8>,
    pub log_max: usize,
    pub log_dropped_bytes: u64,
    /// Wall time of the `platform_evaluate` call (local only, for reports).
    pub call_nanos: u64,
    /// When the running instantiation or evaluation must give up (the safety net).
    pub deadline: Instant,
}

impl HostState {
    pub fn new(
        data: Arc<Arc<[u8]>>,
        memory_limit: usize,
        log_max: usize,
        deadline: Instant,
    ) -> Self {
        HostState {
            data,
            submission_id: [0; 32],
            ctx: EvalContext::default(),
            memory_limit,
            memory_limit_hit: false,
            host_calls: HostCallCounts::default(),
            log: Vec::new(),
            log_max,
            log_dropped_bytes: 0,
            call_nanos: 0,
            deadline,
        }
    }
}

impl ResourceLimiter for HostState {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_limit {
            self.memory_limit_hit = true;
            return Err(MemoryLimitHit {
                limit: self.memory_limit,
                desired,
            }
            .into());
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }

    fn instances(&self) -> usize {
        1
    }

    fn tables(&self) -> usize {
        4
    }

    fn memories(&self) -> usize {
        1
    }
}

fn refuse(function: HostFn, reason: &'static str) -> wasmtime::Error {
    HostTrap {
        function: function.import_name(),
        reason,
    }
    .into()
}

/// Count the call and charge `HOST_CALL_FUEL + bytes` fuel; out of fuel is a fuel trap, a
/// call past the deadline a timeout.
fn enter(caller: &mut Caller<'_, HostState>, f: HostFn, bytes: u64) -> wasmtime::Result<()> {
    caller.data_mut().host_calls.bump(f);
    if Instant::now() >= caller.data().deadline {
        return Err(DeadlinePassed.into());
    }
    let cost = HOST_CALL_FUEL.saturating_add(bytes);
    let fuel = caller.get_fuel()?;
    if fuel < cost {
        caller.set_fuel(0)?;
        return Err(wasmtime::Trap::OutOfFuel.into());
    }
    caller.set_fuel(fuel - cost)
}

fn memory(caller: &mut Caller<'_, HostState>, f: HostFn) -> wasmtime::Result<wasmtime::Memory> {
    match caller.get_export("memory") {
        Some(wasmtime::Extern::Memory(m)) => Ok(m),
        _ => Err(refuse(f, "module exports no memory")),
    }
}

fn range(
    ptr: i32,
    len: i32,
    mem_len: usize,
    f: HostFn,
) -> wasmtime::Result<std::ops::Range<usize>> {
    let start = u32::try_from(ptr).map_err(|_| refuse(f, "negative pointer"))? as usize;
    let len = u32::try_from(len).map_err(|_| refuse(f, "negative length"))? as usize;
    let end = start
        .checked_add(len)
        .ok_or_else(|| refuse(f, "range overflows"))?;
    if end > mem_len {
        return Err(refuse(f, "range out of bounds"));
    }
    Ok(start..end)
}

fn write_hash(
    caller: &mut Caller<'_, HostState>,
    f: HostFn,
    out: i32,
    value: Hash32,
) -> wasmtime::Result<()> {
    enter(caller, f, 32)?;
    let mem = memory(caller, f)?;
    let r = range(out, 32, mem.data_size(&*caller), f)?;
    mem.data_mut(&mut *caller)[r].copy_from_slice(&value);
    Ok(())
}

/// Define every whitelisted host function in `linker`. Which ones a module may import is
/// checked against its policy at registration.
pub(crate) fn define(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        HOST_MODULE,
        HostFn::Log.import_name(),
        |mut caller: Caller<'_, HostState>, ptr: i32, len: i32| {
            let f = HostFn::Log;
            enter(&mut caller, f, u64::try_from(len.max(0)).unwrap_or(0))?;
            let mem = memory(&mut caller, f)?;
            let r = range(ptr, len, mem.data_size(&caller), f)?;
            let (bytes, state) = mem.data_and_store_mut(&mut caller);
            let room = state.log_max.saturating_sub(state.log.len());
            let take = room.min(r.len());
            state.log.extend_from_slice(&bytes[r.start..r.start + take]);
            state.log_dropped_bytes += (r.len() - take) as u64;
            Ok(())
        },
    )?;
    linker.func_wrap(
        HOST_MODULE,
        HostFn::Sha256.import_name(),
        |mut caller: Caller<'_, HostState>, ptr: i32, len: i32, out: i32| {
            let f = HostFn::Sha256;
            enter(
                &mut caller,
                f,
                u64::try_from(len.max(0)).unwrap_or(0).saturating_mul(2),
            )?;
            let mem = memory(&mut caller, f)?;
            let size = mem.data_size(&caller);
            let r = range(ptr, len, size, f)?;
            let o = range(out, 32, size, f)?;
            let data = mem.data_mut(&mut caller);
            let digest: Hash32 = Sha256::digest(&data[r]).into();
            data[o].copy_from_slice(&digest);
            Ok(())
        },
    )?;
    linker.func_wrap(
        HOST_MODULE,
        HostFn::DataLen.import_name(),
        |mut caller: Caller<'_, HostState>| {
            enter(&mut caller, HostFn::DataLen, 0)?;
            Ok(i32::try_from(caller.data().data.len()).unwrap_or(i32::MAX))
        },
    )?;
    linker.func_wrap(
        HOST_MODULE,
        HostFn::DataRead.import_name(),
        |mut caller: Caller<'_, HostState>, offset: i32, ptr: i32, len: i32| {
            let f = HostFn::DataRead;
            enter(&mut caller, f, u64::try_from(len.max(0)).unwrap_or(0))?;
            let offset = u32::try_from(offset).map_err(|_| refuse(f, "negative offset"))? as usize;
            let mem = memory(&mut caller, f)?;
            let r = range(ptr, len, mem.data_size(&caller), f)?;
            let (bytes, state) = mem.data_and_store_mut(&mut caller);
            let src = state.data.get(offset..).unwrap_or(&[]);
            let n = src.len().min(r.len());
            bytes[r.start..r.start + n].copy_from_slice(&src[..n]);
            Ok(i32::try_from(n).unwrap_or(i32::MAX))
        },
    )?;
    linker.func_wrap(
        HOST_MODULE,
        HostFn::Epoch.import_name(),
        |mut caller: Caller<'_, HostState>| {
            enter(&mut caller, HostFn::Epoch, 0)?;
            Ok(caller.data().ctx.epoch as i64)
        },
    )?;
    linker.func_wrap(
        HOST_MODULE,
        HostFn::SubmissionId.import_name(),
        |mut caller: Caller<'_, HostState>, out: i32| {
            let id = caller.data().submission_id;
            write_hash(&mut caller, HostFn::SubmissionId, out, id)
        },
    )?;
    linker.func_wrap(
        HOST_MODULE,
        HostFn::Seed.import_name(),
        |mut caller: Caller<'_, HostState>, out: i32| {
            let seed = caller.data().ctx.seed;
            write_hash(&mut caller, HostFn::Seed, out, seed)
        },
    )?;
    Ok(())
}
