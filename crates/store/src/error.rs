//! Storage errors.

/// What can go wrong talking to the database.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or opened; the message names it (without secrets).
    #[error("cannot connect to the database {target}: {reason}")]
    Connect { target: String, reason: String },
    #[error("database migration failed: {0}")]
    Migration(String),
    #[error(transparent)]
    Db(#[from] sea_orm::DbErr),
}

impl StoreError {
    /// Whether the error is a unique-constraint violation (a duplicate insert).
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, StoreError::Db(e) if is_unique_violation(e))
    }
}

/// Whether a database error is a unique-constraint violation, on SQLite or PostgreSQL.
pub fn is_unique_violation(err: &sea_orm::DbErr) -> bool {
    matches!(
        err.sql_err(),
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
    )
}
