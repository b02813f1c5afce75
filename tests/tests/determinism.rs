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

/// The corpus's agreed results as this build computes them. Engine speed work (Cranelift
/// and memory settings, pooling, scheduling) must leave them unchanged: a different value
/// means validators on this build and on the last would disagree. Change them only with a
/// consensus-breaking release, together with the engine fingerprint.
///
/// `CORPUS_DIGEST` covers whole results (fuel and module hash included) and holds when the
/// example modules are the bytes in `PINNED_MODULES`; another Rust toolchain builds other
/// bytes (and fuel counts), so then only `SCORES_DIGEST` (outcome, score, output hash) is
/// compared, which no compiler may change.
const CORPUS_DIGEST: &str = "7d9a96b699ce738cbcf17a96586ec020447cc11b6fbdd1cde4f67777f0f1dbfd";
const SCORES_DIGEST: &str = "9ccad888be450b79bcb25aaf285b485ca574f292f782f0b688f0983221f8bf5e";
const PINNED_MODULES: [&str; 3] = [
    "a088b594289be265bb5a8dbf0179c12ba3f552794a6491327fe79dff85fcf8f1",
    "0865846917b2d80efce79f5ef334bdd0829356df7b29b7c291086877d19e762e",
    "f063cfc24cc333737107a381575a9e0700b1c9c5cd2ab4fc4db27ae0b3006070",
];

fn scores_digest(results: &[EvalResult]) -> String {
    let mut h = Sha256::new();
    for r in results {
        h.update(r.outcome.as_str());
        h.update(r.score.to_le_bytes());
        h.update(r.output_hash);
    }
    hex::encode(h.finalize())
}

fn corpus_digest(results: &[EvalResult]) -> String {
    let mut h = Sha256::new();
    for r in results {
        h.update(r.hash());
    }
    hex::encode(h.finalize())
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
    assert_eq!(
        scores_digest(&one_a),
        SCORES_DIGEST,
        "the corpus's scores changed (see CORPUS_DIGEST)"
    );
    let modules: Vec<String> = EXAMPLES
        .iter()
        .map(|e| hex::encode(Sha256::digest(e.wasm)))
        .collect();
    if modules == PINNED_MODULES {
        assert_eq!(
            corpus_digest(&one_a),
            CORPUS_DIGEST,
            "the agreed results of the corpus changed (see CORPUS_DIGEST)"
        );
    } else {
        println!(
            "example modules {modules:?} are not the pinned build (another toolchain): \
             whole results are not compared with CORPUS_DIGEST, scores are"
        );
    }

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
