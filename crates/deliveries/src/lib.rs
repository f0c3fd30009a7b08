//! The courier-delivery domain: validated values, delivery events and their byte format,
//! the state machine that derives a delivery's state from its events, and hand-off
//! proofs. Pure: no I/O, no clock, no network. Specification and test vectors:
//! `protocol-spec/DELIVERIES.md`.
//!
//! # Events and roles
//! Every change is a [`DeliveryEvent`] sent end to end encrypted to the members involved
//! (the coordinators and the assigned courier). Coordinators and admins create, assign,
//! confirm and cancel; only the assigned courier records picked-up, in-transit and
//! handed-off; the assigned courier, coordinators and admins may record failed and
//! notes. The author and role in an event must be the authenticated sender's: use
//! [`DeliveryLog::receive`], which checks them. A courier's listing
//! ([`DeliveryBook::list_for`]) holds only deliveries currently assigned to them.
//!
//! # Convergence
//! Each event carries a random [`EventId`] and a per-delivery Lamport clock. A
//! [`DeliveryLog`] is a set of events; [`DeliveryLog::derive`] sorts them by
//! (clock, event id, encoding) and replays the state machine. An event that does not
//! apply at its position is kept and listed in [`DeliveryState::rejected`] with a typed
//! [`TransitionError`]; it changes nothing (except that a wrong hand-off code is counted).
//! So members holding the same events derive the same state whatever order they
//! arrived in, and duplicates are no-ops.
//!
//! # Hand-off proof
//! On creation the coordinator's client makes a one-time [`HandoffCode`] (16 digits,
//! 15 random and a check digit: 49.8 bits) and a [`CoordinatorSecret`] holding a salted
//! SHA-256 commitment to it. The code goes to the family out of band; the secret stays
//! with coordinators and is never in any event, so a courier cannot brute-force it
//! offline. The courier records `handed-off` with the code the family reads out.
//!
//! * With the secret (coordinators), replay verifies the code: a right code moves the
//!   delivery to [`Status::HandedOff`]; a wrong one is rejected
//!   ([`TransitionError::WrongHandoffCode`]) and counted, and after
//!   [`MAX_HANDOFF_ATTEMPTS`] wrong codes the delivery is `flagged` and further claims
//!   are refused ([`TransitionError::HandoffFlagged`]). The client then sends a
//!   `handoff-refused` verdict for each refused claim
//!   ([`DeliveryLog::record_due_refusals`]), and a coordinator confirms a verified claim
//!   with `confirmed`. Both verdicts can only be recorded by a client holding the secret
//!   ([`LogError::SecretRequired`]).
//! * Without the secret (couriers), a claim shows as [`Status::HandoffClaimed`] until a
//!   coordinator's verdict: `confirmed` closes the delivery, `handoff-refused` returns it
//!   to in-transit and carries the coordinators' count of wrong codes (and so the flag).
//!
//! Members in the same position (all with, or all without, the secret) derive identical
//! states. The two views differ only in how a claim awaiting its verdict is shown; every
//! other event is accepted or refused identically in both, so once the verdicts are in
//! they agree on the status, the count of wrong codes and the flag.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod error;
mod event;
mod handoff;
mod ids;
mod log;
mod state;
mod values;

#[cfg(test)]
mod spec_vectors;
#[cfg(test)]
mod tests;

pub use error::{DecodeError, LogError, TransitionError, ValueError};
pub use event::{DeliveryEvent, EVENT_VERSION, EventKind, EventName, MAX_CLOCK, MAX_EVENT_LEN};
pub use handoff::{
    COMMITMENT_CONTEXT, CoordinatorSecret, HANDOFF_CODE_DIGITS, HANDOFF_GROUP_LEN,
    HANDOFF_RANDOM_DIGITS, HandoffCode, SECRET_ENCODED_LEN, SECRET_VERSION, damm_check_digit,
    handoff_code_entropy_bits,
};
pub use ids::{DeliveryId, EventId, ID_LEN, ID_TEXT_LEN};
pub use log::{DeliveryBook, DeliveryLog, Inserted, NewDelivery};
pub use state::{
    ClaimOutcome, DeliveryDetails, DeliveryState, HandoffClaim, HistoryEntry, RejectedEvent, Status,
};
pub use values::{
    Amount, CURRENCIES, Currency, EventText, FamilyRef, MAX_FAMILY_REF_LEN, MAX_TEXT_LEN,
    MIN_FAMILY_REF_LEN,
};

/// Re-exported so callers need not depend on postern-identity for these two.
pub use postern_identity::{Handle, Role};

/// Wrong hand-off codes after which a delivery is flagged.
pub const MAX_HANDOFF_ATTEMPTS: u32 = 3;
/// Most events one delivery's log holds; more are refused ([`LogError::Full`]).
pub const MAX_EVENTS_PER_DELIVERY: usize = 256;
/// Seconds in a retention day.
pub const SECONDS_PER_DAY: u64 = 86_400;
