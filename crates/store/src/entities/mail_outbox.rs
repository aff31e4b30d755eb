//! Entity for the `mail_outbox` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "mail_outbox")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub ticket_id: Uuid,
    pub entry_id: Option<Uuid>,
    pub mail_message_id: Uuid,
    /// `reply` or `auto_ack`.
    pub kind: String,
    /// `queued`, `sent`, `failed` or `bounced`.
    pub state: String,
    pub message_id: String,
    pub envelope_from: String,
    /// Space-separated recipients.
    #[sea_orm(column_type = "Text")]
    pub envelope_to: String,
    /// First recipient, lowercase.
    pub recipient: String,
    /// The message exactly as it is sent.
    #[sea_orm(column_type = "Blob")]
    pub raw: Vec<u8>,
    pub attempts: i32,
    pub next_attempt_at: DateTimeUtc,
    #[sea_orm(column_type = "Text", nullable)]
    pub last_error: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub sent_at: Option<DateTimeUtc>,
}

impl std::fmt::Debug for Model {
    /// Addresses and the message are personal data: only identifiers and state are shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("mail_outbox::Model")
            .field("id", &self.id)
            .field("ticket_id", &self.ticket_id)
            .field("kind", &self.kind)
            .field("state", &self.state)
            .field("attempts", &self.attempts)
            .field("next_attempt_at", &self.next_attempt_at)
            .field("size", &self.raw.len())
            .finish_non_exhaustive()
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
