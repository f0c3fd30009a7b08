//! Connecting: pinned QUIC to the org's relay, the revocation list refreshed and offered,
//! admission with the device key, the mailbox opened.

use super::*;

impl Member {
    /// Connects to the org's relay: pinned QUIC, revocation list refresh, admission with
    /// the device key, and the mailbox opened.
    pub async fn connect(&self) -> Result<Connection, MemberError> {
        let org = self.enrolled()?.clone();
        let address = relay_address(&org)?;
        let mut relay = self.admit(&org, &address).await?;
        let pending = relay
            .open_mailbox(org.recipient, &org.owner)
            .await
            .map_err(|e| relay_err("opening the mailbox", e))?;
        let revocation_version = load_revocations(&self.vault)?.version();
        Ok(Connection {
            relay_max_ttl_secs: relay.max_ttl_secs().unwrap_or(0),
            relay,
            address: address.to_string(),
            pending,
            revocation_version,
        })
    }

    pub(super) async fn admit(
        &self,
        org: &OrgState,
        address: &RelayAddress,
    ) -> Result<RelayConnection, MemberError> {
        let mut relay =
            RelayConnection::connect(address)
                .await
                .map_err(|source| MemberError::Unreachable {
                    relay: address.to_string(),
                    source,
                })?;
        self.refresh_revocations_on(&relay).await?;
        match relay.authenticate(&org.signer).await {
            Ok(_) => Ok(relay),
            Err(TransportError::Refused(ErrorCode::Revoked)) => Err(MemberError::SelfRevoked),
            Err(TransportError::Refused(ErrorCode::Expired)) => Err(MemberError::SelfExpired),
            Err(e) => Err(relay_err("admission", e)),
        }
    }

    /// Fetches the relay's revocation list and keeps it if it is newer than the one held
    /// (an older or conflicting one is never accepted; if the relay's is older, ours is
    /// offered to it). Returns whether ours changed.
    pub async fn refresh_revocations(&self, conn: &Connection) -> Result<bool, MemberError> {
        self.refresh_revocations_on(&conn.relay).await
    }

    pub(super) async fn refresh_revocations_on(
        &self,
        relay: &RelayConnection,
    ) -> Result<bool, MemberError> {
        let org = self.enrolled()?;
        let held = load_revocations(&self.vault)?;
        let offered = match relay.request(&Request::GetRevocationList).await {
            Ok(Response::RevocationList(r)) => r.list,
            Ok(_) => return Err(unexpected("fetching the revocation list")),
            Err(e) => return Err(relay_err("fetching the revocation list", e)),
        };
        let offered = offered.and_then(|b| RevocationList::decode(b.as_slice()).ok());
        match offered {
            Some(list) => match RevocationList::accept_update(Some(&held), &list, &org.org) {
                Ok(true) => {
                    self.vault.put_record(REVOCATIONS_RECORD, &list.encode())?;
                    Ok(true)
                }
                Ok(false) => Ok(false),
                Err(TrustError::StaleRevocationList { .. }) => {
                    self.offer_revocations(relay, &held).await;
                    Ok(false)
                }
                // A conflicting or foreign list changes nothing we hold.
                Err(_) => Ok(false),
            },
            None => {
                self.offer_revocations(relay, &held).await;
                Ok(false)
            }
        }
    }

    pub(super) async fn offer_revocations(&self, relay: &RelayConnection, held: &RevocationList) {
        if let Ok(list) = Bytes::new(held.encode()) {
            // Best effort: the relay checks it itself.
            let _ = relay
                .request(&Request::PutRevocationList(PutRevocationList { list }))
                .await;
        }
    }
}
