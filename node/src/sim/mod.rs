//! The whole-network twin: N validators running the real epoch machine (and inside it the
//! real consensus replica, real sr25519 signatures, the real registry and epoch result) over
//! a simulated network (delay, loss, reordering, partitions) and the real simulated
//! subtensor producing blocks, with the metagraph changing during the run (miners registering
//! and losing their uid, stake moving, a validator joining and one leaving), crashes with
//! restart from what each node made durable, and a lying leader. Evaluation is a
//! deterministic function of (seed, challenge, payload). One seed drives everything; every
//! failure names it, and the same seed replays the same run (`Outcome::trace`).
//!
//! Invariants, checked as each decision is applied: every node applies the same digest and
//! weights for an epoch; each node applies epochs consecutively from genesis (none skipped);
//! every node's own recomputation gives the committed digest. At the end, after the faults
//! have healed: every node (restarted ones included) has caught up to the network.

mod world;

pub use world::{Outcome, Scenario, Violation};

/// Run a scenario; `Err` names the first broken invariant (and the seed).
pub fn run(sc: &Scenario) -> Result<Outcome, Violation> {
    world::World::new(sc.clone()).run()
}

/// Scenarios for seeds `from..from + n`, each drawn from its seed (4 to 16 validators, with
/// crashes, partitions, metagraph changes and a lying leader where the seed says so).
pub fn scenarios(from: u64, n: u64) -> impl Iterator<Item = Scenario> {
    (from..from + n).map(Scenario::random)
}
