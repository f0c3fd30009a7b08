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

use crate::cli::Context;
use crate::cli::util::rfc3339;
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

mod args;
mod commands;
mod error;
mod home;
mod issue;
mod publish;
mod render;

pub use args::{EnrollArgs, MembersArgs, OrgCommand, RelayCommand, RevokeArgs};
use commands::*;
pub use error::OrgError;
#[cfg(test)]
pub(crate) use error::OrgErrorDiscriminants;
use home::*;
pub use issue::{Issued, Issuer};
use publish::publish;
use render::{members, show};

/// Runs an org command, writing its report to `out`.
pub fn run(cmd: OrgCommand, ctx: &Context, out: &mut dyn Write) -> Result<(), OrgError> {
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
