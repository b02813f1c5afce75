//! Submissions for an epoch the chain has opened wait for its roster instead of being
//! refused `not_ready`, and are decided when it arrives (or after `crate::machine::early::WAIT_MS`).

use super::*;

fn arrival(id: u8, author: Hotkey, epoch: u64) -> Arrival {
    Arrival {
        id: [id; 32],
        author,
        challenge: 1,
        epoch,
        body: vec![id],
        envelope: vec![id],
    }
}

#[test]
fn submissions_wait_for_their_epochs_roster_and_count_when_it_arrives() {
    let me = key(1);
    let (miner, other) = ([5; 32], [6; 32]);
    let v = vec![(me.public(), 100)];
    let chain = v.clone();
    // Epoch 1 (blocks 5..10) is pinned at block 5, whose metagraph this node cannot read
    // yet: it gets the roster only when the test hands it over.
    let mut p = Pair::new(
        &[me],
        vec![Box::new(move |b| {
            (b != 5).then(|| roster(&chain, &[miner, other], b))
        })],
    );
    p.input(0, 0, Input::Block { number: 0 });
    publish_challenge(&mut p, 0);
    p.run_blocks(6);
    assert!(
        !p.nodes[0].rosters.contains_key(&1),
        "the roster is missing"
    );

    // A miner's submission and a peer's for epoch 1: they wait, the miner unanswered.
    p.input(
        700,
        0,
        Input::Submit {
            token: 1,
            arrival: arrival(1, miner, 1),
        },
    );
    p.input(700, 0, Input::Submission(arrival(2, other, 1)));
    assert!(p.admits.is_empty(), "{:?}", p.admits);
    assert_eq!(p.nodes[0].early.len(), 2);
    // One for an epoch the chain has not opened is refused at once, as before.
    p.input(
        700,
        0,
        Input::Submit {
            token: 2,
            arrival: arrival(3, miner, 3),
        },
    );
    assert_eq!(p.admits, vec![(2, Err(Refusal::EpochNotOpen))]);

    // The roster arrives: both count, the miner hears so.
    let r = roster(&v, &[miner, other], 5);
    p.input(
        800,
        0,
        Input::Roster {
            epoch: 1,
            roster: r,
        },
    );
    assert_eq!(p.admits[1..], [(1, Ok(()))]);
    assert_eq!(p.nodes[0].early.len(), 0);
    let counted = &p.nodes[0].subs[&1].counted;
    assert_eq!(counted.get(&(1, miner)), Some(&[1; 32]));
    assert_eq!(counted.get(&(1, other)), Some(&[2; 32]));
}

#[test]
fn a_submission_whose_roster_never_comes_is_refused_after_the_wait() {
    let me = key(1);
    let miner = [5; 32];
    let v = vec![(me.public(), 100)];
    let mut p = Pair::new(
        &[me],
        vec![Box::new(move |b| (b != 5).then(|| roster(&v, &[miner], b)))],
    );
    p.input(0, 0, Input::Block { number: 0 });
    publish_challenge(&mut p, 0);
    p.run_blocks(6);
    p.input(
        700,
        0,
        Input::Submit {
            token: 1,
            arrival: arrival(1, miner, 1),
        },
    );
    p.input(700 + crate::machine::early::WAIT_MS - 1, 0, Input::Tick);
    assert!(p.admits.is_empty());
    p.input(700 + crate::machine::early::WAIT_MS, 0, Input::Tick);
    assert_eq!(p.admits, vec![(1, Err(Refusal::NotReady))]);
    assert_eq!(p.nodes[0].early.len(), 0);
}
