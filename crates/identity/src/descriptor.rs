//! The org descriptor: what every member needs to know about the org, signed by the root.

use serde::{Deserialize, Serialize};

use crate::encoding::{BoundedVec, Signed, SignedBody, context};
use crate::keys::{OrgKey, SignalPublicKey};
use crate::relay::RelayAddress;

/// Most relays a descriptor may list.
pub const MAX_RELAYS: usize = 16;
/// Longest message TTL a policy may allow (30 days).
pub const MAX_POLICY_TTL_SECS: u64 = 30 * 24 * 3600;
/// Longest retention of closed deliveries a policy may set (10 years).
pub const MAX_RETENTION_DAYS: u32 = 3650;

/// Org-wide rules every client and relay applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// Longest TTL a sender may choose; relays clamp to it.
    pub max_ttl_secs: u64,
    /// TTL when the sender chooses none.
    pub default_ttl_secs: u64,
    /// Days a closed delivery is kept before clients purge it.
    pub retention_days: u32,
}

impl Default for Policy {
    /// Short by default: messages live at most 7 days (default 2), closed deliveries 30.
    fn default() -> Self {
        Self {
            max_ttl_secs: 7 * 24 * 3600,
            default_ttl_secs: 2 * 24 * 3600,
            retention_days: 30,
        }
    }
}

impl Policy {
    /// Checks `0 < default_ttl <= max_ttl <= 30 days` and `1 <= retention_days <= 3650`.
    pub fn check(&self) -> Result<(), &'static str> {
        if self.default_ttl_secs == 0 || self.default_ttl_secs > self.max_ttl_secs {
            return Err("policy needs 0 < default TTL <= max TTL");
        }
        if self.max_ttl_secs > MAX_POLICY_TTL_SECS {
            return Err("policy max TTL exceeds 30 days");
        }
        if self.retention_days == 0 || self.retention_days > MAX_RETENTION_DAYS {
            return Err("policy retention must be 1-3650 days");
        }
        Ok(())
    }
}

/// The signed fields of an org descriptor, in wire order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgDescriptorBody {
    /// The org (must have signed it).
    pub org: OrgKey,
    /// Increases with every change; clients keep the highest they have seen.
    pub version: u64,
    /// Relays the org's members use, each with its pinned key hash.
    pub relays: BoundedVec<RelayAddress, MAX_RELAYS>,
    /// libsignal sealed-sender trust root (Curve25519, 33 bytes): the org certifies it
    /// here, and recipients accept sender certificates that chain to it.
    pub sealed_sender_trust_root: SignalPublicKey,
    /// Org-wide rules.
    pub policy: Policy,
}

impl SignedBody for OrgDescriptorBody {
    const KIND: &'static str = "org descriptor";
    const CONTEXT: &'static [u8] = context::ORG_DESCRIPTOR;
    const MAX_ENCODED_LEN: usize = 8 * 1024;

    fn check(&self) -> Result<(), &'static str> {
        self.policy.check()?;
        let relays = self.relays.as_slice();
        for (i, r) in relays.iter().enumerate() {
            if relays[..i].contains(r) {
                return Err("a relay is listed twice");
            }
        }
        Ok(())
    }

    fn signer(&self) -> [u8; 32] {
        self.org.to_bytes()
    }
}

/// An org descriptor: [`OrgDescriptorBody`] signed by the org root.
pub type OrgDescriptor = Signed<OrgDescriptorBody>;
