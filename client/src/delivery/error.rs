//! The delivery library's one error type.

use super::*;

/// A delivery command failed. Every message names the cause and what to do next.
#[derive(Debug, thiserror::Error)]
#[cfg_attr(
    test,
    derive(strum::EnumDiscriminants),
    strum_discriminants(derive(strum::EnumIter))
)]
pub enum DeliveryError {
    /// The account, the relay or the vault failed.
    #[error(transparent)]
    Member(#[from] MemberError),
    /// The delivery's state machine refused the action.
    #[error("{0}: nothing was recorded or sent; check the delivery with `postern delivery show`")]
    Refused(#[from] LogError),
    /// A value (family reference, amount, currency, code, text) is malformed.
    #[error("{0}")]
    BadValue(#[from] postern_deliveries::ValueError),
    /// This member's role may not do this.
    #[error("your role ({role}) may not {action}: {fix}")]
    NotPermitted {
        /// The member's role.
        role: Role,
        /// What was attempted.
        action: &'static str,
        /// Who can.
        fix: &'static str,
    },
    /// The member named as courier does not hold a courier certificate.
    #[error(
        "{handle} is enrolled as {role}, not as a courier: assign a member whose certificate has the courier role"
    )]
    NotACourier {
        /// The handle given.
        handle: String,
        /// Its certificate role.
        role: Role,
    },
    /// The member named as coordinator does not hold a coordinator or admin certificate.
    #[error(
        "{handle} is enrolled as {role}: only coordinators and admins may hold a delivery's hand-off commitment; name a coordinator"
    )]
    NotACoordinator {
        /// The handle given.
        handle: String,
        /// Its certificate role.
        role: Role,
    },
    /// No such delivery here (or not visible to this member).
    #[error(
        "no delivery {0} on this device: check the id with `postern delivery list` (a courier sees only deliveries assigned to them)"
    )]
    UnknownDelivery(String),
    /// The deadline is not acceptable.
    #[error(
        "bad deadline {0:?}: give an RFC 3339 time in the future (2026-05-01T18:00:00Z) or a duration from now (36h, 3d)"
    )]
    BadDeadline(String),
    /// Confirming needs a verified hand-off.
    #[error(
        "delivery {0} has no hand-off with the right code to confirm: wait for the courier's hand-off (`postern delivery show`), or close it with `failed --note REASON` or `cancelled`"
    )]
    NothingToConfirm(String),
    /// Too many coordinators.
    #[error("at most {MAX_COORDINATORS} coordinators per delivery")]
    TooManyCoordinators,
    /// A change was recorded here but the relay did not accept all its messages yet.
    #[error(
        "recorded on this device, but not yet stored on the relay for {0} (relay unreachable or connection lost): it is sent by your next `postern delivery` command"
    )]
    NotYetSent(String),
    /// The stored record is damaged.
    #[error(
        "the deliveries record in the vault is damaged ({0}): nothing was changed; restore the vault from a backup or ask a coordinator to resend"
    )]
    Corrupt(&'static str),
}
