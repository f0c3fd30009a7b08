//! The byte strings that authentication signatures cover.
//!
//! Both are bound to one TLS session by a keying-material export (RFC 5705 / 8446 §7.5)
//! and to one `Welcome` challenge, so a signature seen on one connection is worthless on
//! any other. Each signature covers `context || message`: the context constant below,
//! then the message these functions build. Client and relay both call them, so the two
//! ends cannot drift; the signing itself (Ed25519) is `postern-identity`'s.

use crate::ids::MailboxId;
use crate::limits::EXPORTER_LEN;

/// TLS exporter label both sides use (context: empty).
pub const EXPORTER_LABEL: &[u8] = b"EXPORTER-postern-session-binding";

/// Domain separation for `Authenticate` signatures.
pub const AUTHENTICATE_CONTEXT: &[u8] = b"postern/1 authenticate\0";

/// Domain separation for `OpenMailbox` signatures.
pub const OPEN_MAILBOX_CONTEXT: &[u8] = b"postern/1 open-mailbox\0";

/// Domain separation for `Send` signatures (by the destination's sender key).
pub const SEND_CONTEXT: &[u8] = b"postern/2 send\0";

/// What the destination mailbox's sender key signs in `Send`, after [`SEND_CONTEXT`]:
/// `exporter (32) || challenge (32) || to (32)`. It authorises this connection to write
/// into `to`; each frame's integrity is the TLS session's. Ed25519 is deterministic, so
/// every send to `to` on one connection carries the same signature, and the relay needs
/// to verify it only once per connection and destination.
pub fn send_message(
    exporter: &[u8; EXPORTER_LEN],
    challenge: &[u8; 32],
    to: &MailboxId,
) -> Vec<u8> {
    [exporter.as_slice(), challenge, to.as_bytes()].concat()
}

/// What the device key signs in `Authenticate`, after [`AUTHENTICATE_CONTEXT`]:
/// `exporter (32) || challenge (32)`.
pub fn authenticate_message(exporter: &[u8; EXPORTER_LEN], challenge: &[u8; 32]) -> Vec<u8> {
    [exporter.as_slice(), challenge].concat()
}

/// What the mailbox owner key signs in `OpenMailbox`, after [`OPEN_MAILBOX_CONTEXT`]:
/// `exporter (32) || challenge (32) || recipient id (32)`.
pub fn open_mailbox_message(
    exporter: &[u8; EXPORTER_LEN],
    challenge: &[u8; 32],
    recipient: &MailboxId,
) -> Vec<u8> {
    [exporter.as_slice(), challenge, recipient.as_bytes()].concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_exporter_then_challenge_then_recipient() {
        let exporter = [1u8; EXPORTER_LEN];
        let challenge = [2u8; 32];
        let recipient = MailboxId([3u8; 32]);
        let auth = authenticate_message(&exporter, &challenge);
        assert_eq!(auth.len(), 64);
        assert_eq!(&auth[..32], &exporter);
        assert_eq!(&auth[32..], &challenge);
        let open = open_mailbox_message(&exporter, &challenge, &recipient);
        assert_eq!(&open[..64], auth.as_slice());
        assert_eq!(&open[64..], recipient.as_bytes());
        // The same bytes as opening, under another context.
        assert_eq!(send_message(&exporter, &challenge, &recipient), open);
        assert_ne!(SEND_CONTEXT, OPEN_MAILBOX_CONTEXT);
    }
}
