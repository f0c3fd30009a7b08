//! The vault header (`<dir>/header`): KDF parameters, salt and a check tag, and the key
//! schedule derived from the passphrase. Format: `protocol-spec/E2E.md` ("Vault").
//!
//! ```text
//! 0   8  magic "PSTVAULT"
//! 8   1  version = 1
//! 9   1  KDF = 1 (Argon2id, v0x13)
//! 10  4  m_cost in KiB (BE)
//! 14  4  t_cost (BE)
//! 18  4  p_cost (BE)
//! 22  32 salt
//! 54  32 check = HMAC-SHA-256(check key, bytes 0..54)
//! ```
//! Keys: `root = Argon2id(passphrase, salt, m, t, p)` (32 bytes); then
//! `HKDF-SHA-256(ikm = root, salt = none, info = "postern vault v1 <purpose>")` for the
//! purposes `check`, `value` (XChaCha20-Poly1305) and `blind` (HMAC-SHA-256 table keys).

use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::VaultError;

/// File magic.
pub const MAGIC: &[u8; 8] = b"PSTVAULT";
/// Header format version.
pub const HEADER_VERSION: u8 = 1;
/// KDF id for Argon2id version 0x13.
pub const KDF_ARGON2ID: u8 = 1;
/// Header length in bytes.
pub const HEADER_LEN: usize = 86;

/// Argon2id parameters: the identity crate's type, shared with the org's secret file.
/// [`KdfParams::default`] is the only setting for real vaults.
pub use postern_identity::secret_file::KdfParams;

/// Bounds on what a vault header may ask for, so a hostile header cannot make us
/// allocate without limit.
fn check(params: &KdfParams) -> Result<(), VaultError> {
    if !(8..=4 * 1024 * 1024).contains(&params.m_cost_kib) {
        return Err(VaultError::BadHeader("m_cost out of range"));
    }
    if !(1..=64).contains(&params.t_cost) {
        return Err(VaultError::BadHeader("t_cost out of range"));
    }
    if !(1..=16).contains(&params.p_cost) {
        return Err(VaultError::BadHeader("p_cost out of range"));
    }
    Ok(())
}

/// The three vault keys. Wiped on drop; no Debug.
#[derive(Zeroize, ZeroizeOnDrop)]
pub(crate) struct VaultKeys {
    /// XChaCha20-Poly1305 key for every value.
    pub(crate) value: [u8; 32],
    /// HMAC-SHA-256 key blinding table keys.
    pub(crate) blind: [u8; 32],
    /// HMAC-SHA-256 key for the header check tag.
    check: [u8; 32],
}

fn derive_keys(
    passphrase: &[u8],
    salt: &[u8; 32],
    params: KdfParams,
) -> Result<VaultKeys, VaultError> {
    check(&params)?;
    let argon_params =
        argon2::Params::new(params.m_cost_kib, params.t_cost, params.p_cost, Some(32))
            .map_err(|_| VaultError::BadHeader("Argon2 refused the parameters"))?;
    let argon = argon2::Argon2::new(
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        argon_params,
    );
    let mut root = Zeroizing::new([0u8; 32]);
    argon
        .hash_password_into(passphrase, salt, root.as_mut())
        .map_err(|_| VaultError::BadHeader("Argon2 failed"))?;
    let hk = Hkdf::<Sha256>::new(None, root.as_ref());
    let mut keys = VaultKeys {
        value: [0; 32],
        blind: [0; 32],
        check: [0; 32],
    };
    let expand = |info: &[u8], out: &mut [u8; 32]| {
        hk.expand(info, out)
            .map_err(|_| VaultError::BadHeader("HKDF expand"))
    };
    expand(b"postern vault v1 value", &mut keys.value)?;
    expand(b"postern vault v1 blind", &mut keys.blind)?;
    expand(b"postern vault v1 check", &mut keys.check)?;
    Ok(keys)
}

fn check_tag(keys: &VaultKeys, body: &[u8]) -> Result<[u8; 32], VaultError> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&keys.check)
        .map_err(|_| VaultError::BadHeader("HMAC key"))?;
    mac.update(body);
    Ok(mac.finalize().into_bytes().into())
}

/// Makes a new header and its keys.
pub(crate) fn create(
    passphrase: &[u8],
    params: KdfParams,
    salt: [u8; 32],
) -> Result<([u8; HEADER_LEN], VaultKeys), VaultError> {
    let keys = derive_keys(passphrase, &salt, params)?;
    let mut h = [0u8; HEADER_LEN];
    h[0..8].copy_from_slice(MAGIC);
    h[8] = HEADER_VERSION;
    h[9] = KDF_ARGON2ID;
    h[10..14].copy_from_slice(&params.m_cost_kib.to_be_bytes());
    h[14..18].copy_from_slice(&params.t_cost.to_be_bytes());
    h[18..22].copy_from_slice(&params.p_cost.to_be_bytes());
    h[22..54].copy_from_slice(&salt);
    let tag = check_tag(&keys, &h[..54])?;
    h[54..86].copy_from_slice(&tag);
    Ok((h, keys))
}

/// Parses a header and derives the keys; a wrong passphrase fails the check tag.
pub(crate) fn open(bytes: &[u8], passphrase: &[u8]) -> Result<(KdfParams, VaultKeys), VaultError> {
    if bytes.len() < 8 || &bytes[0..8] != MAGIC {
        return Err(VaultError::NotAVault);
    }
    if bytes.len() != HEADER_LEN {
        return Err(VaultError::BadHeader("wrong header length"));
    }
    if bytes[8] != HEADER_VERSION {
        return Err(VaultError::UnsupportedVersion(bytes[8]));
    }
    if bytes[9] != KDF_ARGON2ID {
        return Err(VaultError::BadHeader("unknown KDF"));
    }
    let be = |i: usize| u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    let params = KdfParams {
        m_cost_kib: be(10),
        t_cost: be(14),
        p_cost: be(18),
    };
    let mut salt = [0u8; 32];
    salt.copy_from_slice(&bytes[22..54]);
    let keys = derive_keys(passphrase, &salt, params)?;
    let tag = check_tag(&keys, &bytes[..54])?;
    if !bool::from(tag.ct_eq(&bytes[54..86])) {
        return Err(VaultError::WrongPassphrase);
    }
    Ok((params, keys))
}
