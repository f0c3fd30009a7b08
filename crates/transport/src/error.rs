//! What can go wrong talking to a relay.

use postern_protocol::{DecodeError, ErrorCode};

/// Talking to the relay failed.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The relay address did not resolve.
    #[error("cannot resolve {0}")]
    Resolve(String),
    /// QUIC/TLS set-up or the handshake failed; a wrong key pin shows up here.
    #[error("cannot connect to the relay: {0}")]
    Connect(String),
    /// The connection broke.
    #[error("connection to the relay lost: {0}")]
    Connection(String),
    /// The relay answered with an error.
    #[error("relay refused: {0}")]
    Refused(ErrorCode),
    /// The relay's answer did not decode.
    #[error("relay sent a bad frame: {0}")]
    BadFrame(#[from] DecodeError),
    /// The relay answered with a response of the wrong kind.
    #[error("unexpected response from the relay")]
    UnexpectedResponse,
    /// The relay took too long.
    #[error("relay did not answer in time")]
    Timeout,
}
