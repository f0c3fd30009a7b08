//! The `postern` command line: its clap types and `main`, so that any binary that needs
//! the CLI (the shipped one, the end-to-end tests' copy) is a one-line `main`.

use std::path::PathBuf;
use std::process::ExitCode;

pub(crate) mod context;
pub(crate) mod delivery;
pub mod exit;
pub(crate) mod member;
pub(crate) mod util;

pub use context::Context;

use crate::cli::delivery::DeliveryCommand;
use crate::cli::exit::Classify;
use crate::cli::member::MemberCommand;
use crate::org::OrgCommand;
use crate::passphrase::PassphraseSource;
use clap::{Parser, Subcommand};

/// Postern: end-to-end-encrypted, expiring messages about courier deliveries.
#[derive(Debug, Parser)]
#[command(name = "postern", version, about, long_about = None, after_help = exit::help_text())]
struct Cli {
    /// Directory holding Postern's state; for `org` commands, the org home with the
    /// encrypted org root.
    #[arg(long, global = true, env = "POSTERN_HOME", value_name = "DIR")]
    home: Option<PathBuf>,
    /// Read the passphrase from the first line of FILE (mode 0600: a file other users
    /// may read or write is refused). Otherwise the
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
            let ctx = Context {
                home: cli.home,
                passphrase,
            };
            finish(crate::org::run(cmd, &ctx, out), Classify::exit_class)
        }
        Command::Delivery(cmd) => {
            let ctx = Context {
                home: cli.home,
                passphrase,
            };
            finish(
                crate::cli::delivery::run(cmd, &ctx, out),
                Classify::exit_class,
            )
        }
        Command::Member(cmd) => {
            let ctx = Context {
                home: cli.home,
                passphrase,
            };
            finish(
                crate::cli::member::run(cmd, &ctx, out),
                Classify::exit_class,
            )
        }
    }
}

/// Prints a command's error and turns its outcome into the process exit code.
fn finish<E: std::fmt::Display>(
    result: Result<(), E>,
    class: impl Fn(&E) -> exit::ExitClass,
) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("postern: {err}");
            ExitCode::from(class(&err).code())
        }
    }
}
