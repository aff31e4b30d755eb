//! Back-office applications ("pratiche"): create with the measure's documents checklist and the
//! ISEE/DSU pre-check warnings, list and read (with documents, history, payments, linked tickets
//! and the monitoring schedule), move through the workflow, mark documents, record payments by
//! instalment, link tickets, notify the citizen by e-mail, and open back-office tickets for the
//! post-payment monitoring checks when they fall due.
//!
//! Each change runs in one transaction with its history row and audit record; e-mails are
//! queued after the commit through the ticket reply path (`reply_by_email`), so they reach the
//! outbox with the same templates, threading and delivery as operators' replies.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, TransactionTrait,
};
use serde::{Deserialize, Serialize};
use sportello_domain::application::{
    ApplicationStatus, DocumentSpec, IseeData, IseeType, MeasureRules, Money, SubmissionChannel,
    TransitionError, Warning, default_rules, monitoring_due_dates, pre_check, validate_documents,
};
use sportello_domain::event::DomainEvent;
use sportello_domain::taxonomy::TaxonomyKind;
use sportello_domain::{EntryKind, Role, Status, Tier};
use sportello_store::entities::{
    application, application_document, application_event, application_monitoring, citizen,
    citizen_contact, payment, ticket, ticket_application,
};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::error::Problems;
use crate::tickets::{CitizenRef, NewTicket, TransitionRequest};
use crate::util::{bounded, now};
use crate::{Actor, App, ServiceError};

/// Kinds of history rows, as stored.
pub mod event_kind {
    pub const CREATED: &str = "created";
    pub const TRANSITION: &str = "transition";
    pub const DOCUMENT: &str = "document";
    pub const PAYMENT: &str = "payment";
    pub const LINK: &str = "link";
    pub const NOTIFICATION: &str = "notification";
    pub const MONITORING: &str = "monitoring";
}

/// States of a monitoring check, as stored.
pub mod check_state {
    pub const SCHEDULED: &str = "scheduled";
    pub const CLAIMED: &str = "claimed";
    pub const TICKETED: &str = "ticketed";
    pub const CANCELLED: &str = "cancelled";
}

/// A claim on a monitoring check older than this is taken to be abandoned (its instance
/// stopped between claiming the check and recording its ticket).
const STALE_CLAIM_MINUTES: i64 = 10;

/// Roles that may change applications; every operator role may read them.
const WRITERS: &[Role] = &[Role::BackOffice, Role::Supervisor, Role::Admin];

/// Settings of the back office (`[service.applications]`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct ApplicationsConfig {
    /// E-mail the citizen the list of missing documents when documents are requested.
    pub notify_documents_requested: bool,
    /// E-mail the citizen the outcome (eligible, or not eligible with the reason).
    pub notify_outcome: bool,
    /// E-mail the citizen each payment (amount, date, instalment).
    pub notify_payment: bool,
    /// How often the background task looks for monitoring checks that fell due, in seconds.
    pub monitoring_tick_seconds: u64,
    /// Per-measure settings over the built-in defaults (`default_rules`): a measure or a key
    /// that is not given keeps its default.
    pub measures: BTreeMap<String, MeasureSettings>,
}

impl Default for ApplicationsConfig {
    fn default() -> Self {
        ApplicationsConfig {
            notify_documents_requested: true,
            notify_outcome: true,
            notify_payment: true,
            monitoring_tick_seconds: 300,
            measures: BTreeMap::new(),
        }
    }
}

/// One measure's settings (`[service.applications.measures.SLUG]`); each key replaces the
/// built-in default as a whole.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MeasureSettings {
    pub isee_required: Option<bool>,
    /// Highest ISEE admitted per ISEE type, as decimal strings: `{ ordinario = "6000.00" }`.
    pub thresholds: Option<BTreeMap<IseeType, Money>>,
    pub documents: Option<Vec<DocumentSpec>>,
    pub monitoring_after_days: Option<Vec<u32>>,
}

impl ApplicationsConfig {
    /// The rules in force for a measure: its built-in defaults with the configured keys over.
    pub fn rules(&self, measure: &str) -> MeasureRules {
        let mut r = default_rules(measure);
        if let Some(s) = self.measures.get(measure) {
            if let Some(v) = s.isee_required {
                r.isee_required = v;
            }
            if let Some(v) = &s.thresholds {
                r.thresholds = v.clone();
            }
            if let Some(v) = &s.documents {
                r.documents = v.clone();
            }
            if let Some(v) = &s.monitoring_after_days {
                r.monitoring_after_days = v.clone();
            }
        }
        r
    }

    /// Checks the configured checklists, naming the measure at fault.
    pub fn validate(&self) -> Result<(), ServiceError> {
        for (measure, s) in &self.measures {
            if let Some(docs) = &s.documents {
                validate_documents(docs).map_err(|e| {
                    ServiceError::field(format!("applications.measures.{measure}.documents"), e)
                })?;
            }
            if s.monitoring_after_days
                .as_ref()
                .is_some_and(|d| d.iter().any(|d| *d == 0 || *d > 3650))
            {
                return Err(ServiceError::field(
                    format!("applications.measures.{measure}.monitoring_after_days"),
                    "each entry must be between 1 and 3650 days",
                ));
            }
        }
        Ok(())
    }
}

/// A new application.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
pub struct NewApplication {
    pub citizen_id: Uuid,
    /// Measure slug from the taxonomy (`income_support`, `b2`, ...).
    pub measure: String,
    /// The municipality's protocol number; unique when given.
    pub protocol_number: Option<String>,
    /// When it was submitted: an RFC 3339 timestamp or a local date `YYYY-MM-DD`; now when
    /// absent.
    pub submitted_at: Option<String>,
    /// `email`, `pec`, `phone`, `counter`, `web`, `paper` or `other` (default).
    #[serde(alias = "channel")]
    pub submission_channel: Option<String>,
    pub isee: Option<NewIsee>,
}

/// The ISEE data given with an application.
#[derive(Clone, Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct NewIsee {
    /// `ordinario`, `sociosanitario`, `minorenni` or `corrente`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// The ISEE in euros as a decimal string, e.g. `"5400.00"`.
    #[schema(value_type = Option<String>, example = "5400.00")]
    pub value: Option<serde_json::Value>,
    /// The DSU's INPS protocol number.
    pub dsu_protocol: Option<String>,
    /// Date the DSU was filed, `YYYY-MM-DD`.
    pub dsu_date: Option<String>,
    /// Expiry of the attestation, `YYYY-MM-DD`; 31 December of the DSU's year when absent.
    pub expires_on: Option<String>,
}

/// A payment (one instalment).
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
pub struct NewPayment {
    /// Euros as a decimal string, e.g. `"750.00"`.
    #[schema(value_type = String, example = "750.00")]
    pub amount: serde_json::Value,
    /// `YYYY-MM-DD`.
    pub paid_on: String,
    /// 1-based; default 1.
    pub instalment: Option<i64>,
    /// How many instalments in all; default 1.
    pub of: Option<i64>,
}

/// A document marked received or missing.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
pub struct DocumentUpdate {
    pub received: bool,
}

/// A link from a ticket to an application.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
pub struct NewLink {
    pub application_id: Uuid,
}

/// List parameters.
#[derive(Clone, Debug, Default, Deserialize, utoipa::IntoParams)]
pub struct ApplicationQuery {
    pub citizen_id: Option<Uuid>,
    pub measure: Option<String>,
    /// One status, or several separated by commas.
    pub status: Option<String>,
    pub protocol_number: Option<String>,
    /// Page size, 1–200 (default 50).
    pub limit: Option<u64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct IseeView {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Euros, `"5400.00"`.
    pub value: Option<String>,
    pub dsu_protocol: Option<String>,
    pub dsu_date: Option<NaiveDate>,
    /// As given; see `valid_until`.
    pub expires_on: Option<NaiveDate>,
    /// The given expiry, else 31 December of the DSU's year.
    pub valid_until: Option<NaiveDate>,
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct DocumentView {
    pub name: String,
    pub label: String,
    pub required: bool,
    pub received: bool,
    pub received_at: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct HistoryView {
    pub id: Uuid,
    /// `created`, `transition`, `document`, `payment`, `link`, `notification`, `monitoring`.
    pub kind: String,
    pub from: Option<String>,
    pub to: Option<String>,
    pub reason: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub detail: Option<serde_json::Value>,
    pub actor_id: Option<Uuid>,
    pub at: DateTime<Utc>,
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct PaymentView {
    pub id: Uuid,
    /// Euros, `"750.00"`.
    pub amount: String,
    pub paid_on: NaiveDate,
    pub instalment: i32,
    pub of: i32,
    pub created_at: DateTime<Utc>,
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct LinkedTicket {
    pub id: Uuid,
    pub number: String,
    pub status: String,
    pub tier: String,
    pub channel: String,
    pub subject: String,
    pub linked_at: DateTime<Utc>,
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct MonitoringView {
    pub id: Uuid,
    pub seq: i32,
    pub due_on: NaiveDate,
    /// `scheduled`, `claimed`, `ticketed` or `cancelled`.
    pub state: String,
    pub ticket_id: Option<Uuid>,
}

/// An application as the API shows it; history, payments, tickets and monitoring only when
/// one application is read.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct ApplicationView {
    pub id: Uuid,
    pub citizen_id: Uuid,
    pub citizen: Option<CitizenRef>,
    pub measure: String,
    pub measure_label: Option<String>,
    pub protocol_number: Option<String>,
    pub submitted_at: DateTime<Utc>,
    pub submission_channel: String,
    pub status: String,
    /// Italian label of the status, for the console.
    pub status_label: String,
    pub isee: Option<IseeView>,
    pub outcome_reason: Option<String>,
    /// The pre-checks' findings, for the operator to weigh (never a decision).
    #[schema(value_type = Vec<Object>)]
    pub warnings: Vec<Warning>,
    pub documents: Vec<DocumentView>,
    /// Names of the required documents not yet received.
    pub missing_documents: Vec<String>,
    /// Sum of the payments, euros.
    pub paid_total: String,
    pub instalments_paid: u32,
    pub instalments_of: Option<u32>,
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<Vec<HistoryView>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payments: Option<Vec<PaymentView>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tickets: Option<Vec<LinkedTicket>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub monitoring: Option<Vec<MonitoringView>>,
    /// The payment just recorded (only in the answer to recording one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payment: Option<PaymentView>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ApplicationPage {
    pub items: Vec<ApplicationView>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LinkView {
    pub ticket_id: Uuid,
    pub application_id: Uuid,
    /// False when the link already existed.
    pub created: bool,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TicketApplications {
    pub ticket_id: Uuid,
    pub items: Vec<ApplicationView>,
}

/// What a notification is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Notice {
    DocumentsRequested,
    Outcome,
    Payment,
}

impl Notice {
    fn slug(self) -> &'static str {
        match self {
            Notice::DocumentsRequested => "documents_requested",
            Notice::Outcome => "outcome",
            Notice::Payment => "payment",
        }
    }

    fn category(self) -> &'static str {
        match self {
            Notice::DocumentsRequested => "missing_documents",
            Notice::Outcome => "outcome_appeal",
            Notice::Payment => "payments",
        }
    }
}

fn parse_date(p: &mut Problems, field: &str, value: Option<&str>) -> Option<NaiveDate> {
    let v = value.map(str::trim).filter(|v| !v.is_empty())?;
    p.check(
        field,
        NaiveDate::parse_from_str(v, "%Y-%m-%d")
            .map_err(|_| format!("'{v}' is not a date (expected YYYY-MM-DD)")),
    )
}

fn money_of(p: &mut Problems, field: &str, v: &serde_json::Value) -> Option<Money> {
    match v {
        serde_json::Value::String(s) => p.check(field, Money::parse(s)),
        serde_json::Value::Number(n) => p.check(field, Money::parse(&n.to_string())),
        _ => {
            p.add(
                field,
                "must be an amount in euros as a decimal string, like \"750.00\"",
            );
            None
        }
    }
}

/// One history row in the making.
#[derive(Default)]
struct History {
    kind: &'static str,
    from: Option<ApplicationStatus>,
    to: Option<ApplicationStatus>,
    reason: Option<String>,
    detail: Option<serde_json::Value>,
    actor: Option<Uuid>,
}

impl History {
    fn row(self, application_id: Uuid, at: DateTime<Utc>) -> application_event::ActiveModel {
        application_event::ActiveModel {
            id: Set(Uuid::now_v7()),
            application_id: Set(application_id),
            kind: Set(self.kind.to_owned()),
            from_status: Set(self.from.map(|s| s.as_str().to_owned())),
            to_status: Set(self.to.map(|s| s.as_str().to_owned())),
            reason: Set(self.reason),
            detail: Set(self.detail.map(|d| d.to_string())),
            actor_id: Set(self.actor),
            at: Set(at),
        }
    }
}

async fn add_history<C: ConnectionTrait>(
    conn: &C,
    row: application_event::ActiveModel,
) -> Result<(), sea_orm::DbErr> {
    application_event::Entity::insert(row)
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

fn stored_status(s: &str) -> ApplicationStatus {
    ApplicationStatus::parse(s).unwrap_or(ApplicationStatus::Submitted)
}

fn isee_of(a: &application::Model) -> Option<IseeData> {
    let d = IseeData {
        kind: a.isee_type.as_deref().and_then(|t| IseeType::parse(t).ok()),
        value: a.isee_value_cents.and_then(Money::from_cents),
        dsu_protocol: a.dsu_protocol.clone(),
        dsu_date: a.dsu_date,
        expires_on: a.isee_expires_on,
    };
    (d != IseeData::default()).then_some(d)
}

/// The system's own actor, for background tasks.
fn system_actor() -> Actor {
    Actor {
        id: Uuid::nil(),
        username: "sportello".into(),
        name: "Sportello".into(),
        roles: vec![Role::Admin],
    }
}

/// Changes the application's status, conditional on the version read, and bumps the version.
async fn set_status<C: ConnectionTrait>(
    conn: &C,
    a: &application::Model,
    to: ApplicationStatus,
    outcome_reason: Option<Option<String>>,
    actor: Option<Uuid>,
    at: DateTime<Utc>,
) -> Result<(), ServiceError> {
    let mut update = application::Entity::update_many()
        .col_expr(application::Column::Status, Expr::value(to.as_str()))
        .col_expr(application::Column::Version, Expr::value(a.version + 1))
        .col_expr(application::Column::UpdatedAt, Expr::value(at))
        .col_expr(application::Column::UpdatedBy, Expr::value(actor));
    if let Some(r) = outcome_reason {
        update = update.col_expr(application::Column::OutcomeReason, Expr::value(r));
    }
    let res = update
        .filter(application::Column::Id.eq(a.id))
        .filter(application::Column::Version.eq(a.version))
        .exec(conn)
        .await?;
    if res.rows_affected != 1 {
        return Err(ServiceError::Conflict(
            "the application was changed meanwhile; reload it and try again".into(),
        ));
    }
    Ok(())
}

/// Bumps the version of an application changed in another way (documents, links), so
/// concurrent status changes notice.
async fn touch<C: ConnectionTrait>(
    conn: &C,
    a: &application::Model,
    actor: Option<Uuid>,
    at: DateTime<Utc>,
) -> Result<(), ServiceError> {
    use sea_orm::sea_query::ExprTrait;
    application::Entity::update_many()
        .col_expr(
            application::Column::Version,
            Expr::col(application::Column::Version).add(1),
        )
        .col_expr(application::Column::UpdatedAt, Expr::value(at))
        .col_expr(application::Column::UpdatedBy, Expr::value(actor))
        .filter(application::Column::Id.eq(a.id))
        .exec(conn)
        .await?;
    Ok(())
}

/// Schedules the measure's monitoring checks after a payment on `paid_on`, unless the
/// application already has a schedule.
async fn schedule_monitoring<C: ConnectionTrait>(
    conn: &C,
    application_id: Uuid,
    rules: &MeasureRules,
    paid_on: NaiveDate,
    at: DateTime<Utc>,
) -> Result<usize, ServiceError> {
    let existing = application_monitoring::Entity::find()
        .filter(application_monitoring::Column::ApplicationId.eq(application_id))
        .limit(1)
        .all(conn)
        .await?;
    if !existing.is_empty() {
        return Ok(0);
    }
    let dates = monitoring_due_dates(paid_on, &rules.monitoring_after_days);
    let n = dates.len();
    if n > 0 {
        application_monitoring::Entity::insert_many(dates.into_iter().enumerate().map(
            |(i, due)| application_monitoring::ActiveModel {
                id: Set(Uuid::now_v7()),
                application_id: Set(application_id),
                seq: Set(i as i32 + 1),
                due_on: Set(due),
                state: Set(check_state::SCHEDULED.into()),
                claimed_at: Set(None),
                ticket_id: Set(None),
                done: Set(false),
                created_at: Set(at),
                updated_at: Set(at),
            },
        ))
        .exec_without_returning(conn)
        .await?;
    }
    Ok(n)
}

/// Inserts a ticket ↔ application link unless it exists; true when it was created.
async fn insert_link<C: ConnectionTrait>(
    conn: &C,
    ticket_id: Uuid,
    application_id: Uuid,
    actor: Option<Uuid>,
    at: DateTime<Utc>,
) -> Result<bool, ServiceError> {
    let exists = ticket_application::Entity::find_by_id((ticket_id, application_id))
        .one(conn)
        .await?
        .is_some();
    if exists {
        return Ok(false);
    }
    ticket_application::Entity::insert(ticket_application::ActiveModel {
        ticket_id: Set(ticket_id),
        application_id: Set(application_id),
        created_by: Set(actor),
        created_at: Set(at),
    })
    .exec_without_returning(conn)
    .await?;
    Ok(true)
}

/// The reference citizens quote: the protocol number, else the start of the id.
fn reference_of(a: &application::Model) -> String {
    match &a.protocol_number {
        Some(p) => format!("protocollo {p}"),
        None => format!("n. {}", &a.id.simple().to_string()[..8]),
    }
}

impl App {
    fn applications_config(&self) -> &ApplicationsConfig {
        &self.config().applications
    }

    fn application_measure_label(&self, slug: &str) -> Option<String> {
        self.taxonomy()
            .measures
            .into_iter()
            .find(|m| m.slug == slug)
            .map(|m| m.label_it)
    }

    fn application_local_date(&self, at: DateTime<Utc>) -> NaiveDate {
        self.inner.routing.calendar.local_date(at)
    }

    /// Opens an application: checks the citizen and the measure, computes the pre-check
    /// warnings and seeds the measure's documents checklist (back office, supervisors,
    /// admins).
    pub async fn create_application(
        &self,
        actor: &Actor,
        input: NewApplication,
    ) -> Result<ApplicationView, ServiceError> {
        actor.require_any(WRITERS)?;
        let mut p = Problems::default();
        let measure = input.measure.trim().to_owned();
        if !self.taxonomy().contains(TaxonomyKind::Measure, &measure) {
            let known: Vec<String> = self
                .taxonomy()
                .measures
                .into_iter()
                .map(|m| m.slug)
                .collect();
            p.add(
                "measure",
                format!(
                    "unknown measure '{measure}' (expected one of: {})",
                    known.join(", ")
                ),
            );
        }
        let protocol = input
            .protocol_number
            .as_deref()
            .filter(|v| !v.trim().is_empty())
            .and_then(|v| p.check("protocol_number", bounded(v, 1, 60)));
        let at = now();
        let submitted_at = match input
            .submitted_at
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            None => Some(at),
            Some(s) => {
                let parsed = DateTime::parse_from_rfc3339(s)
                    .map(|d| d.with_timezone(&Utc))
                    .ok()
                    .or_else(|| {
                        let d = NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
                        let tz = self.inner.routing.calendar.timezone();
                        d.and_time(NaiveTime::MIN)
                            .and_local_timezone(tz)
                            .earliest()
                            .map(|t| t.with_timezone(&Utc))
                    });
                match parsed {
                    Some(t) if t > at + Duration::minutes(5) => {
                        p.add("submitted_at", format!("'{s}' is in the future"));
                        None
                    }
                    Some(t) => Some(t),
                    None => {
                        p.add(
                            "submitted_at",
                            format!("'{s}' is not a date (YYYY-MM-DD) or an RFC 3339 timestamp"),
                        );
                        None
                    }
                }
            }
        };
        let channel = match input
            .submission_channel
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            None => Some(SubmissionChannel::Other),
            Some(c) => p.check("submission_channel", SubmissionChannel::parse(c)),
        };
        let isee = input.isee.as_ref().map(|i| {
            let kind = match i.kind.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
                Some(k) => p.check("isee.type", IseeType::parse(k)),
                None => {
                    p.add(
                        "isee.type",
                        "is required with ISEE data (ordinario, sociosanitario, minorenni or corrente)",
                    );
                    None
                }
            };
            let value = match &i.value {
                Some(serde_json::Value::Null) | None => {
                    p.add(
                        "isee.value",
                        "is required with ISEE data: the ISEE in euros, like \"5400.00\"",
                    );
                    None
                }
                Some(v) => money_of(&mut p, "isee.value", v),
            };
            let dsu_protocol = i
                .dsu_protocol
                .as_deref()
                .filter(|v| !v.trim().is_empty())
                .and_then(|v| p.check("isee.dsu_protocol", bounded(v, 1, 60)));
            let dsu_date = parse_date(&mut p, "isee.dsu_date", i.dsu_date.as_deref());
            let expires_on = parse_date(&mut p, "isee.expires_on", i.expires_on.as_deref());
            if let (Some(d), Some(e)) = (dsu_date, expires_on)
                && e < d
            {
                p.add(
                    "isee.expires_on",
                    format!("{e} is before the DSU's date {d}"),
                );
            }
            IseeData {
                kind,
                value,
                dsu_protocol,
                dsu_date,
                expires_on,
            }
        });
        p.finish()?;
        let (Some(submitted_at), Some(channel)) = (submitted_at, channel) else {
            return Err(ServiceError::Internal(
                "validation produced no value".into(),
            ));
        };
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
        let rules = self.applications_config().rules(&measure);
        let id = Uuid::now_v7();
        let model = application::Model {
            id,
            citizen_id: input.citizen_id,
            measure: measure.clone(),
            protocol_number: protocol.clone(),
            submitted_at,
            submission_channel: channel.as_str().to_owned(),
            status: ApplicationStatus::Submitted.as_str().to_owned(),
            isee_type: isee
                .as_ref()
                .and_then(|i| i.kind)
                .map(|k| k.as_str().to_owned()),
            isee_value_cents: isee.as_ref().and_then(|i| i.value).map(Money::cents),
            dsu_protocol: isee.as_ref().and_then(|i| i.dsu_protocol.clone()),
            dsu_date: isee.as_ref().and_then(|i| i.dsu_date),
            isee_expires_on: isee.as_ref().and_then(|i| i.expires_on),
            outcome_reason: None,
            version: 1,
            created_by: Some(actor.id),
            updated_by: Some(actor.id),
            created_at: at,
            updated_at: at,
        };
        let txn = self.db().write.begin().await?;
        match application::Entity::insert(application::ActiveModel::from(model))
            .exec_without_returning(&txn)
            .await
        {
            Ok(_) => {}
            Err(e) if sportello_store::error::is_unique_violation(&e) => {
                return Err(ServiceError::Conflict(format!(
                    "protocol number {} is already used by another application",
                    protocol.unwrap_or_default()
                )));
            }
            Err(e) => return Err(e.into()),
        }
        if !rules.documents.is_empty() {
            application_document::Entity::insert_many(rules.documents.iter().enumerate().map(
                |(i, d)| application_document::ActiveModel {
                    application_id: Set(id),
                    name: Set(d.name.clone()),
                    label: Set(d.label.clone()),
                    required: Set(d.required),
                    received: Set(false),
                    received_at: Set(None),
                    position: Set(i as i32),
                    updated_by: Set(None),
                },
            ))
            .exec_without_returning(&txn)
            .await?;
        }
        add_history(
            &txn,
            History {
                kind: event_kind::CREATED,
                to: Some(ApplicationStatus::Submitted),
                detail: Some(serde_json::json!({ "measure": measure, "channel": channel })),
                actor: Some(actor.id),
                ..Default::default()
            }
            .row(id, at),
        )
        .await?;
        crate::audit::record(
            &txn,
            Some(actor.id),
            "application.created",
            "application",
            Some(id),
            Some(serde_json::json!({ "measure": measure, "citizen_id": input.citizen_id })),
        )
        .await?;
        txn.commit().await?;
        tracing::info!(application.id = %id, measure = %measure, operator.id = %actor.id, "application created");
        self.application_view(actor, id, false).await
    }

    /// A page of applications, newest first, filtered by citizen, measure and status.
    pub async fn list_applications(
        &self,
        actor: &Actor,
        q: &ApplicationQuery,
    ) -> Result<ApplicationPage, ServiceError> {
        actor.require_operator()?;
        let mut p = Problems::default();
        let mut query = application::Entity::find();
        if let Some(c) = q.citizen_id {
            query = query.filter(application::Column::CitizenId.eq(c));
        }
        if let Some(m) = q
            .measure
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            query = query.filter(application::Column::Measure.eq(m));
        }
        if let Some(s) = q.status.as_deref().filter(|s| !s.trim().is_empty()) {
            let mut statuses = Vec::new();
            for part in s.split(',') {
                if let Some(st) = p.check("status", ApplicationStatus::parse(part.trim())) {
                    statuses.push(st.as_str());
                }
            }
            query = query.filter(application::Column::Status.is_in(statuses));
        }
        if let Some(pn) = q
            .protocol_number
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            query = query.filter(application::Column::ProtocolNumber.eq(pn));
        }
        let limit = q.limit.unwrap_or(50);
        if !(1..=200).contains(&limit) {
            p.add("limit", "must be between 1 and 200");
        }
        if let Some(c) = q.cursor.as_deref().filter(|c| !c.is_empty())
            && let Some(c) = p.check(
                "cursor",
                Uuid::parse_str(c).map_err(|_| "is not a cursor returned by this API"),
            )
        {
            query = query.filter(application::Column::Id.lt(c));
        }
        p.finish()?;
        let read = &self.db().read;
        let mut rows = query
            .order_by_desc(application::Column::Id)
            .limit(limit + 1)
            .all(read)
            .await?;
        let next = if rows.len() as u64 > limit {
            rows.truncate(limit as usize);
            rows.last().map(|a| a.id.to_string())
        } else {
            None
        };
        Ok(ApplicationPage {
            items: self.application_summaries(rows).await?,
            next_cursor: next,
        })
    }

    /// Every application of a citizen, newest first (for the citizen view of the console).
    pub async fn citizen_applications(
        &self,
        actor: &Actor,
        citizen_id: Uuid,
    ) -> Result<ApplicationPage, ServiceError> {
        actor.require_operator()?;
        let read = &self.db().read;
        if citizen::Entity::find_by_id(citizen_id)
            .one(read)
            .await?
            .is_none()
        {
            return Err(ServiceError::NotFound("citizen"));
        }
        let rows = application::Entity::find()
            .filter(application::Column::CitizenId.eq(citizen_id))
            .order_by_desc(application::Column::Id)
            .limit(500)
            .all(read)
            .await?;
        Ok(ApplicationPage {
            items: self.application_summaries(rows).await?,
            next_cursor: None,
        })
    }

    /// Views of many applications with their documents, citizens and payment totals, in one
    /// query each.
    async fn application_summaries(
        &self,
        rows: Vec<application::Model>,
    ) -> Result<Vec<ApplicationView>, ServiceError> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let read = &self.db().read;
        let ids: Vec<Uuid> = rows.iter().map(|a| a.id).collect();
        let mut citizen_ids: Vec<Uuid> = rows.iter().map(|a| a.citizen_id).collect();
        citizen_ids.sort();
        citizen_ids.dedup();
        let names: HashMap<Uuid, String> = citizen::Entity::find()
            .filter(citizen::Column::Id.is_in(citizen_ids))
            .all(read)
            .await?
            .into_iter()
            .map(|c| (c.id, c.name))
            .collect();
        let mut docs: HashMap<Uuid, Vec<application_document::Model>> = HashMap::new();
        for d in application_document::Entity::find()
            .filter(application_document::Column::ApplicationId.is_in(ids.clone()))
            .order_by_asc(application_document::Column::Position)
            .all(read)
            .await?
        {
            docs.entry(d.application_id).or_default().push(d);
        }
        let mut pays: HashMap<Uuid, Vec<payment::Model>> = HashMap::new();
        for pm in payment::Entity::find()
            .filter(payment::Column::ApplicationId.is_in(ids))
            .order_by_asc(payment::Column::Instalment)
            .all(read)
            .await?
        {
            pays.entry(pm.application_id).or_default().push(pm);
        }
        let labels: HashMap<String, String> = self
            .taxonomy()
            .measures
            .into_iter()
            .map(|m| (m.slug, m.label_it))
            .collect();
        Ok(rows
            .into_iter()
            .map(|a| {
                let d = docs.remove(&a.id).unwrap_or_default();
                let pm = pays.remove(&a.id).unwrap_or_default();
                let c = names.get(&a.citizen_id).map(|n| CitizenRef {
                    id: a.citizen_id,
                    name: n.clone(),
                });
                let label = labels.get(&a.measure).cloned();
                self.application_view_of(a, c, label, d, &pm)
            })
            .collect())
    }

    fn application_view_of(
        &self,
        a: application::Model,
        citizen: Option<CitizenRef>,
        measure_label: Option<String>,
        docs: Vec<application_document::Model>,
        payments: &[payment::Model],
    ) -> ApplicationView {
        let status = stored_status(&a.status);
        let isee = isee_of(&a);
        let rules = self.applications_config().rules(&a.measure);
        let warnings = pre_check(
            &a.measure,
            &rules,
            isee.as_ref(),
            self.application_local_date(a.submitted_at),
        );
        let total = payments
            .iter()
            .filter_map(|p| Money::from_cents(p.amount_cents))
            .try_fold(Money::ZERO, |acc, m| acc.checked_add(m))
            .unwrap_or_default();
        let missing_documents = docs
            .iter()
            .filter(|d| d.required && !d.received)
            .map(|d| d.name.clone())
            .collect();
        ApplicationView {
            id: a.id,
            citizen_id: a.citizen_id,
            citizen,
            measure_label,
            protocol_number: a.protocol_number,
            submitted_at: a.submitted_at,
            submission_channel: a.submission_channel,
            status: status.as_str().to_owned(),
            status_label: status.label_it().to_owned(),
            isee: isee.as_ref().map(|i| IseeView {
                kind: i.kind.map(|k| k.as_str().to_owned()),
                value: i.value.map(|v| v.to_string()),
                dsu_protocol: i.dsu_protocol.clone(),
                dsu_date: i.dsu_date,
                expires_on: i.expires_on,
                valid_until: i.expiry(),
            }),
            outcome_reason: a.outcome_reason,
            warnings,
            documents: docs
                .into_iter()
                .map(|d| DocumentView {
                    name: d.name,
                    label: d.label,
                    required: d.required,
                    received: d.received,
                    received_at: d.received_at,
                })
                .collect(),
            missing_documents,
            paid_total: total.to_string(),
            instalments_paid: payments.len() as u32,
            instalments_of: payments
                .iter()
                .map(|p| p.of_instalments.max(0) as u32)
                .max(),
            version: a.version,
            created_at: a.created_at,
            updated_at: a.updated_at,
            measure: a.measure,
            history: None,
            payments: None,
            tickets: None,
            monitoring: None,
            payment: None,
        }
    }

    /// One application with its documents, history, payments, the linked tickets the actor
    /// may see and the monitoring schedule; `audited` records the reading.
    async fn application_view(
        &self,
        actor: &Actor,
        id: Uuid,
        audited: bool,
    ) -> Result<ApplicationView, ServiceError> {
        let read = &self.db().read;
        let a = application::Entity::find_by_id(id)
            .one(read)
            .await?
            .ok_or(ServiceError::NotFound("application"))?;
        let history = application_event::Entity::find()
            .filter(application_event::Column::ApplicationId.eq(id))
            .order_by_asc(application_event::Column::Id)
            .all(read)
            .await?;
        let payments = payment::Entity::find()
            .filter(payment::Column::ApplicationId.eq(id))
            .order_by_asc(payment::Column::Instalment)
            .all(read)
            .await?;
        let links = ticket_application::Entity::find()
            .filter(ticket_application::Column::ApplicationId.eq(id))
            .all(read)
            .await?;
        let linked_at: HashMap<Uuid, DateTime<Utc>> =
            links.iter().map(|l| (l.ticket_id, l.created_at)).collect();
        let visible: Vec<String> = actor
            .tiers()
            .iter()
            .map(|t| t.as_str().to_owned())
            .collect();
        let tickets = if links.is_empty() {
            Vec::new()
        } else {
            ticket::Entity::find()
                .filter(ticket::Column::Id.is_in(links.iter().map(|l| l.ticket_id)))
                .filter(ticket::Column::Tier.is_in(visible))
                .order_by_asc(ticket::Column::Id)
                .all(read)
                .await?
        };
        let checks = application_monitoring::Entity::find()
            .filter(application_monitoring::Column::ApplicationId.eq(id))
            .order_by_asc(application_monitoring::Column::Seq)
            .all(read)
            .await?;
        let mut v = self.application_summaries(vec![a]).await?.remove(0);
        v.history = Some(
            history
                .into_iter()
                .map(|h| HistoryView {
                    id: h.id,
                    kind: h.kind,
                    from: h.from_status,
                    to: h.to_status,
                    reason: h.reason,
                    detail: h.detail.and_then(|d| serde_json::from_str(&d).ok()),
                    actor_id: h.actor_id,
                    at: h.at,
                })
                .collect(),
        );
        v.payments = Some(payments.iter().map(payment_view).collect());
        v.tickets = Some(
            tickets
                .into_iter()
                .map(|t| LinkedTicket {
                    linked_at: linked_at.get(&t.id).copied().unwrap_or(t.created_at),
                    id: t.id,
                    number: t.number,
                    status: t.status,
                    tier: t.tier,
                    channel: t.channel,
                    subject: t.subject,
                })
                .collect(),
        );
        v.monitoring = Some(
            checks
                .into_iter()
                .map(|c| MonitoringView {
                    id: c.id,
                    seq: c.seq,
                    due_on: c.due_on,
                    state: c.state,
                    ticket_id: c.ticket_id,
                })
                .collect(),
        );
        if audited {
            crate::audit::record(
                &self.db().write,
                Some(actor.id),
                "application.viewed",
                "application",
                Some(id),
                None,
            )
            .await?;
        }
        Ok(v)
    }

    /// One application in full; the reading is audited (every operator role may read).
    pub async fn get_application(
        &self,
        actor: &Actor,
        id: Uuid,
    ) -> Result<ApplicationView, ServiceError> {
        actor.require_operator()?;
        self.application_view(actor, id, true).await
    }

    /// Moves an application through the workflow; refusals need a reason, and the citizen
    /// hears of requested documents and of the outcome when those notifications are on.
    pub async fn transition_application(
        &self,
        actor: &Actor,
        id: Uuid,
        req: TransitionRequest,
    ) -> Result<ApplicationView, ServiceError> {
        actor.require_any(WRITERS)?;
        let mut p = Problems::default();
        let to = p.check("to", ApplicationStatus::parse(req.to.trim()));
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
        let at = now();
        let txn = self.db().write.begin().await?;
        let a = application::Entity::find_by_id(id)
            .one(&txn)
            .await?
            .ok_or(ServiceError::NotFound("application"))?;
        let from = stored_status(&a.status);
        from.transition(to, reason.as_deref())
            .map_err(|e| match e {
                TransitionError::ReasonRequired { .. } => {
                    ServiceError::field("reason", e.to_string())
                }
                TransitionError::Invalid { .. } => ServiceError::Conflict(e.to_string()),
            })?;
        let outcome = match to {
            ApplicationStatus::Eligible | ApplicationStatus::NotEligible => Some(reason.clone()),
            _ => None,
        };
        set_status(&txn, &a, to, outcome, Some(actor.id), at).await?;
        let mut scheduled = 0;
        match to {
            ApplicationStatus::Paid => {
                // Declared paid without (all) instalments recorded here: the schedule runs
                // from the last recorded payment, else from today.
                let last = payment::Entity::find()
                    .filter(payment::Column::ApplicationId.eq(id))
                    .order_by_desc(payment::Column::PaidOn)
                    .one(&txn)
                    .await?
                    .map(|p| p.paid_on)
                    .unwrap_or_else(|| self.application_local_date(at));
                let rules = self.applications_config().rules(&a.measure);
                scheduled = schedule_monitoring(&txn, id, &rules, last, at).await?;
            }
            ApplicationStatus::Closed => {
                application_monitoring::Entity::update_many()
                    .col_expr(
                        application_monitoring::Column::State,
                        Expr::value(check_state::CANCELLED),
                    )
                    .col_expr(application_monitoring::Column::Done, Expr::value(true))
                    .col_expr(application_monitoring::Column::UpdatedAt, Expr::value(at))
                    .filter(application_monitoring::Column::ApplicationId.eq(id))
                    .filter(application_monitoring::Column::State.eq(check_state::SCHEDULED))
                    .exec(&txn)
                    .await?;
            }
            _ => {}
        }
        add_history(
            &txn,
            History {
                kind: event_kind::TRANSITION,
                from: Some(from),
                to: Some(to),
                reason: reason.clone(),
                detail: (scheduled > 0)
                    .then(|| serde_json::json!({ "monitoring_scheduled": scheduled })),
                actor: Some(actor.id),
            }
            .row(id, at),
        )
        .await?;
        crate::audit::record(
            &txn,
            Some(actor.id),
            "application.transitioned",
            "application",
            Some(id),
            Some(serde_json::json!({ "from": from, "to": to, "reason_given": reason.is_some() })),
        )
        .await?;
        txn.commit().await?;
        tracing::info!(application.id = %id, from = %from, to = %to, operator.id = %actor.id, "application transitioned");
        let cfg = self.applications_config();
        match to {
            ApplicationStatus::DocumentsRequested if cfg.notify_documents_requested => {
                self.notify_application(
                    actor,
                    id,
                    Notice::DocumentsRequested,
                    reason.as_deref(),
                    None,
                )
                .await;
            }
            ApplicationStatus::Eligible | ApplicationStatus::NotEligible if cfg.notify_outcome => {
                self.notify_application(actor, id, Notice::Outcome, reason.as_deref(), None)
                    .await;
            }
            _ => {}
        }
        self.application_view(actor, id, false).await
    }

    /// Marks one document of the checklist received or missing.
    pub async fn mark_application_document(
        &self,
        actor: &Actor,
        id: Uuid,
        name: &str,
        input: DocumentUpdate,
    ) -> Result<ApplicationView, ServiceError> {
        actor.require_any(WRITERS)?;
        let at = now();
        let txn = self.db().write.begin().await?;
        let a = application::Entity::find_by_id(id)
            .one(&txn)
            .await?
            .ok_or(ServiceError::NotFound("application"))?;
        if stored_status(&a.status) == ApplicationStatus::Closed {
            return Err(ServiceError::Conflict(
                "the application is closed: its documents can no longer change".into(),
            ));
        }
        let docs = application_document::Entity::find()
            .filter(application_document::Column::ApplicationId.eq(id))
            .order_by_asc(application_document::Column::Position)
            .all(&txn)
            .await?;
        let Some(doc) = docs.iter().find(|d| d.name == name) else {
            return Err(ServiceError::field(
                "name",
                format!(
                    "'{name}' is not in this application's checklist (its documents: {})",
                    docs.iter()
                        .map(|d| d.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        };
        if doc.received != input.received {
            application_document::Entity::update_many()
                .col_expr(
                    application_document::Column::Received,
                    Expr::value(input.received),
                )
                .col_expr(
                    application_document::Column::ReceivedAt,
                    Expr::value(input.received.then_some(at)),
                )
                .col_expr(
                    application_document::Column::UpdatedBy,
                    Expr::value(Some(actor.id)),
                )
                .filter(application_document::Column::ApplicationId.eq(id))
                .filter(application_document::Column::Name.eq(name))
                .exec(&txn)
                .await?;
            touch(&txn, &a, Some(actor.id), at).await?;
            let state = if input.received {
                "received"
            } else {
                "missing"
            };
            add_history(
                &txn,
                History {
                    kind: event_kind::DOCUMENT,
                    detail: Some(serde_json::json!({ "document": name, "state": state })),
                    actor: Some(actor.id),
                    ..Default::default()
                }
                .row(id, at),
            )
            .await?;
            crate::audit::record(
                &txn,
                Some(actor.id),
                "application.document_marked",
                "application",
                Some(id),
                Some(serde_json::json!({ "document": name, "state": state })),
            )
            .await?;
        }
        txn.commit().await?;
        self.application_view(actor, id, false).await
    }

    /// Records one instalment (from payment scheduled or paid): the application becomes
    /// paid, and once every instalment is in, the measure's monitoring checks are scheduled.
    pub async fn record_payment(
        &self,
        actor: &Actor,
        id: Uuid,
        input: NewPayment,
    ) -> Result<ApplicationView, ServiceError> {
        actor.require_any(WRITERS)?;
        let mut p = Problems::default();
        let amount = money_of(&mut p, "amount", &input.amount);
        if amount == Some(Money::ZERO) {
            p.add("amount", "must be more than zero");
        }
        let paid_on = parse_date(&mut p, "paid_on", Some(&input.paid_on));
        if input.paid_on.trim().is_empty() {
            p.add("paid_on", "is required (YYYY-MM-DD)");
        }
        let of = input.of.unwrap_or(1);
        let instalment = input.instalment.unwrap_or(1);
        if !(1..=120).contains(&of) {
            p.add("of", format!("must be between 1 and 120 (got {of})"));
        }
        if instalment < 1 || instalment > of.max(1) {
            p.add(
                "instalment",
                format!("must be between 1 and {} (got {instalment})", of.max(1)),
            );
        }
        p.finish()?;
        let (Some(amount), Some(paid_on)) = (amount, paid_on) else {
            return Err(ServiceError::Internal(
                "validation produced no value".into(),
            ));
        };
        let (instalment, of) = (instalment as i32, of as i32);
        let at = now();
        let txn = self.db().write.begin().await?;
        let a = application::Entity::find_by_id(id)
            .one(&txn)
            .await?
            .ok_or(ServiceError::NotFound("application"))?;
        let from = stored_status(&a.status);
        if !from.accepts_payments() {
            return Err(ServiceError::Conflict(format!(
                "payments can be recorded only for an application in '{}' or '{}'; this one is '{from}'",
                ApplicationStatus::PaymentScheduled,
                ApplicationStatus::Paid
            )));
        }
        let earlier = payment::Entity::find()
            .filter(payment::Column::ApplicationId.eq(id))
            .all(&txn)
            .await?;
        if let Some(e) = earlier.iter().find(|e| e.of_instalments != of) {
            return Err(ServiceError::field(
                "of",
                format!(
                    "earlier instalments were recorded as part of {} (got {of})",
                    e.of_instalments
                ),
            ));
        }
        if earlier.iter().any(|e| e.instalment == instalment) {
            return Err(ServiceError::Conflict(format!(
                "instalment {instalment} of {of} is already recorded"
            )));
        }
        let payment_id = Uuid::now_v7();
        let row = payment::Model {
            id: payment_id,
            application_id: id,
            measure: a.measure.clone(),
            amount_cents: amount.cents(),
            paid_on,
            instalment,
            of_instalments: of,
            created_by: Some(actor.id),
            created_at: at,
        };
        match payment::Entity::insert(payment::ActiveModel::from(row.clone()))
            .exec_without_returning(&txn)
            .await
        {
            Ok(_) => {}
            Err(e) if sportello_store::error::is_unique_violation(&e) => {
                return Err(ServiceError::Conflict(format!(
                    "instalment {instalment} of {of} is already recorded"
                )));
            }
            Err(e) => return Err(e.into()),
        }
        if from == ApplicationStatus::PaymentScheduled {
            set_status(&txn, &a, ApplicationStatus::Paid, None, Some(actor.id), at).await?;
            add_history(
                &txn,
                History {
                    kind: event_kind::TRANSITION,
                    from: Some(from),
                    to: Some(ApplicationStatus::Paid),
                    detail: Some(serde_json::json!({ "payment_id": payment_id })),
                    actor: Some(actor.id),
                    ..Default::default()
                }
                .row(id, at),
            )
            .await?;
        } else {
            touch(&txn, &a, Some(actor.id), at).await?;
        }
        let mut scheduled = 0;
        if earlier.len() + 1 == of as usize {
            let last = earlier
                .iter()
                .map(|e| e.paid_on)
                .chain([paid_on])
                .max()
                .unwrap_or(paid_on);
            let rules = self.applications_config().rules(&a.measure);
            scheduled = schedule_monitoring(&txn, id, &rules, last, at).await?;
        }
        add_history(
            &txn,
            History {
                kind: event_kind::PAYMENT,
                detail: Some(serde_json::json!({
                    "payment_id": payment_id,
                    "instalment": instalment,
                    "of": of,
                    "monitoring_scheduled": scheduled,
                })),
                actor: Some(actor.id),
                ..Default::default()
            }
            .row(id, at),
        )
        .await?;
        crate::audit::record(
            &txn,
            Some(actor.id),
            "application.payment_recorded",
            "application",
            Some(id),
            Some(
                serde_json::json!({ "payment_id": payment_id, "instalment": instalment, "of": of }),
            ),
        )
        .await?;
        txn.commit().await?;
        tracing::info!(application.id = %id, payment.id = %payment_id, instalment, of, "payment recorded");
        if self.applications_config().notify_payment {
            self.notify_application(actor, id, Notice::Payment, None, Some(&row))
                .await;
        }
        let mut v = self.application_view(actor, id, false).await?;
        v.payment = Some(payment_view(&row));
        Ok(v)
    }

    /// Links a ticket the actor may see to an application (any operator: the front office
    /// links the calls it answers about an application).
    pub async fn link_ticket_application(
        &self,
        actor: &Actor,
        ticket_id: Uuid,
        input: NewLink,
    ) -> Result<LinkView, ServiceError> {
        actor.require_operator()?;
        let at = now();
        let txn = self.db().write.begin().await?;
        let t = crate::mail::load_visible(&txn, actor, ticket_id).await?;
        let a = application::Entity::find_by_id(input.application_id)
            .one(&txn)
            .await?
            .ok_or_else(|| {
                ServiceError::field(
                    "application_id",
                    format!("no application with id {}", input.application_id),
                )
            })?;
        let created = insert_link(&txn, ticket_id, a.id, Some(actor.id), at).await?;
        let mut events = Vec::new();
        if created {
            let entry_id = Uuid::now_v7();
            sportello_store::entities::ticket_entry::Entity::insert(
                sportello_store::entities::ticket_entry::ActiveModel {
                    id: Set(entry_id),
                    ticket_id: Set(ticket_id),
                    kind: Set(EntryKind::System.as_str().to_owned()),
                    author_id: Set(Some(actor.id)),
                    body: Set(format!(
                        "Collegato alla pratica {} ({}, {})",
                        reference_of(&a),
                        self.application_measure_label(&a.measure)
                            .unwrap_or_else(|| a.measure.clone()),
                        stored_status(&a.status).label_it()
                    )),
                    body_html: Set(None),
                    meta: Set(Some(
                        serde_json::json!({ "application_id": a.id }).to_string(),
                    )),
                    created_at: Set(at),
                },
            )
            .exec_without_returning(&txn)
            .await?;
            add_history(
                &txn,
                History {
                    kind: event_kind::LINK,
                    detail: Some(
                        serde_json::json!({ "ticket_id": ticket_id, "ticket_number": t.number }),
                    ),
                    actor: Some(actor.id),
                    ..Default::default()
                }
                .row(a.id, at),
            )
            .await?;
            crate::audit::record(
                &txn,
                Some(actor.id),
                "application.ticket_linked",
                "application",
                Some(a.id),
                Some(serde_json::json!({ "ticket_id": ticket_id })),
            )
            .await?;
            events.push(DomainEvent::EntryAdded {
                ticket_id,
                entry_id,
                kind: EntryKind::System,
                at,
            });
        }
        txn.commit().await?;
        self.bus().publish_all(events);
        Ok(LinkView {
            ticket_id,
            application_id: a.id,
            created,
        })
    }

    /// The applications linked to a ticket the actor may see.
    pub async fn ticket_applications(
        &self,
        actor: &Actor,
        ticket_id: Uuid,
    ) -> Result<TicketApplications, ServiceError> {
        let read = &self.db().read;
        crate::mail::load_visible(read, actor, ticket_id).await?;
        let ids: Vec<Uuid> = ticket_application::Entity::find()
            .filter(ticket_application::Column::TicketId.eq(ticket_id))
            .all(read)
            .await?
            .into_iter()
            .map(|l| l.application_id)
            .collect();
        let rows = if ids.is_empty() {
            Vec::new()
        } else {
            application::Entity::find()
                .filter(application::Column::Id.is_in(ids))
                .order_by_desc(application::Column::Id)
                .all(read)
                .await?
        };
        Ok(TicketApplications {
            ticket_id,
            items: self.application_summaries(rows).await?,
        })
    }

    /// Tells the citizen by e-mail, after the change committed. Never fails the change: with
    /// no e-mail address, or no way to send, the history says so.
    async fn notify_application(
        &self,
        actor: &Actor,
        id: Uuid,
        notice: Notice,
        reason: Option<&str>,
        paid: Option<&payment::Model>,
    ) {
        if let Err(e) = self
            .try_notify_application(actor, id, notice, reason, paid)
            .await
        {
            tracing::warn!(application.id = %id, notice = notice.slug(), error = %e, "application notification not sent");
            let _ = self
                .note_application_notification(
                    id,
                    actor,
                    serde_json::json!({ "notice": notice.slug(), "state": "failed" }),
                    None,
                )
                .await;
        }
    }

    async fn note_application_notification(
        &self,
        id: Uuid,
        actor: &Actor,
        detail: serde_json::Value,
        reason: Option<String>,
    ) -> Result<(), ServiceError> {
        add_history(
            &self.db().write,
            History {
                kind: event_kind::NOTIFICATION,
                reason,
                detail: Some(detail),
                actor: Some(actor.id),
                ..Default::default()
            }
            .row(id, now()),
        )
        .await?;
        Ok(())
    }

    async fn try_notify_application(
        &self,
        actor: &Actor,
        id: Uuid,
        notice: Notice,
        reason: Option<&str>,
        paid: Option<&payment::Model>,
    ) -> Result<(), ServiceError> {
        let read = &self.db().read;
        let a = application::Entity::find_by_id(id)
            .one(read)
            .await?
            .ok_or(ServiceError::NotFound("application"))?;
        let has_email = citizen_contact::Entity::find()
            .filter(citizen_contact::Column::CitizenId.eq(a.citizen_id))
            .filter(citizen_contact::Column::Kind.eq("email"))
            .one(read)
            .await?
            .is_some();
        if !has_email {
            return self
                .note_application_notification(
                    id,
                    actor,
                    serde_json::json!({ "notice": notice.slug(), "state": "no_email" }),
                    Some("il cittadino non ha un indirizzo e-mail: avvisarlo per altra via".into()),
                )
                .await;
        }
        let email = self.email_config();
        if email.mailboxes.is_empty() && email.smtp.is_none() {
            // Without a mailbox or a relay nothing could be sent: no ticket is opened for it.
            return self
                .note_application_notification(
                    id,
                    actor,
                    serde_json::json!({ "notice": notice.slug(), "state": "not_sent" }),
                    Some("e-mail is not configured: no mailbox or SMTP sender to send from".into()),
                )
                .await;
        }
        let body = self
            .application_notice_body(&a, notice, reason, paid)
            .await?;
        // The notice goes out as a message on a ticket of this citizen linked to the
        // application, so a reply threads back to it; without one, a back-office ticket is
        // opened for the correspondence and set aside as resolved (a reply reopens it).
        // The operator's own tiers may not include that ticket's: the notice is the office's,
        // so it is sent with both tiers in view, still signed and audited as the operator.
        let sender = Actor {
            roles: vec![Role::Supervisor],
            ..actor.clone()
        };
        let (ticket_id, opened) = match self.application_correspondence_ticket(&a).await? {
            Some(t) => (t, false),
            None => (
                self.open_application_correspondence_ticket(&a, notice)
                    .await?,
                true,
            ),
        };
        let reply = crate::mail::NewReply {
            body,
            template: None,
            subject: None,
            attachments: Vec::new(),
        };
        let number = ticket::Entity::find_by_id(ticket_id)
            .one(read)
            .await?
            .map(|t| t.number)
            .unwrap_or_default();
        match self.reply_by_email(&sender, ticket_id, reply).await {
            Ok(r) => {
                self.note_application_notification(
                    id,
                    actor,
                    serde_json::json!({
                        "notice": notice.slug(),
                        "state": "queued",
                        "ticket_id": ticket_id,
                        "ticket_number": number,
                        "outbox_id": r.delivery.outbox_id,
                    }),
                    None,
                )
                .await?;
            }
            Err(ServiceError::Conflict(why)) => {
                self.note_application_notification(
                    id,
                    actor,
                    serde_json::json!({
                        "notice": notice.slug(),
                        "state": "not_sent",
                        "ticket_id": ticket_id,
                        "ticket_number": number,
                    }),
                    Some(why),
                )
                .await?;
            }
            Err(e) => return Err(e),
        }
        if opened {
            self.set_aside_notification_ticket(ticket_id).await;
        }
        Ok(())
    }

    /// The latest ticket linked to the application that is about the same citizen and still
    /// open to messages.
    async fn application_correspondence_ticket(
        &self,
        a: &application::Model,
    ) -> Result<Option<Uuid>, ServiceError> {
        let read = &self.db().read;
        let ids: Vec<Uuid> = ticket_application::Entity::find()
            .filter(ticket_application::Column::ApplicationId.eq(a.id))
            .all(read)
            .await?
            .into_iter()
            .map(|l| l.ticket_id)
            .collect();
        if ids.is_empty() {
            return Ok(None);
        }
        Ok(ticket::Entity::find()
            .filter(ticket::Column::Id.is_in(ids))
            .filter(ticket::Column::CitizenId.eq(a.citizen_id))
            .filter(ticket::Column::Status.ne(Status::Closed.as_str()))
            .order_by_desc(ticket::Column::Id)
            .one(read)
            .await?
            .map(|t| t.id))
    }

    async fn open_application_correspondence_ticket(
        &self,
        a: &application::Model,
        notice: Notice,
    ) -> Result<Uuid, ServiceError> {
        let label = self
            .application_measure_label(&a.measure)
            .unwrap_or_else(|| a.measure.clone());
        let t = self
            .create_ticket(
                &system_actor(),
                NewTicket {
                    channel: "internal".into(),
                    subject: format!("Pratica {label}, {}: comunicazioni", reference_of(a)),
                    body: None,
                    category: Some(notice.category().into()),
                    measure: Some(a.measure.clone()),
                    tier: Some(Tier::BackOffice.as_str().into()),
                    tags: vec!["pratica".into(), "comunicazione".into()],
                    citizen_id: Some(a.citizen_id),
                    ..Default::default()
                },
            )
            .await?;
        let at = now();
        let txn = self.db().write.begin().await?;
        insert_link(&txn, t.id, a.id, None, at).await?;
        add_history(
            &txn,
            History { kind: event_kind::LINK, detail: Some(serde_json::json!({ "ticket_id": t.id, "ticket_number": t.number, "opened_for": "notification" })), ..Default::default() }.row(a.id, at),
        )
        .await?;
        crate::audit::record(
            &txn,
            None,
            "application.ticket_linked",
            "application",
            Some(a.id),
            Some(serde_json::json!({ "ticket_id": t.id })),
        )
        .await?;
        txn.commit().await?;
        Ok(t.id)
    }

    /// Resolves a ticket opened only to carry a notice, so it does not wait in a queue; the
    /// router may have assigned it meanwhile, hence the retries.
    async fn set_aside_notification_ticket(&self, ticket_id: Uuid) {
        for _ in 0..3 {
            let r = self
                .transition(
                    &system_actor(),
                    ticket_id,
                    TransitionRequest {
                        to: Status::Resolved.as_str().into(),
                        reason: Some("comunicazione inviata al cittadino".into()),
                    },
                )
                .await;
            match r {
                Ok(_) => return,
                Err(ServiceError::Conflict(_)) => {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await
                }
                Err(e) => {
                    tracing::warn!(ticket.id = %ticket_id, error = %e, "could not resolve a notification ticket");
                    return;
                }
            }
        }
    }

    /// The Italian text of a notice; the e-mail template adds greeting and signature.
    async fn application_notice_body(
        &self,
        a: &application::Model,
        notice: Notice,
        reason: Option<&str>,
        paid: Option<&payment::Model>,
    ) -> Result<String, ServiceError> {
        let label = self
            .application_measure_label(&a.measure)
            .unwrap_or_else(|| a.measure.clone());
        let reference = reference_of(a);
        let submitted = self
            .application_local_date(a.submitted_at)
            .format("%d/%m/%Y");
        let what = format!("la sua domanda per {label} ({reference}), presentata il {submitted}");
        let text = match notice {
            Notice::DocumentsRequested => {
                let docs = application_document::Entity::find()
                    .filter(application_document::Column::ApplicationId.eq(a.id))
                    .filter(application_document::Column::Received.eq(false))
                    .order_by_asc(application_document::Column::Position)
                    .all(&self.db().read)
                    .await?;
                let required: Vec<String> = docs
                    .iter()
                    .filter(|d| d.required)
                    .map(|d| format!("- {}", d.label))
                    .collect();
                let optional: Vec<String> = docs
                    .iter()
                    .filter(|d| !d.required)
                    .map(|d| format!("- {}", d.label))
                    .collect();
                let mut s = format!(
                    "per proseguire l'esame della sua domanda per {label} ({reference}), presentata il {submitted}, ci servono alcuni documenti.\n\n"
                );
                if required.is_empty() {
                    s.push_str("L'ufficio le indicherà i documenti da integrare.\n");
                } else {
                    s.push_str("Documenti mancanti:\n");
                    s.push_str(&required.join("\n"));
                    s.push('\n');
                }
                if !optional.is_empty() {
                    s.push_str("\nSe pertinenti, anche:\n");
                    s.push_str(&optional.join("\n"));
                    s.push('\n');
                }
                if let Some(r) = reason {
                    s.push_str(&format!("\nIndicazioni dell'ufficio: {r}\n"));
                }
                s.push_str(
                    "\nPuò inviarli rispondendo a questo messaggio oppure consegnarli allo sportello su appuntamento.\n",
                );
                s
            }
            Notice::Outcome => match stored_status(&a.status) {
                ApplicationStatus::NotEligible => format!(
                    "la informiamo che {what} non è stata accolta.\n\nMotivazione: {}\n\nPuò chiedere chiarimenti o il riesame della domanda rispondendo a questo messaggio.\n",
                    reason.unwrap_or("indicata nel provvedimento")
                ),
                _ => format!(
                    "la informiamo che {what} è stata accolta: risulta ammessa al contributo.\n\nLe comunicheremo importo e data del pagamento.\n"
                ),
            },
            Notice::Payment => {
                let Some(p) = paid else {
                    return Err(ServiceError::Internal(
                        "payment notice without payment".into(),
                    ));
                };
                let amount = Money::from_cents(p.amount_cents).unwrap_or_default();
                let rata = if p.of_instalments > 1 {
                    format!("rata {} di {}", p.instalment, p.of_instalments)
                } else {
                    "in un'unica soluzione".to_owned()
                };
                format!(
                    "la informiamo che per {what} è stato disposto il pagamento di € {} ({rata}) in data {}.\n\nL'accredito avviene sulle coordinate IBAN indicate nella domanda.\n",
                    amount.to_italian(),
                    p.paid_on.format("%d/%m/%Y")
                )
            }
        };
        Ok(text)
    }

    /// Opens a back-office ticket for every monitoring check due by `today` (local date) and
    /// returns how many it opened. Each check is claimed with a conditional update before
    /// its ticket is created, so instances running this at once never open two tickets for
    /// one check; a claim left behind by a stopped instance is taken over after ten minutes,
    /// reusing the ticket it may already have opened (found by the check's tag).
    pub async fn run_application_monitoring(
        &self,
        today: NaiveDate,
    ) -> Result<usize, ServiceError> {
        let at = now();
        let stale = at - Duration::minutes(STALE_CLAIM_MINUTES);
        let due = application_monitoring::Entity::find()
            .filter(application_monitoring::Column::DueOn.lte(today))
            .filter(
                Condition::any()
                    .add(application_monitoring::Column::State.eq(check_state::SCHEDULED))
                    .add(
                        Condition::all()
                            .add(application_monitoring::Column::State.eq(check_state::CLAIMED))
                            .add(application_monitoring::Column::ClaimedAt.lt(stale)),
                    ),
            )
            .order_by_asc(application_monitoring::Column::DueOn)
            .limit(500)
            .all(&self.db().read)
            .await?;
        let mut opened = 0;
        for check in due {
            match self.application_monitoring_ticket(&check, stale).await {
                Ok(true) => opened += 1,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(application.id = %check.application_id, check.id = %check.id, error = %e, "monitoring ticket not opened");
                }
            }
        }
        Ok(opened)
    }

    async fn application_monitoring_ticket(
        &self,
        check: &application_monitoring::Model,
        stale: DateTime<Utc>,
    ) -> Result<bool, ServiceError> {
        let claimed_at = now();
        let claim = application_monitoring::Entity::update_many()
            .col_expr(
                application_monitoring::Column::State,
                Expr::value(check_state::CLAIMED),
            )
            .col_expr(
                application_monitoring::Column::ClaimedAt,
                Expr::value(Some(claimed_at)),
            )
            .col_expr(
                application_monitoring::Column::UpdatedAt,
                Expr::value(claimed_at),
            )
            .filter(application_monitoring::Column::Id.eq(check.id))
            .filter(
                Condition::any()
                    .add(application_monitoring::Column::State.eq(check_state::SCHEDULED))
                    .add(
                        Condition::all()
                            .add(application_monitoring::Column::State.eq(check_state::CLAIMED))
                            .add(application_monitoring::Column::ClaimedAt.lt(stale)),
                    ),
            )
            .exec(&self.db().write)
            .await?;
        if claim.rows_affected != 1 {
            return Ok(false);
        }
        let read = &self.db().read;
        let Some(a) = application::Entity::find_by_id(check.application_id)
            .one(read)
            .await?
        else {
            return Err(ServiceError::NotFound("application"));
        };
        if stored_status(&a.status) == ApplicationStatus::Closed {
            // Closed while this check was claimed: nothing left to monitor.
            application_monitoring::Entity::update_many()
                .col_expr(
                    application_monitoring::Column::State,
                    Expr::value(check_state::CANCELLED),
                )
                .col_expr(application_monitoring::Column::Done, Expr::value(true))
                .col_expr(
                    application_monitoring::Column::UpdatedAt,
                    Expr::value(now()),
                )
                .filter(application_monitoring::Column::Id.eq(check.id))
                .exec(&self.db().write)
                .await?;
            return Ok(false);
        }
        let tag = format!("mon-{}", check.id.simple());
        let existing = if check.state == check_state::CLAIMED {
            ticket::Entity::find()
                .filter(ticket::Column::CitizenId.eq(a.citizen_id))
                .filter(ticket::Column::Tags.contains(format!("\"{tag}\"")))
                .one(read)
                .await?
        } else {
            None
        };
        let total = application_monitoring::Entity::find()
            .filter(application_monitoring::Column::ApplicationId.eq(a.id))
            .all(read)
            .await?
            .len();
        let ticket_id = match existing {
            Some(t) => t.id,
            None => {
                let label = self
                    .application_measure_label(&a.measure)
                    .unwrap_or_else(|| a.measure.clone());
                let body = format!(
                    "Verifica post-erogazione n. {} di {total} della pratica {label} ({}), prevista per il {}.\n\nControllare l'utilizzo del contributo e la permanenza dei requisiti; registrare l'esito sulla pratica.",
                    check.seq,
                    reference_of(&a),
                    check.due_on.format("%d/%m/%Y"),
                );
                let created = self
                    .create_ticket(
                        &system_actor(),
                        NewTicket {
                            channel: "internal".into(),
                            subject: format!(
                                "Monitoraggio post-erogazione {label}, {} (verifica {} di {total})",
                                reference_of(&a),
                                check.seq
                            ),
                            body: Some(body),
                            category: Some("application_status".into()),
                            measure: Some(a.measure.clone()),
                            tier: Some(Tier::BackOffice.as_str().into()),
                            tags: vec!["monitoraggio".into(), tag],
                            citizen_id: Some(a.citizen_id),
                            ..Default::default()
                        },
                    )
                    .await;
                match created {
                    Ok(t) => t.id,
                    Err(e) => {
                        // Give the check back so the next pass tries again.
                        application_monitoring::Entity::update_many()
                            .col_expr(
                                application_monitoring::Column::State,
                                Expr::value(check_state::SCHEDULED),
                            )
                            .col_expr(
                                application_monitoring::Column::ClaimedAt,
                                Expr::value(Option::<DateTime<Utc>>::None),
                            )
                            .filter(application_monitoring::Column::Id.eq(check.id))
                            .filter(application_monitoring::Column::State.eq(check_state::CLAIMED))
                            .exec(&self.db().write)
                            .await?;
                        return Err(e);
                    }
                }
            }
        };
        let at = now();
        let txn = self.db().write.begin().await?;
        application_monitoring::Entity::update_many()
            .col_expr(
                application_monitoring::Column::State,
                Expr::value(check_state::TICKETED),
            )
            .col_expr(
                application_monitoring::Column::TicketId,
                Expr::value(Some(ticket_id)),
            )
            .col_expr(application_monitoring::Column::Done, Expr::value(true))
            .col_expr(application_monitoring::Column::UpdatedAt, Expr::value(at))
            .filter(application_monitoring::Column::Id.eq(check.id))
            .exec(&txn)
            .await?;
        insert_link(&txn, ticket_id, a.id, None, at).await?;
        // Read again inside the transaction: the status may have moved since.
        let current = application::Entity::find_by_id(a.id)
            .one(&txn)
            .await?
            .ok_or(ServiceError::NotFound("application"))?;
        if stored_status(&current.status) == ApplicationStatus::Paid {
            set_status(
                &txn,
                &current,
                ApplicationStatus::Monitoring,
                None,
                None,
                at,
            )
            .await?;
            add_history(
                &txn,
                History {
                    kind: event_kind::TRANSITION,
                    from: Some(ApplicationStatus::Paid),
                    to: Some(ApplicationStatus::Monitoring),
                    detail: Some(serde_json::json!({ "check_id": check.id })),
                    ..Default::default()
                }
                .row(a.id, at),
            )
            .await?;
        }
        add_history(
            &txn,
            History { kind: event_kind::MONITORING, detail: Some(serde_json::json!({ "check_id": check.id, "seq": check.seq, "ticket_id": ticket_id })), ..Default::default() }.row(a.id, at),
        )
        .await?;
        crate::audit::record(
            &txn,
            None,
            "application.monitoring_ticket",
            "application",
            Some(a.id),
            Some(serde_json::json!({ "check_id": check.id, "ticket_id": ticket_id })),
        )
        .await?;
        txn.commit().await?;
        tracing::info!(application.id = %a.id, ticket.id = %ticket_id, check = check.seq, "monitoring ticket opened");
        Ok(true)
    }

    /// Opens the monitoring tickets that fall due, every `monitoring_tick_seconds` (and once
    /// at start), until cancelled.
    pub async fn run_application_tasks(&self, cancel: CancellationToken) {
        let tick = std::time::Duration::from_secs(
            self.applications_config().monitoring_tick_seconds.max(1),
        );
        loop {
            let today = self.application_local_date(now());
            if let Err(e) = self.run_application_monitoring(today).await {
                tracing::warn!(error = %e, "application monitoring pass failed");
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(tick) => {},
            }
        }
    }
}

fn payment_view(p: &payment::Model) -> PaymentView {
    PaymentView {
        id: p.id,
        amount: Money::from_cents(p.amount_cents)
            .unwrap_or_default()
            .to_string(),
        paid_on: p.paid_on,
        instalment: p.instalment,
        of: p.of_instalments,
        created_at: p.created_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_keys_replace_only_themselves() {
        let cfg: ApplicationsConfig = toml::from_str(
            r#"
            notify_payment = false
            [measures.b2]
            thresholds = { sociosanitario = "30000.00" }
            [measures.provi]
            monitoring_after_days = []
            "#,
        )
        .unwrap();
        assert!(cfg.notify_outcome && !cfg.notify_payment);
        let b2 = cfg.rules("b2");
        assert_eq!(b2.thresholds.len(), 1);
        assert_eq!(
            b2.thresholds[&IseeType::Sociosanitario],
            Money::parse("30000").unwrap()
        );
        // The checklist and the schedule keep their defaults.
        assert_eq!(b2.documents, default_rules("b2").documents);
        assert_eq!(b2.monitoring_after_days, vec![90, 180]);
        assert!(cfg.rules("provi").monitoring_after_days.is_empty());
        assert_eq!(cfg.rules("income_support"), default_rules("income_support"));
        cfg.validate().unwrap();
    }

    #[test]
    fn bad_settings_are_named() {
        let bad = toml::from_str::<ApplicationsConfig>(
            "[measures.b2]\nthresholds = { sociosanitario = \"25.000,00\" }\n",
        )
        .unwrap_err()
        .to_string();
        assert!(bad.contains("25.000,00"), "{bad}");
        assert!(
            toml::from_str::<ApplicationsConfig>("[measures.b2]\nthreshold = {}\n").is_err(),
            "a misspelt key is refused"
        );
        let dup: ApplicationsConfig = toml::from_str(
            "[measures.b2]\ndocuments = [{ name = \"iban\", label = \"IBAN\" }, { name = \"iban\", label = \"IBAN\" }]\n",
        )
        .unwrap();
        match dup.validate() {
            Err(ServiceError::Validation(e)) => {
                assert_eq!(e[0].field, "applications.measures.b2.documents")
            }
            other => panic!("{other:?}"),
        }
    }
}
