//! A record of what every connection did, kept by relays built with the `testing` feature
//! (and this crate's unit tests) so that a test can check who was admitted on which
//! connection and what each connection sent. The shipped relay contains none of it.
//!
//! Off until [`Recorder::start`]; then it keeps every request body in memory, so it is
//! for short tests only.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use postern_protocol::ids::{HandleTag, MailboxId};
use postern_protocol::message::{Request, Response};

/// What one connection did, as the relay's request loop saw it.
#[derive(Debug, Clone, Default)]
pub struct ConnectionRecord {
    /// The relay's number for the connection.
    pub conn_id: u64,
    /// The certificate of every `Authenticate` it sent, answered or refused.
    pub presented: Vec<Vec<u8>>,
    /// The certificate it was admitted with, if any.
    pub admitted: Option<Vec<u8>>,
    /// Mailboxes (recipient ids) opened on it.
    pub opened: Vec<MailboxId>,
    /// Mailboxes (sender ids) it stored an envelope in.
    pub sent_to: Vec<MailboxId>,
    /// Sends it attempted, stored or not.
    pub send_attempts: usize,
    /// Directory entries it looked up (answered or not).
    pub looked_up: Vec<HandleTag>,
    /// Every request body it sent, as received.
    pub requests: Vec<Vec<u8>>,
}

/// Connection records, by connection.
#[derive(Debug, Default)]
pub struct Recorder {
    /// Whether to record.
    on: AtomicBool,
    /// The records.
    records: Mutex<BTreeMap<u64, ConnectionRecord>>,
}

impl Recorder {
    /// Starts recording (connections opened before are recorded from their next request).
    pub fn start(&self) {
        self.on.store(true, Ordering::SeqCst);
    }

    /// The records so far, by connection number.
    pub fn records(&self) -> Vec<ConnectionRecord> {
        self.records
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Records one request and its answer.
    pub(crate) fn record(&self, conn_id: u64, body: &[u8], req: &Request, resp: &Response) {
        if !self.on.load(Ordering::SeqCst) {
            return;
        }
        let mut all = self.records.lock().unwrap_or_else(|p| p.into_inner());
        let r = all.entry(conn_id).or_insert_with(|| ConnectionRecord {
            conn_id,
            ..Default::default()
        });
        r.requests.push(body.to_vec());
        match (req, resp) {
            (Request::Authenticate(a), resp) => {
                r.presented.push(a.certificate.as_slice().to_vec());
                if matches!(resp, Response::Authenticated(_)) {
                    r.admitted = Some(a.certificate.as_slice().to_vec());
                }
            }
            (Request::OpenMailbox(o), Response::MailboxOpened(_)) => r.opened.push(o.recipient),
            (Request::Send(s), resp) => {
                r.send_attempts += 1;
                if matches!(resp, Response::Sent(_)) {
                    r.sent_to.push(s.to);
                }
            }
            (Request::FetchPrekeys(f), _) => r.looked_up.push(f.directory),
            (Request::FetchEntry(f), _) => r.looked_up.push(f.directory),
            _ => {}
        }
    }
}
