//! Prepared answers ("risposte predefinite"): the placeholders a template may use, their
//! validation at save time, and a renderer that fills them without ever failing.
//!
//! Syntax: `{{name}}` (spaces inside the braces are allowed). Anything else — single braces,
//! a `{{` that never closes, text that only looks like a placeholder — is plain text. The
//! output is a plain-text e-mail, so nothing is escaped, and values are inserted in one pass:
//! a citizen's name that contains `{{...}}` is never expanded again.

use chrono::{Datelike, NaiveDate, Weekday};
use serde::{Deserialize, Serialize};

/// The languages an answer may be written in.
pub const LANGS: &[&str] = &["it", "en"];

/// Checks an answer's language code.
pub fn validate_lang(lang: &str) -> Result<(), String> {
    if LANGS.contains(&lang) {
        Ok(())
    } else {
        Err(format!(
            "'{lang}' is not a supported language: use 'it' or 'en'"
        ))
    }
}

/// What an answer is about, with labels for operators; the console offers them as filters.
pub const TOPICS: &[(&str, &str, &str)] = &[
    ("who_can_apply", "Chi può fare domanda", "Who can apply"),
    ("isee_thresholds", "Soglie ISEE", "ISEE thresholds"),
    ("documents", "Documenti da presentare", "Documents to bring"),
    (
        "how_to_apply",
        "Dove e come fare domanda",
        "Where and how to apply",
    ),
    ("payment_timing", "Tempi di pagamento", "Payment timing"),
    (
        "application_status",
        "Stato della domanda",
        "Application status",
    ),
    (
        "appointment",
        "Appuntamento allo sportello",
        "Counter appointment",
    ),
    ("general", "Informazioni generali", "General information"),
];

/// A topic with its labels, as the API lists them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topic {
    pub slug: String,
    pub label_it: String,
    pub label_en: String,
}

/// Every topic, in the order the console shows them.
pub fn topics() -> Vec<Topic> {
    TOPICS
        .iter()
        .map(|(slug, it, en)| Topic {
            slug: (*slug).to_owned(),
            label_it: (*it).to_owned(),
            label_en: (*en).to_owned(),
        })
        .collect()
}

/// Checks a topic slug against the known topics.
pub fn validate_topic(topic: &str) -> Result<(), String> {
    if TOPICS.iter().any(|(s, _, _)| *s == topic) {
        Ok(())
    } else {
        Err(format!(
            "'{}' is not a known topic: use one of {}",
            clip(topic),
            TOPICS
                .iter()
                .map(|(s, _, _)| *s)
                .collect::<Vec<_>>()
                .join(", ")
        ))
    }
}

/// A value a template can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Placeholder {
    /// The citizen's full name, as registered.
    CitizenName,
    /// The ticket number, e.g. `SP-2026-000123` (citizens quote it when they write back).
    TicketNumber,
    /// The ticket's subject.
    TicketSubject,
    /// The name of the operator sending the answer.
    OperatorName,
    /// The label of the answer's measure (or, for an answer about no one measure, the
    /// ticket's), in the answer's language.
    MeasureLabel,
    /// The next counter opening not over yet, e.g.
    /// `martedì 2 dicembre 2025, dalle 9:00 alle 12:30`.
    CounterNextOpening,
    /// Today's date in the answer's language.
    Today,
}

impl Placeholder {
    /// Every placeholder, in the order the documentation lists them.
    pub const ALL: &'static [Placeholder] = &[
        Placeholder::CitizenName,
        Placeholder::TicketNumber,
        Placeholder::TicketSubject,
        Placeholder::OperatorName,
        Placeholder::MeasureLabel,
        Placeholder::CounterNextOpening,
        Placeholder::Today,
    ];

    /// The name written between the braces.
    pub fn name(self) -> &'static str {
        match self {
            Placeholder::CitizenName => "citizen.name",
            Placeholder::TicketNumber => "ticket.number",
            Placeholder::TicketSubject => "ticket.subject",
            Placeholder::OperatorName => "operator.name",
            Placeholder::MeasureLabel => "measure.label",
            Placeholder::CounterNextOpening => "counter.next_opening",
            Placeholder::Today => "today",
        }
    }

    pub fn parse(name: &str) -> Option<Placeholder> {
        Placeholder::ALL.iter().copied().find(|p| p.name() == name)
    }
}

impl std::fmt::Display for Placeholder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{{{{{}}}}}", self.name())
    }
}

/// Why a template cannot be saved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error(
        "unknown placeholder '{{{{{name}}}}}' on line {line}: the known ones are {}",
        known_list()
    )]
    Unknown { name: String, line: usize },
    #[error("empty placeholder '{{{{}}}}' on line {line}")]
    Empty { line: usize },
    #[error("'{{{{' on line {line} is never closed with '}}}}'")]
    Unclosed { line: usize },
}

fn known_list() -> String {
    Placeholder::ALL
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Names in error messages are cut short: the message must stay readable whatever was typed.
fn clip(s: &str) -> String {
    const MAX: usize = 40;
    if s.chars().count() <= MAX {
        s.to_owned()
    } else {
        let mut c: String = s.chars().take(MAX).collect();
        c.push('…');
        c
    }
}

/// A piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece<'a> {
    Text(&'a str),
    /// A well-formed `{{ name }}`: the trimmed name and the whole source text.
    Slot {
        name: &'a str,
        source: &'a str,
        line: usize,
    },
    /// A `{{` with no proper closing `}}`.
    Unclosed {
        source: &'a str,
        line: usize,
    },
}

/// Splits a template into text and placeholders. Total: every input has a split, and the
/// pieces' source texts concatenate back to the input.
fn pieces(template: &str) -> Vec<Piece<'_>> {
    let mut out = Vec::new();
    let mut rest = template;
    let mut line = 1;
    while !rest.is_empty() {
        let Some(open) = rest.find("{{") else {
            out.push(Piece::Text(rest));
            break;
        };
        if open > 0 {
            out.push(Piece::Text(&rest[..open]));
            line += rest[..open].matches('\n').count();
            rest = &rest[open..];
        }
        // `rest` starts with "{{" (ASCII, so every index below is a char boundary).
        let after = &rest[2..];
        match after.find("}}") {
            Some(close) => {
                let inner = &after[..close];
                if inner.starts_with('{') {
                    // "{{{x}}": the first brace is text, the placeholder starts one later.
                    out.push(Piece::Text(&rest[..1]));
                    rest = &rest[1..];
                } else if inner.contains(['{', '}', '\n']) {
                    out.push(Piece::Unclosed {
                        source: &rest[..2],
                        line,
                    });
                    rest = &rest[2..];
                } else {
                    let end = 2 + close + 2;
                    out.push(Piece::Slot {
                        name: inner.trim(),
                        source: &rest[..end],
                        line,
                    });
                    rest = &rest[end..];
                }
            }
            None => {
                out.push(Piece::Unclosed {
                    source: &rest[..2],
                    line,
                });
                rest = &rest[2..];
            }
        }
    }
    out
}

/// Checks a template: every placeholder known, every `{{` closed. Returns every problem, in
/// the order they appear, so an editor fixes them all at once.
pub fn validate_template(template: &str) -> Result<Vec<Placeholder>, Vec<TemplateError>> {
    let mut used = Vec::new();
    let mut errors = Vec::new();
    for p in pieces(template) {
        match p {
            Piece::Text(_) => {}
            Piece::Slot { name: "", line, .. } => errors.push(TemplateError::Empty { line }),
            Piece::Slot { name, line, .. } => match Placeholder::parse(name) {
                Some(ph) => {
                    if !used.contains(&ph) {
                        used.push(ph);
                    }
                }
                None => errors.push(TemplateError::Unknown {
                    name: clip(name),
                    line,
                }),
            },
            Piece::Unclosed { line, .. } => errors.push(TemplateError::Unclosed { line }),
        }
    }
    if errors.is_empty() {
        Ok(used)
    } else {
        Err(errors)
    }
}

/// The result of rendering: the text, and the placeholders that had no value (left as
/// written, so the operator sees what to fill in by hand).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub text: String,
    pub missing: Vec<Placeholder>,
}

/// Fills a template. Never fails: unknown placeholders and malformed braces are copied as
/// written, and a placeholder whose value is `None` stays as written and is reported.
pub fn render(template: &str, value: impl Fn(Placeholder) -> Option<String>) -> Rendered {
    let mut text = String::with_capacity(template.len() + 64);
    let mut missing = Vec::new();
    for p in pieces(template) {
        match p {
            Piece::Text(t) => text.push_str(t),
            Piece::Unclosed { source, .. } => text.push_str(source),
            Piece::Slot { name, source, .. } => match Placeholder::parse(name) {
                Some(ph) => match value(ph) {
                    Some(v) => text.push_str(&v),
                    None => {
                        text.push_str(source);
                        if !missing.contains(&ph) {
                            missing.push(ph);
                        }
                    }
                },
                None => text.push_str(source),
            },
        }
    }
    Rendered { text, missing }
}

/// The letter without its greeting line and sign-off paragraph, for the e-mail reply, which
/// adds its own ("Gentile …," and "Cordiali saluti," with the operator's signature).
///
/// The greeting is the first line when it uses `{{citizen.name}}`; the sign-off is the last
/// paragraph (after the last blank line) when it uses `{{operator.name}}`. A template shaped
/// otherwise comes back whole, only trimmed.
pub fn letter_core(template: &str) -> &str {
    let t = template.trim();
    let uses = |s: &str, p: Placeholder| {
        pieces(s)
            .iter()
            .any(|x| matches!(x, Piece::Slot { name, .. } if Placeholder::parse(name) == Some(p)))
    };
    let first_end = t.find('\n').unwrap_or(t.len());
    let mut core = if uses(&t[..first_end], Placeholder::CitizenName) {
        t[first_end..].trim_start()
    } else {
        t
    };
    // The start of the last paragraph: the first line after the last blank line.
    let mut last_para = None;
    let mut offset = 0;
    let mut blank = false;
    for line in core.split_inclusive('\n') {
        if line.trim().is_empty() {
            blank = true;
        } else if blank {
            last_para = Some(offset);
            blank = false;
        }
        offset += line.len();
    }
    if let Some(at) = last_para
        && uses(&core[at..], Placeholder::OperatorName)
    {
        core = core[..at].trim_end();
    }
    if core.is_empty() { t } else { core }
}

/// Folds text for searching: lowercase, Italian accents dropped, whitespace collapsed, so
/// "modalità" finds "Modalita'" and the other way round, on SQLite and PostgreSQL alike.
pub fn search_key(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut space = false;
    for c in text.chars().flat_map(char::to_lowercase) {
        let c = match c {
            'à' | 'á' | 'â' | 'ä' => 'a',
            'è' | 'é' | 'ê' | 'ë' => 'e',
            'ì' | 'í' | 'î' | 'ï' => 'i',
            'ò' | 'ó' | 'ô' | 'ö' => 'o',
            'ù' | 'ú' | 'û' | 'ü' => 'u',
            '\'' | '’' => ' ',
            c if c.is_whitespace() => ' ',
            c => c,
        };
        if c == ' ' {
            if !space && !out.is_empty() {
                out.push(' ');
            }
            space = true;
        } else {
            out.push(c);
            space = false;
        }
    }
    if out.ends_with(' ') {
        out.pop();
    }
    out
}

/// A date spelled out for a letter: `martedì 2 dicembre 2025` / `Tuesday 2 December 2025`.
pub fn long_date(lang: &str, date: NaiveDate) -> String {
    const GIORNI: [&str; 7] = [
        "lunedì",
        "martedì",
        "mercoledì",
        "giovedì",
        "venerdì",
        "sabato",
        "domenica",
    ];
    const MESI: [&str; 12] = [
        "gennaio",
        "febbraio",
        "marzo",
        "aprile",
        "maggio",
        "giugno",
        "luglio",
        "agosto",
        "settembre",
        "ottobre",
        "novembre",
        "dicembre",
    ];
    const DAYS: [&str; 7] = [
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
    ];
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    let wd = weekday_index(date.weekday());
    let m = date.month0() as usize;
    if lang == "en" {
        format!("{} {} {} {}", DAYS[wd], date.day(), MONTHS[m], date.year())
    } else {
        format!("{} {} {} {}", GIORNI[wd], date.day(), MESI[m], date.year())
    }
}

fn weekday_index(w: Weekday) -> usize {
    w.num_days_from_monday() as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn values(p: Placeholder) -> Option<String> {
        match p {
            Placeholder::CitizenName => Some("Maria Rossi".into()),
            Placeholder::TicketNumber => Some("SP-2026-000123".into()),
            Placeholder::OperatorName => Some("Luca Bianchi".into()),
            _ => None,
        }
    }

    #[test]
    fn fills_known_placeholders_with_or_without_spaces() {
        let r = render(
            "Gentile {{citizen.name}},\nla pratica {{ ticket.number }} è in lavorazione.\n{{operator.name}}",
            values,
        );
        assert_eq!(
            r.text,
            "Gentile Maria Rossi,\nla pratica SP-2026-000123 è in lavorazione.\nLuca Bianchi"
        );
        assert!(r.missing.is_empty());
    }

    #[test]
    fn a_missing_value_stays_visible_and_is_reported_once() {
        let r = render("{{measure.label}} e {{measure.label}}", values);
        assert_eq!(r.text, "{{measure.label}} e {{measure.label}}");
        assert_eq!(r.missing, vec![Placeholder::MeasureLabel]);
    }

    #[test]
    fn unknown_placeholder_is_named_with_its_line() {
        let errs = validate_template("Gentile {{citizen.name}},\n{{citizen.surname}}").unwrap_err();
        assert_eq!(
            errs,
            vec![TemplateError::Unknown {
                name: "citizen.surname".into(),
                line: 2
            }]
        );
        let msg = errs[0].to_string();
        assert!(msg.contains("{{citizen.surname}}"), "{msg}");
        assert!(msg.contains("line 2"), "{msg}");
        assert!(
            msg.contains("{{citizen.name}}"),
            "lists the known ones: {msg}"
        );
    }

    #[test]
    fn malformed_braces_are_errors_at_save_and_text_at_render() {
        for (t, want) in [
            ("Saldo {{ticket.number", TemplateError::Unclosed { line: 1 }),
            ("a\n{{}}", TemplateError::Empty { line: 2 }),
            ("{{a}b}}", TemplateError::Unclosed { line: 1 }),
            ("{{ x\n}}", TemplateError::Unclosed { line: 1 }),
        ] {
            assert_eq!(validate_template(t).unwrap_err(), vec![want], "{t}");
            assert_eq!(render(t, values).text, t, "rendered as written: {t}");
        }
    }

    #[test]
    fn single_and_triple_braces() {
        assert!(validate_template("importo {x} e } {").is_ok());
        assert_eq!(render("{{{citizen.name}}}", values).text, "{Maria Rossi}");
        assert_eq!(
            validate_template("{{{ticket.number}}}").unwrap(),
            vec![Placeholder::TicketNumber]
        );
    }

    #[test]
    fn values_are_not_expanded_again() {
        let r = render("{{citizen.name}}", |_| Some("{{ticket.number}}".into()));
        assert_eq!(r.text, "{{ticket.number}}");
    }

    #[test]
    fn every_placeholder_round_trips_its_name() {
        for p in Placeholder::ALL {
            assert_eq!(Placeholder::parse(p.name()), Some(*p));
            assert_eq!(validate_template(&p.to_string()).unwrap(), vec![*p]);
        }
    }

    #[test]
    fn letter_core_drops_greeting_and_sign_off() {
        let t = "Gentile {{citizen.name}},\n\nla misura è attiva.\n\nSecondo paragrafo.\n\nCordiali saluti,\n{{operator.name}}\nComune di Milano\n";
        assert_eq!(letter_core(t), "la misura è attiva.\n\nSecondo paragrafo.");
        // Not shaped as a letter: kept whole.
        assert_eq!(
            letter_core("  solo testo {{ticket.number}} "),
            "solo testo {{ticket.number}}"
        );
        assert_eq!(letter_core("Saluti\n\n{{operator.name}}"), "Saluti");
        assert_eq!(letter_core("{{citizen.name}}"), "{{citizen.name}}");
    }

    #[test]
    fn search_key_folds_case_accents_and_spaces() {
        assert_eq!(
            search_key("  Modalità  DI\tPagamento "),
            "modalita di pagamento"
        );
        assert_eq!(search_key("Perché l'ISEE"), "perche l isee");
    }

    #[test]
    fn long_dates() {
        let d = NaiveDate::from_ymd_opt(2025, 12, 2).unwrap();
        assert_eq!(long_date("it", d), "martedì 2 dicembre 2025");
        assert_eq!(long_date("en", d), "Tuesday 2 December 2025");
    }

    #[test]
    fn topics_and_langs() {
        assert!(validate_topic("isee_thresholds").is_ok());
        assert!(
            validate_topic("gossip")
                .unwrap_err()
                .contains("who_can_apply")
        );
        assert!(validate_lang("it").is_ok());
        assert!(validate_lang("fr").is_err());
    }

    fn template_strategy() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            "[a-zA-Z àè,.\n]{0,12}",
            Just("{".to_owned()),
            Just("}".to_owned()),
            Just("{{".to_owned()),
            Just("}}".to_owned()),
            proptest::sample::select(Placeholder::ALL).prop_map(|p| p.to_string()),
            "\\{\\{ ?[a-z._]{0,15} ?\\}\\}",
        ];
        proptest::collection::vec(piece, 0..20).prop_map(|v| v.concat())
    }

    proptest! {
        #[test]
        fn render_never_panics_on_anything(s in any::<String>()) {
            let _ = letter_core(&s);
            let _ = render(&s, |_| Some("x".into()));
            let _ = validate_template(&s);
        }

        #[test]
        fn pieces_reassemble_the_input(s in template_strategy()) {
            let back: String = pieces(&s).iter().map(|p| match p {
                Piece::Text(t) => *t,
                Piece::Slot { source, .. } | Piece::Unclosed { source, .. } => *source,
            }).collect();
            prop_assert_eq!(back, s);
        }

        #[test]
        fn with_no_values_rendering_is_identity(s in template_strategy()) {
            prop_assert_eq!(render(&s, |_| None).text, s);
        }

        #[test]
        fn a_valid_template_leaves_no_braces_of_its_placeholders(
            parts in proptest::collection::vec(
                prop_oneof![
                    "[a-zA-Z àè,.\n]{0,12}".prop_map(|t| (t, None)),
                    proptest::sample::select(Placeholder::ALL).prop_map(|p| (p.to_string(), Some(p))),
                ],
                0..12,
            )
        ) {
            let t: String = parts.iter().map(|(s, _)| s.as_str()).collect();
            let used = validate_template(&t).unwrap();
            for (_, p) in &parts {
                if let Some(p) = p {
                    prop_assert!(used.contains(p));
                }
            }
            let r = render(&t, |p| Some(format!("<{}>", p.name())));
            prop_assert!(r.missing.is_empty());
            prop_assert!(!r.text.contains("{{"), "{}", r.text);
            let expected: String = parts.iter().map(|(s, p)| match p {
                Some(p) => format!("<{}>", p.name()),
                None => s.clone(),
            }).collect();
            prop_assert_eq!(r.text, expected);
        }

        #[test]
        fn a_template_that_validates_renders_fully(s in template_strategy()) {
            if validate_template(&s).is_ok() {
                let r = render(&s, |_| Some(String::new()));
                prop_assert!(r.missing.is_empty());
            }
        }
    }
}
