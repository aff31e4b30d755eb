//! Staffing what-ifs: a discrete-event simulation of the contact center, and Erlang C.
//!
//! The simulation replays a day or a week: tickets arrive per stream (channel, tier, skills)
//! as a Poisson process whose hourly rate the staffing file sets, teams of operators are on
//! shift in the numbers the file sets per hour, and tickets are assigned by the real
//! assignment planner ([`crate::assign::plan_assignments`]) with the configured strategy
//! and overflow. It reports, per tier and per stream, the share answered within the target,
//! waiting times and occupancy, and for phone streams the Erlang C prediction for each hour.
//!
//! Time is measured in seconds from the start of the first simulated day; waits are wall
//! clock (the staffing file only describes the hours it staffs).

use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap};
use std::fmt::Write as _;

use chrono::{DateTime, Duration, TimeZone, Utc, Weekday};
use serde::{Deserialize, Serialize};
use sportello_domain::{Channel, Priority, Tier};
use uuid::Uuid;

use crate::assign::plan_assignments;
use crate::operators::{AssignmentDoc, AssignmentPolicy, OperatorState, Presence, WaitingTicket};
use crate::rng::SplitMix64;

// ---------------------------------------------------------------------------------------------
// Erlang C
// ---------------------------------------------------------------------------------------------

/// Erlang B: the blocking probability of `agents` servers offered `traffic` erlangs.
pub fn erlang_b(agents: u32, traffic: f64) -> f64 {
    if traffic <= 0.0 {
        return 0.0;
    }
    // The recurrence B(k) = A·B(k−1) / (k + A·B(k−1)) is stable for any size.
    (1..=agents).fold(1.0, |b, k| traffic * b / (f64::from(k) + traffic * b))
}

/// Erlang C: the probability that a call waits at all, with `agents` agents and `traffic`
/// erlangs offered (arrival rate × average handling time). 1 when the queue is unstable.
pub fn erlang_c(agents: u32, traffic: f64) -> f64 {
    if traffic <= 0.0 {
        return 0.0;
    }
    let n = f64::from(agents);
    if traffic >= n {
        return 1.0;
    }
    let b = erlang_b(agents, traffic);
    n * b / (n - traffic * (1.0 - b))
}

/// Share of calls answered within `target_secs`, by Erlang C.
pub fn service_level(agents: u32, traffic: f64, aht_secs: f64, target_secs: f64) -> f64 {
    if traffic <= 0.0 {
        return 1.0;
    }
    let n = f64::from(agents);
    if traffic >= n || aht_secs <= 0.0 {
        return 0.0;
    }
    (1.0 - erlang_c(agents, traffic) * (-(n - traffic) * target_secs / aht_secs).exp())
        .clamp(0.0, 1.0)
}

/// Average speed of answer (mean wait over all calls), by Erlang C; infinite when unstable.
pub fn average_speed_of_answer(agents: u32, traffic: f64, aht_secs: f64) -> f64 {
    if traffic <= 0.0 {
        return 0.0;
    }
    let n = f64::from(agents);
    if traffic >= n {
        return f64::INFINITY;
    }
    erlang_c(agents, traffic) * aht_secs / (n - traffic)
}

/// The fewest agents for which the service level reaches `wanted` (e.g. 0.8 within 20 s).
pub fn agents_needed(traffic: f64, aht_secs: f64, target_secs: f64, wanted: f64) -> u32 {
    if traffic <= 0.0 {
        return 0;
    }
    let mut n = traffic.floor().max(0.0) as u32 + 1;
    while service_level(n, traffic, aht_secs, target_secs) < wanted && n < 100_000 {
        n += 1;
    }
    n
}

// ---------------------------------------------------------------------------------------------
// Staffing file
// ---------------------------------------------------------------------------------------------

/// A staffing file that cannot be accepted; names the place and field at fault.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StaffingError {
    #[error("staffing file is not valid TOML: {0}")]
    Syntax(String),
    #[error("{place}, field '{field}': {message}")]
    Invalid {
        place: String,
        field: String,
        message: String,
    },
}

fn bad(place: &str, field: &str, message: impl Into<String>) -> StaffingError {
    StaffingError::Invalid {
        place: place.to_owned(),
        field: field.to_owned(),
        message: message.into(),
    }
}

/// A handling-time distribution.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "distribution", rename_all = "snake_case", deny_unknown_fields)]
pub enum Handling {
    Exponential { mean_seconds: f64 },
    Lognormal { mean_seconds: f64, sd_seconds: f64 },
    Fixed { seconds: f64 },
}

impl Handling {
    pub fn mean(&self) -> f64 {
        match *self {
            Handling::Exponential { mean_seconds } | Handling::Lognormal { mean_seconds, .. } => {
                mean_seconds
            }
            Handling::Fixed { seconds } => seconds,
        }
    }

    fn sample(&self, rng: &mut SplitMix64) -> f64 {
        match *self {
            Handling::Exponential { mean_seconds } => rng.exponential(mean_seconds),
            Handling::Lognormal {
                mean_seconds,
                sd_seconds,
            } => {
                let s2 = (1.0 + (sd_seconds / mean_seconds).powi(2)).ln();
                (mean_seconds.ln() - s2 / 2.0 + s2.sqrt() * rng.normal()).exp()
            }
            Handling::Fixed { seconds } => seconds,
        }
    }

    fn validate(&self, place: &str) -> Result<(), StaffingError> {
        let ok = |v: f64| v.is_finite() && v > 0.0 && v <= 30.0 * 86_400.0;
        let fine = match *self {
            Handling::Exponential { mean_seconds } => ok(mean_seconds),
            Handling::Lognormal {
                mean_seconds,
                sd_seconds,
            } => ok(mean_seconds) && ok(sd_seconds),
            Handling::Fixed { seconds } => ok(seconds),
        };
        if fine {
            Ok(())
        } else {
            Err(bad(
                place,
                "handling",
                "times must be positive and at most 30 days",
            ))
        }
    }
}

/// An hourly block: on `days` (empty = every simulated day), hours `from..to` (0–24).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockDoc {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub days: Vec<String>,
    pub from: u32,
    pub to: u32,
    /// Arrivals per hour (in `arrivals`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_hour: Option<f64>,
    /// Operators on shift (in `staff`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agents: Option<u32>,
}

/// A stream of tickets as written in the staffing file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamDoc {
    pub name: String,
    pub channel: String,
    pub tier: String,
    #[serde(default)]
    pub skills: BTreeMap<String, u8>,
    #[serde(default)]
    pub priority: Option<String>,
    #[serde(default)]
    pub target_seconds: Option<f64>,
    #[serde(default)]
    pub target_minutes: Option<f64>,
    #[serde(default)]
    pub target_hours: Option<f64>,
    /// Mean patience of a caller before hanging up (exponential); none = nobody abandons.
    #[serde(default)]
    pub patience_seconds: Option<f64>,
    pub handling: Handling,
    pub arrivals: Vec<BlockDoc>,
}

/// A team of interchangeable operators as written in the staffing file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamDoc {
    pub name: String,
    pub tiers: Vec<String>,
    #[serde(default)]
    pub skills: BTreeMap<String, u8>,
    pub capacity: BTreeMap<String, u32>,
    /// After-call work following each phone call or counter visit.
    #[serde(default)]
    pub wrap_up_seconds: f64,
    pub staff: Vec<BlockDoc>,
}

/// The staffing file (see `config/staffing.example.toml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaffingDoc {
    #[serde(default)]
    pub seed: u64,
    pub days: Vec<String>,
    #[serde(default)]
    pub assignment: AssignmentDoc,
    pub streams: Vec<StreamDoc>,
    pub teams: Vec<TeamDoc>,
}

/// A validated stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Stream {
    pub name: String,
    pub channel: Channel,
    pub tier: Tier,
    pub skills: BTreeMap<String, u8>,
    pub priority: Priority,
    /// Service-level threshold, seconds.
    pub target: f64,
    pub patience: Option<f64>,
    pub handling: Handling,
    /// Arrivals per hour: `[day][hour]`.
    pub rates: Vec<[f64; 24]>,
}

/// A validated team.
#[derive(Debug, Clone, PartialEq)]
pub struct Team {
    pub name: String,
    pub tiers: Vec<Tier>,
    pub skills: BTreeMap<String, u8>,
    pub capacity: BTreeMap<Channel, u32>,
    pub wrap_up: f64,
    /// Operators on shift: `[day][hour]`.
    pub staff: Vec<[u32; 24]>,
}

/// A validated staffing file.
#[derive(Debug, Clone, PartialEq)]
pub struct Staffing {
    pub seed: u64,
    pub days: Vec<Weekday>,
    pub policy: AssignmentPolicy,
    pub streams: Vec<Stream>,
    pub teams: Vec<Team>,
}

const DAY: f64 = 86_400.0;
const HOUR: f64 = 3_600.0;

fn weekday(s: &str) -> Option<Weekday> {
    Some(match s.trim().to_lowercase().as_str() {
        "mon" | "lun" => Weekday::Mon,
        "tue" | "mar" => Weekday::Tue,
        "wed" | "mer" => Weekday::Wed,
        "thu" | "gio" => Weekday::Thu,
        "fri" | "ven" => Weekday::Fri,
        "sat" | "sab" => Weekday::Sat,
        "sun" | "dom" => Weekday::Sun,
        _ => return None,
    })
}

/// Lays hourly blocks over the simulated days; a later block overrides an earlier one.
fn hourly<T: Copy + Default>(
    days: &[Weekday],
    blocks: &[BlockDoc],
    place: &str,
    field: &str,
    value: impl Fn(&BlockDoc) -> Option<T>,
) -> Result<Vec<[T; 24]>, StaffingError> {
    let mut out = vec![[T::default(); 24]; days.len()];
    for (i, b) in blocks.iter().enumerate() {
        let f = format!("{field}[{}]", i + 1);
        if b.from >= b.to || b.to > 24 {
            return Err(bad(
                place,
                &f,
                format!(
                    "hours {}..{} must satisfy 0 <= from < to <= 24",
                    b.from, b.to
                ),
            ));
        }
        let v = value(b).ok_or_else(|| bad(place, &f, "missing or invalid value"))?;
        let mut on = Vec::new();
        for d in &b.days {
            on.push(
                weekday(d)
                    .ok_or_else(|| bad(place, &f, format!("'{d}' is not a day (mon, tue, ...)")))?,
            );
        }
        for (di, day) in days.iter().enumerate() {
            if on.is_empty() || on.contains(day) {
                for h in b.from..b.to {
                    out[di][h as usize] = v;
                }
            }
        }
    }
    Ok(out)
}

impl Staffing {
    /// Parses and validates a staffing file.
    pub fn from_toml(text: &str) -> Result<Staffing, StaffingError> {
        let doc: StaffingDoc =
            toml::from_str(text).map_err(|e| StaffingError::Syntax(e.to_string()))?;
        Staffing::from_doc(&doc)
    }

    /// Validates a staffing document.
    pub fn from_doc(doc: &StaffingDoc) -> Result<Staffing, StaffingError> {
        let mut days = Vec::new();
        for d in &doc.days {
            days.push(weekday(d).ok_or_else(|| {
                bad(
                    "file",
                    "days",
                    format!("'{d}' is not a day (mon, tue, ...)"),
                )
            })?);
        }
        if days.is_empty() || days.len() > 14 {
            return Err(bad("file", "days", "simulate between 1 and 14 days"));
        }
        let policy = AssignmentPolicy::from_doc(&doc.assignment)
            .map_err(|e| bad("assignment", "-", e.to_string()))?;
        if doc.streams.is_empty() {
            return Err(bad("file", "streams", "add at least one [[streams]]"));
        }
        if doc.teams.is_empty() {
            return Err(bad("file", "teams", "add at least one [[teams]]"));
        }
        let mut streams = Vec::new();
        for s in &doc.streams {
            let place = format!("stream '{}'", s.name);
            let channel =
                Channel::parse(&s.channel).map_err(|e| bad(&place, "channel", e.to_string()))?;
            let tier = Tier::parse(&s.tier).map_err(|e| bad(&place, "tier", e.to_string()))?;
            let priority = match &s.priority {
                None => Priority::Normal,
                Some(p) => {
                    Priority::parse(p).map_err(|e| bad(&place, "priority", e.to_string()))?
                }
            };
            let targets: Vec<f64> = [
                (s.target_seconds, 1.0),
                (s.target_minutes, 60.0),
                (s.target_hours, HOUR),
            ]
            .iter()
            .filter_map(|(v, m)| v.map(|v| v * m))
            .collect();
            let target = match targets.as_slice() {
                [t] if t.is_finite() && *t >= 0.0 => *t,
                [_] => return Err(bad(&place, "target", "the target must be zero or more")),
                _ => {
                    return Err(bad(
                        &place,
                        "target",
                        "give exactly one of target_seconds, target_minutes, target_hours",
                    ));
                }
            };
            if let Some(p) = s.patience_seconds
                && !(p.is_finite() && p > 0.0)
            {
                return Err(bad(&place, "patience_seconds", "must be positive"));
            }
            s.handling.validate(&place)?;
            for (k, l) in &s.skills {
                if !(1..=5).contains(l) {
                    return Err(bad(&place, &format!("skills.{k}"), "levels go from 1 to 5"));
                }
            }
            let rates = hourly(&days, &s.arrivals, &place, "arrivals", |b| {
                b.per_hour
                    .filter(|r| r.is_finite() && *r >= 0.0 && *r <= 100_000.0)
            })?;
            streams.push(Stream {
                name: s.name.clone(),
                channel,
                tier,
                skills: s.skills.clone(),
                priority,
                target,
                patience: s.patience_seconds,
                handling: s.handling,
                rates,
            });
        }
        let mut teams = Vec::new();
        for t in &doc.teams {
            let place = format!("team '{}'", t.name);
            let mut tiers = Vec::new();
            for s in &t.tiers {
                tiers.push(Tier::parse(s).map_err(|e| bad(&place, "tiers", e.to_string()))?);
            }
            if tiers.is_empty() {
                return Err(bad(&place, "tiers", "a team serves at least one tier"));
            }
            let mut capacity = BTreeMap::new();
            for (c, n) in &t.capacity {
                let ch = Channel::parse(c).map_err(|e| bad(&place, "capacity", e.to_string()))?;
                if *n > 100 {
                    return Err(bad(&place, &format!("capacity.{c}"), "at most 100"));
                }
                capacity.insert(ch, *n);
            }
            if !(t.wrap_up_seconds.is_finite() && t.wrap_up_seconds >= 0.0) {
                return Err(bad(&place, "wrap_up_seconds", "must be zero or more"));
            }
            let staff = hourly(&days, &t.staff, &place, "staff", |b| {
                b.agents.filter(|a| *a <= 10_000)
            })?;
            teams.push(Team {
                name: t.name.clone(),
                tiers,
                skills: t.skills.clone(),
                capacity,
                wrap_up: t.wrap_up_seconds,
                staff,
            });
        }
        Ok(Staffing {
            seed: doc.seed,
            days,
            policy,
            streams,
            teams,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Simulation
// ---------------------------------------------------------------------------------------------

/// Figures for a group of tickets (a tier or a stream).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct QueueStats {
    pub offered: u64,
    pub answered: u64,
    pub abandoned: u64,
    /// Still waiting when the simulation ended.
    pub unserved: u64,
    pub answered_within_target: u64,
    /// Answered within target / (offered − abandoned or unserved before the target).
    pub sla_attainment: f64,
    /// Share of answered tickets that waited at all.
    pub waited_share: f64,
    pub mean_wait_seconds: f64,
    pub p90_wait_seconds: f64,
}

/// Busy time over time on shift.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Occupancy {
    pub staffed_hours: f64,
    pub busy_hours: f64,
    pub occupancy: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TierReport {
    pub tier: Tier,
    #[serde(flatten)]
    pub queue: QueueStats,
    /// Teams whose first tier is this one.
    #[serde(flatten)]
    pub occupancy: Occupancy,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StreamReport {
    pub name: String,
    pub channel: Channel,
    pub tier: Tier,
    pub target_seconds: f64,
    #[serde(flatten)]
    pub queue: QueueStats,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TeamReport {
    pub name: String,
    #[serde(flatten)]
    pub occupancy: Occupancy,
}

/// One hour of a phone stream: what Erlang C predicts against what the simulation saw.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ErlangCheck {
    pub stream: String,
    pub day: String,
    pub hour: u32,
    pub calls_per_hour: f64,
    /// Operators on shift in teams that take this stream's calls.
    pub agents: u32,
    pub traffic_erlangs: f64,
    pub predicted_wait_probability: f64,
    pub predicted_service_level: f64,
    /// Share of this hour's calls answered within the target (`None` without calls).
    pub simulated_service_level: Option<f64>,
    /// Agents Erlang C says reach 80% within the target.
    pub agents_for_80_percent: u32,
}

/// The simulation's results.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimReport {
    pub days: Vec<String>,
    pub seed: u64,
    pub tiers: Vec<TierReport>,
    pub streams: Vec<StreamReport>,
    pub teams: Vec<TeamReport>,
    pub erlang: Vec<ErlangCheck>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Ev {
    Arrival { stream: usize },
    Hour,
    Done { agent: usize, channel: Channel },
    WrapEnd { agent: usize },
    Abandon { item: usize },
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Event {
    at: f64,
    seq: u64,
    ev: Ev,
}

impl Eq for Event {}
impl PartialOrd for Event {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Event {
    /// Reversed, so the max-heap pops the earliest event (ties in insertion order).
    fn cmp(&self, o: &Self) -> Ordering {
        o.at.total_cmp(&self.at).then_with(|| o.seq.cmp(&self.seq))
    }
}

#[derive(Debug, Clone)]
struct Item {
    stream: usize,
    arrival: f64,
    started: Option<f64>,
    abandoned_at: Option<f64>,
}

#[derive(Debug, Clone)]
struct Agent {
    team: usize,
    rank: u32,
    on_shift: bool,
    load: BTreeMap<Channel, u32>,
    wrap_until: Option<f64>,
    last_assigned: Option<f64>,
    idle_since: Option<f64>,
    mark: f64,
    busy: f64,
    staffed: f64,
}

impl Agent {
    fn is_busy(&self) -> bool {
        self.wrap_until.is_some() || self.load.values().any(|l| *l > 0)
    }

    /// Accrues time since the last mark, before any change of state.
    fn account(&mut self, now: f64) {
        let dt = now - self.mark;
        if self.on_shift {
            self.staffed += dt;
            if self.is_busy() {
                self.busy += dt;
            }
        }
        self.mark = now;
    }
}

struct Sim<'a> {
    cfg: &'a Staffing,
    rng: SplitMix64,
    heap: BinaryHeap<Event>,
    seq: u64,
    items: Vec<Item>,
    waiting: Vec<usize>,
    agents: Vec<Agent>,
    base: DateTime<Utc>,
}

impl Sim<'_> {
    fn push(&mut self, at: f64, ev: Ev) {
        self.seq += 1;
        self.heap.push(Event {
            at,
            seq: self.seq,
            ev,
        });
    }

    fn instant(&self, t: f64) -> DateTime<Utc> {
        self.base + Duration::milliseconds((t * 1000.0).round() as i64)
    }

    fn staff_at(&self, team: usize, t: f64) -> u32 {
        let day = (t / DAY).floor() as usize;
        let hour = ((t - day as f64 * DAY) / HOUR).floor() as usize;
        self.cfg.teams[team]
            .staff
            .get(day)
            .map_or(0, |d| d[hour.min(23)])
    }

    fn set_shifts(&mut self, t: f64) {
        for i in 0..self.agents.len() {
            let on = self.agents[i].rank < self.staff_at(self.agents[i].team, t);
            if on != self.agents[i].on_shift {
                self.agents[i].account(t);
                self.agents[i].on_shift = on;
            }
        }
    }

    fn dispatch(&mut self, t: f64) {
        if self.waiting.is_empty() {
            return;
        }
        let now = self.instant(t);
        let ops: Vec<OperatorState> = self
            .agents
            .iter()
            .enumerate()
            .filter(|(_, a)| a.on_shift && a.wrap_until.is_none())
            .map(|(i, a)| {
                let team = &self.cfg.teams[a.team];
                OperatorState {
                    id: Uuid::from_u128(i as u128),
                    tiers: team.tiers.clone(),
                    skills: team.skills.clone(),
                    capacity: team.capacity.clone(),
                    load: a.load.clone(),
                    presence: Presence::Available,
                    on_shift: true,
                    last_assigned_at: a.last_assigned.map(|x| self.instant(x)),
                    idle_since: a.idle_since.map(|x| self.instant(x)),
                }
            })
            .filter(|o| o.capacity.iter().any(|(c, cap)| o.load_of(*c) < *cap))
            .collect();
        if ops.is_empty() {
            return;
        }
        let tickets: Vec<WaitingTicket> = self
            .waiting
            .iter()
            .map(|&i| {
                let it = &self.items[i];
                let s = &self.cfg.streams[it.stream];
                WaitingTicket {
                    id: Uuid::from_u128(i as u128),
                    channel: s.channel,
                    tier: s.tier,
                    skills: s.skills.clone(),
                    priority: s.priority,
                    sla_due: Some(self.instant(it.arrival + s.target)),
                    enqueued_at: self.instant(it.arrival),
                }
            })
            .collect();
        let plan = plan_assignments(&tickets, &ops, now, &self.cfg.policy);
        if plan.is_empty() {
            return;
        }
        for a in &plan {
            let item = a.ticket_id.as_u128() as usize;
            let agent = a.operator_id.as_u128() as usize;
            let stream = &self.cfg.streams[self.items[item].stream];
            let (channel, handling) = (stream.channel, stream.handling);
            self.items[item].started = Some(t);
            let ag = &mut self.agents[agent];
            ag.account(t);
            *ag.load.entry(channel).or_insert(0) += 1;
            ag.last_assigned = Some(t);
            ag.idle_since = None;
            let d = handling.sample(&mut self.rng);
            self.push(t + d, Ev::Done { agent, channel });
        }
        let items = &self.items;
        self.waiting.retain(|i| items[*i].started.is_none());
    }

    fn run(mut self) -> SimReport {
        let horizon = self.cfg.days.len() as f64 * DAY;
        // Arrivals: a Poisson process per stream with piecewise-constant hourly rates.
        for (si, s) in self.cfg.streams.iter().enumerate() {
            for (d, rates) in s.rates.iter().enumerate() {
                for (h, rate) in rates.iter().enumerate() {
                    if *rate <= 0.0 {
                        continue;
                    }
                    let start = d as f64 * DAY + h as f64 * HOUR;
                    let mut t = start;
                    loop {
                        t += self.rng.exponential(HOUR / rate);
                        if t >= start + HOUR {
                            break;
                        }
                        self.seq += 1;
                        self.heap.push(Event {
                            at: t,
                            seq: self.seq,
                            ev: Ev::Arrival { stream: si },
                        });
                    }
                }
            }
        }
        for h in 0..(self.cfg.days.len() * 24) {
            self.push(h as f64 * HOUR, Ev::Hour);
        }
        while let Some(Event { at: t, ev, .. }) = self.heap.pop() {
            if t >= horizon {
                break;
            }
            match ev {
                Ev::Hour => self.set_shifts(t),
                Ev::Arrival { stream } => {
                    let idx = self.items.len();
                    self.items.push(Item {
                        stream,
                        arrival: t,
                        started: None,
                        abandoned_at: None,
                    });
                    self.waiting.push(idx);
                    if let Some(p) = self.cfg.streams[stream].patience {
                        let d = self.rng.exponential(p);
                        self.push(t + d, Ev::Abandon { item: idx });
                    }
                }
                Ev::Abandon { item } => {
                    if self.items[item].started.is_none() {
                        self.items[item].abandoned_at = Some(t);
                        self.waiting.retain(|i| *i != item);
                    }
                }
                Ev::Done { agent, channel } => {
                    let wrap = self.cfg.teams[self.agents[agent].team].wrap_up;
                    let a = &mut self.agents[agent];
                    a.account(t);
                    if let Some(l) = a.load.get_mut(&channel) {
                        *l = l.saturating_sub(1);
                    }
                    if wrap > 0.0 && matches!(channel, Channel::Phone | Channel::Counter) {
                        a.wrap_until = Some(t + wrap);
                        self.push(t + wrap, Ev::WrapEnd { agent });
                    } else if !a.is_busy() {
                        a.idle_since = Some(t);
                    }
                }
                Ev::WrapEnd { agent } => {
                    let a = &mut self.agents[agent];
                    if a.wrap_until.is_some_and(|w| w <= t) {
                        a.account(t);
                        a.wrap_until = None;
                        if !a.is_busy() {
                            a.idle_since = Some(t);
                        }
                    }
                }
            }
            self.dispatch(t);
        }
        for a in &mut self.agents {
            a.account(horizon);
        }
        self.report(horizon)
    }

    fn stats(&self, items: &[&Item], horizon: f64) -> QueueStats {
        let mut s = QueueStats {
            offered: items.len() as u64,
            ..QueueStats::default()
        };
        let mut waits = Vec::new();
        let mut counted = 0u64;
        for it in items {
            let target = self.cfg.streams[it.stream].target;
            match it.started {
                Some(st) => {
                    let w = st - it.arrival;
                    waits.push(w);
                    s.answered += 1;
                    counted += 1;
                    if w <= target {
                        s.answered_within_target += 1;
                    }
                }
                None => {
                    let end = match it.abandoned_at {
                        Some(a) => {
                            s.abandoned += 1;
                            a
                        }
                        None => {
                            s.unserved += 1;
                            horizon
                        }
                    };
                    // Leaving, or the simulation ending, before the target says nothing
                    // about the service level; after it, the ticket missed the target.
                    if end - it.arrival > target {
                        counted += 1;
                    }
                }
            }
        }
        s.sla_attainment = if counted == 0 {
            1.0
        } else {
            s.answered_within_target as f64 / counted as f64
        };
        if !waits.is_empty() {
            s.waited_share =
                waits.iter().filter(|w| **w > 1e-9).count() as f64 / waits.len() as f64;
            s.mean_wait_seconds = waits.iter().sum::<f64>() / waits.len() as f64;
            waits.sort_by(f64::total_cmp);
            let idx = ((waits.len() as f64 * 0.9).ceil() as usize).clamp(1, waits.len()) - 1;
            s.p90_wait_seconds = waits[idx];
        }
        s
    }

    fn occupancy(&self, teams: impl Fn(usize) -> bool) -> Occupancy {
        let (busy, staffed) = self
            .agents
            .iter()
            .filter(|a| teams(a.team))
            .fold((0.0, 0.0), |(b, s), a| (b + a.busy, s + a.staffed));
        Occupancy {
            staffed_hours: staffed / HOUR,
            busy_hours: busy / HOUR,
            occupancy: if staffed > 0.0 { busy / staffed } else { 0.0 },
        }
    }

    fn report(&self, horizon: f64) -> SimReport {
        let cfg = self.cfg;
        let tiers = Tier::ALL
            .iter()
            .filter(|t| {
                cfg.streams.iter().any(|s| s.tier == **t)
                    || cfg.teams.iter().any(|m| m.tiers[0] == **t)
            })
            .map(|t| {
                let items: Vec<&Item> = self
                    .items
                    .iter()
                    .filter(|i| cfg.streams[i.stream].tier == *t)
                    .collect();
                TierReport {
                    tier: *t,
                    queue: self.stats(&items, horizon),
                    occupancy: self.occupancy(|team| cfg.teams[team].tiers[0] == *t),
                }
            })
            .collect();
        let streams = cfg
            .streams
            .iter()
            .enumerate()
            .map(|(si, s)| {
                let items: Vec<&Item> = self.items.iter().filter(|i| i.stream == si).collect();
                StreamReport {
                    name: s.name.clone(),
                    channel: s.channel,
                    tier: s.tier,
                    target_seconds: s.target,
                    queue: self.stats(&items, horizon),
                }
            })
            .collect();
        let teams = cfg
            .teams
            .iter()
            .enumerate()
            .map(|(ti, t)| TeamReport {
                name: t.name.clone(),
                occupancy: self.occupancy(|team| team == ti),
            })
            .collect();
        SimReport {
            days: cfg.days.iter().map(|d| day_name(*d).to_owned()).collect(),
            seed: cfg.seed,
            tiers,
            streams,
            teams,
            erlang: self.erlang_checks(),
        }
    }

    fn erlang_checks(&self) -> Vec<ErlangCheck> {
        let cfg = self.cfg;
        let mut out = Vec::new();
        for (si, s) in cfg
            .streams
            .iter()
            .enumerate()
            .filter(|(_, s)| s.channel == Channel::Phone)
        {
            let aht = s.handling.mean();
            for (d, rates) in s.rates.iter().enumerate() {
                for (h, rate) in rates.iter().enumerate() {
                    if *rate <= 0.0 {
                        continue;
                    }
                    let agents: u32 = cfg
                        .teams
                        .iter()
                        .filter(|t| {
                            t.tiers.contains(&s.tier)
                                && t.capacity.get(&Channel::Phone).is_some_and(|c| *c > 0)
                        })
                        .map(|t| t.staff[d][h])
                        .sum();
                    let traffic = rate * aht / HOUR;
                    let start = d as f64 * DAY + h as f64 * HOUR;
                    let calls: Vec<&Item> = self
                        .items
                        .iter()
                        .filter(|i| {
                            i.stream == si && i.arrival >= start && i.arrival < start + HOUR
                        })
                        .collect();
                    let simulated = (!calls.is_empty()).then(|| {
                        let ok = calls
                            .iter()
                            .filter(|i| i.started.is_some_and(|st| st - i.arrival <= s.target))
                            .count();
                        ok as f64 / calls.len() as f64
                    });
                    out.push(ErlangCheck {
                        stream: s.name.clone(),
                        day: day_name(cfg.days[d]).to_owned(),
                        hour: h as u32,
                        calls_per_hour: *rate,
                        agents,
                        traffic_erlangs: traffic,
                        predicted_wait_probability: erlang_c(agents, traffic),
                        predicted_service_level: service_level(agents, traffic, aht, s.target),
                        simulated_service_level: simulated,
                        agents_for_80_percent: agents_needed(traffic, aht, s.target, 0.8),
                    });
                }
            }
        }
        out
    }
}

fn day_name(d: Weekday) -> &'static str {
    match d {
        Weekday::Mon => "mon",
        Weekday::Tue => "tue",
        Weekday::Wed => "wed",
        Weekday::Thu => "thu",
        Weekday::Fri => "fri",
        Weekday::Sat => "sat",
        Weekday::Sun => "sun",
    }
}

/// Runs the simulation described by a staffing file.
pub fn simulate(cfg: &Staffing) -> SimReport {
    let mut agents = Vec::new();
    for (ti, t) in cfg.teams.iter().enumerate() {
        let most = t
            .staff
            .iter()
            .flat_map(|d| d.iter())
            .copied()
            .max()
            .unwrap_or(0);
        for rank in 0..most {
            agents.push(Agent {
                team: ti,
                rank,
                on_shift: false,
                load: BTreeMap::new(),
                wrap_until: None,
                last_assigned: None,
                idle_since: Some(0.0),
                mark: 0.0,
                busy: 0.0,
                staffed: 0.0,
            });
        }
    }
    let sim = Sim {
        cfg,
        rng: SplitMix64::new(cfg.seed),
        heap: BinaryHeap::new(),
        seq: 0,
        items: Vec::new(),
        waiting: Vec::new(),
        agents,
        // A Monday; only differences between instants matter.
        base: Utc
            .with_ymd_and_hms(2024, 1, 1, 0, 0, 0)
            .single()
            .unwrap_or_default(),
    };
    sim.run()
}

fn fmt_secs(s: f64) -> String {
    if s < 120.0 {
        format!("{s:.0} s")
    } else if s < 2.0 * HOUR {
        format!("{:.1} min", s / 60.0)
    } else {
        format!("{:.1} h", s / HOUR)
    }
}

impl SimReport {
    /// The results as a plain-text table (Italian headings, for supervisors).
    pub fn render_table(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "Simulazione: giorni {} (seme {})",
            self.days.join(", "),
            self.seed
        );
        let _ = writeln!(o);
        let _ = writeln!(
            o,
            "{:<22} {:>7} {:>7} {:>7} {:>7} {:>9} {:>10} {:>10} {:>9}",
            "coda",
            "arrivi",
            "gestiti",
            "abband.",
            "inevasi",
            "SLA",
            "attesa m.",
            "attesa p90",
            "occupaz."
        );
        for t in &self.tiers {
            let q = &t.queue;
            let _ = writeln!(
                o,
                "{:<22} {:>7} {:>7} {:>7} {:>7} {:>8.1}% {:>10} {:>10} {:>8.1}%",
                format!("livello {}", t.tier),
                q.offered,
                q.answered,
                q.abandoned,
                q.unserved,
                q.sla_attainment * 100.0,
                fmt_secs(q.mean_wait_seconds),
                fmt_secs(q.p90_wait_seconds),
                t.occupancy.occupancy * 100.0
            );
        }
        for s in &self.streams {
            let q = &s.queue;
            let _ = writeln!(
                o,
                "{:<22} {:>7} {:>7} {:>7} {:>7} {:>8.1}% {:>10} {:>10} {:>9}",
                format!("  {} ({})", s.name, s.channel),
                q.offered,
                q.answered,
                q.abandoned,
                q.unserved,
                q.sla_attainment * 100.0,
                fmt_secs(q.mean_wait_seconds),
                fmt_secs(q.p90_wait_seconds),
                ""
            );
        }
        let _ = writeln!(o);
        for t in &self.teams {
            let _ = writeln!(
                o,
                "squadra {:<16} ore in turno {:>7.1}  ore occupate {:>7.1}  occupazione {:>5.1}%",
                t.name,
                t.occupancy.staffed_hours,
                t.occupancy.busy_hours,
                t.occupancy.occupancy * 100.0
            );
        }
        if !self.erlang.is_empty() {
            let _ = writeln!(o);
            let _ = writeln!(
                o,
                "Telefono, confronto con Erlang C (livello di servizio entro l'obiettivo):"
            );
            let _ = writeln!(
                o,
                "{:<14} {:<4} {:>4} {:>9} {:>9} {:>9} {:>11} {:>11} {:>9}",
                "flusso",
                "g.",
                "ora",
                "chiam./h",
                "operat.",
                "erlang",
                "previsto",
                "simulato",
                "per 80%"
            );
            for e in &self.erlang {
                let _ = writeln!(
                    o,
                    "{:<14} {:<4} {:>4} {:>9.1} {:>9} {:>9.2} {:>10.1}% {:>11} {:>9}",
                    e.stream,
                    e.day,
                    e.hour,
                    e.calls_per_hour,
                    e.agents,
                    e.traffic_erlangs,
                    e.predicted_service_level * 100.0,
                    e.simulated_service_level
                        .map_or_else(|| "-".to_owned(), |v| format!("{:.1}%", v * 100.0)),
                    e.agents_for_80_percent
                );
            }
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erlang_formulas_match_hand_computed_cases() {
        // M/M/1: a call waits with probability ρ.
        assert!((erlang_c(1, 0.5) - 0.5).abs() < 1e-12);
        // M/M/2 with 1 erlang: P0 = 1/3 and C = 1/3.
        assert!((erlang_c(2, 1.0) - 1.0 / 3.0).abs() < 1e-12);
        assert!((erlang_b(2, 1.0) - 0.2).abs() < 1e-12);
        assert_eq!(erlang_c(3, 3.0), 1.0, "unstable queue: everybody waits");
        assert_eq!(erlang_c(3, 0.0), 0.0);
        // SL = 1 − C·e^(−(N−A)·t/AHT): M/M/1, ρ = 0.5, AHT 60 s, t = 60 s → 1 − 0.5/e.
        let sl = service_level(1, 0.5, 60.0, 60.0);
        assert!((sl - (1.0 - 0.5 * (-0.5f64).exp())).abs() < 1e-12, "{sl}");
        assert!((average_speed_of_answer(1, 0.5, 60.0) - 60.0).abs() < 1e-9);
        // Enough agents for 80% in 20 s at 10 erlangs, and one fewer is not enough.
        let n = agents_needed(10.0, 180.0, 20.0, 0.8);
        assert!(service_level(n, 10.0, 180.0, 20.0) >= 0.8);
        assert!(service_level(n - 1, 10.0, 180.0, 20.0) < 0.8);
        assert!(n > 10 && n < 20, "{n}");
    }

    fn mmc(agents: u32, per_hour: f64, aht: f64, days: usize) -> String {
        let day_list: Vec<String> = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"][..days]
            .iter()
            .map(|d| format!("\"{d}\""))
            .collect();
        format!(
            r#"
days = [{}]
seed = 11
[[streams]]
name = "calls"
channel = "phone"
tier = "front_office"
target_seconds = 20
handling = {{ distribution = "exponential", mean_seconds = {aht} }}
arrivals = [{{ from = 0, to = 24, per_hour = {per_hour} }}]
[[teams]]
name = "agents"
tiers = ["front_office"]
capacity = {{ phone = 1 }}
staff = [{{ from = 0, to = 24, agents = {agents} }}]
"#,
            day_list.join(", ")
        )
    }

    #[test]
    fn a_simulated_mmc_phone_queue_agrees_with_erlang_c() {
        // 100 calls/h, 3 min each: 5 erlangs on 7 agents, a week around the clock, averaged
        // over four seeds (a week's mean wait alone still varies by about ±10%).
        let cfg = Staffing::from_toml(&mmc(7, 100.0, 180.0, 7)).unwrap();
        let runs: Vec<SimReport> = (1..=4)
            .map(|seed| {
                simulate(&Staffing {
                    seed,
                    ..cfg.clone()
                })
            })
            .collect();
        let mean =
            |f: &dyn Fn(&SimReport) -> f64| runs.iter().map(f).sum::<f64>() / runs.len() as f64;
        for r in &runs {
            let q = &r.streams[0].queue;
            assert!(
                (15_000..18_600).contains(&q.offered),
                "about 16,800 calls a week: {}",
                q.offered
            );
            assert_eq!(q.abandoned, 0);
        }
        let waited = mean(&|r| r.streams[0].queue.waited_share);
        let sl = mean(&|r| r.streams[0].queue.sla_attainment);
        let asa = mean(&|r| r.streams[0].queue.mean_wait_seconds);
        let occ = mean(&|r| r.teams[0].occupancy.occupancy);
        let predicted_wait = erlang_c(7, 5.0);
        let predicted_sl = service_level(7, 5.0, 180.0, 20.0);
        let predicted_asa = average_speed_of_answer(7, 5.0, 180.0);
        assert!(
            (waited - predicted_wait).abs() < 0.02,
            "P(wait): simulated {waited} vs Erlang C {predicted_wait}"
        );
        assert!(
            (sl - predicted_sl).abs() < 0.02,
            "SL: simulated {sl} vs Erlang C {predicted_sl}"
        );
        assert!(
            (asa - predicted_asa).abs() < 0.1 * predicted_asa,
            "ASA: simulated {asa} vs Erlang C {predicted_asa}"
        );
        // Occupancy of an M/M/c queue is A/N.
        assert!((occ - 5.0 / 7.0).abs() < 0.02, "occupancy {occ}");
        let check = &runs[0].erlang[0];
        assert_eq!((check.agents, check.hour), (7, 0));
        assert!((check.traffic_erlangs - 5.0).abs() < 1e-9);
        assert!((check.predicted_service_level - predicted_sl).abs() < 1e-12);
    }

    #[test]
    fn more_operators_mean_shorter_waits() {
        let few = simulate(&Staffing::from_toml(&mmc(6, 100.0, 180.0, 2)).unwrap());
        let many = simulate(&Staffing::from_toml(&mmc(9, 100.0, 180.0, 2)).unwrap());
        let (f, m) = (&few.tiers[0].queue, &many.tiers[0].queue);
        assert!(m.mean_wait_seconds < f.mean_wait_seconds);
        assert!(m.sla_attainment > f.sla_attainment);
        assert!(many.tiers[0].occupancy.occupancy < few.tiers[0].occupancy.occupancy);
    }

    #[test]
    fn the_example_staffing_file_runs_and_is_reproducible() {
        let text = include_str!("../../../config/staffing.example.toml");
        let cfg = Staffing::from_toml(text).unwrap();
        assert_eq!(cfg.days.len(), 5);
        let r = simulate(&cfg);
        assert_eq!(r, simulate(&cfg), "same seed, same figures");
        assert_eq!(r.tiers.len(), 2);
        for t in &r.tiers {
            assert!(t.queue.offered > 0, "{:?}", t.tier);
            assert!((0.0..=1.0).contains(&t.queue.sla_attainment));
            assert!((0.0..=1.0).contains(&t.occupancy.occupancy) && t.occupancy.occupancy > 0.0);
            assert_eq!(
                t.queue.offered,
                t.queue.answered + t.queue.abandoned + t.queue.unserved
            );
        }
        let phone = r
            .streams
            .iter()
            .find(|s| s.channel == Channel::Phone)
            .unwrap();
        assert!(
            phone.queue.abandoned > 0,
            "callers with patience sometimes hang up"
        );
        // Monday morning has its own staffing and arrival rate.
        let mon9 = r
            .erlang
            .iter()
            .find(|e| e.day == "mon" && e.hour == 9)
            .unwrap();
        assert_eq!(
            (mon9.agents, mon9.calls_per_hour),
            (8, 70.0),
            "the counter team takes no calls"
        );
        let table = r.render_table();
        assert!(
            table.contains("livello front_office") && table.contains("Erlang C"),
            "{table}"
        );
        let json = serde_json::to_value(&r).unwrap();
        assert!(json["tiers"][0]["sla_attainment"].is_number());
    }

    #[test]
    fn nobody_on_shift_leaves_everything_unserved() {
        let text = mmc(0, 50.0, 60.0, 1);
        let r = simulate(&Staffing::from_toml(&text).unwrap());
        let q = &r.streams[0].queue;
        assert_eq!(q.answered, 0);
        assert_eq!(q.unserved, q.offered);
        assert!(
            q.sla_attainment < 0.05,
            "only calls in the last 20 s are excused"
        );
    }

    #[test]
    fn staffing_errors_name_the_place_and_field() {
        let good = mmc(2, 10.0, 60.0, 1);
        for (from, to, want) in [
            (
                "days = [\"mon\"]",
                "days = [\"someday\"]",
                "field 'days': 'someday' is not a day",
            ),
            (
                "channel = \"phone\"",
                "channel = \"fax\"",
                "stream 'calls', field 'channel'",
            ),
            (
                "target_seconds = 20",
                "target_seconds = 20\ntarget_minutes = 1",
                "stream 'calls', field 'target'",
            ),
            (
                "from = 0, to = 24, per_hour",
                "from = 5, to = 3, per_hour",
                "stream 'calls', field 'arrivals[1]'",
            ),
            (
                "agents = 2",
                "agents = 2, days = [\"xyz\"]",
                "team 'agents', field 'staff[1]'",
            ),
            (
                "capacity = { phone = 1 }",
                "capacity = { phone = 1000 }",
                "team 'agents', field 'capacity.phone'",
            ),
            (
                "mean_seconds = 60",
                "mean_seconds = -1",
                "stream 'calls', field 'handling'",
            ),
        ] {
            assert!(good.contains(from), "{from}");
            let err = Staffing::from_toml(&good.replace(from, to))
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "want {want:?} in {err:?}");
        }
    }
}
