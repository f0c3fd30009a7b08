//! Protocol versions and their negotiation in `Hello` / `Welcome`.

/// ALPN protocol id for QUIC.
pub const ALPN: &[u8] = b"postern/1";

/// The protocol version this crate implements.
pub const PROTOCOL_VERSION: u16 = 2;

/// Versions this crate can speak, newest first.
pub const SUPPORTED_VERSIONS: &[u16] = &[PROTOCOL_VERSION];

/// The version to use: the client's most preferred offer that we support.
pub fn negotiate(offered: &[u16]) -> Option<u16> {
    offered
        .iter()
        .copied()
        .find(|v| SUPPORTED_VERSIONS.contains(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_picks_the_clients_first_supported_offer() {
        assert_eq!(negotiate(&[9, 2]), Some(2));
        // Version 1 (sends on admitted connections) is no longer spoken.
        assert_eq!(negotiate(&[0, 1, 9]), None);
        assert_eq!(negotiate(&[]), None);
    }
}
