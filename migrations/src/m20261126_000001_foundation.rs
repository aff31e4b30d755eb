//! The foundation schema: users and tokens, citizens and their contacts, tickets, their
//! timeline, the yearly number counters, taxonomy lists and the audit log.

use sea_orm_migration::{prelude::*, schema::*};

use crate::util::{fk, index};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("users")
                    .col(uuid("id").primary_key())
                    .col(string_uniq("username"))
                    .col(string("name"))
                    .col(string("password_hash"))
                    .col(string("roles"))
                    .col(boolean("active"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("auth_tokens")
                    .col(string("token_hash").primary_key())
                    .col(uuid("user_id"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("expires_at"))
                    .foreign_key(&mut fk("auth_tokens", "user_id", "users"))
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "auth_tokens",
            "idx_auth_tokens_user",
            &["user_id"],
            false,
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table("citizens")
                    .col(uuid("id").primary_key())
                    .col(string("name"))
                    .col(string("name_lower"))
                    .col(string_null("codice_fiscale").unique_key())
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "citizens",
            "idx_citizens_name",
            &["name_lower"],
            false,
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table("citizen_contacts")
                    .col(uuid("id").primary_key())
                    .col(uuid("citizen_id"))
                    .col(string("kind"))
                    .col(string("value"))
                    .col(timestamp_with_time_zone("created_at"))
                    .foreign_key(&mut fk("citizen_contacts", "citizen_id", "citizens"))
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "citizen_contacts",
            "idx_citizen_contacts_value",
            &["kind", "value", "citizen_id"],
            true,
        )
        .await?;
        index(
            manager,
            "citizen_contacts",
            "idx_citizen_contacts_citizen",
            &["citizen_id"],
            false,
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table("tickets")
                    .col(uuid("id").primary_key())
                    .col(string_uniq("number"))
                    .col(string("channel"))
                    .col(string("tier"))
                    .col(string("status"))
                    .col(string("priority"))
                    .col(string_null("category"))
                    .col(string_null("measure"))
                    .col(string("subject"))
                    .col(uuid_null("citizen_id"))
                    .col(uuid_null("assignee_id"))
                    .col(string("tags"))
                    .col(uuid_null("created_by"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .col(timestamp_with_time_zone_null("first_response_at"))
                    .col(timestamp_with_time_zone_null("resolved_at"))
                    .col(timestamp_with_time_zone_null("closed_at"))
                    .col(timestamp_with_time_zone_null("sla_due_at"))
                    .foreign_key(&mut fk("tickets", "citizen_id", "citizens"))
                    .foreign_key(&mut fk("tickets", "assignee_id", "users"))
                    .to_owned(),
            )
            .await?;
        // The queue queries filter on one or two of these and page by id (UUID v7, so id order
        // is creation order); each index ends in id so a filtered first page is an index range.
        index(
            manager,
            "tickets",
            "idx_tickets_status",
            &["status", "id"],
            false,
        )
        .await?;
        index(
            manager,
            "tickets",
            "idx_tickets_tier_status",
            &["tier", "status", "id"],
            false,
        )
        .await?;
        index(
            manager,
            "tickets",
            "idx_tickets_channel_status",
            &["channel", "status", "id"],
            false,
        )
        .await?;
        index(
            manager,
            "tickets",
            "idx_tickets_assignee_status",
            &["assignee_id", "status", "id"],
            false,
        )
        .await?;
        index(
            manager,
            "tickets",
            "idx_tickets_category",
            &["category", "id"],
            false,
        )
        .await?;
        index(
            manager,
            "tickets",
            "idx_tickets_citizen",
            &["citizen_id", "id"],
            false,
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
        index(
            manager,
            "tickets",
            "idx_tickets_sla_due",
            &["sla_due_at"],
            false,
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table("ticket_entries")
                    .col(uuid("id").primary_key())
                    .col(uuid("ticket_id"))
                    .col(string("kind"))
                    .col(uuid_null("author_id"))
                    .col(text("body"))
                    .col(text_null("body_html"))
                    .col(text_null("meta"))
                    .col(timestamp_with_time_zone("created_at"))
                    .foreign_key(&mut fk("ticket_entries", "ticket_id", "tickets"))
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "ticket_entries",
            "idx_ticket_entries_ticket",
            &["ticket_id", "id"],
            false,
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table("ticket_counters")
                    .col(integer("year").primary_key())
                    .col(big_integer("next_value"))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("taxonomy")
                    .col(string("kind"))
                    .col(string("slug"))
                    .col(string("label_it"))
                    .col(string("label_en"))
                    .col(boolean("active"))
                    .col(integer("position"))
                    .primary_key(Index::create().col("kind").col("slug"))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("audit_log")
                    .col(big_pk_auto("id"))
                    .col(timestamp_with_time_zone("at"))
                    .col(uuid_null("actor_id"))
                    .col(string("action"))
                    .col(string("entity_type"))
                    .col(uuid_null("entity_id"))
                    .col(text_null("details"))
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "audit_log",
            "idx_audit_entity",
            &["entity_type", "entity_id"],
            false,
        )
        .await?;
        index(
            manager,
            "audit_log",
            "idx_audit_actor",
            &["actor_id", "id"],
            false,
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for t in [
            "audit_log",
            "taxonomy",
            "ticket_counters",
            "ticket_entries",
            "tickets",
            "citizen_contacts",
            "citizens",
            "auth_tokens",
            "users",
        ] {
            manager
                .drop_table(Table::drop().table(t).to_owned())
                .await?;
        }
        Ok(())
    }
}
