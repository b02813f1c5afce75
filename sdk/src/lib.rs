//! Guest SDK for Platform challenges. A challenge is a function from the miner's payload to
//! an [`Evaluation`]; [`export_challenge!`] generates the challenge ABI v1 exports
//! (`platform_abi_v1`, `platform_alloc`, `platform_evaluate`) when built for
//! `wasm32-unknown-unknown`, and nothing on other targets, so the same crate also builds
//! natively (for tests and the benchmark's native column).
//!
//! ```
//! fn score(payload: &[u8]) -> platform_sdk::Evaluation {
//!     platform_sdk::Evaluation::score(platform_sdk::ratio(payload.len() as u64, 100))
//! }
//! platform_sdk::export_challenge!(score);
//! # assert_eq!(score(&[0; 50]).score, platform_sdk::SCORE_SCALE / 2);
//! ```
//!
//! Rules a challenge must keep (the engine enforces what it can): no floats in the score
//! path unless you accept NaN canonicalisation, no global state carried between calls (each
//! instance serves exactly one evaluation), and a score in `0..=SCORE_SCALE`.

/// Version of the challenge ABI this SDK implements.
pub const ABI_VERSION: u32 = 1;

/// Fixed-point scale of scores: `SCORE_SCALE` means 1.0.
pub const SCORE_SCALE: u64 = 1_000_000_000;

/// What a challenge returns for one payload.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Evaluation {
    /// Fixed-point score in `0..=SCORE_SCALE`.
    pub score: u64,
    /// Optional details (hashed into the result; keep them small and deterministic).
    pub details: Vec<u8>,
}

impl Evaluation {
    /// A score with no details; clamped to `SCORE_SCALE`.
    pub fn score(score: u64) -> Evaluation {
        Evaluation {
            score: score.min(SCORE_SCALE),
            details: Vec::new(),
        }
    }

    /// The zero score, for payloads that are malformed or invalid.
    pub fn reject() -> Evaluation {
        Evaluation::default()
    }

    /// Encode as the ABI output: score (u64 little endian) then details.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + self.details.len());
        out.extend_from_slice(&self.score.min(SCORE_SCALE).to_le_bytes());
        out.extend_from_slice(&self.details);
        out
    }
}

/// `num / den` as a fixed-point score, rounded down, clamped to `0..=SCORE_SCALE`;
/// 0 when `den` is 0. Integer maths only.
pub fn ratio(num: u64, den: u64) -> u64 {
    if den == 0 {
        return 0;
    }
    let v = u128::from(num) * u128::from(SCORE_SCALE) / u128::from(den);
    u64::try_from(v).unwrap_or(u64::MAX).min(SCORE_SCALE)
}

/// One SplitMix64 step: advance `state` and return 64 random bits. A `const fn`, so
/// challenges can generate embedded datasets at compile time.
pub const fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A small deterministic generator (SplitMix64) for challenges that derive data from a seed.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// Seeded generator.
    pub const fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// Next 64 random bits.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        splitmix64(&mut self.0)
    }

    /// Uniform value in `0..n` (n > 0), by rejection-free multiply-shift.
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }
}

/// The guest allocator (wasm32 only, feature `bump-allocator`, on by default): a bump
/// allocator. An instance serves exactly one evaluation and is then dropped, so freeing is
/// pointless; bumping is a few instructions, and with the heap inside the module's initial
/// memory (see `.cargo/config.toml`: `--initial-memory`) an evaluation never calls
/// `memory.grow`, which on the host would change page protections (a TLB shootdown across
/// every core). The last allocation can be freed or grown in place, which keeps `Vec`
/// growth cheap; beyond the initial memory it grows memory like any allocator.
#[cfg(all(target_arch = "wasm32", feature = "bump-allocator"))]
mod bump {
    use core::alloc::{GlobalAlloc, Layout};
    use core::cell::Cell;

    const PAGE: usize = 65_536;

    unsafe extern "C" {
        /// First byte after static data and stack, defined by wasm-ld.
        static __heap_base: u8;
    }

    struct Bump {
        next: Cell<usize>,
    }

    // SAFETY: wasm32-unknown-unknown guests are single-threaded (threads are disabled by
    // the engine), so the cell is never accessed concurrently.
    unsafe impl Sync for Bump {}

    impl Bump {
        fn claim(&self, start: usize, size: usize) -> *mut u8 {
            let Some(end) = start.checked_add(size) else {
                return core::ptr::null_mut();
            };
            let have = core::arch::wasm32::memory_size(0) * PAGE;
            if end > have
                && core::arch::wasm32::memory_grow(0, (end - have).div_ceil(PAGE)) == usize::MAX
            {
                return core::ptr::null_mut();
            }
            self.next.set(end);
            start as *mut u8
        }
    }

    // SAFETY: returns blocks aligned as asked, within linear memory, never handed out twice.
    unsafe impl GlobalAlloc for Bump {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            let mut next = self.next.get();
            if next == 0 {
                next = core::ptr::addr_of!(__heap_base) as usize;
            }
            let start = (next + layout.align() - 1) & !(layout.align() - 1);
            self.claim(start, layout.size())
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            if ptr as usize + layout.size() == self.next.get() {
                self.next.set(ptr as usize);
            }
        }

        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            if ptr as usize + layout.size() == self.next.get() {
                return self.claim(ptr as usize, new_size);
            }
            // SAFETY: same contract as `GlobalAlloc::realloc`; copy into a fresh block.
            unsafe {
                let new = self.alloc(Layout::from_size_align_unchecked(new_size, layout.align()));
                if !new.is_null() {
                    core::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                }
                new
            }
        }
    }

    #[global_allocator]
    static ALLOCATOR: Bump = Bump { next: Cell::new(0) };
}

/// Host functions (module `platform`). On wasm32 they call the engine; on other targets they
/// run natively against a thread-local context so scoring code is testable off-wasm.
pub mod host {
    #[cfg(target_arch = "wasm32")]
    mod imports {
        #[link(wasm_import_module = "platform")]
        unsafe extern "C" {
            pub fn log(ptr: i32, len: i32);
            pub fn sha256(ptr: i32, len: i32, out: i32);
            pub fn data_len() -> i32;
            pub fn data_read(offset: i32, ptr: i32, len: i32) -> i32;
            pub fn epoch() -> i64;
            pub fn submission_id(out: i32);
            pub fn seed(out: i32);
        }
    }

    /// Append a message to the evaluation's bounded log (audit only, never scored).
    pub fn log(msg: &str) {
        #[cfg(target_arch = "wasm32")]
        // SAFETY: pointer and length describe `msg`, valid for the duration of the call.
        unsafe {
            imports::log(msg.as_ptr() as i32, msg.len() as i32)
        }
        #[cfg(not(target_arch = "wasm32"))]
        native::with(|c| c.log.extend_from_slice(msg.as_bytes()));
    }

    /// sha256 of `data`, computed by the host (cheaper in fuel than hashing in wasm).
    pub fn sha256(data: &[u8]) -> [u8; 32] {
        #[cfg(target_arch = "wasm32")]
        {
            let mut out = [0u8; 32];
            // SAFETY: both ranges are valid guest memory for the duration of the call.
            unsafe {
                imports::sha256(
                    data.as_ptr() as i32,
                    data.len() as i32,
                    out.as_mut_ptr() as i32,
                )
            };
            out
        }
        #[cfg(not(target_arch = "wasm32"))]
        {
            use sha2::Digest;
            sha2::Sha256::digest(data).into()
        }
    }

    /// The challenge's registered data (e.g. a hidden evaluation set).
    pub fn data() -> Vec<u8> {
        #[cfg(target_arch = "wasm32")]
        {
            // SAFETY: plain host calls; the buffer is valid for `len` bytes.
            unsafe {
                let len = imports::data_len().max(0) as usize;
                let mut buf = vec![0u8; len];
                let n = imports::data_read(0, buf.as_mut_ptr() as i32, len as i32).max(0) as usize;
                buf.truncate(n);
                buf
            }
        }
        #[cfg(not(target_arch = "wasm32"))]
        native::with(|c| c.data.clone())
    }

    /// The epoch this evaluation belongs to.
    pub fn epoch() -> u64 {
        #[cfg(target_arch = "wasm32")]
        // SAFETY: plain host call.
        unsafe {
            imports::epoch() as u64
        }
        #[cfg(not(target_arch = "wasm32"))]
        native::with(|c| c.epoch)
    }

    /// The submission's id.
    pub fn submission_id() -> [u8; 32] {
        #[cfg(target_arch = "wasm32")]
        {
            let mut out = [0u8; 32];
            // SAFETY: `out` is valid for 32 bytes.
            unsafe { imports::submission_id(out.as_mut_ptr() as i32) };
            out
        }
        #[cfg(not(target_arch = "wasm32"))]
        native::with(|c| c.submission_id)
    }

    /// A seed derived from agreed data, identical on every validator.
    pub fn seed() -> [u8; 32] {
        #[cfg(target_arch = "wasm32")]
        {
            let mut out = [0u8; 32];
            // SAFETY: `out` is valid for 32 bytes.
            unsafe { imports::seed(out.as_mut_ptr() as i32) };
            out
        }
        #[cfg(not(target_arch = "wasm32"))]
        native::with(|c| c.seed)
    }

    /// Native stand-in for the host (not on wasm32): set the context scoring code sees.
    #[cfg(not(target_arch = "wasm32"))]
    pub mod native {
        use std::cell::RefCell;

        /// What the native host functions return.
        #[derive(Clone, Debug, Default)]
        pub struct Context {
            /// Returned by `data()`.
            pub data: Vec<u8>,
            /// Returned by `epoch()`.
            pub epoch: u64,
            /// Returned by `submission_id()`.
            pub submission_id: [u8; 32],
            /// Returned by `seed()`.
            pub seed: [u8; 32],
            /// Collected by `log()`.
            pub log: Vec<u8>,
        }

        thread_local! {
            static CONTEXT: RefCell<Context> = RefCell::new(Context::default());
        }

        /// Replace this thread's context.
        pub fn set(ctx: Context) {
            CONTEXT.with(|c| *c.borrow_mut() = ctx);
        }

        pub(crate) fn with<R>(f: impl FnOnce(&mut Context) -> R) -> R {
            CONTEXT.with(|c| f(&mut c.borrow_mut()))
        }
    }
}

/// Generate the ABI v1 exports for a scoring function `fn(&[u8]) -> Evaluation`.
///
/// Memory protocol: the host calls `platform_alloc(len)` and writes the payload there, then
/// `platform_evaluate(ptr, len)`, which returns `(out_ptr << 32) | out_len` of the encoded
/// [`Evaluation`]. Buffers are never freed: an instance serves exactly one evaluation.
#[macro_export]
macro_rules! export_challenge {
    ($score:path) => {
        #[cfg(target_arch = "wasm32")]
        const __PLATFORM_SCORE: fn(&[u8]) -> $crate::Evaluation = $score;

        #[cfg(target_arch = "wasm32")]
        mod __platform_abi_v1 {
            #[unsafe(no_mangle)]
            pub extern "C" fn platform_abi_v1() {}

            #[unsafe(no_mangle)]
            pub extern "C" fn platform_alloc(len: i32) -> i32 {
                let mut buf = ::std::vec::Vec::<u8>::with_capacity(len.max(0) as usize);
                let ptr = buf.as_mut_ptr();
                ::std::mem::forget(buf);
                ptr as i32
            }

            #[unsafe(no_mangle)]
            pub extern "C" fn platform_evaluate(ptr: i32, len: i32) -> i64 {
                // SAFETY: the host wrote exactly `len` bytes at `ptr`, a buffer obtained from
                // `platform_alloc(len)` in this instance.
                let input = unsafe {
                    ::std::slice::from_raw_parts(ptr as usize as *const u8, len.max(0) as usize)
                };
                let out = super::__PLATFORM_SCORE(input).encode();
                let out_len = out.len() as u64;
                let out_ptr = out.as_ptr() as usize as u64;
                ::std::mem::forget(out);
                ((out_ptr << 32) | out_len) as i64
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_is_clamped_and_integer() {
        assert_eq!(ratio(1, 2), SCORE_SCALE / 2);
        assert_eq!(ratio(3, 2), SCORE_SCALE);
        assert_eq!(ratio(1, 0), 0);
        assert_eq!(ratio(u64::MAX, u64::MAX), SCORE_SCALE);
        assert_eq!(ratio(1, 3), 333_333_333);
    }

    #[test]
    fn encoding_is_score_then_details() {
        let e = Evaluation {
            score: 5,
            details: vec![9, 9],
        };
        assert_eq!(e.encode(), vec![5, 0, 0, 0, 0, 0, 0, 0, 9, 9]);
        assert_eq!(Evaluation::score(SCORE_SCALE * 2).score, SCORE_SCALE);
    }

    #[test]
    fn splitmix_is_stable() {
        let mut r = SplitMix64::new(0);
        assert_eq!(r.next(), 0xE220_A839_7B1D_CDAF);
        assert!(r.below(10) < 10);
    }
}
