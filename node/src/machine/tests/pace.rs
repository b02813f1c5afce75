//! Admission at the pace of the stake, through the machine: notes out when behind, peers'
//! notes weighed by the pinned roster's stake.

use super::*;
use crate::msg::LoadNote;

fn says_behind(effects: &[Effect]) -> Option<bool> {
    effects.iter().find_map(|e| match e {
        Effect::SubnetBehind(b) => Some(*b),
        _ => None,
    })
}

fn notes(effects: &[Effect]) -> Vec<LoadNote> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Publish {
                topic: Topic::Load,
                payload,
            } => crate::msg::decode_exact::<LoadNote>(payload),
            _ => None,
        })
        .collect()
}

#[test]
fn half_the_stake_behind_stops_admission_everywhere_and_a_stranger_weighs_nothing() {
    let miner = key(5);
    // Four validators of equal stake, blocks 0..=3 seen.
    let mut p = validators(4, &miner, 3);
    let now = 400;
    let peer = |i: u8| key(i).public();
    let n0 = &mut p.nodes[0];
    // Behind means a drain time over the horizon: here until epoch 0's batch at 600 ms.
    let h = n0.admission_horizon(now) as u32;
    assert_eq!(h, 100, "at most settle");
    // Keeping up: nothing said.
    let fx = n0.handle(now, Input::Drain { ms: h });
    assert!(notes(&fx).is_empty() && says_behind(&fx).is_none());
    // One peer behind (a quarter of the stake), one stranger: admission goes on.
    let note = LoadNote { drain_ms: 5_000 };
    let fx = n0.handle(
        now,
        Input::LoadNote {
            from: peer(2),
            note,
        },
    );
    assert_eq!(says_behind(&fx), None);
    let fx = n0.handle(
        now,
        Input::LoadNote {
            from: key(9).public(),
            note,
        },
    );
    assert_eq!(says_behind(&fx), None, "not a validator");
    // We fall behind too: we say so, and half the stake is behind.
    let fx = n0.handle(now, Input::Drain { ms: 2_000 });
    assert_eq!(notes(&fx), vec![LoadNote { drain_ms: 2_000 }]);
    assert_eq!(says_behind(&fx), Some(true));
    // The peer's note lapses while we stay behind (and say so again): one of four.
    let later = now + pace_stale();
    let fx = n0.handle(later, Input::Drain { ms: 3_000 });
    assert_eq!(notes(&fx), vec![LoadNote { drain_ms: 3_000 }], "heartbeat");
    assert_eq!(says_behind(&fx), Some(false));
    // Caught up: said once.
    let fx = n0.handle(later + 1, Input::Drain { ms: 10 });
    assert_eq!(notes(&fx), vec![LoadNote { drain_ms: 10 }]);
}

fn pace_stale() -> u64 {
    super::super::pace::STALE_MS
}

#[test]
fn the_horizon_is_the_time_left_until_the_batch_what_is_admitted_now_goes_in() {
    let miner = key(5);
    // Blocks every 100 ms, epochs of 5 blocks, settle 100 ms: blocks 0..=3 seen.
    let mut p = validators(2, &miner, 3);
    let n0 = &mut p.nodes[0];
    n0.handle(400, Input::Block { number: 4 });
    // Epoch 0 ends with block 5, expected at 500; its batch at 600: 120 ms left at 480,
    // but never more than settle.
    assert_eq!(n0.admission_horizon(480), 100);
    assert_eq!(n0.admission_horizon(510), 90);
    n0.handle(500, Input::Block { number: 5 });
    // Epoch 0's miners may send until 550: its batch, at 600, comes first.
    assert_eq!(n0.admission_horizon(520), 80);
    // After that, epoch 1's: it ends with block 10, expected at 1,000; batch at 1,100.
    assert_eq!(n0.admission_horizon(560), 100);
    assert_eq!(n0.admission_horizon(1_020), 80);
    // Never less than settle / 2 (a block late, or a clock behind).
    assert_eq!(n0.admission_horizon(1_090), 50);
    // And the shell is told as it moves (by 20 ms or more).
    let fx = n0.handle(530, Input::Tick);
    assert!(
        fx.iter().any(|e| matches!(e, Effect::Horizon(70))),
        "{fx:?}"
    );
    let fx = n0.handle(540, Input::Tick);
    assert!(
        !fx.iter().any(|e| matches!(e, Effect::Horizon(_))),
        "{fx:?}"
    );
}
