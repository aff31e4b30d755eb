//! `/api/v1/citizens`: register, search, and read with their tickets.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use sportello_service::citizens::{CitizenDetail, CitizenView, NewCitizen};
use uuid::Uuid;

use crate::AppState;
use crate::auth::CurrentUser;
use crate::error::{ApiResult, Problem};
use crate::extract::{ApiJson, ApiPath, ApiQuery};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/citizens", post(create).get(search))
        .route("/citizens/{id}", get(read))
}

/// Registers a citizen.
#[utoipa::path(post, path = "/api/v1/citizens", tag = "citizens", security(("bearer" = [])), request_body = NewCitizen,
    responses((status = 201, body = CitizenView), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create(
    State(s): State<AppState>,
    CurrentUser(actor): CurrentUser,
    ApiJson(input): ApiJson<NewCitizen>,
) -> ApiResult<(StatusCode, Json<CitizenView>)> {
    Ok((
        StatusCode::CREATED,
        Json(s.app.create_citizen(&actor, input).await?),
    ))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct SearchQuery {
    /// Codice fiscale, e-mail, phone number, or part of the name.
    pub q: String,
    /// At most this many results (1–100, default 20).
    pub limit: Option<u64>,
}

/// Search results.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CitizenList {
    pub items: Vec<CitizenView>,
}

/// Searches citizens.
#[utoipa::path(get, path = "/api/v1/citizens", tag = "citizens", security(("bearer" = [])), params(SearchQuery),
    responses((status = 200, body = CitizenList), (status = 422, body = Problem)))]
pub async fn search(
    State(s): State<AppState>,
    CurrentUser(actor): CurrentUser,
    ApiQuery(q): ApiQuery<SearchQuery>,
) -> ApiResult<Json<CitizenList>> {
    Ok(Json(CitizenList {
        items: s
            .app
            .search_citizens(&actor, &q.q, q.limit.unwrap_or(20))
            .await?,
    }))
}

/// A citizen with their tickets.
#[utoipa::path(get, path = "/api/v1/citizens/{id}", tag = "citizens", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "citizen id")),
    responses((status = 200, body = CitizenDetail), (status = 404, body = Problem)))]
pub async fn read(
    State(s): State<AppState>,
    CurrentUser(actor): CurrentUser,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<CitizenDetail>> {
    Ok(Json(s.app.get_citizen(&actor, id).await?))
}
