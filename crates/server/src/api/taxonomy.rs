//! `/api/v1/taxonomy`: the category and measure lists.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use sportello_domain::taxonomy::{TaxonomyEntry, TaxonomyKind};
use sportello_service::taxonomy::{NewTaxonomyEntry, Taxonomy};

use crate::AppState;
use crate::auth::CurrentUser;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{ApiJson, ApiPath};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/taxonomy", get(list))
        .route("/taxonomy/{kind}", post(add))
}

/// Categories and measures with their Italian and English labels.
#[utoipa::path(get, path = "/api/v1/taxonomy", tag = "taxonomy", security(("bearer" = [])),
    responses((status = 200, body = Taxonomy), (status = 401, body = Problem)))]
pub async fn list(State(s): State<AppState>, CurrentUser(_): CurrentUser) -> Json<Taxonomy> {
    Json(s.app.taxonomy())
}

/// Adds a category (`kind` = `categories`) or a measure (`measures`).
#[utoipa::path(post, path = "/api/v1/taxonomy/{kind}", tag = "taxonomy", security(("bearer" = [])),
    params(("kind" = String, Path, description = "categories or measures")), request_body = NewTaxonomyEntry,
    responses((status = 201, body = Object), (status = 403, body = Problem), (status = 409, body = Problem)))]
pub async fn add(
    State(s): State<AppState>,
    CurrentUser(actor): CurrentUser,
    ApiPath(kind): ApiPath<String>,
    ApiJson(input): ApiJson<NewTaxonomyEntry>,
) -> ApiResult<(StatusCode, Json<TaxonomyEntry>)> {
    let kind = match kind.as_str() {
        "categories" => TaxonomyKind::Category,
        "measures" => TaxonomyKind::Measure,
        _ => {
            return Err(ApiError::invalid(
                "kind",
                "must be 'categories' or 'measures'",
            ));
        }
    };
    Ok((
        StatusCode::CREATED,
        Json(s.app.add_taxonomy_entry(&actor, kind, input).await?),
    ))
}
