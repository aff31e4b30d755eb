//! Prepared answers ("risposte predefinite"): e-mail templates with placeholders, one row per
//! slug and language, browsable by measure and topic as the operators' knowledge base.

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
                    .table("prepared_answers")
                    .col(uuid("id").primary_key())
                    .col(string_len("slug", 40))
                    // `it` or `en`.
                    .col(string_len("lang", 8))
                    // A measure slug of the taxonomy; none for answers about no one measure.
                    .col(string_len_null("measure", 40))
                    .col(string_len("topic", 40))
                    .col(string("title"))
                    .col(string("subject"))
                    .col(text("body"))
                    .col(boolean("active"))
                    // Title and body folded (lowercase, accents dropped) for `q` searches that
                    // behave the same on SQLite and PostgreSQL.
                    .col(text("search_text"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .col(uuid_null("updated_by"))
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "prepared_answers",
            "idx_prepared_answers_slug_lang",
            &["slug", "lang"],
            true,
        )
        .await?;
        index(
            manager,
            "prepared_answers",
            "idx_prepared_answers_lang_measure_topic",
            &["lang", "measure", "topic"],
            false,
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table("prepared_answers").to_owned())
            .await
    }
}
