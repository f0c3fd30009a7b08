//! Postern trust: the org root, the org descriptor, member certificates, revocation lists
//! and enrollment.
//!
//! An organisation's root key ([`OrgRoot`], meant to live offline) decides who is a
//! member, in which role, until when, and who is no longer trusted. Relays and clients
//! both enforce it with [`verify_member`]. Byte formats, signature contexts and the
//! verification rules are specified in `protocol-spec/IDENTITY.md`, whose test vectors a
//! test in this crate checks.
//!
//! Every signed object is `postcard(body) || Ed25519 signature over (context || body)`
//! with a context string per object type ([`encoding::context`]). Decoding bounds the
//! input, requires the canonical encoding, checks the fields and verifies the signature
//! under the key the body names, so a decoded [`Signed`] value is always authentic for
//! *some* signer; [`verify_member`] and friends then check it is *your* org's, in its
//! validity window and not revoked.
//!
//! Handles are pseudonyms: never put a real name in a certificate.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod certificate;
pub mod descriptor;
pub mod encoding;
pub mod enrollment;
pub mod error;
pub mod keys;
pub mod relay;
pub mod revocation;
pub mod secret_file;

pub use certificate::{
    CertificateStatus, Handle, MemberCertificate, MemberCertificateBody, Role, certificate_status,
    verify_member, verify_member_in_role,
};
pub use descriptor::{OrgDescriptor, OrgDescriptorBody, Policy};
pub use encoding::{BoundedBytes, BoundedVec, Signed, SignedBody};
pub use enrollment::{
    BundleSecret, EnrollmentBundle, EnrollmentBundleBody, EnrollmentRequest, EnrollmentRequestBody,
};
pub use error::{SecretFileError, TrustError};
pub use keys::{DeviceKeyPair, DevicePublicKey, DirectoryKey, OrgKey, OrgRoot, SignalPublicKey};
pub use relay::RelayAddress;
pub use revocation::{RevocationList, RevocationListBody};
