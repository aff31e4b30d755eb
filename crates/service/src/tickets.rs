//! Tickets: create, list, read with the timeline, move through the status machine, add entries.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, TransactionTrait,
};
use serde::{Deserialize, Serialize};
use sportello_domain::event::DomainEvent;
use sportello_domain::taxonomy::TaxonomyKind;
use sportello_domain::ticket::normalise_tags;
use sportello_domain::{Channel, EntryKind, Priority, Status, Tier};
use sportello_store::entities::{call, citizen, ticket, ticket_entry, user};
use sportello_store::query::{self, Order, TicketFilter};
use uuid::Uuid;

use crate::citizens::{NewCitizen, ValidCitizen, find_or_create};
use crate::error::Problems;
use crate::util::{bounded, now};
use crate::{Actor, App, ServiceError};

/// Longest subject and body accepted.
pub const MAX_SUBJECT: usize = 300;
pub const MAX_BODY: usize = 100_000;

/// The citizen a ticket is about, as lists show it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct CitizenRef {
    pub id: Uuid,
    pub name: String,
}

/// A ticket as the API shows it; `timeline` only when one ticket is read.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct TicketView {
    pub id: Uuid,
    pub number: String,
    #[schema(value_type = String)]
    pub channel: Channel,
    #[schema(value_type = String)]
    pub tier: Tier,
    #[schema(value_type = String)]
    pub status: Status,
    #[schema(value_type = String)]
    pub priority: Priority,
    pub category: Option<String>,
    pub measure: Option<String>,
    pub subject: String,
    pub citizen_id: Option<Uuid>,
    pub citizen: Option<CitizenRef>,
    pub assignee_id: Option<Uuid>,
    pub tags: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub first_response_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    /// The SLA policy, deadlines and state, once the router has routed the ticket.
    pub sla: Option<crate::routing::SlaView>,
    /// Why nobody has taken the ticket yet (while it waits unassigned).
    #[schema(value_type = Option<Object>)]
    pub waiting_reason: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeline: Option<Vec<EntryView>>,
}

/// One entry of a ticket's timeline.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct EntryView {
    pub id: Uuid,
    #[schema(value_type = String)]
    pub kind: EntryKind,
    pub author_id: Option<Uuid>,
    pub author_name: Option<String>,
    pub body: String,
    pub body_html: Option<String>,
    pub meta: Option<serde_json::Value>,
    pub created_at: DateTime<Utc>,
}

/// A new ticket. Enumerations travel as slugs and are validated here, so every wrong field is
/// reported by name at once.
#[derive(Clone, Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct NewTicket {
    pub channel: String,
    pub subject: String,
    pub body: Option<String>,
    pub category: Option<String>,
    pub measure: Option<String>,
    pub priority: Option<String>,
    /// Defaults to the front office.
    pub tier: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    pub citizen_id: Option<Uuid>,
    /// The requester, found by codice fiscale, e-mail or phone, or created.
    pub citizen: Option<NewCitizen>,
}

/// A status change.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
pub struct TransitionRequest {
    pub to: String,
    pub reason: Option<String>,
}

/// A timeline entry written by an operator.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
pub struct NewEntry {
    /// Only `note` for now; messages, calls and visits come from their channels.
    pub kind: String,
    pub body: String,
}

/// List parameters as the API receives them.
#[derive(Clone, Debug, Default, Deserialize, utoipa::IntoParams)]
pub struct TicketQuery {
    /// One status, or several separated by commas.
    pub status: Option<String>,
    pub channel: Option<String>,
    pub tier: Option<String>,
    pub category: Option<String>,
    pub measure: Option<String>,
    /// A user id, or `none` for unassigned tickets.
    pub assignee: Option<String>,
    pub citizen_id: Option<Uuid>,
    /// Ticket number or words of the subject.
    pub q: Option<String>,
    /// `desc` (newest first, default) or `asc` (oldest first, queue order).
    pub order: Option<String>,
    /// Page size, 1–200 (default 50).
    pub limit: Option<u64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// One page of tickets.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TicketPage {
    pub items: Vec<TicketView>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

fn parse_stored<T, E>(value: &str, parse: impl Fn(&str) -> Result<T, E>, fallback: T) -> T {
    parse(value).unwrap_or(fallback)
}

fn view(t: ticket::Model, citizen: Option<CitizenRef>) -> TicketView {
    TicketView {
        id: t.id,
        number: t.number,
        channel: parse_stored(&t.channel, Channel::parse, Channel::Internal),
        tier: parse_stored(&t.tier, Tier::parse, Tier::FrontOffice),
        status: parse_stored(&t.status, Status::parse, Status::New),
        priority: parse_stored(&t.priority, Priority::parse, Priority::Normal),
        category: t.category,
        measure: t.measure,
        subject: t.subject,
        citizen_id: t.citizen_id,
        citizen,
        assignee_id: t.assignee_id,
        tags: serde_json::from_str(&t.tags).unwrap_or_default(),
        created_at: t.created_at,
        updated_at: t.updated_at,
        first_response_at: t.first_response_at,
        resolved_at: t.resolved_at,
        closed_at: t.closed_at,
        sla: None,
        waiting_reason: None,
        timeline: None,
    }
}

/// Views of many tickets, with their citizens' names fetched in one query.
pub(crate) async fn summaries<C: ConnectionTrait>(
    conn: &C,
    rows: Vec<ticket::Model>,
) -> Result<Vec<TicketView>, sea_orm::DbErr> {
    let mut ids: Vec<Uuid> = rows.iter().filter_map(|t| t.citizen_id).collect();
    ids.sort();
    ids.dedup();
    let names: HashMap<Uuid, String> = if ids.is_empty() {
        HashMap::new()
    } else {
        citizen::Entity::find()
            .filter(citizen::Column::Id.is_in(ids))
            .all(conn)
            .await?
            .into_iter()
            .map(|c| (c.id, c.name))
            .collect()
    };
    let routing =
        crate::routing::routing_of(conn, &rows.iter().map(|t| t.id).collect::<Vec<_>>()).await?;
    let at = Utc::now();
    Ok(rows
        .into_iter()
        .map(|t| {
            let c = t.citizen_id.and_then(|id| {
                names.get(&id).map(|n| CitizenRef {
                    id,
                    name: n.clone(),
                })
            });
            let id = t.id;
            let mut v = view(t, c);
            crate::routing::decorate(&mut v, routing.get(&id), at);
            v
        })
        .collect())
}

/// Adds a system entry (assignment, escalation, SLA event) to a ticket's timeline.
pub(crate) async fn insert_system_entry<C: ConnectionTrait>(
    conn: &C,
    ticket_id: Uuid,
    author: Option<Uuid>,
    body: String,
    meta: serde_json::Value,
    at: DateTime<Utc>,
) -> Result<(), sea_orm::DbErr> {
    insert_entry(
        conn,
        &new_entry(ticket_id, EntryKind::System, author, body, Some(meta), at),
    )
    .await
}

/// One timeline from the ticket's entries (in the order they were written) and its calls (in
/// the order they started): a call goes before the first entry written after it started.
fn merge_by_time(
    entries: impl Iterator<Item = EntryView>,
    calls: impl Iterator<Item = EntryView>,
) -> Vec<EntryView> {
    let mut entries = entries.peekable();
    let mut calls = calls.peekable();
    let mut out = Vec::new();
    loop {
        let call_first = match (entries.peek(), calls.peek()) {
            (Some(e), Some(c)) => c.created_at < e.created_at,
            (None, Some(_)) => true,
            (_, None) => false,
        };
        let next = if call_first {
            calls.next()
        } else {
            entries.next()
        };
        match next {
            Some(item) => out.push(item),
            None => return out,
        }
    }
}

fn entry_view(e: ticket_entry::Model, names: &HashMap<Uuid, String>) -> EntryView {
    EntryView {
        id: e.id,
        kind: parse_stored(&e.kind, EntryKind::parse, EntryKind::System),
        author_name: e.author_id.and_then(|a| names.get(&a).cloned()),
        author_id: e.author_id,
        body: e.body,
        body_html: e.body_html,
        meta: e.meta.and_then(|m| serde_json::from_str(&m).ok()),
        created_at: e.created_at,
    }
}

fn new_entry(
    ticket_id: Uuid,
    kind: EntryKind,
    author: Option<Uuid>,
    body: String,
    meta: Option<serde_json::Value>,
    at: DateTime<Utc>,
) -> ticket_entry::Model {
    ticket_entry::Model {
        id: Uuid::now_v7(),
        ticket_id,
        kind: kind.as_str().to_owned(),
        author_id: author,
        body,
        body_html: None,
        meta: meta.map(|m| m.to_string()),
        created_at: at,
    }
}

async fn insert_entry<C: ConnectionTrait>(
    conn: &C,
    e: &ticket_entry::Model,
) -> Result<(), sea_orm::DbErr> {
    let am: ticket_entry::ActiveModel = e.clone().into();
    ticket_entry::Entity::insert(am)
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

/// A validated `NewTicket`.
pub(crate) struct ValidTicket {
    channel: Channel,
    tier: Tier,
    priority: Priority,
    subject: String,
    body: Option<String>,
    category: Option<String>,
    measure: Option<String>,
    tags: Vec<String>,
    citizen: Option<ValidCitizen>,
}

/// Writes a new ticket (and its citizen, first entry and audit records) inside `txn`.
///
/// Returns the ticket's view and the events to publish once `txn` commits. Fails before
/// writing anything when `citizen_id` names no citizen.
pub(crate) async fn insert_ticket<C: ConnectionTrait>(
    txn: &C,
    job: &crate::intake::CreateJob,
) -> Result<(TicketView, Vec<DomainEvent>), ServiceError> {
    let (v, at, id) = (&job.ticket, job.at, job.id);
    let mut events = Vec::new();
    let citizen_ref = match (job.citizen_id, &v.citizen) {
        (Some(cid), _) => {
            let Some(c) = citizen::Entity::find_by_id(cid).one(txn).await? else {
                return Err(ServiceError::field(
                    "citizen_id",
                    format!("no citizen with id {cid}"),
                ));
            };
            Some(CitizenRef {
                id: c.id,
                name: c.name,
            })
        }
        (None, Some(c)) => {
            let (cid, name, created) = find_or_create(txn, c).await?;
            if created {
                crate::audit::record(
                    txn,
                    Some(job.actor_id),
                    "citizen.created",
                    "citizen",
                    Some(cid),
                    None,
                )
                .await?;
                events.push(DomainEvent::CitizenCreated {
                    citizen_id: cid,
                    at,
                });
            }
            Some(CitizenRef { id: cid, name })
        }
        (None, None) => None,
    };
    let model = ticket::Model {
        id,
        number: job.number.clone(),
        channel: v.channel.as_str().to_owned(),
        tier: v.tier.as_str().to_owned(),
        status: Status::New.as_str().to_owned(),
        priority: v.priority.as_str().to_owned(),
        category: v.category.clone(),
        measure: v.measure.clone(),
        subject: v.subject.clone(),
        citizen_id: citizen_ref.as_ref().map(|c| c.id),
        assignee_id: None,
        tags: serde_json::to_string(&v.tags).unwrap_or_else(|_| "[]".into()),
        created_by: Some(job.actor_id),
        created_at: at,
        updated_at: at,
        first_response_at: None,
        resolved_at: None,
        closed_at: None,
        sla_due_at: None,
    };
    let am: ticket::ActiveModel = model.clone().into();
    ticket::Entity::insert(am)
        .exec_without_returning(txn)
        .await?;
    if let Some(body) = &v.body {
        insert_entry(
            txn,
            &new_entry(id, EntryKind::Inbound, None, body.clone(), None, at),
        )
        .await?;
    }
    crate::audit::record(
        txn,
        Some(job.actor_id),
        "ticket.created",
        "ticket",
        Some(id),
        Some(serde_json::json!({ "number": model.number, "channel": model.channel })),
    )
    .await?;
    events.push(DomainEvent::TicketCreated {
        ticket_id: id,
        number: model.number.clone(),
        channel: v.channel,
        tier: v.tier,
        category: v.category.clone(),
        at,
    });
    Ok((view(model, citizen_ref), events))
}

impl App {
    fn check_slug(
        &self,
        p: &mut Problems,
        field: &str,
        kind: TaxonomyKind,
        value: Option<&str>,
    ) -> Option<String> {
        let v = value.map(str::trim).filter(|v| !v.is_empty())?;
        if self.taxonomy().contains(kind, v) {
            Some(v.to_owned())
        } else {
            let known: Vec<String> = match kind {
                TaxonomyKind::Category => self
                    .taxonomy()
                    .categories
                    .into_iter()
                    .map(|e| e.slug)
                    .collect(),
                TaxonomyKind::Measure => self
                    .taxonomy()
                    .measures
                    .into_iter()
                    .map(|e| e.slug)
                    .collect(),
            };
            p.add(
                field,
                format!(
                    "unknown {} '{v}' (expected one of: {})",
                    kind.as_str(),
                    known.join(", ")
                ),
            );
            None
        }
    }

    fn validate_ticket(&self, input: &NewTicket) -> Result<ValidTicket, ServiceError> {
        let mut p = Problems::default();
        let channel = p.check("channel", Channel::parse(input.channel.trim()));
        let tier = match &input.tier {
            Some(t) => p.check("tier", Tier::parse(t.trim())),
            None => Some(Tier::FrontOffice),
        };
        let priority = match &input.priority {
            Some(t) => p.check("priority", Priority::parse(t.trim())),
            None => Some(Priority::Normal),
        };
        let subject = p.check("subject", bounded(&input.subject, 1, MAX_SUBJECT));
        let body = input
            .body
            .as_deref()
            .map(str::trim)
            .filter(|b| !b.is_empty())
            .map(str::to_owned);
        if body.as_ref().is_some_and(|b| b.len() > MAX_BODY) {
            p.add("body", format!("must be at most {MAX_BODY} bytes"));
        }
        let category = self.check_slug(
            &mut p,
            "category",
            TaxonomyKind::Category,
            input.category.as_deref(),
        );
        let measure = self.check_slug(
            &mut p,
            "measure",
            TaxonomyKind::Measure,
            input.measure.as_deref(),
        );
        let tags = p.check("tags", normalise_tags(&input.tags));
        let citizen = input
            .citizen
            .as_ref()
            .and_then(|c| ValidCitizen::parse(c, "citizen", &mut p));
        if input.citizen.is_some() && input.citizen_id.is_some() {
            p.add("citizen", "give either citizen_id or citizen, not both");
        }
        p.finish()?;
        match (channel, tier, priority, subject, tags) {
            (Some(channel), Some(tier), Some(priority), Some(subject), Some(tags)) => {
                Ok(ValidTicket {
                    channel,
                    tier,
                    priority,
                    subject,
                    body,
                    category,
                    measure,
                    tags,
                    citizen,
                })
            }
            _ => Err(ServiceError::Internal(
                "validation produced no value".into(),
            )),
        }
    }

    /// Opens a ticket, finding or creating its citizen, in one transaction.
    pub async fn create_ticket(
        &self,
        actor: &Actor,
        input: NewTicket,
    ) -> Result<TicketView, ServiceError> {
        actor.require_operator()?;
        let v = self.validate_ticket(&input)?;
        actor.require_tier(v.tier)?;
        let number = self.inner.numbers.next(&self.db().write).await?;
        let job = crate::intake::CreateJob {
            actor_id: actor.id,
            ticket: v,
            citizen_id: input.citizen_id,
            number: number.as_str().to_owned(),
            id: Uuid::now_v7(),
            at: now(),
        };
        let (view, events) = self.inner.intake.submit(job).await?;
        self.bus().publish_all(events);
        tracing::info!(ticket.id = %view.id, ticket.number = %view.number, channel = %view.channel, "ticket created");
        Ok(view)
    }

    fn filter_for(&self, actor: &Actor, q: &TicketQuery) -> Result<TicketFilter, ServiceError> {
        let mut p = Problems::default();
        let mut f = TicketFilter::default();
        if let Some(s) = q.status.as_deref().filter(|s| !s.is_empty()) {
            for part in s.split(',') {
                if let Some(st) = p.check("status", Status::parse(part.trim())) {
                    f.statuses.push(st.as_str().to_owned());
                }
            }
        }
        if let Some(c) = q.channel.as_deref().filter(|s| !s.is_empty()) {
            f.channel = p
                .check("channel", Channel::parse(c))
                .map(|c| c.as_str().to_owned());
        }
        let visible = actor.tiers();
        match q.tier.as_deref().filter(|s| !s.is_empty()) {
            Some(t) => {
                if let Some(tier) = p.check("tier", Tier::parse(t)) {
                    if !visible.contains(&tier) {
                        return Err(ServiceError::Forbidden(format!(
                            "you have no access to {tier} tickets"
                        )));
                    }
                    f.tiers = vec![tier.as_str().to_owned()];
                }
            }
            // Seeing every tier needs no tier condition, which keeps the status indexes usable.
            None if visible.len() == Tier::ALL.len() => {}
            None => f.tiers = visible.iter().map(|t| t.as_str().to_owned()).collect(),
        }
        f.category = q.category.clone().filter(|s| !s.is_empty());
        f.measure = q.measure.clone().filter(|s| !s.is_empty());
        match q.assignee.as_deref().filter(|s| !s.is_empty()) {
            Some("none") => f.unassigned = true,
            Some(a) => {
                f.assignee = p.check(
                    "assignee",
                    Uuid::parse_str(a).map_err(|_| "must be a user id or 'none'"),
                )
            }
            None => {}
        }
        f.citizen_id = q.citizen_id;
        f.text = q.q.clone().filter(|s| !s.trim().is_empty());
        if f.text.as_ref().is_some_and(|t| t.len() > 200) {
            p.add("q", "must be at most 200 bytes");
        }
        p.finish()?;
        Ok(f)
    }

    /// A page of tickets the actor may see, filtered.
    pub async fn list_tickets(
        &self,
        actor: &Actor,
        q: &TicketQuery,
    ) -> Result<TicketPage, ServiceError> {
        actor.require_operator()?;
        let filter = self.filter_for(actor, q)?;
        let mut p = Problems::default();
        let order = match q.order.as_deref() {
            None | Some("") | Some("desc") => Order::NewestFirst,
            Some("asc") => Order::OldestFirst,
            Some(_) => {
                p.add("order", "must be 'asc' or 'desc'");
                Order::NewestFirst
            }
        };
        let limit = q.limit.unwrap_or(50);
        if !(1..=200).contains(&limit) {
            p.add("limit", "must be between 1 and 200");
        }
        let cursor = match q.cursor.as_deref().filter(|c| !c.is_empty()) {
            Some(c) => p.check(
                "cursor",
                Uuid::parse_str(c).map_err(|_| "is not a cursor returned by this API"),
            ),
            None => None,
        };
        p.finish()?;
        let read = &self.db().read;
        let (rows, next) = query::list_tickets(read, &filter, order, cursor, limit).await?;
        Ok(TicketPage {
            items: summaries(read, rows).await?,
            next_cursor: next.map(|n| n.to_string()),
        })
    }

    /// How many tickets the actor may see match the filters.
    pub async fn count_tickets(&self, actor: &Actor, q: &TicketQuery) -> Result<u64, ServiceError> {
        actor.require_operator()?;
        let filter = self.filter_for(actor, q)?;
        Ok(query::count_tickets(&self.db().read, &filter).await?)
    }

    async fn load_visible<C: ConnectionTrait>(
        &self,
        conn: &C,
        actor: &Actor,
        id: Uuid,
    ) -> Result<ticket::Model, ServiceError> {
        actor.require_operator()?;
        let t = ticket::Entity::find_by_id(id)
            .one(conn)
            .await?
            .ok_or(ServiceError::NotFound("ticket"))?;
        actor.require_tier(parse_stored(&t.tier, Tier::parse, Tier::FrontOffice))?;
        Ok(t)
    }

    /// One ticket with its whole timeline; the reading is audited.
    pub async fn get_ticket(&self, actor: &Actor, id: Uuid) -> Result<TicketView, ServiceError> {
        let read = &self.db().read;
        let t = self.load_visible(read, actor, id).await?;
        let (entries, calls) = futures::try_join!(
            ticket_entry::Entity::find()
                .filter(ticket_entry::Column::TicketId.eq(id))
                .order_by_asc(ticket_entry::Column::Id)
                .all(read),
            call::Entity::find()
                .filter(call::Column::TicketId.eq(id))
                .order_by_asc(call::Column::StartedAt)
                .order_by_asc(call::Column::Id)
                .all(read),
        )?;
        let mut people: Vec<Uuid> = entries
            .iter()
            .filter_map(|e| e.author_id)
            .chain(calls.iter().filter_map(|c| c.operator_id))
            .collect();
        people.sort();
        people.dedup();
        let (mut names, mut usernames) = (HashMap::new(), HashMap::new());
        if !people.is_empty() {
            for u in user::Entity::find()
                .filter(user::Column::Id.is_in(people))
                .all(read)
                .await?
            {
                names.insert(u.id, u.name);
                usernames.insert(u.id, u.username);
            }
        }
        let mut v = summaries(read, vec![t]).await?.remove(0);
        let entries = entries.into_iter().map(|e| entry_view(e, &names));
        let calls = calls
            .iter()
            .map(|c| crate::phone::call_entry(c, &names, &usernames));
        v.timeline = Some(merge_by_time(entries, calls));
        crate::audit::record(
            &self.db().write,
            Some(actor.id),
            "ticket.viewed",
            "ticket",
            Some(id),
            None,
        )
        .await?;
        Ok(v)
    }

    /// Moves a ticket through the status machine.
    ///
    /// The update is conditional on the status read, so two operators changing the same ticket
    /// at once cannot both succeed from the same starting point: the second gets a conflict.
    pub async fn transition(
        &self,
        actor: &Actor,
        id: Uuid,
        req: TransitionRequest,
    ) -> Result<TicketView, ServiceError> {
        let mut p = Problems::default();
        let to = p.check("to", Status::parse(req.to.trim()));
        let reason = req
            .reason
            .as_deref()
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(str::to_owned);
        if reason.as_ref().is_some_and(|r| r.chars().count() > 2000) {
            p.add("reason", "must be at most 2000 characters");
        }
        p.finish()?;
        let to = to.ok_or_else(|| ServiceError::Internal("validation produced no value".into()))?;

        let txn = self.db().write.begin().await?;
        let t = self.load_visible(&txn, actor, id).await?;
        let from = parse_stored(&t.status, Status::parse, Status::New);
        from.transition(to)
            .map_err(|e| ServiceError::Conflict(e.to_string()))?;
        let at = now();
        let assignee = match to {
            Status::New => None,
            Status::Assigned => t.assignee_id.or(Some(actor.id)),
            _ => t.assignee_id,
        };
        let mut update = ticket::Entity::update_many()
            .col_expr(ticket::Column::Status, Expr::value(to.as_str()))
            .col_expr(ticket::Column::UpdatedAt, Expr::value(at))
            .col_expr(ticket::Column::AssigneeId, Expr::value(assignee));
        match to {
            Status::Resolved => {
                update = update.col_expr(ticket::Column::ResolvedAt, Expr::value(at));
                if t.first_response_at.is_none() {
                    update = update.col_expr(ticket::Column::FirstResponseAt, Expr::value(at));
                }
            }
            Status::Closed => update = update.col_expr(ticket::Column::ClosedAt, Expr::value(at)),
            Status::Open if from == Status::Resolved => {
                update = update.col_expr(
                    ticket::Column::ResolvedAt,
                    Expr::value(Option::<DateTime<Utc>>::None),
                );
            }
            _ => {}
        }
        let res = update
            .filter(ticket::Column::Id.eq(id))
            .filter(ticket::Column::Status.eq(t.status.clone()))
            .exec(&txn)
            .await?;
        if res.rows_affected != 1 {
            return Err(ServiceError::Conflict(
                "the ticket was changed meanwhile; reload it and try again".into(),
            ));
        }
        let meta = serde_json::json!({ "from": from, "to": to, "reason": reason });
        let body = match &reason {
            Some(r) => format!("{from} → {to}: {r}"),
            None => format!("{from} → {to}"),
        };
        insert_entry(
            &txn,
            &new_entry(
                id,
                EntryKind::System,
                Some(actor.id),
                body,
                Some(meta.clone()),
                at,
            ),
        )
        .await?;
        crate::audit::record(
            &txn,
            Some(actor.id),
            "ticket.transitioned",
            "ticket",
            Some(id),
            Some(meta),
        )
        .await?;
        crate::routing::sla_event(
            &txn,
            &self.inner.routing.calendar,
            id,
            crate::routing::SlaEvent::Transition { from, to },
            at,
        )
        .await?;
        txn.commit().await?;

        let tier = parse_stored(&t.tier, Tier::parse, Tier::FrontOffice);
        let mut events = vec![DomainEvent::TicketTransitioned {
            ticket_id: id,
            from,
            to,
            at,
        }];
        if assignee != t.assignee_id {
            events.push(DomainEvent::TicketAssigned {
                ticket_id: id,
                assignee_id: assignee,
                tier,
                at,
            });
        }
        self.bus().publish_all(events);
        self.get_ticket_unaudited(id).await
    }

    async fn get_ticket_unaudited(&self, id: Uuid) -> Result<TicketView, ServiceError> {
        let read = &self.db().read;
        let t = ticket::Entity::find_by_id(id)
            .one(read)
            .await?
            .ok_or(ServiceError::NotFound("ticket"))?;
        Ok(summaries(read, vec![t]).await?.remove(0))
    }

    /// Adds an operator's entry (an internal note) to a ticket's timeline.
    pub async fn add_entry(
        &self,
        actor: &Actor,
        id: Uuid,
        input: NewEntry,
    ) -> Result<EntryView, ServiceError> {
        let mut p = Problems::default();
        let kind = p.check("kind", EntryKind::parse(input.kind.trim()));
        if kind.is_some_and(|k| k != EntryKind::Note) {
            p.add("kind", "only 'note' entries can be added here; replies, calls and visits have their own endpoints");
        }
        let body = p.check("body", bounded(&input.body, 1, 20_000));
        p.finish()?;
        let body = body.unwrap_or_default();
        let txn = self.db().write.begin().await?;
        self.load_visible(&txn, actor, id).await?;
        let at = now();
        let entry = new_entry(id, EntryKind::Note, Some(actor.id), body, None, at);
        insert_entry(&txn, &entry).await?;
        ticket::Entity::update_many()
            .col_expr(ticket::Column::UpdatedAt, Expr::value(at))
            .filter(ticket::Column::Id.eq(id))
            .exec(&txn)
            .await?;
        crate::audit::record(
            &txn,
            Some(actor.id),
            "ticket.note_added",
            "ticket",
            Some(id),
            None,
        )
        .await?;
        txn.commit().await?;
        self.bus().publish_all(vec![DomainEvent::EntryAdded {
            ticket_id: id,
            entry_id: entry.id,
            kind: EntryKind::Note,
            at,
        }]);
        let names = HashMap::from([(actor.id, actor.name.clone())]);
        Ok(entry_view(entry, &names))
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn item(kind: EntryKind, minute: u32) -> EntryView {
        EntryView {
            id: Uuid::now_v7(),
            kind,
            author_id: None,
            author_name: None,
            body: format!("{kind:?} {minute}"),
            body_html: None,
            meta: None,
            created_at: Utc
                .with_ymd_and_hms(2026, 3, 2, 9, minute, 0)
                .single()
                .unwrap_or_default(),
        }
    }

    #[test]
    fn calls_take_their_place_in_time_among_the_entries() {
        let entries = [10, 20, 20].map(|m| item(EntryKind::Note, m));
        let calls = [5, 15, 20, 40].map(|m| item(EntryKind::Call, m));
        let got: Vec<String> = merge_by_time(entries.into_iter(), calls.into_iter())
            .into_iter()
            .map(|e| e.body)
            .collect();
        assert_eq!(
            got,
            [
                "Call 5", "Note 10", "Call 15", "Note 20", "Note 20", "Call 20", "Call 40"
            ]
        );
    }

    #[test]
    fn entries_keep_their_order_when_there_are_no_calls() {
        // Written order wins over the times entries carry (an e-mail's own date, say).
        let entries = [30, 10, 20].map(|m| item(EntryKind::Note, m));
        let got: Vec<String> = merge_by_time(entries.into_iter(), std::iter::empty())
            .into_iter()
            .map(|e| e.body)
            .collect();
        assert_eq!(got, ["Note 30", "Note 10", "Note 20"]);
    }
}
