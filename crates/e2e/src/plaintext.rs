//! The plaintext structure inside the encryption: message id, times, content type, body,
//! padded to a multiple of [`PAD_BLOCK`] bytes. Byte format and vectors:
//! `protocol-spec/E2E.md` ("Plaintext structure").
//!
//! ```text
//! offset size
//! 0      1    version = 0x01
//! 1      1    content type (0x01 text, 0x02 delivery event, 0x03 receipt)
//! 2      16   message id (random; de-duplication key together with the sender)
//! 18     8    sent_at, unix milliseconds, big-endian
//! 26     8    expires_at, unix milliseconds, big-endian (> sent_at)
//! 34     4    body length n, big-endian
//! 38     n    body
//! 38+n   ...  padding: 0x80 then 0x00 up to the next multiple of 256 (ISO/IEC 7816-4)
//! ```

use std::fmt;

use zeroize::Zeroize;

/// Version byte of the plaintext structure.
pub const PLAINTEXT_VERSION: u8 = 1;
/// Padding granularity: the encoded structure is always a multiple of this.
pub const PAD_BLOCK: usize = 256;
/// Largest encoded (padded) plaintext: 240 blocks, 60 KiB, so that a sealed PreKey
/// message still fits the protocol's largest (64 KiB) envelope bucket.
pub const MAX_PADDED_LEN: usize = 240 * PAD_BLOCK;
/// Fixed header before the body.
pub const HEADER_LEN: usize = 38;
/// Largest body: the padded maximum minus the header and the mandatory 0x80 byte.
pub const MAX_BODY_LEN: usize = MAX_PADDED_LEN - HEADER_LEN - 1;
/// Length of a message id.
pub const MESSAGE_ID_LEN: usize = 16;

/// A message id: 16 random bytes chosen by the sender. Together with the sender's name it
/// is the de-duplication key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(pub [u8; MESSAGE_ID_LEN]);

impl MessageId {
    /// A fresh random id from the OS random source.
    pub fn random() -> Self {
        use rand::{RngCore, TryRngCore};
        let mut id = [0u8; MESSAGE_ID_LEN];
        rand::rngs::OsRng.unwrap_err().fill_bytes(&mut id);
        Self(id)
    }
}

impl fmt::Debug for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MessageId(")?;
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        write!(f, ")")
    }
}

/// What the body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ContentType {
    /// Human text, UTF-8 (the client checks).
    Text = 1,
    /// A delivery life-cycle event (postern-deliveries encodes the body).
    DeliveryEvent = 2,
    /// A receipt for earlier message ids.
    Receipt = 3,
}

impl ContentType {
    /// The wire byte.
    pub fn to_byte(self) -> u8 {
        self as u8
    }

    /// Parses the wire byte.
    pub fn from_byte(b: u8) -> Option<Self> {
        match b {
            1 => Some(Self::Text),
            2 => Some(Self::DeliveryEvent),
            3 => Some(Self::Receipt),
            _ => None,
        }
    }
}

/// The plaintext structure of one message. The body is wiped on drop and never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Plaintext {
    /// Sender-chosen random id, for de-duplication.
    pub id: MessageId,
    /// What the body is.
    pub content_type: ContentType,
    /// When the sender sent it (unix ms, sender's clock).
    pub sent_at_ms: u64,
    /// When every copy must be deleted (unix ms).
    pub expires_at_ms: u64,
    /// The content.
    pub body: Vec<u8>,
}

impl Drop for Plaintext {
    fn drop(&mut self) {
        self.body.zeroize();
    }
}

impl fmt::Debug for Plaintext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Plaintext")
            .field("id", &self.id)
            .field("content_type", &self.content_type)
            .field("sent_at_ms", &self.sent_at_ms)
            .field("expires_at_ms", &self.expires_at_ms)
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// A plaintext structure could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlaintextError {
    /// Shorter than the fixed header plus one padding block boundary.
    #[error("plaintext truncated: {len} bytes")]
    Truncated {
        /// Bytes offered.
        len: usize,
    },
    /// Longer than [`MAX_PADDED_LEN`], or a body longer than [`MAX_BODY_LEN`].
    #[error("plaintext oversized: {len} bytes, at most {max}")]
    Oversized {
        /// Bytes offered (or body length when encoding).
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The length is not a multiple of [`PAD_BLOCK`].
    #[error("plaintext length {len} is not a multiple of {PAD_BLOCK}")]
    NotPadded {
        /// Bytes offered.
        len: usize,
    },
    /// An unknown version byte.
    #[error("unsupported plaintext version {0}")]
    UnsupportedVersion(u8),
    /// An unknown content type byte.
    #[error("unknown content type {0}")]
    UnknownContentType(u8),
    /// The body length field points past the end.
    #[error("body length {body_len} does not fit in {len} bytes")]
    BodyLength {
        /// Declared body length.
        body_len: usize,
        /// Bytes available.
        len: usize,
    },
    /// The padding is not `0x80 0x00*`.
    #[error("bad padding")]
    BadPadding,
    /// `expires_at` is not after `sent_at`.
    #[error("expires_at is not after sent_at")]
    BadExpiry,
}

impl Plaintext {
    /// Encodes and pads the structure.
    pub fn encode(&self) -> Result<Vec<u8>, PlaintextError> {
        if self.body.len() > MAX_BODY_LEN {
            return Err(PlaintextError::Oversized {
                len: self.body.len(),
                max: MAX_BODY_LEN,
            });
        }
        if self.expires_at_ms <= self.sent_at_ms {
            return Err(PlaintextError::BadExpiry);
        }
        let unpadded = HEADER_LEN + self.body.len() + 1;
        let padded = unpadded.div_ceil(PAD_BLOCK) * PAD_BLOCK;
        let mut out = Vec::with_capacity(padded);
        out.push(PLAINTEXT_VERSION);
        out.push(self.content_type.to_byte());
        out.extend_from_slice(&self.id.0);
        out.extend_from_slice(&self.sent_at_ms.to_be_bytes());
        out.extend_from_slice(&self.expires_at_ms.to_be_bytes());
        // MAX_BODY_LEN < u32::MAX, checked above.
        out.extend_from_slice(&(self.body.len() as u32).to_be_bytes());
        out.extend_from_slice(&self.body);
        out.push(0x80);
        out.resize(padded, 0);
        Ok(out)
    }

    /// Decodes a padded structure, checking every length, byte and the padding.
    pub fn decode(bytes: &[u8]) -> Result<Self, PlaintextError> {
        let len = bytes.len();
        if len > MAX_PADDED_LEN {
            return Err(PlaintextError::Oversized {
                len,
                max: MAX_PADDED_LEN,
            });
        }
        if len < PAD_BLOCK {
            return Err(PlaintextError::Truncated { len });
        }
        if !len.is_multiple_of(PAD_BLOCK) {
            return Err(PlaintextError::NotPadded { len });
        }
        let (header, rest) = bytes.split_at(HEADER_LEN);
        if header[0] != PLAINTEXT_VERSION {
            return Err(PlaintextError::UnsupportedVersion(header[0]));
        }
        let content_type = ContentType::from_byte(header[1])
            .ok_or(PlaintextError::UnknownContentType(header[1]))?;
        let mut id = [0u8; MESSAGE_ID_LEN];
        id.copy_from_slice(&header[2..18]);
        let sent_at_ms = u64::from_be_bytes(arr8(&header[18..26]));
        let expires_at_ms = u64::from_be_bytes(arr8(&header[26..34]));
        let body_len =
            u32::from_be_bytes([header[34], header[35], header[36], header[37]]) as usize;
        // The body must leave room for the 0x80 marker.
        if body_len >= rest.len() {
            return Err(PlaintextError::BodyLength {
                body_len,
                len: rest.len(),
            });
        }
        let (body, padding) = rest.split_at(body_len);
        if padding[0] != 0x80 || padding[1..].iter().any(|&b| b != 0) {
            return Err(PlaintextError::BadPadding);
        }
        // Canonical: the padding is shorter than one block.
        if padding.len() > PAD_BLOCK {
            return Err(PlaintextError::BadPadding);
        }
        if expires_at_ms <= sent_at_ms {
            return Err(PlaintextError::BadExpiry);
        }
        Ok(Self {
            id: MessageId(id),
            content_type,
            sent_at_ms,
            expires_at_ms,
            body: body.to_vec(),
        })
    }
}

fn arr8(s: &[u8]) -> [u8; 8] {
    let mut a = [0u8; 8];
    a.copy_from_slice(s);
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample(body: Vec<u8>) -> Plaintext {
        Plaintext {
            id: MessageId([7; 16]),
            content_type: ContentType::Text,
            sent_at_ms: 1_000,
            expires_at_ms: 2_000,
            body,
        }
    }

    #[test]
    fn every_encoding_is_block_aligned_and_round_trips() {
        for n in [0, 1, 217, 218, 219, 1024, MAX_BODY_LEN] {
            let p = sample(vec![0xAB; n]);
            let enc = p.encode().unwrap();
            assert_eq!(enc.len() % PAD_BLOCK, 0, "body {n}");
            assert!(enc.len() <= MAX_PADDED_LEN);
            assert_eq!(Plaintext::decode(&enc).unwrap(), p);
        }
    }

    #[test]
    fn oversized_body_and_input_are_refused() {
        assert!(matches!(
            sample(vec![0; MAX_BODY_LEN + 1]).encode(),
            Err(PlaintextError::Oversized { .. })
        ));
        assert!(matches!(
            Plaintext::decode(&vec![0; MAX_PADDED_LEN + PAD_BLOCK]),
            Err(PlaintextError::Oversized { .. })
        ));
    }

    #[test]
    fn truncated_and_unaligned_input_is_refused() {
        let enc = sample(b"hello".to_vec()).encode().unwrap();
        assert!(matches!(
            Plaintext::decode(&enc[..100]),
            Err(PlaintextError::Truncated { .. })
        ));
        let mut long = sample(vec![1; 300]).encode().unwrap();
        long.pop();
        assert!(matches!(
            Plaintext::decode(&long),
            Err(PlaintextError::NotPadded { .. })
        ));
    }

    #[test]
    fn a_body_length_past_the_end_or_bad_padding_is_refused() {
        let mut enc = sample(b"hello".to_vec()).encode().unwrap();
        enc[34..38].copy_from_slice(&(10_000u32).to_be_bytes());
        assert!(matches!(
            Plaintext::decode(&enc),
            Err(PlaintextError::BodyLength { .. })
        ));
        let mut enc = sample(b"hello".to_vec()).encode().unwrap();
        let last = enc.len() - 1;
        enc[last] = 1;
        assert_eq!(Plaintext::decode(&enc), Err(PlaintextError::BadPadding));
        // Over-padding (a whole extra block of zeros) is not canonical.
        let mut enc = sample(b"hello".to_vec()).encode().unwrap();
        enc.extend_from_slice(&[0; PAD_BLOCK]);
        assert_eq!(Plaintext::decode(&enc), Err(PlaintextError::BadPadding));
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = Plaintext::decode(&bytes);
        }

        #[test]
        fn round_trip(body in proptest::collection::vec(any::<u8>(), 0..3000), ct in 1u8..=3, sent in 0u64..u64::MAX / 2, ttl in 1u64..1_000_000) {
            let p = Plaintext {
                id: MessageId([3; 16]),
                content_type: ContentType::from_byte(ct).unwrap(),
                sent_at_ms: sent,
                expires_at_ms: sent + ttl,
                body,
            };
            prop_assert_eq!(Plaintext::decode(&p.encode().unwrap()).unwrap(), p);
        }
    }
}
