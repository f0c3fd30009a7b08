//! An admitted relay connection with the member's mailbox opened, and how transport
//! failures become [`MemberError`]s.

use super::*;

/// An open, admitted relay connection with the member's mailbox opened.
pub struct Connection {
    /// The connection.
    pub(super) relay: RelayConnection,
    /// Where it goes (for messages).
    pub(super) address: String,
    /// Envelopes pending when the mailbox was opened.
    pub pending: u32,
    /// The relay's maximum TTL.
    pub relay_max_ttl_secs: u32,
    /// Version of the revocation list held after connecting.
    pub revocation_version: u64,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("address", &self.address)
            .field("pending", &self.pending)
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// The relay's address.
    pub fn address(&self) -> &str {
        &self.address
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

    /// Closes politely.
    pub async fn close(self) {
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
