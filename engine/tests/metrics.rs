//! Engine metrics through the `metrics` facade: evaluations by challenge and outcome, the
//! latency histogram, fuel, queue depth and pool occupancy per shard, rejections by reason.

use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use platform_engine::{
    ChallengeId, ChallengePolicy, ChallengeSpec, EngineConfig, EvalContext, Runtime, ShardedEngine,
    Submission, metrics as m,
};

fn module(body: &str) -> String {
    format!(
        r#"(module (memory (export "memory") 1) (func (export "platform_abi_v1"))
            (func (export "platform_alloc") (param i32) (result i32) (i32.const 1024))
            (func (export "platform_evaluate") (param i32 i32) (result i64) {body}))"#
    )
}

#[test]
fn evaluations_are_counted_by_challenge_and_outcome() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder
        .install()
        .expect("only recorder in this test binary");

    let rt = Runtime::new(&EngineConfig {
        shards: 2,
        pin_shards: false,
        ..EngineConfig::default()
    })
    .unwrap();
    let policy = ChallengePolicy {
        fuel_limit: 100_000,
        input_max_bytes: 64,
        ..ChallengePolicy::default()
    };
    let spec = |id, wat: String| ChallengeSpec {
        id: ChallengeId(id),
        name: format!("c{id}"),
        wasm: wat.into_bytes(),
        policy: policy.clone(),
        data: vec![],
    };
    let good = rt
        .register(spec(
            1,
            module("(i64.store (i32.const 0) (i64.const 5)) (i64.const 8)"),
        ))
        .unwrap();
    let spin = rt
        .register(spec(2, module("(loop $l (br $l)) (i64.const 0)")))
        .unwrap();
    let engine = ShardedEngine::start(rt).unwrap();
    engine.warm(&good);
    for n in 0..10u8 {
        engine
            .submit(Submission::new(
                good.clone(),
                vec![n],
                EvalContext::default(),
            ))
            .unwrap();
    }
    for n in 0..3u8 {
        engine
            .submit(Submission::new(
                spin.clone(),
                vec![n],
                EvalContext::default(),
            ))
            .unwrap();
    }
    assert!(
        engine
            .submit(Submission::new(
                good.clone(),
                vec![0; 65],
                EvalContext::default()
            ))
            .is_err()
    );
    for _ in 0..13 {
        engine
            .recv_timeout(Duration::from_secs(30))
            .expect("report");
    }
    engine.shutdown();

    let snapshot = snapshotter.snapshot().into_vec();
    let find = |name: &str, labels: &[(&str, &str)]| {
        snapshot
            .iter()
            .filter(|(key, ..)| {
                key.key().name() == name
                    && labels
                        .iter()
                        .all(|(k, v)| key.key().labels().any(|l| l.key() == *k && l.value() == *v))
            })
            .map(|(_, _, _, value)| value)
            .collect::<Vec<_>>()
    };
    let counter = |name: &str, labels: &[(&str, &str)]| -> u64 {
        find(name, labels)
            .iter()
            .map(|v| {
                if let DebugValue::Counter(c) = v {
                    *c
                } else {
                    0
                }
            })
            .sum()
    };
    assert_eq!(
        counter(m::EVALUATIONS, &[("challenge", "1"), ("outcome", "scored")]),
        10
    );
    assert_eq!(
        counter(
            m::EVALUATIONS,
            &[("challenge", "2"), ("outcome", "out_of_fuel")]
        ),
        3
    );
    assert_eq!(
        counter(m::EVALUATIONS, &[("challenge", "1"), ("outcome", "trap")]),
        0
    );
    assert_eq!(counter(m::FUEL_CONSUMED, &[("challenge", "2")]), 300_000);
    assert_eq!(
        counter(m::SUBMISSIONS_REJECTED, &[("reason", "payload_too_large")]),
        1
    );
    let samples: usize = find(m::EVALUATION_DURATION, &[("challenge", "1")])
        .iter()
        .map(|v| {
            if let DebugValue::Histogram(h) = v {
                h.len()
            } else {
                0
            }
        })
        .sum();
    assert_eq!(samples, 10);
    for shard in ["0", "1"] {
        assert!(
            !find(m::QUEUE_DEPTH, &[("shard", shard)]).is_empty(),
            "queue depth gauge for shard {shard}"
        );
        assert!(
            !find(m::POOL_READY, &[("shard", shard)]).is_empty(),
            "pool gauge for shard {shard}"
        );
    }
}
