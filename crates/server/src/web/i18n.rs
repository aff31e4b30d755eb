//! The console's two languages. Every string is written at its call site as an Italian and
//! English pair (`lang.t("…", "…")`), so no string can miss a translation; the labels of the
//! domain's values (statuses, channels, SLA states, …) are here.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use maud::{Markup, html};
use serde_json::Value;

/// The page language: Italian unless the operator chose English (`?lang=en`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Lang {
    #[default]
    It,
    En,
}

impl Lang {
    pub fn parse(value: &str) -> Option<Lang> {
        match value.trim().to_ascii_lowercase().as_str() {
            "it" => Some(Lang::It),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Lang::It => "it",
            Lang::En => "en",
        }
    }

    /// The string in this language.
    pub fn t(self, it: &'static str, en: &'static str) -> &'static str {
        match self {
            Lang::It => it,
            Lang::En => en,
        }
    }

    /// The owned string in this language (for formatted text).
    pub fn s(self, it: String, en: String) -> String {
        match self {
            Lang::It => it,
            Lang::En => en,
        }
    }

    /// The other language, for the switch in the header.
    pub fn other(self) -> Lang {
        match self {
            Lang::It => Lang::En,
            Lang::En => Lang::It,
        }
    }

    /// The name of this language, written in itself.
    pub fn own_name(self) -> &'static str {
        match self {
            Lang::It => "Italiano",
            Lang::En => "English",
        }
    }
}

pub fn status(lang: Lang, slug: &str) -> &'static str {
    match slug {
        "new" => lang.t("Nuovo", "New"),
        "assigned" => lang.t("Assegnato", "Assigned"),
        "open" => lang.t("In lavorazione", "Open"),
        "waiting_citizen" => lang.t("In attesa del cittadino", "Waiting for the citizen"),
        "waiting_internal" => lang.t("In attesa interna", "Waiting internally"),
        "resolved" => lang.t("Risolto", "Resolved"),
        "closed" => lang.t("Chiuso", "Closed"),
        _ => lang.t("Sconosciuto", "Unknown"),
    }
}

pub fn channel(lang: Lang, slug: &str) -> &'static str {
    match slug {
        "phone" => lang.t("Telefono", "Phone"),
        "email" => "E-mail",
        "counter" => lang.t("Sportello", "Counter"),
        "web" => "Web",
        "internal" => lang.t("Interno", "Internal"),
        _ => lang.t("Altro", "Other"),
    }
}

pub fn tier(lang: Lang, slug: &str) -> &'static str {
    match slug {
        "front_office" => "Front office",
        "back_office" => "Back office",
        _ => lang.t("Altro", "Other"),
    }
}

pub fn priority(lang: Lang, slug: &str) -> &'static str {
    match slug {
        "low" => lang.t("Bassa", "Low"),
        "normal" => lang.t("Normale", "Normal"),
        "high" => lang.t("Alta", "High"),
        "urgent" => lang.t("Urgente", "Urgent"),
        _ => lang.t("Sconosciuta", "Unknown"),
    }
}

pub fn sla_state(lang: Lang, slug: &str) -> &'static str {
    match slug {
        "ok" => lang.t("Nei tempi", "On time"),
        "at_risk" => lang.t("A rischio", "At risk"),
        "breached" => lang.t("Scaduto", "Breached"),
        "paused" => lang.t("In pausa", "Paused"),
        "resolved" => lang.t("Chiuso", "Done"),
        _ => lang.t("Sconosciuto", "Unknown"),
    }
}

pub fn presence(lang: Lang, slug: &str) -> &'static str {
    match slug {
        "available" => lang.t("Disponibile", "Available"),
        "busy" => lang.t("Occupato", "Busy"),
        "wrap_up" => lang.t("In chiusura", "Wrap-up"),
        "break" => lang.t("In pausa", "On break"),
        "offline" => lang.t("Non in linea", "Offline"),
        _ => lang.t("Sconosciuto", "Unknown"),
    }
}

pub fn booking_state(lang: Lang, slug: &str) -> &'static str {
    match slug {
        "booked" => lang.t("Prenotato", "Booked"),
        "cancelled" => lang.t("Annullato", "Cancelled"),
        "checked_in" => lang.t("In sala d'attesa", "Checked in"),
        "called" => lang.t("Chiamato allo sportello", "Called to a desk"),
        "visited" => lang.t("Ricevuto", "Seen"),
        "no_show" => lang.t("Assente", "No-show"),
        _ => lang.t("Sconosciuto", "Unknown"),
    }
}

pub fn entry_kind(lang: Lang, slug: &str) -> &'static str {
    match slug {
        "inbound" => lang.t("Messaggio del cittadino", "Message from the citizen"),
        "outbound" => lang.t("Risposta al cittadino", "Reply to the citizen"),
        "note" => lang.t("Nota interna", "Internal note"),
        "call" => lang.t("Telefonata", "Phone call"),
        "visit" => lang.t("Visita allo sportello", "Counter visit"),
        "system" => lang.t("Evento", "Event"),
        _ => lang.t("Voce", "Entry"),
    }
}

pub fn delivery(lang: Lang, slug: &str) -> &'static str {
    match slug {
        "queued" => lang.t("in coda di invio", "queued"),
        "retrying" => lang.t("nuovo tentativo in corso", "retrying"),
        "sent" => lang.t("inviata", "sent"),
        "failed" => lang.t("invio fallito", "failed"),
        "bounced" => lang.t("respinta dal destinatario", "bounced"),
        _ => lang.t("stato sconosciuto", "unknown state"),
    }
}

/// Why an unassigned ticket waits, from the router's `waiting_reason` document.
pub fn waiting_reason(lang: Lang, reason: &Value) -> String {
    let n = |k: &str| reason[k].as_u64().unwrap_or(0);
    match reason["code"].as_str().unwrap_or("") {
        "no_operators" => lang.t("nessun operatore configurato", "no operator is configured").into(),
        "no_one_serves_tier" => lang
            .t("nessun operatore lavora questo livello", "nobody works this tier")
            .into(),
        "no_one_with_skills" => {
            let skills: Vec<String> = reason["skills"]
                .as_object()
                .map(|m| m.iter().map(|(k, v)| format!("{k} ≥ {v}")).collect())
                .unwrap_or_default();
            format!(
                "{} {}",
                lang.t(
                    "nessun operatore con le competenze:",
                    "nobody has the skills:"
                ),
                skills.join(", ")
            )
        }
        "no_one_handles_channel" => lang
            .t(
                "nessun operatore competente gestisce questo canale",
                "no competent operator handles this channel",
            )
            .into(),
        "no_one_on_shift" => lang
            .t(
                "nessun operatore competente è in turno",
                "no competent operator is on shift",
            )
            .into(),
        "no_one_available" => lang.s(
            format!(
                "nessun operatore disponibile (occupati {}, in chiusura {}, in pausa {}, non in linea {})",
                n("busy"),
                n("wrap_up"),
                n("on_break"),
                n("offline")
            ),
            format!(
                "nobody available (busy {}, wrap-up {}, on break {}, offline {})",
                n("busy"),
                n("wrap_up"),
                n("on_break"),
                n("offline")
            ),
        ),
        "everyone_at_capacity" => lang
            .t(
                "tutti gli operatori competenti sono al completo",
                "every competent operator is at capacity",
            )
            .into(),
        "assignable" => lang
            .t(
                "in attesa della prossima assegnazione",
                "waiting for the next assignment round",
            )
            .into(),
        _ => lang
            .t("non ancora esaminato dal sistema di smistamento", "not routed yet")
            .into(),
    }
}

/// `02/03/2026 09:15` (Italian) or `2026-03-02 09:15` (English) in the office's time zone.
pub fn when(lang: Lang, tz: &Tz, at: DateTime<Utc>) -> String {
    let local = at.with_timezone(tz);
    match lang {
        Lang::It => local.format("%d/%m/%Y %H:%M").to_string(),
        Lang::En => local.format("%Y-%m-%d %H:%M").to_string(),
    }
}

/// "in 2 h 05 min" / "scaduto da 40 min": how long until `due`.
pub fn time_left(lang: Lang, due: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (due - now).num_seconds();
    let span = |s: i64| {
        let m = (s.abs() + 59) / 60;
        let (d, h, m) = (m / 1440, (m % 1440) / 60, m % 60);
        if d > 0 {
            format!("{d} {} {h} h", lang.t("g", "d"))
        } else if h > 0 {
            format!("{h} h {m:02} min")
        } else {
            format!("{m} min")
        }
    };
    if secs >= 0 {
        lang.s(format!("tra {}", span(secs)), format!("in {}", span(secs)))
    } else {
        lang.s(
            format!("scaduto da {}", span(secs)),
            format!("overdue by {}", span(secs)),
        )
    }
}

/// A small badge for a status-like value, styled by its slug.
pub fn badge(kind: &str, slug: &str, label: &str) -> Markup {
    html! { span class={ "badge " (kind) "-" (slug) } { (label) } }
}

/// The operator-facing label of a category or measure slug (the slug itself if unknown).
pub fn taxonomy_label(
    lang: Lang,
    entries: &[sportello_domain::taxonomy::TaxonomyEntry],
    slug: &str,
) -> String {
    entries
        .iter()
        .find(|e| e.slug == slug)
        .map(|e| match lang {
            Lang::It => e.label_it.clone(),
            Lang::En => e.label_en.clone(),
        })
        .unwrap_or_else(|| slug.to_owned())
}

/// The confirmation shown after an action succeeded (`?done=` on the page it lands on); only
/// these fixed texts can be shown this way.
pub fn done(lang: Lang, key: &str) -> Option<&'static str> {
    Some(match key {
        "reply" => lang.t(
            "Risposta registrata e messa in coda di invio al cittadino.",
            "Reply saved and queued for delivery to the citizen.",
        ),
        "note" => lang.t("Nota interna aggiunta.", "Internal note added."),
        "status" => lang.t("Stato aggiornato.", "Status updated."),
        "classification" => lang.t("Classificazione aggiornata.", "Classification updated."),
        "escalated" => lang.t(
            "Richiesta passata al back office.",
            "Request escalated to the back office.",
        ),
        "call" => lang.t("Telefonata registrata.", "Phone call logged."),
        "callback" => lang.t(
            "Tentativo di richiamata registrato.",
            "Call-back attempt recorded.",
        ),
        "booked" => lang.t(
            "Appuntamento allo sportello prenotato.",
            "Counter appointment booked.",
        ),
        "taken" => lang.t("Richiesta presa in carico.", "Request taken."),
        "presence" => lang.t("Stato di presenza aggiornato.", "Presence updated."),
        "checked_in" => lang.t("Arrivo registrato.", "Visitor checked in."),
        "called" => lang.t(
            "Visitatore chiamato allo sportello.",
            "Visitor called to the desk.",
        ),
        "nobody" => lang.t("Nessuno in attesa.", "Nobody is waiting."),
        "visit" => lang.t("Visita registrata.", "Visit recorded."),
        _ => return None,
    })
}

/// A `YYYY-MM-DD` day as the operator reads it (`26/11/2026` in Italian); unchanged if it is
/// not a date.
pub fn day(lang: Lang, ymd: &str) -> String {
    match (lang, chrono::NaiveDate::parse_from_str(ymd, "%Y-%m-%d")) {
        (Lang::It, Ok(d)) => d.format("%d/%m/%Y").to_string(),
        _ => ymd.to_owned(),
    }
}
