//! What callers hand to the delivery library and what it reports back.

use super::*;

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
