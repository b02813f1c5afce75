//! The sync path (no fiber, fuel capped at one yield slice) and the async path give the
//! same results bit for bit, fuel included, on either side of the slice boundary, in the
//! start function and in the evaluation; the report says which path finished. Shards on
//! separate wasmtime engines give the same results too.

use std::time::Duration;

use platform_engine::{
    Baseline, ChallengeId, ChallengePolicy, ChallengeSpec, EngineConfig, EvalContext, Outcome,
    Runtime, ShardedEngine, Submission,
};

const SLICE: u64 = 10_000;

/// Loops `n` times in the start function (global `$start_loops`) and, per evaluation, as
/// many times as the payload's first byte × 100; scores the loop count.
fn module(start_loops: u32) -> String {
    format!(
        r#"(module
    (memory (export "memory") 1)
    (global $acc (mut i64) (i64.const 0))
    (func $spin (param $n i32)
        (block $done (loop $l
            (br_if $done (i32.eqz (local.get $n)))
            (global.set $acc (i64.add (global.get $acc) (i64.const 1)))
            (local.set $n (i32.sub (local.get $n) (i32.const 1)))
            (br $l))))
    (func $init (call $spin (i32.const {start_loops})))
    (start $init)
    (func (export "platform_abi_v1"))
    (func (export "platform_alloc") (param i32) (result i32) (i32.const 1024))
    (func (export "platform_evaluate") (param $ptr i32) (param $len i32) (result i64)
        (call $spin (i32.mul (i32.load8_u (local.get $ptr)) (i32.const 100)))
        (i64.store (i32.const 0) (global.get $acc))
        (i64.const 8)))"#
    )
}

fn config() -> EngineConfig {
    EngineConfig {
        shards: 1,
        pin_shards: false,
        fuel_yield_interval: SLICE,
        ..EngineConfig::default()
    }
}

#[test]
fn sync_and_async_paths_agree_across_the_slice_boundary() {
    let rt = Runtime::new(&config()).unwrap();
    let mut baseline = Baseline::new(&config()).unwrap();
    let engine_rt = Runtime::new(&config()).unwrap();
    let mut challenges = vec![];
    let mut engine_challenges = vec![];
    // Start functions well inside, and well beyond, one slice.
    for (i, start_loops) in [10u32, 5_000].into_iter().enumerate() {
        let spec = ChallengeSpec {
            id: ChallengeId(i as u32 + 1),
            name: format!("spin{start_loops}"),
            wasm: module(start_loops).into_bytes(),
            policy: ChallengePolicy {
                fuel_limit: 200_000,
                ..ChallengePolicy::default()
            },
            data: vec![],
        };
        let ch = rt.register(spec.clone()).unwrap();
        baseline.add(&ch, &spec.wasm).unwrap();
        challenges.push(ch);
        engine_challenges.push(engine_rt.register(spec).unwrap());
    }
    let engine = ShardedEngine::start(engine_rt).unwrap();
    // Payload bytes: tiny, just under and over a slice, and past the fuel limit.
    let payloads = [1u8, 15, 40, 255];
    let mut seen = vec![];
    for (ci, ch) in challenges.iter().enumerate() {
        for &b in &payloads {
            let sub = Submission::new(ch.clone(), vec![b], EvalContext::default());
            let sync = platform_engine::evaluate_blocking(&rt, &sub);
            let fiber = platform_engine::evaluate_blocking_async(&rt, &sub);
            let naive = baseline.evaluate(&sub).unwrap();
            assert_eq!(sync.result, fiber.result, "challenge {ci}, byte {b}");
            assert_eq!(sync.result, naive.result, "challenge {ci}, byte {b}");
            assert!(!fiber.sync);
            assert_eq!(
                sync.sync,
                sync.result.fuel_used < SLICE,
                "only what fits in a slice finishes on the sync path ({ci}, {b}: {} fuel)",
                sync.result.fuel_used
            );
            let on_shard = Submission::new(
                engine_challenges[ci].clone(),
                vec![b],
                EvalContext::default(),
            );
            engine.submit(on_shard).unwrap();
            let r = engine
                .recv_timeout(Duration::from_secs(30))
                .expect("a report");
            assert_eq!(r.result.outcome, sync.result.outcome);
            assert_eq!(r.result.score, sync.result.score);
            assert_eq!(r.result.fuel_used, sync.result.fuel_used);
            seen.push((sync.sync, sync.result.outcome));
        }
    }
    assert!(seen.contains(&(true, Outcome::Scored)));
    assert!(seen.contains(&(false, Outcome::Scored)));
    assert!(seen.contains(&(false, Outcome::OutOfFuel)));
}

/// Shards spread over several wasmtime engines (three shards on two here, so one engine
/// serves two) give what the calling thread's engine gives, fuel and trap depth included,
/// on either path.
#[test]
fn every_engine_gives_the_same_results() {
    let cfg = EngineConfig {
        shards: 3,
        engines: 2,
        ..config()
    };
    let rt = Runtime::new(&cfg).unwrap();
    let engine_rt = Runtime::new(&cfg).unwrap();
    let mut pairs = vec![];
    for (i, wasm) in [module(10), module(5_000), RECURSE.to_string()]
        .into_iter()
        .enumerate()
    {
        let spec = ChallengeSpec {
            id: ChallengeId(i as u32 + 1),
            name: format!("m{i}"),
            wasm: wasm.into_bytes(),
            policy: ChallengePolicy {
                fuel_limit: 200_000,
                ..ChallengePolicy::default()
            },
            data: vec![],
        };
        pairs.push((
            rt.register(spec.clone()).unwrap(),
            engine_rt.register(spec).unwrap(),
        ));
    }
    let engine = ShardedEngine::start(engine_rt).unwrap();
    let mut shards_seen = std::collections::BTreeSet::new();
    let mut outcomes = std::collections::BTreeSet::new();
    for (here, there) in &pairs {
        for b in [1u8, 15, 40, 255] {
            for shard in 0..3u64 {
                let mut sub = Submission::new(here.clone(), vec![b], EvalContext::default());
                sub.id[..8].copy_from_slice(&(shard + 3 * u64::from(b)).to_le_bytes());
                let expected = platform_engine::evaluate_blocking(&rt, &sub);
                sub.challenge = there.clone();
                assert_eq!(engine.route(&sub), shard as usize);
                engine.submit(sub).unwrap();
                let r = engine
                    .recv_timeout(Duration::from_secs(30))
                    .expect("a report");
                assert_eq!(r.result, expected.result, "shard {shard}, byte {b}");
                shards_seen.insert(r.shard);
                outcomes.insert(format!("{:?}", r.result.outcome));
            }
        }
    }
    assert_eq!(shards_seen.len(), 3);
    assert!(
        outcomes.len() >= 3,
        "scored, out of fuel and a trap: {outcomes:?}"
    );
}

const RECURSE: &str = r#"(module
    (memory (export "memory") 1)
    (func $down (param i32) (result i32)
        (call $down (i32.add (local.get 0) (i32.const 1))))
    (func (export "platform_abi_v1"))
    (func (export "platform_alloc") (param i32) (result i32) (i32.const 1024))
    (func (export "platform_evaluate") (param $ptr i32) (param $len i32) (result i64)
        (drop (call $down (i32.const 0)))
        (i64.const 0)))"#;

/// The wasm stack limit counts from the guest's entry on either path (the sync path runs on
/// the caller's stack, the async one on a fiber's): unbounded recursion overflows at the
/// same depth, so the same fuel, on the sync path, the async path, the naive baseline and a
/// shard, whichever side of the slice the overflow falls.
#[test]
fn stack_overflow_is_the_same_on_either_path() {
    for slice in [SLICE, 100_000_000] {
        let cfg = EngineConfig {
            fuel_yield_interval: slice,
            ..config()
        };
        let rt = Runtime::new(&cfg).unwrap();
        let mut baseline = Baseline::new(&cfg).unwrap();
        let spec = ChallengeSpec {
            id: ChallengeId(9),
            name: "recurse".into(),
            wasm: RECURSE.as_bytes().to_vec(),
            policy: ChallengePolicy::default(),
            data: vec![],
        };
        let ch = rt.register(spec.clone()).unwrap();
        baseline.add(&ch, &spec.wasm).unwrap();
        let sub = Submission::new(ch.clone(), vec![0u8], EvalContext::default());
        let sync = platform_engine::evaluate_blocking(&rt, &sub);
        let fiber = platform_engine::evaluate_blocking_async(&rt, &sub);
        let naive = baseline.evaluate(&sub).unwrap();
        assert_eq!(
            sync.result.outcome,
            Outcome::Trap(platform_engine::TrapKind::StackOverflow)
        );
        assert_eq!(sync.result, fiber.result, "slice {slice}");
        assert_eq!(sync.result, naive.result, "slice {slice}");
        assert_eq!(sync.sync, sync.result.fuel_used < slice, "slice {slice}");
        let engine_rt = Runtime::new(&cfg).unwrap();
        let on_shard = engine_rt.register(spec).unwrap();
        let engine = ShardedEngine::start(engine_rt).unwrap();
        engine
            .submit(Submission::new(on_shard, vec![0u8], EvalContext::default()))
            .unwrap();
        let r = engine
            .recv_timeout(Duration::from_secs(30))
            .expect("a report");
        assert_eq!(r.result.fuel_used, sync.result.fuel_used, "slice {slice}");
        assert_eq!(r.result.outcome, sync.result.outcome);
    }
}
