//! The crate's typed errors.

use postern_identity::{Handle, Role};

use crate::event::EventName;
use crate::ids::{DeliveryId, EventId};
use crate::state::Status;

/// A value (id, family reference, currency, amount, text, hand-off code) is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    /// Not 26 characters of canonical base32.
    #[error("a {what} is 26 characters of base32 (A-Z, 2-7)")]
    BadId {
        /// Which kind of id.
        what: &'static str,
    },
    /// Not a family code.
    #[error(
        "a family reference is a code of 3-24 characters from A-Z 0-9 - (never a name); check what was typed"
    )]
    BadFamilyRef,
    /// Not three upper-case letters.
    #[error("a currency is a three-letter upper-case ISO 4217 code such as USD")]
    BadCurrency,
    /// A well-formed code this crate does not know the minor unit of.
    #[error("unsupported currency; use one of CNY, EUR, GBP, JPY, KRW, RUB, USD")]
    UnknownCurrency,
    /// Not a plain decimal number.
    #[error(
        "an amount is a plain decimal such as 1500.50: digits, at most one '.', no sign or separators"
    )]
    BadAmount,
    /// More fraction digits than the currency has.
    #[error("{currency} amounts have at most {max} decimal places")]
    TooManyDecimals {
        /// The currency code.
        currency: String,
        /// Its minor-unit exponent.
        max: u8,
    },
    /// The amount does not fit 64-bit minor units.
    #[error("the amount is too large")]
    AmountOverflow,
    /// A delivery of nothing.
    #[error("the amount must be greater than zero")]
    ZeroAmount,
    /// Empty or too long text.
    #[error("text must be 1 to {max} bytes and not blank")]
    BadTextLength {
        /// The limit in bytes.
        max: usize,
    },
    /// Control characters or bidirectional overrides.
    #[error("text may not contain control characters or direction overrides")]
    ForbiddenCharacter,
    /// Not a hand-off code.
    #[error(
        "a hand-off code is 16 digits, usually written in four groups of four (1234-5678-9012-3456)"
    )]
    BadHandoffCode,
    /// The code's check digit does not match: a digit was misheard or mistyped.
    #[error(
        "the hand-off code does not check out: a digit was probably misheard; ask the family to read it again"
    )]
    HandoffCheckDigit,
    /// Not a status name.
    #[error(
        "unknown status; use assigned, picked-up, in-transit, handed-off, confirmed, failed or cancelled"
    )]
    BadStatus,
}

/// Bytes are not a valid encoded event or coordinator secret. Decoders return this for
/// every malformed input and never panic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Empty input.
    #[error("empty input")]
    Empty,
    /// Longer than the format allows.
    #[error("{len} bytes, at most {max}")]
    TooLong {
        /// Bytes offered.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// An unknown format version byte.
    #[error("unsupported version {0}")]
    UnsupportedVersion(u8),
    /// The fields do not decode (truncated, unknown variant, invalid value).
    #[error("malformed encoding")]
    Malformed,
    /// Bytes after the end of the fields.
    #[error("trailing bytes")]
    TrailingBytes,
    /// Decodes, but is not the one canonical encoding of its fields.
    #[error("non-canonical encoding")]
    NonCanonical,
    /// The logical clock is beyond [`crate::MAX_CLOCK`].
    #[error("logical clock out of range")]
    ClockOutOfRange,
}

/// Why an event was not applied at its position in the replay order. Rejected events
/// stay in the log and are listed in [`crate::DeliveryState::rejected`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    /// An event before (in replay order) any valid `created`.
    #[error("{event} for a delivery that has not been created (yet)")]
    NotCreated {
        /// The event.
        event: EventName,
    },
    /// A second `created`.
    #[error("the delivery was already created")]
    AlreadyCreated,
    /// The event is not allowed from the current status.
    #[error("{event} is not allowed when the delivery is {from}")]
    IllegalTransition {
        /// Status at that point.
        from: Status,
        /// The refused event.
        event: EventName,
    },
    /// The author's role may not author this event.
    #[error("{handle} ({role}) may not record {event}")]
    NotAuthorized {
        /// The author.
        handle: Handle,
        /// The author's role.
        role: Role,
        /// The refused event.
        event: EventName,
    },
    /// A courier acted on a delivery not (or no longer) assigned to them.
    #[error("{handle} is not the courier assigned to this delivery")]
    NotAssignedCourier {
        /// The courier who tried.
        handle: Handle,
    },
    /// The hand-off code does not match the coordinators' commitment.
    #[error("wrong hand-off code ({failed_attempts} wrong so far)")]
    WrongHandoffCode {
        /// Wrong codes so far, this one included.
        failed_attempts: u32,
    },
    /// Too many wrong codes: the delivery is flagged and takes no more hand-off attempts.
    #[error(
        "the delivery is flagged after repeated wrong hand-off codes; a coordinator must investigate"
    )]
    HandoffFlagged,
    /// A verdict names a hand-off claim this log does not hold (or not as a claim).
    #[error("no hand-off claim {claim}")]
    UnknownClaim {
        /// The named claim.
        claim: EventId,
    },
    /// A coordinator's verdict disagrees with this client's own verification.
    #[error("the verdict on hand-off claim {claim} contradicts the commitment")]
    VerdictContradicts {
        /// The named claim.
        claim: EventId,
    },
    /// A second verdict on a claim that already has one (two coordinators answered at
    /// once); harmless.
    #[error("hand-off claim {claim} already has a verdict")]
    DuplicateVerdict {
        /// The named claim.
        claim: EventId,
    },
    /// Two different events share one event id; all of them are rejected.
    #[error("another, different event has the same id")]
    ConflictingEventId,
}

/// An event could not be added to a log, or a local action could not be recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogError {
    /// The event belongs to another delivery.
    #[error("event for delivery {found}, this log is {expected}")]
    WrongDelivery {
        /// This log's delivery.
        expected: DeliveryId,
        /// The event's delivery.
        found: DeliveryId,
    },
    /// The author named in the event is not the authenticated sender.
    #[error(
        "the event claims to be by {claimed} ({claimed_role}) but was sent by {sender} ({sender_role})"
    )]
    AuthorMismatch {
        /// Author in the event.
        claimed: Handle,
        /// Role in the event.
        claimed_role: Role,
        /// Authenticated sender.
        sender: Handle,
        /// Authenticated sender's role.
        sender_role: Role,
    },
    /// The log holds [`crate::MAX_EVENTS_PER_DELIVERY`] events already.
    #[error("the delivery has too many events ({max})")]
    Full {
        /// The limit.
        max: usize,
    },
    /// The logical clock cannot advance further.
    #[error("the delivery's logical clock is exhausted")]
    ClockExhausted,
    /// The secret is for another delivery.
    #[error("coordinator secret for delivery {found}, this log is {expected}")]
    SecretForOtherDelivery {
        /// This log's delivery.
        expected: DeliveryId,
        /// The secret's delivery.
        found: DeliveryId,
    },
    /// Confirming or refusing a hand-off needs the delivery's coordinator secret, so that
    /// the verdict rests on a verified code.
    #[error(
        "this client does not hold the hand-off commitment for delivery {delivery}; ask the coordinator who created it to share it"
    )]
    SecretRequired {
        /// The delivery.
        delivery: DeliveryId,
    },
    /// No log for this delivery.
    #[error("no delivery {0}")]
    UnknownDelivery(DeliveryId),
    /// The event would be refused by the state machine.
    #[error(transparent)]
    Refused(#[from] TransitionError),
    /// The bytes are not an event.
    #[error("not a delivery event: {0}")]
    Decode(#[from] DecodeError),
}
