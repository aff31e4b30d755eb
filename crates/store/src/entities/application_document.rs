//! Entity for the `application_documents` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "application_documents")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub application_id: Uuid,
    /// Document slug from the measure's checklist (`documento_identita`, `attestazione_isee`, ...).
    #[sea_orm(primary_key, auto_increment = false)]
    pub name: String,
    pub label: String,
    pub required: bool,
    pub received: bool,
    pub received_at: Option<DateTimeUtc>,
    pub position: i32,
    pub updated_by: Option<Uuid>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
