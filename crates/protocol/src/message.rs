//! Typed requests, responses and server pushes for every relay operation.
//!
//! Each is a serde enum encoded with postcard (see `protocol-spec/SPEC.md`): the variant
//! index as a varint, then the fields in order. Variants are only ever appended, so a
//! variant index keeps its meaning across revisions of a protocol version.

use serde::{Deserialize, Serialize};

use crate::bytes::{BoundedVec, Bytes, FixedBytes};
use crate::error::ErrorCode;
use crate::ids::{EnvelopeId, HandleTag, MailboxId};
use crate::limits::{
    MAX_ACK_IDS, MAX_CERTIFICATE_LEN, MAX_DIRECTORY_ENTRY_LEN, MAX_ENVELOPE_BODY,
    MAX_FETCH_ENVELOPES, MAX_OFFERED_VERSIONS, MAX_ONE_TIME_PREKEY_LEN,
    MAX_ONE_TIME_PREKEYS_PER_PUBLISH, MAX_REVOCATION_LIST_LEN,
};

/// An Ed25519 signature (64 bytes).
pub type Signature = FixedBytes<64>;
/// An Ed25519 public key (32 bytes).
pub type PublicKey = FixedBytes<32>;
/// An envelope body: padded ciphertext, exactly one bucket long.
pub type EnvelopeBody = Bytes<MAX_ENVELOPE_BODY>;

/// A request, sent by a client as the only frame on a new bidirectional stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// First request on a connection: offer protocol versions.
    Hello(Hello),
    /// Prove possession of the device key named in a member certificate.
    Authenticate(Authenticate),
    /// Create a mailbox owned by `owner`.
    CreateMailbox(CreateMailbox),
    /// Prove ownership of a mailbox for this connection (fetch, ack, subscribe).
    OpenMailbox(OpenMailbox),
    /// Publish (replace) the sealed directory entry and add one-time prekeys.
    PublishPrekeys(PublishPrekeys),
    /// Fetch a member's sealed directory entry and one one-time prekey.
    FetchPrekeys(FetchPrekeys),
    /// Store an envelope in the mailbox with the given sender id.
    Send(SendEnvelope),
    /// Have new envelopes for the open mailbox pushed to this connection.
    Subscribe,
    /// Fetch pending envelopes of the open mailbox.
    Fetch(Fetch),
    /// Acknowledge (and so delete) envelopes of the open mailbox.
    Ack(Ack),
    /// Fetch the current revocation list.
    GetRevocationList,
    /// Offer a newer revocation list (it authenticates itself).
    PutRevocationList(PutRevocationList),
    /// Liveness check.
    Ping(Ping),
    /// Fetch a member's sealed directory entry only (certificate and mailbox), without
    /// taking a one-time prekey: for learning who sent a message, or a renewed
    /// certificate, when no new session is started.
    FetchEntry(FetchEntry),
    /// Replace the sender key of the open mailbox: senders who held the old one can no
    /// longer deliver into it.
    SetSenderKey(SetSenderKey),
}

/// `Hello`: the versions the client speaks, in order of preference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Protocol versions offered (at most [`MAX_OFFERED_VERSIONS`]).
    pub versions: BoundedVec<u16, MAX_OFFERED_VERSIONS>,
}

/// `Authenticate`: the member certificate and a device-key signature over
/// [`crate::auth::authenticate_message`], which binds it to this TLS session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Authenticate {
    /// Encoded member certificate (postern-identity).
    pub certificate: Bytes<MAX_CERTIFICATE_LEN>,
    /// Ed25519 signature by the certificate's device key.
    pub signature: Signature,
}

/// `CreateMailbox`: both ids are chosen at random by the client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateMailbox {
    /// Id the owner uses to open the mailbox.
    pub recipient: MailboxId,
    /// Id senders use to deliver into it.
    pub sender: MailboxId,
    /// Ed25519 key that must sign `OpenMailbox` (a key of its own, not the device key).
    pub owner: PublicKey,
    /// Ed25519 key that must sign every `Send` into the mailbox. Its private half goes
    /// to those who may write to the mailbox (in the directory entry, or to one contact),
    /// so a send proves it may write here without saying who writes.
    pub sender_key: PublicKey,
}

/// `SetSenderKey`: the new sender key of the mailbox open on this connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetSenderKey {
    /// Ed25519 key that must sign every `Send` into the mailbox from now on.
    pub sender_key: PublicKey,
}

/// `OpenMailbox`: a signature by the mailbox owner key over
/// [`crate::auth::open_mailbox_message`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenMailbox {
    /// The mailbox's recipient id.
    pub recipient: MailboxId,
    /// Signature by the mailbox's owner key.
    pub signature: Signature,
}

/// `PublishPrekeys`: sealed under the org directory key, so opaque to the relay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishPrekeys {
    /// Keyed hash of the member's handle.
    pub directory: HandleTag,
    /// Sealed entry: certificate, sender mailbox id, signed and last-resort Kyber prekeys.
    pub entry: Bytes<MAX_DIRECTORY_ENTRY_LEN>,
    /// Sealed one-time prekeys to add; each is handed out once.
    pub one_time: BoundedVec<Bytes<MAX_ONE_TIME_PREKEY_LEN>, MAX_ONE_TIME_PREKEYS_PER_PUBLISH>,
}

/// `FetchPrekeys`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchPrekeys {
    /// Keyed hash of the handle looked for.
    pub directory: HandleTag,
}

/// `FetchEntry`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchEntry {
    /// Keyed hash of the handle looked for.
    pub directory: HandleTag,
}

/// `Send`: store an envelope for the mailbox whose sender id is `to`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendEnvelope {
    /// Sender id of the destination mailbox.
    pub to: MailboxId,
    /// Seconds the envelope may wait; the relay clamps it to the org's maximum.
    pub ttl_secs: u32,
    /// Padded sealed-sender ciphertext.
    pub body: EnvelopeBody,
    /// Signature by the destination mailbox's sender key over
    /// [`crate::auth::send_message`] (after [`crate::auth::SEND_CONTEXT`]).
    pub signature: Signature,
}

/// `Fetch`: up to `limit` pending envelopes of the open mailbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fetch {
    /// Most envelopes wanted (the relay may return fewer to stay under the frame limit).
    pub limit: u16,
}

/// `Ack`: delete these envelopes of the open mailbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    /// Envelopes received and stored by the client.
    pub ids: BoundedVec<EnvelopeId, MAX_ACK_IDS>,
}

/// `PutRevocationList`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutRevocationList {
    /// Encoded, signed revocation list (postern-identity).
    pub list: Bytes<MAX_REVOCATION_LIST_LEN>,
}

/// `Ping`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ping {
    /// Echoed in `Pong`.
    pub nonce: u64,
}

/// A stored envelope as handed to its recipient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Id to acknowledge it by.
    pub id: EnvelopeId,
    /// When the relay deletes it, in Unix seconds, rounded up to the minute.
    pub expires_at: u64,
    /// Padded sealed-sender ciphertext.
    pub body: EnvelopeBody,
}

/// A response: the only frame the relay writes back on a request's stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// The request failed; nothing was done.
    Error(ErrorCode),
    /// Answer to `Hello`.
    Welcome(Welcome),
    /// Answer to `Authenticate`.
    Authenticated(Authenticated),
    /// Answer to `CreateMailbox`.
    MailboxCreated,
    /// Answer to `OpenMailbox`.
    MailboxOpened(MailboxOpened),
    /// Answer to `PublishPrekeys`.
    PrekeysPublished(PrekeysPublished),
    /// Answer to `FetchPrekeys` and `FetchEntry`.
    Prekeys(Prekeys),
    /// Answer to `Send`: the envelope is durable on the relay's disk.
    Sent(Sent),
    /// Answer to `Subscribe`.
    Subscribed,
    /// Answer to `Fetch`.
    Envelopes(Envelopes),
    /// Answer to `Ack`.
    Acked(Acked),
    /// Answer to `GetRevocationList`.
    RevocationList(RevocationList),
    /// Answer to `PutRevocationList`.
    RevocationListAccepted(RevocationListAccepted),
    /// Answer to `Ping`.
    Pong(Ping),
    /// Answer to `SetSenderKey`.
    SenderKeySet,
}

/// `Welcome`: the chosen version and a fresh challenge for `Authenticate`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    /// Version both sides now speak.
    pub version: u16,
    /// Random bytes mixed into the authentication transcript.
    pub challenge: FixedBytes<32>,
}

/// `Authenticated`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Authenticated {
    /// Org policy: the maximum TTL, in seconds, that `Send` is clamped to.
    pub max_ttl_secs: u32,
}

/// `MailboxOpened`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailboxOpened {
    /// Envelopes waiting.
    pub pending: u32,
}

/// `PrekeysPublished`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrekeysPublished {
    /// One-time prekeys now held for this entry.
    pub one_time_available: u32,
}

/// `Prekeys`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prekeys {
    /// The sealed directory entry.
    pub entry: Bytes<MAX_DIRECTORY_ENTRY_LEN>,
    /// One sealed one-time prekey, removed from the relay as it is handed out; `None`
    /// when they have run out, and always `None` in answer to `FetchEntry`.
    pub one_time: Option<Bytes<MAX_ONE_TIME_PREKEY_LEN>>,
}

/// `Sent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sent {
    /// Id the relay stored the envelope under.
    pub id: EnvelopeId,
    /// When it expires, in Unix seconds (after clamping), rounded up to the minute.
    pub expires_at: u64,
}

/// `Envelopes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelopes {
    /// Pending, unexpired envelopes, in order of expiry.
    pub envelopes: BoundedVec<Envelope, MAX_FETCH_ENVELOPES>,
    /// Whether more are waiting.
    pub more: bool,
}

/// `Acked`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acked {
    /// Envelopes deleted (ids already gone are not counted and are not an error).
    pub deleted: u32,
}

/// `RevocationList`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationList {
    /// The current signed list, if the relay has one.
    pub list: Option<Bytes<MAX_REVOCATION_LIST_LEN>>,
}

/// `RevocationListAccepted`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationListAccepted {
    /// Version now held.
    pub version: u64,
}

/// A server push: a frame on the relay-opened unidirectional stream of a subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Push {
    /// A new envelope for the subscribed mailbox.
    Envelope(Envelope),
    /// The mailbox had hit its quota and now has room again.
    SpaceAvailable,
    /// A newer revocation list is held; fetch it with `GetRevocationList`.
    RevocationListUpdated {
        /// Its version.
        version: u64,
    },
}
