//! The dashboard: indexes that let today's and the last week's first responses and
//! resolutions be read as index ranges instead of scans of the whole ticket table.

use sea_orm_migration::prelude::*;

use crate::util::index;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        index(
            manager,
            "tickets",
            "idx_tickets_first_response",
            &["first_response_at"],
            false,
        )
        .await?;
        index(
            manager,
            "tickets",
            "idx_tickets_resolved",
            &["resolved_at"],
            false,
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for name in ["idx_tickets_first_response", "idx_tickets_resolved"] {
            manager
                .drop_index(Index::drop().name(name).table("tickets").to_owned())
                .await?;
        }
        Ok(())
    }
}
