//! Sign-in, sign-out and the current user.

use axum::extract::State;
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use sportello_service::Actor;
use sportello_service::auth::Session;

use crate::AppState;
use crate::auth::{CurrentUser, SESSION_COOKIE, token_of};
use crate::error::{ApiResult, Problem};
use crate::extract::ApiJson;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/login", post(login))
        .route("/auth/logout", post(logout))
        .route("/auth/me", get(me))
}

/// Credentials.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
}

fn cookie(state: &AppState, value: &str, max_age: i64) -> HeaderValue {
    let secure = if state.config.secure_cookies {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Signs in: returns a bearer token and sets the session cookie for the web UI.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = Session), (status = 401, body = Problem), (status = 422, body = Problem)))]
pub async fn login(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<LoginRequest>,
) -> ApiResult<Response> {
    let session = state.app.login(&req.username, &req.password).await?;
    let max_age = (session.expires_at - chrono::Utc::now())
        .num_seconds()
        .max(0);
    let mut headers = HeaderMap::new();
    headers.insert(SET_COOKIE, cookie(&state, &session.token, max_age));
    Ok((StatusCode::OK, headers, Json(session)).into_response())
}

/// Signs out: the token stops working at once and the cookie is cleared.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", security(("bearer" = [])),
    responses((status = 204), (status = 401, body = Problem)))]
pub async fn logout(
    State(state): State<AppState>,
    CurrentUser(_): CurrentUser,
    req: axum::extract::Request,
) -> ApiResult<Response> {
    let (parts, _) = req.into_parts();
    if let Some((token, _)) = token_of(&parts) {
        state.app.logout(&token).await?;
    }
    let mut headers = HeaderMap::new();
    headers.insert(SET_COOKIE, cookie(&state, "", 0));
    Ok((StatusCode::NO_CONTENT, headers).into_response())
}

/// The signed-in user.
#[utoipa::path(get, path = "/api/v1/auth/me", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = Actor), (status = 401, body = Problem)))]
pub async fn me(CurrentUser(actor): CurrentUser) -> Json<Actor> {
    Json(actor)
}
