//! `/counter`: the counter desk — today's appointments and walk-ins, check-in (which gives the
//! visitor a queue number), calling the next visitor to this desk, and recording the visit on
//! the ticket's timeline. The desk number comes from `?desk=` and stays in the forms' links.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;
use sportello_service::ServiceError;
use sportello_service::counter::VisitRecord;
use uuid::Uuid;

use super::i18n;
use super::page::{self, Html, Nav, Notice};
use super::session::{Posted, Web, WebId};
use crate::AppState;

#[derive(Deserialize, Default)]
pub struct DeskQuery {
    desk: Option<String>,
    done: Option<String>,
}

fn desk_of(raw: Option<&str>) -> u32 {
    raw.and_then(|d| d.trim().parse().ok())
        .filter(|d| (1..=50).contains(d))
        .unwrap_or(1)
}

async fn render(
    state: &AppState,
    web: &Web,
    desk: u32,
    notice: Option<Notice>,
    status: StatusCode,
) -> Response {
    let lang = web.lang;
    let today = match state.app.counter_today(&web.actor, None).await {
        Ok(t) => t,
        Err(e) => return page::error_page(lang, Some(web), e),
    };
    let ids: Vec<Uuid> = today.items.iter().map(|b| b.citizen_id).collect();
    let names = match state.app.citizen_names(&web.actor, &ids).await {
        Ok(n) => n,
        Err(e) => return page::error_page(lang, Some(web), e),
    };
    let tax = state.app.taxonomy();
    let csrf = &web.csrf;
    let n = &today.counts;
    let body = html! {
        form method="get" action="/counter" class="row card" {
            label for="desk" { (lang.t("Il mio sportello n.", "My desk no.")) }
            input id="desk" name="desk" type="number" min="1" max="50" value=(desk);
            button type="submit" { (lang.t("Imposta", "Set")) }
        }
        section class="card" aria-labelledby="next-h" {
            h2 id="next-h" { (lang.t("Chiama il prossimo", "Call the next visitor")) }
            p {
                (lang.t("In attesa: ", "Waiting: ")) strong { (n.waiting) }
                " · " (lang.t("prenotati non ancora arrivati: ", "booked, not yet here: ")) (n.booked)
                " · " (lang.t("ricevuti: ", "seen: ")) (n.visited)
                " · " (lang.t("assenti: ", "no-shows: ")) (n.no_show)
            }
            form method="post" action="/counter/call-next" class="inline" {
                input type="hidden" name="csrf" value=(csrf);
                input type="hidden" name="desk" value=(desk);
                button type="submit" class="primary" { (lang.t("Chiama il prossimo allo sportello ", "Call the next to desk ")) (desk) }
            }
        }
        section aria-labelledby="today-h" {
            h2 id="today-h" { (lang.t("Appuntamenti di oggi", "Today's appointments")) " — " (i18n::day(lang, &today.date)) }
            @if today.items.is_empty() {
                p class="empty" { (lang.t("Nessun appuntamento oggi.", "No appointments today.")) }
            } @else {
                table class="worklist" id="today" {
                    caption class="sr-only" { (lang.t("Appuntamenti di oggi in ordine di orario", "Today's appointments by time")) }
                    thead { tr {
                        th scope="col" { (lang.t("Ora", "Time")) }
                        th scope="col" { (lang.t("Cittadino", "Citizen")) }
                        th scope="col" { (lang.t("Argomento", "Topic")) }
                        th scope="col" { (lang.t("Stato", "State")) }
                        th scope="col" { (lang.t("Numero", "Number")) }
                        th scope="col" { (lang.t("Azioni", "Actions")) }
                    } }
                    tbody {
                        @for b in &today.items {
                            @let name = names.get(&b.citizen_id).cloned().unwrap_or_default();
                            tr data-booking=(b.id) {
                                td { @if b.walk_in { (lang.t("senza appuntamento", "walk-in")) } @else { (b.local_start.clone().unwrap_or_default()) } }
                                td { a href={ "/citizens/" (b.citizen_id) } { (name) } }
                                td {
                                    @if let Some(m) = &b.measure { (i18n::taxonomy_label(lang, &tax.measures, m)) }
                                    @else if let Some(c) = &b.category { (i18n::taxonomy_label(lang, &tax.categories, c)) }
                                    @else { "—" }
                                }
                                td {
                                    (i18n::badge("booking", &b.state, i18n::booking_state(lang, &b.state)))
                                    @if let Some(d) = b.desk { " " (lang.t("sportello ", "desk ")) (d) }
                                }
                                td { (b.queue_number.clone().unwrap_or_else(|| "—".into())) }
                                td {
                                    @if b.state == "booked" || b.state == "no_show" {
                                        form method="post" action={ "/counter/bookings/" (b.id) "/check-in" } class="inline" {
                                            input type="hidden" name="csrf" value=(csrf);
                                            input type="hidden" name="desk" value=(desk);
                                            button type="submit" aria-label={ (lang.t("Registra arrivo di ", "Check in ")) (name) } {
                                                (lang.t("Registra arrivo", "Check in"))
                                            }
                                        }
                                    }
                                    @if b.state == "called" || b.state == "checked_in" {
                                        details class="visit" {
                                            summary { (lang.t("Registra visita", "Record visit")) }
                                            form method="post" action={ "/counter/bookings/" (b.id) "/visit" } class="stack" {
                                                input type="hidden" name="csrf" value=(csrf);
                                                input type="hidden" name="desk" value=(desk);
                                                label for={ "outcome-" (b.id) } { (lang.t("Esito (obbligatorio)", "Outcome (required)")) }
                                                input id={ "outcome-" (b.id) } name="outcome" type="text" required;
                                                label for={ "info-" (b.id) } { (lang.t("Informazioni fornite", "Information given")) }
                                                textarea id={ "info-" (b.id) } name="information_given" rows="2" {}
                                                label for={ "docs-" (b.id) } { (lang.t("Documenti ricevuti (uno per riga)", "Documents received (one per line)")) }
                                                textarea id={ "docs-" (b.id) } name="documents" rows="2" {}
                                                @if !b.documents_to_bring.is_empty() {
                                                    p class="hint" { (lang.t("Da portare: ", "To bring: ")) (b.documents_to_bring.join("; ")) }
                                                }
                                                label for={ "notes-" (b.id) } { (lang.t("Note", "Notes")) }
                                                textarea id={ "notes-" (b.id) } name="notes" rows="2" {}
                                                label for={ "follow-" (b.id) } { (lang.t("Serve un seguito del back office? Scrivi il motivo", "Back-office follow-up needed? Write why")) }
                                                input id={ "follow-" (b.id) } name="follow_up" type="text";
                                                p { button type="submit" { (lang.t("Salva visita", "Save visit")) } }
                                            }
                                        }
                                    }
                                    @if let Some(t) = b.ticket_id {
                                        " " a href={ "/tickets/" (t) } { (lang.t("Richiesta", "Request")) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Html(
        status,
        page::frame(
            lang,
            Some(web),
            Nav::Counter,
            lang.t("Sportello fisico", "Counter desk"),
            notice.as_ref(),
            "counter",
            body,
        ),
    )
    .into_response()
}

pub async fn page(State(state): State<AppState>, Query(q): Query<DeskQuery>, web: Web) -> Response {
    let notice = q
        .done
        .as_deref()
        .and_then(|k| i18n::done(web.lang, k))
        .map(|t| Notice::Ok(t.into()));
    render(
        &state,
        &web,
        desk_of(q.desk.as_deref()),
        notice,
        StatusCode::OK,
    )
    .await
}

async fn outcome<T>(
    state: &AppState,
    web: &Web,
    desk: u32,
    done: &str,
    r: Result<T, ServiceError>,
) -> Response {
    match r {
        Ok(_) => Redirect::to(&format!("/counter?desk={desk}&done={done}")).into_response(),
        Err(e) => {
            let status = page::status_of(&e);
            let text = page::error_text(web.lang, &e);
            render(state, web, desk, Some(Notice::Error(text)), status).await
        }
    }
}

#[derive(Deserialize)]
pub struct DeskForm {
    desk: Option<String>,
}

pub async fn check_in(
    State(state): State<AppState>,
    WebId(id): WebId,
    p: Posted<DeskForm>,
) -> Response {
    let desk = desk_of(p.form.desk.as_deref());
    let r = state.app.counter_check_in(&p.web.actor, id).await;
    outcome(&state, &p.web, desk, "checked_in", r).await
}

pub async fn call_next(State(state): State<AppState>, p: Posted<DeskForm>) -> Response {
    let desk = desk_of(p.form.desk.as_deref());
    match state.app.counter_call_next(&p.web.actor, desk).await {
        Ok(c) if c.called.is_none() => {
            Redirect::to(&format!("/counter?desk={desk}&done=nobody")).into_response()
        }
        r => outcome(&state, &p.web, desk, "called", r).await,
    }
}

#[derive(Deserialize)]
pub struct VisitForm {
    desk: Option<String>,
    #[serde(default)]
    outcome: String,
    information_given: Option<String>,
    documents: Option<String>,
    notes: Option<String>,
    follow_up: Option<String>,
}

pub async fn visit(
    State(state): State<AppState>,
    WebId(id): WebId,
    p: Posted<VisitForm>,
) -> Response {
    let f = p.form;
    let desk = desk_of(f.desk.as_deref());
    let documents = f
        .documents
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    let input = VisitRecord {
        documents_received: documents,
        outcome: f.outcome,
        information_given: f.information_given.filter(|s| !s.trim().is_empty()),
        notes: f.notes.filter(|s| !s.trim().is_empty()),
        follow_up: f
            .follow_up
            .filter(|s| !s.trim().is_empty())
            .map(serde_json::Value::String),
    };
    let r = state
        .app
        .record_counter_visit(&p.web.actor, id, input)
        .await;
    outcome(&state, &p.web, desk, "visit", r).await
}
