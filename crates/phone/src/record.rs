//! One call record per call, converging on the true outcome whatever order its events arrive in.
//!
//! Every field is a join of what the events say (earliest start, latest hangup, strongest
//! outcome, ...), so applying a call's events in any order, any number of times, gives the same
//! record. Store the whole record (it is serde) so later events can still be applied to it.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sportello_domain::contact::PhoneNumber;
use sportello_domain::slug_enum;

use crate::model::{Answerer, CallEvent, CallEventKind, Direction, HangupCause, Party};

slug_enum! {
    /// How a call turned out.
    pub enum CallOutcome as "call outcome" {
        /// Someone talked to the other party.
        Answered => "answered",
        /// Nobody picked up.
        Missed => "missed",
        /// The caller hung up before anyone picked up.
        Abandoned => "abandoned",
        /// The caller reached the voicemail.
        Voicemail => "voicemail",
    }
}

impl CallOutcome {
    /// When two reports disagree the stronger wins: any evidence of an answer beats voicemail,
    /// which beats a hangup in the queue, which beats a plain "nobody answered".
    fn strength(self) -> u8 {
        match self {
            CallOutcome::Missed => 1,
            CallOutcome::Abandoned => 2,
            CallOutcome::Voicemail => 3,
            CallOutcome::Answered => 4,
        }
    }

    fn stronger(a: Option<CallOutcome>, b: CallOutcome) -> CallOutcome {
        match a {
            Some(a) if a.strength() >= b.strength() => a,
            _ => b,
        }
    }
}

/// Who answered, and how we know.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnsweredBy {
    pub who: Answerer,
    /// When the report naming them happened.
    pub at: DateTime<Utc>,
    /// Only a hangup named them (no answer event seen): an answer event takes precedence.
    pub from_hangup: bool,
}

impl AnsweredBy {
    /// Smaller wins: answer events before hangups, then the earliest, then a fixed tie-break.
    fn key(&self) -> (bool, DateTime<Utc>, &Answerer) {
        (self.from_hangup, self.at, &self.who)
    }
}

/// The hangup report. When several arrive, the earliest wins (a repeat is a retry, and
/// Zammad's CTI dates events on receipt); field order breaks ties.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CallEnd {
    pub at: DateTime<Utc>,
    pub duration_secs: Option<u32>,
    pub talk_secs: Option<u32>,
    pub cause: HangupCause,
}

/// An event was applied to the record of a different call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "event for call '{event_call_id}' of '{event_source}' cannot update call '{record_call_id}' of '{record_source}'"
)]
pub struct CallMismatch {
    pub record_source: String,
    pub record_call_id: String,
    pub event_source: String,
    pub event_call_id: String,
}

/// Everything known about one call, merged from all its events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallRecord {
    pub source: String,
    pub call_id: String,
    pub direction: Direction,
    pub from: Option<Party>,
    pub to: Option<Party>,
    pub queue: Option<String>,
    pub extensions: BTreeSet<String>,
    /// The earliest moment any event reports.
    pub started_at: DateTime<Utc>,
    /// The earliest answer event (a hangup naming the answerer does not say when).
    pub answered_at: Option<DateTime<Utc>>,
    pub answered_by: Option<AnsweredBy>,
    pub ended: Option<CallEnd>,
    /// `None` while the call is still ringing with nothing decided.
    pub outcome: Option<CallOutcome>,
}

impl CallRecord {
    /// A record holding what one event says.
    pub fn from_event(event: &CallEvent) -> CallRecord {
        let mut record = CallRecord {
            source: event.source.clone(),
            call_id: event.call_id.clone(),
            direction: event.direction,
            from: None,
            to: None,
            queue: None,
            extensions: BTreeSet::new(),
            started_at: event.at,
            answered_at: None,
            answered_by: None,
            ended: None,
            outcome: None,
        };
        record.merge(event);
        record
    }

    /// Folds a call's events into one record; `None` when there are none.
    pub fn fold<'a>(
        events: impl IntoIterator<Item = &'a CallEvent>,
    ) -> Result<Option<CallRecord>, CallMismatch> {
        let mut record: Option<CallRecord> = None;
        for event in events {
            match record.as_mut() {
                None => record = Some(CallRecord::from_event(event)),
                Some(r) => r.apply(event)?,
            }
        }
        Ok(record)
    }

    /// Merges one more event. Applying an event already seen changes nothing, and the order
    /// of application does not matter.
    pub fn apply(&mut self, event: &CallEvent) -> Result<(), CallMismatch> {
        if event.source != self.source || event.call_id != self.call_id {
            return Err(CallMismatch {
                record_source: self.source.clone(),
                record_call_id: self.call_id.clone(),
                event_source: event.source.clone(),
                event_call_id: event.call_id.clone(),
            });
        }
        self.merge(event);
        Ok(())
    }

    /// `apply` without the identity check, for callers that built the events themselves.
    pub(crate) fn merge(&mut self, event: &CallEvent) {
        // Reports of one call should agree; when they do not, a fixed order picks the winner.
        self.direction = self.direction.min(event.direction);
        join_min(&mut self.from, event.from.as_ref());
        join_min(&mut self.to, event.to.as_ref());
        join_min(&mut self.queue, event.queue.as_ref());
        self.extensions.extend(event.extensions.iter().cloned());
        self.started_at = self.started_at.min(event.at);

        let outcome = match &event.kind {
            CallEventKind::Ringing => None,
            CallEventKind::Answered { by } => {
                self.answered_at = Some(self.answered_at.map_or(event.at, |t| t.min(event.at)));
                if let Some(who) = by {
                    self.offer_answerer(AnsweredBy {
                        who: who.clone(),
                        at: event.at,
                        from_hangup: false,
                    });
                }
                Some(CallOutcome::Answered)
            }
            CallEventKind::Ended {
                duration_secs,
                talk_secs,
                cause,
                answered_by,
            } => {
                let end = CallEnd {
                    at: event.at,
                    duration_secs: *duration_secs,
                    talk_secs: *talk_secs,
                    cause: *cause,
                };
                if self.ended.as_ref().is_none_or(|e| end < *e) {
                    self.ended = Some(end);
                }
                Some(match cause {
                    HangupCause::NormalClearing
                        if answered_by.is_some() || talk_secs.is_some_and(|t| t > 0) =>
                    {
                        if let Some(who) = answered_by {
                            self.offer_answerer(AnsweredBy {
                                who: who.clone(),
                                at: event.at,
                                from_hangup: true,
                            });
                        }
                        CallOutcome::Answered
                    }
                    // Zammad does not count a forwarded call as missed: someone else took it.
                    HangupCause::Forwarded => CallOutcome::Answered,
                    HangupCause::Cancel => CallOutcome::Abandoned,
                    _ => CallOutcome::Missed,
                })
            }
            CallEventKind::Missed => Some(CallOutcome::Missed),
            CallEventKind::Abandoned => Some(CallOutcome::Abandoned),
            CallEventKind::Voicemail => Some(CallOutcome::Voicemail),
        };
        if let Some(outcome) = outcome {
            self.outcome = Some(CallOutcome::stronger(self.outcome, outcome));
        }
    }

    fn offer_answerer(&mut self, candidate: AnsweredBy) {
        if self
            .answered_by
            .as_ref()
            .is_none_or(|current| candidate.key() < current.key())
        {
            self.answered_by = Some(candidate);
        }
    }

    /// Who answered, when known.
    pub fn answerer(&self) -> Option<&Answerer> {
        self.answered_by.as_ref().map(|a| &a.who)
    }

    pub fn ended_at(&self) -> Option<DateTime<Utc>> {
        self.ended.as_ref().map(|e| e.at)
    }

    /// Whole call length: as the switchboard reported it, else from the first event to the
    /// hangup. `None` until the hangup is known.
    pub fn duration_secs(&self) -> Option<u32> {
        let end = self.ended.as_ref()?;
        end.duration_secs
            .or_else(|| Some(seconds_between(self.started_at, end.at)))
    }

    /// Conversation length: as reported, else from the answer to the hangup; `Some(0)` for a
    /// finished call nobody answered, `None` while unknown.
    pub fn talk_secs(&self) -> Option<u32> {
        let end = self.ended.as_ref()?;
        if let Some(talk) = end.talk_secs {
            return Some(talk);
        }
        match (self.outcome, self.answered_at) {
            (Some(CallOutcome::Answered), Some(answered)) => {
                Some(seconds_between(answered, end.at))
            }
            (Some(CallOutcome::Answered), None) => None,
            _ => Some(0),
        }
    }

    /// Whether the call is over (a hangup arrived, or an event that settles the outcome).
    pub fn is_finished(&self) -> bool {
        self.ended.is_some() || matches!(self.outcome, Some(o) if o != CallOutcome::Answered)
    }

    /// An inbound call nobody answered: the citizen must be called back.
    pub fn needs_callback(&self) -> bool {
        self.direction == Direction::Inbound
            && matches!(
                self.outcome,
                Some(CallOutcome::Missed | CallOutcome::Abandoned | CallOutcome::Voicemail)
            )
    }

    /// The citizen's number: the caller of an inbound call, the callee of an outbound one.
    pub fn citizen_number(&self) -> Option<&PhoneNumber> {
        let party = match self.direction {
            Direction::Inbound => self.from.as_ref(),
            Direction::Outbound => self.to.as_ref(),
        };
        party.and_then(Party::number)
    }
}

/// Keeps the smaller of the known values; any value beats none.
fn join_min<T: Ord + Clone>(slot: &mut Option<T>, offered: Option<&T>) {
    if let Some(new) = offered
        && slot.as_ref().is_none_or(|old| new < old)
    {
        *slot = Some(new.clone());
    }
}

fn seconds_between(from: DateTime<Utc>, to: DateTime<Utc>) -> u32 {
    u32::try_from((to - from).num_seconds().max(0)).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn t(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_772_439_245 + secs, 0).single().unwrap()
    }

    fn ev(kind: CallEventKind, at: i64) -> CallEvent {
        CallEvent {
            source: "pbx".into(),
            call_id: "c1".into(),
            direction: Direction::Inbound,
            from: Some(Party::parse("3471112233").unwrap()),
            to: Some(Party::parse("020202").unwrap()),
            kind,
            at: t(at),
            queue: Some("sostegno".into()),
            extensions: vec!["203".into()],
        }
    }

    fn ext(e: &str) -> Option<Answerer> {
        Some(Answerer::Extension(e.into()))
    }

    fn ended(cause: HangupCause, answered_by: Option<Answerer>) -> CallEventKind {
        CallEventKind::Ended {
            duration_secs: None,
            talk_secs: None,
            cause,
            answered_by,
        }
    }

    fn fold(events: &[CallEvent]) -> CallRecord {
        CallRecord::fold(events).unwrap().unwrap()
    }

    #[test]
    fn answered_call_in_order() {
        let r = fold(&[
            ev(CallEventKind::Ringing, 0),
            ev(CallEventKind::Answered { by: ext("203") }, 26),
            ev(ended(HangupCause::NormalClearing, ext("203")), 297),
        ]);
        assert_eq!(r.outcome, Some(CallOutcome::Answered));
        assert_eq!(r.answerer(), ext("203").as_ref());
        assert_eq!(r.answered_by.as_ref().map(|a| a.from_hangup), Some(false));
        assert_eq!(r.duration_secs(), Some(297));
        assert_eq!(r.talk_secs(), Some(271));
        assert_eq!(r.ended_at(), Some(t(297)));
        assert!(r.is_finished());
        assert!(!r.needs_callback());
        assert_eq!(
            r.citizen_number().map(|n| n.as_str()),
            Some("+393471112233")
        );
    }

    #[test]
    fn answer_after_hangup_still_counts_and_late_duplicate_changes_nothing() {
        let hangup_first = fold(&[
            ev(CallEventKind::Ringing, 0),
            ev(ended(HangupCause::Cancel, None), 60),
            ev(CallEventKind::Answered { by: ext("205") }, 20),
        ]);
        assert_eq!(hangup_first.outcome, Some(CallOutcome::Answered));
        assert_eq!(hangup_first.answerer(), ext("205").as_ref());

        let mut answered = fold(&[
            ev(CallEventKind::Answered { by: ext("203") }, 26),
            ev(ended(HangupCause::NormalClearing, ext("203")), 297),
        ]);
        let before = answered.clone();
        answered
            .apply(&ev(CallEventKind::Answered { by: ext("203") }, 26))
            .unwrap();
        assert_eq!(answered, before);
    }

    #[test]
    fn normal_clearing_hangup_naming_the_answerer_means_answered() {
        let r = fold(&[
            ev(CallEventKind::Ringing, 0),
            ev(ended(HangupCause::NormalClearing, ext("203")), 90),
        ]);
        assert_eq!(r.outcome, Some(CallOutcome::Answered));
        assert_eq!(r.answered_by.as_ref().map(|a| a.from_hangup), Some(true));
        // An answer event, when it shows up, names the answerer with more authority.
        let mut r = r;
        r.apply(&ev(CallEventKind::Answered { by: ext("205") }, 10))
            .unwrap();
        assert_eq!(r.answerer(), ext("205").as_ref());
        assert_eq!(r.talk_secs(), Some(80));
    }

    #[test]
    fn unanswered_hangups_by_cause() {
        let cases = [
            (HangupCause::Cancel, CallOutcome::Abandoned),
            (HangupCause::NoAnswer, CallOutcome::Missed),
            (HangupCause::Busy, CallOutcome::Missed),
            (HangupCause::NormalClearing, CallOutcome::Missed),
            (HangupCause::Other, CallOutcome::Missed),
            (HangupCause::Forwarded, CallOutcome::Answered),
        ];
        for (cause, want) in cases {
            let r = fold(&[ev(CallEventKind::Ringing, 0), ev(ended(cause, None), 30)]);
            assert_eq!(r.outcome, Some(want), "{cause}");
            assert_eq!(r.needs_callback(), want != CallOutcome::Answered, "{cause}");
        }
    }

    #[test]
    fn voicemail_needs_a_callback_unless_someone_answered() {
        let r = fold(&[
            ev(CallEventKind::Voicemail, 40),
            ev(ended(HangupCause::NormalClearing, None), 90),
        ]);
        assert_eq!(r.outcome, Some(CallOutcome::Voicemail));
        assert!(r.needs_callback());
        assert_eq!(r.talk_secs(), Some(0));
    }

    #[test]
    fn ringing_only_is_undecided() {
        let r = fold(&[ev(CallEventKind::Ringing, 0)]);
        assert_eq!(r.outcome, None);
        assert!(!r.is_finished());
        assert_eq!(r.duration_secs(), None);
    }

    #[test]
    fn withheld_report_does_not_hide_a_known_number() {
        let mut anon = ev(CallEventKind::Ringing, 0);
        anon.from = Some(Party::Withheld);
        let later = ev(ended(HangupCause::Cancel, None), 5);
        let a = fold(&[anon.clone(), later.clone()]);
        let b = fold(&[later, anon]);
        assert_eq!(a, b);
        assert_eq!(
            a.citizen_number().map(|n| n.as_str()),
            Some("+393471112233")
        );
    }

    #[test]
    fn events_of_another_call_are_refused() {
        let mut r = fold(&[ev(CallEventKind::Ringing, 0)]);
        let mut other = ev(CallEventKind::Missed, 5);
        other.call_id = "c2".into();
        assert!(r.apply(&other).is_err());
        let mut other_source = ev(CallEventKind::Missed, 5);
        other_source.source = "cdr".into();
        assert!(r.apply(&other_source).is_err());
        assert_eq!(r.outcome, None);
    }

    #[test]
    fn record_survives_a_serde_round_trip_and_keeps_converging() {
        let r = fold(&[
            ev(CallEventKind::Ringing, 0),
            ev(ended(HangupCause::NormalClearing, ext("203")), 90),
        ]);
        let json = serde_json::to_string(&r).unwrap();
        let mut back: CallRecord = serde_json::from_str(&json).unwrap();
        assert_eq!(back, r);
        back.apply(&ev(CallEventKind::Answered { by: ext("203") }, 12))
            .unwrap();
        assert_eq!(back.answered_at, Some(t(12)));
    }

    fn arb_kind() -> impl Strategy<Value = CallEventKind> {
        let answerer = prop_oneof![
            Just(None),
            Just(ext("203")),
            Just(ext("205")),
            Just(Some(Answerer::Operator("lbassi".into()))),
        ];
        let cause = prop::sample::select(HangupCause::ALL.to_vec());
        prop_oneof![
            Just(CallEventKind::Ringing),
            answerer
                .clone()
                .prop_map(|by| CallEventKind::Answered { by }),
            (
                prop::option::of(0u32..600),
                prop::option::of(0u32..600),
                cause,
                answerer
            )
                .prop_map(|(duration_secs, talk_secs, cause, answered_by)| {
                    CallEventKind::Ended {
                        duration_secs,
                        talk_secs,
                        cause,
                        answered_by,
                    }
                }),
            Just(CallEventKind::Missed),
            Just(CallEventKind::Abandoned),
            Just(CallEventKind::Voicemail),
        ]
    }

    fn arb_event() -> impl Strategy<Value = CallEvent> {
        let party = prop_oneof![
            Just(None),
            Just(Some(Party::Withheld)),
            Just(Some(Party::parse("3471112233").unwrap())),
            Just(Some(Party::parse("203").unwrap())),
        ];
        (
            arb_kind(),
            0i64..600,
            party.clone(),
            party,
            prop::option::of(prop::sample::select(vec!["sostegno", "disabilita"])),
            prop::collection::vec(prop::sample::select(vec!["201", "203", "205"]), 0..3),
            prop::sample::select(vec![Direction::Inbound, Direction::Outbound]),
        )
            .prop_map(|(kind, at, from, to, queue, exts, direction)| CallEvent {
                source: "pbx".into(),
                call_id: "c1".into(),
                direction,
                from,
                to,
                kind,
                at: t(at),
                queue: queue.map(str::to_owned),
                extensions: exts.into_iter().map(str::to_owned).collect(),
            })
    }

    proptest! {
        #[test]
        fn any_order_with_duplicates_gives_the_same_record(
            (events, order) in prop::collection::vec(arb_event(), 1..7).prop_flat_map(|events| {
                let n = events.len();
                // Every event at least once, some twice, in a random order.
                let order = (prop::collection::vec(0..n, 0..n), Just((0..n).collect::<Vec<_>>()))
                    .prop_flat_map(|(dups, all)| {
                        let mut idx = all;
                        idx.extend(dups);
                        Just(idx).prop_shuffle()
                    });
                (Just(events), order)
            })
        ) {
            let in_order = fold(&events);
            let shuffled: Vec<CallEvent> = order.iter().map(|&i| events[i].clone()).collect();
            let mixed = fold(&shuffled);
            prop_assert_eq!(&mixed, &in_order);
            let answered = events.iter().any(|e| matches!(e.kind, CallEventKind::Answered { .. }));
            if answered {
                prop_assert_eq!(mixed.outcome, Some(CallOutcome::Answered));
            }
        }
    }
}
