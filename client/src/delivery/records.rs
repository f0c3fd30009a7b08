//! The deliveries vault record, the outbox, and the bodies of delivery messages other
//! than events: the coordinator secret, the coordinator list and the bundle.

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

/// A bundle of `bodies` for one recipient (at most [`MAX_BUNDLE`], none a bundle).
pub(super) fn bundle_body(bodies: &[&[u8]]) -> Result<Zeroizing<Vec<u8>>, DeliveryError> {
    let mut body = Zeroizing::new(BUNDLE_BODY_PREFIX.to_vec());
    body.extend(
        postcard::to_allocvec(bodies).map_err(|_| DeliveryError::Corrupt("unencodable bundle"))?,
    );
    Ok(body)
}

/// Decodes a bundle (a message body after [`BUNDLE_BODY_PREFIX`], from a peer): 2 to
/// [`MAX_BUNDLE`] bodies, none of them a bundle itself. Public for the fuzz target.
pub fn decode_bundle(rest: &[u8]) -> Result<Vec<Vec<u8>>, &'static str> {
    let parts: Vec<Vec<u8>> = postcard::from_bytes(rest).map_err(|_| "malformed bundle")?;
    if parts.len() < 2 || parts.len() > MAX_BUNDLE {
        return Err("a bundle holds 2 to 8 bodies");
    }
    if parts.iter().any(|p| p.starts_with(BUNDLE_BODY_PREFIX)) {
        return Err("a bundle inside a bundle");
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundles_round_trip_and_hostile_ones_are_refused() {
        let parts: [&[u8]; 3] = [b"\x01event", SECRET_BODY_PREFIX, b""];
        let body = bundle_body(&parts).unwrap();
        let rest = body.strip_prefix(BUNDLE_BODY_PREFIX).unwrap();
        assert_eq!(
            decode_bundle(rest).unwrap(),
            parts.iter().map(|p| p.to_vec()).collect::<Vec<_>>()
        );
        // One body is no bundle; more than MAX_BUNDLE is refused; no nesting.
        let one = bundle_body(&parts[..1]).unwrap();
        assert!(decode_bundle(one.strip_prefix(BUNDLE_BODY_PREFIX).unwrap()).is_err());
        let many: Vec<&[u8]> = vec![b"x"; MAX_BUNDLE + 1];
        let many = bundle_body(&many).unwrap();
        assert!(decode_bundle(many.strip_prefix(BUNDLE_BODY_PREFIX).unwrap()).is_err());
        let inner = bundle_body(&parts[..2]).unwrap();
        let nested = bundle_body(&[&inner, b"x"]).unwrap();
        assert!(decode_bundle(nested.strip_prefix(BUNDLE_BODY_PREFIX).unwrap()).is_err());
        // Truncated, trailing junk, and a count that promises more than is there.
        assert!(decode_bundle(&rest[..rest.len() - 1]).is_err());
        assert!(decode_bundle(&[0xff, 0xff, 0xff, 0xff, 0x0f]).is_err());
        assert!(decode_bundle(&[]).is_err());
    }
}
