//! Determinism: a corpus of 1,200 evaluations across every example challenge, run on 1 and
//! on 2 shards, twice each, yields the identical sequence of result hashes (fuel included),
//! and the same results as the naive baseline path and the same scores as native code.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use platform_challenges::EXAMPLES;
use platform_engine::{
    Baseline, Challenge, ChallengeId, ChallengePolicy, ChallengeSpec, EngineConfig, EvalContext,
    EvalResult, Hash32, Outcome, Runtime, ShardedEngine, Submission,
};
use sha2::{Digest, Sha256};

/// Submissions per example challenge, cheapest first.
const PER_CHALLENGE: [usize; 3] = [500, 500, 200];

fn policy() -> ChallengePolicy {
    ChallengePolicy {
        fuel_limit: 200_000_000,
        ..ChallengePolicy::default()
    }
}

fn register_all(rt: &Runtime) -> Vec<Arc<Challenge>> {
    EXAMPLES
        .iter()
        .map(|e| {
            rt.register(ChallengeSpec {
                id: ChallengeId(e.id),
                name: e.name.into(),
                wasm: e.wasm.to_vec(),
                policy: policy(),
                data: Vec::new(),
            })
            .expect("example registers")
        })
        .collect()
}

/// The corpus: (challenge index, payload, context), in a fixed order. Some payloads are
/// deliberately malformed (every 17th is truncated) so rejections are covered too.
fn corpus() -> Vec<(usize, Vec<u8>, EvalContext)> {
    let mut out = vec![];
    for (ci, (e, n)) in EXAMPLES.iter().zip(PER_CHALLENGE).enumerate() {
        for k in 0..n as u64 {
            let mut payload = (e.sample_payload)(k * 7919 + ci as u64);
            if k % 17 == 0 {
                payload.truncate(payload.len() / 2);
            }
            let seed: Hash32 = Sha256::digest(k.to_le_bytes()).into();
            out.push((
                ci,
                payload,
                EvalContext {
                    epoch: 42 + k % 3,
                    seed,
                },
            ));
        }
    }
    out
}

fn run_sharded(shards: usize) -> Vec<EvalResult> {
    let cfg = EngineConfig {
        shards,
        pin_shards: false,
        ..EngineConfig::default()
    };
    let rt = Runtime::new(&cfg).expect("engine");
    let challenges = register_all(&rt);
    let engine = ShardedEngine::start(rt).expect("shards");
    for c in &challenges {
        engine.warm(c);
    }
    let corpus = corpus();
    let mut index: HashMap<Hash32, usize> = HashMap::new();
    let mut results: Vec<Option<EvalResult>> = vec![None; corpus.len()];
    let mut received = 0;
    let mut pending = corpus.into_iter().enumerate().peekable();
    while received < results.len() {
        // Submit until the engine pushes back, then read; backpressure is part of the test.
        while let Some((i, (ci, payload, ctx))) = pending.peek() {
            let sub = Submission::new(challenges[*ci].clone(), payload.clone(), *ctx);
            let id = sub.id;
            match engine.submit(sub) {
                Ok(()) => {
                    assert!(index.insert(id, *i).is_none(), "corpus ids are unique");
                    pending.next();
                }
                Err(_) => break,
            }
        }
        let r = engine
            .recv_timeout(Duration::from_secs(60))
            .expect("reports arrive");
        let i = index[&r.result.submission_id];
        assert!(
            results[i].replace(r.result).is_none(),
            "one report per submission"
        );
        received += 1;
    }
    engine.shutdown();
    results
        .into_iter()
        .map(|r| r.expect("all reported"))
        .collect()
}

fn digest(results: &[EvalResult]) -> Vec<Hash32> {
    results.iter().map(EvalResult::hash).collect()
}

#[test]
fn identical_results_across_shard_counts_runs_baseline_and_native() {
    let one_a = run_sharded(1);
    let one_b = run_sharded(1);
    let two_a = run_sharded(2);
    let two_b = run_sharded(2);
    assert_eq!(one_a.len(), 1200);
    assert_eq!(digest(&one_a), digest(&one_b), "1 shard, run to run");
    assert_eq!(digest(&one_a), digest(&two_a), "1 shard vs 2 shards");
    assert_eq!(digest(&two_a), digest(&two_b), "2 shards, run to run");

    // Every outcome is deterministic and the corpus exercises both scores and rejections.
    assert!(
        one_a.iter().all(|r| r.outcome == Outcome::Scored),
        "examples never trap on this corpus"
    );
    assert!(one_a.iter().any(|r| r.score == 0) && one_a.iter().any(|r| r.score > 0));
    assert!(one_a.iter().all(|r| r.fuel_used > 0));

    // The naive path (fresh linker, on-demand instance, sync calls) agrees bit for bit,
    // and the native build of the same scoring code gives the same scores.
    let rt = Runtime::new(&EngineConfig {
        shards: 1,
        ..EngineConfig::default()
    })
    .unwrap();
    let challenges = register_all(&rt);
    let mut baseline = Baseline::new(&EngineConfig::default()).unwrap();
    for (c, e) in challenges.iter().zip(EXAMPLES.iter()) {
        baseline.add(c, e.wasm).unwrap();
    }
    for (i, (ci, payload, ctx)) in corpus().into_iter().enumerate().step_by(7) {
        let native = (EXAMPLES[ci].native)(&payload);
        let sub = Submission::new(challenges[ci].clone(), payload, ctx);
        let naive = baseline.evaluate(&sub).expect("challenge added");
        assert_eq!(
            naive.result, one_a[i],
            "baseline differs at corpus item {i}"
        );
        assert_eq!(
            native.score, one_a[i].score,
            "native score differs at corpus item {i}"
        );
        let native_output_hash: Hash32 = Sha256::digest(native.encode()).into();
        assert_eq!(
            native_output_hash, one_a[i].output_hash,
            "native output differs at corpus item {i}"
        );
    }
}
