//! The `postern` command-line client.
//!
//! Libraries: [`member`] is the member's account (init, enroll, connect, send, receive,
//! contacts, wipe), one concept per file; [`delivery`] keeps a member's deliveries and
//! exchanges their events; [`org`] is the org administrator's home and commands;
//! [`directory`] is the sealed org directory format.
//!
//! [`cli`] is the command line over them: one [`cli::Context`] (home, passphrase), one
//! runtime and vault opener, one exit-code policy ([`cli::exit`]), and the member
//! (`cli::member`) and delivery (`cli::delivery`) commands. The guided demo is its own
//! crate, `postern-demo`, so that this binary never links the relay server.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cli;
pub mod delivery;
pub mod directory;
pub mod member;
pub mod org;
pub mod passphrase;
pub mod secure_file;
