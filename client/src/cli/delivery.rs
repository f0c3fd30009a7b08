//! `postern delivery …`: the delivery commands of the CLI, over [`crate::delivery`].
//!
//! Every command first syncs (fetches and processes pending messages, sends queued
//! ones), so what it shows and checks is current. `list` and `show` still answer from
//! the device when the relay is unreachable, with a warning; changes need the relay.

use std::io::Write;

use clap::{Args, Subcommand};
use postern_deliveries::{
    Amount, Currency, DeliveryId, DeliveryState, EventText, FamilyRef, HandoffCode,
};
use serde::Serialize;

use crate::cli::Context;
use crate::cli::context::runtime;
use crate::cli::util::{rfc3339, spinner};
use crate::delivery::{
    DEFAULT_DEADLINE, Delivered, Deliveries, DeliveryError, NewDeliveryRequest, SyncReport, Update,
};
use crate::member::{self, Member, MemberError, unix_now};

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

/// Longest line read as a hand-off code (16 digits with generous separators).
const MAX_CODE_LINE: u64 = 128;

/// Reads the hand-off code: at a prompt that does not echo, or from the first line of
/// standard input when it is not a terminal. A misread code is refused here, before
/// anything is sent, and does not count as an attempt.
fn enter_handoff_code(a: &HandoffArgs) -> Result<HandoffCode, MemberError> {
    use std::io::{BufRead, IsTerminal, Read};
    use zeroize::Zeroizing;
    if a.code.is_some() {
        return Err(MemberError::Usage(
            "--code is refused: a code on the command line stays in your shell history and other users can see it in `ps`. Run `postern delivery handoff ID` and type the code at the prompt (or pipe it on standard input)".into(),
        ));
    }
    let line = if std::io::stdin().is_terminal() {
        Zeroizing::new(
            rpassword::prompt_password(
                "Hand-off code the family reads out (16 digits, not shown): ",
            )
            .map_err(|e| MemberError::BadInput(format!("cannot read the code: {e}")))?,
        )
    } else {
        let mut line = Zeroizing::new(String::new());
        std::io::stdin()
            .lock()
            .take(MAX_CODE_LINE)
            .read_line(&mut line)
            .map_err(|e| MemberError::BadInput(format!("cannot read the code: {e}")))?;
        line
    };
    if line.trim().is_empty() {
        return Err(MemberError::Usage(
            "no hand-off code was entered; nothing was sent".into(),
        ));
    }
    HandoffCode::parse(line.trim()).map_err(|e| {
        MemberError::Usage(format!(
            "{e} (nothing was sent: a misread code does not count as an attempt)"
        ))
    })
}

/// Parses a deadline: RFC 3339, or a duration from `now`.
pub(crate) fn parse_deadline(text: &str, now: u64) -> Result<u64, DeliveryError> {
    let bad = || DeliveryError::BadDeadline(text.to_owned());
    let at = if let Ok(t) =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
    {
        u64::try_from(t.unix_timestamp()).map_err(|_| bad())?
    } else {
        let d = humantime::parse_duration(text).map_err(|_| bad())?;
        now.checked_add(d.as_secs()).ok_or_else(bad)?
    };
    if at <= now {
        return Err(bad());
    }
    Ok(at)
}

/// Names the option whose value was refused.
fn flag<T>(
    name: &str,
    value: &str,
    r: Result<T, postern_deliveries::ValueError>,
) -> Result<T, DeliveryError> {
    r.map_err(|e| MemberError::Usage(format!("{name} {value:?} refused: {e}")).into())
}

fn parse_id(text: &str) -> Result<DeliveryId, DeliveryError> {
    text.trim().parse().map_err(|_| {
        MemberError::Usage(format!(
            "{text:?} is not a delivery id: 26 letters and digits, as `postern delivery list` shows"
        ))
        .into()
    })
}

/// A delivery command with every value from the command line parsed: what `run` has
/// before it asks for the passphrase, so a typing mistake costs no unlock.
enum Parsed {
    List {
        json: bool,
    },
    Show {
        id: DeliveryId,
        json: bool,
    },
    New {
        request: NewDeliveryRequest,
        json: bool,
    },
    Update {
        id: DeliveryId,
        updates: Vec<Update>,
    },
    Handoff {
        id: DeliveryId,
        code: HandoffCode,
    },
}

impl Parsed {
    /// Parses `cmd` at `now` (deadlines may be relative). The hand-off code is read here,
    /// at its prompt: the family is waiting, and a misread is caught before the vault's
    /// slow unlock.
    fn parse(cmd: DeliveryCommand, now: u64) -> Result<Self, DeliveryError> {
        Ok(match cmd {
            DeliveryCommand::List(a) => Parsed::List { json: a.json },
            DeliveryCommand::Show(a) => Parsed::Show {
                id: parse_id(&a.id)?,
                json: a.json,
            },
            DeliveryCommand::New(a) => Parsed::New {
                request: new_request(&a, now)?,
                json: a.json,
            },
            DeliveryCommand::Update(a) => Parsed::Update {
                id: parse_id(&a.id)?,
                updates: parse_updates(&a)?,
            },
            DeliveryCommand::Handoff(a) => {
                let id = parse_id(&a.id)?;
                Parsed::Handoff {
                    id,
                    code: enter_handoff_code(&a)?,
                }
            }
        })
    }

    /// Whether the command can answer from the device when the relay is unreachable.
    fn reads_only(&self) -> bool {
        matches!(self, Parsed::List { .. } | Parsed::Show { .. })
    }
}

fn new_request(a: &NewArgs, now: u64) -> Result<NewDeliveryRequest, DeliveryError> {
    let currency = flag("--currency", &a.currency, Currency::new(&a.currency))?;
    Ok(NewDeliveryRequest {
        courier: a.courier.clone(),
        family: flag("--family", &a.family, FamilyRef::new(&a.family))?,
        amount: flag("--amount", &a.amount, Amount::parse(&a.amount, currency))?,
        deadline: match &a.deadline {
            Some(d) => parse_deadline(d, now)?,
            None => now + DEFAULT_DEADLINE.as_secs(),
        },
        coordinators: a.coordinators.clone(),
    })
}

fn parse_updates(a: &UpdateArgs) -> Result<Vec<Update>, DeliveryError> {
    let note = match &a.note {
        Some(n) => Some(flag("--note", n, EventText::new(n))?),
        None => None,
    };
    let need_note = |what: &str, text: &str| {
        MemberError::Usage(format!("`{what}` needs --note TEXT (the {text})"))
    };
    let mut updates = Vec::new();
    match a.status.as_str() {
        "failed" => updates.push(Update::Failed(
            note.ok_or_else(|| need_note("failed", "reason"))?,
        )),
        "note" => updates.push(Update::Note(note.ok_or_else(|| need_note("note", "note"))?)),
        other => {
            let u = match other {
                "picked-up" => Update::PickedUp,
                "in-transit" => Update::InTransit,
                "confirmed" => Update::Confirmed,
                "cancelled" => Update::Cancelled,
                _ => {
                    return Err(MemberError::Usage(format!(
                        "unknown status {other:?}: use picked-up, in-transit, confirmed, failed --note REASON, cancelled, or note --note TEXT"
                    ))
                    .into());
                }
            };
            // A note goes first: nothing can be added once the delivery is closed.
            if let Some(n) = note {
                updates.push(Update::Note(n));
            }
            updates.push(u);
        }
    }
    Ok(updates)
}

/// One history entry, as printed.
#[derive(Debug, Serialize)]
pub(crate) struct HistoryView {
    /// Event id.
    pub event: String,
    /// Event kind.
    pub event_kind: &'static str,
    /// Author's handle.
    pub author: String,
    /// Author's role.
    pub role: String,
    /// Author's time, RFC 3339.
    pub at: String,
    /// Note or failure reason.
    pub text: Option<String>,
    /// Status after it.
    pub status: &'static str,
}

/// A refused event, as printed.
#[derive(Debug, Serialize)]
pub(crate) struct RejectedView {
    /// Event id.
    pub event: String,
    /// Event kind.
    pub event_kind: &'static str,
    /// Author's handle.
    pub author: String,
    /// Why it did not apply.
    pub reason: String,
}

/// A delivery, as printed.
#[derive(Debug, Serialize)]
pub(crate) struct DeliveryView {
    /// Delivery id.
    pub id: String,
    /// Current status.
    pub status: &'static str,
    /// Flagged after too many wrong hand-off codes.
    pub flagged: bool,
    /// Wrong hand-off codes counted.
    pub failed_handoff_attempts: u32,
    /// Family reference code.
    pub family: Option<String>,
    /// Amount, decimal.
    pub amount: Option<String>,
    /// Amount in minor units.
    pub amount_minor: Option<u64>,
    /// Currency.
    pub currency: Option<String>,
    /// Deadline, RFC 3339.
    pub deadline: Option<String>,
    /// Creator.
    pub created_by: Option<String>,
    /// Assigned courier.
    pub courier: Option<String>,
    /// Coordinators known to be on the delivery.
    pub coordinators: Vec<String>,
    /// Whether this view checked codes against the commitment (coordinators).
    pub verified_view: bool,
    /// Failure reason.
    pub failure_reason: Option<String>,
    /// Applied events.
    pub history: Vec<HistoryView>,
    /// Refused events.
    pub rejected: Vec<RejectedView>,
    /// Last activity, RFC 3339.
    pub last_activity_at: String,
}

impl DeliveryView {
    /// The printable view of a derived state.
    pub(crate) fn of(s: &DeliveryState, coordinators: Vec<String>) -> Self {
        let d = s.details.as_ref();
        Self {
            id: s.id.to_string(),
            status: s.status.as_str(),
            flagged: s.flagged,
            failed_handoff_attempts: s.failed_handoff_attempts,
            family: d.map(|d| d.family.as_str().to_owned()),
            amount: d.map(|d| d.amount.to_decimal()),
            amount_minor: d.map(|d| d.amount.minor()),
            currency: d.map(|d| d.amount.currency().code().to_owned()),
            deadline: d.map(|d| rfc3339(d.deadline)),
            created_by: d.map(|d| d.created_by.as_str().to_owned()),
            courier: s.courier.as_ref().map(|c| c.as_str().to_owned()),
            coordinators,
            verified_view: s.verified_view,
            failure_reason: s.failure_reason.as_ref().map(|t| t.as_str().to_owned()),
            history: s
                .history
                .iter()
                .map(|h| HistoryView {
                    event: h.event.to_string(),
                    event_kind: h.name.as_str(),
                    author: h.author.as_str().to_owned(),
                    role: h.role.to_string(),
                    at: rfc3339(h.at),
                    text: h.text.as_ref().map(|t| t.as_str().to_owned()),
                    status: h.status.as_str(),
                })
                .collect(),
            rejected: s
                .rejected
                .iter()
                .map(|r| RejectedView {
                    event: r.event.to_string(),
                    event_kind: r.name.as_str(),
                    author: r.author.as_str().to_owned(),
                    reason: r.reason.to_string(),
                })
                .collect(),
            last_activity_at: rfc3339(s.last_activity_at),
        }
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

fn list(deliveries: &Deliveries<'_>, json: bool, out: &mut dyn Write) -> Result<(), DeliveryError> {
    let views: Vec<DeliveryView> = deliveries
        .list()
        .iter()
        .map(|s| DeliveryView::of(s, deliveries.coordinators(&s.id)))
        .collect();
    if json {
        serde_json::to_writer_pretty(&mut *out, &views)
            .map_err(|e| MemberError::Internal(e.to_string()))?;
        writeln!(out).map_err(MemberError::from)?;
        return Ok(());
    }
    if views.is_empty() {
        writeln!(out, "No deliveries.").map_err(MemberError::from)?;
        return Ok(());
    }
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::NOTHING);
    table.set_header(vec![
        "ID", "STATUS", "FAMILY", "AMOUNT", "COURIER", "DEADLINE",
    ]);
    for v in &views {
        let status = if v.flagged {
            format!("{} FLAGGED", v.status)
        } else {
            v.status.to_owned()
        };
        table.add_row(vec![
            v.id.clone(),
            status,
            v.family.clone().unwrap_or_default(),
            match (&v.amount, &v.currency) {
                (Some(a), Some(c)) => format!("{a} {c}"),
                _ => String::new(),
            },
            v.courier.clone().unwrap_or_default(),
            v.deadline.clone().unwrap_or_default(),
        ]);
    }
    writeln!(out, "{table}").map_err(MemberError::from)?;
    Ok(())
}

fn show(
    deliveries: &Deliveries<'_>,
    id: &DeliveryId,
    json: bool,
    out: &mut dyn Write,
) -> Result<(), DeliveryError> {
    let state = deliveries.show(id)?;
    let v = DeliveryView::of(&state, deliveries.coordinators(id));
    if json {
        serde_json::to_writer_pretty(&mut *out, &v)
            .map_err(|e| MemberError::Internal(e.to_string()))?;
        writeln!(out).map_err(MemberError::from)?;
        return Ok(());
    }
    print_view(&v, out).map_err(MemberError::from)?;
    Ok(())
}

fn print_view(v: &DeliveryView, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out, "Delivery {}", v.id)?;
    writeln!(out, "  status:       {}", v.status)?;
    if v.flagged {
        writeln!(
            out,
            "  FLAGGED:      {} wrong hand-off codes; hand-offs are refused. A coordinator must investigate and close it (failed or cancelled).",
            v.failed_handoff_attempts
        )?;
    } else if v.failed_handoff_attempts > 0 {
        writeln!(out, "  wrong codes:  {}", v.failed_handoff_attempts)?;
    }
    if let (Some(f), Some(a), Some(c)) = (&v.family, &v.amount, &v.currency) {
        writeln!(out, "  family:       {f}")?;
        writeln!(out, "  amount:       {a} {c}")?;
    }
    if let Some(d) = &v.deadline {
        writeln!(out, "  deadline:     {d}")?;
    }
    if let Some(c) = &v.courier {
        writeln!(out, "  courier:      {c}")?;
    }
    if !v.coordinators.is_empty() {
        writeln!(out, "  coordinators: {}", v.coordinators.join(", "))?;
    }
    if let Some(r) = &v.failure_reason {
        writeln!(out, "  failed:       {r}")?;
    }
    writeln!(out, "  history:")?;
    for h in &v.history {
        write!(
            out,
            "    {}  {:<16} by {} ({}) -> {}",
            h.at, h.event_kind, h.author, h.role, h.status
        )?;
        match &h.text {
            Some(t) => writeln!(out, ": {t}")?,
            None => writeln!(out)?,
        }
    }
    for r in &v.rejected {
        writeln!(
            out,
            "    refused {} by {}: {}",
            r.event_kind, r.author, r.reason
        )?;
    }
    Ok(())
}

async fn new(
    deliveries: &mut Deliveries<'_>,
    conn: &member::Connection,
    request: NewDeliveryRequest,
    json: bool,
    out: &mut dyn Write,
) -> Result<(), DeliveryError> {
    let courier = request.courier.clone();
    let created = deliveries.create(conn, request).await?;
    let state = deliveries.show(&created.id)?;
    let code = created.code.display_grouped();
    if json {
        #[derive(Serialize)]
        struct NewView {
            #[serde(flatten)]
            delivery: DeliveryView,
            handoff_code: String,
            sent_to: Vec<String>,
            queued_for: Vec<String>,
        }
        let v = NewView {
            delivery: DeliveryView::of(&state, deliveries.coordinators(&created.id)),
            handoff_code: code,
            sent_to: created.delivered.sent_to.clone(),
            queued_for: created.delivered.queued.clone(),
        };
        serde_json::to_writer_pretty(&mut *out, &v)
            .map_err(|e| MemberError::Internal(e.to_string()))?;
        writeln!(out).map_err(MemberError::from)?;
    } else {
        let w = |out: &mut dyn Write| -> std::io::Result<()> {
            writeln!(out, "Created delivery {}", created.id)?;
            writeln!(
                out,
                "  {} for family {}, courier {}, deadline {}",
                request_amount(&state),
                state
                    .details
                    .as_ref()
                    .map(|d| d.family.as_str().to_owned())
                    .unwrap_or_default(),
                courier,
                state
                    .details
                    .as_ref()
                    .map(|d| rfc3339(d.deadline))
                    .unwrap_or_default()
            )?;
            writeln!(out)?;
            writeln!(out, "HAND-OFF CODE (for the family only):  {code}")?;
            writeln!(
                out,
                "  Give it to the family out of band (in person or by phone), never to the courier, and never in any message. It is shown only this once: it is not stored."
            )?;
            writeln!(
                out,
                "  The courier enters the code the family reads out at the hand-off; your client checks it."
            )?;
            if !created.delivered.sent_to.is_empty() {
                writeln!(out)?;
                writeln!(out, "Sent to: {}", created.delivered.sent_to.join(", "))?;
            }
            Ok(())
        };
        w(out).map_err(MemberError::from)?;
    }
    require_sent(&created.delivered)
}

fn request_amount(state: &DeliveryState) -> String {
    state
        .details
        .as_ref()
        .map(|d| format!("{} {}", d.amount.to_decimal(), d.amount.currency().code()))
        .unwrap_or_default()
}

async fn update(
    deliveries: &mut Deliveries<'_>,
    conn: &member::Connection,
    id: &DeliveryId,
    updates: Vec<Update>,
    out: &mut dyn Write,
) -> Result<(), DeliveryError> {
    let mut delivered = Delivered::default();
    for u in updates {
        let d = deliveries.update(conn, id, u).await?;
        delivered.sent_to.extend(d.sent_to);
        delivered.queued.extend(d.queued);
        delivered.dropped.extend(d.dropped);
    }
    delivered.sent_to.sort();
    delivered.sent_to.dedup();
    let state = deliveries.show(id)?;
    writeln!(out, "Delivery {id} is now {}.", state.status).map_err(MemberError::from)?;
    if !delivered.sent_to.is_empty() {
        writeln!(out, "Sent to: {}", delivered.sent_to.join(", ")).map_err(MemberError::from)?;
    }
    require_sent(&delivered)
}

async fn handoff(
    deliveries: &mut Deliveries<'_>,
    conn: &member::Connection,
    id: &DeliveryId,
    code: HandoffCode,
    out: &mut dyn Write,
) -> Result<(), DeliveryError> {
    let delivered = deliveries.handoff(conn, id, code).await?;
    writeln!(
        out,
        "Hand-off claimed for delivery {id}: sent to {} for verification. Run `postern delivery show {id}` for the answer.",
        if delivered.sent_to.is_empty() {
            "the coordinators".to_owned()
        } else {
            delivered.sent_to.join(", ")
        }
    )
    .map_err(MemberError::from)?;
    require_sent(&delivered)
}
