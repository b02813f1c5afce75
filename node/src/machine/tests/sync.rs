//! State sync: a node far behind installs a peer's certified snapshot (and refuses a forged
//! one), and does not replay heights from genesis while one may still come — but still
//! replays when none comes or its peers have none.

use super::*;

/// A lone validator's devnet run 40 blocks with a checkpoint every 2 heights, and a fresh
/// node (data wiped) that the chain is far ahead of.
struct FarBehind {
    /// The fresh node.
    f: Machine<MemStore>,
    /// The validator's roster.
    v: Vec<(Hotkey, u64)>,
    /// What the validator holds (batches, modules, snapshots), by hash.
    provided: BTreeMap<Hash32, Vec<u8>>,
    /// The validator's decisions, in height order.
    decisions: Vec<platform_consensus::Decision>,
    /// What it applied, in height order.
    applied: Vec<Applied>,
    /// Its decisions that name snapshots, encoded, in height order (what it offers).
    checkpoints: Vec<Vec<u8>>,
}

/// What one input made the fresh node do, its reads and fetches answered from the peer.
#[derive(Default)]
struct Seen {
    asked: bool,
    sync_requests: usize,
    installed: Option<Box<Installed>>,
}

impl FarBehind {
    fn new() -> FarBehind {
        let interval = MachineConfig {
            checkpoint_interval: 2,
            ..cfg()
        };
        let me = key(1);
        let v = vec![(me.public(), 100)];
        let rv = v.clone();
        let mut p = Pair::with(
            interval.clone(),
            &[me],
            vec![Box::new(move |b| Some(roster(&rv, &[[5; 32]], b)))],
        );
        p.input(0, 0, Input::Block { number: 0 });
        publish_challenge(&mut p, 0);
        p.run_blocks(40);
        let checkpoints = p.applied[0]
            .iter()
            .filter_map(|a| a.checkpoint.clone())
            .collect();
        let store = p.nodes[0].consensus_store().unwrap();
        let decisions = store.decisions(1, 256).unwrap();
        let f = Machine::new(
            interval,
            key(2),
            key(9).public(),
            MemStore::default(),
            Restored::default(),
        )
        .0;
        FarBehind {
            f,
            v,
            provided: p.provided[0].clone(),
            decisions,
            applied: p.applied[0].clone(),
            checkpoints,
        }
    }

    fn drive(&mut self, now: u64, first: Input) -> Seen {
        let mut seen = Seen::default();
        let mut queue = VecDeque::from([first]);
        while let Some(input) = queue.pop_front() {
            for e in self.f.handle(now, input) {
                match e {
                    Effect::AskCheckpoint => seen.asked = true,
                    Effect::ReadRoster { epoch, block } => queue.push_back(Input::Roster {
                        epoch,
                        roster: roster(&self.v, &[[5; 32]], block),
                    }),
                    Effect::Fetch(hash) => queue.push_back(Input::Fetched {
                        hash,
                        bytes: self.provided.get(&hash).cloned(),
                    }),
                    Effect::Installed(i) => seen.installed = Some(i),
                    Effect::Publish {
                        topic: Topic::Consensus,
                        payload,
                    } if matches!(
                        platform_consensus::codec::decode_message(&payload),
                        Ok(Message::SyncRequest { .. })
                    ) =>
                    {
                        seen.sync_requests += 1;
                    }
                    _ => {}
                }
            }
        }
        seen
    }

    /// The peer's decisions as a sync response, gossiped.
    fn sync_response(&self, heights: std::ops::RangeInclusive<u64>) -> Input {
        let ds = self
            .decisions
            .iter()
            .filter(|d| heights.contains(&d.height))
            .cloned()
            .collect();
        Input::Gossip {
            topic: Topic::Consensus,
            payload: platform_consensus::codec::encode_message(&Message::SyncResponse(ds)),
        }
    }

    /// A consensus message of a height far beyond the fresh node's (what makes it ask): the
    /// peer's commit vote for its last decision.
    fn later_message(&self) -> Input {
        let c = &self.decisions.last().unwrap().certificate;
        let (signer, signature) = c.signatures[0];
        let vote = platform_consensus::Vote {
            kind: c.kind,
            height: c.height,
            view: c.view,
            digest: c.digest,
            signer,
            signature,
        };
        Input::Gossip {
            topic: Topic::Consensus,
            payload: platform_consensus::codec::encode_message(&Message::Vote(vote)),
        }
    }
}

#[test]
fn a_node_far_behind_installs_a_certified_snapshot_and_refuses_a_forged_offer() {
    let mut w = FarBehind::new();
    let newest = w
        .checkpoints
        .last()
        .expect("values name snapshots after the first checkpoint");
    let d = platform_consensus::codec::decode_decision(newest).unwrap();
    let offer = w.checkpoints.encode();
    let named = crate::msg::EpochValue::decode_checked(&d.value)
        .and_then(|v| v.snapshot)
        .unwrap();
    assert_eq!(named.height % 2, 0);

    let seen = w.drive(4_100, Input::Block { number: 40 });
    assert!(seen.asked, "far behind, it asks peers for a checkpoint");

    // The same certificate over another value (a snapshot it never certified).
    let mut forged = d.clone();
    let mut fv = crate::msg::EpochValue::decode_checked(&d.value).unwrap();
    fv.snapshot = Some(crate::snapshot::SnapshotRef {
        manifest: [7; 32],
        ..named
    });
    forged.value = fv.encode();
    let forged = vec![platform_consensus::codec::encode_decision(&forged)].encode();
    let seen = w.drive(4_100, Input::CheckpointOffer(forged));
    assert!(seen.installed.is_none());
    let seen = w.drive(4_100, Input::CheckpointOffer(vec![1, 2, 3]));
    assert!(seen.installed.is_none(), "garbage is refused");
    assert_eq!(w.f.stats().snapshots_installed, 0);
    assert_eq!(
        w.f.applied().0,
        0,
        "nothing replayed while a snapshot may come"
    );

    let seen = w.drive(4_100, Input::CheckpointOffer(offer));
    let installed = seen
        .installed
        .expect("the certified snapshot is fetched and installed");
    assert_eq!(installed.state.height, named.height);
    // Consensus resumed after it, and the offered decision (a later height) was decided
    // and applied on top, its inputs fetched like any other.
    assert_eq!(w.f.applied().0, d.height);
    assert_eq!(w.f.height(), d.height + 1);
    assert_eq!(
        w.f.registry().active().count(),
        1,
        "the registry came with it"
    );
    assert_eq!(w.f.stats().snapshots_installed, 1);
    let committed = w.applied.iter().find(|a| a.height == named.height).unwrap();
    assert_eq!(
        installed.state.epoch_record(),
        Some(committed.record.clone())
    );
}

#[test]
fn a_node_far_behind_replays_nothing_while_a_snapshot_may_come_then_replays_without_one() {
    let mut w = FarBehind::new();
    let last = w.decisions.last().unwrap().height;
    let t0 = 4_100;
    let seen = w.drive(t0, Input::Block { number: 40 });
    assert!(seen.asked);
    // Peers deciding later heights, and a sync response from genesis (another node's ask):
    // neither is replayed nor asked for while the node waits for its peers' snapshots.
    let seen = w.drive(t0, w.later_message());
    assert_eq!(seen.sync_requests, 0);
    w.drive(t0 + 100, w.sync_response(1..=last));
    assert_eq!(w.f.applied().0, 0);
    // No offer comes (its peers are slow, or hold none): after the wait it replays.
    let wait = crate::machine::sync::OFFER_WAIT_TIMEOUTS * cfg().view_timeout_ms;
    w.drive(t0 + wait - 1, Input::Tick);
    w.drive(t0 + wait - 1, w.sync_response(1..=last));
    assert_eq!(w.f.applied().0, 0, "still waiting");
    w.drive(t0 + wait, Input::Tick);
    let seen = w.drive(t0 + wait, w.later_message());
    assert!(seen.sync_requests >= 1, "it asks for the heights it lacks");
    w.drive(t0 + wait, w.sync_response(1..=last));
    assert_eq!(w.f.applied().0, last, "replayed every height from genesis");
    assert_eq!(w.f.stats().snapshots_installed, 0);
}

#[test]
fn a_peer_without_a_snapshot_ends_the_wait_at_once() {
    let mut w = FarBehind::new();
    let t0 = 4_100;
    w.drive(t0, Input::Block { number: 40 });
    // A peer that has decided only heights before its first checkpoint: its newest value
    // names no snapshot.
    let early = platform_consensus::codec::encode_decision(&w.decisions[0]);
    assert!(
        crate::msg::EpochValue::decode_checked(&w.decisions[0].value)
            .unwrap()
            .snapshot
            .is_none()
    );
    w.drive(t0, Input::CheckpointOffer(vec![early].encode()));
    let last = w.decisions.last().unwrap().height;
    w.drive(t0 + 1, Input::Tick);
    w.drive(t0 + 1, w.sync_response(1..=last));
    assert_eq!(w.f.applied().0, last);
}
