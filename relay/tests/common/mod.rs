//! Test harness: an org with members, relays in temporary directories (in-process or as
//! real processes), admitted connections.
#![allow(
    dead_code,
    unused_imports,
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used
)]

use postern_protocol::bytes::{Bytes, FixedBytes};
use postern_protocol::ids::MailboxId;
use postern_protocol::message::{CreateMailbox, Request, Response, SendEnvelope};
use postern_protocol::padding::pad;
use postern_relay::config::RelayConfig;
use postern_relay::relay::{self, Running};
use postern_transport::RelayConnection;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub use postern_relay::testing::{RelayProcess, TestRelay, free_port, now};
pub use postern_relay::testing::{TestMember as Member, TestOrg as Org};

/// A relay data directory with a config tweaked by `tweak` (the `TestRelay` keeps the
/// temporary directory alive).
pub fn relay_dir(org: &Org, tweak: impl FnOnce(&mut RelayConfig)) -> (TestRelay, PathBuf) {
    let relay = TestRelay::new(&org.key(), tweak);
    let data = relay.data().to_path_buf();
    (relay, data)
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

/// The relay binary cargo built for these tests.
pub fn relay_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_postern-relay"))
}

/// `postern-relay run` on the data directory as a child process, logging to `log`.
pub fn spawn_relay(data: &Path, log: &Path) -> RelayProcess {
    RelayProcess::spawn(relay_bin(), data, log)
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
