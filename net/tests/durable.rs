//! Blobs served from the application's durable store (real nodes on loopback): one evicted
//! from memory, and one this node never held in memory (as after a restart), are still
//! fetched by a peer, and counted as served from the store.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use common::{start, wait_for_mesh};
use platform_net::{BlobSource, Hash32, NetConfig, NetError, Options};

/// A store of blobs by sha256, as a node's redb would hold them.
#[derive(Default)]
struct Disk(Mutex<HashMap<Hash32, Vec<u8>>>);

impl Disk {
    fn put(&self, bytes: &[u8]) -> Hash32 {
        let h = platform_types::sha256(bytes);
        self.0.lock().unwrap().insert(h, bytes.to_vec());
        h
    }
}

impl BlobSource for Disk {
    fn blob(&self, hash: &Hash32) -> Option<Vec<u8>> {
        self.0.lock().unwrap().get(hash).cloned()
    }
}

#[test]
fn evicted_and_never_cached_blobs_are_served_from_the_durable_store() {
    let mut cfg = NetConfig::loopback();
    // Room for one 1.5 MB blob in memory: providing a second evicts the first.
    cfg.max_blob_bytes = 2 << 20;
    cfg.blob_cache_bytes = 2 << 20;
    let disk = Arc::new(Disk::default());
    let server = start(
        60,
        cfg.clone(),
        None,
        Options {
            blobs: Some(disk.clone()),
            ..Options::default()
        },
    );
    let fetcher = start(61, NetConfig::loopback(), Some(&server), Options::default());
    let nodes = [server, fetcher];
    wait_for_mesh(&nodes);

    let first = b"first module ".repeat(120_000);
    let second = b"second module ".repeat(110_000);
    disk.put(&first);
    disk.put(&second);
    let h1 = nodes[0].handle().provide(first.clone()).unwrap();
    let h2 = nodes[0].handle().provide(second.clone()).unwrap();
    assert_eq!(
        nodes[1].handle().fetch(h1).unwrap(),
        first,
        "evicted, still served"
    );
    assert_eq!(nodes[1].handle().fetch(h2).unwrap(), second);

    // Held on disk only (a module stored before a restart): served too.
    let old = b"a module from before the restart".repeat(100);
    let h3 = disk.put(&old);
    assert_eq!(nodes[1].handle().fetch(h3).unwrap(), old);
    // What the store does not hold is not found.
    assert_eq!(nodes[1].handle().fetch([7; 32]), Err(NetError::NotFound));
}
