//! What the operator console does that had no endpoint yet: an operator's own work list and
//! queue, a ticket's classification, phone calls logged by hand, a citizen's appointments.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use sportello_domain::Tier;
use sportello_service::console::{Classification, LoggedCall};
use sportello_service::counter::BookingView;
use sportello_service::tickets::{EntryView, TicketView};
use uuid::Uuid;

use crate::AppState;
use crate::auth::CurrentUser;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{ApiJson, ApiPath, ApiQuery};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/me/work", get(my_work))
        .route("/me/queue", get(queue))
        .route("/tickets/{id}/classification", put(classify))
        .route("/tickets/{id}/calls", post(log_call))
        .route("/citizens/{id}/appointments", get(appointments))
}

/// Tickets, in the order given.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TicketList {
    pub items: Vec<TicketView>,
}

/// The caller's tickets that still need work, most urgent first: SLA breached, then at risk,
/// then by the nearest deadline; paused clocks (waiting for the citizen) last.
#[utoipa::path(get, path = "/api/v1/me/work", tag = "tickets", security(("bearer" = [])),
    responses((status = 200, body = TicketList), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn my_work(
    State(s): State<AppState>,
    CurrentUser(actor): CurrentUser,
) -> ApiResult<Json<TicketList>> {
    Ok(Json(TicketList {
        items: s.app.my_work(&actor).await?,
    }))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct QueueQuery {
    /// `front_office` or `back_office`; default: every tier the caller works.
    pub tier: Option<String>,
}

/// Unassigned tickets of the caller's tiers that still need work, most urgent first, each with
/// `waiting_reason` (why nobody has it yet).
#[utoipa::path(get, path = "/api/v1/me/queue", tag = "tickets", security(("bearer" = [])), params(QueueQuery),
    responses((status = 200, body = TicketList), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn queue(
    State(s): State<AppState>,
    CurrentUser(actor): CurrentUser,
    ApiQuery(q): ApiQuery<QueueQuery>,
) -> ApiResult<Json<TicketList>> {
    let tier = match q.tier.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        Some(t) => Some(Tier::parse(t).map_err(|e| ApiError::invalid("tier", e.to_string()))?),
        None => None,
    };
    Ok(Json(TicketList {
        items: s.app.waiting_queue(&actor, tier).await?,
    }))
}

/// Changes a ticket's category, measure or priority (absent fields stay; `""` removes a
/// category or measure); the timeline says what changed.
#[utoipa::path(put, path = "/api/v1/tickets/{id}/classification", tag = "tickets", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "ticket id")), request_body = Classification,
    responses((status = 200, body = TicketView), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 422, body = Problem)))]
pub async fn classify(
    State(s): State<AppState>,
    CurrentUser(actor): CurrentUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(input): ApiJson<Classification>,
) -> ApiResult<Json<TicketView>> {
    Ok(Json(s.app.set_classification(&actor, id, input).await?))
}

/// Logs a phone call on a ticket's timeline (a call the switchboard did not report on this
/// ticket); a reached citizen counts as an answer for the SLA.
#[utoipa::path(post, path = "/api/v1/tickets/{id}/calls", tag = "phone", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "ticket id")), request_body = LoggedCall,
    responses((status = 201, body = EntryView), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn log_call(
    State(s): State<AppState>,
    CurrentUser(actor): CurrentUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(input): ApiJson<LoggedCall>,
) -> ApiResult<(StatusCode, Json<EntryView>)> {
    Ok((
        StatusCode::CREATED,
        Json(s.app.log_call(&actor, id, input).await?),
    ))
}

/// Bookings.
#[derive(Serialize, utoipa::ToSchema)]
pub struct BookingList {
    pub items: Vec<BookingView>,
}

/// A citizen's counter appointments and walk-ins, newest first.
#[utoipa::path(get, path = "/api/v1/citizens/{id}/appointments", tag = "counter", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "citizen id")),
    responses((status = 200, body = BookingList), (status = 404, body = Problem)))]
pub async fn appointments(
    State(s): State<AppState>,
    CurrentUser(actor): CurrentUser,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<BookingList>> {
    Ok(Json(BookingList {
        items: s.app.citizen_appointments(&actor, id).await?,
    }))
}
