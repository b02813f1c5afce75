//! The miner client: sign a submission with a miner hotkey and deliver it to a validator
//! over `/platform/rpc/1`; the validator checks it, gossips it and answers with its id or
//! the reason it refused it. A client may first bind its connection to its hotkey (hello),
//! which validators with `unbound_peers = "refuse"` require.

use std::path::PathBuf;
use std::time::Duration;

use futures::StreamExt;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, noise, tcp, yamux};
use platform_keys::Keypair;

use crate::api::NetError;
use crate::codec::{PROTOCOL, RpcCodec};
use crate::wire::{
    Binding, ENVELOPE_OVERHEAD, Request, Response, Scheme, Submission, SubmitAck, now_ms,
};

/// Deliver signed envelope bytes to the validator at `addr` (a multiaddr ending in
/// `/p2p/PEER_ID`) and wait for its answer.
pub fn deliver(addr: &str, envelope: Vec<u8>, timeout: Duration) -> Result<SubmitAck, NetError> {
    MinerClient::connect(addr, timeout)?.submit(envelope)
}

/// [`deliver`] over a connection first bound to `key` (signed as `scheme` says).
pub fn deliver_bound(
    addr: &str,
    envelope: Vec<u8>,
    timeout: Duration,
    key: &Keypair,
    scheme: Scheme,
) -> Result<SubmitAck, NetError> {
    MinerClient::connect_bound(addr, timeout, Some((key, scheme)))?.submit(envelope)
}

type Pending = (
    Vec<u8>,
    crossbeam_channel::Sender<Result<SubmitAck, NetError>>,
);

/// A miner's connection to one validator, kept open for many submissions (load tools,
/// miners that submit often): one libp2p swarm on its own thread, requests pipelined.
#[derive(Debug)]
pub struct MinerClient {
    tx: Option<tokio::sync::mpsc::UnboundedSender<Pending>>,
    thread: Option<std::thread::JoinHandle<()>>,
    timeout: Duration,
}

impl MinerClient {
    /// Start a client for the validator at `addr` (ending in `/p2p/PEER_ID`); it dials on
    /// the first submission. Each submission gets an answer within `timeout`.
    pub fn connect(addr: &str, timeout: Duration) -> Result<MinerClient, NetError> {
        MinerClient::connect_bound(addr, timeout, None)
    }

    /// [`MinerClient::connect`], and with `bind` the connection is first bound to that
    /// hotkey: a hello with a binding record goes out before any submission, which waits for
    /// its answer.
    pub fn connect_bound(
        addr: &str,
        timeout: Duration,
        bind: Option<(&Keypair, Scheme)>,
    ) -> Result<MinerClient, NetError> {
        let addr: Multiaddr = addr
            .parse()
            .map_err(|e| NetError::Address(format!("{addr}: {e}")))?;
        let Some(libp2p::multiaddr::Protocol::P2p(peer)) = addr.iter().last() else {
            return Err(NetError::Address(format!(
                "{addr} must end in /p2p/PEER_ID"
            )));
        };
        let max_request =
            crate::NetConfig::default().max_payload_bytes.submissions + ENVELOPE_OVERHEAD + 16;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| NetError::Other(format!("runtime: {e}")))?;
        let mut swarm = libp2p::SwarmBuilder::with_new_identity()
            .with_tokio()
            .with_tcp(
                tcp::Config::default().nodelay(true),
                noise::Config::new,
                yamux::Config::default,
            )
            .map_err(|e| NetError::Other(e.to_string()))?
            .with_behaviour(|_| {
                request_response::Behaviour::with_codec(
                    RpcCodec {
                        max_request,
                        max_response: 1024,
                    },
                    [(PROTOCOL, ProtocolSupport::Outbound)],
                    request_response::Config::default().with_request_timeout(timeout),
                )
            })
            .map_err(|e| NetError::Other(e.to_string()))?
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
            .build();
        swarm.add_peer_address(peer, addr.clone());
        let mut hello = bind.map(|(key, scheme)| {
            Binding::sign_as(scheme, key, swarm.local_peer_id().to_bytes(), now_ms()).encode()
        });
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Pending>();
        let thread = std::thread::Builder::new()
            .name("platform-miner".into())
            .spawn(move || {
                rt.block_on(async move {
                    let mut waiting = std::collections::HashMap::new();
                    // Submissions held back until the hello is answered (or has failed).
                    let mut held: Option<Vec<Pending>> = None;
                    let mut hello_id = None;
                    loop {
                        tokio::select! {
                            cmd = rx.recv() => match cmd {
                                Some(pending) => {
                                    if let Some(binding) = hello.take() {
                                        hello_id = Some(swarm.behaviour_mut().send_request(&peer, Request::Hello(binding)));
                                        held = Some(Vec::new());
                                    }
                                    match held.as_mut() {
                                        Some(h) => h.push(pending),
                                        None => {
                                            let id = swarm.behaviour_mut().send_request(&peer, Request::Submit(pending.0));
                                            waiting.insert(id, pending.1);
                                        }
                                    }
                                }
                                None => break,
                            },
                            ev = swarm.select_next_some() => match ev {
                                SwarmEvent::Behaviour(request_response::Event::Message {
                                    message: request_response::Message::Response { request_id, .. },
                                    ..
                                } | request_response::Event::OutboundFailure { request_id, .. }) if Some(request_id) == hello_id => {
                                    // Bound (or refused: the validator's answers will say so).
                                    hello_id = None;
                                    for (env, reply) in held.take().unwrap_or_default() {
                                        let id = swarm.behaviour_mut().send_request(&peer, Request::Submit(env));
                                        waiting.insert(id, reply);
                                    }
                                }
                                SwarmEvent::Behaviour(request_response::Event::Message {
                                    message: request_response::Message::Response { request_id, response },
                                    ..
                                }) => {
                                    if let Some(r) = waiting.remove(&request_id) {
                                        let _ = r.send(match response {
                                            Response::Submit(ack) => Ok(ack),
                                            _ => Err(NetError::Other("unexpected response".into())),
                                        });
                                    }
                                }
                                SwarmEvent::Behaviour(request_response::Event::OutboundFailure {
                                    request_id, error, ..
                                }) => {
                                    if let Some(r) = waiting.remove(&request_id) {
                                        let _ = r.send(Err(NetError::Other(format!("submit to {addr}: {error}"))));
                                    }
                                }
                                _ => {}
                            },
                        }
                    }
                });
            })
            .map_err(|e| NetError::Other(format!("thread: {e}")))?;
        Ok(MinerClient {
            tx: Some(tx),
            thread: Some(thread),
            timeout,
        })
    }

    /// Send signed envelope bytes; the answer arrives on the returned channel.
    pub fn send(
        &self,
        envelope: Vec<u8>,
    ) -> crossbeam_channel::Receiver<Result<SubmitAck, NetError>> {
        let (reply, rx) = crossbeam_channel::bounded(1);
        if let Some(tx) = &self.tx
            && let Err(e) = tx.send((envelope, reply))
        {
            let _ = e.0.1.send(Err(NetError::Stopped));
        }
        rx
    }

    /// Send signed envelope bytes and wait for the validator's answer.
    pub fn submit(&self, envelope: Vec<u8>) -> Result<SubmitAck, NetError> {
        self.send(envelope)
            .recv_timeout(self.timeout + Duration::from_secs(1))
            .map_err(|_| NetError::Timeout)?
    }
}

impl Drop for MinerClient {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Sign `submission` as `miner` and deliver it to the validator at `addr`.
pub fn submit(
    addr: &str,
    miner: &Keypair,
    submission: &Submission,
    timeout: Duration,
) -> Result<SubmitAck, NetError> {
    let env = submission.sign(miner, now_ms());
    deliver(addr, env.encode(), timeout)
}

/// `submit`: sign a payload with a miner hotkey and send it to a validator.
#[derive(Clone, Debug, clap::Args)]
pub struct SubmitArgs {
    /// The validator's address, a multiaddr ending in /p2p/PEER_ID (its log and `status`
    /// print it).
    #[arg(long)]
    pub to: String,
    /// The miner's Bittensor hotkey file (JSON with `secretSeed`).
    #[arg(long, conflicts_with = "seed")]
    pub hotkey_file: Option<PathBuf>,
    /// The miner's secret seed as hex, instead of a hotkey file.
    #[arg(long)]
    pub seed: Option<String>,
    /// The challenge id.
    #[arg(long)]
    pub challenge: u32,
    /// The epoch the submission is for.
    #[arg(long)]
    pub epoch: u64,
    /// The file holding the payload.
    #[arg(long)]
    pub payload: PathBuf,
    /// How long to wait for the validator's answer.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Sign as Bittensor tooling does (envelope and binding record version 2: the standard
    /// Substrate context over a domain-separated message) instead of the version-1 platform
    /// context.
    #[arg(long)]
    pub substrate_signing: bool,
}

/// Run `submit`: prints the accepted id, or fails with the validator's reason.
pub fn run_submit(args: &SubmitArgs) -> anyhow::Result<String> {
    use anyhow::Context as _;
    let miner = match (&args.hotkey_file, &args.seed) {
        (Some(f), _) => Keypair::from_hotkey_file(f)?,
        (None, Some(s)) => Keypair::from_seed_hex(s)?,
        (None, None) => anyhow::bail!("give --hotkey-file or --seed"),
    };
    let body = std::fs::read(&args.payload)
        .with_context(|| format!("reading {}", args.payload.display()))?;
    let limit = crate::NetConfig::default().max_payload_bytes.submissions - ENVELOPE_OVERHEAD;
    if body.len() > limit {
        anyhow::bail!(
            "payload of {} bytes exceeds the gossip limit of {limit}",
            body.len()
        );
    }
    let submission = Submission {
        challenge: args.challenge,
        epoch: args.epoch,
        body,
    };
    let scheme = if args.substrate_signing {
        crate::wire::Scheme::Substrate
    } else {
        crate::wire::Scheme::Platform
    };
    let env = submission.sign_as(scheme, &miner, now_ms());
    match deliver_bound(&args.to, env.encode(), args.timeout, &miner, scheme)? {
        SubmitAck::Accepted(id) => Ok(hex::encode(id)),
        SubmitAck::Rejected(reason) => anyhow::bail!("the validator refused it: {reason}"),
    }
}
