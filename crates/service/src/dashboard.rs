//! The supervisors' dashboard: a snapshot of queues, operators, SLAs and call-backs computed
//! with a few aggregate queries, and the small deltas that domain events become.
//!
//! Nothing here loads the ticket table: every figure is a grouped count over active tickets or
//! over the tickets of one period (index ranges on `created_at`, `first_response_at` and
//! `resolved_at`). SLA figures need each ticket's stored clock, so they are computed over the
//! period's tickets only and cached: the six finished days of the last week for ten minutes,
//! today for a few seconds.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration as StdDuration, Instant};

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Timelike, Utc};
use sea_orm::sea_query::{
    Alias, CaseStatement, Expr, ExprTrait, Func, Order, Query, SelectStatement,
};
use sea_orm::{ConnectionTrait, DatabaseConnection, QueryResult};
use serde::{Deserialize, Serialize};
use sportello_domain::calendar::BusinessCalendar;
use sportello_domain::event::DomainEvent;
use sportello_domain::{Channel, EntryKind, Role, Status, Tier};
use sportello_routing::{SlaClock, TimerKind};
use sportello_store::entities::{
    callback, counter_booking, counter_session, ticket, ticket_routing,
};
use uuid::Uuid;

use crate::util::now;
use crate::{Actor, App, ServiceError};

/// Statuses of tickets that still need work.
const ACTIVE: [&str; 5] = [
    "new",
    "assigned",
    "open",
    "waiting_citizen",
    "waiting_internal",
];
/// Longest list of at-risk (and of breached) tickets a snapshot carries.
const MAX_LISTED: u64 = 50;
/// How long the figures of the six finished days of the week are reused.
const HISTORY_TTL: StdDuration = StdDuration::from_secs(600);
/// How long today's SLA figures are reused: they move slowly, and parsing clocks is the most
/// expensive part of a snapshot.
const TODAY_SLA_TTL: StdDuration = StdDuration::from_secs(5);

/// The tiers a dashboard covers: everything for supervisors and administrators, the actor's own
/// tiers for operators.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DashboardScope {
    tiers: Vec<Tier>,
}

impl DashboardScope {
    /// Every tier.
    pub fn all() -> DashboardScope {
        DashboardScope {
            tiers: Tier::ALL.to_vec(),
        }
    }

    /// Some tiers (sorted and deduplicated; none means none visible).
    pub fn of_tiers(tiers: impl IntoIterator<Item = Tier>) -> DashboardScope {
        let mut tiers: Vec<Tier> = tiers.into_iter().collect();
        tiers.sort();
        tiers.dedup();
        DashboardScope { tiers }
    }

    /// What an actor may watch; operators without any tier are refused.
    pub fn for_actor(actor: &Actor) -> Result<DashboardScope, ServiceError> {
        actor.require_operator()?;
        if actor.has(Role::Supervisor) || actor.has(Role::Admin) {
            return Ok(DashboardScope::all());
        }
        let scope = DashboardScope::of_tiers(actor.tiers());
        if scope.tiers.is_empty() {
            return Err(ServiceError::Forbidden(
                "you work no tier, so there is no queue to show".into(),
            ));
        }
        Ok(scope)
    }

    pub fn tiers(&self) -> &[Tier] {
        &self.tiers
    }

    pub fn is_all(&self) -> bool {
        Tier::ALL.iter().all(|t| self.tiers.contains(t))
    }

    pub fn contains(&self, tier: Tier) -> bool {
        self.tiers.contains(&tier)
    }

    fn slugs(&self) -> Vec<String> {
        self.tiers.iter().map(|t| t.as_str().to_owned()).collect()
    }
}

/// Everything a dashboard shows at one instant.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct DashboardSnapshot {
    pub generated_at: DateTime<Utc>,
    /// The business calendar's time zone, in which "today" and the hours are counted.
    pub timezone: String,
    /// Today's local date.
    pub day: NaiveDate,
    /// The tiers covered.
    pub tiers: Vec<String>,
    pub totals: Totals,
    /// One row per channel, tier and category with any active ticket or any arrival or
    /// resolution today.
    pub queues: Vec<QueueRow>,
    /// Today's hours, local midnight to midnight (23 or 25 on the days clocks change).
    pub hourly: Vec<HourRow>,
    pub operators: OperatorFigures,
    pub sla: SlaFigures,
    /// Active tickets whose SLA is at risk, the nearest deadline first.
    pub at_risk: Vec<TicketAlert>,
    /// Active tickets past an SLA deadline, the oldest breach first.
    pub breached: Vec<TicketAlert>,
    pub phone: PhoneFigures,
    /// Counter figures (front-office dashboards only).
    pub counter: Option<CounterFigures>,
}

/// Sums over the whole scope.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Totals {
    /// New and assigned to nobody: citizens waiting for someone to take their request.
    pub waiting: u64,
    pub assigned: u64,
    pub open: u64,
    pub waiting_citizen: u64,
    pub waiting_internal: u64,
    /// Every ticket not yet resolved.
    pub active: u64,
    /// Since when the longest-waiting ticket waits.
    pub oldest_waiting_since: Option<DateTime<Utc>>,
    pub arrivals_today: u64,
    pub resolved_today: u64,
    pub at_risk: u64,
    pub breached: u64,
}

/// Figures of one channel, tier and category.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct QueueRow {
    pub channel: String,
    pub tier: String,
    pub category: Option<String>,
    pub waiting: u64,
    pub assigned: u64,
    pub open: u64,
    pub waiting_citizen: u64,
    pub waiting_internal: u64,
    pub oldest_waiting_since: Option<DateTime<Utc>>,
    /// Seconds the oldest waiting ticket had waited at `generated_at`.
    pub oldest_waiting_secs: Option<i64>,
    pub arrivals_today: u64,
    pub resolved_today: u64,
    pub at_risk: u64,
    pub breached: u64,
}

/// One hour of today.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct HourRow {
    /// Local hour, 0–23.
    pub hour: u32,
    pub start: DateTime<Utc>,
    pub arrivals: u64,
    pub resolutions: u64,
    /// Arrivals per channel slug.
    pub arrivals_by_channel: BTreeMap<String, u64>,
}

/// Operators by presence and load.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct OperatorFigures {
    /// Operators per presence (`available`, `busy`, `wrap_up`, `break`, `offline`).
    pub by_presence: BTreeMap<String, u64>,
    pub on_shift: u64,
    pub items: Vec<OperatorRow>,
}

/// One operator as the dashboard shows them.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct OperatorRow {
    pub user_id: Uuid,
    pub username: String,
    pub name: String,
    pub presence: String,
    pub presence_since: DateTime<Utc>,
    pub on_shift: bool,
    pub tiers: Vec<String>,
    /// Work held now, per channel.
    pub load: BTreeMap<String, u32>,
    /// Capacity per channel.
    pub capacity: BTreeMap<String, u32>,
}

/// SLA attainment for today and the last seven days.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct SlaFigures {
    pub today: SlaPeriod,
    /// Today and the six days before.
    pub last_7_days: SlaPeriod,
}

/// SLA figures over a period, in business time (opening hours only, pauses excluded).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct SlaPeriod {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// First responses given in the period.
    pub first_responses: u64,
    /// Of those, given within target.
    pub first_responses_within_target: u64,
    /// Tickets still unanswered whose first-response deadline passed in the period: misses
    /// too.
    pub first_responses_overdue: u64,
    /// Within target / (given + overdue); absent when there was nothing to measure.
    pub first_response_attainment: Option<f64>,
    pub first_response_p50_secs: Option<i64>,
    pub first_response_p90_secs: Option<i64>,
    pub resolutions: u64,
    pub resolutions_within_target: u64,
    pub resolution_attainment: Option<f64>,
    pub resolution_p50_secs: Option<i64>,
    pub resolution_p90_secs: Option<i64>,
}

/// A ticket whose SLA needs attention; identifiers and queue attributes only.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct TicketAlert {
    pub ticket_id: Uuid,
    pub number: String,
    pub channel: String,
    pub tier: String,
    pub category: Option<String>,
    pub priority: String,
    pub status: String,
    pub assigned: bool,
    /// `at_risk` or `breached`.
    pub sla_state: String,
    /// The nearest SLA deadline.
    pub due: Option<DateTime<Utc>>,
    /// Seconds left at `generated_at` (negative once past).
    pub seconds_left: Option<i64>,
}

/// The phone channel's call-backs.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct PhoneFigures {
    /// Missed calls still to be called back.
    pub callbacks_pending: u64,
    /// Of those, past their deadline.
    pub callbacks_overdue: u64,
    pub oldest_callback_deadline: Option<DateTime<Utc>>,
}

/// The counter's figures (visits by appointment).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct CounterFigures {
    pub visitors_waiting: u64,
    pub desks_open: u64,
    pub no_shows_today: u64,
}

/// What a domain event means for a dashboard: identifiers and queue attributes, never
/// personal data.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Delta {
    /// `ticket_created`, `ticket_transitioned`, `ticket_assigned`, `entry_added` or
    /// `sla_changed`.
    pub event: String,
    pub ticket_id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub channel: Option<Channel>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub tier: Option<Tier>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// The status before a transition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub from: Option<Status>,
    /// The status after the event, when the event says it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub status: Option<Status>,
    /// For assignments: whether someone now holds the ticket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assigned: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub entry_kind: Option<EntryKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sla_state: Option<String>,
    pub at: DateTime<Utc>,
}

impl Delta {
    fn new(event: &str, ticket_id: Uuid, at: DateTime<Utc>) -> Delta {
        Delta {
            event: event.to_owned(),
            ticket_id,
            number: None,
            channel: None,
            tier: None,
            category: None,
            from: None,
            status: None,
            assigned: None,
            entry_kind: None,
            sla_state: None,
            at,
        }
    }
}

/// The dashboard delta of a domain event; `None` for events that do not concern queues.
pub fn delta(event: &DomainEvent) -> Option<Delta> {
    Some(match event {
        DomainEvent::TicketCreated {
            ticket_id,
            number,
            channel,
            tier,
            category,
            at,
        } => Delta {
            number: Some(number.clone()),
            channel: Some(*channel),
            tier: Some(*tier),
            category: category.clone(),
            status: Some(Status::New),
            ..Delta::new("ticket_created", *ticket_id, *at)
        },
        DomainEvent::TicketTransitioned {
            ticket_id,
            from,
            to,
            at,
        } => Delta {
            from: Some(*from),
            status: Some(*to),
            ..Delta::new("ticket_transitioned", *ticket_id, *at)
        },
        DomainEvent::TicketAssigned {
            ticket_id,
            assignee_id,
            tier,
            at,
        } => Delta {
            tier: Some(*tier),
            assigned: Some(assignee_id.is_some()),
            ..Delta::new("ticket_assigned", *ticket_id, *at)
        },
        DomainEvent::EntryAdded {
            ticket_id,
            kind,
            at,
            ..
        } => Delta {
            entry_kind: Some(*kind),
            ..Delta::new("entry_added", *ticket_id, *at)
        },
        DomainEvent::SlaChanged {
            ticket_id,
            state,
            at,
        } => Delta {
            sla_state: Some(state.clone()),
            ..Delta::new("sla_changed", *ticket_id, *at)
        },
        DomainEvent::CitizenCreated { .. } => return None,
    })
}

/// Cached SLA figures per scope, and the channel and tier of tickets deltas were about.
#[derive(Default)]
pub(crate) struct DashboardCache {
    history: Mutex<HashMap<DashboardScope, (NaiveDate, Instant, SlaSamples)>>,
    today: Mutex<HashMap<DashboardScope, (NaiveDate, Instant, SlaSamples)>>,
    queues: Mutex<HashMap<Uuid, (Channel, Tier)>>,
}

/// Most tickets whose channel and tier are remembered for deltas; the map starts over when
/// full (a miss costs one query shared by a whole batch of events).
const MAX_REMEMBERED: usize = 100_000;

/// The raw material of SLA figures, mergeable across periods (the reports merge one per day).
#[derive(Clone, Debug, Default)]
pub(crate) struct SlaSamples {
    first_secs: Vec<i64>,
    first_within: u64,
    pub(crate) first_overdue: u64,
    resolution_secs: Vec<i64>,
    resolution_within: u64,
}

impl SlaSamples {
    pub(crate) fn merge(&self, other: &SlaSamples) -> SlaSamples {
        let mut out = self.clone();
        out.first_secs.extend_from_slice(&other.first_secs);
        out.first_within += other.first_within;
        out.first_overdue += other.first_overdue;
        out.resolution_secs
            .extend_from_slice(&other.resolution_secs);
        out.resolution_within += other.resolution_within;
        out
    }

    pub(crate) fn period(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> SlaPeriod {
        let mut first = self.first_secs.clone();
        first.sort_unstable();
        let mut resolution = self.resolution_secs.clone();
        resolution.sort_unstable();
        let share = |ok: u64, n: u64| (n > 0).then(|| ok as f64 / n as f64);
        let first_n = first.len() as u64;
        SlaPeriod {
            from: Some(from),
            to: Some(to),
            first_responses: first_n,
            first_responses_within_target: self.first_within,
            first_responses_overdue: self.first_overdue,
            first_response_attainment: share(self.first_within, first_n + self.first_overdue),
            first_response_p50_secs: percentile(&first, 50),
            first_response_p90_secs: percentile(&first, 90),
            resolutions: resolution.len() as u64,
            resolutions_within_target: self.resolution_within,
            resolution_attainment: share(self.resolution_within, resolution.len() as u64),
            resolution_p50_secs: percentile(&resolution, 50),
            resolution_p90_secs: percentile(&resolution, 90),
        }
    }
}

/// The nearest-rank percentile of sorted values.
fn percentile(sorted: &[i64], p: usize) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

/// Local midnight of a date, in UTC (the first valid instant when midnight is skipped).
pub(crate) fn local_midnight(calendar: &BusinessCalendar, date: NaiveDate) -> DateTime<Utc> {
    let tz = calendar.timezone();
    let naive = date.and_hms_opt(0, 0, 0).unwrap_or_default();
    match tz.from_local_datetime(&naive) {
        chrono::LocalResult::Single(t) | chrono::LocalResult::Ambiguous(t, _) => {
            t.with_timezone(&Utc)
        }
        chrono::LocalResult::None => tz
            .from_local_datetime(&(naive + Duration::hours(1)))
            .earliest()
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(|| Utc.from_utc_datetime(&naive)),
    }
}

fn col<C: sea_orm::sea_query::IntoIden>(table: impl sea_orm::sea_query::IntoIden, c: C) -> Expr {
    Expr::col((table, c))
}

fn t(c: ticket::Column) -> Expr {
    col(ticket::Entity, c)
}

fn r(c: ticket_routing::Column) -> Expr {
    col(ticket_routing::Entity, c)
}

/// The tickets whose `column` instant falls in `[from, to)`, narrowed to the scope: with
/// `created_at` these are the period's contacts (one per ticket, however many messages, calls
/// or visits it gathers), with `resolved_at` its resolutions. The dashboard's figures and the
/// reports (`crate::reports`) both count from this query, with [`count_all`].
pub(crate) fn tickets_between(
    column: ticket::Column,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    scope: &DashboardScope,
) -> SelectStatement {
    let mut q = Query::select();
    q.from(ticket::Entity)
        .and_where(t(column).gte(from))
        .and_where(t(column).lt(to));
    in_scope(&mut q, scope);
    q
}

/// `COUNT(*)`: every ticket row once (an index alone can answer it).
pub(crate) fn count_all() -> Expr {
    Expr::col(sea_orm::sea_query::Asterisk).count()
}

fn in_scope(q: &mut SelectStatement, scope: &DashboardScope) {
    if !scope.is_all() {
        q.and_where(t(ticket::Column::Tier).is_in(scope.slugs()));
    }
}

fn get<T: sea_orm::TryGetable>(row: &QueryResult, name: &str) -> Result<T, ServiceError> {
    row.try_get::<T>("", name)
        .map_err(|e| ServiceError::Internal(format!("dashboard column {name}: {e}")))
}

fn count(row: &QueryResult) -> Result<u64, ServiceError> {
    Ok(std::cmp::max(get::<i64>(row, "n")?, 0) as u64)
}

/// `CASE WHEN col < b1 THEN 0 WHEN col < b2 THEN 1 … ELSE n-1 END`: the hour of today an
/// instant falls in, computed by the database with plain comparisons so it works the same on
/// both backends and across clock changes.
fn hour_bucket(column: Expr, starts: &[DateTime<Utc>]) -> Expr {
    let mut case = CaseStatement::new();
    for (i, b) in starts.iter().enumerate().skip(1) {
        case = case.case(column.clone().lt(*b), Expr::val((i - 1) as i32));
    }
    case.finally(Expr::val(starts.len().saturating_sub(1) as i32))
        .into()
}

type RowKey = (String, String, Option<String>);

impl App {
    /// The deltas of a batch of events, each with the channel and tier of its ticket (events
    /// that do not carry them are completed from memory or, for tickets not seen yet, with
    /// one query for the whole batch), so the hub can send each delta only to the dashboards
    /// whose tiers it concerns.
    pub async fn dashboard_deltas(&self, events: &[std::sync::Arc<DomainEvent>]) -> Vec<Delta> {
        // Today's SLA figures change with responses, resolutions and breaches: forget them.
        let sla_moved = events.iter().any(|e| match &**e {
            DomainEvent::TicketTransitioned { from, to, .. } => {
                *to == Status::Resolved || *from == Status::Resolved
            }
            DomainEvent::EntryAdded { kind, .. } => matches!(
                kind,
                EntryKind::Outbound | EntryKind::Call | EntryKind::Visit
            ),
            DomainEvent::SlaChanged { .. } => true,
            _ => false,
        });
        if sla_moved && let Ok(mut today) = self.inner.dashboard.today.lock() {
            today.clear();
        }
        let mut deltas: Vec<Delta> = events.iter().filter_map(|e| delta(e)).collect();
        let cache = &self.inner.dashboard.queues;
        let mut missing: Vec<Uuid> = Vec::new();
        if let Ok(mut known) = cache.lock() {
            if known.len() > MAX_REMEMBERED {
                known.clear();
            }
            for d in &mut deltas {
                match (d.channel, d.tier, known.get(&d.ticket_id).copied()) {
                    // A tier in an event is the ticket's tier now (created, escalated, assigned).
                    (Some(c), Some(t), _) => {
                        known.insert(d.ticket_id, (c, t));
                    }
                    (None, Some(t), Some((c, _))) => {
                        d.channel = Some(c);
                        known.insert(d.ticket_id, (c, t));
                    }
                    (_, None, Some((c, t))) => {
                        d.channel.get_or_insert(c);
                        d.tier = Some(t);
                    }
                    _ => missing.push(d.ticket_id),
                }
            }
        }
        if missing.is_empty() {
            return deltas;
        }
        missing.sort();
        missing.dedup();
        let found = {
            use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QuerySelect};
            ticket::Entity::find()
                .select_only()
                .columns([
                    ticket::Column::Id,
                    ticket::Column::Channel,
                    ticket::Column::Tier,
                ])
                .filter(ticket::Column::Id.is_in(missing))
                .into_tuple()
                .all(&self.db().read)
                .await
        };
        let rows: Vec<(Uuid, String, String)> = match found {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(error = %e, "cannot look up the queues of dashboard deltas");
                return deltas;
            }
        };
        let looked_up: HashMap<Uuid, (Channel, Tier)> = rows
            .into_iter()
            .filter_map(|(id, c, t)| Some((id, (Channel::parse(&c).ok()?, Tier::parse(&t).ok()?))))
            .collect();
        for d in &mut deltas {
            if let Some((c, t)) = looked_up.get(&d.ticket_id) {
                d.channel.get_or_insert(*c);
                d.tier.get_or_insert(*t);
            }
        }
        if let Ok(mut known) = cache.lock() {
            known.extend(looked_up);
        }
        deltas
    }

    /// The dashboard of what the actor may see.
    pub async fn dashboard_snapshot(
        &self,
        actor: &Actor,
    ) -> Result<DashboardSnapshot, ServiceError> {
        let scope = DashboardScope::for_actor(actor)?;
        self.dashboard_snapshot_for(&scope).await
    }

    /// The dashboard of a scope (for the websocket hub, which shares one snapshot between all
    /// the clients of a scope).
    pub async fn dashboard_snapshot_for(
        &self,
        scope: &DashboardScope,
    ) -> Result<DashboardSnapshot, ServiceError> {
        let read = &self.db().read;
        let calendar = &self.inner.routing.calendar;
        let at = now();
        let day = calendar.local_date(at);
        let day_start = local_midnight(calendar, day);
        let next = day.succ_opt().unwrap_or(day);
        let day_end = std::cmp::max(
            local_midnight(calendar, next),
            day_start + Duration::hours(1),
        );
        let hours = ((day_end - day_start).num_minutes() as f64 / 60.0)
            .ceil()
            .clamp(1.0, 26.0) as i64;
        let starts: Vec<DateTime<Utc>> =
            (0..hours).map(|h| day_start + Duration::hours(h)).collect();

        let mut rows: BTreeMap<RowKey, QueueRow> = BTreeMap::new();
        let mut totals = Totals::default();
        self.active_figures(read, scope, at, &mut rows, &mut totals)
            .await?;
        let mut hourly: Vec<HourRow> = starts
            .iter()
            .map(|s| HourRow {
                hour: s.with_timezone(&calendar.timezone()).hour(),
                start: *s,
                ..HourRow::default()
            })
            .collect();
        self.period_figures(
            read,
            scope,
            ticket::Column::CreatedAt,
            (day_start, day_end),
            &starts,
            &mut rows,
            &mut hourly,
        )
        .await?;
        self.period_figures(
            read,
            scope,
            ticket::Column::ResolvedAt,
            (day_start, day_end),
            &starts,
            &mut rows,
            &mut hourly,
        )
        .await?;
        for row in rows.values() {
            totals.arrivals_today += row.arrivals_today;
            totals.resolved_today += row.resolved_today;
        }
        let at_risk = self.alerts(read, scope, "at_risk", at).await?;
        let breached = self.alerts(read, scope, "breached", at).await?;
        let operators = self.operator_figures(scope).await?;
        let sla = self.sla_figures(read, scope, day, day_start, at).await?;
        let phone = self.phone_figures(read, scope, at).await?;
        // The counter serves the front office.
        let counter = if scope.contains(Tier::FrontOffice) {
            Some(self.counter_figures(read, day, at).await?)
        } else {
            None
        };
        Ok(DashboardSnapshot {
            generated_at: at,
            timezone: calendar.timezone().name().to_owned(),
            day,
            tiers: scope.slugs(),
            totals,
            queues: rows.into_values().collect(),
            hourly,
            operators,
            sla,
            at_risk,
            breached,
            phone,
            counter,
        })
    }

    /// Active tickets grouped by channel, tier, category, status, whether anyone holds them
    /// and their SLA state.
    async fn active_figures(
        &self,
        read: &DatabaseConnection,
        scope: &DashboardScope,
        at: DateTime<Utc>,
        rows: &mut BTreeMap<RowKey, QueueRow>,
        totals: &mut Totals,
    ) -> Result<(), ServiceError> {
        let unassigned = t(ticket::Column::AssigneeId).is_null();
        let since = Func::min(Func::coalesce([
            r(ticket_routing::Column::EnqueuedAt),
            t(ticket::Column::CreatedAt),
        ]));
        let mut q = Query::select();
        q.expr_as(t(ticket::Column::Channel), Alias::new("channel"))
            .expr_as(t(ticket::Column::Tier), Alias::new("tier"))
            .expr_as(t(ticket::Column::Category), Alias::new("category"))
            .expr_as(t(ticket::Column::Status), Alias::new("status"))
            .expr_as(unassigned.clone(), Alias::new("unassigned"))
            .expr_as(r(ticket_routing::Column::SlaState), Alias::new("sla_state"))
            .expr_as(Expr::col(ticket::Column::Id).count(), Alias::new("n"))
            .expr_as(since, Alias::new("since"))
            .from(ticket::Entity)
            .left_join(
                ticket_routing::Entity,
                r(ticket_routing::Column::TicketId).equals((ticket::Entity, ticket::Column::Id)),
            )
            .and_where(t(ticket::Column::Status).is_in(ACTIVE))
            .add_group_by([
                t(ticket::Column::Channel),
                t(ticket::Column::Tier),
                t(ticket::Column::Category),
                t(ticket::Column::Status),
                unassigned,
                r(ticket_routing::Column::SlaState),
            ]);
        in_scope(&mut q, scope);
        for row in read.query_all(&q).await? {
            let key: RowKey = (
                get(&row, "channel")?,
                get(&row, "tier")?,
                get(&row, "category")?,
            );
            let status: String = get(&row, "status")?;
            let unassigned: bool = get(&row, "unassigned")?;
            let sla: Option<String> = get(&row, "sla_state")?;
            let n = count(&row)?;
            let since: Option<DateTime<Utc>> = get(&row, "since")?;
            let q = rows.entry(key.clone()).or_insert_with(|| QueueRow {
                channel: key.0.clone(),
                tier: key.1.clone(),
                category: key.2.clone(),
                ..QueueRow::default()
            });
            totals.active += n;
            match status.as_str() {
                "new" if unassigned => {
                    q.waiting += n;
                    totals.waiting += n;
                    if let Some(s) = since {
                        q.oldest_waiting_since =
                            Some(q.oldest_waiting_since.map_or(s, |o| std::cmp::min(o, s)));
                        totals.oldest_waiting_since = Some(
                            totals
                                .oldest_waiting_since
                                .map_or(s, |o| std::cmp::min(o, s)),
                        );
                    }
                }
                // A new ticket someone holds counts as assigned (the router sets both at once).
                "new" | "assigned" => {
                    q.assigned += n;
                    totals.assigned += n;
                }
                "open" => {
                    q.open += n;
                    totals.open += n;
                }
                "waiting_citizen" => {
                    q.waiting_citizen += n;
                    totals.waiting_citizen += n;
                }
                _ => {
                    q.waiting_internal += n;
                    totals.waiting_internal += n;
                }
            }
            match sla.as_deref() {
                Some("at_risk") => {
                    q.at_risk += n;
                    totals.at_risk += n;
                }
                Some("breached") => {
                    q.breached += n;
                    totals.breached += n;
                }
                _ => {}
            }
        }
        for q in rows.values_mut() {
            q.oldest_waiting_secs = q
                .oldest_waiting_since
                .map(|s| std::cmp::max((at - s).num_seconds(), 0));
        }
        Ok(())
    }

    /// Arrivals (`created_at`) or resolutions (`resolved_at`) of today, per row and hour.
    #[allow(clippy::too_many_arguments)]
    async fn period_figures(
        &self,
        read: &DatabaseConnection,
        scope: &DashboardScope,
        column: ticket::Column,
        (from, to): (DateTime<Utc>, DateTime<Utc>),
        starts: &[DateTime<Utc>],
        rows: &mut BTreeMap<RowKey, QueueRow>,
        hourly: &mut [HourRow],
    ) -> Result<(), ServiceError> {
        let bucket = hour_bucket(t(column), starts);
        let mut q = tickets_between(column, from, to, scope);
        q.expr_as(t(ticket::Column::Channel), Alias::new("channel"))
            .expr_as(t(ticket::Column::Tier), Alias::new("tier"))
            .expr_as(t(ticket::Column::Category), Alias::new("category"))
            .expr_as(bucket, Alias::new("bucket"))
            .expr_as(count_all(), Alias::new("n"))
            // By name: PostgreSQL cannot tell that the CASE in the select list (with its bound
            // instants) is the same expression as a second copy here.
            .add_group_by([
                t(ticket::Column::Channel),
                t(ticket::Column::Tier),
                t(ticket::Column::Category),
                Expr::col(Alias::new("bucket")),
            ]);
        let arrivals = matches!(column, ticket::Column::CreatedAt);
        for row in read.query_all(&q).await? {
            let key: RowKey = (
                get(&row, "channel")?,
                get(&row, "tier")?,
                get(&row, "category")?,
            );
            let bucket: i32 = get(&row, "bucket")?;
            let n = count(&row)?;
            let q = rows.entry(key.clone()).or_insert_with(|| QueueRow {
                channel: key.0.clone(),
                tier: key.1.clone(),
                category: key.2.clone(),
                ..QueueRow::default()
            });
            let hour = usize::try_from(bucket).ok().and_then(|b| hourly.get_mut(b));
            if arrivals {
                q.arrivals_today += n;
                if let Some(h) = hour {
                    h.arrivals += n;
                    *h.arrivals_by_channel.entry(key.0).or_default() += n;
                }
            } else {
                q.resolved_today += n;
                if let Some(h) = hour {
                    h.resolutions += n;
                }
            }
        }
        Ok(())
    }

    /// Active tickets in an SLA state, listed by deadline.
    async fn alerts(
        &self,
        read: &DatabaseConnection,
        scope: &DashboardScope,
        state: &str,
        at: DateTime<Utc>,
    ) -> Result<Vec<TicketAlert>, ServiceError> {
        let mut q = Query::select();
        q.expr_as(t(ticket::Column::Id), Alias::new("id"))
            .expr_as(t(ticket::Column::Number), Alias::new("number"))
            .expr_as(t(ticket::Column::Channel), Alias::new("channel"))
            .expr_as(t(ticket::Column::Tier), Alias::new("tier"))
            .expr_as(t(ticket::Column::Category), Alias::new("category"))
            .expr_as(t(ticket::Column::Priority), Alias::new("priority"))
            .expr_as(t(ticket::Column::Status), Alias::new("status"))
            .expr_as(t(ticket::Column::AssigneeId), Alias::new("assignee_id"))
            .expr_as(t(ticket::Column::SlaDueAt), Alias::new("due"))
            .from(ticket::Entity)
            .inner_join(
                ticket_routing::Entity,
                r(ticket_routing::Column::TicketId).equals((ticket::Entity, ticket::Column::Id)),
            )
            .and_where(r(ticket_routing::Column::SlaState).eq(state))
            .and_where(t(ticket::Column::Status).is_in(ACTIVE))
            .order_by_expr(t(ticket::Column::SlaDueAt), Order::Asc)
            .order_by_expr(t(ticket::Column::Id), Order::Asc)
            .limit(MAX_LISTED);
        in_scope(&mut q, scope);
        read.query_all(&q)
            .await?
            .iter()
            .map(|row| {
                let due: Option<DateTime<Utc>> = get(row, "due")?;
                Ok(TicketAlert {
                    ticket_id: get(row, "id")?,
                    number: get(row, "number")?,
                    channel: get(row, "channel")?,
                    tier: get(row, "tier")?,
                    category: get(row, "category")?,
                    priority: get(row, "priority")?,
                    status: get(row, "status")?,
                    assigned: get::<Option<Uuid>>(row, "assignee_id")?.is_some(),
                    sla_state: state.to_owned(),
                    due,
                    seconds_left: due.map(|d| (d - at).num_seconds()),
                })
            })
            .collect()
    }

    async fn operator_figures(
        &self,
        scope: &DashboardScope,
    ) -> Result<OperatorFigures, ServiceError> {
        let mut out = OperatorFigures::default();
        for o in self.list_operators_inner(None).await? {
            let tiers = &o.profile.tiers;
            if !scope.is_all() && !tiers.iter().any(|t| scope.contains(*t)) {
                continue;
            }
            *out.by_presence
                .entry(o.presence.as_str().to_owned())
                .or_default() += 1;
            if o.on_shift {
                out.on_shift += 1;
            }
            out.items.push(OperatorRow {
                user_id: o.user_id,
                username: o.username,
                name: o.name,
                presence: o.presence.as_str().to_owned(),
                presence_since: o.presence_since,
                on_shift: o.on_shift,
                tiers: tiers.iter().map(|t| t.as_str().to_owned()).collect(),
                load: o.load,
                capacity: o
                    .profile
                    .capacity
                    .iter()
                    .map(|(c, n)| (c.as_str().to_owned(), *n))
                    .collect(),
            });
        }
        Ok(out)
    }

    async fn phone_figures(
        &self,
        read: &DatabaseConnection,
        scope: &DashboardScope,
        at: DateTime<Utc>,
    ) -> Result<PhoneFigures, ServiceError> {
        let deadline = col(callback::Entity, callback::Column::Deadline);
        let overdue = CaseStatement::new()
            .case(deadline.clone().lt(at), Expr::val(1i32))
            .finally(Expr::val(0i32));
        let mut q = Query::select();
        q.expr_as(
            Expr::col((callback::Entity, callback::Column::TicketId)).count(),
            Alias::new("n"),
        )
        .expr_as(
            Func::sum(Into::<Expr>::into(overdue)),
            Alias::new("overdue"),
        )
        .expr_as(Func::min(deadline), Alias::new("oldest"))
        .from(callback::Entity)
        .inner_join(
            ticket::Entity,
            t(ticket::Column::Id).equals((callback::Entity, callback::Column::TicketId)),
        )
        .and_where(col(callback::Entity, callback::Column::State).eq("open"));
        in_scope(&mut q, scope);
        let Some(row) = read.query_one(&q).await? else {
            return Ok(PhoneFigures::default());
        };
        // SUM is NULL over no rows; of an integer CASE it is a bigint on both backends.
        let overdue: Option<i64> = get(&row, "overdue")?;
        let overdue = overdue.unwrap_or(0);
        Ok(PhoneFigures {
            callbacks_pending: count(&row)?,
            callbacks_overdue: std::cmp::max(overdue, 0) as u64,
            oldest_callback_deadline: get(&row, "oldest")?,
        })
    }

    /// Today at the counter: visitors checked in and not yet called, desks of the sessions open
    /// now, no-shows so far.
    async fn counter_figures(
        &self,
        read: &DatabaseConnection,
        day: NaiveDate,
        at: DateTime<Utc>,
    ) -> Result<CounterFigures, ServiceError> {
        let today = day.format("%Y-%m-%d").to_string();
        let mut q = Query::select();
        q.expr_as(
            col(counter_booking::Entity, counter_booking::Column::State),
            Alias::new("state"),
        )
        .expr_as(
            Expr::col(counter_booking::Column::Id).count(),
            Alias::new("n"),
        )
        .from(counter_booking::Entity)
        .and_where(col(counter_booking::Entity, counter_booking::Column::Day).eq(today.clone()))
        .add_group_by([col(counter_booking::Entity, counter_booking::Column::State)]);
        let mut out = CounterFigures::default();
        for row in read.query_all(&q).await? {
            let state: String = get(&row, "state")?;
            match state.as_str() {
                "checked_in" => out.visitors_waiting += count(&row)?,
                "no_show" => out.no_shows_today += count(&row)?,
                _ => {}
            }
        }
        let mut q = Query::select();
        q.expr_as(
            col(counter_session::Entity, counter_session::Column::StartTime),
            Alias::new("start_time"),
        )
        .expr_as(
            col(counter_session::Entity, counter_session::Column::EndTime),
            Alias::new("end_time"),
        )
        .expr_as(
            col(counter_session::Entity, counter_session::Column::Desks),
            Alias::new("desks"),
        )
        .from(counter_session::Entity)
        .and_where(col(counter_session::Entity, counter_session::Column::Day).eq(today));
        // Times are zero-padded `HH:MM`, so they compare as text.
        let local = at
            .with_timezone(&self.inner.routing.calendar.timezone())
            .format("%H:%M")
            .to_string();
        for row in read.query_all(&q).await? {
            let (start, end): (String, String) = (get(&row, "start_time")?, get(&row, "end_time")?);
            if start.as_str() <= local.as_str() && local.as_str() < end.as_str() {
                out.desks_open += std::cmp::max(get::<i32>(&row, "desks")?, 0) as u64;
            }
        }
        Ok(out)
    }

    /// SLA figures for today and the last seven days, from the period's stored clocks.
    async fn sla_figures(
        &self,
        read: &DatabaseConnection,
        scope: &DashboardScope,
        day: NaiveDate,
        day_start: DateTime<Utc>,
        at: DateTime<Utc>,
    ) -> Result<SlaFigures, ServiceError> {
        let calendar = &self.inner.routing.calendar;
        let week_start = local_midnight(calendar, day - Duration::days(6));
        let cache = &self.inner.dashboard;
        let cached = |m: &Mutex<HashMap<DashboardScope, (NaiveDate, Instant, SlaSamples)>>,
                      ttl: StdDuration| {
            m.lock().ok().and_then(|c| {
                c.get(scope)
                    .filter(|(d, made, _)| *d == day && made.elapsed() < ttl)
                    .map(|(_, _, s)| s.clone())
            })
        };
        let history = match cached(&cache.history, HISTORY_TTL) {
            Some(s) => s,
            None => {
                let s = self
                    .sla_samples(read, scope, week_start, day_start, at)
                    .await?;
                if let Ok(mut c) = cache.history.lock() {
                    c.insert(scope.clone(), (day, Instant::now(), s.clone()));
                }
                s
            }
        };
        let today = match cached(&cache.today, TODAY_SLA_TTL) {
            Some(s) => s,
            None => {
                let s = self
                    .sla_samples(read, scope, day_start, at + Duration::seconds(1), at)
                    .await?;
                if let Ok(mut c) = cache.today.lock() {
                    c.insert(scope.clone(), (day, Instant::now(), s.clone()));
                }
                s
            }
        };
        Ok(SlaFigures {
            today: today.period(day_start, at),
            last_7_days: history.merge(&today).period(week_start, at),
        })
    }

    /// Business-time samples of first responses and resolutions given in `[from, to)`, and
    /// the unanswered tickets whose first-response deadline passed in it.
    async fn sla_samples(
        &self,
        read: &DatabaseConnection,
        scope: &DashboardScope,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        at: DateTime<Utc>,
    ) -> Result<SlaSamples, ServiceError> {
        let mut s = self
            .sla_given_by(read, scope, None, from, to, at)
            .await?
            .remove(&None)
            .unwrap_or_default();
        s.first_overdue += self
            .sla_overdue_by(read, scope, None, from, to, at)
            .await?
            .remove(&None)
            .unwrap_or(0);
        Ok(s)
    }

    /// The SLA clocks of the tickets matching `filter`, with the group key when asked.
    fn sla_clocks(scope: &DashboardScope, group: Option<&Expr>, filter: Expr) -> SelectStatement {
        let mut q = Query::select();
        q.expr_as(r(ticket_routing::Column::SlaClock), Alias::new("clock"))
            .from(ticket::Entity)
            .inner_join(
                ticket_routing::Entity,
                r(ticket_routing::Column::TicketId).equals((ticket::Entity, ticket::Column::Id)),
            )
            .and_where(filter);
        if let Some(g) = group {
            q.expr_as(g.clone(), Alias::new("key"));
        }
        in_scope(&mut q, scope);
        q
    }

    /// Business-time samples of first responses (`first_response_at`) and resolutions
    /// (`resolved_at`) given in `[from, to)`, per value of `group` (one `None` group without).
    /// The dashboard's SLA figures and the SLA report both come from here.
    pub(crate) async fn sla_given_by(
        &self,
        read: &DatabaseConnection,
        scope: &DashboardScope,
        group: Option<&Expr>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        at: DateTime<Utc>,
    ) -> Result<BTreeMap<Option<String>, SlaSamples>, ServiceError> {
        let calendar = &self.inner.routing.calendar;
        let mut out: BTreeMap<Option<String>, SlaSamples> = BTreeMap::new();
        for (column, kind) in [
            (ticket::Column::FirstResponseAt, TimerKind::FirstResponse),
            (ticket::Column::ResolvedAt, TimerKind::Resolution),
        ] {
            let filter = t(column).gte(from).and(t(column).lt(to));
            for row in read
                .query_all(&Self::sla_clocks(scope, group, filter))
                .await?
            {
                let Some(clock) = parse_clock(&row) else {
                    continue;
                };
                let Some(timer) = clock.timer(kind) else {
                    continue;
                };
                if timer.stopped_at.is_none() {
                    continue;
                }
                if let Some(spent) = clock.spent(kind, at, calendar) {
                    let key = if group.is_some() {
                        get(&row, "key")?
                    } else {
                        None
                    };
                    let s = out.entry(key).or_default();
                    let within = !timer.was_late();
                    if kind == TimerKind::FirstResponse {
                        s.first_secs.push(spent.num_seconds());
                        s.first_within += u64::from(within);
                    } else {
                        s.resolution_secs.push(spent.num_seconds());
                        s.resolution_within += u64::from(within);
                    }
                }
            }
        }
        Ok(out)
    }

    /// Unanswered active tickets whose first-response deadline passed in `[from, to)` (and
    /// before `at`), per value of `group`: misses, though no response was given yet.
    pub(crate) async fn sla_overdue_by(
        &self,
        read: &DatabaseConnection,
        scope: &DashboardScope,
        group: Option<&Expr>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        at: DateTime<Utc>,
    ) -> Result<BTreeMap<Option<String>, u64>, ServiceError> {
        let mut out = BTreeMap::new();
        // Unanswered and past the deadline: only breached tickets can be, so few are read.
        let overdue = t(ticket::Column::FirstResponseAt)
            .is_null()
            .and(t(ticket::Column::Status).is_in(ACTIVE))
            .and(r(ticket_routing::Column::SlaState).eq("breached"));
        for row in read
            .query_all(&Self::sla_clocks(scope, group, overdue))
            .await?
        {
            let Some(clock) = parse_clock(&row) else {
                continue;
            };
            let Some(timer) = clock.timer(TimerKind::FirstResponse) else {
                continue;
            };
            if timer.stopped_at.is_none()
                && timer.due.is_some_and(|d| d >= from && d < to && d < at)
            {
                let key = if group.is_some() {
                    get(&row, "key")?
                } else {
                    None
                };
                *out.entry(key).or_default() += 1;
            }
        }
        Ok(out)
    }
}

fn parse_clock(row: &QueryResult) -> Option<SlaClock> {
    let text: String = row.try_get("", "clock").ok()?;
    serde_json::from_str(&text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        assert_eq!(percentile(&[], 50), None);
        assert_eq!(percentile(&[7], 90), Some(7));
        let v: Vec<i64> = (1..=10).collect();
        assert_eq!(percentile(&v, 50), Some(5));
        assert_eq!(percentile(&v, 90), Some(9));
        assert_eq!(percentile(&v, 100), Some(10));
    }

    #[test]
    fn deltas_carry_queue_attributes_and_no_personal_data() {
        let id = Uuid::now_v7();
        let at = Utc::now();
        let d = delta(&DomainEvent::TicketCreated {
            ticket_id: id,
            number: "SP-2026-000001".into(),
            channel: Channel::Email,
            tier: Tier::FrontOffice,
            category: Some("eligibility".into()),
            at,
        })
        .unwrap();
        assert_eq!(d.event, "ticket_created");
        assert_eq!(d.channel, Some(Channel::Email));
        assert_eq!(d.status, Some(Status::New));
        let json = serde_json::to_value(&d).unwrap();
        assert_eq!(json["tier"], "front_office");
        assert!(
            json.get("assigned").is_none(),
            "absent fields are left out: {json}"
        );

        let d = delta(&DomainEvent::TicketAssigned {
            ticket_id: id,
            assignee_id: Some(Uuid::now_v7()),
            tier: Tier::BackOffice,
            at,
        })
        .unwrap();
        assert_eq!(d.assigned, Some(true));
        let json = serde_json::to_string(&d).unwrap();
        assert!(
            !json.contains("assignee"),
            "who holds a ticket is not part of a delta: {json}"
        );

        let d = delta(&DomainEvent::TicketTransitioned {
            ticket_id: id,
            from: Status::Open,
            to: Status::Resolved,
            at,
        })
        .unwrap();
        assert_eq!(
            (d.from, d.status),
            (Some(Status::Open), Some(Status::Resolved))
        );
        assert!(delta(&DomainEvent::CitizenCreated { citizen_id: id, at }).is_none());
    }

    #[test]
    fn operators_see_their_tiers_and_supervisors_everything() {
        let actor = |roles: Vec<Role>| Actor {
            id: Uuid::now_v7(),
            username: "u".into(),
            name: "U".into(),
            roles,
        };
        let front = DashboardScope::for_actor(&actor(vec![Role::FrontOffice])).unwrap();
        assert_eq!(front.tiers(), &[Tier::FrontOffice]);
        assert!(!front.is_all());
        assert!(
            DashboardScope::for_actor(&actor(vec![Role::Supervisor]))
                .unwrap()
                .is_all()
        );
        assert!(
            DashboardScope::for_actor(&actor(vec![Role::Admin]))
                .unwrap()
                .is_all()
        );
    }

    #[test]
    fn hours_of_a_day_follow_clock_changes() {
        let cal = BusinessCalendar::default();
        // 29 March 2026: Italy moves to summer time, the day has 23 hours.
        let d = NaiveDate::from_ymd_opt(2026, 3, 29).unwrap();
        let start = local_midnight(&cal, d);
        let end = local_midnight(&cal, d.succ_opt().unwrap());
        assert_eq!((end - start).num_hours(), 23);
        assert_eq!(start.to_rfc3339(), "2026-03-28T23:00:00+00:00");
    }

    #[test]
    fn attainment_counts_overdue_tickets_as_misses() {
        let s = SlaSamples {
            first_secs: vec![60, 120, 600],
            first_within: 2,
            first_overdue: 1,
            ..Default::default()
        };
        let p = s.period(Utc::now(), Utc::now());
        assert_eq!(p.first_response_attainment, Some(0.5));
        assert_eq!(p.first_response_p50_secs, Some(120));
        assert_eq!(p.resolution_attainment, None);
    }
}
