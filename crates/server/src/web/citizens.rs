//! `/citizens?q=` searches citizens by codice fiscale, name, phone or e-mail; `/citizens/{id}`
//! shows one citizen with every contact across channels (tickets, calls), their counter
//! appointments and, where the back office records them, their applications.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::html;
use serde::Deserialize;
use sportello_service::phone::CallQuery;

use super::i18n;
use super::page::{self, Html, Nav, Notice};
use super::session::{Web, WebId};
use crate::AppState;

#[derive(Deserialize, Default)]
pub struct SearchQuery {
    q: Option<String>,
}

pub async fn search(
    State(state): State<AppState>,
    Query(sq): Query<SearchQuery>,
    web: Web,
) -> Response {
    let lang = web.lang;
    let q = sq.q.unwrap_or_default();
    let (results, notice) = if q.trim().is_empty() {
        (None, None)
    } else {
        match state.app.search_citizens(&web.actor, &q, 50).await {
            Ok(r) => (Some(r), None),
            Err(e) => (None, Some(Notice::Error(page::error_text(lang, &e)))),
        }
    };
    let body = html! {
        form method="get" action="/citizens" class="row card" role="search" {
            label for="citizen-q" { (lang.t("Codice fiscale, nome, telefono o e-mail", "Tax code, name, phone or e-mail")) }
            input id="citizen-q" name="q" type="search" value=(q) required minlength="2" autocomplete="off";
            button type="submit" class="primary" { (lang.t("Cerca", "Search")) }
        }
        @if let Some(list) = &results {
            @if list.is_empty() {
                p class="empty" role="status" { (lang.t("Nessun cittadino trovato.", "No citizen found.")) }
            } @else {
                table class="worklist" id="citizen-results" {
                    caption { (lang.t("Risultati", "Results")) " (" (list.len()) ")" }
                    thead { tr {
                        th scope="col" { (lang.t("Nome", "Name")) }
                        th scope="col" { (lang.t("Codice fiscale", "Tax code")) }
                        th scope="col" { "E-mail" }
                        th scope="col" { (lang.t("Telefono", "Phone")) }
                    } }
                    tbody {
                        @for c in list {
                            tr {
                                td { a class="ticket-link" href={ "/citizens/" (c.id) } { (c.name) } }
                                td { (c.codice_fiscale.clone().unwrap_or_default()) }
                                td { (c.emails.join(", ")) }
                                td { (c.phones.join(", ")) }
                            }
                        }
                    }
                }
            }
        }
    };
    let status = match &notice {
        Some(_) => StatusCode::UNPROCESSABLE_ENTITY,
        None => StatusCode::OK,
    };
    Html(
        status,
        page::frame(
            lang,
            Some(&web),
            Nav::Citizens,
            lang.t("Cittadini", "Citizens"),
            notice.as_ref(),
            "citizens",
            body,
        ),
    )
    .into_response()
}

pub async fn page(State(state): State<AppState>, WebId(id): WebId, web: Web) -> Response {
    let lang = web.lang;
    let c = match state.app.get_citizen(&web.actor, id).await {
        Ok(c) => c,
        Err(e) => return page::error_page(lang, Some(&web), e),
    };
    let appointments = match state.app.citizen_appointments(&web.actor, id).await {
        Ok(a) => a,
        Err(e) => return page::error_page(lang, Some(&web), e),
    };
    let calls = state
        .app
        .list_calls(
            &web.actor,
            &CallQuery {
                citizen_id: Some(id),
                ticket_id: None,
                direction: None,
                outcome: None,
                from: None,
                to: None,
                limit: Some(50),
                cursor: None,
            },
        )
        .await
        .map(|p| p.items)
        .unwrap_or_default();
    let tax = state.app.taxonomy();
    let tz = web.tz();
    let body = html! {
        dl class="summary" {
            dt { (lang.t("Codice fiscale", "Tax code")) }
            dd { (c.citizen.codice_fiscale.clone().unwrap_or_else(|| "—".into())) }
            dt { "E-mail" }
            dd { @if c.citizen.emails.is_empty() { "—" } @else { (c.citizen.emails.join(", ")) } }
            dt { (lang.t("Telefono", "Phone")) }
            dd { @if c.citizen.phones.is_empty() { "—" } @else { (c.citizen.phones.join(", ")) } }
            dt { (lang.t("Registrato il", "Registered")) }
            dd { (i18n::when(lang, tz, c.citizen.created_at)) }
        }
        section aria-labelledby="c-tickets-h" {
            h2 id="c-tickets-h" { (lang.t("Richieste (tutti i canali)", "Requests (every channel)")) " (" (c.tickets.len()) ")" }
            @if c.tickets.is_empty() {
                p class="empty" { (lang.t("Nessuna richiesta.", "No requests.")) }
            } @else {
                table class="worklist" {
                    caption class="sr-only" { (lang.t("Richieste del cittadino, le più recenti per prime", "The citizen's requests, newest first")) }
                    thead { tr {
                        th scope="col" { (lang.t("Richiesta", "Request")) }
                        th scope="col" { (lang.t("Canale", "Channel")) }
                        th scope="col" { (lang.t("Categoria", "Category")) }
                        th scope="col" { (lang.t("Stato", "Status")) }
                        th scope="col" { (lang.t("Aperta il", "Opened")) }
                    } }
                    tbody {
                        @for t in &c.tickets {
                            tr {
                                td { a class="ticket-link" href={ "/tickets/" (t.id) } { span class="number" { (t.number) } " " (t.subject) } }
                                td { (i18n::channel(lang, t.channel.as_str())) }
                                td { @match &t.category { Some(cat) => { (i18n::taxonomy_label(lang, &tax.categories, cat)) } None => { "—" } } }
                                td { (i18n::badge("status", t.status.as_str(), i18n::status(lang, t.status.as_str()))) }
                                td { (i18n::when(lang, tz, t.created_at)) }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="c-calls-h" {
            h2 id="c-calls-h" { (lang.t("Telefonate dal centralino", "Calls from the switchboard")) " (" (calls.len()) ")" }
            @if calls.is_empty() {
                p class="empty" { (lang.t("Nessuna telefonata registrata dal centralino.", "No call reported by the switchboard.")) }
            } @else {
                table class="worklist" {
                    caption class="sr-only" { (lang.t("Telefonate del cittadino", "The citizen's calls")) }
                    thead { tr {
                        th scope="col" { (lang.t("Quando", "When")) }
                        th scope="col" { (lang.t("Direzione", "Direction")) }
                        th scope="col" { (lang.t("Esito", "Outcome")) }
                        th scope="col" { (lang.t("Durata", "Duration")) }
                        th scope="col" { (lang.t("Richiesta", "Request")) }
                    } }
                    tbody {
                        @for call in &calls {
                            tr {
                                td { (i18n::when(lang, tz, call.started_at)) }
                                td { @if call.direction == "inbound" { (lang.t("ricevuta", "inbound")) } @else { (lang.t("effettuata", "outbound")) } }
                                td { (call_outcome(lang, call.outcome.as_deref())) }
                                td { @match call.talk_secs { Some(s) => { (s / 60) " min " (s % 60) " s" } None => { "—" } } }
                                td { @match call.ticket_id { Some(t) => { a href={ "/tickets/" (t) } { (lang.t("apri", "open")) } } None => { "—" } } }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="c-app-h" {
            h2 id="c-app-h" { (lang.t("Appuntamenti allo sportello", "Counter appointments")) " (" (appointments.len()) ")" }
            @if appointments.is_empty() {
                p class="empty" { (lang.t("Nessun appuntamento.", "No appointments.")) }
            } @else {
                table class="worklist" {
                    caption class="sr-only" { (lang.t("Appuntamenti del cittadino", "The citizen's appointments")) }
                    thead { tr {
                        th scope="col" { (lang.t("Giorno", "Day")) }
                        th scope="col" { (lang.t("Ora", "Time")) }
                        th scope="col" { (lang.t("Stato", "State")) }
                        th scope="col" { (lang.t("Numero in coda", "Queue number")) }
                        th scope="col" { (lang.t("Richiesta", "Request")) }
                    } }
                    tbody {
                        @for b in &appointments {
                            tr {
                                td { (i18n::day(lang, &b.date)) }
                                td { @if b.walk_in { (lang.t("senza appuntamento", "walk-in")) } @else { (b.local_start.clone().unwrap_or_default()) } }
                                td { (i18n::badge("booking", &b.state, i18n::booking_state(lang, &b.state))) }
                                td { (b.queue_number.clone().unwrap_or_else(|| "—".into())) }
                                td { @match b.ticket_id { Some(t) => { a href={ "/tickets/" (t) } { (lang.t("apri", "open")) } } None => { "—" } } }
                            }
                        }
                    }
                }
            }
        }
        (super::applications::section(&state, &web, id).await)
    };
    Html(
        StatusCode::OK,
        page::frame(
            lang,
            Some(&web),
            Nav::Citizens,
            &c.citizen.name,
            None,
            "citizen",
            body,
        ),
    )
    .into_response()
}

fn call_outcome(lang: i18n::Lang, outcome: Option<&str>) -> &'static str {
    match outcome {
        Some("answered") => lang.t("risposta", "answered"),
        Some("missed") => lang.t("persa", "missed"),
        Some("abandoned") => lang.t("abbandonata", "abandoned"),
        Some("voicemail") => lang.t("segreteria", "voicemail"),
        _ => lang.t("in corso", "ringing"),
    }
}
