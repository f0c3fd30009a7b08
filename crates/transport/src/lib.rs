//! The client end of a Postern relay connection: pinned-key QUIC, `Hello`, admission with
//! the member's device key, one request per stream, and the push stream. Used by the
//! `postern` CLI, the demo and the tests; the relay keeps the server half.
//!
//! Modules: [`connection`] (the connection and its push stream), [`tls`] (the pinned-key
//! client configuration), [`error`] (what can go wrong).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod connection;
pub mod error;
pub mod tls;

pub use connection::{DeviceSigner, PushStream, RelayConnection, client_endpoint};
pub use error::TransportError;
