//! The no-show rule: a booked visitor who has not checked in by the end of the grace period
//! after their slot starts is a no-show.

use chrono::{DateTime, Duration, Utc};

/// Minutes after a slot's start before an absent visitor counts as a no-show.
pub const DEFAULT_GRACE_MINUTES: u32 = 15;

/// Whether a booking of a slot starting at `slot_start`, not checked in, is a no-show at `now`.
pub fn is_no_show(slot_start: DateTime<Utc>, now: DateTime<Utc>, grace_minutes: u32) -> bool {
    now >= slot_start + Duration::minutes(i64::from(grace_minutes))
}

/// The cut-off: slots starting before this instant are past their grace period at `now`.
pub fn no_show_cutoff(now: DateTime<Utc>, grace_minutes: u32) -> DateTime<Utc> {
    now - Duration::minutes(i64::from(grace_minutes))
}

/// The share of past bookings that were no-shows, 0.0 when there were none.
pub fn no_show_rate(no_shows: u64, past_bookings: u64) -> f64 {
    if past_bookings == 0 {
        0.0
    } else {
        (no_shows.min(past_bookings) as f64) / (past_bookings as f64)
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn grace_period_is_inclusive_at_its_end() {
        let start = Utc.with_ymd_and_hms(2026, 3, 2, 8, 0, 0).unwrap();
        assert!(!is_no_show(start, start + Duration::minutes(14), 15));
        assert!(is_no_show(start, start + Duration::minutes(15), 15));
        assert_eq!(no_show_cutoff(start + Duration::minutes(15), 15), start);
    }

    #[test]
    fn rate_is_a_share() {
        assert_eq!(no_show_rate(0, 0), 0.0);
        assert_eq!(no_show_rate(1, 4), 0.25);
        assert_eq!(no_show_rate(9, 4), 1.0);
    }
}
