//! Validated values carried by delivery events: [`FamilyRef`], [`Currency`], [`Amount`]
//! and [`EventText`]. Each type can only hold a valid value, including after decoding.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::ValueError;

/// Shortest family reference.
pub const MIN_FAMILY_REF_LEN: usize = 3;
/// Longest family reference.
pub const MAX_FAMILY_REF_LEN: usize = 24;
/// Longest note or failure reason, in bytes of UTF-8.
pub const MAX_TEXT_LEN: usize = 1000;

/// A reference to a recipient family: an opaque code agreed out of band, **never a name**
/// (nor anything else that identifies a person or place). 3–24 characters of `A-Z 0-9 -`,
/// starting and ending with a letter or digit. Lower-case letters are refused rather
/// than folded, so a name typed by mistake is more likely to be noticed.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct FamilyRef(String);

impl FamilyRef {
    /// Checks and wraps a family reference.
    pub fn new(code: &str) -> Result<Self, ValueError> {
        let ok_len = (MIN_FAMILY_REF_LEN..=MAX_FAMILY_REF_LEN).contains(&code.len());
        let ok_chars = code
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-');
        let ok_ends = !code.starts_with('-') && !code.ends_with('-');
        if ok_len && ok_chars && ok_ends {
            Ok(Self(code.to_owned()))
        } else {
            Err(ValueError::BadFamilyRef)
        }
    }

    /// The code text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for FamilyRef {
    type Error = ValueError;
    fn try_from(s: String) -> Result<Self, ValueError> {
        Self::new(&s)
    }
}

impl From<FamilyRef> for String {
    fn from(f: FamilyRef) -> Self {
        f.0
    }
}

impl FromStr for FamilyRef {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, ValueError> {
        Self::new(s)
    }
}

impl fmt::Display for FamilyRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for FamilyRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FamilyRef({})", self.0)
    }
}

/// The ISO 4217 currencies this crate knows, with their minor-unit exponents. Only these
/// are accepted: an amount in a currency whose exponent we do not know could not be
/// parsed or shown correctly.
pub const CURRENCIES: [(&str, u8); 7] = [
    ("CNY", 2),
    ("EUR", 2),
    ("GBP", 2),
    ("JPY", 0),
    ("KRW", 0),
    ("RUB", 2),
    ("USD", 2),
];

/// An ISO 4217 currency from [`CURRENCIES`]. On the wire: its three ASCII letters.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "[u8; 3]", into = "[u8; 3]")]
pub struct Currency([u8; 3]);

impl Currency {
    /// Checks a three-letter upper-case code against [`CURRENCIES`].
    pub fn new(code: &str) -> Result<Self, ValueError> {
        let bytes: [u8; 3] = code
            .as_bytes()
            .try_into()
            .map_err(|_| ValueError::BadCurrency)?;
        Self::try_from(bytes)
    }

    /// The three-letter code.
    pub fn code(&self) -> &str {
        // Only ever constructed from an entry of CURRENCIES, which is ASCII.
        std::str::from_utf8(&self.0).unwrap_or("???")
    }

    /// Number of decimal digits of the minor unit (KRW 0, USD 2, ...).
    pub fn exponent(&self) -> u8 {
        CURRENCIES
            .iter()
            .find(|(c, _)| c.as_bytes() == self.0)
            .map_or(0, |(_, e)| *e)
    }
}

impl TryFrom<[u8; 3]> for Currency {
    type Error = ValueError;
    fn try_from(bytes: [u8; 3]) -> Result<Self, ValueError> {
        if !bytes.iter().all(u8::is_ascii_uppercase) {
            return Err(ValueError::BadCurrency);
        }
        if CURRENCIES.iter().any(|(c, _)| c.as_bytes() == bytes) {
            Ok(Self(bytes))
        } else {
            Err(ValueError::UnknownCurrency)
        }
    }
}

impl From<Currency> for [u8; 3] {
    fn from(c: Currency) -> Self {
        c.0
    }
}

impl FromStr for Currency {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, ValueError> {
        Self::new(s)
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Currency({})", self.code())
    }
}

/// A positive amount of money in integer minor units of a currency (cents for USD, won
/// for KRW). Never a float: parsing and formatting are exact.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(try_from = "AmountWire", into = "AmountWire")]
pub struct Amount {
    minor: u64,
    currency: Currency,
}

#[derive(Serialize, Deserialize)]
struct AmountWire {
    minor: u64,
    currency: Currency,
}

impl TryFrom<AmountWire> for Amount {
    type Error = ValueError;
    fn try_from(w: AmountWire) -> Result<Self, ValueError> {
        Self::from_minor(w.minor, w.currency)
    }
}

impl From<Amount> for AmountWire {
    fn from(a: Amount) -> Self {
        Self {
            minor: a.minor,
            currency: a.currency,
        }
    }
}

impl Amount {
    /// An amount of `minor` minor units; zero is refused.
    pub fn from_minor(minor: u64, currency: Currency) -> Result<Self, ValueError> {
        if minor == 0 {
            return Err(ValueError::ZeroAmount);
        }
        Ok(Self { minor, currency })
    }

    /// Parses a plain decimal such as `1500.50` exactly: ASCII digits, optionally a `.`
    /// and at most the currency's exponent of fraction digits (none for KRW and JPY).
    /// Refused: signs, spaces, thousands separators, exponents, an empty integer or
    /// fraction part, too many fraction digits, zero, and values beyond `u64` minor units.
    pub fn parse(decimal: &str, currency: Currency) -> Result<Self, ValueError> {
        let exp = usize::from(currency.exponent());
        let (int_part, frac_part) = match decimal.split_once('.') {
            Some((i, f)) => (i, Some(f)),
            None => (decimal, None),
        };
        let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !all_digits(int_part) {
            return Err(ValueError::BadAmount);
        }
        let frac = match frac_part {
            None => "",
            Some(f) if !all_digits(f) => return Err(ValueError::BadAmount),
            Some(f) if f.len() > exp => {
                return Err(ValueError::TooManyDecimals {
                    currency: currency.code().to_owned(),
                    max: currency.exponent(),
                });
            }
            Some(f) => f,
        };
        let mut minor: u64 = 0;
        let padded = frac.bytes().chain(std::iter::repeat(b'0')).take(exp);
        for b in int_part.bytes().chain(padded) {
            minor = minor
                .checked_mul(10)
                .and_then(|m| m.checked_add(u64::from(b - b'0')))
                .ok_or(ValueError::AmountOverflow)?;
        }
        Self::from_minor(minor, currency)
    }

    /// The amount in minor units.
    pub fn minor(&self) -> u64 {
        self.minor
    }

    /// The currency.
    pub fn currency(&self) -> Currency {
        self.currency
    }

    /// The plain decimal form, with exactly the currency's number of fraction digits
    /// (`1500.50`, `30000`). [`Amount::parse`] reads it back to the same amount.
    pub fn to_decimal(&self) -> String {
        let exp = u32::from(self.currency.exponent());
        if exp == 0 {
            return self.minor.to_string();
        }
        let scale = 10u64.pow(exp);
        format!(
            "{}.{:0width$}",
            self.minor / scale,
            self.minor % scale,
            width = exp as usize
        )
    }
}

impl fmt::Display for Amount {
    /// `1500.50 USD`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.to_decimal(), self.currency)
    }
}

/// Free text of a note or a failure reason: 1–[`MAX_TEXT_LEN`] bytes of UTF-8 without
/// control characters (other than line feed) or bidirectional overrides, so that text
/// from another member cannot rewrite a terminal or disguise itself when shown.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EventText(String);

fn is_forbidden_char(c: char) -> bool {
    (c.is_control() && c != '\n')
        || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}')
}

impl EventText {
    /// Checks and wraps text.
    pub fn new(text: &str) -> Result<Self, ValueError> {
        if text.trim().is_empty() || text.len() > MAX_TEXT_LEN {
            return Err(ValueError::BadTextLength { max: MAX_TEXT_LEN });
        }
        if text.chars().any(is_forbidden_char) {
            return Err(ValueError::ForbiddenCharacter);
        }
        Ok(Self(text.to_owned()))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for EventText {
    type Error = ValueError;
    fn try_from(s: String) -> Result<Self, ValueError> {
        Self::new(&s)
    }
}

impl From<EventText> for String {
    fn from(t: EventText) -> Self {
        t.0
    }
}

impl fmt::Display for EventText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for EventText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EventText({:?})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cur(c: &str) -> Currency {
        Currency::new(c).unwrap()
    }

    #[test]
    fn family_refs_are_codes_not_names() {
        for ok in ["F-1042", "ABC", "K7-33-X", "A23456789012345678901234"] {
            assert!(FamilyRef::new(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "AB",
            "Kim Jong",
            "kim",
            "F_1",
            "-F1",
            "F1-",
            "A234567890123456789012345",
            "FÖÖ",
            "F 1",
        ] {
            assert_eq!(FamilyRef::new(bad), Err(ValueError::BadFamilyRef), "{bad}");
        }
    }

    #[test]
    fn currency_codes_are_checked_and_know_their_exponent() {
        assert_eq!(cur("KRW").exponent(), 0);
        assert_eq!(cur("JPY").exponent(), 0);
        assert_eq!(cur("CNY").exponent(), 2);
        assert_eq!(cur("USD").exponent(), 2);
        assert_eq!(cur("EUR").exponent(), 2);
        assert_eq!(Currency::new("usd"), Err(ValueError::BadCurrency));
        assert_eq!(Currency::new("US"), Err(ValueError::BadCurrency));
        assert_eq!(Currency::new("USDT"), Err(ValueError::BadCurrency));
        assert_eq!(Currency::new("XYZ"), Err(ValueError::UnknownCurrency));
    }

    #[test]
    fn amounts_parse_exactly() {
        let usd = cur("USD");
        assert_eq!(Amount::parse("1500.50", usd).unwrap().minor(), 150_050);
        assert_eq!(Amount::parse("1500.5", usd).unwrap().minor(), 150_050);
        assert_eq!(Amount::parse("1500", usd).unwrap().minor(), 150_000);
        assert_eq!(Amount::parse("0.01", usd).unwrap().minor(), 1);
        assert_eq!(Amount::parse("007", usd).unwrap().minor(), 700);
        assert_eq!(
            Amount::parse("300000", cur("KRW")).unwrap().minor(),
            300_000
        );
        assert_eq!(
            Amount::parse("184467440737095516.15", usd).unwrap().minor(),
            u64::MAX
        );
        assert_eq!(
            Amount::parse("18446744073709551615", cur("KRW"))
                .unwrap()
                .minor(),
            u64::MAX
        );
    }

    #[test]
    fn bad_amounts_are_refused() {
        let usd = cur("USD");
        let krw = cur("KRW");
        for bad in [
            "", ".", ".5", "5.", "-5", "+5", " 5", "5 ", "1,500", "1e3", "1.2.3", "١٢", "0x10",
        ] {
            assert_eq!(
                Amount::parse(bad, usd),
                Err(ValueError::BadAmount),
                "{bad:?}"
            );
        }
        assert!(matches!(
            Amount::parse("1.005", usd),
            Err(ValueError::TooManyDecimals { max: 2, .. })
        ));
        assert!(matches!(
            Amount::parse("1500.5", krw),
            Err(ValueError::TooManyDecimals { max: 0, .. })
        ));
        assert_eq!(Amount::parse("0", usd), Err(ValueError::ZeroAmount));
        assert_eq!(Amount::parse("0.00", usd), Err(ValueError::ZeroAmount));
        assert_eq!(
            Amount::parse("184467440737095516.16", usd),
            Err(ValueError::AmountOverflow)
        );
        assert_eq!(
            Amount::parse("18446744073709551616", krw),
            Err(ValueError::AmountOverflow)
        );
        assert_eq!(
            Amount::parse("99999999999999999999999999", krw),
            Err(ValueError::AmountOverflow)
        );
    }

    #[test]
    fn amounts_format_with_the_currency_exponent() {
        let usd = cur("USD");
        assert_eq!(
            Amount::from_minor(150_050, usd).unwrap().to_decimal(),
            "1500.50"
        );
        assert_eq!(Amount::from_minor(5, usd).unwrap().to_decimal(), "0.05");
        assert_eq!(
            Amount::from_minor(300_000, cur("KRW")).unwrap().to_string(),
            "300000 KRW"
        );
        assert_eq!(
            Amount::from_minor(u64::MAX, usd).unwrap().to_decimal(),
            "184467440737095516.15"
        );
    }

    proptest::proptest! {
        #[test]
        fn amount_format_parses_back(minor in 1u64.., which in 0usize..CURRENCIES.len()) {
            let c = cur(CURRENCIES[which].0);
            let a = Amount::from_minor(minor, c).unwrap();
            proptest::prop_assert_eq!(Amount::parse(&a.to_decimal(), c).unwrap(), a);
        }

        #[test]
        fn amount_parse_never_panics(s in "\\PC{0,30}") {
            let _ = Amount::parse(&s, cur("USD"));
            let _ = Amount::parse(&s, cur("KRW"));
        }
    }

    #[test]
    fn event_text_refuses_terminal_tricks() {
        assert!(EventText::new("waited at the gate\nno answer").is_ok());
        assert_eq!(
            EventText::new(""),
            Err(ValueError::BadTextLength { max: MAX_TEXT_LEN })
        );
        assert_eq!(
            EventText::new("  \n"),
            Err(ValueError::BadTextLength { max: MAX_TEXT_LEN })
        );
        assert!(EventText::new(&"x".repeat(MAX_TEXT_LEN)).is_ok());
        assert!(EventText::new(&"x".repeat(MAX_TEXT_LEN + 1)).is_err());
        for bad in ["a\u{1b}[2Jb", "a\rb", "a\u{202E}b", "a\u{2066}b", "a\0b"] {
            assert_eq!(
                EventText::new(bad),
                Err(ValueError::ForbiddenCharacter),
                "{bad:?}"
            );
        }
    }
}
