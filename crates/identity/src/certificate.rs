//! Member certificates: the org root vouches that a pseudonymous handle, in a role, holds
//! a Signal identity key and a device key, for a window of time.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::encoding::{Signed, SignedBody, context};
use crate::error::TrustError;
use crate::keys::{DevicePublicKey, OrgKey, SignalPublicKey};
use crate::revocation::RevocationList;

/// Shortest handle.
pub const MIN_HANDLE_LEN: usize = 2;
/// Longest handle.
pub const MAX_HANDLE_LEN: usize = 32;

/// A member's handle: a **pseudonym**, never a real name, since certificates travel to
/// every member and (sealed) to relays. 2–32 characters from `a-z 0-9 . _ -`, starting
/// with a letter or digit. It is also the member's sealed-sender and session name, so it
/// is unique within an org.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Handle(String);

/// A handle is not 2–32 characters of `a-z 0-9 . _ -` starting with a letter or digit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "a handle is a pseudonym of 2-32 characters from a-z 0-9 . _ - starting with a letter or digit (never a real name)"
)]
pub struct HandleError;

impl Handle {
    /// Checks and wraps a handle.
    pub fn new(handle: &str) -> Result<Self, HandleError> {
        let ok_len = (MIN_HANDLE_LEN..=MAX_HANDLE_LEN).contains(&handle.len());
        let mut chars = handle.chars();
        let ok_first = chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        let ok_rest = chars
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'));
        if ok_len && ok_first && ok_rest {
            Ok(Self(handle.to_owned()))
        } else {
            Err(HandleError)
        }
    }

    /// The handle text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Handle {
    type Error = HandleError;
    fn try_from(s: String) -> Result<Self, HandleError> {
        Self::new(&s)
    }
}

impl From<Handle> for String {
    fn from(h: Handle) -> Self {
        h.0
    }
}

impl FromStr for Handle {
    type Err = HandleError;
    fn from_str(s: &str) -> Result<Self, HandleError> {
        Self::new(s)
    }
}

impl fmt::Display for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Handle({})", self.0)
    }
}

/// What a member may do. On the wire: `admin` = 0, `coordinator` = 1, `courier` = 2.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Role {
    /// Runs the org: may administer members (with the org root held offline).
    Admin,
    /// Plans deliveries, holds hand-off commitments.
    Coordinator,
    /// Carries deliveries.
    Courier,
}

impl Role {
    /// All roles.
    pub const ALL: [Role; 3] = [Role::Admin, Role::Coordinator, Role::Courier];

    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Coordinator => "coordinator",
            Role::Courier => "courier",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role name is not `admin`, `coordinator` or `courier`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a role is admin, coordinator or courier")]
pub struct RoleParseError;

impl FromStr for Role {
    type Err = RoleParseError;
    fn from_str(s: &str) -> Result<Self, RoleParseError> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or(RoleParseError)
    }
}

/// The signed fields of a member certificate, in wire order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberCertificateBody {
    /// The org that vouches for the member (must have signed it).
    pub org: OrgKey,
    /// Random, unique within the org; what revocation lists name.
    pub serial: u64,
    /// The member's pseudonym.
    pub handle: Handle,
    /// What the member may do.
    pub role: Role,
    /// The member's Signal identity public key: peers check sessions against it instead
    /// of trusting on first use.
    pub signal_identity_key: SignalPublicKey,
    /// The member's device key: admits the device to relays.
    pub device_key: DevicePublicKey,
    /// Start of validity, unix seconds, inclusive.
    pub not_before: u64,
    /// End of validity, unix seconds, exclusive.
    pub not_after: u64,
}

impl SignedBody for MemberCertificateBody {
    const KIND: &'static str = "member certificate";
    const CONTEXT: &'static [u8] = context::MEMBER_CERTIFICATE;
    const MAX_ENCODED_LEN: usize = 512;

    fn check(&self) -> Result<(), &'static str> {
        if self.not_before >= self.not_after {
            return Err("validity window is empty (not_before >= not_after)");
        }
        Ok(())
    }

    fn signer(&self) -> [u8; 32] {
        self.org.to_bytes()
    }
}

/// A member certificate: [`MemberCertificateBody`] signed by the org root.
pub type MemberCertificate = Signed<MemberCertificateBody>;

/// Where a certificate stands at a moment, without raising an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertificateStatus {
    /// Valid now and not revoked.
    Active,
    /// `now < not_before`.
    NotYetValid,
    /// `now >= not_after`.
    Expired,
    /// On the revocation list.
    Revoked,
}

impl CertificateStatus {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            CertificateStatus::Active => "active",
            CertificateStatus::NotYetValid => "not-yet-valid",
            CertificateStatus::Expired => "expired",
            CertificateStatus::Revoked => "revoked",
        }
    }
}

impl fmt::Display for CertificateStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Checks that `cert` is a member of `org` at `now` (unix seconds): signed by `org`,
/// `not_before <= now < not_after`, and not on `revocations`, which must be `org`'s too.
/// (Signatures were verified when the objects were decoded or signed.)
pub fn verify_member(
    cert: &MemberCertificate,
    org: &OrgKey,
    revocations: &RevocationList,
    now: u64,
) -> Result<(), TrustError> {
    let body = cert.body();
    if body.org != *org {
        return Err(TrustError::WrongOrg {
            object: MemberCertificateBody::KIND,
            expected: *org,
            found: body.org,
        });
    }
    revocations.check_org(org)?;
    if revocations.is_revoked(body.serial) {
        return Err(TrustError::Revoked {
            serial: body.serial,
        });
    }
    if now < body.not_before {
        return Err(TrustError::NotYetValid {
            not_before: body.not_before,
            now,
        });
    }
    if now >= body.not_after {
        return Err(TrustError::Expired {
            not_after: body.not_after,
            now,
        });
    }
    Ok(())
}

/// [`verify_member`], and the member's role must be one of `allowed`.
pub fn verify_member_in_role(
    cert: &MemberCertificate,
    org: &OrgKey,
    revocations: &RevocationList,
    now: u64,
    allowed: &[Role],
) -> Result<(), TrustError> {
    verify_member(cert, org, revocations, now)?;
    let role = cert.body().role;
    if !allowed.contains(&role) {
        return Err(TrustError::RoleNotAllowed { role });
    }
    Ok(())
}

/// The status of `cert` at `now` given `revocations` (for listings; use
/// [`verify_member`] to decide trust).
pub fn certificate_status(
    cert: &MemberCertificate,
    revocations: &RevocationList,
    now: u64,
) -> CertificateStatus {
    let body = cert.body();
    if revocations.is_revoked(body.serial) {
        CertificateStatus::Revoked
    } else if now < body.not_before {
        CertificateStatus::NotYetValid
    } else if now >= body.not_after {
        CertificateStatus::Expired
    } else {
        CertificateStatus::Active
    }
}
