//! The `postern` command-line client.
//!
//! [`cli`] is the command line itself; `postern org` ([`org`]) holds the org
//! administrator's commands; [`member`] is the member's account (init, enroll, send, inbox, watch,
//! contacts, verify, status, wipe) as a library, which [`member_cli`] exposes as
//! commands; [`delivery`] keeps a member's deliveries and exchanges their events, which
//! [`delivery_cli`] exposes as `postern delivery`. [`directory`] is the sealed org
//! directory format. The guided demo is its own crate, `postern-demo`, so that this
//! binary never links the relay server.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cli;
mod cli_util;
pub mod delivery;
pub mod delivery_cli;
pub mod directory;
pub mod member;
pub mod member_cli;
pub mod org;
pub mod passphrase;
pub mod secure_file;
