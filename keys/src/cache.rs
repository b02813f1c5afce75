//! Decompressed public keys, by their bytes. Reading an sr25519 public key decompresses a
//! Ristretto point, which costs about a quarter of a batched verification per signature;
//! a subnet's miners and validators sign again and again with the same few keys, so the
//! points are kept (at most [`CAPACITY`]; emptied when full). A key that does not
//! decompress is never kept.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use schnorrkel::PublicKey;

/// Keys kept at most (~200 bytes each).
pub const CAPACITY: usize = 32_768;

static KEYS: LazyLock<Mutex<HashMap<[u8; 32], PublicKey>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// The keys `bytes` name, decompressed (from the cache where they are kept); `None` if any
/// does not decompress.
pub(crate) fn public_keys<'a>(bytes: impl Iterator<Item = &'a [u8; 32]>) -> Option<Vec<PublicKey>> {
    let bytes: Vec<&[u8; 32]> = bytes.collect();
    let mut out: Vec<Option<PublicKey>> = {
        let kept = KEYS.lock().unwrap_or_else(|p| p.into_inner());
        bytes.iter().map(|b| kept.get(*b).copied()).collect()
    };
    let mut fresh = Vec::new();
    for (slot, b) in out.iter_mut().zip(&bytes) {
        if slot.is_none() {
            let pk = PublicKey::from_bytes(&b[..]).ok()?;
            *slot = Some(pk);
            fresh.push((**b, pk));
        }
    }
    if !fresh.is_empty() {
        let mut kept = KEYS.lock().unwrap_or_else(|p| p.into_inner());
        if kept.len() + fresh.len() > CAPACITY {
            kept.clear();
        }
        kept.extend(fresh.into_iter().take(CAPACITY));
    }
    out.into_iter().collect()
}

/// One key, decompressed.
pub(crate) fn public_key(bytes: &[u8; 32]) -> Option<PublicKey> {
    public_keys(std::iter::once(bytes))?.pop()
}

#[cfg(test)]
pub(crate) fn kept(bytes: &[u8; 32]) -> bool {
    KEYS.lock()
        .unwrap_or_else(|p| p.into_inner())
        .contains_key(bytes)
}
