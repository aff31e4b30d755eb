//! `/api/v1/users`: accounts (administrators).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use sportello_service::auth::{NewUser, UserUpdate, UserView};
use uuid::Uuid;

use crate::AppState;
use crate::auth::CurrentUser;
use crate::error::{ApiResult, Problem};
use crate::extract::{ApiJson, ApiPath};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/users", post(create).get(list))
        .route("/users/{id}", get(read).patch(update))
}

/// Creates an account.
#[utoipa::path(post, path = "/api/v1/users", tag = "users", security(("bearer" = [])), request_body = NewUser,
    responses((status = 201, body = UserView), (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create(
    State(s): State<AppState>,
    CurrentUser(actor): CurrentUser,
    ApiJson(input): ApiJson<NewUser>,
) -> ApiResult<(StatusCode, Json<UserView>)> {
    Ok((
        StatusCode::CREATED,
        Json(s.app.create_user(&actor, input).await?),
    ))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct UserList {
    pub items: Vec<UserView>,
}

/// Lists accounts.
#[utoipa::path(get, path = "/api/v1/users", tag = "users", security(("bearer" = [])),
    responses((status = 200, body = UserList), (status = 403, body = Problem)))]
pub async fn list(
    State(s): State<AppState>,
    CurrentUser(actor): CurrentUser,
) -> ApiResult<Json<UserList>> {
    Ok(Json(UserList {
        items: s.app.list_users(&actor).await?,
    }))
}

/// One account.
#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "users", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "user id")),
    responses((status = 200, body = UserView), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn read(
    State(s): State<AppState>,
    CurrentUser(actor): CurrentUser,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<UserView>> {
    Ok(Json(s.app.get_user(&actor, id).await?))
}

/// Changes an account: name, roles, active, password.
#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "users", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "user id")), request_body = UserUpdate,
    responses((status = 200, body = UserView), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn update(
    State(s): State<AppState>,
    CurrentUser(actor): CurrentUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(input): ApiJson<UserUpdate>,
) -> ApiResult<Json<UserView>> {
    Ok(Json(s.app.update_user(&actor, id, input).await?))
}
