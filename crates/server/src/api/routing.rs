//! Routing: operators' profiles, presence and shifts; rules and dry runs; manual assignment and
//! escalation.

use axum::extract::State;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use sportello_service::routing::{DryRun, OperatorView, RulesDocument, Shift};
use sportello_service::tickets::TicketView;
use uuid::Uuid;

use crate::AppState;
use crate::auth::CurrentUser;
use crate::error::{ApiResult, Problem};
use crate::extract::{ApiJson, ApiPath};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/users/{id}/routing", put(set_profile))
        .route("/users/{id}/presence", put(set_presence))
        .route("/users/{id}/shifts", put(set_shifts))
        .route("/routing/operators", get(operators))
        .route("/routing/dry-run", post(dry_run))
        .route("/routing/rules", get(rules).put(replace_rules))
        .route("/tickets/{id}/assign", post(assign))
        .route("/tickets/{id}/escalate", post(escalate))
}

/// Sets an operator's tiers, skills (level 1–5) and capacity per channel.
#[utoipa::path(put, path = "/api/v1/users/{id}/routing", tag = "routing", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "user id")), request_body = Object,
    responses((status = 200, body = OperatorView), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn set_profile(
    State(s): State<AppState>,
    CurrentUser(actor): CurrentUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(profile): ApiJson<sportello_routing::RoutingProfile>,
) -> ApiResult<Json<OperatorView>> {
    Ok(Json(s.app.set_routing_profile(&actor, id, profile).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct PresenceRequest {
    /// `available`, `busy`, `wrap_up`, `break` or `offline`.
    pub state: String,
}

/// Sets presence; going on break or offline hands unstarted work back to the queue.
#[utoipa::path(put, path = "/api/v1/users/{id}/presence", tag = "routing", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "user id")), request_body = PresenceRequest,
    responses((status = 200, body = OperatorView), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn set_presence(
    State(s): State<AppState>,
    CurrentUser(actor): CurrentUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(req): ApiJson<PresenceRequest>,
) -> ApiResult<Json<OperatorView>> {
    Ok(Json(s.app.set_presence(&actor, id, &req.state).await?))
}

/// Sets weekly shifts (none: always on shift).
#[utoipa::path(put, path = "/api/v1/users/{id}/shifts", tag = "routing", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "user id")), request_body = Vec<Shift>,
    responses((status = 200, body = OperatorView), (status = 422, body = Problem)))]
pub async fn set_shifts(
    State(s): State<AppState>,
    CurrentUser(actor): CurrentUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(shifts): ApiJson<Vec<Shift>>,
) -> ApiResult<Json<OperatorView>> {
    Ok(Json(s.app.set_shifts(&actor, id, shifts).await?))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct OperatorList {
    pub items: Vec<OperatorView>,
}

/// Operators with their presence, shift and load.
#[utoipa::path(get, path = "/api/v1/routing/operators", tag = "routing", security(("bearer" = [])),
    responses((status = 200, body = OperatorList)))]
pub async fn operators(
    State(s): State<AppState>,
    CurrentUser(actor): CurrentUser,
) -> ApiResult<Json<OperatorList>> {
    Ok(Json(OperatorList {
        items: s.app.list_operators(&actor).await?,
    }))
}

/// Which rule a ticket like this would hit (nothing is stored).
#[utoipa::path(post, path = "/api/v1/routing/dry-run", tag = "routing", security(("bearer" = [])),
    request_body = Object, responses((status = 200, body = DryRun), (status = 422, body = Problem)))]
pub async fn dry_run(
    State(s): State<AppState>,
    CurrentUser(actor): CurrentUser,
    ApiJson(facts): ApiJson<sportello_routing::TicketFacts>,
) -> ApiResult<Json<DryRun>> {
    Ok(Json(s.app.routing_dry_run(&actor, facts)?))
}

/// The routing file in force (TOML).
#[utoipa::path(get, path = "/api/v1/routing/rules", tag = "routing", security(("bearer" = [])),
    responses((status = 200, body = RulesDocument), (status = 403, body = Problem)))]
pub async fn rules(
    State(s): State<AppState>,
    CurrentUser(actor): CurrentUser,
) -> ApiResult<Json<RulesDocument>> {
    Ok(Json(s.app.routing_rules(&actor).await?))
}

/// Replaces the routing file after validating it whole; errors name the rule and field.
#[utoipa::path(put, path = "/api/v1/routing/rules", tag = "routing", security(("bearer" = [])),
    request_body = RulesDocument,
    responses((status = 200, body = RulesDocument), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn replace_rules(
    State(s): State<AppState>,
    CurrentUser(actor): CurrentUser,
    ApiJson(doc): ApiJson<RulesDocument>,
) -> ApiResult<Json<RulesDocument>> {
    Ok(Json(s.app.replace_routing_rules(&actor, doc).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct AssignRequest {
    pub user_id: Uuid,
}

/// Assigns a ticket by hand (supervisors).
#[utoipa::path(post, path = "/api/v1/tickets/{id}/assign", tag = "routing", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "ticket id")), request_body = AssignRequest,
    responses((status = 200, body = TicketView), (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn assign(
    State(s): State<AppState>,
    CurrentUser(actor): CurrentUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(req): ApiJson<AssignRequest>,
) -> ApiResult<Json<TicketView>> {
    Ok(Json(s.app.assign_ticket(&actor, id, req.user_id).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct EscalateRequest {
    /// The tier whose queue the ticket moves to.
    pub tier: String,
    pub reason: String,
}

/// Moves a ticket to another tier's queue with a reason.
#[utoipa::path(post, path = "/api/v1/tickets/{id}/escalate", tag = "routing", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "ticket id")), request_body = EscalateRequest,
    responses((status = 200, body = TicketView), (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn escalate(
    State(s): State<AppState>,
    CurrentUser(actor): CurrentUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(req): ApiJson<EscalateRequest>,
) -> ApiResult<Json<TicketView>> {
    Ok(Json(
        s.app.escalate(&actor, id, &req.tier, &req.reason).await?,
    ))
}
