//! The relay's life cycle: `init` (keys, certificate, config) and `run` (open the store,
//! start the sweeper and the stats writer, serve until told to stop, drain).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use postern_identity::relay::RelayAddressError;
use postern_identity::{OrgKey, RelayAddress, RevocationList};
use postern_protocol::message::Push;
use tokio::sync::watch;

use crate::config::{CONFIG_FILE, ConfigError, RelayConfig};
use crate::metrics::{Metrics, StatsFile};
use crate::server::{ServerError, endpoint, serve};
use crate::state::{Shared, unix_now};
use crate::store::{Staged, Store, StoreError};
use crate::tls::{RelayIdentity, TlsError, spki_pin, write_secret_file};

/// Certificate file (DER) in the data directory.
pub const CERT_FILE: &str = "relay-cert.der";
/// Private key file (PKCS#8 DER, mode 0600) in the data directory.
pub const KEY_FILE: &str = "relay-key.der";
/// Seconds between writes of `stats.json`.
const STATS_INTERVAL: Duration = Duration::from_secs(5);

/// Starting or running the relay failed.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The data directory already holds a relay.
    #[error("{0} already holds a relay (relay.toml exists); use another --data directory")]
    AlreadyInitialised(String),
    /// The data directory holds no relay.
    #[error("{0} holds no relay; create one with `postern-relay init --data {0} --org ...`")]
    NotInitialised(String),
    /// The org key is not valid.
    #[error(
        "not an org key ({0}); expected postern-org:<base32>, as printed by `postern org init`"
    )]
    BadOrg(String),
    /// Configuration error.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// TLS error.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// Storage error.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Server error.
    #[error(transparent)]
    Server(#[from] ServerError),
    /// The configured public host or port cannot form a relay address.
    #[error("the public host and port do not form a relay address: {0}")]
    BadAddress(#[from] RelayAddressError),
    /// Another relay holds the data directory, or its lock file failed.
    #[error(transparent)]
    Lock(#[from] crate::operator::LockError),
    /// The metrics endpoint could not start.
    #[error(transparent)]
    Metrics(#[from] crate::operator::MetricsError),
    /// The stored revocation list does not verify (damaged data directory).
    #[error("the stored revocation list is invalid: {0}")]
    BadRevocationList(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RelayError + '_ {
    move |source| RelayError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Creates a relay in `data_dir`: key pair, self-signed certificate, `relay.toml`.
/// Returns the relay address clients use; `None` if `listen` has port 0 (tests: the port,
/// and with it the address, is known once the relay runs, as [`Running::address`]).
pub fn init(
    data_dir: &Path,
    org: &str,
    listen: SocketAddr,
    public_host: Option<String>,
) -> Result<Option<RelayAddress>, RelayError> {
    let org_key: OrgKey = org
        .parse()
        .map_err(|_| RelayError::BadOrg(org.to_owned()))?;
    std::fs::create_dir_all(data_dir).map_err(io(data_dir))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o700))
            .map_err(io(data_dir))?;
    }
    let config_path = data_dir.join(CONFIG_FILE);
    if config_path.exists() {
        return Err(RelayError::AlreadyInitialised(
            data_dir.display().to_string(),
        ));
    }
    let identity = RelayIdentity::generate()?;
    let host = public_host.unwrap_or_else(|| listen.ip().to_string());
    // Checked before anything is written, so a bad --public-host leaves no half-made relay.
    let address = match listen.port() {
        0 => None,
        port => Some(RelayAddress::new(identity.pin()?, &host, port)?),
    };
    let key_path = data_dir.join(KEY_FILE);
    write_secret_file(&key_path, &identity.key_der).map_err(io(&key_path))?;
    let cert_path = data_dir.join(CERT_FILE);
    write_secret_file(&cert_path, &identity.cert_der).map_err(io(&cert_path))?;
    let config = RelayConfig::new(listen, host, org_key.to_string());
    write_secret_file(&config_path, config.to_commented_toml().as_bytes())
        .map_err(io(&config_path))?;
    Ok(address)
}

/// Loads the relay's key and certificate.
pub fn load_identity(data_dir: &Path) -> Result<RelayIdentity, RelayError> {
    let cert_path = data_dir.join(CERT_FILE);
    let key_path = data_dir.join(KEY_FILE);
    if !data_dir.join(CONFIG_FILE).exists() {
        return Err(RelayError::NotInitialised(data_dir.display().to_string()));
    }
    Ok(RelayIdentity {
        cert_der: std::fs::read(&cert_path).map_err(io(&cert_path))?,
        key_der: std::fs::read(&key_path).map_err(io(&key_path))?,
    })
}

/// The relay address of the relay in `data_dir` (a relay configured to listen on port 0
/// has one only once it runs: [`Running::address`]).
pub fn address(data_dir: &Path) -> Result<RelayAddress, RelayError> {
    let config = RelayConfig::load(data_dir)?;
    Ok(RelayAddress::new(
        pin(data_dir)?,
        &config.public_host,
        config.listen.port(),
    )?)
}

/// The key pin of the relay in `data_dir`: SHA-256 of its certificate's SPKI.
pub fn pin(data_dir: &Path) -> Result<[u8; 32], RelayError> {
    Ok(spki_pin(&load_identity(data_dir)?.cert_der)?)
}

/// A started relay: its address and the handle to stop it.
#[derive(Debug)]
pub struct Running {
    /// The socket address it listens on (the real port if the config said 0).
    pub local_addr: SocketAddr,
    /// Its relay address: the configured public host, the real port, the key pin.
    pub address: RelayAddress,
    /// Shared state.
    pub(crate) shared: Arc<Shared>,
    /// Set to true to stop.
    stop: watch::Sender<bool>,
    /// Completes when the relay has drained and stopped.
    done: tokio::task::JoinHandle<()>,
    /// The Prometheus endpoint, if configured (serves until dropped).
    _metrics_endpoint: Option<crate::operator::MetricsEndpoint>,
    /// The data directory's lock, held while the relay runs.
    _lock: std::fs::File,
}

impl Running {
    /// The relay's store (tests and the demo read what it holds).
    pub fn store(&self) -> &Store {
        &self.shared.store
    }

    /// What each connection did, once recording is started (test builds only).
    #[cfg(any(test, feature = "testing"))]
    pub fn recorder(&self) -> &crate::recorder::Recorder {
        &self.shared.recorder
    }

    /// The relay's aggregate counters.
    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    /// Stops gracefully: no new connections, in-flight requests finish and are flushed.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.done.await;
        let store = self.shared.store.clone();
        let _ = tokio::task::spawn_blocking(move || store.close()).await;
    }
}

/// Batches of new envelopes that may wait for the pusher (each at most
/// `group_commit_max_batch` envelopes).
const STAGED_BATCHES: usize = 4;

/// Hands each stored envelope to its mailbox's subscribers, in the order the writer
/// stored them. Ends when the store's writer stops. It holds the relay's state weakly:
/// the writer holds the other end of `staged`, so a strong reference would keep the
/// store, and with it the writer, alive forever.
async fn pusher(shared: std::sync::Weak<Shared>, mut staged: tokio::sync::mpsc::Receiver<Staged>) {
    while let Some(batch) = staged.recv().await {
        let Some(shared) = shared.upgrade() else {
            return;
        };
        for (recipient, envelope) in batch {
            // Encoded once; every subscriber's queue shares the frame.
            let Some(frame) = crate::hub::encode(&Push::Envelope(envelope)) else {
                continue;
            };
            let (took, slow) = shared.hub.push(&recipient, &frame);
            Metrics::add(&shared.metrics.envelopes_delivered, took as u64);
            Metrics::add(&shared.metrics.slow_subscribers_dropped, slow as u64);
        }
    }
}

/// Opens the relay in `data_dir` and starts serving on the current tokio runtime.
pub async fn start(data_dir: &Path) -> Result<Running, RelayError> {
    start_with_config(data_dir, &data_dir.join(CONFIG_FILE)).await
}

/// [`start`] with the configuration read from `config_path` instead of the data
/// directory's `relay.toml`.
pub async fn start_with_config(data_dir: &Path, config_path: &Path) -> Result<Running, RelayError> {
    let identity = load_identity(data_dir)?;
    let config = RelayConfig::load_file(config_path)?;
    // Before the database: a second relay on the same directory is told so plainly.
    let lock = crate::operator::lock_data_dir(data_dir)?;
    let org: OrgKey = config
        .org
        .parse()
        .map_err(|_| RelayError::BadOrg(config.org.clone()))?;
    let metrics = Arc::new(Metrics::default());
    let l = &config.limits;
    // New envelopes reach subscribers while their commit flushes (see `Store::open`).
    // Bounded: the writer waits (the sends behind it with it) rather than let batches of
    // envelopes pile up in memory if the pusher falls behind.
    let (staged_tx, staged_rx) = tokio::sync::mpsc::channel(STAGED_BATCHES);
    let store = Store::open(
        data_dir,
        l.quotas(),
        l.group_commit_max_batch as usize,
        metrics.clone(),
        Some(staged_tx),
    )?;
    let revocations = match store.revocation_list()? {
        Some(bytes) => Some(
            RevocationList::decode(&bytes)
                .map_err(|e| RelayError::BadRevocationList(e.to_string()))?,
        ),
        None => None,
    };
    let shared = Arc::new(Shared::new(
        store,
        org,
        config,
        revocations,
        metrics,
        rand::SeedableRng::from_os_rng(),
    ));
    let endpoint = endpoint(&identity, shared.config.listen, &shared)?;
    let local_addr = endpoint.local_addr().map_err(io(data_dir))?;
    let address = RelayAddress::new(
        identity.pin()?,
        &shared.config.public_host,
        local_addr.port(),
    )?;
    let (stop, stop_rx) = watch::channel(false);
    let metrics_endpoint = match shared.config.metrics_listen {
        Some(addr) => {
            let ep = crate::operator::MetricsEndpoint::start(addr, shared.metrics.clone())?;
            tracing::info!(addr = %ep.local_addr, "serving metrics");
            Some(ep)
        }
        None => None,
    };

    tokio::spawn(pusher(Arc::downgrade(&shared), staged_rx));
    tokio::spawn(sweeper(shared.clone(), stop_rx.clone()));
    tokio::spawn(stats_writer(
        shared.clone(),
        data_dir.to_path_buf(),
        stop_rx.clone(),
    ));
    let done = tokio::spawn(serve(endpoint, shared.clone(), stop_rx));
    tracing::info!(%local_addr, "relay listening");
    Ok(Running {
        local_addr,
        address,
        shared,
        stop,
        done,
        _metrics_endpoint: metrics_endpoint,
        _lock: lock,
    })
}

/// Deletes expired envelopes every `sweep_interval_secs`, one bounded batch per commit so
/// requests never wait long behind it.
async fn sweeper(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let every = Duration::from_secs(u64::from(shared.config.limits.sweep_interval_secs));
    loop {
        loop {
            match shared.store.sweep(unix_now()).await {
                Ok(d) if d.count > 0 => {
                    Metrics::add(&shared.metrics.envelopes_expired, u64::from(d.count));
                    shared.space_returned(&d);
                }
                _ => break,
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
    }
}

async fn stats_writer(
    shared: Arc<Shared>,
    data_dir: std::path::PathBuf,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let store = shared.store.counts().unwrap_or_default();
        let envelope_buckets = shared.store.bucket_histogram().unwrap_or_default();
        let file = StatsFile {
            written_at: unix_now(),
            counters: shared.metrics.snapshot(),
            store,
            envelope_buckets,
        };
        if let Err(e) = file.write(&data_dir) {
            tracing::warn!(error = %e, "cannot write stats.json");
        }
        tokio::select! {
            _ = tokio::time::sleep(STATS_INTERVAL) => {}
            _ = stop.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_public_host_is_refused_before_anything_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("relay");
        let org = postern_identity::OrgRoot::generate().org_key().to_string();
        let listen: SocketAddr = "127.0.0.1:4433".parse().unwrap();
        let refused = init(&data, &org, listen, Some("bad host".into()));
        assert!(
            matches!(refused, Err(RelayError::BadAddress(_))),
            "{refused:?}"
        );
        assert!(!data.join(CONFIG_FILE).exists());
        assert!(!data.join(KEY_FILE).exists());
        // The same directory then takes a good host.
        let address = init(&data, &org, listen, Some("relay.example.org".into()))
            .unwrap()
            .unwrap();
        assert_eq!(address.host(), "relay.example.org");
        assert_eq!(address.port(), 4433);
    }
}
