//! Entity for the `mail_checkpoints` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "mail_checkpoints")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub mailbox: String,
    pub uid_validity: i64,
    pub last_uid: i64,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
