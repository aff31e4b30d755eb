//! The append-only audit trail: who created, changed or viewed a ticket or citizen.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use serde::Serialize;
use sportello_domain::Role;
use sportello_store::entities::audit_log;
use uuid::Uuid;

use crate::{Actor, App, ServiceError};

/// Appends one record; called inside the transaction of the change it describes, so the
/// trail and the data never disagree. `details` must not contain personal data.
pub async fn record<C: ConnectionTrait>(
    conn: &C,
    actor: Option<Uuid>,
    action: &str,
    entity_type: &str,
    entity_id: Option<Uuid>,
    details: Option<serde_json::Value>,
) -> Result<(), sea_orm::DbErr> {
    audit_log::Entity::insert(audit_log::ActiveModel {
        at: Set(crate::util::now()),
        actor_id: Set(actor),
        action: Set(action.to_owned()),
        entity_type: Set(entity_type.to_owned()),
        entity_id: Set(entity_id),
        details: Set(details.map(|d| d.to_string())),
        ..Default::default()
    })
    .exec_without_returning(conn)
    .await?;
    Ok(())
}

/// One audit record as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditRecord {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor_id: Option<Uuid>,
    pub action: String,
    pub entity_type: String,
    pub entity_id: Option<Uuid>,
    pub details: Option<serde_json::Value>,
}

impl App {
    /// The trail of one entity, newest first (supervisors and admins only).
    pub async fn audit_trail(
        &self,
        actor: &Actor,
        entity_type: Option<&str>,
        entity_id: Option<Uuid>,
        limit: u64,
    ) -> Result<Vec<AuditRecord>, ServiceError> {
        actor.require_any(&[Role::Supervisor, Role::Admin])?;
        let mut q = audit_log::Entity::find();
        if let Some(t) = entity_type {
            q = q.filter(audit_log::Column::EntityType.eq(t));
        }
        if let Some(id) = entity_id {
            q = q.filter(audit_log::Column::EntityId.eq(id));
        }
        let rows = q
            .order_by_desc(audit_log::Column::Id)
            .limit(limit.clamp(1, 500))
            .all(&self.db().read)
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| AuditRecord {
                id: r.id,
                at: r.at,
                actor_id: r.actor_id,
                action: r.action,
                entity_type: r.entity_type,
                entity_id: r.entity_id,
                details: r.details.and_then(|d| serde_json::from_str(&d).ok()),
            })
            .collect())
    }
}
