//! Connecting: pinned QUIC to the org's relay, the revocation list refreshed and offered;
//! for an owner connection, admission with the device key and the mailbox opened; for a
//! send connection, nothing that identifies the member.

use super::*;

impl Member {
    /// Opens an owner connection to the org's relay: pinned QUIC, revocation list
    /// refresh, admission with the device key, and the mailbox opened (and its sender key
    /// set, if an older client made it without one).
    pub async fn connect(&self) -> Result<Connection, MemberError> {
        let org = self.enrolled()?.clone();
        let address = relay_address(&org)?;
        let mut relay = self.admit(&org, &address).await?;
        let pending = relay
            .open_mailbox(org.recipient, &org.owner)
            .await
            .map_err(|e| relay_err("opening the mailbox", e))?;
        let mut account = load_account(&self.vault, &self.home)?;
        if account.enrolled.as_ref().is_some_and(|e| !e.sender_key_set) {
            self.set_sender_key_on(&relay, &mut account).await?;
        }
        let revocation_version = load_revocations(&self.vault)?.version();
        Ok(Connection::new(relay, address, pending, revocation_version))
    }

    /// Opens a send connection to the org's relay: pinned QUIC and the revocation list
    /// refreshed, nothing else. It never presents the certificate or any key of the
    /// member's, so what is sent on it is not tied to the member.
    pub async fn connect_sender(&self) -> Result<SendConnection, MemberError> {
        let org = self.enrolled()?.clone();
        let address = relay_address(&org)?;
        let relay = RelayConnection::connect(&address).await.map_err(|source| {
            MemberError::Unreachable {
                relay: address.to_string(),
                source,
            }
        })?;
        self.refresh_revocations_on(&relay).await?;
        // The relay no longer sees our certificate, so we refuse for it: peers would
        // drop what a revoked or expired member sends.
        match self.certificate_status()? {
            CertificateStatus::Revoked => return Err(MemberError::SelfRevoked),
            CertificateStatus::Expired => return Err(MemberError::SelfExpired),
            _ => {}
        }
        Ok(SendConnection { relay, address })
    }

    /// Sets the mailbox's sender key on an owner connection with the mailbox open, and
    /// records that it is set.
    pub(super) async fn set_sender_key_on(
        &self,
        relay: &RelayConnection,
        account: &mut Account,
    ) -> Result<(), MemberError> {
        let org = self.enrolled()?;
        let req = Request::SetSenderKey(SetSenderKey {
            sender_key: FixedBytes(org.sender_key.key_pair().public_key().to_bytes()),
        });
        match relay.request(&req).await {
            Ok(Response::SenderKeySet) => {}
            Ok(_) => return Err(unexpected("setting the mailbox's sender key")),
            Err(e) => return Err(relay_err("setting the mailbox's sender key", e)),
        }
        if let Some(e) = &mut account.enrolled {
            e.sender_key_set = true;
        }
        save_account(&self.vault, account)
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
