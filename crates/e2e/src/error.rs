//! The crate's error type. Every variant says what went wrong and with whom; none carries
//! key material or message content.

use libsignal_protocol::SignalProtocolError;

use crate::bundle::BundleError;
use crate::plaintext::PlaintextError;
use crate::trust::TrustFailure;
use crate::vault::VaultError;

/// An end-to-end operation failed. Every error leaves the vault exactly as it was (the
/// operation's write transaction is discarded), so the session stays usable.
#[derive(Debug, thiserror::Error)]
pub enum E2eError {
    /// The vault failed (I/O, corruption, not initialised...).
    #[error(transparent)]
    Vault(#[from] VaultError),
    /// The decrypted plaintext structure is malformed (truncated, oversized, bad
    /// padding...), or an outgoing one cannot be encoded.
    #[error("plaintext structure: {0}")]
    Plaintext(#[from] PlaintextError),
    /// A prekey bundle is malformed.
    #[error("prekey bundle: {0}")]
    Bundle(#[from] BundleError),
    /// The peer has no valid member certificate (unknown, expired, revoked...).
    #[error("{peer} is not trusted: {reason}")]
    Untrusted {
        /// The peer's member name.
        peer: String,
        /// Why.
        reason: TrustFailure,
    },
    /// The peer's Signal identity key is not the one in its member certificate.
    #[error("the identity key of {peer} does not match its member certificate")]
    IdentityMismatch {
        /// The peer's member name.
        peer: String,
    },
    /// The sender's sealed-sender certificate has expired.
    #[error("sender certificate of {peer} expired at {expired_at_ms} (unix ms)")]
    SenderCertificateExpired {
        /// Name in the certificate.
        peer: String,
        /// Its expiry.
        expired_at_ms: u64,
    },
    /// The sender certificate does not chain to the org's sealed-sender trust root (or
    /// does not parse).
    #[error("sender certificate does not chain to the org's sealed-sender trust root")]
    SenderCertificateInvalid,
    /// Our own sender certificate is missing, expired or not ours.
    #[error("this member's sender certificate is unusable: {0}")]
    OwnSenderCertificate(&'static str),
    /// The envelope cannot be unsealed with our identity key: it is for another
    /// recipient, or it was altered.
    #[error("cannot unseal the envelope: addressed to another member, or altered")]
    Unseal,
    /// A message from ourselves (sealed-sender self send).
    #[error("message claims to come from this member")]
    SelfSend,
    /// This ciphertext was already decrypted (a replay or a redelivery after commit).
    #[error("message from {peer} was already decrypted")]
    Replay {
        /// The sender's member name.
        peer: String,
    },
    /// No session with the peer (for sending: start one from a bundle first).
    #[error("no session with {peer}")]
    NoSession {
        /// The peer's member name.
        peer: String,
    },
    /// The inner Signal message from `peer` does not decrypt (altered, or its keys are
    /// gone).
    #[error("message from {peer} does not decrypt")]
    Decrypt {
        /// The sender's member name.
        peer: String,
        /// libsignal's error.
        #[source]
        source: SignalProtocolError,
    },
    /// A member name is not usable as a libsignal address.
    #[error("invalid member name or device")]
    BadAddress,
    /// A safety number could not be computed or compared.
    #[error("safety number: {0}")]
    Fingerprint(&'static str),
    /// Any other libsignal failure.
    #[error("libsignal: {0}")]
    Signal(#[from] SignalProtocolError),
}
