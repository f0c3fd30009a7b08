//! [`DeliveryLog`]: the events one member holds for one delivery, and the deterministic
//! replay that derives its state. [`DeliveryBook`]: every delivery a member holds, with
//! the coordinator secrets it holds, role-filtered listing and retention.

use std::collections::BTreeMap;

use postern_identity::{Handle, Role};

use crate::error::{LogError, TransitionError};
use crate::event::{DeliveryEvent, EventKind, MAX_CLOCK};
use crate::handoff::{CoordinatorSecret, HandoffCode};
use crate::ids::{DeliveryId, EventId};
use crate::state::{DeliveryState, RejectedEvent, Status};
use crate::values::{Amount, FamilyRef};
use crate::{MAX_EVENTS_PER_DELIVERY, SECONDS_PER_DAY};

/// What [`DeliveryLog::insert`] did.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Inserted {
    /// A new event.
    New,
    /// Already held (byte-identical): nothing changed.
    Duplicate,
}

/// The events one member holds for one delivery, keyed by event id. Insertion order does
/// not matter: [`DeliveryLog::derive`] sorts by (Lamport clock, event id, encoding) and
/// replays the state machine; an event that does not apply at its position is kept and
/// listed as rejected. Two different events with the same id are all rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryLog {
    delivery: DeliveryId,
    // Normally one event per id; more only if a client misbehaves (all then rejected).
    events: BTreeMap<EventId, Vec<DeliveryEvent>>,
    count: usize,
}

/// What [`DeliveryLog::create`] returns to the coordinator who creates a delivery.
#[derive(Debug)]
pub struct NewDelivery {
    /// The log, holding the `created` event.
    pub log: DeliveryLog,
    /// The `created` event, to send to the other coordinators (and, with the
    /// `assigned` event, to the courier).
    pub created: DeliveryEvent,
    /// The hand-off code: show it once to the coordinator, who passes it to the family
    /// out of band. Never send it to anyone in Postern.
    pub code: HandoffCode,
    /// The commitment: keep it, and send it only to other coordinators.
    pub secret: CoordinatorSecret,
}

impl DeliveryLog {
    /// An empty log for `delivery`.
    pub fn new(delivery: DeliveryId) -> Self {
        Self {
            delivery,
            events: BTreeMap::new(),
            count: 0,
        }
    }

    /// Creates a delivery (coordinator or admin): a fresh id, the `created` event at
    /// clock 1, a fresh hand-off code and its commitment.
    pub fn create(
        author: Handle,
        role: Role,
        at: u64,
        family: FamilyRef,
        amount: Amount,
        deadline: u64,
    ) -> Result<NewDelivery, LogError> {
        let mut log = Self::new(DeliveryId::random());
        let created = log.record(
            author,
            role,
            at,
            EventKind::Created {
                family,
                amount,
                deadline,
            },
            None,
        )?;
        let code = HandoffCode::generate();
        let secret = CoordinatorSecret::commit(log.delivery, &code);
        Ok(NewDelivery {
            log,
            created,
            code,
            secret,
        })
    }

    /// The delivery.
    pub fn delivery(&self) -> DeliveryId {
        self.delivery
    }

    /// Number of events held.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether no event is held.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Every event held, in replay order.
    pub fn events(&self) -> Vec<&DeliveryEvent> {
        let mut all: Vec<(&DeliveryEvent, Vec<u8>)> = self
            .events
            .values()
            .flatten()
            .map(|e| (e, e.encode()))
            .collect();
        all.sort_by(|(a, ea), (b, eb)| (a.clock, a.id, ea).cmp(&(b.clock, b.id, eb)));
        all.into_iter().map(|(e, _)| e).collect()
    }

    /// Adds an event. Duplicates are harmless. The caller has authenticated the event's
    /// author (see [`DeliveryLog::receive`]).
    pub fn insert(&mut self, event: DeliveryEvent) -> Result<Inserted, LogError> {
        if event.delivery != self.delivery {
            return Err(LogError::WrongDelivery {
                expected: self.delivery,
                found: event.delivery,
            });
        }
        let variants = self.events.entry(event.id).or_default();
        if variants.contains(&event) {
            return Ok(Inserted::Duplicate);
        }
        if self.count >= MAX_EVENTS_PER_DELIVERY {
            if variants.is_empty() {
                self.events.remove(&event.id);
            }
            return Err(LogError::Full {
                max: MAX_EVENTS_PER_DELIVERY,
            });
        }
        variants.push(event);
        self.count += 1;
        Ok(Inserted::New)
    }

    /// Decodes an event received from `sender` (authenticated by the end-to-end layer,
    /// with `sender_role` from their certificate), checks that the event names them as
    /// its author, and adds it.
    pub fn receive(
        &mut self,
        bytes: &[u8],
        sender: &Handle,
        sender_role: Role,
    ) -> Result<Inserted, LogError> {
        let event = DeliveryEvent::decode(bytes)?;
        check_author(&event, sender, sender_role)?;
        self.insert(event)
    }

    /// The clock for a new event: one more than the largest held.
    pub fn next_clock(&self) -> Result<u64, LogError> {
        let max = self
            .events
            .values()
            .flatten()
            .map(|e| e.clock)
            .max()
            .unwrap_or(0);
        max.checked_add(1)
            .filter(|c| *c <= MAX_CLOCK)
            .ok_or(LogError::ClockExhausted)
    }

    /// Derives the state. Coordinators pass the delivery's secret to verify hand-off
    /// codes; couriers (and coordinators without it) pass `None` and see claims as
    /// [`Status::HandoffClaimed`] until a coordinator's verdict.
    pub fn derive(&self, secret: Option<&CoordinatorSecret>) -> Result<DeliveryState, LogError> {
        if let Some(s) = secret
            && s.delivery() != self.delivery
        {
            return Err(LogError::SecretForOtherDelivery {
                expected: self.delivery,
                found: s.delivery(),
            });
        }
        let mut state = DeliveryState::empty(self.delivery, secret.is_some());
        for event in self.events() {
            let conflicting = self.events.get(&event.id).is_some_and(|v| v.len() > 1);
            let result = if conflicting {
                Err(TransitionError::ConflictingEventId)
            } else {
                state.apply(event, secret)
            };
            if let Err(reason) = result {
                state.rejected.push(RejectedEvent {
                    event: event.id,
                    name: event.kind.name(),
                    author: event.author.clone(),
                    reason,
                });
            }
        }
        Ok(state)
    }

    /// Records a local action: builds the event with the next clock, refuses it with a
    /// typed error if it would not apply now, else adds it and returns it to be sent.
    /// `confirmed` and `handoff-refused` need the secret ([`LogError::SecretRequired`]):
    /// a verdict is only ever given on a code this client verified.
    pub fn record(
        &mut self,
        author: Handle,
        role: Role,
        at: u64,
        kind: EventKind,
        secret: Option<&CoordinatorSecret>,
    ) -> Result<DeliveryEvent, LogError> {
        let verdict = matches!(
            kind,
            EventKind::Confirmed { .. } | EventKind::HandoffRefused { .. }
        );
        if verdict && secret.is_none() && matches!(role, Role::Admin | Role::Coordinator) {
            return Err(LogError::SecretRequired {
                delivery: self.delivery,
            });
        }
        let event = DeliveryEvent::new(self.delivery, self.next_clock()?, at, author, role, kind);
        let mut state = self.derive(secret)?;
        state.apply(&event, secret)?;
        self.insert(event.clone())?;
        Ok(event)
    }

    /// With the secret: records a `handoff-refused` verdict for every refused claim that
    /// has none yet, and returns them to be sent to the courier and the coordinators.
    pub fn record_due_refusals(
        &mut self,
        author: &Handle,
        role: Role,
        at: u64,
        secret: &CoordinatorSecret,
    ) -> Result<Vec<DeliveryEvent>, LogError> {
        let due = self.derive(Some(secret))?.refusals_due();
        let mut sent = Vec::with_capacity(due.len());
        for (claim, failed_attempts) in due {
            sent.push(self.record(
                author.clone(),
                role,
                at,
                EventKind::HandoffRefused {
                    claim,
                    failed_attempts,
                },
                Some(secret),
            )?);
        }
        Ok(sent)
    }
}

fn check_author(event: &DeliveryEvent, sender: &Handle, sender_role: Role) -> Result<(), LogError> {
    if &event.author != sender || event.role != sender_role {
        return Err(LogError::AuthorMismatch {
            claimed: event.author.clone(),
            claimed_role: event.role,
            sender: sender.clone(),
            sender_role,
        });
    }
    Ok(())
}

/// Every delivery one member holds, and (on a coordinator's client) their secrets.
#[derive(Debug, Default)]
pub struct DeliveryBook {
    logs: BTreeMap<DeliveryId, DeliveryLog>,
    secrets: BTreeMap<DeliveryId, CoordinatorSecret>,
}

impl DeliveryBook {
    /// An empty book.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an event to its delivery's log (creating the log).
    pub fn insert(&mut self, event: DeliveryEvent) -> Result<Inserted, LogError> {
        self.logs
            .entry(event.delivery)
            .or_insert_with(|| DeliveryLog::new(event.delivery))
            .insert(event)
    }

    /// Decodes and adds an event from an authenticated sender (see
    /// [`DeliveryLog::receive`]).
    pub fn receive(
        &mut self,
        bytes: &[u8],
        sender: &Handle,
        sender_role: Role,
    ) -> Result<Inserted, LogError> {
        let event = DeliveryEvent::decode(bytes)?;
        check_author(&event, sender, sender_role)?;
        self.insert(event)
    }

    /// Adds a newly created delivery's log and secret.
    pub fn add_new(&mut self, new: NewDelivery) -> (DeliveryEvent, HandoffCode) {
        let id = new.log.delivery();
        self.logs.insert(id, new.log);
        self.secrets.insert(id, new.secret);
        (new.created, new.code)
    }

    /// Keeps a coordinator secret (coordinators only; received from another coordinator).
    pub fn add_secret(&mut self, secret: CoordinatorSecret) {
        self.secrets.insert(secret.delivery(), secret);
    }

    /// The secret for `id`, if held.
    pub fn secret(&self, id: &DeliveryId) -> Option<&CoordinatorSecret> {
        self.secrets.get(id)
    }

    /// The log for `id`, if held.
    pub fn log(&self, id: &DeliveryId) -> Option<&DeliveryLog> {
        self.logs.get(id)
    }

    /// Records a local action on `id` (see [`DeliveryLog::record`]), with the secret if
    /// held.
    pub fn record(
        &mut self,
        id: &DeliveryId,
        author: Handle,
        role: Role,
        at: u64,
        kind: EventKind,
    ) -> Result<DeliveryEvent, LogError> {
        let secret = self.secrets.get(id);
        self.logs
            .get_mut(id)
            .ok_or(LogError::UnknownDelivery(*id))?
            .record(author, role, at, kind, secret)
    }

    /// The derived state of `id`, with its secret if held.
    pub fn derive(&self, id: &DeliveryId) -> Option<DeliveryState> {
        let log = self.logs.get(id)?;
        log.derive(self.secrets.get(id)).ok()
    }

    /// The deliveries `viewer` may see, derived: all for coordinators and admins, only
    /// those currently assigned to them for a courier.
    pub fn list_for(&self, viewer: &Handle, role: Role) -> Vec<DeliveryState> {
        self.logs
            .keys()
            .filter_map(|id| self.derive(id))
            .filter(|s| s.visible_to(viewer, role))
            .collect()
    }

    /// Removes every closed (confirmed, failed, cancelled) delivery whose last applied
    /// event is at least `retention_days` old at `now` (unix seconds), and every delivery
    /// that never became valid (no `created`) whose newest event is that old, with
    /// their secrets. Returns the ids removed.
    pub fn purge_closed(&mut self, now: u64, retention_days: u64) -> Vec<DeliveryId> {
        let retention = retention_days.saturating_mul(SECONDS_PER_DAY);
        let expired: Vec<DeliveryId> = self
            .logs
            .iter()
            .filter_map(|(id, log)| {
                let state = log.derive(self.secrets.get(id)).ok()?;
                let last = if state.status == Status::Incomplete {
                    log.events().iter().map(|e| e.at).max().unwrap_or(0)
                } else {
                    state.last_activity_at
                };
                let closed = state.status.is_terminal() || state.status == Status::Incomplete;
                (closed && last.saturating_add(retention) <= now).then_some(*id)
            })
            .collect();
        for id in &expired {
            self.logs.remove(id);
            self.secrets.remove(id);
        }
        expired
    }
}
