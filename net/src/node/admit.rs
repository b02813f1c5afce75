//! Miners' submissions at the door: the net's own checks, then (with
//! [`Options::admission`](crate::Options)) the application's decision before the ack, so the
//! miner hears what counts. Refusals are answered first and penalised after the answer has
//! gone out, so the request that trips a ban still carries its reason.
//!
//! Signatures are the one check not made on the net thread: submissions that pass the rest
//! queue for the runtime's blocking pool, where up to [`DOOR_JOBS`] jobs verify them in bulk (batch
//! verification, a fraction of the cost of one by one), and their verdicts come back as
//! [`DoorChecked`]. Under light load a job holds one submission and adds no wait; under
//! load the queue fills while jobs run, so batches grow with the load.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use libp2p::PeerId;
use libp2p::gossipsub::IdentTopic;
use libp2p::request_response::{InboundRequestId, ResponseChannel};

use super::Node;
use crate::api::{Delivery, NetEvent, Reply};
use crate::stats::{self, Reason};
use crate::wire::{Envelope, Hash32, Response, SubmitAck, Topic, sha256};

/// How long a submission may wait for the application's admission before the miner is told
/// `busy`.
pub(crate) const ADMISSION_TIMEOUT: Duration = Duration::from_secs(5);

/// Submissions waiting for admission at once; beyond it the miner is told `busy` at once.
pub(crate) const ADMISSION_QUEUE: usize = 4096;

/// Door verification jobs on the pool at once.
const DOOR_JOBS: usize = 2;
/// Most submissions one door verification job takes.
const DOOR_JOB_MAX: usize = 256;

/// Who is waiting for a submission's answer: a miner over request-response, or a caller
/// on this node (the HTTP endpoint) through [`crate::NetHandle::submit`].
pub(super) enum Answer {
    Rpc {
        channel: ResponseChannel<Response>,
        peer: PeerId,
        request_id: InboundRequestId,
    },
    Local(Reply<SubmitAck>),
}

/// A submission waiting for the application's decision.
struct Waiting {
    /// The ack to send; taken when the miner was told `busy` before the decision came.
    channel: Option<Answer>,
    id: Hash32,
    bytes: Vec<u8>,
    since: Instant,
}

/// A submission that passed every check but its signature.
struct Unverified {
    answer: Answer,
    id: Hash32,
    env: Envelope,
}

/// A door verification job's verdicts, back from the pool: the submissions' bytes in the
/// order they went, and whether each one's signature verifies.
pub(crate) struct DoorChecked {
    job: u64,
    bytes: Vec<Vec<u8>>,
    valid: Vec<bool>,
}

/// The door's state on the net thread.
#[derive(Default)]
pub(super) struct Door {
    waiting: HashMap<u64, Waiting>,
    /// Ids of submissions being verified or waiting for admission: the same bytes again
    /// meanwhile are a replay.
    waiting_ids: HashSet<Hash32>,
    next_token: u64,
    /// Penalties owed for refused requests, applied once the answer was sent (or failed).
    owed: HashMap<InboundRequestId, (PeerId, Reason)>,
    /// Submissions queued for a verification job, with their bytes.
    unverified: Vec<(Unverified, Vec<u8>)>,
    /// Verification jobs on the pool, by job number: their submissions (bytes travel with
    /// the job).
    verifying: HashMap<u64, Vec<Unverified>>,
    /// Submissions queued or on the pool.
    in_check: usize,
    next_job: u64,
}

impl Node {
    /// A miner's submission: checked like gossip (its signature on the pool, see the module
    /// doc); then admitted (acked and passed on to peers) at once, or handed to the
    /// application to decide.
    pub(super) fn on_submit(&mut self, answer: Answer, bytes: Vec<u8>) {
        let id = sha256(&bytes);
        if self.seen.contains(&id) || self.door.waiting_ids.contains(&id) {
            return self.refuse_submit(answer, Reason::Replay);
        }
        if self.door.waiting.len() + self.door.in_check >= ADMISSION_QUEUE {
            return self.refuse_submit(answer, Reason::Busy);
        }
        let env = match self.check_unsigned(&bytes, Topic::Submissions, true) {
            Ok(env) => env,
            Err(reason) => return self.refuse_submit(answer, reason),
        };
        self.door.waiting_ids.insert(id);
        self.door.in_check += 1;
        self.door
            .unverified
            .push((Unverified { answer, id, env }, bytes));
        self.start_door_jobs();
    }

    /// Hand queued submissions to the pool while a job slot is free.
    fn start_door_jobs(&mut self) {
        while self.door.verifying.len() < DOOR_JOBS && !self.door.unverified.is_empty() {
            let take = self.door.unverified.len().min(DOOR_JOB_MAX);
            let (subs, bytes): (Vec<Unverified>, Vec<Vec<u8>>) =
                self.door.unverified.drain(..take).unzip();
            let job = self.door.next_job;
            self.door.next_job += 1;
            self.door.verifying.insert(job, subs);
            let tx = self.batches.opened_tx.clone();
            drop(tokio::task::spawn_blocking(move || {
                let refs: Vec<&[u8]> = bytes.iter().map(|b| b.as_slice()).collect();
                let valid = crate::verify::each_valid(&refs);
                let _ = tx.send(super::PoolDone::Door(DoorChecked { job, bytes, valid }));
            }));
        }
    }

    /// A door verification job's verdicts: forged submissions refused (their senders
    /// penalised), the rest on to admission.
    pub(crate) fn on_door_checked(&mut self, done: DoorChecked, now: Instant) {
        let Some(subs) = self.door.verifying.remove(&done.job) else {
            return;
        };
        self.door.in_check = self.door.in_check.saturating_sub(subs.len());
        for ((sub, bytes), valid) in subs.into_iter().zip(done.bytes).zip(done.valid) {
            if valid {
                self.admit_verified(sub, bytes, now);
            } else {
                self.door.waiting_ids.remove(&sub.id);
                self.refuse_submit(sub.answer, Reason::BadSignature);
            }
        }
        self.start_door_jobs();
    }

    /// A submission that passed every check: admitted at once, or handed to the
    /// application to decide.
    fn admit_verified(&mut self, sub: Unverified, bytes: Vec<u8>, now: Instant) {
        let Unverified { answer, id, env } = sub;
        let via_peer = match &answer {
            Answer::Rpc { peer, .. } => peer.to_base58(),
            Answer::Local(_) => "local".into(),
        };
        let delivery = Delivery {
            id,
            topic: Topic::Submissions,
            author: env.author,
            issued_at_ms: env.issued_at_ms,
            payload: env.payload,
            envelope: bytes.clone(),
            via_peer,
        };
        if !self.admission {
            self.door.waiting_ids.remove(&id);
            self.admitted(id, &bytes, now);
            self.emit(NetEvent::Message(delivery));
            return self.respond(answer, SubmitAck::Accepted(id));
        }
        let token = self.door.next_token;
        self.door.next_token += 1;
        if !self.try_emit(NetEvent::Submit { token, delivery }) {
            self.door.waiting_ids.remove(&id);
            return self.refuse_submit(answer, Reason::Busy);
        }
        self.door.waiting.insert(
            token,
            Waiting {
                channel: Some(answer),
                id,
                bytes,
                since: now,
            },
        );
    }

    /// The application's decision on a waiting submission.
    pub(super) fn on_admit(&mut self, token: u64, verdict: Result<(), Reason>, now: Instant) {
        let Some(w) = self.door.waiting.remove(&token) else {
            return;
        };
        self.door.waiting_ids.remove(&w.id);
        match verdict {
            Ok(()) => {
                // Counted by the application: peers must see it even if the miner was
                // already told `busy`, or validators would count different sets.
                self.admitted(w.id, &w.bytes, now);
                if let Some(channel) = w.channel {
                    self.respond(channel, SubmitAck::Accepted(w.id));
                } else {
                    stats::request("submit", "in", "admitted_late");
                }
            }
            Err(reason) => {
                self.counters().reject(reason);
                if let Some(channel) = w.channel {
                    self.respond(channel, SubmitAck::Rejected(reason.label().into()));
                }
            }
        }
    }

    /// Tell miners whose submissions waited too long that the validator is busy. The
    /// submission stays waiting: if the application admits it later, it is passed on.
    pub(super) fn expire_admissions(&mut self, now: Instant) {
        let late: Vec<u64> = self
            .door
            .waiting
            .iter()
            .filter(|(_, w)| {
                w.channel.is_some() && now.duration_since(w.since) >= ADMISSION_TIMEOUT
            })
            .map(|(t, _)| *t)
            .collect();
        for token in late {
            let channel = self
                .door
                .waiting
                .get_mut(&token)
                .and_then(|w| w.channel.take());
            if let Some(channel) = channel {
                self.counters().reject(Reason::Busy);
                self.respond(channel, SubmitAck::Rejected(Reason::Busy.label().into()));
            }
        }
        // Never decided at all (the application is gone or lost it): forget them.
        let door = &mut self.door;
        door.waiting.retain(|_, w| {
            let keep = now.duration_since(w.since) < 12 * ADMISSION_TIMEOUT;
            if !keep {
                door.waiting_ids.remove(&w.id);
            }
            keep
        });
    }

    /// Refuse a submission: the reason goes out now, any penalty (a peer's) once it has
    /// been sent.
    pub(super) fn refuse_submit(&mut self, answer: Answer, reason: Reason) {
        self.counters().reject(reason);
        if let Answer::Rpc {
            peer, request_id, ..
        } = &answer
        {
            self.owe_penalty(*request_id, *peer, reason);
        }
        self.respond(answer, SubmitAck::Rejected(reason.label().into()));
    }

    /// Penalise `peer` for `reason` once the answer to `request_id` is out.
    pub(super) fn owe_penalty(
        &mut self,
        request_id: InboundRequestId,
        peer: PeerId,
        reason: Reason,
    ) {
        if reason.penalises() || reason == Reason::RateLimited {
            self.door.owed.insert(request_id, (peer, reason));
        }
    }

    /// The answer to `request_id` was sent or could not be: apply what it owes.
    pub(super) fn answered(&mut self, request_id: InboundRequestId) {
        if let Some((peer, reason)) = self.door.owed.remove(&request_id) {
            self.penalise_for(peer, reason);
        }
    }

    fn respond(&mut self, answer: Answer, ack: SubmitAck) {
        match answer {
            Answer::Rpc { channel, .. } => {
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .rpc
                    .send_response(channel, Response::Submit(ack));
            }
            Answer::Local(reply) => {
                let _ = reply.send(Ok(ack));
            }
        }
    }

    /// An admitted submission: remembered against replays and passed on to peers (in the
    /// next submission batch, or gossiped on its own).
    fn admitted(&mut self, id: Hash32, bytes: &[u8], now: Instant) {
        self.seen.insert(id, now);
        let len = bytes.len();
        if self.batching() {
            self.enqueue_submission(bytes, now);
        } else {
            match self
                .swarm
                .behaviour_mut()
                .gossipsub
                .publish(IdentTopic::new(Topic::Submissions.name()), bytes.to_vec())
            {
                Ok(_) => self
                    .counters()
                    .message(Topic::Submissions, "out", "sent", len),
                Err(e) => tracing::debug!("submission not gossiped: {e}"),
            }
        }
        self.counters().submission_accepted();
        self.counters()
            .message(Topic::Submissions, "in", "accept", len);
    }
}
