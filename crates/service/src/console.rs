//! What the operator console needs beyond the channels' use cases: an operator's own work in
//! order of SLA urgency, the unassigned queue of their tiers, a ticket's classification
//! (category, measure, priority), phone calls logged by hand, a citizen's counter appointments,
//! citizens' names for the counter desk, and the key the console signs its CSRF tokens with.
//! Each is also reachable through the JSON API.

use std::cmp::Ordering;
use std::collections::HashMap;

use base64::Engine;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    TransactionTrait,
};
use serde::Deserialize;
use serde_json::json;
use sportello_domain::event::DomainEvent;
use sportello_domain::taxonomy::TaxonomyKind;
use sportello_domain::{EntryKind, Priority, Status, Tier};
use sportello_store::entities::{citizen, counter_booking, setting, ticket, ticket_entry};
use uuid::Uuid;

use crate::counter::BookingView;
use crate::error::Problems;
use crate::tickets::{EntryView, TicketQuery, TicketView};
use crate::util::{bounded, now};
use crate::{Actor, App, ServiceError};

/// Key of the console's signing key in the `settings` table: one key for every instance, so a
/// form rendered by one instance is accepted by another.
const CONSOLE_KEY: &str = "console.signing_key";

/// Statuses of tickets that still need work.
const ACTIVE: &str = "new,assigned,open,waiting_citizen,waiting_internal";

/// Most tickets the work list and the queue show.
const MAX_LIST: u64 = 200;

/// A change of a ticket's classification; absent fields stay as they are, an empty category or
/// measure removes it.
#[derive(Clone, Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct Classification {
    /// A category slug (see `/api/v1/taxonomy`), or `""` to remove it.
    pub category: Option<String>,
    /// A measure slug, or `""` to remove it.
    pub measure: Option<String>,
    /// `low`, `normal`, `high` or `urgent`.
    pub priority: Option<String>,
}

/// A phone call an operator made or took outside the switchboard's reports (or whose report
/// lacks the ticket), written on the ticket's timeline.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
pub struct LoggedCall {
    /// `inbound` (the citizen called) or `outbound` (we called).
    pub direction: String,
    /// Whether the citizen was reached; a reached citizen counts as an answer for the SLA.
    pub reached: bool,
    /// What was said or agreed.
    pub note: Option<String>,
}

/// How urgent a ticket is for its holder: breached first, then at risk, then by the nearest
/// deadline; paused clocks (waiting for the citizen) last.
fn urgency(t: &TicketView) -> (u8, Option<DateTime<Utc>>, std::cmp::Reverse<Priority>) {
    let (rank, due) = match &t.sla {
        Some(s) => {
            let due = [s.first_response_due, s.next_response_due, s.resolution_due]
                .into_iter()
                .flatten()
                .min();
            let rank = match s.state.as_str() {
                "breached" => 0,
                "at_risk" => 1,
                "paused" => 4,
                _ => 2,
            };
            (rank, due)
        }
        None => (3, None),
    };
    (rank, due, std::cmp::Reverse(t.priority))
}

/// Orders tickets by [`urgency`], with tickets without a deadline after those with one, and
/// the oldest first among equals.
pub fn sort_by_urgency(items: &mut [TicketView]) {
    items.sort_by(|a, b| {
        let (ra, da, pa) = urgency(a);
        let (rb, db, pb) = urgency(b);
        ra.cmp(&rb)
            .then_with(|| match (da, db) {
                (Some(x), Some(y)) => x.cmp(&y),
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (None, None) => Ordering::Equal,
            })
            .then_with(|| pa.cmp(&pb))
            .then_with(|| a.created_at.cmp(&b.created_at))
    });
}

impl App {
    /// The tickets assigned to the actor that still need work, most urgent first.
    pub async fn my_work(&self, actor: &Actor) -> Result<Vec<TicketView>, ServiceError> {
        let q = TicketQuery {
            status: Some(ACTIVE.into()),
            assignee: Some(actor.id.to_string()),
            order: Some("asc".into()),
            limit: Some(MAX_LIST),
            ..Default::default()
        };
        let mut items = self.list_tickets(actor, &q).await?.items;
        sort_by_urgency(&mut items);
        Ok(items)
    }

    /// Unassigned tickets of the actor's tiers that still need work, most urgent first; each
    /// carries why it waits (`waiting_reason`) once the router has looked at it.
    pub async fn waiting_queue(
        &self,
        actor: &Actor,
        tier: Option<Tier>,
    ) -> Result<Vec<TicketView>, ServiceError> {
        let q = TicketQuery {
            status: Some(ACTIVE.into()),
            assignee: Some("none".into()),
            tier: tier.map(|t| t.as_str().to_owned()),
            order: Some("asc".into()),
            limit: Some(MAX_LIST),
            ..Default::default()
        };
        let mut items = self.list_tickets(actor, &q).await?.items;
        sort_by_urgency(&mut items);
        Ok(items)
    }

    /// Changes a ticket's category, measure or priority, with a timeline entry saying what
    /// changed. A new category or measure makes the routing rules decide the ticket's skills
    /// again (so a ticket still waiting goes to someone who knows the new measure); its tier,
    /// priority and SLA clock stay.
    pub async fn set_classification(
        &self,
        actor: &Actor,
        id: Uuid,
        input: Classification,
    ) -> Result<TicketView, ServiceError> {
        actor.require_operator()?;
        let tax = self.taxonomy();
        let mut p = Problems::default();
        let mut slug = |field: &str, kind: TaxonomyKind, v: &Option<String>| match v.as_deref() {
            None => None,
            Some(s) if s.trim().is_empty() => Some(None),
            Some(s) if tax.contains(kind, s.trim()) => Some(Some(s.trim().to_owned())),
            Some(s) => {
                p.add(field, format!("unknown {} '{}'", kind.as_str(), s.trim()));
                None
            }
        };
        let category = slug("category", TaxonomyKind::Category, &input.category);
        let measure = slug("measure", TaxonomyKind::Measure, &input.measure);
        let priority = match input.priority.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(v) => p.check("priority", Priority::parse(v)),
        };
        p.finish()?;

        let at = now();
        let txn = self.db().write.begin().await?;
        let t = ticket::Entity::find_by_id(id)
            .one(&txn)
            .await?
            .ok_or(ServiceError::NotFound("ticket"))?;
        actor.require_tier(Tier::parse(&t.tier).unwrap_or(Tier::FrontOffice))?;
        let mut changes = serde_json::Map::new();
        let mut lines = Vec::new();
        let mut update = ticket::Entity::update_many();
        let mut after = t.clone();
        if let Some(c) = category.filter(|c| *c != t.category) {
            lines.push(format!(
                "categoria: {} → {}",
                t.category.as_deref().unwrap_or("—"),
                c.as_deref().unwrap_or("—")
            ));
            changes.insert("category".into(), json!({ "from": t.category, "to": c }));
            update = update.col_expr(ticket::Column::Category, Expr::value(c.clone()));
            after.category = c;
        }
        if let Some(m) = measure.filter(|m| *m != t.measure) {
            lines.push(format!(
                "misura: {} → {}",
                t.measure.as_deref().unwrap_or("—"),
                m.as_deref().unwrap_or("—")
            ));
            changes.insert("measure".into(), json!({ "from": t.measure, "to": m }));
            update = update.col_expr(ticket::Column::Measure, Expr::value(m.clone()));
            after.measure = m;
        }
        if let Some(pr) = priority.filter(|pr| pr.as_str() != t.priority) {
            lines.push(format!("priorità: {} → {}", t.priority, pr.as_str()));
            changes.insert(
                "priority".into(),
                json!({ "from": t.priority, "to": pr.as_str() }),
            );
            update = update.col_expr(ticket::Column::Priority, Expr::value(pr.as_str()));
        }
        if changes.is_empty() {
            txn.commit().await?;
            return self.ticket_summary(id).await;
        }
        update
            .col_expr(ticket::Column::UpdatedAt, Expr::value(at))
            .filter(ticket::Column::Id.eq(id))
            .exec(&txn)
            .await?;
        if (after.category != t.category || after.measure != t.measure)
            && let Some(routing) = self.reroute_skills(&txn, &after, at).await?
        {
            lines.push(routing.line());
            changes.insert("routing".into(), routing.meta());
        }
        let meta = serde_json::Value::Object(changes);
        let entry_id = Uuid::now_v7();
        ticket_entry::Entity::insert(ticket_entry::ActiveModel {
            id: Set(entry_id),
            ticket_id: Set(id),
            kind: Set(EntryKind::System.as_str().to_owned()),
            author_id: Set(Some(actor.id)),
            body: Set(lines.join("; ")),
            body_html: Set(None),
            meta: Set(Some(json!({ "classification": meta }).to_string())),
            created_at: Set(at),
        })
        .exec_without_returning(&txn)
        .await?;
        crate::audit::record(
            &txn,
            Some(actor.id),
            "ticket.classified",
            "ticket",
            Some(id),
            Some(meta),
        )
        .await?;
        txn.commit().await?;
        self.bus().publish_all(vec![DomainEvent::EntryAdded {
            ticket_id: id,
            entry_id,
            kind: EntryKind::System,
            at,
        }]);
        self.ticket_summary(id).await
    }

    async fn ticket_summary(&self, id: Uuid) -> Result<TicketView, ServiceError> {
        let read = &self.db().read;
        let t = ticket::Entity::find_by_id(id)
            .one(read)
            .await?
            .ok_or(ServiceError::NotFound("ticket"))?;
        Ok(crate::tickets::summaries(read, vec![t]).await?.remove(0))
    }

    /// Writes a phone call on a ticket's timeline. A reached citizen is an answer: it stops the
    /// first-response clock like a reply would.
    pub async fn log_call(
        &self,
        actor: &Actor,
        id: Uuid,
        input: LoggedCall,
    ) -> Result<EntryView, ServiceError> {
        actor.require_operator()?;
        let mut p = Problems::default();
        let direction = input.direction.trim();
        if direction != "inbound" && direction != "outbound" {
            p.add("direction", "must be 'inbound' or 'outbound'");
        }
        let note = match input.note.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(n) => p.check("note", bounded(n, 1, 5000)),
        };
        p.finish()?;

        let at = now();
        let txn = self.db().write.begin().await?;
        let t = ticket::Entity::find_by_id(id)
            .one(&txn)
            .await?
            .ok_or(ServiceError::NotFound("ticket"))?;
        actor.require_tier(Tier::parse(&t.tier).unwrap_or(Tier::FrontOffice))?;
        if Status::parse(&t.status) == Ok(Status::Closed) {
            return Err(ServiceError::Conflict(
                "the ticket is closed; reopen it or open a new one".into(),
            ));
        }
        let outcome = if input.reached { "answered" } else { "missed" };
        let body = format!(
            "{} {}{}",
            if direction == "inbound" {
                "Chiamata ricevuta:"
            } else {
                "Chiamata effettuata:"
            },
            if input.reached {
                "cittadino raggiunto."
            } else {
                "cittadino non raggiunto."
            },
            note.as_ref().map(|n| format!(" {n}")).unwrap_or_default()
        );
        let entry = ticket_entry::Model {
            id: Uuid::now_v7(),
            ticket_id: id,
            kind: EntryKind::Call.as_str().to_owned(),
            author_id: Some(actor.id),
            body,
            body_html: None,
            meta: Some(
                json!({ "manual": true, "direction": direction, "outcome": outcome, "note": note })
                    .to_string(),
            ),
            created_at: at,
        };
        ticket_entry::Entity::insert(ticket_entry::ActiveModel::from(entry.clone()))
            .exec_without_returning(&txn)
            .await?;
        let mut update =
            ticket::Entity::update_many().col_expr(ticket::Column::UpdatedAt, Expr::value(at));
        if input.reached && t.first_response_at.is_none() {
            update = update.col_expr(ticket::Column::FirstResponseAt, Expr::value(at));
        }
        update.filter(ticket::Column::Id.eq(id)).exec(&txn).await?;
        if input.reached {
            crate::routing::sla_event(
                &txn,
                &self.inner.routing.calendar,
                id,
                crate::routing::SlaEvent::Responded,
                at,
            )
            .await?;
        }
        crate::audit::record(
            &txn,
            Some(actor.id),
            "call.logged",
            "ticket",
            Some(id),
            Some(json!({ "direction": direction, "outcome": outcome })),
        )
        .await?;
        txn.commit().await?;
        self.bus().publish_all(vec![DomainEvent::EntryAdded {
            ticket_id: id,
            entry_id: entry.id,
            kind: EntryKind::Call,
            at,
        }]);
        Ok(EntryView {
            id: entry.id,
            kind: EntryKind::Call,
            author_id: Some(actor.id),
            author_name: Some(actor.name.clone()),
            body: entry.body,
            body_html: None,
            meta: entry.meta.and_then(|m| serde_json::from_str(&m).ok()),
            created_at: at,
        })
    }

    /// A citizen's counter appointments (visits and walk-ins included), newest first.
    pub async fn citizen_appointments(
        &self,
        actor: &Actor,
        citizen_id: Uuid,
    ) -> Result<Vec<BookingView>, ServiceError> {
        actor.require_operator()?;
        let read = &self.db().read;
        citizen::Entity::find_by_id(citizen_id)
            .one(read)
            .await?
            .ok_or(ServiceError::NotFound("citizen"))?;
        let ids: Vec<Uuid> = counter_booking::Entity::find()
            .select_only()
            .column(counter_booking::Column::Id)
            .filter(counter_booking::Column::CitizenId.eq(citizen_id))
            .order_by_desc(counter_booking::Column::Day)
            .order_by_desc(counter_booking::Column::Id)
            .limit(50)
            .into_tuple()
            .all(read)
            .await?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.push(self.booking_view(id).await?);
        }
        Ok(out)
    }

    /// Names of citizens by id, for lists that show bookings (the counter desk).
    pub async fn citizen_names(
        &self,
        actor: &Actor,
        ids: &[Uuid],
    ) -> Result<HashMap<Uuid, String>, ServiceError> {
        actor.require_operator()?;
        let mut ids = ids.to_vec();
        ids.sort();
        ids.dedup();
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let read = &self.db().read;
        let mut out = HashMap::new();
        for chunk in ids.chunks(500) {
            let rows: Vec<(Uuid, String)> = citizen::Entity::find()
                .select_only()
                .column(citizen::Column::Id)
                .column(citizen::Column::Name)
                .filter(citizen::Column::Id.is_in(chunk.to_vec()))
                .into_tuple()
                .all(read)
                .await?;
            out.extend(rows);
        }
        Ok(out)
    }

    /// The console's signing key (32 random bytes), created on first use and shared by every
    /// instance on the database. Never logged, never shown.
    pub async fn console_signing_key(&self) -> Result<Vec<u8>, ServiceError> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let read = |row: setting::Model| {
            b64.decode(row.value.as_bytes())
                .ok()
                .filter(|k| k.len() >= 32)
                .ok_or_else(|| ServiceError::Internal("the console key is malformed".into()))
        };
        if let Some(row) = setting::Entity::find_by_id(CONSOLE_KEY)
            .one(&self.db().read)
            .await?
        {
            return read(row);
        }
        let mut key = [0u8; 32];
        getrandom::fill(&mut key)
            .map_err(|e| ServiceError::Internal(format!("no randomness: {e}")))?;
        // Two instances starting together: the first insert wins, both read the winner.
        setting::Entity::insert(setting::ActiveModel {
            key: Set(CONSOLE_KEY.into()),
            value: Set(b64.encode(key)),
            updated_by: Set(None),
            updated_at: Set(now()),
        })
        .on_conflict(
            OnConflict::column(setting::Column::Key)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(&self.db().write)
        .await?;
        let row = setting::Entity::find_by_id(CONSOLE_KEY)
            .one(&self.db().write)
            .await?
            .ok_or_else(|| ServiceError::Internal("the console key was not stored".into()))?;
        read(row)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::SlaView;
    use chrono::TimeZone;
    use sportello_domain::Channel;

    fn t(n: u32, sla: Option<(&str, u32)>, priority: Priority) -> TicketView {
        let at = Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap();
        TicketView {
            id: Uuid::now_v7(),
            number: format!("SP-2026-{n:06}"),
            channel: Channel::Email,
            tier: Tier::FrontOffice,
            status: Status::Open,
            priority,
            category: None,
            measure: None,
            subject: String::new(),
            citizen_id: None,
            citizen: None,
            assignee_id: None,
            tags: vec![],
            created_at: at + chrono::Duration::minutes(n.into()),
            updated_at: at,
            first_response_at: None,
            resolved_at: None,
            closed_at: None,
            sla: sla.map(|(state, h)| SlaView {
                policy: "standard".into(),
                first_response_due: Some(at + chrono::Duration::hours(h.into())),
                next_response_due: None,
                resolution_due: None,
                state: state.into(),
            }),
            waiting_reason: None,
            timeline: None,
        }
    }

    #[test]
    fn breached_first_then_at_risk_then_nearest_deadline_and_paused_last() {
        let mut v = vec![
            t(1, Some(("paused", 1)), Priority::Urgent),
            t(2, None, Priority::Normal),
            t(3, Some(("ok", 30)), Priority::Normal),
            t(4, Some(("ok", 5)), Priority::Normal),
            t(5, Some(("at_risk", 40)), Priority::Normal),
            t(6, Some(("breached", 50)), Priority::Low),
        ];
        sort_by_urgency(&mut v);
        let order: Vec<&str> = v.iter().map(|t| &t.number[13..]).collect();
        assert_eq!(order, ["6", "5", "4", "3", "2", "1"]);
    }

    #[test]
    fn equal_deadlines_go_by_priority_then_age() {
        let mut v = vec![
            t(1, Some(("ok", 5)), Priority::Normal),
            t(2, Some(("ok", 5)), Priority::High),
            t(3, Some(("ok", 5)), Priority::Normal),
        ];
        sort_by_urgency(&mut v);
        let order: Vec<&str> = v.iter().map(|t| &t.number[13..]).collect();
        assert_eq!(order, ["2", "1", "3"]);
    }
}
