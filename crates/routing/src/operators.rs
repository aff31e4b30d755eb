//! Operators, waiting tickets, overflow and the eligibility rule that every assignment obeys.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use sportello_domain::slug_enum;
use sportello_domain::taxonomy::validate_slug;
use sportello_domain::{Channel, Priority, Tier};
use uuid::Uuid;

/// Highest skill level; levels above it count as this.
pub const MAX_LEVEL: u8 = 5;
/// The most items of one channel an operator may hold at once.
pub const MAX_CAPACITY: u32 = 100;

slug_enum! {
    /// An operator's presence, set by the operator or derived from activity.
    pub enum Presence as "presence" {
        Available => "available",
        Busy => "busy",
        WrapUp => "wrap_up",
        Break => "break",
        Offline => "offline",
    }
}

impl Presence {
    /// Only an available operator receives new work.
    pub fn accepts_work(self) -> bool {
        self == Presence::Available
    }

    /// Going on break or offline hands the not-yet-started work back to the queue.
    pub fn releases_unstarted_work(self) -> bool {
        matches!(self, Presence::Break | Presence::Offline)
    }
}

slug_enum! {
    /// How to choose among eligible operators.
    pub enum Strategy as "strategy" {
        /// The operator idle for longest (then the one assigned least recently).
        LongestIdle => "longest_idle",
        /// The lowest share of capacity in use on the ticket's channel.
        LeastLoaded => "least_loaded",
        /// Turn by turn: the operator assigned least recently.
        RoundRobin => "round_robin",
    }
}

impl Default for Strategy {
    /// Longest idle spreads work most evenly when operators also work other channels.
    #[allow(clippy::derivable_impls)]
    fn default() -> Self {
        Strategy::LongestIdle
    }
}

/// What an operator can do, as the `PUT /users/{id}/routing` body carries it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutingProfile {
    pub tiers: Vec<Tier>,
    #[serde(default)]
    pub skills: BTreeMap<String, u8>,
    #[serde(default)]
    pub capacity: BTreeMap<Channel, u32>,
}

/// A routing profile that cannot be accepted; names the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ProfileError {
    pub field: String,
    pub message: String,
}

impl RoutingProfile {
    /// Checks skill names and levels (1–5), capacities (0–100) and duplicate tiers.
    pub fn validate(&self) -> Result<(), ProfileError> {
        let err = |field: String, message: String| Err(ProfileError { field, message });
        for (i, t) in self.tiers.iter().enumerate() {
            if self.tiers[..i].contains(t) {
                return err(format!("tiers[{i}]"), format!("tier '{t}' is listed twice"));
            }
        }
        for (skill, level) in &self.skills {
            if let Err(e) = validate_slug(skill) {
                return err(format!("skills.{skill}"), e.to_string());
            }
            if !(1..=MAX_LEVEL).contains(level) {
                return err(
                    format!("skills.{skill}"),
                    format!("level {level} is out of range: skill levels go from 1 to 5"),
                );
            }
        }
        for (channel, cap) in &self.capacity {
            if *cap > MAX_CAPACITY {
                return err(
                    format!("capacity.{channel}"),
                    format!("{cap} is more than the maximum of {MAX_CAPACITY}"),
                );
            }
        }
        Ok(())
    }
}

/// An operator as routing sees it at one instant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorState {
    pub id: Uuid,
    pub tiers: Vec<Tier>,
    /// Skill → level 1..=5.
    pub skills: BTreeMap<String, u8>,
    /// Items of each channel the operator may hold at once; a missing channel means none.
    pub capacity: BTreeMap<Channel, u32>,
    /// Items of each channel the operator holds now.
    pub load: BTreeMap<Channel, u32>,
    pub presence: Presence,
    /// Whether the instant falls in one of the operator's shifts (no shifts = always).
    pub on_shift: bool,
    pub last_assigned_at: Option<DateTime<Utc>>,
    /// Since when the operator has held no work (`None` while working).
    pub idle_since: Option<DateTime<Utc>>,
}

impl OperatorState {
    /// An available, on-shift operator with the given profile and no work.
    pub fn new(id: Uuid, profile: RoutingProfile) -> Self {
        OperatorState {
            id,
            tiers: profile.tiers,
            skills: profile.skills,
            capacity: profile.capacity,
            load: BTreeMap::new(),
            presence: Presence::Available,
            on_shift: true,
            last_assigned_at: None,
            idle_since: None,
        }
    }

    pub fn capacity_of(&self, channel: Channel) -> u32 {
        self.capacity.get(&channel).copied().unwrap_or(0)
    }

    pub fn load_of(&self, channel: Channel) -> u32 {
        self.load.get(&channel).copied().unwrap_or(0)
    }

    /// The level of a skill (0 when the operator lacks it), capped at 5.
    pub fn level(&self, skill: &str) -> u8 {
        self.skills.get(skill).copied().unwrap_or(0).min(MAX_LEVEL)
    }
}

/// A ticket waiting for an operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitingTicket {
    pub id: Uuid,
    pub channel: Channel,
    pub tier: Tier,
    /// Skill → minimum level.
    pub skills: BTreeMap<String, u8>,
    pub priority: Priority,
    /// The most urgent running SLA deadline, if any.
    pub sla_due: Option<DateTime<Utc>>,
    /// When the ticket (re-)entered the queue; overflow counts from here.
    pub enqueued_at: DateTime<Utc>,
}

/// How a requirement widens at an overflow step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "relax", rename_all = "snake_case")]
pub enum Relax {
    /// Every required skill level drops by this much (never below 1: the skill stays
    /// required).
    LowerSkillLevels { by: u8 },
    /// Skills are no longer required.
    DropSkills,
    /// Operators of any tier may take the ticket.
    AllowOtherTier,
}

/// One overflow step: after the ticket has waited `after`, relax its requirement. Steps
/// may be limited to some channels or tiers (empty = all), since a caller waits seconds and
/// an email hours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverflowStep {
    pub after: Duration,
    pub relax: Relax,
    pub channels: Vec<Channel>,
    pub tiers: Vec<Tier>,
}

impl OverflowStep {
    fn concerns(&self, channel: Channel, tier: Tier) -> bool {
        (self.channels.is_empty() || self.channels.contains(&channel))
            && (self.tiers.is_empty() || self.tiers.contains(&tier))
    }
}

/// The overflow steps, sorted by waiting time; they apply cumulatively.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OverflowPolicy {
    steps: Vec<OverflowStep>,
}

/// What a ticket needs of an operator right now, after overflow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Requirement {
    pub channel: Channel,
    /// Acceptable tiers (every tier once `allow_other_tier` applied).
    pub tiers: Vec<Tier>,
    /// Skill → minimum level (1..=5).
    pub skills: BTreeMap<String, u8>,
    /// How many overflow steps applied.
    pub stage: usize,
}

impl OverflowPolicy {
    /// Sorts the steps by waiting time.
    pub fn new(mut steps: Vec<OverflowStep>) -> Self {
        steps.sort_by_key(|s| s.after);
        OverflowPolicy { steps }
    }

    pub fn steps(&self) -> &[OverflowStep] {
        &self.steps
    }

    fn waited(ticket: &WaitingTicket, now: DateTime<Utc>) -> Duration {
        (now - ticket.enqueued_at).max(Duration::zero())
    }

    /// The requirement of a ticket at `now`.
    pub fn requirement(&self, ticket: &WaitingTicket, now: DateTime<Utc>) -> Requirement {
        let waited = Self::waited(ticket, now);
        let mut lower: u32 = 0;
        let mut drop_skills = false;
        let mut any_tier = false;
        let mut stage = 0;
        for s in self
            .steps
            .iter()
            .filter(|s| s.after <= waited && s.concerns(ticket.channel, ticket.tier))
        {
            stage += 1;
            match s.relax {
                Relax::LowerSkillLevels { by } => lower += u32::from(by),
                Relax::DropSkills => drop_skills = true,
                Relax::AllowOtherTier => any_tier = true,
            }
        }
        let skills = if drop_skills {
            BTreeMap::new()
        } else {
            ticket
                .skills
                .iter()
                .filter(|(_, l)| **l > 0)
                .map(|(k, l)| {
                    let l = u32::from((*l).min(MAX_LEVEL));
                    (k.clone(), l.saturating_sub(lower).max(1) as u8)
                })
                .collect()
        };
        Requirement {
            channel: ticket.channel,
            tiers: if any_tier {
                Tier::ALL.to_vec()
            } else {
                vec![ticket.tier]
            },
            skills,
            stage,
        }
    }

    /// When the ticket's requirement next widens, if it still can.
    pub fn next_step_at(
        &self,
        ticket: &WaitingTicket,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let waited = Self::waited(ticket, now);
        self.steps
            .iter()
            .filter(|s| s.after > waited && s.concerns(ticket.channel, ticket.tier))
            .map(|s| ticket.enqueued_at + s.after)
            .min()
    }
}

/// Strategy and overflow: everything assignment needs besides the operators and tickets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AssignmentPolicy {
    pub strategy: Strategy,
    pub overflow: OverflowPolicy,
}

/// Why an operator cannot take a ticket (shown to supervisors, in Italian via `Display`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum Ineligible {
    OffShift,
    NotAvailable {
        presence: Presence,
    },
    WrongTier {
        accepted: Vec<Tier>,
    },
    MissingSkill {
        skill: String,
        required: u8,
        has: u8,
    },
    NoCapacity {
        channel: Channel,
    },
    AtCapacity {
        channel: Channel,
        load: u32,
        capacity: u32,
    },
}

impl fmt::Display for Ineligible {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ineligible::OffShift => f.write_str("fuori turno"),
            Ineligible::NotAvailable { presence } => {
                write!(f, "non disponibile (stato: {presence})")
            }
            Ineligible::WrongTier { accepted } => {
                let t: Vec<&str> = accepted.iter().map(|t| t.as_str()).collect();
                write!(f, "non lavora il livello richiesto ({})", t.join(", "))
            }
            Ineligible::MissingSkill {
                skill,
                required,
                has: 0,
            } => {
                write!(
                    f,
                    "manca la competenza '{skill}' (livello richiesto {required})"
                )
            }
            Ineligible::MissingSkill {
                skill,
                required,
                has,
            } => {
                write!(
                    f,
                    "competenza '{skill}' al livello {has}, richiesto {required}"
                )
            }
            Ineligible::NoCapacity { channel } => write!(f, "non gestisce il canale '{channel}'"),
            Ineligible::AtCapacity {
                channel,
                load,
                capacity,
            } => {
                write!(
                    f,
                    "capacità piena sul canale '{channel}' ({load}/{capacity})"
                )
            }
        }
    }
}

/// Whether `op` may take `ticket` at `now`: on shift, available, serving an accepted tier,
/// with the skills (after overflow) and free capacity on the ticket's channel. The first
/// failed condition is returned, in that order.
pub fn eligible(
    op: &OperatorState,
    ticket: &WaitingTicket,
    now: DateTime<Utc>,
    overflow: &OverflowPolicy,
) -> Result<(), Ineligible> {
    eligible_for(op, &overflow.requirement(ticket, now))
}

/// [`eligible`] against an already computed requirement.
pub fn eligible_for(op: &OperatorState, req: &Requirement) -> Result<(), Ineligible> {
    if !op.on_shift {
        return Err(Ineligible::OffShift);
    }
    if !op.presence.accepts_work() {
        return Err(Ineligible::NotAvailable {
            presence: op.presence,
        });
    }
    if !req.tiers.iter().any(|t| op.tiers.contains(t)) {
        return Err(Ineligible::WrongTier {
            accepted: req.tiers.clone(),
        });
    }
    for (skill, required) in &req.skills {
        let has = op.level(skill);
        if has < *required {
            return Err(Ineligible::MissingSkill {
                skill: skill.clone(),
                required: *required,
                has,
            });
        }
    }
    let capacity = op.capacity_of(req.channel);
    if capacity == 0 {
        return Err(Ineligible::NoCapacity {
            channel: req.channel,
        });
    }
    let load = op.load_of(req.channel);
    if load >= capacity {
        return Err(Ineligible::AtCapacity {
            channel: req.channel,
            load,
            capacity,
        });
    }
    Ok(())
}

/// The `[assignment]` table as written in TOML.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssignmentDoc {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overflow: Vec<OverflowDoc>,
}

/// One `[[assignment.overflow]]` step as written in TOML.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverflowDoc {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_seconds: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_minutes: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_hours: Option<i64>,
    pub relax: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tiers: Option<Vec<String>>,
}

/// An `[assignment]` table that cannot be accepted; names the step and field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssignmentConfigError {
    #[error("assignment settings are not valid TOML: {0}")]
    Syntax(String),
    #[error("assignment, field 'strategy': {0}")]
    Strategy(String),
    #[error("overflow step #{step}, field '{field}': {message}")]
    Step {
        step: usize,
        field: String,
        message: String,
    },
}

#[derive(Deserialize)]
struct AssignmentOnly {
    #[serde(default)]
    assignment: Option<AssignmentDoc>,
}

impl AssignmentPolicy {
    /// Reads the `[assignment]` table of a TOML document (absent = longest idle, no overflow).
    pub fn from_toml(text: &str) -> Result<AssignmentPolicy, AssignmentConfigError> {
        let doc: AssignmentOnly =
            toml::from_str(text).map_err(|e| AssignmentConfigError::Syntax(e.to_string()))?;
        AssignmentPolicy::from_doc(&doc.assignment.unwrap_or_default())
    }

    /// Validates an `[assignment]` table.
    pub fn from_doc(doc: &AssignmentDoc) -> Result<AssignmentPolicy, AssignmentConfigError> {
        let strategy = match &doc.strategy {
            None => Strategy::default(),
            Some(s) => Strategy::parse(s.trim())
                .map_err(|e| AssignmentConfigError::Strategy(e.to_string()))?,
        };
        let mut steps = Vec::new();
        for (i, d) in doc.overflow.iter().enumerate() {
            let step = i + 1;
            let bad = |field: &str, message: String| AssignmentConfigError::Step {
                step,
                field: field.to_owned(),
                message,
            };
            let afters = [
                (d.after_seconds, 1),
                (d.after_minutes, 60),
                (d.after_hours, 3600),
            ];
            let given: Vec<(i64, i64)> = afters
                .iter()
                .filter_map(|(v, m)| v.map(|v| (v, *m)))
                .collect();
            let after = match given.as_slice() {
                [(v, m)] if (0..=366 * 86_400 / m).contains(v) => Duration::seconds(v * m),
                [(v, _)] => {
                    return Err(bad(
                        "after",
                        format!("{v} is out of range (0 up to a year)"),
                    ));
                }
                _ => {
                    return Err(bad(
                        "after",
                        "give exactly one of after_seconds, after_minutes, after_hours".to_owned(),
                    ));
                }
            };
            let relax = match d.relax.trim() {
                "lower_skill_levels" => match d.by {
                    Some(by) if (1..=4).contains(&by) => Relax::LowerSkillLevels { by: by as u8 },
                    Some(by) => {
                        return Err(bad(
                            "by",
                            format!("{by} is out of range: lower levels by 1 to 4"),
                        ));
                    }
                    None => {
                        return Err(bad(
                            "by",
                            "lower_skill_levels needs 'by' (1 to 4)".to_owned(),
                        ));
                    }
                },
                "drop_skills" | "allow_other_tier" if d.by.is_some() => {
                    return Err(bad(
                        "by",
                        format!("'by' only goes with lower_skill_levels, not {}", d.relax),
                    ));
                }
                "drop_skills" => Relax::DropSkills,
                "allow_other_tier" => Relax::AllowOtherTier,
                other => {
                    return Err(bad(
                        "relax",
                        format!(
                            "unknown relaxation '{other}' (expected one of: lower_skill_levels, drop_skills, allow_other_tier)"
                        ),
                    ));
                }
            };
            let mut channels = Vec::new();
            for c in d.channels.iter().flatten() {
                channels
                    .push(Channel::parse(c.trim()).map_err(|e| bad("channels", e.to_string()))?);
            }
            let mut tiers = Vec::new();
            for t in d.tiers.iter().flatten() {
                tiers.push(Tier::parse(t.trim()).map_err(|e| bad("tiers", e.to_string()))?);
            }
            steps.push(OverflowStep {
                after,
                relax,
                channels,
                tiers,
            });
        }
        Ok(AssignmentPolicy {
            strategy,
            overflow: OverflowPolicy::new(steps),
        })
    }

    /// The `[assignment]` table form.
    pub fn to_doc(&self) -> AssignmentDoc {
        let list = |v: Vec<String>| (!v.is_empty()).then_some(v);
        AssignmentDoc {
            strategy: Some(self.strategy.as_str().to_owned()),
            overflow: self
                .overflow
                .steps
                .iter()
                .map(|s| {
                    let secs = s.after.num_seconds();
                    let (after_seconds, after_minutes, after_hours) =
                        if secs % 3600 == 0 && secs > 0 {
                            (None, None, Some(secs / 3600))
                        } else if secs % 60 == 0 && secs > 0 {
                            (None, Some(secs / 60), None)
                        } else {
                            (Some(secs), None, None)
                        };
                    let (relax, by) = match s.relax {
                        Relax::LowerSkillLevels { by } => {
                            ("lower_skill_levels", Some(i64::from(by)))
                        }
                        Relax::DropSkills => ("drop_skills", None),
                        Relax::AllowOtherTier => ("allow_other_tier", None),
                    };
                    OverflowDoc {
                        after_seconds,
                        after_minutes,
                        after_hours,
                        relax: relax.to_owned(),
                        by,
                        channels: list(s.channels.iter().map(|c| c.as_str().to_owned()).collect()),
                        tiers: list(s.tiers.iter().map(|t| t.as_str().to_owned()).collect()),
                    }
                })
                .collect(),
        }
    }
}
