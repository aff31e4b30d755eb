//! The counter channel's use cases: opening sessions and their slots, bookings (with the
//! capacity held by a conditional update, so it holds across instances), check-in and queue
//! numbers, calling the next visitor, visit records on the ticket timeline, walk-ins,
//! automatic no-shows, and the weekly opening-hours plan.
//!
//! The rules themselves live in `sportello-counter`; this module loads their inputs, runs
//! them inside one transaction per change, audits it and publishes events after the commit.
//! Booking changes go on the ticket's timeline as system entries, so they reach dashboards
//! through the existing `EntryAdded` event.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, Utc};
use sea_orm::sea_query::{Expr, Query};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, TransactionTrait,
};
use serde::{Deserialize, Serialize};
use sportello_counter::planner::{self, PlannerParams, SessionLoad, TemplateSession};
use sportello_counter::{QueueKind, SessionRequest, ValidSession};
use sportello_domain::calendar::BusinessCalendar;
use sportello_domain::event::DomainEvent;
use sportello_domain::taxonomy::TaxonomyKind;
use sportello_domain::{EntryKind, Role};
use sportello_store::entities::{
    citizen, counter_booking, counter_plan, counter_session, counter_slot, ticket, ticket_entry,
};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::error::Problems;
use crate::tickets::NewTicket;
use crate::util::{bounded, now};
use crate::{Actor, App, ServiceError};

/// PostgreSQL advisory lock key serialising session creation across instances.
const SESSION_LOCK: i64 = 0x5350_4355_5345_5353; // "SPCUSESS"

/// Booking states, as stored.
pub mod state {
    pub const BOOKED: &str = "booked";
    pub const CANCELLED: &str = "cancelled";
    pub const CHECKED_IN: &str = "checked_in";
    pub const CALLED: &str = "called";
    pub const VISITED: &str = "visited";
    pub const NO_SHOW: &str = "no_show";
}

/// The category a counter ticket gets when the booking names none.
pub const DEFAULT_CATEGORY: &str = "counter_appointment";

/// Settings of the counter channel (`[service.counter]`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct CounterConfig {
    /// Where the counter is, as written in confirmations.
    pub address: String,
    /// Minutes after a slot's start before an absent visitor is a no-show.
    pub grace_minutes: u32,
    /// How often the background task marks no-shows, in seconds.
    pub no_show_tick_seconds: u64,
    /// The weekly pattern the planner starts from.
    pub template: Vec<TemplateSession>,
    pub planner: PlannerParams,
}

impl Default for CounterConfig {
    fn default() -> Self {
        CounterConfig {
            address: "Sportello Welfare, Comune di Milano, Largo De Benedetti 1, Milano".into(),
            grace_minutes: sportello_counter::DEFAULT_GRACE_MINUTES,
            no_show_tick_seconds: 60,
            template: planner::default_template(),
            planner: PlannerParams::default(),
        }
    }
}

/// A new opening session.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
pub struct NewSession {
    /// Local date, `YYYY-MM-DD`.
    pub date: String,
    /// Local time, `HH:MM`.
    pub start: String,
    pub end: String,
    pub desks: i64,
    /// Default 20.
    pub slot_minutes: Option<i64>,
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct SessionView {
    pub id: Uuid,
    pub date: String,
    pub start: String,
    pub end: String,
    pub desks: i32,
    pub slot_minutes: i32,
    pub plan_id: Option<Uuid>,
    pub slots: usize,
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct SlotView {
    pub id: Uuid,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// Local wall-clock times, `HH:MM`.
    pub local_start: String,
    pub local_end: String,
    pub capacity: i32,
    pub booked: i32,
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct SlotList {
    pub items: Vec<SlotView>,
}

/// A booking request (or a walk-in, without `slot_id`).
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
pub struct NewBooking {
    pub slot_id: Uuid,
    pub citizen_id: Uuid,
    pub category: Option<String>,
    pub measure: Option<String>,
    pub notes: Option<String>,
    /// An existing ticket to link; without it a new counter ticket is opened.
    pub ticket_id: Option<Uuid>,
}

/// A visitor without an appointment.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
pub struct NewWalkIn {
    pub citizen_id: Uuid,
    pub category: Option<String>,
    pub measure: Option<String>,
    pub notes: Option<String>,
    pub ticket_id: Option<Uuid>,
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct BookingView {
    pub id: Uuid,
    pub ticket_id: Option<Uuid>,
    pub slot_id: Option<Uuid>,
    pub citizen_id: Uuid,
    pub date: String,
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
    pub local_start: Option<String>,
    pub state: String,
    pub walk_in: bool,
    pub category: Option<String>,
    pub measure: Option<String>,
    pub notes: Option<String>,
    pub queue_number: Option<String>,
    pub desk: Option<i32>,
    /// What the citizen was told to bring (Italian).
    pub documents_to_bring: Vec<String>,
    /// The confirmation and reminder waiting to be sent.
    #[schema(value_type = Option<Object>)]
    pub notification: Option<serde_json::Value>,
    pub created_at: DateTime<Utc>,
}

/// The record of a visit.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
pub struct VisitRecord {
    #[serde(default)]
    pub documents_received: Vec<String>,
    pub outcome: String,
    pub information_given: Option<String>,
    pub notes: Option<String>,
    /// `true` or a reason: the ticket goes to the back office.
    #[schema(value_type = Option<Object>)]
    pub follow_up: Option<serde_json::Value>,
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct VisitView {
    pub booking: BookingView,
    pub entry_id: Uuid,
    pub escalated: bool,
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct CheckIn {
    pub queue_number: String,
    pub booking: BookingView,
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct CalledVisitor {
    /// None when nobody is waiting.
    pub called: Option<BookingView>,
}

#[derive(Clone, Debug, Default, Serialize, utoipa::ToSchema)]
pub struct DayCounts {
    pub booked: u64,
    pub waiting: u64,
    pub called: u64,
    pub visited: u64,
    pub no_show: u64,
    pub cancelled: u64,
    pub walk_ins: u64,
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct TodayView {
    pub date: String,
    pub items: Vec<BookingView>,
    pub counts: DayCounts,
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct NoShowRun {
    pub marked: usize,
    pub no_shows_total: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PlannedSession {
    pub date: String,
    pub start: String,
    pub end: String,
    pub desks: u32,
    pub reason: String,
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct PlanView {
    pub id: Uuid,
    pub week: String,
    pub state: String,
    pub sessions: Vec<PlannedSession>,
    #[schema(value_type = Object)]
    pub inputs: serde_json::Value,
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct SkippedSession {
    pub date: String,
    pub start: String,
    pub reason: String,
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct ApprovedPlan {
    pub id: Uuid,
    pub week: String,
    pub state: String,
    pub opened: Vec<SessionView>,
    pub skipped: Vec<SkippedSession>,
}

fn parse_date(field: &str, value: &str, p: &mut Problems) -> Option<NaiveDate> {
    p.check(
        field,
        NaiveDate::parse_from_str(value.trim(), "%Y-%m-%d")
            .map_err(|_| format!("'{value}' is not a date (expected YYYY-MM-DD)")),
    )
}

fn parse_time(field: &str, value: &str, p: &mut Problems) -> Option<NaiveTime> {
    p.check(
        field,
        NaiveTime::parse_from_str(value.trim(), "%H:%M")
            .map_err(|_| format!("'{value}' is not a time (expected HH:MM)")),
    )
}

fn hhmm(t: NaiveTime) -> String {
    t.format("%H:%M").to_string()
}

/// `YYYY-Www` → the Monday of that ISO week.
pub fn parse_week(value: &str) -> Result<NaiveDate, ServiceError> {
    let bad = || {
        ServiceError::field(
            "week",
            format!("'{value}' is not an ISO week (expected YYYY-Www, e.g. 2026-W49)"),
        )
    };
    let (y, w) = value.trim().split_once("-W").ok_or_else(bad)?;
    let (y, w): (i32, u32) = (y.parse().map_err(|_| bad())?, w.parse().map_err(|_| bad())?);
    NaiveDate::from_isoywd_opt(y, w, chrono::Weekday::Mon).ok_or_else(bad)
}

fn iso_week(date: NaiveDate) -> String {
    let w = date.iso_week();
    format!("{}-W{:02}", w.year(), w.week())
}

impl App {
    fn counter_config(&self) -> &CounterConfig {
        &self.config().counter
    }

    fn counter_calendar(&self) -> Result<BusinessCalendar, ServiceError> {
        BusinessCalendar::from_config(&self.config().calendar)
            .map_err(|e| ServiceError::field("calendar", e.to_string()))
    }

    fn local_hhmm(&self, cal: &BusinessCalendar, t: DateTime<Utc>) -> String {
        t.with_timezone(&cal.timezone()).format("%H:%M").to_string()
    }

    /// Opens a session on a date and generates its slots (supervisors and admins).
    pub async fn create_counter_session(
        &self,
        actor: &Actor,
        input: NewSession,
    ) -> Result<SessionView, ServiceError> {
        actor.require_any(&[Role::Supervisor, Role::Admin])?;
        let mut p = Problems::default();
        let date = parse_date("date", &input.date, &mut p);
        let start = parse_time("start", &input.start, &mut p);
        let end = parse_time("end", &input.end, &mut p);
        let desks = p.check(
            "desks",
            u32::try_from(input.desks)
                .map_err(|_| format!("must be at least 1 (got {})", input.desks)),
        );
        let slot_minutes = match input.slot_minutes {
            Some(m) => p
                .check(
                    "slot_minutes",
                    u32::try_from(m).map_err(|_| format!("must be positive (got {m})")),
                )
                .map(Some),
            None => Some(None),
        };
        p.finish()?;
        let (Some(date), Some(start), Some(end), Some(desks), Some(slot_minutes)) =
            (date, start, end, desks, slot_minutes)
        else {
            return Err(ServiceError::Internal(
                "validation produced no value".into(),
            ));
        };
        let req = SessionRequest {
            date,
            start,
            end,
            desks,
            slot_minutes,
        };
        let cal = self.counter_calendar()?;
        let txn = self.db().write.begin().await?;
        // Checking a day for overlaps and inserting the session must not interleave with
        // another instance doing the same for that day.
        crate::util::xact_lock(&txn, SESSION_LOCK).await?;
        let valid = validate_against_day(&txn, &cal, &req).await?;
        let view = insert_session(&txn, &cal, &valid, None, actor.id).await?;
        crate::audit::record(
            &txn,
            Some(actor.id),
            "counter.session_created",
            "counter_session",
            Some(view.id),
            Some(serde_json::json!({ "date": view.date, "start": view.start, "end": view.end, "desks": view.desks, "slots": view.slots })),
        )
        .await?;
        txn.commit().await?;
        tracing::info!(counter.session = %view.id, date = %view.date, slots = view.slots, "counter session opened");
        Ok(view)
    }

    /// The slots of a date with their capacity and bookings.
    pub async fn counter_slots(&self, actor: &Actor, date: &str) -> Result<SlotList, ServiceError> {
        actor.require_operator()?;
        let mut p = Problems::default();
        let date = parse_date("date", date, &mut p);
        p.finish()?;
        let Some(date) = date else {
            return Err(ServiceError::Internal(
                "validation produced no value".into(),
            ));
        };
        let cal = self.counter_calendar()?;
        let rows = counter_slot::Entity::find()
            .filter(counter_slot::Column::Day.eq(date.to_string()))
            .order_by_asc(counter_slot::Column::StartsAt)
            .all(&self.db().read)
            .await?;
        Ok(SlotList {
            items: rows.into_iter().map(|s| self.slot_view(&cal, s)).collect(),
        })
    }

    fn slot_view(&self, cal: &BusinessCalendar, s: counter_slot::Model) -> SlotView {
        SlotView {
            id: s.id,
            local_start: self.local_hhmm(cal, s.starts_at),
            local_end: self.local_hhmm(cal, s.ends_at),
            start: s.starts_at,
            end: s.ends_at,
            capacity: s.capacity,
            booked: s.booked,
        }
    }

    fn check_topic(
        &self,
        p: &mut Problems,
        category: Option<&str>,
        measure: Option<&str>,
    ) -> (Option<String>, Option<String>) {
        let tax = self.taxonomy();
        let mut pick = |field: &str, kind: TaxonomyKind, v: Option<&str>| {
            let v = v.map(str::trim).filter(|v| !v.is_empty())?;
            if tax.contains(kind, v) {
                Some(v.to_owned())
            } else {
                p.add(field, format!("unknown {} '{v}'", kind.as_str()));
                None
            }
        };
        (
            pick("category", TaxonomyKind::Category, category),
            pick("measure", TaxonomyKind::Measure, measure),
        )
    }

    /// Books a slot for a citizen. The seat is taken by a conditional update inside the
    /// booking's transaction, so a slot never holds more than its capacity, however many
    /// instances race for it; a full slot is a conflict. Without `ticket_id` a counter ticket
    /// is opened once the seat is held, and the seat is given back if that fails.
    pub async fn book_counter_slot(
        &self,
        actor: &Actor,
        input: NewBooking,
    ) -> Result<BookingView, ServiceError> {
        actor.require_operator()?;
        let mut p = Problems::default();
        let (category, measure) =
            self.check_topic(&mut p, input.category.as_deref(), input.measure.as_deref());
        let notes = input
            .notes
            .as_deref()
            .filter(|n| !n.trim().is_empty())
            .and_then(|n| p.check("notes", bounded(n, 1, 2000)));
        p.finish()?;
        let read = &self.db().read;
        if citizen::Entity::find_by_id(input.citizen_id)
            .one(read)
            .await?
            .is_none()
        {
            return Err(ServiceError::field(
                "citizen_id",
                format!("no citizen with id {}", input.citizen_id),
            ));
        }
        if let Some(tid) = input.ticket_id {
            self.get_ticket(actor, tid).await.map_err(|e| match e {
                ServiceError::NotFound(_) => {
                    ServiceError::field("ticket_id", format!("no ticket with id {tid}"))
                }
                e => e,
            })?;
        }
        let at = now();
        let id = Uuid::now_v7();
        let txn = self.db().write.begin().await?;
        let slot = counter_slot::Entity::find_by_id(input.slot_id)
            .one(&txn)
            .await?
            .ok_or_else(|| {
                ServiceError::field("slot_id", format!("no slot with id {}", input.slot_id))
            })?;
        if slot.ends_at <= at {
            return Err(ServiceError::Conflict(format!(
                "the slot of {} at {} is over; choose a later one",
                slot.day, slot.starts_at
            )));
        }
        take_seat(&txn, &slot).await?;
        let model = counter_booking::Model {
            id,
            slot_id: Some(slot.id),
            citizen_id: input.citizen_id,
            ticket_id: input.ticket_id,
            day: slot.day.clone(),
            walk_in: false,
            state: state::BOOKED.into(),
            category: category.clone(),
            measure: measure.clone(),
            notes: notes.clone(),
            queue_number: None,
            desk: None,
            notification: None,
            reminder_due_at: None,
            checked_in_at: None,
            called_at: None,
            visited_at: None,
            no_show_at: None,
            cancelled_at: None,
            created_by: Some(actor.id),
            created_at: at,
            updated_at: at,
        };
        counter_booking::Entity::insert(counter_booking::ActiveModel::from(model.clone()))
            .exec_without_returning(&txn)
            .await?;
        crate::audit::record(
            &txn,
            Some(actor.id),
            "counter.booked",
            "counter_booking",
            Some(id),
            Some(serde_json::json!({ "slot_id": slot.id, "ticket_id": input.ticket_id })),
        )
        .await?;
        txn.commit().await?;

        let ticket_id = match input.ticket_id {
            Some(t) => t,
            None => {
                let cal = self.counter_calendar()?;
                let subject = format!(
                    "Appuntamento allo sportello del {} alle {}",
                    slot.starts_at
                        .with_timezone(&cal.timezone())
                        .format("%d/%m/%Y"),
                    self.local_hhmm(&cal, slot.starts_at)
                );
                let created = self
                    .create_ticket(
                        actor,
                        NewTicket {
                            channel: "counter".into(),
                            subject,
                            body: notes.clone(),
                            category: Some(
                                category.clone().unwrap_or_else(|| DEFAULT_CATEGORY.into()),
                            ),
                            measure: measure.clone(),
                            citizen_id: Some(input.citizen_id),
                            ..Default::default()
                        },
                    )
                    .await;
                match created {
                    Ok(t) => t.id,
                    Err(e) => {
                        // Give the seat back: the booking never existed for the citizen.
                        if let Err(undo) = self.undo_booking(id, slot.id).await {
                            tracing::error!(error = %undo, counter.booking = %id, "could not release a seat after a failed ticket creation");
                        }
                        return Err(e);
                    }
                }
            }
        };
        self.finish_booking(actor, id, ticket_id, &slot).await
    }

    async fn undo_booking(&self, id: Uuid, slot_id: Uuid) -> Result<(), ServiceError> {
        let txn = self.db().write.begin().await?;
        counter_booking::Entity::delete_by_id(id).exec(&txn).await?;
        release_seat(&txn, slot_id).await?;
        txn.commit().await?;
        Ok(())
    }

    /// Links the ticket, records the confirmation and reminder to send, and notes the booking
    /// on the ticket's timeline.
    async fn finish_booking(
        &self,
        actor: &Actor,
        id: Uuid,
        ticket_id: Uuid,
        slot: &counter_slot::Model,
    ) -> Result<BookingView, ServiceError> {
        let cal = self.counter_calendar()?;
        let at = now();
        let txn = self.db().write.begin().await?;
        let b = counter_booking::Entity::find_by_id(id)
            .one(&txn)
            .await?
            .ok_or(ServiceError::NotFound("booking"))?;
        let number = ticket::Entity::find_by_id(ticket_id)
            .one(&txn)
            .await?
            .map(|t| t.number)
            .unwrap_or_default();
        let (notification, reminder_due_at) =
            self.notification(&cal, slot, b.measure.as_deref(), &number, at);
        counter_booking::Entity::update_many()
            .col_expr(
                counter_booking::Column::TicketId,
                Expr::value(Some(ticket_id)),
            )
            .col_expr(
                counter_booking::Column::Notification,
                Expr::value(Some(notification.to_string())),
            )
            .col_expr(
                counter_booking::Column::ReminderDueAt,
                Expr::value(Some(reminder_due_at)),
            )
            .col_expr(counter_booking::Column::UpdatedAt, Expr::value(at))
            .filter(counter_booking::Column::Id.eq(id))
            .exec(&txn)
            .await?;
        let local = slot.starts_at.with_timezone(&cal.timezone());
        let entry = system_entry(
            &txn,
            ticket_id,
            Some(actor.id),
            format!("Appuntamento allo sportello prenotato per il {} alle {}", local.format("%d/%m/%Y"), local.format("%H:%M")),
            serde_json::json!({ "counter_booking_id": id, "slot_id": slot.id, "starts_at": slot.starts_at }),
            at,
        )
        .await?;
        txn.commit().await?;
        self.bus().publish_all(vec![DomainEvent::EntryAdded {
            ticket_id,
            entry_id: entry,
            kind: EntryKind::System,
            at,
        }]);
        tracing::info!(counter.booking = %id, ticket.id = %ticket_id, "counter appointment booked");
        self.send_counter_notification(actor, id, "confirmation")
            .await;
        self.booking_view(id).await
    }

    /// Sends the booking's confirmation or reminder to the citizen through the e-mail outbox,
    /// as a message on the booking's ticket, and records on the booking what happened. Never
    /// fails the booking: without an e-mail address or an SMTP sender the message stays on the
    /// booking, marked with the reason.
    async fn send_counter_notification(&self, actor: &Actor, booking_id: Uuid, which: &str) {
        let result = async {
            let b = counter_booking::Entity::find_by_id(booking_id)
                .one(&self.db().read)
                .await?
                .ok_or(ServiceError::NotFound("booking"))?;
            let (Some(ticket_id), Some(raw)) = (b.ticket_id, b.notification.clone()) else {
                return Ok(());
            };
            let mut n: serde_json::Value = serde_json::from_str(&raw).unwrap_or_default();
            if n[which]["state"] != "pending_outbox" {
                return Ok(());
            }
            let body = n[which]["body"].as_str().unwrap_or_default();
            // The e-mail template adds its own greeting and signature.
            let body = body
                .strip_prefix("Gentile cittadina, gentile cittadino,\n\n")
                .unwrap_or(body)
                .to_owned();
            let reply = crate::mail::NewReply {
                body,
                template: None,
                subject: None,
                attachments: Vec::new(),
            };
            n[which]["state"] = match self.reply_by_email(actor, ticket_id, reply).await {
                Ok(r) => {
                    n[which]["entry_id"] = serde_json::json!(r.entry.id);
                    serde_json::json!("queued")
                }
                Err(ServiceError::Conflict(reason)) => {
                    n[which]["reason"] = serde_json::json!(reason);
                    serde_json::json!("not_sent")
                }
                Err(e) => return Err(e),
            };
            counter_booking::Entity::update_many()
                .col_expr(
                    counter_booking::Column::Notification,
                    Expr::value(Some(n.to_string())),
                )
                .filter(counter_booking::Column::Id.eq(booking_id))
                .exec(&self.db().write)
                .await?;
            Ok::<(), ServiceError>(())
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(counter.booking = %booking_id, error = %e, "counter notification not sent");
        }
    }

    /// Sends the reminders due by `at` for appointments still booked.
    pub async fn send_counter_reminders(&self, at: DateTime<Utc>) -> Result<usize, ServiceError> {
        let due = counter_booking::Entity::find()
            .filter(counter_booking::Column::State.eq(state::BOOKED))
            .filter(counter_booking::Column::ReminderDueAt.lte(at))
            .filter(counter_booking::Column::Notification.like("%\"reminder\"%pending_outbox%"))
            .all(&self.db().read)
            .await?;
        let system = Actor {
            id: Uuid::nil(),
            username: "sportello".into(),
            name: "Sportello".into(),
            roles: vec![Role::Admin],
        };
        for b in &due {
            self.send_counter_notification(&system, b.id, "reminder")
                .await;
        }
        Ok(due.len())
    }

    /// The Italian confirmation (date, time, address, documents to bring) and the reminder
    /// due the day before at 09:00. They wait on the booking until the e-mail outbox can take
    /// messages addressed to a citizen outside a mail thread.
    fn notification(
        &self,
        cal: &BusinessCalendar,
        slot: &counter_slot::Model,
        measure: Option<&str>,
        ticket_number: &str,
        at: DateTime<Utc>,
    ) -> (serde_json::Value, DateTime<Utc>) {
        let local = slot.starts_at.with_timezone(&cal.timezone());
        let (day, time) = (
            local.format("%d/%m/%Y").to_string(),
            local.format("%H:%M").to_string(),
        );
        let docs = sportello_counter::documents_for(measure);
        let list = docs
            .iter()
            .map(|d| format!("- {d}"))
            .collect::<Vec<_>>()
            .join("\n");
        let address = &self.counter_config().address;
        let body = format!(
            "Gentile cittadina, gentile cittadino,\n\nle confermiamo l'appuntamento allo sportello il giorno {day} alle ore {time}.\n\nIndirizzo: {address}\n\nDocumenti da portare:\n{list}\n\nSe non potesse presentarsi, la preghiamo di avvisarci: il posto potrà essere offerto ad altri.\nRiferimento pratica: {ticket_number}\n"
        );
        let reminder = format!(
            "Gentile cittadina, gentile cittadino,\n\nle ricordiamo l'appuntamento di domani, {day}, alle ore {time} presso {address}.\n\nDocumenti da portare:\n{list}\n\nRiferimento pratica: {ticket_number}\n"
        );
        let day_before = local.date_naive().pred_opt().unwrap_or(local.date_naive());
        let due = sportello_counter::local_to_utc(
            cal.timezone(),
            day_before.and_time(NaiveTime::from_hms_opt(9, 0, 0).unwrap_or(NaiveTime::MIN)),
        )
        .unwrap_or(at)
        .max(at);
        (
            serde_json::json!({
                "confirmation": { "subject": format!("Conferma appuntamento allo sportello del {day}"), "body": body, "state": "pending_outbox" },
                "reminder": { "subject": format!("Promemoria: appuntamento allo sportello del {day}"), "body": reminder, "due_at": due, "state": "pending_outbox" },
            }),
            due,
        )
    }

    /// One booking as the API shows it.
    pub async fn booking_view(&self, id: Uuid) -> Result<BookingView, ServiceError> {
        let read = &self.db().read;
        let b = counter_booking::Entity::find_by_id(id)
            .one(read)
            .await?
            .ok_or(ServiceError::NotFound("booking"))?;
        let slot = match b.slot_id {
            Some(s) => counter_slot::Entity::find_by_id(s).one(read).await?,
            None => None,
        };
        let cal = self.counter_calendar()?;
        Ok(self.view_of(&cal, b, slot.as_ref()))
    }

    fn view_of(
        &self,
        cal: &BusinessCalendar,
        b: counter_booking::Model,
        slot: Option<&counter_slot::Model>,
    ) -> BookingView {
        BookingView {
            id: b.id,
            ticket_id: b.ticket_id,
            slot_id: b.slot_id,
            citizen_id: b.citizen_id,
            date: b.day,
            start: slot.map(|s| s.starts_at),
            end: slot.map(|s| s.ends_at),
            local_start: slot.map(|s| self.local_hhmm(cal, s.starts_at)),
            state: b.state,
            walk_in: b.walk_in,
            documents_to_bring: sportello_counter::documents_for(b.measure.as_deref())
                .into_iter()
                .map(str::to_owned)
                .collect(),
            category: b.category,
            measure: b.measure,
            notes: b.notes,
            queue_number: b.queue_number,
            desk: b.desk,
            notification: b.notification.and_then(|n| serde_json::from_str(&n).ok()),
            created_at: b.created_at,
        }
    }

    /// Cancels a booking that has not happened yet, freeing its seat.
    pub async fn cancel_counter_booking(
        &self,
        actor: &Actor,
        id: Uuid,
    ) -> Result<BookingView, ServiceError> {
        actor.require_operator()?;
        let at = now();
        let txn = self.db().write.begin().await?;
        let b = counter_booking::Entity::find_by_id(id)
            .one(&txn)
            .await?
            .ok_or(ServiceError::NotFound("booking"))?;
        let res = counter_booking::Entity::update_many()
            .col_expr(
                counter_booking::Column::State,
                Expr::value(state::CANCELLED),
            )
            .col_expr(counter_booking::Column::CancelledAt, Expr::value(Some(at)))
            .col_expr(counter_booking::Column::UpdatedAt, Expr::value(at))
            .filter(counter_booking::Column::Id.eq(id))
            .filter(counter_booking::Column::State.eq(state::BOOKED))
            .exec(&txn)
            .await?;
        if res.rows_affected != 1 {
            return Err(ServiceError::Conflict(format!(
                "a booking in state '{}' cannot be cancelled",
                b.state
            )));
        }
        if let Some(slot) = b.slot_id {
            release_seat(&txn, slot).await?;
        }
        crate::audit::record(
            &txn,
            Some(actor.id),
            "counter.cancelled",
            "counter_booking",
            Some(id),
            None,
        )
        .await?;
        let event = self
            .timeline_note(
                &txn,
                &b,
                actor,
                "Appuntamento allo sportello annullato".into(),
                at,
            )
            .await?;
        txn.commit().await?;
        self.bus().publish_all(event);
        self.booking_view(id).await
    }

    /// Moves a booking to another slot, holding the new seat before freeing the old one.
    pub async fn reschedule_counter_booking(
        &self,
        actor: &Actor,
        id: Uuid,
        slot_id: Uuid,
    ) -> Result<BookingView, ServiceError> {
        actor.require_operator()?;
        let at = now();
        let txn = self.db().write.begin().await?;
        let b = counter_booking::Entity::find_by_id(id)
            .one(&txn)
            .await?
            .ok_or(ServiceError::NotFound("booking"))?;
        if b.state != state::BOOKED {
            return Err(ServiceError::Conflict(format!(
                "a booking in state '{}' cannot be rescheduled",
                b.state
            )));
        }
        if b.slot_id == Some(slot_id) {
            return Err(ServiceError::field(
                "slot_id",
                "the booking is already in that slot",
            ));
        }
        let slot = counter_slot::Entity::find_by_id(slot_id)
            .one(&txn)
            .await?
            .ok_or_else(|| ServiceError::field("slot_id", format!("no slot with id {slot_id}")))?;
        if slot.ends_at <= at {
            return Err(ServiceError::Conflict(
                "that slot is over; choose a later one".into(),
            ));
        }
        take_seat(&txn, &slot).await?;
        let res = counter_booking::Entity::update_many()
            .col_expr(counter_booking::Column::SlotId, Expr::value(Some(slot.id)))
            .col_expr(counter_booking::Column::Day, Expr::value(slot.day.clone()))
            .col_expr(counter_booking::Column::UpdatedAt, Expr::value(at))
            .filter(counter_booking::Column::Id.eq(id))
            .filter(counter_booking::Column::State.eq(state::BOOKED))
            .exec(&txn)
            .await?;
        if res.rows_affected != 1 {
            return Err(ServiceError::Conflict(
                "the booking was changed meanwhile; reload it and try again".into(),
            ));
        }
        if let Some(old) = b.slot_id {
            release_seat(&txn, old).await?;
        }
        crate::audit::record(
            &txn,
            Some(actor.id),
            "counter.rescheduled",
            "counter_booking",
            Some(id),
            Some(serde_json::json!({ "from": b.slot_id, "to": slot.id })),
        )
        .await?;
        let cal = self.counter_calendar()?;
        let local = slot.starts_at.with_timezone(&cal.timezone());
        let event = self
            .timeline_note(
                &txn,
                &b,
                actor,
                format!(
                    "Appuntamento spostato al {} alle {}",
                    local.format("%d/%m/%Y"),
                    local.format("%H:%M")
                ),
                at,
            )
            .await?;
        txn.commit().await?;
        self.bus().publish_all(event);
        self.booking_view(id).await
    }

    /// A system entry about the booking on its ticket, if it has one.
    async fn timeline_note<C: ConnectionTrait>(
        &self,
        conn: &C,
        b: &counter_booking::Model,
        actor: &Actor,
        body: String,
        at: DateTime<Utc>,
    ) -> Result<Vec<DomainEvent>, ServiceError> {
        let Some(ticket_id) = b.ticket_id else {
            return Ok(Vec::new());
        };
        let entry_id = system_entry(
            conn,
            ticket_id,
            Some(actor.id),
            body,
            serde_json::json!({ "counter_booking_id": b.id }),
            at,
        )
        .await?;
        Ok(vec![DomainEvent::EntryAdded {
            ticket_id,
            entry_id,
            kind: EntryKind::System,
            at,
        }])
    }

    /// Checks a visitor in on the day of the booking (early arrivals included, and late ones
    /// already marked as no-shows) and gives them a queue number.
    pub async fn counter_check_in(&self, actor: &Actor, id: Uuid) -> Result<CheckIn, ServiceError> {
        actor.require_operator()?;
        let cal = self.counter_calendar()?;
        let today = cal.local_date(now()).to_string();
        let b = counter_booking::Entity::find_by_id(id)
            .one(&self.db().read)
            .await?
            .ok_or(ServiceError::NotFound("booking"))?;
        if b.day != today {
            return Err(ServiceError::Conflict(format!(
                "check-in is possible only on the day of the appointment ({}); today is {today}",
                b.day
            )));
        }
        if b.state != state::BOOKED && b.state != state::NO_SHOW {
            return Err(ServiceError::Conflict(format!(
                "a booking in state '{}' cannot be checked in",
                b.state
            )));
        }
        let number = self
            .assign_queue_number(
                actor,
                &b,
                QueueKind::Appointment,
                &[state::BOOKED, state::NO_SHOW],
            )
            .await?;
        Ok(CheckIn {
            queue_number: number,
            booking: self.booking_view(id).await?,
        })
    }

    /// Gives a booking the next queue number of its day, retrying when another instance took
    /// the same number first (the unique index on day and number decides).
    async fn assign_queue_number(
        &self,
        actor: &Actor,
        b: &counter_booking::Model,
        kind: QueueKind,
        from_states: &[&str],
    ) -> Result<String, ServiceError> {
        let prefix = kind.letter().to_string();
        for _ in 0..20 {
            let at = now();
            let txn = self.db().write.begin().await?;
            let taken: Vec<Option<String>> = counter_booking::Entity::find()
                .select_only()
                .column(counter_booking::Column::QueueNumber)
                .filter(counter_booking::Column::Day.eq(b.day.clone()))
                .filter(counter_booking::Column::QueueNumber.starts_with(prefix.clone()))
                .into_tuple()
                .all(&txn)
                .await?;
            let next = taken
                .iter()
                .flatten()
                .filter_map(|n| n.get(1..).and_then(|d| d.parse::<u32>().ok()))
                .max()
                .unwrap_or(0)
                + 1;
            let number = sportello_counter::queue_number(kind, next);
            let res = counter_booking::Entity::update_many()
                .col_expr(
                    counter_booking::Column::QueueNumber,
                    Expr::value(Some(number.clone())),
                )
                .col_expr(
                    counter_booking::Column::State,
                    Expr::value(state::CHECKED_IN),
                )
                .col_expr(counter_booking::Column::CheckedInAt, Expr::value(Some(at)))
                .col_expr(counter_booking::Column::UpdatedAt, Expr::value(at))
                .filter(counter_booking::Column::Id.eq(b.id))
                .filter(counter_booking::Column::State.is_in(from_states.iter().copied()))
                .exec(&txn)
                .await;
            match res {
                Ok(r) if r.rows_affected == 1 => {}
                Ok(_) => {
                    return Err(ServiceError::Conflict(
                        "the booking was changed meanwhile; reload it and try again".into(),
                    ));
                }
                Err(e) if sportello_store::error::is_unique_violation(&e) => continue,
                Err(e) => return Err(e.into()),
            }
            crate::audit::record(
                &txn,
                Some(actor.id),
                "counter.checked_in",
                "counter_booking",
                Some(b.id),
                Some(serde_json::json!({ "queue_number": number })),
            )
            .await?;
            let event = self
                .timeline_note(
                    &txn,
                    b,
                    actor,
                    format!("Arrivo allo sportello registrato, numero {number}"),
                    at,
                )
                .await?;
            txn.commit().await?;
            self.bus().publish_all(event);
            return Ok(number);
        }
        Err(ServiceError::Conflict(
            "too many check-ins at once; try again".into(),
        ))
    }

    /// Calls the visitor waiting longest to a desk; `called` is None when nobody waits.
    pub async fn counter_call_next(
        &self,
        actor: &Actor,
        desk: u32,
    ) -> Result<CalledVisitor, ServiceError> {
        actor.require_operator()?;
        if desk == 0 || desk > sportello_counter::session::MAX_DESKS {
            return Err(ServiceError::field(
                "desk",
                format!(
                    "must be between 1 and {} (got {desk})",
                    sportello_counter::session::MAX_DESKS
                ),
            ));
        }
        let cal = self.counter_calendar()?;
        for _ in 0..10 {
            let at = now();
            let today = cal.local_date(at).to_string();
            let txn = self.db().write.begin().await?;
            let Some(b) = counter_booking::Entity::find()
                .filter(counter_booking::Column::Day.eq(today))
                .filter(counter_booking::Column::State.eq(state::CHECKED_IN))
                .order_by_asc(counter_booking::Column::CheckedInAt)
                .one(&txn)
                .await?
            else {
                return Ok(CalledVisitor { called: None });
            };
            let res = counter_booking::Entity::update_many()
                .col_expr(counter_booking::Column::State, Expr::value(state::CALLED))
                .col_expr(
                    counter_booking::Column::Desk,
                    Expr::value(Some(desk as i32)),
                )
                .col_expr(counter_booking::Column::CalledAt, Expr::value(Some(at)))
                .col_expr(counter_booking::Column::UpdatedAt, Expr::value(at))
                .filter(counter_booking::Column::Id.eq(b.id))
                .filter(counter_booking::Column::State.eq(state::CHECKED_IN))
                .exec(&txn)
                .await?;
            if res.rows_affected != 1 {
                // Another desk called them first.
                continue;
            }
            crate::audit::record(
                &txn,
                Some(actor.id),
                "counter.called",
                "counter_booking",
                Some(b.id),
                Some(serde_json::json!({ "desk": desk })),
            )
            .await?;
            txn.commit().await?;
            return Ok(CalledVisitor {
                called: Some(self.booking_view(b.id).await?),
            });
        }
        Err(ServiceError::Conflict(
            "too many desks calling at once; try again".into(),
        ))
    }

    /// Records a visit on the ticket's timeline; a follow-up sends the ticket to the back office.
    pub async fn record_counter_visit(
        &self,
        actor: &Actor,
        id: Uuid,
        input: VisitRecord,
    ) -> Result<VisitView, ServiceError> {
        actor.require_operator()?;
        let mut p = Problems::default();
        let outcome = p.check("outcome", bounded(&input.outcome, 1, 500));
        let notes = input
            .notes
            .as_deref()
            .filter(|n| !n.trim().is_empty())
            .and_then(|n| p.check("notes", bounded(n, 1, 5000)));
        let info = input
            .information_given
            .as_deref()
            .filter(|n| !n.trim().is_empty())
            .and_then(|n| p.check("information_given", bounded(n, 1, 5000)));
        let mut documents = Vec::new();
        for (i, d) in input.documents_received.iter().enumerate() {
            if let Some(d) = p.check(&format!("documents_received[{i}]"), bounded(d, 1, 300)) {
                documents.push(d);
            }
        }
        let follow_up: Option<String> = match &input.follow_up {
            None | Some(serde_json::Value::Null) | Some(serde_json::Value::Bool(false)) => None,
            Some(serde_json::Value::Bool(true)) => {
                Some("Approfondimento richiesto dopo la visita allo sportello".into())
            }
            Some(serde_json::Value::String(s)) if s.trim().is_empty() => None,
            Some(serde_json::Value::String(s)) => p.check("follow_up", bounded(s, 1, 2000)),
            Some(_) => {
                p.add("follow_up", "must be true, false or the reason as text");
                None
            }
        };
        p.finish()?;
        let outcome = outcome.unwrap_or_default();
        let at = now();
        let txn = self.db().write.begin().await?;
        let b = counter_booking::Entity::find_by_id(id)
            .one(&txn)
            .await?
            .ok_or(ServiceError::NotFound("booking"))?;
        let Some(ticket_id) = b.ticket_id else {
            return Err(ServiceError::Conflict(
                "the booking has no ticket to record the visit on".into(),
            ));
        };
        let res = counter_booking::Entity::update_many()
            .col_expr(counter_booking::Column::State, Expr::value(state::VISITED))
            .col_expr(counter_booking::Column::VisitedAt, Expr::value(Some(at)))
            .col_expr(counter_booking::Column::UpdatedAt, Expr::value(at))
            .filter(counter_booking::Column::Id.eq(id))
            .filter(counter_booking::Column::State.is_in([state::CHECKED_IN, state::CALLED]))
            .exec(&txn)
            .await?;
        if res.rows_affected != 1 {
            return Err(ServiceError::Conflict(format!(
                "a visit can be recorded only after check-in (the booking is '{}')",
                b.state
            )));
        }
        let expected = sportello_counter::documents_for(b.measure.as_deref());
        let missing: Vec<&str> = expected
            .iter()
            .copied()
            .filter(|e| !documents.iter().any(|d| d.eq_ignore_ascii_case(e)))
            .collect();
        let mut body = format!("Visita allo sportello — esito: {outcome}.");
        if !documents.is_empty() {
            body.push_str(&format!("\nDocumenti ricevuti: {}.", documents.join("; ")));
        }
        if let Some(i) = &info {
            body.push_str(&format!("\nInformazioni fornite: {i}"));
        }
        if let Some(n) = &notes {
            body.push_str(&format!("\nNote: {n}"));
        }
        if let Some(f) = &follow_up {
            body.push_str(&format!("\nSeguito richiesto (back office): {f}"));
        }
        let meta = serde_json::json!({
            "counter_booking_id": id,
            "queue_number": b.queue_number,
            "desk": b.desk,
            "walk_in": b.walk_in,
            "documents_received": documents,
            "documents_expected": expected,
            "documents_missing": missing,
            "outcome": outcome,
            "information_given": info,
            "notes": notes,
            "follow_up": follow_up,
        });
        let entry_id = Uuid::now_v7();
        ticket_entry::Entity::insert(ticket_entry::ActiveModel {
            id: Set(entry_id),
            ticket_id: Set(ticket_id),
            kind: Set(EntryKind::Visit.as_str().to_owned()),
            author_id: Set(Some(actor.id)),
            body: Set(body),
            body_html: Set(None),
            meta: Set(Some(meta.to_string())),
            created_at: Set(at),
        })
        .exec_without_returning(&txn)
        .await?;
        ticket::Entity::update_many()
            .col_expr(ticket::Column::UpdatedAt, Expr::value(at))
            .filter(ticket::Column::Id.eq(ticket_id))
            .exec(&txn)
            .await?;
        crate::audit::record(&txn, Some(actor.id), "counter.visit_recorded", "counter_booking", Some(id), Some(serde_json::json!({ "ticket_id": ticket_id, "entry_id": entry_id, "follow_up": follow_up.is_some() }))).await?;
        txn.commit().await?;
        self.bus().publish_all(vec![DomainEvent::EntryAdded {
            ticket_id,
            entry_id,
            kind: EntryKind::Visit,
            at,
        }]);
        let mut escalated = false;
        if let Some(reason) = follow_up {
            match self
                .escalate(actor, ticket_id, "back_office", &reason)
                .await
            {
                Ok(_) => escalated = true,
                Err(e) => {
                    tracing::warn!(ticket.id = %ticket_id, error = %e, "visit follow-up: ticket not escalated")
                }
            }
        }
        Ok(VisitView {
            booking: self.booking_view(id).await?,
            entry_id,
            escalated,
        })
    }

    /// Records a visitor without an appointment: checked in at once, with a `W` queue number.
    pub async fn counter_walk_in(
        &self,
        actor: &Actor,
        input: NewWalkIn,
    ) -> Result<CheckIn, ServiceError> {
        actor.require_operator()?;
        let mut p = Problems::default();
        let (category, measure) =
            self.check_topic(&mut p, input.category.as_deref(), input.measure.as_deref());
        let notes = input
            .notes
            .as_deref()
            .filter(|n| !n.trim().is_empty())
            .and_then(|n| p.check("notes", bounded(n, 1, 2000)));
        p.finish()?;
        if citizen::Entity::find_by_id(input.citizen_id)
            .one(&self.db().read)
            .await?
            .is_none()
        {
            return Err(ServiceError::field(
                "citizen_id",
                format!("no citizen with id {}", input.citizen_id),
            ));
        }
        let ticket_id = match input.ticket_id {
            Some(t) => self.get_ticket(actor, t).await?.id,
            None => {
                self.create_ticket(
                    actor,
                    NewTicket {
                        channel: "counter".into(),
                        subject: "Visita allo sportello senza appuntamento".into(),
                        body: notes.clone(),
                        category: Some(category.clone().unwrap_or_else(|| DEFAULT_CATEGORY.into())),
                        measure: measure.clone(),
                        citizen_id: Some(input.citizen_id),
                        ..Default::default()
                    },
                )
                .await?
                .id
            }
        };
        let cal = self.counter_calendar()?;
        let at = now();
        let id = Uuid::now_v7();
        let model = counter_booking::Model {
            id,
            slot_id: None,
            citizen_id: input.citizen_id,
            ticket_id: Some(ticket_id),
            day: cal.local_date(at).to_string(),
            walk_in: true,
            state: state::BOOKED.into(),
            category,
            measure,
            notes,
            queue_number: None,
            desk: None,
            notification: None,
            reminder_due_at: None,
            checked_in_at: None,
            called_at: None,
            visited_at: None,
            no_show_at: None,
            cancelled_at: None,
            created_by: Some(actor.id),
            created_at: at,
            updated_at: at,
        };
        let txn = self.db().write.begin().await?;
        counter_booking::Entity::insert(counter_booking::ActiveModel::from(model.clone()))
            .exec_without_returning(&txn)
            .await?;
        crate::audit::record(
            &txn,
            Some(actor.id),
            "counter.walk_in",
            "counter_booking",
            Some(id),
            Some(serde_json::json!({ "ticket_id": ticket_id })),
        )
        .await?;
        txn.commit().await?;
        let number = self
            .assign_queue_number(actor, &model, QueueKind::WalkIn, &[state::BOOKED])
            .await?;
        Ok(CheckIn {
            queue_number: number,
            booking: self.booking_view(id).await?,
        })
    }

    /// Today's visitors, for one desk (its called visitors and everyone not yet called) or all.
    pub async fn counter_today(
        &self,
        actor: &Actor,
        desk: Option<u32>,
    ) -> Result<TodayView, ServiceError> {
        actor.require_operator()?;
        let cal = self.counter_calendar()?;
        let today = cal.local_date(now()).to_string();
        let read = &self.db().read;
        let rows = counter_booking::Entity::find()
            .filter(counter_booking::Column::Day.eq(today.clone()))
            .all(read)
            .await?;
        let slot_ids: Vec<Uuid> = rows.iter().filter_map(|b| b.slot_id).collect();
        let slots: HashMap<Uuid, counter_slot::Model> = if slot_ids.is_empty() {
            HashMap::new()
        } else {
            counter_slot::Entity::find()
                .filter(counter_slot::Column::Id.is_in(slot_ids))
                .all(read)
                .await?
                .into_iter()
                .map(|s| (s.id, s))
                .collect()
        };
        let mut counts = DayCounts::default();
        for b in &rows {
            match b.state.as_str() {
                state::BOOKED => counts.booked += 1,
                state::CHECKED_IN => counts.waiting += 1,
                state::CALLED => counts.called += 1,
                state::VISITED => counts.visited += 1,
                state::NO_SHOW => counts.no_show += 1,
                state::CANCELLED => counts.cancelled += 1,
                _ => {}
            }
            if b.walk_in {
                counts.walk_ins += 1;
            }
        }
        let mut items: Vec<BookingView> = rows
            .into_iter()
            .filter(|b| b.state != state::CANCELLED)
            .filter(|b| match desk {
                Some(d) => b.desk.is_none() || b.desk == Some(d as i32),
                None => true,
            })
            .map(|b| {
                let slot = b.slot_id.and_then(|s| slots.get(&s));
                self.view_of(&cal, b, slot)
            })
            .collect();
        items.sort_by_key(|b| (b.start, b.created_at));
        Ok(TodayView {
            date: today,
            items,
            counts,
        })
    }

    /// Marks as no-shows the bookings whose slot started more than the grace period before
    /// `at` and that were never checked in; returns how many. Idempotent, and safe on several
    /// instances at once (each booking changes state by a conditional update).
    pub async fn mark_counter_no_shows(&self, at: DateTime<Utc>) -> Result<usize, ServiceError> {
        use sea_orm::sea_query::ExprTrait;
        let cutoff =
            sportello_counter::noshow::no_show_cutoff(at, self.counter_config().grace_minutes);
        let past_slots = Query::select()
            .column(counter_slot::Column::Id)
            .from(counter_slot::Entity)
            .and_where(Expr::col(counter_slot::Column::StartsAt).lte(cutoff))
            .to_owned();
        let txn = self.db().write.begin().await?;
        let due = counter_booking::Entity::find()
            .filter(counter_booking::Column::State.eq(state::BOOKED))
            .filter(counter_booking::Column::SlotId.in_subquery(past_slots))
            .limit(500)
            .all(&txn)
            .await?;
        let mut events = Vec::new();
        let mut marked = 0;
        let stamp = now();
        for b in due {
            let res = counter_booking::Entity::update_many()
                .col_expr(counter_booking::Column::State, Expr::value(state::NO_SHOW))
                .col_expr(counter_booking::Column::NoShowAt, Expr::value(Some(stamp)))
                .col_expr(counter_booking::Column::UpdatedAt, Expr::value(stamp))
                .filter(counter_booking::Column::Id.eq(b.id))
                .filter(counter_booking::Column::State.eq(state::BOOKED))
                .exec(&txn)
                .await?;
            if res.rows_affected != 1 {
                continue;
            }
            marked += 1;
            crate::audit::record(
                &txn,
                None,
                "counter.no_show",
                "counter_booking",
                Some(b.id),
                None,
            )
            .await?;
            if let Some(ticket_id) = b.ticket_id {
                let entry_id = system_entry(
                    &txn,
                    ticket_id,
                    None,
                    "Il cittadino non si è presentato all'appuntamento allo sportello".into(),
                    serde_json::json!({ "counter_booking_id": b.id, "no_show": true }),
                    stamp,
                )
                .await?;
                events.push(DomainEvent::EntryAdded {
                    ticket_id,
                    entry_id,
                    kind: EntryKind::System,
                    at: stamp,
                });
            }
        }
        txn.commit().await?;
        self.bus().publish_all(events);
        if marked > 0 {
            tracing::info!(count = marked, "counter no-shows marked");
        }
        Ok(marked)
    }

    /// Runs the no-show check now (supervisors and admins) and counts all no-shows so far.
    pub async fn run_counter_no_shows(&self, actor: &Actor) -> Result<NoShowRun, ServiceError> {
        actor.require_any(&[Role::Supervisor, Role::Admin])?;
        let marked = self.mark_counter_no_shows(now()).await?;
        let total = counter_booking::Entity::find()
            .filter(counter_booking::Column::State.eq(state::NO_SHOW))
            .count(&self.db().read)
            .await?;
        Ok(NoShowRun {
            marked,
            no_shows_total: total,
        })
    }

    /// Marks no-shows every `no_show_tick_seconds` until cancelled.
    pub async fn run_counter_tasks(&self, cancel: CancellationToken) {
        let tick =
            std::time::Duration::from_secs(self.counter_config().no_show_tick_seconds.max(1));
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(tick) => {},
            }
            if let Err(e) = self.mark_counter_no_shows(now()).await {
                tracing::warn!(error = %e, "counter no-show pass failed");
            }
            if let Err(e) = self.send_counter_reminders(now()).await {
                tracing::warn!(error = %e, "counter reminder pass failed");
            }
        }
    }

    /// Proposes the sessions of an ISO week (`YYYY-Www`) from the week before's bookings,
    /// pending appointment requests and the no-show rate of the last eight weeks; the
    /// proposal is stored so that it can be approved by id.
    pub async fn counter_plan(&self, actor: &Actor, week: &str) -> Result<PlanView, ServiceError> {
        actor.require_any(&[Role::Supervisor, Role::Admin])?;
        let monday = parse_week(week)?;
        let cal = self.counter_calendar()?;
        let read = &self.db().read;
        let prev = monday - Duration::days(7);
        let days: Vec<String> = (0..7)
            .map(|i| (prev + Duration::days(i)).to_string())
            .collect();
        let sessions = counter_session::Entity::find()
            .filter(counter_session::Column::Day.is_in(days))
            .all(read)
            .await?;
        let mut loads = Vec::new();
        if !sessions.is_empty() {
            let slots = counter_slot::Entity::find()
                .filter(counter_slot::Column::SessionId.is_in(sessions.iter().map(|s| s.id)))
                .all(read)
                .await?;
            let mut per: BTreeMap<Uuid, (u32, u32)> = BTreeMap::new();
            for s in slots {
                let e = per.entry(s.session_id).or_default();
                e.0 += s.capacity.max(0) as u32;
                e.1 += s.booked.max(0) as u32;
            }
            for s in &sessions {
                let (Ok(date), Ok(start), Ok(end)) = (
                    NaiveDate::parse_from_str(&s.day, "%Y-%m-%d"),
                    NaiveTime::parse_from_str(&s.start_time, "%H:%M"),
                    NaiveTime::parse_from_str(&s.end_time, "%H:%M"),
                ) else {
                    continue;
                };
                let (capacity, booked) = per.get(&s.id).copied().unwrap_or_default();
                loads.push(SessionLoad {
                    weekday: date.weekday(),
                    start,
                    end,
                    capacity,
                    booked,
                });
            }
        }
        let active_bookings = Query::select()
            .column(counter_booking::Column::TicketId)
            .from(counter_booking::Entity)
            .and_where(sea_orm::sea_query::ExprTrait::is_not_null(Expr::col(
                counter_booking::Column::TicketId,
            )))
            .to_owned();
        let pending = ticket::Entity::find()
            .filter(ticket::Column::Category.eq(DEFAULT_CATEGORY))
            .filter(ticket::Column::Status.is_in(["new", "assigned", "open"]))
            .filter(ticket::Column::Id.not_in_subquery(active_bookings))
            .count(read)
            .await?;
        let today = cal.local_date(now());
        let since = (today - Duration::days(56)).to_string();
        let past = counter_booking::Entity::find()
            .filter(counter_booking::Column::Day.gte(since))
            .filter(counter_booking::Column::Day.lt(today.to_string()))
            .filter(counter_booking::Column::WalkIn.eq(false))
            .filter(counter_booking::Column::State.is_in([
                state::NO_SHOW,
                state::VISITED,
                state::CALLED,
                state::CHECKED_IN,
            ]));
        let past_total = past.clone().count(read).await?;
        let past_no_shows = past
            .filter(counter_booking::Column::State.eq(state::NO_SHOW))
            .count(read)
            .await?;
        let rate = sportello_counter::no_show_rate(past_no_shows, past_total);
        let cfg = self.counter_config();
        let input = sportello_counter::PlanInput {
            week: monday,
            calendar: &cal,
            template: cfg.template.clone(),
            loads: loads.clone(),
            pending_requests: u32::try_from(pending).unwrap_or(u32::MAX),
            no_show_rate: rate,
            params: cfg.planner.clone(),
        };
        let proposal: Vec<PlannedSession> = sportello_counter::plan_week(&input)
            .into_iter()
            .map(|s| PlannedSession {
                date: s.date.to_string(),
                start: hhmm(s.start),
                end: hhmm(s.end),
                desks: s.desks,
                reason: s.reason,
            })
            .collect();
        let inputs = serde_json::json!({
            "reference_week": iso_week(prev),
            "sessions_observed": loads.len(),
            "booked": loads.iter().map(|l| l.booked).sum::<u32>(),
            "capacity": loads.iter().map(|l| l.capacity).sum::<u32>(),
            "pending_requests": pending,
            "no_show_rate": rate,
        });
        let id = Uuid::now_v7();
        let week = iso_week(monday);
        let txn = self.db().write.begin().await?;
        counter_plan::Entity::insert(counter_plan::ActiveModel {
            id: Set(id),
            week: Set(week.clone()),
            state: Set("proposed".into()),
            sessions: Set(serde_json::to_string(&proposal).unwrap_or_else(|_| "[]".into())),
            inputs: Set(inputs.to_string()),
            created_by: Set(Some(actor.id)),
            created_at: Set(now()),
            approved_by: Set(None),
            approved_at: Set(None),
        })
        .exec_without_returning(&txn)
        .await?;
        crate::audit::record(
            &txn,
            Some(actor.id),
            "counter.plan_proposed",
            "counter_plan",
            Some(id),
            Some(serde_json::json!({ "week": week, "sessions": proposal.len() })),
        )
        .await?;
        txn.commit().await?;
        Ok(PlanView {
            id,
            week,
            state: "proposed".into(),
            sessions: proposal,
            inputs,
        })
    }

    /// Approves a proposed plan: its sessions open and their slots can be booked. A session
    /// that meanwhile clashes with a holiday or an existing session is skipped with the reason.
    pub async fn approve_counter_plan(
        &self,
        actor: &Actor,
        id: Uuid,
    ) -> Result<ApprovedPlan, ServiceError> {
        actor.require_any(&[Role::Supervisor, Role::Admin])?;
        let cal = self.counter_calendar()?;
        let at = now();
        let txn = self.db().write.begin().await?;
        crate::util::xact_lock(&txn, SESSION_LOCK).await?;
        let plan = counter_plan::Entity::find_by_id(id)
            .one(&txn)
            .await?
            .ok_or(ServiceError::NotFound("plan"))?;
        let res = counter_plan::Entity::update_many()
            .col_expr(counter_plan::Column::State, Expr::value("approved"))
            .col_expr(
                counter_plan::Column::ApprovedBy,
                Expr::value(Some(actor.id)),
            )
            .col_expr(counter_plan::Column::ApprovedAt, Expr::value(Some(at)))
            .filter(counter_plan::Column::Id.eq(id))
            .filter(counter_plan::Column::State.eq("proposed"))
            .exec(&txn)
            .await?;
        if res.rows_affected != 1 {
            return Err(ServiceError::Conflict(format!(
                "the plan is already {}",
                plan.state
            )));
        }
        let sessions: Vec<PlannedSession> = serde_json::from_str(&plan.sessions)
            .map_err(|e| ServiceError::Internal(format!("stored plan {id}: {e}")))?;
        let mut opened = Vec::new();
        let mut skipped = Vec::new();
        for s in sessions {
            let mut p = Problems::default();
            let (Some(date), Some(start), Some(end)) = (
                parse_date("date", &s.date, &mut p),
                parse_time("start", &s.start, &mut p),
                parse_time("end", &s.end, &mut p),
            ) else {
                skipped.push(SkippedSession {
                    date: s.date,
                    start: s.start,
                    reason: "invalid stored session".into(),
                });
                continue;
            };
            let req = SessionRequest {
                date,
                start,
                end,
                desks: s.desks,
                slot_minutes: Some(self.counter_config().planner.slot_minutes),
            };
            match validate_against_day(&txn, &cal, &req).await {
                Ok(valid) => {
                    opened.push(insert_session(&txn, &cal, &valid, Some(id), actor.id).await?)
                }
                Err(ServiceError::Conflict(reason)) => {
                    skipped.push(SkippedSession {
                        date: s.date,
                        start: s.start,
                        reason,
                    });
                }
                Err(e @ ServiceError::Validation(_)) => {
                    skipped.push(SkippedSession {
                        date: s.date,
                        start: s.start,
                        reason: e.to_string(),
                    });
                }
                Err(e) => return Err(e),
            }
        }
        crate::audit::record(&txn, Some(actor.id), "counter.plan_approved", "counter_plan", Some(id), Some(serde_json::json!({ "week": plan.week, "opened": opened.len(), "skipped": skipped.len() }))).await?;
        txn.commit().await?;
        Ok(ApprovedPlan {
            id,
            week: plan.week,
            state: "approved".into(),
            opened,
            skipped,
        })
    }
}

/// Validates a session against the calendar and the sessions already open that day.
async fn validate_against_day<C: ConnectionTrait>(
    conn: &C,
    cal: &BusinessCalendar,
    req: &SessionRequest,
) -> Result<ValidSession, ServiceError> {
    let existing: Vec<(NaiveTime, NaiveTime)> = counter_session::Entity::find()
        .filter(counter_session::Column::Day.eq(req.date.to_string()))
        .all(conn)
        .await?
        .into_iter()
        .filter_map(|s| {
            Some((
                NaiveTime::parse_from_str(&s.start_time, "%H:%M").ok()?,
                NaiveTime::parse_from_str(&s.end_time, "%H:%M").ok()?,
            ))
        })
        .collect();
    sportello_counter::validate_session(req, cal, &existing).map_err(|e| {
        if e.is_conflict() {
            ServiceError::Conflict(e.to_string())
        } else {
            ServiceError::field(e.field(), e.to_string())
        }
    })
}

async fn insert_session<C: ConnectionTrait>(
    conn: &C,
    cal: &BusinessCalendar,
    v: &ValidSession,
    plan_id: Option<Uuid>,
    actor: Uuid,
) -> Result<SessionView, ServiceError> {
    let id = Uuid::now_v7();
    let model = counter_session::Model {
        id,
        day: v.date.to_string(),
        start_time: hhmm(v.start),
        end_time: hhmm(v.end),
        desks: v.desks as i32,
        slot_minutes: v.slot_minutes as i32,
        plan_id,
        created_by: Some(actor),
        created_at: now(),
    };
    counter_session::Entity::insert(counter_session::ActiveModel::from(model.clone()))
        .exec_without_returning(conn)
        .await?;
    let slots = sportello_counter::generate_slots(cal.timezone(), v);
    let n = slots.len();
    if !slots.is_empty() {
        counter_slot::Entity::insert_many(slots.into_iter().map(|s| counter_slot::ActiveModel {
            id: Set(Uuid::now_v7()),
            session_id: Set(id),
            day: Set(v.date.to_string()),
            starts_at: Set(s.start),
            ends_at: Set(s.end),
            capacity: Set(s.capacity as i32),
            booked: Set(0),
        }))
        .exec_without_returning(conn)
        .await?;
    }
    Ok(SessionView {
        id,
        date: model.day,
        start: model.start_time,
        end: model.end_time,
        desks: model.desks,
        slot_minutes: model.slot_minutes,
        plan_id,
        slots: n,
    })
}

/// Takes one seat of a slot, or fails with a conflict when it is full. The condition in the
/// UPDATE is what keeps the capacity: concurrent transactions on any instance serialise on the
/// row and each re-checks `booked < capacity`.
async fn take_seat<C: ConnectionTrait>(
    conn: &C,
    slot: &counter_slot::Model,
) -> Result<(), ServiceError> {
    use sea_orm::sea_query::ExprTrait;
    let res = counter_slot::Entity::update_many()
        .col_expr(
            counter_slot::Column::Booked,
            Expr::col(counter_slot::Column::Booked).add(1),
        )
        .filter(counter_slot::Column::Id.eq(slot.id))
        .filter(
            Expr::col(counter_slot::Column::Booked).lt(Expr::col(counter_slot::Column::Capacity)),
        )
        .exec(conn)
        .await?;
    if res.rows_affected != 1 {
        return Err(ServiceError::Conflict(format!(
            "the slot of {} starting at {} is full ({} of {} places booked); choose another slot",
            slot.day, slot.starts_at, slot.capacity, slot.capacity
        )));
    }
    Ok(())
}

async fn release_seat<C: ConnectionTrait>(conn: &C, slot_id: Uuid) -> Result<(), ServiceError> {
    use sea_orm::sea_query::ExprTrait;
    counter_slot::Entity::update_many()
        .col_expr(
            counter_slot::Column::Booked,
            Expr::col(counter_slot::Column::Booked).sub(1),
        )
        .filter(counter_slot::Column::Id.eq(slot_id))
        .filter(counter_slot::Column::Booked.gt(0))
        .exec(conn)
        .await?;
    Ok(())
}

/// Adds a system entry to a ticket's timeline and returns its id (for the event).
async fn system_entry<C: ConnectionTrait>(
    conn: &C,
    ticket_id: Uuid,
    author: Option<Uuid>,
    body: String,
    meta: serde_json::Value,
    at: DateTime<Utc>,
) -> Result<Uuid, sea_orm::DbErr> {
    let id = Uuid::now_v7();
    ticket_entry::Entity::insert(ticket_entry::ActiveModel {
        id: Set(id),
        ticket_id: Set(ticket_id),
        kind: Set(EntryKind::System.as_str().to_owned()),
        author_id: Set(author),
        body: Set(body),
        body_html: Set(None),
        meta: Set(Some(meta.to_string())),
        created_at: Set(at),
    })
    .exec_without_returning(conn)
    .await?;
    Ok(id)
}
