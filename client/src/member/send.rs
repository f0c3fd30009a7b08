//! Sending: TTL resolution, session start from a directory entry, encryption, the
//! relay's `Send`.

use super::*;

impl Member {
    /// The TTL to use: `requested`, else the org default; refused above the org's or the
    /// relay's maximum.
    pub fn resolve_ttl(
        &self,
        requested: Option<Duration>,
        relay_max_ttl_secs: u32,
    ) -> Result<Duration, MemberError> {
        resolve_ttl(requested, &self.policy()?, relay_max_ttl_secs)
    }

    /// Encrypts `body` to `to` and stores it on the relay. Returns only once the relay
    /// has durably accepted the envelope. Sets up a session from the directory first if
    /// there is none; refuses revoked or untrusted peers. The lookup and the send go on
    /// `conn`'s connection without identity, signed with the destination's sender key.
    pub async fn send(
        &self,
        conn: &impl SendPath,
        to: &str,
        content_type: ContentType,
        body: &[u8],
        ttl: Option<Duration>,
    ) -> Result<SendReceipt, MemberError> {
        self.enrolled()?;
        handle_of(to)?;
        if to == self.handle {
            return Err(MemberError::SelfSend);
        }
        let relay_max = conn.relay_max_ttl_secs();
        let ttl = self.resolve_ttl(ttl, relay_max)?;
        if body.len() > postern_e2e::plaintext::MAX_BODY_LEN {
            return Err(MemberError::TooLong(body.len()));
        }
        let mut new_session = false;
        let has_session = {
            let to = to.to_owned();
            self.with_messenger(move |m, _| Ok(m.has_session(&to)?))
                .await?
        };
        // A contact stored by an older client has no sender key: look it up again.
        let known = load_contacts(&self.vault)?
            .iter()
            .any(|c| c.handle == to && c.sender_key.is_some());
        let relay = conn.anonymous().await?;
        if !has_session || !known {
            let (entry, one_time) = self.lookup(relay, to, !has_session).await?;
            if !has_session {
                let bundle = assemble_bundle(&entry.prekeys, one_time.as_ref())?;
                let bundle = encode_bundle(&bundle).map_err(E2eError::from)?;
                self.start_session(to, bundle).await?;
                new_session = true;
            }
        }
        let outgoing = match self.encrypt(to, content_type, body, ttl).await {
            Err(MemberError::E2e(E2eError::Untrusted { reason, .. })) if refreshable(&reason) => {
                self.lookup(relay, to, false).await?;
                self.encrypt(to, content_type, body, ttl).await?
            }
            other => other?,
        };
        let padded = pad(&outgoing.1).map_err(|_| MemberError::TooLong(body.len()))?;
        let contact = load_contacts(&self.vault)?
            .into_iter()
            .find(|c| c.handle == to)
            .ok_or_else(|| MemberError::UnknownHandle(to.to_owned()))?;
        let sender_key = contact
            .sender_key
            .as_ref()
            .ok_or_else(|| MemberError::UnknownHandle(to.to_owned()))?
            .key_pair();
        // One relay TTL for every envelope, whatever it carries: the org's maximum (capped
        // to the relay's). The message's own expiry is inside the encryption, so the
        // relay's copy says nothing about the content type or the chosen TTL.
        let sent = relay
            .send(
                MailboxId(contact.sender),
                relay_ttl(&self.policy()?, relay_max),
                Bytes::new(padded).map_err(|_| MemberError::TooLong(body.len()))?,
                &sender_key,
            )
            .await;
        match sent {
            Ok(s) => Ok(SendReceipt {
                message_id: hex::encode(outgoing.0.0),
                to: to.to_owned(),
                envelope_id: hex::encode(s.id.as_bytes()),
                relay_expires_at: s.expires_at,
                expires_at_ms: outgoing.2,
                new_session,
            }),
            Err(e) => Err(relay_err("storing the message", e)),
        }
    }

    pub(super) async fn start_session(&self, to: &str, bundle: Vec<u8>) -> Result<(), MemberError> {
        let to = to.to_owned();
        self.with_messenger(
            move |m, _| match m.start_session(&to, &bundle, SystemTime::now()) {
                Ok(()) => Ok(()),
                Err(E2eError::Untrusted { reason, .. }) => Err(trust_failure(&to, &reason)),
                Err(e) => Err(e.into()),
            },
        )
        .await
    }

    /// Returns (id, sealed, expires_at_ms).
    pub(super) async fn encrypt(
        &self,
        to: &str,
        content_type: ContentType,
        body: &[u8],
        ttl: Duration,
    ) -> Result<(postern_e2e::MessageId, Vec<u8>, u64), MemberError> {
        self.enrolled()?;
        let (to, body) = (to.to_owned(), Zeroizing::new(body.to_vec()));
        self.with_messenger(move |m, _| {
            let now = SystemTime::now();
            match m.send(&to, content_type, &body, ttl, now) {
                Ok(o) => {
                    let sent = now
                        .duration_since(UNIX_EPOCH)
                        .map(|d| d.as_millis() as u64)
                        .unwrap_or(0);
                    // As the messenger computes it.
                    let expires = sent.saturating_add(ttl.as_millis().max(1) as u64);
                    Ok((o.id, o.sealed, expires))
                }
                Err(E2eError::Untrusted { peer, reason }) if !refreshable(&reason) => {
                    Err(trust_failure(&peer, &reason))
                }
                Err(e) => Err(e.into()),
            }
        })
        .await
    }

    /// Sends a text message.
    pub async fn send_text(
        &self,
        conn: &impl SendPath,
        to: &str,
        text: &str,
        ttl: Option<Duration>,
    ) -> Result<SendReceipt, MemberError> {
        self.send(conn, to, ContentType::Text, text.as_bytes(), ttl)
            .await
    }
}

/// The TTL every envelope is stored with at the relay: the org's maximum, capped to the
/// relay's (`0`: not known).
pub(super) fn relay_ttl(policy: &Policy, relay_max_ttl_secs: u32) -> u32 {
    let org = u32::try_from(policy.max_ttl_secs).unwrap_or(u32::MAX);
    match relay_max_ttl_secs {
        0 => org,
        relay => org.min(relay),
    }
    .max(1)
}

/// The TTL rule: `requested`, else the org's default; refused if zero, above the org's
/// maximum, or above the relay's (`0`: the relay's is not known yet).
pub(super) fn resolve_ttl(
    requested: Option<Duration>,
    policy: &Policy,
    relay_max_ttl_secs: u32,
) -> Result<Duration, MemberError> {
    let ttl = requested.unwrap_or(Duration::from_secs(policy.default_ttl_secs));
    if ttl.is_zero() {
        return Err(MemberError::TtlZero);
    }
    let show = |d: Duration| humantime::format_duration(d).to_string();
    if ttl > Duration::from_secs(policy.max_ttl_secs) {
        return Err(MemberError::TtlTooLong {
            requested: show(ttl),
            max: show(Duration::from_secs(policy.max_ttl_secs)),
            limit: "org",
        });
    }
    if relay_max_ttl_secs > 0 && ttl > Duration::from_secs(u64::from(relay_max_ttl_secs)) {
        return Err(MemberError::TtlTooLong {
            requested: show(ttl),
            max: show(Duration::from_secs(u64::from(relay_max_ttl_secs))),
            limit: "relay",
        });
    }
    Ok(ttl)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn policy() -> Policy {
        Policy {
            max_ttl_secs: 48 * 3600,
            default_ttl_secs: 12 * 3600,
            retention_days: 30,
        }
    }

    #[test]
    fn the_ttl_is_the_request_else_the_org_default() {
        assert_eq!(resolve_ttl(None, &policy(), 0).unwrap(), 12 * HOUR);
        assert_eq!(resolve_ttl(Some(HOUR), &policy(), 0).unwrap(), HOUR);
        // Exactly at either limit is allowed.
        assert_eq!(
            resolve_ttl(Some(48 * HOUR), &policy(), 0).unwrap(),
            48 * HOUR
        );
        assert_eq!(resolve_ttl(Some(HOUR), &policy(), 3600).unwrap(), HOUR);
    }

    #[test]
    fn every_envelope_gets_the_same_relay_ttl_whatever_its_own() {
        assert_eq!(relay_ttl(&policy(), 0), 48 * 3600);
        assert_eq!(relay_ttl(&policy(), 3600), 3600);
        assert_eq!(relay_ttl(&policy(), 100 * 3600), 48 * 3600);
        let huge = Policy {
            max_ttl_secs: u64::MAX,
            ..policy()
        };
        assert_eq!(relay_ttl(&huge, 0), u32::MAX);
    }

    #[test]
    fn a_ttl_above_a_limit_or_zero_is_refused_naming_the_limit() {
        let e = resolve_ttl(Some(49 * HOUR), &policy(), 0).unwrap_err();
        assert!(
            matches!(e, MemberError::TtlTooLong { limit: "org", .. }),
            "{e:?}"
        );
        assert!(e.to_string().contains("2days"), "{e}");
        let e = resolve_ttl(Some(2 * HOUR), &policy(), 3600).unwrap_err();
        assert!(
            matches!(e, MemberError::TtlTooLong { limit: "relay", .. }),
            "{e:?}"
        );
        // The org default itself is held to the relay's limit.
        let e = resolve_ttl(None, &policy(), 3600).unwrap_err();
        assert!(
            matches!(e, MemberError::TtlTooLong { limit: "relay", .. }),
            "{e:?}"
        );
        let e = resolve_ttl(Some(Duration::ZERO), &policy(), 0).unwrap_err();
        assert!(matches!(e, MemberError::TtlZero), "{e:?}");
        let zero_default = Policy {
            default_ttl_secs: 0,
            ..policy()
        };
        assert!(matches!(
            resolve_ttl(None, &zero_default, 0),
            Err(MemberError::TtlZero)
        ));
    }
}
