//! Relay addresses as the org descriptor carries them:
//! `postern://<lowercase base32 SHA-256 of the relay's SPKI>@host:port`.
//!
//! The same text form as `postern_protocol::address::RelayAddress`; this crate keeps its
//! own copy so it depends on nothing else of Postern's.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::keys::{decode_base32, encode_base32};

/// URL scheme of a relay address.
pub const SCHEME: &str = "postern://";

/// Longest host name accepted (DNS limit).
pub const MAX_HOST_LEN: usize = 253;

/// A relay's network address with the SHA-256 hash of its public key (SPKI DER), which
/// clients pin: a relay with another key is never accepted.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "RawRelayAddress", into = "RawRelayAddress")]
pub struct RelayAddress {
    pin: [u8; 32],
    host: String,
    port: u16,
}

#[derive(Serialize, Deserialize)]
struct RawRelayAddress {
    pin: [u8; 32],
    host: String,
    port: u16,
}

/// A relay address could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RelayAddressError {
    /// It does not start with `postern://`.
    #[error("a relay address starts with postern://")]
    Scheme,
    /// The part before `@` is not a base32 SHA-256 hash.
    #[error("the key pin (before '@') must be the base32 SHA-256 of the relay key (52 characters)")]
    Pin,
    /// No `@host:port` part, or a bad host or port.
    #[error("expected postern://<pin>@host:port with a host name or IP and a port 1-65535")]
    HostPort,
}

fn valid_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= MAX_HOST_LEN
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'))
}

impl RelayAddress {
    /// Checks and builds an address.
    pub fn new(pin: [u8; 32], host: &str, port: u16) -> Result<Self, RelayAddressError> {
        if !valid_host(host) || port == 0 {
            return Err(RelayAddressError::HostPort);
        }
        Ok(Self {
            pin,
            host: host.to_owned(),
            port,
        })
    }

    /// SHA-256 of the relay certificate's SubjectPublicKeyInfo (DER).
    pub fn pin(&self) -> &[u8; 32] {
        &self.pin
    }

    /// Host name or IP literal (IPv6 without brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// UDP port.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl TryFrom<RawRelayAddress> for RelayAddress {
    type Error = RelayAddressError;
    fn try_from(raw: RawRelayAddress) -> Result<Self, RelayAddressError> {
        Self::new(raw.pin, &raw.host, raw.port)
    }
}

impl From<RelayAddress> for RawRelayAddress {
    fn from(a: RelayAddress) -> Self {
        Self {
            pin: a.pin,
            host: a.host,
            port: a.port,
        }
    }
}

impl FromStr for RelayAddress {
    type Err = RelayAddressError;

    fn from_str(s: &str) -> Result<Self, RelayAddressError> {
        let rest = s.strip_prefix(SCHEME).ok_or(RelayAddressError::Scheme)?;
        let (pin, hostport) = rest.split_once('@').ok_or(RelayAddressError::HostPort)?;
        let pin = decode_base32(pin).ok_or(RelayAddressError::Pin)?;
        let pin = <[u8; 32]>::try_from(pin.as_slice()).map_err(|_| RelayAddressError::Pin)?;
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            v6.split_once("]:").ok_or(RelayAddressError::HostPort)?
        } else {
            hostport
                .rsplit_once(':')
                .ok_or(RelayAddressError::HostPort)?
        };
        let port: u16 = port.parse().map_err(|_| RelayAddressError::HostPort)?;
        Self::new(pin, host, port)
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
            let a = RelayAddress::new([7; 32], host, 4433).unwrap();
            let text = a.to_string();
            assert_eq!(text.parse::<RelayAddress>().unwrap(), a, "{text}");
            let bytes = postcard::to_allocvec(&a).unwrap();
            assert_eq!(postcard::from_bytes::<RelayAddress>(&bytes).unwrap(), a);
        }
    }

    #[test]
    fn bad_addresses_are_refused_with_the_reason() {
        let pin = encode_base32(&[7; 32]);
        assert_eq!(
            "https://x@h:1".parse::<RelayAddress>(),
            Err(RelayAddressError::Scheme)
        );
        assert_eq!(
            format!("postern://{}@h:1", &pin[..50]).parse::<RelayAddress>(),
            Err(RelayAddressError::Pin)
        );
        for bad in ["h", "h:0", "h:99999", ":1", "h h:1", "[::1:5"] {
            assert_eq!(
                format!("postern://{pin}@{bad}").parse::<RelayAddress>(),
                Err(RelayAddressError::HostPort),
                "{bad}"
            );
        }
    }

    #[test]
    fn decoding_refuses_an_invalid_host() {
        let raw = RawRelayAddress {
            pin: [1; 32],
            host: "bad host".into(),
            port: 1,
        };
        let bytes = postcard::to_allocvec(&raw).unwrap();
        assert!(postcard::from_bytes::<RelayAddress>(&bytes).is_err());
    }
}
