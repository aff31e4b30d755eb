//! The e-mail channel's queries: batched look-ups for dedupe and threading, multi-row inserts
//! for an imported batch, the import checkpoints, the outbox's claim-and-finish cycle and the
//! quarantine list.

use crate::chunked::{CHUNK, in_chunks};
use std::collections::HashSet;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use uuid::Uuid;

use crate::entities::{
    citizen_contact, mail_attachment, mail_checkpoint, mail_message, mail_outbox, mail_quarantine,
    ticket,
};

pub use crate::chunked::insert_all;

/// The import checkpoint of a mailbox: `(uid_validity, last_uid)`.
pub async fn load_checkpoint<C: ConnectionTrait>(
    conn: &C,
    mailbox: &str,
) -> Result<Option<mail_checkpoint::Model>, sea_orm::DbErr> {
    mail_checkpoint::Entity::find_by_id(mailbox.to_owned())
        .one(conn)
        .await
}

/// Every stored checkpoint.
pub async fn all_checkpoints<C: ConnectionTrait>(
    conn: &C,
) -> Result<Vec<mail_checkpoint::Model>, sea_orm::DbErr> {
    mail_checkpoint::Entity::find().all(conn).await
}

/// Sets a mailbox's checkpoint (inserting it the first time).
pub async fn save_checkpoint<C: ConnectionTrait>(
    conn: &C,
    mailbox: &str,
    uid_validity: u32,
    last_uid: u32,
    at: DateTime<Utc>,
) -> Result<(), sea_orm::DbErr> {
    let am = mail_checkpoint::ActiveModel {
        mailbox: Set(mailbox.to_owned()),
        uid_validity: Set(i64::from(uid_validity)),
        last_uid: Set(i64::from(last_uid)),
        updated_at: Set(at),
    };
    mail_checkpoint::Entity::insert(am)
        .on_conflict(
            OnConflict::column(mail_checkpoint::Column::Mailbox)
                .update_columns([
                    mail_checkpoint::Column::UidValidity,
                    mail_checkpoint::Column::LastUid,
                    mail_checkpoint::Column::UpdatedAt,
                ])
                .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

/// Which of these Message-IDs the mailbox already holds (in either direction).
pub async fn existing_message_ids<C: ConnectionTrait>(
    conn: &C,
    mailbox: &str,
    ids: &[String],
) -> Result<HashSet<String>, sea_orm::DbErr> {
    let mut out = HashSet::new();
    for chunk in ids.chunks(CHUNK) {
        let rows: Vec<String> = mail_message::Entity::find()
            .select_only()
            .column(mail_message::Column::MessageId)
            .filter(mail_message::Column::Mailbox.eq(mailbox))
            .filter(mail_message::Column::MessageId.is_in(chunk.to_vec()))
            .into_tuple()
            .all(conn)
            .await?;
        out.extend(rows);
    }
    Ok(out)
}

/// Stored messages (any mailbox, either direction) with one of these Message-IDs.
pub async fn messages_by_message_ids<C: ConnectionTrait>(
    conn: &C,
    ids: &[String],
) -> Result<Vec<mail_message::Model>, sea_orm::DbErr> {
    in_chunks(ids, |chunk| {
        mail_message::Entity::find()
            .filter(mail_message::Column::MessageId.is_in(chunk))
            .order_by_asc(mail_message::Column::Id)
            .all(conn)
    })
    .await
}

/// Stored messages of these Outlook conversations, oldest first.
pub async fn messages_by_thread_roots<C: ConnectionTrait>(
    conn: &C,
    roots: &[String],
) -> Result<Vec<mail_message::Model>, sea_orm::DbErr> {
    in_chunks(roots, |chunk| {
        mail_message::Entity::find()
            .filter(mail_message::Column::ThreadIndexRoot.is_in(chunk))
            .order_by_asc(mail_message::Column::Id)
            .all(conn)
    })
    .await
}

/// Tickets with these numbers.
pub async fn tickets_by_numbers<C: ConnectionTrait>(
    conn: &C,
    numbers: &[String],
) -> Result<Vec<ticket::Model>, sea_orm::DbErr> {
    in_chunks(numbers, |chunk| {
        ticket::Entity::find()
            .filter(ticket::Column::Number.is_in(chunk))
            .all(conn)
    })
    .await
}

/// Tickets with these ids.
pub async fn tickets_by_ids<C: ConnectionTrait>(
    conn: &C,
    ids: &[Uuid],
) -> Result<Vec<ticket::Model>, sea_orm::DbErr> {
    in_chunks(ids, |chunk| {
        ticket::Entity::find()
            .filter(ticket::Column::Id.is_in(chunk))
            .all(conn)
    })
    .await
}

/// E-mail contacts that belong to these citizens or have one of these values, oldest first.
pub async fn email_contacts<C: ConnectionTrait>(
    conn: &C,
    citizen_ids: &[Uuid],
    values: &[String],
) -> Result<Vec<citizen_contact::Model>, sea_orm::DbErr> {
    let mut out = Vec::new();
    for chunk in citizen_ids.chunks(CHUNK) {
        out.extend(
            citizen_contact::Entity::find()
                .filter(citizen_contact::Column::Kind.eq("email"))
                .filter(citizen_contact::Column::CitizenId.is_in(chunk.to_vec()))
                .all(conn)
                .await?,
        );
    }
    for chunk in values.chunks(CHUNK) {
        out.extend(
            citizen_contact::Entity::find()
                .filter(citizen_contact::Column::Kind.eq("email"))
                .filter(citizen_contact::Column::Value.is_in(chunk.to_vec()))
                .all(conn)
                .await?,
        );
    }
    out.sort_by_key(|c| c.id);
    out.dedup_by_key(|c| c.id);
    Ok(out)
}

/// When automatic replies went to these recipients (lowercase) since `since`.
pub async fn auto_ack_times<C: ConnectionTrait>(
    conn: &C,
    recipients: &[String],
    since: DateTime<Utc>,
) -> Result<Vec<(String, DateTime<Utc>)>, sea_orm::DbErr> {
    let mut out = Vec::new();
    for chunk in recipients.chunks(CHUNK) {
        let rows: Vec<(String, DateTime<Utc>)> = mail_outbox::Entity::find()
            .select_only()
            .column(mail_outbox::Column::Recipient)
            .column(mail_outbox::Column::CreatedAt)
            .filter(mail_outbox::Column::Kind.eq("auto_ack"))
            .filter(mail_outbox::Column::Recipient.is_in(chunk.to_vec()))
            .filter(mail_outbox::Column::CreatedAt.gt(since))
            .into_tuple()
            .all(conn)
            .await?;
        out.extend(rows);
    }
    Ok(out)
}

/// The citizen's most recent message on a ticket (the one a reply answers).
pub async fn last_inbound<C: ConnectionTrait>(
    conn: &C,
    ticket_id: Uuid,
) -> Result<Option<mail_message::Model>, sea_orm::DbErr> {
    mail_message::Entity::find()
        .filter(mail_message::Column::TicketId.eq(ticket_id))
        .filter(mail_message::Column::Direction.eq("inbound"))
        .filter(mail_message::Column::Kind.eq("message"))
        .order_by_desc(mail_message::Column::Id)
        .one(conn)
        .await
}

/// The outbox row of an outgoing message, by its Message-ID.
pub async fn outbox_by_message_ids<C: ConnectionTrait>(
    conn: &C,
    ids: &[String],
) -> Result<Vec<mail_outbox::Model>, sea_orm::DbErr> {
    in_chunks(ids, |chunk| {
        mail_outbox::Entity::find()
            .filter(mail_outbox::Column::MessageId.is_in(chunk))
            .all(conn)
    })
    .await
}

/// Queued messages due for a delivery attempt, oldest due first.
pub async fn due_outbox<C: ConnectionTrait>(
    conn: &C,
    now: DateTime<Utc>,
    limit: u64,
) -> Result<Vec<mail_outbox::Model>, sea_orm::DbErr> {
    mail_outbox::Entity::find()
        .filter(mail_outbox::Column::State.eq("queued"))
        .filter(mail_outbox::Column::NextAttemptAt.lte(now))
        .order_by_asc(mail_outbox::Column::NextAttemptAt)
        .order_by_asc(mail_outbox::Column::Id)
        .limit(limit)
        .all(conn)
        .await
}

/// When the next queued message falls due, if any is queued.
pub async fn next_due_at<C: ConnectionTrait>(
    conn: &C,
) -> Result<Option<DateTime<Utc>>, sea_orm::DbErr> {
    let row: Option<DateTime<Utc>> = mail_outbox::Entity::find()
        .select_only()
        .column(mail_outbox::Column::NextAttemptAt)
        .filter(mail_outbox::Column::State.eq("queued"))
        .order_by_asc(mail_outbox::Column::NextAttemptAt)
        .into_tuple()
        .one(conn)
        .await?;
    Ok(row)
}

/// Claims a due row for one delivery attempt: moves its due time to `lease_until` and counts
/// the attempt, only if it is still queued and due. Of several workers racing for a row
/// exactly one gets `true`; a worker that dies holding it leaves it due again at the lease end.
pub async fn claim_outbox<C: ConnectionTrait>(
    conn: &C,
    id: Uuid,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
) -> Result<bool, sea_orm::DbErr> {
    let res = mail_outbox::Entity::update_many()
        .col_expr(mail_outbox::Column::NextAttemptAt, Expr::value(lease_until))
        .col_expr(
            mail_outbox::Column::Attempts,
            Expr::col(mail_outbox::Column::Attempts).add(1),
        )
        .col_expr(mail_outbox::Column::UpdatedAt, Expr::value(now))
        .filter(mail_outbox::Column::Id.eq(id))
        .filter(mail_outbox::Column::State.eq("queued"))
        .filter(mail_outbox::Column::NextAttemptAt.lte(now))
        .exec(conn)
        .await?;
    Ok(res.rows_affected == 1)
}

/// Records the result of a delivery attempt.
pub async fn finish_outbox<C: ConnectionTrait>(
    conn: &C,
    id: Uuid,
    state: &str,
    next_attempt_at: DateTime<Utc>,
    last_error: Option<String>,
    sent_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<(), sea_orm::DbErr> {
    mail_outbox::Entity::update_many()
        .col_expr(mail_outbox::Column::State, Expr::value(state))
        .col_expr(
            mail_outbox::Column::NextAttemptAt,
            Expr::value(next_attempt_at),
        )
        .col_expr(mail_outbox::Column::LastError, Expr::value(last_error))
        .col_expr(mail_outbox::Column::SentAt, Expr::value(sent_at))
        .col_expr(mail_outbox::Column::UpdatedAt, Expr::value(now))
        .filter(mail_outbox::Column::Id.eq(id))
        .exec(conn)
        .await?;
    Ok(())
}

/// How many messages each mailbox holds per direction: `(mailbox, direction, count)`.
pub async fn message_counts<C: ConnectionTrait>(
    conn: &C,
) -> Result<Vec<(String, String, i64)>, sea_orm::DbErr> {
    mail_message::Entity::find()
        .select_only()
        .column(mail_message::Column::Mailbox)
        .column(mail_message::Column::Direction)
        .column_as(mail_message::Column::Id.count(), "n")
        .group_by(mail_message::Column::Mailbox)
        .group_by(mail_message::Column::Direction)
        .into_tuple()
        .all(conn)
        .await
}

/// How many quarantined messages each mailbox has waiting: `(mailbox, count)`.
pub async fn quarantine_counts<C: ConnectionTrait>(
    conn: &C,
) -> Result<Vec<(String, i64)>, sea_orm::DbErr> {
    mail_quarantine::Entity::find()
        .select_only()
        .column(mail_quarantine::Column::Mailbox)
        .column_as(mail_quarantine::Column::Id.count(), "n")
        .filter(mail_quarantine::Column::State.eq("held"))
        .group_by(mail_quarantine::Column::Mailbox)
        .into_tuple()
        .all(conn)
        .await
}

/// How many outgoing messages are in each state: `(state, count)`.
pub async fn outbox_counts<C: ConnectionTrait>(
    conn: &C,
) -> Result<Vec<(String, i64)>, sea_orm::DbErr> {
    mail_outbox::Entity::find()
        .select_only()
        .column(mail_outbox::Column::State)
        .column_as(mail_outbox::Column::Id.count(), "n")
        .group_by(mail_outbox::Column::State)
        .into_tuple()
        .all(conn)
        .await
}

/// A page of the quarantine, newest first, after `cursor` (an id of the previous page).
pub async fn list_quarantine<C: ConnectionTrait>(
    conn: &C,
    state: Option<&str>,
    cursor: Option<Uuid>,
    limit: u64,
) -> Result<(Vec<mail_quarantine::Model>, Option<Uuid>), sea_orm::DbErr> {
    let mut q = mail_quarantine::Entity::find();
    if let Some(s) = state {
        q = q.filter(mail_quarantine::Column::State.eq(s));
    }
    if let Some(c) = cursor {
        q = q.filter(mail_quarantine::Column::Id.lt(c));
    }
    let mut rows = q
        .order_by_desc(mail_quarantine::Column::Id)
        .limit(limit + 1)
        .all(conn)
        .await?;
    let next = if rows.len() as u64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|r| r.id)
    } else {
        None
    };
    Ok((rows, next))
}

/// How many messages wait in quarantine.
pub async fn count_held<C: ConnectionTrait>(conn: &C) -> Result<u64, sea_orm::DbErr> {
    mail_quarantine::Entity::find()
        .filter(mail_quarantine::Column::State.eq("held"))
        .count(conn)
        .await
}

/// Attachments of these stored messages.
pub async fn attachments_of<C: ConnectionTrait>(
    conn: &C,
    mail_message_ids: &[Uuid],
) -> Result<Vec<mail_attachment::Model>, sea_orm::DbErr> {
    in_chunks(mail_message_ids, |chunk| {
        mail_attachment::Entity::find()
            .filter(mail_attachment::Column::MailMessageId.is_in(chunk))
            .order_by_asc(mail_attachment::Column::Id)
            .all(conn)
    })
    .await
}
