//! `send`, `inbox` and `watch`: messages out and in, as text or JSON lines.

use super::*;

pub(super) fn read_text(arg: &str) -> Result<Zeroizing<String>, MemberError> {
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

pub(super) async fn send(
    member: &Member,
    args: &SendArgs,
    out: &mut dyn Write,
) -> Result<(), MemberError> {
    let text = read_text(&args.text)?;
    if text.is_empty() {
        return Err(MemberError::BadInput("the message is empty".into()));
    }
    // Check the TTL against the org policy before touching the network.
    member.resolve_ttl(args.ttl, 0)?;
    let pb = spinner("Connecting to the relay…");
    let result = async {
        // A connection that carries no identity: the relay cannot tell who sends.
        let conn = member.connect_sender().await?;
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

pub(super) fn remaining(expires_ms: u64) -> String {
    let left = Duration::from_secs(expires_ms.saturating_sub(now_ms()) / 1000);
    humantime::format_duration(left).to_string()
}

pub(super) fn print_message(out: &mut dyn Write, m: &StoredMessage) -> std::io::Result<()> {
    let v = MessageView::of(m);
    writeln!(
        out,
        "{}  from {}  (disappears in {})",
        v.sent_at,
        v.from,
        remaining(m.expires_at_ms)
    )?;
    if m.content_type == ContentType::Text {
        // The sender chose every character: escaped, and every line indented, so nothing
        // in it can pose as a header line or move the cursor.
        writeln!(
            out,
            "    {}",
            safe_text(v.body.trim_end_matches('\n'), "    ")
        )?;
    } else {
        writeln!(out, "    [{}, {} bytes]", v.content_type, m.body.len())?;
    }
    Ok(())
}

pub(super) fn report_fetch(report: &FetchReport) {
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

pub(super) async fn inbox(
    member: &Member,
    json: bool,
    out: &mut dyn Write,
) -> Result<(), MemberError> {
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

pub(super) fn emit(out: &mut dyn Write, json: bool, m: &StoredMessage) -> Result<(), MemberError> {
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

pub(super) async fn watch(
    member: &Member,
    json: bool,
    out: &mut dyn Write,
) -> Result<(), MemberError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_cannot_pose_as_another_or_drive_the_terminal() {
        let m = StoredMessage {
            sender: "courier-7".into(),
            id: postern_e2e::MessageId([1; 16]),
            content_type: ContentType::Text,
            sent_at_ms: 1_900_000_000_000,
            expires_at_ms: u64::MAX,
            received_at_ms: 1_900_000_000_000,
            body: "hi\n2026-12-02T10:00:00Z  from coord-1  (disappears in 1h)\n\x1b[1A\x1b[2Kfake\r\u{202e}txet"
                .as_bytes()
                .to_vec(),
        };
        let mut out = Vec::new();
        print_message(&mut out, &m).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].contains("from courier-7"), "{text}");
        // Only the first line is ours; every other line is indented under it.
        assert!(lines[1..].iter().all(|l| l.starts_with("    ")), "{text}");
        assert!(!text.contains('\x1b') && !text.contains('\r') && !text.contains('\u{202e}'));
        assert!(text.contains("\\u{1b}[1A"), "{text}");
    }
}
