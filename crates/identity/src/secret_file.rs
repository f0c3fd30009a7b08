//! Secrets at rest: bytes encrypted under a passphrase with Argon2id and
//! XChaCha20-Poly1305.
//!
//! Layout (all integers big-endian):
//! `"PSTNKEY1" || m_cost_kib u32 || t_cost u32 || p_cost u32 || salt[16] || nonce[24] ||
//! ciphertext-with-tag`. The key is Argon2id(passphrase, salt, m, t, p), 32 bytes; the
//! 60-byte header is the AEAD's associated data, so altering a parameter fails like a
//! wrong passphrase.
//!
//! Production parameters are [`KdfParams::STRONG`] (64 MiB, 3 passes). Test builds (the
//! `insecure-fast-kdf` feature) let `POSTERN_INSECURE_FAST_KDF=1` select
//! [`KdfParams::INSECURE_FAST`] in [`KdfParams::from_env`]; files made that way fall to a
//! cheap brute force and must never hold real keys. Other builds ignore the variable. The parameters travel in the header, so opening needs no setting.

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

use crate::error::SecretFileError;
use crate::keys::os_random;

/// Magic at the start of a secret file.
pub const MAGIC: &[u8; 8] = b"PSTNKEY1";
/// Header length (magic, parameters, salt, nonce).
pub const HEADER_LEN: usize = 8 + 12 + 16 + 24;
/// Longest secret file accepted.
pub const MAX_FILE_LEN: usize = 1 << 20;
/// The environment variable that selects [`KdfParams::INSECURE_FAST`].
pub const INSECURE_FAST_KDF_ENV: &str = "POSTERN_INSECURE_FAST_KDF";

// Bounds on parameters read from a file, so a hostile header cannot demand 4 TiB.
const MAX_M_COST_KIB: u32 = 1 << 20;
const MAX_T_COST: u32 = 16;
const MAX_P_COST: u32 = 8;

/// Argon2id cost parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m_cost_kib: u32,
    /// Passes.
    pub t_cost: u32,
    /// Lanes.
    pub p_cost: u32,
}

impl Default for KdfParams {
    /// [`KdfParams::STRONG`]: m = 64 MiB, t = 3, p = 1 (RFC 9106's second recommended
    /// option).
    fn default() -> Self {
        Self::STRONG
    }
}

impl KdfParams {
    /// The default: 64 MiB, 3 passes, 1 lane.
    pub const STRONG: Self = Self {
        m_cost_kib: 64 * 1024,
        t_cost: 3,
        p_cost: 1,
    };

    /// For tests only: 64 KiB, 1 pass. Selected by `POSTERN_INSECURE_FAST_KDF=1`.
    pub const INSECURE_FAST: Self = Self {
        m_cost_kib: 64,
        t_cost: 1,
        p_cost: 1,
    };

    /// **Insecure**: 8 KiB (Argon2's least), one pass. Only for tests and benchmarks that
    /// create many vaults; a passphrase behind these parameters falls to a cheap brute
    /// force.
    pub fn insecure_for_tests() -> Self {
        Self {
            m_cost_kib: 8,
            t_cost: 1,
            p_cost: 1,
        }
    }

    /// [`Self::INSECURE_FAST`] if `POSTERN_INSECURE_FAST_KDF=1`, else [`Self::STRONG`].
    pub fn from_env() -> Self {
        if Self::insecure_fast_requested() {
            Self::INSECURE_FAST
        } else {
            Self::STRONG
        }
    }

    /// Whether `POSTERN_INSECURE_FAST_KDF=1` is set and this build honours it (test
    /// builds only: the `insecure-fast-kdf` feature).
    pub fn insecure_fast_requested() -> bool {
        cfg!(feature = "insecure-fast-kdf") && Self::insecure_fast_env()
    }

    /// Whether `POSTERN_INSECURE_FAST_KDF=1` is set but this build ignores it (a release
    /// build: keys are derived at full strength whatever the environment says).
    pub fn insecure_fast_ignored() -> bool {
        !cfg!(feature = "insecure-fast-kdf") && Self::insecure_fast_env()
    }

    fn insecure_fast_env() -> bool {
        std::env::var_os(INSECURE_FAST_KDF_ENV).is_some_and(|v| v == "1")
    }

    fn check(&self) -> Result<Params, SecretFileError> {
        if self.m_cost_kib > MAX_M_COST_KIB || self.t_cost > MAX_T_COST || self.p_cost > MAX_P_COST
        {
            return Err(SecretFileError::BadHeader("KDF parameters out of range"));
        }
        Params::new(self.m_cost_kib, self.t_cost, self.p_cost, Some(32))
            .map_err(|_| SecretFileError::BadHeader("KDF parameters out of range"))
    }
}

fn derive_key(
    passphrase: &[u8],
    salt: &[u8],
    params: &KdfParams,
) -> Result<Zeroizing<[u8; 32]>, SecretFileError> {
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.check()?);
    let mut key = Zeroizing::new([0u8; 32]);
    argon
        .hash_password_into(passphrase, salt, key.as_mut())
        .map_err(|e| SecretFileError::Kdf(e.to_string()))?;
    Ok(key)
}

/// Encrypts `plaintext` under `passphrase`.
pub fn seal(
    plaintext: &[u8],
    passphrase: &[u8],
    params: KdfParams,
) -> Result<Vec<u8>, SecretFileError> {
    let mut salt = [0u8; 16];
    os_random(&mut salt);
    let mut nonce = [0u8; 24];
    os_random(&mut nonce);
    seal_with(plaintext, passphrase, params, salt, nonce)
}

/// [`seal`] with a given salt and nonce (test vectors).
#[doc(hidden)]
pub fn seal_with(
    plaintext: &[u8],
    passphrase: &[u8],
    params: KdfParams,
    salt: [u8; 16],
    nonce: [u8; 24],
) -> Result<Vec<u8>, SecretFileError> {
    let key = derive_key(passphrase, &salt, &params)?;
    let mut header = Vec::with_capacity(HEADER_LEN);
    header.extend_from_slice(MAGIC);
    header.extend_from_slice(&params.m_cost_kib.to_be_bytes());
    header.extend_from_slice(&params.t_cost.to_be_bytes());
    header.extend_from_slice(&params.p_cost.to_be_bytes());
    header.extend_from_slice(&salt);
    header.extend_from_slice(&nonce);
    let ciphertext = XChaCha20Poly1305::new(key.as_ref().into())
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad: &header,
            },
        )
        .map_err(|_| SecretFileError::Kdf("encryption failed".into()))?;
    header.extend_from_slice(&ciphertext);
    Ok(header)
}

/// The KDF parameters a secret file was made with.
pub fn params_of(file: &[u8]) -> Result<KdfParams, SecretFileError> {
    if file.len() < 8 || &file[..8] != MAGIC {
        return Err(SecretFileError::NotASecretFile);
    }
    if file.len() < HEADER_LEN + 16 {
        return Err(SecretFileError::BadHeader("truncated"));
    }
    let word = |i: usize| {
        let mut b = [0u8; 4];
        b.copy_from_slice(&file[8 + 4 * i..12 + 4 * i]);
        u32::from_be_bytes(b)
    };
    Ok(KdfParams {
        m_cost_kib: word(0),
        t_cost: word(1),
        p_cost: word(2),
    })
}

/// Decrypts a secret file. A wrong passphrase is [`SecretFileError::WrongPassphrase`].
pub fn open(file: &[u8], passphrase: &[u8]) -> Result<Zeroizing<Vec<u8>>, SecretFileError> {
    if file.len() > MAX_FILE_LEN {
        return Err(SecretFileError::BadHeader("file too large"));
    }
    let params = params_of(file)?;
    let (header, ciphertext) = file.split_at(HEADER_LEN);
    let salt = &header[20..36];
    let nonce = &header[36..60];
    let key = derive_key(passphrase, salt, &params)?;
    XChaCha20Poly1305::new(key.as_ref().into())
        .decrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad: header,
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| SecretFileError::WrongPassphrase)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Takes the variable as the caller's environment has it (this test does not set
    /// it: `set_var` is unsafe beside other threads). `cargo test -p postern-identity`
    /// builds without the feature, `cargo test --workspace` with it; run either with and
    /// without `POSTERN_INSECURE_FAST_KDF=1` for all four cases.
    #[test]
    fn the_fast_kdf_variable_works_only_in_test_builds() {
        let set = std::env::var_os(INSECURE_FAST_KDF_ENV).is_some_and(|v| v == "1");
        if cfg!(feature = "insecure-fast-kdf") {
            assert_eq!(KdfParams::insecure_fast_requested(), set);
            assert!(!KdfParams::insecure_fast_ignored());
        } else {
            assert!(!KdfParams::insecure_fast_requested());
            assert_eq!(KdfParams::insecure_fast_ignored(), set);
            assert_eq!(KdfParams::from_env(), KdfParams::STRONG);
        }
    }

    #[test]
    fn round_trip_and_wrong_passphrase() {
        let file = seal(b"secret", b"correct horse", KdfParams::INSECURE_FAST).unwrap();
        assert_eq!(open(&file, b"correct horse").unwrap().as_slice(), b"secret");
        assert_eq!(
            open(&file, b"wrong horse"),
            Err(SecretFileError::WrongPassphrase)
        );
    }

    #[test]
    fn altered_header_or_body_fails_like_a_wrong_passphrase() {
        let file = seal(b"secret", b"pw", KdfParams::INSECURE_FAST).unwrap();
        for i in 8..file.len() {
            let mut bad = file.clone();
            bad[i] ^= 1;
            assert!(open(&bad, b"pw").is_err(), "byte {i}");
        }
        assert_eq!(
            open(b"nonsense", b"pw"),
            Err(SecretFileError::NotASecretFile)
        );
        assert!(matches!(
            open(&file[..HEADER_LEN], b"pw"),
            Err(SecretFileError::BadHeader(_))
        ));
    }

    #[test]
    fn hostile_parameters_are_refused_before_deriving() {
        let mut file = seal(b"secret", b"pw", KdfParams::INSECURE_FAST).unwrap();
        file[8..12].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(
            open(&file, b"pw"),
            Err(SecretFileError::BadHeader(_))
        ));
    }

    // Production strength is a compile-time guarantee.
    const _: () =
        assert!(KdfParams::STRONG.m_cost_kib >= 64 * 1024 && KdfParams::STRONG.t_cost >= 3);

    #[test]
    fn strong_parameters_are_the_default() {
        if !KdfParams::insecure_fast_requested() {
            assert_eq!(KdfParams::from_env(), KdfParams::STRONG);
        }
    }

    #[test]
    fn the_file_records_its_parameters() {
        let file = seal(b"s", b"pw", KdfParams::INSECURE_FAST).unwrap();
        assert_eq!(params_of(&file), Ok(KdfParams::INSECURE_FAST));
    }
}
