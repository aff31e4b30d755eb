//! `/api/v1/tickets`: create, list, count, read, transition, add entries.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use sportello_service::tickets::{
    EntryView, NewEntry, NewTicket, TicketPage, TicketQuery, TicketView, TransitionRequest,
};
use uuid::Uuid;

use crate::AppState;
use crate::auth::CurrentUser;
use crate::error::{ApiResult, Problem};
use crate::extract::{ApiJson, ApiPath, ApiQuery};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/tickets", post(create).get(list))
        .route("/tickets/count", get(count))
        .route("/tickets/{id}", get(read))
        .route("/tickets/{id}/transitions", post(transition))
        .route("/tickets/{id}/entries", post(add_entry))
}

/// Opens a ticket.
#[utoipa::path(post, path = "/api/v1/tickets", tag = "tickets", security(("bearer" = [])), request_body = NewTicket,
    responses((status = 201, body = TicketView), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn create(
    State(s): State<AppState>,
    CurrentUser(actor): CurrentUser,
    ApiJson(input): ApiJson<NewTicket>,
) -> ApiResult<(StatusCode, Json<TicketView>)> {
    Ok((
        StatusCode::CREATED,
        Json(s.app.create_ticket(&actor, input).await?),
    ))
}

/// Lists tickets of the tiers the caller may see, newest first, one page at a time.
#[utoipa::path(get, path = "/api/v1/tickets", tag = "tickets", security(("bearer" = [])), params(TicketQuery),
    responses((status = 200, body = TicketPage), (status = 401, body = Problem), (status = 422, body = Problem)))]
pub async fn list(
    State(s): State<AppState>,
    CurrentUser(actor): CurrentUser,
    ApiQuery(q): ApiQuery<TicketQuery>,
) -> ApiResult<Json<TicketPage>> {
    Ok(Json(s.app.list_tickets(&actor, &q).await?))
}

/// A count.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Count {
    pub count: u64,
}

/// Counts the tickets matching the same filters as the list.
#[utoipa::path(get, path = "/api/v1/tickets/count", tag = "tickets", security(("bearer" = [])), params(TicketQuery),
    responses((status = 200, body = Count), (status = 401, body = Problem), (status = 422, body = Problem)))]
pub async fn count(
    State(s): State<AppState>,
    CurrentUser(actor): CurrentUser,
    ApiQuery(q): ApiQuery<TicketQuery>,
) -> ApiResult<Json<Count>> {
    Ok(Json(Count {
        count: s.app.count_tickets(&actor, &q).await?,
    }))
}

/// One ticket with its timeline.
#[utoipa::path(get, path = "/api/v1/tickets/{id}", tag = "tickets", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "ticket id")),
    responses((status = 200, body = TicketView), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn read(
    State(s): State<AppState>,
    CurrentUser(actor): CurrentUser,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<TicketView>> {
    Ok(Json(s.app.get_ticket(&actor, id).await?))
}

/// Moves a ticket to another status; a move the status machine forbids is a 409 listing the
/// allowed ones.
#[utoipa::path(post, path = "/api/v1/tickets/{id}/transitions", tag = "tickets", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "ticket id")), request_body = TransitionRequest,
    responses((status = 200, body = TicketView), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn transition(
    State(s): State<AppState>,
    CurrentUser(actor): CurrentUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(req): ApiJson<TransitionRequest>,
) -> ApiResult<Json<TicketView>> {
    Ok(Json(s.app.transition(&actor, id, req).await?))
}

/// Adds an internal note to the timeline.
#[utoipa::path(post, path = "/api/v1/tickets/{id}/entries", tag = "tickets", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "ticket id")), request_body = NewEntry,
    responses((status = 201, body = EntryView), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn add_entry(
    State(s): State<AppState>,
    CurrentUser(actor): CurrentUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(req): ApiJson<NewEntry>,
) -> ApiResult<(StatusCode, Json<EntryView>)> {
    Ok((
        StatusCode::CREATED,
        Json(s.app.add_entry(&actor, id, req).await?),
    ))
}
