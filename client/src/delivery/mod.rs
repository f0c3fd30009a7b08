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
//!   them, so they are tracked here, per delivery, on each client;
//! * [`BUNDLE_BODY_PREFIX`] ‖ postcard(list of 2 to [`MAX_BUNDLE`] bodies of the kinds
//!   above): everything queued for one recipient, sent as one message, so that a
//!   delivery's creation is one envelope per recipient at the relay. Each body in it is
//!   checked and applied as if it had come alone, from the same sender.
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
/// Body prefix of a bundle: several delivery message bodies for one recipient in one
/// message, so that a delivery's creation (events, coordinator list, secret) is one
/// envelope per recipient at the relay, as a chat message is.
pub const BUNDLE_BODY_PREFIX: &[u8] = b"postern/1 delivery-bundle\0";
/// Most bodies in one bundle.
pub const MAX_BUNDLE: usize = 8;

const FORMAT: u8 = 1;

mod change;
mod error;
mod records;
mod sync;
mod types;

pub use error::DeliveryError;
#[cfg(test)]
pub(crate) use error::DeliveryErrorDiscriminants;
use records::*;
pub use records::{decode_bundle, decode_coordinator_list};
pub use types::{Created, Delivered, NewDeliveryRequest, SyncReport, Update};

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
        let relay = crate::member::SendPath::anonymous(conn).await?;
        self.member.lookup(relay, who, false).await?;
        self.member
            .contact_role(who)?
            .ok_or_else(|| DeliveryError::Member(MemberError::UnknownHandle(who.to_owned())))
    }
}
