//! Submissions a validator missed, or that reached it after its intake closed, and a peer
//! counted.

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

#[test]
fn a_validator_that_missed_a_submission_fetches_and_evaluates_it_and_refuses_a_forged_one() {
    let (a, b) = (key(1), key(2));
    let (miner, other) = (key(5), key(6));
    let v = vec![(a.public(), 100), (b.public(), 100)];
    let miners = [miner.public(), other.public()];
    let rosters: Vec<Box<dyn Fn(u64) -> Option<Roster>>> = (0..2)
        .map(|_| {
            let v = v.clone();
            Box::new(move |blk| Some(roster(&v, &miners, blk)))
                as Box<dyn Fn(u64) -> Option<Roster>>
        })
        .collect();
    let mut p = Pair::new(&[a, b], rosters);
    p.all(0, Input::Block { number: 0 });
    publish_challenge(&mut p, 0);
    p.run_blocks(7); // epoch 1 (blocks 5..10) is open, the challenge active
    let arrival = |env: platform_net::Envelope, author: Hotkey| {
        let bytes = env.encode();
        Arrival {
            id: platform_types::sha256(&bytes),
            author,
            challenge: 1,
            epoch: 1,
            body: vec![1, 2, 3],
            envelope: bytes,
        }
    };
    let sub = platform_net::Submission {
        challenge: 1,
        epoch: 1,
        body: vec![1, 2, 3],
    };
    // Only validator 0 hears of them: one real, one claiming `other` but signed by
    // someone else (what a lying validator could name in its batch).
    let real = arrival(sub.sign(&miner, 790), miner.public());
    let mut forged_env = sub.sign(&key(7), 790);
    forged_env.author = other.public();
    let forged = arrival(forged_env, other.public());
    p.input(790, 0, Input::Submission(real));
    p.input(790, 0, Input::Submission(forged));
    assert_eq!(p.nodes[0].stats().admitted, 2);
    // Epoch 1 ends at block 10; batches at + settle, the proposal at + 2 settle.
    p.run_span(8, 14, |_, _| {});
    assert_eq!(p.nodes[1].stats().missed_evaluated, 1, "the real one only");
    assert_eq!(p.nodes[0].stats().missed_evaluated, 0);
    let e1 = |i: usize| p.applied[i].iter().find(|x| x.epoch == 1).cloned();
    let (r0, r1) = (e1(0).expect("epoch 1 committed"), e1(1).unwrap());
    assert_eq!(r0.record, r1.record);
    // Validator 0 reported both, validator 1 the real one it caught up on.
    assert_eq!(r0.record.reports, 3, "{:?}", r0.record);
}
