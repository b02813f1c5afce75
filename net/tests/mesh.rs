//! Real libp2p nodes on loopback, each on its own net thread, in one test process. Every
//! wait is on a condition with a deadline.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use platform_keys::Keypair;
use platform_net::wire::{Envelope, Submission, Topic, now_ms, sha256};
use platform_net::{
    Hostile, Net, NetConfig, NetError, NetEvent, Options, Reason, RecordKind, SubmitAck,
};

mod common;

use common::{Inbox, WAIT, start, wait_for_mesh, wait_until};
#[test]
fn mesh_of_five_delivers_once_refuses_bad_input_and_shares_records() {
    let cfg = NetConfig::loopback();
    let mut nodes = vec![start(0, cfg.clone(), None, Options::default())];
    for i in 1..5 {
        let n = start(i, cfg.clone(), Some(&nodes[0]), Options::default());
        nodes.push(n);
    }
    wait_for_mesh(&nodes);
    let mut inbox = Inbox::new(nodes.len());
    inbox.drain(&nodes);

    // A message published at one node reaches every other node exactly once.
    let id = nodes[1]
        .handle()
        .publish(Topic::Evaluations, b"batch-1".to_vec())
        .unwrap();
    inbox.wait_delivered(&nodes, &[0, 2, 3, 4], &id);
    let sentinel = nodes[3]
        .handle()
        .publish(Topic::Evaluations, b"batch-2".to_vec())
        .unwrap();
    inbox.wait_delivered(&nodes, &[0, 1, 2, 4], &sentinel);
    for i in [0, 2, 3, 4] {
        assert_eq!(inbox.count(i, &id), 1, "node {i} got it once");
    }
    assert_eq!(
        inbox.count(1, &id),
        0,
        "the publisher does not get its own message"
    );
    // In a full mesh every node forwards what it accepted, so copies arrive that gossipsub
    // drops as duplicates before our checks: they are counted (all copies vs first ones).
    wait_until("duplicate copies to be counted", || {
        nodes.iter().any(|n| {
            let s = n.handle().stats();
            s.gossip_first >= 2 && s.gossip_copies > s.gossip_first
        })
    });
    let d = inbox.got[2]
        .iter()
        .find_map(|e| match e {
            NetEvent::Message(d) if d.id == id => Some(d.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(d.author, Keypair::from_seed(&[1; 32]).public());
    assert_eq!(d.payload, b"batch-1");
    assert_eq!(sha256(&d.envelope), id);

    // Republishing the same bytes is refused as a duplicate, even by another node.
    assert_eq!(
        nodes[2]
            .handle()
            .publish_raw(Topic::Evaluations, d.envelope.clone()),
        Err(NetError::Duplicate)
    );

    // A message with a bad signature is dropped everywhere and its sender's score falls.
    let mut forged = Envelope::sign(
        &Keypair::from_seed(&[3; 32]),
        Topic::Consensus,
        now_ms(),
        b"vote".to_vec(),
    );
    forged.signature[7] ^= 1;
    let bad_id = nodes[3]
        .handle()
        .publish_raw(Topic::Consensus, forged.encode())
        .unwrap();
    let sender = nodes[3].handle().peer_id();
    for (i, n) in nodes.iter().enumerate().filter(|(i, _)| *i != 3) {
        wait_until(&format!("node {i} to count the bad signature"), || {
            n.handle().stats().rejected(Reason::BadSignature) >= 1
        });
        wait_until(&format!("node {i} to score the sender down"), || {
            n.handle()
                .peers()
                .unwrap()
                .iter()
                .any(|p| p.peer == sender && p.gossip_score.is_some_and(|s| s < 0.0))
        });
    }
    // An oversized message is refused: by the sender's own API, and by every receiver when
    // it is pushed raw.
    let limit = cfg.max_payload_bytes.submissions;
    assert!(matches!(
        nodes[2]
            .handle()
            .publish(Topic::Submissions, vec![0; limit + 1]),
        Err(NetError::TooLarge { .. })
    ));
    let big = Envelope::sign(
        &Keypair::from_seed(&[2; 32]),
        Topic::Submissions,
        now_ms(),
        Submission {
            challenge: 1,
            epoch: 1,
            body: vec![7; limit + 10],
        }
        .encode(),
    );
    let big_id = nodes[2]
        .handle()
        .publish_raw(Topic::Submissions, big.encode())
        .unwrap();
    // (Node 3 sent an invalid message: its score is now below the publish threshold, so
    // nothing is published to it directly any more.)
    for (i, n) in nodes.iter().enumerate().filter(|(i, _)| *i != 2 && *i != 3) {
        wait_until(&format!("node {i} to refuse the oversized message"), || {
            n.handle().stats().rejected(Reason::Oversized) >= 1
        });
    }
    // A stale message is ignored.
    let stale = Envelope::sign(
        &Keypair::from_seed(&[4; 32]),
        Topic::Evaluations,
        now_ms() - 3_600_000,
        b"old".to_vec(),
    );
    nodes[4]
        .handle()
        .publish_raw(Topic::Evaluations, stale.encode())
        .unwrap();
    wait_until("node 0 to ignore the stale message", || {
        nodes[0].handle().stats().rejected(Reason::Stale) >= 1
    });
    // Garbage and envelopes on the wrong topic are rejected with their reasons. (Few per
    // sender: after three invalid messages gossipsub graylists a peer and reads nothing
    // more from it.)
    for (i, junk) in [vec![1, 2, 3, 4, 5], vec![0xff; 500]]
        .into_iter()
        .enumerate()
    {
        nodes[4]
            .handle()
            .publish_raw(Topic::Evaluations, [junk, vec![i as u8]].concat())
            .unwrap();
    }
    let misfiled = Envelope::sign(
        &Keypair::from_seed(&[4; 32]),
        Topic::Consensus,
        now_ms(),
        b"vote".to_vec(),
    );
    nodes[1]
        .handle()
        .publish_raw(Topic::Evaluations, misfiled.encode())
        .unwrap();
    wait_until("node 0 to reject garbage and a misfiled envelope", || {
        let s = nodes[0].handle().stats();
        s.rejected(Reason::Malformed) >= 2 && s.rejected(Reason::WrongTopic) >= 1
    });
    // Nothing refused ever reached an application.
    let after = nodes[1]
        .handle()
        .publish(Topic::Evaluations, b"batch-3".to_vec())
        .unwrap();
    inbox.wait_delivered(&nodes, &[0, 2, 3, 4], &after);
    for i in 0..nodes.len() {
        assert_eq!(inbox.count(i, &bad_id), 0);
        assert_eq!(inbox.count(i, &big_id), 0);
        assert_eq!(inbox.count(i, &stale.id()), 0);
    }

    // DHT: put at one node, get at another; a wrong hash is not found.
    let record = Envelope::sign(
        &Keypair::from_seed(&[1; 32]),
        Topic::Evaluations,
        now_ms(),
        b"evaluation batch record".to_vec(),
    )
    .encode();
    let h = nodes[1]
        .handle()
        .put_record(RecordKind::EvaluationBatch, record.clone())
        .unwrap();
    assert_eq!(h, sha256(&record));
    assert_eq!(
        nodes[4]
            .handle()
            .get_record(RecordKind::EvaluationBatch, h)
            .unwrap(),
        record
    );
    assert_eq!(
        nodes[3].handle().get_record(RecordKind::Checkpoint, h),
        Err(NetError::NotFound),
        "the kind is part of the key"
    );
    assert!(matches!(
        nodes[1]
            .handle()
            .put_record(RecordKind::Checkpoint, b"not an envelope".to_vec()),
        Err(NetError::Rejected(_))
    ));

    // A node that joins late fetches a module by hash and verifies it.
    let module: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let mh = nodes[0].handle().provide(module.clone()).unwrap();
    let late = start(9, cfg.clone(), Some(&nodes[2]), Options::default());
    let fetched = late.handle().fetch(mh).unwrap();
    assert_eq!(sha256(&fetched), mh);
    assert_eq!(fetched, module);
    assert_eq!(late.handle().fetch([0xee; 32]), Err(NetError::NotFound));

    for n in &nodes {
        assert_eq!(n.handle().stats().bans, 0, "honest peers are never banned");
    }
}

#[test]
fn a_peer_presenting_another_validators_hotkey_is_refused() {
    let cfg = NetConfig::loopback();
    let honest = start(20, cfg.clone(), None, Options::default());
    let victim = Keypair::from_seed(&[21; 32]).public();
    let impostor = start(
        22,
        cfg.clone(),
        Some(&honest),
        Options {
            hostile: Hostile {
                claim_hotkey: Some(victim),
                ..Hostile::default()
            },
            ..Options::default()
        },
    );
    wait_until("the honest node to refuse the binding", || {
        honest.handle().stats().rejected(Reason::BadBinding) >= 1
    });
    wait_until("the impostor to be cut off", || {
        honest.handle().peers().unwrap().is_empty()
    });
    assert_eq!(honest.handle().stats().bans, 1);
    while let Ok(ev) = honest.events().try_recv() {
        assert!(
            !matches!(ev, NetEvent::PeerBound { hotkey, .. } if hotkey == victim),
            "the forged hotkey was never bound"
        );
    }
    // A genuine validator still binds.
    let good = start(23, cfg, Some(&honest), Options::default());
    let key = Keypair::from_seed(&[23; 32]).public();
    wait_until("the genuine validator to bind", || {
        honest
            .handle()
            .peers()
            .unwrap()
            .iter()
            .any(|p| p.peer == good.handle().peer_id() && p.hotkey == Some(key))
    });
    drop(impostor);
}

#[test]
fn miner_submissions_are_checked_gossiped_and_replays_refused() {
    let cfg = NetConfig::loopback();
    let a = start(30, cfg.clone(), None, Options::default());
    let b = start(31, cfg.clone(), Some(&a), Options::default());
    let nodes = [a, b];
    wait_for_mesh(&nodes);
    let miner = Keypair::from_seed(&[39; 32]);
    let s = Submission {
        challenge: 2,
        epoch: 5,
        body: b"my answer".to_vec(),
    };
    let addr = nodes[0].handle().listen_addrs()[0].clone();
    let env = s.sign(&miner, now_ms()).encode();
    let ack = platform_net::miner::deliver(&addr, env.clone(), WAIT).unwrap();
    let SubmitAck::Accepted(id) = ack else {
        panic!("refused: {ack:?}")
    };
    let mut inbox = Inbox::new(2);
    inbox.wait_delivered(&nodes, &[0, 1], &id);
    let d = inbox.got[1]
        .iter()
        .find_map(|e| match e {
            NetEvent::Message(d) => Some(d.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(d.author, miner.public());
    assert_eq!(Submission::decode(&d.payload).unwrap(), s);

    // The same signed bytes again: a replay.
    assert_eq!(
        platform_net::miner::deliver(&addr, env, WAIT).unwrap(),
        SubmitAck::Rejected("replay".into())
    );
    // Signed as Bittensor tooling signs (envelope version 2): accepted and passed on too.
    let v2 = Submission {
        body: b"signed like btcli".to_vec(),
        ..s.clone()
    }
    .sign_as(platform_net::Scheme::Substrate, &miner, now_ms())
    .encode();
    assert_eq!(v2[0], 2);
    let SubmitAck::Accepted(id2) = platform_net::miner::deliver(&addr, v2, WAIT).unwrap() else {
        panic!("a version-2 submission is accepted")
    };
    inbox.wait_delivered(&nodes, &[0, 1], &id2);
    // A wrong signature, a payload that is not a submission, garbage.
    let mut bad = s.sign(&miner, now_ms());
    bad.signature[0] ^= 1;
    assert_eq!(
        platform_net::miner::deliver(&addr, bad.encode(), WAIT).unwrap(),
        SubmitAck::Rejected("bad_signature".into())
    );
    let not_sub = Envelope::sign(&miner, Topic::Submissions, now_ms(), b"??".to_vec());
    assert_eq!(
        platform_net::miner::deliver(&addr, not_sub.encode(), WAIT).unwrap(),
        SubmitAck::Rejected("invalid_payload".into())
    );
    assert_eq!(
        platform_net::miner::deliver(&addr, vec![1, 2, 3], WAIT).unwrap(),
        SubmitAck::Rejected("malformed".into())
    );
    let stats = nodes[0].handle().stats();
    assert_eq!(stats.submissions_accepted, 2);
    assert_eq!(stats.rejected(Reason::Replay), 1);

    // The CLI entry does the same from a hotkey file.
    let dir = tempfile_dir();
    let key = dir.join("hotkey");
    std::fs::write(&key, miner.to_hotkey_file_json()).unwrap();
    let payload = dir.join("payload.bin");
    std::fs::write(&payload, b"cli answer").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_platform-miner"))
        .args(["--to", &addr, "--challenge", "2", "--epoch", "5"])
        .arg("--hotkey-file")
        .arg(&key)
        .arg("--payload")
        .arg(&payload)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8(out.stdout).unwrap();
    let id = hex_id(printed.trim());
    inbox.wait_delivered(&nodes, &[0, 1], &id);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn submission_batches_deliver_checked_entries_and_a_forged_entry_refuses_the_batch() {
    // One batch window long enough that both submissions below travel in one batch.
    let mut slow = NetConfig::loopback();
    slow.batch_window = Duration::from_secs(1);
    let miner = Keypair::from_seed(&[49; 32]);
    let stranger = Keypair::from_seed(&[48; 32]);
    let only_miner = Options {
        authors: HashMap::from([(Topic::Submissions, HashSet::from([miner.public()]))]),
        ..Options::default()
    };
    let a = start(45, slow.clone(), None, Options::default());
    let b = start(46, NetConfig::loopback(), Some(&a), only_miner);
    let nodes = [a, b];
    wait_for_mesh(&nodes);
    let addr = nodes[0].handle().listen_addrs()[0].clone();
    let sub = |k: &Keypair, body: &[u8]| {
        Submission {
            challenge: 1,
            epoch: 3,
            body: body.to_vec(),
        }
        .sign(k, now_ms())
        .encode()
    };
    let accepted = |env: Vec<u8>| match platform_net::miner::deliver(&addr, env, WAIT).unwrap() {
        SubmitAck::Accepted(id) => id,
        other => panic!("refused: {other:?}"),
    };
    // Node a accepts both (it restricts no author); b keeps the registered miner's entry
    // and drops the stranger's alone.
    let mine = accepted(sub(&miner, b"registered"));
    let theirs = accepted(sub(&stranger, b"not registered on b"));
    let mut inbox = Inbox::new(2);
    inbox.wait_delivered(&nodes, &[1], &mine);
    wait_until("the stranger's entry dropped", || {
        nodes[1].handle().stats().rejected(Reason::UnknownAuthor) >= 1
    });
    inbox.drain(&nodes);
    assert_eq!(inbox.count(1, &theirs), 0);
    assert_eq!(inbox.count(1, &mine), 1, "delivered once");

    // A validator that forges an entry: its batch is refused whole and it is penalised.
    let liar = start(
        47,
        slow,
        Some(&nodes[1]),
        Options {
            hostile: Hostile {
                forge_batch_entries: true,
                ..Hostile::default()
            },
            ..Options::default()
        },
    );
    let nodes = [nodes.into_iter().nth(1).unwrap(), liar];
    wait_for_mesh(&nodes);
    let liar_addr = nodes[1].handle().listen_addrs()[0].clone();
    let before = nodes[0].handle().stats().rejected(Reason::BadSignature);
    let ack =
        platform_net::miner::deliver(&liar_addr, sub(&miner, b"forged in transit"), WAIT).unwrap();
    let SubmitAck::Accepted(forged) = ack else {
        panic!("refused: {ack:?}")
    };
    wait_until("the forged batch refused", || {
        nodes[0].handle().stats().rejected(Reason::BadSignature) > before
    });
    let mut inbox = Inbox::new(2);
    inbox.drain(&nodes);
    assert_eq!(
        inbox.count(0, &forged),
        0,
        "nothing of a forged batch is delivered"
    );
}

#[test]
fn a_corrupt_provider_is_caught_and_an_honest_one_serves() {
    let cfg = NetConfig::loopback();
    let liar = start(
        40,
        cfg.clone(),
        None,
        Options {
            hostile: Hostile {
                corrupt_blobs: true,
                ..Hostile::default()
            },
            ..Options::default()
        },
    );
    let fetcher = start(41, cfg.clone(), Some(&liar), Options::default());
    let nodes = [liar, fetcher];
    wait_for_mesh(&nodes);
    let blob = b"wasm module bytes".repeat(1000);
    let h = nodes[0].handle().provide(blob.clone()).unwrap();
    assert_eq!(nodes[1].handle().fetch(h), Err(NetError::NotFound));
    assert!(nodes[1].handle().stats().rejected(Reason::HashMismatch) >= 1);

    let honest = start(42, cfg, Some(&nodes[1]), Options::default());
    honest.handle().provide(blob.clone()).unwrap();
    assert_eq!(nodes[1].handle().fetch(h).unwrap(), blob);
}

#[test]
fn a_flooding_peer_is_rate_limited_then_banned() {
    let strict = NetConfig {
        peer_message_rate: 5.0,
        peer_message_burst: 10.0,
        ban_threshold: 30.0,
        ..NetConfig::loopback()
    };
    let victim = start(50, strict, None, Options::default());
    let flooder = start(51, NetConfig::loopback(), Some(&victim), Options::default());
    let nodes = [victim, flooder];
    wait_for_mesh(&nodes);
    let h = nodes[1].handle();
    for i in 0..200u32 {
        match h.publish(Topic::Evaluations, i.to_le_bytes().to_vec()) {
            Ok(_) | Err(NetError::NoPeers) => {}
            Err(e) => panic!("{e}"),
        }
    }
    wait_until("the victim to ban the flooder", || {
        nodes[0].handle().stats().bans == 1
    });
    let s = nodes[0].handle().stats();
    assert!(s.rejected(Reason::RateLimited) >= 30, "{s:?}");
    assert!(s.delivered < 200, "{s:?}");
    wait_until("the flooder to be disconnected", || {
        nodes[0].handle().peers().unwrap().is_empty()
    });
}

#[test]
fn quic_transport_carries_gossip() {
    let cfg = NetConfig {
        listen: vec!["/ip4/127.0.0.1/udp/0/quic-v1".into()],
        ..NetConfig::loopback()
    };
    let a = start(60, cfg.clone(), None, Options::default());
    assert!(a.handle().listen_addrs()[0].contains("/quic-v1/"));
    let b = start(61, cfg, Some(&a), Options::default());
    let nodes = [a, b];
    wait_for_mesh(&nodes);
    let id = nodes[0]
        .handle()
        .publish(Topic::Challenges, b"announce".to_vec())
        .unwrap();
    Inbox::new(2).wait_delivered(&nodes, &[1], &id);
}

fn tempfile_dir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("platform-net-test-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn hex_id(s: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    assert_eq!(s.len(), 64, "{s}");
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
    }
    out
}

/// With admission on, the application's decision is the miner's answer: an honest refusal
/// (here a closed epoch, and an unregistered hotkey at the door's check) is answered on
/// every try and never penalised; an admitted submission is acked with its id and reaches
/// the peers; a forger hears `bad_signature` on every try, including the one that bans it.
#[test]
fn admission_answers_at_the_door_penalises_only_abuse_and_sends_the_reason_before_a_ban() {
    let cfg = NetConfig::loopback();
    let registered = Keypair::from_seed(&[59; 32]);
    let lapsed = Keypair::from_seed(&[58; 32]);
    let known = registered.public();
    let door: platform_net::PayloadCheck = std::sync::Arc::new(move |env: &Envelope| {
        if env.author == known {
            Ok(())
        } else {
            Err(platform_net::Refused {
                reason: Reason::UnknownAuthor,
                detail: "not registered".into(),
            })
        }
    });
    let a = start(
        50,
        cfg.clone(),
        None,
        Options {
            checks: HashMap::from([(Topic::Submissions, door)]),
            admission: true,
            ..Options::default()
        },
    );
    let b = start(51, cfg.clone(), Some(&a), Options::default());
    let nodes = [a, b];
    wait_for_mesh(&nodes);
    let addr = nodes[0].handle().listen_addrs()[0].clone();
    let client = platform_net::miner::MinerClient::connect(&addr, WAIT).unwrap();
    let sub = |key: &Keypair, epoch: u64, n: u64| {
        Submission {
            challenge: 1,
            epoch,
            body: n.to_le_bytes().to_vec(),
        }
        .sign(key, now_ms())
        .encode()
    };
    // The application: epoch 7 is closed, epoch 8 is open.
    let app = |n: &Net, pending: std::sync::mpsc::Receiver<()>| {
        let h = n.handle();
        let events = n.events().clone();
        std::thread::spawn(move || {
            let mut decided = 0;
            while pending.try_recv().is_err() {
                let Ok(ev) = events.recv_timeout(Duration::from_millis(20)) else {
                    continue;
                };
                if let NetEvent::Submit { token, delivery } = ev {
                    let s = Submission::decode(&delivery.payload).unwrap();
                    let verdict = if s.epoch == 7 {
                        Err(Reason::EpochClosed)
                    } else {
                        Ok(())
                    };
                    h.admit(token, verdict).unwrap();
                    decided += 1;
                }
            }
            decided
        })
    };
    let (stop, stopped) = std::sync::mpsc::channel();
    let deciding = app(&nodes[0], stopped);

    // Far more honest refusals than a ban takes (10 invalid ones would ban): each answered.
    for n in 0..25 {
        assert_eq!(
            client.submit(sub(&registered, 7, n)).unwrap(),
            SubmitAck::Rejected("epoch_closed".into()),
            "try {n}"
        );
        assert_eq!(
            client.submit(sub(&lapsed, 8, n)).unwrap(),
            SubmitAck::Rejected("unknown_author".into()),
            "try {n}"
        );
    }
    let ok = sub(&registered, 8, 1);
    let SubmitAck::Accepted(id) = client.submit(ok.clone()).unwrap() else {
        panic!("an open epoch's submission is admitted")
    };
    assert_eq!(id, sha256(&ok));
    wait_until("the admitted submission at the peer", || {
        std::iter::from_fn(|| nodes[1].events().try_recv().ok())
            .any(|e| matches!(e, NetEvent::Message(d) if d.id == id))
    });
    // The same door for a caller on the node (its HTTP endpoint).
    assert_eq!(
        nodes[0].handle().submit(sub(&registered, 7, 999)).unwrap(),
        SubmitAck::Rejected("epoch_closed".into())
    );
    let local = sub(&registered, 8, 2);
    assert_eq!(
        nodes[0].handle().submit(local.clone()).unwrap(),
        SubmitAck::Accepted(sha256(&local))
    );
    let stats = nodes[0].handle().stats();
    assert_eq!(stats.bans, 0, "honest refusals are never penalised");
    assert_eq!(stats.rejected(Reason::EpochClosed), 26);
    assert_eq!(stats.rejected(Reason::UnknownAuthor), 25);
    assert_eq!(stats.submissions_accepted, 2);

    // A forger: every try answered with its reason, the banning one too; then banned.
    let forger = platform_net::miner::MinerClient::connect(&addr, WAIT).unwrap();
    let mut answered = 0;
    for n in 0..20 {
        let mut bad = Envelope::decode(&sub(&registered, 8, 100 + n)).unwrap();
        bad.signature[0] ^= 1;
        match forger.submit(bad.encode()) {
            Ok(ack) => {
                assert_eq!(ack, SubmitAck::Rejected("bad_signature".into()));
                answered += 1;
            }
            Err(_) => break,
        }
    }
    wait_until("the forger banned", || nodes[0].handle().stats().bans == 1);
    // Ten forged tries reach the ban threshold: the tenth, which trips it, was answered
    // with its reason like the nine before (a try already in flight when the connection
    // closed may be counted without an answer).
    assert!(
        answered >= 10,
        "the try that tripped the ban got its reason ({answered} answered)"
    );
    let counted = nodes[0].handle().stats().rejected(Reason::BadSignature);
    assert!(
        counted >= 10 && counted <= u64::try_from(answered).unwrap() + 1,
        "{counted}"
    );
    let _ = stop.send(());
    assert!(deciding.join().unwrap() >= 28);
}
