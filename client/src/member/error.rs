//! The member library's one error type: every message names the cause and what to do
//! next. Exit codes for the CLI come from [`MemberError::exit_code`].

use super::*;

/// A member command failed. Every message names the cause and what to do next.
#[derive(Debug, thiserror::Error)]
#[cfg_attr(
    test,
    derive(strum::EnumDiscriminants),
    strum_discriminants(derive(strum::EnumIter))
)]
pub enum MemberError {
    /// No home directory given and no platform default.
    #[error("no home directory: pass --home DIR or set POSTERN_HOME")]
    NoHome,
    /// The home holds no vault.
    #[error(
        "no Postern account in {0}: create one with `postern init --handle NAME --out request.pstn`, or check --home / POSTERN_HOME"
    )]
    NoAccount(PathBuf),
    /// `init` on a home that has a vault.
    #[error(
        "{0} already holds a Postern account: refusing to overwrite it. Use another --home, or destroy it first with `postern wipe`"
    )]
    AlreadyInitialised(PathBuf),
    /// An earlier `init` stopped half-way.
    #[error(
        "the vault in {0} has no account record: an earlier `postern init` was interrupted. Run `postern wipe --yes` and `postern init` again"
    )]
    IncompleteInit(PathBuf),
    /// The handle is not a valid handle.
    #[error("{0:?} is not a valid handle: use 2-32 characters (letters, digits, '-', '_', '.')")]
    BadHandle(String),
    /// No usable passphrase.
    #[error(transparent)]
    Passphrase(#[from] PassphraseError),
    /// Wrong passphrase.
    #[error(
        "wrong passphrase for the vault in {0}: nothing was changed; try again, and check POSTERN_PASSPHRASE or --passphrase-file"
    )]
    WrongPassphrase(PathBuf),
    /// Another process has the vault open.
    #[error(
        "the vault in {0} is in use by another postern process (a running `postern watch`?): stop it, then try again"
    )]
    VaultBusy(PathBuf),
    /// The account is not enrolled yet.
    #[error(
        "this account is not enrolled yet: give your request file to your org admin, then run `postern enroll <bundle-file>` with the bundle they return"
    )]
    NotEnrolled,
    /// `enroll` on an enrolled account.
    #[error(
        "this account is already enrolled in org {0}: nothing was changed (to join again, `postern wipe` and start over with `postern init`)"
    )]
    AlreadyEnrolled(OrgKey),
    /// The enrollment bundle was refused.
    #[error(
        "the enrollment bundle is refused: {0}. Nothing was stored; ask your admin for a new bundle made from your current request (`postern org enroll`)"
    )]
    BadBundle(String),
    /// The bundle is from another org than the one expected.
    #[error("the bundle is signed by org {found}, not {expected}: do not use it; tell your admin")]
    WrongOrg {
        /// `--org`.
        expected: OrgKey,
        /// The bundle's.
        found: OrgKey,
    },
    /// The org descriptor lists no relay.
    #[error(
        "the org lists no relay: ask your admin to add one (`postern org relay add`) and to enroll you again"
    )]
    NoRelay,
    /// The relay cannot be reached.
    #[error(
        "cannot reach the relay {relay}: {source}. Check the network and try again; nothing was sent"
    )]
    Unreachable {
        /// The relay address.
        relay: String,
        /// Why.
        source: TransportError,
    },
    /// The relay refused a request.
    #[error("the relay refused {what}: {code}")]
    Refused {
        /// What was asked.
        what: &'static str,
        /// The relay's error code.
        code: ErrorCode,
    },
    /// The connection failed during a request.
    #[error("lost the relay during {what}: {source}. Try again")]
    Relay {
        /// What was asked.
        what: &'static str,
        /// Why.
        source: TransportError,
    },
    /// Our own certificate is revoked.
    #[error(
        "your membership has been revoked by the org: the relay no longer admits this device. Contact your admin in person"
    )]
    SelfRevoked,
    /// Our own certificate has expired.
    #[error(
        "your member certificate has expired: run `postern init` in a new home and ask your admin to enroll you again"
    )]
    SelfExpired,
    /// No directory entry for the handle.
    #[error(
        "no member {0} in the org directory: check the spelling (handles are exact); they may not have enrolled yet"
    )]
    UnknownHandle(String),
    /// The peer is revoked.
    #[error("{0} has been revoked by the org: nothing is sent to or accepted from them")]
    PeerRevoked(String),
    /// The peer's certificate is not usable.
    #[error("{handle} is not trusted: {reason}; nothing was sent")]
    PeerUntrusted {
        /// The peer.
        handle: String,
        /// Why.
        reason: String,
    },
    /// A directory entry failed verification.
    #[error(
        "the directory entry for {handle} failed verification: {source}. Nothing was sent; do not trust it, and tell your admin"
    )]
    BadDirectoryEntry {
        /// The handle looked up.
        handle: String,
        /// Why.
        source: DirectoryError,
    },
    /// A TTL above the org's (or relay's) maximum.
    #[error(
        "a TTL of {requested} is longer than the {limit} allows ({max}): choose a shorter --ttl; nothing was sent"
    )]
    TtlTooLong {
        /// Requested.
        requested: String,
        /// Allowed.
        max: String,
        /// "org" or "relay".
        limit: &'static str,
    },
    /// A zero TTL.
    #[error("a TTL must be at least one second")]
    TtlZero,
    /// Sending to oneself.
    #[error("you cannot send a message to yourself")]
    SelfSend,
    /// The message is too long for an envelope.
    #[error("the message is too long ({0} bytes): split it into shorter messages")]
    TooLong(usize),
    /// No session and no prekeys: cannot compute a safety number.
    #[error(
        "no session with {0} yet: exchange a message first (`postern send {0} ...`), then verify"
    )]
    NoSession(String),
    /// End-to-end failure.
    #[error("{0}")]
    E2e(#[from] E2eError),
    /// Vault failure.
    #[error("vault: {0}")]
    Vault(VaultError),
    /// A stored record does not parse.
    #[error(
        "the vault record {0} is damaged: restore the home from a backup, or wipe and enroll again"
    )]
    Corrupt(&'static str),
    /// A file operation failed.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What.
        action: &'static str,
        /// Where.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A background task failed.
    #[error("internal error: {0}")]
    Internal(String),
    /// Writing the command's output failed.
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
    /// `wipe` was not confirmed.
    #[error("not confirmed: nothing was wiped")]
    NotConfirmed,
    /// Input that cannot be sent.
    #[error("{0}")]
    BadInput(String),
    /// A value typed on the command line (or at a prompt) that does not parse; caught
    /// before anything was asked for or changed.
    #[error("{0}")]
    Usage(String),
}

impl MemberError {}

pub(super) fn vault_err(home: &Path) -> impl Fn(VaultError) -> MemberError + '_ {
    move |e| match e {
        VaultError::NotAVault => MemberError::NoAccount(home.to_owned()),
        VaultError::WrongPassphrase => MemberError::WrongPassphrase(home.to_owned()),
        VaultError::AlreadyOpen => MemberError::VaultBusy(home.to_owned()),
        VaultError::AlreadyExists => MemberError::AlreadyInitialised(home.to_owned()),
        other => MemberError::Vault(other),
    }
}

impl From<VaultError> for MemberError {
    fn from(e: VaultError) -> Self {
        MemberError::Vault(e)
    }
}
