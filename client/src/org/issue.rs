//! Issuing one member's enrollment bundle: the member certificate, the sealed-sender
//! certificate, the org's current descriptor, revocation list and directory key, signed
//! by the org root and sealed to the requesting device. `postern org enroll`, the demo
//! and the tests all issue through [`Issuer::issue_bundle`], so they issue the same thing.

use super::*;

/// The org's keys and current signed state: what an enrollment bundle is made from.
pub struct Issuer<'a> {
    /// The org root, which signs the certificate and the bundle.
    pub root: &'a OrgRoot,
    /// The sealed-sender keys, which sign the sender certificate.
    pub sealed_sender: &'a SealedSenderKeys,
    /// The directory key every member gets.
    pub directory_key: &'a DirectoryKey,
    /// The current org descriptor.
    pub descriptor: &'a OrgDescriptor,
    /// The current revocation list.
    pub revocations: &'a RevocationList,
}

/// A bundle issued for one request.
pub struct Issued {
    /// The member certificate inside it (the org home keeps a copy).
    pub certificate: MemberCertificate,
    /// The bundle, sealed so that only the requesting device opens it.
    pub sealed_bundle: Vec<u8>,
}

impl std::fmt::Debug for Issuer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Issuer")
    }
}

impl Issuer<'_> {
    /// Issues `request` a certificate with `role` and `serial`, valid from
    /// [`CLOCK_SKEW_SECS`] before `now` for `valid_days` days, and the sealed bundle that
    /// carries it. Checks what the member will check before returning.
    pub fn issue_bundle(
        &self,
        request: &EnrollmentRequest,
        role: Role,
        valid_days: u32,
        serial: u64,
        now: u64,
    ) -> Result<Issued, OrgError> {
        let org = self.root.org_key();
        let req = request.body();
        let not_before = now.saturating_sub(CLOCK_SKEW_SECS);
        let not_after = now + u64::from(valid_days) * 86_400;
        let certificate = self.root.issue_member_certificate(
            req.handle.clone(),
            role,
            req.signal_identity_key,
            req.device_key,
            not_before,
            not_after,
            serial,
        )?;
        let sender_certificate = issue_sender_certificate(
            self.sealed_sender,
            req.handle.as_str(),
            &req.signal_identity_key.to_bytes(),
            not_after,
        )?;
        let bundle = self.root.sign_bundle(bundle_body(
            org,
            request,
            certificate.clone(),
            sender_certificate,
            self.descriptor.clone(),
            self.revocations.clone(),
            self.directory_key.clone(),
        )?)?;
        bundle.verify_for(&org, request, now)?;
        validate_sender_certificate(
            bundle.body().sender_certificate.as_slice(),
            &self.descriptor.body().sealed_sender_trust_root.to_bytes(),
            now,
        )?;
        Ok(Issued {
            certificate,
            sealed_bundle: bundle.seal(request)?,
        })
    }
}
