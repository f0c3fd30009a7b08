//! Admission: who may use the relay. A member presents its certificate and a device-key
//! signature over this connection's TLS exporter and the relay's challenge; the relay
//! checks the certificate against the org root (signature, org, validity, revocation) and
//! the signature against the certificate's device key.

use std::net::IpAddr;
use std::time::Instant;

use crate::budget::{Buckets, address_key};
use postern_identity::{MemberCertificate, OrgKey, RevocationList, TrustError, verify_member};
use postern_protocol::ErrorCode;
use postern_protocol::auth::AUTHENTICATE_CONTEXT;

/// What the relay keeps about an admitted connection (in memory only, never on disk).
#[derive(Debug, Clone)]
pub(crate) struct Admitted {
    /// Certificate serial, re-checked against newer revocation lists on every request.
    pub serial: u64,
    /// End of validity (Unix seconds, exclusive), re-checked on every request.
    pub not_after: u64,
    /// Device key, to bind directory entries to their publisher.
    pub device_key: [u8; 32],
}

/// The error code a trust failure is answered with.
pub(crate) fn trust_code(e: &TrustError) -> ErrorCode {
    match e {
        TrustError::BadSignature { .. } | TrustError::BadProofOfPossession => {
            ErrorCode::BadSignature
        }
        TrustError::WrongOrg { .. } => ErrorCode::WrongOrg,
        TrustError::Expired { .. } => ErrorCode::Expired,
        TrustError::NotYetValid { .. } => ErrorCode::NotYetValid,
        TrustError::Revoked { .. } => ErrorCode::Revoked,
        TrustError::StaleRevocationList { .. } | TrustError::ConflictingRevocationList { .. } => {
            ErrorCode::StaleRevocationList
        }
        TrustError::RoleNotAllowed { .. } => ErrorCode::RoleNotAllowed,
        _ => ErrorCode::Malformed,
    }
}

/// Checks an `Authenticate` request. `binding` is `exporter || challenge` of this
/// connection.
pub(crate) fn admit(
    certificate: &[u8],
    signature: &[u8; 64],
    binding: &[u8],
    org: &OrgKey,
    revocations: Option<&RevocationList>,
    now: u64,
) -> Result<Admitted, ErrorCode> {
    let cert = MemberCertificate::decode(certificate).map_err(|e| trust_code(&e))?;
    check_member(&cert, org, revocations, now)?;
    let body = cert.body();
    if !body
        .device_key
        .verify(AUTHENTICATE_CONTEXT, binding, signature)
    {
        return Err(ErrorCode::BadSignature);
    }
    Ok(Admitted {
        serial: body.serial,
        not_after: body.not_after,
        device_key: body.device_key.to_bytes(),
    })
}

/// [`verify_member`] when a revocation list is held; without one (a new relay), the same
/// checks less revocation.
fn check_member(
    cert: &MemberCertificate,
    org: &OrgKey,
    revocations: Option<&RevocationList>,
    now: u64,
) -> Result<(), ErrorCode> {
    if let Some(list) = revocations {
        return verify_member(cert, org, list, now).map_err(|e| trust_code(&e));
    }
    let body = cert.body();
    if body.org != *org {
        return Err(ErrorCode::WrongOrg);
    }
    if now < body.not_before {
        return Err(ErrorCode::NotYetValid);
    }
    if now >= body.not_after {
        return Err(ErrorCode::Expired);
    }
    Ok(())
}

/// Whether an admitted connection is still good at `now` under `revocations`.
pub(crate) fn still_admitted(
    a: &Admitted,
    revocations: Option<&RevocationList>,
    now: u64,
) -> Result<(), ErrorCode> {
    if now >= a.not_after {
        return Err(ErrorCode::Expired);
    }
    if revocations.is_some_and(|l| l.is_revoked(a.serial)) {
        return Err(ErrorCode::Revoked);
    }
    Ok(())
}

/// Limits failed admissions per source address (IPv6: per /64): a token bucket of
/// `per_minute` failures that refills continuously, so a neighbour behind the same NAT
/// who failed is not shut out for a whole minute, only until a token is back (six
/// seconds at the default). Addresses live only in memory, only until their bucket is
/// full again, and are never logged; the table is bounded, and when it is full of
/// addresses that all failed recently a new address is let through (its failures not
/// counted) rather than shut out: this limiter saves work, it guards no secret.
#[derive(Debug)]
pub(crate) struct FailureLimiter {
    /// Failures per address prefix.
    buckets: Buckets<IpAddr>,
}

impl FailureLimiter {
    /// Allows `per_minute` failures per address prefix per minute.
    pub(crate) fn new(per_minute: u32) -> Self {
        Self {
            buckets: Buckets::per_minute(per_minute, per_minute),
        }
    }

    /// Whether `ip` may try to authenticate at `now`.
    pub(crate) fn allowed(&self, ip: IpAddr, now: Instant) -> bool {
        self.buckets.has_token(&address_key(ip), now)
    }

    /// Records a failure from `ip` at `now`.
    pub(crate) fn failed(&self, ip: IpAddr, now: Instant) {
        let _ = self.buckets.take(address_key(ip), now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn failures_are_limited_per_address() {
        let l = FailureLimiter::new(2);
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let t0 = Instant::now();
        assert!(l.allowed(a, t0));
        l.failed(a, t0);
        l.failed(a, t0 + Duration::from_secs(1));
        assert!(!l.allowed(a, t0 + Duration::from_secs(1)));
        assert!(l.allowed(b, t0 + Duration::from_secs(1)));
        // A token returns every 30 s (two a minute), not a whole minute later.
        assert!(l.allowed(a, t0 + Duration::from_secs(31)));
        l.failed(a, t0 + Duration::from_secs(31));
        assert!(!l.allowed(a, t0 + Duration::from_secs(32)));
    }

    #[test]
    fn failures_count_per_ipv6_64() {
        let l = FailureLimiter::new(1);
        let t0 = Instant::now();
        l.failed("2001:db8:1:2::1".parse().unwrap(), t0);
        assert!(!l.allowed("2001:db8:1:2:ffff::9".parse().unwrap(), t0));
        assert!(l.allowed("2001:db8:1:3::1".parse().unwrap(), t0));
    }
}
