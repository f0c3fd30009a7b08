//! Typed errors. Every variant says what was wrong and, where it helps, with what.

use crate::certificate::Role;
use crate::keys::OrgKey;

/// A trust object was refused: it is malformed, forged, from another org, outside its
/// validity window, revoked, or otherwise not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustError {
    /// The bytes are not a well-formed encoding of the object (truncated, trailing bytes,
    /// a field out of range, a non-canonical encoding).
    #[error("malformed {object}: {reason}")]
    Malformed {
        /// Which kind of object was being decoded.
        object: &'static str,
        /// What was wrong with it.
        reason: &'static str,
    },
    /// The encoding is longer than any valid object of this kind; refused before decoding.
    #[error("{object} too large: {len} bytes, at most {max}")]
    TooLarge {
        /// Which kind of object.
        object: &'static str,
        /// Bytes offered.
        len: usize,
        /// The limit for this kind.
        max: usize,
    },
    /// The signature does not verify under the signer's key for this object type.
    #[error("bad signature on {object}")]
    BadSignature {
        /// Which kind of object.
        object: &'static str,
    },
    /// The object is signed by a different org than the one expected.
    #[error("{object} belongs to org {found}, expected {expected}")]
    WrongOrg {
        /// Which kind of object.
        object: &'static str,
        /// The org we trust.
        expected: OrgKey,
        /// The org that signed the object.
        found: OrgKey,
    },
    /// The certificate's validity ended (`now >= not_after`).
    #[error("certificate expired at {not_after} (now {now}, unix seconds)")]
    Expired {
        /// End of validity, exclusive.
        not_after: u64,
        /// The time of the check.
        now: u64,
    },
    /// The certificate is not valid yet (`now < not_before`).
    #[error("certificate not valid before {not_before} (now {now}, unix seconds)")]
    NotYetValid {
        /// Start of validity, inclusive.
        not_before: u64,
        /// The time of the check.
        now: u64,
    },
    /// The certificate's serial is on the org's revocation list.
    #[error("certificate serial {serial:016x} is revoked")]
    Revoked {
        /// The revoked serial.
        serial: u64,
    },
    /// A revocation list older than the one already held was offered.
    #[error("revocation list version {offered} is older than the held version {held}")]
    StaleRevocationList {
        /// Version held.
        held: u64,
        /// Version offered.
        offered: u64,
    },
    /// Two different revocation lists carry the same version: the org signed a fork.
    #[error("two different revocation lists both claim version {version}")]
    ConflictingRevocationList {
        /// The version both claim.
        version: u64,
    },
    /// The member's role does not allow the operation.
    #[error("role {role} is not allowed here")]
    RoleNotAllowed {
        /// The member's role.
        role: Role,
    },
    /// An enrollment request's proof of possession of the device key does not verify.
    #[error("enrollment request: proof of possession of the device key does not verify")]
    BadProofOfPossession,
    /// An enrollment bundle does not match the request it answers (other handle or keys).
    #[error("enrollment bundle does not match the enrollment request: {reason}")]
    BundleMismatch {
        /// What differs.
        reason: &'static str,
    },
    /// A sealed enrollment bundle could not be opened with this device's bundle key
    /// (it is for another request, or it was altered in transit).
    #[error("cannot open the enrollment bundle: it was made for another request, or altered")]
    BundleNotForThisDevice,
}

/// A passphrase-encrypted secret file could not be created or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretFileError {
    /// Authentication failed: the passphrase is wrong (or the file was altered).
    #[error("wrong passphrase (or the key file was altered)")]
    WrongPassphrase,
    /// The bytes do not start with the secret-file magic.
    #[error("not a Postern secret file")]
    NotASecretFile,
    /// The header is truncated or its parameters are outside the accepted range.
    #[error("secret file header is malformed: {0}")]
    BadHeader(&'static str),
    /// Argon2 refused the parameters.
    #[error("key derivation failed: {0}")]
    Kdf(String),
}
