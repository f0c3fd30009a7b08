//! Keys: the org root and its public org key, member device keys, libsignal public keys
//! carried as opaque bytes, and the org directory key.

use std::fmt;
use std::str::FromStr;

use ed25519_dalek::{SigningKey, VerifyingKey};
use rand::{RngCore, TryRngCore};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

use crate::certificate::{Handle, MemberCertificate, MemberCertificateBody, Role};
use crate::descriptor::{OrgDescriptor, OrgDescriptorBody};
use crate::encoding::Signed;
use crate::enrollment::{EnrollmentBundle, EnrollmentBundleBody};
use crate::error::TrustError;
use crate::revocation::{RevocationList, RevocationListBody};

/// Text prefix of an org key.
pub const ORG_KEY_PREFIX: &str = "postern-org:";

/// Lowercase RFC 4648 base32 without padding (the text form of org keys and pins).
pub fn encode_base32(bytes: &[u8]) -> String {
    data_encoding::BASE32_NOPAD
        .encode(bytes)
        .to_ascii_lowercase()
}

/// Decodes base32 without padding, in either case.
pub fn decode_base32(text: &str) -> Option<Vec<u8>> {
    data_encoding::BASE32_NOPAD
        .decode(text.to_ascii_uppercase().as_bytes())
        .ok()
}

/// Fills a buffer from the operating system's random source.
pub(crate) fn os_random(buf: &mut [u8]) {
    rand::rngs::OsRng.unwrap_err().fill_bytes(buf);
}

/// A fresh Ed25519 signing key from 32 OS-random bytes (the seed is wiped).
fn generate_signing_key() -> SigningKey {
    let mut seed = Zeroizing::new([0u8; 32]);
    os_random(seed.as_mut());
    SigningKey::from_bytes(&seed)
}

/// A checked Ed25519 public key: 32 bytes that decompress to a curve point that is not
/// of small order.
fn checked_ed25519(bytes: [u8; 32]) -> Result<[u8; 32], &'static str> {
    let key = VerifyingKey::from_bytes(&bytes).map_err(|_| "not an Ed25519 public key")?;
    if key.is_weak() {
        return Err("weak (small-order) Ed25519 public key");
    }
    Ok(bytes)
}

/// The org's identity: the org root's Ed25519 public key. Text form
/// `postern-org:<lowercase base32 of the 32 bytes>`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "[u8; 32]", into = "[u8; 32]")]
pub struct OrgKey([u8; 32]);

impl OrgKey {
    /// Checks and wraps the 32 public-key bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Result<Self, &'static str> {
        checked_ed25519(bytes).map(Self)
    }

    /// The public-key bytes.
    pub fn to_bytes(self) -> [u8; 32] {
        self.0
    }
}

impl TryFrom<[u8; 32]> for OrgKey {
    type Error = &'static str;
    fn try_from(bytes: [u8; 32]) -> Result<Self, &'static str> {
        Self::from_bytes(bytes)
    }
}

impl From<OrgKey> for [u8; 32] {
    fn from(key: OrgKey) -> Self {
        key.0
    }
}

impl fmt::Display for OrgKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{ORG_KEY_PREFIX}{}", encode_base32(&self.0))
    }
}

impl fmt::Debug for OrgKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OrgKey({self})")
    }
}

/// An org key's text form could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an org key looks like postern-org:<52 base32 characters> ({0})")]
pub struct OrgKeyParseError(&'static str);

impl FromStr for OrgKey {
    type Err = OrgKeyParseError;
    fn from_str(s: &str) -> Result<Self, OrgKeyParseError> {
        let text = s
            .trim()
            .strip_prefix(ORG_KEY_PREFIX)
            .ok_or(OrgKeyParseError("missing postern-org: prefix"))?;
        let bytes = decode_base32(text).ok_or(OrgKeyParseError("not base32"))?;
        let bytes =
            <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| OrgKeyParseError("not 32 bytes"))?;
        Self::from_bytes(bytes).map_err(OrgKeyParseError)
    }
}

/// The org root: the Ed25519 key pair that signs the org descriptor, every member
/// certificate, every revocation list and every enrollment bundle. Meant to stay offline,
/// encrypted at rest ([`crate::secret_file`]). Zeroized on drop; never printed.
pub struct OrgRoot {
    key: SigningKey,
}

impl OrgRoot {
    /// Creates a new org root from the OS random source.
    pub fn generate() -> Self {
        Self {
            key: generate_signing_key(),
        }
    }

    /// Restores an org root from its 32-byte seed.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self {
            key: SigningKey::from_bytes(seed),
        }
    }

    /// The 32-byte seed, for storing it encrypted.
    pub fn seed(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.key.to_bytes())
    }

    /// The org's public identity.
    pub fn org_key(&self) -> OrgKey {
        OrgKey(self.key.verifying_key().to_bytes())
    }

    /// Signs a member certificate.
    #[allow(clippy::too_many_arguments)]
    pub fn issue_member_certificate(
        &self,
        handle: Handle,
        role: Role,
        signal_identity_key: SignalPublicKey,
        device_key: DevicePublicKey,
        not_before: u64,
        not_after: u64,
        serial: u64,
    ) -> Result<MemberCertificate, TrustError> {
        Signed::sign(
            MemberCertificateBody {
                org: self.org_key(),
                serial,
                handle,
                role,
                signal_identity_key,
                device_key,
                not_before,
                not_after,
            },
            &self.key,
        )
    }

    /// Signs an org descriptor. Its `org` field must be this root's key.
    pub fn sign_descriptor(&self, body: OrgDescriptorBody) -> Result<OrgDescriptor, TrustError> {
        Signed::sign(body, &self.key)
    }

    /// Signs a revocation list. Its `org` field must be this root's key.
    pub fn sign_revocations(&self, body: RevocationListBody) -> Result<RevocationList, TrustError> {
        Signed::sign(body, &self.key)
    }

    /// Signs an enrollment bundle. Its `org` field must be this root's key.
    pub fn sign_bundle(&self, body: EnrollmentBundleBody) -> Result<EnrollmentBundle, TrustError> {
        Signed::sign(body, &self.key)
    }
}

impl fmt::Debug for OrgRoot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OrgRoot({}, secret redacted)", self.org_key())
    }
}

/// A member device's Ed25519 public key: proves possession at enrollment and admits the
/// device to relays.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "[u8; 32]", into = "[u8; 32]")]
pub struct DevicePublicKey([u8; 32]);

impl DevicePublicKey {
    /// Checks and wraps the 32 public-key bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Result<Self, &'static str> {
        checked_ed25519(bytes).map(Self)
    }

    /// The public-key bytes.
    pub fn to_bytes(self) -> [u8; 32] {
        self.0
    }

    /// Verifies a signature over `context || message` by this key.
    pub fn verify(&self, context: &[u8], message: &[u8], signature: &[u8; 64]) -> bool {
        crate::encoding::verify_with_context(&self.0, context, message, signature).is_ok()
    }
}

impl TryFrom<[u8; 32]> for DevicePublicKey {
    type Error = &'static str;
    fn try_from(bytes: [u8; 32]) -> Result<Self, &'static str> {
        Self::from_bytes(bytes)
    }
}

impl From<DevicePublicKey> for [u8; 32] {
    fn from(key: DevicePublicKey) -> Self {
        key.0
    }
}

impl fmt::Debug for DevicePublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DevicePublicKey({})", encode_base32(&self.0))
    }
}

/// A member device's Ed25519 key pair. Zeroized on drop; never printed.
pub struct DeviceKeyPair {
    key: SigningKey,
}

impl DeviceKeyPair {
    /// Creates a device key from the OS random source.
    pub fn generate() -> Self {
        Self {
            key: generate_signing_key(),
        }
    }

    /// Restores a device key from its 32-byte seed.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self {
            key: SigningKey::from_bytes(seed),
        }
    }

    /// The 32-byte seed, for storing it encrypted.
    pub fn seed(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.key.to_bytes())
    }

    /// The public key.
    pub fn public_key(&self) -> DevicePublicKey {
        DevicePublicKey(self.key.verifying_key().to_bytes())
    }

    /// Signs `context || message` (contexts keep signatures for different purposes apart).
    pub fn sign(&self, context: &[u8], message: &[u8]) -> [u8; 64] {
        crate::encoding::sign_with_context(&self.key, context, message)
    }

    pub(crate) fn signing_key(&self) -> &SigningKey {
        &self.key
    }
}

impl fmt::Debug for DeviceKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeviceKeyPair({:?}, secret redacted)", self.public_key())
    }
}

/// A libsignal Curve25519 public key, carried opaquely as its 33-byte serialization
/// (`0x05` type byte, then 32 bytes). Used for a member's Signal identity key and for the
/// org's sealed-sender trust root. This crate does not depend on libsignal; it checks the
/// length and type byte, and `postern-e2e` parses the key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(
    try_from = "serde_bytes::ByteArray<33>",
    into = "serde_bytes::ByteArray<33>"
)]
pub struct SignalPublicKey([u8; 33]);

/// The libsignal type byte of a Curve25519 (Djb) public key.
pub const SIGNAL_DJB_TYPE: u8 = 0x05;

impl SignalPublicKey {
    /// Checks (length 33, type byte `0x05`) and wraps the serialized key.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, &'static str> {
        let bytes = <[u8; 33]>::try_from(bytes).map_err(|_| "Signal public key is not 33 bytes")?;
        if bytes[0] != SIGNAL_DJB_TYPE {
            return Err("Signal public key does not start with the 0x05 type byte");
        }
        Ok(Self(bytes))
    }

    /// The 33 serialized bytes.
    pub fn to_bytes(self) -> [u8; 33] {
        self.0
    }
}

impl TryFrom<serde_bytes::ByteArray<33>> for SignalPublicKey {
    type Error = &'static str;
    fn try_from(bytes: serde_bytes::ByteArray<33>) -> Result<Self, &'static str> {
        Self::from_bytes(bytes.as_slice())
    }
}

impl From<SignalPublicKey> for serde_bytes::ByteArray<33> {
    fn from(key: SignalPublicKey) -> Self {
        serde_bytes::ByteArray::new(key.0)
    }
}

impl fmt::Debug for SignalPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SignalPublicKey({})", encode_base32(&self.0))
    }
}

/// The org directory key: 32 random bytes that members use to derive directory lookup
/// keys from handles and to seal directory entries. Members receive it in their
/// enrollment bundle; relays never hold it. Zeroized on drop; never printed.
#[derive(Clone)]
pub struct DirectoryKey(Zeroizing<[u8; 32]>);

impl PartialEq for DirectoryKey {
    // Constant time: it is a secret.
    fn eq(&self, other: &Self) -> bool {
        use subtle::ConstantTimeEq;
        self.0.as_slice().ct_eq(other.0.as_slice()).into()
    }
}

impl Eq for DirectoryKey {}

impl DirectoryKey {
    /// A fresh key from the OS random source.
    pub fn generate() -> Self {
        let mut key = Zeroizing::new([0u8; 32]);
        os_random(key.as_mut());
        Self(key)
    }

    /// Wraps stored key bytes.
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        Self(Zeroizing::new(*bytes))
    }

    /// The key bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for DirectoryKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DirectoryKey(redacted)")
    }
}

impl Serialize for DirectoryKey {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for DirectoryKey {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut bytes = <[u8; 32]>::deserialize(deserializer)?;
        let key = Self::from_bytes(&bytes);
        bytes.zeroize();
        Ok(key)
    }
}

/// SHA-256 of `bytes`, shown as lowercase base32 in groups of four characters, for
/// comparing objects out of band (by phone or in person).
pub fn fingerprint(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let text = encode_base32(&digest[..20]);
    text.as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join("-")
}
