//! The `/metrics` endpoint: the `metrics` facade's Prometheus recorder (no tokio, no hyper:
//! nothing async runs beside the shards) rendered on demand by one small HTTP thread.
//! Histograms get explicit buckets; `platform_build_info` carries the version.

use std::io::Read as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Why the exporter could not start.
#[derive(Debug, thiserror::Error)]
pub enum ExporterError {
    /// The listen address could not be bound.
    #[error("metrics: cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// Bucket configuration refused, or a recorder is already installed.
    #[error("metrics: {0}")]
    Setup(String),
}

/// Largest request body the API reads (a challenge post carries a module).
pub const BODY_MAX_BYTES: usize = 32 << 20;

/// Largest `POST /submission` body: a signed envelope within the submission limit.
pub const SUBMISSION_MAX_BYTES: usize = 256 << 10;

/// Requests the API serves at once (each on its own thread); beyond, `503` at once.
pub const API_CONCURRENCY: usize = 64;

/// `POST /submission`s one client address may make per second (and its burst).
pub const SUBMISSION_RATE: f64 = 50.0;
const SUBMISSION_BURST: f64 = 100.0;
/// Client addresses whose buckets are kept; beyond, the table starts afresh.
const SUBMISSION_CLIENTS: usize = 16_384;

/// Token buckets of `POST /submission` by client address.
#[derive(Default)]
struct SubmitLimiter {
    buckets:
        std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, (f64, std::time::Instant)>>,
}

impl SubmitLimiter {
    fn allow(&self, ip: std::net::IpAddr) -> bool {
        let now = std::time::Instant::now();
        let mut b = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if b.len() >= SUBMISSION_CLIENTS && !b.contains_key(&ip) {
            b.clear();
        }
        let (tokens, at) = b.entry(ip).or_insert((SUBMISSION_BURST, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * SUBMISSION_RATE)
            .min(SUBMISSION_BURST);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// What the node serves beside `/metrics`: `GET /status` (JSON), `POST /challenge` (an
/// owner-signed registry change; anyone may relay one, only the owner's signature counts)
/// and `POST /submission` (a miner's signed envelope, answered like `submit` over libp2p).
pub trait Api: Send + Sync + 'static {
    /// The status document.
    fn status(&self) -> String;
    /// Handle a challenge post; `Ok` text or `Err` reason.
    fn post_challenge(&self, body: Vec<u8>) -> Result<String, String>;
    /// Handle a miner's submission: `Ok` the accepted id (hex) or `Err` the reason (one of
    /// the `submit` reasons in docs/net-wire.md).
    fn submit(&self, envelope: Vec<u8>) -> Result<String, String>;
}

/// A running exporter; stops its thread on drop.
pub struct Exporter {
    addr: SocketAddr,
    handle: PrometheusHandle,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    /// Dropped to stop the upkeep thread, which is then joined.
    upkeep: Option<(crossbeam_channel::Sender<()>, JoinHandle<()>)>,
    upkeeps: Arc<std::sync::atomic::AtomicU64>,
}

/// How often histogram samples are folded into their buckets when nothing scrapes. The
/// recorder keeps every sample recorded since the last upkeep: without one, a node nobody
/// scrapes (a devnet, a validator without Prometheus) grows by every evaluation's samples.
pub const UPKEEP_EVERY: Duration = Duration::from_secs(5);

impl std::fmt::Debug for Exporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exporter")
            .field("addr", &self.addr)
            .finish()
    }
}

/// Histogram buckets by metric name.
pub fn buckets() -> Vec<(&'static str, &'static [f64])> {
    vec![
        (
            platform_engine::metrics::EVALUATION_DURATION,
            platform_engine::metrics::DURATION_BUCKETS_SECONDS,
        ),
        (
            crate::metrics::COMMIT_LATENCY,
            crate::metrics::COMMIT_BUCKETS_SECONDS,
        ),
        (
            crate::metrics::STORE_WRITE,
            crate::metrics::STORE_WRITE_BUCKETS_SECONDS,
        ),
    ]
}

impl Exporter {
    /// Install the global recorder and serve `GET /metrics` on `listen`.
    pub fn install(listen: SocketAddr) -> Result<Exporter, ExporterError> {
        Exporter::install_with_api(listen, None)
    }

    /// [`Exporter::install`], also serving `api`.
    pub fn install_with_api(
        listen: SocketAddr,
        api: Option<Arc<dyn Api>>,
    ) -> Result<Exporter, ExporterError> {
        Exporter::install_with(listen, api, UPKEEP_EVERY)
    }

    /// [`Exporter::install_with_api`], histograms kept up every `upkeep_every`.
    pub fn install_with(
        listen: SocketAddr,
        api: Option<Arc<dyn Api>>,
        upkeep_every: Duration,
    ) -> Result<Exporter, ExporterError> {
        let mut builder = PrometheusBuilder::new();
        for (name, b) in buckets() {
            builder = builder
                .set_buckets_for_metric(Matcher::Full(name.to_string()), b)
                .map_err(|e| ExporterError::Setup(e.to_string()))?;
        }
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        metrics::set_global_recorder(recorder)
            .map_err(|e| ExporterError::Setup(format!("recorder already installed: {e}")))?;
        metrics::gauge!("platform_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
        crate::metrics::register();
        let listener = TcpListener::bind(listen).map_err(|source| ExporterError::Bind {
            addr: listen,
            source,
        })?;
        let addr = listener
            .local_addr()
            .map_err(|source| ExporterError::Bind {
                addr: listen,
                source,
            })?;
        let stop = Arc::new(AtomicBool::new(false));
        let (h, s) = (handle.clone(), stop.clone());
        let limiter = Arc::new(SubmitLimiter::default());
        let active = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let thread = std::thread::Builder::new()
            .name("platform-metrics".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    if s.load(Ordering::Relaxed) {
                        break;
                    }
                    let Ok(c) = conn else { continue };
                    // Each request on its own thread (a submission waits for admission), at
                    // most API_CONCURRENCY at once.
                    if active.fetch_add(1, Ordering::AcqRel) >= API_CONCURRENCY {
                        active.fetch_sub(1, Ordering::AcqRel);
                        crate::http::respond(&c, "503 Service Unavailable", "text/plain", "busy\n");
                        continue;
                    }
                    let (h, api, limiter, done) =
                        (h.clone(), api.clone(), limiter.clone(), active.clone());
                    let spawned = std::thread::Builder::new()
                        .name("platform-api".into())
                        .spawn(move || {
                            serve(c, &h, api.as_deref(), &limiter);
                            done.fetch_sub(1, Ordering::AcqRel);
                        });
                    if spawned.is_err() {
                        active.fetch_sub(1, Ordering::AcqRel);
                    }
                }
            })
            .map_err(|e| ExporterError::Setup(format!("thread: {e}")))?;
        let upkeeps = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let upkeep = spawn_upkeep(handle.clone(), upkeep_every, upkeeps.clone())?;
        Ok(Exporter {
            addr,
            handle,
            stop,
            thread: Some(thread),
            upkeep: Some(upkeep),
            upkeeps,
        })
    }

    /// Upkeeps run so far by the upkeep thread (scrapes run their own).
    pub fn upkeeps(&self) -> u64 {
        self.upkeeps.load(Ordering::Relaxed)
    }

    /// The bound address (the port is chosen by the OS when the config says 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The current exposition text.
    pub fn render(&self) -> String {
        crate::metrics::update_process();
        self.handle.run_upkeep();
        self.handle.render()
    }
}

/// The thread that keeps the recorder's histograms folded (and the process gauges fresh)
/// every `every`, until its sender is dropped.
fn spawn_upkeep(
    handle: PrometheusHandle,
    every: Duration,
    runs: Arc<std::sync::atomic::AtomicU64>,
) -> Result<(crossbeam_channel::Sender<()>, JoinHandle<()>), ExporterError> {
    let (tx, rx) = crossbeam_channel::bounded::<()>(0);
    let thread = std::thread::Builder::new()
        .name("platform-metrics-upkeep".into())
        .spawn(move || {
            while let Err(crossbeam_channel::RecvTimeoutError::Timeout) = rx.recv_timeout(every) {
                crate::metrics::update_process();
                handle.run_upkeep();
                runs.fetch_add(1, Ordering::Relaxed);
            }
        })
        .map_err(|e| ExporterError::Setup(format!("thread: {e}")))?;
    Ok((tx, thread))
}

impl Drop for Exporter {
    fn drop(&mut self) {
        if let Some((tx, t)) = self.upkeep.take() {
            drop(tx);
            let _ = t.join();
        }
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(self.addr); // wake the accept loop
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One request: `GET /metrics` gets the exposition, `GET /status` and `POST /challenge` go
/// to the API; anything else 404 or 405. Slow or oversized requests are dropped; nothing a
/// client sends can stop the thread.
fn serve(
    stream: TcpStream,
    handle: &PrometheusHandle,
    api: Option<&dyn Api>,
    limiter: &SubmitLimiter,
) {
    let Some(req) = crate::http::read_head(&stream) else {
        return;
    };
    let (line, content_length, mut reader) = (req.line, req.content_length, req.reader);
    let mut parts = line.split_whitespace();
    let text = "text/plain; version=0.0.4; charset=utf-8";
    let (status, ctype, body) = match (parts.next(), parts.next(), api) {
        (Some("GET"), Some("/metrics"), _) => {
            crate::metrics::update_process();
            handle.run_upkeep();
            ("200 OK", text, handle.render())
        }
        (Some("GET"), Some("/status"), Some(api)) => ("200 OK", "application/json", api.status()),
        (Some("POST"), Some("/challenge"), Some(api)) => {
            if content_length > BODY_MAX_BYTES {
                (
                    "413 Payload Too Large",
                    text,
                    "body too large\n".to_string(),
                )
            } else {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
                let mut body = vec![0u8; content_length];
                match reader.read_exact(&mut body) {
                    Err(_) => ("400 Bad Request", text, "short body\n".to_string()),
                    Ok(()) => match api.post_challenge(body) {
                        Ok(m) => ("200 OK", text, m + "\n"),
                        Err(m) => ("400 Bad Request", text, m + "\n"),
                    },
                }
            }
        }
        (Some("POST"), Some("/submission"), Some(api)) => {
            let ip = stream.peer_addr().map(|a| a.ip());
            let refused = |status, reason: &str| {
                (
                    status,
                    "application/json",
                    format!("{{\"refused\":\"{reason}\"}}\n"),
                )
            };
            if content_length > SUBMISSION_MAX_BYTES {
                refused("413 Payload Too Large", "oversized")
            } else if ip.is_ok_and(|ip| !limiter.allow(ip)) {
                refused("429 Too Many Requests", "rate_limited")
            } else {
                let mut body = vec![0u8; content_length];
                match reader.read_exact(&mut body) {
                    Err(_) => refused("400 Bad Request", "malformed"),
                    Ok(()) => match api.submit(body) {
                        Ok(id) => (
                            "200 OK",
                            "application/json",
                            format!("{{\"accepted\":\"{id}\"}}\n"),
                        ),
                        Err(reason) => {
                            let status = match reason.as_str() {
                                "busy" => "503 Service Unavailable",
                                "rate_limited" => "429 Too Many Requests",
                                _ => "422 Unprocessable Entity",
                            };
                            refused(status, &reason)
                        }
                    },
                }
            }
        }
        (Some("GET"), Some(_), _) => (
            "404 Not Found",
            text,
            "not found: try /metrics\n".to_string(),
        ),
        _ => ("405 Method Not Allowed", text, "GET /metrics\n".to_string()),
    };
    crate::http::respond(&stream, status, ctype, &body);
}
