use super::*;

fn key() -> Keypair {
    Keypair::from_seed(&[7; 32])
}

#[test]
fn envelope_round_trip_and_signature() {
    let env = Envelope::sign(&key(), Topic::Consensus, 1_700_000_000_000, vec![1, 2, 3]);
    let bytes = env.encode();
    assert_eq!(bytes.len(), ENVELOPE_OVERHEAD + 3);
    let back = Envelope::decode(&bytes).unwrap();
    assert_eq!(back, env);
    assert!(back.verify());
    assert_eq!(back.id(), sha256(&bytes));
    // Every single-bit flip either fails to decode or fails to verify.
    for i in 0..bytes.len() {
        let mut b = bytes.clone();
        b[i] ^= 0x10;
        if let Ok(e) = Envelope::decode(&b) {
            assert!(!e.verify(), "flip at byte {i} still verifies");
        }
    }
}

#[test]
fn substrate_signed_envelopes_verify_and_cannot_pass_for_the_other_scheme() {
    let env = Envelope::sign_as(Scheme::Substrate, &key(), Topic::Submissions, 9, vec![4; 5]);
    let bytes = env.encode();
    assert_eq!(bytes[0], ENVELOPE_V2);
    let back = Envelope::decode(&bytes).unwrap();
    assert_eq!(back.scheme, Scheme::Substrate);
    assert!(back.verify());
    // The signature is Substrate's over the domain-separated bytes, not the v1 one.
    let signed = env.signed_part();
    let (ctx, msg) = Scheme::Substrate.message(&signed);
    assert_eq!(ctx, b"substrate");
    assert!(msg.starts_with(ENVELOPE_V2_DOMAIN));
    for v in [WIRE_VERSION, ENVELOPE_V2] {
        let other = if v == WIRE_VERSION {
            ENVELOPE_V2
        } else {
            WIRE_VERSION
        };
        let signed = Envelope::sign_as(
            Scheme::of_version(v).unwrap(),
            &key(),
            Topic::Submissions,
            9,
            vec![4; 5],
        )
        .encode();
        let mut relabelled = signed.clone();
        relabelled[0] = other;
        assert!(
            !Envelope::decode(&relabelled).unwrap().verify(),
            "v{v} as v{other}"
        );
    }
    assert_eq!(
        Envelope::decode(&[3; ENVELOPE_OVERHEAD]),
        Err(WireError::Version(3))
    );
}

#[test]
fn truncations_and_trailing_bytes_are_errors() {
    let bytes = Envelope::sign(&key(), Topic::Submissions, 5, vec![9; 40]).encode();
    for n in 0..bytes.len() {
        assert!(Envelope::decode(&bytes[..n]).is_err(), "prefix {n}");
    }
    let mut long = bytes.clone();
    long.push(0);
    assert_eq!(
        Envelope::decode(&long),
        Err(WireError::Trailing("envelope"))
    );
    let mut huge = bytes.clone();
    huge[42..46].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        Envelope::decode(&huge),
        Err(WireError::TooLong { .. })
    ));
    let mut topic = bytes;
    topic[1] = 99;
    assert!(matches!(
        Envelope::decode(&topic),
        Err(WireError::Tag { .. })
    ));
}

#[test]
fn submission_round_trip() {
    let s = Submission {
        challenge: 3,
        epoch: 44,
        body: b"answer".to_vec(),
    };
    assert_eq!(Submission::decode(&s.encode()).unwrap(), s);
    let env = s.sign(&key(), 10);
    assert!(env.verify());
    assert_eq!(Submission::decode(&env.payload).unwrap(), s);
    assert!(Submission::decode(&s.encode()[..10]).is_err());
}

#[test]
fn binding_versions_sign_differently_and_cannot_be_relabelled() {
    for scheme in [Scheme::Platform, Scheme::Substrate] {
        let b = Binding::sign_as(scheme, &key(), b"peer-a".to_vec(), 77);
        let wire = b.encode();
        assert_eq!(wire[0], scheme.version());
        let back = Binding::decode(&wire).unwrap();
        assert_eq!(back, b);
        assert!(back.verify_for(b"peer-a"), "{scheme:?}");
        let mut relabelled = wire.clone();
        relabelled[0] = 3 - relabelled[0];
        assert!(
            !Binding::decode(&relabelled).unwrap().verify_for(b"peer-a"),
            "a {scheme:?} signature under the other version"
        );
    }
    let mut unknown = Binding::sign(&key(), b"p".to_vec(), 1).encode();
    unknown[0] = 3;
    assert_eq!(Binding::decode(&unknown), Err(WireError::Version(3)));
}

#[test]
fn binding_names_its_peer() {
    let b = Binding::sign(&key(), b"peer-a".to_vec(), 77);
    let back = Binding::decode(&b.encode()).unwrap();
    assert!(back.verify_for(b"peer-a"));
    assert!(
        !back.verify_for(b"peer-b"),
        "a replayed record for another peer"
    );
    let mut forged = back.clone();
    forged.hotkey = Keypair::from_seed(&[8; 32]).public();
    assert!(
        !forged.verify_for(b"peer-a"),
        "another hotkey without its signature"
    );
}

#[test]
fn rpc_frames_round_trip() {
    for r in [
        Request::Hello(vec![1, 2]),
        Request::Blob([4; 32]),
        Request::Submit(vec![5; 9]),
        Request::Checkpoint,
    ] {
        assert_eq!(Request::decode(&r.encode()).unwrap(), r);
    }
    for r in [
        Response::Hello(vec![1]),
        Response::Blob(None),
        Response::Blob(Some(vec![3; 5])),
        Response::Submit(SubmitAck::Accepted([1; 32])),
        Response::Submit(SubmitAck::Rejected("bad signature".into())),
        Response::Checkpoint(None),
        Response::Checkpoint(Some(vec![6; 7])),
    ] {
        assert_eq!(Response::decode(&r.encode()).unwrap(), r);
    }
    assert!(Request::decode(&[1, 2, 0]).is_err());
    assert!(
        Request::decode(&[WIRE_VERSION, 4, 0]).is_err(),
        "checkpoint has no body"
    );
    assert!(Response::decode(&[WIRE_VERSION, 4, 2]).is_err());
    assert!(Response::decode(&[2]).is_err());
    assert!(Response::decode(&[]).is_err());
}

#[test]
fn random_and_mutated_bytes_never_panic_a_decoder() {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let valid = [
        Envelope::sign(&key(), Topic::Evaluations, 9, vec![1; 50]).encode(),
        Binding::sign(&key(), vec![3; 38], 4).encode(),
        Request::Submit(vec![1; 20]).encode(),
        Response::Blob(Some(vec![2; 20])).encode(),
    ];
    for i in 0..50_000 {
        let bytes: Vec<u8> = if i % 2 == 0 {
            let len = (next() % 200) as usize;
            (0..len).map(|_| next() as u8).collect()
        } else {
            let mut b = valid[i % valid.len()].clone();
            for _ in 0..1 + next() % 4 {
                let at = (next() as usize) % b.len();
                b[at] = next() as u8;
            }
            b.truncate(b.len() - (next() % 3) as usize);
            b
        };
        let _ = Envelope::decode(&bytes).map(|e| e.verify());
        let _ = Submission::decode(&bytes);
        let _ = Binding::decode(&bytes).map(|b| b.verify_for(&[3; 38]));
        let _ = Request::decode(&bytes);
        let _ = Response::decode(&bytes);
        let _ = RecordKind::parse_key(&bytes);
    }
}

#[test]
fn record_keys() {
    let k = RecordKind::Checkpoint.key(&[5; 32]);
    assert_eq!(
        RecordKind::parse_key(&k).unwrap(),
        (RecordKind::Checkpoint, [5; 32])
    );
    assert!(RecordKind::parse_key(&k[..10]).is_err());
    assert!(RecordKind::parse_key(b"x").is_err());
}

/// The byte vectors the Python miner client's tests pin (clients/python/tests): the same
/// inputs give the same submission payload and the same signed envelope bytes here.
#[test]
fn python_client_vectors() {
    let payload = "01030000000b000000000000000d000000766563746f7220626f64792121";
    let signed = concat!(
        "0201",
        "9eda665dd261ad54955ad987dbb02c116100953d1f841b81a54912f01f3bc057",
        "0068e5cf8b010000",
        "1e000000",
        "01030000000b000000000000000d000000766563746f7220626f64792121"
    );
    let s = Submission {
        challenge: 3,
        epoch: 11,
        body: b"vector body!!".to_vec(),
    };
    assert_eq!(hex::encode(s.encode()), payload);
    let env = s.sign_as(
        Scheme::Substrate,
        &Keypair::from_seed(&[0x5a; 32]),
        1_700_000_000_000,
    );
    assert_eq!(hex::encode(env.signed_part()), signed);
}
