//! Entity for the `prepared_answers` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "prepared_answers")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub slug: String,
    /// `it` or `en`.
    pub lang: String,
    pub measure: Option<String>,
    pub topic: String,
    pub title: String,
    pub subject: String,
    #[sea_orm(column_type = "Text")]
    pub body: String,
    pub active: bool,
    /// Title and body folded for case- and accent-insensitive search.
    #[sea_orm(column_type = "Text")]
    pub search_text: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub updated_by: Option<Uuid>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
