//! What the relay offers its operator beside the protocol: the data directory's lock (one
//! relay per directory, and `stats` can tell whether it runs), the optional
//! Prometheus text endpoint of the aggregate counters (loopback only), and the checks
//! `check-config` prints.

use std::fs::{File, OpenOptions, TryLockError};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::metrics::{Metrics, Snapshot};

/// Name of the lock file in the data directory. A running relay holds an exclusive lock
/// on it; the file itself holds nothing.
pub const LOCK_FILE: &str = "relay.lock";

/// The lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds it.
    #[error(
        "another postern-relay is already running on {0} (it holds {0}/relay.lock); stop it first, or use another --data directory"
    )]
    Held(String),
    /// The lock file could not be opened or locked.
    #[error("{path}: {source}")]
    Io {
        /// The lock file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Takes the data directory's lock for as long as the returned file lives.
pub fn lock_data_dir(data_dir: &Path) -> Result<File, LockError> {
    let path = data_dir.join(LOCK_FILE);
    let io = |source| LockError::Io {
        path: path.display().to_string(),
        source,
    };
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(LockError::Held(data_dir.display().to_string())),
        Err(TryLockError::Error(e)) => Err(io(e)),
    }
}

/// Whether a relay is running on `data_dir` now (it holds the lock).
pub fn is_running(data_dir: &Path) -> bool {
    let Ok(file) = File::open(data_dir.join(LOCK_FILE)) else {
        return false;
    };
    matches!(file.try_lock_shared(), Err(TryLockError::WouldBlock))
}

/// The counters in the Prometheus text format (each `postern_relay_<name>`; the open
/// connections a gauge, the rest counters).
pub fn prometheus_text(snapshot: &Snapshot) -> String {
    let mut registry = Registry::with_prefix("postern_relay");
    let fields = serde_json::to_value(snapshot).unwrap_or_default();
    if let Some(fields) = fields.as_object() {
        for (name, value) in fields {
            let v = value.as_u64().unwrap_or(0);
            let help = format!("postern-relay {}", name.replace('_', " "));
            if name == "connections_open" {
                let g: Gauge = Gauge::default();
                g.set(i64::try_from(v).unwrap_or(i64::MAX));
                registry.register(name, help, g);
            } else {
                let c: Counter = Counter::default();
                c.inc_by(v);
                registry.register(name, help, c);
            }
        }
    }
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = encode(&mut out, &registry);
    out
}

/// The metrics endpoint, serving `GET /metrics` on its own thread until dropped.
pub struct MetricsEndpoint {
    server: Arc<tiny_http::Server>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Where it listens.
    pub local_addr: SocketAddr,
}

/// The endpoint could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot serve metrics on {addr}: {message}")]
pub struct MetricsError {
    addr: SocketAddr,
    message: String,
}

impl std::fmt::Debug for MetricsEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsEndpoint")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl MetricsEndpoint {
    /// Listens on `addr` (a loopback address: the configuration refuses others).
    pub fn start(addr: SocketAddr, metrics: Arc<Metrics>) -> Result<Self, MetricsError> {
        let server = tiny_http::Server::http(addr).map_err(|e| MetricsError {
            addr,
            message: e.to_string(),
        })?;
        let local_addr = server.server_addr().to_ip().ok_or_else(|| MetricsError {
            addr,
            message: "not an IP listener".into(),
        })?;
        let server = Arc::new(server);
        let serving = server.clone();
        let thread = std::thread::Builder::new()
            .name("postern-relay-metrics".into())
            .spawn(move || {
                for request in serving.incoming_requests() {
                    let response = if request.method() == &tiny_http::Method::Get
                        && request.url() == "/metrics"
                    {
                        let body = prometheus_text(&metrics.snapshot());
                        let mut r = tiny_http::Response::from_string(body);
                        if let Ok(h) = tiny_http::Header::from_bytes(
                            "Content-Type",
                            "text/plain; version=0.0.4; charset=utf-8",
                        ) {
                            r.add_header(h);
                        }
                        r
                    } else {
                        tiny_http::Response::from_string("not found\n").with_status_code(404)
                    };
                    let _ = request.respond(response);
                }
            })
            .map_err(|e| MetricsError {
                addr,
                message: e.to_string(),
            })?;
        Ok(Self {
            server,
            thread: Some(thread),
            local_addr,
        })
    }
}

impl Drop for MetricsEndpoint {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The kernel's cap on a UDP socket's receive buffer (`net.core.rmem_max`), if known.
pub fn udp_receive_buffer_max() -> Option<u64> {
    std::fs::read_to_string("/proc/sys/net/core/rmem_max")
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn one_relay_per_data_directory() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!is_running(dir.path()));
        let held = lock_data_dir(dir.path()).unwrap();
        assert!(is_running(dir.path()));
        let again = lock_data_dir(dir.path()).unwrap_err();
        assert!(matches!(again, LockError::Held(_)));
        assert!(again.to_string().contains("already running"), "{again}");
        drop(held);
        assert!(!is_running(dir.path()));
        let _ = lock_data_dir(dir.path()).unwrap();
    }

    #[test]
    fn the_metrics_endpoint_serves_the_counters_as_prometheus_text() {
        let metrics = Arc::new(Metrics::default());
        Metrics::add(&metrics.envelopes_stored, 42);
        Metrics::add(&metrics.connections_open, 3);
        let ep = MetricsEndpoint::start("127.0.0.1:0".parse().unwrap(), metrics).unwrap();
        let get = |path: &str| {
            let mut s = std::net::TcpStream::connect(ep.local_addr).unwrap();
            write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).unwrap();
            out
        };
        let page = get("/metrics");
        assert!(page.starts_with("HTTP/1.0 200"), "{page}");
        assert!(
            page.contains("postern_relay_envelopes_stored_total 42"),
            "{page}"
        );
        assert!(
            page.contains("# TYPE postern_relay_connections_open gauge"),
            "{page}"
        );
        assert!(page.contains("postern_relay_connections_open 3"), "{page}");
        assert!(get("/other").starts_with("HTTP/1.0 404"));
        drop(ep);
    }
}
