//! Entity for the `mail_quarantine` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "mail_quarantine")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub mailbox: String,
    pub uid_validity: Option<i64>,
    pub uid: Option<i64>,
    #[sea_orm(column_type = "Text")]
    pub reason: String,
    /// SHA-256 of `raw`, hex.
    pub digest: String,
    #[sea_orm(column_type = "Blob")]
    pub raw: Vec<u8>,
    pub size: i64,
    /// `held` or `imported`.
    pub state: String,
    pub attempts: i32,
    #[sea_orm(column_type = "Text", nullable)]
    pub last_error: Option<String>,
    pub ticket_id: Option<Uuid>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

impl std::fmt::Debug for Model {
    /// The raw message is personal data: only its size is shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("mail_quarantine::Model")
            .field("id", &self.id)
            .field("mailbox", &self.mailbox)
            .field("uid", &self.uid)
            .field("reason", &self.reason)
            .field("state", &self.state)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
