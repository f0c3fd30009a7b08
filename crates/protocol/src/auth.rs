//! The byte strings that authentication signatures cover.
//!
//! Both are bound to one TLS session by a keying-material export (RFC 5705 / 8446 §7.5)
//! and to one `Welcome` challenge, so a signature seen on one connection is worthless on
//! any other. Each signature covers `context || message`: the context constant below,
//! then the message these functions build. Client and relay both call them, so the two
//! ends cannot drift; the signing itself (Ed25519) is `postern-identity`'s.

use sha2::{Digest, Sha256};

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
/// `exporter (32) || challenge (32) || to (32) || ttl_secs (u32 BE) || SHA-256(body)`.
pub fn send_message(
    exporter: &[u8; EXPORTER_LEN],
    challenge: &[u8; 32],
    to: &MailboxId,
    ttl_secs: u32,
    body: &[u8],
) -> Vec<u8> {
    let digest = Sha256::digest(body);
    [
        exporter.as_slice(),
        challenge,
        to.as_bytes(),
        &ttl_secs.to_be_bytes(),
        digest.as_slice(),
    ]
    .concat()
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
        let send = send_message(&exporter, &challenge, &recipient, 0x0102_0304, b"abc");
        assert_eq!(send.len(), 64 + 32 + 4 + 32);
        assert_eq!(&send[..96], open.as_slice());
        assert_eq!(&send[96..100], &[1, 2, 3, 4]);
        // SHA-256("abc"), FIPS 180-2 appendix B.1.
        assert_eq!(
            hex::encode(&send[100..]),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
