//! Test vectors: one deterministic example of every request, response and push, encoded
//! as whole frames. `protocol-spec/SPEC.md` carries the same bytes in hex and a test
//! checks that both agree, so the specification cannot drift from the code. Regenerate
//! the spec's blocks with `cargo run -p postern-protocol --example spec-vectors`.

use crate::bytes::{BoundedVec, Bytes, FixedBytes};
use crate::error::ErrorCode;
use crate::frame::{EncodeError, encode_frame};
use crate::ids::{EnvelopeId, HandleTag, MailboxId};
use crate::message::*;
use crate::padding::pad;

/// A named example frame.
#[derive(Debug, Clone)]
pub struct Vector {
    /// Name used to find it in SPEC.md (`vector: <name>`).
    pub name: &'static str,
    /// The whole frame: 4-byte length, then the body.
    pub frame: Vec<u8>,
}

fn fill<const N: usize>(b: u8) -> [u8; N] {
    [b; N]
}

fn bytes<const MAX: usize>(v: &[u8]) -> Bytes<MAX> {
    // Vector inputs are small constants, well under every bound.
    Bytes::try_from(v).unwrap_or_default()
}

/// Every vector, in spec order.
pub fn all() -> Result<Vec<Vector>, EncodeError> {
    let mb_r = MailboxId(fill(0x11));
    let mb_s = MailboxId(fill(0x22));
    let env = EnvelopeId(fill(0x33));
    let dir = HandleTag(fill(0x44));
    // A short body padded to the smallest bucket; the vector shows the 1 KiB on the wire.
    let body: EnvelopeBody = Bytes::new(pad(b"ciphertext").unwrap_or_default()).unwrap_or_default();
    let envelope = Envelope {
        id: env,
        expires_at: 1_800_000_000,
        body: body.clone(),
    };

    let mut out = Vec::new();
    let mut req = |name, r: Request| -> Result<(), EncodeError> {
        out.push(Vector {
            name,
            frame: encode_frame(&r)?,
        });
        Ok(())
    };
    req(
        "request-hello",
        Request::Hello(Hello {
            versions: BoundedVec::new(vec![2]).unwrap_or_default(),
        }),
    )?;
    req(
        "request-authenticate",
        Request::Authenticate(Authenticate {
            certificate: bytes(b"cert"),
            signature: FixedBytes(fill(0x5a)),
        }),
    )?;
    req(
        "request-create-mailbox",
        Request::CreateMailbox(CreateMailbox {
            recipient: mb_r,
            sender: mb_s,
            owner: FixedBytes(fill(0x66)),
            sender_key: FixedBytes(fill(0x99)),
        }),
    )?;
    req(
        "request-open-mailbox",
        Request::OpenMailbox(OpenMailbox {
            recipient: mb_r,
            signature: FixedBytes(fill(0x5a)),
        }),
    )?;
    req(
        "request-publish-prekeys",
        Request::PublishPrekeys(PublishPrekeys {
            directory: dir,
            entry: bytes(b"entry"),
            one_time: BoundedVec::new(vec![bytes(b"otk1"), bytes(b"otk2")]).unwrap_or_default(),
        }),
    )?;
    req(
        "request-fetch-prekeys",
        Request::FetchPrekeys(FetchPrekeys { directory: dir }),
    )?;
    req(
        "request-fetch-entry",
        Request::FetchEntry(FetchEntry { directory: dir }),
    )?;
    req(
        "request-send",
        Request::Send(SendEnvelope {
            to: mb_s,
            ttl_secs: 86_400,
            body: body.clone(),
            signature: FixedBytes(fill(0x5a)),
        }),
    )?;
    req("request-subscribe", Request::Subscribe)?;
    req("request-fetch", Request::Fetch(Fetch { limit: 32 }))?;
    req(
        "request-ack",
        Request::Ack(Ack {
            ids: BoundedVec::new(vec![env]).unwrap_or_default(),
        }),
    )?;
    req("request-get-revocation-list", Request::GetRevocationList)?;
    req(
        "request-put-revocation-list",
        Request::PutRevocationList(PutRevocationList {
            list: bytes(b"list"),
        }),
    )?;
    req("request-ping", Request::Ping(Ping { nonce: 300 }))?;
    req(
        "request-set-sender-key",
        Request::SetSenderKey(SetSenderKey {
            sender_key: FixedBytes(fill(0x99)),
        }),
    )?;

    let mut resp = |name, r: Response| -> Result<(), EncodeError> {
        out.push(Vector {
            name,
            frame: encode_frame(&r)?,
        });
        Ok(())
    };
    resp(
        "response-error-quota-exceeded",
        Response::Error(ErrorCode::QuotaExceeded),
    )?;
    resp(
        "response-welcome",
        Response::Welcome(Welcome {
            version: 2,
            challenge: FixedBytes(fill(0x77)),
        }),
    )?;
    resp(
        "response-authenticated",
        Response::Authenticated(Authenticated {
            max_ttl_secs: 604_800,
        }),
    )?;
    resp("response-mailbox-created", Response::MailboxCreated)?;
    resp(
        "response-mailbox-opened",
        Response::MailboxOpened(MailboxOpened { pending: 3 }),
    )?;
    resp(
        "response-prekeys-published",
        Response::PrekeysPublished(PrekeysPublished {
            one_time_available: 100,
        }),
    )?;
    resp(
        "response-prekeys",
        Response::Prekeys(Prekeys {
            entry: bytes(b"entry"),
            one_time: Some(bytes(b"otk1")),
        }),
    )?;
    resp(
        "response-sent",
        Response::Sent(Sent {
            id: env,
            expires_at: 1_800_000_000,
        }),
    )?;
    resp("response-subscribed", Response::Subscribed)?;
    resp(
        "response-envelopes",
        Response::Envelopes(Envelopes {
            envelopes: BoundedVec::new(vec![envelope.clone()]).unwrap_or_default(),
            more: false,
        }),
    )?;
    resp("response-acked", Response::Acked(Acked { deleted: 1 }))?;
    resp(
        "response-revocation-list",
        Response::RevocationList(RevocationList { list: None }),
    )?;
    resp(
        "response-revocation-list-accepted",
        Response::RevocationListAccepted(RevocationListAccepted { version: 2 }),
    )?;
    resp("response-pong", Response::Pong(Ping { nonce: 300 }))?;
    resp("response-sender-key-set", Response::SenderKeySet)?;

    for (name, p) in [
        ("push-envelope", Push::Envelope(envelope)),
        ("push-space-available", Push::SpaceAvailable),
        (
            "push-revocation-list-updated",
            Push::RevocationListUpdated { version: 2 },
        ),
    ] {
        out.push(Vector {
            name,
            frame: encode_frame(&p)?,
        });
    }
    // Not a frame: the bytes a sender key signs (after `SEND_CONTEXT`) for the
    // `request-send` vector, on a connection with exporter `88…88` and challenge `77…77`.
    out.push(Vector {
        name: "send-signature-message",
        frame: crate::auth::send_message(&fill(0x88), &fill(0x77), &mb_s),
    });
    Ok(out)
}

/// The row of the error-code table in SPEC.md §5 for `code`.
pub fn error_row(code: ErrorCode) -> String {
    format!(
        "| {} | `{}` | {} |",
        code.number(),
        code.name(),
        code.description()
    )
}

/// Runs of zero bytes at least this long are folded into one `(zeros: N)` line.
const ZERO_RUN: usize = 64;

/// The hex lines SPEC.md shows for a frame: 32 bytes a line, and long runs of zero bytes
/// (envelope padding) folded into a `(zeros: N)` line.
pub fn spec_lines(frame: &[u8]) -> Vec<String> {
    let mut lines = Vec::new();
    let mut i = 0;
    while i < frame.len() {
        let zeros = frame[i..].iter().take_while(|&&b| b == 0).count();
        if zeros >= ZERO_RUN {
            lines.push(format!("(zeros: {zeros})"));
            i += zeros;
            continue;
        }
        // Up to 32 bytes, stopping where a long zero run starts.
        let mut end = i;
        while end < frame.len() && end - i < 32 {
            let run = frame[end..].iter().take_while(|&&b| b == 0).count();
            if run >= ZERO_RUN {
                break;
            }
            end += 1;
        }
        lines.push(frame[i..end].iter().map(|b| format!("{b:02x}")).collect());
        i = end;
    }
    lines
}

/// Parses [`spec_lines`] back into bytes; `None` on anything else.
pub fn parse_spec_lines<'a>(lines: impl IntoIterator<Item = &'a str>) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    for line in lines {
        let line = line.trim();
        if let Some(n) = line
            .strip_prefix("(zeros: ")
            .and_then(|r| r.strip_suffix(')'))
        {
            out.resize(out.len() + n.parse::<usize>().ok()?, 0);
            continue;
        }
        if line.len() % 2 != 0 {
            return None;
        }
        for pair in line.as_bytes().chunks(2) {
            let pair = std::str::from_utf8(pair).ok()?;
            out.push(u8::from_str_radix(pair, 16).ok()?);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_lines_round_trip() {
        for v in all().unwrap() {
            let lines = spec_lines(&v.frame);
            let back = parse_spec_lines(lines.iter().map(String::as_str)).unwrap();
            assert_eq!(back, v.frame, "{}", v.name);
        }
    }

    #[test]
    fn vector_names_are_unique() {
        let all = all().unwrap();
        let names: std::collections::HashSet<_> = all.iter().map(|v| v.name).collect();
        assert_eq!(names.len(), all.len());
    }
}
