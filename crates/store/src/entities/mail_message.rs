//! Entity for the `mail_messages` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "mail_messages")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub ticket_id: Uuid,
    pub entry_id: Option<Uuid>,
    /// `inbound` or `outbound`.
    pub direction: String,
    /// `message`, `bounce`, `reply` or `auto_ack`.
    pub kind: String,
    /// Mailbox name; empty for the relay's default sender.
    pub mailbox: String,
    pub message_id: String,
    pub in_reply_to: Option<String>,
    /// Space-separated Message-IDs, oldest first.
    #[sea_orm(column_type = "Text", nullable)]
    pub references: Option<String>,
    pub thread_index_root: Option<String>,
    pub from_address: Option<String>,
    pub to_address: Option<String>,
    /// Where answers go (`Reply-To`, else `From`) for inbound messages.
    pub reply_to_address: Option<String>,
    #[sea_orm(column_type = "Text")]
    pub subject: String,
    pub raw_size: i64,
    pub created_at: DateTimeUtc,
}

impl std::fmt::Debug for Model {
    /// Addresses and subjects are personal data: only identifiers are shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("mail_message::Model")
            .field("id", &self.id)
            .field("ticket_id", &self.ticket_id)
            .field("direction", &self.direction)
            .field("kind", &self.kind)
            .field("mailbox", &self.mailbox)
            .field("message_id", &self.message_id)
            .field("raw_size", &self.raw_size)
            .finish_non_exhaustive()
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
