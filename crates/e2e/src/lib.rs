//! End-to-end encryption for Postern over Signal's own code (`libsignal-protocol`):
//! PQXDH session set-up, the Double Ratchet with SPQR, sealed sender and safety numbers.
//!
//! The org's sealed-sender certificates are issued by [`sender_certificate`].
//!
//! A member's state lives in its [`Vault`] (redb, every value sealed under a passphrase
//! key): key material ([`keys`]), sessions, peer identities and received messages.
//! [`Messenger`] sends and receives over a vault: every message is sealed sender, every
//! peer must hold a valid, unrevoked member certificate naming its identity key
//! ([`MemberTrust`], [`OrgRoster`]), and a received message is stored in the same
//! transaction as the ratchet step. The API is synchronous (libsignal's futures are not
//! `Send`; our stores never wait): call it from `spawn_blocking` in async code. Byte
//! formats and test vectors: `protocol-spec/E2E.md`.

#![forbid(unsafe_code)]

pub mod sender_certificate;

pub mod bundle;
pub mod error;
pub mod fingerprint;
pub mod keys;
pub mod messenger;
pub mod plaintext;
pub mod trust;
pub mod vault;

// Unit tests share the integration tests' org kit, which names the crate.
#[cfg(test)]
extern crate self as postern_e2e;
#[cfg(test)]
mod spec_vectors;
#[cfg(test)]
#[path = "../tests/common/mod.rs"]
mod testkit;

pub use bundle::{
    decode_bundle, decode_one_time_prekey, decode_public_prekeys, encode_bundle,
    encode_one_time_prekey, encode_public_prekeys,
};
pub use error::E2eError;
pub use fingerprint::SafetyNumber;
pub use keys::{OneTimePreKey, OneTimePreKeys, PreKeyPolicy, PublicPreKeys, assemble_bundle};
pub use messenger::{Messenger, Outgoing, Received};
pub use plaintext::{ContentType, MessageId, Plaintext, PlaintextError};
pub use trust::{MemberTrust, OrgRoster, TrustFailure};
pub use vault::{KdfParams, StoredMessage, Vault, VaultError};

/// Unix milliseconds of `t` (0 before the epoch).
pub(crate) fn unix_ms(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// libsignal's timestamp of `t`.
pub(crate) fn timestamp(t: std::time::SystemTime) -> libsignal_protocol::Timestamp {
    libsignal_protocol::Timestamp::from_epoch_millis(unix_ms(t))
}

/// Drives a libsignal future to completion on this thread. Our store callbacks never
/// wait, so every future is ready on its first poll; libsignal's futures are `!Send`,
/// which is why the API is synchronous rather than async.
pub(crate) fn run<F: std::future::Future>(fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::yield_now();
    }
}

/// The libsignal protocol version this crate is built against, from the pinned crate.
pub const LIBSIGNAL_PIN: &str = "libsignal-protocol-syft =0.85.3-beta.5 (Signal v0.85.3)";

#[doc(hidden)]
pub use libsignal_protocol as _libsignal;
