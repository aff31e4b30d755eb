//! Indexes over columns most rows leave empty keep only the rows that have a value (partial
//! indexes, the same on SQLite and PostgreSQL). Every query using them compares the column
//! with a value (`=`, `IN`, a range), which tells both planners the column is not NULL, so they
//! use the smaller index as before. The rows without a value (a phone ticket has no category
//! and, until it is resolved, no `resolved_at`; most calls belong to no call-back) cost no
//! index entry when written: a third fewer index writes for a phone ticket.
//!
//! `first_response_at` keeps its whole index: queries look for tickets where it is NULL.

use sea_orm_migration::prelude::*;

use crate::util::index;

/// Table, index and its columns; the first is the one rows may leave NULL.
const SPARSE: [(&str, &str, &[&str]); 4] = [
    ("tickets", "idx_tickets_category", &["category", "id"]),
    ("tickets", "idx_tickets_sla_due", &["sla_due_at"]),
    ("tickets", "idx_tickets_resolved", &["resolved_at"]),
    ("calls", "idx_calls_callback", &["callback_id"]),
];

#[derive(DeriveMigrationName)]
pub struct Migration;

async fn drop(
    manager: &SchemaManager<'_>,
    table: &'static str,
    name: &'static str,
) -> Result<(), DbErr> {
    manager
        .drop_index(Index::drop().name(name).table(table).to_owned())
        .await
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (table, name, cols) in SPARSE {
            drop(manager, table, name).await?;
            let mut idx = Index::create();
            idx.name(name).table(table);
            for c in cols {
                idx.col(*c);
            }
            idx.and_where(Expr::col(cols[0]).is_not_null());
            manager.create_index(idx.to_owned()).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (table, name, cols) in SPARSE {
            drop(manager, table, name).await?;
            index(manager, table, name, cols, false).await?;
        }
        Ok(())
    }
}
