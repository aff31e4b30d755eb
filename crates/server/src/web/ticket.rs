//! `/tickets/{id}`: the ticket, its whole timeline, the citizen's earlier tickets and
//! appointments beside it, and every action an operator takes on it — reply by e-mail (with a
//! prepared answer), internal note, status, classification, escalation, phone call or call-back
//! attempt, counter appointment. Each action is a form posted to `/tickets/{id}/…`; on success
//! the browser lands back on the ticket with a confirmation, on failure the page is shown again
//! with what went wrong and what the operator had typed.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{Duration, Utc};
use maud::{Markup, html};
use serde::Deserialize;
use sportello_domain::Tier;
use sportello_service::ServiceError;
use sportello_service::console::{Classification, LoggedCall};
use sportello_service::counter::NewBooking;
use sportello_service::mail::NewReply;
use sportello_service::phone::CallbackAttempt;
use sportello_service::tickets::{NewEntry, TicketView, TransitionRequest};
use uuid::Uuid;

use super::i18n;
use super::page::{self, Html, Nav, Notice};
use super::session::{Posted, Web, WebId};
use super::timeline;
use super::work::sla_cell;
use crate::AppState;

/// What the operator had typed, shown again when an action failed.
#[derive(Default)]
pub struct Drafts {
    reply: Option<String>,
    subject: Option<String>,
    note: Option<String>,
    reason: Option<String>,
}

#[derive(Deserialize, Default)]
pub struct PageQuery {
    done: Option<String>,
    /// The day whose counter slots the booking form lists.
    slot_date: Option<String>,
    /// A prepared answer to start the reply from (without scripts).
    answer: Option<String>,
}

fn field(label: &str, value: Markup) -> Markup {
    html! { dt { (label) } dd { (value) } }
}

struct Ctx<'a> {
    state: &'a AppState,
    web: &'a Web,
}

async fn render(
    c: Ctx<'_>,
    id: Uuid,
    notice: Option<Notice>,
    drafts: Drafts,
    status: StatusCode,
    q: &PageQuery,
) -> Response {
    let (state, web) = (c.state, c.web);
    let lang = web.lang;
    let t = match state.app.get_ticket(&web.actor, id).await {
        Ok(t) => t,
        Err(e) => return page::error_page(lang, Some(web), e),
    };
    let citizen = match t.citizen_id {
        Some(cid) => match state.app.get_citizen(&web.actor, cid).await {
            Ok(c) => Some(c),
            Err(e) => return page::error_page(lang, Some(web), e),
        },
        None => None,
    };
    let appointments = match t.citizen_id {
        Some(cid) => state
            .app
            .citizen_appointments(&web.actor, cid)
            .await
            .unwrap_or_default(),
        None => Vec::new(),
    };
    let operators = state
        .app
        .list_operators(&web.actor)
        .await
        .unwrap_or_default();
    let assignee = t.assignee_id.map(|a| {
        if a == web.actor.id {
            lang.t("a te", "you").to_owned()
        } else {
            operators
                .iter()
                .find(|o| o.user_id == a)
                .map(|o| o.name.clone())
                .unwrap_or_else(|| lang.t("un altro operatore", "another operator").to_owned())
        }
    });
    let slots = match q.slot_date.as_deref().filter(|d| !d.is_empty()) {
        Some(d) => Some(state.app.counter_slots(&web.actor, d).await),
        None => None,
    };
    let tax = state.app.taxonomy();
    let status_slug = t.status.as_str();
    let entries = t.timeline.clone().unwrap_or_default();
    let active = t.status.is_active();
    let other_tier = match t.tier {
        Tier::FrontOffice => Tier::BackOffice,
        Tier::BackOffice => Tier::FrontOffice,
    };
    let callback = t
        .tags
        .iter()
        .any(|g| g == sportello_service::phone::CALLBACK_TAG);
    let title = format!("{} · {}", t.number, t.subject);
    let tomorrow = (Utc::now() + Duration::days(1))
        .with_timezone(web.tz())
        .format("%Y-%m-%d")
        .to_string();
    let csrf = &web.csrf;
    let answers = super::knowledge::answers_for_select(state, web, &t).await;
    let chosen_answer = q.answer.as_deref().unwrap_or("");
    let prefilled = if chosen_answer.is_empty() || drafts.reply.is_some() {
        None
    } else {
        super::knowledge::prefill(state, web, &t, chosen_answer).await
    };
    let reply_lang = prefilled
        .as_ref()
        .map(|p| p.lang.clone())
        .unwrap_or_else(|| lang.code().to_owned());
    // What the operator typed, else the prepared answer's subject, else `Re: [SP-…] …`.
    let reply_subject = match (&drafts.subject, &prefilled) {
        (Some(s), _) => s.clone(),
        (None, Some(p)) => p.subject.clone(),
        (None, None) => state
            .app
            .default_reply_subject(&web.actor, t.id, Some(&reply_lang))
            .await
            .unwrap_or_default(),
    };
    let mut answer_groups: Vec<(&str, Vec<&super::knowledge::AnswerOption>)> = Vec::new();
    for a in &answers {
        match answer_groups.last_mut() {
            Some((g, list)) if *g == a.group => list.push(a),
            _ => answer_groups.push((&a.group, vec![a])),
        }
    }

    let summary = html! {
        dl class="summary" {
            (field(lang.t("Stato", "Status"), i18n::badge("status", status_slug, i18n::status(lang, status_slug))))
            (field(lang.t("Priorità", "Priority"), html! { (i18n::priority(lang, t.priority.as_str())) }))
            (field(lang.t("Canale", "Channel"), html! { (i18n::channel(lang, t.channel.as_str())) }))
            (field(lang.t("Livello", "Tier"), html! { (i18n::tier(lang, t.tier.as_str())) }))
            (field(lang.t("Categoria", "Category"), html! {
                @match &t.category { Some(c) => { (i18n::taxonomy_label(lang, &tax.categories, c)) } None => { "—" } }
            }))
            (field(lang.t("Misura", "Measure"), html! {
                @match &t.measure { Some(m) => { (i18n::taxonomy_label(lang, &tax.measures, m)) } None => { "—" } }
            }))
            (field(lang.t("Assegnata", "Assigned to"), html! {
                @match &assignee {
                    Some(a) => { (a) }
                    None => {
                        (lang.t("nessuno", "nobody"))
                        @if active {
                            " "
                            form method="post" action={ "/queue/" (t.id) "/take" } class="inline" {
                                input type="hidden" name="csrf" value=(csrf);
                                button type="submit" { (lang.t("Prendi in carico", "Take")) }
                            }
                        }
                    }
                }
            }))
            (field(lang.t("Scadenza (SLA)", "Deadline (SLA)"), sla_cell(lang, &t)))
            (field(lang.t("Aperta il", "Opened"), html! { (i18n::when(lang, web.tz(), t.created_at)) }))
        }
    };

    let reply_form = html! {
        section class="card" aria-labelledby="reply-h" id="reply" {
            h2 id="reply-h" { (lang.t("Rispondi via e-mail", "Reply by e-mail")) }
            form method="post" action={ "/tickets/" (t.id) "/reply" } class="stack" {
                input type="hidden" name="csrf" value=(csrf);
                div class="row" {
                    div {
                        label for="template" { (lang.t("Risposta predefinita", "Prepared answer")) }
                        select id="template" name="template" data-ticket=(t.id)
                            data-render-url="/api/v1/answers/{id}/render" {
                            option value="" { (lang.t("— nessuna, scrivo io —", "— none, I write it —")) }
                            @for (group, list) in &answer_groups {
                                optgroup label=(group) {
                                    @for a in list {
                                        option value=(a.id) lang=(a.lang) selected[a.id == chosen_answer] { (a.title) }
                                    }
                                }
                            }
                        }
                    }
                    div {
                        label for="reply-lang" { (lang.t("Lingua del messaggio", "Language of the message")) }
                        select id="reply-lang" name="language" {
                            option value="it" selected[reply_lang == "it"] { "Italiano" }
                            option value="en" selected[reply_lang == "en"] { "English" }
                        }
                    }
                }
                p id="template-status" class="muted" role="status" aria-live="polite" {
                    @if let Some(p) = &prefilled {
                        @if !p.missing.is_empty() {
                            (lang.t("Completa a mano: ", "Fill in by hand: ")) (p.missing.join(", "))
                        }
                    }
                }
                label for="reply-subject" { (lang.t("Oggetto", "Subject")) }
                input id="reply-subject" name="subject" type="text" maxlength="200"
                    value=(reply_subject);
                label for="reply-body" { (lang.t("Testo della risposta", "Reply text")) }
                textarea id="reply-body" name="body" rows="8" required {
                    (drafts.reply.clone().or_else(|| prefilled.as_ref().map(|p| p.reply_body.clone())).unwrap_or_default())
                }
                p class="hint" { (lang.t(
                    "Saluto e firma vengono aggiunti automaticamente; il numero della richiesta resta nell'oggetto.",
                    "Greeting and signature are added automatically; the request number stays in the subject.")) }
                p { button type="submit" class="primary" { (lang.t("Invia risposta", "Send reply")) } }
            }
        }
    };

    let note_form = html! {
        section class="card" aria-labelledby="note-h" id="note" {
            h2 id="note-h" { (lang.t("Nota interna", "Internal note")) }
            form method="post" action={ "/tickets/" (t.id) "/note" } class="stack" {
                input type="hidden" name="csrf" value=(csrf);
                label for="note-body" { (lang.t("Testo della nota (non visibile al cittadino)", "Note text (never shown to the citizen)")) }
                textarea id="note-body" name="body" rows="3" required { (drafts.note.clone().unwrap_or_default()) }
                p { button type="submit" { (lang.t("Aggiungi nota", "Add note")) } }
            }
        }
    };

    let status_form = html! {
        section class="card" aria-labelledby="status-h" id="status" {
            h2 id="status-h" { (lang.t("Stato", "Status")) }
            @if t.status.allowed_next().is_empty() {
                p { (lang.t("La richiesta è chiusa.", "The request is closed.")) }
            } @else {
                form method="post" action={ "/tickets/" (t.id) "/status" } class="stack" {
                    input type="hidden" name="csrf" value=(csrf);
                    label for="status-to" { (lang.t("Nuovo stato", "New status")) }
                    select id="status-to" name="to" {
                        @for s in t.status.allowed_next() {
                            option value=(s.as_str()) { (i18n::status(lang, s.as_str())) }
                        }
                    }
                    label for="status-reason" { (lang.t("Motivo (facoltativo)", "Reason (optional)")) }
                    input id="status-reason" name="reason" type="text" maxlength="2000";
                    p { button type="submit" { (lang.t("Cambia stato", "Change status")) } }
                }
            }
        }
    };

    let classify_form = html! {
        section class="card" aria-labelledby="class-h" id="classification" {
            h2 id="class-h" { (lang.t("Classificazione", "Classification")) }
            form method="post" action={ "/tickets/" (t.id) "/classification" } class="stack" {
                input type="hidden" name="csrf" value=(csrf);
                label for="class-category" { (lang.t("Categoria", "Category")) }
                select id="class-category" name="category" {
                    option value="" { "—" }
                    @for e in &tax.categories {
                        option value=(e.slug) selected[t.category.as_deref() == Some(e.slug.as_str())] {
                            (i18n::taxonomy_label(lang, &tax.categories, &e.slug))
                        }
                    }
                }
                label for="class-measure" { (lang.t("Misura", "Measure")) }
                select id="class-measure" name="measure" {
                    option value="" { "—" }
                    @for e in &tax.measures {
                        option value=(e.slug) selected[t.measure.as_deref() == Some(e.slug.as_str())] {
                            (i18n::taxonomy_label(lang, &tax.measures, &e.slug))
                        }
                    }
                }
                label for="class-priority" { (lang.t("Priorità", "Priority")) }
                select id="class-priority" name="priority" {
                    @for p in ["low", "normal", "high", "urgent"] {
                        option value=(p) selected[t.priority.as_str() == p] { (i18n::priority(lang, p)) }
                    }
                }
                p { button type="submit" { (lang.t("Salva classificazione", "Save classification")) } }
            }
        }
    };

    let escalate_form = html! {
        section class="card" aria-labelledby="esc-h" id="escalate" {
            h2 id="esc-h" {
                @if other_tier == Tier::BackOffice { (lang.t("Passa al back office", "Escalate to the back office")) }
                @else { (lang.t("Rimanda al front office", "Send back to the front office")) }
            }
            @if active {
                form method="post" action={ "/tickets/" (t.id) "/escalate" } class="stack" {
                    input type="hidden" name="csrf" value=(csrf);
                    input type="hidden" name="tier" value=(other_tier.as_str());
                    label for="escalate-reason" { (lang.t("Motivo (obbligatorio)", "Reason (required)")) }
                    textarea id="escalate-reason" name="reason" rows="2" required { (drafts.reason.clone().unwrap_or_default()) }
                    p { button type="submit" {
                        @if other_tier == Tier::BackOffice { (lang.t("Passa al back office", "Escalate to the back office")) }
                        @else { (lang.t("Rimanda al front office", "Send back to the front office")) }
                    } }
                }
            } @else {
                p { (lang.t("Solo le richieste ancora aperte si possono passare.", "Only open requests can be escalated.")) }
            }
        }
    };

    let call_form = html! {
        section class="card" aria-labelledby="call-h" id="call" {
            h2 id="call-h" { (lang.t("Registra una telefonata", "Log a phone call")) }
            form method="post" action={ "/tickets/" (t.id) "/call" } class="stack" {
                input type="hidden" name="csrf" value=(csrf);
                label for="call-direction" { (lang.t("Tipo di chiamata", "Kind of call")) }
                select id="call-direction" name="direction" {
                    option value="outbound" { (lang.t("Ho chiamato il cittadino", "I called the citizen")) }
                    option value="inbound" { (lang.t("Il cittadino ha chiamato", "The citizen called")) }
                }
                div class="check" {
                    input id="call-reached" name="reached" type="checkbox" value="1" checked;
                    label for="call-reached" { (lang.t("Cittadino raggiunto", "Citizen reached")) }
                }
                label for="call-note" { (lang.t("Esito e note", "Outcome and notes")) }
                textarea id="call-note" name="note" rows="2" {}
                p { button type="submit" { (lang.t("Registra telefonata", "Log call")) } }
            }
            @if callback {
                h3 { (lang.t("Tentativo di richiamata", "Call-back attempt")) }
                form method="post" action={ "/tickets/" (t.id) "/callback" } class="stack" {
                    input type="hidden" name="csrf" value=(csrf);
                    div class="check" {
                        input id="cb-reached" name="reached" type="checkbox" value="1";
                        label for="cb-reached" { (lang.t("Cittadino raggiunto", "Citizen reached")) }
                    }
                    div class="check" {
                        input id="cb-close" name="close" type="checkbox" value="1";
                        label for="cb-close" { (lang.t("Chiudi la richiamata anche se non raggiunto", "Close the call-back even if not reached")) }
                    }
                    label for="cb-note" { (lang.t("Note", "Notes")) }
                    textarea id="cb-note" name="note" rows="2" {}
                    p { button type="submit" { (lang.t("Registra tentativo", "Record attempt")) } }
                }
            }
        }
    };

    let book_form = html! {
        section class="card" aria-labelledby="book-h" id="book" {
            h2 id="book-h" { (lang.t("Prenota un appuntamento allo sportello", "Book a counter appointment")) }
            @if let Some(cid) = t.citizen_id {
                form method="get" action={ "/tickets/" (t.id) "#book" } class="row" {
                    label for="slot-date" { (lang.t("Giorno", "Day")) }
                    input id="slot-date" name="slot_date" type="date"
                        value=(q.slot_date.clone().unwrap_or_else(|| tomorrow.clone()));
                    button type="submit" { (lang.t("Mostra orari liberi", "Show free times")) }
                }
                @match &slots {
                    None => {}
                    Some(Err(e)) => { p class="notice error" { (page::error_text(lang, e)) } }
                    Some(Ok(list)) => {
                        @let free: Vec<_> = list.items.iter().filter(|s| s.booked < s.capacity).collect();
                        @if free.is_empty() {
                            p { (lang.t("Nessun orario libero in questo giorno.", "No free time on this day.")) }
                        } @else {
                            form method="post" action={ "/tickets/" (t.id) "/book" } class="stack" {
                                input type="hidden" name="csrf" value=(csrf);
                                input type="hidden" name="citizen_id" value=(cid);
                                @if let Some(c) = &t.category { input type="hidden" name="category" value=(c); }
                                @if let Some(m) = &t.measure { input type="hidden" name="measure" value=(m); }
                                label for="slot-id" { (lang.t("Orario", "Time")) }
                                select id="slot-id" name="slot_id" {
                                    @for s in free {
                                        option value=(s.id) {
                                            (s.local_start) "–" (s.local_end) " (" (s.capacity - s.booked) " " (lang.t("posti liberi", "places free")) ")"
                                        }
                                    }
                                }
                                label for="book-notes" { (lang.t("Note per lo sportello (facoltative)", "Notes for the counter (optional)")) }
                                textarea id="book-notes" name="notes" rows="2" {}
                                p { button type="submit" { (lang.t("Prenota", "Book")) } }
                            }
                        }
                    }
                }
            } @else {
                p { (lang.t("La richiesta non ha un cittadino associato.", "The request has no citizen.")) }
            }
        }
    };

    let aside = html! {
        aside class="side" aria-labelledby="citizen-h" {
            h2 id="citizen-h" { (lang.t("Cittadino", "Citizen")) }
            @if let Some(c) = &citizen {
                p { a href={ "/citizens/" (c.citizen.id) } { strong { (c.citizen.name) } } }
                dl class="summary small" {
                    @if let Some(cf) = &c.citizen.codice_fiscale { (field(lang.t("Codice fiscale", "Tax code"), html! { (cf) })) }
                    @if !c.citizen.emails.is_empty() { (field("E-mail", html! { (c.citizen.emails.join(", ")) })) }
                    @if !c.citizen.phones.is_empty() { (field(lang.t("Telefono", "Phone"), html! { (c.citizen.phones.join(", ")) })) }
                }
                h3 { (lang.t("Altre richieste", "Other requests")) }
                @let others: Vec<&TicketView> = c.tickets.iter().filter(|o| o.id != t.id).collect();
                @if others.is_empty() {
                    p class="empty" { (lang.t("Nessuna.", "None.")) }
                } @else {
                    ul class="plain" {
                        @for o in others {
                            li {
                                a href={ "/tickets/" (o.id) } { span class="number" { (o.number) } " " (o.subject) }
                                br;
                                span class="muted" {
                                    (i18n::channel(lang, o.channel.as_str())) " · "
                                    (i18n::status(lang, o.status.as_str())) " · "
                                    (i18n::when(lang, web.tz(), o.created_at))
                                }
                            }
                        }
                    }
                }
                h3 { (lang.t("Appuntamenti", "Appointments")) }
                @if appointments.is_empty() {
                    p class="empty" { (lang.t("Nessuno.", "None.")) }
                } @else {
                    ul class="plain" {
                        @for b in &appointments {
                            li {
                                (i18n::day(lang, &b.date)) " " (b.local_start.clone().unwrap_or_default())
                                " · " (i18n::booking_state(lang, &b.state))
                            }
                        }
                    }
                }
            } @else {
                p class="empty" { (lang.t("Nessun cittadino associato.", "No citizen.")) }
            }
        }
    };

    let body = html! {
        (summary)
        div class="columns" {
            div class="maincol" {
                section aria-labelledby="timeline-h" {
                    h2 id="timeline-h" { (lang.t("Cronologia", "Timeline")) }
                    (timeline::render(lang, web.tz(), &entries))
                }
                (reply_form)
                (note_form)
                div class="grid2" {
                    (status_form)
                    (classify_form)
                    (escalate_form)
                    (call_form)
                }
                (book_form)
            }
            (aside)
        }
    };
    Html(
        status,
        page::frame(
            lang,
            Some(web),
            Nav::None,
            &title,
            notice.as_ref(),
            "ticket",
            body,
        ),
    )
    .into_response()
}

/// The ticket page; 403 for a ticket of a tier the operator does not work.
pub async fn page(
    State(state): State<AppState>,
    WebId(id): WebId,
    Query(q): Query<PageQuery>,
    web: Web,
) -> Response {
    let notice = q
        .done
        .as_deref()
        .and_then(|k| i18n::done(web.lang, k))
        .map(|t| Notice::Ok(t.into()));
    render(
        Ctx {
            state: &state,
            web: &web,
        },
        id,
        notice,
        Drafts::default(),
        StatusCode::OK,
        &q,
    )
    .await
}

/// After an action: back to the ticket with its confirmation, or the page again with the error.
async fn outcome<T>(
    state: &AppState,
    web: &Web,
    id: Uuid,
    done: &str,
    result: Result<T, ServiceError>,
    drafts: Drafts,
) -> Response {
    match result {
        Ok(_) => Redirect::to(&format!("/tickets/{id}?done={done}")).into_response(),
        Err(e) => {
            let status = page::status_of(&e);
            let text = page::error_text(web.lang, &e);
            render(
                Ctx { state, web },
                id,
                Some(Notice::Error(text)),
                drafts,
                status,
                &PageQuery::default(),
            )
            .await
        }
    }
}

#[derive(Deserialize)]
pub struct ReplyForm {
    #[serde(default)]
    body: String,
    #[serde(default)]
    subject: String,
    language: Option<String>,
    #[allow(dead_code)]
    template: Option<String>,
}

/// Sends the reply: stored on the timeline and queued for the citizen in one transaction.
pub async fn reply(
    State(state): State<AppState>,
    WebId(id): WebId,
    p: Posted<ReplyForm>,
) -> Response {
    let input = NewReply {
        body: p.form.body.clone(),
        template: p.form.language.clone().filter(|l| !l.is_empty()),
        subject: Some(p.form.subject.clone()),
        attachments: Vec::new(),
    };
    let r = state.app.reply_by_email(&p.web.actor, id, input).await;
    let drafts = Drafts {
        reply: Some(p.form.body),
        subject: Some(p.form.subject),
        ..Default::default()
    };
    outcome(&state, &p.web, id, "reply", r, drafts).await
}

#[derive(Deserialize)]
pub struct NoteForm {
    #[serde(default)]
    body: String,
}

pub async fn note(
    State(state): State<AppState>,
    WebId(id): WebId,
    p: Posted<NoteForm>,
) -> Response {
    let r = state
        .app
        .add_entry(
            &p.web.actor,
            id,
            NewEntry {
                kind: "note".into(),
                body: p.form.body.clone(),
            },
        )
        .await;
    let drafts = Drafts {
        note: Some(p.form.body),
        ..Default::default()
    };
    outcome(&state, &p.web, id, "note", r, drafts).await
}

#[derive(Deserialize)]
pub struct StatusForm {
    #[serde(default)]
    to: String,
    reason: Option<String>,
}

pub async fn status(
    State(state): State<AppState>,
    WebId(id): WebId,
    p: Posted<StatusForm>,
) -> Response {
    let req = TransitionRequest {
        to: p.form.to.clone(),
        reason: p.form.reason.clone(),
    };
    let r = state.app.transition(&p.web.actor, id, req).await;
    outcome(&state, &p.web, id, "status", r, Drafts::default()).await
}

#[derive(Deserialize)]
pub struct ClassForm {
    category: Option<String>,
    measure: Option<String>,
    priority: Option<String>,
}

pub async fn classify(
    State(state): State<AppState>,
    WebId(id): WebId,
    p: Posted<ClassForm>,
) -> Response {
    let input = Classification {
        category: Some(p.form.category.clone().unwrap_or_default()),
        measure: Some(p.form.measure.clone().unwrap_or_default()),
        priority: p.form.priority.clone(),
    };
    let r = state.app.set_classification(&p.web.actor, id, input).await;
    outcome(&state, &p.web, id, "classification", r, Drafts::default()).await
}

#[derive(Deserialize)]
pub struct EscalateForm {
    #[serde(default)]
    tier: String,
    #[serde(default)]
    reason: String,
}

/// Escalates; the operator may no longer see the ticket afterwards, so they go back to work.
pub async fn escalate(
    State(state): State<AppState>,
    WebId(id): WebId,
    p: Posted<EscalateForm>,
) -> Response {
    let tier = if p.form.tier.is_empty() {
        "back_office".to_owned()
    } else {
        p.form.tier.clone()
    };
    match state
        .app
        .escalate(&p.web.actor, id, &tier, &p.form.reason)
        .await
    {
        Ok(t) if p.web.actor.can_see_tier(t.tier) => {
            Redirect::to(&format!("/tickets/{id}?done=escalated")).into_response()
        }
        Ok(_) => Redirect::to("/?done=escalated").into_response(),
        Err(e) => {
            let drafts = Drafts {
                reason: Some(p.form.reason),
                ..Default::default()
            };
            outcome::<()>(&state, &p.web, id, "escalated", Err(e), drafts).await
        }
    }
}

#[derive(Deserialize)]
pub struct CallForm {
    #[serde(default)]
    direction: String,
    reached: Option<String>,
    note: Option<String>,
}

pub async fn call(
    State(state): State<AppState>,
    WebId(id): WebId,
    p: Posted<CallForm>,
) -> Response {
    let input = LoggedCall {
        direction: p.form.direction.clone(),
        reached: p.form.reached.is_some(),
        note: p.form.note.clone(),
    };
    let r = state.app.log_call(&p.web.actor, id, input).await;
    outcome(&state, &p.web, id, "call", r, Drafts::default()).await
}

#[derive(Deserialize)]
pub struct CallbackForm {
    reached: Option<String>,
    close: Option<String>,
    note: Option<String>,
}

pub async fn callback(
    State(state): State<AppState>,
    WebId(id): WebId,
    p: Posted<CallbackForm>,
) -> Response {
    let input = CallbackAttempt {
        reached: p.form.reached.is_some(),
        close: p.form.close.is_some(),
        note: p.form.note.clone(),
    };
    let r = state
        .app
        .record_callback_attempt(&p.web.actor, id, input)
        .await;
    outcome(&state, &p.web, id, "callback", r, Drafts::default()).await
}

#[derive(Deserialize)]
pub struct BookForm {
    #[serde(default)]
    slot_id: String,
    #[serde(default)]
    citizen_id: String,
    category: Option<String>,
    measure: Option<String>,
    notes: Option<String>,
}

pub async fn book(
    State(state): State<AppState>,
    WebId(id): WebId,
    p: Posted<BookForm>,
) -> Response {
    let lang = p.web.lang;
    let (Ok(slot_id), Ok(citizen_id)) = (
        Uuid::parse_str(p.form.slot_id.trim()),
        Uuid::parse_str(p.form.citizen_id.trim()),
    ) else {
        let e = ServiceError::field("slot_id", lang.t("scegli un orario", "choose a time"));
        return outcome::<()>(&state, &p.web, id, "booked", Err(e), Drafts::default()).await;
    };
    // The ticket's own category and measure (hidden fields of the form) describe the visit.
    let input = NewBooking {
        slot_id,
        citizen_id,
        category: p.form.category.clone().filter(|c| !c.is_empty()),
        measure: p.form.measure.clone().filter(|m| !m.is_empty()),
        notes: p.form.notes.clone().filter(|n| !n.trim().is_empty()),
        ticket_id: Some(id),
    };
    let r = state.app.book_counter_slot(&p.web.actor, input).await;
    outcome(&state, &p.web, id, "booked", r, Drafts::default()).await
}
