//! Liveness and readiness probes for load balancers and orchestrators.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

/// The process is alive.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, description = "alive")))]
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// The process can serve: the database answers (503 otherwise). Each mailbox's IMAP fetcher
/// and the SMTP relay are reported too; when one of them is down the status is `degraded` but
/// the answer stays 200, since the instance still serves operators.
#[utoipa::path(get, path = "/readyz", tag = "health", responses((status = 200, description = "ready, or degraded (a mailbox or the SMTP relay is down)"), (status = 503, description = "the database is unreachable")))]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let r = state.app.readiness().await;
    let code = if r.is_ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        code,
        Json(json!({
            "status": r.status,
            "checks": {
                "database": r.database,
                "smtp": r.smtp,
                "mailboxes": r.mailboxes,
            }
        })),
    )
}
