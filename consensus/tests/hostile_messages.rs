//! Nothing a peer sends may crash a replica: random bytes and bit-flipped copies of real
//! messages go through the wire decoder and, when they decode, into a live replica. Every
//! one is rejected and counted or handled; the replica still decides afterwards.

use platform_consensus::codec::{decode_message, encode_message};
use platform_consensus::sim::Rng;
use platform_consensus::{
    Action, Config, Domain, Event, MemStore, Message, Replica, Signer, Validator, ValidatorSet,
    ViewChange, Vote,
};

const D: Domain = Domain {
    netuid: 3,
    epoch: 1,
};

#[test]
fn garbage_and_mutated_messages_never_panic_and_are_never_applied() {
    let signers: Vec<Signer> = (1..=4u8).map(|i| Signer::from_seed(&[i; 32])).collect();
    let set = ValidatorSet::new(
        signers
            .iter()
            .map(|s| Validator {
                hotkey: s.public(),
                stake: 25,
            })
            .collect(),
        None,
    )
    .unwrap();
    let cfg = Config::new(D, [1; 32]);
    let (mut replica, _) = Replica::start(
        cfg,
        set.clone(),
        Signer::from_seed(&[1; 32]),
        MemStore::default(),
        0,
    )
    .unwrap();

    // Real messages to mutate: votes, a view change and a proposal-shaped message.
    let digest = [7u8; 32];
    let mut seeds: Vec<Vec<u8>> = signers
        .iter()
        .flat_map(|s| {
            [
                encode_message(&Message::Vote(Vote::sign(
                    s,
                    D,
                    platform_consensus::Kind::Prepare,
                    1,
                    0,
                    digest,
                ))),
                encode_message(&Message::ViewChange(ViewChange::sign(s, D, 1, 1, None))),
            ]
        })
        .collect();
    seeds.push(encode_message(&Message::SyncRequest { from: 1 }));

    let mut rng = Rng(0xbad);
    let mut decoded = 0;
    for round in 0..20_000u64 {
        let bytes = if round % 2 == 0 {
            (0..rng.below(300))
                .map(|_| rng.next() as u8)
                .collect::<Vec<u8>>()
        } else {
            let mut b = seeds[rng.below(seeds.len() as u64) as usize].clone();
            for _ in 0..1 + rng.below(4) {
                let i = rng.below(b.len() as u64) as usize;
                b[i] ^= 1 << rng.below(8);
            }
            b
        };
        if let Ok(m) = decode_message(&bytes) {
            decoded += 1;
            for a in replica.handle(round, Event::Message(m)) {
                assert!(
                    !matches!(a, Action::Decided(_)),
                    "a mutated message led to a decision"
                );
            }
        }
    }
    assert!(
        decoded > 1000,
        "the mutations should mostly still decode ({decoded})"
    );
    let stats = replica.stats();
    assert!(
        stats.bad_signature
            + stats.unknown_signer
            + stats.stale
            + stats.out_of_bounds
            + stats.invalid
            > 0
    );

    // Still serving: a real proposal and real votes decide height 1.
    let now = 30_000;
    let leader = &signers[set.leader(&[1; 32], 1, 0)];
    let value = b"epoch result".to_vec();
    let digest = platform_consensus::crypto::value_digest(&value);
    let proposal = platform_consensus::Proposal::sign(leader, D, 1, 0, value, vec![]);
    let mut actions = replica.handle(now, Event::Message(Message::Proposal(proposal)));
    if actions.iter().any(|a| matches!(a, Action::Validate { .. })) {
        actions = replica.handle(
            now,
            Event::Validated {
                height: 1,
                view: 0,
                digest,
                accept: true,
            },
        );
    }
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, Action::Broadcast(Message::Vote(_)))),
        "{actions:?}"
    );
    let mut decided = false;
    for kind in [
        platform_consensus::Kind::Prepare,
        platform_consensus::Kind::Commit,
    ] {
        for s in &signers[1..] {
            let vote = Vote::sign(s, D, kind, 1, 0, digest);
            decided |= replica
                .handle(now, Event::Message(Message::Vote(vote)))
                .iter()
                .any(|a| matches!(a, Action::Decided(_)));
        }
    }
    assert!(decided, "the replica decides after the garbage");
    assert_eq!(replica.height(), 2);
}
