//! `/api/v1/answers`: prepared answers and the knowledge base — search, read, edit, and fill
//! in for a ticket.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use sportello_domain::answer::Topic;
use sportello_service::answers::{
    AnswerQuery, AnswerUpdate, AnswerView, NewAnswer, RenderedAnswer,
};
use uuid::Uuid;

use crate::AppState;
use crate::auth::CurrentUser;
use crate::error::{ApiResult, Problem};
use crate::extract::{ApiJson, ApiPath, ApiQuery};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/answers", get(list).post(create))
        .route("/answers/topics", get(list_topics))
        .route("/answers/{id}", get(read).put(update).delete(deactivate))
        .route("/answers/{id}/render", post(render))
}

/// Answers found.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AnswerList {
    pub items: Vec<AnswerView>,
}

/// Lists and searches prepared answers (active ones unless asked otherwise).
#[utoipa::path(get, path = "/api/v1/answers", tag = "answers", security(("bearer" = [])), params(AnswerQuery),
    responses((status = 200, body = AnswerList), (status = 401, body = Problem), (status = 422, body = Problem)))]
pub async fn list(
    State(s): State<AppState>,
    CurrentUser(actor): CurrentUser,
    ApiQuery(q): ApiQuery<AnswerQuery>,
) -> ApiResult<Json<AnswerList>> {
    Ok(Json(AnswerList {
        items: s.app.list_answers(&actor, &q).await?,
    }))
}

/// Topics, with their labels.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TopicList {
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<Topic>,
}

/// The topics answers are filed under.
#[utoipa::path(get, path = "/api/v1/answers/topics", tag = "answers", security(("bearer" = [])),
    responses((status = 200, body = TopicList), (status = 401, body = Problem)))]
pub async fn list_topics(
    State(s): State<AppState>,
    CurrentUser(_): CurrentUser,
) -> Json<TopicList> {
    Json(TopicList {
        items: s.app.answer_topics(),
    })
}

/// One answer.
#[utoipa::path(get, path = "/api/v1/answers/{id}", tag = "answers", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "answer id")),
    responses((status = 200, body = AnswerView), (status = 404, body = Problem)))]
pub async fn read(
    State(s): State<AppState>,
    CurrentUser(actor): CurrentUser,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<AnswerView>> {
    Ok(Json(s.app.get_answer(&actor, id).await?))
}

/// Adds an answer (supervisors and administrators). An unknown placeholder is a 422 naming it.
#[utoipa::path(post, path = "/api/v1/answers", tag = "answers", security(("bearer" = [])), request_body = NewAnswer,
    responses((status = 201, body = AnswerView), (status = 403, body = Problem), (status = 409, body = Problem),
        (status = 422, body = Problem)))]
pub async fn create(
    State(s): State<AppState>,
    CurrentUser(actor): CurrentUser,
    ApiJson(input): ApiJson<NewAnswer>,
) -> ApiResult<(StatusCode, Json<AnswerView>)> {
    Ok((
        StatusCode::CREATED,
        Json(s.app.create_answer(&actor, input).await?),
    ))
}

/// Replaces an answer's editable fields (supervisors and administrators).
#[utoipa::path(put, path = "/api/v1/answers/{id}", tag = "answers", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "answer id")), request_body = AnswerUpdate,
    responses((status = 200, body = AnswerView), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 422, body = Problem)))]
pub async fn update(
    State(s): State<AppState>,
    CurrentUser(actor): CurrentUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(input): ApiJson<AnswerUpdate>,
) -> ApiResult<Json<AnswerView>> {
    Ok(Json(s.app.update_answer(&actor, id, input).await?))
}

/// Deactivates an answer (supervisors and administrators); it is kept, and `PUT` with
/// `"active": true` brings it back.
#[utoipa::path(delete, path = "/api/v1/answers/{id}", tag = "answers", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "answer id")),
    responses((status = 200, body = AnswerView), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn deactivate(
    State(s): State<AppState>,
    CurrentUser(actor): CurrentUser,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<AnswerView>> {
    Ok(Json(s.app.deactivate_answer(&actor, id).await?))
}

/// The ticket an answer is filled in for.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct RenderRequest {
    pub ticket_id: Uuid,
}

/// Fills an answer's placeholders for a ticket the caller may see.
#[utoipa::path(post, path = "/api/v1/answers/{id}/render", tag = "answers", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "answer id")), request_body = RenderRequest,
    responses((status = 200, body = RenderedAnswer), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn render(
    State(s): State<AppState>,
    CurrentUser(actor): CurrentUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(input): ApiJson<RenderRequest>,
) -> ApiResult<Json<RenderedAnswer>> {
    Ok(Json(
        s.app.render_answer(&actor, id, input.ticket_id).await?,
    ))
}
