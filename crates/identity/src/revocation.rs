//! Revocation lists: the serials the org no longer trusts, signed by the root and
//! versioned, so they authenticate themselves and a newer one may come from anyone.

use serde::{Deserialize, Serialize};

use crate::encoding::{BoundedVec, Signed, SignedBody, context};
use crate::error::TrustError;
use crate::keys::OrgKey;

/// Most serials one list may carry: as many as fit, at their longest encoding, in the
/// 64 KiB a `PutRevocationList` or `RevocationList` message carries (`128 + 10 × 6 000`
/// bytes), so every valid list can travel to and from every relay.
pub const MAX_REVOKED: usize = 6_000;

/// The signed fields of a revocation list, in wire order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationListBody {
    /// The org (must have signed it).
    pub org: OrgKey,
    /// Strictly increases with every list the org issues.
    pub version: u64,
    /// Revoked certificate serials, strictly ascending (so the encoding is unique).
    pub revoked: BoundedVec<u64, MAX_REVOKED>,
}

impl SignedBody for RevocationListBody {
    const KIND: &'static str = "revocation list";
    const CONTEXT: &'static [u8] = context::REVOCATION_LIST;
    // 32 key + 10 version + 3 count + 10 per serial + 64 signature.
    const MAX_ENCODED_LEN: usize = 128 + 10 * MAX_REVOKED;

    fn check(&self) -> Result<(), &'static str> {
        if self.revoked.as_slice().windows(2).any(|w| w[0] >= w[1]) {
            return Err("revoked serials are not strictly ascending");
        }
        Ok(())
    }

    fn signer(&self) -> [u8; 32] {
        self.org.to_bytes()
    }
}

impl RevocationListBody {
    /// A body for `org` at `version` revoking `serials` (sorted and de-duplicated here).
    pub fn new(org: OrgKey, version: u64, mut serials: Vec<u64>) -> Result<Self, TrustError> {
        serials.sort_unstable();
        serials.dedup();
        let revoked = BoundedVec::new(serials).map_err(|s| TrustError::TooLarge {
            object: Self::KIND,
            len: s.len(),
            max: MAX_REVOKED,
        })?;
        Ok(Self {
            org,
            version,
            revoked,
        })
    }
}

/// A revocation list: [`RevocationListBody`] signed by the org root.
pub type RevocationList = Signed<RevocationListBody>;

impl RevocationList {
    /// Whether `serial` is revoked.
    pub fn is_revoked(&self, serial: u64) -> bool {
        self.body()
            .revoked
            .as_slice()
            .binary_search(&serial)
            .is_ok()
    }

    /// The list's version.
    pub fn version(&self) -> u64 {
        self.body().version
    }

    /// Fails with [`TrustError::WrongOrg`] unless the list is `org`'s.
    pub fn check_org(&self, org: &OrgKey) -> Result<(), TrustError> {
        if self.body().org != *org {
            return Err(TrustError::WrongOrg {
                object: RevocationListBody::KIND,
                expected: *org,
                found: self.body().org,
            });
        }
        Ok(())
    }

    /// Decides whether `offered` may replace `held` (both for `org`): it must be `org`'s,
    /// and not older ([`TrustError::StaleRevocationList`]); the same version must be the
    /// same list ([`TrustError::ConflictingRevocationList`]). Returns whether it is newer.
    pub fn accept_update(
        held: Option<&RevocationList>,
        offered: &RevocationList,
        org: &OrgKey,
    ) -> Result<bool, TrustError> {
        offered.check_org(org)?;
        let Some(held) = held else {
            return Ok(true);
        };
        held.check_org(org)?;
        let (h, o) = (held.version(), offered.version());
        if o < h {
            return Err(TrustError::StaleRevocationList {
                held: h,
                offered: o,
            });
        }
        if o == h {
            if held != offered {
                return Err(TrustError::ConflictingRevocationList { version: o });
            }
            return Ok(false);
        }
        Ok(true)
    }
}
