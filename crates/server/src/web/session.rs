//! Who is using the console, in which language, and the checks on every form they send: the
//! session cookie (the same token as the API's), the CSRF token bound to it, and the origin.
//!
//! The CSRF token is `base64url(HMAC-SHA256(key, "csrf|" + session token))`. The key is 32
//! random bytes kept in the database, so every instance accepts every other's forms; the token
//! changes with each sign-in and is useless without the session cookie it is bound to.

use std::sync::Arc;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine;
use chrono_tz::Tz;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use sha2::Sha256;
use sportello_service::{Actor, App, ServiceError};
use tokio::sync::OnceCell;

use super::i18n::Lang;
use super::page;
use crate::AppState;
use crate::auth::SESSION_COOKIE;

/// Remembers the chosen language for the browser session.
pub const LANG_COOKIE: &str = "sportello_lang";
/// Binds the sign-in form to the browser that loaded it (no session exists yet).
pub const LOGIN_COOKIE: &str = "sportello_login";
/// The header JavaScript sends the CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// What the console computes once per server: the signing key and the office's time zone.
pub struct Keys {
    app: App,
    key: OnceCell<Vec<u8>>,
    pub tz: Tz,
}

impl Keys {
    pub fn new(app: &App) -> Keys {
        let tz = sportello_domain::calendar::BusinessCalendar::from_config(&app.config().calendar)
            .map(|c| c.timezone())
            .unwrap_or(chrono_tz::Europe::Rome);
        Keys {
            app: app.clone(),
            key: OnceCell::new(),
            tz,
        }
    }

    async fn key(&self) -> Result<&[u8], ServiceError> {
        self.key
            .get_or_try_init(|| self.app.console_signing_key())
            .await
            .map(Vec::as_slice)
    }

    async fn mac(&self, purpose: &str, value: &str) -> Result<String, ServiceError> {
        let mut m = Hmac::<Sha256>::new_from_slice(self.key().await?)
            .map_err(|e| ServiceError::Internal(format!("hmac key: {e}")))?;
        m.update(purpose.as_bytes());
        m.update(b"|");
        m.update(value.as_bytes());
        Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(m.finalize().into_bytes()))
    }

    async fn verify(&self, purpose: &str, value: &str, token: &str) -> bool {
        let Ok(key) = self.key().await else {
            return false;
        };
        let Ok(given) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token.trim())
        else {
            return false;
        };
        let Ok(mut m) = Hmac::<Sha256>::new_from_slice(key) else {
            return false;
        };
        m.update(purpose.as_bytes());
        m.update(b"|");
        m.update(value.as_bytes());
        // Constant-time comparison.
        m.verify_slice(&given).is_ok()
    }

    /// The CSRF token of a session.
    pub async fn csrf_for(&self, session_token: &str) -> Result<String, ServiceError> {
        self.mac("csrf", session_token).await
    }

    /// The token of the sign-in form loaded with this nonce.
    pub async fn login_csrf(&self, nonce: &str) -> Result<String, ServiceError> {
        self.mac("login", nonce).await
    }

    pub async fn verify_login(&self, nonce: &str, token: &str) -> bool {
        !nonce.is_empty() && self.verify("login", nonce, token).await
    }
}

/// A cookie of the request.
pub fn cookie<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// `Set-Cookie` for a console cookie: HttpOnly, SameSite=Strict, Secure when configured.
pub fn set_cookie(
    state: &AppState,
    name: &str,
    value: &str,
    path: &str,
    max_age: Option<i64>,
) -> HeaderValue {
    let secure = if state.config.secure_cookies {
        "; Secure"
    } else {
        ""
    };
    let age = max_age
        .map(|a| format!("; Max-Age={a}"))
        .unwrap_or_default();
    HeaderValue::from_str(&format!(
        "{name}={value}; Path={path}; HttpOnly; SameSite=Strict{age}{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The language of a request: `?lang=` (then remembered by the middleware), else the cookie,
/// else Italian.
pub fn lang_of(parts: &Parts) -> Lang {
    if let Some(l) = parts.extensions.get::<Lang>() {
        return *l;
    }
    cookie(parts, LANG_COOKIE)
        .and_then(Lang::parse)
        .unwrap_or_default()
}

/// The keys, installed on the console's routes by its router.
pub fn keys_of(parts: &Parts) -> Result<Arc<Keys>, ServiceError> {
    parts
        .extensions
        .get::<Arc<Keys>>()
        .cloned()
        .ok_or_else(|| ServiceError::Internal("console keys missing".into()))
}

/// A relative path to come back to after signing in; anything else is ignored.
pub fn safe_next(next: &str) -> Option<&str> {
    let ok = next.starts_with('/')
        && !next.starts_with("//")
        && !next.contains('\\')
        && !next.chars().any(char::is_control)
        && next.len() < 500
        && next != "/login";
    ok.then_some(next)
}

fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The way to the sign-in page, remembering where the operator was going.
fn to_login(parts: &Parts, expired: bool) -> String {
    let here = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let next = if parts.method == Method::GET {
        safe_next(here).filter(|n| *n != "/")
    } else {
        None
    };
    let mut q = Vec::new();
    if expired {
        q.push("expired=1".to_owned());
    }
    if let Some(n) = next {
        q.push(format!("next={}", percent_encode(n)));
    }
    if q.is_empty() {
        "/login".into()
    } else {
        format!("/login?{}", q.join("&"))
    }
}

/// A signed-in operator on a console page.
pub struct Web {
    pub actor: Actor,
    pub token: String,
    pub csrf: String,
    pub lang: Lang,
    pub keys: Arc<Keys>,
}

impl Web {
    pub fn tz(&self) -> &Tz {
        &self.keys.tz
    }
}

/// Answers a page request without a valid session: to the sign-in page, clearing a stale
/// cookie and saying the session ended.
fn signed_out(state: &AppState, parts: &Parts, had_cookie: bool) -> Response {
    let mut res = Redirect::to(&to_login(parts, had_cookie)).into_response();
    if had_cookie {
        res.headers_mut().append(
            header::SET_COOKIE,
            set_cookie(state, SESSION_COOKIE, "", "/", Some(0)),
        );
    }
    res
}

impl FromRequestParts<AppState> for Web {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let lang = lang_of(parts);
        let Some(token) = cookie(parts, SESSION_COOKIE)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
        else {
            return Err(signed_out(state, parts, false));
        };
        let actor = match state.app.authenticate(&token).await {
            Ok(a) => a,
            Err(ServiceError::Unauthenticated) => return Err(signed_out(state, parts, true)),
            Err(e) => return Err(page::error_page(lang, None, e)),
        };
        let keys = keys_of(parts).map_err(|e| page::error_page(lang, None, e))?;
        let csrf = keys
            .csrf_for(&token)
            .await
            .map_err(|e| page::error_page(lang, None, e))?;
        Ok(Web {
            actor,
            token,
            csrf,
            lang,
            keys,
        })
    }
}

/// Whether a state-changing request comes from our own pages: an `Origin` (sent by browsers
/// on every POST) must name the host the request went to, and a browser that says the request
/// is cross-site is believed. Without either, the CSRF token alone decides.
pub fn same_origin(parts: &Parts) -> bool {
    crate::auth::origin_verdict(parts) != Some(false)
}

/// A refused state change: 403 with a page that says why.
pub fn forbidden(lang: Lang, why: &'static str) -> Response {
    page::message_page(
        lang,
        StatusCode::FORBIDDEN,
        lang.t("Richiesta rifiutata", "Request refused"),
        why,
    )
}

#[derive(Deserialize)]
struct WithCsrf<T> {
    #[serde(default)]
    csrf: Option<String>,
    #[serde(flatten)]
    form: T,
}

/// A form sent from a console page by a signed-in operator, with its CSRF token (the `csrf`
/// field, or the `X-CSRF-Token` header for scripts) checked and the origin checked. Form
/// fields are strings: each handler parses them and says what is wrong.
pub struct Posted<T> {
    pub web: Web,
    pub form: T,
}

impl<T: DeserializeOwned + Send> FromRequest<AppState> for Posted<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let lang = lang_of(&parts);
        if !same_origin(&parts) {
            return Err(forbidden(
                lang,
                lang.t(
                    "La richiesta viene da un altro sito ed è stata rifiutata.",
                    "The request came from another site and was refused.",
                ),
            ));
        }
        let web = Web::from_request_parts(&mut parts, state).await?;
        let header_token = parts
            .headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let req = Request::from_parts(parts, body);
        let axum::Form(WithCsrf { csrf, form }) =
            match axum::Form::<WithCsrf<T>>::from_request(req, state).await {
                Ok(f) => f,
                Err(e) => {
                    return Err(page::message_page(
                        lang,
                        StatusCode::BAD_REQUEST,
                        lang.t("Modulo non valido", "Invalid form"),
                        &e.body_text(),
                    ));
                }
            };
        let given = header_token.or(csrf).unwrap_or_default();
        if given.is_empty() || !web.keys.verify("csrf", &web.token, &given).await {
            return Err(forbidden(
                lang,
                lang.t(
                    "Il modulo è scaduto o non è stato inviato da questa console: ricarica la pagina e riprova.",
                    "The form has expired or was not sent from this console: reload the page and try again.",
                ),
            ));
        }
        Ok(Posted { web, form })
    }
}

/// The `{id}` of a console path; anything but a UUID is a "not found" page.
pub struct WebId(pub uuid::Uuid);

impl<S: Send + Sync> FromRequestParts<S> for WebId {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        match axum::extract::Path::<uuid::Uuid>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(id)) => Ok(WebId(id)),
            Err(_) => {
                let lang = lang_of(parts);
                Err(page::message_page(
                    lang,
                    StatusCode::NOT_FOUND,
                    lang.t("Non trovato", "Not found"),
                    lang.t(
                        "L'indirizzo non indica nessuna pagina della console.",
                        "The address names no page of the console.",
                    ),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn only_local_paths_are_followed_after_sign_in() {
        assert_eq!(safe_next("/tickets/1"), Some("/tickets/1"));
        assert_eq!(safe_next("//evil.example"), None);
        assert_eq!(safe_next("https://evil.example"), None);
        assert_eq!(safe_next("/\\evil.example"), None);
        assert_eq!(safe_next("/login"), None);
    }
}
