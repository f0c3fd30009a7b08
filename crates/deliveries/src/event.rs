//! Delivery events and their byte format (`protocol-spec/DELIVERIES.md` §2).
//!
//! An encoded event is `version (0x01) || postcard(fields)`, at most [`MAX_EVENT_LEN`]
//! bytes. It is the body of an end-to-end-encrypted message of content type
//! `DeliveryEvent`. Decoding checks the length first, then the version, then decodes
//! with every string and value validated by its type, then requires the input to be the
//! one canonical encoding of the decoded event (no trailing bytes, no over-long varints).

use std::fmt;

use postern_identity::{Handle, Role};
use serde::{Deserialize, Serialize};

use crate::error::DecodeError;
use crate::handoff::HandoffCode;
use crate::ids::{DeliveryId, EventId};
use crate::values::{Amount, EventText, FamilyRef};

/// Version byte of the event format.
pub const EVENT_VERSION: u8 = 1;
/// Longest encoded event. The largest valid event (a note of [`crate::MAX_TEXT_LEN`]
/// bytes) is about 1,090 bytes.
pub const MAX_EVENT_LEN: usize = 1200;
/// Largest logical clock an event may carry (2^40): far beyond any real delivery, and
/// low enough that a hostile event cannot exhaust the clock.
pub const MAX_CLOCK: u64 = 1 << 40;

/// One event in a delivery's life. Authenticity is the transport's job: before inserting
/// an event, the client checks that `author` and `role` are the sealed sender's
/// certificate's (see [`crate::DeliveryLog::receive`]).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct DeliveryEvent {
    /// The delivery this event belongs to.
    pub delivery: DeliveryId,
    /// Random id: de-duplication key and replay tie-break.
    pub id: EventId,
    /// Lamport clock: one more than the largest clock the author held for this delivery.
    pub clock: u64,
    /// Author's wall clock, unix seconds. For display and retention only, never ordering.
    pub at: u64,
    /// Who recorded it.
    pub author: Handle,
    /// The author's role, from their certificate.
    pub role: Role,
    /// What happened.
    pub kind: EventKind,
}

/// What happened. On the wire, the variant index is a varint in the order below.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum EventKind {
    /// Wire index 0. A coordinator or admin creates the delivery. Carries no hand-off commitment:
    /// that stays in the coordinators' [`crate::CoordinatorSecret`].
    Created {
        /// The recipient family's code.
        family: FamilyRef,
        /// How much.
        amount: Amount,
        /// Hand-off deadline, unix seconds.
        deadline: u64,
    },
    /// Wire index 1. A coordinator or admin assigns (or, before pick-up, reassigns) a courier.
    Assigned {
        /// The courier's handle. The recording client checks that it names a member
        /// whose certificate has the courier role; this crate does not know certificates.
        courier: Handle,
    },
    /// Wire index 2. The assigned courier has the money.
    PickedUp,
    /// Wire index 3. The assigned courier is on the way.
    InTransit,
    /// Wire index 4. The assigned courier claims the hand-off, with the code the family gave.
    HandedOff {
        /// The code as entered by the courier (normalised).
        code: HandoffCode,
    },
    /// Wire index 5. A coordinator or admin confirms a verified hand-off claim.
    Confirmed {
        /// The `HandedOff` event confirmed.
        claim: EventId,
    },
    /// Wire index 6. The delivery failed (assigned courier, coordinator or admin).
    Failed {
        /// Why.
        reason: EventText,
    },
    /// Wire index 7. A coordinator or admin cancels the delivery.
    Cancelled,
    /// Wire index 8. Free text from the assigned courier, a coordinator or an admin.
    Note {
        /// The note.
        text: EventText,
    },
    /// Wire index 9. A coordinator's client tells the courier that a hand-off claim had a wrong code
    /// (or came after the delivery was flagged).
    HandoffRefused {
        /// The `HandedOff` event refused.
        claim: EventId,
        /// Wrong codes counted up to and including that claim.
        failed_attempts: u32,
    },
}

/// The name of an event kind, for errors and display.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum EventName {
    /// [`EventKind::Created`].
    Created,
    /// [`EventKind::Assigned`].
    Assigned,
    /// [`EventKind::PickedUp`].
    PickedUp,
    /// [`EventKind::InTransit`].
    InTransit,
    /// [`EventKind::HandedOff`].
    HandedOff,
    /// [`EventKind::Confirmed`].
    Confirmed,
    /// [`EventKind::Failed`].
    Failed,
    /// [`EventKind::Cancelled`].
    Cancelled,
    /// [`EventKind::Note`].
    Note,
    /// [`EventKind::HandoffRefused`].
    HandoffRefused,
}

impl EventName {
    /// The lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Assigned => "assigned",
            Self::PickedUp => "picked-up",
            Self::InTransit => "in-transit",
            Self::HandedOff => "handed-off",
            Self::Confirmed => "confirmed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::Note => "note",
            Self::HandoffRefused => "handoff-refused",
        }
    }
}

impl fmt::Display for EventName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl EventKind {
    /// This kind's name.
    pub fn name(&self) -> EventName {
        match self {
            Self::Created { .. } => EventName::Created,
            Self::Assigned { .. } => EventName::Assigned,
            Self::PickedUp => EventName::PickedUp,
            Self::InTransit => EventName::InTransit,
            Self::HandedOff { .. } => EventName::HandedOff,
            Self::Confirmed { .. } => EventName::Confirmed,
            Self::Failed { .. } => EventName::Failed,
            Self::Cancelled => EventName::Cancelled,
            Self::Note { .. } => EventName::Note,
            Self::HandoffRefused { .. } => EventName::HandoffRefused,
        }
    }
}

impl DeliveryEvent {
    /// A new event with a fresh random id.
    pub fn new(
        delivery: DeliveryId,
        clock: u64,
        at: u64,
        author: Handle,
        role: Role,
        kind: EventKind,
    ) -> Self {
        Self {
            delivery,
            id: EventId::random(),
            clock,
            at,
            author,
            role,
            kind,
        }
    }

    /// Encodes the event: `0x01 || postcard(fields)`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![EVENT_VERSION];
        // Serializing into a Vec cannot fail for these types (no maps, no
        // unknown-length sequences); an empty body would fail decoding, never panic.
        out.extend(postcard::to_stdvec(self).unwrap_or_default());
        out
    }

    /// Decodes an encoded event. Never panics; every malformed input is a
    /// [`DecodeError`].
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() > MAX_EVENT_LEN {
            return Err(DecodeError::TooLong {
                len: bytes.len(),
                max: MAX_EVENT_LEN,
            });
        }
        let (&version, body) = bytes.split_first().ok_or(DecodeError::Empty)?;
        if version != EVENT_VERSION {
            return Err(DecodeError::UnsupportedVersion(version));
        }
        let (event, rest): (Self, &[u8]) =
            postcard::take_from_bytes(body).map_err(|_| DecodeError::Malformed)?;
        if !rest.is_empty() {
            return Err(DecodeError::TrailingBytes);
        }
        if event.clock > MAX_CLOCK {
            return Err(DecodeError::ClockOutOfRange);
        }
        if event.encode() != bytes {
            return Err(DecodeError::NonCanonical);
        }
        Ok(event)
    }
}
