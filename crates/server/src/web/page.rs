//! The console's page frame (header, navigation, language switch, sign-out, shortcuts help),
//! the error pages, and turning a service error into words for the operator.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};
use sportello_domain::Role;
use sportello_service::ServiceError;

use super::i18n::Lang;
use super::session::Web;

/// Which navigation entry is the current page.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Work,
    Citizens,
    Counter,
    Knowledge,
    None,
}

/// A message shown at the top of a page.
pub enum Notice {
    Ok(String),
    Error(String),
}

/// A rendered HTML page with its status.
pub struct Html(pub StatusCode, pub Markup);

impl IntoResponse for Html {
    fn into_response(self) -> Response {
        let mut res = (self.0, self.1.into_string()).into_response();
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        res
    }
}

fn notice_box(lang: Lang, notice: Option<&Notice>) -> Markup {
    html! {
        @match notice {
            Some(Notice::Ok(text)) => {
                div class="notice ok" role="status" { (text) }
            }
            Some(Notice::Error(text)) => {
                div class="notice error" role="alert" {
                    strong { (lang.t("Attenzione: ", "Attention: ")) }
                    (text)
                }
            }
            None => {}
        }
    }
}

/// The whole page around `body`.
pub fn frame(
    lang: Lang,
    web: Option<&Web>,
    nav: Nav,
    title: &str,
    notice: Option<&Notice>,
    page_id: &str,
    body: Markup,
) -> Markup {
    let item = |target: Nav, href: &'static str, label: &'static str| {
        html! {
            li {
                @if nav == target {
                    a href=(href) aria-current="page" { (label) }
                } @else {
                    a href=(href) { (label) }
                }
            }
        }
    };
    let other = lang.other();
    html! {
        (DOCTYPE)
        html lang=(lang.code()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Sportello" }
                link rel="stylesheet" href="/console/console.css";
                script src="/console/console.js" defer {}
            }
            body data-page=(page_id) {
                a class="skip" href="#main" { (lang.t("Vai al contenuto", "Skip to content")) }
                header class="top" {
                    div class="brand" {
                        a href="/" { "Sportello" }
                        span class="sub" { (lang.t("Welfare · Comune di Milano", "Welfare · City of Milan")) }
                    }
                    @if let Some(w) = web {
                        nav aria-label=(lang.t("Sezioni", "Sections")) {
                            ul {
                                (item(Nav::Work, "/", lang.t("Il mio lavoro", "My work")))
                                (item(Nav::Citizens, "/citizens", lang.t("Cittadini", "Citizens")))
                                (item(Nav::Counter, "/counter", lang.t("Sportello fisico", "Counter desk")))
                                (item(Nav::Knowledge, "/knowledge", lang.t("Risposte e informazioni", "Knowledge")))
                                @if w.actor.has(Role::Supervisor) || w.actor.has(Role::Admin) {
                                    li { a href={ "/dashboard?lang=" (lang.code()) } { (lang.t("Cruscotto", "Dashboard")) } }
                                }
                            }
                        }
                        form class="quick-search" method="get" action="/citizens" role="search" {
                            label for="quick-q" { (lang.t("Cerca cittadino", "Find a citizen")) }
                            input id="quick-q" name="q" type="search" autocomplete="off"
                                placeholder=(lang.t("codice fiscale, nome, telefono, e-mail", "tax code, name, phone, e-mail"));
                            button type="submit" { (lang.t("Cerca", "Search")) }
                        }
                    }
                    div class="account" {
                        a href={ "?lang=" (other.code()) } lang=(other.code()) hreflang=(other.code()) { (other.own_name()) }
                        @if let Some(w) = web {
                            span class="who" { (w.actor.name) }
                            form method="post" action="/logout" class="inline" {
                                input type="hidden" name="csrf" value=(w.csrf);
                                button type="submit" { (lang.t("Esci", "Sign out")) }
                            }
                        }
                    }
                }
                main id="main" tabindex="-1" {
                    h1 { (title) }
                    (notice_box(lang, notice))
                    (body)
                }
                @if web.is_some() {
                    footer {
                        details id="shortcuts" {
                            summary { (lang.t("Scorciatoie da tastiera (?)", "Keyboard shortcuts (?)")) }
                            dl class="keys" {
                                dt { kbd { "g" } " " kbd { "w" } } dd { (lang.t("Il mio lavoro", "My work")) }
                                dt { kbd { "g" } " " kbd { "c" } } dd { (lang.t("Cittadini", "Citizens")) }
                                dt { kbd { "g" } " " kbd { "d" } } dd { (lang.t("Sportello fisico", "Counter desk")) }
                                dt { kbd { "g" } " " kbd { "k" } } dd { (lang.t("Risposte e informazioni", "Knowledge")) }
                                dt { kbd { "/" } } dd { (lang.t("Cerca un cittadino", "Find a citizen")) }
                                dt { kbd { "j" } " / " kbd { "k" } } dd { (lang.t("Richiesta successiva / precedente nell'elenco", "Next / previous request in the list")) }
                                dt { kbd { "r" } } dd { (lang.t("Scrivi la risposta (pagina della richiesta)", "Write the reply (request page)")) }
                                dt { kbd { "n" } } dd { (lang.t("Scrivi una nota interna (pagina della richiesta)", "Write an internal note (request page)")) }
                                dt { kbd { "?" } } dd { (lang.t("Mostra o nasconde questo aiuto", "Show or hide this help")) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A page that only says something (errors, refusals).
pub fn message_page(lang: Lang, status: StatusCode, title: &str, text: &str) -> Response {
    let body = html! {
        p { (text) }
        p { a href="/" { (lang.t("Torna al lavoro", "Back to work")) } }
    };
    Html(
        status,
        frame(lang, None, Nav::None, title, None, "message", body),
    )
    .into_response()
}

/// The HTTP status a service error gets.
pub fn status_of(e: &ServiceError) -> StatusCode {
    match e {
        ServiceError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
        ServiceError::NotFound(_) => StatusCode::NOT_FOUND,
        ServiceError::Conflict(_) => StatusCode::CONFLICT,
        ServiceError::Unauthenticated | ServiceError::BadCredentials => StatusCode::UNAUTHORIZED,
        ServiceError::Forbidden(_) => StatusCode::FORBIDDEN,
        ServiceError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// What went wrong, for the operator. Details from the service (field names, allowed
/// transitions) are appended as they are; internal errors are logged once and never shown.
pub fn error_text(lang: Lang, e: &ServiceError) -> String {
    match e {
        ServiceError::Validation(errors) => format!(
            "{} {}",
            lang.t("Controlla i dati inseriti —", "Please check the data —"),
            errors
                .iter()
                .map(|f| format!("{}: {}", f.field, f.message))
                .collect::<Vec<_>>()
                .join("; ")
        ),
        ServiceError::NotFound(what) => {
            format!("{} ({what})", lang.t("Elemento non trovato", "Not found"))
        }
        ServiceError::Conflict(d) => format!(
            "{} {d}",
            lang.t("Operazione non possibile:", "This cannot be done:")
        ),
        ServiceError::Unauthenticated | ServiceError::BadCredentials => lang
            .t("Accedi di nuovo.", "Please sign in again.")
            .to_owned(),
        ServiceError::Forbidden(d) => format!(
            "{} ({d})",
            lang.t(
                "Non hai accesso a questa richiesta o operazione",
                "You have no access to this request or action"
            )
        ),
        ServiceError::Internal(msg) => {
            tracing::error!(error = %msg, "internal error in the console");
            lang.t(
                "Errore interno: l'errore è stato registrato; riprova più tardi.",
                "Internal error: it was logged; please try again later.",
            )
            .to_owned()
        }
    }
}

/// An error page for a failed page load (403 for another tier's ticket, 404, …).
pub fn error_page(lang: Lang, web: Option<&Web>, e: ServiceError) -> Response {
    let status = status_of(&e);
    let title = match status {
        StatusCode::FORBIDDEN => lang.t("Accesso negato", "Access denied"),
        StatusCode::NOT_FOUND => lang.t("Non trovato", "Not found"),
        _ => lang.t("Si è verificato un problema", "Something went wrong"),
    };
    let text = error_text(lang, &e);
    let body = html! {
        p { (text) }
        p { a href="/" { (lang.t("Torna al lavoro", "Back to work")) } }
    };
    Html(
        status,
        frame(lang, web, Nav::None, title, None, "message", body),
    )
    .into_response()
}
