//! `postern delivery …`: the delivery commands of the CLI, over [`crate::delivery`].
//!
//! Every command first syncs (fetches and processes pending messages, sends queued
//! ones), so what it shows and checks is current. `list` and `show` still answer from
//! the device when the relay is unreachable, with a warning; changes need the relay.
//!
//! [`parse`] turns the command line into a [`parse::Parsed`] command before anything is
//! asked for; [`change`] holds the commands that change a delivery; [`view`] what is
//! printed.

use std::io::Write;

use clap::{Args, Subcommand};
use postern_deliveries::{
    Amount, Currency, DeliveryId, DeliveryState, EventText, FamilyRef, HandoffCode,
};
use serde::Serialize;

use crate::cli::Context;
use crate::cli::context::runtime;
use crate::cli::util::{rfc3339, safe_text, spinner};
use crate::delivery::{
    DEFAULT_DEADLINE, Delivered, Deliveries, DeliveryError, NewDeliveryRequest, SyncReport, Update,
};
use crate::member::{self, Member, MemberError, unix_now};

mod change;
mod parse;
mod view;

use change::{handoff, new, update};
use parse::Parsed;
use view::{list, show};

/// Delivery commands.
#[derive(Debug, Subcommand)]
pub(crate) enum DeliveryCommand {
    /// Create a delivery and assign a courier (coordinators and admins).
    ///
    /// Prints the delivery id and the hand-off code. Give the code to the family out of
    /// band; never to the courier.
    New(NewArgs),
    /// List the deliveries you can see (a courier: those assigned to them).
    List(DeliveryJsonArgs),
    /// Show one delivery: status, history, flag.
    Show(ShowArgs),
    /// Record a change: picked-up, in-transit, confirmed, failed, cancelled, note.
    Update(UpdateArgs),
    /// Courier: enter the hand-off code the family read out to you.
    ///
    /// The code is asked for at a prompt (not shown as you type), or read from the first
    /// line of standard input when that is not a terminal. It is never a command-line
    /// argument: those stay in shell history and other users can see them in `ps`.
    Handoff(HandoffArgs),
}

/// `postern delivery new`
#[derive(Debug, Args)]
pub(crate) struct NewArgs {
    /// The courier's handle (a member enrolled as courier).
    #[arg(long)]
    pub courier: String,
    /// The family's reference code (never a name): 3-24 of A-Z 0-9 -.
    #[arg(long)]
    pub family: String,
    /// The amount, as a decimal (1500.50).
    #[arg(long)]
    pub amount: String,
    /// ISO 4217 currency: CNY, EUR, GBP, JPY, KRW, RUB, USD.
    #[arg(long)]
    pub currency: String,
    /// Hand-off deadline: an RFC 3339 time or a duration from now (36h, 3d). Default 7d.
    #[arg(long)]
    pub deadline: Option<String>,
    /// Another coordinator to involve (repeatable): receives the events and the
    /// hand-off commitment.
    #[arg(long = "coordinator", value_name = "HANDLE")]
    pub coordinators: Vec<String>,
    /// Print JSON (includes the hand-off code).
    #[arg(long)]
    pub json: bool,
}

/// `--json` for `delivery list`.
#[derive(Debug, Args)]
pub(crate) struct DeliveryJsonArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `postern delivery show`
#[derive(Debug, Args)]
pub(crate) struct ShowArgs {
    /// The delivery id.
    pub id: String,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `postern delivery update`
#[derive(Debug, Args)]
pub(crate) struct UpdateArgs {
    /// The delivery id.
    pub id: String,
    /// picked-up, in-transit, confirmed, failed (needs --note), cancelled, note (needs
    /// --note). A coordinator's client confirms a verified hand-off by itself when it
    /// syncs; `confirmed` is for doing so explicitly.
    pub status: String,
    /// Text: the failure reason, the note, or a note recorded with the change.
    #[arg(long)]
    pub note: Option<String>,
}

/// `postern delivery handoff`
#[derive(Args)]
pub(crate) struct HandoffArgs {
    /// The delivery id.
    pub id: String,
    /// Refused: a code given here would stay in shell history and show in `ps`. Kept
    /// (hidden) only to say so clearly to someone used to it.
    #[arg(long, hide = true)]
    pub code: Option<String>,
}

impl std::fmt::Debug for HandoffArgs {
    // The code proves a hand-off: never let a debug print carry it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HandoffArgs")
            .field("id", &self.id)
            .field("code", &"<redacted>")
            .finish()
    }
}

/// Opens the member's vault; delivery commands need an enrolled member.
fn open(ctx: &Context) -> Result<Member, DeliveryError> {
    let member = ctx.open_member(&ctx.member_home()?)?;
    if !member.is_enrolled() {
        return Err(MemberError::NotEnrolled.into());
    }
    Ok(member)
}

fn report_sync(report: &SyncReport) {
    for r in &report.refused {
        eprintln!("postern: a delivery message was refused {r}");
    }
    if report.purged > 0 {
        eprintln!(
            "postern: {} closed delivery(ies) purged after the org's retention period",
            report.purged
        );
    }
    report_delivered(&report.delivered);
}

fn report_delivered(d: &Delivered) {
    for r in &d.dropped {
        eprintln!("postern: a delivery message could not be sent and was dropped: {r}");
    }
}

/// Fails (exit 5) if messages are still queued after a change.
fn require_sent(d: &Delivered) -> Result<(), DeliveryError> {
    report_delivered(d);
    if d.queued.is_empty() {
        return Ok(());
    }
    Err(DeliveryError::NotYetSent(d.queued.join(", ")))
}

/// Runs a delivery command, writing its report to `out`.
pub(crate) fn run(
    cmd: DeliveryCommand,
    ctx: &Context,
    out: &mut dyn Write,
) -> Result<(), DeliveryError> {
    let cmd = Parsed::parse(cmd, unix_now())?;
    let member = open(ctx)?;
    let rt = runtime()?;
    rt.block_on(async {
        let mut deliveries = Deliveries::open(&member)?;
        let pb = spinner("Syncing deliveries…");
        let conn = member.connect().await;
        let conn = match conn {
            Ok(c) => match deliveries.sync(&c).await {
                Ok(r) => {
                    pb.finish_and_clear();
                    report_sync(&r);
                    Some(c)
                }
                Err(e) => {
                    pb.finish_and_clear();
                    c.close().await;
                    return Err(e);
                }
            },
            Err(e) => {
                pb.finish_and_clear();
                if !cmd.reads_only() {
                    return Err(e.into());
                }
                eprintln!("postern: WARNING: not synced ({e}); showing what this device holds");
                None
            }
        };
        let result = command(cmd, &mut deliveries, conn.as_ref(), out).await;
        if let Some(c) = conn {
            c.close().await;
        }
        result
    })
}

async fn command(
    cmd: Parsed,
    deliveries: &mut Deliveries<'_>,
    conn: Option<&member::Connection>,
    out: &mut dyn Write,
) -> Result<(), DeliveryError> {
    let need = || {
        conn.ok_or(DeliveryError::Member(MemberError::Internal(
            "no relay connection".into(),
        )))
    };
    match cmd {
        Parsed::List { json } => list(deliveries, json, out),
        Parsed::Show { id, json } => show(deliveries, &id, json, out),
        Parsed::New { request, json } => new(deliveries, need()?, request, json, out).await,
        Parsed::Update { id, updates } => update(deliveries, need()?, &id, updates, out).await,
        Parsed::Handoff { id, code } => handoff(deliveries, need()?, &id, code, out).await,
    }
}
