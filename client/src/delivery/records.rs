//! The deliveries vault record, the outbox, and the bodies of delivery messages other
//! than events: the coordinator secret and the coordinator list.

use super::*;

/// One delivery message not yet accepted by the relay.
#[derive(Serialize, Deserialize, Clone)]
pub(super) struct Outgoing {
    /// Recipient handle.
    pub(super) to: String,
    /// Message body.
    pub(super) body: Vec<u8>,
    /// Send only if the recipient holds a coordinator or admin certificate.
    pub(super) coordinator_only: bool,
}

impl Drop for Outgoing {
    fn drop(&mut self) {
        self.body.zeroize();
    }
}

#[derive(Serialize, Deserialize)]
pub(super) struct StoredDelivery {
    /// Delivery id.
    pub(super) id: [u8; 16],
    /// Encoded events, authenticated when they were received or recorded.
    pub(super) events: Vec<Vec<u8>>,
    /// Encoded coordinator secret, if held.
    pub(super) secret: Option<Vec<u8>>,
    /// Coordinators known to be on the delivery.
    pub(super) coordinators: Vec<String>,
}

impl Drop for StoredDelivery {
    fn drop(&mut self) {
        if let Some(s) = &mut self.secret {
            s.zeroize();
        }
    }
}

#[derive(Serialize, Deserialize)]
pub(super) struct StoredBook {
    pub(super) format: u8,
    pub(super) deliveries: Vec<StoredDelivery>,
    pub(super) outbox: Vec<Outgoing>,
}

/// The coordinators list message body.
#[derive(Serialize, Deserialize)]
pub(super) struct MembersBody {
    pub(super) delivery: [u8; 16],
    pub(super) coordinators: Vec<String>,
}

pub(super) fn secret_body(secret: &CoordinatorSecret) -> Zeroizing<Vec<u8>> {
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

pub(super) fn members_body(
    id: DeliveryId,
    coordinators: &BTreeSet<String>,
) -> Result<Vec<u8>, DeliveryError> {
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
