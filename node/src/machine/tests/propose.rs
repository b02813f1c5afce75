//! When the leader proposes an epoch's value.

use super::*;

/// Validators of equal stake; `seen[i]` says whether validator `i` hears of the one
/// submission (and one that did not cannot fetch it: no copy is served). Returns when
/// (virtual ms) each node applied epoch 1.
fn epoch_1_applied_at<const N: usize>(seen: [bool; N]) -> [Option<u64>; N] {
    let miner = key(5);
    let mut p = validators(N as u8, &miner, 7);
    let arrival = signed_arrival(&miner, 1, vec![1], 800);
    for (i, heard) in seen.iter().enumerate() {
        if *heard {
            p.input(800, i, Input::Submission(arrival.clone()));
            p.provided[i].remove(&arrival.id);
        }
    }
    let mut at = [None; N];
    p.run_span(8, 14, |p, now| {
        for (i, a) in at.iter_mut().enumerate() {
            if a.is_none() && p.applied[i].iter().any(|x| x.epoch == 1) {
                *a = Some(now);
            }
        }
    });
    at
}

/// Every node applied epoch 1 before 2 × settle (it ends at 1,000 ms; settle is 100 ms).
fn proposed_at_settle(at: impl IntoIterator<Item = Option<u64>>) {
    for a in at {
        let a = a.expect("epoch 1 applied");
        assert!(
            (1100..1200).contains(&a),
            "applied at {a} ms, before 2 × settle"
        );
    }
}

/// Every node applied epoch 1, none before 2 × settle.
fn proposed_at_twice_settle(at: impl IntoIterator<Item = Option<u64>>) {
    for a in at {
        let a = a.expect("epoch 1 applied");
        assert!(a >= 1200, "applied at {a} ms, not before 2 × settle");
    }
}

#[test]
fn with_every_batch_held_and_alike_the_value_is_proposed_at_settle() {
    // Epoch 1 ends at block 10 (1,000 ms); settle is 100 ms.
    proposed_at_settle(epoch_1_applied_at([true, true]));
}

#[test]
fn a_validator_behind_its_peers_is_waited_for_until_twice_settle() {
    // Validator 1 missed the submission and cannot fetch it: its batch names fewer, so the
    // leader waits the full 2 × settle for it to catch up and publish again.
    proposed_at_twice_settle(epoch_1_applied_at([true, false]));
}

#[test]
fn a_validator_behind_on_what_a_majority_agrees_does_not_hold_the_proposal() {
    // Validator 2 of 3 missed the submission and cannot fetch it; the other two (a majority
    // of the stake) agree its score, so nothing counted waits on validator 2: proposed at
    // settle.
    proposed_at_settle(epoch_1_applied_at([true, true, false]));
}

#[test]
fn a_submission_only_a_minority_reports_is_waited_for_until_twice_settle() {
    // Only validator 0 of 3 heard of it: no majority reports it yet, so the leader waits
    // for the others to catch up (they cannot here) until 2 × settle.
    proposed_at_twice_settle(epoch_1_applied_at([true, false, false]));
}

#[test]
fn every_validator_weighs_the_result_once_it_holds_every_batch() {
    // Not only the leader: each validator computes the result over the batches it holds
    // before a proposal names them, so that judging the proposal is a lookup.
    let miner = key(5);
    let mut p = validators(3, &miner, 7);
    p.all(
        800,
        Input::Submission(signed_arrival(&miner, 1, vec![1], 800)),
    );
    p.run_span(8, 11, |_, _| {});
    for (i, n) in p.nodes.iter().enumerate() {
        let (ids, agreed) = n.covered.as_ref().expect("weighed");
        assert_eq!(ids.len(), 3, "validator {i}: one batch per validator");
        assert!(agreed, "validator {i}");
    }
}

/// The walk that checks a batch against the agreed scores answers as lookups would, in
/// order or not.
#[test]
fn a_batch_is_checked_against_the_agreed_scores_in_one_walk() {
    use crate::msg::BatchEntry;
    use std::collections::BTreeMap;
    let entry = |c: u32, m: u8| BatchEntry {
        challenge: c,
        miner: [m; 32],
        submission: [m; 32],
        score: Some(1),
    };
    let scores: BTreeMap<(u32, Hotkey), u64> = [(1, 2), (1, 4), (2, 1), (3, 9)]
        .into_iter()
        .map(|(c, m)| ((c, [m; 32]), 5))
        .collect();
    let check = |entries: &[BatchEntry]| {
        let looked_up = entries
            .iter()
            .all(|en| scores.contains_key(&(en.challenge, en.miner)));
        let walked = crate::machine::decide::all_agreed(entries, &scores);
        assert_eq!(walked, looked_up, "{entries:?}");
        walked
    };
    assert!(check(&[]));
    assert!(check(&[entry(1, 2), entry(2, 1), entry(3, 9)]));
    assert!(check(&[entry(1, 2), entry(1, 4), entry(2, 1), entry(3, 9)]));
    assert!(!check(&[entry(1, 2), entry(1, 3), entry(2, 1)]));
    assert!(!check(&[entry(1, 4), entry(3, 9), entry(4, 0)]));
    assert!(!check(&[entry(0, 0)]));
    // Out of order: looked up one by one.
    assert!(check(&[entry(3, 9), entry(1, 2)]));
    assert!(!check(&[entry(3, 9), entry(1, 3)]));
}
