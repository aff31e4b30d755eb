//! Looks citizens up by e-mail or phone without scanning: the first index on
//! `citizen_contacts` leads with `kind`, but intake matches a set of values of any kind.

use sea_orm_migration::prelude::*;

use crate::util::index;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        index(
            manager,
            "citizen_contacts",
            "idx_citizen_contacts_by_value",
            &["value"],
            false,
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("idx_citizen_contacts_by_value")
                    .table("citizen_contacts")
                    .to_owned(),
            )
            .await
    }
}
