//! Validation of a counter opening session: a local date, start and end times, desks.

use chrono::{NaiveDate, NaiveTime};
use sportello_domain::calendar::BusinessCalendar;

/// Slot length when a session does not say.
pub const DEFAULT_SLOT_MINUTES: u32 = 20;
/// Most desks a session may have (the queue letters and the offices' size bound it).
pub const MAX_DESKS: u32 = 26;
/// Shortest and longest slot accepted, in minutes.
pub const MIN_SLOT_MINUTES: u32 = 5;
pub const MAX_SLOT_MINUTES: u32 = 240;

/// A session as requested.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionRequest {
    pub date: NaiveDate,
    pub start: NaiveTime,
    pub end: NaiveTime,
    pub desks: u32,
    pub slot_minutes: Option<u32>,
}

/// A session that passed [`validate_session`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidSession {
    pub date: NaiveDate,
    pub start: NaiveTime,
    pub end: NaiveTime,
    pub desks: u32,
    pub slot_minutes: u32,
}

/// Why a session cannot be opened. The two conflicts (`Holiday`, `Overlap`) are about the
/// calendar's state; the rest are bad input and name the field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("the office is closed on {date}: {reason}")]
    Holiday { date: NaiveDate, reason: String },
    #[error(
        "the session {start}–{end} overlaps the existing session {other_start}–{other_end} on {date}"
    )]
    Overlap {
        date: NaiveDate,
        start: NaiveTime,
        end: NaiveTime,
        other_start: NaiveTime,
        other_end: NaiveTime,
    },
    #[error("end: {end} is not after start {start}")]
    EndNotAfterStart { start: NaiveTime, end: NaiveTime },
    #[error("desks: must be between 1 and {MAX_DESKS} (got {0})")]
    Desks(u32),
    #[error("slot_minutes: must be between {MIN_SLOT_MINUTES} and {MAX_SLOT_MINUTES} (got {0})")]
    SlotMinutes(u32),
    #[error("slot_minutes: a {slot} minute slot does not fit in the {length} minute session")]
    SlotLongerThanSession { slot: u32, length: i64 },
}

impl SessionError {
    /// Whether the error is a conflict with the calendar (HTTP 409) rather than bad input.
    pub fn is_conflict(&self) -> bool {
        matches!(
            self,
            SessionError::Holiday { .. } | SessionError::Overlap { .. }
        )
    }

    /// The request field at fault, for bad input.
    pub fn field(&self) -> &'static str {
        match self {
            SessionError::Holiday { .. } => "date",
            SessionError::Overlap { .. } => "start",
            SessionError::EndNotAfterStart { .. } => "end",
            SessionError::Desks(_) => "desks",
            SessionError::SlotMinutes(_) | SessionError::SlotLongerThanSession { .. } => {
                "slot_minutes"
            }
        }
    }
}

/// Checks a session against the calendar (holidays, patron day, closures) and the sessions
/// already open that day (`existing`, as local start–end pairs). Sessions may touch but not
/// overlap.
pub fn validate_session(
    req: &SessionRequest,
    calendar: &BusinessCalendar,
    existing: &[(NaiveTime, NaiveTime)],
) -> Result<ValidSession, SessionError> {
    if req.end <= req.start {
        return Err(SessionError::EndNotAfterStart {
            start: req.start,
            end: req.end,
        });
    }
    if req.desks == 0 || req.desks > MAX_DESKS {
        return Err(SessionError::Desks(req.desks));
    }
    let slot = req.slot_minutes.unwrap_or(DEFAULT_SLOT_MINUTES);
    if !(MIN_SLOT_MINUTES..=MAX_SLOT_MINUTES).contains(&slot) {
        return Err(SessionError::SlotMinutes(slot));
    }
    let length = (req.end - req.start).num_minutes();
    if i64::from(slot) > length {
        return Err(SessionError::SlotLongerThanSession { slot, length });
    }
    if let Some(reason) = calendar.is_holiday(req.date) {
        return Err(SessionError::Holiday {
            date: req.date,
            reason: reason.to_owned(),
        });
    }
    if let Some(&(other_start, other_end)) = existing
        .iter()
        .find(|&&(s, e)| s < req.end && req.start < e)
    {
        return Err(SessionError::Overlap {
            date: req.date,
            start: req.start,
            end: req.end,
            other_start,
            other_end,
        });
    }
    Ok(ValidSession {
        date: req.date,
        start: req.start,
        end: req.end,
        desks: req.desks,
        slot_minutes: slot,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(h: u32, m: u32) -> NaiveTime {
        NaiveTime::from_hms_opt(h, m, 0).unwrap()
    }
    fn req(date: NaiveDate, start: NaiveTime, end: NaiveTime) -> SessionRequest {
        SessionRequest {
            date,
            start,
            end,
            desks: 2,
            slot_minutes: None,
        }
    }
    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn ordinary_session_gets_default_slot_length() {
        let cal = BusinessCalendar::default();
        let v = validate_session(&req(d(2026, 3, 2), t(8, 30), t(12, 30)), &cal, &[]).unwrap();
        assert_eq!(v.slot_minutes, 20);
        assert_eq!(v.desks, 2);
    }

    #[test]
    fn holidays_and_closures_are_refused_with_their_name() {
        let cal = BusinessCalendar::default().with_closures([d(2026, 8, 14)]);
        let cases = [
            (d(2026, 12, 25), "Natale"),
            (d(2026, 4, 6), "Lunedì dell'Angelo"),
            (d(2026, 12, 7), "Festa del santo patrono"),
            (d(2027, 10, 4), "San Francesco d'Assisi"),
            (d(2026, 8, 14), "Chiusura straordinaria"),
        ];
        for (date, name) in cases {
            let err = validate_session(&req(date, t(9, 0), t(12, 0)), &cal, &[]).unwrap_err();
            assert!(err.is_conflict());
            assert!(err.to_string().contains(name), "{err}");
        }
    }

    #[test]
    fn overlaps_are_refused_but_touching_sessions_are_fine() {
        let cal = BusinessCalendar::default();
        let existing = [(t(8, 30), t(12, 30))];
        let err =
            validate_session(&req(d(2026, 3, 2), t(12, 0), t(13, 0)), &cal, &existing).unwrap_err();
        assert!(matches!(err, SessionError::Overlap { .. }));
        assert!(err.to_string().contains("08:30"));
        validate_session(&req(d(2026, 3, 2), t(12, 30), t(13, 0)), &cal, &existing).unwrap();
    }

    #[test]
    fn bad_input_names_the_field() {
        let cal = BusinessCalendar::default();
        let mut r = req(d(2026, 3, 2), t(12, 0), t(9, 0));
        assert_eq!(validate_session(&r, &cal, &[]).unwrap_err().field(), "end");
        r = req(d(2026, 3, 2), t(9, 0), t(12, 0));
        r.desks = 0;
        assert_eq!(
            validate_session(&r, &cal, &[]).unwrap_err().field(),
            "desks"
        );
        r.desks = 1;
        r.slot_minutes = Some(2);
        assert_eq!(
            validate_session(&r, &cal, &[]).unwrap_err().field(),
            "slot_minutes"
        );
        r.end = t(9, 10);
        r.slot_minutes = Some(20);
        assert!(!validate_session(&r, &cal, &[]).unwrap_err().is_conflict());
    }
}
