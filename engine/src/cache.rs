//! On-disk cache of compiled module artifacts, keyed by (wasmtime version, engine config
//! hash, module sha256). Files carry a checksum; a corrupted file is recompiled, never trusted.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::result::Hash32;

/// File magic and format version of a cache entry.
const MAGIC: &[u8; 8] = b"PLTCWSM1";

/// What looking up an artifact found.
#[derive(Debug)]
pub(crate) enum Lookup {
    /// A verified artifact produced by an engine with the same key.
    Hit(Vec<u8>),
    /// No entry.
    Miss,
    /// An entry that failed its checksum or framing; the reason is logged and counted.
    Corrupt(String),
}

/// Artifact cache rooted at a directory.
#[derive(Debug, Clone)]
pub(crate) struct ArtifactCache {
    dir: PathBuf,
    engine_key: String,
}

impl ArtifactCache {
    pub fn new(dir: &Path, engine_key: String) -> std::io::Result<Self> {
        fs::create_dir_all(dir)?;
        Ok(ArtifactCache {
            dir: dir.to_path_buf(),
            engine_key,
        })
    }

    /// Path of the entry for a module.
    pub fn path(&self, module_hash: &Hash32) -> PathBuf {
        self.dir.join(format!(
            "{}-{}.cwasm",
            hex::encode(module_hash),
            self.engine_key
        ))
    }

    pub fn load(&self, module_hash: &Hash32) -> Lookup {
        let path = self.path(module_hash);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Lookup::Miss,
            Err(e) => return Lookup::Corrupt(format!("read {}: {e}", path.display())),
        };
        if bytes.len() < MAGIC.len() + 32 || &bytes[..MAGIC.len()] != MAGIC {
            return Lookup::Corrupt(format!("{}: bad header", path.display()));
        }
        let (sum, artifact) = bytes[MAGIC.len()..].split_at(32);
        let actual: Hash32 = Sha256::digest(artifact).into();
        if actual.as_slice() != sum {
            return Lookup::Corrupt(format!("{}: checksum mismatch", path.display()));
        }
        Lookup::Hit(artifact.to_vec())
    }

    /// Write an entry atomically (temp file + rename) so a crash never leaves half a file
    /// under the final name.
    pub fn store(&self, module_hash: &Hash32, artifact: &[u8]) -> std::io::Result<()> {
        let mut tmp = tempfile::NamedTempFile::new_in(&self.dir)?;
        let sum: Hash32 = Sha256::digest(artifact).into();
        tmp.write_all(MAGIC)?;
        tmp.write_all(&sum)?;
        tmp.write_all(artifact)?;
        tmp.as_file().sync_all()?;
        tmp.persist(self.path(module_hash))
            .map(drop)
            .map_err(|e| e.error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_corruption_detected() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ArtifactCache::new(dir.path(), "k1".into()).unwrap();
        let h = [9u8; 32];
        assert!(matches!(cache.load(&h), Lookup::Miss));
        cache.store(&h, b"artifact bytes").unwrap();
        match cache.load(&h) {
            Lookup::Hit(b) => assert_eq!(b, b"artifact bytes"),
            other => panic!("{other:?}"),
        }
        let path = cache.path(&h);
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        fs::write(&path, &bytes).unwrap();
        assert!(matches!(cache.load(&h), Lookup::Corrupt(_)));
        fs::write(&path, b"short").unwrap();
        assert!(matches!(cache.load(&h), Lookup::Corrupt(_)));
    }

    #[test]
    fn key_separates_engines() {
        let dir = tempfile::tempdir().unwrap();
        let a = ArtifactCache::new(dir.path(), "a".into()).unwrap();
        let b = ArtifactCache::new(dir.path(), "b".into()).unwrap();
        a.store(&[1; 32], b"x").unwrap();
        assert!(matches!(b.load(&[1; 32]), Lookup::Miss));
    }
}
