//! The `postern` command line: its clap types and `main`, so that any binary that needs
//! the CLI (the shipped one, the end-to-end tests' copy) is a one-line `main`.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::delivery_cli::DeliveryCommand;
use crate::member_cli::{MemberCommand, MemberContext};
use crate::org::{OrgCommand, OrgContext};
use crate::passphrase::PassphraseSource;
use clap::{Parser, Subcommand};

/// Postern: end-to-end-encrypted, expiring messages about courier deliveries.
#[derive(Debug, Parser)]
#[command(name = "postern", version, about, long_about = None, after_help = crate::member_cli::EXIT_CODES)]
struct Cli {
    /// Directory holding Postern's state; for `org` commands, the org home with the
    /// encrypted org root.
    #[arg(long, global = true, env = "POSTERN_HOME", value_name = "DIR")]
    home: Option<PathBuf>,
    /// Read the passphrase from the first line of FILE (keep it 0600). Otherwise the
    /// POSTERN_PASSPHRASE environment variable is used (for scripts: other processes of
    /// the same user can read it), otherwise you are prompted.
    #[arg(long, global = true, value_name = "FILE")]
    passphrase_file: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Administer an org: create it, add relays, enroll and revoke members.
    ///
    /// Run these on the offline machine that holds the org home (--home). Start with
    /// `postern --home ORG org init`, add a relay with `org relay add`, then answer each
    /// member's enrollment request with `org enroll`.
    #[command(subcommand)]
    Org(OrgCommand),
    /// Deliveries: create, list, show, update, and the courier's hand-off.
    ///
    /// Every delivery command first fetches and processes pending messages, so what it
    /// shows is current.
    #[command(subcommand)]
    Delivery(DeliveryCommand),
    /// Member commands: init, enroll, send, inbox, watch, contacts, verify, status, wipe.
    #[command(flatten)]
    Member(MemberCommand),
}

/// Parses the command line and runs the command; the process exit code is its result.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let passphrase = PassphraseSource {
        file: cli.passphrase_file,
    };
    let out = &mut std::io::stdout().lock();
    match cli.command {
        Command::Org(cmd) => {
            let ctx = OrgContext {
                home: cli.home,
                passphrase,
            };
            finish(crate::org::run(cmd, &ctx, out), |e| e.exit_code())
        }
        Command::Delivery(cmd) => {
            let ctx = MemberContext {
                home: cli.home,
                passphrase,
            };
            finish(crate::delivery_cli::run(cmd, &ctx, out), |e| e.exit_code())
        }
        Command::Member(cmd) => {
            let ctx = MemberContext {
                home: cli.home,
                passphrase,
            };
            finish(crate::member_cli::run(cmd, &ctx, out), |e| e.exit_code())
        }
    }
}

/// Prints a command's error and turns its outcome into the process exit code.
fn finish<E: std::fmt::Display>(result: Result<(), E>, code: impl Fn(&E) -> u8) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("postern: {err}");
            ExitCode::from(code(&err))
        }
    }
}
