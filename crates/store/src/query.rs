//! The read queries behind queues and searches: filters, cursor pages, counts.

use sea_orm::sea_query::{Expr, ExprTrait, Func};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, Select,
};
use uuid::Uuid;

use crate::entities::{citizen, citizen_contact, ticket};

/// Filters of the ticket list; every field narrows the result.
#[derive(Clone, Debug, Default)]
pub struct TicketFilter {
    pub statuses: Vec<String>,
    pub channel: Option<String>,
    pub tiers: Vec<String>,
    pub category: Option<String>,
    pub measure: Option<String>,
    pub assignee: Option<Uuid>,
    /// Only tickets nobody is assigned to.
    pub unassigned: bool,
    pub citizen_id: Option<Uuid>,
    /// Matched against the ticket number (exactly) or the subject (substring, any case).
    pub text: Option<String>,
}

/// Page direction: newest first (the default listing) or oldest first (queue order).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Order {
    #[default]
    NewestFirst,
    OldestFirst,
}

fn filtered(filter: &TicketFilter) -> Select<ticket::Entity> {
    let mut q = ticket::Entity::find();
    if !filter.statuses.is_empty() {
        q = q.filter(ticket::Column::Status.is_in(filter.statuses.clone()));
    }
    if let Some(c) = &filter.channel {
        q = q.filter(ticket::Column::Channel.eq(c.clone()));
    }
    if !filter.tiers.is_empty() {
        q = q.filter(ticket::Column::Tier.is_in(filter.tiers.clone()));
    }
    if let Some(c) = &filter.category {
        q = q.filter(ticket::Column::Category.eq(c.clone()));
    }
    if let Some(m) = &filter.measure {
        q = q.filter(ticket::Column::Measure.eq(m.clone()));
    }
    if let Some(a) = filter.assignee {
        q = q.filter(ticket::Column::AssigneeId.eq(a));
    }
    if filter.unassigned {
        q = q.filter(ticket::Column::AssigneeId.is_null());
    }
    if let Some(c) = filter.citizen_id {
        q = q.filter(ticket::Column::CitizenId.eq(c));
    }
    if let Some(t) = filter
        .text
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        let pattern = format!("%{}%", escape_like(&t.to_lowercase()));
        q = q.filter(
            ticket::Column::Number
                .eq(t.to_uppercase())
                .or(Expr::expr(Func::lower(Expr::col(ticket::Column::Subject)))
                    .like(sea_orm::sea_query::LikeExpr::new(pattern).escape('\\'))),
        );
    }
    q
}

/// Escapes `%`, `_` and `\` so user text matches literally inside a LIKE pattern.
pub fn escape_like(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// One page of tickets after `cursor` (the id of the last ticket of the previous page).
///
/// Ids are UUID v7, so id order is creation order and keyset paging by id is stable while
/// new tickets arrive. Fetches `limit + 1` rows to know whether another page exists.
pub async fn list_tickets<C: ConnectionTrait>(
    conn: &C,
    filter: &TicketFilter,
    order: Order,
    cursor: Option<Uuid>,
    limit: u64,
) -> Result<(Vec<ticket::Model>, Option<Uuid>), sea_orm::DbErr> {
    let mut q = filtered(filter);
    q = match (order, cursor) {
        (Order::NewestFirst, Some(c)) => q.filter(ticket::Column::Id.lt(c)),
        (Order::OldestFirst, Some(c)) => q.filter(ticket::Column::Id.gt(c)),
        (_, None) => q,
    };
    q = match order {
        Order::NewestFirst => q.order_by_desc(ticket::Column::Id),
        Order::OldestFirst => q.order_by_asc(ticket::Column::Id),
    };
    let mut rows = q.limit(limit + 1).all(conn).await?;
    let next = if rows.len() as u64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|t| t.id)
    } else {
        None
    };
    Ok((rows, next))
}

/// How many tickets match the filter.
pub async fn count_tickets<C: ConnectionTrait>(
    conn: &C,
    filter: &TicketFilter,
) -> Result<u64, sea_orm::DbErr> {
    filtered(filter).count(conn).await
}

/// Citizens whose name contains `q`, or whose codice fiscale, e-mail or phone equals the
/// normalised forms given. Returns at most `limit` citizens, by name.
pub async fn search_citizens<C: ConnectionTrait>(
    conn: &C,
    name_part: &str,
    exact_values: &[String],
    codice_fiscale: Option<&str>,
    limit: u64,
) -> Result<Vec<citizen::Model>, sea_orm::DbErr> {
    let mut cond = sea_orm::Condition::any();
    let name_part = name_part.trim().to_lowercase();
    if !name_part.is_empty() {
        cond = cond.add(
            citizen::Column::NameLower.like(
                sea_orm::sea_query::LikeExpr::new(format!("%{}%", escape_like(&name_part)))
                    .escape('\\'),
            ),
        );
    }
    if let Some(cf) = codice_fiscale {
        cond = cond.add(citizen::Column::CodiceFiscale.eq(cf));
    }
    if !exact_values.is_empty() {
        let ids: Vec<Uuid> = citizen_contact::Entity::find()
            .select_only()
            .column(citizen_contact::Column::CitizenId)
            .filter(citizen_contact::Column::Value.is_in(exact_values.to_vec()))
            .limit(limit)
            .into_tuple()
            .all(conn)
            .await?;
        if !ids.is_empty() {
            cond = cond.add(citizen::Column::Id.is_in(ids));
        }
    }
    citizen::Entity::find()
        .filter(cond)
        .order_by_asc(citizen::Column::NameLower)
        .order_by_asc(citizen::Column::Id)
        .limit(limit)
        .all(conn)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_wildcards_are_escaped() {
        assert_eq!(escape_like("50%_a\\b"), "50\\%\\_a\\\\b");
    }
}
