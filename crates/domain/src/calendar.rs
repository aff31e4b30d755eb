//! Business calendar: opening hours, Italian public holidays, business-time arithmetic.
//!
//! One calendar serves the SLA engine (deadlines count only open time) and the counter (which
//! days and hours can take appointments). Opening hours are a weekly template of local-time
//! sessions in one IANA time zone; public holidays, the patron saint's day and one-off closures
//! close a whole day. Every query takes and returns instants in UTC and is computed in the
//! configured zone, so summer time is handled: a session 08:30–12:30 in Rome is 07:30–11:30 UTC
//! in winter and 06:30–10:30 UTC in summer.
//!
//! Mapping local session times to instants: a session boundary is the *first instant at which
//! the local clock shows that time or later*. On a spring-forward day a boundary inside the
//! skipped hour therefore falls on the moment of the change (a session 02:30–04:00 lasts one
//! hour), and on a fall-back day a boundary inside the repeated hour falls on its first
//! occurrence. This mapping never goes backwards, so sessions never overlap once converted.
//!
//! Each day's open intervals are computed on demand from the weekly template (a few time-zone
//! look-ups per session), so every query costs time proportional to the days it spans, never to
//! minutes.
//!
//! Time-zone rules come from chrono-tz's built-in tables, which carry summer time up to 2099;
//! later years are computed in standard time.

use std::collections::BTreeSet;

use chrono::{
    DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, Offset, TimeZone, Utc,
    Weekday,
};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// First year in which 4 October (San Francesco d'Assisi, patron saint of Italy) is a national
/// public holiday again (law of October 2025, "a decorrere dal 2026"; in 2026 it is a Sunday, so
/// 2027 is the first year it closes offices).
pub const SAN_FRANCESCO_FIRST_YEAR: i32 = 2026;

/// How many days ahead a search for the next open day looks before concluding the calendar is
/// never open.
pub const SEARCH_HORIZON_DAYS: u32 = 400;

/// Reason returned by [`BusinessCalendar::is_holiday`] for a configured patron day.
pub const PATRON_DAY_REASON: &str = "Festa del santo patrono";

/// Reason returned by [`BusinessCalendar::is_holiday`] for a one-off closure.
pub const CLOSURE_REASON: &str = "Chiusura straordinaria";

/// How far (in days) [`BusinessCalendar::add_business_time`] and
/// [`BusinessCalendar::add_business_days`] look for a deadline: about a century, far beyond any
/// service level, so that an absurd duration from a configuration fails fast instead of walking
/// to the end of chrono's calendar.
pub const MAX_SPAN_DAYS: u32 = 36_525;

const SECONDS_PER_DAY: u32 = 86_400;

const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// Fixed-date national holidays as (month, day, name).
const FIXED_HOLIDAYS: [(u32, u32, &str); 10] = [
    (1, 1, "Capodanno"),
    (1, 6, "Epifania"),
    (4, 25, "Festa della Liberazione"),
    (5, 1, "Festa dei Lavoratori"),
    (6, 2, "Festa della Repubblica"),
    (8, 15, "Ferragosto"),
    (11, 1, "Ognissanti"),
    (12, 8, "Immacolata Concezione"),
    (12, 25, "Natale"),
    (12, 26, "Santo Stefano"),
];
const EASTER: &str = "Pasqua";
const EASTER_MONDAY: &str = "Lunedì dell'Angelo";
const SAN_FRANCESCO: &str = "San Francesco d'Assisi";

/// Easter Sunday of a Gregorian year (the anonymous Gregorian algorithm, also known as
/// Meeus/Jones/Butcher).
///
/// Years outside the range of [`NaiveDate`] saturate at [`NaiveDate::MIN`] or
/// [`NaiveDate::MAX`].
pub fn easter_sunday(year: i32) -> NaiveDate {
    let a = year.rem_euclid(19);
    let b = year.div_euclid(100);
    let c = year.rem_euclid(100);
    let d = b.div_euclid(4);
    let e = b.rem_euclid(4);
    let f = (b + 8).div_euclid(25);
    let g = (b - f + 1).div_euclid(3);
    let h = (19 * a + b - d - g + 15).rem_euclid(30);
    let i = c.div_euclid(4);
    let k = c.rem_euclid(4);
    let l = (32 + 2 * e + 2 * i - h - k).rem_euclid(7);
    let m = (a + 11 * h + 22 * l).div_euclid(451);
    // h, l and m are small and non-negative, so these are 3 or 4 and 1..=31.
    let month = ((h + l - 7 * m + 114) / 31) as u32;
    let day = ((h + l - 7 * m + 114) % 31 + 1) as u32;
    NaiveDate::from_ymd_opt(year, month, day).unwrap_or(if year < 0 {
        NaiveDate::MIN
    } else {
        NaiveDate::MAX
    })
}

/// The Italian national public holidays of a year, in date order, with their Italian names.
///
/// Capodanno, Epifania, Pasqua, Lunedì dell'Angelo, Festa della Liberazione, Festa dei
/// Lavoratori, Festa della Repubblica, Ferragosto, San Francesco d'Assisi (from
/// [`SAN_FRANCESCO_FIRST_YEAR`]), Ognissanti, Immacolata Concezione, Natale, Santo Stefano.
/// When two fall on the same date (Easter Monday on 25 April) both are listed. Local patron
/// days are not national holidays; see [`CalendarConfig::patron_days`]. Empty for years
/// outside the range of [`NaiveDate`].
pub fn italian_public_holidays(year: i32) -> Vec<(NaiveDate, &'static str)> {
    let mut holidays: Vec<(NaiveDate, &'static str)> = FIXED_HOLIDAYS
        .iter()
        .filter_map(|&(month, day, name)| Some((NaiveDate::from_ymd_opt(year, month, day)?, name)))
        .collect();
    if year >= SAN_FRANCESCO_FIRST_YEAR
        && let Some(date) = NaiveDate::from_ymd_opt(year, 10, 4)
    {
        holidays.push((date, SAN_FRANCESCO));
    }
    let easter = easter_sunday(year);
    if easter.year() == year {
        holidays.push((easter, EASTER));
        if let Some(monday) = easter.succ_opt() {
            holidays.push((monday, EASTER_MONDAY));
        }
    }
    // Stable sort: on a shared date the fixed holiday is listed first.
    holidays.sort_by_key(|&(date, _)| date);
    holidays
}

/// The national holiday on a date, if any (same rules as [`italian_public_holidays`]).
fn national_holiday(date: NaiveDate) -> Option<&'static str> {
    let (month, day) = (date.month(), date.day());
    if let Some(&(_, _, name)) = FIXED_HOLIDAYS
        .iter()
        .find(|&&(m, d, _)| m == month && d == day)
    {
        return Some(name);
    }
    if month == 10 && day == 4 && date.year() >= SAN_FRANCESCO_FIRST_YEAR {
        return Some(SAN_FRANCESCO);
    }
    // Easter is always between 22 March and 25 April, Easter Monday up to 26 April.
    if month == 3 || month == 4 {
        let easter = easter_sunday(date.year());
        if date == easter {
            return Some(EASTER);
        }
        if easter.succ_opt() == Some(date) {
            return Some(EASTER_MONDAY);
        }
    }
    None
}

/// Configuration of a [`BusinessCalendar`], as found in the configuration file.
///
/// Missing fields take their [`Default`] values (Milan's office hours); unknown fields are
/// rejected so that a misspelt key does not silently fall back to the default.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct CalendarConfig {
    /// IANA time zone in which sessions, holidays and dates are read. Default `Europe/Rome`.
    pub timezone: String,
    /// Weekly opening sessions. Sessions on the same day must not overlap (they may touch).
    pub sessions: Vec<WeeklySession>,
    /// Local patron days as `MM-DD`, closed every year. Default `12-07` (Sant'Ambrogio, Milan).
    pub patron_days: Vec<String>,
    /// One-off closure dates (local dates).
    pub closures: Vec<NaiveDate>,
}

/// One weekly opening session, repeated on each of its days.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct WeeklySession {
    /// Days of the week: `mon`, `tue`, `wed`, `thu`, `fri`, `sat`, `sun` (case-insensitive).
    pub days: Vec<String>,
    /// Local opening time, `HH:MM`.
    pub start: String,
    /// Local closing time, `HH:MM` (exclusive); `24:00` means midnight at the end of the day.
    pub end: String,
}

impl Default for CalendarConfig {
    /// Milan's office hours: Monday to Friday 08:30–12:30 and 13:30–16:30, Europe/Rome,
    /// closed on Sant'Ambrogio (7 December).
    fn default() -> Self {
        let weekdays = || {
            ["mon", "tue", "wed", "thu", "fri"]
                .map(String::from)
                .to_vec()
        };
        CalendarConfig {
            timezone: "Europe/Rome".to_owned(),
            sessions: vec![
                WeeklySession {
                    days: weekdays(),
                    start: "08:30".to_owned(),
                    end: "12:30".to_owned(),
                },
                WeeklySession {
                    days: weekdays(),
                    start: "13:30".to_owned(),
                    end: "16:30".to_owned(),
                },
            ],
            patron_days: vec!["12-07".to_owned()],
            closures: Vec::new(),
        }
    }
}

/// What is wrong with a [`CalendarConfig`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalendarError {
    #[error("unknown time zone '{value}' in timezone (expected an IANA name such as Europe/Rome)")]
    UnknownTimezone { value: String },
    #[error(
        "sessions[{session}].days is empty (list at least one of: mon, tue, wed, thu, fri, sat, sun)"
    )]
    NoDays { session: usize },
    #[error(
        "unknown day '{value}' in sessions[{session}].days (expected one of: mon, tue, wed, thu, fri, sat, sun)"
    )]
    UnknownDay { session: usize, value: String },
    #[error(
        "invalid time '{value}' in sessions[{session}].{field} (expected HH:MM, 00:00 to 23:59, or 24:00 for an end)"
    )]
    InvalidTime {
        session: usize,
        field: &'static str,
        value: String,
    },
    #[error("sessions[{session}]: start {start} is not before end {end}")]
    StartNotBeforeEnd {
        session: usize,
        start: String,
        end: String,
    },
    #[error(
        "sessions[{first}] ({first_hours}) and sessions[{second}] ({second_hours}) overlap on {day}"
    )]
    OverlappingSessions {
        day: &'static str,
        first: usize,
        first_hours: String,
        second: usize,
        second_hours: String,
    },
    #[error("invalid patron day '{value}' in patron_days (expected MM-DD, e.g. 12-07)")]
    InvalidPatronDay { value: String },
}

/// A session in local time, in seconds from midnight; `end` may be 86 400 (midnight after).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Session {
    start: u32,
    end: u32,
}

/// Open intervals of one day, as half-open `[start, end)` UTC instants.
type Interval = (DateTime<Utc>, DateTime<Utc>);

/// Opening hours, holidays and closures in one time zone, with business-time arithmetic.
///
/// Build it with [`BusinessCalendar::from_config`]; [`Default`] is Milan's office hours (the
/// same as `from_config(&CalendarConfig::default())`). Dates passed to the day queries are
/// local dates in the calendar's zone; instants are UTC. Open intervals are half-open: the
/// office is open at a session's start and closed at its end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BusinessCalendar {
    tz: Tz,
    /// Sessions per weekday (Monday first), sorted and non-overlapping.
    week: [Vec<Session>; 7],
    /// Patron days as (month, day).
    patron_days: Vec<(u32, u32)>,
    closures: BTreeSet<NaiveDate>,
}

impl Default for BusinessCalendar {
    fn default() -> Self {
        let morning = Session {
            start: 8 * 3600 + 30 * 60,
            end: 12 * 3600 + 30 * 60,
        };
        let afternoon = Session {
            start: 13 * 3600 + 30 * 60,
            end: 16 * 3600 + 30 * 60,
        };
        let office = vec![morning, afternoon];
        BusinessCalendar {
            tz: chrono_tz::Europe::Rome,
            week: [
                office.clone(),
                office.clone(),
                office.clone(),
                office.clone(),
                office,
                Vec::new(),
                Vec::new(),
            ],
            patron_days: vec![(12, 7)],
            closures: BTreeSet::new(),
        }
    }
}

impl BusinessCalendar {
    /// Validates a configuration and builds the calendar.
    ///
    /// Errors name the field and value at fault: an unknown time zone, a session without days,
    /// an unknown day name, a malformed time, a start not before its end, two sessions that
    /// overlap on a day, or a patron day that is not a valid `MM-DD`. A day listed twice in one
    /// session counts once.
    pub fn from_config(config: &CalendarConfig) -> Result<BusinessCalendar, CalendarError> {
        let tz: Tz =
            config
                .timezone
                .trim()
                .parse()
                .map_err(|_| CalendarError::UnknownTimezone {
                    value: config.timezone.clone(),
                })?;

        // Sessions per weekday, remembering which configured session each came from.
        let mut week: [Vec<(Session, usize)>; 7] = Default::default();
        for (index, weekly) in config.sessions.iter().enumerate() {
            if weekly.days.is_empty() {
                return Err(CalendarError::NoDays { session: index });
            }
            let start =
                parse_time(&weekly.start, false).ok_or_else(|| CalendarError::InvalidTime {
                    session: index,
                    field: "start",
                    value: weekly.start.clone(),
                })?;
            let end = parse_time(&weekly.end, true).ok_or_else(|| CalendarError::InvalidTime {
                session: index,
                field: "end",
                value: weekly.end.clone(),
            })?;
            if start >= end {
                return Err(CalendarError::StartNotBeforeEnd {
                    session: index,
                    start: weekly.start.clone(),
                    end: weekly.end.clone(),
                });
            }
            let mut days: Vec<Weekday> = Vec::new();
            for name in &weekly.days {
                let day = parse_day(name).ok_or_else(|| CalendarError::UnknownDay {
                    session: index,
                    value: name.clone(),
                })?;
                if !days.contains(&day) {
                    days.push(day);
                }
            }
            for day in days {
                week[day.num_days_from_monday() as usize].push((Session { start, end }, index));
            }
        }
        for (day, sessions) in week.iter_mut().enumerate() {
            sessions.sort_by_key(|&(s, _)| (s.start, s.end));
            for pair in sessions.windows(2) {
                let ((a, first), (b, second)) = (pair[0], pair[1]);
                if b.start < a.end {
                    return Err(CalendarError::OverlappingSessions {
                        day: DAY_NAMES[day],
                        first,
                        first_hours: format_session(a),
                        second,
                        second_hours: format_session(b),
                    });
                }
            }
        }

        let patron_days = config
            .patron_days
            .iter()
            .map(|value| {
                parse_month_day(value).ok_or_else(|| CalendarError::InvalidPatronDay {
                    value: value.clone(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;

        Ok(BusinessCalendar {
            tz,
            week: week.map(|sessions| sessions.into_iter().map(|(s, _)| s).collect()),
            patron_days,
            closures: config.closures.iter().copied().collect(),
        })
    }

    /// The same calendar with extra one-off closure dates.
    pub fn with_closures(mut self, closures: impl IntoIterator<Item = NaiveDate>) -> Self {
        self.closures.extend(closures);
        self
    }

    /// Closes the office for a whole local date.
    pub fn add_closure(&mut self, date: NaiveDate) {
        self.closures.insert(date);
    }

    /// The calendar's time zone.
    pub fn timezone(&self) -> Tz {
        self.tz
    }

    /// The local date of an instant in the calendar's zone.
    pub fn local_date(&self, instant: DateTime<Utc>) -> NaiveDate {
        self.local_naive(instant)
            .map(|local| local.date())
            .unwrap_or_else(|| instant.date_naive())
    }

    /// Why a local date is closed all day, if it is: the Italian name of a national holiday,
    /// [`PATRON_DAY_REASON`] or [`CLOSURE_REASON`]. Weekends and other days without sessions
    /// are not holidays; see [`is_open_day`](Self::is_open_day).
    pub fn is_holiday(&self, date: NaiveDate) -> Option<&str> {
        if let Some(name) = national_holiday(date) {
            return Some(name);
        }
        if self.patron_days.contains(&(date.month(), date.day())) {
            return Some(PATRON_DAY_REASON);
        }
        if self.closures.contains(&date) {
            return Some(CLOSURE_REASON);
        }
        None
    }

    /// Whether the office opens at all on a local date (it has sessions and is no holiday).
    pub fn is_open_day(&self, date: NaiveDate) -> bool {
        let mut intervals = Vec::new();
        self.day_intervals(date, &mut intervals);
        !intervals.is_empty()
    }

    /// The open intervals of a local date as half-open `[start, end)` UTC instants, sorted,
    /// non-overlapping, with touching sessions merged. Empty on holidays and days without
    /// sessions.
    pub fn open_intervals(&self, date: NaiveDate) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
        let mut intervals = Vec::new();
        self.day_intervals(date, &mut intervals);
        intervals
    }

    /// Whether the office is open at an instant (open at a session's start, closed at its end).
    pub fn is_open_at(&self, instant: DateTime<Utc>) -> bool {
        let mut intervals = Vec::new();
        self.days_around(instant).take(3).any(|day| {
            self.day_intervals(day, &mut intervals);
            intervals.iter().any(|&(s, e)| s <= instant && instant < e)
        })
    }

    /// The first instant at or after `instant` at which the office is open: `instant` itself if
    /// open, else the start of the next session. `None` if nothing opens within
    /// [`SEARCH_HORIZON_DAYS`] days.
    pub fn next_open_at(&self, instant: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if self.never_open() {
            return None;
        }
        let mut intervals = Vec::new();
        for day in self
            .days_around(instant)
            .take(SEARCH_HORIZON_DAYS as usize + 2)
        {
            self.day_intervals(day, &mut intervals);
            if let Some(&(s, _)) = intervals.iter().find(|&&(_, e)| e > instant) {
                return Some(s.max(instant));
            }
        }
        None
    }

    /// The instant at which `duration` of open time has elapsed since `start`: the deadline of
    /// a clock that only runs while the office is open.
    ///
    /// The result is never inside closed time: it is an open instant, or exactly the end of a
    /// session when the duration runs out there (a deadline of "4 hours" from 08:30 is 12:30
    /// the same day, not 13:30). A zero or negative duration gives
    /// [`next_open_at(start)`](Self::next_open_at). `None` if the office stays closed for
    /// [`SEARCH_HORIZON_DAYS`] days in a row before the time is used up, or the deadline is
    /// more than [`MAX_SPAN_DAYS`] days away.
    pub fn add_business_time(
        &self,
        start: DateTime<Utc>,
        duration: Duration,
    ) -> Option<DateTime<Utc>> {
        if duration <= Duration::zero() {
            return self.next_open_at(start);
        }
        if self.never_open() {
            return None;
        }
        let mut remaining = duration;
        let mut closed_days = 0u32;
        let mut intervals = Vec::new();
        for day in self.days_around(start).take(MAX_SPAN_DAYS as usize + 2) {
            self.day_intervals(day, &mut intervals);
            let mut used_any = false;
            for &(s, e) in intervals.iter().filter(|&&(_, e)| e > start) {
                let s = s.max(start);
                let length = e - s;
                if remaining <= length {
                    return Some(s + remaining);
                }
                remaining -= length;
                used_any = true;
            }
            if used_any {
                closed_days = 0;
            } else {
                closed_days += 1;
                if closed_days > SEARCH_HORIZON_DAYS + 1 {
                    return None;
                }
            }
        }
        None
    }

    /// Open time within the half-open range `[from, to)`; zero if `to <= from`.
    ///
    /// The inverse of [`add_business_time`](Self::add_business_time):
    /// `business_time_between(s, add_business_time(s, d)) == d`, and it is additive over
    /// adjacent ranges.
    pub fn business_time_between(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Duration {
        let mut total = Duration::zero();
        if to <= from {
            return total;
        }
        let last = self.local_date(to);
        let last = last.succ_opt().unwrap_or(last);
        let mut intervals = Vec::new();
        for day in self.days_around(from).take_while(|&day| day <= last) {
            self.day_intervals(day, &mut intervals);
            for &(s, e) in &intervals {
                let (s, e) = (s.max(from), e.min(to));
                if s < e {
                    total += e - s;
                }
            }
        }
        total
    }

    /// The deadline `days` open days after `start`, keeping the local clock time.
    ///
    /// The rule: first `start` moves to [`next_open_at(start)`](Self::next_open_at) (a request
    /// that arrives after hours counts from the next opening), then the result is the same
    /// local clock time on the `days`-th open day after that one. If the office is not open at
    /// that clock time on the target day (its hours differ), the result moves forward to the
    /// next opening on that day, or to the end of its last session if none is left. This keeps
    /// deadlines in open time and never gives a later request an earlier deadline. `days == 0`
    /// gives `next_open_at(start)`. `None` if no open day is found within
    /// [`SEARCH_HORIZON_DAYS`] days of the previous one, or the target day is more than
    /// [`MAX_SPAN_DAYS`] days away.
    pub fn add_business_days(&self, start: DateTime<Utc>, days: u32) -> Option<DateTime<Utc>> {
        let anchor = self.next_open_at(start)?;
        if days == 0 {
            return Some(anchor);
        }
        let local = self.local_naive(anchor)?;
        let clock = local.time();
        let mut counted = 0u32;
        let mut closed_days = 0u32;
        let mut intervals = Vec::new();
        let mut day = local.date();
        for _ in 0..MAX_SPAN_DAYS {
            day = day.succ_opt()?;
            self.day_intervals(day, &mut intervals);
            if intervals.is_empty() {
                closed_days += 1;
                if closed_days > SEARCH_HORIZON_DAYS {
                    return None;
                }
                continue;
            }
            closed_days = 0;
            counted += 1;
            if counted == days {
                let target = self.local_to_utc(day.and_time(clock))?;
                return intervals
                    .iter()
                    .find(|&&(_, e)| target < e)
                    .map(|&(s, _)| s.max(target))
                    .or_else(|| intervals.last().map(|&(_, e)| e));
            }
        }
        None
    }

    /// Whether no weekday has any session.
    fn never_open(&self) -> bool {
        self.week.iter().all(Vec::is_empty)
    }

    /// Local dates starting the day before the local date of `instant`. Starting one day early
    /// is cheap insurance for zones whose clocks go back across midnight.
    fn days_around(&self, instant: DateTime<Utc>) -> impl Iterator<Item = NaiveDate> {
        let date = self.local_date(instant);
        std::iter::successors(Some(date.pred_opt().unwrap_or(date)), |d| d.succ_opt())
    }

    /// Fills `out` with the open intervals of a local date.
    fn day_intervals(&self, date: NaiveDate, out: &mut Vec<Interval>) {
        out.clear();
        let sessions = &self.week[date.weekday().num_days_from_monday() as usize];
        if sessions.is_empty() || self.is_holiday(date).is_some() {
            return;
        }
        let midnight = date.and_time(chrono::NaiveTime::MIN);
        for session in sessions {
            let boundary = |seconds: u32| {
                midnight
                    .checked_add_signed(Duration::seconds(i64::from(seconds)))
                    .and_then(|local| self.local_to_utc(local))
            };
            let (Some(start), Some(end)) = (boundary(session.start), boundary(session.end)) else {
                continue;
            };
            if start >= end {
                // The whole session fell into a skipped hour.
                continue;
            }
            match out.last_mut() {
                Some(last) if last.1 >= start => last.1 = last.1.max(end),
                _ => out.push((start, end)),
            }
        }
    }

    /// The local wall-clock time of an instant; `None` only at the edges of chrono's range.
    fn local_naive(&self, instant: DateTime<Utc>) -> Option<NaiveDateTime> {
        let utc = instant.naive_utc();
        utc.checked_add_offset(self.tz.offset_from_utc_datetime(&utc).fix())
    }

    /// The first instant at which the local clock shows `local` or later (see the module
    /// documentation); `None` only at the edges of chrono's range.
    fn local_to_utc(&self, local: NaiveDateTime) -> Option<DateTime<Utc>> {
        match self.tz.offset_from_local_datetime(&local) {
            LocalResult::Single(offset) | LocalResult::Ambiguous(offset, _) => local
                .checked_sub_offset(offset.fix())
                .map(|utc| utc.and_utc()),
            LocalResult::None => self.end_of_gap(local),
        }
    }

    /// For a local time skipped by a clock change, the instant of the change: the smallest
    /// instant whose local time is at or after `local`, found by bisection in whole seconds.
    fn end_of_gap(&self, local: NaiveDateTime) -> Option<DateTime<Utc>> {
        let target = local.and_utc().timestamp();
        // No UTC offset reaches 30 hours, so local(lo) < local <= local(hi).
        let (mut lo, mut hi) = (target - 30 * 3600, target + 30 * 3600);
        let shows_at_least = |ts: i64| {
            DateTime::from_timestamp(ts, 0)
                .and_then(|t| self.local_naive(t))
                .is_some_and(|shown| shown >= local)
        };
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if shows_at_least(mid) {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        DateTime::from_timestamp(hi, 0)
    }
}

/// Parses `HH:MM` into seconds from midnight; `24:00` only when `allow_midnight_end`.
fn parse_time(value: &str, allow_midnight_end: bool) -> Option<u32> {
    let (hours, minutes) = value.trim().split_once(':')?;
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(hours) || hours.len() > 2 || minutes.len() != 2 || !all_digits(minutes) {
        return None;
    }
    let (hours, minutes): (u32, u32) = (hours.parse().ok()?, minutes.parse().ok()?);
    if hours == 24 && minutes == 0 && allow_midnight_end {
        return Some(SECONDS_PER_DAY);
    }
    (hours < 24 && minutes < 60).then_some(hours * 3600 + minutes * 60)
}

fn parse_day(value: &str) -> Option<Weekday> {
    let position = DAY_NAMES
        .iter()
        .position(|name| name.eq_ignore_ascii_case(value.trim()))?;
    Weekday::try_from(position as u8).ok()
}

/// Parses `MM-DD` (any day that exists in a leap year, so `02-29` is allowed).
fn parse_month_day(value: &str) -> Option<(u32, u32)> {
    let (month, day) = value.trim().split_once('-')?;
    let two_digits = |s: &str| s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit());
    if !two_digits(month) || !two_digits(day) {
        return None;
    }
    let (month, day): (u32, u32) = (month.parse().ok()?, day.parse().ok()?);
    NaiveDate::from_ymd_opt(2000, month, day).map(|_| (month, day))
}

fn format_session(session: Session) -> String {
    let hm = |seconds: u32| format!("{:02}:{:02}", seconds / 3600, seconds % 3600 / 60);
    format!("{}–{}", hm(session.start), hm(session.end))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, min, 0).unwrap()
    }

    /// An instant given as Rome wall-clock time (unambiguous times only).
    fn rome(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        chrono_tz::Europe::Rome
            .with_ymd_and_hms(y, m, d, h, min, 0)
            .single()
            .unwrap()
            .with_timezone(&Utc)
    }

    fn milan() -> BusinessCalendar {
        BusinessCalendar::default()
    }

    fn session(days: &[&str], start: &str, end: &str) -> WeeklySession {
        WeeklySession {
            days: days.iter().map(|d| d.to_string()).collect(),
            start: start.to_owned(),
            end: end.to_owned(),
        }
    }

    fn calendar(sessions: Vec<WeeklySession>) -> BusinessCalendar {
        BusinessCalendar::from_config(&CalendarConfig {
            sessions,
            patron_days: Vec::new(),
            ..CalendarConfig::default()
        })
        .unwrap()
    }

    /// A calendar open around the clock changes: nights, touching sessions, a weekend.
    fn night_calendar() -> BusinessCalendar {
        calendar(vec![
            session(&["sat"], "01:30", "02:45"),
            session(&["sat"], "02:45", "24:00"),
            session(&["sun"], "00:00", "06:00"),
            session(&["sun"], "20:00", "24:00"),
            session(&["wed"], "09:00", "10:00"),
        ])
    }

    fn hours(h: i64) -> Duration {
        Duration::hours(h)
    }

    #[test]
    fn easter_dates_match_known_values() {
        for (year, m, d) in [
            (2024, 3, 31),
            (2025, 4, 20),
            (2026, 4, 5),
            (2027, 3, 28),
            (2028, 4, 16),
            (2029, 4, 1),
            (2030, 4, 21),
            // Extremes of the possible range and a century year.
            (1818, 3, 22),
            (1943, 4, 25),
            (2038, 4, 25),
            (2000, 4, 23),
        ] {
            assert_eq!(easter_sunday(year), date(year, m, d), "{year}");
        }
        assert_eq!(easter_sunday(i32::MAX), NaiveDate::MAX);
        assert_eq!(easter_sunday(i32::MIN), NaiveDate::MIN);
    }

    #[test]
    fn holidays_of_2025_are_the_twelve_without_san_francesco() {
        let holidays = italian_public_holidays(2025);
        let expected = [
            (date(2025, 1, 1), "Capodanno"),
            (date(2025, 1, 6), "Epifania"),
            (date(2025, 4, 20), "Pasqua"),
            (date(2025, 4, 21), "Lunedì dell'Angelo"),
            (date(2025, 4, 25), "Festa della Liberazione"),
            (date(2025, 5, 1), "Festa dei Lavoratori"),
            (date(2025, 6, 2), "Festa della Repubblica"),
            (date(2025, 8, 15), "Ferragosto"),
            (date(2025, 11, 1), "Ognissanti"),
            (date(2025, 12, 8), "Immacolata Concezione"),
            (date(2025, 12, 25), "Natale"),
            (date(2025, 12, 26), "Santo Stefano"),
        ];
        assert_eq!(holidays, expected);
    }

    #[test]
    fn san_francesco_is_a_holiday_only_from_its_first_year() {
        let has_oct_4 = |year: i32| {
            italian_public_holidays(year)
                .iter()
                .any(|&(d, name)| d == date(year, 10, 4) && name == "San Francesco d'Assisi")
        };
        assert!(!has_oct_4(2024));
        assert!(!has_oct_4(2025));
        assert!(has_oct_4(2026)); // a Sunday: closes nothing extra
        assert!(has_oct_4(2027));
        assert!(has_oct_4(2030));
        let cal = milan();
        assert_eq!(cal.is_holiday(date(2025, 10, 4)), None);
        // Monday 4 October 2027: the office is closed.
        assert_eq!(
            cal.is_holiday(date(2027, 10, 4)),
            Some("San Francesco d'Assisi")
        );
        assert!(!cal.is_open_day(date(2027, 10, 4)));
        assert!(cal.is_open_day(date(2027, 10, 5)));
    }

    #[test]
    fn holidays_across_years_are_sorted_and_include_easter() {
        for year in 2020..=2035 {
            let holidays = italian_public_holidays(year);
            assert_eq!(holidays.len(), if year >= 2026 { 13 } else { 12 }, "{year}");
            assert!(holidays.windows(2).all(|w| w[0].0 <= w[1].0), "{year}");
            let easter = easter_sunday(year);
            assert!(holidays.contains(&(easter, "Pasqua")));
            assert!(holidays.contains(&(easter.succ_opt().unwrap(), "Lunedì dell'Angelo")));
            for (d, name) in holidays {
                assert_eq!(national_holiday(d), Some(name), "{d}");
            }
        }
        // 2011: Easter Monday on 25 April, both listed.
        let h2011 = italian_public_holidays(2011);
        assert!(h2011.contains(&(date(2011, 4, 25), "Festa della Liberazione")));
        assert!(h2011.contains(&(date(2011, 4, 25), "Lunedì dell'Angelo")));
        assert!(italian_public_holidays(i32::MAX).is_empty());
    }

    #[test]
    fn patron_day_and_closures_close_the_office_with_a_reason() {
        let mut cal = milan();
        // Monday 7 December 2026, Sant'Ambrogio.
        assert_eq!(cal.is_holiday(date(2026, 12, 7)), Some(PATRON_DAY_REASON));
        assert!(cal.open_intervals(date(2026, 12, 7)).is_empty());
        assert_eq!(
            cal.is_holiday(date(2026, 12, 8)),
            Some("Immacolata Concezione")
        );
        assert!(cal.is_open_day(date(2026, 12, 9)));
        cal.add_closure(date(2026, 12, 9));
        assert_eq!(cal.is_holiday(date(2026, 12, 9)), Some(CLOSURE_REASON));
        assert!(!cal.is_open_day(date(2026, 12, 9)));
        let cal = milan().with_closures([date(2026, 8, 14), date(2026, 12, 24)]);
        assert!(!cal.is_open_day(date(2026, 8, 14)));
        assert!(!cal.is_open_day(date(2026, 12, 24)));
        // A weekend is closed but is not a holiday.
        assert_eq!(cal.is_holiday(date(2026, 12, 12)), None);
        assert!(!cal.is_open_day(date(2026, 12, 12)));
        // Monday after Easter 2026.
        assert_eq!(cal.is_holiday(date(2026, 4, 6)), Some("Lunedì dell'Angelo"));
        assert!(!cal.is_open_day(date(2026, 4, 6)));
    }

    #[test]
    fn default_config_is_milan_and_round_trips_through_json() {
        let config = CalendarConfig::default();
        assert_eq!(BusinessCalendar::from_config(&config).unwrap(), milan());
        let json = serde_json::to_string(&config).unwrap();
        let back: CalendarConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back, config);
        // Missing fields take the defaults.
        let partial: CalendarConfig =
            serde_json::from_str(r#"{"closures": ["2026-08-14"]}"#).unwrap();
        assert_eq!(partial.timezone, "Europe/Rome");
        assert_eq!(partial.sessions, config.sessions);
        let cal = BusinessCalendar::from_config(&partial).unwrap();
        assert!(!cal.is_open_day(date(2026, 8, 14)));
        // A misspelt key is an error, not a silent default.
        let err =
            serde_json::from_str::<CalendarConfig>(r#"{"patron_day": ["06-24"]}"#).unwrap_err();
        assert!(err.to_string().contains("patron_day"), "{err}");
    }

    #[test]
    fn config_errors_name_the_field_and_value() {
        let base = CalendarConfig::default();
        let build = |edit: &dyn Fn(&mut CalendarConfig)| {
            let mut config = base.clone();
            edit(&mut config);
            BusinessCalendar::from_config(&config).unwrap_err()
        };

        let err = build(&|c| c.timezone = "Europe/Milano".into());
        assert_eq!(
            err,
            CalendarError::UnknownTimezone {
                value: "Europe/Milano".into()
            }
        );
        assert!(
            err.to_string().contains("'Europe/Milano' in timezone"),
            "{err}"
        );

        let err = build(&|c| c.sessions[1].days[2] = "mer".into());
        assert_eq!(
            err,
            CalendarError::UnknownDay {
                session: 1,
                value: "mer".into()
            }
        );
        assert!(err.to_string().contains("sessions[1].days"), "{err}");

        let err = build(&|c| c.sessions[0].days.clear());
        assert_eq!(err, CalendarError::NoDays { session: 0 });

        let err = build(&|c| c.sessions[0].start = "8.30".into());
        assert!(
            err.to_string().contains("'8.30' in sessions[0].start"),
            "{err}"
        );
        let err = build(&|c| c.sessions[1].end = "25:00".into());
        assert!(
            err.to_string().contains("'25:00' in sessions[1].end"),
            "{err}"
        );
        let err = build(&|c| c.sessions[1].start = "24:00".into());
        assert!(matches!(
            err,
            CalendarError::InvalidTime {
                session: 1,
                field: "start",
                ..
            }
        ));

        let err = build(&|c| c.sessions[0].end = "08:30".into());
        assert_eq!(
            err,
            CalendarError::StartNotBeforeEnd {
                session: 0,
                start: "08:30".into(),
                end: "08:30".into()
            }
        );

        let err = build(&|c| c.sessions.push(session(&["fri"], "12:00", "14:00")));
        assert_eq!(
            err.to_string(),
            "sessions[0] (08:30–12:30) and sessions[2] (12:00–14:00) overlap on fri"
        );

        for bad in ["7-12", "12/07", "13-01", "02-30", "", "12-7"] {
            let err = build(&|c| c.patron_days = vec![bad.into()]);
            assert_eq!(
                err,
                CalendarError::InvalidPatronDay { value: bad.into() },
                "{bad}"
            );
        }
    }

    #[test]
    fn config_accepts_touching_sessions_midnight_end_and_leap_patron_day() {
        let cal = BusinessCalendar::from_config(&CalendarConfig {
            timezone: " Europe/Rome ".into(),
            sessions: vec![
                session(&["Mon", "mon"], "08:00", "12:00"),
                session(&["mon"], "12:00", "24:00"),
            ],
            patron_days: vec!["02-29".into()],
            closures: vec![],
        })
        .unwrap();
        // Touching sessions merge into one interval, ending at midnight.
        assert_eq!(
            cal.open_intervals(date(2026, 1, 12)),
            vec![(rome(2026, 1, 12, 8, 0), rome(2026, 1, 13, 0, 0))]
        );
        assert_eq!(cal.is_holiday(date(2028, 2, 29)), Some(PATRON_DAY_REASON));
    }

    #[test]
    fn sessions_follow_summer_time_in_utc() {
        let cal = milan();
        // Winter: Rome is UTC+1.
        assert_eq!(
            cal.open_intervals(date(2026, 1, 14)),
            vec![
                (utc(2026, 1, 14, 7, 30), utc(2026, 1, 14, 11, 30)),
                (utc(2026, 1, 14, 12, 30), utc(2026, 1, 14, 15, 30)),
            ]
        );
        // Summer: UTC+2.
        assert_eq!(
            cal.open_intervals(date(2026, 7, 15)),
            vec![
                (utc(2026, 7, 15, 6, 30), utc(2026, 7, 15, 10, 30)),
                (utc(2026, 7, 15, 11, 30), utc(2026, 7, 15, 14, 30)),
            ]
        );
        // chrono-tz's tables carry the summer-time rules up to 2099.
        assert_eq!(
            cal.open_intervals(date(2099, 7, 15))[0].0,
            utc(2099, 7, 15, 6, 30)
        );
    }

    #[test]
    fn spring_forward_week_2026() {
        let cal = milan();
        // Friday 27 March, still winter time.
        assert_eq!(
            cal.open_intervals(date(2026, 3, 27))[0],
            (utc(2026, 3, 27, 7, 30), utc(2026, 3, 27, 11, 30))
        );
        // Sunday 29 March: closed. Monday 30 March: summer time.
        assert!(cal.open_intervals(date(2026, 3, 29)).is_empty());
        assert_eq!(
            cal.open_intervals(date(2026, 3, 30))[0],
            (utc(2026, 3, 30, 6, 30), utc(2026, 3, 30, 10, 30))
        );
        assert!(!cal.is_open_at(utc(2026, 3, 30, 6, 29)));
        assert!(cal.is_open_at(utc(2026, 3, 30, 6, 30)));
        // Friday 15:00 local + 2h: 1.5h on Friday, 0.5h from 08:30 CEST on Monday.
        let deadline = cal
            .add_business_time(rome(2026, 3, 27, 15, 0), hours(2))
            .unwrap();
        assert_eq!(deadline, rome(2026, 3, 30, 9, 0));
        assert_eq!(deadline, utc(2026, 3, 30, 7, 0));
        assert_eq!(
            cal.business_time_between(rome(2026, 3, 27, 15, 0), deadline),
            hours(2)
        );
        // Same local clock time the next open day, across the change.
        assert_eq!(
            cal.add_business_days(rome(2026, 3, 27, 10, 0), 1),
            Some(utc(2026, 3, 30, 8, 0))
        );
        // A week of open time is the same across the change: 5 days x 7 h.
        assert_eq!(
            cal.business_time_between(utc(2026, 3, 23, 0, 0), utc(2026, 3, 30, 0, 0)),
            hours(35)
        );
    }

    #[test]
    fn fall_back_week_2026() {
        let cal = milan();
        assert_eq!(
            cal.open_intervals(date(2026, 10, 23))[0],
            (utc(2026, 10, 23, 6, 30), utc(2026, 10, 23, 10, 30))
        );
        assert!(cal.open_intervals(date(2026, 10, 25)).is_empty());
        assert_eq!(
            cal.open_intervals(date(2026, 10, 26))[1],
            (utc(2026, 10, 26, 12, 30), utc(2026, 10, 26, 15, 30))
        );
        let deadline = cal
            .add_business_time(rome(2026, 10, 23, 16, 0), hours(1))
            .unwrap();
        assert_eq!(deadline, utc(2026, 10, 26, 8, 0)); // 09:00 CET
        assert_eq!(
            cal.next_open_at(utc(2026, 10, 23, 15, 0)),
            Some(utc(2026, 10, 26, 7, 30))
        );
    }

    #[test]
    fn sessions_on_the_change_days_themselves() {
        // Office hours on the Sundays of the changes are in the new offset.
        let sunday_office = calendar(vec![session(&["sun"], "08:30", "12:30")]);
        assert_eq!(
            sunday_office.open_intervals(date(2026, 3, 29)),
            vec![(utc(2026, 3, 29, 6, 30), utc(2026, 3, 29, 10, 30))]
        );
        assert_eq!(
            sunday_office.open_intervals(date(2026, 10, 25)),
            vec![(utc(2026, 10, 25, 7, 30), utc(2026, 10, 25, 11, 30))]
        );
        // A night session loses an hour in spring and gains one in autumn.
        let cal = night_calendar();
        let night = |d: NaiveDate| {
            cal.open_intervals(d)
                .first()
                .map(|&(s, e)| e - s)
                .unwrap_or_default()
        };
        assert_eq!(night(date(2026, 3, 29)), hours(5));
        assert_eq!(night(date(2026, 10, 25)), hours(7));
        assert_eq!(night(date(2026, 6, 7)), hours(6));
        assert_eq!(
            cal.open_intervals(date(2026, 3, 29))[0],
            (utc(2026, 3, 28, 23, 0), utc(2026, 3, 29, 4, 0))
        );
        // 02:30-04:00 on the spring day starts at the change (01:00 UTC): one hour.
        let gap = calendar(vec![
            session(&["sun"], "02:00", "02:30"),
            session(&["sun"], "02:30", "04:00"),
        ]);
        assert_eq!(
            gap.open_intervals(date(2026, 3, 29)),
            vec![(utc(2026, 3, 29, 1, 0), utc(2026, 3, 29, 2, 0))]
        );
        // In autumn 02:00-02:30 starts at its first occurrence.
        assert_eq!(
            gap.open_intervals(date(2026, 10, 25)),
            vec![(utc(2026, 10, 25, 0, 0), utc(2026, 10, 25, 3, 0))]
        );
    }

    #[test]
    fn is_open_at_respects_half_open_sessions_and_holidays() {
        let cal = milan();
        assert!(!cal.is_open_at(rome(2026, 1, 14, 8, 29)));
        assert!(cal.is_open_at(rome(2026, 1, 14, 8, 30)));
        assert!(cal.is_open_at(rome(2026, 1, 14, 12, 29)));
        assert!(!cal.is_open_at(rome(2026, 1, 14, 12, 30)));
        assert!(!cal.is_open_at(rome(2026, 1, 14, 13, 0)));
        assert!(cal.is_open_at(rome(2026, 1, 14, 16, 29)));
        assert!(!cal.is_open_at(rome(2026, 1, 14, 16, 30)));
        assert!(!cal.is_open_at(rome(2026, 1, 17, 10, 0))); // Saturday
        assert!(!cal.is_open_at(rome(2026, 1, 6, 10, 0))); // Epifania, a Tuesday
    }

    #[test]
    fn next_open_at_skips_breaks_weekends_and_holidays() {
        let cal = milan();
        let open = rome(2026, 1, 14, 10, 0);
        assert_eq!(cal.next_open_at(open), Some(open));
        assert_eq!(
            cal.next_open_at(rome(2026, 1, 14, 12, 30)),
            Some(rome(2026, 1, 14, 13, 30))
        );
        assert_eq!(
            cal.next_open_at(rome(2026, 1, 16, 17, 0)),
            Some(rome(2026, 1, 19, 8, 30))
        );
        // Christmas Eve afternoon 2026 (Thursday) -> Monday 28 December.
        assert_eq!(
            cal.next_open_at(rome(2026, 12, 24, 17, 0)),
            Some(rome(2026, 12, 28, 8, 30))
        );
        let never = calendar(Vec::new());
        assert_eq!(never.next_open_at(open), None);
        assert_eq!(never.add_business_time(open, hours(1)), None);
        assert_eq!(never.add_business_days(open, 1), None);
        assert_eq!(
            never.business_time_between(open, open + hours(1000)),
            Duration::zero()
        );
    }

    #[test]
    fn add_business_time_stops_at_session_end_when_time_runs_out_there() {
        let cal = milan();
        let monday = |h, m| rome(2026, 1, 12, h, m);
        assert_eq!(
            cal.add_business_time(monday(8, 30), hours(4)),
            Some(monday(12, 30))
        );
        assert_eq!(
            cal.add_business_time(monday(12, 0), Duration::minutes(30)),
            Some(monday(12, 30))
        );
        assert_eq!(
            cal.add_business_time(monday(12, 0), Duration::minutes(31)),
            Some(monday(13, 31))
        );
        assert_eq!(
            cal.add_business_time(monday(8, 30), hours(7)),
            Some(monday(16, 30))
        );
        // Starting in closed time counts from the next opening.
        assert_eq!(
            cal.add_business_time(monday(7, 0), hours(1)),
            Some(monday(9, 30))
        );
        assert_eq!(
            cal.add_business_time(monday(18, 0), hours(1)),
            Some(rome(2026, 1, 13, 9, 30))
        );
        // Zero or negative: the next open instant.
        assert_eq!(
            cal.add_business_time(monday(13, 0), Duration::zero()),
            Some(monday(13, 30))
        );
        assert_eq!(
            cal.add_business_time(monday(10, 0), hours(-3)),
            Some(monday(10, 0))
        );
        // A 40-hour SLA from Friday 9 April 2027 morning: 7h that day, 28h over 12-15 April,
        // then 4h + 1h on Friday 16 April.
        assert_eq!(
            cal.add_business_time(rome(2027, 4, 9, 8, 30), hours(40)),
            Some(rome(2027, 4, 16, 14, 30))
        );
    }

    #[test]
    fn add_business_time_skips_easter_and_liberation_day() {
        let cal = milan();
        // Thursday 2 April 2026 16:00 + 1h: 30 min Thursday, then Friday 3 April (open).
        assert_eq!(
            cal.add_business_time(rome(2026, 4, 2, 16, 0), hours(1)),
            Some(rome(2026, 4, 3, 9, 0))
        );
        // Friday 3 April 16:00 + 1h: weekend, Easter Monday 6 April closed -> Tuesday.
        assert_eq!(
            cal.add_business_time(rome(2026, 4, 3, 16, 0), hours(1)),
            Some(rome(2026, 4, 7, 9, 0))
        );
    }

    #[test]
    fn business_time_between_counts_only_open_time() {
        let cal = milan();
        let a = rome(2026, 1, 12, 8, 0);
        assert_eq!(
            cal.business_time_between(a, rome(2026, 1, 13, 8, 0)),
            hours(7)
        );
        assert_eq!(
            cal.business_time_between(rome(2026, 1, 12, 12, 0), rome(2026, 1, 12, 14, 0)),
            Duration::minutes(60)
        );
        assert_eq!(cal.business_time_between(a, a), Duration::zero());
        assert_eq!(
            cal.business_time_between(rome(2026, 1, 13, 8, 0), a),
            Duration::zero()
        );
        // Full year 2026 in Milan: 261 weekdays minus 8 closed ones (1 and 6 January, Easter
        // Monday, 1 May, 2 June, 7, 8 and 25 December), 7 hours each.
        let open_days = (0..365)
            .filter(|&i| cal.is_open_day(date(2026, 1, 1) + Duration::days(i)))
            .count() as i64;
        assert_eq!(
            cal.business_time_between(utc(2025, 12, 31, 23, 0), utc(2026, 12, 31, 23, 0)),
            hours(7 * open_days)
        );
        assert_eq!(open_days, 261 - 8);
    }

    #[test]
    fn add_business_days_keeps_the_clock_and_moves_out_of_closed_time() {
        let cal = milan();
        assert_eq!(
            cal.add_business_days(rome(2026, 1, 12, 10, 0), 1),
            Some(rome(2026, 1, 13, 10, 0))
        );
        // Friday + 1 -> Monday; Thursday 31 December 2026 + 3 skips Capodanno, the weekend
        // and Epifania (Wednesday 6 January 2027): Monday 4, Tuesday 5, Thursday 7.
        assert_eq!(
            cal.add_business_days(rome(2026, 1, 16, 15, 0), 1),
            Some(rome(2026, 1, 19, 15, 0))
        );
        assert_eq!(
            cal.add_business_days(rome(2026, 12, 31, 11, 0), 3),
            Some(rome(2027, 1, 7, 11, 0))
        );
        // Starting on a holiday counts from the next opening (Monday 4 January 08:30).
        assert_eq!(
            cal.add_business_days(rome(2027, 1, 1, 11, 0), 3),
            Some(rome(2027, 1, 8, 8, 30))
        );
        // After hours counts from the next opening.
        assert_eq!(
            cal.add_business_days(rome(2026, 1, 16, 17, 0), 1),
            Some(rome(2026, 1, 20, 8, 30))
        );
        assert_eq!(
            cal.add_business_days(rome(2026, 1, 12, 12, 45), 2),
            Some(rome(2026, 1, 14, 13, 30))
        );
        assert_eq!(
            cal.add_business_days(rome(2026, 1, 12, 7, 0), 0),
            Some(rome(2026, 1, 12, 8, 30))
        );
        // The target day has shorter hours: Friday mornings only.
        let short_friday = calendar(vec![
            session(&["mon", "tue", "wed", "thu"], "08:30", "16:30"),
            session(&["fri"], "08:30", "12:30"),
            session(&["sat"], "10:00", "12:00"),
        ]);
        assert_eq!(
            short_friday.add_business_days(rome(2026, 1, 15, 14, 0), 1),
            Some(rome(2026, 1, 16, 12, 30))
        );
        assert_eq!(
            short_friday.add_business_days(rome(2026, 1, 16, 9, 0), 1),
            Some(rome(2026, 1, 17, 10, 0))
        );
    }

    /// Instants between 2025 and 2031 to the second, half of them within four days of a
    /// clock change of 2026.
    fn instant() -> impl Strategy<Value = DateTime<Utc>> {
        let from = utc(2025, 1, 1, 0, 0).timestamp();
        let to = utc(2031, 1, 1, 0, 0).timestamp();
        let near = |t: DateTime<Utc>| {
            let t = t.timestamp();
            (t - 4 * 86_400)..(t + 4 * 86_400)
        };
        prop_oneof![
            from..to,
            near(utc(2026, 3, 29, 1, 0)),
            near(utc(2026, 10, 25, 1, 0)),
        ]
        .prop_map(|ts| DateTime::from_timestamp(ts, 0).unwrap())
    }

    fn any_calendar() -> impl Strategy<Value = BusinessCalendar> {
        prop_oneof![Just(milan()), Just(night_calendar())]
    }

    fn is_session_end(cal: &BusinessCalendar, t: DateTime<Utc>) -> bool {
        let day = cal.local_date(t);
        [day.pred_opt().unwrap(), day, day.succ_opt().unwrap()]
            .into_iter()
            .any(|d| cal.open_intervals(d).iter().any(|&(_, e)| e == t))
    }

    proptest! {
        #[test]
        fn deadlines_never_fall_in_closed_time(
            cal in any_calendar(),
            start in instant(),
            seconds in 0i64..(800 * 3600),
        ) {
            let deadline = cal.add_business_time(start, Duration::seconds(seconds)).unwrap();
            prop_assert!(deadline >= start);
            prop_assert!(
                cal.is_open_at(deadline) || is_session_end(&cal, deadline),
                "deadline {} is in closed time", deadline
            );
        }

        #[test]
        fn business_time_between_inverts_add_business_time(
            cal in any_calendar(),
            start in instant(),
            seconds in 0i64..(800 * 3600),
        ) {
            let d = Duration::seconds(seconds);
            let deadline = cal.add_business_time(start, d).unwrap();
            prop_assert_eq!(cal.business_time_between(start, deadline), d);
        }

        #[test]
        fn business_time_is_additive(
            cal in any_calendar(),
            mut points in prop::array::uniform3(instant()),
        ) {
            points.sort();
            let [a, b, c] = points;
            prop_assert_eq!(
                cal.business_time_between(a, b) + cal.business_time_between(b, c),
                cal.business_time_between(a, c)
            );
        }

        #[test]
        fn next_open_at_is_open_and_nothing_opens_before_it(
            cal in any_calendar(),
            t in instant(),
        ) {
            let next = cal.next_open_at(t).unwrap();
            prop_assert!(next >= t);
            prop_assert!(cal.is_open_at(next));
            prop_assert_eq!(cal.business_time_between(t, next), Duration::zero());
        }

        #[test]
        fn add_business_days_is_monotone_and_open(
            cal in any_calendar(),
            a in instant(),
            b in instant(),
            n in 0u32..30,
        ) {
            let (a, b) = if a <= b { (a, b) } else { (b, a) };
            let da = cal.add_business_days(a, n).unwrap();
            let db = cal.add_business_days(b, n).unwrap();
            prop_assert!(da <= db, "{} -> {}, {} -> {}", a, da, b, db);
            prop_assert!(da >= a);
            prop_assert!(cal.is_open_at(da) || is_session_end(&cal, da));
        }
    }
}
