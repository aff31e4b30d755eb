//! Entity for the `applications` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "applications")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub citizen_id: Uuid,
    /// Measure slug from the taxonomy.
    pub measure: String,
    pub protocol_number: Option<String>,
    pub submitted_at: DateTimeUtc,
    /// `email`, `phone`, `counter`, `web`, `paper`, `pec` or `other`.
    pub submission_channel: String,
    /// Status slug (`submitted`, `under_review`, ...).
    pub status: String,
    /// `ordinario`, `sociosanitario`, `minorenni` or `corrente`.
    pub isee_type: Option<String>,
    pub isee_value_cents: Option<i64>,
    pub dsu_protocol: Option<String>,
    pub dsu_date: Option<Date>,
    pub isee_expires_on: Option<Date>,
    #[sea_orm(column_type = "Text", nullable)]
    pub outcome_reason: Option<String>,
    pub version: i32,
    pub created_by: Option<Uuid>,
    pub updated_by: Option<Uuid>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

impl std::fmt::Debug for Model {
    /// ISEE figures, the DSU and the outcome reason are personal data: only identifiers and
    /// state are shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("application::Model")
            .field("id", &self.id)
            .field("citizen_id", &self.citizen_id)
            .field("measure", &self.measure)
            .field("status", &self.status)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
