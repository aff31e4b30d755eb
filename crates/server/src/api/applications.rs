//! `/api/v1/applications`: the back office's applications (pratiche) from request to
//! payment — create, list, read, transitions, documents, payments — and the links between
//! tickets and applications.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use sportello_service::applications::{
    ApplicationPage, ApplicationQuery, ApplicationView, DocumentUpdate, LinkView, NewApplication,
    NewLink, NewPayment, TicketApplications,
};
use sportello_service::tickets::TransitionRequest;
use uuid::Uuid;

use crate::AppState;
use crate::auth::CurrentUser;
use crate::error::{ApiResult, Problem};
use crate::extract::{ApiJson, ApiPath, ApiQuery};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/applications", post(create).get(list))
        .route("/applications/{id}", get(read))
        .route("/applications/{id}/transitions", post(transition))
        .route("/applications/{id}/documents/{name}", post(mark_document))
        .route("/applications/{id}/payments", post(record_payment))
        .route("/tickets/{id}/links", post(link).get(links))
        .route("/citizens/{id}/applications", get(of_citizen))
}

/// Opens an application with the measure's documents checklist and the ISEE/DSU pre-check
/// warnings (back office, supervisors, admins).
#[utoipa::path(post, path = "/api/v1/applications", tag = "applications", security(("bearer" = [])), request_body = NewApplication,
    responses((status = 201, body = ApplicationView), (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create(
    State(s): State<AppState>,
    CurrentUser(actor): CurrentUser,
    ApiJson(input): ApiJson<NewApplication>,
) -> ApiResult<(StatusCode, Json<ApplicationView>)> {
    Ok((
        StatusCode::CREATED,
        Json(s.app.create_application(&actor, input).await?),
    ))
}

/// Applications, newest first, by citizen, measure and status (any operator).
#[utoipa::path(get, path = "/api/v1/applications", tag = "applications", security(("bearer" = [])), params(ApplicationQuery),
    responses((status = 200, body = ApplicationPage), (status = 422, body = Problem)))]
pub async fn list(
    State(s): State<AppState>,
    CurrentUser(actor): CurrentUser,
    ApiQuery(q): ApiQuery<ApplicationQuery>,
) -> ApiResult<Json<ApplicationPage>> {
    Ok(Json(s.app.list_applications(&actor, &q).await?))
}

/// One application with its documents, history, payments, linked tickets and monitoring.
#[utoipa::path(get, path = "/api/v1/applications/{id}", tag = "applications", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "application id")),
    responses((status = 200, body = ApplicationView), (status = 404, body = Problem)))]
pub async fn read(
    State(s): State<AppState>,
    CurrentUser(actor): CurrentUser,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<ApplicationView>> {
    Ok(Json(s.app.get_application(&actor, id).await?))
}

/// Moves an application through the workflow; 409 for a move the workflow does not allow,
/// 422 when a refusal or withdrawal comes without a reason.
#[utoipa::path(post, path = "/api/v1/applications/{id}/transitions", tag = "applications", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "application id")), request_body = TransitionRequest,
    responses((status = 200, body = ApplicationView), (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn transition(
    State(s): State<AppState>,
    CurrentUser(actor): CurrentUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(req): ApiJson<TransitionRequest>,
) -> ApiResult<Json<ApplicationView>> {
    Ok(Json(s.app.transition_application(&actor, id, req).await?))
}

/// Marks a document of the checklist received (or missing again).
#[utoipa::path(post, path = "/api/v1/applications/{id}/documents/{name}", tag = "applications", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "application id"), ("name" = String, Path, description = "document name from the checklist")),
    request_body = DocumentUpdate,
    responses((status = 200, body = ApplicationView), (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn mark_document(
    State(s): State<AppState>,
    CurrentUser(actor): CurrentUser,
    ApiPath((id, name)): ApiPath<(Uuid, String)>,
    ApiJson(input): ApiJson<DocumentUpdate>,
) -> ApiResult<Json<ApplicationView>> {
    Ok(Json(
        s.app
            .mark_application_document(&actor, id, &name, input)
            .await?,
    ))
}

/// Records one instalment paid; the answer is the application with the new `payment`.
#[utoipa::path(post, path = "/api/v1/applications/{id}/payments", tag = "applications", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "application id")), request_body = NewPayment,
    responses((status = 201, body = ApplicationView), (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn record_payment(
    State(s): State<AppState>,
    CurrentUser(actor): CurrentUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(input): ApiJson<NewPayment>,
) -> ApiResult<(StatusCode, Json<ApplicationView>)> {
    Ok((
        StatusCode::CREATED,
        Json(s.app.record_payment(&actor, id, input).await?),
    ))
}

/// Links a ticket to an application (201; 200 when the link already existed).
#[utoipa::path(post, path = "/api/v1/tickets/{id}/links", tag = "applications", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "ticket id")), request_body = NewLink,
    responses((status = 201, body = LinkView), (status = 200, body = LinkView), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn link(
    State(s): State<AppState>,
    CurrentUser(actor): CurrentUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(input): ApiJson<NewLink>,
) -> ApiResult<(StatusCode, Json<LinkView>)> {
    let v = s.app.link_ticket_application(&actor, id, input).await?;
    let status = if v.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(v)))
}

/// The applications linked to a ticket.
#[utoipa::path(get, path = "/api/v1/tickets/{id}/links", tag = "applications", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "ticket id")),
    responses((status = 200, body = TicketApplications), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn links(
    State(s): State<AppState>,
    CurrentUser(actor): CurrentUser,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<TicketApplications>> {
    Ok(Json(s.app.ticket_applications(&actor, id).await?))
}

/// A citizen's applications, for the citizen view ("where is my application?").
#[utoipa::path(get, path = "/api/v1/citizens/{id}/applications", tag = "applications", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "citizen id")),
    responses((status = 200, body = ApplicationPage), (status = 404, body = Problem)))]
pub async fn of_citizen(
    State(s): State<AppState>,
    CurrentUser(actor): CurrentUser,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<ApplicationPage>> {
    Ok(Json(s.app.citizen_applications(&actor, id).await?))
}
