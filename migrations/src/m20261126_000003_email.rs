//! The e-mail channel: every message in or out (for threading and dedupe), attachments, the
//! outbox of messages to send, the per-mailbox import checkpoints and the quarantine of
//! messages that could not be imported.

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
                    .table("mail_messages")
                    .col(uuid("id").primary_key())
                    .col(uuid("ticket_id"))
                    // The timeline entry showing the message (inbound, outbound or system).
                    .col(uuid_null("entry_id"))
                    // `inbound` or `outbound`.
                    .col(string("direction"))
                    // `message`, `bounce`, `reply` or `auto_ack`.
                    .col(string("kind"))
                    // The mailbox it came in through or was sent from; empty for the relay's
                    // default sender.
                    .col(string("mailbox"))
                    // Without angle brackets.
                    .col(string("message_id"))
                    .col(string_null("in_reply_to"))
                    // Space-separated Message-IDs, oldest first.
                    .col(text_null("references"))
                    // Outlook's conversation key (hex of Thread-Index's first 22 bytes).
                    .col(string_null("thread_index_root"))
                    .col(string_null("from_address"))
                    .col(string_null("to_address"))
                    // Where answers go (`Reply-To`, else `From`) for inbound messages.
                    .col(string_null("reply_to_address"))
                    .col(text("subject"))
                    .col(big_integer("raw_size"))
                    .col(timestamp_with_time_zone("created_at"))
                    .foreign_key(&mut fk("mail_messages", "ticket_id", "tickets"))
                    .foreign_key(&mut fk("mail_messages", "entry_id", "ticket_entries"))
                    .to_owned(),
            )
            .await?;
        // The dedupe guard: a mailbox never holds the same message twice, whichever way it went.
        index(
            manager,
            "mail_messages",
            "idx_mail_messages_mailbox_id",
            &["mailbox", "message_id"],
            true,
        )
        .await?;
        index(
            manager,
            "mail_messages",
            "idx_mail_messages_message_id",
            &["message_id"],
            false,
        )
        .await?;
        index(
            manager,
            "mail_messages",
            "idx_mail_messages_thread_index",
            &["thread_index_root"],
            false,
        )
        .await?;
        index(
            manager,
            "mail_messages",
            "idx_mail_messages_ticket",
            &["ticket_id", "id"],
            false,
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table("mail_attachments")
                    .col(uuid("id").primary_key())
                    .col(uuid("mail_message_id"))
                    .col(uuid("ticket_id"))
                    .col(text("filename"))
                    .col(string("content_type"))
                    .col(big_integer("size"))
                    .col(string_null("content_id"))
                    .col(boolean("inline"))
                    // NULL when the attachment exceeded the size limit and was not kept.
                    .col(blob_null("data"))
                    .col(timestamp_with_time_zone("created_at"))
                    .foreign_key(&mut fk(
                        "mail_attachments",
                        "mail_message_id",
                        "mail_messages",
                    ))
                    .foreign_key(&mut fk("mail_attachments", "ticket_id", "tickets"))
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "mail_attachments",
            "idx_mail_attachments_message",
            &["mail_message_id"],
            false,
        )
        .await?;
        index(
            manager,
            "mail_attachments",
            "idx_mail_attachments_ticket",
            &["ticket_id"],
            false,
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table("mail_outbox")
                    .col(uuid("id").primary_key())
                    .col(uuid("ticket_id"))
                    .col(uuid_null("entry_id"))
                    .col(uuid("mail_message_id"))
                    // `reply` or `auto_ack`.
                    .col(string("kind"))
                    // `queued`, `sent`, `failed` or `bounced`.
                    .col(string("state"))
                    .col(string("message_id"))
                    .col(string("envelope_from"))
                    // Space-separated recipients.
                    .col(text("envelope_to"))
                    // The first recipient, lowercase: the per-sender cap on automatic replies
                    // counts by it.
                    .col(string("recipient"))
                    // The message exactly as it is sent.
                    .col(blob("raw"))
                    .col(integer("attempts"))
                    // When the next delivery attempt is due; also the lease of a worker that
                    // claimed the row, so a crashed worker's row is retried later.
                    .col(timestamp_with_time_zone("next_attempt_at"))
                    .col(text_null("last_error"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .col(timestamp_with_time_zone_null("sent_at"))
                    .foreign_key(&mut fk("mail_outbox", "ticket_id", "tickets"))
                    .foreign_key(&mut fk("mail_outbox", "entry_id", "ticket_entries"))
                    .foreign_key(&mut fk("mail_outbox", "mail_message_id", "mail_messages"))
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "mail_outbox",
            "idx_mail_outbox_due",
            &["state", "next_attempt_at"],
            false,
        )
        .await?;
        index(
            manager,
            "mail_outbox",
            "idx_mail_outbox_recipient",
            &["kind", "recipient", "created_at"],
            false,
        )
        .await?;
        index(
            manager,
            "mail_outbox",
            "idx_mail_outbox_message",
            &["mail_message_id"],
            false,
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table("mail_checkpoints")
                    .col(string("mailbox").primary_key())
                    .col(big_integer("uid_validity"))
                    .col(big_integer("last_uid"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("mail_quarantine")
                    .col(uuid("id").primary_key())
                    .col(string("mailbox"))
                    .col(big_integer_null("uid_validity"))
                    .col(big_integer_null("uid"))
                    .col(text("reason"))
                    // SHA-256 of the raw bytes: the same message fetched again is not held twice.
                    .col(string("digest"))
                    .col(blob("raw"))
                    .col(big_integer("size"))
                    // `held` until a retry imports it, then `imported`.
                    .col(string("state"))
                    .col(integer("attempts"))
                    .col(text_null("last_error"))
                    .col(uuid_null("ticket_id"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .foreign_key(&mut fk("mail_quarantine", "ticket_id", "tickets"))
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "mail_quarantine",
            "idx_mail_quarantine_digest",
            &["mailbox", "digest"],
            false,
        )
        .await?;
        index(
            manager,
            "mail_quarantine",
            "idx_mail_quarantine_state",
            &["state", "id"],
            false,
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for t in [
            "mail_quarantine",
            "mail_checkpoints",
            "mail_outbox",
            "mail_attachments",
            "mail_messages",
        ] {
            manager
                .drop_table(Table::drop().table(t).to_owned())
                .await?;
        }
        Ok(())
    }
}
