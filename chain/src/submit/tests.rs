//! Tests of `submit`.

use super::*;
use crate::Hyperparams;
use crate::sim::{SimChain, SubnetGenesis};

fn key(i: u8) -> [u8; 32] {
    [i; 32]
}

fn chain(commit_reveal: bool) -> SimChain {
    chain_with(commit_reveal, 0)
}

fn chain_with(commit_reveal: bool, weights_rate_limit: u64) -> SimChain {
    SimChain::new(
        [3; 32],
        vec![SubnetGenesis {
            netuid: 1,
            hyperparams: Hyperparams {
                tempo: 10,
                commit_reveal_enabled: commit_reveal,
                commit_reveal_period: 1,
                weights_version_key: 5,
                weights_rate_limit,
                min_allowed_weights: 1,
                max_weight_limit: u16::MAX,
            },
            max_uids: 8,
            max_validators: 2,
            min_stake_to_set_weights: 10,
            neurons: vec![(key(1), 1000), (key(2), 500), (key(3), 100)],
        }],
    )
}

#[test]
fn set_weights_when_commit_reveal_is_off() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = chain(false);
    let mut s =
        WeightSubmitter::open(&dir.path().join("p.redb"), key(1), 1, CommitMode::Hash).unwrap();
    let r = s.submit(&mut c, 1, &[1, 2], &[3, 1]).unwrap();
    assert_eq!(
        r,
        Submitted::Set {
            uids: vec![1, 2],
            values: vec![65535, 21845]
        }
    );
    assert_eq!(c.weights_of(1, 0).unwrap(), &[(1, 65535), (2, 21845)]);
    assert_eq!(s.submit(&mut c, 2, &[1], &[0]).unwrap(), Submitted::Nothing);
}

#[test]
fn a_hash_commit_survives_a_restart_and_is_revealed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.redb");
    let mut c = chain(true);
    {
        let mut s = WeightSubmitter::open(&path, key(1), 1, CommitMode::Hash).unwrap();
        let r = s.submit(&mut c, 7, &[1, 2], &[2, 1]).unwrap();
        assert!(matches!(r, Submitted::Committed { .. }));
        let head = c.current_block().unwrap().number;
        let r = s.reveal_due(&mut c, head).unwrap();
        assert!(
            matches!(&r[..], [Reveal::Waiting { epoch: 7, .. }]),
            "{r:?}"
        );
    } // the node stops here
    c.advance(11);
    let mut s = WeightSubmitter::open(&path, key(1), 1, CommitMode::Hash).unwrap();
    assert_eq!(s.pending().unwrap().len(), 1, "the commit was remembered");
    let head = c.current_block().unwrap().number;
    assert_eq!(
        s.reveal_due(&mut c, head).unwrap(),
        vec![Reveal::Revealed {
            epoch: 7,
            uids: vec![1, 2],
            values: vec![65535, 32768]
        }]
    );
    assert_eq!(c.weights_of(1, 0).unwrap(), &[(1, 65535), (2, 32768)]);
    assert!(s.pending().unwrap().is_empty());
}

#[test]
fn a_commit_the_chain_refused_is_not_remembered_and_expired_ones_are_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = chain(true);
    // key(9) is not registered: the commit fails and nothing stays pending.
    let mut s =
        WeightSubmitter::open(&dir.path().join("a.redb"), key(9), 1, CommitMode::Hash).unwrap();
    assert!(s.submit(&mut c, 1, &[1], &[1]).is_err());
    assert!(s.pending().unwrap().is_empty());
    let mut s =
        WeightSubmitter::open(&dir.path().join("b.redb"), key(1), 1, CommitMode::Hash).unwrap();
    s.submit(&mut c, 2, &[1, 2], &[1, 1]).unwrap();
    c.advance(25);
    let head = c.current_block().unwrap().number;
    let r = s.reveal_due(&mut c, head).unwrap();
    assert!(matches!(&r[..], [Reveal::Missed { epoch: 2, .. }]), "{r:?}");
    assert!(s.pending().unwrap().is_empty());
    assert!(
        !c.calls().any(|k| k.call == "reveal_weights"),
        "a missed window is dropped unsent"
    );
}

fn head(c: &SimChain) -> u64 {
    c.current_block().unwrap().number
}

/// Reveal attempts the chain received, and how many it refused.
fn reveals(c: &SimChain) -> (usize, usize) {
    let r: Vec<_> = c.calls().filter(|k| k.call == "reveal_weights").collect();
    (r.len(), r.iter().filter(|k| k.refused.is_some()).count())
}

#[test]
fn the_reveal_window_is_the_pallets() {
    // tempo 10, netuid 1: epochs are (block + 2) / 11, so epoch 0 is blocks 0..=8,
    // epoch 1 blocks 9..=19, epoch 2 blocks 20..=30.
    let w = RevealWindow::of(1, 10, 1, 3);
    assert_eq!((w.commit_block, w.first_block, w.last_block), (3, 9, 19));
    assert_eq!(RevealWindow::of(1, 10, 1, 8).first_block, 9);
    assert_eq!(
        RevealWindow::of(1, 10, 1, 9).first_block,
        20,
        "9 is in epoch 1"
    );
    assert_eq!(RevealWindow::of(1, 10, 3, 9).first_block, 42);
    assert_eq!(RevealWindow::of(1, 10, 0, 9), RevealWindow::of(1, 10, 1, 9));
    let s = RevealWindow::spanning(1, 10, 1, 8, 9);
    assert_eq!((s.first_block, s.last_block), (9, 30));
}

#[test]
fn a_hash_commit_is_revealed_once_inside_its_window_and_never_early() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = chain(true);
    c.advance(3);
    let mut s =
        WeightSubmitter::open(&dir.path().join("w.redb"), key(1), 1, CommitMode::Hash).unwrap();
    let Submitted::Committed { window, .. } = s.submit(&mut c, 4, &[1, 2], &[1, 1]).unwrap() else {
        panic!("a hash commit")
    };
    assert_eq!(
        s.pending().unwrap()[0].1.window,
        Some(window),
        "stored with it"
    );
    let mut revealed_at = None;
    while head(&c) <= window.last_block {
        let r = {
            let b = head(&c);
            s.reveal_due(&mut c, b)
        }
        .unwrap();
        if matches!(&r[..], [Reveal::Revealed { epoch: 4, .. }]) {
            assert!(revealed_at.is_none(), "revealed twice");
            revealed_at = Some(head(&c));
        } else if revealed_at.is_none() {
            assert_eq!(
                r,
                vec![Reveal::Waiting {
                    epoch: 4,
                    at_block: window.first_block
                }]
            );
        } else {
            assert!(r.is_empty());
        }
        c.advance(1);
    }
    assert_eq!(revealed_at, Some(window.first_block));
    assert_eq!(reveals(&c), (1, 0), "one reveal, none refused");
    assert_eq!(c.weights_of(1, 0).unwrap(), &[(1, 65535), (2, 65535)]);
}

/// A chain whose reveals fail (as a connection would) a number of times.
struct Flaky {
    inner: SimChain,
    failures: u32,
}

impl Chain for Flaky {
    fn current_block(&self) -> Result<crate::BlockInfo, ChainError> {
        self.inner.current_block()
    }
    fn metagraph(&self, netuid: u16) -> Result<crate::Metagraph, ChainError> {
        self.inner.metagraph(netuid)
    }
    fn metagraph_at(&self, netuid: u16, block: u64) -> Result<crate::Metagraph, ChainError> {
        self.inner.metagraph_at(netuid, block)
    }
    fn hyperparams(&self, netuid: u16) -> Result<Hyperparams, ChainError> {
        self.inner.hyperparams(netuid)
    }
    fn mechanism_count(&self, netuid: u16) -> Result<u8, ChainError> {
        self.inner.mechanism_count(netuid)
    }
    fn mechanism_weights(&self, n: u16, m: u8, uid: u16) -> Result<Vec<(u16, u16)>, ChainError> {
        self.inner.mechanism_weights(n, m, uid)
    }
    fn set_mechanism_weights(
        &mut self,
        h: &[u8; 32],
        n: u16,
        m: u8,
        u: &[u16],
        v: &[u16],
        k: u64,
    ) -> Result<(), ChainError> {
        self.inner.set_mechanism_weights(h, n, m, u, v, k)
    }
    fn commit_mechanism_weights(
        &mut self,
        h: &[u8; 32],
        n: u16,
        m: u8,
        x: [u8; 32],
    ) -> Result<(), ChainError> {
        self.inner.commit_mechanism_weights(h, n, m, x)
    }
    fn commit_timelocked_mechanism_weights(
        &mut self,
        h: &[u8; 32],
        n: u16,
        m: u8,
        c: &[u8],
        r: u64,
        v: u16,
    ) -> Result<(), ChainError> {
        self.inner
            .commit_timelocked_mechanism_weights(h, n, m, c, r, v)
    }
    fn reveal_mechanism_weights(
        &mut self,
        h: &[u8; 32],
        n: u16,
        m: u8,
        u: &[u16],
        v: &[u16],
        s: &[u16],
        k: u64,
    ) -> Result<(), ChainError> {
        if self.failures > 0 {
            self.failures -= 1;
            return Err(ChainError::Connection("connection refused".into()));
        }
        self.inner.reveal_mechanism_weights(h, n, m, u, v, s, k)
    }
}

#[test]
fn a_failed_reveal_is_tried_again_with_backoff_inside_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Flaky {
        inner: chain(true),
        failures: 3,
    };
    let mut s =
        WeightSubmitter::open(&dir.path().join("f.redb"), key(1), 1, CommitMode::Hash).unwrap();
    let Submitted::Committed { window, .. } = s.submit(&mut c, 9, &[1], &[1]).unwrap() else {
        panic!("a hash commit")
    };
    c.inner.advance(window.first_block - head(&c.inner));
    let mut tries = Vec::new();
    loop {
        let b = head(&c.inner);
        match &s.reveal_due(&mut c, b).unwrap()[..] {
            [Reveal::Failed { retry_at, .. }] => tries.push((b, *retry_at)),
            [Reveal::Revealed { epoch: 9, .. }] => break,
            [Reveal::Waiting { .. }] => {}
            other => panic!("{other:?}"),
        }
        assert!(b < window.last_block, "never revealed");
        c.inner.advance(1);
    }
    let f = window.first_block;
    assert_eq!(tries, vec![(f, f + 1), (f + 1, f + 3), (f + 3, f + 7)]);
    assert_eq!(
        head(&c.inner),
        f + 7,
        "the fourth try, after 1, 2 and 4 blocks"
    );
}

#[test]
fn weights_inside_the_rate_limit_are_not_sent_and_the_limit_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.redb");
    let mut c = chain_with(false, 5);
    let mut s = WeightSubmitter::open(&path, key(1), 1, CommitMode::Hash).unwrap();
    assert!(matches!(
        s.submit(&mut c, 1, &[1], &[1]).unwrap(),
        Submitted::Set { .. }
    ));
    c.advance(2);
    drop(s);
    let mut s = WeightSubmitter::open(&path, key(1), 1, CommitMode::Hash).unwrap();
    assert_eq!(
        s.submit(&mut c, 2, &[1], &[1]).unwrap(),
        Submitted::RateLimited { until_block: 5 }
    );
    c.advance(3);
    assert!(matches!(
        s.submit(&mut c, 3, &[1], &[1]).unwrap(),
        Submitted::Set { .. }
    ));
    let sets: Vec<_> = c.calls().filter(|k| k.call == "set_weights").collect();
    assert_eq!(sets.len(), 2);
    assert!(sets.iter().all(|k| k.refused.is_none()), "none refused");
}

#[test]
fn commits_share_the_rate_limit_and_the_chain_refuses_none() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = chain_with(true, 5);
    let mut s =
        WeightSubmitter::open(&dir.path().join("c.redb"), key(1), 1, CommitMode::Hash).unwrap();
    assert!(matches!(
        s.submit(&mut c, 1, &[1], &[1]).unwrap(),
        Submitted::Committed { .. }
    ));
    c.advance(1);
    assert_eq!(
        s.submit(&mut c, 2, &[1], &[2]).unwrap(),
        Submitted::RateLimited { until_block: 5 }
    );
    // What the pallet would have said.
    assert_eq!(
        c.commit_weights(&key(1), 1, [9; 32]),
        Err(ChainError::Pallet(PalletError::CommittingWeightsTooFast))
    );
    c.advance(4);
    assert!(matches!(
        s.submit(&mut c, 3, &[1], &[3]).unwrap(),
        Submitted::Committed { .. }
    ));
    let ours: Vec<_> = c
        .calls()
        .filter(|k| k.call == "commit_weights" && k.block != 1)
        .collect();
    assert_eq!(ours.len(), 2);
    assert!(ours.iter().all(|k| k.refused.is_none()), "{ours:?}");
}

#[test]
fn a_commit_stored_without_a_window_is_still_revealed() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = chain(true);
    let mut s =
        WeightSubmitter::open(&dir.path().join("o.redb"), key(1), 1, CommitMode::Hash).unwrap();
    s.submit(&mut c, 5, &[1, 2], &[2, 1]).unwrap();
    // As a release before windows were kept wrote it.
    let (epoch, mut p) = s.pending().unwrap().remove(0);
    p.window = None;
    s.put(epoch, &p).unwrap();
    assert_eq!(s.pending().unwrap()[0].1.window, None);
    let r = {
        let b = head(&c);
        s.reveal_due(&mut c, b)
    }
    .unwrap();
    assert_eq!(r, vec![Reveal::TooEarly { epoch: 5 }]);
    c.advance(10);
    let r = {
        let b = head(&c);
        s.reveal_due(&mut c, b)
    }
    .unwrap();
    assert!(
        matches!(&r[..], [Reveal::Revealed { epoch: 5, .. }]),
        "{r:?}"
    );
}

#[test]
fn timelocked_commits_go_to_the_chain_which_reveals_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = chain(true);
    let mut s = WeightSubmitter::open(
        &dir.path().join("t.redb"),
        key(1),
        1,
        CommitMode::Timelocked {
            block_seconds: 12,
            version: 4,
        },
    )
    .unwrap();
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64()
    };
    let before = now();
    let Submitted::Timelocked { reveal_round } = s.submit(&mut c, 3, &[1, 2], &[1, 1]).unwrap()
    else {
        panic!("expected a timelocked commit")
    };
    let after = now();
    // Committed at block 0 of subnet 1 (tempo 10): the chain reveals it at block 9, the
    // first of the next epoch; the round current 3 blocks (of 12 s) later.
    let schedule = crate::schedule::EpochSchedule::legacy(1, 10, 0);
    assert_eq!(schedule.first_reveal_block(1), Some(9));
    let (lo, hi) = (
        schedule.reveal_round(1, 12.0, before).unwrap(),
        schedule.reveal_round(1, 12.0, after).unwrap(),
    );
    assert!(
        (lo..=hi).contains(&reveal_round),
        "{reveal_round} vs {lo}..={hi}"
    );
    assert_eq!(
        lo,
        ((before + 12.0 * 12.0 - timelock::DRAND_QUICKNET_GENESIS as f64) / 3.0).floor() as u64,
        "12 blocks of 12 s ahead, the round current then"
    );
    assert!(
        s.pending().unwrap().is_empty(),
        "nothing for this node to reveal"
    );
}

#[test]
fn a_mechanism_has_its_own_sets_commits_reveals_and_rate_limit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.redb");
    let mut c = chain_with(false, 3);
    let mut m0 = WeightSubmitter::open(&path, key(1), 1, CommitMode::Hash).unwrap();
    let mut m1 = m0.for_mechanism(1).unwrap();
    assert_eq!((m0.mecid(), m1.mecid()), (0, 1));
    // The subnet has mechanism 0 alone: refused here, nothing sent.
    assert_eq!(
        m1.submit(&mut c, 1, &[1, 2], &[1, 1]),
        Err(ChainError::Pallet(PalletError::MechanismDoesNotExist))
    );
    assert_eq!(c.calls().count(), 0, "no extrinsic the pallet must refuse");
    c.set_mechanism_count(1, 2).unwrap();
    assert!(matches!(
        m0.submit(&mut c, 1, &[1, 2], &[2, 1]).unwrap(),
        Submitted::Set { .. }
    ));
    // Mechanism 1's rate limit is its own: it sets in the same block.
    assert!(matches!(
        m1.submit(&mut c, 1, &[2], &[1]).unwrap(),
        Submitted::Set { .. }
    ));
    assert_eq!(c.weights_of(1, 0).unwrap(), &[(1, 65535), (2, 32768)]);
    assert_eq!(c.mechanism_weights(1, 1, 0).unwrap(), vec![(2, 65535)]);
    assert!(matches!(
        m1.submit(&mut c, 2, &[2], &[1]).unwrap(),
        Submitted::RateLimited { until_block: 3 }
    ));
    let calls: Vec<_> = c.calls().map(|r| (r.call, r.refused.is_none())).collect();
    assert_eq!(
        calls,
        vec![("set_weights", true), ("set_mechanism_weights", true)]
    );
    // Reopened, mechanism 1 still knows its last set.
    drop((m0, m1));
    let m0 = WeightSubmitter::open(&path, key(1), 1, CommitMode::Hash).unwrap();
    let mut m1 = m0.for_mechanism(1).unwrap();
    assert!(matches!(
        m1.submit(&mut c, 3, &[2], &[1]).unwrap(),
        Submitted::RateLimited { .. }
    ));
}

#[test]
fn a_mechanism_hash_commit_is_kept_apart_and_revealed_in_its_window() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = chain(true);
    c.set_mechanism_count(1, 3).unwrap();
    let m0 =
        WeightSubmitter::open(&dir.path().join("h.redb"), key(1), 1, CommitMode::Hash).unwrap();
    let mut m2 = m0.for_mechanism(2).unwrap();
    let Submitted::Committed { hash, window } = m2.submit(&mut c, 6, &[1, 2], &[1, 3]).unwrap()
    else {
        panic!("a hash commit")
    };
    let (_, p) = m2.pending().unwrap().remove(0);
    let index = crate::storage_index(1, 2).unwrap();
    assert_eq!(
        hash,
        commit_hash(&key(1), index, &p.uids, &p.values, &p.salt, p.version_key),
        "hashed over the mechanism's storage index"
    );
    assert!(
        m0.pending().unwrap().is_empty(),
        "mechanism 0 holds nothing"
    );
    c.advance(window.first_block - head(&c));
    let b = head(&c);
    let r = m2.reveal_due(&mut c, b).unwrap();
    assert!(
        matches!(&r[..], [Reveal::Revealed { epoch: 6, .. }]),
        "{r:?}"
    );
    assert_eq!(
        c.mechanism_weights(1, 2, 0).unwrap(),
        vec![(1, 21845), (2, 65535)]
    );
    assert!(c.weights(1, 0).unwrap().is_empty());
    let calls: Vec<_> = c
        .calls()
        .map(|r| (r.call, r.mecid, r.refused.clone()))
        .collect();
    assert_eq!(
        calls,
        vec![
            ("commit_mechanism_weights", 2, None),
            ("reveal_mechanism_weights", 2, None)
        ]
    );
}
