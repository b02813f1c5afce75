//! Which queued evaluation a shard runs next: the oldest epoch's first (its result is due
//! first), and within an epoch the challenge that has had the least of the shard's time so
//! far (least attained service), first come first served within a challenge.
//!
//! A queue in arrival order puts a cheap challenge's evaluations behind an expensive one's:
//! under load a 1 µs evaluation waits for seconds of 5 ms ones queued before it, and an
//! epoch's result goes out with both unscored. Sharing the shard's time by challenge lets the
//! cheap ones through at once (they take almost none of it) and splits what remains evenly
//! between the expensive ones, so no challenge is starved by another's cost. Time is charged
//! when a job is picked, at its challenge's running mean, and corrected to what it took
//! when it reports.
//!
//! Single-threaded (one per shard) and pure: no clock, no I/O — times come in as numbers.

use std::collections::VecDeque;

use crate::result::ChallengeId;

/// What the scheduler needs to know of a job.
pub(crate) trait Job {
    fn epoch(&self) -> u64;
    fn challenge(&self) -> ChallengeId;
}

impl Job for crate::eval::Submission {
    fn epoch(&self) -> u64 {
        self.context.epoch
    }
    fn challenge(&self) -> ChallengeId {
        self.challenge.id
    }
}

/// Weight of a new measurement in a challenge's running cost (1/8).
const EWMA_SHIFT: u32 = 3;

/// One challenge's jobs of one epoch.
#[derive(Debug)]
struct ChallengeJobs<T> {
    challenge: ChallengeId,
    /// Shard time charged to this challenge in this epoch, in ns.
    attained_ns: u64,
    jobs: VecDeque<T>,
}

#[derive(Debug)]
struct EpochQueue<T> {
    epoch: u64,
    /// Few (the challenges active in one epoch): scanned, not indexed.
    challenges: Vec<ChallengeJobs<T>>,
    queued: usize,
}

/// See the module docs.
#[derive(Debug)]
pub(crate) struct Sched<T> {
    /// Ascending by epoch; usually one or two.
    epochs: Vec<EpochQueue<T>>,
    /// Running mean service time per challenge, in ns.
    cost_ns: Vec<(ChallengeId, u64)>,
    len: usize,
}

/// What a picked job was charged, to be corrected when it reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Charge {
    epoch: u64,
    challenge: ChallengeId,
    ns: u64,
}

impl<T: Job> Sched<T> {
    pub(crate) fn new() -> Self {
        Sched {
            epochs: Vec::new(),
            cost_ns: Vec::new(),
            len: 0,
        }
    }

    /// Jobs queued.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn push(&mut self, job: T) {
        let (epoch, challenge) = (job.epoch(), job.challenge());
        let at = match self.epochs.binary_search_by_key(&epoch, |q| q.epoch) {
            Ok(i) => i,
            Err(i) => {
                self.epochs.insert(
                    i,
                    EpochQueue {
                        epoch,
                        challenges: Vec::new(),
                        queued: 0,
                    },
                );
                i
            }
        };
        let q = &mut self.epochs[at];
        match q.challenges.iter_mut().find(|c| c.challenge == challenge) {
            Some(c) => c.jobs.push_back(job),
            None => q.challenges.push(ChallengeJobs {
                challenge,
                attained_ns: 0,
                jobs: VecDeque::from([job]),
            }),
        }
        q.queued += 1;
        self.len += 1;
    }

    /// The next job to run, and what it was charged. Jobs of epochs below `drop_below` are
    /// handed to `dropped` instead.
    pub(crate) fn pop(
        &mut self,
        drop_below: u64,
        mut dropped: impl FnMut(T),
    ) -> Option<(T, Charge)> {
        while self.epochs.first().is_some_and(|q| q.epoch < drop_below) {
            let q = self.epochs.remove(0);
            self.len -= q.queued;
            q.challenges
                .into_iter()
                .flat_map(|c| c.jobs)
                .for_each(&mut dropped);
        }
        let q = self.epochs.first_mut()?;
        let least = q
            .challenges
            .iter_mut()
            .filter(|c| !c.jobs.is_empty())
            .min_by_key(|c| (c.attained_ns, c.challenge))
            .expect("an epoch queue holds a job");
        let job = least.jobs.pop_front().expect("the challenge holds a job");
        let ns = self
            .cost_ns
            .iter()
            .find(|(c, _)| *c == least.challenge)
            .map_or(0, |(_, ns)| *ns);
        least.attained_ns = least.attained_ns.saturating_add(ns);
        let charge = Charge {
            epoch: q.epoch,
            challenge: least.challenge,
            ns,
        };
        q.queued -= 1;
        self.len -= 1;
        if q.queued == 0 {
            self.epochs.remove(0);
        }
        Some((job, charge))
    }

    /// The job charged `charge` took `service_ns`: its challenge in its epoch is charged that
    /// instead (if the epoch still has jobs queued), and the challenge's running cost learns it.
    pub(crate) fn took(&mut self, charge: Charge, service_ns: u64) {
        if let Ok(i) = self.epochs.binary_search_by_key(&charge.epoch, |q| q.epoch)
            && let Some(charged) = self.epochs[i]
                .challenges
                .iter_mut()
                .find(|c| c.challenge == charge.challenge)
        {
            charged.attained_ns = charged
                .attained_ns
                .saturating_sub(charge.ns)
                .saturating_add(service_ns);
        }
        match self
            .cost_ns
            .iter_mut()
            .find(|(c, _)| *c == charge.challenge)
        {
            Some((_, c)) if service_ns >= *c => *c += (service_ns - *c) >> EWMA_SHIFT,
            Some((_, c)) => *c -= (*c - service_ns) >> EWMA_SHIFT,
            None => self.cost_ns.push((charge.challenge, service_ns)),
        }
    }

    /// Forget a challenge's running cost (retired: its id may come back as another module).
    pub(crate) fn forget(&mut self, challenge: ChallengeId) {
        self.cost_ns.retain(|(c, _)| *c != challenge);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    struct J(u64, u32, u32);

    impl Job for J {
        fn epoch(&self) -> u64 {
            self.0
        }
        fn challenge(&self) -> ChallengeId {
            ChallengeId(self.1)
        }
    }

    /// Run everything queued, one at a time, each taking `cost(challenge)` ns.
    fn run_all(s: &mut Sched<J>, cost: impl Fn(u32) -> u64) -> Vec<J> {
        let mut order = Vec::new();
        while let Some((j, c)) = s.pop(0, |_| panic!("nothing is dropped")) {
            s.took(c, cost(j.1));
            order.push(j);
        }
        order
    }

    #[test]
    fn one_epoch_and_one_challenge_run_in_arrival_order() {
        let mut s = Sched::new();
        for i in 0..5 {
            s.push(J(0, 1, i));
        }
        assert_eq!(s.len(), 5);
        let order: Vec<u32> = run_all(&mut s, |_| 1000).iter().map(|j| j.2).collect();
        assert_eq!(order, vec![0, 1, 2, 3, 4]);
        assert_eq!(s.len(), 0);
    }

    #[test]
    fn a_cheap_challenge_is_not_queued_behind_an_expensive_one() {
        let mut s = Sched::new();
        // Challenge 1 takes 5 ms, challenge 2 takes 1 µs; 1's arrived first.
        for i in 0..4 {
            s.push(J(0, 1, i));
        }
        for i in 0..4 {
            s.push(J(0, 2, i));
        }
        let cost = |c: u32| if c == 1 { 5_000_000 } else { 1_000 };
        let order: Vec<(u32, u32)> = run_all(&mut s, cost).iter().map(|j| (j.1, j.2)).collect();
        // The first of 1 runs (nothing is known of either), then 2's, then the rest of 1.
        assert_eq!(
            order,
            vec![
                (1, 0),
                (2, 0),
                (2, 1),
                (2, 2),
                (2, 3),
                (1, 1),
                (1, 2),
                (1, 3)
            ]
        );
    }

    #[test]
    fn expensive_challenges_share_the_time_evenly() {
        let mut s = Sched::new();
        // 3 takes twice as long as 4: 4 runs about twice as often while both have work.
        for i in 0..6 {
            s.push(J(0, 3, i));
            s.push(J(0, 4, i));
        }
        let cost = |c: u32| if c == 3 { 2_000_000 } else { 1_000_000 };
        let order: Vec<u32> = run_all(&mut s, cost).iter().take(9).map(|j| j.1).collect();
        let threes = order.iter().filter(|c| **c == 3).count();
        assert_eq!(threes, 3, "{order:?}");
    }

    #[test]
    fn the_oldest_epoch_runs_first_and_unwanted_epochs_are_dropped() {
        let mut s = Sched::new();
        s.push(J(6, 1, 0));
        s.push(J(5, 2, 1));
        s.push(J(4, 1, 2));
        s.push(J(3, 1, 3));
        s.push(J(5, 1, 4));
        let mut dropped = Vec::new();
        let (first, _) = s.pop(4, |j| dropped.push(j)).unwrap();
        assert_eq!(dropped, vec![J(3, 1, 3)]);
        assert_eq!(first, J(4, 1, 2));
        assert_eq!(s.len(), 3);
        let rest: Vec<u32> = run_all(&mut s, |_| 10).iter().map(|j| j.2).collect();
        assert_eq!(
            rest,
            vec![4, 1, 0],
            "epoch 5's (the lower id first) before 6's"
        );
    }

    #[test]
    fn a_charge_is_corrected_to_what_the_job_took() {
        let mut s = Sched::new();
        s.push(J(0, 1, 0));
        s.push(J(0, 1, 1));
        s.push(J(0, 1, 3));
        s.push(J(0, 2, 2));
        // Both challenges unknown: 1 is picked, charged nothing.
        let (a, ca) = s.pop(0, |_| {}).unwrap();
        assert_eq!((a.1, ca.ns), (1, 0));
        // Until it reports, 1 and 2 have had the same time: the lower id goes first.
        let (b, cb) = s.pop(0, |_| {}).unwrap();
        assert_eq!(b.1, 1);
        s.took(ca, 7_000);
        s.took(cb, 9_000);
        // 1 has had 16 µs, 2 nothing.
        let (c, _) = s.pop(0, |_| {}).unwrap();
        assert_eq!(c.1, 2);
        // 1's running cost: 7 µs, then 9 µs moves it an eighth of the way.
        assert_eq!(s.cost_ns, vec![(ChallengeId(1), 7_000 + 2_000 / 8)]);
        s.forget(ChallengeId(1));
        assert!(s.cost_ns.is_empty());
    }
}
