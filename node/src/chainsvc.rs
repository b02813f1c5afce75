//! The chain client thread: owns the [`Chain`] (a simulated subtensor in process, the
//! devnet's shared one, or a subxt client) and the [`WeightSubmitter`], so slow or failing
//! chain calls never stall consensus. It reports each new finalised block, reads the
//! metagraph at the blocks epochs pin, submits committed weights, reveals due commits, and
//! publishes what it did for `status` and metrics.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use platform_chain::sim::{SimChain, SubnetGenesis};
use platform_chain::submit::{Reveal, Submitted, WeightSubmitter};
use platform_chain::{Chain, Hyperparams, Metagraph};

use crate::machine::{Pin, Roster};

/// What the application asks of the chain thread.
#[derive(Clone, Debug)]
pub enum ChainJob {
    /// Submit a committed epoch's weights.
    Weights(WeightsJob),
    /// Read the metagraph at an epoch's pinned block.
    Roster {
        /// The epoch.
        epoch: u64,
        /// Its first block.
        block: u64,
    },
}

/// What the chain thread tells the application.
#[derive(Clone, Debug)]
pub enum ChainEvent {
    /// A new latest finalised block.
    Block(u64),
    /// The metagraph at an epoch's pinned block.
    Roster {
        /// The epoch.
        epoch: u64,
        /// What was read.
        roster: Roster,
    },
    /// It could not be read.
    RosterUnavailable {
        /// The epoch.
        epoch: u64,
        /// Why.
        reason: String,
    },
}

/// The roster a metagraph gives.
pub fn roster_of(m: &Metagraph) -> Roster {
    let (validators, miners) = split_metagraph(m);
    Roster::new(
        Pin {
            block: m.block.number,
            hash: m.block.hash,
        },
        validators,
        miners,
    )
    .with_stake_kind(m.stake_kind)
}

/// A committed epoch's weights to submit.
#[derive(Clone, Debug)]
pub struct WeightsJob {
    /// The epoch.
    pub epoch: u64,
    /// The subnet mechanism they go to.
    pub mecid: u8,
    /// Uids.
    pub uids: Vec<u16>,
    /// Integer weights (any scale; conformed by the submitter).
    pub weights: Vec<u64>,
}

/// What the chain thread last did (for `status`).
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct ChainStatus {
    /// Where this node's hotkey stood on the subnet at start (registered, permit, stake).
    pub standing: String,
    /// Latest block seen.
    pub block: u64,
    /// Last epoch whose weights were submitted.
    pub last_epoch: Option<u64>,
    /// What happened to it.
    pub last_outcome: String,
    /// What the chain holds as this validator's weights (uid, u16 value), where readable.
    pub onchain_weights: Vec<(u16, u16)>,
    /// Submissions that failed.
    pub errors: u64,
    /// Hash commits waiting for their reveal.
    pub pending_reveals: Vec<PendingReveal>,
    /// The subnet's incentive mechanisms (`MechanismCountCurrent`), as last read (at start
    /// and with each epoch's metagraph).
    pub mechanism_count: Option<u8>,
    /// The same as `last_epoch`, `last_outcome` and `onchain_weights` (which are mechanism
    /// 0's) for each other mechanism a challenge sends weights to.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub mechanisms: std::collections::BTreeMap<u8, MechanismStatus>,
}

/// What the chain thread last did for one mechanism other than 0 (for `status`).
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct MechanismStatus {
    /// Last epoch whose weights were submitted.
    pub last_epoch: Option<u64>,
    /// What happened to it.
    pub last_outcome: String,
    /// What the chain holds as this validator's weights for the mechanism.
    pub onchain_weights: Vec<(u16, u16)>,
}

impl ChainStatus {
    /// Record what happened to `epoch`'s weights for `mecid`.
    fn outcome(&mut self, mecid: u8, epoch: u64, outcome: String) {
        if mecid == 0 {
            self.last_epoch = Some(epoch);
            self.last_outcome = outcome;
        } else {
            let m = self.mechanisms.entry(mecid).or_default();
            m.last_epoch = Some(epoch);
            m.last_outcome = outcome;
        }
    }

    fn onchain(&mut self, mecid: u8, weights: Vec<(u16, u16)>) {
        if mecid == 0 {
            self.onchain_weights = weights;
        } else {
            self.mechanisms.entry(mecid).or_default().onchain_weights = weights;
        }
    }
}

/// The weight submitters of the subnet's mechanisms: mechanism 0's, and each other one's
/// made when its first weights come (or at start, where it has commits to reveal).
struct Submitters(std::collections::BTreeMap<u8, WeightSubmitter>);

impl Submitters {
    fn new(base: WeightSubmitter) -> Submitters {
        let mut all = std::collections::BTreeMap::new();
        let pending = base.pending_mechanisms().unwrap_or_default();
        for m in pending {
            match base.for_mechanism(m) {
                Ok(s) => {
                    all.insert(m, s);
                }
                Err(e) => tracing::warn!(mecid = m, "pending commits of mechanism {m}: {e}"),
            }
        }
        all.insert(0, base);
        Submitters(all)
    }

    fn get(&mut self, mecid: u8) -> Result<&mut WeightSubmitter, platform_chain::ChainError> {
        if !self.0.contains_key(&mecid) {
            let s = self.0[&0].for_mechanism(mecid)?;
            self.0.insert(mecid, s);
        }
        Ok(self.0.get_mut(&mecid).expect("inserted"))
    }
}

/// A hash commit waiting for its reveal (for `status`).
#[derive(Clone, Debug, serde::Serialize)]
pub struct PendingReveal {
    /// The epoch whose weights it commits.
    pub epoch: u64,
    /// The subnet mechanism it commits to.
    pub mecid: u8,
    /// The head when it was sent (unknown for commits stored by an earlier release).
    pub commit_block: Option<u64>,
    /// First block the chain takes its reveal.
    pub reveal_from: Option<u64>,
    /// Last block the chain takes its reveal.
    pub reveal_until: Option<u64>,
}

/// The simulated subnet for `[chain] mode = "sim"`: every validator building it from the
/// same config gets the same chain.
pub fn sim_chain(
    netuid: u16,
    tempo: u16,
    commit_reveal: bool,
    neurons: &[([u8; 32], u64)],
) -> SimChain {
    SimChain::new(
        [0x5a; 32],
        vec![SubnetGenesis {
            netuid,
            hyperparams: Hyperparams {
                tempo,
                commit_reveal_enabled: commit_reveal,
                commit_reveal_period: 1,
                weights_version_key: 0,
                weights_rate_limit: 1,
                min_allowed_weights: 1,
                max_weight_limit: u16::MAX,
            },
            max_uids: 4096,
            max_validators: 64,
            min_stake_to_set_weights: 1,
            neurons: neurons.to_vec(),
        }],
    )
}

/// The chain a node talks to.
#[allow(clippy::large_enum_variant)]
pub enum Backend {
    /// The simulated subtensor, producing a block every `block_time`.
    Sim {
        /// The chain.
        chain: SimChain,
        /// Wall-clock time per block.
        block_time: Duration,
    },
    /// The devnet's shared simulated subtensor, over loopback.
    Remote(crate::chainserver::RemoteChain),
    /// A subtensor node.
    Subtensor(platform_chain::subtensor::Subtensor),
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::Sim { .. } => "Backend::Sim",
            Backend::Remote(_) => "Backend::Remote",
            Backend::Subtensor(_) => "Backend::Subtensor",
        })
    }
}

impl Backend {
    /// The chain.
    pub fn chain(&mut self) -> &mut dyn Chain {
        match self {
            Backend::Sim { chain, .. } => chain,
            Backend::Remote(c) => c,
            Backend::Subtensor(c) => c,
        }
    }

    /// The chain, for reads.
    pub fn chain_ref(&self) -> &dyn Chain {
        match self {
            Backend::Sim { chain, .. } => chain,
            Backend::Remote(c) => c,
            Backend::Subtensor(c) => c,
        }
    }

    /// How often the head is polled.
    fn poll_interval(&self) -> Duration {
        match self {
            Backend::Sim { .. } | Backend::Remote(_) => Duration::from_millis(50),
            Backend::Subtensor(_) => Duration::from_secs(2),
        }
    }
}

/// Run the chain thread until `jobs` closes.
pub fn run(
    mut backend: Backend,
    submitter: WeightSubmitter,
    netuid: u16,
    hotkey: [u8; 32],
    jobs: Receiver<ChainJob>,
    events: Sender<ChainEvent>,
    status: Arc<Mutex<ChainStatus>>,
) {
    let start = Instant::now();
    let mut blocks_made = 0u64;
    let mut head = None;
    let poll = backend.poll_interval();
    let mut submitters = Submitters::new(submitter);
    show_pending(&submitters, &status); // what a restarted node still has to reveal
    read_mechanisms(&backend, netuid, &status);
    let mut last_poll = Instant::now() - poll;
    loop {
        let mut batch = Vec::new();
        match jobs.recv_timeout(poll / 2) {
            Ok(job) => batch.push(job),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        batch.extend(jobs.try_iter());
        // Roster reads first: an epoch waits on them; weights can wait a little.
        batch.sort_by_key(|j| matches!(j, ChainJob::Weights(_)));
        for job in batch {
            match job {
                ChainJob::Roster { epoch, block } => {
                    read_mechanisms(&backend, netuid, &status);
                    let ev = match backend.chain().metagraph_at(netuid, block) {
                        Ok(m) => ChainEvent::Roster {
                            epoch,
                            roster: roster_of(&m),
                        },
                        Err(e) => ChainEvent::RosterUnavailable {
                            epoch,
                            reason: e.to_string(),
                        },
                    };
                    let _ = events.send(ev);
                }
                ChainJob::Weights(job) => submit(
                    &mut backend,
                    &mut submitters,
                    netuid,
                    &hotkey,
                    &job,
                    &status,
                ),
            }
        }
        if let Backend::Sim { chain, block_time } = &mut backend {
            let due = (start.elapsed().as_nanos() / block_time.as_nanos().max(1)) as u64;
            if due > blocks_made {
                chain.advance(due - blocks_made);
                blocks_made = due;
            }
        }
        if last_poll.elapsed() < poll {
            continue;
        }
        last_poll = Instant::now();
        match backend.chain().current_block() {
            Ok(b) => {
                status.lock().unwrap_or_else(|p| p.into_inner()).block = b.number;
                metrics::gauge!(crate::metrics::BLOCK).set(b.number as f64);
                if head != Some(b.number) {
                    head = Some(b.number);
                    let _ = events.send(ChainEvent::Block(b.number));
                    reveal(
                        &mut backend,
                        &mut submitters,
                        (netuid, &hotkey),
                        b.number,
                        &status,
                    );
                }
            }
            Err(e) => tracing::debug!("chain head: {e}"),
        }
    }
}

fn submit(
    backend: &mut Backend,
    submitters: &mut Submitters,
    netuid: u16,
    hotkey: &[u8; 32],
    job: &WeightsJob,
    status: &Mutex<ChainStatus>,
) {
    let mecid = job.mecid;
    let r = submitters
        .get(mecid)
        .and_then(|s| s.submit(backend.chain(), job.epoch, &job.uids, &job.weights));
    let outcome = match &r {
        Ok(Submitted::Set { uids, .. }) => format!("set {} weights", uids.len()),
        Ok(Submitted::Timelocked { reveal_round }) => {
            format!("timelocked commit, reveal at drand round {reveal_round}")
        }
        Ok(Submitted::Committed { window, .. }) => format!(
            "hash commit, reveal in blocks {}–{}",
            window.first_block, window.last_block
        ),
        Ok(Submitted::Nothing) => "nothing to set (all weights zero)".to_string(),
        Ok(Submitted::RateLimited { until_block }) => {
            format!("not sent: rate-limited until block {until_block}")
        }
        Err(e) => format!("error: {e}"),
    };
    let label = match &r {
        Ok(Submitted::RateLimited { .. }) => "rate_limited",
        Ok(_) => "ok",
        Err(e) => e.label(),
    };
    metrics::counter!(crate::metrics::WEIGHTS, "result" => label).increment(1);
    if r.is_err() {
        tracing::warn!(epoch = job.epoch, mecid, "weights not submitted: {outcome}");
    } else {
        tracing::info!(epoch = job.epoch, mecid, "weights: {outcome}");
    }
    {
        let mut s = status.lock().unwrap_or_else(|p| p.into_inner());
        s.outcome(mecid, job.epoch, outcome);
        s.errors += u64::from(r.is_err());
    }
    if let Ok(Submitted::Committed { .. }) = &r {
        show_pending(submitters, status);
    }
    if let Ok(Submitted::Set { uids, values }) = &r {
        let uid = submitters.get(mecid).ok().and_then(|s| s.uid());
        read_back(
            backend,
            (netuid, mecid, hotkey, uid),
            Some((uids, values)),
            status,
        );
    }
}

/// Reveal the hash commits due at `block` (at most once a block: nothing is sent outside a
/// commit's window), then show what is pending.
fn reveal(
    backend: &mut Backend,
    submitters: &mut Submitters,
    (netuid, hotkey): (u16, &[u8; 32]),
    block: u64,
    status: &Mutex<ChainStatus>,
) {
    let mut changed = false;
    for submitter in submitters.0.values_mut() {
        changed |= reveal_one(backend, submitter, (netuid, hotkey), block, status);
    }
    // Waiting changes nothing: the pending list is shown again only when it changed.
    if changed {
        show_pending(submitters, status);
    }
}

/// [`reveal`] for one mechanism; whether its pending list changed.
fn reveal_one(
    backend: &mut Backend,
    submitter: &mut WeightSubmitter,
    (netuid, hotkey): (u16, &[u8; 32]),
    block: u64,
    status: &Mutex<ChainStatus>,
) -> bool {
    let mecid = submitter.mecid();
    match submitter.reveal_due(backend.chain(), block) {
        Ok(outcomes) => {
            let changed = outcomes
                .iter()
                .any(|r| !matches!(r, Reveal::Waiting { .. }));
            for r in outcomes {
                let label = match &r {
                    Reveal::Waiting { .. } => continue,
                    Reveal::Revealed {
                        epoch,
                        uids,
                        values,
                    } => {
                        tracing::info!(epoch, block, mecid, "weights revealed");
                        let me = (netuid, mecid, hotkey, submitter.uid());
                        read_back(backend, me, Some((uids, values)), status);
                        "revealed"
                    }
                    Reveal::TooEarly { epoch } => {
                        tracing::debug!(epoch, "reveal too early (a commit without a window)");
                        "too_early"
                    }
                    Reveal::Missed { epoch, last_block } => {
                        tracing::warn!(epoch, last_block, "reveal window passed: commit dropped");
                        "missed"
                    }
                    Reveal::Dropped { epoch, error } => {
                        tracing::warn!(epoch, "the chain will not take the reveal: {error}");
                        "dropped"
                    }
                    Reveal::Failed {
                        epoch,
                        error,
                        retry_at,
                    } => {
                        tracing::warn!(epoch, retry_at, "reveal failed: {error}");
                        "failed"
                    }
                };
                metrics::counter!(crate::metrics::REVEALS, "outcome" => label).increment(1);
            }
            changed
        }
        Err(e) => {
            tracing::warn!(mecid, "pending commits: {e}");
            false
        }
    }
}

/// Read the subnet's mechanism count into `status` (kept as it was when unreadable).
fn read_mechanisms(backend: &Backend, netuid: u16, status: &Mutex<ChainStatus>) {
    match backend.chain_ref().mechanism_count(netuid) {
        Ok(n) => {
            status
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .mechanism_count = Some(n)
        }
        Err(e) => tracing::debug!("mechanism count: {e}"),
    }
}

/// Put the pending hash commits, with their reveal windows, into `status`.
fn show_pending(submitters: &Submitters, status: &Mutex<ChainStatus>) {
    let mut all = Vec::new();
    for (mecid, s) in &submitters.0 {
        for (epoch, p) in s.pending().unwrap_or_default() {
            all.push(PendingReveal {
                epoch,
                mecid: *mecid,
                commit_block: p.window.map(|w| w.commit_block),
                reveal_from: p.window.map(|w| w.first_block),
                reveal_until: p.window.map(|w| w.last_block),
            });
        }
    }
    status
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .pending_reveals = all;
}

/// Read our weights back from the chain after a set or reveal, into `status`, and compare
/// them with what we meant to set (`meant`: uids and values as sent): a difference is logged
/// and counted.
///
/// Our uid is the one the submitter found when it submitted; only without one (a reveal
/// after a restart) is the chain asked for it.
fn read_back(
    backend: &Backend,
    (netuid, mecid, hotkey, uid): (u16, u8, &[u8; 32], Option<u16>),
    meant: Option<(&[u16], &[u16])>,
    status: &Mutex<ChainStatus>,
) {
    let chain = backend.chain_ref();
    let uid = match uid {
        Some(u) => Ok(Some(u)),
        None => chain.uid_of(netuid, hotkey),
    };
    let read = uid.and_then(|u| {
        u.map_or(Ok(Vec::new()), |u| {
            chain.mechanism_weights(netuid, mecid, u)
        })
    });
    let onchain = match read {
        Ok(w) => w,
        Err(e) => {
            tracing::debug!("reading our weights back: {e}");
            metrics::counter!(crate::metrics::READBACK, "result" => "unreadable").increment(1);
            return;
        }
    };
    if let Some((uids, values)) = meant {
        let mut want: Vec<(u16, u16)> = uids.iter().copied().zip(values.iter().copied()).collect();
        let mut got = onchain.clone();
        want.sort_unstable();
        got.sort_unstable();
        let result = if want == got {
            "match"
        } else {
            tracing::warn!(?want, ?got, "the chain holds other weights than we sent");
            "mismatch"
        };
        metrics::counter!(crate::metrics::READBACK, "result" => result).increment(1);
    }
    status
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .onchain(mecid, onchain);
}

/// Hotkey → uid.
pub type Uids = std::collections::BTreeMap<[u8; 32], u16>;

/// The validator set and miner uids a metagraph gives: (hotkey, stake) of permit holders,
/// and every neuron's hotkey → uid.
pub fn split_metagraph(m: &Metagraph) -> (Vec<([u8; 32], u64)>, Uids) {
    let validators = m
        .neurons
        .iter()
        .filter(|n| n.validator_permit && n.stake > 0)
        .map(|n| (n.hotkey, n.stake))
        .collect();
    let uids = m.neurons.iter().map(|n| (n.hotkey, n.uid)).collect();
    (validators, uids)
}
