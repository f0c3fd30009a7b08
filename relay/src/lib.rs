//! The Postern relay: a QUIC store-and-forward server.
//!
//! **Not implemented yet** (issue "Relay: the QUIC store-and-forward server").

#![forbid(unsafe_code)]
