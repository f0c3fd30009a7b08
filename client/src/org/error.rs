//! The org commands' one error type, and its exit codes.

use super::*;

/// An org command failed. Each message names the cause and what to do.
#[derive(Debug, thiserror::Error)]
#[cfg_attr(
    test,
    derive(strum::EnumDiscriminants),
    strum_discriminants(derive(strum::EnumIter))
)]
pub enum OrgError {
    /// No home directory given.
    #[error("no org home: pass --home DIR or set POSTERN_HOME")]
    NoHome,
    /// The home holds no org.
    #[error("{0} holds no org: create one with `postern --home {0} org init`, or check --home")]
    NotAnOrg(PathBuf),
    /// `org init` on a home that already has an org.
    #[error("{0} already holds an org: choose another --home (refusing to overwrite the org root)")]
    AlreadyAnOrg(PathBuf),
    /// A previous `org init` was interrupted.
    #[error(
        "{0} holds an unfinished org (secrets without org.key): an earlier init was interrupted; move the directory aside and run init again"
    )]
    IncompleteInit(PathBuf),
    /// Reading or writing a file failed.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Another command holds the home.
    #[error("cannot lock {0}: {1}")]
    Lock(PathBuf, std::io::Error),
    /// No usable passphrase.
    #[error(transparent)]
    Passphrase(#[from] PassphraseError),
    /// The passphrase does not open the secrets.
    #[error(
        "wrong passphrase for {0} (or the file was altered): nothing was changed; try again, and check POSTERN_PASSPHRASE or --passphrase-file"
    )]
    WrongPassphrase(PathBuf),
    /// A file in the home is damaged or belongs to another org.
    #[error("{path} is damaged or from another org ({reason}): restore the org home from a backup")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The enrollment request was refused.
    #[error(
        "the enrollment request {path} is refused: {source}; ask the member to run `postern init` again and send the new request"
    )]
    BadRequest {
        /// The request file.
        path: PathBuf,
        /// Why.
        source: TrustError,
    },
    /// The fingerprint given with --fingerprint differs from the request's.
    #[error(
        "the request's fingerprint is {actual}, not {expected}: this request is not the one the member made; do not enroll it"
    )]
    FingerprintMismatch {
        /// What the admin was told.
        expected: String,
        /// What the request has.
        actual: String,
    },
    /// The handle belongs to another active member.
    #[error(
        "handle {handle} already belongs to an active member with other keys (serial {serial:016x}): choose another handle, or revoke the old one first with `postern org revoke {handle}`"
    )]
    HandleTaken {
        /// The handle.
        handle: String,
        /// The existing certificate's serial.
        serial: u64,
    },
    /// The keys in the request are already certified for another handle.
    #[error(
        "these device or Signal keys are already certified for handle {0}: a member has one handle; revoke it first if this is a new identity"
    )]
    KeysTaken(String),
    /// No certificate was issued to the handle.
    #[error("no member has the handle {0}: see `postern org members`")]
    UnknownHandle(String),
    /// The relay is listed already.
    #[error("the relay {0} is already in the org descriptor")]
    DuplicateRelay(String),
    /// The descriptor is full.
    #[error("the org descriptor already lists {MAX_RELAYS} relays, the most it can")]
    TooManyRelays,
    /// `--publish` with no relay in the descriptor.
    #[error(
        "the org descriptor lists no relay to publish to: add one with `postern org relay add`, then run `postern org revoke {0} --publish` again (the list is already written)"
    )]
    NoRelayToPublish(String),
    /// `--publish` reached no relay.
    #[error(
        "the revocation list (version {version}) is written to {path} but no relay accepted it: {reasons}. Check the relays are running and reachable, then run the command again with --publish"
    )]
    PublishFailed {
        /// Version of the list.
        version: u64,
        /// Where it was written.
        path: PathBuf,
        /// What each relay said.
        reasons: String,
    },
    /// The output file exists.
    #[error("{0} already exists: choose another --out (refusing to overwrite)")]
    OutputExists(PathBuf),
    /// Issuing the sealed-sender certificate failed.
    #[error("cannot issue the sealed-sender certificate: {0}")]
    SealedSender(#[from] postern_e2e::sender_certificate::SenderCertificateError),
    /// A trust operation failed (a bug, or damaged state).
    #[error("{0}")]
    Trust(#[from] TrustError),
    /// Writing to the output failed.
    #[error("cannot write output: {0}")]
    Output(std::io::Error),
}

impl OrgError {}

impl From<std::io::Error> for OrgError {
    fn from(e: std::io::Error) -> Self {
        OrgError::Output(e)
    }
}
