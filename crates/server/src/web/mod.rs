//! The operator console: server-rendered pages for the operators' day — sign-in, my work and
//! the queue, the ticket with its timeline and actions, citizens, the counter desk and the
//! prepared answers — with two small scripts (keyboard shortcuts, live refresh, templates).
//!
//! Pages are written with maud, whose `html!` escapes every value it splices in (see
//! docs/CONSOLE.md for why). Every response carries a strict Content-Security-Policy; every
//! state change is a POST with a CSRF token bound to the session (see `session`). The
//! console only calls the same `App` use cases as the JSON API.

mod applications;
mod citizens;
mod counter;
pub mod i18n;
mod knowledge;
mod login;
pub mod page;
pub mod session;
mod ticket;
mod timeline;
mod work;

use std::sync::Arc;

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use sportello_service::App;

use crate::AppState;
use i18n::Lang;
use session::{Keys, LANG_COOKIE};

/// The console's policy: our own scripts, styles and images only; no plugins, no framing, no
/// form posting elsewhere. E-mail HTML is shown in a sandboxed `srcdoc` frame, which inherits
/// this policy, so even markup the sanitiser missed could not run a script or load a remote
/// image.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
connect-src 'self'; font-src 'self'; frame-src 'self'; object-src 'none'; base-uri 'none'; \
form-action 'self'; frame-ancestors 'none'";

const CONSOLE_CSS: &str = include_str!("../../assets/console.css");
const CONSOLE_JS: &str = include_str!("../../assets/console.js");
const MAIL_CSS: &str = include_str!("../../assets/console-mail.css");

/// Every console route.
pub fn router(app: &App) -> Router<AppState> {
    let keys = Arc::new(Keys::new(app));
    Router::new()
        .route("/", get(work::page))
        .route("/work/live", get(work::live))
        .route("/presence", post(work::presence))
        .route("/queue/{id}/take", post(work::take))
        .route("/login", get(login::form).post(login::submit))
        .route("/logout", post(login::logout))
        .route("/tickets/{id}", get(ticket::page))
        .route("/tickets/{id}/reply", post(ticket::reply))
        .route("/tickets/{id}/note", post(ticket::note))
        .route("/tickets/{id}/status", post(ticket::status))
        .route("/tickets/{id}/classification", post(ticket::classify))
        .route("/tickets/{id}/escalate", post(ticket::escalate))
        .route("/tickets/{id}/call", post(ticket::call))
        .route("/tickets/{id}/callback", post(ticket::callback))
        .route("/tickets/{id}/book", post(ticket::book))
        .route("/citizens", get(citizens::search))
        .route("/citizens/{id}", get(citizens::page))
        .route("/counter", get(counter::page))
        .route("/counter/bookings/{id}/check-in", post(counter::check_in))
        .route("/counter/call-next", post(counter::call_next))
        .route("/counter/bookings/{id}/visit", post(counter::visit))
        .route("/knowledge", get(knowledge::page))
        .route(
            "/console/console.css",
            get(|| async { asset("text/css; charset=utf-8", CONSOLE_CSS) }),
        )
        .route(
            "/console/console.js",
            get(|| async { asset("text/javascript; charset=utf-8", CONSOLE_JS) }),
        )
        .route(
            "/console/mail.css",
            get(|| async { asset("text/css; charset=utf-8", MAIL_CSS) }),
        )
        .layer(axum::middleware::from_fn(console_layer))
        .layer(Extension(keys))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut res = (StatusCode::OK, body).into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    res
}

/// `?lang=` switches the language and a session cookie remembers it; every console response
/// gets the security headers, and pages (which show personal data) are never cached.
async fn console_layer(mut req: Request, next: Next) -> Response {
    let chosen = req.uri().query().and_then(|q| {
        q.split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == "lang")
            .and_then(|(_, v)| Lang::parse(v))
    });
    if let Some(l) = chosen {
        req.extensions_mut().insert(l);
    }
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    if let Some(l) = chosen
        && let Ok(v) = HeaderValue::from_str(&format!(
            "{LANG_COOKIE}={}; Path=/; HttpOnly; SameSite=Lax",
            l.code()
        ))
    {
        h.append(header::SET_COOKIE, v);
    }
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // Not `no-referrer`: with it browsers send `Origin: null` on form posts, and the origin
    // check could no longer tell our own forms from another site's.
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "permissions-policy",
        HeaderValue::from_static("camera=(), microphone=(), geolocation=()"),
    );
    let is_html = h
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if is_html || !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}
