//! Enrollment: a member's request (keys plus proof of possession of the device key) and
//! the org's answer, a bundle sealed so that only the requesting device can open it.
//!
//! The request carries an X25519 *bundle key* whose secret stays on the member's device.
//! `postern org enroll` signs the bundle with the org root and seals it to that key
//! (X25519 + HKDF-SHA256 + XChaCha20-Poly1305), so the sealed file reveals nothing to
//! whoever carries it, and a copy sent to the wrong person is useless to them. What the
//! sealing cannot do is tell the admin whose request it is: the admin must confirm the
//! request's fingerprint with the member out of band (in person or by voice).

use std::fmt;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use x25519_dalek::{PublicKey as X25519Public, StaticSecret};
use zeroize::Zeroizing;

use crate::certificate::{Handle, MemberCertificate, verify_member};
use crate::descriptor::OrgDescriptor;
use crate::encoding::{BoundedBytes, Signed, SignedBody, context};
use crate::error::TrustError;
use crate::keys::{
    DeviceKeyPair, DevicePublicKey, DirectoryKey, OrgKey, SignalPublicKey, fingerprint, os_random,
};
use crate::revocation::{RevocationList, RevocationListBody};

/// Longest libsignal sender certificate a bundle may carry.
pub const MAX_SENDER_CERTIFICATE_LEN: usize = 2048;

/// The signed fields of an enrollment request, in wire order. Signed by `device_key`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollmentRequestBody {
    /// The pseudonym the member asks for.
    pub handle: Handle,
    /// The member's Signal identity public key.
    pub signal_identity_key: SignalPublicKey,
    /// The member's device key; the request is signed with it (proof of possession).
    pub device_key: DevicePublicKey,
    /// X25519 public key the bundle is sealed to.
    pub bundle_key: [u8; 32],
}

impl SignedBody for EnrollmentRequestBody {
    const KIND: &'static str = "enrollment request";
    const CONTEXT: &'static [u8] = context::ENROLLMENT_REQUEST;
    const MAX_ENCODED_LEN: usize = 256;

    fn check(&self) -> Result<(), &'static str> {
        Ok(())
    }

    fn signer(&self) -> [u8; 32] {
        self.device_key.to_bytes()
    }

    fn bad_signature() -> TrustError {
        TrustError::BadProofOfPossession
    }
}

/// An enrollment request: [`EnrollmentRequestBody`] signed by the member's device key.
/// Decoding verifies the proof of possession ([`TrustError::BadProofOfPossession`]).
pub type EnrollmentRequest = Signed<EnrollmentRequestBody>;

impl EnrollmentRequest {
    /// Makes a request for `handle` and a fresh bundle key; keep the [`BundleSecret`] on
    /// the device to open the bundle that answers it.
    pub fn create(
        handle: Handle,
        signal_identity_key: SignalPublicKey,
        device: &DeviceKeyPair,
    ) -> Result<(Self, BundleSecret), TrustError> {
        let secret = BundleSecret::generate();
        let request = Self::create_with_secret(handle, signal_identity_key, device, &secret)?;
        Ok((request, secret))
    }

    /// [`Self::create`] with a given bundle secret (restored from storage, or fixed for
    /// test vectors).
    pub fn create_with_secret(
        handle: Handle,
        signal_identity_key: SignalPublicKey,
        device: &DeviceKeyPair,
        secret: &BundleSecret,
    ) -> Result<Self, TrustError> {
        let body = EnrollmentRequestBody {
            handle,
            signal_identity_key,
            device_key: device.public_key(),
            bundle_key: secret.public_key(),
        };
        Signed::sign(body, device.signing_key())
    }

    /// Fingerprint of the request, for the admin and the member to compare out of band.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.encode())
    }

    fn digest(&self) -> [u8; 32] {
        Sha256::digest(self.encode()).into()
    }
}

/// The X25519 secret that opens the bundle answering a request. Zeroized on drop; never
/// printed.
pub struct BundleSecret(StaticSecret);

impl BundleSecret {
    fn generate() -> Self {
        let mut bytes = Zeroizing::new([0u8; 32]);
        os_random(bytes.as_mut());
        Self(StaticSecret::from(*bytes))
    }

    /// Restores a stored secret.
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        Self(StaticSecret::from(*bytes))
    }

    /// The secret bytes, for storing them encrypted.
    pub fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.0.to_bytes())
    }

    /// The public key the request carries.
    pub fn public_key(&self) -> [u8; 32] {
        X25519Public::from(&self.0).to_bytes()
    }
}

impl fmt::Debug for BundleSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BundleSecret(redacted)")
    }
}

/// The signed fields of an enrollment bundle, in wire order. Secret: it holds the
/// directory key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollmentBundleBody {
    /// The org (must have signed it).
    pub org: OrgKey,
    /// SHA-256 of the enrollment request this bundle answers.
    pub request_digest: [u8; 32],
    /// The member's certificate.
    pub member_certificate: MemberCertificate,
    /// The member's libsignal sealed-sender `SenderCertificate` (serialized; sender name =
    /// the handle, device 1, expiring with the member certificate).
    pub sender_certificate: BoundedBytes<MAX_SENDER_CERTIFICATE_LEN>,
    /// The org descriptor at enrollment time.
    pub descriptor: OrgDescriptor,
    /// The latest revocation list at enrollment time.
    pub revocations: RevocationList,
    /// The org directory key.
    pub directory_key: DirectoryKey,
}

impl SignedBody for EnrollmentBundleBody {
    const KIND: &'static str = "enrollment bundle";
    const CONTEXT: &'static [u8] = context::ENROLLMENT_BUNDLE;
    const MAX_ENCODED_LEN: usize = 16 * 1024
        + <RevocationListBody as SignedBody>::MAX_ENCODED_LEN
        + MAX_SENDER_CERTIFICATE_LEN;

    fn check(&self) -> Result<(), &'static str> {
        let org = self.org;
        if self.member_certificate.body().org != org
            || self.descriptor.body().org != org
            || self.revocations.body().org != org
        {
            return Err("bundle parts are signed by different orgs");
        }
        if self.sender_certificate.as_slice().is_empty() {
            return Err("no sender certificate");
        }
        Ok(())
    }

    fn signer(&self) -> [u8; 32] {
        self.org.to_bytes()
    }
}

/// An enrollment bundle: [`EnrollmentBundleBody`] signed by the org root.
pub type EnrollmentBundle = Signed<EnrollmentBundleBody>;

/// Magic at the start of a sealed bundle.
pub const SEALED_BUNDLE_MAGIC: &[u8; 8] = b"PSTNBDL1";
const HKDF_INFO: &[u8] = b"postern/1 enrollment-bundle-seal\0";
const SEAL_OVERHEAD: usize = 8 + 32 + 24 + 16;

/// Starts an enrollment bundle body answering `request`.
pub fn bundle_body(
    org: OrgKey,
    request: &EnrollmentRequest,
    member_certificate: MemberCertificate,
    sender_certificate: Vec<u8>,
    descriptor: OrgDescriptor,
    revocations: RevocationList,
    directory_key: DirectoryKey,
) -> Result<EnrollmentBundleBody, TrustError> {
    let sender_certificate =
        BoundedBytes::new(sender_certificate).map_err(|b| TrustError::TooLarge {
            object: "sender certificate",
            len: b.len(),
            max: MAX_SENDER_CERTIFICATE_LEN,
        })?;
    Ok(EnrollmentBundleBody {
        org,
        request_digest: request.digest(),
        member_certificate,
        sender_certificate,
        descriptor,
        revocations,
        directory_key,
    })
}

fn seal_key(shared: &[u8; 32], ephemeral: &[u8; 32], recipient: &[u8; 32]) -> Zeroizing<[u8; 32]> {
    let mut info = Vec::with_capacity(HKDF_INFO.len() + 64);
    info.extend_from_slice(HKDF_INFO);
    info.extend_from_slice(ephemeral);
    info.extend_from_slice(recipient);
    let mut key = Zeroizing::new([0u8; 32]);
    // 32 bytes is always a valid HKDF-SHA256 output length.
    let _ = Hkdf::<Sha256>::new(None, shared).expand(&info, key.as_mut());
    key
}

fn seal_aad(ephemeral: &[u8; 32], recipient: &[u8; 32]) -> Vec<u8> {
    [SEALED_BUNDLE_MAGIC.as_slice(), ephemeral, recipient].concat()
}

impl EnrollmentBundle {
    /// Seals the bundle to the bundle key of the request it answers:
    /// `magic || ephemeral X25519 public || nonce || XChaCha20-Poly1305 ciphertext`.
    pub fn seal(&self, request: &EnrollmentRequest) -> Result<Vec<u8>, TrustError> {
        if self.body().request_digest != request.digest() {
            return Err(TrustError::BundleMismatch {
                reason: "bundle answers another request",
            });
        }
        let recipient = X25519Public::from(request.body().bundle_key);
        let mut eph_bytes = Zeroizing::new([0u8; 32]);
        os_random(eph_bytes.as_mut());
        let ephemeral = StaticSecret::from(*eph_bytes);
        let eph_pub = X25519Public::from(&ephemeral).to_bytes();
        let shared = ephemeral.diffie_hellman(&recipient);
        if !shared.was_contributory() {
            return Err(TrustError::Malformed {
                object: EnrollmentRequestBody::KIND,
                reason: "bundle key is a low-order point",
            });
        }
        let key = seal_key(shared.as_bytes(), &eph_pub, recipient.as_bytes());
        let mut nonce = [0u8; 24];
        os_random(&mut nonce);
        let plaintext = Zeroizing::new(self.encode());
        let aad = seal_aad(&eph_pub, recipient.as_bytes());
        let ciphertext = XChaCha20Poly1305::new(key.as_ref().into())
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &plaintext,
                    aad: &aad,
                },
            )
            .map_err(|_| TrustError::Malformed {
                object: EnrollmentBundleBody::KIND,
                reason: "cannot encrypt",
            })?;
        Ok([
            SEALED_BUNDLE_MAGIC.as_slice(),
            &eph_pub,
            &nonce,
            &ciphertext,
        ]
        .concat())
    }

    /// Opens a sealed bundle with the device's bundle secret and decodes it (its
    /// signature is checked against the org it names; then call [`Self::verify_for`]).
    pub fn open(sealed: &[u8], secret: &BundleSecret) -> Result<Self, TrustError> {
        let malformed = |reason| TrustError::Malformed {
            object: "sealed enrollment bundle",
            reason,
        };
        let max = EnrollmentBundleBody::MAX_ENCODED_LEN + SEAL_OVERHEAD;
        if sealed.len() > max {
            return Err(TrustError::TooLarge {
                object: "sealed enrollment bundle",
                len: sealed.len(),
                max,
            });
        }
        if sealed.len() < SEAL_OVERHEAD {
            return Err(malformed("truncated"));
        }
        let (magic, rest) = sealed.split_at(8);
        if magic != SEALED_BUNDLE_MAGIC {
            return Err(malformed("not a sealed Postern enrollment bundle"));
        }
        let (eph_pub, rest) = rest.split_at(32);
        let (nonce, ciphertext) = rest.split_at(24);
        let mut eph = [0u8; 32];
        eph.copy_from_slice(eph_pub);
        let recipient = secret.public_key();
        let shared = secret.0.diffie_hellman(&X25519Public::from(eph));
        if !shared.was_contributory() {
            return Err(TrustError::BundleNotForThisDevice);
        }
        let key = seal_key(shared.as_bytes(), &eph, &recipient);
        let aad = seal_aad(&eph, &recipient);
        let plaintext = Zeroizing::new(
            XChaCha20Poly1305::new(key.as_ref().into())
                .decrypt(
                    XNonce::from_slice(nonce),
                    Payload {
                        msg: ciphertext,
                        aad: &aad,
                    },
                )
                .map_err(|_| TrustError::BundleNotForThisDevice)?,
        );
        Self::decode(&plaintext)
    }

    /// Checks that the bundle is from `org`, answers `request` (same handle and keys),
    /// and that its member certificate is valid at `now` under its own revocation list.
    pub fn verify_for(
        &self,
        org: &OrgKey,
        request: &EnrollmentRequest,
        now: u64,
    ) -> Result<(), TrustError> {
        let body = self.body();
        if body.org != *org {
            return Err(TrustError::WrongOrg {
                object: EnrollmentBundleBody::KIND,
                expected: *org,
                found: body.org,
            });
        }
        if body.request_digest != request.digest() {
            return Err(TrustError::BundleMismatch {
                reason: "bundle answers another request",
            });
        }
        let cert = body.member_certificate.body();
        let req = request.body();
        if cert.handle != req.handle {
            return Err(TrustError::BundleMismatch {
                reason: "handle differs",
            });
        }
        if cert.signal_identity_key != req.signal_identity_key || cert.device_key != req.device_key
        {
            return Err(TrustError::BundleMismatch {
                reason: "certified keys differ from the requested ones",
            });
        }
        verify_member(&body.member_certificate, org, &body.revocations, now)
    }
}
