//! Deliveries over a member account: the library behind `postern delivery` and
//! `postern-demo`.
//!
//! [`Deliveries`] keeps this member's [`DeliveryBook`] in one sealed vault record
//! (`postern/deliveries`): every event held (encoded), the coordinator secrets this
//! member holds, the coordinators known for each delivery, and an outbox of messages
//! not yet accepted by the relay. The record is written before anything is sent, so a
//! crash or an unreachable relay loses nothing: the next command sends the outbox.
//!
//! # Who receives what
//! Every message travels end to end encrypted as content type
//! [`ContentType::DeliveryEvent`]; its body is one of:
//!
//! * an encoded [`DeliveryEvent`] (first byte `0x01`, `protocol-spec/DELIVERIES.md`),
//!   sent to every member involved: the delivery's coordinators and its assigned
//!   courier;
//! * [`SECRET_BODY_PREFIX`] ‖ encoded [`CoordinatorSecret`], sent **only** to the
//!   delivery's other coordinators (each checked to hold a coordinator or admin
//!   certificate right before sending), never to a courier. A courier's client drops
//!   such a body unread, and every client ignores one from a courier;
//! * [`MEMBERS_BODY_PREFIX`] ‖ postcard(delivery id, coordinator handles): the
//!   coordinators on the delivery, sent with the creation to everyone involved, so that
//!   the courier and the other coordinators know whom to tell about later events.
//!   Accepted only from a coordinator or admin. The `created` event has no field for
//!   them, so they are tracked here, per delivery, on each client.
//!
//! The hand-off code itself is never sent by anyone: it is returned once by
//! [`Deliveries::create`] for the coordinator to give the family out of band.
//!
//! # Receiving
//! [`Deliveries::sync`] fetches, then processes every stored delivery message (also
//! those another command such as `postern inbox` fetched): the event's author and role
//! must be the authenticated sender's (role from the sender's verified certificate held
//! in contacts, active under the held revocation list), and an `assigned` event must
//! name a member whose certificate role is courier. Processed messages are deleted from
//! the message store once the book is saved; the book is the record. A coordinator's
//! client holding the secret then sends a `handoff-refused` verdict for each wrong code
//! and confirms a verified hand-off (the verified code is the proof of hand-off), and
//! closed deliveries older than the org's retention are purged.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use postern_deliveries::{
    Amount, CoordinatorSecret, DeliveryBook, DeliveryEvent, DeliveryId, DeliveryState, EventKind,
    EventText, FamilyRef, HandoffCode, LogError, Status, TransitionError,
};
use postern_e2e::{ContentType, StoredMessage};
use postern_identity::{Handle, Role};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use crate::member::{Connection, Member, MemberError, unix_now};

/// The vault record holding this member's deliveries.
pub const DELIVERIES_RECORD: &[u8] = b"postern/deliveries";
/// Body prefix of a message carrying a [`CoordinatorSecret`] (coordinators only). Its
/// first byte is not an event version, so it can never be mistaken for an event.
pub const SECRET_BODY_PREFIX: &[u8] = b"postern/1 delivery-secret\0";
/// Body prefix of a message listing a delivery's coordinators.
pub const MEMBERS_BODY_PREFIX: &[u8] = b"postern/1 delivery-members\0";
/// Deadline of a delivery created without one.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(7 * 86_400);
/// Most coordinators listed on one delivery.
pub const MAX_COORDINATORS: usize = 16;

const FORMAT: u8 = 1;

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

impl DeliveryError {}

/// A change a member records on a delivery.
#[derive(Debug, Clone)]
pub enum Update {
    /// The courier has the money (assigned courier).
    PickedUp,
    /// The courier is on the way (assigned courier).
    InTransit,
    /// Confirms the verified hand-off (coordinator or admin holding the secret).
    Confirmed,
    /// The delivery failed, with the reason.
    Failed(EventText),
    /// Cancelled (coordinator or admin).
    Cancelled,
    /// A note.
    Note(EventText),
}

/// What to create.
#[derive(Debug, Clone)]
pub struct NewDeliveryRequest {
    /// The courier's handle (must hold a courier certificate).
    pub courier: String,
    /// The family's reference code.
    pub family: FamilyRef,
    /// How much.
    pub amount: Amount,
    /// Hand-off deadline, unix seconds.
    pub deadline: u64,
    /// Other coordinators to involve (they receive the events and the commitment).
    pub coordinators: Vec<String>,
}

/// What sending a batch of delivery messages did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Delivered {
    /// Recipients whose messages the relay durably accepted.
    pub sent_to: Vec<String>,
    /// Recipients whose messages are still queued (relay unreachable): sent by the next
    /// delivery command.
    pub queued: Vec<String>,
    /// Messages given up, with why (revoked or unknown member, wrong role).
    pub dropped: Vec<String>,
}

/// A created delivery.
#[derive(Debug)]
pub struct Created {
    /// Its id.
    pub id: DeliveryId,
    /// The hand-off code: show it once to the coordinator, never send it anywhere.
    pub code: HandoffCode,
    /// How the events reached the members involved.
    pub delivered: Delivered,
}

/// What [`Deliveries::sync`] did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SyncReport {
    /// Messages fetched from the relay (of every kind).
    pub fetched: usize,
    /// New delivery events added.
    pub events: usize,
    /// Coordinator secrets received.
    pub secrets: usize,
    /// Delivery messages refused, with why.
    pub refused: Vec<String>,
    /// Verdicts this client recorded (refused codes, confirmations).
    pub verdicts: usize,
    /// Deliveries purged after the retention period.
    pub purged: usize,
    /// How queued messages went.
    pub delivered: Delivered,
}

/// One delivery message not yet accepted by the relay.
#[derive(Serialize, Deserialize, Clone)]
struct Outgoing {
    /// Recipient handle.
    to: String,
    /// Message body.
    body: Vec<u8>,
    /// Send only if the recipient holds a coordinator or admin certificate.
    coordinator_only: bool,
}

impl Drop for Outgoing {
    fn drop(&mut self) {
        self.body.zeroize();
    }
}

#[derive(Serialize, Deserialize)]
struct StoredDelivery {
    /// Delivery id.
    id: [u8; 16],
    /// Encoded events, authenticated when they were received or recorded.
    events: Vec<Vec<u8>>,
    /// Encoded coordinator secret, if held.
    secret: Option<Vec<u8>>,
    /// Coordinators known to be on the delivery.
    coordinators: Vec<String>,
}

impl Drop for StoredDelivery {
    fn drop(&mut self) {
        if let Some(s) = &mut self.secret {
            s.zeroize();
        }
    }
}

#[derive(Serialize, Deserialize)]
struct StoredBook {
    format: u8,
    deliveries: Vec<StoredDelivery>,
    outbox: Vec<Outgoing>,
}

/// The coordinators list message body.
#[derive(Serialize, Deserialize)]
struct MembersBody {
    delivery: [u8; 16],
    coordinators: Vec<String>,
}

/// A member's deliveries, open over their account.
pub struct Deliveries<'m> {
    /// The account: vault, relay, certificates.
    member: &'m Member,
    /// Our handle.
    handle: Handle,
    /// Our certificate's role.
    role: Role,
    /// Events and secrets held.
    book: DeliveryBook,
    /// Every delivery id in the book (the book does not list them).
    ids: BTreeSet<DeliveryId>,
    /// Coordinators known per delivery.
    coordinators: BTreeMap<DeliveryId, BTreeSet<String>>,
    /// Messages not yet accepted by the relay.
    outbox: Vec<Outgoing>,
}

impl std::fmt::Debug for Deliveries<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deliveries")
            .field("handle", &self.handle)
            .field("deliveries", &self.ids.len())
            .field("outbox", &self.outbox.len())
            .finish_non_exhaustive()
    }
}

fn is_coordinator(role: Role) -> bool {
    matches!(role, Role::Coordinator | Role::Admin)
}

fn handle(s: &str) -> Result<Handle, DeliveryError> {
    Handle::new(s).map_err(|_| DeliveryError::Member(MemberError::BadHandle(s.to_owned())))
}

impl<'m> Deliveries<'m> {
    /// Opens the deliveries of an enrolled member.
    pub fn open(member: &'m Member) -> Result<Self, DeliveryError> {
        let role = member.role()?;
        let me = handle(member.handle())?;
        let mut this = Self {
            member,
            handle: me,
            role,
            book: DeliveryBook::new(),
            ids: BTreeSet::new(),
            coordinators: BTreeMap::new(),
            outbox: Vec::new(),
        };
        let Some(bytes) = member
            .vault()
            .get_record(DELIVERIES_RECORD)
            .map_err(MemberError::from)?
        else {
            return Ok(this);
        };
        let stored: StoredBook =
            postcard::from_bytes(&bytes).map_err(|_| DeliveryError::Corrupt("undecodable"))?;
        if stored.format != FORMAT {
            return Err(DeliveryError::Corrupt("unknown format"));
        }
        for d in &stored.deliveries {
            let id = DeliveryId(d.id);
            this.ids.insert(id);
            for e in &d.events {
                let event =
                    DeliveryEvent::decode(e).map_err(|_| DeliveryError::Corrupt("event"))?;
                this.book.insert(event)?;
            }
            if let Some(s) = &d.secret {
                let secret =
                    CoordinatorSecret::decode(s).map_err(|_| DeliveryError::Corrupt("secret"))?;
                this.book.add_secret(secret);
            }
            this.coordinators
                .insert(id, d.coordinators.iter().cloned().collect());
        }
        this.outbox = stored.outbox.clone();
        Ok(this)
    }

    fn save(&self) -> Result<(), DeliveryError> {
        let deliveries = self
            .ids
            .iter()
            .map(|id| StoredDelivery {
                id: *id.as_bytes(),
                events: self
                    .book
                    .log(id)
                    .map(|l| l.events().into_iter().map(DeliveryEvent::encode).collect())
                    .unwrap_or_default(),
                secret: self.book.secret(id).map(|s| s.encode().to_vec()),
                coordinators: self
                    .coordinators
                    .get(id)
                    .map(|c| c.iter().cloned().collect())
                    .unwrap_or_default(),
            })
            .collect();
        let stored = StoredBook {
            format: FORMAT,
            deliveries,
            outbox: self.outbox.clone(),
        };
        let bytes = Zeroizing::new(
            postcard::to_allocvec(&stored).map_err(|_| DeliveryError::Corrupt("unencodable"))?,
        );
        self.member
            .vault()
            .put_record(DELIVERIES_RECORD, &bytes)
            .map_err(MemberError::from)?;
        Ok(())
    }

    /// Our role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The deliveries this member may see, derived (a courier: only those assigned to
    /// them).
    pub fn list(&self) -> Vec<DeliveryState> {
        self.book.list_for(&self.handle, self.role)
    }

    /// One delivery, derived, if this member may see it.
    pub fn show(&self, id: &DeliveryId) -> Result<DeliveryState, DeliveryError> {
        self.book
            .derive(id)
            .filter(|s| s.visible_to(&self.handle, self.role))
            .ok_or_else(|| DeliveryError::UnknownDelivery(id.to_string()))
    }

    /// The coordinators known to be on a delivery.
    pub fn coordinators(&self, id: &DeliveryId) -> Vec<String> {
        self.coordinators
            .get(id)
            .map(|c| c.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Whether this client holds the delivery's coordinator secret.
    pub fn holds_secret(&self, id: &DeliveryId) -> bool {
        self.book.secret(id).is_some()
    }

    /// The hand-off commitment held for a delivery (coordinators), so that checks and
    /// tests can look for it where it must never be. The salt is not exposed.
    pub fn secret_commitment(&self, id: &DeliveryId) -> Option<[u8; 32]> {
        self.book.secret(id).map(|s| *s.commitment())
    }

    /// Messages waiting for the relay.
    pub fn queued(&self) -> usize {
        self.outbox.len()
    }

    /// The role in `who`'s verified certificate: from contacts, else fetched and
    /// verified from the directory.
    async fn role_of(&self, conn: &Connection, who: &str) -> Result<Role, DeliveryError> {
        if let Some(r) = self.member.contact_role(who)? {
            return Ok(r);
        }
        self.member.lookup(conn, who, false).await?;
        self.member
            .contact_role(who)?
            .ok_or_else(|| DeliveryError::Member(MemberError::UnknownHandle(who.to_owned())))
    }

    /// Creates a delivery (coordinator or admin): checks the courier's and the extra
    /// coordinators' certificates, records `created` and `assigned`, keeps the secret,
    /// and sends the events to the courier and the coordinators and the secret to the
    /// coordinators only. Returns the hand-off code for the family.
    pub async fn create(
        &mut self,
        conn: &Connection,
        req: NewDeliveryRequest,
    ) -> Result<Created, DeliveryError> {
        if !is_coordinator(self.role) {
            return Err(DeliveryError::NotPermitted {
                role: self.role,
                action: "create deliveries",
                fix: "ask a coordinator",
            });
        }
        let courier = handle(&req.courier)?;
        match self.role_of(conn, &req.courier).await? {
            Role::Courier => {}
            role => {
                return Err(DeliveryError::NotACourier {
                    handle: req.courier,
                    role,
                });
            }
        }
        let mut coordinators: BTreeSet<String> = BTreeSet::new();
        coordinators.insert(self.handle.as_str().to_owned());
        for c in &req.coordinators {
            handle(c)?;
            if c == self.handle.as_str() {
                continue;
            }
            let role = self.role_of(conn, c).await?;
            if !is_coordinator(role) {
                return Err(DeliveryError::NotACoordinator {
                    handle: c.clone(),
                    role,
                });
            }
            coordinators.insert(c.clone());
        }
        if coordinators.len() > MAX_COORDINATORS {
            return Err(DeliveryError::TooManyCoordinators);
        }
        let now = unix_now();
        let new = postern_deliveries::DeliveryLog::create(
            self.handle.clone(),
            self.role,
            now,
            req.family,
            req.amount,
            req.deadline,
        )?;
        let mut new = new;
        let secret_body = secret_body(&new.secret);
        let id = new.log.delivery();
        // Recorded on the new log before it joins the book: a refusal leaves nothing.
        let assigned = new.log.record(
            self.handle.clone(),
            self.role,
            now,
            EventKind::Assigned { courier },
            Some(&new.secret),
        )?;
        let (created, code) = self.book.add_new(new);
        self.ids.insert(id);
        self.coordinators.insert(id, coordinators.clone());
        let members = members_body(id, &coordinators)?;
        let others: Vec<String> = coordinators
            .iter()
            .filter(|c| *c != self.handle.as_str())
            .cloned()
            .collect();
        for c in &others {
            self.enqueue(c, secret_body.to_vec(), true);
        }
        for to in others.iter().chain(std::iter::once(&req.courier)) {
            self.enqueue(to, members.clone(), false);
            self.enqueue(to, created.encode(), false);
            self.enqueue(to, assigned.encode(), false);
        }
        self.save()?;
        let delivered = self.send_outbox(conn).await?;
        Ok(Created {
            id,
            code,
            delivered,
        })
    }

    fn enqueue(&mut self, to: &str, body: Vec<u8>, coordinator_only: bool) {
        self.outbox.push(Outgoing {
            to: to.to_owned(),
            body,
            coordinator_only,
        });
    }

    /// The members an event on `id` goes to: its coordinators and its courier (and its
    /// creator), except ourselves.
    fn involved(&self, id: &DeliveryId) -> Vec<(String, bool)> {
        let mut to: BTreeMap<String, bool> = BTreeMap::new();
        for c in self.coordinators.get(id).into_iter().flatten() {
            to.insert(c.clone(), true);
        }
        if let Some(state) = self.book.derive(id) {
            if let Some(d) = &state.details {
                to.insert(d.created_by.as_str().to_owned(), true);
            }
            if let Some(c) = &state.courier {
                to.insert(c.as_str().to_owned(), false);
            }
        }
        to.remove(self.handle.as_str());
        to.into_iter().collect()
    }

    fn record_and_enqueue(
        &mut self,
        id: &DeliveryId,
        kind: EventKind,
    ) -> Result<DeliveryEvent, DeliveryError> {
        let event = self
            .book
            .record(id, self.handle.clone(), self.role, unix_now(), kind)?;
        let body = event.encode();
        for (to, coordinator_only) in self.involved(id) {
            self.enqueue(&to, body.clone(), coordinator_only);
        }
        Ok(event)
    }

    /// Records a change on a delivery this member may see, and sends it to everyone
    /// involved.
    pub async fn update(
        &mut self,
        conn: &Connection,
        id: &DeliveryId,
        update: Update,
    ) -> Result<Delivered, DeliveryError> {
        let state = self.show(id)?;
        let kind = match update {
            Update::PickedUp => EventKind::PickedUp,
            Update::InTransit => EventKind::InTransit,
            Update::Cancelled => EventKind::Cancelled,
            Update::Failed(reason) => EventKind::Failed { reason },
            Update::Note(text) => EventKind::Note { text },
            Update::Confirmed => {
                if !is_coordinator(self.role) {
                    return Err(DeliveryError::NotPermitted {
                        role: self.role,
                        action: "confirm a hand-off",
                        fix: "enter the family's code with `postern delivery handoff ID` (it asks for the code); a coordinator's client confirms it",
                    });
                }
                let claim = state
                    .verified_claim()
                    .filter(|_| state.status == Status::HandedOff)
                    .ok_or_else(|| DeliveryError::NothingToConfirm(id.to_string()))?;
                EventKind::Confirmed { claim }
            }
        };
        self.record_and_enqueue(id, kind)?;
        self.save()?;
        self.send_outbox(conn).await
    }

    /// The assigned courier claims the hand-off with the code the family gave. The
    /// coordinators' clients verify it; the answer arrives with a later sync.
    pub async fn handoff(
        &mut self,
        conn: &Connection,
        id: &DeliveryId,
        code: HandoffCode,
    ) -> Result<Delivered, DeliveryError> {
        self.show(id)?;
        if self.role != Role::Courier {
            return Err(DeliveryError::NotPermitted {
                role: self.role,
                action: "claim a hand-off",
                fix: "only the assigned courier enters the family's code",
            });
        }
        self.record_and_enqueue(id, EventKind::HandedOff { code })?;
        self.save()?;
        self.send_outbox(conn).await
    }

    /// Sends every queued message. Those the relay accepts leave the queue; those to
    /// revoked, unknown or wrongly-roled members are dropped and reported; the rest stay
    /// queued for the next call.
    pub async fn send_outbox(&mut self, conn: &Connection) -> Result<Delivered, DeliveryError> {
        let mut report = Delivered::default();
        if self.outbox.is_empty() {
            return Ok(report);
        }
        let policy = self.member.policy()?;
        let mut ttl = policy.max_ttl_secs;
        if conn.relay_max_ttl_secs > 0 {
            ttl = ttl.min(u64::from(conn.relay_max_ttl_secs));
        }
        let ttl = Duration::from_secs(ttl.max(1));
        let pending = std::mem::take(&mut self.outbox);
        let mut keep = Vec::new();
        for out in pending {
            if out.coordinator_only {
                match self.role_of(conn, &out.to).await {
                    Ok(r) if is_coordinator(r) => {}
                    Ok(r) => {
                        report
                            .dropped
                            .push(format!("{}: enrolled as {r}, not a coordinator", out.to));
                        continue;
                    }
                    Err(DeliveryError::Member(e)) if e.is_refusal() => {
                        report.dropped.push(format!("{}: {e}", out.to));
                        continue;
                    }
                    Err(_) => {
                        report.queued.push(out.to.clone());
                        keep.push(out);
                        continue;
                    }
                }
            }
            match self
                .member
                .send(
                    conn,
                    &out.to,
                    ContentType::DeliveryEvent,
                    &out.body,
                    Some(ttl),
                )
                .await
            {
                Ok(_) => report.sent_to.push(out.to.clone()),
                Err(e) if e.is_refusal() => report.dropped.push(format!("{}: {e}", out.to)),
                Err(MemberError::Vault(e)) => {
                    keep.push(out);
                    self.outbox = keep;
                    self.save()?;
                    return Err(MemberError::Vault(e).into());
                }
                Err(_) => {
                    report.queued.push(out.to.clone());
                    keep.push(out);
                }
            }
        }
        self.outbox = keep;
        self.save()?;
        for list in [&mut report.sent_to, &mut report.queued] {
            list.sort();
            list.dedup();
        }
        Ok(report)
    }

    /// Brings this member's deliveries up to date: fetches pending messages, processes
    /// every stored delivery message, sends due verdicts (coordinators), purges closed
    /// deliveries past the org's retention, and sends the outbox.
    pub async fn sync(&mut self, conn: &Connection) -> Result<SyncReport, DeliveryError> {
        let fetched = self.member.fetch(conn).await?;
        let mut report = SyncReport {
            fetched: fetched.new.len(),
            ..SyncReport::default()
        };
        let messages: Vec<StoredMessage> = self
            .member
            .messages()?
            .into_iter()
            .filter(|m| m.content_type == ContentType::DeliveryEvent)
            .collect();
        for m in &messages {
            // A local failure (vault, relay) stops here: the unprocessed messages stay
            // stored and are processed by the next sync.
            if let Err(why) = self.process(conn, m, &mut report).await? {
                report.refused.push(format!("from {}: {why}", m.sender));
            }
        }
        report.verdicts = self.give_verdicts()?;
        report.purged = self.purge_closed_at(unix_now())?;
        // The book is the record now: drop the processed messages.
        for m in &messages {
            self.member
                .vault()
                .delete_message(&m.sender, &m.id)
                .map_err(MemberError::from)?;
        }
        report.delivered = self.send_outbox(conn).await?;
        Ok(report)
    }

    /// Removes every closed delivery (with its secret and coordinators) whose last
    /// event is at least the org's retention period before `now` (unix seconds), and
    /// saves. [`Deliveries::sync`] calls it with the current time. Returns how many.
    pub fn purge_closed_at(&mut self, now: u64) -> Result<usize, DeliveryError> {
        let retention = u64::from(self.member.policy()?.retention_days);
        let purged = self.book.purge_closed(now, retention);
        for id in &purged {
            self.ids.remove(id);
            self.coordinators.remove(id);
        }
        self.save()?;
        Ok(purged.len())
    }

    /// Processes one delivery message. The inner `Err` is why it was refused (it is
    /// then dropped); the outer one a local or relay failure (it is kept for later).
    async fn process(
        &mut self,
        conn: &Connection,
        m: &StoredMessage,
        report: &mut SyncReport,
    ) -> Result<Result<(), String>, DeliveryError> {
        let Some(sender_role) = self.member.contact_role(&m.sender)? else {
            return Ok(Err(
                "sender's certificate is not active (revoked or expired)".into(),
            ));
        };
        let assigned_to = match DeliveryEvent::decode(&m.body) {
            Ok(DeliveryEvent {
                kind: EventKind::Assigned { courier },
                ..
            }) if courier != self.handle => Some(courier),
            _ => None,
        };
        let assigned_role = match assigned_to {
            None => None,
            Some(c) => match self.role_of(conn, c.as_str()).await {
                Ok(role) => Some((c, role)),
                Err(DeliveryError::Member(e)) if !e.is_refusal() => return Err(e.into()),
                Err(e) => return Ok(Err(format!("assigned courier {c}: {e}"))),
            },
        };
        Ok(self.apply(m, sender_role, assigned_role, report))
    }

    /// Applies one delivery message from an authenticated sender.
    fn apply(
        &mut self,
        m: &StoredMessage,
        sender_role: Role,
        assigned_role: Option<(Handle, Role)>,
        report: &mut SyncReport,
    ) -> Result<(), String> {
        let sender = Handle::new(&m.sender).map_err(|_| "bad sender handle")?;
        if let Some(rest) = m.body.strip_prefix(SECRET_BODY_PREFIX) {
            if !is_coordinator(self.role) {
                // Never keep a commitment on a courier's device.
                return Err("coordinator secret sent to a courier: dropped unread".into());
            }
            if !is_coordinator(sender_role) {
                return Err("coordinator secret from a courier".into());
            }
            let secret = CoordinatorSecret::decode(rest).map_err(|e| e.to_string())?;
            let id = secret.delivery();
            if self.book.secret(&id).is_none() {
                self.book.add_secret(secret);
                self.ids.insert(id);
                report.secrets += 1;
            }
            return Ok(());
        }
        if let Some(rest) = m.body.strip_prefix(MEMBERS_BODY_PREFIX) {
            if !is_coordinator(sender_role) {
                return Err("coordinator list from a courier".into());
            }
            let (id, coordinators) = decode_coordinator_list(rest)?;
            let set = self.coordinators.entry(id).or_default();
            set.extend(coordinators.iter().map(|h| h.as_str().to_owned()));
            set.insert(m.sender.clone());
            return Ok(());
        }
        let event = DeliveryEvent::decode(&m.body).map_err(|e| e.to_string())?;
        if let EventKind::Assigned { courier } = &event.kind {
            let role = match &assigned_role {
                _ if courier == &self.handle => self.role,
                Some((c, role)) if c == courier => *role,
                _ => return Err("assigned courier not checked".into()),
            };
            if role != Role::Courier {
                return Err(format!(
                    "assigned event names {courier}, who is enrolled as {role}, not a courier"
                ));
            }
        }
        let id = event.delivery;
        match self.book.receive(&m.body, &sender, sender_role) {
            Ok(postern_deliveries::Inserted::New) => report.events += 1,
            Ok(postern_deliveries::Inserted::Duplicate) => {}
            Err(e) => return Err(e.to_string()),
        }
        self.ids.insert(id);
        if is_coordinator(sender_role) {
            self.coordinators
                .entry(id)
                .or_default()
                .insert(m.sender.clone());
        }
        Ok(())
    }

    /// With the secret: refuses wrong codes and confirms a verified hand-off.
    fn give_verdicts(&mut self) -> Result<usize, DeliveryError> {
        if !is_coordinator(self.role) {
            return Ok(0);
        }
        let mut n = 0;
        let ids: Vec<DeliveryId> = self.ids.iter().copied().collect();
        for id in ids {
            if self.book.secret(&id).is_none() {
                continue;
            }
            let Some(state) = self.book.derive(&id) else {
                continue;
            };
            for (claim, failed_attempts) in state.refusals_due() {
                self.record_and_enqueue(
                    &id,
                    EventKind::HandoffRefused {
                        claim,
                        failed_attempts,
                    },
                )?;
                n += 1;
            }
            let state = self.book.derive(&id);
            if let Some(state) = state
                && state.status == Status::HandedOff
                && let Some(claim) = state.verified_claim()
            {
                match self.record_and_enqueue(&id, EventKind::Confirmed { claim }) {
                    Ok(_) => n += 1,
                    // Another coordinator confirmed first.
                    Err(DeliveryError::Refused(LogError::Refused(
                        TransitionError::DuplicateVerdict { .. },
                    ))) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(n)
    }
}

fn secret_body(secret: &CoordinatorSecret) -> Zeroizing<Vec<u8>> {
    let mut body = Zeroizing::new(SECRET_BODY_PREFIX.to_vec());
    body.extend_from_slice(&secret.encode());
    body
}

/// Decodes a coordinator list (a message body after [`MEMBERS_BODY_PREFIX`], from a peer):
/// the delivery and at most [`MAX_COORDINATORS`] valid handles. Public for the fuzz
/// target, which feeds it hostile bytes.
pub fn decode_coordinator_list(rest: &[u8]) -> Result<(DeliveryId, Vec<Handle>), &'static str> {
    let body: MembersBody = postcard::from_bytes(rest).map_err(|_| "malformed coordinator list")?;
    if body.coordinators.len() > MAX_COORDINATORS {
        return Err("too many coordinators");
    }
    let handles = body
        .coordinators
        .iter()
        .map(|c| Handle::new(c).map_err(|_| "bad coordinator handle"))
        .collect::<Result<_, _>>()?;
    Ok((DeliveryId(body.delivery), handles))
}

fn members_body(id: DeliveryId, coordinators: &BTreeSet<String>) -> Result<Vec<u8>, DeliveryError> {
    let mut body = MEMBERS_BODY_PREFIX.to_vec();
    body.extend(
        postcard::to_allocvec(&MembersBody {
            delivery: *id.as_bytes(),
            coordinators: coordinators.iter().cloned().collect(),
        })
        .map_err(|_| DeliveryError::Corrupt("unencodable coordinator list"))?,
    );
    Ok(body)
}
