//! The prekey bundle's wire form (libsignal has no serde). Fixed-width fields, bounded,
//! no trailing bytes; every key is parsed by libsignal and both signatures are checked
//! by `process_prekey_bundle` when a session is started. Format: `protocol-spec/E2E.md`.
//!
//! ```text
//! u8  version = 1
//! u32 registration id (BE)
//! u8  device id (1..=127)
//! u8  flags: bit 0 = a one-time EC prekey follows; other bits must be 0
//! [u32 one-time prekey id, 33 B public key]            if bit 0
//! u32 signed prekey id, 33 B public key, 64 B XEdDSA signature
//! u32 Kyber prekey id, u16 key length k (<= 1600), k B key, 64 B XEdDSA signature
//! 33 B identity key
//! ```

use libsignal_protocol::{
    DeviceId, IdentityKey, KyberPreKeyId, PreKeyBundle, PreKeyId, PublicKey, SignedPreKeyId, kem,
};

use crate::keys::{OneTimePreKey, PublicPreKeys, SignedEcPreKey, SignedKyberPreKey};

/// Version byte of the bundle encoding.
pub const BUNDLE_VERSION: u8 = 1;
/// Largest Kyber public key accepted (Kyber1024 is 1569 bytes serialized).
pub const MAX_KYBER_KEY_LEN: usize = 1600;
/// Length of an XEdDSA signature.
pub const SIGNATURE_LEN: usize = 64;
/// Length of a serialized Curve25519 public key.
pub const EC_KEY_LEN: usize = 33;
/// Largest valid encoding.
pub const MAX_BUNDLE_LEN: usize = 1
    + 4
    + 1
    + 1
    + (4 + EC_KEY_LEN)
    + (4 + EC_KEY_LEN + SIGNATURE_LEN)
    + (4 + 2 + MAX_KYBER_KEY_LEN + SIGNATURE_LEN)
    + EC_KEY_LEN;

/// A prekey bundle could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    /// Input ended inside a field.
    #[error("prekey bundle truncated")]
    Truncated,
    /// Input longer than [`MAX_BUNDLE_LEN`].
    #[error("prekey bundle too large: {len} bytes, at most {MAX_BUNDLE_LEN}")]
    TooLarge {
        /// Bytes offered.
        len: usize,
    },
    /// Bytes left after the last field.
    #[error("prekey bundle has trailing bytes")]
    TrailingBytes,
    /// Unknown version byte.
    #[error("unsupported prekey bundle version {0}")]
    UnsupportedVersion(u8),
    /// A field has a value outside its range, or a key does not parse.
    #[error("invalid prekey bundle field: {0}")]
    Invalid(&'static str),
}

/// Encodes a libsignal `PreKeyBundle`.
pub fn encode_bundle(bundle: &PreKeyBundle) -> Result<Vec<u8>, BundleError> {
    let f = |_| BundleError::Invalid("bundle field unavailable");
    let mut out = Vec::with_capacity(MAX_BUNDLE_LEN);
    out.push(BUNDLE_VERSION);
    out.extend_from_slice(&bundle.registration_id().map_err(f)?.to_be_bytes());
    out.push(u8::from(bundle.device_id().map_err(f)?));
    match (
        bundle.pre_key_id().map_err(f)?,
        bundle.pre_key_public().map_err(f)?,
    ) {
        (Some(id), Some(key)) => {
            out.push(1);
            out.extend_from_slice(&u32::from(id).to_be_bytes());
            push_ec(&mut out, &key)?;
        }
        _ => out.push(0),
    }
    out.extend_from_slice(&u32::from(bundle.signed_pre_key_id().map_err(f)?).to_be_bytes());
    push_ec(&mut out, &bundle.signed_pre_key_public().map_err(f)?)?;
    push_sig(&mut out, bundle.signed_pre_key_signature().map_err(f)?)?;
    out.extend_from_slice(&u32::from(bundle.kyber_pre_key_id().map_err(f)?).to_be_bytes());
    let kyber = bundle.kyber_pre_key_public().map_err(f)?.serialize();
    if kyber.len() > MAX_KYBER_KEY_LEN {
        return Err(BundleError::Invalid("Kyber key too long"));
    }
    out.extend_from_slice(&(kyber.len() as u16).to_be_bytes());
    out.extend_from_slice(&kyber);
    push_sig(&mut out, bundle.kyber_pre_key_signature().map_err(f)?)?;
    push_ec(&mut out, bundle.identity_key().map_err(f)?.public_key())?;
    Ok(out)
}

fn push_ec(out: &mut Vec<u8>, key: &PublicKey) -> Result<(), BundleError> {
    let bytes = key.serialize();
    if bytes.len() != EC_KEY_LEN {
        return Err(BundleError::Invalid("EC key is not 33 bytes"));
    }
    out.extend_from_slice(&bytes);
    Ok(())
}

fn push_sig(out: &mut Vec<u8>, sig: &[u8]) -> Result<(), BundleError> {
    if sig.len() != SIGNATURE_LEN {
        return Err(BundleError::Invalid("signature is not 64 bytes"));
    }
    out.extend_from_slice(sig);
    Ok(())
}

/// A cursor that never reads past the end.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], BundleError> {
        if self.0.len() < n {
            return Err(BundleError::Truncated);
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, BundleError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, BundleError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, BundleError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn ec(&mut self, what: &'static str) -> Result<PublicKey, BundleError> {
        PublicKey::deserialize(self.take(EC_KEY_LEN)?).map_err(|_| BundleError::Invalid(what))
    }
}

/// Decodes a bundle. Keys are parsed; signatures are verified later by
/// `process_prekey_bundle`.
pub fn decode_bundle(bytes: &[u8]) -> Result<PreKeyBundle, BundleError> {
    if bytes.len() > MAX_BUNDLE_LEN {
        return Err(BundleError::TooLarge { len: bytes.len() });
    }
    let mut r = Reader(bytes);
    let version = r.u8()?;
    if version != BUNDLE_VERSION {
        return Err(BundleError::UnsupportedVersion(version));
    }
    let registration_id = r.u32()?;
    let device_id = DeviceId::new(r.u8()?).map_err(|_| BundleError::Invalid("device id"))?;
    let flags = r.u8()?;
    if flags & !1 != 0 {
        return Err(BundleError::Invalid("unknown flag bits"));
    }
    let one_time = if flags & 1 == 1 {
        let id = PreKeyId::from(r.u32()?);
        Some((id, r.ec("one-time prekey")?))
    } else {
        None
    };
    let signed_id = SignedPreKeyId::from(r.u32()?);
    let signed_key = r.ec("signed prekey")?;
    let signed_sig = r.take(SIGNATURE_LEN)?.to_vec();
    let kyber_id = KyberPreKeyId::from(r.u32()?);
    let kyber_len = usize::from(r.u16()?);
    if kyber_len > MAX_KYBER_KEY_LEN {
        return Err(BundleError::Invalid("Kyber key too long"));
    }
    let kyber_key = kem::PublicKey::deserialize(r.take(kyber_len)?)
        .map_err(|_| BundleError::Invalid("Kyber prekey"))?;
    let kyber_sig = r.take(SIGNATURE_LEN)?.to_vec();
    let identity = IdentityKey::new(r.ec("identity key")?);
    if !r.0.is_empty() {
        return Err(BundleError::TrailingBytes);
    }
    PreKeyBundle::new(
        registration_id,
        device_id,
        one_time,
        signed_id,
        signed_key,
        signed_sig,
        kyber_id,
        kyber_key,
        kyber_sig,
        identity,
    )
    .map_err(|_| BundleError::Invalid("libsignal refused the bundle"))
}

/// Version byte of the published-prekey encodings ([`encode_public_prekeys`],
/// [`encode_one_time_prekey`]).
pub const PUBLISHED_VERSION: u8 = 1;
/// Largest encoding of [`PublicPreKeys`].
pub const MAX_PUBLIC_PREKEYS_LEN: usize = 1
    + 4
    + (4 + EC_KEY_LEN + SIGNATURE_LEN)
    + (4 + 2 + MAX_KYBER_KEY_LEN + SIGNATURE_LEN)
    + EC_KEY_LEN;
/// Largest encoding of a [`OneTimePreKey`].
pub const MAX_ONE_TIME_PREKEY_LEN: usize =
    1 + (4 + EC_KEY_LEN) + (4 + 2 + MAX_KYBER_KEY_LEN + SIGNATURE_LEN);

fn push_kyber(out: &mut Vec<u8>, k: &SignedKyberPreKey) -> Result<(), BundleError> {
    out.extend_from_slice(&u32::from(k.id).to_be_bytes());
    let key = k.public.serialize();
    if key.len() > MAX_KYBER_KEY_LEN {
        return Err(BundleError::Invalid("Kyber key too long"));
    }
    out.extend_from_slice(&(key.len() as u16).to_be_bytes());
    out.extend_from_slice(&key);
    push_sig(out, &k.signature)
}

impl Reader<'_> {
    fn kyber(&mut self) -> Result<SignedKyberPreKey, BundleError> {
        let id = KyberPreKeyId::from(self.u32()?);
        let len = usize::from(self.u16()?);
        if len > MAX_KYBER_KEY_LEN {
            return Err(BundleError::Invalid("Kyber key too long"));
        }
        let public = kem::PublicKey::deserialize(self.take(len)?)
            .map_err(|_| BundleError::Invalid("Kyber prekey"))?;
        let signature = self.take(SIGNATURE_LEN)?.to_vec();
        Ok(SignedKyberPreKey {
            id,
            public,
            signature,
        })
    }

    fn version(&mut self) -> Result<(), BundleError> {
        match self.u8()? {
            PUBLISHED_VERSION => Ok(()),
            v => Err(BundleError::UnsupportedVersion(v)),
        }
    }

    fn end(&self) -> Result<(), BundleError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(BundleError::TrailingBytes)
        }
    }
}

/// Encodes a member's long-lived public prekeys (the prekey part of its directory
/// entry): `u8 version = 1 ‖ u32 registration id ‖ u32 signed id ‖ 33 B key ‖ 64 B sig
/// ‖ u32 Kyber id ‖ u16 k ‖ k B key ‖ 64 B sig ‖ 33 B identity key`.
pub fn encode_public_prekeys(keys: &PublicPreKeys) -> Result<Vec<u8>, BundleError> {
    let mut out = Vec::with_capacity(MAX_PUBLIC_PREKEYS_LEN);
    out.push(PUBLISHED_VERSION);
    out.extend_from_slice(&keys.registration_id.to_be_bytes());
    out.extend_from_slice(&u32::from(keys.signed.id).to_be_bytes());
    push_ec(&mut out, &keys.signed.public)?;
    push_sig(&mut out, &keys.signed.signature)?;
    push_kyber(&mut out, &keys.last_resort)?;
    push_ec(&mut out, keys.identity.public_key())?;
    Ok(out)
}

/// Decodes [`encode_public_prekeys`] and verifies both signatures under the identity key
/// it carries (the caller checks that key against the member certificate).
pub fn decode_public_prekeys(bytes: &[u8]) -> Result<PublicPreKeys, BundleError> {
    if bytes.len() > MAX_PUBLIC_PREKEYS_LEN {
        return Err(BundleError::TooLarge { len: bytes.len() });
    }
    let mut r = Reader(bytes);
    r.version()?;
    let registration_id = r.u32()?;
    let signed_id = SignedPreKeyId::from(r.u32()?);
    let signed_public = r.ec("signed prekey")?;
    let signed_sig = r.take(SIGNATURE_LEN)?.to_vec();
    let last_resort = r.kyber()?;
    let identity = IdentityKey::new(r.ec("identity key")?);
    r.end()?;
    let ik = identity.public_key();
    if !ik.verify_signature(&signed_public.serialize(), &signed_sig)
        || !ik.verify_signature(&last_resort.public.serialize(), &last_resort.signature)
    {
        return Err(BundleError::Invalid("prekey signature does not verify"));
    }
    Ok(PublicPreKeys {
        registration_id,
        identity,
        signed: SignedEcPreKey {
            id: signed_id,
            public: signed_public,
            signature: signed_sig,
        },
        last_resort,
    })
}

/// Encodes one one-time unit: `u8 version = 1 ‖ u32 EC id ‖ 33 B key ‖ u32 Kyber id ‖
/// u16 k ‖ k B key ‖ 64 B sig`.
pub fn encode_one_time_prekey(key: &OneTimePreKey) -> Result<Vec<u8>, BundleError> {
    let mut out = Vec::with_capacity(MAX_ONE_TIME_PREKEY_LEN);
    out.push(PUBLISHED_VERSION);
    out.extend_from_slice(&u32::from(key.ec_id).to_be_bytes());
    push_ec(&mut out, &key.ec_public)?;
    push_kyber(&mut out, &key.kyber)?;
    Ok(out)
}

/// Decodes [`encode_one_time_prekey`]. The Kyber signature is verified when the session
/// is started.
pub fn decode_one_time_prekey(bytes: &[u8]) -> Result<OneTimePreKey, BundleError> {
    if bytes.len() > MAX_ONE_TIME_PREKEY_LEN {
        return Err(BundleError::TooLarge { len: bytes.len() });
    }
    let mut r = Reader(bytes);
    r.version()?;
    let ec_id = PreKeyId::from(r.u32()?);
    let ec_public = r.ec("one-time prekey")?;
    let kyber = r.kyber()?;
    r.end()?;
    Ok(OneTimePreKey {
        ec_id,
        ec_public,
        kyber,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::vault::{KdfParams, Vault};
    use proptest::prelude::*;

    fn sample() -> Vec<u8> {
        let tmp = tempfile::tempdir().unwrap();
        let v = Vault::create(tmp.path(), b"pw", KdfParams::insecure_for_tests()).unwrap();
        v.initialise_member("bob", std::time::SystemTime::now())
            .unwrap();
        v.prekey_bundle().unwrap()
    }

    #[test]
    fn bundle_round_trips_and_every_truncation_or_extension_is_refused() {
        let enc = sample();
        assert!(enc.len() <= MAX_BUNDLE_LEN);
        let bundle = decode_bundle(&enc).unwrap();
        assert_eq!(encode_bundle(&bundle).unwrap(), enc);
        for n in 0..enc.len() {
            assert!(decode_bundle(&enc[..n]).is_err(), "prefix of {n} bytes");
        }
        let mut longer = enc.clone();
        longer.push(0);
        assert!(matches!(
            decode_bundle(&longer),
            Err(BundleError::TrailingBytes)
        ));
        let mut bad = enc.clone();
        bad[0] = 2;
        assert!(matches!(
            decode_bundle(&bad),
            Err(BundleError::UnsupportedVersion(2))
        ));
        assert!(matches!(
            decode_bundle(&vec![1; MAX_BUNDLE_LEN + 1]),
            Err(BundleError::TooLarge { .. })
        ));
    }

    #[test]
    fn published_prekeys_round_trip_and_assemble_into_a_bundle() {
        let tmp = tempfile::tempdir().unwrap();
        let v = Vault::create(tmp.path(), b"pw", KdfParams::insecure_for_tests()).unwrap();
        v.initialise_member("bob", std::time::SystemTime::now())
            .unwrap();
        let public = v.public_prekeys().unwrap();
        let enc = encode_public_prekeys(&public).unwrap();
        assert!(enc.len() <= MAX_PUBLIC_PREKEYS_LEN);
        let back = decode_public_prekeys(&enc).unwrap();
        assert_eq!(encode_public_prekeys(&back).unwrap(), enc);
        for n in 0..enc.len() {
            assert!(decode_public_prekeys(&enc[..n]).is_err());
        }
        // A flipped signature byte is caught at decode.
        let mut bad = enc.clone();
        bad[1 + 4 + 4 + EC_KEY_LEN] ^= 1;
        assert!(matches!(
            decode_public_prekeys(&bad),
            Err(BundleError::Invalid(_))
        ));
        let batch = v.generate_one_time_prekeys(2).unwrap();
        let one = encode_one_time_prekey(&batch.keys[1]).unwrap();
        assert!(one.len() <= MAX_ONE_TIME_PREKEY_LEN);
        let one_back = decode_one_time_prekey(&one).unwrap();
        assert_eq!(encode_one_time_prekey(&one_back).unwrap(), one);
        for n in 0..one.len() {
            assert!(decode_one_time_prekey(&one[..n]).is_err());
        }
        let with = crate::assemble_bundle(&back, Some(&one_back)).unwrap();
        assert_eq!(with.pre_key_id().unwrap(), Some(one_back.ec_id));
        let without = crate::assemble_bundle(&back, None).unwrap();
        assert_eq!(without.pre_key_id().unwrap(), None);
        assert_eq!(without.kyber_pre_key_id().unwrap(), public.last_resort.id);
        decode_bundle(&encode_bundle(&with).unwrap()).unwrap();
    }

    proptest! {
        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let _ = decode_bundle(&bytes);
            let _ = decode_public_prekeys(&bytes);
            let _ = decode_one_time_prekey(&bytes);
        }
    }
}
