//! Scheduling behaviour of the shards: a long evaluation yields to its shard on fuel, so a
//! short one submitted after it on the same shard finishes first; a cheap challenge's
//! evaluations are not queued behind an expensive one's; evaluations of epochs the caller no
//! longer wants are dropped from the queue unevaluated.

use std::time::Duration;

use platform_engine::{
    ChallengeId, ChallengePolicy, ChallengeSpec, EngineConfig, EvalContext, Outcome, Runtime,
    ShardedEngine, Submission,
};

const SPIN: &str = r#"(module
    (memory (export "memory") 1)
    (func (export "platform_abi_v1"))
    (func (export "platform_alloc") (param i32) (result i32) (i32.const 1024))
    (func (export "platform_evaluate") (param $ptr i32) (param $len i32) (result i64)
        (local $n i64)
        ;; first payload byte 1: spin ~forever (until fuel runs out); otherwise score at once
        (if (i32.eq (i32.load8_u (local.get $ptr)) (i32.const 1))
            (then (loop $l (local.set $n (i64.add (local.get $n) (i64.const 1))) (br $l))))
        (i64.store (i32.const 0) (i64.const 7))
        (i64.const 8)))"#;

fn spin_engine(in_flight: usize) -> (ShardedEngine, std::sync::Arc<platform_engine::Challenge>) {
    let cfg = EngineConfig {
        shards: 1,
        pin_shards: false,
        in_flight_per_shard: in_flight,
        fuel_yield_interval: 10_000,
        ..EngineConfig::default()
    };
    let rt = Runtime::new(&cfg).unwrap();
    let policy = ChallengePolicy {
        fuel_limit: 3_000_000_000,
        deadline: Duration::from_secs(120),
        ..ChallengePolicy::default()
    };
    let ch = rt
        .register(ChallengeSpec {
            id: ChallengeId(1),
            name: "spin".into(),
            wasm: SPIN.as_bytes().to_vec(),
            policy,
            data: vec![],
        })
        .unwrap();
    (ShardedEngine::start(rt).unwrap(), ch)
}

#[test]
fn a_cheap_challenges_evaluations_are_not_queued_behind_an_expensive_ones() {
    let cfg = EngineConfig {
        shards: 1,
        pin_shards: false,
        in_flight_per_shard: 1,
        ..EngineConfig::default()
    };
    let rt = Runtime::new(&cfg).unwrap();
    let register = |id: u32, fuel_limit: u64| {
        rt.register(ChallengeSpec {
            id: ChallengeId(id),
            name: format!("spin{id}"),
            wasm: SPIN.as_bytes().to_vec(),
            policy: ChallengePolicy {
                fuel_limit,
                deadline: Duration::from_secs(120),
                ..ChallengePolicy::default()
            },
            data: vec![],
        })
        .unwrap()
    };
    // Challenge 1 spins to its fuel limit (milliseconds); 2 scores at once. 1 has the lower
    // id, so only their costs put 2 first.
    let expensive = register(1, 50_000_000);
    let cheap = register(2, 50_000_000);
    let engine = ShardedEngine::start(rt).unwrap();
    let e: Vec<Submission> = (0..4u8)
        .map(|i| Submission::new(expensive.clone(), vec![1, i], EvalContext::default()))
        .collect();
    let c: Vec<Submission> = (0..4u8)
        .map(|i| Submission::new(cheap.clone(), vec![2, i], EvalContext::default()))
        .collect();
    for s in e.iter().chain(&c) {
        engine.submit(s.clone()).unwrap();
    }
    let order: Vec<[u8; 32]> = (0..8)
        .map(|_| {
            engine
                .recv_timeout(Duration::from_secs(120))
                .expect("a report")
                .result
                .submission_id
        })
        .collect();
    // The first expensive one runs (nothing is known of either yet); once it has reported,
    // the cheap ones go before the three expensive ones that arrived before them.
    let want: Vec<[u8; 32]> = [&e[0], &c[0], &c[1], &c[2], &c[3], &e[1], &e[2], &e[3]]
        .iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(order, want);
}

#[test]
fn queued_evaluations_of_unwanted_epochs_are_dropped_unevaluated() {
    // One evaluation at a time: the long one (epoch 5) holds the shard while the others wait.
    let (engine, ch) = spin_engine(1);
    let at = |epoch: u64, byte: u8| {
        Submission::new(
            ch.clone(),
            vec![byte, epoch as u8],
            EvalContext {
                epoch,
                seed: [0; 32],
            },
        )
    };
    let long = at(5, 1);
    engine.submit(long.clone()).unwrap();
    let stale: Vec<Submission> = (0..3).map(|i| at(3, 10 + i)).collect();
    for s in &stale {
        engine.submit(s.clone()).unwrap();
    }
    engine.drop_epochs_below(5);
    // Submitted after the mark: dropped too. A lower mark later does not lower it.
    let late = at(4, 20);
    engine.submit(late.clone()).unwrap();
    engine.drop_epochs_below(2);
    let wanted = at(5, 2);
    engine.submit(wanted.clone()).unwrap();
    assert_eq!(engine.outstanding(), 6);

    let mut got = Vec::new();
    while got.len() < 2 {
        let r = engine
            .recv_timeout(Duration::from_secs(120))
            .expect("a report");
        got.push((r.result.submission_id, r.result.outcome));
    }
    assert_eq!(
        got,
        vec![(long.id, Outcome::OutOfFuel), (wanted.id, Outcome::Scored)],
        "only the wanted epoch's evaluations run and report"
    );
    assert!(engine.recv_timeout(Duration::from_millis(200)).is_none());
    assert_eq!(engine.outstanding(), 0, "dropped ones no longer count");
    // Room for new work is intact: the engine takes and runs a wanted submission again.
    let again = at(6, 2);
    engine.submit(again.clone()).unwrap();
    let r = engine.recv_timeout(Duration::from_secs(120)).unwrap();
    assert_eq!(r.result.submission_id, again.id);
}

#[test]
fn a_long_evaluation_does_not_starve_a_short_one_on_the_same_shard() {
    let (engine, ch) = spin_engine(2);
    let long = Submission::new(ch.clone(), vec![1u8], EvalContext::default());
    let short = Submission::new(ch, vec![2u8], EvalContext::default());
    engine.submit(long.clone()).unwrap();
    engine.submit(short.clone()).unwrap();
    let first = engine
        .recv_timeout(Duration::from_secs(120))
        .expect("a report");
    let second = engine
        .recv_timeout(Duration::from_secs(120))
        .expect("a report");
    assert_eq!(
        first.result.submission_id, short.id,
        "the short evaluation must not wait for the long one"
    );
    assert_eq!(first.result.outcome, Outcome::Scored);
    assert_eq!(second.result.submission_id, long.id);
    assert_eq!(second.result.outcome, Outcome::OutOfFuel);
    assert_eq!(second.result.fuel_used, 3_000_000_000);
}
