//! Shared by the net integration tests: starting real nodes on loopback, waiting on a
//! condition with a deadline (never a sleep and hope), and collecting what they deliver.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use platform_keys::Keypair;
use platform_net::wire::Topic;
use platform_net::{Identity, Net, NetConfig, NetEvent, Options};

pub const WAIT: Duration = Duration::from_secs(30);

pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn identity(i: u8) -> Identity {
    Identity {
        hotkey: Keypair::from_seed(&[i; 32]),
        node_key: [i.wrapping_add(100); 32],
    }
}

pub fn start(i: u8, cfg: NetConfig, bootstrap: Option<&Net>, options: Options) -> Net {
    let mut cfg = cfg;
    if let Some(b) = bootstrap {
        cfg.bootstrap = vec![b.handle().listen_addrs()[0].clone()];
    }
    Net::start(cfg.validate().unwrap(), identity(i), options).unwrap()
}

/// Wait until every node is connected to `n - 1` others, bound to their hotkeys, and sees
/// them subscribed to every topic.
pub fn wait_for_mesh(nodes: &[Net]) {
    for (i, n) in nodes.iter().enumerate() {
        wait_until(&format!("node {i} to see the mesh"), || {
            let peers = n.handle().peers().unwrap();
            peers.len() >= nodes.len() - 1
                && peers
                    .iter()
                    .filter(|p| p.hotkey.is_some() && p.topics.len() == Topic::ALL.len())
                    .count()
                    >= nodes.len() - 1
        });
    }
}

/// Collects events per node.
pub struct Inbox {
    pub got: Vec<Vec<NetEvent>>,
}

impl Inbox {
    pub fn new(n: usize) -> Inbox {
        Inbox {
            got: vec![Vec::new(); n],
        }
    }
    pub fn drain(&mut self, nodes: &[Net]) {
        for (i, n) in nodes.iter().enumerate() {
            while let Ok(ev) = n.events().try_recv() {
                self.got[i].push(ev);
            }
        }
    }
    pub fn count(&self, node: usize, id: &[u8; 32]) -> usize {
        self.got[node]
            .iter()
            .filter(|e| matches!(e, NetEvent::Message(d) if &d.id == id))
            .count()
    }
    pub fn wait_delivered(&mut self, nodes: &[Net], to: &[usize], id: &[u8; 32]) {
        let deadline = Instant::now() + WAIT;
        loop {
            self.drain(nodes);
            if to.iter().all(|&i| self.count(i, id) >= 1) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "message not delivered to all of {to:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
