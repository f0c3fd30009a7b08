//! The Postern relay: a QUIC store-and-forward server that holds padded, sealed-sender
//! envelopes for members of one organisation, hands them over when their owners connect
//! and forgets them on acknowledgement or expiry. It never holds a key that could open
//! the sealed-sender ciphertext inside an envelope (its own epoch keys only seal bodies at
//! rest), and it does not depend on the end-to-end crate at all.
//!
//! Modules follow the shape of a small server: [`cli`] (the command line), [`config`]
//! (the TOML file), [`tls`] (key, certificate, pin), [`store`] (redb with group commit
//! and epoch keys), `admission` (who may use it), `handler` (request → response, without
//! sockets or clock), `state` (what connections share and what each holds), [`server`]
//! (QUIC accept loop and shutdown), [`metrics`] (aggregate counters only).
//! The client end is `postern-transport`. With the `testing` feature, `testing` is the
//! one harness every test that needs a relay uses.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub(crate) mod admission;
pub(crate) mod budget;
pub mod cli;
pub mod config;
pub(crate) mod handler;
pub(crate) mod hub;
pub mod metrics;
pub mod operator;
#[cfg(any(test, feature = "testing"))]
pub mod recorder;
pub mod relay;
pub mod server;
pub(crate) mod state;
pub mod store;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod tls;
