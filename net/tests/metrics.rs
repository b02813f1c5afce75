//! Net metrics through the `metrics` facade (the node's exporter renders them): peers by
//! role, messages by topic, direction and verdict, refusals by reason, request-response
//! and DHT outcomes. Label values are bounded enums: never a peer, hotkey or message id.

use std::time::{Duration, Instant};

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use platform_keys::Keypair;
use platform_net::stats::names;
use platform_net::wire::{Envelope, Topic, now_ms};
use platform_net::{Identity, Net, NetConfig, Options, RecordKind};

/// (name, labels, value) of one series.
type Series = (String, Vec<(String, String)>, f64);

fn series(s: &Snapshotter) -> Vec<Series> {
    s.snapshot()
        .into_vec()
        .into_iter()
        .map(|(k, _, _, v)| {
            let key = k.key();
            let labels = key
                .labels()
                .map(|l| (l.key().to_string(), l.value().to_string()))
                .collect();
            let v = match v {
                DebugValue::Counter(c) => c as f64,
                DebugValue::Gauge(g) => g.into_inner(),
                DebugValue::Histogram(h) => h.len() as f64,
            };
            (key.name().to_string(), labels, v)
        })
        .collect()
}

fn has(all: &[Series], name: &str, label: (&str, &str)) -> bool {
    all.iter().any(|(n, ls, v)| {
        n == name && *v > 0.0 && ls.iter().any(|(k, val)| k == label.0 && val == label.1)
    })
}

#[test]
fn net_series_are_exported_with_bounded_labels() {
    let recorder = DebuggingRecorder::new();
    let snap = recorder.snapshotter();
    recorder.install().expect("only recorder in this binary");

    let start = |i: u8, boot: Option<&Net>| {
        let mut cfg = NetConfig::loopback();
        if let Some(b) = boot {
            cfg.bootstrap = vec![b.handle().listen_addrs()[0].clone()];
        }
        let id = Identity {
            hotkey: Keypair::from_seed(&[i; 32]),
            node_key: [i + 50; 32],
        };
        Net::start(cfg.validate().unwrap(), id, Options::default()).unwrap()
    };
    let a = start(1, None);
    let b = start(2, Some(&a));
    let deadline = Instant::now() + Duration::from_secs(30);
    let ready = |n: &Net| {
        n.handle()
            .peers()
            .unwrap()
            .iter()
            .any(|p| p.hotkey.is_some() && p.topics.len() == Topic::ALL.len())
    };
    while !(ready(&a) && ready(&b)) {
        assert!(Instant::now() < deadline, "mesh");
        std::thread::sleep(Duration::from_millis(20));
    }
    b.handle()
        .publish(Topic::Evaluations, b"ok".to_vec())
        .unwrap();
    let mut bad = Envelope::sign(
        &Keypair::from_seed(&[2; 32]),
        Topic::Evaluations,
        now_ms(),
        b"x".to_vec(),
    );
    bad.signature[1] ^= 1;
    b.handle()
        .publish_raw(Topic::Evaluations, bad.encode())
        .unwrap();
    let rec = Envelope::sign(
        &Keypair::from_seed(&[2; 32]),
        Topic::Evaluations,
        now_ms(),
        b"r".to_vec(),
    )
    .encode();
    let h = b.handle().put_record(RecordKind::Checkpoint, rec).unwrap();
    a.handle().get_record(RecordKind::Checkpoint, h).unwrap();

    // The debugging snapshot resets values as it reads them: accumulate what was seen.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut all = Vec::new();
    loop {
        all.extend(series(&snap));
        let ok = has(&all, names::MESSAGES, ("verdict", "accept"))
            && has(&all, names::MESSAGES, ("verdict", "reject"))
            && has(&all, names::MESSAGES, ("direction", "out"))
            && has(&all, names::MESSAGE_BYTES, ("topic", "evaluations"))
            && has(&all, names::REJECTED, ("reason", "bad_signature"))
            && has(&all, names::REQUESTS, ("kind", "hello"))
            && has(&all, names::DHT, ("op", "put"))
            && has(&all, names::PEERS, ("role", "validator"))
            && has(&all, names::GOSSIP_RECEIVED, ("copies", "first"));
        if ok {
            // Every label value is from a fixed vocabulary: no ids, peers or hotkeys.
            for (name, labels, _) in &all {
                assert!(name.starts_with("platform_net_"), "{name}");
                for (_, v) in labels {
                    assert!(
                        v.len() < 24 && !v.chars().any(|c| c.is_ascii_digit()),
                        "{name}: {v}"
                    );
                }
            }
            break;
        }
        assert!(Instant::now() < deadline, "series missing: {all:#?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
