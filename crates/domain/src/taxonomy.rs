//! Categories and measures: configurable lists of slugs, seeded with this service's defaults.

use serde::{Deserialize, Serialize};

/// Which list a taxonomy entry belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaxonomyKind {
    Category,
    Measure,
}

impl TaxonomyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TaxonomyKind::Category => "category",
            TaxonomyKind::Measure => "measure",
        }
    }
}

/// One entry of a list: a stable slug and its labels for operators.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaxonomyEntry {
    pub slug: String,
    pub label_it: String,
    pub label_en: String,
}

/// A slug that is not shaped like one (lowercase letters, digits and `_`, 1–40 characters).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "'{0}' is not a valid slug: use 1–40 lowercase letters, digits or '_', starting with a letter"
)]
pub struct InvalidSlug(pub String);

/// Checks the shape of a slug.
pub fn validate_slug(slug: &str) -> Result<(), InvalidSlug> {
    let ok = !slug.is_empty()
        && slug.len() <= 40
        && slug.as_bytes()[0].is_ascii_lowercase()
        && slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(InvalidSlug(slug.to_owned()))
    }
}

const DEFAULT_CATEGORIES: &[(&str, &str, &str)] = &[
    (
        "eligibility",
        "Requisiti e informazioni",
        "Eligibility and information",
    ),
    ("how_to_apply", "Come presentare domanda", "How to apply"),
    (
        "application_status",
        "Stato della domanda",
        "Application status",
    ),
    (
        "missing_documents",
        "Documenti mancanti",
        "Missing documents",
    ),
    ("payments", "Pagamenti", "Payments"),
    ("isee", "ISEE e DSU", "ISEE and DSU"),
    ("outcome_appeal", "Esito e ricorsi", "Outcome and appeals"),
    (
        "changes",
        "Variazioni (residenza, IBAN)",
        "Changes (residence, IBAN)",
    ),
    (
        "counter_appointment",
        "Appuntamento allo sportello",
        "Counter appointment",
    ),
    ("complaint", "Reclamo", "Complaint"),
    ("privacy", "Richiesta privacy", "Privacy request"),
];

const DEFAULT_MEASURES: &[(&str, &str, &str)] = &[
    ("income_support", "Sostegno al reddito", "Income support"),
    (
        "titoli_sociali_l1",
        "Titoli Sociali L1",
        "Titoli Sociali L1",
    ),
    (
        "titoli_sociali_l2",
        "Titoli Sociali L2",
        "Titoli Sociali L2",
    ),
    (
        "titoli_sociali_l4",
        "Titoli Sociali L4",
        "Titoli Sociali L4",
    ),
    ("b2", "Misura B2", "Measure B2"),
    ("dopo_di_noi", "Dopo di Noi", "Dopo di Noi (after us)"),
    (
        "provi",
        "Progetti di vita indipendente (PRO.VI)",
        "Independent living projects (PRO.VI)",
    ),
    ("social_voucher", "Voucher sociali", "Social vouchers"),
];

fn entries(list: &[(&str, &str, &str)]) -> Vec<TaxonomyEntry> {
    list.iter()
        .map(|(slug, it, en)| TaxonomyEntry {
            slug: (*slug).to_owned(),
            label_it: (*it).to_owned(),
            label_en: (*en).to_owned(),
        })
        .collect()
}

/// The categories a new installation starts with.
pub fn default_categories() -> Vec<TaxonomyEntry> {
    entries(DEFAULT_CATEGORIES)
}

/// The measures a new installation starts with.
pub fn default_measures() -> Vec<TaxonomyEntry> {
    entries(DEFAULT_MEASURES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_distinct_slugs() {
        for list in [default_categories(), default_measures()] {
            let mut slugs: Vec<_> = list.iter().map(|e| e.slug.clone()).collect();
            for s in &slugs {
                validate_slug(s).unwrap();
            }
            slugs.sort();
            slugs.dedup();
            assert_eq!(slugs.len(), list.len());
        }
        assert!(validate_slug("Income").is_err());
        assert!(validate_slug("9b").is_err());
    }
}
