//! The counter channel: opening sessions, their appointment slots, bookings (with check-in,
//! visit and no-show state) and the opening-hours plans supervisors approve.

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
                    .table("counter_plans")
                    .col(uuid("id").primary_key())
                    .col(string("week"))
                    .col(string("state"))
                    .col(text("sessions"))
                    .col(text("inputs"))
                    .col(uuid_null("created_by"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(uuid_null("approved_by"))
                    .col(timestamp_with_time_zone_null("approved_at"))
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "counter_plans",
            "idx_counter_plans_week",
            &["week"],
            false,
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table("counter_sessions")
                    .col(uuid("id").primary_key())
                    // Local date `YYYY-MM-DD` and local times `HH:MM` in the calendar's zone.
                    .col(string("day"))
                    .col(string("start_time"))
                    .col(string("end_time"))
                    .col(integer("desks"))
                    .col(integer("slot_minutes"))
                    .col(uuid_null("plan_id"))
                    .col(uuid_null("created_by"))
                    .col(timestamp_with_time_zone("created_at"))
                    .foreign_key(&mut fk("counter_sessions", "plan_id", "counter_plans"))
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "counter_sessions",
            "idx_counter_sessions_day",
            &["day"],
            false,
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table("counter_slots")
                    .col(uuid("id").primary_key())
                    .col(uuid("session_id"))
                    .col(string("day"))
                    .col(timestamp_with_time_zone("starts_at"))
                    .col(timestamp_with_time_zone("ends_at"))
                    .col(integer("capacity"))
                    .col(integer("booked"))
                    .foreign_key(&mut fk("counter_slots", "session_id", "counter_sessions"))
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "counter_slots",
            "idx_counter_slots_day",
            &["day", "starts_at"],
            false,
        )
        .await?;
        index(
            manager,
            "counter_slots",
            "idx_counter_slots_starts",
            &["starts_at"],
            false,
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table("counter_bookings")
                    .col(uuid("id").primary_key())
                    // None for walk-ins.
                    .col(uuid_null("slot_id"))
                    .col(uuid("citizen_id"))
                    .col(uuid_null("ticket_id"))
                    .col(string("day"))
                    .col(boolean("walk_in"))
                    .col(string("state"))
                    .col(string_null("category"))
                    .col(string_null("measure"))
                    .col(text_null("notes"))
                    .col(string_null("queue_number"))
                    .col(integer_null("desk"))
                    .col(text_null("notification"))
                    .col(timestamp_with_time_zone_null("reminder_due_at"))
                    .col(timestamp_with_time_zone_null("checked_in_at"))
                    .col(timestamp_with_time_zone_null("called_at"))
                    .col(timestamp_with_time_zone_null("visited_at"))
                    .col(timestamp_with_time_zone_null("no_show_at"))
                    .col(timestamp_with_time_zone_null("cancelled_at"))
                    .col(uuid_null("created_by"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .foreign_key(&mut fk("counter_bookings", "slot_id", "counter_slots"))
                    .foreign_key(&mut fk("counter_bookings", "citizen_id", "citizens"))
                    .foreign_key(&mut fk("counter_bookings", "ticket_id", "tickets"))
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "counter_bookings",
            "idx_counter_bookings_slot",
            &["slot_id", "state"],
            false,
        )
        .await?;
        index(
            manager,
            "counter_bookings",
            "idx_counter_bookings_day",
            &["day", "state"],
            false,
        )
        .await?;
        index(
            manager,
            "counter_bookings",
            "idx_counter_bookings_ticket",
            &["ticket_id"],
            false,
        )
        .await?;
        // Two visitors never get the same number on a day, even across instances.
        index(
            manager,
            "counter_bookings",
            "uq_counter_bookings_queue",
            &["day", "queue_number"],
            true,
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for t in [
            "counter_bookings",
            "counter_slots",
            "counter_sessions",
            "counter_plans",
        ] {
            manager
                .drop_table(Table::drop().table(t).to_owned())
                .await?;
        }
        Ok(())
    }
}
