//! Look-ups by long lists of values and inserts of many rows, split so no statement exceeds the
//! databases' limits on bound parameters (SQLite's is the lower one).

use std::future::Future;

use futures::future::BoxFuture;
use futures::{StreamExt, TryStreamExt};
use sea_orm::{ActiveModelTrait, ConnectionTrait, EntityTrait, IntoActiveModel};

/// Values bound per statement.
pub const CHUNK: usize = 500;

/// Rows per multi-row insert: 30 columns × 250 rows stays far below SQLite's 32 766 bound
/// variables and PostgreSQL's 65 535.
const ROWS_PER_INSERT: usize = 250;

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

/// The models in chunks of [`ROWS_PER_INSERT`].
pub fn chunked<M>(models: Vec<M>) -> Vec<Vec<M>> {
    let mut out = Vec::with_capacity(models.len().div_ceil(ROWS_PER_INSERT));
    let mut models = models.into_iter().peekable();
    while models.peek().is_some() {
        out.push(models.by_ref().take(ROWS_PER_INSERT).collect());
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
    chunked(models)
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
