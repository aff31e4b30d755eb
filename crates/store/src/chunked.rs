//! Look-ups by long lists of values and inserts of many rows, split so no statement exceeds the
//! databases' limits on bound parameters (SQLite's is the lower one).

use std::future::Future;

use futures::future::BoxFuture;
use futures::{StreamExt, TryStreamExt};
use sea_orm::{ActiveModelTrait, ConnectionTrait, EntityTrait, IntoActiveModel, Iterable};

/// Values bound per statement.
pub const CHUNK: usize = 500;

/// At most this many rows per multi-row insert. Fewer, larger statements write faster on
/// SQLite: a multi-row insert keeps a statement journal of every page it first touches, and
/// the pages at the end of the time-ordered indexes are touched by every statement (1,000
/// rows instead of 250: CDR import +9 %, docs/benchmarks.md).
const MAX_ROWS_PER_INSERT: usize = 1000;

/// Bound values per statement: below SQLite's limit of 32 766 (PostgreSQL's is 65 535).
const MAX_BOUND_VALUES: usize = 32_000;

/// Rows per multi-row insert into `E`: as many as its columns allow under
/// [`MAX_BOUND_VALUES`], at most [`MAX_ROWS_PER_INSERT`].
fn rows_per_insert<E: EntityTrait>() -> usize {
    let columns = E::Column::iter().count().max(1);
    (MAX_BOUND_VALUES / columns).clamp(1, MAX_ROWS_PER_INSERT)
}

/// Runs `query` once per chunk of at most [`CHUNK`] values and concatenates the rows.
pub async fn in_chunks<V, T, F, Fut>(values: &[V], mut query: F) -> Result<Vec<T>, sea_orm::DbErr>
where
    V: Clone,
    F: FnMut(Vec<V>) -> Fut,
    Fut: Future<Output = Result<Vec<T>, sea_orm::DbErr>>,
{
    let mut out = Vec::new();
    for chunk in values.chunks(CHUNK) {
        out.extend(query(chunk.to_vec()).await?);
    }
    Ok(out)
}

/// Inserts models in multi-row statements of a bounded size.
pub async fn insert_all<C, M, A, E>(conn: &C, models: Vec<M>) -> Result<(), sea_orm::DbErr>
where
    C: ConnectionTrait + Sync,
    M: IntoActiveModel<A> + Send,
    A: ActiveModelTrait<Entity = E> + Send,
    E: EntityTrait,
{
    run_in_order(insert_chunks(conn, models)).await
}

/// One write of a batch; see [`run_in_order`].
pub type Write<'a> = BoxFuture<'a, Result<(), sea_orm::DbErr>>;

/// The models of `E` in chunks that each fit one multi-row statement.
pub fn chunked<E: EntityTrait, M>(models: Vec<M>) -> Vec<Vec<M>> {
    let rows = rows_per_insert::<E>();
    let mut out = Vec::with_capacity(models.len().div_ceil(rows));
    let mut models = models.into_iter().peekable();
    while models.peek().is_some() {
        out.push(models.by_ref().take(rows).collect());
    }
    out
}

/// The multi-row inserts of `models`, one write per statement, nothing done until run.
pub fn insert_chunks<'a, C, M, A, E>(conn: &'a C, models: Vec<M>) -> Vec<Write<'a>>
where
    C: ConnectionTrait + Sync,
    M: IntoActiveModel<A> + Send + 'a,
    A: ActiveModelTrait<Entity = E> + Send + 'a,
    E: EntityTrait,
{
    chunked::<E, M>(models)
        .into_iter()
        .map(|chunk| -> Write<'a> {
            Box::pin(async move {
                let rows = chunk.into_iter().map(IntoActiveModel::into_active_model);
                E::insert_many::<A, _>(rows)
                    .exec_without_returning(conn)
                    .await
                    .map(drop)
            })
        })
        .collect()
}

/// Runs writes one after the other, in the order given, but builds each statement while the
/// database is still executing the one before: building a multi-row statement (and its
/// thousands of bound values) takes as long as SQLite takes to write it, and the two then run
/// on two cores instead of taking turns. Each write takes the transaction's connection in
/// turn, so the order (parents before children) is kept.
pub async fn run_in_order(writes: Vec<Write<'_>>) -> Result<(), sea_orm::DbErr> {
    futures::stream::iter(writes)
        .buffered(2)
        .try_for_each(|()| futures::future::ready(Ok(())))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entities::{call, citizen_contact, ticket};

    #[test]
    fn every_insert_statement_stays_under_the_bound_value_limit() {
        for (columns, rows) in [
            (
                call::Column::iter().count(),
                rows_per_insert::<call::Entity>(),
            ),
            (
                ticket::Column::iter().count(),
                rows_per_insert::<ticket::Entity>(),
            ),
            (
                citizen_contact::Column::iter().count(),
                rows_per_insert::<citizen_contact::Entity>(),
            ),
        ] {
            assert!(columns * rows <= 32_766, "{columns} columns × {rows} rows");
            assert!(rows >= 1);
        }
        // Narrow tables get the cap, not thousands of rows per statement.
        assert_eq!(
            rows_per_insert::<citizen_contact::Entity>(),
            MAX_ROWS_PER_INSERT
        );
        let calls: Vec<u32> = (0..2_500).collect();
        let chunks = chunked::<call::Entity, _>(calls);
        assert_eq!(
            chunks.iter().map(Vec::len).collect::<Vec<_>>(),
            [1000, 1000, 500]
        );
    }
}
