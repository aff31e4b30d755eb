//! What admins and supervisors see of the e-mail channel: mailbox status, the quarantine and
//! its retry, and the attachment content handed to downloads.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde::{Deserialize, Serialize};
use sportello_domain::Role;
use sportello_store::entities::mail_quarantine;
use sportello_store::mail as q;
use uuid::Uuid;

use super::ingest::{Batch, IngestOutcome, Item};
use crate::error::Problems;
use crate::util::now;
use crate::{Actor, App, ServiceError};

/// A stored attachment, ready to download.
pub struct AttachmentContent {
    pub filename: String,
    pub content_type: String,
    pub data: Vec<u8>,
}

impl std::fmt::Debug for AttachmentContent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AttachmentContent")
            .field("content_type", &self.content_type)
            .field("size", &self.data.len())
            .finish_non_exhaustive()
    }
}

/// A mailbox and its fetcher, as admins see it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct MailboxView {
    pub name: String,
    /// The address citizens write to.
    pub address: String,
    pub folder: String,
    /// This instance's fetcher: `starting`, `running`, `standby` (another instance fetches
    /// this mailbox), `stopped`, or `not_started` (fetchers are not running here).
    pub fetcher: String,
    /// Connected to the IMAP server now.
    pub connected: bool,
    /// New mail awaited with IDLE (`false`: polling); absent before the first connection.
    pub idle: Option<bool>,
    /// The last successful check for new mail.
    pub last_fetch: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub last_error_at: Option<DateTime<Utc>>,
    /// Messages imported by this instance since it started.
    pub imported_since_start: u64,
    /// Sessions that ended in an error since start.
    pub failures: u64,
    /// The stored import checkpoint.
    pub uid_validity: Option<i64>,
    pub last_uid: Option<i64>,
    /// Messages stored from this mailbox.
    pub messages_received: i64,
    /// Messages sent from this mailbox's address.
    pub messages_sent: i64,
    /// Messages of this mailbox waiting in the quarantine.
    pub quarantined: i64,
}

/// Outgoing messages by state.
#[derive(Clone, Debug, Default, Serialize, utoipa::ToSchema)]
pub struct OutboxCounts {
    pub queued: i64,
    pub sent: i64,
    pub failed: i64,
    pub bounced: i64,
}

/// The e-mail channel at a glance.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct MailStatus {
    pub mailboxes: Vec<MailboxView>,
    pub outbox: OutboxCounts,
    /// Whether an SMTP relay is configured (without one, replies wait in the outbox).
    pub smtp_configured: bool,
}

/// A quarantined message, as admins see it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct QuarantineView {
    pub id: Uuid,
    pub mailbox: String,
    pub uid_validity: Option<i64>,
    pub uid: Option<i64>,
    /// Why it could not be imported.
    pub reason: String,
    pub size: i64,
    /// `held` or `imported`.
    pub state: String,
    /// Retries so far.
    pub attempts: i32,
    pub last_error: Option<String>,
    /// The ticket it went to once imported.
    pub ticket_id: Option<Uuid>,
    /// The start of the raw message (at most 2 kB, invalid UTF-8 replaced).
    pub preview: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Quarantine list parameters.
#[derive(Clone, Debug, Default, Deserialize, utoipa::IntoParams)]
pub struct QuarantineQuery {
    /// `held` (default), `imported` or `all`.
    pub state: Option<String>,
    /// Page size, 1–200 (default 50).
    pub limit: Option<u64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// One page of the quarantine, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct QuarantinePage {
    pub items: Vec<QuarantineView>,
    pub next_cursor: Option<String>,
}

/// The result of a retry that imported the message.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct QuarantineRetry {
    pub quarantine: QuarantineView,
    /// `ticket_created`, `joined`, `bounce_recorded` or `duplicate`.
    pub outcome: String,
    pub ticket_id: Option<Uuid>,
}

fn quarantine_view(r: mail_quarantine::Model) -> QuarantineView {
    let end = r.raw.len().min(2048);
    QuarantineView {
        preview: String::from_utf8_lossy(&r.raw[..end]).into_owned(),
        id: r.id,
        mailbox: r.mailbox,
        uid_validity: r.uid_validity,
        uid: r.uid,
        reason: r.reason,
        size: r.size,
        state: r.state,
        attempts: r.attempts,
        last_error: r.last_error,
        ticket_id: r.ticket_id,
        created_at: r.created_at,
        updated_at: r.updated_at,
    }
}

pub(super) async fn mail_status(app: &App) -> Result<MailStatus, ServiceError> {
    let read = &app.db().read;
    let checkpoints: HashMap<String, (i64, i64)> = q::all_checkpoints(read)
        .await?
        .into_iter()
        .map(|c| (c.mailbox, (c.uid_validity, c.last_uid)))
        .collect();
    let mut received: HashMap<String, i64> = HashMap::new();
    let mut sent: HashMap<String, i64> = HashMap::new();
    for (mailbox, direction, n) in q::message_counts(read).await? {
        match direction.as_str() {
            "inbound" => *received.entry(mailbox).or_default() += n,
            _ => *sent.entry(mailbox).or_default() += n,
        }
    }
    let held: HashMap<String, i64> = q::quarantine_counts(read).await?.into_iter().collect();
    let mut outbox = OutboxCounts::default();
    for (state, n) in q::outbox_counts(read).await? {
        match state.as_str() {
            "queued" => outbox.queued = n,
            "sent" => outbox.sent = n,
            "failed" => outbox.failed = n,
            "bounced" => outbox.bounced = n,
            _ => {}
        }
    }
    let mail = app.mail();
    let mailboxes = mail
        .config
        .mailboxes
        .iter()
        .map(|m| {
            let slot = mail.slot(&m.name);
            let status = slot
                .as_ref()
                .and_then(|s| s.status.as_ref())
                .map(|h| h.snapshot())
                .unwrap_or_default();
            let running = slot.as_ref().is_some_and(|s| s.state == "running");
            let cp = checkpoints.get(&m.name);
            MailboxView {
                name: m.name.clone(),
                address: m.address.as_str().to_owned(),
                folder: m.folder.clone(),
                fetcher: slot
                    .map(|s| s.state.to_owned())
                    .unwrap_or_else(|| "not_started".into()),
                connected: running && status.connected,
                idle: status.idle,
                last_fetch: status.last_fetch,
                last_error: status.last_error,
                last_error_at: status.last_error_at,
                imported_since_start: status.imported,
                failures: status.failures,
                uid_validity: cp.map(|c| c.0),
                last_uid: cp.map(|c| c.1),
                messages_received: received.get(&m.name).copied().unwrap_or(0),
                messages_sent: sent.get(&m.name).copied().unwrap_or(0),
                quarantined: held.get(&m.name).copied().unwrap_or(0),
            }
        })
        .collect();
    Ok(MailStatus {
        mailboxes,
        outbox,
        smtp_configured: mail.config.smtp.is_some(),
    })
}

impl App {
    /// A page of quarantined messages (admins only).
    pub async fn list_quarantine(
        &self,
        actor: &Actor,
        query: &QuarantineQuery,
    ) -> Result<QuarantinePage, ServiceError> {
        actor.require_any(&[Role::Admin])?;
        let mut p = Problems::default();
        let state = match query.state.as_deref().map(str::trim) {
            None | Some("") | Some("held") => Some("held"),
            Some("imported") => Some("imported"),
            Some("all") => None,
            Some(other) => {
                p.add(
                    "state",
                    format!("unknown state '{other}' (expected held, imported or all)"),
                );
                None
            }
        };
        let limit = query.limit.unwrap_or(50);
        if !(1..=200).contains(&limit) {
            p.add("limit", "must be between 1 and 200");
        }
        let cursor = match query.cursor.as_deref().filter(|c| !c.is_empty()) {
            Some(c) => p.check(
                "cursor",
                Uuid::parse_str(c).map_err(|_| "is not a cursor returned by this API"),
            ),
            None => None,
        };
        p.finish()?;
        let (rows, next) = q::list_quarantine(&self.db().read, state, cursor, limit).await?;
        Ok(QuarantinePage {
            items: rows.into_iter().map(quarantine_view).collect(),
            next_cursor: next.map(|n| n.to_string()),
        })
    }

    /// A quarantined message's raw bytes (admins only).
    pub async fn quarantined_raw(&self, actor: &Actor, id: Uuid) -> Result<Vec<u8>, ServiceError> {
        actor.require_any(&[Role::Admin])?;
        let row = mail_quarantine::Entity::find_by_id(id)
            .one(&self.db().read)
            .await?
            .ok_or(ServiceError::NotFound("quarantined message"))?;
        crate::audit::record(
            &self.db().write,
            Some(actor.id),
            "mail.quarantine_viewed",
            "mail_quarantine",
            Some(id),
            None,
        )
        .await?;
        Ok(row.raw)
    }

    /// Tries to import a quarantined message again (admins only). A message that still cannot
    /// be imported stays held, with the attempt counted, and the answer is a conflict naming
    /// why.
    pub async fn retry_quarantined(
        &self,
        actor: &Actor,
        id: Uuid,
    ) -> Result<QuarantineRetry, ServiceError> {
        actor.require_any(&[Role::Admin])?;
        let row = mail_quarantine::Entity::find_by_id(id)
            .one(&self.db().write)
            .await?
            .ok_or(ServiceError::NotFound("quarantined message"))?;
        if row.state != "held" {
            return Err(ServiceError::Conflict(format!(
                "the message was already imported (state '{}')",
                row.state
            )));
        }
        let limits = self.mail().limits;
        let raw = row.raw.clone();
        let uid = row.uid.and_then(|u| u32::try_from(u).ok());
        let item = tokio::task::spawn_blocking(move || Item::parse(uid, raw, &limits))
            .await
            .map_err(|e| ServiceError::Internal(format!("parsing task failed: {e}")))?;
        let report = self
            .ingest_mail(Batch {
                mailbox: row.mailbox.clone(),
                uid_validity: row.uid_validity.and_then(|u| u32::try_from(u).ok()),
                checkpoint: None,
                retry_of: Some(id),
                items: vec![item],
            })
            .await?;
        crate::audit::record(
            &self.db().write,
            Some(actor.id),
            "mail.quarantine_retried",
            "mail_quarantine",
            Some(id),
            None,
        )
        .await?;
        let (outcome, ticket_id) = match report.outcomes.first() {
            Some(IngestOutcome::Created { ticket_id, .. }) => ("ticket_created", Some(*ticket_id)),
            Some(IngestOutcome::Joined { ticket_id, .. }) => ("joined", Some(*ticket_id)),
            Some(IngestOutcome::Bounce { ticket_id, .. }) => ("bounce_recorded", Some(*ticket_id)),
            Some(IngestOutcome::Duplicate { .. }) => ("duplicate", None),
            Some(IngestOutcome::Quarantined { reason, .. }) => {
                let at = now();
                mail_quarantine::Entity::update_many()
                    .col_expr(
                        mail_quarantine::Column::Attempts,
                        Expr::col(mail_quarantine::Column::Attempts).add(1),
                    )
                    .col_expr(
                        mail_quarantine::Column::LastError,
                        Expr::value(reason.clone()),
                    )
                    .col_expr(mail_quarantine::Column::UpdatedAt, Expr::value(at))
                    .filter(mail_quarantine::Column::Id.eq(id))
                    .exec(&self.db().write)
                    .await?;
                return Err(ServiceError::Conflict(format!(
                    "the message still cannot be imported: {reason}"
                )));
            }
            _ => ("duplicate", None),
        };
        let row = mail_quarantine::Entity::find_by_id(id)
            .one(&self.db().write)
            .await?
            .ok_or(ServiceError::NotFound("quarantined message"))?;
        tracing::info!(quarantine.id = %id, outcome, "quarantined message retried");
        Ok(QuarantineRetry {
            quarantine: quarantine_view(row),
            outcome: outcome.to_owned(),
            ticket_id,
        })
    }
}
