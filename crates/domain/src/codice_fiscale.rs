//! The Italian codice fiscale, validated for real.
//!
//! A codice fiscale for a natural person has 16 characters: three letters from the surname,
//! three from the given name, the year of birth (two digits), a month letter, the day of birth
//! (plus 40 for women), the cadastral code of the place of birth (a letter and three digits)
//! and a check letter. When two people would get the same code, the Agenzia delle Entrate
//! replaces digits with letters ("omocodia"), so every digit position may hold one of
//! `L M N P Q R S T U V` instead.
//!
//! The code is personal data: `Debug` shows only the first three characters.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Number of characters in a codice fiscale.
const LENGTH: usize = 16;

/// 0-based indexes of the positions that hold digits (or omocodia letters).
const DIGIT_POSITIONS: [usize; 7] = [6, 7, 9, 10, 12, 13, 14];

/// 0-based index of the month letter.
const MONTH_POSITION: usize = 8;

/// Month letters, January to December.
const MONTH_LETTERS: &[u8; 12] = b"ABCDEHLMPRST";

/// Letters that stand for the digits 0 to 9 in an omocode.
const OMOCODIA_LETTERS: &[u8; 10] = b"LMNPQRSTUV";

/// Values of characters in odd positions (1st, 3rd, ... 15th) for the check character, indexed
/// by letter (A..Z); a digit counts as the letter with the same index (0 = A, 9 = J).
const ODD_VALUES: [u32; 26] = [
    1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24, 23,
];

/// What is wrong with a string that is not a valid codice fiscale.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodiceFiscaleError {
    /// The code does not have 16 characters (after trimming).
    #[error("a codice fiscale has 16 characters, found {found}")]
    WrongLength { found: usize },
    /// A character is not allowed at its position.
    #[error(
        "invalid character '{found}' at position {position} of the codice fiscale (expected {expected})"
    )]
    InvalidCharacter {
        /// 1-based position of the character.
        position: usize,
        found: char,
        expected: &'static str,
    },
    /// The 9th character is not a month letter.
    #[error(
        "invalid month letter '{found}' at position 9 of the codice fiscale (expected one of ABCDEHLMPRST)"
    )]
    InvalidMonth { found: char },
    /// The day of birth (positions 10-11) does not exist in the month of birth.
    #[error(
        "invalid day of birth {found} in the codice fiscale (expected 1-{max_day} for men or 41-{} for women, month {month})",
        max_day + 40
    )]
    InvalidDay {
        /// The two-digit day as written (omocodia letters decoded).
        found: u8,
        /// The month of birth, 1-12.
        month: u8,
        /// The last day of that month (29 for February).
        max_day: u8,
    },
    /// The 16th character does not match the one computed from the first 15.
    #[error("wrong check character '{found}' in the codice fiscale (expected '{expected}')")]
    WrongCheckCharacter { expected: char, found: char },
}

/// A validated codice fiscale of a natural person, stored uppercase.
///
/// Build it with [`CodiceFiscale::parse`]; serde uses the same validation when deserializing.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CodiceFiscale(String);

impl CodiceFiscale {
    /// Parses and validates a codice fiscale.
    ///
    /// Leading and trailing whitespace is ignored and letters may be lowercase. Checks the
    /// length, the character class of every position (omocodia letters allowed in digit
    /// positions), the month letter, the day of birth against the month's length (29 February
    /// is always accepted because the century is unknown) and the check character.
    pub fn parse(input: &str) -> Result<CodiceFiscale, CodiceFiscaleError> {
        let code = input.trim().to_ascii_uppercase();
        let found = code.chars().count();
        if found != LENGTH {
            return Err(CodiceFiscaleError::WrongLength { found });
        }
        for (index, c) in code.chars().enumerate() {
            let ok = if DIGIT_POSITIONS.contains(&index) {
                c.is_ascii_digit() || omocodia_digit(c).is_some()
            } else {
                c.is_ascii_uppercase()
            };
            if !ok {
                let expected = if DIGIT_POSITIONS.contains(&index) {
                    "a digit or an omocodia letter L M N P Q R S T U V"
                } else {
                    "a letter"
                };
                return Err(CodiceFiscaleError::InvalidCharacter {
                    position: index + 1,
                    found: c,
                    expected,
                });
            }
        }
        // Every character is ASCII from here on, so byte indexing is character indexing.
        let bytes = code.as_bytes();
        let month =
            month_number(bytes[MONTH_POSITION]).ok_or(CodiceFiscaleError::InvalidMonth {
                found: char::from(bytes[MONTH_POSITION]),
            })?;
        let day_field = two_digits(bytes[9], bytes[10]);
        let max_day = days_in_month(month);
        let valid_day =
            (1..=max_day).contains(&day_field) || (41..=40 + max_day).contains(&day_field);
        if !valid_day {
            return Err(CodiceFiscaleError::InvalidDay {
                found: day_field,
                month,
                max_day,
            });
        }
        let expected = check_character_of(&bytes[..15]);
        let found = char::from(bytes[15]);
        if expected != found {
            return Err(CodiceFiscaleError::WrongCheckCharacter { expected, found });
        }
        Ok(CodiceFiscale(code))
    }

    /// The code, uppercase, 16 characters.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the code belongs to a woman (day of birth written as day + 40).
    pub fn is_female(&self) -> bool {
        self.day_field() > 40
    }

    /// The day of birth, 1-31.
    pub fn birth_day(&self) -> u8 {
        let day = self.day_field();
        if day > 40 { day - 40 } else { day }
    }

    /// The month of birth, 1-12.
    pub fn birth_month(&self) -> u8 {
        // parse guarantees a valid month letter; 0 is unreachable but keeps this panic-free.
        month_number(self.0.as_bytes()[MONTH_POSITION]).unwrap_or(0)
    }

    /// Whether any digit position holds an omocodia letter.
    pub fn is_omocode(&self) -> bool {
        let bytes = self.0.as_bytes();
        DIGIT_POSITIONS
            .iter()
            .any(|&i| bytes[i].is_ascii_uppercase())
    }

    /// Computes the check character for the first 15 characters of a code.
    ///
    /// Letters may be lowercase. Returns `None` unless `first15` is exactly 15 ASCII letters
    /// or digits; it does not check anything else (month, day, positions).
    pub fn check_character(first15: &str) -> Option<char> {
        let upper = first15.to_ascii_uppercase();
        let bytes = upper.as_bytes();
        if bytes.len() != 15 || !bytes.iter().all(u8::is_ascii_alphanumeric) {
            return None;
        }
        Some(check_character_of(bytes))
    }

    fn day_field(&self) -> u8 {
        let bytes = self.0.as_bytes();
        two_digits(bytes[9], bytes[10])
    }
}

/// The check character of 15 uppercase ASCII alphanumerics (the caller has validated them).
fn check_character_of(first15: &[u8]) -> char {
    let sum: u32 = first15
        .iter()
        .enumerate()
        .map(|(index, &c)| {
            // A digit counts as the letter with the same index in both tables.
            let rank = if c.is_ascii_digit() {
                c - b'0'
            } else {
                c - b'A'
            };
            let rank = usize::from(rank);
            // index is 0-based, so index 0 is the 1st (odd) position.
            if index % 2 == 0 {
                ODD_VALUES[rank]
            } else {
                rank as u32
            }
        })
        .sum();
    char::from(b'A' + (sum % 26) as u8)
}

/// The digit an omocodia letter stands for.
fn omocodia_digit(c: char) -> Option<u8> {
    let byte = u8::try_from(c).ok()?;
    OMOCODIA_LETTERS
        .iter()
        .position(|&l| l == byte)
        .map(|d| d as u8)
}

/// The value of a validated digit position: a digit or an omocodia letter.
fn digit_value(c: u8) -> u8 {
    if c.is_ascii_digit() {
        c - b'0'
    } else {
        omocodia_digit(char::from(c)).unwrap_or(0)
    }
}

fn two_digits(tens: u8, units: u8) -> u8 {
    digit_value(tens) * 10 + digit_value(units)
}

fn month_number(letter: u8) -> Option<u8> {
    MONTH_LETTERS
        .iter()
        .position(|&l| l == letter)
        .map(|m| m as u8 + 1)
}

fn days_in_month(month: u8) -> u8 {
    match month {
        2 => 29,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

impl fmt::Display for CodiceFiscale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for CodiceFiscale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Personal data: keep only the surname letters so logs can still tell codes apart a bit.
        write!(f, "CodiceFiscale({}***)", self.0.get(..3).unwrap_or(""))
    }
}

impl FromStr for CodiceFiscale {
    type Err = CodiceFiscaleError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for CodiceFiscale {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for CodiceFiscale {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str> as Deserialize>::deserialize(deserializer)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_a_male_code_and_reads_birth_data() {
        let cf = CodiceFiscale::parse("RSSMRA85T10A562S").unwrap();
        assert_eq!(cf.as_str(), "RSSMRA85T10A562S");
        assert!(!cf.is_female());
        assert_eq!(cf.birth_day(), 10);
        assert_eq!(cf.birth_month(), 12);
        assert!(!cf.is_omocode());
    }

    #[test]
    fn parses_a_female_code() {
        let cf = CodiceFiscale::parse("BNCLRA92E55H501D").unwrap();
        assert!(cf.is_female());
        assert_eq!(cf.birth_day(), 15);
        assert_eq!(cf.birth_month(), 5);
    }

    #[test]
    fn parses_omocode_variants_with_decoded_digits() {
        for code in ["RSSMRA85T10A56NH", "RSSMRA85T10A5SNT", "RSSMRAURTMLARSNL"] {
            let cf = CodiceFiscale::parse(code).unwrap();
            assert!(cf.is_omocode(), "{code}");
            assert_eq!(cf.birth_day(), 10, "{code}");
            assert_eq!(cf.birth_month(), 12, "{code}");
        }
    }

    #[test]
    fn trims_and_uppercases() {
        let cf = CodiceFiscale::parse("  rssmra85t10a562s\n").unwrap();
        assert_eq!(cf.to_string(), "RSSMRA85T10A562S");
    }

    #[test]
    fn rejects_wrong_length_with_the_length_found() {
        assert_eq!(
            CodiceFiscale::parse("RSSMRA85T10A562"),
            Err(CodiceFiscaleError::WrongLength { found: 15 })
        );
        assert_eq!(
            CodiceFiscale::parse(""),
            Err(CodiceFiscaleError::WrongLength { found: 0 })
        );
        // Characters, not bytes.
        assert_eq!(
            CodiceFiscale::parse("RSSMRA85T10A562SÈ"),
            Err(CodiceFiscaleError::WrongLength { found: 17 })
        );
    }

    #[test]
    fn rejects_invalid_characters_with_their_position() {
        let err = CodiceFiscale::parse("R5SMRA85T10A562S").unwrap_err();
        assert!(matches!(
            err,
            CodiceFiscaleError::InvalidCharacter {
                position: 2,
                found: '5',
                ..
            }
        ));
        // A letter that is not an omocodia letter in a digit position.
        let err = CodiceFiscale::parse("RSSMRA8AT10A562S").unwrap_err();
        assert!(matches!(
            err,
            CodiceFiscaleError::InvalidCharacter {
                position: 8,
                found: 'A',
                ..
            }
        ));
        let err = CodiceFiscale::parse("RSSMRA85T10A56ÈS").unwrap_err();
        assert!(matches!(
            err,
            CodiceFiscaleError::InvalidCharacter {
                position: 15,
                found: 'È',
                ..
            }
        ));
        assert!(err.to_string().contains("position 15"), "{err}");
    }

    #[test]
    fn rejects_invalid_month_letter() {
        // F is not a month letter (F, G, I, N, O, Q and U are skipped).
        let first15 = "RSSMRA85F10A562";
        let code = format!(
            "{first15}{}",
            CodiceFiscale::check_character(first15).unwrap()
        );
        assert_eq!(
            CodiceFiscale::parse(&code),
            Err(CodiceFiscaleError::InvalidMonth { found: 'F' })
        );
    }

    #[test]
    fn rejects_days_the_month_does_not_have() {
        for (first15, found, month) in [
            ("RSSMRA85B30A562", 30, 2), // 30 February
            ("RSSMRA85D31A562", 31, 4), // 31 April
            ("RSSMRA85A00A562", 0, 1),  // day 0
            ("RSSMRA85A35A562", 35, 1), // neither male nor female
            ("RSSMRA85A72A562", 72, 1), // female 32 January
            ("RSSMRA85B70A562", 70, 2), // female 30 February
        ] {
            let code = format!(
                "{first15}{}",
                CodiceFiscale::check_character(first15).unwrap()
            );
            match CodiceFiscale::parse(&code) {
                Err(CodiceFiscaleError::InvalidDay {
                    found: f, month: m, ..
                }) => {
                    assert_eq!((f, m), (found, month), "{code}");
                }
                other => panic!("{code}: expected InvalidDay, got {other:?}"),
            }
        }
        // 29 February is fine: the century is unknown.
        let first15 = "RSSMRA85B69A562";
        let code = format!(
            "{first15}{}",
            CodiceFiscale::check_character(first15).unwrap()
        );
        assert_eq!(CodiceFiscale::parse(&code).unwrap().birth_day(), 29);
    }

    #[test]
    fn rejects_wrong_check_character_naming_expected_and_found() {
        assert_eq!(
            CodiceFiscale::parse("RSSMRA85T10A562X"),
            Err(CodiceFiscaleError::WrongCheckCharacter {
                expected: 'S',
                found: 'X'
            })
        );
    }

    #[test]
    fn check_character_needs_fifteen_alphanumerics() {
        assert_eq!(CodiceFiscale::check_character("RSSMRA85T10A562"), Some('S'));
        assert_eq!(CodiceFiscale::check_character("rssmra85t10a562"), Some('S'));
        assert_eq!(CodiceFiscale::check_character("RSSMRA85T10A56"), None);
        assert_eq!(CodiceFiscale::check_character("RSSMRA85T10A56-"), None);
        assert_eq!(CodiceFiscale::check_character("RSSMRA85T10A56È"), None);
    }

    #[test]
    fn debug_is_redacted_and_display_is_full() {
        let cf = CodiceFiscale::parse("RSSMRA85T10A562S").unwrap();
        assert_eq!(format!("{cf:?}"), "CodiceFiscale(RSS***)");
        assert_eq!(format!("{cf}"), "RSSMRA85T10A562S");
        assert!(!format!("{:?}", Some(&cf)).contains("85T10"));
    }

    #[test]
    fn serde_uses_the_string_and_validates() {
        let cf = CodiceFiscale::parse("RSSMRA85T10A562S").unwrap();
        let json = serde_json::to_string(&cf).unwrap();
        assert_eq!(json, "\"RSSMRA85T10A562S\"");
        let back: CodiceFiscale = serde_json::from_str("\"rssmra85t10a562s\"").unwrap();
        assert_eq!(back, cf);
        let err = serde_json::from_str::<CodiceFiscale>("\"RSSMRA85T10A562X\"").unwrap_err();
        assert!(err.to_string().contains("check character"), "{err}");
    }

    fn days_in(month: u8) -> u8 {
        days_in_month(month)
    }

    /// A valid code built from random parts, with the parts it was built from.
    fn valid_code() -> impl Strategy<Value = (String, u8, u8, bool, bool)> {
        (
            "[A-Z]{6}",
            0u8..100,
            1u8..=12,
            any::<bool>(),
            "[A-Z]",
            0u16..1000,
            prop::array::uniform7(any::<bool>()),
        )
            .prop_flat_map(|(letters, year, month, female, place, number, mask)| {
                (1u8..=days_in(month)).prop_map(move |day| {
                    let mut first15: Vec<u8> = format!(
                        "{letters}{year:02}{}{:02}{place}{number:03}",
                        char::from(MONTH_LETTERS[usize::from(month - 1)]),
                        if female { day + 40 } else { day }
                    )
                    .into_bytes();
                    for (&pos, &swap) in DIGIT_POSITIONS.iter().zip(mask.iter()) {
                        if swap {
                            first15[pos] = OMOCODIA_LETTERS[usize::from(first15[pos] - b'0')];
                        }
                    }
                    let first15 = String::from_utf8(first15).unwrap();
                    let check = CodiceFiscale::check_character(&first15).unwrap();
                    (
                        format!("{first15}{check}"),
                        day,
                        month,
                        female,
                        mask.iter().any(|&m| m),
                    )
                })
            })
    }

    proptest! {
        #[test]
        fn codes_from_valid_parts_parse_and_round_trip(
            (code, day, month, female, omocode) in valid_code()
        ) {
            let cf = CodiceFiscale::parse(&code).unwrap();
            prop_assert_eq!(cf.as_str(), code.as_str());
            prop_assert_eq!(cf.birth_day(), day);
            prop_assert_eq!(cf.birth_month(), month);
            prop_assert_eq!(cf.is_female(), female);
            prop_assert_eq!(cf.is_omocode(), omocode);
            let reparsed = CodiceFiscale::parse(&code.to_lowercase()).unwrap();
            prop_assert_eq!(&reparsed, &cf);
            let json = serde_json::to_string(&cf).unwrap();
            let back: CodiceFiscale = serde_json::from_str(&json).unwrap();
            prop_assert_eq!(back, cf);
        }

        #[test]
        fn any_other_check_character_is_rejected(
            (code, ..) in valid_code(),
            other in "[A-Z]",
        ) {
            let expected = code.chars().last().unwrap();
            let found = other.chars().next().unwrap();
            prop_assume!(found != expected);
            let altered = format!("{}{found}", &code[..15]);
            prop_assert_eq!(
                CodiceFiscale::parse(&altered),
                Err(CodiceFiscaleError::WrongCheckCharacter { expected, found })
            );
        }

        #[test]
        fn random_strings_never_panic(
            ascii in "[A-Z0-9]{16}",
            unicode in "\\PC{16}",
            any_len in ".{0,24}",
        ) {
            for input in [&ascii, &unicode, &any_len] {
                if let Ok(cf) = CodiceFiscale::parse(input) {
                    // Anything accepted is internally consistent.
                    prop_assert_eq!(
                        CodiceFiscale::check_character(&cf.as_str()[..15]),
                        cf.as_str().chars().last()
                    );
                    prop_assert!((1..=12).contains(&cf.birth_month()));
                    prop_assert!((1..=31).contains(&cf.birth_day()));
                }
            }
        }
    }
}
