//! Admission: who may use the relay. A member presents its certificate and a device-key
//! signature over this connection's TLS exporter and the relay's challenge; the relay
//! checks the certificate against the org root (signature, org, validity, revocation) and
//! the signature against the certificate's device key.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

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

/// Counts failed admissions per source address in one-minute windows. Addresses live
/// only in memory, only while they have recent failures, and are never logged.
#[derive(Debug)]
pub(crate) struct FailureLimiter {
    /// Failures allowed per address per window.
    per_window: u32,
    /// Window start and failures, per address.
    windows: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

const WINDOW: Duration = Duration::from_secs(60);

impl FailureLimiter {
    /// Allows `per_window` failures per address per minute.
    pub(crate) fn new(per_window: u32) -> Self {
        Self {
            per_window,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `ip` may try to authenticate at `now`.
    pub(crate) fn allowed(&self, ip: IpAddr, now: Instant) -> bool {
        let w = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        match w.get(&ip) {
            Some((start, n)) if now.saturating_duration_since(*start) < WINDOW => {
                *n < self.per_window
            }
            _ => true,
        }
    }

    /// Records a failure from `ip` at `now`.
    pub(crate) fn failed(&self, ip: IpAddr, now: Instant) {
        let mut w = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        if w.len() > 100_000 {
            w.retain(|_, (start, _)| now.saturating_duration_since(*start) < WINDOW);
        }
        let e = w.entry(ip).or_insert((now, 0));
        if now.saturating_duration_since(e.0) >= WINDOW {
            *e = (now, 0);
        }
        e.1 = e.1.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_limited_per_address() {
        let l = FailureLimiter::new(2);
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let t0 = Instant::now();
        assert!(l.allowed(a, t0));
        l.failed(a, t0);
        l.failed(a, t0 + Duration::from_secs(1));
        assert!(!l.allowed(a, t0 + Duration::from_secs(59)));
        assert!(l.allowed(b, t0 + Duration::from_secs(59)));
        // A new window starts a minute after the first failure.
        assert!(l.allowed(a, t0 + WINDOW));
        l.failed(a, t0 + WINDOW);
        assert!(l.allowed(a, t0 + WINDOW));
    }
}
