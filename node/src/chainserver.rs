//! The devnet's one shared simulated subtensor: the real [`SimChain`] (the pallet's checks)
//! behind a small loopback HTTP/JSON endpoint, producing a block every `block_time`, so every
//! validator of a devnet reads the same blocks and metagraphs and sets its weights on the
//! same chain. [`RemoteChain`] is the validator's [`Chain`] over it.
//!
//! Like a development chain, it trusts the hotkey a call names (no extrinsic signatures):
//! it is for loopback devnets only, never a real subnet.
//!
//! Endpoints: `GET /block`, `GET /metagraph/<netuid>[/<block>]`, `GET /hyperparams/<netuid>`,
//! `GET /weights/<netuid>[/<mecid>]`, `GET /mechanisms/<netuid>` (the mechanism count),
//! `POST /call` (a weights call as JSON, for a `mecid`, 0 by default), `POST /register`
//! (`{"hotkey": ss58, "stake": n}`: a neuron registered mid-run), `POST /mechanisms`
//! (`{"netuid": n, "count": c}`: the owner's mechanism count).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use platform_chain::sim::SimChain;
use platform_chain::{BlockInfo, Chain, ChainError, Metagraph};
use serde_json::{Value, json};

/// Largest request body read.
const BODY_MAX: usize = 1 << 20;

/// Threads serving the chain's HTTP interface.
const SERVERS: usize = 4;

/// A running shared chain; stops its threads on drop.
pub struct ChainServer {
    addr: SocketAddr,
    chain: Arc<Mutex<SimChain>>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for ChainServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainServer")
            .field("addr", &self.addr)
            .finish()
    }
}

impl ChainServer {
    /// Serve `chain` on `listen`, producing a block every `block_time`.
    pub fn start(
        listen: SocketAddr,
        chain: SimChain,
        block_time: Duration,
    ) -> std::io::Result<ChainServer> {
        let listener = TcpListener::bind(listen)?;
        let addr = listener.local_addr()?;
        let chain = Arc::new(Mutex::new(chain));
        let stop = Arc::new(AtomicBool::new(false));
        let producer = {
            let (chain, stop) = (chain.clone(), stop.clone());
            std::thread::Builder::new()
                .name("platform-chain-blocks".into())
                .spawn(move || {
                    let start = Instant::now();
                    let mut made = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let due =
                            (start.elapsed().as_nanos() / block_time.as_nanos().max(1)) as u64;
                        if due > made {
                            lock(&chain).advance(due - made);
                            made = due;
                        }
                        std::thread::sleep(Duration::from_millis(5));
                    }
                })?
        };
        // Several requests at once, as a chain node's RPC serves them: a validator reading
        // (and slowly parsing) a large metagraph must not hold back another's poll of the
        // head, or the validators see an epoch's end hundreds of milliseconds apart.
        let pinned = Arc::new(Mutex::new(PinnedCache::default()));
        let mut threads = vec![producer];
        for i in 0..SERVERS {
            let (chain, stop, pinned) = (chain.clone(), stop.clone(), pinned.clone());
            let listener = listener.try_clone()?;
            threads.push(
                std::thread::Builder::new()
                    .name(format!("platform-chain-http-{i}"))
                    .spawn(move || {
                        for conn in listener.incoming() {
                            if stop.load(Ordering::Relaxed) {
                                break;
                            }
                            if let Ok(c) = conn {
                                serve(&c, &chain, &pinned);
                            }
                        }
                    })?,
            );
        }
        Ok(ChainServer {
            addr,
            chain,
            stop,
            threads,
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The latest block.
    pub fn head(&self) -> u64 {
        lock(&self.chain).current_block().map_or(0, |b| b.number)
    }

    /// The chain itself (the devnet reads weights and registers neurons through it).
    pub fn chain(&self) -> Arc<Mutex<SimChain>> {
        self.chain.clone()
    }
}

impl Drop for ChainServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // One connection wakes each server thread, which sees `stop` and ends.
        for _ in 0..SERVERS {
            let _ = TcpStream::connect(self.addr);
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn lock(c: &Mutex<SimChain>) -> std::sync::MutexGuard<'_, SimChain> {
    c.lock().unwrap_or_else(|p| p.into_inner())
}

fn block_json(b: &BlockInfo) -> Value {
    json!({"number": b.number, "hash": hex::encode(b.hash)})
}

fn metagraph_json(m: &Metagraph) -> Value {
    json!({
        "netuid": m.netuid,
        "block": block_json(&m.block),
        "neurons": m.neurons.iter().map(|n| json!({
            "uid": n.uid, "hotkey": hex::encode(n.hotkey), "stake": n.stake,
            "permit": n.validator_permit,
        })).collect::<Vec<_>>(),
    })
}

fn error_json(e: &ChainError) -> Value {
    match e {
        ChainError::Pallet(p) => json!({"error": {"pallet": p.to_string()}}),
        other => json!({"error": {"other": other.to_string()}}),
    }
}

/// Answers for metagraphs at a given block: immutable once the block exists, and asked by
/// every validator at each epoch start, so each is built (and serialised) once.
#[derive(Default)]
struct PinnedCache(std::collections::VecDeque<(String, Arc<str>)>);

impl PinnedCache {
    const MAX: usize = 16;

    fn get(&self, path: &str) -> Option<Arc<str>> {
        self.0
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, b)| b.clone())
    }

    fn put(&mut self, path: &str, body: Arc<str>) {
        if self.0.len() >= Self::MAX {
            self.0.pop_front();
        }
        self.0.push_back((path.to_string(), body));
    }
}

fn serve(stream: &TcpStream, chain: &Mutex<SimChain>, pinned: &Mutex<PinnedCache>) {
    let Some(mut req) = crate::http::read_head(stream) else {
        return;
    };
    let mut parts = req.line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let mut body = Vec::new();
    if req.content_length > BODY_MAX {
        return crate::http::respond(stream, "413 Payload Too Large", "text/plain", "too large\n");
    }
    if req.content_length > 0 {
        body.resize(req.content_length, 0);
        if std::io::Read::read_exact(&mut req.reader, &mut body).is_err() {
            return crate::http::respond(stream, "400 Bad Request", "text/plain", "short body\n");
        }
    }
    let seg: Vec<&str> = path.trim_matches('/').split('/').collect();
    let at_block = method == "GET" && seg.len() == 3 && seg[0] == "metagraph";
    let cached = at_block
        .then(|| pinned.lock().unwrap_or_else(|p| p.into_inner()).get(path))
        .flatten();
    if let Some(body) = cached {
        return crate::http::respond(stream, "200 OK", "application/json", &body);
    }
    let answer: Result<Value, String> = (|| {
        let mut c = lock(chain);
        let num = |i: usize| -> Result<u64, String> {
            seg.get(i)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| format!("{path}: expected a number"))
        };
        Ok(match (method, seg.first().copied().unwrap_or("")) {
            ("GET", "block") => block_json(&c.current_block().map_err(|e| e.to_string())?),
            ("GET", "metagraph") => {
                let netuid = num(1)? as u16;
                let m = match seg.get(2) {
                    Some(_) => c.metagraph_at(netuid, num(2)?),
                    None => c.metagraph(netuid),
                };
                drop(c); // serialised without holding up the chain's other readers
                match m {
                    Ok(m) => metagraph_json(&m),
                    Err(e) => error_json(&e),
                }
            }
            ("GET", "uid") => {
                let mut hotkey = [0u8; 32];
                hex::decode_to_slice(seg.get(2).copied().unwrap_or(""), &mut hotkey)
                    .map_err(|e| format!("{path}: hotkey: {e}"))?;
                match c.uid_of(num(1)? as u16, &hotkey) {
                    Ok(uid) => json!({ "uid": uid }),
                    Err(e) => error_json(&e),
                }
            }
            ("GET", "hyperparams") => match c.hyperparams(num(1)? as u16) {
                Ok(h) => json!({
                    "tempo": h.tempo, "commit_reveal_enabled": h.commit_reveal_enabled,
                    "commit_reveal_period": h.commit_reveal_period,
                    "weights_version_key": h.weights_version_key,
                    "weights_rate_limit": h.weights_rate_limit,
                    "min_allowed_weights": h.min_allowed_weights,
                    "max_weight_limit": h.max_weight_limit,
                }),
                Err(e) => error_json(&e),
            },
            ("GET", "weights") => {
                let mecid = if seg.len() > 2 { num(2)? as u8 } else { 0 };
                let w = c.all_mechanism_weights(num(1)? as u16, mecid);
                json!(
                    w.iter()
                        .map(|(uid, ws)| json!({"uid": uid, "weights": ws}))
                        .collect::<Vec<_>>()
                )
            }
            ("GET", "mechanisms") => match c.mechanism_count(num(1)? as u16) {
                Ok(n) => json!({"count": n}),
                Err(e) => error_json(&e),
            },
            ("POST", "mechanisms") => {
                let v: Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
                let netuid = v["netuid"].as_u64().unwrap_or(0) as u16;
                let count = u8::try_from(v["count"].as_u64().unwrap_or(0)).unwrap_or(0);
                match c.set_mechanism_count(netuid, count) {
                    Ok(()) => json!({"ok": true}),
                    Err(e) => error_json(&e),
                }
            }
            ("POST", "call") => {
                let v: Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
                match call(&mut c, &v) {
                    Ok(()) => json!({"ok": true}),
                    Err(e) => error_json(&e),
                }
            }
            ("POST", "register") => {
                let v: Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
                let hotkey = platform_keys::ss58_decode(v["hotkey"].as_str().unwrap_or(""))
                    .map_err(|e| e.to_string())?;
                let netuid = v["netuid"].as_u64().unwrap_or(0) as u16;
                match c.register(netuid, hotkey, v["stake"].as_u64().unwrap_or(0)) {
                    Ok(uid) => {
                        json!({"uid": uid, "block": c.current_block().map(|b| b.number).unwrap_or(0)})
                    }
                    Err(e) => error_json(&e),
                }
            }
            _ => return Err(format!("no such endpoint: {method} {path}")),
        })
    })();
    match answer {
        Ok(v) => {
            let body: Arc<str> = v.to_string().into();
            if at_block && v.get("error").is_none() {
                pinned
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .put(path, body.clone());
            }
            crate::http::respond(stream, "200 OK", "application/json", &body)
        }
        Err(e) => crate::http::respond(stream, "400 Bad Request", "text/plain", &(e + "\n")),
    }
}

pub(crate) fn hex32(v: &Value) -> Result<[u8; 32], ChainError> {
    hex::decode(v.as_str().unwrap_or(""))
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| ChainError::Malformed("expected 32 hex bytes".into()))
}

fn u16s(v: &Value) -> Vec<u16> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_u64())
                .map(|x| x as u16)
                .collect()
        })
        .unwrap_or_default()
}

fn call(c: &mut SimChain, v: &Value) -> Result<(), ChainError> {
    let hotkey = hex32(&v["hotkey"])?;
    let netuid = v["netuid"].as_u64().unwrap_or(0) as u16;
    let mecid = u8::try_from(v["mecid"].as_u64().unwrap_or(0))
        .map_err(|_| ChainError::Malformed("mecid is not a u8".into()))?;
    let version = v["version_key"].as_u64().unwrap_or(0);
    match v["call"].as_str().unwrap_or("") {
        "set_weights" => c.set_mechanism_weights(
            &hotkey,
            netuid,
            mecid,
            &u16s(&v["uids"]),
            &u16s(&v["values"]),
            version,
        ),
        "commit_weights" => c.commit_mechanism_weights(&hotkey, netuid, mecid, hex32(&v["hash"])?),
        "reveal_weights" => c.reveal_mechanism_weights(
            &hotkey,
            netuid,
            mecid,
            &u16s(&v["uids"]),
            &u16s(&v["values"]),
            &u16s(&v["salt"]),
            version,
        ),
        "commit_timelocked_weights" => c.commit_timelocked_mechanism_weights(
            &hotkey,
            netuid,
            mecid,
            &hex::decode(v["commit"].as_str().unwrap_or(""))
                .map_err(|e| ChainError::Malformed(e.to_string()))?,
            v["reveal_round"].as_u64().unwrap_or(0),
            v["version"].as_u64().unwrap_or(0) as u16,
        ),
        other => Err(ChainError::Encode(format!("unknown call {other}"))),
    }
}

mod remote;
pub use remote::{RemoteChain, WeightRows};

#[cfg(test)]
mod tests {
    use super::*;
    use platform_chain::PalletError;

    #[test]
    fn a_stalled_client_does_not_hold_up_another() {
        let chain = crate::chainsvc::sim_chain(3, 9, false, &[([1; 32], 100)]);
        let server = ChainServer::start(
            "127.0.0.1:0".parse().unwrap(),
            chain,
            Duration::from_millis(20),
        )
        .unwrap();
        // Connected first and sending nothing: a server thread waits on it (up to its read
        // timeout, then closes it).
        let stalled = TcpStream::connect(server.addr()).unwrap();
        let c = RemoteChain::new(&server.addr().to_string(), Duration::from_secs(30));
        c.current_block().unwrap();
        // Answered while the stalled connection is still open: not served after it.
        stalled.set_nonblocking(true).unwrap();
        let mut byte = [0u8; 1];
        let open = matches!(
            std::io::Read::read(&mut &stalled, &mut byte),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock
        );
        assert!(
            open,
            "the head was served only once the stalled client was given up on"
        );
    }

    #[test]
    fn validators_share_one_chain_over_loopback() {
        let key = platform_keys::Keypair::from_seed(&[1; 32]);
        let chain = crate::chainsvc::sim_chain(3, 9, false, &[(key.public(), 100), ([2; 32], 0)]);
        let server = ChainServer::start(
            "127.0.0.1:0".parse().unwrap(),
            chain,
            Duration::from_millis(20),
        )
        .unwrap();
        let mut c = RemoteChain::new(&server.addr().to_string(), Duration::from_secs(5));
        let b0 = c.current_block().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while c.current_block().unwrap().number < b0.number + 3 {
            assert!(Instant::now() < deadline, "no blocks produced");
            std::thread::sleep(Duration::from_millis(10));
        }
        let m = c.metagraph(3).unwrap();
        assert_eq!(m.neurons.len(), 2);
        assert!(m.neurons[0].validator_permit);
        // A neuron registered now lands in the next block: absent before, present after.
        let before = c.current_block().unwrap().number;
        let uid = c
            .register(3, &platform_keys::ss58_encode(&[7; 32]), 0)
            .unwrap();
        assert_eq!(uid, 2);
        assert_eq!(c.uid_of(3, &[7; 32]).unwrap(), None, "not before its block");
        assert_eq!(c.metagraph_at(3, before).unwrap().neurons.len(), 2);
        while c.current_block().unwrap().number <= before + 1 {
            assert!(Instant::now() < deadline, "no blocks produced");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(c.metagraph(3).unwrap().neurons.len(), 3);
        assert_eq!(c.uid_of(3, &[7; 32]).unwrap(), Some(2));
        assert_eq!(c.uid_of(3, &[8; 32]).unwrap(), None);
        assert_eq!(
            c.uid_of(99, &[7; 32]),
            Err(ChainError::Pallet(PalletError::SubnetNotExists))
        );
        assert_eq!(
            c.metagraph_at(3, before).unwrap().neurons.len(),
            2,
            "a past block never changes"
        );
        // Weights land on the shared chain; the pallet's checks answer with their names.
        c.set_weights(&key.public(), 3, &[1], &[65535], 0).unwrap();
        assert_eq!(c.all_weights(3).unwrap(), vec![(0, vec![(1, 65535)])]);
        assert_eq!(
            c.set_weights(&[2; 32], 3, &[1], &[65535], 0),
            Err(ChainError::Pallet(PalletError::NotEnoughStakeToSetWeights))
        );
        assert_eq!(
            c.metagraph(99).unwrap_err(),
            ChainError::Pallet(PalletError::SubnetNotExists)
        );
        assert!(
            c.metagraph_at(3, 1 << 40).is_err(),
            "a future block is an error"
        );
        // Mechanisms: the owner's count, then weights kept per mechanism.
        assert_eq!(c.mechanism_count(3).unwrap(), 1);
        assert_eq!(
            c.set_mechanism_weights(&key.public(), 3, 1, &[1], &[65535], 0),
            Err(ChainError::Pallet(PalletError::MechanismDoesNotExist))
        );
        c.set_mechanism_count(3, 2).unwrap();
        assert_eq!(c.mechanism_count(3).unwrap(), 2);
        c.set_mechanism_weights(&key.public(), 3, 1, &[0, 1], &[9, 65535], 0)
            .unwrap();
        assert_eq!(
            c.mechanism_weights(3, 1, 0).unwrap(),
            vec![(0, 9), (1, 65535)]
        );
        assert_eq!(
            c.weights(3, 0).unwrap(),
            vec![(1, 65535)],
            "mechanism 0 kept"
        );
        assert!(c.set_mechanism_count(3, 0).is_err());
    }
}
