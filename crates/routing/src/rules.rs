//! Routing rules: ticket facts → tier, required skills, priority and SLA policy.
//!
//! The rules are a TOML document (see `config/routing.toml`): an ordered list of `[[rules]]`,
//! each with a `when` (conditions, all of which must hold; a list means "any of") and a `then`
//! (what to decide; missing fields come from `[default]`), plus a `[default]` for tickets no
//! rule matches. The first matching rule wins.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use serde::{Deserialize, Serialize};
use sportello_domain::taxonomy::validate_slug;
use sportello_domain::{Channel, Priority, Tier};

use crate::sla::{SlaConfigError, SlaPolicies};
use crate::text::{self, Keyword};

/// The reserved name of the decision taken when no rule matches.
pub const DEFAULT_RULE: &str = "default";
/// Longest accepted rule name.
pub const MAX_RULE_NAME: usize = 80;
/// Skill levels run from 1 (basic) to 5 (expert).
pub const MIN_SKILL_LEVEL: i64 = 1;
pub const MAX_SKILL_LEVEL: i64 = 5;

/// Why a rule document was refused; always names the rule and the field at fault.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RuleError {
    #[error("routing rules are not valid TOML: {0}")]
    Syntax(String),
    #[error("the rules have no [default] table: it decides for tickets no rule matches")]
    MissingDefault,
    #[error("rule #{index} has an empty name")]
    EmptyName { index: usize },
    #[error("two rules are named '{0}'; rule names must be unique")]
    DuplicateName(String),
    #[error("rule '{rule}', field '{field}': {message}")]
    Invalid {
        rule: String,
        field: String,
        message: String,
    },
    #[error("rule '{rule}' can never match: rule '{shadowed_by}' before it matches every ticket")]
    Unreachable { rule: String, shadowed_by: String },
    #[error("the SLA policies the rules refer to are not valid: {0}")]
    Policies(#[from] SlaConfigError),
}

fn invalid(rule: &str, field: &str, message: impl Into<String>) -> RuleError {
    RuleError::Invalid {
        rule: rule.to_owned(),
        field: field.to_owned(),
        message: message.into(),
    }
}

/// A single value or a list of values (TOML accepts both, `channel = "email"` or
/// `channel = ["email", "web"]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn items(&self) -> Vec<&str> {
        match self {
            OneOrMany::One(s) => vec![s.as_str()],
            OneOrMany::Many(v) => v.iter().map(String::as_str).collect(),
        }
    }

    fn from_vec(mut v: Vec<String>) -> Option<OneOrMany> {
        match v.len() {
            0 => None,
            1 => v.pop().map(OneOrMany::One),
            _ => Some(OneOrMany::Many(v)),
        }
    }
}

/// The conditions of a rule as written in TOML/JSON.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WhenDoc {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<OneOrMany>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<OneOrMany>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measure: Option<OneOrMany>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mailbox: Option<OneOrMany>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keywords: Option<OneOrMany>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender: Option<OneOrMany>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<OneOrMany>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub citizen_flags: Option<OneOrMany>,
}

/// What a rule (or `[default]`) decides, as written in TOML/JSON.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThenDoc {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sla_policy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skills: Option<BTreeMap<String, i64>>,
}

/// One rule as written in TOML/JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleDoc {
    pub name: String,
    #[serde(default)]
    pub when: WhenDoc,
    pub then: ThenDoc,
}

/// The rule document: `[default]` and `[[rules]]`. Other top-level tables (the rest of
/// `routing.toml`) are ignored here.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleSetDoc {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<ThenDoc>,
    #[serde(default)]
    pub rules: Vec<RuleDoc>,
}

/// A sender condition: an exact address or every address of a domain (`*@inps.it`).
#[derive(Debug, Clone, PartialEq, Eq)]
enum SenderPattern {
    Exact(String),
    Domain(String),
}

impl SenderPattern {
    fn parse(raw: &str) -> Option<SenderPattern> {
        let s = raw.trim().to_lowercase();
        let (local, domain) = s.rsplit_once('@')?;
        let domain_ok = !domain.is_empty()
            && !domain.contains(['@', '*', ' '])
            && !domain.starts_with('.')
            && !domain.ends_with('.');
        if !domain_ok {
            return None;
        }
        if local == "*" {
            Some(SenderPattern::Domain(domain.to_owned()))
        } else if !local.is_empty() && !local.contains(['@', '*', ' ']) {
            Some(SenderPattern::Exact(s))
        } else {
            None
        }
    }

    fn matches(&self, sender: &str) -> bool {
        match self {
            SenderPattern::Exact(a) => sender == a,
            SenderPattern::Domain(d) => sender.rsplit_once('@').is_some_and(|(_, sd)| sd == d),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Conditions {
    channels: Vec<Channel>,
    categories: Vec<String>,
    measures: Vec<String>,
    mailboxes: Vec<String>,
    keywords: Vec<(String, Keyword)>,
    senders: Vec<(String, SenderPattern)>,
    languages: Vec<String>,
    citizen_flags: Vec<String>,
}

impl Conditions {
    fn is_catch_all(&self) -> bool {
        self.channels.is_empty()
            && self.categories.is_empty()
            && self.measures.is_empty()
            && self.mailboxes.is_empty()
            && self.keywords.is_empty()
            && self.senders.is_empty()
            && self.languages.is_empty()
            && self.citizen_flags.is_empty()
    }
}

/// A validated decision fragment: `None` fields fall back to `[default]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Outcome {
    tier: Option<Tier>,
    skills: Option<BTreeMap<String, u8>>,
    priority: Option<Priority>,
    sla_policy: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    name: String,
    when: Conditions,
    then: Outcome,
}

/// What the rules decided for a ticket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// The rule that matched, or `"default"`.
    pub rule: String,
    pub tier: Tier,
    pub skills: BTreeMap<String, u8>,
    pub priority: Priority,
    pub sla_policy: String,
}

/// The facts about a ticket that rules look at (the dry-run body has the same shape).
///
/// `subject`, `body` and `sender` are personal data: `Debug` redacts them.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketFacts {
    pub channel: Channel,
    #[serde(default)]
    pub category: Option<String>,
    #[serde(default)]
    pub measure: Option<String>,
    /// The mailbox an email arrived in (address or configured mailbox name).
    #[serde(default)]
    pub mailbox: Option<String>,
    #[serde(default)]
    pub subject: String,
    #[serde(default)]
    pub body: String,
    /// The sender's email address, if any.
    #[serde(default)]
    pub sender: Option<String>,
    /// The citizen's language (BCP 47, e.g. `it`, `en`, `pt-br`).
    #[serde(default)]
    pub language: Option<String>,
    #[serde(default)]
    pub citizen_flags: Vec<String>,
}

impl TicketFacts {
    /// Facts with only the channel known.
    pub fn new(channel: Channel) -> Self {
        TicketFacts {
            channel,
            category: None,
            measure: None,
            mailbox: None,
            subject: String::new(),
            body: String::new(),
            sender: None,
            language: None,
            citizen_flags: Vec::new(),
        }
    }
}

impl fmt::Debug for TicketFacts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TicketFacts")
            .field("channel", &self.channel)
            .field("category", &self.category)
            .field("measure", &self.measure)
            .field("mailbox", &self.mailbox)
            .field("subject", &"<redacted>")
            .field("body", &"<redacted>")
            .field("sender", &self.sender.as_ref().map(|_| "<redacted>"))
            .field("language", &self.language)
            .field("citizen_flags", &self.citizen_flags)
            .finish()
    }
}

/// Why a rule did not match: one entry per failed condition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "field", rename_all = "snake_case")]
pub enum Mismatch {
    Channel {
        expected: Vec<Channel>,
        actual: Channel,
    },
    Category {
        expected: Vec<String>,
        actual: Option<String>,
    },
    Measure {
        expected: Vec<String>,
        actual: Option<String>,
    },
    Mailbox {
        expected: Vec<String>,
        actual: Option<String>,
    },
    Keywords {
        expected: Vec<String>,
    },
    /// The ticket's sender is personal data, so only the patterns are reported.
    Sender {
        expected: Vec<String>,
    },
    Language {
        expected: Vec<String>,
        actual: Option<String>,
    },
    CitizenFlags {
        expected: Vec<String>,
    },
}

fn or_none(v: &Option<String>) -> String {
    v.as_deref()
        .map_or_else(|| "nessuno".to_owned(), |s| format!("'{s}'"))
}

impl fmt::Display for Mismatch {
    /// Italian, for the admins reading the dry run.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mismatch::Channel { expected, actual } => {
                let e: Vec<&str> = expected.iter().map(|c| c.as_str()).collect();
                write!(f, "canale '{actual}' non tra: {}", e.join(", "))
            }
            Mismatch::Category { expected, actual } => {
                write!(
                    f,
                    "categoria {} non tra: {}",
                    or_none(actual),
                    expected.join(", ")
                )
            }
            Mismatch::Measure { expected, actual } => {
                write!(
                    f,
                    "misura {} non tra: {}",
                    or_none(actual),
                    expected.join(", ")
                )
            }
            Mismatch::Mailbox { expected, actual } => {
                write!(
                    f,
                    "casella {} non tra: {}",
                    or_none(actual),
                    expected.join(", ")
                )
            }
            Mismatch::Keywords { expected } => {
                write!(
                    f,
                    "nessuna parola chiave trovata tra: {}",
                    expected.join(", ")
                )
            }
            Mismatch::Sender { expected } => {
                write!(f, "mittente non corrispondente a: {}", expected.join(", "))
            }
            Mismatch::Language { expected, actual } => {
                write!(
                    f,
                    "lingua {} non tra: {}",
                    or_none(actual),
                    expected.join(", ")
                )
            }
            Mismatch::CitizenFlags { expected } => {
                write!(
                    f,
                    "il cittadino non ha nessuno dei contrassegni: {}",
                    expected.join(", ")
                )
            }
        }
    }
}

/// One rule tried during an explanation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleTrace {
    pub rule: String,
    pub matched: bool,
    /// Every condition that failed (empty when the rule matched).
    pub mismatches: Vec<Mismatch>,
}

/// The decision plus the rules tried before it, in order (for the dry-run endpoint).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Explanation {
    pub decision: Decision,
    pub tried: Vec<RuleTrace>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Defaults {
    tier: Tier,
    skills: BTreeMap<String, u8>,
    priority: Priority,
    sla_policy: String,
}

/// A validated, ordered set of routing rules with its default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSet {
    default: Defaults,
    rules: Vec<Rule>,
}

/// The facts folded once so that every rule compares against the same normalised values.
struct Prepared<'a> {
    facts: &'a TicketFacts,
    words: Vec<String>,
    category: Option<String>,
    measure: Option<String>,
    mailbox: Option<String>,
    sender: Option<String>,
    language: Option<String>,
    flags: Vec<String>,
}

impl<'a> Prepared<'a> {
    fn new(facts: &'a TicketFacts) -> Self {
        let norm = |v: &Option<String>| {
            v.as_deref()
                .map(|s| s.trim().to_lowercase())
                .filter(|s| !s.is_empty())
        };
        let mut words = text::words(&facts.subject);
        words.extend(text::words(&facts.body));
        Prepared {
            facts,
            words,
            category: norm(&facts.category),
            measure: norm(&facts.measure),
            mailbox: norm(&facts.mailbox),
            sender: norm(&facts.sender),
            language: norm(&facts.language),
            flags: facts
                .citizen_flags
                .iter()
                .map(|f| f.trim().to_lowercase())
                .collect(),
        }
    }
}

fn in_list(list: &[String], v: &Option<String>) -> bool {
    v.as_ref().is_some_and(|v| list.iter().any(|x| x == v))
}

fn language_matches(list: &[String], v: &Option<String>) -> bool {
    v.as_ref().is_some_and(|v| {
        list.iter().any(|l| {
            v == l
                || v.strip_prefix(l.as_str())
                    .is_some_and(|r| r.starts_with('-'))
        })
    })
}

impl Rule {
    /// Checks every condition; `stop_at_first` makes evaluation cheap when no explanation is
    /// wanted.
    fn mismatches(&self, p: &Prepared<'_>, stop_at_first: bool) -> Vec<Mismatch> {
        let c = &self.when;
        let mut out = Vec::new();
        macro_rules! check {
            ($ok:expr, $m:expr) => {
                if !$ok {
                    out.push($m);
                    if stop_at_first {
                        return out;
                    }
                }
            };
        }
        if !c.channels.is_empty() {
            check!(
                c.channels.contains(&p.facts.channel),
                Mismatch::Channel {
                    expected: c.channels.clone(),
                    actual: p.facts.channel
                }
            );
        }
        if !c.categories.is_empty() {
            check!(
                in_list(&c.categories, &p.category),
                Mismatch::Category {
                    expected: c.categories.clone(),
                    actual: p.category.clone()
                }
            );
        }
        if !c.measures.is_empty() {
            check!(
                in_list(&c.measures, &p.measure),
                Mismatch::Measure {
                    expected: c.measures.clone(),
                    actual: p.measure.clone()
                }
            );
        }
        if !c.mailboxes.is_empty() {
            check!(
                in_list(&c.mailboxes, &p.mailbox),
                Mismatch::Mailbox {
                    expected: c.mailboxes.clone(),
                    actual: p.mailbox.clone()
                }
            );
        }
        if !c.keywords.is_empty() {
            check!(
                c.keywords.iter().any(|(_, k)| k.matches(&p.words)),
                Mismatch::Keywords {
                    expected: c.keywords.iter().map(|(r, _)| r.clone()).collect()
                }
            );
        }
        if !c.senders.is_empty() {
            check!(
                p.sender
                    .as_ref()
                    .is_some_and(|s| c.senders.iter().any(|(_, pat)| pat.matches(s))),
                Mismatch::Sender {
                    expected: c.senders.iter().map(|(r, _)| r.clone()).collect()
                }
            );
        }
        if !c.languages.is_empty() {
            check!(
                language_matches(&c.languages, &p.language),
                Mismatch::Language {
                    expected: c.languages.clone(),
                    actual: p.language.clone()
                }
            );
        }
        if !c.citizen_flags.is_empty() {
            check!(
                c.citizen_flags.iter().any(|f| p.flags.contains(f)),
                Mismatch::CitizenFlags {
                    expected: c.citizen_flags.clone()
                }
            );
        }
        out
    }
}

fn parse_slug_list(
    rule: &str,
    field: &str,
    v: &Option<OneOrMany>,
) -> Result<Vec<String>, RuleError> {
    let mut out = Vec::new();
    for item in v.iter().flat_map(OneOrMany::items) {
        let s = item.trim();
        validate_slug(s).map_err(|e| invalid(rule, field, e.to_string()))?;
        out.push(s.to_owned());
    }
    empty_list_check(rule, field, v, out)
}

fn empty_list_check<T>(
    rule: &str,
    field: &str,
    v: &Option<OneOrMany>,
    out: Vec<T>,
) -> Result<Vec<T>, RuleError> {
    if v.is_some() && out.is_empty() {
        return Err(invalid(
            rule,
            field,
            "an empty list never matches; remove the field instead",
        ));
    }
    Ok(out)
}

fn parse_language(s: &str) -> Option<String> {
    let s = s.trim().to_lowercase();
    let (primary, region) = match s.split_once('-') {
        Some((p, r)) => (p, Some(r)),
        None => (s.as_str(), None),
    };
    let primary_ok =
        (2..=3).contains(&primary.len()) && primary.bytes().all(|b| b.is_ascii_lowercase());
    let region_ok = region
        .is_none_or(|r| (2..=8).contains(&r.len()) && r.bytes().all(|b| b.is_ascii_alphanumeric()));
    (primary_ok && region_ok).then_some(s)
}

fn parse_when(rule: &str, w: &WhenDoc) -> Result<Conditions, RuleError> {
    let mut channels = Vec::new();
    for item in w.channel.iter().flat_map(OneOrMany::items) {
        channels.push(
            Channel::parse(item.trim())
                .map_err(|e| invalid(rule, "when.channel", e.to_string()))?,
        );
    }
    let channels = empty_list_check(rule, "when.channel", &w.channel, channels)?;

    let mut mailboxes = Vec::new();
    for item in w.mailbox.iter().flat_map(OneOrMany::items) {
        let m = item.trim().to_lowercase();
        if m.is_empty() {
            return Err(invalid(rule, "when.mailbox", "a mailbox cannot be empty"));
        }
        mailboxes.push(m);
    }
    let mailboxes = empty_list_check(rule, "when.mailbox", &w.mailbox, mailboxes)?;

    let mut keywords = Vec::new();
    for item in w.keywords.iter().flat_map(OneOrMany::items) {
        let k = Keyword::compile(item).ok_or_else(|| {
            invalid(
                rule,
                "when.keywords",
                format!("'{item}' is not a usable keyword: it needs letters or digits, and '*' only at the end of a word"),
            )
        })?;
        keywords.push((item.to_owned(), k));
    }
    let keywords = empty_list_check(rule, "when.keywords", &w.keywords, keywords)?;

    let mut senders = Vec::new();
    for item in w.sender.iter().flat_map(OneOrMany::items) {
        let p = SenderPattern::parse(item).ok_or_else(|| {
            invalid(
                rule,
                "when.sender",
                format!(
                    "'{item}' is neither an address (name@domain) nor a domain pattern (*@domain)"
                ),
            )
        })?;
        senders.push((item.to_owned(), p));
    }
    let senders = empty_list_check(rule, "when.sender", &w.sender, senders)?;

    let mut languages = Vec::new();
    for item in w.language.iter().flat_map(OneOrMany::items) {
        languages.push(parse_language(item).ok_or_else(|| {
            invalid(
                rule,
                "when.language",
                format!("'{item}' is not a language code such as 'it', 'en' or 'pt-br'"),
            )
        })?);
    }
    let languages = empty_list_check(rule, "when.language", &w.language, languages)?;

    Ok(Conditions {
        channels,
        categories: parse_slug_list(rule, "when.category", &w.category)?,
        measures: parse_slug_list(rule, "when.measure", &w.measure)?,
        mailboxes,
        keywords,
        senders,
        languages,
        citizen_flags: parse_slug_list(rule, "when.citizen_flags", &w.citizen_flags)?,
    })
}

fn parse_then(
    rule: &str,
    prefix: &str,
    t: &ThenDoc,
    policies: &SlaPolicies,
) -> Result<Outcome, RuleError> {
    let field = |f: &str| format!("{prefix}{f}");
    let tier = t
        .tier
        .as_deref()
        .map(|s| Tier::parse(s.trim()).map_err(|e| invalid(rule, &field("tier"), e.to_string())))
        .transpose()?;
    let priority = t
        .priority
        .as_deref()
        .map(|s| {
            Priority::parse(s.trim()).map_err(|e| invalid(rule, &field("priority"), e.to_string()))
        })
        .transpose()?;
    let sla_policy = match t.sla_policy.as_deref() {
        None => None,
        Some(p) => {
            let p = p.trim();
            if !policies.contains(p) {
                let known: Vec<&str> = policies.names().collect();
                return Err(invalid(
                    rule,
                    &field("sla_policy"),
                    format!("unknown SLA policy '{p}' (known: {})", known.join(", ")),
                ));
            }
            Some(p.to_owned())
        }
    };
    let skills = match &t.skills {
        None => None,
        Some(map) => {
            let mut out = BTreeMap::new();
            for (skill, level) in map {
                let f = field(&format!("skills.{skill}"));
                validate_slug(skill).map_err(|e| invalid(rule, &f, e.to_string()))?;
                if !(MIN_SKILL_LEVEL..=MAX_SKILL_LEVEL).contains(level) {
                    return Err(invalid(
                        rule,
                        &f,
                        format!("level {level} is out of range: skill levels go from 1 to 5"),
                    ));
                }
                out.insert(skill.clone(), *level as u8);
            }
            Some(out)
        }
    };
    Ok(Outcome {
        tier,
        skills,
        priority,
        sla_policy,
    })
}

impl RuleSet {
    /// Parses and validates a rule document. SLA policy names are checked against the
    /// `[sla.policies]` of the same document when it has them (a whole `routing.toml`), else
    /// against the built-in policies of `config/routing.toml`.
    pub fn from_toml(text: &str) -> Result<RuleSet, RuleError> {
        let has_sla = toml::from_str::<toml::Table>(text)
            .map_err(|e| RuleError::Syntax(e.to_string()))?
            .contains_key("sla");
        let policies = if has_sla {
            SlaPolicies::from_toml(text)?
        } else {
            SlaPolicies::builtin()
        };
        RuleSet::from_toml_with(text, &policies)
    }

    /// Parses and validates a rule document against the given SLA policies.
    pub fn from_toml_with(text: &str, policies: &SlaPolicies) -> Result<RuleSet, RuleError> {
        let doc: RuleSetDoc = toml::from_str(text).map_err(|e| RuleError::Syntax(e.to_string()))?;
        RuleSet::from_doc(&doc, policies)
    }

    /// Validates a rule document already parsed (from TOML or JSON).
    pub fn from_doc(doc: &RuleSetDoc, policies: &SlaPolicies) -> Result<RuleSet, RuleError> {
        let d = doc.default.as_ref().ok_or(RuleError::MissingDefault)?;
        let o = parse_then(DEFAULT_RULE, "default.", d, policies)?;
        let default = Defaults {
            tier: o.tier.ok_or_else(|| {
                invalid(DEFAULT_RULE, "default.tier", "the default must name a tier")
            })?,
            skills: o.skills.unwrap_or_default(),
            priority: o.priority.unwrap_or_default(),
            sla_policy: o.sla_policy.ok_or_else(|| {
                invalid(
                    DEFAULT_RULE,
                    "default.sla_policy",
                    "the default must name an SLA policy",
                )
            })?,
        };

        let mut seen = HashSet::new();
        let mut rules: Vec<Rule> = Vec::with_capacity(doc.rules.len());
        for (i, r) in doc.rules.iter().enumerate() {
            let name = r.name.trim();
            if name.is_empty() {
                return Err(RuleError::EmptyName { index: i + 1 });
            }
            if name.chars().count() > MAX_RULE_NAME {
                return Err(invalid(
                    name,
                    "name",
                    format!("a rule name has at most {MAX_RULE_NAME} characters"),
                ));
            }
            if name.eq_ignore_ascii_case(DEFAULT_RULE) {
                return Err(invalid(
                    name,
                    "name",
                    "'default' is reserved for the [default] table",
                ));
            }
            if !seen.insert(name.to_lowercase()) {
                return Err(RuleError::DuplicateName(name.to_owned()));
            }
            if let Some(shadow) = rules.iter().find(|r| r.when.is_catch_all()) {
                return Err(RuleError::Unreachable {
                    rule: name.to_owned(),
                    shadowed_by: shadow.name.clone(),
                });
            }
            rules.push(Rule {
                name: name.to_owned(),
                when: parse_when(name, &r.when)?,
                then: parse_then(name, "then.", &r.then, policies)?,
            });
        }
        Ok(RuleSet { default, rules })
    }

    /// The rule names, in evaluation order.
    pub fn rule_names(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().map(|r| r.name.as_str())
    }

    /// The SLA policy names the rules and the default refer to.
    pub fn referenced_policies(&self) -> Vec<&str> {
        let mut v: Vec<&str> = std::iter::once(self.default.sla_policy.as_str())
            .chain(
                self.rules
                    .iter()
                    .filter_map(|r| r.then.sla_policy.as_deref()),
            )
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    fn decide(&self, rule: Option<&Rule>) -> Decision {
        let d = &self.default;
        match rule {
            None => Decision {
                rule: DEFAULT_RULE.to_owned(),
                tier: d.tier,
                skills: d.skills.clone(),
                priority: d.priority,
                sla_policy: d.sla_policy.clone(),
            },
            Some(r) => Decision {
                rule: r.name.clone(),
                tier: r.then.tier.unwrap_or(d.tier),
                skills: r.then.skills.clone().unwrap_or_else(|| d.skills.clone()),
                priority: r.then.priority.unwrap_or(d.priority),
                sla_policy: r
                    .then
                    .sla_policy
                    .clone()
                    .unwrap_or_else(|| d.sla_policy.clone()),
            },
        }
    }

    /// The decision for a ticket: the first matching rule, else the default.
    pub fn evaluate(&self, facts: &TicketFacts) -> Decision {
        let p = Prepared::new(facts);
        let hit = self
            .rules
            .iter()
            .find(|r| r.mismatches(&p, true).is_empty());
        self.decide(hit)
    }

    /// The decision plus, for every rule tried before it, why it did not match.
    pub fn explain(&self, facts: &TicketFacts) -> Explanation {
        let p = Prepared::new(facts);
        let mut tried = Vec::new();
        let mut hit = None;
        for r in &self.rules {
            let mismatches = r.mismatches(&p, false);
            let matched = mismatches.is_empty();
            tried.push(RuleTrace {
                rule: r.name.clone(),
                matched,
                mismatches,
            });
            if matched {
                hit = Some(r);
                break;
            }
        }
        Explanation {
            decision: self.decide(hit),
            tried,
        }
    }

    /// The document form, for the admin API (JSON) and [`RuleSet::to_toml`].
    pub fn to_doc(&self) -> RuleSetDoc {
        fn then_doc(o: &Outcome) -> ThenDoc {
            ThenDoc {
                tier: o.tier.map(|t| t.as_str().to_owned()),
                priority: o.priority.map(|p| p.as_str().to_owned()),
                sla_policy: o.sla_policy.clone(),
                skills: o
                    .skills
                    .as_ref()
                    .map(|m| m.iter().map(|(k, v)| (k.clone(), i64::from(*v))).collect()),
            }
        }
        let d = &self.default;
        RuleSetDoc {
            default: Some(then_doc(&Outcome {
                tier: Some(d.tier),
                skills: (!d.skills.is_empty()).then(|| d.skills.clone()),
                priority: Some(d.priority),
                sla_policy: Some(d.sla_policy.clone()),
            })),
            rules: self
                .rules
                .iter()
                .map(|r| {
                    let c = &r.when;
                    let strings = |v: &[String]| OneOrMany::from_vec(v.to_vec());
                    RuleDoc {
                        name: r.name.clone(),
                        when: WhenDoc {
                            channel: OneOrMany::from_vec(
                                c.channels.iter().map(|c| c.as_str().to_owned()).collect(),
                            ),
                            category: strings(&c.categories),
                            measure: strings(&c.measures),
                            mailbox: strings(&c.mailboxes),
                            keywords: OneOrMany::from_vec(
                                c.keywords.iter().map(|(r, _)| r.clone()).collect(),
                            ),
                            sender: OneOrMany::from_vec(
                                c.senders.iter().map(|(r, _)| r.clone()).collect(),
                            ),
                            language: strings(&c.languages),
                            citizen_flags: strings(&c.citizen_flags),
                        },
                        then: then_doc(&r.then),
                    }
                })
                .collect(),
        }
    }

    /// The rules as a TOML document (`[default]` and `[[rules]]`) that parses back to the
    /// same rule set.
    pub fn to_toml(&self) -> Result<String, toml::ser::Error> {
        toml::to_string(&self.to_doc())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"
[default]
tier = "front_office"
sla_policy = "general"

[[rules]]
name = "complaints"
[rules.when]
category = "complaint"
[rules.then]
tier = "back_office"
skills = { complaints = 2 }
sla_policy = "complaint"

[[rules]]
name = "inps"
[rules.when]
channel = "email"
sender = ["*@inps.it", "dirigente@comune.milano.it"]
[rules.then]
tier = "back_office"
priority = "high"

[[rules]]
name = "eviction"
[rules.when]
keywords = ["sfratto", "senza casa", "ricors*"]
[rules.then]
priority = "urgent"

[[rules]]
name = "english"
[rules.when]
language = ["en"]
citizen_flags = ["foreign_resident", "tourist"]
[rules.then]
skills = { lang_en = 3 }

[[rules]]
name = "phone"
[rules.when]
channel = "phone"
[rules.then]
sla_policy = "phone_callback"
"#;

    fn set() -> RuleSet {
        RuleSet::from_toml(DOC).unwrap()
    }

    fn email(subject: &str) -> TicketFacts {
        TicketFacts {
            subject: subject.to_owned(),
            ..TicketFacts::new(Channel::Email)
        }
    }

    #[test]
    fn first_matching_rule_decides_and_fills_the_rest_from_default() {
        let rs = set();
        let mut f = email("Reclamo");
        f.category = Some("complaint".into());
        f.sender = Some("x@inps.it".into());
        let d = rs.evaluate(&f);
        assert_eq!(d.rule, "complaints", "complaints comes before inps");
        assert_eq!(d.tier, Tier::BackOffice);
        assert_eq!(d.sla_policy, "complaint");
        assert_eq!(d.priority, Priority::Normal, "priority from [default]");
        assert_eq!(d.skills.get("complaints"), Some(&2));

        let d = rs.evaluate(&TicketFacts::new(Channel::Counter));
        assert_eq!(d.rule, "default");
        assert_eq!(
            (d.tier, d.sla_policy.as_str()),
            (Tier::FrontOffice, "general")
        );
    }

    #[test]
    fn sender_patterns_match_exact_addresses_and_domains() {
        let rs = set();
        for (sender, hit) in [
            ("Ufficio@INPS.it", true),
            ("dirigente@comune.milano.it", true),
            ("altro@comune.milano.it", false),
            ("x@inps.it.example.com", false),
            ("inps.it", false),
        ] {
            let mut f = email("ciao");
            f.sender = Some(sender.into());
            assert_eq!(rs.evaluate(&f).rule == "inps", hit, "{sender}");
        }
    }

    #[test]
    fn keywords_look_at_subject_and_body_ignoring_case_and_accents() {
        let rs = set();
        let mut f = TicketFacts::new(Channel::Web);
        f.body = "Sono SENZA   CASA da lunedì".into();
        assert_eq!(rs.evaluate(&f).rule, "eviction");
        assert_eq!(
            rs.evaluate(&email("Ricorsi contro l'esito")).rule,
            "eviction"
        );
        assert_eq!(rs.evaluate(&email("casa senza")).rule, "default");
    }

    #[test]
    fn all_conditions_must_hold_and_lists_mean_any_of() {
        let rs = set();
        let mut f = email("hello");
        f.language = Some("en-GB".into());
        assert_eq!(
            rs.evaluate(&f).rule,
            "default",
            "language alone is not enough"
        );
        f.citizen_flags = vec!["tourist".into()];
        let d = rs.evaluate(&f);
        assert_eq!(d.rule, "english");
        assert_eq!(d.skills.get("lang_en"), Some(&3));
    }

    #[test]
    fn explain_lists_every_rule_tried_and_why_it_failed() {
        let rs = set();
        let mut f = TicketFacts::new(Channel::Phone);
        f.language = Some("it".into());
        let e = rs.explain(&f);
        assert_eq!(e.decision.rule, "phone");
        assert_eq!(e.decision.sla_policy, "phone_callback");
        let names: Vec<&str> = e.tried.iter().map(|t| t.rule.as_str()).collect();
        assert_eq!(
            names,
            ["complaints", "inps", "eviction", "english", "phone"]
        );
        assert!(e.tried.last().unwrap().matched);
        let inps = &e.tried[1];
        assert_eq!(
            inps.mismatches.len(),
            2,
            "channel and sender both fail: {:?}",
            inps.mismatches
        );
        assert!(matches!(
            inps.mismatches[0],
            Mismatch::Channel {
                actual: Channel::Phone,
                ..
            }
        ));
        let english = &e.tried[3].mismatches;
        assert!(
            english
                .iter()
                .any(|m| matches!(m, Mismatch::Language { actual: Some(l), .. } if l == "it"))
        );
        assert!(
            english[0].to_string().contains("lingua 'it'"),
            "{}",
            english[0]
        );
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["tried"][0]["mismatches"][0]["field"], "category");
        assert_eq!(json["decision"]["tier"], "front_office");
    }

    #[test]
    fn explanation_never_echoes_the_sender() {
        let rs = set();
        let mut f = email("x");
        f.sender = Some("mario.rossi@example.com".into());
        let e = rs.explain(&f);
        let text = serde_json::to_string(&e).unwrap();
        assert!(!text.contains("mario.rossi"), "{text}");
        assert!(!format!("{f:?}").contains("mario.rossi"));
    }

    #[test]
    fn serializing_back_to_toml_round_trips() {
        let rs = set();
        let text = rs.to_toml().unwrap();
        let again = RuleSet::from_toml(&text).unwrap();
        assert_eq!(again, rs, "{text}");
        let json = serde_json::to_string(&rs.to_doc()).unwrap();
        let doc: RuleSetDoc = serde_json::from_str(&json).unwrap();
        assert_eq!(
            RuleSet::from_doc(&doc, &SlaPolicies::builtin()).unwrap(),
            rs
        );
    }

    fn err_of(doc: &str) -> String {
        RuleSet::from_toml(doc).unwrap_err().to_string()
    }

    const HEAD: &str = "[default]\ntier = \"front_office\"\nsla_policy = \"general\"\n";

    #[test]
    fn validation_names_rule_and_field() {
        let cases = [
            (
                "[[rules]]\nname = \"a\"\nwhen = { channel = \"fax\" }\nthen = {}",
                "rule 'a', field 'when.channel': unknown channel 'fax'",
            ),
            (
                "[[rules]]\nname = \"b\"\nthen = { tier = \"middle\" }",
                "rule 'b', field 'then.tier': unknown tier 'middle'",
            ),
            (
                "[[rules]]\nname = \"c\"\nthen = { priority = \"asap\" }",
                "rule 'c', field 'then.priority'",
            ),
            (
                "[[rules]]\nname = \"d\"\nthen = { sla_policy = \"gold\" }",
                "rule 'd', field 'then.sla_policy': unknown SLA policy 'gold'",
            ),
            (
                "[[rules]]\nname = \"e\"\nthen = { skills = { b2 = 6 } }",
                "rule 'e', field 'then.skills.b2': level 6 is out of range",
            ),
            (
                "[[rules]]\nname = \"f\"\nthen = { skills = { b2 = 0 } }",
                "then.skills.b2",
            ),
            (
                "[[rules]]\nname = \"  \"\nthen = {}",
                "rule #1 has an empty name",
            ),
            (
                "[[rules]]\nname = \"g\"\nwhen = { sender = \"nobody\" }\nthen = {}",
                "rule 'g', field 'when.sender'",
            ),
            (
                "[[rules]]\nname = \"h\"\nwhen = { keywords = [] }\nthen = {}",
                "rule 'h', field 'when.keywords': an empty list",
            ),
            (
                "[[rules]]\nname = \"i\"\nwhen = { language = \"italiano\" }\nthen = {}",
                "field 'when.language'",
            ),
            (
                "[[rules]]\nname = \"j\"\nwhen = { chanel = \"email\" }\nthen = {}",
                "unknown field `chanel`",
            ),
            ("[[rules]]\nname = \"default\"\nthen = {}", "reserved"),
        ];
        for (rules, want) in cases {
            let got = err_of(&format!("{HEAD}{rules}"));
            assert!(got.contains(want), "want {want:?} in {got:?}");
        }
        let dup = format!(
            "{HEAD}[[rules]]\nname = \"x\"\nthen = {{}}\n[[rules]]\nname = \"X\"\nwhen = {{ channel = \"email\" }}\nthen = {{}}"
        );
        assert!(err_of(&dup).contains("two rules are named 'X'"));
        let unreachable = format!(
            "{HEAD}[[rules]]\nname = \"all\"\nthen = {{}}\n[[rules]]\nname = \"late\"\nwhen = {{ channel = \"email\" }}\nthen = {{}}"
        );
        assert!(err_of(&unreachable).contains("rule 'late' can never match: rule 'all'"));
        assert_eq!(
            RuleSet::from_toml("[[rules]]\nname = \"a\"\nthen = {}"),
            Err(RuleError::MissingDefault)
        );
        assert!(err_of("[default]\ntier = \"front_office\"").contains("default.sla_policy"));
    }

    #[test]
    fn policies_in_the_same_document_are_the_ones_checked() {
        let doc = format!(
            "[sla.policies.gold]\nfirst_response = {{ business_hours = 4 }}\n{HEAD}[[rules]]\nname = \"v\"\nthen = {{ sla_policy = \"gold\" }}"
        );
        // `general` is not among this document's policies, so the default is refused ...
        assert!(err_of(&doc).contains("field 'default.sla_policy': unknown SLA policy 'general'"));
        let doc = doc.replace("\"general\"", "\"gold\"");
        // ... and once it refers to `gold` everything is accepted.
        assert_eq!(
            RuleSet::from_toml(&doc).unwrap().referenced_policies(),
            ["gold"]
        );
    }
}
