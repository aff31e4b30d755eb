//! `/api/v1/audit`: the audit trail (supervisors and administrators).

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use sportello_service::audit::AuditRecord;
use uuid::Uuid;

use crate::AppState;
use crate::auth::CurrentUser;
use crate::error::{ApiResult, Problem};
use crate::extract::ApiQuery;

pub fn router() -> Router<AppState> {
    Router::new().route("/audit", get(list))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct AuditQuery {
    /// `ticket`, `citizen`, `user`, ...
    pub entity_type: Option<String>,
    pub entity_id: Option<Uuid>,
    /// At most this many records (1–500, default 100).
    pub limit: Option<u64>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AuditList {
    pub items: Vec<AuditRecord>,
}

/// Who did what to an entity, newest first.
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", security(("bearer" = [])), params(AuditQuery),
    responses((status = 200, body = AuditList), (status = 403, body = Problem)))]
pub async fn list(
    State(s): State<AppState>,
    CurrentUser(actor): CurrentUser,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> ApiResult<Json<AuditList>> {
    let items = s
        .app
        .audit_trail(
            &actor,
            q.entity_type.as_deref(),
            q.entity_id,
            q.limit.unwrap_or(100),
        )
        .await?;
    Ok(Json(AuditList { items }))
}
