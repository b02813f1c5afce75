//! Evaluation outcomes and results: values, never panics, with a canonical byte encoding.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zerocopy::little_endian::{U32, U64};
use zerocopy::{Immutable, IntoBytes, KnownLayout};

use crate::host::HostCallCounts;

pub use platform_types::Hash32;

/// Fixed-point score scale: a guest reports `score` where `SCORE_SCALE` means 1.0.
pub const SCORE_SCALE: u64 = 1_000_000_000;

/// Identifier of a registered challenge, chosen by the subnet owner.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ChallengeId(pub u32);

impl std::fmt::Display for ChallengeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Why a guest trapped. Stable codes: they are part of the canonical result encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[repr(u8)]
pub enum TrapKind {
    /// `unreachable` executed (Rust guests: a panic or an abort).
    Unreachable = 1,
    /// Out-of-bounds linear memory access.
    MemoryOutOfBounds = 2,
    /// Wasm call stack exhausted (`max_wasm_stack`).
    StackOverflow = 3,
    /// Integer division by zero.
    DivisionByZero = 4,
    /// Integer overflow (e.g. `i32::MIN / -1`).
    IntegerOverflow = 5,
    /// Invalid float-to-integer conversion.
    BadConversion = 6,
    /// Indirect call through a null or out-of-bounds table element, or with a wrong signature.
    BadIndirectCall = 7,
    /// A host function refused the call (bad pointer, bad length).
    HostCall = 8,
    /// The guest broke the challenge ABI (e.g. its allocator returned memory out of bounds).
    AbiViolation = 9,
    /// Any other wasm trap.
    Other = 255,
}

/// What happened to one evaluation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Outcome {
    /// The guest returned a well-formed output; `EvalResult::score` holds its score.
    Scored,
    /// The fuel budget of the challenge policy ran out (`fuel_used == fuel_limit`).
    OutOfFuel,
    /// The guest tried to grow memory beyond the policy's memory limit.
    MemoryLimit,
    /// The guest trapped.
    Trap(TrapKind),
    /// The wall-clock deadline (a safety net) fired. Not deterministic: never agreed on.
    Timeout,
    /// The guest returned output that breaks the ABI: out of bounds, too large, too short,
    /// or a score above `SCORE_SCALE`.
    InvalidOutput,
    /// This validator could not run the evaluation (instance pool exhausted, engine shutting
    /// down). Says nothing about the submission; never agreed on; the caller may retry.
    Aborted,
}

impl Outcome {
    /// Stable short name, used as a metrics label and in logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Scored => "scored",
            Outcome::OutOfFuel => "out_of_fuel",
            Outcome::MemoryLimit => "memory_limit",
            Outcome::Trap(_) => "trap",
            Outcome::Timeout => "timeout",
            Outcome::InvalidOutput => "invalid_output",
            Outcome::Aborted => "aborted",
        }
    }

    /// Every value `as_str` can return, for registering metric series up front.
    pub const LABELS: [&'static str; 7] = [
        "scored",
        "out_of_fuel",
        "memory_limit",
        "trap",
        "timeout",
        "invalid_output",
        "aborted",
    ];

    /// True when every honest validator computes the same outcome from the same inputs.
    /// Timeouts depend on the wall clock and aborts on local resources: neither is agreed.
    pub fn is_deterministic(&self) -> bool {
        !matches!(self, Outcome::Timeout | Outcome::Aborted)
    }

    fn code(&self) -> (u8, u8) {
        match self {
            Outcome::Scored => (1, 0),
            Outcome::OutOfFuel => (2, 0),
            Outcome::MemoryLimit => (3, 0),
            Outcome::Trap(kind) => (4, *kind as u8),
            Outcome::Timeout => (5, 0),
            Outcome::InvalidOutput => (6, 0),
            Outcome::Aborted => (7, 0),
        }
    }
}

/// The agreed part of an evaluation: identical bit for bit on every validator, shard count
/// and machine for deterministic outcomes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EvalResult {
    /// Hash identifying the submission (chosen by the caller; usually sha256 of the signed submission).
    pub submission_id: Hash32,
    /// The challenge that scored it.
    pub challenge_id: ChallengeId,
    /// sha256 of the challenge's wasm module.
    pub module_hash: Hash32,
    /// What happened.
    pub outcome: Outcome,
    /// Fixed-point score (`SCORE_SCALE` = 1.0); 0 unless `outcome` is `Scored`.
    pub score: u64,
    /// Fuel consumed, start function included.
    pub fuel_used: u64,
    /// sha256 of the guest's output bytes; all zero when there is no valid output.
    pub output_hash: Hash32,
}

/// Version tag of the canonical result encoding.
pub const RESULT_ENCODING_VERSION: u32 = 1;

/// Canonical fixed-layout encoding of an [`EvalResult`]: what gets hashed and signed.
#[derive(IntoBytes, Immutable, KnownLayout, Debug)]
#[repr(C)]
struct ResultRecord {
    version: U32,
    challenge_id: U32,
    submission_id: Hash32,
    module_hash: Hash32,
    output_hash: Hash32,
    score: U64,
    fuel_used: U64,
    outcome: u8,
    trap_kind: u8,
    reserved: [u8; 6],
}

impl EvalResult {
    /// The canonical encoding (fixed layout, little endian, 128 bytes).
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let (outcome, trap_kind) = self.outcome.code();
        let record = ResultRecord {
            version: U32::new(RESULT_ENCODING_VERSION),
            challenge_id: U32::new(self.challenge_id.0),
            submission_id: self.submission_id,
            module_hash: self.module_hash,
            output_hash: self.output_hash,
            score: U64::new(self.score),
            fuel_used: U64::new(self.fuel_used),
            outcome,
            trap_kind,
            reserved: [0; 6],
        };
        record.as_bytes().to_vec()
    }

    /// The agreed score in a canonical encoding: `Some(score)` for deterministic outcomes
    /// (0 for anything but `Scored`), `None` for outcomes never agreed on (timeouts,
    /// aborts) and for bytes that are not a canonical record.
    pub fn agreed_score(canonical: &[u8]) -> Option<u64> {
        if canonical.len() != 128 || canonical[0..4] != RESULT_ENCODING_VERSION.to_le_bytes() {
            return None;
        }
        let outcome = canonical[120];
        // Codes of `Outcome::code`: 5 = timeout, 7 = aborted; 1..=7 are defined.
        if !(1..=7).contains(&outcome) || outcome == 5 || outcome == 7 {
            return None;
        }
        Some(u64::from_le_bytes(canonical[104..112].try_into().ok()?))
    }

    /// sha256 of the canonical encoding.
    pub fn hash(&self) -> Hash32 {
        Sha256::digest(self.canonical_bytes()).into()
    }
}

/// Everything known about one evaluation: the agreed result plus local, non-agreed facts
/// (timing, shard, host calls, guest log) for metrics and the audit log.
#[derive(Clone, Debug)]
pub struct EvalReport {
    /// The agreed part.
    pub result: EvalResult,
    /// Which host functions the guest called, and how often.
    pub host_calls: HostCallCounts,
    /// Bounded guest log output (`platform.log`).
    pub log: Vec<u8>,
    /// Guest log bytes dropped beyond the policy's `log_max_bytes`.
    pub log_dropped_bytes: u64,
    /// Shard that ran it (local only).
    pub shard: usize,
    /// Time from taking the job to having the result, in nanoseconds (local only).
    pub service_nanos: u64,
    /// Time inside the guest's `platform_evaluate` call, in nanoseconds (local only; 0 if
    /// it was never called).
    pub call_nanos: u64,
    /// Whether a pre-instantiated instance was used (false: instantiated inline).
    pub pooled_instance: bool,
    /// Whether the evaluation ran to its end synchronously, within one yield slice of fuel
    /// (false: on the async path, yielding to its shard). Never changes the result.
    pub sync: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> EvalResult {
        EvalResult {
            submission_id: [1; 32],
            challenge_id: ChallengeId(7),
            module_hash: [2; 32],
            outcome: Outcome::Trap(TrapKind::StackOverflow),
            score: 0,
            fuel_used: 12345,
            output_hash: [0; 32],
        }
    }

    #[test]
    fn canonical_encoding_is_fixed_size_and_little_endian() {
        let bytes = sample().canonical_bytes();
        assert_eq!(bytes.len(), 128);
        assert_eq!(&bytes[0..4], &RESULT_ENCODING_VERSION.to_le_bytes());
        assert_eq!(&bytes[4..8], &7u32.to_le_bytes());
        assert_eq!(&bytes[112..120], &12345u64.to_le_bytes());
        assert_eq!(bytes[120], 4);
        assert_eq!(bytes[121], TrapKind::StackOverflow as u8);
    }

    #[test]
    fn agreed_score_reads_the_canonical_record() {
        let mut r = sample();
        r.outcome = Outcome::Scored;
        r.score = 123_456;
        assert_eq!(
            EvalResult::agreed_score(&r.canonical_bytes()),
            Some(123_456)
        );
        r.outcome = Outcome::Timeout;
        assert_eq!(EvalResult::agreed_score(&r.canonical_bytes()), None);
        r.outcome = Outcome::Aborted;
        assert_eq!(EvalResult::agreed_score(&r.canonical_bytes()), None);
        assert_eq!(
            EvalResult::agreed_score(&sample().canonical_bytes()),
            Some(0)
        );
        assert_eq!(EvalResult::agreed_score(b"short"), None);
    }

    #[test]
    fn every_field_changes_the_hash() {
        let base = sample();
        let mut variants = vec![];
        let mut r = base;
        r.fuel_used += 1;
        variants.push(r);
        let mut r = base;
        r.outcome = Outcome::Trap(TrapKind::Unreachable);
        variants.push(r);
        let mut r = base;
        r.challenge_id = ChallengeId(8);
        variants.push(r);
        let mut r = base;
        r.score = 1;
        variants.push(r);
        let mut r = base;
        r.output_hash[31] = 1;
        variants.push(r);
        for v in variants {
            assert_ne!(v.hash(), base.hash(), "{v:?}");
        }
    }
}
