//! What the member operations report back: enrollment, a send, a fetch, contacts and
//! prekey status. Plain data, printed by the CLI as text or JSON.

use super::*;

/// What enrollment did.
#[derive(Debug, Clone, Serialize)]
pub struct EnrollReport {
    /// The member's handle.
    pub handle: String,
    /// Its role.
    pub role: String,
    /// The org key.
    pub org: String,
    /// Certificate valid until (unix seconds).
    pub not_after: u64,
    /// The relay used.
    pub relay: String,
    /// One-time prekeys now on the relay.
    pub one_time_prekeys: u32,
}

/// A sent message.
#[derive(Debug, Clone, Serialize)]
pub struct SendReceipt {
    /// The message id (hex), as the recipient will see it.
    pub message_id: String,
    /// The recipient.
    pub to: String,
    /// Relay envelope id (hex).
    pub envelope_id: String,
    /// When the relay deletes it if undelivered (unix seconds).
    pub relay_expires_at: u64,
    /// When every copy expires (unix ms; inside the encryption).
    pub expires_at_ms: u64,
    /// Whether a new session was set up from the directory.
    pub new_session: bool,
}

/// Why an envelope was acknowledged without storing a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dropped {
    /// Already received (redelivery, replay).
    Duplicate,
    /// Expired before it arrived.
    Expired,
    /// From a revoked member.
    Revoked(String),
    /// From a member whose certificate or directory entry is not acceptable.
    Untrusted(String),
    /// Not decryptable: garbage, altered, for someone else, or keys gone.
    Undecryptable,
}

/// What happened to one envelope.
#[derive(Debug)]
pub enum EnvelopeOutcome {
    /// A new message, stored (then acknowledged).
    New(StoredMessage),
    /// Acknowledged and dropped.
    Dropped(Dropped),
    /// Left on the relay (the sender's directory entry could not be fetched now).
    Deferred,
}

/// What one `fetch` did.
#[derive(Debug, Default)]
pub struct FetchReport {
    /// New messages, stored.
    pub new: Vec<StoredMessage>,
    /// Redeliveries and replays dropped.
    pub duplicates: usize,
    /// Expired on arrival.
    pub expired: usize,
    /// Refused senders (revoked or untrusted), one entry per envelope.
    pub refused: Vec<String>,
    /// Undecryptable envelopes dropped.
    pub undecryptable: usize,
    /// Envelopes left on the relay for later.
    pub deferred: usize,
}

impl FetchReport {
    pub(super) fn add(&mut self, outcome: EnvelopeOutcome) {
        match outcome {
            EnvelopeOutcome::New(m) => self.new.push(m),
            EnvelopeOutcome::Dropped(Dropped::Duplicate) => self.duplicates += 1,
            EnvelopeOutcome::Dropped(Dropped::Expired) => self.expired += 1,
            EnvelopeOutcome::Dropped(Dropped::Revoked(h) | Dropped::Untrusted(h)) => {
                self.refused.push(h)
            }
            EnvelopeOutcome::Dropped(Dropped::Undecryptable) => self.undecryptable += 1,
            EnvelopeOutcome::Deferred => self.deferred += 1,
        }
    }
}

/// A known member.
#[derive(Debug, Clone, Serialize)]
pub struct Contact {
    /// Handle.
    pub handle: String,
    /// Role.
    pub role: String,
    /// active, expired, not-yet-valid or revoked (under the held revocation list).
    pub status: String,
    /// Certificate valid until (unix seconds).
    pub not_after: u64,
    /// Whether a Signal session exists.
    pub session: bool,
}

/// One-time prekey upkeep.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct PrekeyStatus {
    /// One-time prekeys on the relay now.
    pub available: u32,
    /// Published by this call.
    pub published: usize,
    /// Whether the signed prekeys were rotated.
    pub rotated: bool,
}
