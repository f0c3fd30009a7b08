//! Relay addresses: `postern://<base32 sha-256 of the relay's SPKI>@host:port`.
//!
//! The pin travels with the address, so a client never accepts a relay whose key differs,
//! whatever a certificate authority or the network says.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::ids::{decode_base32, encode_base32};

/// URL scheme of a relay address.
pub const SCHEME: &str = "postern://";

/// A relay's network address together with the SHA-256 hash of its public key (SPKI DER).
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RelayAddress {
    /// SHA-256 of the relay certificate's SubjectPublicKeyInfo (DER).
    pub pin: [u8; 32],
    /// Host name or IP literal (IPv6 without brackets).
    pub host: String,
    /// UDP port.
    pub port: u16,
}

/// A relay address could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// It does not start with `postern://`.
    #[error("a relay address starts with postern://")]
    Scheme,
    /// The part before `@` is not a base32 SHA-256 hash.
    #[error("the key pin (before '@') must be the base32 SHA-256 of the relay key (52 characters)")]
    Pin,
    /// No `@host:port` part, or a bad host or port.
    #[error("expected postern://<pin>@host:port")]
    HostPort,
}

impl FromStr for RelayAddress {
    type Err = AddressError;

    fn from_str(s: &str) -> Result<Self, AddressError> {
        let rest = s.strip_prefix(SCHEME).ok_or(AddressError::Scheme)?;
        let (pin, hostport) = rest.split_once('@').ok_or(AddressError::HostPort)?;
        let pin = decode_base32(pin).map_err(|_| AddressError::Pin)?;
        let pin = <[u8; 32]>::try_from(pin.as_slice()).map_err(|_| AddressError::Pin)?;
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (host, port) = v6.split_once("]:").ok_or(AddressError::HostPort)?;
            (host, port)
        } else {
            hostport.rsplit_once(':').ok_or(AddressError::HostPort)?
        };
        if host.is_empty()
            || host.len() > 253
            || !host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'))
        {
            return Err(AddressError::HostPort);
        }
        let port: u16 = port.parse().map_err(|_| AddressError::HostPort)?;
        if port == 0 {
            return Err(AddressError::HostPort);
        }
        Ok(Self {
            pin,
            host: host.to_owned(),
            port,
        })
    }
}

impl fmt::Display for RelayAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pin = encode_base32(&self.pin);
        if self.host.contains(':') {
            write!(f, "{SCHEME}{pin}@[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{SCHEME}{pin}@{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Debug for RelayAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RelayAddress({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_round_trips_v4_v6_and_names() {
        for host in ["127.0.0.1", "relay.example.org", "::1"] {
            let a = RelayAddress {
                pin: [7; 32],
                host: host.into(),
                port: 4433,
            };
            let text = a.to_string();
            assert_eq!(text.parse::<RelayAddress>().unwrap(), a, "{text}");
        }
    }

    #[test]
    fn bad_addresses_are_refused_with_the_reason() {
        let pin = encode_base32(&[7; 32]);
        assert_eq!(
            "https://x@h:1".parse::<RelayAddress>(),
            Err(AddressError::Scheme)
        );
        assert_eq!(
            format!("postern://{}@h:1", &pin[..50]).parse::<RelayAddress>(),
            Err(AddressError::Pin)
        );
        for bad in ["h", "h:0", "h:99999", ":1", "h h:1", "[::1:5"] {
            assert_eq!(
                format!("postern://{pin}@{bad}").parse::<RelayAddress>(),
                Err(AddressError::HostPort),
                "{bad}"
            );
        }
    }
}
