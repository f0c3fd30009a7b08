//! Error codes a relay returns, with stable numbers, and the decoder's own errors.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

macro_rules! error_codes {
    ($($(#[$doc:meta])* $name:ident = $num:literal, $text:literal;)*) => {
        /// An error a relay returns. The numbers are stable: a code is never renumbered or
        /// reused, and a code this version does not know decodes as [`ErrorCode::Unknown`].
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum ErrorCode {
            $($(#[$doc])* $name,)*
            /// A code from a newer protocol revision.
            Unknown(u16),
        }

        impl ErrorCode {
            /// Every known code, in numeric order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$name),*];

            /// The stable number.
            pub fn number(self) -> u16 {
                match self {
                    $(ErrorCode::$name => $num,)*
                    ErrorCode::Unknown(n) => n,
                }
            }

            /// The code for `n` (never fails: unknown numbers are kept as `Unknown`).
            pub fn from_number(n: u16) -> Self {
                match n {
                    $($num => ErrorCode::$name,)*
                    other => ErrorCode::Unknown(other),
                }
            }

            /// The variant name, as the specification lists it.
            pub fn name(self) -> &'static str {
                match self {
                    $(ErrorCode::$name => stringify!($name),)*
                    ErrorCode::Unknown(_) => "Unknown",
                }
            }

            /// A short, stable, human-readable description.
            pub fn description(self) -> &'static str {
                match self {
                    $(ErrorCode::$name => $text,)*
                    ErrorCode::Unknown(_) => "error unknown to this version",
                }
            }
        }
    };
}

error_codes! {
    /// The frame did not decode as the message expected here.
    Malformed = 1, "malformed frame";
    /// The frame's length prefix exceeded the maximum frame size.
    FrameTooLarge = 2, "frame too large";
    /// No protocol version offered in `Hello` is supported.
    UnknownVersion = 3, "no common protocol version";
    /// The request needs authentication (or an open mailbox) first.
    Unauthorized = 4, "not authorized";
    /// A signature did not verify.
    BadSignature = 5, "bad signature";
    /// The certificate or list was issued by another organisation.
    WrongOrg = 6, "issued by another organisation";
    /// The member's certificate is revoked.
    Revoked = 7, "certificate revoked";
    /// The certificate has expired.
    Expired = 8, "certificate expired";
    /// The certificate is not valid yet.
    NotYetValid = 9, "certificate not yet valid";
    /// The member's role may not do this.
    RoleNotAllowed = 10, "role not allowed";
    /// The revocation list offered is not newer than the one held.
    StaleRevocationList = 11, "revocation list not newer than the current one";
    /// The mailbox is full (count or bytes); a `SpaceAvailable` push follows when it drains.
    QuotaExceeded = 12, "mailbox quota exceeded";
    /// Too many requests or attempts; slow down.
    RateLimited = 13, "rate limited";
    /// No such mailbox, directory entry or envelope.
    NotFound = 14, "not found";
    /// The id is already taken.
    AlreadyExists = 15, "already exists";
    /// The envelope body is not exactly one padding bucket long.
    BadPadding = 16, "envelope body is not a padding bucket";
    /// The request is not valid in this state (e.g. a second `Hello`).
    UnexpectedRequest = 17, "unexpected request";
    /// The relay is at its connection limit or shutting down; try again later.
    Unavailable = 18, "relay unavailable";
    /// The relay failed internally (storage); nothing was done.
    Internal = 19, "internal relay error";
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (code {})", self.description(), self.number())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.number().serialize(s)
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        u16::deserialize(d).map(ErrorCode::from_number)
    }
}

/// Bytes could not be turned into a frame or message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// A length prefix above [`crate::limits::MAX_FRAME_LEN`]; nothing was allocated.
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    FrameTooLarge {
        /// Length the prefix announced.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The input ended inside a frame.
    #[error("truncated frame: needed {needed} more bytes")]
    Truncated {
        /// Bytes still missing.
        needed: usize,
    },
    /// The body is not a valid encoding of the expected message (including a length or
    /// count above a field's bound, an unknown variant, or trailing bytes).
    #[error("malformed {what}")]
    Malformed {
        /// Which message was expected.
        what: &'static str,
    },
}

impl DecodeError {
    /// The error code a relay answers with for this decode failure.
    pub fn code(&self) -> ErrorCode {
        match self {
            DecodeError::FrameTooLarge { .. } => ErrorCode::FrameTooLarge,
            DecodeError::Truncated { .. } | DecodeError::Malformed { .. } => ErrorCode::Malformed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_numbers_are_unique_and_round_trip() {
        let mut seen = std::collections::HashSet::new();
        for &code in ErrorCode::ALL {
            assert!(seen.insert(code.number()), "duplicate {code:?}");
            assert_eq!(ErrorCode::from_number(code.number()), code);
        }
        assert_eq!(ErrorCode::from_number(999), ErrorCode::Unknown(999));
    }
}
