//! What every way in turns a switchboard report into: one `CallEvent` about one call.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sportello_domain::contact::{PhoneError, PhoneNumber};
use sportello_domain::slug_enum;

slug_enum! {
    /// Whether the citizen called us or an operator called out.
    pub enum Direction as "call direction" {
        Inbound => "inbound",
        Outbound => "outbound",
    }
}

slug_enum! {
    /// How a call ended, in the vocabulary of Zammad's generic CTI (snake_case here).
    pub enum HangupCause as "hangup cause" {
        /// One party hung up after the call was established (or, without an answer, the
        /// switchboard gave up normally).
        NormalClearing => "normal_clearing",
        /// The caller hung up before anyone picked up.
        Cancel => "cancel",
        /// Nobody picked up, or the called party rejected the call.
        NoAnswer => "no_answer",
        Busy => "busy",
        Congestion => "congestion",
        /// The called number does not exist or the called party is offline.
        NotFound => "not_found",
        /// The switchboard passed the call on to another party.
        Forwarded => "forwarded",
        /// The call could not be set up at all.
        Failed => "failed",
        /// A cause this system does not know; treated like an unanswered hangup.
        Other => "other",
    }
}

impl HangupCause {
    /// Reads a cause as Zammad's CTI defines it (`normalClearing`, `noAnswer`, ...), also in the
    /// Q.850 / FreeSWITCH spelling many PBX scripts pass through (`NORMAL_CLEARING`,
    /// `ORIGINATOR_CANCEL`, `USER_BUSY`). Anything else is `Other`, as Zammad accepts any cause.
    pub fn from_cti(raw: &str) -> HangupCause {
        let key: String = raw
            .chars()
            .filter(|c| !matches!(c, '_' | '-' | ' '))
            .map(|c| c.to_ascii_lowercase())
            .collect();
        match key.as_str() {
            "normalclearing" | "normal" => HangupCause::NormalClearing,
            "cancel" | "originatorcancel" | "cancelled" | "canceled" => HangupCause::Cancel,
            "noanswer" | "nouserresponse" | "callrejected" | "rejected" => HangupCause::NoAnswer,
            "busy" | "userbusy" => HangupCause::Busy,
            "congestion" | "normalcircuitcongestion" | "switchcongestion" => {
                HangupCause::Congestion
            }
            "notfound" | "unallocatednumber" | "noroutedestination" | "subscriberabsent" => {
                HangupCause::NotFound
            }
            "forwarded" => HangupCause::Forwarded,
            "failed" | "failure" => HangupCause::Failed,
            _ => HangupCause::Other,
        }
    }
}

/// Longest internal extension (or service code) accepted where a phone number is expected.
const MAX_INTERNAL_LEN: usize = 6;

/// One end of a call.
///
/// Variant order matters: when two reports of one call disagree, the smaller value wins, so a
/// real number beats an extension, which beats a withheld caller.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Party {
    /// A public number in E.164.
    Number(PhoneNumber),
    /// An internal extension or short service code (`203`, `*97`), not a public number.
    Internal(String),
    /// The caller hid the number.
    Withheld,
}

impl Party {
    /// Reads a caller or callee as switchboards write it: any shape `PhoneNumber::parse`
    /// accepts, a withheld marker (`anonymous`, empty, ...), a `tel:`/`sip:` URI around a
    /// number, or a short internal extension.
    pub fn parse(raw: &str) -> Result<Party, PhoneError> {
        let text = strip_uri(raw.trim());
        match PhoneNumber::parse(text) {
            Ok(number) => Ok(Party::Number(number)),
            Err(PhoneError::Withheld) => Ok(Party::Withheld),
            Err(err) => {
                if is_internal(text) {
                    Ok(Party::Internal(text.to_owned()))
                } else {
                    Err(err)
                }
            }
        }
    }

    /// The public number, if this party has one.
    pub fn number(&self) -> Option<&PhoneNumber> {
        match self {
            Party::Number(n) => Some(n),
            _ => None,
        }
    }

    /// The internal extension, if this party is one.
    pub fn internal(&self) -> Option<&str> {
        match self {
            Party::Internal(e) => Some(e),
            _ => None,
        }
    }

    pub fn is_withheld(&self) -> bool {
        matches!(self, Party::Withheld)
    }
}

/// `sip:+39333...@pbx;user=phone` and `tel:+39333...` carry the number in their user part.
fn strip_uri(text: &str) -> &str {
    let lower_prefix = |p: &str| {
        text.len() > p.len()
            && text
                .get(..p.len())
                .is_some_and(|head| head.eq_ignore_ascii_case(p))
    };
    let rest = if lower_prefix("sips:") {
        &text[5..]
    } else if lower_prefix("sip:") || lower_prefix("tel:") {
        &text[4..]
    } else {
        return text;
    };
    let end = rest.find(['@', ';']).unwrap_or(rest.len());
    &rest[..end]
}

fn is_internal(text: &str) -> bool {
    (1..=MAX_INTERNAL_LEN).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'*' || b == b'#')
}

impl fmt::Display for Party {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Party::Number(n) => f.write_str(n.as_str()),
            Party::Internal(e) => f.write_str(e),
            Party::Withheld => f.write_str("anonymous"),
        }
    }
}

impl Serialize for Party {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Party {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <Option<std::borrow::Cow<'de, str>> as Deserialize>::deserialize(d)?;
        match s {
            None => Ok(Party::Withheld),
            Some(s) => Party::parse(&s).map_err(serde::de::Error::custom),
        }
    }
}

/// Who picked up a call: an extension (mapped to a user in `[phone.extensions]`) or an
/// operator named directly by user name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Answerer {
    Extension(String),
    Operator(String),
}

impl Answerer {
    /// Reads Zammad's `answeringNumber`, which names an agent by phone number, login or id:
    /// digits (and `+*#`) are an extension or direct line, anything else a user name.
    pub fn from_cti(raw: &str) -> Option<Answerer> {
        let text = raw.trim();
        if text.is_empty() {
            return None;
        }
        let numeric = text
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'+' | b'*' | b'#'));
        Some(if numeric {
            Answerer::Extension(text.to_owned())
        } else {
            Answerer::Operator(text.to_owned())
        })
    }
}

/// What happened to a call at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CallEventKind {
    /// The call was offered (Zammad's `newCall`).
    Ringing,
    /// Someone picked up.
    Answered { by: Option<Answerer> },
    /// The call is over.
    Ended {
        /// From the first ring to the hangup, when the switchboard reports it.
        duration_secs: Option<u32>,
        /// From the answer to the hangup, when the switchboard reports it.
        talk_secs: Option<u32>,
        cause: HangupCause,
        /// Who talked to the caller, when the hangup report names them.
        answered_by: Option<Answerer>,
    },
    /// Nobody picked up (rang out, no operator free, out of hours).
    Missed,
    /// The caller hung up while waiting.
    Abandoned,
    /// The caller reached the voicemail (and may have left a message).
    Voicemail,
}

impl CallEventKind {
    /// The slug used in the native webhook format (`event` field).
    pub fn slug(&self) -> &'static str {
        match self {
            CallEventKind::Ringing => "ringing",
            CallEventKind::Answered { .. } => "answered",
            CallEventKind::Ended { .. } => "ended",
            CallEventKind::Missed => "missed",
            CallEventKind::Abandoned => "abandoned",
            CallEventKind::Voicemail => "voicemail",
        }
    }
}

/// One report about one call, from one integration.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CallEvent {
    /// The integration that reported it (`[[phone.integrations]]` name, or the CDR import);
    /// call ids are unique only within one source.
    pub source: String,
    pub call_id: String,
    pub direction: Direction,
    /// The calling party, when this report names it.
    pub from: Option<Party>,
    /// The called party, when this report names it.
    pub to: Option<Party>,
    pub kind: CallEventKind,
    /// When it happened (the switchboard's time when it gives one, else when we received it).
    pub at: DateTime<Utc>,
    pub queue: Option<String>,
    /// Extensions the call was offered to or passed through.
    pub extensions: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parties_read_numbers_extensions_and_withheld() {
        let n = |s: &str| Party::Number(PhoneNumber::parse(s).unwrap());
        let cases = [
            ("393471112233", n("+393471112233")),
            ("020202", n("+39020202")),
            ("203", Party::Internal("203".into())),
            ("*97", Party::Internal("*97".into())),
            ("anonymous", Party::Withheld),
            ("", Party::Withheld),
            (
                "sip:+393331234567@pbx.comune.local;user=phone",
                n("+393331234567"),
            ),
            ("tel:+39-02-8845-1234", n("+390288451234")),
            ("SIP:anonymous@anonymous.invalid", Party::Withheld),
        ];
        for (raw, want) in cases {
            assert_eq!(Party::parse(raw).unwrap(), want, "{raw:?}");
        }
        assert!(Party::parse("Mario").is_err());
        assert!(
            Party::parse("1234567").is_err(),
            "7 digits is neither a number nor an extension"
        );
    }

    #[test]
    fn known_numbers_sort_before_extensions_and_withheld() {
        let number = Party::parse("3331234567").unwrap();
        let ext = Party::parse("203").unwrap();
        assert!(number < ext && ext < Party::Withheld);
    }

    #[test]
    fn cti_causes_in_both_spellings() {
        let cases = [
            ("normalClearing", HangupCause::NormalClearing),
            ("NORMAL_CLEARING", HangupCause::NormalClearing),
            ("cancel", HangupCause::Cancel),
            ("ORIGINATOR_CANCEL", HangupCause::Cancel),
            ("noAnswer", HangupCause::NoAnswer),
            ("busy", HangupCause::Busy),
            ("USER_BUSY", HangupCause::Busy),
            ("congestion", HangupCause::Congestion),
            ("notFound", HangupCause::NotFound),
            ("forwarded", HangupCause::Forwarded),
            ("somethingElse", HangupCause::Other),
            ("", HangupCause::Other),
        ];
        for (raw, want) in cases {
            assert_eq!(HangupCause::from_cti(raw), want, "{raw}");
        }
    }

    #[test]
    fn answerers_from_cti() {
        assert_eq!(
            Answerer::from_cti("203"),
            Some(Answerer::Extension("203".into()))
        );
        assert_eq!(
            Answerer::from_cti("jdoe"),
            Some(Answerer::Operator("jdoe".into()))
        );
        assert_eq!(Answerer::from_cti("  "), None);
    }
}
