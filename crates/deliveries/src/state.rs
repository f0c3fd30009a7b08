//! The state machine: [`Status`], the derived [`DeliveryState`], and the replay that
//! applies one event at a time (`protocol-spec/DELIVERIES.md` §3).

use std::fmt;
use std::str::FromStr;

use postern_identity::{Handle, Role};

use crate::MAX_HANDOFF_ATTEMPTS;
use crate::error::{TransitionError, ValueError};
use crate::event::{DeliveryEvent, EventKind, EventName};
use crate::handoff::CoordinatorSecret;
use crate::ids::{DeliveryId, EventId};
use crate::values::{Amount, EventText, FamilyRef};

/// Where a delivery is.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Status {
    /// No valid `created` event yet (events can arrive before it).
    Incomplete,
    /// Created, no courier.
    Requested,
    /// A courier is assigned.
    Assigned,
    /// The courier has the money.
    PickedUp,
    /// The courier is on the way.
    InTransit,
    /// Seen without the coordinator secret: the courier claimed the hand-off and no
    /// coordinator has confirmed or refused it yet.
    HandoffClaimed,
    /// Seen with the coordinator secret: a claim carried the right code.
    HandedOff,
    /// A coordinator confirmed the verified hand-off. Terminal.
    Confirmed,
    /// Failed. Terminal.
    Failed,
    /// Cancelled. Terminal.
    Cancelled,
}

impl Status {
    /// Confirmed, failed or cancelled: nothing more can happen, and the delivery is
    /// purged after the retention period.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Confirmed | Self::Failed | Self::Cancelled)
    }

    /// The lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Incomplete => "incomplete",
            Self::Requested => "requested",
            Self::Assigned => "assigned",
            Self::PickedUp => "picked-up",
            Self::InTransit => "in-transit",
            Self::HandoffClaimed => "handoff-claimed",
            Self::HandedOff => "handed-off",
            Self::Confirmed => "confirmed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Status {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, ValueError> {
        [
            Self::Requested,
            Self::Assigned,
            Self::PickedUp,
            Self::InTransit,
            Self::HandoffClaimed,
            Self::HandedOff,
            Self::Confirmed,
            Self::Failed,
            Self::Cancelled,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
        .ok_or(ValueError::BadStatus)
    }
}

/// What the `created` event said.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct DeliveryDetails {
    /// The recipient family's code.
    pub family: FamilyRef,
    /// How much.
    pub amount: Amount,
    /// Hand-off deadline, unix seconds.
    pub deadline: u64,
    /// The coordinator or admin who created it.
    pub created_by: Handle,
}

/// What became of one hand-off claim (`handed-off` event) in this member's view.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ClaimOutcome {
    /// Checked against the commitment: the right code.
    Verified,
    /// Checked against the commitment: a wrong code, the `n`th.
    WrongCode {
        /// Wrong codes so far, this one included.
        failed_attempts: u32,
    },
    /// Not checked: the delivery was already flagged.
    RefusedFlagged {
        /// Wrong codes counted when it arrived.
        failed_attempts: u32,
    },
    /// Seen without the secret; no verdict yet.
    Pending,
    /// Seen without the secret; a coordinator refused it.
    Refused,
    /// Seen without the secret; a coordinator confirmed it.
    Confirmed,
}

/// One hand-off claim.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct HandoffClaim {
    /// The `handed-off` event.
    pub event: EventId,
    /// What became of it.
    pub outcome: ClaimOutcome,
    /// Whether a coordinator's verdict (`handoff-refused` or `confirmed`) naming it was
    /// applied.
    pub verdict_applied: bool,
}

/// An event that did not apply at its position in the replay order.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct RejectedEvent {
    /// The event.
    pub event: EventId,
    /// Its kind.
    pub name: EventName,
    /// Its author.
    pub author: Handle,
    /// Why it did not apply.
    pub reason: TransitionError,
}

/// One applied event, in replay order.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct HistoryEntry {
    /// The event.
    pub event: EventId,
    /// Its kind.
    pub name: EventName,
    /// Its author.
    pub author: Handle,
    /// The author's role.
    pub role: Role,
    /// Its Lamport clock.
    pub clock: u64,
    /// Its author's wall clock (unix seconds), for display.
    pub at: u64,
    /// Note text or failure reason, if any.
    pub text: Option<EventText>,
    /// Status after the event.
    pub status: Status,
}

/// A delivery's state, derived from the events a member holds. Two members holding the
/// same events, both with or both without the [`CoordinatorSecret`], derive equal
/// states, whatever order the events arrived in.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct DeliveryState {
    /// The delivery.
    pub id: DeliveryId,
    /// Current status.
    pub status: Status,
    /// From the `created` event (`None` while [`Status::Incomplete`]).
    pub details: Option<DeliveryDetails>,
    /// The assigned courier.
    pub courier: Option<Handle>,
    /// Set after [`MAX_HANDOFF_ATTEMPTS`] wrong hand-off codes; hand-off attempts are
    /// refused from then on.
    pub flagged: bool,
    /// Wrong hand-off codes counted (with the secret: by verification; without it: as
    /// reported by coordinators' `handoff-refused` verdicts).
    pub failed_handoff_attempts: u32,
    /// Whether this view checked hand-off codes against the commitment.
    pub verified_view: bool,
    /// Every hand-off claim, in replay order.
    pub claims: Vec<HandoffClaim>,
    /// The failure reason, if failed.
    pub failure_reason: Option<EventText>,
    /// Applied events, in replay order.
    pub history: Vec<HistoryEntry>,
    /// Events that did not apply, in replay order.
    pub rejected: Vec<RejectedEvent>,
    /// Largest author wall-clock time among applied events (unix seconds).
    pub last_activity_at: u64,
}

impl DeliveryState {
    pub(crate) fn empty(id: DeliveryId, verified_view: bool) -> Self {
        Self {
            id,
            status: Status::Incomplete,
            details: None,
            courier: None,
            flagged: false,
            failed_handoff_attempts: 0,
            verified_view,
            claims: Vec::new(),
            failure_reason: None,
            history: Vec::new(),
            rejected: Vec::new(),
            last_activity_at: 0,
        }
    }

    /// Whether `handle` with `role` may see this delivery: coordinators and admins see
    /// every delivery; a courier only one currently assigned to them.
    pub fn visible_to(&self, handle: &Handle, role: Role) -> bool {
        match role {
            Role::Admin | Role::Coordinator => true,
            Role::Courier => self.courier.as_ref() == Some(handle),
        }
    }

    /// The verified claim, in a view with the secret.
    pub fn verified_claim(&self) -> Option<EventId> {
        self.claims
            .iter()
            .find(|c| c.outcome == ClaimOutcome::Verified)
            .map(|c| c.event)
    }

    /// Claims refused by verification that no `handoff-refused` verdict names yet: the
    /// coordinator's client sends one for each so that the courier learns of it. None
    /// once the delivery is closed.
    pub fn refusals_due(&self) -> Vec<(EventId, u32)> {
        if self.status.is_terminal() {
            return Vec::new();
        }
        self.claims
            .iter()
            .filter(|c| !c.verdict_applied)
            .filter_map(|c| match c.outcome {
                ClaimOutcome::WrongCode { failed_attempts }
                | ClaimOutcome::RefusedFlagged { failed_attempts } => {
                    Some((c.event, failed_attempts))
                }
                _ => None,
            })
            .collect()
    }

    fn claim_mut(&mut self, id: &EventId) -> Option<&mut HandoffClaim> {
        self.claims.iter_mut().find(|c| &c.event == id)
    }

    /// Applies one event at the end of the replay. On error the state is unchanged,
    /// except that a wrong hand-off code is counted (and may flag the delivery) and
    /// recorded as a claim.
    pub(crate) fn apply(
        &mut self,
        ev: &DeliveryEvent,
        secret: Option<&CoordinatorSecret>,
    ) -> Result<(), TransitionError> {
        let name = ev.kind.name();
        let from = self.status;
        let illegal = || TransitionError::IllegalTransition { from, event: name };
        let coordinator = matches!(ev.role, Role::Admin | Role::Coordinator);
        let assigned_courier =
            ev.role == Role::Courier && self.courier.as_ref() == Some(&ev.author);

        if from == Status::Incomplete && name != EventName::Created {
            return Err(TransitionError::NotCreated { event: name });
        }
        // Who may record what.
        let authorized = match name {
            EventName::Created
            | EventName::Assigned
            | EventName::Confirmed
            | EventName::Cancelled
            | EventName::HandoffRefused => coordinator,
            EventName::PickedUp | EventName::InTransit | EventName::HandedOff => {
                ev.role == Role::Courier
            }
            EventName::Failed | EventName::Note => coordinator || ev.role == Role::Courier,
        };
        if !authorized {
            return Err(TransitionError::NotAuthorized {
                handle: ev.author.clone(),
                role: ev.role,
                event: name,
            });
        }
        if ev.role == Role::Courier && !assigned_courier {
            return Err(TransitionError::NotAssignedCourier {
                handle: ev.author.clone(),
            });
        }
        if from.is_terminal() {
            return Err(illegal());
        }

        let mut text = None;
        match &ev.kind {
            EventKind::Created {
                family,
                amount,
                deadline,
            } => {
                if from != Status::Incomplete {
                    return Err(TransitionError::AlreadyCreated);
                }
                self.details = Some(DeliveryDetails {
                    family: family.clone(),
                    amount: *amount,
                    deadline: *deadline,
                    created_by: ev.author.clone(),
                });
                self.status = Status::Requested;
            }
            EventKind::Assigned { courier } => {
                if !matches!(from, Status::Requested | Status::Assigned) {
                    return Err(illegal());
                }
                self.courier = Some(courier.clone());
                self.status = Status::Assigned;
            }
            EventKind::PickedUp => {
                if from != Status::Assigned {
                    return Err(illegal());
                }
                self.status = Status::PickedUp;
            }
            EventKind::InTransit => {
                if from != Status::PickedUp {
                    return Err(illegal());
                }
                self.status = Status::InTransit;
            }
            EventKind::HandedOff { code } => match secret {
                Some(secret) => {
                    if from != Status::InTransit {
                        return Err(illegal());
                    }
                    if self.flagged {
                        self.push_claim(
                            ev.id,
                            ClaimOutcome::RefusedFlagged {
                                failed_attempts: self.failed_handoff_attempts,
                            },
                        );
                        return Err(TransitionError::HandoffFlagged);
                    }
                    if secret.verify(code) {
                        self.push_claim(ev.id, ClaimOutcome::Verified);
                        self.status = Status::HandedOff;
                    } else {
                        self.failed_handoff_attempts += 1;
                        let failed_attempts = self.failed_handoff_attempts;
                        self.flagged = failed_attempts >= MAX_HANDOFF_ATTEMPTS;
                        self.push_claim(ev.id, ClaimOutcome::WrongCode { failed_attempts });
                        return Err(TransitionError::WrongHandoffCode { failed_attempts });
                    }
                }
                None => {
                    if !matches!(from, Status::InTransit | Status::HandoffClaimed) {
                        return Err(illegal());
                    }
                    if self.flagged {
                        return Err(TransitionError::HandoffFlagged);
                    }
                    self.push_claim(ev.id, ClaimOutcome::Pending);
                    self.status = Status::HandoffClaimed;
                }
            },
            EventKind::HandoffRefused {
                claim,
                failed_attempts,
            } => {
                let verified_view = secret.is_some();
                let c = self
                    .claim_mut(claim)
                    .ok_or(TransitionError::UnknownClaim { claim: *claim })?;
                if c.verdict_applied {
                    return Err(TransitionError::DuplicateVerdict { claim: *claim });
                }
                if verified_view {
                    let agrees = match c.outcome {
                        ClaimOutcome::WrongCode { failed_attempts: n }
                        | ClaimOutcome::RefusedFlagged { failed_attempts: n } => {
                            n == *failed_attempts
                        }
                        _ => false,
                    };
                    if !agrees {
                        return Err(TransitionError::VerdictContradicts { claim: *claim });
                    }
                    c.verdict_applied = true;
                } else {
                    if c.outcome != ClaimOutcome::Pending {
                        return Err(TransitionError::VerdictContradicts { claim: *claim });
                    }
                    c.outcome = ClaimOutcome::Refused;
                    c.verdict_applied = true;
                    self.failed_handoff_attempts =
                        self.failed_handoff_attempts.max(*failed_attempts);
                    self.flagged = self.failed_handoff_attempts >= MAX_HANDOFF_ATTEMPTS;
                    if !self
                        .claims
                        .iter()
                        .any(|c| c.outcome == ClaimOutcome::Pending)
                    {
                        self.status = Status::InTransit;
                    }
                }
            }
            EventKind::Confirmed { claim } => {
                let verified_view = secret.is_some();
                let c = self
                    .claims
                    .iter()
                    .find(|c| &c.event == claim)
                    .ok_or(TransitionError::UnknownClaim { claim: *claim })?;
                let ok = if verified_view {
                    from == Status::HandedOff && c.outcome == ClaimOutcome::Verified
                } else {
                    from == Status::HandoffClaimed && c.outcome == ClaimOutcome::Pending
                };
                if !ok {
                    return Err(match c.outcome {
                        ClaimOutcome::WrongCode { .. }
                        | ClaimOutcome::RefusedFlagged { .. }
                        | ClaimOutcome::Refused => {
                            TransitionError::VerdictContradicts { claim: *claim }
                        }
                        _ => illegal(),
                    });
                }
                if let Some(c) = self.claim_mut(claim) {
                    c.verdict_applied = true;
                    if !verified_view {
                        c.outcome = ClaimOutcome::Confirmed;
                    }
                }
                self.status = Status::Confirmed;
            }
            EventKind::Failed { reason } => {
                self.failure_reason = Some(reason.clone());
                text = Some(reason.clone());
                self.status = Status::Failed;
            }
            EventKind::Cancelled => {
                self.status = Status::Cancelled;
            }
            EventKind::Note { text: t } => {
                text = Some(t.clone());
            }
        }
        self.last_activity_at = self.last_activity_at.max(ev.at);
        self.history.push(HistoryEntry {
            event: ev.id,
            name,
            author: ev.author.clone(),
            role: ev.role,
            clock: ev.clock,
            at: ev.at,
            text,
            status: self.status,
        });
        Ok(())
    }

    fn push_claim(&mut self, event: EventId, outcome: ClaimOutcome) {
        self.claims.push(HandoffClaim {
            event,
            outcome,
            verdict_applied: false,
        });
    }
}
