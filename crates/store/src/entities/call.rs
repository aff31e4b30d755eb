//! Entity for the `calls` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "calls")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub source: String,
    pub call_id: String,
    pub direction: String,
    pub outcome: Option<String>,
    pub from_party: Option<String>,
    pub to_party: Option<String>,
    /// E.164 number of the citizen's end of the call.
    pub citizen_number: Option<String>,
    pub citizen_id: Option<Uuid>,
    pub ticket_id: Option<Uuid>,
    pub callback_id: Option<Uuid>,
    pub operator_id: Option<Uuid>,
    pub extension: Option<String>,
    pub queue: Option<String>,
    pub started_at: DateTimeUtc,
    pub answered_at: Option<DateTimeUtc>,
    pub ended_at: Option<DateTimeUtc>,
    pub duration_secs: Option<i32>,
    pub talk_secs: Option<i32>,
    pub result: Option<String>,
    /// The serialised call record (JSON).
    #[sea_orm(column_type = "Text")]
    pub record: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
