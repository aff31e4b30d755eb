//! Routing and SLAs wired to storage: every ticket from every channel is routed (rules →
//! tier, skills, priority, SLA policy), its SLA clock kept in business time, and waiting
//! tickets pushed to eligible operators. One assignment round runs at a time across all
//! instances (a PostgreSQL advisory lock; SQLite has one writer), and each assignment is a
//! conditional update, so a ticket is never assigned twice and no operator exceeds capacity.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Datelike, NaiveTime, Timelike, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, TransactionTrait,
};
use serde::{Deserialize, Serialize};
use sportello_domain::calendar::BusinessCalendar;
use sportello_domain::event::DomainEvent;
use sportello_domain::{Channel, EntryKind, Priority, Role, Status, Tier};
use sportello_routing::{
    AssignmentIndex, Decision, Explanation, OperatorState, Presence, RoutingConfig, RoutingProfile,
    SlaClock, SlaSnapshot, TicketFacts, WaitingTicket,
};
use sportello_store::entities::{
    operator_profile, setting, ticket, ticket_entry, ticket_routing, user,
};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::error::Problems;
use crate::tickets::TicketView;
use crate::util::now;
use crate::{Actor, App, ServiceError};

/// Key of the routing file in the `settings` table, once an administrator has changed it.
const RULES_KEY: &str = "routing.toml";
/// Advisory-lock key that serialises assignment rounds across instances.
const ASSIGN_LOCK: i64 = 0x5350_4f52_5445_4c4c; // "SPORTELL"
/// Most waiting tickets considered in one round.
const MAX_WAITING: u64 = 20_000;

/// Statuses in which an assigned ticket takes one unit of its operator's capacity.
const HOLDING: [&str; 3] = ["assigned", "open", "waiting_internal"];

pub(crate) struct RoutingRuntime {
    config: RwLock<Arc<RoutingConfig>>,
    loaded_version: RwLock<Option<DateTime<Utc>>>,
    pub(crate) calendar: BusinessCalendar,
    wake: Notify,
}

impl RoutingRuntime {
    pub(crate) fn new(calendar: BusinessCalendar) -> Result<RoutingRuntime, ServiceError> {
        let config = RoutingConfig::builtin()
            .map_err(|e| ServiceError::Internal(format!("built-in routing: {e}")))?;
        Ok(RoutingRuntime {
            config: RwLock::new(Arc::new(config)),
            loaded_version: RwLock::new(None),
            calendar,
            wake: Notify::new(),
        })
    }

    pub(crate) fn config(&self) -> Arc<RoutingConfig> {
        self.config
            .read()
            .map(|c| c.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    fn set_config(&self, c: RoutingConfig, version: Option<DateTime<Utc>>) {
        if let Ok(mut w) = self.config.write() {
            *w = Arc::new(c);
        }
        if let Ok(mut v) = self.loaded_version.write() {
            *v = version;
        }
    }
}

/// A weekly shift, in the business calendar's time zone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Shift {
    /// Day slugs: `mon` … `sun`.
    pub days: Vec<String>,
    /// `HH:MM`.
    pub start: String,
    /// `HH:MM`.
    pub end: String,
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn parse_hhmm(s: &str) -> Option<NaiveTime> {
    NaiveTime::parse_from_str(s.trim(), "%H:%M").ok()
}

fn on_shift(shifts: &[Shift], calendar: &BusinessCalendar, at: DateTime<Utc>) -> bool {
    if shifts.is_empty() {
        return true;
    }
    let local = at.with_timezone(&calendar.timezone());
    let day = DAYS[local.weekday().num_days_from_monday() as usize];
    let t =
        NaiveTime::from_hms_opt(local.hour(), local.minute(), local.second()).unwrap_or_default();
    shifts.iter().any(|s| {
        s.days.iter().any(|d| d == day)
            && matches!((parse_hhmm(&s.start), parse_hhmm(&s.end)), (Some(a), Some(b)) if a <= t && t < b)
    })
}

/// An operator as supervisors see them.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct OperatorView {
    pub user_id: Uuid,
    pub username: String,
    pub name: String,
    #[schema(value_type = Object)]
    pub profile: RoutingProfile,
    #[schema(value_type = String)]
    pub presence: Presence,
    pub presence_since: DateTime<Utc>,
    pub on_shift: bool,
    pub shifts: Vec<Shift>,
    /// Work held now, per channel.
    pub load: BTreeMap<String, u32>,
}

/// A ticket's SLA as the API shows it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct SlaView {
    pub policy: String,
    pub first_response_due: Option<DateTime<Utc>>,
    pub next_response_due: Option<DateTime<Utc>>,
    pub resolution_due: Option<DateTime<Utc>>,
    /// `ok`, `at_risk`, `breached` or `paused`.
    pub state: String,
}

impl From<SlaSnapshot> for SlaView {
    fn from(s: SlaSnapshot) -> Self {
        SlaView {
            policy: s.policy,
            first_response_due: s.first_response_due,
            next_response_due: s.next_response_due,
            resolution_due: s.resolution_due,
            state: s.state.as_str().to_owned(),
        }
    }
}

/// Routing data of tickets, by id, for views.
pub(crate) async fn routing_of<C: ConnectionTrait>(
    conn: &C,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, ticket_routing::Model>, sea_orm::DbErr> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    Ok(ticket_routing::Entity::find()
        .filter(ticket_routing::Column::TicketId.is_in(ids.to_vec()))
        .all(conn)
        .await?
        .into_iter()
        .map(|r| (r.ticket_id, r))
        .collect())
}

/// Fills `sla` and `waiting_reason` of views from their routing rows.
pub(crate) fn decorate(v: &mut TicketView, r: Option<&ticket_routing::Model>, now: DateTime<Utc>) {
    let Some(r) = r else { return };
    if let Ok(clock) = serde_json::from_str::<SlaClock>(&r.sla_clock) {
        v.sla = Some(clock.snapshot(now).into());
    }
    if v.assignee_id.is_none() && v.status.is_active() {
        v.waiting_reason = r
            .waiting_reason
            .as_deref()
            .and_then(|w| serde_json::from_str(w).ok());
    }
}

fn json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

fn routing_row(
    ticket_id: Uuid,
    d: &Decision,
    clock: &SlaClock,
    now: DateTime<Utc>,
    enqueued_at: DateTime<Utc>,
) -> ticket_routing::ActiveModel {
    let snap = clock.snapshot(now);
    ticket_routing::ActiveModel {
        ticket_id: Set(ticket_id),
        rule: Set(d.rule.clone()),
        skills: Set(json(&d.skills)),
        sla_policy: Set(d.sla_policy.clone()),
        sla_clock: Set(json(clock)),
        sla_state: Set(snap.state.as_str().to_owned()),
        next_check_at: Set(snap.next_check_at),
        waiting_reason: Set(None),
        enqueued_at: Set(enqueued_at),
        updated_at: Set(now),
    }
}

/// How a reclassification changed a ticket's routing: the rule and the required skills, each
/// before and after.
pub(crate) struct Rerouted {
    rule: (String, String),
    skills: (BTreeMap<String, u8>, BTreeMap<String, u8>),
}

impl Rerouted {
    /// For the timeline entry's `meta`.
    pub(crate) fn meta(&self) -> serde_json::Value {
        serde_json::json!({
            "rule": { "from": self.rule.0, "to": self.rule.1 },
            "skills": { "from": self.skills.0, "to": self.skills.1 },
        })
    }

    /// The timeline entry's line, for operators.
    pub(crate) fn line(&self) -> String {
        let list = |skills: &BTreeMap<String, u8>| {
            if skills.is_empty() {
                "—".to_owned()
            } else {
                skills
                    .iter()
                    .map(|(k, l)| format!("{k} {l}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        };
        format!(
            "competenze richieste: {} → {} (regola {})",
            list(&self.skills.0),
            list(&self.skills.1),
            self.rule.1
        )
    }
}

/// What the routing rules see of a ticket: channel, classification, subject, its first message
/// and the citizen's flags.
fn facts_of(t: &ticket::Model, first_message: String) -> TicketFacts {
    let mut facts = TicketFacts::new(Channel::parse(&t.channel).unwrap_or(Channel::Internal));
    facts.category = t.category.clone();
    facts.measure = t.measure.clone();
    facts.subject = t.subject.clone();
    facts.body = first_message;
    facts.citizen_flags = serde_json::from_str(&t.tags).unwrap_or_default();
    facts
}

fn earliest_due(s: &SlaSnapshot) -> Option<DateTime<Utc>> {
    [s.first_response_due, s.next_response_due, s.resolution_due]
        .into_iter()
        .flatten()
        .min()
}

/// What happened to a ticket that its SLA clock must hear about.
#[derive(Clone, Copy, Debug)]
pub(crate) enum SlaEvent {
    Transition {
        from: Status,
        to: Status,
    },
    /// An answer to the citizen (reply, call).
    Responded,
    /// A new message from the citizen.
    CitizenWrote,
}

/// Updates a ticket's SLA clock inside the caller's transaction. Tickets not routed yet have no
/// clock; they get one, with the event applied, when the router picks them up.
pub(crate) async fn sla_event<C: ConnectionTrait>(
    txn: &C,
    calendar: &BusinessCalendar,
    ticket_id: Uuid,
    event: SlaEvent,
    at: DateTime<Utc>,
) -> Result<Option<SlaSnapshot>, ServiceError> {
    let Some(row) = ticket_routing::Entity::find_by_id(ticket_id)
        .one(txn)
        .await?
    else {
        return Ok(None);
    };
    apply_sla_event(txn, calendar, row, event, at).await
}

/// [`sla_event`] for many tickets in one transaction: their clocks are read with one query per
/// chunk of tickets rather than one each (a CDR import resolves thousands of call-backs).
pub(crate) async fn sla_events<C: ConnectionTrait>(
    txn: &C,
    calendar: &BusinessCalendar,
    events: &[(Uuid, SlaEvent)],
    at: DateTime<Utc>,
) -> Result<(), ServiceError> {
    let ids: Vec<Uuid> = events.iter().map(|(id, _)| *id).collect();
    let by_id: HashMap<Uuid, SlaEvent> = events.iter().copied().collect();
    let rows = sportello_store::chunked::in_chunks(&ids, |chunk| {
        ticket_routing::Entity::find()
            .filter(ticket_routing::Column::TicketId.is_in(chunk))
            .all(txn)
    })
    .await?;
    for row in rows {
        if let Some(event) = by_id.get(&row.ticket_id).copied() {
            apply_sla_event(txn, calendar, row, event, at).await?;
        }
    }
    Ok(())
}

/// Moves one ticket's SLA clock for `event` and stores the clock, its state and the ticket's
/// earliest due date.
async fn apply_sla_event<C: ConnectionTrait>(
    txn: &C,
    calendar: &BusinessCalendar,
    row: ticket_routing::Model,
    event: SlaEvent,
    at: DateTime<Utc>,
) -> Result<Option<SlaSnapshot>, ServiceError> {
    let ticket_id = row.ticket_id;
    let Ok(mut clock) = serde_json::from_str::<SlaClock>(&row.sla_clock) else {
        return Ok(None);
    };
    // Events that do not apply (e.g. resuming a clock that is not paused) change nothing.
    let _ = match event {
        SlaEvent::Transition {
            to: Status::WaitingCitizen,
            ..
        } => clock.pause(at, calendar),
        SlaEvent::Transition {
            from: Status::WaitingCitizen,
            to,
        } if to.is_active() => clock.resume(at, calendar),
        SlaEvent::Transition {
            to: Status::Resolved,
            ..
        } => clock.resolved(at, calendar),
        SlaEvent::Transition {
            from: Status::Resolved,
            to: Status::Open,
        } => clock.reopened(at, calendar),
        SlaEvent::Transition { .. } => Ok(()),
        SlaEvent::Responded => clock.responded(at, calendar),
        SlaEvent::CitizenWrote => clock.citizen_wrote(at, calendar),
    };
    let snap = clock.snapshot(at);
    ticket_routing::Entity::update_many()
        .col_expr(ticket_routing::Column::SlaClock, Expr::value(json(&clock)))
        .col_expr(
            ticket_routing::Column::SlaState,
            Expr::value(snap.state.as_str()),
        )
        .col_expr(
            ticket_routing::Column::NextCheckAt,
            Expr::value(snap.next_check_at),
        )
        .col_expr(ticket_routing::Column::UpdatedAt, Expr::value(at))
        .filter(ticket_routing::Column::TicketId.eq(ticket_id))
        .exec(txn)
        .await?;
    ticket::Entity::update_many()
        .col_expr(ticket::Column::SlaDueAt, Expr::value(earliest_due(&snap)))
        .filter(ticket::Column::Id.eq(ticket_id))
        .exec(txn)
        .await?;
    Ok(Some(snap))
}

/// The rules' dry-run answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DryRun {
    pub rule: String,
    pub tier: String,
    #[schema(value_type = Object)]
    pub skills: BTreeMap<String, u8>,
    pub priority: String,
    pub sla_policy: String,
    /// Every rule tried before the match, with why it did not match.
    #[schema(value_type = Vec<Object>)]
    pub tried: Vec<serde_json::Value>,
}

/// The routing file as the API reads and replaces it.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RulesDocument {
    /// The whole routing file (assignment, SLA policies, rules) in TOML.
    pub toml: String,
    #[serde(default, skip_deserializing)]
    pub updated_at: Option<DateTime<Utc>>,
}

async fn load_profiles<C: ConnectionTrait>(
    conn: &C,
) -> Result<Vec<(operator_profile::Model, user::Model)>, sea_orm::DbErr> {
    let profiles = operator_profile::Entity::find().all(conn).await?;
    let ids: Vec<Uuid> = profiles.iter().map(|p| p.user_id).collect();
    let users: HashMap<Uuid, user::Model> = if ids.is_empty() {
        HashMap::new()
    } else {
        user::Entity::find()
            .filter(user::Column::Id.is_in(ids))
            .all(conn)
            .await?
            .into_iter()
            .map(|u| (u.id, u))
            .collect()
    };
    Ok(profiles
        .into_iter()
        .filter_map(|p| users.get(&p.user_id).cloned().map(|u| (p, u)))
        .collect())
}

/// Work held per operator and channel.
async fn loads<C: ConnectionTrait>(
    conn: &C,
) -> Result<HashMap<Uuid, BTreeMap<Channel, u32>>, sea_orm::DbErr> {
    let rows: Vec<(Option<Uuid>, String, i64)> = ticket::Entity::find()
        .select_only()
        .column(ticket::Column::AssigneeId)
        .column(ticket::Column::Channel)
        .column_as(ticket::Column::Id.count(), "n")
        .filter(ticket::Column::AssigneeId.is_not_null())
        .filter(ticket::Column::Status.is_in(HOLDING))
        .group_by(ticket::Column::AssigneeId)
        .group_by(ticket::Column::Channel)
        .into_tuple()
        .all(conn)
        .await?;
    let mut out: HashMap<Uuid, BTreeMap<Channel, u32>> = HashMap::new();
    for (who, channel, n) in rows {
        if let (Some(who), Ok(ch)) = (who, Channel::parse(&channel)) {
            out.entry(who).or_default().insert(ch, n.max(0) as u32);
        }
    }
    Ok(out)
}

fn profile_of(p: &operator_profile::Model) -> RoutingProfile {
    RoutingProfile {
        tiers: serde_json::from_str(&p.tiers).unwrap_or_default(),
        skills: serde_json::from_str(&p.skills).unwrap_or_default(),
        capacity: serde_json::from_str(&p.capacity).unwrap_or_default(),
    }
}

fn shifts_of(p: &operator_profile::Model) -> Vec<Shift> {
    p.shifts
        .as_deref()
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_default()
}

fn operator_state(
    p: &operator_profile::Model,
    load: BTreeMap<Channel, u32>,
    calendar: &BusinessCalendar,
    at: DateTime<Utc>,
) -> OperatorState {
    let busy = load.values().any(|n| *n > 0);
    OperatorState {
        id: p.user_id,
        on_shift: on_shift(&shifts_of(p), calendar, at),
        presence: Presence::parse(&p.presence).unwrap_or(Presence::Offline),
        last_assigned_at: p.last_assigned_at,
        idle_since: if busy {
            None
        } else {
            Some(
                p.last_assigned_at
                    .unwrap_or(p.presence_since)
                    .max(p.presence_since),
            )
        },
        load,
        ..OperatorState::new(p.user_id, profile_of(p))
    }
}

impl App {
    fn routing(&self) -> &RoutingRuntime {
        &self.inner.routing
    }

    /// Asks the router to run a round soon (after a change that may allow an assignment).
    pub fn wake_router(&self) {
        self.routing().wake.notify_one();
    }

    /// Runs the router until cancelled: routes new tickets, updates SLA states, assigns.
    ///
    /// Woken by domain events and by `wake_router`, and at least every `tick` for overflow
    /// steps and SLA deadlines that arrive with time alone.
    pub async fn run_router(&self, cancel: CancellationToken, tick: std::time::Duration) {
        let mut events = self.bus().subscribe();
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = self.routing().wake.notified() => {},
                e = events.recv() => {
                    if let Ok(e) = &e && matches!(**e, DomainEvent::SlaChanged { .. }) {
                        continue;
                    }
                },
                _ = tokio::time::sleep(tick) => {},
            }
            // Let a burst arrive, then handle it in one round.
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            while let Ok(e) = events.try_recv() {
                drop(e);
            }
            if let Err(e) = self.router_round().await {
                tracing::warn!(error = %e, "routing round failed");
            }
        }
    }

    /// One round: reload changed rules, route unrouted tickets, update SLA states, assign.
    pub async fn router_round(&self) -> Result<usize, ServiceError> {
        self.reload_rules_if_changed().await?;
        self.route_new_tickets().await?;
        self.sla_tick().await?;
        self.assign_round().await
    }

    async fn reload_rules_if_changed(&self) -> Result<(), ServiceError> {
        let Some(row) = setting::Entity::find_by_id(RULES_KEY)
            .one(&self.db().read)
            .await?
        else {
            return Ok(());
        };
        let loaded = self.routing().loaded_version.read().ok().and_then(|v| *v);
        if loaded == Some(row.updated_at) {
            return Ok(());
        }
        match RoutingConfig::from_toml(&row.value) {
            Ok(c) => self.routing().set_config(c, Some(row.updated_at)),
            Err(e) => {
                tracing::error!(error = %e, "stored routing rules are invalid; keeping the previous ones")
            }
        }
        Ok(())
    }

    /// Decides a routed ticket's skills again after its category or measure changed, so a
    /// ticket still in the queue goes to someone who knows its new measure (the router's next
    /// round, woken by the timeline entry, uses them). The tier, priority and SLA clock stay:
    /// moving tiers is an escalation, and the clock runs from the request. Returns what
    /// changed (`rule` and `skills`, each `from` and `to`), or `None` when the ticket has no
    /// routing decision yet (the router will make it with the new facts) or the rules decide
    /// as before.
    pub(crate) async fn reroute_skills<C: ConnectionTrait>(
        &self,
        conn: &C,
        t: &ticket::Model,
        at: DateTime<Utc>,
    ) -> Result<Option<Rerouted>, sea_orm::DbErr> {
        let Some(row) = ticket_routing::Entity::find_by_id(t.id).one(conn).await? else {
            return Ok(None);
        };
        let first = ticket_entry::Entity::find()
            .filter(ticket_entry::Column::TicketId.eq(t.id))
            .filter(ticket_entry::Column::Kind.eq(EntryKind::Inbound.as_str()))
            .order_by_asc(ticket_entry::Column::Id)
            .one(conn)
            .await?
            .map(|e| e.body)
            .unwrap_or_default();
        let d = self.routing().config().rules.evaluate(&facts_of(t, first));
        let before: BTreeMap<String, u8> = serde_json::from_str(&row.skills).unwrap_or_default();
        if d.rule == row.rule && d.skills == before {
            return Ok(None);
        }
        ticket_routing::Entity::update_many()
            .col_expr(ticket_routing::Column::Rule, Expr::value(d.rule.clone()))
            .col_expr(ticket_routing::Column::Skills, Expr::value(json(&d.skills)))
            .col_expr(ticket_routing::Column::UpdatedAt, Expr::value(at))
            .filter(ticket_routing::Column::TicketId.eq(t.id))
            .exec(conn)
            .await?;
        Ok(Some(Rerouted {
            rule: (row.rule, d.rule),
            skills: (before, d.skills),
        }))
    }

    /// Gives every ticket without a routing decision one: rules, SLA clock, queue entry.
    async fn route_new_tickets(&self) -> Result<(), ServiceError> {
        let read = &self.db().read;
        let routed = ticket_routing::Entity::find()
            .select_only()
            .column(ticket_routing::Column::TicketId);
        let pending = ticket::Entity::find()
            .filter(ticket::Column::Id.not_in_subquery(sea_orm::QueryTrait::into_query(routed)))
            .filter(ticket::Column::Status.is_not_in(["resolved", "closed"]))
            .order_by_asc(ticket::Column::Id)
            .limit(1000)
            .all(read)
            .await?;
        if pending.is_empty() {
            return Ok(());
        }
        let ids: Vec<Uuid> = pending.iter().map(|t| t.id).collect();
        let firsts: HashMap<Uuid, String> = ticket_entry::Entity::find()
            .filter(ticket_entry::Column::TicketId.is_in(ids))
            .filter(ticket_entry::Column::Kind.eq(EntryKind::Inbound.as_str()))
            .order_by_asc(ticket_entry::Column::Id)
            .all(read)
            .await?
            .into_iter()
            .rev()
            .map(|e| (e.ticket_id, e.body))
            .collect();
        let config = self.routing().config();
        let calendar = &self.routing().calendar;
        let at = now();
        let txn = self.db().write.begin().await?;
        for t in pending {
            let facts = facts_of(&t, firsts.get(&t.id).cloned().unwrap_or_default());
            let d = config.rules.evaluate(&facts);
            let Some(policy) = config.sla.get(&d.sla_policy) else {
                continue;
            };
            let mut clock = SlaClock::start(policy, t.created_at, calendar);
            // A channel may have answered before the router saw the ticket (an answered call).
            if let Some(answered) = t.first_response_at {
                let _ = clock.responded(answered.max(t.created_at), calendar);
            }
            let snap = clock.snapshot(at);
            // Rules may send a ticket to the back office; they never pull one out of it.
            let tier = if t.tier == Tier::FrontOffice.as_str() {
                d.tier
            } else {
                Tier::parse(&t.tier).unwrap_or(d.tier)
            };
            let priority = Priority::parse(&t.priority)
                .unwrap_or_default()
                .max(d.priority);
            let res =
                ticket_routing::Entity::insert(routing_row(t.id, &d, &clock, at, t.created_at))
                    .on_conflict(
                        sea_orm::sea_query::OnConflict::column(ticket_routing::Column::TicketId)
                            .do_nothing()
                            .to_owned(),
                    )
                    .exec_without_returning(&txn)
                    .await?;
            if res == 0 {
                continue; // another instance routed it meanwhile
            }
            ticket::Entity::update_many()
                .col_expr(ticket::Column::Tier, Expr::value(tier.as_str()))
                .col_expr(ticket::Column::Priority, Expr::value(priority.as_str()))
                .col_expr(ticket::Column::SlaDueAt, Expr::value(earliest_due(&snap)))
                .filter(ticket::Column::Id.eq(t.id))
                .exec(&txn)
                .await?;
        }
        txn.commit().await?;
        Ok(())
    }

    /// Updates the SLA state of tickets whose next check is due; publishes changes.
    async fn sla_tick(&self) -> Result<(), ServiceError> {
        let at = now();
        let due = ticket_routing::Entity::find()
            .filter(ticket_routing::Column::NextCheckAt.lte(at))
            .limit(5000)
            .all(&self.db().read)
            .await?;
        if due.is_empty() {
            return Ok(());
        }
        let mut events = Vec::new();
        let txn = self.db().write.begin().await?;
        for r in due {
            let Ok(clock) = serde_json::from_str::<SlaClock>(&r.sla_clock) else {
                continue;
            };
            let snap = clock.snapshot(at);
            if snap.state.as_str() != r.sla_state {
                events.push(DomainEvent::SlaChanged {
                    ticket_id: r.ticket_id,
                    state: snap.state.as_str().to_owned(),
                    at,
                });
            }
            ticket_routing::Entity::update_many()
                .col_expr(
                    ticket_routing::Column::SlaState,
                    Expr::value(snap.state.as_str()),
                )
                .col_expr(
                    ticket_routing::Column::NextCheckAt,
                    Expr::value(snap.next_check_at),
                )
                .filter(ticket_routing::Column::TicketId.eq(r.ticket_id))
                .exec(&txn)
                .await?;
        }
        txn.commit().await?;
        self.bus().publish_all(events);
        Ok(())
    }

    /// Assigns waiting tickets to eligible operators; returns how many were assigned.
    pub async fn assign_round(&self) -> Result<usize, ServiceError> {
        let config = self.routing().config();
        let calendar = &self.routing().calendar;
        let at = now();
        let txn = self.db().write.begin().await?;
        crate::util::xact_lock(&txn, ASSIGN_LOCK).await?;
        let profiles = load_profiles(&txn).await?;
        let mut loads = loads(&txn).await?;
        let operators: Vec<OperatorState> = profiles
            .iter()
            .filter(|(_, u)| u.active)
            .map(|(p, _)| {
                operator_state(
                    p,
                    loads.remove(&p.user_id).unwrap_or_default(),
                    calendar,
                    at,
                )
            })
            .collect();
        let waiting_tickets = ticket::Entity::find()
            .filter(ticket::Column::Status.eq(Status::New.as_str()))
            .filter(ticket::Column::AssigneeId.is_null())
            .order_by_asc(ticket::Column::Id)
            .limit(MAX_WAITING)
            .all(&txn)
            .await?;
        let mut routing_rows = routing_of(
            &txn,
            &waiting_tickets.iter().map(|t| t.id).collect::<Vec<_>>(),
        )
        .await?;
        let waiting_rows: Vec<(ticket::Model, Option<ticket_routing::Model>)> = waiting_tickets
            .into_iter()
            .map(|t| {
                let r = routing_rows.remove(&t.id);
                (t, r)
            })
            .collect();
        let waiting: Vec<(WaitingTicket, ticket_routing::Model)> = waiting_rows
            .into_iter()
            .filter_map(|(t, r)| {
                let r = r?;
                Some((
                    WaitingTicket {
                        id: t.id,
                        channel: Channel::parse(&t.channel).ok()?,
                        tier: Tier::parse(&t.tier).ok()?,
                        skills: serde_json::from_str(&r.skills).unwrap_or_default(),
                        priority: Priority::parse(&t.priority).unwrap_or_default(),
                        sla_due: t.sla_due_at,
                        enqueued_at: r.enqueued_at,
                    },
                    r,
                ))
            })
            .collect();
        let tickets: Vec<WaitingTicket> = waiting.iter().map(|(w, _)| w.clone()).collect();
        let mut index = AssignmentIndex::new(&operators, &config.assignment);
        let plan = index.plan(&tickets, at);
        let names: HashMap<Uuid, String> = profiles
            .iter()
            .map(|(p, u)| (p.user_id, u.name.clone()))
            .collect();
        let mut events = Vec::new();
        let mut assigned = std::collections::HashSet::new();
        // How long each assigned ticket waited, recorded in the metrics once committed.
        let mut waited = Vec::new();
        for a in &plan {
            let res = ticket::Entity::update_many()
                .col_expr(ticket::Column::AssigneeId, Expr::value(a.operator_id))
                .col_expr(
                    ticket::Column::Status,
                    Expr::value(Status::Assigned.as_str()),
                )
                .col_expr(ticket::Column::UpdatedAt, Expr::value(at))
                .filter(ticket::Column::Id.eq(a.ticket_id))
                .filter(ticket::Column::AssigneeId.is_null())
                .filter(ticket::Column::Status.eq(Status::New.as_str()))
                .exec(&txn)
                .await?;
            if res.rows_affected != 1 {
                continue;
            }
            assigned.insert(a.ticket_id);
            let Some((w, r)) = waiting.iter().find(|(w, _)| w.id == a.ticket_id) else {
                continue;
            };
            let who = names.get(&a.operator_id).cloned().unwrap_or_default();
            let meta = serde_json::json!({ "assignee_id": a.operator_id, "rule": r.rule, "overflow_stage": a.overflow_stage, "by": "router" });
            crate::tickets::insert_system_entry(
                &txn,
                a.ticket_id,
                None,
                format!("assegnato a {who}"),
                meta,
                at,
            )
            .await?;
            ticket_routing::Entity::update_many()
                .col_expr(
                    ticket_routing::Column::WaitingReason,
                    Expr::value(Option::<String>::None),
                )
                .filter(ticket_routing::Column::TicketId.eq(a.ticket_id))
                .exec(&txn)
                .await?;
            operator_profile::Entity::update_many()
                .col_expr(operator_profile::Column::LastAssignedAt, Expr::value(at))
                .filter(operator_profile::Column::UserId.eq(a.operator_id))
                .exec(&txn)
                .await?;
            events.push(DomainEvent::TicketAssigned {
                ticket_id: a.ticket_id,
                assignee_id: Some(a.operator_id),
                tier: w.tier,
                at,
            });
            waited.push((w.tier, at - w.enqueued_at));
        }
        // The reason each remaining ticket waits, written only when it changed.
        for (w, r) in waiting.iter().filter(|(w, _)| !assigned.contains(&w.id)) {
            let reason = json(&index.waiting_reason(w, at));
            if r.waiting_reason.as_deref() != Some(reason.as_str()) {
                ticket_routing::Entity::update_many()
                    .col_expr(ticket_routing::Column::WaitingReason, Expr::value(reason))
                    .filter(ticket_routing::Column::TicketId.eq(w.id))
                    .exec(&txn)
                    .await?;
            }
        }
        txn.commit().await?;
        for (tier, w) in waited {
            self.metrics().observe_assignment(tier, w);
        }
        let n = events.len();
        self.bus().publish_all(events);
        Ok(n)
    }

    /// Sets an operator's tiers, skills and capacity (supervisors and admins).
    pub async fn set_routing_profile(
        &self,
        actor: &Actor,
        user_id: Uuid,
        profile: RoutingProfile,
    ) -> Result<OperatorView, ServiceError> {
        actor.require_any(&[Role::Supervisor, Role::Admin])?;
        profile
            .validate()
            .map_err(|e| ServiceError::field(e.field, e.message))?;
        self.upsert_profile(actor, user_id, |p| {
            p.tiers = Set(json(&profile.tiers));
            p.skills = Set(json(&profile.skills));
            p.capacity = Set(json(&profile.capacity));
        })
        .await
    }

    /// Sets an operator's presence (the operator, or a supervisor). Going on break or offline
    /// hands back tickets assigned but not yet started.
    pub async fn set_presence(
        &self,
        actor: &Actor,
        user_id: Uuid,
        state: &str,
    ) -> Result<OperatorView, ServiceError> {
        if actor.id != user_id {
            actor.require_any(&[Role::Supervisor, Role::Admin])?;
        }
        let presence = Presence::parse(state.trim())
            .map_err(|e| ServiceError::field("state", e.to_string()))?;
        let at = now();
        let view = self
            .upsert_profile(actor, user_id, |p| {
                p.presence = Set(presence.as_str().to_owned());
                p.presence_since = Set(at);
            })
            .await?;
        if presence.releases_unstarted_work() {
            self.release_unstarted(actor, user_id, presence).await?;
        }
        self.wake_router();
        Ok(view)
    }

    async fn release_unstarted(
        &self,
        actor: &Actor,
        user_id: Uuid,
        presence: Presence,
    ) -> Result<(), ServiceError> {
        let at = now();
        let txn = self.db().write.begin().await?;
        let held = ticket::Entity::find()
            .filter(ticket::Column::AssigneeId.eq(user_id))
            .filter(ticket::Column::Status.eq(Status::Assigned.as_str()))
            .all(&txn)
            .await?;
        let mut events = Vec::new();
        for t in held {
            let res = ticket::Entity::update_many()
                .col_expr(
                    ticket::Column::AssigneeId,
                    Expr::value(Option::<Uuid>::None),
                )
                .col_expr(ticket::Column::Status, Expr::value(Status::New.as_str()))
                .col_expr(ticket::Column::UpdatedAt, Expr::value(at))
                .filter(ticket::Column::Id.eq(t.id))
                .filter(ticket::Column::AssigneeId.eq(user_id))
                .filter(ticket::Column::Status.eq(Status::Assigned.as_str()))
                .exec(&txn)
                .await?;
            if res.rows_affected != 1 {
                continue;
            }
            let meta = serde_json::json!({ "released_by": presence.as_str(), "previous_assignee": user_id });
            crate::tickets::insert_system_entry(
                &txn,
                t.id,
                Some(actor.id),
                "rimesso in coda: operatore non disponibile".into(),
                meta,
                at,
            )
            .await?;
            crate::audit::record(
                &txn,
                Some(actor.id),
                "ticket.released",
                "ticket",
                Some(t.id),
                None,
            )
            .await?;
            let tier = Tier::parse(&t.tier).unwrap_or(Tier::FrontOffice);
            events.push(DomainEvent::TicketAssigned {
                ticket_id: t.id,
                assignee_id: None,
                tier,
                at,
            });
        }
        txn.commit().await?;
        self.bus().publish_all(events);
        Ok(())
    }

    /// Sets an operator's weekly shifts; none means always on shift.
    pub async fn set_shifts(
        &self,
        actor: &Actor,
        user_id: Uuid,
        shifts: Vec<Shift>,
    ) -> Result<OperatorView, ServiceError> {
        actor.require_any(&[Role::Supervisor, Role::Admin])?;
        let mut p = Problems::default();
        for (i, s) in shifts.iter().enumerate() {
            if s.days.is_empty() || s.days.iter().any(|d| !DAYS.contains(&d.as_str())) {
                p.add(
                    format!("shifts[{i}].days"),
                    "use day names mon, tue, wed, thu, fri, sat, sun",
                );
            }
            match (parse_hhmm(&s.start), parse_hhmm(&s.end)) {
                (Some(a), Some(b)) if a < b => {}
                (None, _) => p.add(format!("shifts[{i}].start"), "must be HH:MM"),
                (_, None) => p.add(format!("shifts[{i}].end"), "must be HH:MM"),
                _ => p.add(format!("shifts[{i}].end"), "must be after start"),
            }
        }
        p.finish()?;
        let view = self
            .upsert_profile(actor, user_id, |p| p.shifts = Set(Some(json(&shifts))))
            .await?;
        self.wake_router();
        Ok(view)
    }

    async fn upsert_profile(
        &self,
        actor: &Actor,
        user_id: Uuid,
        change: impl FnOnce(&mut operator_profile::ActiveModel),
    ) -> Result<OperatorView, ServiceError> {
        let at = now();
        let txn = self.db().write.begin().await?;
        let u = user::Entity::find_by_id(user_id)
            .one(&txn)
            .await?
            .ok_or(ServiceError::NotFound("user"))?;
        let existing = operator_profile::Entity::find_by_id(user_id)
            .one(&txn)
            .await?;
        let is_new = existing.is_none();
        let mut am: operator_profile::ActiveModel = match existing {
            Some(p) => p.into(),
            None => {
                // A new profile starts from the tiers the user's roles give, offline.
                let roles: Vec<Role> = u
                    .roles
                    .split(',')
                    .filter_map(|r| Role::parse(r).ok())
                    .collect();
                operator_profile::ActiveModel {
                    user_id: Set(user_id),
                    tiers: Set(json(&sportello_domain::user::tiers_of(&roles))),
                    skills: Set("{}".into()),
                    capacity: Set(json(&BTreeMap::from([
                        (Channel::Email, 8u32),
                        (Channel::Phone, 1),
                        (Channel::Counter, 1),
                        (Channel::Web, 8),
                        (Channel::Internal, 8),
                    ]))),
                    presence: Set(Presence::Offline.as_str().into()),
                    presence_since: Set(at),
                    last_assigned_at: Set(None),
                    shifts: Set(None),
                    updated_at: Set(at),
                }
            }
        };
        change(&mut am);
        am.updated_at = Set(at);
        if is_new {
            operator_profile::Entity::insert(am)
                .exec_without_returning(&txn)
                .await?;
        } else {
            operator_profile::Entity::update(am).exec(&txn).await?;
        }
        crate::audit::record(
            &txn,
            Some(actor.id),
            "operator.updated",
            "user",
            Some(user_id),
            None,
        )
        .await?;
        txn.commit().await?;
        self.wake_router();
        self.operator_view(user_id).await
    }

    async fn operator_view(&self, user_id: Uuid) -> Result<OperatorView, ServiceError> {
        self.list_operators_inner(Some(user_id))
            .await?
            .pop()
            .ok_or(ServiceError::NotFound("operator"))
    }

    pub(crate) async fn list_operators_inner(
        &self,
        only: Option<Uuid>,
    ) -> Result<Vec<OperatorView>, ServiceError> {
        let read = &self.db().read;
        let mut loads = loads(read).await?;
        let at = now();
        let mut out: Vec<OperatorView> = load_profiles(read)
            .await?
            .into_iter()
            .filter(|(p, _)| only.is_none_or(|id| id == p.user_id))
            .map(|(p, u)| OperatorView {
                user_id: p.user_id,
                username: u.username,
                name: u.name,
                profile: profile_of(&p),
                presence: Presence::parse(&p.presence).unwrap_or(Presence::Offline),
                presence_since: p.presence_since,
                on_shift: on_shift(&shifts_of(&p), &self.routing().calendar, at),
                shifts: shifts_of(&p),
                load: loads
                    .remove(&p.user_id)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(c, n)| (c.as_str().to_owned(), n))
                    .collect(),
            })
            .collect();
        out.sort_by(|a, b| a.username.cmp(&b.username));
        Ok(out)
    }

    /// Every operator with a routing profile: presence, shift, load.
    pub async fn list_operators(&self, actor: &Actor) -> Result<Vec<OperatorView>, ServiceError> {
        actor.require_operator()?;
        self.list_operators_inner(None).await
    }

    /// Which rule a ticket like this would hit, and why the earlier ones did not.
    pub fn routing_dry_run(
        &self,
        actor: &Actor,
        facts: TicketFacts,
    ) -> Result<DryRun, ServiceError> {
        actor.require_operator()?;
        let Explanation { decision, tried } = self.routing().config().rules.explain(&facts);
        Ok(DryRun {
            rule: decision.rule,
            tier: decision.tier.as_str().to_owned(),
            skills: decision.skills,
            priority: decision.priority.as_str().to_owned(),
            sla_policy: decision.sla_policy,
            tried: tried
                .iter()
                .filter(|t| !t.matched)
                .map(|t| serde_json::to_value(t).unwrap_or_default())
                .collect(),
        })
    }

    /// The routing file in force.
    pub async fn routing_rules(&self, actor: &Actor) -> Result<RulesDocument, ServiceError> {
        actor.require_any(&[Role::Supervisor, Role::Admin])?;
        let stored = setting::Entity::find_by_id(RULES_KEY)
            .one(&self.db().read)
            .await?;
        Ok(match stored {
            Some(s) => RulesDocument {
                toml: s.value,
                updated_at: Some(s.updated_at),
            },
            None => RulesDocument {
                toml: sportello_routing::DEFAULT_ROUTING_TOML.to_owned(),
                updated_at: None,
            },
        })
    }

    /// Replaces the routing file after validating all of it (admins). Existing tickets keep
    /// their decisions; their SLA deadlines follow the new policies.
    pub async fn replace_routing_rules(
        &self,
        actor: &Actor,
        doc: RulesDocument,
    ) -> Result<RulesDocument, ServiceError> {
        actor.require_any(&[Role::Admin])?;
        let config = RoutingConfig::from_toml(&doc.toml)
            .map_err(|e| ServiceError::field("toml", e.to_string()))?;
        let at = now();
        let txn = self.db().write.begin().await?;
        let am = setting::ActiveModel {
            key: Set(RULES_KEY.into()),
            value: Set(doc.toml.clone()),
            updated_by: Set(Some(actor.id)),
            updated_at: Set(at),
        };
        setting::Entity::insert(am)
            .on_conflict(
                sea_orm::sea_query::OnConflict::column(setting::Column::Key)
                    .update_columns([
                        setting::Column::Value,
                        setting::Column::UpdatedBy,
                        setting::Column::UpdatedAt,
                    ])
                    .to_owned(),
            )
            .exec_without_returning(&txn)
            .await?;
        crate::audit::record(
            &txn,
            Some(actor.id),
            "routing.rules_replaced",
            "settings",
            None,
            None,
        )
        .await?;
        // Deadlines are recomputed when a policy changes.
        let open = ticket_routing::Entity::find()
            .filter(ticket_routing::Column::SlaState.ne("resolved"))
            .all(&txn)
            .await?;
        for r in open {
            let (Ok(mut clock), Some(policy)) = (
                serde_json::from_str::<SlaClock>(&r.sla_clock),
                config.sla.get(&r.sla_policy),
            ) else {
                continue;
            };
            if clock.policy() == policy {
                continue;
            }
            clock.apply_policy(policy, &self.routing().calendar);
            let snap = clock.snapshot(at);
            ticket_routing::Entity::update_many()
                .col_expr(ticket_routing::Column::SlaClock, Expr::value(json(&clock)))
                .col_expr(
                    ticket_routing::Column::SlaState,
                    Expr::value(snap.state.as_str()),
                )
                .col_expr(
                    ticket_routing::Column::NextCheckAt,
                    Expr::value(snap.next_check_at),
                )
                .filter(ticket_routing::Column::TicketId.eq(r.ticket_id))
                .exec(&txn)
                .await?;
            ticket::Entity::update_many()
                .col_expr(ticket::Column::SlaDueAt, Expr::value(earliest_due(&snap)))
                .filter(ticket::Column::Id.eq(r.ticket_id))
                .exec(&txn)
                .await?;
        }
        txn.commit().await?;
        self.routing().set_config(config, Some(at));
        self.wake_router();
        Ok(RulesDocument {
            toml: doc.toml,
            updated_at: Some(at),
        })
    }

    /// Assigns a ticket to an operator by hand (supervisors), whatever their load.
    pub async fn assign_ticket(
        &self,
        actor: &Actor,
        ticket_id: Uuid,
        user_id: Uuid,
    ) -> Result<TicketView, ServiceError> {
        actor.require_any(&[Role::Supervisor, Role::Admin])?;
        let at = now();
        let txn = self.db().write.begin().await?;
        let t = ticket::Entity::find_by_id(ticket_id)
            .one(&txn)
            .await?
            .ok_or(ServiceError::NotFound("ticket"))?;
        let status = Status::parse(&t.status).unwrap_or(Status::New);
        if !status.is_active() {
            return Err(ServiceError::Conflict(format!(
                "a {status} ticket cannot be assigned"
            )));
        }
        let u = user::Entity::find_by_id(user_id)
            .one(&txn)
            .await?
            .filter(|u| u.active);
        let Some(u) = u else {
            return Err(ServiceError::field(
                "user_id",
                "no active user with this id",
            ));
        };
        let tier = Tier::parse(&t.tier).unwrap_or(Tier::FrontOffice);
        let roles: Vec<Role> = u
            .roles
            .split(',')
            .filter_map(|r| Role::parse(r).ok())
            .collect();
        if !sportello_domain::user::tiers_of(&roles).contains(&tier) {
            return Err(ServiceError::field(
                "user_id",
                format!("this user does not work {tier} tickets"),
            ));
        }
        let new_status = if status == Status::New {
            Status::Assigned
        } else {
            status
        };
        let res = ticket::Entity::update_many()
            .col_expr(ticket::Column::AssigneeId, Expr::value(user_id))
            .col_expr(ticket::Column::Status, Expr::value(new_status.as_str()))
            .col_expr(ticket::Column::UpdatedAt, Expr::value(at))
            .filter(ticket::Column::Id.eq(ticket_id))
            .filter(ticket::Column::Status.eq(t.status.clone()))
            .exec(&txn)
            .await?;
        if res.rows_affected != 1 {
            return Err(ServiceError::Conflict(
                "the ticket was changed meanwhile; reload it and try again".into(),
            ));
        }
        let meta = serde_json::json!({ "assignee_id": user_id, "previous_assignee": t.assignee_id, "by": "supervisor" });
        crate::tickets::insert_system_entry(
            &txn,
            ticket_id,
            Some(actor.id),
            format!("assegnato a {}", u.name),
            meta.clone(),
            at,
        )
        .await?;
        crate::audit::record(
            &txn,
            Some(actor.id),
            "ticket.assigned",
            "ticket",
            Some(ticket_id),
            Some(meta),
        )
        .await?;
        txn.commit().await?;
        self.bus().publish_all(vec![DomainEvent::TicketAssigned {
            ticket_id,
            assignee_id: Some(user_id),
            tier,
            at,
        }]);
        self.get_ticket(actor, ticket_id).await
    }

    /// Moves a ticket to another tier's queue with a reason (front → back office, and back).
    pub async fn escalate(
        &self,
        actor: &Actor,
        ticket_id: Uuid,
        tier: &str,
        reason: &str,
    ) -> Result<TicketView, ServiceError> {
        actor.require_operator()?;
        let mut p = Problems::default();
        let tier = p.check("tier", Tier::parse(tier.trim()));
        let reason = p.check("reason", crate::util::bounded(reason, 1, 2000));
        p.finish()?;
        let (Some(tier), Some(reason)) = (tier, reason) else {
            return Err(ServiceError::Internal(
                "validation produced no value".into(),
            ));
        };
        let at = now();
        let txn = self.db().write.begin().await?;
        let t = ticket::Entity::find_by_id(ticket_id)
            .one(&txn)
            .await?
            .ok_or(ServiceError::NotFound("ticket"))?;
        let from = Tier::parse(&t.tier).unwrap_or(Tier::FrontOffice);
        actor.require_tier(from)?;
        let status = Status::parse(&t.status).unwrap_or(Status::New);
        if !status.is_active() {
            return Err(ServiceError::Conflict(format!(
                "a {status} ticket cannot be escalated; reopen it first"
            )));
        }
        if from == tier {
            return Err(ServiceError::field(
                "tier",
                format!("the ticket is already in the {tier} queue"),
            ));
        }
        let res = ticket::Entity::update_many()
            .col_expr(ticket::Column::Tier, Expr::value(tier.as_str()))
            .col_expr(
                ticket::Column::AssigneeId,
                Expr::value(Option::<Uuid>::None),
            )
            .col_expr(ticket::Column::Status, Expr::value(Status::New.as_str()))
            .col_expr(ticket::Column::UpdatedAt, Expr::value(at))
            .filter(ticket::Column::Id.eq(ticket_id))
            .filter(ticket::Column::Status.eq(t.status.clone()))
            .exec(&txn)
            .await?;
        if res.rows_affected != 1 {
            return Err(ServiceError::Conflict(
                "the ticket was changed meanwhile; reload it and try again".into(),
            ));
        }
        ticket_routing::Entity::update_many()
            .col_expr(ticket_routing::Column::EnqueuedAt, Expr::value(at))
            .filter(ticket_routing::Column::TicketId.eq(ticket_id))
            .exec(&txn)
            .await?;
        let meta = serde_json::json!({ "from_tier": from, "to_tier": tier, "reason": reason, "previous_assignee": t.assignee_id });
        crate::tickets::insert_system_entry(
            &txn,
            ticket_id,
            Some(actor.id),
            format!("{from} → {tier}: {reason}"),
            meta.clone(),
            at,
        )
        .await?;
        crate::audit::record(
            &txn,
            Some(actor.id),
            "ticket.escalated",
            "ticket",
            Some(ticket_id),
            Some(meta),
        )
        .await?;
        txn.commit().await?;
        self.bus().publish_all(vec![
            DomainEvent::TicketTransitioned {
                ticket_id,
                from: status,
                to: Status::New,
                at,
            },
            DomainEvent::TicketAssigned {
                ticket_id,
                assignee_id: None,
                tier,
                at,
            },
        ]);
        self.wake_router();
        // The escalating operator may no longer see it: answer with what they may see.
        let read = &self.db().read;
        let t = ticket::Entity::find_by_id(ticket_id)
            .one(read)
            .await?
            .ok_or(ServiceError::NotFound("ticket"))?;
        Ok(crate::tickets::summaries(read, vec![t]).await?.remove(0))
    }
}
