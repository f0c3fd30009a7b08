//! The member commands of the `postern` CLI, over [`crate::member`].

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
use crate::cli::util::spinner;
use crate::member::{
    self, Dropped, EnvelopeOutcome, FetchReport, Member, MemberError, vault_kdf_from_env,
};
use crate::passphrase::PassphraseSource;
use crate::secure_file::{create_atomic, read_bounded};

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

fn rfc3339_ms(ms: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("@{ms}ms"))
}

fn rfc3339(secs: u64) -> String {
    rfc3339_ms(secs.saturating_mul(1000))
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

fn init(
    home: &Path,
    passphrase: &PassphraseSource,
    args: &InitArgs,
    out: &mut dyn Write,
) -> Result<(), MemberError> {
    if Member::exists(home) {
        return Err(MemberError::AlreadyInitialised(home.to_owned()));
    }
    if args.out.exists() {
        return Err(MemberError::BadInput(format!(
            "{} already exists: choose another --out (refusing to overwrite)",
            args.out.display()
        )));
    }
    let kdf = vault_kdf_from_env();
    if kdf != postern_e2e::KdfParams::default() {
        eprintln!(
            "postern: WARNING: POSTERN_INSECURE_FAST_KDF=1: the vault is protected by a weak key derivation; for tests only"
        );
    }
    let pass = passphrase.new_secret("your new Postern vault")?;
    let pb = spinner("Creating the vault and your keys…");
    let result = Member::init(home, &args.handle, pass.as_bytes(), kdf);
    pb.finish_and_clear();
    let (member, request) = result?;
    create_atomic(&args.out, &request.encode()).map_err(|source| MemberError::Io {
        action: "write the request to",
        path: args.out.clone(),
        source,
    })?;
    writeln!(
        out,
        "Created the account {} in {}.",
        member.handle(),
        home.display()
    )?;
    writeln!(
        out,
        "Wrote the enrollment request to {}. Give it to your org admin.",
        args.out.display()
    )?;
    writeln!(
        out,
        "When they enroll you, read them this fingerprint (in person or by voice); they must see the same:"
    )?;
    writeln!(out, "{}", request.fingerprint())?;
    Ok(())
}

async fn enroll(
    member: &mut Member,
    args: &EnrollArgs,
    out: &mut dyn Write,
) -> Result<(), MemberError> {
    let sealed = read_bounded(&args.bundle, 256 * 1024).map_err(|source| MemberError::Io {
        action: "read the bundle",
        path: args.bundle.clone(),
        source,
    })?;
    let pb = spinner("Opening the bundle…");
    let progress = |m: &str| pb.set_message(m.to_owned());
    let result = member.enroll(&sealed, args.org, &progress).await;
    pb.finish_and_clear();
    let report = result?;
    writeln!(
        out,
        "Enrolled as {} ({}) in org {}.",
        report.handle, report.role, report.org
    )?;
    if args.org.is_none() {
        writeln!(
            out,
            "  Check that this org key is the one your admin gave you (or pass --org next time)."
        )?;
    }
    writeln!(
        out,
        "Your certificate is valid until {}.",
        rfc3339(report.not_after)
    )?;
    writeln!(
        out,
        "Mailbox created on {}; {} one-time prekeys published.",
        report.relay, report.one_time_prekeys
    )?;
    writeln!(
        out,
        "You can now send (`postern send <handle> <text>`) and receive (`postern inbox`). Delete the bundle file."
    )?;
    Ok(())
}

fn read_text(arg: &str) -> Result<Zeroizing<String>, MemberError> {
    if arg != "-" {
        return Ok(Zeroizing::new(arg.to_owned()));
    }
    let max = postern_e2e::plaintext::MAX_BODY_LEN;
    let mut buf = Zeroizing::new(Vec::new());
    std::io::stdin()
        .take(max as u64 + 2)
        .read_to_end(&mut buf)?;
    if buf.ends_with(b"\n") {
        buf.pop();
    }
    if buf.len() > max {
        return Err(MemberError::TooLong(buf.len()));
    }
    let text = String::from_utf8(buf.to_vec())
        .map_err(|_| MemberError::BadInput("the message is not UTF-8 text".into()))?;
    Ok(Zeroizing::new(text))
}

async fn send(member: &Member, args: &SendArgs, out: &mut dyn Write) -> Result<(), MemberError> {
    let text = read_text(&args.text)?;
    if text.is_empty() {
        return Err(MemberError::BadInput("the message is empty".into()));
    }
    // Check the TTL against the org policy before touching the network.
    member.resolve_ttl(args.ttl, 0)?;
    let pb = spinner("Connecting to the relay…");
    let result = async {
        let conn = member.connect().await?;
        pb.set_message(format!("Sending to {}…", args.handle));
        let receipt = member.send_text(&conn, &args.handle, &text, args.ttl).await;
        conn.close().await;
        receipt
    }
    .await;
    pb.finish_and_clear();
    let receipt = result?;
    writeln!(
        out,
        "Sent to {}: stored on the relay. It expires {}.",
        receipt.to,
        rfc3339_ms(receipt.expires_at_ms)
    )?;
    Ok(())
}

/// A message as printed.
#[derive(Debug, Serialize)]
pub(crate) struct MessageView {
    /// Message id (hex).
    pub id: String,
    /// Sender's handle.
    pub from: String,
    /// text, delivery-event or receipt.
    pub content_type: &'static str,
    /// Text (for text messages; other kinds as lowercase hex).
    pub body: String,
    /// When sent (sender's clock), RFC 3339.
    pub sent_at: String,
    /// When received, RFC 3339.
    pub received_at: String,
    /// When it disappears, RFC 3339.
    pub expires_at: String,
}

impl MessageView {
    /// The printable view of a stored message.
    pub(crate) fn of(m: &StoredMessage) -> Self {
        let (content_type, body) = match m.content_type {
            ContentType::Text => ("text", String::from_utf8_lossy(&m.body).into_owned()),
            // Delivery messages may carry a coordinator secret: never print their bytes.
            ContentType::DeliveryEvent => (
                "delivery-event",
                "(delivery update: see `postern delivery list`)".to_owned(),
            ),
            ContentType::Receipt => ("receipt", hex::encode(&m.body)),
        };
        Self {
            id: hex::encode(m.id.0),
            from: m.sender.clone(),
            content_type,
            body,
            sent_at: rfc3339_ms(m.sent_at_ms),
            received_at: rfc3339_ms(m.received_at_ms),
            expires_at: rfc3339_ms(m.expires_at_ms),
        }
    }
}

fn remaining(expires_ms: u64) -> String {
    let left = Duration::from_secs(expires_ms.saturating_sub(now_ms()) / 1000);
    humantime::format_duration(left).to_string()
}

fn print_message(out: &mut dyn Write, m: &StoredMessage) -> std::io::Result<()> {
    let v = MessageView::of(m);
    writeln!(
        out,
        "{}  from {}  (disappears in {})",
        v.sent_at,
        v.from,
        remaining(m.expires_at_ms)
    )?;
    if m.content_type == ContentType::Text {
        for line in v.body.lines() {
            writeln!(out, "    {line}")?;
        }
    } else {
        writeln!(out, "    [{}, {} bytes]", v.content_type, m.body.len())?;
    }
    Ok(())
}

fn report_fetch(report: &FetchReport) {
    let mut notes = Vec::new();
    if report.undecryptable > 0 {
        notes.push(format!(
            "{} undecryptable envelope(s) dropped (altered, garbage, or for another member)",
            report.undecryptable
        ));
    }
    if !report.refused.is_empty() {
        let mut who = report.refused.clone();
        who.sort();
        who.dedup();
        notes.push(format!(
            "{} message(s) refused from revoked or untrusted member(s): {}",
            report.refused.len(),
            who.join(", ")
        ));
    }
    if report.deferred > 0 {
        notes.push(format!(
            "{} message(s) left on the relay: their sender could not be looked up now; run inbox again",
            report.deferred
        ));
    }
    for n in notes {
        eprintln!("postern: {n}");
    }
}

async fn inbox(member: &Member, json: bool, out: &mut dyn Write) -> Result<(), MemberError> {
    let pb = spinner("Fetching messages…");
    let result = async {
        let conn = member.connect().await?;
        let report = member.fetch(&conn).await?;
        // Keep prekeys topped up for people who want to reach us.
        let _ = member.maintain_prekeys(&conn).await;
        conn.close().await;
        Ok::<_, MemberError>(report)
    }
    .await;
    pb.finish_and_clear();
    let report = result?;
    report_fetch(&report);
    // Delivery updates belong to `postern delivery`, which processes and removes them.
    let (deliveries, messages): (Vec<_>, Vec<_>) = member
        .messages()?
        .into_iter()
        .partition(|m| m.content_type == ContentType::DeliveryEvent);
    if !deliveries.is_empty() {
        eprintln!(
            "postern: {} delivery update(s) waiting: run `postern delivery list`",
            deliveries.len()
        );
    }
    if json {
        let views: Vec<MessageView> = messages.iter().map(MessageView::of).collect();
        let text = serde_json::to_string_pretty(&views).map_err(std::io::Error::other)?;
        writeln!(out, "{text}")?;
        return Ok(());
    }
    if messages.is_empty() {
        writeln!(out, "No messages.")?;
        return Ok(());
    }
    for m in &messages {
        print_message(out, m)?;
    }
    writeln!(
        out,
        "{} message(s), {} new.",
        messages.len(),
        report
            .new
            .iter()
            .filter(|m| m.content_type != ContentType::DeliveryEvent)
            .count()
    )?;
    Ok(())
}

fn emit(out: &mut dyn Write, json: bool, m: &StoredMessage) -> Result<(), MemberError> {
    if m.content_type == ContentType::DeliveryEvent {
        eprintln!("postern: a delivery update arrived: run `postern delivery list`");
        return Ok(());
    }
    if json {
        let line = serde_json::to_string(&MessageView::of(m)).map_err(std::io::Error::other)?;
        writeln!(out, "{line}")?;
    } else {
        print_message(out, m)?;
    }
    out.flush()?;
    Ok(())
}

async fn watch(member: &Member, json: bool, out: &mut dyn Write) -> Result<(), MemberError> {
    let mut backoff = Duration::from_secs(1);
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        let session = async {
            let conn = member.connect().await?;
            let mut pushes = conn.subscribe().await?;
            let report = member.fetch(&conn).await?;
            report_fetch(&report);
            for m in &report.new {
                emit(out, json, m)?;
            }
            if !json {
                eprintln!(
                    "postern: watching {} for messages; Ctrl-C to stop",
                    conn.address()
                );
            }
            let _ = member.maintain_prekeys(&conn).await;
            let mut purge = tokio::time::interval(Duration::from_secs(30));
            loop {
                tokio::select! {
                    push = pushes.next() => match push {
                        Ok(Some(Push::Envelope(env))) => {
                            match member.receive_envelope(&conn, &env).await? {
                                EnvelopeOutcome::New(m) => emit(out, json, &m)?,
                                EnvelopeOutcome::Dropped(Dropped::Revoked(h)) => {
                                    eprintln!("postern: refused a message from revoked member {h}");
                                }
                                EnvelopeOutcome::Dropped(Dropped::Undecryptable) => {
                                    eprintln!("postern: dropped an undecryptable envelope");
                                }
                                _ => {}
                            }
                        }
                        Ok(Some(Push::RevocationListUpdated { .. })) => {
                            member.refresh_revocations(&conn).await?;
                        }
                        Ok(Some(_)) => {}
                        Ok(None) => return Err(MemberError::Relay {
                            what: "watching",
                            source: postern_transport::TransportError::Connection("the relay ended the stream".into()),
                        }),
                        Err(source) => return Err(MemberError::Relay { what: "watching", source }),
                    },
                    _ = purge.tick() => {
                        member.purge_expired()?;
                    }
                }
            }
            #[allow(unreachable_code)]
            Ok::<(), MemberError>(())
        };
        let result = tokio::select! {
            r = session => r,
            _ = &mut ctrl_c => return Ok(()),
        };
        match result {
            Err(e @ (MemberError::Relay { .. } | MemberError::Unreachable { .. })) => {
                eprintln!(
                    "postern: {e}; reconnecting in {}",
                    humantime::format_duration(backoff)
                );
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = &mut ctrl_c => return Ok(()),
                }
                backoff = (backoff * 2).min(Duration::from_secs(60));
            }
            Err(e) => return Err(e),
            Ok(()) => return Ok(()),
        }
    }
}

async fn contacts(member: &Member, json: bool, out: &mut dyn Write) -> Result<(), MemberError> {
    let list = member.contacts().await?;
    if json {
        let text = serde_json::to_string_pretty(&list).map_err(std::io::Error::other)?;
        writeln!(out, "{text}")?;
        return Ok(());
    }
    if list.is_empty() {
        writeln!(
            out,
            "No contacts yet: they appear when you send to or hear from a member."
        )?;
        return Ok(());
    }
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
    table.set_header(["handle", "role", "status", "valid until", "session"]);
    for c in &list {
        table.add_row([
            c.handle.clone(),
            c.role.clone(),
            c.status.clone(),
            rfc3339(c.not_after),
            if c.session { "yes" } else { "no" }.to_owned(),
        ]);
    }
    writeln!(out, "{table}")?;
    Ok(())
}

/// Splits a safety number into groups of five digits, four groups per line.
pub(crate) fn group_safety_number(digits: &str) -> Vec<String> {
    let groups: Vec<String> = digits
        .as_bytes()
        .chunks(5)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    groups.chunks(4).map(|row| row.join(" ")).collect()
}

async fn verify(
    member: &Member,
    args: &VerifyArgs,
    out: &mut dyn Write,
) -> Result<(), MemberError> {
    let number = member.safety_number(&args.handle).await?;
    let rows = group_safety_number(&number.digits);
    if args.json {
        let v = serde_json::json!({
            "handle": args.handle,
            "safety_number": number.digits,
            "groups": rows,
        });
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&v).map_err(std::io::Error::other)?
        )?;
        return Ok(());
    }
    writeln!(out, "Safety number with {}:", args.handle)?;
    writeln!(out)?;
    for r in &rows {
        writeln!(out, "    {r}")?;
    }
    writeln!(out)?;
    writeln!(
        out,
        "Read it aloud with {} in person or on a call you trust; they run `postern verify {}` and must see the same digits. If they differ, stop using this contact and tell your admin.",
        args.handle,
        member.handle()
    )?;
    Ok(())
}

/// `postern status --json`.
#[derive(Debug, Serialize)]
struct StatusView {
    handle: String,
    enrolled: bool,
    role: Option<String>,
    org: Option<String>,
    certificate: Option<String>,
    certificate_valid_until: Option<String>,
    relay: Option<String>,
    relay_reachable: bool,
    relay_error: Option<String>,
    messages_pending: Option<u32>,
    prekeys_available: Option<u32>,
    prekeys_published_now: Option<usize>,
    messages_stored: usize,
    revocation_list_version: Option<u64>,
}

async fn status(member: &Member, json: bool, out: &mut dyn Write) -> Result<(), MemberError> {
    let enrolled = member.is_enrolled();
    let mut v = StatusView {
        handle: member.handle().to_owned(),
        enrolled,
        role: None,
        org: None,
        certificate: None,
        certificate_valid_until: None,
        relay: None,
        relay_reachable: false,
        relay_error: None,
        messages_pending: None,
        prekeys_available: None,
        prekeys_published_now: None,
        messages_stored: member.messages()?.len(),
        revocation_list_version: None,
    };
    let mut failure = None;
    if enrolled {
        v.role = Some(member.role()?.to_string());
        v.org = Some(member.org()?.to_string());
        v.certificate_valid_until = Some(rfc3339(member.certificate()?.body().not_after));
        let pb = spinner("Checking the relay…");
        let checked = async {
            let conn = member.connect().await?;
            let prekeys = member.maintain_prekeys(&conn).await;
            let r = (conn.address().to_owned(), conn.pending, prekeys);
            conn.close().await;
            Ok::<_, MemberError>(r)
        }
        .await;
        pb.finish_and_clear();
        match checked {
            Ok((relay, pending, prekeys)) => {
                v.relay = Some(relay);
                v.relay_reachable = true;
                v.messages_pending = Some(pending);
                match prekeys {
                    Ok(p) => {
                        v.prekeys_available = Some(p.available);
                        v.prekeys_published_now = Some(p.published);
                    }
                    Err(e) => v.relay_error = Some(format!("prekeys: {e}")),
                }
            }
            Err(e) => {
                v.relay_error = Some(e.to_string());
                failure = Some(e);
            }
        }
        v.certificate = Some(member.certificate_status()?.as_str().to_owned());
        v.revocation_list_version = Some(member.revocations()?.version());
    }
    if json {
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&v).map_err(std::io::Error::other)?
        )?;
    } else {
        writeln!(out, "handle:           {}", v.handle)?;
        if !enrolled {
            writeln!(
                out,
                "enrolled:         no (run `postern enroll <bundle-file>` with the bundle from your admin)"
            )?;
            return Ok(());
        }
        let opt = |o: &Option<String>| o.clone().unwrap_or_default();
        writeln!(out, "role:             {}", opt(&v.role))?;
        writeln!(out, "org:              {}", opt(&v.org))?;
        writeln!(
            out,
            "certificate:      {} (valid until {})",
            opt(&v.certificate),
            opt(&v.certificate_valid_until)
        )?;
        match (&v.relay, v.relay_reachable) {
            (Some(r), true) => writeln!(out, "relay:            {r} reachable")?,
            _ => writeln!(
                out,
                "relay:            UNREACHABLE: {}",
                opt(&v.relay_error)
            )?,
        }
        if let Some(p) = v.messages_pending {
            writeln!(out, "messages pending: {p} (fetch with `postern inbox`)")?;
        }
        if let Some(p) = v.prekeys_available {
            let topped = v.prekeys_published_now.unwrap_or(0);
            writeln!(
                out,
                "prekeys left:     {p}{}",
                if topped > 0 {
                    format!(" (just published {topped} more)")
                } else {
                    String::new()
                }
            )?;
        }
        writeln!(out, "messages stored:  {}", v.messages_stored)?;
        if let Some(r) = v.revocation_list_version {
            writeln!(out, "revocation list:  version {r}")?;
        }
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn wipe(
    home: &Path,
    ctx: &Context,
    args: &WipeArgs,
    out: &mut dyn Write,
) -> Result<(), MemberError> {
    if !home.join(member::VAULT_DIR).is_dir() {
        return Err(MemberError::NoAccount(home.to_owned()));
    }
    if !args.yes {
        // Confirmation names the account, which only the passphrase reveals.
        let m = ctx.open_member(home)?;
        let handle = m.handle().to_owned();
        drop(m);
        eprint!(
            "This destroys the account {handle} in {} and every message in it, irrecoverably.\nType the handle ({handle}) to confirm: ",
            home.display()
        );
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        if line.trim() != handle {
            return Err(MemberError::NotConfirmed);
        }
    } else if std::io::stderr().is_terminal() {
        eprintln!(
            "postern: wiping {} without confirmation (--yes)",
            home.display()
        );
    }
    let report = member::wipe(home)?;
    writeln!(
        out,
        "Wiped {}: {} file(s), {} bytes overwritten with random data and deleted.",
        home.display(),
        report.files,
        report.bytes
    )?;
    writeln!(
        out,
        "What this cannot guarantee: on SSDs and flash, and on journaling or copy-on-write file systems, old copies of the data may survive in blocks the overwrite never reached. They are encrypted under your passphrase; only full-disk encryption makes deletion final there."
    )?;
    writeln!(
        out,
        "Ask your admin to revoke your membership (`postern org revoke`) if this device may be in someone else's hands."
    )?;
    Ok(())
}
