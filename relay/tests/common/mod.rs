//! Test harness: an org with members, relays in temporary directories (in-process or as
//! real processes), owner (admitted) and anonymous connections, signed sends.
#![allow(
    dead_code,
    unused_imports,
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used
)]

use postern_identity::DeviceKeyPair;
use postern_protocol::ErrorCode;
use postern_protocol::auth::SEND_CONTEXT;
use postern_protocol::bytes::{Bytes, FixedBytes};
use postern_protocol::ids::MailboxId;
use postern_protocol::message::{CreateMailbox, Request, Response, SendEnvelope, Sent};
use postern_protocol::padding::pad;
use postern_relay::config::RelayConfig;
use postern_relay::relay::{self, Running};
use postern_transport::{RelayConnection, TransportError};
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

/// A connection that says `Hello` and nothing more: it becomes anonymous with its first
/// `Send`, `FetchPrekeys` or `FetchEntry`.
pub async fn anonymous(addr: SocketAddr, pin: [u8; 32]) -> RelayConnection {
    RelayConnection::connect_addr(addr, pin).await.unwrap()
}

/// Budgets for anonymous requests out of the way: every test sends from 127.0.0.1.
pub fn unlimited_anonymous(c: &mut RelayConfig) {
    c.limits.anonymous_requests_per_minute = 1_000_000;
    c.limits.anonymous_request_burst = 1_000_000;
    c.limits.queue_sends_per_minute = 1_000_000;
    c.limits.queue_send_burst = 1_000_000;
}

pub struct Mailbox {
    pub recipient: MailboxId,
    pub sender: MailboxId,
    pub owner: DeviceKeyPair,
    /// Signs every `Send` into the mailbox.
    pub sender_key: DeviceKeyPair,
}

impl Mailbox {
    /// Sends `content` (padded) into this mailbox on `c`, signed with its sender key.
    pub async fn send(
        &self,
        c: &RelayConnection,
        ttl: u32,
        content: &[u8],
    ) -> Result<Response, TransportError> {
        send(c, self.sender, &self.sender_key, ttl, content).await
    }
}

pub async fn create_mailbox(c: &RelayConnection) -> Mailbox {
    let mb = Mailbox {
        recipient: MailboxId::random(&mut rand::rng()),
        sender: MailboxId::random(&mut rand::rng()),
        owner: DeviceKeyPair::generate(),
        sender_key: DeviceKeyPair::generate(),
    };
    let r = c
        .request(&Request::CreateMailbox(CreateMailbox {
            recipient: mb.recipient,
            sender: mb.sender,
            owner: FixedBytes(mb.owner.public_key().to_bytes()),
            sender_key: FixedBytes(mb.sender_key.public_key().to_bytes()),
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

/// A `Send` of `body` (as it is: not padded here) to the sender id `to`, signed by `key`
/// for connection `c`.
pub fn signed_send(
    c: &RelayConnection,
    to: MailboxId,
    key: &DeviceKeyPair,
    ttl: u32,
    body: Vec<u8>,
) -> Request {
    let signature = key.sign(SEND_CONTEXT, &c.send_message(&to));
    Request::Send(SendEnvelope {
        to,
        ttl_secs: ttl,
        body: Bytes::new(body).unwrap(),
        signature: FixedBytes(signature),
    })
}

/// Sends `content`, padded, to the sender id `to` on `c`, signed by `key`.
pub async fn send(
    c: &RelayConnection,
    to: MailboxId,
    key: &DeviceKeyPair,
    ttl: u32,
    content: &[u8],
) -> Result<Response, TransportError> {
    c.request(&signed_send(c, to, key, ttl, pad(content).unwrap()))
        .await
}

/// The `Sent` of a send that must succeed.
pub fn sent(r: Result<Response, TransportError>) -> Sent {
    match r {
        Ok(Response::Sent(s)) => s,
        other => panic!("expected Sent, got {other:?}"),
    }
}

/// The code of a request that must be refused.
pub fn refused(r: Result<Response, TransportError>) -> ErrorCode {
    match r {
        Err(TransportError::Refused(code)) => code,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// Envelopes the relay holds.
pub fn stored(relay: &Running) -> u64 {
    relay.store().counts().unwrap().envelopes
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

/// `Fetch` on an owner connection with its mailbox open; panics on anything but
/// `Envelopes`.
pub async fn fetched(c: &RelayConnection, limit: u16) -> postern_protocol::message::Envelopes {
    match c
        .request(&Request::Fetch(postern_protocol::message::Fetch { limit }))
        .await
        .unwrap()
    {
        Response::Envelopes(e) => e,
        other => panic!("{other:?}"),
    }
}
