//! The devnet's synthetic miner load: once an epoch, every miner submits to every loaded
//! challenge through the validators' doors, spread over them.

use std::time::Duration;

use platform_keys::Keypair;

use super::miner_seed;

/// Each miner submits `per` payloads to each challenge for `epoch`, spread over validators,
/// eight miners at a time.
pub(super) fn synthetic_load(
    epoch: u64,
    challenges: &[u32],
    miners: usize,
    per: usize,
    targets: &[String],
) {
    std::thread::scope(|s| {
        for part in 0..8 {
            s.spawn(move || {
                for j in (part..miners).step_by(8) {
                    load_miner(epoch, challenges, j, per, targets);
                }
            });
        }
    });
}

fn load_miner(epoch: u64, challenges: &[u32], j: usize, per: usize, targets: &[String]) {
    let mut n = j;
    let key = Keypair::from_seed(&miner_seed(j));
    for &c in challenges {
        let Some(ex) = platform_challenges::EXAMPLES.iter().find(|e| e.id == c) else {
            continue;
        };
        for k in 0..per {
            let s = epoch.wrapping_mul(1_000_003)
                ^ ((j as u64) << 20)
                ^ ((k as u64) << 8)
                ^ u64::from(c);
            let sub = platform_net::Submission {
                challenge: c,
                epoch,
                body: (ex.sample_payload)(s),
            };
            let to = &targets[n % targets.len()];
            n += 1;
            if let Err(e) = platform_net::miner::submit(to, &key, &sub, Duration::from_secs(5)) {
                tracing::debug!("synthetic submission refused: {e}");
            }
        }
    }
}
