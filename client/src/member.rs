//! A member's account: the library behind `postern init`, `enroll`, `send`, `inbox`,
//! `watch`, `contacts`, `verify`, `status` and `wipe`, for the CLI, `postern-demo`, the
//! delivery commands and the simulation tests.
//!
//! A member home is a directory (0700) holding `vault/`, the end-to-end vault
//! (`postern_e2e::Vault`: every value sealed under the passphrase key). Everything the
//! client keeps is inside the vault: the device key, the enrollment bundle secret, the
//! member certificate, org descriptor and directory key, the mailbox ids and owner key,
//! the revocation list, contacts, Signal sessions and received messages. Nothing about the
//! member is readable without the passphrase.
//!
//! Network operations are `async` (tokio); vault and libsignal work runs on the blocking
//! pool. Every open of the vault deletes expired messages first.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use postern_e2e::sender_certificate::validate_sender_certificate;
use postern_e2e::{
    ContentType, E2eError, KdfParams, Messenger, OrgRoster, PreKeyPolicy, Received, SafetyNumber,
    StoredMessage, TrustFailure, Vault, VaultError, assemble_bundle, encode_bundle,
    encode_one_time_prekey, encode_public_prekeys,
};
use postern_identity::{
    BundleSecret, CertificateStatus, DeviceKeyPair, DirectoryKey, EnrollmentBundle,
    EnrollmentRequest, Handle, MemberCertificate, OrgDescriptor, OrgKey, Policy, RelayAddress,
    RevocationList, Role, SignalPublicKey, TrustError, certificate_status,
};
use postern_protocol::ErrorCode;
use postern_protocol::bytes::{BoundedVec, Bytes, FixedBytes};
use postern_protocol::ids::{EnvelopeId, MailboxId};
use postern_protocol::message::{
    Ack, CreateMailbox, Envelope, Fetch, FetchEntry, FetchPrekeys, PublishPrekeys,
    PutRevocationList, Request, Response, SendEnvelope,
};
use postern_protocol::padding::{pad, unpad};
use postern_transport::{DeviceSigner, PushStream, RelayConnection, TransportError};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use crate::directory::{self, BlobKind, DirectoryError, EntryContent, VerifiedEntry};
use crate::passphrase::PassphraseError;
use crate::secure_file::create_private_dir;

/// The vault's directory inside a member home.
pub const VAULT_DIR: &str = "vault";
/// One-time prekeys published at enrollment and kept topped up.
pub const PREKEY_POLICY: PreKeyPolicy = PreKeyPolicy {
    rotate_every: Duration::from_secs(7 * 24 * 3600),
    grace: Duration::from_secs(30 * 24 * 3600),
    low_water: 20,
    target: 100,
};
/// Envelopes asked for per `Fetch`.
const FETCH_PAGE: u16 = 64;
/// Most one-time prekeys per `PublishPrekeys`.
const PUBLISH_BATCH: usize = postern_protocol::limits::MAX_ONE_TIME_PREKEYS_PER_PUBLISH;

const ACCOUNT_RECORD: &[u8] = b"postern/account";
const CONTACTS_RECORD: &[u8] = b"postern/contacts";
const REVOCATIONS_RECORD: &[u8] = b"postern/revocations";

/// A member command failed. Every message names the cause and what to do next.
#[derive(Debug, thiserror::Error)]
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
}

impl MemberError {
    /// Process exit code (see `postern --help`): 3 passphrase, 4 refused (trust, policy,
    /// relay refusal, bad input files), 5 relay unreachable or connection lost, 6 no
    /// account or not enrolled, 1 anything else.
    pub fn exit_code(&self) -> u8 {
        use MemberError::*;
        match self {
            Passphrase(_) | WrongPassphrase(_) => 3,
            BadBundle(_)
            | WrongOrg { .. }
            | NoRelay
            | Refused { .. }
            | SelfRevoked
            | SelfExpired
            | UnknownHandle(_)
            | PeerRevoked(_)
            | PeerUntrusted { .. }
            | BadDirectoryEntry { .. }
            | TtlTooLong { .. }
            | TtlZero
            | SelfSend
            | TooLong(_)
            | BadHandle(_)
            | AlreadyEnrolled(_)
            | AlreadyInitialised(_)
            | BadInput(_) => 4,
            Unreachable { .. } | Relay { .. } => 5,
            NoAccount(_) | NotEnrolled | IncompleteInit(_) | NoHome => 6,
            _ => 1,
        }
    }
}

fn vault_err(home: &Path) -> impl Fn(VaultError) -> MemberError + '_ {
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

/// The platform's data directory for Postern: `$XDG_DATA_HOME/postern`, else
/// `~/.local/share/postern` (`~/Library/Application Support/postern` on macOS).
pub fn default_home() -> Option<PathBuf> {
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(x).join("postern"));
    }
    let home = PathBuf::from(std::env::var_os("HOME").filter(|v| !v.is_empty())?);
    if cfg!(target_os = "macos") {
        Some(home.join("Library/Application Support/postern"))
    } else {
        Some(home.join(".local/share/postern"))
    }
}

/// Vault KDF parameters: the strong default, or the insecure test setting when
/// `POSTERN_INSECURE_FAST_KDF=1` (as for the org's secrets).
pub fn vault_kdf_from_env() -> KdfParams {
    if postern_identity::secret_file::KdfParams::insecure_fast_requested() {
        KdfParams::insecure_for_tests()
    } else {
        KdfParams::default()
    }
}

/// Unix seconds now.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The account record, sealed in the vault.
#[derive(Serialize, Deserialize)]
struct Account {
    /// Record format.
    format: u8,
    /// The member's handle.
    handle: String,
    /// Ed25519 device key seed (relay admission).
    device_seed: [u8; 32],
    /// Opens the enrollment bundle; dropped once the bundle is imported.
    bundle_secret: Option<[u8; 32]>,
    /// The encoded enrollment request.
    request: Vec<u8>,
    /// Set by `enroll`.
    enrolled: Option<EnrolledRecord>,
}

#[derive(Serialize, Deserialize)]
struct EnrolledRecord {
    /// Encoded member certificate.
    certificate: Vec<u8>,
    /// Encoded org descriptor.
    descriptor: Vec<u8>,
    /// The org directory key.
    directory_key: [u8; 32],
    /// Mailbox recipient id (secret: opens the mailbox).
    mailbox_recipient: [u8; 32],
    /// Mailbox sender id (published in the directory).
    mailbox_sender: [u8; 32],
    /// Ed25519 seed of the mailbox owner key.
    mailbox_owner_seed: [u8; 32],
    /// The mailbox exists on the relay.
    mailbox_created: bool,
    /// The directory entry and first prekeys are published.
    published: bool,
}

impl Drop for Account {
    fn drop(&mut self) {
        self.device_seed.zeroize();
        if let Some(s) = &mut self.bundle_secret {
            s.zeroize();
        }
        if let Some(e) = &mut self.enrolled {
            e.directory_key.zeroize();
            e.mailbox_recipient.zeroize();
            e.mailbox_owner_seed.zeroize();
        }
    }
}

/// A known member, as stored in the vault.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ContactRecord {
    handle: String,
    certificate: Vec<u8>,
    sender: [u8; 32],
    updated_at: u64,
}

/// The enrolled state, decoded once.
struct OrgState {
    /// The org.
    org: OrgKey,
    /// Our certificate.
    certificate: MemberCertificate,
    /// The org descriptor from our bundle.
    descriptor: OrgDescriptor,
    /// The org directory key.
    directory_key: DirectoryKey,
    /// Mailbox recipient id.
    recipient: MailboxId,
    /// Mailbox sender id.
    sender: MailboxId,
    /// Mailbox owner key.
    owner: DeviceKeyPair,
    /// Device key and certificate, for admission.
    signer: Signer,
}

struct Signer {
    certificate: Vec<u8>,
    device: DeviceKeyPair,
}

impl DeviceSigner for Signer {
    fn certificate(&self) -> Vec<u8> {
        self.certificate.clone()
    }
    fn sign(&self, context: &[u8], message: &[u8]) -> [u8; 64] {
        self.device.sign(context, message)
    }
}

/// What enrollment did.
#[derive(Debug, Clone, Serialize)]
pub struct EnrollReport {
    /// The member's handle.
    pub handle: String,
    /// Its role.
    pub role: String,
    /// The org key.
    pub org: String,
    /// Certificate valid until (unix seconds).
    pub not_after: u64,
    /// The relay used.
    pub relay: String,
    /// One-time prekeys now on the relay.
    pub one_time_prekeys: u32,
}

/// A sent message.
#[derive(Debug, Clone, Serialize)]
pub struct SendReceipt {
    /// The message id (hex), as the recipient will see it.
    pub message_id: String,
    /// The recipient.
    pub to: String,
    /// Relay envelope id (hex).
    pub envelope_id: String,
    /// When the relay deletes it if undelivered (unix seconds).
    pub relay_expires_at: u64,
    /// When every copy expires (unix ms; inside the encryption).
    pub expires_at_ms: u64,
    /// Whether a new session was set up from the directory.
    pub new_session: bool,
}

/// Why an envelope was acknowledged without storing a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dropped {
    /// Already received (redelivery, replay).
    Duplicate,
    /// Expired before it arrived.
    Expired,
    /// From a revoked member.
    Revoked(String),
    /// From a member whose certificate or directory entry is not acceptable.
    Untrusted(String),
    /// Not decryptable: garbage, altered, for someone else, or keys gone.
    Undecryptable,
}

/// What happened to one envelope.
#[derive(Debug)]
pub enum EnvelopeOutcome {
    /// A new message, stored (then acknowledged).
    New(StoredMessage),
    /// Acknowledged and dropped.
    Dropped(Dropped),
    /// Left on the relay (the sender's directory entry could not be fetched now).
    Deferred,
}

/// What one `fetch` did.
#[derive(Debug, Default)]
pub struct FetchReport {
    /// New messages, stored.
    pub new: Vec<StoredMessage>,
    /// Redeliveries and replays dropped.
    pub duplicates: usize,
    /// Expired on arrival.
    pub expired: usize,
    /// Refused senders (revoked or untrusted), one entry per envelope.
    pub refused: Vec<String>,
    /// Undecryptable envelopes dropped.
    pub undecryptable: usize,
    /// Envelopes left on the relay for later.
    pub deferred: usize,
}

impl FetchReport {
    fn add(&mut self, outcome: EnvelopeOutcome) {
        match outcome {
            EnvelopeOutcome::New(m) => self.new.push(m),
            EnvelopeOutcome::Dropped(Dropped::Duplicate) => self.duplicates += 1,
            EnvelopeOutcome::Dropped(Dropped::Expired) => self.expired += 1,
            EnvelopeOutcome::Dropped(Dropped::Revoked(h) | Dropped::Untrusted(h)) => {
                self.refused.push(h)
            }
            EnvelopeOutcome::Dropped(Dropped::Undecryptable) => self.undecryptable += 1,
            EnvelopeOutcome::Deferred => self.deferred += 1,
        }
    }
}

/// A known member.
#[derive(Debug, Clone, Serialize)]
pub struct Contact {
    /// Handle.
    pub handle: String,
    /// Role.
    pub role: String,
    /// active, expired, not-yet-valid or revoked (under the held revocation list).
    pub status: String,
    /// Certificate valid until (unix seconds).
    pub not_after: u64,
    /// Whether a Signal session exists.
    pub session: bool,
}

/// One-time prekey upkeep.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct PrekeyStatus {
    /// One-time prekeys on the relay now.
    pub available: u32,
    /// Published by this call.
    pub published: usize,
    /// Whether the signed prekeys were rotated.
    pub rotated: bool,
}

/// An open, admitted relay connection with the member's mailbox opened.
pub struct Connection {
    /// The connection.
    relay: RelayConnection,
    /// Where it goes (for messages).
    address: String,
    /// Envelopes pending when the mailbox was opened.
    pub pending: u32,
    /// The relay's maximum TTL.
    pub relay_max_ttl_secs: u32,
    /// Version of the revocation list held after connecting.
    pub revocation_version: u64,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("address", &self.address)
            .field("pending", &self.pending)
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// The relay's address.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Subscribes to pushes for the mailbox.
    pub async fn subscribe(&self) -> Result<PushStream, MemberError> {
        self.relay
            .subscribe()
            .await
            .map_err(|e| relay_err("subscribe", e))
    }

    /// The underlying relay connection.
    pub fn relay(&self) -> &RelayConnection {
        &self.relay
    }

    /// Closes politely.
    pub async fn close(self) {
        self.relay.close().await;
    }

    async fn request(&self, what: &'static str, req: &Request) -> Result<Response, MemberError> {
        self.relay
            .request(req)
            .await
            .map_err(|e| relay_err(what, e))
    }
}

fn relay_err(what: &'static str, e: TransportError) -> MemberError {
    match e {
        TransportError::Refused(code) => MemberError::Refused { what, code },
        other => MemberError::Relay {
            what,
            source: other,
        },
    }
}

fn unexpected(what: &'static str) -> MemberError {
    MemberError::Relay {
        what,
        source: TransportError::UnexpectedResponse,
    }
}

/// A member's account, open.
pub struct Member {
    /// The home directory.
    home: PathBuf,
    /// The vault, shared with blocking tasks.
    vault: Arc<Vault>,
    /// The handle.
    handle: String,
    /// Enrolled state, once enrolled.
    org: Option<Arc<OrgState>>,
}

impl std::fmt::Debug for Member {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Member")
            .field("home", &self.home)
            .field("handle", &self.handle)
            .finish_non_exhaustive()
    }
}

fn load_account(vault: &Vault, home: &Path) -> Result<Account, MemberError> {
    let bytes = vault
        .get_record(ACCOUNT_RECORD)?
        .ok_or_else(|| MemberError::IncompleteInit(home.to_owned()))?;
    postcard::from_bytes(&bytes).map_err(|_| MemberError::Corrupt("account"))
}

fn save_account(vault: &Vault, account: &Account) -> Result<(), MemberError> {
    let bytes = Zeroizing::new(
        postcard::to_allocvec(account).map_err(|_| MemberError::Corrupt("account"))?,
    );
    vault.put_record(ACCOUNT_RECORD, &bytes)?;
    Ok(())
}

fn org_state(account: &Account) -> Result<Option<OrgState>, MemberError> {
    let Some(e) = &account.enrolled else {
        return Ok(None);
    };
    let certificate = MemberCertificate::decode(&e.certificate)
        .map_err(|_| MemberError::Corrupt("certificate"))?;
    let descriptor =
        OrgDescriptor::decode(&e.descriptor).map_err(|_| MemberError::Corrupt("descriptor"))?;
    Ok(Some(OrgState {
        org: descriptor.body().org,
        directory_key: DirectoryKey::from_bytes(&e.directory_key),
        recipient: MailboxId(e.mailbox_recipient),
        sender: MailboxId(e.mailbox_sender),
        owner: DeviceKeyPair::from_seed(&e.mailbox_owner_seed),
        signer: Signer {
            certificate: e.certificate.clone(),
            device: DeviceKeyPair::from_seed(&account.device_seed),
        },
        certificate,
        descriptor,
    }))
}

fn load_contacts(vault: &Vault) -> Result<Vec<ContactRecord>, MemberError> {
    match vault.get_record(CONTACTS_RECORD)? {
        None => Ok(Vec::new()),
        Some(b) => postcard::from_bytes(&b).map_err(|_| MemberError::Corrupt("contacts")),
    }
}

fn load_revocations(vault: &Vault) -> Result<RevocationList, MemberError> {
    let b = vault
        .get_record(REVOCATIONS_RECORD)?
        .ok_or(MemberError::Corrupt("revocation list"))?;
    RevocationList::decode(&b).map_err(|_| MemberError::Corrupt("revocation list"))
}

fn load_roster(vault: &Vault, org: &OrgState) -> Result<OrgRoster, MemberError> {
    let mut roster = OrgRoster::new(org.org, load_revocations(vault)?);
    for c in load_contacts(vault)? {
        if let Ok(cert) = MemberCertificate::decode(&c.certificate) {
            roster.insert(cert);
        }
    }
    Ok(roster)
}

fn relay_address(org: &OrgState) -> Result<RelayAddress, MemberError> {
    org.descriptor
        .body()
        .relays
        .as_slice()
        .first()
        .cloned()
        .ok_or(MemberError::NoRelay)
}

fn handle_of(s: &str) -> Result<Handle, MemberError> {
    Handle::new(s).map_err(|_| MemberError::BadHandle(s.to_owned()))
}

/// Runs vault or libsignal work on the blocking pool.
async fn blocking<T, F>(f: F) -> Result<T, MemberError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, MemberError> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| MemberError::Internal(e.to_string()))?
}

fn trust_failure(handle: &str, reason: &TrustFailure) -> MemberError {
    match reason {
        TrustFailure::Certificate(TrustError::Revoked { .. }) => {
            MemberError::PeerRevoked(handle.to_owned())
        }
        other => MemberError::PeerUntrusted {
            handle: handle.to_owned(),
            reason: other.to_string(),
        },
    }
}

/// Whether a fresh directory entry might cure this trust failure (unknown member, or a
/// certificate that expired and may have been renewed).
fn refreshable(reason: &TrustFailure) -> bool {
    matches!(
        reason,
        TrustFailure::UnknownMember
            | TrustFailure::Certificate(TrustError::Expired { .. })
            | TrustFailure::Certificate(TrustError::NotYetValid { .. })
    )
}

impl Member {
    /// Whether `home` holds a vault.
    pub fn exists(home: &Path) -> bool {
        home.join(VAULT_DIR)
            .join(postern_e2e::vault::HEADER_FILE)
            .exists()
    }

    /// Creates the account in `home`: the vault (under `passphrase` with `kdf`), the
    /// Signal identity and prekeys, the device key and the enrollment bundle secret.
    /// Returns the enrollment request to give the admin.
    pub fn init(
        home: &Path,
        handle: &str,
        passphrase: &[u8],
        kdf: KdfParams,
    ) -> Result<(Self, EnrollmentRequest), MemberError> {
        let h = handle_of(handle)?;
        if Self::exists(home) {
            return Err(MemberError::AlreadyInitialised(home.to_owned()));
        }
        create_private_dir(home).map_err(|source| MemberError::Io {
            action: "create",
            path: home.to_owned(),
            source,
        })?;
        let vault =
            Vault::create(&home.join(VAULT_DIR), passphrase, kdf).map_err(vault_err(home))?;
        vault.initialise_member(handle, SystemTime::now())?;
        let identity = vault.identity_key()?;
        let signal = SignalPublicKey::from_bytes(&identity.serialize())
            .map_err(|_| MemberError::Corrupt("identity key"))?;
        let device = DeviceKeyPair::generate();
        let (request, secret) = EnrollmentRequest::create(h, signal, &device)
            .map_err(|e| MemberError::Internal(e.to_string()))?;
        let account = Account {
            format: 1,
            handle: handle.to_owned(),
            device_seed: *device.seed(),
            bundle_secret: Some(*secret.to_bytes()),
            request: request.encode(),
            enrolled: None,
        };
        save_account(&vault, &account)?;
        Ok((
            Self {
                home: home.to_owned(),
                vault: Arc::new(vault),
                handle: handle.to_owned(),
                org: None,
            },
            request,
        ))
    }

    /// Opens the account in `home` and deletes expired messages.
    pub fn open(home: &Path, passphrase: &[u8]) -> Result<Self, MemberError> {
        let vault = Vault::open(&home.join(VAULT_DIR), passphrase).map_err(vault_err(home))?;
        vault.purge_expired(SystemTime::now())?;
        let account = load_account(&vault, home)?;
        let org = org_state(&account)?.map(Arc::new);
        Ok(Self {
            home: home.to_owned(),
            vault: Arc::new(vault),
            handle: account.handle.clone(),
            org,
        })
    }

    /// The member's handle.
    pub fn handle(&self) -> &str {
        &self.handle
    }

    /// The home directory.
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// The vault (for application records such as deliveries).
    pub fn vault(&self) -> &Arc<Vault> {
        &self.vault
    }

    /// The enrollment request made by `init`.
    pub fn enrollment_request(&self) -> Result<EnrollmentRequest, MemberError> {
        let account = load_account(&self.vault, &self.home)?;
        EnrollmentRequest::decode(&account.request).map_err(|_| MemberError::Corrupt("request"))
    }

    /// Whether `enroll` has completed.
    pub fn is_enrolled(&self) -> bool {
        self.org.is_some()
            && load_account(&self.vault, &self.home)
                .ok()
                .and_then(|a| a.enrolled.as_ref().map(|e| e.published))
                .unwrap_or(false)
    }

    fn enrolled(&self) -> Result<&Arc<OrgState>, MemberError> {
        self.org.as_ref().ok_or(MemberError::NotEnrolled)
    }

    /// The member's certificate.
    pub fn certificate(&self) -> Result<&MemberCertificate, MemberError> {
        Ok(&self.enrolled()?.certificate)
    }

    /// The member's role.
    pub fn role(&self) -> Result<Role, MemberError> {
        Ok(self.enrolled()?.certificate.body().role)
    }

    /// The org key.
    pub fn org(&self) -> Result<OrgKey, MemberError> {
        Ok(self.enrolled()?.org)
    }

    /// The org policy (TTLs, retention).
    pub fn policy(&self) -> Result<Policy, MemberError> {
        Ok(self.enrolled()?.descriptor.body().policy)
    }

    /// The revocation list held.
    pub fn revocations(&self) -> Result<RevocationList, MemberError> {
        load_revocations(&self.vault)
    }

    /// Imports a sealed enrollment bundle (checked against this device's request and, if
    /// given, the expected org key), then creates the mailbox on the org's relay and
    /// publishes the directory entry and one-time prekeys. If an earlier attempt stopped
    /// after the import (relay unreachable), this resumes it; `sealed_bundle` is then
    /// not needed again and is ignored. `progress` is told each slow step.
    pub async fn enroll(
        &mut self,
        sealed_bundle: &[u8],
        expected_org: Option<OrgKey>,
        progress: &(dyn Fn(&str) + Sync),
    ) -> Result<EnrollReport, MemberError> {
        let mut account = load_account(&self.vault, &self.home)?;
        let stage = account.enrolled.as_ref().map(|e| e.published);
        match stage {
            Some(true) => return Err(MemberError::AlreadyEnrolled(self.enrolled()?.org)),
            Some(false) => {}
            None => self.import_bundle(&mut account, sealed_bundle, expected_org)?,
        }
        if let (Some(expected), Some(org)) = (expected_org, &self.org)
            && org.org != expected
        {
            return Err(MemberError::WrongOrg {
                expected,
                found: org.org,
            });
        }
        let org = self.enrolled()?.clone();
        let address = relay_address(&org)?;
        progress(&format!("Connecting to the relay {}…", address));
        let relay = self.admit(&org, &address).await?;
        if !account.enrolled.as_ref().is_some_and(|e| e.mailbox_created) {
            let created = relay
                .request(&Request::CreateMailbox(CreateMailbox {
                    recipient: org.recipient,
                    sender: org.sender,
                    owner: FixedBytes(org.owner.public_key().to_bytes()),
                }))
                .await;
            match created {
                Ok(Response::MailboxCreated) => {}
                // Made by an earlier attempt whose answer was lost: opening it below with
                // our owner key proves it is ours.
                Err(TransportError::Refused(ErrorCode::AlreadyExists)) => {}
                Ok(_) => return Err(unexpected("creating the mailbox")),
                Err(e) => return Err(relay_err("creating the mailbox", e)),
            }
        }
        let mut relay = relay;
        let pending = relay
            .open_mailbox(org.recipient, &org.owner)
            .await
            .map_err(|e| relay_err("opening the mailbox", e))?;
        if let Some(e) = &mut account.enrolled {
            e.mailbox_created = true;
        }
        save_account(&self.vault, &account)?;
        let conn = Connection {
            relay,
            address: address.to_string(),
            pending,
            relay_max_ttl_secs: 0,
            revocation_version: 0,
        };
        progress(&format!(
            "Publishing your directory entry and {} one-time prekeys…",
            PREKEY_POLICY.target
        ));
        let prekeys = self.maintain_prekeys(&conn).await?;
        if let Some(e) = &mut account.enrolled {
            e.published = true;
        }
        save_account(&self.vault, &account)?;
        conn.close().await;
        let body = org.certificate.body();
        Ok(EnrollReport {
            handle: self.handle.clone(),
            role: body.role.to_string(),
            org: org.org.to_string(),
            not_after: body.not_after,
            relay: address.to_string(),
            one_time_prekeys: prekeys.available,
        })
    }

    fn import_bundle(
        &mut self,
        account: &mut Account,
        sealed: &[u8],
        expected_org: Option<OrgKey>,
    ) -> Result<(), MemberError> {
        let secret = account
            .bundle_secret
            .as_ref()
            .map(BundleSecret::from_bytes)
            .ok_or(MemberError::Corrupt("bundle secret"))?;
        let bundle = EnrollmentBundle::open(sealed, &secret)
            .map_err(|e| MemberError::BadBundle(e.to_string()))?;
        let request = EnrollmentRequest::decode(&account.request)
            .map_err(|_| MemberError::Corrupt("request"))?;
        let body = bundle.body();
        if let Some(expected) = expected_org
            && body.org != expected
        {
            return Err(MemberError::WrongOrg {
                expected,
                found: body.org,
            });
        }
        let now = unix_now();
        bundle
            .verify_for(&body.org, &request, now)
            .map_err(|e| MemberError::BadBundle(e.to_string()))?;
        let trust_root = body.descriptor.body().sealed_sender_trust_root.to_bytes();
        let sender_name =
            validate_sender_certificate(body.sender_certificate.as_slice(), &trust_root, now)
                .map_err(|e| MemberError::BadBundle(format!("sender certificate: {e}")))?;
        if sender_name != account.handle {
            return Err(MemberError::BadBundle(
                "the sender certificate names another member".into(),
            ));
        }
        if body.descriptor.body().relays.as_slice().is_empty() {
            return Err(MemberError::NoRelay);
        }
        self.vault
            .set_sender_certificate(body.sender_certificate.as_slice())?;
        self.vault
            .put_record(REVOCATIONS_RECORD, &body.revocations.encode())?;
        let mut rng = rand::rng();
        account.enrolled = Some(EnrolledRecord {
            certificate: body.member_certificate.encode(),
            descriptor: body.descriptor.encode(),
            directory_key: *body.directory_key.as_bytes(),
            mailbox_recipient: *MailboxId::random(&mut rng).as_bytes(),
            mailbox_sender: *MailboxId::random(&mut rng).as_bytes(),
            mailbox_owner_seed: rand::random(),
            mailbox_created: false,
            published: false,
        });
        account.bundle_secret = None;
        save_account(&self.vault, account)?;
        self.org = org_state(account)?.map(Arc::new);
        Ok(())
    }

    /// Connects to the org's relay: pinned QUIC, revocation list refresh, admission with
    /// the device key, and the mailbox opened.
    pub async fn connect(&self) -> Result<Connection, MemberError> {
        let org = self.enrolled()?.clone();
        let address = relay_address(&org)?;
        let mut relay = self.admit(&org, &address).await?;
        let pending = relay
            .open_mailbox(org.recipient, &org.owner)
            .await
            .map_err(|e| relay_err("opening the mailbox", e))?;
        let revocation_version = load_revocations(&self.vault)?.version();
        Ok(Connection {
            relay_max_ttl_secs: relay.max_ttl_secs().unwrap_or(0),
            relay,
            address: address.to_string(),
            pending,
            revocation_version,
        })
    }

    async fn admit(
        &self,
        org: &OrgState,
        address: &RelayAddress,
    ) -> Result<RelayConnection, MemberError> {
        let mut relay =
            RelayConnection::connect(address)
                .await
                .map_err(|source| MemberError::Unreachable {
                    relay: address.to_string(),
                    source,
                })?;
        self.refresh_revocations_on(&relay).await?;
        match relay.authenticate(&org.signer).await {
            Ok(_) => Ok(relay),
            Err(TransportError::Refused(ErrorCode::Revoked)) => Err(MemberError::SelfRevoked),
            Err(TransportError::Refused(ErrorCode::Expired)) => Err(MemberError::SelfExpired),
            Err(e) => Err(relay_err("admission", e)),
        }
    }

    /// Fetches the relay's revocation list and keeps it if it is newer than the one held
    /// (an older or conflicting one is never accepted; if the relay's is older, ours is
    /// offered to it). Returns whether ours changed.
    pub async fn refresh_revocations(&self, conn: &Connection) -> Result<bool, MemberError> {
        self.refresh_revocations_on(&conn.relay).await
    }

    async fn refresh_revocations_on(&self, relay: &RelayConnection) -> Result<bool, MemberError> {
        let org = self.enrolled()?;
        let held = load_revocations(&self.vault)?;
        let offered = match relay.request(&Request::GetRevocationList).await {
            Ok(Response::RevocationList(r)) => r.list,
            Ok(_) => return Err(unexpected("fetching the revocation list")),
            Err(e) => return Err(relay_err("fetching the revocation list", e)),
        };
        let offered = offered.and_then(|b| RevocationList::decode(b.as_slice()).ok());
        match offered {
            Some(list) => match RevocationList::accept_update(Some(&held), &list, &org.org) {
                Ok(true) => {
                    self.vault.put_record(REVOCATIONS_RECORD, &list.encode())?;
                    Ok(true)
                }
                Ok(false) => Ok(false),
                Err(TrustError::StaleRevocationList { .. }) => {
                    self.offer_revocations(relay, &held).await;
                    Ok(false)
                }
                // A conflicting or foreign list changes nothing we hold.
                Err(_) => Ok(false),
            },
            None => {
                self.offer_revocations(relay, &held).await;
                Ok(false)
            }
        }
    }

    async fn offer_revocations(&self, relay: &RelayConnection, held: &RevocationList) {
        if let Ok(list) = Bytes::new(held.encode()) {
            // Best effort: the relay checks it itself.
            let _ = relay
                .request(&Request::PutRevocationList(PutRevocationList { list }))
                .await;
        }
    }

    /// Rotates the signed prekeys if due, republishes the directory entry, and tops up
    /// the one-time prekeys on the relay when they run low.
    pub async fn maintain_prekeys(&self, conn: &Connection) -> Result<PrekeyStatus, MemberError> {
        let org = self.enrolled()?.clone();
        let vault = self.vault.clone();
        let (entry, rotated) = {
            let org = org.clone();
            blocking(move || {
                let rotated = vault
                    .rotate_prekeys_if_due(SystemTime::now(), &PREKEY_POLICY)?
                    .is_some();
                let prekeys =
                    encode_public_prekeys(&vault.public_prekeys()?).map_err(E2eError::from)?;
                let content = EntryContent {
                    certificate: org.certificate.encode(),
                    sender: org.sender,
                    prekeys,
                };
                Ok((
                    content
                        .encode()
                        .map_err(|_| MemberError::Corrupt("entry"))?,
                    rotated,
                ))
            })
            .await?
        };
        let lookup = directory::lookup_key(&org.directory_key, &self.handle);
        let sealed = directory::seal(&org.directory_key, &lookup, BlobKind::Entry, &entry)
            .map_err(|_| MemberError::Corrupt("entry"))?;
        let mut available = self.publish(conn, &sealed, Vec::new()).await?;
        let mut published = 0;
        let vault = self.vault.clone();
        let remaining = available as usize;
        let batch =
            blocking(move || Ok(vault.replenish_one_time_prekeys(remaining, &PREKEY_POLICY)?))
                .await?;
        if let Some(batch) = batch {
            let mut sealed_keys = Vec::with_capacity(batch.keys.len());
            for k in &batch.keys {
                let plain = Zeroizing::new(encode_one_time_prekey(k).map_err(E2eError::from)?);
                sealed_keys.push(
                    directory::seal(&org.directory_key, &lookup, BlobKind::OneTime, &plain)
                        .map_err(|_| MemberError::Corrupt("prekey"))?,
                );
            }
            for chunk in sealed_keys.chunks(PUBLISH_BATCH) {
                available = self.publish(conn, &sealed, chunk.to_vec()).await?;
                published += chunk.len();
            }
        }
        Ok(PrekeyStatus {
            available,
            published,
            rotated,
        })
    }

    async fn publish(
        &self,
        conn: &Connection,
        entry: &[u8],
        one_time: Vec<Vec<u8>>,
    ) -> Result<u32, MemberError> {
        let org = self.enrolled()?;
        let entry = Bytes::new(entry.to_vec()).map_err(|_| MemberError::Corrupt("entry"))?;
        let one_time = one_time
            .into_iter()
            .map(Bytes::new)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| MemberError::Corrupt("prekey"))?;
        let one_time = BoundedVec::new(one_time).map_err(|_| MemberError::Corrupt("prekeys"))?;
        let req = Request::PublishPrekeys(PublishPrekeys {
            directory: directory::lookup_key(&org.directory_key, &self.handle),
            entry,
            one_time,
        });
        match conn.request("publishing prekeys", &req).await? {
            Response::PrekeysPublished(p) => Ok(p.one_time_available),
            _ => Err(unexpected("publishing prekeys")),
        }
    }

    /// Fetches, verifies and stores `handle`'s directory entry (certificate, mailbox);
    /// returns it with the one-time prekey the relay handed out, if any. Only a lookup
    /// that starts a session should `take_one_time`: each is handed out once, and a
    /// member's supply is finite.
    pub async fn lookup(
        &self,
        conn: &Connection,
        handle: &str,
        take_one_time: bool,
    ) -> Result<(VerifiedEntry, Option<postern_e2e::OneTimePreKey>), MemberError> {
        let org = self.enrolled()?;
        handle_of(handle)?;
        let directory = directory::lookup_key(&org.directory_key, handle);
        let request = if take_one_time {
            Request::FetchPrekeys(FetchPrekeys { directory })
        } else {
            Request::FetchEntry(FetchEntry { directory })
        };
        let prekeys = match conn.relay.request(&request).await {
            Ok(Response::Prekeys(p)) => p,
            Ok(_) => return Err(unexpected("fetching a directory entry")),
            Err(TransportError::Refused(ErrorCode::NotFound)) => {
                return Err(MemberError::UnknownHandle(handle.to_owned()));
            }
            Err(e) => return Err(relay_err("fetching a directory entry", e)),
        };
        let revocations = load_revocations(&self.vault)?;
        let bad = |source| MemberError::BadDirectoryEntry {
            handle: handle.to_owned(),
            source,
        };
        let entry = directory::verify_entry(
            &org.directory_key,
            &org.org,
            &revocations,
            handle,
            prekeys.entry.as_slice(),
            unix_now(),
        )
        .map_err(|e| match e {
            DirectoryError::Certificate(TrustError::Revoked { .. }) => {
                MemberError::PeerRevoked(handle.to_owned())
            }
            other => bad(other),
        })?;
        let one_time = prekeys
            .one_time
            .map(|b| directory::open_one_time(&org.directory_key, handle, b.as_slice()))
            .transpose()
            .map_err(bad)?;
        let mut contacts = load_contacts(&self.vault)?;
        contacts.retain(|c| c.handle != handle);
        contacts.push(ContactRecord {
            handle: handle.to_owned(),
            certificate: entry.certificate.encode(),
            sender: *entry.sender.as_bytes(),
            updated_at: unix_now(),
        });
        self.save_contacts(&contacts)?;
        Ok((entry, one_time))
    }

    fn save_contacts(&self, contacts: &[ContactRecord]) -> Result<(), MemberError> {
        let bytes =
            postcard::to_allocvec(contacts).map_err(|_| MemberError::Corrupt("contacts"))?;
        self.vault.put_record(CONTACTS_RECORD, &bytes)?;
        Ok(())
    }

    /// The TTL to use: `requested`, else the org default; refused above the org's or the
    /// relay's maximum.
    pub fn resolve_ttl(
        &self,
        requested: Option<Duration>,
        relay_max_ttl_secs: u32,
    ) -> Result<Duration, MemberError> {
        let policy = self.policy()?;
        let ttl = requested.unwrap_or(Duration::from_secs(policy.default_ttl_secs));
        if ttl.is_zero() {
            return Err(MemberError::TtlZero);
        }
        let show = |d: Duration| humantime::format_duration(d).to_string();
        if ttl > Duration::from_secs(policy.max_ttl_secs) {
            return Err(MemberError::TtlTooLong {
                requested: show(ttl),
                max: show(Duration::from_secs(policy.max_ttl_secs)),
                limit: "org",
            });
        }
        if relay_max_ttl_secs > 0 && ttl > Duration::from_secs(u64::from(relay_max_ttl_secs)) {
            return Err(MemberError::TtlTooLong {
                requested: show(ttl),
                max: show(Duration::from_secs(u64::from(relay_max_ttl_secs))),
                limit: "relay",
            });
        }
        Ok(ttl)
    }

    /// Encrypts `body` to `to` and stores it on the relay. Returns only once the relay
    /// has durably accepted the envelope. Sets up a session from the directory first if
    /// there is none; refuses revoked or untrusted peers.
    pub async fn send(
        &self,
        conn: &Connection,
        to: &str,
        content_type: ContentType,
        body: &[u8],
        ttl: Option<Duration>,
    ) -> Result<SendReceipt, MemberError> {
        let org = self.enrolled()?.clone();
        handle_of(to)?;
        if to == self.handle {
            return Err(MemberError::SelfSend);
        }
        let ttl = self.resolve_ttl(ttl, conn.relay_max_ttl_secs)?;
        if body.len() > postern_e2e::plaintext::MAX_BODY_LEN {
            return Err(MemberError::TooLong(body.len()));
        }
        let mut new_session = false;
        let has_session = {
            let (vault, org, to) = (self.vault.clone(), org.clone(), to.to_owned());
            blocking(move || {
                let roster = load_roster(&vault, &org)?;
                let m = Messenger::for_org(&vault, &roster, &org.descriptor)?;
                Ok(m.has_session(&to)?)
            })
            .await?
        };
        let known = load_contacts(&self.vault)?.iter().any(|c| c.handle == to);
        if !has_session || !known {
            let (entry, one_time) = self.lookup(conn, to, !has_session).await?;
            if !has_session {
                let bundle = assemble_bundle(&entry.prekeys, one_time.as_ref())?;
                let bundle = encode_bundle(&bundle).map_err(E2eError::from)?;
                self.start_session(to, bundle).await?;
                new_session = true;
            }
        }
        let outgoing = match self.encrypt(to, content_type, body, ttl).await {
            Err(MemberError::E2e(E2eError::Untrusted { reason, .. })) if refreshable(&reason) => {
                self.lookup(conn, to, false).await?;
                self.encrypt(to, content_type, body, ttl).await?
            }
            other => other?,
        };
        let padded = pad(&outgoing.1).map_err(|_| MemberError::TooLong(body.len()))?;
        let contact = load_contacts(&self.vault)?
            .into_iter()
            .find(|c| c.handle == to)
            .ok_or_else(|| MemberError::UnknownHandle(to.to_owned()))?;
        let req = Request::Send(SendEnvelope {
            to: MailboxId(contact.sender),
            ttl_secs: u32::try_from(ttl.as_secs()).unwrap_or(u32::MAX),
            body: Bytes::new(padded).map_err(|_| MemberError::TooLong(body.len()))?,
        });
        match conn.request("storing the message", &req).await? {
            Response::Sent(s) => Ok(SendReceipt {
                message_id: hex::encode(outgoing.0.0),
                to: to.to_owned(),
                envelope_id: hex::encode(s.id.as_bytes()),
                relay_expires_at: s.expires_at,
                expires_at_ms: outgoing.2,
                new_session,
            }),
            _ => Err(unexpected("storing the message")),
        }
    }

    async fn start_session(&self, to: &str, bundle: Vec<u8>) -> Result<(), MemberError> {
        let org = self.enrolled()?.clone();
        let (vault, to) = (self.vault.clone(), to.to_owned());
        blocking(move || {
            let roster = load_roster(&vault, &org)?;
            let m = Messenger::for_org(&vault, &roster, &org.descriptor)?;
            match m.start_session(&to, &bundle, SystemTime::now()) {
                Ok(()) => Ok(()),
                Err(E2eError::Untrusted { reason, .. }) => Err(trust_failure(&to, &reason)),
                Err(e) => Err(e.into()),
            }
        })
        .await
    }

    /// Returns (id, sealed, expires_at_ms).
    async fn encrypt(
        &self,
        to: &str,
        content_type: ContentType,
        body: &[u8],
        ttl: Duration,
    ) -> Result<(postern_e2e::MessageId, Vec<u8>, u64), MemberError> {
        let org = self.enrolled()?.clone();
        let (vault, to, body) = (
            self.vault.clone(),
            to.to_owned(),
            Zeroizing::new(body.to_vec()),
        );
        blocking(move || {
            let roster = load_roster(&vault, &org)?;
            let m = Messenger::for_org(&vault, &roster, &org.descriptor)?;
            let now = SystemTime::now();
            match m.send(&to, content_type, &body, ttl, now) {
                Ok(o) => {
                    let sent = now
                        .duration_since(UNIX_EPOCH)
                        .map(|d| d.as_millis() as u64)
                        .unwrap_or(0);
                    // As the messenger computes it.
                    let expires = sent.saturating_add(ttl.as_millis().max(1) as u64);
                    Ok((o.id, o.sealed, expires))
                }
                Err(E2eError::Untrusted { peer, reason }) if !refreshable(&reason) => {
                    Err(trust_failure(&peer, &reason))
                }
                Err(e) => Err(e.into()),
            }
        })
        .await
    }

    /// Sends a text message.
    pub async fn send_text(
        &self,
        conn: &Connection,
        to: &str,
        text: &str,
        ttl: Option<Duration>,
    ) -> Result<SendReceipt, MemberError> {
        self.send(conn, to, ContentType::Text, text.as_bytes(), ttl)
            .await
    }

    /// Decrypts and stores one envelope (without acknowledging it). An unknown sender's
    /// directory entry is fetched and verified first.
    async fn process(
        &self,
        conn: &Connection,
        envelope: &Envelope,
    ) -> Result<EnvelopeOutcome, MemberError> {
        let org = self.enrolled()?.clone();
        let Ok(sealed) = unpad(envelope.body.as_slice()) else {
            return Ok(EnvelopeOutcome::Dropped(Dropped::Undecryptable));
        };
        let sealed = Arc::new(sealed.to_vec());
        for attempt in 0..2 {
            let (vault, org, sealed) = (self.vault.clone(), org.clone(), sealed.clone());
            let result = blocking(move || {
                let roster = load_roster(&vault, &org)?;
                let m = Messenger::for_org(&vault, &roster, &org.descriptor)?;
                Ok(m.receive(&sealed, SystemTime::now()))
            })
            .await?;
            return Ok(match result {
                Ok(Received::New(m)) => EnvelopeOutcome::New(m),
                Ok(Received::Duplicate { .. }) | Err(E2eError::Replay { .. }) => {
                    EnvelopeOutcome::Dropped(Dropped::Duplicate)
                }
                Ok(Received::Expired { .. }) => EnvelopeOutcome::Dropped(Dropped::Expired),
                Err(E2eError::Untrusted { peer, reason })
                    if attempt == 0 && refreshable(&reason) =>
                {
                    match self.lookup(conn, &peer, false).await {
                        Ok(_) => continue,
                        Err(MemberError::PeerRevoked(p)) => {
                            EnvelopeOutcome::Dropped(Dropped::Revoked(p))
                        }
                        Err(MemberError::Relay { .. }) => EnvelopeOutcome::Deferred,
                        Err(MemberError::Vault(e)) => return Err(MemberError::Vault(e)),
                        Err(_) => EnvelopeOutcome::Dropped(Dropped::Untrusted(peer)),
                    }
                }
                Err(E2eError::Untrusted {
                    peer,
                    reason: TrustFailure::Certificate(TrustError::Revoked { .. }),
                }) => EnvelopeOutcome::Dropped(Dropped::Revoked(peer)),
                Err(E2eError::Untrusted { peer, .. }) => {
                    EnvelopeOutcome::Dropped(Dropped::Untrusted(peer))
                }
                Err(E2eError::Vault(e)) => return Err(MemberError::Vault(e)),
                Err(_) => EnvelopeOutcome::Dropped(Dropped::Undecryptable),
            });
        }
        Ok(EnvelopeOutcome::Dropped(Dropped::Undecryptable))
    }

    async fn ack(&self, conn: &Connection, ids: Vec<EnvelopeId>) -> Result<(), MemberError> {
        if ids.is_empty() {
            return Ok(());
        }
        let ids =
            BoundedVec::new(ids).map_err(|_| MemberError::Internal("too many acks".into()))?;
        match conn
            .request("acknowledging", &Request::Ack(Ack { ids }))
            .await?
        {
            Response::Acked(_) => Ok(()),
            _ => Err(unexpected("acknowledging")),
        }
    }

    /// Processes one pushed envelope: decrypt, store, then acknowledge (dropped ones are
    /// acknowledged too; deferred ones are not).
    pub async fn receive_envelope(
        &self,
        conn: &Connection,
        envelope: &Envelope,
    ) -> Result<EnvelopeOutcome, MemberError> {
        let outcome = self.process(conn, envelope).await?;
        if !matches!(outcome, EnvelopeOutcome::Deferred) {
            self.ack(conn, vec![envelope.id]).await?;
        }
        Ok(outcome)
    }

    /// Fetches every pending envelope, page by page: each is decrypted and stored, then
    /// acknowledged; duplicates, expired, revoked senders' and undecryptable envelopes are
    /// acknowledged and counted.
    pub async fn fetch(&self, conn: &Connection) -> Result<FetchReport, MemberError> {
        let mut report = FetchReport::default();
        loop {
            let page = match conn
                .request(
                    "fetching messages",
                    &Request::Fetch(Fetch { limit: FETCH_PAGE }),
                )
                .await?
            {
                Response::Envelopes(e) => e,
                _ => return Err(unexpected("fetching messages")),
            };
            let mut acks = Vec::new();
            for env in page.envelopes.as_slice() {
                let outcome = self.process(conn, env).await?;
                if !matches!(outcome, EnvelopeOutcome::Deferred) {
                    acks.push(env.id);
                }
                report.add(outcome);
            }
            let progressed = !acks.is_empty();
            self.ack(conn, acks).await?;
            if !page.more || !progressed {
                break;
            }
        }
        Ok(report)
    }

    /// The stored, unexpired messages, oldest first (expired ones are deleted first).
    pub fn messages(&self) -> Result<Vec<StoredMessage>, MemberError> {
        let now = SystemTime::now();
        self.vault.purge_expired(now)?;
        Ok(self.vault.messages(now)?)
    }

    /// Deletes expired messages now; returns how many.
    pub fn purge_expired(&self) -> Result<usize, MemberError> {
        Ok(self.vault.purge_expired(SystemTime::now())?)
    }

    /// The members this account knows, with their status under the held revocation list.
    pub async fn contacts(&self) -> Result<Vec<Contact>, MemberError> {
        let org = self.enrolled()?.clone();
        let vault = self.vault.clone();
        blocking(move || {
            let revocations = load_revocations(&vault)?;
            let roster = load_roster(&vault, &org)?;
            let m = Messenger::for_org(&vault, &roster, &org.descriptor)?;
            let now = unix_now();
            let mut out = Vec::new();
            for c in load_contacts(&vault)? {
                let Ok(cert) = MemberCertificate::decode(&c.certificate) else {
                    continue;
                };
                let b = cert.body();
                let status = certificate_status(&cert, &revocations, now);
                out.push(Contact {
                    handle: c.handle.clone(),
                    role: b.role.to_string(),
                    status: status.as_str().to_owned(),
                    not_after: b.not_after,
                    session: m.has_session(&c.handle)?,
                });
            }
            out.sort_by(|a, b| a.handle.cmp(&b.handle));
            Ok(out)
        })
        .await
    }

    /// The safety number with `handle`, from the identity key of the session.
    pub async fn safety_number(&self, handle: &str) -> Result<SafetyNumber, MemberError> {
        let org = self.enrolled()?.clone();
        let (vault, peer) = (self.vault.clone(), handle.to_owned());
        handle_of(handle)?;
        blocking(move || {
            let roster = load_roster(&vault, &org)?;
            let m = Messenger::for_org(&vault, &roster, &org.descriptor)?;
            match m.safety_number(&peer) {
                Ok(s) => Ok(s),
                Err(E2eError::NoSession { .. }) => Err(MemberError::NoSession(peer)),
                Err(e) => Err(e.into()),
            }
        })
        .await
    }

    /// Our own certificate's status under the held revocation list.
    pub fn certificate_status(&self) -> Result<CertificateStatus, MemberError> {
        let org = self.enrolled()?;
        Ok(certificate_status(
            &org.certificate,
            &load_revocations(&self.vault)?,
            unix_now(),
        ))
    }

    /// The role in `handle`'s certificate as held in this account's contacts (stored
    /// only after verification against the org root), if that certificate is active now
    /// under the held revocation list. `None` for an unknown, expired or revoked member.
    /// Used to authenticate the role behind an end-to-end-encrypted message, whose
    /// sender's certificate the messenger has just checked against the same contacts.
    pub fn contact_role(&self, handle: &str) -> Result<Option<Role>, MemberError> {
        let revocations = load_revocations(&self.vault)?;
        let now = unix_now();
        Ok(load_contacts(&self.vault)?
            .into_iter()
            .filter(|c| c.handle == handle)
            .filter_map(|c| MemberCertificate::decode(&c.certificate).ok())
            .find(|cert| {
                cert.body().handle.as_str() == handle
                    && certificate_status(cert, &revocations, now) == CertificateStatus::Active
            })
            .map(|cert| cert.body().role))
    }

    /// Closes the vault (drops this handle).
    pub fn close(self) {}
}

/// What [`wipe`] destroyed.
#[derive(Debug, Clone, Serialize)]
pub struct WipeReport {
    /// Files overwritten and deleted.
    pub files: usize,
    /// Bytes overwritten.
    pub bytes: u64,
}

/// Destroys the account in `home`: every file of the vault is overwritten with random
/// bytes, synced, truncated and deleted, then the vault directory is removed (and
/// `home`, if nothing else is left in it). On SSDs, flash and journaling or
/// copy-on-write file systems, old copies of blocks may survive the overwrite: only
/// full-disk encryption makes deletion final there.
pub fn wipe(home: &Path) -> Result<WipeReport, MemberError> {
    use std::io::{Seek, Write};
    let dir = home.join(VAULT_DIR);
    if !dir.is_dir() {
        return Err(MemberError::NoAccount(home.to_owned()));
    }
    let io = |action, path: &Path| {
        let path = path.to_owned();
        move |source| MemberError::Io {
            action,
            path,
            source,
        }
    };
    let mut report = WipeReport { files: 0, bytes: 0 };
    let entries = std::fs::read_dir(&dir).map_err(io("list", &dir))?;
    for entry in entries {
        let path = entry.map_err(io("list", &dir))?.path();
        if path.is_dir() {
            std::fs::remove_dir_all(&path).map_err(io("delete", &path))?;
            continue;
        }
        let len = std::fs::metadata(&path)
            .map_err(io("inspect", &path))?
            .len();
        {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(io("open", &path))?;
            let mut left = len;
            let mut buf = vec![0u8; 64 * 1024];
            f.seek(std::io::SeekFrom::Start(0))
                .map_err(io("overwrite", &path))?;
            while left > 0 {
                let n = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
                rand::Rng::fill(&mut rand::rng(), &mut buf[..n]);
                f.write_all(&buf[..n]).map_err(io("overwrite", &path))?;
                left -= n as u64;
            }
            f.sync_all().map_err(io("sync", &path))?;
            f.set_len(0).map_err(io("truncate", &path))?;
            f.sync_all().map_err(io("sync", &path))?;
        }
        std::fs::remove_file(&path).map_err(io("delete", &path))?;
        report.files += 1;
        report.bytes += len;
    }
    std::fs::remove_dir(&dir).map_err(io("delete", &dir))?;
    // Leave the home if the user keeps other things in it.
    let _ = std::fs::remove_dir(home);
    Ok(report)
}
