//! Entity for the `callbacks` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "callbacks")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub ticket_id: Uuid,
    pub number: String,
    /// The number while open, NULL once done (unique: one open call-back per number).
    pub open_number: Option<String>,
    pub citizen_id: Option<Uuid>,
    /// `open` or `done`.
    pub state: String,
    pub missed_count: i32,
    pub call_attempts: i32,
    pub manual_attempts: i32,
    pub first_missed_at: DateTimeUtc,
    pub last_missed_at: DateTimeUtc,
    pub deadline: DateTimeUtc,
    pub done_at: Option<DateTimeUtc>,
    pub done_reason: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
