//! The `postern org` command line (clap types).

use super::*;

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
    /// no member account is needed). The list is written to `<home>/revocations.bin`
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

pub(super) fn parse_role(s: &str) -> Result<Role, String> {
    s.parse::<Role>().map_err(|e| e.to_string())
}
