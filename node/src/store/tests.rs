use platform_keys::Keypair;

use super::*;

fn miner(i: u8) -> Keypair {
    Keypair::from_seed(&[i; 32])
}

/// A signed submission envelope of `epoch` and `challenge` by miner `m` (distinct per `n`),
/// with its id (sha256) and the miner's hotkey.
fn submission(epoch: u64, challenge: u32, m: u8, n: u8) -> ([u8; 32], [u8; 32], Vec<u8>) {
    let env = platform_net::Submission {
        challenge,
        epoch,
        body: vec![n; 8],
    }
    .sign(&miner(m), 1_000)
    .encode();
    (platform_types::sha256(&env), miner(m).public(), env)
}

fn audit(i: u8) -> AuditRecord {
    AuditRecord {
        epoch: 3,
        challenge: 1,
        module_hash: [i; 32],
        input_hash: [i + 1; 32],
        submission: [i + 2; 32],
        outcome: 0,
        score: 500_000_000,
        fuel: 12_345,
        host_calls: 7,
    }
}

#[test]
fn first_batch_per_author_wins_and_decisions_apply_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.redb");
    {
        let s = Store::open(&path).unwrap();
        assert_eq!(s.put_batch(5, &[1; 32], b"first").unwrap(), b"first");
        assert_eq!(s.put_batch(5, &[1; 32], b"second").unwrap(), b"first");
        s.put_batch(6, &[2; 32], b"other").unwrap();
        s.apply_decision(&AppliedDecision {
            height: 3,
            epoch: Some((5, b"result")),
            registry: &[(9, b"entry".to_vec())],
            registry_nonce: 77,
        })
        .unwrap();
    }
    let s = Store::open(&path).unwrap();
    let rows = s.batches_from(5).unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0], (5, [1; 32], b"first".to_vec()));
    assert_eq!(s.batches_from(6).unwrap().len(), 1);
    assert_eq!(s.epochs_from(0).unwrap(), vec![(5, b"result".to_vec())]);
    assert_eq!(s.registry().unwrap(), vec![(9, b"entry".to_vec())]);
    assert_eq!(s.meta(META_APPLIED_HEIGHT).unwrap(), Some(3));
    assert_eq!(s.meta(META_REGISTRY_NONCE).unwrap(), Some(77));
    assert_eq!(s.meta(META_LAST_EPOCH).unwrap(), Some(5));
}

#[test]
fn everything_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.redb");
    let module = b"\0asm\x01\0\0\0".to_vec();
    let sub = submission(3, 1, 9, 0);
    let h = {
        let s = Store::open(&path).unwrap();
        let h = s.put_module(&module, None).unwrap();
        assert!(
            s.put_module(b"other", Some(&h)).is_err(),
            "a wrong hash is refused"
        );
        s.put_registry(1, b"entry-1").unwrap();
        s.record_submission(3, &sub.0, &sub.2).unwrap();
        assert_eq!(
            s.record_result(3, &[5; 32], &[1; 128], &audit(1)).unwrap(),
            0
        );
        assert_eq!(
            s.record_result(3, &[6; 32], &[2; 128], &audit(2)).unwrap(),
            1
        );
        s.set_meta("last_committed_epoch", 2).unwrap();
        h
    };
    let s = Store::open(&path).unwrap();
    assert_eq!(s.module(&h).unwrap(), Some(module));
    assert_eq!(s.registry().unwrap(), vec![(1, b"entry-1".to_vec())]);
    assert_eq!(s.counted_submissions(3).unwrap(), vec![(1, sub.1, sub.0)]);
    assert_eq!(s.submission_body(&sub.0).unwrap(), Some(sub.2.clone()));
    assert_eq!(s.result(3, &[5; 32]).unwrap(), Some(vec![1; 128]));
    assert_eq!(s.meta("last_committed_epoch").unwrap(), Some(2));
    // The audit log continues where it stopped.
    assert_eq!(
        s.record_result(3, &[7; 32], &[3; 128], &audit(3)).unwrap(),
        2
    );
    let log = s.audit_from(1).unwrap();
    assert_eq!(log.iter().map(|(k, _)| *k).collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(log[0].1, audit(2));
}

#[test]
fn the_counted_submission_is_the_smallest_id_in_any_arrival_order() {
    let dir = tempfile::tempdir().unwrap();
    let subs: Vec<_> = (0..3).map(|n| submission(1, 4, 1, n)).collect();
    let smallest = subs.iter().map(|s| s.0).min().unwrap();
    for order in [[0, 1, 2], [2, 1, 0], [1, 2, 0]] {
        let s = Store::open(&dir.path().join(format!("{order:?}.redb"))).unwrap();
        for i in order {
            s.record_submission(1, &subs[i].0, &subs[i].2).unwrap();
        }
        assert_eq!(
            s.counted_submissions(1).unwrap(),
            vec![(4, subs[0].1, smallest)]
        );
        assert!(s.counted_submissions(2).unwrap().is_empty());
        assert_eq!(
            s.counted_from(0).unwrap(),
            vec![(1, 4, subs[0].1, smallest)]
        );
    }
    // A body that is not a submission envelope counts for nothing; the rest still do.
    let s = Store::open(&dir.path().join("x.redb")).unwrap();
    s.record_submission(1, &[0; 32], b"not an envelope")
        .unwrap();
    s.record_submission(1, &subs[1].0, &subs[1].2).unwrap();
    assert_eq!(
        s.counted_submissions(1).unwrap(),
        vec![(4, subs[1].1, subs[1].0)]
    );
}

#[test]
fn a_corrupted_module_is_detected_on_read() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&dir.path().join("m.redb")).unwrap();
    // Write bytes under a hash they do not have, bypassing put_module's check.
    let tx = s.db.begin_write().unwrap();
    tx.open_table(MODULES)
        .unwrap()
        .insert(&[1u8; 32], &b"junk"[..])
        .unwrap();
    tx.commit().unwrap();
    assert!(matches!(
        s.module(&[1; 32]),
        Err(StoreError::HashMismatch(_))
    ));
}

#[test]
fn one_write_holds_many_records_and_keeps_the_counting_rule() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&dir.path().join("w.redb")).unwrap();
    let mut w = Writes::default();
    let first: Vec<_> = (0..3).map(|n| submission(1, 4, 1, n)).collect();
    let other = submission(1, 4, 2, 0);
    for (id, _, env) in first.iter().chain([&other]) {
        w.submission(1, *id, env.clone());
    }
    let smallest = first.iter().map(|s| s.0).min().unwrap();
    w.result(1, smallest, vec![1; 128], audit(1));
    w.result(1, other.0, vec![2; 128], audit(2));
    assert_eq!(w.len(), 6);
    assert_eq!(
        s.write(&mut w).unwrap(),
        2,
        "the next audit sequence number"
    );
    assert!(w.is_empty(), "a write empties what it committed");
    let mut expected = vec![(4, first[0].1, smallest), (4, other.1, other.0)];
    expected.sort();
    assert_eq!(s.counted_submissions(1).unwrap(), expected);
    assert_eq!(
        s.submission_body(&first[2].0).unwrap(),
        Some(first[2].2.clone())
    );
    assert_eq!(s.result(1, &other.0).unwrap(), Some(vec![2; 128]));
    // Singles after a batch continue the same audit log.
    assert_eq!(
        s.record_result(1, &[7; 32], &[3; 128], &audit(3)).unwrap(),
        2
    );
    assert_eq!(s.audit_from(0).unwrap().len(), 3);
}

/// Rows of a table.
fn rows<K: redb::Key + 'static>(s: &Store, t: TableDefinition<K, &'static [u8]>) -> u64 {
    use redb::ReadableTableMetadata as _;
    s.db.begin_read()
        .unwrap()
        .open_table(t)
        .unwrap()
        .len()
        .unwrap()
}

#[test]
fn results_go_under_their_submissions_key_and_without_one_by_id() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.redb");
    let (kept, later) = (submission(5, 1, 1, 0), submission(5, 1, 2, 0));
    {
        let s = Store::open(&path).unwrap();
        let mut w = Writes::default();
        // A submission and its result in one write; another submission kept now, its
        // result in a later write; a result whose submission is not kept.
        w.submission(5, kept.0, kept.2.clone());
        w.submission(5, later.0, later.2.clone());
        w.result(5, kept.0, vec![1; 128], audit(1));
        s.write(&mut w).unwrap();
        w.result(5, later.0, vec![2; 128], audit(2));
        w.result(5, [9; 32], vec![3; 128], audit(3));
        s.write(&mut w).unwrap();
        assert_eq!(rows(&s, envelopes::RESULTS_AT), 2);
        assert_eq!(rows(&s, RESULTS), 1, "the one without a kept submission");
        // Another epoch's result for a kept submission is not confused with its own.
        assert_eq!(s.result(6, &kept.0).unwrap(), None);
    }
    let s = Store::open(&path).unwrap();
    assert_eq!(s.result(5, &kept.0).unwrap(), Some(vec![1; 128]));
    assert_eq!(s.result(5, &later.0).unwrap(), Some(vec![2; 128]));
    assert_eq!(s.result(5, &[9; 32]).unwrap(), Some(vec![3; 128]));
    assert_eq!(s.row_counts().unwrap()[1], ("results", 3));
    let p = s.prune(6).unwrap();
    assert_eq!((p.bodies, p.results, p.more), (2, 3, false));
    assert_eq!(s.result(5, &kept.0).unwrap(), None);
    assert_eq!(s.result(5, &[9; 32]).unwrap(), None);
}

#[test]
fn batches_gathered_with_a_pass_keep_the_first_per_author_and_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.redb");
    let sub = submission(4, 1, 7, 0);
    {
        let s = Store::open(&path).unwrap();
        let mut w = Writes::default();
        w.batch(4, [1; 32], b"first".to_vec());
        w.submission(4, sub.0, sub.2.clone());
        w.batch(4, [1; 32], b"later".to_vec());
        w.batch(4, [2; 32], b"other".to_vec());
        assert_eq!(w.len(), 4);
        s.write(&mut w).unwrap();
        assert!(w.is_empty());
        // A batch written alone afterwards follows the same rule.
        assert_eq!(s.put_batch(4, &[2; 32], b"again").unwrap(), b"other");
    }
    let s = Store::open(&path).unwrap();
    assert_eq!(
        s.batches_from(4).unwrap(),
        vec![
            (4, [1; 32], b"first".to_vec()),
            (4, [2; 32], b"other".to_vec())
        ]
    );
    use platform_net::BlobSource as _;
    let blobs = s.blobs();
    for kept in [&b"first"[..], b"later", b"other", b"again"] {
        assert_eq!(
            blobs.blob(&platform_types::sha256(kept)),
            Some(kept.to_vec())
        );
    }
    assert_eq!(s.counted_submissions(4).unwrap(), vec![(1, sub.1, sub.0)]);
}

#[test]
fn modules_and_batches_are_served_by_hash_and_older_stores_are_indexed_at_open() {
    use platform_net::BlobSource;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.redb");
    let module = b"\0asm module bytes".to_vec();
    let batch = b"a signed batch envelope".to_vec();
    {
        let s = Store::open(&path).unwrap();
        let h = s.put_module(&module, None).unwrap();
        s.put_batch(7, &[3; 32], &batch).unwrap();
        let blobs = s.blobs();
        assert_eq!(blobs.blob(&h), Some(module.clone()));
        assert_eq!(
            blobs.blob(&platform_types::sha256(&batch)),
            Some(batch.clone())
        );
        assert_eq!(blobs.blob(&[9; 32]), None);
        assert!(blobs.holds(&h) && !blobs.holds(&[9; 32]));
        // A later batch from the same author for the epoch (a laggard's) is kept by id and
        // served (a value may name it), while the first stays the author's batch on restore.
        assert_eq!(s.put_batch(7, &[3; 32], b"another").unwrap(), batch);
        assert_eq!(
            blobs.blob(&platform_types::sha256(b"another")),
            Some(b"another".to_vec())
        );
        assert_eq!(
            s.batches_from(7).unwrap(),
            vec![(7, [3; 32], batch.clone())]
        );
    }
    // As a release before the index wrote it: the index dropped, rebuilt at open.
    {
        const IDS: redb::TableDefinition<&[u8; 32], (u64, &[u8; 32])> =
            redb::TableDefinition::new("batch_ids");
        let db = redb::Database::open(&path).unwrap();
        let tx = db.begin_write().unwrap();
        assert!(tx.delete_table(IDS).unwrap(), "the index existed");
        tx.commit().unwrap();
    }
    let s = Store::open(&path).unwrap();
    assert_eq!(s.blobs().blob(&platform_types::sha256(&batch)), Some(batch));
}

#[test]
fn snapshots_are_served_by_hash_the_last_two_kept_and_an_install_replaces_the_state() {
    use crate::snapshot::{AppState, CHUNK_BYTES, SNAPSHOT_VERSION};
    use platform_net::BlobSource as _;
    let state = |height: u64, fill: u8, len: usize| AppState {
        version: SNAPSHOT_VERSION,
        height,
        epoch: height + 10,
        pin: crate::machine::Pin {
            block: height * 12,
            hash: [fill; 32],
        },
        owner: [1; 32],
        nonce: height,
        registry: vec![(3, vec![fill; len])],
        record: vec![fill; 8],
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.redb");
    let s = Store::open(&path).unwrap();
    let blobs = s.blobs();
    assert_eq!(blobs.checkpoint(), None);
    let snaps: Vec<_> = [(4, 1), (8, 2), (12, 3)]
        .iter()
        .map(|(h, f)| state(*h, *f, CHUNK_BYTES + 5).build())
        .collect();
    for snap in &snaps {
        s.put_snapshot(snap, 2).unwrap();
    }
    // The oldest went, blobs and all; the others are served by hash.
    let kept = |s: &Store| -> Vec<u64> {
        s.snapshot_refs()
            .unwrap()
            .iter()
            .map(|r| r.height)
            .collect()
    };
    assert_eq!(kept(&s), vec![8, 12]);
    assert!(!blobs.holds(&snaps[0].reference.manifest));
    assert_eq!(
        blobs.blob(&platform_types::sha256(&snaps[0].chunks[1])),
        None
    );
    for snap in &snaps[1..] {
        assert_eq!(
            blobs.blob(&snap.reference.manifest).as_deref(),
            Some(&snap.manifest[..])
        );
        for c in &snap.chunks {
            assert_eq!(
                blobs.blob(&platform_types::sha256(c)).as_deref(),
                Some(&c[..])
            );
        }
    }
    // The offer: the latest decisions naming a snapshot, in height order, at most 32.
    for h in 1..=40u64 {
        s.put_checkpoint(h, &h.to_le_bytes()).unwrap();
    }
    let offer: Vec<Vec<u8>> =
        parity_scale_codec::Decode::decode(&mut blobs.checkpoint().unwrap().as_slice()).unwrap();
    let want: Vec<Vec<u8>> = (9..=40u64).map(|h| h.to_le_bytes().to_vec()).collect();
    assert_eq!(offer, want);

    // An install replaces the registry and moves the applied height, in one transaction.
    s.put_registry(7, b"old entry").unwrap();
    let st = state(16, 4, 10);
    s.install_snapshot(&st, &st.build(), 2).unwrap();
    drop((s, blobs));
    let s = Store::open(&path).unwrap();
    assert_eq!(s.registry().unwrap(), vec![(3, vec![4; 10])]);
    assert_eq!(s.meta(META_APPLIED_HEIGHT).unwrap(), Some(16));
    assert_eq!(s.meta(META_LAST_EPOCH).unwrap(), Some(26));
    assert_eq!(s.meta(META_REGISTRY_NONCE).unwrap(), Some(16));
    assert_eq!(s.epochs_from(26).unwrap(), vec![(26, vec![4; 8])]);
    assert_eq!(kept(&s), vec![12, 16]);
}
