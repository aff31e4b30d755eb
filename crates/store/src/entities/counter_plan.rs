//! Entity for the `counter_plans` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "counter_plans")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// ISO week, `YYYY-Www`.
    pub week: String,
    /// `proposed` or `approved`.
    pub state: String,
    /// JSON list of proposed sessions with their reasons.
    #[sea_orm(column_type = "Text")]
    pub sessions: String,
    /// JSON of what the planner looked at.
    #[sea_orm(column_type = "Text")]
    pub inputs: String,
    pub created_by: Option<Uuid>,
    pub created_at: DateTimeUtc,
    pub approved_by: Option<Uuid>,
    pub approved_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
