//! Who is calling: a bearer token, or the session cookie of the web UI.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{Method, header};
use sportello_service::{Actor, ServiceError};

use crate::AppState;
use crate::error::ApiError;

/// Name of the session cookie set at sign-in.
pub const SESSION_COOKIE: &str = "sportello_session";

/// The signed-in user; extracting it answers 401 when there is no valid token.
pub struct CurrentUser(pub Actor);

/// The raw token of the request, from the `Authorization` header or the session cookie.
pub fn token_of(parts: &Parts) -> Option<(String, bool)> {
    if let Some(v) = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let (scheme, token) = v.split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| (token.trim().to_owned(), false));
    }
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| (v.to_owned(), true))
}

/// What the browser says of where a request comes from: `Some(true)` from a page of the host
/// the request went to, `Some(false)` from another site (a `Sec-Fetch-Site: cross-site` is
/// believed), `None` when it says nothing (no `Origin`: not a browser, or a same-origin GET).
pub fn origin_verdict(parts: &Parts) -> Option<bool> {
    if parts
        .headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == "cross-site")
    {
        return Some(false);
    }
    let origin = parts.headers.get(header::ORIGIN)?;
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok());
    Some(match (origin.to_str().ok(), host) {
        (Some(o), Some(h)) => o.split_once("://").is_some_and(|(_, rest)| rest == h),
        _ => false,
    })
}

/// A cookie-authenticated request that changes state must come from our own pages: browsers
/// send `Origin` on such requests, and it must name the host the request was sent to.
fn same_origin(parts: &Parts) -> bool {
    matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS)
        || origin_verdict(parts) == Some(true)
}

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let (token, from_cookie) = token_of(parts).ok_or(ServiceError::Unauthenticated)?;
        if from_cookie && !same_origin(parts) {
            return Err(ServiceError::Forbidden("cross-origin request refused".into()).into());
        }
        let actor = state.app.authenticate(&token).await?;
        Ok(CurrentUser(actor))
    }
}
