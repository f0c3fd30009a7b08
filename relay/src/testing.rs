//! The one test harness for anything that needs a relay: an org that issues member
//! certificates ([`TestOrg`], [`TestMember`]), a relay data directory in a temporary
//! directory ([`TestRelay`]) started in this process or as a real child process
//! ([`RelayProcess`]). Used by the relay's unit and integration tests, the client's
//! tests, the tests package and the demo. Built only with the `testing` feature (and for
//! this crate's own unit tests); the shipped relay binary does not contain it.
//!
//! Harness code: it panics on setup failures, as a test would.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::missing_panics_doc)]

use std::io::BufRead;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use postern_identity::{
    DeviceKeyPair, Handle, OrgRoot, RelayAddress, RevocationList, RevocationListBody, Role,
    SignalPublicKey,
};

use crate::config::{CONFIG_FILE, RelayConfig};
use crate::metrics::Metrics;
use crate::relay::{self, Running};
use crate::store::{Quotas, Store, StoreCounts};

/// Unix seconds now.
pub fn now() -> u64 {
    crate::state::unix_now()
}

/// An org root that issues certificates and revocation lists for tests.
pub struct TestOrg {
    /// The org's root key.
    pub root: OrgRoot,
}

/// A member certificate with its device key.
pub struct TestMember {
    /// The handle in the certificate.
    pub handle: String,
    /// The encoded certificate.
    pub cert: Vec<u8>,
    /// The device key the certificate names.
    pub device: DeviceKeyPair,
    /// The certificate's serial.
    pub serial: u64,
}

impl Default for TestOrg {
    fn default() -> Self {
        Self::new()
    }
}

impl TestOrg {
    /// A new org.
    pub fn new() -> Self {
        Self {
            root: OrgRoot::generate(),
        }
    }

    /// The org key as text (`postern-org:…`).
    pub fn key(&self) -> String {
        self.root.org_key().to_string()
    }

    /// A member with `role`, valid from `not_before` to `not_after` (Unix seconds).
    pub fn member_valid(
        &self,
        handle: &str,
        role: Role,
        not_before: u64,
        not_after: u64,
    ) -> TestMember {
        let device = DeviceKeyPair::generate();
        let mut signal = [5u8; 33];
        signal[1..].copy_from_slice(&rand::random::<[u8; 32]>());
        let serial = rand::random::<u64>();
        let cert = self
            .root
            .issue_member_certificate(
                Handle::new(handle).unwrap(),
                role,
                SignalPublicKey::from_bytes(&signal).unwrap(),
                device.public_key(),
                not_before,
                not_after,
                serial,
            )
            .unwrap();
        TestMember {
            handle: handle.to_owned(),
            cert: cert.encode(),
            device,
            serial,
        }
    }

    /// A courier valid from a minute ago for a day.
    pub fn member(&self, handle: &str) -> TestMember {
        self.member_valid(handle, Role::Courier, now() - 60, now() + 86_400)
    }

    /// A signed revocation list.
    pub fn revocations(&self, version: u64, serials: Vec<u64>) -> RevocationList {
        self.root
            .sign_revocations(
                RevocationListBody::new(self.root.org_key(), version, serials).unwrap(),
            )
            .unwrap()
    }
}

#[cfg(feature = "testing")]
impl postern_transport::DeviceSigner for TestMember {
    fn certificate(&self) -> Vec<u8> {
        self.cert.clone()
    }
    fn sign(&self, context: &[u8], message: &[u8]) -> [u8; 64] {
        self.device.sign(context, message)
    }
}

/// A free UDP port on loopback (for a relay that must keep its port across restarts).
pub fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A relay data directory made by `relay::init` for `org`, with sweeps every second so
/// expiry shows within a test. It lives in its own temporary directory unless made with
/// [`TestRelay::init_in`].
pub struct TestRelay {
    _tmp: Option<tempfile::TempDir>,
    data: PathBuf,
    logs: usize,
}

impl TestRelay {
    /// A relay for `org` on an OS-chosen port (known once it runs), config tweaked.
    pub fn new(org: &str, tweak: impl FnOnce(&mut RelayConfig)) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let mut relay = Self::init_in(&tmp.path().join("relay"), org, 0, tweak);
        relay._tmp = Some(tmp);
        relay
    }

    /// A relay for `org` in `data` on loopback `port` (0: chosen by the OS at each start;
    /// give a [`free_port`] for a relay that is restarted and must keep its address).
    pub fn init_in(
        data: &Path,
        org: &str,
        port: u16,
        tweak: impl FnOnce(&mut RelayConfig),
    ) -> Self {
        let listen = SocketAddr::from(([127, 0, 0, 1], port));
        relay::init(data, org, listen, None).unwrap();
        let mut config = RelayConfig::load(data).unwrap();
        config.limits.sweep_interval_secs = 1;
        // Every simulated member connects from 127.0.0.1, so the per-address budget of
        // send connections and the per-address connection cap would be the whole org's:
        // lift them (and the per-mailbox budget) for simulations. Tests of those limits
        // set their own in `tweak`.
        config.limits.anonymous_requests_per_minute = 1_000_000;
        config.limits.anonymous_request_burst = 1_000_000;
        config.limits.queue_sends_per_minute = 1_000_000;
        config.limits.queue_send_burst = 1_000_000;
        config.limits.max_connections_per_address = config.limits.max_connections;
        tweak(&mut config);
        std::fs::write(data.join(CONFIG_FILE), config.to_commented_toml()).unwrap();
        Self {
            _tmp: None,
            data: data.to_path_buf(),
            logs: 0,
        }
    }

    /// The data directory.
    pub fn data(&self) -> &Path {
        &self.data
    }

    /// The directory that holds the data directory: a place for logs and other files.
    pub fn scratch(&self) -> &Path {
        self.data.parent().unwrap_or(&self.data)
    }

    /// The relay's key pin.
    pub fn pin(&self) -> [u8; 32] {
        relay::pin(&self.data).unwrap()
    }

    /// The relay address from the config (meaningful for a fixed port only).
    pub fn address(&self) -> RelayAddress {
        relay::address(&self.data).unwrap()
    }

    /// Starts the relay in this process, on the current tokio runtime.
    pub async fn start(&self) -> Running {
        relay::start(&self.data).await.unwrap()
    }

    /// Starts the relay as a child process running `bin run --data DIR`, its log in a
    /// new numbered file in the data directory's parent.
    pub fn spawn(&mut self, bin: &Path) -> RelayProcess {
        self.logs += 1;
        let log = self.scratch().join(format!("relay-{}.log", self.logs));
        RelayProcess::spawn(bin, &self.data, &log)
    }

    /// What the relay's database file holds, and its earliest envelope expiry. The relay
    /// must not be running.
    pub fn holdings(&self) -> (StoreCounts, Option<u64>) {
        let quotas = Quotas {
            max_envelopes: 1,
            max_bytes: 1,
            max_one_time: 1,
            max_entries_per_owner: 4,
        };
        let store = Store::open(&self.data, quotas, 1, Arc::new(Metrics::default()), None).unwrap();
        let counts = store.counts().unwrap();
        let earliest = store.earliest_expiry().unwrap();
        store.close();
        (counts, earliest)
    }
}

/// A relay running as a real child process.
pub struct RelayProcess {
    /// The process.
    pub child: Child,
    /// The address it printed on its first stdout line.
    pub addr: SocketAddr,
    /// Where its stderr (the log) goes.
    pub log: PathBuf,
}

impl RelayProcess {
    /// Runs `bin run --data DATA` with debug logging to `log`, and waits for its
    /// "listening on ADDR" line.
    pub fn spawn(bin: &Path, data: &Path, log: &Path) -> Self {
        Self::spawn_logging(bin, data, log, "debug")
    }

    /// [`RelayProcess::spawn`] with another log level (`warn` for benchmarks).
    pub fn spawn_logging(bin: &Path, data: &Path, log: &Path, level: &str) -> Self {
        let stderr = std::fs::File::create(log).unwrap();
        let mut child = Command::new(bin)
            .args(["run", "--data"])
            .arg(data)
            .env("POSTERN_RELAY_LOG", level)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("relay did not start: {line:?}"))
            .parse()
            .unwrap();
        Self {
            child,
            addr,
            log: log.to_path_buf(),
        }
    }

    /// Kills it with SIGKILL and reaps it.
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Sends SIGTERM and waits (at most 30 s) for it to exit.
    pub fn terminate(mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "relay did not stop within 30 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
