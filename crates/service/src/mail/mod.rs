//! The e-mail channel's use cases: importing fetched mail into tickets ([`MailIngest`], the
//! fetchers' sink), operator replies and the outbox worker that delivers them, the quarantine
//! of unreadable messages, attachment downloads, and the mailbox status admins see.
//!
//! The protocol work (MIME, threading rules, loop detection, IMAP, SMTP) lives in
//! `sportello-mail`; this module stores what it produces and runs its tasks.

mod ingest;
mod lock;
mod outbox;
mod reply;
mod views;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use sportello_domain::{EmailAddress, Role, TicketNumber, Tier};
use sportello_mail::imap::{MailboxConfig, StatusHandle};
use sportello_mail::loops::SenderCap;
use sportello_mail::parse::ParseLimits;
use sportello_mail::{EmailConfig, Party, SmtpSender};
use sportello_store::entities::{mail_attachment, ticket};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{Actor, App, ServiceConfig, ServiceError};

pub use ingest::{IngestOutcome, IngestReport, LINKED_TAG, MailIngest};
pub use outbox::{OutboxOptions, OutboxPass};
pub use reply::{DeliveryView, NewReply, ReplyAttachment, ReplyView};
/// The protocol crate, for the binary (fetchers, bench) and tests.
pub use sportello_mail;
pub use views::{
    AttachmentContent, MailStatus, MailboxView, OutboxCounts, QuarantinePage, QuarantineQuery,
    QuarantineRetry, QuarantineView,
};

/// What the e-mail channel keeps at run time, built once at start-up.
pub(crate) struct MailRuntime {
    config: EmailConfig,
    own: Vec<EmailAddress>,
    limits: ParseLimits,
    cap: SenderCap,
    /// Wakes the outbox worker when something was queued.
    outbox_wake: tokio::sync::Notify,
    /// Ticket numbers reserved for imports and not used yet; the next batch takes them first.
    spare_numbers: Mutex<Vec<TicketNumber>>,
    /// The fetchers this instance runs, by mailbox name.
    fetchers: Mutex<BTreeMap<String, FetcherSlot>>,
}

/// What this instance knows about one mailbox's fetcher.
#[derive(Clone, Default)]
struct FetcherSlot {
    /// `starting`, `running`, `standby` (another instance holds the mailbox) or `stopped`.
    state: &'static str,
    status: Option<StatusHandle>,
}

impl MailRuntime {
    /// Checks the `[email]` section, naming what is wrong.
    pub(crate) fn new(config: &ServiceConfig) -> Result<MailRuntime, ServiceError> {
        let email = config.email.clone();
        email
            .validate()
            .map_err(|e| ServiceError::field("email", e.to_string()))?;
        if let Some(smtp) = &email.smtp {
            smtp.transport()
                .map_err(|e| ServiceError::field("email.smtp", e.to_string()))?;
        }
        Ok(MailRuntime {
            own: email.own_addresses(),
            limits: email.limits.parse_limits(),
            cap: email.auto_ack.sender_cap(),
            config: email,
            outbox_wake: tokio::sync::Notify::new(),
            spare_numbers: Mutex::new(Vec::new()),
            fetchers: Mutex::new(BTreeMap::new()),
        })
    }

    fn mailbox(&self, name: &str) -> Option<&MailboxConfig> {
        self.config.mailboxes.iter().find(|m| m.name == name)
    }

    /// The office name closing automatic messages and signing replies.
    fn office(&self) -> String {
        self.config
            .smtp
            .as_ref()
            .map(|s| s.from_name.trim().to_owned())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "Sportello".to_owned())
    }

    /// The sender of mail about a ticket from `mailbox` (empty: none known).
    fn sender_for(&self, mailbox: &str) -> Option<(String, Party)> {
        let name = self
            .config
            .smtp
            .as_ref()
            .map(|s| s.from_name.trim().to_owned())
            .filter(|n| !n.is_empty());
        if let Some(m) = self.mailbox(mailbox) {
            return Some((
                m.name.clone(),
                Party {
                    address: m.address.clone(),
                    name,
                },
            ));
        }
        if let Some(smtp) = &self.config.smtp {
            return Some((String::new(), smtp.default_from()));
        }
        self.config.mailboxes.first().map(|m| {
            (
                m.name.clone(),
                Party {
                    address: m.address.clone(),
                    name,
                },
            )
        })
    }

    fn set_slot(&self, mailbox: &str, state: &'static str, status: Option<StatusHandle>) {
        let mut map = match self.fetchers.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        let slot = map.entry(mailbox.to_owned()).or_default();
        slot.state = state;
        if status.is_some() {
            slot.status = status;
        }
    }

    fn slot(&self, mailbox: &str) -> Option<FetcherSlot> {
        let map = match self.fetchers.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        map.get(mailbox).cloned()
    }

    fn take_numbers(&self) -> Vec<TicketNumber> {
        match self.spare_numbers.lock() {
            Ok(mut v) => std::mem::take(&mut *v),
            Err(p) => std::mem::take(&mut *p.into_inner()),
        }
    }

    fn return_numbers(&self, numbers: Vec<TicketNumber>) {
        if numbers.is_empty() {
            return;
        }
        match self.spare_numbers.lock() {
            Ok(mut v) => v.extend(numbers),
            Err(p) => p.into_inner().extend(numbers),
        }
    }
}

/// Background tasks of the e-mail channel, stopped by the token given to [`App::start_mail`].
pub struct MailTasks {
    handles: Vec<JoinHandle<()>>,
}

impl MailTasks {
    /// How many tasks run (fetcher supervisors and the outbox worker).
    pub fn len(&self) -> usize {
        self.handles.len()
    }

    pub fn is_empty(&self) -> bool {
        self.handles.is_empty()
    }

    /// Waits for every task to finish (after the token was cancelled).
    pub async fn join(self) {
        for h in self.handles {
            let _ = h.await;
        }
    }
}

impl App {
    pub(crate) fn mail(&self) -> &MailRuntime {
        &self.inner.mail
    }

    /// The e-mail configuration in use.
    pub fn email_config(&self) -> &EmailConfig {
        &self.inner.mail.config
    }

    /// The sink the IMAP fetchers store into (also used directly by tests and benchmarks).
    pub fn mail_sink(&self) -> Arc<MailIngest> {
        Arc::new(MailIngest::new(self.clone()))
    }

    /// Starts one fetcher per configured mailbox (each behind a PostgreSQL advisory lock when
    /// several instances share the database) and, when `[email.smtp]` is configured, the
    /// outbox worker. Everything stops when `cancel` fires.
    pub fn start_mail(&self, cancel: CancellationToken) -> Result<MailTasks, ServiceError> {
        self.start_mail_with(cancel, OutboxOptions::default())
    }

    /// [`App::start_mail`] with the outbox worker's pacing given (tests use short backoffs).
    pub fn start_mail_with(
        &self,
        cancel: CancellationToken,
        outbox: OutboxOptions,
    ) -> Result<MailTasks, ServiceError> {
        let mut handles = Vec::new();
        for mailbox in self.mail().config.mailboxes.clone() {
            self.mail().set_slot(&mailbox.name, "starting", None);
            handles.push(tokio::spawn(lock::supervise(
                self.clone(),
                mailbox,
                cancel.clone(),
            )));
        }
        if let Some(smtp) = self.mail().config.smtp.clone() {
            let sender = SmtpSender::new(smtp)
                .map_err(|e| ServiceError::field("email.smtp", e.to_string()))?;
            let app = self.clone();
            let token = cancel.clone();
            handles.push(tokio::spawn(async move {
                app.run_outbox(sender, outbox, token).await;
            }));
        }
        Ok(MailTasks { handles })
    }

    /// A stored attachment's content, for download; the ticket's tier decides who may see it.
    pub async fn attachment(
        &self,
        actor: &Actor,
        id: Uuid,
    ) -> Result<AttachmentContent, ServiceError> {
        actor.require_operator()?;
        let read = &self.db().read;
        let a = mail_attachment::Entity::find_by_id(id)
            .one(read)
            .await?
            .ok_or(ServiceError::NotFound("attachment"))?;
        let t = ticket::Entity::find_by_id(a.ticket_id)
            .one(read)
            .await?
            .ok_or(ServiceError::NotFound("attachment"))?;
        actor.require_tier(Tier::parse(&t.tier).unwrap_or(Tier::FrontOffice))?;
        let Some(data) = a.data else {
            return Err(ServiceError::Conflict(format!(
                "the attachment ({} bytes) exceeded the size limit and was not stored; the \
                 original message is still in the mailbox",
                a.size
            )));
        };
        crate::audit::record(
            &self.db().write,
            Some(actor.id),
            "attachment.downloaded",
            "ticket",
            Some(t.id),
            Some(serde_json::json!({ "attachment_id": id })),
        )
        .await?;
        Ok(AttachmentContent {
            filename: a.filename,
            content_type: a.content_type,
            data,
        })
    }

    /// The mailboxes, their fetchers' state and message counts (supervisors and admins).
    pub async fn mail_status(&self, actor: &Actor) -> Result<MailStatus, ServiceError> {
        actor.require_any(&[Role::Supervisor, Role::Admin])?;
        views::mail_status(self).await
    }

    /// Ticket ids of messages, for tests and tools: which ticket holds this Message-ID.
    pub async fn ticket_of_message(&self, message_id: &str) -> Result<Option<Uuid>, ServiceError> {
        use sportello_store::entities::mail_message;
        let row = mail_message::Entity::find()
            .filter(mail_message::Column::MessageId.eq(message_id.trim_matches(['<', '>'])))
            .one(&self.db().read)
            .await?;
        Ok(row.map(|m| m.ticket_id))
    }
}

/// A mailbox's fetcher as readiness probes and metrics see it: states and times only, no error
/// text (which may name accounts or servers; admins read it in [`App::mail_status`]).
#[derive(Clone, Debug, serde::Serialize)]
pub struct MailboxHealth {
    pub name: String,
    /// `starting`, `running`, `standby`, `stopped` or `not_started` (see [`MailboxView`]).
    pub fetcher: String,
    pub connected: bool,
    pub last_fetch: Option<chrono::DateTime<chrono::Utc>>,
    pub last_error_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Sessions that ended in an error since start.
    pub failures: u64,
}

impl App {
    /// The state of this instance's fetcher of every configured mailbox, from memory.
    pub fn mailbox_health(&self) -> Vec<MailboxHealth> {
        let mail = self.mail();
        mail.config
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
                MailboxHealth {
                    name: m.name.clone(),
                    fetcher: slot
                        .map(|s| s.state.to_owned())
                        .unwrap_or_else(|| "not_started".into()),
                    connected: running && status.connected,
                    last_fetch: status.last_fetch,
                    last_error_at: status.last_error_at,
                    failures: status.failures,
                }
            })
            .collect()
    }
}

/// Loads a ticket the actor may work on (operator role, visible tier).
pub(crate) async fn load_visible<C: ConnectionTrait>(
    conn: &C,
    actor: &Actor,
    id: Uuid,
) -> Result<ticket::Model, ServiceError> {
    actor.require_operator()?;
    let t = ticket::Entity::find_by_id(id)
        .one(conn)
        .await?
        .ok_or(ServiceError::NotFound("ticket"))?;
    actor.require_tier(Tier::parse(&t.tier).unwrap_or(Tier::FrontOffice))?;
    Ok(t)
}
