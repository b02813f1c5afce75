//! Blob fetches for the application thread, never waited on: each is handed to the net
//! thread, its outcome comes back on a channel the loop selects on, and a failed one is
//! tried again every [`RETRY_EVERY`] until [`FETCH_TIMEOUT`] after it was asked (a blob may
//! not be announced yet: a batch a peer is still publishing). No thread per fetch.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use platform_net::NetError;

use crate::machine::{Hash32, Input};

/// Fetches of one blob give up after this.
pub(crate) const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// A failed attempt is made again after this.
pub(crate) const RETRY_EVERY: Duration = Duration::from_millis(200);

/// What a fetch attempt came back with.
pub(crate) type Outcome = (Hash32, Result<Vec<u8>, NetError>);

/// Starts one attempt, whose outcome it sends on the channel given (false: not started).
pub(crate) type Start = Box<dyn Fn(Hash32, Sender<Outcome>) -> bool + Send>;

/// The fetches in progress.
pub(crate) struct Fetches {
    start: Start,
    tx: Sender<Outcome>,
    rx: Receiver<Outcome>,
    /// Every fetch in progress, with when it gives up.
    open: HashMap<Hash32, Instant>,
    /// Attempts to make again, in the order they fall due.
    retry: VecDeque<(Instant, Hash32)>,
}

impl Fetches {
    /// Fetches through the net thread (`NetHandle::fetch_then`).
    pub(crate) fn over(net: platform_net::NetHandle) -> Fetches {
        Fetches::new(Box::new(move |hash, tx| {
            net.fetch_then(hash, move |r| {
                let _ = tx.send((hash, r)); // unbounded: never blocks the net thread
            })
            .is_ok()
        }))
    }

    pub(crate) fn new(start: Start) -> Fetches {
        // Unbounded, yet bounded in practice: one outcome per attempt in progress.
        let (tx, rx) = crossbeam_channel::unbounded();
        Fetches {
            start,
            tx,
            rx,
            open: HashMap::new(),
            retry: VecDeque::new(),
        }
    }

    /// The outcomes' channel, for the loop's select (pass what it yields to
    /// [`Fetches::outcome`]).
    pub(crate) fn outcomes(&self) -> &Receiver<Outcome> {
        &self.rx
    }

    /// Fetches in progress.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.open.len()
    }

    /// Fetch a blob unless it is being fetched.
    pub(crate) fn fetch(&mut self, now: Instant, hash: Hash32) {
        if self.open.contains_key(&hash) {
            return;
        }
        self.open.insert(hash, now + FETCH_TIMEOUT);
        self.attempt(now, hash);
    }

    fn attempt(&mut self, now: Instant, hash: Hash32) {
        if !(self.start)(hash, self.tx.clone()) {
            // The net's queue is full (or it stopped): tried again like a failed attempt.
            self.retry.push_back((now + RETRY_EVERY, hash));
        }
    }

    /// An attempt's outcome: the blob for the machine, a retry, or — past the fetch's
    /// deadline — its failure for the machine.
    pub(crate) fn outcome(&mut self, now: Instant, (hash, r): Outcome, inputs: &mut Vec<Input>) {
        let Some(&deadline) = self.open.get(&hash) else {
            return; // not ours any more
        };
        match r {
            Ok(bytes) => {
                self.open.remove(&hash);
                inputs.push(Input::Fetched {
                    hash,
                    bytes: Some(bytes),
                });
            }
            Err(_) if now + RETRY_EVERY < deadline => {
                self.retry.push_back((now + RETRY_EVERY, hash))
            }
            Err(e) => {
                tracing::debug!("fetch of {} failed: {e}", hex::encode(hash));
                self.open.remove(&hash);
                inputs.push(Input::Fetched { hash, bytes: None });
            }
        }
    }

    /// Take every outcome that has arrived and make the attempts that fall due.
    pub(crate) fn poll(&mut self, now: Instant, inputs: &mut Vec<Input>) {
        while let Ok(o) = self.rx.try_recv() {
            self.outcome(now, o, inputs);
        }
        while let Some(&(due, hash)) = self.retry.front() {
            if due > now {
                break;
            }
            self.retry.pop_front();
            match self.open.get(&hash) {
                Some(&deadline) if now < deadline => self.attempt(now, hash),
                Some(_) => {
                    self.open.remove(&hash);
                    inputs.push(Input::Fetched { hash, bytes: None });
                }
                None => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    type Asked = Arc<Mutex<Vec<(Hash32, Sender<Outcome>)>>>;

    /// Fetches whose attempts are recorded (answered by the test), or refused to start.
    fn fetches(refuse: bool) -> (Fetches, Asked) {
        let asked: Asked = Arc::default();
        let a = asked.clone();
        let f = Fetches::new(Box::new(move |h, tx| {
            if refuse {
                return false;
            }
            a.lock().unwrap().push((h, tx));
            true
        }));
        (f, asked)
    }

    fn fetched(inputs: &[Input]) -> Vec<(Hash32, Option<Vec<u8>>)> {
        inputs
            .iter()
            .filter_map(|i| match i {
                Input::Fetched { hash, bytes } => Some((*hash, bytes.clone())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_blob_found_goes_to_the_machine_once_and_a_second_ask_joins_the_first() {
        let (mut f, asked) = fetches(false);
        let t0 = Instant::now();
        f.fetch(t0, [1; 32]);
        f.fetch(t0, [1; 32]);
        assert_eq!(asked.lock().unwrap().len(), 1, "one attempt for two asks");
        let (h, tx) = asked.lock().unwrap().pop().unwrap();
        tx.send((h, Ok(b"blob".to_vec()))).unwrap();
        let mut inputs = Vec::new();
        f.poll(t0, &mut inputs);
        assert_eq!(fetched(&inputs), vec![([1; 32], Some(b"blob".to_vec()))]);
        assert_eq!(f.len(), 0);
        // A late duplicate outcome is not delivered again.
        tx.send((h, Ok(b"blob".to_vec()))).unwrap();
        inputs.clear();
        f.poll(t0, &mut inputs);
        assert!(inputs.is_empty());
    }

    #[test]
    fn failed_attempts_are_retried_until_the_deadline_then_reported_failed() {
        let (mut f, asked) = fetches(false);
        let t0 = Instant::now();
        f.fetch(t0, [2; 32]);
        let mut inputs = Vec::new();
        let mut t = t0;
        let mut attempts = 0;
        while t < t0 + FETCH_TIMEOUT + RETRY_EVERY * 2 {
            let pending: Vec<_> = asked.lock().unwrap().drain(..).collect();
            attempts += pending.len();
            for (h, tx) in pending {
                tx.send((h, Err(NetError::NotFound))).unwrap();
            }
            f.poll(t, &mut inputs);
            t += Duration::from_millis(50);
        }
        assert_eq!(
            fetched(&inputs),
            vec![([2; 32], None)],
            "one failure, at the end"
        );
        // An attempt answered within one 50 ms step, then retried 200 ms later: every 250 ms.
        let step = RETRY_EVERY + Duration::from_millis(50);
        let expected = (FETCH_TIMEOUT.as_millis() / step.as_millis()) as usize;
        assert!(
            (expected..=expected + 1).contains(&attempts),
            "{attempts} attempts, one per {step:?} over {FETCH_TIMEOUT:?}"
        );
        assert_eq!(f.len(), 0);
    }

    #[test]
    fn a_fetch_the_net_cannot_take_is_retried_and_fails_at_its_deadline() {
        let (mut f, _) = fetches(true);
        let t0 = Instant::now();
        f.fetch(t0, [3; 32]);
        let mut inputs = Vec::new();
        f.poll(t0 + RETRY_EVERY, &mut inputs);
        assert!(inputs.is_empty(), "still within its deadline");
        let mut t = t0 + RETRY_EVERY;
        while inputs.is_empty() && t < t0 + FETCH_TIMEOUT * 2 {
            t += RETRY_EVERY;
            f.poll(t, &mut inputs);
        }
        assert_eq!(fetched(&inputs), vec![([3; 32], None)]);
        assert!(t >= t0 + FETCH_TIMEOUT);
    }
}
