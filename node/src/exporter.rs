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

/// What the node serves beside `/metrics`: `GET /status` (JSON) and `POST /challenge` (an
/// owner-signed registry change; anyone may relay one, only the owner's signature counts).
pub trait Api: Send + Sync + 'static {
    /// The status document.
    fn status(&self) -> String;
    /// Handle a challenge post; `Ok` text or `Err` reason.
    fn post_challenge(&self, body: Vec<u8>) -> Result<String, String>;
}

/// A running exporter; stops its thread on drop.
pub struct Exporter {
    addr: SocketAddr,
    handle: PrometheusHandle,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

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
        let thread = std::thread::Builder::new()
            .name("platform-metrics".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    if s.load(Ordering::Relaxed) {
                        break;
                    }
                    if let Ok(c) = conn {
                        serve(c, &h, api.as_deref());
                    }
                }
            })
            .map_err(|e| ExporterError::Setup(format!("thread: {e}")))?;
        Ok(Exporter {
            addr,
            handle,
            stop,
            thread: Some(thread),
        })
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

impl Drop for Exporter {
    fn drop(&mut self) {
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
fn serve(stream: TcpStream, handle: &PrometheusHandle, api: Option<&dyn Api>) {
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
        (Some("GET"), Some(_), _) => (
            "404 Not Found",
            text,
            "not found: try /metrics\n".to_string(),
        ),
        _ => ("405 Method Not Allowed", text, "GET /metrics\n".to_string()),
    };
    crate::http::respond(&stream, status, ctype, &body);
}
