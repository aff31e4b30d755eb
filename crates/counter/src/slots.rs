//! Slot generation: a session's local hours cut into equal slots, as UTC instants.

use chrono::{DateTime, Duration, LocalResult, NaiveDateTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;

use crate::session::ValidSession;

/// One appointment slot: `[start, end)` in UTC, with room for `capacity` visitors (one per desk).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotSpec {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub capacity: u32,
}

/// The first instant at which the local clock in `tz` shows `local` or later: the same mapping
/// the business calendar uses. A time skipped by the spring change maps to the instant of the
/// change; a repeated autumn time maps to its first occurrence. `None` only at the edges of
/// chrono's range.
pub fn local_to_utc(tz: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    match tz.offset_from_local_datetime(&local) {
        LocalResult::Single(o) | LocalResult::Ambiguous(o, _) => {
            local.checked_sub_offset(o.fix()).map(|u| u.and_utc())
        }
        LocalResult::None => {
            // Bisect for the change: no offset reaches 30 hours.
            let target = local.and_utc().timestamp();
            let (mut lo, mut hi) = (target - 30 * 3600, target + 30 * 3600);
            let shows_at_least = |ts: i64| {
                DateTime::from_timestamp(ts, 0).is_some_and(|t| {
                    let utc = t.naive_utc();
                    utc.checked_add_offset(tz.offset_from_utc_datetime(&utc).fix())
                        .is_some_and(|shown| shown >= local)
                })
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
}

/// Cuts a session into slots of `slot_minutes` of local clock time, starting at the session's
/// start; a remainder shorter than a slot is not offered. Slots are laid out on the wall clock
/// (09:00, 09:20, …, what a visitor is told) and then converted to UTC, so on a clock-change
/// day a slot inside the skipped hour vanishes rather than shifting every later slot.
pub fn generate_slots(tz: Tz, session: &ValidSession) -> Vec<SlotSpec> {
    let step = Duration::minutes(i64::from(session.slot_minutes.max(1)));
    let first = session.date.and_time(session.start);
    let last = session.date.and_time(session.end);
    let mut out = Vec::new();
    let mut local = first;
    while let Some(next) = local.checked_add_signed(step) {
        if next > last {
            break;
        }
        if let (Some(start), Some(end)) = (local_to_utc(tz, local), local_to_utc(tz, next))
            && start < end
        {
            out.push(SlotSpec {
                start,
                end,
                capacity: session.desks,
            });
        }
        local = next;
    }
    out
}

#[cfg(test)]
mod tests {
    use chrono::{NaiveDate, NaiveTime};
    use proptest::prelude::*;

    use super::*;

    const ROME: Tz = chrono_tz::Europe::Rome;

    fn session(date: NaiveDate, start: (u32, u32), end: (u32, u32), minutes: u32) -> ValidSession {
        ValidSession {
            date,
            start: NaiveTime::from_hms_opt(start.0, start.1, 0).unwrap(),
            end: NaiveTime::from_hms_opt(end.0, end.1, 0).unwrap(),
            desks: 3,
            slot_minutes: minutes,
        }
    }
    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }
    fn utc(y: i32, m: u32, day: u32, h: u32, min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, day, h, min, 0).unwrap()
    }

    #[test]
    fn morning_session_in_winter_and_summer() {
        let winter = generate_slots(ROME, &session(d(2026, 3, 27), (8, 30), (12, 30), 20));
        assert_eq!(winter.len(), 12);
        assert_eq!(winter[0].start, utc(2026, 3, 27, 7, 30));
        assert_eq!(winter[11].end, utc(2026, 3, 27, 11, 30));
        assert!(winter.iter().all(|s| s.capacity == 3));
        // The Monday after the spring change: same wall clock, one hour earlier in UTC.
        let summer = generate_slots(ROME, &session(d(2026, 3, 30), (8, 30), (12, 30), 20));
        assert_eq!(summer.len(), 12);
        assert_eq!(summer[0].start, utc(2026, 3, 30, 6, 30));
        // The Monday after the autumn change: back to UTC+1.
        let autumn = generate_slots(ROME, &session(d(2026, 10, 26), (14, 0), (15, 30), 30));
        assert_eq!(
            autumn.iter().map(|s| s.start).collect::<Vec<_>>(),
            vec![
                utc(2026, 10, 26, 13, 0),
                utc(2026, 10, 26, 13, 30),
                utc(2026, 10, 26, 14, 0)
            ]
        );
    }

    #[test]
    fn a_remainder_shorter_than_a_slot_is_not_offered() {
        let slots = generate_slots(ROME, &session(d(2026, 5, 4), (14, 0), (15, 30), 20));
        assert_eq!(slots.len(), 4);
        assert_eq!(slots[3].end, utc(2026, 5, 4, 13, 20));
    }

    #[test]
    fn slots_inside_the_skipped_hour_vanish_and_the_repeated_hour_is_not_doubled() {
        // Sunday 29 March 2026: 02:00–03:00 does not exist.
        let spring = generate_slots(ROME, &session(d(2026, 3, 29), (1, 0), (4, 0), 30));
        assert_eq!(
            spring.iter().map(|s| (s.start, s.end)).collect::<Vec<_>>(),
            vec![
                (utc(2026, 3, 29, 0, 0), utc(2026, 3, 29, 0, 30)),
                (utc(2026, 3, 29, 0, 30), utc(2026, 3, 29, 1, 0)),
                (utc(2026, 3, 29, 1, 0), utc(2026, 3, 29, 1, 30)),
                (utc(2026, 3, 29, 1, 30), utc(2026, 3, 29, 2, 0)),
            ]
        );
        // Sunday 25 October 2026: 02:00–03:00 happens twice; the slot 02:30–03:00 spans both.
        let autumn = generate_slots(ROME, &session(d(2026, 10, 25), (2, 0), (3, 0), 30));
        assert_eq!(autumn.len(), 2);
        assert_eq!(autumn[0].start, utc(2026, 10, 25, 0, 0));
        assert_eq!(autumn[1].end, utc(2026, 10, 25, 2, 0));
    }

    proptest! {
        /// Across every day of 2026 (both clock-change weeks included), slots are ordered,
        /// never overlap, stay inside the session and last the slot length except where a
        /// clock change cuts through them.
        #[test]
        fn slots_are_ordered_disjoint_and_inside_the_session(
            day in 0i64..365,
            start_h in 0u32..20,
            start_m in prop::sample::select(vec![0u32, 15, 30, 45]),
            length in 10u32..240,
            minutes in prop::sample::select(vec![10u32, 15, 20, 30, 45, 60]),
        ) {
            let date = d(2026, 1, 1) + Duration::days(day);
            let start = NaiveTime::from_hms_opt(start_h, start_m, 0).unwrap();
            let end = start + Duration::minutes(i64::from(length));
            prop_assume!(end > start);
            let s = ValidSession { date, start, end, desks: 2, slot_minutes: minutes };
            let slots = generate_slots(ROME, &s);
            let from = local_to_utc(ROME, date.and_time(start)).unwrap();
            let to = local_to_utc(ROME, date.and_time(end)).unwrap();
            for w in slots.windows(2) {
                prop_assert!(w[0].end <= w[1].start);
            }
            for slot in &slots {
                prop_assert!(from <= slot.start && slot.end <= to);
                let len = (slot.end - slot.start).num_minutes();
                let change_day = date == d(2026, 3, 29) || date == d(2026, 10, 25);
                prop_assert!(len == i64::from(minutes) || change_day);
            }
            let full = (length / minutes) as usize;
            let change_day = date == d(2026, 3, 29) || date == d(2026, 10, 25);
            prop_assert!(slots.len() == full || (change_day && slots.len() < full));
        }
    }
}
