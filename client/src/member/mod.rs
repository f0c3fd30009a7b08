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
    PutRevocationList, Request, Response, SetSenderKey,
};
use postern_protocol::padding::{pad, unpad};
use postern_transport::{DeviceSigner, PushStream, RelayConnection, TransportError};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use crate::directory::{
    self, BlobKind, DirectoryError, EntryContent, SenderKeySeed, VerifiedEntry,
};
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
const CONTACTS_RECORD: &[u8] = b"postern/contacts/2";
/// Contacts as format 1 stored them (no sender keys); read once, replaced on next save.
const CONTACTS_RECORD_V1: &[u8] = b"postern/contacts";
const REVOCATIONS_RECORD: &[u8] = b"postern/revocations";

mod admission;
mod connection;
mod contacts;
mod enroll;
mod error;
mod prekeys;
mod receive;
mod records;
mod reports;
mod send;
mod wipe;

pub use connection::{Connection, SendConnection, SendPath};
use connection::{relay_err, unexpected};
pub use error::MemberError;
#[cfg(test)]
pub(crate) use error::MemberErrorDiscriminants;
use error::vault_err;
use records::*;
pub use reports::{
    Contact, Dropped, EnrollReport, EnvelopeOutcome, FetchReport, PrekeyStatus, SendReceipt,
};
pub use wipe::{WipeReport, wipe};

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
    if KdfParams::insecure_fast_requested() {
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

fn handle_of(s: &str) -> Result<Handle, MemberError> {
    Handle::new(s).map_err(|_| MemberError::BadHandle(s.to_owned()))
}

/// Runs vault or libsignal work on the blocking pool.
impl Member {
    /// Runs `f` on the blocking pool with this account's messenger: the roster of held
    /// contacts under the held revocation list, and the org descriptor's trust root. `f`
    /// also gets the vault.
    pub(super) async fn with_messenger<T, F>(&self, f: F) -> Result<T, MemberError>
    where
        T: Send + 'static,
        F: FnOnce(&Messenger<'_>, &Vault) -> Result<T, MemberError> + Send + 'static,
    {
        let org = self.enrolled()?.clone();
        let vault = self.vault.clone();
        blocking(move || {
            let roster = load_roster(&vault, &org)?;
            let m = Messenger::for_org(&vault, &roster, &org.descriptor)?;
            f(&m, &vault)
        })
        .await
    }
}

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
            format: ACCOUNT_FORMAT,
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
        let stored_format = vault
            .get_record(ACCOUNT_RECORD)?
            .and_then(|b| b.first().copied());
        if stored_format != Some(ACCOUNT_FORMAT) {
            // Migrated from an older format: keep the result (its new keys) before use.
            save_account(&vault, &account)?;
        }
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

    /// Closes the vault (drops this handle).
    pub fn close(self) {}
}
