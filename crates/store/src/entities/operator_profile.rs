//! Entity for the `operator_profiles` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "operator_profiles")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: Uuid,
    /// JSON array of tier slugs.
    #[sea_orm(column_type = "Text")]
    pub tiers: String,
    /// JSON object skill → level.
    #[sea_orm(column_type = "Text")]
    pub skills: String,
    /// JSON object channel → capacity.
    #[sea_orm(column_type = "Text")]
    pub capacity: String,
    pub presence: String,
    pub presence_since: DateTimeUtc,
    pub last_assigned_at: Option<DateTimeUtc>,
    /// JSON array of weekly shifts; none means always on shift.
    #[sea_orm(column_type = "Text", nullable)]
    pub shifts: Option<String>,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
