//! The database layout: table names, record formats and key encodings.
//!
//! Envelope ids carry their expiry so that a mailbox's envelopes sort by it (fetch skips
//! the expired ones and the sweeper deletes a prefix, with no index to keep).

use super::*;

pub(super) const MAILBOXES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("mailboxes");
/// Sender id → recipient id (32) ‖ sender key (32). A value of the recipient id alone
/// (a mailbox made before sender keys) has no sender key: nothing can be sent into it
/// until its owner sets one.
pub(super) const SENDERS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("senders");
pub(super) const ENVELOPES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("envelopes");
pub(super) const DIRECTORY: TableDefinition<&[u8], &[u8]> = TableDefinition::new("directory");
pub(super) const ONE_TIME: TableDefinition<&[u8], &[u8]> = TableDefinition::new("one_time");
pub(super) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

pub(super) const REVOCATION_KEY: &str = "revocation_list";
pub(super) const REVOCATION_VERSION_KEY: &str = "revocation_version";
/// Meta key recording how envelope bodies are stored: [`ENVELOPE_FORMAT`].
pub(super) const ENVELOPE_FORMAT_KEY: &str = "envelope_format";
/// Bodies sealed under epoch keys (`epochs`).
pub(super) const ENVELOPE_FORMAT: u8 = 1;

/// Most expired envelopes one sweep operation deletes, so it never holds the writer long.
pub(super) const SWEEP_BATCH: usize = 2000;

/// The `senders` value for a mailbox and its sender key.
pub(super) fn sender_value(recipient: &MailboxId, sender_key: &[u8; 32]) -> [u8; 64] {
    let mut v = [0u8; 64];
    v[..32].copy_from_slice(recipient.as_bytes());
    v[32..].copy_from_slice(sender_key);
    v
}

/// Parses a `senders` value: the recipient id and, if one was set, the sender key.
pub(super) fn parse_sender_value(v: &[u8]) -> Result<(MailboxId, Option<[u8; 32]>), StoreError> {
    match v.len() {
        32 => Ok((MailboxId(arr32(v, "senders")?), None)),
        64 => Ok((
            MailboxId(arr32(&v[..32], "senders")?),
            Some(arr32(&v[32..], "senders")?),
        )),
        _ => Err(StoreError::Corrupt("senders")),
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct MailboxRecord {
    /// Sender id, so the sender index can be cleaned up with the mailbox.
    pub(super) sender: [u8; 32],
    /// Ed25519 key that must sign `OpenMailbox`.
    pub(super) owner: [u8; 32],
    /// Envelopes waiting (for the quota).
    pub(super) count: u32,
    /// Bytes of envelope bodies waiting (for the quota).
    pub(super) bytes: u64,
    /// A send was refused for quota; tell the owner when space returns.
    pub(super) quota_hit: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct DirectoryRecord {
    /// SHA-256 over a context and the publishing device key: only that device may replace
    /// the entry. It is not a secret, only a binding.
    pub(super) owner_tag: [u8; 32],
    /// Sealed entry, opaque to the relay.
    pub(super) entry: Vec<u8>,
    /// Always 0. (Relays before envelope format 1 kept a publish counter here; the field
    /// stays so their records still decode, and is cleared on the next publish.)
    pub(super) next_seq: u64,
    /// One-time prekeys held.
    pub(super) one_time: u32,
}

/// Envelopes held per padding bucket, kept in memory (counted once at open, then moved
/// by each committed batch) so stats never scan the envelopes.
pub(super) type Held = Arc<[std::sync::atomic::AtomicU64; PADDING_BUCKETS.len()]>;

pub(super) fn bucket_index(len: usize) -> usize {
    PADDING_BUCKETS
        .iter()
        .position(|&b| b == len)
        .unwrap_or(PADDING_BUCKETS.len() - 1)
}

/// Envelopes are keyed by mailbox and id; the value is the padded body sealed under its
/// epoch key (`epochs`). An envelope id is its expiry (u64 BE, an hour boundary)
/// followed by 24 random bytes, so a mailbox's
/// envelopes sort by expiry: fetch skips the expired ones and the sweeper deletes a
/// prefix, with no index to keep.
pub(super) fn envelope_key(recipient: &MailboxId, id: &EnvelopeId) -> [u8; 64] {
    let mut k = [0u8; 64];
    k[..32].copy_from_slice(recipient.as_bytes());
    k[32..].copy_from_slice(id.as_bytes());
    k
}

/// A new envelope id for an envelope expiring at `expires_at`.
pub(super) fn new_envelope_id(expires_at: u64) -> EnvelopeId {
    let mut id = [0u8; 32];
    id[..8].copy_from_slice(&expires_at.to_be_bytes());
    rand::Rng::fill(&mut rand::rng(), &mut id[8..]);
    EnvelopeId(id)
}

/// The expiry an envelope id carries.
pub(super) fn expiry_of(id: &EnvelopeId) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&id.0[..8]);
    u64::from_be_bytes(b)
}

/// The first key of `recipient`'s envelopes expiring after `t`.
pub(super) fn after(recipient: &MailboxId, t: u64) -> [u8; 64] {
    let mut id = [0u8; 32];
    id[..8].copy_from_slice(&t.saturating_add(1).to_be_bytes());
    envelope_key(recipient, &EnvelopeId(id))
}

/// A one-time prekey's key: the directory key and a random slot (u64 BE).
pub(super) fn one_time_key(directory: &HandleTag, seq: u64) -> [u8; 40] {
    let mut k = [0u8; 40];
    k[..32].copy_from_slice(directory.as_bytes());
    k[32..].copy_from_slice(&seq.to_be_bytes());
    k
}

pub(super) fn arr32(b: &[u8], table: &'static str) -> Result<[u8; 32], StoreError> {
    b.try_into().map_err(|_| StoreError::Corrupt(table))
}

pub(super) fn decode<T: for<'a> Deserialize<'a>>(
    b: &[u8],
    table: &'static str,
) -> Result<T, StoreError> {
    postcard::from_bytes(b).map_err(|_| StoreError::Corrupt(table))
}

pub(super) fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, StoreError> {
    postcard::to_stdvec(v).map_err(|e| StoreError::Db(e.to_string()))
}
