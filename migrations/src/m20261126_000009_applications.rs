//! The back office: citizens' applications (pratiche) for a measure, their documents checklist,
//! history, payments, links to tickets and the post-payment monitoring schedule.

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
                    .table("applications")
                    .col(uuid("id").primary_key())
                    .col(uuid("citizen_id"))
                    .col(string("measure"))
                    .col(string_null("protocol_number"))
                    .col(timestamp_with_time_zone("submitted_at"))
                    .col(string("submission_channel"))
                    .col(string("status"))
                    .col(string_null("isee_type"))
                    .col(big_integer_null("isee_value_cents"))
                    .col(string_null("dsu_protocol"))
                    .col(date_null("dsu_date"))
                    .col(date_null("isee_expires_on"))
                    .col(text_null("outcome_reason"))
                    // Bumped by every change; lets a change refuse to overwrite a newer one.
                    .col(integer("version"))
                    .col(uuid_null("created_by"))
                    .col(uuid_null("updated_by"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .foreign_key(&mut fk("applications", "citizen_id", "citizens"))
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "applications",
            "idx_applications_citizen",
            &["citizen_id"],
            false,
        )
        .await?;
        index(
            manager,
            "applications",
            "idx_applications_measure_status",
            &["measure", "status"],
            false,
        )
        .await?;
        index(
            manager,
            "applications",
            "idx_applications_submitted",
            &["submitted_at"],
            false,
        )
        .await?;
        index(
            manager,
            "applications",
            "idx_applications_status",
            &["status", "id"],
            false,
        )
        .await?;
        // NULLs are distinct in a unique index on both engines: many applications may lack one.
        index(
            manager,
            "applications",
            "uq_applications_protocol",
            &["protocol_number"],
            true,
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table("application_documents")
                    .col(uuid("application_id"))
                    .col(string("name"))
                    .col(string("label"))
                    .col(boolean("required"))
                    .col(boolean("received"))
                    .col(timestamp_with_time_zone_null("received_at"))
                    .col(integer("position"))
                    .col(uuid_null("updated_by"))
                    .primary_key(Index::create().col("application_id").col("name"))
                    .foreign_key(&mut fk(
                        "application_documents",
                        "application_id",
                        "applications",
                    ))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("application_events")
                    .col(uuid("id").primary_key())
                    .col(uuid("application_id"))
                    // `created`, `transition`, `document`, `payment`, `link`, `notification`,
                    // `monitoring`.
                    .col(string("kind"))
                    .col(string_null("from_status"))
                    .col(string_null("to_status"))
                    .col(text_null("reason"))
                    // Slugs and identifiers only (document name, instalment, notification kind).
                    .col(text_null("detail"))
                    .col(uuid_null("actor_id"))
                    .col(timestamp_with_time_zone("at"))
                    .foreign_key(&mut fk(
                        "application_events",
                        "application_id",
                        "applications",
                    ))
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "application_events",
            "idx_application_events_application",
            &["application_id", "id"],
            false,
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table("payments")
                    .col(uuid("id").primary_key())
                    .col(uuid("application_id"))
                    // Copied from the application so the regional reports read one table.
                    .col(string("measure"))
                    .col(big_integer("amount_cents"))
                    .col(date("paid_on"))
                    .col(integer("instalment"))
                    .col(integer("of_instalments"))
                    .col(uuid_null("created_by"))
                    .col(timestamp_with_time_zone("created_at"))
                    .foreign_key(&mut fk("payments", "application_id", "applications"))
                    .to_owned(),
            )
            .await?;
        // One row per instalment: recording the same instalment twice is refused.
        index(
            manager,
            "payments",
            "uq_payments_instalment",
            &["application_id", "instalment"],
            true,
        )
        .await?;
        index(
            manager,
            "payments",
            "idx_payments_paid_on",
            &["paid_on"],
            false,
        )
        .await?;
        index(
            manager,
            "payments",
            "idx_payments_measure_paid_on",
            &["measure", "paid_on"],
            false,
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table("ticket_applications")
                    .col(uuid("ticket_id"))
                    .col(uuid("application_id"))
                    .col(uuid_null("created_by"))
                    .col(timestamp_with_time_zone("created_at"))
                    .primary_key(Index::create().col("ticket_id").col("application_id"))
                    .foreign_key(&mut fk("ticket_applications", "ticket_id", "tickets"))
                    .foreign_key(&mut fk(
                        "ticket_applications",
                        "application_id",
                        "applications",
                    ))
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "ticket_applications",
            "idx_ticket_applications_application",
            &["application_id"],
            false,
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table("application_monitoring")
                    .col(uuid("id").primary_key())
                    .col(uuid("application_id"))
                    // 1-based position in the application's schedule.
                    .col(integer("seq"))
                    .col(date("due_on"))
                    // `scheduled`, `claimed` (a ticket is being created), `ticketed`,
                    // `cancelled` (the application closed first).
                    .col(string("state"))
                    .col(timestamp_with_time_zone_null("claimed_at"))
                    .col(uuid_null("ticket_id"))
                    .col(boolean("done"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .foreign_key(&mut fk(
                        "application_monitoring",
                        "application_id",
                        "applications",
                    ))
                    .foreign_key(&mut fk("application_monitoring", "ticket_id", "tickets"))
                    .to_owned(),
            )
            .await?;
        // A check is scheduled once per position: paying twice never doubles the schedule.
        index(
            manager,
            "application_monitoring",
            "uq_application_monitoring_seq",
            &["application_id", "seq"],
            true,
        )
        .await?;
        index(
            manager,
            "application_monitoring",
            "idx_application_monitoring_due",
            &["state", "due_on"],
            false,
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for t in [
            "application_monitoring",
            "ticket_applications",
            "payments",
            "application_events",
            "application_documents",
            "applications",
        ] {
            manager
                .drop_table(Table::drop().table(t).to_owned())
                .await?;
        }
        Ok(())
    }
}
