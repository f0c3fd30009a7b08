//! End-to-end encryption for Postern over Signal's own code (`libsignal-protocol`):
//! PQXDH session set-up, the Double Ratchet with SPQR, sealed sender and safety numbers.
//!
//! **Not implemented yet** (issue "End-to-end encryption on libsignal"). This crate
//! currently only pins and builds libsignal, so that the build (including its `protoc`
//! step) is proven on a fresh machine. It exposes nothing that pretends to encrypt.

#![forbid(unsafe_code)]

/// The libsignal protocol version this crate is built against, from the pinned crate.
pub const LIBSIGNAL_PIN: &str = "libsignal-protocol-syft =0.85.3-beta.5 (Signal v0.85.3)";

#[doc(hidden)]
pub use libsignal_protocol as _libsignal;
