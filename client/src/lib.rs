//! The `postern` command-line client.
//!
//! `postern demo` runs the parts of Postern that exist; `postern org` holds the org
//! administrator's commands; [`member`] is the member's account (init, enroll, send,
//! inbox, watch, contacts, verify, status, wipe) as a library, which [`member_cli`]
//! exposes as commands. [`directory`] is the sealed org directory format.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod demo;
pub mod directory;
pub mod member;
pub mod member_cli;
pub mod org;
pub mod passphrase;
pub mod secure_file;
