//! Reports: the baselines periods are compared against (monthly volumes of earlier years,
//! imported from CSV), and a `created_at` index that lets the reports and the dashboard count
//! the tickets of a period without touching the table.

use sea_orm_migration::{prelude::*, schema::*};

use crate::util::index;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("report_baselines")
                    // `contacts`, `applications` or `payments`.
                    .col(string("metric"))
                    // `all`, or `dimension:slug` (`channel:phone`, `measure:b2`, ...).
                    .col(string("key"))
                    // `YYYY-MM`.
                    .col(string("period"))
                    .col(big_integer("count"))
                    .col(uuid_null("imported_by"))
                    .col(timestamp_with_time_zone("imported_at"))
                    .primary_key(Index::create().col("metric").col("key").col("period"))
                    .to_owned(),
            )
            .await?;
        // Reports and the dashboard count the tickets of a period by channel, tier, category
        // or measure. With those columns in the `created_at` index a period is one index
        // range, never a table read. It replaces the plain `created_at` index, which it
        // serves in every use: beside it SQLite's planner would keep choosing the narrower
        // index and read the table for every ticket, or scan a whole `channel`/`tier`/
        // `category` index to save a sort.
        manager
            .drop_index(
                Index::drop()
                    .name("idx_tickets_created")
                    .table("tickets")
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "tickets",
            "idx_tickets_created_report",
            &["created_at", "channel", "tier", "category", "measure"],
            false,
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("idx_tickets_created_report")
                    .table("tickets")
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "tickets",
            "idx_tickets_created",
            &["created_at"],
            false,
        )
        .await?;
        manager
            .drop_table(Table::drop().table("report_baselines").to_owned())
            .await
    }
}
