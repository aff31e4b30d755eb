//! The phone channel: the switchboards' webhooks (native JSON with a bearer integration token,
//! and Zammad's generic CTI with the token in the path), the call log and the call-back queue.

use axum::body::Bytes;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use chrono::Utc;
use sportello_service::phone::sportello_phone::zammad::{ok_body, unauthorized_body};
use sportello_service::phone::sportello_phone::{
    IntegrationKind, parse_cti_form, parse_cti_json, parse_native,
};
use sportello_service::phone::{
    CallNote, CallPage, CallQuery, CallbackAttempt, CallbackPage, CallbackQuery, CallbackView,
    IngestReport,
};
use sportello_service::tickets::EntryView;
use sportello_service::{ServiceError, error::FieldError};
use uuid::Uuid;

use crate::AppState;
use crate::api::tickets::Count;
use crate::auth::CurrentUser;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{ApiJson, ApiPath, ApiQuery};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/channels/phone/events", post(native_events))
        .route("/channels/phone/cti/{token}", post(zammad_cti))
        .route("/calls", get(list_calls))
        .route("/calls/count", get(count_calls))
        .route("/calls/{id}/notes", post(add_call_note))
        .route("/callbacks", get(list_callbacks))
        .route("/callbacks/{ticket_id}/attempts", post(record_attempt))
}

fn bad_token() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
        "Authentication required",
        "send the integration token from [[phone.integrations]] as 'Authorization: Bearer <token>'",
    )
}

/// Call events from a switchboard (docs/phone-webhook.schema.json): one event or a batch of up
/// to 500, accepted or refused as a whole. Authenticated with a native integration's token.
#[utoipa::path(post, path = "/api/v1/channels/phone/events", tag = "phone", security(("bearer" = [])),
    request_body(content = Object, description = "one event or an array of events, see docs/phone-webhook.schema.json"),
    responses((status = 200, body = IngestReport), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 422, body = Problem)))]
pub async fn native_events(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<IngestReport>> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim().to_owned())
        .ok_or_else(bad_token)?;
    let integration = s
        .app
        .config()
        .phone
        .authenticate(IntegrationKind::Native, &presented)
        .ok_or_else(bad_token)?;
    let events = parse_native(&body, &integration.name).map_err(|e| {
        if e.field == "body" && e.problem.starts_with("not valid JSON") {
            ApiError::bad_request("malformed-json", e.to_string())
        } else {
            ServiceError::Validation(vec![FieldError {
                field: e.path(),
                message: e.problem,
            }])
            .into()
        }
    })?;
    Ok(Json(s.app.ingest_call_events(&events).await?))
}

fn zammad(status: StatusCode, body: serde_json::Value) -> Response {
    (status, Json(body)).into_response()
}

/// Zammad's generic CTI (`newCall`, `answer`, `hangup`; form-encoded or JSON), answered as
/// Zammad answers: 200 `{}`, 401 for a bad token, 422 `{"error":"Invalid direction!"}`.
#[utoipa::path(post, path = "/api/v1/channels/phone/cti/{token}", tag = "phone",
    params(("token" = String, Path, description = "the zammad_cti integration's token")),
    responses((status = 200, description = "accepted: {}"), (status = 401, description = "bad token"),
        (status = 422, description = "invalid event, {\"error\": \"...\"}")))]
pub async fn zammad_cti(
    State(s): State<AppState>,
    Path(token): Path<String>,
    req: Request,
) -> Response {
    let Some(integration) = s
        .app
        .config()
        .phone
        .authenticate(IntegrationKind::ZammadCti, &token)
    else {
        return zammad(StatusCode::UNAUTHORIZED, unauthorized_body());
    };
    let source = integration.name.clone();
    let is_json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("json"));
    let received = Utc::now();
    let parsed = if is_json {
        match Bytes::from_request(req, &()).await {
            Ok(body) => parse_cti_json(&body, &source, received),
            Err(e) => return zammad(e.status(), serde_json::json!({ "error": e.body_text() })),
        }
    } else {
        match Form::<Vec<(String, String)>>::from_request(req, &()).await {
            Ok(Form(pairs)) => parse_cti_form(&pairs, &source, received),
            Err(e) => return zammad(e.status(), serde_json::json!({ "error": e.body_text() })),
        }
    };
    let event = match parsed {
        Ok(event) => event,
        Err(e) => {
            let status =
                StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::UNPROCESSABLE_ENTITY);
            return zammad(status, e.response_body());
        }
    };
    match s.app.ingest_call_events(std::slice::from_ref(&event)).await {
        Ok(_) => zammad(StatusCode::OK, ok_body()),
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// The call log, newest first, one page at a time.
#[utoipa::path(get, path = "/api/v1/calls", tag = "phone", security(("bearer" = [])), params(CallQuery),
    responses((status = 200, body = CallPage), (status = 401, body = Problem), (status = 422, body = Problem)))]
pub async fn list_calls(
    State(s): State<AppState>,
    CurrentUser(actor): CurrentUser,
    ApiQuery(q): ApiQuery<CallQuery>,
) -> ApiResult<Json<CallPage>> {
    Ok(Json(s.app.list_calls(&actor, &q).await?))
}

/// Counts the calls matching the same filters as the log.
#[utoipa::path(get, path = "/api/v1/calls/count", tag = "phone", security(("bearer" = [])), params(CallQuery),
    responses((status = 200, body = Count), (status = 401, body = Problem), (status = 422, body = Problem)))]
pub async fn count_calls(
    State(s): State<AppState>,
    CurrentUser(actor): CurrentUser,
    ApiQuery(q): ApiQuery<CallQuery>,
) -> ApiResult<Json<Count>> {
    Ok(Json(Count {
        count: s.app.count_calls(&actor, &q).await?,
    }))
}

/// Adds a note (and optionally the outcome) about a call to the call's ticket.
#[utoipa::path(post, path = "/api/v1/calls/{id}/notes", tag = "phone", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "call id")), request_body = CallNote,
    responses((status = 201, body = EntryView), (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 422, body = Problem)))]
pub async fn add_call_note(
    State(s): State<AppState>,
    CurrentUser(actor): CurrentUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(input): ApiJson<CallNote>,
) -> ApiResult<(StatusCode, Json<EntryView>)> {
    Ok((
        StatusCode::CREATED,
        Json(s.app.add_call_note(&actor, id, input).await?),
    ))
}

/// The call-back queue: open call-backs by deadline, or done ones.
#[utoipa::path(get, path = "/api/v1/callbacks", tag = "phone", security(("bearer" = [])), params(CallbackQuery),
    responses((status = 200, body = CallbackPage), (status = 401, body = Problem), (status = 422, body = Problem)))]
pub async fn list_callbacks(
    State(s): State<AppState>,
    CurrentUser(actor): CurrentUser,
    ApiQuery(q): ApiQuery<CallbackQuery>,
) -> ApiResult<Json<CallbackPage>> {
    Ok(Json(s.app.list_callbacks(&actor, &q).await?))
}

/// Records an attempt to call back; `reached` (or `close`) finishes the call-back and resolves
/// its ticket.
#[utoipa::path(post, path = "/api/v1/callbacks/{ticket_id}/attempts", tag = "phone", security(("bearer" = [])),
    params(("ticket_id" = Uuid, Path, description = "the call-back ticket")), request_body = CallbackAttempt,
    responses((status = 200, body = CallbackView), (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 422, body = Problem)))]
pub async fn record_attempt(
    State(s): State<AppState>,
    CurrentUser(actor): CurrentUser,
    ApiPath(ticket_id): ApiPath<Uuid>,
    ApiJson(input): ApiJson<CallbackAttempt>,
) -> ApiResult<Json<CallbackView>> {
    Ok(Json(
        s.app
            .record_callback_attempt(&actor, ticket_id, input)
            .await?,
    ))
}
