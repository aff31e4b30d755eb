//! Contact addresses: phone numbers in E.164 and e-mail addresses.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Country code assumed for numbers written in the Italian national format.
const ITALY: &str = "39";

/// Caller-id texts switchboards and carriers use when the caller hid the number.
const WITHHELD_MARKERS: &[&str] = &[
    "anonymous",
    "unknown",
    "private",
    "restricted",
    "withheld",
    "unavailable",
];

/// Why a text is not a usable phone number.
///
/// Messages never repeat the number itself: it is personal data and errors end up in logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    /// The caller hid the number (`anonymous`, `private`, ... or nothing at all).
    #[error("phone number is withheld")]
    Withheld,
    #[error("phone number contains '{0}', which is not a digit or a separator")]
    InvalidCharacter(char),
    #[error("phone number has '+' somewhere other than at the start")]
    MisplacedPlus,
    #[error("phone number has {digits} digits, too few for a {kind} number")]
    TooShort { digits: usize, kind: &'static str },
    #[error("phone number has {digits} digits, too many for a {kind} number")]
    TooLong { digits: usize, kind: &'static str },
    #[error("phone number has no digits")]
    NoDigits,
    #[error("international phone number cannot have a country code starting with 0")]
    BadCountryCode,
    #[error("phone number is neither international nor an Italian landline or mobile number")]
    Unrecognised,
}

/// A phone number in E.164 form (`+` and up to 15 digits), as used to match callers to citizens.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PhoneNumber(String);

impl PhoneNumber {
    /// Normalises the shapes switchboards, carriers and people write numbers in.
    ///
    /// International numbers come as `+CC...` or `00CC...`; bare digit strings of 11 to 15
    /// digits not starting with 0 are E.164 without the `+` (Zammad's CTI sends `39...`), since
    /// no Italian national number is that long. Shorter numbers are Italian: mobiles start with
    /// `3`, landlines with `0`, which Italy keeps after the country code. Spaces, dots, dashes,
    /// slashes and parentheses are separators; a `(0)` trunk hint is dropped for foreign numbers.
    pub fn parse(raw: &str) -> Result<PhoneNumber, PhoneError> {
        let text = raw.trim();
        if text.is_empty()
            || WITHHELD_MARKERS
                .iter()
                .any(|m| text.eq_ignore_ascii_case(m))
        {
            return Err(PhoneError::Withheld);
        }

        let mut digits = String::with_capacity(text.len());
        let mut plus = false;
        // Byte offset in `digits` of a "(0)" trunk hint, as in "+44 (0)20 ...".
        let mut trunk_hint: Option<usize> = None;
        let bytes = text.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            match b {
                b'0'..=b'9' => digits.push(char::from(b)),
                b'+' => {
                    if i != 0 {
                        return Err(PhoneError::MisplacedPlus);
                    }
                    plus = true;
                }
                b'(' if bytes.get(i + 1..i + 3) == Some(b"0)") => {
                    trunk_hint = Some(digits.len());
                    digits.push('0');
                    i += 3;
                    continue;
                }
                b' ' | b'-' | b'.' | b'/' | b'(' | b')' | b'\t' => {}
                _ => {
                    let ch = text.get(i..).and_then(|t| t.chars().next()).unwrap_or('?');
                    return Err(PhoneError::InvalidCharacter(ch));
                }
            }
            i += 1;
        }
        if digits.is_empty() {
            return Err(PhoneError::NoDigits);
        }

        let international = if plus {
            Some(digits.as_str())
        } else if let Some(rest) = digits.strip_prefix("00") {
            trunk_hint = trunk_hint.and_then(|at| at.checked_sub(2));
            Some(rest)
        } else if digits.len() >= 11 && !digits.starts_with('0') {
            Some(digits.as_str())
        } else {
            None
        };

        match international {
            Some(e164) => {
                let mut e164 = e164.to_owned();
                if let Some(at) = trunk_hint
                    && !e164.starts_with(ITALY)
                    && at < e164.len()
                {
                    e164.remove(at);
                }
                Self::from_international(&e164)
            }
            None => Self::from_italian(&digits),
        }
    }

    fn from_international(digits: &str) -> Result<PhoneNumber, PhoneError> {
        const KIND: &str = "international";
        if digits.starts_with('0') {
            return Err(PhoneError::BadCountryCode);
        }
        if digits.len() < 7 {
            return Err(PhoneError::TooShort {
                digits: digits.len(),
                kind: KIND,
            });
        }
        if digits.len() > 15 {
            return Err(PhoneError::TooLong {
                digits: digits.len(),
                kind: KIND,
            });
        }
        if let Some(national) = digits.strip_prefix(ITALY) {
            // Italian subscriber numbers are 6 to 11 digits long.
            if national.len() < 6 {
                return Err(PhoneError::TooShort {
                    digits: digits.len(),
                    kind: "Italian",
                });
            }
            if national.len() > 11 {
                return Err(PhoneError::TooLong {
                    digits: digits.len(),
                    kind: "Italian",
                });
            }
        }
        Ok(PhoneNumber(format!("+{digits}")))
    }

    fn from_italian(digits: &str) -> Result<PhoneNumber, PhoneError> {
        let (kind, min, max) = match digits.as_bytes().first() {
            Some(b'3') => ("Italian mobile", 9, 10),
            Some(b'0') => ("Italian landline", 6, 11),
            _ => return Err(PhoneError::Unrecognised),
        };
        if digits.len() < min {
            return Err(PhoneError::TooShort {
                digits: digits.len(),
                kind,
            });
        }
        if digits.len() > max {
            return Err(PhoneError::TooLong {
                digits: digits.len(),
                kind,
            });
        }
        Ok(PhoneNumber(format!("+{ITALY}{digits}")))
    }

    /// The number in E.164 form, `+` included.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The number's digits without the `+`, as Zammad's CTI writes it.
    pub fn digits(&self) -> &str {
        &self.0[1..]
    }

    /// Whether the number is Italian (+39).
    pub fn is_italian(&self) -> bool {
        self.digits().starts_with(ITALY)
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Country code and operator prefix are enough to tell numbers apart in a test failure.
        let shown = self.0.get(..6).unwrap_or(&self.0);
        write!(f, "PhoneNumber({shown}***)")
    }
}

impl FromStr for PhoneNumber {
    type Err = PhoneError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl AsRef<str> for PhoneNumber {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Serialize for PhoneNumber {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for PhoneNumber {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str> as Deserialize>::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Why a text is not a usable e-mail address.
///
/// Messages never repeat the address: it is personal data and errors end up in logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    #[error("e-mail address is empty")]
    Empty,
    #[error("e-mail address is {0} characters long, more than 254")]
    TooLong(usize),
    #[error("e-mail address has no '@'")]
    MissingAt,
    #[error("e-mail address has more than one '@'")]
    MultipleAt,
    #[error("e-mail address has nothing before the '@'")]
    EmptyLocalPart,
    #[error("e-mail address has a part before the '@' longer than 64 characters")]
    LocalPartTooLong,
    #[error("e-mail address has nothing after the '@'")]
    EmptyDomain,
    #[error("e-mail address contains whitespace")]
    Whitespace,
    #[error("e-mail address contains a control character")]
    ControlCharacter,
    #[error("e-mail address contains '{0}', which is not allowed in a plain address")]
    InvalidCharacter(char),
    #[error("e-mail address has a misplaced or doubled '.' before the '@'")]
    BadLocalDots,
    #[error("e-mail address has an invalid domain: {0}")]
    BadDomain(&'static str),
}

/// A plain e-mail address (`local@domain`, no display name), domain in lowercase.
///
/// The local part is kept as written: some mail systems treat it as case-sensitive.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EmailAddress(String);

impl EmailAddress {
    /// Validates a plain addr-spec after trimming surrounding whitespace.
    ///
    /// Quoted local parts and domain literals (`[192.0.2.1]`) are refused: citizens do not use
    /// them and they are a common vehicle for header injection. The domain needs a dot, since a
    /// citizen's address without one is always a typo.
    pub fn parse(raw: &str) -> Result<EmailAddress, EmailError> {
        let text = raw.trim();
        if text.is_empty() {
            return Err(EmailError::Empty);
        }
        let length = text.chars().count();
        if length > 254 {
            return Err(EmailError::TooLong(length));
        }
        if let Some(c) = text.chars().find(|c| c.is_control()) {
            return Err(if c.is_whitespace() {
                EmailError::Whitespace
            } else {
                EmailError::ControlCharacter
            });
        }
        if text.chars().any(char::is_whitespace) {
            return Err(EmailError::Whitespace);
        }
        let (local, domain) = text.split_once('@').ok_or(EmailError::MissingAt)?;
        if domain.contains('@') {
            return Err(EmailError::MultipleAt);
        }
        if local.is_empty() {
            return Err(EmailError::EmptyLocalPart);
        }
        if domain.is_empty() {
            return Err(EmailError::EmptyDomain);
        }
        if local.chars().count() > 64 {
            return Err(EmailError::LocalPartTooLong);
        }
        if let Some(c) = local.chars().find(|c| "\"(),:;<>[\\]".contains(*c)) {
            return Err(EmailError::InvalidCharacter(c));
        }
        if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
            return Err(EmailError::BadLocalDots);
        }
        let lowered = domain.to_lowercase();
        // A trailing dot names the same (fully qualified) domain; store one spelling.
        let domain = lowered.strip_suffix('.').unwrap_or(&lowered);
        validate_domain(domain)?;
        Ok(EmailAddress(format!("{local}@{domain}")))
    }

    /// The address as `local@domain`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The domain, in lowercase.
    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map_or("", |(_, d)| d)
    }

    /// The part before the `@`, as written.
    pub fn local_part(&self) -> &str {
        self.0.rsplit_once('@').map_or("", |(l, _)| l)
    }
}

fn validate_domain(domain: &str) -> Result<(), EmailError> {
    if domain.starts_with('[') {
        return Err(EmailError::BadDomain("address literals are not accepted"));
    }
    if !domain.contains('.') {
        return Err(EmailError::BadDomain("it has no dot"));
    }
    for label in domain.split('.') {
        if label.is_empty() {
            return Err(EmailError::BadDomain("it has an empty label"));
        }
        if label.chars().count() > 63 {
            return Err(EmailError::BadDomain(
                "a label is longer than 63 characters",
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(EmailError::BadDomain("a label starts or ends with '-'"));
        }
        if let Some(c) = label.chars().find(|c| !(c.is_alphanumeric() || *c == '-')) {
            return Err(EmailError::InvalidCharacter(c));
        }
    }
    Ok(())
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EmailAddress(***@{})", self.domain())
    }
}

impl FromStr for EmailAddress {
    type Err = EmailError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl AsRef<str> for EmailAddress {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Serialize for EmailAddress {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for EmailAddress {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str> as Deserialize>::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn phone_shapes_normalise_to_e164() {
        let cases = [
            ("+39 333 1234567", "+393331234567"),
            ("0039 333 9876543", "+393339876543"),
            ("393471112233", "+393471112233"),
            ("333 1234567", "+393331234567"),
            ("3331234567", "+393331234567"),
            ("02 8845 1234", "+390288451234"),
            ("0245678901", "+390245678901"),
            ("(02) 8845-1234", "+390288451234"),
            ("06/6988.1234", "+390669881234"),
            ("+39 (0)2 8845 1234", "+390288451234"),
            ("+44 20 7946 0958", "+442079460958"),
            ("+44 (0)20 7946 0958", "+442079460958"),
            ("0044 (0)20 7946 0958", "+442079460958"),
            ("004920123456", "+4920123456"),
            ("442079460958", "+442079460958"),
            ("  +33 6 12 34 56 78 ", "+33612345678"),
        ];
        for (raw, want) in cases {
            let got = PhoneNumber::parse(raw).unwrap_or_else(|e| panic!("{raw}: {e}"));
            assert_eq!(got.as_str(), want, "{raw}");
        }
    }

    #[test]
    fn withheld_callers_are_distinct() {
        for raw in [
            "",
            "   ",
            "anonymous",
            "Anonymous",
            "UNKNOWN",
            "private",
            "restricted",
            "withheld",
        ] {
            assert_eq!(
                PhoneNumber::parse(raw),
                Err(PhoneError::Withheld),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn bad_phone_numbers_are_rejected() {
        let cases = [
            ("333 12a4567", PhoneError::InvalidCharacter('a')),
            ("call me", PhoneError::InvalidCharacter('c')),
            ("33312+34567", PhoneError::MisplacedPlus),
            ("---", PhoneError::NoDigits),
            ("12345", PhoneError::Unrecognised),
            ("800123456", PhoneError::Unrecognised),
            (
                "33312",
                PhoneError::TooShort {
                    digits: 5,
                    kind: "Italian mobile",
                },
            ),
            (
                "0212",
                PhoneError::TooShort {
                    digits: 4,
                    kind: "Italian landline",
                },
            ),
            (
                "021234567890",
                PhoneError::TooLong {
                    digits: 12,
                    kind: "Italian landline",
                },
            ),
            (
                "+39 333",
                PhoneError::TooShort {
                    digits: 5,
                    kind: "international",
                },
            ),
            (
                "+1234567890123456",
                PhoneError::TooLong {
                    digits: 16,
                    kind: "international",
                },
            ),
            ("+0 333 1234567", PhoneError::BadCountryCode),
            ("000333 1234567", PhoneError::BadCountryCode),
        ];
        for (raw, want) in cases {
            assert_eq!(PhoneNumber::parse(raw), Err(want), "{raw:?}");
        }
    }

    #[test]
    fn phone_errors_do_not_repeat_the_number() {
        let err = PhoneNumber::parse("333 1234567x").unwrap_err().to_string();
        assert!(!err.contains("1234567"), "{err}");
    }

    #[test]
    fn phone_debug_is_redacted_and_serde_round_trips() {
        let n = PhoneNumber::parse("333 1234567").unwrap();
        assert_eq!(format!("{n:?}"), "PhoneNumber(+39333***)");
        assert_eq!(n.to_string(), "+393331234567");
        assert_eq!(n.digits(), "393331234567");
        assert!(n.is_italian());
        let json = serde_json::to_string(&n).unwrap();
        assert_eq!(json, "\"+393331234567\"");
        let back: PhoneNumber = serde_json::from_str("\"0039 333 1234567\"").unwrap();
        assert_eq!(back, n);
        assert!(serde_json::from_str::<PhoneNumber>("\"anonymous\"").is_err());
    }

    #[test]
    fn email_addresses_normalise_domain_only() {
        let e = EmailAddress::parse("  Mario.Rossi+inps@Comune.Milano.IT ").unwrap();
        assert_eq!(e.as_str(), "Mario.Rossi+inps@comune.milano.it");
        assert_eq!(e.domain(), "comune.milano.it");
        assert_eq!(e.local_part(), "Mario.Rossi+inps");
        assert_eq!(format!("{e:?}"), "EmailAddress(***@comune.milano.it)");
        assert_eq!(e.to_string(), "Mario.Rossi+inps@comune.milano.it");
        let json = serde_json::to_string(&e).unwrap();
        let back: EmailAddress = serde_json::from_str(&json).unwrap();
        assert_eq!(back, e);
        assert!(serde_json::from_str::<EmailAddress>("\"nobody\"").is_err());
    }

    #[test]
    fn bad_email_addresses_are_rejected() {
        let long = format!("{}@example.org", "a".repeat(250));
        let cases = [
            ("", EmailError::Empty),
            ("mario.rossi", EmailError::MissingAt),
            ("a@b@example.org", EmailError::MultipleAt),
            ("@example.org", EmailError::EmptyLocalPart),
            ("mario@", EmailError::EmptyDomain),
            ("mario rossi@example.org", EmailError::Whitespace),
            ("mario\u{0}@example.org", EmailError::ControlCharacter),
            ("mario\r\nBcc:x@example.org", EmailError::Whitespace),
            ("Mario <mario@example.org>", EmailError::Whitespace),
            ("<mario@example.org>", EmailError::InvalidCharacter('<')),
            (".mario@example.org", EmailError::BadLocalDots),
            ("ma..rio@example.org", EmailError::BadLocalDots),
            ("mario@localhost", EmailError::BadDomain("it has no dot")),
            (
                "mario@example..org",
                EmailError::BadDomain("it has an empty label"),
            ),
            (
                "mario@-example.org",
                EmailError::BadDomain("a label starts or ends with '-'"),
            ),
            (
                "mario@[192.0.2.1]",
                EmailError::BadDomain("address literals are not accepted"),
            ),
            ("mario@exa_mple.org", EmailError::InvalidCharacter('_')),
            (long.as_str(), EmailError::TooLong(262)),
        ];
        for (raw, want) in cases {
            assert_eq!(EmailAddress::parse(raw), Err(want), "{raw:?}");
        }
    }

    proptest! {
        #[test]
        fn any_digit_string_parses_without_panic_and_is_stable(s in "[+]?[0-9 ()./-]{0,24}") {
            if let Ok(n) = PhoneNumber::parse(&s) {
                prop_assert!(n.as_str().starts_with('+'));
                prop_assert!(n.digits().bytes().all(|b| b.is_ascii_digit()));
                prop_assert!(n.digits().len() <= 15);
                prop_assert_eq!(PhoneNumber::parse(n.as_str()), Ok(n.clone()));
            }
        }

        #[test]
        fn any_text_never_panics(s in "\\PC{0,40}") {
            let _ = PhoneNumber::parse(&s);
            if let Ok(e) = EmailAddress::parse(&s) {
                prop_assert_eq!(EmailAddress::parse(e.as_str()), Ok(e.clone()));
            }
        }
    }
}
