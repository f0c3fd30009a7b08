//! Identifiers: 32 random bytes each, with a lowercase base32 text form. They carry no
//! counter and no timestamp, so an id tells nothing about when or by whom it was made.

use std::fmt;
use std::str::FromStr;

use rand::{CryptoRng, Rng};
use serde::{Deserialize, Serialize};

use crate::bytes::FixedBytes;

/// Lowercase RFC 4648 base32 without padding, the text form of ids, pins and org keys.
pub fn encode_base32(bytes: &[u8]) -> String {
    data_encoding::BASE32_NOPAD
        .encode(bytes)
        .to_ascii_lowercase()
}

/// Decodes [`encode_base32`] text (either case).
pub fn decode_base32(text: &str) -> Result<Vec<u8>, IdParseError> {
    data_encoding::BASE32_NOPAD
        .decode(text.to_ascii_uppercase().as_bytes())
        .map_err(|_| IdParseError::NotBase32)
}

/// A text id could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IdParseError {
    /// Not lowercase/uppercase base32 without padding.
    #[error("not base32 (RFC 4648, no padding)")]
    NotBase32,
    /// Decoded to the wrong number of bytes.
    #[error("wrong length: expected {expected} bytes, got {got}")]
    WrongLength {
        /// Bytes an id has.
        expected: usize,
        /// Bytes the text decoded to.
        got: usize,
    },
}

fn parse_32(text: &str) -> Result<[u8; 32], IdParseError> {
    let bytes = decode_base32(text)?;
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| IdParseError::WrongLength {
        expected: 32,
        got: bytes.len(),
    })
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub struct $name(pub [u8; 32]);

        impl $name {
            /// A fresh id from 32 bytes of `rng`.
            pub fn random<R: Rng + CryptoRng + ?Sized>(rng: &mut R) -> Self {
                let mut bytes = [0u8; 32];
                rng.fill_bytes(&mut bytes);
                Self(bytes)
            }

            /// The raw bytes.
            pub fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&encode_base32(&self.0))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self)
            }
        }

        impl FromStr for $name {
            type Err = IdParseError;
            fn from_str(s: &str) -> Result<Self, IdParseError> {
                parse_32(s).map(Self)
            }
        }

        impl From<FixedBytes<32>> for $name {
            fn from(b: FixedBytes<32>) -> Self {
                Self(b.0)
            }
        }
    };
}

id_type!(
    /// A mailbox id. A mailbox has two: the recipient id (known only to its owner, used to
    /// open, fetch and acknowledge) and the sender id (given to senders through the
    /// directory, used only to deliver into it).
    MailboxId
);

id_type!(
    /// An envelope id, chosen by the relay when it stores an envelope: its expiry (u64
    /// big-endian, a minute boundary) and 24 random bytes (see SPEC.md).
    EnvelopeId
);

id_type!(
    /// A directory key: a keyed hash of a member's handle under the org's directory key,
    /// so the relay can find an entry without learning the handle.
    HandleTag
);
