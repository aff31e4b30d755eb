//! The e-mail channel: operator replies, attachment downloads, mailbox status and the
//! quarantine of messages that could not be imported.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use sportello_service::mail::{
    MailStatus, NewReply, QuarantinePage, QuarantineQuery, QuarantineRetry, ReplyView,
};
use uuid::Uuid;

use crate::AppState;
use crate::auth::CurrentUser;
use crate::error::{ApiResult, Problem};
use crate::extract::{ApiJson, ApiPath, ApiQuery};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/tickets/{id}/replies", post(reply))
        .route("/attachments/{id}", get(attachment))
        .route("/mail/mailboxes", get(mailboxes))
        .route("/mail/quarantine", get(quarantine))
        .route("/mail/quarantine/{id}/raw", get(quarantine_raw))
        .route("/mail/quarantine/{id}/retry", post(retry))
}

/// Replies to the ticket's citizen by e-mail. The reply is stored on the timeline and queued in
/// the outbox in one transaction (202: accepted for delivery); its entry's `meta.delivery`
/// follows the delivery (`queued`, `retrying`, `sent`, `failed`, `bounced`).
#[utoipa::path(post, path = "/api/v1/tickets/{id}/replies", tag = "mail", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "ticket id")), request_body = NewReply,
    responses((status = 202, body = ReplyView), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "closed ticket, no address to write to, or e-mail not configured"),
        (status = 422, body = Problem)))]
pub async fn reply(
    State(s): State<AppState>,
    CurrentUser(actor): CurrentUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(input): ApiJson<NewReply>,
) -> ApiResult<(StatusCode, Json<ReplyView>)> {
    Ok((
        StatusCode::ACCEPTED,
        Json(s.app.reply_by_email(&actor, id, input).await?),
    ))
}

/// `attachment; filename="..."` with an ASCII fallback and the exact UTF-8 name (RFC 6266).
fn content_disposition(filename: &str) -> HeaderValue {
    let fallback: String = filename
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::new();
    for b in filename.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    HeaderValue::from_str(&format!(
        "attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("attachment"))
}

/// Downloads an attachment of a message (inbound or sent) on a ticket the caller may see.
/// Always served as a download, never rendered by the browser.
#[utoipa::path(get, path = "/api/v1/attachments/{id}", tag = "mail", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "attachment id (from the entry's meta.attachments)")),
    responses((status = 200, description = "the file", content_type = "application/octet-stream"),
        (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "the file exceeded the size limit and was not stored")))]
pub async fn attachment(
    State(s): State<AppState>,
    CurrentUser(actor): CurrentUser,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Response> {
    let a = s.app.attachment(&actor, id).await?;
    let content_type = HeaderValue::from_str(&a.content_type)
        .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"));
    let mut res = a.data.into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, content_type);
    h.insert(
        header::CONTENT_DISPOSITION,
        content_disposition(&a.filename),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox; default-src 'none'"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    Ok(res)
}

/// The configured mailboxes with their fetchers' state (connected, last fetch, last error) and
/// message counts, and the outbox by state. Supervisors and admins.
#[utoipa::path(get, path = "/api/v1/mail/mailboxes", tag = "mail", security(("bearer" = [])),
    responses((status = 200, body = MailStatus), (status = 403, body = Problem)))]
pub async fn mailboxes(
    State(s): State<AppState>,
    CurrentUser(actor): CurrentUser,
) -> ApiResult<Json<MailStatus>> {
    Ok(Json(s.app.mail_status(&actor).await?))
}

/// Messages that could not be imported, newest first. Admins only.
#[utoipa::path(get, path = "/api/v1/mail/quarantine", tag = "mail", security(("bearer" = [])),
    params(QuarantineQuery),
    responses((status = 200, body = QuarantinePage), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn quarantine(
    State(s): State<AppState>,
    CurrentUser(actor): CurrentUser,
    ApiQuery(q): ApiQuery<QuarantineQuery>,
) -> ApiResult<Json<QuarantinePage>> {
    Ok(Json(s.app.list_quarantine(&actor, &q).await?))
}

/// A quarantined message exactly as it was fetched. Admins only.
#[utoipa::path(get, path = "/api/v1/mail/quarantine/{id}/raw", tag = "mail", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "quarantine id")),
    responses((status = 200, description = "the raw message", content_type = "message/rfc822"),
        (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn quarantine_raw(
    State(s): State<AppState>,
    CurrentUser(actor): CurrentUser,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Response> {
    let raw = s.app.quarantined_raw(&actor, id).await?;
    let mut res = raw.into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("message/rfc822"),
    );
    h.insert(
        header::CONTENT_DISPOSITION,
        content_disposition(&format!("{id}.eml")),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    Ok(res)
}

/// Tries to import a quarantined message again. 200 with where it went; 409 when it still
/// cannot be imported (the attempt is counted) or was imported already. Admins only.
#[utoipa::path(post, path = "/api/v1/mail/quarantine/{id}/retry", tag = "mail", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "quarantine id")),
    responses((status = 200, body = QuarantineRetry), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem)))]
pub async fn retry(
    State(s): State<AppState>,
    CurrentUser(actor): CurrentUser,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<QuarantineRetry>> {
    Ok(Json(s.app.retry_quarantined(&actor, id).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn download_names_are_safe_and_exact() {
        let v = content_disposition("domanda \"ISEE\" è/pronta.pdf");
        let s = v.to_str().unwrap();
        assert!(
            s.starts_with("attachment; filename=\"domanda _ISEE_ _/pronta.pdf\""),
            "{s}"
        );
        assert!(
            s.contains("filename*=UTF-8''domanda%20%22ISEE%22%20%C3%A8%2Fpronta.pdf"),
            "{s}"
        );
    }
}
