//! The simulated miners and the metagraph's churn: miners registering and losing their
//! uid, stake moving, a validator joining and one leaving; miners' signed submissions
//! reaching one validator, which gossips them on.

use platform_chain::Chain as _;

use super::{CHALLENGE, Ev, NETUID, Node, World, keypair};
use crate::machine::{Arrival, Input, Schedule};
use crate::sim::Violation;

impl World {
    pub(super) fn churn(&mut self) {
        match self.rng.below(5) {
            0 => {
                let key = keypair(2, 1000 + self.miners.len() as u64, self.sc.seed);
                let k = key.public();
                if self.chain.register(NETUID, k, 0).is_ok() {
                    self.miners.push(k);
                    self.miner_keys.insert(k, key);
                }
            }
            1 => {
                // A miner's uid goes to a new hotkey.
                let m = self.rng.below(self.miners.len() as u64) as usize;
                let old = self.miners[m];
                let uid = self
                    .chain
                    .metagraph(NETUID)
                    .ok()
                    .and_then(|g| g.neurons.iter().find(|n| n.hotkey == old).map(|n| n.uid));
                let key = keypair(2, 2000 + m as u64 + self.now, self.sc.seed);
                let k = key.public();
                if let Some(uid) = uid
                    && self.chain.replace(NETUID, uid, k, 0).is_ok()
                {
                    self.miners[m] = k;
                    self.miner_keys.insert(k, key);
                }
            }
            2 => {
                // Stake moves between honest validators.
                let i = self.rng.below(self.nodes.len() as u64) as usize;
                if !self.nodes[i].liar {
                    let k = self.nodes[i].key.public();
                    let _ = self.chain.set_stake(NETUID, &k, 300 + self.rng.below(700));
                }
            }
            3 => {
                // A validator joins: registered with stake, its node started now.
                let key = keypair(1, 500 + self.nodes.len() as u64, self.sc.seed);
                if self
                    .chain
                    .register(NETUID, key.public(), 300 + self.rng.below(700))
                    .is_ok()
                {
                    self.nodes.push(Node::new(key));
                    let i = self.nodes.len() - 1;
                    self.start(i);
                }
            }
            _ => {
                // A validator leaves (its stake goes); its node follows from then on. Only
                // while enough honest validators remain.
                let honest = self.nodes.iter().filter(|n| !n.liar).count();
                let i = self.rng.below(self.nodes.len() as u64) as usize;
                if honest > 4 && !self.nodes[i].liar {
                    let k = self.nodes[i].key.public();
                    let _ = self.chain.set_stake(NETUID, &k, 0);
                }
            }
        }
    }

    pub(super) fn submit(&mut self, miner: usize, nonce: u64) -> Result<(), Violation> {
        let Ok(head) = self.chain.current_block() else {
            return Ok(());
        };
        let epoch = Schedule::of_subnet(NETUID, self.sc.epoch_blocks).epoch_of(head.number);
        let author = self.miners[miner];
        let body = nonce.to_le_bytes().to_vec();
        let Some(key) = self.miner_keys.get(&author) else {
            return Ok(());
        };
        let envelope = platform_net::Submission {
            challenge: CHALLENGE,
            epoch,
            body: body.clone(),
        }
        .sign(key, self.now)
        .encode();
        let a = Arrival {
            id: platform_types::sha256(&envelope),
            author,
            challenge: CHALLENGE,
            epoch,
            body,
            envelope,
        };
        // The miner reaches one validator, which gossips the submission to the others.
        let entry = self.rng.below(self.nodes.len() as u64) as usize;
        for to in 0..self.nodes.len() {
            if to != entry && !self.link(entry, to) {
                continue;
            }
            let d = if to == entry { 0 } else { self.delay() };
            let inc = self.nodes[to].incarnation;
            self.at(
                self.now + d,
                Ev::Deliver {
                    to,
                    inc,
                    input: Input::Submission(a.clone()),
                },
            );
        }
        Ok(())
    }
}
