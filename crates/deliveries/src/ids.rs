//! Random identifiers: [`DeliveryId`] and [`EventId`]. Both are 16 random bytes, shown as
//! 26 characters of unpadded RFC 4648 base32 (upper case; parsing ignores case).

use std::fmt;
use std::str::FromStr;

use data_encoding::BASE32_NOPAD;
use serde::{Deserialize, Serialize};

use crate::error::ValueError;

/// Length of a delivery or event id in bytes.
pub const ID_LEN: usize = 16;
/// Length of an id's text form (base32 of 16 bytes, no padding).
pub const ID_TEXT_LEN: usize = 26;

fn random_id() -> [u8; ID_LEN] {
    use rand::{RngCore, TryRngCore};
    let mut id = [0u8; ID_LEN];
    rand::rngs::OsRng.unwrap_err().fill_bytes(&mut id);
    id
}

fn parse_id(text: &str) -> Option<[u8; ID_LEN]> {
    if text.len() != ID_TEXT_LEN {
        return None;
    }
    let upper = text.to_ascii_uppercase();
    let bytes = BASE32_NOPAD.decode(upper.as_bytes()).ok()?;
    let id: [u8; ID_LEN] = bytes.try_into().ok()?;
    // Reject non-canonical text (non-zero trailing bits) so one id has one spelling.
    (BASE32_NOPAD.encode(&id) == upper).then_some(id)
}

macro_rules! random_id_type {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub struct $name(pub [u8; ID_LEN]);

        impl $name {
            /// A fresh id from the OS random source.
            pub fn random() -> Self {
                Self(random_id())
            }

            /// The raw bytes.
            pub fn as_bytes(&self) -> &[u8; ID_LEN] {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&BASE32_NOPAD.encode(&self.0))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self)
            }
        }

        impl FromStr for $name {
            type Err = ValueError;
            fn from_str(s: &str) -> Result<Self, ValueError> {
                parse_id(s).map(Self).ok_or(ValueError::BadId { what: $what })
            }
        }
    };
}

random_id_type!(
    /// Names one delivery across every member's client. Chosen at random by the
    /// coordinator who creates the delivery; it carries no meaning.
    DeliveryId,
    "delivery id"
);
random_id_type!(
    /// Names one event. Chosen at random by its author; it is the de-duplication key and
    /// the tie-break of the replay order.
    EventId,
    "event id"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_text_round_trips_and_ignores_case() {
        let id = DeliveryId::random();
        let text = id.to_string();
        assert_eq!(text.len(), ID_TEXT_LEN);
        assert_eq!(text.parse::<DeliveryId>().unwrap(), id);
        assert_eq!(text.to_lowercase().parse::<DeliveryId>().unwrap(), id);
    }

    #[test]
    fn malformed_id_text_is_refused() {
        for bad in [
            "",
            "ABC",
            "AAAAAAAAAAAAAAAAAAAAAAAAA1",
            "AAAAAAAAAAAAAAAAAAAAAAAAAB",
        ] {
            assert!(bad.parse::<EventId>().is_err(), "{bad}");
        }
        assert!("AAAAAAAAAAAAAAAAAAAAAAAAAA".parse::<EventId>().is_ok());
    }
}
