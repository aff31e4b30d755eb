//! A ticket's timeline as the console shows it: messages, replies, notes, calls, visits and
//! system events, oldest first.
//!
//! A citizen's HTML e-mail was sanitised on import (ammonia: no scripts, no event handlers, no
//! remote images). It is shown in an `<iframe sandbox srcdoc>` all the same: without
//! `allow-scripts` nothing in it can run, without `allow-same-origin` it cannot reach the
//! console's cookies or DOM, and it inherits the page's Content-Security-Policy, which allows
//! images from the console itself only.

use chrono_tz::Tz;
use maud::{Markup, html};
use serde_json::Value;
use sportello_service::tickets::EntryView;

use super::i18n::{self, Lang};

fn s<'a>(meta: &'a Option<Value>, key: &str) -> Option<&'a str> {
    meta.as_ref()?.get(key)?.as_str().filter(|v| !v.is_empty())
}

fn size(bytes: u64) -> String {
    if bytes >= 1024 * 1024 {
        format!("{:.1} MB", bytes as f64 / (1024.0 * 1024.0))
    } else if bytes >= 1024 {
        format!("{} kB", bytes.div_ceil(1024))
    } else {
        format!("{bytes} B")
    }
}

/// The document inside the sandboxed frame: the sanitised HTML, styled by our own sheet.
fn srcdoc(clean_html: &str) -> String {
    format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><link rel=\"stylesheet\" href=\"/console/mail.css\"></head><body>{clean_html}</body></html>"
    )
}

fn attachments(lang: Lang, e: &EntryView) -> Markup {
    let list: Vec<&Value> = e
        .meta
        .as_ref()
        .and_then(|m| m.get("attachments"))
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    html! {
        @if !list.is_empty() {
            div class="attachments" {
                span class="label" { (lang.t("Allegati:", "Attachments:")) }
                ul {
                    @for a in list {
                        @let name = a["filename"].as_str().unwrap_or("file");
                        @let bytes = a["size"].as_u64().unwrap_or(0);
                        li {
                            @match (a["id"].as_str(), a["stored"].as_bool().unwrap_or(true)) {
                                (Some(id), true) => {
                                    a href={ "/api/v1/attachments/" (id) } download=(name) { (name) }
                                }
                                (_, false) => {
                                    (name) " " span class="muted" { (lang.t("(troppo grande: non conservato)", "(too large: not stored)")) }
                                }
                                (None, true) => { (name) }
                            }
                            " " span class="muted" { "(" (size(bytes)) ")" }
                        }
                    }
                }
            }
        }
    }
}

fn body_text(e: &EntryView) -> Markup {
    html! { div class="body" { (e.body) } }
}

fn entry(lang: Lang, tz: &Tz, e: &EntryView) -> Markup {
    let kind = e.kind.as_str();
    html! {
        li class={ "entry kind-" (kind) } id={ "e-" (e.id) } {
            div class="entry-head" {
                (i18n::badge("kind", kind, i18n::entry_kind(lang, kind)))
                " "
                @if let Some(a) = &e.author_name {
                    span class="author" { (a) }
                    " · "
                }
                time datetime=(e.created_at.to_rfc3339()) { (i18n::when(lang, tz, e.created_at)) }
            }
            @match kind {
                "inbound" => {
                    @if s(&e.meta, "from").is_some() || s(&e.meta, "subject").is_some() {
                        p class="mail-head" {
                            @if let Some(from) = s(&e.meta, "from") {
                                (lang.t("Da: ", "From: "))
                                @if let Some(name) = s(&e.meta, "from_name") { (name) " " }
                                "<" (from) ">"
                            }
                            @if let Some(subj) = s(&e.meta, "subject") {
                                br;
                                (lang.t("Oggetto: ", "Subject: ")) (subj)
                            }
                        }
                    }
                    @if let Some(h) = e.body_html.as_deref().filter(|h| !h.trim().is_empty()) {
                        iframe class="mail-html" sandbox="" referrerpolicy="no-referrer"
                            title=(lang.t("Messaggio del cittadino (HTML ripulito)", "Citizen's message (cleaned HTML)"))
                            srcdoc=(srcdoc(h)) {}
                        details {
                            summary { (lang.t("Mostra come testo semplice", "Show as plain text")) }
                            (body_text(e))
                        }
                    } @else {
                        (body_text(e))
                    }
                    @if let Some(notes) = e.meta.as_ref().and_then(|m| m.get("notes")).and_then(Value::as_array) {
                        @if !notes.is_empty() {
                            ul class="mail-notes" {
                                @for n in notes {
                                    li { (n.as_str().map(str::to_owned).unwrap_or_else(|| n.to_string())) }
                                }
                            }
                        }
                    }
                    (attachments(lang, e))
                }
                "outbound" => {
                    p class="mail-head" {
                        @if let Some(to) = s(&e.meta, "to") { (lang.t("A: ", "To: ")) (to) }
                        @if let Some(subj) = s(&e.meta, "subject") {
                            br;
                            (lang.t("Oggetto: ", "Subject: ")) (subj)
                        }
                        @if let Some(d) = s(&e.meta, "delivery") {
                            br;
                            (lang.t("Consegna: ", "Delivery: "))
                            (i18n::badge("delivery", d, i18n::delivery(lang, d)))
                        }
                    }
                    (body_text(e))
                    (attachments(lang, e))
                }
                _ => {
                    (body_text(e))
                }
            }
        }
    }
}

/// The whole timeline.
pub fn render(lang: Lang, tz: &Tz, entries: &[EntryView]) -> Markup {
    html! {
        @if entries.is_empty() {
            p class="empty" { (lang.t("Ancora nessuna voce.", "No entries yet.")) }
        } @else {
            ol class="timeline" {
                @for e in entries { (entry(lang, tz, e)) }
            }
        }
    }
}
