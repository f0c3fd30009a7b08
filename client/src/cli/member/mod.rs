//! The member commands of the `postern` CLI, over [`crate::member`].
//!
//! One file per group of commands: [`account`] (init, enroll, wipe), [`messages`]
//! (send, inbox, watch), [`people`] (contacts, verify, status).

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Args, Subcommand};
use postern_e2e::{ContentType, StoredMessage};
use postern_identity::OrgKey;
use postern_protocol::message::Push;
use serde::Serialize;
use zeroize::Zeroizing;

use crate::cli::Context;
use crate::cli::util::{rfc3339, rfc3339_ms, safe_text, spinner};
use crate::member::{
    self, Dropped, EnvelopeOutcome, FetchReport, Member, MemberError, vault_kdf_from_env,
};
use crate::passphrase::PassphraseSource;
use crate::secure_file::{create_atomic, read_bounded};

mod account;
mod messages;
mod people;

use account::{enroll, init, wipe};
use messages::{inbox, send, watch};
use people::{contacts, status, verify};

/// Member commands.
#[derive(Debug, Subcommand)]
pub(crate) enum MemberCommand {
    /// Create your account: an encrypted vault with your keys, and an enrollment request
    /// for your org admin.
    ///
    /// Prints the request fingerprint: read it to your admin (in person or by voice)
    /// when they enroll you. Then run `postern enroll` with the bundle they return.
    Init(InitArgs),
    /// Import the enrollment bundle from your admin, create your mailbox on the org's
    /// relay and publish your prekeys.
    Enroll(EnrollArgs),
    /// Send an end-to-end-encrypted, expiring message to a member.
    ///
    /// Exits 0 only once the relay has durably stored the message.
    Send(SendArgs),
    /// Fetch, decrypt and store new messages, then list the unexpired ones.
    Inbox(JsonArgs),
    /// Print new messages as they arrive, until interrupted (Ctrl-C).
    Watch(JsonArgs),
    /// List the members you have exchanged messages with.
    Contacts(JsonArgs),
    /// Show the safety number with a member, to compare in person or by voice.
    Verify(VerifyArgs),
    /// Check the relay, your prekeys and pending messages.
    Status(JsonArgs),
    /// Destroy your account and all its messages on this device.
    Wipe(WipeArgs),
}

/// `postern init`
#[derive(Debug, Args)]
pub(crate) struct InitArgs {
    /// Your pseudonymous handle (never your real name).
    #[arg(long)]
    pub handle: String,
    /// Where to write the enrollment request (must not exist). Give it to your admin.
    #[arg(long, value_name = "REQUEST_FILE")]
    pub out: PathBuf,
}

/// `postern enroll`
#[derive(Debug, Args)]
pub(crate) struct EnrollArgs {
    /// The sealed bundle file your admin made with `postern org enroll`.
    pub bundle: PathBuf,
    /// The org key your admin told you (postern-org:...): enrollment stops if the bundle
    /// is from another org.
    #[arg(long, value_name = "ORG_KEY")]
    pub org: Option<OrgKey>,
}

/// `postern send`
#[derive(Debug, Args)]
pub(crate) struct SendArgs {
    /// The recipient's handle.
    pub handle: String,
    /// The message text, or `-` to read it from standard input.
    pub text: String,
    /// How long the message lives, e.g. `90m`, `2d` (default: the org's default; at
    /// most the org's maximum).
    #[arg(long, value_parser = parse_ttl)]
    pub ttl: Option<Duration>,
}

/// `--json` for read commands.
#[derive(Debug, Args)]
pub(crate) struct JsonArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `postern verify`
#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// The member's handle.
    pub handle: String,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `postern wipe`
#[derive(Debug, Args)]
pub(crate) struct WipeArgs {
    /// Do not ask for confirmation (and do not ask for the passphrase).
    #[arg(long)]
    pub yes: bool,
}

/// `--ttl`: a duration (30m, 12h, 2d), refused here (exit 2, before the passphrase) if
/// it does not parse or is zero.
fn parse_ttl(s: &str) -> Result<Duration, String> {
    match humantime::parse_duration(s) {
        Ok(d) if d.is_zero() => {
            Err("a TTL of zero would expire at once; give one such as 30m, 12h or 2d".into())
        }
        Ok(d) => Ok(d),
        Err(e) => Err(format!("{e} (examples: 30m, 12h, 2d)")),
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Runs a member command, writing its report to `out`.
pub(crate) fn run(
    cmd: MemberCommand,
    ctx: &Context,
    out: &mut dyn Write,
) -> Result<(), MemberError> {
    let home = ctx.member_home()?;
    match cmd {
        MemberCommand::Init(args) => init(&home, &ctx.passphrase, &args, out),
        MemberCommand::Wipe(args) => wipe(&home, ctx, &args, out),
        cmd => {
            let mut member = ctx.open_member(&home)?;
            let rt = crate::cli::context::runtime()?;
            rt.block_on(async {
                match cmd {
                    MemberCommand::Enroll(a) => enroll(&mut member, &a, out).await,
                    MemberCommand::Send(a) => send(&member, &a, out).await,
                    MemberCommand::Inbox(a) => inbox(&member, a.json, out).await,
                    MemberCommand::Watch(a) => watch(&member, a.json, out).await,
                    MemberCommand::Contacts(a) => contacts(&member, a.json, out).await,
                    MemberCommand::Verify(a) => verify(&member, &a, out).await,
                    MemberCommand::Status(a) => status(&member, a.json, out).await,
                    MemberCommand::Init(_) | MemberCommand::Wipe(_) => Ok(()),
                }
            })
        }
    }
}
