//! Peer roles over real libp2p on loopback: who counts as a validator, who may publish on
//! validator-only topics, and the policy for peers that have not bound themselves.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use common::{Inbox, WAIT, identity, start, wait_for_mesh, wait_until};
use platform_keys::Keypair;
use platform_net::wire::{Envelope, Submission, Topic, now_ms};
use platform_net::{Net, NetConfig, Options, Reason, Scheme, SubmitAck, UnboundPeers};

#[test]
fn only_allowed_authors_are_accepted_on_a_restricted_topic() {
    let cfg = NetConfig::loopback();
    let validators: HashSet<_> = [70u8, 71]
        .map(|i| Keypair::from_seed(&[i; 32]).public())
        .into();
    let opts = || Options {
        authors: HashMap::from([(Topic::Consensus, validators.clone())]),
        ..Options::default()
    };
    let a = start(70, cfg.clone(), None, opts());
    let b = start(71, cfg.clone(), Some(&a), opts());
    let outsider = start(72, cfg, Some(&a), Options::default());
    let nodes = [a, b, outsider];
    wait_for_mesh(&nodes);
    nodes[2]
        .handle()
        .publish(Topic::Consensus, b"not a validator".to_vec())
        .unwrap();
    // The outsider is bound to a hotkey outside the set: refused as a publisher before its
    // envelope is even read.
    wait_until("the outsider's vote to be ignored", || {
        nodes[0].handle().stats().rejected(Reason::NotValidator) >= 1
    });
    let id = nodes[1]
        .handle()
        .publish(Topic::Consensus, b"validator vote".to_vec())
        .unwrap();
    Inbox::new(3).wait_delivered(&nodes, &[0, 2], &id);
}

/// A bound peer counts as a validator only when its hotkey is in the validator set the
/// application gave (the consensus topic's authors).
#[test]
fn a_bound_peer_outside_the_validator_set_is_not_counted_as_a_validator() {
    let cfg = NetConfig::loopback();
    let only_self = Options {
        authors: HashMap::from([(
            Topic::Consensus,
            HashSet::from([identity(60).hotkey.public()]),
        )]),
        ..Options::default()
    };
    let a = start(60, cfg.clone(), None, only_self);
    let b = start(61, cfg.clone(), Some(&a), Options::default());
    let nodes = [a, b];
    wait_for_mesh(&nodes);
    let seen_by_a = nodes[0].handle().peers().unwrap();
    assert_eq!(seen_by_a.len(), 1);
    assert_eq!(seen_by_a[0].hotkey, Some(identity(61).hotkey.public()));
    assert!(
        !seen_by_a[0].validator,
        "bound, but not in a's validator set"
    );
    let seen_by_b = nodes[1].handle().peers().unwrap();
    assert!(
        seen_by_b[0].validator,
        "b has no set: any bound peer counts"
    );
}

/// Peer roles on validator-only topics: a bound peer outside the validator set cannot publish
/// there, not even a validator's genuine envelope, and a validator cannot publish another
/// validator's envelope as its own; neither is penalised (nothing is forged), and the
/// validators' own messages still flow.
#[test]
fn only_a_validator_publishes_its_own_messages_on_validator_only_topics() {
    let cfg = NetConfig::loopback();
    let validators: HashSet<_> = [80u8, 81]
        .map(|i| Keypair::from_seed(&[i; 32]).public())
        .into();
    let opts = || Options {
        authors: HashMap::from([
            (Topic::Consensus, validators.clone()),
            (Topic::Evaluations, validators.clone()),
        ]),
        ..Options::default()
    };
    let a = start(80, cfg.clone(), None, opts());
    let b = start(81, cfg.clone(), Some(&a), opts());
    let outsider = start(82, cfg, Some(&a), Options::default());
    let nodes = [a, b, outsider];
    wait_for_mesh(&nodes);
    let refused = |n: &Net| n.handle().stats().rejected(Reason::NotValidator);

    // A validator's genuine, never-seen envelope, published by the outsider.
    let genuine = Envelope::sign(
        &Keypair::from_seed(&[81; 32]),
        Topic::Evaluations,
        now_ms(),
        b"b's batch".to_vec(),
    );
    nodes[2]
        .handle()
        .publish_raw(Topic::Evaluations, genuine.encode())
        .unwrap();
    wait_until("a to refuse the outsider's relay of b's envelope", || {
        refused(&nodes[0]) >= 1
    });
    // Validator b publishing validator a's envelope as its own.
    let a_own = Envelope::sign(
        &Keypair::from_seed(&[80; 32]),
        Topic::Consensus,
        now_ms(),
        b"a's vote".to_vec(),
    );
    nodes[1]
        .handle()
        .publish_raw(Topic::Consensus, a_own.encode())
        .unwrap();
    wait_until("the outsider to refuse b publishing a's vote", || {
        refused(&nodes[2]) >= 1
    });
    // b's own vote reaches both; nobody was penalised or banned.
    let id = nodes[1]
        .handle()
        .publish(Topic::Consensus, b"b's vote".to_vec())
        .unwrap();
    Inbox::new(3).wait_delivered(&nodes, &[0, 2], &id);
    for (i, n) in nodes.iter().enumerate() {
        assert_eq!(n.handle().stats().bans, 0, "node {i} banned nobody");
        for p in n.handle().peers().unwrap() {
            assert_eq!(p.penalty, 0.0, "node {i} penalised {}", p.peer);
        }
    }
}

/// `unbound_peers = "refuse"`: a miner that has not bound its connection hears
/// `unbound_peer` (never penalised) and is disconnected after the hello timeout; a miner that
/// binds its hotkey first (version-2 binding, as btcli signs) is served. Under
/// `requests_only` an unbound miner is served.
#[test]
fn the_unbound_peer_policy_answers_binds_and_closes() {
    let miner = Keypair::from_seed(&[86; 32]);
    let submission = |body: &[u8]| {
        Submission {
            challenge: 1,
            epoch: 1,
            body: body.to_vec(),
        }
        .sign(&miner, now_ms())
        .encode()
    };
    let cfg = NetConfig {
        unbound_peers: UnboundPeers::Refuse,
        hello_timeout: Duration::from_millis(500),
        ..NetConfig::loopback()
    };
    let v = start(85, cfg, None, Options::default());
    let addr = v.handle().listen_addrs()[0].clone();

    let bound = platform_net::miner::deliver_bound(
        &addr,
        submission(b"bound"),
        WAIT,
        &miner,
        Scheme::Substrate,
    )
    .unwrap();
    assert!(matches!(bound, SubmitAck::Accepted(_)), "{bound:?}");

    let unbound = platform_net::miner::MinerClient::connect(&addr, WAIT).unwrap();
    for i in 0..3u8 {
        assert_eq!(
            unbound.submit(submission(&[i])).unwrap(),
            SubmitAck::Rejected("unbound_peer".into()),
            "try {i}"
        );
    }
    wait_until("the unbound connection to be closed", || {
        v.handle().stats().rejected(Reason::UnboundPeer) >= 4
            && v.handle().peers().unwrap().is_empty()
    });
    assert_eq!(v.handle().stats().bans, 0);

    let open = start(
        87,
        NetConfig {
            unbound_peers: UnboundPeers::RequestsOnly,
            ..NetConfig::loopback()
        },
        None,
        Options::default(),
    );
    let addr = open.handle().listen_addrs()[0].clone();
    let ack = platform_net::miner::deliver(&addr, submission(b"unbound"), WAIT).unwrap();
    assert!(matches!(ack, SubmitAck::Accepted(_)), "{ack:?}");
}

#[test]
fn an_isolated_node_drops_every_peer_and_rejoins() {
    let cfg = NetConfig::loopback();
    let a = start(70, cfg.clone(), None, Options::default());
    let b = start(71, cfg, Some(&a), Options::default());
    let nodes = [a, b];
    wait_for_mesh(&nodes);
    nodes[1].handle().isolate(true).unwrap();
    wait_until("both sides to see no peer", || {
        nodes
            .iter()
            .all(|n| n.handle().peers().is_ok_and(|p| p.is_empty()))
    });
    // Rejoining dials the bootstrap peers again.
    nodes[1].handle().isolate(false).unwrap();
    wait_for_mesh(&nodes);
}
