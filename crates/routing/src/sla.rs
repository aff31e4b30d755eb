//! SLA policies and the per-ticket SLA clock, counted in business time with recorded pauses.
//!
//! A ticket has up to three timers: first response (from creation to the first reply),
//! next response (from a citizen's message to our reply, once the first reply was sent) and
//! resolution (from creation to resolved). Each timer's target is turned into a budget of
//! business time when the timer starts; the clock then spends that budget only while the
//! ticket is not paused (waiting on the citizen, or resolved before a reopening). Deadlines
//! are recomputed from the recorded pauses whenever something changes, so a pause can never
//! lose or gain time and a policy change applies to the whole history.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Duration, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use sportello_domain::slug_enum;
use sportello_domain::taxonomy::validate_slug;

use crate::clock::BusinessClock;

/// Share of a budget after which a ticket is at risk when a policy says nothing.
pub const DEFAULT_AT_RISK_FRACTION: f64 = 0.75;

/// Why SLA policies were refused; names the policy and the field at fault.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SlaConfigError {
    #[error("SLA policies are not valid TOML: {0}")]
    Syntax(String),
    #[error("no SLA policies are defined: add at least one [sla.policies.NAME] table")]
    NoPolicies,
    #[error("SLA policy '{policy}', field '{field}': {message}")]
    Invalid {
        policy: String,
        field: String,
        message: String,
    },
}

fn invalid(policy: &str, field: &str, message: impl Into<String>) -> SlaConfigError {
    SlaConfigError::Invalid {
        policy: policy.to_owned(),
        field: field.to_owned(),
        message: message.into(),
    }
}

/// A target: how long a timer may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// This much business time (opening hours only).
    BusinessTime(Duration),
    /// By the close of the business day the timer starts on (a timer started while closed
    /// starts on the next business day).
    SameDay,
    /// n open days later at the same local clock time, as the shared calendar counts them (a
    /// timer started while closed counts from the next opening).
    BusinessDays(u32),
    /// n calendar days (the administrative-procedure style of term); a deadline falling while
    /// the office is closed moves to the close of the next business day.
    CalendarDays(u32),
}

/// A target as written in TOML: exactly one of the keys.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetDoc {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub business_minutes: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub business_hours: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub business_days: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calendar_days: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub same_day: Option<bool>,
}

const MAX_BUSINESS_MINUTES: i64 = 366 * 24 * 60;
const MAX_DAYS: i64 = 3660;

impl Target {
    fn parse(
        policy: &str,
        field: &str,
        d: &TargetDoc,
        durations_only: bool,
    ) -> Result<Target, SlaConfigError> {
        let set = [
            d.business_minutes.is_some(),
            d.business_hours.is_some(),
            d.business_days.is_some(),
            d.calendar_days.is_some(),
            d.same_day.is_some(),
        ];
        let keys = if durations_only {
            "business_minutes or business_hours"
        } else {
            "business_minutes, business_hours, business_days, calendar_days or same_day"
        };
        if set.iter().filter(|b| **b).count() != 1 {
            return Err(invalid(
                policy,
                field,
                format!("give exactly one of {keys}"),
            ));
        }
        let range = |v: i64, lo: i64, hi: i64, unit: &str| {
            if (lo..=hi).contains(&v) {
                Ok(v)
            } else {
                Err(invalid(
                    policy,
                    field,
                    format!("{v} {unit} is out of range ({lo}–{hi})"),
                ))
            }
        };
        if let Some(m) = d.business_minutes {
            return Ok(Target::BusinessTime(Duration::minutes(range(
                m,
                1,
                MAX_BUSINESS_MINUTES,
                "minutes",
            )?)));
        }
        if let Some(h) = d.business_hours {
            return Ok(Target::BusinessTime(Duration::hours(range(
                h,
                1,
                MAX_BUSINESS_MINUTES / 60,
                "hours",
            )?)));
        }
        if durations_only {
            return Err(invalid(policy, field, format!("use {keys} here")));
        }
        if let Some(n) = d.business_days {
            return Ok(Target::BusinessDays(
                range(n, 1, MAX_DAYS, "business days")? as u32,
            ));
        }
        if let Some(n) = d.calendar_days {
            return Ok(Target::CalendarDays(
                range(n, 1, MAX_DAYS, "calendar days")? as u32,
            ));
        }
        match d.same_day {
            Some(true) => Ok(Target::SameDay),
            _ => Err(invalid(
                policy,
                field,
                "same_day can only be true; remove the target instead",
            )),
        }
    }

    fn to_doc(self) -> TargetDoc {
        match self {
            Target::BusinessTime(d) if d.num_minutes() % 60 == 0 => TargetDoc {
                business_hours: Some(d.num_hours()),
                ..TargetDoc::default()
            },
            Target::BusinessTime(d) => TargetDoc {
                business_minutes: Some(d.num_minutes()),
                ..TargetDoc::default()
            },
            Target::SameDay => TargetDoc {
                same_day: Some(true),
                ..TargetDoc::default()
            },
            Target::BusinessDays(n) => TargetDoc {
                business_days: Some(i64::from(n)),
                ..TargetDoc::default()
            },
            Target::CalendarDays(n) => TargetDoc {
                calendar_days: Some(i64::from(n)),
                ..TargetDoc::default()
            },
        }
    }
}

impl Serialize for Target {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_doc().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Target {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let doc = TargetDoc::deserialize(d)?;
        Target::parse("-", "target", &doc, false).map_err(serde::de::Error::custom)
    }
}

/// When a running timer becomes at risk.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AtRisk {
    /// After this share of the budget is spent (0 < f < 1).
    Fraction(f64),
    /// When at most this much business time is left.
    #[serde(with = "secs")]
    Before(Duration),
}

/// An SLA policy: targets for the three timers and the at-risk warning.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlaPolicy {
    pub name: String,
    /// Italian label for operators and supervisors.
    pub label: Option<String>,
    pub first_response: Option<Target>,
    pub next_response: Option<Target>,
    pub resolution: Option<Target>,
    pub at_risk: AtRisk,
}

impl SlaPolicy {
    /// The target of a timer, if the policy sets one.
    pub fn target(&self, kind: TimerKind) -> Option<Target> {
        match kind {
            TimerKind::FirstResponse => self.first_response,
            TimerKind::NextResponse => self.next_response,
            TimerKind::Resolution => self.resolution,
        }
    }
}

/// A policy as written in TOML (`[sla.policies.NAME]`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyDoc {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_risk_fraction: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_response: Option<TargetDoc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_response: Option<TargetDoc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<TargetDoc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_risk_before: Option<TargetDoc>,
}

/// The `[sla]` table.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlaDoc {
    #[serde(default)]
    pub policies: BTreeMap<String, PolicyDoc>,
}

#[derive(Deserialize)]
struct SlaOnly {
    #[serde(default)]
    sla: Option<SlaDoc>,
}

impl SlaPolicy {
    /// Validates one policy document.
    pub fn from_doc(name: &str, d: &PolicyDoc) -> Result<SlaPolicy, SlaConfigError> {
        validate_slug(name).map_err(|e| invalid(name, "name", e.to_string()))?;
        let t = |field: &str, v: &Option<TargetDoc>| {
            v.as_ref()
                .map(|doc| Target::parse(name, field, doc, false))
                .transpose()
        };
        let first_response = t("first_response", &d.first_response)?;
        let next_response = t("next_response", &d.next_response)?;
        let resolution = t("resolution", &d.resolution)?;
        if first_response.is_none() && next_response.is_none() && resolution.is_none() {
            return Err(invalid(
                name,
                "first_response",
                "a policy needs at least one of first_response, next_response, resolution",
            ));
        }
        let at_risk = match (d.at_risk_fraction, &d.at_risk_before) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    name,
                    "at_risk_fraction",
                    "give at_risk_fraction or at_risk_before, not both",
                ));
            }
            (Some(f), None) => {
                if !(f > 0.0 && f < 1.0) {
                    return Err(invalid(
                        name,
                        "at_risk_fraction",
                        format!("{f} must be between 0 and 1 (exclusive)"),
                    ));
                }
                AtRisk::Fraction(f)
            }
            (None, Some(b)) => match Target::parse(name, "at_risk_before", b, true)? {
                Target::BusinessTime(d) => AtRisk::Before(d),
                _ => {
                    return Err(invalid(
                        name,
                        "at_risk_before",
                        "use business_minutes or business_hours",
                    ));
                }
            },
            (None, None) => AtRisk::Fraction(DEFAULT_AT_RISK_FRACTION),
        };
        let label = d
            .label
            .as_ref()
            .map(|l| l.trim().to_owned())
            .filter(|l| !l.is_empty());
        Ok(SlaPolicy {
            name: name.to_owned(),
            label,
            first_response,
            next_response,
            resolution,
            at_risk,
        })
    }

    /// The document form.
    pub fn to_doc(&self) -> PolicyDoc {
        let (at_risk_fraction, at_risk_before) = match self.at_risk {
            AtRisk::Fraction(f) => (Some(f), None),
            AtRisk::Before(d) => (None, Some(Target::BusinessTime(d).to_doc())),
        };
        PolicyDoc {
            label: self.label.clone(),
            at_risk_fraction,
            first_response: self.first_response.map(Target::to_doc),
            next_response: self.next_response.map(Target::to_doc),
            resolution: self.resolution.map(Target::to_doc),
            at_risk_before,
        }
    }
}

/// The configured SLA policies, by name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SlaPolicies {
    policies: BTreeMap<String, SlaPolicy>,
}

impl SlaPolicies {
    /// Reads the `[sla.policies.*]` tables of a TOML document (other tables are ignored).
    pub fn from_toml(text: &str) -> Result<SlaPolicies, SlaConfigError> {
        let doc: SlaOnly =
            toml::from_str(text).map_err(|e| SlaConfigError::Syntax(e.to_string()))?;
        SlaPolicies::from_doc(&doc.sla.unwrap_or_default())
    }

    /// Validates the `[sla]` table.
    pub fn from_doc(doc: &SlaDoc) -> Result<SlaPolicies, SlaConfigError> {
        if doc.policies.is_empty() {
            return Err(SlaConfigError::NoPolicies);
        }
        let mut policies = BTreeMap::new();
        for (name, d) in &doc.policies {
            policies.insert(name.clone(), SlaPolicy::from_doc(name, d)?);
        }
        Ok(SlaPolicies { policies })
    }

    /// The policies of the embedded `config/routing.toml` (a test keeps that file valid).
    pub fn builtin() -> SlaPolicies {
        SlaPolicies::from_toml(crate::config::DEFAULT_ROUTING_TOML).unwrap_or_default()
    }

    pub fn get(&self, name: &str) -> Option<&SlaPolicy> {
        self.policies.get(name)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.policies.contains_key(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.policies.keys().map(String::as_str)
    }

    pub fn iter(&self) -> impl Iterator<Item = &SlaPolicy> {
        self.policies.values()
    }

    /// The `[sla]` table form.
    pub fn to_doc(&self) -> SlaDoc {
        SlaDoc {
            policies: self
                .policies
                .iter()
                .map(|(k, p)| (k.clone(), p.to_doc()))
                .collect(),
        }
    }
}

slug_enum! {
    /// The three SLA timers of a ticket.
    pub enum TimerKind as "SLA timer" {
        FirstResponse => "first_response",
        NextResponse => "next_response",
        Resolution => "resolution",
    }
}

slug_enum! {
    /// A ticket's SLA state as the API and the dashboard show it.
    pub enum SlaState as "SLA state" {
        Ok => "ok",
        AtRisk => "at_risk",
        Breached => "breached",
        Paused => "paused",
    }
}

slug_enum! {
    /// Why the clock stood still.
    pub enum PauseReason as "pause reason" {
        /// The ticket was waiting on the citizen.
        WaitingCitizen => "waiting_citizen",
        /// The ticket was resolved and later reopened.
        Resolved => "resolved",
    }
}

/// A recorded pause; `to` is `None` while it lasts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pause {
    pub from: DateTime<Utc>,
    pub to: Option<DateTime<Utc>>,
    pub reason: PauseReason,
}

/// One timer; the deadlines are derived from the budget and the pauses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timer {
    pub kind: TimerKind,
    pub started_at: DateTime<Utc>,
    /// Business time the timer may spend, whole seconds.
    #[serde(with = "secs")]
    pub budget: Duration,
    #[serde(with = "secs")]
    pub at_risk_budget: Duration,
    /// The target's deadline had the clock never paused. It is shown as the due date while no
    /// pause has touched the timer: a budget ending exactly at a closing time is the same
    /// business instant as the next opening, and "one business day" reads better as Tuesday
    /// 09:00 than as Monday 17:30.
    #[serde(default)]
    pub deadline: Option<DateTime<Utc>>,
    pub stopped_at: Option<DateTime<Utc>>,
    /// When the budget runs out given the pauses so far (`None` while paused before it ran
    /// out, or when the calendar never opens).
    pub due: Option<DateTime<Utc>>,
    pub at_risk_at: Option<DateTime<Utc>>,
}

impl Timer {
    /// Whether a stopped timer stopped after its deadline.
    pub fn was_late(&self) -> bool {
        matches!((self.stopped_at, self.due), (Some(s), Some(d)) if s > d)
    }
}

/// An SLA event the clock refuses: events arrive in time order, pauses alternate with
/// resumes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlaError {
    #[error("SLA event at {at} is earlier than the previous one at {last}")]
    OutOfOrder {
        at: DateTime<Utc>,
        last: DateTime<Utc>,
    },
    #[error("the SLA clock is already paused")]
    AlreadyPaused,
    #[error("the SLA clock is not paused")]
    NotPaused,
    #[error("the ticket is already resolved")]
    AlreadyResolved,
    #[error("the ticket is not resolved")]
    NotResolved,
}

/// A ticket's SLA clock. Serializable, so the service can store it beside the ticket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlaClock {
    policy: SlaPolicy,
    started_at: DateTime<Utc>,
    last_event_at: DateTime<Utc>,
    pauses: Vec<Pause>,
    first_responded_at: Option<DateTime<Utc>>,
    /// When the first-response timer stopped: the first reply, or a resolution before any.
    first_stopped_at: Option<DateTime<Utc>>,
    resolved_at: Option<DateTime<Utc>>,
    first_response: Option<Timer>,
    next_response: Option<Timer>,
    resolution: Option<Timer>,
    /// Finished next-response timers, oldest first.
    history: Vec<Timer>,
}

/// What the API shows of a ticket's SLA.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlaSnapshot {
    pub policy: String,
    pub first_response_due: Option<DateTime<Utc>>,
    pub next_response_due: Option<DateTime<Utc>>,
    pub resolution_due: Option<DateTime<Utc>>,
    pub state: SlaState,
    /// The earliest instant after `now` at which the state may change by itself (at risk or
    /// breach of a running timer): when the SLA ticker should look at the ticket again.
    pub next_check_at: Option<DateTime<Utc>>,
}

/// The deadline a target sets for a timer started at `s`, were it never paused.
fn deadline_of(
    clock: &impl BusinessClock,
    target: Target,
    s: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    match target {
        Target::BusinessTime(d) => add(clock, s, d),
        Target::SameDay => clock
            .next_open_at(s)
            .and_then(|o| clock.end_of_business_day(o)),
        Target::BusinessDays(n) => clock.add_business_days(s, n),
        Target::CalendarDays(n) => {
            let d = s + Duration::days(i64::from(n));
            if clock.is_open_at(d) {
                Some(d)
            } else {
                clock
                    .next_open_at(d)
                    .and_then(|o| clock.end_of_business_day(o))
            }
        }
    }
}

fn at_risk_budget(at_risk: AtRisk, budget: Duration) -> Duration {
    match at_risk {
        AtRisk::Fraction(f) => Duration::seconds((budget.num_seconds() as f64 * f).floor() as i64),
        AtRisk::Before(b) => (budget - b).max(Duration::zero()),
    }
}

/// `a + d` in business time, where a zero budget lands on the next open instant rather than
/// inside closed hours.
fn add(clock: &impl BusinessClock, a: DateTime<Utc>, d: Duration) -> Option<DateTime<Utc>> {
    if d <= Duration::zero() {
        clock.next_open_at(a)
    } else {
        clock.add_business_time(a, d)
    }
}

/// The intervals during which a timer started at `start` runs: `[start, ∞)` minus the pauses
/// that began before `stop` (pauses after a timer stopped do not concern it). The last
/// interval is open-ended unless a pause is still running.
fn active_intervals(
    start: DateTime<Utc>,
    stop: Option<DateTime<Utc>>,
    pauses: &[Pause],
) -> Vec<(DateTime<Utc>, Option<DateTime<Utc>>)> {
    let mut out = Vec::new();
    let mut cursor = Some(start);
    for p in pauses {
        let Some(c) = cursor else { break };
        if stop.is_some_and(|s| p.from >= s) {
            break;
        }
        if p.to.is_some_and(|to| to <= c) {
            continue;
        }
        if p.from > c {
            out.push((c, Some(p.from)));
        }
        cursor = p.to.map(|to| to.max(c));
    }
    if let Some(c) = cursor {
        out.push((c, None));
    }
    out
}

impl Timer {
    fn new(
        kind: TimerKind,
        policy: &SlaPolicy,
        target: Target,
        at: DateTime<Utc>,
        clock: &impl BusinessClock,
    ) -> Timer {
        let deadline = deadline_of(clock, target, at);
        let budget = match target {
            Target::BusinessTime(d) => d,
            _ => deadline.map_or(Duration::zero(), |d| clock.business_time_between(at, d)),
        };
        Timer {
            kind,
            started_at: at,
            budget,
            at_risk_budget: at_risk_budget(policy.at_risk, budget),
            deadline,
            stopped_at: None,
            due: None,
            at_risk_at: None,
        }
    }

    /// Recomputes the deadlines by spending the budget over the active intervals.
    fn replay(&mut self, pauses: &[Pause], clock: &impl BusinessClock) {
        self.due = None;
        self.at_risk_at = None;
        let mut spent = Duration::zero();
        let intervals = active_intervals(self.started_at, self.stopped_at, pauses);
        let untouched = intervals.as_slice() == [(self.started_at, None)];
        for (a, b) in intervals {
            let length = b.map(|b| clock.business_time_between(a, b));
            let reaches = |budget: Duration| length.is_none_or(|l| spent + l >= budget);
            if self.at_risk_at.is_none() && reaches(self.at_risk_budget) {
                self.at_risk_at = add(clock, a, self.at_risk_budget - spent);
            }
            if reaches(self.budget) {
                self.due = if untouched && self.deadline.is_some() {
                    self.deadline
                } else {
                    add(clock, a, self.budget - spent)
                };
                return;
            }
            if let Some(l) = length {
                spent += l;
            }
        }
    }

    fn state(&self, now: DateTime<Utc>, paused: bool) -> SlaState {
        if self.due.is_some_and(|d| now > d) {
            SlaState::Breached
        } else if paused {
            SlaState::Paused
        } else if self.at_risk_at.is_some_and(|r| now >= r) {
            SlaState::AtRisk
        } else {
            SlaState::Ok
        }
    }
}

impl SlaClock {
    /// Starts the clock of a ticket created at `at`. Instants are kept to the whole second
    /// (here and in every event), so stored budgets are exact.
    pub fn start(policy: &SlaPolicy, at: DateTime<Utc>, clock: &impl BusinessClock) -> SlaClock {
        let at = at.trunc_subsecs(0);
        let mut c = SlaClock {
            policy: policy.clone(),
            started_at: at,
            last_event_at: at,
            pauses: Vec::new(),
            first_responded_at: None,
            first_stopped_at: None,
            resolved_at: None,
            first_response: None,
            next_response: None,
            resolution: None,
            history: Vec::new(),
        };
        c.rebuild_timers(clock);
        c
    }

    fn check_order(&mut self, at: DateTime<Utc>) -> Result<(), SlaError> {
        if at < self.last_event_at {
            return Err(SlaError::OutOfOrder {
                at,
                last: self.last_event_at,
            });
        }
        self.last_event_at = at;
        Ok(())
    }

    fn timers_mut(&mut self) -> impl Iterator<Item = &mut Timer> {
        [
            &mut self.first_response,
            &mut self.next_response,
            &mut self.resolution,
        ]
        .into_iter()
        .flatten()
        .chain(self.history.iter_mut())
    }

    /// The current timers (first response, next response, resolution), those that exist.
    pub fn timers(&self) -> impl Iterator<Item = &Timer> {
        [&self.first_response, &self.next_response, &self.resolution]
            .into_iter()
            .flatten()
    }

    /// Finished next-response timers, oldest first.
    pub fn history(&self) -> &[Timer] {
        &self.history
    }

    pub fn timer(&self, kind: TimerKind) -> Option<&Timer> {
        match kind {
            TimerKind::FirstResponse => self.first_response.as_ref(),
            TimerKind::NextResponse => self.next_response.as_ref(),
            TimerKind::Resolution => self.resolution.as_ref(),
        }
    }

    fn replay_all(&mut self, clock: &impl BusinessClock) {
        let pauses = std::mem::take(&mut self.pauses);
        for t in self.timers_mut() {
            t.replay(&pauses, clock);
        }
        self.pauses = pauses;
    }

    /// Creates the first-response and resolution timers from the policy (keeping what has
    /// already happened to them) and recomputes every budget and deadline.
    fn rebuild_timers(&mut self, clock: &impl BusinessClock) {
        let policy = self.policy.clone();
        let mk = |kind: TimerKind, stopped: Option<DateTime<Utc>>, start: DateTime<Utc>| {
            policy.target(kind).map(|target| {
                let mut t = Timer::new(kind, &policy, target, start, clock);
                t.stopped_at = stopped;
                t
            })
        };
        self.first_response = mk(
            TimerKind::FirstResponse,
            self.first_stopped_at,
            self.started_at,
        );
        self.resolution = mk(TimerKind::Resolution, self.resolved_at, self.started_at);
        self.next_response = self
            .next_response
            .take()
            .and_then(|old| mk(TimerKind::NextResponse, old.stopped_at, old.started_at));
        let history = std::mem::take(&mut self.history);
        self.history = history
            .into_iter()
            .map(|old| mk(TimerKind::NextResponse, old.stopped_at, old.started_at).unwrap_or(old))
            .collect();
        self.replay_all(clock);
    }

    /// The policy in force.
    pub fn policy(&self) -> &SlaPolicy {
        &self.policy
    }

    pub fn started_at(&self) -> DateTime<Utc> {
        self.started_at
    }

    /// Every pause so far, the running one last.
    pub fn pauses(&self) -> &[Pause] {
        &self.pauses
    }

    pub fn is_paused(&self) -> bool {
        self.pauses.last().is_some_and(|p| p.to.is_none())
    }

    /// The ticket started waiting on the citizen.
    pub fn pause(&mut self, at: DateTime<Utc>, clock: &impl BusinessClock) -> Result<(), SlaError> {
        let at = at.trunc_subsecs(0);
        if self.is_paused() {
            return Err(SlaError::AlreadyPaused);
        }
        if self.resolved_at.is_some() {
            return Err(SlaError::AlreadyResolved);
        }
        self.check_order(at)?;
        self.pauses.push(Pause {
            from: at,
            to: None,
            reason: PauseReason::WaitingCitizen,
        });
        self.replay_all(clock);
        Ok(())
    }

    /// The citizen answered (or the wait ended otherwise): the clock runs again.
    pub fn resume(
        &mut self,
        at: DateTime<Utc>,
        clock: &impl BusinessClock,
    ) -> Result<(), SlaError> {
        let at = at.trunc_subsecs(0);
        if !self.is_paused() {
            return Err(SlaError::NotPaused);
        }
        self.check_order(at)?;
        if let Some(p) = self.pauses.last_mut() {
            p.to = Some(at);
        }
        self.replay_all(clock);
        Ok(())
    }

    /// An operator replied to the citizen: stops the first-response timer the first time,
    /// and the running next-response timer.
    pub fn responded(
        &mut self,
        at: DateTime<Utc>,
        clock: &impl BusinessClock,
    ) -> Result<(), SlaError> {
        let at = at.trunc_subsecs(0);
        self.check_order(at)?;
        if self.first_responded_at.is_none() {
            self.first_responded_at = Some(at);
        }
        if self.first_stopped_at.is_none() {
            self.first_stopped_at = Some(at);
            if let Some(t) = self.first_response.as_mut() {
                t.stopped_at = Some(at);
            }
        }
        if let Some(mut t) = self.next_response.take() {
            t.stopped_at = Some(at);
            self.history.push(t);
        }
        self.replay_all(clock);
        Ok(())
    }

    /// The citizen wrote again: once the first reply has been sent, this starts a
    /// next-response timer (unless one is already running).
    pub fn citizen_wrote(
        &mut self,
        at: DateTime<Utc>,
        clock: &impl BusinessClock,
    ) -> Result<(), SlaError> {
        let at = at.trunc_subsecs(0);
        self.check_order(at)?;
        if self.first_responded_at.is_some()
            && self.next_response.is_none()
            && self.resolved_at.is_none()
            && let Some(target) = self.policy.next_response
        {
            self.next_response = Some(Timer::new(
                TimerKind::NextResponse,
                &self.policy,
                target,
                at,
                clock,
            ));
            self.replay_all(clock);
        }
        Ok(())
    }

    /// The ticket was resolved: every timer stops (a running pause ends here).
    pub fn resolved(
        &mut self,
        at: DateTime<Utc>,
        clock: &impl BusinessClock,
    ) -> Result<(), SlaError> {
        let at = at.trunc_subsecs(0);
        if self.resolved_at.is_some() {
            return Err(SlaError::AlreadyResolved);
        }
        self.check_order(at)?;
        if let Some(p) = self.pauses.last_mut().filter(|p| p.to.is_none()) {
            p.to = Some(at);
        }
        self.resolved_at = Some(at);
        self.first_stopped_at.get_or_insert(at);
        for t in [&mut self.first_response, &mut self.resolution]
            .into_iter()
            .flatten()
        {
            t.stopped_at.get_or_insert(at);
        }
        if let Some(mut t) = self.next_response.take() {
            t.stopped_at = Some(at);
            self.history.push(t);
        }
        self.replay_all(clock);
        Ok(())
    }

    /// A resolved ticket was reopened: the resolution timer runs again, and the time it
    /// spent resolved is recorded as a pause so it never counts.
    pub fn reopened(
        &mut self,
        at: DateTime<Utc>,
        clock: &impl BusinessClock,
    ) -> Result<(), SlaError> {
        let at = at.trunc_subsecs(0);
        let Some(resolved_at) = self.resolved_at else {
            return Err(SlaError::NotResolved);
        };
        self.check_order(at)?;
        self.pauses.push(Pause {
            from: resolved_at,
            to: Some(at),
            reason: PauseReason::Resolved,
        });
        self.resolved_at = None;
        if let Some(t) = self.resolution.as_mut() {
            t.stopped_at = None;
        }
        self.replay_all(clock);
        Ok(())
    }

    /// Applies a new or changed policy: every budget is recomputed from its timer's start,
    /// keeping the recorded pauses, replies and resolution.
    pub fn apply_policy(&mut self, policy: &SlaPolicy, clock: &impl BusinessClock) {
        self.policy = policy.clone();
        self.rebuild_timers(clock);
    }

    /// Recomputes budgets and deadlines with the same policy (after a calendar change: a
    /// new holiday, different opening hours).
    pub fn recalculate(&mut self, clock: &impl BusinessClock) {
        self.rebuild_timers(clock);
    }

    /// The state at `now`, over the running timers: breached beats paused beats at risk.
    pub fn state(&self, now: DateTime<Utc>) -> SlaState {
        let paused = self.is_paused();
        self.timers()
            .filter(|t| t.stopped_at.is_none())
            .map(|t| t.state(now, paused))
            .max_by_key(|s| match s {
                SlaState::Ok => 0,
                SlaState::AtRisk => 1,
                SlaState::Paused => 2,
                SlaState::Breached => 3,
            })
            .unwrap_or(SlaState::Ok)
    }

    /// What the API shows.
    pub fn snapshot(&self, now: DateTime<Utc>) -> SlaSnapshot {
        let due = |t: &Option<Timer>| t.as_ref().and_then(|t| t.due);
        let next_check_at = self
            .timers()
            .filter(|t| t.stopped_at.is_none())
            .flat_map(|t| [t.at_risk_at, t.due])
            .flatten()
            .filter(|i| *i >= now)
            .min()
            // The state flips just after the deadline (it is breached when now > due).
            .map(|i| {
                if self.timers().any(|t| t.due == Some(i)) {
                    i + Duration::seconds(1)
                } else {
                    i
                }
            });
        SlaSnapshot {
            policy: self.policy.name.clone(),
            first_response_due: due(&self.first_response),
            next_response_due: due(&self.next_response),
            resolution_due: due(&self.resolution),
            state: self.state(now),
            next_check_at,
        }
    }

    /// Business time a timer has spent by `now`, pauses excluded.
    pub fn spent(
        &self,
        kind: TimerKind,
        now: DateTime<Utc>,
        clock: &impl BusinessClock,
    ) -> Option<Duration> {
        let t = self.timer(kind)?;
        let end = t.stopped_at.map_or(now, |s| s.min(now));
        Some(
            active_intervals(t.started_at, t.stopped_at, &self.pauses)
                .into_iter()
                .map(|(a, b)| clock.business_time_between(a, b.map_or(end, |b| b.min(end))))
                .fold(Duration::zero(), |acc, d| acc + d),
        )
    }

    /// Business time spent paused between `from` and `to`.
    pub fn paused_between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        clock: &impl BusinessClock,
    ) -> Duration {
        self.pauses
            .iter()
            .map(|p| {
                let a = p.from.max(from);
                let b = p.to.map_or(to, |t| t.min(to));
                clock.business_time_between(a, b)
            })
            .fold(Duration::zero(), |acc, d| acc + d)
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::BusinessTime(d) if d.num_minutes() % 60 == 0 => {
                write!(f, "{} business hours", d.num_hours())
            }
            Target::BusinessTime(d) => write!(f, "{} business minutes", d.num_minutes()),
            Target::SameDay => f.write_str("same business day"),
            Target::BusinessDays(n) => write!(f, "{n} business days"),
            Target::CalendarDays(n) => write!(f, "{n} calendar days"),
        }
    }
}

/// Durations stored as whole seconds.
pub(crate) mod secs {
    use chrono::Duration;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(d.num_seconds())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let v = i64::deserialize(d)?;
        Duration::try_seconds(v)
            .ok_or_else(|| serde::de::Error::custom(format!("{v} seconds is out of range")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{OfficeClock, utc};
    use chrono::NaiveDate;
    use proptest::prelude::*;
    use sportello_domain::calendar::BusinessCalendar;

    fn policy(first: Option<Target>, resolution: Option<Target>) -> SlaPolicy {
        SlaPolicy {
            name: "p".into(),
            label: None,
            first_response: first,
            next_response: Some(Target::BusinessTime(Duration::hours(4))),
            resolution,
            at_risk: AtRisk::Fraction(0.75),
        }
    }

    fn hours(h: i64) -> Option<Target> {
        Some(Target::BusinessTime(Duration::hours(h)))
    }

    const MON: u32 = 2; // 2026-03-02 is a Monday.

    fn due_of(t: Target, start: DateTime<Utc>, clock: &OfficeClock) -> Option<DateTime<Utc>> {
        SlaClock::start(&policy(Some(t), None), start, clock)
            .snapshot(start)
            .first_response_due
    }

    #[test]
    fn targets_become_deadlines_in_open_time() {
        let c = OfficeClock::default();
        let mon10 = utc(2026, 3, MON, 10, 0);
        // 8 business hours: Monday 10–13 and 14–17:30 give 6.5 h, 1.5 h more on Tuesday.
        assert_eq!(
            due_of(Target::BusinessTime(Duration::hours(8)), mon10, &c),
            Some(utc(2026, 3, 3, 10, 30))
        );
        assert_eq!(
            due_of(Target::SameDay, mon10, &c),
            Some(utc(2026, 3, MON, 17, 30))
        );
        let sat = utc(2026, 3, 7, 11, 0);
        assert_eq!(
            due_of(Target::SameDay, sat, &c),
            Some(utc(2026, 3, 9, 17, 30)),
            "counted from Monday"
        );
        assert_eq!(
            due_of(Target::BusinessDays(3), mon10, &c),
            Some(utc(2026, 3, 5, 10, 0))
        );
        assert_eq!(
            due_of(Target::BusinessDays(1), sat, &c),
            Some(utc(2026, 3, 10, 9, 0))
        );
        // 30 calendar days land on Wednesday 1 April at 10:00, an open instant ...
        assert_eq!(
            due_of(Target::CalendarDays(30), mon10, &c),
            Some(utc(2026, 4, 1, 10, 0))
        );
        // ... but from 20:00 they land after hours, so the term runs to the next day's close.
        assert_eq!(
            due_of(Target::CalendarDays(30), utc(2026, 3, MON, 20, 0), &c),
            Some(utc(2026, 4, 2, 17, 30))
        );
        let holiday = OfficeClock {
            holidays: vec![NaiveDate::from_ymd_opt(2026, 4, 1).unwrap()],
        };
        assert_eq!(
            due_of(Target::CalendarDays(30), mon10, &holiday),
            Some(utc(2026, 4, 2, 17, 30))
        );
    }

    #[test]
    fn state_goes_ok_at_risk_breached() {
        let c = OfficeClock::default();
        let s = SlaClock::start(&policy(hours(8), None), utc(2026, 3, MON, 10, 0), &c);
        // 75% of 8 h = 6 h of open time: Monday 17:00.
        assert_eq!(s.state(utc(2026, 3, MON, 16, 59)), SlaState::Ok);
        assert_eq!(s.state(utc(2026, 3, MON, 17, 0)), SlaState::AtRisk);
        assert_eq!(
            s.state(utc(2026, 3, 3, 10, 30)),
            SlaState::AtRisk,
            "due instant itself is on time"
        );
        assert_eq!(s.state(utc(2026, 3, 3, 10, 31)), SlaState::Breached);
        let snap = s.snapshot(utc(2026, 3, MON, 12, 0));
        assert_eq!(snap.next_check_at, Some(utc(2026, 3, MON, 17, 0)));
        let snap = s.snapshot(utc(2026, 3, MON, 17, 5));
        assert_eq!(
            snap.next_check_at,
            Some(utc(2026, 3, 3, 10, 30) + Duration::seconds(1))
        );
        assert_eq!(
            s.state(utc(2026, 3, 3, 10, 30) + Duration::seconds(1)),
            SlaState::Breached
        );
    }

    #[test]
    fn waiting_on_the_citizen_pauses_and_moves_the_deadline_by_exactly_the_pause() {
        let c = OfficeClock::default();
        let mut s = SlaClock::start(&policy(hours(8), None), utc(2026, 3, MON, 10, 0), &c);
        s.pause(utc(2026, 3, MON, 11, 0), &c).unwrap();
        assert_eq!(
            s.state(utc(2026, 3, 4, 9, 0)),
            SlaState::Paused,
            "no breach while paused"
        );
        assert_eq!(
            s.snapshot(utc(2026, 3, MON, 12, 0)).first_response_due,
            None
        );
        s.resume(utc(2026, 3, 3, 11, 0), &c).unwrap();
        // 1 h spent before the pause, 7 h left from Tuesday 11:00: 5.5 h Tuesday, 1.5 h Wednesday.
        assert_eq!(
            s.snapshot(utc(2026, 3, 3, 11, 0)).first_response_due,
            Some(utc(2026, 3, 4, 10, 30))
        );
        assert_eq!(s.pauses().len(), 1);
        assert_eq!(s.pauses()[0].to, Some(utc(2026, 3, 3, 11, 0)));
        assert_eq!(
            s.spent(TimerKind::FirstResponse, utc(2026, 3, 4, 10, 30), &c),
            Some(Duration::hours(8))
        );
    }

    #[test]
    fn a_deadline_missed_before_the_pause_stays_breached() {
        let c = OfficeClock::default();
        let mut s = SlaClock::start(&policy(hours(2), None), utc(2026, 3, MON, 9, 0), &c);
        s.pause(utc(2026, 3, MON, 15, 0), &c).unwrap();
        assert_eq!(s.state(utc(2026, 3, MON, 16, 0)), SlaState::Breached);
        assert_eq!(
            s.snapshot(utc(2026, 3, MON, 16, 0)).first_response_due,
            Some(utc(2026, 3, MON, 11, 0))
        );
    }

    #[test]
    fn replies_stop_timers_and_citizen_messages_start_next_response() {
        let c = OfficeClock::default();
        let mut s = SlaClock::start(&policy(hours(2), hours(40)), utc(2026, 3, MON, 9, 0), &c);
        s.citizen_wrote(utc(2026, 3, MON, 9, 30), &c).unwrap();
        assert!(
            s.timer(TimerKind::NextResponse).is_none(),
            "no next response before the first reply"
        );
        s.responded(utc(2026, 3, MON, 12, 0), &c).unwrap();
        let first = s.timer(TimerKind::FirstResponse).unwrap();
        assert!(first.was_late(), "due 11:00, replied 12:00");
        assert_eq!(
            s.state(utc(2026, 3, MON, 12, 0)),
            SlaState::Ok,
            "only running timers make the state"
        );
        s.citizen_wrote(utc(2026, 3, MON, 14, 0), &c).unwrap();
        // 4 h from 14:00: 3.5 h on Monday, 0.5 h on Tuesday.
        assert_eq!(
            s.snapshot(utc(2026, 3, MON, 14, 0)).next_response_due,
            Some(utc(2026, 3, 3, 9, 30))
        );
        s.responded(utc(2026, 3, MON, 15, 0), &c).unwrap();
        assert!(s.timer(TimerKind::NextResponse).is_none());
        assert_eq!(s.history().len(), 1);
        assert!(!s.history()[0].was_late());
    }

    #[test]
    fn resolved_time_never_counts_after_a_reopening() {
        let c = OfficeClock::default();
        let mut s = SlaClock::start(&policy(None, hours(8)), utc(2026, 3, MON, 9, 0), &c);
        s.resolved(utc(2026, 3, MON, 10, 0), &c).unwrap();
        assert_eq!(
            s.resolved(utc(2026, 3, MON, 10, 0), &c),
            Err(SlaError::AlreadyResolved)
        );
        s.reopened(utc(2026, 3, 4, 9, 0), &c).unwrap();
        assert_eq!(s.pauses()[0].reason, PauseReason::Resolved);
        // 1 h spent on Monday, 7 h left from Wednesday 09:00: 4 h + 3 h → 17:00.
        assert_eq!(
            s.snapshot(utc(2026, 3, 4, 9, 0)).resolution_due,
            Some(utc(2026, 3, 4, 17, 0))
        );
    }

    #[test]
    fn a_policy_change_recomputes_every_deadline_from_the_start_keeping_pauses() {
        let c = OfficeClock::default();
        let mut s = SlaClock::start(&policy(hours(8), None), utc(2026, 3, MON, 10, 0), &c);
        s.pause(utc(2026, 3, MON, 11, 0), &c).unwrap();
        s.resume(utc(2026, 3, 3, 11, 0), &c).unwrap();
        let mut stricter = policy(hours(2), None);
        stricter.name = "strict".into();
        s.apply_policy(&stricter, &c);
        assert_eq!(s.policy().name, "strict");
        // 1 h before the pause, 1 h left after it.
        assert_eq!(
            s.snapshot(utc(2026, 3, 3, 11, 0)).first_response_due,
            Some(utc(2026, 3, 3, 12, 0))
        );
        assert_eq!(s.snapshot(utc(2026, 3, 3, 11, 0)).policy, "strict");
        assert_eq!(s.pauses().len(), 1);
    }

    #[test]
    fn events_must_come_in_order_and_alternate() {
        let c = OfficeClock::default();
        let mut s = SlaClock::start(&policy(hours(8), None), utc(2026, 3, MON, 10, 0), &c);
        assert_eq!(
            s.resume(utc(2026, 3, MON, 11, 0), &c),
            Err(SlaError::NotPaused)
        );
        s.pause(utc(2026, 3, MON, 11, 0), &c).unwrap();
        assert_eq!(
            s.pause(utc(2026, 3, MON, 12, 0), &c),
            Err(SlaError::AlreadyPaused)
        );
        assert!(matches!(
            s.resume(utc(2026, 3, MON, 10, 30), &c),
            Err(SlaError::OutOfOrder { .. })
        ));
        assert!(s.is_paused(), "a refused event changes nothing");
    }

    #[test]
    fn the_clock_survives_json_storage() {
        let c = OfficeClock::default();
        let mut s = SlaClock::start(
            &policy(hours(8), Some(Target::CalendarDays(30))),
            utc(2026, 3, MON, 10, 0),
            &c,
        );
        s.pause(utc(2026, 3, MON, 11, 0), &c).unwrap();
        let json = serde_json::to_string(&s).unwrap();
        let back: SlaClock = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
        assert_eq!(back.state(utc(2026, 3, 3, 9, 0)), SlaState::Paused);
    }

    #[test]
    fn policies_parse_and_refuse_bad_targets_by_name_and_field() {
        let ok = SlaPolicies::from_toml(
            "[sla.policies.x]\nfirst_response = { business_minutes = 90 }\nresolution = { same_day = true }\nat_risk_before = { business_hours = 1 }",
        )
        .unwrap();
        let x = ok.get("x").unwrap();
        assert_eq!(
            x.first_response,
            Some(Target::BusinessTime(Duration::minutes(90)))
        );
        assert_eq!(x.resolution, Some(Target::SameDay));
        assert_eq!(x.at_risk, AtRisk::Before(Duration::hours(1)));
        assert_eq!(SlaPolicies::from_doc(&ok.to_doc()).unwrap(), ok);
        for (doc, want) in [
            (
                "first_response = { business_hours = 1, business_days = 1 }",
                "policy 'y', field 'first_response': give exactly one",
            ),
            (
                "first_response = { business_days = 0 }",
                "field 'first_response': 0 business days is out of range",
            ),
            (
                "resolution = { same_day = false }",
                "field 'resolution': same_day can only be true",
            ),
            (
                "first_response = { business_hours = 1 }\nat_risk_fraction = 1.5",
                "field 'at_risk_fraction'",
            ),
            (
                "first_response = { business_hours = 1 }\nat_risk_before = { business_days = 1 }",
                "field 'at_risk_before'",
            ),
            ("label = \"nothing\"", "needs at least one of"),
            ("first_response = { weeks = 1 }", "unknown field `weeks`"),
        ] {
            let err = SlaPolicies::from_toml(&format!("[sla.policies.y]\n{doc}"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "want {want:?} in {err:?}");
        }
        assert_eq!(
            SlaPolicies::from_toml("x = 1"),
            Err(SlaConfigError::NoPolicies)
        );
    }

    #[test]
    fn milan_calendar_same_day_and_business_days() {
        let cal = BusinessCalendar::default();
        // Monday 2 March 2026, 10:00 in Milan (CET, UTC+1) = 09:00 UTC.
        let start = utc(2026, 3, MON, 9, 0);
        let p = policy(Some(Target::SameDay), Some(Target::BusinessDays(3)));
        let s = SlaClock::start(&p, start, &cal);
        let snap = s.snapshot(start);
        assert_eq!(
            snap.first_response_due,
            Some(utc(2026, 3, MON, 15, 30)),
            "16:30 local"
        );
        assert_eq!(
            snap.resolution_due,
            Some(utc(2026, 3, 5, 9, 0)),
            "Thursday, same clock time"
        );
        // Friday 4 December 2026 at 15:00 local: Monday 7 December is Sant'Ambrogio and
        // Tuesday 8 the Immacolata, so one business day later is Wednesday 9.
        let fri = utc(2026, 12, 4, 14, 0);
        let s = SlaClock::start(&policy(Some(Target::BusinessDays(1)), None), fri, &cal);
        assert_eq!(
            s.snapshot(fri).first_response_due,
            Some(utc(2026, 12, 9, 14, 0))
        );
    }

    /// A deadline is "inside closed hours" when the office is closed at it and was already
    /// closed a second before (the end of a session is a legitimate deadline).
    fn strictly_closed(clock: &impl BusinessClock, t: DateTime<Utc>) -> bool {
        !clock.is_open_at(t) && !clock.is_open_at(t - Duration::seconds(1))
    }

    fn deadlines(s: &SlaClock) -> Vec<DateTime<Utc>> {
        s.timers()
            .flat_map(|t| [t.due, t.at_risk_at])
            .flatten()
            .collect()
    }

    fn target() -> impl Strategy<Value = Target> {
        prop_oneof![
            (1i64..20_000).prop_map(|m| Target::BusinessTime(Duration::minutes(m))),
            Just(Target::SameDay),
            (1u32..30).prop_map(Target::BusinessDays),
            (1u32..60).prop_map(Target::CalendarDays),
        ]
    }

    fn instant() -> impl Strategy<Value = DateTime<Utc>> {
        // Two years from 2026-01-01, to the minute.
        (0i64..2 * 366 * 24 * 60).prop_map(|m| utc(2026, 1, 1, 0, 0) + Duration::minutes(m))
    }

    /// Alternating pause/resume offsets (minutes after the previous event).
    fn pauses() -> impl Strategy<Value = Vec<i64>> {
        proptest::collection::vec(1i64..6000, 0..8)
    }

    fn run(
        clock: &impl BusinessClock,
        t: Target,
        start: DateTime<Utc>,
        steps: &[i64],
    ) -> (SlaClock, DateTime<Utc>) {
        let mut s = SlaClock::start(&policy(Some(t), Some(t)), start, clock);
        let mut now = start;
        for (i, m) in steps.iter().enumerate() {
            now += Duration::minutes(*m);
            let r = if i % 2 == 0 {
                s.pause(now, clock)
            } else {
                s.resume(now, clock)
            };
            assert!(r.is_ok());
        }
        if s.is_paused() {
            now += Duration::minutes(1);
            assert!(s.resume(now, clock).is_ok());
        }
        (s, now)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn deadlines_never_fall_inside_closed_hours(t in target(), start in instant(), steps in pauses()) {
            let office = OfficeClock { holidays: vec![NaiveDate::from_ymd_opt(2026, 4, 6).unwrap()] };
            let milan = BusinessCalendar::default();
            let (a, _) = run(&office, t, start, &steps);
            let (b, _) = run(&milan, t, start, &steps);
            for d in deadlines(&a) {
                prop_assert!(!strictly_closed(&office, d), "{} is inside closed hours ({:?} from {})", d, t, start);
            }
            for d in deadlines(&b) {
                prop_assert!(!strictly_closed(&milan, d), "{} is inside Milan's closed hours ({:?} from {})", d, t, start);
            }
        }

        #[test]
        fn pause_and_resume_never_lose_or_gain_time(t in target(), start in instant(), steps in pauses(), probe in 0i64..20_000) {
            let milan = BusinessCalendar::default();
            let (s, resumed) = run(&milan, t, start, &steps);
            let timer = s.timer(TimerKind::Resolution).unwrap();
            // The budget is spent exactly at the deadline, pauses excluded ...
            if let Some(due) = timer.due {
                prop_assert_eq!(s.spent(TimerKind::Resolution, due, &milan), Some(timer.budget));
                // ... and not a second of open time earlier.
                let just_before = due - Duration::seconds(1);
                if timer.budget > Duration::zero() && due > start && milan.is_open_at(just_before) {
                    let before = s.spent(TimerKind::Resolution, just_before, &milan).unwrap();
                    prop_assert!(before < timer.budget);
                }
            }
            // At any instant, spent + paused = elapsed business time.
            let now = resumed + Duration::minutes(probe);
            let spent = s.spent(TimerKind::Resolution, now, &milan).unwrap();
            let paused = s.paused_between(start, now, &milan);
            prop_assert_eq!(spent + paused, milan.business_time_between(start, now));
            // A clock never paused reaches the same budget with exactly the paused time added.
            let plain = SlaClock::start(s.policy(), start, &milan);
            let plain_due = plain.timer(TimerKind::Resolution).unwrap().due;
            if let (Some(pd), Some(d)) = (plain_due, timer.due) {
                let extra = milan.business_time_between(pd.min(d), d.max(pd));
                prop_assert_eq!(extra, s.paused_between(start, d, &milan));
            }
        }
    }
}
