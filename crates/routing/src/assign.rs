//! Choosing operators: the indexed planner, single decisions and waiting reasons.
//!
//! The index keeps one bitset per tier, per channel (operators with free capacity there) and
//! per skill and level (operators at that level or above). A decision ANDs a handful of
//! bitsets of `operators / 64` words and then ranks only the surviving candidates, so it
//! costs microseconds at 500 operators. While planning, free capacity only shrinks, so a
//! requirement that found nobody is remembered and every later ticket with the same
//! requirement is skipped without looking at operators again.

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sportello_domain::{Channel, Tier};
use uuid::Uuid;

use crate::operators::{
    AssignmentPolicy, MAX_LEVEL, OperatorState, Presence, Requirement, Strategy, WaitingTicket,
    eligible,
};

const CHANNELS: usize = Channel::ALL.len();
const TIERS: usize = Tier::ALL.len();

fn ch_idx(c: Channel) -> usize {
    Channel::ALL.iter().position(|x| *x == c).unwrap_or(0)
}

fn tier_idx(t: Tier) -> usize {
    Tier::ALL.iter().position(|x| *x == t).unwrap_or(0)
}

/// A fixed-size set of operator slots.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Bits(Vec<u64>);

impl Bits {
    fn new(words: usize) -> Self {
        Bits(vec![0; words])
    }
    fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
    fn clear(&mut self, i: usize) {
        self.0[i / 64] &= !(1 << (i % 64));
    }
    fn and(&mut self, o: &Bits) {
        for (a, b) in self.0.iter_mut().zip(&o.0) {
            *a &= *b;
        }
    }
    fn or(&mut self, o: &Bits) {
        for (a, b) in self.0.iter_mut().zip(&o.0) {
            *a |= *b;
        }
    }
    fn is_empty(&self) -> bool {
        self.0.iter().all(|w| *w == 0)
    }
    fn count(&self) -> usize {
        self.0.iter().map(|w| w.count_ones() as usize).sum()
    }
    fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.0.iter().enumerate().flat_map(|(wi, w)| {
            let mut w = *w;
            std::iter::from_fn(move || {
                if w == 0 {
                    return None;
                }
                let b = w.trailing_zeros() as usize;
                w &= w - 1;
                Some(wi * 64 + b)
            })
        })
    }
}

#[derive(Debug, Clone)]
struct Slot {
    id: Uuid,
    cap: [u32; CHANNELS],
    load: [u32; CHANNELS],
    last_assigned_at: Option<DateTime<Utc>>,
    idle_since: Option<DateTime<Utc>>,
    presence: Presence,
    /// When, in this round, the operator last received a ticket (0 = not yet): assignments
    /// of one round share the same `now`, so this keeps round robin turning within a round.
    turn: u64,
}

/// A requirement with skills interned; `None` skills mean a skill nobody has.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Compiled {
    channel: usize,
    tiers: u8,
    skills: Option<Vec<(u16, u8)>>,
}

/// One assignment decided by the planner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Assignment {
    pub ticket_id: Uuid,
    pub operator_id: Uuid,
    /// How many overflow steps had applied (0 = the ticket's own requirement).
    pub overflow_stage: usize,
}

/// Why a ticket is still waiting, for the dashboard (Italian via `Display`).
///
/// Operators are filtered in this order — tier, skills, channel capacity configured, shift,
/// presence, free capacity — and the reason names the first filter that left nobody.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum WaitingReason {
    /// No operator is configured at all.
    NoOperators,
    /// Nobody serves the accepted tiers.
    NoOneServesTier { tiers: Vec<Tier> },
    /// Nobody (of those tiers) has these skills at these levels; when each skill exists on
    /// its own but never together, all of them are listed.
    NoOneWithSkills { skills: BTreeMap<String, u8> },
    /// Nobody competent handles this channel (capacity 0).
    NoOneHandlesChannel { channel: Channel },
    /// Competent operators exist, but none is on shift now.
    NoOneOnShift,
    /// Competent operators are on shift but none is available; counts by presence.
    NoOneAvailable {
        busy: usize,
        wrap_up: usize,
        on_break: usize,
        offline: usize,
    },
    /// Every competent, available operator is at capacity on this channel.
    EveryoneAtCapacity { channel: Channel },
    /// Someone could take it: it goes at the next assignment round (more urgent tickets may
    /// have been served first).
    Assignable,
}

impl fmt::Display for WaitingReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WaitingReason::NoOperators => f.write_str("nessun operatore configurato"),
            WaitingReason::NoOneServesTier { tiers } => {
                let t: Vec<&str> = tiers.iter().map(|t| t.as_str()).collect();
                write!(f, "nessun operatore lavora il livello {}", t.join(", "))
            }
            WaitingReason::NoOneWithSkills { skills } => {
                let s: Vec<String> = skills.iter().map(|(k, l)| format!("{k} ≥ {l}")).collect();
                write!(f, "nessun operatore con le competenze: {}", s.join(", "))
            }
            WaitingReason::NoOneHandlesChannel { channel } => {
                write!(
                    f,
                    "nessun operatore competente gestisce il canale '{channel}'"
                )
            }
            WaitingReason::NoOneOnShift => f.write_str("nessun operatore competente è in turno"),
            WaitingReason::NoOneAvailable {
                busy,
                wrap_up,
                on_break,
                offline,
            } => write!(
                f,
                "nessun operatore competente disponibile (occupati {busy}, in chiusura {wrap_up}, in pausa {on_break}, offline {offline})"
            ),
            WaitingReason::EveryoneAtCapacity { channel } => {
                write!(
                    f,
                    "tutti gli operatori competenti sono al completo sul canale '{channel}'"
                )
            }
            WaitingReason::Assignable => f.write_str("in attesa della prossima assegnazione"),
        }
    }
}

/// Operators indexed for fast decisions. Build it once per planning round; assignments made
/// through it update loads so capacity is never exceeded within the round.
#[derive(Debug, Clone)]
pub struct AssignmentIndex {
    policy: AssignmentPolicy,
    slots: Vec<Slot>,
    by_id: HashMap<Uuid, usize>,
    words: usize,
    on_shift: Bits,
    available: Bits,
    tiers: [Bits; TIERS],
    handles: [Bits; CHANNELS],
    free: [Bits; CHANNELS],
    skill_ids: HashMap<String, u16>,
    /// `skills[id][l - 1]`: operators with that skill at level `l` or above.
    skills: Vec<[Bits; MAX_LEVEL as usize]>,
    /// Requirements that found nobody since the last capacity increase.
    exhausted: HashSet<Compiled>,
    turns: u64,
}

/// Orders tickets by urgency: earliest SLA deadline first (none last), then priority, then
/// the longest wait, then id for determinism.
fn urgency(t: &WaitingTicket) -> impl Ord {
    (
        t.sla_due.is_none(),
        t.sla_due,
        Reverse(t.priority),
        t.enqueued_at,
        t.id,
    )
}

impl AssignmentIndex {
    /// Indexes the operators (a repeated id keeps its first entry).
    pub fn new(operators: &[OperatorState], policy: &AssignmentPolicy) -> Self {
        let mut by_id = HashMap::with_capacity(operators.len());
        let mut unique = Vec::with_capacity(operators.len());
        for op in operators {
            if let std::collections::hash_map::Entry::Vacant(e) = by_id.entry(op.id) {
                e.insert(unique.len());
                unique.push(op);
            }
        }
        let words = unique.len().div_ceil(64).max(1);
        let empty = Bits::new(words);
        let mut ix = AssignmentIndex {
            policy: policy.clone(),
            slots: Vec::with_capacity(unique.len()),
            by_id,
            words,
            on_shift: empty.clone(),
            available: empty.clone(),
            tiers: std::array::from_fn(|_| empty.clone()),
            handles: std::array::from_fn(|_| empty.clone()),
            free: std::array::from_fn(|_| empty.clone()),
            skill_ids: HashMap::new(),
            skills: Vec::new(),
            exhausted: HashSet::new(),
            turns: 0,
        };
        for (i, op) in unique.into_iter().enumerate() {
            let mut cap = [0; CHANNELS];
            let mut load = [0; CHANNELS];
            for c in Channel::ALL {
                cap[ch_idx(*c)] = op.capacity_of(*c);
                load[ch_idx(*c)] = op.load_of(*c);
            }
            if op.on_shift {
                ix.on_shift.set(i);
            }
            if op.presence.accepts_work() {
                ix.available.set(i);
            }
            for t in &op.tiers {
                ix.tiers[tier_idx(*t)].set(i);
            }
            for c in 0..CHANNELS {
                if cap[c] > 0 {
                    ix.handles[c].set(i);
                    if op.on_shift && op.presence.accepts_work() && load[c] < cap[c] {
                        ix.free[c].set(i);
                    }
                }
            }
            for (skill, level) in &op.skills {
                let level = (*level).min(MAX_LEVEL) as usize;
                if level == 0 {
                    continue;
                }
                let next = ix.skills.len() as u16;
                let id = *ix.skill_ids.entry(skill.clone()).or_insert(next);
                if id == next {
                    ix.skills.push(std::array::from_fn(|_| empty.clone()));
                }
                for l in 0..level {
                    ix.skills[id as usize][l].set(i);
                }
            }
            ix.slots.push(Slot {
                id: op.id,
                cap,
                load,
                last_assigned_at: op.last_assigned_at,
                idle_since: op.idle_since,
                presence: op.presence,
                turn: 0,
            });
        }
        ix
    }

    /// The policy the index decides with.
    pub fn policy(&self) -> &AssignmentPolicy {
        &self.policy
    }

    /// Number of (distinct) operators indexed.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Free capacity of an operator on a channel, as the index sees it now.
    pub fn free_capacity(&self, operator: Uuid, channel: Channel) -> Option<u32> {
        let s = &self.slots[*self.by_id.get(&operator)?];
        let c = ch_idx(channel);
        Some(s.cap[c].saturating_sub(s.load[c]))
    }

    fn compile(&self, req: &Requirement) -> Compiled {
        let tiers = req.tiers.iter().fold(0u8, |m, t| m | (1 << tier_idx(*t)));
        let skills = req
            .skills
            .iter()
            .map(|(k, l)| {
                self.skill_ids
                    .get(k)
                    .map(|id| (*id, (*l).clamp(1, MAX_LEVEL)))
            })
            .collect::<Option<Vec<_>>>();
        Compiled {
            channel: ch_idx(req.channel),
            tiers,
            skills,
        }
    }

    fn tier_union(&self, mask: u8) -> Bits {
        let mut acc = Bits::new(self.words);
        for (i, b) in self.tiers.iter().enumerate() {
            if mask & (1 << i) != 0 {
                acc.or(b);
            }
        }
        acc
    }

    /// Operators serving the tiers with all the skills (ignoring shift, presence, capacity).
    fn competent(&self, c: &Compiled) -> Option<Bits> {
        let mut acc = self.tier_union(c.tiers);
        for (id, l) in c.skills.as_ref()? {
            acc.and(&self.skills[*id as usize][*l as usize - 1]);
        }
        Some(acc)
    }

    /// Whether slot `a` should be preferred to slot `b` for a ticket of channel `c`.
    fn better(&self, a: usize, b: usize, c: usize) -> bool {
        let (sa, sb) = (&self.slots[a], &self.slots[b]);
        let rr = |s: &Slot| (s.last_assigned_at, s.turn);
        let ord = match self.policy.strategy {
            Strategy::LongestIdle => {
                let key = |s: &Slot| {
                    (
                        s.idle_since.is_none(),
                        s.idle_since.or(s.last_assigned_at),
                        s.turn,
                    )
                };
                key(sa).cmp(&key(sb))
            }
            Strategy::RoundRobin => rr(sa).cmp(&rr(sb)),
            Strategy::LeastLoaded => {
                // load/cap compared without division; both caps are positive for candidates.
                let la = u64::from(sa.load[c]) * u64::from(sb.cap[c]);
                let lb = u64::from(sb.load[c]) * u64::from(sa.cap[c]);
                let total = |s: &Slot| s.load.iter().map(|l| u64::from(*l)).sum::<u64>();
                la.cmp(&lb)
                    .then_with(|| total(sa).cmp(&total(sb)))
                    .then_with(|| rr(sa).cmp(&rr(sb)))
            }
        };
        ord.then_with(|| sa.id.cmp(&sb.id)) == Ordering::Less
    }

    fn choose_compiled(&self, c: &Compiled) -> Option<usize> {
        if self.exhausted.contains(c) || self.free[c.channel].is_empty() {
            return None;
        }
        let mut acc = self.competent(c)?;
        acc.and(&self.free[c.channel]);
        acc.iter().reduce(|best, i| {
            if self.better(i, best, c.channel) {
                i
            } else {
                best
            }
        })
    }

    /// The operator the strategy picks for `ticket` at `now`, without committing it.
    pub fn choose(&self, ticket: &WaitingTicket, now: DateTime<Utc>) -> Option<Uuid> {
        let c = self.compile(&self.policy.overflow.requirement(ticket, now));
        self.choose_compiled(&c).map(|i| self.slots[i].id)
    }

    fn commit_slot(&mut self, i: usize, channel: usize, now: DateTime<Utc>) {
        self.turns += 1;
        let s = &mut self.slots[i];
        s.turn = self.turns;
        s.load[channel] += 1;
        s.last_assigned_at = Some(now);
        s.idle_since = None;
        if s.load[channel] >= s.cap[channel] {
            self.free[channel].clear(i);
        }
    }

    /// Records an assignment made elsewhere (or chosen by [`AssignmentIndex::choose`]), so
    /// later decisions see the operator's new load. Returns false for an unknown operator.
    pub fn commit(&mut self, operator: Uuid, channel: Channel, now: DateTime<Utc>) -> bool {
        match self.by_id.get(&operator) {
            Some(i) => {
                self.commit_slot(*i, ch_idx(channel), now);
                true
            }
            None => false,
        }
    }

    /// Chooses and commits in one step.
    pub fn assign(&mut self, ticket: &WaitingTicket, now: DateTime<Utc>) -> Option<Assignment> {
        let req = self.policy.overflow.requirement(ticket, now);
        let c = self.compile(&req);
        match self.choose_compiled(&c) {
            Some(i) => {
                self.commit_slot(i, c.channel, now);
                Some(Assignment {
                    ticket_id: ticket.id,
                    operator_id: self.slots[i].id,
                    overflow_stage: req.stage,
                })
            }
            None => {
                self.exhausted.insert(c);
                None
            }
        }
    }

    /// Assigns as many waiting tickets as possible, most urgent first. A ticket id repeated
    /// in `waiting` is considered once.
    pub fn plan(&mut self, waiting: &[WaitingTicket], now: DateTime<Utc>) -> Vec<Assignment> {
        let mut order: Vec<&WaitingTicket> = waiting.iter().collect();
        order.sort_by_cached_key(|t| urgency(t));
        let mut seen = HashSet::with_capacity(order.len());
        let mut out = Vec::new();
        for t in order {
            if self.free.iter().all(Bits::is_empty) {
                break;
            }
            if !seen.insert(t.id) {
                continue;
            }
            if let Some(a) = self.assign(t, now) {
                out.push(a);
            }
        }
        out
    }

    /// Why `ticket` is waiting, given the operators as the index sees them now (call it after
    /// [`AssignmentIndex::plan`] for the tickets left over).
    pub fn waiting_reason(&self, ticket: &WaitingTicket, now: DateTime<Utc>) -> WaitingReason {
        if self.slots.is_empty() {
            return WaitingReason::NoOperators;
        }
        let req = self.policy.overflow.requirement(ticket, now);
        let c = self.compile(&req);
        let by_tier = self.tier_union(c.tiers);
        if by_tier.is_empty() {
            return WaitingReason::NoOneServesTier { tiers: req.tiers };
        }
        let missing: BTreeMap<String, u8> = req
            .skills
            .iter()
            .filter(|(k, l)| match self.skill_ids.get(*k) {
                None => true,
                Some(id) => {
                    let mut acc = by_tier.clone();
                    acc.and(&self.skills[*id as usize][(**l).clamp(1, MAX_LEVEL) as usize - 1]);
                    acc.is_empty()
                }
            })
            .map(|(k, l)| (k.clone(), *l))
            .collect();
        if !missing.is_empty() {
            return WaitingReason::NoOneWithSkills { skills: missing };
        }
        let Some(mut acc) = self.competent(&c).filter(|b| !b.is_empty()) else {
            return WaitingReason::NoOneWithSkills { skills: req.skills };
        };
        acc.and(&self.handles[c.channel]);
        if acc.is_empty() {
            return WaitingReason::NoOneHandlesChannel {
                channel: req.channel,
            };
        }
        acc.and(&self.on_shift);
        if acc.is_empty() {
            return WaitingReason::NoOneOnShift;
        }
        let mut avail = acc.clone();
        avail.and(&self.available);
        if avail.is_empty() {
            let count = |p: Presence| acc.iter().filter(|i| self.slots[*i].presence == p).count();
            return WaitingReason::NoOneAvailable {
                busy: count(Presence::Busy),
                wrap_up: count(Presence::WrapUp),
                on_break: count(Presence::Break),
                offline: count(Presence::Offline),
            };
        }
        avail.and(&self.free[c.channel]);
        if avail.is_empty() {
            return WaitingReason::EveryoneAtCapacity {
                channel: req.channel,
            };
        }
        WaitingReason::Assignable
    }

    /// Operators with free capacity on a channel right now.
    pub fn free_operators(&self, channel: Channel) -> usize {
        self.free[ch_idx(channel)].count()
    }
}

/// The operator the strategy picks for one ticket (a linear scan over `operators`; for many
/// decisions build an [`AssignmentIndex`]).
pub fn choose_operator(
    ticket: &WaitingTicket,
    operators: &[OperatorState],
    now: DateTime<Utc>,
    policy: &AssignmentPolicy,
) -> Option<Uuid> {
    let mut seen = HashSet::new();
    let candidates: Vec<&OperatorState> = operators
        .iter()
        .filter(|op| seen.insert(op.id))
        .filter(|op| eligible(op, ticket, now, &policy.overflow).is_ok())
        .collect();
    // Rank through a small index of the candidates so both paths share one ordering.
    let owned: Vec<OperatorState> = candidates.into_iter().cloned().collect();
    AssignmentIndex::new(&owned, policy).choose(ticket, now)
}

/// Plans assignments for the waiting tickets: most urgent first (earliest SLA deadline, none
/// last; then priority; then age), each to the operator the strategy picks among the
/// eligible ones, never beyond capacity and never a ticket twice.
pub fn plan_assignments(
    waiting: &[WaitingTicket],
    operators: &[OperatorState],
    now: DateTime<Utc>,
    policy: &AssignmentPolicy,
) -> Vec<Assignment> {
    AssignmentIndex::new(operators, policy).plan(waiting, now)
}

/// Why one ticket is waiting (builds an index; for many tickets use
/// [`AssignmentIndex::waiting_reason`]).
pub fn waiting_reason(
    ticket: &WaitingTicket,
    operators: &[OperatorState],
    now: DateTime<Utc>,
    policy: &AssignmentPolicy,
) -> WaitingReason {
    AssignmentIndex::new(operators, policy).waiting_reason(ticket, now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operators::{Ineligible, OverflowPolicy, OverflowStep, Relax, RoutingProfile};
    use crate::testing::utc;
    use chrono::Duration;
    use proptest::prelude::{
        Just, ProptestConfig, any, prop, prop_assert, prop_assert_eq, prop_assert_ne, prop_oneof,
        proptest,
    };
    use proptest::strategy::Strategy as PS;
    use sportello_domain::Priority;

    fn now() -> DateTime<Utc> {
        utc(2026, 3, 2, 10, 0)
    }

    fn op(
        n: u128,
        tiers: &[Tier],
        skills: &[(&str, u8)],
        caps: &[(Channel, u32)],
    ) -> OperatorState {
        OperatorState::new(
            Uuid::from_u128(n),
            RoutingProfile {
                tiers: tiers.to_vec(),
                skills: skills.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
                capacity: caps.iter().copied().collect(),
            },
        )
    }

    fn ticket(n: u128, channel: Channel, tier: Tier, skills: &[(&str, u8)]) -> WaitingTicket {
        WaitingTicket {
            id: Uuid::from_u128(n),
            channel,
            tier,
            skills: skills.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
            priority: Priority::Normal,
            sla_due: None,
            enqueued_at: now(),
        }
    }

    const FO: Tier = Tier::FrontOffice;
    const BO: Tier = Tier::BackOffice;
    const PHONE: Channel = Channel::Phone;
    const EMAIL: Channel = Channel::Email;

    fn policy(strategy: Strategy) -> AssignmentPolicy {
        AssignmentPolicy {
            strategy,
            overflow: OverflowPolicy::default(),
        }
    }

    #[test]
    fn most_urgent_ticket_gets_the_only_free_seat() {
        let ops = [op(1, &[FO], &[], &[(EMAIL, 1)])];
        let mut urgent = ticket(10, EMAIL, FO, &[]);
        urgent.priority = Priority::Urgent;
        let mut old = ticket(11, EMAIL, FO, &[]);
        old.enqueued_at = now() - Duration::hours(5);
        let mut due_soon = ticket(12, EMAIL, FO, &[]);
        due_soon.sla_due = Some(now() + Duration::hours(3));
        let plan = plan_assignments(
            &[urgent.clone(), old.clone(), due_soon],
            &ops,
            now(),
            &policy(Strategy::LongestIdle),
        );
        assert_eq!(plan.len(), 1);
        assert_eq!(
            plan[0].ticket_id,
            Uuid::from_u128(12),
            "a deadline beats priority and age"
        );
        let plan = plan_assignments(&[old, urgent], &ops, now(), &policy(Strategy::LongestIdle));
        assert_eq!(plan[0].ticket_id, Uuid::from_u128(10), "priority beats age");
    }

    #[test]
    fn strategies_pick_as_documented() {
        let mut a = op(1, &[FO], &[], &[(EMAIL, 8)]);
        let mut b = op(2, &[FO], &[], &[(EMAIL, 8)]);
        a.idle_since = Some(now() - Duration::minutes(5));
        b.idle_since = Some(now() - Duration::minutes(30));
        a.last_assigned_at = Some(now() - Duration::hours(2));
        b.last_assigned_at = Some(now() - Duration::minutes(40));
        a.load.insert(EMAIL, 1);
        b.load.insert(EMAIL, 4);
        let t = ticket(10, EMAIL, FO, &[]);
        let ops = [a, b];
        let pick = |s| choose_operator(&t, &ops, now(), &policy(s)).map(|u| u.as_u128());
        assert_eq!(pick(Strategy::LongestIdle), Some(2));
        assert_eq!(pick(Strategy::RoundRobin), Some(1));
        assert_eq!(pick(Strategy::LeastLoaded), Some(1));
    }

    #[test]
    fn round_robin_takes_turns_within_a_plan() {
        let ops: Vec<_> = (1..=3).map(|i| op(i, &[FO], &[], &[(EMAIL, 8)])).collect();
        let tickets: Vec<_> = (10..16).map(|i| ticket(i, EMAIL, FO, &[])).collect();
        let plan = plan_assignments(&tickets, &ops, now(), &policy(Strategy::RoundRobin));
        let who: Vec<u128> = plan.iter().map(|a| a.operator_id.as_u128()).collect();
        assert_eq!(who.len(), 6);
        for i in 1..=3 {
            assert_eq!(who.iter().filter(|w| **w == i).count(), 2, "{who:?}");
        }
    }

    #[test]
    fn overflow_widens_the_requirement_as_the_ticket_waits() {
        let overflow = OverflowPolicy::new(vec![
            OverflowStep {
                after: Duration::seconds(60),
                relax: Relax::LowerSkillLevels { by: 1 },
                channels: vec![PHONE],
                tiers: vec![],
            },
            OverflowStep {
                after: Duration::seconds(180),
                relax: Relax::DropSkills,
                channels: vec![PHONE],
                tiers: vec![],
            },
            OverflowStep {
                after: Duration::seconds(600),
                relax: Relax::AllowOtherTier,
                channels: vec![],
                tiers: vec![FO],
            },
        ]);
        let policy = AssignmentPolicy {
            strategy: Strategy::LongestIdle,
            overflow,
        };
        let ops = [
            op(1, &[FO], &[("b2", 2)], &[(PHONE, 1)]),
            op(2, &[FO], &[("b2", 3)], &[(PHONE, 1)]),
        ];
        let t = ticket(10, PHONE, FO, &[("b2", 4), ("lang_en", 2)]);
        let at = |s: i64| t.enqueued_at + Duration::seconds(s);
        assert_eq!(choose_operator(&t, &ops, at(59), &policy), None);
        assert_eq!(
            waiting_reason(&t, &ops, at(59), &policy),
            WaitingReason::NoOneWithSkills {
                skills: [("b2".to_owned(), 4), ("lang_en".to_owned(), 2)].into()
            }
        );
        assert_eq!(
            waiting_reason(&t, &ops, at(60), &policy),
            WaitingReason::NoOneWithSkills {
                skills: [("lang_en".to_owned(), 1)].into()
            },
            "b2 3 is now enough, lang_en 1 is still missing"
        );
        assert_eq!(policy.overflow.next_step_at(&t, at(60)), Some(at(180)));
        let plan = plan_assignments(std::slice::from_ref(&t), &ops, at(180), &policy);
        assert_eq!(plan.len(), 1);
        assert_eq!(plan[0].overflow_stage, 2);
        // The email step does not concern phone tickets.
        let email = ticket(11, EMAIL, FO, &[("b2", 5)]);
        assert_eq!(
            policy
                .overflow
                .requirement(&email, at(3600))
                .skills
                .get("b2"),
            Some(&5)
        );
        // Other tier after 10 minutes, for front-office tickets only.
        let back_ops = [op(3, &[BO], &[], &[(EMAIL, 5)])];
        let fo_mail = ticket(12, EMAIL, FO, &[]);
        assert_eq!(choose_operator(&fo_mail, &back_ops, at(599), &policy), None);
        assert_eq!(
            choose_operator(&fo_mail, &back_ops, at(600), &policy),
            Some(Uuid::from_u128(3))
        );
        let bo_on_fo = [op(4, &[FO], &[], &[(EMAIL, 5)])];
        assert_eq!(
            choose_operator(&ticket(13, EMAIL, BO, &[]), &bo_on_fo, at(6000), &policy),
            None
        );
    }

    #[test]
    fn waiting_reasons_name_the_first_filter_that_leaves_nobody() {
        let p = policy(Strategy::LongestIdle);
        let t = ticket(10, PHONE, FO, &[("b2", 2)]);
        let reason = |ops: &[OperatorState]| waiting_reason(&t, ops, now(), &p);
        assert_eq!(reason(&[]), WaitingReason::NoOperators);
        assert_eq!(
            reason(&[op(1, &[BO], &[("b2", 5)], &[(PHONE, 1)])]),
            WaitingReason::NoOneServesTier { tiers: vec![FO] }
        );
        assert_eq!(
            reason(&[op(1, &[FO], &[("b2", 1)], &[(PHONE, 1)])]),
            WaitingReason::NoOneWithSkills {
                skills: [("b2".to_owned(), 2)].into()
            }
        );
        assert_eq!(
            reason(&[op(1, &[FO], &[("b2", 2)], &[(EMAIL, 1)])]),
            WaitingReason::NoOneHandlesChannel { channel: PHONE }
        );
        let mut off = op(1, &[FO], &[("b2", 2)], &[(PHONE, 1)]);
        off.on_shift = false;
        assert_eq!(reason(&[off.clone()]), WaitingReason::NoOneOnShift);
        let mut on_break = op(2, &[FO], &[("b2", 3)], &[(PHONE, 1)]);
        on_break.presence = Presence::Break;
        let mut wrapping = op(3, &[FO], &[("b2", 3)], &[(PHONE, 1)]);
        wrapping.presence = Presence::WrapUp;
        assert_eq!(
            reason(&[off, on_break, wrapping]),
            WaitingReason::NoOneAvailable {
                busy: 0,
                wrap_up: 1,
                on_break: 1,
                offline: 0
            }
        );
        let mut full = op(4, &[FO], &[("b2", 2)], &[(PHONE, 1)]);
        full.load.insert(PHONE, 1);
        assert_eq!(
            reason(&[full.clone()]),
            WaitingReason::EveryoneAtCapacity { channel: PHONE }
        );
        assert!(reason(&[full]).to_string().contains("al completo"));
        assert_eq!(
            reason(&[op(5, &[FO], &[("b2", 2)], &[(PHONE, 1)])]),
            WaitingReason::Assignable
        );
        let json = serde_json::to_value(WaitingReason::NoOneOnShift).unwrap();
        assert_eq!(json["code"], "no_one_on_shift");
    }

    #[test]
    fn eligibility_explains_the_first_failed_condition() {
        let t = ticket(10, EMAIL, BO, &[("isee", 3)]);
        let o = OverflowPolicy::default();
        let mut x = op(1, &[FO], &[("isee", 2)], &[(PHONE, 1)]);
        x.on_shift = false;
        assert_eq!(eligible(&x, &t, now(), &o), Err(Ineligible::OffShift));
        x.on_shift = true;
        x.presence = Presence::Busy;
        assert_eq!(
            eligible(&x, &t, now(), &o),
            Err(Ineligible::NotAvailable {
                presence: Presence::Busy
            })
        );
        x.presence = Presence::Available;
        assert_eq!(
            eligible(&x, &t, now(), &o),
            Err(Ineligible::WrongTier { accepted: vec![BO] })
        );
        x.tiers.push(BO);
        assert_eq!(
            eligible(&x, &t, now(), &o),
            Err(Ineligible::MissingSkill {
                skill: "isee".into(),
                required: 3,
                has: 2
            })
        );
        x.skills.insert("isee".into(), 3);
        assert_eq!(
            eligible(&x, &t, now(), &o),
            Err(Ineligible::NoCapacity { channel: EMAIL })
        );
        x.capacity.insert(EMAIL, 2);
        x.load.insert(EMAIL, 2);
        assert_eq!(
            eligible(&x, &t, now(), &o),
            Err(Ineligible::AtCapacity {
                channel: EMAIL,
                load: 2,
                capacity: 2
            })
        );
        x.load.insert(EMAIL, 1);
        assert_eq!(eligible(&x, &t, now(), &o), Ok(()));
        assert_eq!(
            Ineligible::MissingSkill {
                skill: "isee".into(),
                required: 3,
                has: 0
            }
            .to_string(),
            "manca la competenza 'isee' (livello richiesto 3)"
        );
    }

    #[test]
    fn repeated_operators_and_tickets_count_once() {
        let o = op(1, &[FO], &[], &[(EMAIL, 1)]);
        let t = ticket(10, EMAIL, FO, &[]);
        let plan = plan_assignments(
            &[t.clone(), t.clone(), ticket(11, EMAIL, FO, &[])],
            &[o.clone(), o],
            now(),
            &policy(Strategy::LeastLoaded),
        );
        assert_eq!(
            plan.len(),
            1,
            "one operator with capacity 1, even listed twice"
        );
    }

    // ---- properties -------------------------------------------------------------------------

    const SKILLS: [&str; 4] = ["b2", "isee", "lang_en", "complaints"];
    const CHANNELS_USED: [Channel; 4] = [
        Channel::Phone,
        Channel::Email,
        Channel::Counter,
        Channel::Web,
    ];

    fn skills() -> impl PS<Value = BTreeMap<String, u8>> {
        proptest::collection::btree_map(
            prop::sample::select(SKILLS.to_vec()).prop_map(str::to_owned),
            1u8..=5,
            0..3,
        )
    }

    fn when() -> impl PS<Value = Option<DateTime<Utc>>> {
        prop::option::of((-600i64..600).prop_map(|m| now() + Duration::minutes(m)))
    }

    fn operator() -> impl PS<Value = OperatorState> {
        (
            0u128..40,
            prop::sample::subsequence(Tier::ALL.to_vec(), 0..=2),
            skills(),
            proptest::collection::btree_map(
                prop::sample::select(CHANNELS_USED.to_vec()),
                0u32..4,
                0..4,
            ),
            proptest::collection::btree_map(
                prop::sample::select(CHANNELS_USED.to_vec()),
                0u32..5,
                0..4,
            ),
            prop::sample::select(Presence::ALL.to_vec()),
            prop::bool::weighted(0.8),
            when(),
            when(),
        )
            .prop_map(
                |(id, tiers, skills, capacity, load, presence, on_shift, last, idle)| {
                    OperatorState {
                        id: Uuid::from_u128(id),
                        tiers,
                        skills,
                        capacity,
                        load,
                        presence,
                        on_shift,
                        last_assigned_at: last,
                        idle_since: idle,
                    }
                },
            )
    }

    fn waiting() -> impl PS<Value = WaitingTicket> {
        (
            1000u128..1100,
            prop::sample::select(CHANNELS_USED.to_vec()),
            prop::sample::select(Tier::ALL.to_vec()),
            skills(),
            prop::sample::select(Priority::ALL.to_vec()),
            when(),
            (0i64..600).prop_map(|m| now() - Duration::minutes(m)),
        )
            .prop_map(
                |(id, channel, tier, skills, priority, sla_due, enqueued_at)| WaitingTicket {
                    id: Uuid::from_u128(id),
                    channel,
                    tier,
                    skills,
                    priority,
                    sla_due,
                    enqueued_at,
                },
            )
    }

    fn assignment_policy() -> impl PS<Value = AssignmentPolicy> {
        let step = (
            0i64..400,
            prop_oneof![
                (1u8..=4).prop_map(|by| Relax::LowerSkillLevels { by }),
                Just(Relax::DropSkills),
                Just(Relax::AllowOtherTier)
            ],
            prop::sample::subsequence(CHANNELS_USED.to_vec(), 0..=2),
            prop::sample::subsequence(Tier::ALL.to_vec(), 0..=1),
        )
            .prop_map(|(m, relax, channels, tiers)| OverflowStep {
                after: Duration::minutes(m),
                relax,
                channels,
                tiers,
            });
        (
            prop::sample::select(Strategy::ALL.to_vec()),
            proptest::collection::vec(step, 0..4),
        )
            .prop_map(|(strategy, steps)| AssignmentPolicy {
                strategy,
                overflow: OverflowPolicy::new(steps),
            })
    }

    /// Tickets, some repeated verbatim (the same ticket listed twice must be assigned once).
    fn tickets() -> impl PS<Value = Vec<WaitingTicket>> {
        (
            proptest::collection::vec(waiting(), 0..60),
            proptest::collection::vec(any::<prop::sample::Index>(), 0..5),
        )
            .prop_map(|(mut v, dups)| {
                for (i, t) in v.iter_mut().enumerate() {
                    t.id = Uuid::from_u128(1000 + i as u128);
                }
                if !v.is_empty() {
                    for d in dups {
                        let t = v[d.index(v.len())].clone();
                        v.push(t);
                    }
                }
                v
            })
    }

    /// The first operator of each id, as the planner sees them, with the plan's loads added.
    fn after_plan(
        ops: &[OperatorState],
        plan: &[Assignment],
        tickets: &[WaitingTicket],
    ) -> Vec<OperatorState> {
        let mut seen = HashSet::new();
        let mut out: Vec<OperatorState> =
            ops.iter().filter(|o| seen.insert(o.id)).cloned().collect();
        for a in plan {
            let t = tickets.iter().find(|t| t.id == a.ticket_id).unwrap();
            let o = out.iter_mut().find(|o| o.id == a.operator_id).unwrap();
            *o.load.entry(t.channel).or_insert(0) += 1;
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn plans_respect_capacity_skills_tier_shift_presence_and_never_repeat(
            ops in proptest::collection::vec(operator(), 0..25),
            tickets in tickets(),
            policy in assignment_policy(),
        ) {
            let plan = plan_assignments(&tickets, &ops, now(), &policy);
            let mut ids = HashSet::new();
            for a in &plan {
                prop_assert!(ids.insert(a.ticket_id), "ticket {} assigned twice", a.ticket_id);
            }
            let mut seen = HashSet::new();
            let first: Vec<&OperatorState> = ops.iter().filter(|o| seen.insert(o.id)).collect();
            for a in &plan {
                let t = tickets.iter().find(|t| t.id == a.ticket_id).unwrap();
                let o = first.iter().find(|o| o.id == a.operator_id).unwrap();
                // Everything but capacity, judged on the operator before the plan.
                let mut unloaded = (*o).clone();
                unloaded.load.clear();
                prop_assert_eq!(eligible(&unloaded, t, now(), &policy.overflow), Ok(()));
                let req = policy.overflow.requirement(t, now());
                prop_assert_eq!(req.stage, a.overflow_stage);
            }
            let final_ops = after_plan(&ops, &plan, &tickets);
            for o in &final_ops {
                let before = first.iter().find(|f| f.id == o.id).unwrap();
                for c in Channel::ALL {
                    let added = o.load_of(*c) - before.load_of(*c);
                    prop_assert!(added == 0 || o.load_of(*c) <= o.capacity_of(*c),
                        "operator {} over capacity on {c}: {} > {}", o.id, o.load_of(*c), o.capacity_of(*c));
                }
            }
            // Greedy and complete: a ticket left waiting has nobody eligible, and its waiting
            // reason agrees with the linear eligibility check.
            let ix = {
                let mut ix = AssignmentIndex::new(&ops, &policy);
                let again = ix.plan(&tickets, now());
                prop_assert_eq!(&again, &plan, "planning is deterministic");
                ix
            };
            for t in tickets.iter().filter(|t| !ids.contains(&t.id)) {
                let anyone = final_ops.iter().any(|o| eligible(o, t, now(), &policy.overflow).is_ok());
                prop_assert!(!anyone, "ticket {} left waiting though someone is eligible", t.id);
                prop_assert_ne!(ix.waiting_reason(t, now()), WaitingReason::Assignable);
            }
        }

        #[test]
        fn a_single_choice_is_eligible_and_best_by_strategy(
            ops in proptest::collection::vec(operator(), 0..25),
            t in waiting(),
            policy in assignment_policy(),
        ) {
            let mut seen = HashSet::new();
            let ops: Vec<OperatorState> = ops.into_iter().filter(|o| seen.insert(o.id)).collect();
            let ok: Vec<&OperatorState> = ops.iter().filter(|o| eligible(o, &t, now(), &policy.overflow).is_ok()).collect();
            let chosen = choose_operator(&t, &ops, now(), &policy);
            let indexed = AssignmentIndex::new(&ops, &policy).choose(&t, now());
            prop_assert_eq!(chosen, indexed);
            let reason = waiting_reason(&t, &ops, now(), &policy);
            prop_assert_eq!(reason == WaitingReason::Assignable, !ok.is_empty(), "{:?}", reason);
            match chosen {
                None => prop_assert!(ok.is_empty()),
                Some(id) => {
                    let c = ops.iter().find(|o| o.id == id).unwrap();
                    prop_assert!(ok.iter().any(|o| o.id == id));
                    for o in &ok {
                        match policy.strategy {
                            Strategy::RoundRobin => prop_assert!(c.last_assigned_at <= o.last_assigned_at),
                            Strategy::LongestIdle => {
                                let key = |x: &OperatorState| (x.idle_since.is_none(), x.idle_since.or(x.last_assigned_at));
                                prop_assert!(key(c) <= key(o));
                            }
                            Strategy::LeastLoaded => {
                                let r = |x: &OperatorState| x.load_of(t.channel) as f64 / x.capacity_of(t.channel) as f64;
                                prop_assert!(r(c) <= r(o));
                            }
                        }
                    }
                }
            }
        }
    }
}
