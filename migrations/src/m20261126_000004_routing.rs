//! Routing and SLAs: operators' routing profiles and presence, each ticket's routing decision
//! and SLA clock, and shared settings (the routing rules admins edit).

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
                    .table("operator_profiles")
                    .col(uuid("user_id").primary_key())
                    .col(text("tiers"))
                    .col(text("skills"))
                    .col(text("capacity"))
                    .col(string("presence"))
                    .col(timestamp_with_time_zone("presence_since"))
                    .col(timestamp_with_time_zone_null("last_assigned_at"))
                    .col(text_null("shifts"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_operator_profiles_user_id")
                            .from("operator_profiles", "user_id")
                            .to("users", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("ticket_routing")
                    .col(uuid("ticket_id").primary_key())
                    .col(string("rule"))
                    .col(text("skills"))
                    .col(string("sla_policy"))
                    .col(text("sla_clock"))
                    .col(string("sla_state"))
                    .col(timestamp_with_time_zone_null("next_check_at"))
                    .col(text_null("waiting_reason"))
                    .col(timestamp_with_time_zone("enqueued_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .foreign_key(&mut fk("ticket_routing", "ticket_id", "tickets"))
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "ticket_routing",
            "idx_ticket_routing_check",
            &["next_check_at"],
            false,
        )
        .await?;
        index(
            manager,
            "ticket_routing",
            "idx_ticket_routing_state",
            &["sla_state"],
            false,
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table("settings")
                    .col(string("key").primary_key())
                    .col(text("value"))
                    .col(uuid_null("updated_by"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for t in ["settings", "ticket_routing", "operator_profiles"] {
            manager
                .drop_table(Table::drop().table(t).to_owned())
                .await?;
        }
        Ok(())
    }
}
