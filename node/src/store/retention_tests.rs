use parity_scale_codec::Encode as _;
use platform_keys::Keypair;
use platform_net::{BlobSource as _, Envelope, Submission, Topic};

use super::*;
use crate::msg::Batch;
use crate::store::{AppliedDecision, Writes};

fn miner(i: u8) -> Keypair {
    Keypair::from_seed(&[i; 32])
}

/// A signed submission envelope of `epoch` by miner `m` (distinct per `n`).
fn envelope(epoch: u64, m: u8, n: u8) -> Vec<u8> {
    Submission {
        challenge: 1,
        epoch,
        body: vec![n; 8],
    }
    .sign(&miner(m), 1_000)
    .encode()
}

fn signed_batch(epoch: u64, author: u8) -> Vec<u8> {
    let payload = Batch {
        epoch,
        entries: Vec::new(),
    }
    .encode();
    Envelope::sign(&miner(author), Topic::Evaluations, 1_000, payload).encode()
}

fn audit(epoch: u64, id: [u8; 32]) -> AuditRecord {
    AuditRecord {
        epoch,
        challenge: 1,
        module_hash: [1; 32],
        input_hash: [2; 32],
        submission: id,
        outcome: 0,
        score: 1,
        fuel: 10,
        host_calls: 0,
    }
}

/// Epochs 1..=6: per epoch two miners, the first with a replaced submission (3 envelopes),
/// a result and an audit record per envelope, each author's batch and, for epoch 2, a later
/// batch of author 1. Returns the envelope ids per epoch.
fn fill(s: &Store) -> Vec<(u64, Vec<[u8; 32]>)> {
    let mut out = Vec::new();
    for epoch in 1..=6u64 {
        let mut w = Writes::default();
        let mut ids = Vec::new();
        for (m, n) in [(1u8, 0u8), (1, 1), (2, 0)] {
            let env = envelope(epoch, m, n);
            let id = platform_types::sha256(&env);
            w.submission(epoch, id, env);
            w.result(epoch, id, vec![epoch as u8; 128], audit(epoch, id));
            ids.push(id);
        }
        s.write(&mut w).unwrap();
        for author in [1u8, 2] {
            s.put_batch(epoch, &[author; 32], &signed_batch(epoch, author))
                .unwrap();
        }
        out.push((epoch, ids));
    }
    // A laggard's later batch for epoch 2 (kept by id beside the first).
    let later = Envelope::sign(
        &miner(1),
        Topic::Evaluations,
        2_000,
        Batch {
            epoch: 2,
            entries: Vec::new(),
        }
        .encode(),
    )
    .encode();
    s.put_batch(2, &[1; 32], &later).unwrap();
    out
}

fn kept(s: &Store, epoch: u64, ids: &[[u8; 32]]) -> bool {
    let blobs = s.blobs();
    ids.iter().all(|id| {
        s.submission_body(id).unwrap().is_some()
            && s.result(epoch, id).unwrap().is_some()
            && blobs.holds(id)
    }) && s.counted_submissions(epoch).unwrap().len() == 2
}

fn gone(s: &Store, epoch: u64, ids: &[[u8; 32]]) -> bool {
    let blobs = s.blobs();
    ids.iter().all(|id| {
        s.submission_body(id).unwrap().is_none()
            && s.result(epoch, id).unwrap().is_none()
            && !blobs.holds(id)
    }) && s.counted_submissions(epoch).unwrap().is_empty()
}

#[test]
fn old_epochs_are_deleted_and_recent_ones_kept() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&dir.path().join("node.redb")).unwrap();
    let epochs = fill(&s);
    s.apply_decision(&AppliedDecision {
        height: 6,
        epoch: Some((6, b"record-6")),
        registry: &[],
        registry_nonce: 0,
    })
    .unwrap();
    let batch_ids: Vec<(u64, [u8; 32])> = (1..=6u64)
        .flat_map(|e| [1u8, 2].map(|a| (e, platform_types::sha256(&signed_batch(e, a)))))
        .collect();
    assert!(batch_ids.iter().all(|(_, h)| s.blobs().holds(h)));

    // The table of counted ids an older release wrote (two miners per epoch): its rows of
    // old epochs go with them.
    {
        let tx = s.db.begin_write().unwrap();
        let mut t = tx.open_table(SUBMISSIONS).unwrap();
        for (epoch, ids) in &epochs {
            for (m, id) in [(1u8, ids[0]), (2, ids[2])] {
                t.insert((*epoch, 1, &miner(m).public()), &id).unwrap();
            }
        }
        drop(t);
        tx.commit().unwrap();
    }
    let p = s.prune(4).unwrap();
    assert_eq!(
        p,
        Pruned {
            bodies: 9,
            counted: 6,
            results: 9,
            audit: 9,
            batches: 7,
            more: false
        }
    );
    for (epoch, ids) in &epochs {
        if *epoch < 4 {
            assert!(gone(&s, *epoch, ids), "epoch {epoch} kept");
        } else {
            assert!(kept(&s, *epoch, ids), "epoch {epoch} lost");
        }
    }
    assert!(s.audit_from(0).unwrap().iter().all(|(_, r)| r.epoch >= 4));
    assert_eq!(s.audit_from(0).unwrap().len(), 9);
    assert!(s.batches_from(0).unwrap().iter().all(|(e, _, _)| *e >= 4));
    for (e, h) in &batch_ids {
        assert_eq!(s.blobs().holds(h), *e >= 4, "batch of epoch {e}");
    }
    // What retention never touches.
    assert_eq!(s.epochs_from(0).unwrap(), vec![(6, b"record-6".to_vec())]);
    assert_eq!(s.pruned_below().unwrap(), 4);
    // Nothing more below 4; pruning again deletes nothing.
    assert_eq!(s.prune(4).unwrap().total(), 0);
    // New writes after a prune keep their own index.
    let mut w = Writes::default();
    let env = envelope(7, 3, 0);
    let id = platform_types::sha256(&env);
    w.submission(7, id, env);
    s.write(&mut w).unwrap();
    assert_eq!(s.prune(7).unwrap().bodies, 3 * 3);
    assert!(s.submission_body(&id).unwrap().is_some());
}

#[test]
fn a_long_backlog_is_pruned_in_bounded_steps() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&dir.path().join("node.redb")).unwrap();
    let epochs = fill(&s);
    let mut steps = 0;
    loop {
        let p = s.prune_at_most(7, 4).unwrap();
        steps += 1;
        assert!(p.bodies <= 4 && p.results <= 4 && p.audit <= 4 && p.counted <= 4);
        if !p.more {
            break;
        }
        assert_eq!(s.pruned_below().unwrap(), 0, "set only once all is gone");
        assert!(steps < 20);
    }
    assert!(steps >= 5, "18 rows per table at 4 a call: {steps}");
    for (epoch, ids) in &epochs {
        assert!(gone(&s, *epoch, ids));
    }
    assert_eq!(s.pruned_below().unwrap(), 7);
}

/// Rewrite a store's envelopes and results as an earlier release kept them: by id, with
/// (when `indexed`) the envelopes' (epoch, arrival) → id index; plus one body that is not an
/// envelope.
fn to_old_layout(s: &Store, indexed: bool) {
    use crate::store::envelopes::{ENVELOPES, RESULTS_AT};
    let tx = s.db.begin_write().unwrap();
    {
        let envs = tx.open_table(ENVELOPES).unwrap();
        let mut by_id = tx.open_table(RESULTS).unwrap();
        for r in tx.open_table(RESULTS_AT).unwrap().iter().unwrap() {
            let (k, v) = r.unwrap();
            let env = envs.get(k.value()).unwrap().unwrap();
            let id = platform_types::sha256(env.value());
            by_id.insert((k.value().0, &id), v.value()).unwrap();
        }
    }
    tx.delete_table(RESULTS_AT).unwrap();
    {
        let kept: Vec<((u64, u64), Vec<u8>)> = tx
            .open_table(ENVELOPES)
            .unwrap()
            .iter()
            .unwrap()
            .map(|r| {
                let (k, v) = r.unwrap();
                (k.value(), v.value().to_vec())
            })
            .collect();
        let mut bodies = tx.open_table(super::super::BODIES).unwrap();
        let mut index = tx.open_table(BODY_EPOCHS).unwrap();
        for (k, env) in &kept {
            let id = platform_types::sha256(env);
            bodies.insert(&id, env.as_slice()).unwrap();
            if indexed {
                index.insert(*k, &id).unwrap();
            }
        }
        bodies
            .insert(&[0xee; 32], b"not an envelope".as_slice())
            .unwrap();
        if indexed {
            index.insert((0, 1 << 40), &[0xee; 32]).unwrap();
        }
    }
    tx.delete_table(crate::store::envelopes::ENVELOPES).unwrap();
    tx.commit().unwrap();
}

#[test]
fn a_store_of_an_earlier_layout_is_moved_over_at_open() {
    for indexed in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.redb");
        let epochs = {
            let s = Store::open(&path).unwrap();
            let epochs = fill(&s);
            to_old_layout(&s, indexed);
            epochs
        };
        let s = Store::open(&path).unwrap();
        // Every envelope found by id after the move, and counted as before.
        for (epoch, ids) in &epochs {
            assert!(kept(&s, *epoch, ids), "indexed {indexed}");
        }
        assert_eq!(s.counted_submissions(4).unwrap().len(), 2);
        assert!(s.blobs().holds(&epochs[0].1[0]));
        let p = s.prune(3).unwrap();
        // Epochs 1 and 2's six envelopes, and the one that does not decode (epoch 0).
        assert_eq!(p.bodies, 7, "indexed {indexed}");
        assert!(s.submission_body(&[0xee; 32]).unwrap().is_none());
        for (epoch, ids) in &epochs {
            if *epoch < 3 {
                assert!(gone(&s, *epoch, ids));
            } else {
                assert!(kept(&s, *epoch, ids));
            }
        }
        // Sequence numbers continue after the moved ones: a new envelope is pruned with its
        // epoch, never confused with an old one.
        let mut w = Writes::default();
        let env = envelope(3, 4, 0);
        let id = platform_types::sha256(&env);
        w.submission(3, id, env);
        s.write(&mut w).unwrap();
        assert_eq!(s.prune(4).unwrap().bodies, 4);
        assert!(s.submission_body(&id).unwrap().is_none());
        drop(s);
        // Opened again: nothing left to move, the same envelopes.
        let s = Store::open(&path).unwrap();
        for (epoch, ids) in &epochs {
            if *epoch >= 4 {
                assert!(kept(&s, *epoch, ids));
            }
        }
    }
}
