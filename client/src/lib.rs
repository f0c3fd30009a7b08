//! The `postern` command-line client.
//!
//! Today it holds `postern demo`, which runs the parts of Postern that exist, and
//! `postern org`, the org administrator's commands. Member commands (init, enroll, send,
//! inbox, ...) arrive with the client issue.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod demo;
pub mod org;
pub mod passphrase;
pub mod secure_file;
