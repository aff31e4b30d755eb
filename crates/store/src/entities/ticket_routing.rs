//! Entity for the `ticket_routing` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "ticket_routing")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub ticket_id: Uuid,
    pub rule: String,
    /// JSON object skill → minimum level.
    #[sea_orm(column_type = "Text")]
    pub skills: String,
    pub sla_policy: String,
    /// The serialized SLA clock.
    #[sea_orm(column_type = "Text")]
    pub sla_clock: String,
    pub sla_state: String,
    pub next_check_at: Option<DateTimeUtc>,
    /// JSON of the reason the ticket waits, while unassigned.
    #[sea_orm(column_type = "Text", nullable)]
    pub waiting_reason: Option<String>,
    pub enqueued_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
