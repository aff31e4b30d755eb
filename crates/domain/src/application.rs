//! Back-office applications ("pratiche"): the status workflow from request to payment, ISEE
//! types, money in cents, the per-measure rules (ISEE thresholds, documents checklist,
//! post-payment monitoring) and the mechanical eligibility pre-checks.
//!
//! Pre-checks only ever produce warnings that name the ISEE or the DSU they are about: whether
//! a citizen is eligible is an operator's decision, recorded as a transition with a reason.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{Datelike, Duration, NaiveDate};
use serde::{Deserialize, Serialize};

slug_enum! {
    /// Where an application stands, from the request to the end of post-payment monitoring.
    pub enum ApplicationStatus as "application status" {
        Submitted => "submitted",
        UnderReview => "under_review",
        DocumentsRequested => "documents_requested",
        Eligible => "eligible",
        NotEligible => "not_eligible",
        PaymentScheduled => "payment_scheduled",
        Paid => "paid",
        Monitoring => "monitoring",
        Closed => "closed",
    }
}

slug_enum! {
    /// The kind of ISEE attestation a DSU produced.
    pub enum IseeType as "ISEE type" {
        Ordinario => "ordinario",
        Sociosanitario => "sociosanitario",
        Minorenni => "minorenni",
        /// An update of the ordinary ISEE after a change of income; measured against the
        /// ordinary threshold unless the measure sets one of its own.
        Corrente => "corrente",
    }
}

slug_enum! {
    /// How the application reached the office.
    pub enum SubmissionChannel as "submission channel" {
        Email => "email",
        Pec => "pec",
        Phone => "phone",
        Counter => "counter",
        Web => "web",
        Paper => "paper",
        Other => "other",
    }
}

/// Why a status change is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    #[error(
        "an application cannot go from '{from}' to '{to}'; from '{from}' it can go to: {allowed}"
    )]
    Invalid {
        from: ApplicationStatus,
        to: ApplicationStatus,
        allowed: String,
    },
    #[error("going from '{from}' to '{to}' needs a reason")]
    ReasonRequired {
        from: ApplicationStatus,
        to: ApplicationStatus,
    },
}

impl ApplicationStatus {
    /// The statuses reachable in one step.
    ///
    /// submitted → under review ⇄ documents requested → eligible / not eligible → payment
    /// scheduled → paid → monitoring → closed. A refusal can be reviewed again (an appeal or
    /// new documents: not eligible → under review), an eligible application can still be
    /// refused, and an application can be closed (withdrawn) at any point before payment.
    pub fn allowed_next(self) -> &'static [ApplicationStatus] {
        use ApplicationStatus::*;
        match self {
            Submitted => &[UnderReview, DocumentsRequested, Closed],
            UnderReview => &[DocumentsRequested, Eligible, NotEligible, Closed],
            DocumentsRequested => &[UnderReview, Eligible, NotEligible, Closed],
            Eligible => &[PaymentScheduled, UnderReview, NotEligible, Closed],
            NotEligible => &[UnderReview, Closed],
            PaymentScheduled => &[Paid, Closed],
            Paid => &[Monitoring, Closed],
            Monitoring => &[Closed],
            Closed => &[],
        }
    }

    /// Whether a move needs a reason: every refusal, and closing an application that was
    /// neither refused nor paid (a withdrawal or a cancellation).
    pub fn requires_reason(self, to: ApplicationStatus) -> bool {
        use ApplicationStatus::*;
        to == NotEligible || (to == Closed && !matches!(self, NotEligible | Paid | Monitoring))
    }

    /// Checks a move, explaining the allowed ones when it is refused.
    pub fn transition(
        self,
        to: ApplicationStatus,
        reason: Option<&str>,
    ) -> Result<ApplicationStatus, TransitionError> {
        if !self.allowed_next().contains(&to) {
            let allowed = self.allowed_next();
            return Err(TransitionError::Invalid {
                from: self,
                to,
                allowed: if allowed.is_empty() {
                    "nothing (it is final)".to_owned()
                } else {
                    allowed
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                },
            });
        }
        if self.requires_reason(to) && reason.is_none_or(|r| r.trim().is_empty()) {
            return Err(TransitionError::ReasonRequired { from: self, to });
        }
        Ok(to)
    }

    /// Whether payments may be recorded in this status.
    pub fn accepts_payments(self) -> bool {
        matches!(
            self,
            ApplicationStatus::PaymentScheduled | ApplicationStatus::Paid
        )
    }

    /// Italian label for operators and e-mails.
    pub fn label_it(self) -> &'static str {
        use ApplicationStatus::*;
        match self {
            Submitted => "presentata",
            UnderReview => "in istruttoria",
            DocumentsRequested => "in attesa di documenti",
            Eligible => "ammessa",
            NotEligible => "non ammessa",
            PaymentScheduled => "in pagamento",
            Paid => "pagata",
            Monitoring => "in monitoraggio",
            Closed => "chiusa",
        }
    }
}

impl IseeType {
    pub fn label_it(self) -> &'static str {
        match self {
            IseeType::Ordinario => "ISEE ordinario",
            IseeType::Sociosanitario => "ISEE sociosanitario",
            IseeType::Minorenni => "ISEE minorenni",
            IseeType::Corrente => "ISEE corrente",
        }
    }
}

/// Largest amount accepted, in cents (one billion euros minus a cent).
pub const MAX_CENTS: i64 = 99_999_999_999;

/// A non-negative amount of euros, held in cents so sums are exact.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Money(i64);

/// A string that is not an amount of euros.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("must not be empty: give an amount in euros like \"750.00\"")]
    Empty,
    #[error("'{0}' is negative: amounts are zero or more")]
    Negative(String),
    #[error("'{0}' has more than two decimals: amounts are in euros and cents, like \"750.00\"")]
    TooManyDecimals(String),
    #[error(
        "'{0}' uses a comma: write the amount with a dot before the cents and no thousands separator, like \"1250.50\""
    )]
    Comma(String),
    #[error(
        "'{0}' is not an amount in euros (expected digits with up to two decimals, like \"750.00\")"
    )]
    NotANumber(String),
    #[error("'{0}' is too large (at most 999999999.99)")]
    TooLarge(String),
}

impl Money {
    pub const ZERO: Money = Money(0);

    /// An amount from cents; None when negative or too large.
    pub fn from_cents(cents: i64) -> Option<Money> {
        (0..=MAX_CENTS).contains(&cents).then_some(Money(cents))
    }

    pub fn cents(self) -> i64 {
        self.0
    }

    /// Parses euros written as digits with up to two decimals after a dot (`"750"`,
    /// `"750.5"`, `"750.00"`); surrounding spaces are ignored.
    pub fn parse(value: &str) -> Result<Money, MoneyError> {
        let v = value.trim();
        if v.is_empty() {
            return Err(MoneyError::Empty);
        }
        let bad = || MoneyError::NotANumber(v.to_owned());
        if let Some(rest) = v.strip_prefix('-') {
            // Only a well-formed negative number is called negative; "-abc" is garbage.
            if rest.starts_with(['-', ' ', '+']) {
                return Err(bad());
            }
            return match Money::parse(rest) {
                Ok(m) if m.0 == 0 => Ok(Money::ZERO),
                Ok(_)
                | Err(MoneyError::TooManyDecimals(_))
                | Err(MoneyError::TooLarge(_))
                | Err(MoneyError::Comma(_)) => Err(MoneyError::Negative(v.to_owned())),
                Err(_) => Err(bad()),
            };
        }
        if v.contains(',') {
            return Err(MoneyError::Comma(v.to_owned()));
        }
        let (whole, frac) = match v.split_once('.') {
            Some((w, f)) => (w, Some(f)),
            None => (v, None),
        };
        if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let frac = match frac {
            None => "",
            Some(f) if f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit()) => {
                return Err(bad());
            }
            Some(f) if f.len() > 2 => return Err(MoneyError::TooManyDecimals(v.to_owned())),
            Some(f) => f,
        };
        let whole = whole.trim_start_matches('0');
        if whole.len() > 9 {
            return Err(MoneyError::TooLarge(v.to_owned()));
        }
        let euros: i64 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| bad())?
        };
        let cents: i64 = match frac.len() {
            0 => 0,
            1 => frac.parse::<i64>().map_err(|_| bad())? * 10,
            _ => frac.parse().map_err(|_| bad())?,
        };
        Money::from_cents(euros * 100 + cents).ok_or_else(|| MoneyError::TooLarge(v.to_owned()))
    }

    /// Italian notation for letters: `1.250,50`.
    pub fn to_italian(self) -> String {
        let euros = (self.0 / 100).to_string();
        let mut grouped = String::new();
        for (i, c) in euros.chars().enumerate() {
            if i > 0 && (euros.len() - i).is_multiple_of(3) {
                grouped.push('.');
            }
            grouped.push(c);
        }
        format!("{grouped},{:02}", self.0 % 100)
    }

    pub fn checked_add(self, other: Money) -> Option<Money> {
        Money::from_cents(self.0.checked_add(other.0)?)
    }
}

impl fmt::Display for Money {
    /// `750.00`: the form the API reads and writes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02}", self.0 / 100, self.0 % 100)
    }
}

impl std::str::FromStr for Money {
    type Err = MoneyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Money::parse(s)
    }
}

impl Serialize for Money {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Money {
    /// From a decimal string, or (for configuration files) a number.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Money;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an amount in euros like \"750.00\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Money, E> {
                Money::parse(v).map_err(E::custom)
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Money, E> {
                Money::parse(&v.to_string()).map_err(E::custom)
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Money, E> {
                Money::parse(&v.to_string()).map_err(E::custom)
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Money, E> {
                Money::parse(&v.to_string()).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// One document of a measure's checklist.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentSpec {
    /// Slug, unique within the checklist (`documento_identita`).
    pub name: String,
    /// Italian label shown to operators and written in e-mails.
    pub label: String,
    /// Optional documents are listed but never block an application.
    #[serde(default = "yes")]
    pub required: bool,
}

fn yes() -> bool {
    true
}

/// What an office needs to know about a measure to process its applications.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeasureRules {
    /// Whether an application without ISEE data gets a warning.
    pub isee_required: bool,
    /// Highest ISEE value admitted, per ISEE type; an empty map checks no value.
    pub thresholds: BTreeMap<IseeType, Money>,
    pub documents: Vec<DocumentSpec>,
    /// Days after the last instalment's payment date when a monitoring check falls due; one
    /// back-office ticket per check.
    pub monitoring_after_days: Vec<u32>,
}

fn doc(name: &str, label: &str, required: bool) -> DocumentSpec {
    DocumentSpec {
        name: name.to_owned(),
        label: label.to_owned(),
        required,
    }
}

fn euros(e: i64) -> Money {
    Money(e * 100)
}

/// This service's defaults for a measure of the seeded taxonomy; a measure added later gets
/// the identity document and the IBAN, and no ISEE check.
///
/// Thresholds: income support, ISEE ordinario up to €6,000; B2, ISEE sociosanitario up to
/// €25,000, and up to €40,000 for minors (an "ISEE minorenni", the ordinary ISEE computed for
/// a child's household).
pub fn default_rules(measure: &str) -> MeasureRules {
    let id = doc(
        "documento_identita",
        "Documento d'identità in corso di validità",
        true,
    );
    let cf = doc("codice_fiscale", "Tessera sanitaria o codice fiscale", true);
    let isee = doc(
        "attestazione_isee",
        "Attestazione ISEE in corso di validità",
        true,
    );
    let isee_ss = doc(
        "attestazione_isee",
        "Attestazione ISEE sociosanitario in corso di validità",
        true,
    );
    let iban = doc(
        "iban",
        "Coordinate IBAN intestate al richiedente o al beneficiario",
        true,
    );
    let invalidita = doc(
        "certificazione_invalidita",
        "Verbale di invalidità civile o certificazione di disabilità",
        true,
    );
    let l104 = doc(
        "verbale_l104",
        "Verbale di disabilità grave (L. 104/1992, art. 3 comma 3)",
        true,
    );
    let progetto = doc("progetto_individuale", "Progetto individuale", true);
    let monitoring = vec![90, 180];
    let (isee_required, thresholds, documents, monitoring_after_days) = match measure {
        "income_support" => (
            true,
            BTreeMap::from([(IseeType::Ordinario, euros(6_000))]),
            vec![
                id,
                cf,
                isee,
                iban,
                doc(
                    "permesso_soggiorno",
                    "Permesso di soggiorno (per i cittadini non UE)",
                    false,
                ),
                doc(
                    "dichiarazione_lavoro",
                    "Dichiarazione sulla situazione lavorativa (DID o contratto)",
                    true,
                ),
            ],
            vec![90, 180],
        ),
        "titoli_sociali_l1" | "titoli_sociali_l2" | "titoli_sociali_l4" => (
            true,
            BTreeMap::new(),
            vec![id, cf, isee_ss, invalidita, iban],
            monitoring,
        ),
        "b2" => (
            true,
            BTreeMap::from([
                (IseeType::Sociosanitario, euros(25_000)),
                (IseeType::Minorenni, euros(40_000)),
            ]),
            vec![
                id,
                cf,
                doc(
                    "attestazione_isee",
                    "Attestazione ISEE sociosanitario (o ISEE minorenni per i minori)",
                    true,
                ),
                doc(
                    "certificazione_invalidita",
                    "Verbale di invalidità civile con indennità di accompagnamento",
                    true,
                ),
                l104,
                iban,
                doc(
                    "contratto_assistente",
                    "Contratto dell'assistente familiare (se presente)",
                    false,
                ),
            ],
            monitoring,
        ),
        "dopo_di_noi" => (
            true,
            BTreeMap::new(),
            vec![
                id,
                cf,
                isee_ss,
                l104,
                progetto,
                doc(
                    "situazione_familiare",
                    "Documentazione sulla situazione familiare e abitativa",
                    false,
                ),
                iban,
            ],
            monitoring,
        ),
        "provi" => (
            false,
            BTreeMap::new(),
            vec![
                id,
                cf,
                invalidita,
                doc(
                    "progetto_individuale",
                    "Progetto individuale di vita indipendente (PRO.VI)",
                    true,
                ),
                doc(
                    "attestazione_isee",
                    "Attestazione ISEE sociosanitario (se richiesta dal bando)",
                    false,
                ),
                iban,
            ],
            monitoring,
        ),
        "social_voucher" => (
            true,
            BTreeMap::new(),
            vec![
                id,
                cf,
                isee,
                doc(
                    "relazione_servizio_sociale",
                    "Relazione del servizio sociale (se presente)",
                    false,
                ),
            ],
            vec![90],
        ),
        _ => (false, BTreeMap::new(), vec![id, iban], Vec::new()),
    };
    MeasureRules {
        isee_required,
        thresholds,
        documents,
        monitoring_after_days,
    }
}

/// A document checklist that is not usable.
pub fn validate_documents(docs: &[DocumentSpec]) -> Result<(), String> {
    let mut seen = std::collections::BTreeSet::new();
    for d in docs {
        crate::taxonomy::validate_slug(&d.name).map_err(|e| format!("document name: {e}"))?;
        if d.label.trim().is_empty() {
            return Err(format!("document '{}' has an empty label", d.name));
        }
        if !seen.insert(d.name.as_str()) {
            return Err(format!("document '{}' is listed twice", d.name));
        }
    }
    Ok(())
}

/// The ISEE data of an application.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IseeData {
    pub kind: Option<IseeType>,
    pub value: Option<Money>,
    pub dsu_protocol: Option<String>,
    pub dsu_date: Option<NaiveDate>,
    pub expires_on: Option<NaiveDate>,
}

impl IseeData {
    /// When the attestation stops being valid: the given expiry, else 31 December of the
    /// DSU's year (an ISEE is valid until the end of the year its DSU was filed in).
    pub fn expiry(&self) -> Option<NaiveDate> {
        self.expires_on.or_else(|| {
            self.dsu_date
                .and_then(|d| NaiveDate::from_ymd_opt(d.year(), 12, 31))
        })
    }
}

slug_enum! {
    /// What a pre-check noticed.
    pub enum WarningCode as "warning" {
        IseeMissing => "isee_missing",
        IseeOverThreshold => "isee_over_threshold",
        IseeTypeNotConsidered => "isee_type_not_considered",
        DsuExpired => "dsu_expired",
        DsuDateMissing => "dsu_date_missing",
        DsuProtocolMissing => "dsu_protocol_missing",
    }
}

/// A pre-check's finding, for the operator to weigh; never a decision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Warning {
    pub code: WarningCode,
    /// Italian, naming the ISEE or the DSU concerned.
    pub message: String,
    /// The same in English.
    pub message_en: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub isee_type: Option<IseeType>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub isee_value: Option<Money>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold: Option<Money>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dsu_protocol: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dsu_date: Option<NaiveDate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_on: Option<NaiveDate>,
}

impl Warning {
    fn new(code: WarningCode, message: String, message_en: String) -> Warning {
        Warning {
            code,
            message,
            message_en,
            isee_type: None,
            isee_value: None,
            threshold: None,
            dsu_protocol: None,
            dsu_date: None,
            expires_on: None,
        }
    }
}

/// The mechanical pre-checks of an application for `measure`, as of `reference` (the
/// submission date): ISEE missing when the measure needs one, ISEE over the measure's
/// threshold for its type, a type the measure sets no threshold for, DSU expired or
/// impossible to date.
pub fn pre_check(
    measure: &str,
    rules: &MeasureRules,
    isee: Option<&IseeData>,
    reference: NaiveDate,
) -> Vec<Warning> {
    let mut out = Vec::new();
    let Some(isee) = isee.filter(|i| i.value.is_some() || i.kind.is_some()) else {
        if rules.isee_required {
            out.push(Warning::new(
                WarningCode::IseeMissing,
                format!("ISEE non indicato: la misura {measure} richiede un'attestazione ISEE"),
                format!("no ISEE given: measure {measure} requires an ISEE attestation"),
            ));
        }
        return out;
    };
    let protocol = isee
        .dsu_protocol
        .as_deref()
        .map(str::trim)
        .filter(|p| !p.is_empty());
    let dsu_name = match protocol {
        Some(p) => format!("DSU {p}"),
        None => "DSU".to_owned(),
    };
    if let (Some(kind), Some(value)) = (isee.kind, isee.value) {
        let threshold = rules.thresholds.get(&kind).copied().or_else(|| {
            (kind == IseeType::Corrente)
                .then(|| rules.thresholds.get(&IseeType::Ordinario).copied())
                .flatten()
        });
        match threshold {
            Some(t) if value > t => {
                let mut w = Warning::new(
                    WarningCode::IseeOverThreshold,
                    format!(
                        "{} di {value} € ({dsu_name}) oltre la soglia di {t} € prevista dalla misura {measure}",
                        kind.label_it()
                    ),
                    format!(
                        "ISEE {kind} of {value} € ({dsu_name}) is over the threshold of {t} € for measure {measure}"
                    ),
                );
                w.isee_type = Some(kind);
                w.isee_value = Some(value);
                w.threshold = Some(t);
                w.dsu_protocol = protocol.map(str::to_owned);
                out.push(w);
            }
            Some(_) => {}
            None if !rules.thresholds.is_empty() => {
                let considered = rules
                    .thresholds
                    .keys()
                    .map(|k| k.as_str())
                    .collect::<Vec<_>>()
                    .join(", ");
                let mut w = Warning::new(
                    WarningCode::IseeTypeNotConsidered,
                    format!(
                        "{} di {value} € ({dsu_name}): la misura {measure} prevede soglie solo per ISEE {considered}",
                        kind.label_it()
                    ),
                    format!(
                        "ISEE {kind} of {value} € ({dsu_name}): measure {measure} sets thresholds only for ISEE {considered}"
                    ),
                );
                w.isee_type = Some(kind);
                w.isee_value = Some(value);
                w.dsu_protocol = protocol.map(str::to_owned);
                out.push(w);
            }
            None => {}
        }
    } else if rules.isee_required {
        out.push(Warning::new(
            WarningCode::IseeMissing,
            format!("valore o tipo dell'ISEE non indicato ({dsu_name}): la misura {measure} richiede un'attestazione ISEE"),
            format!("ISEE value or type not given ({dsu_name}): measure {measure} requires an ISEE attestation"),
        ));
    }
    if protocol.is_none() {
        out.push(Warning::new(
            WarningCode::DsuProtocolMissing,
            "numero di protocollo della DSU non indicato: l'ISEE non può essere verificato presso l'INPS".to_owned(),
            "DSU protocol number not given: the ISEE cannot be checked with INPS".to_owned(),
        ));
    }
    match isee.expiry() {
        Some(exp) if exp < reference => {
            let since = match isee.dsu_date {
                Some(d) => format!(" del {d}"),
                None => String::new(),
            };
            let since_en = match isee.dsu_date {
                Some(d) => format!(" filed on {d}"),
                None => String::new(),
            };
            let mut w = Warning::new(
                WarningCode::DsuExpired,
                format!(
                    "{dsu_name}{since} scaduta il {exp}: alla presentazione ({reference}) l'ISEE non era più valido"
                ),
                format!(
                    "{dsu_name}{since_en} expired on {exp}: the ISEE was no longer valid when the application was submitted ({reference})"
                ),
            );
            w.dsu_protocol = protocol.map(str::to_owned);
            w.dsu_date = isee.dsu_date;
            w.expires_on = Some(exp);
            out.push(w);
        }
        Some(_) => {}
        None => {
            let mut w = Warning::new(
                WarningCode::DsuDateMissing,
                format!(
                    "data della {dsu_name} e scadenza non indicate: la validità dell'ISEE non può essere controllata"
                ),
                format!(
                    "neither the date of the {dsu_name} nor its expiry given: the ISEE's validity cannot be checked"
                ),
            );
            w.dsu_protocol = protocol.map(str::to_owned);
            out.push(w);
        }
    }
    out
}

/// The due dates of the monitoring checks after a payment on `paid_on`, in order.
pub fn monitoring_due_dates(paid_on: NaiveDate, after_days: &[u32]) -> Vec<NaiveDate> {
    let mut days: Vec<u32> = after_days.to_vec();
    days.sort_unstable();
    days.dedup();
    days.into_iter()
        .map(|d| paid_on + Duration::days(i64::from(d)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn the_documented_path_is_allowed() {
        use ApplicationStatus::*;
        let path = [
            Submitted,
            UnderReview,
            DocumentsRequested,
            UnderReview,
            Eligible,
            PaymentScheduled,
            Paid,
            Monitoring,
            Closed,
        ];
        for w in path.windows(2) {
            assert_eq!(w[0].transition(w[1], None), Ok(w[1]), "{} → {}", w[0], w[1]);
        }
    }

    #[test]
    fn refused_moves_name_both_ends_and_refusals_need_a_reason() {
        use ApplicationStatus::*;
        let e = Submitted.transition(Paid, None).unwrap_err().to_string();
        assert!(e.contains("'submitted'") && e.contains("'paid'"), "{e}");
        assert!(e.contains("under_review"), "{e}");
        let e = Closed
            .transition(UnderReview, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("final"), "{e}");
        assert_eq!(
            UnderReview.transition(NotEligible, None),
            Err(TransitionError::ReasonRequired {
                from: UnderReview,
                to: NotEligible
            })
        );
        assert!(UnderReview.transition(NotEligible, Some("  ")).is_err());
        assert_eq!(
            UnderReview.transition(NotEligible, Some("ISEE oltre soglia")),
            Ok(NotEligible)
        );
        // Withdrawals need a reason; closing after payment or refusal does not.
        assert!(Submitted.transition(Closed, None).is_err());
        assert!(Paid.transition(Closed, None).is_ok());
        assert!(NotEligible.transition(Closed, None).is_ok());
    }

    #[test]
    fn every_status_is_reachable_and_closed_is_final() {
        use std::collections::BTreeSet;
        let mut seen = BTreeSet::from([ApplicationStatus::Submitted]);
        let mut todo = vec![ApplicationStatus::Submitted];
        while let Some(s) = todo.pop() {
            for n in s.allowed_next() {
                if seen.insert(*n) {
                    todo.push(*n);
                }
            }
        }
        assert_eq!(seen.len(), ApplicationStatus::ALL.len());
        assert!(ApplicationStatus::Closed.allowed_next().is_empty());
    }

    #[test]
    fn money_parses_euros_and_cents() {
        assert_eq!(Money::parse("750.00").unwrap().cents(), 75_000);
        assert_eq!(Money::parse(" 750 ").unwrap().cents(), 75_000);
        assert_eq!(Money::parse("750.5").unwrap().cents(), 75_050);
        assert_eq!(Money::parse("0.07").unwrap().cents(), 7);
        assert_eq!(Money::parse("0").unwrap(), Money::ZERO);
        assert_eq!(Money::parse("-0.00").unwrap(), Money::ZERO);
        assert_eq!(Money::parse("750.00").unwrap().to_string(), "750.00");
        assert_eq!(Money::parse("1250.5").unwrap().to_italian(), "1.250,50");
        assert_eq!(Money::parse("25000").unwrap().to_italian(), "25.000,00");
        assert_eq!(Money::parse("999").unwrap().to_italian(), "999,00");
        assert_eq!(
            Money::parse("999999999.99").unwrap().cents(),
            99_999_999_999
        );
    }

    #[test]
    fn money_refuses_what_is_not_an_amount_with_a_clear_error() {
        assert_eq!(Money::parse(""), Err(MoneyError::Empty));
        assert!(matches!(
            Money::parse("-750.00"),
            Err(MoneyError::Negative(_))
        ));
        assert!(matches!(
            Money::parse("750.001"),
            Err(MoneyError::TooManyDecimals(_))
        ));
        assert!(matches!(Money::parse("750,00"), Err(MoneyError::Comma(_))));
        assert!(matches!(
            Money::parse("1000000000"),
            Err(MoneyError::TooLarge(_))
        ));
        for garbage in [
            "abc", "7a0", "750.", ".50", "1e3", "--5", "-abc", "+5", "7 50", "0x10", "NaN", "€750",
        ] {
            assert!(
                matches!(Money::parse(garbage), Err(MoneyError::NotANumber(_))),
                "{garbage}: {:?}",
                Money::parse(garbage)
            );
        }
        let msg = Money::parse("750.001").unwrap_err().to_string();
        assert!(
            msg.contains("750.001") && msg.contains("two decimals"),
            "{msg}"
        );
    }

    #[test]
    fn money_reads_strings_and_config_numbers() {
        let m: Money = serde_json::from_str("\"6000.00\"").unwrap();
        assert_eq!(m.cents(), 600_000);
        let m: Money = serde_json::from_str("6000").unwrap();
        assert_eq!(m.cents(), 600_000);
        let m: Money = serde_json::from_str("6000.5").unwrap();
        assert_eq!(m.cents(), 600_050);
        assert!(serde_json::from_str::<Money>("\"-1\"").is_err());
        assert_eq!(serde_json::to_string(&m).unwrap(), "\"6000.50\"");
    }

    fn isee(kind: IseeType, value: &str, dsu: &str) -> IseeData {
        IseeData {
            kind: Some(kind),
            value: Some(Money::parse(value).unwrap()),
            dsu_protocol: Some("INPS-ISEE-2026-00012345F-00".into()),
            dsu_date: Some(d(dsu)),
            expires_on: None,
        }
    }

    #[test]
    fn isee_over_the_threshold_is_a_warning_naming_value_and_threshold() {
        let rules = default_rules("b2");
        let w = pre_check(
            "b2",
            &rules,
            Some(&isee(IseeType::Sociosanitario, "30000.00", "2026-02-01")),
            d("2026-03-01"),
        );
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!(w[0].code, WarningCode::IseeOverThreshold);
        assert!(w[0].message.contains("30000.00"), "{}", w[0].message);
        assert!(w[0].message.contains("25000.00"), "{}", w[0].message);
        assert!(w[0].message.contains("INPS-ISEE-2026-00012345F-00"));
        assert_eq!(w[0].threshold, Some(euros(25_000)));
        // At the threshold is fine; minors have their own, higher one.
        let at = isee(IseeType::Sociosanitario, "25000.00", "2026-02-01");
        assert!(pre_check("b2", &rules, Some(&at), d("2026-03-01")).is_empty());
        let minor = isee(IseeType::Minorenni, "39999.99", "2026-02-01");
        assert!(pre_check("b2", &rules, Some(&minor), d("2026-03-01")).is_empty());
        // A type the measure sets no threshold for is pointed out.
        let ord = isee(IseeType::Ordinario, "1000", "2026-02-01");
        let w = pre_check("b2", &rules, Some(&ord), d("2026-03-01"));
        assert_eq!(w[0].code, WarningCode::IseeTypeNotConsidered);
        // The current ISEE is held to the ordinary threshold.
        let cur = isee(IseeType::Corrente, "6000.01", "2026-02-01");
        let w = pre_check(
            "income_support",
            &default_rules("income_support"),
            Some(&cur),
            d("2026-03-01"),
        );
        assert_eq!(w[0].code, WarningCode::IseeOverThreshold);
        assert_eq!(w[0].threshold, Some(euros(6_000)));
    }

    #[test]
    fn an_expired_dsu_is_a_warning_naming_date_and_expiry() {
        let rules = default_rules("income_support");
        let old = isee(IseeType::Ordinario, "4000", "2025-03-10");
        let w = pre_check("income_support", &rules, Some(&old), d("2026-01-15"));
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!(w[0].code, WarningCode::DsuExpired);
        assert!(w[0].message.contains("2025-03-10"), "{}", w[0].message);
        assert!(w[0].message.contains("2025-12-31"), "{}", w[0].message);
        assert_eq!(w[0].expires_on, Some(d("2025-12-31")));
        // Valid through 31 December of its year; an explicit expiry wins.
        assert!(pre_check("income_support", &rules, Some(&old), d("2025-12-31")).is_empty());
        let mut given = old.clone();
        given.expires_on = Some(d("2026-06-30"));
        assert!(pre_check("income_support", &rules, Some(&given), d("2026-01-15")).is_empty());
    }

    #[test]
    fn missing_isee_and_undated_dsu_are_pointed_out() {
        let w = pre_check(
            "income_support",
            &default_rules("income_support"),
            None,
            d("2026-01-15"),
        );
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].code, WarningCode::IseeMissing);
        assert!(w[0].message.contains("income_support"));
        assert!(pre_check("provi", &default_rules("provi"), None, d("2026-01-15")).is_empty());
        let undated = IseeData {
            kind: Some(IseeType::Ordinario),
            value: Some(euros(100)),
            ..Default::default()
        };
        let codes: Vec<_> = pre_check(
            "income_support",
            &default_rules("income_support"),
            Some(&undated),
            d("2026-01-15"),
        )
        .into_iter()
        .map(|w| w.code)
        .collect();
        assert_eq!(
            codes,
            vec![WarningCode::DsuProtocolMissing, WarningCode::DsuDateMissing]
        );
    }

    #[test]
    fn default_checklists_are_valid_for_every_seeded_measure() {
        for m in crate::taxonomy::default_measures() {
            let r = default_rules(&m.slug);
            validate_documents(&r.documents).unwrap();
            assert!(r.documents.iter().any(|d| d.name == "documento_identita"));
        }
        let provi = default_rules("provi");
        assert!(
            provi
                .documents
                .iter()
                .any(|d| d.name == "progetto_individuale")
        );
        assert!(
            default_rules("b2")
                .documents
                .iter()
                .any(|d| d.name == "verbale_l104")
        );
        let dup = vec![doc("iban", "IBAN", true), doc("iban", "IBAN", false)];
        assert!(validate_documents(&dup).is_err());
    }

    #[test]
    fn monitoring_dates_follow_the_payment() {
        assert_eq!(
            monitoring_due_dates(d("2026-01-31"), &[180, 90, 90]),
            vec![d("2026-05-01"), d("2026-07-30")]
        );
        assert!(monitoring_due_dates(d("2026-01-31"), &[]).is_empty());
    }

    proptest! {
        #[test]
        fn money_round_trips_through_its_text(cents in 0i64..=MAX_CENTS) {
            let m = Money::from_cents(cents).unwrap();
            prop_assert_eq!(Money::parse(&m.to_string()), Ok(m));
        }

        #[test]
        fn money_never_panics_and_accepts_only_what_it_prints(s in "[-0-9.,a-z ]{0,14}") {
            if let Ok(m) = Money::parse(&s) {
                let t = s.trim().trim_start_matches('-');
                let (w, f) = t.split_once('.').unwrap_or((t, ""));
                prop_assert!(!w.is_empty() && f.len() <= 2);
                prop_assert!(m.cents() >= 0);
            }
        }

        #[test]
        fn every_transition_is_decided_by_the_table(
            from in proptest::sample::select(ApplicationStatus::ALL),
            to in proptest::sample::select(ApplicationStatus::ALL),
        ) {
            let r = from.transition(to, Some("motivo"));
            prop_assert_eq!(r.is_ok(), from.allowed_next().contains(&to));
            if let Err(e) = r {
                let text = e.to_string();
                prop_assert!(text.contains(from.as_str()) && text.contains(to.as_str()));
            }
        }

        #[test]
        fn over_threshold_iff_value_exceeds_it(value in 0i64..10_000_000, threshold in 0i64..10_000_000) {
            let rules = MeasureRules {
                isee_required: true,
                thresholds: BTreeMap::from([(IseeType::Ordinario, Money(threshold))]),
                documents: Vec::new(),
                monitoring_after_days: Vec::new(),
            };
            let data = IseeData {
                kind: Some(IseeType::Ordinario),
                value: Some(Money(value)),
                dsu_protocol: Some("P".into()),
                dsu_date: Some(d("2026-01-01")),
                expires_on: None,
            };
            let w = pre_check("m", &rules, Some(&data), d("2026-02-01"));
            prop_assert_eq!(!w.is_empty(), value > threshold);
        }
    }
}
