//! The recorder keeps every histogram sample until an upkeep folds it into its buckets; the
//! exporter runs one on a timer, so a node nobody scrapes does not grow by every sample.
//! Measured with the node's own allocator and its statistics.

use std::time::{Duration, Instant};

use platform_node::exporter::Exporter;

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn allocated() -> u64 {
    platform_node::heap::read()
        .expect("jemalloc is this test's allocator")
        .allocated
}

fn wait_for_upkeeps(e: &Exporter, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let start = e.upkeeps();
    while e.upkeeps() < start + n {
        assert!(Instant::now() < deadline, "no upkeep within 30 s");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn histogram_samples_are_folded_without_a_scrape() {
    let exporter = Exporter::install_with(
        "127.0.0.1:0".parse().unwrap(),
        None,
        Duration::from_millis(20),
    )
    .unwrap();
    let h = metrics::histogram!(platform_engine::metrics::EVALUATION_DURATION, "challenge" => "1");
    h.record(0.1);
    wait_for_upkeeps(&exporter, 2);
    let before = allocated();
    let upkeeps_before = exporter.upkeeps();
    // 1M samples: 8 MB of f64s kept by the recorder until an upkeep.
    for i in 0..1_000_000u32 {
        h.record(f64::from(i % 100) * 1e-5);
    }
    // Held until folded (an upkeep may already have run meanwhile: not asserted here; what
    // must hold is below, and fails when nothing folds them: ~20 MB stay).
    let held = allocated();
    // Folded blocks are freed once no reader can hold them (crossbeam-epoch), which takes
    // other threads' activity: a node keeps recording, and so does this loop, a sample a
    // millisecond. Nothing scrapes.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut recorded = 0u32;
    while allocated() > before + 1_000_000 {
        assert!(
            Instant::now() < deadline,
            "samples still held after 30 s without a scrape: {before} → {held} → {}",
            allocated()
        );
        h.record(0.1);
        recorded += 1;
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(exporter.upkeeps() > 0);
    // And none was lost: every sample is in the histogram's count.
    let text = exporter.render();
    let count = text
        .lines()
        .find(|l| {
            l.starts_with("platform_engine_evaluation_duration_seconds_count{challenge=\"1\"}")
        })
        .unwrap_or_else(|| panic!("{text}"));
    // Exactly, but for one race of the recorder's lock-free bucket (metrics-util 0.20): a
    // sample pushed while an upkeep swaps the bucket out can land in the detached block after
    // it was read, and is lost. One thread records here, so each upkeep can lose at most one;
    // an upkeep that dropped what it folded would lose thousands.
    let total = 1_000_001 + u64::from(recorded);
    let racing_upkeeps = exporter.upkeeps() - upkeeps_before;
    let counted: u64 = count
        .rsplit(' ')
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{count}"));
    assert!(
        counted <= total && counted + racing_upkeeps >= total,
        "{count}: {total} recorded, {racing_upkeeps} upkeeps meanwhile"
    );
}
