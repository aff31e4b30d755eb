//! The citizen's applications ("pratiche", worked by the back office) on the citizen page.

use maud::{Markup, html};
use sportello_service::applications::ApplicationQuery;
use uuid::Uuid;

use super::i18n::{self, Lang};
use super::session::Web;
use crate::AppState;

fn status(lang: Lang, slug: &str) -> &'static str {
    match slug {
        "submitted" => lang.t("Presentata", "Submitted"),
        "under_review" => lang.t("In istruttoria", "Under review"),
        "documents_requested" => lang.t("In attesa di documenti", "Documents requested"),
        "eligible" => lang.t("Ammessa", "Eligible"),
        "not_eligible" => lang.t("Non ammessa", "Not eligible"),
        "payment_scheduled" => lang.t("In pagamento", "Payment scheduled"),
        "paid" => lang.t("Pagata", "Paid"),
        "monitoring" => lang.t("In monitoraggio", "Monitoring"),
        "closed" => lang.t("Chiusa", "Closed"),
        _ => lang.t("Sconosciuto", "Unknown"),
    }
}

/// The applications section of a citizen page.
pub async fn section(state: &AppState, web: &Web, citizen: Uuid) -> Markup {
    let lang = web.lang;
    let q = ApplicationQuery {
        citizen_id: Some(citizen),
        measure: None,
        status: None,
        protocol_number: None,
        limit: Some(50),
        cursor: None,
    };
    let list = state.app.list_applications(&web.actor, &q).await;
    // Roles that may not see applications simply do not get the section.
    if let Err(sportello_service::ServiceError::Forbidden(_)) = list {
        return html! {};
    }
    let tax = state.app.taxonomy();
    html! {
        section aria-labelledby="c-apps-h" {
            @match &list {
                Ok(page) => {
                    h2 id="c-apps-h" { (lang.t("Domande (pratiche)", "Applications")) " (" (page.items.len()) ")" }
                    @if page.items.is_empty() {
                        p class="empty" { (lang.t("Nessuna domanda registrata.", "No applications recorded.")) }
                    } @else {
                        table class="worklist" {
                            caption class="sr-only" { (lang.t("Domande del cittadino", "The citizen's applications")) }
                            thead { tr {
                                th scope="col" { (lang.t("Misura", "Measure")) }
                                th scope="col" { (lang.t("Protocollo", "Protocol no.")) }
                                th scope="col" { (lang.t("Presentata il", "Submitted")) }
                                th scope="col" { (lang.t("Stato", "Status")) }
                                th scope="col" { (lang.t("Documenti mancanti", "Missing documents")) }
                                th scope="col" { (lang.t("Pagato", "Paid")) }
                            } }
                            tbody {
                                @for a in &page.items {
                                    tr {
                                        td { (i18n::taxonomy_label(lang, &tax.measures, &a.measure)) }
                                        td { (a.protocol_number.clone().unwrap_or_else(|| "—".into())) }
                                        td { (i18n::when(lang, web.tz(), a.submitted_at)) }
                                        td { (i18n::badge("application", &a.status, status(lang, &a.status))) }
                                        td { @if a.missing_documents.is_empty() { "—" } @else { (a.missing_documents.join("; ")) } }
                                        td { "€ " (a.paid_total) }
                                    }
                                }
                            }
                        }
                    }
                }
                Err(e) => {
                    h2 id="c-apps-h" { (lang.t("Domande (pratiche)", "Applications")) }
                    p class="empty" { (super::page::error_text(lang, e)) }
                }
            }
        }
    }
}
