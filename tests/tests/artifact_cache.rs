//! The compiled-artifact cache: a second engine start loads from disk instead of compiling,
//! and a corrupted cache file is detected and recompiled, never trusted.

use platform_challenges::EXAMPLES;
use platform_engine::{
    ArtifactSource, ChallengeId, ChallengePolicy, ChallengeSpec, EngineConfig, EvalContext,
    Runtime, Submission, evaluate_blocking,
};
use std::sync::atomic::Ordering;

fn runtime(dir: &std::path::Path) -> Runtime {
    Runtime::new(&EngineConfig {
        shards: 1,
        artifact_cache_dir: Some(dir.to_path_buf()),
        ..EngineConfig::default()
    })
    .expect("engine")
}

fn spec(i: usize) -> ChallengeSpec {
    let e = &EXAMPLES[i];
    ChallengeSpec {
        id: ChallengeId(e.id),
        name: e.name.into(),
        wasm: e.wasm.to_vec(),
        policy: ChallengePolicy::default(),
        data: vec![],
    }
}

#[test]
fn second_start_loads_from_disk_and_corruption_is_recompiled() {
    let dir = tempfile::tempdir().unwrap();

    let first = runtime(dir.path());
    let compiled: Vec<_> = (0..EXAMPLES.len())
        .map(|i| first.register(spec(i)).unwrap())
        .collect();
    assert!(
        compiled
            .iter()
            .all(|c| c.source == ArtifactSource::Compiled)
    );
    assert_eq!(first.cache_stats().misses.load(Ordering::Relaxed), 3);
    let payload = (EXAMPLES[0].sample_payload)(1);
    let expected = evaluate_blocking(
        &first,
        &Submission::new(compiled[0].clone(), payload.clone(), EvalContext::default()),
    );
    drop(first);

    let second = runtime(dir.path());
    let loaded: Vec<_> = (0..EXAMPLES.len())
        .map(|i| second.register(spec(i)).unwrap())
        .collect();
    assert!(
        loaded.iter().all(|c| c.source == ArtifactSource::Cache),
        "{loaded:?}"
    );
    assert_eq!(second.cache_stats().hits.load(Ordering::Relaxed), 3);
    assert_eq!(second.cache_stats().misses.load(Ordering::Relaxed), 0);
    let again = evaluate_blocking(
        &second,
        &Submission::new(loaded[0].clone(), payload.clone(), EvalContext::default()),
    );
    assert_eq!(again.result, expected.result);
    drop(second);

    // Flip one byte in the middle of every cache file.
    let mut corrupted = 0;
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "cwasm") {
            let mut bytes = std::fs::read(&path).unwrap();
            let mid = bytes.len() / 2;
            bytes[mid] ^= 0x5a;
            std::fs::write(&path, bytes).unwrap();
            corrupted += 1;
        }
    }
    assert_eq!(corrupted, 3);

    let third = runtime(dir.path());
    let recompiled = third.register(spec(0)).unwrap();
    assert_eq!(recompiled.source, ArtifactSource::RecompiledCorrupt);
    assert_eq!(third.cache_stats().corrupt.load(Ordering::Relaxed), 1);
    let fixed = evaluate_blocking(
        &third,
        &Submission::new(recompiled, payload, EvalContext::default()),
    );
    assert_eq!(fixed.result, expected.result);
    drop(third);

    // The rewritten entry is good again.
    let fourth = runtime(dir.path());
    assert_eq!(
        fourth.register(spec(0)).unwrap().source,
        ArtifactSource::Cache
    );
}
