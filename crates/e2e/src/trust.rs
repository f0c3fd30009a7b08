//! Who is trusted: a peer's Signal identity key is accepted only if it equals the key in
//! that peer's valid, unrevoked member certificate. No trust on first use, no prompt.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use libsignal_protocol::IdentityKey;
use postern_identity::{MemberCertificate, OrgKey, RevocationList, TrustError, verify_member};

/// Why a peer is not trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustFailure {
    /// No member certificate is known for this name.
    #[error("no member certificate is known for this member")]
    UnknownMember,
    /// The member certificate is not valid now: expired, not yet valid, revoked, another
    /// org's.
    #[error("member certificate refused: {0}")]
    Certificate(TrustError),
    /// The certificate's Signal identity key does not parse.
    #[error("the member certificate's Signal identity key is not a valid key")]
    BadIdentityKey,
}

/// Answers "which Signal identity key is `member` certified to hold, now?". `member` is
/// the session name: the member's handle (the sender name in sealed-sender certificates).
pub trait MemberTrust {
    /// The certified identity key, or why the member is not trusted at `now`.
    fn certified_identity(
        &self,
        member: &str,
        now: SystemTime,
    ) -> Result<IdentityKey, TrustFailure>;
}

impl<T: MemberTrust + ?Sized> MemberTrust for &T {
    fn certified_identity(
        &self,
        member: &str,
        now: SystemTime,
    ) -> Result<IdentityKey, TrustFailure> {
        (**self).certified_identity(member, now)
    }
}

/// The org's roster as a client holds it: member certificates by handle, the latest
/// revocation list, the org key. Checks with `postern_identity::verify_member`.
pub struct OrgRoster {
    /// The org every certificate must belong to.
    org: OrgKey,
    /// The latest revocation list held.
    revocations: RevocationList,
    /// Certificates by handle.
    members: HashMap<String, MemberCertificate>,
}

impl OrgRoster {
    /// A roster for `org` with its current revocation list (checked by
    /// `verify_member` to be `org`'s).
    pub fn new(org: OrgKey, revocations: RevocationList) -> Self {
        Self {
            org,
            revocations,
            members: HashMap::new(),
        }
    }

    /// Adds or replaces a member's certificate (keyed by its handle).
    pub fn insert(&mut self, cert: MemberCertificate) {
        self.members
            .insert(cert.body().handle.as_str().to_owned(), cert);
    }

    /// Replaces the revocation list with a newer one of this org; an older or
    /// conflicting list is refused ([`RevocationList::accept_update`]). Returns whether
    /// it changed.
    pub fn update_revocations(&mut self, offered: RevocationList) -> Result<bool, TrustError> {
        let newer = RevocationList::accept_update(Some(&self.revocations), &offered, &self.org)?;
        if newer {
            self.revocations = offered;
        }
        Ok(newer)
    }
}

impl MemberTrust for OrgRoster {
    fn certified_identity(
        &self,
        member: &str,
        now: SystemTime,
    ) -> Result<IdentityKey, TrustFailure> {
        let cert = self
            .members
            .get(member)
            .ok_or(TrustFailure::UnknownMember)?;
        let secs = now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        verify_member(cert, &self.org, &self.revocations, secs)
            .map_err(TrustFailure::Certificate)?;
        IdentityKey::decode(&cert.body().signal_identity_key.to_bytes())
            .map_err(|_| TrustFailure::BadIdentityKey)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::testkit::Org;

    #[test]
    fn roster_refuses_unknown_revoked_and_takes_only_newer_revocation_lists() {
        let org = Org::new();
        let key = libsignal_protocol::IdentityKeyPair::generate(&mut rand::rng());
        let ik = key.identity_key().serialize();
        let mut roster = org.roster(vec![]);
        roster.insert(org.certificate("alice", &ik, 5));
        let now = SystemTime::now();
        assert_eq!(
            roster.certified_identity("alice", now).unwrap(),
            *key.identity_key()
        );
        assert_eq!(
            roster.certified_identity("bob", now),
            Err(TrustFailure::UnknownMember)
        );
        assert!(
            roster
                .update_revocations(org.revocations(2, vec![5]))
                .unwrap()
        );
        assert_eq!(
            roster.certified_identity("alice", now),
            Err(TrustFailure::Certificate(TrustError::Revoked { serial: 5 }))
        );
        // An older list cannot un-revoke.
        assert!(matches!(
            roster.update_revocations(org.revocations(1, vec![])),
            Err(TrustError::StaleRevocationList { .. })
        ));
        // Another org's certificate is refused.
        let other = Org::new();
        roster.insert(other.certificate("mallory", &ik, 6));
        assert!(matches!(
            roster.certified_identity("mallory", now),
            Err(TrustFailure::Certificate(TrustError::WrongOrg { .. }))
        ));
    }
}
