//! Entity for the `application_monitoring` table (post-payment checks).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "application_monitoring")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub application_id: Uuid,
    /// 1-based position in the application's schedule.
    pub seq: i32,
    pub due_on: Date,
    /// `scheduled`, `claimed`, `ticketed` or `cancelled`.
    pub state: String,
    pub claimed_at: Option<DateTimeUtc>,
    pub ticket_id: Option<Uuid>,
    /// True once the check needs nothing more from the scheduler (ticketed or cancelled).
    pub done: bool,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
