//! Look-ups by long lists of values, split so no statement exceeds the databases' limits on
//! bound parameters (SQLite's is the lower one).

use std::future::Future;

/// Values bound per statement.
pub const CHUNK: usize = 500;

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
