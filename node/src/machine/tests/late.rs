//! Submissions that reach a validator after its intake closed, and a peer counted.

use super::*;

#[test]
fn a_late_arrival_a_peer_counted_is_evaluated_without_a_fetch() {
    let miner = key(5);
    // Epoch 1 (blocks 5..10) is open until block 10 and settle / 2 after it.
    let mut p = two_validators(&miner, 9);
    let arrival = signed_arrival(&miner, 1, vec![7], 950);
    // Validator 0 takes it in time; validator 1 gets it from gossip after its intake closed.
    p.input(950, 0, Input::Submission(arrival.clone()));
    p.all(1000, Input::Block { number: 10 });
    p.input(1080, 1, Input::Submission(arrival.clone()));
    assert_eq!(p.nodes[1].stats().missed_evaluated, 0, "refused as closed");
    // Validator 0's batch (after settle) names it: validator 1 evaluates the one it held.
    for t in 0..40 {
        p.all(1080 + t * 20, Input::Tick);
    }
    assert_eq!(p.nodes[1].stats().missed_evaluated, 1);
    assert!(
        !p.fetches[1].contains(&arrival.id),
        "taken from what arrived late, not fetched"
    );
    let epochs: Vec<u64> = p.applied[1].iter().map(|a| a.epoch).collect();
    assert!(epochs.contains(&1), "epoch 1 decided: {epochs:?}");
}
