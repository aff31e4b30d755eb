//! "My work": the operator's tickets by SLA urgency, their presence switch, and the queue of
//! their tiers with why each ticket waits. `/work/live` is the same lists without the page
//! frame, fetched by the page's script when the dashboard websocket reports a change.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use maud::{Markup, html};
use serde::Deserialize;
use sportello_service::tickets::{TicketView, TransitionRequest};
use sportello_service::{ServiceError, taxonomy::Taxonomy};

use super::i18n::{self, Lang};
use super::page::{self, Html, Nav, Notice};
use super::session::{Posted, Web, WebId};
use crate::AppState;

#[derive(Deserialize, Default)]
pub struct Done {
    pub done: Option<String>,
}

/// The SLA cell of a ticket: its state and the time to its nearest deadline.
pub fn sla_cell(lang: Lang, t: &TicketView) -> Markup {
    let now = Utc::now();
    html! {
        @if let Some(s) = &t.sla {
            (i18n::badge("sla", &s.state, i18n::sla_state(lang, &s.state)))
            @let due = [s.first_response_due, s.next_response_due, s.resolution_due].into_iter().flatten().min();
            @if let (Some(due), true) = (due, s.state != "paused" && s.state != "resolved") {
                " "
                span class="left" { (i18n::time_left(lang, due, now)) }
            }
        } @else {
            span class="muted" { (lang.t("non ancora smistata", "not routed yet")) }
        }
    }
}

fn topic(lang: Lang, tax: &Taxonomy, t: &TicketView) -> Markup {
    html! {
        @if let Some(c) = &t.category {
            (i18n::taxonomy_label(lang, &tax.categories, c))
        } @else {
            span class="muted" { "—" }
        }
        @if let Some(m) = &t.measure {
            br;
            span class="measure" { (i18n::taxonomy_label(lang, &tax.measures, m)) }
        }
    }
}

fn citizen(lang: Lang, t: &TicketView) -> Markup {
    html! {
        @if let Some(c) = &t.citizen {
            a href={ "/citizens/" (c.id) } { (c.name) }
        } @else {
            span class="muted" { (lang.t("sconosciuto", "unknown")) }
        }
    }
}

async fn lists(state: &AppState, web: &Web) -> Result<Markup, ServiceError> {
    let lang = web.lang;
    let mine = state.app.my_work(&web.actor).await?;
    let queue = state.app.waiting_queue(&web.actor, None).await?;
    let tax = state.app.taxonomy();
    Ok(html! {
        section aria-labelledby="mine-h" {
            h2 id="mine-h" { (lang.t("Le mie richieste", "My requests")) " (" (mine.len()) ")" }
            @if mine.is_empty() {
                p class="empty" { (lang.t("Nessuna richiesta assegnata a te in questo momento.", "No request is assigned to you right now.")) }
            } @else {
                table class="worklist" id="my-work" {
                    caption class="sr-only" { (lang.t("Richieste assegnate a me, le più urgenti per prime", "Requests assigned to me, most urgent first")) }
                    thead { tr {
                        th scope="col" { (lang.t("Richiesta", "Request")) }
                        th scope="col" { (lang.t("Canale", "Channel")) }
                        th scope="col" { (lang.t("Cittadino", "Citizen")) }
                        th scope="col" { (lang.t("Categoria", "Category")) }
                        th scope="col" { (lang.t("Stato", "Status")) }
                        th scope="col" { (lang.t("Tempo rimasto", "Time left")) }
                    } }
                    tbody {
                        @for t in &mine {
                            tr data-ticket=(t.id) {
                                td {
                                    a class="ticket-link" href={ "/tickets/" (t.id) } {
                                        span class="number" { (t.number) } " " (t.subject)
                                    }
                                }
                                td { (i18n::channel(lang, t.channel.as_str())) }
                                td { (citizen(lang, t)) }
                                td { (topic(lang, &tax, t)) }
                                td { (i18n::badge("status", t.status.as_str(), i18n::status(lang, t.status.as_str()))) }
                                td { (sla_cell(lang, t)) }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="queue-h" {
            h2 id="queue-h" { (lang.t("In coda, non assegnate", "Waiting, unassigned")) " (" (queue.len()) ")" }
            @if queue.is_empty() {
                p class="empty" { (lang.t("Nessuna richiesta in attesa.", "Nothing is waiting.")) }
            } @else {
                table class="worklist" id="queue" {
                    caption class="sr-only" { (lang.t("Richieste in attesa di assegnazione, le più urgenti per prime", "Requests waiting to be assigned, most urgent first")) }
                    thead { tr {
                        th scope="col" { (lang.t("Richiesta", "Request")) }
                        th scope="col" { (lang.t("Canale", "Channel")) }
                        th scope="col" { (lang.t("Livello", "Tier")) }
                        th scope="col" { (lang.t("Categoria", "Category")) }
                        th scope="col" { (lang.t("Perché attende", "Why it waits")) }
                        th scope="col" { (lang.t("Tempo rimasto", "Time left")) }
                        th scope="col" { (lang.t("Azione", "Action")) }
                    } }
                    tbody {
                        @for t in &queue {
                            tr data-ticket=(t.id) {
                                td {
                                    a class="ticket-link" href={ "/tickets/" (t.id) } {
                                        span class="number" { (t.number) } " " (t.subject)
                                    }
                                }
                                td { (i18n::channel(lang, t.channel.as_str())) }
                                td { (i18n::tier(lang, t.tier.as_str())) }
                                td { (topic(lang, &tax, t)) }
                                td { (i18n::waiting_reason(lang, t.waiting_reason.as_ref().unwrap_or(&serde_json::Value::Null))) }
                                td { (sla_cell(lang, t)) }
                                td {
                                    form method="post" action={ "/queue/" (t.id) "/take" } class="inline" {
                                        input type="hidden" name="csrf" value=(web.csrf);
                                        button type="submit" aria-label={ (lang.t("Prendi in carico", "Take")) " " (t.number) } {
                                            (lang.t("Prendi in carico", "Take"))
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    })
}

async fn render(
    state: &AppState,
    web: &Web,
    notice: Option<Notice>,
    status: StatusCode,
) -> Response {
    let lang = web.lang;
    let me = match state.app.list_operators(&web.actor).await {
        Ok(ops) => ops.into_iter().find(|o| o.user_id == web.actor.id),
        Err(e) => return page::error_page(lang, Some(web), e),
    };
    let presence = me
        .as_ref()
        .map(|o| o.presence.as_str().to_owned())
        .unwrap_or_else(|| "offline".into());
    let lists = match lists(state, web).await {
        Ok(m) => m,
        Err(e) => return page::error_page(lang, Some(web), e),
    };
    let body = html! {
        section class="presence card" aria-labelledby="presence-h" {
            h2 id="presence-h" { (lang.t("La mia presenza", "My presence")) }
            p {
                (lang.t("Ora sei: ", "You are now: "))
                strong id="presence-now" { (i18n::presence(lang, &presence)) }
                @if presence == "break" || presence == "offline" {
                    " — " (lang.t("non ricevi nuove richieste.", "you receive no new requests."))
                }
            }
            form method="post" action="/presence" class="row" {
                input type="hidden" name="csrf" value=(web.csrf);
                label for="presence-state" { (lang.t("Cambia stato", "Change status")) }
                select id="presence-state" name="state" {
                    @for s in ["available", "break", "offline"] {
                        option value=(s) selected[s == presence] { (i18n::presence(lang, s)) }
                    }
                }
                button type="submit" { (lang.t("Aggiorna", "Update")) }
            }
        }
        p id="live-status" class="muted" role="status" aria-live="polite" {}
        div id="work-live" { (lists) }
    };
    Html(
        status,
        page::frame(
            lang,
            Some(web),
            Nav::Work,
            lang.t("Il mio lavoro", "My work"),
            notice.as_ref(),
            "work",
            body,
        ),
    )
    .into_response()
}

/// `/`: the work list (signed-out visitors are sent to `/login` by the extractor).
pub async fn page(
    State(state): State<AppState>,
    web: Web,
    axum::extract::Query(d): axum::extract::Query<Done>,
) -> Response {
    let notice = d
        .done
        .as_deref()
        .and_then(|k| i18n::done(web.lang, k))
        .map(|t| Notice::Ok(t.into()));
    render(&state, &web, notice, StatusCode::OK).await
}

/// The lists alone, for the live refresh.
pub async fn live(State(state): State<AppState>, web: Web) -> Response {
    match lists(&state, &web).await {
        Ok(m) => Html(StatusCode::OK, m).into_response(),
        Err(e) => (page::status_of(&e), page::error_text(web.lang, &e)).into_response(),
    }
}

#[derive(Deserialize)]
pub struct PresenceForm {
    #[serde(default)]
    state: String,
}

/// Sets the operator's own presence; break and offline hand unstarted work back.
pub async fn presence(State(state): State<AppState>, p: Posted<PresenceForm>) -> Response {
    let web = p.web;
    match state
        .app
        .set_presence(&web.actor, web.actor.id, &p.form.state)
        .await
    {
        Ok(_) => Redirect::to("/?done=presence").into_response(),
        Err(e) => {
            let status = page::status_of(&e);
            render(
                &state,
                &web,
                Some(Notice::Error(page::error_text(web.lang, &e))),
                status,
            )
            .await
        }
    }
}

#[derive(Deserialize)]
pub struct NoFields {}

/// Takes a waiting ticket: it becomes assigned to the operator.
pub async fn take(
    State(state): State<AppState>,
    WebId(id): WebId,
    p: Posted<NoFields>,
) -> Response {
    let web = p.web;
    let req = TransitionRequest {
        to: "assigned".into(),
        reason: None,
    };
    match state.app.transition(&web.actor, id, req).await {
        Ok(_) => Redirect::to(&format!("/tickets/{id}?done=taken")).into_response(),
        Err(e) => {
            let status = page::status_of(&e);
            render(
                &state,
                &web,
                Some(Notice::Error(page::error_text(web.lang, &e))),
                status,
            )
            .await
        }
    }
}
