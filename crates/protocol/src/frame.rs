//! Framing: a frame is a 4-byte big-endian body length, then the body (a postcard-encoded
//! message). The length is checked against [`MAX_FRAME_LEN`] before the body is read or
//! anything is allocated for it, and a body must decode completely: trailing bytes are
//! malformed.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::DecodeError;
use crate::limits::MAX_FRAME_LEN;
use crate::message::{Push, Request, Response};

/// Length of the frame header.
pub const HEADER_LEN: usize = 4;

/// A message could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The encoded body would exceed [`MAX_FRAME_LEN`].
    #[error("encoded message of {len} bytes exceeds the frame limit of {max}")]
    TooLarge {
        /// Encoded body length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Serialization failed (cannot happen for the types of this crate).
    #[error("message could not be serialized")]
    Serialize,
}

/// Parses a frame header, refusing a length above the limit.
pub fn body_len(header: [u8; HEADER_LEN]) -> Result<usize, DecodeError> {
    let len = u32::from_be_bytes(header) as usize;
    if len > MAX_FRAME_LEN {
        return Err(DecodeError::FrameTooLarge {
            len,
            max: MAX_FRAME_LEN,
        });
    }
    Ok(len)
}

/// Encodes a message body (no header).
pub fn encode_body<T: Serialize>(msg: &T) -> Result<Vec<u8>, EncodeError> {
    let body = postcard::to_stdvec(msg).map_err(|_| EncodeError::Serialize)?;
    if body.len() > MAX_FRAME_LEN {
        return Err(EncodeError::TooLarge {
            len: body.len(),
            max: MAX_FRAME_LEN,
        });
    }
    Ok(body)
}

/// Encodes a message as a whole frame: header and body.
pub fn encode_frame<T: Serialize>(msg: &T) -> Result<Vec<u8>, EncodeError> {
    let body = encode_body(msg)?;
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    // Cannot truncate: body.len() <= MAX_FRAME_LEN < u32::MAX.
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// Decodes `body` as a `T`, which must be its only encoding: the whole body, and
/// byte for byte what encoding the decoded value gives back (postcard itself would also
/// take overlong varints, so one message could be spelled several ways).
fn decode_body_as<T: DeserializeOwned + Serialize>(
    body: &[u8],
    what: &'static str,
) -> Result<T, DecodeError> {
    if body.len() > MAX_FRAME_LEN {
        return Err(DecodeError::FrameTooLarge {
            len: body.len(),
            max: MAX_FRAME_LEN,
        });
    }
    match postcard::take_from_bytes::<T>(body) {
        Ok((msg, [])) if postcard::to_allocvec(&msg).is_ok_and(|again| again == body) => Ok(msg),
        _ => Err(DecodeError::Malformed { what }),
    }
}

/// Decodes a request body.
pub fn decode_request(body: &[u8]) -> Result<Request, DecodeError> {
    decode_body_as(body, "request")
}

/// Decodes a response body.
pub fn decode_response(body: &[u8]) -> Result<Response, DecodeError> {
    decode_body_as(body, "response")
}

/// Decodes a push body.
pub fn decode_push(body: &[u8]) -> Result<Push, DecodeError> {
    decode_body_as(body, "push")
}

/// Splits one whole frame (header and body, nothing after) into its body.
pub fn split_frame(frame: &[u8]) -> Result<&[u8], DecodeError> {
    let header: [u8; HEADER_LEN] = frame
        .get(..HEADER_LEN)
        .and_then(|h| h.try_into().ok())
        .ok_or_else(|| DecodeError::Truncated {
            needed: HEADER_LEN.saturating_sub(frame.len()),
        })?;
    let len = body_len(header)?;
    let body = &frame[HEADER_LEN..];
    match body.len().cmp(&len) {
        std::cmp::Ordering::Less => Err(DecodeError::Truncated {
            needed: len - body.len(),
        }),
        std::cmp::Ordering::Greater => Err(DecodeError::Malformed { what: "frame" }),
        std::cmp::Ordering::Equal => Ok(body),
    }
}

/// An incremental decoder for a stream that carries several frames (the push stream).
/// Sans-IO: feed it bytes as they arrive, take frame bodies out.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    /// Bytes received and not yet returned as a frame.
    buf: Vec<u8>,
}

impl FrameDecoder {
    /// A decoder with nothing buffered.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes buffered.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next complete frame body, `Ok(None)` if more bytes are needed. A header above
    /// the limit is an error as soon as the header has arrived; the stream should then be
    /// dropped.
    pub fn next_body(&mut self) -> Result<Option<Vec<u8>>, DecodeError> {
        let Some(header) = self.buf.get(..HEADER_LEN) else {
            return Ok(None);
        };
        let header: [u8; HEADER_LEN] = header
            .try_into()
            .map_err(|_| DecodeError::Malformed { what: "frame" })?;
        let len = body_len(header)?;
        if self.buf.len() < HEADER_LEN + len {
            return Ok(None);
        }
        let body = self.buf[HEADER_LEN..HEADER_LEN + len].to_vec();
        self.buf.drain(..HEADER_LEN + len);
        Ok(Some(body))
    }

    /// Whether the stream ended cleanly (no partial frame left).
    pub fn finish(&self) -> Result<(), DecodeError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let needed = match self.buf.get(..HEADER_LEN) {
            Some(h) => {
                let len = u32::from_be_bytes([h[0], h[1], h[2], h[3]]) as usize;
                (HEADER_LEN + len).saturating_sub(self.buf.len())
            }
            None => HEADER_LEN - self.buf.len(),
        };
        Err(DecodeError::Truncated { needed })
    }
}
