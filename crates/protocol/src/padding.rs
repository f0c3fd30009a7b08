//! Envelope padding: every envelope body is exactly one of [`PADDING_BUCKETS`] long, so
//! an observer (or a seized relay) learns only which bucket a message fell into.
//!
//! Scheme (ISO/IEC 7816-4): `content || 0x80 || 0x00 * k`, to the smallest bucket that
//! holds `content.len() + 1` bytes. Unpadding strips trailing zeros and then exactly one
//! `0x80`, so it is unambiguous for any content, including content ending in zeros.

use crate::limits::{MAX_PADDED_CONTENT, PADDING_BUCKETS};

/// Padding or unpadding failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PaddingError {
    /// The content does not fit the largest bucket.
    #[error("content of {len} bytes is larger than the largest envelope ({max} bytes)")]
    TooLarge {
        /// Content length.
        len: usize,
        /// Largest content that fits.
        max: usize,
    },
    /// The padded body is not exactly one bucket long.
    #[error("padded body of {len} bytes is not a bucket size")]
    NotABucket {
        /// Body length.
        len: usize,
    },
    /// No `0x80` marker before the trailing zeros.
    #[error("padding marker missing")]
    NoMarker,
}

/// The bucket a body of `content_len` content bytes is padded to.
pub fn bucket_for(content_len: usize) -> Result<usize, PaddingError> {
    PADDING_BUCKETS
        .iter()
        .copied()
        .find(|&b| b > content_len)
        .ok_or(PaddingError::TooLarge {
            len: content_len,
            max: MAX_PADDED_CONTENT,
        })
}

/// Whether `len` is exactly one of the bucket sizes.
pub fn is_bucket(len: usize) -> bool {
    PADDING_BUCKETS.contains(&len)
}

/// Pads `content` to its bucket.
pub fn pad(content: &[u8]) -> Result<Vec<u8>, PaddingError> {
    let bucket = bucket_for(content.len())?;
    let mut out = Vec::with_capacity(bucket);
    out.extend_from_slice(content);
    out.push(0x80);
    out.resize(bucket, 0);
    Ok(out)
}

/// Strips the padding from a body made by [`pad`].
pub fn unpad(body: &[u8]) -> Result<&[u8], PaddingError> {
    if !is_bucket(body.len()) {
        return Err(PaddingError::NotABucket { len: body.len() });
    }
    let end = body
        .iter()
        .rposition(|&b| b != 0)
        .ok_or(PaddingError::NoMarker)?;
    if body[end] != 0x80 {
        return Err(PaddingError::NoMarker);
    }
    Ok(&body[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn bucket_edges() {
        assert_eq!(pad(&[]).unwrap().len(), 1024);
        assert_eq!(pad(&[1; 1023]).unwrap().len(), 1024);
        assert_eq!(pad(&[1; 1024]).unwrap().len(), 4096);
        assert_eq!(pad(&[1; MAX_PADDED_CONTENT]).unwrap().len(), 65536);
        assert_eq!(
            pad(&[1; MAX_PADDED_CONTENT + 1]),
            Err(PaddingError::TooLarge {
                len: 65536,
                max: 65535
            })
        );
    }

    #[test]
    fn content_ending_in_zeros_and_markers_round_trips() {
        for content in [vec![0u8; 10], vec![0x80; 3], vec![1, 0x80, 0, 0]] {
            assert_eq!(unpad(&pad(&content).unwrap()).unwrap(), &content[..]);
        }
    }

    #[test]
    fn bad_bodies_are_refused() {
        assert_eq!(
            unpad(&[0u8; 1000]),
            Err(PaddingError::NotABucket { len: 1000 })
        );
        assert_eq!(unpad(&[0u8; 1024]), Err(PaddingError::NoMarker));
        let mut body = vec![0u8; 1024];
        body[5] = 0x7f;
        assert_eq!(unpad(&body), Err(PaddingError::NoMarker));
    }

    proptest! {
        #[test]
        fn pad_round_trips_to_a_bucket(content in proptest::collection::vec(any::<u8>(), 0..5000)) {
            let body = pad(&content).unwrap();
            prop_assert!(is_bucket(body.len()));
            prop_assert_eq!(unpad(&body).unwrap(), &content[..]);
        }

        #[test]
        fn unpad_never_panics(body in proptest::collection::vec(any::<u8>(), 0..5000)) {
            let _ = unpad(&body);
        }
    }
}
