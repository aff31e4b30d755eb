//! The documents a citizen should bring to the counter, per measure (Italian, shown in the
//! confirmation e-mail and on the desk's screen).

/// Brought to every visit, whatever the measure.
pub const ALWAYS: &[&str] = &[
    "Documento d'identità in corso di validità",
    "Tessera sanitaria o codice fiscale",
];

/// Extra documents per measure slug (the seeded measures of the taxonomy).
const BY_MEASURE: &[(&str, &[&str])] = &[
    (
        "income_support",
        &[
            "Attestazione ISEE in corso di validità",
            "Permesso di soggiorno (per i cittadini non UE)",
            "Coordinate IBAN intestate al richiedente",
        ],
    ),
    (
        "titoli_sociali_l1",
        &[
            "Attestazione ISEE in corso di validità",
            "Verbale di invalidità civile o certificazione di disabilità",
            "Coordinate IBAN intestate al beneficiario",
        ],
    ),
    (
        "titoli_sociali_l2",
        &[
            "Attestazione ISEE sociosanitaria",
            "Verbale di invalidità civile o certificazione di disabilità",
            "Contratto dell'assistente familiare (se presente)",
        ],
    ),
    (
        "titoli_sociali_l4",
        &[
            "Attestazione ISEE sociosanitaria",
            "Certificazione della condizione di disabilità grave (L. 104/1992, art. 3 c. 3)",
            "Coordinate IBAN intestate al beneficiario",
        ],
    ),
    (
        "b2",
        &[
            "Attestazione ISEE sociosanitaria",
            "Verbale di invalidità civile con indennità di accompagnamento",
            "Progetto individuale o piano di assistenza (se presente)",
        ],
    ),
    (
        "dopo_di_noi",
        &[
            "Attestazione ISEE sociosanitaria",
            "Certificazione della disabilità grave (L. 104/1992)",
            "Documentazione sulla situazione familiare e abitativa",
        ],
    ),
    (
        "provi",
        &[
            "Attestazione ISEE sociosanitaria",
            "Certificazione della condizione di disabilità",
            "Proposta di progetto di vita indipendente",
        ],
    ),
    (
        "social_voucher",
        &[
            "Attestazione ISEE in corso di validità",
            "Comunicazione di assegnazione del voucher (se ricevuta)",
        ],
    ),
];

/// The documents to bring for a measure: the ones always needed, then the measure's own. An
/// unknown or missing measure gets only the ones always needed.
pub fn documents_for(measure: Option<&str>) -> Vec<&'static str> {
    let extra = measure
        .and_then(|m| BY_MEASURE.iter().find(|(slug, _)| *slug == m))
        .map(|(_, docs)| *docs)
        .unwrap_or(&[]);
    ALWAYS.iter().chain(extra.iter()).copied().collect()
}

/// The measures that have their own list.
pub fn measures_with_lists() -> impl Iterator<Item = &'static str> {
    BY_MEASURE.iter().map(|(slug, _)| *slug)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_seeded_measure_has_its_own_list() {
        for m in [
            "income_support",
            "titoli_sociali_l1",
            "titoli_sociali_l2",
            "titoli_sociali_l4",
            "b2",
            "dopo_di_noi",
            "provi",
            "social_voucher",
        ] {
            let docs = documents_for(Some(m));
            assert!(docs.len() > ALWAYS.len(), "{m}");
            assert!(docs.iter().any(|d| d.contains("ISEE")), "{m}");
        }
        assert_eq!(measures_with_lists().count(), 8);
    }

    #[test]
    fn unknown_measure_gets_the_basics() {
        assert_eq!(documents_for(None), ALWAYS.to_vec());
        assert_eq!(documents_for(Some("nope")), ALWAYS.to_vec());
    }
}
