//! Test harness: an org with members, relays in temporary directories (in-process or as
//! real processes), admitted connections.
#![allow(dead_code, missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use postern_identity::{
    DeviceKeyPair, Handle, OrgRoot, RevocationList, RevocationListBody, Role, SignalPublicKey,
};
use postern_protocol::bytes::{Bytes, FixedBytes};
use postern_protocol::ids::MailboxId;
use postern_protocol::message::{CreateMailbox, Request, Response, SendEnvelope};
use postern_protocol::padding::pad;
use postern_relay::config::{CONFIG_FILE, RelayConfig};
use postern_relay::relay::{self, Running};
use postern_transport::{DeviceSigner, RelayConnection};

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

pub struct Org {
    pub root: OrgRoot,
}

pub struct Member {
    pub handle: String,
    pub cert: Vec<u8>,
    pub device: DeviceKeyPair,
    pub serial: u64,
}

impl DeviceSigner for Member {
    fn certificate(&self) -> Vec<u8> {
        self.cert.clone()
    }
    fn sign(&self, context: &[u8], message: &[u8]) -> [u8; 64] {
        self.device.sign(context, message)
    }
}

impl Org {
    pub fn new() -> Self {
        Self {
            root: OrgRoot::generate(),
        }
    }

    pub fn key(&self) -> String {
        self.root.org_key().to_string()
    }

    pub fn member_valid(
        &self,
        handle: &str,
        role: Role,
        not_before: u64,
        not_after: u64,
    ) -> Member {
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
        Member {
            handle: handle.to_owned(),
            cert: cert.encode(),
            device,
            serial,
        }
    }

    pub fn member(&self, handle: &str) -> Member {
        self.member_valid(handle, Role::Courier, now() - 60, now() + 86_400)
    }

    pub fn revocations(&self, version: u64, serials: Vec<u64>) -> RevocationList {
        self.root
            .sign_revocations(
                RevocationListBody::new(self.root.org_key(), version, serials).unwrap(),
            )
            .unwrap()
    }
}

/// A relay data directory with a config tweaked by `tweak`.
pub fn relay_dir(org: &Org, tweak: impl FnOnce(&mut RelayConfig)) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("relay");
    relay::init(&data, &org.key(), "127.0.0.1:0".parse().unwrap(), None).unwrap();
    let mut config = RelayConfig::load(&data).unwrap();
    config.limits.sweep_interval_secs = 1;
    tweak(&mut config);
    std::fs::write(data.join(CONFIG_FILE), config.to_commented_toml()).unwrap();
    (dir, data)
}

pub fn pin(data: &Path) -> [u8; 32] {
    relay::pin(data).unwrap()
}

pub async fn start(data: &Path) -> Running {
    relay::start(data).await.unwrap()
}

pub async fn admitted(addr: SocketAddr, pin: [u8; 32], m: &Member) -> RelayConnection {
    let mut c = RelayConnection::connect_addr(addr, pin).await.unwrap();
    c.authenticate(m).await.unwrap();
    c
}

pub struct Mailbox {
    pub recipient: MailboxId,
    pub sender: MailboxId,
    pub owner: postern_identity::DeviceKeyPair,
}

pub async fn create_mailbox(c: &RelayConnection) -> Mailbox {
    let owner = postern_identity::DeviceKeyPair::generate();
    let mb = Mailbox {
        recipient: MailboxId::random(&mut rand::rng()),
        sender: MailboxId::random(&mut rand::rng()),
        owner,
    };
    let r = c
        .request(&Request::CreateMailbox(CreateMailbox {
            recipient: mb.recipient,
            sender: mb.sender,
            owner: FixedBytes(mb.owner.public_key().to_bytes()),
        }))
        .await
        .unwrap();
    assert_eq!(r, Response::MailboxCreated);
    mb
}

/// An admitted connection with a new mailbox opened on it.
pub async fn with_mailbox(
    addr: SocketAddr,
    pin: [u8; 32],
    m: &Member,
) -> (RelayConnection, Mailbox) {
    let mut c = admitted(addr, pin, m).await;
    let mb = create_mailbox(&c).await;
    c.open_mailbox(mb.recipient, &mb.owner).await.unwrap();
    (c, mb)
}

pub fn send_req(to: MailboxId, ttl: u32, content: &[u8]) -> Request {
    Request::Send(SendEnvelope {
        to,
        ttl_secs: ttl,
        body: Bytes::new(pad(content).unwrap()).unwrap(),
    })
}

/// Builds the relay binary's path (cargo builds it for integration tests).
pub fn relay_bin() -> &'static str {
    env!("CARGO_BIN_EXE_postern-relay")
}

/// A relay running as a real child process.
pub struct RelayProcess {
    pub child: Child,
    pub addr: SocketAddr,
    pub stderr_path: PathBuf,
}

impl RelayProcess {
    /// Starts `postern-relay run` on a fixed port (the config must name one).
    pub fn spawn(data: &Path, log: &Path) -> Self {
        let stderr = std::fs::File::create(log).unwrap();
        let mut child = Command::new(relay_bin())
            .args(["run", "--data"])
            .arg(data)
            .env("POSTERN_RELAY_LOG", "debug")
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap();
        // The first line on stdout is "listening on ADDR".
        use std::io::BufRead;
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        std::io::BufReader::new(stdout)
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
            stderr_path: log.to_path_buf(),
        }
    }

    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let start = std::time::Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "relay did not stop"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A free UDP port on loopback.
pub fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Every file under `dir`, concatenated.
pub fn all_bytes(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((p.clone(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out
}

pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}
