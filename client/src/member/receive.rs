//! Receiving: decrypt and store each envelope, acknowledge it, page through the mailbox;
//! stored messages and their expiry.

use super::*;

impl Member {
    /// Decrypts and stores one envelope (without acknowledging it). An unknown sender's
    /// directory entry is fetched and verified first.
    pub(super) async fn process(
        &self,
        conn: &Connection,
        envelope: &Envelope,
    ) -> Result<EnvelopeOutcome, MemberError> {
        self.enrolled()?;
        let Ok(sealed) = unpad(envelope.body.as_slice()) else {
            return Ok(EnvelopeOutcome::Dropped(Dropped::Undecryptable));
        };
        let sealed = Arc::new(sealed.to_vec());
        for attempt in 0..2 {
            let sealed = sealed.clone();
            let result = self
                .with_messenger(move |m, _| Ok(m.receive(&sealed, SystemTime::now())))
                .await?;
            return Ok(match result {
                Ok(Received::New(m)) => EnvelopeOutcome::New(m),
                Ok(Received::Duplicate { .. }) | Err(E2eError::Replay { .. }) => {
                    EnvelopeOutcome::Dropped(Dropped::Duplicate)
                }
                Ok(Received::Expired { .. }) => EnvelopeOutcome::Dropped(Dropped::Expired),
                Err(E2eError::Untrusted { peer, reason })
                    if attempt == 0 && refreshable(&reason) =>
                {
                    let looked_up = match conn.anonymous().await {
                        Ok(relay) => self.lookup(relay, &peer, false).await,
                        Err(e) => Err(e),
                    };
                    match looked_up {
                        Ok(_) => continue,
                        Err(MemberError::PeerRevoked(p)) => {
                            EnvelopeOutcome::Dropped(Dropped::Revoked(p))
                        }
                        Err(MemberError::Relay { .. } | MemberError::Unreachable { .. }) => {
                            EnvelopeOutcome::Deferred
                        }
                        Err(MemberError::Vault(e)) => return Err(MemberError::Vault(e)),
                        Err(_) => EnvelopeOutcome::Dropped(Dropped::Untrusted(peer)),
                    }
                }
                Err(E2eError::Untrusted {
                    peer,
                    reason: TrustFailure::Certificate(TrustError::Revoked { .. }),
                }) => EnvelopeOutcome::Dropped(Dropped::Revoked(peer)),
                Err(E2eError::Untrusted { peer, .. }) => {
                    EnvelopeOutcome::Dropped(Dropped::Untrusted(peer))
                }
                Err(E2eError::Vault(e)) => return Err(MemberError::Vault(e)),
                Err(_) => EnvelopeOutcome::Dropped(Dropped::Undecryptable),
            });
        }
        Ok(EnvelopeOutcome::Dropped(Dropped::Undecryptable))
    }

    pub(super) async fn ack(
        &self,
        conn: &Connection,
        ids: Vec<EnvelopeId>,
    ) -> Result<(), MemberError> {
        if ids.is_empty() {
            return Ok(());
        }
        let ids =
            BoundedVec::new(ids).map_err(|_| MemberError::Internal("too many acks".into()))?;
        match conn
            .request("acknowledging", &Request::Ack(Ack { ids }))
            .await?
        {
            Response::Acked(_) => Ok(()),
            _ => Err(unexpected("acknowledging")),
        }
    }

    /// Processes one pushed envelope: decrypt, store, then acknowledge (dropped ones are
    /// acknowledged too; deferred ones are not).
    pub async fn receive_envelope(
        &self,
        conn: &Connection,
        envelope: &Envelope,
    ) -> Result<EnvelopeOutcome, MemberError> {
        let outcome = self.process(conn, envelope).await?;
        if !matches!(outcome, EnvelopeOutcome::Deferred) {
            self.ack(conn, vec![envelope.id]).await?;
        }
        Ok(outcome)
    }

    /// Fetches every pending envelope, page by page: each is decrypted and stored, then
    /// acknowledged; duplicates, expired, revoked senders' and undecryptable envelopes are
    /// acknowledged and counted.
    pub async fn fetch(&self, conn: &Connection) -> Result<FetchReport, MemberError> {
        let mut report = FetchReport::default();
        loop {
            let page = match conn
                .request(
                    "fetching messages",
                    &Request::Fetch(Fetch { limit: FETCH_PAGE }),
                )
                .await?
            {
                Response::Envelopes(e) => e,
                _ => return Err(unexpected("fetching messages")),
            };
            let mut acks = Vec::new();
            for env in page.envelopes.as_slice() {
                let outcome = self.process(conn, env).await?;
                if !matches!(outcome, EnvelopeOutcome::Deferred) {
                    acks.push(env.id);
                }
                report.add(outcome);
            }
            let progressed = !acks.is_empty();
            self.ack(conn, acks).await?;
            if !page.more || !progressed {
                break;
            }
        }
        Ok(report)
    }

    /// The stored, unexpired messages, oldest first (expired ones are deleted first).
    pub fn messages(&self) -> Result<Vec<StoredMessage>, MemberError> {
        let now = SystemTime::now();
        self.vault.purge_expired(now)?;
        Ok(self.vault.messages(now)?)
    }

    /// Deletes expired messages now; returns how many.
    pub fn purge_expired(&self) -> Result<usize, MemberError> {
        Ok(self.vault.purge_expired(SystemTime::now())?)
    }
}
