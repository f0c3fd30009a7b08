//! Who this account knows: contacts with their status, safety numbers, our own
//! certificate's status.

use super::*;

impl Member {
    /// The members this account knows, with their status under the held revocation list.
    pub async fn contacts(&self) -> Result<Vec<Contact>, MemberError> {
        self.with_messenger(|m, vault| {
            let revocations = load_revocations(vault)?;
            let now = unix_now();
            let mut out = Vec::new();
            for c in load_contacts(vault)? {
                let Ok(cert) = MemberCertificate::decode(&c.certificate) else {
                    continue;
                };
                let b = cert.body();
                let status = certificate_status(&cert, &revocations, now);
                out.push(Contact {
                    handle: c.handle.clone(),
                    role: b.role.to_string(),
                    status: status.as_str().to_owned(),
                    not_after: b.not_after,
                    session: m.has_session(&c.handle)?,
                });
            }
            out.sort_by(|a, b| a.handle.cmp(&b.handle));
            Ok(out)
        })
        .await
    }

    /// The safety number with `handle`, from the identity key of the session.
    pub async fn safety_number(&self, handle: &str) -> Result<SafetyNumber, MemberError> {
        handle_of(handle)?;
        let peer = handle.to_owned();
        self.with_messenger(move |m, _| match m.safety_number(&peer) {
            Ok(s) => Ok(s),
            Err(E2eError::NoSession { .. }) => Err(MemberError::NoSession(peer)),
            Err(e) => Err(e.into()),
        })
        .await
    }

    /// Our own certificate's status under the held revocation list.
    pub fn certificate_status(&self) -> Result<CertificateStatus, MemberError> {
        let org = self.enrolled()?;
        Ok(certificate_status(
            &org.certificate,
            &load_revocations(&self.vault)?,
            unix_now(),
        ))
    }

    /// The role in `handle`'s certificate as held in this account's contacts (stored
    /// only after verification against the org root), if that certificate is active now
    /// under the held revocation list. `None` for an unknown, expired or revoked member.
    /// Used to authenticate the role behind an end-to-end-encrypted message, whose
    /// sender's certificate the messenger has just checked against the same contacts.
    pub fn contact_role(&self, handle: &str) -> Result<Option<Role>, MemberError> {
        let revocations = load_revocations(&self.vault)?;
        let now = unix_now();
        Ok(load_contacts(&self.vault)?
            .into_iter()
            .filter(|c| c.handle == handle)
            .filter_map(|c| MemberCertificate::decode(&c.certificate).ok())
            .find(|cert| {
                cert.body().handle.as_str() == handle
                    && certificate_status(cert, &revocations, now) == CertificateStatus::Active
            })
            .map(|cert| cert.body().role))
    }
}
