//! Submissions a validator missed, or that reached it after its intake closed, and a peer
//! counted.

use super::*;

#[test]
fn peers_submissions_count_until_the_batch_goes_out_miners_until_half_settle() {
    // Epoch 1 (blocks 5..10) ends at block 10 (1,000 ms); settle is 100 ms: its miners'
    // intake closes at 1,050; what peers counted is taken until the batch goes out at 1,100.
    let miner = key(5);
    let mut p = two_validators(&miner, 9);
    p.all(1000, Input::Block { number: 10 });
    let late_send = signed_arrival(&miner, 1, vec![1], 1060);
    p.input(
        1060,
        1,
        Input::Submit {
            token: 7,
            arrival: late_send,
        },
    );
    assert_eq!(p.admits.last(), Some(&(7, Err(Refusal::EpochClosed))));
    let before = p.nodes[1].stats().admitted;
    let in_transit = signed_arrival(&miner, 1, vec![2], 1040);
    p.input(1080, 1, Input::Submission(in_transit.clone()));
    assert_eq!(p.nodes[1].stats().admitted, before + 1, "a peer's, in time");
    // The batch goes out; a peer's submission after that is held, not counted (one with a
    // smaller id than the counted one, so that only the closed window can refuse it).
    p.all(1100, Input::Tick);
    let after = (3..)
        .map(|b| signed_arrival(&miner, 1, vec![b], 1050))
        .find(|a| a.id < in_transit.id)
        .expect("some id is smaller");
    p.input(1110, 1, Input::Submission(after));
    assert_eq!(p.nodes[1].stats().admitted, before + 1, "after the batch");
}

#[test]
fn a_late_arrival_a_peer_counted_is_evaluated_without_a_fetch() {
    let miner = key(5);
    // Epoch 1 (blocks 5..10) is open until block 10 and settle / 2 after it.
    let mut p = two_validators(&miner, 9);
    let arrival = signed_arrival(&miner, 1, vec![7], 950);
    // Validator 0 takes it in time; validator 1, which saw the epoch end 50 ms before
    // validator 0 did, gets it from gossip after its own batch went out (at settle,
    // 1,100 ms), when its intake is closed to peers too.
    p.input(950, 0, Input::Submission(arrival.clone()));
    p.input(1000, 1, Input::Block { number: 10 });
    p.input(1050, 0, Input::Block { number: 10 });
    p.all(1100, Input::Tick);
    p.input(1120, 1, Input::Submission(arrival.clone()));
    assert_eq!(p.nodes[1].stats().missed_evaluated, 0, "refused as closed");
    // Validator 0's batch (at 1,150 ms) names it: validator 1 evaluates the one it held.
    for t in 0..40 {
        p.all(1140 + t * 20, Input::Tick);
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
