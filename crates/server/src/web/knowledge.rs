//! `/knowledge`: the prepared answers, browsable and searchable by measure, topic and words, so
//! front-office operators can orient citizens on the phone; and the prepared answers offered
//! in the ticket page's reply form.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::html;
use serde::Deserialize;
use sportello_service::answers::{AnswerQuery, AnswerView};
use sportello_service::tickets::TicketView;

use super::i18n::{self, Lang};
use super::page::{self, Html, Nav, Notice};
use super::session::Web;
use crate::AppState;

/// A prepared answer as the reply form offers it.
pub struct AnswerOption {
    pub id: String,
    pub title: String,
    /// The group the select shows it under (the measure, or "general").
    pub group: String,
    pub lang: String,
}

/// The prepared answers that fit a ticket: those of its measure and those about no measure;
/// every answer when the ticket has no measure yet.
pub async fn answers_for_select(state: &AppState, web: &Web, t: &TicketView) -> Vec<AnswerOption> {
    let general = web.lang.t("Informazioni generali", "General information");
    let mut out = Vec::new();
    let queries: Vec<AnswerQuery> = match &t.measure {
        Some(m) => vec![
            AnswerQuery {
                measure: Some(m.clone()),
                ..Default::default()
            },
            AnswerQuery {
                measure: Some("none".into()),
                ..Default::default()
            },
        ],
        None => vec![AnswerQuery::default()],
    };
    for q in queries {
        // The reply can be written without them: a failure here only empties the list.
        let Ok(list) = state.app.list_answers(&web.actor, &q).await else {
            continue;
        };
        out.extend(list.into_iter().map(|a| {
            AnswerOption {
                id: a.id.to_string(),
                group: a
                    .measure_label
                    .clone()
                    .unwrap_or_else(|| general.to_owned()),
                title: format!("{} ({})", a.title, a.lang.to_uppercase()),
                lang: a.lang,
            }
        }));
    }
    out
}

/// The reply text of the chosen answer filled in for the ticket, to start the reply from when
/// the page is opened with `?answer=` (scripts do the same without reloading).
pub async fn prefill(
    state: &AppState,
    web: &Web,
    t: &TicketView,
    chosen: &str,
) -> Option<sportello_service::answers::RenderedAnswer> {
    let id = uuid::Uuid::parse_str(chosen.trim()).ok()?;
    state.app.render_answer(&web.actor, id, t.id).await.ok()
}

#[derive(Deserialize, Default)]
pub struct KnowledgeQuery {
    measure: Option<String>,
    topic: Option<String>,
    answers_lang: Option<String>,
    q: Option<String>,
}

fn answer_card(lang: Lang, a: &AnswerView) -> maud::Markup {
    html! {
        article class="answer" lang=(a.lang) {
            details {
                summary {
                    strong { (a.title) }
                    " "
                    span class="muted" {
                        "(" (a.topic_label) " · " (a.lang.to_uppercase()) ")"
                    }
                }
                p class="muted" {
                    (lang.t("Oggetto: ", "Subject: ")) (a.subject)
                }
                div class="body" { (a.body) }
            }
        }
    }
}

pub async fn page(
    State(state): State<AppState>,
    Query(q): Query<KnowledgeQuery>,
    web: Web,
) -> Response {
    let lang = web.lang;
    let tax = state.app.taxonomy();
    let measure = q.measure.clone().unwrap_or_default();
    let topic = q.topic.clone().unwrap_or_default();
    let text = q.q.clone().unwrap_or_default();
    // `?lang=` switches the page; the answers' language is a filter of its own (the page's
    // language by default, "all" for both).
    let answers_lang = q
        .answers_lang
        .clone()
        .unwrap_or_else(|| lang.code().to_owned());
    let query = AnswerQuery {
        measure: Some(measure.clone()).filter(|m| !m.is_empty()),
        topic: Some(topic.clone()).filter(|m| !m.is_empty()),
        q: Some(text.clone()).filter(|m| !m.trim().is_empty()),
        lang: Some(answers_lang.clone()).filter(|l| l == "it" || l == "en"),
        include_inactive: None,
    };
    let (answers, notice) = match state.app.list_answers(&web.actor, &query).await {
        Ok(a) => (a, None),
        Err(e) => (Vec::new(), Some(Notice::Error(page::error_text(lang, &e)))),
    };
    let topics = state.app.answer_topics();
    // Grouped by measure, in the order the service sorted them.
    let mut groups: Vec<(String, Vec<&AnswerView>)> = Vec::new();
    for a in &answers {
        let g = a
            .measure
            .as_deref()
            .map(|m| i18n::taxonomy_label(lang, &tax.measures, m))
            .unwrap_or_else(|| {
                lang.t("Informazioni generali", "General information")
                    .to_owned()
            });
        match groups.last_mut() {
            Some((name, list)) if *name == g => list.push(a),
            _ => groups.push((g, vec![a])),
        }
    }
    let body = html! {
        form method="get" action="/knowledge" class="row card" role="search" {
            div {
                label for="k-measure" { (lang.t("Misura", "Measure")) }
                select id="k-measure" name="measure" {
                    option value="" { (lang.t("Tutte", "All")) }
                    option value="none" selected[measure == "none"] { (lang.t("Informazioni generali", "General information")) }
                    @for m in &tax.measures {
                        option value=(m.slug) selected[m.slug == measure] { (i18n::taxonomy_label(lang, &tax.measures, &m.slug)) }
                    }
                }
            }
            div {
                label for="k-topic" { (lang.t("Argomento", "Topic")) }
                select id="k-topic" name="topic" {
                    option value="" { (lang.t("Tutti", "All")) }
                    @for t in &topics {
                        option value=(t.slug) selected[t.slug == topic] {
                            @if lang == Lang::En { (t.label_en) } @else { (t.label_it) }
                        }
                    }
                }
            }
            div {
                label for="k-lang" { (lang.t("Lingua delle risposte", "Language of the answers")) }
                select id="k-lang" name="answers_lang" {
                    option value="it" selected[answers_lang == "it"] { "Italiano" }
                    option value="en" selected[answers_lang == "en"] { "English" }
                    option value="all" selected[answers_lang == "all"] { (lang.t("Entrambe", "Both")) }
                }
            }
            div {
                label for="k-q" { (lang.t("Parole da cercare", "Words to find")) }
                input id="k-q" name="q" type="search" value=(text);
            }
            button type="submit" class="primary" { (lang.t("Cerca", "Search")) }
        }
        p role="status" { (answers.len()) " " (lang.t("risposte trovate", "answers found")) }
        @for (name, list) in &groups {
            section {
                h2 { (name) }
                @for a in list { (answer_card(lang, a)) }
            }
        }
    };
    Html(
        StatusCode::OK,
        page::frame(
            lang,
            Some(&web),
            Nav::Knowledge,
            lang.t("Risposte e informazioni", "Knowledge"),
            notice.as_ref(),
            "knowledge",
            body,
        ),
    )
    .into_response()
}
