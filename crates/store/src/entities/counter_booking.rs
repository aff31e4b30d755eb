//! Entity for the `counter_bookings` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "counter_bookings")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// None for a walk-in.
    pub slot_id: Option<Uuid>,
    pub citizen_id: Uuid,
    pub ticket_id: Option<Uuid>,
    /// Local date of the visit, `YYYY-MM-DD`.
    pub day: String,
    pub walk_in: bool,
    /// `booked`, `cancelled`, `checked_in`, `called`, `visited` or `no_show`.
    pub state: String,
    pub category: Option<String>,
    pub measure: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub notes: Option<String>,
    pub queue_number: Option<String>,
    pub desk: Option<i32>,
    /// JSON of the confirmation and reminder to send.
    #[sea_orm(column_type = "Text", nullable)]
    pub notification: Option<String>,
    pub reminder_due_at: Option<DateTimeUtc>,
    pub checked_in_at: Option<DateTimeUtc>,
    pub called_at: Option<DateTimeUtc>,
    pub visited_at: Option<DateTimeUtc>,
    pub no_show_at: Option<DateTimeUtc>,
    pub cancelled_at: Option<DateTimeUtc>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

impl std::fmt::Debug for Model {
    /// Notes and the notification text are personal data: only identifiers and state are shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("counter_booking::Model")
            .field("id", &self.id)
            .field("slot_id", &self.slot_id)
            .field("ticket_id", &self.ticket_id)
            .field("day", &self.day)
            .field("state", &self.state)
            .field("queue_number", &self.queue_number)
            .finish_non_exhaustive()
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
