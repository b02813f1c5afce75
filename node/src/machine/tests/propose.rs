//! When the leader proposes an epoch's value.

use super::*;

/// Two validators; `seen[i]` says whether validator `i` hears of the one submission (and
/// one that did not cannot fetch it: no copy is served). Returns when (virtual ms) each node
/// applied epoch 1, stepping blocks and ticks of 20 ms.
fn epoch_1_applied_at(seen: [bool; 2]) -> [Option<u64>; 2] {
    let keys = [key(1), key(2)];
    let miner = key(5);
    let set: Vec<(Hotkey, u64)> = keys.iter().map(|k| (k.public(), 100)).collect();
    let rosters: Vec<Box<dyn Fn(u64) -> Option<Roster>>> = (0..2)
        .map(|_| {
            let set = set.clone();
            let m = miner.public();
            Box::new(move |b| Some(roster(&set, &[m], b))) as Box<dyn Fn(u64) -> Option<Roster>>
        })
        .collect();
    let mut p = Pair::new(&keys, rosters);
    p.all(0, Input::Block { number: 0 });
    publish_challenge(&mut p, 0);
    p.run_blocks(7);
    let envelope = platform_net::Submission {
        challenge: 1,
        epoch: 1,
        body: vec![1],
    }
    .sign(&miner, 800)
    .encode();
    let arrival = Arrival {
        id: platform_types::sha256(&envelope),
        author: miner.public(),
        challenge: 1,
        epoch: 1,
        body: vec![1],
        envelope,
    };
    for (i, heard) in seen.iter().enumerate() {
        if *heard {
            p.input(800, i, Input::Submission(arrival.clone()));
            p.provided[i].remove(&arrival.id);
        }
    }
    let mut at = [None, None];
    for blk in 8..=14 {
        for t in 0..5 {
            let now = blk * 100 + t * 20;
            if t == 0 {
                p.all(now, Input::Block { number: blk });
            }
            p.all(now, Input::Tick);
            for (i, a) in at.iter_mut().enumerate() {
                if a.is_none() && p.applied[i].iter().any(|x| x.epoch == 1) {
                    *a = Some(now);
                }
            }
        }
    }
    at
}

#[test]
fn with_every_batch_held_and_alike_the_value_is_proposed_at_settle() {
    // Epoch 1 ends at block 10 (1,000 ms); settle is 100 ms.
    let at = epoch_1_applied_at([true, true]);
    for a in at {
        let a = a.expect("epoch 1 applied");
        assert!(
            (1100..1200).contains(&a),
            "applied at {a} ms, before 2 × settle"
        );
    }
}

#[test]
fn a_validator_behind_its_peers_is_waited_for_until_twice_settle() {
    // Validator 1 missed the submission and cannot fetch it: its batch names fewer, so the
    // leader waits the full 2 × settle for it to catch up and publish again.
    let at = epoch_1_applied_at([true, false]);
    for a in at {
        let a = a.expect("epoch 1 applied");
        assert!(a >= 1200, "applied at {a} ms, not before 2 × settle");
    }
}
