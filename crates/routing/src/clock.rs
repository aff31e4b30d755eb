//! The business-time arithmetic the SLA clock needs, as a trait the shared calendar implements.

use chrono::{DateTime, Duration, Utc};
use sportello_domain::calendar::BusinessCalendar;

/// Business-time arithmetic over opening hours and holidays.
///
/// Implemented for `sportello_domain::calendar::BusinessCalendar`; tests use small fixed
/// calendars. Intervals are half-open: an instant at an opening time is open, one at a
/// closing time is closed.
pub trait BusinessClock {
    /// The instant at which `d` of business time has elapsed after `start` (`None` when the
    /// calendar never opens again).
    fn add_business_time(&self, start: DateTime<Utc>, d: Duration) -> Option<DateTime<Utc>>;

    /// The business time elapsed between `a` and `b` (zero when `b <= a`).
    fn business_time_between(&self, a: DateTime<Utc>, b: DateTime<Utc>) -> Duration;

    /// Whether the office is open at `t`.
    fn is_open_at(&self, t: DateTime<Utc>) -> bool;

    /// `t` when open, else the next opening instant (`None` when it never opens again).
    fn next_open_at(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>>;

    /// The deadline `days` open days after `start` at the same local clock time (see
    /// `BusinessCalendar::add_business_days`); `days >= 1`.
    fn add_business_days(&self, start: DateTime<Utc>, days: u32) -> Option<DateTime<Utc>>;

    /// The final closing instant of the business day that contains the open instant `t`
    /// (after any lunch break); `None` when `t` is closed.
    fn end_of_business_day(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>>;
}

impl<C: BusinessClock + ?Sized> BusinessClock for &C {
    fn add_business_time(&self, start: DateTime<Utc>, d: Duration) -> Option<DateTime<Utc>> {
        (**self).add_business_time(start, d)
    }
    fn business_time_between(&self, a: DateTime<Utc>, b: DateTime<Utc>) -> Duration {
        (**self).business_time_between(a, b)
    }
    fn is_open_at(&self, t: DateTime<Utc>) -> bool {
        (**self).is_open_at(t)
    }
    fn next_open_at(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        (**self).next_open_at(t)
    }
    fn add_business_days(&self, start: DateTime<Utc>, days: u32) -> Option<DateTime<Utc>> {
        (**self).add_business_days(start, days)
    }
    fn end_of_business_day(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        (**self).end_of_business_day(t)
    }
}

impl BusinessClock for BusinessCalendar {
    fn add_business_time(&self, start: DateTime<Utc>, d: Duration) -> Option<DateTime<Utc>> {
        BusinessCalendar::add_business_time(self, start, d)
    }
    fn business_time_between(&self, a: DateTime<Utc>, b: DateTime<Utc>) -> Duration {
        BusinessCalendar::business_time_between(self, a, b)
    }
    fn is_open_at(&self, t: DateTime<Utc>) -> bool {
        BusinessCalendar::is_open_at(self, t)
    }
    fn next_open_at(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        BusinessCalendar::next_open_at(self, t)
    }
    fn add_business_days(&self, start: DateTime<Utc>, days: u32) -> Option<DateTime<Utc>> {
        BusinessCalendar::add_business_days(self, start, days)
    }
    fn end_of_business_day(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if !BusinessCalendar::is_open_at(self, t) {
            return None;
        }
        // Sessions end by local midnight, so an open instant's sessions are those of its
        // local date.
        self.open_intervals(self.local_date(t))
            .last()
            .map(|(_, end)| *end)
    }
}
