//! Sealed-sender certificates issued by the org (not by a relay).
//!
//! The org keeps a libsignal Curve25519 *trust root* key pair, certified by the org root
//! in the org descriptor, and a *server key* certified under it by a libsignal
//! `ServerCertificate`. At enrollment the server key signs each member's
//! `SenderCertificate`: sender name = the member's handle (unique in the org, and the name
//! their sessions use), device 1, the member's Signal identity key, expiring with the
//! member certificate. Relays hold none of these keys.

use libsignal_protocol::{
    DeviceId, KeyPair, PrivateKey, PublicKey, SenderCertificate, ServerCertificate,
    SignalProtocolError, Timestamp,
};
use zeroize::Zeroizing;

/// The `ServerCertificate` key id the org uses (libsignal hard-revokes `0xDEADC357`).
pub const SERVER_KEY_ID: u32 = 1;

/// The device id in every sender certificate: one device per member.
pub const MEMBER_DEVICE_ID: u8 = 1;

/// Issuing a sealed-sender certificate failed.
#[derive(Debug, thiserror::Error)]
pub enum SenderCertificateError {
    /// A stored key or certificate did not parse.
    #[error("invalid sealed-sender key material: {0}")]
    InvalidKey(&'static str),
    /// libsignal refused.
    #[error("libsignal: {0}")]
    Signal(#[from] SignalProtocolError),
}

/// The org's sealed-sender keys, as stored (encrypted) in the org home.
pub struct SealedSenderKeys {
    /// Trust-root private key (32 bytes).
    pub trust_root_private: Zeroizing<Vec<u8>>,
    /// Trust-root public key, libsignal serialization (33 bytes, `0x05` first): goes into
    /// the org descriptor.
    pub trust_root_public: [u8; 33],
    /// Server private key (32 bytes): signs sender certificates.
    pub server_private: Zeroizing<Vec<u8>>,
    /// libsignal `ServerCertificate` for the server key, signed by the trust root.
    pub server_certificate: Vec<u8>,
}

impl std::fmt::Debug for SealedSenderKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealedSenderKeys(secrets redacted)")
    }
}

fn public_33(key: &PublicKey) -> Result<[u8; 33], SenderCertificateError> {
    <[u8; 33]>::try_from(key.serialize().as_ref())
        .map_err(|_| SenderCertificateError::InvalidKey("public key is not 33 bytes"))
}

/// Makes a new trust root and a server key certified under it.
pub fn generate_sealed_sender_keys() -> Result<SealedSenderKeys, SenderCertificateError> {
    let rng = &mut rand::rng();
    let trust_root = KeyPair::generate(rng);
    let server = KeyPair::generate(rng);
    let server_certificate = ServerCertificate::new(
        SERVER_KEY_ID,
        server.public_key,
        &trust_root.private_key,
        rng,
    )?;
    Ok(SealedSenderKeys {
        trust_root_private: Zeroizing::new(trust_root.private_key.serialize().to_vec()),
        trust_root_public: public_33(&trust_root.public_key)?,
        server_private: Zeroizing::new(server.private_key.serialize().to_vec()),
        server_certificate: server_certificate.serialized()?.to_vec(),
    })
}

/// Issues a member's `SenderCertificate` (serialized) under the org's server key.
pub fn issue_sender_certificate(
    keys: &SealedSenderKeys,
    sender_name: &str,
    identity_key: &[u8; 33],
    expires_unix_secs: u64,
) -> Result<Vec<u8>, SenderCertificateError> {
    let rng = &mut rand::rng();
    let server_private = PrivateKey::deserialize(&keys.server_private)
        .map_err(|_| SenderCertificateError::InvalidKey("server private key"))?;
    let server_certificate = ServerCertificate::deserialize(&keys.server_certificate)
        .map_err(|_| SenderCertificateError::InvalidKey("server certificate"))?;
    let identity = PublicKey::deserialize(identity_key)
        .map_err(|_| SenderCertificateError::InvalidKey("member identity key"))?;
    let device = DeviceId::new(MEMBER_DEVICE_ID)
        .map_err(|_| SenderCertificateError::InvalidKey("device id"))?;
    let expires = Timestamp::from_epoch_millis(expires_unix_secs.saturating_mul(1000));
    let cert = SenderCertificate::new(
        sender_name.to_owned(),
        None,
        identity,
        device,
        expires,
        server_certificate,
        &server_private,
        rng,
    )?;
    Ok(cert.serialized()?.to_vec())
}

/// Checks a serialized `SenderCertificate` against a trust root at `now_unix_secs` and
/// returns its sender name.
pub fn validate_sender_certificate(
    certificate: &[u8],
    trust_root_public: &[u8; 33],
    now_unix_secs: u64,
) -> Result<String, SenderCertificateError> {
    let cert = SenderCertificate::deserialize(certificate)?;
    let root = PublicKey::deserialize(trust_root_public)
        .map_err(|_| SenderCertificateError::InvalidKey("trust root"))?;
    let now = Timestamp::from_epoch_millis(now_unix_secs.saturating_mul(1000));
    if !cert.validate(&root, now)? {
        return Err(SenderCertificateError::InvalidKey(
            "sender certificate does not chain to the trust root or has expired",
        ));
    }
    Ok(cert.sender_uuid()?.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use libsignal_protocol::IdentityKeyPair;

    #[test]
    fn issued_certificate_validates_under_the_trust_root_until_expiry() {
        let keys = generate_sealed_sender_keys().unwrap();
        let member = IdentityKeyPair::generate(&mut rand::rng());
        let ik: [u8; 33] = member.public_key().serialize().as_ref().try_into().unwrap();
        let cert = issue_sender_certificate(&keys, "courier-7", &ik, 2_000_000_000).unwrap();
        let name =
            validate_sender_certificate(&cert, &keys.trust_root_public, 1_900_000_000).unwrap();
        assert_eq!(name, "courier-7");
        assert!(
            validate_sender_certificate(&cert, &keys.trust_root_public, 2_000_000_001).is_err()
        );
        let other = generate_sealed_sender_keys().unwrap();
        assert!(
            validate_sender_certificate(&cert, &other.trust_root_public, 1_900_000_000).is_err()
        );
    }
}
