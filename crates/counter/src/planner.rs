//! The opening-hours planner: from last bookings, pending appointment requests and the no-show
//! rate, next week's counter sessions, each with the reason for it (in Italian, for the
//! supervisor who approves the plan).
//!
//! The plan starts from a weekly template (by default Monday, Tuesday, Thursday and Friday,
//! 08:30–12:30 and 14:00–15:30) and, session by session, compares the demand expected for it
//! with its capacity:
//!
//! - expected demand = bookings × (1 − no-show rate) + the pending requests shared out in
//!   proportion to capacity;
//! - at or above `high_utilisation`: one more desk, and an extra session after the day's last
//!   one; when the whole week is that busy, the open weekdays missing from the template open too;
//! - below `low_utilisation`: a session of two hours or more is halved, a shorter one dropped;
//! - otherwise the session is confirmed.
//!
//! Holidays and closures never get a session, and the plan never has fewer than `min_days`
//! open days: missing days are added on free weekdays, then on Saturday morning.

use std::collections::BTreeSet;

use chrono::{Datelike, Duration, NaiveDate, NaiveTime, Weekday};
use serde::{Deserialize, Serialize};
use sportello_domain::calendar::BusinessCalendar;

use crate::session::MAX_DESKS;

/// One session of the weekly template.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateSession {
    pub weekday: Weekday,
    pub start: NaiveTime,
    pub end: NaiveTime,
    pub desks: u32,
}

/// How a past (or already opened) session was booked; matched to the template by weekday and
/// start time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionLoad {
    pub weekday: Weekday,
    pub start: NaiveTime,
    pub end: NaiveTime,
    pub capacity: u32,
    pub booked: u32,
}

/// The planner's knobs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PlannerParams {
    pub min_days: usize,
    /// Share of capacity (0–1) at or above which a session gets more room.
    pub high_utilisation: f64,
    /// Share of capacity below which a session is shortened or dropped.
    pub low_utilisation: f64,
    pub slot_minutes: u32,
    /// Length of an extra session added after a busy day's last one.
    pub extension_minutes: u32,
    /// No extra session ends later than this.
    pub latest_end: NaiveTime,
}

impl Default for PlannerParams {
    fn default() -> Self {
        PlannerParams {
            min_days: 4,
            high_utilisation: 0.85,
            low_utilisation: 0.30,
            slot_minutes: 20,
            extension_minutes: 90,
            latest_end: NaiveTime::from_hms_opt(17, 30, 0).unwrap_or(NaiveTime::MIN),
        }
    }
}

/// Everything the planner looks at.
#[derive(Clone, Debug)]
pub struct PlanInput<'a> {
    /// Any day of the week to plan.
    pub week: NaiveDate,
    pub calendar: &'a BusinessCalendar,
    pub template: Vec<TemplateSession>,
    pub loads: Vec<SessionLoad>,
    pub pending_requests: u32,
    /// Share (0–1) of past bookings that were no-shows.
    pub no_show_rate: f64,
    pub params: PlannerParams,
}

/// One proposed session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProposedSession {
    pub date: NaiveDate,
    pub start: NaiveTime,
    pub end: NaiveTime,
    pub desks: u32,
    pub reason: String,
}

fn hm(h: u32, m: u32) -> NaiveTime {
    NaiveTime::from_hms_opt(h, m, 0).unwrap_or(NaiveTime::MIN)
}

/// Monday, Tuesday, Thursday and Friday, 08:30–12:30 and 14:00–15:30, two desks.
pub fn default_template() -> Vec<TemplateSession> {
    [Weekday::Mon, Weekday::Tue, Weekday::Thu, Weekday::Fri]
        .into_iter()
        .flat_map(|weekday| {
            [
                TemplateSession {
                    weekday,
                    start: hm(8, 30),
                    end: hm(12, 30),
                    desks: 2,
                },
                TemplateSession {
                    weekday,
                    start: hm(14, 0),
                    end: hm(15, 30),
                    desks: 2,
                },
            ]
        })
        .collect()
}

/// The Monday of a date's ISO week.
pub fn week_monday(date: NaiveDate) -> NaiveDate {
    date - Duration::days(i64::from(date.weekday().num_days_from_monday()))
}

fn minutes(start: NaiveTime, end: NaiveTime) -> i64 {
    (end - start).num_minutes().max(0)
}

fn capacity(start: NaiveTime, end: NaiveTime, desks: u32, slot_minutes: u32) -> f64 {
    let slots = minutes(start, end) / i64::from(slot_minutes.max(1));
    (slots as f64) * f64::from(desks)
}

fn pct(x: f64) -> i64 {
    (x * 100.0).round() as i64
}

struct Draft {
    session: ProposedSession,
    droppable: bool,
}

/// Proposes the sessions of the week containing `input.week`, sorted by date and start.
pub fn plan_week(input: &PlanInput<'_>) -> Vec<ProposedSession> {
    let p = &input.params;
    let monday = week_monday(input.week);
    let date_of = |w: Weekday| monday + Duration::days(i64::from(w.num_days_from_monday()));
    let open = |d: NaiveDate| input.calendar.is_holiday(d).is_none();
    let keep_rate = (1.0 - input.no_show_rate.clamp(0.0, 1.0)).max(0.0);

    let template: Vec<&TemplateSession> = input
        .template
        .iter()
        .filter(|t| t.end > t.start && open(date_of(t.weekday)))
        .collect();
    // Capacity and bookings per template session, from the matching observed session.
    let observed: Vec<(f64, Option<f64>)> = template
        .iter()
        .map(|t| {
            match input
                .loads
                .iter()
                .find(|l| l.weekday == t.weekday && l.start == t.start)
            {
                Some(l) if l.capacity > 0 => {
                    (f64::from(l.capacity), Some(f64::from(l.booked) * keep_rate))
                }
                _ => (capacity(t.start, t.end, t.desks, p.slot_minutes), None),
            }
        })
        .collect();
    let total_capacity: f64 = observed.iter().map(|(c, _)| c).sum();
    let pending = f64::from(input.pending_requests);
    let mut total_expected = 0.0;

    let mut drafts: Vec<Draft> = Vec::new();
    let mut busy_days: BTreeSet<NaiveDate> = BTreeSet::new();
    for (t, &(cap, booked)) in template.iter().zip(&observed) {
        let date = date_of(t.weekday);
        let share = if total_capacity > 0.0 {
            pending * cap / total_capacity
        } else {
            0.0
        };
        let Some(expected) = booked.map(|b| b + share).or((share > 0.0).then_some(share)) else {
            total_expected += cap * (p.low_utilisation + p.high_utilisation) / 2.0;
            drafts.push(Draft {
                session: ProposedSession {
                    date,
                    start: t.start,
                    end: t.end,
                    desks: t.desks,
                    reason: "Orario standard: nessun dato di prenotazione per questa fascia"
                        .to_owned(),
                },
                droppable: false,
            });
            continue;
        };
        total_expected += expected;
        let util = if cap > 0.0 { expected / cap } else { 0.0 };
        let mut s = ProposedSession {
            date,
            start: t.start,
            end: t.end,
            desks: t.desks,
            reason: String::new(),
        };
        let mut droppable = false;
        if util >= p.high_utilisation {
            s.desks = (t.desks + 1).min(MAX_DESKS);
            s.reason = format!(
                "Domanda prevista al {}% della capacità (soglia {}%): uno sportello in più",
                pct(util),
                pct(p.high_utilisation)
            );
            busy_days.insert(date);
        } else if util < p.low_utilisation {
            let len = minutes(t.start, t.end);
            let slot = i64::from(p.slot_minutes.max(1));
            if len >= 120 {
                let half = ((len / 2) / slot).max(1) * slot;
                s.end = t.start + Duration::minutes(half);
                s.reason = format!(
                    "Domanda prevista al {}% della capacità (sotto il {}%): sessione accorciata",
                    pct(util),
                    pct(p.low_utilisation)
                );
            } else {
                droppable = true;
                s.reason = format!(
                    "Domanda prevista al {}% della capacità (sotto il {}%): sessione soppressa",
                    pct(util),
                    pct(p.low_utilisation)
                );
            }
        } else {
            s.reason = format!(
                "Domanda prevista al {}% della capacità: orario confermato",
                pct(util)
            );
        }
        drafts.push(Draft {
            session: s,
            droppable,
        });
    }

    // A busy day gets an extra session after its last one, when it fits before latest_end.
    for date in &busy_days {
        let last_end = drafts
            .iter()
            .filter(|d| d.session.date == *date)
            .map(|d| d.session.end)
            .max();
        let Some(last_end) = last_end else { continue };
        let start = last_end;
        let end = start + Duration::minutes(i64::from(p.extension_minutes));
        if end > start && end <= p.latest_end {
            let desks = template
                .iter()
                .filter(|t| date_of(t.weekday) == *date)
                .map(|t| t.desks)
                .max()
                .unwrap_or(1);
            drafts.push(Draft {
                session: ProposedSession {
                    date: *date,
                    start,
                    end,
                    desks,
                    reason: "Prenotazioni oltre la soglia in questa giornata: sessione aggiuntiva"
                        .to_owned(),
                },
                droppable: false,
            });
        }
    }

    let (first_start, first_end, first_desks) = input
        .template
        .iter()
        .find(|t| t.end > t.start)
        .map(|t| (t.start, t.end, t.desks))
        .unwrap_or((hm(8, 30), hm(12, 30), 1));
    let weekdays = [
        Weekday::Mon,
        Weekday::Tue,
        Weekday::Wed,
        Weekday::Thu,
        Weekday::Fri,
    ];
    // A week busy as a whole opens the weekdays the template leaves closed.
    if total_capacity > 0.0 && total_expected / total_capacity >= p.high_utilisation {
        for w in weekdays {
            let date = date_of(w);
            if open(date) && !drafts.iter().any(|d| d.session.date == date) {
                drafts.push(Draft {
                    session: ProposedSession {
                        date,
                        start: first_start,
                        end: first_end,
                        desks: first_desks,
                        reason: format!(
                            "Domanda della settimana al {}% della capacità: giornata di apertura aggiuntiva",
                            pct(total_expected / total_capacity)
                        ),
                    },
                    droppable: false,
                });
            }
        }
    }

    // Drop quiet short sessions, as long as the minimum of open days holds.
    let days = |drafts: &[Draft]| {
        drafts
            .iter()
            .map(|d| d.session.date)
            .collect::<BTreeSet<_>>()
    };
    let mut i = 0;
    while i < drafts.len() {
        if drafts[i].droppable {
            let date = drafts[i].session.date;
            let others_that_day = drafts
                .iter()
                .enumerate()
                .any(|(j, d)| j != i && d.session.date == date);
            if others_that_day || days(&drafts).len() > p.min_days {
                drafts.remove(i);
                continue;
            }
            drafts[i].session.reason = format!(
                "{}; mantenuta per garantire almeno {} giorni di apertura",
                drafts[i].session.reason.replace(": sessione soppressa", ""),
                p.min_days
            );
        }
        i += 1;
    }

    // Never fewer than min_days open days: free weekdays first, then Saturday morning.
    for w in weekdays.into_iter().chain([Weekday::Sat]) {
        if days(&drafts).len() >= p.min_days {
            break;
        }
        let date = date_of(w);
        if open(date) && !drafts.iter().any(|d| d.session.date == date) {
            drafts.push(Draft {
                session: ProposedSession {
                    date,
                    start: first_start,
                    end: first_end,
                    desks: first_desks,
                    reason: format!(
                        "Apertura minima di {} giorni a settimana (festività o scarsa domanda negli altri giorni)",
                        p.min_days
                    ),
                },
                droppable: false,
            });
        }
    }

    let mut out: Vec<ProposedSession> = drafts.into_iter().map(|d| d.session).collect();
    out.sort_by_key(|s| (s.date, s.start));
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    /// Loads for every template session booked at `share` of capacity.
    fn loads(share: f64) -> Vec<SessionLoad> {
        default_template()
            .into_iter()
            .map(|t| {
                let cap = capacity(t.start, t.end, t.desks, 20) as u32;
                SessionLoad {
                    weekday: t.weekday,
                    start: t.start,
                    end: t.end,
                    capacity: cap,
                    booked: (f64::from(cap) * share).round() as u32,
                }
            })
            .collect()
    }

    fn input(cal: &BusinessCalendar, week: NaiveDate, share: f64, pending: u32) -> PlanInput<'_> {
        PlanInput {
            week,
            calendar: cal,
            template: default_template(),
            loads: loads(share),
            pending_requests: pending,
            no_show_rate: 0.0,
            params: PlannerParams::default(),
        }
    }

    fn open_days(plan: &[ProposedSession]) -> usize {
        plan.iter().map(|s| s.date).collect::<BTreeSet<_>>().len()
    }

    #[test]
    fn a_normal_week_keeps_the_template() {
        let cal = BusinessCalendar::default();
        let plan = plan_week(&input(&cal, d(2026, 3, 4), 0.6, 0));
        assert_eq!(plan.len(), 8);
        assert_eq!(open_days(&plan), 4);
        assert!(plan.iter().all(|s| s.reason.contains("orario confermato")));
        assert_eq!(plan[0].date, d(2026, 3, 2));
        assert_eq!(plan[0].start, hm(8, 30));
    }

    #[test]
    fn a_heavy_week_gets_desks_extra_sessions_and_wednesday() {
        let cal = BusinessCalendar::default();
        let plan = plan_week(&input(&cal, d(2026, 3, 2), 0.95, 10));
        assert!(plan.len() > 8, "{plan:#?}");
        assert!(plan.iter().any(|s| s.date == d(2026, 3, 4)));
        assert!(
            plan.iter()
                .any(|s| s.reason.contains("sessione aggiuntiva"))
        );
        assert!(plan.iter().any(|s| s.desks == 3));
        // Extra sessions never overlap the day's others.
        for w in plan.windows(2) {
            assert!(w[0].date < w[1].date || w[0].end <= w[1].start);
        }
    }

    #[test]
    fn a_quiet_week_shortens_and_drops_but_keeps_four_days() {
        let cal = BusinessCalendar::default();
        let plan = plan_week(&input(&cal, d(2026, 3, 2), 0.05, 0));
        assert_eq!(open_days(&plan), 4);
        assert_eq!(plan.len(), 4, "{plan:#?}");
        assert!(plan.iter().all(|s| s.end == hm(10, 30)));
        assert!(plan.iter().all(|s| s.reason.contains("accorciata")));
    }

    #[test]
    fn holidays_get_no_session_and_another_day_replaces_them() {
        let cal = BusinessCalendar::default();
        // Week of 7 December 2026: Sant'Ambrogio on Monday, Immacolata on Tuesday.
        let plan = plan_week(&input(&cal, d(2026, 12, 9), 0.5, 0));
        assert!(plan.iter().all(|s| cal.is_holiday(s.date).is_none()));
        assert_eq!(open_days(&plan), 4);
        let extra: Vec<_> = plan
            .iter()
            .filter(|s| s.reason.contains("Apertura minima"))
            .map(|s| s.date)
            .collect();
        // Only Thursday and Friday remain of the template: Wednesday and Saturday open.
        assert_eq!(extra, vec![d(2026, 12, 9), d(2026, 12, 12)]);
    }

    #[test]
    fn no_shows_and_pending_requests_move_the_estimate() {
        let cal = BusinessCalendar::default();
        let mut i = input(&cal, d(2026, 3, 2), 0.9, 0);
        assert!(plan_week(&i).len() > 8);
        i.no_show_rate = 0.5;
        assert_eq!(plan_week(&i).len(), 8);
        let mut q = input(&cal, d(2026, 3, 2), 0.5, 0);
        assert_eq!(plan_week(&q).len(), 8);
        q.pending_requests = 200;
        assert!(plan_week(&q).len() > 8);
    }

    proptest! {
        #[test]
        fn heavy_weeks_get_more_sessions_and_quiet_weeks_keep_four_days(
            weeks in 0i64..(52 * 5),
            quiet in 0.0f64..0.25,
            heavy in 0.9f64..1.0,
            no_show in 0.0f64..0.05,
        ) {
            let cal = BusinessCalendar::default();
            let week = d(2026, 1, 5) + Duration::weeks(weeks);
            let mut q = input(&cal, week, quiet, 0);
            q.no_show_rate = no_show;
            let mut h = input(&cal, week, heavy, 0);
            h.no_show_rate = no_show;
            let (qp, hp) = (plan_week(&q), plan_week(&h));
            let possible = (0..6)
                .filter(|i| cal.is_holiday(week_monday(week) + Duration::days(*i)).is_none())
                .count();
            prop_assert!(open_days(&qp) >= 4.min(possible), "{:?}", qp);
            prop_assert!(open_days(&hp) >= 4.min(possible));
            prop_assert!(hp.len() > qp.len(), "heavy {:?} quiet {:?}", hp, qp);
            let cap = |plan: &[ProposedSession]| plan.iter()
                .map(|s| capacity(s.start, s.end, s.desks, 20)).sum::<f64>();
            prop_assert!(cap(&hp) > cap(&qp));
            for plan in [&qp, &hp] {
                for s in plan.iter() {
                    prop_assert!(cal.is_holiday(s.date).is_none());
                    prop_assert!(s.start < s.end && s.desks >= 1);
                    prop_assert!(!s.reason.is_empty());
                    prop_assert_eq!(week_monday(s.date), week_monday(week));
                }
                for w in plan.windows(2) {
                    prop_assert!(w[0].date < w[1].date || w[0].end <= w[1].start);
                }
            }
        }
    }
}
