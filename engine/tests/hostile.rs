//! Hostile and malformed challenge modules: each yields its expected outcome value (exact
//! where deterministic) or a registration error naming the reason, and the engine keeps
//! serving afterwards. Real wasmtime, real glommio shards.

use std::sync::Arc;
use std::time::Duration;

use platform_engine::{
    ChallengeId, ChallengePolicy, ChallengeSpec, EngineConfig, EvalContext, EvalReport, HostFn,
    ModuleError, Outcome, Runtime, SCORE_SCALE, ShardedEngine, Submission, TrapKind,
    evaluate_blocking,
};

/// ABI v1 scaffolding around an `evaluate` body; `extra` adds imports, functions, a start.
fn module(extra: &str, evaluate_body: &str) -> String {
    format!(
        r#"(module
            {extra}
            (memory (export "memory") 2)
            (global $heap (mut i32) (i32.const 1024))
            (func (export "platform_abi_v1"))
            (func (export "platform_alloc") (param $len i32) (result i32)
                (local $p i32)
                (local.set $p (global.get $heap))
                (global.set $heap (i32.add (global.get $heap) (local.get $len)))
                (local.get $p))
            (func (export "platform_evaluate") (param $ptr i32) (param $len i32) (result i64)
                {evaluate_body}))"#
    )
}

/// Writes score `s` at 0 and returns (0 << 32 | 8).
fn returns_score(s: u64) -> String {
    format!("(i64.store (i32.const 0) (i64.const {s})) (i64.const 8)")
}

fn runtime() -> Runtime {
    Runtime::new(&EngineConfig {
        shards: 2,
        pin_shards: false,
        ..EngineConfig::default()
    })
    .expect("engine")
}

fn policy() -> ChallengePolicy {
    ChallengePolicy {
        fuel_limit: 5_000_000,
        memory_limit_bytes: 4 << 20,
        ..ChallengePolicy::default()
    }
}

fn register(
    rt: &Runtime,
    id: u32,
    wat: &str,
    policy: ChallengePolicy,
) -> Result<Arc<platform_engine::Challenge>, ModuleError> {
    rt.register(ChallengeSpec {
        id: ChallengeId(id),
        name: format!("hostile-{id}"),
        wasm: wat.as_bytes().to_vec(),
        policy,
        data: b"registered data".to_vec(),
    })
}

fn eval(rt: &Runtime, wat: &str, policy: ChallengePolicy) -> EvalReport {
    let ch = register(rt, 1, wat, policy).expect("registers");
    evaluate_blocking(
        rt,
        &Submission::new(
            ch,
            b"payload".to_vec(),
            EvalContext {
                epoch: 7,
                seed: [3; 32],
            },
        ),
    )
}

#[test]
fn infinite_loop_runs_out_of_fuel_exactly() {
    let rt = runtime();
    let r = eval(
        &rt,
        &module("", "(loop $l (br $l)) (i64.const 0)"),
        policy(),
    );
    assert_eq!(r.result.outcome, Outcome::OutOfFuel);
    assert_eq!(r.result.fuel_used, 5_000_000);
    assert_eq!(r.result.score, 0);
}

#[test]
fn memory_bomb_hits_the_memory_limit() {
    let rt = runtime();
    let body =
        "(loop $l (br_if $l (i32.ne (memory.grow (i32.const 1)) (i32.const -1)))) (i64.const 0)";
    let r = eval(&rt, &module("", body), policy());
    assert_eq!(r.result.outcome, Outcome::MemoryLimit);
}

#[test]
fn unbounded_recursion_overflows_the_stack() {
    let rt = runtime();
    let extra =
        "(func $down (param i32) (result i32) (call $down (i32.add (local.get 0) (i32.const 1))))";
    let r = eval(
        &rt,
        &module(extra, "(drop (call $down (i32.const 0))) (i64.const 0)"),
        policy(),
    );
    assert_eq!(r.result.outcome, Outcome::Trap(TrapKind::StackOverflow));
    // Deterministic: the same module and input use the same fuel every time.
    let again = eval(
        &rt,
        &module(extra, "(drop (call $down (i32.const 0))) (i64.const 0)"),
        policy(),
    );
    assert_eq!(again.result, r.result);
}

#[test]
fn out_of_bounds_output_pointer_is_invalid_output() {
    let rt = runtime();
    let r = eval(&rt, &module("", "(i64.const 0x7fff000000000010)"), policy());
    assert_eq!(r.result.outcome, Outcome::InvalidOutput);
}

#[test]
fn huge_and_short_outputs_are_invalid() {
    let rt = runtime();
    // 128 KiB output, within memory but above output_max_bytes (64 KiB by default).
    let r = eval(&rt, &module("", "(i64.const 0x20000)"), policy());
    assert_eq!(r.result.outcome, Outcome::InvalidOutput);
    let r = eval(&rt, &module("", "(i64.const 4)"), policy());
    assert_eq!(r.result.outcome, Outcome::InvalidOutput);
    let r = eval(&rt, &module("", &returns_score(SCORE_SCALE + 1)), policy());
    assert_eq!(r.result.outcome, Outcome::InvalidOutput);
}

#[test]
fn trap_in_start_function_is_a_trap_outcome() {
    let rt = runtime();
    let extra = "(func $boom unreachable) (start $boom)";
    let r = eval(&rt, &module(extra, &returns_score(1)), policy());
    assert_eq!(r.result.outcome, Outcome::Trap(TrapKind::Unreachable));
}

#[test]
fn guest_traps_map_to_kinds() {
    let rt = runtime();
    let div = "(drop (i32.div_s (i32.const 1) (i32.sub (local.get $len) (local.get $len)))) (i64.const 0)";
    assert_eq!(
        eval(&rt, &module("", div), policy()).result.outcome,
        Outcome::Trap(TrapKind::DivisionByZero)
    );
    let oob = "(drop (i32.load (i32.const 0x7ffffff0))) (i64.const 0)";
    assert_eq!(
        eval(&rt, &module("", oob), policy()).result.outcome,
        Outcome::Trap(TrapKind::MemoryOutOfBounds)
    );
}

#[test]
fn host_call_with_a_bad_pointer_traps_as_host_call() {
    let rt = runtime();
    let extra = r#"(import "platform" "sha256" (func $sha (param i32 i32 i32)))"#;
    let body = "(call $sha (i32.const 0) (i32.const 16) (i32.const 0x7ffffff0)) (i64.const 0)";
    let r = eval(&rt, &module(extra, body), policy());
    assert_eq!(r.result.outcome, Outcome::Trap(TrapKind::HostCall));
    assert_eq!(r.host_calls.get(HostFn::Sha256), 1);
}

#[test]
fn host_functions_see_the_agreed_context_and_are_counted() {
    let rt = runtime();
    let extra = r#"(import "platform" "epoch" (func $epoch (result i64)))
                   (import "platform" "data_read" (func $read (param i32 i32 i32) (result i32)))
                   (import "platform" "log" (func $log (param i32 i32)))"#;
    // score = epoch * 1000 + bytes of data read; logs the data.
    let body = r#"(local $n i32)
        (local.set $n (call $read (i32.const 0) (i32.const 64) (i32.const 100)))
        (call $log (i32.const 64) (local.get $n))
        (i64.store (i32.const 0) (i64.add (i64.mul (call $epoch) (i64.const 1000)) (i64.extend_i32_u (local.get $n))))
        (i64.const 8)"#;
    let r = eval(&rt, &module(extra, body), policy());
    assert_eq!(r.result.outcome, Outcome::Scored);
    assert_eq!(r.result.score, 7 * 1000 + 15);
    assert_eq!(r.log, b"registered data");
    assert_eq!(r.log_dropped_bytes, 0);
    assert_eq!(r.host_calls.get(HostFn::Epoch), 1);
    assert_eq!(r.host_calls.get(HostFn::DataRead), 1);
    assert_eq!(r.host_calls.get(HostFn::Log), 1);
    assert_eq!(r.host_calls.get(HostFn::Sha256), 0);
}

#[test]
fn wall_clock_deadline_is_a_timeout_not_a_score() {
    let rt = runtime();
    let p = ChallengePolicy {
        fuel_limit: u64::MAX / 2,
        deadline: Duration::from_millis(100),
        ..policy()
    };
    let r = eval(&rt, &module("", "(loop $l (br $l)) (i64.const 0)"), p);
    assert_eq!(r.result.outcome, Outcome::Timeout);
    assert!(!r.result.outcome.is_deterministic());
}

#[test]
fn a_start_function_past_its_deadline_is_a_timeout() {
    let rt = runtime();
    let p = ChallengePolicy {
        fuel_limit: u64::MAX / 2,
        deadline: Duration::from_millis(100),
        ..policy()
    };
    let extra = "(func $spin (loop $l (br $l))) (start $spin)";
    let r = eval(&rt, &module(extra, &returns_score(1)), p);
    assert_eq!(r.result.outcome, Outcome::Timeout);
}

/// On a shard the deadline is met where a looping guest yields (a pure loop) and at its host
/// calls (a loop on one: each host charge refills the fuel slice, so such a guest may never
/// reach a yield); the guest is unwound and the shard serves on.
#[test]
fn looping_guests_on_a_shard_meet_their_deadline() {
    let rt = runtime();
    let engine = ShardedEngine::start(rt.clone()).unwrap();
    let sha = r#"(import "platform" "sha256" (func $sha (param i32 i32 i32)))"#;
    let host_loop = "(loop $l (call $sha (i32.const 0) (i32.const 4096) (i32.const 8192)) (br $l)) (i64.const 0)";
    let pure_loop = "(loop $l (br $l)) (i64.const 0)";
    let p = ChallengePolicy {
        fuel_limit: u64::MAX / 2,
        deadline: Duration::from_millis(200),
        ..policy()
    };
    let slow = register(&rt, 1, &module(sha, host_loop), p.clone()).expect("registers");
    let spin = register(&rt, 3, &module("", pure_loop), p).expect("registers");
    let fine = register(&rt, 2, &module("", &returns_score(3)), policy()).expect("registers");
    for ch in [slow, spin] {
        let started = std::time::Instant::now();
        engine
            .submit(Submission::new(ch, vec![1], EvalContext::default()))
            .unwrap();
        let r = engine
            .recv_timeout(Duration::from_secs(60))
            .expect("a report");
        assert_eq!(r.result.outcome, Outcome::Timeout);
        assert!(started.elapsed() >= Duration::from_millis(200));
    }
    engine
        .submit(Submission::new(fine, vec![2], EvalContext::default()))
        .unwrap();
    let r = engine
        .recv_timeout(Duration::from_secs(60))
        .expect("a report");
    assert_eq!((r.result.outcome, r.result.score), (Outcome::Scored, 3));
    engine.shutdown();
}

#[test]
fn forbidden_and_unknown_imports_are_refused_at_registration() {
    let rt = runtime();
    let sha = r#"(import "platform" "sha256" (func (param i32 i32 i32)))"#;
    let only_log = ChallengePolicy {
        allowed_host_functions: [HostFn::Log].into(),
        ..policy()
    };
    let err = register(&rt, 9, &module(sha, "(i64.const 0)"), only_log).unwrap_err();
    assert!(
        matches!(err, ModuleError::ForbiddenImport("sha256")),
        "{err}"
    );
    assert!(err.to_string().contains("not allowed"), "{err}");

    let wasi = r#"(import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))"#;
    let err = register(&rt, 9, &module(wasi, "(i64.const 0)"), policy()).unwrap_err();
    assert!(matches!(err, ModuleError::UnknownImport { .. }), "{err}");

    let bogus = r#"(import "platform" "open_socket" (func))"#;
    let err = register(&rt, 9, &module(bogus, "(i64.const 0)"), policy()).unwrap_err();
    assert!(err.to_string().contains("platform::open_socket"), "{err}");
}

#[test]
fn malformed_and_non_conforming_modules_are_refused_with_a_reason() {
    let rt = runtime();
    let err = register(&rt, 9, "\0asm\x01\0\0\0garbage", policy()).unwrap_err();
    assert!(matches!(err, ModuleError::Invalid(_)), "{err}");

    let no_eval = r#"(module (memory (export "memory") 1) (func (export "platform_abi_v1"))
        (func (export "platform_alloc") (param i32) (result i32) (i32.const 0)))"#;
    let err = register(&rt, 9, no_eval, policy()).unwrap_err();
    assert!(
        matches!(err, ModuleError::MissingExport("platform_evaluate")),
        "{err}"
    );

    let wrong_type = module("", "(i64.const 0)").replace(
        r#"(func (export "platform_abi_v1"))"#,
        r#"(func (export "platform_abi_v1") (param i32))"#,
    );
    let err = register(&rt, 9, &wrong_type, policy()).unwrap_err();
    assert!(
        matches!(
            err,
            ModuleError::WrongExportType {
                name: "platform_abi_v1",
                ..
            }
        ),
        "{err}"
    );

    let big_memory = module("", "(i64.const 0)").replace(
        r#"(memory (export "memory") 2)"#,
        r#"(memory (export "memory") 1000)"#,
    );
    let err = register(&rt, 9, &big_memory, policy()).unwrap_err();
    assert!(
        matches!(err, ModuleError::InitialMemoryTooLarge { .. }),
        "{err}"
    );

    let shared = module("", "(i64.const 0)").replace(
        r#"(memory (export "memory") 2)"#,
        r#"(memory (export "memory") 2 2 shared)"#,
    );
    let err = register(&rt, 9, &shared, policy()).unwrap_err();
    assert!(matches!(err, ModuleError::Invalid(_)), "{err}");

    let cfg = EngineConfig {
        module_max_bytes: 64,
        shards: 1,
        ..EngineConfig::default()
    };
    let small = Runtime::new(&cfg).unwrap();
    let err = register(&small, 9, &module("", "(i64.const 0)"), policy()).unwrap_err();
    assert!(matches!(err, ModuleError::TooLarge { .. }), "{err}");
}

#[test]
fn sharded_engine_survives_every_hostile_module_and_keeps_serving() {
    let rt = runtime();
    let engine = ShardedEngine::start(rt.clone()).expect("shards start");
    let hostile = [
        (
            module("", "(loop $l (br $l)) (i64.const 0)"),
            Outcome::OutOfFuel,
        ),
        (
            module(
                "",
                "(loop $l (br_if $l (i32.ne (memory.grow (i32.const 1)) (i32.const -1)))) (i64.const 0)",
            ),
            Outcome::MemoryLimit,
        ),
        (
            module(
                "(func $down (param i32) (result i32) (call $down (i32.add (local.get 0) (i32.const 1))))",
                "(drop (call $down (i32.const 0))) (i64.const 0)",
            ),
            Outcome::Trap(TrapKind::StackOverflow),
        ),
        (
            module("", "(i64.const 0x7fff000000000010)"),
            Outcome::InvalidOutput,
        ),
        (
            module("(func $boom unreachable) (start $boom)", &returns_score(1)),
            Outcome::Trap(TrapKind::Unreachable),
        ),
        (module("", &returns_score(SCORE_SCALE / 2)), Outcome::Scored),
    ];
    let mut expected = std::collections::BTreeMap::new();
    for (i, (wat, outcome)) in hostile.iter().enumerate() {
        let ch = register(&rt, 100 + i as u32, wat, policy()).expect("registers");
        engine.warm(&ch);
        for n in 0..8u8 {
            let sub = Submission::new(ch.clone(), vec![n, i as u8], EvalContext::default());
            expected.insert(sub.id, *outcome);
            engine.submit(sub).expect("queue has room");
        }
    }
    let mut seen = 0;
    while seen < expected.len() {
        let r = engine
            .recv_timeout(Duration::from_secs(30))
            .expect("every submission reports");
        assert_eq!(
            Some(&r.result.outcome),
            expected.get(&r.result.submission_id)
        );
        if r.result.outcome == Outcome::Scored {
            assert_eq!(r.result.score, SCORE_SCALE / 2);
        }
        seen += 1;
    }
    assert_eq!(engine.outstanding(), 0);
    engine.shutdown();
}

#[test]
fn oversized_payload_is_refused_at_submit() {
    let rt = runtime();
    let engine = ShardedEngine::start(rt.clone()).unwrap();
    let p = ChallengePolicy {
        input_max_bytes: 16,
        ..policy()
    };
    let ch = register(&rt, 1, &module("", &returns_score(1)), p).unwrap();
    let err = engine
        .submit(Submission::new(ch, vec![0; 17], EvalContext::default()))
        .unwrap_err();
    assert_eq!(
        err,
        platform_engine::SubmitError::PayloadTooLarge { len: 17, max: 16 }
    );
}

#[test]
fn full_queue_is_an_error_value_not_growth() {
    let cfg = EngineConfig {
        shards: 1,
        pin_shards: false,
        queue_depth_max: 2,
        in_flight_per_shard: 1,
        ..EngineConfig::default()
    };
    let rt = Runtime::new(&cfg).unwrap();
    let engine = ShardedEngine::start(rt.clone()).unwrap();
    // Each evaluation spins until its fuel runs out, so the queue fills while it works.
    let p = ChallengePolicy {
        fuel_limit: 2_000_000_000,
        ..policy()
    };
    let ch = register(&rt, 1, &module("", "(loop $l (br $l)) (i64.const 0)"), p).unwrap();
    let mut accepted = 0;
    let mut refused = 0;
    for n in 0..50u32 {
        match engine.submit(Submission::new(
            ch.clone(),
            n.to_le_bytes().to_vec(),
            EvalContext::default(),
        )) {
            Ok(()) => accepted += 1,
            Err(e) => {
                assert!(
                    matches!(
                        e,
                        platform_engine::SubmitError::QueueFull { shard: 0 }
                            | platform_engine::SubmitError::Saturated { .. }
                    ),
                    "{e}"
                );
                refused += 1;
            }
        }
    }
    // At most: the queue (2) plus the one in flight plus one popped waiting for its permit.
    assert!(accepted <= 4, "accepted {accepted}");
    assert!(refused >= 46);
    for _ in 0..accepted {
        let r = engine
            .recv_timeout(Duration::from_secs(60))
            .expect("accepted jobs report");
        assert_eq!(r.result.outcome, Outcome::OutOfFuel);
    }
}

#[test]
fn guest_log_is_bounded_and_the_rest_counted() {
    let rt = runtime();
    let extra = r#"(import "platform" "data_read" (func $read (param i32 i32 i32) (result i32)))
                   (import "platform" "log" (func $log (param i32 i32)))"#;
    let body = r#"(call $log (i32.const 64) (call $read (i32.const 0) (i32.const 64) (i32.const 100)))
        (i64.store (i32.const 0) (i64.const 1)) (i64.const 8)"#;
    let r = eval(
        &rt,
        &module(extra, body),
        ChallengePolicy {
            log_max_bytes: 4,
            ..policy()
        },
    );
    assert_eq!(r.result.outcome, Outcome::Scored);
    assert_eq!(r.log, b"regi");
    assert_eq!(r.log_dropped_bytes, 11);
}
