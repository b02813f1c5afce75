//! Capacity: more challenges registered than `challenges_max` sized the instance pool for.
//! The shards keep ready instances within the pool's budget (cold challenges give theirs
//! up), so no evaluation is ever `Aborted` for want of an instance slot.

use std::collections::BTreeMap;
use std::time::Duration;

use platform_engine::{
    ChallengeId, ChallengePolicy, ChallengeSpec, EngineConfig, EvalContext, Outcome, Runtime,
    ShardedEngine, Submission,
};

/// Scores the first payload byte, so each evaluation's score says which one it was.
fn module(tag: u32) -> String {
    format!(
        r#"(module
    (memory (export "memory") 1)
    (global $tag i32 (i32.const {tag}))
    (func (export "platform_abi_v1"))
    (func (export "platform_alloc") (param i32) (result i32) (i32.const 1024))
    (func (export "platform_evaluate") (param $ptr i32) (param $len i32) (result i64)
        (i64.store (i32.const 0) (i64.extend_i32_u (i32.load8_u (local.get $ptr))))
        (i64.const 8)))"#
    )
}

#[test]
fn more_challenges_than_the_pool_was_sized_for_never_abort() {
    let cfg = EngineConfig {
        shards: 2,
        pin_shards: false,
        in_flight_per_shard: 2,
        instances_ready_per_challenge: 2,
        challenges_max: 2,
        ..EngineConfig::default()
    };
    // 2 shards × (2 × 2 ready + 2 × 2 in flight) + 8 = 24 slots; 16 challenges × 2 ready
    // instances on each shard would want 64.
    let rt = Runtime::new(&cfg).unwrap();
    let challenges: Vec<_> = (0..16u32)
        .map(|i| {
            rt.register(ChallengeSpec {
                id: ChallengeId(100 + i),
                name: format!("c{i}"),
                wasm: module(i).into_bytes(),
                policy: ChallengePolicy::default(),
                data: vec![],
            })
            .expect("registration accepts more than challenges_max")
        })
        .collect();
    let engine = ShardedEngine::start(rt).unwrap();
    for c in &challenges {
        engine.warm(c);
    }
    let mut expected = BTreeMap::new();
    let mut received = 0;
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    // Every challenge in turn, then bursts of one, so pools go hot and cold.
    let order: Vec<usize> = (0..640)
        .map(|k| if k < 320 { k % 16 } else { (k / 40) % 16 })
        .collect();
    for (k, &ci) in order.iter().enumerate() {
        let mut sub = Submission::new(
            challenges[ci].clone(),
            vec![(k % 251) as u8],
            EvalContext::default(),
        );
        sub.id[..8].copy_from_slice(&(k as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15).to_le_bytes());
        expected.insert(sub.id, (k % 251) as u64);
        while let Err(e) = engine.submit(sub.clone()) {
            assert!(
                matches!(
                    e,
                    platform_engine::SubmitError::QueueFull { .. }
                        | platform_engine::SubmitError::Saturated { .. }
                ),
                "{e}"
            );
            let r = engine
                .recv_timeout(Duration::from_secs(30))
                .expect("a report");
            received += 1;
            check(&r, &expected, &mut outcomes);
        }
    }
    while received < order.len() {
        let r = engine
            .recv_timeout(Duration::from_secs(30))
            .expect("a report");
        received += 1;
        check(&r, &expected, &mut outcomes);
    }
    assert_eq!(outcomes.get("scored"), Some(&order.len()), "{outcomes:?}");
}

fn check(
    r: &platform_engine::EvalReport,
    expected: &BTreeMap<platform_engine::Hash32, u64>,
    outcomes: &mut BTreeMap<String, usize>,
) {
    *outcomes
        .entry(r.result.outcome.as_str().to_string())
        .or_default() += 1;
    if r.result.outcome == Outcome::Scored {
        assert_eq!(Some(&r.result.score), expected.get(&r.result.submission_id));
    }
}
