//! Hand-off proof: the one-time [`HandoffCode`] and the coordinators' [`CoordinatorSecret`].
//!
//! A code is 16 decimal digits shown in four groups of four (`4821-0937-5512-3406`): 15
//! uniformly random digits and a Damm check digit. Entropy: 15·log2(10) ≈ 49.8 bits; the
//! check digit adds none but lets the courier's client catch every single misheard digit
//! and every swap of adjacent digits *before* the code is sent, so a typo over a bad
//! phone line does not use up one of the few attempts. Digits are read out the same way
//! in every language the families and couriers use.
//!
//! The commitment is `SHA-256(context || salt || delivery id || 16 ASCII digits)` with a
//! 32-byte random salt. It lives only in a [`CoordinatorSecret`], a record separate from
//! every event type, kept by coordinators and sent only to other coordinators. A courier
//! who held it could try all 10^15 codes offline; without it, the courier can only guess
//! online, and [`crate::MAX_HANDOFF_ATTEMPTS`] wrong guesses flag the delivery.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::error::{DecodeError, ValueError};
use crate::ids::{DeliveryId, ID_LEN};

/// Digits in a hand-off code, the check digit included.
pub const HANDOFF_CODE_DIGITS: usize = 16;
/// Random digits in a hand-off code (the last digit is a check digit).
pub const HANDOFF_RANDOM_DIGITS: usize = HANDOFF_CODE_DIGITS - 1;
/// Digits per group when a code is shown.
pub const HANDOFF_GROUP_LEN: usize = 4;
/// Domain separation for the commitment hash.
pub const COMMITMENT_CONTEXT: &[u8] = b"postern/1 handoff-commitment\0";
/// Version byte of an encoded [`CoordinatorSecret`].
pub const SECRET_VERSION: u8 = 1;
/// Length of an encoded [`CoordinatorSecret`].
pub const SECRET_ENCODED_LEN: usize = 1 + ID_LEN + 32 + 32;

/// Entropy of a hand-off code in bits, from its format: `HANDOFF_RANDOM_DIGITS`
/// uniformly random decimal digits.
pub fn handoff_code_entropy_bits() -> f64 {
    HANDOFF_RANDOM_DIGITS as f64 * 10f64.log2()
}

// The Damm algorithm's quasigroup: detects all single-digit errors and all adjacent
// transpositions.
const DAMM: [[u8; 10]; 10] = [
    [0, 3, 1, 7, 5, 9, 8, 6, 4, 2],
    [7, 0, 9, 2, 1, 5, 4, 8, 6, 3],
    [4, 2, 0, 6, 8, 7, 1, 3, 5, 9],
    [1, 7, 5, 0, 9, 8, 3, 4, 2, 6],
    [6, 1, 2, 3, 0, 4, 5, 9, 7, 8],
    [3, 6, 7, 4, 2, 0, 9, 5, 8, 1],
    [5, 8, 6, 9, 7, 2, 0, 1, 3, 4],
    [8, 9, 4, 5, 3, 6, 2, 0, 1, 7],
    [9, 4, 3, 8, 6, 1, 7, 2, 0, 5],
    [2, 5, 8, 1, 4, 3, 6, 7, 9, 0],
];

/// The Damm check digit of `digits` (values 0–9).
pub fn damm_check_digit(digits: &[u8]) -> u8 {
    digits.iter().fold(0u8, |interim, &d| {
        DAMM[usize::from(interim)][usize::from(d % 10)]
    })
}

/// A one-time hand-off code: exactly 16 ASCII digits whose last is the Damm check digit
/// of the others. Wiped on drop; `Debug` does not show it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
#[serde(
    try_from = "[u8; HANDOFF_CODE_DIGITS]",
    into = "[u8; HANDOFF_CODE_DIGITS]"
)]
pub struct HandoffCode([u8; HANDOFF_CODE_DIGITS]);

impl HandoffCode {
    /// A fresh code from the OS random source (coordinator side).
    pub fn generate() -> Self {
        use rand::{Rng, TryRngCore};
        let mut rng = rand::rngs::OsRng.unwrap_err();
        let mut values = [0u8; HANDOFF_CODE_DIGITS];
        for v in values.iter_mut().take(HANDOFF_RANDOM_DIGITS) {
            *v = rng.random_range(0..10u8);
        }
        let code = Self::from_values(values);
        values.zeroize();
        code
    }

    /// The code for 15 random digit values (0–9); the check digit is computed.
    fn from_values(mut values: [u8; HANDOFF_CODE_DIGITS]) -> Self {
        values[HANDOFF_RANDOM_DIGITS] = damm_check_digit(&values[..HANDOFF_RANDOM_DIGITS]);
        let mut ascii = [0u8; HANDOFF_CODE_DIGITS];
        for (a, v) in ascii.iter_mut().zip(values.iter()) {
            *a = b'0' + v;
        }
        values.zeroize();
        Self(ascii)
    }

    /// Reads a code as typed or read out: ASCII digits, with any spaces, tabs and dashes
    /// removed first. Refuses anything else, a wrong number of digits
    /// ([`ValueError::BadHandoffCode`]) and a failed check digit
    /// ([`ValueError::HandoffCheckDigit`], almost always a misheard digit).
    pub fn parse(text: &str) -> Result<Self, ValueError> {
        let mut digits = [0u8; HANDOFF_CODE_DIGITS];
        let mut n = 0usize;
        for b in text.bytes() {
            match b {
                b' ' | b'\t' | b'-' => {}
                b'0'..=b'9' if n < HANDOFF_CODE_DIGITS => {
                    digits[n] = b;
                    n += 1;
                }
                _ => {
                    digits.zeroize();
                    return Err(ValueError::BadHandoffCode);
                }
            }
        }
        if n != HANDOFF_CODE_DIGITS {
            digits.zeroize();
            return Err(ValueError::BadHandoffCode);
        }
        Self::try_from(digits)
    }

    /// The 16 digits without separators (the normalised form that is committed to).
    pub fn digits(&self) -> &[u8; HANDOFF_CODE_DIGITS] {
        &self.0
    }

    /// The code as shown to the coordinator and read to the family:
    /// `4821-0937-5512-3406`.
    pub fn display_grouped(&self) -> String {
        self.0
            .chunks(HANDOFF_GROUP_LEN)
            .map(|g| g.iter().map(|&b| char::from(b)).collect::<String>())
            .collect::<Vec<_>>()
            .join("-")
    }
}

impl TryFrom<[u8; HANDOFF_CODE_DIGITS]> for HandoffCode {
    type Error = ValueError;
    fn try_from(mut ascii: [u8; HANDOFF_CODE_DIGITS]) -> Result<Self, ValueError> {
        if !ascii.iter().all(u8::is_ascii_digit) {
            ascii.zeroize();
            return Err(ValueError::BadHandoffCode);
        }
        let values: Vec<u8> = ascii.iter().map(|b| b - b'0').collect();
        let ok = damm_check_digit(&values) == 0;
        let mut values = values;
        values.zeroize();
        if ok {
            Ok(Self(ascii))
        } else {
            ascii.zeroize();
            Err(ValueError::HandoffCheckDigit)
        }
    }
}

impl From<HandoffCode> for [u8; HANDOFF_CODE_DIGITS] {
    fn from(c: HandoffCode) -> Self {
        c.0
    }
}

impl fmt::Debug for HandoffCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HandoffCode(<redacted>)")
    }
}

/// What coordinators hold to verify a delivery's hand-off: the salt and the commitment.
/// Never part of any event; send it only to other coordinators (end-to-end encrypted),
/// never to a courier. Wiped on drop; `Debug` shows only the delivery id.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct CoordinatorSecret {
    #[zeroize(skip)]
    delivery: DeliveryId,
    salt: [u8; 32],
    commitment: [u8; 32],
}

impl CoordinatorSecret {
    /// Commits to `code` for `delivery` with a fresh random salt.
    pub fn commit(delivery: DeliveryId, code: &HandoffCode) -> Self {
        use rand::{RngCore, TryRngCore};
        let mut salt = [0u8; 32];
        rand::rngs::OsRng.unwrap_err().fill_bytes(&mut salt);
        Self::commit_with_salt(delivery, salt, code)
    }

    /// Commits with a given salt (test vectors; use [`CoordinatorSecret::commit`]).
    pub fn commit_with_salt(delivery: DeliveryId, salt: [u8; 32], code: &HandoffCode) -> Self {
        let commitment = commitment(&delivery, &salt, code);
        Self {
            delivery,
            salt,
            commitment,
        }
    }

    /// The delivery this secret is for.
    pub fn delivery(&self) -> DeliveryId {
        self.delivery
    }

    /// The commitment bytes (for test vectors and storage checks).
    pub fn commitment(&self) -> &[u8; 32] {
        &self.commitment
    }

    /// Whether `code` is the committed code, compared in constant time.
    pub fn verify(&self, code: &HandoffCode) -> bool {
        let candidate = commitment(&self.delivery, &self.salt, code);
        bool::from(candidate.ct_eq(&self.commitment))
    }

    /// Encodes for a coordinator's local store or for another coordinator:
    /// `version (1) || delivery id (16) || salt (32) || commitment (32)`.
    pub fn encode(&self) -> zeroize::Zeroizing<Vec<u8>> {
        let mut out = zeroize::Zeroizing::new(Vec::with_capacity(SECRET_ENCODED_LEN));
        out.push(SECRET_VERSION);
        out.extend_from_slice(self.delivery.as_bytes());
        out.extend_from_slice(&self.salt);
        out.extend_from_slice(&self.commitment);
        out
    }

    /// Decodes [`CoordinatorSecret::encode`]'s output.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        match bytes.first() {
            None => return Err(DecodeError::Empty),
            Some(&SECRET_VERSION) => {}
            Some(&v) => return Err(DecodeError::UnsupportedVersion(v)),
        }
        if bytes.len() != SECRET_ENCODED_LEN {
            return Err(if bytes.len() > SECRET_ENCODED_LEN {
                DecodeError::TooLong {
                    len: bytes.len(),
                    max: SECRET_ENCODED_LEN,
                }
            } else {
                DecodeError::Malformed
            });
        }
        let take = |from: usize, to: usize| bytes.get(from..to).ok_or(DecodeError::Malformed);
        let delivery = DeliveryId(
            take(1, 17)?
                .try_into()
                .map_err(|_| DecodeError::Malformed)?,
        );
        let salt = take(17, 49)?
            .try_into()
            .map_err(|_| DecodeError::Malformed)?;
        let commitment = take(49, 81)?
            .try_into()
            .map_err(|_| DecodeError::Malformed)?;
        Ok(Self {
            delivery,
            salt,
            commitment,
        })
    }
}

impl fmt::Debug for CoordinatorSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CoordinatorSecret({}, <redacted>)", self.delivery)
    }
}

fn commitment(delivery: &DeliveryId, salt: &[u8; 32], code: &HandoffCode) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(COMMITMENT_CONTEXT);
    h.update(salt);
    h.update(delivery.as_bytes());
    h.update(code.digits());
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_entropy_is_at_least_40_bits_from_the_format() {
        assert_eq!(HANDOFF_RANDOM_DIGITS, 15);
        assert!(handoff_code_entropy_bits() >= 40.0);
        assert!((handoff_code_entropy_bits() - 49.82).abs() < 0.01);
        // The shown form is 4 groups of 4 digits.
        let shown = HandoffCode::generate().display_grouped();
        assert_eq!(shown.len(), 19);
        assert_eq!(shown.split('-').count(), 4);
        assert!(
            shown
                .split('-')
                .all(|g| g.len() == 4 && g.bytes().all(|b| b.is_ascii_digit()))
        );
    }

    #[test]
    fn damm_matches_the_published_example() {
        // 572 -> check digit 4 (Damm 2004).
        assert_eq!(damm_check_digit(&[5, 7, 2]), 4);
        assert_eq!(damm_check_digit(&[5, 7, 2, 4]), 0);
    }

    #[test]
    fn generated_codes_parse_in_every_written_form() {
        for _ in 0..50 {
            let code = HandoffCode::generate();
            let grouped = code.display_grouped();
            assert_eq!(HandoffCode::parse(&grouped).unwrap(), code);
            assert_eq!(
                HandoffCode::parse(&grouped.replace('-', " ")).unwrap(),
                code
            );
            let plain: String = code.digits().iter().map(|&b| char::from(b)).collect();
            assert_eq!(HandoffCode::parse(&plain).unwrap(), code);
            assert_eq!(HandoffCode::parse(&format!(" {plain}\t")).unwrap(), code);
        }
    }

    #[test]
    fn a_misheard_digit_or_swap_is_caught_before_sending() {
        let code = HandoffCode::generate();
        let digits = *code.digits();
        for i in 0..HANDOFF_CODE_DIGITS {
            for d in b'0'..=b'9' {
                if d == digits[i] {
                    continue;
                }
                let mut typo = digits;
                typo[i] = d;
                assert_eq!(
                    HandoffCode::try_from(typo),
                    Err(ValueError::HandoffCheckDigit)
                );
            }
            if i + 1 < HANDOFF_CODE_DIGITS && digits[i] != digits[i + 1] {
                let mut swapped = digits;
                swapped.swap(i, i + 1);
                assert_eq!(
                    HandoffCode::try_from(swapped),
                    Err(ValueError::HandoffCheckDigit)
                );
            }
        }
    }

    #[test]
    fn malformed_codes_are_refused() {
        for bad in [
            "",
            "1234",
            "1234-5678-9012-345",
            "1234-5678-9012-34567",
            "1234.5678.9012.3456",
            "١٢٣٤٥٦٧٨٩٠١٢٣٤٥٦",
            "abcd-efgh-ijkl-mnop",
        ] {
            assert_eq!(
                HandoffCode::parse(bad),
                Err(ValueError::BadHandoffCode),
                "{bad}"
            );
        }
    }

    #[test]
    fn commitment_verifies_only_the_committed_code_for_that_delivery() {
        let id = DeliveryId::random();
        let code = HandoffCode::generate();
        let secret = CoordinatorSecret::commit(id, &code);
        assert!(secret.verify(&code));
        let other = loop {
            let c = HandoffCode::generate();
            if c != code {
                break c;
            }
        };
        assert!(!secret.verify(&other));
        let elsewhere = CoordinatorSecret::commit_with_salt(DeliveryId::random(), [0; 32], &code);
        let here = CoordinatorSecret::commit_with_salt(id, [0; 32], &code);
        assert_ne!(elsewhere.commitment(), here.commitment());
    }

    #[test]
    fn secrets_round_trip_and_do_not_print() {
        let secret = CoordinatorSecret::commit(DeliveryId::random(), &HandoffCode::generate());
        let bytes = secret.encode();
        assert_eq!(bytes.len(), SECRET_ENCODED_LEN);
        assert_eq!(CoordinatorSecret::decode(&bytes).unwrap(), secret);
        assert_eq!(CoordinatorSecret::decode(&[]), Err(DecodeError::Empty));
        assert_eq!(
            CoordinatorSecret::decode(&bytes[..80]),
            Err(DecodeError::Malformed)
        );
        assert_eq!(
            CoordinatorSecret::decode(&[2; 81]),
            Err(DecodeError::UnsupportedVersion(2))
        );
        let debug = format!("{secret:?}");
        assert!(!debug.contains(&hex::encode(secret.commitment())));
        let code = HandoffCode::generate();
        let plain: String = code.digits().iter().map(|&b| char::from(b)).collect();
        assert!(!format!("{code:?}").contains(&plain));
    }

    proptest::proptest! {
        #[test]
        fn code_parse_never_panics(s in "\\PC{0,40}") {
            let _ = HandoffCode::parse(&s);
        }

        #[test]
        fn secret_decode_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..100)) {
            let _ = CoordinatorSecret::decode(&bytes);
        }
    }
}
