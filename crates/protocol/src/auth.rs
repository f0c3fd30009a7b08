//! The byte strings that authentication signatures cover.
//!
//! Both are bound to one TLS session by a keying-material export (RFC 5705 / 8446 §7.5)
//! and to one `Welcome` challenge, so a signature seen on one connection is worthless on
//! any other. The signing itself happens in the client and the relay (Ed25519).

use crate::ids::MailboxId;
use crate::limits::EXPORTER_LEN;

/// TLS exporter label both sides use (context: empty).
pub const EXPORTER_LABEL: &[u8] = b"EXPORTER-postern-session-binding";

/// Domain separation for `Authenticate` signatures.
pub const AUTHENTICATE_CONTEXT: &[u8] = b"postern/1 authenticate\0";

/// Domain separation for `OpenMailbox` signatures.
pub const OPEN_MAILBOX_CONTEXT: &[u8] = b"postern/1 open-mailbox\0";

/// What the device key signs in `Authenticate`:
/// `AUTHENTICATE_CONTEXT || exporter (32) || challenge (32)`.
pub fn authenticate_transcript(exporter: &[u8; EXPORTER_LEN], challenge: &[u8; 32]) -> Vec<u8> {
    [AUTHENTICATE_CONTEXT, exporter, challenge].concat()
}

/// What the mailbox owner key signs in `OpenMailbox`:
/// `OPEN_MAILBOX_CONTEXT || exporter (32) || challenge (32) || recipient id (32)`.
pub fn open_mailbox_transcript(
    exporter: &[u8; EXPORTER_LEN],
    challenge: &[u8; 32],
    recipient: &MailboxId,
) -> Vec<u8> {
    [
        OPEN_MAILBOX_CONTEXT,
        exporter,
        challenge,
        recipient.as_bytes(),
    ]
    .concat()
}
