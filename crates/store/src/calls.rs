//! The phone channel's queries: the call log and the call-back queue (filters, keyset pages,
//! counts), and the batched look-ups and inserts call ingestion runs inside its transaction.

use crate::chunked::{CHUNK, in_chunks};
pub use crate::chunked::{Write, chunked, insert_all, insert_chunks, run_in_order};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, IntoActiveModel, Iterable,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Select,
};
use uuid::Uuid;

use crate::entities::{call, callback, citizen_contact, ticket};

/// A position in a list ordered by a time and then an id, as the API passes it around:
/// `<microseconds since 1970>.<id without dashes>` (no characters that need URL escaping).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor {
    pub at: DateTime<Utc>,
    pub id: Uuid,
}

impl Cursor {
    pub fn encode(&self) -> String {
        format!("{}.{}", self.at.timestamp_micros(), self.id.simple())
    }

    pub fn decode(raw: &str) -> Option<Cursor> {
        let (micros, id) = raw.split_once('.')?;
        Some(Cursor {
            at: DateTime::from_timestamp_micros(micros.parse().ok()?)?,
            id: Uuid::parse_str(id).ok()?,
        })
    }
}

/// Filters of the call log; every field narrows the result.
#[derive(Clone, Debug, Default)]
pub struct CallFilter {
    pub citizen_id: Option<Uuid>,
    pub ticket_id: Option<Uuid>,
    pub direction: Option<String>,
    pub outcome: Option<String>,
    /// Calls that started at or after this instant.
    pub from: Option<DateTime<Utc>>,
    /// Calls that started before this instant.
    pub to: Option<DateTime<Utc>>,
}

fn filtered(f: &CallFilter) -> Select<call::Entity> {
    let mut q = call::Entity::find();
    if let Some(c) = f.citizen_id {
        q = q.filter(call::Column::CitizenId.eq(c));
    }
    if let Some(t) = f.ticket_id {
        q = q.filter(call::Column::TicketId.eq(t));
    }
    if let Some(d) = &f.direction {
        q = q.filter(call::Column::Direction.eq(d.clone()));
    }
    if let Some(o) = &f.outcome {
        q = q.filter(call::Column::Outcome.eq(o.clone()));
    }
    if let Some(from) = f.from {
        q = q.filter(call::Column::StartedAt.gte(from));
    }
    if let Some(to) = f.to {
        q = q.filter(call::Column::StartedAt.lt(to));
    }
    q
}

/// One page of calls, newest first, after `cursor`. Fetches `limit + 1` rows to know whether
/// another page exists.
pub async fn list_calls<C: ConnectionTrait>(
    conn: &C,
    filter: &CallFilter,
    cursor: Option<Cursor>,
    limit: u64,
) -> Result<(Vec<call::Model>, Option<Cursor>), sea_orm::DbErr> {
    let mut q = filtered(filter);
    if let Some(c) = cursor {
        q = q.filter(
            Condition::any().add(call::Column::StartedAt.lt(c.at)).add(
                Condition::all()
                    .add(call::Column::StartedAt.eq(c.at))
                    .add(call::Column::Id.lt(c.id)),
            ),
        );
    }
    let mut rows = q
        .order_by_desc(call::Column::StartedAt)
        .order_by_desc(call::Column::Id)
        .limit(limit + 1)
        .all(conn)
        .await?;
    let next = if rows.len() as u64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|c| Cursor {
            at: c.started_at,
            id: c.id,
        })
    } else {
        None
    };
    Ok((rows, next))
}

/// How many calls match the filter.
pub async fn count_calls<C: ConnectionTrait>(
    conn: &C,
    filter: &CallFilter,
) -> Result<u64, sea_orm::DbErr> {
    filtered(filter).count(conn).await
}

/// One page of call-backs: open ones by deadline (most urgent first), done ones most recently
/// done first.
pub async fn list_callbacks<C: ConnectionTrait>(
    conn: &C,
    open: bool,
    cursor: Option<Cursor>,
    limit: u64,
) -> Result<(Vec<callback::Model>, Option<Cursor>), sea_orm::DbErr> {
    let state = if open { "open" } else { "done" };
    let mut q = callback::Entity::find().filter(callback::Column::State.eq(state));
    let key = if open {
        callback::Column::Deadline
    } else {
        callback::Column::DoneAt
    };
    if let Some(c) = cursor {
        let (after, tie) = if open {
            (key.gt(c.at), callback::Column::TicketId.gt(c.id))
        } else {
            (key.lt(c.at), callback::Column::TicketId.lt(c.id))
        };
        q = q.filter(
            Condition::any()
                .add(after)
                .add(Condition::all().add(key.eq(c.at)).add(tie)),
        );
    }
    q = if open {
        q.order_by_asc(key).order_by_asc(callback::Column::TicketId)
    } else {
        q.order_by_desc(key)
            .order_by_desc(callback::Column::TicketId)
    };
    let mut rows = q.limit(limit + 1).all(conn).await?;
    let next = if rows.len() as u64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|c| Cursor {
            at: if open {
                c.deadline
            } else {
                c.done_at.unwrap_or(c.updated_at)
            },
            id: c.ticket_id,
        })
    } else {
        None
    };
    Ok((rows, next))
}

/// The calls of one source with these call ids.
pub async fn calls_by_ids<C: ConnectionTrait>(
    conn: &C,
    source: &str,
    call_ids: &[String],
) -> Result<Vec<call::Model>, sea_orm::DbErr> {
    in_chunks(call_ids, |chunk| {
        call::Entity::find()
            .filter(call::Column::Source.eq(source))
            .filter(call::Column::CallId.is_in(chunk))
            .all(conn)
    })
    .await
}

/// `(number, citizen id)` for every citizen holding one of these phone numbers, oldest
/// citizen first for each number.
pub async fn citizens_by_phone<C: ConnectionTrait>(
    conn: &C,
    numbers: &[String],
) -> Result<Vec<(String, Uuid)>, sea_orm::DbErr> {
    let mut out = Vec::new();
    for chunk in numbers.chunks(CHUNK) {
        let rows: Vec<(String, Uuid)> = citizen_contact::Entity::find()
            .select_only()
            .column(citizen_contact::Column::Value)
            .column(citizen_contact::Column::CitizenId)
            .filter(citizen_contact::Column::Kind.eq("phone"))
            .filter(citizen_contact::Column::Value.is_in(chunk.to_vec()))
            .order_by_asc(citizen_contact::Column::CitizenId)
            .into_tuple()
            .all(conn)
            .await?;
        out.extend(rows);
    }
    Ok(out)
}

/// The open call-backs of these numbers.
pub async fn open_callbacks<C: ConnectionTrait>(
    conn: &C,
    numbers: &[String],
) -> Result<Vec<callback::Model>, sea_orm::DbErr> {
    in_chunks(numbers, |chunk| {
        callback::Entity::find()
            .filter(callback::Column::OpenNumber.is_in(chunk))
            .all(conn)
    })
    .await
}

/// The calls that belong to these call-backs, as `(id, callback id, direction, outcome,
/// started at)`: what deciding a call-back's state needs, without the stored call records,
/// which grow with every call a long-open call-back collects.
pub async fn calls_of_callbacks<C: ConnectionTrait>(
    conn: &C,
    callback_ids: &[Uuid],
) -> Result<Vec<LinkedCallRow>, sea_orm::DbErr> {
    in_chunks(callback_ids, |chunk| {
        call::Entity::find()
            .select_only()
            .column(call::Column::Id)
            .column(call::Column::CallbackId)
            .column(call::Column::Direction)
            .column(call::Column::Outcome)
            .column(call::Column::StartedAt)
            .filter(call::Column::CallbackId.is_in(chunk))
            .into_tuple()
            .all(conn)
    })
    .await
}

/// A call linked to a call-back: id, call-back id, direction, outcome, start.
pub type LinkedCallRow = (Uuid, Option<Uuid>, String, Option<String>, DateTime<Utc>);

/// For each of these numbers that had an answered call, when the latest one started.
pub async fn last_answered<C: ConnectionTrait>(
    conn: &C,
    numbers: &[String],
) -> Result<Vec<(String, DateTime<Utc>)>, sea_orm::DbErr> {
    let mut out = Vec::new();
    for chunk in numbers.chunks(CHUNK) {
        let rows: Vec<(String, DateTime<Utc>)> = call::Entity::find()
            .select_only()
            .column(call::Column::CitizenNumber)
            .column_as(Expr::col(call::Column::StartedAt).max(), "last")
            .filter(call::Column::CitizenNumber.is_in(chunk.to_vec()))
            .filter(call::Column::Outcome.eq("answered"))
            .group_by(call::Column::CitizenNumber)
            .into_tuple()
            .all(conn)
            .await?;
        out.extend(rows);
    }
    Ok(out)
}

/// The active front-office phone tickets of these citizens, as `(id, citizen id, status)`.
///
/// Filters on the citizen alone in SQL and on the rest here: with `channel` and `status` in the
/// query, SQLite prefers the (channel, status) index and walks every open phone ticket. Reads
/// five columns, not whole tickets: a citizen who calls often has many closed tickets.
pub async fn open_phone_tickets<C: ConnectionTrait>(
    conn: &C,
    citizen_ids: &[Uuid],
    active_statuses: &[&str],
) -> Result<Vec<(Uuid, Option<Uuid>, String)>, sea_orm::DbErr> {
    let rows: Vec<(Uuid, Option<Uuid>, String, String, String)> = in_chunks(citizen_ids, |chunk| {
        ticket::Entity::find()
            .select_only()
            .column(ticket::Column::Id)
            .column(ticket::Column::CitizenId)
            .column(ticket::Column::Status)
            .column(ticket::Column::Channel)
            .column(ticket::Column::Tier)
            .filter(ticket::Column::CitizenId.is_in(chunk))
            .into_tuple()
            .all(conn)
    })
    .await?;
    Ok(rows
        .into_iter()
        .filter(|(_, _, status, channel, tier)| {
            channel == "phone"
                && tier == "front_office"
                && active_statuses.contains(&status.as_str())
        })
        .map(|(id, citizen, status, _, _)| (id, citizen, status))
        .collect())
}

/// Changed call-backs written back whole, many to a statement (an upsert on rows that exist),
/// as writes for [`run_in_order`].
pub fn callback_updates<C>(conn: &C, models: Vec<callback::Model>) -> Vec<Write<'_>>
where
    C: ConnectionTrait + Sync,
{
    let columns: Vec<callback::Column> = callback::Column::iter()
        .filter(|c| !matches!(c, callback::Column::TicketId))
        .collect();
    chunked::<callback::Entity, _>(models)
        .into_iter()
        .map(|chunk| -> Write<'_> {
            let columns = columns.clone();
            Box::pin(async move {
                let rows = chunk.into_iter().map(IntoActiveModel::into_active_model);
                callback::Entity::insert_many::<callback::ActiveModel, _>(rows)
                    .on_conflict(
                        OnConflict::column(callback::Column::TicketId)
                            .update_columns(columns)
                            .to_owned(),
                    )
                    .exec_without_returning(conn)
                    .await
                    .map(drop)
            })
        })
        .collect()
}

/// The status of each of these tickets, as `(id, status)`.
pub async fn ticket_statuses<C: ConnectionTrait>(
    conn: &C,
    ids: &[Uuid],
) -> Result<Vec<(Uuid, String)>, sea_orm::DbErr> {
    in_chunks(ids, |chunk| {
        ticket::Entity::find()
            .select_only()
            .column(ticket::Column::Id)
            .column(ticket::Column::Status)
            .filter(ticket::Column::Id.is_in(chunk))
            .into_tuple()
            .all(conn)
    })
    .await
}

/// Tickets by id.
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

/// Call-backs by ticket id.
pub async fn callbacks_by_ids<C: ConnectionTrait>(
    conn: &C,
    ids: &[Uuid],
) -> Result<Vec<callback::Model>, sea_orm::DbErr> {
    in_chunks(ids, |chunk| {
        callback::Entity::find()
            .filter(callback::Column::TicketId.is_in(chunk))
            .all(conn)
    })
    .await
}
