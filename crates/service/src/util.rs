//! Small helpers shared by the use cases.

use chrono::{DateTime, SubsecRound, Utc};
use sea_orm::{ConnectionTrait, DatabaseBackend, Statement};

/// Now, truncated to microseconds so values round-trip exactly through both databases.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// Trims a string and checks its length in characters.
pub fn bounded(value: &str, min: usize, max: usize) -> Result<String, String> {
    let v = value.trim();
    let n = v.chars().count();
    if n < min {
        Err(if min == 1 {
            "must not be empty".into()
        } else {
            format!("must be at least {min} characters")
        })
    } else if n > max {
        Err(format!("must be at most {max} characters (got {n})"))
    } else {
        Ok(v.to_owned())
    }
}

/// Serialises a use case across instances for the rest of the transaction: on PostgreSQL a
/// transaction-scoped advisory lock on `key`; SQLite's single writer serialises already.
pub async fn xact_lock<C: ConnectionTrait>(conn: &C, key: i64) -> Result<(), sea_orm::DbErr> {
    if conn.get_database_backend() == DatabaseBackend::Postgres {
        conn.execute_raw(Statement::from_string(
            DatabaseBackend::Postgres,
            format!("SELECT pg_advisory_xact_lock({key})"),
        ))
        .await?;
    }
    Ok(())
}
