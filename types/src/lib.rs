//! The vocabulary every Platform crate shares, in one home: the 32-byte hash, how it is
//! computed, and the wall clock that shells (never protocol code) hand to state machines.
//!
//! This crate must stay tiny and dependency-light: anything here is compiled into every
//! other crate, including the consensus core.

use sha2::{Digest, Sha256};

/// A 32-byte content hash (sha256): submission ids, blob and module hashes, block hashes,
/// consensus values.
pub type Hash32 = [u8; 32];

/// sha256 of bytes.
pub fn sha256(bytes: &[u8]) -> Hash32 {
    Sha256::digest(bytes).into()
}

/// Milliseconds since the Unix epoch. For shells and envelope timestamps only: protocol
/// state machines take time as an input and never call this.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_matches_the_standard_vector() {
        // FIPS 180-2 test vector for "abc".
        let h = sha256(b"abc");
        assert_eq!(h[..4], [0xba, 0x78, 0x16, 0xbf]);
        assert_eq!(h[28..], [0xf2, 0x00, 0x15, 0xad]);
    }

    #[test]
    fn clock_is_after_2024() {
        assert!(now_ms() > 1_704_067_200_000);
    }
}
