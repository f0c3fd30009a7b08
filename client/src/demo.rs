//! `postern demo`: walks through what Postern can do today, step by step, on real code.
//!
//! At this stage that is the wire protocol: version negotiation, envelope padding,
//! framing and the refusal of hostile frames. The client issue turns this into the full
//! relay-and-delivery demonstration.

use std::io::Write;

use postern_protocol::bytes::{BoundedVec, Bytes};
use postern_protocol::frame::{self, encode_frame};
use postern_protocol::ids::MailboxId;
use postern_protocol::limits::{MAX_FRAME_LEN, PADDING_BUCKETS};
use postern_protocol::message::{Hello, Request, SendEnvelope};
use postern_protocol::padding::{pad, unpad};
use postern_protocol::version::{SUPPORTED_VERSIONS, negotiate};

/// The demo failed.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// Writing to the output failed.
    #[error("could not write output: {0}")]
    Output(#[from] std::io::Error),
    /// A protocol step did not behave as specified (a bug).
    #[error("protocol check failed: {0}")]
    Check(String),
}

fn check(ok: bool, what: &str) -> Result<(), DemoError> {
    if ok {
        Ok(())
    } else {
        Err(DemoError::Check(what.to_owned()))
    }
}

/// Runs the demo, writing its narration to `out`.
pub fn run(out: &mut impl Write) -> Result<(), DemoError> {
    writeln!(
        out,
        "Postern demo — the wire protocol (relay and clients are not built yet)"
    )?;
    writeln!(out)?;

    writeln!(out, "1. A client offers protocol versions [2, 1] in Hello.")?;
    let offered = [2u16, 1];
    let hello = Request::Hello(Hello {
        versions: BoundedVec::new(offered.to_vec()).map_err(|e| DemoError::Check(e.to_string()))?,
    });
    let hello_frame = encode_frame(&hello).map_err(|e| DemoError::Check(e.to_string()))?;
    writeln!(
        out,
        "   Hello frame ({} bytes): {}",
        hello_frame.len(),
        hex::encode(&hello_frame)
    )?;
    let chosen = negotiate(&offered);
    writeln!(
        out,
        "   The relay supports {SUPPORTED_VERSIONS:?} and chooses {chosen:?}."
    )?;
    check(chosen == Some(1), "negotiation")?;

    writeln!(out)?;
    writeln!(
        out,
        "2. Envelope bodies are padded to fixed buckets {PADDING_BUCKETS:?} bytes,"
    )?;
    writeln!(out, "   so message length leaks only the bucket:")?;
    for len in [12usize, 900, 1023, 1024, 5000, 40_000] {
        let body = pad(&vec![0xab; len]).map_err(|e| DemoError::Check(e.to_string()))?;
        let back = unpad(&body).map_err(|e| DemoError::Check(e.to_string()))?;
        check(back.len() == len, "unpad")?;
        writeln!(
            out,
            "   {len:>6} bytes of ciphertext -> {:>6} bytes on the wire",
            body.len()
        )?;
    }

    writeln!(out)?;
    writeln!(
        out,
        "3. A Send request carries only the destination's sender id, a TTL and the"
    )?;
    writeln!(out, "   padded body: no sender, no name.")?;
    let mut rng = rand::rng();
    let to = MailboxId::random(&mut rng);
    let body =
        Bytes::new(pad(b"sealed-sender ciphertext").map_err(|e| DemoError::Check(e.to_string()))?)
            .map_err(|e| DemoError::Check(e.to_string()))?;
    let send = Request::Send(SendEnvelope {
        to,
        ttl_secs: 3600,
        body,
    });
    let send_frame = encode_frame(&send).map_err(|e| DemoError::Check(e.to_string()))?;
    writeln!(out, "   to {to}")?;
    writeln!(
        out,
        "   frame: {} bytes; header {}",
        send_frame.len(),
        hex::encode(&send_frame[..4])
    )?;
    let decoded = frame::split_frame(&send_frame)
        .and_then(frame::decode_request)
        .map_err(|e| DemoError::Check(e.to_string()))?;
    check(decoded == send, "send round trip")?;
    writeln!(out, "   decoded back to the same request.")?;

    writeln!(out)?;
    writeln!(
        out,
        "4. Hostile frames are refused with typed errors, before any allocation:"
    )?;
    let oversized = ((MAX_FRAME_LEN as u32) + 1).to_be_bytes();
    let err = frame::split_frame(&oversized).err();
    writeln!(
        out,
        "   length prefix {} -> {}",
        MAX_FRAME_LEN + 1,
        describe(err.as_ref())
    )?;
    check(err.is_some(), "oversized refused")?;
    let err = frame::split_frame(&send_frame[..send_frame.len() - 7]).err();
    writeln!(out, "   truncated Send -> {}", describe(err.as_ref()))?;
    check(err.is_some(), "truncated refused")?;
    let err = frame::decode_request(&[0x42, 0x00]).err();
    writeln!(
        out,
        "   unknown request kind 0x42 -> {}",
        describe(err.as_ref())
    )?;
    check(err.is_some(), "unknown refused")?;

    writeln!(out)?;
    writeln!(
        out,
        "Done. Next: `cargo test` runs the test suite; protocol-spec/SPEC.md has the bytes."
    )?;
    Ok(())
}

fn describe(err: Option<&postern_protocol::DecodeError>) -> String {
    match err {
        Some(e) => format!("{e} (error code {})", e.code().number()),
        None => "accepted (unexpected)".to_owned(),
    }
}
