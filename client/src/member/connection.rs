//! The two kinds of relay connection a member opens, and how transport failures become
//! [`MemberError`]s.
//!
//! An *owner connection* ([`Connection`]) is admitted with the member's certificate and
//! opens the member's mailbox: it fetches, acknowledges, subscribes and publishes, and
//! never sends or looks anyone up. A *send connection* ([`SendConnection`]) carries no
//! identity at all: it sends (each send signed with the destination mailbox's sender key)
//! and looks up directory entries. The relay refuses a send on an owner connection, so
//! no connection ever pairs a member with the mailboxes it writes to.

use tokio::sync::OnceCell;

use super::*;

/// An open, admitted relay connection with the member's mailbox opened.
pub struct Connection {
    /// The connection.
    pub(super) relay: RelayConnection,
    /// Where it goes.
    pub(super) address: RelayAddress,
    /// A connection without identity to the same relay, opened on first need (looking up
    /// a sender met for the first time, a send from the same process).
    pub(super) anonymous: OnceCell<RelayConnection>,
    /// Envelopes pending when the mailbox was opened.
    pub pending: u32,
    /// The relay's maximum TTL.
    pub relay_max_ttl_secs: u32,
    /// Version of the revocation list held after connecting.
    pub revocation_version: u64,
}

/// A relay connection that carries no identity: for sends and directory lookups.
pub struct SendConnection {
    /// The connection (never authenticated).
    pub(super) relay: RelayConnection,
    /// Where it goes.
    pub(super) address: RelayAddress,
}

impl std::fmt::Debug for SendConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendConnection")
            .field("address", &self.address.to_string())
            .finish_non_exhaustive()
    }
}

impl SendConnection {
    /// The relay's address.
    pub fn address(&self) -> String {
        self.address.to_string()
    }

    /// The underlying relay connection.
    pub fn relay(&self) -> &RelayConnection {
        &self.relay
    }

    /// Closes politely.
    pub async fn close(self) {
        self.relay.close().await;
    }
}

/// Where sends and lookups go: a [`SendConnection`], or the connection without identity
/// that an owner [`Connection`] opens beside itself when first needed.
#[allow(async_fn_in_trait)]
pub trait SendPath {
    /// The connection without identity to use.
    async fn anonymous(&self) -> Result<&RelayConnection, MemberError>;
    /// The relay's announced maximum TTL (0: not known).
    fn relay_max_ttl_secs(&self) -> u32;
}

impl SendPath for SendConnection {
    async fn anonymous(&self) -> Result<&RelayConnection, MemberError> {
        Ok(&self.relay)
    }
    fn relay_max_ttl_secs(&self) -> u32 {
        0
    }
}

impl SendPath for Connection {
    async fn anonymous(&self) -> Result<&RelayConnection, MemberError> {
        self.anonymous
            .get_or_try_init(|| async {
                RelayConnection::connect(&self.address)
                    .await
                    .map_err(|source| MemberError::Unreachable {
                        relay: self.address.to_string(),
                        source,
                    })
            })
            .await
    }
    fn relay_max_ttl_secs(&self) -> u32 {
        self.relay_max_ttl_secs
    }
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("address", &self.address.to_string())
            .field("pending", &self.pending)
            .finish_non_exhaustive()
    }
}

impl Connection {
    pub(super) fn new(
        relay: RelayConnection,
        address: RelayAddress,
        pending: u32,
        revocation_version: u64,
    ) -> Self {
        Self {
            relay_max_ttl_secs: relay.max_ttl_secs().unwrap_or(0),
            relay,
            address,
            anonymous: OnceCell::new(),
            pending,
            revocation_version,
        }
    }

    /// The relay's address.
    pub fn address(&self) -> String {
        self.address.to_string()
    }

    /// Subscribes to pushes for the mailbox.
    pub async fn subscribe(&self) -> Result<PushStream, MemberError> {
        self.relay
            .subscribe()
            .await
            .map_err(|e| relay_err("subscribe", e))
    }

    /// The underlying relay connection.
    pub fn relay(&self) -> &RelayConnection {
        &self.relay
    }

    /// Closes politely (both connections).
    pub async fn close(self) {
        if let Some(a) = self.anonymous.into_inner() {
            a.close().await;
        }
        self.relay.close().await;
    }

    pub(super) async fn request(
        &self,
        what: &'static str,
        req: &Request,
    ) -> Result<Response, MemberError> {
        self.relay
            .request(req)
            .await
            .map_err(|e| relay_err(what, e))
    }
}

pub(super) fn relay_err(what: &'static str, e: TransportError) -> MemberError {
    match e {
        TransportError::Refused(code) => MemberError::Refused { what, code },
        other => MemberError::Relay {
            what,
            source: other,
        },
    }
}

pub(super) fn unexpected(what: &'static str) -> MemberError {
    MemberError::Relay {
        what,
        source: TransportError::UnexpectedResponse,
    }
}
