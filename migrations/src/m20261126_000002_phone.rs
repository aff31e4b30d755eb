//! The phone channel: one row per call (keyed by integration and the switchboard's call id,
//! holding the converging call record) and one row per call-back ticket.

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
                    .table("calls")
                    .col(uuid("id").primary_key())
                    // The integration's name (or the CDR import's source); call ids are unique
                    // only within one source.
                    .col(string("source"))
                    .col(string("call_id"))
                    .col(string("direction"))
                    .col(string_null("outcome"))
                    .col(string_null("from_party"))
                    .col(string_null("to_party"))
                    // E.164 of the citizen's end of the call, when it is a public number.
                    .col(string_null("citizen_number"))
                    .col(uuid_null("citizen_id"))
                    // The ticket whose timeline holds this call's entry, once placed.
                    .col(uuid_null("ticket_id"))
                    .col(uuid_null("entry_id"))
                    // The call-back ticket this call belongs to (missed calls, attempts).
                    .col(uuid_null("callback_id"))
                    .col(uuid_null("operator_id"))
                    .col(string_null("extension"))
                    .col(string_null("queue"))
                    .col(timestamp_with_time_zone("started_at"))
                    .col(timestamp_with_time_zone_null("answered_at"))
                    .col(timestamp_with_time_zone_null("ended_at"))
                    .col(integer_null("duration_secs"))
                    .col(integer_null("talk_secs"))
                    // The operator's wrap-up outcome, free text.
                    .col(string_null("result"))
                    // The serialised sportello_phone::CallRecord later events are merged into.
                    .col(text("record"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .foreign_key(&mut fk("calls", "citizen_id", "citizens"))
                    .foreign_key(&mut fk("calls", "ticket_id", "tickets"))
                    .foreign_key(&mut fk("calls", "callback_id", "tickets"))
                    .foreign_key(&mut fk("calls", "operator_id", "users"))
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "calls",
            "idx_calls_source_call",
            &["source", "call_id"],
            true,
        )
        .await?;
        // The call log pages by (started_at, id); filtered lists add one leading column.
        index(
            manager,
            "calls",
            "idx_calls_started",
            &["started_at", "id"],
            false,
        )
        .await?;
        index(
            manager,
            "calls",
            "idx_calls_citizen",
            &["citizen_id", "started_at", "id"],
            false,
        )
        .await?;
        index(
            manager,
            "calls",
            "idx_calls_ticket",
            &["ticket_id", "started_at", "id"],
            false,
        )
        .await?;
        index(
            manager,
            "calls",
            "idx_calls_number",
            &["citizen_number", "outcome", "started_at"],
            false,
        )
        .await?;
        index(
            manager,
            "calls",
            "idx_calls_callback",
            &["callback_id"],
            false,
        )
        .await?;
        index(
            manager,
            "calls",
            "idx_calls_outcome",
            &["outcome", "started_at", "id"],
            false,
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table("callbacks")
                    .col(uuid("ticket_id").primary_key())
                    .col(string("number"))
                    // The number while the call-back is open, NULL once done: its unique index
                    // allows one open call-back per number on both backends.
                    .col(string_null("open_number"))
                    .col(uuid_null("citizen_id"))
                    .col(string("state"))
                    .col(integer("missed_count"))
                    .col(integer("call_attempts"))
                    .col(integer("manual_attempts"))
                    .col(timestamp_with_time_zone("first_missed_at"))
                    .col(timestamp_with_time_zone("last_missed_at"))
                    .col(timestamp_with_time_zone("deadline"))
                    .col(timestamp_with_time_zone_null("done_at"))
                    .col(string_null("done_reason"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .foreign_key(&mut fk("callbacks", "ticket_id", "tickets"))
                    .foreign_key(&mut fk("callbacks", "citizen_id", "citizens"))
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "callbacks",
            "idx_callbacks_open_number",
            &["open_number"],
            true,
        )
        .await?;
        index(
            manager,
            "callbacks",
            "idx_callbacks_state_deadline",
            &["state", "deadline", "ticket_id"],
            false,
        )
        .await?;
        index(
            manager,
            "callbacks",
            "idx_callbacks_number",
            &["number"],
            false,
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for t in ["calls", "callbacks"] {
            manager
                .drop_table(Table::drop().table(t).to_owned())
                .await?;
        }
        Ok(())
    }
}
