//! The allocator's figures. The `platform` binary allocates with jemalloc (see `main.rs`);
//! its statistics tell live data (`allocated`) apart from pages the allocator holds
//! (`resident`), which a process's RSS alone cannot: a growing `allocated` is data kept, a
//! growing `resident` over a flat `allocated` is fragmentation.

use tikv_jemalloc_ctl::{background_thread, epoch, stats};

/// jemalloc's figures, bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Heap {
    /// Bytes the program holds allocated.
    pub allocated: u64,
    /// Bytes in pages holding allocations (≥ allocated).
    pub active: u64,
    /// Bytes of the allocator's pages resident in memory, its metadata included.
    pub resident: u64,
    /// Bytes of the allocator's own metadata.
    pub metadata: u64,
    /// Bytes of address space kept mapped but returned to the system.
    pub retained: u64,
}

/// Let jemalloc's background thread return unused pages to the system on its own schedule
/// (otherwise purging happens only inside allocation calls, so an idle thread's freed pages
/// stay resident). Called once by the `platform` binary before anything else.
pub fn start_purging() {
    if let Err(e) = background_thread::write(true) {
        tracing::warn!(error = %e, "jemalloc background purging not started");
    }
}

/// The current figures; `None` where jemalloc is not this process's allocator (test binaries,
/// `bench`) or its statistics cannot be read.
pub fn read() -> Option<Heap> {
    epoch::advance().ok()?;
    let allocated = stats::allocated::read().ok()? as u64;
    if allocated == 0 {
        return None;
    }
    Some(Heap {
        allocated,
        active: stats::active::read().ok()? as u64,
        resident: stats::resident::read().ok()? as u64,
        metadata: stats::metadata::read().ok()? as u64,
        retained: stats::retained::read().ok()? as u64,
    })
}
