//! The simulation's world: an org run with the real `postern org` code, a relay running
//! as a real process (killed and restarted at will), and staff members using the real
//! member library with real vault files.
#![allow(dead_code, missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::io::BufRead;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use postern::member::{Member, MemberError};
use postern::org::{self, EnrollArgs, OrgCommand, OrgContext, RelayCommand, RevokeArgs};
use postern::passphrase::PassphraseSource;
use postern_e2e::KdfParams;
use postern_identity::{OrgKey, Role};

pub const PASS: &str = "simulation passphrase, not for production";

/// The org, the relay and the staff of one simulation.
pub struct World {
    pub tmp: tempfile::TempDir,
    pub org_home: PathBuf,
    pub ctx: OrgContext,
    pub org_key: OrgKey,
    pub relay_data: PathBuf,
    pub relay: Option<RelayProcess>,
    pub relay_logs: usize,
}

pub struct RelayProcess {
    pub child: Child,
    pub addr: SocketAddr,
}

impl RelayProcess {
    pub fn spawn(data: &Path, log: &Path) -> Self {
        let stderr = std::fs::File::create(log).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_relay-under-test"))
            .args(["run", "--data"])
            .arg(data)
            .env("POSTERN_RELAY_LOG", "info")
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
        Self { child, addr }
    }

    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        for _ in 0..600 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("relay did not stop within 30 s of SIGTERM");
    }
}

fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl World {
    /// Creates the org (admin home), a relay on a fixed loopback port, and adds the relay
    /// to the org descriptor.
    pub fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let org_home = tmp.path().join("org");
        let pass_file = tmp.path().join("org-passphrase");
        std::fs::write(&pass_file, PASS).unwrap();
        let ctx = OrgContext {
            home: Some(org_home.clone()),
            passphrase: PassphraseSource {
                file: Some(pass_file),
            },
        };
        let mut out = Vec::new();
        org::run(OrgCommand::Init, &ctx, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let org_key: OrgKey = text.lines().last().unwrap().trim().parse().unwrap();

        let relay_data = tmp.path().join("relay");
        let port = free_port();
        let address = postern_relay::relay::init(
            &relay_data,
            &org_key.to_string(),
            format!("127.0.0.1:{port}").parse().unwrap(),
            None,
        )
        .unwrap()
        .unwrap();
        // Quick sweeps, so expiry is visible within the test.
        let mut config = postern_relay::config::RelayConfig::load(&relay_data).unwrap();
        config.limits.sweep_interval_secs = 1;
        std::fs::write(
            relay_data.join(postern_relay::config::CONFIG_FILE),
            config.to_commented_toml(),
        )
        .unwrap();
        let mut out = Vec::new();
        org::run(
            OrgCommand::Relay(RelayCommand::Add {
                address: address.to_string().parse().unwrap(),
            }),
            &ctx,
            &mut out,
        )
        .unwrap();
        let mut world = Self {
            tmp,
            org_home,
            ctx,
            org_key,
            relay_data,
            relay: None,
            relay_logs: 0,
        };
        world.start_relay();
        world
    }

    pub fn start_relay(&mut self) {
        assert!(self.relay.is_none());
        self.relay_logs += 1;
        let log = self
            .tmp
            .path()
            .join(format!("relay-{}.log", self.relay_logs));
        self.relay = Some(RelayProcess::spawn(&self.relay_data, &log));
    }

    pub fn kill_relay(&mut self) {
        self.relay.take().unwrap().kill9();
    }

    pub fn stop_relay(&mut self) {
        let status = self.relay.take().unwrap().terminate();
        assert!(status.success(), "relay exited with {status}");
    }

    /// A new staff member: `postern init`, `postern org enroll`, `postern enroll`.
    pub async fn enroll(&self, handle: &str, role: Role) -> Member {
        let home = self.tmp.path().join("staff").join(handle);
        let (mut member, request) = Member::init(
            &home,
            handle,
            PASS.as_bytes(),
            KdfParams::insecure_for_tests(),
        )
        .unwrap();
        let req_path = self.tmp.path().join(format!("{handle}.request"));
        let bundle_path = self.tmp.path().join(format!("{handle}.bundle"));
        std::fs::write(&req_path, request.encode()).unwrap();
        let mut out = Vec::new();
        org::run(
            OrgCommand::Enroll(EnrollArgs {
                request: req_path,
                role,
                valid_days: 30,
                out: bundle_path.clone(),
                fingerprint: Some(request.fingerprint()),
            }),
            &self.ctx,
            &mut out,
        )
        .unwrap();
        let bundle = std::fs::read(&bundle_path).unwrap();
        member
            .enroll(&bundle, Some(self.org_key), &|_| {})
            .await
            .unwrap();
        member
    }

    /// `postern org revoke <handle> --publish` (a blocking command, as on the admin's
    /// machine: run off the async threads).
    pub async fn revoke(&self, handle: &str) {
        let (ctx, handle) = (self.ctx.clone(), handle.to_owned());
        tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            org::run(
                OrgCommand::Revoke(RevokeArgs {
                    handle,
                    publish: true,
                }),
                &ctx,
                &mut out,
            )
            .unwrap();
        })
        .await
        .unwrap();
    }

    /// What the relay's database file holds, and its earliest envelope expiry (the relay
    /// must be stopped).
    pub fn relay_holdings(&self) -> (postern_relay::store::StoreCounts, Option<u64>) {
        let store = postern_relay::store::Store::open(
            &self.relay_data,
            postern_relay::store::Quotas {
                max_envelopes: 1,
                max_bytes: 1,
                max_one_time: 1,
            },
            1,
            std::sync::Arc::new(postern_relay::metrics::Metrics::default()),
            None,
        )
        .unwrap();
        let counts = store.counts().unwrap();
        let earliest = store.earliest_expiry().unwrap();
        store.close();
        (counts, earliest)
    }
}

/// Whether an error is the relay refusing a revoked member.
pub fn is_revoked(e: &MemberError) -> bool {
    format!("{e:?}").contains("Revoked") || e.to_string().contains("revoked")
}
