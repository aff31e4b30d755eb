//! Tickets: channels, tiers, priorities, the status machine, numbers and timeline entry kinds.

use std::fmt;

use serde::{Deserialize, Serialize};

slug_enum! {
    /// Where a request came from.
    pub enum Channel as "channel" {
        Phone => "phone",
        Email => "email",
        Counter => "counter",
        Web => "web",
        Internal => "internal",
    }
}

slug_enum! {
    /// Which office works the ticket.
    pub enum Tier as "tier" {
        FrontOffice => "front_office",
        BackOffice => "back_office",
    }
}

slug_enum! {
    /// How urgent a ticket is; ordered from least to most urgent.
    #[derive(Default)]
    pub enum Priority as "priority" {
        Low => "low",
        #[default]
        Normal => "normal",
        High => "high",
        Urgent => "urgent",
    }
}

slug_enum! {
    /// Kinds of timeline entries on a ticket.
    pub enum EntryKind as "entry kind" {
        /// A message from the citizen (email body, web form, transcript).
        Inbound => "inbound",
        /// A reply sent to the citizen.
        Outbound => "outbound",
        /// An internal note, never shown to the citizen.
        Note => "note",
        /// A phone call record.
        Call => "call",
        /// A counter visit record.
        Visit => "visit",
        /// Something the system did: status change, assignment, SLA event.
        System => "system",
    }
}

slug_enum! {
    /// The life cycle of a ticket.
    pub enum Status as "status" {
        New => "new",
        Assigned => "assigned",
        Open => "open",
        WaitingCitizen => "waiting_citizen",
        WaitingInternal => "waiting_internal",
        Resolved => "resolved",
        Closed => "closed",
    }
}

/// A transition the status machine does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a ticket cannot go from '{from}' to '{to}'; from '{from}' it can go to: {allowed}")]
pub struct InvalidTransition {
    pub from: Status,
    pub to: Status,
    pub allowed: String,
}

impl Status {
    /// The statuses reachable from this one in a single step.
    ///
    /// new → assigned → open → waiting on citizen / waiting internal → resolved → closed, with
    /// reopening from resolved. A ticket may be resolved directly from any active status (a
    /// question answered on the phone needs no detour), handed back to the queue (`new`) while
    /// it is still unanswered, and closed from resolved only, so every closed ticket was
    /// resolved first.
    pub fn allowed_next(self) -> &'static [Status] {
        use Status::*;
        match self {
            New => &[Assigned, Open, Resolved],
            Assigned => &[New, Open, WaitingCitizen, WaitingInternal, Resolved],
            Open => &[Assigned, WaitingCitizen, WaitingInternal, Resolved],
            WaitingCitizen => &[Open, WaitingInternal, Resolved],
            WaitingInternal => &[Open, WaitingCitizen, Resolved],
            Resolved => &[Open, Closed],
            Closed => &[],
        }
    }

    /// Checks a transition, explaining the allowed ones when it is refused.
    pub fn transition(self, to: Status) -> Result<Status, InvalidTransition> {
        if self.allowed_next().contains(&to) {
            Ok(to)
        } else {
            let allowed = self.allowed_next();
            Err(InvalidTransition {
                from: self,
                to,
                allowed: if allowed.is_empty() {
                    "nothing (it is final)".to_owned()
                } else {
                    allowed
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                },
            })
        }
    }

    /// Whether the ticket still needs work (anything before resolved).
    pub fn is_active(self) -> bool {
        !matches!(self, Status::Resolved | Status::Closed)
    }

    /// Whether the SLA clock is paused in this status.
    pub fn pauses_sla(self) -> bool {
        matches!(self, Status::WaitingCitizen)
    }
}

/// The number citizens quote: `SP-2026-000123` (prefix, year, zero-padded sequence).
///
/// Numbers are unique but not gap-free: each instance reserves blocks of the yearly sequence,
/// so numbers from a block that an instance did not use before stopping are skipped.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TicketNumber(String);

/// A string that is not a ticket number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a ticket number (expected PREFIX-YYYY-NNNNNN, e.g. SP-2026-000123)")]
pub struct InvalidTicketNumber(pub String);

impl TicketNumber {
    /// The number with the given prefix, year and sequence value.
    pub fn new(prefix: &str, year: i32, seq: u64) -> Self {
        TicketNumber(format!("{prefix}-{year:04}-{seq:06}"))
    }

    /// Parses `PREFIX-YYYY-NNNNNN` (case-insensitive prefix, at least six sequence digits).
    pub fn parse(value: &str) -> Result<Self, InvalidTicketNumber> {
        let bad = || InvalidTicketNumber(value.to_owned());
        let v = value.trim().to_ascii_uppercase();
        let mut parts = v.splitn(3, '-');
        let (prefix, year, seq) = match (parts.next(), parts.next(), parts.next()) {
            (Some(p), Some(y), Some(s)) => (p, y, s),
            _ => return Err(bad()),
        };
        let prefix_ok = !prefix.is_empty()
            && prefix.len() <= 8
            && prefix.bytes().all(|b| b.is_ascii_uppercase());
        let year_ok = year.len() == 4 && year.bytes().all(|b| b.is_ascii_digit());
        let seq_ok = seq.len() >= 6 && seq.len() <= 12 && seq.bytes().all(|b| b.is_ascii_digit());
        if prefix_ok && year_ok && seq_ok {
            Ok(TicketNumber(v))
        } else {
            Err(bad())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The tag put in e-mail subjects so replies thread back: `[SP-2026-000123]`.
    pub fn subject_tag(&self) -> String {
        format!("[{}]", self.0)
    }
}

impl fmt::Display for TicketNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TicketNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TicketNumber({})", self.0)
    }
}

impl TryFrom<String> for TicketNumber {
    type Error = InvalidTicketNumber;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        TicketNumber::parse(&value)
    }
}

impl From<TicketNumber> for String {
    fn from(n: TicketNumber) -> String {
        n.0
    }
}

/// Maximum number of tags on a ticket and length of one tag.
pub const MAX_TAGS: usize = 20;
pub const MAX_TAG_LEN: usize = 40;

/// A tag that is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidTag {
    #[error("tag '{0}' must be 1–40 characters of lowercase letters, digits, '-' or '_'")]
    Shape(String),
    #[error("a ticket can have at most {MAX_TAGS} tags")]
    TooMany,
}

/// Normalises tags: trimmed, lowercased, deduplicated, sorted; rejects odd shapes.
pub fn normalise_tags<I, S>(tags: I) -> Result<Vec<String>, InvalidTag>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut out = Vec::new();
    for t in tags {
        let t = t.as_ref().trim().to_lowercase();
        let ok = !t.is_empty()
            && t.chars().count() <= MAX_TAG_LEN
            && t.chars()
                .all(|c| c.is_alphanumeric() || c == '-' || c == '_');
        if !ok {
            return Err(InvalidTag::Shape(t));
        }
        out.push(t);
    }
    out.sort();
    out.dedup();
    if out.len() > MAX_TAGS {
        return Err(InvalidTag::TooMany);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_machine_follows_the_documented_path() {
        let path = [
            Status::New,
            Status::Assigned,
            Status::Open,
            Status::WaitingCitizen,
            Status::Open,
            Status::WaitingInternal,
            Status::Resolved,
            Status::Open,
            Status::Resolved,
            Status::Closed,
        ];
        for w in path.windows(2) {
            assert_eq!(w[0].transition(w[1]), Ok(w[1]), "{} -> {}", w[0], w[1]);
        }
    }

    #[test]
    fn invalid_transitions_explain_the_alternatives() {
        let err = Status::New.transition(Status::Closed).unwrap_err();
        assert_eq!(err.from, Status::New);
        assert!(
            err.to_string().contains("assigned, open, resolved"),
            "{err}"
        );
        let err = Status::Closed.transition(Status::Open).unwrap_err();
        assert!(err.to_string().contains("final"), "{err}");
        for s in Status::ALL {
            assert!(s.transition(*s).is_err(), "{s} -> itself must be refused");
        }
    }

    #[test]
    fn only_resolved_tickets_close() {
        for s in Status::ALL {
            let closes = s.transition(Status::Closed).is_ok();
            assert_eq!(closes, *s == Status::Resolved, "{s}");
        }
    }

    #[test]
    fn ticket_numbers_format_and_parse() {
        let n = TicketNumber::new("SP", 2026, 123);
        assert_eq!(n.as_str(), "SP-2026-000123");
        assert_eq!(n.subject_tag(), "[SP-2026-000123]");
        assert_eq!(TicketNumber::parse("sp-2026-000123"), Ok(n));
        assert_eq!(
            TicketNumber::new("SP", 2026, 1_234_567).as_str(),
            "SP-2026-1234567"
        );
        for bad in [
            "",
            "SP-26-000123",
            "SP-2026-12",
            "SP2026000123",
            "S1-2026-000123",
        ] {
            assert!(TicketNumber::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn slugs_round_trip_and_name_the_choices() {
        for c in Channel::ALL {
            assert_eq!(Channel::parse(c.as_str()), Ok(*c));
        }
        let err = Channel::parse("fax").unwrap_err().to_string();
        assert!(
            err.contains("phone, email, counter, web, internal"),
            "{err}"
        );
        let json = serde_json::to_string(&Tier::BackOffice).unwrap();
        assert_eq!(json, "\"back_office\"");
        assert!(serde_json::from_str::<Status>("\"pending\"").is_err());
    }

    #[test]
    fn tags_are_normalised() {
        assert_eq!(
            normalise_tags(["Urgente", " isee ", "urgente"]).unwrap(),
            vec!["isee".to_owned(), "urgente".to_owned()]
        );
        assert!(matches!(normalise_tags(["a b"]), Err(InvalidTag::Shape(_))));
        let many: Vec<String> = (0..21).map(|i| format!("t{i}")).collect();
        assert_eq!(normalise_tags(many), Err(InvalidTag::TooMany));
    }
}
