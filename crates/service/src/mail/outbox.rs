//! The outbox worker: delivers queued messages through the SMTP relay, retries transient
//! failures with exponential backoff, gives up on permanent ones, and records every outcome on
//! the ticket's timeline.
//!
//! Several instances may run it against one database: a row is claimed with a conditional
//! update that also moves its due time forward (a lease), so exactly one worker attempts it,
//! and a worker that dies mid-send leaves it due again when the lease ends. Delivery is
//! therefore at least once: a crash between the relay accepting a message and the row being
//! marked sent sends it again.

use std::time::Duration;

use chrono::Utc;
use sea_orm::{EntityTrait, TransactionTrait};
use serde_json::json;
use sportello_domain::event::DomainEvent;
use sportello_domain::{EmailAddress, EntryKind};
use sportello_mail::SmtpSender;
use sportello_mail::smtp::{FailureKind, SendError, envelope};
use sportello_store::entities::{mail_outbox, ticket_entry};
use sportello_store::mail as q;
use tokio_util::sync::CancellationToken;

use super::ingest::{entry, update_entry_meta};
use crate::util::now;
use crate::{App, ServiceError};

/// How the worker paces itself.
#[derive(Clone, Debug)]
pub struct OutboxOptions {
    /// Longest sleep between looks at the outbox when nothing wakes the worker.
    pub poll_interval: Duration,
    /// Delay before the first retry; doubles with every failed attempt...
    pub initial_backoff: Duration,
    /// ...up to this.
    pub max_backoff: Duration,
    /// After this many failed attempts a transient failure is given up as well.
    pub max_attempts: i32,
    /// How long a claimed row is reserved for the worker sending it.
    pub lease: Duration,
    /// Rows handled per pass.
    pub batch: u64,
}

impl Default for OutboxOptions {
    fn default() -> Self {
        OutboxOptions {
            poll_interval: Duration::from_secs(30),
            initial_backoff: Duration::from_secs(15),
            max_backoff: Duration::from_secs(30 * 60),
            // With the defaults: about two days of retrying.
            max_attempts: 100,
            lease: Duration::from_secs(5 * 60),
            batch: 50,
        }
    }
}

impl OutboxOptions {
    /// The delay after the `attempts`-th failed attempt (1-based).
    pub fn backoff(&self, attempts: i32) -> Duration {
        let exp = u32::try_from(attempts.saturating_sub(1))
            .unwrap_or(0)
            .min(30);
        self.initial_backoff
            .saturating_mul(2u32.saturating_pow(exp))
            .min(self.max_backoff)
    }
}

/// What one pass of the worker did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutboxPass {
    pub sent: usize,
    pub retrying: usize,
    pub failed: usize,
    /// The relay could not be reached: the pass stopped early, since every other message
    /// would have waited for the same timeout.
    pub relay_down: bool,
}

fn chrono_dur(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

impl App {
    /// Sends queued messages until `cancel` fires; wakes when a message is queued, when the
    /// next retry falls due, or after `poll_interval`.
    pub async fn run_outbox(
        &self,
        sender: SmtpSender,
        opts: OutboxOptions,
        cancel: CancellationToken,
    ) {
        tracing::info!("outbox worker started");
        let mut down_streak: i32 = 0;
        loop {
            if cancel.is_cancelled() {
                break;
            }
            let wait = match self.deliver_due(&sender, &opts).await {
                Ok(pass) if pass.relay_down => {
                    down_streak = down_streak.saturating_add(1);
                    opts.backoff(down_streak)
                }
                Ok(pass) if pass.sent + pass.retrying + pass.failed >= opts.batch as usize => {
                    down_streak = 0;
                    Duration::ZERO
                }
                Ok(_) => {
                    down_streak = 0;
                    match q::next_due_at(&self.db().read).await {
                        Ok(Some(due)) => (due - Utc::now())
                            .to_std()
                            .unwrap_or(Duration::ZERO)
                            .min(opts.poll_interval),
                        Ok(None) => opts.poll_interval,
                        Err(e) => {
                            tracing::warn!("outbox: reading the next due time failed: {e}");
                            opts.poll_interval
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!("outbox pass failed: {e}");
                    opts.poll_interval.min(Duration::from_secs(5))
                }
            };
            if wait.is_zero() {
                tokio::task::yield_now().await;
                continue;
            }
            tokio::select! {
                _ = self.mail().outbox_wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
                _ = cancel.cancelled() => break,
            }
        }
        tracing::info!("outbox worker stopped");
    }

    /// One pass: attempts every message that is due now.
    pub async fn deliver_due(
        &self,
        sender: &SmtpSender,
        opts: &OutboxOptions,
    ) -> Result<OutboxPass, ServiceError> {
        let start = now();
        let due = q::due_outbox(&self.db().read, start, opts.batch).await?;
        let mut pass = OutboxPass::default();
        for row in due {
            let at = now();
            let lease = at + chrono_dur(opts.lease);
            if !q::claim_outbox(&self.db().write, row.id, at, lease).await? {
                continue;
            }
            let attempts = row.attempts + 1;
            let result = send_row(sender, &row).await;
            let unreachable = matches!(&result, Err(e) if e.is_transient() && e.code.is_none());
            match self
                .record_outbox_attempt(&row, attempts, result, opts)
                .await?
            {
                Delivery::Sent => pass.sent += 1,
                Delivery::Retrying => pass.retrying += 1,
                Delivery::Failed => pass.failed += 1,
            }
            if unreachable {
                pass.relay_down = true;
                break;
            }
        }
        Ok(pass)
    }

    async fn record_outbox_attempt(
        &self,
        row: &mail_outbox::Model,
        attempts: i32,
        result: Result<(), SendError>,
        opts: &OutboxOptions,
    ) -> Result<Delivery, ServiceError> {
        let at = now();
        let txn = self.db().write.begin().await?;
        let mut events = Vec::new();
        let delivery = match result {
            Ok(()) => {
                q::finish_outbox(&txn, row.id, "sent", at, None, Some(at), at).await?;
                if let Some(e) = row.entry_id {
                    update_entry_meta(
                        &txn,
                        e,
                        json!({ "delivery": "sent", "sent_at": at, "attempts": attempts, "last_error": null }),
                    )
                    .await?;
                }
                tracing::info!(outbox.id = %row.id, ticket.id = %row.ticket_id, attempts, "e-mail delivered to the relay");
                Delivery::Sent
            }
            Err(err) if err.is_transient() && attempts < opts.max_attempts => {
                let next = at + chrono_dur(opts.backoff(attempts));
                q::finish_outbox(
                    &txn,
                    row.id,
                    "queued",
                    next,
                    Some(err.to_string()),
                    None,
                    at,
                )
                .await?;
                if let Some(e) = row.entry_id {
                    update_entry_meta(
                        &txn,
                        e,
                        json!({
                            "delivery": "retrying",
                            "attempts": attempts,
                            "next_attempt_at": next,
                            "last_error": err.to_string(),
                        }),
                    )
                    .await?;
                }
                Delivery::Retrying
            }
            Err(err) => {
                q::finish_outbox(&txn, row.id, "failed", at, Some(err.to_string()), None, at)
                    .await?;
                if let Some(e) = row.entry_id {
                    update_entry_meta(
                        &txn,
                        e,
                        json!({ "delivery": "failed", "attempts": attempts, "last_error": err.to_string() }),
                    )
                    .await?;
                }
                let why = if err.is_permanent() {
                    "il server di posta l'ha rifiutato"
                } else {
                    "troppi tentativi falliti"
                };
                let e = entry(
                    row.ticket_id,
                    EntryKind::System,
                    None,
                    format!(
                        "Messaggio a {} non consegnato ({why}): {}",
                        row.recipient, err.detail
                    ),
                    None,
                    json!({
                        "delivery_failed": {
                            "outbox_id": row.id,
                            "message_id": row.message_id,
                            "code": err.code,
                            "permanent": err.is_permanent(),
                            "attempts": attempts,
                        }
                    }),
                    at,
                );
                events.push(DomainEvent::EntryAdded {
                    ticket_id: row.ticket_id,
                    entry_id: e.id,
                    kind: EntryKind::System,
                    at,
                });
                ticket_entry::Entity::insert(ticket_entry::ActiveModel::from(e))
                    .exec_without_returning(&txn)
                    .await?;
                tracing::warn!(outbox.id = %row.id, ticket.id = %row.ticket_id, attempts, smtp.code = err.code, "e-mail delivery given up");
                Delivery::Failed
            }
        };
        txn.commit().await?;
        self.bus().publish_all(events);
        Ok(delivery)
    }

    /// Queued or failed outgoing messages of a ticket, for tests and tools.
    pub async fn outbox_rows(
        &self,
        ticket_id: uuid::Uuid,
    ) -> Result<Vec<mail_outbox::Model>, ServiceError> {
        use sea_orm::{ColumnTrait, QueryFilter, QueryOrder};
        Ok(mail_outbox::Entity::find()
            .filter(mail_outbox::Column::TicketId.eq(ticket_id))
            .order_by_asc(mail_outbox::Column::Id)
            .all(&self.db().read)
            .await?)
    }
}

enum Delivery {
    Sent,
    Retrying,
    Failed,
}

fn permanent(detail: String) -> SendError {
    SendError {
        kind: FailureKind::Permanent,
        code: None,
        configuration: false,
        detail,
    }
}

/// Sends a row's stored bytes to the envelope stored beside them.
async fn send_row(sender: &SmtpSender, row: &mail_outbox::Model) -> Result<(), SendError> {
    let from = EmailAddress::parse(&row.envelope_from)
        .map_err(|e| permanent(format!("stored sender is invalid: {e}")))?;
    let to = row
        .envelope_to
        .split_whitespace()
        .map(|a| {
            EmailAddress::parse(a)
                .map_err(|e| permanent(format!("stored recipient is invalid: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let env = envelope(&from, &to).map_err(|e| permanent(e.to_string()))?;
    sender.send_raw(&env, &row.raw).await
}
