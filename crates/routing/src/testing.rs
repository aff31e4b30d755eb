//! Small fixed calendars for tests, independent of the shared business calendar.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};

use crate::clock::BusinessClock;

/// Monday to Friday, 09:00–13:00 and 14:00–17:30 UTC, minus the given holidays.
#[derive(Debug, Clone, Default)]
pub struct OfficeClock {
    pub holidays: Vec<NaiveDate>,
}

const HORIZON_DAYS: i64 = 4000;

impl OfficeClock {
    fn intervals(&self, day: NaiveDate) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
        if matches!(day.weekday(), Weekday::Sat | Weekday::Sun) || self.holidays.contains(&day) {
            return Vec::new();
        }
        let at = |h: u32, m: u32| {
            Utc.from_utc_datetime(
                &day.and_time(NaiveTime::from_hms_opt(h, m, 0).unwrap_or_default()),
            )
        };
        vec![(at(9, 0), at(13, 0)), (at(14, 0), at(17, 30))]
    }

    fn days_from(
        &self,
        t: DateTime<Utc>,
    ) -> impl Iterator<Item = (DateTime<Utc>, DateTime<Utc>)> + '_ {
        let start = t.date_naive();
        (0..HORIZON_DAYS).flat_map(move |i| self.intervals(start + Duration::days(i)))
    }
}

impl BusinessClock for OfficeClock {
    fn add_business_time(&self, start: DateTime<Utc>, d: Duration) -> Option<DateTime<Utc>> {
        let mut left = d;
        for (o, c) in self.days_from(start) {
            if c <= start {
                continue;
            }
            let from = o.max(start);
            let avail = c - from;
            if avail >= left {
                return Some(from + left);
            }
            left -= avail;
        }
        None
    }

    fn business_time_between(&self, a: DateTime<Utc>, b: DateTime<Utc>) -> Duration {
        let mut total = Duration::zero();
        if b <= a {
            return total;
        }
        for (o, c) in self.days_from(a) {
            if o >= b {
                break;
            }
            let from = o.max(a);
            let to = c.min(b);
            if to > from {
                total += to - from;
            }
        }
        total
    }

    fn is_open_at(&self, t: DateTime<Utc>) -> bool {
        self.intervals(t.date_naive())
            .iter()
            .any(|(o, c)| *o <= t && t < *c)
    }

    fn next_open_at(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if self.is_open_at(t) {
            return Some(t);
        }
        self.days_from(t).map(|(o, _)| o).find(|o| *o > t)
    }

    fn add_business_days(&self, start: DateTime<Utc>, days: u32) -> Option<DateTime<Utc>> {
        let anchor = self.next_open_at(start)?;
        if days == 0 {
            return Some(anchor);
        }
        let clock = anchor.time();
        let mut day = anchor.date_naive();
        let mut counted = 0;
        for _ in 0..HORIZON_DAYS {
            day = day.succ_opt()?;
            let iv = self.intervals(day);
            if iv.is_empty() {
                continue;
            }
            counted += 1;
            if counted == days {
                let target = Utc.from_utc_datetime(&day.and_time(clock));
                return iv
                    .iter()
                    .find(|(_, c)| target < *c)
                    .map(|(o, _)| (*o).max(target))
                    .or_else(|| iv.last().map(|(_, c)| *c));
            }
        }
        None
    }

    fn end_of_business_day(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if !self.is_open_at(t) {
            return None;
        }
        self.intervals(t.date_naive()).last().map(|(_, c)| *c)
    }
}

/// A UTC instant from its parts, for readable tests.
pub fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0)
        .single()
        .unwrap_or_default()
}
