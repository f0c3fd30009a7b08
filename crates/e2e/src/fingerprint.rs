//! Safety numbers (libsignal fingerprints, version 2, 5200 iterations) for out-of-band
//! checks: the same 60 digits on both sides, or a scannable form to compare.

use libsignal_protocol::{Fingerprint, IdentityKey, ScannableFingerprint};

use crate::error::E2eError;

/// Fingerprint version (as Signal's apps).
pub const FINGERPRINT_VERSION: u32 = 2;
/// Hash iterations (as Signal's apps).
pub const FINGERPRINT_ITERATIONS: u32 = 5200;

/// A safety number between two members. Ids are the member names (handles).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SafetyNumber {
    /// 60 digits, identical on both sides; show in groups of five.
    pub digits: String,
    /// Our scannable form (e.g. a QR code); the peer compares it with theirs.
    pub scannable: Vec<u8>,
}

impl SafetyNumber {
    /// Computes the safety number of `local` with `remote`.
    pub fn new(
        local_name: &str,
        local: &IdentityKey,
        remote_name: &str,
        remote: &IdentityKey,
    ) -> Result<Self, E2eError> {
        let fp = Fingerprint::new(
            FINGERPRINT_VERSION,
            FINGERPRINT_ITERATIONS,
            local_name.as_bytes(),
            local,
            remote_name.as_bytes(),
            remote,
        )
        .map_err(|_| E2eError::Fingerprint("cannot compute"))?;
        Ok(Self {
            digits: fp
                .display_string()
                .map_err(|_| E2eError::Fingerprint("cannot display"))?,
            scannable: fp
                .scannable
                .serialize()
                .map_err(|_| E2eError::Fingerprint("cannot serialize"))?,
        })
    }

    /// Whether the peer's scanned form matches ours (false = a different key somewhere).
    pub fn matches_scanned(&self, scanned: &[u8]) -> Result<bool, E2eError> {
        let ours = ScannableFingerprint::deserialize(&self.scannable)
            .map_err(|_| E2eError::Fingerprint("ours does not parse"))?;
        ours.compare(scanned)
            .map_err(|_| E2eError::Fingerprint("scanned form does not parse"))
    }
}
