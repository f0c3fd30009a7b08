//! `postern org`: the org administrator's commands, run on the (ideally offline) machine
//! that holds the org root.
//!
//! An org home is a directory, owner-only (0700), holding:
//! - `org.key`: the org key `postern-org:...` (public; written last by `org init`);
//! - `secrets.pstn`: the org root seed, the sealed-sender trust-root and server keys and
//!   certificate, and the directory key, encrypted under the admin's passphrase
//!   (Argon2id + XChaCha20-Poly1305, `postern_identity::secret_file`);
//! - `descriptor.bin`: the current signed org descriptor;
//! - `revocations.bin`: the current signed revocation list;
//! - `members/<serial>.cert`: every member certificate issued;
//! - `lock`: held while a command changes the home.
//!
//! Every file is written atomically with mode 0600. Commands that change the home unlock
//! the secrets first, so a wrong passphrase changes nothing.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use clap::{Args, Subcommand};
use postern_e2e::sender_certificate::{
    SealedSenderKeys, generate_sealed_sender_keys, issue_sender_certificate,
    validate_sender_certificate,
};
use postern_identity::descriptor::{MAX_RELAYS, OrgDescriptorBody};
use postern_identity::encoding::{BoundedBytes, BoundedVec, SignedBody};
use postern_identity::enrollment::bundle_body;
use postern_identity::secret_file::{self, KdfParams};
use postern_identity::{
    CertificateStatus, DirectoryKey, EnrollmentRequest, EnrollmentRequestBody, MemberCertificate,
    MemberCertificateBody, OrgDescriptor, OrgKey, OrgRoot, Policy, RelayAddress, RevocationList,
    RevocationListBody, Role, SecretFileError, SignalPublicKey, TrustError, certificate_status,
};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use crate::cli_util::rfc3339;
use crate::passphrase::{PassphraseError, PassphraseSource};
use crate::secure_file::{create_atomic, create_private_dir, read_bounded, write_atomic};

const ORG_KEY_FILE: &str = "org.key";
const SECRETS_FILE: &str = "secrets.pstn";
const DESCRIPTOR_FILE: &str = "descriptor.bin";
const REVOCATIONS_FILE: &str = "revocations.bin";
const MEMBERS_DIR: &str = "members";
const LOCK_FILE: &str = "lock";

/// Default validity of a member certificate.
pub const DEFAULT_VALID_DAYS: u32 = 90;
/// Longest validity of a member certificate.
pub const MAX_VALID_DAYS: u32 = 400;
/// A certificate's `not_before` is back-dated this much, so members whose clocks run a
/// little slow can use it at once.
pub const CLOCK_SKEW_SECS: u64 = 3600;

/// `postern org ...`
#[derive(Debug, Subcommand)]
pub enum OrgCommand {
    /// Create a new org in --home: the org root key, the sealed-sender keys, the
    /// directory key, the first org descriptor and an empty revocation list.
    ///
    /// The secrets are encrypted under a passphrase (asked twice, or from
    /// --passphrase-file / POSTERN_PASSPHRASE). Keep this home on an offline machine and
    /// back it up encrypted: whoever holds it and the passphrase can enroll anyone. The
    /// last line printed is the org key (postern-org:...), which members need.
    Init,
    /// Change the org's relays (the org descriptor is re-signed, version + 1).
    #[command(subcommand)]
    Relay(RelayCommand),
    /// Answer a member's enrollment request with a sealed enrollment bundle.
    ///
    /// Checks the request's proof of possession, issues a member certificate and a
    /// sealed-sender certificate, and writes a bundle (the certificates, the org
    /// descriptor, the revocation list and the org directory key) signed by the org root
    /// and encrypted to the requesting device: only that device can open it. Before
    /// handing it over, compare the request fingerprint printed here with the one the
    /// member's device shows, in person or by voice (or pass it with --fingerprint).
    ///
    /// Enrolling a request again with the same handle and keys renews the member (a new
    /// certificate and bundle); a handle held by an active member with other keys is
    /// refused until that member is revoked.
    Enroll(EnrollArgs),
    /// Revoke every certificate issued to a handle: issues the next revocation list.
    Revoke(RevokeArgs),
    /// List issued member certificates with their status (active, expired,
    /// not-yet-valid, revoked).
    Members(MembersArgs),
    /// Show the org key, the descriptor (relays, policy) and the revocation list version.
    Show,
}

/// `postern org relay ...`
#[derive(Debug, Subcommand)]
pub enum RelayCommand {
    /// Add a relay: postern://<base32 SHA-256 of the relay's public key>@host:port (the
    /// relay operator gives you this address).
    Add {
        /// The relay address, e.g. postern://<52 base32 chars>@relay.example.org:4433.
        address: RelayAddress,
    },
}

/// `postern org enroll`
#[derive(Debug, Args)]
pub struct EnrollArgs {
    /// The enrollment request file the member's `postern init` wrote.
    pub request: PathBuf,
    /// The member's role: admin, coordinator or courier.
    #[arg(long, value_parser = parse_role)]
    pub role: Role,
    /// Days the certificate stays valid (1-400). Shorter is safer: renew by enrolling again.
    #[arg(long, default_value_t = DEFAULT_VALID_DAYS, value_parser = clap::value_parser!(u32).range(1..=MAX_VALID_DAYS as i64))]
    pub valid_days: u32,
    /// Where to write the sealed bundle (must not exist). Give it to the member only.
    #[arg(long, value_name = "BUNDLE_FILE")]
    pub out: PathBuf,
    /// The request fingerprint the member read to you; enrollment stops if it differs.
    #[arg(long)]
    pub fingerprint: Option<String>,
}

/// `postern org revoke`
#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// The member's handle.
    pub handle: String,
    /// Also push the list to every relay of the org descriptor (it authenticates itself;
    /// no member account is needed). The list is written to <home>/revocations.bin
    /// either way; members pick it up from the relay when they next connect.
    #[arg(long)]
    pub publish: bool,
}

/// `postern org members`
#[derive(Debug, Args)]
pub struct MembersArgs {
    /// Print JSON (an array of members) instead of a table.
    #[arg(long)]
    pub json: bool,
}

fn parse_role(s: &str) -> Result<Role, String> {
    s.parse::<Role>().map_err(|e| e.to_string())
}

/// An org command failed. Each message names the cause and what to do.
#[derive(Debug, thiserror::Error)]
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

impl OrgError {
    /// The process exit code: 3 for passphrase problems, 4 for a refused request, 1 else.
    pub fn exit_code(&self) -> u8 {
        match self {
            OrgError::Passphrase(_) | OrgError::WrongPassphrase(_) => 3,
            OrgError::BadRequest { .. } | OrgError::FingerprintMismatch { .. } => 4,
            _ => 1,
        }
    }
}

impl From<std::io::Error> for OrgError {
    fn from(e: std::io::Error) -> Self {
        OrgError::Output(e)
    }
}

/// Global options an org command needs.
#[derive(Debug, Clone, Default)]
pub struct OrgContext {
    /// `--home` / `POSTERN_HOME`.
    pub home: Option<PathBuf>,
    /// Where the passphrase comes from.
    pub passphrase: PassphraseSource,
}

/// Runs an org command, writing its report to `out`.
pub fn run(cmd: OrgCommand, ctx: &OrgContext, out: &mut dyn Write) -> Result<(), OrgError> {
    let home = OrgHome::new(ctx.home.clone().ok_or(OrgError::NoHome)?);
    match cmd {
        OrgCommand::Init => init(&home, &ctx.passphrase, out),
        OrgCommand::Relay(RelayCommand::Add { address }) => {
            relay_add(&home, &ctx.passphrase, address, out)
        }
        OrgCommand::Enroll(args) => enroll(&home, &ctx.passphrase, &args, out),
        OrgCommand::Revoke(args) => revoke(&home, &ctx.passphrase, &args, out),
        OrgCommand::Members(args) => members(&home, args.json, out),
        OrgCommand::Show => show(&home, out),
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The org's secrets as stored (encrypted) in `secrets.pstn`.
#[derive(Serialize, Deserialize)]
struct StoredSecrets {
    format: u8,
    root_seed: [u8; 32],
    sealed_sender_trust_root_private: [u8; 32],
    sealed_sender_trust_root_public: SignalPublicKey,
    sealed_sender_server_private: [u8; 32],
    sealed_sender_server_certificate: BoundedBytes<1024>,
    directory_key: [u8; 32],
}

impl Drop for StoredSecrets {
    fn drop(&mut self) {
        self.root_seed.zeroize();
        self.sealed_sender_trust_root_private.zeroize();
        self.sealed_sender_server_private.zeroize();
        self.directory_key.zeroize();
    }
}

/// The unlocked secrets.
struct OrgSecrets {
    root: OrgRoot,
    sealed_sender: SealedSenderKeys,
    directory_key: DirectoryKey,
}

impl OrgSecrets {
    fn to_stored(&self) -> Result<StoredSecrets, OrgError> {
        let key32 = |v: &[u8], what: &'static str| {
            <[u8; 32]>::try_from(v).map_err(|_| OrgError::Corrupt {
                path: PathBuf::from(SECRETS_FILE),
                reason: format!("{what} is not 32 bytes"),
            })
        };
        Ok(StoredSecrets {
            format: 1,
            root_seed: *self.root.seed(),
            sealed_sender_trust_root_private: key32(
                &self.sealed_sender.trust_root_private,
                "trust root key",
            )?,
            sealed_sender_trust_root_public: SignalPublicKey::from_bytes(
                &self.sealed_sender.trust_root_public,
            )
            .map_err(|reason| OrgError::Corrupt {
                path: PathBuf::from(SECRETS_FILE),
                reason: reason.to_owned(),
            })?,
            sealed_sender_server_private: key32(&self.sealed_sender.server_private, "server key")?,
            sealed_sender_server_certificate: BoundedBytes::new(
                self.sealed_sender.server_certificate.clone(),
            )
            .map_err(|_| OrgError::Corrupt {
                path: PathBuf::from(SECRETS_FILE),
                reason: "server certificate too long".into(),
            })?,
            directory_key: *self.directory_key.as_bytes(),
        })
    }

    fn from_stored(s: &StoredSecrets) -> Self {
        OrgSecrets {
            root: OrgRoot::from_seed(&s.root_seed),
            sealed_sender: SealedSenderKeys {
                trust_root_private: Zeroizing::new(s.sealed_sender_trust_root_private.to_vec()),
                trust_root_public: s.sealed_sender_trust_root_public.to_bytes(),
                server_private: Zeroizing::new(s.sealed_sender_server_private.to_vec()),
                server_certificate: s.sealed_sender_server_certificate.as_slice().to_vec(),
            },
            directory_key: DirectoryKey::from_bytes(&s.directory_key),
        }
    }
}

/// An org home directory.
struct OrgHome {
    dir: PathBuf,
}

/// Held while a command changes the home; released on drop.
struct HomeLock(File);

impl Drop for HomeLock {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

impl OrgHome {
    fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> OrgError {
        let path = path.to_path_buf();
        move |source| OrgError::Io {
            action,
            path,
            source,
        }
    }

    fn lock(&self) -> Result<HomeLock, OrgError> {
        let path = self.path(LOCK_FILE);
        let mut options = fs::OpenOptions::new();
        options.create(true).truncate(false).write(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let file = options.open(&path).map_err(Self::io("open", &path))?;
        file.try_lock().map_err(|e| {
            OrgError::Lock(
                self.dir.clone(),
                std::io::Error::other(format!(
                    "another postern command is changing this org home; wait for it ({e})"
                )),
            )
        })?;
        Ok(HomeLock(file))
    }

    fn write(&self, name: &str, bytes: &[u8]) -> Result<(), OrgError> {
        let path = self.path(name);
        write_atomic(&path, bytes).map_err(Self::io("write", &path))
    }

    fn read(&self, name: &str, max: usize) -> Result<Vec<u8>, OrgError> {
        let path = self.path(name);
        read_bounded(&path, max).map_err(Self::io("read", &path))
    }

    fn corrupt(&self, name: &str, reason: impl ToString) -> OrgError {
        OrgError::Corrupt {
            path: self.path(name),
            reason: reason.to_string(),
        }
    }

    fn org_key(&self) -> Result<OrgKey, OrgError> {
        let path = self.path(ORG_KEY_FILE);
        if !path.exists() {
            return Err(OrgError::NotAnOrg(self.dir.clone()));
        }
        let text = self.read(ORG_KEY_FILE, 256)?;
        String::from_utf8_lossy(&text)
            .parse::<OrgKey>()
            .map_err(|e| self.corrupt(ORG_KEY_FILE, e))
    }

    fn unlock(&self, passphrase: &PassphraseSource, org: &OrgKey) -> Result<OrgSecrets, OrgError> {
        let path = self.path(SECRETS_FILE);
        let file = self.read(SECRETS_FILE, secret_file::MAX_FILE_LEN)?;
        let pass = passphrase.existing(&format!("the org in {}", self.dir.display()))?;
        let plain = secret_file::open(&file, pass.as_bytes()).map_err(|e| match e {
            SecretFileError::WrongPassphrase => OrgError::WrongPassphrase(path.clone()),
            other => self.corrupt(SECRETS_FILE, other),
        })?;
        let stored: StoredSecrets =
            postcard::from_bytes(&plain).map_err(|e| self.corrupt(SECRETS_FILE, e))?;
        if stored.format != 1 {
            return Err(self.corrupt(SECRETS_FILE, "unknown secrets format"));
        }
        let secrets = OrgSecrets::from_stored(&stored);
        if secrets.root.org_key() != *org {
            return Err(self.corrupt(SECRETS_FILE, "the root key does not match org.key"));
        }
        Ok(secrets)
    }

    fn descriptor(&self, org: &OrgKey) -> Result<OrgDescriptor, OrgError> {
        let bytes = self.read(DESCRIPTOR_FILE, OrgDescriptorBody::MAX_ENCODED_LEN)?;
        let d = OrgDescriptor::decode(&bytes).map_err(|e| self.corrupt(DESCRIPTOR_FILE, e))?;
        if d.body().org != *org {
            return Err(self.corrupt(DESCRIPTOR_FILE, "signed by another org"));
        }
        Ok(d)
    }

    fn revocations(&self, org: &OrgKey) -> Result<RevocationList, OrgError> {
        let bytes = self.read(REVOCATIONS_FILE, RevocationListBody::MAX_ENCODED_LEN)?;
        let rl = RevocationList::decode(&bytes).map_err(|e| self.corrupt(REVOCATIONS_FILE, e))?;
        rl.check_org(org)
            .map_err(|e| self.corrupt(REVOCATIONS_FILE, e))?;
        Ok(rl)
    }

    /// Every issued certificate, verified as the org's.
    fn members(&self, org: &OrgKey) -> Result<Vec<MemberCertificate>, OrgError> {
        let dir = self.path(MEMBERS_DIR);
        let mut certs = Vec::new();
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(certs),
            Err(e) => return Err(Self::io("list", &dir)(e)),
        };
        for entry in entries {
            let entry = entry.map_err(Self::io("list", &dir))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if !name.ends_with(".cert") {
                continue;
            }
            let rel = format!("{MEMBERS_DIR}/{name}");
            let bytes = self.read(&rel, MemberCertificateBody::MAX_ENCODED_LEN)?;
            let cert = MemberCertificate::decode(&bytes).map_err(|e| self.corrupt(&rel, e))?;
            if cert.body().org != *org {
                return Err(self.corrupt(&rel, "signed by another org"));
            }
            certs.push(cert);
        }
        certs.sort_by(|a, b| {
            (a.body().handle.as_str(), a.body().not_before)
                .cmp(&(b.body().handle.as_str(), b.body().not_before))
        });
        Ok(certs)
    }
}

fn init(
    home: &OrgHome,
    passphrase: &PassphraseSource,
    out: &mut dyn Write,
) -> Result<(), OrgError> {
    if home.path(ORG_KEY_FILE).exists() {
        return Err(OrgError::AlreadyAnOrg(home.dir.clone()));
    }
    if home.path(SECRETS_FILE).exists() {
        return Err(OrgError::IncompleteInit(home.dir.clone()));
    }
    let pass = passphrase.new_secret("the new org")?;
    create_private_dir(&home.dir).map_err(OrgHome::io("create", &home.dir))?;
    create_private_dir(&home.path(MEMBERS_DIR))
        .map_err(OrgHome::io("create", &home.path(MEMBERS_DIR)))?;
    let _lock = home.lock()?;
    if home.path(ORG_KEY_FILE).exists() || home.path(SECRETS_FILE).exists() {
        return Err(OrgError::AlreadyAnOrg(home.dir.clone()));
    }

    let secrets = OrgSecrets {
        root: OrgRoot::generate(),
        sealed_sender: generate_sealed_sender_keys()?,
        directory_key: DirectoryKey::generate(),
    };
    let org = secrets.root.org_key();
    let params = KdfParams::from_env();
    if params != KdfParams::STRONG {
        eprintln!(
            "postern: WARNING: POSTERN_INSECURE_FAST_KDF=1: the org secrets are protected by a weak key derivation; for tests only"
        );
    }
    let stored = secrets.to_stored()?;
    let plain =
        Zeroizing::new(postcard::to_allocvec(&stored).map_err(|e| home.corrupt(SECRETS_FILE, e))?);
    let sealed = secret_file::seal(&plain, pass.as_bytes(), params)
        .map_err(|e| home.corrupt(SECRETS_FILE, e))?;

    let trust_root = SignalPublicKey::from_bytes(&secrets.sealed_sender.trust_root_public)
        .map_err(|e| home.corrupt(SECRETS_FILE, e))?;
    let descriptor = secrets.root.sign_descriptor(OrgDescriptorBody {
        org,
        version: 1,
        relays: BoundedVec::default(),
        sealed_sender_trust_root: trust_root,
        policy: Policy::default(),
    })?;
    let revocations =
        secrets
            .root
            .sign_revocations(RevocationListBody::new(org, 1, Vec::new())?)?;

    home.write(SECRETS_FILE, &sealed)?;
    home.write(DESCRIPTOR_FILE, &descriptor.encode())?;
    home.write(REVOCATIONS_FILE, &revocations.encode())?;
    home.write(ORG_KEY_FILE, format!("{org}\n").as_bytes())?;

    let policy = descriptor.body().policy;
    writeln!(out, "Created the org in {}.", home.dir.display())?;
    writeln!(
        out,
        "  org root, sealed-sender keys and directory key: {} (encrypted under your passphrase)",
        home.path(SECRETS_FILE).display()
    )?;
    writeln!(
        out,
        "  org descriptor version 1: no relays yet (add one with `postern --home {} org relay add <address>`)",
        home.dir.display()
    )?;
    writeln!(
        out,
        "  policy: messages live at most {} h (default {} h); closed deliveries kept {} days",
        policy.max_ttl_secs / 3600,
        policy.default_ttl_secs / 3600,
        policy.retention_days
    )?;
    writeln!(out, "  revocation list version 1: empty")?;
    writeln!(
        out,
        "Keep this directory offline and back it up encrypted. Members need the org key:"
    )?;
    writeln!(out, "{org}")?;
    Ok(())
}

fn relay_add(
    home: &OrgHome,
    passphrase: &PassphraseSource,
    address: RelayAddress,
    out: &mut dyn Write,
) -> Result<(), OrgError> {
    let org = home.org_key()?;
    let _lock = home.lock()?;
    let current = home.descriptor(&org)?;
    let body = current.body();
    if body.relays.as_slice().contains(&address) {
        return Err(OrgError::DuplicateRelay(address.to_string()));
    }
    if body.relays.as_slice().len() >= MAX_RELAYS {
        return Err(OrgError::TooManyRelays);
    }
    let secrets = home.unlock(passphrase, &org)?;
    let mut relays = body.relays.as_slice().to_vec();
    relays.push(address.clone());
    let next = secrets.root.sign_descriptor(OrgDescriptorBody {
        org,
        version: body.version + 1,
        relays: BoundedVec::new(relays).map_err(|_| OrgError::TooManyRelays)?,
        sealed_sender_trust_root: body.sealed_sender_trust_root,
        policy: body.policy,
    })?;
    home.write(DESCRIPTOR_FILE, &next.encode())?;
    writeln!(out, "Added relay {address}.")?;
    writeln!(
        out,
        "Org descriptor is now version {} with {} relay(s). Members receive it in new bundles.",
        next.body().version,
        next.body().relays.as_slice().len()
    )?;
    Ok(())
}

fn normalise_fingerprint(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

fn enroll(
    home: &OrgHome,
    passphrase: &PassphraseSource,
    args: &EnrollArgs,
    out: &mut dyn Write,
) -> Result<(), OrgError> {
    let org = home.org_key()?;
    if args.out.exists() {
        return Err(OrgError::OutputExists(args.out.clone()));
    }
    let bytes = read_bounded(&args.request, EnrollmentRequestBody::MAX_ENCODED_LEN)
        .map_err(OrgHome::io("read the enrollment request", &args.request))?;
    let request = EnrollmentRequest::decode(&bytes).map_err(|source| OrgError::BadRequest {
        path: args.request.clone(),
        source,
    })?;
    let fingerprint = request.fingerprint();
    if let Some(expected) = &args.fingerprint
        && normalise_fingerprint(expected) != normalise_fingerprint(&fingerprint)
    {
        return Err(OrgError::FingerprintMismatch {
            expected: expected.clone(),
            actual: fingerprint,
        });
    }
    let req = request.body();

    let _lock = home.lock()?;
    let secrets = home.unlock(passphrase, &org)?;
    let descriptor = home.descriptor(&org)?;
    let trust_root = descriptor.body().sealed_sender_trust_root.to_bytes();
    if trust_root != secrets.sealed_sender.trust_root_public {
        return Err(home.corrupt(
            DESCRIPTOR_FILE,
            "its sealed-sender trust root is not the org's",
        ));
    }
    let revocations = home.revocations(&org)?;
    let existing = home.members(&org)?;
    let now = now();

    let mut renewal = false;
    for cert in &existing {
        let c = cert.body();
        let live = !matches!(
            certificate_status(cert, &revocations, now),
            CertificateStatus::Revoked | CertificateStatus::Expired
        );
        let same_keys =
            c.device_key == req.device_key && c.signal_identity_key == req.signal_identity_key;
        if c.handle == req.handle && live {
            if same_keys {
                renewal = true;
            } else {
                return Err(OrgError::HandleTaken {
                    handle: c.handle.to_string(),
                    serial: c.serial,
                });
            }
        }
        if c.handle != req.handle
            && live
            && (c.device_key == req.device_key || c.signal_identity_key == req.signal_identity_key)
        {
            return Err(OrgError::KeysTaken(c.handle.to_string()));
        }
    }

    // Random serials reveal nothing about how many members the org has.
    let serial = loop {
        let s: u64 = rand::random();
        if s != 0 && !existing.iter().any(|c| c.body().serial == s) && !revocations.is_revoked(s) {
            break s;
        }
    };
    let not_before = now.saturating_sub(CLOCK_SKEW_SECS);
    let not_after = now + u64::from(args.valid_days) * 86_400;
    let cert = secrets.root.issue_member_certificate(
        req.handle.clone(),
        args.role,
        req.signal_identity_key,
        req.device_key,
        not_before,
        not_after,
        serial,
    )?;
    let sender_certificate = issue_sender_certificate(
        &secrets.sealed_sender,
        req.handle.as_str(),
        &req.signal_identity_key.to_bytes(),
        not_after,
    )?;
    let bundle = secrets.root.sign_bundle(bundle_body(
        org,
        &request,
        cert.clone(),
        sender_certificate,
        descriptor.clone(),
        revocations.clone(),
        secrets.directory_key.clone(),
    )?)?;
    // Check what the member will check, before anything is written.
    bundle.verify_for(&org, &request, now)?;
    validate_sender_certificate(
        bundle.body().sender_certificate.as_slice(),
        &trust_root,
        now,
    )?;
    let sealed = bundle.seal(&request)?;

    // Record the certificate first: a bundle on disk always has its roster entry.
    home.write(&format!("{MEMBERS_DIR}/{serial:016x}.cert"), &cert.encode())?;
    create_atomic(&args.out, &sealed).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            OrgError::OutputExists(args.out.clone())
        } else {
            OrgHome::io("write", &args.out)(e)
        }
    })?;

    writeln!(
        out,
        "{} {} as {} (serial {serial:016x}), valid {} to {}.",
        if renewal { "Renewed" } else { "Enrolled" },
        req.handle,
        args.role,
        rfc3339(not_before),
        rfc3339(not_after)
    )?;
    writeln!(out, "Request fingerprint: {fingerprint}")?;
    if args.fingerprint.is_none() {
        writeln!(
            out,
            "  Compare it with the fingerprint on the member's device, in person or by voice, before handing over the bundle."
        )?;
    }
    writeln!(
        out,
        "Wrote the sealed bundle to {} (descriptor version {}, revocation list version {}).",
        args.out.display(),
        descriptor.body().version,
        revocations.version()
    )?;
    writeln!(
        out,
        "  Only the requesting device can open it, but give it to that member alone, then delete your copy."
    )?;
    Ok(())
}

fn revoke(
    home: &OrgHome,
    passphrase: &PassphraseSource,
    args: &RevokeArgs,
    out: &mut dyn Write,
) -> Result<(), OrgError> {
    let org = home.org_key()?;
    let _lock = home.lock()?;
    let current = home.revocations(&org)?;
    let serials: Vec<u64> = home
        .members(&org)?
        .iter()
        .filter(|c| c.body().handle.as_str() == args.handle)
        .map(|c| c.body().serial)
        .collect();
    if serials.is_empty() {
        return Err(OrgError::UnknownHandle(args.handle.clone()));
    }
    let new: Vec<u64> = serials
        .iter()
        .copied()
        .filter(|s| !current.is_revoked(*s))
        .collect();
    if new.is_empty() {
        writeln!(
            out,
            "{} is already revoked (revocation list version {}); nothing changed.",
            args.handle,
            current.version()
        )?;
        if args.publish {
            publish(home, &org, &current, &args.handle, out)?;
        }
        return Ok(());
    }
    let secrets = home.unlock(passphrase, &org)?;
    let mut all = current.body().revoked.as_slice().to_vec();
    all.extend_from_slice(&new);
    let next =
        secrets
            .root
            .sign_revocations(RevocationListBody::new(org, current.version() + 1, all)?)?;
    home.write(REVOCATIONS_FILE, &next.encode())?;
    let shown: Vec<String> = new.iter().map(|s| format!("{s:016x}")).collect();
    writeln!(
        out,
        "Revoked {} (serial {}).",
        args.handle,
        shown.join(", ")
    )?;
    writeln!(
        out,
        "Wrote revocation list version {} to {}.",
        next.version(),
        home.path(REVOCATIONS_FILE).display()
    )?;
    if args.publish {
        publish(home, &org, &next, &args.handle, out)?;
    } else {
        writeln!(
            out,
            "It is NOT published yet: run `postern org revoke {} --publish` when a relay is reachable. Relays and members refuse any older list.",
            args.handle
        )?;
    }
    Ok(())
}

/// Offers `list` to every relay of the org descriptor (no admission needed: the list
/// authenticates itself). Succeeds if at least one relay holds it afterwards.
fn publish(
    home: &OrgHome,
    org: &OrgKey,
    list: &RevocationList,
    handle: &str,
    out: &mut dyn Write,
) -> Result<(), OrgError> {
    use postern_protocol::message::{PutRevocationList, Request, Response};
    let descriptor = home.descriptor(org)?;
    let relays = descriptor.body().relays.as_slice();
    if relays.is_empty() {
        return Err(OrgError::NoRelayToPublish(handle.to_owned()));
    }
    let request = match postern_protocol::Bytes::new(list.encode()) {
        Ok(bytes) => Request::PutRevocationList(PutRevocationList { list: bytes }),
        Err(_) => {
            return Err(OrgError::PublishFailed {
                version: list.version(),
                path: home.path(REVOCATIONS_FILE),
                reasons: "the list is larger than a relay accepts".into(),
            });
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut accepted = 0;
    let mut reasons = Vec::new();
    for address in relays {
        let outcome = runtime.block_on(async {
            let conn = postern_transport::RelayConnection::connect(address).await?;
            let r = conn.request(&request).await;
            conn.close().await;
            r
        });
        match outcome {
            Ok(Response::RevocationListAccepted(a)) => {
                accepted += 1;
                writeln!(
                    out,
                    "Published to {address}: the relay holds version {}.",
                    a.version
                )?;
            }
            Ok(_) => reasons.push(format!("{address}: unexpected answer")),
            Err(e) => {
                writeln!(out, "Not published to {address}: {e}")?;
                reasons.push(format!("{address}: {e}"));
            }
        }
    }
    if accepted == 0 {
        return Err(OrgError::PublishFailed {
            version: list.version(),
            path: home.path(REVOCATIONS_FILE),
            reasons: reasons.join("; "),
        });
    }
    Ok(())
}

#[derive(Serialize)]
struct MemberRow {
    handle: String,
    role: &'static str,
    status: &'static str,
    serial: String,
    not_before: u64,
    not_after: u64,
    not_before_utc: String,
    not_after_utc: String,
    device_key: String,
}

fn members(home: &OrgHome, json: bool, out: &mut dyn Write) -> Result<(), OrgError> {
    let org = home.org_key()?;
    let revocations = home.revocations(&org)?;
    let now = now();
    let rows: Vec<MemberRow> = home
        .members(&org)?
        .iter()
        .map(|cert| {
            let c = cert.body();
            MemberRow {
                handle: c.handle.to_string(),
                role: c.role.as_str(),
                status: certificate_status(cert, &revocations, now).as_str(),
                serial: format!("{:016x}", c.serial),
                not_before: c.not_before,
                not_after: c.not_after,
                not_before_utc: rfc3339(c.not_before),
                not_after_utc: rfc3339(c.not_after),
                device_key: postern_identity::keys::encode_base32(&c.device_key.to_bytes()),
            }
        })
        .collect();
    if json {
        let text = serde_json::to_string_pretty(&rows).map_err(std::io::Error::other)?;
        writeln!(out, "{text}")?;
        return Ok(());
    }
    if rows.is_empty() {
        writeln!(
            out,
            "No members yet. Enroll one with `postern --home {} org enroll <request-file> --role <role> --out <bundle-file>`.",
            home.dir.display()
        )?;
        return Ok(());
    }
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
    table.set_header([
        "handle",
        "role",
        "status",
        "serial",
        "valid from",
        "valid until",
    ]);
    for r in &rows {
        table.add_row([
            r.handle.as_str(),
            r.role,
            r.status,
            r.serial.as_str(),
            r.not_before_utc.as_str(),
            r.not_after_utc.as_str(),
        ]);
    }
    writeln!(out, "{table}")?;
    writeln!(
        out,
        "{} certificate(s); revocation list version {}.",
        rows.len(),
        revocations.version()
    )?;
    Ok(())
}

fn show(home: &OrgHome, out: &mut dyn Write) -> Result<(), OrgError> {
    let org = home.org_key()?;
    let d = home.descriptor(&org)?;
    let rl = home.revocations(&org)?;
    let body = d.body();
    writeln!(out, "org key:            {org}")?;
    writeln!(out, "descriptor version: {}", body.version)?;
    if body.relays.as_slice().is_empty() {
        writeln!(out, "relays:             none (add with `org relay add`)")?;
    }
    for r in body.relays.as_slice() {
        writeln!(out, "relay:              {r}")?;
    }
    writeln!(
        out,
        "policy:             max TTL {} s, default TTL {} s, retention {} days",
        body.policy.max_ttl_secs, body.policy.default_ttl_secs, body.policy.retention_days
    )?;
    writeln!(
        out,
        "revocation list:    version {}, {} serial(s)",
        rl.version(),
        rl.body().revoked.as_slice().len()
    )?;
    Ok(())
}
