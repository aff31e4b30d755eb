//! Storage: sea-orm entities, connection setup for SQLite and PostgreSQL, and the queries the
//! service layer runs inside its transactions.

pub mod calls;
pub mod chunked;
pub mod connect;
pub mod entities;
pub mod error;
pub mod mail;
pub mod query;

pub use connect::{Database, DbOptions, connect};
pub use error::StoreError;
pub use sea_orm;
