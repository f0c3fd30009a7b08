//! `contacts`, `verify` and `status`: who this account knows, safety numbers, and the
//! state of the account, its certificate and its relay.

use super::*;

pub(super) async fn contacts(
    member: &Member,
    json: bool,
    out: &mut dyn Write,
) -> Result<(), MemberError> {
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

pub(super) async fn verify(
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
pub(super) struct StatusView {
    pub(super) handle: String,
    pub(super) enrolled: bool,
    pub(super) role: Option<String>,
    pub(super) org: Option<String>,
    pub(super) certificate: Option<String>,
    pub(super) certificate_valid_until: Option<String>,
    pub(super) relay: Option<String>,
    pub(super) relay_reachable: bool,
    pub(super) relay_error: Option<String>,
    pub(super) messages_pending: Option<u32>,
    pub(super) prekeys_available: Option<u32>,
    pub(super) prekeys_published_now: Option<usize>,
    pub(super) messages_stored: usize,
    pub(super) revocation_list_version: Option<u64>,
}

pub(super) async fn status(
    member: &Member,
    json: bool,
    out: &mut dyn Write,
) -> Result<(), MemberError> {
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
