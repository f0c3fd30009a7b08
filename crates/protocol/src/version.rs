//! Protocol versions and their negotiation in `Hello` / `Welcome`.

/// ALPN protocol id for QUIC: HTTP/3's, the one nearly every QUIC server on the internet
/// offers. It claims nothing (the relay speaks no HTTP/3); it only keeps Postern's own
/// name out of the ClientHello, which anyone on the path can decrypt from a QUIC Initial.
/// The protocol is identified and negotiated by `Hello`, inside the encrypted session.
pub const ALPN: &[u8] = b"h3";

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
