//! The Postern wire protocol, sans-IO: typed requests, responses and pushes; framing with
//! a size limit checked before allocation; envelope padding; identifiers; error codes.
//!
//! No sockets, no async runtime, no cryptography: bytes and values in, bytes and values
//! out. The byte-level specification, with test vectors checked against this crate, is
//! `protocol-spec/SPEC.md`.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod auth;
pub mod bytes;
pub mod error;
pub mod frame;
pub mod ids;
pub mod limits;
pub mod message;
pub mod padding;
pub mod vectors;
pub mod version;

pub use bytes::{BoundedVec, Bytes, FixedBytes};
pub use error::{DecodeError, ErrorCode};
pub use frame::{decode_push, decode_request, decode_response, encode_frame};
pub use ids::{EnvelopeId, HandleTag, MailboxId};
pub use message::{Push, Request, Response};
pub use version::{ALPN, PROTOCOL_VERSION};
