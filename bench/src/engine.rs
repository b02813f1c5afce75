//! `bench engine`: per example challenge, in one run and on the same payloads:
//! native (physical limit), naive (the system we replace), pooled on 1 shard and on every
//! core (each shard on its own wasmtime engine, and all on one). Reports evaluations/s,
//! p50/p99 latency, instantiation µs and the ratios
//! wasm÷native, pooled÷naive and scaling efficiency E(n); medians over `--runs`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use platform_challenges::{EXAMPLES, Example};
use platform_engine::{
    Baseline, Challenge, ChallengeId, ChallengePolicy, ChallengeSpec, EngineConfig, EvalContext,
    Outcome, Runtime, ShardedEngine, Submission,
};
use serde::Serialize;

use crate::machine::Machine;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Seconds per measurement.
    #[arg(long, default_value_t = 2.0)]
    seconds: f64,
    /// Repetitions; the table shows medians.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Only these challenges (by name); default all.
    #[arg(long)]
    challenge: Vec<String>,
    /// Shard count for the scaling column; default every core.
    #[arg(long)]
    shards: Option<usize>,
    /// Distinct payloads cycled through.
    #[arg(long, default_value_t = 64)]
    payloads: u64,
    /// Directory for the JSON results.
    #[arg(long, default_value = "bench/results")]
    out: PathBuf,
}

/// One measured path.
#[derive(Debug, Clone, Copy, Serialize, Default)]
struct Figures {
    evals_per_sec: f64,
    p50_us: f64,
    p99_us: f64,
    /// Pooled paths: CPU the driver thread (submitting and collecting, on the shards' cores)
    /// used, in cores (its CPU time ÷ the wall time). Not measured for native and naive,
    /// which run the work on the measuring thread itself.
    driver_cores: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
struct Row {
    challenge: &'static str,
    native: Figures,
    naive: Figures,
    pooled_1: Figures,
    pooled_n: Figures,
    /// The same n shards on one wasmtime engine (`engines = 1`), as before each shard
    /// had its own: what sharing one engine's state between cores costs.
    pooled_n_one_engine: Figures,
    shards_n: usize,
    instantiate_pooled_p50_us: f64,
    instantiate_pooled_p99_us: f64,
    instantiate_naive_p50_us: f64,
    /// Median time inside `platform_evaluate` on the pooled engine's sync path, one
    /// evaluation at a time, round-robin with the other call columns (see `measure_calls`).
    guest_call_p50_us: f64,
    /// The same on the async path (a fiber per call), as every evaluation ran before.
    guest_call_async_p50_us: f64,
    /// The native call, in the same round-robin.
    native_call_p50_us: f64,
    /// Guest call and whole evaluation on the sync path of an unmetered runtime, and the
    /// whole evaluation metered (the call metered is `guest_call_p50_us`).
    guest_call_unmetered_p50_us: f64,
    eval_unmetered_p50_us: f64,
    eval_metered_p50_us: f64,
    /// Same scoring code: guest call p50 (sync path) ÷ native call p50.
    wasm_over_native_compute: f64,
    /// Guest call p50: sync path ÷ async path.
    sync_over_async_call: f64,
    /// Whole evaluations (fresh instance included) on the async path, and sync ÷ async.
    eval_async_p50_us: f64,
    sync_over_async_eval: f64,
    /// Guest call p50 with fuel metering ÷ without.
    fuel_on_over_off_call: f64,
    /// Whole evaluations (fresh pooled instance, sync path) with fuel metering ÷ without.
    fuel_on_over_off_eval: f64,
    /// Whole evaluations: native evals/s ÷ pooled 1-shard evals/s.
    wasm_over_native_end_to_end: f64,
    pooled_over_naive: f64,
    scaling_efficiency: f64,
    /// E(n) with every shard on one wasmtime engine.
    scaling_efficiency_one_engine: f64,
    fuel_per_eval: u64,
}

#[derive(Debug, Serialize)]
struct Report {
    machine: Machine,
    seconds_per_measurement: f64,
    runs: usize,
    rows: Vec<Row>,
}

fn policy() -> ChallengePolicy {
    ChallengePolicy {
        fuel_limit: 2_000_000_000,
        ..ChallengePolicy::default()
    }
}

fn register(rt: &Runtime, e: &Example) -> anyhow::Result<Arc<Challenge>> {
    rt.register(ChallengeSpec {
        id: ChallengeId(e.id),
        name: e.name.into(),
        wasm: e.wasm.to_vec(),
        policy: policy(),
        data: vec![],
    })
    .with_context(|| format!("register {}", e.name))
}

fn hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid bounds")
}

fn figures(count: u64, elapsed: Duration, h: &Histogram<u64>) -> Figures {
    Figures {
        evals_per_sec: count as f64 / elapsed.as_secs_f64(),
        p50_us: h.value_at_quantile(0.5) as f64 / 1e3,
        p99_us: h.value_at_quantile(0.99) as f64 / 1e3,
        driver_cores: None,
    }
}

/// CPU time the calling thread has used.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant Linux knows.
    let ok = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } == 0;
    if !ok {
        return Duration::ZERO;
    }
    Duration::new(
        u64::try_from(ts.tv_sec).unwrap_or(0),
        u32::try_from(ts.tv_nsec).unwrap_or(0),
    )
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1)
}

fn measure_native(e: &Example, payloads: &[Vec<u8>], secs: Duration) -> Figures {
    let mut h = hist();
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < secs {
        let t = Instant::now();
        let out = (e.native)(&payloads[(n as usize) % payloads.len()]);
        std::hint::black_box(out);
        h.record(nanos(t.elapsed())).ok();
        n += 1;
    }
    figures(n, start.elapsed(), &h)
}

fn measure_naive(
    base: &Baseline,
    ch: &Arc<Challenge>,
    payloads: &[Vec<u8>],
    secs: Duration,
) -> anyhow::Result<Figures> {
    let mut h = hist();
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < secs {
        let sub = Submission::new(
            ch.clone(),
            payloads[(n as usize) % payloads.len()].clone(),
            EvalContext::default(),
        );
        let t = Instant::now();
        let r = base.evaluate(&sub).context("baseline has the challenge")?;
        h.record(nanos(t.elapsed())).ok();
        anyhow::ensure!(
            r.result.outcome == Outcome::Scored,
            "naive: {:?}",
            r.result.outcome
        );
        n += 1;
    }
    Ok(figures(n, start.elapsed(), &h))
}

/// Medians (µs) of one evaluation on the calling thread, the guest call alone and the
/// whole evaluation (fresh pooled instance included), per path: native code, the pooled
/// engine's sync path (what a shard runs for an evaluation within one yield slice), its
/// async path (a fiber per call), and the sync path on an unmetered runtime. The paths take
/// turns in short blocks, so each runs warm and all see the same machine noise.
#[derive(Debug, Clone, Copy, Default)]
struct Calls {
    native: f64,
    sync: f64,
    fiber: f64,
    unmetered: f64,
    whole_sync: f64,
    whole_fiber: f64,
    whole_unmetered: f64,
}

/// Turns each path takes in `measure_calls`.
const BLOCKS: u32 = 10;

fn measure_calls(
    e: &Example,
    rt: &Runtime,
    bare: &Runtime,
    chs: (&Arc<Challenge>, &Arc<Challenge>),
    payloads: &[Vec<u8>],
    secs: Duration,
) -> anyhow::Result<Calls> {
    let mut call: [Histogram<u64>; 4] = std::array::from_fn(|_| hist());
    let mut whole: [Histogram<u64>; 4] = std::array::from_fn(|_| hist());
    let block = secs / (BLOCKS * 4);
    let mut n = 0usize;
    for _ in 0..BLOCKS {
        for path in 0..4 {
            let start = Instant::now();
            while start.elapsed() < block {
                let payload = &payloads[n % payloads.len()];
                n += 1;
                if path == 0 {
                    let t = Instant::now();
                    std::hint::black_box((e.native)(payload));
                    let d = nanos(t.elapsed());
                    call[0].record(d).ok();
                    whole[0].record(d).ok();
                    continue;
                }
                let ch = if path == 3 { chs.1 } else { chs.0 };
                let sub = Submission::new(ch.clone(), payload.clone(), EvalContext::default());
                let r = match path {
                    1 => platform_engine::evaluate_blocking(rt, &sub),
                    2 => platform_engine::evaluate_blocking_async(rt, &sub),
                    _ => platform_engine::evaluate_blocking(bare, &sub),
                };
                anyhow::ensure!(
                    r.result.outcome == Outcome::Scored,
                    "guest call: {:?}",
                    r.result.outcome
                );
                call[path].record(r.call_nanos.max(1)).ok();
                whole[path].record(r.service_nanos.max(1)).ok();
            }
        }
    }
    let p50 = |h: &Histogram<u64>| h.value_at_quantile(0.5) as f64 / 1e3;
    Ok(Calls {
        native: p50(&call[0]),
        sync: p50(&call[1]),
        fiber: p50(&call[2]),
        unmetered: p50(&call[3]),
        whole_sync: p50(&whole[1]),
        whole_fiber: p50(&whole[2]),
        whole_unmetered: p50(&whole[3]),
    })
}

/// Drive a sharded engine as fast as it accepts for `secs`; latency is service time.
/// Returns the figures and the fuel per evaluation.
fn measure_pooled(
    shards: usize,
    engines: usize,
    e: &Example,
    payloads: &[Vec<u8>],
    secs: Duration,
) -> anyhow::Result<(Figures, u64)> {
    let cfg = EngineConfig {
        shards,
        engines,
        ..EngineConfig::default()
    };
    let rt = Runtime::new(&cfg)?;
    let ch = register(&rt, e)?;
    let engine = ShardedEngine::start(rt)?;
    engine.warm(&ch);
    // Distinct ids so submissions spread over shards like real traffic.
    let subs: Vec<Submission> = (0..1024u64)
        .map(|i| {
            let mut s = Submission::new(
                ch.clone(),
                payloads[(i as usize) % payloads.len()].clone(),
                EvalContext::default(),
            );
            s.id[..8].copy_from_slice(&i.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_le_bytes());
            s
        })
        .collect();
    let mut h = hist();
    let mut next = 0usize;
    let mut done = 0u64;
    let mut fuel = 0u64;
    let warmup_until = Instant::now() + Duration::from_millis(200);
    let mut start = None;
    let mut cpu_at_start = Duration::ZERO;
    loop {
        while engine.submit(subs[next % subs.len()].clone()).is_ok() {
            next += 1;
        }
        // Poll in batches instead of waking per result: the driver stays off the shards'
        // cores as much as it can (it is not part of what we measure).
        let mut batch = vec![];
        let waited = Instant::now();
        while batch.is_empty() {
            while let Some(r) = engine.try_recv() {
                batch.push(r);
            }
            if batch.is_empty() {
                anyhow::ensure!(waited.elapsed() < Duration::from_secs(30), "engine stalled");
                std::thread::sleep(Duration::from_micros(200));
            }
        }
        let now = Instant::now();
        if start.is_none() && now >= warmup_until {
            start = Some(now);
            cpu_at_start = thread_cpu();
        }
        if let Some(s) = start {
            for r in &batch {
                anyhow::ensure!(
                    r.result.outcome == Outcome::Scored,
                    "pooled: {:?}",
                    r.result.outcome
                );
                h.record(r.service_nanos.max(1)).ok();
                fuel = r.result.fuel_used;
            }
            done += batch.len() as u64;
            if now - s >= secs {
                let mut f = figures(done, now - s, &h);
                f.driver_cores =
                    Some((thread_cpu() - cpu_at_start).as_secs_f64() / (now - s).as_secs_f64());
                drop(engine);
                return Ok((f, fuel));
            }
        }
    }
}

/// Pooled evaluations per second of one example on `shards` shards, measured for `secs`:
/// the engine's own limit, which `bench devnet` reports its whole-system rate against.
pub(crate) fn pooled_rate(shards: usize, name: &str, secs: Duration) -> anyhow::Result<f64> {
    let e = platform_challenges::by_name(name).with_context(|| format!("no example {name}"))?;
    let payloads: Vec<Vec<u8>> = (0..64).map(|s| (e.sample_payload)(s)).collect();
    Ok(measure_pooled(shards, 0, e, &payloads, secs)?
        .0
        .evals_per_sec)
}

fn measure_instantiation(
    rt: &Runtime,
    base: &Baseline,
    ch: &Challenge,
    n: usize,
) -> (f64, f64, f64) {
    let mut pooled = hist();
    let mut naive = hist();
    for _ in 0..n {
        let t = Instant::now();
        assert!(platform_engine::instantiate_and_drop(rt, ch));
        pooled.record(nanos(t.elapsed())).ok();
    }
    for _ in 0..n / 4 {
        let t = Instant::now();
        assert!(base.instantiate_and_drop(ch));
        naive.record(nanos(t.elapsed())).ok();
    }
    (
        pooled.value_at_quantile(0.5) as f64 / 1e3,
        pooled.value_at_quantile(0.99) as f64 / 1e3,
        naive.value_at_quantile(0.5) as f64 / 1e3,
    )
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn median_figures(v: &[Figures]) -> Figures {
    Figures {
        evals_per_sec: median(v.iter().map(|f| f.evals_per_sec).collect()),
        p50_us: median(v.iter().map(|f| f.p50_us).collect()),
        p99_us: median(v.iter().map(|f| f.p99_us).collect()),
        driver_cores: v
            .iter()
            .map(|f| f.driver_cores)
            .collect::<Option<Vec<f64>>>()
            .map(median),
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.runs >= 1 && args.seconds > 0.0 && args.payloads >= 1,
        "runs, seconds and payloads must be positive"
    );
    let machine = Machine::detect();
    let shards_n = args.shards.unwrap_or(machine.cores).max(1);
    let secs = Duration::from_secs_f64(args.seconds);
    let examples: Vec<&Example> = EXAMPLES
        .iter()
        .filter(|e| args.challenge.is_empty() || args.challenge.iter().any(|c| c == e.name))
        .collect();
    anyhow::ensure!(
        !examples.is_empty(),
        "no challenge matches {:?}",
        args.challenge
    );
    println!("{}", machine.line());

    let steps = (examples.len() * args.runs * 6) as u64;
    let bar = ProgressBar::new(steps);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} {elapsed} {msg}")
            .expect("valid template"),
    );

    let rt = Runtime::new(&EngineConfig {
        shards: 1,
        ..EngineConfig::default()
    })?;
    let bare = Runtime::unmetered(&EngineConfig {
        shards: 1,
        ..EngineConfig::default()
    })?;
    let mut base = Baseline::new(&EngineConfig::default())?;
    let mut rows = vec![];
    for e in examples {
        let ch = register(&rt, e)?;
        let bare_ch = register(&bare, e)?;
        base.add(&ch, e.wasm)?;
        let payloads: Vec<Vec<u8>> = (0..args.payloads).map(|s| (e.sample_payload)(s)).collect();
        let (mut native, mut naive, mut p1, mut pn, mut pn1, mut inst, mut call) =
            (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
        let mut fuel = 0;
        for run in 1..=args.runs {
            let step = |what: &str| {
                bar.set_message(format!("{} run {run}/{}: {what}", e.name, args.runs));
            };
            step("native");
            native.push(measure_native(e, &payloads, secs));
            bar.inc(1);
            step("naive");
            naive.push(measure_naive(&base, &ch, &payloads, secs)?);
            bar.inc(1);
            step("pooled, 1 shard");
            let (f, fu) = measure_pooled(1, 0, e, &payloads, secs)?;
            p1.push(f);
            fuel = fu;
            bar.inc(1);
            step(&format!("pooled, {shards_n} shards"));
            pn.push(measure_pooled(shards_n, 0, e, &payloads, secs)?.0);
            bar.inc(1);
            step(&format!("pooled, {shards_n} shards on one engine"));
            pn1.push(measure_pooled(shards_n, 1, e, &payloads, secs)?.0);
            bar.inc(1);
            step("instantiation and guest call");
            inst.push(measure_instantiation(&rt, &base, &ch, 2000));
            call.push(measure_calls(
                e,
                &rt,
                &bare,
                (&ch, &bare_ch),
                &payloads,
                secs,
            )?);
            bar.inc(1);
        }
        let (native, naive, pooled_1, pooled_n, pooled_n_one_engine) = (
            median_figures(&native),
            median_figures(&naive),
            median_figures(&p1),
            median_figures(&pn),
            median_figures(&pn1),
        );
        let calls = |f: fn(&Calls) -> f64| median(call.iter().map(f).collect());
        let (sync, fiber, native_call, bare_call) = (
            calls(|c| c.sync),
            calls(|c| c.fiber),
            calls(|c| c.native),
            calls(|c| c.unmetered),
        );
        let (eval_metered, eval_fiber, eval_bare) = (
            calls(|c| c.whole_sync),
            calls(|c| c.whole_fiber),
            calls(|c| c.whole_unmetered),
        );
        rows.push(Row {
            challenge: e.name,
            native,
            naive,
            pooled_1,
            pooled_n,
            pooled_n_one_engine,
            shards_n,
            instantiate_pooled_p50_us: median(inst.iter().map(|i| i.0).collect()),
            instantiate_pooled_p99_us: median(inst.iter().map(|i| i.1).collect()),
            instantiate_naive_p50_us: median(inst.iter().map(|i| i.2).collect()),
            guest_call_p50_us: sync,
            guest_call_async_p50_us: fiber,
            native_call_p50_us: native_call,
            guest_call_unmetered_p50_us: bare_call,
            eval_unmetered_p50_us: eval_bare,
            eval_metered_p50_us: eval_metered,
            wasm_over_native_compute: sync / native_call,
            sync_over_async_call: sync / fiber,
            eval_async_p50_us: eval_fiber,
            sync_over_async_eval: eval_metered / eval_fiber,
            fuel_on_over_off_call: sync / bare_call,
            fuel_on_over_off_eval: eval_metered / eval_bare,
            wasm_over_native_end_to_end: native.evals_per_sec / pooled_1.evals_per_sec,
            pooled_over_naive: pooled_1.evals_per_sec / naive.evals_per_sec,
            scaling_efficiency: pooled_n.evals_per_sec / (shards_n as f64 * pooled_1.evals_per_sec),
            scaling_efficiency_one_engine: pooled_n_one_engine.evals_per_sec
                / (shards_n as f64 * pooled_1.evals_per_sec),
            fuel_per_eval: fuel,
        });
    }
    bar.finish_and_clear();
    print_table(&rows);
    let report = Report {
        machine,
        seconds_per_measurement: args.seconds,
        runs: args.runs,
        rows,
    };
    crate::machine::write_results(&args.out, "engine", &report.machine, &report)
}

fn print_table(rows: &[Row]) {
    println!();
    println!(
        "{:<14} {:<12} {:>12} {:>10} {:>10} {:>13}",
        "challenge", "path", "evals/s", "p50 µs", "p99 µs", "driver cores"
    );
    for r in rows {
        let lines = [
            ("native", r.native),
            ("naive", r.naive),
            ("pooled ×1", r.pooled_1),
            (&*format!("pooled ×{}", r.shards_n), r.pooled_n),
            (
                &*format!("×{}, 1 engine", r.shards_n),
                r.pooled_n_one_engine,
            ),
        ];
        for (path, f) in lines {
            println!(
                "{:<14} {:<12} {:>12.0} {:>10.1} {:>10.1} {:>13}",
                r.challenge,
                path,
                f.evals_per_sec,
                f.p50_us,
                f.p99_us,
                f.driver_cores.map_or("-".into(), |c| format!("{c:.2}"))
            );
        }
    }
    println!();
    println!(
        "{:<14} {:>9} {:>9} {:>10} {:>9} {:>9} {:>9} {:>12} {:>6} {:>8} {:>11}",
        "challenge",
        "inst p50",
        "inst p99",
        "naive inst",
        "call p50",
        "w÷n call",
        "w÷n e2e",
        "pooled÷naive",
        "E(n)",
        "1 engine",
        "fuel/eval"
    );
    for r in rows {
        println!(
            "{:<14} {:>8.1}µ {:>8.1}µ {:>9.1}µ {:>8.1}µ {:>8.2}× {:>8.2}× {:>11.1}× {:>6.2} {:>8.2} {:>11}",
            r.challenge,
            r.instantiate_pooled_p50_us,
            r.instantiate_pooled_p99_us,
            r.instantiate_naive_p50_us,
            r.guest_call_p50_us,
            r.wasm_over_native_compute,
            r.wasm_over_native_end_to_end,
            r.pooled_over_naive,
            r.scaling_efficiency,
            r.scaling_efficiency_one_engine,
            r.fuel_per_eval
        );
    }
    println!();
    println!(
        "{:<14} {:>10} {:>10} {:>10} {:>10} {:>11} {:>10} {:>11} {:>11}",
        "challenge",
        "native µs",
        "sync µs",
        "async µs",
        "sync÷async",
        "eval s÷a",
        "no fuel µs",
        "fuel÷none",
        "eval f÷none"
    );
    for r in rows {
        println!(
            "{:<14} {:>10.2} {:>10.2} {:>10.2} {:>9.2}× {:>10.2}× {:>10.2} {:>10.2}× {:>10.2}×",
            r.challenge,
            r.native_call_p50_us,
            r.guest_call_p50_us,
            r.guest_call_async_p50_us,
            r.sync_over_async_call,
            r.sync_over_async_eval,
            r.guest_call_unmetered_p50_us,
            r.fuel_on_over_off_call,
            r.fuel_on_over_off_eval
        );
    }
    println!();
    println!(
        "inst: new store + instantiate + drop (pooled with InstancePre; naive: new linker, on-demand)."
    );
    println!(
        "Calls (last table): p50 of `platform_evaluate`, the paths taking turns in short blocks. \
         sync: the pooled engine's fiber-less path; async: a fiber per call; no fuel: the sync path \
         unmetered. eval s÷a, f÷none: whole evaluations (fresh instance included), sync ÷ async and metered ÷ unmetered."
    );
    println!(
        "w÷n call: guest `platform_evaluate` p50 ÷ native call p50, the same scoring code (lower is better)."
    );
    println!(
        "w÷n e2e: native evals/s ÷ pooled 1-shard evals/s, instantiation and queueing included."
    );
    println!(
        "pooled÷naive: pooled 1-shard evals/s ÷ naive evals/s. E(n): n-shard evals/s ÷ (n × 1-shard); \
         1 engine: the same with every shard on one wasmtime engine (`engines = 1`)."
    );
    println!(
        "Latency: per-call time for native and naive; service time inside the shard for pooled. \
         driver cores: the driver thread's CPU ÷ wall time while it submits and collects for the \
         pooled paths, on the shards' cores."
    );
}
