//! Signing in and out of the console. The sign-in form is bound to the browser that loaded it
//! by a nonce cookie and an HMAC of it in the form (there is no session to bind it to yet), so
//! another site cannot sign an operator into an account of its choosing.

use axum::extract::{FromRequest, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine;
use maud::html;
use serde::Deserialize;
use sportello_service::ServiceError;

use super::i18n::Lang;
use super::page::{self, Html, Nav, Notice};
use super::session::{
    LOGIN_COOKIE, Posted, cookie, forbidden, keys_of, lang_of, safe_next, same_origin, set_cookie,
};
use crate::AppState;
use crate::auth::SESSION_COOKIE;

#[derive(Deserialize, Default)]
pub struct LoginQuery {
    expired: Option<String>,
    out: Option<String>,
    next: Option<String>,
}

fn new_nonce() -> Result<String, ServiceError> {
    let mut b = [0u8; 24];
    getrandom::fill(&mut b).map_err(|e| ServiceError::Internal(format!("no randomness: {e}")))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b))
}

async fn render(
    state: &AppState,
    parts: &Parts,
    lang: Lang,
    status: StatusCode,
    notice: Option<Notice>,
    username: &str,
    next: Option<&str>,
) -> Response {
    let keys = match keys_of(parts) {
        Ok(k) => k,
        Err(e) => return page::error_page(lang, None, e),
    };
    // A fresh nonce per form shown; its cookie only goes back to /login.
    let nonce = match new_nonce() {
        Ok(n) => n,
        Err(e) => return page::error_page(lang, None, e),
    };
    let csrf = match keys.login_csrf(&nonce).await {
        Ok(c) => c,
        Err(e) => return page::error_page(lang, None, e),
    };
    let body = html! {
        form class="login card" method="post" action="/login" {
            input type="hidden" name="csrf" value=(csrf);
            @if let Some(n) = next {
                input type="hidden" name="next" value=(n);
            }
            p {
                label for="username" { (lang.t("Nome utente", "Username")) }
                input id="username" name="username" type="text" autocomplete="username" required
                    autocapitalize="none" spellcheck="false" value=(username) autofocus;
            }
            p {
                label for="password" { (lang.t("Password", "Password")) }
                input id="password" name="password" type="password" autocomplete="current-password" required;
            }
            p { button type="submit" class="primary" { (lang.t("Accedi", "Sign in")) } }
        }
    };
    let mut res = Html(
        status,
        page::frame(
            lang,
            None,
            Nav::None,
            lang.t("Accesso alla console", "Sign in to the console"),
            notice.as_ref(),
            "login",
            body,
        ),
    )
    .into_response();
    res.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(state, LOGIN_COOKIE, &nonce, "/login", Some(3600)),
    );
    res
}

/// The sign-in page; a signed-in operator goes straight to work.
pub async fn form(
    State(state): State<AppState>,
    Query(q): Query<LoginQuery>,
    req: Request,
) -> Response {
    let (parts, _) = req.into_parts();
    let lang = lang_of(&parts);
    if let Some(t) = cookie(&parts, SESSION_COOKIE).filter(|t| !t.is_empty())
        && state.app.authenticate(t).await.is_ok()
    {
        return Redirect::to("/").into_response();
    }
    let notice = if q.expired.is_some() {
        Some(Notice::Error(
            lang.t(
                "La sessione è scaduta o è stata chiusa: accedi di nuovo.",
                "Your session has expired or was ended: please sign in again.",
            )
            .into(),
        ))
    } else if q.out.is_some() {
        Some(Notice::Ok(
            lang.t("Sei uscito dalla console.", "You have signed out.")
                .into(),
        ))
    } else {
        None
    };
    let next = q.next.as_deref().and_then(safe_next);
    render(&state, &parts, lang, StatusCode::OK, notice, "", next).await
}

#[derive(Deserialize)]
pub struct Credentials {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf: String,
    next: Option<String>,
}

/// Checks the credentials; on success sets the session cookie and lands on the work list.
pub async fn submit(State(state): State<AppState>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let lang = lang_of(&parts);
    if !same_origin(&parts) {
        return forbidden(
            lang,
            lang.t(
                "La richiesta viene da un altro sito ed è stata rifiutata.",
                "The request came from another site and was refused.",
            ),
        );
    }
    let keys = match keys_of(&parts) {
        Ok(k) => k,
        Err(e) => return page::error_page(lang, None, e),
    };
    let nonce = cookie(&parts, LOGIN_COOKIE).unwrap_or("").to_owned();
    let req = Request::from_parts(parts.clone(), body);
    let Ok(axum::Form(c)) = axum::Form::<Credentials>::from_request(req, &state).await else {
        return page::message_page(
            lang,
            StatusCode::BAD_REQUEST,
            lang.t("Modulo non valido", "Invalid form"),
            lang.t(
                "Il modulo di accesso non è leggibile.",
                "The sign-in form could not be read.",
            ),
        );
    };
    if !keys.verify_login(&nonce, &c.csrf).await {
        return forbidden(
            lang,
            lang.t(
                "Il modulo di accesso è scaduto o non viene da questa console: ricarica la pagina di accesso e riprova.",
                "The sign-in form has expired or did not come from this console: reload the sign-in page and try again.",
            ),
        );
    }
    let next = c.next.as_deref().and_then(safe_next);
    match state.app.login(&c.username, &c.password).await {
        Ok(s) => {
            let max_age = (s.expires_at - chrono::Utc::now()).num_seconds().max(0);
            let mut headers = HeaderMap::new();
            headers.append(
                header::SET_COOKIE,
                set_cookie(&state, SESSION_COOKIE, &s.token, "/", Some(max_age)),
            );
            headers.append(
                header::SET_COOKIE,
                set_cookie(&state, LOGIN_COOKIE, "", "/login", Some(0)),
            );
            (headers, Redirect::to(next.unwrap_or("/"))).into_response()
        }
        Err(ServiceError::BadCredentials) | Err(ServiceError::Validation(_)) => {
            render(
                &state,
                &parts,
                lang,
                StatusCode::UNAUTHORIZED,
                Some(Notice::Error(
                    lang.t(
                        "Nome utente o password errati.",
                        "Wrong username or password.",
                    )
                    .into(),
                )),
                &c.username,
                next,
            )
            .await
        }
        Err(e) => page::error_page(lang, None, e),
    }
}

#[derive(Deserialize)]
pub struct Empty {}

/// Signs out: the token stops working everywhere at once and the cookie is cleared.
pub async fn logout(State(state): State<AppState>, posted: Posted<Empty>) -> Response {
    let lang = posted.web.lang;
    if let Err(e) = state.app.logout(&posted.web.token).await {
        return page::error_page(lang, None, e);
    }
    let mut res = Redirect::to("/login?out=1").into_response();
    res.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(&state, SESSION_COOKIE, "", "/", Some(0)),
    );
    res
}
