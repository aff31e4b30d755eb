//! Entity for the `mail_attachments` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "mail_attachments")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub mail_message_id: Uuid,
    pub ticket_id: Uuid,
    #[sea_orm(column_type = "Text")]
    pub filename: String,
    pub content_type: String,
    pub size: i64,
    pub content_id: Option<String>,
    pub inline: bool,
    /// `None` when the attachment exceeded the size limit and was not kept.
    #[sea_orm(column_type = "Blob", nullable)]
    pub data: Option<Vec<u8>>,
    pub created_at: DateTimeUtc,
}

impl std::fmt::Debug for Model {
    /// File names and contents are personal data: only sizes and types are shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("mail_attachment::Model")
            .field("id", &self.id)
            .field("ticket_id", &self.ticket_id)
            .field("content_type", &self.content_type)
            .field("size", &self.size)
            .field("kept", &self.data.is_some())
            .finish_non_exhaustive()
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
